/* apiserver-gc: the garbage collector and the deletion finishers.
 *
 * Fed by the store event hook (as_gc_note copies only events that matter:
 * deletions, objects with ownerReferences, objects being deleted, and
 * namespaces), a thread keeps an index owner uid -> dependent keys and:
 *  - when an owner is deleted, deletes its dependents whose owners are all
 *    gone (background propagation) and drops dangling references from
 *    dependents that still have a live owner;
 *  - for an owner deleted with propagationPolicy=Foreground (finalizer
 *    foregroundDeletion) deletes the dependents first, then removes the
 *    finalizer; for Orphan (finalizer orphan) removes the owner from its
 *    dependents' ownerReferences, then removes the finalizer;
 *  - for a terminating namespace deletes everything in it, then removes
 *    the namespace's "kubernetes" spec finalizer so it goes away;
 *  - finishes graceful pod deletions whose grace period ran out (so a pod
 *    whose node agent is gone is not stuck forever);
 *  - deletes Events not written for the configured TTL (kube-apiserver's
 *    --event-ttl, which it does with etcd leases): the thread samples
 *    (time, store revision) pairs, and an Event whose mod revision is at
 *    most the revision of a sample taken a TTL ago was last written
 *    before then. Deletions are conditional on that revision, so an
 *    Event written again meanwhile stays.
 * The index is only a hint: every decision re-reads the owners from the
 * store, so a stale index costs a lookup, never a wrong deletion. Every
 * edit is a guaranteed update (apiserver-update.c) whose callback decides
 * from the object as it is at that moment, so a client's concurrent
 * write is never lost and an owner reference it adds is seen before the
 * dependent is deleted. On start one background scan of the store
 * rebuilds the index. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dpf-server/apiserver-private.h"
#include "lib/base/log.h"
#include "lib/base/thread.h"
#include "lib/codecs/json-text.h"

LOG_MODULE(apiserver);

struct as_gc_item {
    enum store_event_type type;
    char *key;
    char *value;
    size_t len;
    struct as_gc_item *next;
};

struct as_gc {
    struct apiserver *as;
    struct worker w; /* lock, wake-up, stop flag, thread */
    struct as_gc_item *qhead, *qtail;
    /* Below: only the GC thread (or apiserver_gc_run) touches these. */
    json_t *dependents;     /* owner uid -> array of dependent keys */
    json_t *owners_of;      /* dependent key -> array of owner uids */
    json_t *pending;        /* key -> true: deletions that need GC work */
    bool scanned;           /* startup scan done */
    pthread_mutex_t run_mu; /* one pass at a time */
    /* Event TTL (only with cfg.event_ttl_ms): samples, oldest first */
    struct as_rv_mark *marks;
    size_t n_marks, cap_marks;
    int64_t next_mark_ms; /* when to sample again (monotonic) */
    int64_t expired_rv;   /* Events with mod_rv <= this are gone */
    bool expire_more;     /* a sweep stopped at its batch limit */
};

/* A sample: every write with mod_rv <= rv happened before t_ms. */
struct as_rv_mark {
    int64_t t_ms; /* monotonic */
    int64_t rv;
};

/* Events one sweep deletes at most; the rest wait a second (each
 * deletion is a durable write, and the thread also collects garbage). */
#define AS_EXPIRE_BATCH 2000

/* ------------------------------------------------------------------ */
/* keys */

struct as_keyparts {
    const struct schema_kind *k;
    char ns[254];
    char name[254];
};

static int
as_key_parse(const char *key, struct as_keyparts *kp)
{
    char group[254], plural[254];
    const char *p = key;
    char *outs[4] = {group, plural, kp->ns, kp->name};
    for (int i = 0; i < 4; i++) {
        if (*p != '/') {
            return -EINVAL;
        }
        p++;
        const char *e = i < 3 ? strchr(p, '/') : p + strlen(p);
        if (!e || (size_t) (e - p) >= 254) {
            return -EINVAL;
        }
        memcpy(outs[i], p, (size_t) (e - p));
        outs[i][e - p] = '\0';
        p = e;
    }
    const char *g = !strcmp(group, "core") ? "" : group;
    size_t n;
    const struct schema_kind *const *kinds = schema_kinds(&n);
    kp->k = NULL;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(kinds[i]->group, g) && !strcmp(kinds[i]->plural, plural)) {
            kp->k = kinds[i];
            break;
        }
    }
    return kp->k ? 0 : -ENOENT;
}

