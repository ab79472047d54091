/* dts-forward: the Forward listener (on lib/net/stream-server) and the
 * sender thread, on the codec in lib/telemetry/fluent-forward.c. */
#include "dts/dts-forward.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <msgpack.h>
#include <nettle/memops.h>
#include <nettle/sha2.h>

#include "lib/base/log.h"
#include "lib/base/thread.h"
#include "lib/net/stream-server.h"

LOG_MODULE(forward);

/* ---- listener ------------------------------------------------------------ */

/* Unsent acks beyond this mean the client does not read them: close it. */
#define FF_MAX_UNSENT_ACKS 65536

struct dts_forward_server {
    struct dts_forward_server_config cfg; /* copy (address not kept) */
    char *shared_key;                     /* owned copy or NULL */
    char hostname[256];                   /* ours, for PONG */
    uint64_t auth_failures;               /* refused handshakes (atomic) */
    uint16_t port;                        /* bound port */
    struct stream_server *ss;             /* accepts, reads, writes acks */
    uint64_t frames;                      /* frames decoded (atomic) */
    uint64_t events;                      /* events delivered (atomic) */
    uint64_t acks;                        /* acks queued (atomic) */
    uint64_t errors;                      /* bad frames, ack backlog (atomic) */
};

static void
stat_add(uint64_t *v, uint64_t n)
{
    __atomic_add_fetch(v, n, __ATOMIC_RELAXED);
}

static uint64_t
stat_get(const uint64_t *v)
{
    return __atomic_load_n(v, __ATOMIC_RELAXED);
}

/* ---- shared-key handshake (Forward protocol v1, "Handshake Messages") --
 * server: HELO [nonce, auth salt, keepalive]; client: PING [hostname,
 * shared_key_salt, hex sha512(salt + hostname + nonce + key), username,
 * password digest]; server: PONG [ok, reason, hostname, hex sha512(salt +
 * our hostname + nonce + key)]. User/password auth is not offered (empty
 * auth salt), so username and password digest are ignored. */

/* Per connection: the nonce we sent and whether PING checked out. */
struct ff_sess {
    bool authed;
    bool refused; /* PONG false sent: closed at the next bytes or EOF */
    uint8_t nonce[16];
};

/* Largest PING we wait for (hostname, salt and digests are small). */
#define FF_MAX_PING 4096

