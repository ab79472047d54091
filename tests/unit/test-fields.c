/* Unit tests for field ownership and server-side apply
 * (api/schema-fields.c): fieldsV1 sets from the list types, Update
 * ownership moving between managers, apply merges, removal of dropped
 * fields, conflicts with kube-apiserver's message, force. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/schema.h"

static json_t *
J(const char *s)
{
    json_error_t e;
    json_t *v = json_loads(s, 0, &e);
    if (!v) {
        fail_msg("bad test JSON %s: %s", s, e.text);
    }
    return v;
}

static void
expect(const json_t *got, const char *want_s)
{
    json_t *want = J(want_s);
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT);
        fail_msg("got %s\nwant %s", g, want_s);
    }
    json_decref(want);
}

static const struct schema_kind *
kind(const char *av, const char *k)
{
    const struct schema_kind *sk = schema_find_kind(av, k);
    assert_non_null(sk);
    return sk;
}

static const struct schema_field_manager alice = {"alice", NULL,
                                                  "2026-01-01T00:00:00Z"};
static const struct schema_field_manager bob = {"bob", NULL,
                                                "2026-01-02T00:00:00Z"};

/* The entry of manager/op's fieldsV1 in obj, or NULL. */
static const json_t *
fields_of(const json_t *obj, const char *manager, const char *op)
{
    const json_t *mf =
        json_object_get(json_object_get(obj, "metadata"), "managedFields");
    size_t i;
    json_t *m;
    json_array_foreach(mf, i, m)
    {
        if (!strcmp(json_string_value(json_object_get(m, "manager")),
                    manager) &&
            !strcmp(json_string_value(json_object_get(m, "operation")), op)) {
            return json_object_get(m, "fieldsV1");
        }
    }
    return NULL;
}

static void
test_sets_follow_list_types(void **state)
{
    (void) state;
    json_t *pod = J("{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{"
                    "\"name\":\"p\",\"labels\":{\"a\":\"b\"},\"finalizers\":"
                    "[\"x\"]},\"spec\":{\"containers\":[{\"name\":\"c\","
                    "\"image\":\"i\",\"args\":[\"1\"],\"ports\":[{"
                    "\"containerPort\":80}]}],\"tolerations\":[{\"key\":"
                    "\"k\"}]}}");
    json_t *s = schema_fields_set(kind("v1", "Pod"), pod);
    expect(s, "{\"f:metadata\":{\"f:labels\":{\"f:a\":{}},\"f:finalizers\":"
              "{\"v:\\\"x\\\"\":{}}},\"f:spec\":{\"f:containers\":{\"k:{"
              "\\\"name\\\":\\\"c\\\"}\":{\".\":{},\"f:name\":{},"
              "\"f:image\":{},\"f:args\":{},\"f:ports\":{\"k:{"
              "\\\"containerPort\\\":80,\\\"protocol\\\":\\\"TCP\\\"}\":{"
              "\".\":{},\"f:containerPort\":{}}}}},\"f:tolerations\":{}}}");
    json_decref(s);
    json_decref(pod);
}

static void
test_update_moves_ownership(void **state)
{
    (void) state;
    const struct schema_kind *k = kind("v1", "ConfigMap");
    json_t *obj = J("{\"metadata\":{\"name\":\"c\"},\"data\":{\"a\":\"1\"}}");
    schema_fields_update(k, NULL, obj, &alice);
    expect(fields_of(obj, "alice", "Update"),
           "{\"f:data\":{\".\":{},\"f:a\":{}}}");
    json_t *next = json_deep_copy(obj);
    json_object_set_new(json_object_get(next, "data"), "a", json_string("2"));
    json_object_set_new(json_object_get(next, "data"), "b", json_string("3"));
    schema_fields_update(k, obj, next, &bob);
    /* fieldsV1 writes a path alone as {} */
    expect(fields_of(next, "alice", "Update"), "{\"f:data\":{}}");
    expect(fields_of(next, "bob", "Update"),
           "{\"f:data\":{\"f:a\":{},\"f:b\":{}}}");
    /* nothing changed: ownership stays as it was */
    json_t *same = json_deep_copy(next);
    schema_fields_update(k, next, same, &alice);
    assert_true(json_equal(same, next));
    json_decref(same);
    json_decref(obj);
    json_decref(next);
}

