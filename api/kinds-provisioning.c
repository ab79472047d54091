/* kinds-provisioning: provisioning.dpu.nvidia.com/v1alpha1 — BFB, DPUFlavor,
 * DPUCluster, DPUSet, DPU — with DPF v24.10's CRD rules and the rules of
 * its provisioning webhooks (mbfb/vbfb, vdpu, vdpuflavor, mdpuset/vdpuset),
 * including the delete protection of BFBs and DPUFlavors. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/codecs/quantity.h"
#include "api/schema-node.h"
#include "lib/base/util.h"

#define GROUP "provisioning.dpu.nvidia.com"
#define PROVISIONING_V1ALPHA1 .group = GROUP, .version = "v1alpha1"
#define POWER_CYCLE_KEY "provisioning.dpu.nvidia.com/host-power-cycle-required"

static const struct schema_column ready_phase_age[] = {
    COLUMN_READY,
    {"Phase", "string", ".status.phase", "phase of the cluster", 0, NULL},
    COLUMN_AGE,
    COLUMNS_END,
};

/* NodeEffect: what happens to the host node while its DPU is provisioned. */
static const struct schema_node node_effect = {
    .type = SCHEMA_T_OBJECT,
    DESC("NodeEffect applied to the host node while the DPU is provisioned"),
    DEFAULT("{\"drain\":{\"automaticNodeReboot\":true}}"),
    FIELDS(F("customLabel", &schema_string_map),
           F("drain",
             N_OBJ(FIELDS(F("automaticNodeReboot", N_BOOL(DEFAULT("true")))))),
           F("noEffect", N_BOOL()), F("taint", &schema_taint)),
};

/* At most one of taint / noEffect / customLabel / drain. */
static int
check_node_effect(const json_t *ne, const char *path, struct dpf_error *err)
{
    if (!json_is_object(ne)) {
        return 0;
    }
    int count = 0;
    if (json_object_get(ne, "taint")) {
        count++;
    }
    if (json_is_true(json_object_get(ne, "noEffect"))) {
        count++;
    }
    if (json_object_size(json_object_get(ne, "customLabel"))) {
        count++;
    }
    if (json_object_get(ne, "drain")) {
        count++;
    }
    if (count > 1) {
        schema_err_invalid(err, path, ne,
                           "nodeEffect can only be one of \"taint\", "
                           "\"noEffect\" , \"drain\" and \"customLabel\"");
        return -EINVAL;
    }
    return 0;
}

/* Go's strconv.ParseBool. */
static bool
parse_go_bool(const char *s)
{
    static const char *const ok[] = {"1", "t", "T", "TRUE",  "true",  "True",
                                     "0", "f", "F", "FALSE", "false", "False"};
    for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
        if (!strcmp(s, ok[i])) {
            return true;
        }
    }
    return false;
}

static int
check_power_cycle(const json_t *annotations, const char *path,
                  struct dpf_error *err)
{
    const json_t *v = json_object_get(annotations, POWER_CYCLE_KEY);
    if (!json_is_string(v) || parse_go_bool(json_string_value(v))) {
        return 0;
    }
    char p[256];
    snprintf(p, sizeof p, "%s[%s]", path, POWER_CYCLE_KEY);
    schema_err_invalid(err, p, v, "invalid value \"%s\" for \"%s\"",
                       json_string_value(v), POWER_CYCLE_KEY);
    return -EINVAL;
}

/* ------------------------------------------------------------------ */
/* BFB                                                                  */
/* ------------------------------------------------------------------ */

static const struct schema_column bfb_columns[] = {
    {"Phase", "string", ".status.phase", "phase of the BFB download", 0, NULL},
    COLUMN_AGE,
    COLUMNS_END,
};

/* mbfb.kb.io: spec.fileName defaults to <namespace>-<name>.bfb. */
static void
bfb_defaults(json_t *obj)
{
    const char *fn = schema_get_str(obj, "spec.fileName");
    if (fn && *fn) {
        return;
    }
    const char *ns = schema_get_str(obj, "metadata.namespace");
    const char *name = schema_get_str(obj, "metadata.name");
    json_t *spec = schema_ensure_obj(obj, "spec");
    char *v = xasprintf("%s-%s.bfb", ns ? ns : "", name ? name : "");
    json_object_set_new(spec, "fileName", json_string(v));
    free(v);
}

