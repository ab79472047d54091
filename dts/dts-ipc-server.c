/* dts-ipc-server: the daemon side of the exporter-library IPC. */
#include "dts/dts-ipc-server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/net/stream-server.h"
#include "lib/base/util.h"

struct ipc_conn {
    struct dts_ipc_session *sess; /* its decoder */
    struct dts_ipc_server *srv;   /* back pointer for the handlers */
};

struct dts_ipc_server {
    struct dts_ipc_server_config cfg; /* copy; path owned below */
    char *path;                       /* socket path */
    dev_t dev;                        /* the socket file we bound */
    ino_t ino;
    struct stream_server *ss; /* accepts and reads connections */
    uint64_t frames;          /* frames decoded (atomic) */
    uint64_t events;          /* event records (atomic) */
    uint64_t counters;        /* counter records (atomic) */
    uint64_t netflow;         /* flow records (atomic) */
};

#define IPC_READ_BUF (256u * 1024)

static void
st_add(uint64_t *v, uint64_t n)
{
    __atomic_add_fetch(v, n, __ATOMIC_RELAXED);
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
    st_add(&c->srv->events, 1);
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
    st_add(&c->srv->counters, 1);
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
    st_add(&c->srv->netflow, 1);
    if (c->srv->cfg.cb) {
        c->srv->cfg.cb(c->srv->cfg.aux, &r);
    }
}

static const struct dts_ipc_handlers ipc_handlers = {
    .on_event = on_event,
    .on_counter = on_counter,
    .on_netflow = on_netflow,
};

/* stream-server on_open: a decoder session per connection. */
static void *
conn_open(void *aux, struct stream_conn *sc)
{
    struct dts_ipc_server *s = aux;
    (void) sc;
    struct ipc_conn *c = xcalloc(1, sizeof *c);
    c->srv = s;
    c->sess = dts_ipc_session_create(&ipc_handlers, c, s->cfg.max_frame);
    return c;
}

/* stream-server on_data: feed everything to the session. */
static long
conn_data(void *aux, struct stream_conn *sc, void *user, const uint8_t *data,
          size_t len)
{
    struct dts_ipc_server *s = aux;
    struct ipc_conn *c = user;
    (void) sc;
    uint64_t before = dts_ipc_session_frames(c->sess);
    int rc = dts_ipc_session_feed(c->sess, data, len, NULL);
    st_add(&s->frames, dts_ipc_session_frames(c->sess) - before);
    if (rc < 0) {
        return STREAM_SERVER_ERROR;
    }
    if (dts_ipc_session_done(c->sess)) {
        return STREAM_SERVER_CLOSE;
    }
    return (long) len;
}

/* stream-server on_close: free the session. */
static void
conn_free(void *aux, struct stream_conn *sc, void *user)
{
    struct ipc_conn *c = user;
    (void) aux;
    (void) sc;
    dts_ipc_session_free(c->sess);
    free(c);
}

static const struct stream_server_ops ipc_conn_ops = {
    .on_open = conn_open,
    .on_data = conn_data,
    .on_close = conn_free,
};

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
    /* Replace a stale socket file, but never another kind of file, and
     * never a socket someone is listening on (a second dts must not take
     * the first one's apps away). */
    struct stat st;
    if (lstat(cfg->path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            dpf_error_set(err, 422, "Invalid",
                          "ipc: %s exists and is not a socket", cfg->path);
            return NULL;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 &&
            connect(probe, (struct sockaddr *) &sun, sizeof sun) == 0) {
            close(probe);
            dpf_error_set(err, 409, "Conflict",
                          "ipc: %s is in use by a running process (another "
                          "dts?); not replacing it",
                          cfg->path);
            return NULL;
        }
        if (probe >= 0) {
            close(probe);
        }
        unlink(cfg->path);
    }
    unsigned mode = cfg->mode ? cfg->mode : 0660;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *) &sun, sizeof sun) < 0) {
        dpf_error_set(err, 503, "ServiceUnavailable",
                      "ipc: cannot listen on %s: %s", cfg->path,
                      strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return NULL;
    }
    /* Nobody can connect before listen(): mode and group are in place
     * before the first app arrives. */
    if (chmod(cfg->path, mode) < 0 ||
        (cfg->gid >= 0 && chown(cfg->path, (uid_t) -1, (gid_t) cfg->gid) < 0) ||
        lstat(cfg->path, &st) < 0 || listen(fd, 64) < 0) {
        dpf_error_set(err, 503, "ServiceUnavailable",
                      "ipc: cannot set up %s (mode %04o, group %ld): %s",
                      cfg->path, mode, cfg->gid, strerror(errno));
        close(fd);
        unlink(cfg->path);
        return NULL;
    }
    struct dts_ipc_server *s = xcalloc(1, sizeof *s);
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->cfg = *cfg;
    s->path = xstrdup(cfg->path);
    s->cfg.path = s->path;
    struct stream_server_config scfg = {
        .listen_fd = fd,
        .max_clients = cfg->max_clients ? cfg->max_clients : 256,
        .read_size = IPC_READ_BUF,
        .read_rounds = 8,
        /* at most 32 one-MiB frames half-received at once, over all apps */
        .buffered_max = 32u * 1024 * 1024,
        .ops = &ipc_conn_ops,
        .aux = s,
    };
    s->ss = stream_server_start(&scfg, "ipc", err);
    if (!s->ss) {
        unlink(s->path);
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
    struct stream_server_stats ss;
    stream_server_get_stats(s->ss, &ss);
    st->connections = ss.connections;
    st->frames = st_get(&s->frames);
    st->events = st_get(&s->events);
    st->counters = st_get(&s->counters);
    st->netflow = st_get(&s->netflow);
    st->errors = ss.errors + ss.rejected;
    st->clients = ss.clients;
}

void
dts_ipc_server_stop(struct dts_ipc_server *s)
{
    if (!s) {
        return;
    }
    stream_server_stop(s->ss);
    struct stat st;
    if (lstat(s->path, &st) == 0 && st.st_dev == s->dev &&
        st.st_ino == s->ino) {
        unlink(s->path);
    }
    free(s->path);
    free(s);
}
