/* Unit tests for jsonpatch: the RFC 6902 appendix A examples, RFC 7386
 * appendix A examples, pointer escapes and error handling. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/codecs/jsonpatch.h"
#include "lib/base/util.h"

static json_t *
J(const char *s)
{
    json_error_t e;
    json_t *v = json_loads(s, JSON_DECODE_ANY, &e);
    if (!v) {
        fail_msg("bad test JSON %s: %s", s, e.text);
    }
    return v;
}

static void
expect_json(const json_t *got, const char *want_s)
{
    json_t *want = J(want_s);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_ENCODE_ANY | JSON_SORT_KEYS);
        fail_msg("got %s want %s", g, want_s);
    }
    json_decref(want);
}

/* Apply ops to doc; expect result (or error containing err_needle when
 * result is NULL, with the target unchanged). */
static void
check6902(const char *doc_s, const char *ops_s, const char *result,
          const char *err_needle)
{
    json_t *doc = J(doc_s);
    json_t *ops = J(ops_s);
    struct dpf_error err = {0};
    int rc = jsonpatch_apply(doc, ops, &err);
    if (result) {
        if (rc != 0) {
            fail_msg("patch %s failed: %s", ops_s, err.message);
        }
        expect_json(doc, result);
    } else {
        if (rc != -EINVAL) {
            fail_msg("patch %s on %s should fail", ops_s, doc_s);
        }
        assert_int_equal(err.code, 400);
        if (!strstr(err.message, err_needle)) {
            fail_msg("error \"%s\" lacks \"%s\"", err.message, err_needle);
        }
        expect_json(doc, doc_s); /* unchanged */
    }
    json_decref(doc);
    json_decref(ops);
}

static void
test_rfc6902_appendix(void **state)
{
    /* A.1 .. A.16 */
    check6902("{\"foo\":\"bar\"}",
              "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\"}]",
              "{\"baz\":\"qux\",\"foo\":\"bar\"}", NULL);
    check6902("{\"foo\":[\"bar\",\"baz\"]}",
              "[{\"op\":\"add\",\"path\":\"/foo/1\",\"value\":\"qux\"}]",
              "{\"foo\":[\"bar\",\"qux\",\"baz\"]}", NULL);
    check6902("{\"baz\":\"qux\",\"foo\":\"bar\"}",
              "[{\"op\":\"remove\",\"path\":\"/baz\"}]", "{\"foo\":\"bar\"}",
              NULL);
    check6902("{\"foo\":[\"bar\",\"qux\",\"baz\"]}",
              "[{\"op\":\"remove\",\"path\":\"/foo/1\"}]",
              "{\"foo\":[\"bar\",\"baz\"]}", NULL);
    check6902("{\"baz\":\"qux\",\"foo\":\"bar\"}",
              "[{\"op\":\"replace\",\"path\":\"/baz\",\"value\":\"boo\"}]",
              "{\"baz\":\"boo\",\"foo\":\"bar\"}", NULL);
    check6902("{\"foo\":{\"bar\":\"baz\",\"waldo\":\"fred\"},"
              "\"qux\":{\"corge\":\"grault\"}}",
              "[{\"op\":\"move\",\"from\":\"/foo/waldo\","
              "\"path\":\"/qux/thud\"}]",
              "{\"foo\":{\"bar\":\"baz\"},\"qux\":{\"corge\":\"grault\","
              "\"thud\":\"fred\"}}",
              NULL);
    check6902("{\"foo\":[\"all\",\"grass\",\"cows\",\"eat\"]}",
              "[{\"op\":\"move\",\"from\":\"/foo/1\",\"path\":\"/foo/3\"}]",
              "{\"foo\":[\"all\",\"cows\",\"eat\",\"grass\"]}", NULL);
    check6902("{\"baz\":\"qux\",\"foo\":[\"a\",2,\"c\"]}",
              "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"qux\"},"
              "{\"op\":\"test\",\"path\":\"/foo/1\",\"value\":2}]",
              "{\"baz\":\"qux\",\"foo\":[\"a\",2,\"c\"]}", NULL);
    check6902("{\"baz\":\"qux\"}",
              "[{\"op\":\"test\",\"path\":\"/baz\",\"value\":\"bar\"}]", NULL,
              "test failed");
    check6902("{\"foo\":\"bar\"}",
              "[{\"op\":\"add\",\"path\":\"/child\",\"value\":"
              "{\"grandchild\":{}}}]",
              "{\"foo\":\"bar\",\"child\":{\"grandchild\":{}}}", NULL);
    /* A.11: unrecognised members are ignored */
    check6902("{\"foo\":\"bar\"}",
              "[{\"op\":\"add\",\"path\":\"/baz\",\"value\":\"qux\","
              "\"xyz\":123}]",
              "{\"foo\":\"bar\",\"baz\":\"qux\"}", NULL);
    /* A.12: adding to a nonexistent target */
    check6902("{\"foo\":\"bar\"}",
              "[{\"op\":\"add\",\"path\":\"/baz/bat\",\"value\":\"qux\"}]",
              NULL, "parent of the path does not exist");
    /* A.14: ~ escapes */
    check6902("{\"/\":9,\"~1\":10}",
              "[{\"op\":\"test\",\"path\":\"/~01\",\"value\":10}]",
              "{\"/\":9,\"~1\":10}", NULL);
    check6902("{\"/\":9,\"~1\":10}",
              "[{\"op\":\"test\",\"path\":\"/~01\",\"value\":\"10\"}]", NULL,
              "test failed");
    /* A.16: adding an array value */
    check6902("{\"foo\":[\"bar\"]}",
              "[{\"op\":\"add\",\"path\":\"/foo/-\",\"value\":[\"abc\","
              "\"def\"]}]",
              "{\"foo\":[\"bar\",[\"abc\",\"def\"]]}", NULL);
}

