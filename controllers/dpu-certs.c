/* dpu-certs: the DMS server certificate of a DPU and the DPU controller's
 * client certificate, as Secrets. See dpu-pods.h (dpu_certs_ensure).
 *
 * DPF gets both from cert-manager (a CA Issuer, 24 h, renewed 8 h before
 * the end). We ask the API server's signer dpu.nvidia.com/dms through a
 * certificates.k8s.io/v1 CertificateSigningRequest, approve it ourselves
 * (the signer signs only approved requests; approving needs `approve` on
 * signers/dpu.nvidia.com/dms, which the controller's identity has) and
 * take the certificate from the approval's answer (dpf-server signs for
 * its own signers as it approves); another server's signer is waited for
 * up to 10 s. The CSR is deleted once its
 * certificate is in the Secret: nothing stays behind but the Secret. The
 * key never leaves this process but in the Secret.
 *
 * With an explicit CA (struct dpu_certs_signer), the certificates are
 * issued here with lib/net/pki instead: for a control plane whose API
 * server has no dms signer. */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "controllers/dpu-pods.h"
#include "lib/base/base64.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/codecs/yamljson.h"
#include "lib/kube/kube-bootstrap.h"
#include "lib/kube/kube-object.h"
#include "lib/kube/kube-rest.h"
#include "lib/net/pki.h"

LOG_MODULE(dpucerts);

#define SIGNER "dpu.nvidia.com/dms"
#define LABEL_POD_DPU "provisioning.dpu.nvidia.com/dpu-name"
#define LABEL_DPU_NS "provisioning.dpu.nvidia.com/dpu-namespace"
#define CSR_WAIT_MS 10000
#define CLIENT_CN "dpf-provisioning-client"

static const struct kube_gvr secret_gvr = {"", "v1", "secrets", true};
static const struct kube_gvr csr_gvr = {"certificates.k8s.io", "v1",
                                        "certificatesigningrequests", false};
static const struct kube_gvr cm_gvr = {"", "v1", "configmaps", true};

static const char *
meta(const json_t *o, const char *k)
{
    return json_string_value(
        json_object_get(json_object_get(o, "metadata"), k));
}

/* --- certificate checks ---------------------------------------------- */

static X509 *
x509_pem(const char *pem, size_t len)
{
    BIO *b = BIO_new_mem_buf(pem, (int) len);
    X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return x;
}

/* The end of cert's validity (seconds since the epoch) minus the renew
 * window, or -1 when it must be renewed now: not valid PEM, not signed by
 * ca, or (server) not for ip. */
static int64_t
cert_renew_at(const char *cert, size_t clen, const char *ca, size_t calen,
              const char *ip)
{
    X509 *x = x509_pem(cert, clen), *c = x509_pem(ca, calen);
    int64_t at = -1;
    if (x && c && X509_verify(x, X509_get0_pubkey(c)) == 1 &&
        (!ip || X509_check_ip_asc(x, ip, 0) == 1)) {
        int days = 0, secs = 0;
        if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x))) {
            at = (int64_t) time(NULL) + (int64_t) days * 86400 + secs -
                 DPU_CERT_RENEW_BEFORE_S;
        }
    }
    X509_free(x);
    X509_free(c);
    return at;
}

/* The last verdicts of cert_renew_at(), by a digest of its inputs. Every
 * DPU's DMS Deployment checks the one shared client Secret and its own
 * server Secret, again at each pass while it waits: parsing both
 * certificates and checking a signature each time cost ~0.7 ms (OpenSSL
 * 3.0 decodes a certificate's key through its provider lookups), a
 * digest of the same texts ~5 us. Only good verdicts are kept; a
 * certificate whose renewal is due is parsed again. */
#define VERDICTS 64
static struct {
    unsigned char digest[32];
    int64_t renew_at;
} verdicts[VERDICTS];
static unsigned verdicts_next;
static pthread_mutex_t verdicts_lock = PTHREAD_MUTEX_INITIALIZER;

static bool
verdict_digest(const char *cert, size_t clen, const char *ca, size_t calen,
               const char *ip, unsigned char out[32])
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    unsigned n = 0;
    uint64_t lens[2] = {clen, calen};
    bool ok = m && EVP_DigestInit_ex(m, EVP_sha256(), NULL) &&
              EVP_DigestUpdate(m, lens, sizeof lens) &&
              EVP_DigestUpdate(m, cert, clen) &&
              EVP_DigestUpdate(m, ca, calen) &&
              EVP_DigestUpdate(m, ip ? ip : "", ip ? strlen(ip) + 1 : 0) &&
              EVP_DigestFinal_ex(m, out, &n) && n == 32;
    EVP_MD_CTX_free(m);
    return ok;
}

