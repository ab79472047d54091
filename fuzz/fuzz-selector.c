/* Fuzz target for lib/selector: the input is tried as label selector
 * text, as field selector text (with and without an allow-list) and, if
 * it is JSON, as a metav1.LabelSelector; every accepted selector is
 * matched against a fixed object. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/codecs/selector.h"
#include "lib/base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(struct selector *sel, const struct dpf_error *err, const json_t *obj)
{
    if (!sel) {
        if (!dpf_error_is_set(err)) {
            abort();
        }
        return;
    }
    json_t *labels =
        json_object_get(json_object_get(obj, "metadata"), "labels");
    selector_match_labels(sel, labels);
    selector_match_labels(sel, NULL);
    selector_match_fields(sel, obj);
    if (selector_empty(sel) && !selector_match_labels(sel, labels)) {
        abort();
    }
    selector_free(sel);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const allowed[] = {"metadata.name", "metadata.namespace",
                                          "spec.nodeName", NULL};
    char *text = xstrndup((const char *) data, size);
    json_t *obj = json_loads("{\"metadata\":{\"name\":\"n\",\"labels\":"
                             "{\"app\":\"x\",\"a.b/c\":\"\",\"in\":\"1\"}},"
                             "\"spec\":{\"nodeName\":\"w\",\"n\":3}}",
                             0, NULL);
    struct dpf_error err = {0};
    check(selector_parse_labels(text, &err), &err, obj);
    dpf_error_clear(&err);
    check(selector_parse_fields(text, allowed, &err), &err, obj);
    dpf_error_clear(&err);
    check(selector_parse_fields(text, NULL, &err), &err, obj);
    json_t *ls = json_loadb((const char *) data, size, JSON_DECODE_ANY, NULL);
    if (ls) {
        dpf_error_clear(&err);
        check(selector_from_label_selector(ls, &err), &err, obj);
        json_decref(ls);
    }
    json_decref(obj);
    free(text);
    return 0;
}