static void
ff_sha512_hex(const void *a, size_t na, const void *b, size_t nb, const void *c,
              size_t nc, const void *d, size_t nd, char out[129])
{
    struct sha512_ctx ctx;
    uint8_t md[SHA512_DIGEST_SIZE];
    sha512_init(&ctx);
    sha512_update(&ctx, na, a);
    sha512_update(&ctx, nb, b);
    sha512_update(&ctx, nc, c);
    sha512_update(&ctx, nd, d);
    sha512_digest(&ctx, sizeof md, md);
    for (int i = 0; i < SHA512_DIGEST_SIZE; i++) {
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
}

/* A msgpack str or bin as bytes; false for anything else. */
static bool
ff_obj_bytes(const msgpack_object *o, const char **p, size_t *n)
{
    if (o->type == MSGPACK_OBJECT_STR) {
        *p = o->via.str.ptr;
        *n = o->via.str.size;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_BIN) {
        *p = o->via.bin.ptr;
        *n = o->via.bin.size;
        return true;
    }
    return false;
}

static void
ff_pack_cstr(msgpack_packer *pk, const char *v)
{
    msgpack_pack_str_with_body(pk, v, strlen(v));
}

static void *
server_on_open(void *aux, struct stream_conn *c)
{
    struct dts_forward_server *s = aux;
    struct ff_sess *fs = xcalloc(1, sizeof *fs);
    if (!s->shared_key) {
        fs->authed = true;
        return fs;
    }
    if (getrandom(fs->nonce, sizeof fs->nonce, 0) != sizeof fs->nonce) {
        /* no randomness: leave the nonce all zero, still per-key safe
         * against passive replay only if keys differ; should not happen */
        memset(fs->nonce, 0, sizeof fs->nonce);
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    ff_pack_cstr(&pk, "HELO");
    msgpack_pack_map(&pk, 3);
    ff_pack_cstr(&pk, "nonce");
    msgpack_pack_bin_with_body(&pk, fs->nonce, sizeof fs->nonce);
    ff_pack_cstr(&pk, "auth");
    msgpack_pack_bin_with_body(&pk, "", 0);
    ff_pack_cstr(&pk, "keepalive");
    msgpack_pack_true(&pk);
    stream_conn_write(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    return fs;
}

static void
server_on_close(void *aux, struct stream_conn *c, void *user)
{
    (void) aux;
    (void) c;
    free(user);
}

/* Check a PING; queue the PONG. Bytes consumed, 0 for more, or an
 * on_data error result. */
static long
server_handshake(struct dts_forward_server *s, struct stream_conn *c,
                 struct ff_sess *fs, const uint8_t *data, size_t len)
{
    /* bounds first: msgpack-c would allocate what a header announces */
    long scanned = ff_scan_object(data, DPF_MIN(len, FF_MAX_PING), 2);
    if (scanned == 0 && len < FF_MAX_PING) {
        return 0;
    }
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    msgpack_unpack_return r =
        scanned > 0 ? msgpack_unpack_next(&up, (const char *) data,
                                          (size_t) scanned, &off)
                    : MSGPACK_UNPACK_PARSE_ERROR;
    const char *reason = "expected PING";
    bool ok = false;
    const char *salt = "";
    size_t nsalt = 0;
    const msgpack_object *o = &up.data;
    if (r == MSGPACK_UNPACK_SUCCESS && o->type == MSGPACK_OBJECT_ARRAY &&
        o->via.array.size == 6) {
        const msgpack_object *a = o->via.array.ptr;
        const char *cmd, *host, *dig;
        size_t ncmd, nhost, ndig;
        if (ff_obj_bytes(&a[0], &cmd, &ncmd) && ncmd == 4 &&
            !memcmp(cmd, "PING", 4) && ff_obj_bytes(&a[1], &host, &nhost) &&
            ff_obj_bytes(&a[2], &salt, &nsalt) &&
            ff_obj_bytes(&a[3], &dig, &ndig)) {
            char want[129];
            ff_sha512_hex(salt, nsalt, host, nhost, fs->nonce, sizeof fs->nonce,
                          s->shared_key, strlen(s->shared_key), want);
            ok = ndig == 128 && memeql_sec(dig, want, 128);
            reason = ok ? "" : "shared_key mismatch";
        }
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 5);
    ff_pack_cstr(&pk, "PONG");
    if (ok) {
        msgpack_pack_true(&pk);
    } else {
        msgpack_pack_false(&pk);
    }
    ff_pack_cstr(&pk, reason);
    ff_pack_cstr(&pk, s->hostname);
    if (ok) {
        char mine[129];
        ff_sha512_hex(salt, nsalt, s->hostname, strlen(s->hostname), fs->nonce,
                      sizeof fs->nonce, s->shared_key, strlen(s->shared_key),
                      mine);
        msgpack_pack_str_with_body(&pk, mine, 128);
    } else {
        ff_pack_cstr(&pk, "");
    }
    stream_conn_write(c, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked_destroy(&up);
    if (!ok) {
        /* keep the connection until the PONG is out (closing now would
         * drop it); anything the client sends after is not read */
        stat_add(&s->auth_failures, 1);
        log_warn_rl("forward handshake refused", "reason=\"%s\"", reason);
        fs->refused = true;
        return (long) (r == MSGPACK_UNPACK_SUCCESS ? off : len);
    }
    fs->authed = true;
    return (long) off;
}

/* stream-server on_data: decode every complete frame, queue the acks. */
static long
server_on_data(void *aux, struct stream_conn *c, void *user,
               const uint8_t *data, size_t len)
{
    struct dts_forward_server *s = aux;
    struct ff_sess *fs = user;
    size_t off = 0;
    if (fs->refused) {
        return STREAM_SERVER_CLOSE;
    }
    if (!fs->authed) {
        long n = server_handshake(s, c, fs, data, len);
        if (n <= 0 || fs->refused) {
            return n;
        }
        off = (size_t) n;
    }
    while (off < len) {
        struct ff_frame_info info;
        long n = ff_decode_frame(data + off, len - off, &s->cfg.limits,
                                 s->cfg.cb, s->cfg.aux, &info, NULL);
        if (n == 0) {
            break;
        }
        if (n < 0) {
            return STREAM_SERVER_ERROR;
        }
        off += (size_t) n;
        if (info.heartbeat) {
            continue;
        }
        stat_add(&s->frames, 1);
        stat_add(&s->events, info.n_events);
        if (info.chunk[0]) {
            struct dbuf ack;
            dbuf_init(&ack);
            ff_encode_ack(&ack, info.chunk);
            int rc = stream_conn_write(c, ack.data, ack.len);
            dbuf_free(&ack);
            if (rc < 0) {
                return STREAM_SERVER_ERROR; /* client does not read acks */
            }
            stat_add(&s->acks, 1);
        }
    }
    return (long) off;
}

static const struct stream_server_ops dts_forward_server_ops = {
    .on_open = server_on_open,
    .on_data = server_on_data,
    .on_close = server_on_close,
};

struct dts_forward_server *
dts_forward_server_start(const struct dts_forward_server_config *cfg,
                         struct dpf_error *err)
{
    const char *addr = cfg->address ? cfg->address : "127.0.0.1";
    char port[8];
    snprintf(port, sizeof port, "%u", cfg->port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(addr, port, &hints, &ai);
    if (rc != 0) {
        dpf_error_set(err, 422, "Invalid",
                      "forward listener: cannot resolve address %s: %s", addr,
                      gai_strerror(rc));
        return NULL;
    }
    int fd =
        socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    }
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
        listen(fd, 64) < 0) {
        dpf_error_set(err, 503, "ServiceUnavailable",
                      "forward listener: cannot listen on %s:%u: %s", addr,
                      cfg->port, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        freeaddrinfo(ai);
        return NULL;
    }
    freeaddrinfo(ai);
    struct dts_forward_server *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    s->cfg.address = NULL;
    s->shared_key = cfg->shared_key ? xstrdup(cfg->shared_key) : NULL;
    s->cfg.shared_key = NULL;
    s->cfg.hostname = NULL;
    if (cfg->hostname) {
        snprintf(s->hostname, sizeof s->hostname, "%s", cfg->hostname);
    } else if (gethostname(s->hostname, sizeof s->hostname - 1) < 0) {
        snprintf(s->hostname, sizeof s->hostname, "dts");
    }
    if (!s->cfg.limits.max_frame) {
        s->cfg.limits.max_frame = FF_DEFAULT_MAX_FRAME;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *) &ss, &sl);
    s->port = ntohs(ss.ss_family == AF_INET6
                        ? ((struct sockaddr_in6 *) &ss)->sin6_port
                        : ((struct sockaddr_in *) &ss)->sin_port);
    struct stream_server_config scfg = {
        .listen_fd = fd,
        .max_clients = cfg->max_clients ? cfg->max_clients : 64,
        .read_size = 64u * 1024,
        .read_rounds = 16,
        .read_max = s->cfg.limits.max_frame,
        .write_max = FF_MAX_UNSENT_ACKS,
        .buffered_max =
            cfg->buffered_max ? cfg->buffered_max : DTS_FORWARD_BUFFERED_MAX,
        .evict_idle_ms = DTS_FORWARD_EVICT_IDLE_MS,
        .ops = &dts_forward_server_ops,
        .aux = s,
    };
    s->ss = stream_server_start(&scfg, "forward listener", err);
    if (!s->ss) {
        free(s->shared_key);
        free(s);
        return NULL;
    }
    return s;
}

uint16_t
dts_forward_server_port(const struct dts_forward_server *s)
{
    return s->port;
}

void
dts_forward_server_get_stats(const struct dts_forward_server *s,
                             struct dts_forward_server_stats *st)
{
    struct stream_server_stats ss;
    stream_server_get_stats(s->ss, &ss);
    st->connections = ss.connections;
    st->frames = stat_get(&s->frames);
    st->events = stat_get(&s->events);
    st->acks = stat_get(&s->acks);
    st->errors = ss.errors + ss.rejected + stat_get(&s->auth_failures);
    st->auth_failures = stat_get(&s->auth_failures);
    st->over_budget = ss.over_budget;
    st->evicted = ss.evicted;
}

void
dts_forward_server_stop(struct dts_forward_server *s)
{
    if (!s) {
        return;
    }
    stream_server_stop(s->ss);
    free(s->shared_key);
    free(s);
}

/* ---- client -------------------------------------------------------------- */

struct ff_qent {
    uint8_t *data; /* one encoded [time, record] entry */
    size_t len;    /* its length */
};

struct dts_forward_client {
    char *host;               /* target */
    uint16_t port;            /* target port */
    char *tag;                /* message tag */
    bool require_ack;         /* ask for acks */
    unsigned ack_timeout_ms;  /* resend after */
    unsigned cap;             /* queue bound, records */
    size_t cap_bytes;         /* queue bound, bytes */
    unsigned batch;           /* records per message */
    unsigned backoff_min;     /* first reconnect delay */
    unsigned backoff_max;     /* reconnect delay cap */
    unsigned connect_timeout; /* TCP connect timeout */

    pthread_mutex_t mu;                 /* guards queue, stop, stats */
    struct ff_qent *q;                  /* ring of cap entries */
    unsigned q_head;                    /* oldest entry */
    unsigned q_n;                       /* entries queued */
    size_t q_bytes;                     /* bytes queued */
    bool stop;                          /* stop requested */
    struct dts_forward_client_stats st; /* counters */
    int wakefd;                         /* eventfd: new data or stop */
    pthread_t th;                       /* sender thread */

    /* sender thread only */
    int fd;              /* connection, -1 when down */
    struct dbuf msg;     /* the in-flight message */
    size_t msg_off;      /* bytes of msg written */
    size_t msg_n;        /* records in msg (0 = none in flight) */
    char chunk[64];      /* its chunk id */
    int64_t written_ms;  /* when msg was fully written */
    struct dbuf ackbuf;  /* bytes read from the peer */
    uint64_t chunk_seq;  /* chunk id counter */
    uint32_t chunk_salt; /* per-client random part of chunk ids */
};

static void
client_wake(struct dts_forward_client *c)
{
    uint64_t one = 1;
    if (write(c->wakefd, &one, sizeof one) < 0) {
        /* only fails on overflow, which still leaves it readable */
    }
}

static void
client_drain_wake(struct dts_forward_client *c)
{
    uint64_t v;
    if (read(c->wakefd, &v, sizeof v) < 0) {
        /* EAGAIN: nothing pending */
    }
}

int
dts_forward_client_post(struct dts_forward_client *c, int64_t time_ns,
                        json_t *record)
{
    struct dbuf b;
    dbuf_init(&b);
    if (ff_encode_entry(&b, time_ns, record) < 0) {
        return -EINVAL;
    }
    struct ff_qent e;
    e.data = (uint8_t *) dbuf_steal(&b, &e.len);
    pthread_mutex_lock(&c->mu);
    bool was_empty = c->q_n == 0;
    while (c->q_n && (c->q_n == c->cap || c->q_bytes + e.len > c->cap_bytes)) {
        struct ff_qent *old = &c->q[c->q_head];
        c->q_bytes -= old->len;
        free(old->data);
        c->q_head = (c->q_head + 1) % c->cap;
        c->q_n--;
        c->st.dropped++;
    }
    if (e.len > c->cap_bytes) {
        c->st.dropped++;
        pthread_mutex_unlock(&c->mu);
        free(e.data);
        return 0;
    }
    c->q[(c->q_head + c->q_n) % c->cap] = e;
    c->q_n++;
    c->q_bytes += e.len;
    pthread_mutex_unlock(&c->mu);
    if (was_empty) {
        client_wake(c);
    }
    return 0;
}

/* Build the next message from the queue (sender thread). */
static bool
client_take_batch(struct dts_forward_client *c)
{
    pthread_mutex_lock(&c->mu);
    unsigned n = DPF_MIN(c->q_n, c->batch);
    if (n == 0) {
        pthread_mutex_unlock(&c->mu);
        return false;
    }
    struct ff_qent *ents = xmalloc(n * sizeof *ents);
    for (unsigned i = 0; i < n; i++) {
        ents[i] = c->q[c->q_head];
        c->q_bytes -= ents[i].len;
        c->q_head = (c->q_head + 1) % c->cap;
    }
    c->q_n -= n;
    pthread_mutex_unlock(&c->mu);

    dbuf_free(&c->msg);
    dbuf_init(&c->msg);
    ff_encode_forward_head(&c->msg, c->tag, n);
    for (unsigned i = 0; i < n; i++) {
        dbuf_append(&c->msg, ents[i].data, ents[i].len);
        free(ents[i].data);
    }
    free(ents);
    if (c->require_ack) {
        snprintf(c->chunk, sizeof c->chunk, "dts-%08x-%016llx", c->chunk_salt,
                 (unsigned long long) ++c->chunk_seq);
        ff_encode_forward_tail(&c->msg, n, c->chunk);
    } else {
        ff_encode_forward_tail(&c->msg, n, NULL);
    }
    c->msg_off = 0;
    c->msg_n = n;
    c->written_ms = 0;
    return true;
}

static void
client_disconnect(struct dts_forward_client *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->fd = -1;
    c->ackbuf.len = 0;
    c->msg_off = 0; /* an in-flight message is written again */
    c->written_ms = 0;
    pthread_mutex_lock(&c->mu);
    c->st.connected = false;
    pthread_mutex_unlock(&c->mu);
}

static void
client_count(struct dts_forward_client *c, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&c->mu);
    *field += n;
    pthread_mutex_unlock(&c->mu);
}

static int
client_connect(struct dts_forward_client *c)
{
    char port[8];
    snprintf(port, sizeof port, "%u", c->port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(c->host, port, &hints, &ai) != 0) {
        return -EHOSTUNREACH;
    }
    int rc = -ECONNREFUSED;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int fd =
            socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 &&
            errno != EINPROGRESS) {
            rc = -errno;
            close(fd);
            continue;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (poll(&p, 1, (int) c->connect_timeout) != 1 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
            rc = soerr ? -soerr : -ETIMEDOUT;
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->fd = fd;
        rc = 0;
        break;
    }
    freeaddrinfo(ai);
    return rc;
}

/* Parse acks from ackbuf; true when the in-flight chunk is acknowledged. */
static int
client_read_acks(struct dts_forward_client *c)
{
    char buf[4096];
    for (;;) {
        ssize_t r = recv(c->fd, buf, sizeof buf, 0);
        if (r == 0) {
            return -EPIPE;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                break;
            }
            return -errno;
        }
        if (c->ackbuf.len + (size_t) r > 65536) {
            return -EBADMSG;
        }
        dbuf_append(&c->ackbuf, buf, (size_t) r);
    }
    size_t off = 0;
    int rc = 0;
    while (off < c->ackbuf.len) {
        char chunk[sizeof c->chunk];
        long n = ff_decode_ack(c->ackbuf.data + off, c->ackbuf.len - off, chunk,
                               sizeof chunk);
        if (n == 0) {
            break;
        }
        if (n < 0) {
            rc = -EBADMSG;
            break;
        }
        if (chunk[0] && c->msg_n && c->written_ms && !strcmp(chunk, c->chunk)) {
            client_count(c, &c->st.acked, c->msg_n);
            c->msg_n = 0;
            dbuf_free(&c->msg);
        }
        off += (size_t) n;
    }
    if (off) {
        memmove(c->ackbuf.data, c->ackbuf.data + off, c->ackbuf.len - off);
        c->ackbuf.len -= off;
    }
    return rc;
}

/* Write the in-flight message as far as the socket takes it. */
static int
client_write(struct dts_forward_client *c)
{
    while (c->msg_off < c->msg.len) {
        ssize_t w = send(c->fd, c->msg.data + c->msg_off,
                         c->msg.len - c->msg_off, MSG_NOSIGNAL);
        if (w < 0) {
            return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        }
        c->msg_off += (size_t) w;
    }
    if (!c->written_ms) {
        c->written_ms = time_mono_ms();
        client_count(c, &c->st.sent, c->msg_n);
        if (!c->require_ack) {
            c->msg_n = 0;
            dbuf_free(&c->msg);
        }
    }
    return 0;
}

static bool
client_stopping(struct dts_forward_client *c)
{
    pthread_mutex_lock(&c->mu);
    bool s = c->stop;
    pthread_mutex_unlock(&c->mu);
    return s;
}

static void *
client_thread(void *arg)
{
    struct dts_forward_client *c = arg;
    unsigned backoff = c->backoff_min;
    int64_t next_try = 0;
    int64_t stop_deadline = 0;
    for (;;) {
        int64_t now = time_mono_ms();
        bool stopping = client_stopping(c);
        if (stopping) {
            if (!stop_deadline) {
                stop_deadline = now + 1000;
            }
            /* last attempt: only while connected and within 1 s */
            if (c->fd < 0 || now >= stop_deadline) {
                break;
            }
            if (!c->msg_n && !client_take_batch(c)) {
                break;
            }
        }
        if (c->fd < 0) {
            if (now < next_try) {
                struct pollfd p = {.fd = c->wakefd, .events = POLLIN};
                poll(&p, 1, (int) (next_try - now));
                client_drain_wake(c);
                continue;
            }
            if (client_connect(c) < 0) {
                client_count(c, &c->st.errors, 1);
                next_try = time_mono_ms() + backoff;
                backoff = DPF_MIN(backoff * 2, c->backoff_max);
                continue;
            }
            backoff = c->backoff_min;
            pthread_mutex_lock(&c->mu);
            c->st.connected = true;
            pthread_mutex_unlock(&c->mu);
            if (c->msg_n) {
                client_count(c, &c->st.resent, c->msg_n);
            }
        }
        if (!c->msg_n) {
            client_take_batch(c);
        }
        if (c->msg_n && client_write(c) < 0) {
            client_count(c, &c->st.errors, 1);
            client_disconnect(c);
            continue;
        }
        if (c->msg_n == 0 && client_take_batch(c)) {
            continue; /* more queued: write it at once */
        }
        int timeout = -1;
        if (c->msg_n && c->written_ms) {
            int64_t due = c->written_ms + c->ack_timeout_ms;
            now = time_mono_ms();
            if (now >= due) {
                /* no ack in time: reconnect and send the chunk again */
                client_count(c, &c->st.errors, 1);
                client_disconnect(c);
                continue;
            }
            timeout = (int) (due - now);
        }
        if (stopping) {
            timeout = (int) DPF_MAX(0, stop_deadline - time_mono_ms());
        }
        struct pollfd p[2] = {
            {.fd = c->wakefd, .events = POLLIN},
            {.fd = c->fd,
             .events =
                 (short) (POLLIN |
                          (c->msg_n && c->msg_off < c->msg.len ? POLLOUT : 0))},
        };
        if (poll(p, 2, timeout) < 0 && errno != EINTR) {
            break;
        }
        if (p[0].revents) {
            client_drain_wake(c);
        }
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (client_read_acks(c) < 0) {
                client_count(c, &c->st.errors, 1);
                client_disconnect(c);
            }
        }
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    return NULL;
}

struct dts_forward_client *
dts_forward_client_start(const struct dts_forward_client_config *cfg,
                         struct dpf_error *err)
{
    if (!cfg->host || !*cfg->host) {
        dpf_error_set(err, 422, "Invalid", "forward client: host is required");
        return NULL;
    }
    const char *tag = cfg->tag ? cfg->tag : "doca_telemetry";
    if (!*tag || strlen(tag) > FF_MAX_TAG) {
        dpf_error_set(err, 422, "Invalid",
                      "forward client: tag must be 1..%d characters",
                      FF_MAX_TAG);
        return NULL;
    }
    struct dts_forward_client *c = xcalloc(1, sizeof *c);
    c->host = xstrdup(cfg->host);
    c->port = cfg->port ? cfg->port : DTS_FORWARD_CLIENT_PORT;
    c->tag = xstrdup(tag);
    c->require_ack = cfg->require_ack;
    c->ack_timeout_ms = cfg->ack_timeout_ms ? cfg->ack_timeout_ms : 5000;
    c->cap = cfg->buffer_records ? cfg->buffer_records : 10000;
    c->cap_bytes = cfg->buffer_bytes ? cfg->buffer_bytes : 16u << 20;
    c->batch = cfg->batch_records ? cfg->batch_records : 1000;
    c->backoff_min = cfg->backoff_min_ms ? cfg->backoff_min_ms : 100;
    c->backoff_max = cfg->backoff_max_ms ? cfg->backoff_max_ms : 30000;
    if (c->backoff_max < c->backoff_min) {
        c->backoff_max = c->backoff_min;
    }
    c->connect_timeout =
        cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 3000;
    c->q = xcalloc(c->cap, sizeof *c->q);
    c->fd = -1;
    c->chunk_salt = (uint32_t) (time_wall_ns() ^ (getpid() << 16));
    dbuf_init(&c->msg);
    dbuf_init(&c->ackbuf);
    pthread_mutex_init(&c->mu, NULL);
    c->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->wakefd < 0 ||
        thread_start(&c->th, NULL, "forward", client_thread, c)) {
        dpf_error_set(err, 500, "InternalError",
                      "forward client: cannot start sender thread");
        if (c->wakefd >= 0) {
            close(c->wakefd);
        }
        free(c->q);
        free(c->host);
        free(c->tag);
        free(c);
        return NULL;
    }
    return c;
}

void
dts_forward_client_get_stats(struct dts_forward_client *c,
                             struct dts_forward_client_stats *st)
{
    pthread_mutex_lock(&c->mu);
    *st = c->st;
    st->queued = c->q_n;
    pthread_mutex_unlock(&c->mu);
}

void
dts_forward_client_stop(struct dts_forward_client *c)
{
    if (!c) {
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_mutex_unlock(&c->mu);
    client_wake(c);
    pthread_join(c->th, NULL);
    for (unsigned i = 0; i < c->q_n; i++) {
        free(c->q[(c->q_head + i) % c->cap].data);
    }
    free(c->q);
    dbuf_free(&c->msg);
    dbuf_free(&c->ackbuf);
    close(c->wakefd);
    pthread_mutex_destroy(&c->mu);
    free(c->host);
    free(c->tag);
    free(c);
}
