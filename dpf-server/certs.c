/* certs: see certs.h. */
#include "dpf-server/certs.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/kinds-certificates.h"
#include "dpf-server/authn.h"
#include "dpf-server/authz.h"
#include "dpf-server/rbac.h"
#include "lib/base/base64.h"
#include "lib/base/log.h"
#include "lib/base/thread.h"
#include "lib/base/util.h"
#include "lib/kube/kube-status.h"
#include "lib/net/http-server.h"
#include "lib/net/pki-csr.h"

LOG_MODULE(certs);

#define CSR_PREFIX "/certificates.k8s.io/certificatesigningrequests//"
#define CLUSTER_INFO_KEY "/core/configmaps/kube-public/cluster-info"
#define CERTS_KUBELET_CLIENT_SIGNER \
    "kubernetes.io/kube-apiserver-client-kubelet"
#define CERTS_YEAR_S (365LL * 24 * 3600)
#define CERTS_DMS_DEFAULT_S (24LL * 3600)

struct certs {
    struct authn *authn; /* borrowed */
    struct authz *authz; /* borrowed */
    struct store *store; /* borrowed */
    _Atomic(struct apiserver *) api;
    char *ca_cert, *ca_key, *server_url;
    struct pki_signer *signer; /* loaded at the first signature (sign_mu) */
    struct worker w;
    json_t *pending;         /* CSR names to look at (guarded by w.mu) */
    pthread_mutex_t sign_mu; /* one request looked at at a time: the
                              * approval handler and the worker do not
                              * both sign, and the handler's answer holds
                              * the worker's certificate if it won */
    bool cluster_info_dirty;
};

struct certs *
certs_create(struct authn *authn, struct authz *authz, struct store *store)
{
    struct certs *c = xcalloc(1, sizeof(*c));
    c->authn = authn;
    c->authz = authz;
    c->store = store;
    atomic_init(&c->api, NULL);
    c->pending = json_object();
    pthread_mutex_init(&c->sign_mu, NULL);
    worker_init(&c->w);
    return c;
}

void
certs_set_ca(struct certs *c, const char *ca_cert_path, const char *ca_key_path,
             const char *server_url)
{
    free(c->ca_cert);
    free(c->ca_key);
    free(c->server_url);
    c->ca_cert = xstrdup(ca_cert_path);
    c->ca_key = xstrdup(ca_key_path);
    c->server_url = xstrdup(server_url);
    pthread_mutex_lock(&c->sign_mu);
    pki_signer_free(c->signer); /* read again at the next signature */
    c->signer = NULL;
    pthread_mutex_unlock(&c->sign_mu);
}

/* The value at a dotted path (borrowed) or NULL. */
static json_t *
certs_get(const json_t *obj, const char *dotted)
{
    char buf[128];
    auth_fmt(buf, sizeof buf, "%s", dotted);
    json_t *v = (json_t *) obj;
    char *save = NULL;
    for (char *p = strtok_r(buf, ".", &save); p && v;
         p = strtok_r(NULL, ".", &save)) {
        v = json_object_get(v, p);
    }
    return v;
}

static const char *
certs_get_str(const json_t *obj, const char *dotted)
{
    return json_string_value(certs_get(obj, dotted));
}

/* obj's member `key`, made an object when it is not one. */
static json_t *
certs_ensure_obj(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_object(v)) {
        v = json_object();
        json_object_set_new(obj, key, v);
    }
    return v;
}

static const struct schema_kind *
certs_kind(void)
{
    return schema_find_resource("certificates.k8s.io", "v1",
                                "certificatesigningrequests");
}

/* ------------------------------------------------------------------ */
/* signer rules                                                         */

static bool
certs_usages_within(const json_t *usages, unsigned allowed, unsigned *bits)
{
    *bits = 0;
    size_t i;
    const json_t *u;
    json_array_foreach(usages, i, u)
    {
        const char *w = json_string_value(u);
        int b = w ? pki_usage_bit(w) : -1;
        if (b <= 0 || !((unsigned) b & allowed)) {
            return false;
        }
        *bits |= (unsigned) b;
    }
    return true;
}

static bool
certs_node_subject(const struct pki_csr_info *info)
{
    return str_has_prefix(info->cn, AUTHN_NODE_PREFIX) &&
           info->cn[strlen(AUTHN_NODE_PREFIX)] && info->n_orgs == 1 &&
           !strcmp(info->orgs[0], AUTHN_GROUP_NODES);
}

