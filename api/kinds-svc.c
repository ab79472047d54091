/* kinds-svc: svc.dpu.nvidia.com/v1alpha1 — the host-side kinds
 * (DPUService, DPUDeployment, DPUServiceTemplate, DPUServiceConfiguration,
 * DPUServiceCredentialRequest, DPUServiceInterface, DPUServiceChain,
 * DPUServiceIPAM) and the DPU-cluster kinds (ServiceInterfaceSet,
 * ServiceInterface, ServiceChainSet, ServiceChain), with DPF v24.10's CRD
 * and CEL rules and its IPAM validating webhook
 * (ipam-validator.svc.dpu.nvidia.com, answered with 400 as DPF does). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/schema-node.h"
#include "lib/base/util.h"

#define GROUP "svc.dpu.nvidia.com"
#define SVC_V1ALPHA1 .group = GROUP, .version = "v1alpha1"

/* ------------------------------------------------------------------ */
/* shared sub-schemas                                                   */
/* ------------------------------------------------------------------ */

/* Labels and annotations for a generated object. */
static const struct schema_node object_meta_lite = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(F("annotations", &schema_string_map),
           F("labels", &schema_string_map)),
};

static const struct schema_node namespaced_name = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(R("name", N_STR()), F("namespace", N_STR())),
};

static const struct schema_node match_labels = {
    .type = SCHEMA_T_MAP,
    .items = &schema_string,
    MINPROPS(1),
    MAXPROPS(50),
};

static const struct schema_node ipam_node = {
    .type = SCHEMA_T_OBJECT,
    DESC("IPAM selects an NVIPAM pool by labels"),
    FIELDS(F("defaultGateway", N_BOOL()), R("matchLabels", &match_labels),
           F("setDefaultRoute", N_BOOL())),
};

static const struct schema_node service_ifc = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(F("ipam", &ipam_node), R("matchLabels", &match_labels)),
};

static const struct schema_node chain_switch = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(R("ports", N_ARR(N_OBJ(FIELDS(R("serviceInterface", &service_ifc))),
                            MINITEMS(1), MAXITEMS(50)))),
};

static const struct schema_node chain_spec = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(F("node", N_STR()),
           R("switches", N_ARR(&chain_switch, MINITEMS(1), MAXITEMS(50)))),
};

static const struct schema_node status_conditions = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(F("conditions", &schema_conditions),
           F("observedGeneration", N_INT(FORMAT("int64")))),
};

static const struct schema_node status_set = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(F("conditions", &schema_conditions),
           F("numberApplied", N_INT(FORMAT("int32"))),
           F("numberReady", N_INT(FORMAT("int32"))),
           F("observedGeneration", N_INT(FORMAT("int64")))),
};

static const struct schema_node status_empty = {
    .type = SCHEMA_T_OBJECT,
};

static const struct schema_node helm_source = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(F("chart", N_STR()), F("path", N_STR()), F("releaseName", N_STR()),
           R("repoURL", N_STR(PATTERN("^(oci://|https://).+$"))),
           R("version", N_STR(MINLEN(1)))),
};

static const struct schema_node helm_values = {
    .type = SCHEMA_T_OBJECT,
    PRESERVE,
    DESC("Helm values (free form)"),
};

static const struct schema_node helm_chart = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(R("source", &helm_source), F("values", &helm_values)),
};

/* ------------------------------------------------------------------ */
/* ServiceInterface spec (CEL: the sub-object of the type is present)   */
/* ------------------------------------------------------------------ */

static const char iface_cel_rule[] =
    "(self.interfaceType == 'vlan' && has(self.vlan)) || "
    "(self.interfaceType == 'pf' && has(self.pf)) || "
    "(self.interfaceType == 'vf' && has(self.vf)) || "
    "(self.interfaceType == 'physical' && has(self.physical)) || "
    "(self.interfaceType == 'service' && has(self.service)) || "
    "(self.interfaceType == 'ovn')";
static const char iface_cel_msg[] =
    "`for interfaceType=vlan, vlan must be set; for interfaceType=pf, pf "
    "must be set; for interfaceType=vf, vf must be set; for "
    "interfaceType=physical, physical must be set; for "
    "interfaceType=service, service must be set`";

static int
check_iface_spec(const json_t *v, const char *path, struct dpf_error *err)
{
    const char *type = json_string_value(json_object_get(v, "interfaceType"));
    if (!type || !strcmp(type, "ovn") || json_object_get(v, type)) {
        return 0;
    }
    schema_err_invalid(err, path, v, "%s", iface_cel_msg);
    return -EINVAL;
}

