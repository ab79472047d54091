/* schema: the engine behind api/schema.h. See schema-node.h for the
 * declaration types and docs/dev/schema.md for how to declare a kind.
 *
 * Patterns use PCRE2 (JIT-compiled once at start-up): the CRD patterns are
 * Go RE2 syntax, which PCRE2 accepts unchanged. Every walk keeps the field
 * path in a fixed buffer, so validating an object allocates nothing unless
 * it is invalid. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "api/schema.h"

#include <ctype.h>
#include <errno.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/schema-node.h"
#include "lib/base/util.h"
#include "lib/codecs/jsonpath.h"

/* ------------------------------------------------------------------ */
/* registry                                                             */
/* ------------------------------------------------------------------ */

/* Per-kind strings computed once. */
struct kind_rt {
    const struct schema_kind *k; /* the declaration */
    char api_version[96];        /* "group/version" or "v1" */
    char qualified[128];         /* "DPUSet.provisioning.dpu.nvidia.com" */
    bool name_is_label;          /* DNS-1123 label names (Namespace) */
};

#define SCHEMA_HT_SIZE 256 /* power of two, > 4 x number of kinds */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static struct kind_rt *g_rt;
static const struct schema_kind **g_list;
static size_t g_n;
static unsigned short g_ht_res[SCHEMA_HT_SIZE];  /* index + 1, 0 = empty */
static unsigned short g_ht_kind[SCHEMA_HT_SIZE]; /* index + 1, 0 = empty */

static uint32_t
fnv_step(uint32_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char) *s;
        h *= 16777619u;
    }
    return h;
}

static uint32_t
hash3(const char *a, const char *b, const char *c)
{
    uint32_t h = 2166136261u;
    h = fnv_step(h, a);
    h = fnv_step(h, "/");
    h = fnv_step(h, b);
    if (c) {
        h = fnv_step(h, "/");
        h = fnv_step(h, c);
    }
    return h;
}

static void
ht_insert(unsigned short *ht, uint32_t h, size_t idx)
{
    for (uint32_t i = 0; i < SCHEMA_HT_SIZE; i++) {
        uint32_t slot = (h + i) & (SCHEMA_HT_SIZE - 1);
        if (!ht[slot]) {
            ht[slot] = (unsigned short) (idx + 1);
            return;
        }
    }
}

static void init_node(const struct schema_node *n, int depth);

static void
init_fields(const struct schema_node *n, int depth)
{
    if (n->fields) {
        for (const struct schema_field *f = n->fields; f->name; f++) {
            init_node(f->node, depth + 1);
        }
    }
    if (n->items) {
        init_node(n->items, depth + 1);
    }
}

static void
init_node(const struct schema_node *n, int depth)
{
    if (!n || depth > 64) {
        return;
    }
    if (n->pattern && !n->pattern->code) {
        int errcode;
        PCRE2_SIZE erroff;
        pcre2_code *re = pcre2_compile(
            (PCRE2_SPTR) n->pattern->src, PCRE2_ZERO_TERMINATED,
            PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &errcode, &erroff, NULL);
        if (re) {
            pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
            n->pattern->code = re;
        } else {
            fprintf(stderr, "schema: bad pattern %s at %zu\n", n->pattern->src,
                    (size_t) erroff);
        }
    }
    if (n->def && !n->def->value) {
        json_error_t jerr;
        n->def->value = json_loads(n->def->json, JSON_DECODE_ANY, &jerr);
        if (!n->def->value) {
            fprintf(stderr, "schema: bad default %s: %s\n", n->def->json,
                    jerr.text);
        }
    }
    init_fields(n, depth);
}

static void
schema_init(void)
{
    const struct schema_kind *const *lists[] = {
        schema_kinds_provisioning,
        schema_kinds_svc,
        schema_kinds_operator,
        schema_kinds_core,
    };
    size_t n = 0;
    for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
        for (const struct schema_kind *const *k = lists[i]; *k; k++) {
            n++;
        }
    }
    g_rt = xcalloc(n, sizeof *g_rt);
    g_list = xcalloc(n + 1, sizeof *g_list);
    for (size_t i = 0; i < ARRAY_SIZE(lists); i++) {
        for (const struct schema_kind *const *k = lists[i]; *k; k++) {
            struct kind_rt *rt = &g_rt[g_n];
            rt->k = *k;
            if ((*k)->group[0]) {
                snprintf(rt->api_version, sizeof rt->api_version, "%s/%s",
                         (*k)->group, (*k)->version);
                snprintf(rt->qualified, sizeof rt->qualified, "%s.%s",
                         (*k)->kind, (*k)->group);
            } else {
                snprintf(rt->api_version, sizeof rt->api_version, "%s",
                         (*k)->version);
                snprintf(rt->qualified, sizeof rt->qualified, "%s", (*k)->kind);
            }
            rt->name_is_label =
                !(*k)->group[0] && !strcmp((*k)->kind, "Namespace");
            ht_insert(g_ht_res, hash3((*k)->group, (*k)->version, (*k)->plural),
                      g_n);
            ht_insert(g_ht_kind, hash3(rt->api_version, (*k)->kind, NULL), g_n);
            g_list[g_n] = *k;
            init_node((*k)->root, 0);
            g_n++;
        }
    }
}

static void
ensure_init(void)
{
    pthread_once(&g_once, schema_init);
}

static const struct kind_rt *
kind_rt(const struct schema_kind *k)
{
    ensure_init();
    for (size_t i = 0; i < g_n; i++) {
        if (g_rt[i].k == k) {
            return &g_rt[i];
        }
    }
    return NULL;
}

const struct schema_kind *const *
schema_kinds(size_t *n)
{
    ensure_init();
    if (n) {
        *n = g_n;
    }
    return g_list;
}

const struct schema_kind *
schema_find_resource(const char *group, const char *version, const char *plural)
{
    ensure_init();
    if (!group || !version || !plural) {
        return NULL;
    }
    uint32_t h = hash3(group, version, plural);
    for (uint32_t i = 0; i < SCHEMA_HT_SIZE; i++) {
        unsigned short v = g_ht_res[(h + i) & (SCHEMA_HT_SIZE - 1)];
        if (!v) {
            return NULL;
        }
        const struct schema_kind *k = g_rt[v - 1].k;
        if (!strcmp(k->plural, plural) && !strcmp(k->group, group) &&
            !strcmp(k->version, version)) {
            return k;
        }
    }
    return NULL;
}

