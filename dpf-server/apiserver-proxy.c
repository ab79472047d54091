/* apiserver-proxy: pods/log, pods/exec and pods/attach, served by the node
 * agent of the pod's node and proxied here, as kube-apiserver does.
 *
 * The gate has authenticated and authorized the request (get pods/log;
 * create pods/exec and pods/attach whatever the method, see rbac.c). Here:
 * the pod must exist, be bound to a node and have the container; the node
 * must name an address (InternalIP, else ExternalIP, else Hostname) and
 * its agent's port (status.daemonEndpoints.kubeletEndpoint.Port, else
 * 10250). Then dpf-server opens HTTPS to the agent with its own client
 * certificate (CN kube-apiserver-kubelet-client, O system:masters) and:
 *
 *  - log: GET /containerLogs/<ns>/<pod>/<container>?<options>; the answer
 *    streams back (a worker thread per stream, paused while the client
 *    has API_PROXY_HIGH_WATER unsent);
 *  - exec, attach: the client's upgrade request (WebSocket or SPDY: the
 *    protocol headers go through as they are) goes to /exec/... or
 *    /attach/...; when the agent answers 101, the client gets the same
 *    101 and the two connections are spliced byte for byte (a thread per
 *    stream, a bounded buffer each way), so any stream protocol the agent
 *    and the client agree on works. An answer other than 101 goes back to
 *    the client as it is.
 *
 * Limits: at most kubelet_max_streams proxied streams at once (429
 * beyond), API_PROXY_CONNECT_S to connect and get the agent's answer
 * head, which happens in the HTTP worker thread, at most
 * API_PROXY_MAX_DIALING requests at once (429 beyond); an upgraded stream
 * idle in both directions for API_PROXY_IDLE_S is ended. */
#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "dpf-server/apiserver-private.h"
#include "lib/base/log.h"
#include "lib/base/thread.h"
#include "lib/base/util.h"
#include "lib/net/http-server.h"

LOG_MODULE(apiserver);

#define API_PROXY_DEFAULT_STREAMS 256
#define API_PROXY_CONNECT_S 10
#define API_PROXY_IDLE_S (4 * 3600)
#define API_PROXY_HIGH_WATER (1u << 20)
#define API_PROXY_STREAM_BUDGET (4u << 20)
#define API_PROXY_MAX_HEAD (16u * 1024)
#define API_PROXY_MAX_ERROR_BODY (64u * 1024)
#define API_PROXY_SPLICE_BUF (64u * 1024)
#define API_PROXY_DEFAULT_PORT 10250
/* Requests that may wait at once on a node agent's answer head in an HTTP
 * worker thread (the rest get 429): a dead node must not take every
 * worker for the connect timeout. */
#define API_PROXY_MAX_DIALING 2

static pthread_once_t proxy_curl_once = PTHREAD_ONCE_INIT;

static void
proxy_curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* "The client went away", shared with the stream's on_close, which may
 * run after the proxy is freed: the last reference frees it. */
struct proxy_gone {
    atomic_int refs;
    atomic_bool gone;
};

static void
gone_unref(struct proxy_gone *g)
{
    if (g && atomic_fetch_sub(&g->refs, 1) == 1) {
        free(g);
    }
}

/* One proxied stream. */
struct proxy {
    struct apiserver *as;
    CURL *easy;
    CURLM *multi;
    char *url;  /* for errors and logs */
    char *node; /* node name */
    /* log */
    int status;       /* the agent's answer status */
    bool head_done;   /* its head is in */
    char *ctype;      /* its Content-Type */
    struct dbuf body; /* body bytes not yet written to the client */
    struct http_stream *stream;
    struct proxy_gone *gone; /* the client went away */
    bool paused;             /* the transfer waits for the client */
    /* upgrade */
    curl_socket_t sock; /* the agent's connection */
    char *early;        /* bytes of the agent after its 101 head */
    size_t early_len;
    struct http_upgrade *up;
};

static void
proxy_free(struct proxy *p)
{
    if (p->multi) {
        if (p->easy) {
            curl_multi_remove_handle(p->multi, p->easy);
        }
        curl_multi_cleanup(p->multi);
    }
    if (p->easy) {
        curl_easy_cleanup(p->easy);
    }
    free(p->url);
    free(p->node);
    free(p->ctype);
    free(p->early);
    dbuf_free(&p->body);
    gone_unref(p->gone);
    free(p);
}

static void
proxy_release(struct apiserver *as)
{
    atomic_fetch_sub(&as->proxy_streams, 1);
}

