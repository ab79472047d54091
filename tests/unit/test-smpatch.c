/* Unit tests for the strategic merge patch (api/schema-smpatch.c): lists
 * merged by their declared keys, every directive, the errors and their
 * codes, custom kinds refused, and the patch metadata in OpenAPI. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/schema.h"

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

static const struct schema_kind *
kind(const char *api_version, const char *k)
{
    const struct schema_kind *sk = schema_find_kind(api_version, k);
    assert_non_null(sk);
    return sk;
}

/* Patch doc (of kind av/k) and compare with want (NULL: expect code). */
static void
check(const char *av, const char *k, const char *doc_s, const char *patch_s,
      const char *want_s, int code, const char *needle)
{
    json_t *doc = J(doc_s);
    json_t *patch = J(patch_s);
    struct dpf_error err = {0};
    int r = schema_strategic_merge(kind(av, k), doc, patch, &err);
    if (want_s) {
        if (r != 0) {
            fail_msg("patch %s failed: %s", patch_s, err.message);
        }
        json_t *want = J(want_s);
        if (!json_equal(doc, want)) {
            char *g = json_dumps(doc, JSON_SORT_KEYS | JSON_COMPACT);
            fail_msg("patch %s\n got %s\nwant %s", patch_s, g, want_s);
        }
        json_decref(want);
    } else {
        assert_true(r < 0);
        assert_int_equal(err.code, code);
        if (!strstr(err.message, needle)) {
            fail_msg("error \"%s\" lacks \"%s\"", err.message, needle);
        }
    }
    json_decref(doc);
    json_decref(patch);
}

#define DEPLOY_SPEC(containers) \
    "{\"spec\":{\"template\":{\"spec\":{\"containers\":" containers "}}}}"

/* kubectl set image: only the image changes; env, ports, volumeMounts
 * and the other container stay. */
static void
test_containers_by_name(void **state)
{
    (void) state;
    check("apps/v1", "Deployment",
          DEPLOY_SPEC("[{\"name\":\"a\",\"image\":\"a:1\",\"env\":[{\"name\":"
                      "\"E\",\"value\":\"1\"}],\"ports\":[{\"containerPort\":"
                      "80}],\"volumeMounts\":[{\"name\":\"v\",\"mountPath\":"
                      "\"/v\"}]},{\"name\":\"b\",\"image\":\"b:1\"}]"),
          "{\"spec\":{\"template\":{\"spec\":{\"$setElementOrder/"
          "containers\":[{\"name\":\"a\"},{\"name\":\"b\"}],\"containers\":"
          "[{\"name\":\"a\",\"image\":\"a:2\"}]}}}}",
          DEPLOY_SPEC("[{\"name\":\"a\",\"image\":\"a:2\",\"env\":[{\"name\":"
                      "\"E\",\"value\":\"1\"}],\"ports\":[{\"containerPort\":"
                      "80}],\"volumeMounts\":[{\"name\":\"v\",\"mountPath\":"
                      "\"/v\"}]},{\"name\":\"b\",\"image\":\"b:1\"}]"),
          0, NULL);
}

/* env by name, ports by containerPort, volumeMounts by mountPath; new
 * elements are appended; $patch: delete removes one. */
static void
test_nested_keys_and_delete(void **state)
{
    (void) state;
    check("v1", "Pod",
          "{\"spec\":{\"containers\":[{\"name\":\"a\",\"env\":[{\"name\":"
          "\"X\",\"value\":\"1\"},{\"name\":\"Y\",\"value\":\"2\"}],"
          "\"ports\":[{\"containerPort\":80,\"name\":\"http\"}],"
          "\"volumeMounts\":[{\"name\":\"v\",\"mountPath\":\"/a\"}]}]}}",
          "{\"spec\":{\"containers\":[{\"name\":\"a\",\"env\":[{\"name\":"
          "\"Y\",\"value\":\"3\"},{\"name\":\"X\",\"$patch\":\"delete\"},"
          "{\"name\":\"Z\",\"value\":\"4\"}],\"ports\":[{\"containerPort\":"
          "443}],\"volumeMounts\":[{\"mountPath\":\"/a\",\"readOnly\":true}"
          "]}]}}",
          "{\"spec\":{\"containers\":[{\"name\":\"a\",\"env\":[{\"name\":"
          "\"Y\",\"value\":\"3\"},{\"name\":\"Z\",\"value\":\"4\"}],"
          "\"ports\":[{\"containerPort\":80,\"name\":\"http\"},"
          "{\"containerPort\":443}],\"volumeMounts\":[{\"name\":\"v\","
          "\"mountPath\":\"/a\",\"readOnly\":true}]}]}}",
          0, NULL);
}

