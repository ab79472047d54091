/* Unit tests for the apiserver's pure helpers: resourceVersion injection,
 * HumanDuration, and the admission path (decode, type checks, prune,
 * default, validate) on real schema kinds. The HTTP-facing behaviour is
 * covered by tests/system/test_api_*.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpf-server/apiserver-private.h"

static void
check_inject(const char *in, const char *want)
{
    size_t len;
    char *out = as_inject_rv(in, strlen(in), 42, &len);
    assert_string_equal(out, want);
    assert_int_equal(len, strlen(want));
    free(out);
}

static void
test_inject_rv(void **state)
{
    check_inject("{\"metadata\":{}}",
                 "{\"metadata\":{\"resourceVersion\":\"42\"}}");
    check_inject("{\"kind\":\"X\",\"metadata\":{\"name\":\"a\"}}",
                 "{\"kind\":\"X\",\"metadata\":{\"resourceVersion\":\"42\","
                 "\"name\":\"a\"}}");
    /* a nested or quoted "metadata" is not the object's metadata */
    check_inject("{\"spec\":{\"metadata\":{}},\"k\\\"metadata\":{},"
                 "\"metadata\":{\"name\":\"b\"}}",
                 "{\"spec\":{\"metadata\":{}},\"k\\\"metadata\":{},"
                 "\"metadata\":{\"resourceVersion\":\"42\",\"name\":\"b\"}}");
    check_inject("{\"data\":{\"x\":\"\\\"metadata\\\":{\"},\"metadata\" : "
                 "{ }}",
                 "{\"data\":{\"x\":\"\\\"metadata\\\":{\"},\"metadata\" : "
                 "{\"resourceVersion\":\"42\" }}");
    /* no metadata: made, as the watch cache makes it (one function) */
    check_inject("{\"a\":1}",
                 "{\"metadata\":{\"resourceVersion\":\"42\"},\"a\":1}");
    /* not an object: unchanged */
    check_inject("[1]", "[1]");
}

static void
check_labels(const char *in, const char *want)
{
    json_t *o = as_load_labels(in, strlen(in));
    json_t *l = json_object_get(json_object_get(o, "metadata"), "labels");
    char *got = l ? json_dumps(l, JSON_COMPACT) : NULL;
    if (want) {
        assert_non_null(got);
        assert_string_equal(got, want);
    } else {
        assert_null(got);
    }
    free(got);
    json_decref(o);
}

static void
test_load_labels(void **state)
{
    check_labels("{\"metadata\":{\"name\":\"a\",\"labels\":{\"x\":\"y\"}}}",
                 "{\"x\":\"y\"}");
    check_labels("{\"spec\":{\"labels\":{\"no\":\"1\"}},\"metadata\":{"
                 "\"annotations\":{\"labels\":\"{\\\"q\\\":1}\"},"
                 "\"generation\":3,\"finalizers\":[\"a\",{\"b\":[1]}],"
                 "\"labels\" : {\"k\":\"v\",\"z\":\"}\"}}}",
                 "{\"k\":\"v\",\"z\":\"}\"}");
    check_labels("{\"metadata\":{\"name\":\"a\"},\"labels\":{\"x\":\"y\"}}",
                 NULL);
    check_labels("{\"metadata\":{\"name\":", NULL);
    check_labels("garbage", NULL);
}

