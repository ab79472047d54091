/* authn: who sent a request (Kubernetes authentication).
 *
 * A request is authenticated, in this order, by
 *   - a client certificate verified against the server's CA (the TLS
 *     layer checked it): the subject's CN is the user name and every O a
 *     group, as kube-apiserver's x509 authenticator does;
 *   - `Authorization: Bearer <token>`: the admin token (user "dpf-admin"
 *     in group system:masters, compared in constant time), or a service
 *     account token issued by this server (a JWT signed with its service
 *     account key, see sa.h), whose user is
 *     system:serviceaccount:<namespace>:<name> in the groups
 *     system:serviceaccounts and system:serviceaccounts:<namespace>;
 *     or a bootstrap token "<id>.<secret>" ([a-z0-9]{6}.[a-z0-9]{16})
 *     whose Secret kube-system/bootstrap-token-<id> (type
 *     bootstrap.kubernetes.io/token) has that token-secret (compared in
 *     constant time), usage-bootstrap-authentication "true" and an
 *     expiration not passed: user system:bootstrap:<id> in
 *     system:bootstrappers and the auth-extra-groups that start with
 *     "system:bootstrappers:" (others are ignored, as Kubernetes does).
 *     The Secret is read from the store on each use, so a deleted or
 *     edited Secret takes effect at once; no token is ever logged.
 * Every authenticated user is also in system:authenticated. A request
 * without any credential is anonymous (system:anonymous, group
 * system:unauthenticated); a credential that does not verify is refused
 * (401), never downgraded to anonymous.
 *
 * Threads: authn_request() is thread-safe; the struct authn is immutable
 * after authn_create() except for what the token verifier it borrows
 * does under its own lock. */
#ifndef DPF_SERVER_AUTHN_H
#define DPF_SERVER_AUTHN_H

#include <stdbool.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct http_request;
struct store;
struct sa_tokens;

#define AUTHN_NAME_MAX 256
#define AUTHN_GROUPS_MAX 20

#define AUTHN_ADMIN_USER "dpf-admin"
#define AUTHN_GROUP_MASTERS "system:masters"
#define AUTHN_GROUP_AUTHENTICATED "system:authenticated"
#define AUTHN_GROUP_UNAUTHENTICATED "system:unauthenticated"
#define AUTHN_USER_ANONYMOUS "system:anonymous"
#define AUTHN_GROUP_NODES "system:nodes"
#define AUTHN_NODE_PREFIX "system:node:"
#define AUTHN_SA_PREFIX "system:serviceaccount:"
#define AUTHN_BOOTSTRAP_PREFIX "system:bootstrap:"
#define AUTHN_GROUP_BOOTSTRAPPERS "system:bootstrappers"
#define AUTHN_BOOTSTRAP_ID_LEN 6
#define AUTHN_BOOTSTRAP_SECRET_LEN 16

/* An authenticated identity (Kubernetes user.Info). Plain data. */
struct authn_user {
    char name[AUTHN_NAME_MAX];
    char uid[64];
    size_t n_groups;
    char groups[AUTHN_GROUPS_MAX][AUTHN_NAME_MAX];
    /* Service account tokens bound to a pod: its name and uid ("" when
     * unbound); Kubernetes puts them in the user's extra. */
    char pod_name[AUTHN_NAME_MAX];
    char pod_uid[64];
};

struct authn;

/* admin_token: the admin bearer token (copied; NULL = none). sa: the
 * service-account token verifier (borrowed, may be NULL). */
struct authn *authn_create(const char *admin_token, struct sa_tokens *sa);
void authn_destroy(struct authn *a);
/* Where bootstrap-token Secrets are read (borrowed; NULL = no bootstrap
 * tokens). Call before the server takes requests. */
void authn_set_store(struct authn *a, struct store *st);

/* Who sent req: 1 with *u filled for a verified credential, 0 with *u
 * the anonymous user when the request carries none, -EACCES when it
 * carries one that does not verify (the caller answers 401). */
int authn_request(struct authn *a, const struct http_request *req,
                  struct authn_user *u);

/* Is s (len bytes) of the bootstrap token form [a-z0-9]{6}.[a-z0-9]{16}? */
bool authn_bootstrap_token_form(const char *s, size_t len);
/* Check the token given (len bytes) against a bootstrap-token Secret
 * (stored form: data base64) at Unix time now: 1 with *u filled, 0 when it
 * does not authenticate. Pure: the unit tests call it. */
int authn_bootstrap_check(const json_t *secret, const char *given, size_t glen,
                          int64_t now, struct authn_user *u);
/* RFC 3339 text -> Unix seconds, -1 when malformed. */
int64_t authn_parse_rfc3339(const char *s);

/* Is the user in group g? */
bool authn_user_in_group(const struct authn_user *u, const char *g);
/* Add group g (ignored past AUTHN_GROUPS_MAX or when already there). */
void authn_user_add_group(struct authn_user *u, const char *g);
/* snprintf that cuts silently: names quoted in messages and keys may be
 * long, and a cut one is fine where this is used. */
void auth_fmt(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Set the name (cut at AUTHN_NAME_MAX - 1 bytes) and clear the rest. */
void authn_user_init(struct authn_user *u, const char *name);

#endif