/* A kubelet's status patch: one condition changes, the others stay. */
static void
test_node_condition(void **state)
{
    (void) state;
    check("v1", "Node",
          "{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":"
          "\"True\"},{\"type\":\"DiskPressure\",\"status\":\"False\"}]}}",
          "{\"status\":{\"$setElementOrder/conditions\":[{\"type\":\"Ready\"},"
          "{\"type\":\"DiskPressure\"}],\"conditions\":[{\"type\":"
          "\"DiskPressure\",\"status\":\"True\",\"reason\":\"Full\"}]}}",
          "{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":"
          "\"True\"},{\"type\":\"DiskPressure\",\"status\":\"True\","
          "\"reason\":\"Full\"}]}}",
          0, NULL);
}

/* Tolerations are atomic: replaced whole. Lists the schema does not
 * declare are replaced too. */
static void
test_atomic_lists_replace(void **state)
{
    (void) state;
    check("v1", "Pod",
          "{\"spec\":{\"tolerations\":[{\"key\":\"a\"},{\"key\":\"b\"}],"
          "\"containers\":[{\"name\":\"c\",\"args\":[\"1\",\"2\"]}]}}",
          "{\"spec\":{\"tolerations\":[{\"key\":\"c\"}],\"containers\":[{"
          "\"name\":\"c\",\"args\":[\"3\"]}]}}",
          "{\"spec\":{\"tolerations\":[{\"key\":\"c\"}],\"containers\":[{"
          "\"name\":\"c\",\"args\":[\"3\"]}]}}",
          0, NULL);
}

/* finalizers merge as a set; $deleteFromPrimitiveList removes values. */
static void
test_primitive_set(void **state)
{
    (void) state;
    check("v1", "ConfigMap", "{\"metadata\":{\"finalizers\":[\"a\",\"b\"]}}",
          "{\"metadata\":{\"finalizers\":[\"c\",\"a\"],"
          "\"$deleteFromPrimitiveList/finalizers\":[\"b\"]}}",
          "{\"metadata\":{\"finalizers\":[\"a\",\"c\"]}}", 0, NULL);
    check("v1", "ConfigMap", "{\"metadata\":{\"finalizers\":[\"a\",\"b\"]}}",
          "{\"metadata\":{\"$deleteFromPrimitiveList/finalizers\":\"b\"}}",
          NULL, 400, "invalid patch format of primitive list");
}

/* $setElementOrder reorders the named elements. */
static void
test_set_element_order(void **state)
{
    (void) state;
    check("v1", "ConfigMap",
          "{\"metadata\":{\"finalizers\":[\"a\",\"b\",\"c\"]}}",
          "{\"metadata\":{\"$setElementOrder/finalizers\":[\"c\",\"b\","
          "\"a\"]}}",
          "{\"metadata\":{\"finalizers\":[\"c\",\"b\",\"a\"]}}", 0, NULL);
    check("v1", "Pod",
          "{\"spec\":{\"containers\":[{\"name\":\"a\"},{\"name\":\"b\"}]}}",
          "{\"spec\":{\"$setElementOrder/containers\":[{\"name\":\"b\"},"
          "{\"name\":\"c\"},{\"name\":\"a\"}],\"containers\":[{\"name\":"
          "\"c\"}]}}",
          "{\"spec\":{\"containers\":[{\"name\":\"b\"},{\"name\":\"c\"},"
          "{\"name\":\"a\"}]}}",
          0, NULL);
    check("v1", "Pod", "{\"spec\":{\"containers\":[{\"name\":\"a\"}]}}",
          "{\"spec\":{\"$setElementOrder/containers\":{}}}", NULL, 400,
          "invalid patch format of setElementOrder list");
}

