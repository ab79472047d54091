/* apiserver: see apiserver.h. This file holds creation, routing, errors
 * and the object verbs (create, get, list, update, patch, delete,
 * deletecollection). Discovery, tables, watches and the garbage collector
 * live in apiserver-*.c (see apiserver-private.h).
 *
 * Objects are stored as compact JSON without metadata.resourceVersion (the
 * store owns revisions); reads inject the revision into the text without
 * re-serialising. Updates compute the new object outside the store's write
 * lock and commit with a compare-and-swap on the revision they read,
 * retrying when another writer got there first (Kubernetes'
 * GuaranteedUpdate), unless the client named a resourceVersion: then a
 * mismatch is a 409 Conflict. */
#include "dpf-server/apiserver.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "dpf-server/apiserver-private.h"
#include "lib/net/http-server.h"
#include "lib/codecs/jsonpatch.h"
#include "lib/base/log.h"
#include "lib/codecs/selector.h"
#include "lib/codecs/yamljson.h"

LOG_MODULE(apiserver);

#define AS_MAX_BODY (3u * 1024 * 1024)
#define AS_WATCH_BUFFER_BYTES ((size_t) 16 * 1024 * 1024)
#define AS_WATCH_BUFFER_TOTAL_BYTES ((size_t) 128 * 1024 * 1024)
#define AS_UPDATE_ATTEMPTS 32
/* Bytes of a field path quoted in a Warning header. */
#define AS_WARNING_PATH_MAX 256

static const char *const as_default_namespaces[] = {
    "default",
    "kube-system",
    "kube-public",
    "dpf-operator-system",
};

/* ------------------------------------------------------------------ */
/* small helpers */

static const char *
as_group_key(const struct schema_kind *k)
{
    return k->group[0] ? k->group : "core";
}

char *
as_key(const struct schema_kind *k, const char *ns, const char *name)
{
    return xasprintf("/%s/%s/%s/%s", as_group_key(k), k->plural,
                     k->namespaced && ns ? ns : "", name);
}

char *
as_prefix(const struct schema_kind *k, const char *ns)
{
    if (!k->namespaced) {
        return xasprintf("/%s/%s//", as_group_key(k), k->plural);
    }
    if (!ns) {
        return xasprintf("/%s/%s/", as_group_key(k), k->plural);
    }
    return xasprintf("/%s/%s/%s/", as_group_key(k), k->plural, ns);
}

void
as_qualified_resource(const struct schema_kind *k, char *buf, size_t size)
{
    if (k->group[0]) {
        snprintf(buf, size, "%s.%s", k->plural, k->group);
    } else {
        snprintf(buf, size, "%s", k->plural);
    }
}

/* Offset just past the '{' of the top-level "metadata" object, or -1. A
 * tiny scanner that tracks strings and nesting depth, so a "metadata" key
 * nested deeper or inside a string never matches. */
static long
as_find_metadata(const char *s, size_t len)
{
    int depth = 0;
    size_t i = 0;
    while (i < len) {
        char c = s[i];
        if (c == '"') {
            size_t start = ++i;
            while (i < len && s[i] != '"') {
                i += s[i] == '\\' ? 2 : 1;
            }
            size_t slen = i - start;
            i++;
            if (depth == 1 && slen == 8 && !memcmp(s + start, "metadata", 8)) {
                size_t j = i;
                while (j < len && (s[j] == ' ' || s[j] == '\n' ||
                                   s[j] == '\t' || s[j] == '\r')) {
                    j++;
                }
                if (j < len && s[j] == ':') {
                    j++;
                    while (j < len && (s[j] == ' ' || s[j] == '\n' ||
                                       s[j] == '\t' || s[j] == '\r')) {
                        j++;
                    }
                    if (j < len && s[j] == '{') {
                        return (long) j + 1;
                    }
                }
            }
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
        }
        i++;
    }
    return -1;
}

/* Index just past the JSON value starting at s[i] (i at its first
 * character, whitespace skipped by the caller). */
static size_t
as_skip_value(const char *s, size_t len, size_t i)
{
    int depth = 0;
    while (i < len) {
        char c = s[i];
        if (c == '"') {
            i++;
            while (i < len && s[i] != '"') {
                i += s[i] == '\\' ? 2 : 1;
            }
            i++;
            if (depth == 0) {
                return i;
            }
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0) {
                return i;
            }
            if (--depth == 0) {
                return i + 1;
            }
        } else if (depth == 0 && (c == ',' || c == ' ' || c == '\n')) {
            return i;
        }
        i++;
    }
    return len;
}

