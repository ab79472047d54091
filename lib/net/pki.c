/* pki: see pki.h. */
/* pki_ec_key_new() uses the EC_KEY calls OpenSSL 3.0 marks deprecated:
 * they are what keeps the key off the provider path (see pki.h). */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "lib/net/pki.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/base/util.h"
#include "lib/base/base64.h"

#define PKI_KEY_MODE 0600
#define PKI_CERT_MODE 0644

EVP_PKEY *
pki_ec_key_new(void)
{
    EC_KEY *ec = EC_KEY_new_by_curve_name(NID_X9_62_prime256v1);
    EVP_PKEY *key = EVP_PKEY_new();
    if (!ec || !key || !EC_KEY_generate_key(ec) ||
        !EVP_PKEY_assign_EC_KEY(key, ec)) {
        EC_KEY_free(ec);
        EVP_PKEY_free(key);
        return NULL;
    }
    return key;
}

/* The most recent OpenSSL error as text (into buf). */
static const char *
ssl_errstr(char *buf, size_t size)
{
    unsigned long e = ERR_get_error();
    if (e == 0) {
        snprintf(buf, size, "unknown OpenSSL error");
    } else {
        ERR_error_string_n(e, buf, size);
    }
    ERR_clear_error();
    return buf;
}

static int
ssl_fail(struct dpf_error *err, const char *what, const char *path)
{
    char buf[256];
    dpf_error_set(err, 500, "InternalError", "pki: %s %s: %s", what,
                  path ? path : "", ssl_errstr(buf, sizeof(buf)));
    return -EIO;
}

static bool
is_ip(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* Write a PEM produced by fn into path atomically. */
static int
write_pem(const char *path, unsigned mode, X509 *cert, EVP_PKEY *key,
          struct dpf_error *err)
{
    BIO *b = BIO_new(BIO_s_mem());
    int ok = cert ? PEM_write_bio_X509(b, cert)
                  : PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
    if (!ok) {
        BIO_free(b);
        return ssl_fail(err, "cannot encode", path);
    }
    char *data;
    long len = BIO_get_mem_data(b, &data);
    int r = file_write_atomic(path, data, (size_t) len, mode);
    BIO_free(b);
    if (r < 0) {
        dpf_error_set(err, 500, "InternalError", "pki: cannot write %s: %s",
                      path, strerror(-r));
    }
    return r;
}

static int
load_cert(const char *path, X509 **out, struct dpf_error *err)
{
    BIO *b = BIO_new_file(path, "r");
    if (!b) {
        int e = errno ? errno : ENOENT;
        ERR_clear_error();
        dpf_error_set(err, 500, "InternalError",
                      "pki: cannot read certificate %s: %s", path, strerror(e));
        return -e;
    }
    *out = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!*out) {
        ssl_fail(err, "cannot parse certificate", path);
        return -EKEYREJECTED;
    }
    return 0;
}

static int
load_key(const char *path, EVP_PKEY **out, struct dpf_error *err)
{
    BIO *b = BIO_new_file(path, "r");
    if (!b) {
        int e = errno ? errno : ENOENT;
        ERR_clear_error();
        dpf_error_set(err, 500, "InternalError", "pki: cannot read key %s: %s",
                      path, strerror(e));
        return -e;
    }
    *out = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!*out) {
        ssl_fail(err, "cannot parse key", path);
        return -EKEYREJECTED;
    }
    return 0;
}

static int
add_ext(X509 *cert, X509 *issuer, int nid, const char *value,
        struct dpf_error *err)
{
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (!ext || !X509_add_ext(cert, ext, -1)) {
        X509_EXTENSION_free(ext);
        return ssl_fail(err, "cannot add extension", value);
    }
    X509_EXTENSION_free(ext);
    return 0;
}

/* A new certificate skeleton: version 3, random serial, validity, subject
 * CN (+ O), public key. */
static X509 *
cert_new(EVP_PKEY *key, const char *cn, const char *org, unsigned days)
{
    X509 *x = X509_new();
    X509_set_version(x, 2);
    BIGNUM *bn = BN_new();
    BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
    BN_free(bn);
    /* An hour of slack for clocks that are a little behind. */
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_time_adj_ex(X509_getm_notAfter(x), (int) days, 0, NULL);
    X509_NAME *name = X509_get_subject_name(x);
    if (org) {
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                   (const unsigned char *) org, -1, -1, 0);
    }
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                               (const unsigned char *) cn, -1, -1, 0);
    X509_set_pubkey(x, key);
    return x;
}