/* Seconds until cert's renewal is due, or a negative value when it must
 * be renewed now (cert_renew_at). */
static int64_t
cert_good_for(const char *cert, size_t clen, const char *ca, size_t calen,
              const char *ip)
{
    unsigned char d[32];
    bool have = verdict_digest(cert, clen, ca, calen, ip, d);
    int64_t at = -1;
    pthread_mutex_lock(&verdicts_lock);
    for (unsigned i = 0; have && i < VERDICTS && at < 0; i++) {
        if (verdicts[i].renew_at > 0 && !memcmp(verdicts[i].digest, d, 32)) {
            at = verdicts[i].renew_at;
        }
    }
    pthread_mutex_unlock(&verdicts_lock);
    int64_t now = (int64_t) time(NULL);
    if (at < 0) {
        at = cert_renew_at(cert, clen, ca, calen, ip);
        if (have && at > now) {
            pthread_mutex_lock(&verdicts_lock);
            memcpy(verdicts[verdicts_next].digest, d, 32);
            verdicts[verdicts_next].renew_at = at;
            verdicts_next = (verdicts_next + 1) % VERDICTS;
            pthread_mutex_unlock(&verdicts_lock);
        }
    }
    return at < 0 ? -1 : at - now;
}

/* Decoded data[key] of a Secret (malloc'd) or NULL. */
static char *
secret_value(const json_t *s, const char *key, size_t *len)
{
    const char *v =
        json_string_value(json_object_get(json_object_get(s, "data"), key));
    char *out;
    if (!v || base64_decode(v, strlen(v), BASE64_STRICT, &out, len) < 0) {
        return NULL;
    }
    return out;
}

struct dpu_certs_memo {
    pthread_mutex_t mu;
    json_t *by_ns; /* namespace -> {"secret": Secret, "at": monotonic ms} */
    char *ca;      /* cluster-info's CA as last read (PEM), or NULL */
    size_t ca_len;
    int64_t ca_at; /* monotonic ms of that read */
};

/* --- the CA ---------------------------------------------------------- */

/* The CA certificate that signs: the signer's file, or the one the API
 * server publishes in kube-public/cluster-info (the CA its signers use). */
static int
ca_pem(struct kube_rest *r, const struct dpu_certs_signer *s,
       struct dpu_certs_memo *m, char **out, size_t *len, struct dpf_error *err)
{
    if (s && s->ca_cert_path) {
        int rc = file_read_all(s->ca_cert_path, out, len);
        if (rc < 0) {
            dpf_error_set(err, 500, "InternalError",
                          "DMS certificates: cannot read the CA %s: %s",
                          s->ca_cert_path, strerror(-rc));
        }
        return rc;
    }
    int64_t now = time_mono_ms();
    *out = NULL;
    *len = 0;
    if (m) {
        pthread_mutex_lock(&m->mu);
        if (m->ca && now - m->ca_at < DPU_CERTS_MEMO_MS) {
            *out = xmalloc(m->ca_len + 1);
            memcpy(*out, m->ca, m->ca_len + 1); /* with its NUL */
            *len = m->ca_len;
        }
        pthread_mutex_unlock(&m->mu);
        if (*out) {
            return 0;
        }
    }
    char *path = kube_path(&cm_gvr, "kube-public", "cluster-info", NULL);
    json_t *cm = NULL;
    int rc = kube_rest_json_wait(r, "GET", path, NULL, NULL, NULL, &cm, err);
    free(path);
    if (rc < 0) {
        return rc;
    }
    const char *kc = json_string_value(
        json_object_get(json_object_get(cm, "data"), "kubeconfig"));
    json_t *doc = NULL;
    struct dpf_error perr = {0};
    rc = -EINVAL;
    if (kc && yamljson_parse_one(kc, strlen(kc), &doc, &perr) == 0) {
        const char *d = json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(doc, "clusters"), 0),
                            "cluster"),
            "certificate-authority-data"));
        if (d && base64_decode(d, strlen(d), BASE64_LENIENT, out, len) == 0) {
            rc = 0;
        }
    }
    if (m && rc == 0) {
        pthread_mutex_lock(&m->mu);
        free(m->ca);
        m->ca = xmalloc(*len + 1);
        memcpy(m->ca, *out, *len + 1);
        m->ca_len = *len;
        m->ca_at = now;
        pthread_mutex_unlock(&m->mu);
    }
    json_decref(doc);
    json_decref(cm);
    if (rc < 0) {
        dpf_error_set(err, 500, "InternalError",
                      "DMS certificates: ConfigMap kube-public/cluster-info "
                      "has no CA (key kubeconfig, "
                      "certificate-authority-data)");
    }
    return rc;
}

