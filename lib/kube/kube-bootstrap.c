/* kube-bootstrap: see kube-bootstrap.h. */
#include "lib/kube/kube-bootstrap.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/base/base64.h"
#include "lib/base/util.h"
#include "lib/codecs/yamljson.h"
#include "lib/kube/api-client.h"
#include "lib/kube/kubeconfig.h"
#include "lib/net/pki.h"

#define KB_DEFAULT_TIMEOUT_MS (5 * 60 * 1000)

static const struct kube_gvr kb_csr_gvr = {"certificates.k8s.io", "v1",
                                           "certificatesigningrequests", false};
static const struct kube_gvr kb_secret_gvr = {"", "v1", "secrets", true};
static const struct kube_gvr kb_cm_gvr = {"", "v1", "configmaps", true};

static const char kb_alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";

static void kb_progress(void (*fn)(void *, const char *), void *arg,
                        const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
kb_progress(void (*fn)(void *, const char *), void *arg, const char *fmt, ...)
{
    if (!fn) {
        return;
    }
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fn(arg, buf);
}

static int
kb_ssl_fail(struct dpf_error *err, const char *what)
{
    char buf[256];
    unsigned long e = ERR_get_error();
    ERR_error_string_n(e, buf, sizeof buf);
    ERR_clear_error();
    dpf_error_set(err, 500, "InternalError", "%s: %s", what,
                  e ? buf : "unknown error");
    return -EIO;
}

/* ------------------------------------------------------------------ */
/* tokens                                                               */

static int
kb_random_chars(char *out, size_t n)
{
    /* Rejection sampling: 252 = 7 * 36, so every character is equally
     * likely. */
    size_t i = 0;
    while (i < n) {
        unsigned char b[32];
        if (RAND_bytes(b, sizeof b) != 1) {
            return -EIO;
        }
        for (size_t j = 0; j < sizeof b && i < n; j++) {
            if (b[j] < 252) {
                out[i++] = kb_alphabet[b[j] % 36];
            }
        }
        OPENSSL_cleanse(b, sizeof b);
    }
    out[n] = '\0';
    return 0;
}

int
kube_bootstrap_token_generate(struct kube_bootstrap_token *t,
                              struct dpf_error *err)
{
    if (kb_random_chars(t->id, KUBE_BOOTSTRAP_ID_LEN) < 0 ||
        kb_random_chars(t->secret, KUBE_BOOTSTRAP_SECRET_LEN) < 0) {
        return kb_ssl_fail(err, "cannot make a random token");
    }
    return 0;
}

int
kube_bootstrap_token_parse(const char *s, size_t len,
                           struct kube_bootstrap_token *t,
                           struct dpf_error *err)
{
    bool ok = s &&
              len == KUBE_BOOTSTRAP_ID_LEN + 1 + KUBE_BOOTSTRAP_SECRET_LEN &&
              s[KUBE_BOOTSTRAP_ID_LEN] == '.';
    for (size_t i = 0; ok && i < len; i++) {
        ok = i == KUBE_BOOTSTRAP_ID_LEN || strchr(kb_alphabet, s[i]) != NULL;
        ok = ok && s[i] != '\0';
    }
    if (!ok) {
        dpf_error_set(err, 400, "BadRequest",
                      "the token is not of the form [a-z0-9]{6}.[a-z0-9]{16}");
        return -EINVAL;
    }
    memcpy(t->id, s, KUBE_BOOTSTRAP_ID_LEN);
    t->id[KUBE_BOOTSTRAP_ID_LEN] = '\0';
    memcpy(t->secret, s + KUBE_BOOTSTRAP_ID_LEN + 1, KUBE_BOOTSTRAP_SECRET_LEN);
    t->secret[KUBE_BOOTSTRAP_SECRET_LEN] = '\0';
    return 0;
}

void
kube_bootstrap_token_clear(struct kube_bootstrap_token *t)
{
    OPENSSL_cleanse(t, sizeof *t);
}

json_t *
kube_bootstrap_token_secret(const struct kube_bootstrap_token *t, int64_t now_s,
                            int64_t ttl_s, const char *groups,
                            const char *description)
{
    char name[64];
    snprintf(name, sizeof name, "bootstrap-token-%s", t->id);
    json_t *sd =
        json_pack("{s:s,s:s,s:s,s:s,s:s}", "token-id", t->id, "token-secret",
                  t->secret, "usage-bootstrap-authentication", "true",
                  "usage-bootstrap-signing", "true", "auth-extra-groups",
                  groups ? groups : KUBE_BOOTSTRAP_DEFAULT_GROUP);
    if (ttl_s > 0) {
        char exp[40];
        time_t when = (time_t) (now_s + ttl_s);
        struct tm tm;
        gmtime_r(&when, &tm);
        strftime(exp, sizeof exp, "%Y-%m-%dT%H:%M:%SZ", &tm);
        json_object_set_new(sd, "expiration", json_string(exp));
    }
    if (description) {
        json_object_set_new(sd, "description", json_string(description));
    }
    return json_pack("{s:s,s:s,s:{s:s,s:s},s:s,s:o}", "apiVersion", "v1",
                     "kind", "Secret", "metadata", "name", name, "namespace",
                     "kube-system", "type", "bootstrap.kubernetes.io/token",
                     "stringData", sd);
}

/* ------------------------------------------------------------------ */
/* CA pin                                                               */

static int
kb_spki_hash(X509 *x, char *out)
{
    unsigned char *der = NULL;
    int n = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(x), &der);
    if (n <= 0) {
        return -EINVAL;
    }
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(der, (size_t) n, md);
    OPENSSL_free(der);
    strcpy(out, "sha256:");
    for (size_t i = 0; i < sizeof md; i++) {
        snprintf(out + 7 + 2 * i, 3, "%02x", md[i]);
    }
    return 0;
}

