/* schema-crd: a CustomResourceDefinition's checks and its conversion into
 * kinds of the engine's field tree.
 *
 * The CRD is user input: every bound below (depth, node count, enum and
 * pattern sizes) keeps a hostile schema from costing more than a few MB
 * and a few ms, and every pattern is compiled once, here, where a bad one
 * is a 422 naming its field. What the field tree cannot express is still
 * accepted when Kubernetes accepts it and stated in docs/dev/schema.md
 * (allOf/anyOf/oneOf/not, multipleOf, uniqueItems, CEL rules: kept in
 * the stored CRD, not evaluated).
 *
 * Everything a built kind points to lives in its definition's arena, so a
 * definition is freed in one go when it was never served, and kept
 * whole (see schema-registry.c) when it was. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/schema-engine.h"
#include "lib/base/util.h"

/* Bounds on a CRD's schema (per version). */
#define CRD_MAX_DEPTH 48     /* nesting of properties/items */
#define CRD_MAX_NODES 20000  /* schema nodes in one version */
#define CRD_MAX_ENUM 1024    /* values of one enum */
#define CRD_MAX_PATTERN 4096 /* bytes of one pattern */
#define CRD_MAX_VERSIONS 32  /* versions of one CRD */
#define CRD_MAX_COLUMNS 32   /* printer columns of one version */
#define CRD_MAX_NAMES 32     /* short names, categories */
#define CRD_PATH_MAX 1024    /* error path buffer */

/* --- arena --- */

struct crd_chunk {
    struct crd_chunk *next;
    max_align_t data[];
};

struct crd_arena {
    struct crd_chunk *chunks;
    json_t *values;     /* defaults and what else holds a json_t */
    pcre2_code **codes; /* compiled patterns */
    size_t n_codes, cap_codes;
};

static void *
arena_alloc(struct crd_arena *a, size_t size)
{
    struct crd_chunk *c = xcalloc(1, sizeof *c + size);
    c->next = a->chunks;
    a->chunks = c;
    return c->data;
}

static char *
arena_strdup(struct crd_arena *a, const char *s)
{
    size_t n = strlen(s);
    char *p = arena_alloc(a, n + 1);
    memcpy(p, s, n);
    return p;
}

static void
arena_free(struct crd_arena *a)
{
    if (!a) {
        return;
    }
    while (a->chunks) {
        struct crd_chunk *c = a->chunks;
        a->chunks = c->next;
        free(c);
    }
    for (size_t i = 0; i < a->n_codes; i++) {
        pcre2_code_free(a->codes[i]);
    }
    free(a->codes);
    json_decref(a->values);
    free(a);
}

/* --- the conversion state --- */

struct conv {
    struct dpf_error *err;
    struct crd_arena *a;
    char path[CRD_PATH_MAX];
    size_t len;
    size_t nodes;
    bool bad;
};

static size_t
path_push(struct conv *c, const char *fmt, ...)
{
    size_t saved = c->len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->path + c->len, sizeof c->path - c->len, fmt, ap);
    va_end(ap);
    if (n > 0) {
        c->len += (size_t) n;
        if (c->len >= sizeof c->path) {
            c->len = sizeof c->path - 1;
        }
    }
    return saved;
}

static void
path_pop(struct conv *c, size_t saved)
{
    c->len = saved;
    c->path[saved] = '\0';
}

/* A cause at the current path + suffix (suffix may be ""). */
static void __attribute__((format(printf, 4, 5)))
conv_fail(struct conv *c, const char *type, const char *suffix, const char *fmt,
          ...)
{
    char field[CRD_PATH_MAX + 64];
    snprintf(field, sizeof field, "%s%s%s", c->path,
             *suffix && c->len ? "." : "", suffix);
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    dpf_error_add_cause(c->err, type, field, "%s", msg);
    c->bad = true;
}

static void
conv_invalid(struct conv *c, const char *suffix, const json_t *v,
             const char *detail)
{
    char val[96];
    schema_value_str(v, val, sizeof val);
    conv_fail(c, DPF_CAUSE_INVALID, suffix, "Invalid value: %s: %s", val,
              detail);
}

static void
conv_required(struct conv *c, const char *suffix, const char *detail)
{
    conv_fail(c, DPF_CAUSE_REQUIRED, suffix, "Required value%s%s",
              detail ? ": " : "", detail ? detail : "");
}

static void
conv_forbidden(struct conv *c, const char *suffix, const char *detail)
{
    conv_fail(c, DPF_CAUSE_FORBIDDEN, suffix, "Forbidden: %s", detail);
}

static bool
get_bool(const json_t *s, const char *key)
{
    return json_is_true(json_object_get(s, key));
}

/* A non-negative integer bound at key (0 when absent). */
static int64_t
get_count(struct conv *c, const json_t *s, const char *key)
{
    const json_t *v = json_object_get(s, key);
    if (!v) {
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0) {
        conv_invalid(c, key, v, "must be a non-negative integer");
        return 0;
    }
    return json_integer_value(v);
}