static const struct schema_node iface_spec = {
    .type = SCHEMA_T_OBJECT,
    CEL(iface_cel_rule, iface_cel_msg),
    CHECK(check_iface_spec),
    FIELDS(R("interfaceType",
             N_STR(ENUM("vlan", "physical", "pf", "vf", "ovn", "service"))),
           F("node", N_STR()), F("pf", N_OBJ(FIELDS(R("pfID", N_INT())))),
           F("physical", N_OBJ(FIELDS(R("interfaceName", N_STR())))),
           F("service",
             N_OBJ(FIELDS(R("interfaceName", N_STR()), R("network", N_STR()),
                          R("serviceID", N_STR())))),
           F("vf", N_OBJ(FIELDS(R("parentInterfaceRef", N_STR()),
                                R("pfID", N_INT()), R("vfID", N_INT())))),
           F("vlan", N_OBJ(FIELDS(R("parentInterfaceRef", N_STR()),
                                  R("vlanID", N_INT()))))),
};

static const struct schema_node iface_set_spec = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(F("nodeSelector", &schema_label_selector),
           R("template", N_OBJ(FIELDS(F("metadata", &object_meta_lite),
                                      R("spec", &iface_spec))))),
};

static const struct schema_node chain_set_spec = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(F("nodeSelector", &schema_label_selector),
           R("template", N_OBJ(FIELDS(F("metadata", &object_meta_lite),
                                      R("spec", &chain_spec))))),
};

/* ------------------------------------------------------------------ */
/* DPUService                                                           */
/* ------------------------------------------------------------------ */

static int
check_dpuservice_spec(const json_t *v, const char *path, struct dpf_error *err)
{
    if (json_object_get(v, "interfaces") && !json_object_get(v, "serviceID")) {
        schema_err_invalid(err, path, v,
                           "serviceID must be provided when interfaces are "
                           "provided");
        return -EINVAL;
    }
    return 0;
}

static const struct schema_doc dpuservice_docs[] = {
    {"", "A service deployed from a Helm chart onto the DPUs of every DPU "
         "cluster (or into the host cluster)."},
    {"spec",
     "The chart, its values and how the service attaches to the chains."},
    {"spec.helmChart", "Helm chart of the service and its values."},
    {"spec.deployInCluster",
     "Install the chart into the host cluster instead of the DPU clusters."},
    {"spec.interfaces", "DPUServiceInterfaces (of type service) the service's "
                        "pods use; needs serviceID."},
    {"spec.paused", "Stop updating the service's deployments."},
    {"spec.serviceDaemonSet", "Settings of the DaemonSet the chart creates, "
                              "given to it as the serviceDaemonSet value."},
    {"spec.serviceDaemonSet.annotations", "Annotations of the service's pods."},
    {"spec.serviceDaemonSet.labels", "Labels of the service's pods."},
    {"spec.serviceDaemonSet.nodeSelector", "DPU nodes the service runs on."},
    {"spec.serviceDaemonSet.updateStrategy",
     "How the DaemonSet replaces pods."},
    {"spec.serviceDaemonSet.updateStrategy.rollingUpdate",
     "Settings of a RollingUpdate."},
    {"spec.serviceDaemonSet.updateStrategy.rollingUpdate.maxSurge",
     "Most extra pods during an update, a number or a percentage."},
    {"spec.serviceDaemonSet.updateStrategy.rollingUpdate.maxUnavailable",
     "Most unavailable pods during an update, a number or a percentage."},
    {"spec.serviceDaemonSet.updateStrategy.type", "RollingUpdate or OnDelete."},
    {"spec.serviceID", "Id of the service; set as the "
                       "svc.dpu.nvidia.com/service label on its pods."},
    {"status", "Observed state of the service."},
    {NULL, NULL},
};

static const struct schema_kind kind_dpuservice = {
    .docs = dpuservice_docs,
    SVC_V1ALPHA1,
    KIND_NAMES("DPUService", "dpuservices", "dpuservice"),
    .namespaced = true,
    .has_status = true,
    .columns = schema_columns_ready_reason_age,
    .root = KIND_ROOT(
        F("spec",
          N_OBJ(CEL("(has(self.interfaces) && has(self.serviceID)) || "
                    "(!has(self.interfaces) && !has(self.serviceID)) || "
                    "has(self.serviceID)",
                    "serviceID must be provided when interfaces are provided"),
                CHECK(check_dpuservice_spec),
                FIELDS(
                    F("deployInCluster", N_BOOL()), R("helmChart", &helm_chart),
                    F("interfaces",
                      N_ARR(&schema_string, MINITEMS(1), MAXITEMS(50))),
                    F("paused", N_BOOL()),
                    F("serviceDaemonSet",
                      N_OBJ(FIELDS(
                          F("annotations", &schema_string_map),
                          F("labels", &schema_string_map),
                          F("nodeSelector", &schema_node_selector),
                          F("updateStrategy",
                            N_OBJ(FIELDS(
                                F("rollingUpdate",
                                  N_OBJ(FIELDS(F("maxSurge", N_IOS()),
                                               F("maxUnavailable", N_IOS())))),
                                F("type", N_STR()))))))),
                    F("serviceID", N_STR())))),
        F("status", &status_conditions)),
};

/* ------------------------------------------------------------------ */
/* DPUServiceTemplate, DPUServiceConfiguration                          */
/* ------------------------------------------------------------------ */

