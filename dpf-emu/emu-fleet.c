/* emu-fleet: the namespace-mode fleet (see the header). */
#include "dpf-emu/emu-fleet.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dpf-emu/emu-bfcfg.h"
#include "dpf-rshim-emu/rshim-emu.h"
#include "lib/base/log.h"
#include "lib/base/loop.h"
#include "lib/base/util.h"
#include "lib/codecs/yamljson.h"
#include "lib/kube/api-client.h"
#include "lib/kube/kubeconfig.h"

LOG_MODULE(emu);

#define EMU_PCI_BUS0 0x4b      /* DPU j of a host is at 0000:<4b+j>:00 */
#define EMU_RESTART_MS 1000    /* a dead dpulet is started again after */
#define EMU_JOIN_RETRY_MS 5000 /* as DPF's join_k8s_cluster.sh loops */
#define EMU_ANNOTATE_MS 2000
#define ARGV_END ((const char *) NULL) /* argv_make()'s sentinel */
#define EMU_TERM_WAIT_MS 5000
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

struct emu_fleet;

/* A process the emulator runs in a namespace. */
struct emu_proc {
    struct emu_fleet *f;
    const char *what; /* "dpulet", "join" (for logs and the record) */
    char *netns;
    char **argv;
    char *log_path;
    pid_t pid;
    bool wanted; /* restart it when it dies (dpulet) */
    /* >= 0: start it in a new time namespace whose boot time counts from
     * this second of ours (CLOCK_BOOTTIME): a host's dpulet, whose pods
     * inherit it, so /proc/uptime reads as the host's uptime; the host's
     * power-on sets it, so a dpulet that is only restarted keeps the
     * host's uptime. -1: none. */
    long long boot_s;
    void (*on_exit)(void *arg, int status);
    void *arg;
    struct loop_timer *restart;
};

struct emu_dpu {
    struct emu_host *host;
    unsigned j;
    char *netns, *dir, *disk, *rshim_dir, *node_name;
    char pf0[24], pf1[24]; /* ens<j+1>f0np0: j < 8 */
    char dev_name[32];     /* rshim DEV_NAME: the device keeps a pointer */
    char oob_ip[INET_ADDRSTRLEN];
    struct rshim_emu *rshim;
    const char *state; /* "off", "installing", "up", "joining", "running" */
    char *error;
    struct emu_bfcfg cfg;
    struct emu_proc join, run;
    struct loop_timer *join_retry;
    int join_attempts;
};

struct emu_host {
    struct emu_fleet *f;
    unsigned i; /* 1-based */
    char *netns, *node_name, *dir, *sys;
    char ip[INET_ADDRSTRLEN];
    struct emu_proc dpulet;
    struct emu_dpu *dpus;
    struct loop_timer *annotate;
    bool annotated;
    struct loop_timer *power; /* a reboot in progress: power off, then on */
    bool powered_off;
    unsigned reboots;      /* reboots done through the BMC (ipmitool) */
    unsigned bmc_requests; /* power cycle/reset requests, also those
                              that came while a reboot was under way */
};

struct emu_fleet {
    struct emu_fleet_config cfg;
    struct loop *loop;
    char *state_dir, *record_path, *status_path, *kubeconfig_ns;
    char *fabric_ns, *bridge;
    char gw[INET_ADDRSTRLEN];
    unsigned prefix;
    uint32_t base;
    struct emu_host *hosts;
    struct api_client *api; /* for the Node annotations, or NULL */
    int bmc_fd;             /* the hosts' BMC socket (ipmitool), or -1 */
    struct loop_watch *bmc_watch;
};

/* --- small helpers --------------------------------------------------- */

/* Start time of pid (clock ticks since boot), 0 if it is gone or a
 * zombie: with the PID it names one process for the record. */
static unsigned long long
proc_start_time(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int) pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X') {
        return 0;
    }
    /* fields after the comm: state is field 3, starttime field 22 */
    p += 2;
    for (int field = 3; field < 22 && p; field++) {
        p = strchr(p, ' ');
        if (p) {
            p++;
        }
    }
    return p ? strtoull(p, NULL, 10) : 0;
}

static bool
netns_exists(const char *name)
{
    char *p = xasprintf("/run/netns/%s", name);
    bool r = access(p, F_OK) == 0;
    free(p);
    return r;
}

static bool
link_exists(const char *name)
{
    char *p = xasprintf("/sys/class/net/%s", name);
    bool r = access(p, F_OK) == 0;
    free(p);
    return r;
}

static void
ip4_str(uint32_t a, char *out)
{
    struct in_addr in = {.s_addr = htonl(a)};
    inet_ntop(AF_INET, &in, out, INET_ADDRSTRLEN);
}

static void record_add(struct emu_fleet *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Append one line to the record and sync it: the record must name a thing
 * before the thing exists, so a crash at any point leaves it findable. */
static void
record_add(struct emu_fleet *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *line = xvasprintf(fmt, ap);
    va_end(ap);
    int fd =
        open(f->record_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
        if (write(fd, line, strlen(line)) < 0 || write(fd, "\n", 1) < 0 ||
            fsync(fd) < 0) {
            log_error("cannot write the fleet record", "path=%s error=\"%s\"",
                      f->record_path, strerror(errno));
        }
        close(fd);
    } else {
        log_error("cannot open the fleet record", "path=%s error=\"%s\"",
                  f->record_path, strerror(errno));
    }
    free(line);
}

/* Run argv to completion (a short tool: ip); its stderr into err on
 * failure. 0 or -EIO. */
static int
run_tool(char *const argv[], struct dpf_error *err)
{
    char tmpl[] = "/tmp/dpf-emu-err-XXXXXX";
    int efd = mkostemp(tmpl, O_CLOEXEC);
    if (efd >= 0) {
        unlink(tmpl);
    }
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        if (efd >= 0) {
            close(efd);
        }
        dpf_error_set(err, 500, "InternalError", "fork: %s", strerror(e));
        return -e;
    }
    if (pid == 0) {
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int nul = open("/dev/null", O_RDWR);
        dup2(nul, 0);
        dup2(nul, 1);
        if (efd >= 0) {
            dup2(efd, 2);
        }
        execvp(argv[0], argv);
        dprintf(2, "%s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    int rc = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char msg[700] = "";
        if (efd >= 0) {
            ssize_t n = pread(efd, msg, sizeof msg - 1, 0);
            msg[n > 0 ? n : 0] = '\0';
            size_t l = strlen(msg);
            while (l && (msg[l - 1] == '\n' || msg[l - 1] == ' ')) {
                msg[--l] = '\0';
            }
        }
        struct dbuf cmd;
        dbuf_init(&cmd);
        for (size_t k = 0; argv[k] && cmd.len < 200; k++) {
            dbuf_printf(&cmd, "%s%s", k ? " " : "", argv[k]);
        }
        dbuf_append(&cmd, "", 1);
        dpf_error_set(err, 500, "InternalError", "`%s` failed: %s", cmd.data,
                      *msg ? msg : "no message");
        dbuf_free(&cmd);
        rc = -EIO;
    }
    if (efd >= 0) {
        close(efd);
    }
    return rc;
}

/* ip [-n NS] [-force] -batch FILE with the commands in text. */
static int
ip_batch(struct emu_fleet *f, const char *netns, const char *text, bool force,
         struct dpf_error *err)
{
    char *path =
        xasprintf("%s/ip-%s.batch", f->state_dir, netns ? netns : "root");
    int rc = file_write_atomic(path, text, strlen(text), 0600);
    if (rc < 0) {
        dpf_error_set(err, 500, "InternalError", "%s: %s", path, strerror(-rc));
        free(path);
        return rc;
    }
    char *argv[8];
    int n = 0;
    argv[n++] = "ip";
    if (netns) {
        argv[n++] = "-n";
        argv[n++] = (char *) netns;
    }
    if (force) {
        argv[n++] = "-force";
    }
    argv[n++] = "-batch";
    argv[n++] = path;
    argv[n] = NULL;
    rc = run_tool(argv, err);
    free(path);
    return rc;
}

static int
rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    remove(p);
    return 0;
}

/* --- processes --------------------------------------------------------- */

static void proc_start(struct emu_proc *p);
static void fleet_write_status(struct emu_fleet *f);

/* Our CLOCK_BOOTTIME in whole seconds. */
static long long
boottime_s(void)
{
    struct timespec b = {0};
    clock_gettime(CLOCK_BOOTTIME, &b);
    return (long long) b.tv_sec;
}

/* Move this (single-threaded, forked) process into a new time namespace
 * whose CLOCK_BOOTTIME counts from our second boot_s, as if it powered on
 * then (the offset, minus boot_s, cannot take the clock below 0).
 * Children inherit it. 0 or -1 with errno. */
