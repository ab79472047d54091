/* certs: certificates.k8s.io/v1 CertificateSigningRequests served the way
 * kube-apiserver and kube-controller-manager do it, and the bootstrap
 * data kubeadm join needs.
 *
 *   - create: spec.username/uid/groups/extra are the requester's
 *     (authenticated identity), whatever the body said;
 *   - the approval subresource (PUT .../certificatesigningrequests/NAME/
 *     approval, what `kubectl certificate approve|deny` sends): besides
 *     `update` on certificatesigningrequests/approval (the gate checks it),
 *     the user needs the verb `approve` on the resource `signers`
 *     (group certificates.k8s.io) named by the signerName or
 *     "<domain>/" followed by a star, as Kubernetes asks;
 *   - a worker thread reacting to CSR events: the csrapproving
 *     controller's auto-approval of node client certificates (a bootstrap
 *     token with create on certificatesigningrequests/nodeclient, a node
 *     renewing its own with .../selfnodeclient) and the signers, which
 *     sign approved requests with the server's CA (<data-dir>/pki/ca.crt,
 *     ca.key: the CA every component already trusts) or set a Failed
 *     condition (reason SignerValidationFailure) naming the rule broken:
 *       kubernetes.io/kube-apiserver-client: usages client auth (+ digital
 *         signature, key encipherment), no DNS/IP/e-mail/URI names;
 *       kubernetes.io/kube-apiserver-client-kubelet: the same, CN
 *         system:node:<name>, O exactly system:nodes;
 *       kubernetes.io/kubelet-serving: CN system:node:<name>, O exactly
 *         system:nodes, usages server auth (+ digital signature, key
 *         encipherment), at least one DNS or IP name, no e-mail/URI;
 *       dpu.nvidia.com/dms: dpf's signer for the DMS server and the DPU
 *         controller's client certificates: a CN, usages server auth
 *         and/or client auth (+ digital signature, key encipherment), DNS
 *         and IP names only; default lifetime 24 h (DPF's).
 *     spec.expirationSeconds is honoured (minimum 600 s); the default and
 *     the cap are 1 year for the kubernetes.io signers (kube-controller-
 *     manager's --cluster-signing-duration) and 24 h default / 1 year cap
 *     for dms. Other signer names are left alone (an external signer may
 *     serve them).
 *   - kube-public/cluster-info: a ConfigMap with key "kubeconfig" (the
 *     server URL and CA data, no credential), created at start and put
 *     back whenever it is changed or deleted; anonymous users may get it
 *     (the RBAC Role kubeadm:bootstrap-signer-clusterinfo).
 *
 * Threads: certs_admit_create() and certs_extension() run on the HTTP
 * workers and are thread-safe; certs_store_event() runs with the store's
 * write lock held and only queues a name; the worker does the rest. */
#ifndef DPF_SERVER_CERTS_H
#define DPF_SERVER_CERTS_H

#include <jansson.h>
#include <stdbool.h>

#include "dpf-server/apiserver.h"
#include "lib/base/error.h"
#include "lib/store/store.h"

struct authn;
struct authz;
struct certs;
struct http_request;

/* authn, authz and store are borrowed. */
struct certs *certs_create(struct authn *authn, struct authz *authz,
                           struct store *store);
/* The CA the signers use and the URL cluster-info advertises (copied).
 * Before certs_start(); without it nothing is signed and no cluster-info
 * is published. */
void certs_set_ca(struct certs *c, const char *ca_cert_path,
                  const char *ca_key_path, const char *server_url);
/* Publish cluster-info and start the worker (and look at every existing
 * CSR once). */
int certs_start(struct certs *c, struct apiserver *api, struct dpf_error *err);
void certs_stop(struct certs *c);
void certs_destroy(struct certs *c);

void certs_store_event(struct certs *c, enum store_event_type type,
                       const char *key, const char *value, size_t len);
/* The apiserver's admit_create hook for CSRs (other kinds: 0). */
int certs_admit_create(void *arg, struct http_request *req,
                       const struct schema_kind *k, json_t *obj,
                       struct dpf_error *err);
/* Serves the approval subresource; false for anything else. */
bool certs_extension(struct certs *c, struct http_request *req,
                     const struct schema_kind *k, const char *ns,
                     const char *name, const char *sub);

/* The signer's rules on a parsed request (pure, for the unit tests):
 * 0 when signer may sign it, -EINVAL with msg (a sentence) when not,
 * -ENOENT for a signer dpf does not serve. *usage_bits gets what goes
 * into the certificate (PKI_USAGE_*). usages is the spec's array. */
struct pki_csr_info;
int certs_signer_check(const char *signer, const struct pki_csr_info *info,
                       const json_t *usages, unsigned *usage_bits, char *msg,
                       size_t size);
/* Is this a node client certificate request kube-controller-manager
 * would consider for auto-approval (CN system:node:*, O system:nodes
 * only, no names, usages within client auth/digital signature/key
 * encipherment and with client auth)? */
bool certs_is_node_client(const struct pki_csr_info *info,
                          const json_t *usages);

#endif