static size_t
as_skip_ws(const char *s, size_t len, size_t i)
{
    while (i < len &&
           (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r')) {
        i++;
    }
    return i;
}

json_t *
as_load_labels(const char *json, size_t len)
{
    long at = as_find_metadata(json, len);
    json_t *labels = NULL;
    if (at >= 0) {
        size_t i = (size_t) at;
        for (;;) {
            i = as_skip_ws(json, len, i);
            if (i >= len || json[i] != '"') {
                break;
            }
            size_t ks = i + 1;
            i = as_skip_value(json, len, i);
            size_t klen = i - 1 - ks;
            i = as_skip_ws(json, len, i);
            if (i >= len || json[i] != ':') {
                break;
            }
            i = as_skip_ws(json, len, i + 1);
            size_t vs = i;
            i = as_skip_value(json, len, i);
            if (klen == 6 && !memcmp(json + ks, "labels", 6)) {
                labels = json_loadb(json + vs, i - vs, 0, NULL);
                break;
            }
            i = as_skip_ws(json, len, i);
            if (i >= len || json[i] != ',') {
                break;
            }
            i++;
        }
    }
    json_t *obj = json_object();
    json_t *md = json_object();
    if (labels) {
        json_object_set_new(md, "labels", labels);
    }
    json_object_set_new(obj, "metadata", md);
    return obj;
}

/* Append json to b with "resourceVersion" injected into metadata. */
static void
as_append_rv(struct dbuf *b, const char *json, size_t len, int64_t rv)
{
    long at = as_find_metadata(json, len);
    if (at < 0) {
        dbuf_append(b, json, len);
        return;
    }
    size_t j = (size_t) at;
    while (j < len && (json[j] == ' ' || json[j] == '\n')) {
        j++;
    }
    bool empty = j < len && json[j] == '}';
    dbuf_append(b, json, (size_t) at);
    dbuf_printf(b, "\"resourceVersion\":\"%lld\"%s", (long long) rv,
                empty ? "" : ",");
    dbuf_append(b, json + at, len - (size_t) at);
}

char *
as_inject_rv(const char *json, size_t len, int64_t rv, size_t *out_len)
{
    struct dbuf b;
    dbuf_init(&b);
    as_append_rv(&b, json, len, rv);
    return dbuf_steal(&b, out_len);
}

json_t *
as_load_object(const char *json, size_t len, int64_t rv)
{
    json_t *obj = json_loadb(json, len, 0, NULL);
    if (!obj || !json_is_object(obj)) {
        json_decref(obj);
        return NULL;
    }
    json_t *md = json_object_get(obj, "metadata");
    if (!json_is_object(md)) {
        md = json_object();
        json_object_set_new(obj, "metadata", md);
    }
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", (long long) rv);
    json_object_set_new(md, "resourceVersion", json_string(buf));
    return obj;
}

static json_t *
as_md(json_t *obj)
{
    return json_object_get(obj, "metadata");
}

static const char *
as_md_str(const json_t *obj, const char *field)
{
    return json_string_value(
        json_object_get(json_object_get(obj, "metadata"), field));
}

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
static void
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

static void
as_now_rfc3339(char *buf, size_t size, int64_t plus_s)
{
    time_format_rfc3339(time_wall_ns() + plus_s * 1000000000LL, buf, size);
}

static bool
as_query_bool(struct http_request *req, const char *name)
{
    const char *v = http_request_query(req, name);
    return v && (!strcmp(v, "true") || !strcmp(v, "1"));
}

/* ------------------------------------------------------------------ */
/* errors and responses */

void
as_error_set(struct as_error *ae, int code, const char *reason, const char *fmt,
             ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    dpf_error_set(&ae->e, code, reason, "%s", "");
    /* Messages quote names, kinds and selectors from the request: cut them
     * on a character boundary so the Status stays valid JSON. */
    utf8_copy(ae->e.message, sizeof(ae->e.message), msg);
    free(msg);
}

static void
as_error_details(struct as_error *ae, const char *name, const char *group,
                 const char *kind)
{
    utf8_copy(ae->d.name, sizeof(ae->d.name), name);
    utf8_copy(ae->d.group, sizeof(ae->d.group), group);
    utf8_copy(ae->d.kind, sizeof(ae->d.kind), kind);
}

void
as_error_not_found(struct as_error *ae, const struct schema_kind *k,
                   const char *name)
{
    char qr[256];
    as_qualified_resource(k, qr, sizeof(qr));
    as_error_set(ae, 404, "NotFound", "%s \"%s\" not found", qr, name);
    as_error_details(ae, name, k->group, k->plural);
}

static void
as_error_conflict(struct as_error *ae, const struct schema_kind *k,
                  const char *name, const char *what)
{
    char qr[256];
    as_qualified_resource(k, qr, sizeof(qr));
    as_error_set(ae, 409, "Conflict",
                 "Operation cannot be fulfilled on %s "
                 "\"%s\": %s",
                 qr, name, what);
    as_error_details(ae, name, k->group, k->plural);
}

static void
as_error_stale(struct as_error *ae, const struct schema_kind *k,
               const char *name)
{
    as_error_conflict(ae, k, name,
                      "the object has been modified; please apply your "
                      "changes to the latest version and try again");
}

/* Make a fixed-size text buffer valid UTF-8 in place: libraries fill
 * their messages with vsnprintf, which may cut the last character. */
static void
as_text_clean(char *buf, size_t size)
{
    size_t len = strlen(buf);
    if (utf8_valid(buf, len)) {
        return;
    }
    char *clean = utf8_sanitize(buf, len, NULL);
    utf8_copy(buf, size, clean);
    free(clean);
}

/* Take over an error filled by a library (schema, selector, patch). */
static void
as_error_from(struct as_error *ae, const struct dpf_error *e, int def_code,
              const char *def_reason)
{
    ae->e = *e;
    as_text_clean(ae->e.message, sizeof(ae->e.message));
    for (size_t i = 0; i < ae->e.n_causes; i++) {
        as_text_clean(ae->e.causes[i].field, sizeof(ae->e.causes[i].field));
        as_text_clean(ae->e.causes[i].message, sizeof(ae->e.causes[i].message));
    }
    if (!ae->e.code) {
        ae->e.code = def_code;
    }
    if (!ae->e.reason[0]) {
        snprintf(ae->e.reason, sizeof(ae->e.reason), "%s", def_reason);
    }
    if (!ae->e.message[0]) {
        snprintf(ae->e.message, sizeof(ae->e.message), "%s", def_reason);
    }
}

/* A failed store call on one object: -ENOENT is NotFound for that
 * object, anything else an InternalError carrying the store's message. */
static void
as_error_store(struct as_error *ae, const struct schema_kind *k,
               const char *name, int r, const struct dpf_error *e)
{
    if (r == -ENOENT) {
        as_error_not_found(ae, k, name);
    } else {
        as_error_from(ae, e, 500, "InternalError");
    }
}

json_t *
as_json_text(const char *s)
{
    if (!s) {
        return json_string("");
    }
    json_t *j = json_string(s);
    if (j) {
        return j;
    }
    size_t n;
    char *fixed = utf8_sanitize(s, strlen(s), &n);
    j = json_stringn(fixed, n);
    free(fixed);
    return j ? j : json_string("");
}

/* The Status object of an error. Every string goes through as_json_text,
 * so text that is not valid UTF-8 (a library message cut mid-character,
 * raw bytes quoted from a request) is repaired instead of making jansson
 * return NULL. Never NULL. */
static json_t *
as_status_json(const struct as_error *ae)
{
    json_t *st = json_object();
    json_object_set_new(st, "kind", json_string("Status"));
    json_object_set_new(st, "apiVersion", json_string("v1"));
    json_object_set_new(st, "metadata", json_object());
    json_object_set_new(st, "status", json_string("Failure"));
    json_object_set_new(st, "message", as_json_text(ae->e.message));
    json_object_set_new(
        st, "reason",
        as_json_text(ae->e.reason[0] ? ae->e.reason : "InternalError"));
    json_object_set_new(st, "code",
                        json_integer(ae->e.code ? ae->e.code : 500));
    json_t *det = json_object();
    if (ae->d.name[0]) {
        json_object_set_new(det, "name", as_json_text(ae->d.name));
    }
    if (ae->d.group[0]) {
        json_object_set_new(det, "group", as_json_text(ae->d.group));
    }
    if (ae->d.kind[0]) {
        json_object_set_new(det, "kind", as_json_text(ae->d.kind));
    }
    if (ae->e.n_causes) {
        json_t *causes = json_array();
        for (size_t i = 0; i < ae->e.n_causes; i++) {
            const struct dpf_cause *c = &ae->e.causes[i];
            json_t *jc = json_object();
            json_object_set_new(jc, "reason", as_json_text(c->type));
            json_object_set_new(jc, "message", as_json_text(c->message));
            json_object_set_new(jc, "field", as_json_text(c->field));
            json_array_append_new(causes, jc);
        }
        json_object_set_new(det, "causes", causes);
    }
    if (ae->retry_after_s > 0) {
        json_object_set_new(det, "retryAfterSeconds",
                            json_integer(ae->retry_after_s));
    }
    if (json_object_size(det)) {
        json_object_set_new(st, "details", det);
    } else {
        json_decref(det);
    }
    return st;
}

/* Last resort when a document cannot be encoded (cannot happen with the
 * builders above; kept so that no response is ever empty or a crash). */
static const char as_status_unencodable[] =
    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
    "\"status\":\"Failure\",\"message\":\"the response could not be "
    "encoded\",\"reason\":\"InternalError\",\"code\":500}";

static void
as_respond_unencodable(struct http_request *req)
{
    http_respond(req, 500, "application/json", as_status_unencodable,
                 sizeof(as_status_unencodable) - 1);
}

char *
as_status_text(const struct as_error *ae, size_t *len)
{
    json_t *st = as_status_json(ae);
    char *text = json_dumps(st, JSON_COMPACT);
    json_decref(st);
    if (!text) {
        text = xstrdup(as_status_unencodable);
    }
    *len = strlen(text);
    return text;
}

void
as_respond_error(struct http_request *req, const struct as_error *ae)
{
    size_t len;
    char *text = as_status_text(ae, &len);
    int code = ae->e.code ? ae->e.code : 500;
    if (code == 405) {
        http_response_header(req, "Allow", "GET, POST, PUT, PATCH, DELETE");
    }
    http_respond_take(req, code, "application/json", text, len);
}

void
as_respond_text(struct http_request *req, int status,
                const struct as_format *fmt, char *text, size_t len)
{
    if (!text) {
        as_respond_unencodable(req);
        return;
    }
    if (fmt && fmt->out == AS_OUT_YAML) {
        json_t *doc = json_loadb(text, len, 0, NULL);
        free(text);
        if (!doc) {
            as_respond_unencodable(req);
            return;
        }
        char *y = yamljson_emit(doc);
        json_decref(doc);
        http_respond_take(req, status, "application/yaml", y, strlen(y));
        return;
    }
    http_respond_take(req, status, "application/json", text, len);
}

void
as_respond_json(struct http_request *req, int status,
                const struct as_format *fmt, const json_t *doc)
{
    if (!doc) {
        as_respond_unencodable(req);
        return;
    }
    if (fmt && fmt->out == AS_OUT_YAML) {
        char *y = yamljson_emit(doc);
        http_respond_take(req, status, "application/yaml", y, strlen(y));
        return;
    }
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text) {
        as_respond_unencodable(req);
        return;
    }
    http_respond_take(req, status, "application/json", text, strlen(text));
}

static void
as_respond_generic_404(struct http_request *req)
{
    struct as_error ae = {0};
    as_error_set(&ae, 404, "NotFound",
                 "the server could not find the requested resource");
    as_respond_error(req, &ae);
}

/* The Warning header for an unknown field (RFC 7234 warn-text, as
 * Kubernetes sends it): the field path comes from the keys of the
 * client's body, so its quotes and backslashes are escaped, control
 * characters (a key may hold CR/LF) become '?', and a long path is cut on
 * a character boundary. New string. */
char *
as_warning_value(const char *path)
{
    struct dbuf b;
    dbuf_init(&b);
    dbuf_puts(&b, "299 - \"unknown field \\\"");
    size_t len = strlen(path);
    size_t n = utf8_prefix(path, len, AS_WARNING_PATH_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) path[i];
        if (c < 0x20 || c == 0x7f) {
            dbuf_puts(&b, "?");
        } else if (c == '"' || c == '\\') {
            dbuf_puts(&b, c == '"' ? "\\\\\\\"" : "\\\\\\\\");
        } else {
            dbuf_append(&b, &path[i], 1);
        }
    }
    if (n < len) {
        dbuf_puts(&b, "...");
    }
    dbuf_puts(&b, "\\\"\"");
    return dbuf_steal(&b, NULL);
}

static void
as_add_warnings(struct http_request *req, const json_t *warnings)
{
    size_t i;
    json_t *w;
    json_array_foreach(warnings, i, w)
    {
        const char *path = json_string_value(w);
        if (!path) {
            continue;
        }
        char *hdr = as_warning_value(path);
        http_response_header(req, "Warning", hdr);
        free(hdr);
        if (i >= 20) {
            break;
        }
    }
}

/* ------------------------------------------------------------------ */
/* body decoding and admission */

static bool
as_media_is(const char *ct, const char *type)
{
    size_t n = strlen(type);
    if (strncasecmp(ct, type, n) != 0) {
        return false;
    }
    return ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ';
}

static bool
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

static enum schema_unknown_mode
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

static int
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

