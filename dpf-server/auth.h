/* auth: dpf-server's authentication and authorization, put together.
 *
 * Owns the authenticator (authn.h), the RBAC index and its aggregation
 * worker (rbac.h), the authorizer and its API extension (authz.h) and
 * the service-account machinery (sa.h), the certificate API and
 * cluster-info (certs.h), and wires them to the API server
 * and the HTTP gate:
 *
 *   auth_create()   before the HTTP server starts
 *   auth_configure() fills the apiserver_config hooks (store events,
 *                   the extension serving reviews and tokens)
 *   auth_start()    after apiserver_create(): loads the RBAC index,
 *                   creates the default policy and service accounts that
 *                   are missing, starts the workers
 *   auth_gate()     per request, when its headers are in: 401 for a bad
 *                   credential or none (except the open health and
 *                   version paths), 403 for what authorization denies
 *   auth_destroy()  after the HTTP server and before the API server
 *
 * Threads: auth_gate() runs on the HTTP worker threads and is
 * thread-safe. */
#ifndef DPF_SERVER_AUTH_H
#define DPF_SERVER_AUTH_H

#include <stdbool.h>

#include "dpf-server/apiserver.h"
#include "lib/base/error.h"
#include "lib/store/store.h"

struct auth;
struct http_request;

/* admin_token (copied) may be NULL; sa_key_path: the PEM private key
 * that signs service-account tokens (created when missing; NULL = no
 * service-account tokens). NULL + err on failure. */
struct auth *auth_create(const char *admin_token, const char *sa_key_path,
                         struct store *store, struct dpf_error *err);
void auth_configure(struct auth *a, struct apiserver_config *ac);
/* The CA the CSR signers use and the server URL kube-public/cluster-info
 * advertises (certs.h); before auth_start(). */
void auth_set_ca(struct auth *a, const char *ca_cert_path,
                 const char *ca_key_path, const char *server_url);
int auth_start(struct auth *a, struct apiserver *api, struct dpf_error *err);
/* Stop the workers (call while the API server still exists). */
void auth_stop(struct auth *a);
void auth_destroy(struct auth *a);

/* The gate's decision: true to go on; false after answering 401/403. */
bool auth_gate(struct auth *a, struct http_request *req, bool open_path);

#endif
