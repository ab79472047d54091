/* daemon: see daemon.h. */
#include "lib/base/daemon.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/base/loop.h"

LOG_MODULE(daemon);

/* Common flags get getopt values below this; program flag i gets
 * DAEMON_FLAG_BASE + i. */
enum {
    DAEMON_OPT_LOG_LEVEL = 1,
    DAEMON_OPT_LOG_FILE,
    DAEMON_OPT_HELP,
    DAEMON_OPT_VERSION,
    DAEMON_FLAG_BASE = 256,
};

#define DAEMON_MAX_CHECKS 16

struct daemon_check {
    char name[64];    /* check name */
    bool ok;          /* state */
    char reason[160]; /* why not ok */
};

struct daemon {
    const struct daemon_spec *spec;
    struct loop *loop;
    pthread_mutex_t mu; /* guards checks */
    struct daemon_check checks[DAEMON_MAX_CHECKS];
    size_t n_checks;
};

static size_t
daemon_flag_count(const struct daemon_spec *spec)
{
    size_t n = 0;
    while (spec->flags && spec->flags[n].name) {
        n++;
    }
    return n;
}

static void
daemon_usage(const struct daemon_spec *spec, FILE *f)
{
    fprintf(f, "Usage: %s [OPTIONS]\n", spec->name);
    if (spec->summary) {
        fprintf(f, "%s\n", spec->summary);
    }
    fputc('\n', f);
    for (size_t i = 0; spec->flags && spec->flags[i].name; i++) {
        const struct daemon_flag *fl = &spec->flags[i];
        char head[64];
        snprintf(head, sizeof head, "--%s%s%s", fl->name,
                 fl->metavar ? " " : "", fl->metavar ? fl->metavar : "");
        fprintf(f, "  %-22s ", head);
        for (const char *p = fl->help; *p; p++) {
            fputc(*p, f);
            if (*p == '\n') {
                fprintf(f, "  %-22s ", "");
            }
        }
        fputc('\n', f);
    }
    fprintf(f, "  %-22s %s\n", "--log-level LEVEL",
            "error, warn, info (default) or debug");
    fprintf(f, "  %-22s %s\n", "--log-file PATH",
            "log to PATH instead of stderr");
    fprintf(f, "  %-22s %s\n", "--help", "show this help");
    fprintf(f, "  %-22s %s\n", "--version", "show the version");
    fprintf(f, "\nSignals: SIGTERM/SIGINT stop cleanly%s.\n",
            spec->reload ? ", SIGHUP reloads" : "");
    if (spec->epilog) {
        fprintf(f, "%s\n", spec->epilog);
    }
}

/* Parse argv. Returns 0 to run, 1 when --help/--version was answered,
 * 2 on a usage error (printed). */
static int
daemon_parse(const struct daemon_spec *spec, int argc, char **argv)
{
    size_t n = daemon_flag_count(spec);
    struct option *opts = xcalloc(n + 5, sizeof *opts);
    for (size_t i = 0; i < n; i++) {
        opts[i] = (struct option){spec->flags[i].name,
                                  spec->flags[i].metavar ? required_argument
                                                         : no_argument,
                                  NULL, DAEMON_FLAG_BASE + (int) i};
    }
    opts[n] = (struct option){"log-level", required_argument, NULL,
                              DAEMON_OPT_LOG_LEVEL};
    opts[n + 1] = (struct option){"log-file", required_argument, NULL,
                                  DAEMON_OPT_LOG_FILE};
    opts[n + 2] = (struct option){"help", no_argument, NULL, DAEMON_OPT_HELP};
    opts[n + 3] =
        (struct option){"version", no_argument, NULL, DAEMON_OPT_VERSION};
    int rc = 0;
    int c;
    optind = 1;
    opterr = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        struct dpf_error err = {0};
        switch (c) {
        case DAEMON_OPT_LOG_LEVEL:
            if (log_set_level_name(optarg) < 0) {
                fprintf(stderr,
                        "%s: --log-level: unknown level \"%s\" (expected "
                        "error, warn, info or debug)\n",
                        spec->name, optarg);
                rc = 2;
            }
            break;
        case DAEMON_OPT_LOG_FILE:
            if (log_set_file(optarg) < 0) {
                fprintf(stderr, "%s: --log-file: cannot open %s: %s\n",
                        spec->name, optarg, strerror(errno));
                rc = 2;
            }
            break;
        case DAEMON_OPT_HELP:
            daemon_usage(spec, stdout);
            rc = 1;
            break;
        case DAEMON_OPT_VERSION:
            printf("%s %s\n", spec->name, DPF_VERSION);
            rc = 1;
            break;
        case '?':
            if (optopt) {
                fprintf(stderr, "%s: option %s needs a value\n", spec->name,
                        argv[optind - 1]);
            } else {
                fprintf(stderr, "%s: unknown option %s\n", spec->name,
                        argv[optind - 1]);
            }
            fprintf(stderr, "Try '%s --help'.\n", spec->name);
            rc = 2;
            break;
        default: {
            const struct daemon_flag *fl = &spec->flags[c - DAEMON_FLAG_BASE];
            if (fl->set && fl->set(spec->arg, optarg, &err) < 0) {
                fprintf(stderr, "%s: --%s: %s\n", spec->name, fl->name,
                        err.message[0] ? err.message : "invalid value");
                rc = 2;
            }
            break;
        }
        }
    }
    if (rc == 0 && optind < argc) {
        fprintf(stderr, "%s: unexpected argument \"%s\"\nTry '%s --help'.\n",
                spec->name, argv[optind], spec->name);
        rc = 2;
    }
    free(opts);
    return rc;
}

