/* yamljson: YAML text <-> jansson trees, with libyaml underneath.
 *
 * Parsing follows what kubectl users expect from sigs.k8s.io/yaml: plain
 * scalars resolve to null (~, null, empty), booleans (true/false; also
 * yes/no/on/off of YAML 1.1), integers (decimal, 0x, 0o), floats, else
 * strings; quoted scalars are always strings; anchors/aliases are expanded
 * (with a cap against alias bombs); mapping keys must be scalars and are
 * used as strings. Multi-document streams ("---") give one array element per
 * non-empty document. Errors name the line and column. */
#ifndef DPF_YAMLJSON_H
#define DPF_YAMLJSON_H

#include <jansson.h>
#include <stddef.h>

#include "lib/base/error.h"

/* Parse a YAML (or JSON: JSON is YAML) stream. On success *docs is a new
 * json array with one element per non-empty document and 0 is returned;
 * on failure -EINVAL with err set (code 400, reason "BadRequest"). */
int yamljson_parse(const char *text, size_t len, json_t **docs,
                   struct dpf_error *err);
/* Parse exactly one document (error if zero or more than one). */
int yamljson_parse_one(const char *text, size_t len, json_t **doc,
                       struct dpf_error *err);
/* Emit one document as block YAML (kubectl -o yaml style: two-space
 * indent, sequences not indented under their key, strings quoted only when
 * needed to round-trip). Returns a malloc'd NUL-terminated string. */
char *yamljson_emit(const json_t *doc);
/* How many JSON values v holds, itself included, counted recursively:
 * the bound on alias expansion here and on JSON Patch "copy". */
size_t yamljson_node_count(const json_t *v);

#endif