static const struct schema_doc dpuservicetemplate_docs[] = {
    {"", "The chart and resource needs of a service of a DPUDeployment."},
    {"spec", "Chart and resources of the service."},
    {"spec.deploymentServiceName",
     "The service's key in DPUDeployment.spec.services."},
    {"spec.helmChart", "Helm chart of the service and its baseline values."},
    {"spec.resourceRequirements", "Resources the service needs on each DPU."},
    {"status", "Unused."},
    {NULL, NULL},
};

static const struct schema_kind kind_dpuservicetemplate = {
    .docs = dpuservicetemplate_docs,
    SVC_V1ALPHA1,
    KIND_NAMES("DPUServiceTemplate", "dpuservicetemplates",
               "dpuservicetemplate"),
    .namespaced = true,
    .has_status = true,
    .columns = schema_columns_age,
    .root = KIND_ROOT(
        F("spec",
          N_OBJ(FIELDS(R("deploymentServiceName", N_STR()),
                       R("helmChart", &helm_chart),
                       F("resourceRequirements", &schema_resource_list)))),
        F("status", &status_empty)),
};

static const struct schema_doc dpuserviceconfiguration_docs[] = {
    {"", "The user's settings of a service of a DPUDeployment: values, pod "
         "metadata and interfaces."},
    {"spec", "Settings of the service."},
    {"spec.deploymentServiceName",
     "The service's key in DPUDeployment.spec.services."},
    {"spec.interfaces", "Interfaces of the service, which chains connect."},
    {"spec.interfaces.name", "Name of the interface."},
    {"spec.interfaces.network", "NetworkAttachmentDefinition of the interface, "
                                "as namespace/name or name."},
    {"spec.serviceConfiguration", "Settings applied over the template."},
    {"spec.serviceConfiguration.deployInCluster",
     "Install the chart into the host cluster instead of the DPU clusters."},
    {"spec.serviceConfiguration.helmChart",
     "Values that override the template's."},
    {"spec.serviceConfiguration.serviceDaemonSet",
     "Metadata of the service's pods."},
    {"spec.serviceConfiguration.serviceDaemonSet.annotations",
     "Annotations of the service's pods."},
    {"spec.serviceConfiguration.serviceDaemonSet.labels",
     "Labels of the service's pods."},
    {"status", "Unused."},
    {NULL, NULL},
};

static const struct schema_kind kind_dpuserviceconfiguration = {
    .docs = dpuserviceconfiguration_docs,
    SVC_V1ALPHA1,
    KIND_NAMES("DPUServiceConfiguration", "dpuserviceconfigurations",
               "dpuserviceconfiguration"),
    .namespaced = true,
    .has_status = true,
    .columns = schema_columns_age,
    .root = KIND_ROOT(
        F("spec",
          N_OBJ(FIELDS(
              R("deploymentServiceName", N_STR()),
              F("interfaces",
                N_ARR(N_OBJ(FIELDS(R("name", N_STR()), R("network", N_STR()))),
                      MINITEMS(1), MAXITEMS(50))),
              F("serviceConfiguration",
                N_OBJ(FIELDS(
                    F("deployInCluster", N_BOOL()),
                    F("helmChart", N_OBJ(FIELDS(F("values", &helm_values)))),
                    F("serviceDaemonSet",
                      N_OBJ(FIELDS(F("annotations", &schema_string_map),
                                   F("labels", &schema_string_map)))))))))),
        F("status", &status_empty)),
};

/* ------------------------------------------------------------------ */
/* DPUServiceCredentialRequest                                          */
/* ------------------------------------------------------------------ */

static const struct schema_doc dpuservicecredentialrequest_docs[] = {
    {"", "A service account token for a service, written to a Secret as a "
         "kubeconfig or a token file and renewed."},
    {"spec", "Which account, for how long, and where to write it."},
    {"spec.duration", "How long a token is valid, e.g. 24h (at least 10m)."},
    {"spec.metadata", "Labels and annotations of the Secret."},
    {"spec.secret", "The Secret to write (in the host cluster)."},
    {"spec.secret.name", "Name of the Secret."},
    {"spec.secret.namespace", "Namespace of the Secret; default when empty."},
    {"spec.serviceAccount",
     "The service account to create and issue tokens for."},
    {"spec.serviceAccount.name", "Name of the service account."},
    {"spec.serviceAccount.namespace",
     "Namespace of the service account; default when empty."},
    {"spec.targetCluster",
     "DPUCluster the account lives in; the host cluster when empty."},
    {"spec.targetCluster.name", "Name of the DPUCluster."},
    {"spec.targetCluster.namespace", "Namespace of the DPUCluster."},
    {"spec.type", "What the Secret holds: kubeconfig or tokenFile."},
    {"status", "What was created and when the token expires."},
    {"status.expirationTimestamp", "When the current token expires."},
    {"status.issuedAt", "When the current token was issued."},
    {"status.secret", "The Secret written, as namespace/name."},
    {"status.serviceAccount",
     "The service account created, as namespace/name."},
    {"status.targetCluster", "The cluster the account was created in."},
    {NULL, NULL},
};

