/* Fuzz the API server's request decoding without HTTP: a body (JSON or
 * YAML) for one kind goes through decoding, apiVersion/kind checks,
 * pruning (Ignore/Warn/Strict), defaulting and validation
 * (as_admit_create); an admitted object is then serialised, given a
 * resourceVersion by the text injector and rendered as a Table row, as a
 * GET would. The raw body also goes through the label extractor that
 * list and watch use for label selectors.
 *
 * Input: byte 0 picks the kind (index modulo the registry size), byte 1
 * bit 0 picks YAML over JSON, bits 1-2 the fieldValidation mode; the rest
 * is the body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dpf-server/apiserver-private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const modes[] = {NULL, "Ignore", "Warn", "Strict"};
    if (size < 2) {
        return 0;
    }
    size_t n;
    const struct schema_kind *const *kinds = schema_kinds(&n);
    if (n == 0) {
        return 0;
    }
    const struct schema_kind *k = kinds[data[0] % n];
    const char *ct = (data[1] & 1) ? "application/yaml" : "application/json";
    const char *fv = modes[(data[1] >> 1) & 3];
    const char *body = (const char *) data + 2;
    size_t len = size - 2;
    json_t *obj = NULL, *warnings = NULL;
    struct as_error ae = {0};
    /* the label extractor must survive any text */
    json_decref(as_load_labels(body, len));
    int r = as_admit_create(k, k->namespaced ? "default" : NULL, body, len, ct,
                            fv, &obj, &warnings, &ae);
    if (r == 0) {
        char *text = json_dumps(obj, JSON_COMPACT);
        size_t out_len;
        char *with_rv = as_inject_rv(text, strlen(text), 42, &out_len);
        json_t *back = json_loadb(with_rv, out_len, 0, NULL);
        if (!back) {
            abort(); /* the injector must keep the JSON valid */
        }
        const char *rv = json_string_value(json_object_get(
            json_object_get(back, "metadata"), "resourceVersion"));
        if (!rv || strcmp(rv, "42") != 0) {
            abort();
        }
        json_t *row = as_table_row(k, back, AS_INCLUDE_METADATA, 0);
        json_decref(row);
        json_decref(back);
        free(with_rv);
        free(text);
    }
    json_decref(obj);
    json_decref(warnings);
    return 0;
}
