/* jsonpatch: see jsonpatch.h.
 *
 * JSON Patch works on a deep copy of the target; only when every
 * operation succeeded is the copy's content moved into the caller's value,
 * so a failing patch never leaves a half-applied object behind. */
#include "lib/codecs/jsonpatch.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"
#include "lib/codecs/yamljson.h"

/* Limits against amplification: "copy" can double a document per
 * operation, so the nodes copied per patch are capped (as the
 * accumulated-copy-size limit of the Kubernetes API server does), and so
 * is the number of operations. */
#define JSONPATCH_MAX_OPS 10000
#define JSONPATCH_MAX_COPY_NODES 200000

/* ---- RFC 7386 merge patch ---- */

/* A copy of patch with null members removed (what merging it into an
 * empty object gives). */
static json_t *
merge_copy(const json_t *patch)
{
    if (!json_is_object(patch)) {
        return json_deep_copy(patch);
    }
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *) patch, k, v)
    {
        if (!json_is_null(v)) {
            json_object_set_new(out, k, merge_copy(v));
        }
    }
    return out;
}

static void
merge_into(json_t *target, const json_t *patch)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *) patch, k, v)
    {
        if (json_is_null(v)) {
            json_object_del(target, k);
            continue;
        }
        json_t *t = json_object_get(target, k);
        if (json_is_object(v) && json_is_object(t)) {
            merge_into(t, v);
        } else {
            json_object_set_new(target, k, merge_copy(v));
        }
    }
}

int
jsonpatch_merge(json_t *target, const json_t *patch, struct dpf_error *err)
{
    if (!json_is_object(patch)) {
        dpf_error_set(err, 400, "BadRequest",
                      "merge patch: the patch must be a JSON object");
        return -EINVAL;
    }
    if (!json_is_object(target)) {
        dpf_error_set(err, 400, "BadRequest",
                      "merge patch: the target must be a JSON object");
        return -EINVAL;
    }
    merge_into(target, patch);
    return 0;
}

/* ---- RFC 6901 pointers ---- */

struct jp_pointer {
    char **tok; /* unescaped reference tokens (owned) */
    size_t n;   /* number of tokens; 0 = whole document */
};

static void
jp_pointer_free(struct jp_pointer *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->tok[i]);
    }
    free(p->tok);
    p->tok = NULL;
    p->n = 0;
}

/* 0 or -EINVAL (no leading '/', bad ~ escape). */
static int
jp_pointer_parse(const char *s, struct jp_pointer *p)
{
    p->tok = NULL;
    p->n = 0;
    if (*s == '\0') {
        return 0;
    }
    if (*s != '/') {
        return -EINVAL;
    }
    size_t cap = 0;
    while (*s == '/') {
        s++;
        const char *end = strchr(s, '/');
        size_t len = end ? (size_t) (end - s) : strlen(s);
        char *t = xmalloc(len + 1);
        size_t o = 0;
        for (size_t i = 0; i < len; i++) {
            if (s[i] != '~') {
                t[o++] = s[i];
            } else if (i + 1 < len && (s[i + 1] == '0' || s[i + 1] == '1')) {
                t[o++] = s[i + 1] == '0' ? '~' : '/';
                i++;
            } else {
                free(t);
                jp_pointer_free(p);
                return -EINVAL;
            }
        }
        t[o] = '\0';
        if (p->n == cap) {
            cap = cap ? cap * 2 : 8;
            p->tok = xrealloc(p->tok, cap * sizeof *p->tok);
        }
        p->tok[p->n++] = t;
        s += len;
    }
    return 0;
}

/* Array index token: decimal without leading zeros. -1 if not one. */
static long long
jp_index(const char *t)
{
    if (!*t || (t[0] == '0' && t[1]) || strlen(t) > 15) {
        return -1;
    }
    long long v = 0;
    for (; *t; t++) {
        if (*t < '0' || *t > '9') {
            return -1;
        }
        v = v * 10 + (*t - '0');
    }
    return v;
}

/* Resolve the first n tokens of p from root. NULL if absent. */
static json_t *
jp_get(json_t *root, const struct jp_pointer *p, size_t n)
{
    json_t *cur = root;
    for (size_t i = 0; i < n && cur; i++) {
        if (json_is_object(cur)) {
            cur = json_object_get(cur, p->tok[i]);
        } else if (json_is_array(cur)) {
            long long idx = jp_index(p->tok[i]);
            cur = idx < 0 ? NULL : json_array_get(cur, (size_t) idx);
        } else {
            cur = NULL;
        }
    }
    return cur;
}

/* ---- RFC 6902 ---- */

