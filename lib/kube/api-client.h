/* api-client: a blocking Kubernetes API client over libcurl.
 *
 * One struct api_client holds one curl easy handle (HTTP keep-alive: the
 * connection is reused across requests) and a per-request timeout. It
 * serves dpfctl and the tests; controllers use the event-loop client
 * (kube-rest.h). Both share everything but the transfer itself:
 *   lib/kube/kubeconfig-curl.h  connection and credentials from a
 *                         kubeconfig (TLS, tls-server-name, token, basic
 *                         auth, client certificate, exec plugin with its
 *                         cached credential, the refusals stricter than
 *                         client-go), and transport errors;
 *   lib/kube/kube-rest.h  struct kube_request / kube_response, paths and
 *                         queries (kube_path(), kube_list_query(),
 *                         kube_watch_query()), reply decoding
 *                         (kube_response_json());
 *   lib/kube/kube-status.h  a non-2xx reply -> struct dpf_error + errno;
 *   lib/kube/kube-watch.h   the watch stream parser and event types.
 *
 * Layers here:
 *   api_client_request()  one HTTP exchange -> status + body;
 *   api_client_get/list/post/put/patch/delete()  object verbs on a
 *                         resource given as a struct kube_gvr (api/schema.h's
 *                         SCHEMA_GVR(k) makes one from a kind);
 *   api_client_watch()    a watch stream, one callback per event,
 *                         resumable from the last resourceVersion.
 *
 * Errors: functions return 0 (or a documented positive value) on success
 * and a negative errno on failure, with err filled: for an HTTP error the
 * server's Status (code, reason, message, causes); for a failure on the
 * client side (connection refused, TLS, client deadline) code 503 or 504
 * and reason KUBE_REASON_CLIENT with curl's message; when the exec plugin
 * fails, code 401 and reason KUBE_REASON_CLIENT with the plugin's error
 * and -EACCES whatever the cause. Errno mapping: kube-status.h.
 *
 * Credentials: kubeconfig-curl.h. The plugin runs (in the calling thread)
 * before the first request, again once the credential's
 * expirationTimestamp has passed, and again after a 401 (the request is
 * then repeated once).
 *
 * Memory: json_t results are new references owned by the caller; struct
 * kube_response bodies are released with kube_response_free().
 *
 * Threads: a client is not thread-safe. Use one client per thread (they
 * are cheap: create one from the same struct kubeconfig in each thread).
 * A watch occupies its client until it returns. */
#ifndef DPF_API_CLIENT_H
#define DPF_API_CLIENT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/error.h"
#include "lib/kube/kube-rest.h"
#include "lib/kube/kube-status.h"
#include "lib/kube/kube-watch.h"
#include "lib/kube/kubeconfig.h"

/* The Accept header kubectl sends for table output (get). */
#define API_ACCEPT_TABLE                                                \
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=" \
    "Table;v=v1beta1;g=meta.k8s.io,application/json"

struct api_client;

/* Create a client for a resolved kubeconfig (copied: kc may be freed
 * afterwards). NULL with err set if the TLS material is unusable, or the
 * credentials would travel in clear text (see above). Nothing is sent and
 * no plugin runs here. */
struct api_client *api_client_create(const struct kubeconfig *kc,
                                     struct dpf_error *err);
/* Close the connection and free the client. NULL is fine. */
void api_client_destroy(struct api_client *c);
/* Per-request timeout in milliseconds for non-watch requests (0 = none;
 * the default is 0). */
void api_client_set_timeout(struct api_client *c, long timeout_ms);
/* User-Agent header (default "dpf/<version>"). The string is copied. */
void api_client_set_user_agent(struct api_client *c, const char *ua);
/* How the exec credential plugin is run (timeout, stdin, where its
 * stderr goes); copied. The FILE must outlive the client. */
void api_client_set_exec_options(struct api_client *c,
                                 const struct kubeconfig_exec_options *o);
/* How many times the exec plugin has run successfully. */
int api_client_exec_runs(const struct api_client *c);
/* The server URL the client talks to ("https://127.0.0.1:6443"). */
const char *api_client_server(const struct api_client *c);

/* Send one request and read the whole reply. req->timeout_ms 0 means the
 * client's timeout. 0 when a reply arrived (whatever its status: check
 * resp->status), negative errno on a transport or plugin error (err
 * filled). resp must be freed with kube_response_free() in both cases. */
int api_client_request(struct api_client *c, const struct kube_request *req,
                       struct kube_response *resp, struct dpf_error *err);

