/* apiserver-scale: the scale subresource (autoscaling/v1 Scale) of the
 * kinds that declare one (schema_kind.scale: Deployments, ReplicaSets,
 * StatefulSets). GET builds the Scale from the stored object; PUT and
 * PATCH change only the replica count, through the guaranteed update, so
 * a scale races other writers exactly as any update does. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpf-server/apiserver-private.h"
#include "lib/codecs/jsonpatch.h"
#include "lib/codecs/yamljson.h"
#include "lib/net/http-server.h"

/* The value at a dotted path ("spec.replicas"), or NULL. */
static json_t *
as_scale_get(const json_t *obj, const char *dotted)
{
    char buf[256];
    if (!dotted ||
        snprintf(buf, sizeof(buf), "%s", dotted) >= (int) sizeof(buf)) {
        return NULL;
    }
    json_t *cur = (json_t *) obj;
    char *save = NULL;
    for (char *t = strtok_r(buf, ".", &save); t && cur;
         t = strtok_r(NULL, ".", &save)) {
        cur = json_object_get(cur, t);
    }
    return cur;
}

/* Set the integer at a dotted path, creating the objects on the way. */
static void
as_scale_set(json_t *obj, const char *dotted, json_int_t v)
{
    char buf[256];
    if (snprintf(buf, sizeof(buf), "%s", dotted) >= (int) sizeof(buf)) {
        return;
    }
    json_t *cur = obj;
    char *save = NULL;
    char *t = strtok_r(buf, ".", &save);
    while (t) {
        char *next = strtok_r(NULL, ".", &save);
        if (!next) {
            json_object_set_new(cur, t, json_integer(v));
            return;
        }
        json_t *child = json_object_get(cur, t);
        if (!json_is_object(child)) {
            child = json_object();
            json_object_set_new(cur, t, child);
        }
        cur = child;
        t = next;
    }
}

static int
as_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

/* A LabelSelector object as the selector text Kubernetes reports in
 * Scale.status.selector: requirements sorted by key, "k=v", "k in (a,b)",
 * "k notin (a,b)", "k", "!k", joined by commas. */
static char *
as_selector_text(const json_t *ls)
{
    if (json_is_string(ls)) {
        return xstrdup(json_string_value(ls));
    }
    size_t n = json_object_size(json_object_get(ls, "matchLabels")) +
               json_array_size(json_object_get(ls, "matchExpressions"));
    char **parts = xcalloc(n + 1, sizeof(*parts));
    size_t m = 0;
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(ls, "matchLabels"), key, v)
    {
        const char *s = json_string_value(v);
        parts[m++] = xasprintf("%s=%s", key, s ? s : "");
    }
    size_t i;
    json_array_foreach(json_object_get(ls, "matchExpressions"), i, v)
    {
        const char *k = json_string_value(json_object_get(v, "key"));
        const char *op = json_string_value(json_object_get(v, "operator"));
        if (!k || !op) {
            continue;
        }
        if (!strcmp(op, "Exists")) {
            parts[m++] = xstrdup(k);
            continue;
        }
        if (!strcmp(op, "DoesNotExist")) {
            parts[m++] = xasprintf("!%s", k);
            continue;
        }
        struct dbuf b;
        dbuf_init(&b);
        dbuf_printf(&b, "%s %s (", k, !strcmp(op, "In") ? "in" : "notin");
        size_t j;
        json_t *val;
        json_array_foreach(json_object_get(v, "values"), j, val)
        {
            const char *s = json_string_value(val);
            dbuf_printf(&b, "%s%s", j ? "," : "", s ? s : "");
        }
        dbuf_printf(&b, ")");
        parts[m++] = dbuf_steal(&b, NULL);
    }
    qsort(parts, m, sizeof(*parts), as_cmp_str);
    struct dbuf out;
    dbuf_init(&out);
    dbuf_printf(&out, "%s", "");
    for (size_t p = 0; p < m; p++) {
        dbuf_printf(&out, "%s%s", p ? "," : "", parts[p]);
        free(parts[p]);
    }
    free(parts);
    return dbuf_steal(&out, NULL);
}

