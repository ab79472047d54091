/* apiserver-write: the verbs that write: create (POST), update (PUT on
 * the object, its /status, a namespace's /finalize) and patch (JSON merge,
 * JSON Patch, strategic merge, server-side apply).
 *
 * Create admits the body (apiserver-admit.c) and inserts it; update and
 * patch only say how the new object follows from the current one (the
 * body, or the patch applied to it) and leave the read, the common steps,
 * the compare-and-swap and the retries to the guaranteed update
 * (apiserver-update.c). A patch is applied again to the newer object when
 * it lost a race, unless it names a resourceVersion. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpf-server/apiserver-private.h"
#include "lib/codecs/jsonpatch.h"
#include "lib/codecs/yamljson.h"
#include "lib/net/http-server.h"

/* ------------------------------------------------------------------ */
/* field managers */

void
as_field_manager(struct http_request *req, const char *sub,
                 struct schema_field_manager *fm, char *buf, size_t size,
                 char *tbuf, size_t tsize)
{
    const char *m = http_request_query(req, "fieldManager");
    if (!m || !*m) {
        const char *ua = http_request_header(req, "User-Agent");
        ua = ua ? ua : "";
        snprintf(buf, size, "%.*s", (int) strcspn(ua, "/"), ua);
        m = buf;
    }
    as_now_rfc3339(tbuf, tsize, 0);
    fm->manager = m;
    fm->subresource = sub;
    fm->time = tbuf;
}

/* PatchOptions rules: an apply names its fieldManager; force is for
 * applies only (kube-apiserver's 422 on PatchOptions). */
static int
as_check_patch_options(struct http_request *req, bool apply,
                       struct as_error *ae)
{
    const char *m = http_request_query(req, "fieldManager");
    const char *force = http_request_query(req, "force");
    const char *field = NULL, *what = NULL, *text = NULL;
    if (apply && (!m || !*m)) {
        field = "fieldManager";
        what = DPF_CAUSE_REQUIRED;
        text = "Required value: is required for apply patch";
    } else if (!apply && force) {
        field = "force";
        what = DPF_CAUSE_FORBIDDEN;
        text = "Forbidden: may not be specified for non-apply patch";
    } else {
        return 0;
    }
    as_error_set(ae, 422, "Invalid",
                 "PatchOptions.meta.k8s.io \"\" is invalid: %s: %s", field,
                 text);
    dpf_error_add_cause(&ae->e, what, field, "%s", strchr(text, ':') + 2);
    as_error_details(ae, "", "meta.k8s.io", "PatchOptions");
    return -EINVAL;
}

/* ------------------------------------------------------------------ */
/* create */

int
as_store_create(struct apiserver *as, const struct schema_kind *k, json_t *obj,
                bool dry_run, char **out_text, size_t *out_len,
                struct as_error *ae)
{
    const char *gen = as_md_str(obj, "generateName");
    for (int attempt = 0;; attempt++) {
        const char *name = as_md_str(obj, "name");
        const char *ns = as_md_str(obj, "namespace");
        if (!name || !*name) {
            as_error_set(ae, 422, "Invalid",
                         "%s \"\" is invalid: metadata.name: Required value: "
                         "name or generateName is required",
                         k->kind);
            dpf_error_add_cause(&ae->e, DPF_CAUSE_REQUIRED, "metadata.name",
                                "name or generateName is required");
            as_error_details(ae, "", k->group, k->kind);
            return -EINVAL;
        }
        size_t len;
        char *text = as_dump_store(obj, as->cfg.max_body, &len, ae);
        if (!text) {
            return -E2BIG;
        }
        if (dry_run) {
            *out_text = text;
            *out_len = len;
            return 0;
        }
        char *key = as_key(k, ns, name);
        int64_t rv = 0;
        struct dpf_error e = {0};
        int r = store_create(as->store, key, text, len, &rv, &e);
        free(key);
        if (r == -EEXIST && gen && *gen && attempt < 8) {
            free(text);
            char sfx[8];
            as_random_suffix(sfx, 5);
            json_object_set_new(as_md(obj), "name",
                                json_sprintf("%s%s", gen, sfx));
            continue;
        }
        if (r == -EEXIST) {
            free(text);
            char qr[256];
            as_qualified_resource(k, qr, sizeof(qr));
            as_error_set(ae, 409, "AlreadyExists", "%s \"%s\" already exists",
                         qr, name);
            as_error_details(ae, name, k->group, k->plural);
            return r;
        }
        if (r < 0) {
            free(text);
            as_error_from(ae, &e, 500, "InternalError");
            return r;
        }
        *out_text = as_inject_rv(text, len, rv, out_len);
        free(text);
        return 0;
    }
}

