/* http-server: see http-server.h.
 *
 * libmicrohttpd runs a pool of `threads` worker threads, each polling its
 * share of the connections, so thousands of idle keep-alive or watch
 * connections cost a socket and a small memory pool each, not a thread.
 *
 * Request flow: MHD calls access_handler() once when the headers are in
 * (we allocate the struct http_request), then once per body piece (we
 * accumulate up to max_body, discarding the rest), then a final time with
 * no data, where the user's handler runs and its response is queued.
 *
 * Streams: the response is a chunked MHD callback response whose content
 * reader pulls from the stream's queue. When the queue is empty the reader
 * suspends the connection; http_stream_write() (any thread) resumes it.
 * A suspended connection is invisible to MHD's own poll set, so a small
 * watchdog thread keeps a one-shot EPOLLRDHUP registration for suspended
 * stream sockets and resumes a stream whose client hung up, so on_close
 * fires promptly even when no event is flowing.
 *
 * Stream lifetime: two references, one for the handler side (dropped by
 * http_stream_close) and one for the MHD response (dropped when MHD frees
 * the response). Lock order: MHD's response mutex -> stream mutex -> MHD's
 * cleanup mutex (taken inside MHD_suspend/resume_connection); the server's
 * registry mutex is never held while taking a stream mutex except in the
 * shutdown sweep and the watchdog lookup, which take no MHD lock under it
 * before the stream mutex. */
#include "lib/http-server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/log.h"
#include "lib/util.h"

LOG_MODULE(http);

#define HTTP_DEFAULT_THREADS 4
#define HTTP_DEFAULT_MAX_BODY (3u * 1024 * 1024)
#define HTTP_DEFAULT_MAX_CONN 4096
#define HTTP_STREAM_MAX_QUEUED (16u * 1024 * 1024)
#define HTTP_CONN_TIMEOUT_S 300
#define HTTP_CONN_MEMORY (32u * 1024)
/* Bytes of an over-limit body we read and drop so that the client sees
 * the 413; past this we close the connection instead. */
#define HTTP_DRAIN_LIMIT(max_body) (4 * (size_t) (max_body) + (1u << 20))

/* Per-connection state (MHD socket context): the verified peer identity,
 * computed once per TLS connection. */
struct http_conn {
    bool checked;                      /* peer certificate examined */
    char *cn;                          /* verified subject CN or NULL */
    char *org;                         /* verified subject first O or NULL */
    char remote[INET6_ADDRSTRLEN + 8]; /* peer address text */
};

/* One queued piece of stream data. */
struct stream_chunk {
    struct stream_chunk *next; /* FIFO link */
    size_t len;                /* bytes in data */
    char data[];               /* payload */
};

struct http_stream {
    pthread_mutex_t mu;           /* guards everything below but refs */
    atomic_int refs;              /* handler side + MHD response + temps */
    struct http_server *srv;      /* owning server */
    struct MHD_Connection *conn;  /* MHD connection (valid until done) */
    uint64_t id;                  /* registry id (watchdog lookups) */
    int fd;                       /* connection socket */
    struct stream_chunk *head;    /* queued data, oldest first */
    struct stream_chunk *tail;    /* newest chunk */
    size_t head_off;              /* bytes of head already sent */
    size_t queued;                /* bytes queued, not yet sent */
    size_t max_queued;            /* queue bound (http_stream_set_budget) */
    atomic_size_t *total;         /* shared count of queued bytes or NULL */
    bool suspended;               /* we suspended the connection */
    bool watch_armed;             /* fd is in the watchdog epoll set */
    bool closing;                 /* handler closed: end after drain */
    bool gone;                    /* client gone or overflow: abort */
    bool done;                    /* MHD finished the request */
    bool on_close_fired;          /* on_close already called */
    void (*on_close)(void *arg);  /* user close notification */
    void *on_close_arg;           /* its argument */
    struct http_stream *reg_prev; /* server registry links */
    struct http_stream *reg_next; /* (under srv->reg_mu) */
    bool registered;              /* in the registry */
};

/* One extra response header. */
struct http_header {
    char *name;  /* owned */
    char *value; /* owned */
};

