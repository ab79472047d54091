/* schema-fields: field ownership (metadata.managedFields) and server-side
 * apply, computed from the list and map types of the field tree as
 * Kubernetes' structured-merge-diff does.
 *
 * A field set is kept as a fieldsV1 tree ("f:<field>", "k:<key JSON>",
 * "v:<value JSON>") in which the key "." marks that the path itself is
 * in the set; fieldsV1's leaf `{}` is read as {".": {}} and written back
 * so. Union, difference and intersection are then plain recursive walks
 * over JSON objects.
 *
 * Lists of type "map" are keyed by their list-map keys (a key the item
 * leaves out takes its schema default, as ports' protocol "TCP"), lists
 * of type "set" by value; every other list, atomic maps and scalars are
 * leaves. Undeclared objects (preserve-unknown) are granular, their lists
 * atomic. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/schema-engine.h"
#include "lib/base/util.h"

#define FS_MAX_DEPTH 64

enum fs_shape { FS_LEAF, FS_OBJECT, FS_ASSOC, FS_SET };

static const struct schema_node *
fs_child(const struct schema_node *n, const char *key)
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

static enum fs_shape
fs_shape(const struct schema_node *n, const json_t *v)
{
    if (json_is_object(v)) {
        if (n && n->map_type && !strcmp(n->map_type, "atomic")) {
            return FS_LEAF;
        }
        if (n && n->type != SCHEMA_T_OBJECT && n->type != SCHEMA_T_MAP &&
            n->type != SCHEMA_T_ANY) {
            return FS_LEAF;
        }
        return FS_OBJECT;
    }
    if (json_is_array(v) && n && n->list_type) {
        if (!strcmp(n->list_type, "map") && n->list_map_keys) {
            return FS_ASSOC;
        }
        if (!strcmp(n->list_type, "set")) {
            return FS_SET;
        }
    }
    return FS_LEAF;
}

/* The key object of an item of an associative list (new ref). */
static json_t *
fs_item_key(const struct schema_node *list, const json_t *item)
{
    json_t *k = json_object();
    for (const char *const *kn = list->list_map_keys; *kn; kn++) {
        const json_t *v = json_object_get(item, *kn);
        if (!v) {
            const struct schema_node *f = fs_child(list->items, *kn);
            v = f && f->def ? f->def->value : NULL;
        }
        if (v) {
            json_object_set(k, *kn, (json_t *) v);
        }
    }
    return k;
}

static char *
fs_item_name(const struct schema_node *list, const json_t *item)
{
    json_t *k = fs_item_key(list, item);
    char *s = json_dumps(k, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(k);
    char *name = xasprintf("k:%s", s ? s : "{}");
    free(s);
    return name;
}

static char *
fs_value_name(const json_t *v)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    char *name = xasprintf("v:%s", s ? s : "null");
    free(s);
    return name;
}

/* Index of the item of arr whose key equals that of item, or -1. */
static ssize_t
fs_find_item(const struct schema_node *list, const json_t *arr,
             const json_t *item)
{
    json_t *want = fs_item_key(list, item);
    ssize_t found = -1;
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        json_t *k = fs_item_key(list, e);
        bool eq = json_equal(k, want);
        json_decref(k);
        if (eq) {
            found = (ssize_t) i;
            break;
        }
    }
    json_decref(want);
    return found;
}

static json_t *
fs_dot(void)
{
    return json_pack("{s:{}}", ".");
}

/* Set key of s to sub (stolen), or merge sub into what is there. */
static void fs_union_into(json_t *a, const json_t *b);

static void
fs_put(json_t *s, const char *key, json_t *sub)
{
    json_t *cur = json_object_get(s, key);
    if (cur) {
        fs_union_into(cur, sub);
        json_decref(sub);
    } else {
        json_object_set_new(s, key, sub);
    }
}

/* ------------------------------------------------------------------ */
/* set algebra on normalized trees */

static void
fs_union_into(json_t *a, const json_t *b)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *) b, key, v)
    {
        json_t *cur = json_object_get(a, key);
        if (cur) {
            fs_union_into(cur, v);
        } else {
            json_object_set_new(a, key, json_deep_copy(v));
        }
    }
}

