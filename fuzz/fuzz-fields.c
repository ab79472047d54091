/* Fuzz target for field ownership and server-side apply
 * (api/schema-fields.c): the first byte picks a built-in kind and force,
 * the rest is "<live object JSON> NUL <applied configuration JSON>"; the
 * live object's managedFields are read as stored ones. An apply either
 * yields an object or a 409; an Update over the result records without
 * failing. */
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
        {"v1", "ConfigMap"},
    };
    if (size < 1) {
        return 0;
    }
    const char *const *kp = kinds[data[0] % 4];
    bool force = data[0] & 0x80;
    const struct schema_kind *k = schema_find_kind(kp[0], kp[1]);
    const char *s = (const char *) data + 1;
    size--;
    const char *nul = memchr(s, '\0', size);
    if (!nul || !k) {
        return 0;
    }
    json_error_t jerr;
    json_t *live = json_loadb(s, (size_t) (nul - s), 0, &jerr);
    json_t *cfg = json_loadb(nul + 1, size - (size_t) (nul - s) - 1, 0, &jerr);
    if (json_is_object(live) && json_is_object(cfg)) {
        struct schema_field_manager m = {"fuzz", NULL, "2026-01-01T00:00:00Z"};
        json_t *out = NULL;
        struct dpf_error err = {0};
        int rc = schema_fields_apply(k, live, cfg, &m, force, &out, &err);
        if (rc < 0 && err.code != 409) {
            abort();
        }
        if (rc == 0) {
            if (!json_is_object(out)) {
                abort();
            }
            json_t *next = json_deep_copy(out);
            schema_fields_update(k, out, next, &m);
            json_decref(next);
            json_decref(out);
        }
    }
    json_decref(live);
    json_decref(cfg);
    return 0;
}
