/* schema-errors: the causes the engine and the kinds' rules add to a
 * struct dpf_error, and the Kubernetes-style "<Kind> "<name>" is invalid"
 * message made from them. Values are rendered as kube-apiserver renders
 * them (strings quoted Go-style, cut on a character boundary). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "api/schema-engine.h"
#include "lib/base/util.h"

const char *
schema_json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
    default:
        return "null";
    }
}

void
schema_value_str(const json_t *v, char *buf, size_t size)
{
    if (!v) {
        snprintf(buf, size, "null");
        return;
    }
    switch (json_typeof(v)) {
    case JSON_STRING: {
        /* Go %q-like: quote and escape quotes/backslashes/controls. */
        const char *s = json_string_value(v);
        size_t j = 0;
        if (size < 3) {
            buf[0] = '\0';
            return;
        }
        buf[j++] = '"';
        for (; *s && j + 5 < size; s++) {
            unsigned char c = (unsigned char) *s;
            if (c == '"' || c == '\\') {
                buf[j++] = '\\';
                buf[j++] = (char) c;
            } else if (c == '\n') {
                buf[j++] = '\\';
                buf[j++] = 'n';
            } else if (c < 0x20) {
                j += (size_t) snprintf(buf + j, size - j, "\\x%02x", c);
            } else {
                buf[j++] = (char) c;
            }
        }
        /* Stopped inside a multibyte character: drop the part copied
         * (its bytes were copied one for one), so the text stays UTF-8. */
        while (*s && j > 1 && ((unsigned char) *s & 0xc0) == 0x80) {
            s--;
            j--;
        }
        if (*s && j + 4 < size) {
            buf[j++] = '.';
            buf[j++] = '.';
            buf[j++] = '.';
        }
        buf[j++] = '"';
        buf[j] = '\0';
        return;
    }
    case JSON_INTEGER:
        snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return;
    case JSON_REAL:
        snprintf(buf, size, "%g", json_real_value(v));
        return;
    case JSON_TRUE:
        snprintf(buf, size, "true");
        return;
    case JSON_FALSE:
        snprintf(buf, size, "false");
        return;
    case JSON_NULL:
        snprintf(buf, size, "\"null\"");
        return;
    default:
        snprintf(buf, size, "\"%s\"", schema_json_type_name(v));
        return;
    }
}

static void __attribute__((format(printf, 5, 0)))
add_causev(struct dpf_error *err, const char *type, const char *path,
           const char *prefix, const char *fmt, va_list ap)
{
    char detail[224];
    detail[0] = '\0';
    if (fmt) {
        vsnprintf(detail, sizeof detail, fmt, ap);
    }
    dpf_error_add_cause(err, type, path, "%s%s%s", prefix,
                        detail[0] && prefix[0] ? ": " : "", detail);
}

void
schema_err_invalid(struct dpf_error *err, const char *path, const json_t *v,
                   const char *fmt, ...)
{
    char val[96], prefix[112];
    schema_value_str(v, val, sizeof val);
    snprintf(prefix, sizeof prefix, "Invalid value: %s", val);
    va_list ap;
    va_start(ap, fmt);
    add_causev(err, DPF_CAUSE_INVALID, path, prefix, fmt, ap);
    va_end(ap);
}

void
schema_err_required(struct dpf_error *err, const char *path, const char *fmt,
                    ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_causev(err, DPF_CAUSE_REQUIRED, path, "Required value", fmt, ap);
    va_end(ap);
}

void
schema_err_forbidden(struct dpf_error *err, const char *path, const char *fmt,
                     ...)
{
    va_list ap;
    va_start(ap, fmt);
    add_causev(err, DPF_CAUSE_FORBIDDEN, path, "Forbidden", fmt, ap);
    va_end(ap);
}

void
schema_err_duplicate(struct dpf_error *err, const char *path, const json_t *v)
{
    char val[96];
    schema_value_str(v, val, sizeof val);
    dpf_error_add_cause(err, DPF_CAUSE_DUPLICATE, path, "Duplicate value: %s",
                        val);
}

void
schema_finish_invalid(const struct schema_kind *k, const json_t *obj,
                      struct dpf_error *err, int invalid_code)
{
    const struct kind_rt *rt = schema_kind_rt(k);
    const char *name = schema_get_str(obj, "metadata.name");
    if (!name || !*name) {
        name = schema_get_str(obj, "metadata.generateName");
    }
    struct dbuf b;
    dbuf_init(&b);
    dbuf_printf(&b, "%s \"%s\" is invalid: ", rt ? rt->qualified : k->kind,
                name ? name : "");
    if (err->n_causes > 1) {
        dbuf_puts(&b, "[");
    }
    for (size_t i = 0; i < err->n_causes; i++) {
        if (i) {
            dbuf_puts(&b, ", ");
        }
        if (err->causes[i].field[0]) {
            dbuf_printf(&b, "%s: ", err->causes[i].field);
        }
        dbuf_puts(&b, err->causes[i].message);
    }
    if (err->n_causes > 1) {
        dbuf_puts(&b, "]");
    }
    int code = invalid_code ? invalid_code : 422;
    dpf_error_set(err, code, code == 400 ? "BadRequest" : "Invalid", "%s",
                  b.data ? b.data : "");
    dbuf_free(&b);
}