bool
certs_is_node_client(const struct pki_csr_info *info, const json_t *usages)
{
    unsigned bits;
    return certs_node_subject(info) && !info->n_dns && !info->n_ips &&
           !info->has_email && !info->has_uri &&
           certs_usages_within(usages,
                               PKI_USAGE_CLIENT_AUTH |
                                   PKI_USAGE_DIGITAL_SIGNATURE |
                                   PKI_USAGE_KEY_ENCIPHERMENT,
                               &bits) &&
           (bits & PKI_USAGE_CLIENT_AUTH);
}

int
certs_signer_check(const char *signer, const struct pki_csr_info *info,
                   const json_t *usages, unsigned *usage_bits, char *msg,
                   size_t size)
{
    const unsigned base =
        PKI_USAGE_DIGITAL_SIGNATURE | PKI_USAGE_KEY_ENCIPHERMENT;
    bool client = !strcmp(signer, "kubernetes.io/kube-apiserver-client");
    bool kubelet = !strcmp(signer, CERTS_KUBELET_CLIENT_SIGNER);
    bool serving = !strcmp(signer, "kubernetes.io/kubelet-serving");
    bool dms = !strcmp(signer, "dpu.nvidia.com/dms");
    if (!client && !kubelet && !serving && !dms) {
        return -ENOENT;
    }
    unsigned allowed =
        base | (serving ? PKI_USAGE_SERVER_AUTH
                : dms   ? PKI_USAGE_SERVER_AUTH | PKI_USAGE_CLIENT_AUTH
                        : PKI_USAGE_CLIENT_AUTH);
    if (!info->key_ok) {
        auth_fmt(msg, size,
                 "the request's key is too weak (EC P-256 or "
                 "RSA 2048 at least)");
        return -EINVAL;
    }
    if (!info->cn[0]) {
        auth_fmt(msg, size, "the subject has no common name");
        return -EINVAL;
    }
    if (!certs_usages_within(usages, allowed, usage_bits)) {
        auth_fmt(msg, size, "usages not allowed for signer %s", signer);
        return -EINVAL;
    }
    unsigned need = serving ? PKI_USAGE_SERVER_AUTH
                    : dms   ? PKI_USAGE_SERVER_AUTH | PKI_USAGE_CLIENT_AUTH
                            : PKI_USAGE_CLIENT_AUTH;
    if (!(*usage_bits & need)) {
        auth_fmt(msg, size, "signer %s needs the usage %s", signer,
                 serving ? "\"server auth\""
                 : dms   ? "\"server auth\" or \"client auth\""
                         : "\"client auth\"");
        return -EINVAL;
    }
    if (info->has_email || info->has_uri) {
        auth_fmt(msg, size,
                 "e-mail and URI names are not allowed for "
                 "signer %s",
                 signer);
        return -EINVAL;
    }
    if ((client || kubelet) && (info->n_dns || info->n_ips)) {
        auth_fmt(msg, size, "DNS and IP names are not allowed for signer %s",
                 signer);
        return -EINVAL;
    }
    if ((kubelet || serving) && !certs_node_subject(info)) {
        auth_fmt(msg, size,
                 "signer %s needs the subject CN "
                 "system:node:<name> with the single O "
                 "system:nodes",
                 signer);
        return -EINVAL;
    }
    if (serving && !info->n_dns && !info->n_ips) {
        auth_fmt(msg, size, "signer %s needs at least one DNS or IP name",
                 signer);
        return -EINVAL;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* create: the requester's identity                                     */

static void
certs_fill_user(json_t *spec, const struct authn_user *u)
{
    json_object_set_new(spec, "username", json_string(u->name));
    if (u->uid[0]) {
        json_object_set_new(spec, "uid", json_string(u->uid));
    } else {
        json_object_del(spec, "uid");
    }
    json_t *groups = json_array();
    for (size_t i = 0; i < u->n_groups; i++) {
        json_array_append_new(groups, json_string(u->groups[i]));
    }
    json_object_set_new(spec, "groups", groups);
    if (u->pod_name[0]) {
        json_object_set_new(
            spec, "extra",
            json_pack("{s:[s],s:[s]}", "authentication.kubernetes.io/pod-name",
                      u->pod_name, "authentication.kubernetes.io/pod-uid",
                      u->pod_uid));
    } else {
        json_object_del(spec, "extra");
    }
}

int
certs_admit_create(void *arg, struct http_request *req,
                   const struct schema_kind *k, json_t *obj,
                   struct dpf_error *err)
{
    struct certs *c = arg;
    if (strcmp(k->group, "certificates.k8s.io") != 0 ||
        strcmp(k->plural, "certificatesigningrequests") != 0) {
        return 0;
    }
    struct authn_user u;
    if (authn_request(c->authn, req, &u) <= 0) {
        dpf_error_set(err, 403, "Forbidden",
                      "certificatesigningrequests.certificates.k8s.io is "
                      "forbidden: the requester is not authenticated");
        return -EACCES;
    }
    json_t *spec = json_object_get(obj, "spec");
    if (!json_is_object(spec)) {
        spec = json_object();
        json_object_set_new(obj, "spec", spec);
    }
    certs_fill_user(spec, &u);
    json_object_del(obj, "status");
    return 0;
}

/* ------------------------------------------------------------------ */
/* approval subresource                                                 */

static void
certs_respond_error(struct http_request *req, const struct dpf_error *e,
                    const char *name)
{
    struct kube_status_details d = {0};
    if (name) {
        auth_fmt(d.name, sizeof d.name, "%s", name);
        auth_fmt(d.group, sizeof d.group, "certificates.k8s.io");
        auth_fmt(d.kind, sizeof d.kind, "certificatesigningrequests");
    }
    size_t len;
    char *body = kube_status_dump(e, name ? &d : NULL, &len);
    http_respond_take(req, e->code, "application/json", body, len);
}

static json_t *
certs_load(struct certs *c, const char *name)
{
    char *key = xasprintf(CSR_PREFIX "%s", name);
    struct store_kv kv = {0};
    json_t *obj = NULL;
    if (store_get(c->store, key, &kv, NULL) == 0) {
        obj = json_loadb(kv.value, kv.len, 0, NULL);
        if (obj) {
            char rv[32];
            snprintf(rv, sizeof rv, "%lld", (long long) kv.rv);
            json_object_set_new(json_object_get(obj, "metadata"),
                                "resourceVersion", json_string(rv));
        }
        store_kv_free(&kv);
    }
    free(key);
    return obj;
}

/* May u approve requests for signer? `approve` on signers named by the
 * signer or "<domain>/" and a star. */
static bool
certs_may_approve(struct certs *c, const struct authn_user *u,
                  const char *signer)
{
    char wild[600];
    const char *slash = strchr(signer, '/');
    auth_fmt(wild, sizeof wild, "%.*s/*",
             (int) (slash ? slash - signer : (long) strlen(signer)), signer);
    const char *names[] = {signer, wild};
    for (size_t i = 0; i < 2; i++) {
        struct authz_attrs a;
        authz_attrs_set(&a, "approve", "certificates.k8s.io", "signers", "", "",
                        names[i]);
        bool ok = authz_allowed(c->authz, u, &a, NULL, 0);
        authz_attrs_free(&a);
        if (ok) {
            return true;
        }
    }
    return false;
}

struct certs_approval {
    const json_t *conds; /* the body's conditions */
};

/* Add the body's Approved/Denied conditions the object lacks (the rest
 * of the status is the server's). */
static int
certs_edit_approval(void *arg, json_t *obj)
{
    struct certs_approval *ap = arg;
    json_t *status = json_object_get(obj, "status");
    if (!json_is_object(status)) {
        status = json_object();
        json_object_set_new(obj, "status", status);
    }
    json_t *conds = json_object_get(status, "conditions");
    if (!json_is_array(conds)) {
        conds = json_array();
        json_object_set_new(status, "conditions", conds);
    }
    char now[40];
    time_format_rfc3339(time_wall_ns(), now, sizeof now);
    int changed = 0;
    size_t i;
    const json_t *bc;
    json_array_foreach(ap->conds, i, bc)
    {
        const char *t = json_string_value(json_object_get(bc, "type"));
        if (!t || (strcmp(t, "Approved") && strcmp(t, "Denied")) ||
            schema_csr_condition(obj, t)) {
            continue;
        }
        json_t *nc = json_deep_copy(bc);
        if (!json_object_get(nc, "lastUpdateTime")) {
            json_object_set_new(nc, "lastUpdateTime", json_string(now));
        }
        if (!json_object_get(nc, "lastTransitionTime")) {
            json_object_set_new(nc, "lastTransitionTime", json_string(now));
        }
        json_array_append_new(conds, nc);
        changed = 1;
    }
    return changed;
}

static void certs_consider(struct certs *c, struct apiserver *api,
                           const char *name);

static void
certs_handle_approval(struct certs *c, struct http_request *req,
                      const char *name)
{
    struct dpf_error e = {0};
    const char *method = http_request_method(req);
    json_t *cur = certs_load(c, name);
    if (!cur) {
        dpf_error_set(&e, 404, "NotFound",
                      "certificatesigningrequests.certificates.k8s.io \"%s\" "
                      "not found",
                      name);
        certs_respond_error(req, &e, name);
        return;
    }
    if (!strcmp(method, "GET")) {
        char *text = json_dumps(cur, JSON_COMPACT);
        http_respond_take(req, 200, "application/json", text, strlen(text));
        json_decref(cur);
        return;
    }
    if (strcmp(method, "PUT") != 0) {
        dpf_error_set(&e, 405, "MethodNotAllowed",
                      "the server does not allow this method on the "
                      "requested resource");
        certs_respond_error(req, &e, NULL);
        json_decref(cur);
        return;
    }
    struct authn_user u;
    char signer_buf[600];
    auth_fmt(signer_buf, sizeof signer_buf, "%s",
             certs_get_str(cur, "spec.signerName")
                 ? certs_get_str(cur, "spec.signerName")
                 : "");
    const char *signer = signer_buf;
    if (authn_request(c->authn, req, &u) <= 0 ||
        (!authn_user_in_group(&u, AUTHN_GROUP_MASTERS) &&
         !certs_may_approve(c, &u, signer))) {
        dpf_error_set(&e, 403, "Forbidden",
                      "certificatesigningrequests.certificates.k8s.io \"%s\" "
                      "is forbidden: user not permitted to approve requests "
                      "with signerName \"%s\"",
                      name, signer);
        log_info("approval refused", "csr=%s user=%s signer=%s", name, u.name,
                 signer);
        certs_respond_error(req, &e, name);
        json_decref(cur);
        return;
    }
    size_t blen;
    const char *body = http_request_body(req, &blen);
    json_t *in = body ? json_loadb(body, blen, 0, NULL) : NULL;
    const char *bname = certs_get_str(in, "metadata.name");
    if (!json_is_object(in) || (bname && strcmp(bname, name) != 0)) {
        dpf_error_set(&e, 400, "BadRequest",
                      "the body must be the CertificateSigningRequest \"%s\"",
                      name);
        certs_respond_error(req, &e, name);
        json_decref(in);
        json_decref(cur);
        return;
    }
    struct certs_approval ap = {certs_get(in, "status.conditions")};
    schema_csr_approval_write = true;
    int r = apiserver_update_object(atomic_load(&c->api), certs_kind(), NULL,
                                    name, certs_edit_approval, &ap, &e);
    schema_csr_approval_write = false;
    json_decref(in);
    json_decref(cur);
    if (r < 0) {
        certs_respond_error(req, &e, name);
        return;
    }
    log_info("approval", "csr=%s user=%s signer=%s", name, u.name, signer);
    /* A request for one of our signers is signed before the answer, so
     * the approver (the DPU controller, thousands of times in a fleet's
     * provisioning) reads its certificate here instead of polling; the
     * worker, woken by the approval's event, finds it signed. */
    certs_consider(c, atomic_load(&c->api), name);
    json_t *now = certs_load(c, name);
    char *text = json_dumps(now, JSON_COMPACT);
    json_decref(now);
    http_respond_take(req, 200, "application/json", text, strlen(text));
}

bool
certs_extension(struct certs *c, struct http_request *req,
                const struct schema_kind *k, const char *ns, const char *name,
                const char *sub)
{
    (void) ns;
    if (!sub || !name || strcmp(sub, "approval") != 0 ||
        strcmp(k->group, "certificates.k8s.io") != 0 ||
        strcmp(k->plural, "certificatesigningrequests") != 0) {
        return false;
    }
    certs_handle_approval(c, req, name);
    return true;
}

/* ------------------------------------------------------------------ */
/* the worker: auto-approval and signing                                */

struct certs_cond {
    const char *type, *reason, *message;
};

static int
certs_edit_add_cond(void *arg, json_t *obj)
{
    const struct certs_cond *cc = arg;
    if (schema_csr_condition(obj, cc->type)) {
        return 0;
    }
    char now[40];
    time_format_rfc3339(time_wall_ns(), now, sizeof now);
    json_t *status = certs_ensure_obj(obj, "status");
    json_t *conds = json_object_get(status, "conditions");
    if (!json_is_array(conds)) {
        conds = json_array();
        json_object_set_new(status, "conditions", conds);
    }
    json_array_append_new(conds, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s}", "type",
                                           cc->type, "status", "True", "reason",
                                           cc->reason, "message", cc->message,
                                           "lastUpdateTime", now,
                                           "lastTransitionTime", now));
    return 1;
}

