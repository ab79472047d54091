/* cmd-apply: dpfctl apply (kubectl client-side apply). The helpers are
 * public for the unit tests. */
#ifndef DPFCTL_CMD_APPLY_H
#define DPFCTL_CMD_APPLY_H

#include <jansson.h>

/* The annotation kubectl keeps the last applied object in. */
#define CMD_APPLY_LAST_APPLIED \
    "kubectl.kubernetes.io/last-applied-configuration"

/* kubectl's three-way JSON merge patch for objects without a strategic
 * merge schema (custom resources): fields of original (the last applied
 * configuration, may be NULL) missing from modified become null, and
 * fields of modified that differ from current are set; lists replace.
 * Returns a new object ({} when nothing changes). */
json_t *cmd_apply_three_way(const json_t *original, const json_t *modified,
                            const json_t *current);

/* The object to send: a copy of obj with the last-applied annotation set
 * to the compact, key-sorted JSON of obj (without that annotation) plus a
 * newline, as kubectl writes it. New ref. */
json_t *cmd_apply_with_annotation(const json_t *obj);

#endif
