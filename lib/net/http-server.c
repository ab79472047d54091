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
 * Connections: every connection is tracked (struct http_conn, under
 * srv->conn_mu) from MHD's STARTED to its CLOSED notification, which MHD
 * sends before it closes the socket, so under conn_mu the fd is ours to
 * shutdown(). Untrusted connections sit on a list in accept order (the
 * eviction order) and, until a request's headers are in, on a deadline
 * list that the watchdog thread expires. Eviction and expiry only
 * shutdown() the socket; MHD then sees the hang-up and cleans up itself.
 *
 * Answers MHD cannot queue: MHD 0.9.75 accepts a response only before the
 * body is read or after all of it was, so a chunked body that grows past
 * max_body, and a body that stalls, are answered by writing a complete
 * "Connection: close" response on the socket (or TLS session) ourselves,
 * in the connection's own thread, where MHD is not using it; then the
 * connection is closed.
 *
 * Stream lifetime: two references, one for the handler side (dropped by
 * http_stream_close) and one for the MHD response (dropped when MHD frees
 * the response). Lock order: MHD's response mutex -> stream mutex -> MHD's
 * cleanup mutex (taken inside MHD_suspend/resume_connection); the server's
 * registry mutex is never held while taking a stream mutex except in the
 * shutdown sweep and the watchdog lookup, which take no MHD lock under it
 * before the stream mutex. */
#include "lib/net/http-server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/base/log.h"
#include "lib/base/thread.h"
#include "lib/base/util.h"

LOG_MODULE(http);

#define HTTP_DEFAULT_THREADS 4
#define HTTP_DEFAULT_MAX_BODY (3u * 1024 * 1024)
#define HTTP_STREAM_MAX_QUEUED (16u * 1024 * 1024)
#define HTTP_CONN_MEMORY (32u * 1024)
#define HTTP_CONN_MEMORY_MIN (4u * 1024)
/* Bytes of an over-limit body we read and drop so that the client sees
 * the 413; past this we close the connection instead. */
#define HTTP_DRAIN_LIMIT(max_body) (4 * (size_t) (max_body) + (1u << 20))
/* After answering in the middle of a body we keep reading (and dropping)
 * it this long, so the client reads the answer instead of a reset. */
#define HTTP_LINGER_S 2
/* A chunked body whose data ends like the end of a chunked body ("0" and
 * an empty line) while the parser is still inside a chunk means the
 * client's chunk sizes and ours disagree (MHD 0.9.75 takes
 * ffffffffffffffff as a real size and hides chunk-size lines from us): if
 * nothing more arrives within this many seconds, answer 400. */
#define HTTP_CHUNK_DESYNC_S 1
/* Upgraded connections tracked for shutdown (beyond: refused with 503). */
#define HTTP_MAX_UPGRADES 256

/* Per-connection state (MHD socket context). The peer identity is only
 * touched by the connection's worker thread; the tracking fields below
 * `fd` are guarded by srv->conn_mu. */
struct http_conn {
    bool checked;                      /* peer certificate examined */
    char *cn;                          /* verified subject CN or NULL */
    char *org;                         /* verified subject first O or NULL */
    char *orgs[HTTP_PEER_ORGS_MAX];    /* every O of the subject, in order */
    size_t n_orgs;                     /* count (org == orgs[0]) */
    char remote[INET6_ADDRSTRLEN + 8]; /* peer address text */
    int fd;                            /* socket (valid until CLOSED) */
    int64_t deadline_ms;               /* headers due by (mono ms) */
    bool trusted;                      /* a request passed the gate */
    bool in_request;                   /* headers in, not yet answered */
    bool gone;                         /* evicted/expired: fd shut down */
    bool on_untrusted;                 /* on srv->untrusted list */
    bool on_pending;                   /* on srv->pending list */
    struct http_conn *u_prev;          /* untrusted list, accept order */
    struct http_conn *u_next;
    struct http_conn *p_prev; /* pending list, deadline order */
    struct http_conn *p_next;
};

/* A doubly linked list of http_conn through one pair of link fields. */
struct conn_list {
    struct http_conn *head;
    struct http_conn *tail;
};

/* One queued piece of stream data. */
/* MHD gives every streamed response a buffer of this size for the
 * whole stream's life, and each read fills one TLS record at most: a
 * server with 1,000 watches held 32 MB of them at 32 KiB. 8 KiB keeps a
 * watch at about 30 KB; a large backlog goes out as more records. */
#define HTTP_STREAM_BLOCK (8 * 1024)

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
    struct http_server *srv;      /* server */
    struct MHD_Connection *conn;  /* MHD connection */
    struct http_conn *hc;         /* connection context (peer identity) */
    const char *method;           /* MHD-owned */
    const char *path;             /* MHD-owned, decoded */
    struct dbuf body;             /* accumulated body */
    size_t body_seen;             /* total body bytes received */
    bool chunked;                 /* body in chunked transfer coding */
    bool in_body;                 /* between headers and the last call */
    bool too_large;               /* body exceeded max_body */
    bool desync;                  /* chunked data ends like a body end */
    bool direct;                  /* answered on the wire ourselves */
    int64_t direct_at_ms;         /* when (mono ms) */
    bool queued;                  /* response handed to MHD */
    bool responded;               /* a response was given */
    int status;                   /* response status */
    char *ctype;                  /* response content type (owned) */
    char *resp_body;              /* response body (owned) */
    size_t resp_len;              /* its length */
    struct http_header *hdrs;     /* extra response headers */
    size_t n_hdrs;                /* count */
    struct http_stream *stream;   /* streaming response, if any */
    struct http_upgrade *upgrade; /* 101 answer, if any */
    int64_t t0_ns;                /* headers in (mono ns) */
    bool observed;                /* the observer was told */
    void *obs_token;              /* its token for a stream's end */
};

struct http_upgrade {
    struct http_server *srv;               /* owning server */
    http_upgrade_fn fn;                    /* the taker */
    void *arg;                             /* its argument */
    atomic_bool handed;                    /* fn was called */
    int fd;                                /* socket MHD gave us */
    char *extra;                           /* early bytes (owned) */
    size_t extra_len;                      /* their count */
    struct MHD_UpgradeResponseHandle *urh; /* MHD's handle */
    void *obs_token;                       /* the observer's, or NULL */
    int64_t t0_ns;                         /* the request's start */
};

