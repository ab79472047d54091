/* allocator: which DPUCluster a DPU joins (DPF's internal allocator,
 * dpf-spec §2.5), shared by the DPUCluster and DPU controllers of one
 * controller term (controllers/runner.c creates it).
 *
 * State: the DPUClusters (namespace, name, phase, maxNodes) and which DPU
 * (by UID) is assigned to which cluster. It lives in memory but is never
 * the only record: the assignment is the DPU's spec.cluster, so on first
 * use (allocator_assign() with a REST client) the allocator lists every
 * DPUCluster and DPU from the API and rebuilds itself; a restarted
 * controller therefore counts exactly what the API says.
 *
 * Policy: the DPUCluster first by name (then namespace) that is phase
 * Ready and has fewer assigned DPUs than spec.maxNodes. DPF takes the
 * first by name and fails when that one is not Ready or full; we skip to
 * the next, so a second cluster takes over when the first fills up.
 * maxNodes is enforced here, by counting assignments: the DPU cluster's
 * API server itself does not refuse extra Nodes.
 *
 * Threads: every function may be called from any thread (one mutex);
 * allocator_assign() blocks on the API (call it from a reconcile worker,
 * never the loop thread). */
#ifndef DPF_ALLOCATOR_H
#define DPF_ALLOCATOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "lib/base/error.h"

struct kube_rest;
struct allocator;

/* rest may be NULL (unit tests: state comes from allocator_load() and
 * allocator_cluster_set() only, and assign does not write). Borrowed: it
 * must outlive the allocator. */
struct allocator *allocator_create(struct kube_rest *rest);
void allocator_destroy(struct allocator *a);

/* Replace the whole state from a list of DPUClusters and a list of DPUs
 * (JSON arrays of objects, borrowed). A DPU counts against the cluster its
 * spec.cluster names (namespace defaults to the DPU's own). */
void allocator_load(struct allocator *a, const json_t *clusters,
                    const json_t *dpus);
/* Record or refresh a DPUCluster (phase, maxNodes); the DPUCluster
 * controller calls it on every reconcile. */
void allocator_cluster_set(struct allocator *a, const json_t *cluster);
/* Forget a DPUCluster (deleted); its DPUs stay recorded against it. */
void allocator_cluster_remove(struct allocator *a, const char *ns,
                              const char *name);

/* Pick a cluster for dpu and record the assignment (no API write).
 * A DPU that is assigned already gets its cluster again. 0 with *ns and
 * *name (malloc'd) set, or -EAGAIN with err saying why none fits
 * ("no DPUCluster is Ready: ns/a is NotReady" or "every Ready DPUCluster
 * is full: ns/a has 10 of 10 nodes"), so the DPU can show it. */
int allocator_pick(struct allocator *a, const json_t *dpu, char **ns,
                   char **name, struct dpf_error *err);
/* What the DPU controller calls (DPF's Allocate): the first call rebuilds
 * the state from the API; then pick, and patch the DPU's
 * spec.cluster.{name,namespace} (a merge patch). On a failed patch the
 * assignment is released again. 0, -EAGAIN (nothing fits) or the API's
 * error. ns/name may be NULL; patched (may be NULL) gets the DPU the
 * patch returned (a new reference; NULL without a REST client). */
int allocator_assign(struct allocator *a, const json_t *dpu, char **ns,
                     char **name, json_t **patched, struct dpf_error *err);
/* Record a DPU that already names its cluster (created with
 * spec.cluster set, or assigned by an earlier run). */
void allocator_save(struct allocator *a, const json_t *dpu);
/* Release a DPU's assignment (deleted). */
void allocator_release(struct allocator *a, const char *dpu_uid);
/* DPUs assigned to ns/name. */
size_t allocator_count(struct allocator *a, const char *ns, const char *name);

#endif
