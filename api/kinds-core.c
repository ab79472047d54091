/* kinds-core: the core group (v1) kinds the platform serves itself —
 * Namespace, Node, Pod, ServiceAccount, Event here; Secret and ConfigMap
 * in kinds-core-data.c — and the core group's registry entry.
 *
 * Core kinds are looser than the DPF kinds: pod specs and templates keep
 * unknown fields, but what the platform relies on is declared and checked
 * (names, containers, Pod spec immutability). Printer columns follow
 * kubectl's built-in printers, computed in C where JSONPath cannot express
 * them. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api/schema-node.h"
#include "lib/base/util.h"

#define CORE_V1 .group = "", .version = "v1", .builtin = true

/* ------------------------------------------------------------------ */
/* Namespace                                                            */
/* ------------------------------------------------------------------ */

static const struct schema_column namespace_columns[] = {
    {"Status", "string", ".status.phase", "The namespace phase", 0, NULL},
    COLUMN_AGE,
    COLUMNS_END,
};

/* Kubernetes' NamespaceLifecycle admission: the namespaces the system
 * itself lives in may not be deleted (kube-apiserver answers 403). */
static int
namespace_validate_delete(const json_t *obj, const struct schema_reader *reader,
                          struct dpf_error *err)
{
    static const char *const kept[] = {"default", "kube-system", "kube-public"};
    const char *name = schema_get_str(obj, "metadata.name");
    (void) reader;
    for (size_t i = 0; name && i < ARRAY_SIZE(kept); i++) {
        if (!strcmp(name, kept[i])) {
            dpf_error_set(err, 403, "Forbidden",
                          "namespaces \"%s\" is forbidden: this namespace "
                          "may not be deleted",
                          name);
            return -EPERM;
        }
    }
    return 0;
}

static const struct schema_kind kind_namespace = {
    CORE_V1,
    KIND_NAMES("Namespace", "namespaces", "namespace"),
    .short_names = (const char *const[]){"ns", NULL},
    .namespaced = false,
    .name_is_label = true,
    .has_status = true,
    .columns = namespace_columns,
    .root = KIND_ROOT(
        F("spec",
          N_OBJ(FIELDS(F("finalizers", N_ARR(&schema_string, ATOMIC_LIST))))),
        F("status", N_OBJ(FIELDS(F("phase", N_STR(ENUM("Active", "Terminating"),
                                                  DEFAULT("\"Active\""))),
                                 F("conditions", &schema_core_conditions)),
                          DEFAULT("{}")))),
    .validate_delete = namespace_validate_delete,
};

/* ------------------------------------------------------------------ */
/* Node                                                                 */
/* ------------------------------------------------------------------ */

static const json_t *
find_condition(const json_t *obj, const char *type)
{
    const json_t *conds = schema_get(obj, "status.conditions");
    size_t i;
    const json_t *c;
    json_array_foreach(conds, i, c)
    {
        const char *t = schema_get_str(c, "type");
        if (t && !strcmp(t, type)) {
            return c;
        }
    }
    return NULL;
}

static char *
node_status(const json_t *obj)
{
    const json_t *ready = find_condition(obj, "Ready");
    const char *st = ready ? schema_get_str(ready, "status") : NULL;
    const char *word = !st                    ? "Unknown"
                       : !strcmp(st, "True")  ? "Ready"
                       : !strcmp(st, "False") ? "NotReady"
                                              : "Unknown";
    if (json_is_true(schema_get(obj, "spec.unschedulable"))) {
        return xasprintf("%s,SchedulingDisabled", word);
    }
    return xstrdup(word);
}

static char *
node_roles(const json_t *obj)
{
    const json_t *labels = schema_get(obj, "metadata.labels");
    struct dbuf b;
    dbuf_init(&b);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *) labels, key, v)
    {
        const char *role = NULL;
        if (str_has_prefix(key, "node-role.kubernetes.io/")) {
            role = key + strlen("node-role.kubernetes.io/");
        } else if (!strcmp(key, "kubernetes.io/role")) {
            role = json_string_value(v);
        }
        if (role && *role) {
            dbuf_printf(&b, "%s%s", b.len ? "," : "", role);
        }
    }
    if (!b.len) {
        dbuf_puts(&b, "<none>");
    }
    return dbuf_steal(&b, NULL);
}

