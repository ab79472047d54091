/* CustomResourceDefinitions in the schema registry (api/schema-crd.c,
 * api/schema-registry.c): a CRD becomes a served kind that validates,
 * defaults, prunes and exports like a declared one; checks name the field;
 * replacing and withdrawing it is safe while other threads look kinds up
 * and validate with them. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "api/schema.h"

static const char *widget_crd =
    "{\"apiVersion\":\"apiextensions.k8s.io/v1\","
    "\"kind\":\"CustomResourceDefinition\","
    "\"metadata\":{\"name\":\"widgets.example.com\"},"
    "\"spec\":{\"group\":\"example.com\",\"scope\":\"Namespaced\","
    "\"names\":{\"plural\":\"widgets\",\"kind\":\"Widget\","
    "\"shortNames\":[\"wg\"],\"categories\":[\"gadgets\"]},"
    "\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,"
    "\"subresources\":{\"status\":{},\"scale\":{\"specReplicasPath\":"
    "\".spec.size\",\"statusReplicasPath\":\".status.size\"}},"
    "\"schema\":{\"openAPIV3Schema\":{\"type\":\"object\",\"properties\":{"
    "\"spec\":{\"type\":\"object\",\"required\":[\"size\"],\"properties\":{"
    "\"size\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":SIZE_MAX_},"
    "\"color\":{\"type\":\"string\",\"enum\":[\"red\",\"blue\"],"
    "\"default\":\"red\"},"
    "\"level\":{\"type\":\"integer\",\"enum\":[1,2]},"
    "\"code\":{\"type\":\"string\",\"pattern\":\"^[a-z]+$\"}}}}}}}]}}";

/* The widget CRD with its spec.size maximum set to max. */
static json_t *
crd_with_max(int max)
{
    char buf[2048];
    const char *at = strstr(widget_crd, "SIZE_MAX_");
    snprintf(buf, sizeof buf, "%.*s%d%s", (int) (at - widget_crd), widget_crd,
             max, at + strlen("SIZE_MAX_"));
    json_t *crd = json_loads(buf, 0, NULL);
    assert_non_null(crd);
    return crd;
}

static json_t *
widget(int size, const char *extra)
{
    char buf[512];
    snprintf(buf, sizeof buf,
             "{\"apiVersion\":\"example.com/v1\",\"kind\":\"Widget\","
             "\"metadata\":{\"name\":\"w\",\"namespace\":\"ns\"},"
             "\"spec\":{\"size\":%d%s}}",
             size, extra ? extra : "");
    json_t *o = json_loads(buf, 0, NULL);
    assert_non_null(o);
    return o;
}

static void
test_register_serves_a_kind(void **state)
{
    (void) state;
    json_t *crd = crd_with_max(100);
    struct dpf_error err = {0};
    assert_null(schema_find_resource("example.com", "v1", "widgets"));
    assert_int_equal(schema_crd_register(crd, &err), 0);
    const struct schema_kind *k =
        schema_find_resource("example.com", "v1", "widgets");
    assert_non_null(k);
    assert_true(k->crd && k->namespaced && k->has_status && k->scale);
    assert_string_equal(k->list_kind, "WidgetList");
    assert_string_equal(k->singular, "widget");
    assert_ptr_equal(schema_find_name("wg"), k);
    assert_ptr_equal(schema_find_kind("example.com/v1", "Widget"), k);
    assert_string_equal(k->scale->spec_replicas, "spec.size");
    /* validate, default, prune */
    json_t *o = widget(3, ",\"extra\":1");
    json_t *warn = NULL;
    assert_int_equal(schema_prune(k, o, SCHEMA_UNKNOWN_WARN, &warn, &err), 0);
    assert_int_equal(json_array_size(warn), 1);
    assert_string_equal(json_string_value(json_array_get(warn, 0)),
                        "spec.extra");
    json_decref(warn);
    schema_default(k, o);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(o, "spec"), "color")),
        "red");
    assert_int_equal(schema_validate(k, o, NULL, &err), 0);
    json_decref(o);
    o = widget(101, ",\"level\":3,\"code\":\"A\"");
    assert_int_equal(schema_validate(k, o, NULL, &err), -EINVAL);
    assert_int_equal(err.code, 422);
    assert_int_equal(err.n_causes, 3);
    assert_string_equal(err.causes[0].field, "spec.size");
    assert_non_null(strstr(err.message, "Widget.example.com \"w\" is invalid"));
    json_decref(o);
    o = widget(1, ",\"level\":2");
    assert_int_equal(schema_validate(k, o, NULL, &err), 0);
    json_decref(o);
    /* the group is discovered */
    size_t n;
    const struct schema_group *const *gs = schema_groups(&n);
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        found = found || !strcmp(gs[i]->name, "example.com");
    }
    assert_true(found);
    /* the same spec again changes nothing; a new one replaces the kind */
    assert_int_equal(schema_crd_register(crd, &err), 0);
    assert_ptr_equal(schema_find_resource("example.com", "v1", "widgets"), k);
    json_t *crd2 = crd_with_max(5);
    assert_int_equal(schema_crd_register(crd2, &err), 0);
    const struct schema_kind *k2 =
        schema_find_resource("example.com", "v1", "widgets");
    assert_ptr_not_equal(k2, k);
    o = widget(6, NULL);
    assert_int_equal(schema_validate(k2, o, NULL, &err), -EINVAL);
    /* the old kind a request may still hold keeps working */
    assert_int_equal(schema_validate(k, o, NULL, &err), 0);
    assert_string_equal(schema_api_version(k), "example.com/v1");
    json_decref(o);
    assert_int_equal(schema_crd_unregister("widgets.example.com"), 0);
    assert_null(schema_find_resource("example.com", "v1", "widgets"));
    assert_int_equal(schema_crd_unregister("widgets.example.com"), -ENOENT);
    json_decref(crd);
    json_decref(crd2);
}