static json_t *
as_gc_load(struct apiserver *as, const char *key)
{
    struct store_kv kv = {0};
    if (as_get_current(as, key, &kv, NULL) < 0) {
        return NULL;
    }
    json_t *obj = as_load_object(kv.value, kv.len, kv.rv);
    store_kv_free(&kv);
    return obj;
}

static bool
as_gc_has_finalizer(const json_t *obj, const char *f)
{
    return as_str_in_array(json_object_get(as_md(obj), "finalizers"), f);
}

/* ------------------------------------------------------------------ */
/* the index */

static void
as_index_remove(struct as_gc *gc, const char *key)
{
    json_t *owners = json_object_get(gc->owners_of, key);
    size_t i;
    json_t *u;
    json_array_foreach(owners, i, u)
    {
        json_t *deps = json_object_get(gc->dependents, json_string_value(u));
        size_t j;
        json_t *d;
        json_array_foreach(deps, j, d)
        {
            if (!strcmp(json_string_value(d), key)) {
                json_array_remove(deps, j);
                break;
            }
        }
        if (deps && json_array_size(deps) == 0) {
            json_object_del(gc->dependents, json_string_value(u));
        }
    }
    json_object_del(gc->owners_of, key);
}

/* Index obj's owner references; true if they changed. */
static bool
as_index_update(struct as_gc *gc, const char *key, const json_t *obj)
{
    json_t *refs =
        json_object_get(json_object_get(obj, "metadata"), "ownerReferences");
    json_t *uids = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(refs, i, r)
    {
        const char *uid = json_string_value(json_object_get(r, "uid"));
        if (uid) {
            json_array_append_new(uids, json_string(uid));
        }
    }
    json_t *old = json_object_get(gc->owners_of, key);
    if (json_equal(old, uids) || (!old && json_array_size(uids) == 0)) {
        json_decref(uids);
        return false;
    }
    as_index_remove(gc, key);
    if (json_array_size(uids) == 0) {
        json_decref(uids);
        return true;
    }
    json_array_foreach(uids, i, r)
    {
        const char *uid = json_string_value(r);
        json_t *deps = json_object_get(gc->dependents, uid);
        if (!deps) {
            deps = json_array();
            json_object_set_new(gc->dependents, uid, deps);
        }
        json_array_append_new(deps, json_string(key));
    }
    json_object_set_new(gc->owners_of, key, uids);
    return true;
}

/* ------------------------------------------------------------------ */
/* decisions */

enum as_owner_state {
    AS_OWNER_ALIVE,
    AS_OWNER_GONE,
    AS_OWNER_FOREGROUND, /* being deleted in the foreground */
    AS_OWNER_UNKNOWN,    /* kind not served: leave it alone */
};

static enum as_owner_state
as_owner_state(struct apiserver *as, const json_t *ref, const char *dep_ns)
{
    const char *av = json_string_value(json_object_get(ref, "apiVersion"));
    const char *kind = json_string_value(json_object_get(ref, "kind"));
    const char *name = json_string_value(json_object_get(ref, "name"));
    const char *uid = json_string_value(json_object_get(ref, "uid"));
    if (!av || !kind || !name) {
        return AS_OWNER_UNKNOWN;
    }
    const struct schema_kind *k = schema_find_kind(av, kind);
    if (!k) {
        return AS_OWNER_UNKNOWN;
    }
    char *key = as_key(k, k->namespaced ? dep_ns : NULL, name);
    json_t *owner = as_gc_load(as, key);
    free(key);
    if (!owner) {
        return AS_OWNER_GONE;
    }
    const char *ouid = as_md_str(owner, "uid");
    enum as_owner_state st = AS_OWNER_ALIVE;
    if (uid && ouid && strcmp(uid, ouid) != 0) {
        st = AS_OWNER_GONE;
    } else if (as_md_str(owner, "deletionTimestamp") &&
               as_gc_has_finalizer(owner, "foregroundDeletion")) {
        st = AS_OWNER_FOREGROUND;
    }
    json_decref(owner);
    return st;
}

