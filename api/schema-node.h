/* schema-node: the field-tree declarations behind api/schema.h.
 *
 * Private to api/: the kinds-*.c files declare every kind with the N_*
 * macros below (static, file-scope compound literals) and list it in a
 * group; the engine (api/schema-*.c) walks the trees to validate, default,
 * prune and export. See docs/dev/schema.md
 * for how to declare a kind.
 *
 * Nodes are const; the two pieces of state computed once at start-up (a
 * compiled pattern, a parsed default) live in small mutable side structs
 * the node points to, filled once when the registry is built. */
#ifndef DPF_API_SCHEMA_NODE_H
#define DPF_API_SCHEMA_NODE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/schema.h"
#include "lib/base/error.h"

/* The OpenAPI type of a node. */
enum schema_type {
    SCHEMA_T_OBJECT = 1,    /* declared properties */
    SCHEMA_T_MAP,           /* object with additionalProperties = items */
    SCHEMA_T_ARRAY,         /* list of items */
    SCHEMA_T_STRING,        /* string */
    SCHEMA_T_INTEGER,       /* integer (int64) */
    SCHEMA_T_NUMBER,        /* integer or float */
    SCHEMA_T_BOOLEAN,       /* true/false */
    SCHEMA_T_INT_OR_STRING, /* x-kubernetes-int-or-string */
    SCHEMA_T_ANY,           /* any JSON (x-kubernetes-preserve-unknown) */
};

/* A regular expression (RE2/PCRE syntax as in the CRD); code is the
 * compiled pcre2 pattern, set by schema_init(). */
struct schema_re {
    const char *src; /* pattern text, exported verbatim */
    void *code;      /* pcre2_code *, NULL until compiled */
};

/* A default value given as JSON text; value is parsed by schema_init(). */
struct schema_def {
    const char *json; /* "1000", "\"Recreate\"", "{\"phase\":\"Pending\"}" */
    json_t *value;    /* parsed once; copied into objects */
};

struct schema_node;

/* One declared property of an object node. */
struct schema_field {
    const char *name;               /* JSON key; NULL ends the list */
    const struct schema_node *node; /* its schema */
    bool required;                  /* listed in the parent's required */
};

/* Custom check on a node's value (after the declarative checks passed).
 * path is the dotted field path; add causes to err; return 0 or -EINVAL. */
typedef int (*schema_check_fn)(const json_t *v, const char *path,
                               struct dpf_error *err);

/* A node of the field tree. Zero means "not set" for every bound. */
struct schema_node {
    enum schema_type type;             /* see enum schema_type */
    const char *description;           /* exported description */
    const struct schema_field *fields; /* OBJECT: properties */
    const struct schema_node *items;   /* ARRAY items / MAP values */
    bool preserve_unknown;             /* OBJECT keeps other keys */
    bool nullable;                     /* null is a valid value */
    bool export_plain;                 /* export as {type: object} */
    const char *const *enum_values;    /* NULL-terminated */
    struct schema_re *pattern;         /* strings must match */
    const char *format;                /* date-time, int32, int64 */
    bool has_min, has_max;             /* integer bounds set */
    int64_t min, max;                  /* inclusive bounds */
    int64_t min_len, max_len;          /* string length bounds */
    int64_t min_items, max_items;      /* ARRAY bounds */
    int64_t min_props, max_props;      /* MAP/OBJECT bounds */
    struct schema_def *def;            /* default when absent */
    const char *immutable;             /* self == oldSelf message */
    bool immutable_unless_empty;       /* oldSelf == "" allowed */
    const char *map_type;              /* x-kubernetes-map-type */
    const char *list_type;             /* x-kubernetes-list-type */
    const char *const *list_map_keys;  /* x-kubernetes-list-map-keys */
    /* Strategic merge patch (x-kubernetes-patch-strategy / -merge-key), as
     * Kubernetes declares them on its own types: "merge" (lists by
     * merge_key, primitive lists as sets), "retainKeys", "merge,retainKeys",
     * "replace"; NULL = a list is replaced, an object merged. */
    const char *patch_strategy;
    const char *patch_merge_key;
    const char *cel_rule;    /* exported CEL rule */
    const char *cel_message; /* its message */
    schema_check_fn check;   /* custom value check */
};

/* --- declaration macros --- */
#define SCHEMA_NODE_(t, ...) \
    (&(const struct schema_node){.type = (t), __VA_ARGS__})