/* Replies are decoded with kube_status_to_error() (lib/kube/kube-status.h);
 * paths are built with kube_path() and kube_escape() (lib/kube/kube-rest.h).
 */

/* List / watch filters. Zero-initialise; every field is optional. */
struct api_list_options {
    const char *label_selector;   /* labelSelector */
    const char *field_selector;   /* fieldSelector */
    const char *resource_version; /* resourceVersion */
    long limit;                   /* page size; pages are followed */
    const char *accept;           /* NULL = application/json */
};

/* GET one object. -ENOENT (err: the server's NotFound Status) if absent. */
int api_client_get(struct api_client *c, const struct kube_gvr *gvr,
                   const char *ns, const char *name, json_t **out,
                   struct dpf_error *err);
/* GET a collection; follows metadata.continue when opts->limit is set and
 * returns one list with all items (metadata.resourceVersion of the last
 * page). opts may be NULL. With a Table Accept the reply is returned as
 * is (no paging). */
int api_client_list(struct api_client *c, const struct kube_gvr *gvr,
                    const char *ns, const struct api_list_options *opts,
                    json_t **out, struct dpf_error *err);
/* POST (create) obj. field_manager may be NULL. *out (may be NULL) gets
 * the server's copy. */
int api_client_post(struct api_client *c, const struct kube_gvr *gvr,
                    const char *ns, const json_t *obj,
                    const char *field_manager, json_t **out,
                    struct dpf_error *err);
/* PUT (replace) obj, or its subresource ("status", NULL = main); the name
 * comes from obj's metadata.name; send metadata.resourceVersion for
 * optimistic concurrency (-EBUSY on conflict). */
int api_client_put(struct api_client *c, const struct kube_gvr *gvr,
                   const char *ns, const json_t *obj, const char *subresource,
                   const char *field_manager, json_t **out,
                   struct dpf_error *err);

/* Patch flavours (Content-Type). */
enum api_patch_type {
    API_PATCH_MERGE = 0, /* application/merge-patch+json (RFC 7386) */
    API_PATCH_JSON = 1,  /* application/json-patch+json (RFC 6902) */
};
/* PATCH an object (or a subresource). */
int api_client_patch(struct api_client *c, const struct kube_gvr *gvr,
                     const char *ns, const char *name, const char *subresource,
                     enum api_patch_type type, const json_t *patch,
                     const char *field_manager, json_t **out,
                     struct dpf_error *err);
/* DELETE with DeleteOptions {propagationPolicy} (NULL = server default).
 * *out (may be NULL) gets the reply: the object (still present while
 * finalizers run) or a Status. */
int api_client_delete(struct api_client *c, const struct kube_gvr *gvr,
                      const char *ns, const char *name, const char *propagation,
                      json_t **out, struct dpf_error *err);

/* Watch parameters and resume state. */
struct api_watch_options {
    const char *label_selector; /* labelSelector */
    const char *field_selector; /* fieldSelector */
    const char *accept;         /* NULL = application/json; or Table */
    bool allow_bookmarks;       /* allowWatchBookmarks=true */
    long timeout_seconds;       /* server-side timeoutSeconds (0 = none) */
    int64_t deadline_ms;        /* client deadline on time_mono_ms() (0 =
                                   none): the watch returns -ETIMEDOUT */
    char resource_version[64];  /* in: start after this RV ("" = now);
                                   out: the last RV seen (resume here) */
};

/* Watch a collection (ns NULL = all namespaces or cluster scope). Calls
 * cb for every event, updating opts->resource_version as objects arrive
 * (Table events carry it in rows[].object when the server includes it).
 * cb gets a borrowed object (kube-watch.h) and returns 0 to go on, a
 * positive value to stop or a negative errno to fail.
 * Returns 0 when the server ended the stream (resume by calling again),
 * 1 when cb stopped it, -ESTALE when the server says the resourceVersion
 * is too old (410 Gone: list again), -ETIMEDOUT at the deadline, or
 * another negative errno (err filled). ERROR events are not passed to cb;
 * they end the watch with their Status decoded into err. */
int api_client_watch(struct api_client *c, const struct kube_gvr *gvr,
                     const char *ns, struct api_watch_options *opts,
                     kube_watch_event_fn cb, void *arg, struct dpf_error *err);
/* The same on an explicit collection path (for resources that are not in
 * the schema). */
int api_client_watch_path(struct api_client *c, const char *path,
                          struct api_watch_options *opts,
                          kube_watch_event_fn cb, void *arg,
                          struct dpf_error *err);

#endif
