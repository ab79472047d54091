/* pki-csr: see pki-csr.h. */
#include "lib/net/pki-csr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"

#define PEM_CSR_BEGIN "-----BEGIN CERTIFICATE REQUEST-----"
#define PEM_CSR_END "-----END CERTIFICATE REQUEST-----"

static int
csr_bad(struct dpf_error *err, const char *what)
{
    dpf_error_set(err, 422, "Invalid", "%s", what);
    ERR_clear_error();
    return -EINVAL;
}

/* Copy an ASN1 string as UTF-8 into buf; false when it does not fit or
 * holds a NUL. */
static bool
csr_text(const ASN1_STRING *s, char *buf, size_t size)
{
    unsigned char *u = NULL;
    int n = ASN1_STRING_to_UTF8(&u, s);
    bool ok = n >= 0 && (size_t) n < size && memchr(u, 0, (size_t) n) == NULL;
    if (ok) {
        memcpy(buf, u, (size_t) n);
        buf[n] = '\0';
    }
    OPENSSL_free(u);
    return ok;
}

static bool
csr_only_space(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') {
            return false;
        }
    }
    return true;
}

/* The subject: one CN, any number of O; anything else is kept out of
 * the certificate anyway, so it is ignored. */
static int
csr_subject(X509_NAME *name, struct pki_csr_info *out, struct dpf_error *err)
{
    int n = X509_NAME_entry_count(name);
    for (int i = 0; i < n; i++) {
        X509_NAME_ENTRY *e = X509_NAME_get_entry(name, i);
        int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
        const ASN1_STRING *v = X509_NAME_ENTRY_get_data(e);
        if (nid == NID_commonName) {
            if (out->cn[0]) {
                return csr_bad(err, "the subject has more than one CN");
            }
            if (!csr_text(v, out->cn, sizeof out->cn) || !out->cn[0]) {
                return csr_bad(err, "the subject CN is empty or too long");
            }
        } else if (nid == NID_organizationName) {
            if (out->n_orgs >= PKI_CSR_MAX_NAMES) {
                return csr_bad(err, "the subject has more than 16 O values");
            }
            if (!csr_text(v, out->orgs[out->n_orgs], PKI_CSR_NAME_MAX)) {
                return csr_bad(err, "a subject O is too long");
            }
            out->n_orgs++;
        } else if (nid == NID_pkcs9_emailAddress) {
            out->has_email = true;
        }
    }
    return 0;
}

static int
csr_sans(X509_REQ *req, struct pki_csr_info *out, struct dpf_error *err)
{
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    if (!exts) {
        ERR_clear_error();
        return 0;
    }
    int rc = 0;
    GENERAL_NAMES *names = NULL;
    int crit = 0;
    names = X509V3_get_d2i(exts, NID_subject_alt_name, &crit, NULL);
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && !rc; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type == GEN_DNS) {
            if (out->n_dns >= PKI_CSR_MAX_NAMES ||
                !csr_text(g->d.dNSName, out->dns[out->n_dns],
                          PKI_CSR_NAME_MAX)) {
                rc = csr_bad(err, "too many or too long DNS names");
            } else {
                out->n_dns++;
            }
        } else if (g->type == GEN_IPADD) {
            int len = ASN1_STRING_length(g->d.iPAddress);
            const unsigned char *p = ASN1_STRING_get0_data(g->d.iPAddress);
            int af = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
            if (!af || out->n_ips >= PKI_CSR_MAX_NAMES ||
                !inet_ntop(af, p, out->ips[out->n_ips], 64)) {
                rc = csr_bad(err, "a bad or one IP address too many");
            } else {
                out->n_ips++;
            }
        } else if (g->type == GEN_EMAIL) {
            out->has_email = true;
        } else if (g->type == GEN_URI) {
            out->has_uri = true;
        } else {
            out->has_uri = true; /* other names: refused like URIs */
        }
    }
    GENERAL_NAMES_free(names);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    ERR_clear_error();
    return rc;
}

static X509_REQ *
csr_load(const char *pem, size_t len, struct dpf_error *err)
{
    /* Exactly one PEM block of the right type, as Kubernetes requires
     * (pem.Decode of the first block, and it must be the only thing). */
    const char *b = memmem(pem, len, PEM_CSR_BEGIN, strlen(PEM_CSR_BEGIN));
    const char *e = b ? memmem(b, len - (size_t) (b - pem), PEM_CSR_END,
                               strlen(PEM_CSR_END))
                      : NULL;
    if (!b || !e || !csr_only_space(pem, (size_t) (b - pem))) {
        csr_bad(err, "not a PEM CERTIFICATE REQUEST");
        return NULL;
    }
    const char *end = e + strlen(PEM_CSR_END);
    if (!csr_only_space(end, len - (size_t) (end - pem))) {
        csr_bad(err, "more than one PEM block");
        return NULL;
    }
    BIO *bio = BIO_new_mem_buf(b, (int) (end - b));
    X509_REQ *req = bio ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!req) {
        csr_bad(err, "the PEM CERTIFICATE REQUEST does not parse");
        return NULL;
    }
    return req;
}