struct http_request {
    struct http_server *srv;     /* server */
    struct MHD_Connection *conn; /* MHD connection */
    struct http_conn *hc;        /* connection context (peer identity) */
    const char *method;          /* MHD-owned */
    const char *path;            /* MHD-owned, decoded */
    struct dbuf body;            /* accumulated body */
    size_t body_seen;            /* total body bytes received */
    bool too_large;              /* body exceeded max_body */
    bool responded;              /* a response was given */
    int status;                  /* response status */
    char *ctype;                 /* response content type (owned) */
    char *resp_body;             /* response body (owned) */
    size_t resp_len;             /* its length */
    struct http_header *hdrs;    /* extra response headers */
    size_t n_hdrs;               /* count */
    struct http_stream *stream;  /* streaming response, if any */
};

struct http_server {
    struct MHD_Daemon *daemon; /* MHD daemon */
    http_handler_fn handler;   /* user handler */
    void *arg;                 /* its argument */
    size_t max_body;           /* body limit */
    bool tls;                  /* HTTPS */
    bool client_auth;          /* client CA configured */
    uint16_t port;             /* bound port */
    char *cert_pem;            /* kept alive for MHD */
    char *key_pem;             /* kept alive for MHD */
    char *ca_pem;              /* kept alive for MHD */
    atomic_bool stopping;      /* destroy in progress */
    pthread_mutex_t reg_mu;    /* guards the stream registry */
    struct http_stream *reg;   /* live streams */
    uint64_t next_stream_id;   /* registry ids */
    int wd_epfd;               /* watchdog epoll set */
    int wd_evfd;               /* watchdog wake-up for shutdown */
    pthread_t wd_thread;       /* watchdog thread */
    bool wd_started;           /* thread running */
};

/* ---------------------------------------------------------------- */
/* streams                                                           */

/* Free every queued chunk and take the bytes back from the shared count.
 * Caller holds st->mu (or the last reference). */
static void
stream_drop_queue_locked(struct http_stream *st)
{
    struct stream_chunk *c = st->head;
    while (c) {
        struct stream_chunk *next = c->next;
        free(c);
        c = next;
    }
    st->head = st->tail = NULL;
    st->head_off = 0;
    if (st->total) {
        atomic_fetch_sub(st->total, st->queued);
    }
    st->queued = 0;
}

static void
stream_unref(struct http_stream *st)
{
    if (atomic_fetch_sub(&st->refs, 1) != 1) {
        return;
    }
    stream_drop_queue_locked(st);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

static void
stream_registry_add(struct http_server *srv, struct http_stream *st)
{
    pthread_mutex_lock(&srv->reg_mu);
    st->id = ++srv->next_stream_id;
    st->reg_next = srv->reg;
    st->reg_prev = NULL;
    if (srv->reg) {
        srv->reg->reg_prev = st;
    }
    srv->reg = st;
    st->registered = true;
    pthread_mutex_unlock(&srv->reg_mu);
}

static void
stream_registry_del(struct http_server *srv, struct http_stream *st)
{
    pthread_mutex_lock(&srv->reg_mu);
    if (st->registered) {
        if (st->reg_prev) {
            st->reg_prev->reg_next = st->reg_next;
        } else {
            srv->reg = st->reg_next;
        }
        if (st->reg_next) {
            st->reg_next->reg_prev = st->reg_prev;
        }
        st->registered = false;
    }
    pthread_mutex_unlock(&srv->reg_mu);
}

/* Resume a suspended stream's connection. Caller holds st->mu. */
static void
stream_resume_locked(struct http_stream *st)
{
    if (st->suspended) {
        st->suspended = false;
        MHD_resume_connection(st->conn);
    }
}

/* Arm the watchdog's one-shot hang-up registration. Caller holds st->mu. */
static void
stream_watch_arm_locked(struct http_stream *st)
{
    struct http_server *srv = st->srv;
    if (st->fd < 0 || srv->wd_epfd < 0) {
        return;
    }
    struct epoll_event ev = {
        .events = EPOLLRDHUP | EPOLLONESHOT,
        .data.u64 = st->id,
    };
    int op = st->watch_armed ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(srv->wd_epfd, op, st->fd, &ev) == 0) {
        st->watch_armed = true;
    }
}

/* Drop the watchdog registration before MHD closes the socket. Caller
 * holds st->mu. */
static void
stream_watch_disarm_locked(struct http_stream *st)
{
    if (st->watch_armed) {
        epoll_ctl(st->srv->wd_epfd, EPOLL_CTL_DEL, st->fd, NULL);
        st->watch_armed = false;
    }
}

