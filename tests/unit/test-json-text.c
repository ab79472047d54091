/* Unit tests for lib/codecs/json-text: members found at the top level
 * only (not nested, not inside strings, not as values), compact and
 * pretty text, insertion into empty and non-empty objects, and text that
 * is not what it should be. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"
#include "lib/codecs/json-text.h"

/* The member's value text, or NULL. */
static char *
member(const char *s, const char *name)
{
    size_t a, b;
    if (!json_text_member(s, strlen(s), name, &a, &b)) {
        return NULL;
    }
    return xstrndup(s + a, b - a);
}

static void
expect_member(const char *s, const char *name, const char *want)
{
    char *got = member(s, name);
    if (!want) {
        if (got) {
            fail_msg("%s in %s: found %s", name, s, got);
        }
        return;
    }
    if (!got || strcmp(got, want) != 0) {
        fail_msg("%s in %s: got %s, want %s", name, s, got ? got : "(none)",
                 want);
    }
    free(got);
}

static void
test_member(void **state)
{
    (void) state;
    const char *obj = "{\"kind\":\"Pod\",\"spec\":{\"metadata\":1},"
                      "\"x\":\"\\\"metadata\\\":{}\",\"n\":-1.5e3,"
                      "\"a\":[{\"metadata\":{}}],\"metadata\":{\"name\":"
                      "\"p\",\"labels\":{\"a\":\"b\"}},\"t\":true}";
    expect_member(obj, "metadata", "{\"name\":\"p\",\"labels\":{\"a\":\"b\"}}");
    expect_member(obj, "kind", "\"Pod\"");
    expect_member(obj, "n", "-1.5e3");
    expect_member(obj, "t", "true");
    expect_member(obj, "status", NULL);
    expect_member(obj, "name", NULL); /* nested only */
    /* pretty text */
    expect_member("  {\n  \"a\" : [ 1, 2 ] ,\n  \"b\" :  { }\n}\n", "b", "{ }");
    expect_member("{ \"a\" : 1 }", "a", "1");
    /* not objects, broken text */
    expect_member("[\"metadata\",{}]", "metadata", NULL);
    expect_member("\"metadata\"", "metadata", NULL);
    expect_member("", "metadata", NULL);
    expect_member("{\"metadata\":{\"a\":\"unterminated}", "metadata", NULL);
    expect_member("{\"a\" 1,\"metadata\":{}}", "metadata", NULL);
    expect_member("{\"a\":}", "a", NULL);
    /* the first of duplicates */
    expect_member("{\"a\":1,\"a\":2}", "a", "1");
}

static void
test_load_member(void **state)
{
    (void) state;
    const char *s = "{\"metadata\":{\"labels\":{\"k\":\"v\"}},\"spec\":{}}";
    json_t *md = json_text_load_path(s, strlen(s), JSON_TEXT_PATH("metadata"));
    assert_non_null(md);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(md, "labels"), "k")),
        "v");
    json_decref(md);
    assert_null(json_text_load_path(s, strlen(s), JSON_TEXT_PATH("status")));
    /* a span that is not JSON is refused by the parse */
    assert_null(json_text_load_path("{\"a\":tru}", 9, JSON_TEXT_PATH("a")));
    /* a path: only the innermost value is parsed */
    json_t *l =
        json_text_load_path(s, strlen(s), JSON_TEXT_PATH("metadata", "labels"));
    assert_string_equal(json_string_value(json_object_get(l, "k")), "v");
    json_decref(l);
    json_t *v = json_text_load_path(s, strlen(s),
                                    JSON_TEXT_PATH("metadata", "labels", "k"));
    assert_string_equal(json_string_value(v), "v");
    json_decref(v);
    /* a missing step, or a step that is not an object */
    assert_null(json_text_load_path(s, strlen(s),
                                    JSON_TEXT_PATH("metadata", "annotations")));
    assert_null(json_text_load_path(
        s, strlen(s), JSON_TEXT_PATH("metadata", "labels", "k", "x")));
    /* the step's member, not one of the same name further out */
    const char *t = "{\"metadata\":{},\"labels\":{\"k\":\"out\"}}";
    assert_null(json_text_load_path(t, strlen(t),
                                    JSON_TEXT_PATH("metadata", "labels")));
}

