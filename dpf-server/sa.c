/* sa: see sa.h. */
#include "dpf-server/sa.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/base64.h"
#include "lib/base/log.h"
#include "lib/base/thread.h"
#include "lib/base/util.h"
#include "lib/codecs/yamljson.h"
#include "lib/kube/kube-status.h"
#include "lib/net/http-server.h"

LOG_MODULE(sa);

#define SA_KEY_BITS 2048
#define SA_DEFAULT_EXPIRY_S 3600
#define SA_MIN_EXPIRY_S 600
#define SA_MAX_EXPIRY_S (48LL * 3600)
#define SA_TOKEN_MAX 8192

struct sa_tokens {
    EVP_PKEY *key;       /* signing key (its public half verifies) */
    char kid[64];        /* key id: base64url(sha256(public key DER)) */
    struct store *store; /* borrowed */
    /* the default-account worker */
    struct worker w;       /* its lock guards queue and api */
    json_t *queue;         /* namespaces to look at: name -> 1 */
    struct apiserver *api; /* borrowed once started */
};

/* ------------------------------------------------------------------ */
/* key                                                                  */

static int
sa_key_write(const char *path, EVP_PKEY *key, struct dpf_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        dpf_error_set(err, 500, "InternalError", "cannot create %s: %s", path,
                      strerror(errno));
        return -errno;
    }
    FILE *f = fdopen(fd, "w");
    int ok = f && PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    if (f) {
        ok = fflush(f) == 0 && fsync(fd) == 0 && ok;
        fclose(f);
    } else {
        close(fd);
    }
    if (!ok) {
        unlink(path);
        dpf_error_set(err, 500, "InternalError", "cannot write %s", path);
        return -EIO;
    }
    return 0;
}

static int
sa_key_load_or_create(const char *path, EVP_PKEY **out, struct dpf_error *err)
{
    FILE *f = fopen(path, "r");
    if (f) {
        *out = PEM_read_PrivateKey(f, NULL, NULL, NULL);
        fclose(f);
        if (!*out || EVP_PKEY_get_base_id(*out) != EVP_PKEY_RSA) {
            EVP_PKEY_free(*out);
            *out = NULL;
            dpf_error_set(err, 500, "InternalError",
                          "%s is not an RSA private key in PEM", path);
            return -EINVAL;
        }
        return 0;
    }
    if (errno != ENOENT) {
        dpf_error_set(err, 500, "InternalError", "cannot read %s: %s", path,
                      strerror(errno));
        return -errno;
    }
    *out = EVP_RSA_gen(SA_KEY_BITS);
    if (!*out) {
        dpf_error_set(err, 500, "InternalError",
                      "cannot generate the service-account key");
        return -EIO;
    }
    int r = sa_key_write(path, *out, err);
    if (r < 0) {
        EVP_PKEY_free(*out);
        *out = NULL;
        return r;
    }
    log_info("created the service-account signing key", "path=%s", path);
    return 0;
}

struct sa_tokens *
sa_tokens_create(const char *key_path, struct store *st, struct dpf_error *err)
{
    EVP_PKEY *key = NULL;
    if (sa_key_load_or_create(key_path, &key, err) < 0) {
        return NULL;
    }
    struct sa_tokens *sa = xcalloc(1, sizeof(*sa));
    sa->key = key;
    sa->store = st;
    sa->queue = json_object();
    worker_init(&sa->w);
    unsigned char *der = NULL;
    int n = i2d_PUBKEY(key, &der);
    unsigned char md[32];
    unsigned mdlen = 0;
    if (n > 0 && EVP_Digest(der, (size_t) n, md, &mdlen, EVP_sha256(), NULL)) {
        char *k = base64_encode(md, mdlen, BASE64_URL_RAW);
        auth_fmt(sa->kid, sizeof sa->kid, "%s", k);
        free(k);
    }
    OPENSSL_free(der);
    return sa;
}

/* ------------------------------------------------------------------ */
/* JWS                                                                  */

static char *
sa_b64(const char *s, size_t n)
{
    return base64_encode(s, n, BASE64_URL_RAW);
}

