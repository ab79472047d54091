/* Unit tests for dpf-server/metrics.c: how requests are labelled (as
 * kube-apiserver labels them), that made-up paths cannot grow the label
 * sets, the series bound, and the exposition text. Counting over HTTPS,
 * authorization and a real Prometheus scrape are in
 * tests/system/test_api_metrics.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpf-server/metrics.h"

/* Labels as one string "verb dry_run group version resource sub scope". */
static char *
classify(const char *method, const char *path, const char *watch,
         const char *dry_run, const char *ctype)
{
    struct metrics_labels l;
    metrics_classify(method, path, watch, dry_run, ctype, &l);
    return xasprintf("%s|%s|%s|%s|%s|%s|%s", l.verb, l.dry_run, l.group,
                     l.version, l.resource, l.subresource, l.scope);
}

#define CHECK(want, method, path, watch, dry, ctype)            \
    do {                                                        \
        char *got_ = classify(method, path, watch, dry, ctype); \
        assert_string_equal(got_, want);                        \
        free(got_);                                             \
    } while (0)

static void
test_resource_verbs_and_scopes(void **state)
{
    (void) state;
    const char *cm = "/api/v1/namespaces/default/configmaps";
    CHECK("GET|||v1|configmaps||resource", "GET",
          "/api/v1/namespaces/default/configmaps/a", NULL, NULL, NULL);
    CHECK("LIST|||v1|configmaps||namespace", "GET", cm, NULL, NULL, NULL);
    CHECK("LIST|||v1|configmaps||cluster", "GET", "/api/v1/configmaps", NULL,
          NULL, NULL);
    CHECK("WATCH|||v1|configmaps||namespace", "GET", cm, "true", NULL, NULL);
    CHECK("WATCH|||v1|configmaps||namespace", "GET", cm, "1", NULL, NULL);
    CHECK("LIST|||v1|configmaps||namespace", "GET", cm, "false", NULL, NULL);
    CHECK("WATCH|||v1|configmaps||namespace", "GET",
          "/api/v1/watch/namespaces/default/configmaps", NULL, NULL, NULL);
    CHECK("POST|||v1|configmaps||namespace", "POST", cm, NULL, NULL, NULL);
    CHECK("POST|All||v1|configmaps||namespace", "POST", cm, NULL, "All", NULL);
    CHECK("PUT|||v1|configmaps||resource", "PUT",
          "/api/v1/namespaces/d/"
          "configmaps/a",
          NULL, NULL, NULL);
    CHECK("PATCH|||v1|configmaps||resource", "PATCH",
          "/api/v1/namespaces/d/configmaps/a", NULL, NULL,
          "application/merge-patch+json");
    CHECK("APPLY|||v1|configmaps||resource", "PATCH",
          "/api/v1/namespaces/d/configmaps/a", NULL, NULL,
          "application/apply-patch+yaml");
    CHECK("DELETE|||v1|configmaps||namespace", "DELETE", cm, NULL, NULL, NULL);
    CHECK("other|||v1|configmaps||namespace", "OPTIONS", cm, NULL, NULL, NULL);
    /* a GET is never dry-run */
    CHECK("GET|||v1|configmaps||resource", "GET",
          "/api/v1/namespaces/default/configmaps/a", NULL, "All", NULL);
    /* namespaces: the resource itself and its subresources */
    CHECK("GET|||v1|namespaces||resource", "GET", "/api/v1/namespaces/x", NULL,
          NULL, NULL);
    CHECK("PUT|||v1|namespaces|finalize|resource", "PUT",
          "/api/v1/namespaces/x/finalize", NULL, NULL, NULL);
    CHECK("GET|||v1|namespaces|status|resource", "GET",
          "/api/v1/namespaces/x/status", NULL, NULL, NULL);
    CHECK("LIST|||v1|namespaces||cluster", "GET", "/api/v1/namespaces", NULL,
          NULL, NULL);
    /* groups and subresources */
    CHECK("PUT||provisioning.dpu.nvidia.com|v1alpha1|dpus|status|resource",
          "PUT",
          "/apis/provisioning.dpu.nvidia.com/v1alpha1/namespaces/d/"
          "dpus/a/status",
          NULL, NULL, NULL);
    CHECK("GET||apps|v1|deployments|scale|resource", "GET",
          "/apis/apps/v1/namespaces/d/deployments/a/scale", NULL, NULL, NULL);
    CHECK("GET|||v1|pods|log|resource", "GET",
          "/api/v1/namespaces/d/pods/p/log", NULL, NULL, NULL);
    CHECK("CONNECT|||v1|pods|exec|resource", "POST",
          "/api/v1/namespaces/d/pods/p/exec", NULL, "All", NULL);
    CHECK("CONNECT|||v1|pods|proxy|resource", "GET",
          "/api/v1/namespaces/d/pods/p/proxy/a/b", NULL, NULL, NULL);
    CHECK("CONNECT|||v1|pods|proxy|resource", "GET",
          "/api/v1/namespaces/d/pods/p/proxy/a/b/c/d/e/f/g", NULL, NULL, NULL);
    CHECK("LIST||coordination.k8s.io|v1|leases||namespace", "GET",
          "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/", NULL,
          NULL, NULL);
}

