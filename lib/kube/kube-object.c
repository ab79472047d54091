/* kube-object: see kube-object.h. */
#include "lib/kube/kube-object.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "lib/base/util.h"

static const char *
str_field(const json_t *o, const char *name)
{
    return json_string_value(json_object_get(o, name));
}

static bool
str_eq(const char *a, const char *b)
{
    return !strcmp(a ? a : "", b ? b : "");
}

/* The lists inside an object that the helpers below edit: where each
 * lives and which field of an entry is its key (NULL: the entry is the
 * key, a string). */
enum obj_list { CONDITIONS, FINALIZERS, OWNER_REFS };

static const struct {
    const char *parent; /* "status" or "metadata" */
    const char *field;  /* the array in it */
    const char *key;    /* an entry's key field, or NULL */
} obj_lists[] = {
    [CONDITIONS] = {"status", "conditions", "type"},
    [FINALIZERS] = {"metadata", "finalizers", NULL},
    [OWNER_REFS] = {"metadata", "ownerReferences", "uid"},
};

/* The list (borrowed), or NULL when absent. */
static json_t *
list_get(const json_t *obj, enum obj_list l)
{
    return json_object_get(json_object_get(obj, obj_lists[l].parent),
                           obj_lists[l].field);
}

/* The list, created (with its parent) when missing. */
static json_t *
list_make(json_t *obj, enum obj_list l)
{
    json_t *p = json_object_get(obj, obj_lists[l].parent);
    if (!json_is_object(p)) {
        p = json_object();
        json_object_set_new(obj, obj_lists[l].parent, p);
    }
    json_t *a = json_object_get(p, obj_lists[l].field);
    if (!json_is_array(a)) {
        a = json_array();
        json_object_set_new(p, obj_lists[l].field, a);
    }
    return a;
}

/* The key of entry v of list l. */
static const char *
entry_key(enum obj_list l, const json_t *v)
{
    return obj_lists[l].key ? str_field(v, obj_lists[l].key)
                            : json_string_value(v);
}

/* Index of the first entry with key, or -1. */
static long
list_find(const json_t *obj, enum obj_list l, const char *key)
{
    json_t *a = list_get(obj, l);
    for (size_t i = 0; i < json_array_size(a); i++) {
        if (str_eq(entry_key(l, json_array_get(a, i)), key)) {
            return (long) i;
        }
    }
    return -1;
}

/* Remove every entry with key; true when one was removed. */
static bool
list_remove(json_t *obj, enum obj_list l, const char *key)
{
    bool removed = false;
    for (long i; (i = list_find(obj, l, key)) >= 0; removed = true) {
        json_array_remove(list_get(obj, l), (size_t) i);
    }
    return removed;
}

void
kube_time_now(char *buf, size_t size)
{
    time_format_rfc3339(time_wall_ns(), buf, size);
}

void
kube_microtime_now(char *buf, size_t size)
{
    int64_t ns = time_wall_ns();
    time_t s = (time_t) (ns / 1000000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%06ldZ", (long) (ns % 1000000000) / 1000);
}

bool
kube_json_same(const json_t *a, const json_t *b)
{
    return a == b || (a && b && json_equal(a, b));
}

/* obj's member at a dotted path, or NULL. */
static const json_t *
json_at_path(const json_t *obj, const char *path)
{
    while (obj && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t) (dot - path) : strlen(path);
        obj = json_object_getn(obj, path, n);
        path += n + (dot != NULL);
    }
    return obj;
}

bool
kube_json_changed(const json_t *old, const json_t *obj,
                  const char *const *paths)
{
    for (; *paths; paths++) {
        if (!kube_json_same(json_at_path(old, *paths),
                            json_at_path(obj, *paths))) {
            return true;
        }
    }
    return false;
}

void
kube_json_keep_only(json_t *obj, const char *member, const char *keep)
{
    json_t *m = json_object_get(obj, member);
    if (!json_is_object(m)) {
        return;
    }
    json_t *child = json_incref(json_object_get(m, keep));
    json_object_clear(m);
    if (child) {
        json_object_set_new(m, keep, child);
    }
}

json_t *
kube_condition_find(const json_t *obj, const char *type)
{
    long i = list_find(obj, CONDITIONS, type);
    return i < 0 ? NULL : json_array_get(list_get(obj, CONDITIONS), i);
}