/* $retainKeys on the Deployment strategy (kubectl apply from
 * RollingUpdate to Recreate). */
static void
test_retain_keys(void **state)
{
    (void) state;
    check("apps/v1", "Deployment",
          "{\"spec\":{\"strategy\":{\"type\":\"RollingUpdate\","
          "\"rollingUpdate\":{\"maxSurge\":1}}}}",
          "{\"spec\":{\"strategy\":{\"$retainKeys\":[\"type\"],\"type\":"
          "\"Recreate\",\"rollingUpdate\":null}}}",
          "{\"spec\":{\"strategy\":{\"type\":\"Recreate\"}}}", 0, NULL);
    check("apps/v1", "Deployment", "{\"spec\":{\"strategy\":{}}}",
          "{\"spec\":{\"strategy\":{\"$retainKeys\":[\"type\"],"
          "\"rollingUpdate\":{}}}}",
          NULL, 422, "patch content doesn't match retainKeys list");
    check("apps/v1", "Deployment", "{\"spec\":{\"strategy\":{}}}",
          "{\"spec\":{\"strategy\":{\"$retainKeys\":\"type\"}}}", NULL, 400,
          "invalid patch format of retainKeys");
}

/* $patch: replace on an object and as a list element; $patch: delete on
 * an object; merge is the default. */
static void
test_patch_directive(void **state)
{
    (void) state;
    check("v1", "Pod",
          "{\"spec\":{\"nodeSelector\":{\"a\":\"1\",\"b\":\"2\"}}}",
          "{\"spec\":{\"nodeSelector\":{\"$patch\":\"replace\",\"c\":\"3\"}}}",
          "{\"spec\":{\"nodeSelector\":{\"c\":\"3\"}}}", 0, NULL);
    check("v1", "Pod",
          "{\"spec\":{\"nodeSelector\":{\"a\":\"1\"},\"hostNetwork\":true}}",
          "{\"spec\":{\"nodeSelector\":{\"$patch\":\"delete\"}}}",
          "{\"spec\":{\"hostNetwork\":true}}", 0, NULL);
    check("v1", "Pod",
          "{\"spec\":{\"containers\":[{\"name\":\"a\"},{\"name\":\"b\"}]}}",
          "{\"spec\":{\"containers\":[{\"name\":\"c\"},{\"$patch\":"
          "\"replace\"}]}}",
          "{\"spec\":{\"containers\":[{\"name\":\"c\"}]}}", 0, NULL);
    check("v1", "Pod", "{\"spec\":{\"nodeSelector\":{\"a\":\"1\"}}}",
          "{\"spec\":{\"nodeSelector\":{\"$patch\":\"merge\",\"b\":\"2\"}}}",
          "{\"spec\":{\"nodeSelector\":{\"a\":\"1\",\"b\":\"2\"}}}", 0, NULL);
    check("v1", "Pod", "{\"spec\":{\"nodeSelector\":{}}}",
          "{\"spec\":{\"nodeSelector\":{\"$patch\":\"explode\"}}}", NULL, 400,
          "unknown patch type: explode");
}

/* A list element without its merge key cannot be merged: 422 naming the
 * key. A directive never ends up in the stored object. */
