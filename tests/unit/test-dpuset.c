/* Unit tests for controllers/dpuset-util: DPF's DPU names and labels,
 * the dpuSelector index rule, maxUnavailable resolution, node effects
 * applied and lifted, and which pods a drain removes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "controllers/dpuset-util.h"

static json_t *
J(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    if (!v) {
        fail_msg("bad JSON in the test: %s: %s", e.text, text);
    }
    return v;
}

static void
test_names(void **state)
{
    (void) state;
    char *n = dpuset_dpu_name("Worker1", "0000-04-00");
    assert_string_equal(n, "worker1-0000-04-00");
    free(n);
    n = dpuset_dpu_name("host-A.example", "0000-4B-00");
    assert_string_equal(n, "host-a.example-0000-4b-00");
    free(n);
    n = dpuset_nfd_key(1, "pf0-name");
    assert_string_equal(n, "feature.node.kubernetes.io/dpu-1-pf0-name");
    free(n);
    n = dpuset_pci_bus_dev("0000-4b-00");
    assert_string_equal(n, "4b:00");
    free(n);
    assert_null(dpuset_pci_bus_dev("4b:00"));
    assert_null(dpuset_pci_bus_dev("0000-4b-00x"));
}

static void
test_select_indexes(void **state)
{
    (void) state;
    json_t *labels = J("{\"feature.node.kubernetes.io/dpu-0-pci-address\":"
                       "\"0000-04-00\","
                       "\"feature.node.kubernetes.io/dpu-1-pci-address\":"
                       "\"0000-05-00\","
                       "\"feature.node.kubernetes.io/dpu-1-pf0-name\":\"p1\"}");
    int idx[8];
    /* empty selector: DPU 0 when the node has its PCI label */
    assert_int_equal(dpuset_select_indexes(labels, NULL, idx, 8), 1);
    assert_int_equal(idx[0], 0);
    json_t *empty = json_object();
    assert_int_equal(dpuset_select_indexes(labels, empty, idx, 8), 1);
    /* a node without DPU 0: nothing */
    json_t *none = J("{\"feature.node.kubernetes.io/dpu-1-pci-address\":"
                     "\"0000-05-00\"}");
    assert_int_equal(dpuset_select_indexes(none, NULL, idx, 8), 0);
    /* selector picks index 1 by value; a wrong value picks nothing */
    json_t *sel = J("{\"feature.node.kubernetes.io/dpu-1-pf0-name\":\"p1\"}");
    assert_int_equal(dpuset_select_indexes(labels, sel, idx, 8), 1);
    assert_int_equal(idx[0], 1);
    json_t *bad = J("{\"feature.node.kubernetes.io/dpu-1-pf0-name\":\"p9\"}");
    assert_int_equal(dpuset_select_indexes(labels, bad, idx, 8), 0);
    /* two keys, two DPUs, ascending; keys of another form are ignored */
    json_t *two = J("{\"feature.node.kubernetes.io/dpu-1-pci-address\":"
                    "\"0000-05-00\","
                    "\"feature.node.kubernetes.io/dpu-0-pci-address\":"
                    "\"0000-04-00\",\"other\":\"x\","
                    "\"feature.node.kubernetes.io/dpu-x-pci-address\":\"y\"}");
    assert_int_equal(dpuset_select_indexes(labels, two, idx, 8), 2);
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], 1);
    /* max respected */
    assert_int_equal(dpuset_select_indexes(labels, two, idx, 1), 1);
    json_decref(labels);
    json_decref(empty);
    json_decref(none);
    json_decref(sel);
    json_decref(bad);
    json_decref(two);
}

