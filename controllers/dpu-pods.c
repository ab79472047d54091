/* dpu-pods: the DMS and host-network pods of a DPU. See dpu-pods.h.
 * (The certificates are in dpu-certs.c.) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controllers/dms-client.h"
#include "controllers/dpu-pods.h"
#include "lib/base/util.h"
#include "lib/kube/kube-object.h"

#define PROV "provisioning.dpu.nvidia.com"
#define LABEL_PCI PROV "/dpu-pciAddress"
#define LABEL_POD_DPU PROV "/dpu-name"
#define NFD "feature.node.kubernetes.io"
#define DPU_MAX_INDEX 64
#define CERT_DIR "/etc/ssl/certs/server"

static const char *
str_at(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static const char *
meta(const json_t *o, const char *k)
{
    return str_at(json_object_get(o, "metadata"), k);
}

static const char *
label(const json_t *o, const char *k)
{
    return str_at(json_object_get(json_object_get(o, "metadata"), "labels"), k);
}

static const char *
annotation(const json_t *o, const char *k)
{
    return str_at(
        json_object_get(json_object_get(o, "metadata"), "annotations"), k);
}

int
dpu_dms_port(int index)
{
    return DMS_PORT_BASE + index;
}

int
dpu_host_index(const json_t *dpu, const json_t *host, struct dpf_error *err)
{
    const char *pci = label(dpu, LABEL_PCI);
    for (int i = 0; pci && i < DPU_MAX_INDEX; i++) {
        char key[96];
        snprintf(key, sizeof key, NFD "/dpu-%d-pci-address", i);
        const char *v = label(host, key);
        if (v && !strcmp(v, pci)) {
            return i;
        }
    }
    dpf_error_set(err, 404, "NotFound",
                  "DPU %s/%s: host node %s has no label " NFD
                  "/dpu-<i>-pci-address with the DPU's PCI address %s "
                  "(is dpulet running on the host?)",
                  meta(dpu, "namespace"), meta(dpu, "name"), meta(host, "name"),
                  pci ? pci : "(no " LABEL_PCI " label)");
    return -ENOENT;
}

const char *
dpu_host_ip(const json_t *host)
{
    const json_t *addrs =
        json_object_get(json_object_get(host, "status"), "addresses");
    size_t i;
    const json_t *a;
    json_array_foreach(addrs, i, a)
    {
        const char *t = str_at(a, "type");
        if (t && !strcmp(t, "InternalIP") && str_at(a, "address")) {
            return str_at(a, "address");
        }
    }
    return str_at(json_array_get(addrs, 0), "address");
}

/* "0000-4b-00" -> "4b:00" (bus:dev, DPF's --target_pci), or NULL. */
static char *
bus_dev(const char *pci)
{
    if (!pci) {
        return NULL;
    }
    const char *s = strchr(pci, '-');
    s = s ? s + 1 : pci;
    char *out = xstrdup(s);
    for (char *p = out; *p; p++) {
        if (*p == '-') {
            *p = ':';
        }
    }
    return out;
}

/* "0000-4b-00" -> "0000:4b:00" (domain kept, for sysfs). */
static char *
dom_bus_dev(const char *pci)
{
    char *out = xstrdup(pci);
    for (char *p = out; *p; p++) {
        if (*p == '-') {
            *p = ':';
        }
    }
    return out;
}

/* What both pods share: metadata, node binding, placement, owner. */
static json_t *
pod_base(const struct dpu_pods_in *in, const char *suffix,
         const char *component)
{
    const char *name = meta(in->dpu, "name");
    const char *node = meta(in->host, "name");
    char *pname = xasprintf("%s-%s", name, suffix);
    json_t *owner = kube_owner_ref(in->dpu, true);
    json_t *tol = json_pack(
        "[{s:s,s:s,s:s},{s:s,s:s,s:s},{s:s,s:s,s:s},{s:s,s:s,s:s}]", "key",
        "node.kubernetes.io/not-ready", "operator", "Exists", "effect",
        "NoExecute", "key", "node.kubernetes.io/not-ready", "operator",
        "Exists", "effect", "NoSchedule", "key",
        "node.kubernetes.io/unreachable", "operator", "Exists", "effect",
        "NoExecute", "key", "node.kubernetes.io/unschedulable", "operator",
        "Exists", "effect", "NoSchedule");
    if (in->taint_key) {
        json_t *t =
            json_pack("{s:s,s:s}", "key", in->taint_key, "operator", "Equal");
        if (in->taint_value) {
            json_object_set_new(t, "value", json_string(in->taint_value));
        }
        if (in->taint_effect) {
            json_object_set_new(t, "effect", json_string(in->taint_effect));
        }
        json_array_append_new(tol, t);
    }
    json_t *pod = json_pack(
        "{s:s,s:s,s:{s:s,s:s,s:{s:s,s:s},s:[o]},"
        "s:{s:s,s:b,s:s,s:{s:{s:{s:[{s:[{s:s,s:s,s:[s]}]}]}}},s:o}}",
        "apiVersion", "v1", "kind", "Pod", "metadata", "name", pname,
        "namespace", meta(in->dpu, "namespace"), "labels", LABEL_POD_DPU, name,
        "app.kubernetes.io/component", component, "ownerReferences", owner,
        "spec", "nodeName", node, "hostNetwork", 1, "restartPolicy", "Always",
        "affinity", "nodeAffinity",
        "requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms",
        "matchFields", "key", "metadata.name", "operator", "In", "values", node,
        "tolerations", tol);
    free(pname);
    return pod;
}