int
kube_bootstrap_ca_hash(const char *ca_pem, size_t len, char *out,
                       struct dpf_error *err)
{
    BIO *bio = BIO_new_mem_buf(ca_pem, (int) len);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    int r = x ? kb_spki_hash(x, out) : -EINVAL;
    X509_free(x);
    ERR_clear_error();
    if (r < 0) {
        dpf_error_set(err, 400, "BadRequest",
                      "the CA data is not a PEM certificate");
    }
    return r;
}

int
kube_bootstrap_ca_hash_check(const char *ca_pem, size_t len, const char *pin,
                             struct dpf_error *err)
{
    if (!pin || strncmp(pin, "sha256:", 7) != 0 || strlen(pin) != 7 + 64 ||
        strspn(pin + 7, "0123456789abcdefABCDEF") != 64) {
        dpf_error_set(err, 400, "BadRequest",
                      "--discovery-token-ca-cert-hash must be sha256: "
                      "followed by 64 hex digits");
        return -EINVAL;
    }
    BIO *bio = BIO_new_mem_buf(ca_pem, (int) len);
    int found = 0, seen = 0;
    char first[KUBE_BOOTSTRAP_HASH_SIZE] = "";
    X509 *x;
    while (bio && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        char h[KUBE_BOOTSTRAP_HASH_SIZE];
        if (kb_spki_hash(x, h) == 0) {
            if (!seen++) {
                strcpy(first, h);
            }
            found |= strcasecmp(h, pin) == 0;
        }
        X509_free(x);
    }
    BIO_free(bio);
    ERR_clear_error();
    if (!seen) {
        dpf_error_set(err, 400, "BadRequest",
                      "the cluster's CA data holds no PEM certificate");
        return -EINVAL;
    }
    if (!found) {
        dpf_error_set(err, 401, "Unauthorized",
                      "the cluster CA does not match "
                      "--discovery-token-ca-cert-hash (the server's CA "
                      "hashes to %s): refusing to trust this server",
                      first);
        return -EKEYREJECTED;
    }
    return 0;
}