static int
timens_enter(long long boot_s)
{
    if (unshare(CLONE_NEWTIME) < 0) {
        return -1;
    }
    char line[64];
    int n = snprintf(line, sizeof line, "boottime %lld 0\n", -boot_s);
    int fd = open("/proc/self/timens_offsets", O_WRONLY | O_CLOEXEC);
    bool ok = fd >= 0 && write(fd, line, (size_t) n) == n;
    if (ok) {
        close(fd);
        /* unshare() made it the namespace of our children; enter it */
        fd = open("/proc/self/ns/time_for_children", O_RDONLY | O_CLOEXEC);
        ok = fd >= 0 && setns(fd, CLONE_NEWTIME) == 0;
    }
    int e = errno;
    if (fd >= 0) {
        close(fd);
    }
    errno = e;
    return ok ? 0 : -1;
}

static void
proc_restart_cb(void *arg, struct loop_timer *t)
{
    (void) t;
    struct emu_proc *p = arg;
    p->restart = NULL;
    if (p->wanted && p->pid <= 0) {
        proc_start(p);
        fleet_write_status(p->f);
    }
}

static void
proc_start(struct emu_proc *p)
{
    pid_t pid = fork();
    if (pid < 0) {
        log_error("cannot fork", "what=%s netns=%s error=\"%s\"", p->what,
                  p->netns, strerror(errno));
        return;
    }
    if (pid == 0) {
        /* the loop blocked the signals it reads from a signalfd */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        char *nsp = xasprintf("/run/netns/%s", p->netns);
        int nsfd = open(nsp, O_RDONLY | O_CLOEXEC);
        if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0) {
            dprintf(2, "dpf-emu: cannot enter netns %s: %s\n", p->netns,
                    strerror(errno));
            _exit(126);
        }
        if (p->boot_s >= 0 && timens_enter(p->boot_s) < 0) {
            dprintf(2, "dpf-emu: cannot make a time namespace: %s\n",
                    strerror(errno));
            _exit(126);
        }
        setsid();
        int nul = open("/dev/null", O_RDONLY);
        int log = open(p->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(nul, 0);
        if (log >= 0) {
            dup2(log, 1);
            dup2(log, 2);
        }
        execv(p->argv[0], p->argv);
        dprintf(2, "dpf-emu: cannot run %s: %s\n", p->argv[0], strerror(errno));
        _exit(127);
    }
    p->pid = pid;
    record_add(p->f, "pid %d %llu %s %s", (int) pid, proc_start_time(pid),
               p->what, p->netns);
    /* argv can hold a join token: only the program and the netns here */
    log_info("process started", "what=%s netns=%s pid=%d", p->what, p->netns,
             (int) pid);
}

static void
proc_set_argv(struct emu_proc *p, char **argv)
{
    if (p->argv) {
        for (char **a = p->argv; *a; a++) {
            free(*a);
        }
        free(p->argv);
    }
    p->argv = argv;
}

/* argv from a NULL-terminated list of strings (copied). */
static char **
argv_make(const char *first, ...)
{
    size_t n = 0, cap = 8;
    char **v = xmalloc(cap * sizeof *v);
    va_list ap;
    va_start(ap, first);
    for (const char *s = first; s; s = va_arg(ap, const char *)) {
        if (n + 2 > cap) {
            cap *= 2;
            v = xrealloc(v, cap * sizeof *v);
        }
        v[n++] = xstrdup(s);
    }
    va_end(ap);
    v[n] = NULL;
    return v;
}

/* Stop p and wait (bounded) for it: SIGTERM, SIGKILL after the wait. */
static void
proc_stop(struct emu_proc *p)
{
    p->wanted = false;
    if (p->restart) {
        loop_timer_cancel(p->restart);
        p->restart = NULL;
    }
    if (p->pid <= 0) {
        return;
    }
    kill(p->pid, SIGTERM);
    int status;
    for (int ms = 0; ms < EMU_TERM_WAIT_MS; ms += 20) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid || (r < 0 && errno == ECHILD)) {
            p->pid = 0;
            return;
        }
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
    p->pid = 0;
}

static void
proc_free(struct emu_proc *p)
{
    proc_stop(p);
    proc_set_argv(p, NULL);
    free(p->netns);
    free(p->log_path);
}

/* --- status ------------------------------------------------------------ */

static void
fleet_write_status(struct emu_fleet *f)
{
    json_t *hosts = json_array();
    for (unsigned i = 0; i < f->cfg.hosts; i++) {
        struct emu_host *h = &f->hosts[i];
        json_t *dpus = json_array();
        for (unsigned j = 0; j < f->cfg.dpus_per_host; j++) {
            struct emu_dpu *d = &h->dpus[j];
            json_array_append_new(
                dpus,
                json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s?, s:s?, s:i, "
                          "s:i, s:s?}",
                          "netns", d->netns, "oobIP", d->oob_ip, "rshim",
                          d->rshim_dir, "disk", d->disk, "pf0", d->pf0, "state",
                          d->state, "hostname", d->cfg.hostname, "joinEndpoint",
                          d->cfg.join_endpoint, "joinPid", (int) d->join.pid,
                          "dpuletPid", (int) d->run.pid, "error", d->error));
        }
        json_array_append_new(
            hosts,
            json_pack("{s:s, s:s, s:s, s:s, s:i, s:b, s:i, s:i, s:b, s:o}",
                      "netns", h->netns, "nodeName", h->node_name, "ip", h->ip,
                      "sysfs", h->sys, "dpuletPid", (int) h->dpulet.pid,
                      "annotated", h->annotated, "reboots", (int) h->reboots,
                      "bmcRequests", (int) h->bmc_requests, "poweredOff",
                      h->powered_off, "dpus", dpus));
    }
    json_t *st = json_pack("{s:s, s:i, s:s, s:s, s:o}", "fleet", f->cfg.fleet,
                           "pid", (int) getpid(), "bridge", f->bridge,
                           "gateway", f->gw, "hosts", hosts);
    char *s = json_dumps(st, JSON_INDENT(2));
    file_write_atomic(f->status_path, s, strlen(s), 0644);
    free(s);
    json_decref(st);
}

/* --- DPUs ---------------------------------------------------------------- */

static char *
dpu_kubeconfig(const struct emu_dpu *d)
{
    return xasprintf("%s/etc/kubernetes/kubelet.conf", d->disk);
}

static void
dpu_start_dpulet(struct emu_dpu *d)
{
    struct emu_fleet *f = d->host->f;
    char *kc = dpu_kubeconfig(d);
    char *root = xasprintf("%s/var/lib/dpulet", d->disk);
    const char *name = d->cfg.hostname ? d->cfg.hostname : d->node_name;
    proc_set_argv(&d->run, argv_make(f->cfg.dpulet, "--kubeconfig", kc,
                                     "--node-name", name, "--node-ip",
                                     d->oob_ip, "--root-dir", root, ARGV_END));
    free(kc);
    free(root);
    d->run.wanted = true;
    d->state = "running";
    proc_start(&d->run);
    fleet_write_status(f);
}

static void dpu_join(struct emu_dpu *d);

static void
dpu_join_retry_cb(void *arg, struct loop_timer *t)
{
    (void) t;
    struct emu_dpu *d = arg;
    d->join_retry = NULL;
    dpu_join(d);
}

static void
dpu_join_exited(void *arg, int status)
{
    struct emu_dpu *d = arg;
    if (strcmp(d->state, "joining")) {
        return; /* stopped by a reboot */
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
        log_info("DPU joined its cluster", "netns=%s attempts=%d", d->netns,
                 d->join_attempts);
        dpu_start_dpulet(d);
        return;
    }
    log_warn("dpulet join failed; retrying", "netns=%s status=%d retry_ms=%d",
             d->netns, status, EMU_JOIN_RETRY_MS);
    d->join_retry = loop_timer_add(d->host->f->loop, EMU_JOIN_RETRY_MS, 0,
                                   dpu_join_retry_cb, d);
}

/* DPF's join_k8s_cluster.sh: run the join until it succeeds. */
static void
dpu_join(struct emu_dpu *d)
{
    struct emu_fleet *f = d->host->f;
    char *kc = dpu_kubeconfig(d);
    const char *name = d->cfg.hostname ? d->cfg.hostname : d->node_name;
    proc_set_argv(&d->join,
                  argv_make(f->cfg.dpulet, "join", d->cfg.join_endpoint,
                            "--token",
                            d->cfg.join_token ? d->cfg.join_token : "",
                            "--discovery-token-ca-cert-hash",
                            d->cfg.join_ca_hash ? d->cfg.join_ca_hash : "",
                            "--node-name", name, "--kubeconfig", kc, ARGV_END));
    free(kc);
    d->state = "joining";
    d->join_attempts++;
    d->join.on_exit = dpu_join_exited;
    d->join.arg = d;
    proc_start(&d->join);
    fleet_write_status(f);
}

static void
dpu_stop_os(struct emu_dpu *d)
{
    if (d->join_retry) {
        loop_timer_cancel(d->join_retry);
        d->join_retry = NULL;
    }
    d->state = "off";
    proc_stop(&d->join);
    proc_stop(&d->run);
}

