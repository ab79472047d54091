/* api-client: see api-client.h. */
#include "lib/kube/api-client.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"
#include "lib/kube/kubeconfig-curl.h"

struct api_client {
    CURL *curl;                    /* one easy handle: keeps the connection */
    char *server;                  /* base URL without trailing '/' */
    char *url_base;                /* where requests go: server, or server
                                      with its host replaced by
                                      tls-server-name (see connect_to) */
    struct curl_slist *connect_to; /* tls-server-name: "name:port:host:port"
                                      (dial the real host, verify name) */
    char *host_header;             /* "Host: <server's authority>" then */
    char *ca_pem;                  /* CA bundle or NULL */
    size_t ca_len;                 /* bytes in ca_pem */
    char *cert_pem;                /* client certificate or NULL */
    size_t cert_len;               /* bytes in cert_pem */
    char *key_pem;                 /* client key or NULL */
    size_t key_len;                /* bytes in key_pem */
    char *token;                   /* static bearer token or NULL */
    char *username;                /* basic auth user or NULL */
    char *password;                /* basic auth password or NULL */
    struct kubeconfig_exec *exec;  /* credential plugin (used only when the
                                      user has no static credential) */
    struct kubeconfig_exec_options exec_opts; /* how to run it */
    struct kubeconfig_credential exec_cred;   /* its last credential */
    bool exec_have;                           /* exec_cred holds one */
    bool fresh_connect;           /* client certificate rotated: do not
                                      reuse a connection made with the old */
    int exec_runs;                /* plugin runs that succeeded */
    bool insecure;                /* skip server certificate verification */
    long timeout_ms;              /* per non-watch request; 0 = none */
    char *user_agent;             /* User-Agent value */
    char errbuf[CURL_ERROR_SIZE]; /* curl's last error text */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void
curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *
dup_blob(const char *p, size_t n)
{
    if (!p) {
        return NULL;
    }
    char *r = xmalloc(n + 1);
    memcpy(r, p, n);
    r[n] = '\0';
    return r;
}

/* tls-server-name: requests go to https://<name>:<port>/... so that curl
 * sends <name> as SNI and verifies the certificate against it, while
 * CURLOPT_CONNECT_TO dials the server's real host and the Host header
 * keeps the server's authority (what client-go's tls.Config.ServerName
 * does). */
static int
setup_server_name(struct api_client *c, const char *name, struct dpf_error *err)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *given_port = NULL, *url = NULL;
    int r = -EINVAL;
    if (!u || curl_url_set(u, CURLUPART_URL, c->server, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) !=
            CURLUE_OK) {
        dpf_error_set(err, 400, "BadRequest",
                      "server \"%s\": cannot parse the URL", c->server);
        goto out;
    }
    bool explicit_port =
        curl_url_get(u, CURLUPART_PORT, &given_port, 0) == CURLUE_OK;
    if (curl_url_set(u, CURLUPART_HOST, name, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK) {
        dpf_error_set(err, 400, "BadRequest",
                      "tls-server-name \"%s\": not usable as a host name",
                      name);
        goto out;
    }
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/') {
        url[--n] = '\0';
    }
    c->url_base = xstrdup(url);
    char *ct = xasprintf("%s:%s:%s:%s", name, port, host, port);
    c->connect_to = curl_slist_append(NULL, ct);
    free(ct);
    c->host_header = explicit_port ? xasprintf("Host: %s:%s", host, given_port)
                                   : xasprintf("Host: %s", host);
    r = 0;
out:
    curl_free(host);
    curl_free(port);
    curl_free(given_port);
    curl_free(url);
    curl_url_cleanup(u);
    return r;
}

