/* authz: see authz.h. */
#include "dpf-server/authz.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/codecs/yamljson.h"
#include "lib/net/http-server.h"

LOG_MODULE(authz);

#define RBAC_GROUP "rbac.authorization.k8s.io"

struct authz {
    struct rbac *rbac;   /* borrowed */
    struct authn *authn; /* borrowed */
    struct store *store; /* borrowed */
};

struct authz *
authz_create(struct rbac *rbac, struct authn *authn, struct store *store)
{
    struct authz *z = xcalloc(1, sizeof(*z));
    z->rbac = rbac;
    z->authn = authn;
    z->store = store;
    return z;
}

void
authz_destroy(struct authz *z)
{
    free(z);
}

/* ------------------------------------------------------------------ */
/* the Node authorizer                                                  */

#define NODE_LEASE_NS "kube-node-lease"

/* The stored object, parsed (new ref), or NULL. */
static json_t *
authz_load(struct authz *z, const char *group, const char *plural,
           const char *ns, const char *name)
{
    char *key = xasprintf("/%s/%s/%s/%s", *group ? group : "core", plural,
                          ns ? ns : "", name);
    struct store_kv kv = {0};
    json_t *obj = NULL;
    if (store_get(z->store, key, &kv, NULL) == 0) {
        obj = json_loadb(kv.value, kv.len, 0, NULL);
        store_kv_free(&kv);
    }
    free(key);
    return obj;
}

static const char *
authz_pod_node(const json_t *pod)
{
    return json_string_value(
        json_object_get(json_object_get(pod, "spec"), "nodeName"));
}

static bool
authz_name_is(const json_t *obj, const char *field, const char *name)
{
    const char *v = json_string_value(json_object_get(obj, field));
    return v && !strcmp(v, name);
}

/* Does the pod spec refer to configmap (cm) or secret `name` (volumes,
 * projected sources, env, envFrom, image pull secrets)? */
static bool
authz_pod_uses(const json_t *spec, bool cm, const char *name)
{
    size_t i, j;
    const json_t *v, *s;
    json_array_foreach(json_object_get(spec, "volumes"), i, v)
    {
        if (cm ? authz_name_is(json_object_get(v, "configMap"), "name", name)
               : authz_name_is(json_object_get(v, "secret"), "secretName",
                               name)) {
            return true;
        }
        json_array_foreach(
            json_object_get(json_object_get(v, "projected"), "sources"), j, s)
        {
            if (authz_name_is(json_object_get(s, cm ? "configMap" : "secret"),
                              "name", name)) {
                return true;
            }
        }
    }
    if (!cm) {
        json_array_foreach(json_object_get(spec, "imagePullSecrets"), i, v)
        {
            if (authz_name_is(v, "name", name)) {
                return true;
            }
        }
    }
    static const char *const lists[] = {"containers", "initContainers",
                                        "ephemeralContainers"};
    for (size_t l = 0; l < ARRAY_SIZE(lists); l++) {
        const json_t *c;
        json_array_foreach(json_object_get(spec, lists[l]), i, c)
        {
            const json_t *e;
            json_array_foreach(json_object_get(c, "env"), j, e)
            {
                const json_t *vf = json_object_get(e, "valueFrom");
                if (authz_name_is(json_object_get(vf, cm ? "configMapKeyRef"
                                                         : "secretKeyRef"),
                                  "name", name)) {
                    return true;
                }
            }
            json_array_foreach(json_object_get(c, "envFrom"), j, e)
            {
                if (authz_name_is(
                        json_object_get(e, cm ? "configMapRef" : "secretRef"),
                        "name", name)) {
                    return true;
                }
            }
        }
    }
    return false;
}

struct authz_pod_scan {
    const char *node;
    bool cm;
    const char *name;
    bool found;
};

static int
authz_pod_scan_one(void *arg, const struct store_kv *kv)
{
    struct authz_pod_scan *s = arg;
    if (s->found) {
        return 0;
    }
    json_t *pod = json_loadb(kv->value, kv->len, 0, NULL);
    const char *node = authz_pod_node(pod);
    s->found = node && !strcmp(node, s->node) &&
               authz_pod_uses(json_object_get(pod, "spec"), s->cm, s->name);
    json_decref(pod);
    return 0;
}