/* ------------------------------------------------------------------ */
/* checks                                                             */

static void proxy_error(struct http_request *req, int code, const char *reason,
                        const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
proxy_error(struct http_request *req, int code, const char *reason,
            const char *fmt, ...)
{
    struct as_error ae = {0};
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    as_error_set(&ae, code, reason, "%s", msg);
    free(msg);
    as_respond_error(req, &ae);
}

/* Read one object of the core group; NULL when absent (answered). */
static json_t *
proxy_get(struct apiserver *as, struct http_request *req, const char *plural,
          const char *ns, const char *name)
{
    const struct schema_kind *k = schema_find_resource("", "v1", plural);
    char *key = as_key(k, ns, name);
    struct store_kv kv = {0};
    struct dpf_error e = {0};
    int r = store_get(as->store, key, &kv, &e);
    free(key);
    struct as_error ae = {0};
    if (r == -ENOENT) {
        as_error_not_found(&ae, k, name);
        as_respond_error(req, &ae);
        return NULL;
    }
    if (r < 0) {
        as_error_from(&ae, &e, 500, "InternalError");
        as_respond_error(req, &ae);
        return NULL;
    }
    json_t *obj = as_load_object(kv.value, kv.len, kv.rv);
    store_kv_free(&kv);
    if (!obj) {
        proxy_error(req, 500, "InternalError", "%s \"%s\" cannot be read",
                    plural, name);
    }
    return obj;
}

static bool
containers_have(const json_t *list, const char *name)
{
    size_t i;
    const json_t *c;
    json_array_foreach(list, i, c)
    {
        const char *n = json_string_value(json_object_get(c, "name"));
        if (n && !strcmp(n, name)) {
            return true;
        }
    }
    return false;
}

/* The container the request is for (borrowed from pod or req); NULL when
 * answered with 400, as kube-apiserver words it. */
static const char *
proxy_container(struct http_request *req, const json_t *pod, const char *name)
{
    const json_t *spec = json_object_get(pod, "spec");
    const json_t *cs = json_object_get(spec, "containers");
    const char *c = http_request_query(req, "container");
    if (!c || !*c) {
        if (json_array_size(cs) == 1) {
            return json_string_value(
                json_object_get(json_array_get(cs, 0), "name"));
        }
        struct dbuf b;
        dbuf_init(&b);
        size_t i;
        const json_t *x;
        json_array_foreach(cs, i, x)
        {
            dbuf_printf(&b, "%s%s", i ? " " : "",
                        json_string_value(json_object_get(x, "name")));
        }
        proxy_error(req, 400, "BadRequest",
                    "a container name must be specified for pod %s, choose "
                    "one of: [%s]",
                    name, b.data ? b.data : "");
        dbuf_free(&b);
        return NULL;
    }
    if (containers_have(cs, c) ||
        containers_have(json_object_get(spec, "initContainers"), c) ||
        containers_have(json_object_get(spec, "ephemeralContainers"), c)) {
        return c;
    }
    proxy_error(req, 400, "BadRequest", "container %s is not valid for pod %s",
                c, name);
    return NULL;
}

/* "https://<address>:<port>" of the node's agent (new string); NULL when
 * answered. */
static char *
proxy_node_base(struct apiserver *as, struct http_request *req,
                const char *node_name)
{
    json_t *node = proxy_get(as, req, "nodes", NULL, node_name);
    if (!node) {
        return NULL;
    }
    const json_t *st = json_object_get(node, "status");
    const json_t *addrs = json_object_get(st, "addresses");
    static const char *const prefer[] = {"InternalIP", "ExternalIP",
                                         "Hostname"};
    const char *addr = NULL;
    for (size_t p = 0; p < ARRAY_SIZE(prefer) && !addr; p++) {
        size_t i;
        const json_t *a;
        json_array_foreach(addrs, i, a)
        {
            const char *t = json_string_value(json_object_get(a, "type"));
            const char *v = json_string_value(json_object_get(a, "address"));
            if (t && v && *v && !strcmp(t, prefer[p])) {
                addr = v;
                break;
            }
        }
    }
    if (!addr) {
        char *known = json_dumps(addrs ? addrs : json_array(), JSON_COMPACT);
        proxy_error(req, 500, "InternalError",
                    "node \"%s\" has no address to reach its node agent "
                    "(status.addresses has no InternalIP, ExternalIP or "
                    "Hostname): no preferred addresses found; known "
                    "addresses: %s",
                    node_name, known ? known : "[]");
        free(known);
        json_decref(node);
        return NULL;
    }
    json_int_t port = json_integer_value(
        json_object_get(json_object_get(json_object_get(st, "daemonEndpoints"),
                                        "kubeletEndpoint"),
                        "Port"));
    if (port <= 0 || port > 65535) {
        port = API_PROXY_DEFAULT_PORT;
    }
    bool v6 = strchr(addr, ':') != NULL;
    char *base = xasprintf("https://%s%s%s:%d", v6 ? "[" : "", addr,
                           v6 ? "]" : "", (int) port);
    json_decref(node);
    return base;
}

/* The easy handle with the TLS client settings. */
static CURL *
proxy_easy(struct apiserver *as, const char *url)
{
    pthread_once(&proxy_curl_once, proxy_curl_init);
    CURL *e = curl_easy_init();
    if (!e) {
        return NULL;
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, (long) API_PROXY_CONNECT_S);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "dpf-server");
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
    if (as->cfg.kubelet_client_cert && as->cfg.kubelet_client_key) {
        curl_easy_setopt(e, CURLOPT_SSLCERT, as->cfg.kubelet_client_cert);
        curl_easy_setopt(e, CURLOPT_SSLKEY, as->cfg.kubelet_client_key);
    }
    if (as->cfg.kubelet_ca) {
        curl_easy_setopt(e, CURLOPT_CAINFO, as->cfg.kubelet_ca);
        /* Agents' serving certificates name their IP addresses. */
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    } else {
        /* As kube-apiserver without --kubelet-certificate-authority. */
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    return e;
}

/* Append "&name=value" (escaped) for a query parameter the request has,
 * every value of it. */
static void
query_copy(CURL *e, struct http_request *req, struct dbuf *q, const char *name,
           const char *as_name)
{
    const char *vals[256];
    size_t n = http_request_query_values(req, name, vals, ARRAY_SIZE(vals));
    for (size_t i = 0; i < n && i < ARRAY_SIZE(vals); i++) {
        char *v = curl_easy_escape(e, vals[i], 0);
        dbuf_printf(q, "%s%s=%s", q->len ? "&" : "?", as_name ? as_name : name,
                    v ? v : "");
        curl_free(v);
    }
}

/* The agent could not be reached: 500 as kube-apiserver, naming it. */
static void
proxy_dial_error(struct http_request *req, const struct proxy *p,
                 const char *what)
{
    proxy_error(req, 500, "InternalError",
                "error dialing the node agent of node \"%s\" (%s): %s", p->node,
                p->url, what);
}

/* Answer with what the agent said when it did not say 200/101: its
 * Status as it is, other text inside a Status of its code. */
static void
proxy_relay_error(struct http_request *req, const struct proxy *p, int status,
                  const char *body, size_t len)
{
    json_t *j = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    const char *kind = json_string_value(json_object_get(j, "kind"));
    if (kind && !strcmp(kind, "Status")) {
        json_object_set_new(j, "code", json_integer(status));
        char *text = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        http_respond_take(req, status, "application/json", text, strlen(text));
        return;
    }
    json_decref(j);
    char *msg = xstrndup(body ? body : "", len > 1024 ? 1024 : len);
    size_t ml = strlen(msg);
    while (ml && (msg[ml - 1] == '\n' || msg[ml - 1] == '\r')) {
        msg[--ml] = '\0';
    }
    proxy_error(
        req, status >= 400 ? status : 502, status >= 400 ? NULL : "BadGateway",
        "the node agent of node \"%s\" answered %d: %s", p->node, status, msg);
    free(msg);
}

/* ------------------------------------------------------------------ */
/* pods/log                                                           */

static size_t
log_header_cb(char *data, size_t size, size_t n, void *arg)
{
    struct proxy *p = arg;
    size_t len = size * n;
    if (len >= 5 && !strncmp(data, "HTTP/", 5)) {
        const char *sp = memchr(data, ' ', len);
        p->status = sp ? atoi(sp + 1) : 0;
        p->head_done = false;
        free(p->ctype);
        p->ctype = NULL;
    } else if (len >= 13 && !strncasecmp(data, "Content-Type:", 13)) {
        const char *v = data + 13;
        size_t vl = len - 13;
        while (vl && (*v == ' ' || *v == '\t')) {
            v++;
            vl--;
        }
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n')) {
            vl--;
        }
        free(p->ctype);
        p->ctype = xstrndup(v, vl);
    } else if ((len == 2 && data[0] == '\r') || (len == 1 && data[0] == '\n')) {
        if (p->status >= 200) {
            p->head_done = true;
        }
    }
    return len;
}