static const char *
kb_strip_scheme(const char *endpoint)
{
    if (!strncmp(endpoint, "https://", 8)) {
        return endpoint + 8;
    }
    return endpoint;
}

char *
kube_bootstrap_join_text(const char *endpoint,
                         const struct kube_bootstrap_token *t, const char *pin)
{
    const char *hp = kb_strip_scheme(endpoint);
    size_t n = strlen(hp);
    while (n > 0 && hp[n - 1] == '/') {
        n--;
    }
    return xasprintf("kubeadm join %.*s --token %s.%s "
                     "--discovery-token-ca-cert-hash %s",
                     (int) n, hp, t->id, t->secret, pin);
}

int
kube_bootstrap_join_command(struct api_client *admin, const char *endpoint,
                            const char *ca_pem, size_t ca_len, int64_t ttl_s,
                            char **out, char *id_out, struct dpf_error *err)
{
    char pin[KUBE_BOOTSTRAP_HASH_SIZE];
    int r = kube_bootstrap_ca_hash(ca_pem, ca_len, pin, err);
    if (r < 0) {
        return r;
    }
    struct kube_bootstrap_token t;
    if ((r = kube_bootstrap_token_generate(&t, err)) < 0) {
        return r;
    }
    json_t *sec =
        kube_bootstrap_token_secret(&t, (int64_t) time(NULL),
                                    ttl_s > 0   ? ttl_s
                                    : ttl_s < 0 ? 0
                                                : 24 * 3600,
                                    NULL, "made by dpf for a node join");
    r = api_client_post(admin, &kb_secret_gvr, "kube-system", sec, "dpf", NULL,
                        err);
    json_decref(sec);
    if (r == 0) {
        *out = kube_bootstrap_join_text(endpoint, &t, pin);
        if (id_out) {
            memcpy(id_out, t.id, sizeof t.id);
        }
    }
    kube_bootstrap_token_clear(&t);
    return r;
}

/* ------------------------------------------------------------------ */
/* keys and requests                                                    */

static char *
kb_bio_text(BIO *b)
{
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *s = xmalloc((size_t) n + 1);
    memcpy(s, p, (size_t) n);
    s[n] = '\0';
    return s;
}

static bool
kb_is_ip(const char *s)
{
    unsigned char buf[16];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

int
kube_bootstrap_csr_new(const char *cn, const char *const *orgs,
                       const char *const *sans, char **key_pem, char **csr_pem,
                       struct dpf_error *err)
{
    *key_pem = *csr_pem = NULL;
    int r = 0;
    X509_REQ *req = NULL;
    BIO *kb = NULL, *cb = NULL;
    EVP_PKEY *key = pki_ec_key_new();
    if (!key) {
        return kb_ssl_fail(err, "cannot generate a key");
    }
    req = X509_REQ_new();
    X509_NAME *name = X509_REQ_get_subject_name(req);
    for (size_t i = 0; orgs && orgs[i]; i++) {
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                   (const unsigned char *) orgs[i], -1, -1, 0);
    }
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                               (const unsigned char *) cn, -1, -1, 0);
    X509_REQ_set_pubkey(req, key);
    if (sans && sans[0]) {
        struct dbuf b;
        dbuf_init(&b);
        for (size_t i = 0; sans[i]; i++) {
            dbuf_printf(&b, "%s%s:%s", i ? "," : "",
                        kb_is_ip(sans[i]) ? "IP" : "DNS", sans[i]);
        }
        char *v = dbuf_steal(&b, NULL);
        X509_EXTENSION *e =
            X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name, v);
        free(v);
        STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
        if (!e || !sk_X509_EXTENSION_push(exts, e) ||
            !X509_REQ_add_extensions(req, exts)) {
            X509_EXTENSION_free(e);
            sk_X509_EXTENSION_free(exts);
            r = kb_ssl_fail(err, "cannot add the subject alternative names");
            goto out;
        }
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    }
    if (!X509_REQ_sign(req, key, EVP_sha256())) {
        r = kb_ssl_fail(err, "cannot sign the request");
        goto out;
    }
    kb = BIO_new(BIO_s_mem());
    cb = BIO_new(BIO_s_mem());
    if (!PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) ||
        !PEM_write_bio_X509_REQ(cb, req)) {
        r = kb_ssl_fail(err, "cannot encode the key or the request");
        goto out;
    }
    *key_pem = kb_bio_text(kb);
    *csr_pem = kb_bio_text(cb);
