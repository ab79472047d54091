/* schema-openapi: a kind as a structural OpenAPI v3 schema and as a
 * complete apiextensions.k8s.io/v1 CustomResourceDefinition (validation
 * rules become x-kubernetes-validations, columns additionalPrinterColumns),
 * so a real Kubernetes API server can serve what this one serves. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "api/schema-engine.h"
#include "lib/base/util.h"

/* The int64 bounds of a node that export as themselves when set. */
static const struct {
    const char *key; /* OpenAPI keyword */
    size_t offset;   /* of the int64_t in struct schema_node */
} export_bounds[] = {
    {"minLength", offsetof(struct schema_node, min_len)},
    {"maxLength", offsetof(struct schema_node, max_len)},
    {"minItems", offsetof(struct schema_node, min_items)},
    {"maxItems", offsetof(struct schema_node, max_items)},
    {"minProperties", offsetof(struct schema_node, min_props)},
    {"maxProperties", offsetof(struct schema_node, max_props)},
};

/* Where export_node is in the kind: the dotted path of field names
 * (array items and map values add nothing) and the kind's docs. */
struct export_ctx {
    const struct schema_kind *k;
    char path[512];
    /* the schema goes into a CustomResourceDefinition, whose
     * JSONSchemaProps has no patch-strategy extensions (Kubernetes reads
     * them from its own types only; a CRD carrying them is refused) */
    bool crd;
};

/* The description of the field at c->path: the kind's own docs table,
 * else the node's DESC, else the shared table's entry for the path's
 * last one or two field names ("*.matchLabels"). */
static const char *
export_description(const struct export_ctx *c, const struct schema_node *n)
{
    for (const struct schema_doc *d = c->k->docs; d && d->path; d++) {
        if (!strcmp(d->path, c->path)) {
            return d->text;
        }
    }
    if (n->description) {
        return n->description;
    }
    if (!c->k->docs || !c->path[0] || !strcmp(c->path, "metadata")) {
        /* Kinds without docs keep their own descriptions only; a CRD's
         * root metadata is plain "type: object". */
        return NULL;
    }
    size_t pl = strlen(c->path);
    for (const struct schema_doc *d = schema_common_docs; d->path; d++) {
        const char *suffix = d->path + 1; /* ".a" or ".a.b" */
        size_t sl = strlen(suffix);
        if ((pl > sl && !strcmp(c->path + pl - sl, suffix)) ||
            (pl + 1 == sl && !strcmp(c->path, suffix + 1))) {
            return d->text;
        }
    }
    return NULL;
}