/* apiVersion and kind of a body must name the URL's kind. */
static int
as_check_type(const struct schema_kind *k, const json_t *obj,
              struct as_error *ae)
{
    const char *av = json_string_value(json_object_get(obj, "apiVersion"));
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    const char *want = schema_api_version(k);
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

static int
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

static int
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

/* Serialise for the store: no resourceVersion, compact. */
static char *
as_dump_store(json_t *obj, size_t *len)
{
    json_t *md = as_md(obj);
    if (md) {
        json_object_del(md, "resourceVersion");
    }
    char *text = json_dumps(obj, JSON_COMPACT);
    *len = strlen(text);
    return text;
}

static bool
as_is_namespace_kind(const struct schema_kind *k)
{
    return !k->group[0] && !strcmp(k->plural, "namespaces");
}

/* Prepare a new object for storage (everything the create path does
 * without the store). */
static int
as_prepare_create(const struct schema_kind *k, const char *ns, json_t *obj,
                  enum schema_unknown_mode mode, json_t **warnings,
                  struct as_error *ae)
{
    if (as_check_type(k, obj, ae) < 0) {
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

/* Namespace existence cache: every create checks its namespace, and a
 * store read per create cost a WAL lookup under the write storm. Entries
 * come from the store event hook (which has seen every acknowledged write,
 * so a deleted or terminating namespace is never answered as active) and
 * from store reads made on a miss, kept only when no namespace event
 * happened during the read. Negative answers are not cached. */
#define AS_NS_KEY_PREFIX "/core/namespaces//"
#define AS_NS_CACHE_MAX 65536

/* 1 if the namespace object text has metadata.deletionTimestamp, 0 if
 * not, -1 if it does not parse. */
static int
as_ns_text_terminating(const char *value, size_t len)
{
    json_t *o = json_loadb(value, len, 0, NULL);
    if (!o) {
        return -1;
    }
    int t = as_md_str(o, "deletionTimestamp") ? 1 : 0;
    json_decref(o);
    return t;
}

/* Store event hook part: keep the namespace cache current. */
static void
as_ns_cache_event(struct apiserver *as, enum store_event_type type,
                  const char *key, const char *value, size_t len)
{
    size_t pl = strlen(AS_NS_KEY_PREFIX);
    if (strncmp(key, AS_NS_KEY_PREFIX, pl) != 0) {
        return;
    }
    const char *name = key + pl;
    int t =
        type == STORE_EVENT_DELETED ? -1 : as_ns_text_terminating(value, len);
    pthread_mutex_lock(&as->ns_lock);
    as->ns_gen++;
    if (t < 0) {
        json_object_del(as->ns_cache, name);
    } else if (json_object_get(as->ns_cache, name) ||
               json_object_size(as->ns_cache) < AS_NS_CACHE_MAX) {
        json_object_set_new(as->ns_cache, name, json_boolean(t));
    }
    pthread_mutex_unlock(&as->ns_lock);
}

/* 1 terminating, 0 active, -ENOENT missing, other negative: read error. */
static int
as_ns_state(struct apiserver *as, const char *ns)
{
    pthread_mutex_lock(&as->ns_lock);
    json_t *v = json_object_get(as->ns_cache, ns);
    int cached = v ? json_is_true(v) : -1;
    uint64_t gen = as->ns_gen;
    pthread_mutex_unlock(&as->ns_lock);
    if (cached >= 0) {
        return cached;
    }
    const struct schema_kind *nsk =
        schema_find_resource("", "v1", "namespaces");
    struct store_kv kv = {0};
    char *key = as_key(nsk, NULL, ns);
    int r = store_get(as->store, key, &kv, NULL);
    free(key);
    if (r < 0) {
        return r;
    }
    int t = as_ns_text_terminating(kv.value, kv.len);
    store_kv_free(&kv);
    if (t < 0) {
        return 0; /* unparsable: exists, as before the cache */
    }
    pthread_mutex_lock(&as->ns_lock);
    if (as->ns_gen == gen && json_object_size(as->ns_cache) < AS_NS_CACHE_MAX) {
        json_object_set_new(as->ns_cache, ns, json_boolean(t));
    }
    pthread_mutex_unlock(&as->ns_lock);
    return t;
}

/* 0 if the namespace exists and accepts new content; else error. */
static int
as_check_namespace(struct apiserver *as, const struct schema_kind *k,
                   const char *ns, const char *name, struct as_error *ae)
{
    const struct schema_kind *nsk =
        schema_find_resource("", "v1", "namespaces");
    if (!k->namespaced || !nsk || !ns) {
        return 0;
    }
    int r = as_ns_state(as, ns);
    if (r == -ENOENT) {
        as_error_not_found(ae, nsk, ns);
        return -ENOENT;
    }
    if (r < 0) {
        as_error_set(ae, 500, "InternalError", "reading namespace %s: %s", ns,
                     strerror(-r));
        return r;
    }
    if (r == 1) {
        char qr[256];
        as_qualified_resource(k, qr, sizeof(qr));
        as_error_set(ae, 403, "Forbidden",
                     "%s \"%s\" is forbidden: unable to create new content "
                     "in namespace %s because it is being terminated",
                     qr, name ? name : "", ns);
        as_error_details(ae, name, k->group, k->plural);
        return -EPERM;
    }
    return 0;
}

/* Create obj (prepared) in the store. *out_text: object JSON with rv. */
static int
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
        char *text = as_dump_store(obj, &len);
        size_t max = as->cfg.max_body;
        if (len > max) {
            free(text);
            as_error_set(ae, 413, "RequestEntityTooLarge",
                         "Request entity too large: object is %zu bytes, "
                         "limit is %zu",
                         len, max);
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

/* ------------------------------------------------------------------ */
/* update core */

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

static bool
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

static size_t
as_finalizer_count(const json_t *obj)
{
    return json_array_size(
        json_object_get(json_object_get(obj, "metadata"), "finalizers"));
}

/* Build the object to store from old (as stored, with rv) and the
 * client's version. Returns a new ref in *out. */
static int
as_prepare_update(const struct schema_kind *k, const json_t *old,
                  json_t *newobj, bool status_only,
                  enum schema_unknown_mode mode, json_t **warnings,
                  struct as_error *ae)
{
    json_t *md_old = json_object_get(old, "metadata");
    const char *name = as_md_str(old, "name");
    if (as_check_type(k, newobj, ae) < 0) {
        return -EINVAL;
    }
    json_t *md = as_md(newobj);
    if (!md) {
        md = json_object();
        json_object_set_new(newobj, "metadata", md);
    }
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
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "Precondition failed: UID in precondition: %s, UID in "
                 "object meta: %s",
                 nuid, ouid);
        as_error_conflict(ae, k, name, msg);
        return -ESTALE;
    }
    if (status_only) {
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
    } else if (k->has_status) {
        json_t *st = json_object_get(old, "status");
        if (st) {
            json_object_set(newobj, "status", st);
        } else {
            json_object_del(newobj, "status");
        }
    }
    /* Server-owned metadata comes from the stored object. */
    json_object_set_new(md, "name", json_string(name));
    if (k->namespaced && ons) {
        json_object_set_new(md, "namespace", json_string(ons));
    } else {
        json_object_del(md, "namespace");
    }
    static const char *const keep[] = {
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    };
    for (size_t i = 0; i < ARRAY_SIZE(keep); i++) {
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
    if (as_prune(k, newobj, mode, warnings, ae) < 0) {
        return -EINVAL;
    }
    schema_default(k, newobj);
    /* The old object as stored, for immutability rules. */
    json_t *old_plain = json_deep_copy(old);
    json_object_del(json_object_get(old_plain, "metadata"), "resourceVersion");
    int r = as_validate(k, newobj, old_plain, ae);
    if (r == 0 && !as_content_equal(newobj, old_plain)) {
        json_int_t g =
            json_integer_value(json_object_get(md_old, "generation"));
        json_object_set_new(as_md(newobj), "generation", json_integer(g + 1));
    }
    json_decref(old_plain);
    return r;
}

/* Produce the client's version of the object from the current one (with
 * resourceVersion). Returns a new ref in *out or an error. */
typedef int (*as_produce_fn)(void *arg, const json_t *cur, json_t **out,
                             struct as_error *ae);

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

/* Delete an object whose deletion is complete (deletionTimestamp set, no
 * finalizers left, grace expired). Ignores races. */
static void
as_finish_deletion(struct apiserver *as, const char *key, int64_t rv)
{
    int64_t drv;
    int r = store_delete(as->store, key, rv, &drv, NULL);
    if (r < 0 && r != -ENOENT && r != -ESTALE) {
        log_warn_rl("finishing deletion failed", "key=%s err=%d", key, r);
    }
}

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

/* The GET-modify-CAS loop shared by PUT, PATCH and the GC. */
static int
as_update_loop(struct apiserver *as, const struct schema_kind *k,
               const char *ns, const char *name, bool status_only,
               enum schema_unknown_mode mode, bool dry_run, as_produce_fn fn,
               void *arg, json_t **warnings, char **out_text, size_t *out_len,
               struct as_error *ae)
{
    char *key = as_key(k, ns, name);
    int r = -EAGAIN;
    for (int attempt = 0; attempt < AS_UPDATE_ATTEMPTS; attempt++) {
        struct store_kv kv = {0};
        struct dpf_error e = {0};
        r = store_get(as->store, key, &kv, &e);
        if (r < 0) {
            as_error_store(ae, k, name, r, &e);
            break;
        }
        json_t *cur = as_load_object(kv.value, kv.len, kv.rv);
        if (!cur) {
            store_kv_free(&kv);
            as_error_set(ae, 500, "InternalError",
                         "stored object %s is "
                         "corrupt",
                         key);
            r = -EIO;
            break;
        }
        json_t *newobj = NULL;
        r = fn(arg, cur, &newobj, ae);
        if (r == 1) {
            /* Producer says: nothing to change. */
            *out_text = as_inject_rv(kv.value, kv.len, kv.rv, out_len);
            json_decref(cur);
            store_kv_free(&kv);
            r = 0;
            break;
        }
        if (r < 0) {
            json_decref(cur);
            store_kv_free(&kv);
            break;
        }
        const char *nrv = as_md_str(newobj, "resourceVersion");
        const char *crv = as_md_str(cur, "resourceVersion");
        if (nrv && *nrv && strcmp(nrv, crv) != 0) {
            as_error_stale(ae, k, name);
            json_decref(newobj);
            json_decref(cur);
            store_kv_free(&kv);
            r = -ESTALE;
            break;
        }
        if (warnings && *warnings) {
            json_decref(*warnings);
            *warnings = NULL;
        }
        r = as_prepare_update(k, cur, newobj, status_only, mode, warnings, ae);
        if (r < 0) {
            json_decref(newobj);
            json_decref(cur);
            store_kv_free(&kv);
            break;
        }
        json_object_del(as_md(cur), "resourceVersion");
        if (json_equal(newobj, cur)) {
            /* No-op update: no write, same resourceVersion. */
            *out_text = as_inject_rv(kv.value, kv.len, kv.rv, out_len);
            json_decref(newobj);
            json_decref(cur);
            store_kv_free(&kv);
            r = 0;
            break;
        }
        size_t len;
        char *text = as_dump_store(newobj, &len);
        bool finish = as_deletion_complete(newobj);
        json_decref(newobj);
        json_decref(cur);
        int64_t old_rv = kv.rv;
        store_kv_free(&kv);
        if (len > as->cfg.max_body) {
            free(text);
            as_error_set(ae, 413, "RequestEntityTooLarge",
                         "Request entity too large: object is %zu bytes, "
                         "limit is %zu",
                         len, as->cfg.max_body);
            r = -E2BIG;
            break;
        }
        if (dry_run) {
            *out_text = as_inject_rv(text, len, old_rv, out_len);
            free(text);
            r = 0;
            break;
        }
        int64_t new_rv = 0;
        r = as_store_cas(as, key, old_rv, text, len, &new_rv, &e);
        if (r == -ESTALE) {
            free(text);
            if (nrv && *nrv) {
                as_error_stale(ae, k, name);
                break;
            }
            continue;
        }
        if (r < 0) {
            free(text);
            as_error_store(ae, k, name, r, &e);
            break;
        }
        *out_text = as_inject_rv(text, len, new_rv, out_len);
        free(text);
        if (finish) {
            as_finish_deletion(as, key, new_rv);
        }
        r = 0;
        break;
    }
    if (r == -EAGAIN) {
        as_error_stale(ae, k, name);
        r = -ESTALE;
    }
    free(key);
    return r;
}

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

enum as_patch_type {
    AS_PATCH_MERGE,
    AS_PATCH_JSON,
    AS_PATCH_STRATEGIC,
    AS_PATCH_APPLY,
};

struct as_patch {
    enum as_patch_type type;
    json_t *patch;
};

/* Strategic merge patch directives we understand only well enough to
 * drop: merge semantics apply (see docs/dev/apiserver.md). */
static void
as_strip_smp_directives(json_t *p)
{
    if (json_is_object(p)) {
        const char *key;
        json_t *v;
        void *tmp;
        json_object_foreach_safe(p, tmp, key, v)
        {
            if (key[0] == '$') {
                json_object_del(p, key);
            } else {
                as_strip_smp_directives(v);
            }
        }
    } else if (json_is_array(p)) {
        size_t i;
        json_t *v;
        json_array_foreach(p, i, v)
        {
            as_strip_smp_directives(v);
        }
    }
}

/* Strategic merge: lists of objects that all carry a "name" are merged by
 * name (containers, env, volumes, ports with names), as Kubernetes' merge
 * keys do for the common core fields; other lists are replaced. */
static void as_smp_merge(json_t *target, const json_t *patch);

static bool
as_list_keyed_by_name(const json_t *arr)
{
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        return false;
    }
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_object(v) || !json_is_string(json_object_get(v, "name"))) {
            return false;
        }
    }
    return true;
}

