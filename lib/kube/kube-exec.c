/* kube-exec: see kube-exec.h. */
#include "lib/kube/kube-exec.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "lib/base/base64.h"
#include "lib/base/util.h"
#include "lib/kube/kube-status.h"
#include "lib/kube/kubeconfig-curl.h"
#include "lib/net/websocket.h"

#define EXEC_DEFAULT_TIMEOUT_MS 10000
#define EXEC_DEFAULT_MAX_OUTPUT (64 * 1024)
#define EXEC_MAX_HEAD (16 * 1024)       /* the upgrade answer's head */
#define EXEC_MAX_ERROR_BODY (64 * 1024) /* a refusal's Status */
#define EXEC_MAX_STATUS (64 * 1024)     /* channel 3 */
#define EXEC_MAX_FRAME (1024 * 1024)    /* one frame's payload */

enum { CH_STDOUT = 1, CH_STDERR = 2, CH_ERROR = 3 };

struct kube_exec {
    pthread_mutex_t mu; /* k's credential */
    struct kubeconfig_curl *k;
};

struct kube_exec *
kube_exec_create(const struct kubeconfig *kc, struct dpf_error *err)
{
    struct kubeconfig_curl *k = kubeconfig_curl_create(kc, err);
    if (!k) {
        return NULL;
    }
    struct kube_exec *x = xcalloc(1, sizeof *x);
    pthread_mutex_init(&x->mu, NULL);
    x->k = k;
    return x;
}

void
kube_exec_destroy(struct kube_exec *x)
{
    if (x) {
        kubeconfig_curl_destroy(x->k);
        pthread_mutex_destroy(&x->mu);
        free(x);
    }
}

void
kube_exec_result_free(struct kube_exec_result *res)
{
    if (res) {
        free(res->out);
        free(res->err);
        res->out = res->err = NULL;
        res->out_len = res->err_len = 0;
    }
}

/* One call's state. */
struct call {
    CURL *h;
    curl_socket_t sock;
    int64_t deadline;
    const struct kube_exec_request *req;
    struct dpf_error *err;
    bool broken; /* a pong could not be sent */
};

/* "exec in pod ns/name: <why>" into err; returns rc. */
static int __attribute__((format(printf, 3, 4)))
call_fail(struct call *c, int rc, const char *fmt, ...)
{
    char why[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    dpf_error_set(c->err, rc == -ETIMEDOUT ? 504 : 502,
                  rc == -ETIMEDOUT ? "Timeout" : "BadGateway",
                  "exec in pod %s/%s: %s", c->req->ns, c->req->pod, why);
    return rc;
}

/* Wait until the socket is ready for ev, at most until the deadline. */
static int
call_wait(struct call *c, short ev)
{
    int64_t left = c->deadline - time_mono_ms();
    if (left <= 0) {
        return -ETIMEDOUT;
    }
    struct pollfd p = {.fd = c->sock, .events = ev};
    int n = poll(&p, 1, (int) (left > 1000 ? 1000 : left));
    if (n < 0 && errno != EINTR) {
        return -errno;
    }
    return 0;
}

static int
call_send(struct call *c, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        size_t sent = 0;
        CURLcode rc = curl_easy_send(c->h, p, len, &sent);
        if (rc == CURLE_AGAIN) {
            int w = call_wait(c, POLLOUT);
            if (w < 0) {
                return w;
            }
            continue;
        }
        if (rc != CURLE_OK) {
            return -EIO;
        }
        p += sent;
        len -= sent;
    }
    return 0;
}

/* Some bytes into buf: > 0 bytes, 0 at the end of the connection, or a
 * negative errno (-ETIMEDOUT at the deadline). */
static ssize_t
call_recv(struct call *c, void *buf, size_t cap)
{
    for (;;) {
        size_t got = 0;
        CURLcode rc = curl_easy_recv(c->h, buf, cap, &got);
        if (rc == CURLE_AGAIN) {
            int w = call_wait(c, POLLIN);
            if (w < 0) {
                return w;
            }
            continue;
        }
        if (rc != CURLE_OK) {
            return -EIO;
        }
        return (ssize_t) got;
    }
}