static bool
check_in(const struct dpu_pods_in *in, const char *what, struct dpf_error *err)
{
    if (!in->dpu || !meta(in->dpu, "name") || !meta(in->dpu, "namespace") ||
        !meta(in->dpu, "uid")) {
        dpf_error_set(err, 400, "Invalid",
                      "%s pod: the DPU object lacks name, namespace or uid",
                      what);
        return false;
    }
    if (!in->host || !meta(in->host, "name")) {
        dpf_error_set(err, 400, "Invalid",
                      "%s pod of DPU %s/%s: the host node is not known", what,
                      meta(in->dpu, "namespace"), meta(in->dpu, "name"));
        return false;
    }
    if (!label(in->dpu, LABEL_PCI)) {
        dpf_error_set(err, 422, "Invalid",
                      "%s pod of DPU %s/%s: the DPU has no label " LABEL_PCI
                      " (the DPUSet controller sets it)",
                      what, meta(in->dpu, "namespace"), meta(in->dpu, "name"));
        return false;
    }
    return true;
}

json_t *
dpu_pod_dms(const struct dpu_pods_in *in, struct dpf_error *err)
{
    if (!check_in(in, "DMS", err)) {
        return NULL;
    }
    const char *ip = dpu_host_ip(in->host);
    if (!ip) {
        dpf_error_set(err, 422, "Invalid",
                      "DMS pod of DPU %s/%s: host node %s has no address "
                      "in its status yet",
                      meta(in->dpu, "namespace"), meta(in->dpu, "name"),
                      meta(in->host, "name"));
        return NULL;
    }
    char *bind = strchr(ip, ':')
                     ? xasprintf("[%s]:%d", ip, dpu_dms_port(in->index))
                     : xasprintf("%s:%d", ip, dpu_dms_port(in->index));
    char key[64];
    snprintf(key, sizeof key, "dpu.emu/rshim-%d", in->index);
    const char *emu_rshim = annotation(in->host, key);
    const char *emu_sysfs = annotation(in->host, "dpu.emu/sysfs");
    char *rshim =
        emu_rshim ? xstrdup(emu_rshim) : xasprintf("/dev/rshim%d", in->index);
    char *pci = bus_dev(label(in->dpu, LABEL_PCI));
    /* each DPU's dmsd keeps its state apart: the BFB folder is shared */
    char *state = xasprintf("/bfb/.dms/%s.%s", meta(in->dpu, "namespace"),
                            meta(in->dpu, "name"));
    char *secret = xasprintf("%s-server-secret", meta(in->dpu, "name"));
    json_t *cmd = json_pack(
        "[s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s]",
        in->dmsd_command ? in->dmsd_command : "dmsd", "--bind_address", bind,
        "--auth", "cert", "--ca", CERT_DIR "/ca.crt", "--tls_cert_file",
        CERT_DIR "/tls.crt", "--tls_key_file", CERT_DIR "/tls.key",
        "--image_folder", "/bfb", "--rshim", rshim, "--target_pci", pci,
        "--state_dir", state, "--sysfs", emu_sysfs ? emu_sysfs : "/sys",
        "--exec_timeout", "1800", "--disable_unbind_at_activate",
        "--reboot_status_check", "none");
    json_t *mounts =
        json_pack("[{s:s,s:s,s:b},{s:s,s:s}]", "name", "certs", "mountPath",
                  CERT_DIR, "readOnly", 1, "name", "bfb", "mountPath", "/bfb");
    json_t *vols =
        json_pack("[{s:s,s:{s:s,s:i}},{s:s,s:{s:s,s:s}}]", "name", "certs",
                  "secret", "secretName", secret, "defaultMode", 0400, "name",
                  "bfb", "hostPath", "path", in->bfb_dir ? in->bfb_dir : "/bfb",
                  "type", "DirectoryOrCreate");
    /* the rshim device: /dev on a host, the emulator's directory else */
    if (emu_rshim) {
        json_array_append_new(mounts, json_pack("{s:s,s:s}", "name", "rshim",
                                                "mountPath", emu_rshim));
        json_array_append_new(vols, json_pack("{s:s,s:{s:s}}", "name", "rshim",
                                              "hostPath", "path", emu_rshim));
    } else {
        json_array_append_new(
            mounts, json_pack("{s:s,s:s}", "name", "dev", "mountPath", "/dev"));
        json_array_append_new(vols, json_pack("{s:s,s:{s:s}}", "name", "dev",
                                              "hostPath", "path", "/dev"));
    }
    if (emu_sysfs) {
        json_array_append_new(mounts,
                              json_pack("{s:s,s:s,s:b}", "name", "sysfs",
                                        "mountPath", emu_sysfs, "readOnly", 1));
        json_array_append_new(vols, json_pack("{s:s,s:{s:s}}", "name", "sysfs",
                                              "hostPath", "path", emu_sysfs));
    }
    json_t *pod = pod_base(in, "dms", "dms");
    json_t *c = json_pack(
        "{s:s,s:s,s:o,s:[{s:s,s:i,s:s}],s:o,s:{s:b}}", "name",
        DPU_DMS_CONTAINER, "image", in->dms_image ? in->dms_image : "dpf/dmsd",
        "command", cmd, "ports", "name", "gnmi", "containerPort",
        dpu_dms_port(in->index), "protocol", "TCP", "volumeMounts", mounts,
        "securityContext", "privileged", 1);
    json_t *spec = json_object_get(pod, "spec");
    json_object_set_new(spec, "containers", json_pack("[o]", c));
    json_object_set_new(spec, "volumes", vols);
    free(bind);
    free(rshim);
    free(pci);
    free(state);
    free(secret);
    return pod;
}

