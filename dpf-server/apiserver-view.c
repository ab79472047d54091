/* apiserver-view: kinds that are another kind's objects seen through a
 * conversion (schema_kind.stored_as: events.k8s.io/v1 Event, stored as
 * core/v1 Event, as Kubernetes keeps both in one resource). Every verb
 * reads and writes the stored kind's keys and converts at the edges:
 * bodies are admitted (pruned, defaulted, validated) as the view kind,
 * converted with to_stored and written through the stored kind's create
 * or guaranteed update; what is returned is converted back with
 * from_stored. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpf-server/apiserver-private.h"
#include "lib/codecs/jsonpatch.h"
#include "lib/codecs/yamljson.h"
#include "lib/net/http-server.h"

/* The view of stored text (with its resourceVersion injected). */
static json_t *
as_view_of_text(const struct schema_kind *k, const char *text, size_t len,
                int64_t rv)
{
    json_t *stored =
        rv ? as_load_object(text, len, rv) : json_loadb(text, len, 0, NULL);
    if (!stored) {
        return NULL;
    }
    json_t *v = k->from_stored(stored);
    json_decref(stored);
    return v;
}

static void
as_view_respond(struct http_request *req, int code, const struct schema_kind *k,
                const struct as_format *fmt, json_t *obj)
{
    if (obj && fmt->out == AS_OUT_TABLE) {
        json_t *t = json_pack(
            "{s:s,s:s,s:{s:O},s:o,s:[o]}", "kind", "Table", "apiVersion",
            fmt->table_api, "metadata", "resourceVersion",
            json_object_get(as_md(obj), "resourceVersion"), "columnDefinitions",
            as_table_columns(k), "rows",
            as_table_row(k, obj, fmt->include, time_wall_ns()));
        as_respond_json(req, code, fmt, t);
        json_decref(t);
        return;
    }
    as_respond_json(req, code, fmt, obj); /* 500 Status if NULL */
}

static void
as_view_get(struct apiserver *as, struct http_request *req,
            const struct schema_kind *k, const char *ns, const char *name,
            const struct as_format *fmt)
{
    struct as_error ae = {0};
    char *key = as_key(k->stored_as, ns, name);
    struct store_kv kv = {0};
    struct dpf_error e = {0};
    int r = store_get(as->store, key, &kv, &e);
    free(key);
    if (r < 0) {
        as_error_store(&ae, k, name, r, &e);
        as_respond_error(req, &ae);
        return;
    }
    json_t *v = as_view_of_text(k, kv.value, kv.len, kv.rv);
    store_kv_free(&kv);
    as_view_respond(req, 200, k, fmt, v);
    json_decref(v);
}

struct as_view_list {
    const struct schema_kind *k;
    struct as_filter *filter;
    json_t *items;
};

static int
as_view_list_one(void *arg, const struct store_kv *kv)
{
    struct as_view_list *c = arg;
    json_t *v = as_view_of_text(c->k, kv->value, kv->len, kv->rv);
    if (v && as_filter_match(c->filter, kv->key, v)) {
        json_array_append(c->items, v);
    }
    json_decref(v);
    return 0;
}

static void
as_view_list(struct apiserver *as, struct http_request *req,
             const struct schema_kind *k, const char *ns,
             const struct as_format *fmt)
{
    struct as_error ae = {0};
    struct as_filter f;
    if (as_filter_init(&f, k, http_request_query(req, "labelSelector"),
                       http_request_query(req, "fieldSelector"), &ae) < 0) {
        as_respond_error(req, &ae);
        return;
    }
    struct as_view_list c = {k, &f, json_array()};
    char *prefix = as_prefix(k->stored_as, ns);
    int64_t list_rv = 0;
    struct dpf_error e = {0};
    int r = store_list(as->store, prefix, NULL, 0, as_view_list_one, &c,
                       &list_rv, NULL, &e);
    free(prefix);
    as_filter_free(&f);
    if (r < 0) {
        json_decref(c.items);
        as_error_from(&ae, &e, 500, "InternalError");
        as_respond_error(req, &ae);
        return;
    }
    char rv[32];
    snprintf(rv, sizeof(rv), "%lld", (long long) list_rv);
    json_t *doc;
    if (fmt->out == AS_OUT_TABLE) {
        json_t *rows = json_array();
        size_t i;
        json_t *v;
        int64_t now = time_wall_ns();
        json_array_foreach(c.items, i, v)
        {
            json_array_append_new(rows, as_table_row(k, v, fmt->include, now));
        }
        json_decref(c.items);
        doc = json_pack("{s:s,s:s,s:{s:s},s:o,s:o}", "kind", "Table",
                        "apiVersion", fmt->table_api, "metadata",
                        "resourceVersion", rv, "columnDefinitions",
                        as_table_columns(k), "rows", rows);
    } else {
        doc = json_pack("{s:s,s:s,s:{s:s},s:o}", "kind", k->list_kind,
                        "apiVersion", schema_api_version(k), "metadata",
                        "resourceVersion", rv, "items", c.items);
    }
    as_respond_json(req, 200, fmt, doc);
    json_decref(doc);
}