static void
test_builtin_resource_stays_builtin(void **state)
{
    (void) state;
    const struct schema_kind *bk =
        schema_find_resource("provisioning.dpu.nvidia.com", "v1alpha1", "bfbs");
    assert_non_null(bk);
    json_t *crd = schema_crd(bk);
    assert_non_null(crd);
    struct dpf_error err = {0};
    assert_int_equal(schema_crd_check(crd, NULL, &err), 0);
    assert_int_equal(schema_crd_register(crd, &err), 1);
    assert_ptr_equal(
        schema_find_resource("provisioning.dpu.nvidia.com", "v1alpha1", "bfbs"),
        bk);
    json_decref(crd);
}

static void
expect_cause(const char *crd_text, const char *field, const char *text)
{
    json_t *crd = json_loads(crd_text, 0, NULL);
    assert_non_null(crd);
    struct dpf_error err = {0};
    assert_int_equal(schema_crd_check(crd, NULL, &err), -EINVAL);
    bool found = false;
    for (size_t i = 0; i < err.n_causes; i++) {
        if (!strcmp(err.causes[i].field, field) &&
            strstr(err.causes[i].message, text)) {
            found = true;
        }
    }
    if (!found) {
        for (size_t i = 0; i < err.n_causes; i++) {
            fprintf(stderr, "cause: %s: %s\n", err.causes[i].field,
                    err.causes[i].message);
        }
    }
    assert_true(found);
    assert_int_equal(schema_crd_register(crd, &err), -EINVAL);
    json_decref(crd);
}

#define CRD_HEAD                                                          \
    "{\"metadata\":{\"name\":\"as.b.io\"},\"spec\":{\"group\":\"b.io\","  \
    "\"scope\":\"Cluster\",\"names\":{\"plural\":\"as\",\"kind\":\"A\"}," \
    "\"versions\":[{\"name\":\"v1\",\"served\":true,\"storage\":true,"    \
    "\"schema\":{\"openAPIV3Schema\":"
#define CRD_TAIL "}}]}}"

static void
test_checks_name_the_field(void **state)
{
    (void) state;
    const char *p = "spec.versions[0].schema.openAPIV3Schema";
    char f[256];
    expect_cause(CRD_HEAD "{\"type\":\"string\"}" CRD_TAIL,
                 "spec.versions[0].schema.openAPIV3Schema.type",
                 "must be object");
    snprintf(f, sizeof f, "%s.properties[x].type", p);
    expect_cause(CRD_HEAD
                 "{\"type\":\"object\",\"properties\":{\"x\":{}}}" CRD_TAIL,
                 f, "Required value");
    snprintf(f, sizeof f, "%s.properties[x].pattern", p);
    expect_cause(CRD_HEAD "{\"type\":\"object\",\"properties\":{\"x\":"
                          "{\"type\":\"string\",\"pattern\":\"(\"}}}" CRD_TAIL,
                 f, "valid regular expression");
    snprintf(f, sizeof f, "%s.properties[x].items", p);
    expect_cause(CRD_HEAD "{\"type\":\"object\",\"properties\":{\"x\":"
                          "{\"type\":\"array\"}}}" CRD_TAIL,
                 f, "must be specified");
    snprintf(f, sizeof f, "%s.properties[x].x-kubernetes-list-map-keys", p);
    expect_cause(CRD_HEAD "{\"type\":\"object\",\"properties\":{\"x\":"
                          "{\"type\":\"array\",\"x-kubernetes-list-type\":"
                          "\"map\",\"items\":{\"type\":\"object\"}}}}" CRD_TAIL,
                 f, "must not be empty");
    snprintf(f, sizeof f, "%s.properties[x].type", p);
    expect_cause(CRD_HEAD "{\"type\":\"object\",\"properties\":{\"x\":"
                          "{\"type\":\"string\",\"x-kubernetes-int-or-string\":"
                          "true}}}" CRD_TAIL,
                 f, "must be empty");
    expect_cause("{\"metadata\":{\"name\":\"as.b.k8s.io\"},\"spec\":{"
                 "\"group\":\"b.k8s.io\",\"scope\":\"Cluster\",\"names\":{"
                 "\"plural\":\"as\",\"kind\":\"A\"},\"versions\":[{\"name\":"
                 "\"v1\",\"served\":true,\"storage\":true,\"schema\":{"
                 "\"openAPIV3Schema\":{\"type\":\"object\"}}}]}}",
                 "metadata.annotations[api-approved.kubernetes.io]",
                 "Required value");
    expect_cause("{\"metadata\":{\"name\":\"x.b.io\"},\"spec\":{"
                 "\"group\":\"b.io\",\"scope\":\"Cluster\",\"names\":{"
                 "\"plural\":\"as\",\"kind\":\"A\"},\"versions\":[{\"name\":"
                 "\"v1\",\"served\":false,\"storage\":false,\"schema\":{"
                 "\"openAPIV3Schema\":{\"type\":\"object\"}}}]}}",
                 "spec.versions", "exactly one version");
}

