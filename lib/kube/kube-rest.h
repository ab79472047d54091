/* kube-rest: an asynchronous Kubernetes REST client on the event loop.
 *
 * One struct kube_rest serves every request of a program's controllers and
 * informers from one loop thread (lib/loop.h): it drives a libcurl multi
 * handle through curl's socket API (curl tells us which sockets to watch
 * and when to call it back; the loop does the waiting), so a hundred
 * watches cost a hundred sockets, not a hundred threads. Connections and
 * TLS sessions are pooled and reused across requests.
 *
 * The client works on plain data: a resource is a struct kube_gvr (group,
 * version, plural resource, namespaced) and objects are jansson json_t. It
 * knows nothing of dpf's schema, so it talks to dpf-server and to any
 * Kubernetes API server alike.
 *
 * Three kinds of call, each ending with exactly one done callback unless it
 * is cancelled first:
 *   kube_rest_send()   one request, the whole reply at the end;
 *   kube_rest_list()   GET a collection, following limit/continue pages,
 *                      one page callback per page;
 *   kube_rest_watch()  a watch stream, one event callback per event as
 *                      the bytes arrive (lib/kube/kube-watch.h).
 * and one blocking wrapper for other threads (reconcile workers):
 *   kube_rest_request_wait() / kube_rest_json_wait().
 *
 * Results: the done callback gets rc 0 for a 2xx reply; rc > 0 when a
 * watch's event callback or a list's page callback stopped the call with
 * that value; rc < 0 (negative errno) with err filled otherwise: for a
 * non-2xx reply err holds the server's Status (see kube_status_to_error());
 * for a failure on our side (connection refused, TLS, timeout, a watch
 * stream that is not valid JSON) code 503/504/500 and reason "ClientError"
 * or "InternalError". resp is never NULL; resp->status is 0 when no reply
 * arrived.
 *
 * Threads: everything here runs on the loop thread (callbacks included),
 * except kube_rest_request_wait() and kube_rest_json_wait(), which any
 * other thread may call while the loop runs (never the loop thread: it
 * would wait for itself). Callbacks may start new calls and cancel any
 * call; a done callback must not destroy the client.
 *
 * Connection and credentials: every transfer is set up by
 * lib/kube/kubeconfig-curl.h, as the blocking api-client's are: CA, client
 * certificate, bearer token or basic auth, tls-server-name, and an exec
 * credential plugin. The plugin runs on the loop thread when the first
 * request needs its credential, again once that has expired, and again
 * after a 401 (the request is then repeated once); the loop waits for it
 * (bounded by the plugin timeout, 60 s), which happens once per credential
 * lifetime. A plugin that fails ends the calls that needed it with
 * -EACCES (code 401, reason "ClientError", the plugin's message).
 *
 * Ownership: the client copies what it needs from the kubeconfig (kc may be
 * freed after kube_rest_create()); it holds the client key and token and
 * never logs them. Call handles belong to the client: they are valid until
 * their done callback returns or kube_rest_cancel() is called, whichever is
 * first. Request fields are copied when the call starts. */
#ifndef DPF_KUBE_REST_H
#define DPF_KUBE_REST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/error.h"
#include "lib/kube/kube-status.h"
#include "lib/kube/kube-watch.h"
#include "lib/kube/kubeconfig.h"
#include "lib/base/loop.h"

/* A resource: group ("" = core), version, plural, and its scope. */
struct kube_gvr {
    const char *group;    /* "" or NULL for the core group */
    const char *version;  /* "v1" */
    const char *resource; /* plural, lower case: "configmaps" */
    bool namespaced;      /* namespaced (true) or cluster-scoped */
};

/* The reason set on errors that did not come from the server. */
#define KUBE_REASON_CLIENT "ClientError"

struct kube_rest;
struct kube_call;

/* One request. Only path is required; method defaults to GET. */
struct kube_request {
    const char *method;       /* "GET", "POST", "PUT", "PATCH", "DELETE" */
    const char *path;         /* "/api/v1/namespaces/x/configmaps" */
    const char *query;        /* escaped query without '?', or NULL */
    const char *content_type; /* body type; NULL = application/json */
    const char *body;         /* request body or NULL */
    size_t body_len;          /* bytes in body */
    const char *accept;       /* NULL = application/json */
    long timeout_ms;          /* whole-request deadline; 0 = none */
};

/* A reply. In callbacks every pointer is borrowed (valid during the call);
 * from kube_rest_request_wait() body is owned: kube_response_free(). */
struct kube_response {
    long status; /* HTTP status, 0 if no reply arrived */
    char *body;  /* NUL-terminated body (never NULL) */
    size_t len;  /* bytes in body */
};

/* The end of a call (see the header comment for rc). */
typedef void (*kube_rest_done_fn)(void *arg, int rc,
                                  const struct kube_response *resp,
                                  const struct dpf_error *err);
/* One page of a list (a new reference the callback may keep). Return 0 to
 * fetch the next page, or a non-zero value to end the list with it. */
typedef int (*kube_rest_page_fn)(void *arg, json_t *page);

/* Create a client for kc's server on loop (call on the loop thread).
 * NULL with err set if kc names no server, its credentials are refused
 * (kubeconfig_curl_create()) or curl cannot start. */
struct kube_rest *kube_rest_create(struct loop *loop,
                                   const struct kubeconfig *kc,
                                   struct dpf_error *err);
/* Cancel every call (no callbacks) and free the client. Loop thread;
 * NULL is fine. No kube_rest_request_wait() may be waiting. */
