/* Unit tests for lib/codecs/cri-log and the kubelet API's log rendering
 * (dpulet/dpulet-api.c: what `kubectl logs` shows of a CRI log). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dpulet/dpulet-api.h"
#include "lib/base/util.h"
#include "lib/codecs/cri-log.h"

static void
test_parse_record(void **state)
{
    (void) state;
    const char *l = "2026-12-01T10:00:00.123456789Z stderr P half ";
    struct cri_log_line r;
    assert_int_equal(cri_log_parse(l, strlen(l), &r), 0);
    assert_true(r.is_stderr);
    assert_true(r.partial);
    assert_int_equal(r.msg_len, 5);
    assert_memory_equal(r.msg, "half ", 5);
    assert_int_equal(r.ts_len, 30);
    assert_true(r.ts_ns == 1796119200123456789LL);

    const char *bad[] = {"",
                         "2026-12-01T10:00:00Z",
                         "x stdout F a",
                         "2026-12-01T10:00:00Z stdin F a",
                         "2026-12-01T10:00:00Z stdout X a",
                         "2026-12-01T10:00:00Z stdout Fa",
                         "2026-12-01 10:00:00Z stdout F a"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(cri_log_parse(bad[i], strlen(bad[i]), &r), -EINVAL);
    }
}

static void
test_time(void **state)
{
    (void) state;
    int64_t a, b;
    assert_int_equal(cri_time_parse("2026-12-01T11:30:00.5+01:30", 27, &a), 0);
    assert_int_equal(cri_time_parse("2026-12-01T10:00:00.500Z", 24, &b), 0);
    assert_true(a == b);
    assert_int_equal(cri_time_parse("1970-01-01T00:00:00Z", 20, &a), 0);
    assert_true(a == 0);
    assert_int_equal(cri_time_parse("2026-12-01T10:00:00.Z", 21, &a), -EINVAL);
    assert_int_equal(cri_time_parse("2026-12-01T10:00:00", 19, &a), -EINVAL);
    char buf[40];
    size_t n = cri_time_format(1796119200123456789LL, buf, sizeof buf);
    assert_string_equal(buf, "2026-12-01T10:00:00.123456789Z");
    assert_int_equal(n, 30);
}

static char *
render(const char *in, bool timestamps, int64_t since_ns)
{
    struct dpulet_log_opts o = {.timestamps = timestamps,
                                .tail_lines = -1,
                                .since_ns = since_ns,
                                .limit_bytes = -1};
    struct dbuf out;
    dbuf_init(&out);
    dpulet_log_render(in, strlen(in), &o, &out);
    dbuf_append(&out, "", 1);
    return dbuf_steal(&out, NULL);
}

static void
test_render(void **state)
{
    (void) state;
    const char *log = "2026-12-01T10:00:00Z stdout F one\n"
                      "garbage line\n"
                      "2026-12-01T10:00:01Z stderr P tw\n"
                      "2026-12-01T10:00:02Z stderr F o\n"
                      "2026-12-01T10:00:03Z stdout F three\n"
                      "2026-12-01T10:00:04Z stdout F not yet";
    char *s = render(log, false, 0);
    assert_string_equal(s, "one\ntwo\nthree\n");
    free(s);
    s = render(log, true, 0);
    assert_string_equal(s, "2026-12-01T10:00:00Z one\n"
                           "2026-12-01T10:00:01Z two\n"
                           "2026-12-01T10:00:03Z three\n");
    free(s);
    int64_t since;
    assert_int_equal(cri_time_parse("2026-12-01T10:00:02Z", 20, &since), 0);
    s = render(log, false, since);
    assert_string_equal(s, "o\nthree\n");
    free(s);
}

static void
test_tail(void **state)
{
    (void) state;
    const char *t = "a\nb\nc\npartial";
    size_t len = strlen(t);
    assert_int_equal(dpulet_log_tail_offset(t, len, 0), 6);
    assert_int_equal(dpulet_log_tail_offset(t, len, 1), 4);
    assert_int_equal(dpulet_log_tail_offset(t, len, 2), 2);
    assert_int_equal(dpulet_log_tail_offset(t, len, 3), 0);
    assert_int_equal(dpulet_log_tail_offset(t, len, 10), 0);
    assert_int_equal(dpulet_log_tail_offset("", 0, 1), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_record),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_tail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