static const char *
get_str(struct conv *c, const json_t *s, const char *key)
{
    const json_t *v = json_object_get(s, key);
    if (!v) {
        return NULL;
    }
    if (!json_is_string(v)) {
        conv_invalid(c, key, v, "must be a string");
        return NULL;
    }
    return json_string_value(v);
}

/* --- one schema node --- */

static struct schema_node *convert(struct conv *c, const json_t *s, int depth,
                                   bool root);

static void
conv_pattern(struct conv *c, struct schema_node *n, const char *src)
{
    if (strlen(src) > CRD_MAX_PATTERN) {
        conv_fail(c, DPF_CAUSE_TOO_LONG, "pattern",
                  "Too long: may not be longer than %d", CRD_MAX_PATTERN);
        return;
    }
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR) src, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_MATCH_INVALID_UTF,
                                   &errcode, &erroff, NULL);
    if (!re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        json_t *v = json_string(src);
        char detail[256];
        snprintf(detail, sizeof detail,
                 "must be a valid regular expression, but isn't: %s at "
                 "offset %zu",
                 (const char *) msg, (size_t) erroff);
        conv_invalid(c, "pattern", v, detail);
        json_decref(v);
        return;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    struct crd_arena *a = c->a;
    if (a->n_codes == a->cap_codes) {
        a->cap_codes = a->cap_codes ? 2 * a->cap_codes : 8;
        a->codes = xrealloc(a->codes, a->cap_codes * sizeof *a->codes);
    }
    a->codes[a->n_codes++] = re;
    struct schema_re *r = arena_alloc(c->a, sizeof *r);
    r->src = arena_strdup(c->a, src);
    r->code = re;
    n->pattern = r;
}

static void
conv_enum(struct conv *c, struct schema_node *n, const json_t *e)
{
    if (!json_is_array(e)) {
        conv_invalid(c, "enum", e, "must be a list of values");
        return;
    }
    size_t cnt = json_array_size(e);
    if (cnt > CRD_MAX_ENUM) {
        conv_fail(c, DPF_CAUSE_TOO_MANY, "enum",
                  "Too many: %zu: must have at most %d items", cnt,
                  CRD_MAX_ENUM);
        return;
    }
    const char **vals = arena_alloc(c->a, (cnt + 1) * sizeof *vals);
    size_t i;
    json_t *v;
    json_array_foreach(e, i, v)
    {
        if (json_is_string(v)) {
            vals[i] = arena_strdup(c->a, json_string_value(v));
        } else {
            /* Numbers and booleans are compared by their JSON text. */
            char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
            vals[i] = arena_strdup(c->a, t ? t : "null");
            free(t);
        }
    }
    vals[cnt] = NULL;
    n->enum_values = vals;
}

static void
conv_bounds(struct conv *c, struct schema_node *n, const json_t *s)
{
    const json_t *mn = json_object_get(s, "minimum");
    const json_t *mx = json_object_get(s, "maximum");
    if (mn) {
        if (!json_is_number(mn)) {
            conv_invalid(c, "minimum", mn, "must be a number");
        } else {
            double d = json_number_value(mn);
            /* The engine bounds integers; a fractional bound on a
             * number is rounded towards what it allows. */
            n->has_min = fabs(d) < 9.2e18;
            n->min = (int64_t) ceil(d);
            if (get_bool(s, "exclusiveMinimum") && d == floor(d)) {
                n->min++;
            }
        }
    }
    if (mx) {
        if (!json_is_number(mx)) {
            conv_invalid(c, "maximum", mx, "must be a number");
        } else {
            double d = json_number_value(mx);
            n->has_max = fabs(d) < 9.2e18;
            n->max = (int64_t) floor(d);
            if (get_bool(s, "exclusiveMaximum") && d == floor(d)) {
                n->max--;
            }
        }
    }
    n->min_len = get_count(c, s, "minLength");
    n->max_len = get_count(c, s, "maxLength");
    n->min_items = get_count(c, s, "minItems");
    n->max_items = get_count(c, s, "maxItems");
    n->min_props = get_count(c, s, "minProperties");
    n->max_props = get_count(c, s, "maxProperties");
}

