/* dts-ipc-server: the daemon side of the exporter-library IPC. */
#include "dts/dts-ipc-server.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/util.h"

struct ipc_conn {
    int fd;                       /* client socket, -1 = free */
    struct dts_ipc_session *sess; /* its decoder */
    struct dts_ipc_server *srv;   /* back pointer for the handlers */
};

struct dts_ipc_server {
    struct dts_ipc_server_config cfg; /* copy; path owned below */
    char *path;                       /* socket path */
    int lfd;                          /* listening socket */
    int wakefd;                       /* eventfd: stop */
    pthread_t th;                     /* server thread */
    struct ipc_conn *conns;           /* max_clients slots */
    struct dts_ipc_server_stats st;   /* counters (atomic) */
    uint8_t *buf;                     /* read buffer */
};

#define IPC_READ_BUF (256u * 1024)

static void
st_add(uint64_t *v, uint64_t n)
{
    __atomic_add_fetch(v, n, __ATOMIC_RELAXED);
}

static void
st_sub(uint64_t *v, uint64_t n)
{
    __atomic_sub_fetch(v, n, __ATOMIC_RELAXED);
}

static uint64_t
st_get(const uint64_t *v)
{
    return __atomic_load_n(v, __ATOMIC_RELAXED);
}

static void
on_event(void *aux, const struct dts_ipc_evtype *t, unsigned idx,
         const uint8_t *data)
{
    struct ipc_conn *c = aux;
    struct dts_ipc_record r = {
        .kind = DTS_IPC_RECORD_EVENT,
        .source = dts_ipc_session_hello(c->sess),
        .schema = dts_ipc_session_schema(c->sess),
        .type = t,
        .type_index = idx,
        .data = data,
    };
    st_add(&c->srv->st.events, 1);
    if (c->srv->cfg.cb) {
        c->srv->cfg.cb(c->srv->cfg.aux, &r);
    }
}

static void
on_counter(void *aux, int64_t time_ns, const struct dts_ipc_counter *ctr)
{
    struct ipc_conn *c = aux;
    struct dts_ipc_record r = {
        .kind = DTS_IPC_RECORD_COUNTER,
        .source = dts_ipc_session_hello(c->sess),
        .schema = dts_ipc_session_schema(c->sess),
        .time_ns = time_ns,
        .counter = ctr,
    };
    st_add(&c->srv->st.counters, 1);
    if (c->srv->cfg.cb) {
        c->srv->cfg.cb(c->srv->cfg.aux, &r);
    }
}

static void
on_netflow(void *aux, const struct nf_flow *f)
{
    struct ipc_conn *c = aux;
    struct dts_ipc_record r = {
        .kind = DTS_IPC_RECORD_NETFLOW,
        .source = dts_ipc_session_hello(c->sess),
        .schema = dts_ipc_session_schema(c->sess),
        .flow = f,
    };
    st_add(&c->srv->st.netflow, 1);
    if (c->srv->cfg.cb) {
        c->srv->cfg.cb(c->srv->cfg.aux, &r);
    }
}

static const struct dts_ipc_handlers ipc_handlers = {
    .on_event = on_event,
    .on_counter = on_counter,
    .on_netflow = on_netflow,
};

static void
conn_close(struct dts_ipc_server *s, struct ipc_conn *c)
{
    if (c->fd < 0) {
        return;
    }
    close(c->fd);
    c->fd = -1;
    dts_ipc_session_free(c->sess);
    c->sess = NULL;
    st_sub(&s->st.clients, 1);
}

static void
conn_read(struct dts_ipc_server *s, struct ipc_conn *c)
{
    for (int round = 0; round < 8; round++) {
        ssize_t r = recv(c->fd, s->buf, IPC_READ_BUF, MSG_DONTWAIT);
        if (r == 0) {
            conn_close(s, c);
            return;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                return;
            }
            st_add(&s->st.errors, 1);
            conn_close(s, c);
            return;
        }
        uint64_t before = dts_ipc_session_frames(c->sess);
        int rc = dts_ipc_session_feed(c->sess, s->buf, (size_t) r, NULL);
        st_add(&s->st.frames, dts_ipc_session_frames(c->sess) - before);
        if (rc < 0) {
            st_add(&s->st.errors, 1);
            conn_close(s, c);
            return;
        }
        if (dts_ipc_session_done(c->sess)) {
            conn_close(s, c);
            return;
        }
        if ((size_t) r < IPC_READ_BUF) {
            return;
        }
    }
}

