/* Unit tests for the resource schema (api/schema.h). */
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
load(const char *text)
{
    json_error_t jerr;
    json_t *o = json_loads(text, 0, &jerr);
    if (!o) {
        fail_msg("bad test JSON: %s: %s", jerr.text, text);
    }
    return o;
}

static void
test_registry(void **state)
{
    size_t n;
    const struct schema_kind *const *all = schema_kinds(&n);
    assert_true(n >= 5);
    assert_non_null(all[0]);
    const struct schema_kind *k =
        schema_find_resource("provisioning.dpu.nvidia.com", "v1alpha1", "dpus");
    assert_non_null(k);
    assert_string_equal(k->kind, "DPU");
    assert_ptr_equal(
        schema_find_kind("provisioning.dpu.nvidia.com/v1alpha1", "DPU"), k);
    assert_ptr_equal(schema_find_name("dpu"), k);
    assert_ptr_equal(schema_find_name("DPUs.provisioning.dpu.nvidia.com"), k);
    assert_string_equal(schema_api_version(k),
                        "provisioning.dpu.nvidia.com/v1alpha1");
    assert_string_equal(schema_find_name("po")->kind, "Pod");
    assert_string_equal(schema_api_version(schema_find_name("pods")), "v1");
    assert_null(schema_find_resource("", "v1", "nothings"));
}

static void
test_dpuset_max_unavailable(void **state)
{
    const struct schema_kind *k = schema_find_name("dpuset");
    json_t *o = load("{\"apiVersion\":\"provisioning.dpu.nvidia.com/v1alpha1\","
                     "\"kind\":\"DPUSet\",\"metadata\":{\"name\":\"dpuset\","
                     "\"namespace\":\"default\"},\"spec\":{\"strategy\":{"
                     "\"type\":\"RollingUpdate\",\"rollingUpdate\":{"
                     "\"maxUnavailable\":\"0%\"}}}}");
    schema_default(k, o);
    struct dpf_error err;
    assert_int_equal(schema_validate(k, o, NULL, &err), -EINVAL);
    assert_int_equal(err.code, 422);
    assert_string_equal(err.reason, "Invalid");
    assert_int_equal(err.n_causes, 1);
    assert_string_equal(err.causes[0].field,
                        "spec.strategy.rollingUpdate.maxUnavailable");
    assert_string_equal(
        err.message,
        "DPUSet.provisioning.dpu.nvidia.com \"dpuset\" is invalid: "
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": "
        "must be in range (0%, 100%]");
    json_decref(o);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_dpuset_max_unavailable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
