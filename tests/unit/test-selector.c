/* Unit tests for selector: label selector grammar, validation and
 * matching, field selectors with the allow-list, metav1.LabelSelector. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "lib/codecs/selector.h"
#include "lib/base/util.h"

static json_t *
J(const char *s)
{
    json_t *v = json_loads(s, JSON_DECODE_ANY, NULL);
    assert_non_null(v);
    return v;
}

static bool
lmatch(const char *sel_text, const char *labels_json)
{
    struct dpf_error err = {0};
    struct selector *sel = selector_parse_labels(sel_text, &err);
    if (!sel) {
        fail_msg("selector \"%s\" rejected: %s", sel_text, err.message);
    }
    json_t *labels = labels_json ? J(labels_json) : NULL;
    bool m = selector_match_labels(sel, labels);
    json_decref(labels);
    selector_free(sel);
    return m;
}

static void
lbad(const char *sel_text, const char *needle)
{
    struct dpf_error err = {0};
    struct selector *sel = selector_parse_labels(sel_text, &err);
    if (sel) {
        fail_msg("selector \"%s\" should be rejected", sel_text);
    }
    assert_int_equal(err.code, 400);
    assert_string_equal(err.reason, "BadRequest");
    if (!strstr(err.message, needle)) {
        fail_msg("\"%s\": error \"%s\" lacks \"%s\"", sel_text, err.message,
                 needle);
    }
}

static void
test_label_match(void **state)
{
    const char *l = "{\"app\":\"hbn\",\"tier\":\"dpu\",\"zone\":\"\","
                    "\"example.com/role\":\"leaf\"}";
    assert_true(lmatch("", l));
    assert_true(lmatch(NULL, l));
    assert_true(lmatch("   ", l));
    assert_true(lmatch("app=hbn", l));
    assert_true(lmatch("app==hbn", l));
    assert_true(lmatch(" app = hbn , tier = dpu ", l));
    assert_false(lmatch("app=hbn,tier=host", l));
    assert_true(lmatch("app!=x", l));
    assert_true(lmatch("missing!=x", l)); /* absent satisfies != */
    assert_false(lmatch("app!=hbn", l));
    assert_true(lmatch("app in (a, hbn)", l));
    assert_false(lmatch("app in (a,b)", l));
    assert_false(lmatch("missing in (a)", l));
    assert_true(lmatch("app notin (a,b)", l));
    assert_true(lmatch("missing notin (a)", l));
    assert_false(lmatch("app notin (hbn)", l));
    assert_true(lmatch("app", l));
    assert_false(lmatch("missing", l));
    assert_true(lmatch("!missing", l));
    assert_false(lmatch("!app", l));
    assert_true(lmatch("zone=", l)); /* empty value */
    assert_false(lmatch("app=", l));
    assert_true(lmatch("zone in (,x)", l));
    assert_true(lmatch("example.com/role=leaf", l));
    assert_true(lmatch("app,tier,!gone,example.com/role in (leaf)", l));
    assert_false(lmatch("app", NULL));
    assert_true(lmatch("!app", NULL));
    assert_true(lmatch("app notin (x)", "{}"));
    assert_true(lmatch("a=in", "{\"a\":\"in\"}"));  /* keyword as value */
    assert_false(lmatch("app=hbn", "{\"app\":5}")); /* non-string label */
}

