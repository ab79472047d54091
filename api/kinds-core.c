/* kinds-core: shared sub-schemas (ObjectMeta, selectors, conditions, taints,
 * quantities) and the Kubernetes kinds the platform serves itself: core/v1
 * Namespace, Node, Pod, Secret, ConfigMap, ServiceAccount, Event;
 * coordination.k8s.io/v1 Lease; apps/v1 DaemonSet, Deployment; and the
 * nv-ipam.nvidia.com/v1alpha1 pools (IPPool, CIDRPool) that the IPAM
 * controller creates in DPU clusters.
 *
 * Core kinds are looser than the DPF kinds: pod specs and templates keep
 * unknown fields, but what the platform relies on is declared and checked
 * (names, Secret data and type, containers, selectors). Printer columns
 * follow kubectl's built-in printers, computed in C where JSONPath cannot
 * express them. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api/schema-node.h"
#include "lib/base/base64.h"
#include "lib/base/util.h"

#define QUANTITY_PATTERN                                                   \
    "^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|" \
    "([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$"

/* ------------------------------------------------------------------ */
/* shared sub-schemas                                                   */
/* ------------------------------------------------------------------ */

const struct schema_node schema_string = {
    .type = SCHEMA_T_STRING,
};

const struct schema_node schema_string_list = {
    .type = SCHEMA_T_ARRAY,
    .items = &schema_string,
};

const struct schema_node schema_string_map = {
    .type = SCHEMA_T_MAP,
    .items = &schema_string,
};

const struct schema_node schema_object_meta = {
    .type = SCHEMA_T_OBJECT,
    .export_plain = true,
    FIELDS(F("name", N_STR()), F("generateName", N_STR()),
           F("namespace", N_STR()), F("selfLink", N_STR()), F("uid", N_STR()),
           F("resourceVersion", N_STR()), F("generation", N_INT()),
           F("creationTimestamp", N_STR(FORMAT("date-time"))),
           F("deletionTimestamp", N_STR(FORMAT("date-time"))),
           F("deletionGracePeriodSeconds", N_INT()),
           F("labels", &schema_string_map),
           F("annotations", &schema_string_map),
           F("ownerReferences",
             N_ARR(N_OBJ(FIELDS(R("apiVersion", N_STR()), R("kind", N_STR()),
                                R("name", N_STR()), R("uid", N_STR()),
                                F("controller", N_BOOL()),
                                F("blockOwnerDeletion", N_BOOL()))))),
           F("finalizers", &schema_string_list),
           F("managedFields", N_ARR(N_ANY()))),
};

const struct schema_node schema_label_selector = {
    .type = SCHEMA_T_OBJECT,
    .map_type = "atomic",
    DESC("A label query over a set of resources."),
    FIELDS(
        F("matchExpressions",
          N_ARR(N_OBJ(FIELDS(R("key", N_STR()), R("operator", N_STR()),
                             F("values", N_ARR(&schema_string, ATOMIC_LIST)))),
                ATOMIC_LIST)),
        F("matchLabels", &schema_string_map)),
};

const struct schema_node schema_node_selector = {
    .type = SCHEMA_T_OBJECT,
    .map_type = "atomic",
    DESC("A node selector (terms are ORed)."),
    FIELDS(R(
        "nodeSelectorTerms",
        N_ARR(
            N_OBJ(FIELDS(F("matchExpressions",
                           N_ARR(N_OBJ(FIELDS(R("key", N_STR()),
                                              R("operator", N_STR()),
                                              F("values", N_ARR(&schema_string,
                                                                ATOMIC_LIST)))),
                                 ATOMIC_LIST)),
                         F("matchFields",
                           N_ARR(N_OBJ(FIELDS(R("key", N_STR()),
                                              R("operator", N_STR()),
                                              F("values", N_ARR(&schema_string,
                                                                ATOMIC_LIST)))),
                                 ATOMIC_LIST))),
                  ATOMIC_MAP),
            ATOMIC_LIST))),
};