static size_t
log_write_cb(char *data, size_t size, size_t n, void *arg)
{
    struct proxy *p = arg;
    size_t len = size * n;
    if (atomic_load(&p->gone->gone)) {
        return 0; /* ends the transfer */
    }
    if (!p->stream) {
        /* Still in the handler: keep (an error body is bounded). */
        if (p->status != 200 && p->body.len + len > API_PROXY_MAX_ERROR_BODY) {
            return 0;
        }
        dbuf_append(&p->body, data, len);
        return len;
    }
    if (http_stream_queued(p->stream) > API_PROXY_HIGH_WATER) {
        p->paused = true;
        return CURL_WRITEFUNC_PAUSE;
    }
    if (http_stream_write(p->stream, data, len) < 0) {
        atomic_store(&p->gone->gone, true);
        return 0;
    }
    return len;
}

static void
log_client_gone(void *arg)
{
    struct proxy_gone *g = arg;
    atomic_store(&g->gone, true);
    gone_unref(g);
}

/* Drive the transfer until cond or its end or the deadline. Returns 1
 * when the transfer ended (*rc its result), 0 when cond holds. */
static int
log_drive(struct proxy *p, bool (*cond)(struct proxy *), int64_t deadline_ms,
          CURLcode *rc)
{
    for (;;) {
        int running = 0;
        curl_multi_perform(p->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(p->multi, &left)) != NULL) {
            if (m->msg == CURLMSG_DONE) {
                *rc = m->data.result;
                return 1;
            }
        }
        if (!running) {
            *rc = CURLE_OK;
            return 1;
        }
        if (cond && cond(p)) {
            return 0;
        }
        if (deadline_ms && time_mono_ms() > deadline_ms) {
            *rc = CURLE_OPERATION_TIMEDOUT;
            return 1;
        }
        if (atomic_load(&p->gone->gone)) {
            *rc = CURLE_WRITE_ERROR;
            return 1;
        }
        if (p->paused && p->stream &&
            http_stream_queued(p->stream) < API_PROXY_HIGH_WATER / 2) {
            p->paused = false;
            curl_easy_pause(p->easy, CURLPAUSE_CONT);
            continue;
        }
        curl_multi_poll(p->multi, NULL, 0, p->paused ? 20 : 200, NULL);
    }
}

