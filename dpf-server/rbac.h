/* rbac: Kubernetes RBAC (rbac.authorization.k8s.io/v1) in dpf-server.
 *
 * An in-memory index of every Role, ClusterRole, RoleBinding and
 * ClusterRoleBinding, fed by the store's event hook (so a binding written
 * is in force before its create is acknowledged) and, at start, by one
 * list of the store. Bindings are indexed by subject (user name, group
 * name; a ServiceAccount subject is the user
 * system:serviceaccount:<ns>:<name>), so a decision looks only at the
 * bindings of the request's user and groups, never at all bindings.
 *
 * Semantics as kube-apiserver's RBAC authorizer: a ClusterRoleBinding
 * grants its ClusterRole's rules everywhere, a RoleBinding grants its Role
 * or ClusterRole's rules in its own namespace; a rule matches when its
 * verbs, apiGroups and resources (`*`, `res`, `res/sub`, `* /sub`) hold
 * the request's, resourceNames (when set) its name, or for requests
 * outside /api and /apis its nonResourceURLs (exact or a `prefix*`).
 * RBAC only allows; what nothing allows is denied by the caller.
 *
 * ClusterRole aggregation: a ClusterRole with an aggregationRule gets the
 * rules of every ClusterRole whose labels match one of its selectors,
 * written into its `rules` by a worker thread (Kubernetes'
 * clusterrole-aggregation controller) through the write callback.
 *
 * The default policy (rbac_bootstrap_objects): cluster-admin, admin, edit,
 * view (aggregated through the rbac.authorization.k8s.io/aggregate-to-*
 * labels), the roles they aggregate, system:basic-user, system:discovery,
 * system:public-info-viewer, system:monitoring (/metrics and the health
 * paths, bound to the group system:monitoring), and their bindings
 * (cluster-admin to the group system:masters).
 *
 * Threads: everything is thread-safe (one read-write lock; decisions take
 * it shared). rbac_store_event runs under the store's write lock and only
 * parses the object and updates the index. */
#ifndef DPF_SERVER_RBAC_H
#define DPF_SERVER_RBAC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dpf-server/authn.h"
#include "lib/base/error.h"
#include "lib/store/store.h"

/* What a request asks (Kubernetes authorizer.Attributes / RequestInfo).
 * Strings are static or point into `buf`. */
struct authz_attrs {
    const char *verb;        /* get list watch create update patch delete
                                deletecollection, or escalate/bind/...;
                                for non-resource requests the lower-case
                                HTTP method */
    bool resource_request;   /* under /api/<v>/ or /apis/<g>/<v>/ */
    const char *group;       /* "" = core */
    const char *version;     /* "v1" */
    const char *resource;    /* plural, "" when none */
    const char *subresource; /* "" when none */
    const char *ns;          /* "" = cluster scope / all namespaces */
    const char *name;        /* "" when none */
    const char *path;        /* the request path */
    char *buf;               /* owned copy of the path the above point at */
};

/* Fill a from an HTTP request line as kube-apiserver's RequestInfo
 * resolver does (verb from the method, list/watch/deletecollection for
 * collections, the name a list's fieldSelector pins). watch: the
 * request's watch parameter is true; field_selector may be NULL. Free
 * with authz_attrs_free. */
void authz_attrs_from_request(struct authz_attrs *a, const char *method,
                              const char *path, bool watch,
                              const char *field_selector);
/* Fill a for a resource request given field by field (reviews, internal
 * checks); every string may be NULL (= ""). */
void authz_attrs_set(struct authz_attrs *a, const char *verb, const char *group,
                     const char *resource, const char *subresource,
                     const char *ns, const char *name);
/* Fill a for a non-resource request. */
void authz_attrs_set_path(struct authz_attrs *a, const char *verb,
                          const char *path);
void authz_attrs_free(struct authz_attrs *a);

struct rbac;

/* Write callback of the aggregation worker: replace the rules of
 * ClusterRole `name` with `rules` (borrowed). 0 or -errno. */
typedef int (*rbac_write_rules_fn)(void *arg, const char *name,
                                   const json_t *rules);

struct rbac *rbac_create(void);
/* Start the aggregation worker (write is called from its thread). */
int rbac_start(struct rbac *r, rbac_write_rules_fn write, void *arg);
/* Stop the worker (idempotent; decisions keep working). */
void rbac_stop(struct rbac *r);
/* Stop the worker and free. NULL is fine. */
void rbac_destroy(struct rbac *r);

/* The store event hook part (see store_event_fn); ignores other keys. */
void rbac_store_event(struct rbac *r, enum store_event_type type,
                      const char *key, const char *value, size_t len);
/* Fill the index from the store (at start). 0 or -errno with err. */
int rbac_load(struct rbac *r, struct store *st, struct dpf_error *err);

/* Does RBAC allow the request? */
bool rbac_allows(struct rbac *r, const struct authn_user *u,
                 const struct authz_attrs *a);
/* Every rule the user holds in namespace ns ("" = cluster-wide only):
 * a new JSON array of PolicyRule objects. */
json_t *rbac_user_rules(struct rbac *r, const struct authn_user *u,
                        const char *ns);
/* The rules of the role a binding refers to (kind "Role" in ns, or
 * "ClusterRole"): a new reference, or NULL when there is no such role. */
json_t *rbac_role_rules(struct rbac *r, const char *kind, const char *ns,
                        const char *name);
/* Do the owner's rules cover every permission of the servant rules
 * (Kubernetes' validation.Covers)? When not and missing is not NULL,
 * *missing receives a new array of the uncovered single-permission
 * rules. */
bool rbac_rules_cover(const json_t *owner, const json_t *servant,
                      json_t **missing);
/* Does one PolicyRule allow the request? */
bool rbac_rule_allows(const json_t *rule, const struct authz_attrs *a);

/* The default roles and bindings (a new array of objects with apiVersion,
 * kind and metadata), created at start when missing. */
json_t *rbac_bootstrap_objects(void);

#endif
