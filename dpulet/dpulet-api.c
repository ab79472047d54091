/* dpulet-api: see dpulet-api.h. */
#include "dpulet/dpulet-api.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "lib/base/log.h"
#include "lib/base/thread.h"
#include "lib/base/util.h"
#include "lib/codecs/cri-log.h"
#include "lib/kube/kube-status.h"
#include "lib/net/http-server.h"
#include "lib/net/spdy.h"
#include "lib/net/websocket.h"

LOG_MODULE(kubelet_api);

#define API_DEFAULT_STREAMS 32
#define API_DEFAULT_IDLE_S (4 * 3600)
/* Unsent output a log stream may queue before the reader waits. */
#define API_LOG_HIGH_WATER (1u << 20)
/* The most a client's WebSocket message may carry (stdin, resize). */
#define API_WS_MAX_PAYLOAD (1u << 20)
/* How long a write to a stalled exec client may wait. */
#define API_WS_SEND_TIMEOUT_MS 30000
/* How long a finished stream waits for the client to hang up. */
#define API_WS_LINGER_MS 5000
/* SPDY (kubectl before 1.30): the largest frame a client may send, the
 * most its header block may inflate to and hold, the streams it may
 * open (kubectl opens at most 5: error, stdin, stdout, stderr, resize),
 * and how long it has to open them by default (kubelet's stream
 * creation timeout). */
#define API_SPDY_MAX_FRAME (1u << 20)
#define API_SPDY_MAX_HEADER_BYTES 16384
#define API_SPDY_MAX_HEADER_PAIRS 64
#define API_SPDY_MAX_STREAMS 8
#define API_SPDY_HANDSHAKE_MS 30000
/* A resize stream's JSON objects are small; a longer line is dropped. */
#define API_SPDY_MAX_RESIZE 4096
/* Commands longer than this are refused (argv entries). */
#define API_MAX_ARGS 256
/* How often a follow looks at the container when the file is quiet. */
#define API_FOLLOW_CHECK_MS 1000

/* Channels of Kubernetes' WebSocket stream protocol. */
enum {
    CH_STDIN = 0,
    CH_STDOUT = 1,
    CH_STDERR = 2,
    CH_ERROR = 3,
    CH_RESIZE = 4,
    CH_CLOSE = 255, /* v5 only */
};

static const char *const api_protocols[] = {"v5.channel.k8s.io",
                                            "v4.channel.k8s.io", NULL};
/* Over SPDY only v4: its error stream carries a Status with the exit
 * code (v1 to v3 carry bare text, kubectl 1.5 and later offer v4). */
static const char *const api_spdy_protocols[] = {"v4.channel.k8s.io", NULL};

/* One SPDY session's state (the exec or attach thread's). */
struct api_spdy {
    struct spdy_zin *zin;       /* the client's header blocks */
    struct spdy_zout *zout;     /* ours */
    uint32_t id[CH_RESIZE + 1]; /* stream of each channel, 0 = none */
    uint32_t last_id;           /* the client's highest stream id */
    unsigned n_streams;         /* streams the client opened (any) */
    bool ready;                 /* every stream the request asks for */
    struct dbuf resize;         /* a partial line of the resize stream */
};

struct api_session;

struct dpulet_api {
    struct http_server *http;
    struct dpulet_api_ops ops;
    char **allowed_cns;           /* NULL-terminated, owned */
    unsigned max_streams;         /* limit on sessions */
    unsigned idle_timeout_s;      /* exec idle end */
    unsigned spdy_handshake_ms;   /* SPDY streams must be open by then */
    pthread_mutex_t mu;           /* guards sessions, n_sessions, stopping */
    struct api_session *sessions; /* live and finished-unjoined */
    unsigned n_sessions;          /* not yet finished */
    bool stopping;                /* dpulet_api_stop() began */
};

enum session_kind { SESSION_LOG, SESSION_EXEC, SESSION_ATTACH };

struct exec_io {
    int in_fd;  /* the command's stdin (write end) or -1 */
    int out_fd; /* its stdout (or the pty) or -1 */
    int err_fd; /* its stderr or -1 */
    bool tty;
};

/* "End now", shared by a session and its stream's on_close (which may
 * run after the session is gone): the last reference frees it. */
struct api_flag {
    atomic_int refs;
    atomic_bool stop;
    int wake[2]; /* a pipe raising stop writes to, read end polled */
};

static struct api_flag *
flag_new(void)
{
    struct api_flag *f = xcalloc(1, sizeof(*f));
    atomic_init(&f->refs, 1);
    atomic_init(&f->stop, false);
    if (pipe2(f->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        f->wake[0] = f->wake[1] = -1;
    }
    return f;
}

static void
flag_raise(struct api_flag *f)
{
    atomic_store(&f->stop, true);
    if (f->wake[1] >= 0) {
        (void) !write(f->wake[1], "x", 1);
    }
}

static void
flag_unref(struct api_flag *f)
{
    if (f && atomic_fetch_sub(&f->refs, 1) == 1) {
        if (f->wake[0] >= 0) {
            close(f->wake[0]);
            close(f->wake[1]);
        }
        free(f);
    }
}

struct api_session {
    struct dpulet_api *api;
    enum session_kind kind;
    struct api_session *next; /* api->sessions (under api->mu) */
    pthread_t thread;
    bool started;          /* thread runs (join at reap/stop) */
    atomic_bool done;      /* thread finished */
    struct api_flag *flag; /* asked to end (client gone, stop) */
    /* log */
    struct http_stream *stream;
    char *path;
    char *ns, *pod, *container;
    struct dpulet_log_opts lo;
    /* exec / attach */
    struct http_upgrade *up;
    int fd;              /* the upgraded socket */
    bool v5;             /* v5.channel.k8s.io negotiated */
    bool spdy;           /* SPDY/3.1 (v4.channel.k8s.io), not WebSocket */
    struct api_spdy *sp; /* its state (the session thread's) */
    bool want_stdin, want_stdout, want_stderr, tty;
    char **argv; /* NULL-terminated, owned */
    struct dpulet_exec_target target;
    pid_t child;        /* the command (0 = none) */
    struct exec_io *io; /* the command's pipes (exec_thread's) */
};

/* ------------------------------------------------------------------ */
/* log rendering                                                      */

typedef void (*log_emit_fn)(void *arg, bool is_stderr, const char *text,
                            size_t len);

struct render_state {
    bool mid_line; /* the previous record was partial */
};

/* Feed whole lines of in[0..len) to emit as kubectl shows them. Returns
 * the bytes consumed. */
static size_t
log_render_cb(const char *in, size_t len, const struct dpulet_log_opts *o,
              struct render_state *rs, log_emit_fn emit, void *arg)
{
    size_t pos = 0;
    while (pos < len) {
        const char *nl = memchr(in + pos, '\n', len - pos);
        if (!nl) {
            break;
        }
        size_t llen = (size_t) (nl - (in + pos));
        struct cri_log_line l;
        if (cri_log_parse(in + pos, llen, &l) == 0 &&
            (o->since_ns <= 0 || l.ts_ns >= o->since_ns)) {
            if (o->timestamps && !rs->mid_line) {
                emit(arg, l.is_stderr, l.ts, l.ts_len);
                emit(arg, l.is_stderr, " ", 1);
            }
            emit(arg, l.is_stderr, l.msg, l.msg_len);
            if (!l.partial) {
                emit(arg, l.is_stderr, "\n", 1);
            }
            rs->mid_line = l.partial;
        }
        pos += llen + 1;
    }
    return pos;
}

static void
emit_dbuf(void *arg, bool is_stderr, const char *text, size_t len)
{
    (void) is_stderr;
    dbuf_append(arg, text, len);
}

size_t
dpulet_log_render(const char *in, size_t len, const struct dpulet_log_opts *o,
                  struct dbuf *out)
{
    struct render_state rs = {0};
    return log_render_cb(in, len, o, &rs, emit_dbuf, out);
}

size_t
dpulet_log_tail_offset(const char *in, size_t len, int64_t n)
{
    size_t end = len;
    /* A last line without its newline is not a line yet. */
    while (end > 0 && in[end - 1] != '\n') {
        end--;
    }
    if (n <= 0) {
        return end;
    }
    size_t pos = end;
    int64_t seen = 0;
    while (pos > 0) {
        size_t i = pos - 1; /* the newline ending the line before pos */
        while (i > 0 && in[i - 1] != '\n') {
            i--;
        }
        seen++;
        pos = i;
        if (seen == n) {
            break;
        }
    }
    return pos;
}

/* ------------------------------------------------------------------ */
/* helpers                                                            */

static void respond_error(struct http_request *req, int code,
                          const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
respond_error(struct http_request *req, int code, const char *reason,
              const char *fmt, ...)
{
    struct dpf_error e = {0};
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    dpf_error_set(&e, code, reason, "%s", msg);
    free(msg);
    size_t len;
    char *body = kube_status_dump(&e, NULL, &len);
    http_respond_take(req, code, "application/json", body, len);
}

static void
respond_dpf_error(struct http_request *req, const struct dpf_error *e)
{
    size_t len;
    char *body = kube_status_dump(e, NULL, &len);
    http_respond_take(req, e->code ? e->code : 500, "application/json", body,
                      len);
}

/* An op's failure as an HTTP answer: its code, else by errno. */
static void
respond_op_error(struct http_request *req, int r, struct dpf_error *e)
{
    if (!e->code) {
        e->code = r == -ENOENT || r == -ESRCH     ? 404
                  : r == -ENODATA || r == -EAGAIN ? 400
                                                  : 500;
    }
    if (!e->message[0]) {
        dpf_error_set(e, e->code, NULL, "%s", strerror(-r));
    }
    respond_dpf_error(req, e);
}

static bool
query_flag(struct http_request *req, const char *name)
{
    const char *v = http_request_query(req, name);
    return v && (!strcmp(v, "1") || !strcasecmp(v, "true") || !*v);
}

/* A non-negative integer query parameter: 1 set, 0 absent, -1 bad. */
static int
query_int(struct http_request *req, const char *name, int64_t *out)
{
    const char *v = http_request_query(req, name);
    if (!v) {
        return 0;
    }
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || errno || n < 0) {
        return -1;
    }
    *out = n;
    return 1;
}

static bool
api_authorized(struct dpulet_api *api, struct http_request *req, int *code)
{
    const char *cn = http_request_peer_cn(req);
    if (!cn) {
        *code = 401;
        return false;
    }
    size_t n;
    const char *const *orgs = http_request_peer_orgs(req, &n);
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(orgs[i], "system:masters")) {
            return true;
        }
    }
    for (char **c = api->allowed_cns; *c; c++) {
        if (!strcmp(*c, cn)) {
            return true;
        }
    }
    *code = 403;
    return false;
}