/* --- issuing ---------------------------------------------------------- */

/* Through the API server's signer: create, approve, wait, delete. */
static int
issue_csr(struct kube_rest *r, const json_t *dpu, const char *what,
          const char *cn, const char *ip, bool server, char **cert, char **key,
          struct dpf_error *err)
{
    char *csr_pem = NULL;
    const char *sans[2] = {ip, NULL};
    int rc =
        kube_bootstrap_csr_new(cn, NULL, ip ? sans : NULL, key, &csr_pem, err);
    if (rc < 0) {
        return rc;
    }
    char *b64 = base64_encode(csr_pem, strlen(csr_pem), BASE64_STD);
    free(csr_pem);
    char *gen = xasprintf("dms-%s-", server ? meta(dpu, "name") : "client");
    json_t *csr = json_pack(
        "{s:s,s:s,s:{s:s,s:{s:s,s:s}},s:{s:s,s:s,s:I,s:[s,s,s]}}", "apiVersion",
        "certificates.k8s.io/v1", "kind", "CertificateSigningRequest",
        "metadata", "generateName", gen, "labels", LABEL_POD_DPU,
        meta(dpu, "name"), LABEL_DPU_NS, meta(dpu, "namespace"), "spec",
        "request", b64, "signerName", SIGNER, "expirationSeconds",
        (json_int_t) DPU_CERT_LIFETIME_S, "usages", "digital signature",
        "key encipherment", server ? "server auth" : "client auth");
    free(gen);
    free(b64);
    char *path = kube_path(&csr_gvr, NULL, NULL, NULL);
    json_t *made = NULL;
    rc = kube_rest_json_wait(r, "POST", path, NULL, csr, NULL, &made, err);
    free(path);
    json_decref(csr);
    if (rc < 0) {
        free(*key);
        *key = NULL;
        return rc;
    }
    char *name = xstrdup(meta(made, "name"));
    /* approve: the Approved condition through the approval subresource */
    json_t *st = json_object_get(made, "status");
    if (!json_is_object(st)) {
        st = json_object();
        json_object_set_new(made, "status", st);
    }
    char now[32];
    kube_time_now(now, sizeof now);
    json_object_set_new(st, "conditions",
                        json_pack("[{s:s,s:s,s:s,s:s,s:s}]", "type", "Approved",
                                  "status", "True", "reason",
                                  "DPUControllerApproved", "message",
                                  "DMS certificate for the DPU controller",
                                  "lastUpdateTime", now));
    path = kube_path(&csr_gvr, NULL, name, "approval");
    /* dpf-server signs as it approves: its answer mostly holds the
     * certificate already; another signer's is awaited with GETs */
    json_t *cur = NULL;
    rc = kube_rest_json_wait(r, "PUT", path, NULL, made, NULL, &cur, err);
    free(path);
    json_decref(made);
    int64_t deadline = time_mono_ms() + CSR_WAIT_MS;
    path = kube_path(&csr_gvr, NULL, name, NULL);
    while (rc == 0) {
        if (!cur) {
            rc = kube_rest_json_wait(r, "GET", path, NULL, NULL, NULL, &cur,
                                     err);
            if (rc < 0) {
                break;
            }
        }
        const json_t *cst = json_object_get(cur, "status");
        const char *c = json_string_value(json_object_get(cst, "certificate"));
        if (c && *c) {
            size_t n;
            if (base64_decode(c, strlen(c), BASE64_STRICT, cert, &n) < 0) {
                rc = -EPROTO;
                dpf_error_set(err, 500, "InternalError",
                              "%s: CSR %s holds a certificate that is not "
                              "base64",
                              what, name);
            }
            break;
        }
        size_t i;
        const json_t *cond;
        json_array_foreach(json_object_get(cst, "conditions"), i, cond)
        {
            const char *t = json_string_value(json_object_get(cond, "type"));
            if (t && (!strcmp(t, "Failed") || !strcmp(t, "Denied"))) {
                dpf_error_set(
                    err, 403, "Forbidden", "%s: CSR %s was %s: %s", what, name,
                    t,
                    json_string_value(json_object_get(cond, "message"))
                        ? json_string_value(json_object_get(cond, "message"))
                        : "(no message)");
                rc = -EACCES;
            }
        }
        json_decref(cur);
        cur = NULL;
        if (rc == 0 && time_mono_ms() > deadline) {
            dpf_error_set(err, 503, "ServiceUnavailable",
                          "%s: CSR %s was not signed within %d s (does the "
                          "API server serve the signer " SIGNER "?)",
                          what, name, CSR_WAIT_MS / 1000);
            rc = -EINPROGRESS;
        }
        if (rc == 0) {
            usleep(100000);
        }
    }
    json_decref(cur);
    /* the certificate is ours now (or we start again): no CSR stays */
    struct dpf_error derr = {0};
    kube_rest_json_wait(r, "DELETE", path, NULL, NULL, NULL, NULL, &derr);
    free(path);
    free(name);
    if (rc < 0) {
        explicit_bzero(*key, strlen(*key));
        free(*key);
        *key = NULL;
    }
    return rc;
}