struct api_client *
api_client_create(const struct kubeconfig *kc, struct dpf_error *err)
{
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        dpf_error_set(err, 500, "InternalError", "curl_global_init: %s",
                      curl_easy_strerror(curl_init_rc));
        return NULL;
    }
    if (!kc || !kc->server) {
        dpf_error_set(err, 400, "BadRequest", "no server to talk to");
        return NULL;
    }
    const char *fname = kc->path ? kc->path : "-";
    const char *uname = kc->user_name ? kc->user_name : "";
    const char *cname = kc->cluster_name ? kc->cluster_name : "";
    if (kc->insecure_skip_tls_verify && kc->ca_pem) {
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: cluster \"%s\": specifying a root "
                      "certificates file with the insecure flag is not "
                      "allowed",
                      fname, cname);
        return NULL;
    }
    bool has_token = kc->token && *kc->token;
    bool has_basic = kc->username || kc->password;
    bool has_cert = kc->cert_pem && kc->key_pem;
    /* client-go runs the plugin only for a user without other credentials */
    bool use_exec = kc->exec && !has_token && !has_basic && !has_cert;
    const char *what = has_token   ? "a bearer token"
                       : has_basic ? "a username and password"
                       : use_exec  ? "an exec credential plugin"
                                   : NULL;
    if (what && str_has_prefix(kc->server, "http://") &&
        !kc->allow_plaintext_credentials) {
        /* client-go would send them; anyone on the path could read them.
         * docs/dpfctl.md explains the opt-in. */
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: user \"%s\" has %s, but cluster \"%s\" "
                      "is reached over plain http (%s): refusing to send "
                      "credentials in clear text; use an https:// server, "
                      "or add the cluster extension \"%s\" to allow it",
                      fname, uname, what, cname, kc->server,
                      KUBECONFIG_EXT_PLAINTEXT);
        return NULL;
    }
    if ((kc->token && kubeconfig_find_ctl(kc->token) >= 0) ||
        (kc->username && kubeconfig_find_ctl(kc->username) >= 0) ||
        (kc->password && kubeconfig_find_ctl(kc->password) >= 0)) {
        /* kubeconfig_parse() refuses these; a hand-made struct too */
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: user \"%s\": a credential contains a "
                      "control character; refusing to send it",
                      fname, uname);
        return NULL;
    }
    struct api_client *c = xcalloc(1, sizeof *c);
    c->curl = curl_easy_init();
    if (!c->curl) {
        free(c);
        dpf_error_set(err, 500, "InternalError", "curl_easy_init failed");
        return NULL;
    }
    c->server = xstrdup(kc->server);
    if (kc->tls_server_name && *kc->tls_server_name &&
        str_has_prefix(kc->server, "https://") &&
        setup_server_name(c, kc->tls_server_name, err) < 0) {
        api_client_destroy(c);
        return NULL;
    }
    if (!c->url_base) {
        c->url_base = xstrdup(c->server);
    }
    c->ca_pem = dup_blob(kc->ca_pem, kc->ca_len);
    c->ca_len = kc->ca_len;
    c->cert_pem = dup_blob(kc->cert_pem, kc->cert_len);
    c->cert_len = kc->cert_len;
    c->key_pem = dup_blob(kc->key_pem, kc->key_len);
    c->key_len = kc->key_len;
    if (has_token) {
        c->token = xstrdup(kc->token);
    }
    if (has_basic) {
        c->username = xstrdup(kc->username ? kc->username : "");
        c->password = xstrdup(kc->password ? kc->password : "");
    }
    if (use_exec) {
        c->exec = kubeconfig_exec_dup(kc->exec);
    }
    c->insecure = kc->insecure_skip_tls_verify;
    c->user_agent = xstrdup("dpf/" DPF_VERSION);
    return c;
}

static void
wipe_free(char *p, size_t n)
{
    if (p) {
        explicit_bzero(p, n);
        free(p);
    }
}

