/* Unit tests for controllers/dpu-pods: the <dpu>-dms and <dpu>-hostnetwork
 * pods (command lines, volumes, placement, owner), the DPU's index and
 * address on its host, and the errors for missing inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "controllers/dpu-pods.h"
#include "lib/base/util.h"

static json_t *
load(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j) {
        fail_msg("%s", je.text);
    }
    return j;
}

static const char dpu_json[] =
    "{\"apiVersion\":\"provisioning.dpu.nvidia.com/v1alpha1\",\"kind\":\"DPU\","
    "\"metadata\":{\"name\":\"host1-0000-4b-00\",\"namespace\":\"dpf\","
    "\"uid\":\"u-1\",\"labels\":{\"provisioning.dpu.nvidia.com/"
    "dpu-pciAddress\":\"0000-4b-00\"}}}";

static const char host_json[] =
    "{\"metadata\":{\"name\":\"host1\",\"labels\":{"
    "\"feature.node.kubernetes.io/dpu-0-pci-address\":\"0000-03-00\","
    "\"feature.node.kubernetes.io/dpu-1-pci-address\":\"0000-4b-00\"}},"
    "\"status\":{\"addresses\":[{\"type\":\"Hostname\",\"address\":\"host1\"},"
    "{\"type\":\"InternalIP\",\"address\":\"10.0.0.7\"}]}}";

static const char emu_host_json[] =
    "{\"metadata\":{\"name\":\"host1\",\"annotations\":{"
    "\"dpu.emu/rshim-1\":\"/run/emu/h1/rshim1\",\"dpu.emu/sysfs\":"
    "\"/run/emu/h1/sys\"},\"labels\":{"
    "\"feature.node.kubernetes.io/dpu-1-pci-address\":\"0000-4b-00\"}},"
    "\"status\":{\"addresses\":[{\"type\":\"InternalIP\","
    "\"address\":\"10.0.0.7\"}]}}";

static json_t *
strings(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, json_string(v[i]));
    }
    return a;
}

static const json_t *
by_name(const json_t *arr, const char *name)
{
    size_t i;
    const json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (!strcmp(json_string_value(json_object_get(e, "name")), name)) {
            return e;
        }
    }
    fail_msg("no entry %s", name);
    return NULL;
}

static void
check_placement(const json_t *pod, const char *name, bool taint)
{
    const json_t *md = json_object_get(pod, "metadata");
    assert_string_equal(json_string_value(json_object_get(md, "name")), name);
    assert_string_equal(json_string_value(json_object_get(md, "namespace")),
                        "dpf");
    const json_t *own =
        json_array_get(json_object_get(md, "ownerReferences"), 0);
    assert_string_equal(json_string_value(json_object_get(own, "uid")), "u-1");
    assert_string_equal(json_string_value(json_object_get(own, "kind")), "DPU");
    assert_true(json_is_true(json_object_get(own, "controller")));
    const json_t *spec = json_object_get(pod, "spec");
    assert_string_equal(json_string_value(json_object_get(spec, "nodeName")),
                        "host1");
    assert_true(json_is_true(json_object_get(spec, "hostNetwork")));
    json_t *want = load(
        "{\"nodeAffinity\":{\"requiredDuringSchedulingIgnoredDuringExecution"
        "\":{\"nodeSelectorTerms\":[{\"matchFields\":[{\"key\":"
        "\"metadata.name\",\"operator\":\"In\",\"values\":[\"host1\"]}]}]}}}");
    assert_true(json_equal(json_object_get(spec, "affinity"), want));
    json_decref(want);
    want = load(
        "[{\"key\":\"node.kubernetes.io/not-ready\",\"operator\":\"Exists\","
        "\"effect\":\"NoExecute\"},{\"key\":\"node.kubernetes.io/not-ready\","
        "\"operator\":\"Exists\",\"effect\":\"NoSchedule\"},{\"key\":"
        "\"node.kubernetes.io/unreachable\",\"operator\":\"Exists\","
        "\"effect\":\"NoExecute\"},{\"key\":\"node.kubernetes.io/"
        "unschedulable\",\"operator\":\"Exists\",\"effect\":\"NoSchedule\"}]");
    if (taint) {
        json_array_append_new(
            want, load("{\"key\":\"dpu\",\"operator\":\"Equal\",\"value\":"
                       "\"provisioning\",\"effect\":\"NoSchedule\"}"));
    }
    assert_true(json_equal(json_object_get(spec, "tolerations"), want));
    json_decref(want);
}

static void
test_dms_pod_on_a_host(void **state)
{
    (void) state;
    json_t *dpu = load(dpu_json), *host = load(host_json);
    struct dpf_error err = {0};
    int idx = dpu_host_index(dpu, host, &err);
    assert_int_equal(idx, 1);
    assert_string_equal(dpu_host_ip(host), "10.0.0.7");
    assert_int_equal(dpu_dms_port(idx), 9340);
    struct dpu_pods_in in = {.dpu = dpu,
                             .host = host,
                             .index = idx,
                             .bfb_dir = "/var/lib/dpf/bfb",
                             .taint_key = "dpu",
                             .taint_value = "provisioning",
                             .taint_effect = "NoSchedule"};
    json_t *pod = dpu_pod_dms(&in, &err);
    assert_non_null(pod);
    check_placement(pod, "host1-0000-4b-00-dms", true);
    const json_t *c = json_array_get(
        json_object_get(json_object_get(pod, "spec"), "containers"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "name")), "dms");
    static const char *const cmd[] = {"dmsd",
                                      "--bind_address",
                                      "10.0.0.7:9340",
                                      "--auth",
                                      "cert",
                                      "--ca",
                                      "/etc/ssl/certs/server/ca.crt",
                                      "--tls_cert_file",
                                      "/etc/ssl/certs/server/tls.crt",
                                      "--tls_key_file",
                                      "/etc/ssl/certs/server/tls.key",
                                      "--image_folder",
                                      "/bfb",
                                      "--rshim",
                                      "/dev/rshim1",
                                      "--target_pci",
                                      "4b:00",
                                      "--state_dir",
                                      "/bfb/.dms/dpf.host1-0000-4b-00",
                                      "--sysfs",
                                      "/sys",
                                      "--exec_timeout",
                                      "1800",
                                      "--disable_unbind_at_activate",
                                      "--reboot_status_check",
                                      "none"};
    json_t *want = strings(cmd, ARRAY_SIZE(cmd));
    assert_true(json_equal(json_object_get(c, "command"), want));
    json_decref(want);
    assert_int_equal(
        json_integer_value(json_object_get(
            json_array_get(json_object_get(c, "ports"), 0), "containerPort")),
        9340);
    const json_t *vols =
        json_object_get(json_object_get(pod, "spec"), "volumes");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(by_name(vols, "certs"), "secret"), "secretName")),
        "host1-0000-4b-00-server-secret");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(by_name(vols, "bfb"), "hostPath"), "path")),
        "/var/lib/dpf/bfb");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(by_name(vols, "dev"), "hostPath"), "path")),
        "/dev");
    const json_t *mounts = json_object_get(c, "volumeMounts");
    assert_string_equal(json_string_value(json_object_get(
                            by_name(mounts, "certs"), "mountPath")),
                        "/etc/ssl/certs/server");
    assert_true(
        json_is_true(json_object_get(by_name(mounts, "certs"), "readOnly")));
    assert_string_equal(
        json_string_value(json_object_get(by_name(mounts, "bfb"), "mountPath")),
        "/bfb");
    json_decref(pod);
    json_decref(dpu);
    json_decref(host);
}

static void
test_dms_pod_on_an_emulated_host(void **state)
{
    (void) state;
    json_t *dpu = load(dpu_json), *host = load(emu_host_json);
    struct dpf_error err = {0};
    struct dpu_pods_in in = {.dpu = dpu, .host = host, .index = 1};
    json_t *pod = dpu_pod_dms(&in, &err);
    assert_non_null(pod);
    check_placement(pod, "host1-0000-4b-00-dms", false);
    const json_t *c = json_array_get(
        json_object_get(json_object_get(pod, "spec"), "containers"), 0);
    const char *cmd = json_dumps(json_object_get(c, "command"), 0);
    assert_non_null(strstr(cmd, "\"--rshim\", \"/run/emu/h1/rshim1\""));
    assert_non_null(strstr(cmd, "\"--sysfs\", \"/run/emu/h1/sys\""));
    free((char *) cmd);
    const json_t *vols =
        json_object_get(json_object_get(pod, "spec"), "volumes");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(by_name(vols, "rshim"), "hostPath"), "path")),
        "/run/emu/h1/rshim1");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(by_name(vols, "sysfs"), "hostPath"), "path")),
        "/run/emu/h1/sys");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(by_name(vols, "bfb"), "hostPath"), "path")),
        "/bfb");
    json_decref(pod);
    json_decref(dpu);
    json_decref(host);
}

static void
test_hostnetwork_pod(void **state)
{
    (void) state;
    json_t *dpu = load(dpu_json), *host = load(emu_host_json);
    struct dpf_error err = {0};
    struct dpu_pods_in in = {
        .dpu = dpu, .host = host, .index = 1, .num_vfs = 46, .vf_mtu = 9000};
    json_t *pod = dpu_pod_hostnetwork(&in, &err);
    assert_non_null(pod);
    check_placement(pod, "host1-0000-4b-00-hostnetwork", false);
    const json_t *c = json_array_get(
        json_object_get(json_object_get(pod, "spec"), "containers"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "name")),
                        "hostnetwork");
    static const char *const cmd[] = {"dpf-hostnetwork",
                                      "--pci",
                                      "0000:4b:00",
                                      "--num-vfs",
                                      "46",
                                      "--mtu",
                                      "9000",
                                      "--sysfs",
                                      "/run/emu/h1/sys",
                                      "--ready-file",
                                      "/tmp/hostnetwork_succeed"};
    json_t *want = strings(cmd, ARRAY_SIZE(cmd));
    assert_true(json_equal(json_object_get(c, "command"), want));
    json_decref(want);
    want = load("{\"exec\":{\"command\":[\"ls\",\"/tmp/hostnetwork_succeed\""
                "]},\"periodSeconds\":5,\"initialDelaySeconds\":0}");
    assert_true(json_equal(json_object_get(c, "readinessProbe"), want));
    json_decref(want);
    /* /tmp of its own */
    const json_t *vols =
        json_object_get(json_object_get(pod, "spec"), "volumes");
    assert_true(
        json_is_object(json_object_get(by_name(vols, "tmp"), "emptyDir")));
    json_decref(pod);
    /* defaults: 16 VFs, MTU 1500 */
    in.num_vfs = in.vf_mtu = 0;
    pod = dpu_pod_hostnetwork(&in, &err);
    char *s = json_dumps(pod, 0);
    assert_non_null(strstr(s, "\"--num-vfs\", \"16\", \"--mtu\", \"1500\""));
    free(s);
    json_decref(pod);
    json_decref(dpu);
    json_decref(host);
}