static void
as_view_create(struct apiserver *as, struct http_request *req,
               const struct schema_kind *k, const char *ns,
               const struct as_format *fmt)
{
    struct as_error ae = {0};
    size_t blen;
    const char *body = http_request_body(req, &blen);
    bool bad;
    bool dry = as_dry_run(req, &ae, &bad);
    json_t *warnings = NULL, *obj = NULL, *stored = NULL, *v = NULL;
    char *text = NULL;
    size_t len;
    if (bad ||
        as_admit_create(k, ns, body, blen,
                        http_request_header(req, "Content-Type"),
                        http_request_query(req, "fieldValidation"), &obj,
                        &warnings, &ae) < 0 ||
        as_check_namespace(as, k, as_md_str(obj, "namespace"),
                           as_md_str(obj, "name"), &ae) < 0) {
        goto fail;
    }
    stored = k->to_stored(obj);
    if (as_store_create(as, k->stored_as, stored, dry, &text, &len, &ae) < 0) {
        goto fail;
    }
    v = as_view_of_text(k, text, len, 0);
    free(text);
    as_add_warnings(req, warnings);
    as_view_respond(req, 201, k, fmt, v);
    json_decref(v);
    json_decref(stored);
    json_decref(obj);
    json_decref(warnings);
    return;
fail:
    json_decref(stored);
    json_decref(obj);
    json_decref(warnings);
    as_respond_error(req, &ae);
}

/* A PUT body or a patch, applied to the view of the stored object. */
struct as_view_write {
    const struct schema_kind *k;
    enum schema_unknown_mode mode;
    json_t *body;    /* PUT */
    json_t *patch;   /* PATCH */
    bool json_patch; /* RFC 6902 rather than a merge patch */
    json_t *warnings;
};

static int
as_view_produce(void *arg, const json_t *cur, json_t **out, struct as_error *ae)
{
    struct as_view_write *w = arg;
    json_t *old = w->k->from_stored(cur);
    json_t *v;
    if (w->body) {
        v = json_deep_copy(w->body);
    } else {
        v = json_deep_copy(old);
        struct dpf_error e = {0};
        int r = w->json_patch ? jsonpatch_apply(v, w->patch, &e)
                              : jsonpatch_merge(v, w->patch, &e);
        if (r < 0) {
            json_decref(v);
            json_decref(old);
            as_error_from(ae, &e, 422, "Invalid");
            ae->e.code = 422;
            snprintf(ae->e.reason, sizeof(ae->e.reason), "Invalid");
            return -EINVAL;
        }
        /* Only a patch that names a resourceVersion pins it. */
        json_t *pmd = json_object_get(w->patch, "metadata");
        if (w->json_patch || !json_object_get(pmd, "resourceVersion")) {
            json_object_del(as_md(v), "resourceVersion");
        }
    }
    /* The view's own rules (required fields, enums) on the view; the
     * stored kind's run on the converted object in the common steps. */
    json_t *md = as_md(v);
    if (json_is_object(md)) {
        json_object_set(md, "name", json_object_get(as_md(old), "name"));
        json_object_set(md, "namespace",
                        json_object_get(as_md(old), "namespace"));
    }
    json_decref(w->warnings);
    w->warnings = NULL;
    if (as_check_type(w->k, v, true, ae) < 0 ||
        as_prune(w->k, v, w->mode, &w->warnings, ae) < 0 ||
        as_validate(w->k, v, old, ae) < 0) {
        json_decref(v);
        json_decref(old);
        return -EINVAL;
    }
    json_decref(old);
    json_t *rv = json_object_get(as_md(v), "resourceVersion");
    *out = w->k->to_stored(v);
    if (!rv) {
        json_object_del(as_md(*out), "resourceVersion");
    }
    json_decref(v);
    return 0;
}

static int
as_view_decode_patch(const char *body, size_t blen, const char *ct,
                     struct as_view_write *w, struct as_error *ae)
{
    struct dpf_error e = {0};
    json_error_t je;
    if (as_media_is(ct, "application/apply-patch+yaml")) {
        if (yamljson_parse_one(body, blen, &w->patch, &e) < 0) {
            as_error_from(ae, &e, 400, "BadRequest");
            return -EINVAL;
        }
    } else if (as_media_is(ct, "application/merge-patch+json") ||
               as_media_is(ct, "application/strategic-merge-patch+json") ||
               as_media_is(ct, "application/json-patch+json")) {
        w->json_patch = as_media_is(ct, "application/json-patch+json");
        w->patch = json_loadb(body, blen, JSON_DECODE_ANY, &je);
        if (!w->patch) {
            as_error_set(ae, 400, "BadRequest", "error decoding patch: %s",
                         je.text);
            return -EINVAL;
        }
    } else {
        as_error_set(ae, 415, "UnsupportedMediaType",
                     "the body of the request was in an unknown format - "
                     "accepted media types include: "
                     "application/json-patch+json, "
                     "application/merge-patch+json, "
                     "application/apply-patch+yaml, "
                     "application/strategic-merge-patch+json");
        return -EINVAL;
    }
    if (w->json_patch ? !json_is_array(w->patch) : !json_is_object(w->patch)) {
        as_error_set(ae, 400, "BadRequest", "the patch must be a JSON %s",
                     w->json_patch ? "array" : "object");
        return -EINVAL;
    }
    return 0;
}