void
as_handle_create(struct apiserver *as, struct http_request *req,
                 const struct schema_kind *k, const char *ns,
                 const struct as_format *fmt)
{
    struct as_error ae = {0};
    size_t blen;
    const char *body = http_request_body(req, &blen);
    bool bad;
    bool dry = as_dry_run(req, &ae, &bad);
    json_t *warnings = NULL;
    json_t *obj = NULL;
    char *text = NULL;
    size_t len;
    if (bad) {
        goto fail;
    }
    if (k->crd_terminating) {
        as_error_set(&ae, 405, "MethodNotAllowed",
                     "create not allowed while custom resource definition "
                     "is terminating");
        goto fail;
    }
    if (as_admit_create(k, ns, body, blen,
                        http_request_header(req, "Content-Type"),
                        http_request_query(req, "fieldValidation"), &obj,
                        &warnings, &ae) < 0) {
        goto fail;
    }
    if (as_check_namespace(as, k, as_md_str(obj, "namespace"),
                           as_md_str(obj, "name"), &ae) < 0) {
        goto fail;
    }
    if (as->cfg.admit_create) {
        struct dpf_error e = {0};
        if (as->cfg.admit_create(as->cfg.admit_create_arg, req, k, obj, &e) <
            0) {
            as_error_from(&ae, &e, 403, "Forbidden");
            goto fail;
        }
    }
    struct schema_field_manager fm;
    char mbuf[160], tbuf[40];
    as_field_manager(req, NULL, &fm, mbuf, sizeof(mbuf), tbuf, sizeof(tbuf));
    schema_fields_update(k, NULL, obj, &fm);
    if (as_store_create(as, k, obj, dry, &text, &len, &ae) < 0) {
        goto fail;
    }
    json_decref(obj);
    as_add_warnings(req, warnings);
    json_decref(warnings);
    as_respond_text(req, 201, fmt, text, len);
    return;
fail:
    json_decref(obj);
    json_decref(warnings);
    as_respond_error(req, &ae);
}

/* ------------------------------------------------------------------ */
/* update */

/* PUT: the body is the new object. */
static int
as_produce_put(void *arg, const json_t *cur, json_t **out, struct as_error *ae)
{
    *out = json_deep_copy(arg);
    return 0;
}

/* PUT namespaces/<name>/finalize: only spec.finalizers changes. */
static int
as_produce_finalize(void *arg, const json_t *cur, json_t **out,
                    struct as_error *ae)
{
    json_t *obj = json_deep_copy(cur);
    json_t *spec = json_object_get(obj, "spec");
    if (!json_is_object(spec)) {
        spec = json_object();
        json_object_set_new(obj, "spec", spec);
    }
    json_t *fin = json_object_get(json_object_get(arg, "spec"), "finalizers");
    if (fin) {
        json_object_set(spec, "finalizers", fin);
    } else {
        json_object_del(spec, "finalizers");
    }
    json_t *rv =
        json_object_get(json_object_get(arg, "metadata"), "resourceVersion");
    json_object_del(json_object_get(obj, "metadata"), "resourceVersion");
    if (rv) {
        json_object_set(json_object_get(obj, "metadata"), "resourceVersion",
                        rv);
    }
    *out = obj;
    return 0;
}

/* ------------------------------------------------------------------ */
/* patch */

enum as_patch_type {
    AS_PATCH_MERGE,
    AS_PATCH_JSON,
    AS_PATCH_STRATEGIC,
    AS_PATCH_APPLY,
};

struct as_patch {
    enum as_patch_type type;
    json_t *patch;
    const struct schema_kind *k;
    const struct schema_field_manager *fm;
    bool force; /* apply: take fields other managers own */
};

