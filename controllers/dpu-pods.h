/* dpu-pods: what the DPU controller runs on a DPU's host (dpf-spec §2.7,
 * §2.7.1, §2.7.5): the `<dpu>-dms` pod serving DMS for the DPU, the
 * `<dpu>-hostnetwork` pod that prepares the host side of its network, and
 * the DMS server and client certificates.
 *
 * The pod builders are pure: they return the Pod object to create (the
 * caller creates it and compares nothing: a pod that exists is left as
 * it is, as DPF does). Both pods are bound to the host node (spec.nodeName
 * and DPF's required node affinity on metadata.name), run in the host's
 * network namespace, tolerate not-ready/unreachable/unschedulable and the
 * DPU's node-effect taint, and are owned by the DPU (controller
 * reference), so deleting the DPU deletes them.
 *
 * Threads: the builders are pure; dpu_certs_ensure() blocks on API calls
 * (a reconcile worker, never the loop thread). */
#ifndef DPF_CONTROLLERS_DPU_PODS_H
#define DPF_CONTROLLERS_DPU_PODS_H

#include <jansson.h>
#include <stdint.h>

#include "lib/base/error.h"

struct kube_rest;
struct dpu_certs_memo;

/* Names (DPF's). */
#define DPU_DMS_CLIENT_SECRET "dpf-provisioning-client-secret"
#define DPU_DMS_CONTAINER "dms"
#define DPU_HOSTNETWORK_CONTAINER "hostnetwork"
/* The file the hostnetwork container's readiness probe looks for. */
#define DPU_HOSTNETWORK_READY_FILE "/tmp/hostnetwork_succeed"

struct dpu_pods_in {
    const json_t *dpu;     /* the DPU (name, namespace, uid, labels, spec) */
    const json_t *host;    /* its host Node (addresses, annotations, labels) */
    int index;             /* the DPU's index on the host (dpu_host_index) */
    const char *bfb_dir;   /* BFB cache on the host, mounted at /bfb */
    const char *dms_image; /* recorded in the pod; NULL = a default */
    const char *hostnetwork_image; /* likewise */
    /* Command names run by dpulet (looked up in its --path): NULL =
     * "dmsd" and "dpf-hostnetwork". */
    const char *dmsd_command;
    const char *hostnetwork_command;
    /* The DPU's node-effect taint to tolerate (key NULL = none). */
    const char *taint_key;
    const char *taint_value;
    const char *taint_effect;
    int num_vfs; /* VFs on PF0 (flavor NUM_OF_VFS=; 0 = 16) */
    int vf_mtu;  /* MTU of the VF added to br-dpu (0 = 1500) */
};

/* The DPU's index on its host: i where the host Node's label
 * feature.node.kubernetes.io/dpu-<i>-pci-address equals the DPU's label
 * provisioning.dpu.nvidia.com/dpu-pciAddress (0000-4b-00). -ENOENT with
 * err naming the DPU and the node when no label matches. */
int dpu_host_index(const json_t *dpu, const json_t *host,
                   struct dpf_error *err);
/* The host's first InternalIP (else first address), or NULL. Borrowed. */
const char *dpu_host_ip(const json_t *host);
/* DMS's port for index (DMS_PORT_BASE + index). */
int dpu_dms_port(int index);

/* Pod `<dpu>-dms`: container "dms" running dmsd --bind_address
 * HOSTIP:PORT --auth cert with the server Secret at
 * /etc/ssl/certs/server, --image_folder /bfb (hostPath bfb_dir),
 * --rshim/--sysfs from the host's dpu.emu/rshim-<i> and dpu.emu/sysfs
 * annotations (else /dev/rshim<i> and /sys, hostPath /dev),
 * --target_pci BUS:DEV, --state_dir of its own under /bfb. New reference,
 * or NULL with err naming the DPU and the missing label/address. */
json_t *dpu_pod_dms(const struct dpu_pods_in *in, struct dpf_error *err);