const struct schema_kind *
schema_find_kind(const char *api_version, const char *kind)
{
    ensure_init();
    if (!api_version || !kind) {
        return NULL;
    }
    uint32_t h = hash3(api_version, kind, NULL);
    for (uint32_t i = 0; i < SCHEMA_HT_SIZE; i++) {
        unsigned short v = g_ht_kind[(h + i) & (SCHEMA_HT_SIZE - 1)];
        if (!v) {
            return NULL;
        }
        const struct kind_rt *rt = &g_rt[v - 1];
        if (!strcmp(rt->k->kind, kind) &&
            !strcmp(rt->api_version, api_version)) {
            return rt->k;
        }
    }
    return NULL;
}

static bool
word_matches(const struct schema_kind *k, const char *w, size_t len)
{
    const char *cands[] = {k->plural, k->singular, k->kind};
    for (size_t i = 0; i < ARRAY_SIZE(cands); i++) {
        if (cands[i] && strlen(cands[i]) == len &&
            !strncasecmp(cands[i], w, len)) {
            return true;
        }
    }
    for (const char *const *s = k->short_names; s && *s; s++) {
        if (strlen(*s) == len && !strncasecmp(*s, w, len)) {
            return true;
        }
    }
    return false;
}

/* Does the user's group text name k's group (exactly, or as a prefix that
 * ends at a dot: "provisioning" for "provisioning.dpu.nvidia.com")? */
static bool
group_matches(const struct schema_kind *k, const char *g)
{
    size_t n = strlen(g);
    if (strncasecmp(k->group, g, n)) {
        return false;
    }
    return k->group[n] == '\0' || k->group[n] == '.';
}

const struct schema_kind *
schema_find_name(const char *word)
{
    ensure_init();
    if (!word || !*word) {
        return NULL;
    }
    const char *dot = strchr(word, '.');
    size_t len = dot ? (size_t) (dot - word) : strlen(word);
    /* Core kinds win a plain word only if no DPF kind claims it. */
    for (size_t i = 0; i < g_n; i++) {
        const struct schema_kind *k = g_rt[i].k;
        if (!word_matches(k, word, len)) {
            continue;
        }
        if (dot && !group_matches(k, dot + 1)) {
            continue;
        }
        return k;
    }
    return NULL;
}

const char *
schema_api_version(const struct schema_kind *k)
{
    const struct kind_rt *rt = kind_rt(k);
    return rt ? rt->api_version : "";
}

/* ------------------------------------------------------------------ */
/* error helpers                                                        */
/* ------------------------------------------------------------------ */

static const char *
json_type_name(const json_t *v)
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
        snprintf(buf, size, "\"%s\"", json_type_name(v));
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

/* Fill err's code/reason/message from its causes. */
static void
finish_invalid(const struct schema_kind *k, const json_t *obj,
               struct dpf_error *err, int invalid_code)
{
    const struct kind_rt *rt = kind_rt(k);
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

/* ------------------------------------------------------------------ */
/* small string validators                                              */
/* ------------------------------------------------------------------ */

/* One match-data block per thread, freed when the thread exits. */
static pthread_key_t g_md_key;
static pthread_once_t g_md_once = PTHREAD_ONCE_INIT;

static void
md_free(void *md)
{
    pcre2_match_data_free(md);
}

static void
md_key_init(void)
{
    pthread_key_create(&g_md_key, md_free);
}

bool
schema_re_match(const struct schema_re *re, const char *s, size_t len)
{
    if (!re || !re->code) {
        return false;
    }
    pthread_once(&g_md_once, md_key_init);
    pcre2_match_data *md = pthread_getspecific(g_md_key);
    if (!md) {
        /* Only whether it matches matters: one pair is enough (a match
         * with more groups returns 0, still a match). */
        md = pcre2_match_data_create(1, NULL);
        pthread_setspecific(g_md_key, md);
    }
    int rc = pcre2_match((pcre2_code *) re->code, (PCRE2_SPTR) s, len, 0, 0, md,
                         NULL);
    return rc >= 0;
}

static bool
is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool
is_alnum(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* [a-z0-9]([-a-z0-9]*[a-z0-9])? of length len */
static bool
dns_label_n(const char *s, size_t len)
{
    if (len == 0 || len > 63) {
        return false;
    }
    if (!is_lower_alnum(s[0]) || !is_lower_alnum(s[len - 1])) {
        return false;
    }
    for (size_t i = 1; i + 1 < len; i++) {
        if (!is_lower_alnum(s[i]) && s[i] != '-') {
            return false;
        }
    }
    return true;
}

bool
schema_is_dns_label(const char *s)
{
    return s && dns_label_n(s, strlen(s));
}

static bool
dns_subdomain_n(const char *s, size_t len)
{
    if (len == 0 || len > 253) {
        return false;
    }
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            /* Each dot-separated part: [a-z0-9]([-a-z0-9]*[a-z0-9])? but
             * without the 63 limit of a label. */
            size_t n = i - start;
            if (n == 0 || !is_lower_alnum(s[start]) ||
                !is_lower_alnum(s[i - 1])) {
                return false;
            }
            for (size_t j = start; j < i; j++) {
                if (!is_lower_alnum(s[j]) && s[j] != '-') {
                    return false;
                }
            }
            start = i + 1;
        }
    }
    return true;
}

bool
schema_is_dns_subdomain(const char *s)
{
    return s && dns_subdomain_n(s, strlen(s));
}

/* ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9] */
static bool
qualified_name_part(const char *s, size_t len)
{
    if (len == 0 || len > 63 || !is_alnum(s[0]) || !is_alnum(s[len - 1])) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.') {
            return false;
        }
    }
    return true;
}

static const char msg_qname[] =
    "name part must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character (e.g. "
    "'MyName', or 'my.name', or '123-abc')";