/* The DPU's OS comes up after an install: apply the bf.cfg first. */
static void
dpu_apply_bfcfg(struct emu_dpu *d, const char *text, size_t len)
{
    emu_bfcfg_free(&d->cfg);
    free(d->error);
    d->error = NULL;
    /* a new OS on the disk: nothing of the old one survives */
    nftw(d->disk, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    dir_create_all(d->disk, 0755);
    struct dpf_error err = {0};
    if (emu_bfcfg_parse(text, len, &d->cfg, &err) < 0 ||
        emu_bfcfg_write_files(&d->cfg, d->disk, &err) < 0) {
        d->error = xstrdup(err.message);
        log_error("bf.cfg not applied", "netns=%s error=\"%s\"", d->netns,
                  err.message);
        return;
    }
    if (d->cfg.hostname) {
        char *p = xasprintf("%s/etc/hostname", d->disk);
        char *t = xasprintf("%s\n", d->cfg.hostname);
        dir_create_all(d->disk, 0755);
        char *etc = xasprintf("%s/etc", d->disk);
        dir_create_all(etc, 0755);
        file_write_atomic(p, t, strlen(t), 0644);
        free(etc);
        free(p);
        free(t);
    }
    log_info("bf.cfg applied", "netns=%s hostname=%s files=%zu join=%s",
             d->netns, d->cfg.hostname ? d->cfg.hostname : "(none)",
             d->cfg.n_files,
             d->cfg.join_endpoint ? d->cfg.join_endpoint : "(none)");
}

static void
dpu_on_event(void *arg, enum rshim_emu_event ev, bool fresh, const char *bfcfg,
             size_t len)
{
    struct emu_dpu *d = arg;
    struct emu_fleet *f = d->host->f;
    if (ev == RSHIM_EMU_DOWN) {
        log_info("DPU going down", "netns=%s", d->netns);
        dpu_stop_os(d);
        d->state = "booting";
        fleet_write_status(f);
        return;
    }
    if (fresh) {
        dpu_apply_bfcfg(d, bfcfg, len);
    }
    d->state = "up";
    char *kc = dpu_kubeconfig(d);
    bool joined = access(kc, F_OK) == 0;
    free(kc);
    if (d->error) {
        /* the OS is up but its configuration failed: no agent */
    } else if (joined) {
        dpu_start_dpulet(d);
    } else if (d->cfg.join_endpoint) {
        d->join_attempts = 0;
        dpu_join(d);
    }
    fleet_write_status(f);
}

/* --- hosts ------------------------------------------------------------- */

static void
host_annotate_cb(void *arg, struct loop_timer *t)
{
    struct emu_host *h = arg;
    struct emu_fleet *f = h->f;
    static const struct kube_gvr nodes = {"", "v1", "nodes", false};
    json_t *ann = json_object();
    json_object_set_new(ann, "dpu.emu/sysfs", json_string(h->sys));
    for (unsigned j = 0; j < f->cfg.dpus_per_host; j++) {
        char key[64];
        snprintf(key, sizeof key, "dpu.emu/rshim-%u", j);
        json_object_set_new(ann, key, json_string(h->dpus[j].rshim_dir));
    }
    /* Without --reboot-hosts the DPUs' firmware and OS take effect
     * without a host reboot, so DPF's reboot step is skipped (the DPU
     * controller's documented reboot-command value); with it, the host's
     * ipmitool reboots it (host_bmc_request()). */
    if (!f->cfg.reboot_hosts) {
        json_object_set_new(ann, "provisioning.dpu.nvidia.com/reboot-command",
                            json_string("skip"));
    }
    json_t *patch = json_pack("{s:{s:o}}", "metadata", "annotations", ann);
    struct dpf_error err = {0};
    int rc = api_client_patch(f->api, &nodes, NULL, h->node_name, NULL,
                              API_PATCH_MERGE, patch, "dpf-emu", NULL, &err);
    if (rc == -ENOENT) {
        /* The Node is made here, annotated, before the host's dpulet
         * starts and adopts it: the dpulet's detection labels (which make
         * a DPUSet select the host) never come before the paths the DMS
         * pod needs. */
        json_t *node =
            json_pack("{s:s,s:s,s:O}", "apiVersion", "v1", "kind", "Node",
                      "metadata", json_object_get(patch, "metadata"));
        json_object_set_new(json_object_get(node, "metadata"), "name",
                            json_string(h->node_name));
        memset(&err, 0, sizeof err);
        rc = api_client_post(f->api, &nodes, NULL, node, "dpf-emu", NULL, &err);
        json_decref(node);
    }
    json_decref(patch);
    if (rc == 0) {
        h->annotated = true;
        loop_timer_cancel(t);
        h->annotate = NULL;
        log_info("host Node annotated", "node=%s", h->node_name);
        fleet_write_status(f);
    } else {
        log_warn_rl("cannot annotate the host Node", "node=%s error=\"%s\"",
                    h->node_name, err.message);
    }
    /* after the first attempt, whatever came of it (an API server that is
     * down must not keep the host's agent from starting) */
    if (!h->dpulet.pid && !h->dpulet.restart) {
        proc_start(&h->dpulet);
    }
}

/* --- host power (the BMC behind ipmitool) ----------------------------- */

static size_t netns_signal_all(const char *name, int sig, FILE *progress);

static void
host_power_on_cb(void *arg, struct loop_timer *t)
{
    (void) t;
    struct emu_host *h = arg;
    h->power = NULL;
    h->powered_off = false;
    h->dpulet.wanted = true;
    h->dpulet.boot_s = boottime_s();
    /* a fresh time namespace: the host's uptime starts near 0 */
    proc_start(&h->dpulet);
    log_info("host powered on", "node=%s reboots=%u", h->node_name, h->reboots);
    fleet_write_status(h->f);
}

/* The power goes: the host's dpulet and every process of its pods (all
 * in the host's network namespace) die at once, as in a power cut; after
 * --reboot-time the host starts again. */
static void
host_power_off_cb(void *arg, struct loop_timer *t)
{
    (void) t;
    struct emu_host *h = arg;
    struct emu_fleet *f = h->f;
    h->dpulet.wanted = false;
    if (h->dpulet.restart) {
        loop_timer_cancel(h->dpulet.restart);
        h->dpulet.restart = NULL;
    }
    if (h->dpulet.pid > 0) {
        kill(h->dpulet.pid, SIGKILL);
    }
    size_t n = netns_signal_all(h->netns, SIGKILL, NULL);
    h->powered_off = true;
    log_info("host powered off", "node=%s processes=%zu reboot_ms=%lld",
             h->node_name, n, (long long) f->cfg.reboot_ms);
    h->power =
        loop_timer_add(f->loop, f->cfg.reboot_ms, 0, host_power_on_cb, h);
    fleet_write_status(f);
}

/* One request on the BMC socket: "<host> <cycle|reset|status>"; the
 * answer "ok <text>" or "error <text>". */
static void
host_bmc_request(struct emu_fleet *f, const char *msg, char *reply, size_t size)
{
    unsigned i = 0;
    char what[16] = "";
    if (sscanf(msg, "%u %15s", &i, what) != 2 || i < 1 || i > f->cfg.hosts) {
        snprintf(reply, size, "error no such host in fleet %s: \"%.40s\"",
                 f->cfg.fleet, msg);
        return;
    }
    struct emu_host *h = &f->hosts[i - 1];
    if (!strcmp(what, "status")) {
        snprintf(reply, size, "ok Chassis Power is %s",
                 h->powered_off ? "off" : "on");
        return;
    }
    if (strcmp(what, "cycle") && strcmp(what, "reset")) {
        snprintf(reply, size,
                 "error the emulated BMC does chassis power cycle, reset and "
                 "status, not \"%s\"",
                 what);
        return;
    }
    h->bmc_requests++;
    if (!h->power) {
        h->reboots++;
        h->power = loop_timer_add(f->loop, f->cfg.power_off_delay_ms, 0,
                                  host_power_off_cb, h);
        log_info("host reboot requested through its BMC", "node=%s command=%s",
                 h->node_name, what);
    }
    snprintf(reply, size, "ok Chassis Power Control: %s",
             !strcmp(what, "cycle") ? "Cycle" : "Reset");
}

static void
fleet_bmc_cb(void *arg, int fd, uint32_t events)
{
    (void) events;
    struct emu_fleet *f = arg;
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0) {
        return;
    }
    /* the client writes its one line right after connect */
    struct timeval tv = {1, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char msg[128], reply[256];
    ssize_t n = recv(c, msg, sizeof msg - 1, 0);
    if (n > 0) {
        msg[n] = '\0';
        host_bmc_request(f, msg, reply, sizeof reply);
        ssize_t w = send(c, reply, strlen(reply), MSG_NOSIGNAL);
        (void) w;
        fleet_write_status(f);
    }
    close(c);
}

/* sun_path is short: the socket is named through /proc/self/fd of its
 * directory. */
static int
bmc_addr(int dirfd, struct sockaddr_un *a)
{
    memset(a, 0, sizeof *a);
    a->sun_family = AF_UNIX;
    snprintf(a->sun_path, sizeof a->sun_path, "/proc/self/fd/%d/bmc.sock",
             dirfd);
    return 0;
}

static int
fleet_bmc_listen(struct emu_fleet *f, struct dpf_error *err)
{
    int dirfd = open(f->state_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un a;
    int rc = 0;
    if (dirfd < 0 || fd < 0) {
        rc = -errno;
    } else {
        bmc_addr(dirfd, &a);
        unlinkat(dirfd, "bmc.sock", 0);
        if (bind(fd, (struct sockaddr *) &a, sizeof a) < 0 ||
            listen(fd, 16) < 0) {
            rc = -errno;
        }
    }
    if (dirfd >= 0) {
        close(dirfd);
    }
    if (rc < 0) {
        if (fd >= 0) {
            close(fd);
        }
        dpf_error_set(err, 500, "InternalError", "%s/bmc.sock: %s",
                      f->state_dir, strerror(-rc));
        return rc;
    }
    f->bmc_fd = fd;
    f->bmc_watch = loop_watch_fd(f->loop, fd, LOOP_READ, fleet_bmc_cb, f);
    return 0;
}

/* <host dir>/bin/ipmitool: the host's BMC client, first in the PATH its
 * pods see. */
static int
host_write_ipmitool(struct emu_host *h, struct dpf_error *err)
{
    struct emu_fleet *f = h->f;
    char *bin = xasprintf("%s/bin", h->dir);
    char *path = xasprintf("%s/ipmitool", bin);
    int rc = dir_create_all(bin, 0755);
    if (rc == 0 && (strchr(f->cfg.self, '\'') || strchr(f->state_dir, '\''))) {
        rc = -EINVAL;
    }
    if (rc == 0) {
        char *text =
            xasprintf("#!/bin/sh\n"
                      "# The BMC of emulated host %s (dpf-emu): chassis power "
                      "cycle|reset|status\n"
                      "exec '%s' ipmitool --state-dir '%s' --host %u \"$@\"\n",
                      h->node_name, f->cfg.self, f->state_dir, h->i);
        rc = file_write_atomic(path, text, strlen(text), 0755);
        free(text);
    }
    if (rc < 0) {
        dpf_error_set(err, 500, "InternalError", "%s: %s", path,
                      rc == -EINVAL ? "a quote in the emulator's path or "
                                      "the state directory"
                                    : strerror(-rc));
    }
    free(bin);
    free(path);
    return rc;
}

int
emu_ipmitool(const char *state_dir, unsigned host, int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[0], "chassis") || strcmp(argv[1], "power")) {
        fprintf(stderr, "ipmitool (dpf-emu): only \"chassis power "
                        "cycle|reset|status\" is emulated\n");
        return 1;
    }
    int dirfd = open(state_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    struct sockaddr_un a;
    if (dirfd < 0 || fd < 0) {
        fprintf(stderr, "ipmitool (dpf-emu): %s: %s\n", state_dir,
                strerror(errno));
        return 1;
    }
    bmc_addr(dirfd, &a);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char msg[64], reply[256];
    int n = snprintf(msg, sizeof msg, "%u %.16s", host, argv[2]);
    ssize_t got = -1;
    if (connect(fd, (struct sockaddr *) &a, sizeof a) == 0 &&
        send(fd, msg, (size_t) n, MSG_NOSIGNAL) == n) {
        got = recv(fd, reply, sizeof reply - 1, 0);
    }
    int e = errno;
    close(fd);
    close(dirfd);
    if (got <= 0) {
        fprintf(stderr,
                "ipmitool (dpf-emu): no answer from the BMC (the emulator "
                "of %s): %s\n",
                state_dir, got == 0 ? "connection closed" : strerror(e));
        return 1;
    }
    reply[got] = '\0';
    if (strncmp(reply, "ok ", 3) != 0) {
        fprintf(stderr, "ipmitool (dpf-emu): %s\n",
                strncmp(reply, "error ", 6) ? reply : reply + 6);
        return 1;
    }
    printf("%s\n", reply + 3);
    return 0;
}

void
emu_fleet_reap(struct emu_fleet *f)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        for (unsigned i = 0; i < f->cfg.hosts; i++) {
            struct emu_host *h = &f->hosts[i];
            struct emu_proc *ps[1 + 2 * 8];
            size_t n = 0;
            ps[n++] = &h->dpulet;
            for (unsigned j = 0; j < f->cfg.dpus_per_host; j++) {
                ps[n++] = &h->dpus[j].join;
                ps[n++] = &h->dpus[j].run;
            }
            for (size_t k = 0; k < n; k++) {
                struct emu_proc *p = ps[k];
                if (p->pid != pid) {
                    continue;
                }
                p->pid = 0;
                log_info("process exited", "what=%s netns=%s pid=%d status=%d",
                         p->what, p->netns, (int) pid, status);
                if (p->on_exit) {
                    p->on_exit(p->arg, status);
                }
                if (p->wanted && !p->restart) {
                    p->restart = loop_timer_add(f->loop, EMU_RESTART_MS, 0,
                                                proc_restart_cb, p);
                }
                fleet_write_status(f);
            }
        }
    }
}

