/* selector: see selector.h.
 *
 * The label selector grammar and validation follow
 * k8s.io/apimachinery/pkg/labels: keys are qualified names (optional DNS
 * subdomain prefix + "/" + name of at most 63 characters), values are empty
 * or at most 63 characters of [A-Za-z0-9._-] starting and ending
 * alphanumeric. Field selectors accept "\" escapes in values as
 * k8s.io/apimachinery/pkg/fields does. Written by hand: no C library
 * implements these grammars. */
#include "lib/codecs/selector.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"

enum sel_op {
    SEL_EQ,
    SEL_NE,
    SEL_IN,
    SEL_NOTIN,
    SEL_EXISTS,
    SEL_NOT_EXISTS,
};

/* One requirement: key op values. */
struct sel_req {
    char *key;       /* label key or dotted field path (owned) */
    enum sel_op op;  /* the operator */
    char **values;   /* owned strings; 1 for EQ/NE, >= 1 for IN/NOTIN */
    size_t n_values; /* entries in values */
};

struct selector {
    struct sel_req *reqs; /* all must match (AND) */
    size_t n;             /* entries used */
    size_t cap;           /* entries allocated */
};

static struct selector *
sel_new(void)
{
    return xcalloc(1, sizeof(struct selector));
}

static struct sel_req *
sel_add(struct selector *sel, const char *key, size_t key_len, enum sel_op op)
{
    if (sel->n == sel->cap) {
        sel->cap = sel->cap ? sel->cap * 2 : 4;
        sel->reqs = xrealloc(sel->reqs, sel->cap * sizeof *sel->reqs);
    }
    struct sel_req *r = &sel->reqs[sel->n++];
    memset(r, 0, sizeof *r);
    r->key = xstrndup(key, key_len);
    r->op = op;
    return r;
}

static void
req_add_value(struct sel_req *r, const char *v, size_t n)
{
    r->values = xrealloc(r->values, (r->n_values + 1) * sizeof *r->values);
    r->values[r->n_values++] = xstrndup(v, n);
}

void
selector_free(struct selector *sel)
{
    if (!sel) {
        return;
    }
    for (size_t i = 0; i < sel->n; i++) {
        free(sel->reqs[i].key);
        for (size_t j = 0; j < sel->reqs[i].n_values; j++) {
            free(sel->reqs[i].values[j]);
        }
        free(sel->reqs[i].values);
    }
    free(sel->reqs);
    free(sel);
}

bool
selector_empty(const struct selector *sel)
{
    return !sel || sel->n == 0;
}

/* ---- validation ---- */

static bool
is_alnum(char c)
{
    return isascii((unsigned char) c) && isalnum((unsigned char) c);
}

/* [A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])? of at most 63 chars. Empty
 * allowed only if allow_empty. */
static bool
valid_name_part(const char *s, size_t n, bool allow_empty)
{
    if (n == 0) {
        return allow_empty;
    }
    if (n > 63 || !is_alnum(s[0]) || !is_alnum(s[n - 1])) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.') {
            return false;
        }
    }
    return true;
}

/* RFC 1123 subdomain: lowercase labels joined by dots, <= 253 chars. */
static bool
valid_dns_subdomain(const char *s, size_t n)
{
    if (n == 0 || n > 253) {
        return false;
    }
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && s[i] != '.') {
            char c = s[i];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-')) {
                return false;
            }
            continue;
        }
        size_t len = i - start;
        if (len == 0 || len > 63 || s[start] == '-' || s[i - 1] == '-') {
            return false;
        }
        start = i + 1;
    }
    return true;
}

static bool
valid_label_key(const char *s, size_t n, char *why, size_t why_size)
{
    const char *slash = memchr(s, '/', n);
    if (slash) {
        size_t plen = (size_t) (slash - s);
        if (!valid_dns_subdomain(s, plen)) {
            snprintf(why, why_size,
                     "prefix part must be a lowercase RFC 1123 subdomain "
                     "of at most 253 characters");
            return false;
        }
        s = slash + 1;
        n -= plen + 1;
    }
    if (n == 0) {
        snprintf(why, why_size, "name part must be non-empty");
        return false;
    }
    if (!valid_name_part(s, n, false)) {
        snprintf(why, why_size,
                 "name part must be at most 63 characters of [A-Za-z0-9_.-] "
                 "starting and ending with an alphanumeric character");
        return false;
    }
    return true;
}

