/* jsonpath: the subset of kubectl's JSONPath templates dpfctl supports
 * (get -o jsonpath=..., wait --for=jsonpath=...). Written by hand: no
 * Debian C library implements kubectl's template dialect.
 *
 * Template: literal text mixed with {actions}. Actions:
 *   {.a.b}  {$.a}  {@.a}         field access (dots; keys with dots as
 *                                ['a.b'] or with backslash-escaped dots)
 *   {.items[0]} {.items[-1]}     index (negative from the end)
 *   {.items[1:3]}                slice
 *   {.items[*].metadata.name}    wildcard over arrays and objects (.*)
 *   {..name}                     recursive descent
 *   {.items[?(@.type=="Ready")]} filter: ==, !=, <, <=, >, >= against a
 *                                quoted string, number, true/false, or
 *                                just {?(@.x)} for "exists"
 *   {range .items[*]}...{end}    loop, "." is the current element inside
 *   {"\n"} {"\t"}                string literals
 * Several results of one action print separated by one space; strings
 * print raw, other values as compact JSON; missing keys print nothing
 * (kubectl's --allow-missing-template-keys=true). A template without any
 * '{' is taken as one action ("{" + text + "}"). */
#ifndef DPFCTL_JSONPATH_H
#define DPFCTL_JSONPATH_H

#include <jansson.h>

#include "lib/base/error.h"
#include "lib/base/util.h"

/* Render tmpl against data, appending to out. 0 or -EINVAL with err
 * (400, naming the offset) on a syntax error. */
int jsonpath_render(const char *tmpl, const json_t *data, struct dbuf *out,
                    struct dpf_error *err);
/* Evaluate one path expression ("{.a.b}" or ".a.b") to a new json array
 * of the matching values. 0 or -EINVAL. */
int jsonpath_eval(const char *expr, const json_t *data, json_t **results,
                  struct dpf_error *err);
/* Text of one value as the template prints it (malloc'd). */
char *jsonpath_value_text(const json_t *v);

#endif