/* --- building ------------------------------------------------------------ */

static int
parse_cidr(struct emu_fleet *f, struct dpf_error *err)
{
    const char *c = f->cfg.mgmt_cidr;
    const char *slash = strchr(c, '/');
    char addr[INET_ADDRSTRLEN] = "";
    struct in_addr in;
    char *end = NULL;
    long pfx = slash ? strtol(slash + 1, &end, 10) : -1;
    if (slash && (size_t) (slash - c) < sizeof addr) {
        memcpy(addr, c, (size_t) (slash - c));
        addr[slash - c] = '\0';
    }
    if (!slash || !end || *end || pfx < 8 || pfx > 16 ||
        inet_pton(AF_INET, addr, &in) != 1) {
        dpf_error_set(err, 400, "BadRequest",
                      "--mgmt-cidr \"%s\": expected an IPv4 network with a "
                      "prefix of /8 to /16, such as 10.251.0.0/16",
                      c);
        return -EINVAL;
    }
    f->prefix = (unsigned) pfx;
    f->base = ntohl(in.s_addr) & ~((1u << (32 - pfx)) - 1);
    uint64_t cap = (1ull << (24 - pfx)) - 1;
    if (f->cfg.hosts > cap) {
        dpf_error_set(err, 400, "BadRequest",
                      "--hosts %u: the management network %s holds at most "
                      "%" PRIu64 " hosts (one /24 each)",
                      f->cfg.hosts, c, cap);
        return -EINVAL;
    }
    ip4_str(f->base + 1, f->gw);
    return 0;
}

static void
sysfs_put(const char *dir, const char *name, const char *text)
{
    char *p = xasprintf("%s/%s", dir, name);
    file_write_atomic(p, text, strlen(text), 0644);
    free(p);
}

/* The host's view of DPU j's PCI functions, as dpf-spec §2.8's scan and
 * the hostnetwork script read them. */