static int
check_key(const char *k, size_t n, struct dpf_error *err, int code,
          const char *reason, const char *field)
{
    char why[160];
    if (valid_label_key(k, n, why, sizeof why)) {
        return 0;
    }
    dpf_error_set(err, code, reason, "invalid label key \"%.*s\": %s",
                  (int) DPF_MIN(n, 300), k, why);
    if (field) {
        dpf_error_add_cause(err, DPF_CAUSE_INVALID, field,
                            "invalid label key \"%.*s\": %s",
                            (int) DPF_MIN(n, 100), k, why);
    }
    return -EINVAL;
}

static int
check_value(const char *v, size_t n, struct dpf_error *err, int code,
            const char *reason, const char *field)
{
    if (valid_name_part(v, n, true)) {
        return 0;
    }
    const char *why = "must be at most 63 characters of [A-Za-z0-9_.-] "
                      "starting and ending with an alphanumeric character";
    dpf_error_set(err, code, reason, "invalid label value \"%.*s\": %s",
                  (int) DPF_MIN(n, 300), v, why);
    if (field) {
        dpf_error_add_cause(err, DPF_CAUSE_INVALID, field,
                            "invalid label value \"%.*s\": %s",
                            (int) DPF_MIN(n, 100), v, why);
    }
    return -EINVAL;
}

/* ---- label selector text ---- */

enum lex_tok {
    TOK_END,
    TOK_IDENT,
    TOK_NOT,     /* ! */
    TOK_NE,      /* != */
    TOK_EQ,      /* = */
    TOK_DEQ,     /* == */
    TOK_LPAREN,  /* ( */
    TOK_RPAREN,  /* ) */
    TOK_COMMA,   /* , */
    TOK_IN,      /* in */
    TOK_NOTIN,   /* notin */
    TOK_UNKNOWN, /* < > and friends */
};

struct lexer {
    const char *s;     /* the text */
    size_t pos;        /* read position */
    enum lex_tok tok;  /* current token */
    const char *start; /* current token text */
    size_t len;        /* current token length */
};

static bool
is_special(char c)
{
    return c == '!' || c == '=' || c == '(' || c == ')' || c == ',' ||
           c == '<' || c == '>';
}

static void
lex_next(struct lexer *lx)
{
    while (lx->s[lx->pos] && isspace((unsigned char) lx->s[lx->pos])) {
        lx->pos++;
    }
    const char *p = lx->s + lx->pos;
    lx->start = p;
    if (!*p) {
        lx->tok = TOK_END;
        lx->len = 0;
        return;
    }
    size_t n = 1;
    switch (*p) {
    case '!':
        lx->tok = p[1] == '=' ? TOK_NE : TOK_NOT;
        n = p[1] == '=' ? 2 : 1;
        break;
    case '=':
        lx->tok = p[1] == '=' ? TOK_DEQ : TOK_EQ;
        n = p[1] == '=' ? 2 : 1;
        break;
    case '(':
        lx->tok = TOK_LPAREN;
        break;
    case ')':
        lx->tok = TOK_RPAREN;
        break;
    case ',':
        lx->tok = TOK_COMMA;
        break;
    case '<':
    case '>':
        lx->tok = TOK_UNKNOWN;
        break;
    default:
        n = 0;
        while (p[n] && !isspace((unsigned char) p[n]) && !is_special(p[n])) {
            n++;
        }
        lx->tok = TOK_IDENT;
        if (n == 2 && !memcmp(p, "in", 2)) {
            lx->tok = TOK_IN;
        } else if (n == 5 && !memcmp(p, "notin", 5)) {
            lx->tok = TOK_NOTIN;
        }
        break;
    }
    lx->len = n;
    lx->pos += n;
}

static int
lbl_fail(struct dpf_error *err, const char *text, const char *what)
{
    dpf_error_set(err, 400, "BadRequest",
                  "unable to parse requirement: invalid label selector "
                  "\"%.300s\": %s",
                  text, what);
    return -EINVAL;
}