out:
    BIO_free_all(kb);
    BIO_free(cb);
    X509_REQ_free(req);
    EVP_PKEY_free(key);
    return r;
}

static int64_t
kb_now_ms(void)
{
    return time_mono_ms();
}

/* 1 with *cert when issued, 0 while waiting, -EACCES when refused. */
static int
kb_csr_state(const json_t *obj, char **cert, const char *name,
             struct dpf_error *err)
{
    const json_t *st = json_object_get(obj, "status");
    const char *b64 = json_string_value(json_object_get(st, "certificate"));
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(st, "conditions"), i, c)
    {
        const char *t = json_string_value(json_object_get(c, "type"));
        if (t && (!strcmp(t, "Denied") || !strcmp(t, "Failed"))) {
            const char *reason =
                json_string_value(json_object_get(c, "reason"));
            const char *msg = json_string_value(json_object_get(c, "message"));
            dpf_error_set(err, 403, "Forbidden",
                          "certificate signing request %s was %s: %s%s%s", name,
                          !strcmp(t, "Denied") ? "denied" : "not signed",
                          reason ? reason : "", msg ? ": " : "",
                          msg ? msg : "");
            return -EACCES;
        }
    }
    if (b64 && *b64) {
        size_t n;
        if (base64_decode(b64, strlen(b64), BASE64_STRICT, cert, &n) < 0) {
            dpf_error_set(err, 500, "InternalError",
                          "certificate signing request %s: the certificate "
                          "is not base64",
                          name);
            return -EINVAL;
        }
        return 1;
    }
    return 0;
}

struct kb_watch_ctx {
    const char *name;
    char **cert;
    struct dpf_error *err;
    int rc; /* kb_csr_state()'s answer */
};

static int
kb_watch_event(void *arg, enum kube_event_type type, json_t *object)
{
    struct kb_watch_ctx *w = arg;
    if (type == KUBE_EVENT_DELETED) {
        dpf_error_set(w->err, 410, "Gone",
                      "certificate signing request %s was deleted while "
                      "waiting for it",
                      w->name);
        w->rc = -ENOENT;
        return 1;
    }
    if (type != KUBE_EVENT_ADDED && type != KUBE_EVENT_MODIFIED) {
        return 0;
    }
    w->rc = kb_csr_state(object, w->cert, w->name, w->err);
    return w->rc != 0 ? 1 : 0;
}