/* Add an Invalid cause for a key (a string value) with a message. */
static void
key_invalid(struct dpf_error *err, const char *path, const char *key,
            const char *msg)
{
    json_t *jk = json_string(key);
    schema_err_invalid(err, path, jk, "%s", msg);
    json_decref(jk);
}

int
schema_check_qualified_name(const char *key, const char *path,
                            struct dpf_error *err)
{
    const char *slash = strchr(key, '/');
    const char *name = slash ? slash + 1 : key;
    int rc = 0;
    if (slash) {
        size_t plen = (size_t) (slash - key);
        if (plen == 0) {
            key_invalid(err, path, key, "prefix part must be non-empty");
            rc = -EINVAL;
        } else if (!dns_subdomain_n(key, plen)) {
            key_invalid(err, path, key,
                        "prefix part a lowercase RFC 1123 subdomain must "
                        "consist of lower case alphanumeric characters, '-' "
                        "or '.', and must start and end with an alphanumeric "
                        "character");
            rc = -EINVAL;
        }
    }
    size_t nlen = strlen(name);
    if (nlen == 0) {
        key_invalid(err, path, key, "name part must be non-empty");
        rc = -EINVAL;
    } else if (nlen > 63) {
        key_invalid(err, path, key,
                    "name part must be no more than 63 characters");
        rc = -EINVAL;
    } else if (!qualified_name_part(name, nlen)) {
        key_invalid(err, path, key, msg_qname);
        rc = -EINVAL;
    }
    return rc;
}

int
schema_check_labels(const json_t *labels, const char *path,
                    struct dpf_error *err)
{
    if (!labels || !json_is_object(labels)) {
        return 0;
    }
    int rc = 0;
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *) labels, key, val)
    {
        if (schema_check_qualified_name(key, path, err) < 0) {
            rc = -EINVAL;
        }
        if (!json_is_string(val)) {
            continue; /* the field tree reports the type */
        }
        const char *s = json_string_value(val);
        size_t n = strlen(s);
        if (n > 63) {
            schema_err_invalid(err, path, val,
                               "must be no more than 63 characters");
            rc = -EINVAL;
        } else if (n && !qualified_name_part(s, n)) {
            schema_err_invalid(
                err, path, val,
                "a valid label must be an empty string or consist of "
                "alphanumeric characters, '-', '_' or '.', and must start "
                "and end with an alphanumeric character");
            rc = -EINVAL;
        }
    }
    return rc;
}

/* ------------------------------------------------------------------ */
/* object access helpers                                                */
/* ------------------------------------------------------------------ */

json_t *
schema_get(const json_t *obj, const char *dotted)
{
    const json_t *cur = obj;
    const char *p = dotted;
    while (cur && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t) (dot - p) : strlen(p);
        if (!json_is_object(cur)) {
            return NULL;
        }
        cur = json_object_getn(cur, p, n);
        p += n;
        if (*p == '.') {
            p++;
        }
    }
    return (json_t *) cur;
}

const char *
schema_get_str(const json_t *obj, const char *dotted)
{
    return json_string_value(schema_get(obj, dotted));
}

json_t *
schema_ensure_obj(json_t *obj, const char *dotted)
{
    json_t *cur = obj;
    const char *p = dotted;
    while (cur && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t) (dot - p) : strlen(p);
        json_t *next = json_object_getn(cur, p, n);
        if (!json_is_object(next)) {
            next = json_object();
            json_object_setn_new(cur, p, n, next);
        }
        cur = next;
        p += n;
        if (*p == '.') {
            p++;
        }
    }
    return cur;
}

/* ------------------------------------------------------------------ */
/* walking                                                              */
/* ------------------------------------------------------------------ */

/* The field path being visited, in a fixed buffer. */
struct walk {
    struct dpf_error *err;         /* causes go here */
    char path[512];                /* "spec.switches[0].ports" */
    size_t len;                    /* strlen(path) */
    enum schema_unknown_mode mode; /* prune: what to do with unknowns */
    json_t *unknown;               /* prune: paths of unknown fields */
};

/* Append text to the path (truncating at the buffer's end, never inside a
 * character: a path that is not valid UTF-8 cannot become a JSON string,
 * and an unknown field whose path was lost would slip past Strict). */
static void
path_append(struct walk *w, const char *s, size_t n)
{
    size_t room = sizeof w->path - 1 - w->len;
    if (n > room) {
        n = utf8_prefix(s, n, room);
    }
    memcpy(w->path + w->len, s, n);
    w->len += n;
    w->path[w->len] = '\0';
}

static size_t
path_push_key(struct walk *w, const char *key)
{
    size_t saved = w->len;
    if (w->len) {
        path_append(w, ".", 1);
    }
    path_append(w, key, strlen(key));
    return saved;
}

static size_t
path_push_index(struct walk *w, size_t idx)
{
    size_t saved = w->len;
    char buf[24];
    size_t n = sizeof buf;
    buf[--n] = ']';
    do {
        buf[--n] = (char) ('0' + idx % 10);
        idx /= 10;
    } while (idx && n > 1);
    buf[--n] = '[';
    path_append(w, buf + n, sizeof buf - n);
    return saved;
}

static size_t
path_push_mapkey(struct walk *w, const char *key)
{
    size_t saved = w->len;
    path_append(w, "[", 1);
    path_append(w, key, strlen(key));
    path_append(w, "]", 1);
    return saved;
}

static void
path_pop(struct walk *w, size_t saved)
{
    w->len = saved;
    w->path[saved] = '\0';
}

static const char *
type_word(enum schema_type t)
{
    switch (t) {
    case SCHEMA_T_OBJECT:
    case SCHEMA_T_MAP:
        return "object";
    case SCHEMA_T_ARRAY:
        return "array";
    case SCHEMA_T_STRING:
        return "string";
    case SCHEMA_T_INTEGER:
        return "integer";
    case SCHEMA_T_NUMBER:
        return "number";
    case SCHEMA_T_BOOLEAN:
        return "boolean";
    case SCHEMA_T_INT_OR_STRING:
        return "integer or string";
    case SCHEMA_T_ANY:
    default:
        return "any";
    }
}