void kube_rest_destroy(struct kube_rest *r);
/* The User-Agent header (copied). Default "dpf/<version>". */
void kube_rest_set_user_agent(struct kube_rest *r, const char *ua);
/* The loop the client runs on. */
struct loop *kube_rest_loop(const struct kube_rest *r);

/* Start one request. Returns the call handle (never NULL). */
struct kube_call *kube_rest_send(struct kube_rest *r,
                                 const struct kube_request *req,
                                 kube_rest_done_fn done, void *arg);

/* List options. Zero-initialise; every field is optional. */
struct kube_list_options {
    const char *label_selector;   /* labelSelector */
    const char *field_selector;   /* fieldSelector */
    const char *resource_version; /* resourceVersion (first page only) */
    long limit;                   /* page size; 0 = one unpaged reply */
    long timeout_ms;              /* deadline per page; 0 = none */
};

/* GET path page by page. page() gets each page (a List object); done()
 * comes after the last page (rc 0), or on the first failure. A 410 on a
 * continue token (expired) ends the list with -ESTALE: start it again. */
struct kube_call *kube_rest_list(struct kube_rest *r, const char *path,
                                 const struct kube_list_options *opts,
                                 kube_rest_page_fn page, kube_rest_done_fn done,
                                 void *arg);

/* Watch options. Zero-initialise; every field is optional. */
struct kube_watch_options {
    const char *label_selector;   /* labelSelector */
    const char *field_selector;   /* fieldSelector */
    const char *resource_version; /* start after this ("" = now) */
    bool allow_bookmarks;         /* allowWatchBookmarks=true */
    long timeout_seconds;         /* server ends the stream after this */
    /* client deadline (0 = timeout_seconds + 30 s, or none without
     * timeout_seconds) */
    long deadline_ms;
    /* NULL, or a text filter called with the watch's arg (kube-watch.h) */
    kube_watch_skip_fn skip;
};

/* Watch the collection at path. event() runs once per event (ERROR events
 * included: the informer decides what a 410 means); done() runs when the
 * stream ends: rc 0 when the server closed it cleanly, event()'s positive
 * value when it stopped it, or a negative errno (err filled; an HTTP 410
 * reply gives -ESTALE). */
struct kube_call *kube_rest_watch(struct kube_rest *r, const char *path,
                                  const struct kube_watch_options *opts,
                                  kube_watch_event_fn event,
                                  kube_rest_done_fn done, void *arg);

/* Stop a call; its callbacks will not run. Loop thread, also from inside
 * any callback of this client (even the call's own event callback). NULL
 * is a no-op. */
void kube_rest_cancel(struct kube_call *c);

/* Blocking request from a thread other than the loop thread: the request
 * runs on the loop and the caller sleeps until its reply. Returns the rc
 * described above; resp (owned: kube_response_free()) gets the reply. */
int kube_rest_request_wait(struct kube_rest *r, const struct kube_request *req,
                           struct kube_response *resp, struct dpf_error *err);
/* Several requests at once from a thread other than the loop thread: all
 * n start together (the caller bounds n: they share the client's
 * connections) and the call returns when every one has ended. For each i,
 * rcs[i] is what kube_rest_request_wait() would return, resps[i] its reply
 * (owned: kube_response_free()) and errs[i] (errs may be NULL) its error. */
void kube_rest_request_wait_all(struct kube_rest *r, size_t n,
                                const struct kube_request *reqs,
                                struct kube_response *resps, int *rcs,
                                struct dpf_error *errs);
/* The same with JSON in and out: body may be NULL; *out (may be NULL) gets
 * the decoded 2xx reply (a new reference). */
int kube_rest_json_wait(struct kube_rest *r, const char *method,
                        const char *path, const char *query, const json_t *body,
                        const char *content_type, json_t **out,
                        struct dpf_error *err);
/* The same with the 2xx reply's text, undecoded: *out gets it (malloc'd,
 * NUL-terminated; NULL on failure) and *out_len its length. For a caller
 * that keeps the text (kube_cache_note_text()) and needs no tree. */
int kube_rest_text_wait(struct kube_rest *r, const char *method,
                        const char *path, const char *query, const json_t *body,
                        const char *content_type, char **out, size_t *out_len,
                        struct dpf_error *err);
/* Free a response's body (the struct is the caller's). */
void kube_response_free(struct kube_response *resp);

/* URL path of a collection (name NULL) or an object, optionally a
 * subresource. ns NULL or "" = all namespaces (or a cluster-scoped
 * resource). Names are escaped. Malloc'd. */
char *kube_path(const struct kube_gvr *gvr, const char *ns, const char *name,
                const char *subresource);
/* Percent-escape a path segment or query value (unreserved kept).
 * Malloc'd. */
char *kube_escape(const char *s);
/* Append "key=<escaped value>" to a query ('&' first unless q is empty);
 * nothing when value is NULL or "". */
void kube_query_add(struct dbuf *q, const char *key, const char *value);
/* Append a list's query: labelSelector, fieldSelector, resourceVersion
 * and limit (when > 0), each only when set. */
void kube_list_query(struct dbuf *q, const char *label_selector,
                     const char *field_selector, const char *resource_version,
                     long limit);
/* The query of a watch ("watch=true&..."; deadline_ms is not part of it).
 * Malloc'd. */
char *kube_watch_query(const struct kube_watch_options *o);
/* Decode a reply: a non-2xx status into err (kube_status_to_error());
 * a 2xx body into *out (may be NULL: not decoded), -EPROTO when it is not
 * JSON. method and path are for the message. */
int kube_response_json(long status, const char *body, size_t len,
                       const char *method, const char *path, json_t **out,
                       struct dpf_error *err);

#endif
