/* Fuzz target for lib/jsonpatch: the input is "<target JSON> NUL <patch
 * JSON>" (without a NUL, the whole input is the patch for a fixed
 * target). Both patch kinds are applied; a failing patch must leave the
 * target exactly as it was. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/codecs/jsonpatch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(json_t *target, const json_t *patch, bool merge)
{
    json_t *before = json_deep_copy(target);
    struct dpf_error err = {0};
    int rc = merge ? jsonpatch_merge(target, patch, &err)
                   : jsonpatch_apply(target, patch, &err);
    if (rc < 0 && (err.code != 400 || !json_equal(before, target))) {
        abort();
    }
    if (rc == 0 && merge && json_is_object(patch)) {
        /* merging the same patch again changes nothing (idempotence) */
        json_t *again = json_deep_copy(target);
        jsonpatch_merge(again, patch, NULL);
        if (!json_equal(again, target)) {
            abort();
        }
        json_decref(again);
    }
    json_decref(before);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *) data;
    const char *nul = memchr(s, '\0', size);
    json_t *target, *patch;
    json_error_t jerr;
    if (nul) {
        target = json_loadb(s, (size_t) (nul - s), JSON_DECODE_ANY, &jerr);
        patch = json_loadb(nul + 1, size - (size_t) (nul - s) - 1,
                           JSON_DECODE_ANY, &jerr);
    } else {
        target = json_loads("{\"a\":{\"b\":[1,2,{\"c\":null}]},\"d\":\"e\","
                            "\"~/\":{\"\":0}}",
                            0, &jerr);
        patch = json_loadb(s, size, JSON_DECODE_ANY, &jerr);
    }
    if (target && patch) {
        json_t *t2 = json_deep_copy(target);
        check(target, patch, false);
        check(t2, patch, true);
        json_decref(t2);
    }
    json_decref(target);
    json_decref(patch);
    return 0;
}