/* ------------------------------------------------------------------ */
/* edits, each one guaranteed update */

/* Run fn on kp's object through the guaranteed update; the verdict, or
 * a negative errno (-ENOENT: the object is gone). */
static int
as_gc_update(struct apiserver *as, const struct as_keyparts *kp,
             as_mutate_fn fn, void *arg)
{
    struct as_update_opts o = {.part = AS_PART_ALL};
    struct as_update_result res;
    struct as_error ae = {0};
    int r = as_guaranteed_update(as, kp->k, kp->k->namespaced ? kp->ns : NULL,
                                 kp->name, &o, fn, arg, &res, &ae);
    if (r < 0) {
        if (r != -ENOENT) {
            log_warn_rl("garbage collector edit failed", "name=%s err=%s",
                        kp->name, ae.e.message);
        }
        return r;
    }
    r = (int) res.verdict;
    as_update_result_free(&res);
    return r;
}

/* Remove the owner references naming one of uids from a copy of cur;
 * AS_UNCHANGED when none does. */
static int
as_drop_refs(const json_t *cur, const json_t *uids, json_t **out)
{
    json_t *obj = json_deep_copy(cur);
    json_t *md = json_object_get(obj, "metadata");
    json_t *refs = json_object_get(md, "ownerReferences");
    bool changed = false;
    for (size_t i = json_array_size(refs); i-- > 0;) {
        const char *uid =
            json_string_value(json_object_get(json_array_get(refs, i), "uid"));
        size_t j;
        json_t *u;
        json_array_foreach(uids, j, u)
        {
            if (uid && !strcmp(uid, json_string_value(u))) {
                json_array_remove(refs, i);
                changed = true;
                break;
            }
        }
    }
    if (!changed) {
        json_decref(obj);
        return AS_UNCHANGED;
    }
    if (json_array_size(refs) == 0) {
        json_object_del(md, "ownerReferences");
    }
    json_object_del(md, "resourceVersion");
    *out = obj;
    return AS_WRITE;
}

static int
as_mutate_drop_refs(void *arg, const json_t *cur, json_t **out,
                    struct as_error *ae)
{
    return as_drop_refs(cur, arg, out);
}

struct as_dependent {
    struct apiserver *as;
    const struct schema_kind *k;
    const char *ns; /* the dependent's namespace ("" cluster-scoped) */
};

/* A dependent, decided from the object as it is now (so an owner
 * reference a client added in the meantime is seen): delete it
 * (background) when all its owners are gone, or gone and being deleted in
 * the foreground; drop the dangling references when only some are. */
static int
as_mutate_dependent(void *arg, const json_t *cur, json_t **out,
                    struct as_error *ae)
{
    struct as_dependent *d = arg;
    json_t *refs =
        json_object_get(json_object_get(cur, "metadata"), "ownerReferences");
    size_t n = json_array_size(refs), gone = 0, fg = 0;
    json_t *dangling = json_array();
    size_t i;
    json_t *r;
    json_array_foreach(refs, i, r)
    {
        enum as_owner_state st = as_owner_state(d->as, r, d->ns);
        if (st == AS_OWNER_GONE) {
            gone++;
            json_array_append(dangling, json_object_get(r, "uid"));
        } else if (st == AS_OWNER_FOREGROUND) {
            fg++;
        }
    }
    int v = AS_UNCHANGED;
    bool deleting = as_md_str(cur, "deletionTimestamp") != NULL;
    if (n && (gone == n || (fg && gone + fg == n)) && !deleting) {
        struct as_delete_opts o = {.propagation = "Background",
                                   .grace_seconds = -1};
        v = as_delete_decide(d->as, d->k, &o, cur, out, ae);
    } else if (gone && gone < n) {
        v = as_drop_refs(cur, dangling, out);
    }
    json_decref(dangling);
    return v;
}

/* Delete key if all its owners are gone; drop dangling references when
 * only some are. */
static void
as_check_dependent(struct as_gc *gc, const char *key)
{
    struct as_keyparts kp;
    if (as_key_parse(key, &kp) < 0) {
        return;
    }
    struct as_dependent d = {gc->as, kp.k, kp.ns};
    int v = as_gc_update(gc->as, &kp, as_mutate_dependent, &d);
    if (v == AS_MARK || v == AS_REMOVE) {
        log_info("garbage collected", "key=%s", key);
    }
}

