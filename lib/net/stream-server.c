/* stream-server: threaded poll-loop listener for stream sockets. */
#include "lib/net/stream-server.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/base/thread.h"
#include "lib/base/util.h"

struct stream_conn {
    int fd;                    /* client socket, -1 = free slot */
    void *user;                /* from on_open */
    struct dbuf in;            /* bytes not yet consumed by on_data */
    struct dbuf out;           /* replies not yet written */
    size_t out_off;            /* written part of out */
    int64_t last_ms;           /* accepted or last bytes read (monotonic) */
    struct stream_server *srv; /* owner */
};

struct stream_server {
    struct stream_server_config cfg; /* copy with defaults applied */
    int wakefd;                      /* eventfd: stop request */
    pthread_t th;                    /* server thread */
    struct stream_conn *conns;       /* max_clients slots */
    uint8_t *buf;                    /* recv scratch, read_size bytes */
    struct stream_server_stats st;   /* counters (atomic) */
};

static void
st_add(uint64_t *v, int64_t n)
{
    __atomic_add_fetch(v, (uint64_t) n, __ATOMIC_RELAXED);
}

static uint64_t
st_get(const uint64_t *v)
{
    return __atomic_load_n(v, __ATOMIC_RELAXED);
}

static void
conn_close(struct stream_server *s, struct stream_conn *c)
{
    if (c->fd < 0) {
        return;
    }
    if (s->cfg.ops->on_close) {
        s->cfg.ops->on_close(s->cfg.aux, c, c->user);
    }
    close(c->fd);
    c->fd = -1;
    c->user = NULL;
    dbuf_free(&c->in);
    dbuf_free(&c->out);
    c->out_off = 0;
    st_add(&s->st.clients, -1);
}

/* Close c and count an error. */
static void
conn_fail(struct stream_server *s, struct stream_conn *c)
{
    st_add(&s->st.errors, 1);
    conn_close(s, c);
}

/* Write what is queued; 0 (done or would block) or a negative errno. */
static int
conn_flush(struct stream_conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t w = send(c->fd, c->out.data + c->out_off,
                         c->out.len - c->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        }
        c->out_off += (size_t) w;
    }
    dbuf_free(&c->out);
    c->out_off = 0;
    return 0;
}

int
stream_conn_write(struct stream_conn *c, const void *data, size_t len)
{
    size_t max = c->srv->cfg.write_max;
    if (max && c->out.len - c->out_off > max) {
        return -ENOBUFS;
    }
    if (c->out_off && c->out_off == c->out.len) {
        c->out.len = 0;
        c->out_off = 0;
    }
    dbuf_append(&c->out, data, len);
    return 0;
}

/* Offer the buffered bytes to on_data, then flush replies. false when the
 * connection was closed. */
static bool
conn_deliver(struct stream_server *s, struct stream_conn *c)
{
    long n = s->cfg.ops->on_data(s->cfg.aux, c, c->user,
                                 (const uint8_t *) c->in.data, c->in.len);
    if (n == STREAM_SERVER_ERROR) {
        conn_fail(s, c);
        return false;
    }
    if (n < 0 || (size_t) n > c->in.len) {
        conn_close(s, c);
        return false;
    }
    if (n) {
        memmove(c->in.data, c->in.data + n, c->in.len - (size_t) n);
        c->in.len -= (size_t) n;
    }
    if (c->in.len == 0) {
        dbuf_free(&c->in);
    }
    if (conn_flush(c) < 0) {
        conn_fail(s, c);
        return false;
    }
    return true;
}

/* Bytes buffered for on_data over every connection (max_clients slots,
 * walked only when a bound is set). */
static size_t
server_buffered(const struct stream_server *s)
{
    size_t total = 0;
    for (unsigned i = 0; i < s->cfg.max_clients; i++) {
        total += s->conns[i].in.len;
    }
    return total;
}

static void
conn_read(struct stream_server *s, struct stream_conn *c)
{
    const struct stream_server_config *cfg = &s->cfg;
    for (unsigned round = 0; round < cfg->read_rounds; round++) {
        ssize_t r = recv(c->fd, s->buf, cfg->read_size, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            /* peer closed or reset: offer what is buffered, then close */
            bool failed = r < 0;
            if (c->in.len && !conn_deliver(s, c)) {
                return;
            }
            if (failed) {
                conn_fail(s, c);
            } else {
                conn_close(s, c);
            }
            return;
        }
        if (r < 0) {
            break;
        }
        if (cfg->buffered_max &&
            server_buffered(s) + (size_t) r > cfg->buffered_max) {
            /* many half-sent messages must not hold the process's memory:
             * the connection that would pass the bound goes */
            st_add(&s->st.over_budget, 1);
            conn_fail(s, c);
            return;
        }
        dbuf_append(&c->in, s->buf, (size_t) r);
        c->last_ms = time_mono_ms();
        if ((size_t) r < cfg->read_size ||
            (cfg->read_max && c->in.len >= cfg->read_max)) {
            break;
        }
    }
    if (c->in.len) {
        conn_deliver(s, c);
    }
}

/* Every slot is taken: free the one whose peer has been silent longest,
 * if that is at least evict_idle_ms and it has no reply pending, so idle
 * (or slow-loris) connections cannot lock senders out. A sender that sent
 * within evict_idle_ms keeps its slot. NULL if none qualifies. */
