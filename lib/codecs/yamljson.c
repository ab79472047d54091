/* yamljson: see yamljson.h.
 *
 * The parser drives libyaml's event API and builds the jansson tree with a
 * small recursive descent (depth-capped). JSON input whose first byte is
 * '{' or '[' goes through jansson first (fast path for API request
 * bodies); if jansson rejects it (big integers, duplicate keys, YAML flow
 * syntax) the YAML parser decides. The emitter is hand-written because
 * libyaml's emitter cannot produce kubectl's layout (indentless sequences
 * under keys) and quotes differently. */
#include "lib/codecs/yamljson.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "lib/base/util.h"

/* Nesting deeper than this is rejected (keeps every recursive walker,
 * here and in jansson, far from the stack limit). */
#define YAMLJSON_MAX_DEPTH 512
/* Total nodes that alias expansion may copy per stream: a billion-laughs
 * document stops here instead of eating memory. */
#define YAMLJSON_MAX_ALIAS_NODES 100000
/* libyaml refuses implicit keys longer than 1024 characters; longer keys
 * are emitted in explicit "? key" form. */
#define YAMLJSON_MAX_SIMPLE_KEY 1000

/* ---- scalar resolution ---- */

enum yj_kind {
    YJ_NULL,
    YJ_BOOL_TRUE,
    YJ_BOOL_FALSE,
    YJ_INT,
    YJ_FLOAT,
    YJ_STR,
};

static bool
str_in(const char *s, size_t n, const char *const *list)
{
    for (size_t i = 0; list[i]; i++) {
        if (strlen(list[i]) == n && !memcmp(s, list[i], n)) {
            return true;
        }
    }
    return false;
}

static const char *const yj_nulls[] = {"~", "null", "Null", "NULL", NULL};
static const char *const yj_trues[] = {"true", "True", "TRUE", "yes", "Yes",
                                       "YES",  "on",   "On",   "ON",  NULL};
static const char *const yj_falses[] = {"false", "False", "FALSE", "no",  "No",
                                        "NO",    "off",   "Off",   "OFF", NULL};

static bool
is_digits(const char *s, size_t n, const char *set, bool underscores)
{
    if (n == 0) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (underscores && s[i] == '_' && i > 0) {
            continue;
        }
        if (!s[i] || !strchr(set, s[i])) {
            return false;
        }
    }
    return true;
}

/* Parse an integer plain scalar: [-+]? then decimal, 0x hex, 0o octal or
 * YAML 1.1 0-prefixed octal (0644 is 420, as in sigs.k8s.io/yaml).
 * Underscores between digits are ignored (YAML 1.1). Returns true if the
 * text has integer form; *overflow is set if it does not fit int64. */
