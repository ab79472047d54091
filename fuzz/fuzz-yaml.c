/* Fuzz target for lib/yamljson: any byte string either parses or fails
 * with a 400 error naming a position; when it parses, emitting each
 * document and parsing the text again gives an equal tree. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/codecs/yamljson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dpf_error err = {0};
    json_t *docs = NULL;
    if (yamljson_parse((const char *) data, size, &docs, &err) < 0) {
        if (err.code != 400 || docs) {
            abort();
        }
        return 0;
    }
    size_t i;
    json_t *doc;
    json_array_foreach(docs, i, doc)
    {
        char *y = yamljson_emit(doc);
        json_t *back = NULL;
        struct dpf_error err2 = {0};
        if (yamljson_parse_one(y, strlen(y), &back, &err2) < 0) {
            fprintf(stderr, "re-parse failed: %s\n---\n%s\n", err2.message, y);
            abort();
        }
        if (!json_equal(doc, back)) {
            char *a = json_dumps(doc, JSON_ENCODE_ANY);
            char *b = json_dumps(back, JSON_ENCODE_ANY);
            fprintf(stderr, "round trip differs\n%s\n%s\n---\n%s\n", a, b, y);
            abort();
        }
        json_decref(back);
        free(y);
    }
    json_decref(docs);
    return 0;
}
