/* pki: the control plane's small certificate authority (OpenSSL 3).
 *
 * Creates a self-signed CA, issues serving certificates (DNS and IP
 * subject alternative names, extKeyUsage serverAuth) and client
 * certificates (subject CN and O, extKeyUsage clientAuth) signed by it,
 * checks whether existing certificates are still good enough to reuse,
 * makes random bearer tokens and writes an admin kubeconfig. Keys are EC
 * P-256 in PKCS#8 PEM, written with mode 0600; certificates 0644. Every
 * file is written atomically (lib/util.h file_write_atomic), so a crash
 * never leaves half a key behind.
 *
 * Errors: 0 or a negative errno, with err filled naming the file and what
 * went wrong. Strings returned through char ** are malloc'd and owned by
 * the caller. */
#ifndef DPF_PKI_H
#define DPF_PKI_H

#include <openssl/types.h>
#include <stdbool.h>
#include <stddef.h>

#include "lib/base/error.h"

/* Token length in hex characters (32 random bytes). */
#define PKI_TOKEN_HEX_LEN 64

/* A new EC P-256 key (NULL on failure), the one way keys are made for
 * certificates and certificate requests. It is held the pre-3.0 way (an
 * EC_KEY): OpenSSL 3.0 puts a provider-held key into a certificate or a
 * request by encoding it and decoding it again through its encoder and
 * decoder lookups, 0.58 ms a key on the development machine against
 * 0.01 ms for this one, and the key pair and a request cost 0.89 ms in
 * all against 0.13 ms (docs/benchmarks.md, "Provisioning"). The key is
 * the same curve, named by its OID, and writes the same PKCS#8 PEM. */
EVP_PKEY *pki_ec_key_new(void);

/* Create a self-signed CA (CN = cn) valid for `days` days. */
int pki_ca_create(const char *cert_path, const char *key_path, const char *cn,
                  unsigned days, struct dpf_error *err);

/* Issue a serving certificate signed by the CA. sans are DNS names or IP
 * addresses (IPv4/IPv6, told apart automatically); the first DNS name is
 * also the subject CN (cn overrides it when not NULL). */
int pki_issue_server(const char *ca_cert_path, const char *ca_key_path,
                     const char *cert_path, const char *key_path,
                     const char *cn, const char *const *sans, size_t n_sans,
                     unsigned days, struct dpf_error *err);

/* Issue a client certificate with subject CN = cn and O = org (org may be
 * NULL), signed by the CA. */
int pki_issue_client(const char *ca_cert_path, const char *ca_key_path,
                     const char *cert_path, const char *key_path,
                     const char *cn, const char *org, unsigned days,
                     struct dpf_error *err);

/* Check that an existing certificate verifies against the CA, is valid for
 * at least min_days more days, matches its key file, and (for a serving
 * certificate) covers every name in sans. 0 when it can be reused,
 * -ENOENT if a file is missing, -EKEYREJECTED otherwise (err says why). */
int pki_cert_check(const char *ca_cert_path, const char *cert_path,
                   const char *key_path, const char *const *sans, size_t n_sans,
                   unsigned min_days, struct dpf_error *err);

/* A new random token: PKI_TOKEN_HEX_LEN hex digits (32 bytes from the
 * OpenSSL CSPRNG). */
char *pki_token_new(void);

/* Read the token file at path, or create it (mode 0600) with a new token
 * when it does not exist. *token is malloc'd. */
int pki_token_load_or_create(const char *path, char **token,
                             struct dpf_error *err);

/* What goes into an admin kubeconfig. */
struct pki_kubeconfig {
    const char *cluster;    /* cluster and context name ("dpf") */
    const char *server;     /* "https://127.0.0.1:6443" */
    const char *user;       /* user name ("dpf-admin") */
    const char *namespace_; /* context namespace ("default"); NULL = none */
    const char *ca_path;    /* PEM file -> certificate-authority-data */
    const char *cert_path;  /* PEM file -> client-certificate-data; opt. */
    const char *key_path;   /* PEM file -> client-key-data; optional */
    const char *token;      /* bearer token; optional */
};

/* Render a kubeconfig (YAML text) into *out (malloc'd). */
int pki_kubeconfig_render(const struct pki_kubeconfig *kc, char **out,
                          struct dpf_error *err);
/* Render and write it atomically with mode 0600. */
int pki_kubeconfig_write(const char *path, const struct pki_kubeconfig *kc,
                         struct dpf_error *err);

#endif