/* With an explicit CA: lib/net/pki into a private directory. */
static int
issue_local(const struct dpu_certs_signer *s, const char *what, const char *cn,
            const char *ip, char **cert, char **key, struct dpf_error *err)
{
    char tmpl[] = "/tmp/dpf-dms-cert-XXXXXX";
    char *dir = mkdtemp(tmpl);
    if (!dir) {
        dpf_error_set(err, 500, "InternalError", "%s: mkdtemp: %s", what,
                      strerror(errno));
        return -errno;
    }
    char *cp = xasprintf("%s/tls.crt", dir), *kp = xasprintf("%s/tls.key", dir);
    unsigned days = DPU_CERT_LIFETIME_S / 86400;
    int rc = ip ? pki_issue_server(s->ca_cert_path, s->ca_key_path, cp, kp, cn,
                                   &ip, 1, days, err)
                : pki_issue_client(s->ca_cert_path, s->ca_key_path, cp, kp, cn,
                                   NULL, days, err);
    size_t n;
    if (rc == 0 && (rc = file_read_all(cp, cert, &n)) == 0 &&
        (rc = file_read_all(kp, key, &n)) < 0) {
        free(*cert);
        *cert = NULL;
    }
    if (rc < 0 && !dpf_error_is_set(err)) {
        dpf_error_set(err, 500, "InternalError", "%s: %s", what, strerror(-rc));
    }
    unlink(kp);
    unlink(cp);
    rmdir(dir);
    free(cp);
    free(kp);
    return rc;
}

/* --- the shared client Secret's memo (dpu-pods.h) ------------------- */