struct http_server {
    struct MHD_Daemon *daemon;     /* MHD daemon */
    http_handler_fn handler;       /* user handler */
    http_gate_fn gate;             /* header-time gate or NULL */
    void *arg;                     /* their argument */
    size_t max_body;               /* body limit */
    unsigned max_conn;             /* untrusted evicted past this */
    unsigned header_timeout_s;     /* handshake + headers deadline */
    unsigned idle_timeout_s;       /* silence allowed in a request */
    pthread_mutex_t conn_mu;       /* guards the connection tracking below */
    struct conn_list untrusted;    /* untrusted connections, oldest first */
    struct conn_list pending;      /* awaiting headers, earliest deadline 1st */
    unsigned n_conns;              /* tracked, not gone */
    unsigned n_untrusted;          /* of those untrusted */
    uint64_t n_evicted;            /* since start */
    uint64_t n_expired;            /* since start */
    bool tls;                      /* HTTPS */
    int unix_fd;                   /* Unix listening socket, or -1 */
    char *unix_path;               /* its path (unlinked at destroy) */
    char *local_user;              /* a local peer's identity, or NULL */
    char **local_groups;           /* its groups (NULL-terminated) */
    bool client_auth;              /* client CA configured */
    uint16_t port;                 /* bound port */
    char *cert_pem;                /* kept alive for MHD */
    char *key_pem;                 /* kept alive for MHD */
    char *ca_pem;                  /* kept alive for MHD */
    atomic_bool stopping;          /* destroy in progress */
    pthread_mutex_t reg_mu;        /* guards the stream registry */
    struct http_stream *reg;       /* live streams */
    uint64_t next_stream_id;       /* registry ids */
    int wd_epfd;                   /* watchdog epoll set */
    int wd_evfd;                   /* watchdog wake-up: deadlines, shutdown */
    pthread_t wd_thread;           /* watchdog thread */
    bool wd_started;               /* thread running */
    pthread_mutex_t up_mu;         /* guards the upgrade count and fds */
    pthread_cond_t up_cond;        /* signalled when an upgrade closes */
    unsigned n_upgrades;           /* handed over, not closed */
    int up_fds[HTTP_MAX_UPGRADES]; /* their sockets (-1 free) */