/* Is the configmap or secret used by a pod bound to node? */
static bool
authz_node_needs(struct authz *z, const char *node, const char *ns, bool cm,
                 const char *name)
{
    struct authz_pod_scan s = {node, cm, name, false};
    char *prefix = xasprintf("/core/pods/%s/", ns);
    store_list(z->store, prefix, NULL, 0, authz_pod_scan_one, &s, NULL, NULL,
               NULL);
    free(prefix);
    return s.found;
}

static bool
authz_verb_in(const char *verb, const char *const *verbs)
{
    for (; *verbs; verbs++) {
        if (!strcmp(verb, *verbs)) {
            return true;
        }
    }
    return false;
}

/* What a node's identity may do with its own node's objects
 * (Kubernetes' Node authorizer and NodeRestriction admission in one):
 * 1 allow, -1 deny with reason, 0 no opinion (RBAC decides). */
static int
authz_node_decide(struct authz *z, const struct authn_user *u,
                  const struct authz_attrs *a, char *reason, size_t size)
{
    static const char *const reads[] = {"get", "list", "watch", NULL};
    static const char *const writes[] = {"create", "update", "patch", "delete",
                                         NULL};
    if (strncmp(u->name, AUTHN_NODE_PREFIX, strlen(AUTHN_NODE_PREFIX)) != 0 ||
        !authn_user_in_group(u, AUTHN_GROUP_NODES) || !a->resource_request) {
        return 0;
    }
    const char *node = u->name + strlen(AUTHN_NODE_PREFIX);
    const char *res = a->resource;
    const char *sub = a->subresource;
    bool core = !*a->group;
    char tmp[512];
    if (core && !strcmp(res, "nodes") && (!*sub || !strcmp(sub, "status"))) {
        if (authz_verb_in(a->verb, reads)) {
            return 1;
        }
        if (!authz_verb_in(a->verb, writes)) {
            return 0;
        }
        if (!*a->name && !strcmp(a->verb, "create")) {
            return 1; /* the name is checked on the body (authz_handle) */
        }
        if (*a->name && !strcmp(a->name, node)) {
            return 1;
        }
        auth_fmt(tmp, sizeof tmp,
                 "node \"%s\" is not allowed to modify node \"%s\"", node,
                 a->name);
        goto deny;
    }
    if (core && !strcmp(res, "pods")) {
        if (!*sub && authz_verb_in(a->verb, reads)) {
            return 1;
        }
        bool status_write =
            !strcmp(sub, "status") &&
            (!strcmp(a->verb, "update") || !strcmp(a->verb, "patch"));
        bool del = !*sub && !strcmp(a->verb, "delete");
        if (!status_write && !del) {
            return 0;
        }
        json_t *pod =
            *a->name ? authz_load(z, "", "pods", a->ns, a->name) : NULL;
        const char *pn = authz_pod_node(pod);
        bool own = pn && !strcmp(pn, node);
        json_decref(pod);
        if (own) {
            return 1;
        }
        auth_fmt(tmp, sizeof tmp,
                 "node \"%s\" can only %s pods with spec.nodeName set to "
                 "itself",
                 node, del ? "delete" : "update the status of");
        goto deny;
    }
    if (core && (!strcmp(res, "configmaps") || !strcmp(res, "secrets")) &&
        !*sub && authz_verb_in(a->verb, reads)) {
        bool cm = res[0] == 'c';
        if (*a->name && *a->ns &&
            authz_node_needs(z, node, a->ns, cm, a->name)) {
            return 1;
        }
        /* As the Node authorizer: no opinion, so RBAC may still allow;
         * the reason explains a denial. */
        if (reason && size) {
            auth_fmt(reason, size,
                     "no relationship found between node '%s' and this "
                     "object",
                     node);
        }
        return 0;
    }
    if (core && (!strcmp(res, "services") || !strcmp(res, "endpoints")) &&
        authz_verb_in(a->verb, reads)) {
        return 1;
    }
    if ((core && !strcmp(res, "events")) ||
        (!strcmp(a->group, "events.k8s.io") && !strcmp(res, "events"))) {
        static const char *const ev[] = {"create", "update", "patch", NULL};
        return authz_verb_in(a->verb, ev) ? 1 : 0;
    }
    if (!strcmp(a->group, "certificates.k8s.io") &&
        !strcmp(res, "certificatesigningrequests") && !*sub) {
        /* Kubernetes' system:node role: a node asks for and reads its
         * certificates (serving, client renewal). */
        static const char *const csr[] = {"create", "get", "list", "watch",
                                          NULL};
        return authz_verb_in(a->verb, csr) ? 1 : 0;
    }
    if (!strcmp(a->group, "coordination.k8s.io") && !strcmp(res, "leases")) {
        if (strcmp(a->ns, NODE_LEASE_NS) != 0) {
            return 0;
        }
        if ((*a->name && !strcmp(a->name, node)) ||
            (!*a->name && !strcmp(a->verb, "create"))) {
            return 1;
        }
        auth_fmt(tmp, sizeof tmp,
                 "can only access node lease with the same name as the "
                 "requesting node");
        goto deny;
    }
    return 0;
deny:
    if (reason && size) {
        auth_fmt(reason, size, "%s", tmp);
    }
    return -1;
}