static int
certs_edit_cert(void *arg, json_t *obj)
{
    if (json_string_length(certs_get(obj, "status.certificate")) ||
        schema_csr_condition(obj, "Failed")) {
        return 0;
    }
    json_object_set_new(certs_ensure_obj(obj, "status"), "certificate",
                        json_string(arg));
    return 1;
}

/* The requester as the spec records it. */
static void
certs_spec_user(const json_t *obj, struct authn_user *u)
{
    authn_user_init(u, certs_get_str(obj, "spec.username"));
    const char *uid = certs_get_str(obj, "spec.uid");
    auth_fmt(u->uid, sizeof u->uid, "%s", uid ? uid : "");
    size_t i;
    const json_t *g;
    json_array_foreach(certs_get(obj, "spec.groups"), i, g)
    {
        if (json_is_string(g)) {
            authn_user_add_group(u, json_string_value(g));
        }
    }
}

/* kube-controller-manager's csrapproving: 1 when approved now. */
static int
certs_auto_approve(struct certs *c, struct apiserver *api, const char *name,
                   const json_t *obj, const struct pki_csr_info *info)
{
    const char *signer = certs_get_str(obj, "spec.signerName");
    if (!signer || strcmp(signer, CERTS_KUBELET_CLIENT_SIGNER) != 0 ||
        !certs_is_node_client(info, certs_get(obj, "spec.usages"))) {
        return 0;
    }
    struct authn_user u;
    certs_spec_user(obj, &u);
    bool self = !strcmp(u.name, info->cn);
    struct authz_attrs a;
    authz_attrs_set(&a, "create", "certificates.k8s.io",
                    "certificatesigningrequests",
                    self ? "selfnodeclient" : "nodeclient", "", "");
    bool ok = authz_allowed(c->authz, &u, &a, NULL, 0);
    authz_attrs_free(&a);
    if (!ok) {
        return 0;
    }
    struct certs_cond cc = {"Approved", "AutoApproved",
                            self ? "Auto approving self kubelet client "
                                   "certificate after SubjectAccessReview."
                                 : "Auto approving kubelet client "
                                   "certificate after SubjectAccessReview."};
    struct dpf_error e = {0};
    schema_csr_approval_write = true;
    int r = apiserver_update_object(api, certs_kind(), NULL, name,
                                    certs_edit_add_cond, &cc, &e);
    schema_csr_approval_write = false;
    if (r < 0) {
        log_warn("cannot auto-approve", "csr=%s error=\"%s\"", name, e.message);
        return 0;
    }
    log_info("auto-approved", "csr=%s requester=%s cn=%s", name, u.name,
             info->cn);
    return 1;
}