/* MHD content reader: copy queued data, end, or suspend until written. */
static ssize_t
stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct http_stream *st = cls;
    ssize_t ret;

    pthread_mutex_lock(&st->mu);
    if (st->gone) {
        ret = MHD_CONTENT_READER_END_WITH_ERROR;
    } else if (st->queued > 0) {
        size_t n = 0;
        while (n < max && st->head) {
            struct stream_chunk *c = st->head;
            size_t take = DPF_MIN(max - n, c->len - st->head_off);
            memcpy(buf + n, c->data + st->head_off, take);
            n += take;
            st->head_off += take;
            if (st->head_off == c->len) {
                st->head = c->next;
                if (!st->head) {
                    st->tail = NULL;
                }
                st->head_off = 0;
                free(c);
            }
        }
        st->queued -= n;
        if (st->total) {
            atomic_fetch_sub(st->total, n);
        }
        ret = (ssize_t) n;
    } else if (st->closing) {
        ret = MHD_CONTENT_READER_END_OF_STREAM;
    } else if (atomic_load(&st->srv->stopping)) {
        ret = MHD_CONTENT_READER_END_WITH_ERROR;
    } else {
        /* Nothing to send: park the connection until a write. */
        st->suspended = true;
        stream_watch_arm_locked(st);
        MHD_suspend_connection(st->conn);
        ret = 0;
    }
    pthread_mutex_unlock(&st->mu);
    return ret;
}

/* MHD frees the response: drop its reference. */
static void
stream_response_free(void *cls)
{
    stream_unref(cls);
}

/* The request carrying the stream is over (sent, aborted or shut down):
 * fire on_close once. Runs in the connection's worker thread. */
static void
stream_finish(struct http_stream *st)
{
    bool fire;
    pthread_mutex_lock(&st->mu);
    st->done = true;
    st->gone = true;
    st->suspended = false;
    stream_drop_queue_locked(st); /* nothing more will be sent */
    stream_watch_disarm_locked(st);
    fire = !st->on_close_fired;
    st->on_close_fired = true;
    pthread_mutex_unlock(&st->mu);
    stream_registry_del(st->srv, st);
    if (fire && st->on_close) {
        st->on_close(st->on_close_arg);
    }
}

struct http_stream *
http_respond_stream(struct http_request *req, int status,
                    const char *content_type, void (*on_close)(void *arg),
                    void *arg)
{
    struct http_stream *st = xcalloc(1, sizeof(*st));
    pthread_mutex_init(&st->mu, NULL);
    atomic_init(&st->refs, 2); /* handler side + MHD response */
    st->srv = req->srv;
    st->conn = req->conn;
    st->on_close = on_close;
    st->on_close_arg = arg;
    st->max_queued = HTTP_STREAM_MAX_QUEUED;
    st->fd = -1;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci) {
        st->fd = ci->connect_fd;
    }
    stream_registry_add(req->srv, st);

    req->responded = true;
    req->status = status;
    free(req->ctype);
    req->ctype = xstrdup(content_type);
    req->stream = st;
    return st;
}

void
http_stream_set_budget(struct http_stream *st, size_t max_queued,
                       atomic_size_t *total)
{
    pthread_mutex_lock(&st->mu);
    st->max_queued = max_queued ? max_queued : HTTP_STREAM_MAX_QUEUED;
    if (st->total) {
        atomic_fetch_sub(st->total, st->queued);
    }
    st->total = total;
    if (total) {
        atomic_fetch_add(total, st->queued);
    }
    pthread_mutex_unlock(&st->mu);
}

size_t
http_stream_queued(struct http_stream *st)
{
    pthread_mutex_lock(&st->mu);
    size_t n = st->queued;
    pthread_mutex_unlock(&st->mu);
    return n;
}

/* Give up on the client: drop what is queued, end the request. Its
 * connection may be blocked on a full socket buffer, where MHD would wait
 * for the timeout; shutting the socket down wakes it (MHD closes the fd
 * only after the request finished, so the fd is still ours to use while
 * !done). Caller holds st->mu. */
static void
stream_abort_locked(struct http_stream *st)
{
    st->gone = true;
    stream_drop_queue_locked(st);
    if (!st->done && st->fd >= 0) {
        shutdown(st->fd, SHUT_RDWR);
    }
    stream_resume_locked(st);
}