/* header.claims.signature for the claims (compact JSON). New string. */
static char *
sa_sign(struct sa_tokens *sa, const json_t *claims)
{
    json_t *hdr = json_pack("{s:s,s:s}", "alg", "RS256", "kid", sa->kid);
    char *h = json_dumps(hdr, JSON_COMPACT);
    char *c = json_dumps(claims, JSON_COMPACT);
    json_decref(hdr);
    char *hb = sa_b64(h, strlen(h));
    char *cb = sa_b64(c, strlen(c));
    free(h);
    free(c);
    char *input = xasprintf("%s.%s", hb, cb);
    free(hb);
    free(cb);
    unsigned char sig[SA_KEY_BITS / 8 * 2];
    size_t siglen = sizeof sig;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx &&
              EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, sa->key) == 1 &&
              EVP_DigestSign(ctx, sig, &siglen, (unsigned char *) input,
                             strlen(input)) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        free(input);
        return NULL;
    }
    char *sb = base64_encode(sig, siglen, BASE64_URL_RAW);
    char *tok = xasprintf("%s.%s", input, sb);
    free(sb);
    free(input);
    return tok;
}

/* The verified claims of tok (new ref), or NULL. *is_jwt tells whether
 * tok had a JWT's shape at all. */
static json_t *
sa_verify(struct sa_tokens *sa, const char *tok, size_t len, bool *is_jwt)
{
    *is_jwt = false;
    const char *d1 = memchr(tok, '.', len);
    const char *d2 =
        d1 ? memchr(d1 + 1, '.', len - (size_t) (d1 + 1 - tok)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t) (d2 + 1 - tok))) {
        return NULL;
    }
    char *hdr = NULL, *claims = NULL, *sig = NULL;
    size_t hl, cl, sl;
    json_t *out = NULL, *h = NULL;
    if (base64_decode(tok, (size_t) (d1 - tok), BASE64_URL, &hdr, &hl) < 0) {
        return NULL;
    }
    h = json_loadb(hdr, hl, 0, NULL);
    free(hdr);
    if (!json_is_object(h)) {
        goto out;
    }
    *is_jwt = true;
    const char *alg = json_string_value(json_object_get(h, "alg"));
    if (!alg || strcmp(alg, "RS256") != 0 ||
        base64_decode(d2 + 1, len - (size_t) (d2 + 1 - tok), BASE64_URL, &sig,
                      &sl) < 0) {
        goto out;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok =
        ctx &&
        EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, sa->key) == 1 &&
        EVP_DigestVerify(ctx, (unsigned char *) sig, sl,
                         (const unsigned char *) tok, (size_t) (d2 - tok)) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok || base64_decode(d1 + 1, (size_t) (d2 - d1 - 1), BASE64_URL,
                             &claims, &cl) < 0) {
        goto out;
    }
    out = json_loadb(claims, cl, 0, NULL);
    if (!json_is_object(out)) {
        json_decref(out);
        out = NULL;
    }
out:
    free(claims);
    free(sig);
    json_decref(h);
    return out;
}

/* ------------------------------------------------------------------ */
/* objects                                                              */

/* The stored object, parsed (new ref), or NULL. */
static json_t *
sa_load(struct sa_tokens *sa, const char *group, const char *plural,
        const char *ns, const char *name)
{
    char *key = xasprintf("/%s/%s/%s/%s", group, plural, ns ? ns : "", name);
    struct store_kv kv = {0};
    json_t *obj = NULL;
    if (store_get(sa->store, key, &kv, NULL) == 0) {
        obj = json_loadb(kv.value, kv.len, 0, NULL);
        store_kv_free(&kv);
    }
    free(key);
    return obj;
}

static const char *
sa_md(const json_t *obj, const char *field)
{
    return json_string_value(
        json_object_get(json_object_get(obj, "metadata"), field));
}