/* a minus b, in place on a. */
static void
fs_minus_into(json_t *a, const json_t *b)
{
    const char *key;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(a, tmp, key, v)
    {
        json_t *bv = json_object_get(b, key);
        if (!bv) {
            continue;
        }
        if (!strcmp(key, ".")) {
            json_object_del(a, key);
            continue;
        }
        fs_minus_into(v, bv);
        if (!json_object_size(v)) {
            json_object_del(a, key);
        }
    }
}

/* a intersected with b (new ref). */
static json_t *
fs_intersect(const json_t *a, const json_t *b)
{
    json_t *r = json_object();
    const char *key;
    json_t *v;
    json_object_foreach((json_t *) a, key, v)
    {
        json_t *bv = json_object_get(b, key);
        if (!bv) {
            continue;
        }
        if (!strcmp(key, ".")) {
            json_object_set_new(r, ".", json_object());
            continue;
        }
        json_t *sub = fs_intersect(v, bv);
        if (json_object_size(sub)) {
            json_object_set_new(r, key, sub);
        } else {
            json_decref(sub);
        }
    }
    return r;
}

/* fieldsV1 -> normalized (new ref); a non-object is the empty set. */
static json_t *
fs_from_v1(const json_t *v1)
{
    json_t *r = json_object();
    const char *key;
    json_t *v;
    json_object_foreach((json_t *) v1, key, v)
    {
        if (!json_is_object(v)) {
            continue;
        }
        if (!strcmp(key, ".")) {
            json_object_set_new(r, ".", json_object());
        } else if (!json_object_size(v)) {
            json_object_set_new(r, key, fs_dot());
        } else {
            json_object_set_new(r, key, fs_from_v1(v));
        }
    }
    return r;
}

/* normalized -> fieldsV1 (new ref). */
static json_t *
fs_to_v1(const json_t *s)
{
    json_t *r = json_object();
    const char *key;
    json_t *v;
    json_object_foreach((json_t *) s, key, v)
    {
        if (!strcmp(key, ".") ||
            (json_object_size(v) == 1 && json_object_get(v, "."))) {
            json_object_set_new(r, key, json_object());
        } else {
            json_object_set_new(r, key, fs_to_v1(v));
        }
    }
    return r;
}

/* ------------------------------------------------------------------ */
/* the sets of an object */

/* The set a manager applying value v (at a field of node n) owns:
 * leaves, list items with "."; with update, maps that are new also with
 * "." (as an Update's added map is in Kubernetes). */
static json_t *fs_of_value(const json_t *v, const struct schema_node *n,
                           bool update, int depth);

static json_t *
fs_of_children(const json_t *v, const struct schema_node *n, bool update,
               int depth)
{
    json_t *s = json_object();
    if (depth > FS_MAX_DEPTH) {
        return s;
    }
    switch (fs_shape(n, v)) {
    case FS_OBJECT: {
        const char *key;
        json_t *cv;
        json_object_foreach((json_t *) v, key, cv)
        {
            char *name = xasprintf("f:%s", key);
            json_object_set_new(
                s, name, fs_of_value(cv, fs_child(n, key), update, depth + 1));
            free(name);
        }
        break;
    }
    case FS_ASSOC: {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item)
        {
            char *name = fs_item_name(n, item);
            json_t *sub = fs_of_children(item, n->items, update, depth + 1);
            json_object_set_new(sub, ".", json_object());
            fs_put(s, name, sub);
            free(name);
        }
        break;
    }
    case FS_SET: {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item)
        {
            char *name = fs_value_name(item);
            json_object_set_new(s, name, fs_dot());
            free(name);
        }
        break;
    }
    case FS_LEAF:
        break;
    }
    return s;
}

static json_t *
fs_of_value(const json_t *v, const struct schema_node *n, bool update,
            int depth)
{
    enum fs_shape sh = fs_shape(n, v);
    json_t *s = fs_of_children(v, n, update, depth);
    if (sh == FS_LEAF || !json_object_size(s) ||
        (update && sh == FS_OBJECT && (!n || n->type != SCHEMA_T_OBJECT))) {
        json_object_set_new(s, ".", json_object());
    }
    return s;
}