static void
as_smp_merge_list(json_t *tarr, const json_t *parr)
{
    size_t i;
    json_t *pv;
    json_array_foreach(parr, i, pv)
    {
        const char *n = json_string_value(json_object_get(pv, "name"));
        const char *op = json_string_value(json_object_get(pv, "$patch"));
        size_t j;
        json_t *tv;
        bool found = false;
        json_array_foreach(tarr, j, tv)
        {
            const char *tn = json_string_value(json_object_get(tv, "name"));
            if (tn && !strcmp(tn, n)) {
                found = true;
                if (op && !strcmp(op, "delete")) {
                    json_array_remove(tarr, j);
                } else {
                    as_smp_merge(tv, pv);
                }
                break;
            }
        }
        if (!found && !(op && !strcmp(op, "delete"))) {
            json_t *c = json_deep_copy(pv);
            as_strip_smp_directives(c);
            json_array_append_new(tarr, c);
        }
    }
}

static void
as_smp_merge(json_t *target, const json_t *patch)
{
    const char *key;
    json_t *pv;
    json_object_foreach((json_t *) patch, key, pv)
    {
        if (key[0] == '$') {
            continue;
        }
        json_t *tv = json_object_get(target, key);
        if (json_is_null(pv)) {
            json_object_del(target, key);
        } else if (json_is_object(pv) && json_is_object(tv)) {
            const char *op = json_string_value(json_object_get(pv, "$patch"));
            if (op && !strcmp(op, "replace")) {
                json_t *c = json_deep_copy(pv);
                as_strip_smp_directives(c);
                json_object_set_new(target, key, c);
            } else if (op && !strcmp(op, "delete")) {
                json_object_del(target, key);
            } else {
                as_smp_merge(tv, pv);
            }
        } else if (json_is_array(pv) && as_list_keyed_by_name(pv) &&
                   as_list_keyed_by_name(tv)) {
            as_smp_merge_list(tv, pv);
        } else {
            json_t *c = json_deep_copy(pv);
            as_strip_smp_directives(c);
            json_object_set_new(target, key, c);
        }
    }
}

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
    json_t *obj = json_deep_copy(cur);
    struct dpf_error e = {0};
    int r = 0;
    switch (p->type) {
    case AS_PATCH_JSON:
        r = jsonpatch_apply(obj, p->patch, &e);
        break;
    case AS_PATCH_STRATEGIC:
        as_smp_merge(obj, p->patch);
        break;
    case AS_PATCH_MERGE:
    case AS_PATCH_APPLY:
        r = jsonpatch_merge(obj, p->patch, &e);
        break;
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

struct as_edit {
    int (*fn)(void *arg, json_t *obj);
    void *arg;
};

static int
as_produce_edit(void *arg, const json_t *cur, json_t **out, struct as_error *ae)
{
    struct as_edit *ed = arg;
    json_t *obj = json_deep_copy(cur);
    int r = ed->fn(ed->arg, obj);
    if (r <= 0) {
        json_decref(obj);
        if (r < 0) {
            as_error_set(ae, 500, "InternalError", "edit failed");
        }
        return r < 0 ? r : 1;
    }
    /* Internal edits never carry a precondition. */
    json_object_del(as_md(obj), "resourceVersion");
    *out = obj;
    return 0;
}

int
as_edit_object(struct apiserver *as, const struct schema_kind *k,
               const char *ns, const char *name,
               int (*fn)(void *arg, json_t *obj), void *arg,
               struct as_error *ae)
{
    struct as_edit ed = {fn, arg};
    char *text = NULL;
    size_t len = 0;
    int r = as_update_loop(as, k, ns, name, false, SCHEMA_UNKNOWN_PRUNE, false,
                           as_produce_edit, &ed, NULL, &text, &len, ae);
    free(text);
    return r;
}

/* ------------------------------------------------------------------ */
/* delete */

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

int
as_delete_object(struct apiserver *as, const struct schema_kind *k,
                 const char *ns, const char *name,
                 const struct as_delete_opts *opts, json_t **out,
                 struct as_error *ae)
{
    char *key = as_key(k, ns, name);
    int r = -EAGAIN;
    if (out) {
        *out = NULL;
    }
    for (int attempt = 0; attempt < AS_UPDATE_ATTEMPTS; attempt++) {
        struct store_kv kv = {0};
        struct dpf_error e = {0};
        r = store_get(as->store, key, &kv, &e);
        if (r < 0) {
            as_error_store(ae, k, name, r, &e);
            break;
        }
        json_t *obj = as_load_object(kv.value, kv.len, kv.rv);
        int64_t rv = kv.rv;
        store_kv_free(&kv);
        if (!obj) {
            as_error_set(ae, 500, "InternalError",
                         "stored object %s is "
                         "corrupt",
                         key);
            r = -EIO;
            break;
        }
        const char *uid = as_md_str(obj, "uid");
        const char *crv = as_md_str(obj, "resourceVersion");
        if (opts->uid && *opts->uid && uid && strcmp(opts->uid, uid) != 0) {
            char msg[256];
            snprintf(msg, sizeof(msg),
                     "Precondition failed: UID in precondition: %s, UID in "
                     "object meta: %s",
                     opts->uid, uid);
            as_error_conflict(ae, k, name, msg);
            json_decref(obj);
            r = -ESTALE;
            break;
        }
        if (opts->rv && *opts->rv && strcmp(opts->rv, crv) != 0) {
            char msg[256];
            snprintf(msg, sizeof(msg),
                     "Precondition failed: ResourceVersion in precondition: "
                     "%s, ResourceVersion in object meta: %s",
                     opts->rv, crv);
            as_error_conflict(ae, k, name, msg);
            json_decref(obj);
            r = -ESTALE;
            break;
        }
        bool deleting = as_md_str(obj, "deletionTimestamp") != NULL;
        if (!deleting) {
            struct schema_reader reader;
            as_reader_init(as, &reader);
            e = (struct dpf_error){0};
            if (schema_validate_delete(k, obj, &reader, &e) < 0) {
                as_error_from(ae, &e, 403, "Forbidden");
                as_error_details(ae, name, k->group, k->plural);
                json_decref(obj);
                r = -EPERM;
                break;
            }
        }
        const char *pol = opts->propagation;
        const char *add = NULL;
        if (pol && !strcmp(pol, "Foreground")) {
            add = "foregroundDeletion";
        } else if (pol && !strcmp(pol, "Orphan")) {
            add = "orphan";
        }
        bool graceful_pod = false;
        int64_t grace = 0;
        if (as_is_pod(k) && opts->grace_seconds != 0) {
            json_t *spec = json_object_get(obj, "spec");
            const char *node =
                json_string_value(json_object_get(spec, "nodeName"));
            const char *phase = json_string_value(
                json_object_get(json_object_get(obj, "status"), "phase"));
            if (node && *node &&
                !(phase &&
                  (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed")))) {
                graceful_pod = true;
                grace = opts->grace_seconds > 0 ? opts->grace_seconds : 30;
                json_t *tg =
                    json_object_get(spec, "terminationGracePeriodSeconds");
                if (opts->grace_seconds < 0 && json_is_integer(tg)) {
                    grace = json_integer_value(tg);
                }
                if (grace <= 0) {
                    graceful_pod = false;
                    grace = 0;
                }
            }
        }
        if (deleting) {
            /* Already being deleted: a forced pod deletion finishes it;
             * otherwise report the object as it is. */
            bool force = as_is_pod(k) && opts->grace_seconds == 0 &&
                         as_finalizer_count(obj) == 0;
            if (!force) {
                if (out) {
                    *out = obj;
                } else {
                    json_decref(obj);
                }
                r = 0;
                break;
            }
        }
        bool ns_kind = as_is_namespace_kind(k);
        if (!deleting &&
            (as_finalizer_count(obj) || add || graceful_pod || ns_kind)) {
            /* Graceful: mark for deletion; finalizers (or the GC) finish. */
            char ts[40];
            json_t *md = as_md(obj);
            as_now_rfc3339(ts, sizeof(ts), graceful_pod ? grace : 0);
            json_object_set_new(md, "deletionTimestamp", json_string(ts));
            json_object_set_new(md, "deletionGracePeriodSeconds",
                                json_integer(grace));
            json_int_t g =
                json_integer_value(json_object_get(md, "generation"));
            json_object_set_new(md, "generation", json_integer(g + 1));
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
            size_t len;
            char *text = as_dump_store(obj, &len);
            json_decref(obj);
            if (opts->dry_run) {
                if (out) {
                    size_t l2;
                    char *t2 = as_inject_rv(text, len, rv, &l2);
                    *out = json_loadb(t2, l2, 0, NULL);
                    free(t2);
                }
                free(text);
                r = 0;
                break;
            }
            int64_t new_rv;
            r = as_store_cas(as, key, rv, text, len, &new_rv, &e);
            if (r == -ESTALE) {
                free(text);
                continue;
            }
            if (r < 0) {
                free(text);
                as_error_store(ae, k, name, r, &e);
                break;
            }
            if (out) {
                *out = as_load_object(text, len, new_rv);
            }
            free(text);
            r = 0;
            break;
        }
        if (opts->dry_run) {
            if (out) {
                *out = obj;
            } else {
                json_decref(obj);
            }
            r = 0;
            break;
        }
        int64_t drv;
        r = store_delete(as->store, key, rv, &drv, &e);
        if (r == -ESTALE) {
            json_decref(obj);
            continue;
        }
        if (r < 0) {
            json_decref(obj);
            as_error_store(ae, k, name, r, &e);
            break;
        }
        if (out) {
            *out = obj;
        } else {
            json_decref(obj);
        }
        r = 0;
        break;
    }
    if (r == -EAGAIN) {
        as_error_stale(ae, k, name);
        r = -ESTALE;
    }
    free(key);
    return r;
}

/* ------------------------------------------------------------------ */
/* schema reader */

struct as_reader_ctx {
    int (*cb)(void *cbarg, const json_t *obj);
    void *cbarg;
};

static int
as_reader_each(void *arg, const struct store_kv *kv)
{
    struct as_reader_ctx *c = arg;
    json_t *obj = as_load_object(kv->value, kv->len, kv->rv);
    if (!obj) {
        return 0;
    }
    int r = c->cb(c->cbarg, obj);
    json_decref(obj);
    return r;
}

static int
as_reader_list(void *arg, const char *group, const char *plural, const char *ns,
               int (*cb)(void *cbarg, const json_t *obj), void *cbarg)
{
    struct apiserver *as = arg;
    char *prefix;
    const char *g = group && *group ? group : "core";
    if (ns) {
        prefix = xasprintf("/%s/%s/%s/", g, plural, ns);
    } else {
        prefix = xasprintf("/%s/%s/", g, plural);
    }
    struct as_reader_ctx c = {cb, cbarg};
    int r = store_list(as->store, prefix, NULL, 0, as_reader_each, &c, NULL,
                       NULL, NULL);
    free(prefix);
    return r;
}

void
as_reader_init(struct apiserver *as, struct schema_reader *r)
{
    r->list = as_reader_list;
    r->arg = as;
}

/* ------------------------------------------------------------------ */
/* selectors */

static const char *const as_fields_common[] = {
    "metadata.name",
    "metadata.namespace",
    NULL,
};

static const char *const as_fields_pod[] = {
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
    NULL,
};

static const char *const as_fields_event[] = {
    "metadata.name",
    "metadata.namespace",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
    NULL,
};

static const char *const as_fields_node[] = {
    "metadata.name",
    "spec.unschedulable",
    NULL,
};

static const char *const as_fields_secret[] = {
    "metadata.name",
    "metadata.namespace",
    "type",
    NULL,
};

static const char *const as_fields_namespace[] = {
    "metadata.name",
    "status.phase",
    NULL,
};

const char *const *
as_field_selector_paths(const struct schema_kind *k)
{
    if (k->group[0]) {
        return as_fields_common;
    }
    if (!strcmp(k->plural, "pods")) {
        return as_fields_pod;
    }
    if (!strcmp(k->plural, "events")) {
        return as_fields_event;
    }
    if (!strcmp(k->plural, "nodes")) {
        return as_fields_node;
    }
    if (!strcmp(k->plural, "secrets")) {
        return as_fields_secret;
    }
    if (!strcmp(k->plural, "namespaces")) {
        return as_fields_namespace;
    }
    return as_fields_common;
}

/* Does a field selector text only use metadata.name/metadata.namespace
 * (so the key alone decides)? */
static bool
as_fields_meta_only(const char *text)
{
    const char *p = text;
    while (*p) {
        while (*p == ' ') {
            p++;
        }
        const char *end = p + strcspn(p, "!=,");
        size_t n = (size_t) (end - p);
        while (n && p[n - 1] == ' ') {
            n--;
        }
        if (!((n == 13 && !strncmp(p, "metadata.name", 13)) ||
              (n == 18 && !strncmp(p, "metadata.namespace", 18)))) {
            return false;
        }
        p = strchr(p, ',');
        if (!p) {
            break;
        }
        p++;
    }
    return true;
}

int
as_filter_init(struct as_filter *f, const struct schema_kind *k,
               const char *labels, const char *fields, struct as_error *ae)
{
    memset(f, 0, sizeof(*f));
    struct dpf_error e = {0};
    if (labels && *labels) {
        f->labels = selector_parse_labels(labels, &e);
        if (!f->labels) {
            as_error_from(ae, &e, 400, "BadRequest");
            return -EINVAL;
        }
        if (selector_empty(f->labels)) {
            selector_free(f->labels);
            f->labels = NULL;
        }
    }
    if (fields && *fields) {
        f->fields =
            selector_parse_fields(fields, as_field_selector_paths(k), &e);
        if (!f->fields) {
            as_error_from(ae, &e, 400, "BadRequest");
            selector_free(f->labels);
            f->labels = NULL;
            return -EINVAL;
        }
        if (selector_empty(f->fields)) {
            selector_free(f->fields);
            f->fields = NULL;
        } else {
            f->fields_meta_only = as_fields_meta_only(fields);
        }
    }
    return 0;
}

void
as_filter_free(struct as_filter *f)
{
    selector_free(f->labels);
    selector_free(f->fields);
    memset(f, 0, sizeof(*f));
}

bool
as_filter_needs_object(const struct as_filter *f)
{
    return f->labels || (f->fields && !f->fields_meta_only);
}

bool
as_filter_labels_only(const struct as_filter *f)
{
    return f->labels && (!f->fields || f->fields_meta_only);
}

bool
as_filter_match(const struct as_filter *f, const char *key, const json_t *obj)
{
    if (f->labels &&
        !selector_match_labels(
            f->labels,
            json_object_get(json_object_get(obj, "metadata"), "labels"))) {
        return false;
    }
    if (!f->fields) {
        return true;
    }
    if (!f->fields_meta_only) {
        return selector_match_fields(f->fields, obj);
    }
    /* "/<group>/<plural>/<ns>/<name>": match on a tiny metadata object. */
    const char *name = strrchr(key, '/');
    if (!name) {
        return false;
    }
    const char *p = name - 1;
    while (p > key && *p != '/') {
        p--;
    }
    char *ns = xstrndup(p + 1, (size_t) (name - p - 1));
    json_t *md = json_object();
    json_object_set_new(md, "name", as_json_text(name + 1));
    json_object_set_new(md, "namespace", as_json_text(ns));
    free(ns);
    json_t *fake = json_object();
    json_object_set_new(fake, "metadata", md);
    bool ok = selector_match_fields(f->fields, fake);
    json_decref(fake);
    return ok;
}

/* ------------------------------------------------------------------ */
/* continue tokens: base64url({"k":<last key>,"rv":<list rv>}) */

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *
as_b64url_encode(const unsigned char *in, size_t n)
{
    char *out = xmalloc(n * 4 / 3 + 4);
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned) in[i] << 16;
        if (i + 1 < n) {
            v |= (unsigned) in[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= in[i + 2];
        }
        out[o++] = b64url[(v >> 18) & 63];
        out[o++] = b64url[(v >> 12) & 63];
        if (i + 1 < n) {
            out[o++] = b64url[(v >> 6) & 63];
        }
        if (i + 2 < n) {
            out[o++] = b64url[v & 63];
        }
    }
    out[o] = '\0';
    return out;
}

static char *
as_b64url_decode(const char *in, size_t *outlen)
{
    size_t n = strlen(in);
    unsigned char *out = xmalloc(n * 3 / 4 + 4);
    size_t o = 0;
    unsigned v = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == '=') {
            break;
        }
        if (c == '+') {
            c = '-';
        } else if (c == '/') {
            c = '_';
        }
        const char *p = c ? strchr(b64url, c) : NULL;
        if (!p) {
            free(out);
            return NULL;
        }
        v = (v << 6) | (unsigned) (p - b64url);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char) ((v >> bits) & 0xff);
        }
    }
    out[o] = '\0';
    *outlen = o;
    return (char *) out;
}