/* Split "/<prefix>/<ns>/<pod>/<container>" (prefix given with both
 * slashes). 0 or -EINVAL. */
static int
split_target(const char *path, const char *prefix, char **ns, char **pod,
             char **container)
{
    if (!str_has_prefix(path, prefix)) {
        return -EINVAL;
    }
    char *copy = xstrdup(path + strlen(prefix));
    char *save = NULL;
    char *a = strtok_r(copy, "/", &save);
    char *b = a ? strtok_r(NULL, "/", &save) : NULL;
    char *c = b ? strtok_r(NULL, "/", &save) : NULL;
    char *d = c ? strtok_r(NULL, "/", &save) : NULL;
    if (!c || d) {
        free(copy);
        return -EINVAL;
    }
    *ns = xstrdup(a);
    *pod = xstrdup(b);
    *container = xstrdup(c);
    free(copy);
    return 0;
}

void
dpulet_exec_target_free(struct dpulet_exec_target *t)
{
    if (t->env) {
        for (char **e = t->env; *e; e++) {
            free(*e);
        }
        free(t->env);
    }
    free(t->cwd);
    memset(t, 0, sizeof(*t));
}

/* ------------------------------------------------------------------ */
/* sessions                                                           */

static void
session_free(struct api_session *s)
{
    free(s->path);
    free(s->ns);
    free(s->pod);
    free(s->container);
    if (s->argv) {
        for (char **a = s->argv; *a; a++) {
            free(*a);
        }
        free(s->argv);
    }
    dpulet_exec_target_free(&s->target);
    flag_unref(s->flag);
    free(s);
}

/* Join and free the sessions whose threads finished (api->mu held). */
static void
sessions_reap_locked(struct dpulet_api *api)
{
    struct api_session **pp = &api->sessions;
    while (*pp) {
        struct api_session *s = *pp;
        if (atomic_load(&s->done)) {
            *pp = s->next;
            if (s->started) {
                pthread_join(s->thread, NULL);
            }
            session_free(s);
        } else {
            pp = &s->next;
        }
    }
}

/* A new session, counted against the limit; NULL (429 answered) when
 * the limit is reached or the API is stopping. */
static struct api_session *
session_new(struct dpulet_api *api, struct http_request *req,
            enum session_kind kind)
{
    pthread_mutex_lock(&api->mu);
    sessions_reap_locked(api);
    if (api->stopping || api->n_sessions >= api->max_streams) {
        bool stopping = api->stopping;
        unsigned n = api->n_sessions;
        pthread_mutex_unlock(&api->mu);
        if (stopping) {
            respond_error(req, 503, "ServiceUnavailable",
                          "the node agent is shutting down");
        } else {
            http_response_header(req, "Retry-After", "1");
            respond_error(req, 429, "TooManyRequests",
                          "too many log and exec streams open on this node "
                          "(%u, the limit)",
                          n);
        }
        return NULL;
    }
    struct api_session *s = xcalloc(1, sizeof(*s));
    s->api = api;
    s->kind = kind;
    s->fd = -1;
    s->flag = flag_new();
    atomic_init(&s->done, false);
    s->next = api->sessions;
    api->sessions = s;
    api->n_sessions++;
    pthread_mutex_unlock(&api->mu);
    return s;
}

/* The session ends (its thread is about to return, or it never ran). */
static void
session_finish(struct api_session *s)
{
    struct dpulet_api *api = s->api;
    pthread_mutex_lock(&api->mu);
    api->n_sessions--;
    atomic_store(&s->done, true);
    pthread_mutex_unlock(&api->mu);
}

static void
session_wake(struct api_session *s)
{
    flag_raise(s->flag);
}

static int
session_start(struct api_session *s, void *(*fn)(void *), const char *name)
{
    int r = thread_start(&s->thread, NULL, name, fn, s);
    if (r == 0) {
        s->started = true;
    }
    return r;
}

/* ------------------------------------------------------------------ */
/* logs                                                               */

struct log_out {
    struct api_session *s;
    struct dbuf buf; /* rendered, not yet written */
    int64_t left;    /* limitBytes still allowed (-1 = no limit) */
};

static void
emit_log(void *arg, bool is_stderr, const char *text, size_t len)
{
    struct log_out *lo = arg;
    (void) is_stderr;
    if (lo->left >= 0) {
        if ((int64_t) len > lo->left) {
            len = (size_t) lo->left;
        }
        lo->left -= (int64_t) len;
    }
    dbuf_append(&lo->buf, text, len);
}

/* Write what was rendered; false when the client is gone. Waits (in
 * short polls of the queue) while the client has more than the high
 * water mark unsent: the file is read no faster than the client takes
 * it. */
static bool
log_flush(struct log_out *lo)
{
    if (lo->buf.len == 0) {
        return !atomic_load(&lo->s->flag->stop);
    }
    while (http_stream_queued(lo->s->stream) > API_LOG_HIGH_WATER &&
           !atomic_load(&lo->s->flag->stop)) {
        poll(NULL, 0, 20);
    }
    int r = http_stream_write(lo->s->stream, lo->buf.data, lo->buf.len);
    lo->buf.len = 0;
    return r == 0 && !atomic_load(&lo->s->flag->stop);
}

static void
log_stream_gone(void *arg)
{
    struct api_flag *f = arg;
    flag_raise(f);
    flag_unref(f);
}

/* Read the file from where tail/since put us, then follow it. */
static void *
log_thread(void *arg)
{
    struct api_session *s = arg;
    struct dpulet_api *api = s->api;
    struct log_out lo = {.s = s, .left = s->lo.limit_bytes};
    dbuf_init(&lo.buf);
    struct render_state rs = {0};
    int ino = -1;
    int fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        goto out; /* checked before the answer: it went away since */
    }
    if (s->lo.follow) {
        ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (ino >= 0) {
            inotify_add_watch(ino, s->path,
                              IN_MODIFY | IN_CLOSE_WRITE | IN_DELETE_SELF |
                                  IN_MOVE_SELF);
        }
    }
    struct dbuf pend; /* read, not yet a whole line */
    dbuf_init(&pend);
    if (s->lo.tail_lines >= 0) {
        /* Read the whole file once to find where its last lines start
         * (log files are rotated by size; dpulet keeps them small). */
        char chunk[65536];
        ssize_t n;
        while ((n = read(fd, chunk, sizeof chunk)) > 0) {
            dbuf_append(&pend, chunk, (size_t) n);
        }
        size_t off = dpulet_log_tail_offset(pend.data ? pend.data : "",
                                            pend.len, s->lo.tail_lines);
        memmove(pend.data, pend.data + off, pend.len - off);
        pend.len -= off;
    }
    int64_t last_check = time_mono_ms();
    for (;;) {
        char chunk[65536];
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n > 0) {
            dbuf_append(&pend, chunk, (size_t) n);
        }
        if (pend.len) {
            size_t used =
                log_render_cb(pend.data, pend.len, &s->lo, &rs, emit_log, &lo);
            memmove(pend.data, pend.data + used, pend.len - used);
            pend.len -= used;
        }
        if (!log_flush(&lo) || lo.left == 0) {
            break;
        }
        if (n > 0) {
            continue;
        }
        if (n < 0 || !s->lo.follow) {
            break;
        }
        /* At the end of the file: wait for more, the client to go, or
         * the container to stop. */
        struct pollfd p[2] = {{.fd = ino, .events = POLLIN},
                              {.fd = s->flag->wake[0], .events = POLLIN}};
        int pr = poll(p, 2, ino >= 0 ? API_FOLLOW_CHECK_MS : 200);
        if (pr > 0 && (p[0].revents & POLLIN)) {
            char evbuf[4096];
            while (read(ino, evbuf, sizeof evbuf) > 0) {
            }
        }
        if (atomic_load(&s->flag->stop)) {
            break;
        }
        if (time_mono_ms() - last_check >= API_FOLLOW_CHECK_MS) {
            last_check = time_mono_ms();
            char *path = NULL;
            bool running = false;
            struct dpf_error e = {0};
            int r = api->ops.container_log_path(api->ops.arg, s->ns, s->pod,
                                                s->container, false, &path,
                                                &running, &e);
            bool same = r == 0 && !strcmp(path, s->path);
            free(path);
            if (!same || !running) {
                /* One last read of what the run wrote before it ended. */
                while ((n = read(fd, chunk, sizeof chunk)) > 0) {
                    dbuf_append(&pend, chunk, (size_t) n);
                }
                log_render_cb(pend.data ? pend.data : "", pend.len, &s->lo, &rs,
                              emit_log, &lo);
                log_flush(&lo);
                break;
            }
        }
    }
    dbuf_free(&pend);
    close(fd);