/* A masked frame of ours. */
static int
call_send_frame(struct call *c, uint8_t opcode, const void *data, size_t len)
{
    uint8_t key[4];
    if (getrandom(key, sizeof key, 0) != (ssize_t) sizeof key) {
        memset(key, 0x5a, sizeof key);
    }
    uint8_t *f = xmalloc(WS_MAX_HEADER + len);
    size_t hl = ws_frame_header(f, opcode, true, len, key);
    if (len) {
        memcpy(f + hl, data, len);
        ws_mask(f + hl, len, key, 0);
    }
    int rc = call_send(c, f, hl + len);
    free(f);
    return rc;
}

/* The value of header name in head (NUL-terminated, lines end in CRLF):
 * a new string or NULL. */
static char *
head_value(const char *head, const char *name)
{
    size_t nl = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line && line[2];
         line = strstr(line + 2, "\r\n")) {
        const char *l = line + 2;
        if (!strncasecmp(l, name, nl) && l[nl] == ':') {
            const char *v = l + nl + 1;
            while (*v == ' ' || *v == '\t') {
                v++;
            }
            const char *end = strstr(v, "\r\n");
            size_t n = end ? (size_t) (end - v) : strlen(v);
            while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t')) {
                n--;
            }
            return xstrndup(v, n);
        }
    }
    return NULL;
}

/* --- the stream, without the connection (kube-exec.h) --- */

void
kube_exec_demux_init(struct kube_exec_demux *d, size_t max_output)
{
    memset(d, 0, sizeof *d);
    d->max_output = max_output ? max_output : EXEC_DEFAULT_MAX_OUTPUT;
    d->channel = -1;
    dbuf_init(&d->out);
    dbuf_init(&d->err);
    dbuf_init(&d->status);
}

void
kube_exec_demux_free(struct kube_exec_demux *d)
{
    dbuf_free(&d->out);
    dbuf_free(&d->err);
    dbuf_free(&d->status);
}

/* Append to a bounded stream buffer; -EMSGSIZE past max. */
static int
stream_add(struct dbuf *b, const uint8_t *p, size_t n, size_t max)
{
    if (b->len + n > max) {
        return -EMSGSIZE;
    }
    dbuf_append(b, p, n);
    return 0;
}

ssize_t
kube_exec_demux_feed(struct kube_exec_demux *d, uint8_t *buf, size_t len,
                     kube_exec_ping_fn on_ping, void *arg)
{
    size_t off = 0;
    while (off < len && !d->closed) {
        struct ws_frame f;
        ssize_t n =
            ws_frame_parse(buf + off, len - off, false, EXEC_MAX_FRAME, &f);
        if (n < 0) {
            d->bad_frame = true;
            return -EPROTO;
        }
        if (n == 0) {
            break;
        }
        off += (size_t) n;
        switch (f.opcode) {
        case WS_OP_CLOSE:
            d->closed = true;
            d->close_len = f.len >= 2 ? 2 : 0;
            if (d->close_len) {
                memcpy(d->close_code, f.payload, 2);
            }
            continue;
        case WS_OP_PING:
            if (on_ping) {
                on_ping(arg, f.payload, f.len);
            }
            continue;
        case WS_OP_PONG:
            continue;
        default:
            break;
        }
        const uint8_t *p = f.payload;
        size_t plen = f.len;
        if (f.opcode != WS_OP_CONT || d->channel < 0) {
            /* a new message: its first byte is the channel */
            if (plen == 0) {
                continue;
            }
            d->channel = p[0];
            p++;
            plen--;
        }
        int rc = 0;
        if (d->channel == CH_STDOUT) {
            rc = stream_add(&d->out, p, plen, d->max_output);
        } else if (d->channel == CH_STDERR) {
            rc = stream_add(&d->err, p, plen, d->max_output);
        } else if (d->channel == CH_ERROR &&
                   stream_add(&d->status, p, plen, EXEC_MAX_STATUS) < 0) {
            d->status_too_long = true;
            return -EPROTO;
        }
        if (rc < 0) {
            d->overflow = d->channel;
            return -EMSGSIZE;
        }
        if (f.fin) {
            d->channel = -1;
        }
    }
    return (ssize_t) off;
}

