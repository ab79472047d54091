/* jsonpath: see jsonpath.h. */
#include "lib/codecs/jsonpath.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Parser state over one path expression. */
struct jp {
    const char *s;         /* whole expression */
    size_t i;              /* current offset */
    const json_t *root;    /* $ */
    struct dpf_error *err; /* where syntax errors go */
};

static int
jp_fail(struct jp *p, const char *what)
{
    dpf_error_set(p->err, 400, "BadRequest",
                  "jsonpath \"%s\": %s at offset %zu", p->s, what, p->i);
    return -EINVAL;
}

char *
jsonpath_value_text(const json_t *v)
{
    if (!v || json_is_null(v)) {
        return xstrdup("");
    }
    if (json_is_string(v)) {
        return xstrdup(json_string_value(v));
    }
    if (json_is_integer(v)) {
        return xasprintf("%lld", (long long) json_integer_value(v));
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d == (double) (long long) d) {
            return xasprintf("%lld", (long long) d);
        }
        return xasprintf("%g", d);
    }
    if (json_is_boolean(v)) {
        return xstrdup(json_is_true(v) ? "true" : "false");
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    return s ? s : xstrdup("");
}

static bool
name_char(char c)
{
    return isalnum((unsigned char) c) || c == '_' || c == '-' || c == '/' ||
           c == '\\' || (unsigned char) c >= 0x80;
}

/* Read a member name after '.', handling "\." escapes. Malloc'd. */
static char *
read_name(struct jp *p)
{
    struct dbuf b;
    dbuf_init(&b);
    while (p->s[p->i] && name_char(p->s[p->i])) {
        if (p->s[p->i] == '\\' && p->s[p->i + 1]) {
            p->i++;
        }
        dbuf_append(&b, &p->s[p->i], 1);
        p->i++;
    }
    if (!b.data) {
        return NULL;
    }
    return dbuf_steal(&b, NULL);
}

/* Read a quoted string ('..' or ".."), p->i at the quote. Malloc'd. */
static char *
read_quoted(struct jp *p)
{
    char q = p->s[p->i++];
    struct dbuf b;
    dbuf_init(&b);
    while (p->s[p->i] && p->s[p->i] != q) {
        char c = p->s[p->i];
        if (c == '\\' && p->s[p->i + 1]) {
            p->i++;
            c = p->s[p->i];
            c = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : c;
        }
        dbuf_append(&b, &c, 1);
        p->i++;
    }
    if (p->s[p->i] != q) {
        dbuf_free(&b);
        return NULL;
    }
    p->i++;
    dbuf_append(&b, "", 0);
    return dbuf_steal(&b, NULL);
}

static void
add_member(json_t *out, const json_t *v, const char *name)
{
    json_t *m = json_object_get(v, name);
    if (m) {
        json_array_append(out, m);
    }
}

static void
add_children(json_t *out, const json_t *v)
{
    if (json_is_array(v)) {
        json_array_extend(out, (json_t *) v);
    } else if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach((json_t *) v, k, m)
        {
            json_array_append(out, m);
        }
    }
}

static void
add_descendants(json_t *out, const json_t *v)
{
    json_array_append(out, (json_t *) v);
    if (json_is_array(v)) {
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            add_descendants(out, e);
        }
    } else if (json_is_object(v)) {
        const char *k;
        json_t *m;
        json_object_foreach((json_t *) v, k, m)
        {
            add_descendants(out, m);
        }
    }
}

static int eval_path(struct jp *p, json_t *cur, size_t end, json_t **out);