static int
as_mutate_remove_finalizer(void *arg, const json_t *cur, json_t **out,
                           struct as_error *ae)
{
    const char *f = arg;
    json_t *fin =
        json_object_get(json_object_get(cur, "metadata"), "finalizers");
    for (size_t i = 0; i < json_array_size(fin); i++) {
        const char *s = json_string_value(json_array_get(fin, i));
        if (s && !strcmp(s, f)) {
            json_t *obj = json_deep_copy(cur);
            json_t *md = json_object_get(obj, "metadata");
            json_array_remove(json_object_get(md, "finalizers"), i);
            json_object_del(md, "resourceVersion");
            *out = obj;
            return AS_WRITE;
        }
    }
    return AS_UNCHANGED;
}

/* A terminating namespace whose content is gone: drop its spec
 * finalizers (the write that empties them removes it), or remove it when
 * they were empty already. */
static int
as_mutate_finalize_ns(void *arg, const json_t *cur, json_t **out,
                      struct as_error *ae)
{
    if (!as_md_str(cur, "deletionTimestamp")) {
        return AS_UNCHANGED;
    }
    json_t *fin = json_object_get(json_object_get(cur, "spec"), "finalizers");
    if (!json_array_size(fin)) {
        return as_finalizer_count(cur) ? AS_UNCHANGED : AS_REMOVE;
    }
    json_t *obj = json_deep_copy(cur);
    json_object_set_new(json_object_get(obj, "spec"), "finalizers",
                        json_array());
    json_object_del(json_object_get(obj, "metadata"), "resourceVersion");
    *out = obj;
    return AS_WRITE;
}

/* A graceful deletion (pods) whose grace period ran out and that has no
 * finalizer left: remove it. *waiting: the period is not over yet. */
static int
as_mutate_expire(void *arg, const json_t *cur, json_t **out,
                 struct as_error *ae)
{
    bool *waiting = arg;
    json_t *md = json_object_get(cur, "metadata");
    json_int_t grace =
        json_integer_value(json_object_get(md, "deletionGracePeriodSeconds"));
    const char *ts = as_md_str(cur, "deletionTimestamp");
    if (!ts || grace <= 0 ||
        json_array_size(json_object_get(md, "finalizers"))) {
        return AS_UNCHANGED;
    }
    struct tm tm = {0};
    if (strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm) &&
        (int64_t) timegm(&tm) * 1000000000LL <= time_wall_ns()) {
        return AS_REMOVE;
    }
    *waiting = true;
    return AS_UNCHANGED;
}

struct as_ns_ctx {
    struct apiserver *as;
    const struct schema_kind *k;
    size_t remaining;
};

static int
as_ns_delete_each(void *arg, const struct store_kv *kv)
{
    struct as_ns_ctx *c = arg;
    struct as_keyparts kp;
    c->remaining++;
    if (as_key_parse(kv->key, &kp) < 0) {
        return 0;
    }
    json_t *obj = as_load_object(kv->value, kv->len, kv->rv);
    bool deleting = obj && as_md_str(obj, "deletionTimestamp");
    json_decref(obj);
    if (deleting) {
        return 0;
    }
    struct as_delete_opts o = {.propagation = "Background",
                               .grace_seconds = -1};
    struct as_error ae = {0};
    as_delete_object(c->as, kp.k, kp.ns, kp.name, &o, NULL, &ae);
    return 0;
}

/* A CRD being deleted: mark it Terminating (its defaults set the
 * condition on any write), then a copy to write. */
static int
as_mutate_crd_terminating(void *arg, const json_t *cur, json_t **out,
                          struct as_error *ae)
{
    (void) arg;
    (void) ae;
    const json_t *conds =
        json_object_get(json_object_get(cur, "status"), "conditions");
    size_t i;
    json_t *c;
    json_array_foreach(conds, i, c)
    {
        if (!strcmp(json_string_value(json_object_get(c, "type")) ?: "",
                    "Terminating")) {
            return AS_UNCHANGED;
        }
    }
    *out = json_deep_copy(cur);
    return AS_WRITE;
}