static void
test_max_unavailable(void **state)
{
    (void) state;
    json_t *v;
    assert_int_equal(dpuset_max_unavailable(NULL, 10), 1);
    assert_int_equal(dpuset_max_unavailable(NULL, 0), 0);
    v = json_integer(3);
    assert_int_equal(dpuset_max_unavailable(v, 10), 3);
    assert_int_equal(dpuset_max_unavailable(v, 2), 2); /* clamped */
    json_decref(v);
    v = json_string("25%");
    assert_int_equal(dpuset_max_unavailable(v, 10), 3); /* 2.5 up */
    assert_int_equal(dpuset_max_unavailable(v, 4), 1);
    assert_int_equal(dpuset_max_unavailable(v, 1), 1);
    json_decref(v);
    v = json_string("100%");
    assert_int_equal(dpuset_max_unavailable(v, 7), 7);
    json_decref(v);
    v = json_string("1%");
    assert_int_equal(dpuset_max_unavailable(v, 1000), 10);
    assert_int_equal(dpuset_max_unavailable(v, 3), 1); /* at least 1 */
    json_decref(v);
    v = json_string("abc");
    assert_int_equal(dpuset_max_unavailable(v, 5), 1);
    json_decref(v);
}

static void
test_labels(void **state)
{
    (void) state;
    json_t *set = J("{\"metadata\":{\"name\":\"s\",\"namespace\":\"ns\","
                    "\"labels\":{\"team\":\"a\"}}}");
    json_t *node = J(
        "{\"metadata\":{\"name\":\"h\",\"labels\":{"
        "\"feature.node.kubernetes.io/dpu-0-pci-address\":\"0000-04-00\","
        "\"feature.node.kubernetes.io/dpu-0-pf0-name\":\"ens1f0np0\"}},"
        "\"status\":{\"addresses\":[{\"type\":\"Hostname\",\"address\":\"h\"},"
        "{\"type\":\"InternalIP\",\"address\":\"10.0.0.5\"}]}}");
    const char *why = NULL;
    json_t *l = dpuset_dpu_labels(set, node, 0, &why);
    assert_non_null(l);
    json_t *want =
        J("{\"team\":\"a\",\"provisioning.dpu.nvidia.com/dpuset-name\":\"s\","
          "\"provisioning.dpu.nvidia.com/dpuset-namespace\":\"ns\","
          "\"provisioning.dpu.nvidia.com/dpu-pciAddress\":\"0000-04-00\","
          "\"provisioning.dpu.nvidia.com/dpu-pf-name\":\"ens1f0np0\","
          "\"provisioning.dpu.nvidia.com/dpu-host-ip\":\"10.0.0.5\"}");
    assert_true(json_equal(l, want));
    json_decref(l);
    assert_null(dpuset_dpu_labels(set, node, 1, &why));
    assert_non_null(strstr(why, "PCI address"));
    json_decref(want);
    json_decref(set);
    json_decref(node);
}

static void
test_taint_effect(void **state)
{
    (void) state;
    json_t *node = J("{\"metadata\":{\"name\":\"h\"},\"spec\":{\"taints\":["
                     "{\"key\":\"other\",\"effect\":\"NoExecute\"}]}}");
    json_t *eff = J("{\"taint\":{\"key\":\"dpu\",\"value\":\"x\","
                    "\"effect\":\"NoSchedule\"}}");
    assert_false(dpuset_node_effect_applied(node, eff, "ns/d"));
    assert_true(dpuset_node_effect_edit(node, eff, true, "ns/d"));
    assert_true(dpuset_node_effect_applied(node, eff, "ns/d"));
    assert_false(dpuset_node_effect_edit(node, eff, true, "ns/d")); /* once */
    json_t *taints = json_object_get(json_object_get(node, "spec"), "taints");
    assert_int_equal(json_array_size(taints), 2);
    assert_true(dpuset_node_effect_edit(node, eff, false, "ns/d"));
    assert_int_equal(json_array_size(taints), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(taints, 0), "key")),
        "other");
    assert_false(dpuset_node_effect_edit(node, eff, false, "ns/d"));
    json_decref(node);
    json_decref(eff);
}