void
http_stream_abort(struct http_stream *st)
{
    pthread_mutex_lock(&st->mu);
    if (!st->gone) {
        stream_abort_locked(st);
    }
    pthread_mutex_unlock(&st->mu);
}

int
http_stream_write(struct http_stream *st, const char *data, size_t len)
{
    int ret = 0;
    pthread_mutex_lock(&st->mu);
    if (st->gone || st->closing) {
        ret = -EPIPE;
    } else if (st->queued > 0 && st->queued + len > st->max_queued) {
        /* Slow client: give up on it rather than buffer without bound. */
        stream_abort_locked(st);
        ret = -ENOBUFS;
    } else if (len > 0) {
        struct stream_chunk *c = xmalloc(sizeof(*c) + len);
        c->next = NULL;
        c->len = len;
        memcpy(c->data, data, len);
        if (st->tail) {
            st->tail->next = c;
        } else {
            st->head = c;
        }
        st->tail = c;
        st->queued += len;
        if (st->total) {
            atomic_fetch_add(st->total, len);
        }
        stream_resume_locked(st);
    }
    pthread_mutex_unlock(&st->mu);
    return ret;
}

void
http_stream_close(struct http_stream *st)
{
    if (!st) {
        return;
    }
    pthread_mutex_lock(&st->mu);
    st->closing = true;
    stream_resume_locked(st);
    pthread_mutex_unlock(&st->mu);
    stream_unref(st);
}

/* ---------------------------------------------------------------- */
/* watchdog: notices clients that hang up while their stream is parked */

static struct http_stream *
stream_lookup_ref(struct http_server *srv, uint64_t id)
{
    struct http_stream *found = NULL;
    pthread_mutex_lock(&srv->reg_mu);
    for (struct http_stream *st = srv->reg; st; st = st->reg_next) {
        if (st->id == id) {
            atomic_fetch_add(&st->refs, 1);
            found = st;
            break;
        }
    }
    pthread_mutex_unlock(&srv->reg_mu);
    return found;
}

static void *
watchdog_main(void *arg)
{
    struct http_server *srv = arg;
    struct epoll_event evs[64];

    for (;;) {
        int n = epoll_wait(srv->wd_epfd, evs, ARRAY_SIZE(evs), -1);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            log_error("watchdog epoll_wait failed", "errno=%d", errno);
            return NULL;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == 0) {
                return NULL; /* the shutdown eventfd */
            }
            struct http_stream *st = stream_lookup_ref(srv, evs[i].data.u64);
            if (!st) {
                continue;
            }
            pthread_mutex_lock(&st->mu);
            if (st->suspended) {
                st->gone = true;
                stream_resume_locked(st);
            }
            pthread_mutex_unlock(&st->mu);
            stream_unref(st);
        }
    }
}

/* ---------------------------------------------------------------- */
/* requests                                                          */

static void
request_free(struct http_request *req)
{
    dbuf_free(&req->body);
    free(req->ctype);
    free(req->resp_body);
    for (size_t i = 0; i < req->n_hdrs; i++) {
        free(req->hdrs[i].name);
        free(req->hdrs[i].value);
    }
    free(req->hdrs);
    free(req);
}

const char *
http_request_method(const struct http_request *req)
{
    return req->method;
}

const char *
http_request_path(const struct http_request *req)
{
    return req->path;
}

const char *
http_request_query(const struct http_request *req, const char *name)
{
    const char *value = NULL;
    size_t vlen = 0;
    if (MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, name,
                                      strlen(name), &value, &vlen) != MHD_YES) {
        return NULL;
    }
    return value ? value : ""; /* "?watch" has a key but no value */
}