static bool
type_ok(const struct schema_node *n, const json_t *v)
{
    switch (n->type) {
    case SCHEMA_T_OBJECT:
    case SCHEMA_T_MAP:
        return json_is_object(v);
    case SCHEMA_T_ARRAY:
        return json_is_array(v);
    case SCHEMA_T_STRING:
        return json_is_string(v);
    case SCHEMA_T_INTEGER:
        return json_is_integer(v);
    case SCHEMA_T_NUMBER:
        return json_is_number(v);
    case SCHEMA_T_BOOLEAN:
        return json_is_boolean(v);
    case SCHEMA_T_INT_OR_STRING:
        return json_is_integer(v) || json_is_string(v);
    case SCHEMA_T_ANY:
    default:
        return true;
    }
}

/* n decimal digits at s into *v. */
static bool
digits(const char *s, int n, int *v)
{
    *v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        *v = *v * 10 + (s[i] - '0');
    }
    return true;
}

/* RFC 3339 date-time as Kubernetes accepts it. */
static bool
is_date_time(const char *s)
{
    int y, mo, d, h, mi, sec;
    if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' ||
        !digits(s + 5, 2, &mo) || s[7] != '-' || !digits(s + 8, 2, &d) ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) ||
        s[16] != ':' || !digits(s + 17, 2, &sec)) {
        return false;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) {
        return false;
    }
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (!isdigit((unsigned char) *p)) {
            return false;
        }
        while (isdigit((unsigned char) *p)) {
            p++;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        return p[1] == '\0';
    }
    int tzh, tzm;
    return (*p == '+' || *p == '-') && digits(p + 1, 2, &tzh) && p[3] == ':' &&
           digits(p + 4, 2, &tzm) && p[6] == '\0';
}

static size_t
utf8_len(const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        if (((unsigned char) *s & 0xC0) != 0x80) {
            n++;
        }
    }
    return n;
}

static void validate_node(const struct schema_node *n, const json_t *v,
                          const json_t *old, struct walk *w, int depth);

static int
check_scalar(const struct schema_node *n, const json_t *v, struct walk *w)
{
    int bad = 0;
    const char *p = w->path;
    if (n->enum_values) {
        bool found = false;
        for (const char *const *e = n->enum_values; *e; e++) {
            if (json_is_string(v) && !strcmp(json_string_value(v), *e)) {
                found = true;
                break;
            }
        }
        if (!found) {
            char val[96], list[224];
            size_t off = 0;
            schema_value_str(v, val, sizeof val);
            list[0] = '\0';
            for (const char *const *e = n->enum_values; *e; e++) {
                int k = snprintf(list + off, sizeof list - off, "%s\"%s\"",
                                 off ? ", " : "", *e);
                if (k < 0 || (size_t) k >= sizeof list - off) {
                    break;
                }
                off += (size_t) k;
            }
            dpf_error_add_cause(w->err, DPF_CAUSE_NOT_SUPPORTED, p,
                                "Unsupported value: %s: supported values: %s",
                                val, list);
            bad++;
        }
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        if (n->max_len && (int64_t) utf8_len(s) > n->max_len) {
            dpf_error_add_cause(w->err, DPF_CAUSE_TOO_LONG, p,
                                "Too long: may not be longer than %lld",
                                (long long) n->max_len);
            bad++;
        }
        if (n->min_len && (int64_t) utf8_len(s) < n->min_len) {
            schema_err_invalid(w->err, p, v,
                               "%s in body should be at least %lld chars long",
                               p, (long long) n->min_len);
            bad++;
        }
        if (n->pattern && !schema_re_match(n->pattern, s, len)) {
            schema_err_invalid(w->err, p, v, "%s in body should match '%s'", p,
                               n->pattern->src);
            bad++;
        }
        if (n->format && !strcmp(n->format, "date-time") && !is_date_time(s)) {
            schema_err_invalid(
                w->err, p, v, "%s in body must be of type date-time: %s", p, s);
            bad++;
        }
    }
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if (n->has_min && x < n->min) {
            schema_err_invalid(
                w->err, p, v,
                "%s in body should be greater than or equal to %lld", p,
                (long long) n->min);
            bad++;
        }
        if (n->has_max && x > n->max) {
            schema_err_invalid(w->err, p, v,
                               "%s in body should be less than or equal to "
                               "%lld",
                               p, (long long) n->max);
            bad++;
        }
        if (n->format && !strcmp(n->format, "int32") &&
            (x < INT32_MIN || x > INT32_MAX)) {
            schema_err_invalid(w->err, p, v, "%s in body must be of type int32",
                               p);
            bad++;
        }
    }
    return bad;
}

static bool
is_empty_string(const json_t *v)
{
    return json_is_string(v) && json_string_length(v) == 0;
}

static void
check_immutable(const struct schema_node *n, const json_t *v, const json_t *old,
                struct walk *w)
{
    if (!n->immutable || !old) {
        return;
    }
    if (n->immutable_unless_empty && is_empty_string(old)) {
        return;
    }
    if (!json_equal((json_t *) v, (json_t *) old)) {
        json_t *t = json_string(json_type_name(v));
        schema_err_invalid(w->err, w->path, t, "%s", n->immutable);
        json_decref(t);
    }
}

static void
validate_object(const struct schema_node *n, const json_t *v, const json_t *old,
                struct walk *w, int depth)
{
    if (!n->fields) {
        return;
    }
    for (const struct schema_field *f = n->fields; f->name; f++) {
        json_t *c = json_object_get(v, f->name);
        size_t saved = path_push_key(w, f->name);
        /* A null the pruner would drop counts as absent. */
        if (!c || (json_is_null(c) && !f->node->nullable &&
                   f->node->type != SCHEMA_T_ANY)) {
            if (f->required) {
                schema_err_required(w->err, w->path, NULL);
            }
        } else {
            const json_t *oc =
                json_is_object(old) ? json_object_get(old, f->name) : NULL;
            validate_node(f->node, c, oc, w, depth + 1);
        }
        path_pop(w, saved);
    }
}