/* One step of a CRD's deletion: its objects are deleted (in every
 * namespace), then its finalizer removed. A CRD of a resource a built-in
 * kind serves (DPF's own, as `dpfctl crds` prints them) leaves the
 * objects alone: the resource stays served. True when done. */
static bool
as_crd_cleanup_step(struct apiserver *as, const struct as_keyparts *kp,
                    const json_t *crd)
{
    as_gc_update(as, kp, as_mutate_crd_terminating, NULL);
    const json_t *spec = json_object_get(crd, "spec");
    const char *group = json_string_value(json_object_get(spec, "group"));
    const char *plural = json_string_value(
        json_object_get(json_object_get(spec, "names"), "plural"));
    size_t n;
    const struct schema_kind *const *kinds = schema_kinds(&n);
    const struct schema_kind *k = NULL;
    for (size_t i = 0; group && plural && i < n; i++) {
        if (kinds[i]->crd && !strcmp(kinds[i]->group, group) &&
            !strcmp(kinds[i]->plural, plural)) {
            k = kinds[i];
            break;
        }
    }
    if (k) {
        struct as_ns_ctx c = {as, k, 0};
        char *prefix = as_prefix(k, NULL);
        store_list(as->store, prefix, NULL, 0, as_ns_delete_each, &c, NULL,
                   NULL, NULL);
        free(prefix);
        if (c.remaining) {
            return false;
        }
    }
    as_gc_update(as, kp, as_mutate_remove_finalizer, (void *) AS_CRD_FINALIZER);
    return true;
}

/* Work on one object in deletion; true when nothing is left to do. */
static bool
as_pending_step(struct as_gc *gc, const char *key)
{
    struct apiserver *as = gc->as;
    struct as_keyparts kp;
    if (as_key_parse(key, &kp) < 0) {
        return true;
    }
    json_t *obj = as_gc_load(as, key);
    if (!obj || !as_md_str(obj, "deletionTimestamp")) {
        json_decref(obj);
        return true;
    }
    const char *uid = as_md_str(obj, "uid");
    bool finished = true;
    if (str_has_prefix(key, AS_CRD_KEY_PREFIX) &&
        as_gc_has_finalizer(obj, AS_CRD_FINALIZER)) {
        finished = as_crd_cleanup_step(as, &kp, obj);
    } else if (!kp.k->group[0] && !strcmp(kp.k->plural, "namespaces")) {
        size_t n;
        const struct schema_kind *const *kinds = schema_kinds(&n);
        size_t remaining = 0;
        for (size_t i = 0; i < n; i++) {
            if (!kinds[i]->namespaced) {
                continue;
            }
            struct as_ns_ctx c = {as, kinds[i], 0};
            char *prefix = as_prefix(kinds[i], kp.name);
            store_list(as->store, prefix, NULL, 0, as_ns_delete_each, &c, NULL,
                       NULL, NULL);
            free(prefix);
            remaining += c.remaining;
        }
        if (remaining == 0) {
            as_gc_update(as, &kp, as_mutate_finalize_ns, NULL);
        } else {
            finished = false;
        }
    } else if (as_gc_has_finalizer(obj, "foregroundDeletion")) {
        json_t *deps =
            json_deep_copy(json_object_get(gc->dependents, uid ? uid : ""));
        size_t live = 0, i;
        json_t *d;
        json_array_foreach(deps, i, d)
        {
            const char *dkey = json_string_value(d);
            json_t *dep = as_gc_load(as, dkey);
            if (!dep) {
                continue;
            }
            live++;
            json_decref(dep);
            as_check_dependent(gc, dkey);
        }
        json_decref(deps);
        if (live == 0) {
            as_gc_update(as, &kp, as_mutate_remove_finalizer,
                         (void *) "foregroundDeletion");
        } else {
            finished = false;
        }
    } else if (as_gc_has_finalizer(obj, "orphan")) {
        json_t *deps =
            json_deep_copy(json_object_get(gc->dependents, uid ? uid : ""));
        size_t i;
        json_t *d;
        json_t *uids = json_pack("[s]", uid ? uid : "");
        json_array_foreach(deps, i, d)
        {
            struct as_keyparts dkp;
            if (as_key_parse(json_string_value(d), &dkp) == 0) {
                as_gc_update(as, &dkp, as_mutate_drop_refs, uids);
            }
        }
        json_decref(uids);
        json_decref(deps);
        as_gc_update(as, &kp, as_mutate_remove_finalizer, (void *) "orphan");
    } else {
        /* Graceful deletion (pods): finish once the grace period ran out
         * and no finalizer is left. */
        bool waiting = false;
        as_gc_update(as, &kp, as_mutate_expire, &waiting);
        finished = !waiting;
    }
    json_decref(obj);
    return finished;
}