struct jp_ctx {
    json_t *root;          /* the working copy (owned) */
    size_t index;          /* operation index, for messages */
    const char *op;        /* operation name */
    const char *path;      /* operation path */
    struct dpf_error *err; /* where errors go */
    size_t copied;         /* nodes copied by "copy" so far */
};

static int jp_fail(struct jp_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
jp_fail(struct jp_ctx *c, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    dpf_error_set(c->err, 400, "BadRequest",
                  "json patch operation %zu (%s %.200s): %s", c->index,
                  c->op ? c->op : "?", c->path ? c->path : "", msg);
    return -EINVAL;
}

/* Numbers compare by value (1 == 1.0), everything else structurally. */
static bool
jp_equal(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) {
        if (json_is_integer(a) && json_is_integer(b)) {
            return json_integer_value(a) == json_integer_value(b);
        }
        return json_number_value(a) == json_number_value(b);
    }
    if (json_typeof(a) != json_typeof(b)) {
        return false;
    }
    if (json_is_object(a)) {
        if (json_object_size(a) != json_object_size(b)) {
            return false;
        }
        const char *k;
        json_t *v;
        json_object_foreach((json_t *) a, k, v)
        {
            json_t *w = json_object_get(b, k);
            if (!w || !jp_equal(v, w)) {
                return false;
            }
        }
        return true;
    }
    if (json_is_array(a)) {
        if (json_array_size(a) != json_array_size(b)) {
            return false;
        }
        for (size_t i = 0; i < json_array_size(a); i++) {
            if (!jp_equal(json_array_get(a, i), json_array_get(b, i))) {
                return false;
            }
        }
        return true;
    }
    return json_equal(a, b);
}

/* Add value (reference stolen) at p. */
static int
jp_add(struct jp_ctx *c, const struct jp_pointer *p, json_t *value)
{
    if (p->n == 0) {
        json_decref(c->root);
        c->root = value;
        return 0;
    }
    json_t *parent = jp_get(c->root, p, p->n - 1);
    const char *last = p->tok[p->n - 1];
    if (json_is_object(parent)) {
        json_object_set_new(parent, last, value);
        return 0;
    }
    if (json_is_array(parent)) {
        if (!strcmp(last, "-")) {
            json_array_append_new(parent, value);
            return 0;
        }
        long long idx = jp_index(last);
        if (idx < 0 || (size_t) idx > json_array_size(parent)) {
            json_decref(value);
            return jp_fail(c, "array index \"%.50s\" out of range", last);
        }
        json_array_insert_new(parent, (size_t) idx, value);
        return 0;
    }
    json_decref(value);
    return jp_fail(c, "parent of the path does not exist");
}

/* Remove the value at p; with out, hand it to the caller. */
static int
jp_remove(struct jp_ctx *c, const struct jp_pointer *p, json_t **out)
{
    if (p->n == 0) {
        return jp_fail(c, "cannot remove the whole document");
    }
    json_t *parent = jp_get(c->root, p, p->n - 1);
    const char *last = p->tok[p->n - 1];
    json_t *v = NULL;
    if (json_is_object(parent)) {
        v = json_object_get(parent, last);
        if (v) {
            json_incref(v);
            json_object_del(parent, last);
        }
    } else if (json_is_array(parent)) {
        long long idx = jp_index(last);
        v = idx < 0 ? NULL : json_array_get(parent, (size_t) idx);
        if (v) {
            json_incref(v);
            json_array_remove(parent, (size_t) idx);
        }
    }
    if (!v) {
        return jp_fail(c, "path does not exist");
    }
    if (out) {
        *out = v;
    } else {
        json_decref(v);
    }
    return 0;
}