#define N_OBJ(...) SCHEMA_NODE_(SCHEMA_T_OBJECT, __VA_ARGS__)
#define N_MAP(n, ...) SCHEMA_NODE_(SCHEMA_T_MAP, .items = (n), __VA_ARGS__)
#define N_ARR(n, ...) SCHEMA_NODE_(SCHEMA_T_ARRAY, .items = (n), __VA_ARGS__)
#define N_STR(...) SCHEMA_NODE_(SCHEMA_T_STRING, __VA_ARGS__)
#define N_INT(...) SCHEMA_NODE_(SCHEMA_T_INTEGER, __VA_ARGS__)
#define N_NUM(...) SCHEMA_NODE_(SCHEMA_T_NUMBER, __VA_ARGS__)
#define N_BOOL(...) SCHEMA_NODE_(SCHEMA_T_BOOLEAN, __VA_ARGS__)
#define N_IOS(...) SCHEMA_NODE_(SCHEMA_T_INT_OR_STRING, __VA_ARGS__)
#define N_ANY(...) SCHEMA_NODE_(SCHEMA_T_ANY, __VA_ARGS__)

#define FIELDS(...)                         \
    .fields = (const struct schema_field[]) \
    {                                       \
        __VA_ARGS__,                        \
        {                                   \
            0                               \
        }                                   \
    }
#define F(name, node)         \
    {                         \
        (name), (node), false \
    }
#define R(name, node)        \
    {                        \
        (name), (node), true \
    }
#define ITEMS(n) .items = (n)
#define DESC(s) .description = (s)
#define PATTERN(p)                 \
    .pattern = &(struct schema_re) \
    {                              \
        .src = (p)                 \
    }
#define DEFAULT(j)              \
    .def = &(struct schema_def) \
    {                           \
        .json = (j)             \
    }
#define ENUM(...)                        \
    .enum_values = (const char *const[]) \
    {                                    \
        __VA_ARGS__, NULL                \
    }
#define MINIMUM(x) .has_min = true, .min = (x)
#define MAXIMUM(x) .has_max = true, .max = (x)
#define MINLEN(x) .min_len = (x)
#define MAXLEN(x) .max_len = (x)
#define MINITEMS(x) .min_items = (x)
#define MAXITEMS(x) .max_items = (x)
#define MINPROPS(x) .min_props = (x)
#define MAXPROPS(x) .max_props = (x)
#define IMMUTABLE(msg) .immutable = (msg)
#define PRESERVE .preserve_unknown = true
#define NULLABLE .nullable = true
#define FORMAT(f) .format = (f)
#define ATOMIC_MAP .map_type = "atomic"
#define ATOMIC_LIST .list_type = "atomic"
/* Server-side apply list types and strategic merge patch strategies. */
#define LIST_MAP(...)                                          \
    .list_type = "map", .list_map_keys = (const char *const[]) \
    {                                                          \
        __VA_ARGS__, NULL                                      \
    }
#define LIST_SET .list_type = "set"
#define PATCH_MERGE_KEY(k) .patch_strategy = "merge", .patch_merge_key = (k)
#define PATCH_STRATEGY(s) .patch_strategy = (s)
#define MERGE_KEY(k) .patch_merge_key = (k)
#define CEL(rule, msg) .cel_rule = (rule), .cel_message = (msg)
#define CHECK(fn) .check = (fn)

/* Root of a kind: apiVersion, kind, metadata and the given extra fields. */
#define KIND_ROOT(...)                                         \
    SCHEMA_NODE_(SCHEMA_T_OBJECT,                              \
                 .fields = (const struct schema_field[]){      \
                     {"apiVersion", &schema_string, false},    \
                     {"kind", &schema_string, false},          \
                     {"metadata", &schema_object_meta, false}, \
                     __VA_ARGS__,                              \
                     {0}})

/* --- shared sub-schemas (api/kinds-shared.c) --- */
extern const struct schema_node schema_string;         /* a plain string */
extern const struct schema_node schema_string_list;    /* []string */
extern const struct schema_node schema_string_map;     /* map[string]string */
extern const struct schema_node schema_object_meta;    /* metav1.ObjectMeta */
extern const struct schema_node schema_label_selector; /* LabelSelector */
extern const struct schema_node schema_node_selector;  /* core NodeSelector */
extern const struct schema_node schema_conditions;     /* []metav1.Condition */
extern const struct schema_node schema_taint;          /* core Taint */
extern const struct schema_node schema_quantity;       /* resource.Quantity */
extern const struct schema_node schema_resource_list;  /* ResourceList */

extern const struct schema_node schema_pod_spec; /* core PodSpec (loose) */
/* Conditions of Kubernetes' own kinds (Node, Pod, Deployment...): a list
 * map keyed by type, merged by type in strategic patches. */
extern const struct schema_node schema_core_conditions;

/* Descriptions of fields many DPF kinds share, by the end of their path
 * ("*.matchLabels", "*.status.conditions"; api/kinds-docs.c): what a
 * kind with a docs table gets for fields it does not describe. */