static char *
node_internal_ip(const json_t *obj)
{
    const json_t *addrs = schema_get(obj, "status.addresses");
    size_t i;
    const json_t *a;
    json_array_foreach(addrs, i, a)
    {
        const char *t = schema_get_str(a, "type");
        if (t && !strcmp(t, "InternalIP")) {
            const char *addr = schema_get_str(a, "address");
            return xstrdup(addr ? addr : "");
        }
    }
    return xstrdup("<none>");
}

static const struct schema_column node_columns[] = {
    {"Status", "string", NULL, "Ready condition", 0, node_status},
    {"Roles", "string", NULL, "node-role labels", 0, node_roles},
    COLUMN_AGE,
    COLUMN("Version", "string", ".status.nodeInfo.kubeletVersion"),
    {"Internal-IP", "string", NULL, NULL, 1, node_internal_ip},
    {"OS-Image", "string", ".status.nodeInfo.osImage", NULL, 1, NULL},
    {"Kernel-Version", "string", ".status.nodeInfo.kernelVersion", NULL, 1,
     NULL},
    {"Container-Runtime", "string", ".status.nodeInfo.containerRuntimeVersion",
     NULL, 1, NULL},
    COLUMNS_END,
};

static const struct schema_kind kind_node = {
    CORE_V1,
    KIND_NAMES("Node", "nodes", "node"),
    .short_names = (const char *const[]){"no", NULL},
    .namespaced = false,
    .has_status = true,
    .columns = node_columns,
    .root = KIND_ROOT(
        F("spec",
          N_OBJ(FIELDS(
              F("podCIDR", N_STR()),
              F("podCIDRs",
                N_ARR(&schema_string, LIST_SET, PATCH_STRATEGY("merge"))),
              F("providerID", N_STR()), F("unschedulable", N_BOOL()),
              F("taints",
                N_ARR(N_OBJ(FIELDS(R("key", N_STR()), F("value", N_STR()),
                                   R("effect", N_STR(ENUM("NoSchedule",
                                                          "PreferNoSchedule",
                                                          "NoExecute"))),
                                   F("timeAdded", N_STR(FORMAT("date-time"))))),
                      ATOMIC_LIST)),
              F("configSource", N_ANY()), F("externalID", N_STR())))),
        F("status",
          N_OBJ(PRESERVE,
                FIELDS(
                    F("capacity", &schema_resource_list),
                    F("allocatable", &schema_resource_list),
                    F("conditions",
                      N_ARR(N_OBJ(PRESERVE,
                                  FIELDS(R("type", N_STR()),
                                         R("status", N_STR(ENUM("True", "False",
                                                                "Unknown"))))),
                            LIST_MAP("type"), PATCH_MERGE_KEY("type"))),
                    F("addresses",
                      N_ARR(N_OBJ(FIELDS(R("type", N_STR()),
                                         R("address", N_STR()))),
                            LIST_MAP("type"), PATCH_MERGE_KEY("type"))),
                    F("nodeInfo", N_OBJ(PRESERVE)))))),
};

/* ------------------------------------------------------------------ */
/* Pod                                                                  */
/* ------------------------------------------------------------------ */

static char *
pod_ready(const json_t *obj)
{
    size_t total = json_array_size(schema_get(obj, "spec.containers"));
    size_t ready = 0;
    const json_t *sts = schema_get(obj, "status.containerStatuses");
    size_t i;
    const json_t *c;
    json_array_foreach(sts, i, c)
    {
        if (json_is_true(json_object_get(c, "ready"))) {
            ready++;
        }
    }
    return xasprintf("%zu/%zu", ready, total);
}

static char *
pod_status(const json_t *obj)
{
    const char *reason = schema_get_str(obj, "status.phase");
    char buf[64];
    if (schema_get_str(obj, "status.reason")) {
        reason = schema_get_str(obj, "status.reason");
    }
    const json_t *sts = schema_get(obj, "status.containerStatuses");
    bool running = false;
    for (size_t i = json_array_size(sts); i-- > 0;) {
        const json_t *c = json_array_get(sts, i);
        const char *wr = schema_get_str(c, "state.waiting.reason");
        const json_t *term = schema_get(c, "state.terminated");
        if (wr && *wr) {
            reason = wr;
        } else if (term) {
            const char *tr = schema_get_str(term, "reason");
            if (tr && *tr) {
                reason = tr;
            } else {
                json_int_t sig =
                    json_integer_value(json_object_get(term, "signal"));
                if (sig) {
                    snprintf(buf, sizeof buf, "Signal:%lld", (long long) sig);
                } else {
                    snprintf(buf, sizeof buf, "ExitCode:%lld",
                             (long long) json_integer_value(
                                 json_object_get(term, "exitCode")));
                }
                reason = buf;
            }
        } else if (schema_get(c, "state.running") &&
                   json_is_true(json_object_get(c, "ready"))) {
            running = true;
        }
    }
    if (reason && !strcmp(reason, "Completed") && running) {
        reason = "Running";
    }
    if (schema_get(obj, "metadata.deletionTimestamp")) {
        reason = "Terminating";
    }
    return xstrdup(reason ? reason : "Pending");
}

