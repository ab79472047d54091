/* schema-columns: the value of a printer column on an object, for Table
 * output (kubectl get). A column is the kind's JSONPath, or a function of
 * the kind's where kubectl computes what JSONPath cannot express. */
#include "api/schema-engine.h"
#include "lib/base/util.h"
#include "lib/codecs/jsonpath.h"

char *
schema_column_value(const struct schema_column *c, const json_t *obj)
{
    if (!c) {
        return xstrdup("");
    }
    if (c->compute) {
        char *s = c->compute(obj);
        return s ? s : xstrdup("");
    }
    if (!c->json_path || !obj) {
        return xstrdup("");
    }
    /* As kube-apiserver's column printer: the first result of the path. */
    json_t *res = NULL;
    if (jsonpath_eval(c->json_path, obj, &res, NULL) < 0) {
        return xstrdup("");
    }
    const json_t *v = json_array_get(res, 0);
    if (!v || json_is_null(v)) {
        json_decref(res);
        return xstrdup("");
    }
    char *out;
    switch (json_typeof(v)) {
    case JSON_STRING:
        out = xstrdup(json_string_value(v));
        break;
    case JSON_INTEGER:
        out = xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        out = xasprintf("%g", json_real_value(v));
        break;
    case JSON_TRUE:
        out = xstrdup("true");
        break;
    case JSON_FALSE:
        out = xstrdup("false");
        break;
    default: {
        char *d = json_dumps(v, JSON_COMPACT);
        out = d ? d : xstrdup("");
        break;
    }
    }
    json_decref(res);
    return out;
}
