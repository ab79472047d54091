/* Unit tests for the base modules: util, log, error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/error.h"
#include "lib/base/log.h"
#include "lib/base/util.h"

static void
test_dbuf(void **state)
{
    struct dbuf b;
    dbuf_init(&b);
    for (int i = 0; i < 1000; i++) {
        dbuf_printf(&b, "%d,", i);
    }
    assert_int_equal(strncmp(b.data, "0,1,2,", 6), 0);
    assert_true(str_has_suffix(b.data, "998,999,"));
    size_t len;
    char *s = dbuf_steal(&b, &len);
    assert_int_equal(len, strlen(s));
    assert_null(b.data);
    free(s);
}

static void
test_strings(void **state)
{
    assert_true(str_has_prefix("/apis/x", "/apis/"));
    assert_false(str_has_prefix("/api", "/apis"));
    char *s = xasprintf("%s-%d", "a", 7);
    assert_string_equal(s, "a-7");
    free(s);
    char buf[32];
    time_format_rfc3339(0, buf, sizeof buf);
    assert_string_equal(buf, "1970-01-01T00:00:00Z");
}

static void
test_file_atomic(void **state)
{
    char dir[] = "/tmp/dpf-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *sub = xasprintf("%s/a/b/c", dir);
    assert_int_equal(dir_create_all(sub, 0700), 0);
    char *path = xasprintf("%s/f", sub);
    assert_int_equal(file_write_atomic(path, "hello", 5, 0600), 0);
    char *data;
    size_t len;
    assert_int_equal(file_read_all(path, &data, &len), 0);
    assert_int_equal(len, 5);
    assert_string_equal(data, "hello");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(file_read_all("/nonexistent/x", &data, &len) == -ENOENT,
                     1);
    free(data);
    free(path);
    free(sub);
    char *cmd = xasprintf("rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

static void
test_error(void **state)
{
    struct dpf_error err;
    dpf_error_clear(&err);
    assert_false(dpf_error_is_set(&err));
    dpf_error_set(&err, 422, "Invalid", "DPU \"%s\" is invalid", "d1");
    dpf_error_add_cause(&err, DPF_CAUSE_REQUIRED, "spec.nodeName",
                        "Required value");
    assert_true(dpf_error_is_set(&err));
    assert_int_equal(err.n_causes, 1);
    assert_string_equal(err.causes[0].field, "spec.nodeName");
    for (int i = 0; i < 100; i++) {
        dpf_error_add_cause(&err, DPF_CAUSE_INVALID, "x", "y");
    }
    assert_int_equal(err.n_causes, DPF_ERROR_MAX_CAUSES);
    dpf_error_set(NULL, 1, "x", "ignored");
}

static void
test_log_levels(void **state)
{
    assert_int_equal(log_set_level_name("debug"), 0);
    assert_true(log_enabled(DPF_LOG_DEBUG));
    assert_int_equal(log_set_level_name("bogus"), -EINVAL);
    assert_int_equal(log_set_level_name("warn"), 0);
    assert_false(log_enabled(DPF_LOG_INFO));
    log_set_level(DPF_LOG_INFO);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dbuf),        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_file_atomic), cmocka_unit_test(test_error),
        cmocka_unit_test(test_log_levels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