static const struct schema_kind kind_dpuservicecredentialrequest = {
    .docs = dpuservicecredentialrequest_docs,
    SVC_V1ALPHA1,
    KIND_NAMES("DPUServiceCredentialRequest", "dpuservicecredentialrequests",
               "dpuservicecredentialrequest"),
    .namespaced = true,
    .has_status = true,
    .columns = schema_columns_ready_reason_age,
    .root = KIND_ROOT(
        F("spec",
          N_OBJ(FIELDS(F("duration",
                         N_STR(PATTERN("^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"))),
                       F("metadata", &object_meta_lite),
                       R("secret", &namespaced_name),
                       R("serviceAccount", &namespaced_name),
                       F("targetCluster", &namespaced_name),
                       R("type", N_STR(ENUM("kubeconfig", "tokenFile")))))),
        F("status",
          N_OBJ(FIELDS(F("conditions", &schema_conditions),
                       F("expirationTimestamp", N_STR(FORMAT("date-time"))),
                       F("issuedAt", N_STR(FORMAT("date-time"))),
                       F("secret", N_STR()), F("serviceAccount", N_STR()),
                       F("targetCluster", N_STR()))))),
};

/* ------------------------------------------------------------------ */
/* DPUDeployment                                                        */
/* ------------------------------------------------------------------ */

static int
check_deployment_port(const json_t *v, const char *path, struct dpf_error *err)
{
    bool svc = json_object_get(v, "service") != NULL;
    bool ifc = json_object_get(v, "serviceInterface") != NULL;
    if (svc == ifc) {
        schema_err_invalid(err, path, v,
                           "either service or serviceInterface must be "
                           "specified");
        return -EINVAL;
    }
    return 0;
}

static const struct schema_node deployment_port = {
    .type = SCHEMA_T_OBJECT,
    CEL("(has(self.service) && !has(self.serviceInterface)) || "
        "(!has(self.service) && has(self.serviceInterface))",
        "either service or serviceInterface must be specified"),
    CHECK(check_deployment_port),
    FIELDS(
        F("service", N_OBJ(FIELDS(R("interface", N_STR()),
                                  F("ipam", &ipam_node), R("name", N_STR())))),
        F("serviceInterface", &service_ifc)),
};

static const struct schema_doc dpudeployment_docs[] = {
    {"", "DPUs, the services on them and the chains between those services, "
         "declared together."},
    {"spec", "The DPUs, services and service chains."},
    {"spec.dpus", "The DPUs to provision."},
    {"spec.dpus.bfb", "Name of the BFB in this namespace."},
    {"spec.dpus.dpuSets", "DPUSets to create, one per entry."},
    {"spec.dpus.dpuSets.dpuAnnotations",
     "Annotations of the DPUs of this set."},
    {"spec.dpus.dpuSets.dpuSelector",
     "Which DPU of a node to take, by its NFD labels."},
    {"spec.dpus.dpuSets.nameSuffix", "Suffix of the DPUSet's name."},
    {"spec.dpus.dpuSets.nodeSelector", "Host nodes of this set."},
    {"spec.dpus.flavor", "Name of the DPUFlavor in this namespace."},
    {"spec.serviceChains", "Switches connecting the services' interfaces."},
    {"spec.serviceChains.ports.service",
     "An interface of one of this deployment's services."},
    {"spec.serviceChains.ports.service.interface",
     "Interface name from the service's DPUServiceConfiguration."},
    {"spec.serviceChains.ports.service.name",
     "The service, by its key in services."},
    {"spec.services", "The services to deploy, by name."},
    {"spec.services.serviceConfiguration",
     "Name of the DPUServiceConfiguration of the service."},
    {"spec.services.serviceTemplate",
     "Name of the DPUServiceTemplate of the service."},
    {"status", "Observed state of the deployment."},
    {NULL, NULL},
};

static const struct schema_kind kind_dpudeployment = {
    .docs = dpudeployment_docs,
    SVC_V1ALPHA1,
    KIND_NAMES("DPUDeployment", "dpudeployments", "dpudeployment"),
    .namespaced = true,
    .has_status = true,
    .columns = schema_columns_ready_reason_age,
    .root = KIND_ROOT(
        F("spec",
          N_OBJ(FIELDS(
              R("dpus",
                N_OBJ(FIELDS(
                    R("bfb", N_STR()),
                    F("dpuSets",
                      N_ARR(N_OBJ(FIELDS(
                                F("dpuAnnotations", &schema_string_map),
                                F("dpuSelector", &schema_string_map),
                                R("nameSuffix", N_STR(MINLEN(1), MAXLEN(63))),
                                F("nodeSelector", &schema_label_selector))),
                            MINITEMS(1), MAXITEMS(50))),
                    R("flavor", N_STR())))),
              R("serviceChains",
                N_ARR(
                    N_OBJ(FIELDS(R("ports", N_ARR(&deployment_port, MINITEMS(1),
                                                  MAXITEMS(50))))),
                    MINITEMS(1), MAXITEMS(50))),
              R("services",
                N_MAP(N_OBJ(FIELDS(R("serviceConfiguration", N_STR()),
                                   R("serviceTemplate", N_STR())))))))),
        F("status", &status_conditions)),
};