out:
    if (ino >= 0) {
        close(ino);
    }
    dbuf_free(&lo.buf);
    /* stop aborts s->stream under the lock: take it away first. */
    pthread_mutex_lock(&api->mu);
    struct http_stream *st = s->stream;
    s->stream = NULL;
    pthread_mutex_unlock(&api->mu);
    http_stream_close(st);
    session_finish(s);
    return NULL;
}

/* Parse the log options both logs and attach share; false = answered
 * 400. */
static bool
parse_log_opts(struct http_request *req, struct dpulet_log_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->tail_lines = -1;
    o->limit_bytes = -1;
    o->follow = query_flag(req, "follow");
    o->timestamps = query_flag(req, "timestamps");
    int64_t v = 0;
    int r;
    if ((r = query_int(req, "tailLines", &v)) < 0) {
        respond_error(req, 400, "BadRequest",
                      "tailLines: must be a non-negative integer");
        return false;
    } else if (r) {
        o->tail_lines = v;
    }
    if ((r = query_int(req, "limitBytes", &v)) < 0 || (r && v == 0)) {
        respond_error(req, 400, "BadRequest",
                      "limitBytes: must be a positive integer");
        return false;
    } else if (r) {
        o->limit_bytes = v;
    }
    if ((r = query_int(req, "sinceSeconds", &v)) < 0 || (r && v == 0)) {
        respond_error(req, 400, "BadRequest",
                      "sinceSeconds: must be a positive integer");
        return false;
    } else if (r) {
        o->since_ns = time_wall_ns() - v * 1000000000LL;
    }
    const char *st = http_request_query(req, "sinceTime");
    if (st && *st) {
        int64_t ns;
        if (cri_time_parse(st, strlen(st), &ns) < 0) {
            respond_error(req, 400, "BadRequest",
                          "sinceTime: \"%s\" is not an RFC 3339 time", st);
            return false;
        }
        o->since_ns = ns;
    }
    return true;
}

static void
handle_logs(struct dpulet_api *api, struct http_request *req)
{
    char *ns = NULL, *pod = NULL, *container = NULL;
    if (split_target(http_request_path(req), "/containerLogs/", &ns, &pod,
                     &container) < 0) {
        respond_error(req, 404, "NotFound",
                      "the path must be /containerLogs/<namespace>/<pod>/"
                      "<container>");
        return;
    }
    struct dpulet_log_opts o;
    if (!parse_log_opts(req, &o)) {
        goto fail;
    }
    char *path = NULL;
    bool running = false;
    struct dpf_error e = {0};
    int r = api->ops.container_log_path(api->ops.arg, ns, pod, container,
                                        query_flag(req, "previous"), &path,
                                        &running, &e);
    if (r < 0) {
        respond_op_error(req, r, &e);
        goto fail;
    }
    if (access(path, R_OK) < 0) {
        respond_error(req, 400, "BadRequest",
                      "container \"%s\" in pod \"%s\" has no log yet",
                      container, pod);
        free(path);
        goto fail;
    }
    struct api_session *s = session_new(api, req, SESSION_LOG);
    if (!s) {
        free(path);
        goto fail;
    }
    s->path = path;
    s->ns = ns;
    s->pod = pod;
    s->container = container;
    s->lo = o;
    atomic_fetch_add(&s->flag->refs, 1); /* the stream's on_close */
    struct http_stream *stream =
        http_respond_stream(req, 200, "text/plain", log_stream_gone, s->flag);
    pthread_mutex_lock(&api->mu);
    s->stream = stream;
    pthread_mutex_unlock(&api->mu);
    if (session_start(s, log_thread, "dpulet-log") < 0) {
        pthread_mutex_lock(&api->mu);
        struct http_stream *st = s->stream;
        s->stream = NULL;
        pthread_mutex_unlock(&api->mu);
        http_stream_close(st);
        session_finish(s);
    }
    return;
fail:
    free(ns);
    free(pod);
    free(container);
}

/* ------------------------------------------------------------------ */
/* WebSocket channel streams                                          */

/* Send all of buf on the non-blocking upgraded socket; false when the
 * client is gone or stalled past the send timeout. */
static bool
ws_send_all(struct api_session *s, const uint8_t *buf, size_t len)
{
    size_t off = 0;
    int64_t until = time_mono_ms() + API_WS_SEND_TIMEOUT_MS;
    while (off < len) {
        ssize_t w = send(s->fd, buf + off, len - off, MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t) w;
            continue;
        }
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            int64_t left = until - time_mono_ms();
            if (left <= 0 || atomic_load(&s->flag->stop)) {
                return false;
            }
            struct pollfd p = {.fd = s->fd, .events = POLLOUT};
            poll(&p, 1, (int) (left > 200 ? 200 : left));
            continue;
        }
        return false;
    }
    return true;
}

static bool
ws_send_frame(struct api_session *s, uint8_t opcode, const void *data,
              size_t len)
{
    uint8_t hdr[WS_MAX_HEADER];
    size_t hl = ws_frame_header(hdr, opcode, true, len, NULL);
    return ws_send_all(s, hdr, hl) && (len == 0 || ws_send_all(s, data, len));
}

/* One channel message: [channel][data]. */
static bool
ws_send_channel(struct api_session *s, uint8_t ch, const void *data, size_t len)
{
    uint8_t hdr[WS_MAX_HEADER + 1];
    size_t hl = ws_frame_header(hdr, WS_OP_BINARY, true, len + 1, NULL);
    hdr[hl++] = ch;
    return ws_send_all(s, hdr, hl) && (len == 0 || ws_send_all(s, data, len));
}

/* End the stream: the Status on the error channel, then a close frame. */
static void
ws_finish(struct api_session *s, const char *status_json)
{
    if (status_json) {
        ws_send_channel(s, CH_ERROR, status_json, strlen(status_json));
    }
    uint8_t code[2] = {0x03, 0xe8}; /* 1000, normal closure */
    if (ws_send_frame(s, WS_OP_CLOSE, code, sizeof code)) {
        /* The client answers the close frame and hangs up: only then is
         * everything before it surely delivered. */
        http_upgrade_linger(s->up, API_WS_LINGER_MS);
    }
}

/* kubelet's Status for how the command ended. New string. */
static char *
exit_status_json(struct api_session *s, int code)
{
    if (code == 0) {
        return xstrdup("{\"metadata\":{},\"status\":\"Success\"}");
    }
    json_t *cmd = json_array();
    struct dbuf b;
    dbuf_init(&b);
    for (char **a = s->argv; *a; a++) {
        dbuf_printf(&b, "%s%s", a == s->argv ? "" : " ", *a);
    }
    char *msg = xasprintf("command terminated with non-zero exit code: error "
                          "executing command [%s], exit code %d",
                          b.data ? b.data : "", code);
    char codetext[16];
    snprintf(codetext, sizeof codetext, "%d", code);
    json_t *st = json_pack("{s:{},s:s,s:s,s:s,s:{s:[{s:s,s:s}]}}", "metadata",
                           "status", "Failure", "message", msg, "reason",
                           "NonZeroExitCode", "details", "causes", "reason",
                           "ExitCode", "message", codetext);
    char *text = json_dumps(st, JSON_COMPACT);
    json_decref(st);
    json_decref(cmd);
    free(msg);
    dbuf_free(&b);
    return text;
}

static char *
failure_status_json(const char *message)
{
    json_t *st =
        json_pack("{s:{},s:s,s:s,s:s,s:i}", "metadata", "status", "Failure",
                  "message", message, "reason", "InternalError", "code", 500);
    char *text = json_dumps(st, JSON_COMPACT);
    json_decref(st);
    return text;
}

/* Frames of the client: parsed from inbuf, handled by on_data (a data
 * message piece on a channel). Returns false when the stream must end. */
struct ws_reader {
    uint8_t *buf;
    size_t len;
    size_t cap;
    int channel; /* of the message being received, -1 none */
};

typedef bool (*ws_data_fn)(struct api_session *s, int ch, const uint8_t *data,
                           size_t len);

static bool chan_parse(struct api_session *s, struct ws_reader *r,
                       ws_data_fn on_data, bool *closed);

