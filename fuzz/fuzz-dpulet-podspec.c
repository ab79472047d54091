/* Fuzz target: a pod spec (YAML or JSON, as a static pod manifest or an
 * API object arrives) -> dpulet's run plan (dpulet/podplan.h). Whatever
 * the input, the plan builder either succeeds or fails with an error that
 * names the pod and a field; it never reads out of bounds or leaks. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dpulet/podplan.h"
#include "lib/codecs/yamljson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 20) {
        return 0;
    }
    json_t *doc = NULL;
    struct dpf_error err = {0};
    if (yamljson_parse_one((const char *) data, size, &doc, &err) < 0) {
        return 0;
    }
    struct dpulet_plan *p = NULL;
    memset(&err, 0, sizeof(err));
    if (dpulet_plan_from_pod(doc, &p, &err) == 0) {
        /* walk the plan as the runtime does */
        for (size_t i = 0; i < p->n_containers; i++) {
            const struct dpulet_container *c = &p->containers[i];
            for (char **a = c->argv; *a; a++) {
                (void) strlen(*a);
            }
            (void) dpulet_plan_container(p, c->name);
        }
        dpulet_plan_free(p);
    } else if (!strstr(err.message, "pod ")) {
        __builtin_trap(); /* every error names the pod */
    }
    json_decref(doc);
    return 0;
}