static char *
as_continue_encode(const char *key, int64_t rv)
{
    json_t *t = json_pack("{s:s,s:I}", "k", key, "rv", (json_int_t) rv);
    char *s = json_dumps(t, JSON_COMPACT);
    json_decref(t);
    char *enc = as_b64url_encode((unsigned char *) s, strlen(s));
    free(s);
    return enc;
}

/* Decode a continue token into the key to start after. */
static int
as_continue_decode(const char *tok, const char *prefix, char **key,
                   struct as_error *ae)
{
    size_t n;
    char *raw = as_b64url_decode(tok, &n);
    json_t *t = raw ? json_loadb(raw, n, 0, NULL) : NULL;
    free(raw);
    const char *k = json_string_value(json_object_get(t, "k"));
    if (!k || !str_has_prefix(k, prefix)) {
        json_decref(t);
        as_error_set(ae, 400, "BadRequest",
                     "continue key is not valid: the continue token does not "
                     "belong to this list");
        return -EINVAL;
    }
    *key = xstrdup(k);
    json_decref(t);
    return 0;
}

/* ------------------------------------------------------------------ */
/* request routing */

struct as_route {
    const struct schema_kind *k;
    char *ns;   /* namespace from the path or NULL */
    char *name; /* object name or NULL (collection) */
    char *sub;  /* subresource ("status") or NULL */
};