/* Read what the client sent and handle its whole frames (either
 * protocol); false when the stream must end. */
static bool
chan_read(struct api_session *s, struct ws_reader *r, ws_data_fn on_data,
          bool *closed)
{
    if (r->cap - r->len < 65536) {
        size_t ncap = r->cap ? r->cap * 2 : 131072;
        if (ncap > API_WS_MAX_PAYLOAD + 2 * WS_MAX_HEADER + 65536) {
            ncap = API_WS_MAX_PAYLOAD + 2 * WS_MAX_HEADER + 65536;
        }
        if (ncap > r->cap) {
            r->buf = xrealloc(r->buf, ncap);
            r->cap = ncap;
        }
    }
    ssize_t n = recv(s->fd, r->buf + r->len, r->cap - r->len, 0);
    if (n == 0) {
        *closed = true;
        return false;
    }
    if (n < 0) {
        return errno == EAGAIN || errno == EINTR;
    }
    r->len += (size_t) n;
    return chan_parse(s, r, on_data, closed);
}

/* Handle the whole frames in r's buffer; keep a partial one. */
static bool
ws_parse_frames(struct api_session *s, struct ws_reader *r, ws_data_fn on_data,
                bool *closed)
{
    size_t pos = 0;
    bool ok = true;
    while (ok && pos < r->len) {
        struct ws_frame f;
        ssize_t used = ws_frame_parse(r->buf + pos, r->len - pos, true,
                                      API_WS_MAX_PAYLOAD, &f);
        if (used == 0) {
            break;
        }
        if (used < 0) {
            log_debug("bad websocket frame from the client", "error=%s",
                      strerror((int) -used));
            ok = false;
            break;
        }
        pos += (size_t) used;
        switch (f.opcode) {
        case WS_OP_PING:
            ok = ws_send_frame(s, WS_OP_PONG, f.payload, f.len);
            break;
        case WS_OP_PONG:
            break;
        case WS_OP_CLOSE:
            *closed = true;
            ok = false;
            break;
        case WS_OP_TEXT:
        case WS_OP_BINARY:
            if (f.len == 0) {
                r->channel = -1;
                break;
            }
            r->channel = f.payload[0];
            ok = on_data(s, r->channel, f.payload + 1, f.len - 1);
            if (f.fin) {
                r->channel = -1;
            }
            break;
        case WS_OP_CONT:
            if (r->channel >= 0) {
                ok = on_data(s, r->channel, f.payload, f.len);
            }
            if (f.fin) {
                r->channel = -1;
            }
            break;
        default:
            break;
        }
    }
    memmove(r->buf, r->buf + pos, r->len - pos);
    r->len -= pos;
    if (r->len == r->cap) {
        ok = false; /* a frame larger than the buffer: refused above */
    }
    return ok;
}

/* ------------------------------------------------------------------ */
/* SPDY/3.1 streams (kubectl before 1.30)                             */
/*
 * The client opens one stream per channel, each named by its streamType
 * header (error, stdin, stdout, stderr, resize), and waits for our
 * SYN_REPLY to each before it opens the next; once all the request asks
 * for are there, the command starts. stdin and resize come as DATA on
 * their streams (a FIN ends stdin); output goes as DATA on stdout and
 * stderr; at the end the Status goes on the error stream, every stream
 * we write is finished (FIN) and a GOAWAY closes the session.
 *
 * Flow control: kubectl's SPDY library (moby/spdystream) sends no
 * WINDOW_UPDATE and ignores those it gets, as kubelet's does; so what we
 * send is paced by TCP alone (as kubelet's), and for what we receive we
 * give the window back (stream and session, SPDY/3.1) as we consume it,
 * so a client that does keep to its window is never stalled. */

static struct api_spdy *
spdy_state_new(void)
{
    struct api_spdy *sp = xcalloc(1, sizeof(*sp));
    sp->zin = spdy_zin_new();
    sp->zout = spdy_zout_new();
    dbuf_init(&sp->resize);
    return sp;
}

static void
spdy_state_free(struct api_spdy *sp)
{
    if (sp) {
        spdy_zin_free(sp->zin);
        spdy_zout_free(sp->zout);
        dbuf_free(&sp->resize);
        free(sp);
    }
}

static int
spdy_stream_channel(const char *type)
{
    static const struct {
        const char *name;
        int ch;
    } types[] = {{"error", CH_ERROR},
                 {"stdin", CH_STDIN},
                 {"stdout", CH_STDOUT},
                 {"stderr", CH_STDERR},
                 {"resize", CH_RESIZE}};
    for (size_t i = 0; type && i < sizeof types / sizeof *types; i++) {
        if (!strcmp(type, types[i].name)) {
            return types[i].ch;
        }
    }
    return -1;
}

static bool
spdy_wanted(const struct api_session *s, int ch)
{
    switch (ch) {
    case CH_ERROR:
        return true;
    case CH_STDIN:
        return s->want_stdin;
    case CH_STDOUT:
        return s->want_stdout;
    case CH_STDERR:
        return s->want_stderr;
    case CH_RESIZE:
        return s->tty;
    default:
        return false;
    }
}

static int
spdy_channel_of(const struct api_spdy *sp, uint32_t id)
{
    for (int ch = 0; ch <= CH_RESIZE; ch++) {
        if (sp->id[ch] == id) {
            return ch;
        }
    }
    return -1;
}

/* A SYN_STREAM: take the stream if it names a channel not open yet,
 * else refuse it. False (after queueing a GOAWAY) when the session must
 * end. */
static bool
spdy_on_syn_stream(struct api_session *s, const struct spdy_frame *f,
                   struct dbuf *out)
{
    struct api_spdy *sp = s->sp;
    struct spdy_headers h;
    int r = spdy_headers_decode(sp->zin, f->payload, f->len,
                                API_SPDY_MAX_HEADER_BYTES,
                                API_SPDY_MAX_HEADER_PAIRS, &h);
    if (r < 0) {
        log_debug("bad SPDY header block from the client", "error=%s",
                  strerror(-r));
        spdy_put_goaway(out, sp->last_id, SPDY_GOAWAY_PROTOCOL_ERROR);
        return false;
    }
    /* A client's streams have odd ids, each above the last (2.3.2). */
    if (!(f->stream_id & 1) || f->stream_id <= sp->last_id) {
        spdy_headers_free(&h);
        spdy_put_goaway(out, sp->last_id, SPDY_GOAWAY_PROTOCOL_ERROR);
        return false;
    }
    sp->last_id = f->stream_id;
    /* Every stream counts, refused ones too: a client that keeps
     * opening streams is not kubectl. */
    if (++sp->n_streams > API_SPDY_MAX_STREAMS) {
        log_debug("SPDY client opened too many streams", "pod=%s", s->pod);
        spdy_headers_free(&h);
        spdy_put_goaway(out, sp->last_id, SPDY_GOAWAY_PROTOCOL_ERROR);
        return false;
    }
    const char *type = spdy_headers_get(&h, "streamtype");
    int ch = spdy_stream_channel(type);
    /* A known stream the request did not ask for is taken (and left
     * unused) as kubelet does; an unknown or a second one is refused. */
    if (ch < 0 || sp->id[ch]) {
        log_debug("SPDY stream refused", "pod=%s type=%s", s->pod,
                  type ? type : "");
        spdy_put_rst_stream(out, f->stream_id, SPDY_RST_REFUSED_STREAM);
    } else {
        sp->id[ch] = f->stream_id;
        spdy_put_syn_reply(out, sp->zout, f->stream_id, 0, NULL);
    }
    spdy_headers_free(&h);
    bool ready = true;
    for (int c = 0; c <= CH_RESIZE; c++) {
        if (spdy_wanted(s, c) && !sp->id[c]) {
            ready = false;
        }
    }
    sp->ready = ready;
    return true;
}

/* DATA from the client: stdin to the command, resize lines to the
 * terminal; the window it used is given back. */
static bool
spdy_on_data(struct api_session *s, const struct spdy_frame *f,
             ws_data_fn on_data, struct dbuf *out)
{
    struct api_spdy *sp = s->sp;
    int ch = spdy_channel_of(sp, f->stream_id);
    bool ok = true;
    if (f->len) {
        spdy_put_window_update(out, f->stream_id, (uint32_t) f->len);
        spdy_put_window_update(out, 0, (uint32_t) f->len);
    }
    if (!on_data) {
        return true; /* before the command runs: nothing to feed */
    }
    if (ch == CH_STDIN && f->len) {
        ok = on_data(s, CH_STDIN, f->payload, f->len);
    } else if (ch == CH_RESIZE && f->len) {
        /* kubectl writes one JSON object per line. */
        dbuf_append(&sp->resize, f->payload, f->len);
        char *nl;
        while (sp->resize.len &&
               (nl = memchr(sp->resize.data, '\n', sp->resize.len))) {
            size_t ll = (size_t) (nl - sp->resize.data);
            ok = on_data(s, CH_RESIZE, (const uint8_t *) sp->resize.data, ll) &&
                 ok;
            memmove(sp->resize.data, nl + 1, sp->resize.len - ll - 1);
            sp->resize.len -= ll + 1;
        }
        if (sp->resize.len > API_SPDY_MAX_RESIZE) {
            sp->resize.len = 0;
        }
    }
    if (ch == CH_STDIN && (f->flags & SPDY_FLAG_FIN)) {
        uint8_t which = CH_STDIN;
        ok = on_data(s, CH_CLOSE, &which, 1) && ok;
    }
    return ok;
}

