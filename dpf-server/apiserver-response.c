/* apiserver-response: errors and responses.
 *
 * Every error is a Kubernetes Status object built by lib/kube/kube-status
 * (the builder the clients' decoder mirrors): messages are cut on a
 * character boundary when they are set, library text is repaired when it
 * is taken over, and the builder repairs whatever is still not UTF-8, so
 * every answer is valid JSON; a document that still cannot be encoded is
 * answered with a 500 Status. Documents go out as JSON or, when the
 * client asked for it, YAML. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpf-server/apiserver-private.h"
#include "lib/codecs/yamljson.h"
#include "lib/net/http-server.h"

/* Bytes of a field path quoted in a Warning header. */
#define AS_WARNING_PATH_MAX 256

/* ------------------------------------------------------------------ */
/* errors */

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

void
as_error_details(struct as_error *ae, const char *name, const char *group,
                 const char *kind)
{
    kube_status_details_set(&ae->d, name, group, kind);
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

void
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

void
as_error_precondition(struct as_error *ae, const struct schema_kind *k,
                      const char *name, const char *what, const char *want,
                      const char *have)
{
    char *msg = xasprintf("Precondition failed: %s in precondition: %s, %s "
                          "in object meta: %s",
                          what, want, what, have);
    as_error_conflict(ae, k, name, msg);
    free(msg);
}

void
as_error_stale(struct as_error *ae, const struct schema_kind *k,
               const char *name)
{
    as_error_conflict(ae, k, name,
                      "the object has been modified; please apply your "
                      "changes to the latest version and try again");
}

void
as_error_from(struct as_error *ae, const struct dpf_error *e, int def_code,
              const char *def_reason)
{
    ae->e = *e;
    kube_status_clean(&ae->e);
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

void
as_error_store(struct as_error *ae, const struct schema_kind *k,
               const char *name, int r, const struct dpf_error *e)
{
    if (r == -ENOENT) {
        as_error_not_found(ae, k, name);
    } else {
        as_error_from(ae, e, 500, "InternalError");
    }
}

/* ------------------------------------------------------------------ */
/* responses */

char *
as_status_text(const struct as_error *ae, size_t *len)
{
    return kube_status_dump(&ae->e, &ae->d, len);
}

/* A document that could not be encoded (cannot happen with the builders
 * here; kept so that no response is ever empty or a crash). */
static void
as_respond_unencodable(struct http_request *req)
{
    struct as_error ae = {0};
    as_error_set(&ae, 500, "InternalError",
                 "the response could not be encoded");
    as_respond_error(req, &ae);
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

void
as_respond_generic_404(struct http_request *req)
{
    struct as_error ae = {0};
    as_error_set(&ae, 404, "NotFound",
                 "the server could not find the requested resource");
    as_respond_error(req, &ae);
}

/* ------------------------------------------------------------------ */
/* warnings */

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

void
as_add_warnings(struct http_request *req, const json_t *warnings)
{
    /* The first 21 fields only: a body with thousands of unknown fields
     * must not make the response headers grow without bound. */
    for (size_t i = 0; i < json_array_size(warnings) && i <= 20; i++) {
        const char *path = json_string_value(json_array_get(warnings, i));
        if (path) {
            char *hdr = as_warning_value(path);
            http_response_header(req, "Warning", hdr);
            free(hdr);
        }
    }
}
