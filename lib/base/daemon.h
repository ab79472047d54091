/* daemon: the skeleton every long-running program shares (dts, the
 * controller manager, DMS and the agents to come; dpf-server keeps its own
 * option parser but the same conventions).
 *
 * daemon_main() parses the command line: the program's own flags plus the
 * common ones (--log-level, --log-file, --help, --version), prints usage
 * errors as "<name>: ..." with exit code 2, creates the event loop,
 * routes SIGTERM and SIGINT (stop) and SIGHUP (reload) through it, ignores
 * SIGPIPE, calls the program's start hook, runs the loop until a stop
 * signal or daemon_stop(), then calls the stop hook. Exit codes: 0 after a
 * clean stop, 1 when start-up failed (the hook's error is logged), 2 for a
 * usage error.
 *
 * Health: a daemon is live while its loop runs and ready once it says so
 * with daemon_set_ready(). daemon_health() answers /healthz, /livez and
 * /readyz (with ?verbose, Kubernetes' "[+]name ok" form) for whatever HTTP
 * server the program runs (lib/net/http-lite for the daemons).
 *
 * Threads: daemon_set_ready(), daemon_health() and daemon_stop() may be
 * called from any thread; everything else runs on the main thread. The
 * flags' set() callbacks run during parsing, before any thread exists. */
#ifndef DPF_DAEMON_H
#define DPF_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/base/error.h"
#include "lib/base/util.h"

struct daemon;
struct loop;

/* One program flag (long option). */
struct daemon_flag {
    const char *name;    /* without the leading "--"; NULL ends the list */
    const char *metavar; /* value name in the usage ("DIR"); NULL = switch */
    const char *help;    /* one line of usage text (may contain \n) */
    /* Take the value (NULL for a switch). Return 0, or -EINVAL with err's
     * message saying what was expected. */
    int (*set)(void *arg, const char *value, struct dpf_error *err);
};

/* What a program tells the skeleton. */
struct daemon_spec {
    const char *name;                /* program name (usage, logs, version) */
    const char *summary;             /* lines after "Usage: NAME [OPTIONS]" */
    const char *epilog;              /* lines after the flags, or NULL */
    const struct daemon_flag *flags; /* program flags, or NULL */
    void *arg;                       /* passed to every hook and set() */
    /* After parsing, on the main thread with the loop created and the
     * signals routed: start the work (add watches and timers, start
     * threads). Return 0, or a negative errno with err set. */
    int (*start)(void *arg, struct daemon *d, struct dpf_error *err);
    /* SIGHUP, on the loop thread; NULL = SIGHUP is logged and ignored. */
    void (*reload)(void *arg);
    /* After the loop ended (or start failed): release what start made. */
    void (*stop)(void *arg);
};

/* Run the program. Returns the process exit code (see above). */
int daemon_main(const struct daemon_spec *spec, int argc, char **argv);

/* The program's event loop. */
struct loop *daemon_loop(struct daemon *d);
/* Ask the loop to end (any thread). */
void daemon_stop(struct daemon *d);
/* Declare one readiness check's state (any thread). A daemon is ready when
 * it has at least one check and all are ok; reason (may be NULL) says why
 * a check is not ok. Checks are identified by name (copied). */
void daemon_set_ready(struct daemon *d, const char *check, bool ok,
                      const char *reason);
/* True when every readiness check is ok. */
bool daemon_is_ready(struct daemon *d);
/* Answer a health path: returns the HTTP status (200 or 503) and fills
 * body for /healthz, /livez and /readyz (path may carry "?verbose"), or
 * returns 0 (body untouched) for any other path. */
int daemon_health(struct daemon *d, const char *path, struct dbuf *body);

#endif