/* ------------------------------------------------------------------ */
/* events */

static bool
as_needs_pending(const char *key, const json_t *obj)
{
    if (!as_md_str(obj, "deletionTimestamp")) {
        return false;
    }
    if (str_has_prefix(key, "/core/namespaces/") ||
        (str_has_prefix(key, AS_CRD_KEY_PREFIX) &&
         as_gc_has_finalizer(obj, AS_CRD_FINALIZER)) ||
        as_gc_has_finalizer(obj, "foregroundDeletion") ||
        as_gc_has_finalizer(obj, "orphan")) {
        return true;
    }
    return json_integer_value(json_object_get(json_object_get(obj, "metadata"),
                                              "deletionGracePeriodSeconds")) >
           0;
}

/* Every decision here reads only the object's metadata: only that is
 * parsed. */
static void
as_gc_event(struct as_gc *gc, enum store_event_type type, const char *key,
            const char *value, size_t len, bool verify)
{
    json_t *md = json_text_load_path(value, len, JSON_TEXT_PATH("metadata"));
    if (!json_is_object(md)) {
        json_decref(md);
        return;
    }
    json_t *obj = json_object();
    json_object_set_new(obj, "metadata", md);
    if (type == STORE_EVENT_DELETED) {
        as_index_remove(gc, key);
        json_object_del(gc->pending, key);
        const char *uid = as_md_str(obj, "uid");
        json_t *deps =
            json_deep_copy(json_object_get(gc->dependents, uid ? uid : ""));
        size_t i;
        json_t *d;
        json_array_foreach(deps, i, d)
        {
            as_check_dependent(gc, json_string_value(d));
        }
        json_decref(deps);
        if (uid && json_array_size(deps) == 0) {
            json_object_del(gc->dependents, uid);
        }
    } else {
        bool changed = as_index_update(gc, key, obj);
        if ((changed || verify) && json_object_get(gc->owners_of, key)) {
            as_check_dependent(gc, key);
        }
        if (as_needs_pending(key, obj)) {
            json_object_set_new(gc->pending, key, json_true());
        } else {
            json_object_del(gc->pending, key);
        }
    }
    json_decref(obj);
}

void
as_gc_note(struct as_gc *gc, enum store_event_type type, const char *key,
           const char *value, size_t len)
{
    if (type != STORE_EVENT_DELETED &&
        !memmem(value, len, "\"ownerReferences\"", 17) &&
        !memmem(value, len, "\"deletionTimestamp\"", 19) &&
        !str_has_prefix(key, "/core/namespaces/")) {
        return;
    }
    struct as_gc_item *it = xcalloc(1, sizeof(*it));
    it->type = type;
    it->key = xstrdup(key);
    /* Only these metadata members are read (as_gc_event): keep
     * {"metadata":{...}} with them alone. The rest (managedFields, labels,
     * annotations) was most of what the collector's thread parsed. */
    static const char *const members[] = {
        "uid",
        "ownerReferences",
        "deletionTimestamp",
        "finalizers",
        "deletionGracePeriodSeconds",
    };
    size_t a, b;
    if (json_text_member(value, len, "metadata", &a, &b)) {
        struct dbuf d;
        dbuf_init(&d);
        dbuf_puts(&d, "{\"metadata\":{");
        bool first = true;
        for (size_t i = 0; i < ARRAY_SIZE(members); i++) {
            size_t x, y;
            if (json_text_member(value + a, b - a, members[i], &x, &y)) {
                dbuf_printf(&d, "%s\"%s\":", first ? "" : ",", members[i]);
                dbuf_append(&d, value + a + x, y - x);
                first = false;
            }
        }
        dbuf_puts(&d, "}}");
        it->value = dbuf_steal(&d, &it->len);
    } else {
        it->value = xstrndup(value, len);
        it->len = len;
    }
    worker_lock(&gc->w);
    if (gc->qtail) {
        gc->qtail->next = it;
    } else {
        gc->qhead = it;
    }
    gc->qtail = it;
    worker_wake(&gc->w);
    worker_unlock(&gc->w);
}