/* The Scale of obj (as stored, with its resourceVersion). */
static json_t *
as_scale_of(const struct schema_kind *k, const json_t *obj)
{
    const struct schema_scale *sc = k->scale;
    json_t *md = as_md(obj);
    json_t *smd = json_object();
    static const char *const keep[] = {"name", "namespace", "uid",
                                       "resourceVersion", "creationTimestamp"};
    for (size_t i = 0; i < ARRAY_SIZE(keep); i++) {
        json_t *v = json_object_get(md, keep[i]);
        if (v) {
            json_object_set(smd, keep[i], v);
        }
    }
    json_int_t spec = json_integer_value(as_scale_get(obj, sc->spec_replicas));
    json_int_t status =
        json_integer_value(as_scale_get(obj, sc->status_replicas));
    json_t *st = json_pack("{s:I}", "replicas", status);
    if (sc->label_selector) {
        json_t *ls = as_scale_get(obj, sc->label_selector);
        if (ls) {
            char *sel = as_selector_text(ls);
            json_object_set_new(st, "selector", json_string_nocheck(sel));
            free(sel);
        }
    }
    return json_pack("{s:s,s:s,s:o,s:{s:I},s:o}", "kind", "Scale", "apiVersion",
                     "autoscaling/v1", "metadata", smd, "spec", "replicas",
                     spec, "status", st);
}

/* What a PUT or PATCH of the scale asks for. */
struct as_scale_req {
    const struct schema_kind *k;
    const char *name;
    json_t *body;    /* PUT: the Scale */
    json_t *patch;   /* PATCH: the patch document */
    bool json_patch; /* RFC 6902 rather than a merge patch */
};

/* 422 the way kube-apiserver words an invalid Scale. */
static void
as_scale_invalid(struct as_error *ae, const char *name, const json_t *v,
                 const char *why)
{
    char *val = v ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    as_error_set(ae, 422, "Invalid",
                 "Scale.autoscaling \"%s\" is invalid: spec.replicas: %s%s%s",
                 name, val ? "Invalid value: " : "Required value",
                 val ? val : "", val ? why : "");
    as_error_details(ae, name, "autoscaling", "Scale");
    free(val);
}

static int
as_produce_scale(void *arg, const json_t *cur, json_t **out,
                 struct as_error *ae)
{
    struct as_scale_req *sr = arg;
    json_t *scale = NULL;
    if (sr->patch) {
        scale = as_scale_of(sr->k, cur);
        struct dpf_error e = {0};
        int r = sr->json_patch ? jsonpatch_apply(scale, sr->patch, &e)
                               : jsonpatch_merge(scale, sr->patch, &e);
        if (r < 0) {
            json_decref(scale);
            as_error_from(ae, &e, 422, "Invalid");
            ae->e.code = 422;
            snprintf(ae->e.reason, sizeof(ae->e.reason), "Invalid");
            return -EINVAL;
        }
    } else {
        scale = json_deep_copy(sr->body);
    }
    const char *n = json_string_value(
        json_object_get(json_object_get(scale, "metadata"), "name"));
    if (!sr->patch && n && *n && strcmp(n, sr->name) != 0) {
        json_decref(scale);
        as_error_set(ae, 400, "BadRequest",
                     "the name of the object (%s) does not match the name on "
                     "the URL (%s)",
                     n, sr->name);
        return -EINVAL;
    }
    json_t *rep = json_object_get(json_object_get(scale, "spec"), "replicas");
    json_t *zero = json_integer(0);
    if (!rep) {
        /* A Scale without replicas asks for zero (Go's zero value). */
        rep = zero;
    }
    if (!json_is_integer(rep)) {
        as_scale_invalid(ae, sr->name, rep, ": must be an integer");
        json_decref(scale);
        json_decref(zero);
        return -EINVAL;
    }
    if (json_integer_value(rep) < 0) {
        as_scale_invalid(ae, sr->name, rep,
                         ": must be greater than or equal to 0");
        json_decref(scale);
        json_decref(zero);
        return -EINVAL;
    }
    if (json_integer_value(rep) > INT32_MAX) {
        as_scale_invalid(ae, sr->name, rep, ": must be at most 2147483647");
        json_decref(scale);
        json_decref(zero);
        return -EINVAL;
    }
    json_t *obj = json_deep_copy(cur);
    as_scale_set(obj, sr->k->scale->spec_replicas, json_integer_value(rep));
    /* A resourceVersion in the Scale is a precondition on the object; the
     * one a patch inherited from cur is not. */
    json_t *rv =
        json_object_get(json_object_get(scale, "metadata"), "resourceVersion");
    json_t *want = json_object_get(sr->body, "metadata");
    if (sr->json_patch) {
        want = NULL; /* a json patch's "test" op is its precondition */
    } else if (sr->patch) {
        want = json_object_get(sr->patch, "metadata");
    }
    if (!json_object_get(want, "resourceVersion")) {
        rv = NULL;
    }
    if (rv) {
        json_object_set(as_md(obj), "resourceVersion", rv);
    } else {
        json_object_del(as_md(obj), "resourceVersion");
    }
    json_decref(scale);
    json_decref(zero);
    *out = obj;
    return 0;
}