static void
test_label_effect(void **state)
{
    (void) state;
    json_t *node =
        J("{\"metadata\":{\"name\":\"h\",\"labels\":{\"a\":\"1\"}}}");
    json_t *eff = J("{\"customLabel\":{\"dpu\":\"provisioning\"}}");
    assert_true(dpuset_node_effect_edit(node, eff, true, "ns/d"));
    json_t *l = json_object_get(json_object_get(node, "metadata"), "labels");
    assert_string_equal(json_string_value(json_object_get(l, "dpu")),
                        "provisioning");
    assert_true(dpuset_node_effect_applied(node, eff, "ns/d"));
    assert_true(dpuset_node_effect_edit(node, eff, false, "ns/d"));
    assert_null(json_object_get(l, "dpu"));
    assert_string_equal(json_string_value(json_object_get(l, "a")), "1");
    json_decref(node);
    json_decref(eff);
}

static void
test_drain_effect(void **state)
{
    (void) state;
    json_t *node = J("{\"metadata\":{\"name\":\"h\"},\"spec\":{}}");
    json_t *eff = J("{\"drain\":{\"automaticNodeReboot\":true}}");
    json_t *spec = json_object_get(node, "spec");
    /* two DPUs on one host: cordoned until the last one lifts */
    assert_true(dpuset_node_effect_edit(node, eff, true, "ns/a"));
    assert_true(dpuset_node_effect_edit(node, eff, true, "ns/b"));
    assert_true(json_is_true(json_object_get(spec, "unschedulable")));
    assert_true(dpuset_node_effect_edit(node, eff, false, "ns/a"));
    assert_true(json_is_true(json_object_get(spec, "unschedulable")));
    assert_true(dpuset_node_effect_edit(node, eff, false, "ns/b"));
    assert_null(json_object_get(spec, "unschedulable"));
    json_decref(node);
    /* a node the admin cordoned stays cordoned */
    node = J("{\"metadata\":{\"name\":\"h\"},\"spec\":"
             "{\"unschedulable\":true}}");
    spec = json_object_get(node, "spec");
    assert_true(dpuset_node_effect_edit(node, eff, true, "ns/a"));
    assert_true(dpuset_node_effect_applied(node, eff, "ns/a"));
    assert_true(dpuset_node_effect_edit(node, eff, false, "ns/a"));
    assert_true(json_is_true(json_object_get(spec, "unschedulable")));
    json_decref(node);
    json_decref(eff);
    /* noEffect does nothing */
    node = J("{\"metadata\":{\"name\":\"h\"}}");
    eff = J("{\"noEffect\":true}");
    assert_false(dpuset_node_effect_edit(node, eff, true, "ns/a"));
    assert_true(dpuset_node_effect_applied(node, eff, "ns/a"));
    json_decref(node);
    json_decref(eff);
}

static void
test_evictable(void **state)
{
    (void) state;
    json_t *p = J("{\"metadata\":{\"name\":\"web\"},\"status\":"
                  "{\"phase\":\"Running\"}}");
    assert_true(dpuset_pod_evictable(p));
    json_decref(p);
    p = J("{\"metadata\":{\"name\":\"m\",\"annotations\":"
          "{\"kubernetes.io/config.mirror\":\"x\"}}}");
    assert_false(dpuset_pod_evictable(p));
    json_decref(p);
    p = J("{\"metadata\":{\"name\":\"ds\",\"ownerReferences\":[{\"kind\":"
          "\"DaemonSet\",\"name\":\"x\",\"uid\":\"u\"}]}}");
    assert_false(dpuset_pod_evictable(p));
    json_decref(p);
    p = J("{\"metadata\":{\"name\":\"d-dms\",\"ownerReferences\":[{\"kind\":"
          "\"DPU\",\"name\":\"d\",\"uid\":\"u\"}]}}");
    assert_false(dpuset_pod_evictable(p));
    json_decref(p);
    p = J("{\"metadata\":{\"name\":\"done\"},\"status\":"
          "{\"phase\":\"Succeeded\"}}");
    assert_false(dpuset_pod_evictable(p));
    json_decref(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_select_indexes),
        cmocka_unit_test(test_max_unavailable),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_taint_effect),
        cmocka_unit_test(test_label_effect),
        cmocka_unit_test(test_drain_effect),
        cmocka_unit_test(test_evictable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