static void
validate_node(const struct schema_node *n, const json_t *v, const json_t *old,
              struct walk *w, int depth)
{
    if (depth > 64) {
        return;
    }
    if (json_is_null(v)) {
        if (n->nullable || n->type == SCHEMA_T_ANY) {
            return;
        }
    }
    if (!type_ok(n, v)) {
        json_t *t = json_string(json_type_name(v));
        dpf_error_add_cause(w->err, DPF_CAUSE_TYPE, w->path,
                            "Invalid value: \"%s\": %s in body must be of "
                            "type %s: \"%s\"",
                            json_type_name(v), w->path, type_word(n->type),
                            json_type_name(v));
        json_decref(t);
        return;
    }
    int bad = 0;
    switch (n->type) {
    case SCHEMA_T_OBJECT:
        validate_object(n, v, old, w, depth);
        break;
    case SCHEMA_T_MAP: {
        size_t np = json_object_size(v);
        if (n->max_props && (int64_t) np > n->max_props) {
            dpf_error_add_cause(w->err, DPF_CAUSE_TOO_MANY, w->path,
                                "Too many: %zu: must have at most %lld items",
                                np, (long long) n->max_props);
            bad++;
        }
        if (n->min_props && (int64_t) np < n->min_props) {
            json_t *c = json_integer((json_int_t) np);
            schema_err_invalid(w->err, w->path, c,
                               "%s in body should have at least %lld "
                               "properties",
                               w->path, (long long) n->min_props);
            json_decref(c);
            bad++;
        }
        const char *key;
        json_t *c;
        json_object_foreach((json_t *) v, key, c)
        {
            size_t saved = path_push_mapkey(w, key);
            const json_t *oc =
                json_is_object(old) ? json_object_get(old, key) : NULL;
            validate_node(n->items, c, oc, w, depth + 1);
            path_pop(w, saved);
        }
        break;
    }
    case SCHEMA_T_ARRAY: {
        size_t na = json_array_size(v);
        if (n->max_items && (int64_t) na > n->max_items) {
            dpf_error_add_cause(w->err, DPF_CAUSE_TOO_MANY, w->path,
                                "Too many: %zu: must have at most %lld items",
                                na, (long long) n->max_items);
            bad++;
        }
        if (n->min_items && (int64_t) na < n->min_items) {
            json_t *c = json_integer((json_int_t) na);
            schema_err_invalid(w->err, w->path, c,
                               "%s in body should have at least %lld items",
                               w->path, (long long) n->min_items);
            json_decref(c);
            bad++;
        }
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c)
        {
            size_t saved = path_push_index(w, i);
            validate_node(n->items, c, NULL, w, depth + 1);
            path_pop(w, saved);
        }
        break;
    }
    default:
        bad += check_scalar(n, v, w);
        break;
    }
    check_immutable(n, v, old, w);
    if (!bad && n->check) {
        n->check(v, w->path, w->err);
    }
}

/* ------------------------------------------------------------------ */
/* metadata                                                             */
/* ------------------------------------------------------------------ */

static const char msg_subdomain[] =
    "a lowercase RFC 1123 subdomain must consist of lower case "
    "alphanumeric characters, '-' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'example.com')";
static const char msg_label[] =
    "a lowercase RFC 1123 label must consist of lower case alphanumeric "
    "characters or '-', and must start and end with an alphanumeric "
    "character (e.g. 'my-name', or '123-abc')";

/* Check a name (or generateName prefix) and add causes at path. */
static int
check_name(bool label, const char *name, bool prefix, const char *path,
           struct dpf_error *err)
{
    char buf[300];
    snprintf(buf, sizeof buf, "%s", name);
    size_t len = strlen(buf);
    if (prefix && len && buf[len - 1] == '-') {
        buf[len - 1] = 'a'; /* a generateName prefix may end in '-' */
    }
    size_t max = label ? 63 : 253;
    json_t *jv = json_string(name);
    int rc = 0;
    if (strlen(name) > max) {
        schema_err_invalid(err, path, jv, "must be no more than %zu characters",
                           max);
        rc = -EINVAL;
    } else if (label ? !dns_label_n(buf, len) : !dns_subdomain_n(buf, len)) {
        schema_err_invalid(err, path, jv, "%s",
                           label ? msg_label : msg_subdomain);
        rc = -EINVAL;
    }
    json_decref(jv);
    return rc;
}

#define SCHEMA_ANNOTATIONS_MAX (256 * 1024)

static void
validate_meta(const struct kind_rt *rt, const json_t *obj, struct walk *w)
{
    const json_t *meta = json_object_get(obj, "metadata");
    if (!json_is_object(meta)) {
        if (!meta) {
            schema_err_required(w->err, "metadata.name",
                                "name or generateName is required");
        }
        return; /* a wrong type is reported by the field tree */
    }
    const char *name = json_string_value(json_object_get(meta, "name"));
    const char *gen = json_string_value(json_object_get(meta, "generateName"));
    if (name && *name) {
        check_name(rt->name_is_label, name, false, "metadata.name", w->err);
    } else if (gen && *gen) {
        check_name(rt->name_is_label, gen, true, "metadata.generateName",
                   w->err);
    } else {
        schema_err_required(w->err, "metadata.name",
                            "name or generateName is required");
    }
    const char *ns = json_string_value(json_object_get(meta, "namespace"));
    if (ns && *ns) {
        if (!rt->k->namespaced) {
            schema_err_forbidden(w->err, "metadata.namespace",
                                 "not allowed on this type");
        } else {
            check_name(true, ns, false, "metadata.namespace", w->err);
        }
    }
    schema_check_labels(json_object_get(meta, "labels"), "metadata.labels",
                        w->err);
    const json_t *ann = json_object_get(meta, "annotations");
    if (json_is_object(ann)) {
        size_t total = 0;
        const char *key;
        const json_t *val;
        json_object_foreach((json_t *) ann, key, val)
        {
            char lower[320];
            size_t i;
            for (i = 0; key[i] && i + 1 < sizeof lower; i++) {
                lower[i] = (char) tolower((unsigned char) key[i]);
            }
            lower[i] = '\0';
            schema_check_qualified_name(lower, "metadata.annotations", w->err);
            total += strlen(key) + json_string_length(val);
        }
        if (total > SCHEMA_ANNOTATIONS_MAX) {
            dpf_error_add_cause(
                w->err, DPF_CAUSE_TOO_LONG, "metadata.annotations",
                "Too long: must have at most %d bytes", SCHEMA_ANNOTATIONS_MAX);
        }
    }
    const json_t *fin = json_object_get(meta, "finalizers");
    if (json_is_array(fin)) {
        size_t i;
        const json_t *f;
        json_array_foreach(fin, i, f)
        {
            if (json_is_string(f)) {
                char path[48];
                snprintf(path, sizeof path, "metadata.finalizers[%zu]", i);
                schema_check_qualified_name(json_string_value(f), path, w->err);
            }
        }
    }
}