/* Does the object exist with this uid and is it not being deleted? */
static bool
sa_alive(struct sa_tokens *sa, const char *group, const char *plural,
         const char *ns, const json_t *ref)
{
    const char *name = json_string_value(json_object_get(ref, "name"));
    const char *uid = json_string_value(json_object_get(ref, "uid"));
    if (!name || !uid) {
        return false;
    }
    json_t *obj = sa_load(sa, group, plural, ns, name);
    const char *have = sa_md(obj, "uid");
    bool ok = have && !strcmp(have, uid) && !sa_md(obj, "deletionTimestamp");
    json_decref(obj);
    return ok;
}

int
sa_tokens_authenticate(struct sa_tokens *sa, const char *tok, size_t len,
                       struct authn_user *u)
{
    if (!sa || len > SA_TOKEN_MAX) {
        return 0;
    }
    bool is_jwt;
    json_t *c = sa_verify(sa, tok, len, &is_jwt);
    if (!c) {
        return is_jwt ? -EACCES : 0;
    }
    int r = -EACCES;
    int64_t now = time_wall_ns() / 1000000000LL;
    const char *iss = json_string_value(json_object_get(c, "iss"));
    json_t *exp = json_object_get(c, "exp");
    json_t *nbf = json_object_get(c, "nbf");
    json_t *aud = json_object_get(c, "aud");
    bool aud_ok = false;
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v)
    {
        aud_ok |= json_is_string(v) && !strcmp(json_string_value(v), SA_ISSUER);
    }
    json_t *k8s = json_object_get(c, "kubernetes.io");
    const char *ns = json_string_value(json_object_get(k8s, "namespace"));
    json_t *sacc = json_object_get(k8s, "serviceaccount");
    json_t *pod = json_object_get(k8s, "pod");
    json_t *secret = json_object_get(k8s, "secret");
    const char *name = json_string_value(json_object_get(sacc, "name"));
    if (!iss || strcmp(iss, SA_ISSUER) != 0 || !aud_ok ||
        !json_is_integer(exp) || json_integer_value(exp) <= now ||
        (json_is_integer(nbf) && json_integer_value(nbf) > now + 60) || !ns ||
        !name) {
        goto out;
    }
    if (!sa_alive(sa, "core", "serviceaccounts", ns, sacc) ||
        (pod && !sa_alive(sa, "core", "pods", ns, pod)) ||
        (secret && !sa_alive(sa, "core", "secrets", ns, secret))) {
        goto out;
    }
    char user[AUTHN_NAME_MAX];
    auth_fmt(user, sizeof user, AUTHN_SA_PREFIX "%s:%s", ns, name);
    authn_user_init(u, user);
    auth_fmt(u->uid, sizeof u->uid, "%s",
             json_string_value(json_object_get(sacc, "uid")));
    authn_user_add_group(u, "system:serviceaccounts");
    char g[AUTHN_NAME_MAX];
    auth_fmt(g, sizeof g, "system:serviceaccounts:%s", ns);
    authn_user_add_group(u, g);
    authn_user_add_group(u, AUTHN_GROUP_AUTHENTICATED);
    if (pod) {
        auth_fmt(u->pod_name, sizeof u->pod_name, "%s",
                 json_string_value(json_object_get(pod, "name")));
        auth_fmt(u->pod_uid, sizeof u->pod_uid, "%s",
                 json_string_value(json_object_get(pod, "uid")));
    }
    r = 1;
out:
    json_decref(c);
    return r;
}

/* ------------------------------------------------------------------ */
/* TokenRequest                                                         */