/* The label every match carries: only from k=v, k==v or a one-value in. */
static void
test_equality_hint(void **state)
{
    (void) state;
    const struct {
        const char *text, *key, *value;
    } cases[] = {
        {"a=1", "a", "1"},
        {"x!=2,b==3", "b", "3"},
        {"c in (4)", "c", "4"},
        {"c in (4,5),d", NULL, NULL},
        {"!e,f notin (1)", NULL, NULL},
        {"g", NULL, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct dpf_error err = {0};
        struct selector *sel = selector_parse_labels(cases[i].text, &err);
        assert_non_null(sel);
        const char *k = NULL, *v = NULL;
        bool got = selector_equality_hint(sel, &k, &v);
        assert_int_equal(got, cases[i].key != NULL);
        if (got) {
            assert_string_equal(k, cases[i].key);
            assert_string_equal(v, cases[i].value);
        }
        selector_free(sel);
    }
}

static void
test_label_syntax_errors(void **state)
{
    lbad(",", "expected a label key");
    lbad("app=hbn,", "expected a label key");
    lbad("app hbn", "expected an operator");
    lbad("app in hbn", "expected \"(\"");
    lbad("app in (a", "expected \",\" or \")\"");
    lbad("app in ()", "values set can't be empty");
    lbad("app notin (a b)", "expected \",\" or \")\"");
    lbad("!app=x", "expected \",\" between");
    lbad("app>5", "expected an operator");
    lbad("in=x", "expected a label key");
    lbad("=x", "expected a label key");
    lbad("app=a=b", "expected \",\" between");
    lbad("-app=x", "invalid label key \"-app\"");
    lbad("app-=x", "invalid label key");
    lbad("Example.com/app=x", "prefix part");
    lbad("/app=x", "prefix part");
    lbad("example.com/=x", "name part must be non-empty");
    lbad("a/b/c=x", "name part");
    lbad("app=-x", "invalid label value \"-x\"");
    lbad("app=x_", "invalid label value");
    lbad("app in (ok,bad!)", "expected \",\" or \")\"");
    lbad("app=\xc3\xa9", "invalid label value");
    char key[80], val[80];
    memset(key, 'k', 64);
    key[64] = '\0';
    memset(val, 'v', 64);
    val[64] = '\0';
    char *s = xasprintf("%s=x", key);
    lbad(s, "name part must be at most 63");
    free(s);
    s = xasprintf("k=%s", val);
    lbad(s, "invalid label value");
    free(s);
    key[63] = '\0';
    val[63] = '\0';
    s = xasprintf("%s=%s", key, val);
    assert_true(lmatch(s, NULL) == false);
    free(s);
}

static void
test_fields(void **state)
{
    static const char *const allowed[] = {"metadata.name", "metadata.namespace",
                                          "spec.nodeName", "status.phase",
                                          NULL};
    json_t *obj = J("{\"metadata\":{\"name\":\"dpu-1\",\"namespace\":\"dpf\"},"
                    "\"spec\":{\"nodeName\":\"worker1\"},"
                    "\"status\":{}}");
    struct dpf_error err = {0};
    static const struct {
        const char *sel;
        bool match;
    } cases[] = {
        {"", true},
        {"metadata.name=dpu-1", true},
        {"metadata.name==dpu-1", true},
        {"metadata.name!=dpu-1", false},
        {"metadata.name=dpu-2", false},
        {"metadata.name=dpu-1,spec.nodeName=worker1", true},
        {"metadata.name=dpu-1,spec.nodeName!=worker1", false},
        {"status.phase=", true}, /* absent compares as "" */
        {"status.phase!=Ready", true},
        {" metadata.namespace = dpf ", true},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct selector *sel =
            selector_parse_fields(cases[i].sel, allowed, &err);
        if (!sel) {
            fail_msg("\"%s\" rejected: %s", cases[i].sel, err.message);
        }
        if (selector_match_fields(sel, obj) != cases[i].match) {
            fail_msg("\"%s\" should %smatch", cases[i].sel,
                     cases[i].match ? "" : "not ");
        }
        selector_free(sel);
    }
    /* escapes: the value is "a,b=c" */
    json_t *o2 = J("{\"metadata\":{\"name\":\"a,b=c\"}}");
    struct selector *sel =
        selector_parse_fields("metadata.name=a\\,b\\=c", allowed, &err);
    assert_non_null(sel);
    assert_true(selector_match_fields(sel, o2));
    assert_false(selector_match_fields(sel, obj));
    selector_free(sel);
    json_decref(o2);

    sel = selector_parse_fields("spec.bogus=x", allowed, &err);
    assert_null(sel);
    assert_int_equal(err.code, 400);
    assert_string_equal(err.message, "field label not supported: spec.bogus");
    dpf_error_clear(&err);
    sel = selector_parse_fields("metadata.name", allowed, &err);
    assert_null(sel);
    assert_non_null(strstr(err.message, "can't understand"));
    dpf_error_clear(&err);
    sel = selector_parse_fields("metadata.name=a,", allowed, &err);
    assert_null(sel);
    /* no allow-list: anything goes, numbers compare as text */
    json_t *o3 = J("{\"spec\":{\"replicas\":3,\"paused\":true}}");
    sel = selector_parse_fields("spec.replicas=3,spec.paused=true", NULL, &err);
    assert_non_null(sel);
    assert_true(selector_match_fields(sel, o3));
    selector_free(sel);
    json_decref(o3);
    json_decref(obj);
}

static void
test_label_selector_object(void **state)
{
    struct dpf_error err = {0};
    struct selector *sel = selector_from_label_selector(NULL, &err);
    assert_non_null(sel);
    assert_true(selector_empty(sel));
    assert_true(selector_match_labels(sel, NULL));
    selector_free(sel);
    json_t *null = json_null();
    sel = selector_from_label_selector(null, &err);
    assert_true(selector_empty(sel));
    selector_free(sel);

    json_t *ls = J("{\"matchLabels\":{\"feature.node.kubernetes.io/dpu\":"
                   "\"true\"},\"matchExpressions\":["
                   "{\"key\":\"zone\",\"operator\":\"In\",\"values\":[\"a\","
                   "\"b\"]},"
                   "{\"key\":\"bad\",\"operator\":\"DoesNotExist\"},"
                   "{\"key\":\"tier\",\"operator\":\"NotIn\",\"values\":"
                   "[\"host\"]},"
                   "{\"key\":\"dpu\",\"operator\":\"Exists\",\"values\":[]}]}");
    sel = selector_from_label_selector(ls, &err);
    assert_non_null(sel);
    assert_false(selector_empty(sel));
    json_t *l1 = J("{\"feature.node.kubernetes.io/dpu\":\"true\","
                   "\"zone\":\"a\",\"dpu\":\"\"}");
    json_t *l2 = J("{\"feature.node.kubernetes.io/dpu\":\"true\","
                   "\"zone\":\"a\",\"dpu\":\"x\",\"bad\":\"1\"}");
    json_t *l3 = J("{\"feature.node.kubernetes.io/dpu\":\"true\","
                   "\"zone\":\"c\",\"dpu\":\"x\"}");
    assert_true(selector_match_labels(sel, l1));
    assert_false(selector_match_labels(sel, l2));
    assert_false(selector_match_labels(sel, l3));
    json_decref(l1);
    json_decref(l2);
    json_decref(l3);
    selector_free(sel);
    json_decref(ls);

    static const struct {
        const char *ls;
        const char *field;
    } bad[] = {
        {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\"}]}",
         "matchExpressions[0].values"},
        {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Exists\","
         "\"values\":[\"x\"]}]}",
         "matchExpressions[0].values"},
        {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"Gt\"}]}",
         "matchExpressions[0].operator"},
        {"{\"matchExpressions\":[{\"operator\":\"Exists\"}]}",
         "matchExpressions[0].key"},
        {"{\"matchExpressions\":[{\"key\":\"-a\",\"operator\":\"Exists\"}]}",
         "matchExpressions[0].key"},
        {"{\"matchLabels\":{\"a\":\"b c\"}}", "matchLabels[a]"},
        {"{\"matchLabels\":{\"a\":1}}", "matchLabels[a]"},
        {"{\"matchLabels\":[]}", "matchLabels"},
        {"{\"matchExpressions\":[{\"key\":\"a\",\"operator\":\"In\","
         "\"values\":[\"ok\",7]}]}",
         "matchExpressions[0].values[1]"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        dpf_error_clear(&err);
        json_t *b = J(bad[i].ls);
        sel = selector_from_label_selector(b, &err);
        if (sel) {
            fail_msg("%s should be rejected", bad[i].ls);
        }
        assert_int_equal(err.code, 422);
        assert_true(err.n_causes >= 1);
        assert_string_equal(err.causes[0].field, bad[i].field);
        json_decref(b);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_label_match),
        cmocka_unit_test(test_label_syntax_errors),
        cmocka_unit_test(test_equality_hint),
        cmocka_unit_test(test_fields),
        cmocka_unit_test(test_label_selector_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
