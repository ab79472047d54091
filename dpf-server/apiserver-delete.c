/* apiserver-delete: delete and deletecollection.
 *
 * Kubernetes' deletion lifecycle: an object with finalizers, deleted with
 * propagationPolicy Foreground or Orphan (which add the foregroundDeletion
 * or orphan finalizer), a pod bound to a node (graceful deletion) or a
 * namespace is only marked: deletionTimestamp, deletionGracePeriodSeconds,
 * generation + 1 (a namespace also gets phase Terminating). Whoever owns
 * a finalizer removes it with an update, and the update that removes the
 * last one also removes the object (apiserver-update.c); the garbage
 * collector (apiserver-gc.c) does that work for the Kubernetes
 * finalizers and for expired grace periods. Everything else is removed
 * at once. Both go through the guaranteed update, which checks the
 * DeleteOptions preconditions (uid, resourceVersion) on every attempt. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpf-server/apiserver-private.h"
#include "lib/codecs/yamljson.h"
#include "lib/net/http-server.h"

/* ------------------------------------------------------------------ */
/* the verdict */

static bool
as_is_pod(const struct schema_kind *k)
{
    return !k->group[0] && !strcmp(k->plural, "pods");
}

static void
as_add_finalizer(json_t *obj, const char *f)
{
    json_t *md = as_md(obj);
    json_t *fin = json_object_get(md, "finalizers");
    if (!json_is_array(fin)) {
        fin = json_array();
        json_object_set_new(md, "finalizers", fin);
    }
    if (!as_str_in_array(fin, f)) {
        json_array_append_new(fin, json_string(f));
    }
}

/* 403 unless the object may be deleted: the kind's delete hook in the
 * schema (objects still in use, the namespaces that must always exist). */
static int
as_delete_allowed(struct apiserver *as, const struct schema_kind *k,
                  const char *name, const json_t *cur, struct as_error *ae)
{
    struct schema_reader reader;
    struct dpf_error e = {0};
    as_reader_init(as, &reader);
    if (schema_validate_delete(k, cur, &reader, &e) < 0) {
        as_error_from(ae, &e, 403, "Forbidden");
        as_error_details(ae, name, k->group, k->plural);
        return -EPERM;
    }
    return 0;
}

/* Grace period of a pod's deletion: > 0 for a pod bound to a node and not
 * finished (from the request, else spec.terminationGracePeriodSeconds,
 * else 30 s), 0 for a deletion at once. */
