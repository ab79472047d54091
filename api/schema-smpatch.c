/* schema-smpatch: Kubernetes' strategic merge patch, driven by the patch
 * strategies and merge keys declared on the field tree.
 *
 * Semantics follow apimachinery's strategicpatch package: an object
 * merges key by key (null deletes); a list whose field says "merge" is
 * merged by its merge key (lists of objects) or as a set (lists of
 * scalars), every other list is replaced; the directives are
 * `$patch: replace|delete|merge` (on an object, or as a list element),
 * `$retainKeys` (keys of the original not listed are cleared),
 * `$deleteFromPrimitiveList/<field>` and `$setElementOrder/<field>`.
 * Fields the schema does not declare (preserve-unknown subtrees) merge as
 * a JSON merge patch does: objects by key, lists replaced.
 *
 * The patch is never modified; what goes into the object is copied. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api/schema-engine.h"
#include "lib/base/util.h"

#define SMP_MAX_DEPTH 64

/* Kubernetes' mergepatch error texts; the malformed ones are 400. */
#define SMP_BAD_RETAIN "invalid patch format of retainKeys"
#define SMP_BAD_PRIMITIVE "invalid patch format of primitive list"
#define SMP_BAD_ORDER "invalid patch format of setElementOrder list"
#define SMP_RETAIN_MISMATCH "patch content doesn't match retainKeys list"

#define DELETE_PREFIX "$deleteFromPrimitiveList/"
#define ORDER_PREFIX "$setElementOrder/"

static int smp_merge_map(json_t *orig, const json_t *patch,
                         const struct schema_node *n, int depth,
                         struct dpf_error *err);

/* The schema of field key of an object node n (NULL when undeclared). */
static const struct schema_node *
smp_child(const struct schema_node *n, const char *key)
{
    if (!n) {
        return NULL;
    }
    if (n->type == SCHEMA_T_MAP) {
        return n->items;
    }
    if (n->type != SCHEMA_T_OBJECT || !n->fields) {
        return NULL;
    }
    for (const struct schema_field *f = n->fields; f->name; f++) {
        if (!strcmp(f->name, key)) {
            return f->node;
        }
    }
    return NULL;
}

static bool
smp_strategy_has(const struct schema_node *n, const char *word)
{
    const char *s = n ? n->patch_strategy : NULL;
    if (!s) {
        return false;
    }
    size_t wl = strlen(word);
    while (*s) {
        size_t l = strcspn(s, ",");
        if (l == wl && !strncmp(s, word, wl)) {
            return true;
        }
        s += l + (s[l] == ',');
    }
    return false;
}

static const char *
smp_directive(const json_t *v)
{
    return json_string_value(json_object_get(v, "$patch"));
}

/* A patch value as it enters the object when nothing was there: merged
 * into an empty value of its type so nested directives are applied and
 * never stored. *out is NULL when the value deletes itself. */
static int smp_fresh(const json_t *pv, const struct schema_node *n, int depth,
                     json_t **out, struct dpf_error *err);

static int smp_merge_list(json_t *orig, const json_t *parr,
                          const struct schema_node *n, int depth,
                          struct dpf_error *err);

static int
smp_fresh(const json_t *pv, const struct schema_node *n, int depth,
          json_t **out, struct dpf_error *err)
{
    *out = NULL;
    if (json_is_object(pv)) {
        const char *d = smp_directive(pv);
        if (d && !strcmp(d, "delete")) {
            return 0;
        }
        json_t *o = json_object();
        int r = smp_merge_map(o, pv, n, depth + 1, err);
        if (r < 0) {
            json_decref(o);
            return r;
        }
        *out = o;
        return 0;
    }
    if (json_is_array(pv)) {
        json_t *a = json_array();
        int r = smp_merge_list(a, pv, n, depth + 1, err);
        if (r < 0) {
            json_decref(a);
            return r;
        }
        *out = a;
        return 0;
    }
    *out = json_deep_copy(pv);
    return 0;
}

/* The merge-key value of list element v, or NULL. */
static const json_t *
smp_key_of(const json_t *v, const char *key)
{
    return json_is_object(v) ? json_object_get(v, key) : NULL;
}