static char *
pod_restarts(const json_t *obj)
{
    json_int_t n = 0;
    const json_t *sts = schema_get(obj, "status.containerStatuses");
    size_t i;
    const json_t *c;
    json_array_foreach(sts, i, c)
    {
        n += json_integer_value(json_object_get(c, "restartCount"));
    }
    return xasprintf("%lld", (long long) n);
}

/* NOMINATED NODE: "<none>" when the scheduler nominated none. */
static char *
pod_nominated_node(const json_t *obj)
{
    const char *n =
        json_string_value(schema_get(obj, "status.nominatedNodeName"));
    return xstrdup(n && *n ? n : "<none>");
}

/* READINESS GATES: how many of the pod's readiness gates have their
 * condition True, of how many ("<none>" without gates), as kubectl's
 * printer says. */
static char *
pod_readiness_gates(const json_t *obj)
{
    const json_t *gates = schema_get(obj, "spec.readinessGates");
    if (json_array_size(gates) == 0) {
        return xstrdup("<none>");
    }
    const json_t *conds = schema_get(obj, "status.conditions");
    size_t ready = 0, i, j;
    const json_t *g, *c;
    json_array_foreach(gates, i, g)
    {
        const char *want =
            json_string_value(json_object_get(g, "conditionType"));
        json_array_foreach(conds, j, c)
        {
            const char *t = json_string_value(json_object_get(c, "type"));
            const char *st = json_string_value(json_object_get(c, "status"));
            if (want && t && st && !strcmp(t, want) && !strcmp(st, "True")) {
                ready++;
                break;
            }
        }
    }
    return xasprintf("%zu/%zu", ready, json_array_size(gates));
}

static const struct schema_column pod_columns[] = {
    {"Ready", "string", NULL, "ready/total containers", 0, pod_ready},
    {"Status", "string", NULL, "pod status", 0, pod_status},
    {"Restarts", "integer", NULL, "container restarts", 0, pod_restarts},
    COLUMN_AGE,
    {"IP", "string", ".status.podIP", NULL, 1, NULL},
    {"Node", "string", ".spec.nodeName", NULL, 1, NULL},
    {"Nominated Node", "string", NULL, "the node the scheduler nominated", 1,
     pod_nominated_node},
    {"Readiness Gates", "string", NULL, "ready/total readiness gates", 1,
     pod_readiness_gates},
    COLUMNS_END,
};

/* Containers: name (DNS label, unique) and image are required. */
static int
check_containers(const json_t *v, const char *path, struct dpf_error *err)
{
    int rc = 0;
    size_t i;
    const json_t *c;
    json_array_foreach(v, i, c)
    {
        char p[320];
        const char *name = schema_get_str(c, "name");
        if (name && *name && !schema_is_dns_label(name)) {
            snprintf(p, sizeof p, "%s[%zu].name", path, i);
            schema_err_invalid(err, p, json_object_get(c, "name"),
                               "a lowercase RFC 1123 label must consist of "
                               "lower case alphanumeric characters or '-', "
                               "and must start and end with an alphanumeric "
                               "character");
            rc = -EINVAL;
        }
        for (size_t j = 0; j < i && name; j++) {
            const char *other = schema_get_str(json_array_get(v, j), "name");
            if (other && !strcmp(other, name)) {
                snprintf(p, sizeof p, "%s[%zu].name", path, i);
                schema_err_duplicate(err, p, json_object_get(c, "name"));
                rc = -EINVAL;
                break;
            }
        }
        const char *image = schema_get_str(c, "image");
        if (!image || !*image) {
            snprintf(p, sizeof p, "%s[%zu].image", path, i);
            schema_err_required(err, p, NULL);
            rc = -EINVAL;
        }
    }
    return rc;
}

