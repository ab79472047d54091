/* selector: Kubernetes label selectors and field selectors.
 *
 * Label selector text (the labelSelector query parameter and kubectl -l):
 * comma-separated requirements, each one of  k=v, k==v, k!=v,
 * k in (a,b), k notin (a,b), k (exists), !k (does not exist).
 * Field selector text: k=v, k==v, k!=v joined by commas, where k is a
 * dotted path (metadata.name, metadata.namespace, spec.nodeName, ...).
 * metav1.LabelSelector objects (matchLabels + matchExpressions with
 * In/NotIn/Exists/DoesNotExist) are also supported, for DPUSet and
 * friends. */
#ifndef DPF_SELECTOR_H
#define DPF_SELECTOR_H

#include <jansson.h>
#include <stdbool.h>

#include "lib/base/error.h"

struct selector;

/* Parse label selector text ("" or NULL = everything). NULL + err (400). */
struct selector *selector_parse_labels(const char *text, struct dpf_error *err);
/* Parse field selector text. allowed is a NULL-terminated list of field
 * paths the caller supports; others are rejected with 400 naming them. */
struct selector *selector_parse_fields(const char *text,
                                       const char *const *allowed,
                                       struct dpf_error *err);
/* From a metav1.LabelSelector JSON object (NULL/null = everything). */
struct selector *selector_from_label_selector(const json_t *ls,
                                              struct dpf_error *err);
void selector_free(struct selector *sel);
/* True if the selector has no requirements. */
bool selector_empty(const struct selector *sel);
/* Does a labels object (JSON object of string->string, may be NULL)
 * satisfy a label selector? */
bool selector_match_labels(const struct selector *sel, const json_t *labels);
/* The same over labels kept elsewhere: get(arg, key) returns the value of
 * label key or NULL when the object has no such label. */
bool selector_match_labels_lookup(const struct selector *sel,
                                  const char *(*get)(const void *arg,
                                                     const char *key),
                                  const void *arg);
/* A label every matching object carries: the first requirement of the
 * form k=v, k==v or k in (v). True with *key and *value (owned by sel)
 * set, false when there is none. Lets a caller walk only the objects
 * with that label. */
bool selector_equality_hint(const struct selector *sel, const char **key,
                            const char **value);
/* Does an object satisfy a field selector (paths looked up in obj;
 * absent fields compare as "")? */
bool selector_match_fields(const struct selector *sel, const json_t *obj);

#endif