/* Index of the element of arr whose merge key equals kv, or -1. */
static ssize_t
smp_find(const json_t *arr, const char *key, const json_t *kv)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        const json_t *ek = smp_key_of(e, key);
        if (ek && json_equal(ek, kv)) {
            return (ssize_t) i;
        }
    }
    return -1;
}

/* Merge a list of objects by key (n is the list's node). */
static int
smp_merge_keyed(json_t *orig, const json_t *parr, const struct schema_node *n,
                int depth, struct dpf_error *err)
{
    const char *key = n->patch_merge_key;
    size_t i;
    json_t *pv;
    /* A {"$patch": "replace"} element: the list becomes the patch's other
     * elements. */
    json_array_foreach(parr, i, pv)
    {
        const char *d = smp_directive(pv);
        if (d && !strcmp(d, "replace")) {
            json_array_clear(orig);
            break;
        }
    }
    json_array_foreach(parr, i, pv)
    {
        if (!json_is_object(pv)) {
            dpf_error_set(err, 422, "Invalid",
                          "the strategic merge patch of a list merged by "
                          "\"%s\" holds a %s, not an object",
                          key, schema_json_type_name(pv));
            return -EINVAL;
        }
        const char *d = smp_directive(pv);
        if (d && !strcmp(d, "replace")) {
            continue;
        }
        const json_t *kv = json_object_get(pv, key);
        if (!kv) {
            char *s = json_dumps(pv, JSON_COMPACT | JSON_SORT_KEYS);
            dpf_error_set(err, 422, "Invalid",
                          "map: %s does not contain declared merge key: %s",
                          s ? s : "{}", key);
            free(s);
            return -EINVAL;
        }
        if (d && !strcmp(d, "delete")) {
            ssize_t at;
            while ((at = smp_find(orig, key, kv)) >= 0) {
                json_array_remove(orig, (size_t) at);
            }
            continue;
        }
        if (d && strcmp(d, "merge") != 0) {
            dpf_error_set(err, 400, "BadRequest",
                          "unknown patch type: %s in map with %s", d, key);
            return -EINVAL;
        }
        ssize_t at = smp_find(orig, key, kv);
        if (at >= 0) {
            json_t *e = json_array_get(orig, (size_t) at);
            int r = smp_merge_map(e, pv, n->items, depth + 1, err);
            if (r < 0) {
                return r;
            }
        } else {
            json_t *fresh;
            int r = smp_fresh(pv, n->items, depth, &fresh, err);
            if (r < 0) {
                return r;
            }
            if (fresh) {
                json_array_append_new(orig, fresh);
            }
        }
    }
    return 0;
}

static bool
smp_array_has(const json_t *arr, const json_t *v)
{
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (json_equal(e, v)) {
            return true;
        }
    }
    return false;
}

/* Merge parr into the list orig (n: the list's node, may be NULL). */
static int
smp_merge_list(json_t *orig, const json_t *parr, const struct schema_node *n,
               int depth, struct dpf_error *err)
{
    if (depth > SMP_MAX_DEPTH) {
        dpf_error_set(err, 422, "Invalid", "the patch nests too deeply");
        return -EINVAL;
    }
    if (!smp_strategy_has(n, "merge")) {
        /* Replaced; elements still lose their directives. */
        json_array_clear(orig);
        size_t i;
        json_t *pv;
        json_array_foreach(parr, i, pv)
        {
            json_t *fresh;
            int r = smp_fresh(pv, n ? n->items : NULL, depth, &fresh, err);
            if (r < 0) {
                return r;
            }
            if (fresh) {
                json_array_append_new(orig, fresh);
            }
        }
        return 0;
    }
    if (n->patch_merge_key) {
        return smp_merge_keyed(orig, parr, n, depth, err);
    }
    /* A set of scalars: union, or the patch's values after a
     * {"$patch": "replace"} element. */
    size_t i;
    json_t *pv;
    json_array_foreach(parr, i, pv)
    {
        const char *d = smp_directive(pv);
        if (d && !strcmp(d, "replace")) {
            json_array_clear(orig);
        }
    }
    json_array_foreach(parr, i, pv)
    {
        if (json_is_object(pv) && smp_directive(pv)) {
            continue;
        }
        if (!smp_array_has(orig, pv)) {
            json_array_append_new(orig, json_deep_copy(pv));
        }
    }
    return 0;
}