static void
conv_list_type(struct conv *c, struct schema_node *n, const json_t *s)
{
    const char *lt = get_str(c, s, "x-kubernetes-list-type");
    const json_t *keys = json_object_get(s, "x-kubernetes-list-map-keys");
    if (lt) {
        if (n->type != SCHEMA_T_ARRAY) {
            json_t *v = json_string(lt);
            conv_invalid(c, "x-kubernetes-list-type", v,
                         "must only be used if type is array");
            json_decref(v);
        } else if (strcmp(lt, "atomic") && strcmp(lt, "set") &&
                   strcmp(lt, "map")) {
            json_t *v = json_string(lt);
            conv_fail(c, DPF_CAUSE_NOT_SUPPORTED, "x-kubernetes-list-type",
                      "Unsupported value: \"%s\": supported values: "
                      "\"atomic\", \"map\", \"set\"",
                      lt);
            json_decref(v);
        } else {
            n->list_type = arena_strdup(c->a, lt);
        }
    }
    if (keys || (lt && !strcmp(lt, "map"))) {
        if (!lt || strcmp(lt, "map")) {
            conv_forbidden(c, "x-kubernetes-list-map-keys",
                           "must only be used if x-kubernetes-list-type is "
                           "map");
            return;
        }
        if (!json_is_array(keys) || !json_array_size(keys)) {
            conv_required(c, "x-kubernetes-list-map-keys",
                          "must not be empty if x-kubernetes-list-type is map");
            return;
        }
        if (!n->items || n->items->type != SCHEMA_T_OBJECT) {
            conv_invalid(c, "items", json_object_get(s, "items"),
                         "must be of type object if x-kubernetes-list-type "
                         "is map");
            return;
        }
        size_t cnt = json_array_size(keys);
        if (cnt > CRD_MAX_NAMES) {
            conv_fail(c, DPF_CAUSE_TOO_MANY, "x-kubernetes-list-map-keys",
                      "Too many: %zu: must have at most %d items", cnt,
                      CRD_MAX_NAMES);
            return;
        }
        const char **ks = arena_alloc(c->a, (cnt + 1) * sizeof *ks);
        for (size_t i = 0; i < cnt; i++) {
            const char *k = json_string_value(json_array_get(keys, i));
            bool found = false;
            for (const struct schema_field *f = n->items->fields;
                 k && f && f->name; f++) {
                found = found || !strcmp(f->name, k);
            }
            if (!found) {
                char sfx[64];
                snprintf(sfx, sizeof sfx, "x-kubernetes-list-map-keys[%zu]", i);
                conv_invalid(c, sfx, json_array_get(keys, i),
                             "must be a property of the items' schema");
                return;
            }
            ks[i] = arena_strdup(c->a, k);
        }
        ks[cnt] = NULL;
        n->list_map_keys = ks;
    }
}

static const char *const crd_types[] = {"object",  "array",  "string",
                                        "integer", "number", "boolean"};

/* Fill an object node's properties (and required) from s. */
static void
conv_properties(struct conv *c, struct schema_node *n, const json_t *s,
                const json_t *props, int depth, bool embedded)
{
    const json_t *req = json_object_get(s, "required");
    if (req && !json_is_array(req)) {
        conv_invalid(c, "required", req, "must be a list of property names");
        req = NULL;
    }
    size_t cnt = json_object_size(props) + (embedded ? 3 : 0);
    struct schema_field *fields = arena_alloc(c->a, (cnt + 1) * sizeof *fields);
    size_t i = 0;
    const char *key;
    json_t *ps;
    json_object_foreach((json_t *) props, key, ps)
    {
        size_t saved = path_push(c, ".properties[%s]", key);
        fields[i].name = arena_strdup(c->a, key);
        fields[i].node = convert(c, ps, depth + 1, false);
        for (size_t r = 0; r < json_array_size(req); r++) {
            const char *rn = json_string_value(json_array_get(req, r));
            if (rn && !strcmp(rn, key)) {
                fields[i].required = true;
            }
        }
        path_pop(c, saved);
        if (!fields[i].node) {
            continue;
        }
        i++;
    }
    /* x-kubernetes-embedded-resource: apiVersion, kind and metadata are
     * an object's own even when the schema leaves them out. */
    const char *own[] = {"apiVersion", "kind", "metadata"};
    for (size_t j = 0; embedded && j < 3; j++) {
        if (!json_object_get(props, own[j])) {
            fields[i].name = own[j];
            fields[i].node = j < 2 ? &schema_string : &schema_object_meta;
            i++;
        }
    }
    fields[i].name = NULL;
    n->fields = fields;
}

/* Convert one schema object at c->path; NULL when it is not one (cause
 * added). */
