/* Unit tests for controllers/allocator: DPF's policy (the first
 * DPUCluster by name) and ours on top (skip a cluster that is not Ready
 * or full), maxNodes counting, release, the rebuild from lists, and the
 * messages a DPU shows when nothing fits. No API: the allocator is built
 * without a REST client. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controllers/allocator.h"

static json_t *
cluster(const char *ns, const char *name, const char *phase, int max)
{
    json_t *c =
        json_pack("{s:{s:s, s:s}, s:{}, s:{s:s}}", "metadata", "namespace", ns,
                  "name", name, "spec", "status", "phase", phase);
    if (max > 0) {
        json_object_set_new(json_object_get(c, "spec"), "maxNodes",
                            json_integer(max));
    }
    return c;
}

static json_t *
dpu(const char *uid, const char *cl_ns, const char *cl_name)
{
    json_t *d =
        json_pack("{s:{s:s, s:s, s:s}, s:{}}", "metadata", "namespace",
                  "dpf-operator-system", "name", uid, "uid", uid, "spec");
    if (cl_name) {
        json_object_set_new(
            json_object_get(d, "spec"), "cluster",
            json_pack("{s:s, s:s}", "name", cl_name, "namespace", cl_ns));
    }
    return d;
}

/* Pick for a new DPU uid; returns "ns/name" (static buffer) or the error
 * message prefixed with "ERR ". */
static const char *
pick(struct allocator *a, const char *uid)
{
    static char out[1200];
    json_t *d = dpu(uid, NULL, NULL);
    char *ns = NULL, *name = NULL;
    struct dpf_error err = {0};
    int rc = allocator_pick(a, d, &ns, &name, &err);
    if (rc == 0) {
        snprintf(out, sizeof out, "%s/%s", ns, name);
    } else {
        assert_int_equal(rc, -EAGAIN);
        snprintf(out, sizeof out, "ERR %s", err.message);
    }
    free(ns);
    free(name);
    json_decref(d);
    return out;
}

static void
test_first_ready_by_name(void **state)
{
    struct allocator *a = allocator_create(NULL);
    json_t *b = cluster("x", "b-cluster", "Ready", 0);
    json_t *c = cluster("a", "c-cluster", "Ready", 0);
    allocator_cluster_set(a, c);
    allocator_cluster_set(a, b);
    /* By name, not by namespace or insertion order. */
    assert_string_equal(pick(a, "u1"), "x/b-cluster");
    assert_string_equal(pick(a, "u2"), "x/b-cluster");
    assert_int_equal(allocator_count(a, "x", "b-cluster"), 2);
    /* The same DPU asked again keeps its cluster (no double count). */
    assert_string_equal(pick(a, "u1"), "x/b-cluster");
    assert_int_equal(allocator_count(a, "x", "b-cluster"), 2);
    json_decref(b);
    json_decref(c);
    allocator_destroy(a);
}

static void
test_not_ready_skipped(void **state)
{
    struct allocator *a = allocator_create(NULL);
    json_t *c1 = cluster("ns", "a", "NotReady", 0);
    json_t *c2 = cluster("ns", "b", "Creating", 0);
    allocator_cluster_set(a, c1);
    allocator_cluster_set(a, c2);
    const char *r = pick(a, "u1");
    assert_non_null(strstr(r, "ERR no DPUCluster is Ready"));
    assert_non_null(strstr(r, "ns/a is NotReady"));
    assert_non_null(strstr(r, "ns/b is Creating"));
    /* DPF would fail on "a"; we take the next Ready one. */
    json_t *c3 = cluster("ns", "c", "Ready", 0);
    allocator_cluster_set(a, c3);
    assert_string_equal(pick(a, "u1"), "ns/c");
    /* a becomes Ready: new DPUs go there, old ones stay. */
    json_t *c1r = cluster("ns", "a", "Ready", 0);
    allocator_cluster_set(a, c1r);
    assert_string_equal(pick(a, "u2"), "ns/a");
    assert_string_equal(pick(a, "u1"), "ns/c");
    json_decref(c1);
    json_decref(c1r);
    json_decref(c2);
    json_decref(c3);
    allocator_destroy(a);
}