void
api_client_destroy(struct api_client *c)
{
    if (!c) {
        return;
    }
    curl_easy_cleanup(c->curl);
    free(c->server);
    free(c->url_base);
    curl_slist_free_all(c->connect_to);
    free(c->host_header);
    free(c->ca_pem);
    free(c->cert_pem);
    wipe_free(c->key_pem, c->key_len);
    wipe_free(c->token, c->token ? strlen(c->token) : 0);
    free(c->username);
    wipe_free(c->password, c->password ? strlen(c->password) : 0);
    kubeconfig_exec_free(c->exec);
    kubeconfig_credential_clear(&c->exec_cred);
    free(c->user_agent);
    free(c);
}

void
api_client_set_exec_options(struct api_client *c,
                            const struct kubeconfig_exec_options *o)
{
    c->exec_opts = *o;
}

int
api_client_exec_runs(const struct api_client *c)
{
    return c->exec_runs;
}

/* Make sure the plugin's credential is there and not expired (force: run
 * it again regardless, after a 401). 0 or the plugin's error. */
static int
exec_credential(struct api_client *c, bool force, struct dpf_error *err)
{
    if (!c->exec) {
        return 0;
    }
    if (!force && c->exec_have &&
        (c->exec_cred.expiry_ns == 0 ||
         time_wall_ns() <= c->exec_cred.expiry_ns)) {
        return 0;
    }
    struct kubeconfig_credential fresh;
    int r = kubeconfig_exec_run(c->exec, &c->exec_opts, &fresh, err);
    if (r < 0) {
        /* one errno for every plugin failure: callers read -ENOENT as
         * "object not found" and -ETIMEDOUT as their own deadline */
        return -EACCES;
    }
    bool cert_changed =
        c->exec_have &&
        (!c->exec_cred.cert_pem != !fresh.cert_pem ||
         (fresh.cert_pem && strcmp(fresh.cert_pem, c->exec_cred.cert_pem)));
    kubeconfig_credential_clear(&c->exec_cred);
    c->exec_cred = fresh;
    c->exec_have = true;
    c->exec_runs++;
    if (cert_changed) {
        c->fresh_connect = true; /* as client-go closes its connections */
    }
    return 0;
}

void
api_client_set_timeout(struct api_client *c, long timeout_ms)
{
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
}

void
api_client_set_user_agent(struct api_client *c, const char *ua)
{
    free(c->user_agent);
    c->user_agent = xstrdup(ua);
}

const char *
api_client_server(const struct api_client *c)
{
    return c->server;
}

void
api_response_free(struct api_response *resp)
{
    if (!resp) {
        return;
    }
    free(resp->body);
    free(resp->content_type);
    memset(resp, 0, sizeof *resp);
}

/* --- transfer state shared by plain requests and watches --- */

struct xfer {
    struct api_client *c;
    struct dbuf body;   /* whole body (plain) or error body (watch) */
    char *content_type; /* from the headers */
    /* watch only */
    bool watch;                      /* split the body into events */
    struct dbuf line;                /* partial line */
    api_watch_cb cb;                 /* per-event callback */
    void *cb_arg;                    /* its argument */
    struct api_watch_options *wopts; /* resume state */
    int stop;              /* 1 = cb stopped; <0 = error; 0 = running */
    struct dpf_error *err; /* where event errors go */
};