static struct schema_node *
convert(struct conv *c, const json_t *s, int depth, bool root)
{
    if (!json_is_object(s)) {
        conv_invalid(c, "", s, "must be a JSON schema object");
        return NULL;
    }
    if (depth > CRD_MAX_DEPTH) {
        conv_forbidden(c, "", "the schema is nested too deeply");
        return NULL;
    }
    if (++c->nodes > CRD_MAX_NODES) {
        if (c->nodes == CRD_MAX_NODES + 1) {
            conv_forbidden(c, "", "the schema has too many properties");
        }
        return NULL;
    }
    struct schema_node *n = arena_alloc(c->a, sizeof *n);
    const char *type = get_str(c, s, "type");
    bool ios = get_bool(s, "x-kubernetes-int-or-string");
    bool preserve = get_bool(s, "x-kubernetes-preserve-unknown-fields");
    bool embedded = get_bool(s, "x-kubernetes-embedded-resource");
    const json_t *props = json_object_get(s, "properties");
    const json_t *addl = json_object_get(s, "additionalProperties");
    const json_t *items = json_object_get(s, "items");
    if (json_object_get(s, "$ref")) {
        conv_forbidden(c, "$ref", "$ref is not supported");
    }
    if (type && *type) {
        bool known = false;
        for (size_t i = 0; i < ARRAY_SIZE(crd_types); i++) {
            known = known || !strcmp(type, crd_types[i]);
        }
        if (!known) {
            conv_fail(c, DPF_CAUSE_NOT_SUPPORTED, "type",
                      "Unsupported value: \"%s\": supported values: "
                      "\"array\", \"boolean\", \"integer\", \"number\", "
                      "\"object\", \"string\"",
                      type);
            return NULL;
        }
        if (ios) {
            conv_forbidden(c, "type",
                           "must be empty if x-kubernetes-int-or-string is "
                           "true");
        }
    }
    if (root && (!type || strcmp(type, "object"))) {
        json_t *v = json_string(type ? type : "");
        conv_invalid(c, "type", v, "must be object at the root");
        json_decref(v);
        return NULL;
    }
    if (props && addl && !json_is_boolean(addl)) {
        conv_forbidden(c, "additionalProperties",
                       "additionalProperties and properties are mutual "
                       "exclusive");
    }
    if (props && !json_is_object(props)) {
        conv_invalid(c, "properties", props, "must be an object");
        props = NULL;
    }
    if (embedded && (!type || strcmp(type, "object"))) {
        conv_forbidden(c, "x-kubernetes-embedded-resource",
                       "must be used only with type object");
    }
    if (ios) {
        n->type = SCHEMA_T_INT_OR_STRING;
    } else if (!type || !*type) {
        if (!preserve) {
            conv_required(c, "type",
                          "must not be empty for specified object fields");
            return NULL;
        }
        n->type = props ? SCHEMA_T_OBJECT : SCHEMA_T_ANY;
        n->preserve_unknown = true;
    } else if (!strcmp(type, "object")) {
        if (addl && json_is_object(addl) && !props) {
            n->type = SCHEMA_T_MAP;
            size_t saved = path_push(c, ".additionalProperties");
            n->items = convert(c, addl, depth + 1, false);
            path_pop(c, saved);
            if (!n->items) {
                return NULL;
            }
        } else if (json_is_true(addl) && !props) {
            static const struct schema_node any = {.type = SCHEMA_T_ANY};
            n->type = SCHEMA_T_MAP;
            n->items = &any;
        } else {
            n->type = SCHEMA_T_OBJECT;
            n->preserve_unknown = preserve;
        }
        const char *mt = get_str(c, s, "x-kubernetes-map-type");
        if (mt && strcmp(mt, "atomic") && strcmp(mt, "granular")) {
            conv_fail(c, DPF_CAUSE_NOT_SUPPORTED, "x-kubernetes-map-type",
                      "Unsupported value: \"%s\": supported values: "
                      "\"atomic\", \"granular\"",
                      mt);
        } else if (mt && !strcmp(mt, "atomic")) {
            n->map_type = "atomic";
        }
    } else if (!strcmp(type, "array")) {
        n->type = SCHEMA_T_ARRAY;
        if (!items) {
            conv_required(c, "items", "must be specified");
            return NULL;
        }
        size_t saved = path_push(c, ".items");
        n->items = convert(c, items, depth + 1, false);
        path_pop(c, saved);
        if (!n->items) {
            return NULL;
        }
    } else if (!strcmp(type, "string")) {
        n->type = SCHEMA_T_STRING;
    } else if (!strcmp(type, "integer")) {
        n->type = SCHEMA_T_INTEGER;
    } else if (!strcmp(type, "number")) {
        n->type = SCHEMA_T_NUMBER;
    } else {
        n->type = SCHEMA_T_BOOLEAN;
    }
    if (n->type == SCHEMA_T_OBJECT && (props || embedded)) {
        json_t *empty = json_object();
        conv_properties(c, n, s, props ? props : empty, depth, embedded);
        json_decref(empty);
    } else if (n->type == SCHEMA_T_OBJECT) {
        static const struct schema_field none[] = {{0}};
        n->fields = none;
    }
    if (props && n->type != SCHEMA_T_OBJECT) {
        conv_forbidden(c, "properties", "must only be used with type object");
    }
    const char *desc = get_str(c, s, "description");
    if (desc) {
        n->description = arena_strdup(c->a, desc);
    }
    const char *fmt = get_str(c, s, "format");
    if (fmt) {
        n->format = arena_strdup(c->a, fmt);
    }
    const char *pat = get_str(c, s, "pattern");
    if (pat) {
        conv_pattern(c, n, pat);
    }
    const json_t *e = json_object_get(s, "enum");
    if (e) {
        conv_enum(c, n, e);
    }
    conv_bounds(c, n, s);
    n->nullable = get_bool(s, "nullable");
    const json_t *def = json_object_get(s, "default");
    if (def) {
        if (root) {
            conv_forbidden(c, "default", "must not be set at the root");
        } else {
            struct schema_def *d = arena_alloc(c->a, sizeof *d);
            char *t = json_dumps(def, JSON_ENCODE_ANY | JSON_COMPACT);
            d->json = arena_strdup(c->a, t ? t : "null");
            free(t);
            d->value = json_deep_copy(def);
            json_array_append(c->a->values, d->value);
            json_decref(d->value); /* the arena's array holds it */
            n->def = d;
        }
    }
    conv_list_type(c, n, s);
    const json_t *rules = json_object_get(s, "x-kubernetes-validations");
    if (rules) {
        /* Kept in the stored CRD and exported; not evaluated (no CEL). */
        const json_t *r0 = json_array_get(rules, 0);
        const char *rule = json_string_value(json_object_get(r0, "rule"));
        if (!json_is_array(rules) || (json_array_size(rules) && !rule)) {
            conv_invalid(c, "x-kubernetes-validations", rules,
                         "must be a list of {rule, message}");
        } else if (rule) {
            n->cel_rule = arena_strdup(c->a, rule);
            const char *m = json_string_value(json_object_get(r0, "message"));
            n->cel_message = m ? arena_strdup(c->a, m) : NULL;
        }
    }
    return n;
}

