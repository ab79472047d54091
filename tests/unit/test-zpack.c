/* Unit tests for zpack: small texts deflated against a dictionary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/codecs/zpack.h"

static void
object(char *buf, size_t cap, int i)
{
    snprintf(buf, cap,
             "{\"apiVersion\":\"provisioning.dpu.nvidia.com/v1alpha1\","
             "\"kind\":\"DPU\",\"metadata\":{\"name\":\"dpu-%04d\","
             "\"namespace\":\"dpf-operator-system\",\"labels\":{"
             "\"provisioning.dpu.nvidia.com/dpuset-name\":\"set\"}},"
             "\"spec\":{\"nodeName\":\"host-%04d\",\"bfb\":\"bf-bundle\"},"
             "\"status\":{\"phase\":\"Ready\"}}",
             i, i);
}

/* Packed against a sibling, an object comes back byte for byte, much
 * smaller than plain deflate makes it; the header room is left free. */
static void
test_round_trip(void **state)
{
    (void) state;
    struct zpack *z = zpack_create();
    assert_non_null(z);
    char dict[512], text[512];
    object(dict, sizeof dict, 0);
    object(text, sizeof text, 1234);
    size_t len = strlen(text), n = 0, n_plain = 0;
    char *p = zpack_pack(z, dict, strlen(dict), text, len, 16, &n);
    assert_non_null(p);
    char *q = zpack_pack(z, NULL, 0, text, len, 0, &n_plain);
    assert_non_null(q);
    assert_true(n * 4 < n_plain); /* the dictionary does the work */
    char out[512];
    assert_int_equal(zpack_unpack(dict, strlen(dict), p + 16, n, out, len), 0);
    assert_string_equal(out, text);
    assert_int_equal(zpack_unpack(NULL, 0, q, n_plain, out, len), 0);
    assert_string_equal(out, text);
    free(p);
    free(q);
    zpack_destroy(z);
}

/* Bytes that do not inflate to exactly the length asked for are refused,
 * and the output stays a terminated string. */
static void
test_refused(void **state)
{
    (void) state;
    struct zpack *z = zpack_create();
    char dict[512], text[512], out[512];
    object(dict, sizeof dict, 0);
    object(text, sizeof text, 7);
    size_t len = strlen(text), n = 0;
    char *p = zpack_pack(z, dict, strlen(dict), text, len, 0, &n);
    assert_non_null(p);
    /* wrong length, either way */
    assert_int_equal(zpack_unpack(dict, strlen(dict), p, n, out, len - 1),
                     -EINVAL);
    assert_int_equal(strlen(out), len - 1);
    assert_int_equal(zpack_unpack(dict, strlen(dict), p, n, out, len + 1),
                     -EINVAL);
    /* cut short, or garbage */
    assert_int_equal(zpack_unpack(dict, strlen(dict), p, n / 2, out, len),
                     -EINVAL);
    char junk[64];
    memset(junk, 0xff, sizeof junk);
    assert_int_equal(
        zpack_unpack(dict, strlen(dict), junk, sizeof junk, out, len), -EINVAL);
    /* another dictionary: not the same text back */
    char other[512];
    snprintf(other, sizeof other, "%s", "{\"unrelated\":true}");
    int r = zpack_unpack(other, strlen(other), p, n, out, len);
    assert_true(r < 0 || strcmp(out, text) != 0);
    free(p);
    zpack_destroy(z);
}

/* Not worth it: short texts and texts that do not shrink by an eighth
 * stay plain (NULL). */
static void
test_not_worth_it(void **state)
{
    (void) state;
    struct zpack *z = zpack_create();
    size_t n = 0;
    assert_null(zpack_pack(z, NULL, 0, "{\"a\":1}", 7, 0, &n));
    char noise[1024];
    unsigned x = 12345;
    for (size_t i = 0; i < sizeof noise; i++) {
        x = x * 1103515245u + 12345u;
        noise[i] = (char) (x >> 16);
    }
    assert_null(zpack_pack(z, NULL, 0, noise, sizeof noise, 0, &n));
    assert_null(zpack_pack(NULL, NULL, 0, noise, sizeof noise, 0, &n));
    zpack_destroy(z);
    zpack_destroy(NULL);
}

/* A dictionary longer than zlib's window counts by its last 32 KiB, on
 * both sides. */
static void
test_long_dictionary(void **state)
{
    (void) state;
    struct zpack *z = zpack_create();
    size_t dl = ZPACK_DICT_MAX + 5000;
    char *dict = malloc(dl);
    memset(dict, 'x', dl);
    char text[512], out[512];
    object(text, sizeof text, 42);
    memcpy(dict + dl - strlen(text), text, strlen(text));
    size_t len = strlen(text), n = 0;
    char *p = zpack_pack(z, dict, dl, text, len, 0, &n);
    assert_non_null(p);
    assert_true(n < 32);
    assert_int_equal(zpack_unpack(dict, dl, p, n, out, len), 0);
    assert_string_equal(out, text);
    free(p);
    free(dict);
    zpack_destroy(z);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_not_worth_it),
        cmocka_unit_test(test_long_dictionary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