static void
test_nonresource_and_unknown_paths(void **state)
{
    (void) state;
    CHECK("GET|||||/version|", "GET", "/version", NULL, NULL, NULL);
    CHECK("POST|All||||other|", "POST", "/", NULL, "All", NULL);
    struct metrics_labels l;
    const char *const known[][2] = {
        {"/healthz", "/healthz"},
        {"/healthz/ping", "/healthz"},
        {"/livez/", "/livez"},
        {"/metrics", "/metrics"},
        {"/version/", "/version"},
        {"/api", "/api"},
        {"/api/v1", "/api/*"},
        {"/apis", "/apis"},
        {"/apis/apps", "/apis/*"},
        {"/apis/apps/v1", "/apis/*"},
        {"/openapi/v2", "/openapi/v2"},
        {"/openapi/v3/apis/apps/v1", "/openapi/v3/*"},
        {"/openid/v1/jwks", "/openid/v1/jwks"},
        {"/", "other"},
        {"/secret-word", "other"},
        {"/metricsx", "other"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        metrics_classify("GET", known[i][0], NULL, NULL, NULL, &l);
        assert_string_equal(l.subresource, known[i][1]);
        assert_string_equal(l.resource, "");
        assert_string_equal(l.scope, "");
    }
    /* Made-up resources, groups, versions and subresources never become
     * label values. */
    const char *const unknown[] = {
        "/api/v1/namespaces/d/secret-word",
        "/api/v1/secret-word/x",
        "/api/v9/configmaps",
        "/apis/secret.example.com/v1/things",
        "/api/v1/watch",
        "/healthz/a/b/c/d/e/f/g/h/i/j/k",
    };
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        metrics_classify("GET", unknown[i], NULL, NULL, NULL, &l);
        assert_string_equal(l.subresource, "other");
        assert_string_equal(l.resource, "");
        assert_string_equal(l.group, "");
        assert_string_equal(l.version, "");
    }
    metrics_classify("GET", "/api/v1/namespaces/d/pods/p/secret-word", NULL,
                     NULL, NULL, &l);
    assert_string_equal(l.resource, "pods");
    assert_string_equal(l.subresource, "other");
    metrics_classify("GET", "/api/v1/namespaces/d/pods/p/log/a/b/c/d/e/f", NULL,
                     NULL, NULL, &l);
    assert_string_equal(l.resource, "pods");
    assert_string_equal(l.subresource, "other");
    metrics_classify(
        "GET", "/apis/apps/v1/namespaces/d/deployments/a/b/c/d/e/f/g/h/i/j",
        NULL, NULL, NULL, &l);
    assert_string_equal(l.resource, "deployments");
    assert_string_equal(l.subresource, "other");
    /* NULL inputs are fine */
    metrics_classify(NULL, NULL, NULL, NULL, NULL, &l);
    assert_string_equal(l.verb, "other");
}

static char *
render(struct metrics *m)
{
    struct dbuf b;
    dbuf_init(&b);
    metrics_render(m, &b, NULL, NULL);
    size_t len;
    return dbuf_steal(&b, &len);
}

static void
emit_two(void *arg, metrics_emit_fn emit, void *emit_arg)
{
    (void) arg;
    emit(emit_arg, "configmaps", 7);
    emit(emit_arg, "dpus.provisioning.dpu.nvidia.com", 0);
}