static size_t
header_cb(char *buf, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * n;
    static const char ct[] = "content-type:";
    if (len > sizeof ct - 1 && !strncasecmp(buf, ct, sizeof ct - 1)) {
        const char *v = buf + sizeof ct - 1;
        size_t vl = len - (sizeof ct - 1);
        while (vl > 0 && (*v == ' ' || *v == '\t')) {
            v++, vl--;
        }
        while (vl > 0 &&
               (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ')) {
            vl--;
        }
        free(x->content_type);
        x->content_type = xstrndup(v, vl);
    }
    return len;
}

static enum api_event_type
event_type_parse(const char *s, bool *ok)
{
    static const char *const names[] = {"ADDED", "MODIFIED", "DELETED",
                                        "BOOKMARK", "ERROR"};
    *ok = true;
    for (size_t i = 0; s && i < ARRAY_SIZE(names); i++) {
        if (!strcmp(s, names[i])) {
            return (enum api_event_type) i;
        }
    }
    *ok = false;
    return API_EVENT_ERROR;
}

const char *
api_event_type_name(enum api_event_type t)
{
    switch (t) {
    case API_EVENT_ADDED:
        return "ADDED";
    case API_EVENT_MODIFIED:
        return "MODIFIED";
    case API_EVENT_DELETED:
        return "DELETED";
    case API_EVENT_BOOKMARK:
        return "BOOKMARK";
    case API_EVENT_ERROR:
        return "ERROR";
    }
    return "UNKNOWN";
}

static void
remember_rv(struct api_watch_options *o, const json_t *obj)
{
    const char *rv = json_string_value(
        json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
    json_t *rows = json_object_get(obj, "rows");
    if (json_is_array(rows)) { /* a Table: the rows' objects carry it */
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row)
        {
            const char *r = json_string_value(json_object_get(
                json_object_get(json_object_get(row, "object"), "metadata"),
                "resourceVersion"));
            if (r && *r) {
                rv = r;
            }
        }
    }
    if (rv && *rv) {
        snprintf(o->resource_version, sizeof o->resource_version, "%s", rv);
    }
}

/* Handle one complete line of a watch stream. */
static void
watch_line(struct xfer *x, const char *line, size_t len)
{
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ')) {
        len--;
    }
    if (len == 0 || x->stop) {
        return;
    }
    json_error_t jerr;
    json_t *ev = json_loadb(line, len, 0, &jerr);
    if (!ev) {
        dpf_error_set(x->err, 500, "InternalError",
                      "watch: bad event from server: %s", jerr.text);
        x->stop = -EPROTO;
        return;
    }
    bool ok;
    enum api_event_type t =
        event_type_parse(json_string_value(json_object_get(ev, "type")), &ok);
    json_t *obj = json_object_get(ev, "object");
    if (!ok || !json_is_object(obj)) {
        dpf_error_set(x->err, 500, "InternalError",
                      "watch: event without type/object");
        x->stop = -EPROTO;
    } else if (t == API_EVENT_ERROR) {
        long code = (long) json_integer_value(json_object_get(obj, "code"));
        char *txt = json_dumps(obj, JSON_COMPACT);
        int r =
            kube_status_to_error(code ? code : 500, txt, strlen(txt), x->err);
        free(txt);
        x->stop = r < 0 ? r : -EIO;
    } else {
        remember_rv(x->wopts, obj);
        int r = x->cb(x->cb_arg, t, obj);
        if (r != 0) {
            x->stop = r > 0 ? 1 : r;
        }
    }
    json_decref(ev);
}

static size_t
write_cb(char *buf, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * n;
    if (!x->watch) {
        dbuf_append(&x->body, buf, len);
        return len;
    }
    long status = 0;
    curl_easy_getinfo(x->c->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status / 100 != 2) { /* an error reply: keep it whole */
        dbuf_append(&x->body, buf, len);
        return len;
    }
    dbuf_append(&x->line, buf, len);
    size_t start = 0;
    for (size_t i = 0; i < x->line.len; i++) {
        if (x->line.data[i] == '\n') {
            watch_line(x, x->line.data + start, i - start);
            start = i + 1;
            if (x->stop) {
                return 0; /* abort the transfer */
            }
        }
    }
    if (start > 0) {
        memmove(x->line.data, x->line.data + start, x->line.len - start);
        x->line.len -= start;
        x->line.data[x->line.len] = '\0';
    }
    return len;
}