static void
server_accept(struct dts_ipc_server *s)
{
    for (;;) {
        int fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return;
        }
        struct ipc_conn *slot = NULL;
        for (unsigned i = 0; i < s->cfg.max_clients; i++) {
            if (s->conns[i].fd < 0) {
                slot = &s->conns[i];
                break;
            }
        }
        if (!slot) {
            st_add(&s->st.errors, 1);
            close(fd);
            continue;
        }
        slot->fd = fd;
        slot->srv = s;
        slot->sess =
            dts_ipc_session_create(&ipc_handlers, slot, s->cfg.max_frame);
        st_add(&s->st.connections, 1);
        st_add(&s->st.clients, 1);
    }
}

static void *
server_thread(void *arg)
{
    struct dts_ipc_server *s = arg;
    unsigned n = s->cfg.max_clients;
    struct pollfd *pfd = xcalloc(n + 2, sizeof *pfd);
    for (;;) {
        pfd[0] = (struct pollfd){.fd = s->wakefd, .events = POLLIN};
        pfd[1] = (struct pollfd){.fd = s->lfd, .events = POLLIN};
        for (unsigned i = 0; i < n; i++) {
            pfd[i + 2] =
                (struct pollfd){.fd = s->conns[i].fd, .events = POLLIN};
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
            struct ipc_conn *c = &s->conns[i];
            if (c->fd >= 0 && pfd[i + 2].fd == c->fd && pfd[i + 2].revents) {
                conn_read(s, c);
            }
        }
    }
    free(pfd);
    return NULL;
}

struct dts_ipc_server *
dts_ipc_server_start(const struct dts_ipc_server_config *cfg,
                     struct dpf_error *err)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (!cfg->path || !*cfg->path || strlen(cfg->path) >= sizeof sun.sun_path) {
        dpf_error_set(err, 422, "Invalid",
                      "ipc: socket path must be 1..%zu characters",
                      sizeof sun.sun_path - 1);
        return NULL;
    }
    strcpy(sun.sun_path, cfg->path);
    char *dir = xstrdup(cfg->path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        int rc = dir_create_all(dir, 0755);
        if (rc < 0) {
            dpf_error_set(err, 422, "Invalid",
                          "ipc: cannot create directory %s: %s", dir,
                          strerror(-rc));
            free(dir);
            return NULL;
        }
    }
    free(dir);
    /* Replace a stale socket file, but never another kind of file. */
    struct stat st;
    if (lstat(cfg->path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            dpf_error_set(err, 422, "Invalid",
                          "ipc: %s exists and is not a socket", cfg->path);
            return NULL;
        }
        unlink(cfg->path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *) &sun, sizeof sun) < 0 ||
        listen(fd, 64) < 0) {
        dpf_error_set(err, 503, "ServiceUnavailable",
                      "ipc: cannot listen on %s: %s", cfg->path,
                      strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return NULL;
    }
    struct dts_ipc_server *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    s->path = xstrdup(cfg->path);
    s->cfg.path = s->path;
    if (!s->cfg.max_clients) {
        s->cfg.max_clients = 256;
    }
    s->lfd = fd;
    s->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    s->buf = xmalloc(IPC_READ_BUF);
    s->conns = xcalloc(s->cfg.max_clients, sizeof *s->conns);
    for (unsigned i = 0; i < s->cfg.max_clients; i++) {
        s->conns[i].fd = -1;
    }
    if (s->wakefd < 0 || pthread_create(&s->th, NULL, server_thread, s)) {
        dpf_error_set(err, 500, "InternalError", "ipc: cannot start thread");
        if (s->wakefd >= 0) {
            close(s->wakefd);
        }
        close(fd);
        unlink(s->path);
        free(s->conns);
        free(s->buf);
        free(s->path);
        free(s);
        return NULL;
    }
    return s;
}

void
dts_ipc_server_get_stats(const struct dts_ipc_server *s,
                         struct dts_ipc_server_stats *st)
{
    st->connections = st_get(&s->st.connections);
    st->frames = st_get(&s->st.frames);
    st->events = st_get(&s->st.events);
    st->counters = st_get(&s->st.counters);
    st->netflow = st_get(&s->st.netflow);
    st->errors = st_get(&s->st.errors);
    st->clients = st_get(&s->st.clients);
}

void
dts_ipc_server_stop(struct dts_ipc_server *s)
{
    if (!s) {
        return;
    }
    uint64_t one = 1;
    if (write(s->wakefd, &one, sizeof one) < 0) {
        /* only fails on overflow; the thread is awake anyway */
    }
    pthread_join(s->th, NULL);
    for (unsigned i = 0; i < s->cfg.max_clients; i++) {
        conn_close(s, &s->conns[i]);
    }
    close(s->lfd);
    close(s->wakefd);
    unlink(s->path);
    free(s->conns);
    free(s->buf);
    free(s->path);
    free(s);
}