/* Handle the whole SPDY frames in r's buffer; keep a partial one. Until
 * the streams are all open (sp->ready) it stops after the frame that
 * completes them, so what follows waits for the command. */
static bool
spdy_parse_frames(struct api_session *s, struct ws_reader *r,
                  ws_data_fn on_data, bool *closed)
{
    struct api_spdy *sp = s->sp;
    struct dbuf out;
    dbuf_init(&out);
    size_t pos = 0;
    bool ok = true;
    bool was_ready = sp->ready;
    while (ok && pos < r->len && (was_ready || !sp->ready)) {
        struct spdy_frame f;
        ssize_t used = spdy_frame_parse(r->buf + pos, r->len - pos,
                                        API_SPDY_MAX_FRAME, &f);
        if (used == 0) {
            break;
        }
        if (used < 0) {
            log_debug("bad SPDY frame from the client", "error=%s",
                      strerror((int) -used));
            spdy_put_goaway(&out, sp->last_id, SPDY_GOAWAY_PROTOCOL_ERROR);
            ok = false;
            break;
        }
        pos += (size_t) used;
        switch (f.type) {
        case SPDY_SYN_STREAM:
            ok = spdy_on_syn_stream(s, &f, &out);
            break;
        case SPDY_HEADERS: {
            /* Nothing to do with them, but the decompressor must see
             * every block to stay in step. */
            struct spdy_headers h;
            int e = spdy_headers_decode(sp->zin, f.payload, f.len,
                                        API_SPDY_MAX_HEADER_BYTES,
                                        API_SPDY_MAX_HEADER_PAIRS, &h);
            spdy_headers_free(&h);
            if (e < 0) {
                spdy_put_goaway(&out, sp->last_id, SPDY_GOAWAY_PROTOCOL_ERROR);
                ok = false;
            }
            break;
        }
        case SPDY_DATA:
            ok = spdy_on_data(s, &f, on_data, &out);
            break;
        case SPDY_RST_STREAM: {
            int ch = spdy_channel_of(sp, f.stream_id);
            if (ch == CH_STDIN && on_data) {
                uint8_t which = CH_STDIN;
                ok = on_data(s, CH_CLOSE, &which, 1);
            }
            if (ch >= 0) {
                sp->id[ch] = 0; /* nothing more goes on it */
            }
            break;
        }
        case SPDY_PING:
            if (f.value & 1) { /* the client's (odd ids): answer it */
                spdy_put_ping(&out, f.value);
            }
            break;
        case SPDY_GOAWAY:
            *closed = true;
            ok = false;
            break;
        default: /* SETTINGS, WINDOW_UPDATE (see above), unknown types */
            break;
        }
    }
    memmove(r->buf, r->buf + pos, r->len - pos);
    r->len -= pos;
    if (out.len && !ws_send_all(s, (const uint8_t *) out.data, out.len)) {
        ok = false;
    }
    dbuf_free(&out);
    if (r->len == r->cap && r->cap) {
        ok = false; /* a frame larger than the buffer: refused above */
    }
    return ok;
}

static bool
spdy_send_channel(struct api_session *s, uint8_t ch, const void *data,
                  size_t len)
{
    uint32_t id = ch <= CH_RESIZE ? s->sp->id[ch] : 0;
    if (!id) {
        return true; /* the client did not open it (or reset it) */
    }
    struct dbuf out;
    dbuf_init(&out);
    spdy_put_data(&out, id, 0, data, len);
    bool ok = ws_send_all(s, (const uint8_t *) out.data, out.len);
    dbuf_free(&out);
    return ok;
}

/* The Status on the error stream, every stream we write finished, then
 * GOAWAY; as with WebSocket, wait for the client to hang up. */
static void
spdy_finish(struct api_session *s, const char *status_json)
{
    struct api_spdy *sp = s->sp;
    struct dbuf out;
    dbuf_init(&out);
    static const int ours[] = {CH_STDOUT, CH_STDERR, CH_ERROR};
    for (size_t i = 0; i < sizeof ours / sizeof *ours; i++) {
        uint32_t id = sp->id[ours[i]];
        if (!id) {
            continue;
        }
        if (ours[i] == CH_ERROR && status_json) {
            spdy_put_data(&out, id, SPDY_FLAG_FIN, status_json,
                          strlen(status_json));
        } else {
            spdy_put_data(&out, id, SPDY_FLAG_FIN, NULL, 0);
        }
    }
    spdy_put_goaway(&out, sp->last_id, SPDY_GOAWAY_OK);
    if (ws_send_all(s, (const uint8_t *) out.data, out.len)) {
        http_upgrade_linger(s->up, API_WS_LINGER_MS);
    }
    dbuf_free(&out);
}

/* Wait (bounded) for the client to open the streams the request asks
 * for, answering each. False when it did not: the session ends. */
static bool
spdy_await_streams(struct api_session *s, struct ws_reader *rd, bool *closed)
{
    int64_t until = time_mono_ms() + s->api->spdy_handshake_ms;
    if (rd->len && !spdy_parse_frames(s, rd, NULL, closed)) {
        return false;
    }
    while (!s->sp->ready) {
        int64_t left = until - time_mono_ms();
        if (left <= 0) {
            log_info("SPDY client did not open its streams in time", "pod=%s",
                     s->pod);
            return false;
        }
        if (atomic_load(&s->flag->stop)) {
            return false;
        }
        struct pollfd p[2] = {{.fd = s->fd, .events = POLLIN},
                              {.fd = s->flag->wake[0], .events = POLLIN}};
        int pr = poll(p, 2, (int) (left > 1000 ? 1000 : left));
        if (pr > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR)) &&
            !chan_read(s, rd, NULL, closed)) {
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* either protocol                                                    */

static bool
chan_parse(struct api_session *s, struct ws_reader *r, ws_data_fn on_data,
           bool *closed)
{
    return s->spdy ? spdy_parse_frames(s, r, on_data, closed)
                   : ws_parse_frames(s, r, on_data, closed);
}

static bool
chan_send(struct api_session *s, uint8_t ch, const void *data, size_t len)
{
    return s->spdy ? spdy_send_channel(s, ch, data, len)
                   : ws_send_channel(s, ch, data, len);
}

static void
chan_finish(struct api_session *s, const char *status_json)
{
    if (s->spdy) {
        spdy_finish(s, status_json);
    } else {
        ws_finish(s, status_json);
    }
}

/* Start the session's protocol: the bytes the client sent with its
 * upgrade request into rd, and for SPDY its streams. False when the
 * session cannot go on (*closed: the client is gone). */
static bool
chan_begin(struct api_session *s, struct ws_reader *rd, bool *closed)
{
    size_t extra_len;
    const char *extra = http_upgrade_extra(s->up, &extra_len);
    if (extra_len) {
        rd->buf = xmalloc(extra_len + 65536);
        rd->cap = extra_len + 65536;
        memcpy(rd->buf, extra, extra_len);
        rd->len = extra_len;
    }
    if (!s->spdy) {
        return true;
    }
    s->sp = spdy_state_new();
    return spdy_await_streams(s, rd, closed);
}

/* ------------------------------------------------------------------ */
/* exec                                                               */

static bool
exec_on_data(struct api_session *s, int ch, const uint8_t *data, size_t len)
{
    struct exec_io *io = s->io;
    if (ch == CH_STDIN && io->in_fd >= 0) {
        size_t off = 0;
        while (off < len) {
            ssize_t w = write(io->in_fd, data + off, len - off);
            if (w < 0 && errno == EINTR) {
                continue;
            }
            if (w <= 0) {
                break; /* the command closed its stdin: drop the rest */
            }
            off += (size_t) w;
        }
    } else if (ch == CH_RESIZE && io->tty && io->out_fd >= 0) {
        json_t *j = json_loadb((const char *) data, len, 0, NULL);
        json_int_t w = json_integer_value(json_object_get(j, "Width"));
        json_int_t h = json_integer_value(json_object_get(j, "Height"));
        if (w > 0 && h > 0 && w < 65536 && h < 65536) {
            struct winsize ws = {.ws_row = (unsigned short) h,
                                 .ws_col = (unsigned short) w};
            ioctl(io->out_fd, TIOCSWINSZ, &ws);
        }
        json_decref(j);
    } else if (ch == CH_CLOSE && (s->v5 || s->spdy) && len >= 1 &&
               data[0] == CH_STDIN) {
        if (io->in_fd >= 0 && !io->tty) {
            close(io->in_fd);
            io->in_fd = -1;
        } else if (io->tty && io->in_fd >= 0) {
            /* A terminal's end of input is its EOF character. */
            (void) !write(io->in_fd, "\x04", 1);
        }
    }
    return true;
}

/* In the child: enter the container and run the command. Only
 * async-signal-safe calls (the parent is multithreaded). */
static void __attribute__((noreturn))
exec_child(struct api_session *s, int mntns, int errpipe, int in, int out,
           int err, bool tty)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    signal(SIGPIPE, SIG_DFL);
    int e = 0;
    if (mntns >= 0 && setns(mntns, CLONE_NEWNS) < 0) {
        e = errno;
        goto fail;
    }
    if (tty) {
        setsid();
        ioctl(out, TIOCSCTTY, 0);
    }
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) {
        e = errno;
        goto fail;
    }
    if (chdir(s->target.cwd ? s->target.cwd : "/") < 0) {
        e = errno;
        goto fail;
    }
    char *empty[] = {NULL};
    char **env = s->target.env ? s->target.env : empty;
    const char *file = s->argv[0];
    if (strchr(file, '/')) {
        execve(file, s->argv, env);
        e = errno;
        goto fail;
    }
    /* The container's PATH, else the usual one. */
    const char *path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                       "/sbin:/bin";
    for (char **p = env; *p; p++) {
        if (!strncmp(*p, "PATH=", 5)) {
            path = *p + 5;
        }
    }
    e = ENOENT;
    char buf[4096];
    size_t flen = strlen(file);
    while (*path) {
        const char *c = strchr(path, ':');
        size_t dl = c ? (size_t) (c - path) : strlen(path);
        if (dl + 1 + flen + 1 <= sizeof buf) {
            memcpy(buf, path, dl);
            size_t bl = dl;
            if (bl == 0) {
                buf[bl++] = '.';
            }
            buf[bl++] = '/';
            memcpy(buf + bl, file, flen + 1);
            execve(buf, s->argv, env);
            if (errno != ENOENT && errno != ENOTDIR) {
                e = errno;
            }
        }
        path += dl + (c ? 1 : 0);
        if (!c) {
            break;
        }
    }