struct as_scan_ctx {
    struct as_gc *gc;
};

static int
as_scan_each(void *arg, const struct store_kv *kv)
{
    struct as_scan_ctx *c = arg;
    if (!memmem(kv->value, kv->len, "\"ownerReferences\"", 17) &&
        !memmem(kv->value, kv->len, "\"deletionTimestamp\"", 19)) {
        return 0;
    }
    as_gc_event(c->gc, STORE_EVENT_ADDED, kv->key, kv->value, kv->len, true);
    return 0;
}

/* Rebuild the index from the store (start-up). */
static void
as_gc_scan(struct as_gc *gc)
{
    size_t n;
    const struct schema_kind *const *kinds = schema_kinds(&n);
    struct as_scan_ctx c = {gc};
    for (size_t i = 0; i < n; i++) {
        char *prefix = as_prefix(kinds[i], NULL);
        store_list(gc->as->store, prefix, NULL, 0, as_scan_each, &c, NULL, NULL,
                   NULL);
        free(prefix);
    }
    gc->scanned = true;
}

/* ------------------------------------------------------------------ */
/* Event TTL */

struct as_expire_ctx {
    int64_t max_rv;
    char **keys;
    int64_t *rvs;
    size_t n;
    bool more;
};

static int
as_expire_each(void *arg, const struct store_kv *kv)
{
    struct as_expire_ctx *c = arg;
    if (kv->rv > c->max_rv) {
        return 0;
    }
    if (c->n == AS_EXPIRE_BATCH) {
        c->more = true;
        return 1;
    }
    c->keys[c->n] = xstrdup(kv->key);
    c->rvs[c->n++] = kv->rv;
    return 0;
}

/* Sample the revision, and delete the Events last written a TTL ago. */
static void
as_gc_expire_events(struct as_gc *gc)
{
    int64_t ttl = gc->as->cfg.event_ttl_ms;
    int64_t now = time_mono_ms();
    if (ttl <= 0 || (now < gc->next_mark_ms && !gc->expire_more)) {
        return;
    }
    if (now >= gc->next_mark_ms) {
        /* a sample every twentieth of the TTL, 1 s to 60 s apart: an
         * Event goes at most that late */
        int64_t period = ttl / 20 < 1000    ? 1000
                         : ttl / 20 > 60000 ? 60000
                                            : ttl / 20;
        gc->next_mark_ms = now + period;
        if (gc->n_marks == gc->cap_marks) {
            gc->cap_marks = gc->cap_marks ? gc->cap_marks * 2 : 32;
            gc->marks = xrealloc(gc->marks, gc->cap_marks * sizeof *gc->marks);
        }
        gc->marks[gc->n_marks++] =
            (struct as_rv_mark){now, store_current_rv(gc->as->store)};
    }
    /* the newest sample at least a TTL old; older ones are not needed */
    size_t i = 0;
    while (i + 1 < gc->n_marks && gc->marks[i + 1].t_ms <= now - ttl) {
        i++;
    }
    if (i) {
        memmove(gc->marks, gc->marks + i,
                (gc->n_marks - i) * sizeof *gc->marks);
        gc->n_marks -= i;
    }
    if (!gc->n_marks || gc->marks[0].t_ms > now - ttl) {
        return; /* nothing is a TTL old yet */
    }
    int64_t cutoff = gc->marks[0].rv;
    if (cutoff <= gc->expired_rv && !gc->expire_more) {
        return;
    }
    struct as_expire_ctx c = {.max_rv = cutoff,
                              .keys = xmalloc(AS_EXPIRE_BATCH * sizeof(char *)),
                              .rvs =
                                  xmalloc(AS_EXPIRE_BATCH * sizeof(int64_t))};
    struct dpf_error err = {0};
    int r = store_list(gc->as->store, APISERVER_EVENTS_PREFIX, NULL, 0,
                       as_expire_each, &c, NULL, NULL, &err);
    size_t deleted = 0;
    for (size_t k = 0; k < c.n; k++) {
        /* -ESTALE: written again since; -ENOENT: deleted meanwhile */
        if (store_delete(gc->as->store, c.keys[k], c.rvs[k], NULL, NULL) == 0) {
            deleted++;
        }
        free(c.keys[k]);
    }
    free(c.keys);
    free(c.rvs);
    if (r < 0) {
        log_warn_rl("cannot list Events to expire", "error=\"%s\"",
                    err.message);
        gc->expire_more = false;
        return;
    }
    gc->expire_more = c.more;
    if (!c.more) {
        gc->expired_rv = cutoff;
    }
    if (deleted) {
        log_debug("expired Events", "count=%zu ttl_ms=%lld more=%d", deleted,
                  (long long) ttl, (int) c.more);
    }
}