struct dpu_certs_memo *
dpu_certs_memo_create(void)
{
    struct dpu_certs_memo *m = xcalloc(1, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    m->by_ns = json_object();
    return m;
}

void
dpu_certs_memo_destroy(struct dpu_certs_memo *m)
{
    if (m) {
        json_decref(m->by_ns);
        free(m->ca);
        pthread_mutex_destroy(&m->mu);
        free(m);
    }
}

static void
memo_drop(struct dpu_certs_memo *m, const char *ns)
{
    if (m) {
        pthread_mutex_lock(&m->mu);
        json_object_del(m->by_ns, ns);
        pthread_mutex_unlock(&m->mu);
    }
}

/* fresh: read it even when the memo has a copy. *from_memo tells which
 * (may be NULL). */
static int
client_get(struct kube_rest *r, struct dpu_certs_memo *m, const char *ns,
           bool fresh, json_t **out, bool *from_memo, struct dpf_error *err)
{
    *out = NULL;
    int64_t now = time_mono_ms();
    if (m && !fresh) {
        pthread_mutex_lock(&m->mu);
        const json_t *e = json_object_get(m->by_ns, ns);
        if (e && now - json_integer_value(json_object_get(e, "at")) <
                     DPU_CERTS_MEMO_MS) {
            *out = json_incref(json_object_get(e, "secret"));
        }
        pthread_mutex_unlock(&m->mu);
    }
    if (from_memo) {
        *from_memo = *out != NULL;
    }
    if (*out) {
        return 0;
    }
    char *path = kube_path(&secret_gvr, ns, DPU_DMS_CLIENT_SECRET, NULL);
    int rc = kube_rest_json_wait(r, "GET", path, NULL, NULL, NULL, out, err);
    free(path);
    if (m && rc == 0) {
        pthread_mutex_lock(&m->mu);
        json_object_set_new(
            m->by_ns, ns,
            json_pack("{s:O, s:I}", "secret", *out, "at", (json_int_t) now));
        pthread_mutex_unlock(&m->mu);
    } else {
        memo_drop(m, ns);
    }
    return rc;
}

int
dpu_certs_client(struct kube_rest *r, struct dpu_certs_memo *memo,
                 const char *ns, json_t **out, struct dpf_error *err)
{
    return client_get(r, memo, ns, false, out, NULL, err);
}

/* Write Secret name (create or replace) with tls.crt, tls.key, ca.crt. */
static int
secret_put(struct kube_rest *r, const json_t *dpu, const char *name,
           const json_t *old, bool owned, const char *cert, const char *key,
           const char *ca, size_t calen, struct dpf_error *err)
{
    char *c64 = base64_encode(cert, strlen(cert), BASE64_STD);
    char *k64 = base64_encode(key, strlen(key), BASE64_STD);
    char *a64 = base64_encode(ca, calen, BASE64_STD);
    json_t *s = json_pack(
        "{s:s,s:s,s:{s:s,s:s,s:{s:s}},s:s,s:{s:s,s:s,s:s}}", "apiVersion", "v1",
        "kind", "Secret", "metadata", "name", name, "namespace",
        meta(dpu, "namespace"), "labels", "app.kubernetes.io/managed-by",
        "dpf-dpu-controller", "type", "kubernetes.io/tls", "data", "tls.crt",
        c64, "tls.key", k64, "ca.crt", a64);
    explicit_bzero(k64, strlen(k64));
    free(c64);
    free(k64);
    free(a64);
    if (owned) {
        kube_owner_ref_set(s, dpu, false);
    }
    int rc;
    if (old) {
        json_object_set(json_object_get(s, "metadata"), "resourceVersion",
                        json_object_get(json_object_get(old, "metadata"),
                                        "resourceVersion"));
        char *path = kube_path(&secret_gvr, meta(dpu, "namespace"), name, NULL);
        rc = kube_rest_json_wait(r, "PUT", path, NULL, s, NULL, NULL, err);
        free(path);
    } else {
        char *path = kube_path(&secret_gvr, meta(dpu, "namespace"), NULL, NULL);
        rc = kube_rest_json_wait(r, "POST", path, NULL, s, NULL, NULL, err);
        free(path);
    }
    json_t *data = json_object_get(s, "data");
    const char *kv = json_string_value(json_object_get(data, "tls.key"));
    if (kv) {
        explicit_bzero((char *) kv, strlen(kv));
    }
    json_decref(s);
    return rc;
}

/* One Secret: good as it is (*left = seconds until renewal), or issued
 * anew. */
static int
ensure_one(struct kube_rest *r, const json_t *dpu, const char *name,
           const char *cn, const char *ip, bool owned,
           const struct dpu_certs_signer *s, const char *ca, size_t calen,
           struct dpu_certs_memo *memo, int64_t *left, struct dpf_error *err)
{
    const char *ns = meta(dpu, "namespace");
    json_t *old = NULL;
    struct dpf_error gerr = {0};
    bool memo_copy = false;
    int rc;
    if (owned) {
        char *path = kube_path(&secret_gvr, ns, name, NULL);
        rc = kube_rest_json_wait(r, "GET", path, NULL, NULL, NULL, &old, &gerr);
        free(path);
    } else {
        rc = client_get(r, memo, ns, false, &old, &memo_copy, &gerr);
    }
again:
    if (rc < 0 && rc != -ENOENT) {
        *err = gerr;
        return rc;
    }
    if (old) {
        size_t n, kn, an;
        char *crt = secret_value(old, "tls.crt", &n);
        char *key = secret_value(old, "tls.key", &kn);
        char *oca = secret_value(old, "ca.crt", &an);
        int64_t l = crt && key && oca && an == calen && !memcmp(oca, ca, calen)
                        ? cert_good_for(crt, n, ca, calen, ip)
                        : -1;
        free(crt);
        if (key) {
            explicit_bzero(key, kn);
        }
        free(key);
        free(oca);
        if (l > 0) {
            *left = l;
            json_decref(old);
            return 0;
        }
    }
    if (memo_copy) {
        /* renew what the API holds now, not what was seen up to
         * DPU_CERTS_MEMO_MS ago (another DPU may have renewed it) */
        json_decref(old);
        old = NULL;
        memo_copy = false;
        memset(&gerr, 0, sizeof gerr);
        rc = client_get(r, memo, ns, true, &old, NULL, &gerr);
        goto again;
    }
    char what[320];
    snprintf(what, sizeof what, "Secret %s/%s for DPU %s",
             meta(dpu, "namespace"), name, meta(dpu, "name"));
    char *cert = NULL, *key = NULL;
    rc = s && s->ca_key_path
             ? issue_local(s, what, cn, ip, &cert, &key, err)
             : issue_csr(r, dpu, what, cn, ip, ip != NULL, &cert, &key, err);
    if (rc == 0) {
        rc = secret_put(r, dpu, name, old, owned, cert, key, ca, calen, err);
        if (!owned) {
            memo_drop(memo, ns);
        }
        if (rc == -EEXIST || rc == -EALREADY || (!owned && rc == -EBUSY)) {
            /* made meanwhile (for the shared one: by another DPU, or
             * renewed by one): look again */
            rc = -EINPROGRESS;
        }
        if (rc == 0) {
            log_info("DMS certificate issued", "secret=%s/%s dpu=%s",
                     meta(dpu, "namespace"), name, meta(dpu, "name"));
            *left = DPU_CERT_LIFETIME_S - DPU_CERT_RENEW_BEFORE_S;
        }
    }
    if (key) {
        explicit_bzero(key, strlen(key));
    }
    free(key);
    free(cert);
    json_decref(old);
    return rc;
}

int
dpu_certs_ensure(struct kube_rest *r, const json_t *dpu, const char *host_ip,
                 const struct dpu_certs_signer *s, struct dpu_certs_memo *memo,
                 int64_t *recheck_ms, struct dpf_error *err)
{
    if (!meta(dpu, "name") || !meta(dpu, "namespace") || !host_ip) {
        dpf_error_set(err, 400, "Invalid",
                      "DMS certificates: the DPU's name and namespace and "
                      "the host's address are required");
        return -EINVAL;
    }
    char *ca = NULL;
    size_t calen = 0;
    int rc = ca_pem(r, s, memo, &ca, &calen, err);
    if (rc < 0) {
        return rc;
    }
    char *sname = xasprintf("%s-server-secret", meta(dpu, "name"));
    char *cn = xasprintf("%s-dms-server-cert", meta(dpu, "name"));
    int64_t l1 = 0, l2 = 0;
    rc = ensure_one(r, dpu, sname, cn, host_ip, true, s, ca, calen, NULL, &l1,
                    err);
    if (rc == 0) {
        rc = ensure_one(r, dpu, DPU_DMS_CLIENT_SECRET, CLIENT_CN, NULL, false,
                        s, ca, calen, memo, &l2, err);
    }
    if (rc == 0 && recheck_ms) {
        *recheck_ms = DPF_MIN(l1, l2) * 1000;
    }
    free(sname);
    free(cn);
    free(ca);
    return rc;
}

int
dpu_certs_delete(struct kube_rest *r, const json_t *dpu, struct dpf_error *err)
{
    char *sname = xasprintf("%s-server-secret", meta(dpu, "name"));
    char *path = kube_path(&secret_gvr, meta(dpu, "namespace"), sname, NULL);
    int rc =
        kube_rest_json_wait(r, "DELETE", path, NULL, NULL, NULL, NULL, err);
    free(path);
    free(sname);
    if (rc == -ENOENT) {
        rc = 0;
        dpf_error_clear(err);
    }
    if (rc < 0) {
        return rc;
    }
    /* CSRs left by an issue that was interrupted */
    char *sel = xasprintf(LABEL_POD_DPU "=%s," LABEL_DPU_NS "=%s",
                          meta(dpu, "name"), meta(dpu, "namespace"));
    struct dbuf q;
    dbuf_init(&q);
    kube_query_add(&q, "labelSelector", sel);
    free(sel);
    path = kube_path(&csr_gvr, NULL, NULL, NULL);
    json_t *list = NULL;
    struct dpf_error lerr = {0};
    if (kube_rest_json_wait(r, "GET", path, q.data, NULL, NULL, &list, &lerr) ==
        0) {
        size_t i;
        const json_t *it;
        json_array_foreach(json_object_get(list, "items"), i, it)
        {
            char *p = kube_path(&csr_gvr, NULL, meta(it, "name"), NULL);
            kube_rest_json_wait(r, "DELETE", p, NULL, NULL, NULL, NULL, &lerr);
            free(p);
        }
    }
    json_decref(list);
    free(path);
    dbuf_free(&q);
    return 0;
}