/* ------------------------------------------------------------------ */
/* DPUServiceInterface, DPUServiceChain                                 */
/* ------------------------------------------------------------------ */

static const struct schema_column dpuserviceinterface_columns[] = {
    COLUMN_READY,
    COLUMN_READY_REASON,
    {"IfType", "string", ".spec.template.spec.template.spec.interfaceType",
     NULL, 0, NULL},
    {"IfName", "string", ".spec.template.spec.template.spec.interfaceName",
     NULL, 0, NULL},
    COLUMN_AGE,
    COLUMNS_END,
};

static const struct schema_doc dpuserviceinterface_docs[] = {
    {"", "Interfaces to create on the DPUs of every DPU cluster, as a "
         "ServiceInterfaceSet there."},
    {"spec", "Template of the ServiceInterfaceSet."},
    {"spec.template", "The ServiceInterfaceSet to create in each DPU cluster."},
    {"spec.template.spec.template",
     "Template of the ServiceInterfaces, one per DPU node."},
    {"status", "Observed state."},
    {NULL, NULL},
};

static const struct schema_kind kind_dpuserviceinterface = {
    .docs = dpuserviceinterface_docs,
    SVC_V1ALPHA1,
    KIND_NAMES("DPUServiceInterface", "dpuserviceinterfaces",
               "dpuserviceinterface"),
    .namespaced = true,
    .has_status = true,
    .columns = dpuserviceinterface_columns,
    .root = KIND_ROOT(
        F("spec", N_OBJ(FIELDS(F("clusterSelector", &schema_label_selector),
                               R("template",
                                 N_OBJ(FIELDS(F("metadata", &object_meta_lite),
                                              R("spec", &iface_set_spec))))))),
        F("status", &status_conditions)),
};

static const struct schema_doc dpuservicechain_docs[] = {
    {"", "Service chains to create on the DPUs of every DPU cluster, as a "
         "ServiceChainSet there."},
    {"spec", "Template of the ServiceChainSet."},
    {"spec.template", "The ServiceChainSet to create in each DPU cluster."},
    {"spec.template.spec.template",
     "Template of the ServiceChains, one per DPU node."},
    {"status", "Observed state."},
    {NULL, NULL},
};

static const struct schema_kind kind_dpuservicechain = {
    .docs = dpuservicechain_docs,
    SVC_V1ALPHA1,
    KIND_NAMES("DPUServiceChain", "dpuservicechains", "dpuservicechain"),
    .namespaced = true,
    .has_status = true,
    .columns = schema_columns_ready_reason_age,
    .root = KIND_ROOT(
        F("spec", N_OBJ(FIELDS(F("clusterSelector", &schema_label_selector),
                               R("template",
                                 N_OBJ(FIELDS(F("metadata", &object_meta_lite),
                                              R("spec", &chain_set_spec))))))),
        F("status", &status_conditions)),
};

/* ------------------------------------------------------------------ */
/* DPUServiceIPAM                                                       */
/* ------------------------------------------------------------------ */

/* An address or prefix as Go's net package parses it. */
struct ipnet {
    int family;             /* AF_INET or AF_INET6 */
    unsigned char addr[16]; /* network address (host bits cleared) */
    unsigned char ip[16];   /* the address as written */
    int prefix;             /* prefix length */
};

static int
parse_ip(const char *s, int *family, unsigned char *out)
{
    if (!s) {
        return -EINVAL;
    }
    if (inet_pton(AF_INET, s, out) == 1) {
        *family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, out) == 1) {
        *family = AF_INET6;
        return 0;
    }
    return -EINVAL;
}

static int
parse_cidr(const char *s, struct ipnet *n)
{
    if (!s) {
        return -EINVAL;
    }
    const char *slash = strchr(s, '/');
    if (!slash || !slash[1] || strlen(s) > 64) {
        return -EINVAL;
    }
    char ip[80];
    snprintf(ip, sizeof ip, "%.*s", (int) (slash - s), s);
    memset(n, 0, sizeof *n);
    if (parse_ip(ip, &n->family, n->ip) < 0) {
        return -EINVAL;
    }
    int max = n->family == AF_INET ? 32 : 128;
    char *end;
    long p = strtol(slash + 1, &end, 10);
    if (*end || p < 0 || p > max || (slash[1] == '0' && slash[2])) {
        return -EINVAL;
    }
    n->prefix = (int) p;
    int bytes = max / 8;
    for (int i = 0; i < bytes; i++) {
        int bits = n->prefix - i * 8;
        unsigned char mask = bits >= 8   ? 0xff
                             : bits <= 0 ? 0
                                         : (unsigned char) (0xff << (8 - bits));
        n->addr[i] = n->ip[i] & mask;
    }
    return 0;
}

static bool
net_contains(const struct ipnet *n, int family, const unsigned char *ip)
{
    if (family != n->family) {
        return false;
    }
    int bytes = family == AF_INET ? 4 : 16;
    for (int i = 0; i < bytes; i++) {
        int bits = n->prefix - i * 8;
        unsigned char mask = bits >= 8   ? 0xff
                             : bits <= 0 ? 0
                                         : (unsigned char) (0xff << (8 - bits));
        if ((ip[i] & mask) != n->addr[i]) {
            return false;
        }
    }
    return true;
}