/* Compare a value with a filter literal. */
static bool
filter_cmp(const json_t *v, const char *op, const json_t *lit)
{
    int c;
    if (json_is_number(v) && json_is_number(lit)) {
        double a = json_number_value(v), b = json_number_value(lit);
        c = a < b ? -1 : a > b ? 1 : 0;
    } else if (json_is_string(v) && json_is_string(lit)) {
        c = strcmp(json_string_value(v), json_string_value(lit));
    } else if (json_is_boolean(v) && json_is_boolean(lit)) {
        c = json_is_true(v) == json_is_true(lit) ? 0 : 1;
        if (strcmp(op, "==") && strcmp(op, "!=")) {
            return false;
        }
    } else {
        char *a = jsonpath_value_text(v), *b = jsonpath_value_text(lit);
        c = strcmp(a, b);
        free(a);
        free(b);
    }
    if (!strcmp(op, "==")) {
        return c == 0;
    }
    if (!strcmp(op, "!=")) {
        return c != 0;
    }
    if (!strcmp(op, "<")) {
        return c < 0;
    }
    if (!strcmp(op, "<=")) {
        return c <= 0;
    }
    if (!strcmp(op, ">")) {
        return c > 0;
    }
    return c >= 0;
}

/* Parse "?(@.path OP literal)" at p->i (after '['); filter cur. */
static int
eval_filter(struct jp *p, json_t *cur, json_t *out)
{
    p->i += 2; /* "?(" */
    size_t start = p->i;
    int depth = 0;
    size_t op_at = 0, op_len = 0;
    char quote = 0;
    for (; p->s[p->i]; p->i++) {
        char c = p->s[p->i];
        if (quote) {
            if (c == '\\' && p->s[p->i + 1]) {
                p->i++;
            } else if (c == quote) {
                quote = 0;
            }
            continue;
        }
        if (c == '\'' || c == '"') {
            quote = c;
        } else if (c == '(' || c == '[') {
            depth++;
        } else if (c == ']' && depth > 0) {
            depth--;
        } else if (c == ')') {
            if (depth == 0) {
                break;
            }
            depth--;
        } else if (!op_at && depth == 0 && strchr("=!<>", c)) {
            op_at = p->i;
            op_len = p->s[p->i + 1] == '=' ? 2 : 1;
            p->i += op_len - 1;
        }
    }
    if (p->s[p->i] != ')' || p->s[p->i + 1] != ']') {
        return jp_fail(p, "unterminated filter");
    }
    size_t end = p->i;
    p->i += 2;

    size_t path_end = op_at ? op_at : end;
    while (path_end > start && p->s[path_end - 1] == ' ') {
        path_end--;
    }
    char op[3] = {0};
    json_t *lit = NULL;
    if (op_at) {
        memcpy(op, p->s + op_at, op_len);
        if (!strcmp(op, "=") || !strcmp(op, "!")) {
            return jp_fail(p, "bad filter operator");
        }
        struct jp lp = *p;
        lp.i = op_at + op_len;
        while (lp.s[lp.i] == ' ') {
            lp.i++;
        }
        size_t lend = end;
        while (lend > lp.i && lp.s[lend - 1] == ' ') {
            lend--;
        }
        if (lp.s[lp.i] == '\'' || lp.s[lp.i] == '"') {
            char *str = read_quoted(&lp);
            if (!str) {
                return jp_fail(p, "unterminated string in filter");
            }
            lit = json_string(str);
            free(str);
        } else {
            char *txt = xstrndup(lp.s + lp.i, lend - lp.i);
            lit = json_loads(txt, JSON_DECODE_ANY, NULL);
            if (!lit) {
                lit = json_string(txt);
            }
            free(txt);
        }
    }
    size_t i;
    json_t *elem;
    json_t *cands = json_array();
    for (i = 0; i < json_array_size(cur); i++) {
        add_children(cands, json_array_get(cur, i));
    }
    int r = 0;
    json_array_foreach(cands, i, elem)
    {
        struct jp sp = *p;
        sp.i = start;
        if (sp.s[sp.i] == '@') {
            sp.i++;
        }
        json_t *one = json_array();
        json_array_append(one, elem);
        json_t *res = NULL;
        r = eval_path(&sp, one, path_end, &res);
        json_decref(one);
        if (r < 0) {
            break;
        }
        bool keep;
        if (!lit) {
            keep = json_array_size(res) > 0 &&
                   !json_is_false(json_array_get(res, 0)) &&
                   !json_is_null(json_array_get(res, 0));
        } else {
            keep = json_array_size(res) > 0 &&
                   filter_cmp(json_array_get(res, 0), op, lit);
        }
        json_decref(res);
        if (keep) {
            json_array_append(out, elem);
        }
    }
    json_decref(cands);
    json_decref(lit);
    return r;
}

