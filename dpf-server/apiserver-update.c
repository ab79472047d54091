/* apiserver-update: the guaranteed update, the one read-modify-write
 * path of the API server (the contract is in apiserver-private.h).
 *
 * Why a compare-and-swap loop and not a lock: the new object is computed
 * (patches applied, schema pruned, defaulted and validated, owners looked
 * up by the garbage collector) outside the store's write lock, so
 * writers to other objects never wait for it; the store only compares
 * the revision read with the current one when it commits
 * (store_update(), store_delete() with expected_rv). Every lost race
 * means another write of the object committed, so the retries always
 * make progress as a whole. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpf-server/apiserver-private.h"
#include "lib/base/log.h"

LOG_MODULE(apiserver);

/* ------------------------------------------------------------------ */
/* the store side */

struct as_cas {
    int64_t expect_rv;
    const char *val;
    size_t len;
};

static int
as_cas_mutate(void *arg, const char *old, size_t old_len, int64_t old_rv,
              char **out, size_t *out_len)
{
    struct as_cas *c = arg;
    if (old_rv != c->expect_rv) {
        return -ESTALE;
    }
    *out = xstrndup(c->val, c->len);
    *out_len = c->len;
    return 0;
}

/* Store text as the new value of key if it still has revision rv. */
static int
as_store_cas(struct apiserver *as, const char *key, int64_t rv,
             const char *text, size_t len, int64_t *new_rv, struct dpf_error *e)
{
    struct as_cas c = {rv, text, len};
    return store_update(as->store, key, as_cas_mutate, &c, new_rv, e);
}

/* An object being deleted whose last finalizer is gone and whose grace
 * period is over. */
static bool
as_deletion_complete(const json_t *obj)
{
    json_t *md = json_object_get(obj, "metadata");
    if (!json_object_get(md, "deletionTimestamp")) {
        return false;
    }
    if (json_array_size(json_object_get(md, "finalizers")) ||
        json_array_size(
            json_object_get(json_object_get(obj, "spec"), "finalizers"))) {
        return false;
    }
    json_int_t grace =
        json_integer_value(json_object_get(md, "deletionGracePeriodSeconds"));
    return grace <= 0;
}

/* Remove an object whose deletion is complete, right after the write that
 * completed it (revision rv). A writer that got in between has run this
 * same step after its own write, so a lost race is left alone. */
static void
as_finish_deletion(struct apiserver *as, const char *key, int64_t rv)
{
    int64_t drv;
    int r = store_delete(as->store, key, rv, &drv, NULL);
    if (r < 0 && r != -ENOENT && r != -ESTALE) {
        log_warn_rl("finishing deletion failed", "key=%s err=%d", key, r);
    }
}

/* ------------------------------------------------------------------ */
/* the common steps of an update */

/* Everything but metadata and status, for the generation rule. */
static bool
as_content_equal(const json_t *a, const json_t *b)
{
    const char *key;
    json_t *v;
    json_object_foreach((json_t *) a, key, v)
    {
        if (!strcmp(key, "metadata") || !strcmp(key, "status")) {
            continue;
        }
        if (!json_equal(v, json_object_get(b, key))) {
            return false;
        }
    }
    json_object_foreach((json_t *) b, key, v)
    {
        if (!strcmp(key, "metadata") || !strcmp(key, "status")) {
            continue;
        }
        if (!json_object_get(a, key)) {
            return false;
        }
    }
    return true;
}

/* The common steps of a write: turn newobj, the mutated object, into the
 * object to store, given old (as stored, with its resourceVersion):
 * apiVersion/kind, name, namespace and uid must match (400, 409); the
 * part of the object the write may change; server-owned metadata from
 * old (with mark, the deletion fields come from newobj); no new finalizer
 * on an object being deleted (422); prune, default and validate with old
 * for immutability (not with mark); generation + 1 when anything but
 * metadata and status changed or deletion starts. */
static int as_prepare_update_steps(const struct schema_kind *k,
                                   const json_t *old, json_t *newobj,
                                   enum as_part part, bool mark,
                                   enum schema_unknown_mode mode,
                                   json_t **warnings, struct as_error *ae);

/* [{}]: the client asks to clear managedFields (any other non-empty
 * list replaces them, as in Kubernetes). */
static bool
as_fields_reset(const json_t *mf)
{
    return json_array_size(mf) == 1 && json_is_object(json_array_get(mf, 0)) &&
           !json_object_size(json_array_get(mf, 0));
}