/* Values of in/notin: "(" v ("," v)* ")" with possibly empty values. */
static int
parse_set(struct lexer *lx, struct sel_req *r, const char *text,
          struct dpf_error *err)
{
    lex_next(lx);
    if (lx->tok != TOK_LPAREN) {
        return lbl_fail(err, text, "expected \"(\" after in/notin");
    }
    for (;;) {
        lex_next(lx);
        const char *v = "";
        size_t vn = 0;
        if (lx->tok == TOK_IDENT || lx->tok == TOK_IN || lx->tok == TOK_NOTIN) {
            v = lx->start;
            vn = lx->len;
            lex_next(lx);
        }
        if (lx->tok != TOK_COMMA && lx->tok != TOK_RPAREN) {
            return lbl_fail(err, text, "expected \",\" or \")\" in values");
        }
        if (lx->tok == TOK_RPAREN && vn == 0 && r->n_values == 0) {
            return lbl_fail(err, text,
                            "for 'in', 'notin' operators, values set can't "
                            "be empty");
        }
        if (check_value(v, vn, err, 400, "BadRequest", NULL) < 0) {
            return -EINVAL;
        }
        req_add_value(r, v, vn);
        if (lx->tok == TOK_RPAREN) {
            return 0;
        }
    }
}

struct selector *
selector_parse_labels(const char *text, struct dpf_error *err)
{
    struct selector *sel = sel_new();
    if (!text) {
        return sel;
    }
    struct lexer lx = {.s = text};
    lex_next(&lx);
    if (lx.tok == TOK_END) {
        return sel;
    }
    for (;;) {
        bool negate = false;
        if (lx.tok == TOK_NOT) {
            negate = true;
            lex_next(&lx);
        }
        if (lx.tok != TOK_IDENT) {
            lbl_fail(err, text, "expected a label key");
            goto fail;
        }
        const char *key = lx.start;
        size_t key_len = lx.len;
        if (check_key(key, key_len, err, 400, "BadRequest", NULL) < 0) {
            goto fail;
        }
        lex_next(&lx);
        if (negate) {
            sel_add(sel, key, key_len, SEL_NOT_EXISTS);
        } else if (lx.tok == TOK_COMMA || lx.tok == TOK_END) {
            sel_add(sel, key, key_len, SEL_EXISTS);
        } else if (lx.tok == TOK_EQ || lx.tok == TOK_DEQ || lx.tok == TOK_NE) {
            struct sel_req *r =
                sel_add(sel, key, key_len, lx.tok == TOK_NE ? SEL_NE : SEL_EQ);
            lex_next(&lx);
            const char *v = "";
            size_t vn = 0;
            if (lx.tok == TOK_IDENT || lx.tok == TOK_IN ||
                lx.tok == TOK_NOTIN) {
                v = lx.start;
                vn = lx.len;
                lex_next(&lx);
            } else if (lx.tok != TOK_COMMA && lx.tok != TOK_END) {
                lbl_fail(err, text, "expected a value");
                goto fail;
            }
            if (check_value(v, vn, err, 400, "BadRequest", NULL) < 0) {
                goto fail;
            }
            req_add_value(r, v, vn);
        } else if (lx.tok == TOK_IN || lx.tok == TOK_NOTIN) {
            struct sel_req *r = sel_add(sel, key, key_len,
                                        lx.tok == TOK_IN ? SEL_IN : SEL_NOTIN);
            if (parse_set(&lx, r, text, err) < 0) {
                goto fail;
            }
            lex_next(&lx);
        } else {
            lbl_fail(err, text, "expected an operator after the key");
            goto fail;
        }
        if (lx.tok == TOK_END) {
            return sel;
        }
        if (lx.tok != TOK_COMMA) {
            lbl_fail(err, text, "expected \",\" between requirements");
            goto fail;
        }
        lex_next(&lx);
    }
fail:
    selector_free(sel);
    return NULL;
}

/* ---- field selector text ---- */

static char *
trim_dup(const char *s, size_t n)
{
    while (n > 0 && isspace((unsigned char) *s)) {
        s++, n--;
    }
    while (n > 0 && isspace((unsigned char) s[n - 1])) {
        n--;
    }
    return xstrndup(s, n);
}