static void
test_human_duration(void **state)
{
    static const struct {
        int64_t s;
        const char *want;
    } cases[] = {
        {-5, "<invalid>"}, {-1, "0s"},
        {0, "0s"},         {59, "59s"},
        {119, "119s"},     {120, "2m"},
        {125, "2m5s"},     {600, "10m"},
        {10799, "179m"},   {10800, "3h"},
        {11000, "3h3m"},   {28800, "8h"},
        {172800, "2d"},    {180000, "2d2h"},
        {800000, "9d"},    {86400 * 365 * 3, "3y"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char buf[32];
        as_human_duration(cases[i].s, buf, sizeof(buf));
        assert_string_equal(buf, cases[i].want);
    }
}

static const struct schema_kind *
kind(const char *av, const char *k)
{
    const struct schema_kind *sk = schema_find_kind(av, k);
    assert_non_null(sk);
    return sk;
}

static void
test_admit(void **state)
{
    const struct schema_kind *cm = kind("v1", "ConfigMap");
    json_t *obj = NULL, *warnings = NULL;
    struct as_error ae = {0};
    const char *good = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
                       "\"metadata\":{\"generateName\":\"g-\"},"
                       "\"data\":{\"a\":\"b\"},\"bogus\":1}";
    assert_int_equal(as_admit_create(cm, "default", good, strlen(good),
                                     "application/json", "Warn", &obj,
                                     &warnings, &ae),
                     0);
    const char *name = json_string_value(
        json_object_get(json_object_get(obj, "metadata"), "name"));
    assert_true(name && strlen(name) == 7 && !strncmp(name, "g-", 2));
    assert_null(json_object_get(obj, "bogus"));
    assert_true(json_array_size(warnings) == 1);
    json_decref(obj);
    json_decref(warnings);
    warnings = NULL;

    memset(&ae, 0, sizeof(ae));
    assert_true(as_admit_create(cm, "default", good, strlen(good),
                                "application/json", "Strict", &obj, NULL,
                                &ae) < 0);
    assert_int_equal(ae.e.code, 400);
    assert_non_null(strstr(ae.e.message, "bogus"));

    const char *other_ns = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
                           "\"metadata\":{\"name\":\"a\",\"namespace\":"
                           "\"x\"}}";
    memset(&ae, 0, sizeof(ae));
    assert_true(as_admit_create(cm, "default", other_ns, strlen(other_ns),
                                "application/json", NULL, &obj, NULL, &ae) < 0);
    assert_int_equal(ae.e.code, 400);

    const char *yaml = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\n";
    memset(&ae, 0, sizeof(ae));
    assert_true(as_admit_create(cm, "default", yaml, strlen(yaml),
                                "application/yaml", NULL, &obj, NULL, &ae) < 0);
    assert_int_equal(ae.e.code, 400);
    assert_non_null(strstr(ae.e.message, "kind"));

    memset(&ae, 0, sizeof(ae));
    assert_true(as_admit_create(cm, "default", yaml, strlen(yaml), "text/plain",
                                NULL, &obj, NULL, &ae) < 0);
    assert_int_equal(ae.e.code, 415);

    const struct schema_kind *bfb =
        kind("provisioning.dpu.nvidia.com/v1alpha1", "BFB");
    const char *bad = "{\"apiVersion\":\"provisioning.dpu.nvidia.com/"
                      "v1alpha1\",\"kind\":\"BFB\",\"metadata\":{\"name\":"
                      "\"b\"},\"spec\":{\"url\":\"ftp://x/y.bfb\"}}";
    memset(&ae, 0, sizeof(ae));
    assert_true(as_admit_create(bfb, "default", bad, strlen(bad),
                                "application/json", NULL, &obj, NULL, &ae) < 0);
    assert_int_equal(ae.e.code, 422);
    assert_string_equal(ae.d.kind, "BFB");
    assert_true(ae.e.n_causes >= 1);
    assert_string_equal(ae.e.causes[0].field, "spec.url");
}

/* Whatever bytes an error holds, its Status is valid JSON that keeps the
 * code, the reason and every cause. */
static void
test_status_bad_text(void **state)
{
    struct as_error ae = {0};
    /* a message quoting raw bytes, a name cut in the middle of "é" */
    as_error_set(&ae, 404, "NotFound", "configmaps \"\xff\xfe\" not found");
    memset(ae.d.name, 0, sizeof(ae.d.name));
    memcpy(ae.d.name, "ab\xc3", 3);
    snprintf(ae.d.kind, sizeof(ae.d.kind), "configmaps");
    dpf_error_add_cause(&ae.e, DPF_CAUSE_INVALID, "data[\xc3\xa9\xc3]",
                        "bad \xed\xa0\x80 value");
    size_t len;
    char *text = as_status_text(&ae, &len);
    assert_int_equal(len, strlen(text));
    json_error_t jerr;
    json_t *st = json_loads(text, 0, &jerr);
    assert_non_null(st);
    assert_int_equal(json_integer_value(json_object_get(st, "code")), 404);
    assert_string_equal(json_string_value(json_object_get(st, "reason")),
                        "NotFound");
    assert_string_equal(json_string_value(json_object_get(st, "message")),
                        "configmaps \"\xef\xbf\xbd\xef\xbf\xbd\" not found");
    json_t *det = json_object_get(st, "details");
    /* the cut character is dropped, not replaced */
    assert_string_equal(json_string_value(json_object_get(det, "name")), "ab");
    json_t *c = json_array_get(json_object_get(det, "causes"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "field")),
                        "data[\xc3\xa9\xef\xbf\xbd]");
    assert_string_equal(json_string_value(json_object_get(c, "reason")),
                        DPF_CAUSE_INVALID);
    json_decref(st);
    free(text);
}