const struct schema_node schema_conditions = {
    .type = SCHEMA_T_ARRAY,
    DESC("Conditions reflect the status of the object."),
    ITEMS(N_OBJ(FIELDS(
        R("lastTransitionTime", N_STR(FORMAT("date-time"))),
        R("message", N_STR(MAXLEN(32768))),
        F("observedGeneration", N_INT(FORMAT("int64"), MINIMUM(0))),
        R("reason", N_STR(PATTERN("^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"),
                          MINLEN(1), MAXLEN(1024))),
        R("status", N_STR(ENUM("True", "False", "Unknown"))),
        R("type",
          N_STR(PATTERN("^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-"
                        "9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-"
                        "Za-z0-9])$"),
                MAXLEN(316)))))),
};

const struct schema_node schema_taint = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(R("effect", N_STR()), R("key", N_STR()),
           F("timeAdded", N_STR(FORMAT("date-time"))), F("value", N_STR())),
};

const struct schema_node schema_quantity = {
    .type = SCHEMA_T_INT_OR_STRING,
    PATTERN(QUANTITY_PATTERN),
};

const struct schema_node schema_resource_list = {
    .type = SCHEMA_T_MAP,
    ITEMS(&schema_quantity),
};

/* ------------------------------------------------------------------ */
/* column helpers                                                       */
/* ------------------------------------------------------------------ */

static size_t
count_keys(const json_t *obj, const char *a, const char *b)
{
    size_t n = json_object_size(schema_get(obj, a));
    if (b) {
        n += json_object_size(schema_get(obj, b));
    }
    return n;
}

/* ------------------------------------------------------------------ */
/* Namespace                                                            */
/* ------------------------------------------------------------------ */

static const struct schema_column namespace_columns[] = {
    {"Status", "string", ".status.phase", "The namespace phase", 0, NULL},
    {"Age", "date", ".metadata.creationTimestamp", NULL, 0, NULL},
    {NULL, NULL, NULL, NULL, 0, NULL},
};

static const struct schema_kind kind_namespace = {
    .group = "",
    .version = "v1",
    .kind = "Namespace",
    .list_kind = "NamespaceList",
    .plural = "namespaces",
    .singular = "namespace",
    .short_names = (const char *const[]){"ns", NULL},
    .namespaced = false,
    .has_status = true,
    .columns = namespace_columns,
    .root = KIND_ROOT(
        F("spec", N_OBJ(FIELDS(F("finalizers", &schema_string_list)))),
        F("status", N_OBJ(FIELDS(F("phase", N_STR(ENUM("Active", "Terminating"),
                                                  DEFAULT("\"Active\""))),
                                 F("conditions", N_ARR(N_ANY()))),
                          DEFAULT("{}")))),
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
    {"Age", "date", ".metadata.creationTimestamp", NULL, 0, NULL},
    {"Version", "string", ".status.nodeInfo.kubeletVersion", NULL, 0, NULL},
    {"Internal-IP", "string", NULL, NULL, 1, node_internal_ip},
    {"OS-Image", "string", ".status.nodeInfo.osImage", NULL, 1, NULL},
    {"Kernel-Version", "string", ".status.nodeInfo.kernelVersion", NULL, 1,
     NULL},
    {"Container-Runtime", "string", ".status.nodeInfo.containerRuntimeVersion",
     NULL, 1, NULL},
    {NULL, NULL, NULL, NULL, 0, NULL},
};