int
emu_sysfs_write_dpu(const char *sys, unsigned j, const char *pf0,
                    const char *pf1, unsigned vfs, struct dpf_error *err)
{
    for (unsigned fn = 0; fn < 2; fn++) {
        char *dev = xasprintf("%s/bus/pci/devices/0000:%02x:00.%u", sys,
                              EMU_PCI_BUS0 + j, fn);
        char *net = xasprintf("%s/net/%s", dev, fn ? pf1 : pf0);
        int rc = dir_create_all(net, 0755);
        if (rc < 0) {
            dpf_error_set(err, 500, "InternalError", "%s: %s", net,
                          strerror(-rc));
            free(dev);
            free(net);
            return rc;
        }
        char n[32];
        sysfs_put(dev, "vendor", "0x15b3\n");
        sysfs_put(dev, "device", "0xa2dc\n");
        sysfs_put(dev, "class", "0x020000\n");
        snprintf(n, sizeof n, "%u\n", 16u);
        sysfs_put(dev, "sriov_totalvfs", n);
        snprintf(n, sizeof n, "%u\n", fn ? 0 : vfs);
        sysfs_put(dev, "sriov_numvfs", n);
        free(dev);
        free(net);
    }
    /* PF0's VFs: functions .2 and up, each with its netdev (the host end
     * of a VF veth), linked from the PF as virtfn<k> as the kernel does */
    for (unsigned k = 0; k < vfs; k++) {
        char *pf = xasprintf("%s/bus/pci/devices/0000:%02x:00.0", sys,
                             EMU_PCI_BUS0 + j);
        char *vfdev = xasprintf("0000:%02x:%02x.%u", EMU_PCI_BUS0 + j,
                                (2 + k) / 8, (2 + k) % 8);
        char *net = xasprintf("%s/bus/pci/devices/%s/net/ens%uf0v%u", sys,
                              vfdev, j + 1, k);
        char *link = xasprintf("%s/virtfn%u", pf, k);
        char *target = xasprintf("../%s", vfdev);
        int rc = dir_create_all(net, 0755);
        if (rc == 0 && symlink(target, link) < 0 && errno != EEXIST) {
            rc = -errno;
        }
        if (rc == 0) {
            /* a ConnectX virtual function: not a BlueField to the scan */
            char *vdir = xasprintf("%s/bus/pci/devices/%s", sys, vfdev);
            sysfs_put(vdir, "vendor", "0x15b3\n");
            sysfs_put(vdir, "device", "0x101e\n");
            sysfs_put(vdir, "class", "0x020000\n");
            free(vdir);
        }
        if (rc < 0) {
            dpf_error_set(err, 500, "InternalError", "%s: %s", link,
                          strerror(-rc));
        }
        free(pf);
        free(vfdev);
        free(net);
        free(link);
        free(target);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* The host dpulets' kubeconfig: the given one with the server the
 * namespaces reach (--server), keeping the name its certificate is for as
 * tls-server-name. */
static int
fleet_write_kubeconfig(struct emu_fleet *f, const char *src, const char *dst,
                       struct dpf_error *err)
{
    char *text;
    size_t len;
    int rc = file_read_all(src, &text, &len);
    if (rc < 0) {
        dpf_error_set(err, 400, "BadRequest", "kubeconfig %s: %s", src,
                      strerror(-rc));
        return rc;
    }
    json_t *doc = NULL;
    rc = yamljson_parse_one(text, len, &doc, err);
    free(text);
    if (rc < 0) {
        return rc;
    }
    if (f->cfg.server_url) {
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(doc, "clusters"), i, c)
        {
            json_t *cl = json_object_get(c, "cluster");
            const char *old = json_string_value(json_object_get(cl, "server"));
            if (!cl || !old) {
                continue;
            }
            if (!json_object_get(cl, "tls-server-name")) {
                const char *h = strstr(old, "://");
                h = h ? h + 3 : old;
                size_t n = strcspn(h, ":/");
                if (*h == '[') {
                    n = strcspn(h, "]") + 1;
                }
                json_object_set_new(cl, "tls-server-name", json_stringn(h, n));
            }
            json_object_set_new(cl, "server", json_string(f->cfg.server_url));
        }
    }
    char *out = yamljson_emit(doc);
    json_decref(doc);
    rc = file_write_atomic(dst, out, strlen(out), 0600);
    free(out);
    if (rc < 0) {
        dpf_error_set(err, 500, "InternalError", "%s: %s", dst, strerror(-rc));
    }
    return rc;
}

/* The first route of the main table (/proc/net/route: the kernel's own
 * text, one route a line, destination and mask as the hex of the network-
 * order word) that overlaps base/prefix, the default route aside: its
 * device and network go to dev and net. A fleet whose management network
 * another bridge already routes builds fine and then cannot reach its own
 * gateway (the kernel sends the replies through the other device): every
 * host's connection times out and nothing says why. */
static bool
route_overlaps(uint32_t base, unsigned prefix, char *dev, size_t dev_size,
               char *net, size_t net_size)
{
    FILE *fp = fopen("/proc/net/route", "re");
    if (!fp) {
        return false;
    }
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof line, fp)) {
        char ifname[64];
        unsigned long dst, mask;
        if (sscanf(line, "%63s %lx %*x %*x %*d %*d %*d %lx", ifname, &dst,
                   &mask) != 3) {
            continue; /* the header */
        }
        uint32_t d = ntohl((uint32_t) dst), m = ntohl((uint32_t) mask);
        if (m == 0) {
            continue;
        }
        uint32_t ours = prefix ? ~0u << (32 - prefix) : 0;
        uint32_t common = ours & m; /* the shorter of the two prefixes */
        if ((d & common) == (base & common)) {
            snprintf(dev, dev_size, "%s", ifname);
            char a[INET_ADDRSTRLEN];
            ip4_str(d, a);
            snprintf(net, net_size, "%s/%d", a, __builtin_popcount(m));
            found = true;
        }
    }
    fclose(fp);
    return found;
}

/* Every name first, then one check: nothing of ours may exist yet. */
static int
fleet_check_names(struct emu_fleet *f, struct dpf_error *err)
{
    char *rec = f->record_path;
    if (access(rec, F_OK) == 0) {
        dpf_error_set(err, 409, "AlreadyExists",
                      "%s exists: a fleet from this state dir is running or "
                      "was not taken down; run `dpf-emu down --state-dir %s` "
                      "first",
                      rec, f->state_dir);
        return -EEXIST;
    }
    if (link_exists(f->bridge)) {
        dpf_error_set(err, 409, "AlreadyExists",
                      "link %s already exists: another fleet named \"%s\"? "
                      "choose another --fleet or take that one down",
                      f->bridge, f->cfg.fleet);
        return -EEXIST;
    }
    char dev[64], net[32];
    if (route_overlaps(f->base, f->prefix, dev, sizeof dev, net, sizeof net)) {
        dpf_error_set(err, 409, "AlreadyExists",
                      "--mgmt-cidr %s overlaps the route to %s on %s: the "
                      "hosts could not reach their gateway; choose another "
                      "--mgmt-cidr, or take down the fleet that owns %s",
                      f->cfg.mgmt_cidr, net, dev, dev);
        return -EEXIST;
    }
    const char *names[2] = {f->fabric_ns, NULL};
    for (size_t k = 0; names[k]; k++) {
        if (netns_exists(names[k])) {
            goto clash;
        }
    }
    for (unsigned i = 0; i < f->cfg.hosts; i++) {
        if (netns_exists(f->hosts[i].netns)) {
            names[0] = f->hosts[i].netns;
            goto clash;
        }
        for (unsigned j = 0; j < f->cfg.dpus_per_host; j++) {
            if (netns_exists(f->hosts[i].dpus[j].netns)) {
                names[0] = f->hosts[i].dpus[j].netns;
                goto clash;
            }
        }
    }
    return 0;
clash:
    dpf_error_set(err, 409, "AlreadyExists",
                  "network namespace %s already exists: another fleet named "
                  "\"%s\"? choose another --fleet or take that one down",
                  names[0], f->cfg.fleet);
    return -EEXIST;
}