static void
test_missing_merge_key(void **state)
{
    (void) state;
    check("v1", "Pod", "{\"spec\":{\"containers\":[{\"name\":\"a\"}]}}",
          "{\"spec\":{\"containers\":[{\"image\":\"x\"}]}}", NULL, 422,
          "does not contain declared merge key: name");
    check("v1", "Pod", "{\"spec\":{}}",
          "{\"spec\":{\"containers\":[{\"name\":\"a\",\"env\":[{\"name\":"
          "\"E\"},{\"name\":\"F\",\"$patch\":\"delete\"}],\"resources\":{"
          "\"$patch\":\"replace\",\"limits\":{\"cpu\":\"1\"}}}]}}",
          "{\"spec\":{\"containers\":[{\"name\":\"a\",\"env\":[{\"name\":"
          "\"E\"}],\"resources\":{\"limits\":{\"cpu\":\"1\"}}}]}}",
          0, NULL);
}

/* Custom kinds (DPF's) take no strategic patch: kube-apiserver's 415. */
static void
test_custom_kind_415(void **state)
{
    (void) state;
    json_t *doc = J("{\"spec\":{}}");
    json_t *patch = J("{\"spec\":{\"x\":1}}");
    struct dpf_error err = {0};
    const struct schema_kind *k =
        kind("provisioning.dpu.nvidia.com/v1alpha1", "DPUSet");
    assert_int_equal(schema_strategic_merge(k, doc, patch, &err), -ENOTSUP);
    assert_int_equal(err.code, 415);
    assert_string_equal(err.message,
                        "the body of the request was in an unknown format - "
                        "accepted media types include: "
                        "application/json-patch+json, "
                        "application/merge-patch+json, "
                        "application/apply-patch+yaml");
    json_decref(doc);
    json_decref(patch);
}

/* The list types, map keys and patch strategies show in OpenAPI; a CRD
 * export never carries the patch extensions. */
static void
test_openapi_extensions(void **state)
{
    (void) state;
    json_t *o = schema_openapi_v3(kind("v1", "Pod"));
    json_t *c = json_object_get(
        json_object_get(
            json_object_get(json_object_get(o, "properties"), "spec"),
            "properties"),
        "containers");
    assert_string_equal(
        json_string_value(json_object_get(c, "x-kubernetes-list-type")), "map");
    assert_string_equal(
        json_string_value(json_object_get(c, "x-kubernetes-patch-merge-key")),
        "name");
    assert_string_equal(
        json_string_value(json_object_get(c, "x-kubernetes-patch-strategy")),
        "merge");
    json_t *ports = json_object_get(
        json_object_get(json_object_get(c, "items"), "properties"), "ports");
    json_t *want = J("[\"containerPort\",\"protocol\"]");
    assert_true(
        json_equal(json_object_get(ports, "x-kubernetes-list-map-keys"), want));
    json_decref(want);
    assert_string_equal(json_string_value(json_object_get(
                            ports, "x-kubernetes-patch-merge-key")),
                        "containerPort");
    json_t *tol = json_object_get(
        json_object_get(
            json_object_get(json_object_get(o, "properties"), "spec"),
            "properties"),
        "tolerations");
    assert_string_equal(
        json_string_value(json_object_get(tol, "x-kubernetes-list-type")),
        "atomic");
    json_decref(o);
    size_t n;
    const struct schema_kind *const *all = schema_kinds(&n);
    for (size_t i = 0; i < n; i++) {
        json_t *crd = schema_crd(all[i]);
        if (!crd) {
            continue;
        }
        char *s = json_dumps(crd, JSON_COMPACT);
        assert_null(strstr(s, "x-kubernetes-patch"));
        free(s);
        json_decref(crd);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_containers_by_name),
        cmocka_unit_test(test_nested_keys_and_delete),
        cmocka_unit_test(test_node_condition),
        cmocka_unit_test(test_atomic_lists_replace),
        cmocka_unit_test(test_primitive_set),
        cmocka_unit_test(test_set_element_order),
        cmocka_unit_test(test_retain_keys),
        cmocka_unit_test(test_patch_directive),
        cmocka_unit_test(test_missing_merge_key),
        cmocka_unit_test(test_custom_kind_415),
        cmocka_unit_test(test_openapi_extensions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