static void
daemon_on_stop(void *arg, int signo)
{
    struct daemon *d = arg;
    log_info("stopping", "program=%s signal=%d", d->spec->name, signo);
    loop_stop(d->loop);
}

static void
daemon_on_hup(void *arg, int signo)
{
    struct daemon *d = arg;
    if (d->spec->reload) {
        log_info("reloading", "program=%s signal=%d", d->spec->name, signo);
        d->spec->reload(d->spec->arg);
    } else {
        log_info("SIGHUP ignored", "program=%s", d->spec->name);
    }
}

int
daemon_main(const struct daemon_spec *spec, int argc, char **argv)
{
    int prc = daemon_parse(spec, argc, argv);
    if (prc) {
        return prc == 1 ? 0 : 2;
    }
    struct daemon *d = xcalloc(1, sizeof *d);
    d->spec = spec;
    pthread_mutex_init(&d->mu, NULL);
    d->loop = loop_create();
    if (!d->loop) {
        fprintf(stderr, "%s: cannot create the event loop: %s\n", spec->name,
                strerror(errno));
        pthread_mutex_destroy(&d->mu);
        free(d);
        return 1;
    }
    /* Before any thread exists, so every thread inherits the mask. */
    loop_signal(d->loop, SIGTERM, daemon_on_stop, d);
    loop_signal(d->loop, SIGINT, daemon_on_stop, d);
    loop_signal(d->loop, SIGHUP, daemon_on_hup, d);
    signal(SIGPIPE, SIG_IGN);
    struct dpf_error err = {0};
    int rc = 0;
    if (spec->start && spec->start(spec->arg, d, &err) < 0) {
        log_error("cannot start", "program=%s error=\"%s\"", spec->name,
                  err.message);
        rc = 1;
    } else {
        log_info("started", "program=%s version=%s", spec->name, DPF_VERSION);
        rc = loop_run(d->loop) < 0 ? 1 : 0;
    }
    if (spec->stop) {
        spec->stop(spec->arg);
    }
    loop_destroy(d->loop);
    pthread_mutex_destroy(&d->mu);
    log_info("stopped", "program=%s rc=%d", spec->name, rc);
    free(d);
    return rc;
}

struct loop *
daemon_loop(struct daemon *d)
{
    return d->loop;
}

void
daemon_stop(struct daemon *d)
{
    loop_stop(d->loop);
}

void
daemon_set_ready(struct daemon *d, const char *check, bool ok,
                 const char *reason)
{
    pthread_mutex_lock(&d->mu);
    struct daemon_check *c = NULL;
    for (size_t i = 0; i < d->n_checks; i++) {
        if (!strcmp(d->checks[i].name, check)) {
            c = &d->checks[i];
        }
    }
    if (!c && d->n_checks < DAEMON_MAX_CHECKS) {
        c = &d->checks[d->n_checks++];
        snprintf(c->name, sizeof c->name, "%s", check);
    }
    if (c) {
        c->ok = ok;
        snprintf(c->reason, sizeof c->reason, "%s",
                 ok || !reason ? "" : reason);
    }
    pthread_mutex_unlock(&d->mu);
}

/* Callers hold d->mu. */
static bool
daemon_ready_locked(const struct daemon *d)
{
    if (!d->n_checks) {
        return false;
    }
    for (size_t i = 0; i < d->n_checks; i++) {
        if (!d->checks[i].ok) {
            return false;
        }
    }
    return true;
}

bool
daemon_is_ready(struct daemon *d)
{
    pthread_mutex_lock(&d->mu);
    bool ok = daemon_ready_locked(d);
    pthread_mutex_unlock(&d->mu);
    return ok;
}

int
daemon_health(struct daemon *d, const char *path, struct dbuf *body)
{
    size_t plen = strcspn(path, "?");
    bool verbose = strstr(path + plen, "verbose") != NULL;
    if ((plen == 8 && !strncmp(path, "/healthz", 8)) ||
        (plen == 6 && !strncmp(path, "/livez", 6))) {
        dbuf_puts(body, verbose ? "[+]ping ok\nlivez check passed\n" : "ok");
        return 200;
    }
    if (plen != 7 || strncmp(path, "/readyz", 7)) {
        return 0;
    }
    pthread_mutex_lock(&d->mu);
    bool ok = daemon_ready_locked(d);
    if (verbose || !ok) {
        for (size_t i = 0; i < d->n_checks; i++) {
            const struct daemon_check *c = &d->checks[i];
            if (c->ok) {
                dbuf_printf(body, "[+]%s ok\n", c->name);
            } else {
                dbuf_printf(body, "[-]%s failed: %s\n", c->name,
                            c->reason[0] ? c->reason : "not ready");
            }
        }
        if (!d->n_checks) {
            dbuf_puts(body, "[-]started failed: not started yet\n");
        }
        dbuf_puts(body, ok ? "readyz check passed\n" : "readyz check failed\n");
    } else {
        dbuf_puts(body, "ok");
    }
    pthread_mutex_unlock(&d->mu);
    return ok ? 200 : 503;
}