static bool
log_head_in(struct proxy *p)
{
    return p->head_done;
}

static void *
log_thread(void *arg)
{
    struct proxy *p = arg;
    struct apiserver *as = p->as;
    CURLcode rc;
    log_drive(p, NULL, 0, &rc);
    if (rc != CURLE_OK && !atomic_load(&p->gone->gone)) {
        log_info("log stream from the node agent ended", "node=%s error=\"%s\"",
                 p->node, curl_easy_strerror(rc));
    }
    http_stream_close(p->stream);
    proxy_free(p);
    proxy_release(as);
    return NULL;
}

/* Returns true when a thread took p. */
static bool
proxy_log(struct apiserver *as, struct http_request *req, struct proxy *p,
          const char *base, const char *ns, const char *name,
          const char *container)
{
    CURL *e = proxy_easy(as, base);
    if (!e) {
        proxy_error(req, 500, "InternalError", "cannot create a client");
        return false;
    }
    char *ens = curl_easy_escape(e, ns, 0), *en = curl_easy_escape(e, name, 0),
         *ec = curl_easy_escape(e, container, 0);
    struct dbuf q;
    dbuf_init(&q);
    static const char *const opts[] = {
        "follow",    "previous",   "tailLines", "sinceSeconds",
        "sinceTime", "timestamps", "limitBytes"};
    for (size_t i = 0; i < ARRAY_SIZE(opts); i++) {
        query_copy(e, req, &q, opts[i], NULL);
    }
    p->url = xasprintf("%s/containerLogs/%s/%s/%s%s", base, ens, en, ec,
                       q.data ? q.data : "");
    curl_free(ens);
    curl_free(en);
    curl_free(ec);
    dbuf_free(&q);
    p->easy = e;
    curl_easy_setopt(e, CURLOPT_URL, p->url);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, log_header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, p);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, log_write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, p);
    p->multi = curl_multi_init();
    curl_multi_add_handle(p->multi, e);
    CURLcode rc;
    int64_t deadline = time_mono_ms() + 1000LL * API_PROXY_CONNECT_S;
    int ended = log_drive(p, log_head_in, deadline, &rc);
    if (ended && !p->head_done) {
        proxy_dial_error(req, p, curl_easy_strerror(rc));
        return false;
    }
    if (p->status != 200) {
        if (!ended) {
            log_drive(p, NULL, deadline, &rc);
        }
        proxy_relay_error(req, p, p->status, p->body.data, p->body.len);
        return false;
    }
    atomic_fetch_add(&p->gone->refs, 1); /* the stream's on_close */
    p->stream = http_respond_stream(
        req, 200, p->ctype ? p->ctype : "text/plain", log_client_gone, p->gone);
    http_stream_set_budget(p->stream, API_PROXY_STREAM_BUDGET, NULL);
    if (p->body.len) {
        http_stream_write(p->stream, p->body.data, p->body.len);
        p->body.len = 0;
    }
    if (ended) {
        http_stream_close(p->stream);
        p->stream = NULL;
        return false;
    }
    pthread_t t;
    atomic_fetch_add(&as->proxy_streams, 1);
    if (thread_start(&t, NULL, "proxy-log", log_thread, p) < 0) {
        proxy_release(as);
        http_stream_close(p->stream);
        p->stream = NULL;
        return false;
    }
    pthread_detach(t);
    return true;
}