static void
test_rfc6902_more(void **state)
{
    /* escapes in pointers: ~1 is '/', ~0 is '~' */
    check6902("{\"a/b\":1,\"m~n\":2}",
              "[{\"op\":\"replace\",\"path\":\"/a~1b\",\"value\":3},"
              "{\"op\":\"remove\",\"path\":\"/m~0n\"}]",
              "{\"a/b\":3}", NULL);
    check6902("{}", "[{\"op\":\"add\",\"path\":\"/a~2\",\"value\":1}]", NULL,
              "invalid JSON pointer");
    check6902("{}", "[{\"op\":\"add\",\"path\":\"a\",\"value\":1}]", NULL,
              "invalid JSON pointer");
    /* the empty key is a valid token */
    check6902("{}", "[{\"op\":\"add\",\"path\":\"/\",\"value\":1}]", "{\"\":1}",
              NULL);
    /* copy, and numbers compare by value in test */
    check6902("{\"a\":{\"b\":[1]}}",
              "[{\"op\":\"copy\",\"from\":\"/a/b\",\"path\":\"/c\"},"
              "{\"op\":\"add\",\"path\":\"/c/0\",\"value\":0},"
              "{\"op\":\"test\",\"path\":\"/a/b/0\",\"value\":1.0}]",
              "{\"a\":{\"b\":[1]},\"c\":[0,1]}", NULL);
    /* whole-document replace keeps the type */
    check6902("{\"a\":1}",
              "[{\"op\":\"replace\",\"path\":\"\",\"value\":{\"b\":2}}]",
              "{\"b\":2}", NULL);
    check6902("{\"a\":1}", "[{\"op\":\"replace\",\"path\":\"\",\"value\":3}]",
              NULL, "type of the document");
    /* failures part way through leave the target unchanged */
    check6902("{\"a\":1}",
              "[{\"op\":\"add\",\"path\":\"/b\",\"value\":2},"
              "{\"op\":\"remove\",\"path\":\"/zzz\"}]",
              NULL, "operation 1 (remove /zzz): path does not exist");
    check6902("[1,2]", "[{\"op\":\"add\",\"path\":\"/3\",\"value\":0}]", NULL,
              "out of range");
    check6902("[1,2]", "[{\"op\":\"add\",\"path\":\"/01\",\"value\":0}]", NULL,
              "out of range");
    check6902("[1,2]", "[{\"op\":\"add\",\"path\":\"/2\",\"value\":3}]",
              "[1,2,3]", NULL);
    check6902("[1,2]", "[{\"op\":\"remove\",\"path\":\"/-\"}]", NULL,
              "does not exist");
    check6902("[1,2]", "[{\"op\":\"replace\",\"path\":\"/5\",\"value\":1}]",
              NULL, "does not exist");
    check6902("{\"a\":{\"b\":1}}",
              "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a/b/c\"}]", NULL,
              "children");
    check6902("{\"a\":1}",
              "[{\"op\":\"move\",\"from\":\"/a\",\"path\":\"/a\"}]",
              "{\"a\":1}", NULL);
    check6902("{\"a\":1}",
              "[{\"op\":\"move\",\"from\":\"/x\",\"path\":\"/y\"}]", NULL,
              "does not exist");
    check6902("{}", "[{\"op\":\"bogus\",\"path\":\"/a\"}]", NULL,
              "unknown operation");
    check6902("{}", "[{\"path\":\"/a\"}]", NULL, "missing \"op\"");
    check6902("{}", "[{\"op\":\"add\",\"value\":1}]", NULL, "missing \"path\"");
    check6902("{}", "[{\"op\":\"add\",\"path\":\"/a\"}]", NULL,
              "missing \"value\"");
    check6902("{}", "[{\"op\":\"copy\",\"path\":\"/a\"}]", NULL,
              "missing \"from\"");
    check6902("{}", "[5]", NULL, "must be an object");
    check6902("{}", "{\"op\":\"add\"}", NULL, "array of operations");
    check6902("{}", "[{\"op\":\"remove\",\"path\":\"\"}]", NULL,
              "whole document");
    /* doubling a document with copy stops at the copy limit */
    struct dbuf b;
    dbuf_init(&b);
    dbuf_puts(&b, "[");
    for (int i = 0; i < 40; i++) {
        dbuf_printf(&b,
                    "%s{\"op\":\"copy\",\"from\":\"/a\",\"path\":"
                    "\"/a/-\"}",
                    i ? "," : "");
    }
    dbuf_puts(&b, "]");
    check6902("{\"a\":[1]}", b.data, NULL, "copies exceed");
    dbuf_free(&b);
    /* null values are values, not deletions */
    check6902("{\"a\":1}", "[{\"op\":\"add\",\"path\":\"/a\",\"value\":null}]",
              "{\"a\":null}", NULL);
    check6902("{\"a\":null}",
              "[{\"op\":\"test\",\"path\":\"/a\",\"value\":null}]",
              "{\"a\":null}", NULL);
}