/* ok and the text an insertion gave: want NULL = refused with nothing
 * written, else exactly want, and JSON that jansson reads. */
static void
check_set(bool ok, struct dbuf *b, const char *want)
{
    char *got = dbuf_steal(b, NULL);
    if (!want) {
        assert_false(ok);
        assert_string_equal(got, "");
    } else {
        assert_true(ok);
        assert_string_equal(got, want);
        json_t *j = json_loads(got, 0, NULL);
        assert_non_null(j);
        json_decref(j);
    }
    free(got);
}

static void
expect_insert(const char *s, const char *want)
{
    struct dbuf b;
    dbuf_init(&b);
    check_set(
        json_text_set(&b, s, strlen(s), "metadata", "resourceVersion", "\"7\""),
        &b, want);
}

static void
test_insert(void **state)
{
    (void) state;
    expect_insert("{\"kind\":\"X\",\"metadata\":{\"name\":\"a\"}}",
                  "{\"kind\":\"X\",\"metadata\":{\"resourceVersion\":\"7\","
                  "\"name\":\"a\"}}");
    expect_insert("{\"metadata\":{}}",
                  "{\"metadata\":{\"resourceVersion\":\"7\"}}");
    expect_insert("{\"metadata\": {  } }",
                  "{\"metadata\": {\"resourceVersion\":\"7\"  } }");
    /* a member that is there has its value replaced, in place */
    expect_insert("{\"metadata\":{\"name\":\"a\",\"resourceVersion\": \"12\" ,"
                  "\"uid\":\"u\"}}",
                  "{\"metadata\":{\"name\":\"a\",\"resourceVersion\": \"7\" ,"
                  "\"uid\":\"u\"}}");
    /* only the object's own member, not one nested deeper */
    expect_insert("{\"metadata\":{\"x\":{\"resourceVersion\":\"1\"}}}",
                  "{\"metadata\":{\"resourceVersion\":\"7\",\"x\":"
                  "{\"resourceVersion\":\"1\"}}}");
    expect_insert("{\"metadata\":null}", NULL);
    expect_insert("{\"spec\":{\"metadata\":{}}}", NULL);
    expect_insert("[]", NULL);
}

static void
expect_rv(const char *s, const char *want)
{
    struct dbuf b;
    dbuf_init(&b);
    check_set(json_text_set_rv(&b, s, strlen(s), 1234567890123LL), &b, want);
}

static void
test_set_rv(void **state)
{
    (void) state;
    expect_rv("{\"metadata\":{\"name\":\"a\"}}",
              "{\"metadata\":{\"resourceVersion\":\"1234567890123\","
              "\"name\":\"a\"}}");
    expect_rv("{\"metadata\":{\"resourceVersion\":\"9\"}}",
              "{\"metadata\":{\"resourceVersion\":\"1234567890123\"}}");
    /* no metadata: made, as the first member */
    expect_rv("{\"k\":1}",
              "{\"metadata\":{\"resourceVersion\":\"1234567890123\"},"
              "\"k\":1}");
    expect_rv(" { } ",
              " {\"metadata\":{\"resourceVersion\":\"1234567890123\"} } ");
    /* a nested metadata is not the object's own */
    expect_rv("{\"spec\":{\"metadata\":{}}}",
              "{\"metadata\":{\"resourceVersion\":\"1234567890123\"},"
              "\"spec\":{\"metadata\":{}}}");
    expect_rv("{\"metadata\":null}", NULL);
    expect_rv("[1]", NULL);
    expect_rv("\"s\"", NULL);
    expect_rv("", NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_member),
        cmocka_unit_test(test_load_member),
        cmocka_unit_test(test_insert),
        cmocka_unit_test(test_set_rv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