    /* Answer observers (both NULL = none). */
    http_observe_fn observe;
    http_observe_end_fn observe_end;
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
/* connection tracking: deadlines and eviction (under srv->conn_mu)  */

static struct http_conn **
conn_prev(struct http_conn *c, bool pending)
{
    return pending ? &c->p_prev : &c->u_prev;
}

static struct http_conn **
conn_next(struct http_conn *c, bool pending)
{
    return pending ? &c->p_next : &c->u_next;
}

static void
conn_list_append(struct conn_list *l, struct http_conn *c, bool pending)
{
    *conn_prev(c, pending) = l->tail;
    *conn_next(c, pending) = NULL;
    if (l->tail) {
        *conn_next(l->tail, pending) = c;
    } else {
        l->head = c;
    }
    l->tail = c;
}

static void
conn_list_remove(struct conn_list *l, struct http_conn *c, bool pending)
{
    struct http_conn *prev = *conn_prev(c, pending);
    struct http_conn *next = *conn_next(c, pending);
    if (prev) {
        *conn_next(prev, pending) = next;
    } else {
        l->head = next;
    }
    if (next) {
        *conn_prev(next, pending) = prev;
    } else {
        l->tail = prev;
    }
    *conn_prev(c, pending) = *conn_next(c, pending) = NULL;
}

/* Wake the watchdog so it recomputes its next deadline. */
static void
watchdog_wake(struct http_server *srv)
{
    uint64_t one = 1;
    ssize_t w = write(srv->wd_evfd, &one, sizeof(one));
    (void) w; /* a full counter wakes it as well */
}

/* Arm the header deadline. Caller holds conn_mu. */
static void
conn_arm_deadline_locked(struct http_server *srv, struct http_conn *hc)
{
    if (hc->on_pending) {
        conn_list_remove(&srv->pending, hc, true);
    }
    bool was_empty = srv->pending.head == NULL;
    /* Every deadline is now + one constant, so appending keeps the list
     * sorted. */
    hc->deadline_ms = time_mono_ms() + 1000 * (int64_t) srv->header_timeout_s;
    conn_list_append(&srv->pending, hc, true);
    hc->on_pending = true;
    if (was_empty) {
        watchdog_wake(srv);
    }
}

static void
conn_disarm_deadline_locked(struct http_server *srv, struct http_conn *hc)
{
    if (hc->on_pending) {
        conn_list_remove(&srv->pending, hc, true);
        hc->on_pending = false;
    }
}

static void
conn_untrust_remove_locked(struct http_server *srv, struct http_conn *hc)
{
    if (hc->on_untrusted) {
        conn_list_remove(&srv->untrusted, hc, false);
        hc->on_untrusted = false;
        srv->n_untrusted--;
    }
}

/* Tell a connection to go: MHD sees the hang-up and closes it itself.
 * Caller holds conn_mu, which keeps MHD from closing the fd meanwhile. */
static void
conn_drop_locked(struct http_server *srv, struct http_conn *hc)
{
    shutdown(hc->fd, SHUT_RDWR);
    hc->gone = true;
    conn_disarm_deadline_locked(srv, hc);
    conn_untrust_remove_locked(srv, hc);
    srv->n_conns--;
}

/* A new connection: track it and, past the limit, make room by dropping
 * the oldest untrusted connection that is not in the middle of a
 * request. */
static void
conn_track_start(struct http_server *srv, struct http_conn *hc)
{
    pthread_mutex_lock(&srv->conn_mu);
    srv->n_conns++;
    srv->n_untrusted++;
    conn_list_append(&srv->untrusted, hc, false);
    hc->on_untrusted = true;
    conn_arm_deadline_locked(srv, hc);
    while (srv->n_conns > srv->max_conn) {
        struct http_conn *victim = srv->untrusted.head;
        while (victim && (victim->in_request || victim == hc)) {
            victim = victim->u_next;
        }
        if (!victim) {
            break; /* only trusted or busy ones: MHD's hard limit holds */
        }
        conn_drop_locked(srv, victim);
        srv->n_evicted++;
        log_debug("connection evicted", "remote=%s", victim->remote);
    }
    pthread_mutex_unlock(&srv->conn_mu);
}

static void
conn_track_end(struct http_server *srv, struct http_conn *hc)
{
    pthread_mutex_lock(&srv->conn_mu);
    if (!hc->gone) {
        conn_disarm_deadline_locked(srv, hc);
        conn_untrust_remove_locked(srv, hc);
        srv->n_conns--;
        hc->gone = true;
    }
    pthread_mutex_unlock(&srv->conn_mu);
}

/* A request's headers are in: the deadline is met. */
static void
conn_track_request(struct http_server *srv, struct http_conn *hc)
{
    pthread_mutex_lock(&srv->conn_mu);
    hc->in_request = true;
    conn_disarm_deadline_locked(srv, hc);
    pthread_mutex_unlock(&srv->conn_mu);
}

/* The request is over; an untrusted connection gets a fresh deadline for
 * its next request's headers. Returns whether the connection is trusted. */
static bool
conn_track_request_done(struct http_server *srv, struct http_conn *hc,
                        bool trust)
{
    pthread_mutex_lock(&srv->conn_mu);
    hc->in_request = false;
    if (trust && !hc->gone) {
        hc->trusted = true;
        conn_untrust_remove_locked(srv, hc);
    }
    if (!hc->trusted && !hc->gone) {
        conn_arm_deadline_locked(srv, hc);
    }
    bool trusted = hc->trusted;
    pthread_mutex_unlock(&srv->conn_mu);
    return trusted;
}

/* Close connections whose header deadline passed; returns the ms until
 * the next deadline, -1 if none. */
static int
conn_expire(struct http_server *srv)
{
    int wait_ms = -1;
    pthread_mutex_lock(&srv->conn_mu);
    int64_t now = time_mono_ms();
    struct http_conn *hc;
    while ((hc = srv->pending.head) && hc->deadline_ms <= now) {
        log_debug("header deadline passed", "remote=%s", hc->remote);
        conn_drop_locked(srv, hc);
        srv->n_expired++;
    }
    if (hc) {
        int64_t left = hc->deadline_ms - now;
        wait_ms = left > INT32_MAX ? INT32_MAX : (int) left;
    }
    pthread_mutex_unlock(&srv->conn_mu);
    return wait_ms;
}

void
http_server_get_stats(struct http_server *srv, struct http_server_stats *out)
{
    pthread_mutex_lock(&srv->conn_mu);
    out->connections = srv->n_conns;
    out->untrusted = srv->n_untrusted;
    out->evicted = srv->n_evicted;
    out->deadline_expired = srv->n_expired;
    pthread_mutex_unlock(&srv->conn_mu);
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

/* Also enforces the header deadlines: it sleeps until the earliest one. */
static void *
watchdog_main(void *arg)
{
    struct http_server *srv = arg;
    struct epoll_event evs[64];

    for (;;) {
        int wait_ms = conn_expire(srv);
        int n = epoll_wait(srv->wd_epfd, evs, ARRAY_SIZE(evs), wait_ms);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            log_error("watchdog epoll_wait failed", "errno=%d", errno);
            return NULL;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == 0) {
                /* The eventfd: a new earliest deadline, or shutdown. */
                uint64_t v;
                ssize_t r = read(srv->wd_evfd, &v, sizeof(v));
                (void) r;
                if (atomic_load(&srv->stopping)) {
                    return NULL;
                }
                continue;
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

/* Collects every value of one key of one kind. */
struct value_scan {
    const char *name; /* wanted */
    size_t name_len;  /* its length */
    bool nocase;      /* header names compare without case */
    const char **out; /* found values */
    size_t max;       /* room in out */
    size_t n;         /* found so far (may exceed max) */
};

static enum MHD_Result
value_scan_visit(void *cls, enum MHD_ValueKind kind, const char *key,
                 size_t key_size, const char *value, size_t value_size)
{
    struct value_scan *vs = cls;
    (void) kind;
    (void) value_size;
    if (key_size != vs->name_len ||
        (vs->nocase ? strncasecmp(key, vs->name, key_size)
                    : strncmp(key, vs->name, key_size)) != 0) {
        return MHD_YES;
    }
    if (vs->n < vs->max) {
        vs->out[vs->n] = value ? value : "";
    }
    vs->n++;
    return MHD_YES;
}

size_t
http_request_query_values(const struct http_request *req, const char *name,
                          const char **out, size_t max)
{
    struct value_scan vs = {name, strlen(name), false, out, max, 0};
    MHD_get_connection_values_n(req->conn, MHD_GET_ARGUMENT_KIND,
                                value_scan_visit, &vs);
    return vs.n;
}

size_t
http_request_header_values(const struct http_request *req, const char *name,
                           const char **out, size_t max)
{
    struct value_scan vs = {name, strlen(name), true, out, max, 0};
    MHD_get_connection_values_n(req->conn, MHD_HEADER_KIND, value_scan_visit,
                                &vs);
    return vs.n;
}

/* Finds the first header called `name` and the header line after it. */
struct header_scan {
    const char *name;      /* wanted */
    size_t name_len;       /* its length */
    const char *value;     /* found value */
    size_t value_len;      /* its length as MHD sees it */
    const char *next_name; /* the following header's name, if any */
    int state;             /* 0 looking, 1 found, 2 done */
};

static enum MHD_Result
header_scan_visit(void *cls, enum MHD_ValueKind kind, const char *key,
                  size_t key_size, const char *value, size_t value_size)
{
    struct header_scan *hs = cls;
    if (hs->state == 1) {
        hs->next_name = key;
        hs->state = 2;
        return MHD_NO;
    }
    if (key_size == hs->name_len && strncasecmp(key, hs->name, key_size) == 0) {
        hs->value = value;
        hs->value_len = value_size;
        hs->state = 1;
    }
    return MHD_YES;
}

/* MHD 0.9.75 measures header values with strlen(), so a NUL byte cuts a
 * value short and the rest of the line is silently dropped. It parses the
 * header block in place ([method, method + header size) of its read
 * buffer, each line's CR and LF overwritten with NULs), so the bytes
 * between the end of the value and the start of the next line (or the end
 * of the block) show what was dropped: anything beyond the line end
 * itself (CRLF, or CRLF CRLF for the last header) is the NUL and what
 * followed it. Where the layout is not as expected (a folded header MHD
 * moved, another MHD) we add nothing. Not covered: a NUL right before a
 * bare-LF line end looks exactly like CRLF. */
const char *
http_request_header_n(const struct http_request *req, const char *name,
                      size_t *len)
{
    struct header_scan hs = {.name = name, .name_len = strlen(name)};
    MHD_get_connection_values_n(req->conn, MHD_HEADER_KIND, header_scan_visit,
                                &hs);
    *len = 0;
    if (hs.state == 0 || !hs.value) {
        return NULL;
    }
    *len = hs.value_len;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
        req->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    const char *block = req->method;
    if (!ci || !block) {
        return hs.value;
    }
    const char *block_end = block + ci->header_size;
    const char *end = hs.next_name ? hs.next_name : block_end;
    const char *vend = hs.value + hs.value_len;
    size_t line_end = hs.next_name ? 2 : 4;
    if (hs.value < block || end > block_end || end <= vend || *vend != '\0') {
        return hs.value;
    }
    size_t gap = (size_t) (end - vend);
    if (gap > line_end) {
        *len += gap - line_end;
    }
    return hs.value;
}

void
http_request_mark_trusted(struct http_request *req)
{
    struct http_server *srv = req->srv;
    struct http_conn *hc = req->hc;
    if (!hc) {
        return;
    }
    pthread_mutex_lock(&srv->conn_mu);
    bool was = hc->trusted;
    if (!hc->gone) {
        hc->trusted = true;
        conn_untrust_remove_locked(srv, hc);
    }
    pthread_mutex_unlock(&srv->conn_mu);
    if (!was) {
        /* A client with credentials may keep its connection for the
         * next request. */
        MHD_set_connection_option(req->conn, MHD_CONNECTION_OPTION_TIMEOUT,
                                  srv->idle_timeout_s);
    }
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

const char *const *
http_request_peer_orgs(const struct http_request *req, size_t *n)
{
    *n = req->hc ? req->hc->n_orgs : 0;
    return req->hc ? (const char *const *) req->hc->orgs : NULL;
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

/* A Kubernetes Status body for errors produced by this module (message
 * and reason are ours: no JSON escaping needed). */
static char *
status_body(int code, const char *reason, const char *message)
{
    return xasprintf("{\"kind\":\"Status\",\"apiVersion\":\"v1\","
                     "\"metadata\":{},\"status\":\"Failure\","
                     "\"message\":\"%s\",\"reason\":\"%s\","
                     "\"details\":{},\"code\":%d}\n",
                     message, reason, code);
}

static void
respond_status(struct http_request *req, int code, const char *reason,
               const char *message)
{
    char *body = status_body(code, reason, message);
    req->responded = false;
    http_respond_take(req, code, "application/json", body, strlen(body));
}

/* Tell the observer about the answer, once. */
static void
request_observe(struct http_request *req)
{
    struct http_server *srv = req->srv;
    if (req->observed || !srv->observe) {
        return;
    }
    req->observed = true;
    bool long_running = req->stream || req->upgrade;
    void *tok = srv->observe(srv->arg, req, req->status,
                             time_mono_ns() - req->t0_ns, long_running);
    if (req->stream) {
        req->obs_token = tok;
    } else if (req->upgrade) {
        req->upgrade->obs_token = tok;
        req->upgrade->t0_ns = req->t0_ns;
    }
}

/* A long answer ended: hand the observer its token back. */
static void
observe_end(struct http_server *srv, void *tok, int64_t t0_ns)
{
    if (tok && srv->observe_end) {
        srv->observe_end(srv->arg, tok, time_mono_ns() - t0_ns);
    }
}

/* Write all of buf to the client, TLS or plain. The socket is
 * non-blocking; a short answer fits its empty send buffer, but wait a
 * little if it does not. Runs in the connection's worker thread while MHD
 * is not using the connection (inside one of our callbacks). */
static int
conn_write_all(struct http_request *req, const char *buf, size_t len)
{
    int fd = req->hc ? req->hc->fd : -1;
    gnutls_session_t tls = NULL;
    if (req->srv->tls) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(
            req->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        if (!ci || !ci->tls_session) {
            return -ENOTCONN;
        }
        tls = ci->tls_session;
    }
    if (fd < 0) {
        return -EBADF;
    }
    size_t off = 0;
    for (int waits = 0; off < len;) {
        ssize_t w;
        bool again;
        if (tls) {
            w = gnutls_record_send(tls, buf + off, len - off);
            again = w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED;
        } else {
            w = send(fd, buf + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            again = w < 0 && (errno == EAGAIN || errno == EINTR);
        }
        if (w > 0) {
            off += (size_t) w;
        } else if (again && waits++ < 20) {
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            poll(&pfd, 1, 50);
        } else {
            return -EIO;
        }
    }
    return 0;
}

/* Answer with a Status on the wire, outside MHD (which cannot queue a
 * response in the middle of a body), and mark the connection for closing:
 * the caller then drops what the client still sends until it goes away or
 * the linger time is over. */
static void
respond_direct(struct http_request *req, int code, const char *phrase,
               const char *reason, const char *message)
{
    char *body = status_body(code, reason, message);
    char *msg = xasprintf("HTTP/1.1 %d %s\r\n"
                          "Content-Type: application/json\r\n"
                          "Content-Length: %zu\r\n"
                          "Connection: close\r\n\r\n%s",
                          code, phrase, strlen(body), body);
    int r = conn_write_all(req, msg, strlen(msg));
    log_debug("answered outside MHD",
              "method=%s path=\"%s\" status=%d "
              "sent=%d remote=%s",
              req->method, req->path, code, r == 0,
              req->hc ? req->hc->remote : "");
    free(msg);
    free(body);
    req->direct = true;
    req->direct_at_ms = time_mono_ms();
    req->responded = true;
    req->status = code;
    request_observe(req);
}

/* --- upgrades ----------------------------------------------------- */

static void
upgrade_handler(void *cls, struct MHD_Connection *conn, void *con_cls,
                const char *extra_in, size_t extra_in_size, MHD_socket sock,
                struct MHD_UpgradeResponseHandle *urh)
{
    struct http_upgrade *up = cls;
    struct http_server *srv = up->srv;
    (void) conn;
    (void) con_cls;
    if (atomic_exchange(&up->handed, true)) {
        return; /* the request ended as failed first: up is gone */
    }
    up->fd = sock;
    up->urh = urh;
    if (extra_in_size) {
        up->extra = xmalloc(extra_in_size);
        memcpy(up->extra, extra_in, extra_in_size);
        up->extra_len = extra_in_size;
    }
    pthread_mutex_lock(&srv->up_mu);
    srv->n_upgrades++;
    for (size_t i = 0; i < HTTP_MAX_UPGRADES; i++) {
        if (srv->up_fds[i] < 0) {
            srv->up_fds[i] = sock;
            break;
        }
    }
    bool stopping = atomic_load(&srv->stopping);
    pthread_mutex_unlock(&srv->up_mu);
    if (stopping) {
        shutdown(sock, SHUT_RDWR);
    }
    up->fn(up->arg, up);
}

void
http_respond_upgrade(struct http_request *req, http_upgrade_fn fn, void *arg)
{
    if (req->responded) {
        log_error("second response to one request ignored", "path=%s",
                  req->path);
        fn(arg, NULL);
        return;
    }
    pthread_mutex_lock(&req->srv->up_mu);
    bool full = req->srv->n_upgrades >= HTTP_MAX_UPGRADES;
    pthread_mutex_unlock(&req->srv->up_mu);
    if (full) {
        respond_status(req, 503, "ServiceUnavailable",
                       "too many upgraded connections");
        fn(arg, NULL);
        return;
    }
    struct http_upgrade *up = xcalloc(1, sizeof(*up));
    up->srv = req->srv;
    up->fn = fn;
    up->arg = arg;
    up->fd = -1;
    atomic_init(&up->handed, false);
    req->upgrade = up;
    req->responded = true;
    req->status = 101;
}

int
http_upgrade_fd(const struct http_upgrade *up)
{
    return up->fd;
}

const char *
http_upgrade_extra(const struct http_upgrade *up, size_t *len)
{
    *len = up->extra_len;
    return up->extra;
}

void
http_upgrade_linger(struct http_upgrade *up, int timeout_ms)
{
    int64_t until = time_mono_ms() + timeout_ms;
    for (;;) {
        int64_t left = until - time_mono_ms();
        if (left <= 0) {
            return;
        }
        struct pollfd p = {.fd = up->fd, .events = POLLIN};
        if (poll(&p, 1, (int) left) <= 0) {
            return;
        }
        char buf[4096];
        ssize_t n = recv(up->fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            return;
        }
    }
}

void
http_upgrade_close(struct http_upgrade *up)
{
    if (!up) {
        return;
    }
    struct http_server *srv = up->srv;
    /* before the count drops: once it is 0, a destroy waiting in
     * upgrades_shutdown() frees srv */
    observe_end(srv, up->obs_token, up->t0_ns);
    pthread_mutex_lock(&srv->up_mu);
    for (size_t i = 0; i < HTTP_MAX_UPGRADES; i++) {
        if (srv->up_fds[i] == up->fd) {
            srv->up_fds[i] = -1;
            break;
        }
    }
    /* MHD closes the socket and ends the connection. */
    MHD_upgrade_action(up->urh, MHD_UPGRADE_ACTION_CLOSE);
    srv->n_upgrades--;
    pthread_cond_broadcast(&srv->up_cond);
    pthread_mutex_unlock(&srv->up_mu);
    free(up->extra);
    free(up);
}

unsigned
http_server_upgrades(struct http_server *srv)
{
    pthread_mutex_lock(&srv->up_mu);
    unsigned n = srv->n_upgrades;
    pthread_mutex_unlock(&srv->up_mu);
    return n;
}

/* At destroy: shut every upgraded socket down so their owners see the end
 * and close them (MHD must not stop with upgraded connections open); wait
 * a bounded time for that. */
static void
upgrades_shutdown(struct http_server *srv)
{
    pthread_mutex_lock(&srv->up_mu);
    for (size_t i = 0; i < HTTP_MAX_UPGRADES; i++) {
        if (srv->up_fds[i] >= 0) {
            shutdown(srv->up_fds[i], SHUT_RDWR);
        }
    }
    int64_t until = time_mono_ms() + 5000;
    while (srv->n_upgrades > 0 && time_mono_ms() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&srv->up_cond, &srv->up_mu, &ts);
    }
    if (srv->n_upgrades > 0) {
        log_warn("upgraded connections still open at stop", "count=%u",
                 srv->n_upgrades);
    }
    pthread_mutex_unlock(&srv->up_mu);
}

/* Queue whatever the handler produced. */
static enum MHD_Result
request_queue(struct http_request *req)
{
    struct MHD_Response *resp;
    struct http_stream *st = req->stream;

    request_observe(req);
    if (st) {
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN,
                                                 HTTP_STREAM_BLOCK, stream_read,
                                                 st, stream_response_free);
    } else if (req->upgrade) {
        resp = MHD_create_response_for_upgrade(upgrade_handler, req->upgrade);
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
    req->queued = true;
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
        /* Every O: Kubernetes takes each as a group of the user. */
        for (unsigned i = 0; i < HTTP_PEER_ORGS_MAX; i++) {
            len = sizeof(buf);
            if (gnutls_x509_crt_get_dn_by_oid(crt,
                                              GNUTLS_OID_X520_ORGANIZATION_NAME,
                                              i, 0, buf, &len) != 0) {
                break;
            }
            hc->orgs[hc->n_orgs++] = xstrndup(buf, len);
        }
        hc->org = hc->n_orgs ? hc->orgs[0] : NULL;
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

/* Transfer-Encoding and Content-Length, every copy of them: RFC 9112
 * section 6 leaves no room for guessing which one a client meant. */
struct framing {
    unsigned n_clen;    /* Content-Length headers */
    unsigned n_te;      /* Transfer-Encoding headers */
    unsigned n_codings; /* codings listed across them */
    unsigned n_chunked; /* of those "chunked" */
    bool last_chunked;  /* the last listed coding is chunked */
    bool empty;         /* an empty Transfer-Encoding element list */
    char other[32];     /* first coding we do not know, for the message */
};

static enum MHD_Result
framing_visit(void *cls, enum MHD_ValueKind kind, const char *key,
              size_t key_size, const char *value, size_t value_size)
{
    struct framing *f = cls;
    if (key_size == 14 && strncasecmp(key, "Content-Length", 14) == 0) {
        f->n_clen++;
        return MHD_YES;
    }
    if (key_size != 17 || strncasecmp(key, "Transfer-Encoding", 17) != 0) {
        return MHD_YES;
    }
    f->n_te++;
    unsigned before = f->n_codings;
    size_t i = 0;
    while (i < value_size) {
        while (i < value_size &&
               (value[i] == ' ' || value[i] == '\t' || value[i] == ',')) {
            i++;
        }
        size_t start = i;
        while (i < value_size && value[i] != ',') {
            i++;
        }
        size_t end = i;
        while (end > start &&
               (value[end - 1] == ' ' || value[end - 1] == '\t')) {
            end--;
        }
        if (end == start) {
            continue;
        }
        f->n_codings++;
        f->last_chunked =
            end - start == 7 && strncasecmp(value + start, "chunked", 7) == 0;
        if (f->last_chunked) {
            f->n_chunked++;
        } else if (!f->other[0]) {
            size_t n = DPF_MIN(end - start, sizeof(f->other) - 1);
            for (size_t k = 0; k < n; k++) {
                char c = value[start + k];
                /* It goes into a JSON string and a log line. */
                f->other[k] =
                    (c >= 0x21 && c < 0x7f && c != '"' && c != '\\') ? c : '?';
            }
            f->other[n] = '\0';
        }
    }
    if (f->n_codings == before) {
        f->empty = true;
    }
    return MHD_YES;
}

/* Refuse framing we cannot trust before reading any body. Returns true if
 * it answered. */
static bool
request_check_framing(struct http_request *req)
{
    struct framing f = {0};
    MHD_get_connection_values_n(req->conn, MHD_HEADER_KIND, framing_visit, &f);
    if (f.n_clen > 1) {
        respond_status(req, 400, "BadRequest",
                       "more than one Content-Length header");
        return true;
    }
    if (f.n_te == 0) {
        return false;
    }
    if (f.n_clen > 0) {
        respond_status(req, 400, "BadRequest",
                       "Transfer-Encoding and Content-Length together");
        return true;
    }
    if (f.empty || !f.last_chunked) {
        respond_status(req, 400, "BadRequest",
                       "Transfer-Encoding must end with chunked");
        return true;
    }
    if (f.other[0]) {
        char *msg = xasprintf("transfer coding \\\"%s\\\" is not supported "
                              "(only chunked is)",
                              f.other);
        respond_status(req, 501, "NotImplemented", msg);
        free(msg);
        return true;
    }
    if (f.n_chunked > 1) {
        respond_status(req, 400, "BadRequest",
                       "chunked transfer coding applied more than once");
        return true;
    }
    req->chunked = true;
    return false;
}

static char *
too_large_message(const struct http_server *srv)
{
    return xasprintf("request body too large: the limit is %zu bytes",
                     srv->max_body);
}

/* Does the chunked body so far end the way a whole chunked body ends (a
 * "0" line, then an empty line) although MHD still reads a chunk? */
static bool
body_ends_like_last_chunk(const struct dbuf *b)
{
    static const char crlf[] = "0\r\n\r\n", lf[] = "0\n\n";
    const char *d = b->data;
    size_t n = b->len;
    if (n >= 5 && memcmp(d + n - 5, crlf, 5) == 0) {
        return n == 5 || d[n - 6] == '\n';
    }
    if (n >= 3 && memcmp(d + n - 3, lf, 3) == 0) {
        return n == 3 || d[n - 4] == '\n';
    }
    return false;
}

/* First call for a request: headers are in, no body read yet. */
static enum MHD_Result
request_begin(struct http_server *srv, struct MHD_Connection *conn,
              const char *url, const char *method, void **con_cls)
{
    struct http_request *req = xcalloc(1, sizeof(*req));
    req->t0_ns = time_mono_ns();
    req->srv = srv;
    req->conn = conn;
    req->method = method;
    req->path = url;
    dbuf_init(&req->body);
    req->hc = conn_context(conn);
    *con_cls = req;
    if (req->hc) {
        if (!req->hc->checked) {
            conn_check_peer(srv, conn, req->hc);
        }
        conn_track_request(srv, req->hc);
    }

    /* An answer queued now goes out at once and MHD closes the connection
     * after it without reading the body. */
    if (request_check_framing(req)) {
        return request_queue(req);
    }
    const char *cl =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    unsigned long long clen = cl ? strtoull(cl, NULL, 10) : 0;
    if (srv->gate && !srv->gate(srv->arg, req)) {
        if (!req->responded) {
            respond_status(req, 500, "InternalError",
                           "the gate refused without an answer");
        }
        /* Without a body the answer waits for MHD's next call, which
         * keeps the connection open for the client's next request. */
        return (req->chunked || clen > 0) ? request_queue(req) : MHD_YES;
    }

    const char *expect =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Expect");
    if (clen > srv->max_body) {
        req->too_large = true;
        /* Refuse before reading when the client waits for "100
         * Continue" (it has not sent the body) or the body is absurd.
         * Otherwise the client is already sending: read and drop the
         * body so it can read the 413 instead of a reset. */
        if ((expect && strcasecmp(expect, "100-continue") == 0) ||
            clen > HTTP_DRAIN_LIMIT(srv->max_body)) {
            char *msg = too_large_message(srv);
            respond_status(req, 413, "RequestEntityTooLarge", msg);
            free(msg);
            return request_queue(req);
        }
    }
    /* The headers met their deadline; from here a stall of idle_timeout_s
     * ends the request (with 408 while the body is still coming). */
    req->in_body = true;
    MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
                              srv->idle_timeout_s);
    return MHD_YES;
}

/* A piece of the body. */
static enum MHD_Result
request_body(struct http_server *srv, struct http_request *req,
             const char *data, size_t n)
{
    req->body_seen += n;
    if (req->direct) {
        /* Answered already: drop the rest while the client reads the
         * answer, but not for ever. */
        if (time_mono_ms() - req->direct_at_ms > 1000 * HTTP_LINGER_S ||
            req->body_seen > HTTP_DRAIN_LIMIT(srv->max_body)) {
            return MHD_NO;
        }
        return MHD_YES;
    }
    if (!req->too_large && req->body.len + n > srv->max_body) {
        req->too_large = true;
        dbuf_free(&req->body);
        dbuf_init(&req->body);
        if (req->chunked) {
            /* No length to judge by up front, and MHD cannot queue an
             * answer mid-body: answer now on the wire, then close. */
            char *msg = too_large_message(srv);
            respond_direct(req, 413, "Request Entity Too Large",
                           "RequestEntityTooLarge", msg);
            free(msg);
            /* Close if the client neither sends nor leaves. */
            MHD_set_connection_option(req->conn, MHD_CONNECTION_OPTION_TIMEOUT,
                                      (unsigned) HTTP_LINGER_S);
            return MHD_YES;
        }
    }
    if (!req->too_large) {
        dbuf_append(&req->body, data, n);
    } else if (req->body_seen > HTTP_DRAIN_LIMIT(srv->max_body)) {
        return MHD_NO; /* still sending: drop the connection */
    }
    if (req->chunked && !req->too_large) {
        bool desync = body_ends_like_last_chunk(&req->body);
        if (desync != req->desync) {
            req->desync = desync;
            MHD_set_connection_option(req->conn, MHD_CONNECTION_OPTION_TIMEOUT,
                                      desync ? (unsigned) HTTP_CHUNK_DESYNC_S
                                             : srv->idle_timeout_s);
        }
    }
    return MHD_YES;
}

static enum MHD_Result
access_handler(void *cls, struct MHD_Connection *conn, const char *url,
               const char *method, const char *version, const char *upload_data,
               size_t *upload_data_size, void **con_cls)
{
    struct http_server *srv = cls;
    struct http_request *req = *con_cls;

    if (!req) {
        return request_begin(srv, conn, url, method, con_cls);
    }
    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        return request_body(srv, req, upload_data, n);
    }

    /* The whole request is in. */
    req->in_body = false;
    if (req->direct) {
        return MHD_NO; /* answered on the wire already: close */
    }
    if (req->queued) {
        return MHD_YES;
    }
    if (req->responded) {
        return request_queue(req); /* the gate's answer */
    }
    if (req->too_large) {
        char *msg = too_large_message(srv);
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
    struct http_server *srv = cls;
    struct http_request *req = *con_cls;
    if (!req) {
        return;
    }
    *con_cls = NULL;
    if (toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED && req->in_body &&
        !req->direct && !req->queued) {
        /* The body stalled. MHD calls this before it closes the socket,
         * so the client can still be told why. */
        if (req->desync) {
            respond_direct(req, 400, "Bad Request", "BadRequest",
                           "chunked body ended inside a chunk: a chunk "
                           "size announced more data than was sent");
        } else {
            respond_direct(req, 408, "Request Timeout", "Timeout",
                           "the request body stopped arriving");
        }
    }
    if (req->stream) {
        stream_finish(req->stream);
        observe_end(srv, req->obs_token, req->t0_ns);
    }
    if (req->upgrade && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK &&
        !atomic_exchange(&req->upgrade->handed, true)) {
        /* The 101 never went out: the taker hears of it and the
         * upgrade ends here. */
        struct http_upgrade *up = req->upgrade;
        up->fn(up->arg, NULL);
        observe_end(srv, up->obs_token, up->t0_ns);
        free(up);
    }
    req->upgrade = NULL;
    if (req->hc) {
        bool ok = toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && !req->direct;
        /* Without a gate, answering a request is all the trust there is. */
        bool trusted =
            conn_track_request_done(srv, req->hc, ok && srv->gate == NULL);
        if (!trusted && ok) {
            /* Back to the header deadline's pace for the next request. */
            MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
                                      srv->header_timeout_s);
        }
    }
    request_free(req);
}

/* A connection on the Unix socket: a peer running as this process's
 * user (who can read its keys anyway) or as root is the configured local
 * identity; anyone else stays anonymous. */
static void
conn_local_peer(struct http_server *srv, struct http_conn *hc)
{
    struct ucred uc;
    socklen_t len = sizeof(uc);
    hc->checked = true;
    if (getsockopt(hc->fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0) {
        snprintf(hc->remote, sizeof(hc->remote), "unix");
        return;
    }
    snprintf(hc->remote, sizeof(hc->remote), "unix:pid=%ld,uid=%ld",
             (long) uc.pid, (long) uc.uid);
    if (!srv->local_user || (uc.uid != geteuid() && uc.uid != 0)) {
        return;
    }
    hc->cn = xstrdup(srv->local_user);
    for (size_t i = 0; srv->local_groups && srv->local_groups[i] &&
                       hc->n_orgs < HTTP_PEER_ORGS_MAX;
         i++) {
        hc->orgs[hc->n_orgs++] = xstrdup(srv->local_groups[i]);
    }
    hc->org = hc->n_orgs ? hc->orgs[0] : NULL;
}

static void
connection_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                  enum MHD_ConnectionNotificationCode t)
{
    struct http_server *srv = cls;
    if (t == MHD_CONNECTION_NOTIFY_STARTED) {
        struct http_conn *hc = xcalloc(1, sizeof(*hc));
        hc->fd = -1;
        /* The TLS handshake goes out in several small writes; with Nagle
         * each waits for the client's delayed ACK. */
        const union MHD_ConnectionInfo *fdi =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (fdi) {
            int one = 1;
            hc->fd = fdi->connect_fd;
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
        if (srv->unix_fd >= 0 && hc->fd >= 0) {
            conn_local_peer(srv, hc);
        }
        *socket_context = hc;
        log_debug("connection", "remote=%s fd=%d", hc->remote, hc->fd);
        if (hc->fd >= 0) {
            conn_track_start(srv, hc);
        }
    } else {
        struct http_conn *hc = *socket_context;
        if (hc) {
            if (hc->fd >= 0) {
                conn_track_end(srv, hc);
            }
            free(hc->cn);
            for (size_t i = 0; i < hc->n_orgs; i++) {
                free(hc->orgs[i]);
            }
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
        atomic_store(&srv->stopping, true);
        watchdog_wake(srv);
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
    if (srv->unix_path) {
        if (!srv->daemon && srv->unix_fd >= 0) {
            close(srv->unix_fd);
        }
        unlink(srv->unix_path);
        free(srv->unix_path);
    }
    free(srv->local_user);
    for (size_t i = 0; srv->local_groups && srv->local_groups[i]; i++) {
        free(srv->local_groups[i]);
    }
    free(srv->local_groups);
    pthread_mutex_destroy(&srv->reg_mu);
    pthread_mutex_destroy(&srv->conn_mu);
    pthread_mutex_destroy(&srv->up_mu);
    pthread_cond_destroy(&srv->up_cond);
    free(srv);
}

/* A priority string GnuTLS rejects is a configuration error: say where. */
static int
check_priorities(const char *prio, struct dpf_error *err)
{
    gnutls_priority_t p;
    const char *pos = NULL;
    int r = gnutls_priority_init(&p, prio, &pos);
    if (r != GNUTLS_E_SUCCESS) {
        dpf_error_set(err, 400, "BadRequest",
                      "http server: TLS priorities \"%s\" rejected by "
                      "GnuTLS at \"%s\": %s",
                      prio, pos ? pos : "", gnutls_strerror(r));
        return -EINVAL;
    }
    gnutls_priority_deinit(p);
    return 0;
}

/* Bind cfg->unix_path (a stale socket file there is replaced; one that
 * another server still answers on, or a file that is not a socket, is
 * refused), make it owner-only before anyone can connect, and listen.
 * MHD takes the descriptor and closes it when it stops. */
static int
unix_listen(struct http_server *srv, const struct http_server_config *cfg,
            struct dpf_error *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (cfg->cert_file) {
        dpf_error_set(err, 500, "InternalError",
                      "http server: a Unix socket (%s) serves plain HTTP, "
                      "not TLS",
                      cfg->unix_path);
        return -EINVAL;
    }
    if (strlen(cfg->unix_path) >= sizeof(sa.sun_path)) {
        dpf_error_set(err, 400, "BadRequest",
                      "http server: Unix socket path \"%s\" is longer than "
                      "%zu bytes",
                      cfg->unix_path, sizeof(sa.sun_path) - 1);
        return -ENAMETOOLONG;
    }
    memcpy(sa.sun_path, cfg->unix_path, strlen(cfg->unix_path) + 1);
    struct stat st;
    if (lstat(cfg->unix_path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            dpf_error_set(err, 409, "AlreadyExists",
                          "http server: %s exists and is not a socket",
                          cfg->unix_path);
            return -EEXIST;
        }
        /* a socket someone still listens on is theirs */
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool live = probe >= 0 &&
                    connect(probe, (struct sockaddr *) &sa, sizeof(sa)) == 0;
        if (probe >= 0) {
            close(probe);
        }
        if (live) {
            dpf_error_set(err, 409, "AlreadyExists",
                          "http server: %s is in use by another server",
                          cfg->unix_path);
            return -EADDRINUSE;
        }
        unlink(cfg->unix_path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        dpf_error_set(err, 500, "InternalError", "http server: socket: %s",
                      strerror(errno));
        return -errno;
    }
    mode_t old = umask(0177);
    int r = bind(fd, (struct sockaddr *) &sa, sizeof(sa));
    int e = errno;
    umask(old);
    if (r < 0 || chmod(cfg->unix_path, 0600) < 0 || listen(fd, 1024) < 0) {
        e = r < 0 ? e : errno;
        dpf_error_set(err, 500, "InternalError",
                      "http server: cannot listen on %s: %s", cfg->unix_path,
                      strerror(e));
        close(fd);
        if (r == 0) {
            unlink(cfg->unix_path);
        }
        return -e;
    }
    srv->unix_fd = fd;
    srv->unix_path = xstrdup(cfg->unix_path);
    if (cfg->local_user) {
        srv->local_user = xstrdup(cfg->local_user);
        size_t n = 0;
        while (cfg->local_groups && cfg->local_groups[n]) {
            n++;
        }
        srv->local_groups = xcalloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
            srv->local_groups[i] = xstrdup(cfg->local_groups[i]);
        }
    }
    return 0;
}

/* Every connection needs a descriptor; say so at start rather than fail
 * accept() under load. */
static void
check_nofile(unsigned hard_conn)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur < (rlim_t) hard_conn + 64) {
        log_warn("open-file limit below the connection limit",
                 "nofile=%llu connections=%u", (unsigned long long) rl.rlim_cur,
                 hard_conn);
    }
}

struct http_server *
http_server_create(const struct http_server_config *cfg,
                   http_handler_fn handler, void *arg, struct dpf_error *err)
{
    struct http_server *srv = xcalloc(1, sizeof(*srv));
    pthread_mutex_init(&srv->reg_mu, NULL);
    pthread_mutex_init(&srv->conn_mu, NULL);
    pthread_mutex_init(&srv->up_mu, NULL);
    pthread_cond_init(&srv->up_cond, NULL);
    for (size_t i = 0; i < HTTP_MAX_UPGRADES; i++) {
        srv->up_fds[i] = -1;
    }
    atomic_init(&srv->stopping, false);
    srv->handler = handler;
    srv->gate = cfg->gate;
    srv->observe = cfg->observe;
    srv->observe_end = cfg->observe_end;
    srv->arg = arg;
    srv->max_body = cfg->max_body ? cfg->max_body : HTTP_DEFAULT_MAX_BODY;
    srv->max_conn =
        cfg->max_connections ? cfg->max_connections : HTTP_DEFAULT_MAX_CONN;
    srv->header_timeout_s = cfg->header_timeout_s
                                ? cfg->header_timeout_s
                                : HTTP_DEFAULT_HEADER_TIMEOUT_S;
    srv->idle_timeout_s =
        cfg->idle_timeout_s ? cfg->idle_timeout_s : HTTP_DEFAULT_IDLE_TIMEOUT_S;
    srv->wd_epfd = -1;
    srv->wd_evfd = -1;
    srv->unix_fd = -1;

    unsigned threads = cfg->threads ? cfg->threads : HTTP_DEFAULT_THREADS;
    /* MHD's own limit (split evenly over the worker threads) stays well
     * above ours, so that room is made by evicting untrusted connections
     * before MHD starts refusing new ones. */
    unsigned hard_conn =
        srv->max_conn > UINT_MAX / 2 ? UINT_MAX : 2 * srv->max_conn;
    if (hard_conn < srv->max_conn + 16 * threads) {
        hard_conn = srv->max_conn + 16 * threads;
    }
    const char *prio =
        cfg->tls_priorities ? cfg->tls_priorities : HTTP_DEFAULT_TLS_PRIORITIES;

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
        if (check_priorities(prio, err) < 0) {
            goto fail;
        }
    }
    check_nofile(hard_conn);
    if (cfg->unix_path && unix_listen(srv, cfg, err) < 0) {
        goto fail;
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
                     MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE |
                     MHD_USE_ERROR_LOG;
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
        (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, hard_conn, NULL};
    /* Until a request's headers are in; the watchdog enforces the same
     * time as a deadline (MHD's is reset by every byte). */
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT,
                                        srv->header_timeout_s, NULL};
    size_t conn_memory = cfg->conn_memory ? cfg->conn_memory : HTTP_CONN_MEMORY;
    if (conn_memory < HTTP_CONN_MEMORY_MIN) {
        conn_memory = HTTP_CONN_MEMORY_MIN;
    }
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                                        (intptr_t) conn_memory, NULL};
    opts[n++] =
        (struct MHD_OptionItem){MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED,
                                        (intptr_t) request_completed, srv};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION,
                                        (intptr_t) connection_notify, srv};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_EXTERNAL_LOGGER,
                                        (intptr_t) mhd_log, srv};
    if (srv->unix_fd >= 0) {
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET,
                                            srv->unix_fd, NULL};
    } else if (use_addr) {
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
        /* MHD copies nothing: prio is a literal or the caller's string,
         * and MHD turns it into a priority cache during start. */
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
                                            (void *) prio};
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

    if (thread_start(&srv->wd_thread, NULL, "http-watchdog", watchdog_main,
                     srv) != 0) {
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
    upgrades_shutdown(srv);
    MHD_stop_daemon(srv->daemon);
    server_free(srv);
}