/* Does element e appear in the order list (by merge key, or by value for
 * scalars)? Its position or -1. */
static ssize_t
smp_order_pos(const json_t *order, const json_t *e, const char *key)
{
    size_t i;
    json_t *o;
    json_array_foreach(order, i, o)
    {
        if (key) {
            const json_t *a = smp_key_of(o, key);
            const json_t *b = smp_key_of(e, key);
            if (a && b && json_equal(a, b)) {
                return (ssize_t) i;
            }
        } else if (json_equal(o, e)) {
            return (ssize_t) i;
        }
    }
    return -1;
}

/* $setElementOrder: the elements the order names take the positions
 * such elements hold, in the order's order; the others (present only on
 * the server) keep theirs. */
static int
smp_apply_order(json_t *arr, const json_t *order, const struct schema_node *n,
                struct dpf_error *err)
{
    if (!json_is_array(order)) {
        dpf_error_set(err, 400, "BadRequest", SMP_BAD_ORDER);
        return -EINVAL;
    }
    if (!json_is_array(arr)) {
        return 0;
    }
    const char *key =
        n && smp_strategy_has(n, "merge") ? n->patch_merge_key : NULL;
    size_t len = json_array_size(arr);
    if (len < 2) {
        return 0;
    }
    ssize_t *pos = xcalloc(len, sizeof(*pos));
    json_t **named = xcalloc(len, sizeof(*named));
    size_t nn = 0;
    for (size_t i = 0; i < len; i++) {
        pos[i] = smp_order_pos(order, json_array_get(arr, i), key);
        if (pos[i] >= 0) {
            named[nn++] = json_incref(json_array_get(arr, i));
        }
    }
    /* Sort the named elements by their position in the order (stable
     * insertion sort: lists are short). */
    for (size_t i = 1; i < nn; i++) {
        json_t *v = named[i];
        ssize_t p = smp_order_pos(order, v, key);
        size_t j = i;
        while (j > 0 && smp_order_pos(order, named[j - 1], key) > p) {
            named[j] = named[j - 1];
            j--;
        }
        named[j] = v;
    }
    size_t next = 0;
    for (size_t i = 0; i < len; i++) {
        if (pos[i] >= 0) {
            json_array_set_new(arr, i, named[next++]);
        }
    }
    free(pos);
    free(named);
    return 0;
}

/* $retainKeys: keys of orig not listed go; the patch may only set listed
 * keys. */
static int
smp_retain_keys(json_t *orig, const json_t *patch, const json_t *keys,
                struct dpf_error *err)
{
    if (!json_is_array(keys)) {
        dpf_error_set(err, 400, "BadRequest", SMP_BAD_RETAIN);
        return -EINVAL;
    }
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        if (!json_is_string(k)) {
            dpf_error_set(err, 400, "BadRequest", SMP_BAD_RETAIN);
            return -EINVAL;
        }
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *) patch, key, v)
    {
        if (key[0] == '$' || json_is_null(v)) {
            continue;
        }
        json_t *s = json_string(key);
        bool listed = smp_array_has(keys, s);
        json_decref(s);
        if (!listed) {
            dpf_error_set(err, 422, "Invalid", SMP_RETAIN_MISMATCH);
            return -EINVAL;
        }
    }
    void *tmp;
    json_object_foreach_safe(orig, tmp, key, v)
    {
        json_t *s = json_string(key);
        if (!smp_array_has(keys, s)) {
            json_object_del(orig, key);
        }
        json_decref(s);
    }
    return 0;
}

