/* kubeconfig-curl: see kubeconfig-curl.h. */
#include "lib/kube/kubeconfig-curl.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/base/base64.h"
#include "lib/base/util.h"

struct kubeconfig_curl {
    struct kubeconfig *kc;         /* private copy; only the credential
                                      client-go would use is kept */
    char *url_base;                /* where requests go: server, or server
                                      with its host replaced by
                                      tls-server-name (see connect_to) */
    struct curl_slist *connect_to; /* tls-server-name: "name:port:host:port"
                                      (dial the real host, verify name) */
    char *host_header;             /* "Host: <server's authority>" then */
    struct kubeconfig_exec_options exec_opts; /* how to run the plugin */
    struct kubeconfig_credential cred;        /* its last credential */
    bool have_cred;                           /* cred holds one */
    bool fresh_connect;   /* client certificate rotated: do not reuse a
                           connection made with the old one */
    int exec_runs;        /* plugin runs that succeeded */
    char user_agent[160]; /* User-Agent value (longer ones are cut) */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void
curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* tls-server-name: see the header. */
static int
setup_server_name(struct kubeconfig_curl *k, const char *name,
                  struct dpf_error *err)
{
    const char *server = k->kc->server;
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *given_port = NULL, *url = NULL;
    int r = -EINVAL;
    if (!u || curl_url_set(u, CURLUPART_URL, server, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) !=
            CURLUE_OK) {
        dpf_error_set(err, 400, "BadRequest",
                      "server \"%s\": cannot parse the URL", server);
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
    k->url_base = xstrdup(url);
    char *ct = xasprintf("%s:%s:%s:%s", name, port, host, port);
    k->connect_to = curl_slist_append(NULL, ct);
    free(ct);
    k->host_header = explicit_port ? xasprintf("Host: %s:%s", host, given_port)
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

/* Refuse what must not be sent; 0 or -EINVAL with err. */
static int
check_credentials(const struct kubeconfig *kc, const char *what,
                  struct dpf_error *err)
{
    const char *fname = kc->path ? kc->path : "-";
    const char *uname = kc->user_name ? kc->user_name : "";
    const char *cname = kc->cluster_name ? kc->cluster_name : "";
    if (kc->insecure_skip_tls_verify && kc->ca_pem) {
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: cluster \"%s\": specifying a root "
                      "certificates file with the insecure flag is not "
                      "allowed",
                      fname, cname);
        return -EINVAL;
    }
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
        return -EINVAL;
    }
    if ((kc->token && kubeconfig_find_ctl(kc->token) >= 0) ||
        (kc->username && kubeconfig_find_ctl(kc->username) >= 0) ||
        (kc->password && kubeconfig_find_ctl(kc->password) >= 0)) {
        /* kubeconfig_parse() refuses these; a hand-made struct too */
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: user \"%s\": a credential contains a "
                      "control character; refusing to send it",
                      fname, uname);
        return -EINVAL;
    }
    return 0;
}

struct kubeconfig_curl *
kubeconfig_curl_create(const struct kubeconfig *kc, struct dpf_error *err)
{
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        dpf_error_set(err, 500, "InternalError", "curl_global_init: %s",
                      curl_easy_strerror(curl_init_rc));
        return NULL;
    }
    if (!kc || !kc->server || !*kc->server) {
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig names no server to talk to");
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
    if (check_credentials(kc, what, err) < 0) {
        return NULL;
    }
    struct kubeconfig_curl *k = xcalloc(1, sizeof *k);
    k->kc = kubeconfig_dup(kc);
    if (!use_exec) {
        kubeconfig_exec_free(k->kc->exec);
        k->kc->exec = NULL;
    }
    if (kc->tls_server_name && *kc->tls_server_name &&
        str_has_prefix(kc->server, "https://") &&
        setup_server_name(k, kc->tls_server_name, err) < 0) {
        kubeconfig_curl_destroy(k);
        return NULL;
    }
    if (!k->url_base) {
        k->url_base = xstrdup(kc->server);
    }
    /* a daemon never lends its stdin to a plugin; dpfctl says otherwise */
    k->exec_opts.stdin_unavailable = true;
    kubeconfig_curl_set_user_agent(k, "dpf/" DPF_VERSION);
    return k;
}

void
kubeconfig_curl_destroy(struct kubeconfig_curl *k)
{
    if (k) {
        kubeconfig_free(k->kc); /* wipes the secrets */
        kubeconfig_credential_clear(&k->cred);
        curl_slist_free_all(k->connect_to);
        free(k->host_header);
        free(k->url_base);
        free(k);
    }
}

