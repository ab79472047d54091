/* Fuzz target for api/schema-crd.c: a CustomResourceDefinition's
 * openAPIV3Schema is user input. The input is JSON: either a schema, or
 * {"schema": <schema>, "object": <custom resource spec>,
 *  "crd": <spec fields merged into the CRD>}. The CRD made of it is
 * checked and, when accepted, served (schema_crd_register()); an object
 * is then run through what the API server does with a write (prune,
 * default, validate) and the kind through the exports (OpenAPI v3/v2,
 * field sets, printer columns); then the CRD is withdrawn. Invariants: a
 * rejected CRD or object carries a message and at least one cause;
 * defaulting is idempotent; a kind served is found by its resource.
 *
 * Every accepted input leaves its kinds in memory (the registry never
 * frees what a request may hold), so a long libFuzzer run grows by a few
 * KB per accepted schema; the corpus replay is bounded. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/schema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_t *
make_crd(const json_t *schema, const json_t *extra)
{
    json_t *crd = json_pack(
        "{s:s,s:s,s:{s:s},s:{s:s,s:s,s:{s:s,s:s,s:[s]},s:[{s:s,s:b,s:b,"
        "s:{s:O},s:{s:{}},s:[{s:s,s:s,s:s}]}]}}",
        "apiVersion", "apiextensions.k8s.io/v1", "kind",
        "CustomResourceDefinition", "metadata", "name",
        "fuzzes.fuzz.example.com", "spec", "group", "fuzz.example.com", "scope",
        "Namespaced", "names", "plural", "fuzzes", "kind", "Fuzz", "shortNames",
        "fz", "versions", "name", "v1", "served", 1, "storage", 1, "schema",
        "openAPIV3Schema", schema, "subresources", "status",
        "additionalPrinterColumns", "name", "Size", "type", "integer",
        "jsonPath", ".spec.size");
    if (crd && json_is_object(extra)) {
        json_object_update(json_object_get(crd, "spec"), (json_t *) extra);
    }
    return crd;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *in = json_loadb((const char *) data, size, 0, NULL);
    if (!json_is_object(in)) {
        json_decref(in);
        return 0;
    }
    const json_t *schema = json_object_get(in, "schema");
    if (!schema) {
        schema = in;
    }
    json_t *crd = make_crd(schema, json_object_get(in, "crd"));
    if (!crd) {
        json_decref(in);
        return 0;
    }
    struct dpf_error err = {0};
    int rc = schema_crd_check(crd, NULL, &err);
    if (rc < 0 && (!err.message[0] || err.n_causes == 0)) {
        abort();
    }
    memset(&err, 0, sizeof err);
    int reg = schema_crd_register(crd, &err);
    if ((reg < 0) != (rc < 0)) {
        abort(); /* check and register must agree */
    }
    const struct schema_kind *k =
        schema_find_resource("fuzz.example.com", "v1", "fuzzes");
    if (reg == 0 && !k) {
        abort();
    }
    if (k) {
        json_t *obj = json_pack("{s:s,s:s,s:{s:s,s:s},s:O?}", "apiVersion",
                                "fuzz.example.com/v1", "kind", "Fuzz",
                                "metadata", "name", "f", "namespace", "ns",
                                "spec", json_object_get(in, "object"));
        json_t *warn = NULL;
        if (schema_prune(k, obj, SCHEMA_UNKNOWN_WARN, &warn, &err) < 0 &&
            !err.message[0]) {
            abort();
        }
        json_decref(warn);
        schema_default(k, obj);
        json_t *again = json_deep_copy(obj);
        schema_default(k, again);
        if (!json_equal(obj, again)) {
            abort(); /* defaulting must be idempotent */
        }
        json_decref(again);
        rc = schema_validate(k, obj, NULL, &err);
        if (rc < 0 && (!err.message[0] || err.code < 400)) {
            abort();
        }
        json_decref(schema_openapi_v3(k));
        json_decref(schema_openapi_v2(k));
        json_decref(schema_fields_set(k, obj));
        for (const struct schema_column *c = k->columns; c && c->name; c++) {
            free(schema_column_value(c, obj));
        }
        json_decref(obj);
    }
    schema_crd_unregister("fuzzes.fuzz.example.com");
    json_decref(crd);
    json_decref(in);
    return 0;
}