/* Merge the object patch into orig (n: its node, may be NULL). */
static int
smp_merge_map(json_t *orig, const json_t *patch, const struct schema_node *n,
              int depth, struct dpf_error *err)
{
    if (depth > SMP_MAX_DEPTH) {
        dpf_error_set(err, 422, "Invalid", "the patch nests too deeply");
        return -EINVAL;
    }
    const char *d = smp_directive(patch);
    if (json_object_get(patch, "$patch") && !d) {
        dpf_error_set(err, 400, "BadRequest",
                      "the $patch directive must be a string");
        return -EINVAL;
    }
    if (d && !strcmp(d, "replace")) {
        json_object_clear(orig);
    } else if (d && !strcmp(d, "delete")) {
        json_object_clear(orig);
        return 0;
    } else if (d && strcmp(d, "merge") != 0) {
        dpf_error_set(err, 400, "BadRequest", "unknown patch type: %s in map",
                      d);
        return -EINVAL;
    }
    const json_t *retain = json_object_get(patch, "$retainKeys");
    if (retain) {
        int r = smp_retain_keys(orig, patch, retain, err);
        if (r < 0) {
            return r;
        }
    }
    const char *key;
    json_t *pv;
    /* $deleteFromPrimitiveList first, then the fields, then the orders. */
    json_object_foreach((json_t *) patch, key, pv)
    {
        if (strncmp(key, DELETE_PREFIX, strlen(DELETE_PREFIX)) != 0) {
            continue;
        }
        if (!json_is_array(pv)) {
            dpf_error_set(err, 400, "BadRequest", SMP_BAD_PRIMITIVE);
            return -EINVAL;
        }
        json_t *list = json_object_get(orig, key + strlen(DELETE_PREFIX));
        if (!json_is_array(list)) {
            continue;
        }
        for (size_t i = json_array_size(list); i-- > 0;) {
            if (smp_array_has(pv, json_array_get(list, i))) {
                json_array_remove(list, i);
            }
        }
    }
    json_object_foreach((json_t *) patch, key, pv)
    {
        if (key[0] == '$') {
            continue;
        }
        const struct schema_node *c = smp_child(n, key);
        json_t *ov = json_object_get(orig, key);
        if (json_is_null(pv)) {
            json_object_del(orig, key);
            continue;
        }
        int r = 0;
        if (json_is_object(pv) && json_is_object(ov) &&
            !smp_strategy_has(c, "replace")) {
            const char *pd = smp_directive(pv);
            r = smp_merge_map(ov, pv, c, depth + 1, err);
            if (r == 0 && pd && !strcmp(pd, "delete")) {
                json_object_del(orig, key);
            }
        } else if (json_is_array(pv) && json_is_array(ov)) {
            r = smp_merge_list(ov, pv, c, depth + 1, err);
        } else {
            json_t *fresh;
            r = smp_fresh(pv, c, depth, &fresh, err);
            if (r == 0 && fresh) {
                json_object_set_new(orig, key, fresh);
            } else if (r == 0) {
                json_object_del(orig, key);
            }
        }
        if (r < 0) {
            return r;
        }
    }
    json_object_foreach((json_t *) patch, key, pv)
    {
        if (strncmp(key, ORDER_PREFIX, strlen(ORDER_PREFIX)) != 0) {
            continue;
        }
        const char *field = key + strlen(ORDER_PREFIX);
        int r = smp_apply_order(json_object_get(orig, field), pv,
                                smp_child(n, field), err);
        if (r < 0) {
            return r;
        }
    }
    return 0;
}

int
schema_strategic_merge(const struct schema_kind *k, json_t *obj,
                       const json_t *patch, struct dpf_error *err)
{
    schema_ensure_init();
    if (!k || !k->builtin) {
        dpf_error_set(err, 415, "UnsupportedMediaType",
                      "the body of the request was in an unknown format - "
                      "accepted media types include: "
                      "application/json-patch+json, "
                      "application/merge-patch+json, "
                      "application/apply-patch+yaml");
        return -ENOTSUP;
    }
    if (!json_is_object(obj) || !json_is_object(patch)) {
        dpf_error_set(err, 400, "BadRequest",
                      "a strategic merge patch must be a JSON object");
        return -EINVAL;
    }
    return smp_merge_map(obj, patch, k->root, 0, err);
}