int
schema_validate_name(const struct schema_kind *k, const char *name,
                     struct dpf_error *err)
{
    const struct kind_rt *rt = kind_rt(k);
    if (!rt) {
        return -EINVAL;
    }
    dpf_error_clear(err);
    struct dpf_error local;
    // cppcheck-suppress uninitvar
    struct dpf_error *e = err ? err : &local;
    dpf_error_clear(e);
    if (!name || !*name) {
        schema_err_required(e, "metadata.name",
                            "name or generateName is required");
    } else {
        check_name(rt->name_is_label, name, false, "metadata.name", e);
    }
    if (!e->n_causes) {
        return 0;
    }
    json_t *obj = json_pack("{s:{s:s}}", "metadata", "name", name ? name : "");
    finish_invalid(k, obj, e, 0);
    json_decref(obj);
    return -EINVAL;
}

int
schema_validate(const struct schema_kind *k, const json_t *obj,
                const json_t *old, struct dpf_error *err)
{
    const struct kind_rt *rt = kind_rt(k);
    struct dpf_error local;
    // cppcheck-suppress uninitvar
    struct walk w = {.err = err ? err : &local};
    /* Causes past n_causes are never read: reset only the header (the
     * whole record is ~18 KB). */
    w.err->code = 0;
    w.err->reason[0] = '\0';
    w.err->message[0] = '\0';
    w.err->n_causes = 0;
    if (!rt || !json_is_object(obj)) {
        dpf_error_set(w.err, 400, "BadRequest", "object must be a JSON object");
        return -EINVAL;
    }
    const char *av = json_string_value(json_object_get(obj, "apiVersion"));
    const char *kd = json_string_value(json_object_get(obj, "kind"));
    if (av && strcmp(av, rt->api_version)) {
        json_t *v = json_string(av);
        schema_err_invalid(w.err, "apiVersion", v, "must be %s",
                           rt->api_version);
        json_decref(v);
    }
    if (kd && strcmp(kd, k->kind)) {
        json_t *v = json_string(kd);
        schema_err_invalid(w.err, "kind", v, "must be %s", k->kind);
        json_decref(v);
    }
    validate_meta(rt, obj, &w);
    validate_node(k->root, obj, json_is_object(old) ? old : NULL, &w, 0);
    /* The kind's rules run as an admission webhook would: only on an
     * object that passed the schema; only they answer with invalid_code. */
    bool by_rules = false;
    if (!w.err->n_causes && k->validate) {
        k->validate(obj, json_is_object(old) ? old : NULL, w.err);
        by_rules = true;
    }
    if (!w.err->n_causes) {
        return 0;
    }
    finish_invalid(k, obj, w.err, by_rules ? k->invalid_code : 0);
    return -EINVAL;
}

int
schema_validate_delete(const struct schema_kind *k, const json_t *obj,
                       const struct schema_reader *reader,
                       struct dpf_error *err)
{
    dpf_error_clear(err);
    if (!k || !json_is_object(obj) || !reader || !reader->list) {
        return 0;
    }
    return schema_provisioning_validate_delete(k, obj, reader, err);
}

/* ------------------------------------------------------------------ */
/* defaulting                                                           */
/* ------------------------------------------------------------------ */

static void
default_node(const struct schema_node *n, json_t *v, int depth)
{
    if (!n || depth > 64 || !v) {
        return;
    }
    switch (n->type) {
    case SCHEMA_T_OBJECT:
        if (!json_is_object(v) || !n->fields) {
            return;
        }
        for (const struct schema_field *f = n->fields; f->name; f++) {
            json_t *c = json_object_get(v, f->name);
            if ((!c || (json_is_null(c) && !f->node->nullable)) &&
                f->node->def && f->node->def->value) {
                c = json_deep_copy(f->node->def->value);
                json_object_set_new(v, f->name, c);
            }
            if (c) {
                default_node(f->node, c, depth + 1);
            }
        }
        break;
    case SCHEMA_T_MAP: {
        if (!json_is_object(v)) {
            return;
        }
        const char *key;
        json_t *c;
        json_object_foreach(v, key, c)
        {
            default_node(n->items, c, depth + 1);
        }
        break;
    }
    case SCHEMA_T_ARRAY: {
        if (!json_is_array(v)) {
            return;
        }
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c)
        {
            default_node(n->items, c, depth + 1);
        }
        break;
    }
    default:
        break;
    }
}

void
schema_default(const struct schema_kind *k, json_t *obj)
{
    ensure_init();
    if (!k || !json_is_object(obj)) {
        return;
    }
    default_node(k->root, obj, 0);
    if (k->set_defaults) {
        k->set_defaults(obj);
        /* As after a mutating webhook: the result is defaulted again. */
        default_node(k->root, obj, 0);
    }
}

/* ------------------------------------------------------------------ */
/* pruning                                                              */
/* ------------------------------------------------------------------ */

static const struct schema_field *
find_field(const struct schema_node *n, const char *key)
{
    if (!n->fields) {
        return NULL;
    }
    for (const struct schema_field *f = n->fields; f->name; f++) {
        if (!strcmp(f->name, key)) {
            return f;
        }
    }
    return NULL;
}