static bool
as_patch_sets_rv(const struct as_patch *p)
{
    if (p->type != AS_PATCH_JSON) {
        return json_object_get(json_object_get(p->patch, "metadata"),
                               "resourceVersion") != NULL;
    }
    size_t i;
    json_t *op;
    json_array_foreach(p->patch, i, op)
    {
        const char *path = json_string_value(json_object_get(op, "path"));
        const char *name = json_string_value(json_object_get(op, "op"));
        if (path && name && strcmp(name, "test") != 0 &&
            !strcmp(path, "/metadata/resourceVersion")) {
            return true;
        }
    }
    return false;
}

static int
as_produce_patch(void *arg, const json_t *cur, json_t **out,
                 struct as_error *ae)
{
    struct as_patch *p = arg;
    const struct schema_kind *k = p->k;
    struct dpf_error e = {0};
    if (p->type == AS_PATCH_APPLY) {
        json_t *obj = NULL;
        if (schema_fields_apply(k, cur, p->patch, p->fm, p->force, &obj, &e) <
            0) {
            as_error_from(ae, &e, 409, "Conflict");
            return -ESTALE;
        }
        if (!as_patch_sets_rv(p)) {
            json_object_del(as_md(obj), "resourceVersion");
        } else {
            json_object_set(
                as_md(obj), "resourceVersion",
                json_object_get(as_md(p->patch), "resourceVersion"));
        }
        *out = obj;
        return 0;
    }
    json_t *obj = json_deep_copy(cur);
    int r = 0;
    switch (p->type) {
    case AS_PATCH_JSON:
        r = jsonpatch_apply(obj, p->patch, &e);
        break;
    case AS_PATCH_STRATEGIC:
        r = schema_strategic_merge(k, obj, p->patch, &e);
        break;
    case AS_PATCH_MERGE:
    case AS_PATCH_APPLY:
        r = jsonpatch_merge(obj, p->patch, &e);
        break;
    }
    if (r < 0 && p->type == AS_PATCH_STRATEGIC) {
        /* Malformed directives are 400, the rest 422 (the engine says). */
        json_decref(obj);
        as_error_from(ae, &e, 422, "Invalid");
        return -EINVAL;
    }
    if (r < 0) {
        /* Kubernetes answers a patch that cannot be applied with 422. */
        json_decref(obj);
        as_error_from(ae, &e, 422, "Invalid");
        ae->e.code = 422;
        snprintf(ae->e.reason, sizeof(ae->e.reason), "Invalid");
        return -EINVAL;
    }
    if (!json_is_object(obj)) {
        json_decref(obj);
        as_error_set(ae, 422, "Invalid", "the patch produced a non-object");
        return -EINVAL;
    }
    /* Only a patch that names a resourceVersion makes it a precondition;
     * otherwise a concurrent write means: re-apply to the newer object. */
    if (!as_patch_sets_rv(p) && json_is_object(as_md(obj))) {
        json_object_del(as_md(obj), "resourceVersion");
    }
    *out = obj;
    return 0;
}

/* Answer an update or patch. */
static void
as_respond_update(struct http_request *req, int r, const struct as_format *fmt,
                  struct as_update_result *res, const struct as_error *ae)
{
    if (r < 0) {
        as_respond_error(req, ae);
        return;
    }
    as_add_warnings(req, res->warnings);
    as_respond_text(req, 200, fmt, res->text, res->len);
    res->text = NULL;
    as_update_result_free(res);
}

void
as_handle_update(struct apiserver *as, struct http_request *req,
                 const struct schema_kind *k, const char *ns, const char *name,
                 const char *sub, const struct as_format *fmt)
{
    struct as_error ae = {0};
    size_t blen;
    const char *body = http_request_body(req, &blen);
    const char *fv = http_request_query(req, "fieldValidation");
    bool bad;
    bool dry = as_dry_run(req, &ae, &bad);
    json_t *obj = NULL;
    if (bad || as_check_field_validation(fv, &ae) < 0) {
        as_respond_error(req, &ae);
        return;
    }
    enum schema_unknown_mode mode = as_unknown_mode(fv);
    if (as_decode_body(body, blen, http_request_header(req, "Content-Type"),
                       as->cfg.max_body, mode == SCHEMA_UNKNOWN_STRICT, &obj,
                       &ae) < 0) {
        as_respond_error(req, &ae);
        return;
    }
    bool finalize = sub && !strcmp(sub, "finalize");
    struct schema_field_manager fm;
    char mbuf[160], tbuf[40];
    as_field_manager(req, sub, &fm, mbuf, sizeof(mbuf), tbuf, sizeof(tbuf));
    struct as_update_opts o = {
        .part = sub && !finalize ? AS_PART_STATUS : AS_PART_MAIN,
        .unknown = mode,
        .dry_run = dry,
        .fm = &fm,
    };
    struct as_update_result res;
    int r = as_guaranteed_update(
        as, k, ns, name, &o, finalize ? as_produce_finalize : as_produce_put,
        obj, &res, &ae);
    json_decref(obj);
    as_respond_update(req, r, fmt, &res, &ae);
}

