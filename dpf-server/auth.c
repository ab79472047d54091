/* auth: see auth.h. */
#include "dpf-server/auth.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "dpf-server/authn.h"
#include "dpf-server/authz.h"
#include "dpf-server/certs.h"
#include "dpf-server/rbac.h"
#include "dpf-server/sa.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/kube/kube-status.h"
#include "lib/net/http-server.h"

LOG_MODULE(auth);

struct auth {
    struct store *store;             /* borrowed */
    _Atomic(struct apiserver *) api; /* borrowed, set by auth_start */
    struct authn *authn;
    struct rbac *rbac;
    struct authz *authz;
    struct sa_tokens *sa; /* NULL without a key path */
    struct certs *certs;
};

struct auth *
auth_create(const char *admin_token, const char *sa_key_path,
            struct store *store, struct dpf_error *err)
{
    struct sa_tokens *sa = NULL;
    if (sa_key_path && !(sa = sa_tokens_create(sa_key_path, store, err))) {
        return NULL;
    }
    struct auth *a = xcalloc(1, sizeof(*a));
    a->store = store;
    a->sa = sa;
    atomic_init(&a->api, NULL);
    a->authn = authn_create(admin_token, sa);
    authn_set_store(a->authn, store);
    a->rbac = rbac_create();
    a->authz = authz_create(a->rbac, a->authn, store);
    a->certs = certs_create(a->authn, a->authz, store);
    return a;
}

static void
auth_store_event(void *arg, enum store_event_type type, const char *key,
                 const char *value, size_t len, int64_t rv)
{
    struct auth *a = arg;
    (void) rv;
    rbac_store_event(a->rbac, type, key, value, len);
    if (a->sa) {
        sa_store_event(a->sa, type, key);
    }
    certs_store_event(a->certs, type, key, value, len);
}

/* The API server extension: service-account tokens and token reviews
 * here, the rest in authz. */
static bool
auth_extension(void *arg, struct http_request *req, const struct schema_kind *k,
               const char *ns, const char *name, const char *sub)
{
    struct auth *a = arg;
    if (a->sa && sub && name && ns && !strcmp(sub, "token") &&
        !strcmp(k->group, "") && !strcmp(k->plural, "serviceaccounts")) {
        sa_handle_token_request(a->sa, req, ns, name);
        return true;
    }
    if (a->sa && !sub && !strcmp(k->group, "authentication.k8s.io") &&
        !strcmp(k->plural, "tokenreviews")) {
        sa_handle_token_review(a->sa, a->authn, req);
        return true;
    }
    if (certs_extension(a->certs, req, k, ns, name, sub)) {
        return true;
    }
    return authz_handle(a->authz, req, k, ns, name, sub);
}

void
auth_set_ca(struct auth *a, const char *ca_cert_path, const char *ca_key_path,
            const char *server_url)
{
    certs_set_ca(a->certs, ca_cert_path, ca_key_path, server_url);
}

void
auth_configure(struct auth *a, struct apiserver_config *ac)
{
    ac->event_hook = auth_store_event;
    ac->event_hook_arg = a;
    ac->extension = auth_extension;
    ac->extension_arg = a;
    ac->admit_create = certs_admit_create;
    ac->admit_create_arg = a->certs;
}

/* The aggregation worker's write: replace a ClusterRole's rules. */
static int
auth_edit_rules(void *arg, json_t *obj)
{
    const json_t *rules = arg;
    if (json_equal(json_object_get(obj, "rules"), rules)) {
        return 0;
    }
    json_object_set_new(obj, "rules", json_deep_copy(rules));
    return 1;
}

static int
auth_write_rules(void *arg, const char *name, const json_t *rules)
{
    struct auth *a = arg;
    struct apiserver *api = atomic_load(&a->api);
    const struct schema_kind *k =
        schema_find_resource("rbac.authorization.k8s.io", "v1", "clusterroles");
    if (!api || !k) {
        return -ENOENT;
    }
    struct dpf_error err = {0};
    return apiserver_update_object(api, k, NULL, name, auth_edit_rules,
                                   (void *) rules, &err);
}

