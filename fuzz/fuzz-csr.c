/* Fuzz target for what dpf parses of certificate requests and bootstrap
 * tokens: the input is a CSR's PEM (pki_csr_parse: the PEM framing is
 * checked by hand before OpenSSL reads it), then every signer's rules on
 * what parsed; the CA pin of the same bytes read as a certificate bundle;
 * and the bytes as a bootstrap token and as an RFC 3339 expiration.
 * Invariants: a parse that succeeds gives NUL-terminated names within
 * their bounds; a hash is "sha256:" + 64 hex digits. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dpf-server/authn.h"
#include "dpf-server/certs.h"
#include "lib/base/util.h"
#include "lib/kube/kube-bootstrap.h"
#include "lib/net/pki-csr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *) data;
    struct pki_csr_info info;
    struct dpf_error err = {0};
    if (pki_csr_parse(s, size, &info, &err) == 0) {
        if (strnlen(info.cn, sizeof info.cn) >= sizeof info.cn ||
            info.n_orgs > PKI_CSR_MAX_NAMES || info.n_dns > PKI_CSR_MAX_NAMES ||
            info.n_ips > PKI_CSR_MAX_NAMES) {
            abort();
        }
        static const char *const signers[] = {
            "kubernetes.io/kube-apiserver-client",
            "kubernetes.io/kube-apiserver-client-kubelet",
            "kubernetes.io/kubelet-serving", "dpu.nvidia.com/dms",
            "example.com/other"};
        json_t *usages = json_pack("[s,s]", "client auth", "server auth");
        json_t *client = json_pack("[s]", "client auth");
        for (size_t i = 0; i < ARRAY_SIZE(signers); i++) {
            char msg[256];
            unsigned bits;
            certs_signer_check(signers[i], &info, usages, &bits, msg,
                               sizeof msg);
            certs_signer_check(signers[i], &info, client, &bits, msg,
                               sizeof msg);
        }
        certs_is_node_client(&info, client);
        json_decref(usages);
        json_decref(client);
    } else if (!err.message[0]) {
        abort();
    }
    char hash[KUBE_BOOTSTRAP_HASH_SIZE];
    if (size < 65536 && kube_bootstrap_ca_hash(s, size, hash, NULL) == 0 &&
        (strncmp(hash, "sha256:", 7) != 0 || strlen(hash) != 71)) {
        abort();
    }
    struct kube_bootstrap_token t;
    if (kube_bootstrap_token_parse(s, size, &t, NULL) == 0) {
        if (!authn_bootstrap_token_form(s, size)) {
            abort();
        }
    }
    char *z = xstrndup(s, size);
    authn_parse_rfc3339(z);
    free(z);
    return 0;
}
