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

#include <jansson.h>

#include "lib/base/base64.h"
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

/* Every value is escaped for logfmt: a quote inside a caller-quoted
 * value, a bare value with spaces, line ends; numbers are untouched. */
static void
test_log_logfmt(void **state)
{
    char path[] = "/tmp/test-log-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(log_set_file(path), 0);
    log_emit(DPF_LOG_ERROR, "t", "say \"hi\"",
             "error=\"%s\" path=%s n=%d x=%.*s z=%zu f=%.1f m=%04o e=%s",
             "a \"quoted\" \\ thing\nline2", "with space", -5, 3, "abcdef",
             (size_t) 7, 1.25, 0660u, "");
    assert_int_equal(log_set_file(NULL), 0);
    char *data;
    size_t len;
    assert_int_equal(file_read_all(path, &data, &len), 0);
    unlink(path);
    const char *want = " level=error module=t msg=\"say \\\"hi\\\"\" "
                       "error=\"a \\\"quoted\\\" \\\\ thing\\nline2\" "
                       "path=\"with space\" n=-5 x=abc z=7 f=1.2 m=0660 "
                       "e=\"\"\n";
    char *at = strstr(data, " level=");
    assert_non_null(at);
    assert_string_equal(at, want);
    free(data);
}

static void
test_base64(void **state)
{
    static const struct {
        const char *plain, *std, *url;
    } v[] = {
        {"", "", ""},
        {"f", "Zg==", "Zg"},
        {"fo", "Zm8=", "Zm8"},
        {"foo", "Zm9v", "Zm9v"},
        {"\xfb\xff", "+/8=", "-_8"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        size_t n = strlen(v[i].plain);
        char *e = base64_encode(v[i].plain, n, BASE64_STD);
        assert_string_equal(e, v[i].std);
        free(e);
        e = base64_encode(v[i].plain, n, BASE64_URL_RAW);
        assert_string_equal(e, v[i].url);
        free(e);
        assert_int_equal(base64_check(v[i].std, strlen(v[i].std)), (long) n);
        char *d;
        size_t dn;
        assert_int_equal(
            base64_decode(v[i].std, strlen(v[i].std), BASE64_STRICT, &d, &dn),
            0);
        assert_int_equal(dn, n);
        assert_memory_equal(d, v[i].plain, n);
        free(d);
        assert_int_equal(
            base64_decode(v[i].url, strlen(v[i].url), BASE64_URL, &d, &dn), 0);
        assert_int_equal(dn, n);
        assert_memory_equal(d, v[i].plain, n);
        free(d);
    }
    /* Go's offsets: the first illegal byte; a short last group points at
     * its start. */
    assert_int_equal(base64_check("Zm9v!A==", 8), -(4 + 1));
    assert_int_equal(base64_check("Zm9vZ", 5), -(4 + 1));
    assert_int_equal(base64_check("Zg=A", 4), -(3 + 1));
    assert_int_equal(base64_check("Zg", 2), -(0 + 1));
    char *d;
    size_t dn;
    assert_int_equal(base64_decode("Zg", 2, BASE64_STRICT, &d, &dn), -EINVAL);
    assert_int_equal(base64_decode("Zm 9v\n", 6, BASE64_LENIENT, &d, &dn), 0);
    assert_string_equal(d, "foo");
    free(d);
    assert_int_equal(base64_decode("Zm 9v", 5, BASE64_URL, &d, &dn), -EINVAL);
    assert_int_equal(base64_decode("Z", 1, BASE64_LENIENT, &d, &dn), -EINVAL);
    assert_int_equal(base64_decode("Zg=g", 4, BASE64_LENIENT, &d, &dn),
                     -EINVAL);
}

/* Our UTF-8 check must agree with jansson's, which decides whether a
 * string can go into a JSON document at all. */
static void
check_utf8_like_jansson(const unsigned char *b, size_t n)
{
    json_t *j = json_stringn((const char *) b, n);
    bool ours = utf8_valid((const char *) b, n);
    if (ours != (j != NULL)) {
        fail_msg("utf8_valid disagrees with jansson on %02x %02x %02x %02x "
                 "(n=%zu)",
                 b[0], n > 1 ? b[1] : 0, n > 2 ? b[2] : 0, n > 3 ? b[3] : 0, n);
    }
    json_decref(j);
}

static void
test_utf8(void **state)
{
    unsigned char b[4];
    for (unsigned i = 1; i < 256; i++) {
        b[0] = (unsigned char) i;
        check_utf8_like_jansson(b, 1);
        for (unsigned j = 1; j < 256; j++) {
            b[1] = (unsigned char) j;
            check_utf8_like_jansson(b, 2);
        }
    }
    static const unsigned char tails[] = {0x41, 0x80, 0x8f, 0x90,
                                          0x9f, 0xa0, 0xbf, 0xc0};
    for (unsigned i = 0xe0; i < 0x100; i++) {
        for (unsigned j = 0x80; j < 0xc1; j++) {
            for (size_t t = 0; t < ARRAY_SIZE(tails); t++) {
                b[0] = (unsigned char) i;
                b[1] = (unsigned char) j;
                b[2] = tails[t];
                check_utf8_like_jansson(b, 3);
                b[3] = 0x80;
                check_utf8_like_jansson(b, 4);
                b[2] = 0x80;
                b[3] = tails[t];
                check_utf8_like_jansson(b, 4);
            }
        }
    }

    /* cutting: never inside a character */
    const char *e = "a\xc3\xa9\xf0\x9f\x98\x80z"; /* a é 😀 z */
    size_t n = strlen(e);
    static const size_t want[] = {0, 1, 1, 3, 3, 3, 3, 7, 8};
    for (size_t max = 0; max <= n; max++) {
        assert_int_equal(utf8_prefix(e, n, max), want[max]);
    }
    assert_int_equal(utf8_prefix(e, n, 100), n);
    /* stray continuation bytes are not a character to protect */
    assert_int_equal(utf8_prefix("a\x80\x80\x80\x80", 5, 3), 3);
    char buf[5];
    utf8_copy(buf, sizeof buf, e);
    assert_string_equal(buf, "a\xc3\xa9");
    utf8_copy(buf, 1, e);
    assert_string_equal(buf, "");
    char big[600];
    char src[601];
    for (size_t i = 0; i < 300; i++) {
        memcpy(src + 2 * i, "\xc3\xa9", 2);
    }
    src[600] = '\0';
    utf8_copy(big, 256, src);
    assert_int_equal(strlen(big), 254);
    assert_true(utf8_valid(big, strlen(big)));

    /* sanitizing: invalid bytes become U+FFFD, a cut tail is dropped */
    size_t len;
    char *t = utf8_sanitize("ok", 2, &len);
    assert_string_equal(t, "ok");
    assert_int_equal(len, 2);
    free(t);
    t = utf8_sanitize("a\xff"
                      "b\xed\xa0\x80"
                      "c",
                      7, &len);
    assert_string_equal(t, "a\xef\xbf\xbd"
                           "b\xef\xbf\xbd\xef\xbf\xbd"
                           "\xef\xbf\xbd"
                           "c");
    assert_true(utf8_valid(t, len));
    free(t);
    t = utf8_sanitize("x\xc3\xa9\xe2\x82", 5, &len);
    assert_string_equal(t, "x\xc3\xa9");
    free(t);
    t = utf8_sanitize("", 0, &len);
    assert_string_equal(t, "");
    assert_int_equal(len, 0);
    free(t);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dbuf),        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_file_atomic), cmocka_unit_test(test_error),
        cmocka_unit_test(test_log_levels),  cmocka_unit_test(test_log_logfmt),
        cmocka_unit_test(test_base64),      cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