static void
as_route_free(struct as_route *rt)
{
    free(rt->ns);
    free(rt->name);
    free(rt->sub);
}

/* Parse /api/v1/... and /apis/<g>/<v>/... resource paths. 0, or -ENOENT
 * (404 generic). */
static int
as_route_parse(const char *path, struct as_route *rt)
{
    char *copy = xstrdup(path);
    char *seg[12];
    int n = 0;
    char *save = NULL;
    memset(rt, 0, sizeof(*rt));
    for (char *t = strtok_r(copy, "/", &save); t;
         t = strtok_r(NULL, "/", &save)) {
        if (n == (int) ARRAY_SIZE(seg)) {
            free(copy);
            return -ENOENT;
        }
        seg[n++] = t;
    }
    const char *group = NULL, *version = NULL;
    int i = 0;
    if (n >= 2 && !strcmp(seg[0], "api")) {
        group = "";
        version = seg[1];
        i = 2;
    } else if (n >= 3 && !strcmp(seg[0], "apis")) {
        group = seg[1];
        version = seg[2];
        i = 3;
    } else {
        free(copy);
        return -ENOENT;
    }
    int rest = n - i;
    char **r = seg + i;
    const struct schema_kind *k = NULL;
    if (rest >= 3 && !strcmp(r[0], "namespaces") &&
        (k = schema_find_resource(group, version, r[2])) != NULL &&
        k->namespaced && rest <= 5) {
        rt->ns = xstrdup(r[1]);
        if (rest >= 4) {
            rt->name = xstrdup(r[3]);
        }
        if (rest == 5) {
            rt->sub = xstrdup(r[4]);
        }
    } else if (rest >= 1 && rest <= 3 &&
               (k = schema_find_resource(group, version, r[0])) != NULL &&
               (!k->namespaced || rest == 1)) {
        if (rest >= 2) {
            rt->name = xstrdup(r[1]);
        }
        if (rest == 3) {
            rt->sub = xstrdup(r[2]);
        }
    } else {
        free(copy);
        return -ENOENT;
    }
    rt->k = k;
    free(copy);
    return 0;
}

/* ------------------------------------------------------------------ */
/* handlers */

struct as_list_ctx {
    const struct schema_kind *k;
    struct as_filter *filter;
    const struct as_format *fmt;
    struct dbuf items;
    size_t count;
    size_t limit;
    char *last_key;
    bool more;
    int64_t now_ns;
};

static int
as_list_each(void *arg, const struct store_kv *kv)
{
    struct as_list_ctx *c = arg;
    json_t *obj = NULL;
    bool table = c->fmt->out == AS_OUT_TABLE;
    if (table || (as_filter_needs_object(c->filter) &&
                  !as_filter_labels_only(c->filter))) {
        obj = as_load_object(kv->value, kv->len, kv->rv);
        if (!obj) {
            return 0;
        }
    } else if (as_filter_needs_object(c->filter)) {
        obj = as_load_labels(kv->value, kv->len);
    }
    if ((c->filter->labels || c->filter->fields) &&
        !as_filter_match(c->filter, kv->key, obj)) {
        json_decref(obj);
        return 0;
    }
    if (c->limit && c->count == c->limit) {
        c->more = true;
        json_decref(obj);
        return 1;
    }
    if (c->count) {
        dbuf_puts(&c->items, ",");
    }
    if (table) {
        json_t *row = as_table_row(c->k, obj, c->fmt->include, c->now_ns);
        char *t = json_dumps(row, JSON_COMPACT);
        dbuf_puts(&c->items, t);
        free(t);
        json_decref(row);
    } else {
        as_append_rv(&c->items, kv->value, kv->len, kv->rv);
    }
    json_decref(obj);
    c->count++;
    free(c->last_key);
    c->last_key = xstrdup(kv->key);
    return 0;
}

static void
as_handle_list(struct apiserver *as, struct http_request *req,
               const struct as_route *rt, const struct as_format *fmt)
{
    struct as_error ae = {0};
    struct as_filter filter;
    const struct schema_kind *k = rt->k;
    if (as_filter_init(&filter, k, http_request_query(req, "labelSelector"),
                       http_request_query(req, "fieldSelector"), &ae) < 0) {
        as_respond_error(req, &ae);
        return;
    }
    char *prefix = as_prefix(k, rt->ns);
    const char *lim = http_request_query(req, "limit");
    const char *cont = http_request_query(req, "continue");
    struct as_list_ctx c = {.k = k, .filter = &filter, .fmt = fmt};
    dbuf_init(&c.items);
    c.now_ns = time_wall_ns();
    if (lim && *lim) {
        char *end;
        long long v = strtoll(lim, &end, 10);
        if (*end || v < 0) {
            as_error_set(&ae, 400, "BadRequest", "invalid limit: %s", lim);
            goto fail;
        }
        c.limit = (size_t) v;
    }
    char *after = NULL;
    if (cont && *cont && as_continue_decode(cont, prefix, &after, &ae) < 0) {
        goto fail;
    }
    int64_t list_rv = 0;
    struct dpf_error e = {0};
    size_t store_limit = 0;
    if (c.limit && !filter.labels && !filter.fields) {
        store_limit = c.limit + 1;
    }
    int r = store_list(as->store, prefix, after, store_limit, as_list_each, &c,
                       &list_rv, NULL, &e);
    free(after);
    if (r < 0) {
        as_error_from(&ae, &e, 500, "InternalError");
        goto fail;
    }
    struct dbuf b;
    dbuf_init(&b);
    char *tok =
        c.more && c.last_key ? as_continue_encode(c.last_key, list_rv) : NULL;
    if (fmt->out == AS_OUT_TABLE) {
        json_t *cols = as_table_columns(k);
        char *ct = json_dumps(cols, JSON_COMPACT);
        json_decref(cols);
        dbuf_printf(&b,
                    "{\"kind\":\"Table\",\"apiVersion\":\"%s\","
                    "\"metadata\":{\"resourceVersion\":\"%lld\"",
                    fmt->table_api, (long long) list_rv);
        if (tok) {
            dbuf_printf(&b, ",\"continue\":\"%s\"", tok);
        }
        dbuf_printf(&b, "},\"columnDefinitions\":%s,\"rows\":[", ct);
        free(ct);
    } else {
        dbuf_printf(&b,
                    "{\"kind\":\"%s\",\"apiVersion\":\"%s\",\"metadata\":{"
                    "\"resourceVersion\":\"%lld\"",
                    k->list_kind, schema_api_version(k), (long long) list_rv);
        if (tok) {
            dbuf_printf(&b, ",\"continue\":\"%s\"", tok);
        }
        dbuf_puts(&b, "},\"items\":[");
    }
    free(tok);
    if (c.items.len) {
        dbuf_append(&b, c.items.data, c.items.len);
    }
    dbuf_puts(&b, "]}");
    size_t len;
    char *text = dbuf_steal(&b, &len);
    as_respond_text(req, 200, fmt, text, len);
    dbuf_free(&c.items);
    free(c.last_key);
    free(prefix);
    as_filter_free(&filter);
    return;
fail:
    dbuf_free(&c.items);
    free(c.last_key);
    free(prefix);
    as_filter_free(&filter);
    as_respond_error(req, &ae);
}