bool
kube_condition_is_true(const json_t *obj, const char *type)
{
    return str_eq(str_field(kube_condition_find(obj, type), "status"), "True");
}

/* Set c[name] = s when it differs; true when changed. */
static bool
set_str(json_t *c, const char *name, const char *s)
{
    if (str_eq(str_field(c, name), s) && json_object_get(c, name)) {
        return false;
    }
    json_object_set_new(c, name, json_string(s ? s : ""));
    return true;
}

bool
kube_condition_set(json_t *obj, const char *type, const char *status,
                   const char *reason, const char *message,
                   int64_t observed_generation, const char *now)
{
    char tbuf[32];
    if (!now) {
        kube_time_now(tbuf, sizeof tbuf);
        now = tbuf;
    }
    json_t *conds = list_make(obj, CONDITIONS);
    json_t *c = kube_condition_find(obj, type);
    bool changed = false;
    if (!c) {
        c = json_object();
        json_object_set_new(c, "type", json_string(type));
        json_array_append_new(conds, c);
        changed = true;
    }
    if (set_str(c, "status", status) ||
        !json_object_get(c, "lastTransitionTime")) {
        json_object_set_new(c, "lastTransitionTime", json_string(now));
        changed = true;
    }
    changed |= set_str(c, "reason", reason);
    changed |= set_str(c, "message", message);
    if (observed_generation >= 0) {
        json_t *g = json_object_get(c, "observedGeneration");
        if (!json_is_integer(g) ||
            json_integer_value(g) != observed_generation) {
            json_object_set_new(c, "observedGeneration",
                                json_integer(observed_generation));
            changed = true;
        }
    }
    return changed;
}

bool
kube_condition_remove(json_t *obj, const char *type)
{
    long i = list_find(obj, CONDITIONS, type);
    return i >= 0 &&
           json_array_remove(list_get(obj, CONDITIONS), (size_t) i) == 0;
}

bool
kube_finalizer_has(const json_t *obj, const char *name)
{
    return list_find(obj, FINALIZERS, name) >= 0;
}

bool
kube_finalizer_add(json_t *obj, const char *name)
{
    if (kube_finalizer_has(obj, name)) {
        return false;
    }
    json_array_append_new(list_make(obj, FINALIZERS), json_string(name));
    return true;
}

bool
kube_finalizer_remove(json_t *obj, const char *name)
{
    return list_remove(obj, FINALIZERS, name);
}

bool
kube_is_deleting(const json_t *obj)
{
    const char *ts =
        str_field(json_object_get(obj, "metadata"), "deletionTimestamp");
    return ts && *ts;
}

json_t *
kube_owner_ref(const json_t *owner, bool controller)
{
    const json_t *md = json_object_get(owner, "metadata");
    const char *av = str_field(owner, "apiVersion");
    const char *kind = str_field(owner, "kind");
    const char *name = str_field(md, "name");
    const char *uid = str_field(md, "uid");
    if (!av || !kind || !name || !uid) {
        return NULL;
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b}", "apiVersion", av, "kind",
                     kind, "name", name, "uid", uid, "controller", controller,
                     "blockOwnerDeletion", controller);
}

json_t *
kube_owner_controller(const json_t *obj)
{
    json_t *refs = list_get(obj, OWNER_REFS);
    size_t i;
    json_t *r;
    json_array_foreach(refs, i, r)
    {
        if (json_is_true(json_object_get(r, "controller"))) {
            return r;
        }
    }
    return NULL;
}

bool
kube_owned_by(const json_t *obj, const char *uid)
{
    return list_find(obj, OWNER_REFS, uid) >= 0;
}

int
kube_owner_ref_set(json_t *obj, const json_t *owner, bool controller)
{
    json_t *ref = kube_owner_ref(owner, controller);
    if (!ref) {
        return -EINVAL;
    }
    const char *uid = str_field(ref, "uid");
    json_t *cur = kube_owner_controller(obj);
    if (controller && cur && !str_eq(str_field(cur, "uid"), uid)) {
        json_decref(ref);
        return -EEXIST;
    }
    json_t *refs = list_make(obj, OWNER_REFS);
    long i = list_find(obj, OWNER_REFS, uid);
    if (i < 0) {
        json_array_append_new(refs, ref);
    } else if (json_equal(json_array_get(refs, (size_t) i), ref)) {
        json_decref(ref);
        return 0;
    } else {
        json_array_set_new(refs, (size_t) i, ref);
    }
    return 1;
}