struct selector *
selector_parse_fields(const char *text, const char *const *allowed,
                      struct dpf_error *err)
{
    struct selector *sel = sel_new();
    if (!text) {
        return sel;
    }
    const char *p = text;
    while (*p && isspace((unsigned char) *p)) {
        p++;
    }
    if (!*p) {
        return sel;
    }
    p = text;
    for (;;) {
        /* one term up to an unescaped ',' */
        struct dbuf term;
        dbuf_init(&term);
        size_t op_at = (size_t) -1, op_len = 0;
        enum sel_op op = SEL_EQ;
        while (*p && *p != ',') {
            if (*p == '\\' && p[1]) {
                dbuf_append(&term, p + 1, 1);
                p += 2;
                continue;
            }
            if (op_at == (size_t) -1 && (*p == '=' || *p == '!')) {
                if (p[0] == '!' && p[1] == '=') {
                    op = SEL_NE, op_len = 2;
                } else if (p[0] == '=' && p[1] == '=') {
                    op = SEL_EQ, op_len = 2;
                } else if (p[0] == '=') {
                    op = SEL_EQ, op_len = 1;
                }
                if (op_len) {
                    op_at = term.len;
                    p += op_len;
                    continue;
                }
            }
            dbuf_append(&term, p, 1);
            p++;
        }
        const char *t = term.data ? term.data : "";
        if (op_at == (size_t) -1) {
            dpf_error_set(err, 400, "BadRequest",
                          "invalid field selector \"%.300s\": "
                          "can't understand \"%.200s\"",
                          text, t);
            dbuf_free(&term);
            goto fail;
        }
        char *key = trim_dup(t, op_at);
        char *val = trim_dup(t + op_at, term.len - op_at);
        dbuf_free(&term);
        bool ok = allowed == NULL;
        for (size_t i = 0; allowed && allowed[i]; i++) {
            ok = ok || !strcmp(allowed[i], key);
        }
        if (!ok) {
            dpf_error_set(err, 400, "BadRequest",
                          "field label not supported: %.200s", key);
            free(key);
            free(val);
            goto fail;
        }
        struct sel_req *r = sel_add(sel, key, strlen(key), op);
        req_add_value(r, val, strlen(val));
        free(key);
        free(val);
        if (!*p) {
            return sel;
        }
        p++; /* ',' */
    }
fail:
    selector_free(sel);
    return NULL;
}

/* ---- metav1.LabelSelector ---- */

static int
ls_fail(struct dpf_error *err, const char *field, const char *msg)
{
    if (!dpf_error_is_set(err)) {
        dpf_error_set(err, 422, "Invalid", "invalid label selector: %s: %s",
                      field, msg);
    }
    dpf_error_add_cause(err, DPF_CAUSE_INVALID, field, "%s", msg);
    return -EINVAL;
}

struct selector *
selector_from_label_selector(const json_t *ls, struct dpf_error *err)
{
    struct selector *sel = sel_new();
    if (!ls || json_is_null(ls)) {
        return sel;
    }
    char field[128];
    if (!json_is_object(ls)) {
        ls_fail(err, "selector", "must be an object");
        goto fail;
    }
    const json_t *ml = json_object_get(ls, "matchLabels");
    if (ml && !json_is_null(ml)) {
        if (!json_is_object(ml)) {
            ls_fail(err, "matchLabels", "must be an object");
            goto fail;
        }
        const char *k;
        json_t *v;
        json_object_foreach((json_t *) ml, k, v)
        {
            snprintf(field, sizeof field, "matchLabels[%.80s]", k);
            if (!json_is_string(v)) {
                ls_fail(err, field, "value must be a string");
                goto fail;
            }
            if (check_key(k, strlen(k), err, 422, "Invalid", field) < 0 ||
                check_value(json_string_value(v), json_string_length(v), err,
                            422, "Invalid", field) < 0) {
                goto fail;
            }
            struct sel_req *r = sel_add(sel, k, strlen(k), SEL_EQ);
            req_add_value(r, json_string_value(v), json_string_length(v));
        }
    }
    const json_t *me = json_object_get(ls, "matchExpressions");
    if (me && !json_is_null(me)) {
        if (!json_is_array(me)) {
            ls_fail(err, "matchExpressions", "must be an array");
            goto fail;
        }
        size_t i;
        json_t *e;
        json_array_foreach(me, i, e)
        {
            const char *key = json_string_value(json_object_get(e, "key"));
            const char *opn = json_string_value(json_object_get(e, "operator"));
            const json_t *vals = json_object_get(e, "values");
            snprintf(field, sizeof field, "matchExpressions[%zu].key", i);
            if (!key) {
                ls_fail(err, field, "key is required");
                goto fail;
            }
            if (check_key(key, strlen(key), err, 422, "Invalid", field) < 0) {
                goto fail;
            }
            snprintf(field, sizeof field, "matchExpressions[%zu].operator", i);
            enum sel_op op;
            if (!opn) {
                ls_fail(err, field, "operator is required");
                goto fail;
            } else if (!strcmp(opn, "In")) {
                op = SEL_IN;
            } else if (!strcmp(opn, "NotIn")) {
                op = SEL_NOTIN;
            } else if (!strcmp(opn, "Exists")) {
                op = SEL_EXISTS;
            } else if (!strcmp(opn, "DoesNotExist")) {
                op = SEL_NOT_EXISTS;
            } else {
                ls_fail(err, field,
                        "operator must be one of In, NotIn, Exists, "
                        "DoesNotExist");
                goto fail;
            }
            snprintf(field, sizeof field, "matchExpressions[%zu].values", i);
            size_t nv = json_is_null(vals) ? 0 : json_array_size(vals);
            if (vals && !json_is_null(vals) && !json_is_array(vals)) {
                ls_fail(err, field, "must be an array of strings");
                goto fail;
            }
            if ((op == SEL_IN || op == SEL_NOTIN) && nv == 0) {
                ls_fail(err, field,
                        "must be specified when operator is In or NotIn");
                goto fail;
            }
            if ((op == SEL_EXISTS || op == SEL_NOT_EXISTS) && nv > 0) {
                ls_fail(err, field,
                        "may not be specified when operator is Exists or "
                        "DoesNotExist");
                goto fail;
            }
            struct sel_req *r = sel_add(sel, key, strlen(key), op);
            for (size_t j = 0; j < nv; j++) {
                const json_t *v = json_array_get(vals, j);
                snprintf(field, sizeof field,
                         "matchExpressions[%zu].values[%zu]", i, j);
                if (!json_is_string(v)) {
                    ls_fail(err, field, "must be a string");
                    goto fail;
                }
                if (check_value(json_string_value(v), json_string_length(v),
                                err, 422, "Invalid", field) < 0) {
                    goto fail;
                }
                req_add_value(r, json_string_value(v), json_string_length(v));
            }
        }
    }
    return sel;
fail:
    selector_free(sel);
    return NULL;
}

