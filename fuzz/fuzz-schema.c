/* Fuzz target for api/schema: the first byte picks a kind and an unknown
 * field mode, the rest is a JSON object run through what the API server
 * does with a write (prune, default, validate as create and as update),
 * then through every printer column and the quantity parser. Invariants:
 * a rejected object carries a message and at least one cause; defaulting
 * is idempotent. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/codecs/quantity.h"
#include "api/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t n;
    const struct schema_kind *const *kinds = schema_kinds(&n);
    const struct schema_kind *k = kinds[data[0] % n];
    enum schema_unknown_mode mode = (enum schema_unknown_mode)(data[0] / n % 3);

    char *text = malloc(size);
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    struct quantity q;
    if (quantity_parse(text, &q) == 0) {
        char buf[64];
        quantity_format(&q, buf, sizeof buf);
    }
    free(text);

    json_t *obj = json_loadb((const char *) data + 1, size - 1, 0, NULL);
    if (!json_is_object(obj)) {
        json_decref(obj);
        return 0;
    }
    struct dpf_error err = {0};
    json_t *warn = NULL;
    if (schema_prune(k, obj, mode, &warn, &err) < 0 &&
        (err.code != 400 || !err.message[0])) {
        abort();
    }
    json_decref(warn);
    schema_default(k, obj);
    json_t *again = json_deep_copy(obj);
    schema_default(k, again);
    if (!json_equal(obj, again)) {
        abort(); /* defaulting must be idempotent */
    }
    json_decref(again);
    int rc = schema_validate(k, obj, NULL, &err);
    if (rc < 0 && (!err.message[0] || err.n_causes == 0 || err.code < 400)) {
        abort();
    }
    rc = schema_validate(k, obj, obj, &err);
    if (rc < 0 && !err.message[0]) {
        abort();
    }
    for (const struct schema_column *c = k->columns; c && c->name; c++) {
        free(schema_column_value(c, obj));
    }
    json_decref(obj);
    return 0;
}