static const struct schema_kind kind_node = {
    .group = "",
    .version = "v1",
    .kind = "Node",
    .list_kind = "NodeList",
    .plural = "nodes",
    .singular = "node",
    .short_names = (const char *const[]){"no", NULL},
    .namespaced = false,
    .has_status = true,
    .columns = node_columns,
    .root = KIND_ROOT(
        F("spec",
          N_OBJ(FIELDS(
              F("podCIDR", N_STR()), F("podCIDRs", &schema_string_list),
              F("providerID", N_STR()), F("unschedulable", N_BOOL()),
              F("taints",
                N_ARR(N_OBJ(FIELDS(
                    R("key", N_STR()), F("value", N_STR()),
                    R("effect", N_STR(ENUM("NoSchedule", "PreferNoSchedule",
                                           "NoExecute"))),
                    F("timeAdded", N_STR(FORMAT("date-time"))))))),
              F("configSource", N_ANY()), F("externalID", N_STR())))),
        F("status",
          N_OBJ(
              PRESERVE,
              FIELDS(
                  F("capacity", &schema_resource_list),
                  F("allocatable", &schema_resource_list),
                  F("conditions",
                    N_ARR(N_OBJ(PRESERVE,
                                FIELDS(R("type", N_STR()),
                                       R("status", N_STR(ENUM("True", "False",
                                                              "Unknown"))))))),
                  F("addresses", N_ARR(N_OBJ(FIELDS(R("type", N_STR()),
                                                    R("address", N_STR()))))),
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

static const struct schema_column pod_columns[] = {
    {"Ready", "string", NULL, "ready/total containers", 0, pod_ready},
    {"Status", "string", NULL, "pod status", 0, pod_status},
    {"Restarts", "integer", NULL, "container restarts", 0, pod_restarts},
    {"Age", "date", ".metadata.creationTimestamp", NULL, 0, NULL},
    {"IP", "string", ".status.podIP", NULL, 1, NULL},
    {"Node", "string", ".spec.nodeName", NULL, 1, NULL},
    {NULL, NULL, NULL, NULL, 0, NULL},
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

static const struct schema_node container_node = {
    .type = SCHEMA_T_OBJECT,
    PRESERVE,
    FIELDS(R("name", N_STR()), F("image", N_STR()),
           F("command", &schema_string_list), F("args", &schema_string_list),
           F("workingDir", N_STR()),
           F("imagePullPolicy", N_STR(ENUM("Always", "Never", "IfNotPresent"))),
           F("env", N_ARR(N_OBJ(PRESERVE, FIELDS(R("name", N_STR()),
                                                 F("value", N_STR()))))),
           F("resources",
             N_OBJ(PRESERVE, FIELDS(F("limits", &schema_resource_list),
                                    F("requests", &schema_resource_list))))),
};

static const struct schema_node pod_spec_node = {
    .type = SCHEMA_T_OBJECT,
    PRESERVE,
    FIELDS(R("containers", N_ARR(&container_node, CHECK(check_containers))),
           F("initContainers", N_ARR(&container_node, CHECK(check_containers))),
           F("nodeName", N_STR()), F("nodeSelector", &schema_string_map),
           F("hostNetwork", N_BOOL()), F("serviceAccountName", N_STR()),
           F("restartPolicy", N_STR(ENUM("Always", "OnFailure", "Never"),
                                    DEFAULT("\"Always\""))),
           F("dnsPolicy", N_STR(DEFAULT("\"ClusterFirst\""))),
           F("schedulerName", N_STR(DEFAULT("\"default-scheduler\""))),
           F("terminationGracePeriodSeconds", N_INT(MINIMUM(0), DEFAULT("30"))),
           F("tolerations", N_ARR(N_ANY())),
           F("activeDeadlineSeconds", N_INT(MINIMUM(1))),
           F("volumes", N_ARR(N_OBJ(PRESERVE, FIELDS(R("name", N_STR())))))),
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
    .group = "",
    .version = "v1",
    .kind = "Pod",
    .list_kind = "PodList",
    .plural = "pods",
    .singular = "pod",
    .short_names = (const char *const[]){"po", NULL},
    .categories = (const char *const[]){"all", NULL},
    .namespaced = true,
    .has_status = true,
    .columns = pod_columns,
    .root = KIND_ROOT(
        R("spec", &pod_spec_node),
        F("status",
          N_OBJ(PRESERVE,
                FIELDS(F("phase", N_STR(ENUM("Pending", "Running", "Succeeded",
                                             "Failed", "Unknown"))),
                       F("conditions", N_ARR(N_ANY())),
                       F("containerStatuses", N_ARR(N_ANY())),
                       F("podIP", N_STR()), F("hostIP", N_STR()))))),
    .validate = pod_validate,
    .set_defaults = pod_defaults,
};

/* ------------------------------------------------------------------ */
/* Secret, ConfigMap                                                    */
/* ------------------------------------------------------------------ */

#define SCHEMA_DATA_MAX (1024 * 1024)

/* Keys of Secret/ConfigMap data: [-._a-zA-Z0-9]+, at most 253. */
static int
check_data_keys(const json_t *v, const char *path, struct dpf_error *err)
{
    int rc = 0;
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *) v, key, val)
    {
        size_t n = strlen(key);
        bool ok = n > 0 && n <= 253 && strcmp(key, ".") && strcmp(key, "..");
        for (size_t i = 0; ok && i < n; i++) {
            char c = key[i];
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
        }
        if (!ok) {
            json_t *jk = json_string(key);
            schema_err_invalid(err, path, jk,
                               "a valid config key must consist of "
                               "alphanumeric characters, '-', '_' or '.' "
                               "(e.g. 'key.name', or 'KEY_NAME', or "
                               "'key-name')");
            json_decref(jk);
            rc = -EINVAL;
        }
    }
    return rc;
}

static int
check_b64_map(const json_t *v, const char *path, struct dpf_error *err)
{
    int rc = check_data_keys(v, path, err);
    const char *key;
    const json_t *val;
    size_t total = 0;
    json_object_foreach((json_t *) v, key, val)
    {
        long r = base64_check(json_string_value(val), json_string_length(val));
        if (r < 0) {
            char p[320];
            snprintf(p, sizeof p, "%s[%s]", path, key);
            json_t *mask = json_string("<secret data>");
            schema_err_invalid(err, p, mask,
                               "illegal base64 data at input byte %ld", -r - 1);
            json_decref(mask);
            rc = -EINVAL;
        } else {
            total += (size_t) r;
        }
    }
    if (total > SCHEMA_DATA_MAX) {
        dpf_error_add_cause(err, DPF_CAUSE_TOO_LONG, path,
                            "Too long: must have at most %d bytes",
                            SCHEMA_DATA_MAX);
        rc = -EINVAL;
    }
    return rc;
}

/* As the API server's conversion does: stringData is merged into data
 * (base64-encoded, stringData wins) and dropped; type defaults to Opaque. */
static void
secret_defaults(json_t *obj)
{
    json_t *sd = json_object_get(obj, "stringData");
    if (json_is_object(sd)) {
        json_t *data = json_object_get(obj, "data");
        if (!json_is_object(data)) {
            data = json_object();
            json_object_set_new(obj, "data", data);
        }
        const char *key;
        json_t *val;
        json_object_foreach(sd, key, val)
        {
            if (json_is_string(val)) {
                char *enc = base64_encode(json_string_value(val),
                                          json_string_length(val), BASE64_STD);
                json_object_set_new(data, key, json_string(enc));
                free(enc);
            }
        }
    }
    json_object_del(obj, "stringData");
}

static int
secret_validate(const json_t *obj, const json_t *old, struct dpf_error *err)
{
    int rc = 0;
    const char *type = json_string_value(json_object_get(obj, "type"));
    const json_t *data = json_object_get(obj, "data");
    struct {
        const char *type;
        const char *keys[2];
    } const required[] = {
        {"kubernetes.io/tls", {"tls.crt", "tls.key"}},
        {"kubernetes.io/dockerconfigjson", {".dockerconfigjson", NULL}},
        {"kubernetes.io/dockercfg", {".dockercfg", NULL}},
        {"kubernetes.io/ssh-auth", {"ssh-privatekey", NULL}},
    };
    for (size_t i = 0; type && i < ARRAY_SIZE(required); i++) {
        if (strcmp(type, required[i].type)) {
            continue;
        }
        for (size_t j = 0; j < 2 && required[i].keys[j]; j++) {
            if (!json_object_get(data, required[i].keys[j])) {
                char p[64];
                snprintf(p, sizeof p, "data[%s]", required[i].keys[j]);
                schema_err_required(err, p, NULL);
                rc = -EINVAL;
            }
        }
    }
    if (type && !strcmp(type, "kubernetes.io/service-account-token") &&
        !schema_get_str(obj, "metadata.annotations") &&
        !json_object_get(schema_get(obj, "metadata.annotations"),
                         "kubernetes.io/service-account.name")) {
        schema_err_required(
            err, "metadata.annotations[kubernetes.io/service-account.name]",
            NULL);
        rc = -EINVAL;
    }
    if (old) {
        const char *otype = json_string_value(json_object_get(old, "type"));
        if (otype && type && strcmp(otype, type)) {
            schema_err_invalid(err, "type", json_object_get(obj, "type"),
                               "field is immutable");
            rc = -EINVAL;
        }
        if (json_is_true(json_object_get(old, "immutable")) &&
            (!json_equal((json_t *) data, json_object_get(old, "data")) ||
             !json_is_true(json_object_get(obj, "immutable")))) {
            schema_err_forbidden(err, "data",
                                 "field is immutable when `immutable` is set");
            rc = -EINVAL;
        }
    }
    return rc;
}

static char *
secret_data_count(const json_t *obj)
{
    return xasprintf("%zu", count_keys(obj, "data", NULL));
}

static const struct schema_column secret_columns[] = {
    {"Type", "string", ".type", NULL, 0, NULL},
    {"Data", "integer", NULL, "number of data keys", 0, secret_data_count},
    {"Age", "date", ".metadata.creationTimestamp", NULL, 0, NULL},
    {NULL, NULL, NULL, NULL, 0, NULL},
};

static const struct schema_kind kind_secret = {
    .group = "",
    .version = "v1",
    .kind = "Secret",
    .list_kind = "SecretList",
    .plural = "secrets",
    .singular = "secret",
    .namespaced = true,
    .columns = secret_columns,
    .root = KIND_ROOT(
        F("data", N_MAP(&schema_string, CHECK(check_b64_map))),
        F("stringData", N_MAP(&schema_string, CHECK(check_data_keys))),
        F("type", N_STR(DEFAULT("\"Opaque\""))), F("immutable", N_BOOL())),
    .validate = secret_validate,
    .set_defaults = secret_defaults,
};

static int
check_configmap_data(const json_t *v, const char *path, struct dpf_error *err)
{
    int rc = check_data_keys(v, path, err);
    size_t total = 0;
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *) v, key, val)
    {
        total += json_string_length(val);
    }
    if (total > SCHEMA_DATA_MAX) {
        dpf_error_add_cause(err, DPF_CAUSE_TOO_LONG, path,
                            "Too long: must have at most %d bytes",
                            SCHEMA_DATA_MAX);
        rc = -EINVAL;
    }
    return rc;
}

static int
configmap_validate(const json_t *obj, const json_t *old, struct dpf_error *err)
{
    const json_t *data = json_object_get(obj, "data");
    const json_t *bin = json_object_get(obj, "binaryData");
    const char *key;
    const json_t *val;
    int rc = 0;
    json_object_foreach((json_t *) bin, key, val)
    {
        if (json_object_get(data, key)) {
            char p[300];
            snprintf(p, sizeof p, "data[%s]", key);
            schema_err_duplicate(err, p, json_string_value(val) ? val : NULL);
            rc = -EINVAL;
        }
    }
    if (old && json_is_true(json_object_get(old, "immutable")) &&
        (!json_equal((json_t *) data, json_object_get(old, "data")) ||
         !json_equal((json_t *) bin, json_object_get(old, "binaryData")))) {
        schema_err_forbidden(err, "data",
                             "field is immutable when `immutable` is set");
        rc = -EINVAL;
    }
    return rc;
}

static char *
configmap_data_count(const json_t *obj)
{
    return xasprintf("%zu", count_keys(obj, "data", "binaryData"));
}

static const struct schema_column configmap_columns[] = {
    {"Data", "integer", NULL, "number of data keys", 0, configmap_data_count},
    {"Age", "date", ".metadata.creationTimestamp", NULL, 0, NULL},
    {NULL, NULL, NULL, NULL, 0, NULL},
};

static const struct schema_kind kind_configmap = {
    .group = "",
    .version = "v1",
    .kind = "ConfigMap",
    .list_kind = "ConfigMapList",
    .plural = "configmaps",
    .singular = "configmap",
    .short_names = (const char *const[]){"cm", NULL},
    .namespaced = true,
    .columns = configmap_columns,
    .root =
        KIND_ROOT(F("data", N_MAP(&schema_string, CHECK(check_configmap_data))),
                  F("binaryData", N_MAP(&schema_string, CHECK(check_b64_map))),
                  F("immutable", N_BOOL())),
    .validate = configmap_validate,
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
    {"Age", "date", ".metadata.creationTimestamp", NULL, 0, NULL},
    {NULL, NULL, NULL, NULL, 0, NULL},
};

static const struct schema_node object_reference = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(F("apiVersion", N_STR()), F("kind", N_STR()), F("name", N_STR()),
           F("namespace", N_STR()), F("uid", N_STR()),
           F("resourceVersion", N_STR()), F("fieldPath", N_STR())),
};

static const struct schema_kind kind_serviceaccount = {
    .group = "",
    .version = "v1",
    .kind = "ServiceAccount",
    .list_kind = "ServiceAccountList",
    .plural = "serviceaccounts",
    .singular = "serviceaccount",
    .short_names = (const char *const[]){"sa", NULL},
    .namespaced = true,
    .columns = sa_columns,
    .root = KIND_ROOT(
        F("secrets", N_ARR(&object_reference)),
        F("imagePullSecrets", N_ARR(N_OBJ(FIELDS(F("name", N_STR()))))),
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
    {"Last Seen", "date", ".lastTimestamp", NULL, 0, NULL},
    {"Type", "string", ".type", NULL, 0, NULL},
    {"Reason", "string", ".reason", NULL, 0, NULL},
    {"Object", "string", NULL, "involved object", 0, event_object},
    {"Message", "string", ".message", NULL, 0, NULL},
    {NULL, NULL, NULL, NULL, 0, NULL},
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

static const struct schema_kind kind_event = {
    .group = "",
    .version = "v1",
    .kind = "Event",
    .list_kind = "EventList",
    .plural = "events",
    .singular = "event",
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

/* ------------------------------------------------------------------ */
/* Lease                                                                */
/* ------------------------------------------------------------------ */

static const struct schema_column lease_columns[] = {
    {"Holder", "string", ".spec.holderIdentity", NULL, 0, NULL},
    {"Age", "date", ".metadata.creationTimestamp", NULL, 0, NULL},
    {NULL, NULL, NULL, NULL, 0, NULL},
};

static const struct schema_kind kind_lease = {
    .group = "coordination.k8s.io",
    .version = "v1",
    .kind = "Lease",
    .list_kind = "LeaseList",
    .plural = "leases",
    .singular = "lease",
    .namespaced = true,
    .columns = lease_columns,
    .root = KIND_ROOT(
        F("spec",
          N_OBJ(FIELDS(
              F("holderIdentity", N_STR()),
              F("leaseDurationSeconds", N_INT(FORMAT("int32"), MINIMUM(1))),
              F("acquireTime", N_STR()), F("renewTime", N_STR()),
              F("leaseTransitions", N_INT(FORMAT("int32"), MINIMUM(0))),
              F("strategy", N_STR()), F("preferredHolder", N_STR()))))),
};

/* ------------------------------------------------------------------ */
/* DaemonSet, Deployment                                                */
/* ------------------------------------------------------------------ */

/* apps/v1: a selector is required, must select the template's labels and
 * is immutable. */
static int
apps_validate(const json_t *obj, const json_t *old, struct dpf_error *err)
{
    int rc = 0;
    const json_t *sel = schema_get(obj, "spec.selector");
    const json_t *ml = json_object_get(sel, "matchLabels");
    const json_t *me = json_object_get(sel, "matchExpressions");
    if (!json_object_size(ml) && !json_array_size(me)) {
        schema_err_invalid(err, "spec.selector", sel,
                           "empty selector is invalid for deployment");
        rc = -EINVAL;
    }
    const json_t *tl = schema_get(obj, "spec.template.metadata.labels");
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *) ml, key, val)
    {
        const json_t *tv = json_object_get(tl, key);
        if (!tv || !json_equal((json_t *) tv, (json_t *) val)) {
            schema_err_invalid(err, "spec.template.metadata.labels", tl,
                               "`selector` does not match template `labels`");
            rc = -EINVAL;
            break;
        }
    }
    schema_check_labels(tl, "spec.template.metadata.labels", err);
    if (old && !json_equal((json_t *) sel, schema_get(old, "spec.selector"))) {
        schema_err_invalid(err, "spec.selector", sel, "field is immutable");
        rc = -EINVAL;
    }
    return rc;
}

static const struct schema_node pod_template_node = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(F("metadata",
             N_OBJ(PRESERVE, FIELDS(F("labels", &schema_string_map),
                                    F("annotations", &schema_string_map)))),
           R("spec", &pod_spec_node)),
};

static char *
ds_node_selector(const json_t *obj)
{
    const json_t *ns = schema_get(obj, "spec.template.spec.nodeSelector");
    if (!json_object_size(ns)) {
        return xstrdup("<none>");
    }
    struct dbuf b;
    dbuf_init(&b);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *) ns, key, v)
    {
        const char *val = json_string_value(v);
        dbuf_printf(&b, "%s%s=%s", b.len ? "," : "", key, val ? val : "");
    }
    return dbuf_steal(&b, NULL);
}