bool
authz_allowed(struct authz *z, const struct authn_user *u,
              const struct authz_attrs *a, char *reason, size_t size)
{
    if (reason && size) {
        reason[0] = '\0';
    }
    if (authn_user_in_group(u, AUTHN_GROUP_MASTERS)) {
        return true;
    }
    int node = authz_node_decide(z, u, a, reason, size);
    if (node != 0) {
        return node > 0;
    }
    return rbac_allows(z->rbac, u, a);
}

void
authz_forbidden(const struct authn_user *u, const struct authz_attrs *a,
                const char *reason, struct dpf_error *e,
                struct kube_status_details *d)
{
    char what[1024];
    if (!a->resource_request) {
        auth_fmt(what, sizeof what, "User \"%s\" cannot %s path \"%s\"",
                 u->name, a->verb, a->path);
    } else {
        char res[300];
        auth_fmt(res, sizeof res, "%s%s%s", a->resource,
                 *a->subresource ? "/" : "", a->subresource);
        if (*a->ns) {
            auth_fmt(what, sizeof what,
                     "User \"%s\" cannot %s resource \"%s\" in API group "
                     "\"%s\" in the namespace \"%s\"",
                     u->name, a->verb, res, a->group, a->ns);
        } else {
            auth_fmt(what, sizeof what,
                     "User \"%s\" cannot %s resource \"%s\" in API group "
                     "\"%s\" at the cluster scope",
                     u->name, a->verb, res, a->group);
        }
    }
    char qr[300] = "";
    if (a->resource_request) {
        auth_fmt(qr, sizeof qr, "%s%s%s", a->resource, *a->group ? "." : "",
                 a->group);
    }
    const char *sep = reason && *reason ? ": " : "";
    const char *rs = reason ? reason : "";
    if (!*qr) {
        dpf_error_set(e, 403, "Forbidden", "forbidden: %s%s%s", what, sep, rs);
    } else if (*a->name) {
        dpf_error_set(e, 403, "Forbidden", "%s \"%s\" is forbidden: %s%s%s", qr,
                      a->name, what, sep, rs);
    } else {
        dpf_error_set(e, 403, "Forbidden", "%s is forbidden: %s%s%s", qr, what,
                      sep, rs);
    }
    kube_status_details_set(d, a->name, a->group, a->resource);
}

/* ------------------------------------------------------------------ */
/* answers                                                              */

static void
authz_respond_error(struct http_request *req, const struct dpf_error *e,
                    const struct kube_status_details *d)
{
    size_t len;
    char *body = kube_status_dump(e, d, &len);
    http_respond_take(req, e->code ? e->code : 500, "application/json", body,
                      len);
}

static void
authz_respond_simple(struct http_request *req, int code, const char *reason,
                     const char *msg)
{
    struct dpf_error e = {0};
    dpf_error_set(&e, code, reason, "%s", msg);
    authz_respond_error(req, &e, NULL);
}

static void
authz_respond_json(struct http_request *req, int code, json_t *doc)
{
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text) {
        authz_respond_simple(req, 500, "InternalError",
                             "the response could not be encoded");
        return;
    }
    http_respond_take(req, code, "application/json", text, strlen(text));
}

