/* proc: shim, container and probe processes (see proc.h). */
#include "dpulet/proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sched.h>
#include <sys/syscall.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/base/util.h"

#define PROC_LOG_LINE_MAX 16384 /* CRI: longer lines are split (P) */

uint64_t
proc_start_time(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int) pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = 0;
    /* comm may hold spaces and parentheses: fields follow the last ')' */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ') {
        return 0;
    }
    char state = p[2];
    if (state == 'Z' || state == 'X') {
        return 0;
    }
    /* field 3 is state; starttime is field 22 */
    p += 2;
    for (int f = 3; f < 22 && p; f++) {
        p = strchr(p, ' ');
        if (p) {
            p++;
        }
    }
    return p ? strtoull(p, NULL, 10) : 0;
}

bool
proc_alive(pid_t pid, uint64_t start)
{
    return pid > 0 && start && proc_start_time(pid) == start;
}

int
proc_read_exit(const char *exit_path, int *code, int *sig, int64_t *finished)
{
    char *data;
    size_t len;
    if (file_read_regular(exit_path, 256, &data, &len) < 0) {
        return 0;
    }
    long long f = 0;
    int n = sscanf(data, "%d %d %lld", code, sig, &f);
    free(data);
    if (n != 3) {
        return -EINVAL;
    }
    *finished = f;
    return 1;
}

static void
cri_time(char *buf, size_t size)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%09ldZ", ts.tv_nsec);
}

static void
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return;
        }
        p += w;
        n -= (size_t) w;
    }
}

static void
cri_emit(int fd, const char *stream, char tag, const char *line, size_t n)
{
    char ts[64];
    cri_time(ts, sizeof(ts));
    char head[96];
    int h = snprintf(head, sizeof(head), "%s %s %c ", ts, stream, tag);
    /* one write per line so a reader never sees half a record */
    char *rec = malloc((size_t) h + n + 1);
    if (!rec) {
        return;
    }
    memcpy(rec, head, (size_t) h);
    memcpy(rec + h, line, n);
    rec[(size_t) h + n] = '\n';
    write_all(fd, rec, (size_t) h + n + 1);
    free(rec);
}

void
proc_log_line(const char *log_path, const char *stream, const char *line)
{
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd >= 0) {
        cri_emit(fd, stream, 'F', line, strlen(line));
        close(fd);
    }
}

struct stream {
    int fd;
    const char *name;
    char buf[PROC_LOG_LINE_MAX];
    size_t len;
};

/* Read what is there; emit complete lines (and full buffers as P).
 * Returns false at EOF. */
static bool
stream_pump(struct stream *s, int log)
{
    ssize_t n = read(s->fd, s->buf + s->len, sizeof(s->buf) - s->len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return true;
    }
    if (n <= 0) {
        if (s->len) {
            cri_emit(log, s->name, 'F', s->buf, s->len);
            s->len = 0;
        }
        return false;
    }
    s->len += (size_t) n;
    size_t off = 0;
    for (;;) {
        char *nl = memchr(s->buf + off, '\n', s->len - off);
        if (!nl) {
            break;
        }
        cri_emit(log, s->name, 'F', s->buf + off, (size_t) (nl - s->buf) - off);
        off = (size_t) (nl - s->buf) + 1;
    }
    memmove(s->buf, s->buf + off, s->len - off);
    s->len -= off;
    if (s->len == sizeof(s->buf)) {
        cri_emit(log, s->name, 'P', s->buf, s->len);
        s->len = 0;
    }
    return true;
}

/* mkdir -p for a mount target; a file source gets an empty file target. */
static int
make_target(const char *target, bool is_dir)
{
    char p[4096];
    if (strlen(target) >= sizeof(p)) {
        return -ENAMETOOLONG;
    }
    strcpy(p, target);
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = 0;
            if (mkdir(p, 0755) < 0 && errno != EEXIST) {
                return -errno;
            }
            *s = '/';
        }
    }
    if (is_dir) {
        if (mkdir(p, 0755) < 0 && errno != EEXIST) {
            return -errno;
        }
        return 0;
    }
    int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EISDIR) {
        return -errno;
    }
    if (fd >= 0) {
        close(fd);
    }
    return 0;
}

/* Volume mounts one container may have (the pod plan's bound is lower). */
#define PROC_MAX_BINDS 256

/* The container child: never returns. Reports a setup error on errfd as
 * "errno message". */
