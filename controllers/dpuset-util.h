/* dpuset-util: the pure rules of the DPUSet and DPU controllers (names,
 * labels, which DPUs of a node a set selects, maxUnavailable, node
 * effects), apart from the controllers so unit tests reach them
 * (tests/unit/test-dpuset.c).
 *
 * Threads: pure functions; any thread. Ownership: returned strings and
 * JSON values are new (free()/json_decref()). */
#ifndef DPF_DPUSET_UTIL_H
#define DPF_DPUSET_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define PROV_GROUP "provisioning.dpu.nvidia.com"
#define LABEL_DPUSET_NAME PROV_GROUP "/dpuset-name"
#define LABEL_DPUSET_NAMESPACE PROV_GROUP "/dpuset-namespace"
#define LABEL_DPU_PCI PROV_GROUP "/dpu-pciAddress"
#define LABEL_DPU_PF PROV_GROUP "/dpu-pf-name"
#define LABEL_DPU_HOST_IP PROV_GROUP "/dpu-host-ip"
#define LABEL_BFB_VERSION PROV_GROUP "/DOCA-BFB-version"
#define LABEL_DPU_HOST PROV_GROUP "/host"
#define NFD_PREFIX "feature.node.kubernetes.io/"
#define NFD_OOB_BRIDGE NFD_PREFIX "dpu-oob-bridge-configured"
#define NFD_DPU_ENABLED NFD_PREFIX "dpu-enabled"

#define DPU_MAX_INDEX 64 /* DPUs per host we consider */

/* DPF's DPU name: "<lowercase(node)>-<pci label value>"
 * ("Worker1", "0000-04-00" -> "worker1-0000-04-00"). */
char *dpuset_dpu_name(const char *node, const char *pci);

/* The node label key "feature.node.kubernetes.io/dpu-<i>-<suffix>". */
char *dpuset_nfd_key(int index, const char *suffix);

/* The DPU indexes of a node a set selects, DPF's rule: an empty
 * dpuSelector takes DPU 0 when the node has a dpu-0-pci-address label;
 * otherwise every selector key of the form
 * feature.node.kubernetes.io/dpu-<N>-... whose value equals the node's
 * label selects DPU N (other keys are ignored, as DPF does). Writes at
 * most max indexes in ascending order into out; returns how many. */
size_t dpuset_select_indexes(const json_t *node_labels,
                             const json_t *dpu_selector, int *out, size_t max);

/* maxUnavailable (an integer or "N%") resolved against total DPUs: a
 * percentage is rounded up, the result clamped to [1, total] (0 when
 * total is 0). A missing or malformed value counts as 1. */
int dpuset_max_unavailable(const json_t *v, int total);

/* The labels of the DPU for index i of a node in a set: the set's own
 * labels, dpuset-name/-namespace, dpu-pciAddress, dpu-pf-name and
 * dpu-host-ip (the node's InternalIP). NULL with *why (static text) when
 * the node has no (or an empty) PCI address label for index i. */
json_t *dpuset_dpu_labels(const json_t *set, const json_t *node, int i,
                          const char **why);

/* The node's first InternalIP (borrowed) or NULL. */
const char *dpuset_node_internal_ip(const json_t *node);

/* The informer transform of the host Nodes that the DPUSet and DPU
 * controllers share: they read a Node's metadata (labels, annotations,
 * deletion), its spec (taints, unschedulable: the node effect) and its
 * InternalIP; the rest of the status (conditions, capacity, nodeInfo) is
 * not cached. */
void dpuset_node_slim(json_t *node);

/* The PCI bus:device DMS wants from the label value: "0000-4b-00" ->
 * "4b:00". NULL when malformed. */
char *dpuset_pci_bus_dev(const char *label);

/* Add the node-effect changes to a Node copy: apply (true) or lift
 * (false) effect (a DPU's spec.nodeEffect) on node. taint: a taint with
 * the effect's key added when none has it / removed by key; customLabel:
 * labels set / removed when they still hold our value; drain: the node
 * cordoned (spec.unschedulable) with the annotation
 * provisioning.dpu.nvidia.com/cordoned-by listing requestors (so a node
 * the admin cordoned stays cordoned when we lift) / uncordoned when we
 * are the last requestor. requestor names the DPU ("ns/name"). Returns
 * true when node changed. */
bool dpuset_node_effect_edit(json_t *node, const json_t *effect, bool apply,
                             const char *requestor);
/* Whether effect is already applied on node (taint present, labels set,
 * cordoned by us). noEffect or a missing effect: true. */
bool dpuset_node_effect_applied(const json_t *node, const json_t *effect,
                                const char *requestor);

/* Whether a pod on a host being drained is to be removed: not a mirror
 * pod (kubernetes.io/config.mirror), not owned by a DaemonSet, not one of
 * DPF's own (owned by a DPU: the DMS and hostnetwork pods), not
 * finished. */
bool dpuset_pod_evictable(const json_t *pod);

#endif