int
kube_bootstrap_csr_request(struct api_client *c,
                           const struct kube_bootstrap_csr_options *o,
                           const char *csr_pem, char **cert_pem,
                           struct dpf_error *err)
{
    *cert_pem = NULL;
    if (!o->signer) {
        dpf_error_set(err, 400, "BadRequest", "no signer name given");
        return -EINVAL;
    }
    json_t *usages = json_array();
    if (o->usages) {
        for (size_t i = 0; o->usages[i]; i++) {
            json_array_append_new(usages, json_string(o->usages[i]));
        }
    } else {
        json_array_append_new(usages, json_string("digital signature"));
        json_array_append_new(
            usages, json_string(strcmp(o->signer, KUBE_BOOTSTRAP_SIGNER_SERVING)
                                    ? "client auth"
                                    : "server auth"));
    }
    char *b64 = base64_encode(csr_pem, strlen(csr_pem), BASE64_STD);
    json_t *obj =
        json_pack("{s:s,s:s,s:{},s:{s:s,s:s,s:o}}", "apiVersion",
                  "certificates.k8s.io/v1", "kind", "CertificateSigningRequest",
                  "metadata", "spec", "request", b64, "signerName", o->signer,
                  "usages", usages);
    free(b64);
    json_t *md = json_object_get(obj, "metadata");
    if (o->name) {
        json_object_set_new(md, "name", json_string(o->name));
    } else {
        json_object_set_new(
            md, "generateName",
            json_string(o->generate_name ? o->generate_name : "csr-"));
    }
    if (o->expiration_s > 0) {
        json_object_set_new(json_object_get(obj, "spec"), "expirationSeconds",
                            json_integer(o->expiration_s));
    }
    json_t *created = NULL;
    int r = api_client_post(c, &kb_csr_gvr, NULL, obj, "dpf", &created, err);
    json_decref(obj);
    if (r < 0) {
        return r;
    }
    char name[256];
    snprintf(name, sizeof name, "%s",
             json_string_value(
                 json_object_get(json_object_get(created, "metadata"), "name"))
                 ?: "");
    json_decref(created);
    kb_progress(o->progress, o->progress_arg,
                "certificate signing request %s created (signer %s); "
                "waiting for approval and the certificate",
                name, o->signer);
    int64_t timeout = o->timeout_ms > 0 ? o->timeout_ms : KB_DEFAULT_TIMEOUT_MS;
    int64_t deadline = kb_now_ms() + timeout;
    /* Read the object, then watch it from there (kubeadm waits the same
     * way); every 10 s without news a progress line. */
    char selector[300];
    snprintf(selector, sizeof selector, "metadata.name=%s", name);
    for (;;) {
        json_t *cur = NULL;
        r = api_client_get(c, &kb_csr_gvr, NULL, name, &cur, err);
        if (r < 0) {
            return r;
        }
        struct kb_watch_ctx w = {.name = name, .cert = cert_pem, .err = err};
        w.rc = kb_csr_state(cur, cert_pem, name, err);
        struct api_watch_options wo = {.field_selector = selector};
        snprintf(wo.resource_version, sizeof wo.resource_version, "%s",
                 json_string_value(json_object_get(
                     json_object_get(cur, "metadata"), "resourceVersion"))
                     ?: "");
        json_decref(cur);
        while (w.rc == 0) {
            int64_t now = kb_now_ms();
            if (now >= deadline) {
                dpf_error_set(err, 504, "Timeout",
                              "certificate signing request %s was not "
                              "approved and signed within %lld s (approve it "
                              "with `dpfctl certificate approve %s`)",
                              name, (long long) (timeout / 1000), name);
                return -ETIMEDOUT;
            }
            wo.deadline_ms = DPF_MIN(deadline, now + 10000);
            r = api_client_watch(c, &kb_csr_gvr, NULL, &wo, kb_watch_event, &w,
                                 err);
            if (w.rc != 0) {
                break;
            }
            if (r == -ETIMEDOUT) {
                kb_progress(o->progress, o->progress_arg,
                            "certificate signing request %s: still waiting "
                            "for approval",
                            name);
            } else if (r == -ESTALE) {
                break; /* read it again */
            } else if (r < 0) {
                return r;
            }
        }
        if (w.rc < 0) {
            return w.rc;
        }
        if (w.rc == 1) {
            kb_progress(o->progress, o->progress_arg,
                        "certificate signing request %s: certificate issued",
                        name);
            return 0;
        }
    }
}

/* ------------------------------------------------------------------ */
/* kubeconfig files                                                     */