static long
clamp_index(long idx, long n)
{
    if (idx < 0) {
        idx += n;
    }
    return idx < 0 ? 0 : idx > n ? n : idx;
}

/* Parse "[...]" at p->i (on '['), apply to every value of cur. */
static int
eval_bracket(struct jp *p, json_t *cur, json_t *out)
{
    p->i++;
    char c = p->s[p->i];
    size_t i;
    json_t *v;
    if (c == '?' && p->s[p->i + 1] == '(') {
        return eval_filter(p, cur, out);
    }
    if (c == '*' && p->s[p->i + 1] == ']') {
        p->i += 2;
        json_array_foreach(cur, i, v)
        {
            add_children(out, v);
        }
        return 0;
    }
    if (c == '\'' || c == '"') {
        char *key = read_quoted(p);
        if (!key || p->s[p->i] != ']') {
            free(key);
            return jp_fail(p, "bad quoted key");
        }
        p->i++;
        json_array_foreach(cur, i, v)
        {
            add_member(out, v, key);
        }
        free(key);
        return 0;
    }
    /* index or slice: [n], [a:b], [a:], [:b] */
    char *end;
    bool has_a = false, has_b = false, slice = false;
    long a = 0, b = 0;
    if (p->s[p->i] != ':') {
        a = strtol(p->s + p->i, &end, 10);
        if (end == p->s + p->i) {
            return jp_fail(p, "expected an index, '*', a filter or a key");
        }
        has_a = true;
        p->i = (size_t) (end - p->s);
    }
    if (p->s[p->i] == ':') {
        slice = true;
        p->i++;
        if (p->s[p->i] != ']') {
            b = strtol(p->s + p->i, &end, 10);
            if (end == p->s + p->i) {
                return jp_fail(p, "bad slice");
            }
            has_b = true;
            p->i = (size_t) (end - p->s);
        }
    }
    if (p->s[p->i] != ']') {
        return jp_fail(p, "expected ']'");
    }
    p->i++;
    json_array_foreach(cur, i, v)
    {
        if (!json_is_array(v)) {
            continue;
        }
        long n = (long) json_array_size(v);
        if (!slice) {
            long idx = a < 0 ? a + n : a;
            if (idx >= 0 && idx < n) {
                json_array_append(out, json_array_get(v, (size_t) idx));
            }
            continue;
        }
        long lo = has_a ? clamp_index(a, n) : 0;
        long hi = has_b ? clamp_index(b, n) : n;
        for (long k = lo; k < hi; k++) {
            json_array_append(out, json_array_get(v, (size_t) k));
        }
    }
    return 0;
}

/* Evaluate steps from p->i to end over the value set cur. */
static int
eval_path(struct jp *p, json_t *cur, size_t end, json_t **out)
{
    json_incref(cur);
    while (p->i < end) {
        char c = p->s[p->i];
        json_t *next = json_array();
        int r = 0;
        size_t i;
        json_t *v;
        if (c == ' ') {
            p->i++;
            json_decref(next);
            continue;
        }
        if (c == '.' && p->s[p->i + 1] == '.') {
            p->i += 2;
            json_t *all = json_array();
            json_array_foreach(cur, i, v)
            {
                add_descendants(all, v);
            }
            json_decref(cur);
            cur = all;
            if (p->s[p->i] == '[' || p->s[p->i] == '*') {
                json_decref(next);
                if (p->s[p->i] == '*') {
                    p->i++;
                    next = json_array();
                    json_array_foreach(cur, i, v)
                    {
                        add_children(next, v);
                    }
                    json_decref(cur);
                    cur = next;
                }
                continue;
            }
            char *name = read_name(p);
            if (!name) {
                json_decref(next);
                json_decref(cur);
                return jp_fail(p, "expected a name after '..'");
            }
            json_array_foreach(cur, i, v)
            {
                add_member(next, v, name);
            }
            free(name);
        } else if (c == '.') {
            p->i++;
            if (p->s[p->i] == '*') {
                p->i++;
                json_array_foreach(cur, i, v)
                {
                    add_children(next, v);
                }
            } else if (p->s[p->i] == '[' || p->i >= end) {
                json_array_extend(next, cur); /* "." alone or ".[" */
            } else {
                char *name = read_name(p);
                if (!name) {
                    json_decref(next);
                    json_decref(cur);
                    return jp_fail(p, "expected a field name");
                }
                json_array_foreach(cur, i, v)
                {
                    add_member(next, v, name);
                }
                free(name);
            }
        } else if (c == '[') {
            r = eval_bracket(p, cur, next);
        } else if (name_char(c)) {
            /* a leading bare name ("metadata.name", relaxed form) */
            char *name = read_name(p);
            json_array_foreach(cur, i, v)
            {
                add_member(next, v, name);
            }
            free(name);
        } else {
            r = jp_fail(p, "unexpected character");
        }
        json_decref(cur);
        if (r < 0) {
            json_decref(next);
            return r;
        }
        cur = next;
    }
    *out = cur;
    return 0;
}