static void
as_handle_get(struct apiserver *as, struct http_request *req,
              const struct as_route *rt, const struct as_format *fmt)
{
    struct as_error ae = {0};
    char *key = as_key(rt->k, rt->ns, rt->name);
    struct store_kv kv = {0};
    struct dpf_error e = {0};
    int r = store_get(as->store, key, &kv, &e);
    free(key);
    if (r == -ENOENT) {
        as_error_not_found(&ae, rt->k, rt->name);
        as_respond_error(req, &ae);
        return;
    }
    if (r < 0) {
        as_error_from(&ae, &e, 500, "InternalError");
        as_respond_error(req, &ae);
        return;
    }
    if (fmt->out == AS_OUT_TABLE) {
        json_t *obj = as_load_object(kv.value, kv.len, kv.rv);
        store_kv_free(&kv);
        json_t *t =
            json_pack("{s:s,s:s,s:{s:s},s:o,s:[o]}", "kind", "Table",
                      "apiVersion", fmt->table_api, "metadata",
                      "resourceVersion", as_md_str(obj, "resourceVersion"),
                      "columnDefinitions", as_table_columns(rt->k), "rows",
                      as_table_row(rt->k, obj, fmt->include, time_wall_ns()));
        as_respond_json(req, 200, fmt, t);
        json_decref(t);
        json_decref(obj);
        return;
    }
    size_t len;
    char *text = as_inject_rv(kv.value, kv.len, kv.rv, &len);
    store_kv_free(&kv);
    as_respond_text(req, 200, fmt, text, len);
}

static bool
as_dry_run(struct http_request *req, struct as_error *ae, bool *bad)
{
    const char *d = http_request_query(req, "dryRun");
    *bad = false;
    if (!d || !*d) {
        return false;
    }
    if (strcmp(d, "All") != 0) {
        as_error_set(ae, 400, "BadRequest",
                     "Invalid dry run value: %s (only All is supported)", d);
        *bad = true;
        return false;
    }
    return true;
}