static int
kb_write_kubeconfig(const char *path, const char *server, const char *ca_pem,
                    const char *user, const char *cert_pem, const char *key_pem,
                    struct dpf_error *err)
{
    char *ca = base64_encode(ca_pem, strlen(ca_pem), BASE64_STD);
    char *cert = base64_encode(cert_pem, strlen(cert_pem), BASE64_STD);
    char *key = base64_encode(key_pem, strlen(key_pem), BASE64_STD);
    json_t *doc = json_pack(
        "{s:s,s:s,s:[{s:s,s:{s:s,s:s}}],s:[{s:s,s:{s:s,s:s}}],s:s,"
        "s:[{s:s,s:{s:s,s:s}}]}",
        "apiVersion", "v1", "kind", "Config", "clusters", "name", "default",
        "cluster", "certificate-authority-data", ca, "server", server,
        "contexts", "name", "default", "context", "cluster", "default", "user",
        "default", "current-context", "default", "users", "name", "default",
        "user", "client-certificate-data", cert, "client-key-data", key);
    (void) user;
    char *text = yamljson_emit(doc);
    json_decref(doc);
    OPENSSL_cleanse(key, strlen(key));
    free(ca);
    free(cert);
    free(key);
    /* as kubeadm join makes /etc/kubernetes: the directory may be new */
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    int r = 0;
    if (slash && slash != dir) {
        *slash = '\0';
        r = dir_create_all(dir, 0700);
    }
    free(dir);
    if (r == 0) {
        r = file_write_atomic(path, text, strlen(text), 0600);
    }
    OPENSSL_cleanse(text, strlen(text));
    free(text);
    if (r < 0) {
        dpf_error_set(err, 500, "InternalError", "cannot write %s: %s", path,
                      strerror(-r));
    }
    return r;
}