/* Evaluate the expression s[start, end) with root data and current
 * element cur. */
static int
eval_expr(const char *s, size_t start, size_t end, const json_t *root,
          const json_t *cur, json_t **out, struct dpf_error *err)
{
    struct jp p = {.s = s, .i = start, .root = root, .err = err};
    while (p.i < end && s[p.i] == ' ') {
        p.i++;
    }
    while (end > p.i && s[end - 1] == ' ') {
        end--;
    }
    const json_t *base = cur;
    if (s[p.i] == '$') {
        base = root;
        p.i++;
    } else if (s[p.i] == '@') {
        p.i++;
    }
    json_t *set = json_array();
    json_array_append(set, (json_t *) base);
    int r = eval_path(&p, set, end, out);
    json_decref(set);
    return r;
}

int
jsonpath_eval(const char *expr, const json_t *data, json_t **results,
              struct dpf_error *err)
{
    size_t n = strlen(expr), start = 0;
    if (n >= 2 && expr[0] == '{' && expr[n - 1] == '}') {
        start = 1;
        n--;
    }
    return eval_expr(expr, start, n, data, data, results, err);
}

/* --- templates --- */

enum tnode_type { T_TEXT, T_EXPR, T_STRING, T_RANGE };

/* One parsed template element. */
struct tnode {
    enum tnode_type type;
    size_t start, end;      /* expression span in the template */
    char *text;             /* T_TEXT / T_STRING content */
    struct tnode *children; /* T_RANGE body */
    size_t n;               /* children count */
};

static void
tnodes_free(struct tnode *nodes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(nodes[i].text);
        tnodes_free(nodes[i].children, nodes[i].n);
    }
    free(nodes);
}

static void
tnode_push(struct tnode **nodes, size_t *n, struct tnode node)
{
    *nodes = xrealloc(*nodes, (*n + 1) * sizeof **nodes);
    (*nodes)[(*n)++] = node;
}