static void
prune_node(const struct schema_node *n, json_t *v, struct walk *w, int depth)
{
    if (!n || depth > 64 || !v) {
        return;
    }
    switch (n->type) {
    case SCHEMA_T_OBJECT: {
        if (!json_is_object(v)) {
            return;
        }
        const char *key;
        json_t *c;
        void *tmp;
        json_object_foreach_safe(v, tmp, key, c)
        {
            const struct schema_field *f = find_field(n, key);
            if (!f) {
                if (n->preserve_unknown) {
                    continue;
                }
                size_t saved = path_push_key(w, key);
                if (w->unknown) {
                    json_array_append_new(w->unknown, json_string(w->path));
                }
                path_pop(w, saved);
                json_object_del(v, key);
                continue;
            }
            if (json_is_null(c) && !f->node->nullable &&
                f->node->type != SCHEMA_T_ANY) {
                json_object_del(v, key);
                continue;
            }
            size_t saved = path_push_key(w, key);
            prune_node(f->node, c, w, depth + 1);
            path_pop(w, saved);
        }
        break;
    }
    case SCHEMA_T_MAP: {
        if (!json_is_object(v)) {
            return;
        }
        const char *key;
        json_t *c;
        void *tmp;
        json_object_foreach_safe(v, tmp, key, c)
        {
            if (json_is_null(c) && !n->items->nullable &&
                n->items->type != SCHEMA_T_ANY) {
                json_object_del(v, key);
                continue;
            }
            size_t saved = path_push_mapkey(w, key);
            prune_node(n->items, c, w, depth + 1);
            path_pop(w, saved);
        }
        break;
    }
    case SCHEMA_T_ARRAY: {
        if (!json_is_array(v)) {
            return;
        }
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c)
        {
            size_t saved = path_push_index(w, i);
            prune_node(n->items, c, w, depth + 1);
            path_pop(w, saved);
        }
        break;
    }
    default:
        break;
    }
}

int
schema_prune(const struct schema_kind *k, json_t *obj,
             enum schema_unknown_mode mode, json_t **warnings,
             struct dpf_error *err)
{
    ensure_init();
    if (warnings) {
        *warnings = NULL;
    }
    if (!k || !json_is_object(obj)) {
        dpf_error_set(err, 400, "BadRequest", "object must be a JSON object");
        return -EINVAL;
    }
    struct walk w = {.err = err, .mode = mode};
    if (mode != SCHEMA_UNKNOWN_PRUNE) {
        w.unknown = json_array();
    }
    prune_node(k->root, obj, &w, 0);
    int rc = 0;
    if (mode == SCHEMA_UNKNOWN_STRICT && json_array_size(w.unknown)) {
        struct dbuf b;
        dbuf_init(&b);
        dbuf_puts(&b, "strict decoding error: ");
        size_t i;
        json_t *p;
        json_array_foreach(w.unknown, i, p)
        {
            dbuf_printf(&b, "%sunknown field \"%s\"", i ? ", " : "",
                        json_string_value(p));
            dpf_error_add_cause(err, DPF_CAUSE_UNKNOWN_FIELD,
                                json_string_value(p), "unknown field \"%s\"",
                                json_string_value(p));
        }
        dpf_error_set(err, 400, "BadRequest", "%s", b.data);
        dbuf_free(&b);
        rc = -EINVAL;
    }
    if (mode == SCHEMA_UNKNOWN_WARN && warnings) {
        *warnings = w.unknown;
        w.unknown = NULL;
    }
    json_decref(w.unknown);
    return rc;
}

/* ------------------------------------------------------------------ */
/* export                                                               */
/* ------------------------------------------------------------------ */

static json_t *
export_node(const struct schema_node *n, int depth)
{
    json_t *o = json_object();
    if (!n || depth > 64) {
        return o;
    }
    if (n->description) {
        json_object_set_new(o, "description", json_string(n->description));
    }
    if (n->export_plain) {
        json_object_set_new(o, "type", json_string("object"));
        return o;
    }
    switch (n->type) {
    case SCHEMA_T_OBJECT: {
        json_object_set_new(o, "type", json_string("object"));
        json_t *props = json_object();
        json_t *req = json_array();
        if (n->fields) {
            for (const struct schema_field *f = n->fields; f->name; f++) {
                json_object_set_new(props, f->name,
                                    export_node(f->node, depth + 1));
                if (f->required) {
                    json_array_append_new(req, json_string(f->name));
                }
            }
        }
        if (json_object_size(props)) {
            json_object_set_new(o, "properties", props);
        } else {
            json_decref(props);
        }
        if (json_array_size(req)) {
            json_object_set_new(o, "required", req);
        } else {
            json_decref(req);
        }
        if (n->preserve_unknown) {
            json_object_set_new(o, "x-kubernetes-preserve-unknown-fields",
                                json_true());
        }
        break;
    }
    case SCHEMA_T_MAP:
        json_object_set_new(o, "type", json_string("object"));
        json_object_set_new(o, "additionalProperties",
                            export_node(n->items, depth + 1));
        break;
    case SCHEMA_T_ARRAY:
        json_object_set_new(o, "type", json_string("array"));
        json_object_set_new(o, "items", export_node(n->items, depth + 1));
        break;
    case SCHEMA_T_STRING:
        json_object_set_new(o, "type", json_string("string"));
        break;
    case SCHEMA_T_INTEGER:
        json_object_set_new(o, "type", json_string("integer"));
        break;
    case SCHEMA_T_NUMBER:
        json_object_set_new(o, "type", json_string("number"));
        break;
    case SCHEMA_T_BOOLEAN:
        json_object_set_new(o, "type", json_string("boolean"));
        break;
    case SCHEMA_T_INT_OR_STRING:
        json_object_set_new(
            o, "anyOf",
            json_pack("[{s:s},{s:s}]", "type", "integer", "type", "string"));
        json_object_set_new(o, "x-kubernetes-int-or-string", json_true());
        break;
    case SCHEMA_T_ANY:
    default:
        json_object_set_new(o, "x-kubernetes-preserve-unknown-fields",
                            json_true());
        break;
    }
    if (n->enum_values) {
        json_t *e = json_array();
        for (const char *const *s = n->enum_values; *s; s++) {
            json_array_append_new(e, json_string(*s));
        }
        json_object_set_new(o, "enum", e);
    }
    if (n->pattern) {
        json_object_set_new(o, "pattern", json_string(n->pattern->src));
    }
    if (n->format) {
        json_object_set_new(o, "format", json_string(n->format));
    }
    if (n->has_min) {
        json_object_set_new(o, "minimum", json_integer(n->min));
    }
    if (n->has_max) {
        json_object_set_new(o, "maximum", json_integer(n->max));
    }
    if (n->min_len) {
        json_object_set_new(o, "minLength", json_integer(n->min_len));
    }
    if (n->max_len) {
        json_object_set_new(o, "maxLength", json_integer(n->max_len));
    }
    if (n->min_items) {
        json_object_set_new(o, "minItems", json_integer(n->min_items));
    }
    if (n->max_items) {
        json_object_set_new(o, "maxItems", json_integer(n->max_items));
    }
    if (n->min_props) {
        json_object_set_new(o, "minProperties", json_integer(n->min_props));
    }
    if (n->max_props) {
        json_object_set_new(o, "maxProperties", json_integer(n->max_props));
    }
    if (n->def && n->def->value) {
        json_object_set_new(o, "default", json_deep_copy(n->def->value));
    }
    if (n->nullable) {
        json_object_set_new(o, "nullable", json_true());
    }
    if (n->map_type) {
        json_object_set_new(o, "x-kubernetes-map-type",
                            json_string(n->map_type));
    }
    if (n->list_type) {
        json_object_set_new(o, "x-kubernetes-list-type",
                            json_string(n->list_type));
    }
    json_t *cel = json_array();
    if (n->immutable) {
        json_array_append_new(
            cel, json_pack("{s:s,s:s}", "rule",
                           n->immutable_unless_empty
                               ? "oldSelf == \"\" || self == oldSelf"
                               : "self == oldSelf",
                           "message", n->immutable));
    }
    if (n->cel_rule) {
        json_array_append_new(
            cel, json_pack("{s:s,s:s}", "rule", n->cel_rule, "message",
                           n->cel_message ? n->cel_message : "invalid"));
    }
    if (json_array_size(cel)) {
        json_object_set_new(o, "x-kubernetes-validations", cel);
    } else {
        json_decref(cel);
    }
    return o;
}