/* Pod `<dpu>-hostnetwork`: container "hostnetwork" running
 * dpf-hostnetwork (what DPF's hostnetwork.sh does: VFs on PF0, VF0 into
 * br-dpu, then the ready file) with a readiness probe on
 * DPU_HOSTNETWORK_READY_FILE every 5 s. */
json_t *dpu_pod_hostnetwork(const struct dpu_pods_in *in,
                            struct dpf_error *err);

/* --- certificates (DPF: cert-manager, 24 h lifetime, renewed 8 h
 * before expiry) --- */

#define DPU_CERT_LIFETIME_S (24 * 3600)
#define DPU_CERT_RENEW_BEFORE_S (8 * 3600)

/* Who signs: NULL (or no ca_key_path) = the API server's signer
 * dpu.nvidia.com/dms through a CertificateSigningRequest the controller
 * approves itself, with the CA of kube-public/cluster-info as ca.crt; or
 * this CA's files (PEM) directly, for an API server without that signer.
 * ca_cert_path alone only names the CA for ca.crt. */
struct dpu_certs_signer {
    const char *ca_cert_path;
    const char *ca_key_path;
};

/* Make sure the DPU's namespace holds Secret `<dpu>-server-secret`
 * (kubernetes.io/tls: tls.crt with CN <dpu>-dms-server-cert and an IP SAN
 * for host_ip, tls.key, ca.crt; owned by the DPU) and Secret
 * dpf-provisioning-client-secret (tls.crt, tls.key, ca.crt; shared by
 * the namespace's DPUs), each valid for more than DPU_CERT_RENEW_BEFORE_S
 * and, for the server's, issued for host_ip; issues new ones otherwise.
 * 0 when both are good, *recheck_ms (may be NULL) = when the first one is
 * due for renewal; -EINPROGRESS while a CSR waits to be signed (it waits
 * up to 10 s first) or when another DPU wrote the shared Secret at the
 * same moment (requeue); other negative errno with err naming the Secret
 * or CSR. A certificate is reissued when it is within
 * DPU_CERT_RENEW_BEFORE_S of its end, not signed by the current CA (the
 * Secret's ca.crt differs), or (server) not issued for host_ip. */
int dpu_certs_ensure(struct kube_rest *r, const json_t *dpu,
                     const char *host_ip, const struct dpu_certs_signer *s,
                     struct dpu_certs_memo *memo, int64_t *recheck_ms,
                     struct dpf_error *err);

/* The shared client Secret as last read, by namespace, for
 * DPU_CERTS_MEMO_MS: every DPU's DMS Deployment checks it and every
 * install reads it, and at 10,000 DPUs reading it each time was two
 * Secret GETs per DPU. A copy older than that is read again; a copy
 * whose certificate is due for renewal is read again before it is
 * renewed; a write of the Secret from here drops the copy. So a Secret
 * replaced by hand is seen within DPU_CERTS_MEMO_MS. The memo also holds
 * the CA read from kube-public/cluster-info for as long (a GET per DPU
 * before): a CA rotated meanwhile is seen within DPU_CERTS_MEMO_MS, and a
 * certificate issued with the old one in that time is reissued at the
 * next check, as its Secret's ca.crt no longer matches. Thread-safe; NULL
 * (for dpu_certs_ensure and dpu_certs_client) reads every time. */
#define DPU_CERTS_MEMO_MS 30000
struct dpu_certs_memo;
struct dpu_certs_memo *dpu_certs_memo_create(void);
void dpu_certs_memo_destroy(struct dpu_certs_memo *m);

/* The namespace's shared client Secret (new reference in *out): memo's
 * copy, or read. 0, or negative errno with err (-ENOENT: none yet). */
int dpu_certs_client(struct kube_rest *r, struct dpu_certs_memo *memo,
                     const char *ns, json_t **out, struct dpf_error *err);

/* Delete the DPU's server Secret and CSRs (its Deleting phase). 0 also
 * when they are gone already. */
int dpu_certs_delete(struct kube_rest *r, const json_t *dpu,
                     struct dpf_error *err);

#endif