static int
fleet_build_net(struct emu_fleet *f, struct dpf_error *err)
{
    const struct emu_fleet_config *c = &f->cfg;
    /* record every name before anything exists */
    record_add(f, "netns %s", f->fabric_ns);
    record_add(f, "link %s", f->bridge);
    for (unsigned i = 0; i < c->hosts; i++) {
        struct emu_host *h = &f->hosts[i];
        record_add(f, "netns %s", h->netns);
        record_add(f, "link dfe%sh%u", c->fleet, h->i);
        for (unsigned j = 0; j < c->dpus_per_host; j++) {
            record_add(f, "netns %s", h->dpus[j].netns);
            record_add(f, "link dfe%sh%ud%u", c->fleet, h->i, j);
        }
    }
    int rc;
    char *argv[] = {"ip", "netns", "add", NULL, NULL};
    argv[3] = f->fabric_ns;
    if ((rc = run_tool(argv, err)) < 0) {
        return rc;
    }
    for (unsigned i = 0; i < c->hosts; i++) {
        argv[3] = f->hosts[i].netns;
        if ((rc = run_tool(argv, err)) < 0) {
            return rc;
        }
        for (unsigned j = 0; j < c->dpus_per_host; j++) {
            argv[3] = f->hosts[i].dpus[j].netns;
            if ((rc = run_tool(argv, err)) < 0) {
                return rc;
            }
        }
    }

    struct dbuf b;
    dbuf_init(&b);
    dbuf_printf(&b, "link add %s type bridge\n", f->bridge);
    dbuf_printf(&b, "addr add %s/%u dev %s\n", f->gw, f->prefix, f->bridge);
    dbuf_printf(&b, "link set %s up\n", f->bridge);
    for (unsigned i = 0; i < c->hosts; i++) {
        struct emu_host *h = &f->hosts[i];
        dbuf_printf(&b,
                    "link add dfe%sh%u type veth peer name mgmt0 netns %s\n"
                    "link set dfe%sh%u master %s up\n",
                    c->fleet, h->i, h->netns, c->fleet, h->i, f->bridge);
        for (unsigned j = 0; j < c->dpus_per_host; j++) {
            struct emu_dpu *d = &h->dpus[j];
            dbuf_printf(&b,
                        "link add dfe%sh%ud%u type veth peer name oob_net0 "
                        "netns %s\n"
                        "link set dfe%sh%ud%u master %s up\n",
                        c->fleet, h->i, j, d->netns, c->fleet, h->i, j,
                        f->bridge);
            /* host PFs/VFs <-> the DPU's representors; uplinks; tmfifo */
            dbuf_printf(&b,
                        "link add %s netns %s type veth peer name pf0hpf "
                        "netns %s\n"
                        "link add %s netns %s type veth peer name pf1hpf "
                        "netns %s\n",
                        d->pf0, h->netns, d->netns, d->pf1, h->netns, d->netns);
            for (unsigned k = 0; k < c->vfs; k++) {
                dbuf_printf(&b,
                            "link add ens%uf0v%u netns %s type veth peer name "
                            "pf0vf%u netns %s\n",
                            j + 1, k, h->netns, k, d->netns);
            }
            dbuf_printf(&b,
                        "link add tmfifo_net%u netns %s type veth peer name "
                        "tmfifo_net0 netns %s\n",
                        j, h->netns, d->netns);
            for (unsigned p = 0; p < 2; p++) {
                dbuf_printf(&b,
                            "link add h%ud%up%u netns %s type veth peer name "
                            "p%u netns %s\n",
                            h->i, j, p, f->fabric_ns, p, d->netns);
            }
        }
    }
    dbuf_append(&b, "", 1);
    rc = ip_batch(f, NULL, b.data, false, err);
    dbuf_free(&b);
    if (rc < 0) {
        return rc;
    }

    /* the fabric: one bridge joining every DPU uplink */
    dbuf_init(&b);
    dbuf_printf(&b, "link set lo up\nlink add fabric type bridge\n"
                    "link set fabric up\n");
    for (unsigned i = 0; i < c->hosts; i++) {
        for (unsigned j = 0; j < c->dpus_per_host; j++) {
            for (unsigned p = 0; p < 2; p++) {
                dbuf_printf(&b, "link set h%ud%up%u master fabric up\n",
                            f->hosts[i].i, j, p);
            }
        }
    }
    dbuf_append(&b, "", 1);
    rc = ip_batch(f, f->fabric_ns, b.data, false, err);
    dbuf_free(&b);
    if (rc < 0) {
        return rc;
    }

    for (unsigned i = 0; i < c->hosts && rc == 0; i++) {
        struct emu_host *h = &f->hosts[i];
        /* br-dpu carries the host's address and default route, as DPF's
         * hosts have it (dpu-oob-bridge-configured) */
        dbuf_init(&b);
        dbuf_printf(&b,
                    "link set lo up\n"
                    "link add br-dpu type bridge\n"
                    "link set mgmt0 master br-dpu up\n"
                    "link set br-dpu up\n"
                    "addr add %s/%u dev br-dpu\n"
                    "route add default via %s dev br-dpu metric 100\n",
                    h->ip, f->prefix, f->gw);
        for (unsigned j = 0; j < c->dpus_per_host; j++) {
            struct emu_dpu *d = &h->dpus[j];
            dbuf_printf(&b,
                        "link set %s up\nlink set %s up\n"
                        "link set tmfifo_net%u up\n",
                        d->pf0, d->pf1, j);
            for (unsigned k = 0; k < c->vfs; k++) {
                dbuf_printf(&b, "link set ens%uf0v%u up\n", j + 1, k);
            }
        }
        dbuf_append(&b, "", 1);
        rc = ip_batch(f, h->netns, b.data, false, err);
        dbuf_free(&b);
        for (unsigned j = 0; j < c->dpus_per_host && rc == 0; j++) {
            struct emu_dpu *d = &h->dpus[j];
            dbuf_init(&b);
            dbuf_printf(&b,
                        "link set lo up\n"
                        "addr add %s/%u dev oob_net0\n"
                        "link set oob_net0 up\n"
                        "route add default via %s dev oob_net0\n"
                        "addr add 192.168.100.2/30 dev tmfifo_net0\n"
                        "link set tmfifo_net0 up\n"
                        "link set p0 up\nlink set p1 up\n"
                        "link set pf0hpf up\nlink set pf1hpf up\n",
                        d->oob_ip, f->prefix, f->gw);
            for (unsigned k = 0; k < c->vfs; k++) {
                dbuf_printf(&b, "link set pf0vf%u up\n", k);
            }
            dbuf_append(&b, "", 1);
            rc = ip_batch(f, d->netns, b.data, false, err);
            dbuf_free(&b);
        }
    }
    return rc;
}

static void
fleet_free(struct emu_fleet *f)
{
    for (unsigned i = 0; f->hosts && i < f->cfg.hosts; i++) {
        struct emu_host *h = &f->hosts[i];
        if (h->annotate) {
            loop_timer_cancel(h->annotate);
        }
        if (h->power) {
            loop_timer_cancel(h->power);
        }
        proc_free(&h->dpulet);
        for (unsigned j = 0; h->dpus && j < f->cfg.dpus_per_host; j++) {
            struct emu_dpu *d = &h->dpus[j];
            if (d->join_retry) {
                loop_timer_cancel(d->join_retry);
            }
            proc_free(&d->join);
            proc_free(&d->run);
            rshim_emu_stop(d->rshim);
            emu_bfcfg_free(&d->cfg);
            free(d->netns);
            free(d->dir);
            free(d->disk);
            free(d->rshim_dir);
            free(d->node_name);
            free(d->error);
        }
        free(h->dpus);
        free(h->netns);
        free(h->node_name);
        free(h->dir);
        free(h->sys);
    }
    free(f->hosts);
    if (f->bmc_watch) {
        loop_watch_remove(f->bmc_watch);
    }
    if (f->bmc_fd >= 0) {
        close(f->bmc_fd);
        char *sock = xasprintf("%s/bmc.sock", f->state_dir);
        unlink(sock);
        free(sock);
    }
    api_client_destroy(f->api);
    free(f->state_dir);
    free(f->record_path);
    free(f->status_path);
    free(f->kubeconfig_ns);
    free(f->fabric_ns);
    free(f->bridge);
    free(f);
}

static void
proc_init(struct emu_proc *p, struct emu_fleet *f, const char *what,
          const char *netns, const char *log_path)
{
    p->f = f;
    p->what = what;
    p->boot_s = -1;
    p->netns = xstrdup(netns);
    p->log_path = xstrdup(log_path);
}

struct emu_fleet *
emu_fleet_up(struct loop *loop, const struct emu_fleet_config *cfg,
             struct dpf_error *err)
{
    const char *fl = cfg->fleet;
    size_t fl_len = strlen(fl);
    if (fl_len < 1 || fl_len > 4 ||
        strspn(fl, "abcdefghijklmnopqrstuvwxyz"
                   "0123456789") != fl_len) {
        dpf_error_set(err, 400, "BadRequest",
                      "--fleet \"%s\": expected 1 to 4 characters of a-z "
                      "and 0-9 (it is part of interface names of at most 15 "
                      "characters)",
                      fl);
        return NULL;
    }
    if (cfg->hosts < 1 || cfg->dpus_per_host < 1 || cfg->dpus_per_host > 8 ||
        cfg->vfs > 16) {
        dpf_error_set(err, 400, "BadRequest",
                      "--hosts must be >= 1, --dpus-per-host 1..8 and --vfs "
                      "0..16 (got %u, %u, %u)",
                      cfg->hosts, cfg->dpus_per_host, cfg->vfs);
        return NULL;
    }
    if (geteuid() != 0) {
        dpf_error_set(err, 403, "Forbidden",
                      "dpf-emu up must run as root: it creates network "
                      "namespaces, bridges and veth pairs");
        return NULL;
    }
    if (!cfg->dpulet || access(cfg->dpulet, X_OK) < 0) {
        dpf_error_set(err, 400, "BadRequest",
                      "dpulet \"%s\": %s; give the agent's path with "
                      "--dpulet PATH",
                      cfg->dpulet ? cfg->dpulet : "",
                      cfg->dpulet ? strerror(errno) : "not found in PATH");
        return NULL;
    }
    if (!cfg->kubeconfig && !cfg->bootstrap_kubeconfig) {
        dpf_error_set(err, 400, "BadRequest",
                      "--kubeconfig or --bootstrap-kubeconfig is required: "
                      "the host dpulets register with it");
        return NULL;
    }
    struct emu_fleet *f = xcalloc(1, sizeof *f);
    f->cfg = *cfg;
    f->loop = loop;
    f->bmc_fd = -1;
    char *abs = realpath(cfg->state_dir, NULL);
    if (!abs && dir_create_all(cfg->state_dir, 0755) == 0) {
        abs = realpath(cfg->state_dir, NULL);
    }
    if (!abs) {
        dpf_error_set(err, 400, "BadRequest", "--state-dir %s: %s",
                      cfg->state_dir, strerror(errno));
        free(f);
        return NULL;
    }
    f->state_dir = abs;
    f->cfg.state_dir = f->state_dir;
    f->record_path = xasprintf("%s/fleet.record", abs);
    f->status_path = xasprintf("%s/status.json", abs);
    f->fabric_ns = xasprintf("dpfemu-%s-fabric", fl);
    f->bridge = xasprintf("dpfemu%s", fl);
    if (parse_cidr(f, err) < 0) {
        fleet_free(f);
        return NULL;
    }
    f->hosts = xcalloc(cfg->hosts, sizeof *f->hosts);
    for (unsigned i = 0; i < cfg->hosts; i++) {
        struct emu_host *h = &f->hosts[i];
        h->f = f;
        h->i = i + 1;
        h->netns = xasprintf("dpfemu-%s-h%u", fl, h->i);
        h->node_name = xstrdup(h->netns);
        h->dir = xasprintf("%s/hosts/h%u", abs, h->i);
        h->sys = xasprintf("%s/sys", h->dir);
        ip4_str(f->base + (h->i << 8) + 1, h->ip);
        h->dpus = xcalloc(cfg->dpus_per_host, sizeof *h->dpus);
        for (unsigned j = 0; j < cfg->dpus_per_host; j++) {
            struct emu_dpu *d = &h->dpus[j];
            d->host = h;
            d->j = j;
            d->netns = xasprintf("%s-d%u", h->netns, j);
            d->node_name = xasprintf("%s-dpu%u", h->node_name, j);
            d->dir = xasprintf("%s/dpus/h%u-d%u", abs, h->i, j);
            d->disk = xasprintf("%s/disk", d->dir);
            d->rshim_dir = xasprintf("%s/rshim%u", h->dir, j);
            snprintf(d->pf0, sizeof d->pf0, "ens%uf0np0", j + 1);
            snprintf(d->pf1, sizeof d->pf1, "ens%uf1np1", j + 1);
            ip4_str(f->base + (h->i << 8) + 10 + j, d->oob_ip);
            d->state = "off";
        }
    }
    if (fleet_check_names(f, err) < 0) {
        fleet_free(f);
        return NULL;
    }
    record_add(f, "emu %d %llu", (int) getpid(), proc_start_time(getpid()));
    log_info("building the fleet", "fleet=%s hosts=%u dpus_per_host=%u", fl,
             cfg->hosts, cfg->dpus_per_host);
    int rc = fleet_build_net(f, err);