/* Parse from *pos until the end or an {end}; sets *closed when {end}. */
static int
tparse(const char *t, size_t *pos, struct tnode **nodes, size_t *n,
       bool *closed, struct dpf_error *err)
{
    size_t i = *pos;
    *closed = false;
    while (t[i]) {
        if (t[i] != '{') {
            size_t s = i;
            while (t[i] && t[i] != '{') {
                i++;
            }
            struct tnode node = {.type = T_TEXT,
                                 .text = xstrndup(t + s, i - s)};
            tnode_push(nodes, n, node);
            continue;
        }
        /* find the matching '}' outside quotes */
        size_t s = ++i;
        char quote = 0;
        for (; t[i]; i++) {
            if (quote) {
                if (t[i] == '\\' && t[i + 1]) {
                    i++;
                } else if (t[i] == quote) {
                    quote = 0;
                }
            } else if (t[i] == '\'' || t[i] == '"') {
                quote = t[i];
            } else if (t[i] == '}') {
                break;
            }
        }
        if (t[i] != '}') {
            dpf_error_set(err, 400, "BadRequest",
                          "jsonpath template \"%s\": unclosed action at "
                          "offset %zu",
                          t, s - 1);
            return -EINVAL;
        }
        size_t e = i++;
        while (s < e && t[s] == ' ') {
            s++;
        }
        while (e > s && t[e - 1] == ' ') {
            e--;
        }
        if (e - s == 3 && !strncmp(t + s, "end", 3)) {
            *closed = true;
            *pos = i;
            return 0;
        }
        if (e - s > 6 && !strncmp(t + s, "range ", 6)) {
            struct tnode node = {.type = T_RANGE, .start = s + 6, .end = e};
            bool c2;
            size_t p2 = i;
            int r = tparse(t, &p2, &node.children, &node.n, &c2, err);
            if (r < 0 || !c2) {
                tnodes_free(node.children, node.n);
                if (r == 0) {
                    dpf_error_set(err, 400, "BadRequest",
                                  "jsonpath template \"%s\": {range} "
                                  "without {end}",
                                  t);
                }
                return -EINVAL;
            }
            i = p2;
            tnode_push(nodes, n, node);
            continue;
        }
        if (t[s] == '"' || t[s] == '\'') {
            struct jp p = {.s = t, .i = s, .err = err};
            char *str = read_quoted(&p);
            if (!str) {
                dpf_error_set(err, 400, "BadRequest",
                              "jsonpath template \"%s\": bad string at "
                              "offset %zu",
                              t, s);
                return -EINVAL;
            }
            struct tnode node = {.type = T_STRING, .text = str};
            tnode_push(nodes, n, node);
            continue;
        }
        struct tnode node = {.type = T_EXPR, .start = s, .end = e};
        tnode_push(nodes, n, node);
    }
    *pos = i;
    return 0;
}

static int
trender(const char *t, const struct tnode *nodes, size_t n, const json_t *root,
        const json_t *cur, struct dbuf *out, struct dpf_error *err)
{
    for (size_t k = 0; k < n; k++) {
        const struct tnode *node = &nodes[k];
        json_t *res = NULL;
        int r;
        switch (node->type) {
        case T_TEXT:
        case T_STRING:
            dbuf_puts(out, node->text);
            break;
        case T_EXPR:
            r = eval_expr(t, node->start, node->end, root, cur, &res, err);
            if (r < 0) {
                return r;
            }
            for (size_t i = 0; i < json_array_size(res); i++) {
                char *s = jsonpath_value_text(json_array_get(res, i));
                dbuf_printf(out, "%s%s", i ? " " : "", s);
                free(s);
            }
            json_decref(res);
            break;
        case T_RANGE:
            r = eval_expr(t, node->start, node->end, root, cur, &res, err);
            if (r < 0) {
                return r;
            }
            /* ranging over one array value walks its elements */
            if (json_array_size(res) == 1 &&
                json_is_array(json_array_get(res, 0))) {
                json_t *arr = json_incref(json_array_get(res, 0));
                json_decref(res);
                res = arr;
            }
            for (size_t i = 0; i < json_array_size(res) && r == 0; i++) {
                r = trender(t, node->children, node->n, root,
                            json_array_get(res, i), out, err);
            }
            json_decref(res);
            if (r < 0) {
                return r;
            }
            break;
        }
    }
    return 0;
}

int
jsonpath_render(const char *tmpl, const json_t *data, struct dbuf *out,
                struct dpf_error *err)
{
    char *owned = NULL;
    if (!strchr(tmpl, '{')) {
        owned = xasprintf("{%s}", tmpl);
        tmpl = owned;
    }
    struct tnode *nodes = NULL;
    size_t n = 0, pos = 0;
    bool closed;
    int r = tparse(tmpl, &pos, &nodes, &n, &closed, err);
    if (r == 0 && closed) {
        dpf_error_set(err, 400, "BadRequest",
                      "jsonpath template \"%s\": {end} without {range}", tmpl);
        r = -EINVAL;
    }
    if (r == 0) {
        r = trender(tmpl, nodes, n, data, data, out, err);
    }
    tnodes_free(nodes, n);
    free(owned);
    if (!out->data) {
        dbuf_append(out, "", 0);
    }
    return r;
}