extern const struct schema_doc schema_common_docs[];

/* Printer columns: one that shows a JSONPath (name, type, path), the
 * ones kubectl and DPF's CRDs repeat, and the end of a list. */
#define COLUMN(name, type, path)              \
    {                                         \
        (name), (type), (path), NULL, 0, NULL \
    }
#define COLUMN_AGE COLUMN("Age", "date", ".metadata.creationTimestamp")
#define COLUMN_READY \
    COLUMN("Ready", "string", ".status.conditions[?(@.type=='Ready')].status")
#define COLUMN_READY_REASON \
    COLUMN("Phase", "string", ".status.conditions[?(@.type=='Ready')].reason")
#define COLUMNS_END COLUMN(NULL, NULL, NULL)
/* Age alone; Ready, Phase (the Ready condition's reason) and Age. */
extern const struct schema_column schema_columns_age[];
extern const struct schema_column schema_columns_ready_reason_age[];

/* Core kinds declared outside kinds-core.c (api/kinds-core-data.c). */
extern const struct schema_kind schema_kind_secret;
extern const struct schema_kind schema_kind_event; /* core/v1 Event */
extern const struct schema_kind schema_kind_configmap;

/* The groups of each kinds file, and the list of all built-in groups in
 * registry order (api/kinds.c); the engine knows them only through it. */
extern const struct schema_group schema_group_provisioning;
extern const struct schema_group schema_group_svc;
extern const struct schema_group schema_group_operator;
extern const struct schema_group schema_group_core;
extern const struct schema_group schema_group_coordination;
extern const struct schema_group schema_group_apps;
extern const struct schema_group schema_group_ipam;
extern const struct schema_group schema_group_events;
extern const struct schema_group schema_group_rbac;
extern const struct schema_group schema_group_authorization;
extern const struct schema_group schema_group_authentication;
extern const struct schema_group schema_group_certificates;
extern const struct schema_group schema_group_apiextensions;
extern const struct schema_group *const schema_builtin_groups[];

/* A kind's names: Kind, its list kind (Kind + "List"), plural, singular. */
#define KIND_NAMES(k, plural_, singular_)                    \
    .kind = (k), .list_kind = k "List", .plural = (plural_), \
    .singular = (singular_)

/* A group with one version: defines `var` listing the kinds (pointers). */
#define SCHEMA_GROUP_1(var, name_, version_, ...)                         \
    const struct schema_group var = {                                     \
        .name = (name_),                                                  \
        .preferred_version = (version_),                                  \
        .versions =                                                       \
            (const struct schema_group_version[]){                        \
                {(version_),                                              \
                 (const struct schema_kind *const[]){__VA_ARGS__, NULL}}, \
                {NULL, NULL}},                                            \
    }

/* --- helpers for kind rules (api/schema-*.c) --- */
/* Render v for an error message the way Kubernetes does: strings quoted,
 * numbers and booleans bare, objects "object", arrays "array". */
void schema_value_str(const json_t *v, char *buf, size_t size);
/* Add a cause "<path>: Invalid value: <v>: <detail>". */
void schema_err_invalid(struct dpf_error *err, const char *path,
                        const json_t *v, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Add a cause "<path>: Required value[: <detail>]". fmt may be NULL. */
void schema_err_required(struct dpf_error *err, const char *path,
                         const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Add a cause "<path>: Forbidden: <detail>". */
void schema_err_forbidden(struct dpf_error *err, const char *path,
                          const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Add a cause "<path>: Duplicate value: <v>". */
void schema_err_duplicate(struct dpf_error *err, const char *path,
                          const json_t *v);
/* Does s match the pattern? (compiled at init; false if not compiled) */
bool schema_re_match(const struct schema_re *re, const char *s, size_t len);
/* Is s a DNS-1123 label / subdomain? (no message) */
bool schema_is_dns_label(const char *s);
bool schema_is_dns_subdomain(const char *s);
/* Validate a label/annotation-style qualified key; adds a cause. */
int schema_check_qualified_name(const char *key, const char *path,
                                struct dpf_error *err);
/* Validate labels (keys and values) at path; adds causes. */
int schema_check_labels(const json_t *labels, const char *path,
                        struct dpf_error *err);
/* Object helpers: the string at a dotted path ("spec.bfb.name") or NULL. */
const char *schema_get_str(const json_t *obj, const char *dotted);
/* The JSON value at a dotted path or NULL. */
json_t *schema_get(const json_t *obj, const char *dotted);
/* Ensure objects exist along a dotted path and return the last one. */
json_t *schema_ensure_obj(json_t *obj, const char *dotted);

#endif