json_t *
dpu_pod_hostnetwork(const struct dpu_pods_in *in, struct dpf_error *err)
{
    if (!check_in(in, "host network", err)) {
        return NULL;
    }
    const char *emu_sysfs = annotation(in->host, "dpu.emu/sysfs");
    char *pci = dom_bus_dev(label(in->dpu, LABEL_PCI));
    char vfs[16], mtu[16];
    snprintf(vfs, sizeof vfs, "%d", in->num_vfs > 0 ? in->num_vfs : 16);
    snprintf(mtu, sizeof mtu, "%d", in->vf_mtu > 0 ? in->vf_mtu : 1500);
    json_t *cmd = json_pack("[s,s,s,s,s,s,s,s,s,s,s]",
                            in->hostnetwork_command ? in->hostnetwork_command
                                                    : "dpf-hostnetwork",
                            "--pci", pci, "--num-vfs", vfs, "--mtu", mtu,
                            "--sysfs", emu_sysfs ? emu_sysfs : "/sys",
                            "--ready-file", DPU_HOSTNETWORK_READY_FILE);
    /* /tmp of its own: the ready file is this pod's, not the host's */
    json_t *mounts =
        json_pack("[{s:s,s:s},{s:s,s:s}]", "name", "tmp", "mountPath", "/tmp",
                  "name", "dev", "mountPath", "/dev");
    json_t *vols =
        json_pack("[{s:s,s:{}},{s:s,s:{s:s}}]", "name", "tmp", "emptyDir",
                  "name", "dev", "hostPath", "path", "/dev");
    if (emu_sysfs) {
        json_array_append_new(mounts, json_pack("{s:s,s:s}", "name", "sysfs",
                                                "mountPath", emu_sysfs));
        json_array_append_new(vols, json_pack("{s:s,s:{s:s}}", "name", "sysfs",
                                              "hostPath", "path", emu_sysfs));
    }
    json_t *pod = pod_base(in, "hostnetwork", "hostnetwork");
    json_t *c = json_pack("{s:s,s:s,s:o,s:o,s:{s:b},s:{s:{s:[s,s]},s:i,s:i}}",
                          "name", DPU_HOSTNETWORK_CONTAINER, "image",
                          in->hostnetwork_image ? in->hostnetwork_image
                                                : "dpf/hostnetwork",
                          "command", cmd, "volumeMounts", mounts,
                          "securityContext", "privileged", 1, "readinessProbe",
                          "exec", "command", "ls", DPU_HOSTNETWORK_READY_FILE,
                          "periodSeconds", 5, "initialDelaySeconds", 0);
    json_t *spec = json_object_get(pod, "spec");
    json_object_set_new(spec, "containers", json_pack("[o]", c));
    json_object_set_new(spec, "volumes", vols);
    free(pci);
    return pod;
}
