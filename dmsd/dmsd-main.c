/* dmsd: the DOCA Management Service daemon. main and flags only; the
 * server is dmsd.c. Flags are spelled as DPF's pod spec passes them, Go
 * style with one dash (-bind_address 0.0.0.0:9339); --flag works too. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "dmsd/dmsd-targets.h"
#include "dmsd/dmsd.h"
#include "lib/base/daemon.h"
#include "lib/base/log.h"
#include "lib/base/thread.h"
#include "lib/base/util.h"
#include "lib/codecs/duration.h"

LOG_MODULE(dmsd);

struct dm {
    struct dmsd_config cfg;
    struct dmsd *s;
    /* --targets - */
    bool targets_mode;
    const char *single_flag; /* a single-target flag given ("-ca") */
    struct daemon *d;
    struct dmsd_targets *targets;
    pthread_t reader;
    bool reader_started;
    int stop_pipe[2]; /* written by dm_stop: the reader ends */
};

/* A flag of one target: --targets takes these per line instead. */
#define STR_FLAG(fn, field)                                        \
    static int fn(void *arg, const char *v, struct dpf_error *err) \
    {                                                              \
        (void) err;                                                \
        ((struct dm *) arg)->cfg.field = v;                        \
        ((struct dm *) arg)->single_flag = "-" #field;             \
        return 0;                                                  \
    }

STR_FLAG(set_bind, bind_address)
STR_FLAG(set_ca, ca)
STR_FLAG(set_cert, tls_cert_file)
STR_FLAG(set_key, tls_key_file)
STR_FLAG(set_username, username)
STR_FLAG(set_password, password)
STR_FLAG(set_allowed, allowed_users)
STR_FLAG(set_images, image_folder)
STR_FLAG(set_pci, target_pci)
STR_FLAG(set_rshim, rshim)
STR_FLAG(set_state_dir, state_dir)
STR_FLAG(set_sysfs, sysfs)

static int
set_auth(void *arg, const char *v, struct dpf_error *err)
{
    struct dm *m = arg;
    m->single_flag = "-auth";
    if (!strcmp(v, "cert")) {
        m->cfg.auth = DMSD_AUTH_CERT;
    } else if (!strcmp(v, "credentials")) {
        m->cfg.auth = DMSD_AUTH_CREDENTIALS;
    } else if (!strcmp(v, "none")) {
        m->cfg.auth = DMSD_AUTH_NONE;
    } else {
        dpf_error_set(err, 400, "BadRequest",
                      "-auth \"%s\": expected cert, credentials or none", v);
        return -EINVAL;
    }
    return 0;
}

static int
set_exec_timeout(void *arg, const char *v, struct dpf_error *err)
{
    int64_t ms;
    char *end;
    long secs = strtol(v, &end, 10);
    if (*v && !*end && secs > 0) {
        ms = (int64_t) secs * 1000; /* DPF passes plain seconds */
    } else if (duration_parse(v, &ms) < 0 || ms <= 0) {
        dpf_error_set(err, 400, "BadRequest",
                      "-exec_timeout \"%s\": expected seconds or a duration "
                      "such as 30m",
                      v);
        return -EINVAL;
    }
    ((struct dm *) arg)->cfg.exec_timeout_ms = ms;
    return 0;
}

static int
set_ignored(void *arg, const char *v, struct dpf_error *err)
{
    (void) arg;
    (void) v;
    (void) err;
    return 0;
}

static int
set_targets(void *arg, const char *v, struct dpf_error *err)
{
    if (strcmp(v, "-") != 0) {
        dpf_error_set(err, 400, "BadRequest",
                      "--targets \"%s\": only - (stdin) is supported", v);
        return -EINVAL;
    }
    ((struct dm *) arg)->targets_mode = true;
    return 0;
}

static int
set_v(void *arg, const char *v, struct dpf_error *err)
{
    (void) arg;
    (void) err;
    log_set_level(atoi(v) >= 4 ? DPF_LOG_DEBUG : DPF_LOG_INFO);
    return 0;
}