struct pki_csr {
    X509_REQ *req;
};

struct pki_csr *
pki_csr_read(const char *pem, size_t len, struct pki_csr_info *out,
             struct dpf_error *err)
{
    memset(out, 0, sizeof *out);
    if (!pem || len == 0 || len > 64 * 1024) {
        csr_bad(err, "not a PEM CERTIFICATE REQUEST");
        return NULL;
    }
    X509_REQ *req = csr_load(pem, len, err);
    if (!req) {
        return NULL;
    }
    int rc = 0;
    EVP_PKEY *key = X509_REQ_get0_pubkey(req);
    if (!key || X509_REQ_verify(req, key) != 1) {
        rc = csr_bad(err, "the request's signature does not verify");
        goto out;
    }
    int bits = EVP_PKEY_get_bits(key);
    int id = EVP_PKEY_get_base_id(key);
    out->key_ok = (id == EVP_PKEY_EC && bits >= 256) ||
                  (id == EVP_PKEY_RSA && bits >= 2048) ||
                  id == EVP_PKEY_ED25519;
    if ((rc = csr_subject(X509_REQ_get_subject_name(req), out, err)) < 0) {
        goto out;
    }
    rc = csr_sans(req, out, err);
out:
    ERR_clear_error();
    if (rc < 0) {
        X509_REQ_free(req);
        return NULL;
    }
    struct pki_csr *csr = xmalloc(sizeof *csr);
    csr->req = req;
    return csr;
}

void
pki_csr_free(struct pki_csr *csr)
{
    if (csr) {
        X509_REQ_free(csr->req);
        free(csr);
    }
}

int
pki_csr_parse(const char *pem, size_t len, struct pki_csr_info *out,
              struct dpf_error *err)
{
    struct pki_csr *csr = pki_csr_read(pem, len, out, err);
    if (!csr) {
        return -EINVAL;
    }
    pki_csr_free(csr);
    return 0;
}

static const char *const usage_words[] = {
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
};

bool
pki_usage_known(const char *word)
{
    for (size_t i = 0; i < ARRAY_SIZE(usage_words); i++) {
        if (!strcmp(word, usage_words[i])) {
            return true;
        }
    }
    return false;
}

int
pki_usage_bit(const char *word)
{
    if (!strcmp(word, "digital signature")) {
        return PKI_USAGE_DIGITAL_SIGNATURE;
    }
    if (!strcmp(word, "key encipherment")) {
        return PKI_USAGE_KEY_ENCIPHERMENT;
    }
    if (!strcmp(word, "client auth")) {
        return PKI_USAGE_CLIENT_AUTH;
    }
    if (!strcmp(word, "server auth")) {
        return PKI_USAGE_SERVER_AUTH;
    }
    return pki_usage_known(word) ? 0 : -1;
}

static int
sign_fail(struct dpf_error *err, const char *what)
{
    char buf[256];
    unsigned long e = ERR_get_error();
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    dpf_error_set(err, 500, "InternalError", "signer: %s: %s", what,
                  e ? buf : "unknown error");
    return -EIO;
}

static int
sign_ext(X509 *x, X509 *ca, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, ca, x, NULL, NULL, 0);
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!e) {
        return -1;
    }
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok ? 0 : -1;
}

struct pki_signer {
    X509 *ca;
    EVP_PKEY *key;
};

struct pki_signer *
pki_signer_load(const char *ca_cert_path, const char *ca_key_path,
                struct dpf_error *err)
{
    struct pki_signer *s = xcalloc(1, sizeof *s);
    FILE *f = fopen(ca_cert_path, "r");
    s->ca = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f) {
        fclose(f);
    }
    f = fopen(ca_key_path, "r");
    s->key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
    if (f) {
        fclose(f);
    }
    if (!s->ca || !s->key) {
        sign_fail(err, "cannot read the CA certificate or key");
        pki_signer_free(s);
        return NULL;
    }
    return s;
}

void
pki_signer_free(struct pki_signer *s)
{
    if (s) {
        X509_free(s->ca);
        EVP_PKEY_free(s->key);
        free(s);
    }
}

/* x's SubjectPublicKeyInfo set to the request's, copied as it is.
 * X509_set_pubkey() with the request's parsed key would encode it and
 * decode it again through OpenSSL 3.0's provider lookups (0.22 ms a
 * certificate; this takes 1 us). */
