/* schema-groups: prints the schema's group registry as JSON, for the
 * system test that checks discovery lists exactly these groups:
 * [{"name": "", "preferredVersion": "v1", "versions": ["v1"]}, ...]. */
#include <jansson.h>
#include <stdio.h>

#include "api/schema.h"

int
main(void)
{
    size_t n;
    const struct schema_group *const *groups = schema_groups(&n);
    json_t *out = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *versions = json_array();
        for (const struct schema_group_version *v = groups[i]->versions;
             v->version; v++) {
            json_array_append_new(versions, json_string(v->version));
        }
        json_array_append_new(
            out, json_pack("{s:s,s:s,s:o}", "name", groups[i]->name,
                           "preferredVersion", groups[i]->preferred_version,
                           "versions", versions));
    }
    int rc = json_dumpf(out, stdout, JSON_COMPACT) == 0 ? 0 : 1;
    putchar('\n');
    json_decref(out);
    return rc;
}