static void sa_respond_error(struct http_request *req, int code,
                             const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
sa_respond_error(struct http_request *req, int code, const char *reason,
                 const char *fmt, ...)
{
    struct dpf_error e = {0};
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    dpf_error_set(&e, code, reason, "%s", msg);
    size_t len;
    char *body = kube_status_dump(&e, NULL, &len);
    http_respond_take(req, code, "application/json", body, len);
}

static void
sa_random_uid(char *buf, size_t size)
{
    unsigned char b[16];
    RAND_bytes(b, sizeof b);
    b[6] = (unsigned char) ((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char) ((b[8] & 0x3f) | 0x80);
    auth_fmt(buf, size,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x"
             "%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
             b[11], b[12], b[13], b[14], b[15]);
}

void
sa_handle_token_request(struct sa_tokens *sa, struct http_request *req,
                        const char *ns, const char *name)
{
    if (strcmp(http_request_method(req), "POST") != 0) {
        http_response_header(req, "Allow", "POST");
        sa_respond_error(req, 405, "MethodNotAllowed",
                         "the server does not allow this method on the "
                         "requested resource");
        return;
    }
    size_t len;
    const char *body = http_request_body(req, &len);
    json_t *tr = NULL;
    struct dpf_error perr = {0};
    if (len == 0) {
        tr = json_object();
    } else if (yamljson_parse_one(body, len, &tr, &perr) < 0 ||
               !json_is_object(tr)) {
        json_decref(tr);
        sa_respond_error(req, 400, "BadRequest",
                         "the request body is not a TokenRequest");
        return;
    }
    json_t *obj = sa_load(sa, "core", "serviceaccounts", ns, name);
    if (!obj) {
        json_decref(tr);
        sa_respond_error(req, 404, "NotFound",
                         "serviceaccounts \"%s\" not found", name);
        return;
    }
    json_t *spec = json_object_get(tr, "spec");
    if (!json_is_object(spec)) {
        spec = json_object();
        json_object_set_new(tr, "spec", spec);
    }
    json_t *aud = json_object_get(spec, "audiences");
    if (json_array_size(aud) == 0) {
        aud = json_pack("[s]", SA_ISSUER);
        json_object_set_new(spec, "audiences", aud);
    }
    json_t *jexp = json_object_get(spec, "expirationSeconds");
    int64_t exp_s =
        json_is_integer(jexp) ? json_integer_value(jexp) : SA_DEFAULT_EXPIRY_S;
    if (exp_s < SA_MIN_EXPIRY_S) {
        json_decref(tr);
        json_decref(obj);
        sa_respond_error(req, 422, "Invalid",
                         "TokenRequest.authentication.k8s.io \"%s\" is "
                         "invalid: spec.expirationSeconds: Invalid value: "
                         "may not specify a duration less than 10 minutes",
                         name);
        return;
    }
    if (exp_s > SA_MAX_EXPIRY_S) {
        exp_s = SA_MAX_EXPIRY_S;
    }
    json_object_set_new(spec, "expirationSeconds", json_integer(exp_s));
    json_t *k8s = json_pack("{s:s,s:{s:s,s:s}}", "namespace", ns,
                            "serviceaccount", "name", name, "uid",
                            sa_md(obj, "uid") ? sa_md(obj, "uid") : "");
    json_t *bref = json_object_get(spec, "boundObjectRef");
    if (json_is_object(bref)) {
        const char *bk = json_string_value(json_object_get(bref, "kind"));
        const char *bn = json_string_value(json_object_get(bref, "name"));
        const char *bu = json_string_value(json_object_get(bref, "uid"));
        const char *plural = !bk                     ? NULL
                             : !strcmp(bk, "Pod")    ? "pods"
                             : !strcmp(bk, "Secret") ? "secrets"
                                                     : NULL;
        if (!plural || !bn) {
            json_decref(k8s);
            json_decref(tr);
            json_decref(obj);
            sa_respond_error(req, 400, "BadRequest",
                             "cannot bind token to object of kind %s: only "
                             "Pod and Secret (with a name) are supported",
                             bk ? bk : "\"\"");
            return;
        }
        json_t *bound = sa_load(sa, "core", plural, ns, bn);
        const char *have = sa_md(bound, "uid");
        if (!bound || (bu && *bu && strcmp(bu, have ? have : "") != 0)) {
            json_decref(bound);
            json_decref(k8s);
            json_decref(tr);
            json_decref(obj);
            if (bound) {
                sa_respond_error(req, 409, "Conflict",
                                 "the UID in the bound object reference (%s) "
                                 "does not match the UID in record: %s",
                                 bu, have ? have : "");
            } else {
                sa_respond_error(req, 404, "NotFound", "%s \"%s\" not found",
                                 plural, bn);
            }
            return;
        }
        json_object_set_new(k8s, !strcmp(plural, "pods") ? "pod" : "secret",
                            json_pack("{s:s,s:s}", "name", bn, "uid", have));
        json_object_set_new(bref, "uid", json_string(have));
        json_decref(bound);
    }
    int64_t now = time_wall_ns() / 1000000000LL;
    char jti[40];
    sa_random_uid(jti, sizeof jti);
    char sub[AUTHN_NAME_MAX];
    auth_fmt(sub, sizeof sub, AUTHN_SA_PREFIX "%s:%s", ns, name);
    json_t *claims = json_pack(
        "{s:O,s:I,s:I,s:s,s:s,s:o,s:I,s:s}", "aud", aud, "exp",
        (json_int_t) (now + exp_s), "iat", (json_int_t) now, "iss", SA_ISSUER,
        "jti", jti, "kubernetes.io", k8s, "nbf", (json_int_t) now, "sub", sub);
    char *tok = sa_sign(sa, claims);
    json_decref(claims);
    json_decref(obj);
    if (!tok) {
        json_decref(tr);
        sa_respond_error(req, 500, "InternalError", "cannot sign the token");
        return;
    }
    char ts[40];
    time_format_rfc3339((now + exp_s) * 1000000000LL, ts, sizeof ts);
    json_object_set_new(tr, "apiVersion",
                        json_string("authentication.k8s.io/v1"));
    json_object_set_new(tr, "kind", json_string("TokenRequest"));
    json_object_set_new(tr, "metadata",
                        json_pack("{s:s,s:s,s:n}", "name", name, "namespace",
                                  ns, "creationTimestamp"));
    json_object_set_new(
        tr, "status",
        json_pack("{s:s,s:s}", "token", tok, "expirationTimestamp", ts));
    OPENSSL_cleanse(tok, strlen(tok));
    free(tok);
    char *text = json_dumps(tr, JSON_COMPACT);
    json_decref(tr);
    log_info("issued a service-account token",
             "namespace=%s name=%s expires=%s", ns, name, ts);
    http_respond_take(req, 201, "application/json", text, strlen(text));
}

void
sa_handle_token_review(struct sa_tokens *sa, struct authn *authn,
                       struct http_request *req)
{
    (void) authn;
    size_t len;
    const char *body = http_request_body(req, &len);
    json_t *tr = NULL;
    struct dpf_error perr = {0};
    if (strcmp(http_request_method(req), "POST") != 0 ||
        yamljson_parse_one(body, len, &tr, &perr) < 0 || !json_is_object(tr)) {
        json_decref(tr);
        sa_respond_error(req, 400, "BadRequest",
                         "a TokenReview is created with POST");
        return;
    }
    const char *tok = json_string_value(
        json_object_get(json_object_get(tr, "spec"), "token"));
    struct authn_user u;
    int r = tok ? sa_tokens_authenticate(sa, tok, strlen(tok), &u) : 0;
    json_t *status;
    if (r == 1) {
        json_t *groups = json_array();
        for (size_t i = 0; i < u.n_groups; i++) {
            json_array_append_new(groups, json_string(u.groups[i]));
        }
        status = json_pack("{s:b,s:{s:s,s:s,s:o},s:[s]}", "authenticated", 1,
                           "user", "username", u.name, "uid", u.uid, "groups",
                           groups, "audiences", SA_ISSUER);
    } else {
        status = json_pack("{s:b,s:s}", "authenticated", 0, "error",
                           "invalid bearer token");
    }
    json_object_set_new(tr, "apiVersion",
                        json_string("authentication.k8s.io/v1"));
    json_object_set_new(tr, "kind", json_string("TokenReview"));
    json_object_set_new(tr, "metadata",
                        json_pack("{s:n}", "creationTimestamp"));
    json_object_set_new(tr, "status", status);
    json_t *spec = json_object_get(tr, "spec");
    json_object_del(spec, "token"); /* never echo a credential */
    char *text = json_dumps(tr, JSON_COMPACT);
    json_decref(tr);
    http_respond_take(req, 201, "application/json", text, strlen(text));
}

/* ------------------------------------------------------------------ */
/* default accounts                                                     */

#define SA_NS_PREFIX "/core/namespaces//"
#define SA_SA_PREFIX "/core/serviceaccounts/"

void
sa_store_event(struct sa_tokens *sa, enum store_event_type type,
               const char *key)
{
    char ns[256];
    if (type == STORE_EVENT_ADDED &&
        !strncmp(key, SA_NS_PREFIX, sizeof(SA_NS_PREFIX) - 1)) {
        auth_fmt(ns, sizeof ns, "%s", key + sizeof(SA_NS_PREFIX) - 1);
    } else if (type == STORE_EVENT_DELETED &&
               !strncmp(key, SA_SA_PREFIX, sizeof(SA_SA_PREFIX) - 1)) {
        const char *p = key + sizeof(SA_SA_PREFIX) - 1;
        const char *slash = strchr(p, '/');
        if (!slash || strcmp(slash + 1, "default") != 0 ||
            (size_t) (slash - p) >= sizeof ns) {
            return;
        }
        memcpy(ns, p, (size_t) (slash - p));
        ns[slash - p] = '\0';
    } else {
        return;
    }
    worker_lock(&sa->w);
    json_object_set_new(sa->queue, ns, json_true());
    worker_wake(&sa->w);
    worker_unlock(&sa->w);
}

static void
sa_ensure_default(struct apiserver *api, const char *ns)
{
    json_t *obj = json_pack("{s:s,s:s,s:{s:s,s:s}}", "apiVersion", "v1", "kind",
                            "ServiceAccount", "metadata", "name", "default",
                            "namespace", ns);
    struct dpf_error err = {0};
    int r = apiserver_ensure_object(api, obj, &err);
    json_decref(obj);
    /* A namespace being deleted (403) or gone (404) needs none. */
    if (r < 0 && err.code != 403 && err.code != 404) {
        log_warn("cannot create the default service account",
                 "namespace=%s error=\"%s\"", ns, err.message);
    }
}

static void *
sa_worker_main(void *arg)
{
    struct sa_tokens *sa = arg;
    worker_lock(&sa->w);
    while (!worker_stopping(&sa->w)) {
        if (json_object_size(sa->queue) == 0) {
            if (!worker_wait(&sa->w, -1)) {
                break;
            }
            continue;
        }
        json_t *todo = sa->queue;
        sa->queue = json_object();
        struct apiserver *api = sa->api;
        worker_unlock(&sa->w);
        const char *ns;
        json_t *one;
        json_object_foreach(todo, ns, one)
        {
            sa_ensure_default(api, ns);
        }
        json_decref(todo);
        worker_lock(&sa->w);
    }
    worker_unlock(&sa->w);
    return NULL;
}

static int
sa_queue_ns(void *arg, const struct store_kv *kv)
{
    struct sa_tokens *sa = arg;
    sa_store_event(sa, STORE_EVENT_ADDED, kv->key);
    return 0;
}

int
sa_tokens_start(struct sa_tokens *sa, struct apiserver *api,
                struct dpf_error *err)
{
    worker_lock(&sa->w);
    sa->api = api;
    worker_unlock(&sa->w);
    int r = store_list(sa->store, SA_NS_PREFIX, NULL, 0, sa_queue_ns, sa, NULL,
                       NULL, err);
    if (r < 0) {
        return r;
    }
    return worker_start(&sa->w, "sa-default", sa_worker_main, sa);
}

void
sa_tokens_stop(struct sa_tokens *sa)
{
    if (sa) {
        worker_stop(&sa->w);
    }
}

void
sa_tokens_destroy(struct sa_tokens *sa)
{
    if (!sa) {
        return;
    }
    worker_stop(&sa->w);
    worker_destroy(&sa->w);
    json_decref(sa->queue);
    EVP_PKEY_free(sa->key);
    free(sa);
}