static const struct schema_column daemonset_columns[] = {
    {"Desired", "integer", ".status.desiredNumberScheduled", NULL, 0, NULL},
    {"Current", "integer", ".status.currentNumberScheduled", NULL, 0, NULL},
    {"Ready", "integer", ".status.numberReady", NULL, 0, NULL},
    {"Up-to-date", "integer", ".status.updatedNumberScheduled", NULL, 0, NULL},
    {"Available", "integer", ".status.numberAvailable", NULL, 0, NULL},
    {"Node Selector", "string", NULL, NULL, 0, ds_node_selector},
    {"Age", "date", ".metadata.creationTimestamp", NULL, 0, NULL},
    {NULL, NULL, NULL, NULL, 0, NULL},
};

static const struct schema_kind kind_daemonset = {
    .group = "apps",
    .version = "v1",
    .kind = "DaemonSet",
    .list_kind = "DaemonSetList",
    .plural = "daemonsets",
    .singular = "daemonset",
    .short_names = (const char *const[]){"ds", NULL},
    .categories = (const char *const[]){"all", NULL},
    .namespaced = true,
    .has_status = true,
    .columns = daemonset_columns,
    .root = KIND_ROOT(
        R("spec",
          N_OBJ(FIELDS(
              R("selector", &schema_label_selector),
              R("template", &pod_template_node),
              F("updateStrategy",
                N_OBJ(FIELDS(F("type", N_STR(ENUM("RollingUpdate", "OnDelete"),
                                             DEFAULT("\"RollingUpdate\""))),
                             F("rollingUpdate",
                               N_OBJ(FIELDS(F("maxUnavailable", N_IOS()),
                                            F("maxSurge", N_IOS()))))),
                      DEFAULT("{\"type\":\"RollingUpdate\",\"rollingUpdate\":"
                              "{\"maxUnavailable\":1,\"maxSurge\":0}}"))),
              F("minReadySeconds", N_INT(MINIMUM(0))),
              F("revisionHistoryLimit", N_INT(MINIMUM(0), DEFAULT("10")))))),
        F("status", N_OBJ(PRESERVE))),
    .validate = apps_validate,
};