static void __attribute__((noreturn))
container_exec(const struct proc_spec *s, int out, int err, int errfd)
{
    char msg[512];
    int e = 0;
    setsid();
    if (unshare(CLONE_NEWNS) < 0) {
        e = errno;
        snprintf(msg, sizeof(msg), "cannot create the mount namespace: %s",
                 strerror(e));
        goto fail;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        e = errno;
        snprintf(msg, sizeof(msg), "cannot make / private: %s", strerror(e));
        goto fail;
    }
    /* Every source is opened before anything is mounted, so a volume at
     * /tmp does not hide another volume's source under /tmp; each is then
     * mounted through its /proc/self/fd link. */
    /* The program too is opened before the mounts (a volume at /tmp must
     * not hide a command under /tmp); no O_CLOEXEC, so a #! script's
     * interpreter can read it through /dev/fd. */
    int exe = open(s->path, O_PATH);
    int fds[PROC_MAX_BINDS];
    if (s->n_binds > PROC_MAX_BINDS) {
        e = E2BIG;
        snprintf(msg, sizeof(msg), "more than %d volume mounts",
                 PROC_MAX_BINDS);
        goto fail;
    }
    for (size_t i = 0; i < s->n_binds; i++) {
        fds[i] = open(s->binds[i].source, O_PATH | O_CLOEXEC);
        if (fds[i] < 0) {
            e = errno;
            snprintf(msg, sizeof(msg), "volume source %s: %s",
                     s->binds[i].source, strerror(e));
            goto fail;
        }
    }
    for (size_t i = 0; i < s->n_binds; i++) {
        const struct proc_bind *b = &s->binds[i];
        struct stat st;
        char src[64];
        snprintf(src, sizeof(src), "/proc/self/fd/%d", fds[i]);
        if (fstat(fds[i], &st) < 0) {
            e = errno;
            snprintf(msg, sizeof(msg), "volume source %s: %s", b->source,
                     strerror(e));
            goto fail;
        }
        int rc = make_target(b->target, S_ISDIR(st.st_mode));
        if (rc < 0 || mount(src, b->target, NULL, MS_BIND | MS_REC, NULL) < 0 ||
            (b->read_only &&
             mount(NULL, b->target, NULL,
                   MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, NULL) < 0)) {
            e = rc < 0 ? -rc : errno;
            snprintf(msg, sizeof(msg), "mount %s at %s: %s", b->source,
                     b->target, strerror(e));
            goto fail;
        }
        close(fds[i]);
    }
    if (chdir(s->workdir ? s->workdir : "/") < 0) {
        e = errno;
        snprintf(msg, sizeof(msg), "workingDir %s: %s",
                 s->workdir ? s->workdir : "/", strerror(e));
        goto fail;
    }
    int nul = open("/dev/null", O_RDONLY);
    if (nul < 0 || dup2(nul, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) {
        e = errno;
        snprintf(msg, sizeof(msg), "stdio: %s", strerror(e));
        goto fail;
    }
    signal(SIGPIPE, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (exe >= 0) {
        syscall(SYS_execveat, exe, "", s->argv, s->envp, AT_EMPTY_PATH);
    }
    execve(s->path, s->argv, s->envp);
    e = errno;
    snprintf(msg, sizeof(msg), "exec %s: %s", s->path, strerror(e));
fail:
    dprintf(errfd, "%d %s", e ? e : EIO, msg);
    _exit(127);
}

static void
close_from(int lowest, const int *keep, size_t n_keep)
{
    for (int fd = lowest; fd < 1024; fd++) {
        bool k = false;
        for (size_t i = 0; i < n_keep; i++) {
            k |= keep[i] == fd;
        }
        if (!k) {
            close(fd);
        }
    }
}

/* The shim: never returns. report gets "pid exec_errno message". */
static void __attribute__((noreturn))
shim_run(const struct proc_spec *s, int report)
{
    setsid();
    signal(SIGHUP, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGTERM, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    int log =
        open(s->log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    int po[2], pe[2], px[2];
    if (log < 0 || pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0 ||
        pipe2(px, O_CLOEXEC) < 0) {
        dprintf(report, "0 %d cannot set up the log: %s", errno,
                strerror(errno));
        _exit(1);
    }
    pid_t pid = fork();
    if (pid < 0) {
        dprintf(report, "0 %d fork: %s", errno, strerror(errno));
        _exit(1);
    }
    if (pid == 0) {
        /* the pipes' write ends must survive exec: dup2 clears CLOEXEC */
        container_exec(s, po[1], pe[1], px[1]);
    }
    close(po[1]);
    close(pe[1]);
    close(px[1]);
    char ebuf[600];
    ssize_t en = read(px[0], ebuf, sizeof(ebuf) - 1);
    close(px[0]);
    if (en > 0) {
        ebuf[en] = 0;
        dprintf(report, "%d %s", (int) pid, ebuf);
        close(report);
        waitpid(pid, NULL, 0);
        _exit(0);
    }
    dprintf(report, "%d 0 started", (int) pid);
    close(report);
    struct stream so = {.fd = po[0], .name = "stdout"};
    struct stream se = {.fd = pe[0], .name = "stderr"};
    fcntl(po[0], F_SETFL, O_NONBLOCK);
    fcntl(pe[0], F_SETFL, O_NONBLOCK);
    bool oo = true, eo = true;
    int status = 0;
    bool exited = false;
    while (!exited || oo || eo) {
        struct pollfd pf[2] = {{.fd = oo ? po[0] : -1, .events = POLLIN},
                               {.fd = eo ? pe[0] : -1, .events = POLLIN}};
        int pr = poll(pf, 2, exited ? 0 : 200);
        if (pr > 0) {
            if (oo && pf[0].revents) {
                oo = stream_pump(&so, log);
            }
            if (eo && pf[1].revents) {
                eo = stream_pump(&se, log);
            }
        }
        if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
            exited = true;
        }
        if (exited && pr == 0) {
            /* the container is gone; whatever still holds the pipes (a
             * process it left behind) does not keep the record waiting */
            break;
        }
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    char rec[96];
    int n = snprintf(rec, sizeof(rec), "%d %d %lld\n", code, sig,
                     (long long) time_wall_ns());
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", s->exit_path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd >= 0) {
        write_all(fd, rec, (size_t) n);
        close(fd);
        rename(tmp, s->exit_path);
    }
    _exit(0);
}

int
proc_start(const struct proc_spec *s, struct proc_started *out)
{
    memset(out, 0, sizeof(*out));
    int rp[2];
    if (pipe2(rp, O_CLOEXEC) < 0) {
        return -errno;
    }
    unlink(s->exit_path);
    pid_t shim = fork();
    if (shim < 0) {
        int e = errno;
        close(rp[0]);
        close(rp[1]);
        return -e;
    }
    if (shim == 0) {
        close(rp[0]);
        int keep[] = {rp[1]};
        close_from(3, keep, 1);
        shim_run(s, rp[1]);
    }
    close(rp[1]);
    char buf[700];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(rp[0], buf + len, sizeof(buf) - 1 - len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        len += (size_t) n;
    }
    close(rp[0]);
    buf[len] = 0;
    out->shim = shim;
    int pid = 0, e = 0, off = 0;
    if (sscanf(buf, "%d %d %n", &pid, &e, &off) < 2) {
        out->exec_errno = EIO;
        snprintf(out->error, sizeof(out->error), "the shim died at start");
        return 0;
    }
    out->pid = pid;
    out->exec_errno = e;
    if (e) {
        snprintf(out->error, sizeof(out->error), "%s", buf + off);
        return 0;
    }
    out->shim_start = proc_start_time(shim);
    out->pid_start = proc_start_time(pid);
    return 0;
}

/* ---- probes ---- */

static int
probe_connect(const char *host, int port, int timeout_s)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    alarm((unsigned) timeout_s);
    if (getaddrinfo(host, ps, &hints, &ai) != 0 || !ai) {
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        return -1;
    }
    freeaddrinfo(ai);
    return fd;
}

static int __attribute__((noreturn))
probe_child(const struct dpulet_probe *p, pid_t pid, char *const *envp,
            const char *host)
{
    signal(SIGALRM, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (p->kind == DPULET_PROBE_EXEC) {
        char ns[64];
        snprintf(ns, sizeof(ns), "/proc/%d/ns/mnt", (int) pid);
        int fd = open(ns, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || setns(fd, CLONE_NEWNS) < 0) {
            _exit(126);
        }
        char cwd[64];
        snprintf(cwd, sizeof(cwd), "/proc/%d/cwd", (int) pid);
        if (chdir(cwd) < 0 && chdir("/") < 0) {
            _exit(126);
        }
        int nul = open("/dev/null", O_RDWR);
        dup2(nul, 0);
        dup2(nul, 1);
        dup2(nul, 2);
        /* the probe command is looked up in the container's PATH */
        for (char *const *e = envp; e && *e; e++) {
            if (!strncmp(*e, "PATH=", 5)) {
                setenv("PATH", *e + 5, 1);
            }
        }
        execvpe(p->argv[0], p->argv, envp);
        _exit(127);
    }
    const char *h = p->host ? p->host : host ? host : "127.0.0.1";
    int fd = probe_connect(h, p->port, p->timeout_s);
    if (fd < 0) {
        _exit(1);
    }
    if (p->kind == DPULET_PROBE_TCP) {
        _exit(0);
    }
    char req[4096 + 512];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: %s:%d\r\n"
                     "User-Agent: kube-probe/1.30\r\nAccept: */*\r\n"
                     "Connection: close\r\n\r\n",
                     p->path ? p->path : "/", h, p->port);
    if (n < 0 || (size_t) n >= sizeof(req)) {
        _exit(1);
    }
    write_all(fd, req, (size_t) n);
    char resp[64];
    size_t got = 0;
    while (got < sizeof(resp) - 1) {
        ssize_t r = read(fd, resp + got, sizeof(resp) - 1 - got);
        if (r <= 0) {
            break;
        }
        got += (size_t) r;
    }
    resp[got] = 0;
    int code = 0;
    if (sscanf(resp, "HTTP/%*d.%*d %d", &code) != 1) {
        _exit(1);
    }
    _exit(code >= 200 && code < 400 ? 0 : 1);
}

pid_t
proc_probe(const struct dpulet_probe *p, pid_t pid, char *const *envp,
           const char *host)
{
    pid_t c = fork();
    if (c < 0) {
        return -errno;
    }
    if (c == 0) {
        setpgid(0, 0);
        close_from(3, NULL, 0);
        probe_child(p, pid, envp, host);
    }
    setpgid(c, c);
    return c;
}