/* The list types and patch strategies below are Kubernetes' own
 * (k8s.io/api/core/v1 markers): what server-side apply and strategic
 * merge patches key lists by. */
static const struct schema_node container_port_node = {
    .type = SCHEMA_T_OBJECT,
    PRESERVE,
    FIELDS(F("name", N_STR()), R("containerPort", N_INT(FORMAT("int32"))),
           F("hostPort", N_INT(FORMAT("int32"))), F("hostIP", N_STR()),
           F("protocol", N_STR(DEFAULT("\"TCP\"")))),
};

static const struct schema_node container_node = {
    .type = SCHEMA_T_OBJECT,
    PRESERVE,
    FIELDS(R("name", N_STR()), F("image", N_STR()),
           F("command", N_ARR(&schema_string, ATOMIC_LIST)),
           F("args", N_ARR(&schema_string, ATOMIC_LIST)),
           F("workingDir", N_STR()),
           F("imagePullPolicy", N_STR(ENUM("Always", "Never", "IfNotPresent"))),
           F("ports",
             N_ARR(&container_port_node, LIST_MAP("containerPort", "protocol"),
                   PATCH_MERGE_KEY("containerPort"))),
           F("env", N_ARR(N_OBJ(PRESERVE, FIELDS(R("name", N_STR()),
                                                 F("value", N_STR()))),
                          LIST_MAP("name"), PATCH_MERGE_KEY("name"))),
           F("envFrom", N_ARR(N_OBJ(PRESERVE), ATOMIC_LIST)),
           F("volumeMounts",
             N_ARR(N_OBJ(PRESERVE,
                         FIELDS(R("name", N_STR()), R("mountPath", N_STR()))),
                   LIST_MAP("mountPath"), PATCH_MERGE_KEY("mountPath"))),
           F("volumeDevices",
             N_ARR(N_OBJ(PRESERVE,
                         FIELDS(R("name", N_STR()), R("devicePath", N_STR()))),
                   LIST_MAP("devicePath"), PATCH_MERGE_KEY("devicePath"))),
           F("resources",
             N_OBJ(PRESERVE, FIELDS(F("limits", &schema_resource_list),
                                    F("requests", &schema_resource_list))))),
};

static const struct schema_node local_object_refs = {
    .type = SCHEMA_T_ARRAY,
    LIST_MAP("name"),
    PATCH_MERGE_KEY("name"),
    ITEMS(N_OBJ(FIELDS(F("name", N_STR())))),
};

const struct schema_node schema_pod_spec = {
    .type = SCHEMA_T_OBJECT,
    PRESERVE,
    FIELDS(
        R("containers", N_ARR(&container_node, CHECK(check_containers),
                              LIST_MAP("name"), PATCH_MERGE_KEY("name"))),
        F("initContainers", N_ARR(&container_node, CHECK(check_containers),
                                  LIST_MAP("name"), PATCH_MERGE_KEY("name"))),
        F("ephemeralContainers",
          N_ARR(N_OBJ(PRESERVE, FIELDS(R("name", N_STR()))), LIST_MAP("name"),
                PATCH_MERGE_KEY("name"))),
        F("imagePullSecrets", &local_object_refs),
        F("hostAliases", N_ARR(N_OBJ(PRESERVE, FIELDS(R("ip", N_STR()))),
                               LIST_MAP("ip"), PATCH_MERGE_KEY("ip"))),
        F("topologySpreadConstraints",
          N_ARR(N_OBJ(PRESERVE, FIELDS(R("topologyKey", N_STR()),
                                       R("whenUnsatisfiable", N_STR()))),
                LIST_MAP("topologyKey", "whenUnsatisfiable"),
                PATCH_MERGE_KEY("topologyKey"))),
        F("readinessGates", N_ARR(N_OBJ(PRESERVE), ATOMIC_LIST)),
        F("nodeName", N_STR()), F("nodeSelector", &schema_string_map),
        F("hostNetwork", N_BOOL()), F("serviceAccountName", N_STR()),
        F("restartPolicy",
          N_STR(ENUM("Always", "OnFailure", "Never"), DEFAULT("\"Always\""))),
        F("dnsPolicy", N_STR(DEFAULT("\"ClusterFirst\""))),
        F("schedulerName", N_STR(DEFAULT("\"default-scheduler\""))),
        F("terminationGracePeriodSeconds", N_INT(MINIMUM(0), DEFAULT("30"))),
        F("tolerations", N_ARR(N_ANY(), ATOMIC_LIST)),
        F("activeDeadlineSeconds", N_INT(MINIMUM(1))),
        F("volumes",
          N_ARR(N_OBJ(PRESERVE, FIELDS(R("name", N_STR()))), LIST_MAP("name"),
                PATCH_STRATEGY("merge,retainKeys"), MERGE_KEY("name")))),
};

