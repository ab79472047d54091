/* schema-bench: cost of what the API server does with every write — prune,
 * default and validate — for a DPU, a DPUService and a DPUServiceIPAM, plus
 * registry lookups. Prints ns per operation; never fails on speed. */
#include <stdio.h>
#include <stdlib.h>

#include "api/schema.h"
#include "lib/base/util.h"

static const char dpu_json[] =
    "{\"apiVersion\":\"provisioning.dpu.nvidia.com/v1alpha1\",\"kind\":"
    "\"DPU\",\"metadata\":{\"name\":\"worker1-0000-04-00\",\"namespace\":"
    "\"dpf-operator-system\",\"labels\":{\"provisioning.dpu.nvidia.com/"
    "dpuset-name\":\"dpuset\",\"provisioning.dpu.nvidia.com/"
    "dpu-pciAddress\":\"0000-04-00\"},\"finalizers\":[\"provisioning.dpu."
    "nvidia.com/dpu-protection\"]},\"spec\":{\"nodeName\":\"worker1\","
    "\"bfb\":\"bf-bundle\",\"pciAddress\":\"0000-04-00\",\"dpuFlavor\":"
    "\"dpf-provisioning-hbn\",\"nodeEffect\":{\"taint\":{\"key\":\"dpu\","
    "\"value\":\"provisioning\",\"effect\":\"NoSchedule\"}},\"cluster\":{"
    "\"name\":\"dpu-cplane-tenant1\",\"namespace\":\"dpu-cplane-tenant1\"}},"
    "\"status\":{\"phase\":\"Ready\",\"conditions\":[{\"type\":\"Ready\","
    "\"status\":\"True\",\"reason\":\"Ready\",\"message\":\"\","
    "\"lastTransitionTime\":\"2024-11-22T03:56:27Z\"},{\"type\":"
    "\"Initialized\",\"status\":\"True\",\"reason\":\"Initialized\","
    "\"message\":\"\",\"lastTransitionTime\":\"2024-11-22T03:56:27Z\"}]}}";

static const char svc_json[] =
    "{\"apiVersion\":\"svc.dpu.nvidia.com/v1alpha1\",\"kind\":\"DPUService\","
    "\"metadata\":{\"name\":\"doca-hbn\",\"namespace\":\"dpf-operator-"
    "system\"},\"spec\":{\"serviceID\":\"doca-hbn\",\"interfaces\":[\"p0-sf\","
    "\"p1-sf\",\"host-pf0-sf\",\"host-pf1-sf\"],\"helmChart\":{\"source\":{"
    "\"repoURL\":\"https://helm.ngc.nvidia.com/nvidia/doca\",\"version\":"
    "\"1.0.1\",\"chart\":\"doca-hbn\"},\"values\":{\"image\":{\"repository\":"
    "\"nvcr.io/nvidia/doca/doca_hbn\",\"tag\":\"2.4.1-doca2.9.1\"}}}}}";

static const char ipam_json[] =
    "{\"apiVersion\":\"svc.dpu.nvidia.com/v1alpha1\",\"kind\":"
    "\"DPUServiceIPAM\",\"metadata\":{\"name\":\"pool1\",\"namespace\":"
    "\"dpf-operator-system\"},\"spec\":{\"ipv4Network\":{\"network\":"
    "\"10.0.121.0/24\",\"gatewayIndex\":2,\"prefixSize\":29}}}";

static void
bench_object(const char *name, const char *text, int iters)
{
    json_t *proto = json_loads(text, 0, NULL);
    const struct schema_kind *k = schema_find_kind(
        json_string_value(json_object_get(proto, "apiVersion")),
        json_string_value(json_object_get(proto, "kind")));
    struct dpf_error err;
    json_t *obj = json_deep_copy(proto);
    schema_prune(k, obj, SCHEMA_UNKNOWN_PRUNE, NULL, NULL);
    schema_default(k, obj);
    if (schema_validate(k, obj, NULL, &err) < 0) {
        fprintf(stderr, "%s: %s\n", name, err.message);
        exit(1);
    }
    int64_t t0 = time_mono_ns();
    for (int i = 0; i < iters; i++) {
        schema_validate(k, obj, NULL, &err);
    }
    int64_t t1 = time_mono_ns();
    for (int i = 0; i < iters; i++) {
        schema_validate(k, obj, obj, &err);
    }
    int64_t t2 = time_mono_ns();
    for (int i = 0; i < iters; i++) {
        json_t *o = json_deep_copy(proto);
        schema_prune(k, o, SCHEMA_UNKNOWN_WARN, NULL, &err);
        schema_default(k, o);
        schema_validate(k, o, NULL, &err);
        json_decref(o);
    }
    int64_t t3 = time_mono_ns();
    for (int i = 0; i < iters; i++) {
        json_decref(json_deep_copy(proto));
    }
    int64_t t4 = time_mono_ns();
    printf("%-16s validate(create) %7.2f us  validate(update) %7.2f us  "
           "prune+default+validate %7.2f us (copy %5.2f us)\n",
           name, (t1 - t0) / 1e3 / iters, (t2 - t1) / 1e3 / iters,
           ((t3 - t2) - (t4 - t3)) / 1e3 / iters, (t4 - t3) / 1e3 / iters);
    json_decref(obj);
    json_decref(proto);
}

int
main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 100000;
    bench_object("DPU", dpu_json, iters);
    bench_object("DPUService", svc_json, iters);
    bench_object("DPUServiceIPAM", ipam_json, iters);
    int64_t t0 = time_mono_ns();
    int hits = 0;
    for (int i = 0; i < iters * 10; i++) {
        hits += schema_find_resource("svc.dpu.nvidia.com", "v1alpha1",
                                     "dpuserviceipams") != NULL;
    }
    int64_t t1 = time_mono_ns();
    printf("find_resource    %7.1f ns (%d hits)\n",
           (t1 - t0) / (double) (iters * 10), hits);
    return 0;
}
