/* dpucluster: what the other controllers need from DPU clusters (the DPU
 * controller's client for the cluster a DPU joins, the join command's CA
 * and endpoint). The controller itself is added with dpuc_ctrl_add()
 * (controllers/controllers.h); docs/controllers.md describes it.
 *
 * Threads: blocking calls on the API (a reconcile worker, never the loop
 * thread). Ownership: *out is the caller's (kubeconfig_free()). */
#ifndef DPF_DPUCLUSTER_H
#define DPF_DPUCLUSTER_H

#include "lib/base/error.h"
#include "lib/kube/kube-rest.h"
#include "lib/kube/kubeconfig.h"

/* The kubeconfig in Secret ns/secret, key admin.conf (DPF's contract:
 * exactly one cluster and one user). 0; -ENOENT (no such Secret); -EINVAL
 * (empty name, no key, not base64, not a kubeconfig, not one cluster and
 * one user); or the API's error. err's message names the Secret and what
 * is wrong with it, ready for a condition. */
int dpuc_kubeconfig_from_secret(struct kube_rest *rest, const char *ns,
                                const char *secret, struct kubeconfig **out,
                                struct dpf_error *err);
/* The same for DPUCluster ns/name (reads its spec.kubeconfig). */
int dpuc_kubeconfig_get(struct kube_rest *rest, const char *ns,
                        const char *name, struct kubeconfig **out,
                        struct dpf_error *err);

#endif