static int64_t
as_pod_grace(const struct schema_kind *k, const struct as_delete_opts *o,
             const json_t *cur)
{
    if (!as_is_pod(k) || o->grace_seconds == 0) {
        return 0;
    }
    json_t *spec = json_object_get(cur, "spec");
    const char *node = json_string_value(json_object_get(spec, "nodeName"));
    const char *phase = json_string_value(
        json_object_get(json_object_get(cur, "status"), "phase"));
    if (!node || !*node ||
        (phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed")))) {
        return 0;
    }
    int64_t grace = o->grace_seconds > 0 ? o->grace_seconds : 30;
    json_t *tg = json_object_get(spec, "terminationGracePeriodSeconds");
    if (o->grace_seconds < 0 && json_is_integer(tg)) {
        grace = json_integer_value(tg);
    }
    return grace > 0 ? grace : 0;
}

int
as_delete_decide(struct apiserver *as, const struct schema_kind *k,
                 const struct as_delete_opts *o, const json_t *cur,
                 json_t **out, struct as_error *ae)
{
    const char *name = as_md_str(cur, "name");
    if (as_md_str(cur, "deletionTimestamp")) {
        /* Already being deleted: a forced pod deletion finishes it;
         * otherwise the object is reported as it is. */
        bool force = as_is_pod(k) && o->grace_seconds == 0 &&
                     as_finalizer_count(cur) == 0;
        return force ? AS_REMOVE : AS_UNCHANGED;
    }
    if (as_delete_allowed(as, k, name ? name : "", cur, ae) < 0) {
        return -EPERM;
    }
    const char *add = NULL;
    if (o->propagation && !strcmp(o->propagation, "Foreground")) {
        add = "foregroundDeletion";
    } else if (o->propagation && !strcmp(o->propagation, "Orphan")) {
        add = "orphan";
    }
    int64_t grace = as_pod_grace(k, o, cur);
    bool ns_kind = as_is_namespace_kind(k);
    if (!as_finalizer_count(cur) && !add && !grace && !ns_kind) {
        return AS_REMOVE;
    }
    /* Mark for deletion; finalizers (or the GC) finish. */
    json_t *obj = json_deep_copy(cur);
    json_t *md = as_md(obj);
    char ts[40];
    as_now_rfc3339(ts, sizeof(ts), grace);
    json_object_set_new(md, "deletionTimestamp", json_string(ts));
    json_object_set_new(md, "deletionGracePeriodSeconds", json_integer(grace));
    if (add) {
        as_add_finalizer(obj, add);
    }
    if (ns_kind) {
        json_t *st = json_object_get(obj, "status");
        if (!json_is_object(st)) {
            st = json_object();
            json_object_set_new(obj, "status", st);
        }
        json_object_set_new(st, "phase", json_string("Terminating"));
    }
    /* The delete path never pins the object's resourceVersion: its
     * preconditions are the DeleteOptions'. */
    json_object_del(md, "resourceVersion");
    *out = obj;
    return AS_MARK;
}

struct as_delete_ctx {
    struct apiserver *as;
    const struct schema_kind *k;
    const struct as_delete_opts *o;
};

static int
as_delete_mutate(void *arg, const json_t *cur, json_t **out,
                 struct as_error *ae)
{
    struct as_delete_ctx *c = arg;
    return as_delete_decide(c->as, c->k, c->o, cur, out, ae);
}

int
as_delete_object(struct apiserver *as, const struct schema_kind *k,
                 const char *ns, const char *name,
                 const struct as_delete_opts *opts, json_t **out,
                 struct as_error *ae)
{
    struct as_delete_ctx c = {as, k, opts};
    struct as_update_opts uo = {
        .part = AS_PART_ALL,
        .dry_run = opts->dry_run,
        .uid = opts->uid,
        .rv = opts->rv,
    };
    struct as_update_result res;
    if (out) {
        *out = NULL;
    }
    int r = as_guaranteed_update(as, k, ns, name, &uo, as_delete_mutate, &c,
                                 &res, ae);
    if (r < 0) {
        return r;
    }
    if (out) {
        *out = json_loadb(res.text, res.len, 0, NULL);
    }
    as_update_result_free(&res);
    return 0;
}

/* ------------------------------------------------------------------ */
/* the verbs */

/* DeleteOptions from the body (JSON) and the query. */
static int
as_delete_options(struct http_request *req, json_t **body_out,
                  struct as_delete_opts *o, struct as_error *ae)
{
    size_t blen;
    const char *body = http_request_body(req, &blen);
    json_t *b = NULL;
    memset(o, 0, sizeof(*o));
    o->grace_seconds = -1;
    *body_out = NULL;
    if (blen) {
        json_error_t jerr;
        const char *ct = http_request_header(req, "Content-Type");
        if (ct && as_media_yaml(ct)) {
            struct dpf_error e = {0};
            if (yamljson_parse_one(body, blen, &b, &e) < 0) {
                as_error_from(ae, &e, 400, "BadRequest");
                return -EINVAL;
            }
        } else {
            b = json_loadb(body, blen, 0, &jerr);
            if (!b) {
                as_error_set(ae, 400, "BadRequest",
                             "the DeleteOptions body could not be decoded: "
                             "%s",
                             jerr.text);
                return -EINVAL;
            }
        }
        if (!json_is_object(b)) {
            json_decref(b);
            as_error_set(ae, 400, "BadRequest",
                         "DeleteOptions must be a JSON object");
            return -EINVAL;
        }
        *body_out = b;
        o->propagation =
            json_string_value(json_object_get(b, "propagationPolicy"));
        json_t *g = json_object_get(b, "gracePeriodSeconds");
        if (json_is_integer(g)) {
            o->grace_seconds = json_integer_value(g);
        }
        json_t *pre = json_object_get(b, "preconditions");
        o->uid = json_string_value(json_object_get(pre, "uid"));
        o->rv = json_string_value(json_object_get(pre, "resourceVersion"));
        json_t *orph = json_object_get(b, "orphanDependents");
        if (!o->propagation && json_is_boolean(orph)) {
            o->propagation = json_is_true(orph) ? "Orphan" : "Background";
        }
        json_t *dr = json_object_get(b, "dryRun");
        if (json_array_size(dr)) {
            o->dry_run = true;
        }
    }
    const char *q = http_request_query(req, "propagationPolicy");
    if (q && *q) {
        o->propagation = q;
    }
    q = http_request_query(req, "gracePeriodSeconds");
    if (q && *q) {
        o->grace_seconds = strtoll(q, NULL, 10);
    }
    q = http_request_query(req, "orphanDependents");
    if (q && *q && !o->propagation) {
        o->propagation = !strcmp(q, "true") ? "Orphan" : "Background";
    }
    bool bad;
    if (as_dry_run(req, ae, &bad)) {
        o->dry_run = true;
    }
    if (bad) {
        return -EINVAL;
    }
    if (o->propagation && strcmp(o->propagation, "Background") != 0 &&
        strcmp(o->propagation, "Foreground") != 0 &&
        strcmp(o->propagation, "Orphan") != 0) {
        as_error_set(ae, 422, "Invalid",
                     "DeleteOptions.meta.k8s.io \"\" is invalid: "
                     "propagationPolicy: Unsupported value: \"%s\": "
                     "supported values: \"Foreground\", \"Background\", "
                     "\"Orphan\"",
                     o->propagation);
        dpf_error_add_cause(&ae->e, DPF_CAUSE_NOT_SUPPORTED,
                            "propagationPolicy", "Unsupported value: \"%s\"",
                            o->propagation);
        return -EINVAL;
    }
    return 0;
}

void
as_handle_delete(struct apiserver *as, struct http_request *req,
                 const struct schema_kind *k, const char *ns, const char *name,
                 const struct as_format *fmt)
{
    struct as_error ae = {0};
    struct as_delete_opts o;
    json_t *body = NULL, *out = NULL;
    if (as_delete_options(req, &body, &o, &ae) < 0 ||
        as_delete_object(as, k, ns, name, &o, &out, &ae) < 0) {
        json_decref(body);
        as_respond_error(req, &ae);
        return;
    }
    json_decref(body);
    as_respond_json(req, 200, fmt, out);
    json_decref(out);
}

struct as_collect_ctx {
    struct as_filter *filter;
    json_t *names; /* array of [ns, name] */
};

static int
as_collect_each(void *arg, const struct store_kv *kv)
{
    struct as_collect_ctx *c = arg;
    json_t *obj = as_load_object(kv->value, kv->len, kv->rv);
    if (!obj) {
        return 0;
    }
    if (as_filter_match(c->filter, kv->key, obj)) {
        const char *ns = as_md_str(obj, "namespace");
        json_array_append_new(
            c->names, json_pack("[s,s]", ns ? ns : "", as_md_str(obj, "name")));
    }
    json_decref(obj);
    return 0;
}

void
as_handle_deletecollection(struct apiserver *as, struct http_request *req,
                           const struct schema_kind *k, const char *ns,
                           const struct as_format *fmt)
{
    struct as_error ae = {0};
    struct as_delete_opts o;
    struct as_filter filter;
    json_t *body = NULL;
    if (as_delete_options(req, &body, &o, &ae) < 0) {
        as_respond_error(req, &ae);
        return;
    }
    if (as_filter_init(&filter, k, http_request_query(req, "labelSelector"),
                       http_request_query(req, "fieldSelector"), &ae) < 0) {
        json_decref(body);
        as_respond_error(req, &ae);
        return;
    }
    struct as_collect_ctx c = {&filter, json_array()};
    char *prefix = as_prefix(k, ns);
    int64_t list_rv = 0;
    store_list(as->store, prefix, NULL, 0, as_collect_each, &c, &list_rv, NULL,
               NULL);
    free(prefix);
    json_t *items = json_array();
    size_t i;
    json_t *pair;
    json_array_foreach(c.names, i, pair)
    {
        struct as_error e2 = {0};
        json_t *out = NULL;
        const char *ins = json_string_value(json_array_get(pair, 0));
        if (as_delete_object(as, k, *ins ? ins : NULL,
                             json_string_value(json_array_get(pair, 1)), &o,
                             &out, &e2) == 0 &&
            out) {
            json_array_append_new(items, out);
        } else {
            json_decref(out);
        }
    }
    json_t *list =
        json_pack("{s:s,s:s,s:{},s:o}", "kind", k->list_kind, "apiVersion",
                  schema_api_version(k), "metadata", "items", items);
    as_respond_json(req, 200, fmt, list);
    json_decref(list);
    json_decref(c.names);
    json_decref(body);
    as_filter_free(&filter);
}