fail:
    (void) !write(errpipe, &e, sizeof e);
    _exit(127);
}

static void
set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) {
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    }
}

/* Forward what fd has to channel ch; false at its end (EOF or error). */
static bool
pump_output(struct api_session *s, int fd, uint8_t ch, bool *client_ok)
{
    char buf[32768];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0) {
        if (!chan_send(s, ch, buf, (size_t) n)) {
            *client_ok = false;
        }
        return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        return true;
    }
    return false;
}

static void *
exec_thread(void *arg)
{
    struct api_session *s = arg;
    struct dpulet_api *api = s->api;
    struct exec_io io = {-1, -1, -1, s->tty};
    int child_in = -1, child_out = -1, child_err = -1;
    int errp[2] = {-1, -1};
    int mntns = -1, pidfd = -1;
    char *status = NULL;
    struct ws_reader rd = {.channel = -1};
    bool client_ok = true, closed = false, exited = false;

    set_nonblock(s->fd);
    if (!chan_begin(s, &rd, &closed)) {
        if (!closed) {
            status = failure_status_json("the client did not open the "
                                         "streams it asked for");
        }
        goto finish;
    }
    if (s->target.pid > 0) {
        char p[64];
        snprintf(p, sizeof p, "/proc/%d/ns/mnt", (int) s->target.pid);
        mntns = open(p, O_RDONLY | O_CLOEXEC);
        if (mntns < 0) {
            char *m = xasprintf("cannot enter the container: %s: %s", p,
                                strerror(errno));
            status = failure_status_json(m);
            free(m);
            goto finish;
        }
    }
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (s->tty) {
        int master, slave;
        if (openpty(&master, &slave, NULL, NULL, NULL) < 0) {
            status = failure_status_json("cannot allocate a terminal");
            close(devnull);
            goto finish;
        }
        fcntl(master, F_SETFD, FD_CLOEXEC);
        fcntl(slave, F_SETFD, FD_CLOEXEC);
        io.in_fd = s->want_stdin ? master : -1;
        io.out_fd = master;
        child_in = child_out = child_err = slave;
    } else {
        int pi[2] = {-1, -1}, po[2] = {-1, -1}, pe[2] = {-1, -1};
        if ((s->want_stdin && pipe2(pi, O_CLOEXEC) < 0) ||
            (s->want_stdout && pipe2(po, O_CLOEXEC) < 0) ||
            (s->want_stderr && pipe2(pe, O_CLOEXEC) < 0)) {
            status = failure_status_json("cannot create pipes");
            close(devnull);
            goto finish;
        }
        io.in_fd = pi[1];
        child_in = pi[0] >= 0 ? pi[0] : devnull;
        io.out_fd = po[0];
        child_out = po[1] >= 0 ? po[1] : devnull;
        io.err_fd = pe[0];
        child_err = pe[1] >= 0 ? pe[1] : devnull;
    }
    if (pipe2(errp, O_CLOEXEC) < 0) {
        status = failure_status_json("cannot create pipes");
        close(devnull);
        goto finish;
    }
    pid_t pid = fork();
    if (pid == 0) {
        exec_child(s, mntns, errp[1], child_in, child_out, child_err, s->tty);
    }
    int fork_errno = errno;
    close(errp[1]);
    errp[1] = -1;
    if (child_in >= 0 && child_in != devnull) {
        close(child_in);
    }
    if (child_out >= 0 && child_out != devnull && child_out != child_in) {
        close(child_out);
    }
    if (child_err >= 0 && child_err != devnull && child_err != child_in &&
        child_err != child_out) {
        close(child_err);
    }
    close(devnull);
    if (pid < 0) {
        char *m =
            xasprintf("cannot start the command: %s", strerror(fork_errno));
        status = failure_status_json(m);
        free(m);
        goto finish;
    }
    s->child = pid;
    int ce = 0;
    ssize_t got;
    do {
        got = read(errp[0], &ce, sizeof ce);
    } while (got < 0 && errno == EINTR);
    if (got == (ssize_t) sizeof ce) {
        waitpid(pid, NULL, 0);
        s->child = 0;
        char *m = xasprintf("error executing command in container: exec: "
                            "\"%s\": %s",
                            s->argv[0],
                            ce == ENOENT ? "executable file not found in "
                                           "$PATH"
                                         : strerror(ce));
        status = failure_status_json(m);
        free(m);
        goto finish;
    }
    log_info("exec", "namespace=%s pod=%s container=%s command=%s pid=%d",
             s->ns, s->pod, s->container, s->argv[0], (int) pid);
    pidfd = (int) syscall(SYS_pidfd_open, pid, 0);
    if (io.out_fd >= 0) {
        set_nonblock(io.out_fd);
    }
    if (io.err_fd >= 0) {
        set_nonblock(io.err_fd);
    }
    s->io = &io;

    /* What the client sent before the command ran. */
    if (rd.len && !chan_parse(s, &rd, exec_on_data, &closed)) {
        client_ok = false;
    }
    int wstatus = 0;
    int64_t last_io = time_mono_ms();
    while (client_ok && !atomic_load(&s->flag->stop)) {
        struct pollfd p[5];
        int np = 0;
        p[np++] = (struct pollfd){.fd = s->fd, .events = POLLIN};
        p[np++] = (struct pollfd){.fd = s->flag->wake[0], .events = POLLIN};
        int i_out = -1, i_err = -1, i_pid = -1;
        if (io.out_fd >= 0) {
            i_out = np;
            p[np++] = (struct pollfd){.fd = io.out_fd, .events = POLLIN};
        }
        if (io.err_fd >= 0) {
            i_err = np;
            p[np++] = (struct pollfd){.fd = io.err_fd, .events = POLLIN};
        }
        if (pidfd >= 0 && !exited) {
            i_pid = np;
            p[np++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        }
        if (exited || (pidfd < 0 && io.out_fd < 0 && io.err_fd < 0)) {
            break;
        }
        int pr = poll(p, (nfds_t) np, 1000);
        if (pr < 0 && errno != EINTR) {
            break;
        }
        if (pr == 0) {
            if (time_mono_ms() - last_io > 1000LL * api->idle_timeout_s) {
                log_info("exec stream idle: ended", "pod=%s", s->pod);
                break;
            }
            if (pidfd < 0 && waitpid(pid, &wstatus, WNOHANG) == pid) {
                exited = true;
            }
            continue;
        }
        last_io = time_mono_ms();
        if ((p[0].revents & (POLLIN | POLLHUP | POLLERR)) &&
            !chan_read(s, &rd, exec_on_data, &closed)) {
            client_ok = false;
            break;
        }
        if (i_out >= 0 && (p[i_out].revents & (POLLIN | POLLHUP | POLLERR)) &&
            !pump_output(s, io.out_fd, CH_STDOUT, &client_ok)) {
            if (io.in_fd == io.out_fd) {
                io.in_fd = -1;
            }
            close(io.out_fd);
            io.out_fd = -1;
        }
        if (i_err >= 0 && (p[i_err].revents & (POLLIN | POLLHUP | POLLERR)) &&
            !pump_output(s, io.err_fd, CH_STDERR, &client_ok)) {
            close(io.err_fd);
            io.err_fd = -1;
        }
        if (i_pid >= 0 && (p[i_pid].revents & POLLIN) &&
            waitpid(pid, &wstatus, 0) == pid) {
            exited = true;
            /* What the command wrote before it ended still goes out
             * (not what a process it left behind writes later). */
            for (int k = 0; k < 64 && io.out_fd >= 0; k++) {
                char buf[32768];
                ssize_t n = read(io.out_fd, buf, sizeof buf);
                if (n <= 0) {
                    break;
                }
                client_ok = chan_send(s, CH_STDOUT, buf, (size_t) n);
            }
            for (int k = 0; k < 64 && io.err_fd >= 0; k++) {
                char buf[32768];
                ssize_t n = read(io.err_fd, buf, sizeof buf);
                if (n <= 0) {
                    break;
                }
                client_ok = chan_send(s, CH_STDERR, buf, (size_t) n);
            }
        }
    }
    if (!exited) {
        if (pidfd < 0 && waitpid(pid, &wstatus, WNOHANG) == pid) {
            exited = true;
        } else {
            /* The client left or the API stops: the command goes too. */
            kill(pid, SIGKILL);
            waitpid(pid, &wstatus, 0);
        }
    }
    s->child = 0;
    if (exited && client_ok) {
        int code = WIFEXITED(wstatus)     ? WEXITSTATUS(wstatus)
                   : WIFSIGNALED(wstatus) ? 128 + WTERMSIG(wstatus)
                                          : 1;
        status = exit_status_json(s, code);
    }
    (void) closed;
finish:
    s->io = NULL;
    if (status) {
        chan_finish(s, status);
    }
    free(status);
    free(rd.buf);
    spdy_state_free(s->sp);
    s->sp = NULL;
    if (io.in_fd >= 0 && io.in_fd != io.out_fd) {
        close(io.in_fd);
    }
    if (io.out_fd >= 0) {
        close(io.out_fd);
    }
    if (io.err_fd >= 0) {
        close(io.err_fd);
    }
    if (errp[0] >= 0) {
        close(errp[0]);
    }
    if (mntns >= 0) {
        close(mntns);
    }
    if (pidfd >= 0) {
        close(pidfd);
    }
    http_upgrade_close(s->up);
    s->up = NULL;
    session_finish(s);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* attach: the container's output from now on                        */

struct attach_out {
    struct api_session *s;
    bool ok;
};

static void
emit_attach(void *arg, bool is_stderr, const char *text, size_t len)
{
    struct attach_out *ao = arg;
    struct api_session *s = ao->s;
    if (ao->ok && len &&
        ((is_stderr && s->want_stderr) || (!is_stderr && s->want_stdout))) {
        ao->ok = chan_send(s, is_stderr ? CH_STDERR : CH_STDOUT, text, len);
    }
}

static bool
attach_on_data(struct api_session *s, int ch, const uint8_t *data, size_t len)
{
    (void) s;
    (void) ch;
    (void) data;
    (void) len;
    return true; /* no stdin: dpulet's containers run without one */
}

static void *
attach_thread(void *arg)
{
    struct api_session *s = arg;
    struct dpulet_api *api = s->api;
    struct attach_out ao = {s, true};
    struct render_state rs = {0};
    struct dpulet_log_opts o = {.tail_lines = -1, .limit_bytes = -1};
    struct ws_reader rd = {.channel = -1};
    struct dbuf pend;
    dbuf_init(&pend);
    set_nonblock(s->fd);
    bool closed = false;
    if (!chan_begin(s, &rd, &closed)) {
        if (!closed) {
            char *st = failure_status_json("the client did not open the "
                                           "streams it asked for");
            chan_finish(s, st);
            free(st);
        }
        ao.ok = false;
    }
    int fd = ao.ok ? open(s->path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd >= 0) {
        lseek(fd, 0, SEEK_END);
    }
    int64_t last_check = time_mono_ms();
    const char *status = NULL;
    while (fd >= 0 && ao.ok && !atomic_load(&s->flag->stop)) {
        struct pollfd p[2] = {{.fd = s->fd, .events = POLLIN},
                              {.fd = s->flag->wake[0], .events = POLLIN}};
        int pr = poll(p, 2, 200);
        if (pr > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR)) &&
            !chan_read(s, &rd, attach_on_data, &closed)) {
            break;
        }
        char chunk[65536];
        ssize_t n;
        while ((n = read(fd, chunk, sizeof chunk)) > 0) {
            dbuf_append(&pend, chunk, (size_t) n);
        }
        if (pend.len) {
            size_t used =
                log_render_cb(pend.data, pend.len, &o, &rs, emit_attach, &ao);
            memmove(pend.data, pend.data + used, pend.len - used);
            pend.len -= used;
        }
        if (time_mono_ms() - last_check >= API_FOLLOW_CHECK_MS) {
            last_check = time_mono_ms();
            char *path = NULL;
            bool running = false;
            struct dpf_error e = {0};
            int r = api->ops.container_log_path(api->ops.arg, s->ns, s->pod,
                                                s->container, false, &path,
                                                &running, &e);
            bool same = r == 0 && !strcmp(path, s->path);
            free(path);
            if (!same || !running) {
                status = "{\"metadata\":{},\"status\":\"Success\"}";
                break;
            }
        }
    }
    if (fd >= 0) {
        close(fd);
    }
    if (ao.ok && !closed) {
        chan_finish(s, status);
    }
    dbuf_free(&pend);
    free(rd.buf);
    spdy_state_free(s->sp);
    s->sp = NULL;
    http_upgrade_close(s->up);
    s->up = NULL;
    session_finish(s);
    return NULL;
}