static bool
is_default_route(const struct ipnet *n)
{
    return n->prefix == 0;
}

static void
ipam_err(struct dpf_error *err, const char *path, const json_t *v,
         const char *msg)
{
    schema_err_invalid(err, path, v, "%s", msg);
}

static void
validate_routes(const json_t *routes, const char *base, const struct ipnet *net,
                bool default_gw, struct dpf_error *err)
{
    size_t i;
    const json_t *r;
    json_array_foreach(routes, i, r)
    {
        const json_t *dst = json_object_get(r, "dst");
        const char *s = json_string_value(dst);
        char path[160], msg[224];
        snprintf(path, sizeof path, "%s.routes[%zu].dst", base, i);
        struct ipnet rn;
        if (parse_cidr(s, &rn) < 0) {
            snprintf(msg, sizeof msg, "route %s is not a valid subnet",
                     s ? s : "");
            ipam_err(err, path, dst, msg);
            continue;
        }
        if (net && rn.family != net->family) {
            snprintf(msg, sizeof msg,
                     "route %s is not same address family IPv4/IPv6", s);
            ipam_err(err, path, dst, msg);
        }
        if (default_gw && is_default_route(&rn)) {
            snprintf(msg, sizeof msg,
                     "default route %s is not allowed if 'defaultGateway' is "
                     "true",
                     s);
            ipam_err(err, path, dst, msg);
        }
    }
}

static void
validate_ipv4_network(const json_t *nw, struct dpf_error *err)
{
    const char *base = "spec.ipv4Network";
    const json_t *jnet = json_object_get(nw, "network");
    const char *network = json_string_value(jnet);
    char msg[224], path[160];
    struct ipnet net;
    if (parse_cidr(network, &net) < 0) {
        snprintf(msg, sizeof msg, "network %s is not a valid network",
                 network ? network : "");
        ipam_err(err, "spec.ipv4Network.network", jnet, msg);
        return;
    }
    json_int_t prefix = json_integer_value(json_object_get(nw, "prefixSize"));
    if (net.prefix > prefix) {
        snprintf(msg, sizeof msg,
                 "prefixSize %lld doesn't fit in network prefix %d",
                 (long long) prefix, net.prefix);
        ipam_err(err, "spec.ipv4Network.prefixSize",
                 json_object_get(nw, "prefixSize"), msg);
        return;
    }
    size_t i;
    const json_t *ex;
    json_array_foreach(json_object_get(nw, "exclusions"), i, ex)
    {
        const char *s = json_string_value(ex);
        unsigned char ip[16];
        int fam;
        snprintf(path, sizeof path, "%s.exclusions[%zu]", base, i);
        if (parse_ip(s, &fam, ip) < 0) {
            snprintf(msg, sizeof msg, "exclusion %s is not a valid IP",
                     s ? s : "");
            ipam_err(err, path, ex, msg);
        } else if (!net_contains(&net, fam, ip)) {
            snprintf(msg, sizeof msg, "exclusion %s is not part of network %s",
                     s, network);
            ipam_err(err, path, ex, msg);
        }
    }
    const char *node;
    const json_t *al;
    json_object_foreach(json_object_get(nw, "allocations"), node, al)
    {
        const char *s = json_string_value(al);
        struct ipnet an;
        snprintf(path, sizeof path, "%s.allocations[%s]", base, node);
        if (parse_cidr(s, &an) < 0) {
            snprintf(msg, sizeof msg, "allocation %s is not a valid subnet",
                     s ? s : "");
            ipam_err(err, path, al, msg);
        } else if (!net_contains(&net, an.family, an.addr) ||
                   an.prefix != prefix) {
            snprintf(msg, sizeof msg,
                     "allocation %s is not part of the network %s", s, network);
            ipam_err(err, path, al, msg);
        }
    }
    validate_routes(json_object_get(nw, "routes"), base, &net,
                    json_is_true(json_object_get(nw, "defaultGateway")), err);
}

static void
validate_ipv4_subnet(const json_t *sn, struct dpf_error *err)
{
    const json_t *jsub = json_object_get(sn, "subnet");
    const json_t *jgw = json_object_get(sn, "gateway");
    const char *subnet = json_string_value(jsub);
    const char *gw = json_string_value(jgw);
    char msg[224];
    struct ipnet net;
    if (parse_cidr(subnet, &net) < 0) {
        snprintf(msg, sizeof msg, "subnet %s is not a valid network",
                 subnet ? subnet : "");
        ipam_err(err, "spec.ipv4Subnet.subnet", jsub, msg);
        return;
    }
    unsigned char ip[16];
    int fam;
    if (parse_ip(gw, &fam, ip) < 0) {
        snprintf(msg, sizeof msg, "gateway %s is not a valid IP", gw ? gw : "");
        ipam_err(err, "spec.ipv4Subnet.gateway", jgw, msg);
        return;
    }
    if (!net_contains(&net, fam, ip)) {
        snprintf(msg, sizeof msg, "gateway %s is not part of subnet %s", gw,
                 subnet);
        ipam_err(err, "spec.ipv4Subnet.gateway", jgw, msg);
        return;
    }
    validate_routes(json_object_get(sn, "routes"), "spec.ipv4Subnet", &net,
                    json_is_true(json_object_get(sn, "defaultGateway")), err);
}

