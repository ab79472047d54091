/* json-text: see json-text.h. */
#include "lib/codecs/json-text.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "lib/base/util.h"

#define NOT_FOUND SIZE_MAX

static size_t
skip_ws(const char *s, size_t len, size_t i)
{
    while (i < len &&
           (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r')) {
        i++;
    }
    return i;
}

/* s[i] is '"': the index past the closing quote, or NOT_FOUND. */
static size_t
skip_string(const char *s, size_t len, size_t i)
{
    for (i++; i < len; i++) {
        if (s[i] == '\\') {
            i++;
        } else if (s[i] == '"') {
            return i + 1;
        }
    }
    return NOT_FOUND;
}

/* s[i] starts a value: the index past it, or NOT_FOUND. */
static size_t
skip_value(const char *s, size_t len, size_t i)
{
    if (i >= len) {
        return NOT_FOUND;
    }
    if (s[i] == '"') {
        return skip_string(s, len, i);
    }
    if (s[i] != '{' && s[i] != '[') {
        while (i < len && !strchr(",}] \t\r\n", s[i])) {
            i++;
        }
        return i;
    }
    size_t depth = 0;
    while (i < len) {
        char c = s[i];
        if (c == '"') {
            i = skip_string(s, len, i);
            if (i == NOT_FOUND) {
                return NOT_FOUND;
            }
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0) {
                return i + 1;
            }
        }
        i++;
    }
    return NOT_FOUND;
}

bool
json_text_member(const char *s, size_t len, const char *name, size_t *start,
                 size_t *end)
{
    size_t nlen = strlen(name);
    size_t i = skip_ws(s, len, 0);
    if (i >= len || s[i] != '{') {
        return false;
    }
    i++;
    for (;;) {
        i = skip_ws(s, len, i);
        if (i >= len || s[i] != '"') {
            return false; /* '}' (no such member) or not JSON */
        }
        size_t ks = i + 1;
        i = skip_string(s, len, i);
        if (i == NOT_FOUND) {
            return false;
        }
        size_t klen = i - 1 - ks;
        i = skip_ws(s, len, i);
        if (i >= len || s[i] != ':') {
            return false;
        }
        size_t vs = skip_ws(s, len, i + 1);
        i = skip_value(s, len, vs);
        if (i == NOT_FOUND || i == vs) {
            return false;
        }
        if (klen == nlen && !memcmp(s + ks, name, nlen)) {
            *start = vs;
            *end = i;
            return true;
        }
        i = skip_ws(s, len, i);
        if (i >= len || s[i] != ',') {
            return false;
        }
        i++;
    }
}

json_t *
json_text_load_path(const char *s, size_t len, const char *const *path,
                    size_t n)
{
    size_t off = 0, end = len;
    for (size_t i = 0; i < n; i++) {
        size_t a, b;
        if (!json_text_member(s + off, end - off, path[i], &a, &b)) {
            return NULL;
        }
        end = off + b;
        off += a;
    }
    return json_loadb(s + off, end - off, JSON_DECODE_ANY, NULL);
}

bool
json_text_set(struct dbuf *b, const char *s, size_t len, const char *obj_name,
              const char *key, const char *value)
{
    size_t vs, ve, ks, ke;
    if (!json_text_member(s, len, obj_name, &vs, &ve) || s[vs] != '{') {
        return false;
    }
    if (json_text_member(s + vs, ve - vs, key, &ks, &ke)) {
        dbuf_append(b, s, vs + ks);
        dbuf_puts(b, value);
        dbuf_append(b, s + vs + ke, len - vs - ke);
        return true;
    }
    size_t first = skip_ws(s, len, vs + 1);
    bool empty = first < len && s[first] == '}';
    dbuf_append(b, s, vs + 1);
    dbuf_printf(b, "\"%s\":%s%s", key, value, empty ? "" : ",");
    dbuf_append(b, s + vs + 1, len - vs - 1);
    return true;
}

bool
json_text_set_rv(struct dbuf *b, const char *s, size_t len, int64_t rv)
{
    char quoted[32];
    snprintf(quoted, sizeof quoted, "\"%" PRId64 "\"", rv);
    if (json_text_set(b, s, len, "metadata", "resourceVersion", quoted)) {
        return true;
    }
    size_t open = skip_ws(s, len, 0);
    size_t vs, ve;
    if (open >= len || s[open] != '{' ||
        json_text_member(s, len, "metadata", &vs, &ve)) {
        return false; /* not an object, or metadata is not an object */
    }
    size_t first = skip_ws(s, len, open + 1);
    bool empty = first < len && s[first] == '}';
    dbuf_append(b, s, open + 1);
    dbuf_printf(b, "\"metadata\":{\"resourceVersion\":%s}%s", quoted,
                empty ? "" : ",");
    dbuf_append(b, s + open + 1, len - open - 1);
    return true;
}