static void
certs_fail(struct apiserver *api, const char *name, const char *msg)
{
    struct certs_cond cc = {"Failed", "SignerValidationFailure", msg};
    struct dpf_error e = {0};
    if (apiserver_update_object(api, certs_kind(), NULL, name,
                                certs_edit_add_cond, &cc, &e) < 0) {
        log_warn("cannot mark a request failed", "csr=%s error=\"%s\"", name,
                 e.message);
    }
    log_info("request not signed", "csr=%s reason=\"%s\"", name, msg);
}

static void
certs_sign(struct certs *c, struct apiserver *api, const char *name,
           const json_t *obj, const struct pki_csr *csr,
           const struct pki_csr_info *info)
{
    const char *signer = certs_get_str(obj, "spec.signerName");
    char msg[256];
    unsigned bits = 0;
    int r = certs_signer_check(signer, info, certs_get(obj, "spec.usages"),
                               &bits, msg, sizeof msg);
    if (r == -ENOENT) {
        return; /* not ours */
    }
    if (r < 0) {
        certs_fail(api, name, msg);
        return;
    }
    bool dms = !strcmp(signer, "dpu.nvidia.com/dms");
    int64_t life = dms ? CERTS_DMS_DEFAULT_S : CERTS_YEAR_S;
    const json_t *exp = certs_get(obj, "spec.expirationSeconds");
    if (json_is_integer(exp) && json_integer_value(exp) >= 600) {
        life = DPF_MIN(json_integer_value(exp), CERTS_YEAR_S);
    }
    char *cert = NULL;
    struct dpf_error e = {0};
    if (!c->signer) {
        c->signer = pki_signer_load(c->ca_cert, c->ca_key, &e);
    }
    if (!c->signer ||
        pki_signer_sign(c->signer, csr, bits, life, &cert, &e) < 0) {
        log_error("cannot sign", "csr=%s error=\"%s\"", name, e.message);
        return;
    }
    char *b64 = base64_encode(cert, strlen(cert), BASE64_STD);
    free(cert);
    r = apiserver_update_object(api, certs_kind(), NULL, name, certs_edit_cert,
                                b64, &e);
    free(b64);
    if (r < 0) {
        log_warn("cannot store the certificate", "csr=%s error=\"%s\"", name,
                 e.message);
        return;
    }
    log_info("signed", "csr=%s signer=%s cn=%s seconds=%lld", name, signer,
             info->cn, (long long) life);
}