const char *
http_request_header(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *
http_request_body(const struct http_request *req, size_t *len)
{
    if (len) {
        *len = req->body.len;
    }
    return req->body.data ? req->body.data : "";
}

const char *
http_request_peer_cn(const struct http_request *req)
{
    return req->hc ? req->hc->cn : NULL;
}

const char *
http_request_peer_org(const struct http_request *req)
{
    return req->hc ? req->hc->org : NULL;
}

const char *
http_request_remote(const struct http_request *req)
{
    return req->hc ? req->hc->remote : "";
}

void
http_response_header(struct http_request *req, const char *name,
                     const char *value)
{
    req->hdrs = xrealloc(req->hdrs, (req->n_hdrs + 1) * sizeof(*req->hdrs));
    req->hdrs[req->n_hdrs].name = xstrdup(name);
    req->hdrs[req->n_hdrs].value = xstrdup(value);
    req->n_hdrs++;
}

void
http_respond_take(struct http_request *req, int status,
                  const char *content_type, char *body, size_t len)
{
    if (req->responded) {
        log_error("second response to one request ignored", "path=%s",
                  req->path);
        free(body);
        return;
    }
    req->responded = true;
    req->status = status;
    req->ctype = content_type ? xstrdup(content_type) : NULL;
    req->resp_body = body;
    req->resp_len = body ? len : 0;
}

void
http_respond(struct http_request *req, int status, const char *content_type,
             const char *body, size_t len)
{
    char *copy = xmalloc(len + 1);
    if (len) {
        memcpy(copy, body, len);
    }
    copy[len] = '\0';
    http_respond_take(req, status, content_type, copy, len);
}

/* A Kubernetes Status body for errors produced by this module. */
static void
respond_status(struct http_request *req, int code, const char *reason,
               const char *message)
{
    char *body = xasprintf("{\"kind\":\"Status\",\"apiVersion\":\"v1\","
                           "\"metadata\":{},\"status\":\"Failure\","
                           "\"message\":\"%s\",\"reason\":\"%s\","
                           "\"details\":{},\"code\":%d}\n",
                           message, reason, code);
    req->responded = false;
    http_respond_take(req, code, "application/json", body, strlen(body));
}

/* Queue whatever the handler produced. */
static enum MHD_Result
request_queue(struct http_request *req)
{
    struct MHD_Response *resp;
    struct http_stream *st = req->stream;

    if (st) {
        resp = MHD_create_response_from_callback(
            MHD_SIZE_UNKNOWN, 32 * 1024, stream_read, st, stream_response_free);
    } else {
        resp = MHD_create_response_from_buffer_with_free_callback(
            req->resp_len, req->resp_body, free);
        if (resp) {
            req->resp_body = NULL; /* MHD owns it now */
        }
    }
    if (!resp) {
        log_error("cannot create response", "path=%s", req->path);
        if (st) {
            stream_response_free(st);
        }
        return MHD_NO;
    }
    if (req->ctype) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, req->ctype);
    }
    for (size_t i = 0; i < req->n_hdrs; i++) {
        MHD_add_response_header(resp, req->hdrs[i].name, req->hdrs[i].value);
    }
    enum MHD_Result r = MHD_queue_response(req->conn, req->status, resp);
    MHD_destroy_response(resp);
    return r;
}

/* Examine the TLS peer certificate once per connection. */
static void
conn_check_peer(struct http_server *srv, struct MHD_Connection *conn,
                struct http_conn *hc)
{
    hc->checked = true;
    if (!srv->tls || !srv->client_auth) {
        return;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (!ci || !ci->tls_session) {
        return;
    }
    gnutls_session_t s = ci->tls_session;
    if (gnutls_certificate_type_get(s) != GNUTLS_CRT_X509) {
        return;
    }
    /* The chain must lead to our CA and the leaf must be allowed for
     * client authentication (a serving cert is not a login). */
    gnutls_typed_vdata_st vdata = {
        .type = GNUTLS_DT_KEY_PURPOSE_OID,
        .data = (unsigned char *) GNUTLS_KP_TLS_WWW_CLIENT,
    };
    unsigned status = 0;
    if (gnutls_certificate_verify_peers(s, &vdata, 1, &status) != 0 ||
        status != 0) {
        return;
    }
    unsigned n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
    if (!certs || n == 0) {
        return;
    }
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) != 0) {
        return;
    }
    if (gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) == 0) {
        char buf[256];
        size_t len = sizeof(buf);
        if (gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0,
                                          0, buf, &len) == 0) {
            hc->cn = xstrndup(buf, len);
        }
        len = sizeof(buf);
        if (gnutls_x509_crt_get_dn_by_oid(
                crt, GNUTLS_OID_X520_ORGANIZATION_NAME, 0, 0, buf, &len) == 0) {
            hc->org = xstrndup(buf, len);
        }
    }
    gnutls_x509_crt_deinit(crt);
}

