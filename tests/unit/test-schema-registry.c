/* Unit tests for the schema's group registry: a scratch group, declared
 * here and registered before first use, is looked up, pruned, defaulted,
 * validated, delete-checked and exported by the engine with no change to
 * the engine — its hooks and flags are all the engine learns of it.
 * (A separate program: groups can join only before the registry is
 * built, and test-schema builds it at once.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api/schema-node.h"
#include "api/schema.h"
#include "lib/base/util.h"

#define SCRATCH "scratch.example.org"

/* The kinds' rules: size must be even. */
static int
widget_validate(const json_t *obj, const json_t *old, struct dpf_error *err)
{
    (void) old;
    const json_t *size = schema_get(obj, "spec.size");
    if (json_integer_value(size) % 2) {
        schema_err_invalid(err, "spec.size", size, "must be even");
        return -EINVAL;
    }
    return 0;
}

/* Defaulting beyond the field tree: spec.owner from the name. */
static void
widget_defaults(json_t *obj)
{
    json_t *spec = schema_ensure_obj(obj, "spec");
    const char *name = schema_get_str(obj, "metadata.name");
    if (name && !json_object_get(spec, "owner")) {
        json_object_set_new(spec, "owner", json_string(name));
    }
}

static int g_delete_calls;

/* Delete rule: not while labelled locked=true. */
static int
widget_validate_delete(const json_t *obj, const struct schema_reader *reader,
                       struct dpf_error *err)
{
    (void) reader;
    g_delete_calls++;
    const char *locked = schema_get_str(obj, "metadata.labels.locked");
    if (locked && !strcmp(locked, "true")) {
        dpf_error_set(err, 403, "Forbidden", "widget \"%s\" is locked",
                      schema_get_str(obj, "metadata.name"));
        return -EPERM;
    }
    return 0;
}

static const struct schema_column widget_columns[] = {
    {"Size", "integer", ".spec.size", NULL, 0, NULL},
    {NULL, NULL, NULL, NULL, 0, NULL},
};

#define WIDGET_ROOT                                                         \
    KIND_ROOT(R("spec", N_OBJ(FIELDS(R("size", N_INT(MINIMUM(0))),          \
                                     F("mode", N_STR(ENUM("fast", "safe"),  \
                                                     DEFAULT("\"safe\""))), \
                                     F("owner", N_STR())))))

static const struct schema_kind widget_v1 = {
    .group = SCRATCH,
    .version = "v1",
    KIND_NAMES("Widget", "widgets", "widget"),
    .short_names = (const char *const[]){"wg", NULL},
    .namespaced = true,
    .columns = widget_columns,
    .root = WIDGET_ROOT,
    .validate = widget_validate,
    .set_defaults = widget_defaults,
    .validate_delete = widget_validate_delete,
    .name_is_label = true,
};

static const struct schema_kind widget_v2 = {
    .group = SCRATCH,
    .version = "v2",
    KIND_NAMES("Widget", "widgets", "widget"),
    .namespaced = true,
    .root = WIDGET_ROOT,
};

static const struct schema_group scratch_group = {
    .name = SCRATCH,
    .preferred_version = "v2",
    .versions =
        (const struct schema_group_version[]){
            {"v1", (const struct schema_kind *const[]){&widget_v1, NULL}},
            {"v2", (const struct schema_kind *const[]){&widget_v2, NULL}},
            {NULL, NULL},
        },
};

/* A kind whose declaration names another group than the one it is listed
 * under: the registry leaves it out and says so. */
static const struct schema_kind stray = {
    .group = "elsewhere.example.org",
    .version = "v1",
    KIND_NAMES("Stray", "strays", "stray"),
    .root = KIND_ROOT(F("spec", N_OBJ(PRESERVE))),
};

SCHEMA_GROUP_1(stray_group, "stray.example.org", "v1", &stray);

static json_t *
load(const char *text)
{
    json_error_t jerr;
    json_t *o = json_loads(text, 0, &jerr);
    if (!o) {
        fail_msg("bad test JSON: %s: %s", jerr.text, text);
    }
    return o;
}

static void
test_lookup(void **state)
{
    (void) state;
    size_t n;
    const struct schema_group *const *groups = schema_groups(&n);
    assert_true(n >= 2);
    assert_ptr_equal(groups[n - 2], &scratch_group);
    assert_ptr_equal(groups[n - 1], &stray_group);
    assert_ptr_equal(schema_find_resource(SCRATCH, "v1", "widgets"),
                     &widget_v1);
    assert_ptr_equal(schema_find_resource(SCRATCH, "v2", "widgets"),
                     &widget_v2);
    assert_ptr_equal(schema_find_kind(SCRATCH "/v2", "Widget"), &widget_v2);
    assert_ptr_equal(schema_find_name("wg"), &widget_v1);
    assert_ptr_equal(schema_find_name("widgets.scratch"), &widget_v1);
    assert_string_equal(schema_api_version(&widget_v2), SCRATCH "/v2");
    assert_ptr_equal(schema_kind_group(&widget_v1), &scratch_group);
    /* listed under the wrong group: not served */
    assert_null(schema_find_name("strays"));
    assert_null(schema_kind_group(&stray));
    size_t nk;
    const struct schema_kind *const *all = schema_kinds(&nk);
    for (size_t i = 0; i < nk; i++) {
        assert_ptr_not_equal(all[i], &stray);
    }
    /* the built-in groups are still there, before the registered ones */
    assert_string_equal(schema_find_name("pods")->kind, "Pod");
    assert_int_equal(schema_register_group(&scratch_group), -EBUSY);
}