/* ------------------------------------------------------------------ */
/* pods/exec, pods/attach                                             */

/* Wait for the agent's socket; false at the deadline. */
static bool
sock_wait(curl_socket_t s, short events, int64_t deadline_ms)
{
    int64_t left = deadline_ms - time_mono_ms();
    if (left <= 0) {
        return false;
    }
    struct pollfd pfd = {.fd = s, .events = events};
    return poll(&pfd, 1, (int) left) > 0;
}

static bool
agent_send_all(struct proxy *p, const char *buf, size_t len,
               int64_t deadline_ms)
{
    size_t off = 0;
    while (off < len) {
        size_t sent = 0;
        CURLcode rc = curl_easy_send(p->easy, buf + off, len - off, &sent);
        if (rc == CURLE_OK) {
            off += sent;
        } else if (rc != CURLE_AGAIN ||
                   !sock_wait(p->sock, POLLOUT, deadline_ms)) {
            return false;
        }
    }
    return true;
}

struct splice_dir {
    char buf[API_PROXY_SPLICE_BUF];
    size_t len, off; /* buffered bytes, of which sent */
    bool eof;        /* the source ended */
};

/* Move bytes between the client (upgraded socket) and the agent (curl)
 * until either side ends. */
static void *
splice_thread(void *arg)
{
    struct proxy *p = arg;
    struct apiserver *as = p->as;
    int cfd = http_upgrade_fd(p->up);
    struct splice_dir *to_agent = xcalloc(1, sizeof(*to_agent));
    struct splice_dir *to_client = xcalloc(1, sizeof(*to_client));
    size_t extra_len;
    const char *extra = http_upgrade_extra(p->up, &extra_len);
    /* What each side sent before the splice began. */
    if (extra_len && extra_len <= sizeof to_agent->buf) {
        memcpy(to_agent->buf, extra, extra_len);
        to_agent->len = extra_len;
    }
    if (p->early_len && p->early_len <= sizeof to_client->buf) {
        memcpy(to_client->buf, p->early, p->early_len);
        to_client->len = p->early_len;
    }
    int64_t last = time_mono_ms();
    for (;;) {
        bool progress = false;
        /* agent -> buffer (drain what TLS holds, then wait on the fd) */
        while (!to_client->eof && to_client->len < sizeof to_client->buf) {
            size_t got = 0;
            CURLcode rc =
                curl_easy_recv(p->easy, to_client->buf + to_client->len,
                               sizeof to_client->buf - to_client->len, &got);
            if (rc == CURLE_AGAIN) {
                break;
            }
            if (rc != CURLE_OK || got == 0) {
                to_client->eof = true;
                break;
            }
            to_client->len += got;
            progress = true;
        }
        /* buffer -> client */
        while (to_client->off < to_client->len) {
            ssize_t w = send(cfd, to_client->buf + to_client->off,
                             to_client->len - to_client->off,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0) {
                to_client->off += (size_t) w;
                progress = true;
            } else {
                if (w < 0 && errno != EAGAIN && errno != EINTR) {
                    to_agent->eof = to_client->eof = true;
                    to_client->off = to_client->len;
                }
                break;
            }
        }
        if (to_client->off == to_client->len) {
            to_client->off = to_client->len = 0;
        }
        /* client -> buffer */
        while (!to_agent->eof && to_agent->len < sizeof to_agent->buf) {
            ssize_t got =
                recv(cfd, to_agent->buf + to_agent->len,
                     sizeof to_agent->buf - to_agent->len, MSG_DONTWAIT);
            if (got < 0 && (errno == EAGAIN || errno == EINTR)) {
                break;
            }
            if (got <= 0) {
                to_agent->eof = true;
                break;
            }
            to_agent->len += (size_t) got;
            progress = true;
        }
        /* buffer -> agent */
        while (to_agent->off < to_agent->len) {
            size_t sent = 0;
            CURLcode rc = curl_easy_send(p->easy, to_agent->buf + to_agent->off,
                                         to_agent->len - to_agent->off, &sent);
            if (rc == CURLE_OK && sent > 0) {
                to_agent->off += sent;
                progress = true;
            } else {
                if (rc != CURLE_AGAIN) {
                    to_agent->eof = to_client->eof = true;
                    to_agent->off = to_agent->len;
                }
                break;
            }
        }
        if (to_agent->off == to_agent->len) {
            to_agent->off = to_agent->len = 0;
        }
        /* Either side's end ends the stream once what it sent is out. */
        if ((to_client->eof && to_client->len == 0) ||
            (to_agent->eof && to_agent->len == 0)) {
            break;
        }
        if (progress) {
            last = time_mono_ms();
            continue;
        }
        if (time_mono_ms() - last > 1000LL * API_PROXY_IDLE_S) {
            log_info("proxied stream idle: ended", "node=%s", p->node);
            break;
        }
        struct pollfd pf[2] = {
            {.fd = cfd,
             .events = (short) ((to_agent->eof ||
                                 to_agent->len == sizeof to_agent->buf)
                                    ? 0
                                    : POLLIN) |
                       (to_client->len ? POLLOUT : 0)},
            {.fd = p->sock,
             .events = (short) ((to_client->eof ||
                                 to_client->len == sizeof to_client->buf)
                                    ? 0
                                    : POLLIN) |
                       (to_agent->len ? POLLOUT : 0)},
        };
        poll(pf, 2, 1000);
    }
    if (to_client->eof && !to_agent->eof) {
        /* The agent ended (after its last bytes, a WebSocket close
         * frame): let the client read everything and hang up first. */
        http_upgrade_linger(p->up, 5000);
    }
    free(to_agent);
    free(to_client);
    http_upgrade_close(p->up);
    p->up = NULL;
    proxy_free(p);
    proxy_release(as);
    return NULL;
}