static struct http_conn *
conn_context(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static enum MHD_Result
access_handler(void *cls, struct MHD_Connection *conn, const char *url,
               const char *method, const char *version, const char *upload_data,
               size_t *upload_data_size, void **con_cls)
{
    struct http_server *srv = cls;
    struct http_request *req = *con_cls;

    if (!req) {
        /* Headers are in: set up the request. */
        req = xcalloc(1, sizeof(*req));
        req->srv = srv;
        req->conn = conn;
        req->method = method;
        req->path = url;
        dbuf_init(&req->body);
        req->hc = conn_context(conn);
        if (req->hc && !req->hc->checked) {
            conn_check_peer(srv, conn, req->hc);
        }
        *con_cls = req;

        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     "Content-Length");
        const char *expect =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Expect");
        unsigned long long clen = cl ? strtoull(cl, NULL, 10) : 0;
        if (clen > srv->max_body) {
            req->too_large = true;
            /* Refuse before reading when the client waits for "100
             * Continue" (it has not sent the body) or the body is absurd.
             * Otherwise the client is already sending: read and drop the
             * body so it can read the 413 instead of a reset. */
            if ((expect && strcasecmp(expect, "100-continue") == 0) ||
                clen > HTTP_DRAIN_LIMIT(srv->max_body)) {
                char *msg = xasprintf("request body too large: the limit "
                                      "is %zu bytes",
                                      srv->max_body);
                respond_status(req, 413, "RequestEntityTooLarge", msg);
                free(msg);
                return request_queue(req);
            }
        }
        return MHD_YES;
    }

    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        req->body_seen += n;
        if (!req->too_large && req->body.len + n > srv->max_body) {
            req->too_large = true;
            dbuf_free(&req->body);
            dbuf_init(&req->body);
        }
        if (!req->too_large) {
            dbuf_append(&req->body, upload_data, n);
        } else if (req->body_seen > HTTP_DRAIN_LIMIT(srv->max_body)) {
            return MHD_NO; /* still sending: drop the connection */
        }
        *upload_data_size = 0;
        return MHD_YES;
    }

    if (req->responded) {
        return MHD_YES; /* already queued (early 413) */
    }
    if (req->too_large) {
        char *msg = xasprintf("request body too large: the limit is %zu bytes",
                              srv->max_body);
        respond_status(req, 413, "RequestEntityTooLarge", msg);
        free(msg);
    } else if (atomic_load(&srv->stopping)) {
        respond_status(req, 503, "ServiceUnavailable",
                       "the server is shutting down");
    } else {
        int64_t t0 = time_mono_ns();
        srv->handler(srv->arg, req);
        if (!req->responded) {
            log_error("handler gave no response", "method=%s path=%s",
                      req->method, req->path);
            respond_status(req, 500, "InternalError",
                           "the handler gave no response");
        }
        log_debug("request",
                  "method=%s path=\"%s\" status=%d us=%lld "
                  "stream=%d remote=%s",
                  req->method, req->path, req->status,
                  (long long) ((time_mono_ns() - t0) / 1000),
                  req->stream != NULL, req->hc ? req->hc->remote : "");
    }
    return request_queue(req);
}

static void
request_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                  enum MHD_RequestTerminationCode toe)
{
    struct http_request *req = *con_cls;
    if (!req) {
        return;
    }
    *con_cls = NULL;
    if (req->stream) {
        stream_finish(req->stream);
    }
    request_free(req);
}

static void
connection_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                  enum MHD_ConnectionNotificationCode t)
{
    if (t == MHD_CONNECTION_NOTIFY_STARTED) {
        struct http_conn *hc = xcalloc(1, sizeof(*hc));
        /* The TLS handshake goes out in several small writes; with Nagle
         * each waits for the client's delayed ACK. */
        const union MHD_ConnectionInfo *fdi =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (fdi) {
            int one = 1;
            setsockopt(fdi->connect_fd, IPPROTO_TCP, TCP_NODELAY, &one,
                       sizeof(one));
        }
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr) {
            const struct sockaddr *sa = ci->client_addr;
            char ip[INET6_ADDRSTRLEN] = "";
            if (sa->sa_family == AF_INET) {
                const struct sockaddr_in *in = (const void *) sa;
                inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
                snprintf(hc->remote, sizeof(hc->remote), "%s:%u", ip,
                         ntohs(in->sin_port));
            } else if (sa->sa_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const void *) sa;
                inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
                snprintf(hc->remote, sizeof(hc->remote), "[%s]:%u", ip,
                         ntohs(in6->sin6_port));
            }
        }
        *socket_context = hc;
    } else {
        struct http_conn *hc = *socket_context;
        if (hc) {
            free(hc->cn);
            free(hc->org);
            free(hc);
        }
        *socket_context = NULL;
    }
}