static int
as_prepare_update(const struct schema_kind *k, const json_t *old,
                  json_t *newobj, const struct as_update_opts *o, bool mark,
                  json_t **warnings, struct as_error *ae)
{
    enum as_part part = o->part;
    enum schema_unknown_mode mode = o->unknown;
    if (as_check_type(k, newobj, true, ae) < 0) {
        return -EINVAL;
    }
    json_t *md = as_md(newobj);
    if (!md) {
        md = json_object();
        json_object_set_new(newobj, "metadata", md);
    }
    json_t *req_mf = json_incref(json_object_get(md, "managedFields"));
    int r =
        as_prepare_update_steps(k, old, newobj, part, mark, mode, warnings, ae);
    if (r == 0) {
        md = as_md(newobj);
        json_object_del(md, "managedFields");
        if (!mark && o->fm && o->fields_done) {
            if (req_mf) {
                json_object_set(md, "managedFields", req_mf);
            }
        } else if (!mark && o->fm && !as_fields_reset(req_mf)) {
            /* A write may overwrite managedFields (kubectl migrating its
             * managers does); absent or empty, the stored ones count. */
            const json_t *old_mf = json_object_get(as_md(old), "managedFields");
            json_t *base = NULL;
            if (json_array_size(req_mf) && part != AS_PART_STATUS &&
                !json_equal(req_mf, (json_t *) old_mf)) {
                base = json_deep_copy(old);
                json_object_set(as_md(base), "managedFields", req_mf);
            }
            schema_fields_update(k, base ? base : old, newobj, o->fm);
            json_decref(base);
        } else if ((mark || !o->fm) &&
                   json_object_get(as_md(old), "managedFields")) {
            json_object_set(md, "managedFields",
                            json_object_get(as_md(old), "managedFields"));
        }
    }
    json_decref(req_mf);
    return r;
}

/* The steps of as_prepare_update before field ownership. */
static int
as_prepare_update_steps(const struct schema_kind *k, const json_t *old,
                        json_t *newobj, enum as_part part, bool mark,
                        enum schema_unknown_mode mode, json_t **warnings,
                        struct as_error *ae)
{
    json_t *md_old = json_object_get(old, "metadata");
    const char *name = as_md_str(old, "name");
    json_t *md = as_md(newobj);
    const char *nname = json_string_value(json_object_get(md, "name"));
    if (nname && *nname && strcmp(nname, name) != 0) {
        as_error_set(ae, 400, "BadRequest",
                     "the name of the object (%s) does not match the name on "
                     "the URL (%s)",
                     nname, name);
        return -EINVAL;
    }
    const char *nns = json_string_value(json_object_get(md, "namespace"));
    const char *ons = as_md_str(old, "namespace");
    if (k->namespaced && nns && *nns && ons && strcmp(nns, ons) != 0) {
        as_error_set(ae, 400, "BadRequest",
                     "the namespace of the provided object does not match "
                     "the namespace sent on the request");
        return -EINVAL;
    }
    const char *nuid = json_string_value(json_object_get(md, "uid"));
    const char *ouid = as_md_str(old, "uid");
    if (nuid && *nuid && ouid && strcmp(nuid, ouid) != 0) {
        as_error_precondition(ae, k, name, "UID", nuid, ouid);
        return -ESTALE;
    }
    if (part == AS_PART_STATUS) {
        /* Only status changes: start from old, take the new status. */
        json_t *st = json_object_get(newobj, "status");
        json_t *copy = json_deep_copy(old);
        if (st) {
            json_object_set(copy, "status", st);
        } else {
            json_object_del(copy, "status");
        }
        json_object_clear(newobj);
        json_object_update(newobj, copy);
        json_decref(copy);
        md = as_md(newobj);
    } else if (part == AS_PART_MAIN && k->has_status) {
        json_t *st = json_object_get(old, "status");
        if (st) {
            json_object_set(newobj, "status", st);
        } else {
            json_object_del(newobj, "status");
        }
    }
    /* Server-owned metadata comes from the stored object; only the delete
     * path (mark) sets the deletion fields. */
    json_object_set_new(md, "name", json_string(name));
    if (k->namespaced && ons) {
        json_object_set_new(md, "namespace", json_string(ons));
    } else {
        json_object_del(md, "namespace");
    }
    static const char *const keep[] = {
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    };
    for (size_t i = 0; i < ARRAY_SIZE(keep) - (mark ? 2 : 0); i++) {
        json_t *v = json_object_get(md_old, keep[i]);
        if (v) {
            json_object_set(md, keep[i], v);
        } else {
            json_object_del(md, keep[i]);
        }
    }
    json_object_del(md, "managedFields");
    json_object_del(md, "selfLink");
    json_object_del(md, "resourceVersion");
    if (json_object_get(md_old, "deletionTimestamp")) {
        json_t *of = json_object_get(md_old, "finalizers");
        json_t *nf = json_object_get(md, "finalizers");
        size_t i;
        json_t *f;
        json_array_foreach(nf, i, f)
        {
            const char *s = json_string_value(f);
            if (s && !as_str_in_array(of, s)) {
                as_error_set(ae, 422, "Invalid",
                             "%s \"%s\" is invalid: metadata.finalizers: "
                             "Forbidden: no new finalizers can be added if "
                             "the object is being deleted, found new "
                             "finalizers [\"%s\"]",
                             k->kind, name, s);
                dpf_error_add_cause(&ae->e, DPF_CAUSE_FORBIDDEN,
                                    "metadata.finalizers",
                                    "no new finalizers can be added if the "
                                    "object is being deleted");
                as_error_details(ae, name, k->group, k->kind);
                return -EINVAL;
            }
        }
    }
    /* The old object as stored, for immutability rules. */
    json_t *old_plain = json_deep_copy(old);
    json_object_del(json_object_get(old_plain, "metadata"), "resourceVersion");
    int r = 0;
    if (!mark) {
        r = as_prune(k, newobj, mode, warnings, ae);
        if (r == 0) {
            schema_default(k, newobj);
            r = as_validate(k, newobj, old_plain, ae);
        }
    }
    bool starts_deletion = !json_object_get(md_old, "deletionTimestamp") &&
                           json_object_get(md, "deletionTimestamp");
    if (r == 0 && (starts_deletion || !as_content_equal(newobj, old_plain))) {
        json_int_t g =
            json_integer_value(json_object_get(md_old, "generation"));
        json_object_set_new(md, "generation", json_integer(g + 1));
    }
    json_decref(old_plain);
    return r;
}

