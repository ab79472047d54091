/* apiserver-openapi-pb: the swagger 2.0 document of /openapi/v2 in the
 * protobuf encoding kubectl asks for (gnostic's OpenAPI v2 model, our
 * own subset in proto/openapiv2.proto, packed by protobuf-c). kubectl
 * 1.20 reads only this encoding: explain and client-side validation
 * take the definitions, and diff / apply --dry-run=server first look for
 * a PATCH operation of the kind with a dryRun parameter.
 *
 * The messages are built from the JSON document in one arena, freed as a
 * whole once packed. Values that are free JSON (defaults, enum values,
 * vendor extensions) travel as gnostic's Any, whose yaml field holds
 * their JSON text (JSON is YAML). */
#include <stdlib.h>
#include <string.h>

#include "dpf-server/apiserver-private.h"
#include "openapiv2.pb-c.h"

/* Every allocation of one conversion, freed together. */
struct pb_arena {
    void **ptrs;
    size_t n, cap;
};

static void *
pb_keep(struct pb_arena *a, void *p)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 1024;
        a->ptrs = xrealloc(a->ptrs, a->cap * sizeof(*a->ptrs));
    }
    a->ptrs[a->n++] = p;
    return p;
}

static void *
pb_alloc(struct pb_arena *a, size_t size)
{
    return pb_keep(a, xcalloc(1, size));
}

static void
pb_arena_free(struct pb_arena *a)
{
    for (size_t i = 0; i < a->n; i++) {
        free(a->ptrs[i]);
    }
    free(a->ptrs);
}

/* A new message of type T initialised with its INIT macro. */
#define PB_NEW(a, T, INIT)                \
    ({                                    \
        T *m_ = pb_alloc((a), sizeof(T)); \
        *m_ = (T) INIT;                   \
        m_;                               \
    })

static char *
pb_str(struct pb_arena *a, const json_t *v)
{
    const char *s = json_string_value(v);
    return s ? pb_keep(a, xstrdup(s)) : (char *) protobuf_c_empty_string;
}

static Openapi__V2__Any *
pb_any(struct pb_arena *a, const json_t *v)
{
    Openapi__V2__Any *any = PB_NEW(a, Openapi__V2__Any, OPENAPI__V2__ANY__INIT);
    char *text = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    any->yaml = text ? pb_keep(a, text) : (char *) protobuf_c_empty_string;
    return any;
}

/* The "x-..." members of a JSON object as vendor extensions. */
static Openapi__V2__NamedAny **
pb_extensions(struct pb_arena *a, const json_t *o, size_t *n)
{
    size_t count = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *) o, key, v)
    {
        count += !strncmp(key, "x-", 2);
    }
    *n = count;
    if (!count) {
        return NULL;
    }
    Openapi__V2__NamedAny **out = pb_alloc(a, count * sizeof(*out));
    size_t i = 0;
    json_object_foreach((json_t *) o, key, v)
    {
        if (strncmp(key, "x-", 2) != 0) {
            continue;
        }
        Openapi__V2__NamedAny *na =
            PB_NEW(a, Openapi__V2__NamedAny, OPENAPI__V2__NAMED_ANY__INIT);
        na->name = pb_keep(a, xstrdup(key));
        na->value = pb_any(a, v);
        out[i++] = na;
    }
    return out;
}

static char **
pb_strings(struct pb_arena *a, const json_t *arr, size_t *n)
{
    *n = json_array_size(arr);
    if (!*n) {
        return NULL;
    }
    char **out = pb_alloc(a, *n * sizeof(*out));
    for (size_t i = 0; i < *n; i++) {
        out[i] = pb_str(a, json_array_get(arr, i));
    }
    return out;
}

static Openapi__V2__Schema *pb_schema(struct pb_arena *a, const json_t *s,
                                      int depth);

static Openapi__V2__NamedSchema **
pb_named_schemas(struct pb_arena *a, const json_t *o, size_t *n, int depth)
{
    *n = json_object_size(o);
    if (!*n) {
        return NULL;
    }
    Openapi__V2__NamedSchema **out = pb_alloc(a, *n * sizeof(*out));
    size_t i = 0;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *) o, key, v)
    {
        Openapi__V2__NamedSchema *ns = PB_NEW(a, Openapi__V2__NamedSchema,
                                              OPENAPI__V2__NAMED_SCHEMA__INIT);
        ns->name = pb_keep(a, xstrdup(key));
        ns->value = pb_schema(a, v, depth + 1);
        out[i++] = ns;
    }
    return out;
}