/* ------------------------------------------------------------------ */
/* the upgrade                                                        */

static void
stream_upgraded(void *arg, struct http_upgrade *up)
{
    struct api_session *s = arg;
    if (!up) {
        session_finish(s); /* the client left before the 101 */
        return;
    }
    s->up = up;
    s->fd = http_upgrade_fd(up);
    int r = session_start(
        s, s->kind == SESSION_EXEC ? exec_thread : attach_thread,
        s->kind == SESSION_EXEC ? "dpulet-exec" : "dpulet-attach");
    if (r < 0) {
        http_upgrade_close(up);
        s->up = NULL;
        session_finish(s);
    }
}

/* Check a SPDY/3.1 upgrade (kubectl before 1.30); fill the answer's
 * headers. Returns the negotiated protocol or NULL (answered). */
static const char *
spdy_handshake(struct http_request *req)
{
    const char *offers[16];
    size_t n = http_request_header_values(req, "X-Stream-Protocol-Version",
                                          offers, 16);
    const char *proto = NULL;
    for (size_t i = 0; i < n && i < 16 && !proto; i++) {
        proto = ws_pick_protocol(offers[i], api_spdy_protocols);
    }
    if (!proto) {
        respond_error(req, 400, "BadRequest",
                      "no supported stream protocol: over SPDY dpulet "
                      "speaks v4.channel.k8s.io (X-Stream-Protocol-Version)");
        return NULL;
    }
    http_response_header(req, "Upgrade", "SPDY/3.1");
    http_response_header(req, "X-Stream-Protocol-Version", proto);
    return proto;
}

/* Check the upgrade (WebSocket, or SPDY/3.1 into *spdy); fill the
 * answer's headers. Returns the negotiated protocol or NULL
 * (answered). */
static const char *
ws_handshake(struct http_request *req, bool *spdy)
{
    const char *upg = http_request_header(req, "Upgrade");
    if (!upg) {
        respond_error(req, 400, "BadRequest",
                      "exec and attach need a protocol upgrade: WebSocket "
                      "(Upgrade: websocket, Sec-WebSocket-Protocol "
                      "v5.channel.k8s.io or v4.channel.k8s.io) or SPDY "
                      "(Upgrade: SPDY/3.1, X-Stream-Protocol-Version "
                      "v4.channel.k8s.io)");
        return NULL;
    }
    if (!strcasecmp(upg, "SPDY/3.1")) {
        *spdy = true;
        return spdy_handshake(req);
    }
    if (strcasecmp(upg, "websocket") != 0) {
        respond_error(req, 400, "BadRequest",
                      "upgrade to \"%s\" is not supported: dpulet speaks "
                      "WebSocket (v5.channel.k8s.io, v4.channel.k8s.io; "
                      "kubectl 1.30 and later) and SPDY/3.1 "
                      "(v4.channel.k8s.io; older kubectl)",
                      upg);
        return NULL;
    }
    const char *key = http_request_header(req, "Sec-WebSocket-Key");
    char *accept = ws_accept_key(key);
    if (!accept) {
        respond_error(req, 400, "BadRequest",
                      "Sec-WebSocket-Key: must be 16 bytes in base64");
        return NULL;
    }
    const char *offers[16];
    size_t n =
        http_request_header_values(req, "Sec-WebSocket-Protocol", offers, 16);
    const char *proto = NULL;
    for (size_t i = 0; i < n && i < 16 && !proto; i++) {
        proto = ws_pick_protocol(offers[i], api_protocols);
    }
    if (!proto) {
        free(accept);
        respond_error(req, 400, "BadRequest",
                      "no supported stream protocol: dpulet speaks "
                      "v5.channel.k8s.io and v4.channel.k8s.io");
        return NULL;
    }
    http_response_header(req, "Upgrade", "websocket");
    http_response_header(req, "Sec-WebSocket-Accept", accept);
    http_response_header(req, "Sec-WebSocket-Protocol", proto);
    free(accept);
    return proto;
}