/* ------------------------------------------------------------------ */
/* one attempt */

/* The caller's preconditions (DeleteOptions) against the current object:
 * 409 naming both values. */
static int
as_check_preconditions(const struct schema_kind *k, const char *name,
                       const struct as_update_opts *o, const json_t *cur,
                       struct as_error *ae)
{
    const char *want[] = {o->uid, o->rv};
    const char *field[] = {"uid", "resourceVersion"};
    const char *what[] = {"UID", "ResourceVersion"};
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        const char *have = as_md_str(cur, field[i]);
        if (want[i] && *want[i] && have && strcmp(want[i], have) != 0) {
            as_error_precondition(ae, k, name, what[i], want[i], have);
            return -ESTALE;
        }
    }
    return 0;
}

/* What one attempt works on. */
struct as_attempt {
    struct apiserver *as;
    const struct schema_kind *k;
    const char *name;
    const char *key;
    const struct as_update_opts *o;
    struct store_kv kv; /* the object as read */
    json_t *cur;        /* the same, parsed, with resourceVersion */
};

/* AS_REMOVE: delete the revision read. */
static int
as_attempt_remove(struct as_attempt *t, struct as_update_result *res,
                  struct as_error *ae)
{
    if (!t->o->dry_run) {
        struct dpf_error e = {0};
        int64_t drv;
        int r = store_delete(t->as->store, t->key, t->kv.rv, &drv, &e);
        if (r == -ESTALE) {
            return -EAGAIN;
        }
        if (r < 0) {
            as_error_store(ae, t->k, t->name, r, &e);
            return r;
        }
    }
    res->text = as_inject_rv(t->kv.value, t->kv.len, t->kv.rv, &res->len);
    return 0;
}

/* AS_WRITE, AS_MARK: the common steps, then compare-and-swap. Consumes
 * newobj. */