static void
test_backtracking_pattern_is_bounded(void **state)
{
    (void) state;
    json_t *crd = json_loads(
        CRD_HEAD "{\"type\":\"object\",\"properties\":{\"x\":"
                 "{\"type\":\"string\",\"pattern\":\"^(a+)+$\"}}}" CRD_TAIL,
        0, NULL);
    assert_non_null(crd);
    struct dpf_error err = {0};
    assert_int_equal(schema_crd_register(crd, &err), 0);
    const struct schema_kind *k = schema_find_resource("b.io", "v1", "as");
    assert_non_null(k);
    /* 2^40 backtracking steps: the match stops at the step limit
     * (SCHEMA_RE_MATCH_LIMIT) and the value is refused, naming it */
    json_t *o = json_pack("{s:s,s:s,s:{s:s},s:s}", "apiVersion", "b.io/v1",
                          "kind", "A", "metadata", "name", "a", "x",
                          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab");
    assert_int_equal(schema_validate(k, o, NULL, &err), -EINVAL);
    assert_string_equal(err.causes[0].field, "x");
    json_decref(o);
    o = json_pack("{s:s,s:s,s:{s:s},s:s}", "apiVersion", "b.io/v1", "kind", "A",
                  "metadata", "name", "a", "x", "aaaa");
    assert_int_equal(schema_validate(k, o, NULL, &err), 0);
    json_decref(o);
    assert_int_equal(schema_crd_unregister("as.b.io"), 0);
    json_decref(crd);
}

/* --- concurrency: lookups and validation while the CRD changes --- */

static volatile int g_stop;

static void *
reader(void *arg)
{
    (void) arg;
    json_t *o = widget(3, NULL);
    struct dpf_error err;
    unsigned long seen = 0;
    while (!g_stop) {
        const struct schema_kind *k =
            schema_find_resource("example.com", "v1", "widgets");
        if (k) {
            /* whichever version of the kind: it must stay usable */
            schema_validate(k, o, NULL, &err);
            json_decref(schema_openapi_v3(k));
            seen++;
        }
        size_t n;
        const struct schema_kind *const *all = schema_kinds(&n);
        for (size_t i = 0; i < n; i++) {
            assert_non_null(all[i]->plural);
        }
        schema_find_name("wg");
    }
    json_decref(o);
    return (void *) seen;
}

static void
test_concurrent_register_and_lookup(void **state)
{
    (void) state;
    pthread_t t[2];
    g_stop = 0;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, reader, NULL), 0);
    }
    struct dpf_error err;
    for (int i = 0; i < 200; i++) {
        json_t *crd = crd_with_max(10 + i);
        assert_int_equal(schema_crd_register(crd, &err), 0);
        if (i % 3 == 0) {
            assert_int_equal(schema_crd_unregister("widgets.example.com"), 0);
        }
        json_decref(crd);
    }
    g_stop = 1;
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
    }
    schema_crd_unregister("widgets.example.com");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_serves_a_kind),
        cmocka_unit_test(test_builtin_resource_stays_builtin),
        cmocka_unit_test(test_checks_name_the_field),
        cmocka_unit_test(test_backtracking_pattern_is_bounded),
        cmocka_unit_test(test_concurrent_register_and_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