static char *
deploy_ready(const json_t *obj)
{
    return xasprintf(
        "%lld/%lld",
        (long long) json_integer_value(schema_get(obj, "status.readyReplicas")),
        (long long) json_integer_value(schema_get(obj, "spec.replicas")));
}

static const struct schema_column deployment_columns[] = {
    {"Ready", "string", NULL, "ready/desired replicas", 0, deploy_ready},
    {"Up-to-date", "integer", ".status.updatedReplicas", NULL, 0, NULL},
    {"Available", "integer", ".status.availableReplicas", NULL, 0, NULL},
    {"Age", "date", ".metadata.creationTimestamp", NULL, 0, NULL},
    {NULL, NULL, NULL, NULL, 0, NULL},
};

static const struct schema_kind kind_deployment = {
    .group = "apps",
    .version = "v1",
    .kind = "Deployment",
    .list_kind = "DeploymentList",
    .plural = "deployments",
    .singular = "deployment",
    .short_names = (const char *const[]){"deploy", NULL},
    .categories = (const char *const[]){"all", NULL},
    .namespaced = true,
    .has_status = true,
    .columns = deployment_columns,
    .root = KIND_ROOT(
        R("spec",
          N_OBJ(FIELDS(
              F("replicas", N_INT(MINIMUM(0), DEFAULT("1"))),
              R("selector", &schema_label_selector),
              R("template", &pod_template_node),
              F("strategy",
                N_OBJ(FIELDS(F("type", N_STR(ENUM("RollingUpdate", "Recreate"),
                                             DEFAULT("\"RollingUpdate\""))),
                             F("rollingUpdate",
                               N_OBJ(FIELDS(F("maxUnavailable", N_IOS()),
                                            F("maxSurge", N_IOS()))))),
                      DEFAULT("{\"type\":\"RollingUpdate\",\"rollingUpdate\":"
                              "{\"maxUnavailable\":\"25%\",\"maxSurge\":"
                              "\"25%\"}}"))),
              F("minReadySeconds", N_INT(MINIMUM(0))), F("paused", N_BOOL()),
              F("progressDeadlineSeconds", N_INT(DEFAULT("600"))),
              F("revisionHistoryLimit", N_INT(MINIMUM(0), DEFAULT("10")))))),
        F("status", N_OBJ(PRESERVE))),
    .validate = apps_validate,
};