/* Every path of v, containers included ("." everywhere). */
static json_t *
fs_every(const json_t *v, const struct schema_node *n, int depth)
{
    json_t *s = json_object();
    json_object_set_new(s, ".", json_object());
    if (depth > FS_MAX_DEPTH) {
        return s;
    }
    switch (fs_shape(n, v)) {
    case FS_OBJECT: {
        const char *key;
        json_t *cv;
        json_object_foreach((json_t *) v, key, cv)
        {
            char *name = xasprintf("f:%s", key);
            json_object_set_new(s, name,
                                fs_every(cv, fs_child(n, key), depth + 1));
            free(name);
        }
        break;
    }
    case FS_ASSOC: {
        size_t i;
        json_t *item;
        json_array_foreach(v, i, item)
        {
            char *name = fs_item_name(n, item);
            fs_put(s, name, fs_every(item, n->items, depth + 1));
            free(name);
        }
        break;
    }
    case FS_SET: {
        json_t *items = fs_of_children(v, n, false, depth);
        fs_union_into(s, items);
        json_decref(items);
        break;
    }
    case FS_LEAF:
        break;
    }
    return s;
}

/* Paths that differ between a and b (either may be NULL: absent) at a
 * field of node n: changed leaves, added subtrees (as an Update owns
 * them), removed subtrees (every path). */
static json_t *
fs_diff(const json_t *a, const json_t *b, const struct schema_node *n,
        int depth, bool *removed)
{
    if (!b) {
        *removed = true;
        return fs_every(a, n, depth);
    }
    if (!a) {
        return fs_of_value(b, n, true, depth);
    }
    enum fs_shape sa = fs_shape(n, a), sb = fs_shape(n, b);
    json_t *s = json_object();
    if (sa != sb || depth > FS_MAX_DEPTH) {
        json_decref(s);
        s = fs_of_value(b, n, true, depth);
        json_object_set_new(s, ".", json_object());
        return s;
    }
    switch (sb) {
    case FS_LEAF:
        if (!json_equal(a, b)) {
            json_object_set_new(s, ".", json_object());
        }
        break;
    case FS_OBJECT: {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *) b, key, v)
        {
            json_t *d = fs_diff(json_object_get(a, key), v, fs_child(n, key),
                                depth + 1, removed);
            if (json_object_size(d)) {
                char *name = xasprintf("f:%s", key);
                json_object_set_new(s, name, d);
                free(name);
            } else {
                json_decref(d);
            }
        }
        json_object_foreach((json_t *) a, key, v)
        {
            if (!json_object_get(b, key)) {
                *removed = true;
                char *name = xasprintf("f:%s", key);
                json_object_set_new(s, name,
                                    fs_every(v, fs_child(n, key), depth + 1));
                free(name);
            }
        }
        break;
    }
    case FS_ASSOC: {
        size_t i;
        json_t *item;
        json_array_foreach(b, i, item)
        {
            ssize_t at = fs_find_item(n, a, item);
            json_t *d;
            if (at < 0) {
                d = fs_of_children(item, n->items, true, depth + 1);
                json_object_set_new(d, ".", json_object());
            } else {
                d = fs_diff(json_array_get(a, (size_t) at), item, n->items,
                            depth + 1, removed);
            }
            if (json_object_size(d)) {
                char *name = fs_item_name(n, item);
                fs_put(s, name, d);
                free(name);
            } else {
                json_decref(d);
            }
        }
        json_array_foreach(a, i, item)
        {
            if (fs_find_item(n, b, item) < 0) {
                *removed = true;
                char *name = fs_item_name(n, item);
                fs_put(s, name, fs_every(item, n->items, depth + 1));
                free(name);
            }
        }
        break;
    }
    case FS_SET: {
        json_t *sa_set = fs_of_children(a, n, false, depth);
        json_t *sb_set = fs_of_children(b, n, false, depth);
        json_t *only_a = json_deep_copy(sa_set);
        fs_minus_into(only_a, sb_set);
        fs_minus_into(sb_set, sa_set);
        *removed = *removed || json_object_size(only_a) > 0;
        fs_union_into(s, only_a);
        fs_union_into(s, sb_set);
        json_decref(sa_set);
        json_decref(sb_set);
        json_decref(only_a);
        break;
    }
    }
    return s;
}

