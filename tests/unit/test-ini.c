/* Unit tests for lib/ini: sections, repeated keys, comments, errors with
 * line numbers, value helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/ini.h"
#include "lib/base/util.h"

static struct ini *
parse(const char *text, struct dpf_error *err)
{
    dpf_error_clear(err);
    return ini_parse(text, strlen(text), "t.ini", err);
}

static void
test_basic(void **state)
{
    struct dpf_error err;
    const char *text = "# comment\n"
                       "update = 1000\n"
                       "  ; another comment\n"
                       "\n"
                       "enable-provider=sysfs\r\n"
                       "enable-provider=ethtool\n"
                       "prometheus=http://0.0.0.0:9100\n"
                       "weird=a=b#c\n"
                       "quoted=\"  spaced  \"\n"
                       "empty=\n"
                       "[global_labels]\n"
                       "pod = p1\n"
                       "[ device_labels ]\n"
                       "0000:03:00.0=rail|1|plane|2\n"
                       "[global_labels]\n"
                       "rack=r7";
    struct ini *ini = parse(text, &err);
    assert_non_null(ini);
    assert_string_equal(ini_get(ini, "", "update"), "1000");
    assert_string_equal(ini_get(ini, NULL, "prometheus"),
                        "http://0.0.0.0:9100");
    assert_string_equal(ini_get(ini, "", "weird"), "a=b#c");
    assert_string_equal(ini_get(ini, "", "quoted"), "  spaced  ");
    assert_string_equal(ini_get(ini, "", "empty"), "");
    assert_null(ini_get(ini, "", "missing"));
    assert_null(ini_get(ini, "global_labels", "update"));
    assert_string_equal(ini_get(ini, "global_labels", "pod"), "p1");
    assert_string_equal(ini_get(ini, "global_labels", "rack"), "r7");
    assert_string_equal(ini_get(ini, "device_labels", "0000:03:00.0"),
                        "rail|1|plane|2");
    assert_true(ini_has_section(ini, "device_labels"));
    assert_false(ini_has_section(ini, "nope"));
    assert_int_equal(ini->n_sections, 2); /* global, device */

    /* Repeated keys in order. */
    const struct ini_entry *e = ini_next(ini, "", "enable-provider", NULL);
    assert_non_null(e);
    assert_string_equal(e->value, "sysfs");
    assert_int_equal(e->line, 5);
    e = ini_next(ini, "", "enable-provider", e);
    assert_non_null(e);
    assert_string_equal(e->value, "ethtool");
    assert_int_equal(e->line, 6);
    assert_null(ini_next(ini, "", "enable-provider", e));

    /* Whole-section iteration. */
    size_t n = 0;
    for (e = ini_next(ini, "global_labels", NULL, NULL); e;
         e = ini_next(ini, "global_labels", NULL, e)) {
        n++;
    }
    assert_int_equal(n, 2);
    ini_free(ini);
}

static void
test_last_wins(void **state)
{
    struct dpf_error err;
    struct ini *ini = parse("a=1\na=2\n", &err);
    assert_non_null(ini);
    assert_string_equal(ini_get(ini, "", "a"), "2");
    assert_int_equal(ini_find(ini, "", "a")->line, 2);
    ini_free(ini);
}

static void
expect_error(const char *text, unsigned line)
{
    struct dpf_error err;
    struct ini *ini = parse(text, &err);
    assert_null(ini);
    assert_true(dpf_error_is_set(&err));
    assert_int_equal(err.code, 400);
    char want[64];
    snprintf(want, sizeof want, "t.ini:%u: ", line);
    if (strncmp(err.message, want, strlen(want)) != 0) {
        fail_msg("message %s does not start with %s", err.message, want);
    }
    assert_int_equal(err.n_causes, 1);
    snprintf(want, sizeof want, "line %u", line);
    assert_string_equal(err.causes[0].field, want);
}

static void
test_errors(void **state)
{
    expect_error("update=1\nthis is not valid\n", 2);
    expect_error("a=1\n\n[section\n", 3);
    expect_error("[]\n", 1);
    expect_error("=value\n", 1);
    expect_error("bad key=1\n", 1);
    char nul[] = "a=1\nb=\0x\n";
    struct dpf_error err;
    assert_null(ini_parse(nul, sizeof nul - 1, "t.ini", &err));
    assert_non_null(strstr(err.message, ":2:"));
}

static void
test_empty(void **state)
{
    struct dpf_error err;
    struct ini *ini = parse("", &err);
    assert_non_null(ini);
    assert_int_equal(ini->n_entries, 0);
    ini_free(ini);
    ini = parse("\n\n# only comments\n", &err);
    assert_non_null(ini);
    assert_int_equal(ini->n_entries, 0);
    ini_free(ini);
}

static void
test_load(void **state)
{
    char path[] = "/tmp/dpf-ini-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "k=v\n", 4), 4);
    close(fd);
    struct dpf_error err;
    dpf_error_clear(&err);
    struct ini *ini = ini_load(path, &err);
    assert_non_null(ini);
    assert_string_equal(ini_get(ini, "", "k"), "v");
    ini_free(ini);
    unlink(path);
    dpf_error_clear(&err);
    assert_null(ini_load(path, &err));
    assert_int_equal(err.code, 404);
}

static void
test_values(void **state)
{
    bool b = false;
    assert_int_equal(ini_parse_bool("Yes", &b), 0);
    assert_true(b);
    assert_int_equal(ini_parse_bool("0", &b), 0);
    assert_false(b);
    assert_int_equal(ini_parse_bool("disabled", &b), 0);
    assert_false(b);
    assert_int_equal(ini_parse_bool("maybe", &b), -EINVAL);
    long v = 0;
    assert_int_equal(ini_parse_long("1000", 1, 100000, &v), 0);
    assert_int_equal(v, 1000);
    assert_int_equal(ini_parse_long("0", 1, 10, &v), -ERANGE);
    assert_int_equal(ini_parse_long("12abc", 1, 100, &v), -EINVAL);
    assert_int_equal(ini_parse_long("", 1, 100, &v), -EINVAL);
    assert_int_equal(ini_parse_long("99999999999999999999", 1, 100, &v),
                     -ERANGE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),  cmocka_unit_test(test_last_wins),
        cmocka_unit_test(test_errors), cmocka_unit_test(test_empty),
        cmocka_unit_test(test_load),   cmocka_unit_test(test_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