/* One extension to add: NID and value (NULL: left out). */
struct pki_ext {
    int nid;
    const char *value;
};

/* Make a key and a certificate for it, signed by ca/ca_key (NULL: self
 * signed, a CA) with the extensions exts[0..n), and write both. Takes
 * the ca references. */
static int
issue(X509 *ca, EVP_PKEY *ca_key, const char *cert_path, const char *key_path,
      const char *cn, const char *org, unsigned days,
      const struct pki_ext *exts, size_t n, struct dpf_error *err)
{
    X509 *x = NULL;
    int r = 0;
    EVP_PKEY *key = pki_ec_key_new();
    if (!key) {
        r = ssl_fail(err, "cannot generate a key for", cert_path);
        goto out;
    }
    x = cert_new(key, cn, org, days);
    X509 *issuer = ca ? ca : x;
    X509_set_issuer_name(x, X509_get_subject_name(issuer));
    for (size_t i = 0; i < n && r == 0; i++) {
        if (exts[i].value) {
            r = add_ext(x, issuer, exts[i].nid, exts[i].value, err);
        }
    }
    if (r != 0) {
        goto out;
    }
    if (!X509_sign(x, ca_key ? ca_key : key, EVP_sha256())) {
        r = ssl_fail(err, "cannot sign", cert_path);
        goto out;
    }
    /* Key first: a certificate without its key would look reusable. */
    if ((r = write_pem(key_path, PKI_KEY_MODE, NULL, key, err)) == 0) {
        r = write_pem(cert_path, PKI_CERT_MODE, x, NULL, err);
    }
out:
    X509_free(x);
    EVP_PKEY_free(key);
    X509_free(ca);
    EVP_PKEY_free(ca_key);
    return r;
}

int
pki_ca_create(const char *cert_path, const char *key_path, const char *cn,
              unsigned days, struct dpf_error *err)
{
    const struct pki_ext exts[] = {
        {NID_basic_constraints, "critical,CA:TRUE"},
        {NID_key_usage, "critical,digitalSignature,keyCertSign,cRLSign"},
        {NID_subject_key_identifier, "hash"},
        {NID_authority_key_identifier, "keyid:always"},
    };
    return issue(NULL, NULL, cert_path, key_path, cn, NULL, days, exts,
                 ARRAY_SIZE(exts), err);
}