/* Collects names of objects whose field at `path` equals `want`. */
struct ref_scan {
    const char *path;  /* dotted path of the reference */
    const char *want;  /* the name being deleted */
    struct dbuf names; /* "a b c" */
};

static int
ref_scan_cb(void *arg, const json_t *obj)
{
    struct ref_scan *rs = arg;
    const char *v = schema_get_str(obj, rs->path);
    if (v && !strcmp(v, rs->want)) {
        const char *n = schema_get_str(obj, "metadata.name");
        dbuf_printf(&rs->names, "%s%s", rs->names.len ? " " : "", n ? n : "");
    }
    return 0;
}

static int
deny_delete(struct dpf_error *err, const char *webhook, const char *msg)
{
    dpf_error_set(err, 403, "Forbidden",
                  "admission webhook \"%s\" denied the request: %s", webhook,
                  msg);
    dpf_error_add_cause(err, DPF_CAUSE_FORBIDDEN, "metadata.name", "%s", msg);
    return -EPERM;
}

/* Is any object of plural in ns referring to name at path? */
static int
scan_refs(const struct schema_reader *reader, const char *plural,
          const char *ns, const char *path, const char *name, struct dbuf *out)
{
    struct ref_scan rs = {.path = path, .want = name};
    dbuf_init(&rs.names);
    int rc = reader->list(reader->arg, GROUP, plural, ns, ref_scan_cb, &rs);
    *out = rs.names;
    return rc;
}

/* vdpuflavor.kb.io on delete: not while a DPUSet's template or a DPU of
 * the flavor's namespace names it. */
