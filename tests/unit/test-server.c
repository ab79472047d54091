/* Unit tests for dpf-server/server.c: command-line parsing. (The gate,
 * PKI bootstrap and signals are exercised end to end by
 * tests/system/test_server_security.py.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpf-server/server.h"

/* Parse a NULL-terminated argument list; output and errors go to buffers. */
static int
parse(struct server_options *o, char *out, char *errbuf, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    va_start(ap, errbuf);
    argv[argc++] = "dpf-server";
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && argc < 31) {
        argv[argc++] = (char *) a;
    }
    va_end(ap);
    argv[argc] = NULL;
    FILE *fo = fmemopen(out, 4096, "w");
    FILE *fe = fmemopen(errbuf, 4096, "w");
    server_options_init(o);
    int r = server_options_parse(o, argc, argv, fo, fe);
    fclose(fo);
    fclose(fe);
    return r;
}

static void
test_defaults(void **state)
{
    char out[4096] = "", err[4096] = "";
    struct server_options o;
    assert_int_equal(parse(&o, out, err, (char *) NULL), 0);
    assert_string_equal(o.data_dir, "/var/lib/dpf");
    assert_string_equal(o.bind_address, "0.0.0.0");
    assert_int_equal(o.port, 6443);
    assert_int_equal(o.threads, 4);
    assert_int_equal(o.watch_cache_size, 100000);
    assert_false(o.insecure_dev);
    assert_null(o.store_url);
    assert_null(o.kubeconfig_out);
    assert_string_equal(o.log_level, "info");
    server_options_free(&o);
}

static void
test_all_options(void **state)
{
    char out[4096] = "", err[4096] = "";
    struct server_options o;
    assert_int_equal(parse(&o, out, err, "--data-dir", "/tmp/x", "--store",
                           "sqlite:/tmp/y.db", "--bind-address", "127.0.0.1",
                           "--port", "0", "--kubeconfig-out", "/tmp/kc",
                           "--server-name", "a.example", "--server-name",
                           "10.0.0.1", "--threads", "8", "--watch-cache-size",
                           "500", "--log-level", "debug", "--log-file",
                           "/tmp/log", (char *) NULL),
                     0);
    assert_string_equal(o.data_dir, "/tmp/x");
    assert_string_equal(o.store_url, "sqlite:/tmp/y.db");
    assert_string_equal(o.bind_address, "127.0.0.1");
    assert_int_equal(o.port, 0);
    assert_string_equal(o.kubeconfig_out, "/tmp/kc");
    assert_int_equal(o.n_server_names, 2);
    assert_string_equal(o.server_names[0], "a.example");
    assert_string_equal(o.server_names[1], "10.0.0.1");
    assert_int_equal(o.threads, 8);
    assert_int_equal(o.watch_cache_size, 500);
    assert_string_equal(o.log_level, "debug");
    assert_string_equal(o.log_file, "/tmp/log");
    assert_false(o.insecure_dev);
    server_options_free(&o);

    /* watch memory bounds: defaults, plain bytes and Ki/Mi/Gi */
    assert_int_equal(parse(&o, out, err, (char *) NULL), 0);
    assert_int_equal(o.watch_cache_bytes, 32u << 20);
    assert_int_equal(o.watch_buffer_bytes, 16u << 20);
    assert_int_equal(o.watch_buffer_total_bytes, 128u << 20);
    assert_int_equal(o.event_ttl_ms, 3600 * 1000); /* kube-apiserver's */
    server_options_free(&o);
    assert_int_equal(parse(&o, out, err, "--event-ttl", "90s", (char *) NULL),
                     0);
    assert_int_equal(o.event_ttl_ms, 90 * 1000);
    server_options_free(&o);
    assert_int_equal(parse(&o, out, err, "--event-ttl=0", (char *) NULL), 0);
    assert_int_equal(o.event_ttl_ms, 0);
    server_options_free(&o);
    assert_int_equal(parse(&o, out, err, "--watch-cache-bytes", "48Mi",
                           "--watch-buffer-bytes", "4194304",
                           "--watch-buffer-total-bytes=1Gi", (char *) NULL),
                     0);
    assert_int_equal(o.watch_cache_bytes, 48u << 20);
    assert_int_equal(o.watch_buffer_bytes, 4u << 20);
    assert_int_equal(o.watch_buffer_total_bytes, 1u << 30);
    server_options_free(&o);

    assert_int_equal(
        parse(&o, out, err, "--insecure-dev", "--port=7000", (char *) NULL), 0);
    assert_true(o.insecure_dev);
    assert_int_equal(o.port, 7000);
    server_options_free(&o);
}

static void
test_help_and_version(void **state)
{
    char out[4096] = "", err[4096] = "";
    struct server_options o;
    assert_int_equal(parse(&o, out, err, "--help", (char *) NULL), 1);
    assert_non_null(strstr(out, "Usage: dpf-server"));
    assert_non_null(strstr(out, "--insecure-dev"));
    server_options_free(&o);
    assert_int_equal(parse(&o, out, err, "--version", (char *) NULL), 1);
    assert_true(strncmp(out, "dpf-server ", 11) == 0);
    server_options_free(&o);
}

static void
test_bad_arguments(void **state)
{
    static const char *const bad[][3] = {
        {"--port", "65536", "--port"},
        {"--port", "-1", "--port"},
        {"--port", "12x", "--port"},
        {"--threads", "0", "--threads"},
        {"--watch-cache-size", "none", "--watch-cache-size"},
        {"--watch-cache-bytes", "12", "--watch-cache-bytes"},
        {"--watch-buffer-bytes", "4Xi", "--watch-buffer-bytes"},
        {"--watch-buffer-total-bytes", "-1", "--watch-buffer-total-bytes"},
        {"--watch-buffer-bytes", "200Mi", "--watch-buffer-total-bytes"},
        {"--event-ttl", "soon", "--event-ttl"},
        {"--event-ttl", "-1h", "--event-ttl"},
        {"--log-level", "verbose", "--log-level"},
        {"--server-name", "a,b", "--server-name"},
        {"--bogus", NULL, "--bogus"},
        {"extra", NULL, "extra"},
        {"--data-dir", "", "--data-dir"},
        {"--port", NULL, "--port"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char out[4096] = "", err[4096] = "";
        struct server_options o;
        assert_int_equal(
            parse(&o, out, err, bad[i][0], bad[i][1], (char *) NULL), -EINVAL);
        /* The message names what was wrong. */
        assert_non_null(strstr(err, bad[i][2]));
        server_options_free(&o);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_all_options),
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