/* Configure the handle for one request; returns the header list to free. */
static struct curl_slist *
setup(struct api_client *c, const struct api_request *req, struct xfer *x,
      long timeout_ms)
{
    CURL *h = c->curl;
    curl_easy_reset(h); /* keeps live connections */
    char *url = req->query && *req->query
                    ? xasprintf("%s%s?%s", c->url_base, req->path, req->query)
                    : xasprintf("%s%s", c->url_base, req->path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    free(url);
    if (c->connect_to) {
        curl_easy_setopt(h, CURLOPT_CONNECT_TO, c->connect_to);
    }
    if (c->fresh_connect) {
        curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
        c->fresh_connect = false;
    }
    /* curl never follows redirects here (the default), so credentials
     * cannot be carried to another host */
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 30000L);
    c->errbuf[0] = '\0';

    /* TLS material: the same setup as the event-loop client's; a client
     * certificate from an exec plugin takes the static one's place. */
    struct kubeconfig tls = {.ca_pem = c->ca_pem,
                             .ca_len = c->ca_len,
                             .cert_pem = c->cert_pem,
                             .cert_len = c->cert_len,
                             .key_pem = c->key_pem,
                             .key_len = c->key_len,
                             .insecure_skip_tls_verify = c->insecure};
    if (c->exec_have && c->exec_cred.cert_pem) {
        tls.cert_pem = c->exec_cred.cert_pem;
        tls.cert_len = c->exec_cred.cert_len;
        tls.key_pem = c->exec_cred.key_pem;
        tls.key_len = c->exec_cred.key_len;
    }
    kubeconfig_curl_apply_tls(h, &tls);

    struct curl_slist *hdrs = NULL;
    char *accept =
        xasprintf("Accept: %s", req->accept ? req->accept : "application/json");
    hdrs = curl_slist_append(hdrs, accept);
    free(accept);
    const char *token = c->token;
    if (!token && c->exec_have) {
        token = c->exec_cred.token;
    }
    if (token && *token) {
        char *auth = xasprintf("Authorization: Bearer %s", token);
        hdrs = curl_slist_append(hdrs, auth);
        explicit_bzero(auth, strlen(auth));
        free(auth);
    } else if (c->username) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, c->username);
        curl_easy_setopt(h, CURLOPT_PASSWORD, c->password);
    }
    if (c->host_header) {
        hdrs = curl_slist_append(hdrs, c->host_header);
    }
    hdrs = curl_slist_append(hdrs, "Expect:");

    const char *m = req->method ? req->method : "GET";
    if (req->body) {
        char *ct = xasprintf("Content-Type: %s", req->content_type
                                                     ? req->content_type
                                                     : "application/json");
        hdrs = curl_slist_append(hdrs, ct);
        free(ct);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t) req->body_len);
        curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, req->body);
    }
    if (!strcmp(m, "GET")) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (!strcmp(m, "POST") && req->body) {
        /* POSTFIELDS already made it a POST */
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    return hdrs;
}

static int
transport_error(struct api_client *c, const struct api_request *req,
                CURLcode rc, struct dpf_error *err)
{
    const char *detail = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
    int r;
    switch (rc) {
    case CURLE_COULDNT_CONNECT:
        r = -ECONNREFUSED;
        break;
    case CURLE_OPERATION_TIMEDOUT:
        r = -ETIMEDOUT;
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        r = -EHOSTUNREACH;
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
        r = -EPROTO;
        break;
    default:
        r = -EIO;
        break;
    }
    dpf_error_set(err, r == -ETIMEDOUT ? 504 : 503, API_REASON_CLIENT,
                  "%s \"%s%s\": %s", req->method ? req->method : "GET",
                  c->server, req->path, detail);
    return r;
}

/* Free a header list, wiping it first: it may hold the bearer token. */
static void
headers_free(struct curl_slist *hdrs)
{
    for (struct curl_slist *p = hdrs; p; p = p->next) {
        explicit_bzero(p->data, strlen(p->data));
    }
    curl_slist_free_all(hdrs);
}

