/* Fuzz target for the strategic merge patch (api/schema-smpatch.c): the
 * first byte picks a built-in kind, the rest is "<object JSON> NUL <patch
 * JSON>" (without a NUL, the whole rest is the patch for a small Pod).
 * A patch either applies, leaving an object, or fails with 400 or 422. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const kinds[][2] = {
        {"v1", "Pod"},
        {"v1", "Node"},
        {"apps/v1", "Deployment"},
        {"apps/v1", "DaemonSet"},
        {"v1", "ConfigMap"},
        {"v1", "Namespace"},
    };
    if (size < 1) {
        return 0;
    }
    const char *const *kp = kinds[data[0] % (sizeof kinds / sizeof kinds[0])];
    const struct schema_kind *k = schema_find_kind(kp[0], kp[1]);
    const char *s = (const char *) data + 1;
    size--;
    const char *nul = memchr(s, '\0', size);
    json_t *target, *patch;
    json_error_t jerr;
    if (nul) {
        target = json_loadb(s, (size_t) (nul - s), 0, &jerr);
        patch = json_loadb(nul + 1, size - (size_t) (nul - s) - 1, 0, &jerr);
    } else {
        target = json_loads("{\"spec\":{\"containers\":[{\"name\":\"a\","
                            "\"env\":[{\"name\":\"E\"}],\"ports\":[{"
                            "\"containerPort\":80}]}]},\"metadata\":{"
                            "\"finalizers\":[\"f\"]}}",
                            0, &jerr);
        patch = json_loadb(s, size, 0, &jerr);
    }
    if (k && target && patch) {
        struct dpf_error err = {0};
        int rc = schema_strategic_merge(k, target, patch, &err);
        if (rc < 0 && err.code != 400 && err.code != 422) {
            abort();
        }
        if (rc == 0 && !json_is_object(target)) {
            abort();
        }
    }
    json_decref(target);
    json_decref(patch);
    return 0;
}
