/* apiserver-admit: body decoding and admission.
 *
 * What happens to an object between the request and the store, without
 * touching the store: decode the body (JSON or YAML, duplicate keys
 * refused under fieldValidation=Strict), check apiVersion and kind
 * against the URL, prune unknown fields (Strict: 400, Warn: Warning
 * headers, otherwise silently), default and validate through api/schema.h,
 * and set the metadata the server owns (as_prepare_create()). Updates
 * use the same pruning and validation as the common steps of the
 * guaranteed update (apiserver-update.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "dpf-server/apiserver-private.h"
#include "lib/codecs/yamljson.h"

/* ------------------------------------------------------------------ */
/* server metadata */

static void
as_random_uid(char *buf, size_t size)
{
    unsigned char r[16];
    if (getrandom(r, sizeof(r), 0) != (ssize_t) sizeof(r)) {
        for (size_t i = 0; i < sizeof(r); i++) {
            r[i] = (unsigned char) (time_mono_ns() >> (i % 8));
        }
    }
    r[6] = (unsigned char) ((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char) ((r[8] & 0x3f) | 0x80);
    snprintf(buf, size,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
             r[11], r[12], r[13], r[14], r[15]);
}

/* Kubernetes' generateName suffix alphabet (no vowels, no ambiguous). */
void
as_random_suffix(char *buf, size_t n)
{
    static const char alpha[] = "bcdfghjklmnpqrstvwxz2456789";
    unsigned char r[16];
    if (n > sizeof(r)) {
        n = sizeof(r);
    }
    if (getrandom(r, n, 0) != (ssize_t) n) {
        memset(r, (int) (time_mono_ns() & 0xff), n);
    }
    for (size_t i = 0; i < n; i++) {
        buf[i] = alpha[r[i] % (sizeof(alpha) - 1)];
    }
    buf[n] = '\0';
}

void
as_now_rfc3339(char *buf, size_t size, int64_t plus_s)
{
    time_format_rfc3339(time_wall_ns() + plus_s * 1000000000LL, buf, size);
}

/* ------------------------------------------------------------------ */
/* body decoding and admission */

bool
as_media_is(const char *ct, const char *type)
{
    size_t n = strlen(type);
    if (strncasecmp(ct, type, n) != 0) {
        return false;
    }
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

bool
as_media_yaml(const char *ct)
{
    return as_media_is(ct, "application/yaml") ||
           as_media_is(ct, "application/x-yaml") ||
           as_media_is(ct, "text/yaml");
}

int
as_decode_body(const char *body, size_t len, const char *content_type,
               size_t max_len, bool strict, json_t **out, struct as_error *ae)
{
    const char *ct = content_type ? content_type : "application/json";
    json_t *doc = NULL;
    *out = NULL;
    if (max_len && len > max_len) {
        as_error_set(ae, 413, "RequestEntityTooLarge",
                     "Request entity too large: limit is %zu", max_len);
        return -E2BIG;
    }
    if (!*ct || as_media_is(ct, "application/json") || as_media_is(ct, "*/*")) {
        json_error_t jerr;
        doc = json_loadb(body, len, strict ? JSON_REJECT_DUPLICATES : 0, &jerr);
        if (!doc) {
            if (strict && strstr(jerr.text, "duplicate")) {
                as_error_set(ae, 400, "BadRequest", "strict decoding error: %s",
                             jerr.text);
            } else {
                as_error_set(ae, 400, "BadRequest",
                             "the body of the request could not be decoded "
                             "as JSON: %s at line %d column %d",
                             jerr.text, jerr.line, jerr.column);
            }
            return -EINVAL;
        }
    } else if (as_media_yaml(ct)) {
        struct dpf_error e = {0};
        if (yamljson_parse_one(body, len, &doc, &e) < 0) {
            as_error_from(ae, &e, 400, "BadRequest");
            return -EINVAL;
        }
    } else {
        as_error_set(ae, 415, "UnsupportedMediaType",
                     "the body of the request was in an unknown format - "
                     "accepted media types include: application/json, "
                     "application/yaml");
        return -EPROTONOSUPPORT;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        as_error_set(ae, 400, "BadRequest",
                     "the body of the request must be a JSON or YAML "
                     "object");
        return -EINVAL;
    }
    *out = doc;
    return 0;
}

enum schema_unknown_mode
as_unknown_mode(const char *fv)
{
    if (fv && !strcasecmp(fv, "Strict")) {
        return SCHEMA_UNKNOWN_STRICT;
    }
    if (fv && !strcasecmp(fv, "Warn")) {
        return SCHEMA_UNKNOWN_WARN;
    }
    return SCHEMA_UNKNOWN_PRUNE;
}

int
as_check_field_validation(const char *fv, struct as_error *ae)
{
    if (!fv || !*fv || !strcasecmp(fv, "Strict") || !strcasecmp(fv, "Warn") ||
        !strcasecmp(fv, "Ignore")) {
        return 0;
    }
    as_error_set(ae, 400, "BadRequest",
                 "fieldValidation parameter unsupported: %s (must be one of "
                 "Ignore, Warn, Strict)",
                 fv);
    return -EINVAL;
}

int
as_check_type(const struct schema_kind *k, json_t *obj, bool fill,
              struct as_error *ae)
{
    const char *want = schema_api_version(k);
    /* kube-apiserver decodes a built-in kind's body with the URL's
     * group/version/kind as the default, so a body without them is that
     * kind; a custom resource's body must say what it is. */
    if (fill && k->builtin) {
        const char *a = json_string_value(json_object_get(obj, "apiVersion"));
        const char *t = json_string_value(json_object_get(obj, "kind"));
        if (!a || !*a) {
            json_object_set_new(obj, "apiVersion", json_string(want));
        }
        if (!t || !*t) {
            json_object_set_new(obj, "kind", json_string(k->kind));
        }
    }
    const char *av = json_string_value(json_object_get(obj, "apiVersion"));
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    if (!kind || !*kind) {
        as_error_set(ae, 400, "BadRequest",
                     "Object 'Kind' is missing in the request body");
        return -EINVAL;
    }
    if (!av || !*av) {
        as_error_set(ae, 400, "BadRequest",
                     "Object 'apiVersion' is missing in the request body");
        return -EINVAL;
    }
    if (strcmp(av, want) != 0) {
        as_error_set(ae, 400, "BadRequest",
                     "the API version in the data (%s) does not match the "
                     "expected API version (%s)",
                     av, want);
        return -EINVAL;
    }
    if (strcmp(kind, k->kind) != 0) {
        as_error_set(ae, 400, "BadRequest",
                     "the kind in the data (%s) does not match the expected "
                     "kind (%s)",
                     kind, k->kind);
        return -EINVAL;
    }
    json_t *md = json_object_get(obj, "metadata");
    if (md && !json_is_object(md)) {
        as_error_set(ae, 400, "BadRequest", "metadata must be an object");
        return -EINVAL;
    }
    return 0;
}

int
as_prune(const struct schema_kind *k, json_t *obj,
         enum schema_unknown_mode mode, json_t **warnings, struct as_error *ae)
{
    struct dpf_error e = {0};
    json_t *w = NULL;
    if (schema_prune(k, obj, mode, warnings ? &w : NULL, &e) < 0) {
        as_error_from(ae, &e, 400, "BadRequest");
        json_decref(w);
        return -EINVAL;
    }
    if (warnings && w) {
        if (!*warnings) {
            *warnings = w;
        } else {
            json_array_extend(*warnings, w);
            json_decref(w);
        }
    } else {
        json_decref(w);
    }
    return 0;
}

int
as_validate(const struct schema_kind *k, const json_t *obj, const json_t *old,
            struct as_error *ae)
{
    struct dpf_error e = {0};
    if (schema_validate(k, obj, old, &e) < 0) {
        as_error_from(ae, &e, k->invalid_code ? k->invalid_code : 422,
                      "Invalid");
        const char *name = as_md_str(obj, "name");
        as_error_details(ae, name, k->group, k->kind);
        return -EINVAL;
    }
    return 0;
}

int
as_prepare_create(const struct schema_kind *k, const char *ns, json_t *obj,
                  enum schema_unknown_mode mode, json_t **warnings,
                  struct as_error *ae)
{
    if (as_check_type(k, obj, true, ae) < 0) {
        return -EINVAL;
    }
    json_t *md = as_md(obj);
    if (!md) {
        md = json_object();
        json_object_set_new(obj, "metadata", md);
    }
    const char *bns = json_string_value(json_object_get(md, "namespace"));
    if (k->namespaced) {
        if (!bns || !*bns) {
            if (ns) {
                json_object_set_new(md, "namespace", json_string(ns));
            }
        } else if (ns && strcmp(bns, ns) != 0) {
            as_error_set(ae, 400, "BadRequest",
                         "the namespace of the provided object does not "
                         "match the namespace sent on the request");
            return -EINVAL;
        }
    } else {
        json_object_del(md, "namespace");
    }
    const char *rv = json_string_value(json_object_get(md, "resourceVersion"));
    if (rv && *rv) {
        as_error_set(ae, 400, "BadRequest",
                     "resourceVersion should not be set on objects to be "
                     "created");
        return -EINVAL;
    }
    if (as_prune(k, obj, mode, warnings, ae) < 0) {
        return -EINVAL;
    }
    md = as_md(obj);
    if (!md) {
        md = json_object();
        json_object_set_new(obj, "metadata", md);
    }
    if (k->has_status) {
        json_object_del(obj, "status");
    }
    const char *name = json_string_value(json_object_get(md, "name"));
    const char *gen = json_string_value(json_object_get(md, "generateName"));
    if ((!name || !*name) && gen && *gen) {
        char sfx[8];
        as_random_suffix(sfx, 5);
        json_object_set_new(md, "name", json_sprintf("%s%s", gen, sfx));
    }
    char uid[40], ts[40];
    as_random_uid(uid, sizeof(uid));
    as_now_rfc3339(ts, sizeof(ts), 0);
    json_object_set_new(md, "uid", json_string(uid));
    json_object_set_new(md, "creationTimestamp", json_string(ts));
    json_object_set_new(md, "generation", json_integer(1));
    json_object_del(md, "deletionTimestamp");
    json_object_del(md, "deletionGracePeriodSeconds");
    json_object_del(md, "managedFields");
    json_object_del(md, "selfLink");
    json_object_del(md, "resourceVersion");
    if (as_is_namespace_kind(k)) {
        name = json_string_value(json_object_get(md, "name"));
        json_t *labels = json_object_get(md, "labels");
        if (!json_is_object(labels)) {
            labels = json_object();
            json_object_set_new(md, "labels", labels);
        }
        if (name) {
            json_object_set_new(labels, "kubernetes.io/metadata.name",
                                json_string(name));
        }
        json_t *spec = json_object_get(obj, "spec");
        if (!json_is_object(spec)) {
            spec = json_object();
            json_object_set_new(obj, "spec", spec);
        }
        json_object_set_new(spec, "finalizers", json_pack("[s]", "kubernetes"));
        json_object_set_new(obj, "status",
                            json_pack("{s:s}", "phase", "Active"));
    }
    schema_default(k, obj);
    return as_validate(k, obj, NULL, ae);
}

int
as_admit_create(const struct schema_kind *k, const char *ns, const char *body,
                size_t len, const char *content_type,
                const char *field_validation, json_t **out, json_t **warnings,
                struct as_error *ae)
{
    enum schema_unknown_mode mode = as_unknown_mode(field_validation);
    json_t *obj;
    *out = NULL;
    if (as_check_field_validation(field_validation, ae) < 0) {
        return -EINVAL;
    }
    int r = as_decode_body(body, len, content_type, AS_MAX_BODY,
                           mode == SCHEMA_UNKNOWN_STRICT, &obj, ae);
    if (r < 0) {
        return r;
    }
    r = as_prepare_create(k, ns, obj, mode, warnings, ae);
    if (r < 0) {
        json_decref(obj);
        return r;
    }
    *out = obj;
    return 0;
}

/* ------------------------------------------------------------------ */
/* helpers */

bool
as_str_in_array(const json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        const char *x = json_string_value(v);
        if (x && !strcmp(x, s)) {
            return true;
        }
    }
    return false;
}

size_t
as_finalizer_count(const json_t *obj)
{
    return json_array_size(
        json_object_get(json_object_get(obj, "metadata"), "finalizers"));
}