static int64_t
pb_int(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static Openapi__V2__Schema *
pb_schema(struct pb_arena *a, const json_t *s, int depth)
{
    Openapi__V2__Schema *m =
        PB_NEW(a, Openapi__V2__Schema, OPENAPI__V2__SCHEMA__INIT);
    if (!json_is_object(s) || depth > 64) {
        return m;
    }
    m->_ref = pb_str(a, json_object_get(s, "$ref"));
    m->format = pb_str(a, json_object_get(s, "format"));
    m->title = pb_str(a, json_object_get(s, "title"));
    m->description = pb_str(a, json_object_get(s, "description"));
    m->pattern = pb_str(a, json_object_get(s, "pattern"));
    json_t *v = json_object_get(s, "default");
    if (v) {
        m->default_ = pb_any(a, v);
    }
    m->maximum = json_number_value(json_object_get(s, "maximum"));
    m->minimum = json_number_value(json_object_get(s, "minimum"));
    m->max_length = pb_int(s, "maxLength");
    m->min_length = pb_int(s, "minLength");
    m->max_items = pb_int(s, "maxItems");
    m->min_items = pb_int(s, "minItems");
    m->max_properties = pb_int(s, "maxProperties");
    m->min_properties = pb_int(s, "minProperties");
    m->required = pb_strings(a, json_object_get(s, "required"), &m->n_required);
    json_t *en = json_object_get(s, "enum");
    m->n_enum_ = json_array_size(en);
    if (m->n_enum_) {
        m->enum_ = pb_alloc(a, m->n_enum_ * sizeof(*m->enum_));
        for (size_t i = 0; i < m->n_enum_; i++) {
            m->enum_[i] = pb_any(a, json_array_get(en, i));
        }
    }
    v = json_object_get(s, "additionalProperties");
    if (v) {
        Openapi__V2__AdditionalPropertiesItem *ap =
            PB_NEW(a, Openapi__V2__AdditionalPropertiesItem,
                   OPENAPI__V2__ADDITIONAL_PROPERTIES_ITEM__INIT);
        if (json_is_boolean(v)) {
            ap->oneof_case =
                OPENAPI__V2__ADDITIONAL_PROPERTIES_ITEM__ONEOF_BOOLEAN;
            ap->boolean = json_is_true(v);
        } else {
            ap->oneof_case =
                OPENAPI__V2__ADDITIONAL_PROPERTIES_ITEM__ONEOF_SCHEMA;
            ap->schema = pb_schema(a, v, depth + 1);
        }
        m->additional_properties = ap;
    }
    v = json_object_get(s, "type");
    if (json_is_string(v)) {
        Openapi__V2__TypeItem *t =
            PB_NEW(a, Openapi__V2__TypeItem, OPENAPI__V2__TYPE_ITEM__INIT);
        t->n_value = 1;
        t->value = pb_alloc(a, sizeof(*t->value));
        t->value[0] = pb_str(a, v);
        m->type = t;
    }
    v = json_object_get(s, "items");
    if (json_is_object(v)) {
        Openapi__V2__ItemsItem *it =
            PB_NEW(a, Openapi__V2__ItemsItem, OPENAPI__V2__ITEMS_ITEM__INIT);
        it->n_schema = 1;
        it->schema = pb_alloc(a, sizeof(*it->schema));
        it->schema[0] = pb_schema(a, v, depth + 1);
        m->items = it;
    }
    v = json_object_get(s, "properties");
    if (json_is_object(v)) {
        Openapi__V2__Properties *p =
            PB_NEW(a, Openapi__V2__Properties, OPENAPI__V2__PROPERTIES__INIT);
        p->additional_properties =
            pb_named_schemas(a, v, &p->n_additional_properties, depth);
        m->properties = p;
    }
    m->vendor_extension = pb_extensions(a, s, &m->n_vendor_extension);
    return m;
}

static Openapi__V2__ParametersItem *
pb_parameter(struct pb_arena *a, const json_t *p)
{
    Openapi__V2__ParametersItem *item = PB_NEW(
        a, Openapi__V2__ParametersItem, OPENAPI__V2__PARAMETERS_ITEM__INIT);
    Openapi__V2__Parameter *par =
        PB_NEW(a, Openapi__V2__Parameter, OPENAPI__V2__PARAMETER__INIT);
    item->oneof_case = OPENAPI__V2__PARAMETERS_ITEM__ONEOF_PARAMETER;
    item->parameter = par;
    const char *in = json_string_value(json_object_get(p, "in"));
    if (in && !strcmp(in, "body")) {
        Openapi__V2__BodyParameter *b = PB_NEW(
            a, Openapi__V2__BodyParameter, OPENAPI__V2__BODY_PARAMETER__INIT);
        b->name = pb_str(a, json_object_get(p, "name"));
        b->in = pb_str(a, json_object_get(p, "in"));
        b->description = pb_str(a, json_object_get(p, "description"));
        b->required = json_is_true(json_object_get(p, "required"));
        b->schema = pb_schema(a, json_object_get(p, "schema"), 0);
        par->oneof_case = OPENAPI__V2__PARAMETER__ONEOF_BODY_PARAMETER;
        par->body_parameter = b;
        return item;
    }
    Openapi__V2__NonBodyParameter *nb =
        PB_NEW(a, Openapi__V2__NonBodyParameter,
               OPENAPI__V2__NON_BODY_PARAMETER__INIT);
    par->oneof_case = OPENAPI__V2__PARAMETER__ONEOF_NON_BODY_PARAMETER;
    par->non_body_parameter = nb;
    if (in && !strcmp(in, "path")) {
        Openapi__V2__PathParameterSubSchema *q =
            PB_NEW(a, Openapi__V2__PathParameterSubSchema,
                   OPENAPI__V2__PATH_PARAMETER_SUB_SCHEMA__INIT);
        q->name = pb_str(a, json_object_get(p, "name"));
        q->in = pb_str(a, json_object_get(p, "in"));
        q->type = pb_str(a, json_object_get(p, "type"));
        q->required = true;
        nb->oneof_case =
            OPENAPI__V2__NON_BODY_PARAMETER__ONEOF_PATH_PARAMETER_SUB_SCHEMA;
        nb->path_parameter_sub_schema = q;
        return item;
    }
    Openapi__V2__QueryParameterSubSchema *q =
        PB_NEW(a, Openapi__V2__QueryParameterSubSchema,
               OPENAPI__V2__QUERY_PARAMETER_SUB_SCHEMA__INIT);
    q->name = pb_str(a, json_object_get(p, "name"));
    q->in = pb_str(a, json_object_get(p, "in"));
    q->description = pb_str(a, json_object_get(p, "description"));
    q->type = pb_str(a, json_object_get(p, "type"));
    q->unique_items = json_is_true(json_object_get(p, "uniqueItems"));
    q->required = json_is_true(json_object_get(p, "required"));
    nb->oneof_case =
        OPENAPI__V2__NON_BODY_PARAMETER__ONEOF_QUERY_PARAMETER_SUB_SCHEMA;
    nb->query_parameter_sub_schema = q;
    return item;
}

static Openapi__V2__Operation *
pb_operation(struct pb_arena *a, const json_t *op)
{
    if (!json_is_object(op)) {
        return NULL;
    }
    Openapi__V2__Operation *m =
        PB_NEW(a, Openapi__V2__Operation, OPENAPI__V2__OPERATION__INIT);
    m->operation_id = pb_str(a, json_object_get(op, "operationId"));
    m->description = pb_str(a, json_object_get(op, "description"));
    m->produces =
        pb_strings(a, json_object_get(op, "produces"), &m->n_produces);
    m->consumes =
        pb_strings(a, json_object_get(op, "consumes"), &m->n_consumes);
    json_t *params = json_object_get(op, "parameters");
    m->n_parameters = json_array_size(params);
    if (m->n_parameters) {
        m->parameters = pb_alloc(a, m->n_parameters * sizeof(*m->parameters));
        for (size_t i = 0; i < m->n_parameters; i++) {
            m->parameters[i] = pb_parameter(a, json_array_get(params, i));
        }
    }
    json_t *resp = json_object_get(op, "responses");
    Openapi__V2__Responses *r =
        PB_NEW(a, Openapi__V2__Responses, OPENAPI__V2__RESPONSES__INIT);
    r->n_response_code = json_object_size(resp);
    if (r->n_response_code) {
        r->response_code =
            pb_alloc(a, r->n_response_code * sizeof(*r->response_code));
        size_t i = 0;
        const char *code;
        json_t *v;
        json_object_foreach(resp, code, v)
        {
            Openapi__V2__NamedResponseValue *nr =
                PB_NEW(a, Openapi__V2__NamedResponseValue,
                       OPENAPI__V2__NAMED_RESPONSE_VALUE__INIT);
            Openapi__V2__ResponseValue *rv =
                PB_NEW(a, Openapi__V2__ResponseValue,
                       OPENAPI__V2__RESPONSE_VALUE__INIT);
            Openapi__V2__Response *rs =
                PB_NEW(a, Openapi__V2__Response, OPENAPI__V2__RESPONSE__INIT);
            rs->description = pb_str(a, json_object_get(v, "description"));
            json_t *sch = json_object_get(v, "schema");
            if (sch) {
                Openapi__V2__SchemaItem *si = PB_NEW(
                    a, Openapi__V2__SchemaItem, OPENAPI__V2__SCHEMA_ITEM__INIT);
                si->oneof_case = OPENAPI__V2__SCHEMA_ITEM__ONEOF_SCHEMA;
                si->schema = pb_schema(a, sch, 0);
                rs->schema = si;
            }
            rv->oneof_case = OPENAPI__V2__RESPONSE_VALUE__ONEOF_RESPONSE;
            rv->response = rs;
            nr->name = pb_keep(a, xstrdup(code));
            nr->value = rv;
            r->response_code[i++] = nr;
        }
    }
    m->responses = r;
    m->vendor_extension = pb_extensions(a, op, &m->n_vendor_extension);
    return m;
}

uint8_t *
as_openapi_v2_protobuf(const json_t *doc, size_t *len)
{
    struct pb_arena a = {0};
    Openapi__V2__Document d = OPENAPI__V2__DOCUMENT__INIT;
    d.swagger = pb_str(&a, json_object_get(doc, "swagger"));
    json_t *info = json_object_get(doc, "info");
    d.info = PB_NEW(&a, Openapi__V2__Info, OPENAPI__V2__INFO__INIT);
    d.info->title = pb_str(&a, json_object_get(info, "title"));
    d.info->version = pb_str(&a, json_object_get(info, "version"));
    json_t *paths = json_object_get(doc, "paths");
    d.paths = PB_NEW(&a, Openapi__V2__Paths, OPENAPI__V2__PATHS__INIT);
    d.paths->n_path = json_object_size(paths);
    if (d.paths->n_path) {
        d.paths->path = pb_alloc(&a, d.paths->n_path * sizeof(*d.paths->path));
        size_t i = 0;
        const char *p;
        json_t *item;
        json_object_foreach(paths, p, item)
        {
            Openapi__V2__NamedPathItem *np =
                PB_NEW(&a, Openapi__V2__NamedPathItem,
                       OPENAPI__V2__NAMED_PATH_ITEM__INIT);
            Openapi__V2__PathItem *pi =
                PB_NEW(&a, Openapi__V2__PathItem, OPENAPI__V2__PATH_ITEM__INIT);
            pi->get = pb_operation(&a, json_object_get(item, "get"));
            pi->put = pb_operation(&a, json_object_get(item, "put"));
            pi->post = pb_operation(&a, json_object_get(item, "post"));
            pi->delete_ = pb_operation(&a, json_object_get(item, "delete"));
            pi->patch = pb_operation(&a, json_object_get(item, "patch"));
            np->name = pb_keep(&a, xstrdup(p));
            np->value = pi;
            d.paths->path[i++] = np;
        }
    }
    d.definitions =
        PB_NEW(&a, Openapi__V2__Definitions, OPENAPI__V2__DEFINITIONS__INIT);
    d.definitions->additional_properties =
        pb_named_schemas(&a, json_object_get(doc, "definitions"),
                         &d.definitions->n_additional_properties, 0);
    *len = openapi__v2__document__get_packed_size(&d);
    uint8_t *out = malloc(*len ? *len : 1);
    if (out) {
        openapi__v2__document__pack(&d, out);
    }
    pb_arena_free(&a);
    return out;
}