/* The request body as one object (JSON or YAML) or NULL. */
static json_t *
authz_body(struct http_request *req)
{
    size_t len;
    const char *body = http_request_body(req, &len);
    json_t *doc = NULL;
    struct dpf_error err = {0};
    if (yamljson_parse_one(body, len, &doc, &err) < 0) {
        return NULL;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

/* ------------------------------------------------------------------ */
/* reviews                                                              */

static const char *
authz_str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

/* Attributes of a review's spec; false when it names neither kind. */
static bool
authz_review_attrs(const json_t *spec, struct authz_attrs *a)
{
    const json_t *ra = json_object_get(spec, "resourceAttributes");
    const json_t *nra = json_object_get(spec, "nonResourceAttributes");
    if (json_is_object(ra)) {
        const char *sub = authz_str(ra, "subresource");
        authz_attrs_set(a, authz_str(ra, "verb"), authz_str(ra, "group"),
                        authz_str(ra, "resource"), sub,
                        authz_str(ra, "namespace"), authz_str(ra, "name"));
        a->version = authz_str(ra, "version");
        return true;
    }
    if (json_is_object(nra)) {
        authz_attrs_set_path(a, authz_str(nra, "verb"), authz_str(nra, "path"));
        return true;
    }
    return false;
}

/* The user a SubjectAccessReview asks about. */
static void
authz_review_user(const json_t *spec, struct authn_user *u)
{
    authn_user_init(u, authz_str(spec, "user"));
    auth_fmt(u->uid, sizeof u->uid, "%s", authz_str(spec, "uid"));
    size_t i;
    const json_t *g;
    json_array_foreach(json_object_get(spec, "groups"), i, g)
    {
        if (json_is_string(g)) {
            authn_user_add_group(u, json_string_value(g));
        }
    }
}

static json_t *
authz_user_info(const struct authn_user *u)
{
    json_t *groups = json_array();
    for (size_t i = 0; i < u->n_groups; i++) {
        json_array_append_new(groups, json_string(u->groups[i]));
    }
    json_t *ui = json_pack("{s:s,s:o}", "username", u->name, "groups", groups);
    if (*u->uid) {
        json_object_set_new(ui, "uid", json_string(u->uid));
    }
    if (*u->pod_name) {
        json_object_set_new(
            ui, "extra",
            json_pack("{s:[s],s:[s]}", "authentication.kubernetes.io/pod-name",
                      u->pod_name, "authentication.kubernetes.io/pod-uid",
                      u->pod_uid));
    }
    return ui;
}

/* Access reviews: SelfSubjectAccessReview, SubjectAccessReview,
 * LocalSubjectAccessReview. */
static void
authz_access_review(struct authz *z, struct http_request *req,
                    const struct authn_user *self, const char *plural,
                    const char *ns, json_t *obj)
{
    json_t *spec = json_object_get(obj, "spec");
    struct authz_attrs a;
    if (!json_is_object(spec) || !authz_review_attrs(spec, &a)) {
        authz_respond_simple(req, 422, "Invalid",
                             "spec: Invalid value: exactly one of "
                             "nonResourceAttributes or resourceAttributes "
                             "must be specified");
        return;
    }
    struct authn_user who;
    const struct authn_user *u = self;
    if (strcmp(plural, "selfsubjectaccessreviews") != 0) {
        if (!*authz_str(spec, "user") &&
            json_array_size(json_object_get(spec, "groups")) == 0) {
            authz_respond_simple(req, 422, "Invalid",
                                 "spec.user: Invalid value: \"\": at least "
                                 "one of user or group must be specified");
            return;
        }
        authz_review_user(spec, &who);
        u = &who;
    }
    if (ns && a.resource_request && strcmp(a.ns, ns) != 0) {
        authz_respond_simple(req, 422, "Invalid",
                             "spec.resourceAttributes.namespace: Invalid "
                             "value: must match metadata.namespace");
        return;
    }
    char reason[512];
    bool ok = authz_allowed(z, u, &a, reason, sizeof reason);
    json_t *status = json_pack("{s:b}", "allowed", ok);
    if (ok && authn_user_in_group(u, AUTHN_GROUP_MASTERS)) {
        json_object_set_new(status, "reason",
                            json_string("user is in system:masters"));
    } else if (*reason) {
        json_object_set_new(status, "reason", json_string(reason));
    }
    json_object_set_new(obj, "status", status);
    authz_respond_json(req, 201, obj);
}

/* SelfSubjectRulesReview: what the user may do in spec.namespace. */
static void
authz_rules_review(struct authz *z, struct http_request *req,
                   const struct authn_user *u, json_t *obj)
{
    const char *ns = authz_str(json_object_get(obj, "spec"), "namespace");
    json_t *rules;
    if (authn_user_in_group(u, AUTHN_GROUP_MASTERS)) {
        rules = json_pack("[{s:[s],s:[s],s:[s]},{s:[s],s:[s]}]", "verbs", "*",
                          "apiGroups", "*", "resources", "*", "verbs", "*",
                          "nonResourceURLs", "*");
    } else {
        rules = rbac_user_rules(z->rbac, u, ns);
    }
    json_t *res = json_array(), *nonres = json_array();
    size_t i;
    json_t *rule;
    json_array_foreach(rules, i, rule)
    {
        if (json_array_size(json_object_get(rule, "nonResourceURLs"))) {
            json_t *r = json_deep_copy(rule);
            json_object_del(r, "apiGroups");
            json_object_del(r, "resources");
            json_object_del(r, "resourceNames");
            json_array_append_new(nonres, r);
        } else {
            json_array_append(res, rule);
        }
    }
    json_decref(rules);
    json_object_set_new(obj, "status",
                        json_pack("{s:o,s:o,s:b}", "resourceRules", res,
                                  "nonResourceRules", nonres, "incomplete", 0));
    authz_respond_json(req, 201, obj);
}

static void
authz_review(struct authz *z, struct http_request *req,
             const struct schema_kind *k, const char *ns, const char *name)
{
    if (strcmp(http_request_method(req), "POST") != 0 || name) {
        http_response_header(req, "Allow", "POST");
        authz_respond_simple(req, 405, "MethodNotAllowed",
                             "the server does not allow this method on the "
                             "requested resource");
        return;
    }
    json_t *obj = authz_body(req);
    if (!obj) {
        authz_respond_simple(req, 400, "BadRequest",
                             "the request body is not a JSON or YAML "
                             "object");
        return;
    }
    struct authn_user u;
    if (authn_request(z->authn, req, &u) < 0) {
        json_decref(obj);
        authz_respond_simple(req, 401, "Unauthorized", "Unauthorized");
        return;
    }
    json_object_set_new(obj, "apiVersion", json_string(schema_api_version(k)));
    json_object_set_new(obj, "kind", json_string(k->kind));
    json_t *md = json_object_get(obj, "metadata");
    if (!json_is_object(md)) {
        md = json_object();
        json_object_set_new(obj, "metadata", md);
    }
    json_object_set_new(md, "creationTimestamp", json_null());
    if (ns) {
        json_object_set_new(md, "namespace", json_string(ns));
    }
    if (!strcmp(k->plural, "selfsubjectrulesreviews")) {
        authz_rules_review(z, req, &u, obj);
    } else if (!strcmp(k->plural, "selfsubjectreviews")) {
        json_object_set_new(
            obj, "status", json_pack("{s:o}", "userInfo", authz_user_info(&u)));
        authz_respond_json(req, 201, obj);
    } else if (!strcmp(k->plural, "tokenreviews")) {
        authz_respond_simple(req, 404, "NotFound",
                             "the server could not find the requested "
                             "resource");
    } else {
        authz_access_review(z, req, &u, k->plural, ns, obj);
    }
    json_decref(obj);
}

/* ------------------------------------------------------------------ */
/* escalation checks                                                    */

/* Kubernetes' CompactString of one rule into b. */
static void
authz_rule_compact(struct dbuf *b, const json_t *rule)
{
    static const char *const parts[][2] = {
        {"apiGroups", "APIGroups"},
        {"resources", "Resources"},
        {"nonResourceURLs", "NonResourceURLs"},
        {"resourceNames", "ResourceNames"},
        {"verbs", "Verbs"},
    };
    bool first = true;
    dbuf_puts(b, "{");
    for (size_t p = 0; p < ARRAY_SIZE(parts); p++) {
        const json_t *arr = json_object_get(rule, parts[p][0]);
        if (!json_array_size(arr)) {
            continue;
        }
        dbuf_printf(b, "%s%s:[", first ? "" : ", ", parts[p][1]);
        first = false;
        size_t i;
        const json_t *v;
        json_array_foreach(arr, i, v)
        {
            dbuf_printf(b, "%s\"%s\"", i ? " " : "",
                        json_string_value(v) ? json_string_value(v) : "");
        }
        dbuf_puts(b, "]");
    }
    dbuf_puts(b, "}");
}

/* 403 for an attempt to grant what the user does not hold. */
static void
authz_respond_escalation(struct http_request *req, const struct authn_user *u,
                         const struct schema_kind *k, const char *name,
                         const json_t *missing)
{
    struct dbuf b;
    dbuf_init(&b);
    dbuf_printf(&b, "%s.%s \"%s\" is forbidden: user \"%s\" (groups=[",
                k->plural, k->group, name, u->name);
    for (size_t i = 0; i < u->n_groups; i++) {
        dbuf_printf(&b, "%s\"%s\"", i ? " " : "", u->groups[i]);
    }
    dbuf_puts(&b, "]) is attempting to grant RBAC permissions not currently "
                  "held:");
    size_t i;
    const json_t *rule;
    json_array_foreach(missing, i, rule)
    {
        dbuf_puts(&b, "\n");
        authz_rule_compact(&b, rule);
    }
    struct dpf_error e = {0};
    dpf_error_set(&e, 403, "Forbidden", "%s", "");
    utf8_copy(e.message, sizeof e.message, b.data);
    dbuf_free(&b);
    struct kube_status_details d = {0};
    kube_status_details_set(&d, name, k->group, k->plural);
    authz_respond_error(req, &e, &d);
}

static void
authz_respond_forbidden_msg(struct http_request *req,
                            const struct schema_kind *k, const char *name,
                            const char *why)
{
    struct dpf_error e = {0};
    dpf_error_set(&e, 403, "Forbidden", "%s.%s \"%s\" is forbidden: %s",
                  k->plural, k->group, name, why);
    struct kube_status_details d = {0};
    kube_status_details_set(&d, name, k->group, k->plural);
    authz_respond_error(req, &e, &d);
}

/* The stored object k/ns/name (for a PATCH, whose result is not known
 * before the API server computes it), or NULL. */
static json_t *
authz_stored(struct authz *z, const struct schema_kind *k, const char *ns,
             const char *name)
{
    char *key =
        xasprintf("/%s/%s/%s/%s", k->group, k->plural, ns ? ns : "", name);
    struct store_kv kv = {0};
    json_t *obj = NULL;
    if (store_get(z->store, key, &kv, NULL) == 0) {
        obj = json_loadb(kv.value, kv.len, 0, NULL);
        store_kv_free(&kv);
    }
    free(key);
    return obj;
}

/* Writes of roles and bindings: true when answered (refused). */
static bool
authz_rbac_write(struct authz *z, struct http_request *req,
                 const struct schema_kind *k, const char *ns, const char *name,
                 const char *sub)
{
    const char *method = http_request_method(req);
    bool patch = !strcmp(method, "PATCH");
    if (sub ||
        (strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0 && !patch)) {
        return false;
    }
    struct authn_user u;
    if (authn_request(z->authn, req, &u) < 0 ||
        authn_user_in_group(&u, AUTHN_GROUP_MASTERS)) {
        return false;
    }
    bool is_role =
        !strcmp(k->plural, "roles") || !strcmp(k->plural, "clusterroles");
    json_t *obj = patch ? NULL : authz_body(req);
    if (!patch && !obj) {
        return false; /* the API server answers the bad body */
    }
    const char *oname = name;
    if (!oname) {
        oname = json_string_value(
            json_object_get(json_object_get(obj, "metadata"), "name"));
    }
    if (!oname) {
        json_decref(obj);
        return false; /* the API server answers the missing name */
    }
    const char *scope = k->namespaced && ns ? ns : "";
    bool answered = false;
    json_t *owner = NULL, *missing = NULL, *rules = NULL;
    struct authz_attrs a;
    if (is_role) {
        authz_attrs_set(&a, "escalate", RBAC_GROUP, k->plural, NULL, scope,
                        oname);
        if (authz_allowed(z, &u, &a, NULL, 0)) {
            goto out;
        }
        answered = true;
        if (patch) {
            authz_respond_forbidden_msg(req, k, oname,
                                        "patching a role needs the "
                                        "escalate permission on it "
                                        "(create or update it instead, "
                                        "with rules you hold)");
            goto out;
        }
        if (json_object_get(obj, "aggregationRule")) {
            authz_respond_forbidden_msg(req, k, oname,
                                        "must have cluster-admin "
                                        "privileges to use the "
                                        "aggregationRule");
            goto out;
        }
        rules = json_incref(json_object_get(obj, "rules"));
    } else {
        json_t *stored = patch ? authz_stored(z, k, ns, oname) : NULL;
        const json_t *ref = json_object_get(patch ? stored : obj, "roleRef");
        const char *rkind = json_string_value(json_object_get(ref, "kind"));
        const char *rname = json_string_value(json_object_get(ref, "name"));
        if (!rkind || !rname) {
            json_decref(stored);
            goto out; /* the API server answers */
        }
        bool cluster = !strcmp(rkind, "ClusterRole");
        authz_attrs_set(&a, "bind", RBAC_GROUP,
                        cluster ? "clusterroles" : "roles", NULL, scope, rname);
        bool may_bind = authz_allowed(z, &u, &a, NULL, 0);
        if (!may_bind) {
            rules = rbac_role_rules(z->rbac, rkind, scope, rname);
            if (!rules) {
                answered = true;
                struct dpf_error e = {0};
                dpf_error_set(&e, 404, "NotFound", "%s.%s \"%s\" not found",
                              cluster ? "clusterroles" : "roles", RBAC_GROUP,
                              rname);
                struct kube_status_details d = {0};
                kube_status_details_set(&d, rname, RBAC_GROUP,
                                        cluster ? "clusterroles" : "roles");
                authz_respond_error(req, &e, &d);
            }
        }
        json_decref(stored);
        if (may_bind || answered) {
            goto out;
        }
        answered = true;
    }
    owner = rbac_user_rules(z->rbac, &u, scope);
    if (!rules) {
        rules = json_array();
    }
    if (rbac_rules_cover(owner, rules, &missing)) {
        answered = false;
    } else {
        log_info("refused an RBAC escalation", "user=%s resource=%s name=%s",
                 u.name, k->plural, oname);
        authz_respond_escalation(req, &u, k, oname, missing);
    }
out:
    json_decref(rules);
    json_decref(owner);
    json_decref(missing);
    json_decref(obj);
    return answered;
}

/* A node may create only its own Node and Lease: the name is in the
 * body, which the gate has not read. true when answered (refused). */
static bool
authz_node_create(struct authz *z, struct http_request *req,
                  const struct schema_kind *k, const char *ns)
{
    struct authn_user u;
    if (authn_request(z->authn, req, &u) < 0 ||
        strncmp(u.name, AUTHN_NODE_PREFIX, strlen(AUTHN_NODE_PREFIX)) != 0 ||
        !authn_user_in_group(&u, AUTHN_GROUP_NODES) ||
        authn_user_in_group(&u, AUTHN_GROUP_MASTERS)) {
        return false;
    }
    const char *node = u.name + strlen(AUTHN_NODE_PREFIX);
    json_t *obj = authz_body(req);
    const char *name = json_string_value(
        json_object_get(json_object_get(obj, "metadata"), "name"));
    if (!name || !strcmp(name, node)) {
        json_decref(obj);
        return false;
    }
    struct authz_attrs a;
    authz_attrs_set(&a, "create", k->group, k->plural, NULL, ns ? ns : "",
                    name);
    char reason[512];
    if (!strcmp(k->plural, "nodes")) {
        auth_fmt(reason, sizeof reason,
                 "node \"%s\" is not allowed to modify node \"%s\"", node,
                 name);
    } else {
        auth_fmt(reason, sizeof reason,
                 "can only access node lease with the same name as the "
                 "requesting node");
    }
    struct dpf_error e = {0};
    struct kube_status_details d = {0};
    authz_forbidden(&u, &a, reason, &e, &d);
    authz_respond_error(req, &e, &d);
    json_decref(obj);
    return true;
}

bool
authz_handle(void *arg, struct http_request *req, const struct schema_kind *k,
             const char *ns, const char *name, const char *sub)
{
    struct authz *z = arg;
    if (!strcmp(k->group, "authorization.k8s.io") ||
        !strcmp(k->group, "authentication.k8s.io")) {
        if (sub) {
            return false;
        }
        authz_review(z, req, k, ns, name);
        return true;
    }
    if (!strcmp(k->group, RBAC_GROUP)) {
        return authz_rbac_write(z, req, k, ns, name, sub);
    }
    if (!name && !strcmp(http_request_method(req), "POST") &&
        ((!strcmp(k->group, "") && !strcmp(k->plural, "nodes")) ||
         (!strcmp(k->group, "coordination.k8s.io") &&
          !strcmp(k->plural, "leases") && ns && !strcmp(ns, NODE_LEASE_NS)))) {
        return authz_node_create(z, req, k, ns);
    }
    return false;
}
