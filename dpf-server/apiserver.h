/* apiserver: the Kubernetes REST semantics of dpf-server.
 *
 * Serves /version, /healthz, /readyz, /livez, discovery (/api, /api/v1,
 * /apis, /apis/<group>/<version>), /openapi/v2 and /openapi/v3, and every
 * kind of api/schema.h under the usual Kubernetes paths: create, get, list
 * (label/field selectors, limit/continue, Table output), update, patch
 * (merge, JSON, strategic for built-in kinds, apply-as-merge), delete (finalizers,
 * graceful deletion, propagation policies), deletecollection, watch
 * (resourceVersion resume, bookmarks, timeoutSeconds, 410 Gone) and the
 * status subresource. Errors are Kubernetes Status objects.
 *
 * Ownership: the apiserver borrows the store and the watch cache (the
 * caller creates them, destroys the apiserver first, then them).
 * apiserver_create() installs the store's event hook itself: the hook
 * feeds the watch cache (watch_cache_store_hook) and the apiserver's
 * garbage collector, so the caller must NOT install a hook of its own. It
 * also creates the namespaces default, kube-system, kube-public,
 * kube-node-lease and dpf-operator-system when they are missing.
 *
 * apiserver_handle() is the http_handler_fn for every request that passed
 * the authentication gate (server.c) and for the open paths; it is
 * thread-safe and answers every request exactly once. */
#ifndef DPF_SERVER_APISERVER_H
#define DPF_SERVER_APISERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "api/schema.h"
#include "lib/base/error.h"
#include "lib/store/store.h"
#include "lib/store/watch-cache.h"

struct apiserver;
struct http_request;

/* The store prefix under which both Event APIs (core/v1 and
 * events.k8s.io/v1) keep Events: kept out of the watch cache's index
 * (server.c) and swept by the Event TTL (apiserver-gc.c). */
#define APISERVER_EVENTS_PREFIX "/core/events/"

/* Tunables; zero-initialise for defaults. */
struct apiserver_config {
    /* Request body limit checked again after decoding (0 = 3 MiB). */
    size_t max_body;
    /* Interval between BOOKMARK events on watches that asked for them
     * (0 = 60 s). */
    unsigned bookmark_interval_ms;
    /* Default and maximum watch duration when the client sends no
     * timeoutSeconds (0 = 30 min, jittered by the client as usual). */
    unsigned watch_timeout_s;
    /* Bytes one watch may have queued for its client before it is
     * dropped as slow (0 = 16 MiB); also the most initial events a watch
     * without resourceVersion may start with (beyond: a 410 ERROR event,
     * so the client lists and watches from the list's revision). */
    size_t watch_buffer_bytes;
    /* Bytes all watches together may have queued (0 = 128 MiB): beyond,
     * the watches with the largest backlogs are dropped first. */
    size_t watch_buffer_total_bytes;
    /* Do not create the default namespaces on start (unit tests). */
    bool no_default_namespaces;
    /* Do not start the garbage-collector thread (unit tests drive
     * apiserver_gc_run() themselves). */
    bool no_gc_thread;
    /* Events older than this (since their last write) are deleted, as
     * kube-apiserver's --event-ttl does (0 = kept until deleted). */
    int64_t event_ttl_ms;
    /* Also told of every store event, after the watch cache, with the
     * store's write lock held (keep it short); NULL = none. */
    store_event_fn event_hook;
    void *event_hook_arg;
    /* What the caller serves itself (authorization reviews, escalation
     * checks, subresources): called for every request on a resource path
     * once routed (ns, name, sub may be NULL); returns true when it
     * answered the request, false to let the API server serve it. */
    bool (*extension)(void *arg, struct http_request *req,
                      const struct schema_kind *k, const char *ns,
                      const char *name, const char *sub);
    void *extension_arg;
    /* Called on every create (not dry-run only) once admission (defaults,
     * validation) passed and before the store: may change obj, as
     * kube-apiserver's mutating admission does (the requester's identity
     * into a CertificateSigningRequest's spec). A negative errno refuses
     * the create with err. NULL = none. */
    int (*admit_create)(void *arg, struct http_request *req,
                        const struct schema_kind *k, json_t *obj,
                        struct dpf_error *err);
    void *admit_create_arg;
    /* pods/log, pods/exec, pods/attach (apiserver-proxy.c): the client
     * certificate and key (PEM files) dpf-server shows node agents, the CA
     * their serving certificates must verify against (NULL: not verified,
     * as kube-apiserver without --kubelet-certificate-authority), and the
     * most proxied streams open at once (0 = 256). */
    const char *kubelet_client_cert;
    const char *kubelet_client_key;
    const char *kubelet_ca;
    unsigned kubelet_max_streams;
    /* Answer pods/log, exec and attach with 503 instead of dialing node
     * agents (fuzzers: no network traffic from fuzzed objects). */
    bool no_node_proxy;
};

/* Create the apiserver over an open store and watch cache (borrowed).
 * cfg may be NULL. NULL + err if the default namespaces cannot be made. */
struct apiserver *apiserver_create(struct store *store, struct watch_cache *wc,
                                   const struct apiserver_config *cfg,
                                   struct dpf_error *err);
/* Stop the garbage collector, close open watch streams, free. Call after
 * the HTTP server has stopped delivering requests. NULL is allowed. */
void apiserver_destroy(struct apiserver *as);

/* Handle one request (an http_handler_fn; arg is the struct apiserver). */
void apiserver_handle(void *apiserver, struct http_request *req);

/* The server's own writes (apiserver-objects.c), through the same
 * admission and store paths as a client's. Create obj (apiVersion, kind,
 * metadata.name[, namespace]; borrowed) unless an object of that name
 * exists: 0 (created or there), or -errno with err filled. */
int apiserver_ensure_object(struct apiserver *as, const json_t *obj,
                            struct dpf_error *err);
/* Read-modify-write k/ns/name through the guaranteed update: edit gets a
 * copy of the stored object to change in place and returns 1 to write
 * it, 0 to leave the object as it is, or -errno. 0, -ENOENT, or -errno
 * with err filled. */
int apiserver_update_object(struct apiserver *as, const struct schema_kind *k,
                            const char *ns, const char *name,
                            int (*edit)(void *arg, json_t *obj), void *arg,
                            struct dpf_error *err);

/* The objects kept per resource, for /metrics' apiserver_storage_objects
 * (a metrics_storage_fn, metrics.h; arg is the apiserver): calls
 * emit(emit_arg, resource, n) once per resource, resource being "plural"
 * for the core group and "plural.group" otherwise (a resource served in
 * several versions, or in two groups over one storage, once). */
void apiserver_storage_objects(void *apiserver,
                               void (*emit)(void *emit_arg,
                                            const char *resource, int64_t n),
                               void *emit_arg);

/* Run one garbage-collection pass now: delete dependents whose owners
 * are gone, finish namespace deletion. Returns the number of objects
 * deleted. The GC thread calls this when woken by store events. */
int apiserver_gc_run(struct apiserver *as);

#endif