/* Server-side apply of an object that does not exist yet: create it. */
static void
as_apply_create(struct apiserver *as, struct http_request *req,
                const struct schema_kind *k, const char *ns, const char *name,
                const struct as_format *fmt, json_t *patch, bool dry,
                const struct schema_field_manager *fm)
{
    struct as_error ae = {0};
    json_t *warnings = NULL;
    char *text = NULL;
    size_t len;
    const char *fv = http_request_query(req, "fieldValidation");
    json_t *md = as_md(patch);
    if (json_is_object(md)) {
        const char *n = json_string_value(json_object_get(md, "name"));
        if (n && strcmp(n, name) != 0) {
            as_error_set(&ae, 400, "BadRequest",
                         "the name of the object (%s) does not match the "
                         "name on the URL (%s)",
                         n, name);
            goto fail;
        }
        json_object_set_new(md, "name", json_string(name));
    } else {
        json_object_set_new(patch, "metadata",
                            json_pack("{s:s}", "name", name));
    }
    /* The applier owns what it applied (before defaults, as Kubernetes
     * tracks the configuration, not the defaulted object). */
    json_t *mf = NULL;
    json_t *applied = NULL;
    struct dpf_error e = {0};
    if (schema_fields_apply(k, NULL, patch, fm, true, &applied, &e) == 0) {
        mf = json_incref(json_object_get(as_md(applied), "managedFields"));
        json_decref(applied);
    }
    int pr =
        as_prepare_create(k, ns, patch, as_unknown_mode(fv), &warnings, &ae);
    if (pr == 0 && mf) {
        json_object_set(as_md(patch), "managedFields", mf);
    }
    json_decref(mf);
    if (pr < 0 || as_check_namespace(as, k, ns, name, &ae) < 0 ||
        as_store_create(as, k, patch, dry, &text, &len, &ae) < 0) {
        goto fail;
    }
    as_add_warnings(req, warnings);
    json_decref(warnings);
    as_respond_text(req, 201, fmt, text, len);
    return;
fail:
    json_decref(warnings);
    as_respond_error(req, &ae);
}