static struct stream_conn *
server_evict(struct stream_server *s)
{
    if (!s->cfg.evict_idle_ms) {
        return NULL;
    }
    int64_t now = time_mono_ms();
    struct stream_conn *oldest = NULL;
    for (unsigned i = 0; i < s->cfg.max_clients; i++) {
        struct stream_conn *c = &s->conns[i];
        if (c->fd >= 0 && c->out.len == c->out_off &&
            now - c->last_ms >= (int64_t) s->cfg.evict_idle_ms &&
            (!oldest || c->last_ms < oldest->last_ms)) {
            oldest = c;
        }
    }
    if (oldest) {
        st_add(&s->st.evicted, 1);
        conn_close(s, oldest);
    }
    return oldest;
}

static void
server_accept(struct stream_server *s)
{
    for (;;) {
        int fd =
            accept4(s->cfg.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return;
        }
        struct stream_conn *slot = NULL;
        for (unsigned i = 0; i < s->cfg.max_clients; i++) {
            if (s->conns[i].fd < 0) {
                slot = &s->conns[i];
                break;
            }
        }
        if (!slot) {
            slot = server_evict(s);
        }
        if (!slot) {
            st_add(&s->st.rejected, 1);
            close(fd);
            continue;
        }
        slot->fd = fd;
        slot->last_ms = time_mono_ms();
        dbuf_init(&slot->in);
        dbuf_init(&slot->out);
        slot->out_off = 0;
        st_add(&s->st.connections, 1);
        st_add(&s->st.clients, 1);
        slot->user =
            s->cfg.ops->on_open ? s->cfg.ops->on_open(s->cfg.aux, slot) : NULL;
    }
}

static void *
server_thread(void *arg)
{
    struct stream_server *s = arg;
    unsigned n = s->cfg.max_clients;
    struct pollfd *pfd = xcalloc(n + 2, sizeof *pfd);
    for (;;) {
        pfd[0] = (struct pollfd){.fd = s->wakefd, .events = POLLIN};
        pfd[1] = (struct pollfd){.fd = s->cfg.listen_fd, .events = POLLIN};
        for (unsigned i = 0; i < n; i++) {
            struct stream_conn *c = &s->conns[i];
            pfd[i + 2] = (struct pollfd){
                .fd = c->fd,
                .events =
                    (short) (POLLIN | (c->out.len > c->out_off ? POLLOUT : 0))};
        }
        if (poll(pfd, n + 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (pfd[0].revents) {
            break;
        }
        if (pfd[1].revents & POLLIN) {
            server_accept(s);
        }
        for (unsigned i = 0; i < n; i++) {
            struct stream_conn *c = &s->conns[i];
            short re = pfd[i + 2].revents;
            if (c->fd < 0 || pfd[i + 2].fd != c->fd || !re) {
                continue;
            }
            if (re & POLLOUT && conn_flush(c) < 0) {
                conn_fail(s, c);
                continue;
            }
            if (re & (POLLIN | POLLHUP | POLLERR)) {
                conn_read(s, c);
            }
        }
    }
    free(pfd);
    return NULL;
}

struct stream_server *
stream_server_start(const struct stream_server_config *cfg, const char *what,
                    struct dpf_error *err)
{
    int fl = fcntl(cfg->listen_fd, F_GETFL);
    if (fl < 0 || fcntl(cfg->listen_fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
        !cfg->ops || !cfg->ops->on_data) {
        dpf_error_set(err, 500, "InternalError", "%s: bad listening socket",
                      what);
        if (cfg->listen_fd >= 0) {
            close(cfg->listen_fd);
        }
        return NULL;
    }
    struct stream_server *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    if (!s->cfg.max_clients) {
        s->cfg.max_clients = 64;
    }
    if (!s->cfg.read_size) {
        s->cfg.read_size = 64u * 1024;
    }
    if (!s->cfg.read_rounds) {
        s->cfg.read_rounds = 16;
    }
    s->buf = xmalloc(s->cfg.read_size);
    s->conns = xcalloc(s->cfg.max_clients, sizeof *s->conns);
    for (unsigned i = 0; i < s->cfg.max_clients; i++) {
        s->conns[i].fd = -1;
        s->conns[i].srv = s;
    }
    s->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->wakefd < 0 || thread_start(&s->th, NULL, what, server_thread, s)) {
        dpf_error_set(err, 500, "InternalError", "%s: cannot start thread",
                      what);
        if (s->wakefd >= 0) {
            close(s->wakefd);
        }
        close(s->cfg.listen_fd);
        free(s->conns);
        free(s->buf);
        free(s);
        return NULL;
    }
    return s;
}

void
stream_server_get_stats(const struct stream_server *s,
                        struct stream_server_stats *st)
{
    st->connections = st_get(&s->st.connections);
    st->rejected = st_get(&s->st.rejected);
    st->errors = st_get(&s->st.errors);
    st->clients = st_get(&s->st.clients);
    st->over_budget = st_get(&s->st.over_budget);
    st->evicted = st_get(&s->st.evicted);
}

void
stream_server_stop(struct stream_server *s)
{
    if (!s) {
        return;
    }
    uint64_t one = 1;
    if (write(s->wakefd, &one, sizeof one) < 0) {
        /* eventfd writes only fail on overflow; the thread still wakes */
    }
    pthread_join(s->th, NULL);
    for (unsigned i = 0; i < s->cfg.max_clients; i++) {
        conn_close(s, &s->conns[i]);
    }
    close(s->cfg.listen_fd);
    close(s->wakefd);
    free(s->conns);
    free(s->buf);
    free(s);
}