/* --- names --- */

static bool
is_dns1035_label(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || !islower((unsigned char) s[0]) || s[n - 1] == '-') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char) s[i];
        if (!islower(ch) && !isdigit(ch) && ch != '-') {
            return false;
        }
    }
    return true;
}

static bool
is_kind_name(const char *s)
{
    /* Kubernetes: a DNS-1035 label once lower-cased. */
    char low[64];
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof low) {
        return false;
    }
    for (size_t i = 0; i <= n; i++) {
        low[i] = (char) tolower((unsigned char) s[i]);
    }
    return is_dns1035_label(low);
}

static void
check_label_field(struct conv *c, const json_t *v, const char *field,
                  bool required)
{
    if (!v) {
        if (required) {
            conv_required(c, field, NULL);
        }
        return;
    }
    const char *s = json_string_value(v);
    if (!s || !is_dns1035_label(s)) {
        conv_invalid(c, field, v,
                     "a lowercase RFC 1123 label must consist of lower case "
                     "alphanumeric characters or '-', and must start and end "
                     "with an alphanumeric character");
    }
}

static void
check_names(struct conv *c, const json_t *names, const char *prefix)
{
    char f[96];
    size_t saved = path_push(c, "%s", prefix);
    check_label_field(c, json_object_get(names, "plural"), "plural", true);
    check_label_field(c, json_object_get(names, "singular"), "singular", false);
    const char *kinds[] = {"kind", "listKind"};
    for (size_t i = 0; i < 2; i++) {
        const json_t *v = json_object_get(names, kinds[i]);
        if (!v) {
            if (i == 0) {
                conv_required(c, "kind", NULL);
            }
        } else if (!json_string_value(v) ||
                   !is_kind_name(json_string_value(v))) {
            conv_invalid(c, kinds[i], v,
                         "may have mixed case, but should otherwise match: "
                         "[a-z]([-a-z0-9]*[a-z0-9])?");
        }
    }
    const char *lists[] = {"shortNames", "categories"};
    for (size_t i = 0; i < 2; i++) {
        const json_t *l = json_object_get(names, lists[i]);
        if (!l) {
            continue;
        }
        if (!json_is_array(l) || json_array_size(l) > CRD_MAX_NAMES) {
            conv_invalid(c, lists[i], l, "must be a list of at most 32 names");
            continue;
        }
        for (size_t j = 0; j < json_array_size(l); j++) {
            snprintf(f, sizeof f, "%s[%zu]", lists[i], j);
            check_label_field(c, json_array_get(l, j), f, true);
        }
    }
    path_pop(c, saved);
}

static bool
is_protected_group(const char *g)
{
    size_t n = strlen(g);
    const char *sfx[] = {".k8s.io", ".kubernetes.io"};
    if (!strcmp(g, "k8s.io") || !strcmp(g, "kubernetes.io")) {
        return true;
    }
    for (size_t i = 0; i < 2; i++) {
        size_t m = strlen(sfx[i]);
        if (n > m && !strcmp(g + n - m, sfx[i])) {
            return true;
        }
    }
    return false;
}

/* --- the whole CRD --- */

static const char *
names_str(const json_t *spec, const char *key)
{
    return json_string_value(
        json_object_get(json_object_get(spec, "names"), key));
}

static char *
lower_dup(struct crd_arena *a, const char *s)
{
    char *d = arena_strdup(a, s);
    for (char *p = d; *p; p++) {
        *p = (char) tolower((unsigned char) *p);
    }
    return d;
}

static const char *const *
name_list(struct crd_arena *a, const json_t *l)
{
    size_t n = json_array_size(l);
    if (!n) {
        return NULL;
    }
    const char **out = arena_alloc(a, (n + 1) * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(l, i));
        out[i] = arena_strdup(a, s ? s : "");
    }
    return out;
}

