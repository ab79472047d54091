/* schema-object: reading and building objects by dotted path, for the
 * engine and the kinds' rules. */
#include <string.h>

#include "api/schema-engine.h"

json_t *
schema_get(const json_t *obj, const char *dotted)
{
    const json_t *cur = obj;
    const char *p = dotted;
    while (cur && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t) (dot - p) : strlen(p);
        if (!json_is_object(cur)) {
            return NULL;
        }
        cur = json_object_getn(cur, p, n);
        p += n;
        if (*p == '.') {
            p++;
        }
    }
    return (json_t *) cur;
}

const char *
schema_get_str(const json_t *obj, const char *dotted)
{
    return json_string_value(schema_get(obj, dotted));
}

json_t *
schema_ensure_obj(json_t *obj, const char *dotted)
{
    json_t *cur = obj;
    const char *p = dotted;
    while (cur && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t) (dot - p) : strlen(p);
        json_t *next = json_object_getn(cur, p, n);
        if (!json_is_object(next)) {
            next = json_object();
            json_object_setn_new(cur, p, n, next);
        }
        cur = next;
        p += n;
        if (*p == '.') {
            p++;
        }
    }
    return cur;
}
