/* Fuzz target for the API request decoding path: a request body is
 * decoded with jansson (as the API server does for JSON bodies, and with
 * yamljson for YAML ones) and applied as a merge patch (and, if it is an
 * array, as a JSON patch) to a stored DPU object. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/codecs/jsonpatch.h"
#include "lib/codecs/yamljson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char stored[] =
    "{\"apiVersion\":\"provisioning.dpu.nvidia.com/v1alpha1\","
    "\"kind\":\"DPU\",\"metadata\":{\"name\":\"worker1-0000-08-00\","
    "\"namespace\":\"dpf-operator-system\",\"resourceVersion\":\"42\","
    "\"labels\":{\"provisioning.dpu.nvidia.com/dpuset-name\":\"dpuset\"},"
    "\"finalizers\":[\"provisioning.dpu.nvidia.com/dpu-protection\"]},"
    "\"spec\":{\"nodeName\":\"worker1\",\"bfb\":\"bf-bundle\","
    "\"nodeEffect\":{\"taint\":{\"key\":\"dpu\",\"value\":\"provisioning\","
    "\"effect\":\"NoSchedule\"}},\"cluster\":{\"name\":\"dpu-cplane\","
    "\"namespace\":\"dpu-cplane-tenant1\",\"nodeLabels\":{}}},"
    "\"status\":{\"phase\":\"Initializing\",\"conditions\":[]}}";

static void
apply(const json_t *body)
{
    json_t *obj = json_loads(stored, 0, NULL);
    if (!obj) {
        abort();
    }
    json_t *before = json_deep_copy(obj);
    struct dpf_error err = {0};
    int rc = json_is_array(body) ? jsonpatch_apply(obj, body, &err)
                                 : jsonpatch_merge(obj, body, &err);
    if (rc < 0 && !json_equal(obj, before)) {
        abort();
    }
    if (rc == 0) {
        /* the result must still serialise (it is what gets stored) */
        char *s = json_dumps(obj, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!s) {
            abort();
        }
        free(s);
    }
    json_decref(before);
    json_decref(obj);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *body =
        json_loadb((const char *) data, size, JSON_REJECT_DUPLICATES, &jerr);
    if (body) {
        apply(body);
        json_decref(body);
    }
    json_t *doc = NULL;
    struct dpf_error err = {0};
    if (yamljson_parse_one((const char *) data, size, &doc, &err) == 0) {
        apply(doc);
        json_decref(doc);
    }
    return 0;
}