int
as_gc_pass(struct as_gc *gc)
{
    pthread_mutex_lock(&gc->run_mu);
    if (!gc->scanned) {
        as_gc_scan(gc);
    }
    int work = 0;
    for (;;) {
        worker_lock(&gc->w);
        struct as_gc_item *it = gc->qhead;
        gc->qhead = NULL;
        gc->qtail = NULL;
        worker_unlock(&gc->w);
        if (!it) {
            break;
        }
        while (it) {
            struct as_gc_item *next = it->next;
            as_gc_event(gc, it->type, it->key, it->value, it->len, false);
            free(it->key);
            free(it->value);
            free(it);
            it = next;
            work++;
        }
    }
    const char *key;
    json_t *v;
    void *tmp;
    json_t *keys = json_array();
    json_object_foreach_safe(gc->pending, tmp, key, v)
    {
        json_array_append_new(keys, json_string(key));
    }
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        if (as_pending_step(gc, json_string_value(k))) {
            json_object_del(gc->pending, json_string_value(k));
        }
    }
    json_decref(keys);
    as_gc_expire_events(gc);
    pthread_mutex_unlock(&gc->run_mu);
    return work;
}

static void *
as_gc_main(void *arg)
{
    struct as_gc *gc = arg;
    for (;;) {
        as_gc_pass(gc);
        worker_lock(&gc->w);
        if (!gc->qhead) {
            /* Pending deletions are retried every second; with an Event
             * TTL the thread samples the revision at least that often. */
            int64_t wait =
                json_object_size(gc->pending) || gc->expire_more ? 1000 : 30000;
            if (gc->as->cfg.event_ttl_ms > 0) {
                int64_t until = gc->next_mark_ms - time_mono_ms();
                if (until < wait) {
                    wait = until < 10 ? 10 : until;
                }
            }
            worker_wait(&gc->w, wait);
        }
        bool stop = worker_stopping(&gc->w);
        worker_unlock(&gc->w);
        if (stop) {
            break;
        }
    }
    return NULL;
}

struct as_gc *
as_gc_create(struct apiserver *as, bool thread)
{
    struct as_gc *gc = xcalloc(1, sizeof(*gc));
    gc->as = as;
    gc->dependents = json_object();
    gc->owners_of = json_object();
    gc->pending = json_object();
    worker_init(&gc->w);
    pthread_mutex_init(&gc->run_mu, NULL);
    if (thread) {
        if (worker_start(&gc->w, "gc", as_gc_main, gc) < 0) {
            log_error("cannot start the garbage collector thread", "thread=%s",
                      "gc");
        }
    }
    return gc;
}

void
as_gc_destroy(struct as_gc *gc)
{
    if (!gc) {
        return;
    }
    worker_stop(&gc->w);
    struct as_gc_item *it = gc->qhead;
    while (it) {
        struct as_gc_item *next = it->next;
        free(it->key);
        free(it->value);
        free(it);
        it = next;
    }
    json_decref(gc->dependents);
    json_decref(gc->owners_of);
    json_decref(gc->pending);
    free(gc->marks);
    worker_destroy(&gc->w);
    pthread_mutex_destroy(&gc->run_mu);
    free(gc);
}