void
kubeconfig_curl_set_user_agent(struct kubeconfig_curl *k, const char *ua)
{
    snprintf(k->user_agent, sizeof k->user_agent, "%s", ua);
}

void
kubeconfig_curl_set_exec_options(struct kubeconfig_curl *k,
                                 const struct kubeconfig_exec_options *o)
{
    k->exec_opts = *o;
}

const char *
kubeconfig_curl_server(const struct kubeconfig_curl *k)
{
    return k->kc->server;
}

bool
kubeconfig_curl_uses_exec(const struct kubeconfig_curl *k)
{
    return k->kc->exec != NULL;
}

int
kubeconfig_curl_exec_runs(const struct kubeconfig_curl *k)
{
    return k->exec_runs;
}

int
kubeconfig_curl_refresh(struct kubeconfig_curl *k, bool force,
                        struct dpf_error *err)
{
    if (!k->kc->exec) {
        return 0;
    }
    if (!force && k->have_cred &&
        (k->cred.expiry_ns == 0 || time_wall_ns() <= k->cred.expiry_ns)) {
        return 0;
    }
    struct kubeconfig_credential fresh;
    if (kubeconfig_exec_run(k->kc->exec, &k->exec_opts, &fresh, err) < 0) {
        return -EACCES;
    }
    bool cert_changed =
        k->have_cred &&
        (!k->cred.cert_pem != !fresh.cert_pem ||
         (fresh.cert_pem && strcmp(fresh.cert_pem, k->cred.cert_pem)));
    kubeconfig_credential_clear(&k->cred);
    k->cred = fresh;
    k->have_cred = true;
    k->exec_runs++;
    if (cert_changed) {
        k->fresh_connect = true; /* as client-go closes its connections */
    }
    return 0;
}

/* The TLS options: CA, verification, client certificate and key. */
static void
apply_tls(const struct kubeconfig_curl *k, CURL *h)
{
    const struct kubeconfig *kc = k->kc;
    if (kc->ca_pem) {
        struct curl_blob b = {kc->ca_pem, kc->ca_len, CURL_BLOB_COPY};
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
    }
    bool insecure = kc->insecure_skip_tls_verify;
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, insecure ? 0L : 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, insecure ? 0L : 2L);
    /* a client certificate from the plugin takes the static one's place */
    bool plugin = k->have_cred && k->cred.cert_pem;
    const char *cert = plugin ? k->cred.cert_pem : kc->cert_pem;
    const char *key = plugin ? k->cred.key_pem : kc->key_pem;
    if (cert && key) {
        struct curl_blob cb = {(void *) cert,
                               plugin ? k->cred.cert_len : kc->cert_len,
                               CURL_BLOB_COPY};
        struct curl_blob kb = {(void *) key,
                               plugin ? k->cred.key_len : kc->key_len,
                               CURL_BLOB_COPY};
        curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cb);
        curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &kb);
        curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    }
}

/* Append "Name: value" to a header list. */
static struct curl_slist *
header_add(struct curl_slist *hdrs, const char *name, const char *value)
{
    char *line = xasprintf("%s: %s", name, value);
    hdrs = curl_slist_append(hdrs, line);
    explicit_bzero(line, strlen(line));
    free(line);
    return hdrs;
}

/* The credential's header, or basic auth on the handle. */
static struct curl_slist *
apply_auth(const struct kubeconfig_curl *k, CURL *h, struct curl_slist *hdrs)
{
    const struct kubeconfig *kc = k->kc;
    const char *token = kc->token && *kc->token ? kc->token : NULL;
    if (!token && k->have_cred && k->cred.token && *k->cred.token) {
        token = k->cred.token;
    }
    if (token) {
        char *v = xasprintf("Bearer %s", token);
        hdrs = header_add(hdrs, "Authorization", v);
        explicit_bzero(v, strlen(v));
        free(v);
    } else if (kc->username || kc->password) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long) CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, kc->username ? kc->username : "");
        curl_easy_setopt(h, CURLOPT_PASSWORD, kc->password ? kc->password : "");
    }
    return hdrs;
}

