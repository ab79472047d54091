/* schema-mutate: the two passes that change an object in place before it
 * is validated — pruning fields the schema does not declare (or reporting
 * them, by fieldValidation mode) and applying defaults: the field tree's,
 * then the kind's set_defaults hook, then the field tree's again. */
#include <errno.h>
#include <string.h>

#include "api/schema-engine.h"
#include "lib/base/util.h"

/* --- defaulting --- */

static void
default_node(const struct schema_node *n, json_t *v, int depth)
{
    if (!n || depth > 64 || !v) {
        return;
    }
    switch (n->type) {
    case SCHEMA_T_OBJECT:
        if (!json_is_object(v) || !n->fields) {
            return;
        }
        for (const struct schema_field *f = n->fields; f->name; f++) {
            json_t *c = json_object_get(v, f->name);
            if ((!c || (json_is_null(c) && !f->node->nullable)) &&
                f->node->def && f->node->def->value) {
                c = json_deep_copy(f->node->def->value);
                json_object_set_new(v, f->name, c);
            }
            if (c) {
                default_node(f->node, c, depth + 1);
            }
        }
        break;
    case SCHEMA_T_MAP: {
        if (!json_is_object(v)) {
            return;
        }
        const char *key;
        json_t *c;
        json_object_foreach(v, key, c)
        {
            default_node(n->items, c, depth + 1);
        }
        break;
    }
    case SCHEMA_T_ARRAY: {
        if (!json_is_array(v)) {
            return;
        }
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c)
        {
            default_node(n->items, c, depth + 1);
        }
        break;
    }
    default:
        break;
    }
}

void
schema_default(const struct schema_kind *k, json_t *obj)
{
    schema_ensure_init();
    if (!k || !json_is_object(obj)) {
        return;
    }
    default_node(k->root, obj, 0);
    if (k->set_defaults) {
        k->set_defaults(obj);
        /* As after a mutating webhook: the result is defaulted again. */
        default_node(k->root, obj, 0);
    }
}

/* --- pruning --- */

static const struct schema_field *
find_field(const struct schema_node *n, const char *key)
{
    if (!n->fields) {
        return NULL;
    }
    for (const struct schema_field *f = n->fields; f->name; f++) {
        if (!strcmp(f->name, key)) {
            return f;
        }
    }
    return NULL;
}

static void prune_node(const struct schema_node *n, json_t *v, struct walk *w,
                       int depth);

/* One member of an object or map: a null the schema does not allow is
 * dropped (Go clients send `creationTimestamp: null`), anything else is
 * pruned in turn under its path. */
static void
prune_member(const struct schema_node *cn, json_t *v, const char *key,
             json_t *c, bool map, struct walk *w, int depth)
{
    if (json_is_null(c) && !cn->nullable && cn->type != SCHEMA_T_ANY) {
        json_object_del(v, key);
        return;
    }
    size_t saved =
        map ? schema_path_push_mapkey(w, key) : schema_path_push_key(w, key);
    prune_node(cn, c, w, depth + 1);
    schema_path_pop(w, saved);
}

/* A field the object does not declare: dropped, its path noted. */
static void
prune_unknown(json_t *v, const char *key, struct walk *w)
{
    size_t saved = schema_path_push_key(w, key);
    if (w->unknown) {
        json_array_append_new(w->unknown, json_string(w->path));
    }
    schema_path_pop(w, saved);
    json_object_del(v, key);
}

static void
prune_node(const struct schema_node *n, json_t *v, struct walk *w, int depth)
{
    if (!n || depth > 64 || !v) {
        return;
    }
    if ((n->type == SCHEMA_T_OBJECT || n->type == SCHEMA_T_MAP) &&
        json_is_object(v)) {
        const char *key;
        json_t *c;
        void *tmp;
        json_object_foreach_safe(v, tmp, key, c)
        {
            if (n->type == SCHEMA_T_MAP) {
                prune_member(n->items, v, key, c, true, w, depth);
                continue;
            }
            const struct schema_field *f = find_field(n, key);
            if (f) {
                prune_member(f->node, v, key, c, false, w, depth);
            } else if (!n->preserve_unknown) {
                prune_unknown(v, key, w);
            }
        }
    } else if (n->type == SCHEMA_T_ARRAY && json_is_array(v)) {
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c)
        {
            size_t saved = schema_path_push_index(w, i);
            prune_node(n->items, c, w, depth + 1);
            schema_path_pop(w, saved);
        }
    }
}

int
schema_prune(const struct schema_kind *k, json_t *obj,
             enum schema_unknown_mode mode, json_t **warnings,
             struct dpf_error *err)
{
    schema_ensure_init();
    if (warnings) {
        *warnings = NULL;
    }
    if (!k || !json_is_object(obj)) {
        dpf_error_set(err, 400, "BadRequest", "object must be a JSON object");
        return -EINVAL;
    }
    struct walk w = {.err = err, .mode = mode};
    if (mode != SCHEMA_UNKNOWN_PRUNE) {
        w.unknown = json_array();
    }
    prune_node(k->root, obj, &w, 0);
    int rc = 0;
    if (mode == SCHEMA_UNKNOWN_STRICT && json_array_size(w.unknown)) {
        struct dbuf b;
        dbuf_init(&b);
        dbuf_puts(&b, "strict decoding error: ");
        size_t i;
        json_t *p;
        json_array_foreach(w.unknown, i, p)
        {
            dbuf_printf(&b, "%sunknown field \"%s\"", i ? ", " : "",
                        json_string_value(p));
            dpf_error_add_cause(err, DPF_CAUSE_UNKNOWN_FIELD,
                                json_string_value(p), "unknown field \"%s\"",
                                json_string_value(p));
        }
        dpf_error_set(err, 400, "BadRequest", "%s", b.data);
        dbuf_free(&b);
        rc = -EINVAL;
    }
    if (mode == SCHEMA_UNKNOWN_WARN && warnings) {
        *warnings = w.unknown;
        w.unknown = NULL;
    }
    json_decref(w.unknown);
    return rc;
}
