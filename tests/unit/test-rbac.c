/* Unit tests for dpf-server/rbac.c: request attributes as kube-apiserver
 * resolves them, rule matching, the subject index fed by store events,
 * the escalation check (Covers) and the default policy. The enforcement
 * over HTTPS is tests/system/test_api_rbac.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "dpf-server/rbac.h"

static void
test_attrs(void **state)
{
    (void) state;
    struct authz_attrs a;
    authz_attrs_from_request(&a, "GET", "/api/v1/namespaces/ns1/pods", false,
                             NULL);
    assert_true(a.resource_request);
    assert_string_equal(a.verb, "list");
    assert_string_equal(a.ns, "ns1");
    assert_string_equal(a.resource, "pods");
    assert_string_equal(a.name, "");
    authz_attrs_free(&a);

    authz_attrs_from_request(&a, "GET", "/api/v1/namespaces/ns1/pods", true,
                             "metadata.name=p1");
    assert_string_equal(a.verb, "watch");
    assert_string_equal(a.name, "p1");
    assert_string_equal(a.ns, "ns1");
    assert_string_equal(a.resource, "pods");
    authz_attrs_free(&a);

    authz_attrs_from_request(
        &a, "PATCH", "/api/v1/namespaces/ns1/pods/p1/status", false, NULL);
    assert_string_equal(a.verb, "patch");
    assert_string_equal(a.subresource, "status");
    assert_string_equal(a.name, "p1");
    authz_attrs_free(&a);

    /* a namespace itself, and its status */
    authz_attrs_from_request(&a, "PUT", "/api/v1/namespaces/ns1/finalize",
                             false, NULL);
    assert_string_equal(a.resource, "namespaces");
    assert_string_equal(a.name, "ns1");
    assert_string_equal(a.subresource, "finalize");
    authz_attrs_free(&a);

    authz_attrs_from_request(&a, "DELETE",
                             "/apis/rbac.authorization.k8s.io/v1/"
                             "clusterroles",
                             false, NULL);
    assert_string_equal(a.verb, "deletecollection");
    assert_string_equal(a.group, "rbac.authorization.k8s.io");
    assert_string_equal(a.ns, "");
    authz_attrs_free(&a);

    authz_attrs_from_request(&a, "GET", "/apis/apps/v1", false, NULL);
    assert_false(a.resource_request);
    assert_string_equal(a.verb, "get");
    assert_string_equal(a.path, "/apis/apps/v1");
    authz_attrs_free(&a);
}

static json_t *
j(const char *text)
{
    json_t *v = json_loads(text, 0, NULL);
    assert_non_null(v);
    return v;
}

static void
test_rule_matching(void **state)
{
    (void) state;
    struct authz_attrs a;
    json_t *r = j("{\"verbs\":[\"get\"],\"apiGroups\":[\"\"],"
                  "\"resources\":[\"pods\",\"*/status\"],"
                  "\"resourceNames\":[\"p1\"]}");
    authz_attrs_set(&a, "get", "", "pods", NULL, "ns", "p1");
    assert_true(rbac_rule_allows(r, &a));
    authz_attrs_set(&a, "get", "", "pods", NULL, "ns", "p2");
    assert_false(rbac_rule_allows(r, &a));
    authz_attrs_set(&a, "get", "", "pods", NULL, "ns", "");
    assert_false(rbac_rule_allows(r, &a)); /* names need a name */
    authz_attrs_set(&a, "get", "", "nodes", "status", "", "p1");
    assert_true(rbac_rule_allows(r, &a)); /* * /status */
    authz_attrs_set(&a, "get", "", "pods", "log", "ns", "p1");
    assert_false(rbac_rule_allows(r, &a)); /* pods is not pods/log */
    authz_attrs_set(&a, "list", "", "pods", NULL, "ns", "p1");
    assert_false(rbac_rule_allows(r, &a));
    authz_attrs_set(&a, "get", "apps", "pods", NULL, "ns", "p1");
    assert_false(rbac_rule_allows(r, &a));
    json_decref(r);

    r = j("{\"verbs\":[\"get\"],\"nonResourceURLs\":[\"/api/*\","
          "\"/healthz\"]}");
    authz_attrs_set_path(&a, "get", "/api/v1");
    assert_true(rbac_rule_allows(r, &a));
    authz_attrs_set_path(&a, "get", "/healthz/ping");
    assert_false(rbac_rule_allows(r, &a));
    authz_attrs_set_path(&a, "post", "/healthz");
    assert_false(rbac_rule_allows(r, &a));
    json_decref(r);
}