int
kube_exec_status_decode(const char *text, size_t len, int *code,
                        struct dpf_error *err)
{
    json_error_t je;
    json_t *st = json_loadb(text, len, 0, &je);
    const char *s = json_string_value(json_object_get(st, "status"));
    int rc = 0;
    if (s && !strcmp(s, "Success")) {
        *code = 0;
    } else if (s && !strcmp(s, "Failure")) {
        const char *reason = json_string_value(json_object_get(st, "reason"));
        const char *msg = json_string_value(json_object_get(st, "message"));
        const json_t *causes =
            json_object_get(json_object_get(st, "details"), "causes");
        const char *ctext = NULL;
        size_t i;
        const json_t *cause;
        json_array_foreach(causes, i, cause)
        {
            const char *r = json_string_value(json_object_get(cause, "reason"));
            if (r && !strcmp(r, "ExitCode")) {
                ctext = json_string_value(json_object_get(cause, "message"));
            }
        }
        char *end = NULL;
        long v = ctext ? strtol(ctext, &end, 10) : -1;
        if (reason && !strcmp(reason, "NonZeroExitCode") && ctext && *ctext &&
            !*end && v >= 0 && v <= 255) {
            *code = (int) v;
        } else {
            dpf_error_set(err, 500,
                          reason && *reason ? reason : "InternalError",
                          "the command did not run: %s",
                          msg ? msg : "the node agent gave no reason");
            rc = -EIO;
        }
    } else {
        char *clean = utf8_sanitize(text, len > 200 ? 200 : len, NULL);
        dpf_error_set(err, 502, "BadGateway",
                      "the node agent's status message is not a Status: "
                      "%s",
                      clean);
        free(clean);
        rc = -EPROTO;
    }
    json_decref(st);
    return rc;
}

/* The upgrade: request, answer head, checks. 0, or a negative errno with
 * err; in keeps what came after the head (frames sent at once), from
 * *head_len on. */
static int
call_upgrade(struct call *c, struct kube_exec *x, char *head_start,
             struct dbuf *in, size_t *head_len, char *proto, size_t proto_sz)
{
    uint8_t nonce[16];
    if (getrandom(nonce, sizeof nonce, 0) != (ssize_t) sizeof nonce) {
        return call_fail(c, -EIO, "no random bytes for the WebSocket key");
    }
    char *key = base64_encode(nonce, sizeof nonce, BASE64_STD);
    struct dbuf h;
    dbuf_init(&h);
    dbuf_puts(&h, head_start);
    dbuf_printf(&h,
                "Connection: Upgrade\r\nUpgrade: websocket\r\n"
                "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n"
                "Sec-WebSocket-Protocol: v5.channel.k8s.io, "
                "v4.channel.k8s.io\r\n\r\n",
                key);
    int rc = call_send(c, h.data, h.len);
    explicit_bzero(h.data, h.len);
    dbuf_free(&h);
    if (rc < 0) {
        free(key);
        return call_fail(c, rc,
                         rc == -ETIMEDOUT ? "no answer before the deadline"
                                          : "the request could not be sent");
    }
    char *end = NULL;
    while (!end) {
        char buf[4096];
        ssize_t n = call_recv(c, buf, sizeof buf);
        if (n <= 0) {
            free(key);
            return call_fail(c, n < 0 ? (int) n : -EPROTO, "%s",
                             n == -ETIMEDOUT
                                 ? "no answer before the deadline"
                                 : "the server closed the connection "
                                   "without an answer");
        }
        dbuf_append(in, buf, (size_t) n);
        end = memmem(in->data, in->len, "\r\n\r\n", 4);
        if (!end && in->len > EXEC_MAX_HEAD) {
            free(key);
            return call_fail(c, -EPROTO, "the answer's head passes %d bytes",
                             EXEC_MAX_HEAD);
        }
    }
    *head_len = (size_t) (end - in->data) + 4;
    char *head = xstrndup(in->data, *head_len - 2);
    int status = 0;
    const char *sp = strchr(head, ' ');
    if (sp) {
        status = atoi(sp + 1);
    }
    if (status != 101) {
        char *cl = head_value(head, "Content-Length");
        size_t want = cl ? strtoul(cl, NULL, 10) : EXEC_MAX_ERROR_BODY;
        free(cl);
        if (want > EXEC_MAX_ERROR_BODY) {
            want = EXEC_MAX_ERROR_BODY;
        }
        while (in->len - *head_len < want) {
            char buf[4096];
            ssize_t n = call_recv(c, buf, sizeof buf);
            if (n <= 0) {
                break;
            }
            dbuf_append(in, buf, (size_t) n);
        }
        size_t bl = in->len - *head_len;
        if (bl > want) {
            bl = want;
        }
        char *body = xstrndup(in->data + *head_len, bl);
        struct dpf_error se = {0};
        rc = kube_status_to_error(status ? status : 502, body, bl, &se);
        if (rc == 0) {
            rc = -EPROTO;
        }
        dpf_error_set(c->err, se.code ? se.code : 502,
                      se.reason[0] ? se.reason : "BadGateway",
                      "exec in pod %s/%s: %s", c->req->ns, c->req->pod,
                      se.message[0] ? se.message : "the upgrade was refused");
        free(body);
        free(head);
        free(key);
        return rc;
    }
    char *accept = head_value(head, "Sec-WebSocket-Accept");
    char *want = ws_accept_key(key);
    char *chosen = head_value(head, "Sec-WebSocket-Protocol");
    free(key);
    free(head);
    (void) x;
    rc = 0;
    if (!accept || !want || strcmp(accept, want)) {
        rc = call_fail(c, -EPROTO,
                       "the server's Sec-WebSocket-Accept does not match "
                       "our key");
    } else if (!chosen || (strcmp(chosen, "v5.channel.k8s.io") &&
                           strcmp(chosen, "v4.channel.k8s.io"))) {
        rc = call_fail(c, -EPROTO,
                       "the server chose subprotocol \"%s\"; we offered "
                       "v5.channel.k8s.io and v4.channel.k8s.io",
                       chosen ? chosen : "");
    } else {
        snprintf(proto, proto_sz, "%s", chosen);
    }
    free(accept);
    free(want);
    free(chosen);
    return rc;
}