static int
dpuflavor_validate_delete(const json_t *obj, const struct schema_reader *reader,
                          struct dpf_error *err)
{
    const char *name = schema_get_str(obj, "metadata.name");
    const char *ns = schema_get_str(obj, "metadata.namespace");
    if (!name || !reader) {
        return 0;
    }
    static const struct {
        const char *plural, *path, *kinds;
    } users[] = {
        {"dpusets", "spec.dpuTemplate.spec.dpuFlavor", "DPUSet(s)"},
        {"dpus", "spec.dpuFlavor", "DPU(s)"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(users); i++) {
        struct dbuf refs;
        char msg[768];
        int rc = 0;
        scan_refs(reader, users[i].plural, ns, users[i].path, name, &refs);
        if (refs.len) {
            snprintf(msg, sizeof msg,
                     "DPUFlavor is being referred to by %s [%s], you must "
                     "delete the %s first",
                     users[i].kinds, refs.data, users[i].kinds);
            rc = deny_delete(err, "vdpuflavor.kb.io", msg);
        }
        dbuf_free(&refs);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

/* vbfb.kb.io on delete: not while a DPUSet's template names the BFB. DPF
 * lists DPUSets of every namespace; a BFB can only be used from its own
 * namespace, so we look there. */
static int
bfb_validate_delete(const json_t *obj, const struct schema_reader *reader,
                    struct dpf_error *err)
{
    const char *name = schema_get_str(obj, "metadata.name");
    const char *ns = schema_get_str(obj, "metadata.namespace");
    if (!name || !reader) {
        return 0;
    }
    struct dbuf refs;
    char msg[768];
    int rc = 0;
    scan_refs(reader, "dpusets", ns, "spec.dpuTemplate.spec.bfb.name", name,
              &refs);
    if (refs.len) {
        snprintf(msg, sizeof msg,
                 "being referred to by DPUSet(s) [%s], you must delete the "
                 "DPUSet(s) first",
                 refs.data);
        rc = deny_delete(err, "vbfb.kb.io", msg);
    }
    dbuf_free(&refs);
    return rc;
}

static const struct schema_doc bfb_docs[] = {
    {"", "A BlueField bundle (BFB): the DPU operating system image DPF "
         "downloads once and installs on DPUs."},
    {"spec",
     "Where the bundle comes from and the name it is stored under. Immutable."},
    {"spec.fileName", "File name in the shared BFB storage, ending in .bfb; "
                      "defaults to <namespace>-<name>.bfb."},
    {"spec.url", "http:// or https:// URL of the .bfb file to download."},
    {"status", "Download state of the bundle."},
    {"status.phase", "Initializing, Downloading, Ready, Deleting or Error."},
    {"status.bytesDownloaded", "Bytes downloaded so far."},
    {"status.totalBytes", "Size of the bundle, when the server announced it."},
    {"status.downloadPercent", "Download progress in percent."},
    {"status.sha256", "SHA-256 of the downloaded bundle."},
    {NULL, NULL},
};

static const struct schema_kind kind_bfb = {
    .docs = bfb_docs,
    PROVISIONING_V1ALPHA1,
    KIND_NAMES("BFB", "bfbs", "bfb"),
    .namespaced = true,
    .has_status = true,
    .columns = bfb_columns,
    .root = KIND_ROOT(
        F("spec",
          N_OBJ(DESC("BFBSpec defines the BFB to download"),
                IMMUTABLE("Value is immutable"),
                FIELDS(F("fileName",
                         N_STR(DESC("file name of the BFB in the cache; "
                                    "defaults to <namespace>-<name>.bfb"),
                               PATTERN("^[A-Za-z0-9\\_\\-\\.]+\\.bfb$"))),
                       R("url", N_STR(DESC("http(s) URL of the BFB"),
                                      PATTERN("^(http|https)://.+\\.bfb$")))))),
        F("status",
          N_OBJ(
              DEFAULT("{\"phase\":\"Initializing\"}"),
              FIELDS(R("phase", N_STR(ENUM("Initializing", "Downloading",
                                           "Ready", "Deleting", "Error"),
                                      DEFAULT("\"Initializing\""))),
                     /* dpf additions (not in DPF's CRD): the BFB
                     * controller's progress, checksum and its Ready
                     * condition (docs/controllers.md). */
                     F("conditions", &schema_conditions),
                     F("bytesDownloaded",
                       N_INT(DESC("bytes of the file downloaded so far"),
                             FORMAT("int64"), MINIMUM(0))),
                     F("totalBytes", N_INT(DESC("size of the file, when known"),
                                           FORMAT("int64"), MINIMUM(0))),
                     F("downloadPercent",
                       N_INT(DESC("bytesDownloaded as a percentage of "
                                  "totalBytes"),
                             FORMAT("int32"), MINIMUM(0), MAXIMUM(100))),
                     F("sha256",
                       N_STR(DESC("SHA-256 of the downloaded file (hex)"),
                             PATTERN("^[0-9a-f]{64}$"))))))),
    .set_defaults = bfb_defaults,
    .validate_delete = bfb_validate_delete,
};

/* ------------------------------------------------------------------ */
/* DPUFlavor                                                            */
/* ------------------------------------------------------------------ */

static bool
quantity_of(const json_t *v, struct quantity *q)
{
    char buf[32];
    const char *s = json_string_value(v);
    if (json_is_integer(v)) {
        snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(v));
        s = buf;
    }
    return s && quantity_parse(s, q) == 0;
}

/* vdpuflavor.kb.io (create): resources and nvconfig rules. */
static int
dpuflavor_validate(const json_t *obj, const json_t *old, struct dpf_error *err)
{
    if (old) {
        return 0; /* the spec is immutable; DPF checks only on create */
    }
    int rc = 0;
    const json_t *total = schema_get(obj, "spec.dpuResources");
    const json_t *reserved = schema_get(obj, "spec.systemReservedResources");
    if (reserved && !total) {
        schema_err_forbidden(err, "spec.systemReservedResources",
                             "spec.systemReservedResources must not be "
                             "specified if spec.dpuResources are not "
                             "specified");
        rc = -EINVAL;
    } else if (reserved && total) {
        struct dbuf need;
        dbuf_init(&need);
        const char *key;
        const json_t *rv;
        json_object_foreach((json_t *) reserved, key, rv)
        {
            struct quantity r, t = {0}, diff;
            if (!quantity_of(rv, &r)) {
                continue; /* the pattern check reports it */
            }
            const json_t *tv = json_object_get(total, key);
            if (tv && !quantity_of(tv, &t)) {
                continue;
            }
            quantity_sub(&t, &r, &diff);
            if (diff.nano < 0) {
                char buf[64];
                diff.nano = -diff.nano;
                diff.binary = r.binary;
                dbuf_printf(&need, "%s%s: %s", need.len ? " " : "", key,
                            quantity_format(&diff, buf, sizeof buf));
            }
        }
        if (need.len) {
            schema_err_invalid(err, "spec.systemReservedResources", reserved,
                               "reserved resource specified in "
                               "spec.systemReservedResources exceed the ones "
                               "defined in spec.dpuResources: Additional "
                               "resources needed in spec.dpuResources: [%s]",
                               need.data);
            rc = -EINVAL;
        }
        dbuf_free(&need);
    }
    const json_t *nv = schema_get(obj, "spec.nvconfig");
    if (json_array_size(nv) > 1) {
        dpf_error_add_cause(err, DPF_CAUSE_TOO_MANY, "spec.nvconfig",
                            "Too many: %zu: there must be at most one element "
                            "in nvconfig, and the element applies to all "
                            "devices on a host",
                            json_array_size(nv));
        rc = -EINVAL;
    } else if (json_array_size(nv) == 1) {
        const json_t *dev = json_object_get(json_array_get(nv, 0), "device");
        const char *d = json_string_value(dev);
        if (d) {
            while (*d == ' ' || *d == '\t' || *d == '\n') {
                d++;
            }
            size_t n = strlen(d);
            while (n &&
                   (d[n - 1] == ' ' || d[n - 1] == '\t' || d[n - 1] == '\n')) {
                n--;
            }
            if (n != 1 || d[0] != '*') {
                schema_err_invalid(err, "spec.nvconfig[0].device", dev,
                                   "nvconfig[*].device must be \"*\"");
                rc = -EINVAL;
            }
        }
    }
    return rc;
}

static const struct schema_doc dpuflavor_docs[] = {
    {"", "How DPUs are configured when DPF installs them: kernel, sysctl, "
         "firmware, OVS, files and resources. Immutable."},
    {"spec", "The configuration; immutable once created."},
    {"spec.bfcfgParameters",
     "Raw lines placed at the top of bf.cfg; ubuntu_PASSWORD=<x> sets the "
     "password of user ubuntu."},
    {"spec.configFiles",
     "Files written on the DPU at first boot (cloud-init write_files)."},
    {"spec.configFiles.operation",
     "override replaces the file, append adds to it."},
    {"spec.configFiles.path", "Absolute path of the file on the DPU."},
    {"spec.configFiles.permissions", "File mode, e.g. \"0755\"."},
    {"spec.configFiles.raw", "Content of the file."},
    {"spec.containerdConfig", "containerd settings on the DPU."},
    {"spec.containerdConfig.registryEndpoint",
     "Registry mirror used for nvcr.io images."},
    {"spec.dpuResources", "Total resources of the DPU (cpu, memory, ...)."},
    {"spec.grub", "Boot loader settings."},
    {"spec.grub.kernelParameters",
     "Kernel command line parameters, joined with spaces."},
    {"spec.nvconfig",
     "Firmware settings applied with mlxconfig; at most one entry."},
    {"spec.nvconfig.device",
     "Device to configure; only * (every device) is supported."},
    {"spec.nvconfig.hostPowerCycleRequired",
     "Whether the settings need a host power cycle (informational)."},
    {"spec.nvconfig.parameters",
     "mlxconfig parameters as NAME=VALUE, e.g. NUM_OF_VFS=16."},
    {"spec.ovs", "Open vSwitch settings."},
    {"spec.ovs.rawConfigScript",
     "Script that configures OVS, run at first boot."},
    {"spec.sysctl", "Kernel parameters."},
    {"spec.sysctl.parameters",
     "sysctl settings as name=value, written to /etc/sysctl.d."},
    {"spec.systemReservedResources", "Resources kept for the system; needs "
                                     "dpuResources and may not exceed them."},
    {NULL, NULL},
};

static const struct schema_kind kind_dpuflavor = {
    .docs = dpuflavor_docs,
    PROVISIONING_V1ALPHA1,
    KIND_NAMES("DPUFlavor", "dpuflavors", "dpuflavor"),
    .namespaced = true,
    .has_status = false,
    .columns = schema_columns_age,
    .root = KIND_ROOT(F(
        "spec",
        N_OBJ(IMMUTABLE("DPUFlavor spec is immutable"),
              FIELDS(F("bfcfgParameters", &schema_string_list),
                     F("configFiles",
                       N_ARR(N_OBJ(FIELDS(
                           F("operation", N_STR(ENUM("override", "append"))),
                           F("path", N_STR()), F("permissions", N_STR()),
                           F("raw", N_STR()))))),
                     F("containerdConfig",
                       N_OBJ(FIELDS(F("registryEndpoint", N_STR())))),
                     F("dpuResources", &schema_resource_list),
                     F("grub", N_OBJ(FIELDS(F("kernelParameters",
                                              &schema_string_list)))),
                     F("nvconfig", N_ARR(N_OBJ(FIELDS(
                                       F("device", N_STR()),
                                       F("hostPowerCycleRequired", N_BOOL()),
                                       F("parameters", &schema_string_list))))),
                     F("ovs", N_OBJ(FIELDS(F("rawConfigScript", N_STR())))),
                     F("sysctl",
                       N_OBJ(FIELDS(F("parameters", &schema_string_list)))),
                     F("systemReservedResources", &schema_resource_list))))),
    .validate = dpuflavor_validate,
    .validate_delete = dpuflavor_validate_delete,
};

/* ------------------------------------------------------------------ */
/* DPUCluster                                                           */
/* ------------------------------------------------------------------ */

static const struct schema_column dpucluster_columns[] = {
    COLUMN_READY,
    {"Phase", "string", ".status.phase", "phase of the cluster", 0, NULL},
    {"Type", "string", ".spec.type", "type of the cluster", 0, NULL},
    {"MaxNodes", "integer", ".spec.maxNodes", "max amount of nodes", 0, NULL},
    {"Version", "string", ".spec.version", "Kubernetes control-plane version",
     0, NULL},
    COLUMN_AGE,
    COLUMNS_END,
};

static const struct schema_doc dpucluster_docs[] = {
    {"",
     "A Kubernetes cluster the DPUs join as nodes, and how DPF reaches it."},
    {"spec", "Type and shape of the DPU cluster."},
    {"spec.clusterEndpoint", "How the cluster's API server is reached."},
    {"spec.clusterEndpoint.keepalived",
     "A virtual IP held by keepalived on the control-plane nodes."},
    {"spec.clusterEndpoint.keepalived.interface",
     "Interface keepalived announces the virtual IP on."},
    {"spec.clusterEndpoint.keepalived.vip", "The virtual IP address."},
    {"spec.clusterEndpoint.keepalived.virtualRouterID",
     "VRRP virtual router id, 1 to 255."},
    {"spec.clusterEndpoint.keepalived.nodeSelector",
     "Control-plane nodes that run keepalived."},
    {"spec.kubeconfig",
     "Secret in this namespace whose admin.conf key holds the cluster's "
     "kubeconfig; may change only from empty."},
    {"spec.maxNodes", "Most DPUs the cluster takes, 1 to 1000 (default 1000)."},
    {"spec.type", "Cluster manager that provides it: embedded (dpf-server "
                  "hosts it; kamaji means the same here), static, or a "
                  "vendor type with a / in it."},
    {"spec.version", "Kubernetes version of the control plane, e.g. v1.30.2."},
    {"status", "State of the cluster."},
    {"status.phase", "Pending, Creating, Ready, NotReady or Failed."},
    {NULL, NULL},
};

static const struct schema_kind kind_dpucluster = {
    .docs = dpucluster_docs,
    PROVISIONING_V1ALPHA1,
    KIND_NAMES("DPUCluster", "dpuclusters", "dpucluster"),
    .namespaced = true,
    .has_status = true,
    .columns = dpucluster_columns,
    .root = KIND_ROOT(
        R("spec",
          N_OBJ(FIELDS(
              F("clusterEndpoint",
                N_OBJ(FIELDS(
                    F("keepalived",
                      N_OBJ(FIELDS(R("interface", N_STR(MINLEN(1))),
                                   F("nodeSelector", &schema_string_map),
                                   R("vip", N_STR()),
                                   R("virtualRouterID",
                                     N_INT(MINIMUM(1), MAXIMUM(255))))))))),
              F("kubeconfig", N_STR(IMMUTABLE("kubeconfig is immutable"),
                                    .immutable_unless_empty = true)),
              F("maxNodes", N_INT(MINIMUM(1), MAXIMUM(1000), DEFAULT("1000"))),
              R("type", N_STR(PATTERN("kamaji|static|embedded|[^/]+/.*"))),
              R("version", N_STR())))),
        F("status", N_OBJ(DEFAULT("{\"phase\":\"Pending\"}"),
                          FIELDS(F("conditions", &schema_conditions),
                                 R("phase", N_STR(DEFAULT("\"Pending\""))))))),
};

/* ------------------------------------------------------------------ */
/* DPUSet                                                               */
/* ------------------------------------------------------------------ */

/* mdpuset.kb.io */
static void
dpuset_defaults(json_t *obj)
{
    json_t *spec = schema_ensure_obj(obj, "spec");
    json_t *strategy = json_object_get(spec, "strategy");
    if (!json_is_object(strategy)) {
        json_object_set_new(spec, "strategy",
                            json_pack("{s:s}", "type", "Recreate"));
    } else {
        const char *type = schema_get_str(strategy, "type");
        if (type && !strcmp(type, "RollingUpdate") &&
            !json_object_get(strategy, "rollingUpdate")) {
            json_object_set_new(strategy, "rollingUpdate",
                                json_pack("{s:i}", "maxUnavailable", 1));
        }
    }
    json_t *tspec = schema_ensure_obj(spec, "dpuTemplate.spec");
    if (!json_object_get(tspec, "nodeEffect")) {
        json_object_set_new(tspec, "nodeEffect",
                            json_pack("{s:b}", "noEffect", 1));
    }
}

static int
check_max_unavailable(const json_t *v, struct dpf_error *err)
{
    const char *path = "spec.strategy.rollingUpdate.maxUnavailable";
    if (json_is_integer(v)) {
        if (json_integer_value(v) <= 0) {
            schema_err_invalid(err, path, v, "must be greater than 0");
            return -EINVAL;
        }
        return 0;
    }
    const char *s = json_string_value(v);
    size_t n = s ? strlen(s) : 0;
    char *end = NULL;
    long pct = 0;
    if (n >= 2 && s[n - 1] == '%') {
        pct = strtol(s, &end, 10);
    }
    if (!end || end != s + n - 1) {
        schema_err_invalid(err, path, v,
                           "must be an integer or a percentage (e.g. 10%%)");
        return -EINVAL;
    }
    if (pct <= 0 || pct > 100) {
        schema_err_invalid(err, path, v, "must be in range (0%%, 100%%]");
        return -EINVAL;
    }
    return 0;
}

/* vdpuset.kb.io */
static int
dpuset_validate(const json_t *obj, const json_t *old, struct dpf_error *err)
{
    int rc = 0;
    const char *type = schema_get_str(obj, "spec.strategy.type");
    if (type && !strcmp(type, "RollingUpdate")) {
        const json_t *mu =
            schema_get(obj, "spec.strategy.rollingUpdate.maxUnavailable");
        if (!mu) {
            schema_err_required(err,
                                "spec.strategy.rollingUpdate.maxUnavailable",
                                "required when strategy type is "
                                "RollingUpdate");
            rc = -EINVAL;
        } else if (check_max_unavailable(mu, err) < 0) {
            rc = -EINVAL;
        }
    }
    if (check_node_effect(schema_get(obj, "spec.dpuTemplate.spec.nodeEffect"),
                          "spec.dpuTemplate.spec.nodeEffect", err) < 0) {
        rc = -EINVAL;
    }
    if (!old &&
        check_power_cycle(schema_get(obj, "spec.dpuTemplate.annotations"),
                          "spec.dpuTemplate.annotations", err) < 0) {
        rc = -EINVAL;
    }
    return rc;
}

static const struct schema_doc dpuset_docs[] = {
    {"", "A set of DPUs, one per selected host node and DPU, provisioned from "
         "one template and updated by a strategy."},
    {"spec", "Which DPUs to manage and how to provision and update them."},
    {"spec.nodeSelector",
     "Host nodes whose DPUs belong to the set; empty for every node."},
    {"spec.dpuSelector",
     "Which DPU of a node to take, by its NFD labels "
     "(feature.node.kubernetes.io/dpu-<N>-...); empty takes DPU 0."},
    {"spec.dpuTemplate", "Template of the DPU objects the set creates."},
    {"spec.dpuTemplate.annotations",
     "Annotations copied to each DPU, e.g. "
     "provisioning.dpu.nvidia.com/host-power-cycle-required."},
    {"spec.dpuTemplate.spec", "Specification of each DPU."},
    {"spec.dpuTemplate.spec.bfb", "The BFB to install on each DPU."},
    {"spec.dpuTemplate.spec.bfb.name", "Name of the BFB in this namespace."},
    {"spec.dpuTemplate.spec.cluster", "How DPUs join their DPU cluster."},
    {"spec.dpuTemplate.spec.cluster.nodeLabels",
     "Labels put on each DPU's node in the DPU cluster; changes are applied in "
     "place."},
    {"spec.dpuTemplate.spec.dpuFlavor",
     "Name of the DPUFlavor that configures each DPU."},
    {"spec.strategy", "How DPUs are replaced when the template changes: "
                      "Recreate (all at once, the default) or RollingUpdate."},
    {"spec.strategy.type",
     "Recreate replaces every DPU at once; RollingUpdate a few at a time."},
    {"spec.strategy.rollingUpdate", "Settings of a RollingUpdate."},
    {"spec.strategy.rollingUpdate.maxUnavailable",
     "Most DPUs being updated at once: a number above 0 or a percentage in "
     "(0%, 100%]; default 1."},
    {"status", "Observed state of the set."},
    {NULL, NULL},
};

static const struct schema_kind kind_dpuset = {
    .docs = dpuset_docs,
    PROVISIONING_V1ALPHA1,
    KIND_NAMES("DPUSet", "dpusets", "dpuset"),
    .namespaced = true,
    .has_status = true,
    .columns = schema_columns_age,
    .root = KIND_ROOT(
        F("spec",
          N_OBJ(FIELDS(
              F("dpuSelector", &schema_string_map),
              F("dpuTemplate",
                N_OBJ(FIELDS(
                    F("annotations", &schema_string_map),
                    F("spec",
                      N_OBJ(FIELDS(
                          F("automaticNodeReboot", N_BOOL(DEFAULT("true"))),
                          F("bfb", N_OBJ(FIELDS(F("name", N_STR())))),
                          F("cluster",
                            N_OBJ(FIELDS(F("nodeLabels", &schema_string_map)))),
                          F("dpuFlavor", N_STR()),
                          F("nodeEffect", &node_effect))))))),
              F("nodeSelector", &schema_label_selector),
              F("strategy",
                N_OBJ(FIELDS(F("rollingUpdate",
                               N_OBJ(FIELDS(F("maxUnavailable", N_IOS())))),
                             F("type", N_STR(ENUM("Recreate", "RollingUpdate"),
                                             DEFAULT("\"Recreate\""))))))))),
        F("status", N_OBJ(FIELDS(F("dpuStatistics", N_MAP(N_INT())))))),
    .validate = dpuset_validate,
    .set_defaults = dpuset_defaults,
};

/* ------------------------------------------------------------------ */
/* DPU                                                                  */
/* ------------------------------------------------------------------ */

/* vdpu.kb.io */
static int
dpu_validate(const json_t *obj, const json_t *old, struct dpf_error *err)
{
    int rc = 0;
    if (check_node_effect(schema_get(obj, "spec.nodeEffect"), "spec.nodeEffect",
                          err) < 0) {
        rc = -EINVAL;
    }
    if (!old && check_power_cycle(schema_get(obj, "metadata.annotations"),
                                  "metadata.annotations", err) < 0) {
        rc = -EINVAL;
    }
    return rc;
}

static const struct schema_doc dpu_docs[] = {
    {"", "One BlueField DPU in a host node, which DPF installs, configures and "
         "joins to a DPU cluster."},
    {"spec", "Which DPU this is and what to install on it."},
    {"spec.bfb", "Name of the BFB in this namespace to install."},
    {"spec.cluster", "The DPU cluster the DPU joins."},
    {"spec.cluster.name",
     "Name of the DPUCluster; filled by DPF when empty, immutable once set."},
    {"spec.cluster.namespace",
     "Namespace of the DPUCluster; immutable once set."},
    {"spec.cluster.nodeLabels",
     "Labels put on the DPU's node in the DPU cluster."},
    {"spec.dpuFlavor",
     "Name of the DPUFlavor in this namespace that configures the DPU."},
    {"spec.nodeName", "Host node the DPU is in. Immutable."},
    {"spec.pciAddress", "PCI address of the DPU on the host. Immutable."},
    {"status", "Provisioning state of the DPU."},
    {"status.phase",
     "Where provisioning is: Initializing, Node Effect, Pending, DMS "
     "Deployment, OS Installing, DPU Cluster Config, Host Network "
     "Configuration, Ready, Error, Deleting or Rebooting."},
    {"status.bfbVersion", "Version of the installed BFB."},
    {"status.firmware", "Firmware versions of the DPU."},
    {"status.firmware.bmc", "BMC firmware version."},
    {"status.firmware.nic", "NIC firmware version."},
    {"status.firmware.uefi", "UEFI firmware version."},
    {"status.pciDevice", "PCI device of the DPU on the host."},
    {"status.requiredReset", "Whether the host must be reset to finish."},
    {"status.attempts", "How many times the DPU was retried after Error."},
    {"status.lastError", "Reason and message of the last error."},
    {"status.hostReboot",
     "The host reboot the DPU controller asked the host's BMC for (ipmitool "
     "in the DMS pod) in this Rebooting phase, so that it is asked once."},
    {"status.hostReboot.command", "The command run in the DMS pod."},
    {"status.hostReboot.osInstalledAt",
     "The OSInstalled condition's lastTransitionTime of the install this "
     "reboot belongs to."},
    {"status.hostReboot.requestedAt", "When the reboot was asked for."},
    {"status.installProgress",
     "Progress of the OS install: bytes of the BFB sent to DMS and the "
     "step."},
    {"status.installProgress.bytesSent", "Bytes sent to DMS so far."},
    {"status.installProgress.bytesTotal", "Bytes to send."},
    {"status.installProgress.step",
     "Install step: mode, bfb, bfcfg, activate, reboot."},
    {NULL, NULL},
};

static const struct schema_kind kind_dpu = {
    .docs = dpu_docs,
    PROVISIONING_V1ALPHA1,
    KIND_NAMES("DPU", "dpus", "dpu"),
    .namespaced = true,
    .has_status = true,
    .columns = ready_phase_age,
    .root = KIND_ROOT(
        F("spec",
          N_OBJ(FIELDS(
              F("automaticNodeReboot", N_BOOL(DEFAULT("true"))),
              R("bfb", N_STR()),
              F("cluster",
                N_OBJ(FIELDS(
                    F("name", N_STR(IMMUTABLE("Value is immutable"))),
                    F("namespace", N_STR(IMMUTABLE("Value is immutable"))),
                    F("nodeLabels", &schema_string_map)))),
              F("dpuFlavor", N_STR()), F("nodeEffect", &node_effect),
              R("nodeName", N_STR(IMMUTABLE("Value is immutable"))),
              F("pciAddress", N_STR(IMMUTABLE("Value is immutable")))))),
        F("status",
          N_OBJ(DEFAULT("{\"phase\":\"Initializing\"}"),
                FIELDS(
                    /* dpf additions (not in DPF's CRD): retries after
                     * Error and the install's progress, so a restarted
                     * controller resumes (docs/controllers.md). */
                    F("attempts", N_INT(DESC("retries after Error so far"),
                                        FORMAT("int32"), MINIMUM(0))),
                    F("bfbVersion", N_STR()),
                    F("conditions", &schema_conditions),
                    F("hostReboot",
                      N_OBJ(DESC("the host reboot the controller asked "
                                 "for in this Rebooting phase"),
                            FIELDS(F("command", N_STR()),
                                   F("osInstalledAt", N_STR()),
                                   F("requestedAt", N_STR())))),
                    F("installProgress",
                      N_OBJ(DESC("progress of the OS install"),
                            FIELDS(F("bytesSent",
                                     N_INT(FORMAT("int64"), MINIMUM(0))),
                                   F("bytesTotal",
                                     N_INT(FORMAT("int64"), MINIMUM(0))),
                                   F("step", N_STR())))),
                    F("lastError",
                      N_STR(DESC("the last error that sent the DPU to "
                                 "Error"))),
                    F("firmware",
                      N_OBJ(FIELDS(F("bmc", N_STR()), F("nic", N_STR()),
                                   F("uefi", N_STR())))),
                    F("pciDevice", N_STR()),
                    R("phase", N_STR(ENUM("Initializing", "Node Effect",
                                          "Pending", "DMS Deployment",
                                          "OS Installing", "DPU Cluster Config",
                                          "Host Network Configuration", "Ready",
                                          "Error", "Deleting", "Rebooting"),
                                     DEFAULT("\"Initializing\""))),
                    F("requiredReset", N_BOOL()))))),
    .validate = dpu_validate,
};

/* ------------------------------------------------------------------ */
/* delete rules                                                         */
/* ------------------------------------------------------------------ */

SCHEMA_GROUP_1(schema_group_provisioning, GROUP, "v1alpha1", &kind_bfb,
               &kind_dpuflavor, &kind_dpucluster, &kind_dpuset, &kind_dpu);
