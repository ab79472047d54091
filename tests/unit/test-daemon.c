/* Unit tests for lib/base/daemon: flags, exit codes, start/stop hooks and
 * the health answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/daemon.h"
#include "lib/base/loop.h"

struct probe {
    const char *dir;   /* --dir value */
    bool verbose;      /* --verbose */
    int started;       /* start hook calls */
    int stopped;       /* stop hook calls */
    bool fail_start;   /* start hook fails */
    char health[512];  /* /readyz?verbose body seen while running */
    int ready_status;  /* its status */
    int health_status; /* /healthz status */
    int other_status;  /* status for a non-health path */
};

static int
probe_set_dir(void *arg, const char *v, struct dpf_error *err)
{
    if (!*v) {
        dpf_error_set(err, 400, "BadRequest", "must not be empty");
        return -EINVAL;
    }
    ((struct probe *) arg)->dir = v;
    return 0;
}

static int
probe_set_verbose(void *arg, const char *v, struct dpf_error *err)
{
    ((struct probe *) arg)->verbose = true;
    return 0;
}

static void
probe_tick(void *arg, struct loop_timer *t)
{
    daemon_stop(arg);
}

static int
probe_start(void *arg, struct daemon *d, struct dpf_error *err)
{
    struct probe *p = arg;
    p->started++;
    if (p->fail_start) {
        dpf_error_set(err, 500, "InternalError", "probe refuses");
        return -EIO;
    }
    struct dbuf b;
    dbuf_init(&b);
    /* Not ready until a check says so. */
    assert_int_equal(daemon_health(d, "/readyz", &b), 503);
    dbuf_free(&b);
    daemon_set_ready(d, "store", true, NULL);
    daemon_set_ready(d, "informers", false, "configmaps not synced");
    dbuf_init(&b);
    p->ready_status = daemon_health(d, "/readyz?verbose", &b);
    snprintf(p->health, sizeof p->health, "%s", b.data ? b.data : "");
    dbuf_free(&b);
    daemon_set_ready(d, "informers", true, NULL);
    assert_true(daemon_is_ready(d));
    dbuf_init(&b);
    p->health_status = daemon_health(d, "/healthz", &b);
    p->other_status = daemon_health(d, "/metrics", &b);
    dbuf_free(&b);
    loop_timer_add(daemon_loop(d), 1, 0, probe_tick, d);
    return 0;
}

static void
probe_stop(void *arg)
{
    ((struct probe *) arg)->stopped++;
}

static const struct daemon_flag probe_flags[] = {
    {"dir", "DIR", "a directory", probe_set_dir},
    {"verbose", NULL, "say more", probe_set_verbose},
    {NULL, NULL, NULL, NULL},
};

static int
probe_run(struct probe *p, int argc, char **argv)
{
    const struct daemon_spec spec = {
        .name = "probe",
        .summary = "a test daemon",
        .flags = probe_flags,
        .arg = p,
        .start = probe_start,
        .stop = probe_stop,
    };
    return daemon_main(&spec, argc, argv);
}

static void
test_run_and_health(void **state)
{
    struct probe p = {0};
    char *argv[] = {"probe",       "--dir", "/x", "--verbose",
                    "--log-level", "warn",  NULL};
    assert_int_equal(probe_run(&p, 6, argv), 0);
    assert_string_equal(p.dir, "/x");
    assert_true(p.verbose);
    assert_int_equal(p.started, 1);
    assert_int_equal(p.stopped, 1);
    assert_int_equal(p.ready_status, 503);
    assert_non_null(strstr(p.health, "[+]store ok\n"));
    assert_non_null(
        strstr(p.health, "[-]informers failed: configmaps not synced\n"));
    assert_non_null(strstr(p.health, "readyz check failed\n"));
    assert_int_equal(p.health_status, 200);
    assert_int_equal(p.other_status, 0);
}

static void
test_usage_errors(void **state)
{
    struct probe p = {0};
    char *bad_flag[] = {"probe", "--nope", NULL};
    assert_int_equal(probe_run(&p, 2, bad_flag), 2);
    char *no_value[] = {"probe", "--dir", NULL};
    assert_int_equal(probe_run(&p, 2, no_value), 2);
    char *bad_value[] = {"probe", "--dir=", NULL};
    assert_int_equal(probe_run(&p, 2, bad_value), 2);
    char *bad_level[] = {"probe", "--log-level", "loud", NULL};
    assert_int_equal(probe_run(&p, 3, bad_level), 2);
    char *extra[] = {"probe", "stray", NULL};
    assert_int_equal(probe_run(&p, 2, extra), 2);
    assert_int_equal(p.started, 0);
    char *help[] = {"probe", "--help", NULL};
    assert_int_equal(probe_run(&p, 2, help), 0);
    char *version[] = {"probe", "--version", NULL};
    assert_int_equal(probe_run(&p, 2, version), 0);
    assert_int_equal(p.started, 0);
}

static void
test_start_failure(void **state)
{
    struct probe p = {.fail_start = true};
    char *argv[] = {"probe", "--log-level", "error", NULL};
    assert_int_equal(probe_run(&p, 3, argv), 1);
    assert_int_equal(p.started, 1);
    assert_int_equal(p.stopped, 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_and_health),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_start_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