static void
as_view_write(struct apiserver *as, struct http_request *req,
              const struct schema_kind *k, const char *ns, const char *name,
              bool put, const struct as_format *fmt)
{
    struct as_error ae = {0};
    size_t blen;
    const char *body = http_request_body(req, &blen);
    const char *ct = http_request_header(req, "Content-Type");
    const char *fv = http_request_query(req, "fieldValidation");
    bool bad;
    bool dry = as_dry_run(req, &ae, &bad);
    struct as_view_write w = {.k = k, .mode = as_unknown_mode(fv)};
    if (bad || as_check_field_validation(fv, &ae) < 0) {
        as_respond_error(req, &ae);
        return;
    }
    int r = put ? as_decode_body(body, blen, ct, as->cfg.max_body,
                                 w.mode == SCHEMA_UNKNOWN_STRICT, &w.body, &ae)
                : as_view_decode_patch(body, blen, ct ? ct : "", &w, &ae);
    if (r < 0) {
        as_respond_error(req, &ae);
        return;
    }
    struct as_update_opts o = {
        .part = AS_PART_MAIN,
        .unknown = SCHEMA_UNKNOWN_PRUNE,
        .dry_run = dry,
    };
    struct as_update_result res;
    r = as_guaranteed_update(as, k->stored_as, ns, name, &o, as_view_produce,
                             &w, &res, &ae);
    json_decref(w.body);
    json_decref(w.patch);
    if (r < 0) {
        json_decref(w.warnings);
        if (r == -ENOENT) {
            as_error_not_found(&ae, k, name);
        }
        as_respond_error(req, &ae);
        return;
    }
    as_add_warnings(req, w.warnings);
    json_decref(w.warnings);
    json_t *v = as_view_of_text(k, res.text, res.len, 0);
    as_update_result_free(&res);
    as_view_respond(req, 200, k, fmt, v);
    json_decref(v);
}

static void
as_view_delete(struct apiserver *as, struct http_request *req,
               const struct schema_kind *k, const char *ns, const char *name,
               const struct as_format *fmt)
{
    struct as_error ae = {0};
    bool bad;
    struct as_delete_opts o = {.grace_seconds = -1};
    o.dry_run = as_dry_run(req, &ae, &bad);
    json_t *out = NULL;
    if (bad ||
        as_delete_object(as, k->stored_as, ns, name, &o, &out, &ae) < 0) {
        if (!bad && ae.e.code == 404) {
            as_error_not_found(&ae, k, name);
        }
        as_respond_error(req, &ae);
        return;
    }
    json_t *v = out ? k->from_stored(out) : NULL;
    json_decref(out);
    as_view_respond(req, 200, k, fmt, v);
    json_decref(v);
}

void
as_handle_view(struct apiserver *as, struct http_request *req,
               const struct schema_kind *k, const char *ns, const char *name,
               const char *method, const struct as_format *fmt)
{
    bool get = !strcmp(method, "GET");
    if (get && as_query_bool(req, "watch")) {
        struct as_error ae = {0};
        as_error_set(&ae, 405, "MethodNotAllowed",
                     "watch of %s.%s is not served yet: watch the %s of "
                     "%s instead",
                     k->plural, k->group, k->stored_as->plural,
                     schema_api_version(k->stored_as));
        as_respond_error(req, &ae);
    } else if (!name && get) {
        as_view_list(as, req, k, ns, fmt);
    } else if (!name && !strcmp(method, "POST")) {
        as_view_create(as, req, k, ns, fmt);
    } else if (name && get) {
        as_view_get(as, req, k, ns, name, fmt);
    } else if (name && !strcmp(method, "PUT")) {
        as_view_write(as, req, k, ns, name, true, fmt);
    } else if (name && !strcmp(method, "PATCH")) {
        as_view_write(as, req, k, ns, name, false, fmt);
    } else if (name && !strcmp(method, "DELETE")) {
        as_view_delete(as, req, k, ns, name, fmt);
    } else {
        struct as_error ae = {0};
        as_error_set(&ae, 405, "MethodNotAllowed",
                     "the server does not allow this method on the "
                     "requested resource");
        as_respond_error(req, &ae);
    }
}