/* Paths of an object no manager ever owns (apiVersion, kind, the
 * server's metadata), removed from every set. */
static void
fs_strip(json_t *s)
{
    static const char *const meta[] = {
        "f:name",
        "f:namespace",
        "f:creationTimestamp",
        "f:selfLink",
        "f:uid",
        "f:generation",
        "f:managedFields",
        "f:resourceVersion",
        "f:deletionTimestamp",
        "f:deletionGracePeriodSeconds",
    };
    json_object_del(s, ".");
    json_object_del(s, "f:apiVersion");
    json_object_del(s, "f:kind");
    json_t *md = json_object_get(s, "f:metadata");
    if (md) {
        json_object_del(md, ".");
        for (size_t i = 0; i < ARRAY_SIZE(meta); i++) {
            json_object_del(md, meta[i]);
        }
        if (!json_object_size(md)) {
            json_object_del(s, "f:metadata");
        }
    }
}

/* ------------------------------------------------------------------ */
/* apply merge and removal */

static void
fs_apply_merge(json_t *live, const json_t *cfg, const struct schema_node *n,
               int depth)
{
    const char *key;
    json_t *cv;
    json_object_foreach((json_t *) cfg, key, cv)
    {
        const struct schema_node *c = fs_child(n, key);
        json_t *lv = json_object_get(live, key);
        enum fs_shape sh = fs_shape(c, cv);
        if (lv && depth < FS_MAX_DEPTH && sh == FS_OBJECT &&
            fs_shape(c, lv) == FS_OBJECT) {
            fs_apply_merge(lv, cv, c, depth + 1);
        } else if (lv && sh == FS_ASSOC && json_is_array(lv)) {
            size_t i;
            json_t *item;
            json_array_foreach(cv, i, item)
            {
                ssize_t at = fs_find_item(c, lv, item);
                if (at >= 0 && json_is_object(item) &&
                    json_is_object(json_array_get(lv, (size_t) at))) {
                    fs_apply_merge(json_array_get(lv, (size_t) at), item,
                                   c->items, depth + 1);
                } else if (at >= 0) {
                    json_array_set_new(lv, (size_t) at, json_deep_copy(item));
                } else {
                    json_array_append_new(lv, json_deep_copy(item));
                }
            }
        } else if (lv && sh == FS_SET && json_is_array(lv)) {
            size_t i;
            json_t *item;
            json_array_foreach(cv, i, item)
            {
                size_t j;
                json_t *e;
                bool have = false;
                json_array_foreach(lv, j, e)
                {
                    have = have || json_equal(e, item);
                }
                if (!have) {
                    json_array_append_new(lv, json_deep_copy(item));
                }
            }
        } else {
            json_object_set_new(live, key, json_deep_copy(cv));
        }
    }
}

/* Remove from v the paths of rm no one in keep owns (nor anything
 * below them). */