/* ---- matching ---- */

static bool
req_match(const struct sel_req *r, const char *have)
{
    bool in = false;
    for (size_t i = 0; have && i < r->n_values; i++) {
        in = in || !strcmp(r->values[i], have);
    }
    switch (r->op) {
    case SEL_EQ:
    case SEL_IN:
        return have && in;
    case SEL_NE:
    case SEL_NOTIN:
        return !have || !in;
    case SEL_EXISTS:
        return have != NULL;
    case SEL_NOT_EXISTS:
        return have == NULL;
    }
    return false;
}

bool
selector_match_labels(const struct selector *sel, const json_t *labels)
{
    for (size_t i = 0; sel && i < sel->n; i++) {
        const char *have =
            json_string_value(json_object_get(labels, sel->reqs[i].key));
        if (!req_match(&sel->reqs[i], have)) {
            return false;
        }
    }
    return true;
}

bool
selector_equality_hint(const struct selector *sel, const char **key,
                       const char **value)
{
    for (size_t i = 0; sel && i < sel->n; i++) {
        const struct sel_req *r = &sel->reqs[i];
        if ((r->op == SEL_EQ || r->op == SEL_IN) && r->n_values == 1) {
            *key = r->key;
            *value = r->values[0];
            return true;
        }
    }
    return false;
}

bool
selector_match_labels_lookup(const struct selector *sel,
                             const char *(*get)(const void *arg,
                                                const char *key),
                             const void *arg)
{
    for (size_t i = 0; sel && i < sel->n; i++) {
        if (!req_match(&sel->reqs[i], get(arg, sel->reqs[i].key))) {
            return false;
        }
    }
    return true;
}

/* The text of the field at a dotted path ("" if absent). buf holds
 * numbers and booleans. */
static const char *
field_text(const json_t *obj, const char *path, char *buf, size_t size)
{
    const json_t *cur = obj;
    const char *p = path;
    while (cur && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t) (dot - p) : strlen(p);
        char *part = xstrndup(p, n);
        cur = json_object_get(cur, part);
        free(part);
        p += n;
        if (*p == '.') {
            p++;
        }
    }
    if (json_is_string(cur)) {
        return json_string_value(cur);
    }
    if (json_is_integer(cur)) {
        snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(cur));
        return buf;
    }
    if (json_is_boolean(cur)) {
        return json_is_true(cur) ? "true" : "false";
    }
    return "";
}

bool
selector_match_fields(const struct selector *sel, const json_t *obj)
{
    char buf[32];
    for (size_t i = 0; sel && i < sel->n; i++) {
        const char *have = field_text(obj, sel->reqs[i].key, buf, sizeof buf);
        if (!req_match(&sel->reqs[i], have)) {
            return false;
        }
    }
    return true;
}