static void
check7386(const char *target_s, const char *patch_s, const char *result)
{
    json_t *obj = json_pack("{s:o}", "v", J(target_s));
    json_t *patch = json_pack("{s:o}", "v", J(patch_s));
    struct dpf_error err = {0};
    /* wrap in an object so non-object targets/patches follow the RFC */
    assert_int_equal(jsonpatch_merge(obj, patch, &err), 0);
    json_t *want = J(result);
    json_t *got = json_object_get(obj, "v");
    if (!got) {
        got = json_null(); /* deleted: compare against the RFC's null */
    }
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_ENCODE_ANY);
        fail_msg("merge %s into %s: got %s want %s", patch_s, target_s, g,
                 result);
    }
    json_decref(want);
    json_decref(obj);
    json_decref(patch);
}

static void
test_rfc7386_appendix(void **state)
{
    check7386("{\"a\":\"b\"}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
    check7386("{\"a\":\"b\"}", "{\"b\":\"c\"}", "{\"a\":\"b\",\"b\":\"c\"}");
    check7386("{\"a\":\"b\"}", "{\"a\":null}", "{}");
    check7386("{\"a\":\"b\",\"b\":\"c\"}", "{\"a\":null}", "{\"b\":\"c\"}");
    check7386("{\"a\":[\"b\"]}", "{\"a\":\"c\"}", "{\"a\":\"c\"}");
    check7386("{\"a\":\"c\"}", "{\"a\":[\"b\"]}", "{\"a\":[\"b\"]}");
    check7386("{\"a\":{\"b\":\"c\"}}", "{\"a\":{\"b\":\"d\",\"c\":null}}",
              "{\"a\":{\"b\":\"d\"}}");
    check7386("{\"a\":[{\"b\":\"c\"}]}", "{\"a\":[1]}", "{\"a\":[1]}");
    check7386("[\"a\",\"b\"]", "[\"c\",\"d\"]", "[\"c\",\"d\"]");
    check7386("{\"a\":\"b\"}", "[\"c\"]", "[\"c\"]");
    check7386("{\"a\":\"foo\"}", "null", "null");
    check7386("{\"a\":\"foo\"}", "\"bar\"", "\"bar\"");
    check7386("{\"e\":null}", "{\"a\":1}", "{\"e\":null,\"a\":1}");
    check7386("[1,2]", "{\"a\":\"b\",\"c\":null}", "{\"a\":\"b\"}");
    check7386("{}", "{\"a\":{\"bb\":{\"ccc\":null}}}", "{\"a\":{\"bb\":{}}}");
}

static void
test_merge_errors(void **state)
{
    json_t *t = J("{\"a\":1}");
    json_t *arr = J("[1]");
    struct dpf_error err = {0};
    assert_int_equal(jsonpatch_merge(t, arr, &err), -EINVAL);
    assert_int_equal(err.code, 400);
    assert_non_null(strstr(err.message, "patch must be a JSON object"));
    dpf_error_clear(&err);
    assert_int_equal(jsonpatch_merge(arr, t, &err), -EINVAL);
    assert_non_null(strstr(err.message, "target must be a JSON object"));
    expect_json(t, "{\"a\":1}");
    expect_json(arr, "[1]");
    /* the patch is not aliased into the target */
    json_t *p = J("{\"x\":{\"y\":[1]}}");
    assert_int_equal(jsonpatch_merge(t, p, NULL), 0);
    json_array_append_new(json_object_get(json_object_get(p, "x"), "y"),
                          json_integer(2));
    expect_json(t, "{\"a\":1,\"x\":{\"y\":[1]}}");
    json_decref(p);
    json_decref(t);
    json_decref(arr);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc6902_appendix),
        cmocka_unit_test(test_rfc6902_more),
        cmocka_unit_test(test_rfc7386_appendix),
        cmocka_unit_test(test_merge_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