static void
test_covers(void **state)
{
    (void) state;
    json_t *owner = j("[{\"verbs\":[\"get\",\"list\"],\"apiGroups\":[\"\"],"
                      "\"resources\":[\"pods\",\"*/status\"]},"
                      "{\"verbs\":[\"*\"],\"apiGroups\":[\"apps\"],"
                      "\"resources\":[\"deployments\"],"
                      "\"resourceNames\":[\"d1\"]}]");
    json_t *missing = NULL;
    json_t *ok = j("[{\"verbs\":[\"get\"],\"apiGroups\":[\"\"],"
                   "\"resources\":[\"pods\",\"pods/status\"]},"
                   "{\"verbs\":[\"delete\"],\"apiGroups\":[\"apps\"],"
                   "\"resources\":[\"deployments\"],"
                   "\"resourceNames\":[\"d1\"]}]");
    assert_true(rbac_rules_cover(owner, ok, &missing));
    assert_null(missing);
    json_t *bad = j("[{\"verbs\":[\"get\",\"delete\"],\"apiGroups\":[\"\"],"
                    "\"resources\":[\"pods\"]},"
                    "{\"verbs\":[\"delete\"],\"apiGroups\":[\"apps\"],"
                    "\"resources\":[\"deployments\"]}]");
    assert_false(rbac_rules_cover(owner, bad, &missing));
    assert_int_equal(json_array_size(missing), 2);
    json_t *want = j("[{\"verbs\":[\"delete\"],\"apiGroups\":[\"\"],"
                     "\"resources\":[\"pods\"]},{\"verbs\":[\"delete\"],"
                     "\"apiGroups\":[\"apps\"],\"resources\":"
                     "[\"deployments\"]}]");
    assert_true(json_equal(missing, want));
    json_decref(want);
    json_decref(missing);
    json_decref(bad);
    json_decref(ok);
    json_decref(owner);
}

static void
event(struct rbac *r, enum store_event_type t, const char *key,
      const char *value)
{
    rbac_store_event(r, t, key, value, value ? strlen(value) : 0);
}

static void
test_index(void **state)
{
    (void) state;
    struct rbac *r = rbac_create();
    event(r, STORE_EVENT_ADDED, "/rbac.authorization.k8s.io/roles/ns1/read",
          "{\"metadata\":{\"name\":\"read\",\"namespace\":\"ns1\"},"
          "\"rules\":[{\"verbs\":[\"get\"],\"apiGroups\":[\"\"],"
          "\"resources\":[\"pods\"]}]}");
    const char *rb = "/rbac.authorization.k8s.io/rolebindings/ns1/b";
    event(r, STORE_EVENT_ADDED, rb,
          "{\"metadata\":{\"name\":\"b\",\"namespace\":\"ns1\"},"
          "\"roleRef\":{\"kind\":\"Role\",\"name\":\"read\"},"
          "\"subjects\":[{\"kind\":\"Group\",\"name\":\"team\"},"
          "{\"kind\":\"ServiceAccount\",\"name\":\"default\"}]}");
    struct authn_user u;
    authn_user_init(&u, "alice");
    authn_user_add_group(&u, "team");
    struct authz_attrs a;
    authz_attrs_set(&a, "get", "", "pods", NULL, "ns1", "p");
    assert_true(rbac_allows(r, &u, &a));
    authz_attrs_set(&a, "get", "", "pods", NULL, "ns2", "p");
    assert_false(rbac_allows(r, &u, &a));
    struct authn_user sa;
    authn_user_init(&sa, "system:serviceaccount:ns1:default");
    authz_attrs_set(&a, "get", "", "pods", NULL, "ns1", "p");
    assert_true(rbac_allows(r, &sa, &a));

    /* the binding changes its subjects: the index follows */
    event(r, STORE_EVENT_MODIFIED, rb,
          "{\"metadata\":{\"name\":\"b\",\"namespace\":\"ns1\"},"
          "\"roleRef\":{\"kind\":\"Role\",\"name\":\"read\"},"
          "\"subjects\":[{\"kind\":\"User\",\"name\":\"bob\"}]}");
    assert_false(rbac_allows(r, &u, &a));
    assert_false(rbac_allows(r, &sa, &a));
    struct authn_user bob;
    authn_user_init(&bob, "bob");
    assert_true(rbac_allows(r, &bob, &a));
    json_t *rules = rbac_user_rules(r, &bob, "ns1");
    assert_int_equal(json_array_size(rules), 1);
    json_decref(rules);
    event(r, STORE_EVENT_DELETED, rb, NULL);
    assert_false(rbac_allows(r, &bob, &a));
    rbac_destroy(r);
}

static void
test_bootstrap(void **state)
{
    (void) state;
    json_t *objs = rbac_bootstrap_objects();
    assert_non_null(objs);
    bool masters = false;
    size_t i;
    json_t *o;
    json_array_foreach(objs, i, o)
    {
        assert_string_equal(json_string_value(json_object_get(o, "apiVersion")),
                            "rbac.authorization.k8s.io/v1");
        const char *name = json_string_value(
            json_object_get(json_object_get(o, "metadata"), "name"));
        if (!strcmp(json_string_value(json_object_get(o, "kind")),
                    "ClusterRoleBinding") &&
            !strcmp(name, "cluster-admin")) {
            json_t *s = json_array_get(json_object_get(o, "subjects"), 0);
            masters = !strcmp(json_string_value(json_object_get(s, "name")),
                              "system:masters");
        }
    }
    assert_true(masters);
    json_decref(objs);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attrs),     cmocka_unit_test(test_rule_matching),
        cmocka_unit_test(test_covers),    cmocka_unit_test(test_index),
        cmocka_unit_test(test_bootstrap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