static void
kb_free_secret(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

/* cluster-info's kubeconfig text -> its CA PEM (malloc'd). */
static int
kb_cluster_info_ca(const json_t *cm, char **ca_pem, size_t *ca_len,
                   struct dpf_error *err)
{
    const char *text = json_string_value(
        json_object_get(json_object_get(cm, "data"), "kubeconfig"));
    json_t *doc = NULL;
    struct dpf_error e = {0};
    if (!text || yamljson_parse_one(text, strlen(text), &doc, &e) < 0) {
        dpf_error_set(err, 502, "BadGateway",
                      "kube-public/cluster-info has no readable kubeconfig");
        return -EPROTO;
    }
    const json_t *cl = json_object_get(
        json_array_get(json_object_get(doc, "clusters"), 0), "cluster");
    const char *b64 =
        json_string_value(json_object_get(cl, "certificate-authority-data"));
    int r = 0;
    if (!b64 ||
        base64_decode(b64, strlen(b64), BASE64_LENIENT, ca_pem, ca_len) < 0) {
        dpf_error_set(err, 502, "BadGateway",
                      "kube-public/cluster-info carries no CA data");
        r = -EPROTO;
    }
    json_decref(doc);
    return r;
}

int
kube_bootstrap_join(const struct kube_bootstrap_join_options *o,
                    struct dpf_error *err)
{
    if (!o->endpoint || !o->token || !o->ca_hash || !o->node_name ||
        !o->kubeconfig_path) {
        dpf_error_set(err, 400, "BadRequest",
                      "join needs the endpoint, --token, "
                      "--discovery-token-ca-cert-hash, the node name and "
                      "--kubeconfig");
        return -EINVAL;
    }
    struct kube_bootstrap_token tok;
    int r = kube_bootstrap_token_parse(o->token, strlen(o->token), &tok, err);
    if (r < 0) {
        return r;
    }
    /* Check the pin's form before any traffic. */
    if (strncmp(o->ca_hash, "sha256:", 7) != 0 || strlen(o->ca_hash) != 71) {
        kube_bootstrap_ca_hash_check("", 0, o->ca_hash, err);
        kube_bootstrap_token_clear(&tok);
        return -EINVAL;
    }
    int64_t timeout = o->timeout_ms > 0 ? o->timeout_ms : KB_DEFAULT_TIMEOUT_MS;
    int64_t start = kb_now_ms();
    char *server = xasprintf("https://%s", kb_strip_scheme(o->endpoint));
    size_t sl = strlen(server);
    while (sl > 8 && server[sl - 1] == '/') {
        server[--sl] = '\0';
    }
    char *ca = NULL, *key = NULL, *csr = NULL, *cert = NULL;
    size_t ca_len = 0;
    struct api_client *c = NULL;
    json_t *cm = NULL;

    /* 1. cluster-info, from a server not trusted yet: only the pin
     * makes its CA trustworthy. */
    kb_progress(o->progress, o->progress_arg,
                "fetching kube-public/cluster-info from %s", server);
    struct kubeconfig anon = {.server = server,
                              .insecure_skip_tls_verify = true};
    if (!(c = api_client_create(&anon, err))) {
        r = -EINVAL;
        goto out;
    }
    api_client_set_timeout(c, 15000);
    for (;;) {
        r = api_client_get(c, &kb_cm_gvr, "kube-public", "cluster-info", &cm,
                           err);
        if (r == 0 ||
            (r != -ECONNREFUSED && r != -EAGAIN && r != -ETIMEDOUT &&
             r != -EHOSTUNREACH) ||
            kb_now_ms() - start > timeout) {
            break;
        }
        /* A pause between tries against a server that is not up yet
         * (a remote peer, not a race): lint: allow-sleep */
        usleep(1000 * 1000); /* lint: allow-sleep */
    }
    api_client_destroy(c);
    c = NULL;
    if (r < 0) {
        goto out;
    }
    if ((r = kb_cluster_info_ca(cm, &ca, &ca_len, err)) < 0 ||
        (r = kube_bootstrap_ca_hash_check(ca, ca_len, o->ca_hash, err)) < 0) {
        goto out;
    }
    kb_progress(o->progress, o->progress_arg,
                "the cluster CA matches the pinned hash");

    /* 2. a key and a CSR for system:node:<name>, sent with the token to
     * the server verified by that CA. */
    char cn[300];
    snprintf(cn, sizeof cn, "system:node:%s", o->node_name);
    const char *orgs[] = {"system:nodes", NULL};
    if ((r = kube_bootstrap_csr_new(cn, orgs, NULL, &key, &csr, err)) < 0) {
        goto out;
    }
    char token[KUBE_BOOTSTRAP_ID_LEN + KUBE_BOOTSTRAP_SECRET_LEN + 2];
    snprintf(token, sizeof token, "%s.%s", tok.id, tok.secret);
    struct kubeconfig boot = {
        .server = server, .ca_pem = ca, .ca_len = ca_len, .token = token};
    c = api_client_create(&boot, err);
    OPENSSL_cleanse(token, sizeof token);
    if (!c) {
        r = -EINVAL;
        goto out;
    }
    api_client_set_timeout(c, 15000);
    static const char *const usages[] = {"digital signature", "client auth",
                                         NULL};
    int64_t left = timeout - (kb_now_ms() - start);
    struct kube_bootstrap_csr_options co = {
        .generate_name = "node-csr-",
        .signer = KUBE_BOOTSTRAP_SIGNER_KUBELET,
        .usages = usages,
        .timeout_ms = left > 1000 ? left : 1000,
        .progress = o->progress,
        .progress_arg = o->progress_arg,
    };
    if ((r = kube_bootstrap_csr_request(c, &co, csr, &cert, err)) < 0) {
        goto out;
    }
    /* 3. the node's kubeconfig. */
    if ((r = kb_write_kubeconfig(o->kubeconfig_path, server, ca, cn, cert, key,
                                 err)) < 0) {
        goto out;
    }
    kb_progress(o->progress, o->progress_arg, "wrote %s for %s",
                o->kubeconfig_path, cn);
out:
    kube_bootstrap_token_clear(&tok);
    api_client_destroy(c);
    json_decref(cm);
    free(server);
    free(ca);
    kb_free_secret(key);
    free(csr);
    free(cert);
    return r;
}

/* ------------------------------------------------------------------ */
/* rotation                                                             */

static int64_t
kb_asn1_time(const ASN1_TIME *t)
{
    struct tm tm;
    if (!ASN1_TIME_to_tm(t, &tm)) {
        return -1;
    }
    return (int64_t) timegm(&tm);
}

static X509 *
kb_load_cert(const char *pem, size_t len)
{
    BIO *bio = BIO_new_mem_buf(pem, (int) len);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    ERR_clear_error();
    return x;
}

int
kube_bootstrap_cert_times(const char *cert_pem, size_t len,
                          struct kube_bootstrap_cert_times *t,
                          struct dpf_error *err)
{
    X509 *x = kb_load_cert(cert_pem, len);
    if (!x) {
        dpf_error_set(err, 400, "BadRequest",
                      "the client certificate is not a PEM certificate");
        return -EINVAL;
    }
    t->not_before_s = kb_asn1_time(X509_get0_notBefore(x));
    t->not_after_s = kb_asn1_time(X509_get0_notAfter(x));
    X509_free(x);
    return 0;
}

bool
kube_bootstrap_cert_due(const struct kube_bootstrap_cert_times *t,
                        int64_t now_s)
{
    int64_t life = t->not_after_s - t->not_before_s;
    return life <= 0 || t->not_after_s - now_s <= life / 3;
}

int
kube_bootstrap_rotate(const char *kubeconfig_path, const char *signer,
                      int64_t now_s, bool force, int64_t timeout_ms,
                      struct dpf_error *err)
{
    struct kubeconfig *kc = NULL;
    struct kubeconfig_options ko = {.path = kubeconfig_path};
    int r = kubeconfig_load(&ko, &kc, err);
    if (r < 0) {
        return r;
    }
    char *key = NULL, *csr = NULL, *cert = NULL;
    struct api_client *c = NULL;
    X509 *x = NULL;
    struct kube_bootstrap_cert_times t;
    if (!kc->cert_pem || !kc->ca_pem) {
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s has no client certificate to renew",
                      kubeconfig_path);
        r = -EINVAL;
        goto out;
    }
    if ((r = kube_bootstrap_cert_times(kc->cert_pem, kc->cert_len, &t, err)) <
        0) {
        goto out;
    }
    if (!force && !kube_bootstrap_cert_due(&t, now_s)) {
        r = 0;
        goto out;
    }
    x = kb_load_cert(kc->cert_pem, kc->cert_len);
    char cn[256] = "";
    const char *orgs[17] = {NULL};
    char orgbuf[16][256];
    size_t n_orgs = 0;
    X509_NAME *nm = X509_get_subject_name(x);
    X509_NAME_get_text_by_NID(nm, NID_commonName, cn, sizeof cn);
    for (int i = -1; n_orgs < 16 && (i = X509_NAME_get_index_by_NID(
                                         nm, NID_organizationName, i)) >= 0;) {
        const ASN1_STRING *v =
            X509_NAME_ENTRY_get_data(X509_NAME_get_entry(nm, i));
        snprintf(orgbuf[n_orgs], sizeof orgbuf[0], "%.*s",
                 ASN1_STRING_length(v),
                 (const char *) ASN1_STRING_get0_data(v));
        orgs[n_orgs] = orgbuf[n_orgs];
        n_orgs++;
    }
    if ((r = kube_bootstrap_csr_new(cn, orgs, NULL, &key, &csr, err)) < 0) {
        goto out;
    }
    if (!(c = api_client_create(kc, err))) {
        r = -EINVAL;
        goto out;
    }
    api_client_set_timeout(c, 15000);
    struct kube_bootstrap_csr_options co = {
        .generate_name = "csr-",
        .signer = signer ? signer : KUBE_BOOTSTRAP_SIGNER_KUBELET,
        .expiration_s = t.not_after_s - t.not_before_s >= 600
                            ? t.not_after_s - t.not_before_s
                            : 0,
        .timeout_ms = timeout_ms,
    };
    if ((r = kube_bootstrap_csr_request(c, &co, csr, &cert, err)) < 0) {
        goto out;
    }
    if ((r = kb_write_kubeconfig(kubeconfig_path, kc->server, kc->ca_pem, cn,
                                 cert, key, err)) < 0) {
        goto out;
    }
    r = 1;
out:
    X509_free(x);
    api_client_destroy(c);
    kubeconfig_free(kc);
    kb_free_secret(key);
    free(csr);
    free(cert);
    return r;
}