/* The credential for a request failed to come from the plugin. */
static int
credential_error(struct api_response *resp, int r)
{
    if (resp && !resp->body) {
        resp->body = xstrdup("");
    }
    return r;
}

int
api_client_request(struct api_client *c, const struct api_request *req,
                   struct api_response *resp, struct dpf_error *err)
{
    memset(resp, 0, sizeof *resp);
    for (int attempt = 0;; attempt++) {
        int r = exec_credential(c, false, err);
        if (r < 0) {
            return credential_error(resp, r);
        }
        struct xfer x = {.c = c};
        dbuf_init(&x.body);
        struct curl_slist *hdrs = setup(c, req, &x, c->timeout_ms);
        CURLcode rc = curl_easy_perform(c->curl);
        headers_free(hdrs);
        if (!x.body.data) {
            dbuf_append(&x.body, "", 0);
        }
        resp->body = dbuf_steal(&x.body, &resp->len);
        resp->content_type = x.content_type;
        if (rc != CURLE_OK) {
            return transport_error(c, req, rc, err);
        }
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &resp->status);
        if (resp->status == 401 && c->exec && attempt == 0) {
            /* client-go runs the plugin again after a 401 (for the next
             * request); we also repeat this request once with the new
             * credential */
            api_response_free(resp);
            r = exec_credential(c, true, err);
            if (r < 0) {
                return credential_error(resp, r);
            }
            continue;
        }
        return 0;
    }
}

/* --- Status decoding --- */

/* --- object verbs --- */

/* Send a request and decode a JSON reply into *out (may be NULL). */
static int
do_json(struct api_client *c, const struct api_request *req, json_t **out,
        struct dpf_error *err)
{
    struct api_response resp;
    if (out) {
        *out = NULL;
    }
    int r = api_client_request(c, req, &resp, err);
    if (r < 0) {
        api_response_free(&resp);
        return r;
    }
    r = kube_status_to_error(resp.status, resp.body, resp.len, err);
    if (r == 0 && out) {
        json_error_t jerr;
        *out = json_loadb(resp.body, resp.len, 0, &jerr);
        if (!*out) {
            dpf_error_set(err, 500, "InternalError",
                          "%s %s: reply is not JSON: %s", req->method,
                          req->path, jerr.text);
            r = -EPROTO;
        }
    }
    api_response_free(&resp);
    return r;
}

static void
query_add(struct dbuf *q, const char *key, const char *value)
{
    if (!value || !*value) {
        return;
    }
    char *e = kube_escape(value);
    dbuf_printf(q, "%s%s=%s", q->len ? "&" : "", key, e);
    free(e);
}

int
api_client_get(struct api_client *c, const struct kube_gvr *gvr, const char *ns,
               const char *name, json_t **out, struct dpf_error *err)
{
    char *path = kube_path(gvr, ns, name, NULL);
    struct api_request req = {.method = "GET", .path = path};
    int r = do_json(c, &req, out, err);
    free(path);
    return r;
}

