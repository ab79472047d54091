/* jsonpatch: JSON Merge Patch (RFC 7386) and JSON Patch (RFC 6902) on
 * jansson trees. Written by hand: no Debian C library implements them.
 * Both functions modify target in place and leave it unchanged on error. */
#ifndef DPF_JSONPATCH_H
#define DPF_JSONPATCH_H

#include <jansson.h>

#include "lib/base/error.h"

/* RFC 7386: null members delete, objects merge recursively, anything else
 * replaces. 0 (cannot fail for object patches) or -EINVAL if patch is not
 * an object or target is not an object. */
int jsonpatch_merge(json_t *target, const json_t *patch, struct dpf_error *err);
/* RFC 6902: add/remove/replace/move/copy/test with JSON Pointers (RFC
 * 6901). -EINVAL with err (400 BadRequest, naming the failing operation
 * index and path) on a malformed patch or a failed test. */
int jsonpatch_apply(json_t *target, const json_t *ops, struct dpf_error *err);

#endif