static const struct daemon_flag flags[] = {
    {"bind_address", "ADDR:PORT",
     "where to serve gNMI and gNOI (default "
     "0.0.0.0:9339)",
     set_bind},
    {"auth", "MODE",
     "cert (mutual TLS, default), credentials "
     "(username/password\nmetadata over TLS) or none "
     "(plaintext, loopback only)",
     set_auth},
    {"ca", "FILE",
     "CA certificate (PEM) that client certificates must "
     "chain to",
     set_ca},
    {"tls_cert_file", "FILE", "server certificate (PEM)", set_cert},
    {"tls_key_file", "FILE", "server private key (PEM)", set_key},
    {"username", "NAME", "the user for -auth credentials", set_username},
    {"password", "PASS", "the password for -auth credentials", set_password},
    {"allowed_users", "A,B",
     "only these users (certificate CN or "
     "username), in every mode",
     set_allowed},
    {"image_folder", "DIR",
     "where installed images and bf.cfg files live "
     "(required)",
     set_images},
    {"rshim", "DIR",
     "the rshim device directory (/dev/rshim0 on a host; "
     "required)",
     set_rshim},
    {"state_dir", "DIR",
     "dmsd's own state (default "
     "IMAGE_FOLDER/.dmsd)",
     set_state_dir},
    {"target_pci", "BUS:DEV",
     "the DPU's PCI address (4b:00): its ports and firmware\n"
     "version are read from sysfs (default: the address in misc's DEV_NAME)",
     set_pci},
    {"sysfs", "DIR",
     "the host's sysfs (default /sys; dpf-rshim-emu --sysfs "
     "makes one)",
     set_sysfs},
    {"exec_timeout", "SECONDS",
     "how long an activation may take (default "
     "1800)",
     set_exec_timeout},
    {"disable_unbind_at_activate", NULL,
     "accepted for DPF's pod spec (no "
     "driver to unbind here)",
     NULL},
    {"reboot_status_check", "MODE", "accepted for DPF's pod spec", set_ignored},
    {"targets", "-",
     "serve many targets in one process, added and removed by JSON\n"
     "lines on stdin, one reply line each on stdout (see below); excludes\n"
     "the flags of one target above except -exec_timeout,\n"
     "-reboot_status_check and -disable_unbind_at_activate",
     set_targets},
    {"v", "LEVEL", "verbosity: 4 and above log every call", set_v},
    {NULL, NULL, NULL, NULL},
};

/* Write all of buf to stdout; false once stdout is gone. */
static bool
write_all(const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(STDOUT_FILENO, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return false;
        }
        p += w;
        n -= (size_t) w;
    }
    return true;
}

/* The control thread: read lines from stdin, act on each, answer on
 * stdout in order. It waits in poll() on stdin and on stop_pipe, so that a
 * SIGTERM (dm_stop) ends it as well as EOF does; a line is always handled
 * to its end first. */
static void *
reader_main(void *arg)
{
    struct dm *m = arg;
    size_t cap = DMSD_CTL_LINE_MAX + 1;
    char *buf = xmalloc(cap);
    size_t have = 0;
    bool skipping = false; /* inside a line that was too long */
    unsigned long lineno = 0;
    bool eof = false, lost = false;
    struct dbuf out;
    dbuf_init(&out);
    while (!eof) {
        struct pollfd pfd[2] = {{.fd = STDIN_FILENO, .events = POLLIN},
                                {.fd = m->stop_pipe[0], .events = POLLIN}};
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            log_error("poll on stdin failed", "error=\"%s\"", strerror(errno));
            break;
        }
        if (pfd[1].revents) {
            break;
        }
        ssize_t r = read(STDIN_FILENO, buf + have, cap - have);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        if (r <= 0) {
            eof = true;
            if (have && !skipping) {
                /* a last line without its newline */
                buf[have++] = '\n';
            } else {
                have = 0;
            }
        } else {
            have += (size_t) r;
        }
        size_t start = 0;
        for (;;) {
            char *nl = memchr(buf + start, '\n', have - start);
            if (!nl) {
                break;
            }
            size_t len = (size_t) (nl - (buf + start));
            lineno++;
            if (skipping) {
                skipping = false;
                dmsd_targets_too_long(lineno, &out);
            } else {
                dmsd_targets_line(m->targets, buf + start, len, lineno, &out);
            }
            start += len + 1;
            if (out.len && !write_all(out.data, out.len) && !lost) {
                log_warn("stdout is closed: replies are lost", "lineno=%lu",
                         lineno);
                lost = true;
            }
            out.len = 0;
        }
        memmove(buf, buf + start, have - start);
        have -= start;
        if (have == cap) {
            /* no newline in DMSD_CTL_LINE_MAX + 1 bytes */
            skipping = true;
            have = 0;
        }
    }
    if (skipping && eof) {
        dmsd_targets_too_long(++lineno, &out);
        write_all(out.data, out.len);
    }
    dbuf_free(&out);
    free(buf);
    if (eof) {
        log_info("end of the control input: stopping", "targets=%zu",
                 dmsd_targets_count(m->targets));
        daemon_stop(m->d);
    }
    return NULL;
}

/* Every target holds a listener, its calls hold connections: a few
 * thousand targets need more descriptors than the usual soft limit. */
static void
raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            log_warn("cannot raise the open-file limit",
                     "soft=%llu error=\"%s\"", (unsigned long long) was,
                     strerror(errno));
            return;
        }
        log_info("raised the open-file limit", "from=%llu to=%llu",
                 (unsigned long long) was, (unsigned long long) rl.rlim_cur);
    }
}