/* A message that quotes a long multibyte text is cut between
 * characters, never inside one. */
static void
test_error_cut_on_character(void **state)
{
    char name[2001];
    for (size_t i = 0; i < 1000; i++) {
        memcpy(name + 2 * i, "\xc3\xa9", 2);
    }
    name[2000] = '\0';
    for (size_t shift = 0; shift < 4; shift++) {
        struct as_error ae = {0};
        as_error_set(&ae, 400, "BadRequest", "%.*sthe kind in the data (%s)",
                     (int) shift, "xxx", name);
        size_t n = strlen(ae.e.message);
        assert_true(n > 1000);
        assert_true(utf8_valid(ae.e.message, n));
        assert_non_null(strstr(ae.e.message, "\xc3\xa9\xc3\xa9"));
        size_t len;
        char *text = as_status_text(&ae, &len);
        json_t *st = json_loads(text, 0, NULL);
        assert_non_null(st);
        assert_string_equal(json_string_value(json_object_get(st, "message")),
                            ae.e.message);
        json_decref(st);
        free(text);
    }
}

/* One builder for both sides: the Status the server sends decodes, with
 * the clients' decoder, into the error it was built from; a 409 with
 * retryAfterSeconds and the empty-reason default keep Kubernetes' names. */
static void
test_status_round_trip(void **state)
{
    struct as_error ae = {0};
    as_error_set(&ae, 422, "Invalid",
                 "BFB.provisioning.dpu.nvidia.com \"b\" is invalid");
    as_error_details(&ae, "b", "provisioning.dpu.nvidia.com", "BFB");
    dpf_error_add_cause(&ae.e, DPF_CAUSE_REQUIRED, "spec.url", "%s",
                        "Required value");
    ae.d.retry_after_s = 3;
    size_t len;
    char *text = as_status_text(&ae, &len);
    json_t *st = json_loads(text, 0, NULL);
    json_t *det = json_object_get(st, "details");
    assert_string_equal(json_string_value(json_object_get(st, "status")),
                        "Failure");
    assert_string_equal(json_string_value(json_object_get(det, "group")),
                        "provisioning.dpu.nvidia.com");
    assert_string_equal(json_string_value(json_object_get(det, "kind")), "BFB");
    assert_int_equal(
        json_integer_value(json_object_get(det, "retryAfterSeconds")), 3);
    json_decref(st);
    struct dpf_error back = {0};
    assert_int_equal(kube_status_to_error(422, text, len, &back), -EINVAL);
    assert_int_equal(back.code, 422);
    assert_string_equal(back.reason, "Invalid");
    assert_string_equal(back.message, ae.e.message);
    assert_int_equal(back.n_causes, 1);
    assert_string_equal(back.causes[0].type, DPF_CAUSE_REQUIRED);
    assert_string_equal(back.causes[0].field, "spec.url");
    assert_string_equal(back.causes[0].message, "Required value");
    free(text);
    /* a message longer than dpf_error holds is cut between characters
     * on the client side too */
    json_t *longst = kube_status_build(&ae.e, NULL);
    struct dbuf m;
    dbuf_init(&m);
    dbuf_puts(&m, "xy"); /* so the cut at 1023 bytes splits a character */
    for (int i = 0; i < 700; i++) {
        dbuf_puts(&m, "\xc3\xa9");
    }
    json_object_set_new(longst, "message", json_string(m.data));
    dbuf_free(&m);
    char *ltext = json_dumps(longst, JSON_COMPACT);
    json_decref(longst);
    assert_int_equal(kube_status_to_error(422, ltext, strlen(ltext), &back),
                     -EINVAL);
    free(ltext);
    assert_true(strlen(back.message) > 1000);
    assert_true(utf8_valid(back.message, strlen(back.message)));
    /* no code, no reason: a 500 InternalError, never an empty field */
    struct dpf_error bare = {0};
    text = kube_status_dump(&bare, NULL, &len);
    st = json_loads(text, 0, NULL);
    assert_int_equal(json_integer_value(json_object_get(st, "code")), 500);
    assert_string_equal(json_string_value(json_object_get(st, "reason")),
                        "InternalError");
    assert_null(json_object_get(st, "details"));
    json_decref(st);
    free(text);
}