static int
copy_pubkey(X509 *x, X509_REQ *req)
{
    const unsigned char *bits;
    int nbits;
    X509_ALGOR *alg;
    const ASN1_OBJECT *obj;
    int ptype;
    const void *pval;
    X509_PUBKEY *src = X509_REQ_get_X509_PUBKEY(req);
    if (!src || !X509_PUBKEY_get0_param(NULL, &bits, &nbits, &alg, src)) {
        return -EINVAL;
    }
    X509_ALGOR_get0(&obj, &ptype, &pval, alg);
    void *param = NULL;
    if (ptype == V_ASN1_OBJECT) {
        param = OBJ_dup(pval);
    } else if (ptype == V_ASN1_SEQUENCE) {
        param = ASN1_STRING_dup(pval);
    } else if (ptype != V_ASN1_NULL && ptype != V_ASN1_UNDEF) {
        return -EINVAL;
    }
    ASN1_OBJECT *o = OBJ_dup(obj);
    unsigned char *copy = OPENSSL_memdup(bits, (size_t) nbits);
    if (!o || !copy ||
        (ptype != V_ASN1_NULL && ptype != V_ASN1_UNDEF && !param) ||
        !X509_PUBKEY_set0_param(X509_get_X509_PUBKEY(x), o, ptype, param, copy,
                                nbits)) {
        ASN1_OBJECT_free(o);
        OPENSSL_free(copy);
        if (ptype == V_ASN1_OBJECT) {
            ASN1_OBJECT_free(param);
        } else {
            ASN1_STRING_free(param);
        }
        return -ENOMEM;
    }
    return 0;
}

int
pki_signer_sign(const struct pki_signer *s, const struct pki_csr *csr,
                unsigned usages, int64_t lifetime_s, char **cert_pem,
                struct dpf_error *err)
{
    *cert_pem = NULL;
    X509 *ca = s->ca, *x = NULL;
    EVP_PKEY *ca_key = s->key;
    BIO *out = NULL;
    int rc = 0;
    X509_REQ *req = csr->req;
    x = X509_new();
    X509_set_version(x, 2);
    BIGNUM *bn = BN_new();
    BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    X509_set_subject_name(x, X509_REQ_get_subject_name(req));
    X509_set_issuer_name(x, X509_get_subject_name(ca));
    if (copy_pubkey(x, req) < 0) {
        rc = sign_fail(err, "cannot copy the request's public key");
        goto done;
    }
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), (long) lifetime_s);
    /* Never past the CA: a certificate outliving its issuer would fail
     * verification anyway, and later than expected. */
    if (ASN1_TIME_compare(X509_get0_notAfter(x), X509_get0_notAfter(ca)) > 0) {
        X509_set1_notAfter(x, X509_get0_notAfter(ca));
    }
    char ku[64] = "critical", eku[64] = "";
    if (usages & PKI_USAGE_DIGITAL_SIGNATURE) {
        strcat(ku, ",digitalSignature");
    }
    if (usages & PKI_USAGE_KEY_ENCIPHERMENT) {
        strcat(ku, ",keyEncipherment");
    }
    if (usages & PKI_USAGE_CLIENT_AUTH) {
        strcat(eku, "clientAuth");
    }
    if (usages & PKI_USAGE_SERVER_AUTH) {
        strcat(eku, eku[0] ? ",serverAuth" : "serverAuth");
    }
    if (sign_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        (strcmp(ku, "critical") && sign_ext(x, ca, NID_key_usage, ku) < 0) ||
        (eku[0] && sign_ext(x, ca, NID_ext_key_usage, eku) < 0) ||
        sign_ext(x, ca, NID_authority_key_identifier, "keyid:always") < 0) {
        rc = sign_fail(err, "cannot add the certificate's extensions");
        goto done;
    }
    /* The request's subject alternative names, as they are. */
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
    for (int i = 0; exts && i < sk_X509_EXTENSION_num(exts); i++) {
        X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);
        if (OBJ_obj2nid(X509_EXTENSION_get_object(e)) == NID_subject_alt_name) {
            X509_add_ext(x, e, -1);
        }
    }
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    if (!X509_sign(x, ca_key, EVP_sha256())) {
        rc = sign_fail(err, "cannot sign the certificate");
        goto done;
    }
    out = BIO_new(BIO_s_mem());
    if (!out || !PEM_write_bio_X509(out, x)) {
        rc = sign_fail(err, "cannot encode the certificate");
        goto done;
    }
    char *p;
    long n = BIO_get_mem_data(out, &p);
    *cert_pem = xmalloc((size_t) n + 1);
    memcpy(*cert_pem, p, (size_t) n);
    (*cert_pem)[n] = '\0';
done:
    BIO_free(out);
    X509_free(x);
    ERR_clear_error();
    return rc;
}