static void
test_exposition(void **state)
{
    (void) state;
    struct metrics *m = metrics_create();
    struct metrics_labels l;
    metrics_classify("GET", "/api/v1/namespaces/d/configmaps/a", NULL, NULL,
                     NULL, &l);
    metrics_count(m, &l, 200, 3000000);       /* 3 ms */
    metrics_count(m, &l, 200, 700000000);     /* 0.7 s */
    metrics_count(m, &l, 404, 90000000000LL); /* 90 s: above every bucket */
    metrics_inflight_add(m, true, 1);
    char *t = render(m);
    const char *want[] = {
        "# TYPE apiserver_request_total counter\n",
        "apiserver_request_total{code=\"200\",component=\"apiserver\","
        "dry_run=\"\",group=\"\",resource=\"configmaps\",scope=\"resource\","
        "subresource=\"\",verb=\"GET\",version=\"v1\"} 2\n",
        "apiserver_request_total{code=\"404\",component=\"apiserver\","
        "dry_run=\"\",group=\"\",resource=\"configmaps\",scope=\"resource\","
        "subresource=\"\",verb=\"GET\",version=\"v1\"} 1\n",
        "# TYPE apiserver_request_duration_seconds histogram\n",
        "scope=\"resource\",subresource=\"\",verb=\"GET\",version=\"v1\","
        "le=\"0.005\"} 1\n",
        "scope=\"resource\",subresource=\"\",verb=\"GET\",version=\"v1\","
        "le=\"0.6\"} 1\n",
        "scope=\"resource\",subresource=\"\",verb=\"GET\",version=\"v1\","
        "le=\"0.8\"} 2\n",
        "scope=\"resource\",subresource=\"\",verb=\"GET\",version=\"v1\","
        "le=\"60\"} 2\n",
        "scope=\"resource\",subresource=\"\",verb=\"GET\",version=\"v1\","
        "le=\"+Inf\"} 3\n",
        "subresource=\"\",verb=\"GET\",version=\"v1\"} 90.703000000\n",
        "apiserver_current_inflight_requests{request_kind=\"mutating\"} 1\n",
        "apiserver_current_inflight_requests{request_kind=\"readOnly\"} 0\n",
        "# TYPE process_cpu_seconds_total counter\n",
        "# TYPE process_start_time_seconds gauge\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (!strstr(t, want[i])) {
            fail_msg("missing %s in:\n%s", want[i], t);
        }
    }
    /* no storage series without a storage callback */
    assert_null(strstr(t, "apiserver_storage_objects"));
    free(t);

    struct dbuf b;
    dbuf_init(&b);
    metrics_render(m, &b, emit_two, NULL);
    size_t len;
    t = dbuf_steal(&b, &len);
    assert_non_null(
        strstr(t, "apiserver_storage_objects{resource=\"configmaps\"} 7\n"));
    assert_non_null(strstr(t, "apiserver_storage_objects{resource=\"dpus."
                              "provisioning.dpu.nvidia.com\"} 0\n"));
    free(t);
    metrics_destroy(m);
}

/* Label values a CRD could bring are escaped; more label sets than the
 * bound all count in one fixed series. */
static void
test_bound_and_escaping(void **state)
{
    (void) state;
    struct metrics *m = metrics_create();
    size_t n = METRICS_MAX_SERIES + 100;
    char **names = calloc(n, sizeof(*names));
    for (size_t i = 0; i < n; i++) {
        names[i] = xasprintf("res%zu", i);
        struct metrics_labels l = {.verb = "GET",
                                   .dry_run = "",
                                   .group = "g\"\\\n",
                                   .version = "v1",
                                   .resource = names[i],
                                   .subresource = "",
                                   .scope = "cluster"};
        metrics_count(m, &l, 200, 1000);
    }
    char *t = render(m);
    assert_non_null(strstr(t, "group=\"g\\\"\\\\\\n\""));
    assert_non_null(strstr(t, "resource=\"res0\""));
    assert_null(strstr(t, "resource=\"res2100\""));
    assert_non_null(strstr(
        t, "apiserver_request_total{code=\"200\",component=\"apiserver\","
           "dry_run=\"\",group=\"\",resource=\"\",scope=\"\","
           "subresource=\"other\",verb=\"other\",version=\"\"} 100\n"));
    free(t);
    metrics_destroy(m);
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resource_verbs_and_scopes),
        cmocka_unit_test(test_nonresource_and_unknown_paths),
        cmocka_unit_test(test_exposition),
        cmocka_unit_test(test_bound_and_escaping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
