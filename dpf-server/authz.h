/* authz: may this user do this? (Kubernetes authorization in dpf-server)
 *
 * The authorizers run in kube-apiserver's order: members of
 * system:masters may do everything; the Node authorizer decides what a
 * node's identity (system:node:<name> in system:nodes) may do with the
 * objects of its own node and its pods; RBAC (rbac.h) allows what the
 * user's bindings grant. A request nothing allows is 403 Forbidden with
 * kube-apiserver's message:
 *   pods "x" is forbidden: User "alice" cannot get resource "pods" in API
 *   group "" in the namespace "default"
 *
 * authz_handle() is the API server's extension for what authorization
 * serves itself: the review kinds (SelfSubjectAccessReview,
 * SubjectAccessReview, LocalSubjectAccessReview, SelfSubjectRulesReview,
 * SelfSubjectReview), and the escalation checks on writes of roles and
 * bindings (a user may only grant what it holds, unless it may `escalate`
 * a role or `bind` the role a binding refers to).
 *
 * Threads: all functions are thread-safe. */
#ifndef DPF_SERVER_AUTHZ_H
#define DPF_SERVER_AUTHZ_H

#include <stdbool.h>
#include <stddef.h>

#include "api/schema.h"
#include "dpf-server/authn.h"
#include "dpf-server/rbac.h"
#include "lib/base/error.h"
#include "lib/kube/kube-status.h"
#include "lib/store/store.h"

struct http_request;
struct authz;

/* rbac and store are borrowed; authn (borrowed) identifies the user of a
 * review request. */
struct authz *authz_create(struct rbac *rbac, struct authn *authn,
                           struct store *store);
void authz_destroy(struct authz *z);

/* The decision for one request. On a denial, reason (size bytes, may be
 * NULL) receives what the Node authorizer says, or "". */
bool authz_allowed(struct authz *z, const struct authn_user *u,
                   const struct authz_attrs *a, char *reason, size_t size);

/* The 403 Status of a denied request (message and details as
 * kube-apiserver's). */
void authz_forbidden(const struct authn_user *u, const struct authz_attrs *a,
                     const char *reason, struct dpf_error *e,
                     struct kube_status_details *d);

/* The API server's extension hook (see apiserver.h): answers the
 * request and returns true, or returns false to let the API server
 * serve it. */
bool authz_handle(void *z, struct http_request *req,
                  const struct schema_kind *k, const char *ns, const char *name,
                  const char *sub);

#endif