static void
fs_remove(json_t *v, const struct schema_node *n, const json_t *rm,
          const json_t *keep, int depth)
{
    if (depth > FS_MAX_DEPTH) {
        return;
    }
    const char *key;
    json_t *sub;
    json_object_foreach((json_t *) rm, key, sub)
    {
        const json_t *ks = keep ? json_object_get(keep, key) : NULL;
        bool whole = json_object_get(sub, ".") && !json_object_size(ks);
        if (!strncmp(key, "f:", 2) && json_is_object(v)) {
            json_t *cv = json_object_get(v, key + 2);
            if (!cv) {
                continue;
            }
            if (whole) {
                json_object_del(v, key + 2);
            } else {
                fs_remove(cv, fs_child(n, key + 2), sub, ks, depth + 1);
            }
        } else if (!strncmp(key, "k:", 2) && json_is_array(v) && n &&
                   n->list_map_keys) {
            json_t *want = json_loads(key + 2, 0, NULL);
            for (size_t i = 0; want && i < json_array_size(v); i++) {
                json_t *k = fs_item_key(n, json_array_get(v, i));
                bool eq = json_equal(k, want);
                json_decref(k);
                if (!eq) {
                    continue;
                }
                if (whole) {
                    json_array_remove(v, i);
                } else {
                    fs_remove(json_array_get(v, i), n->items, sub, ks,
                              depth + 1);
                }
                break;
            }
            json_decref(want);
        } else if (!strncmp(key, "v:", 2) && json_is_array(v) && whole) {
            json_t *want = json_loads(key + 2, JSON_DECODE_ANY, NULL);
            for (size_t i = 0; want && i < json_array_size(v); i++) {
                if (json_equal(json_array_get(v, i), want)) {
                    json_array_remove(v, i);
                    break;
                }
            }
            json_decref(want);
        }
    }
}

/* ------------------------------------------------------------------ */
/* managed fields entries */

struct fs_entry {
    json_t *meta; /* the entry without fieldsV1 (borrowed from list) */
    json_t *set;  /* normalized (owned) */
};

struct fs_entries {
    struct fs_entry *e;
    size_t n;
};

static const char *
fs_estr(const struct fs_entry *e, const char *f)
{
    const char *s = json_string_value(json_object_get(e->meta, f));
    return s ? s : "";
}

static void
fs_entries_load(struct fs_entries *es, const json_t *obj)
{
    const json_t *mf =
        json_object_get(json_object_get(obj, "metadata"), "managedFields");
    es->n = 0;
    es->e = xcalloc(json_array_size(mf) + 1, sizeof(*es->e));
    size_t i;
    json_t *m;
    json_array_foreach(mf, i, m)
    {
        if (!json_is_object(m) ||
            !json_string_value(json_object_get(m, "manager"))) {
            continue;
        }
        es->e[es->n].meta = json_deep_copy(m);
        json_object_del(es->e[es->n].meta, "fieldsV1");
        es->e[es->n].set = fs_from_v1(json_object_get(m, "fieldsV1"));
        es->n++;
    }
}

static void
fs_entries_free(struct fs_entries *es)
{
    for (size_t i = 0; i < es->n; i++) {
        json_decref(es->e[i].meta);
        json_decref(es->e[i].set);
    }
    free(es->e);
}

static bool
fs_entry_is(const struct fs_entry *e, const struct schema_field_manager *m,
            const char *op)
{
    return !strcmp(fs_estr(e, "manager"), m->manager) &&
           !strcmp(fs_estr(e, "operation"), op) &&
           !strcmp(fs_estr(e, "subresource"),
                   m->subresource ? m->subresource : "");
}

/* The entry of m/op, added (empty) when missing. */
static struct fs_entry *
fs_entry_get(struct fs_entries *es, const struct schema_kind *k,
             const struct schema_field_manager *m, const char *op)
{
    for (size_t i = 0; i < es->n; i++) {
        if (fs_entry_is(&es->e[i], m, op)) {
            return &es->e[i];
        }
    }
    es->e = xrealloc(es->e, (es->n + 1) * sizeof(*es->e));
    struct fs_entry *e = &es->e[es->n++];
    e->meta = json_pack("{s:s,s:s,s:s}", "manager", m->manager, "operation", op,
                        "apiVersion", schema_api_version(k));
    e->set = json_object();
    return e;
}

/* Write the entries with a non-empty set into obj's managedFields. */
static void
fs_entries_store(struct fs_entries *es, json_t *obj)
{
    json_t *md = json_object_get(obj, "metadata");
    if (!json_is_object(md)) {
        md = json_object();
        json_object_set_new(obj, "metadata", md);
    }
    json_t *mf = json_array();
    for (size_t i = 0; i < es->n; i++) {
        if (!json_object_size(es->e[i].set)) {
            continue;
        }
        json_t *m = json_deep_copy(es->e[i].meta);
        json_object_set_new(m, "fieldsType", json_string("FieldsV1"));
        json_object_set_new(m, "fieldsV1", fs_to_v1(es->e[i].set));
        json_array_append_new(mf, m);
    }
    if (json_array_size(mf)) {
        json_object_set_new(md, "managedFields", mf);
    } else {
        json_decref(mf);
        json_object_del(md, "managedFields");
    }
}