static void
as_handle_create(struct apiserver *as, struct http_request *req,
                 const struct as_route *rt, const struct as_format *fmt)
{
    struct as_error ae = {0};
    const struct schema_kind *k = rt->k;
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
    if (as_admit_create(k, rt->ns, body, blen,
                        http_request_header(req, "Content-Type"),
                        http_request_query(req, "fieldValidation"), &obj,
                        &warnings, &ae) < 0) {
        goto fail;
    }
    if (as_check_namespace(as, k, as_md_str(obj, "namespace"),
                           as_md_str(obj, "name"), &ae) < 0) {
        goto fail;
    }
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

static void
as_respond_update(struct http_request *req, int r, const struct as_format *fmt,
                  json_t *warnings, char *text, size_t len,
                  const struct as_error *ae)
{
    if (r < 0) {
        free(text);
        json_decref(warnings);
        as_respond_error(req, ae);
        return;
    }
    as_add_warnings(req, warnings);
    json_decref(warnings);
    as_respond_text(req, 200, fmt, text, len);
}

static void
as_handle_update(struct apiserver *as, struct http_request *req,
                 const struct as_route *rt, const struct as_format *fmt)
{
    struct as_error ae = {0};
    size_t blen;
    const char *body = http_request_body(req, &blen);
    const char *fv = http_request_query(req, "fieldValidation");
    bool bad;
    bool dry = as_dry_run(req, &ae, &bad);
    json_t *obj = NULL, *warnings = NULL;
    char *text = NULL;
    size_t len = 0;
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
    bool finalize = rt->sub && !strcmp(rt->sub, "finalize");
    bool status_only = rt->sub != NULL && !finalize;
    int r = as_update_loop(as, rt->k, rt->ns, rt->name, status_only, mode, dry,
                           finalize ? as_produce_finalize : as_produce_put, obj,
                           &warnings, &text, &len, &ae);
    json_decref(obj);
    as_respond_update(req, r, fmt, warnings, text, len, &ae);
}

/* Server-side apply of an object that does not exist yet: create it. */
static void
as_apply_create(struct apiserver *as, struct http_request *req,
                const struct as_route *rt, const struct as_format *fmt,
                json_t *patch, bool dry)
{
    struct as_error ae = {0};
    json_t *warnings = NULL;
    char *text = NULL;
    size_t len;
    const char *fv = http_request_query(req, "fieldValidation");
    json_t *md = as_md(patch);
    if (json_is_object(md)) {
        const char *n = json_string_value(json_object_get(md, "name"));
        if (n && strcmp(n, rt->name) != 0) {
            as_error_set(&ae, 400, "BadRequest",
                         "the name of the object (%s) does not match the "
                         "name on the URL (%s)",
                         n, rt->name);
            goto fail;
        }
        json_object_set_new(md, "name", json_string(rt->name));
    } else {
        json_object_set_new(patch, "metadata",
                            json_pack("{s:s}", "name", rt->name));
    }
    if (as_prepare_create(rt->k, rt->ns, patch, as_unknown_mode(fv), &warnings,
                          &ae) < 0 ||
        as_check_namespace(as, rt->k, rt->ns, rt->name, &ae) < 0 ||
        as_store_create(as, rt->k, patch, dry, &text, &len, &ae) < 0) {
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

static void
as_handle_patch(struct apiserver *as, struct http_request *req,
                const struct as_route *rt, const struct as_format *fmt)
{
    struct as_error ae = {0};
    size_t blen;
    const char *body = http_request_body(req, &blen);
    const char *ct = http_request_header(req, "Content-Type");
    const char *fv = http_request_query(req, "fieldValidation");
    bool bad;
    bool dry = as_dry_run(req, &ae, &bad);
    struct as_patch p = {0};
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
    } else if (as_media_is(ct, "application/strategic-merge-patch+json")) {
        p.type = rt->k->group[0] ? AS_PATCH_MERGE : AS_PATCH_STRATEGIC;
    } else if (as_media_is(ct, "application/apply-patch+yaml")) {
        p.type = AS_PATCH_APPLY;
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
        if (as_check_type(rt->k, p.patch, &ae) < 0) {
            json_decref(p.patch);
            as_respond_error(req, &ae);
            return;
        }
        /* Apply never sets status on the main resource. */
        if (!rt->sub && rt->k->has_status) {
            json_object_del(p.patch, "status");
        }
        char *key = as_key(rt->k, rt->ns, rt->name);
        struct store_kv kv = {0};
        int r = store_get(as->store, key, &kv, NULL);
        free(key);
        if (r == -ENOENT && !rt->sub) {
            as_apply_create(as, req, rt, fmt, p.patch, dry);
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
    json_t *warnings = NULL;
    char *text = NULL;
    size_t len = 0;
    int r =
        as_update_loop(as, rt->k, rt->ns, rt->name, rt->sub != NULL, mode, dry,
                       as_produce_patch, &p, &warnings, &text, &len, &ae);
    json_decref(p.patch);
    as_respond_update(req, r, fmt, warnings, text, len, &ae);
}

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

static void
as_handle_delete(struct apiserver *as, struct http_request *req,
                 const struct as_route *rt, const struct as_format *fmt)
{
    struct as_error ae = {0};
    struct as_delete_opts o;
    json_t *body = NULL, *out = NULL;
    if (as_delete_options(req, &body, &o, &ae) < 0 ||
        as_delete_object(as, rt->k, rt->ns, rt->name, &o, &out, &ae) < 0) {
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

static void
as_handle_deletecollection(struct apiserver *as, struct http_request *req,
                           const struct as_route *rt,
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
    if (as_filter_init(&filter, rt->k, http_request_query(req, "labelSelector"),
                       http_request_query(req, "fieldSelector"), &ae) < 0) {
        json_decref(body);
        as_respond_error(req, &ae);
        return;
    }
    struct as_collect_ctx c = {&filter, json_array()};
    char *prefix = as_prefix(rt->k, rt->ns);
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
        const char *ns = json_string_value(json_array_get(pair, 0));
        if (as_delete_object(as, rt->k, *ns ? ns : NULL,
                             json_string_value(json_array_get(pair, 1)), &o,
                             &out, &e2) == 0 &&
            out) {
            json_array_append_new(items, out);
        } else {
            json_decref(out);
        }
    }
    json_t *list =
        json_pack("{s:s,s:s,s:{},s:o}", "kind", rt->k->list_kind, "apiVersion",
                  schema_api_version(rt->k), "metadata", "items", items);
    as_respond_json(req, 200, fmt, list);
    json_decref(list);
    json_decref(c.names);
    json_decref(body);
    as_filter_free(&filter);
}

/* Query parameters the API server (and server.c's health checks) read.
 * Parameters it never looks at cannot reach a response, so they are not
 * checked; a new lookup belongs here too. */
static const char *const as_text_params[] = {
    "watch",
    "labelSelector",
    "fieldSelector",
    "limit",
    "continue",
    "resourceVersion",
    "timeoutSeconds",
    "allowWatchBookmarks",
    "includeObject",
    "dryRun",
    "fieldValidation",
    "propagationPolicy",
    "gracePeriodSeconds",
    "orphanDependents",
    "verbose",
};

/* Request headers the API server reads. */
static const char *const as_text_headers[] = {
    "Accept",
    "Content-Type",
};

int
as_check_request_text(struct http_request *req, const char *path,
                      struct as_error *ae)
{
    int seg = 0;
    const char *p = path;
    while (*p) {
        while (*p == '/') {
            p++;
        }
        if (!*p) {
            break;
        }
        size_t n = strcspn(p, "/");
        seg++;
        if (!utf8_valid(p, n)) {
            char *shown = utf8_sanitize(path, strlen(path), NULL);
            as_error_set(ae, 400, "BadRequest",
                         "invalid request path \"%s\": path segment %d is "
                         "not valid UTF-8",
                         shown, seg);
            free(shown);
            return -EINVAL;
        }
        p += n;
    }
    for (size_t i = 0; i < ARRAY_SIZE(as_text_params); i++) {
        const char *v = http_request_query(req, as_text_params[i]);
        if (v && !utf8_valid(v, strlen(v))) {
            as_error_set(ae, 400, "BadRequest",
                         "invalid query parameter %s: the value is not "
                         "valid UTF-8",
                         as_text_params[i]);
            return -EINVAL;
        }
    }
    for (size_t i = 0; i < ARRAY_SIZE(as_text_headers); i++) {
        const char *v = http_request_header(req, as_text_headers[i]);
        if (v && !utf8_valid(v, strlen(v))) {
            as_error_set(ae, 400, "BadRequest",
                         "invalid %s header: the value is not valid UTF-8",
                         as_text_headers[i]);
            return -EINVAL;
        }
    }
    return 0;
}

static void
as_method_not_allowed(struct http_request *req, const char *method)
{
    struct as_error ae = {0};
    as_error_set(&ae, 405, "MethodNotAllowed",
                 "the server does not allow this method on the requested "
                 "resource");
    as_respond_error(req, &ae);
}

void
apiserver_handle(void *apiserver, struct http_request *req)
{
    struct apiserver *as = apiserver;
    const char *method = http_request_method(req);
    const char *path = http_request_path(req);
    struct as_error bad = {0};
    if (as_check_request_text(req, path, &bad) < 0) {
        as_respond_error(req, &bad);
        return;
    }
    if (as_discovery_handle(as, req, method, path)) {
        return;
    }
    struct as_route rt;
    if (as_route_parse(path, &rt) < 0) {
        as_respond_generic_404(req);
        return;
    }
    if (rt.sub && strcmp(rt.sub, "status") != 0 &&
        !(as_is_namespace_kind(rt.k) && !strcmp(rt.sub, "finalize"))) {
        as_respond_generic_404(req);
        as_route_free(&rt);
        return;
    }
    if (rt.sub && !rt.k->has_status && !strcmp(rt.sub, "status")) {
        as_respond_generic_404(req);
        as_route_free(&rt);
        return;
    }
    bool is_get = !strcmp(method, "GET");
    bool watch = is_get && as_query_bool(req, "watch");
    struct as_format fmt;
    if (!as_format_negotiate(req, is_get && !rt.sub, &fmt)) {
        struct as_error ae = {0};
        as_error_set(&ae, 406, "NotAcceptable",
                     "only the following media types are accepted: "
                     "application/json, application/yaml, "
                     "application/json;as=Table;v=v1;g=meta.k8s.io");
        as_respond_error(req, &ae);
        as_route_free(&rt);
        return;
    }
    if (!rt.name) {
        if (watch) {
            as_watch_serve(as, req, rt.k, rt.ns, NULL, &fmt);
        } else if (is_get) {
            as_handle_list(as, req, &rt, &fmt);
        } else if (!strcmp(method, "POST")) {
            as_handle_create(as, req, &rt, &fmt);
        } else if (!strcmp(method, "DELETE")) {
            as_handle_deletecollection(as, req, &rt, &fmt);
        } else {
            as_method_not_allowed(req, method);
        }
    } else if (watch) {
        as_watch_serve(as, req, rt.k, rt.ns, rt.name, &fmt);
    } else if (is_get) {
        as_handle_get(as, req, &rt, &fmt);
    } else if (!strcmp(method, "PUT")) {
        as_handle_update(as, req, &rt, &fmt);
    } else if (!strcmp(method, "PATCH")) {
        as_handle_patch(as, req, &rt, &fmt);
    } else if (!strcmp(method, "DELETE") && !rt.sub) {
        as_handle_delete(as, req, &rt, &fmt);
    } else {
        as_method_not_allowed(req, method);
    }
    as_route_free(&rt);
}

/* ------------------------------------------------------------------ */
/* lifecycle */

static void
as_store_hook(void *arg, enum store_event_type type, const char *key,
              const char *value, size_t len, int64_t rv)
{
    struct apiserver *as = arg;
    watch_cache_store_hook(as->wc, type, key, value, len, rv);
    as_ns_cache_event(as, type, key, value, len);
    if (as->gc) {
        as_gc_note(as->gc, type, key, value, len);
    }
}

static int
as_ensure_namespace(struct apiserver *as, const char *name,
                    struct dpf_error *err)
{
    const struct schema_kind *nsk =
        schema_find_resource("", "v1", "namespaces");
    if (!nsk) {
        return 0;
    }
    char *key = as_key(nsk, NULL, name);
    struct store_kv kv = {0};
    int r = store_get(as->store, key, &kv, err);
    free(key);
    if (r == 0) {
        store_kv_free(&kv);
        return 0;
    }
    if (r != -ENOENT) {
        return r;
    }
    json_t *obj = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind",
                            "Namespace", "metadata", "name", name);
    struct as_error ae = {0};
    char *text = NULL;
    size_t len;
    r = as_prepare_create(nsk, NULL, obj, SCHEMA_UNKNOWN_PRUNE, NULL, &ae);
    if (r == 0) {
        r = as_store_create(as, nsk, obj, false, &text, &len, &ae);
    }
    json_decref(obj);
    free(text);
    if (r < 0 && r != -EEXIST) {
        if (err) {
            *err = ae.e;
        }
        return r;
    }
    return 0;
}

struct apiserver *
apiserver_create(struct store *store, struct watch_cache *wc,
                 const struct apiserver_config *cfg, struct dpf_error *err)
{
    struct apiserver *as = xcalloc(1, sizeof(*as));
    as->store = store;
    as->wc = wc;
    if (cfg) {
        as->cfg = *cfg;
    }
    if (!as->cfg.max_body) {
        as->cfg.max_body = AS_MAX_BODY;
    }
    if (!as->cfg.bookmark_interval_ms) {
        as->cfg.bookmark_interval_ms = 60000;
    }
    if (!as->cfg.watch_timeout_s) {
        as->cfg.watch_timeout_s = 1800;
    }
    if (!as->cfg.watch_buffer_bytes) {
        as->cfg.watch_buffer_bytes = AS_WATCH_BUFFER_BYTES;
    }
    if (!as->cfg.watch_buffer_total_bytes) {
        as->cfg.watch_buffer_total_bytes = AS_WATCH_BUFFER_TOTAL_BYTES;
    }
    pthread_mutex_init(&as->ns_lock, NULL);
    as->ns_cache = json_object();
    as->gc = as_gc_create(as, !as->cfg.no_gc_thread);
    store_set_event_hook(store, as_store_hook, as);
    as->hub = as_hub_create(as);
    if (!as->cfg.no_default_namespaces) {
        for (size_t i = 0; i < ARRAY_SIZE(as_default_namespaces); i++) {
            if (as_ensure_namespace(as, as_default_namespaces[i], err) < 0) {
                apiserver_destroy(as);
                return NULL;
            }
        }
    }
    as->ready = true;
    return as;
}

void
apiserver_destroy(struct apiserver *as)
{
    if (!as) {
        return;
    }
    store_set_event_hook(as->store, watch_cache_store_hook, as->wc);
    as_hub_destroy(as->hub);
    as_gc_destroy(as->gc);
    json_decref(as->ns_cache);
    pthread_mutex_destroy(&as->ns_lock);
    free(as);
}

int
apiserver_gc_run(struct apiserver *as)
{
    return as_gc_pass(as->gc);
}