/* Pod spec updates: only images, activeDeadlineSeconds, tolerations and a
 * first nodeName may change (the rest is immutable, as in Kubernetes). */
static int
pod_validate(const json_t *obj, const json_t *old, struct dpf_error *err)
{
    if (!old) {
        return 0;
    }
    json_t *a = json_deep_copy(schema_get(obj, "spec"));
    json_t *b = json_deep_copy(schema_get(old, "spec"));
    int rc = 0;
    if (json_is_object(a) && json_is_object(b)) {
        const char *mutable_keys[] = {"activeDeadlineSeconds", "tolerations"};
        for (size_t i = 0; i < ARRAY_SIZE(mutable_keys); i++) {
            json_object_del(a, mutable_keys[i]);
            json_object_del(b, mutable_keys[i]);
        }
        const char *old_node =
            json_string_value(json_object_get(b, "nodeName"));
        if (!old_node || !*old_node) {
            json_object_del(a, "nodeName");
            json_object_del(b, "nodeName");
        }
        const char *lists[] = {"containers", "initContainers"};
        for (size_t l = 0; l < ARRAY_SIZE(lists); l++) {
            size_t i;
            json_t *c;
            json_array_foreach(json_object_get(a, lists[l]), i, c)
            {
                json_object_del(c, "image");
            }
            json_array_foreach(json_object_get(b, lists[l]), i, c)
            {
                json_object_del(c, "image");
            }
        }
        if (!json_equal(a, b)) {
            schema_err_forbidden(
                err, "spec",
                "pod updates may not change fields other than "
                "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                "`spec.activeDeadlineSeconds` or `spec.tolerations` (only "
                "additions to existing tolerations)");
            rc = -EINVAL;
        }
    }
    json_decref(a);
    json_decref(b);
    return rc;
}

static void
pod_defaults(json_t *obj)
{
    json_t *spec = json_object_get(obj, "spec");
    if (!json_is_object(spec)) {
        return;
    }
    const char *lists[] = {"containers", "initContainers"};
    for (size_t l = 0; l < ARRAY_SIZE(lists); l++) {
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(spec, lists[l]), i, c)
        {
            const char *image = schema_get_str(c, "image");
            if (!json_is_object(c) || !image ||
                json_object_get(c, "imagePullPolicy")) {
                continue;
            }
            /* Kubernetes: Always for :latest or untagged, else IfNotPresent */
            const char *slash = strrchr(image, '/');
            const char *tag = strchr(slash ? slash : image, ':');
            bool latest =
                !strchr(image, '@') && (!tag || !strcmp(tag, ":latest"));
            json_object_set_new(
                c, "imagePullPolicy",
                json_string(latest ? "Always" : "IfNotPresent"));
            if (!json_object_get(c, "terminationMessagePath")) {
                json_object_set_new(c, "terminationMessagePath",
                                    json_string("/dev/termination-log"));
            }
        }
    }
}

static const struct schema_kind kind_pod = {
    CORE_V1,
    KIND_NAMES("Pod", "pods", "pod"),
    .short_names = (const char *const[]){"po", NULL},
    .categories = (const char *const[]){"all", NULL},
    .namespaced = true,
    .has_status = true,
    .columns = pod_columns,
    .root = KIND_ROOT(
        R("spec", &schema_pod_spec),
        F("status",
          N_OBJ(
              PRESERVE,
              FIELDS(
                  F("phase", N_STR(ENUM("Pending", "Running", "Succeeded",
                                        "Failed", "Unknown"))),
                  F("conditions", &schema_core_conditions),
                  F("containerStatuses", N_ARR(N_ANY(), ATOMIC_LIST)),
                  F("initContainerStatuses", N_ARR(N_ANY(), ATOMIC_LIST)),
                  F("podIPs", N_ARR(N_OBJ(PRESERVE, FIELDS(R("ip", N_STR()))),
                                    LIST_MAP("ip"), PATCH_MERGE_KEY("ip"))),
                  F("hostIPs", N_ARR(N_OBJ(PRESERVE, FIELDS(R("ip", N_STR()))),
                                     LIST_MAP("ip"), PATCH_MERGE_KEY("ip"))),
                  F("podIP", N_STR()), F("hostIP", N_STR()))))),
    .validate = pod_validate,
    .set_defaults = pod_defaults,
};