int
auth_start(struct auth *a, struct apiserver *api, struct dpf_error *err)
{
    atomic_store(&a->api, api);
    int r = rbac_load(a->rbac, a->store, err);
    if (r < 0) {
        return r;
    }
    json_t *objs = rbac_bootstrap_objects();
    size_t i;
    json_t *o;
    json_array_foreach(objs, i, o)
    {
        if ((r = apiserver_ensure_object(api, o, err)) < 0) {
            log_error("cannot create the default RBAC policy",
                      "name=%s error=\"%s\"",
                      json_string_value(json_object_get(
                          json_object_get(o, "metadata"), "name")),
                      err ? err->message : "");
            json_decref(objs);
            return r;
        }
    }
    json_decref(objs);
    if (a->sa && (r = sa_tokens_start(a->sa, api, err)) < 0) {
        return r;
    }
    if ((r = certs_start(a->certs, api, err)) < 0) {
        return r;
    }
    r = rbac_start(a->rbac, auth_write_rules, a);
    if (r < 0) {
        dpf_error_set(err, 500, "InternalError",
                      "cannot start the RBAC aggregation worker: %s",
                      strerror(-r));
    }
    return r;
}

void
auth_stop(struct auth *a)
{
    if (!a) {
        return;
    }
    rbac_stop(a->rbac);
    certs_stop(a->certs);
    sa_tokens_stop(a->sa);
    atomic_store(&a->api, NULL);
}

void
auth_destroy(struct auth *a)
{
    if (!a) {
        return;
    }
    certs_destroy(a->certs);
    rbac_destroy(a->rbac);
    authz_destroy(a->authz);
    authn_destroy(a->authn);
    sa_tokens_destroy(a->sa);
    free(a);
}

static void
auth_respond(struct http_request *req, const struct dpf_error *e,
             const struct kube_status_details *d)
{
    size_t len;
    char *body = kube_status_dump(e, d, &len);
    http_respond_take(req, e->code, "application/json", body, len);
}

/* May this credential-less request pass? Only a read (get) RBAC grants
 * the anonymous user. */
static bool
auth_anonymous_allowed(struct auth *a, struct http_request *req)
{
    const char *method = http_request_method(req);
    if (strcmp(method, "GET") != 0 || http_request_query(req, "watch")) {
        return false;
    }
    struct authn_user u;
    authn_user_init(&u, AUTHN_USER_ANONYMOUS);
    authn_user_add_group(&u, AUTHN_GROUP_UNAUTHENTICATED);
    struct authz_attrs at;
    authz_attrs_from_request(&at, method, http_request_path(req), false,
                             http_request_query(req, "fieldSelector"));
    bool ok = at.resource_request && at.name[0] && !strcmp(at.verb, "get") &&
              authz_allowed(a->authz, &u, &at, NULL, 0);
    authz_attrs_free(&at);
    return ok;
}

bool
auth_gate(struct auth *a, struct http_request *req, bool open_path)
{
    struct authn_user u;
    int r = authn_request(a->authn, req, &u);
    const char *method = http_request_method(req);
    const char *path = http_request_path(req);
    /* Anonymous requests reach the open paths and what RBAC grants
     * system:anonymous / system:unauthenticated (the cluster-info
     * ConfigMap kubeadm's join reads before it trusts the server); for
     * anything else they get 401, not 403, so a client that forgot its
     * credentials is told so. A credential that does not verify is 401
     * even on the open paths. */
    if (r == 0 && !open_path && auth_anonymous_allowed(a, req)) {
        return true;
    }
    if (r < 0 || (r == 0 && !open_path)) {
        log_debug("unauthenticated request", "method=%s path=%s remote=%s",
                  method, path, http_request_remote(req));
        struct dpf_error e = {0};
        dpf_error_set(&e, 401, "Unauthorized", "Unauthorized");
        auth_respond(req, &e, NULL);
        return false;
    }
    if (r == 0) {
        return true;
    }
    http_request_mark_trusted(req);
    if (open_path || authn_user_in_group(&u, AUTHN_GROUP_MASTERS)) {
        return true;
    }
    struct authz_attrs at;
    authz_attrs_from_request(
        &at, method, path,
        http_request_query(req, "watch") &&
            (!strcmp(http_request_query(req, "watch"), "true") ||
             !strcmp(http_request_query(req, "watch"), "1")),
        http_request_query(req, "fieldSelector"));
    char reason[512];
    bool ok = authz_allowed(a->authz, &u, &at, reason, sizeof reason);
    if (!ok) {
        struct dpf_error e = {0};
        struct kube_status_details d = {0};
        authz_forbidden(&u, &at, reason, &e, &d);
        log_debug("forbidden", "user=%s verb=%s path=%s", u.name, at.verb,
                  path);
        auth_respond(req, &e, &d);
    }
    authz_attrs_free(&at);
    return ok;
}