json_t *
schema_openapi_v3(const struct schema_kind *k)
{
    ensure_init();
    if (!k) {
        return NULL;
    }
    return export_node(k->root, 0);
}

static json_t *
str_list(const char *const *l)
{
    json_t *a = json_array();
    for (; l && *l; l++) {
        json_array_append_new(a, json_string(*l));
    }
    return a;
}

json_t *
schema_crd(const struct schema_kind *k)
{
    ensure_init();
    /* Kubernetes' own groups are served by the API server itself, never
     * by a CRD (and *.k8s.io groups are protected). */
    if (!k || !k->group[0] || !strcmp(k->group, "apps") ||
        str_has_suffix(k->group, ".k8s.io")) {
        return NULL;
    }
    char name[256];
    snprintf(name, sizeof name, "%s.%s", k->plural, k->group);
    json_t *names =
        json_pack("{s:s,s:s,s:s,s:s}", "kind", k->kind, "listKind",
                  k->list_kind, "plural", k->plural, "singular", k->singular);
    if (k->short_names && k->short_names[0]) {
        json_object_set_new(names, "shortNames", str_list(k->short_names));
    }
    if (k->categories && k->categories[0]) {
        json_object_set_new(names, "categories", str_list(k->categories));
    }
    json_t *version = json_pack("{s:s,s:b,s:b,s:{s:o}}", "name", k->version,
                                "served", 1, "storage", 1, "schema",
                                "openAPIV3Schema", schema_openapi_v3(k));
    if (k->has_status) {
        json_object_set_new(version, "subresources",
                            json_pack("{s:{}}", "status"));
    }
    json_t *cols = json_array();
    for (const struct schema_column *c = k->columns; c && c->name; c++) {
        if (c->compute || !c->json_path) {
            continue;
        }
        json_t *jc =
            json_pack("{s:s,s:s,s:s}", "name", c->name, "type",
                      c->type ? c->type : "string", "jsonPath", c->json_path);
        if (c->description) {
            json_object_set_new(jc, "description", json_string(c->description));
        }
        if (c->priority) {
            json_object_set_new(jc, "priority", json_integer(c->priority));
        }
        json_array_append_new(cols, jc);
    }
    if (json_array_size(cols)) {
        json_object_set_new(version, "additionalPrinterColumns", cols);
    } else {
        json_decref(cols);
    }
    return json_pack(
        "{s:s,s:s,s:{s:s,s:{s:s}},s:{s:s,s:o,s:s,s:[o]}}", "apiVersion",
        "apiextensions.k8s.io/v1", "kind", "CustomResourceDefinition",
        "metadata", "name", name, "annotations", "helm.sh/resource-policy",
        "keep", "spec", "group", k->group, "names", names, "scope",
        k->namespaced ? "Namespaced" : "Cluster", "versions", version);
}

/* ------------------------------------------------------------------ */
/* printer columns                                                      */
/* ------------------------------------------------------------------ */

char *
schema_column_value(const struct schema_column *c, const json_t *obj)
{
    if (!c) {
        return xstrdup("");
    }
    if (c->compute) {
        char *s = c->compute(obj);
        return s ? s : xstrdup("");
    }
    if (!c->json_path || !obj) {
        return xstrdup("");
    }
    /* As kube-apiserver's column printer: the first result of the path. */
    json_t *res = NULL;
    if (jsonpath_eval(c->json_path, obj, &res, NULL) < 0) {
        return xstrdup("");
    }
    const json_t *v = json_array_get(res, 0);
    if (!v || json_is_null(v)) {
        json_decref(res);
        return xstrdup("");
    }
    char *out;
    switch (json_typeof(v)) {
    case JSON_STRING:
        out = xstrdup(json_string_value(v));
        break;
    case JSON_INTEGER:
        out = xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        out = xasprintf("%g", json_real_value(v));
        break;
    case JSON_TRUE:
        out = xstrdup("true");
        break;
    case JSON_FALSE:
        out = xstrdup("false");
        break;
    default: {
        char *d = json_dumps(v, JSON_COMPACT);
        out = d ? d : xstrdup("");
        break;
    }
    }
    json_decref(res);
    return out;
}