int
api_client_list(struct api_client *c, const struct kube_gvr *gvr,
                const char *ns, const struct api_list_options *opts,
                json_t **out, struct dpf_error *err)
{
    static const struct api_list_options none;
    if (!opts) {
        opts = &none;
    }
    char *path = kube_path(gvr, ns, NULL, NULL);
    json_t *all = NULL;
    char *cont = NULL;
    int r;
    bool table = opts->accept && strstr(opts->accept, "as=Table");
    *out = NULL;
    for (;;) {
        struct dbuf q;
        dbuf_init(&q);
        query_add(&q, "labelSelector", opts->label_selector);
        query_add(&q, "fieldSelector", opts->field_selector);
        query_add(&q, "resourceVersion", opts->resource_version);
        if (opts->limit > 0) {
            dbuf_printf(&q, "%slimit=%ld", q.len ? "&" : "", opts->limit);
        }
        query_add(&q, "continue", cont);
        struct api_request req = {.method = "GET",
                                  .path = path,
                                  .query = q.data,
                                  .accept = opts->accept};
        json_t *page = NULL;
        r = do_json(c, &req, &page, err);
        dbuf_free(&q);
        if (r < 0) {
            break;
        }
        const char *next = json_string_value(
            json_object_get(json_object_get(page, "metadata"), "continue"));
        if (!all) {
            all = page;
        } else {
            json_array_extend(json_object_get(all, "items"),
                              json_object_get(page, "items"));
            json_object_set(all, "metadata", json_object_get(page, "metadata"));
            json_decref(page);
        }
        free(cont);
        cont = NULL;
        if (table || !next || !*next || opts->limit <= 0) {
            break;
        }
        cont = xstrdup(next);
    }
    free(cont);
    free(path);
    if (r < 0) {
        json_decref(all);
        return r;
    }
    json_t *md = json_object_get(all, "metadata");
    if (json_is_object(md)) {
        json_object_del(md, "continue");
    }
    if (!table && !json_is_array(json_object_get(all, "items"))) {
        json_object_set_new(all, "items", json_array());
    }
    *out = all;
    return 0;
}

static int
send_obj(struct api_client *c, const char *method, const char *path,
         const char *field_manager, const char *ctype, const json_t *obj,
         json_t **out, struct dpf_error *err)
{
    char *body = json_dumps(obj, JSON_COMPACT);
    struct dbuf q;
    dbuf_init(&q);
    query_add(&q, "fieldManager", field_manager);
    struct api_request req = {.method = method,
                              .path = path,
                              .query = q.data,
                              .content_type = ctype,
                              .body = body,
                              .body_len = strlen(body)};
    int r = do_json(c, &req, out, err);
    dbuf_free(&q);
    free(body);
    return r;
}

int
api_client_post(struct api_client *c, const struct kube_gvr *gvr,
                const char *ns, const json_t *obj, const char *field_manager,
                json_t **out, struct dpf_error *err)
{
    char *path = kube_path(gvr, ns, NULL, NULL);
    int r = send_obj(c, "POST", path, field_manager, NULL, obj, out, err);
    free(path);
    return r;
}

int
api_client_put(struct api_client *c, const struct kube_gvr *gvr, const char *ns,
               const json_t *obj, const char *subresource,
               const char *field_manager, json_t **out, struct dpf_error *err)
{
    const char *name = json_string_value(
        json_object_get(json_object_get(obj, "metadata"), "name"));
    if (!name || !*name) {
        dpf_error_set(err, 400, "BadRequest",
                      "%s: metadata.name is required for an update",
                      gvr->resource);
        return -EINVAL;
    }
    char *path = kube_path(gvr, ns, name, subresource);
    int r = send_obj(c, "PUT", path, field_manager, NULL, obj, out, err);
    free(path);
    return r;
}

int
api_client_patch(struct api_client *c, const struct kube_gvr *gvr,
                 const char *ns, const char *name, const char *subresource,
                 enum api_patch_type type, const json_t *patch,
                 const char *field_manager, json_t **out, struct dpf_error *err)
{
    char *path = kube_path(gvr, ns, name, subresource);
    int r = send_obj(c, "PATCH", path, field_manager,
                     type == API_PATCH_JSON ? "application/json-patch+json"
                                            : "application/merge-patch+json",
                     patch, out, err);
    free(path);
    return r;
}

int
api_client_delete(struct api_client *c, const struct kube_gvr *gvr,
                  const char *ns, const char *name, const char *propagation,
                  json_t **out, struct dpf_error *err)
{
    char *path = kube_path(gvr, ns, name, NULL);
    int r;
    if (propagation) {
        json_t *opts = json_pack("{s:s}", "propagationPolicy", propagation);
        r = send_obj(c, "DELETE", path, NULL, NULL, opts, out, err);
        json_decref(opts);
    } else {
        struct api_request req = {.method = "DELETE", .path = path};
        r = do_json(c, &req, out, err);
    }
    free(path);
    return r;
}