/* Strip the leading dot of a CRD JSONPath (".spec.replicas"). */
static const char *
crd_path(struct conv *c, const json_t *v, const char *field)
{
    const char *s = json_string_value(v);
    if (!v) {
        return NULL;
    }
    if (!s || s[0] != '.' || !s[1]) {
        conv_invalid(c, field, v, "must be a JSON path starting with .");
        return NULL;
    }
    return arena_strdup(c->a, s + 1);
}

static const struct schema_column *
conv_columns(struct conv *c, const json_t *cols)
{
    size_t n = json_array_size(cols);
    if (!cols) {
        return schema_columns_age;
    }
    if (!json_is_array(cols) || n > CRD_MAX_COLUMNS) {
        conv_invalid(c, "additionalPrinterColumns", cols,
                     "must be a list of at most 32 columns");
        return NULL;
    }
    struct schema_column *out = arena_alloc(c->a, (n + 1) * sizeof *out);
    for (size_t i = 0; i < n; i++) {
        const json_t *col = json_array_get(cols, i);
        size_t saved = path_push(c, ".additionalPrinterColumns[%zu]", i);
        const char *name = get_str(c, col, "name");
        const char *type = get_str(c, col, "type");
        const char *jp = get_str(c, col, "jsonPath");
        if (!name || !*name) {
            conv_required(c, "name", NULL);
        }
        if (!type || !*type) {
            conv_required(c, "type", NULL);
        } else if (strcmp(type, "integer") && strcmp(type, "number") &&
                   strcmp(type, "string") && strcmp(type, "boolean") &&
                   strcmp(type, "date")) {
            conv_fail(c, DPF_CAUSE_NOT_SUPPORTED, "type",
                      "Unsupported value: \"%s\": supported values: "
                      "\"integer\", \"number\", \"string\", \"boolean\", "
                      "\"date\"",
                      type);
        }
        if (!jp || !*jp) {
            conv_required(c, "jsonPath", NULL);
        }
        path_pop(c, saved);
        if (!name || !type || !jp) {
            continue;
        }
        out[i].name = arena_strdup(c->a, name);
        out[i].type = arena_strdup(c->a, type);
        out[i].json_path = arena_strdup(c->a, jp);
        const char *d = json_string_value(json_object_get(col, "description"));
        out[i].description = d ? arena_strdup(c->a, d) : NULL;
        out[i].priority =
            (int) json_integer_value(json_object_get(col, "priority"));
    }
    out[n].name = NULL;
    return out;
}