static bool
parse_int(const char *s, size_t n, json_int_t *out, bool *overflow)
{
    *overflow = false;
    bool neg = false;
    size_t i = 0;
    if (n > 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    int base = 10;
    const char *set = "0123456789";
    if (n - i > 2 && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
        base = 16;
        set = "0123456789abcdefABCDEF";
        i += 2;
    } else if (n - i > 2 && s[i] == '0' && s[i + 1] == 'o') {
        base = 8;
        set = "01234567";
        i += 2;
    } else if (n - i > 1 && s[i] == '0' &&
               is_digits(s + i, n - i, "01234567", true)) {
        base = 8;
        set = "01234567";
        i += 1;
    }
    if (!is_digits(s + i, n - i, set, true)) {
        return false;
    }
    uint64_t v = 0;
    uint64_t limit = neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;
    for (; i < n; i++) {
        if (s[i] == '_') {
            continue;
        }
        unsigned d = s[i] <= '9' ? (unsigned) (s[i] - '0')
                                 : (unsigned) ((s[i] | 0x20) - 'a' + 10);
        if (v > (limit - d) / (uint64_t) base) {
            *overflow = true;
            return true;
        }
        v = v * (uint64_t) base + d;
    }
    if (neg) {
        *out = v == (uint64_t) INT64_MAX + 1 ? INT64_MIN : -(json_int_t) v;
    } else {
        *out = (json_int_t) v;
    }
    return true;
}

/* [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool
is_float(const char *s, size_t n)
{
    size_t i = 0;
    if (i < n && (s[i] == '-' || s[i] == '+')) {
        i++;
    }
    size_t int_digits = 0, frac_digits = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') {
        i++, int_digits++;
    }
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            i++, frac_digits++;
        }
    }
    if (int_digits == 0 && frac_digits == 0) {
        return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '-' || s[i] == '+')) {
            i++;
        }
        size_t e = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            i++, e++;
        }
        if (e == 0) {
            return false;
        }
    }
    return i == n;
}

/* Classify a plain scalar the way the parser resolves it. */
static enum yj_kind
classify_plain(const char *s, size_t n)
{
    if (n == 0 || str_in(s, n, yj_nulls)) {
        return YJ_NULL;
    }
    if (str_in(s, n, yj_trues)) {
        return YJ_BOOL_TRUE;
    }
    if (str_in(s, n, yj_falses)) {
        return YJ_BOOL_FALSE;
    }
    json_int_t v;
    bool overflow;
    if (parse_int(s, n, &v, &overflow)) {
        return YJ_INT;
    }
    if (is_float(s, n)) {
        return YJ_FLOAT;
    }
    return YJ_STR;
}

/* Strings that other YAML 1.1 readers (go-yaml, PyYAML) would not read
 * back as strings although we do: the emitter quotes them too. */
static bool
is_yaml11_ambiguous(const char *s, size_t n)
{
    static const char *const words[] = {
        "y",     "Y",    "n",     "N",     "<<",    "=",     ".inf",
        ".Inf",  ".INF", "+.inf", "+.Inf", "+.INF", "-.inf", "-.Inf",
        "-.INF", ".nan", ".NaN",  ".NAN",  NULL};
    if (str_in(s, n, words)) {
        return true;
    }
    /* binary 0b1010 and sexagesimal 190:20:30 */
    size_t i = (n > 0 && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
    if (n - i > 2 && s[i] == '0' && s[i + 1] == 'b' &&
        is_digits(s + i + 2, n - i - 2, "01", true)) {
        return true;
    }
    if (n - i > 0 && s[i] >= '0' && s[i] <= '9' && memchr(s, ':', n) &&
        is_digits(s + i, n - i, "0123456789:._", false)) {
        return true;
    }
    return false;
}

/* ---- parser ---- */

struct yj_anchor {
    char *name;   /* anchor name (owned) */
    json_t *val;  /* anchored node (one reference owned) */
    size_t nodes; /* nodes in val, charged per alias use */
};

struct yj_parser {
    yaml_parser_t p;           /* libyaml state */
    yaml_event_t ev;           /* current event (valid if have_ev) */
    bool have_ev;              /* ev must be deleted */
    struct yj_anchor *anchors; /* anchors of the current document */
    size_t n_anchors;          /* used entries */
    size_t cap_anchors;        /* allocated entries */
    size_t alias_nodes;        /* nodes copied by alias expansion so far */
    struct dpf_error *err;     /* where errors go */
};

static void yj_error_at(struct yj_parser *yp, const yaml_mark_t *mark,
                        const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
yj_error_at(struct yj_parser *yp, const yaml_mark_t *mark, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    dpf_error_set(yp->err, 400, "BadRequest", "yaml: line %zu, column %zu: %s",
                  mark->line + 1, mark->column + 1, msg);
}

/* Fetch the next event into yp->ev. 0 or -EINVAL. */
static int
yj_next(struct yj_parser *yp)
{
    if (yp->have_ev) {
        yaml_event_delete(&yp->ev);
        yp->have_ev = false;
    }
    if (!yaml_parser_parse(&yp->p, &yp->ev)) {
        const char *problem = yp->p.problem ? yp->p.problem : "syntax error";
        if (yp->p.context) {
            yj_error_at(yp, &yp->p.problem_mark, "%s (%s at line %zu)", problem,
                        yp->p.context, yp->p.context_mark.line + 1);
        } else {
            yj_error_at(yp, &yp->p.problem_mark, "%s", problem);
        }
        return -EINVAL;
    }
    yp->have_ev = true;
    return 0;
}

size_t
yamljson_node_count(const json_t *v)
{
    size_t n = 1;
    const char *k;
    json_t *c;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach((json_t *) v, k, c)
        {
            n += yamljson_node_count(c);
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, c)
        {
            n += yamljson_node_count(c);
        }
    }
    return n;
}

static void
yj_anchors_clear(struct yj_parser *yp)
{
    for (size_t i = 0; i < yp->n_anchors; i++) {
        free(yp->anchors[i].name);
        json_decref(yp->anchors[i].val);
    }
    yp->n_anchors = 0;
}

static void
yj_anchor_add(struct yj_parser *yp, const char *name, json_t *val)
{
    if (yp->n_anchors == yp->cap_anchors) {
        yp->cap_anchors = yp->cap_anchors ? yp->cap_anchors * 2 : 8;
        yp->anchors =
            xrealloc(yp->anchors, yp->cap_anchors * sizeof *yp->anchors);
    }
    struct yj_anchor *a = &yp->anchors[yp->n_anchors++];
    a->name = xstrdup(name);
    a->val = json_incref(val);
    a->nodes = yamljson_node_count(val);
}

static json_t *
yj_string(struct yj_parser *yp, const char *s, size_t n)
{
    json_t *v = json_stringn(s, n);
    if (!v) {
        yj_error_at(yp, &yp->ev.start_mark, "invalid UTF-8 in string");
    }
    return v;
}

static json_t *yj_real(struct yj_parser *yp, const char *s, size_t n);

/* Build the value of the scalar event in yp->ev. */
static json_t *
yj_scalar(struct yj_parser *yp)
{
    const char *s = (const char *) yp->ev.data.scalar.value;
    size_t n = yp->ev.data.scalar.length;
    const char *tag = (const char *) yp->ev.data.scalar.tag;
    bool plain = yp->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    enum yj_kind want = YJ_STR;
    bool typed = false;

    if (tag) {
        if (!strcmp(tag, YAML_STR_TAG) || !strcmp(tag, "!") ||
            !strcmp(tag, "tag:yaml.org,2002:binary") ||
            !strcmp(tag, "tag:yaml.org,2002:timestamp")) {
            return yj_string(yp, s, n);
        }
        typed = true;
        if (!strcmp(tag, YAML_NULL_TAG)) {
            want = YJ_NULL;
        } else if (!strcmp(tag, YAML_BOOL_TAG)) {
            want = YJ_BOOL_TRUE;
        } else if (!strcmp(tag, YAML_INT_TAG)) {
            want = YJ_INT;
        } else if (!strcmp(tag, YAML_FLOAT_TAG)) {
            want = YJ_FLOAT;
        } else {
            typed = false; /* application tag: resolve as untagged */
        }
    }
    if (!plain && !typed) {
        return yj_string(yp, s, n);
    }
    if (memchr(s, '\0', n)) {
        return yj_string(yp, s, n);
    }
    enum yj_kind k = classify_plain(s, n);
    if (typed) {
        bool ok = k == want || (want == YJ_BOOL_TRUE && k == YJ_BOOL_FALSE) ||
                  (want == YJ_FLOAT && k == YJ_INT);
        if (!ok) {
            yj_error_at(yp, &yp->ev.start_mark, "cannot decode \"%.*s\" as %s",
                        (int) DPF_MIN(n, 64), s, tag);
            return NULL;
        }
        k = want == YJ_FLOAT ? YJ_FLOAT : k;
    }
    switch (k) {
    case YJ_NULL:
        return json_null();
    case YJ_BOOL_TRUE:
        return json_true();
    case YJ_BOOL_FALSE:
        return json_false();
    case YJ_INT: {
        json_int_t v = 0;
        bool overflow;
        parse_int(s, n, &v, &overflow);
        if (!overflow) {
            return json_integer(v);
        }
        if (!is_float(s, n)) {
            return yj_string(yp, s, n); /* huge hex/octal */
        }
        /* big decimal integers become floats, as in JSON */
        return yj_real(yp, s, n);
    }
    case YJ_FLOAT:
        return yj_real(yp, s, n);
    case YJ_STR:
        break;
    }
    return yj_string(yp, s, n);
}

static json_t *
yj_real(struct yj_parser *yp, const char *s, size_t n)
{
    {
        char *tmp = xstrndup(s, n);
        char *w = tmp;
        for (char *r = tmp; *r; r++) {
            if (*r != '_') {
                *w++ = *r;
            }
        }
        *w = '\0';
        double d = strtod(tmp, NULL);
        free(tmp);
        if (isfinite(d)) {
            return json_real(d);
        }
        return yj_string(yp, s, n); /* 1e999: JSON has no infinity */
    }
}

static json_t *yj_node(struct yj_parser *yp, int depth);

/* Apply YAML merge keys ("<<: *base" or "<<: [*a, *b]"): keys already in
 * obj win. */
static int
yj_apply_merge(struct yj_parser *yp, json_t *obj, json_t *src,
               const yaml_mark_t *mark)
{
    if (json_is_array(src)) {
        size_t i;
        json_t *e;
        json_array_foreach(src, i, e)
        {
            if (!json_is_object(e)) {
                yj_error_at(yp, mark,
                            "merge key value must be a mapping or "
                            "a sequence of mappings");
                return -EINVAL;
            }
            if (yj_apply_merge(yp, obj, e, mark) < 0) {
                return -EINVAL;
            }
        }
        return 0;
    }
    if (!json_is_object(src)) {
        yj_error_at(yp, mark,
                    "merge key value must be a mapping or a "
                    "sequence of mappings");
        return -EINVAL;
    }
    const char *k;
    json_t *v;
    json_object_foreach(src, k, v)
    {
        if (!json_object_get(obj, k)) {
            json_object_set(obj, k, v);
        }
    }
    return 0;
}

static json_t *
yj_mapping(struct yj_parser *yp, int depth)
{
    json_t *obj = json_object();
    json_t *merges = json_array();
    yaml_mark_t merge_mark = yp->ev.start_mark;
    for (;;) {
        if (yj_next(yp) < 0) {
            goto fail;
        }
        if (yp->ev.type == YAML_MAPPING_END_EVENT) {
            break;
        }
        yaml_mark_t kmark = yp->ev.start_mark;
        char *key = NULL;
        bool is_merge = false;
        if (yp->ev.type == YAML_SCALAR_EVENT) {
            const char *s = (const char *) yp->ev.data.scalar.value;
            size_t n = yp->ev.data.scalar.length;
            if (memchr(s, '\0', n)) {
                yj_error_at(yp, &kmark, "mapping key contains a NUL byte");
                goto fail;
            }
            is_merge = yp->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                       n == 2 && !memcmp(s, "<<", 2);
            key = xstrndup(s, n);
            if (yp->ev.data.scalar.anchor) {
                json_t *kv = json_stringn(s, n);
                if (kv) {
                    yj_anchor_add(yp, (const char *) yp->ev.data.scalar.anchor,
                                  kv);
                    json_decref(kv);
                }
            }
        } else if (yp->ev.type == YAML_ALIAS_EVENT) {
            json_t *kv = NULL;
            const char *an = (const char *) yp->ev.data.alias.anchor;
            for (size_t i = yp->n_anchors; i-- > 0;) {
                if (!strcmp(yp->anchors[i].name, an)) {
                    kv = yp->anchors[i].val;
                    break;
                }
            }
            if (!json_is_string(kv)) {
                yj_error_at(yp, &kmark, "alias *%s cannot be a mapping key",
                            an);
                goto fail;
            }
            key = xstrdup(json_string_value(kv));
        } else {
            yj_error_at(yp, &kmark, "mapping keys must be scalars");
            goto fail;
        }
        if (!is_merge && json_object_get(obj, key)) {
            yj_error_at(yp, &kmark, "duplicate key \"%.200s\"", key);
            free(key);
            goto fail;
        }
        if (yj_next(yp) < 0) {
            free(key);
            goto fail;
        }
        json_t *val = yj_node(yp, depth + 1);
        if (!val) {
            free(key);
            goto fail;
        }
        if (is_merge) {
            merge_mark = kmark;
            json_array_append_new(merges, val);
        } else {
            json_object_set_new(obj, key, val);
        }
        free(key);
    }
    size_t i;
    json_t *m;
    json_array_foreach(merges, i, m)
    {
        if (yj_apply_merge(yp, obj, m, &merge_mark) < 0) {
            goto fail;
        }
    }
    json_decref(merges);
    return obj;
fail:
    json_decref(merges);
    json_decref(obj);
    return NULL;
}

static json_t *
yj_sequence(struct yj_parser *yp, int depth)
{
    json_t *arr = json_array();
    for (;;) {
        if (yj_next(yp) < 0) {
            json_decref(arr);
            return NULL;
        }
        if (yp->ev.type == YAML_SEQUENCE_END_EVENT) {
            return arr;
        }
        json_t *v = yj_node(yp, depth + 1);
        if (!v) {
            json_decref(arr);
            return NULL;
        }
        json_array_append_new(arr, v);
    }
}

/* Build the node starting at the current event. */
static json_t *
yj_node(struct yj_parser *yp, int depth)
{
    if (depth > YAMLJSON_MAX_DEPTH) {
        yj_error_at(yp, &yp->ev.start_mark, "nesting deeper than %d levels",
                    YAMLJSON_MAX_DEPTH);
        return NULL;
    }
    json_t *v = NULL;
    char *anchor = NULL;
    switch (yp->ev.type) {
    case YAML_ALIAS_EVENT: {
        const char *an = (const char *) yp->ev.data.alias.anchor;
        for (size_t i = yp->n_anchors; i-- > 0;) {
            struct yj_anchor *a = &yp->anchors[i];
            if (strcmp(a->name, an)) {
                continue;
            }
            yp->alias_nodes += a->nodes;
            if (yp->alias_nodes > YAMLJSON_MAX_ALIAS_NODES) {
                yj_error_at(yp, &yp->ev.start_mark,
                            "aliases expand to more than %d nodes",
                            YAMLJSON_MAX_ALIAS_NODES);
                return NULL;
            }
            return json_deep_copy(a->val);
        }
        yj_error_at(yp, &yp->ev.start_mark, "unknown anchor \"%.100s\"", an);
        return NULL;
    }
    case YAML_SCALAR_EVENT:
        anchor = xstrdup((const char *) yp->ev.data.scalar.anchor);
        v = yj_scalar(yp);
        break;
    case YAML_SEQUENCE_START_EVENT:
        anchor = xstrdup((const char *) yp->ev.data.sequence_start.anchor);
        v = yj_sequence(yp, depth);
        break;
    case YAML_MAPPING_START_EVENT:
        anchor = xstrdup((const char *) yp->ev.data.mapping_start.anchor);
        v = yj_mapping(yp, depth);
        break;
    default:
        yj_error_at(yp, &yp->ev.start_mark, "unexpected event");
        return NULL;
    }
    if (v && anchor) {
        yj_anchor_add(yp, anchor, v);
    }
    free(anchor);
    return v;
}

static int
json_depth_ok(const json_t *v, int depth)
{
    if (depth > YAMLJSON_MAX_DEPTH) {
        return false;
    }
    const char *k;
    json_t *c;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach((json_t *) v, k, c)
        {
            if (!json_depth_ok(c, depth + 1)) {
                return false;
            }
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, c)
        {
            if (!json_depth_ok(c, depth + 1)) {
                return false;
            }
        }
    }
    return true;
}

/* JSON fast path: NULL if jansson does not take the text. */
static json_t *
try_json(const char *text, size_t len)
{
    size_t i = 0;
    while (i < len && strchr(" \t\r\n", text[i])) {
        i++;
    }
    if (i == len || (text[i] != '{' && text[i] != '[')) {
        return NULL;
    }
    json_error_t jerr;
    json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (v && !json_depth_ok(v, 0)) {
        json_decref(v);
        return NULL; /* the YAML parser reports the depth error */
    }
    return v;
}

int
yamljson_parse(const char *text, size_t len, json_t **docs,
               struct dpf_error *err)
{
    *docs = NULL;
    json_t *fast = try_json(text, len);
    if (fast) {
        *docs = json_array();
        json_array_append_new(*docs, fast);
        return 0;
    }

    struct yj_parser yp = {.err = err};
    if (!yaml_parser_initialize(&yp.p)) {
        dpf_error_set(err, 500, "InternalError", "yaml: out of memory");
        return -ENOMEM;
    }
    yaml_parser_set_input_string(&yp.p, (const unsigned char *) text, len);
    json_t *out = json_array();
    int rc = -EINVAL;
    for (;;) {
        if (yj_next(&yp) < 0) {
            goto done;
        }
        if (yp.ev.type == YAML_STREAM_END_EVENT) {
            break;
        }
        if (yp.ev.type != YAML_DOCUMENT_START_EVENT) {
            continue; /* STREAM_START */
        }
        if (yj_next(&yp) < 0) {
            goto done;
        }
        json_t *doc = yj_node(&yp, 0);
        if (!doc) {
            goto done;
        }
        if (yj_next(&yp) < 0) { /* DOCUMENT_END */
            json_decref(doc);
            goto done;
        }
        yj_anchors_clear(&yp);
        if (json_is_null(doc)) {
            json_decref(doc);
        } else {
            json_array_append_new(out, doc);
        }
    }
    rc = 0;
done:
    if (yp.have_ev) {
        yaml_event_delete(&yp.ev);
    }
    yj_anchors_clear(&yp);
    free(yp.anchors);
    yaml_parser_delete(&yp.p);
    if (rc < 0) {
        json_decref(out);
        if (!dpf_error_is_set(err)) {
            dpf_error_set(err, 400, "BadRequest", "yaml: invalid input");
        }
        return rc;
    }
    *docs = out;
    return 0;
}

int
yamljson_parse_one(const char *text, size_t len, json_t **doc,
                   struct dpf_error *err)
{
    json_t *docs;
    *doc = NULL;
    int rc = yamljson_parse(text, len, &docs, err);
    if (rc < 0) {
        return rc;
    }
    size_t n = json_array_size(docs);
    if (n != 1) {
        dpf_error_set(err, 400, "BadRequest",
                      n == 0 ? "yaml: no document in input"
                             : "yaml: expected one document, found %zu",
                      n);
        json_decref(docs);
        return -EINVAL;
    }
    *doc = json_incref(json_array_get(docs, 0));
    json_decref(docs);
    return 0;
}

/* ---- emitter ---- */

/* Decode one UTF-8 sequence (input is valid: jansson checks). */
static uint32_t
utf8_next(const unsigned char *s, size_t n, size_t *i)
{
    unsigned char c = s[*i];
    uint32_t cp;
    size_t len;
    if (c < 0x80) {
        cp = c, len = 1;
    } else if ((c & 0xE0) == 0xC0) {
        cp = c & 0x1F, len = 2;
    } else if ((c & 0xF0) == 0xE0) {
        cp = c & 0x0F, len = 3;
    } else {
        cp = c & 0x07, len = 4;
    }
    if (*i + len > n) {
        len = n - *i;
    }
    for (size_t k = 1; k < len; k++) {
        cp = (cp << 6) | (s[*i + k] & 0x3F);
    }
    *i += len;
    return cp;
}

/* Characters that must be written as escapes (not printable in YAML, or
 * YAML 1.1 line breaks that would fold). */
static bool
cp_needs_escape(uint32_t cp)
{
    if (cp < 0x20 || cp == 0x7F) {
        return true;
    }
    if (cp >= 0x80 && cp < 0xA0) {
        return true;
    }
    return cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF || cp == 0xFFFE ||
           cp == 0xFFFF || (cp >= 0xD800 && cp <= 0xDFFF);
}

/* YAML 1.1 readers (go-yaml, PyYAML) resolve plain scalars that start
 * like a date ("2026-11-22", "2026-11-22T04:40:55Z") to timestamps, so
 * such strings are quoted, as kubectl does. Conservative: any string that
 * starts with YYYY-M counts. */
static bool
looks_like_timestamp(const char *s, size_t n)
{
    if (n < 6) {
        return false;
    }
    for (int i = 0; i < 4; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    return s[4] == '-' && s[5] >= '0' && s[5] <= '9';
}

enum yj_style {
    YJ_PLAIN,
    YJ_SINGLE,
    YJ_DOUBLE,
    YJ_LITERAL,
};

static enum yj_style
choose_style(const char *s, size_t n, bool is_key)
{
    if (n == 0) {
        return YJ_DOUBLE;
    }
    bool has_nl = false, has_escape = false, has_tab = false, has_cr = false;
    for (size_t i = 0; i < n;) {
        uint32_t cp = utf8_next((const unsigned char *) s, n, &i);
        if (cp == '\n') {
            has_nl = true;
        } else if (cp == '\t') {
            has_tab = true;
        } else if (cp == '\r') {
            has_cr = true;
        } else if (cp_needs_escape(cp)) {
            has_escape = true;
        }
    }
    if (has_escape || has_cr) {
        return YJ_DOUBLE;
    }
    if (has_nl) {
        if (is_key) {
            return YJ_DOUBLE;
        }
        /* literal block needs a non-blank first content line that does not
         * start with white space (no indentation indicator needed) */
        size_t i = 0;
        while (i < n && s[i] == '\n') {
            i++;
        }
        if (i == n || s[i] == ' ' || s[i] == '\t') {
            return YJ_DOUBLE;
        }
        /* a line that is blank but for white space, before the first
         * content line, would confuse indentation detection: none here
         * since leading lines are empty. */
        return YJ_LITERAL;
    }
    if (classify_plain(s, n) != YJ_STR || is_yaml11_ambiguous(s, n) ||
        looks_like_timestamp(s, n)) {
        return YJ_DOUBLE;
    }
    bool plain = !has_tab;
    unsigned char c0 = (unsigned char) s[0];
    if (strchr("?:,[]{}#&*!|>'\"%@`", c0)) {
        plain = false;
    }
    if (c0 == '-' && (n == 1 || s[1] == ' ')) {
        plain = false;
    }
    if (s[0] == ' ' || s[n - 1] == ' ' || s[n - 1] == ':') {
        plain = false;
    }
    if (n >= 3 && (!memcmp(s, "---", 3) || !memcmp(s, "...", 3))) {
        plain = false;
    }
    for (size_t i = 0; plain && i + 1 < n; i++) {
        if ((s[i] == ':' && s[i + 1] == ' ') ||
            (s[i] == ' ' && s[i + 1] == '#')) {
            plain = false;
        }
    }
    if (plain) {
        return YJ_PLAIN;
    }
    return has_tab ? YJ_DOUBLE : YJ_SINGLE;
}

static void
emit_double(struct dbuf *b, const char *s, size_t n)
{
    dbuf_puts(b, "\"");
    for (size_t i = 0; i < n;) {
        size_t start = i;
        uint32_t cp = utf8_next((const unsigned char *) s, n, &i);
        switch (cp) {
        case '"':
            dbuf_puts(b, "\\\"");
            continue;
        case '\\':
            dbuf_puts(b, "\\\\");
            continue;
        case '\n':
            dbuf_puts(b, "\\n");
            continue;
        case '\t':
            dbuf_puts(b, "\\t");
            continue;
        case '\r':
            dbuf_puts(b, "\\r");
            continue;
        case 0:
            dbuf_puts(b, "\\0");
            continue;
        default:
            break;
        }
        if (!cp_needs_escape(cp)) {
            dbuf_append(b, s + start, i - start);
        } else if (cp < 0x100) {
            dbuf_printf(b, "\\x%02X", (unsigned) cp);
        } else {
            dbuf_printf(b, "\\u%04X", (unsigned) cp);
        }
    }
    dbuf_puts(b, "\"");
}

static void
emit_single(struct dbuf *b, const char *s, size_t n)
{
    dbuf_puts(b, "'");
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\'') {
            dbuf_puts(b, "''");
        } else {
            dbuf_append(b, s + i, 1);
        }
    }
    dbuf_puts(b, "'");
}