/* A PATCH body of the scale: a JSON patch, or a merge patch (strategic
 * and apply patches of a Scale act as merge patches: it has no lists). */
static int
as_scale_decode_patch(const char *body, size_t blen, const char *ct,
                      struct as_scale_req *sr, struct as_error *ae)
{
    struct dpf_error e = {0};
    json_error_t je;
    if (as_media_is(ct, "application/apply-patch+yaml")) {
        if (yamljson_parse_one(body, blen, &sr->patch, &e) < 0) {
            as_error_from(ae, &e, 400, "BadRequest");
            return -EINVAL;
        }
    } else if (as_media_is(ct, "application/merge-patch+json") ||
               as_media_is(ct, "application/strategic-merge-patch+json") ||
               as_media_is(ct, "application/json-patch+json")) {
        sr->json_patch = as_media_is(ct, "application/json-patch+json");
        sr->patch = json_loadb(body, blen, JSON_DECODE_ANY, &je);
        if (!sr->patch) {
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
    if (sr->json_patch ? !json_is_array(sr->patch)
                       : !json_is_object(sr->patch)) {
        as_error_set(ae, 400, "BadRequest", "the patch must be a JSON %s",
                     sr->json_patch ? "array" : "object");
        return -EINVAL;
    }
    return 0;
}

/* Answer with the Scale of the object text (with its resourceVersion). */
static void
as_scale_respond(struct http_request *req, const struct schema_kind *k,
                 const struct as_format *fmt, const char *text, size_t len)
{
    json_t *obj = json_loadb(text, len, 0, NULL);
    json_t *scale = obj ? as_scale_of(k, obj) : NULL;
    as_respond_json(req, 200, fmt, scale); /* 500 Status if NULL */
    json_decref(scale);
    json_decref(obj);
}

void
as_handle_scale(struct apiserver *as, struct http_request *req,
                const struct schema_kind *k, const char *ns, const char *name,
                const char *method, const struct as_format *fmt)
{
    struct as_error ae = {0};
    if (!strcmp(method, "GET")) {
        char *key = as_key(k, ns, name);
        struct store_kv kv = {0};
        struct dpf_error e = {0};
        int r = store_get(as->store, key, &kv, &e);
        free(key);
        if (r < 0) {
            as_error_store(&ae, k, name, r, &e);
            as_respond_error(req, &ae);
            return;
        }
        size_t len;
        char *text = as_inject_rv(kv.value, kv.len, kv.rv, &len);
        store_kv_free(&kv);
        as_scale_respond(req, k, fmt, text, len);
        free(text);
        return;
    }
    bool put = !strcmp(method, "PUT");
    bool bad;
    bool dry = as_dry_run(req, &ae, &bad);
    if (bad) {
        as_respond_error(req, &ae);
        return;
    }
    size_t blen;
    const char *body = http_request_body(req, &blen);
    const char *ct = http_request_header(req, "Content-Type");
    struct as_scale_req sr = {.k = k, .name = name};
    if (put) {
        if (as_decode_body(body, blen, ct, as->cfg.max_body, false, &sr.body,
                           &ae) < 0) {
            as_respond_error(req, &ae);
            return;
        }
        const char *av =
            json_string_value(json_object_get(sr.body, "apiVersion"));
        const char *kind = json_string_value(json_object_get(sr.body, "kind"));
        if ((av && *av && strcmp(av, "autoscaling/v1") != 0) ||
            (kind && *kind && strcmp(kind, "Scale") != 0)) {
            as_error_set(&ae, 400, "BadRequest",
                         "the object provided is unrecognized (must be of "
                         "type Scale): %s/%s",
                         av ? av : "", kind ? kind : "");
            json_decref(sr.body);
            as_respond_error(req, &ae);
            return;
        }
    } else if (as_scale_decode_patch(body, blen, ct ? ct : "", &sr, &ae) < 0) {
        as_respond_error(req, &ae);
        return;
    }
    struct as_update_opts o = {
        .part = AS_PART_MAIN,
        .unknown = SCHEMA_UNKNOWN_PRUNE,
        .dry_run = dry,
    };
    struct as_update_result res;
    int r = as_guaranteed_update(as, k, ns, name, &o, as_produce_scale, &sr,
                                 &res, &ae);
    json_decref(sr.body);
    json_decref(sr.patch);
    if (r < 0) {
        as_respond_error(req, &ae);
        return;
    }
    as_add_warnings(req, res.warnings);
    as_scale_respond(req, k, fmt, res.text, res.len);
    as_update_result_free(&res);
}
