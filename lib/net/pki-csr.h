/* pki-csr: PKCS#10 certificate requests, checked and signed (OpenSSL 3).
 *
 * What a certificates.k8s.io/v1 CertificateSigningRequest carries in
 * spec.request is a PEM "CERTIFICATE REQUEST"; pki_csr_parse() reads one
 * (exactly one PEM block, nothing but whitespace around it, the request's
 * own signature verified) into plain data: subject CN and Os, the DNS and
 * IP subject alternative names, and whether it asks for names the
 * Kubernetes signers never grant (e-mail, URI). pki_csr_read() does the
 * same and keeps the parsed request, so that pki_signer_sign() issues a
 * certificate for it without parsing it again (OpenSSL 3 decodes the
 * public key through its provider decoders, the dearest step). The
 * certificate comes from a CA: the subject and SANs of the request, the
 * key usages asked for, a random serial, not-before one minute back (for
 * clocks a little behind) and the lifetime given, capped by the CA's own.
 *
 * Errors: 0 or a negative errno with err filled (code 422 for a request
 * that is not acceptable, 500 for a failure of the CA side). Strings
 * returned through char ** are malloc'd and owned by the caller. Pure
 * functions: thread-safe. */
#ifndef DPF_PKI_CSR_H
#define DPF_PKI_CSR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/error.h"

#define PKI_CSR_MAX_NAMES 16
#define PKI_CSR_NAME_MAX 256

/* A parsed request. Plain data. */
struct pki_csr_info {
    char cn[PKI_CSR_NAME_MAX];
    size_t n_orgs;
    char orgs[PKI_CSR_MAX_NAMES][PKI_CSR_NAME_MAX];
    size_t n_dns;
    char dns[PKI_CSR_MAX_NAMES][PKI_CSR_NAME_MAX];
    size_t n_ips;
    char ips[PKI_CSR_MAX_NAMES][64]; /* text form */
    bool has_email;                  /* e-mail SAN or subject address */
    bool has_uri;                    /* URI SAN */
    bool key_ok;                     /* EC P-256/384 or RSA >= 2048 */
};

/* Parse and check a PEM CERTIFICATE REQUEST (len bytes, need not be NUL
 * terminated). -EINVAL with err naming what is wrong ("not a PEM
 * CERTIFICATE REQUEST", "its signature does not verify", "more than 16
 * organizations"...). */
int pki_csr_parse(const char *pem, size_t len, struct pki_csr_info *out,
                  struct dpf_error *err);

/* The same, keeping the parsed request: NULL (err set) where
 * pki_csr_parse() fails. Free with pki_csr_free() (NULL is fine). */
struct pki_csr;
struct pki_csr *pki_csr_read(const char *pem, size_t len,
                             struct pki_csr_info *out, struct dpf_error *err);
void pki_csr_free(struct pki_csr *csr);

/* Key usages a certificate can get (the CSR's spec.usages, Kubernetes'
 * words). */
enum {
    PKI_USAGE_DIGITAL_SIGNATURE = 1 << 0,
    PKI_USAGE_KEY_ENCIPHERMENT = 1 << 1,
    PKI_USAGE_CLIENT_AUTH = 1 << 2,
    PKI_USAGE_SERVER_AUTH = 1 << 3,
};

/* The PKI_USAGE_* bit of a Kubernetes usage word ("client auth"), 0 for
 * a word that is valid but never granted by dpf's signers, -1 for a word
 * that is not a Kubernetes key usage at all. */
int pki_usage_bit(const char *word);
/* Is word one of Kubernetes' KeyUsage values? */
bool pki_usage_known(const char *word);

/* A CA ready to sign: its certificate and key read once (OpenSSL 3's
 * PEM key decoding costs more than the signature). NULL with err set when
 * either file cannot be read. Signing from several threads at once is
 * safe. */
struct pki_signer;
struct pki_signer *pki_signer_load(const char *ca_cert_path,
                                   const char *ca_key_path,
                                   struct dpf_error *err);
void pki_signer_free(struct pki_signer *s);

/* Sign the request csr (from pki_csr_read()): lifetime_s seconds (capped at the CA's
 * notAfter), the usages bits, basicConstraints CA:FALSE. *cert_pem gets
 * the PEM certificate. */
int pki_signer_sign(const struct pki_signer *s, const struct pki_csr *csr,
                    unsigned usages, int64_t lifetime_s, char **cert_pem,
                    struct dpf_error *err);

#endif