static void
test_json_text(void **state)
{
    json_t *j = kube_status_string("plain \xc3\xa9");
    assert_string_equal(json_string_value(j), "plain \xc3\xa9");
    json_decref(j);
    j = kube_status_string("x\xff");
    assert_string_equal(json_string_value(j), "x\xef\xbf\xbd");
    json_decref(j);
    j = kube_status_string(NULL);
    assert_string_equal(json_string_value(j), "");
    json_decref(j);
}

/* The Warning header quotes a field path from the client's keys: no
 * header injection, quotes escaped twice (Go %q inside a quoted-string),
 * a long path cut on a character boundary. */
static void
test_warning_value(void **state)
{
    char *w = as_warning_value("spec.x");
    assert_string_equal(w, "299 - \"unknown field \\\"spec.x\\\"\"");
    free(w);
    w = as_warning_value("a\r\nX-Evil: 1\"\\");
    assert_null(strchr(w, '\r'));
    assert_null(strchr(w, '\n'));
    assert_string_equal(w,
                        "299 - \"unknown field \\\"a??X-Evil: 1\\\\\\\"\\\\\\\\"
                        "\\\"\"");
    free(w);
    char path[1001];
    for (size_t i = 0; i < 500; i++) {
        memcpy(path + 2 * i, "\xc3\xa9", 2);
    }
    path[1000] = '\0';
    w = as_warning_value(path + 1); /* starts with a stray byte */
    assert_true(strlen(w) < 400);
    assert_non_null(strstr(w, "...\\\"\""));
    free(w);
    w = as_warning_value(path);
    assert_true(utf8_valid(w, strlen(w)));
    free(w);
}

/* An unknown field whose path is longer than the path buffer and made of
 * multibyte characters is still reported (it used to be cut inside a
 * character, lost, and so accepted under Strict). */
static void
test_strict_long_multibyte_key(void **state)
{
    const struct schema_kind *cm = kind("v1", "ConfigMap");
    struct dbuf b;
    dbuf_init(&b);
    dbuf_puts(&b, "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
                  "\"metadata\":{\"name\":\"s\"},\"");
    for (int i = 0; i < 600; i++) {
        dbuf_puts(&b, "\xc3\xa9");
    }
    dbuf_puts(&b, "\":1}");
    json_t *obj = NULL;
    struct as_error ae = {0};
    assert_true(as_admit_create(cm, "default", b.data, b.len,
                                "application/json", "Strict", &obj, NULL,
                                &ae) < 0);
    assert_int_equal(ae.e.code, 400);
    assert_non_null(strstr(ae.e.message, "unknown field \"\xc3\xa9"));
    assert_true(ae.e.n_causes >= 1);
    assert_true(utf8_valid(ae.e.causes[0].field, strlen(ae.e.causes[0].field)));
    assert_true(utf8_valid(ae.e.message, strlen(ae.e.message)));
    dbuf_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inject_rv),
        cmocka_unit_test(test_load_labels),
        cmocka_unit_test(test_human_duration),
        cmocka_unit_test(test_admit),
        cmocka_unit_test(test_status_bad_text),
        cmocka_unit_test(test_error_cut_on_character),
        cmocka_unit_test(test_status_round_trip),
        cmocka_unit_test(test_json_text),
        cmocka_unit_test(test_warning_value),
        cmocka_unit_test(test_strict_long_multibyte_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