static void
certs_consider_one(struct certs *c, struct apiserver *api, const char *name)
{
    json_t *obj = certs_load(c, name);
    if (!obj || json_string_length(certs_get(obj, "status.certificate")) ||
        schema_csr_condition(obj, "Failed") ||
        schema_csr_condition(obj, "Denied")) {
        json_decref(obj);
        return;
    }
    /* Before parsing (the dearest step): an unapproved request is ours
     * to look at only if it may be auto-approved, an approved one only if
     * there is a CA to sign with. */
    bool approved = schema_csr_condition(obj, "Approved");
    const char *signer = certs_get_str(obj, "spec.signerName");
    if (approved ? !c->ca_cert
                 : !signer || strcmp(signer, CERTS_KUBELET_CLIENT_SIGNER)) {
        json_decref(obj);
        return;
    }
    const char *b64 = certs_get_str(obj, "spec.request");
    char *pem = NULL;
    size_t len = 0;
    struct pki_csr_info info;
    struct pki_csr *csr = NULL;
    struct dpf_error e = {0};
    if (!b64 ||
        base64_decode(b64, strlen(b64), BASE64_STRICT, &pem, &len) < 0 ||
        !(csr = pki_csr_read(pem, len, &info, &e))) {
        free(pem);
        json_decref(obj);
        return; /* validation let it in: cannot happen; nothing to do */
    }
    /* Approved now, signed in the same pass with the request parsed once;
     * the approval's own event then finds the certificate there. */
    if (approved ||
        (certs_auto_approve(c, api, name, obj, &info) == 1 && c->ca_cert)) {
        certs_sign(c, api, name, obj, csr, &info);
    }
    pki_csr_free(csr);
    free(pem);
    json_decref(obj);
}