/* ------------------------------------------------------------------ */
/* nv-ipam.nvidia.com/v1alpha1 IPPool, CIDRPool                          */
/* ------------------------------------------------------------------ */

static const struct schema_node ipam_exclusions = {
    .type = SCHEMA_T_ARRAY,
    ITEMS(N_OBJ(FIELDS(R("startIP", N_STR()), R("endIP", N_STR())))),
};
static const struct schema_node ipam_routes = {
    .type = SCHEMA_T_ARRAY,
    ITEMS(N_OBJ(FIELDS(R("dst", N_STR())))),
};

static const struct schema_column ippool_columns[] = {
    {"Subnet", "string", ".spec.subnet", NULL, 0, NULL},
    {"Gateway", "string", ".spec.gateway", NULL, 0, NULL},
    {"Block Size", "integer", ".spec.perNodeBlockSize", NULL, 0, NULL},
    {"Age", "date", ".metadata.creationTimestamp", NULL, 0, NULL},
    {NULL, NULL, NULL, NULL, 0, NULL},
};

static const struct schema_kind kind_ippool = {
    .group = "nv-ipam.nvidia.com",
    .version = "v1alpha1",
    .kind = "IPPool",
    .list_kind = "IPPoolList",
    .plural = "ippools",
    .singular = "ippool",
    .namespaced = true,
    .has_status = true,
    .columns = ippool_columns,
    .root = KIND_ROOT(
        R("spec",
          N_OBJ(FIELDS(F("defaultGateway", N_BOOL()),
                       F("exclusions", &ipam_exclusions), F("gateway", N_STR()),
                       F("nodeSelector", &schema_node_selector),
                       R("perNodeBlockSize", N_INT()),
                       F("routes", &ipam_routes), R("subnet", N_STR())))),
        F("status",
          N_OBJ(FIELDS(
              R("allocations",
                N_ARR(N_OBJ(FIELDS(R("endIP", N_STR()), R("nodeName", N_STR()),
                                   R("startIP", N_STR()))))))))),
};

