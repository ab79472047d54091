/* Unit tests for dpulet's pure parts: the sysfs DPU scan and its labels
 * (dpulet/detect), the pod spec -> run plan (dpulet/podplan) and the
 * --node-labels / --register-with-taints parsers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <glob.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dpulet/detect.h"
#include "dpulet/dpulet.h"
#include "dpulet/podplan.h"
#include "lib/base/loop.h"
#include "lib/base/util.h"

/* ---- a fake sysfs ---- */

static void
put_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void
add_fn(const char *root, const char *addr, const char *devid,
       const char *netdev)
{
    char *dir = xasprintf("%s/bus/pci/devices/%s", root, addr);
    assert_int_equal(dir_create_all(dir, 0755), 0);
    char *dev = xasprintf("%s/device", dir);
    put_file(dev, devid);
    if (netdev) {
        char *net = xasprintf("%s/net/%s", dir, netdev);
        assert_int_equal(dir_create_all(net, 0755), 0);
        free(net);
    }
    free(dev);
    free(dir);
}

static void
rm_tree(const char *root)
{
    char *cmd = xasprintf("rm -rf -- '%s'", root);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

static void
test_detect_scan(void **state)
{
    (void) state;
    char root[] = "/tmp/dpulet-sysfs-XXXXXX";
    assert_non_null(mkdtemp(root));
    /* two BlueField-3 functions of one device, a NIC, a BlueField-2 whose
     * function 1 sorts after an unrelated device */
    add_fn(root, "0000:4b:00.0", "0xa2dc\n", "ens1f0np0");
    add_fn(root, "0000:4b:00.1", "0xa2dc\n", "ens1f1np1");
    add_fn(root, "0000:3a:00.0", "0x1017\n", "eno1");
    add_fn(root, "0000:b1:00.1", "0xa2d6\n", "p1");
    add_fn(root, "0000:b1:00.0", "0xa2d6\n", NULL);
    add_fn(root, "0000:c0:00.0", "0xA2DC\n", "enp192s0f0");
    struct dpulet_dpu d[DPULET_DETECT_MAX];
    size_t n = 0;
    assert_int_equal(dpulet_detect_scan(root, d, DPULET_DETECT_MAX, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(d[0].pci, "0000-4b-00");
    assert_string_equal(d[0].pf0, "ens1f0np0");
    assert_string_equal(d[1].pci, "0000-b1-00");
    assert_string_equal(d[1].pf0, ""); /* function 0 has no netdev */
    assert_string_equal(d[2].pci, "0000-c0-00");

    json_t *l = dpulet_detect_labels(d, n, true);
    assert_string_equal(json_string_value(json_object_get(
                            l, "feature.node.kubernetes.io/dpu-0-pci-address")),
                        "0000-4b-00");
    assert_string_equal(json_string_value(json_object_get(
                            l, "feature.node.kubernetes.io/dpu-0-pf0-name")),
                        "ens1f0np0");
    assert_null(
        json_object_get(l, "feature.node.kubernetes.io/dpu-1-pf0-name"));
    assert_string_equal(json_string_value(json_object_get(
                            l, "feature.node.kubernetes.io/dpu-2-pci-address")),
                        "0000-c0-00");
    assert_string_equal(json_string_value(json_object_get(
                            l, "feature.node.kubernetes.io/dpu-enabled")),
                        "true");
    assert_string_equal(
        json_string_value(json_object_get(
            l, "feature.node.kubernetes.io/dpu-oob-bridge-configured")),
        "");
    assert_int_equal(json_object_size(l), 7);
    json_decref(l);

    /* no DPU: no dpu-enabled, and the bridge label only when asked */
    l = dpulet_detect_labels(d, 0, false);
    assert_int_equal(json_object_size(l), 0);
    json_decref(l);

    assert_true(dpulet_detect_owns_label(
        "feature.node.kubernetes.io/dpu-12-pci-address"));
    assert_true(
        dpulet_detect_owns_label("feature.node.kubernetes.io/dpu-enabled"));
    assert_false(dpulet_detect_owns_label(
        "feature.node.kubernetes.io/dpu-x-pci-address"));
    assert_false(dpulet_detect_owns_label("feature.node.kubernetes.io/cpu-x"));
    rm_tree(root);

    /* a missing sysfs tree is no DPU, not an error */
    assert_int_equal(dpulet_detect_scan("/nonexistent-dpulet", d, 4, &n), 0);
    assert_int_equal(n, 0);
}

/* ---- pod plans ---- */

static json_t *
pod_from(const char *json)
{
    json_error_t je;
    json_t *p = json_loads(json, 0, &je);
    if (!p) {
        fail_msg("bad test JSON: %s", je.text);
    }
    return p;
}

static const char full_pod[] =
    "{\"metadata\":{\"name\":\"web\",\"namespace\":\"ns1\",\"uid\":\"u-1\"},"
    "\"spec\":{\"restartPolicy\":\"OnFailure\",\"hostNetwork\":true,"
    "\"terminationGracePeriodSeconds\":5,"
    "\"volumes\":[{\"name\":\"cert\",\"secret\":{\"secretName\":\"s1\"}},"
    "{\"name\":\"cfg\",\"configMap\":{\"name\":\"c1\",\"optional\":true}},"
    "{\"name\":\"bfb\",\"hostPath\":{\"path\":\"/var/bfb\"}},"
    "{\"name\":\"tmp\",\"emptyDir\":{}}],"
    "\"initContainers\":[{\"name\":\"setup\",\"image\":\"x\","
    "\"command\":[\"true\"]}],"
    "\"containers\":[{\"name\":\"main\",\"image\":\"nvcr.io/x:1\","
    "\"command\":[\"sh\",\"-c\"],\"args\":[\"echo hi\"],"
    "\"workingDir\":\"/tmp\","
    "\"ports\":[{\"name\":\"http\",\"containerPort\":8080}],"
    "\"env\":[{\"name\":\"A\",\"value\":\"1\"},{\"name\":\"E\"},"
    "{\"name\":\"NODE\",\"valueFrom\":{\"fieldRef\":{\"fieldPath\":"
    "\"spec.nodeName\"}}}],"
    "\"volumeMounts\":[{\"name\":\"cert\",\"mountPath\":\"/etc/cert\"},"
    "{\"name\":\"bfb\",\"mountPath\":\"/bfb\",\"readOnly\":true}],"
    "\"livenessProbe\":{\"httpGet\":{\"port\":\"http\",\"path\":\"/healthz\"},"
    "\"periodSeconds\":3,\"failureThreshold\":2},"
    "\"readinessProbe\":{\"tcpSocket\":{\"port\":8080}},"
    "\"startupProbe\":{\"exec\":{\"command\":[\"cat\",\"/tmp/ok\"]}}}]}}";

static void
test_plan_full(void **state)
{
    (void) state;
    json_t *pod = pod_from(full_pod);
    struct dpulet_plan *p = NULL;
    struct dpf_error err = {0};
    assert_int_equal(dpulet_plan_from_pod(pod, &p, &err), 0);
    assert_string_equal(p->ns, "ns1");
    assert_string_equal(p->uid, "u-1");
    assert_int_equal(p->restart, DPULET_RESTART_ON_FAILURE);
    assert_true(p->host_network);
    assert_int_equal(p->grace_s, 5);
    assert_int_equal(p->n_containers, 2);
    assert_int_equal(p->n_init, 1);
    assert_true(p->containers[0].init);
    const struct dpulet_container *c = dpulet_plan_container(p, "main");
    assert_non_null(c);
    assert_string_equal(c->argv[0], "sh");
    assert_string_equal(c->argv[1], "-c");
    assert_string_equal(c->argv[2], "echo hi");
    assert_null(c->argv[3]);
    assert_int_equal(c->n_env, 3);
    assert_string_equal(c->env[1].value, "");
    assert_null(c->env[2].value);
    assert_string_equal(c->env[2].field_path, "spec.nodeName");
    assert_int_equal(c->n_mounts, 2);
    assert_true(c->mounts[1].read_only);
    assert_int_equal(c->liveness.kind, DPULET_PROBE_HTTP);
    assert_int_equal(c->liveness.port, 8080); /* the named port */
    assert_string_equal(c->liveness.path, "/healthz");
    assert_int_equal(c->liveness.period_s, 3);
    assert_int_equal(c->liveness.failure_threshold, 2);
    assert_int_equal(c->liveness.timeout_s, 1);
    assert_int_equal(c->readiness.kind, DPULET_PROBE_TCP);
    assert_int_equal(c->readiness.period_s, 10);
    assert_int_equal(c->startup.kind, DPULET_PROBE_EXEC);
    assert_string_equal(c->startup.argv[1], "/tmp/ok");
    assert_int_equal(p->n_volumes, 4);
    assert_int_equal(p->volumes[0].kind, DPULET_VOL_SECRET);
    assert_string_equal(p->volumes[0].source, "s1");
    assert_true(p->volumes[1].optional);
    assert_int_equal(p->volumes[2].kind, DPULET_VOL_HOST_PATH);
    assert_int_equal(p->volumes[3].kind, DPULET_VOL_EMPTY_DIR);
    dpulet_plan_free(p);
    json_decref(pod);
}

/* A bad pod: the error names the pod and the field. */
static void
expect_bad(const char *spec_json, const char *field, const char *what)
{
    char *txt = xasprintf("{\"metadata\":{\"name\":\"bad\",\"namespace\":"
                          "\"ns\"},\"spec\":%s}",
                          spec_json);
    json_t *pod = pod_from(txt);
    free(txt);
    struct dpulet_plan *p = NULL;
    struct dpf_error err = {0};
    assert_int_equal(dpulet_plan_from_pod(pod, &p, &err), -EINVAL);
    assert_null(p);
    assert_int_equal(err.code, 422);
    if (!strstr(err.message, "pod ns/bad: ") || !strstr(err.message, field) ||
        !strstr(err.message, what)) {
        fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", err.message, field,
                 what);
    }
    json_decref(pod);
}

static void
test_plan_errors(void **state)
{
    (void) state;
    expect_bad("{}", "spec.containers", "at least one container");
    expect_bad("{\"containers\":[{\"name\":\"a\"}]}",
               "spec.containers[0].command", "is required");
    expect_bad("{\"containers\":[{\"name\":\"A_b\",\"command\":[\"x\"]}]}",
               "spec.containers[0].name", "DNS-1123");
    expect_bad("{\"containers\":[{\"name\":\"a\",\"command\":[\"x\"]},"
               "{\"name\":\"a\",\"command\":[\"y\"]}]}",
               "spec.containers[1].name", "duplicate");
    expect_bad("{\"restartPolicy\":\"Sometimes\",\"containers\":[{\"name\":"
               "\"a\",\"command\":[\"x\"]}]}",
               "spec.restartPolicy", "Always, OnFailure or Never");
    expect_bad("{\"containers\":[{\"name\":\"a\",\"command\":[\"x\"],"
               "\"volumeMounts\":[{\"name\":\"nope\",\"mountPath\":\"/x\"}]}]}",
               "spec.containers[0].volumeMounts[0].name", "names no volume");
    expect_bad(
        "{\"volumes\":[{\"name\":\"v\",\"emptyDir\":{}}],"
        "\"containers\":[{\"name\":\"a\",\"command\":[\"x\"],"
        "\"volumeMounts\":[{\"name\":\"v\",\"mountPath\":\"/a/../b\"}]}]}",
        "volumeMounts[0].mountPath", "without '..'");
    expect_bad("{\"volumes\":[{\"name\":\"v\",\"nfs\":{}}],\"containers\":[]}",
               "spec.volumes[0]", "not supported");
    expect_bad("{\"containers\":[{\"name\":\"a\",\"command\":[\"x\"],"
               "\"env\":[{\"name\":\"S\",\"valueFrom\":{\"secretKeyRef\":"
               "{\"name\":\"s\",\"key\":\"k\"}}}]}]}",
               "spec.containers[0].env[0].valueFrom", "only fieldRef");
    expect_bad("{\"containers\":[{\"name\":\"a\",\"command\":[\"x\"],"
               "\"livenessProbe\":{\"tcpSocket\":{\"port\":70000}}}]}",
               "spec.containers[0].livenessProbe.tcpSocket", "out of range");
    expect_bad("{\"containers\":[{\"name\":\"a\",\"command\":[\"x\"],"
               "\"readinessProbe\":{\"periodSeconds\":0,"
               "\"exec\":{\"command\":[\"x\"]}}}]}",
               "readinessProbe.periodSeconds", "out of range");
    expect_bad("{\"containers\":[{\"name\":\"a\",\"command\":[\"x\"],"
               "\"livenessProbe\":{\"httpGet\":{\"port\":\"web\"}}}]}",
               "livenessProbe.httpGet", "names no port");
    expect_bad("{\"terminationGracePeriodSeconds\":-1,\"containers\":"
               "[{\"name\":\"a\",\"command\":[\"x\"]}]}",
               "spec.terminationGracePeriodSeconds", "out of range");
    /* a string longer than the bound */
    char *big = xmalloc(DPULET_PLAN_MAX_STRING + 64);
    memset(big, 'x', DPULET_PLAN_MAX_STRING + 1);
    big[DPULET_PLAN_MAX_STRING + 1] = 0;
    char *spec = xasprintf("{\"containers\":[{\"name\":\"a\",\"command\":"
                           "[\"%s\"]}]}",
                           big);
    expect_bad(spec, "spec.containers[0].command[0]", "longer than");
    free(spec);
    free(big);
}

static void
test_flags(void **state)
{
    (void) state;
    json_t *v = NULL;
    struct dpf_error err = {0};
    assert_int_equal(dpulet_parse_labels("a=1,b.io/c=,d=x=y", &v, &err), 0);
    assert_string_equal(json_string_value(json_object_get(v, "a")), "1");
    assert_string_equal(json_string_value(json_object_get(v, "b.io/c")), "");
    assert_string_equal(json_string_value(json_object_get(v, "d")), "x=y");
    json_decref(v);
    assert_int_equal(dpulet_parse_labels("novalue", &v, &err), -EINVAL);
    assert_non_null(strstr(err.message, "--node-labels"));
    assert_int_equal(
        dpulet_parse_taints("k=v:NoSchedule,only:NoExecute", &v, &err), 0);
    assert_int_equal(json_array_size(v), 2);
    json_t *t0 = json_array_get(v, 0), *t1 = json_array_get(v, 1);
    assert_string_equal(json_string_value(json_object_get(t0, "key")), "k");
    assert_string_equal(json_string_value(json_object_get(t0, "value")), "v");
    assert_string_equal(json_string_value(json_object_get(t0, "effect")),
                        "NoSchedule");
    assert_null(json_object_get(t1, "value"));
    json_decref(v);
    assert_int_equal(dpulet_parse_taints("k=v:Sometimes", &v, &err), -EINVAL);
    assert_non_null(strstr(err.message, "--register-with-taints"));
}

/* The kubelet API's hooks, on a standalone dpulet running one static
 * pod: log path, exec target, pod list, and kubelet's error codes. */
static void
test_hooks(void **state)
{
    (void) state;
    if (geteuid() != 0) {
        fprintf(stderr, "test_hooks: needs root (mount namespaces)\n");
        skip();
    }
    char root[] = "/tmp/dpulet-hooks-XXXXXX";
    assert_non_null(mkdtemp(root));
    char *sdir = xasprintf("%s/manifests", root);
    assert_int_equal(dir_create_all(sdir, 0755), 0);
    char *mf = xasprintf("%s/hook.yaml", sdir);
    put_file(mf, "apiVersion: v1\nkind: Pod\nmetadata: {name: hook}\n"
                 "spec:\n  containers:\n  - name: c\n    image: i\n"
                 "    workingDir: /tmp\n"
                 "    env: [{name: X, value: y}]\n"
                 "    command: [sleep, '30']\n");
    struct loop *loop = loop_create();
    struct dpulet_config cfg = {.node_name = "n1",
                                .node_ip = "127.0.0.1",
                                .root_dir = root,
                                .sysfs_root = root,
                                .static_pod_path = sdir,
                                .path = "/usr/bin:/bin"};
    struct dpf_error err = {0};
    struct dpulet *d = dpulet_start(loop, &cfg, &err);
    assert_non_null(d);
    struct dpulet_hooks h;
    dpulet_get_hooks(d, &h);
    pid_t pid = 0;
    char **envp = NULL, *cwd = NULL;
    int64_t deadline = time_mono_ms() + 10000;
    int rc = -1;
    while (time_mono_ms() < deadline) {
        loop_run_once(loop, 100);
        rc = h.container_exec(h.arg, "default", "hook-n1", "c", &pid, &envp,
                              &cwd, &err);
        if (rc == 0) {
            break;
        }
    }
    assert_int_equal(rc, 0);
    assert_true(pid > 0);
    assert_string_equal(cwd, "/tmp");
    bool have_x = false;
    for (char **e = envp; *e; e++) {
        have_x |= !strcmp(*e, "X=y");
    }
    assert_true(have_x);
    for (char **e = envp; *e; e++) {
        free(*e);
    }
    free(envp);
    free(cwd);
    char *path = NULL;
    bool running = false;
    assert_int_equal(h.container_log_path(h.arg, "default", "hook-n1", "",
                                          false, &path, &running, &err),
                     0);
    assert_true(running);
    assert_non_null(strstr(path, "/pods/default_hook-n1_"));
    assert_true(str_has_suffix(path, "/c/0.log"));
    free(path);
    assert_int_equal(h.container_log_path(h.arg, "default", "hook-n1", "c",
                                          true, &path, &running, &err),
                     -ENODATA);
    assert_int_equal(h.container_log_path(h.arg, "default", "nope", "c", false,
                                          &path, &running, &err),
                     -ENOENT);
    assert_non_null(strstr(err.message, "nope"));
    assert_int_equal(h.container_exec(h.arg, "default", "hook-n1", "zz", &pid,
                                      &envp, &cwd, &err),
                     -ESRCH);
    json_t *pods = h.list_pods(h.arg);
    assert_int_equal(json_array_size(pods), 1);
    json_t *st = json_object_get(json_array_get(pods, 0), "status");
    assert_string_equal(json_string_value(json_object_get(st, "phase")),
                        "Running");
    json_decref(pods);
    /* stop what the test started: the container's group, then dpulet;
     * the container's shim outlives both and records the exit in the
     * pod's .state, so wait for that record before removing the tree
     * (removing it under the shim's write fails the rm) */
    kill(-pid, SIGKILL);
    kill(pid, SIGKILL);
    dpulet_destroy(d);
    loop_destroy(loop);
    char *pat = xasprintf("%s/pods/default_hook-n1_*/.state/c.exit", root);
    bool recorded = false;
    for (int i = 0; i < 500 && !recorded; i++) {
        glob_t g;
        recorded = glob(pat, 0, NULL, &g) == 0;
        globfree(&g);
        if (!recorded) {
            usleep(10 * 1000);
        }
    }
    free(pat);
    assert_true(recorded); /* the rename is the shim's last write */
    rm_tree(root);
    free(mf);
    free(sdir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_detect_scan), cmocka_unit_test(test_plan_full),
        cmocka_unit_test(test_plan_errors), cmocka_unit_test(test_flags),
        cmocka_unit_test(test_hooks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
