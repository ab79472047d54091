/* api-client: a Kubernetes API client over libcurl.
 *
 * One struct api_client holds one curl easy handle (HTTP keep-alive: the
 * connection is reused across requests), the TLS material from a
 * kubeconfig (CA, client certificate and key as in-memory blobs, or a
 * bearer token) and a per-request timeout. It serves dpfctl and the
 * controllers alike.
 *
 * Layers:
 *   api_client_request()  one HTTP exchange: method, path, query, body,
 *                         content type, Accept -> status + body;
 *   kube_status_to_error() (kube-status.h) a non-2xx reply -> struct
 *                         dpf_error + negative errno;
 *   api_client_get/list/post/put/patch/delete()  object verbs on a
 *                         resource given as a struct kube_gvr (group,
 *                         version, plural, scope: plain data, so this layer
 *                         knows nothing of the schema; api/schema.h's
 *                         SCHEMA_GVR(k) makes one from a kind);
 *   api_client_watch()    a watch stream: newline-delimited JSON events
 *                         ({"type":..,"object":..}), one callback per
 *                         event, resumable from the last resourceVersion.
 *
 * Errors: functions return 0 (or a documented positive value) on success
 * and a negative errno on failure, with err filled: for an HTTP error the
 * server's Status (code, reason, message, causes); for a failure on the
 * client side (connection refused, TLS, client deadline) code 503 or 504
 * and reason API_REASON_CLIENT with curl's message; when the exec plugin
 * fails, code 401 and reason API_REASON_CLIENT with the plugin's error
 * and -EACCES whatever the cause. Errno mapping: 404 -ENOENT, 409 AlreadyExists -EEXIST, 409
 * Conflict -EBUSY, 400/422 -EINVAL, 401/403 -EACCES, 410 -ESTALE, 504 and
 * timeouts -ETIMEDOUT, other -EIO.
 *
 * Credentials (as client-go uses a kubeconfig user): a bearer token, basic
 * auth or a client certificate from the kubeconfig; otherwise the user's
 * exec plugin, run before the first request, again once the credential's
 * expirationTimestamp has passed, and again after a 401 (the request is
 * then repeated once). Stricter than client-go: api_client_create()
 * refuses to send a token, basic auth or a plugin's credential to an
 * http:// server unless the cluster has the KUBECONFIG_EXT_PLAINTEXT
 * extension, and refuses insecure-skip-tls-verify with a CA.
 * tls-server-name is sent as SNI and is the name the server certificate is
 * verified against; the connection still goes to the server URL's host.
 * Redirects are never followed.
 *
 * Memory: json_t results are new references owned by the caller; struct
 * api_response buffers are released with api_response_free().
 *
 * Threads: a client is not thread-safe. Use one client per thread (they
 * are cheap: create one from the same struct kubeconfig in each thread);
 * the library's global curl initialisation is done once, thread-safely.
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
#include "lib/kube/kubeconfig.h"

/* The Accept header kubectl sends for table output (get). */
#define API_ACCEPT_TABLE                                                \
    "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=" \
    "Table;v=v1beta1;g=meta.k8s.io,application/json"

/* The reason set on errors that did not come from the server. */
#define API_REASON_CLIENT "ClientError"

struct api_client;

/* One HTTP request. Only method and path are required. */
struct api_request {
    const char *method;       /* "GET", "POST", "PUT", "PATCH", "DELETE" */
    const char *path;         /* "/api/v1/namespaces/x/pods" (escaped) */
    const char *query;        /* "limit=500&labelSelector=a%3Db" or NULL */
    const char *content_type; /* body's type; NULL = application/json */
    const char *body;         /* request body or NULL */
    size_t body_len;          /* bytes in body */
    const char *accept;       /* NULL = "application/json" */
};

/* One HTTP reply. */
struct api_response {
    long status;        /* HTTP status code */
    char *body;         /* NUL-terminated body (owned), never NULL */
    size_t len;         /* body bytes */
    char *content_type; /* Content-Type header (owned) or NULL */
};

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

/* Send one request and read the whole reply. 0 when a reply arrived
 * (whatever its status: check resp->status), negative errno on a
 * transport error (err filled). resp must be freed with
 * api_response_free() in both cases. */
int api_client_request(struct api_client *c, const struct api_request *req,
                       struct api_response *resp, struct dpf_error *err);
/* Free a response's buffers (the struct itself is the caller's). */
void api_response_free(struct api_response *resp);

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

/* Watch event types. */
enum api_event_type {
    API_EVENT_ADDED,
    API_EVENT_MODIFIED,
    API_EVENT_DELETED,
    API_EVENT_BOOKMARK,
    API_EVENT_ERROR,
};

/* Name of an event type ("ADDED", ...). */
const char *api_event_type_name(enum api_event_type t);

/* Called once per event; object is borrowed (valid during the call).
 * Return 0 to continue, 1 to stop the watch successfully, or a negative
 * errno to stop with that error. */
typedef int (*api_watch_cb)(void *arg, enum api_event_type type,
                            json_t *object);

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
 * Returns 0 when the server ended the stream (resume by calling again),
 * 1 when cb stopped it, -ESTALE when the server says the resourceVersion
 * is too old (410 Gone: list again), -ETIMEDOUT at the deadline, or
 * another negative errno (err filled). ERROR events are not passed to cb;
 * they end the watch with their Status decoded into err. */
int api_client_watch(struct api_client *c, const struct kube_gvr *gvr,
                     const char *ns, struct api_watch_options *opts,
                     api_watch_cb cb, void *arg, struct dpf_error *err);
/* The same on an explicit collection path (for resources that are not in
 * the schema). */
int api_client_watch_path(struct api_client *c, const char *path,
                          struct api_watch_options *opts, api_watch_cb cb,
                          void *arg, struct dpf_error *err);

#endif