static void
handle_stream(struct dpulet_api *api, struct http_request *req, bool exec)
{
    char *ns = NULL, *pod = NULL, *container = NULL;
    const char *prefix = exec ? "/exec/" : "/attach/";
    if (split_target(http_request_path(req), prefix, &ns, &pod, &container) <
        0) {
        respond_error(req, 404, "NotFound",
                      "the path must be %s<namespace>/<pod>/<container>",
                      prefix);
        return;
    }
    const char *cmd[API_MAX_ARGS];
    size_t ncmd = 0;
    if (exec) {
        ncmd = http_request_query_values(req, "command", cmd, API_MAX_ARGS);
        if (ncmd == 0 || !*cmd[0]) {
            respond_error(req, 400, "BadRequest",
                          "you must specify at least 1 command");
            goto fail;
        }
        if (ncmd > API_MAX_ARGS) {
            respond_error(req, 400, "BadRequest",
                          "the command has %zu arguments; at most %d are "
                          "allowed",
                          ncmd, API_MAX_ARGS);
            goto fail;
        }
    }
    bool want_in = query_flag(req, "stdin") || query_flag(req, "input");
    bool want_out = query_flag(req, "stdout") || query_flag(req, "output");
    bool want_err = query_flag(req, "stderr") || query_flag(req, "error");
    bool tty = query_flag(req, "tty");
    if (!want_in && !want_out && !want_err) {
        respond_error(req, 400, "BadRequest",
                      "you must specify at least 1 of stdin, stdout, stderr");
        goto fail;
    }
    struct dpf_error e = {0};
    struct dpulet_exec_target t = {0};
    char *path = NULL;
    int r;
    if (exec) {
        r = api->ops.container_exec_target(api->ops.arg, ns, pod, container, &t,
                                           &e);
    } else {
        bool running = false;
        r = api->ops.container_log_path(api->ops.arg, ns, pod, container, false,
                                        &path, &running, &e);
        if (r == 0 && !running) {
            free(path);
            respond_error(req, 400, "BadRequest",
                          "container \"%s\" in pod \"%s\" is not running",
                          container, pod);
            goto fail;
        }
    }
    if (r < 0) {
        respond_op_error(req, r, &e);
        goto fail;
    }
    bool spdy = false;
    const char *proto = ws_handshake(req, &spdy);
    if (!proto) {
        free(path);
        dpulet_exec_target_free(&t);
        goto fail;
    }
    struct api_session *s =
        session_new(api, req, exec ? SESSION_EXEC : SESSION_ATTACH);
    if (!s) {
        free(path);
        dpulet_exec_target_free(&t);
        goto fail;
    }
    s->ns = ns;
    s->pod = pod;
    s->container = container;
    s->path = path;
    s->target = t;
    s->v5 = !spdy && !strcmp(proto, "v5.channel.k8s.io");
    s->spdy = spdy;
    s->want_stdin = want_in;
    s->want_stdout = want_out;
    s->want_stderr = want_err && !tty;
    s->tty = tty;
    if (exec) {
        s->argv = xcalloc(ncmd + 1, sizeof(*s->argv));
        for (size_t i = 0; i < ncmd; i++) {
            s->argv[i] = xstrdup(cmd[i]);
        }
    }
    http_respond_upgrade(req, stream_upgraded, s);
    return;
fail:
    free(ns);
    free(pod);
    free(container);
}

static void
handle_pods(struct dpulet_api *api, struct http_request *req)
{
    json_t *items =
        api->ops.list_pods ? api->ops.list_pods(api->ops.arg) : NULL;
    json_t *list =
        json_pack("{s:s,s:s,s:{},s:o}", "kind", "PodList", "apiVersion", "v1",
                  "metadata", "items", items ? items : json_array());
    char *text = json_dumps(list, JSON_COMPACT);
    json_decref(list);
    http_respond_take(req, 200, "application/json", text, strlen(text));
}

static void
api_handle(void *arg, struct http_request *req)
{
    struct dpulet_api *api = arg;
    const char *method = http_request_method(req);
    const char *path = http_request_path(req);
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (!strcmp(path, "/healthz")) {
        http_respond(req, 200, "text/plain", "ok", 2);
        return;
    }
    int code = 0;
    if (!api_authorized(api, req, &code)) {
        const char *cn = http_request_peer_cn(req);
        log_debug("kubelet API request refused", "path=%s cn=%s remote=%s",
                  path, cn ? cn : "", http_request_remote(req));
        if (code == 401) {
            respond_error(req, 401, "Unauthorized", "Unauthorized");
        } else {
            respond_error(req, 403, "Forbidden",
                          "user \"%s\" may not use the node agent's API "
                          "(only the API server's kubelet client may)",
                          cn);
        }
        return;
    }
    if (get && !strcmp(path, "/pods")) {
        handle_pods(api, req);
    } else if (get && str_has_prefix(path, "/containerLogs/")) {
        handle_logs(api, req);
    } else if ((get || !strcmp(method, "POST")) &&
               str_has_prefix(path, "/exec/")) {
        handle_stream(api, req, true);
    } else if ((get || !strcmp(method, "POST")) &&
               str_has_prefix(path, "/attach/")) {
        handle_stream(api, req, false);
    } else {
        respond_error(req, 404, "NotFound", "the node agent serves no %s %s",
                      method, path);
    }
}

/* ------------------------------------------------------------------ */

struct dpulet_api *
dpulet_api_start(const struct dpulet_api_config *cfg,
                 const struct dpulet_api_ops *ops, struct dpf_error *err)
{
    if (!cfg->cert_file || !cfg->key_file || !cfg->client_ca_file) {
        dpf_error_set(err, 400, "BadRequest",
                      "the kubelet API needs a serving certificate, its key "
                      "and the cluster CA for client certificates");
        return NULL;
    }
    if (!ops->container_log_path || !ops->container_exec_target) {
        dpf_error_set(err, 400, "BadRequest",
                      "the kubelet API needs container_log_path and "
                      "container_exec_target");
        return NULL;
    }
    struct dpulet_api *api = xcalloc(1, sizeof(*api));
    api->ops = *ops;
    api->max_streams =
        cfg->max_streams ? cfg->max_streams : API_DEFAULT_STREAMS;
    api->idle_timeout_s =
        cfg->idle_timeout_s ? cfg->idle_timeout_s : API_DEFAULT_IDLE_S;
    api->spdy_handshake_ms =
        cfg->stream_create_ms ? cfg->stream_create_ms : API_SPDY_HANDSHAKE_MS;
    pthread_mutex_init(&api->mu, NULL);
    size_t n = 0;
    if (cfg->allowed_cns) {
        while (cfg->allowed_cns[n]) {
            n++;
        }
        api->allowed_cns = xcalloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++) {
            api->allowed_cns[i] = xstrdup(cfg->allowed_cns[i]);
        }
    } else {
        api->allowed_cns = xcalloc(2, sizeof(char *));
        api->allowed_cns[0] = xstrdup("kube-apiserver-kubelet-client");
    }
    struct http_server_config hc = {
        .address = cfg->address,
        .port = cfg->port,
        .cert_file = cfg->cert_file,
        .key_file = cfg->key_file,
        .client_ca_file = cfg->client_ca_file,
        .threads = 2,
        .max_body = 64 * 1024,
        .max_connections = 256,
    };
    api->http = http_server_create(&hc, api_handle, api, err);
    if (!api->http) {
        dpulet_api_stop(api);
        return NULL;
    }
    log_info("kubelet API listening", "address=%s port=%u",
             cfg->address ? cfg->address : "*",
             (unsigned) http_server_port(api->http));
    return api;
}

uint16_t
dpulet_api_port(const struct dpulet_api *api)
{
    return http_server_port(api->http);
}

void
dpulet_api_stop(struct dpulet_api *api)
{
    if (!api) {
        return;
    }
    pthread_mutex_lock(&api->mu);
    api->stopping = true;
    for (struct api_session *s = api->sessions; s; s = s->next) {
        session_wake(s);
        if (s->stream) {
            http_stream_abort(s->stream);
        }
    }
    pthread_mutex_unlock(&api->mu);
    /* Running sessions end on their own now (their threads see stop and
     * close their streams and upgrades while the server still exists);
     * sessions still waiting for their 101 end when the server stops. */
    int64_t until = time_mono_ms() + 10000;
    for (;;) {
        pthread_mutex_lock(&api->mu);
        sessions_reap_locked(api);
        bool busy = false;
        for (struct api_session *s = api->sessions; s; s = s->next) {
            busy |= s->started;
        }
        pthread_mutex_unlock(&api->mu);
        if (!busy || time_mono_ms() > until) {
            break;
        }
        poll(NULL, 0, 10);
    }
    if (api->http) {
        http_server_destroy(api->http);
    }
    pthread_mutex_lock(&api->mu);
    for (;;) {
        sessions_reap_locked(api);
        if (!api->sessions) {
            break;
        }
        pthread_mutex_unlock(&api->mu);
        poll(NULL, 0, 10);
        pthread_mutex_lock(&api->mu);
    }
    pthread_mutex_unlock(&api->mu);
    for (char **c = api->allowed_cns; c && *c; c++) {
        free(*c);
    }
    free(api->allowed_cns);
    pthread_mutex_destroy(&api->mu);
    free(api);
}