struct curl_slist *
kubeconfig_curl_setup(struct kubeconfig_curl *k, CURL *h,
                      const struct kube_request *req, char *errbuf)
{
    curl_easy_reset(h); /* keeps live connections */
    char *url = req->query && *req->query
                    ? xasprintf("%s%s?%s", k->url_base, req->path, req->query)
                    : xasprintf("%s%s", k->url_base, req->path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    free(url);
    if (k->connect_to) {
        curl_easy_setopt(h, CURLOPT_CONNECT_TO, k->connect_to);
    }
    if (k->kc->unix_socket) {
        curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, k->kc->unix_socket);
    }
    if (k->fresh_connect) {
        curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
        k->fresh_connect = false;
    }
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    errbuf[0] = '\0';
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, k->user_agent);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                     req->timeout_ms > 0 ? req->timeout_ms : 0L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 30000L);
    apply_tls(k, h);

    struct curl_slist *hdrs = header_add(
        NULL, "Accept", req->accept ? req->accept : "application/json");
    hdrs = apply_auth(k, h, hdrs);
    if (k->host_header) {
        hdrs = curl_slist_append(hdrs, k->host_header);
    }
    hdrs = curl_slist_append(hdrs, "Expect:");
    const char *m = req->method ? req->method : "GET";
    if (req->body) {
        hdrs = header_add(hdrs, "Content-Type",
                          req->content_type ? req->content_type
                                            : "application/json");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t) req->body_len);
        curl_easy_setopt(h, CURLOPT_COPYPOSTFIELDS, req->body);
    }
    if (!strcmp(m, "GET")) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (!(strcmp(m, "POST") == 0 && req->body)) {
        /* (a POST with a body is one already) */
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    return hdrs;
}

/* The server's authority ("host:port", as the URL gives it) and path
 * prefix ("" or "/prefix") of url_base. 0 or -EINVAL. */
static int
url_parts(const char *url, char **authority, char **prefix)
{
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *path = NULL;
    int r = -EINVAL;
    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
        bool explicit_port =
            curl_url_get(u, CURLUPART_PORT, &port, 0) == CURLUE_OK;
        *authority =
            explicit_port ? xasprintf("%s:%s", host, port) : xstrdup(host);
        if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
            path = NULL;
        }
        size_t n = path ? strlen(path) : 0;
        while (n > 0 && path[n - 1] == '/') {
            n--;
        }
        *prefix = xstrndup(path ? path : "", n);
        r = 0;
    }
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_url_cleanup(u);
    return r;
}

char *
kubeconfig_curl_setup_raw(struct kubeconfig_curl *k, CURL *h,
                          const struct kube_request *req, char *errbuf)
{
    struct curl_slist *hdrs = kubeconfig_curl_setup(k, h, req, errbuf);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
    char *authority = NULL, *prefix = NULL;
    if (url_parts(k->url_base, &authority, &prefix) < 0) {
        authority = xstrdup("localhost");
        prefix = xstrdup("");
    }
    struct dbuf b;
    dbuf_init(&b);
    dbuf_printf(&b, "%s %s%s%s%s HTTP/1.1\r\n",
                req->method ? req->method : "GET", prefix, req->path,
                req->query && *req->query ? "?" : "",
                req->query ? req->query : "");
    if (!k->host_header) {
        dbuf_printf(&b, "Host: %s\r\n", authority);
    }
    dbuf_printf(&b, "User-Agent: %s\r\n", k->user_agent);
    bool have_auth = false;
    for (struct curl_slist *p = hdrs; p; p = p->next) {
        /* "Name:" alone is curl's "remove this header" */
        const char *colon = strchr(p->data, ':');
        if (!colon || !colon[1]) {
            continue;
        }
        have_auth |= !strncasecmp(p->data, "Authorization:", 14);
        dbuf_printf(&b, "%s\r\n", p->data);
    }
    kubeconfig_curl_headers_free(hdrs);
    const struct kubeconfig *kc = k->kc;
    if (!have_auth && (kc->username || kc->password)) {
        char *pair = xasprintf("%s:%s", kc->username ? kc->username : "",
                               kc->password ? kc->password : "");
        char *enc = base64_encode(pair, strlen(pair), BASE64_STD);
        dbuf_printf(&b, "Authorization: Basic %s\r\n", enc);
        explicit_bzero(pair, strlen(pair));
        explicit_bzero(enc, strlen(enc));
        free(pair);
        free(enc);
    }
    free(authority);
    free(prefix);
    size_t len = 0;
    char *head = dbuf_steal(&b, &len);
    return head;
}

void
kubeconfig_curl_headers_free(struct curl_slist *hdrs)
{
    for (struct curl_slist *p = hdrs; p; p = p->next) {
        explicit_bzero(p->data, strlen(p->data));
    }
    curl_slist_free_all(hdrs);
}

int
kubeconfig_curl_error(const struct kubeconfig_curl *k, CURLcode rc,
                      const char *errbuf, const char *method, const char *path,
                      struct dpf_error *err)
{
    const char *detail = errbuf && errbuf[0] ? errbuf : curl_easy_strerror(rc);
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
    dpf_error_set(err, r == -ETIMEDOUT ? 504 : 503, KUBE_REASON_CLIENT,
                  "%s \"%s%s\": %s", method ? method : "GET", k->kc->server,
                  path, detail);
    return r;
}
