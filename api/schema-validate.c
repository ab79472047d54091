/* schema-validate: schema_validate() and its parts — the walk over the
 * field tree (types, enums, patterns, bounds, formats, immutability, the
 * nodes' checks), metadata rules, and then the kind's own hooks — plus
 * schema_validate_name() and schema_validate_delete().
 *
 * Patterns use PCRE2 (JIT-compiled when the registry is built): the CRD
 * patterns are Go RE2 syntax, which PCRE2 accepts unchanged. The walk
 * keeps the field path in a fixed buffer, so validating a valid object
 * allocates nothing. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <errno.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "api/schema-engine.h"
#include "lib/base/util.h"

/* One match-data block per thread, freed when the thread exits. */
static pthread_key_t g_md_key;
static pthread_once_t g_md_once = PTHREAD_ONCE_INIT;

static void
md_free(void *md)
{
    pcre2_match_data_free(md);
}

/* Patterns come from CRDs too (user input): a backtracking pattern such
 * as ^(a+)+$ must not cost more than a few ms per value, so matching
 * stops after this many steps and counts as no match. Kubernetes' RE2 is
 * linear; the declared kinds' patterns never come near the limit. */
#define SCHEMA_RE_MATCH_LIMIT 200000
static pcre2_match_context *g_mctx; /* set once, then only read */

static void
md_key_init(void)
{
    pthread_key_create(&g_md_key, md_free);
    g_mctx = pcre2_match_context_create(NULL);
    if (g_mctx) {
        pcre2_set_match_limit(g_mctx, SCHEMA_RE_MATCH_LIMIT);
        pcre2_set_depth_limit(g_mctx, SCHEMA_RE_MATCH_LIMIT);
    }
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
                         g_mctx);
    return rc >= 0;
}

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

size_t
schema_path_push_key(struct walk *w, const char *key)
{
    size_t saved = w->len;
    if (w->len) {
        path_append(w, ".", 1);
    }
    path_append(w, key, strlen(key));
    return saved;
}

size_t
schema_path_push_index(struct walk *w, size_t idx)
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

size_t
schema_path_push_mapkey(struct walk *w, const char *key)
{
    size_t saved = w->len;
    path_append(w, "[", 1);
    path_append(w, key, strlen(key));
    path_append(w, "]", 1);
    return saved;
}

void
schema_path_pop(struct walk *w, size_t saved)
{
    w->len = saved;
    w->path[saved] = '\0';
}

const char *
schema_type_word(enum schema_type t)
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
            /* A CRD's enum of numbers or booleans: by JSON text. */
            if (json_is_number(v) || json_is_boolean(v)) {
                char t[64];
                schema_value_str(v, t, sizeof t);
                if (!strcmp(t, *e)) {
                    found = true;
                    break;
                }
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
        json_t *t = json_string(schema_json_type_name(v));
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
        size_t saved = schema_path_push_key(w, f->name);
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
        schema_path_pop(w, saved);
    }
}

/* minProperties/maxProperties of a map, minItems/maxItems of an array
 * (0 = no bound); what is "properties" or "items". Returns the causes
 * added. */
static int
check_count(struct walk *w, size_t count, int64_t min, int64_t max,
            const char *what)
{
    int bad = 0;
    if (max && (int64_t) count > max) {
        dpf_error_add_cause(w->err, DPF_CAUSE_TOO_MANY, w->path,
                            "Too many: %zu: must have at most %lld items",
                            count, (long long) max);
        bad++;
    }
    if (min && (int64_t) count < min) {
        json_t *c = json_integer((json_int_t) count);
        schema_err_invalid(w->err, w->path, c,
                           "%s in body should have at least %lld %s", w->path,
                           (long long) min, what);
        json_decref(c);
        bad++;
    }
    return bad;
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
        json_t *t = json_string(schema_json_type_name(v));
        dpf_error_add_cause(w->err, DPF_CAUSE_TYPE, w->path,
                            "Invalid value: \"%s\": %s in body must be of "
                            "type %s: \"%s\"",
                            schema_json_type_name(v), w->path,
                            schema_type_word(n->type),
                            schema_json_type_name(v));
        json_decref(t);
        return;
    }
    int bad = 0;
    switch (n->type) {
    case SCHEMA_T_OBJECT:
        validate_object(n, v, old, w, depth);
        break;
    case SCHEMA_T_MAP: {
        bad += check_count(w, json_object_size(v), n->min_props, n->max_props,
                           "properties");
        const char *key;
        json_t *c;
        json_object_foreach((json_t *) v, key, c)
        {
            size_t saved = schema_path_push_mapkey(w, key);
            const json_t *oc =
                json_is_object(old) ? json_object_get(old, key) : NULL;
            validate_node(n->items, c, oc, w, depth + 1);
            schema_path_pop(w, saved);
        }
        break;
    }
    case SCHEMA_T_ARRAY: {
        bad += check_count(w, json_array_size(v), n->min_items, n->max_items,
                           "items");
        size_t i;
        json_t *c;
        json_array_foreach(v, i, c)
        {
            size_t saved = schema_path_push_index(w, i);
            validate_node(n->items, c, NULL, w, depth + 1);
            schema_path_pop(w, saved);
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
        schema_check_kind_name(rt->k, name, false, "metadata.name", w->err);
    } else if (gen && *gen) {
        schema_check_kind_name(rt->k, gen, true, "metadata.generateName",
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
            schema_check_name(true, ns, false, "metadata.namespace", w->err);
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
    const struct kind_rt *rt = schema_kind_rt(k);
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
        schema_check_kind_name(rt->k, name, false, "metadata.name", e);
    }
    if (!e->n_causes) {
        return 0;
    }
    json_t *obj = json_pack("{s:{s:s}}", "metadata", "name", name ? name : "");
    schema_finish_invalid(k, obj, e, 0);
    json_decref(obj);
    return -EINVAL;
}

int
schema_validate(const struct schema_kind *k, const json_t *obj,
                const json_t *old, struct dpf_error *err)
{
    const struct kind_rt *rt = schema_kind_rt(k);
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
    schema_finish_invalid(k, obj, w.err, by_rules ? k->invalid_code : 0);
    return -EINVAL;
}

int
schema_validate_delete(const struct schema_kind *k, const json_t *obj,
                       const struct schema_reader *reader,
                       struct dpf_error *err)
{
    dpf_error_clear(err);
    if (!k || !k->validate_delete || !json_is_object(obj)) {
        return 0;
    }
    if (reader && !reader->list) {
        reader = NULL;
    }
    struct dpf_error local;
    // cppcheck-suppress uninitvar
    return k->validate_delete(obj, reader, err ? err : &local) < 0 ? -EPERM : 0;
}
