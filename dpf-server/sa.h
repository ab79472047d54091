/* sa: service accounts in dpf-server: bound tokens and the `default`
 * account of every namespace.
 *
 * Tokens are what kube-apiserver issues for
 * serviceaccounts/<name>/token (TokenRequest, `kubectl create token`):
 * JWTs (JWS compact form, RS256) signed with the server's service-account
 * key (<data-dir>/pki/sa.key, RSA 2048, created on first start, 0600),
 * carrying iss, sub (system:serviceaccount:<ns>:<name>), aud, iat, nbf,
 * exp, jti and the `kubernetes.io` claim naming the namespace, the service
 * account (name, uid) and, when the token is bound to one, the Pod or
 * Secret (name, uid). The server accepts a token only while its
 * signature, issuer, audience (the API server's: the issuer) and times
 * hold and the service account -- and the object it is bound to -- still
 * exist with the uids the token names: deleting either revokes it.
 *
 * Written on OpenSSL's EVP signatures rather than with a JWT library:
 * the JWS compact form is three base64url parts around one RS256
 * signature, and the claims are plain jansson; Debian's libjwt would add
 * a dependency (and a PEM parse per call) for those few lines.
 *
 * The default-account worker creates `default` in every namespace:
 * the existing ones at start, new ones as they appear, and again when it
 * is deleted (Kubernetes' serviceaccounts controller).
 *
 * Threads: everything is thread-safe; sa_store_event runs under the
 * store's write lock and only queues work. */
#ifndef DPF_SERVER_SA_H
#define DPF_SERVER_SA_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "dpf-server/apiserver.h"
#include "dpf-server/authn.h"
#include "lib/base/error.h"
#include "lib/store/store.h"

struct http_request;
struct sa_tokens;

/* The issuer, and the audience the API server accepts. */
#define SA_ISSUER "https://kubernetes.default.svc.cluster.local"

/* Load the signing key at key_path or create it. NULL + err. */
struct sa_tokens *sa_tokens_create(const char *key_path, struct store *st,
                                   struct dpf_error *err);
/* Start the default-account worker over api (ensures every existing
 * namespace first). */
int sa_tokens_start(struct sa_tokens *sa, struct apiserver *api,
                    struct dpf_error *err);
void sa_tokens_stop(struct sa_tokens *sa);
void sa_tokens_destroy(struct sa_tokens *sa);

/* The store event hook part: namespaces added and default accounts
 * deleted queue work for the worker. */
void sa_store_event(struct sa_tokens *sa, enum store_event_type type,
                    const char *key);

/* A JWT this server issued, still valid: 1 with *u filled, 0 when tok
 * is not a JWT at all (another authenticator's), -EACCES when it is one
 * that does not verify. */
int sa_tokens_authenticate(struct sa_tokens *sa, const char *tok, size_t len,
                           struct authn_user *u);

/* POST serviceaccounts/<name>/token (TokenRequest): answers req. */
void sa_handle_token_request(struct sa_tokens *sa, struct http_request *req,
                             const char *ns, const char *name);
/* POST tokenreviews (TokenReview): answers req. */
void sa_handle_token_review(struct sa_tokens *sa, struct authn *authn,
                            struct http_request *req);

#endif
