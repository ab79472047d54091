/* kinds-operator: operator.dpu.nvidia.com/v1alpha1 DPFOperatorConfig, the
 * singleton that tells the operator which system components to install,
 * with DPF v24.10's ranges and its Image / HelmChart patterns. */
#include "api/schema-node.h"

#define OPERATOR_GROUP "operator.dpu.nvidia.com"
#define OPERATOR_V1ALPHA1 .group = OPERATOR_GROUP, .version = "v1alpha1"

/* A docker image reference: registry[:port]/path[:tag][@digest]. */
#define IMAGE_PATTERN                                                        \
    "^((?:(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\\.(?:["  \
    "a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\\[(?:[a-fA-F0-9:]+)" \
    "\\])(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*(?:/[a-z0-9]" \
    "+(?:(?:[._]|__|[-]+)[a-z0-9]+)*)*)(?::([\\w][\\w.-]{0,127}))?(?:@([A-"  \
    "Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}))" \
    "?$"

/* <repo>/<chart>:<version> with an oci:// or https:// repository. */
#define HELM_CHART_PATTERN "^(oci://|https://).+$"

static const struct schema_node image = {
    .type = SCHEMA_T_STRING,
    DESC("Image overrides the container image of the component"),
    PATTERN(IMAGE_PATTERN),
};

static const struct schema_node helm_chart = {
    .type = SCHEMA_T_STRING,
    DESC("HelmChart overrides the chart (<repo>/<chart>:<version>)"),
    PATTERN(HELM_CHART_PATTERN),
};

static const struct schema_node disable = {
    .type = SCHEMA_T_BOOLEAN,
    DESC("Disable the component"),
};

/* disable + image */
static const struct schema_node component_image = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(F("disable", &disable), F("image", &image)),
};

/* disable + image + helmChart */
static const struct schema_node component_chart = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(F("disable", &disable), F("helmChart", &helm_chart),
           F("image", &image)),
};

static const struct schema_doc dpfoperatorconfig_docs[] = {
    {"", "Configuration of the DPF operator and the components it deploys."},
    {"spec", "Settings of each component."},
    {"spec.dpuDetector",
     "The DPU detector that labels host nodes with their DPUs."},
    {"spec.dpuDetector.collectors", "What the detector collects."},
    {"spec.dpuDetector.collectors.psID", "Collect the DPU's PSID."},
    {"spec.dpuServiceController", "The DPUService controller."},
    {"spec.flannel", "Flannel, the DPU clusters' pod network."},
    {"spec.imagePullSecrets",
     "Secrets in this namespace used to pull the components' images."},
    {"spec.kamajiClusterManager",
     "The cluster manager for Kamaji DPU clusters."},
    {"spec.multus", "Multus CNI in the DPU clusters."},
    {"spec.networking", "Network settings of the DPU clusters."},
    {"spec.networking.controlPlaneMTU",
     "MTU of the DPU clusters' pod network, 0 to 9216 (default 1500)."},
    {"spec.networking.highSpeedMTU", "MTU of the high-speed service networks "
                                     "and host VFs, 0 to 9216 (default 1500)."},
    {"spec.nvipam", "NVIDIA IPAM in the DPU clusters."},
    {"spec.overrides", "Settings that change how the operator itself behaves."},
    {"spec.overrides.paused", "Stop all reconciling."},
    {"spec.ovsCNI", "The OVS CNI in the DPU clusters."},
    {"spec.ovsHelper", "The OVS helper on the DPUs."},
    {"spec.provisioningController",
     "The provisioning controller (BFBs, DPUs, DPUSets, DPU clusters)."},
    {"spec.provisioningController.bfbPVCName",
     "PersistentVolumeClaim where BFBs are stored."},
    {"spec.provisioningController.dmsTimeout",
     "Seconds a DMS command may run (default 900)."},
    {"spec.serviceSetController", "The ServiceChainSet and ServiceInterfaceSet "
                                  "controller in the DPU clusters."},
    {"spec.sfcController",
     "The service function chaining controller on the DPUs."},
    {"spec.sriovDevicePlugin", "The SR-IOV device plugin in the DPU clusters."},
    {"spec.staticClusterManager",
     "The cluster manager for static DPU clusters (off by default)."},
    {"status", "Observed state of the components."},
    {NULL, NULL},
};

static const struct schema_kind kind_dpfoperatorconfig = {
    .docs = dpfoperatorconfig_docs,
    OPERATOR_V1ALPHA1,
    KIND_NAMES("DPFOperatorConfig", "dpfoperatorconfigs", "dpfoperatorconfig"),
    .namespaced = true,
    .has_status = true,
    .columns = schema_columns_ready_reason_age,
    .root = KIND_ROOT(
        F("spec",
          N_OBJ(FIELDS(
              F("dpuDetector",
                N_OBJ(
                    FIELDS(F("collectors", N_OBJ(FIELDS(F("psID", N_BOOL())))),
                           F("disable", &disable), F("image", &image)))),
              F("dpuServiceController", &component_image),
              F("flannel", N_OBJ(FIELDS(F("disable", &disable),
                                        F("helmChart", &helm_chart)))),
              F("imagePullSecrets", &schema_string_list),
              F("kamajiClusterManager", &component_image),
              F("multus", &component_chart),
              F("networking",
                N_OBJ(
                    DEFAULT("{\"controlPlaneMTU\":1500}"),
                    FIELDS(F("controlPlaneMTU",
                             N_INT(MINIMUM(0), MAXIMUM(9216), DEFAULT("1500"))),
                           F("highSpeedMTU", N_INT(MINIMUM(0), MAXIMUM(9216),
                                                   DEFAULT("1500")))))),
              F("nvipam", &component_chart),
              F("overrides", N_OBJ(FIELDS(F("paused", N_BOOL())))),
              F("ovsCNI", &component_chart), F("ovsHelper", &component_chart),
              R("provisioningController",
                N_OBJ(FIELDS(
                    R("bfbPVCName", N_STR(MINLEN(1))), F("disable", &disable),
                    F("dmsTimeout", N_INT(MINIMUM(1))), F("image", &image)))),
              F("serviceSetController", &component_chart),
              F("sfcController", &component_chart),
              F("sriovDevicePlugin", &component_chart),
              F("staticClusterManager", &component_image)))),
        F("status",
          N_OBJ(FIELDS(F("conditions", &schema_conditions),
                       F("observedGeneration", N_INT(FORMAT("int64"))))))),
};

SCHEMA_GROUP_1(schema_group_operator, OPERATOR_GROUP, "v1alpha1",
               &kind_dpfoperatorconfig);
