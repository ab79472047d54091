/* kube-bootstrap: the client side of node bootstrap, as kubeadm does it.
 *
 * Three parts:
 *   - bootstrap tokens: make one (kube_bootstrap_token_generate()), the
 *     kube-system Secret that carries it (kube_bootstrap_token_secret()),
 *     the CA public-key pin (kube_bootstrap_ca_hash()) and the
 *     `kubeadm join HOST:PORT --token ID.SECRET
 *     --discovery-token-ca-cert-hash sha256:HEX` text
 *     (kube_bootstrap_join_command() does all of it over an admin client,
 *     like `kubeadm token create --print-join-command`);
 *   - the TLS bootstrap (kube_bootstrap_join()): fetch
 *     kube-public/cluster-info without trusting the server, check the CA
 *     in it against the pinned hash, make a key and a CSR for
 *     system:node:<name> (O system:nodes), send it as a
 *     certificates.k8s.io/v1 CertificateSigningRequest authenticated by
 *     the token, wait for the certificate and write a kubeconfig (0600)
 *     with the client certificate and key;
 *   - CSRs and rotation for anyone holding a client certificate
 *     (kube_bootstrap_csr_new(), kube_bootstrap_csr_request(),
 *     kube_bootstrap_rotate()): dpulet's serving certificate, the DMS
 *     certificates, a node client certificate renewed when at most a third
 *     of its lifetime is left (DPF: 24 h lifetime, renewed 8 h before).
 *
 * Keys are EC P-256 (PKCS#8 PEM); files are written atomically with mode
 * 0600. Nothing here logs a token, a key or a certificate: progress lines
 * (kube_bootstrap_join_options.progress) name objects and states only.
 *
 * Errors: 0 (or a documented positive value) or a negative errno, with err
 * filled in words a user can act on (the endpoint, the CSR's name, the
 * server's refusal). Strings returned through char ** are malloc'd and
 * owned by the caller (free() them; wipe key text with OPENSSL_cleanse
 * first).
 *
 * Threads: every function is blocking and uses only its arguments; call
 * them from any thread (an api_client must not be shared between threads,
 * see api-client.h). */
#ifndef DPF_KUBE_BOOTSTRAP_H
#define DPF_KUBE_BOOTSTRAP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/error.h"

struct api_client;

/* Token id and secret lengths ([a-z0-9]{6}.[a-z0-9]{16}). */
#define KUBE_BOOTSTRAP_ID_LEN 6
#define KUBE_BOOTSTRAP_SECRET_LEN 16
/* "sha256:" + 64 hex digits + NUL. */
#define KUBE_BOOTSTRAP_HASH_SIZE 72
/* kubeadm's default extra group for join tokens. */
#define KUBE_BOOTSTRAP_DEFAULT_GROUP \
    "system:bootstrappers:kubeadm:default-node-token"
#define KUBE_BOOTSTRAP_SIGNER_KUBELET \
    "kubernetes.io/kube-apiserver-client-kubelet"
#define KUBE_BOOTSTRAP_SIGNER_SERVING "kubernetes.io/kubelet-serving"
#define KUBE_BOOTSTRAP_SIGNER_CLIENT "kubernetes.io/kube-apiserver-client"
#define KUBE_BOOTSTRAP_SIGNER_DMS "dpu.nvidia.com/dms"

struct kube_bootstrap_token {
    char id[KUBE_BOOTSTRAP_ID_LEN + 1];
    char secret[KUBE_BOOTSTRAP_SECRET_LEN + 1];
};

/* A fresh random token (OpenSSL's CSPRNG). 0 or -EIO. */
int kube_bootstrap_token_generate(struct kube_bootstrap_token *t,
                                  struct dpf_error *err);
/* Parse "ID.SECRET" of exactly len bytes. 0 or -EINVAL (err says the
 * expected form, never the value). */
int kube_bootstrap_token_parse(const char *s, size_t len,
                               struct kube_bootstrap_token *t,
                               struct dpf_error *err);
/* Wipe a token held in memory. */
void kube_bootstrap_token_clear(struct kube_bootstrap_token *t);

/* The Secret kube-system/bootstrap-token-<id> (type
 * bootstrap.kubernetes.io/token) kubeadm creates: token-id, token-secret,
 * expiration (RFC 3339, now + ttl_s; ttl_s 0 = never expires),
 * usage-bootstrap-authentication and usage-bootstrap-signing "true",
 * auth-extra-groups (groups; NULL = KUBE_BOOTSTRAP_DEFAULT_GROUP),
 * description (may be NULL). Values go in stringData. New reference. */
json_t *kube_bootstrap_token_secret(const struct kube_bootstrap_token *t,
                                    int64_t now_s, int64_t ttl_s,
                                    const char *groups,
                                    const char *description);

/* kubeadm's CA pin: "sha256:" + hex of SHA-256 over the DER
 * SubjectPublicKeyInfo of the first certificate in ca_pem. out has
 * KUBE_BOOTSTRAP_HASH_SIZE bytes. 0 or -EINVAL (not a PEM certificate). */
int kube_bootstrap_ca_hash(const char *ca_pem, size_t len, char *out,
                           struct dpf_error *err);
/* Does some certificate in ca_pem match pin ("sha256:HEX", hex in either
 * case)? 0, -EINVAL for a malformed pin or CA, -EKEYREJECTED when none
 * matches (err names the computed hash so an operator can compare). */