static void
call_pong(void *arg, const uint8_t *p, size_t n)
{
    struct call *c = arg;
    if (call_send_frame(c, WS_OP_PONG, p, n) < 0) {
        c->broken = true;
    }
}

/* The frames until the server closes: streams and Status. */
static int
call_frames(struct call *c, struct dbuf *in, size_t off,
            struct kube_exec_demux *d)
{
    for (;;) {
        ssize_t n = in->len > off
                        ? kube_exec_demux_feed(d, (uint8_t *) in->data + off,
                                               in->len - off, call_pong, c)
                        : 0;
        if (n == -EMSGSIZE) {
            return call_fail(c, -EMSGSIZE,
                             "the command's %s passes %zu bytes (the "
                             "limit)",
                             d->overflow == CH_STDOUT ? "output"
                                                      : "error output",
                             d->max_output);
        }
        if (n < 0) {
            return call_fail(c, -EPROTO, "%s",
                             d->status_too_long
                                 ? "the status message is too long"
                                 : "a WebSocket frame is malformed or too "
                                   "long");
        }
        if (c->broken) {
            return call_fail(c, -EIO, "the connection broke");
        }
        off += (size_t) n;
        if (d->closed) {
            /* answer, then we are done (the server hangs up) */
            call_send_frame(c, WS_OP_CLOSE, d->close_code, d->close_len);
            return 0;
        }
        /* keep what is not parsed yet at the front */
        if (off) {
            memmove(in->data, in->data + off, in->len - off);
            in->len -= off;
            off = 0;
        }
        char buf[16384];
        ssize_t got = call_recv(c, buf, sizeof buf);
        if (got < 0) {
            return call_fail(c, (int) got, "%s",
                             got == -ETIMEDOUT
                                 ? "the command did not end before the "
                                   "deadline"
                                 : "the connection broke");
        }
        if (got == 0) {
            return 0; /* the end; the Status says the rest */
        }
        dbuf_append(in, buf, (size_t) got);
    }
}

static void
query_add(struct dbuf *q, CURL *h, const char *name, const char *value)
{
    char *e = curl_easy_escape(h, value, 0);
    dbuf_printf(q, "%s%s=%s", q->len ? "&" : "", name, e ? e : "");
    curl_free(e);
}