    /* the kubeconfig the host dpulets use */
    const char *kc_src =
        cfg->kubeconfig ? cfg->kubeconfig : cfg->bootstrap_kubeconfig;
    char *kc_ns = xasprintf("%s/%s", abs,
                            cfg->kubeconfig ? "host.kubeconfig"
                                            : "host-bootstrap.kubeconfig");
    if (rc == 0) {
        rc = fleet_write_kubeconfig(f, kc_src, kc_ns, err);
    }
    if (rc == 0) {
        rc = fleet_bmc_listen(f, err);
    }
    f->kubeconfig_ns = kc_ns;
    if (rc == 0 && cfg->kubeconfig) {
        struct kubeconfig *kc = NULL;
        struct kubeconfig_options o = {.path = cfg->kubeconfig};
        rc = kubeconfig_load(&o, &kc, err);
        if (rc == 0) {
            f->api = api_client_create(kc, err);
            rc = f->api ? 0 : -EINVAL;
            if (f->api) {
                api_client_set_timeout(f->api, 5000);
            }
        }
        kubeconfig_free(kc);
    }

    for (unsigned i = 0; i < cfg->hosts && rc == 0; i++) {
        struct emu_host *h = &f->hosts[i];
        for (unsigned j = 0; j < cfg->dpus_per_host && rc == 0; j++) {
            struct emu_dpu *d = &h->dpus[j];
            rc = emu_sysfs_write_dpu(h->sys, j, d->pf0, d->pf1, cfg->vfs, err);
            if (rc == 0) {
                rc = dir_create_all(d->disk, 0755);
                if (rc < 0) {
                    dpf_error_set(err, 500, "InternalError", "%s: %s", d->disk,
                                  strerror(-rc));
                }
            }
            if (rc < 0) {
                break;
            }
            snprintf(d->dev_name, sizeof d->dev_name, "pcie-0000:%02x:00.2",
                     EMU_PCI_BUS0 + j);
            struct rshim_emu_config rc_cfg = {
                .dir = d->rshim_dir,
                .dev_name = d->dev_name,
                .dev_info = "BlueField-3(Rev 1)",
                .install_ms = cfg->install_ms,
                .reboot_ms = cfg->reboot_ms,
                .sysfs = h->sys,
                .fw_version = "32.43.1014",
                .port_names = {d->pf0, d->pf1},
                .on_event = dpu_on_event,
                .event_arg = d,
            };
            d->rshim = rshim_emu_start(loop, &rc_cfg, err);
            if (!d->rshim) {
                rc = -EIO;
            }
            char *log = xasprintf("%s/join.log", d->dir);
            proc_init(&d->join, f, "join", d->netns, log);
            free(log);
            log = xasprintf("%s/dpulet.log", d->dir);
            proc_init(&d->run, f, "dpulet", d->netns, log);
            free(log);
        }
        if (rc < 0) {
            break;
        }
        /* the host's agent, its pods' PATH starting with the host's
         * ipmitool */
        rc = cfg->self ? host_write_ipmitool(h, err) : 0;
        if (rc < 0) {
            break;
        }
        char *log = xasprintf("%s/dpulet.log", h->dir);
        char *root = xasprintf("%s/dpulet", h->dir);
        const char *env_path = getenv("PATH");
        char *pods_path = xasprintf("%s/bin:%s", h->dir,
                                    env_path ? env_path
                                             : "/usr/local/sbin:/usr/local/bin:"
                                               "/usr/sbin:/usr/bin:/sbin:/bin");
        proc_init(&h->dpulet, f, "dpulet", h->netns, log);
        h->dpulet.boot_s = boottime_s();
        proc_set_argv(&h->dpulet,
                      cfg->kubeconfig
                          ? argv_make(cfg->dpulet, "--kubeconfig", kc_ns,
                                      "--node-name", h->node_name, "--node-ip",
                                      h->ip, "--root-dir", root, "--sysfs-root",
                                      h->sys, "--path", pods_path, ARGV_END)
                          : argv_make(cfg->dpulet, "--bootstrap-kubeconfig",
                                      kc_ns, "--kubeconfig", "host.kubeconfig",
                                      "--node-name", h->node_name, "--node-ip",
                                      h->ip, "--root-dir", root, "--sysfs-root",
                                      h->sys, "--path", pods_path, ARGV_END));
        free(pods_path);
        if (!cfg->kubeconfig) {
            /* where the bootstrap writes the node's own kubeconfig */
            free(h->dpulet.argv[4]);
            h->dpulet.argv[4] = xasprintf("%s/kubeconfig", h->dir);
        }
        free(log);
        free(root);
        h->dpulet.wanted = true;
        if (!f->api) {
            proc_start(&h->dpulet);
        } else {
            /* started once its Node is made and annotated */
            h->annotate =
                loop_timer_add(loop, 0, EMU_ANNOTATE_MS, host_annotate_cb, h);
        }
    }
    if (rc < 0) {
        struct dpf_error derr = {0};
        log_error("fleet not built; removing what was made", "error=\"%s\"",
                  err->message);
        fleet_free(f);
        emu_fleet_down(cfg->state_dir, NULL, &derr);
        return NULL;
    }
    fleet_write_status(f);
    log_info("fleet up", "fleet=%s hosts=%u dpus=%u bridge=%s gateway=%s", fl,
             cfg->hosts, cfg->hosts * cfg->dpus_per_host, f->bridge, f->gw);
    return f;
}

void
emu_fleet_destroy(struct emu_fleet *f)
{
    if (!f) {
        return;
    }
    char *dir = xstrdup(f->state_dir);
    fleet_free(f);
    struct dpf_error err = {0};
    if (emu_fleet_down(dir, NULL, &err) < 0) {
        log_error("fleet not fully removed", "error=\"%s\"", err.message);
    }
    free(dir);
}

/* --- down / status --------------------------------------------------- */

struct record {
    char **netns, **links;
    size_t n_netns, n_links;
    pid_t *pids;
    unsigned long long *starts;
    size_t n_pids;
    pid_t emu_pid;
    unsigned long long emu_start;
};

static void
strv_add(char ***v, size_t *n, const char *s)
{
    for (size_t k = 0; k < *n; k++) {
        if (!strcmp((*v)[k], s)) {
            return;
        }
    }
    *v = xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = xstrdup(s);
}