static void
emit_indent(struct dbuf *b, int indent)
{
    static const char spaces[] = "                                ";
    while (indent > 0) {
        int k = DPF_MIN(indent, (int) sizeof spaces - 1);
        dbuf_append(b, spaces, (size_t) k);
        indent -= k;
    }
}

/* Literal block body: header already written up to the indicator. */
static void
emit_literal(struct dbuf *b, const char *s, size_t n, int indent)
{
    size_t trailing = 0;
    while (trailing < n && s[n - 1 - trailing] == '\n') {
        trailing++;
    }
    dbuf_puts(b, trailing == 0 ? "|-\n" : trailing == 1 ? "|\n" : "|+\n");
    size_t end = trailing == 0 ? n : n - 1; /* drop the final line break */
    size_t i = 0;
    while (i <= end && i < n) {
        const char *nl = memchr(s + i, '\n', end - i);
        size_t line_end = nl ? (size_t) (nl - s) : end;
        if (line_end > i) {
            emit_indent(b, indent);
            dbuf_append(b, s + i, line_end - i);
        }
        dbuf_puts(b, "\n");
        if (!nl) {
            break;
        }
        i = line_end + 1;
    }
}

static void
emit_string_inline(struct dbuf *b, const char *s, size_t n, bool is_key)
{
    switch (choose_style(s, n, is_key)) {
    case YJ_PLAIN:
        dbuf_append(b, s, n);
        break;
    case YJ_SINGLE:
        emit_single(b, s, n);
        break;
    default:
        emit_double(b, s, n);
        break;
    }
}