static void
test_missing_inputs(void **state)
{
    (void) state;
    json_t *dpu = load(dpu_json), *host = load(host_json);
    struct dpf_error err = {0};
    /* no address yet */
    json_t *bare = load("{\"metadata\":{\"name\":\"host1\"}}");
    struct dpu_pods_in in = {.dpu = dpu, .host = bare};
    assert_null(dpu_pod_dms(&in, &err));
    assert_non_null(strstr(err.message, "host1 has no address"));
    assert_non_null(strstr(err.message, "dpf/host1-0000-4b-00"));
    /* a DPU whose PCI address the host does not show */
    json_object_set_new(
        json_object_get(json_object_get(dpu, "metadata"), "labels"),
        "provisioning.dpu.nvidia.com/dpu-pciAddress",
        json_string("0000-99-00"));
    dpf_error_clear(&err);
    assert_int_equal(dpu_host_index(dpu, host, &err), -ENOENT);
    assert_non_null(strstr(err.message, "0000-99-00"));
    assert_non_null(strstr(err.message, "host1"));
    /* no PCI label at all */
    json_object_del(json_object_get(json_object_get(dpu, "metadata"), "labels"),
                    "provisioning.dpu.nvidia.com/dpu-pciAddress");
    in.host = host;
    dpf_error_clear(&err);
    assert_null(dpu_pod_hostnetwork(&in, &err));
    assert_non_null(strstr(err.message, "dpu-pciAddress"));
    json_decref(bare);
    json_decref(dpu);
    json_decref(host);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dms_pod_on_a_host),
        cmocka_unit_test(test_dms_pod_on_an_emulated_host),
        cmocka_unit_test(test_hostnetwork_pod),
        cmocka_unit_test(test_missing_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