static int
as_attempt_write(struct as_attempt *t, json_t *newobj, bool mark,
                 struct as_update_result *res, struct as_error *ae)
{
    const struct as_update_opts *o = t->o;
    const char *nrv = as_md_str(newobj, "resourceVersion");
    bool pinned = nrv && *nrv;
    if (pinned && strcmp(nrv, as_md_str(t->cur, "resourceVersion")) != 0) {
        json_decref(newobj);
        as_error_stale(ae, t->k, t->name);
        return -ESTALE;
    }
    json_decref(res->warnings);
    res->warnings = NULL;
    int r =
        as_prepare_update(t->k, t->cur, newobj, o, mark, &res->warnings, ae);
    if (r < 0) {
        json_decref(newobj);
        return r;
    }
    json_object_del(as_md(t->cur), "resourceVersion");
    if (json_equal(newobj, t->cur)) {
        /* Nothing changed: no write, the resourceVersion stays. */
        json_decref(newobj);
        res->text = as_inject_rv(t->kv.value, t->kv.len, t->kv.rv, &res->len);
        return 0;
    }
    size_t len;
    char *text = as_dump_store(newobj, t->as->cfg.max_body, &len, ae);
    bool finish = !mark && as_deletion_complete(newobj);
    json_decref(newobj);
    if (!text) {
        return -E2BIG;
    }
    if (o->dry_run) {
        res->text = as_inject_rv(text, len, t->kv.rv, &res->len);
        free(text);
        return 0;
    }
    struct dpf_error e = {0};
    int64_t new_rv = 0;
    r = as_store_cas(t->as, t->key, t->kv.rv, text, len, &new_rv, &e);
    if (r == -ESTALE) {
        free(text);
        if (pinned) {
            as_error_stale(ae, t->k, t->name);
            return -ESTALE;
        }
        return -EAGAIN;
    }
    if (r < 0) {
        free(text);
        as_error_store(ae, t->k, t->name, r, &e);
        return r;
    }
    res->text = as_inject_rv(text, len, new_rv, &res->len);
    free(text);
    if (finish) {
        as_finish_deletion(t->as, t->key, new_rv);
    }
    return 0;
}

/* 0 done, -EAGAIN lost a race (try again), other: error with ae. */
static int
as_attempt_run(struct as_attempt *t, as_mutate_fn fn, void *arg,
               struct as_update_result *res, struct as_error *ae)
{
    struct dpf_error e = {0};
    int r = as_get_current(t->as, t->key, &t->kv, &e);
    if (r < 0) {
        as_error_store(ae, t->k, t->name, r, &e);
        return r;
    }
    t->cur = as_load_object(t->kv.value, t->kv.len, t->kv.rv);
    if (!t->cur) {
        as_error_set(ae, 500, "InternalError", "stored object %s is corrupt",
                     t->key);
        return -EIO;
    }
    r = as_check_preconditions(t->k, t->name, t->o, t->cur, ae);
    if (r < 0) {
        return r;
    }
    json_t *newobj = NULL;
    r = fn(arg, t->cur, &newobj, ae);
    if (r < 0) {
        json_decref(newobj);
        return r;
    }
    res->verdict = (enum as_verdict) r;
    switch (r) {
    case AS_WRITE:
    case AS_MARK:
        if (!newobj) {
            as_error_set(ae, 500, "InternalError",
                         "update of %s produced no object", t->key);
            return -EIO;
        }
        return as_attempt_write(t, newobj, r == AS_MARK, res, ae);
    case AS_REMOVE:
        json_decref(newobj);
        return as_attempt_remove(t, res, ae);
    default:
        json_decref(newobj);
        res->verdict = AS_UNCHANGED;
        res->text = as_inject_rv(t->kv.value, t->kv.len, t->kv.rv, &res->len);
        return 0;
    }
}

/* ------------------------------------------------------------------ */
/* the loop */

int
as_guaranteed_update(struct apiserver *as, const struct schema_kind *k,
                     const char *ns, const char *name,
                     const struct as_update_opts *opts, as_mutate_fn fn,
                     void *arg, struct as_update_result *res,
                     struct as_error *ae)
{
    memset(res, 0, sizeof(*res));
    char *key = as_key(k, ns, name);
    int r = -EAGAIN;
    for (int attempt = 0; attempt < AS_UPDATE_ATTEMPTS && r == -EAGAIN;
         attempt++) {
        struct as_attempt t = {as, k, name, key, opts, {0}, NULL};
        r = as_attempt_run(&t, fn, arg, res, ae);
        json_decref(t.cur);
        store_kv_free(&t.kv);
    }
    if (r == -EAGAIN) {
        as_error_stale(ae, k, name);
        r = -ESTALE;
    }
    if (r < 0) {
        as_update_result_free(res);
    }
    free(key);
    return r;
}

void
as_update_result_free(struct as_update_result *res)
{
    free(res->text);
    json_decref(res->warnings);
    memset(res, 0, sizeof(*res));
}