static void
emit_real(struct dbuf *b, double d)
{
    char buf[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) {
            break;
        }
    }
    dbuf_puts(b, buf);
    if (!strpbrk(buf, ".eEn")) {
        dbuf_puts(b, ".0");
    }
}

/* Scalars and empty collections on the current line; the caller has
 * written "key: " or "- " (or nothing at the root). indent is where a
 * literal block's lines go. Returns false for non-empty collections. */
static bool
emit_inline(struct dbuf *b, const json_t *v, int indent)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        if (json_object_size(v) > 0) {
            return false;
        }
        dbuf_puts(b, "{}\n");
        return true;
    case JSON_ARRAY:
        if (json_array_size(v) > 0) {
            return false;
        }
        dbuf_puts(b, "[]\n");
        return true;
    case JSON_STRING: {
        const char *s = json_string_value(v);
        size_t n = json_string_length(v);
        if (choose_style(s, n, false) == YJ_LITERAL) {
            emit_literal(b, s, n, indent);
        } else {
            emit_string_inline(b, s, n, false);
            dbuf_puts(b, "\n");
        }
        return true;
    }
    case JSON_INTEGER:
        dbuf_printf(b, "%" JSON_INTEGER_FORMAT "\n", json_integer_value(v));
        return true;
    case JSON_REAL:
        emit_real(b, json_real_value(v));
        dbuf_puts(b, "\n");
        return true;
    case JSON_TRUE:
        dbuf_puts(b, "true\n");
        return true;
    case JSON_FALSE:
        dbuf_puts(b, "false\n");
        return true;
    case JSON_NULL:
        dbuf_puts(b, "null\n");
        return true;
    }
    return true;
}