/* Look at one request, one thread at a time. */
static void
certs_consider(struct certs *c, struct apiserver *api, const char *name)
{
    pthread_mutex_lock(&c->sign_mu);
    certs_consider_one(c, api, name);
    pthread_mutex_unlock(&c->sign_mu);
}

/* ------------------------------------------------------------------ */
/* cluster-info                                                         */

static char *
certs_cluster_kubeconfig(struct certs *c)
{
    char *ca = NULL;
    size_t n = 0;
    if (!c->ca_cert || file_read_all(c->ca_cert, &ca, &n) < 0) {
        return NULL;
    }
    char *b64 = base64_encode(ca, n, BASE64_STD);
    free(ca);
    char *text = xasprintf("apiVersion: v1\n"
                           "kind: Config\n"
                           "clusters:\n"
                           "- cluster:\n"
                           "    certificate-authority-data: %s\n"
                           "    server: %s\n"
                           "  name: \"\"\n"
                           "contexts: null\n"
                           "current-context: \"\"\n"
                           "preferences: {}\n"
                           "users: null\n",
                           b64, c->server_url);
    free(b64);
    return text;
}

static int
certs_edit_cluster_info(void *arg, json_t *obj)
{
    const char *want = arg;
    json_t *data = json_object_get(obj, "data");
    const char *have = json_string_value(json_object_get(data, "kubeconfig"));
    if (have && !strcmp(have, want) && json_object_size(data) == 1) {
        return 0;
    }
    json_object_set_new(obj, "data", json_pack("{s:s}", "kubeconfig", want));
    json_object_del(obj, "binaryData");
    return 1;
}