static void
proxy_upgraded(void *arg, struct http_upgrade *up)
{
    struct proxy *p = arg;
    struct apiserver *as = p->as;
    if (!up) {
        proxy_free(p);
        proxy_release(as);
        return;
    }
    p->up = up;
    pthread_t t;
    if (thread_start(&t, NULL, "proxy-stream", splice_thread, p) < 0) {
        http_upgrade_close(up);
        proxy_free(p);
        proxy_release(as);
        return;
    }
    pthread_detach(t);
}

/* Copy the request's values of a header into the agent request. */
static void
head_copy(struct http_request *req, struct dbuf *h, const char *name)
{
    const char *vals[16];
    size_t n = http_request_header_values(req, name, vals, ARRAY_SIZE(vals));
    for (size_t i = 0; i < n && i < ARRAY_SIZE(vals); i++) {
        if (!strpbrk(vals[i], "\r\n")) {
            dbuf_printf(h, "%s: %s\r\n", name, vals[i]);
        }
    }
}

/* The value of header name in the response head (new string) or NULL;
 * every value when all (for repeated headers), one per call with *from. */
static char *
head_value(const char *head, const char *name, const char **from)
{
    size_t nl = strlen(name);
    const char *line = *from ? *from : strstr(head, "\r\n");
    while (line && line[0] == '\r' && line[1] == '\n') {
        line += 2;
        if (line[0] == '\r') {
            break;
        }
        const char *end = strstr(line, "\r\n");
        if (!end) {
            break;
        }
        if ((size_t) (end - line) > nl && line[nl] == ':' &&
            !strncasecmp(line, name, nl)) {
            const char *v = line + nl + 1;
            while (*v == ' ' || *v == '\t') {
                v++;
            }
            *from = end;
            return xstrndup(v, (size_t) (end - v));
        }
        line = end;
    }
    *from = NULL;
    return NULL;
}