static void
fs_entry_touch(struct fs_entry *e, const struct schema_kind *k,
               const struct schema_field_manager *m)
{
    json_object_set_new(e->meta, "apiVersion",
                        json_string(schema_api_version(k)));
    json_object_set_new(e->meta, "time", json_string(m->time));
    if (m->subresource && *m->subresource) {
        json_object_set_new(e->meta, "subresource",
                            json_string(m->subresource));
    }
}

/* An object without its managedFields (new ref), for comparisons. */
static json_t *
fs_plain(const json_t *obj)
{
    json_t *c = json_deep_copy(obj);
    json_t *md = json_object_get(c, "metadata");
    json_object_del(md, "managedFields");
    json_object_del(md, "resourceVersion");
    return c;
}

/* Are a and b equal but for managedFields and resourceVersion? */
static bool
fs_equal_plain(const json_t *a, const json_t *b)
{
    if (json_object_size(a) != json_object_size(b)) {
        return false;
    }
    const char *key;
    json_t *v;
    json_object_foreach((json_t *) a, key, v)
    {
        json_t *w = json_object_get(b, key);
        if (!w) {
            return false;
        }
        if (strcmp(key, "metadata") != 0) {
            if (!json_equal(v, w)) {
                return false;
            }
            continue;
        }
        static const char *const skip[] = {"managedFields", "resourceVersion"};
        const char *mk;
        json_t *mv;
        json_object_foreach(v, mk, mv)
        {
            if (!strcmp(mk, skip[0]) || !strcmp(mk, skip[1])) {
                continue;
            }
            json_t *mw = json_object_get(w, mk);
            if (!mw || !json_equal(mv, mw)) {
                return false;
            }
        }
        json_object_foreach(w, mk, mv)
        {
            if (strcmp(mk, skip[0]) && strcmp(mk, skip[1]) &&
                !json_object_get(v, mk)) {
                return false;
            }
        }
    }
    return true;
}

void
schema_fields_update(const struct schema_kind *k, const json_t *old,
                     json_t *newobj, const struct schema_field_manager *m)
{
    schema_ensure_init();
    struct fs_entries es;
    fs_entries_load(&es, old);
    if (old && fs_equal_plain(old, newobj)) {
        /* A write that changes nothing keeps the ownership as it was. */
        fs_entries_store(&es, newobj);
        fs_entries_free(&es);
        return;
    }
    /* managedFields and resourceVersion are compared too, then stripped
     * with the other server-owned paths. */
    bool removed = false;
    json_t *changed = fs_diff(old, newobj, k->root, 0, &removed);
    fs_strip(changed);
    for (size_t i = 0; i < es.n; i++) {
        fs_minus_into(es.e[i].set, changed);
    }
    if (json_object_size(changed)) {
        struct fs_entry *e = fs_entry_get(&es, k, m, "Update");
        fs_union_into(e->set, changed);
        if (removed) {
            /* Ownership of what is gone goes with it. */
            json_t *every = fs_every(newobj, k->root, 0);
            json_t *kept = fs_intersect(e->set, every);
            json_decref(e->set);
            e->set = kept;
            json_decref(every);
        }
        fs_entry_touch(e, k, m);
    }
    fs_entries_store(&es, newobj);
    json_decref(changed);
    fs_entries_free(&es);
}

/* ------------------------------------------------------------------ */
/* conflicts */