/* Issue a leaf certificate signed by the CA. */
static int
issue_leaf(const char *ca_cert_path, const char *ca_key_path,
           const char *cert_path, const char *key_path, const char *cn,
           const char *org, const char *eku, const char *san, unsigned days,
           struct dpf_error *err)
{
    X509 *ca = NULL;
    EVP_PKEY *ca_key = NULL;
    int r;
    if ((r = load_cert(ca_cert_path, &ca, err)) < 0 ||
        (r = load_key(ca_key_path, &ca_key, err)) < 0) {
        X509_free(ca);
        return r;
    }
    if (!X509_check_private_key(ca, ca_key)) {
        ERR_clear_error();
        dpf_error_set(err, 500, "InternalError",
                      "pki: CA key %s does not match CA certificate %s",
                      ca_key_path, ca_cert_path);
        X509_free(ca);
        EVP_PKEY_free(ca_key);
        return -EKEYREJECTED;
    }
    const struct pki_ext exts[] = {
        {NID_basic_constraints, "critical,CA:FALSE"},
        {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
        {NID_ext_key_usage, eku},
        {NID_subject_key_identifier, "hash"},
        {NID_authority_key_identifier, "keyid:always"},
        {NID_subject_alt_name, san},
    };
    return issue(ca, ca_key, cert_path, key_path, cn, org, days, exts,
                 ARRAY_SIZE(exts), err);
}

int
pki_issue_server(const char *ca_cert_path, const char *ca_key_path,
                 const char *cert_path, const char *key_path, const char *cn,
                 const char *const *sans, size_t n_sans, unsigned days,
                 struct dpf_error *err)
{
    struct dbuf san;
    dbuf_init(&san);
    const char *first_dns = NULL;
    for (size_t i = 0; i < n_sans; i++) {
        const char *s = sans[i];
        if (!s || !*s || strchr(s, ',')) {
            dbuf_free(&san);
            dpf_error_set(err, 400, "Invalid",
                          "pki: subject alternative name \"%s\" is not a "
                          "DNS name or IP address",
                          s ? s : "");
            return -EINVAL;
        }
        bool ip = is_ip(s);
        if (!ip && !first_dns) {
            first_dns = s;
        }
        dbuf_printf(&san, "%s%s:%s", san.len ? "," : "", ip ? "IP" : "DNS", s);
    }
    if (!cn) {
        cn = first_dns ? first_dns : "dpf-server";
    }
    int r = issue_leaf(ca_cert_path, ca_key_path, cert_path, key_path, cn, NULL,
                       "serverAuth", san.len ? san.data : NULL, days, err);
    dbuf_free(&san);
    return r;
}

int
pki_issue_client(const char *ca_cert_path, const char *ca_key_path,
                 const char *cert_path, const char *key_path, const char *cn,
                 const char *org, unsigned days, struct dpf_error *err)
{
    return issue_leaf(ca_cert_path, ca_key_path, cert_path, key_path, cn, org,
                      "clientAuth", NULL, days, err);
}

int
pki_cert_check(const char *ca_cert_path, const char *cert_path,
               const char *key_path, const char *const *sans, size_t n_sans,
               unsigned min_days, struct dpf_error *err)
{
    X509 *ca = NULL;
    X509 *x = NULL;
    EVP_PKEY *key = NULL;
    X509_STORE *store = NULL;
    X509_STORE_CTX *ctx = NULL;
    int r;

    if (access(ca_cert_path, F_OK) != 0 || access(cert_path, F_OK) != 0 ||
        (key_path && access(key_path, F_OK) != 0)) {
        dpf_error_set(err, 500, "InternalError", "pki: %s or its key missing",
                      cert_path);
        return -ENOENT;
    }
    if ((r = load_cert(ca_cert_path, &ca, err)) < 0 ||
        (r = load_cert(cert_path, &x, err)) < 0 ||
        (key_path && (r = load_key(key_path, &key, err)) < 0)) {
        r = r == -ENOENT ? -ENOENT : -EKEYREJECTED;
        goto out;
    }
    r = -EKEYREJECTED;
    if (key && !X509_check_private_key(x, key)) {
        ERR_clear_error();
        dpf_error_set(err, 500, "InternalError",
                      "pki: key %s does not match certificate %s", key_path,
                      cert_path);
        goto out;
    }
    store = X509_STORE_new();
    X509_STORE_add_cert(store, ca);
    ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, x, NULL);
    if (X509_verify_cert(ctx) != 1) {
        dpf_error_set(
            err, 500, "InternalError", "pki: %s does not verify against %s: %s",
            cert_path, ca_cert_path,
            X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
        goto out;
    }
    time_t horizon = time(NULL) + (time_t) min_days * 86400;
    if (X509_cmp_time(X509_get0_notAfter(x), &horizon) <= 0) {
        dpf_error_set(err, 500, "InternalError",
                      "pki: %s expires within %u days", cert_path, min_days);
        goto out;
    }
    for (size_t i = 0; i < n_sans; i++) {
        int ok = is_ip(sans[i]) ? X509_check_ip_asc(x, sans[i], 0)
                                : X509_check_host(x, sans[i], 0, 0, NULL);
        if (ok != 1) {
            dpf_error_set(err, 500, "InternalError",
                          "pki: %s does not cover the name %s", cert_path,
                          sans[i]);
            goto out;
        }
    }
    r = 0;
out:
    ERR_clear_error();
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    EVP_PKEY_free(key);
    X509_free(x);
    X509_free(ca);
    return r;
}

char *
pki_token_new(void)
{
    unsigned char raw[PKI_TOKEN_HEX_LEN / 2];
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        abort(); /* no entropy: nothing safe to hand out */
    }
    char *hex = xmalloc(PKI_TOKEN_HEX_LEN + 1);
    for (size_t i = 0; i < sizeof(raw); i++) {
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    }
    return hex;
}

int
pki_token_load_or_create(const char *path, char **token, struct dpf_error *err)
{
    char *data = NULL;
    size_t len = 0;
    int r = file_read_all(path, &data, &len);
    if (r == 0) {
        while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r' ||
                           data[len - 1] == ' ')) {
            data[--len] = '\0';
        }
        if (len < 16) {
            free(data);
            dpf_error_set(err, 500, "InternalError",
                          "pki: token file %s is empty or too short", path);
            return -EINVAL;
        }
        *token = data;
        return 0;
    }
    if (r != -ENOENT) {
        dpf_error_set(err, 500, "InternalError", "pki: cannot read %s: %s",
                      path, strerror(-r));
        return r;
    }
    char *t = pki_token_new();
    char *line = xasprintf("%s\n", t);
    r = file_write_atomic(path, line, strlen(line), PKI_KEY_MODE);
    free(line);
    if (r < 0) {
        free(t);
        dpf_error_set(err, 500, "InternalError", "pki: cannot write %s: %s",
                      path, strerror(-r));
        return r;
    }
    *token = t;
    return 0;
}