/* ------------------------------------------------------------------ */
/* ServiceAccount, Event                                                */
/* ------------------------------------------------------------------ */

static char *
sa_secrets(const json_t *obj)
{
    return xasprintf("%zu", json_array_size(json_object_get(obj, "secrets")));
}

static const struct schema_column sa_columns[] = {
    {"Secrets", "integer", NULL, NULL, 0, sa_secrets},
    COLUMN_AGE,
    COLUMNS_END,
};

static const struct schema_node object_reference = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(F("apiVersion", N_STR()), F("kind", N_STR()), F("name", N_STR()),
           F("namespace", N_STR()), F("uid", N_STR()),
           F("resourceVersion", N_STR()), F("fieldPath", N_STR())),
};

static const struct schema_kind kind_serviceaccount = {
    CORE_V1,
    KIND_NAMES("ServiceAccount", "serviceaccounts", "serviceaccount"),
    .short_names = (const char *const[]){"sa", NULL},
    .namespaced = true,
    .columns = sa_columns,
    .root = KIND_ROOT(F("secrets", N_ARR(&object_reference, LIST_MAP("name"),
                                         PATCH_MERGE_KEY("name"))),
                      F("imagePullSecrets",
                        N_ARR(N_OBJ(FIELDS(F("name", N_STR()))), ATOMIC_LIST)),
                      F("automountServiceAccountToken", N_BOOL())),
};

static char *
event_object(const json_t *obj)
{
    const char *kind = schema_get_str(obj, "involvedObject.kind");
    const char *name = schema_get_str(obj, "involvedObject.name");
    char lower[64];
    size_t i = 0;
    for (; kind && kind[i] && i + 1 < sizeof lower; i++) {
        lower[i] =
            (char) (kind[i] >= 'A' && kind[i] <= 'Z' ? kind[i] + 32 : kind[i]);
    }
    lower[i] = '\0';
    return xasprintf("%s/%s", lower, name ? name : "");
}

static const struct schema_column event_columns[] = {
    COLUMN("Last Seen", "date", ".lastTimestamp"),
    COLUMN("Type", "string", ".type"),
    COLUMN("Reason", "string", ".reason"),
    {"Object", "string", NULL, "involved object", 0, event_object},
    COLUMN("Message", "string", ".message"),
    COLUMNS_END,
};

static int
event_validate(const json_t *obj, const json_t *old, struct dpf_error *err)
{
    const char *ns = schema_get_str(obj, "metadata.namespace");
    const char *ins = schema_get_str(obj, "involvedObject.namespace");
    if (ns && ins && *ins && strcmp(ns, ins)) {
        schema_err_invalid(err, "involvedObject.namespace",
                           schema_get(obj, "involvedObject.namespace"),
                           "does not match event.namespace");
        return -EINVAL;
    }
    return 0;
}

const struct schema_kind schema_kind_event = {
    CORE_V1,
    KIND_NAMES("Event", "events", "event"),
    .short_names = (const char *const[]){"ev", NULL},
    .namespaced = true,
    .columns = event_columns,
    .root = KIND_ROOT(
        R("involvedObject", &object_reference), F("reason", N_STR()),
        F("message", N_STR()),
        F("source", N_OBJ(FIELDS(F("component", N_STR()), F("host", N_STR())))),
        F("firstTimestamp", N_STR(FORMAT("date-time"))),
        F("lastTimestamp", N_STR(FORMAT("date-time"))),
        F("count", N_INT(FORMAT("int32"))),
        F("type", N_STR(ENUM("Normal", "Warning"))), F("eventTime", N_STR()),
        F("series", N_ANY()), F("action", N_STR()),
        F("related", &object_reference), F("reportingComponent", N_STR()),
        F("reportingInstance", N_STR())),
    .validate = event_validate,
};

SCHEMA_GROUP_1(schema_group_core, "", "v1", &kind_namespace, &kind_node,
               &kind_pod, &schema_kind_secret, &schema_kind_configmap,
               &kind_serviceaccount, &schema_kind_event);