static void
test_max_nodes(void **state)
{
    struct allocator *a = allocator_create(NULL);
    json_t *c1 = cluster("ns", "a", "Ready", 2);
    json_t *c2 = cluster("ns", "b", "Ready", 1);
    allocator_cluster_set(a, c1);
    allocator_cluster_set(a, c2);
    assert_string_equal(pick(a, "u1"), "ns/a");
    assert_string_equal(pick(a, "u2"), "ns/a");
    assert_string_equal(pick(a, "u3"), "ns/b"); /* a is full */
    const char *r = pick(a, "u4");
    assert_non_null(strstr(r, "ERR every Ready DPUCluster is full"));
    assert_non_null(strstr(r, "ns/a has 2 of 2 nodes"));
    assert_non_null(strstr(r, "ns/b has 1 of 1 nodes"));
    /* A deleted DPU frees its place. */
    allocator_release(a, "u1");
    assert_int_equal(allocator_count(a, "ns", "a"), 1);
    assert_string_equal(pick(a, "u4"), "ns/a");
    json_decref(c1);
    json_decref(c2);
    allocator_destroy(a);
}

static void
test_default_max_and_deleting(void **state)
{
    struct allocator *a = allocator_create(NULL);
    /* No spec.maxNodes: DPF's default 1000. */
    json_t *c = cluster("ns", "a", "Ready", 0);
    allocator_cluster_set(a, c);
    char uid[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(uid, sizeof uid, "u%d", i);
        assert_string_equal(pick(a, uid), "ns/a");
    }
    assert_non_null(strstr(pick(a, "one-more"), "has 1000 of 1000 nodes"));
    /* A cluster being deleted takes nobody. */
    json_t *b = cluster("ns", "b", "Ready", 0);
    json_object_set_new(json_object_get(b, "metadata"), "deletionTimestamp",
                        json_string("2026-01-01T00:00:00Z"));
    allocator_cluster_set(a, b);
    assert_non_null(strstr(pick(a, "one-more"), "ns/b is Deleting"));
    allocator_cluster_remove(a, "ns", "b");
    assert_null(strstr(pick(a, "one-more"), "ns/b"));
    json_decref(b);
    json_decref(c);
    allocator_destroy(a);
}

static void
test_rebuild_from_lists(void **state)
{
    /* What a restarted controller lists from the API: the assignments are
     * the DPUs' spec.cluster, and they count against maxNodes. */
    struct allocator *a = allocator_create(NULL);
    json_t *clusters = json_array();
    json_array_append_new(clusters, cluster("ns", "a", "Ready", 2));
    json_array_append_new(clusters, cluster("ns", "b", "Ready", 5));
    json_t *dpus = json_array();
    json_array_append_new(dpus, dpu("d1", "ns", "a"));
    json_array_append_new(dpus, dpu("d2", "ns", "a"));
    json_array_append_new(dpus, dpu("d3", NULL, NULL)); /* unassigned */
    allocator_load(a, clusters, dpus);
    assert_int_equal(allocator_count(a, "ns", "a"), 2);
    assert_string_equal(pick(a, "d3"), "ns/b");
    /* d1 keeps a (asked again, it is not re-assigned). */
    assert_string_equal(pick(a, "d1"), "ns/a");
    /* allocator_save records a DPU created with its cluster set. */
    json_t *d9 = dpu("d9", "ns", "b");
    allocator_save(a, d9);
    assert_int_equal(allocator_count(a, "ns", "b"), 2);
    /* A second load replaces the state (nothing doubled). */
    allocator_load(a, clusters, dpus);
    assert_int_equal(allocator_count(a, "ns", "a"), 2);
    assert_int_equal(allocator_count(a, "ns", "b"), 0);
    json_decref(d9);
    json_decref(clusters);
    json_decref(dpus);
    allocator_destroy(a);
}

static void
test_no_cluster(void **state)
{
    struct allocator *a = allocator_create(NULL);
    assert_string_equal(pick(a, "u1"), "ERR there is no DPUCluster");
    /* assign without a REST client: pick only, the same answer. */
    json_t *d = dpu("u1", NULL, NULL);
    struct dpf_error err = {0};
    assert_int_equal(allocator_assign(a, d, NULL, NULL, NULL, &err), -EAGAIN);
    json_t *c = cluster("ns", "a", "Ready", 0);
    allocator_cluster_set(a, c);
    char *ns = NULL, *name = NULL;
    assert_int_equal(allocator_assign(a, d, &ns, &name, NULL, &err), 0);
    assert_string_equal(ns, "ns");
    assert_string_equal(name, "a");
    free(ns);
    free(name);
    json_decref(c);
    json_decref(d);
    allocator_destroy(a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_ready_by_name),
        cmocka_unit_test(test_not_ready_skipped),
        cmocka_unit_test(test_max_nodes),
        cmocka_unit_test(test_default_max_and_deleting),
        cmocka_unit_test(test_rebuild_from_lists),
        cmocka_unit_test(test_no_cluster),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