int
kube_exec_run(struct kube_exec *x, const struct kube_exec_request *req,
              struct kube_exec_result *res, struct dpf_error *err)
{
    memset(res, 0, sizeof *res);
    res->out = xstrdup("");
    res->err = xstrdup("");
    res->exit_code = -1;
    struct call c = {.req = req, .err = err, .sock = CURL_SOCKET_BAD};
    if (!req->ns || !req->pod || !req->argv || !req->argv[0]) {
        dpf_error_set(err, 400, "BadRequest",
                      "exec: namespace, pod and a command are required");
        return -EINVAL;
    }
    long timeout =
        req->timeout_ms > 0 ? req->timeout_ms : EXEC_DEFAULT_TIMEOUT_MS;
    size_t max = req->max_output ? req->max_output : EXEC_DEFAULT_MAX_OUTPUT;
    c.deadline = time_mono_ms() + timeout;
    c.h = curl_easy_init();
    if (!c.h) {
        dpf_error_set(err, 500, "InternalError",
                      "exec: cannot create a "
                      "curl handle");
        return -ENOMEM;
    }
    char *ens = curl_easy_escape(c.h, req->ns, 0);
    char *epod = curl_easy_escape(c.h, req->pod, 0);
    char *path = xasprintf("/api/v1/namespaces/%s/pods/%s/exec", ens, epod);
    curl_free(ens);
    curl_free(epod);
    struct dbuf q;
    dbuf_init(&q);
    for (const char *const *a = req->argv; *a; a++) {
        query_add(&q, c.h, "command", *a);
    }
    if (req->container) {
        query_add(&q, c.h, "container", req->container);
    }
    dbuf_puts(&q, "&stdout=true&stderr=true");
    struct kube_request kr = {
        .method = "GET",
        .path = path,
        .query = q.data,
        .timeout_ms = timeout,
    };
    char errbuf[CURL_ERROR_SIZE];
    struct dbuf in;
    dbuf_init(&in);
    struct kube_exec_demux dm;
    kube_exec_demux_init(&dm, max);
    char *head = NULL;
    int rc;

    pthread_mutex_lock(&x->mu);
    rc = kubeconfig_curl_refresh(x->k, false, err);
    if (rc == 0) {
        head = kubeconfig_curl_setup_raw(x->k, c.h, &kr, errbuf);
    }
    pthread_mutex_unlock(&x->mu);
    if (rc < 0) {
        goto out;
    }
    curl_easy_setopt(c.h, CURLOPT_CONNECTTIMEOUT_MS, timeout);
    CURLcode crc = curl_easy_perform(c.h);
    if (crc != CURLE_OK) {
        struct dpf_error te = {0};
        rc = kubeconfig_curl_error(x->k, crc, errbuf, "GET", path, &te);
        dpf_error_set(err, te.code, te.reason, "exec in pod %s/%s: %s", req->ns,
                      req->pod, te.message);
        goto out;
    }
    curl_easy_getinfo(c.h, CURLINFO_ACTIVESOCKET, &c.sock);
    if (c.sock == CURL_SOCKET_BAD) {
        rc = call_fail(&c, -EIO, "no connection to the server");
        goto out;
    }
    size_t head_len = 0;
    rc = call_upgrade(&c, x, head, &in, &head_len, res->proto,
                      sizeof res->proto);
    if (rc < 0) {
        goto out;
    }
    rc = call_frames(&c, &in, head_len, &dm);
    if (rc == 0) {
        if (!dm.status.len) {
            rc = call_fail(&c, -EPROTO,
                           "the stream ended without the command's status "
                           "(the node agent or the server went away)");
        } else {
            struct dpf_error se = {0};
            rc = kube_exec_status_decode(dm.status.data, dm.status.len,
                                         &res->exit_code, &se);
            if (rc < 0) {
                dpf_error_set(err, se.code, se.reason, "exec in pod %s/%s: %s",
                              req->ns, req->pod, se.message);
            }
        }
    }
out:
    if (head) {
        explicit_bzero(head, strlen(head));
        free(head);
    }
    if (dm.out.len) {
        free(res->out);
        res->out_len = dm.out.len;
        res->out = dbuf_steal(&dm.out, NULL);
    }
    if (dm.err.len) {
        free(res->err);
        res->err_len = dm.err.len;
        res->err = dbuf_steal(&dm.err, NULL);
    }
    kube_exec_demux_free(&dm);
    dbuf_free(&in);
    dbuf_free(&q);
    free(path);
    curl_easy_cleanup(c.h);
    return rc;
}