static void __attribute__((format(printf, 2, 0)))
mhd_log(void *cls, const char *fmt, va_list ap)
{
    /* MHD reports every failed TLS handshake and reset connection here;
     * those are the clients' business, so keep them at debug. */
    if (!log_enabled(DPF_LOG_DEBUG)) {
        return;
    }
    char buf[512];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        buf[--n] = '\0';
    }
    for (char *p = buf; *p; p++) {
        if (*p == '"') {
            *p = '\'';
        }
    }
    log_debug("libmicrohttpd", "detail=\"%s\"", buf);
}

/* ---------------------------------------------------------------- */
/* server                                                            */

static int
read_pem(const char *path, const char *what, char **out, struct dpf_error *err)
{
    size_t len;
    int r = file_read_all(path, out, &len);
    if (r < 0) {
        dpf_error_set(err, 500, "InternalError", "cannot read %s %s: %s", what,
                      path, strerror(-r));
    }
    return r;
}

static int
parse_address(const char *address, uint16_t port, struct sockaddr_storage *ss,
              bool *v6)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in = (struct sockaddr_in *) ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) ss;
    if (inet_pton(AF_INET, address, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        *v6 = false;
        return 0;
    }
    const char *a = address;
    char buf[INET6_ADDRSTRLEN];
    size_t len = strlen(a);
    if (len > 2 && a[0] == '[' && a[len - 1] == ']' && len - 2 < sizeof(buf)) {
        memcpy(buf, a + 1, len - 2);
        buf[len - 2] = '\0';
        a = buf;
    }
    if (inet_pton(AF_INET6, a, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        *v6 = true;
        return 0;
    }
    return -EINVAL;
}

static void
server_free(struct http_server *srv)
{
    if (srv->wd_started) {
        uint64_t one = 1;
        ssize_t w = write(srv->wd_evfd, &one, sizeof(one));
        (void) w;
        pthread_join(srv->wd_thread, NULL);
    }
    if (srv->wd_epfd >= 0) {
        close(srv->wd_epfd);
    }
    if (srv->wd_evfd >= 0) {
        close(srv->wd_evfd);
    }
    free(srv->cert_pem);
    free(srv->key_pem);
    free(srv->ca_pem);
    pthread_mutex_destroy(&srv->reg_mu);
    free(srv);
}

struct http_server *
http_server_create(const struct http_server_config *cfg,
                   http_handler_fn handler, void *arg, struct dpf_error *err)
{
    struct http_server *srv = xcalloc(1, sizeof(*srv));
    pthread_mutex_init(&srv->reg_mu, NULL);
    atomic_init(&srv->stopping, false);
    srv->handler = handler;
    srv->arg = arg;
    srv->max_body = cfg->max_body ? cfg->max_body : HTTP_DEFAULT_MAX_BODY;
    srv->wd_epfd = -1;
    srv->wd_evfd = -1;

    unsigned threads = cfg->threads ? cfg->threads : HTTP_DEFAULT_THREADS;
    unsigned max_conn =
        cfg->max_connections ? cfg->max_connections : HTTP_DEFAULT_MAX_CONN;

    if ((cfg->cert_file == NULL) != (cfg->key_file == NULL)) {
        dpf_error_set(err, 500, "InternalError",
                      "http server: cert_file and key_file go together");
        goto fail;
    }
    if (cfg->cert_file) {
        srv->tls = true;
        if (read_pem(cfg->cert_file, "certificate", &srv->cert_pem, err) < 0 ||
            read_pem(cfg->key_file, "private key", &srv->key_pem, err) < 0) {
            goto fail;
        }
        if (cfg->client_ca_file) {
            if (read_pem(cfg->client_ca_file, "client CA", &srv->ca_pem, err) <
                0) {
                goto fail;
            }
            srv->client_auth = true;
        }
    }

    srv->wd_epfd = epoll_create1(EPOLL_CLOEXEC);
    srv->wd_evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (srv->wd_epfd < 0 || srv->wd_evfd < 0) {
        dpf_error_set(err, 500, "InternalError", "http server: epoll: %s",
                      strerror(errno));
        goto fail;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
    epoll_ctl(srv->wd_epfd, EPOLL_CTL_ADD, srv->wd_evfd, &ev);

    /* poll(), not epoll: libmicrohttpd 0.9.75's epoll mode keeps a TLS
     * connection marked readable while gnutls_handshake() returns AGAIN
     * and spins on recv() until the client answers (8x slower to accept
     * TLS handshakes on 2 cores, see docs/dev/http-server.md). Parked
     * (suspended) connections leave the poll set, so idle watches cost
     * nothing per iteration; each worker polls only its active ones. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
                     MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    struct sockaddr_storage ss;
    bool use_addr = cfg->address && *cfg->address &&
                    strcmp(cfg->address, "0.0.0.0") != 0 &&
                    strcmp(cfg->address, "::") != 0;
    if (use_addr) {
        bool v6 = false;
        if (parse_address(cfg->address, cfg->port, &ss, &v6) < 0) {
            dpf_error_set(err, 400, "BadRequest",
                          "http server: bind address \"%s\" is not an IPv4 "
                          "or IPv6 address",
                          cfg->address);
            goto fail;
        }
        if (v6) {
            flags |= MHD_USE_IPv6;
        }
    } else if (cfg->address && strcmp(cfg->address, "0.0.0.0") == 0) {
        /* IPv4 wildcard only, as asked. */
        parse_address("0.0.0.0", cfg->port, &ss, &(bool){false});
        use_addr = true;
    } else {
        flags |= MHD_USE_DUAL_STACK;
    }
    if (srv->tls) {
        flags |= MHD_USE_TLS;
    }

    struct MHD_OptionItem opts[16];
    size_t n = 0;
    opts[n++] =
        (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, threads, NULL};
    opts[n++] =
        (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, max_conn, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
                                        HTTP_CONN_TIMEOUT_S, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                        HTTP_CONN_MEMORY, NULL};
    opts[n++] =
        (struct MHD_OptionItem){MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED,
                                        (intptr_t) request_completed, srv};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION,
                                        (intptr_t) connection_notify, srv};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER,
                                        (intptr_t) mhd_log, srv};
    if (use_addr) {
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, &ss};
    }
    if (srv->tls) {
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0,
                                            srv->cert_pem};
        opts[n++] =
            (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, srv->key_pem};
        if (srv->ca_pem) {
            opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0,
                                                srv->ca_pem};
        }
    }
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

    srv->daemon = MHD_start_daemon(flags, cfg->port, NULL, NULL, access_handler,
                                   srv, MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    if (!srv->daemon) {
        dpf_error_set(err, 500, "InternalError",
                      "http server: cannot listen on %s port %u (address in "
                      "use, bad certificate or key?)",
                      cfg->address ? cfg->address : "*", cfg->port);
        goto fail;
    }
    const union MHD_DaemonInfo *di =
        MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = di ? di->port : cfg->port;

    if (pthread_create(&srv->wd_thread, NULL, watchdog_main, srv) != 0) {
        dpf_error_set(err, 500, "InternalError",
                      "http server: cannot start a thread");
        MHD_stop_daemon(srv->daemon);
        goto fail;
    }
    srv->wd_started = true;
    return srv;

fail:
    server_free(srv);
    return NULL;
}

uint16_t
http_server_port(const struct http_server *srv)
{
    return srv->port;
}

void
http_server_destroy(struct http_server *srv)
{
    if (!srv) {
        return;
    }
    /* Readers stop parking connections once this is set; then wake every
     * parked one so MHD never sees a suspended connection at stop (it
     * would abort the process). */
    atomic_store(&srv->stopping, true);
    pthread_mutex_lock(&srv->reg_mu);
    for (struct http_stream *st = srv->reg; st; st = st->reg_next) {
        pthread_mutex_lock(&st->mu);
        st->gone = true;
        stream_resume_locked(st);
        pthread_mutex_unlock(&st->mu);
    }
    pthread_mutex_unlock(&srv->reg_mu);
    MHD_stop_daemon(srv->daemon);
    server_free(srv);
}