static int
targets_start(struct dm *m, struct daemon *d, struct dpf_error *err)
{
    if (m->single_flag) {
        dpf_error_set(err, 400, "BadRequest",
                      "--targets takes the settings of each target from its "
                      "line: %s is not allowed with it",
                      m->single_flag);
        return -EINVAL;
    }
    raise_nofile();
    m->d = d;
    m->targets = dmsd_targets_create(&m->cfg, err);
    if (!m->targets) {
        return -EINVAL;
    }
    if (pipe2(m->stop_pipe, O_CLOEXEC) < 0) {
        dpf_error_set(err, 500, "InternalError", "pipe: %s", strerror(errno));
        return -errno;
    }
    if (thread_start(&m->reader, NULL, "dmsd-control", reader_main, m) < 0) {
        dpf_error_set(err, 500, "InternalError",
                      "cannot start the control thread");
        return -EAGAIN;
    }
    m->reader_started = true;
    daemon_set_ready(d, "grpc", true, NULL);
    return 0;
}

static int
dm_start(void *arg, struct daemon *d, struct dpf_error *err)
{
    struct dm *m = arg;
    if (m->targets_mode) {
        return targets_start(m, d, err);
    }
    m->s = dmsd_start(&m->cfg, err);
    if (!m->s) {
        return -EINVAL;
    }
    daemon_set_ready(d, "grpc", true, NULL);
    return 0;
}

static void
dm_stop(void *arg)
{
    struct dm *m = arg;
    if (m->reader_started) {
        ssize_t w = write(m->stop_pipe[1], "x", 1);
        (void) w;
        pthread_join(m->reader, NULL);
        m->reader_started = false;
    }
    if (m->stop_pipe[0] >= 0) {
        close(m->stop_pipe[0]);
        close(m->stop_pipe[1]);
        m->stop_pipe[0] = m->stop_pipe[1] = -1;
    }
    dmsd_targets_destroy(m->targets);
    m->targets = NULL;
    dmsd_stop(m->s);
    m->s = NULL;
}

/* --help's epilog: the control lines of --targets (docs/services/dms.md) */
static const char targets_help[] =
    "\nWith --targets -, each line on stdin is one JSON object, and gets one\n"
    "JSON line on stdout, in order:\n"
    "  {\"op\":\"add\", \"id\":\"ns.dpu\",\n"
    "   \"bind_address\":\"127.1.0.2:9339\",\n"
    "   \"ca_pem\":\"PEM\", \"cert_pem\":\"PEM\", \"key_pem\":\"PEM\",\n"
    "   \"rshim\":\"DIR\", \"image_folder\":\"DIR\"\n"
    "   [, \"target_pci\":\"4b:00\"] [, \"sysfs\":\"DIR\"]\n"
    "   [, \"state_dir\":\"DIR\"] [, \"allowed_users\":\"A,B\"]}\n"
    "      -> {\"id\":\"ns.dpu\",\"ok\":true,\"port\":9339}\n"
    "  {\"op\":\"remove\", \"id\":\"ns.dpu\"}\n"
    "      -> {\"id\":\"ns.dpu\",\"ok\":true}\n"
    "  a failure -> {\"id\":..,\"ok\":false,\"error\":\"line N: ...\"}\n"
    "Every target serves mutual TLS as -auth cert does. An add of an id\n"
    "already served replaces it; a remove cancels its calls in flight and\n"
    "closes its port. EOF on stdin or SIGTERM stops every target and the\n"
    "exit code is 0. The soft limit on open files is raised to the hard\n"
    "one (a listening socket per target).";

int
main(int argc, char **argv)
{
    struct dm m = {.cfg = {.bind_address = "0.0.0.0:9339",
                           .auth = DMSD_AUTH_CERT,
                           .sysfs = "/sys",
                           .exec_timeout_ms = 1800 * 1000},
                   .stop_pipe = {-1, -1}};
    /* gRPC allocates and frees its receive buffers for every 64 KiB
     * transfer message (dmsd itself no longer copies them): without these
     * glibc keeps returning the top of the heap to the kernel and faulting
     * it back, which once cost most of the CPU of an Install. Two arenas
     * bound the memory the call threads can spread over. */
    mallopt(M_TRIM_THRESHOLD, 16 << 20);
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_ARENA_MAX, 2);
    /* Go's flag package takes -name; getopt_long wants --name */
    char **av = xcalloc((size_t) argc + 1, sizeof *av);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        av[i] = i > 0 && a[0] == '-' && isalpha((unsigned char) a[1])
                    ? xasprintf("-%s", a)
                    : xstrdup(a);
    }
    const struct daemon_spec spec = {
        .name = "dmsd",
        .summary = "Serve gNMI and gNOI (the DOCA Management Service) on one "
                   "gRPC port:\nthe BlueField mode, OS.Install of BFBs and "
                   "bf.cfg files, OS.Activate\ninto the rshim boot device, "
                   "System.Reboot and RebootStatus, File in the image\n"
                   "folder; gNMI reads the DPU's identity, versions and ports.",
        .epilog = targets_help,
        .flags = flags,
        .arg = &m,
        .start = dm_start,
        .stop = dm_stop,
    };
    int rc = daemon_main(&spec, argc, av);
    for (int i = 0; i < argc; i++) {
        free(av[i]);
    }
    free(av);
    return rc;
}