static void
test_apply_merges_removes_and_conflicts(void **state)
{
    (void) state;
    const struct schema_kind *k = kind("v1", "ConfigMap");
    json_t *cfg = J("{\"metadata\":{\"name\":\"c\"},\"data\":{\"a\":\"1\","
                    "\"b\":\"1\"}}");
    json_t *live = NULL;
    struct dpf_error err = {0};
    assert_int_equal(
        schema_fields_apply(k, NULL, cfg, &alice, false, &live, &err), 0);
    expect(fields_of(live, "alice", "Apply"),
           "{\"f:data\":{\"f:a\":{},\"f:b\":{}}}");
    json_t *cfg2 = J("{\"data\":{\"a\":\"2\"}}");
    json_t *out = NULL;
    assert_int_equal(
        schema_fields_apply(k, live, cfg2, &bob, false, &out, &err), -EBUSY);
    assert_int_equal(err.code, 409);
    assert_string_equal(err.message, "Apply failed with 1 conflict: conflict "
                                     "with \"alice\": .data.a");
    assert_null(out);
    memset(&err, 0, sizeof(err));
    assert_int_equal(schema_fields_apply(k, live, cfg2, &bob, true, &out, &err),
                     0);
    expect(json_object_get(out, "data"), "{\"a\":\"2\",\"b\":\"1\"}");
    expect(fields_of(out, "alice", "Apply"), "{\"f:data\":{\"f:b\":{}}}");
    /* alice applies nothing more: b, which nobody else owns, goes */
    json_t *cfg3 = J("{\"metadata\":{\"name\":\"c\"}}");
    json_t *out2 = NULL;
    assert_int_equal(
        schema_fields_apply(k, out, cfg3, &alice, false, &out2, &err), 0);
    expect(json_object_get(out2, "data"), "{\"a\":\"2\"}");
    assert_null(fields_of(out2, "alice", "Apply"));
    json_decref(out2);
    json_decref(cfg3);
    json_decref(out);
    json_decref(cfg2);
    json_decref(cfg);
    json_decref(live);
}

static void
test_apply_keyed_lists(void **state)
{
    (void) state;
    const struct schema_kind *k = kind("v1", "Pod");
    json_t *live = J("{\"metadata\":{\"name\":\"p\"},\"spec\":{"
                     "\"containers\":[{\"name\":\"a\",\"image\":\"1\"},"
                     "{\"name\":\"b\",\"image\":\"1\"}]}}");
    json_t *cfg = J("{\"spec\":{\"containers\":[{\"name\":\"b\",\"image\":"
                    "\"2\"},{\"name\":\"c\",\"image\":\"1\"}]}}");
    json_t *out = NULL;
    struct dpf_error err = {0};
    assert_int_equal(
        schema_fields_apply(k, live, cfg, &alice, false, &out, &err), 0);
    expect(json_object_get(json_object_get(out, "spec"), "containers"),
           "[{\"name\":\"a\",\"image\":\"1\"},{\"name\":\"b\",\"image\":"
           "\"2\"},{\"name\":\"c\",\"image\":\"1\"}]");
    json_decref(out);
    json_decref(cfg);
    json_decref(live);
}

/* A container the manager owned as a whole stays while fields below it
 * are still applied (kubectl's migrated entries own "data" itself). */
static void
test_apply_keeps_container_of_applied_fields(void **state)
{
    (void) state;
    const struct schema_kind *k = kind("v1", "ConfigMap");
    json_t *live = J("{\"metadata\":{\"name\":\"c\",\"managedFields\":[{"
                     "\"manager\":\"alice\",\"operation\":\"Apply\","
                     "\"fieldsV1\":{\"f:data\":{\".\":{},\"f:a\":{},"
                     "\"f:b\":{}}}}]},\"data\":{\"a\":\"1\",\"b\":\"2\"}}");
    json_t *cfg = J("{\"data\":{\"a\":\"1\"}}");
    json_t *out = NULL;
    struct dpf_error err = {0};
    assert_int_equal(
        schema_fields_apply(k, live, cfg, &alice, false, &out, &err), 0);
    expect(json_object_get(out, "data"), "{\"a\":\"1\"}");
    json_decref(out);
    json_decref(cfg);
    json_decref(live);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sets_follow_list_types),
        cmocka_unit_test(test_update_moves_ownership),
        cmocka_unit_test(test_apply_merges_removes_and_conflicts),
        cmocka_unit_test(test_apply_keyed_lists),
        cmocka_unit_test(test_apply_keeps_container_of_applied_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
