/* kube-object: see kube-object.h. */
#include "lib/kube/kube-object.h"

#include <errno.h>
#include <string.h>

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

void
kube_time_now(char *buf, size_t size)
{
    time_format_rfc3339(time_wall_ns(), buf, size);
}

json_t *
kube_condition_find(const json_t *obj, const char *type)
{
    json_t *conds =
        json_object_get(json_object_get(obj, "status"), "conditions");
    size_t i;
    json_t *c;
    json_array_foreach(conds, i, c)
    {
        if (str_eq(str_field(c, "type"), type)) {
            return c;
        }
    }
    return NULL;
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
    json_t *st = json_object_get(obj, "status");
    if (!json_is_object(st)) {
        st = json_object();
        json_object_set_new(obj, "status", st);
    }
    json_t *conds = json_object_get(st, "conditions");
    if (!json_is_array(conds)) {
        conds = json_array();
        json_object_set_new(st, "conditions", conds);
    }
    json_t *c = kube_condition_find(obj, type);
    bool changed = false;
    if (!c) {
        c = json_object();
        json_object_set_new(c, "type", json_string(type));
        json_array_append_new(conds, c);
        changed = true;
    }
    if (set_str(c, "status", status)) {
        json_object_set_new(c, "lastTransitionTime", json_string(now));
        changed = true;
    } else if (!json_object_get(c, "lastTransitionTime")) {
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
    json_t *conds =
        json_object_get(json_object_get(obj, "status"), "conditions");
    size_t i;
    json_t *c;
    json_array_foreach(conds, i, c)
    {
        if (str_eq(str_field(c, "type"), type)) {
            json_array_remove(conds, i);
            return true;
        }
    }
    return false;
}

bool
kube_finalizer_has(const json_t *obj, const char *name)
{
    json_t *f = json_object_get(json_object_get(obj, "metadata"), "finalizers");
    size_t i;
    json_t *v;
    json_array_foreach(f, i, v)
    {
        if (str_eq(json_string_value(v), name)) {
            return true;
        }
    }
    return false;
}

bool
kube_finalizer_add(json_t *obj, const char *name)
{
    if (kube_finalizer_has(obj, name)) {
        return false;
    }
    json_t *md = json_object_get(obj, "metadata");
    if (!json_is_object(md)) {
        md = json_object();
        json_object_set_new(obj, "metadata", md);
    }
    json_t *f = json_object_get(md, "finalizers");
    if (!json_is_array(f)) {
        f = json_array();
        json_object_set_new(md, "finalizers", f);
    }
    json_array_append_new(f, json_string(name));
    return true;
}

bool
kube_finalizer_remove(json_t *obj, const char *name)
{
    json_t *f = json_object_get(json_object_get(obj, "metadata"), "finalizers");
    bool removed = false;
    for (size_t i = 0; i < json_array_size(f);) {
        if (str_eq(json_string_value(json_array_get(f, i)), name)) {
            json_array_remove(f, i);
            removed = true;
        } else {
            i++;
        }
    }
    return removed;
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
    json_t *refs =
        json_object_get(json_object_get(obj, "metadata"), "ownerReferences");
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
    json_t *refs =
        json_object_get(json_object_get(obj, "metadata"), "ownerReferences");
    size_t i;
    json_t *r;
    json_array_foreach(refs, i, r)
    {
        if (str_eq(str_field(r, "uid"), uid)) {
            return true;
        }
    }
    return false;
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
    json_t *md = json_object_get(obj, "metadata");
    if (!json_is_object(md)) {
        md = json_object();
        json_object_set_new(obj, "metadata", md);
    }
    json_t *refs = json_object_get(md, "ownerReferences");
    if (!json_is_array(refs)) {
        refs = json_array();
        json_object_set_new(md, "ownerReferences", refs);
    }
    size_t i;
    json_t *r;
    json_array_foreach(refs, i, r)
    {
        if (str_eq(str_field(r, "uid"), uid)) {
            if (json_equal(r, ref)) {
                json_decref(ref);
                return 0;
            }
            json_array_set_new(refs, i, ref);
            return 1;
        }
    }
    json_array_append_new(refs, ref);
    return 1;
}