static void
test_pipeline(void **state)
{
    (void) state;
    struct dpf_error err;
    json_t *obj = load("{\"apiVersion\":\"" SCRATCH "/v1\",\"kind\":\"Widget\","
                       "\"metadata\":{\"name\":\"w1\",\"namespace\":\"ns\"},"
                       "\"spec\":{\"size\":3,\"colour\":\"red\"}}");
    assert_int_equal(
        schema_prune(&widget_v1, obj, SCHEMA_UNKNOWN_STRICT, NULL, &err),
        -EINVAL);
    assert_string_equal(err.message,
                        "strict decoding error: unknown field \"spec.colour\"");
    assert_int_equal(
        schema_prune(&widget_v1, obj, SCHEMA_UNKNOWN_PRUNE, NULL, &err), 0);
    assert_null(schema_get(obj, "spec.colour"));

    schema_default(&widget_v1, obj);
    assert_string_equal(schema_get_str(obj, "spec.mode"), "safe");
    assert_string_equal(schema_get_str(obj, "spec.owner"), "w1");

    /* the kind's rule, with the engine's message */
    assert_int_equal(schema_validate(&widget_v1, obj, NULL, &err), -EINVAL);
    assert_int_equal(err.code, 422);
    assert_string_equal(err.message,
                        "Widget." SCRATCH " \"w1\" is invalid: spec.size: "
                        "Invalid value: 3: must be even");
    json_object_set_new(json_object_get(obj, "spec"), "size", json_integer(4));
    assert_int_equal(schema_validate(&widget_v1, obj, NULL, &err), 0);
    /* the field tree */
    json_object_set_new(json_object_get(obj, "spec"), "mode",
                        json_string("slow"));
    assert_int_equal(schema_validate(&widget_v1, obj, NULL, &err), -EINVAL);
    assert_string_equal(err.causes[0].field, "spec.mode");
    json_object_set_new(json_object_get(obj, "spec"), "mode",
                        json_string("fast"));
    /* name_is_label: a dot is not allowed in the name */
    assert_int_equal(schema_validate_name(&widget_v1, "a.b", &err), -EINVAL);
    assert_int_equal(schema_validate_name(&widget_v1, "a-b", &err), 0);

    /* the delete hook */
    g_delete_calls = 0;
    assert_int_equal(schema_validate_delete(&widget_v1, obj, NULL, &err), 0);
    json_object_set_new(schema_ensure_obj(obj, "metadata.labels"), "locked",
                        json_string("true"));
    assert_int_equal(schema_validate_delete(&widget_v1, obj, NULL, &err),
                     -EPERM);
    assert_int_equal(err.code, 403);
    assert_string_equal(err.message, "widget \"w1\" is locked");
    assert_int_equal(g_delete_calls, 2);
    /* v2 declares no delete hook */
    assert_int_equal(schema_validate_delete(&widget_v2, obj, NULL, &err), 0);
    assert_int_equal(g_delete_calls, 2);

    char *col = schema_column_value(&widget_v1.columns[0], obj);
    assert_string_equal(col, "4");
    free(col);
    json_decref(obj);
}

static void
test_export(void **state)
{
    (void) state;
    json_t *crd = schema_crd(&widget_v1);
    assert_non_null(crd);
    assert_string_equal(schema_get_str(crd, "metadata.name"),
                        "widgets." SCRATCH);
    assert_string_equal(schema_get_str(crd, "spec.group"), SCRATCH);
    assert_string_equal(schema_get_str(crd, "spec.names.listKind"),
                        "WidgetList");
    json_t *v = json_array_get(schema_get(crd, "spec.versions"), 0);
    assert_string_equal(
        json_string_value(json_object_get(
            schema_get(v, "schema.openAPIV3Schema.properties.spec.properties."
                          "mode"),
            "default")),
        "safe");
    json_decref(crd);
    /* a built-in kind is never a CRD */
    assert_null(schema_crd(schema_find_name("pods")));
}

int
main(void)
{
    /* before anything builds the registry */
    if (schema_register_group(&scratch_group) != 0 ||
        schema_register_group(&scratch_group) != -EEXIST ||
        schema_register_group(&schema_group_core) != -EEXIST ||
        schema_register_group(&stray_group) != 0) {
        fprintf(stderr, "test-schema-registry: registration failed\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_export),
    };
    return cmocka_run_group_tests_name("schema registry", tests, NULL, NULL);
}