/* --- watch --- */

/* One watch request; *status gets the HTTP status (0 if none came). */
static int
watch_once(struct api_client *c, const struct api_request *req,
           struct api_watch_options *opts, long timeout_ms, api_watch_cb cb,
           void *arg, long *status, struct dpf_error *err)
{
    struct xfer x = {.c = c,
                     .watch = true,
                     .cb = cb,
                     .cb_arg = arg,
                     .wopts = opts,
                     .err = err};
    dbuf_init(&x.body);
    dbuf_init(&x.line);
    struct curl_slist *hdrs = setup(c, req, &x, timeout_ms);
    CURLcode rc = curl_easy_perform(c->curl);
    headers_free(hdrs);
    int r = 0;
    *status = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
    if (x.stop == 0 && rc == CURLE_OK && x.line.len > 0 && *status / 100 == 2) {
        /* a final event without its newline */
        watch_line(&x, x.line.data, x.line.len);
    }
    if (x.stop != 0) {
        r = x.stop;
    } else if (rc == CURLE_OPERATION_TIMEDOUT && opts->deadline_ms > 0) {
        dpf_error_set(err, 504, API_REASON_CLIENT, "watch %s: deadline reached",
                      req->path);
        r = -ETIMEDOUT;
    } else if (rc != CURLE_OK) {
        r = transport_error(c, req, rc, err);
    } else if (*status / 100 != 2) {
        r = kube_status_to_error(*status, x.body.data, x.body.len, err);
    }
    dbuf_free(&x.body);
    dbuf_free(&x.line);
    free(x.content_type);
    return r;
}

int
api_client_watch_path(struct api_client *c, const char *path,
                      struct api_watch_options *opts, api_watch_cb cb,
                      void *arg, struct dpf_error *err)
{
    struct dbuf q;
    dbuf_init(&q);
    dbuf_puts(&q, "watch=true");
    query_add(&q, "labelSelector", opts->label_selector);
    query_add(&q, "fieldSelector", opts->field_selector);
    query_add(&q, "resourceVersion", opts->resource_version);
    if (opts->allow_bookmarks) {
        dbuf_puts(&q, "&allowWatchBookmarks=true");
    }
    if (opts->timeout_seconds > 0) {
        dbuf_printf(&q, "&timeoutSeconds=%ld", opts->timeout_seconds);
    }
    long timeout_ms = 0;
    if (opts->deadline_ms > 0) {
        int64_t left = opts->deadline_ms - time_mono_ms();
        if (left <= 0) {
            dbuf_free(&q);
            dpf_error_set(err, 504, API_REASON_CLIENT, "watch deadline passed");
            return -ETIMEDOUT;
        }
        timeout_ms = (long) left;
    }
    struct api_request req = {
        .method = "GET", .path = path, .query = q.data, .accept = opts->accept};
    int r = 0;
    for (int attempt = 0;; attempt++) {
        long status = 0;
        r = exec_credential(c, false, err);
        if (r < 0) {
            break;
        }
        r = watch_once(c, &req, opts, timeout_ms, cb, arg, &status, err);
        if (r < 0 && status == 401 && c->exec && attempt == 0) {
            /* as in api_client_request(): new credential, one retry */
            if ((r = exec_credential(c, true, err)) < 0) {
                break;
            }
            continue;
        }
        break;
    }
    dbuf_free(&q);
    return r;
}

int
api_client_watch(struct api_client *c, const struct kube_gvr *gvr,
                 const char *ns, struct api_watch_options *opts,
                 api_watch_cb cb, void *arg, struct dpf_error *err)
{
    char *path = kube_path(gvr, ns, NULL, NULL);
    int r = api_client_watch_path(c, path, opts, cb, arg, err);
    free(path);
    return r;
}
