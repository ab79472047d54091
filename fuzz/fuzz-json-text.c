/* Fuzz target for lib/codecs/json-text: the input is scanned for a few
 * member names and a member is inserted; every span found lies inside
 * the input, and when jansson reads the input as an object without
 * duplicate keys, a member found by the scanner parses to the value
 * jansson has for it, and an insertion (a member, or the resourceVersion
 * with json_text_set_rv) gives JSON that jansson reads. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"
#include "lib/codecs/json-text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"metadata", "labels", "a", ""};
    const char *s = (const char *) data;
    json_t *whole = json_loadb(s, size, JSON_REJECT_DUPLICATES, NULL);
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        size_t a, b;
        if (!json_text_member(s, size, names[k], &a, &b)) {
            continue;
        }
        if (a >= b || b > size) {
            abort();
        }
        json_t *v = json_text_load_path(s, size, JSON_TEXT_PATH(names[k]));
        if (json_is_object(whole) &&
            !json_equal(v, json_object_get(whole, names[k]))) {
            abort();
        }
        json_decref(v);
    }
    /* a path agrees with the tree */
    json_t *labels =
        json_text_load_path(s, size, JSON_TEXT_PATH("metadata", "labels"));
    json_t *want =
        json_object_get(json_object_get(whole, "metadata"), "labels");
    if (json_is_object(whole) && (labels || want) &&
        !json_equal(labels, want)) {
        abort();
    }
    json_decref(labels);
    struct dbuf out;
    dbuf_init(&out);
    if (json_text_set(&out, s, size, "metadata", "resourceVersion", "\"1\"")) {
        if (json_is_object(whole)) {
            /* valid JSON stays valid, and the member reads back */
            json_t *j = json_loadb(out.data, out.len, 0, NULL);
            if (!json_is_object(j)) {
                abort();
            }
            json_t *md = json_object_get(j, "metadata");
            if (json_is_object(json_object_get(whole, "metadata")) &&
                strcmp(json_string_value(json_object_get(md, "resourceVersion"))
                           ?: "",
                       "1") != 0) {
                abort();
            }
            json_decref(j);
        }
    } else if (out.len) {
        abort();
    }
    dbuf_free(&out);
    /* the revision set: a JSON object keeps parsing, with the revision in
     * its own metadata; anything else is refused, b untouched */
    dbuf_init(&out);
    if (json_text_set_rv(&out, s, size, 42)) {
        if (json_is_object(whole)) {
            json_t *j = json_loadb(out.data, out.len, 0, NULL);
            const char *rv = json_string_value(json_object_get(
                json_object_get(j, "metadata"), "resourceVersion"));
            if (!json_is_object(j) || !rv || strcmp(rv, "42") != 0) {
                abort();
            }
            json_decref(j);
        }
    } else if (out.len) {
        abort();
    }
    dbuf_free(&out);
    json_decref(whole);
    return 0;
}