static const struct schema_column cidrpool_columns[] = {
    {"CIDR", "string", ".spec.cidr", NULL, 0, NULL},
    {"Gateway index", "string", ".spec.gatewayIndex", NULL, 0, NULL},
    {"Per Node Network Prefix", "integer", ".spec.perNodeNetworkPrefix", NULL,
     0, NULL},
    {"Age", "date", ".metadata.creationTimestamp", NULL, 0, NULL},
    {NULL, NULL, NULL, NULL, 0, NULL},
};

static const struct schema_kind kind_cidrpool = {
    .group = "nv-ipam.nvidia.com",
    .version = "v1alpha1",
    .kind = "CIDRPool",
    .list_kind = "CIDRPoolList",
    .plural = "cidrpools",
    .singular = "cidrpool",
    .namespaced = true,
    .has_status = true,
    .columns = cidrpool_columns,
    .root = KIND_ROOT(
        R("spec",
          N_OBJ(FIELDS(R("cidr", N_STR()), F("defaultGateway", N_BOOL()),
                       F("exclusions", &ipam_exclusions),
                       F("gatewayIndex", N_INT(FORMAT("int32"))),
                       F("nodeSelector", &schema_node_selector),
                       R("perNodeNetworkPrefix", N_INT(FORMAT("int32"))),
                       F("routes", &ipam_routes),
                       F("staticAllocations",
                         N_ARR(N_OBJ(FIELDS(F("gateway", N_STR()),
                                            F("nodeName", N_STR()),
                                            R("prefix", N_STR())))))))),
        F("status",
          N_OBJ(FIELDS(R(
              "allocations",
              N_ARR(N_OBJ(FIELDS(F("gateway", N_STR()), R("nodeName", N_STR()),
                                 R("prefix", N_STR()))))))))),
};

const struct schema_kind *const schema_kinds_core[] = {
    &kind_namespace,
    &kind_node,
    &kind_pod,
    &kind_secret,
    &kind_configmap,
    &kind_serviceaccount,
    &kind_event,
    &kind_lease,
    &kind_daemonset,
    &kind_deployment,
    &kind_ippool,
    &kind_cidrpool,
    NULL,
};