struct crd_def *
schema_crd_build(const json_t *crd, struct dpf_error *err)
{
    struct dpf_error local;
    if (!err) {
        dpf_error_clear(&local);
        err = &local;
    }
    struct crd_def *d = xcalloc(1, sizeof *d);
    d->arena = xcalloc(1, sizeof *d->arena);
    d->arena->values = json_array();
    struct conv c = {.err = err, .a = d->arena};
    const json_t *spec = json_object_get(crd, "spec");
    const char *name = schema_get_str(crd, "metadata.name");
    if (!json_is_object(spec)) {
        conv_required(&c, "spec", NULL);
        goto fail;
    }
    const char *group = json_string_value(json_object_get(spec, "group"));
    const char *plural = names_str(spec, "plural");
    path_push(&c, "spec");
    if (!group || !*group) {
        conv_required(&c, "group", NULL);
    } else if (!schema_is_dns_subdomain(group) || !strchr(group, '.')) {
        conv_invalid(&c, "group", json_object_get(spec, "group"),
                     "should be a domain with at least one dot");
    } else if (is_protected_group(group)) {
        const json_t *anns =
            json_object_get(json_object_get(crd, "metadata"), "annotations");
        if (!json_object_get(anns, "api-approved.kubernetes.io")) {
            path_pop(&c, 0);
            char detail[256];
            snprintf(detail, sizeof detail,
                     "protected groups must have approval annotation "
                     "\"api-approved.kubernetes.io\", see "
                     "https://github.com/kubernetes/enhancements/pull/1111");
            conv_required(
                &c, "metadata.annotations[api-approved.kubernetes.io]", detail);
            path_push(&c, "spec");
        }
    }
    const json_t *names = json_object_get(spec, "names");
    if (!json_is_object(names)) {
        conv_required(&c, "names", NULL);
    } else {
        check_names(&c, names, ".names");
    }
    if (name && plural && group) {
        char want[512];
        snprintf(want, sizeof want, "%s.%s", plural, group);
        if (strcmp(name, want)) {
            path_pop(&c, 0);
            json_t *v = json_string(name);
            char detail[600];
            snprintf(detail, sizeof detail,
                     "must be spec.names.plural+\".\"+"
                     "spec.group");
            conv_invalid(&c, "metadata.name", v, detail);
            json_decref(v);
            path_push(&c, "spec");
        }
    }
    const json_t *scope = json_object_get(spec, "scope");
    const char *sc = json_string_value(scope);
    if (!scope) {
        conv_required(&c, "scope", NULL);
    } else if (!sc || (strcmp(sc, "Namespaced") && strcmp(sc, "Cluster"))) {
        conv_fail(&c, DPF_CAUSE_NOT_SUPPORTED, "scope",
                  "Unsupported value: %s: supported values: \"Cluster\", "
                  "\"Namespaced\"",
                  sc ? sc : "null");
    }
    const json_t *conversion = json_object_get(spec, "conversion");
    const char *strategy =
        json_string_value(json_object_get(conversion, "strategy"));
    if (strategy && strcmp(strategy, "None") && strcmp(strategy, "Webhook")) {
        conv_fail(&c, DPF_CAUSE_NOT_SUPPORTED, "conversion.strategy",
                  "Unsupported value: \"%s\": supported values: \"None\", "
                  "\"Webhook\"",
                  strategy);
    } else if (strategy && !strcmp(strategy, "Webhook")) {
        conv_forbidden(&c, "conversion.strategy",
                       "conversion webhooks are not supported by this "
                       "server; use None");
    }
    const json_t *versions = json_object_get(spec, "versions");
    size_t nv = json_array_size(versions);
    if (!nv) {
        conv_required(&c, "versions",
                      "must have exactly one version marked "
                      "as storage version");
        goto fail;
    }
    if (nv > CRD_MAX_VERSIONS) {
        conv_fail(&c, DPF_CAUSE_TOO_MANY, "versions",
                  "Too many: %zu: must have at most %d items", nv,
                  CRD_MAX_VERSIONS);
        goto fail;
    }
    size_t n_storage = 0, n_served = 0;
    const char *storage = NULL;
    for (size_t i = 0; i < nv; i++) {
        const json_t *v = json_array_get(versions, i);
        const char *vn = json_string_value(json_object_get(v, "name"));
        size_t saved = path_push(&c, ".versions[%zu]", i);
        if (!vn || !is_dns1035_label(vn)) {
            if (!json_object_get(v, "name")) {
                conv_required(&c, "name", NULL);
            } else {
                conv_invalid(&c, "name", json_object_get(v, "name"),
                             "a DNS-1035 label must consist of lower case "
                             "alphanumeric characters or '-'");
            }
        }
        for (size_t j = 0; vn && j < i; j++) {
            const char *o = json_string_value(
                json_object_get(json_array_get(versions, j), "name"));
            if (o && !strcmp(o, vn)) {
                dpf_error_add_cause(err, DPF_CAUSE_DUPLICATE, "spec.versions",
                                    "Duplicate value: \"%s\"", vn);
                c.bad = true;
            }
        }
        if (get_bool(v, "storage")) {
            n_storage++;
            storage = vn;
        }
        if (get_bool(v, "served")) {
            n_served++;
        }
        if (!json_object_get(json_object_get(v, "schema"), "openAPIV3Schema")) {
            conv_required(&c, "schema.openAPIV3Schema", "schemas are required");
        }
        path_pop(&c, saved);
    }
    if (n_storage != 1) {
        conv_invalid(&c, "versions", versions,
                     "must have exactly one version marked as storage "
                     "version");
    }
    if (!n_served) {
        conv_invalid(&c, "versions", versions,
                     "must have at least one version marked as served");
    }
    if (c.bad || !group || !plural || !names_str(spec, "kind") || !sc) {
        goto fail;
    }
    /* The kinds, one per served version. */
    struct crd_arena *a = d->arena;
    d->name = xstrdup(name ? name : "");
    d->group = xstrdup(group);
    d->plural = xstrdup(plural);
    d->preferred_version = arena_strdup(a, storage ? storage : "");
    d->kinds = arena_alloc(a, (nv + 1) * sizeof *d->kinds);
    bool terminating = schema_get(crd, "metadata.deletionTimestamp") != NULL;
    char *spec_text = json_dumps(spec, JSON_COMPACT | JSON_SORT_KEYS);
    if (spec_text && terminating) {
        /* Serving changes when deletion starts: no more creates. */
        size_t sl = strlen(spec_text);
        spec_text = xrealloc(spec_text, sl + 3);
        memcpy(spec_text + sl, "|T", 3);
    }
    d->spec_text = spec_text;
    const char *kindname = names_str(spec, "kind");
    const char *list_kind = names_str(spec, "listKind");
    const char *singular = names_str(spec, "singular");
    char lk[80];
    snprintf(lk, sizeof lk, "%sList", kindname);
    const char *g = arena_strdup(a, group);
    size_t nk = 0;
    for (size_t i = 0; i < nv; i++) {
        const json_t *v = json_array_get(versions, i);
        const json_t *schema =
            json_object_get(json_object_get(v, "schema"), "openAPIV3Schema");
        size_t saved =
            path_push(&c, ".versions[%zu].schema.openAPIV3Schema", i);
        c.nodes = 0;
        struct schema_node *root = convert(&c, schema, 0, true);
        path_pop(&c, saved);
        /* The object's own fields: apiVersion, kind, metadata. */
        if (root && root->type == SCHEMA_T_OBJECT) {
            size_t cnt = 0;
            for (const struct schema_field *f = root->fields; f && f->name;
                 f++) {
                cnt++;
            }
            struct schema_field *fs = arena_alloc(a, (cnt + 4) * sizeof *fs);
            fs[0] = (struct schema_field){"apiVersion", &schema_string, false};
            fs[1] = (struct schema_field){"kind", &schema_string, false};
            fs[2] =
                (struct schema_field){"metadata", &schema_object_meta, false};
            size_t j = 3;
            for (const struct schema_field *f = root->fields; f && f->name;
                 f++) {
                if (strcmp(f->name, "apiVersion") && strcmp(f->name, "kind") &&
                    strcmp(f->name, "metadata")) {
                    fs[j++] = *f;
                }
            }
            fs[j].name = NULL;
            root->fields = fs;
        }
        saved = path_push(&c, ".versions[%zu]", i);
        const struct schema_column *cols =
            conv_columns(&c, json_object_get(v, "additionalPrinterColumns"));
        const json_t *sub = json_object_get(v, "subresources");
        const json_t *scale = json_object_get(sub, "scale");
        struct schema_scale *ss = NULL;
        if (scale) {
            size_t s2 = path_push(&c, ".subresources.scale");
            ss = arena_alloc(a, sizeof *ss);
            ss->spec_replicas =
                crd_path(&c, json_object_get(scale, "specReplicasPath"),
                         "specReplicasPath");
            ss->status_replicas =
                crd_path(&c, json_object_get(scale, "statusReplicasPath"),
                         "statusReplicasPath");
            ss->label_selector =
                crd_path(&c, json_object_get(scale, "labelSelectorPath"),
                         "labelSelectorPath");
            if (!ss->spec_replicas) {
                conv_required(&c, "specReplicasPath", NULL);
            }
            if (!ss->status_replicas) {
                conv_required(&c, "statusReplicasPath", NULL);
            }
            path_pop(&c, s2);
        }
        path_pop(&c, saved);
        if (!root || c.bad || !get_bool(v, "served")) {
            continue;
        }
        struct schema_kind *k = arena_alloc(a, sizeof *k);
        k->group = g;
        k->version =
            arena_strdup(a, json_string_value(json_object_get(v, "name")));
        k->kind = arena_strdup(a, kindname);
        k->list_kind = arena_strdup(a, list_kind ? list_kind : lk);
        k->plural = arena_strdup(a, plural);
        k->singular =
            singular ? arena_strdup(a, singular) : lower_dup(a, kindname);
        k->short_names = name_list(a, json_object_get(names, "shortNames"));
        k->categories = name_list(a, json_object_get(names, "categories"));
        k->namespaced = !strcmp(sc, "Namespaced");
        k->has_status = json_object_get(sub, "status") != NULL;
        k->columns = cols;
        k->root = root;
        k->scale = ss;
        k->crd = true;
        k->crd_terminating = terminating;
        d->kinds[nk++] = k;
    }
    d->kinds[nk] = NULL;
    if (c.bad) {
        goto fail;
    }
    return d;
fail:
    if (!err->code) {
        dpf_error_set(err, 422, "Invalid", "invalid CustomResourceDefinition");
    }
    schema_crd_def_free(d);
    return NULL;
}