/* Returns true when the upgrade took p. */
static bool
proxy_stream(struct apiserver *as, struct http_request *req, struct proxy *p,
             const char *base, const char *sub, const char *ns,
             const char *name, const char *container)
{
    const char *upgrade = http_request_header(req, "Upgrade");
    if (!upgrade) {
        proxy_error(req, 400, "BadRequest",
                    "Upgrade request required: pods/%s is a stream; use "
                    "WebSocket (v5.channel.k8s.io or v4.channel.k8s.io)",
                    sub);
        return false;
    }
    CURL *e = proxy_easy(as, base);
    if (!e) {
        proxy_error(req, 500, "InternalError", "cannot create a client");
        return false;
    }
    p->easy = e;
    p->url = xstrdup(base);
    curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
    CURLcode rc = curl_easy_perform(e);
    if (rc != CURLE_OK) {
        proxy_dial_error(req, p, curl_easy_strerror(rc));
        return false;
    }
    curl_easy_getinfo(e, CURLINFO_ACTIVESOCKET, &p->sock);
    char *ens = curl_easy_escape(e, ns, 0), *en = curl_easy_escape(e, name, 0),
         *ec = curl_easy_escape(e, container, 0);
    struct dbuf q;
    dbuf_init(&q);
    static const char *const opts[] = {"command", "stdin", "stdout", "stderr",
                                       "tty",     "input", "output", "error"};
    for (size_t i = 0; i < ARRAY_SIZE(opts); i++) {
        query_copy(e, req, &q, opts[i], NULL);
    }
    const char *host = base + strlen("https://");
    struct dbuf h;
    dbuf_init(&h);
    dbuf_printf(&h,
                "%s /%s/%s/%s/%s%s HTTP/1.1\r\nHost: %s\r\n"
                "User-Agent: dpf-server\r\nConnection: Upgrade\r\n",
                http_request_method(req), sub, ens, en, ec,
                q.data ? q.data : "", host);
    curl_free(ens);
    curl_free(en);
    curl_free(ec);
    dbuf_free(&q);
    static const char *const hdrs[] = {"Upgrade",
                                       "Sec-WebSocket-Key",
                                       "Sec-WebSocket-Version",
                                       "Sec-WebSocket-Protocol",
                                       "Sec-WebSocket-Extensions",
                                       "X-Stream-Protocol-Version"};
    for (size_t i = 0; i < ARRAY_SIZE(hdrs); i++) {
        head_copy(req, &h, hdrs[i]);
    }
    dbuf_puts(&h, "\r\n");
    int64_t deadline = time_mono_ms() + 1000LL * API_PROXY_CONNECT_S;
    bool sent = agent_send_all(p, h.data, h.len, deadline);
    dbuf_free(&h);
    if (!sent) {
        proxy_dial_error(req, p, "the request could not be sent");
        return false;
    }
    /* The answer's head. */
    struct dbuf in;
    dbuf_init(&in);
    char *end = NULL;
    while (!end) {
        char buf[4096];
        size_t got = 0;
        rc = curl_easy_recv(e, buf, sizeof buf, &got);
        if (rc == CURLE_AGAIN) {
            if (!sock_wait(p->sock, POLLIN, deadline)) {
                break;
            }
            continue;
        }
        if (rc != CURLE_OK || got == 0) {
            break;
        }
        dbuf_append(&in, buf, got);
        end = strstr(in.data, "\r\n\r\n");
        if (!end && in.len > API_PROXY_MAX_HEAD) {
            break;
        }
    }
    if (!end) {
        proxy_dial_error(req, p, "no answer from the node agent");
        dbuf_free(&in);
        return false;
    }
    size_t head_len = (size_t) (end - in.data) + 4;
    int status = 0;
    const char *sp = strchr(in.data, ' ');
    if (sp && sp < end) {
        status = atoi(sp + 1);
    }
    char *head = xstrndup(in.data, head_len - 2);
    if (status != 101) {
        /* Its body, as far as Content-Length says (bounded). */
        const char *from = NULL;
        char *cl = head_value(head, "Content-Length", &from);
        size_t want = cl ? strtoul(cl, NULL, 10) : API_PROXY_MAX_ERROR_BODY;
        free(cl);
        if (want > API_PROXY_MAX_ERROR_BODY) {
            want = API_PROXY_MAX_ERROR_BODY;
        }
        while (in.len - head_len < want) {
            char buf[4096];
            size_t got = 0;
            rc = curl_easy_recv(e, buf, sizeof buf, &got);
            if (rc == CURLE_AGAIN) {
                if (!sock_wait(p->sock, POLLIN, deadline)) {
                    break;
                }
                continue;
            }
            if (rc != CURLE_OK || got == 0) {
                break;
            }
            dbuf_append(&in, buf, got);
        }
        size_t bl = in.len - head_len;
        proxy_relay_error(req, p, status, in.data + head_len,
                          bl > want ? want : bl);
        free(head);
        dbuf_free(&in);
        return false;
    }
    static const char *const back[] = {
        "Upgrade", "Sec-WebSocket-Accept", "Sec-WebSocket-Protocol",
        "Sec-WebSocket-Extensions", "X-Stream-Protocol-Version"};
    for (size_t i = 0; i < ARRAY_SIZE(back); i++) {
        const char *from = NULL;
        char *v;
        while ((v = head_value(head, back[i], &from)) != NULL) {
            http_response_header(req, back[i], v);
            free(v);
        }
    }
    free(head);
    p->early_len = in.len - head_len;
    if (p->early_len) {
        p->early = xmalloc(p->early_len);
        memcpy(p->early, in.data + head_len, p->early_len);
    }
    dbuf_free(&in);
    atomic_fetch_add(&as->proxy_streams, 1);
    http_respond_upgrade(req, proxy_upgraded, p);
    return true;
}