/* New range must contain the old base address with a prefix no longer. */
static void
validate_not_shrinking(const json_t *jnew, const json_t *jold, const char *path,
                       struct dpf_error *err)
{
    struct ipnet nn, on;
    if (parse_cidr(json_string_value(jold), &on) < 0 ||
        parse_cidr(json_string_value(jnew), &nn) < 0) {
        return;
    }
    if (!net_contains(&nn, on.family, on.ip) || on.prefix < nn.prefix) {
        ipam_err(err, path, jnew, "you cannot shrink the ip subnet");
    }
}

static int
dpuserviceipam_validate(const json_t *obj, const json_t *old,
                        struct dpf_error *err)
{
    size_t before = err->n_causes;
    const char *ns = schema_get_str(obj, "metadata.namespace");
    if (!ns || strcmp(ns, "dpf-operator-system")) {
        ipam_err(err, "metadata.namespace",
                 schema_get(obj, "metadata.namespace"),
                 "currently only 'dpf-operator-system' namespace is "
                 "supported");
    }
    const json_t *nw = schema_get(obj, "spec.ipv4Network");
    const json_t *sn = schema_get(obj, "spec.ipv4Subnet");
    if (old) {
        const json_t *onw = schema_get(old, "spec.ipv4Network");
        const json_t *osn = schema_get(old, "spec.ipv4Subnet");
        if ((osn && nw) || (onw && sn)) {
            schema_err_forbidden(err, "spec",
                                 "transitioning from ipv4subnet to "
                                 "ipv4network and vice versa is currently "
                                 "not supported");
        }
    }
    if (!nw && !sn) {
        schema_err_required(err, "spec",
                            "either ipv4Subnet or ipv4Network must be "
                            "specified");
    }
    if (nw && sn) {
        ipam_err(err, "spec", schema_get(obj, "spec"),
                 "either ipv4Subnet or ipv4Network must be specified but not "
                 "both");
    }
    if (nw) {
        validate_ipv4_network(nw, err);
        const json_t *onw = old ? schema_get(old, "spec.ipv4Network") : NULL;
        if (onw) {
            validate_not_shrinking(json_object_get(nw, "network"),
                                   json_object_get(onw, "network"),
                                   "spec.ipv4Network.network", err);
        }
    }
    if (sn) {
        validate_ipv4_subnet(sn, err);
        const json_t *osn = old ? schema_get(old, "spec.ipv4Subnet") : NULL;
        if (osn) {
            validate_not_shrinking(json_object_get(sn, "subnet"),
                                   json_object_get(osn, "subnet"),
                                   "spec.ipv4Subnet.subnet", err);
        }
    }
    return err->n_causes > before ? -EINVAL : 0;
}

static const struct schema_node ipam_routes = {
    .type = SCHEMA_T_ARRAY,
    .items = N_OBJ(FIELDS(R("dst", N_STR()))),
};

static const struct schema_doc dpuserviceipam_docs[] = {
    {"", "An IP address pool for the DPU services' interfaces, split among the "
         "DPU nodes (an NVIDIA IPAM pool in each DPU cluster)."},
    {"spec", "The pool: either ipv4Network or ipv4Subnet."},
    {"spec.ipv4Network",
     "A network split into one subnet per node, each with its own gateway."},
    {"spec.ipv4Network.gatewayIndex",
     "Index of the gateway address in each node's subnet; leave out for /31 "
     "links."},
    {"spec.ipv4Network.network", "The network in CIDR notation."},
    {"spec.ipv4Network.prefixSize", "Prefix length of each node's subnet."},
    {"spec.ipv4Network.allocations", "Fixed subnets for nodes, by node name."},
    {"spec.ipv4Subnet",
     "One subnet shared by all nodes, each node getting a block of it."},
    {"spec.ipv4Subnet.perNodeIPCount", "Number of addresses each node gets."},
    {"spec.ipv4Subnet.subnet", "The subnet in CIDR notation."},
    {"spec.metadata",
     "Labels and annotations of the pool; chains select it by these labels."},
    {"status", "Observed state."},
    {NULL, NULL},
};