void
schema_crd_def_free(struct crd_def *d)
{
    if (!d) {
        return;
    }
    free(d->name);
    free(d->group);
    free(d->plural);
    free(d->spec_text);
    arena_free(d->arena);
    free(d);
}

bool
schema_crd_same(const struct crd_def *a, const struct crd_def *b)
{
    return a->spec_text && b->spec_text && !strcmp(a->spec_text, b->spec_text);
}

int
schema_crd_check(const json_t *crd, const json_t *old, struct dpf_error *err)
{
    struct crd_def *d = schema_crd_build(crd, err);
    if (!d) {
        return -EINVAL;
    }
    schema_crd_def_free(d);
    if (!old) {
        return 0;
    }
    /* What Kubernetes keeps immutable (scope may change only while no
     * object is stored; we keep it fixed). */
    const char *paths[][2] = {
        {"spec.group", "field is immutable"},
        {"spec.names.kind", "field is immutable"},
        {"spec.names.plural", "field is immutable"},
        {"spec.scope", "field is immutable"},
    };
    int r = 0;
    for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
        const json_t *a = schema_get(crd, paths[i][0]);
        const json_t *b = schema_get(old, paths[i][0]);
        if (a && b && !json_equal((json_t *) a, (json_t *) b)) {
            schema_err_invalid(err, paths[i][0], a, "%s", paths[i][1]);
            r = -EINVAL;
        }
    }
    return r;
}