void
as_handle_patch(struct apiserver *as, struct http_request *req,
                const struct schema_kind *k, const char *ns, const char *name,
                const char *sub, const struct as_format *fmt)
{
    struct as_error ae = {0};
    size_t blen;
    const char *body = http_request_body(req, &blen);
    const char *ct = http_request_header(req, "Content-Type");
    const char *fv = http_request_query(req, "fieldValidation");
    bool bad;
    bool dry = as_dry_run(req, &ae, &bad);
    struct as_patch p = {.k = k};
    struct schema_field_manager fm;
    char mbuf[160], tbuf[40];
    as_field_manager(req, sub, &fm, mbuf, sizeof(mbuf), tbuf, sizeof(tbuf));
    p.fm = &fm;
    const char *force = http_request_query(req, "force");
    p.force = force && !strcmp(force, "true");
    if (bad || as_check_field_validation(fv, &ae) < 0) {
        as_respond_error(req, &ae);
        return;
    }
    enum schema_unknown_mode mode = as_unknown_mode(fv);
    if (!ct) {
        ct = "";
    }
    if (as_media_is(ct, "application/merge-patch+json")) {
        p.type = AS_PATCH_MERGE;
    } else if (as_media_is(ct, "application/json-patch+json")) {
        p.type = AS_PATCH_JSON;
    } else if (as_media_is(ct, "application/strategic-merge-patch+json") &&
               k->builtin) {
        /* Custom resources take no strategic patch (415 below, with the
         * media types they do take), as in Kubernetes. */
        p.type = AS_PATCH_STRATEGIC;
    } else if (as_media_is(ct, "application/apply-patch+yaml")) {
        p.type = AS_PATCH_APPLY;
    } else if (!k->builtin) {
        as_error_set(&ae, 415, "UnsupportedMediaType",
                     "the body of the request was in an unknown format - "
                     "accepted media types include: "
                     "application/json-patch+json, "
                     "application/merge-patch+json, "
                     "application/apply-patch+yaml");
        as_respond_error(req, &ae);
        return;
    } else {
        as_error_set(&ae, 415, "UnsupportedMediaType",
                     "the body of the request was in an unknown format - "
                     "accepted media types include: "
                     "application/json-patch+json, "
                     "application/merge-patch+json, "
                     "application/apply-patch+yaml, "
                     "application/strategic-merge-patch+json");
        as_respond_error(req, &ae);
        return;
    }
    if (as_check_patch_options(req, p.type == AS_PATCH_APPLY, &ae) < 0) {
        as_respond_error(req, &ae);
        return;
    }
    if (blen > as->cfg.max_body) {
        as_error_set(&ae, 413, "RequestEntityTooLarge",
                     "Request entity too large: limit is %zu",
                     as->cfg.max_body);
        as_respond_error(req, &ae);
        return;
    }
    if (p.type == AS_PATCH_APPLY) {
        struct dpf_error e = {0};
        if (yamljson_parse_one(body, blen, &p.patch, &e) < 0) {
            as_error_from(&ae, &e, 400, "BadRequest");
            as_respond_error(req, &ae);
            return;
        }
        if (!json_is_object(p.patch)) {
            json_decref(p.patch);
            as_error_set(&ae, 400, "BadRequest",
                         "the apply configuration must be an object");
            as_respond_error(req, &ae);
            return;
        }
        if (as_check_type(k, p.patch, false, &ae) < 0) {
            json_decref(p.patch);
            as_respond_error(req, &ae);
            return;
        }
        if (json_object_get(as_md(p.patch), "managedFields")) {
            json_decref(p.patch);
            as_error_set(&ae, 400, "BadRequest",
                         "metadata.managedFields must be nil");
            as_respond_error(req, &ae);
            return;
        }
        /* Apply never sets status on the main resource. */
        if (!sub && k->has_status) {
            json_object_del(p.patch, "status");
        }
        char *key = as_key(k, ns, name);
        struct store_kv kv = {0};
        int r = store_get(as->store, key, &kv, NULL);
        free(key);
        if (r == -ENOENT && !sub) {
            as_apply_create(as, req, k, ns, name, fmt, p.patch, dry, &fm);
            json_decref(p.patch);
            return;
        }
        store_kv_free(&kv);
    } else {
        json_error_t jerr;
        p.patch = json_loadb(
            body, blen,
            mode == SCHEMA_UNKNOWN_STRICT ? JSON_REJECT_DUPLICATES : 0, &jerr);
        if (!p.patch) {
            as_error_set(&ae, 400, "BadRequest",
                         "the body of the request could not be decoded as "
                         "JSON: %s",
                         jerr.text);
            as_respond_error(req, &ae);
            return;
        }
        if (p.type == AS_PATCH_JSON ? !json_is_array(p.patch)
                                    : !json_is_object(p.patch)) {
            json_decref(p.patch);
            as_error_set(&ae, 400, "BadRequest",
                         p.type == AS_PATCH_JSON
                             ? "a JSON patch must be an array of operations"
                             : "a merge patch must be a JSON object");
            as_respond_error(req, &ae);
            return;
        }
    }
    struct as_update_opts o = {
        .part = sub ? AS_PART_STATUS : AS_PART_MAIN,
        .unknown = mode,
        .dry_run = dry,
        .fm = &fm,
        .fields_done = p.type == AS_PATCH_APPLY,
    };
    struct as_update_result res;
    int r = as_guaranteed_update(as, k, ns, name, &o, as_produce_patch, &p,
                                 &res, &ae);
    json_decref(p.patch);
    as_respond_update(req, r, fmt, &res, &ae);
}