static int
jp_one(struct jp_ctx *c, const json_t *op)
{
    if (!json_is_object(op)) {
        return jp_fail(c, "operation must be an object");
    }
    c->op = json_string_value(json_object_get(op, "op"));
    c->path = json_string_value(json_object_get(op, "path"));
    if (!c->op) {
        return jp_fail(c, "missing \"op\" string");
    }
    if (!c->path) {
        return jp_fail(c, "missing \"path\" string");
    }
    struct jp_pointer p, from = {0};
    if (jp_pointer_parse(c->path, &p) < 0) {
        return jp_fail(c, "invalid JSON pointer");
    }
    const json_t *value = json_object_get(op, "value");
    const char *from_s = json_string_value(json_object_get(op, "from"));
    int rc = 0;
    bool need_value = !strcmp(c->op, "add") || !strcmp(c->op, "replace") ||
                      !strcmp(c->op, "test");
    bool need_from = !strcmp(c->op, "move") || !strcmp(c->op, "copy");
    if (need_value && !value) {
        rc = jp_fail(c, "missing \"value\"");
        goto out;
    }
    if (need_from) {
        if (!from_s) {
            rc = jp_fail(c, "missing \"from\" string");
            goto out;
        }
        if (jp_pointer_parse(from_s, &from) < 0) {
            rc = jp_fail(c, "invalid JSON pointer in \"from\"");
            goto out;
        }
    }

    if (!strcmp(c->op, "add")) {
        rc = jp_add(c, &p, json_deep_copy(value));
    } else if (!strcmp(c->op, "remove")) {
        rc = jp_remove(c, &p, NULL);
    } else if (!strcmp(c->op, "replace")) {
        if (!jp_get(c->root, &p, p.n)) {
            rc = jp_fail(c, "path does not exist");
        } else if (p.n == 0) {
            rc = jp_add(c, &p, json_deep_copy(value));
        } else {
            rc = jp_remove(c, &p, NULL);
            if (rc == 0) {
                rc = jp_add(c, &p, json_deep_copy(value));
            }
        }
    } else if (!strcmp(c->op, "test")) {
        json_t *cur = jp_get(c->root, &p, p.n);
        if (!cur) {
            rc = jp_fail(c, "path does not exist");
        } else if (!jp_equal(cur, value)) {
            rc = jp_fail(c, "test failed: value differs");
        }
    } else if (!strcmp(c->op, "copy")) {
        json_t *src = jp_get(c->root, &from, from.n);
        if (!src) {
            rc = jp_fail(c, "\"from\" %.200s does not exist", from_s);
        } else if ((c->copied += yamljson_node_count(src)) >
                   JSONPATCH_MAX_COPY_NODES) {
            rc = jp_fail(c, "copies exceed %d values in total",
                         JSONPATCH_MAX_COPY_NODES);
        } else {
            rc = jp_add(c, &p, json_deep_copy(src));
        }
    } else if (!strcmp(c->op, "move")) {
        bool into_child = p.n > from.n;
        for (size_t i = 0; into_child && i < from.n; i++) {
            into_child = !strcmp(p.tok[i], from.tok[i]);
        }
        json_t *v = NULL;
        if (into_child) {
            rc = jp_fail(c, "cannot move a value into one of its children");
        } else if (!jp_get(c->root, &from, from.n)) {
            rc = jp_fail(c, "\"from\" %.200s does not exist", from_s);
        } else if (from.n == 0) {
            /* moving the root onto itself (p is also empty here) */
            rc = 0;
        } else if ((rc = jp_remove(c, &from, &v)) == 0) {
            rc = jp_add(c, &p, v);
        }
    } else {
        rc = jp_fail(c, "unknown operation \"%.50s\"", c->op);
    }
out:
    jp_pointer_free(&p);
    jp_pointer_free(&from);
    return rc;
}

/* Move src's content into dst (same type). */
static int
jp_swap_in(json_t *dst, json_t *src)
{
    if (json_typeof(dst) != json_typeof(src)) {
        return -EINVAL;
    }
    switch (json_typeof(dst)) {
    case JSON_OBJECT:
        json_object_clear(dst);
        json_object_update(dst, src);
        return 0;
    case JSON_ARRAY:
        json_array_clear(dst);
        json_array_extend(dst, src);
        return 0;
    case JSON_STRING:
        return json_string_setn(dst, json_string_value(src),
                                json_string_length(src)) == 0
                   ? 0
                   : -EINVAL;
    case JSON_INTEGER:
        json_integer_set(dst, json_integer_value(src));
        return 0;
    case JSON_REAL:
        json_real_set(dst, json_real_value(src));
        return 0;
    default:
        return 0; /* true/false/null are singletons */
    }
}

int
jsonpatch_apply(json_t *target, const json_t *ops, struct dpf_error *err)
{
    if (!json_is_array(ops)) {
        dpf_error_set(err, 400, "BadRequest",
                      "json patch: the patch must be a JSON array of "
                      "operations");
        return -EINVAL;
    }
    if (json_array_size(ops) > JSONPATCH_MAX_OPS) {
        dpf_error_set(err, 400, "BadRequest",
                      "json patch: more than %d operations", JSONPATCH_MAX_OPS);
        return -EINVAL;
    }
    struct jp_ctx c = {.root = json_deep_copy(target), .err = err};
    size_t i;
    json_t *op;
    json_array_foreach(ops, i, op)
    {
        c.index = i;
        c.op = c.path = NULL;
        if (jp_one(&c, op) < 0) {
            json_decref(c.root);
            return -EINVAL;
        }
    }
    if (jp_swap_in(target, c.root) < 0) {
        json_decref(c.root);
        dpf_error_set(err, 400, "BadRequest",
                      "json patch: cannot change the type of the document");
        return -EINVAL;
    }
    json_decref(c.root);
    return 0;
}