static void
certs_publish_cluster_info(struct certs *c, struct apiserver *api)
{
    char *kc = certs_cluster_kubeconfig(c);
    if (!kc) {
        return;
    }
    struct dpf_error e = {0};
    json_t *obj =
        json_pack("{s:s,s:s,s:{s:s,s:s},s:{s:s}}", "apiVersion", "v1", "kind",
                  "ConfigMap", "metadata", "name", "cluster-info", "namespace",
                  "kube-public", "data", "kubeconfig", kc);
    int r = apiserver_ensure_object(api, obj, &e);
    json_decref(obj);
    if (r == 0) {
        const struct schema_kind *cm =
            schema_find_resource("", "v1", "configmaps");
        r = apiserver_update_object(api, cm, "kube-public", "cluster-info",
                                    certs_edit_cluster_info, kc, &e);
    }
    if (r < 0 && r != -ENOENT) {
        log_warn("cannot publish cluster-info", "error=\"%s\"", e.message);
    }
    free(kc);
}

static void *
certs_main(void *arg)
{
    struct certs *c = arg;
    struct apiserver *api = atomic_load(&c->api);
    worker_lock(&c->w);
    while (!worker_stopping(&c->w)) {
        json_t *todo = c->pending;
        c->pending = json_object();
        bool ci = c->cluster_info_dirty;
        c->cluster_info_dirty = false;
        worker_unlock(&c->w);
        if (ci) {
            certs_publish_cluster_info(c, api);
        }
        const char *name;
        json_t *v;
        json_object_foreach(todo, name, v)
        {
            certs_consider(c, api, name);
        }
        json_decref(todo);
        worker_lock(&c->w);
        if (json_object_size(c->pending) == 0 && !c->cluster_info_dirty &&
            !worker_wait(&c->w, 30000)) {
            break;
        }
    }
    worker_unlock(&c->w);
    return NULL;
}

static int
certs_queue_one(void *arg, const struct store_kv *kv)
{
    struct certs *c = arg;
    json_object_set_new(c->pending, kv->key + strlen(CSR_PREFIX), json_true());
    return 0;
}

int
certs_start(struct certs *c, struct apiserver *api, struct dpf_error *err)
{
    atomic_store(&c->api, api);
    worker_lock(&c->w);
    c->cluster_info_dirty = c->ca_cert != NULL;
    worker_unlock(&c->w);
    /* Requests left from before a restart: approved but unsigned ones
     * are signed now. */
    store_list(c->store, CSR_PREFIX, NULL, 0, certs_queue_one, c, NULL, NULL,
               NULL);
    int r = worker_start(&c->w, "certs", certs_main, c);
    if (r < 0) {
        dpf_error_set(err, 500, "InternalError",
                      "cannot start the certificate signer: %s", strerror(-r));
    }
    return r;
}

void
certs_store_event(struct certs *c, enum store_event_type type, const char *key,
                  const char *value, size_t len)
{
    (void) value;
    (void) len;
    if (!atomic_load(&c->api)) {
        return;
    }
    if (str_has_prefix(key, CSR_PREFIX) && type != STORE_EVENT_DELETED) {
        worker_lock(&c->w);
        json_object_set_new(c->pending, key + strlen(CSR_PREFIX), json_true());
        worker_wake(&c->w);
        worker_unlock(&c->w);
    } else if (!strcmp(key, CLUSTER_INFO_KEY) && c->ca_cert) {
        worker_lock(&c->w);
        c->cluster_info_dirty = true;
        worker_wake(&c->w);
        worker_unlock(&c->w);
    }
}

void
certs_stop(struct certs *c)
{
    if (c) {
        worker_stop(&c->w);
        atomic_store(&c->api, NULL);
    }
}

void
certs_destroy(struct certs *c)
{
    if (!c) {
        return;
    }
    worker_stop(&c->w);
    worker_destroy(&c->w);
    json_decref(c->pending);
    pthread_mutex_destroy(&c->sign_mu);
    pki_signer_free(c->signer);
    free(c->ca_cert);
    free(c->ca_key);
    free(c->server_url);
    free(c);
}