static json_t *
export_node(struct export_ctx *c, const struct schema_node *n, int depth)
{
    json_t *o = json_object();
    if (!n || depth > 64) {
        return o;
    }
    const char *desc = export_description(c, n);
    if (desc) {
        json_object_set_new(o, "description", json_string(desc));
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
                size_t len = strlen(c->path);
                snprintf(c->path + len, sizeof(c->path) - len, "%s%s",
                         len ? "." : "", f->name);
                json_object_set_new(props, f->name,
                                    export_node(c, f->node, depth + 1));
                c->path[len] = '\0';
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
                            export_node(c, n->items, depth + 1));
        break;
    case SCHEMA_T_ARRAY:
        json_object_set_new(o, "type", json_string("array"));
        json_object_set_new(o, "items", export_node(c, n->items, depth + 1));
        break;
    case SCHEMA_T_STRING:
    case SCHEMA_T_INTEGER:
    case SCHEMA_T_NUMBER:
    case SCHEMA_T_BOOLEAN:
        json_object_set_new(o, "type", json_string(schema_type_word(n->type)));
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
    for (size_t i = 0; i < ARRAY_SIZE(export_bounds); i++) {
        int64_t b =
            *(const int64_t *) ((const char *) n + export_bounds[i].offset);
        if (b) {
            json_object_set_new(o, export_bounds[i].key, json_integer(b));
        }
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
    if (n->list_map_keys) {
        json_t *keys = json_array();
        for (const char *const *s = n->list_map_keys; *s; s++) {
            json_array_append_new(keys, json_string(*s));
        }
        json_object_set_new(o, "x-kubernetes-list-map-keys", keys);
    }
    if (n->patch_strategy && !c->crd) {
        json_object_set_new(o, "x-kubernetes-patch-strategy",
                            json_string(n->patch_strategy));
    }
    if (n->patch_merge_key && !c->crd) {
        json_object_set_new(o, "x-kubernetes-patch-merge-key",
                            json_string(n->patch_merge_key));
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
    schema_ensure_init();
    if (!k) {
        return NULL;
    }
    struct export_ctx c = {.k = k};
    return export_node(&c, k->root, 0);
}

/* v3 -> v2, in place, as kube-apiserver publishes a CRD's schema in
 * /openapi/v2: v2 has no anyOf/oneOf/allOf/not or nullable; a value
 * that may hold anything (preserve-unknown, nullable) loses its type,
 * properties and items, because kubectl's v2 validation would refuse
 * the fields it does not know; int-or-string is a string of format
 * int-or-string, as Kubernetes' own IntOrString, which kubectl's
 * validation accepts for either.
 * A built-in kind's partly modelled object (preserve-unknown with
 * properties: the pod spec, a container) becomes a map of anything
 * instead: kubectl 1.20 then accepts the fields we do not model, and
 * its patch computation, finding a map where it looks for a list's merge
 * key, falls back to its compiled-in Kubernetes types (it says "error
 * calculating patch from openapi spec" and uses them). Left untyped,
 * kubectl would patch containers and env as plain lists with no merge
 * key, and a client-side apply could not remove an env var. */
static void
v2_node(json_t *o, bool builtin)
{
    if (!json_is_object(o)) {
        return;
    }
    static const char *const drop[] = {"anyOf", "oneOf", "allOf", "not",
                                       "x-kubernetes-validations"};
    for (size_t i = 0; i < ARRAY_SIZE(drop); i++) {
        json_object_del(o, drop[i]);
    }
    bool open = json_is_true(json_object_get(
                    o, "x-kubernetes-preserve-unknown-fields")) ||
                json_is_true(json_object_get(o, "nullable"));
    json_object_del(o, "nullable");
    if (json_is_true(json_object_get(o, "x-kubernetes-int-or-string"))) {
        json_object_set_new(o, "type", json_string("string"));
        json_object_set_new(o, "format", json_string("int-or-string"));
        return;
    }
    if (open && builtin && json_object_get(o, "properties")) {
        json_object_del(o, "properties");
        json_object_del(o, "required");
        json_object_del(o, "x-kubernetes-preserve-unknown-fields");
        json_object_set_new(o, "type", json_string("object"));
        json_object_set_new(o, "additionalProperties", json_object());
        return;
    }
    if (open) {
        json_object_del(o, "type");
        json_object_del(o, "properties");
        json_object_del(o, "items");
        json_object_del(o, "additionalProperties");
        json_object_del(o, "required");
        return;
    }
    const char *key;
    json_t *v;
    json_object_foreach(json_object_get(o, "properties"), key, v)
    {
        v2_node(v, builtin);
    }
    v2_node(json_object_get(o, "items"), builtin);
    v2_node(json_object_get(o, "additionalProperties"), builtin);
}

json_t *
schema_openapi_v2(const struct schema_kind *k)
{
    json_t *o = schema_openapi_v3(k);
    v2_node(o, k->builtin);
    return o;
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
    schema_ensure_init();
    /* Kubernetes' own kinds are served by the API server itself, never by
     * a CRD. */
    if (!k || k->builtin) {
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
    struct export_ctx ec = {.k = k, .crd = true};
    json_t *version = json_pack(
        "{s:s,s:b,s:b,s:{s:o}}", "name", k->version, "served", 1, "storage", 1,
        "schema", "openAPIV3Schema", export_node(&ec, k->root, 0));
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