int kube_bootstrap_ca_hash_check(const char *ca_pem, size_t len,
                                 const char *pin, struct dpf_error *err);

/* "kubeadm join HOST:PORT --token ID.SECRET --discovery-token-ca-cert-hash
 * sha256:HEX". endpoint may carry "https://" (dropped). */
char *kube_bootstrap_join_text(const char *endpoint,
                               const struct kube_bootstrap_token *t,
                               const char *pin);

/* `kubeadm token create --print-join-command`: generate a token, create
 * its Secret through admin (a client with rights on kube-system secrets),
 * valid ttl_s seconds (0 = 24 h, negative = no expiration), and build the command for endpoint with
 * the pin of ca_pem. *out gets the command text. The caller may later
 * delete the Secret kube-system/bootstrap-token-<id> (*id_out, may be
 * NULL, gets the id: 7 bytes). 0 or negative errno. */
int kube_bootstrap_join_command(struct api_client *admin, const char *endpoint,
                                const char *ca_pem, size_t ca_len,
                                int64_t ttl_s, char **out, char *id_out,
                                struct dpf_error *err);

/* A new EC P-256 key and a PEM CERTIFICATE REQUEST with subject CN = cn
 * and one O per orgs[] entry (NULL-terminated, may be NULL), and subject
 * alternative names from sans[] (DNS names or IP addresses, told apart
 * automatically; NULL-terminated, may be NULL). */
int kube_bootstrap_csr_new(const char *cn, const char *const *orgs,
                           const char *const *sans, char **key_pem,
                           char **csr_pem, struct dpf_error *err);

/* What to ask for in a CertificateSigningRequest. */
struct kube_bootstrap_csr_options {
    const char *name;          /* object name; NULL = generate_name */
    const char *generate_name; /* prefix ("csr-" when both NULL) */
    const char *signer;        /* signerName (required) */
    const char *const *usages; /* NULL-terminated; NULL = the signer's
                                    defaults (client auth, or digital
                                    signature + server auth for serving) */
    int64_t expiration_s;      /* spec.expirationSeconds; 0 = omit */
    int64_t timeout_ms;        /* wait for the certificate; 0 = 5 min */
    void (*progress)(void *arg, const char *line); /* may be NULL */
    void *progress_arg;
};

/* Create the CSR object for csr_pem through c and wait (polling the
 * object, with progress lines) until status.certificate is set; *cert_pem
 * gets it. -EACCES when the CSR was Denied or Failed (err quotes the
 * condition's reason and message), -ETIMEDOUT at the deadline (err says
 * the CSR's name and that it awaits approval), another negative errno
 * when the server refused the create (err: its Status). */
int kube_bootstrap_csr_request(struct api_client *c,
                               const struct kube_bootstrap_csr_options *o,
                               const char *csr_pem, char **cert_pem,
                               struct dpf_error *err);

/* kubeadm join's TLS bootstrap. */
struct kube_bootstrap_join_options {
    const char *endpoint;        /* "HOST:PORT" or "https://HOST:PORT" */
    const char *token;           /* "ID.SECRET" */
    const char *ca_hash;         /* "sha256:HEX" pin (required) */
    const char *node_name;       /* CN system:node:<node_name> */
    const char *kubeconfig_path; /* written with mode 0600 */
    int64_t timeout_ms;          /* whole join; 0 = 5 min */
    void (*progress)(void *arg, const char *line); /* may be NULL */
    void *progress_arg;
};

/* Fetch cluster-info anonymously over TLS without verifying the server
 * (it is not trusted yet), check its CA against o->ca_hash, then speak
 * to the server verified by that CA: send a CSR for system:node:<name>
 * (O system:nodes, signer kubernetes.io/kube-apiserver-client-kubelet,
 * usages digital signature + client auth) with the token, wait for the
 * certificate, and write o->kubeconfig_path (server from cluster-info,
 * CA data, client certificate and key data, user system:node:<name>).
 * 0 or negative errno (err says which step failed and why). */
int kube_bootstrap_join(const struct kube_bootstrap_join_options *o,
                        struct dpf_error *err);

/* Certificate lifetime facts from a PEM certificate. */
struct kube_bootstrap_cert_times {
    int64_t not_before_s; /* Unix seconds */
    int64_t not_after_s;
};
int kube_bootstrap_cert_times(const char *cert_pem, size_t len,
                              struct kube_bootstrap_cert_times *t,
                              struct dpf_error *err);
/* True when at most a third of the lifetime is left at now_s (the
 * kubelet's rotation point is 70-90 %; DPF renews 8 h before a 24 h
 * expiry: the same third). */
bool kube_bootstrap_cert_due(const struct kube_bootstrap_cert_times *t,
                             int64_t now_s);

/* Renew the client certificate of the kubeconfig at path when due at
 * now_s (or always with force): new key, CSR with the same subject sent
 * with the current certificate, signer signer (NULL = the kubelet client
 * signer), and the kubeconfig rewritten atomically (0600) with the new
 * certificate and key. 1 when renewed, 0 when not due yet, negative errno
 * on failure (the file is left as it was). */
int kube_bootstrap_rotate(const char *kubeconfig_path, const char *signer,
                          int64_t now_s, bool force, int64_t timeout_ms,
                          struct dpf_error *err);

#endif