/* ------------------------------------------------------------------ */

bool
as_proxy_handle(struct apiserver *as, struct http_request *req,
                const struct schema_kind *k, const char *ns, const char *name,
                const char *sub)
{
    if (!sub || !name || strcmp(k->group, "") != 0 ||
        strcmp(k->plural, "pods") != 0 ||
        (strcmp(sub, "log") != 0 && strcmp(sub, "exec") != 0 &&
         strcmp(sub, "attach") != 0)) {
        return false;
    }
    const char *method = http_request_method(req);
    bool log = !strcmp(sub, "log");
    if (log ? strcmp(method, "GET") != 0
            : (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)) {
        struct as_error ae = {0};
        as_error_set(&ae, 405, "MethodNotAllowed",
                     "the server does not allow this method on the "
                     "requested resource");
        as_respond_error(req, &ae);
        return true;
    }
    unsigned max = as->cfg.kubelet_max_streams ? as->cfg.kubelet_max_streams
                                               : API_PROXY_DEFAULT_STREAMS;
    if (atomic_load(&as->proxy_streams) >= max) {
        http_response_header(req, "Retry-After", "1");
        proxy_error(req, 429, "TooManyRequests",
                    "too many log, exec and attach streams open (%u, the "
                    "limit); try again later",
                    max);
        return true;
    }
    if (as->cfg.no_node_proxy) {
        proxy_error(req, 503, "ServiceUnavailable",
                    "pods/%s is not served by this API server", sub);
        return true;
    }
    json_t *pod = proxy_get(as, req, "pods", ns, name);
    if (!pod) {
        return true;
    }
    const char *container = proxy_container(req, pod, name);
    const char *node = json_string_value(
        json_object_get(json_object_get(pod, "spec"), "nodeName"));
    char *base = NULL;
    if (!container) {
        goto out;
    }
    if (!node || !*node) {
        proxy_error(req, 400, "BadRequest",
                    "pod %s does not have a host assigned", name);
        goto out;
    }
    if (!(base = proxy_node_base(as, req, node))) {
        goto out;
    }
    if (atomic_fetch_add(&as->proxy_dialing, 1) >= API_PROXY_MAX_DIALING) {
        atomic_fetch_sub(&as->proxy_dialing, 1);
        http_response_header(req, "Retry-After", "1");
        proxy_error(req, 429, "TooManyRequests",
                    "too many requests are waiting for node agents; try "
                    "again later");
        goto out;
    }
    struct proxy *p = xcalloc(1, sizeof(*p));
    p->as = as;
    p->node = xstrdup(node);
    p->sock = CURL_SOCKET_BAD;
    dbuf_init(&p->body);
    p->gone = xcalloc(1, sizeof(*p->gone));
    atomic_init(&p->gone->refs, 1);
    atomic_init(&p->gone->gone, false);
    bool taken = log ? proxy_log(as, req, p, base, ns, name, container)
                     : proxy_stream(as, req, p, base, sub, ns, name, container);
    atomic_fetch_sub(&as->proxy_dialing, 1);
    if (!taken) {
        proxy_free(p);
    }
out:
    free(base);
    json_decref(pod);
    return true;
}

void
as_proxy_shutdown(struct apiserver *as)
{
    /* The HTTP server has stopped: every proxied stream's client side is
     * gone, so their threads end; wait for them (bounded). */
    int64_t until = time_mono_ms() + 10000;
    while (atomic_load(&as->proxy_streams) > 0 && time_mono_ms() < until) {
        poll(NULL, 0, 10);
    }
}