static int
fs_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* Append the member paths of s under prefix to out (sorted). */
static void
fs_paths(const json_t *s, struct dbuf *prefix, json_t *out)
{
    size_t n = json_object_size(s);
    const char **keys = xcalloc(n + 1, sizeof(*keys));
    size_t i = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *) s, key, v)
    {
        keys[i++] = key;
    }
    qsort(keys, n, sizeof(*keys), fs_cmp_str);
    if (json_object_get(s, ".")) {
        json_array_append_new(out,
                              json_string(prefix->len ? prefix->data : ""));
    }
    for (i = 0; i < n; i++) {
        if (!strcmp(keys[i], ".")) {
            continue;
        }
        size_t saved = prefix->len;
        const char *k = keys[i];
        if (!strncmp(k, "f:", 2)) {
            dbuf_printf(prefix, ".%s", k + 2);
        } else if (!strncmp(k, "k:", 2)) {
            json_t *kv = json_loads(k + 2, 0, NULL);
            dbuf_puts(prefix, "[");
            const char *kk;
            json_t *vv;
            bool first = true;
            /* fieldsV1 keys are written sorted */
            json_object_foreach(kv, kk, vv)
            {
                char *js = json_dumps(vv, JSON_ENCODE_ANY | JSON_COMPACT);
                dbuf_printf(prefix, "%s%s=%s", first ? "" : ",", kk,
                            js ? js : "null");
                free(js);
                first = false;
            }
            dbuf_puts(prefix, "]");
            json_decref(kv);
        } else if (!strncmp(k, "v:", 2)) {
            dbuf_printf(prefix, "[=%s]", k + 2);
        }
        fs_paths(json_object_get(s, k), prefix, out);
        prefix->len = saved;
        if (prefix->data) {
            prefix->data[saved] = '\0';
        }
    }
    free(keys);
}

/* kube-apiserver's rendering of a manager in conflict messages. */
static char *
fs_manager_text(const struct fs_entry *e)
{
    struct dbuf b;
    dbuf_init(&b);
    json_t *q = json_string(fs_estr(e, "manager"));
    char *qs = json_dumps(q, JSON_ENCODE_ANY);
    dbuf_puts(&b, qs ? qs : "\"\"");
    free(qs);
    json_decref(q);
    const char *sub = fs_estr(e, "subresource");
    if (*sub) {
        dbuf_printf(&b, " with subresource \"%s\"", sub);
    }
    if (!strcmp(fs_estr(e, "operation"), "Update")) {
        dbuf_printf(&b, " using %s", fs_estr(e, "apiVersion"));
        if (*fs_estr(e, "time")) {
            dbuf_printf(&b, " at %s", fs_estr(e, "time"));
        }
    }
    return dbuf_steal(&b, NULL);
}

static int
fs_cmp_entry(const void *a, const void *b)
{
    const struct fs_entry *const *x = a, *const *y = b;
    int c = strcmp(fs_estr(*x, "manager"), fs_estr(*y, "manager"));
    return c ? c : strcmp(fs_estr(*x, "operation"), fs_estr(*y, "operation"));
}

/* 409 listing the conflicts: per other manager, changed ∩ its set. */
static int
fs_conflicts(struct fs_entries *es, const struct fs_entry *self,
             const json_t *changed, struct dpf_error *err)
{
    struct fs_entry **order = xcalloc(es->n + 1, sizeof(*order));
    json_t **paths = xcalloc(es->n + 1, sizeof(*paths));
    size_t no = 0, total = 0;
    for (size_t i = 0; i < es->n; i++) {
        if (&es->e[i] == self) {
            continue;
        }
        json_t *c = fs_intersect(es->e[i].set, changed);
        if (json_object_size(c)) {
            order[no++] = &es->e[i];
        }
        json_decref(c);
    }
    qsort(order, no, sizeof(*order), fs_cmp_entry);
    for (size_t i = 0; i < no; i++) {
        json_t *c = fs_intersect(order[i]->set, changed);
        struct dbuf p;
        dbuf_init(&p);
        paths[i] = json_array();
        fs_paths(c, &p, paths[i]);
        dbuf_free(&p);
        json_decref(c);
        total += json_array_size(paths[i]);
    }
    if (!total) {
        free(order);
        free(paths);
        return 0;
    }
    struct dbuf msg;
    dbuf_init(&msg);
    dpf_error_set(err, 409, "Conflict", "conflict");
    for (size_t i = 0; i < no; i++) {
        char *mt = fs_manager_text(order[i]);
        size_t j;
        json_t *p;
        if (total == 1) {
            dbuf_printf(&msg,
                        "Apply failed with 1 conflict: conflict with "
                        "%s: %s",
                        mt, json_string_value(json_array_get(paths[i], 0)));
        } else {
            if (!msg.len) {
                dbuf_printf(&msg, "Apply failed with %zu conflicts: ", total);
            } else {
                dbuf_puts(&msg, "\n");
            }
            dbuf_printf(&msg, "conflicts with %s:", mt);
            json_array_foreach(paths[i], j, p)
            {
                dbuf_printf(&msg, "\n- %s", json_string_value(p));
            }
        }
        json_array_foreach(paths[i], j, p)
        {
            dpf_error_add_cause(err, "FieldManagerConflict",
                                json_string_value(p), "conflict with %s", mt);
        }
        free(mt);
        json_decref(paths[i]);
    }
    snprintf(err->message, sizeof(err->message), "%s",
             (msg.data ? msg.data : ""));
    dbuf_free(&msg);
    free(order);
    free(paths);
    return -EBUSY;
}