static const struct schema_kind kind_dpuserviceipam = {
    .docs = dpuserviceipam_docs,
    SVC_V1ALPHA1,
    KIND_NAMES("DPUServiceIPAM", "dpuserviceipams", "dpuserviceipam"),
    .namespaced = true,
    .has_status = true,
    .columns = schema_columns_ready_reason_age,
    .root = KIND_ROOT(
        F("spec", N_OBJ(FIELDS(
                      F("clusterSelector", &schema_label_selector),
                      F("ipv4Network",
                        N_OBJ(FIELDS(F("allocations", &schema_string_map),
                                     F("defaultGateway", N_BOOL()),
                                     F("exclusions", &schema_string_list),
                                     F("gatewayIndex", N_INT(FORMAT("int32"))),
                                     R("network", N_STR()),
                                     R("prefixSize", N_INT(FORMAT("int32"))),
                                     F("routes", &ipam_routes)))),
                      F("ipv4Subnet",
                        N_OBJ(FIELDS(
                            F("defaultGateway", N_BOOL()),
                            R("gateway", N_STR()), R("perNodeIPCount", N_INT()),
                            F("routes", &ipam_routes), R("subnet", N_STR())))),
                      F("metadata", &object_meta_lite),
                      F("nodeSelector", &schema_node_selector)))),
        F("status", &status_conditions)),
    .validate = dpuserviceipam_validate,
    .invalid_code = 400,
};

/* ------------------------------------------------------------------ */
/* DPU-cluster kinds                                                    */
/* ------------------------------------------------------------------ */

static const struct schema_column serviceinterfaceset_columns[] = {
    COLUMN("IfType", "string", ".spec.template.spec.interfaceType"),
    COLUMN("IfName", "string", ".spec.template.spec.interfaceName"),
    COLUMN_AGE,
    COLUMNS_END,
};

static const struct schema_doc serviceinterfaceset_docs[] = {
    {"",
     "ServiceInterfaces to create on the selected DPU nodes, one per node."},
    {"spec", "Which nodes and what interface."},
    {"spec.template", "Template of the ServiceInterfaces."},
    {"status", "Observed state."},
    {"status.numberApplied", "Number of ServiceInterfaces created."},
    {"status.numberReady", "Number of ServiceInterfaces ready."},
    {NULL, NULL},
};

static const struct schema_kind kind_serviceinterfaceset = {
    .docs = serviceinterfaceset_docs,
    SVC_V1ALPHA1,
    KIND_NAMES("ServiceInterfaceSet", "serviceinterfacesets",
               "serviceinterfaceset"),
    .namespaced = true,
    .has_status = true,
    .columns = serviceinterfaceset_columns,
    .root = KIND_ROOT(F("spec", &iface_set_spec), F("status", &status_set)),
};

static const struct schema_column serviceinterface_columns[] = {
    COLUMN("IfType", "string", ".spec.interfaceType"),
    COLUMN("IfName", "string", ".spec.interfaceName"),
    COLUMN_AGE,
    COLUMNS_END,
};

static const struct schema_doc serviceinterface_docs[] = {
    {"", "An interface on a DPU node that service chains connect."},
    {"spec", "The interface."},
    {"status", "Unused."},
    {NULL, NULL},
};

static const struct schema_kind kind_serviceinterface = {
    .docs = serviceinterface_docs,
    SVC_V1ALPHA1,
    KIND_NAMES("ServiceInterface", "serviceinterfaces", "serviceinterface"),
    .namespaced = true,
    .has_status = true,
    .columns = serviceinterface_columns,
    .root = KIND_ROOT(F("spec", &iface_spec), F("status", &status_empty)),
};

static const struct schema_doc servicechainset_docs[] = {
    {"", "ServiceChains to create on the selected DPU nodes, one per node."},
    {"spec", "Which nodes and what chain."},
    {"spec.template", "Template of the ServiceChains."},
    {"status", "Observed state."},
    {"status.numberApplied", "Number of ServiceChains created."},
    {"status.numberReady", "Number of ServiceChains ready."},
    {NULL, NULL},
};

static const struct schema_kind kind_servicechainset = {
    .docs = servicechainset_docs,
    SVC_V1ALPHA1,
    KIND_NAMES("ServiceChainSet", "servicechainsets", "servicechainset"),
    .namespaced = true,
    .has_status = true,
    .columns = schema_columns_age,
    .root = KIND_ROOT(F("spec", &chain_set_spec), F("status", &status_set)),
};

static const struct schema_doc servicechain_docs[] = {
    {"", "A chain of switches connecting service interfaces on one DPU node."},
    {"spec", "The switches of the chain."},
    {"status", "Unused."},
    {NULL, NULL},
};

static const struct schema_kind kind_servicechain = {
    .docs = servicechain_docs,
    SVC_V1ALPHA1,
    KIND_NAMES("ServiceChain", "servicechains", "servicechain"),
    .namespaced = true,
    .has_status = true,
    .columns = schema_columns_age,
    .root = KIND_ROOT(F("spec", &chain_spec), F("status", &status_empty)),
};

SCHEMA_GROUP_1(schema_group_svc, GROUP, "v1alpha1", &kind_dpuservice,
               &kind_dpudeployment, &kind_dpuservicetemplate,
               &kind_dpuserviceconfiguration, &kind_dpuservicecredentialrequest,
               &kind_dpuserviceinterface, &kind_dpuservicechain,
               &kind_dpuserviceipam, &kind_serviceinterfaceset,
               &kind_serviceinterface, &kind_servicechainset,
               &kind_servicechain);