/* base64 of a file's contents, or NULL + err. */
static char *
file_base64(const char *path, struct dpf_error *err)
{
    char *data;
    size_t len;
    int r = file_read_all(path, &data, &len);
    if (r < 0) {
        dpf_error_set(err, 500, "InternalError", "pki: cannot read %s: %s",
                      path, strerror(-r));
        return NULL;
    }
    char *out = base64_encode(data, len, BASE64_STD);
    free(data);
    return out;
}

/* A YAML double-quoted scalar. */
static void
yaml_quoted(struct dbuf *b, const char *s)
{
    dbuf_puts(b, "\"");
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') {
            dbuf_printf(b, "\\%c", *s);
        } else if ((unsigned char) *s < 0x20) {
            dbuf_printf(b, "\\x%02x", (unsigned char) *s);
        } else {
            dbuf_append(b, s, 1);
        }
    }
    dbuf_puts(b, "\"");
}

int
pki_kubeconfig_render(const struct pki_kubeconfig *kc, char **out,
                      struct dpf_error *err)
{
    char *ca = NULL, *cert = NULL, *key = NULL;
    if (!kc->cluster || !kc->server || !kc->user) {
        dpf_error_set(err, 400, "Invalid",
                      "pki: kubeconfig needs cluster, server and user");
        return -EINVAL;
    }
    if ((kc->ca_path && !(ca = file_base64(kc->ca_path, err))) ||
        (kc->cert_path && !(cert = file_base64(kc->cert_path, err))) ||
        (kc->key_path && !(key = file_base64(kc->key_path, err)))) {
        free(ca);
        free(cert);
        free(key);
        return -EIO;
    }
    struct dbuf b;
    dbuf_init(&b);
    dbuf_puts(&b, "apiVersion: v1\nkind: Config\nclusters:\n- name: ");
    yaml_quoted(&b, kc->cluster);
    dbuf_puts(&b, "\n  cluster:\n    server: ");
    yaml_quoted(&b, kc->server);
    dbuf_puts(&b, "\n");
    if (ca) {
        dbuf_printf(&b, "    certificate-authority-data: %s\n", ca);
    }
    dbuf_puts(&b, "users:\n- name: ");
    yaml_quoted(&b, kc->user);
    dbuf_puts(&b, "\n  user:\n");
    if (cert) {
        dbuf_printf(&b, "    client-certificate-data: %s\n", cert);
    }
    if (key) {
        dbuf_printf(&b, "    client-key-data: %s\n", key);
    }
    if (kc->token) {
        dbuf_puts(&b, "    token: ");
        yaml_quoted(&b, kc->token);
        dbuf_puts(&b, "\n");
    }
    if (!cert && !key && !kc->token) {
        dbuf_puts(&b, "    {}\n");
    }
    dbuf_puts(&b, "contexts:\n- name: ");
    yaml_quoted(&b, kc->cluster);
    dbuf_puts(&b, "\n  context:\n    cluster: ");
    yaml_quoted(&b, kc->cluster);
    dbuf_puts(&b, "\n    user: ");
    yaml_quoted(&b, kc->user);
    if (kc->namespace_) {
        dbuf_puts(&b, "\n    namespace: ");
        yaml_quoted(&b, kc->namespace_);
    }
    dbuf_puts(&b, "\ncurrent-context: ");
    yaml_quoted(&b, kc->cluster);
    dbuf_puts(&b, "\npreferences: {}\n");
    free(ca);
    free(cert);
    free(key);
    *out = dbuf_steal(&b, NULL);
    return 0;
}

int
pki_kubeconfig_write(const char *path, const struct pki_kubeconfig *kc,
                     struct dpf_error *err)
{
    char *text;
    int r = pki_kubeconfig_render(kc, &text, err);
    if (r < 0) {
        return r;
    }
    r = file_write_atomic(path, text, strlen(text), PKI_KEY_MODE);
    /* The text holds a private key and the token: wipe before freeing. */
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    if (r < 0) {
        dpf_error_set(err, 500, "InternalError",
                      "pki: cannot write kubeconfig %s: %s", path,
                      strerror(-r));
    }
    return r;
}