int
schema_fields_apply(const struct schema_kind *k, const json_t *live,
                    const json_t *config, const struct schema_field_manager *m,
                    bool force, json_t **out, struct dpf_error *err)
{
    schema_ensure_init();
    *out = NULL;
    struct fs_entries es;
    fs_entries_load(&es, live);
    json_t *cfg_set = fs_of_children(config, k->root, false, 0);
    fs_strip(cfg_set);
    json_t *merged = live ? fs_plain(live) : json_object();
    fs_apply_merge(merged, config, k->root, 0);
    const json_t *before = live;
    bool removed = false;
    json_t *changed = fs_diff(before, merged, k->root, 0, &removed);
    fs_strip(changed);
    struct fs_entry *self = fs_entry_get(&es, k, m, "Apply");
    int r = 0;
    if (!force) {
        r = fs_conflicts(&es, self, changed, err);
    }
    if (r == 0) {
        for (size_t i = 0; i < es.n; i++) {
            if (&es.e[i] != self) {
                fs_minus_into(es.e[i].set, changed);
            }
        }
        /* What this manager applied before and applies no more goes,
         * unless another manager owns it (or something below it), or
         * something below it is still applied. */
        json_t *dropped = json_deep_copy(self->set);
        fs_minus_into(dropped, cfg_set);
        /* What is still applied keeps its containers too. */
        json_t *others = json_deep_copy(cfg_set);
        for (size_t i = 0; i < es.n; i++) {
            if (&es.e[i] != self) {
                fs_union_into(others, es.e[i].set);
            }
        }
        fs_remove(merged, k->root, dropped, others, 0);
        json_decref(dropped);
        json_decref(others);
        /* An apply that changes neither the object nor what the manager
         * owns is no write at all (its entry keeps its time). */
        bool same = live && json_equal(self->set, cfg_set) &&
                    !json_object_size(changed) && fs_equal_plain(live, merged);
        json_decref(self->set);
        self->set = json_incref(cfg_set);
        if (!same) {
            fs_entry_touch(self, k, m);
        }
        json_t *every = fs_every(merged, k->root, 0);
        for (size_t i = 0; i < es.n; i++) {
            json_t *kept = fs_intersect(es.e[i].set, every);
            json_decref(es.e[i].set);
            es.e[i].set = kept;
        }
        json_decref(every);
        fs_entries_store(&es, merged);
        *out = merged;
        merged = NULL;
    }
    json_decref(merged);
    json_decref(changed);
    json_decref(cfg_set);
    fs_entries_free(&es);
    return r;
}

json_t *
schema_fields_set(const struct schema_kind *k, const json_t *obj)
{
    schema_ensure_init();
    json_t *s = fs_of_children(obj, k->root, false, 0);
    fs_strip(s);
    json_t *v1 = fs_to_v1(s);
    json_decref(s);
    return v1;
}