static int
record_read(const char *path, struct record *r)
{
    memset(r, 0, sizeof *r);
    char *text;
    size_t len;
    int rc = file_read_all(path, &text, &len);
    if (rc < 0) {
        return rc;
    }
    char *save = NULL;
    for (char *l = strtok_r(text, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        char name[256];
        int pid;
        unsigned long long st;
        if (sscanf(l, "netns %255s", name) == 1) {
            strv_add(&r->netns, &r->n_netns, name);
        } else if (sscanf(l, "link %255s", name) == 1) {
            strv_add(&r->links, &r->n_links, name);
        } else if (sscanf(l, "pid %d %llu", &pid, &st) == 2 && pid > 1) {
            r->pids = xrealloc(r->pids, (r->n_pids + 1) * sizeof *r->pids);
            r->starts =
                xrealloc(r->starts, (r->n_pids + 1) * sizeof *r->starts);
            r->pids[r->n_pids] = pid;
            r->starts[r->n_pids++] = st;
        } else if (sscanf(l, "emu %d %llu", &pid, &st) == 2) {
            r->emu_pid = pid;
            r->emu_start = st;
        }
    }
    free(text);
    return 0;
}

static void
record_free(struct record *r)
{
    for (size_t k = 0; k < r->n_netns; k++) {
        free(r->netns[k]);
    }
    for (size_t k = 0; k < r->n_links; k++) {
        free(r->links[k]);
    }
    free(r->netns);
    free(r->links);
    free(r->pids);
    free(r->starts);
}

static bool
same_process(pid_t pid, unsigned long long start)
{
    unsigned long long now = proc_start_time(pid);
    return now && now == start;
}

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Send sig (0: only count) to every process in network namespace name
 * (/run/netns/<name>); how many there are. */
static size_t
netns_signal_all(const char *name, int sig, FILE *progress)
{
    char path[256];
    struct stat want;
    snprintf(path, sizeof path, "/run/netns/%s", name);
    if (stat(path, &want) < 0) {
        return 0;
    }
    DIR *d = opendir("/proc");
    if (!d) {
        return 0;
    }
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 1 || pid == getpid()) {
            continue;
        }
        struct stat st;
        snprintf(path, sizeof path, "/proc/%ld/ns/net", pid);
        if (stat(path, &st) < 0 || st.st_ino != want.st_ino ||
            st.st_dev != want.st_dev) {
            continue;
        }
        n++;
        if (sig) {
            kill((pid_t) pid, sig);
            if (progress) {
                fprintf(progress, "stopping process %ld in netns %s\n", pid,
                        name);
            }
        }
    }
    closedir(d);
    return n;
}

int
emu_fleet_down(const char *state_dir, FILE *progress, struct dpf_error *err)
{
    if (!state_dir) {
        return 0;
    }
    char *path = xasprintf("%s/fleet.record", state_dir);
    struct record r;
    int rc = record_read(path, &r);
    if (rc == -ENOENT) {
        if (progress) {
            fprintf(progress, "nothing to take down: no %s\n", path);
        }
        free(path);
        return 0;
    }
    if (rc < 0) {
        dpf_error_set(err, 500, "InternalError", "%s: %s", path, strerror(-rc));
        free(path);
        return rc;
    }
    /* a running emulator takes its own fleet down on SIGTERM */
    if (r.emu_pid > 0 && r.emu_pid != getpid() &&
        same_process(r.emu_pid, r.emu_start)) {
        if (progress) {
            fprintf(progress, "stopping dpf-emu (pid %d)\n", (int) r.emu_pid);
        }
        kill(r.emu_pid, SIGTERM);
        for (int ms = 0; ms < 30000 && same_process(r.emu_pid, r.emu_start);
             ms += 50) {
            sleep_ms(50);
        }
        if (same_process(r.emu_pid, r.emu_start)) {
            kill(r.emu_pid, SIGKILL);
        }
    }
    bool any = false;
    for (size_t k = 0; k < r.n_pids; k++) {
        if (same_process(r.pids[k], r.starts[k])) {
            kill(r.pids[k], SIGTERM);
            any = true;
            if (progress) {
                fprintf(progress, "stopping process %d\n", (int) r.pids[k]);
            }
        }
    }
    for (int ms = 0; any && ms < EMU_TERM_WAIT_MS; ms += 50) {
        any = false;
        for (size_t k = 0; k < r.n_pids; k++) {
            waitpid(r.pids[k], NULL, WNOHANG); /* ours: reap */
            any |= same_process(r.pids[k], r.starts[k]);
        }
        if (any) {
            sleep_ms(50);
        }
    }
    for (size_t k = 0; k < r.n_pids; k++) {
        if (same_process(r.pids[k], r.starts[k])) {
            kill(r.pids[k], SIGKILL);
            waitpid(r.pids[k], NULL, 0);
        }
    }
    /* What the agents started and left running (pods' processes and
     * their shims outlive a dpulet by design) dies with the fleet: every
     * process still in one of its namespaces. */
    for (int sig = SIGTERM, round = 0; round < 2; round++, sig = SIGKILL) {
        size_t left = 0;
        for (size_t k = 0; k < r.n_netns; k++) {
            left += netns_signal_all(r.netns[k], sig, progress);
        }
        for (int ms = 0; left && round == 0 && ms < EMU_TERM_WAIT_MS;
             ms += 50) {
            sleep_ms(50);
            left = 0;
            for (size_t k = 0; k < r.n_netns; k++) {
                left += netns_signal_all(r.netns[k], 0, NULL);
            }
        }
        if (!left) {
            break;
        }
    }
    /* deleting a namespace destroys its veths and their peers */
    for (size_t k = 0; k < r.n_netns; k++) {
        if (netns_exists(r.netns[k])) {
            char *argv[] = {"ip", "netns", "del", r.netns[k], NULL};
            struct dpf_error e = {0};
            if (run_tool(argv, &e) == 0 && progress) {
                fprintf(progress, "deleted netns %s\n", r.netns[k]);
            }
        }
    }
    for (size_t k = 0; k < r.n_links; k++) {
        if (link_exists(r.links[k])) {
            char *argv[] = {"ip", "link", "del", r.links[k], NULL};
            struct dpf_error e = {0};
            if (run_tool(argv, &e) == 0 && progress) {
                fprintf(progress, "deleted link %s\n", r.links[k]);
            }
        }
    }
    /* what is left? */
    struct dbuf left;
    dbuf_init(&left);
    for (size_t k = 0; k < r.n_netns; k++) {
        if (netns_exists(r.netns[k])) {
            dbuf_printf(&left, " netns %s", r.netns[k]);
        }
    }
    for (size_t k = 0; k < r.n_links; k++) {
        if (link_exists(r.links[k])) {
            dbuf_printf(&left, " link %s", r.links[k]);
        }
    }
    for (size_t k = 0; k < r.n_pids; k++) {
        if (same_process(r.pids[k], r.starts[k])) {
            dbuf_printf(&left, " pid %d", (int) r.pids[k]);
        }
    }
    rc = 0;
    if (left.len) {
        dbuf_append(&left, "", 1);
        dpf_error_set(err, 500, "InternalError",
                      "could not remove:%s (run again as root)", left.data);
        rc = -EBUSY;
    } else {
        unlink(path);
        if (progress) {
            fprintf(progress, "fleet down: nothing left\n");
        }
    }
    dbuf_free(&left);
    record_free(&r);
    free(path);
    return rc;
}

int
emu_fleet_status(const char *state_dir, FILE *out, struct dpf_error *err)
{
    char *path = xasprintf("%s/fleet.record", state_dir);
    struct record r;
    int rc = record_read(path, &r);
    if (rc < 0) {
        dpf_error_set(err, 404, "NotFound",
                      "no fleet in %s (%s: %s): start one with dpf-emu up",
                      state_dir, path, strerror(-rc));
        free(path);
        return rc;
    }
    bool running = r.emu_pid > 0 && same_process(r.emu_pid, r.emu_start);
    fprintf(out, "emulator: %s (pid %d)\n", running ? "running" : "NOT running",
            (int) r.emu_pid);
    char *sp = xasprintf("%s/status.json", state_dir);
    char *text;
    size_t len;
    json_t *st = NULL;
    if (file_read_all(sp, &text, &len) == 0) {
        st = json_loadb(text, len, 0, NULL);
        free(text);
    }
    size_t i, j;
    json_t *h, *d;
    json_array_foreach(json_object_get(st, "hosts"), i, h)
    {
        const char *ns = json_string_value(json_object_get(h, "netns"));
        fprintf(out, "host %s  ip %s  netns %s  dpulet pid %lld%s\n",
                json_string_value(json_object_get(h, "nodeName")),
                json_string_value(json_object_get(h, "ip")),
                ns && netns_exists(ns) ? "present" : "MISSING",
                json_integer_value(json_object_get(h, "dpuletPid")),
                json_is_true(json_object_get(h, "annotated"))
                    ? "  node annotated"
                    : "");
        json_array_foreach(json_object_get(h, "dpus"), j, d)
        {
            const char *e = json_string_value(json_object_get(d, "error"));
            const char *hn = json_string_value(json_object_get(d, "hostname"));
            fprintf(out,
                    "  dpu %s  oob %s  state %s  hostname %s  dpulet pid "
                    "%lld%s%s\n",
                    json_string_value(json_object_get(d, "netns")),
                    json_string_value(json_object_get(d, "oobIP")),
                    json_string_value(json_object_get(d, "state")),
                    hn ? hn : "-",
                    json_integer_value(json_object_get(d, "dpuletPid")),
                    e ? "  error: " : "", e ? e : "");
        }
    }
    json_decref(st);
    free(sp);
    size_t live = 0;
    for (size_t k = 0; k < r.n_netns; k++) {
        live += netns_exists(r.netns[k]);
    }
    fprintf(out,
            "recorded: %zu namespaces (%zu present), %zu links, %zu "
            "processes\n",
            r.n_netns, live, r.n_links, r.n_pids);
    record_free(&r);
    free(path);
    return 0;
}