static void emit_block(struct dbuf *b, const json_t *v, int indent,
                       bool first_inline);

/* A non-empty mapping whose keys start at column indent; if first_inline
 * the cursor already stands at that column (after "- "). */
static void
emit_mapping(struct dbuf *b, const json_t *obj, int indent, bool first_inline)
{
    const char *k;
    json_t *v;
    bool first = true;
    json_object_foreach((json_t *) obj, k, v)
    {
        if (!(first && first_inline)) {
            emit_indent(b, indent);
        }
        first = false;
        size_t kn = strlen(k);
        struct dbuf kb;
        dbuf_init(&kb);
        emit_string_inline(&kb, k, kn, true);
        if (kb.len > YAMLJSON_MAX_SIMPLE_KEY) {
            dbuf_puts(b, "? ");
            dbuf_append(b, kb.data, kb.len);
            dbuf_puts(b, "\n");
            emit_indent(b, indent);
            dbuf_puts(b, ":");
        } else {
            dbuf_append(b, kb.data, kb.len);
            dbuf_puts(b, ":");
        }
        dbuf_free(&kb);
        bool empty_coll = (json_is_object(v) && json_object_size(v) == 0) ||
                          (json_is_array(v) && json_array_size(v) == 0);
        if (!json_is_object(v) && !json_is_array(v)) {
            dbuf_puts(b, " ");
            emit_inline(b, v, indent + 2);
        } else if (empty_coll) {
            dbuf_puts(b, " ");
            emit_inline(b, v, indent + 2);
        } else {
            dbuf_puts(b, "\n");
            /* kubectl style: sequences at the key's indentation */
            emit_block(b, v, json_is_array(v) ? indent : indent + 2, false);
        }
    }
}

static void
emit_sequence(struct dbuf *b, const json_t *arr, int indent, bool first_inline)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!(i == 0 && first_inline)) {
            emit_indent(b, indent);
        }
        dbuf_puts(b, "- ");
        if (!emit_inline(b, v, indent + 2)) {
            emit_block(b, v, indent + 2, true);
        }
    }
}

static void
emit_block(struct dbuf *b, const json_t *v, int indent, bool first_inline)
{
    if (json_is_object(v)) {
        emit_mapping(b, v, indent, first_inline);
    } else {
        emit_sequence(b, v, indent, first_inline);
    }
}

char *
yamljson_emit(const json_t *doc)
{
    struct dbuf b;
    dbuf_init(&b);
    if (!doc) {
        dbuf_puts(&b, "null\n");
    } else if (!emit_inline(&b, doc, 2)) {
        emit_block(&b, doc, 0, false);
    }
    return dbuf_steal(&b, NULL);
}
