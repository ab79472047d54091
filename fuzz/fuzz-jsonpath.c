/* Fuzz target for dpfctl's JSONPath templates: the input is rendered as a
 * template against a fixed object, and evaluated as one expression. A
 * failure must come with an error message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/codecs/jsonpath.h"
#include "lib/base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = xstrndup((const char *) data, size);
    json_t *obj = json_loads(
        "{\"kind\":\"List\",\"items\":[{\"metadata\":{\"name\":\"a\","
        "\"labels\":{\"x.y/z\":\"1\"}},\"status\":{\"conditions\":[{\"type\":"
        "\"Ready\",\"status\":\"True\"}],\"n\":3}},{\"metadata\":{\"name\":"
        "\"b\"},\"spec\":[1,2.5,null,true,\"s\"]}]}",
        0, NULL);
    struct dbuf out;
    struct dpf_error err = {0};
    dbuf_init(&out);
    if (jsonpath_render(text, obj, &out, &err) < 0 && !err.message[0]) {
        abort();
    }
    dbuf_free(&out);
    json_t *res = NULL;
    dpf_error_clear(&err);
    if (jsonpath_eval(text, obj, &res, &err) == 0) {
        if (!json_is_array(res)) {
            abort();
        }
        json_decref(res);
    } else if (!err.message[0]) {
        abort();
    }
    json_decref(obj);
    free(text);
    return 0;
}
