/* dcview: the Nodes of every DPU cluster the DPU controller works with,
 * watched rather than polled.
 *
 * The DPU Cluster Config and Ready phases need the DPU's Node in its DPU
 * cluster (Ready, and DPF's labels). Asking that cluster's API server on
 * each reconcile costs a Secret read, a TLS handshake and a GET per DPU
 * and reconcile, and Ready DPUs would have to poll; at 10,000 DPUs that
 * is hundreds of handshakes a second. Instead there is one view per
 * DPUCluster (by UID): an informer on its Nodes through a kube_rest on
 * the controller manager's loop, made on first use from the cluster's
 * admin kubeconfig. Reconciles read Nodes from the view's cache and send
 * their writes through its kube_rest (keep-alive connections); a Node
 * whose Ready condition or labels change calls on_node with its name, so
 * the DPU controller queues that DPU.
 *
 * A view whose DPUCluster is gone keeps retrying its watch with the
 * informer's backoff (up to 30 s apart) until the controller stops; a
 * DPUCluster recreated under the same name gets a new view (new UID).
 *
 * Threads: dcviews_get(), dcviews_node() and dcviews_json_wait() are for
 * reconcile workers (never the loop thread); on_node runs on the loop
 * thread; dcviews_stop() as it says. */
#ifndef DPF_CONTROLLERS_DCVIEW_H
#define DPF_CONTROLLERS_DCVIEW_H

#include <jansson.h>
#include <stdbool.h>

#include "lib/base/error.h"

struct loop;
struct kubeconfig;
struct dcviews;

typedef void (*dcview_node_fn)(void *arg, const char *node);

struct dcviews *dcviews_create(struct loop *loop, dcview_node_fn on_node,
                               void *arg);
/* Stop every view's watch and client on the loop, waiting for it: call it
 * from another thread while the loop still runs (the controller's stop),
 * after the reconcile workers stopped. */
void dcviews_stop(struct dcviews *v);
/* Free (after dcviews_stop(), or when no view was ever made). */
void dcviews_destroy(struct dcviews *v);

/* Is there a view for cluster uid, and has it listed its Nodes? 1 synced,
 * 0 being made or listing, -ENOENT none yet: then call dcviews_add(). */
int dcviews_state(struct dcviews *v, const char *uid);
/* Make the view of cluster uid ("ns/name" for messages) from kc (copied);
 * it is created on the loop. Nothing if it exists. */
void dcviews_add(struct dcviews *v, const char *uid, const char *cluster,
                 const struct kubeconfig *kc);
/* Node name from the synced view of uid: a new reference, NULL when the
 * cluster has no such Node (or the view is not synced: check first). */
json_t *dcviews_node(struct dcviews *v, const char *uid, const char *name);
/* The cluster's API endpoint and CA pin ("sha256:HEX", kubeadm's
 * discovery hash) from the kubeconfig the view was made from: 0 with
 * *server (malloc'd) and pin filled, -ENOENT when there is no view. */
int dcviews_join_data(struct dcviews *v, const char *uid, char **server,
                      char pin[72]);
/* A request to the cluster through the view (kube_rest_json_wait());
 * -ENOENT with err when there is no view of uid. */
int dcviews_json_wait(struct dcviews *v, const char *uid, const char *method,
                      const char *path, const json_t *body,
                      const char *content_type, json_t **out,
                      struct dpf_error *err);

#endif
