/* kube-write: the writes a controller makes, done the way Kubernetes
 * controllers do them.
 *
 *   kube_update_retry()  read-modify-write with optimistic concurrency:
 *                        GET the object, let a mutate function change a
 *                        copy, PUT it (to the object or to its /status)
 *                        with the resourceVersion that was read; on a 409
 *                        Conflict read again and retry (client-go's
 *                        RetryOnConflict: 5 tries, 10 ms doubling with
 *                        jitter). The mutate function says whether there
 *                        is anything to write, so an unchanged object
 *                        costs one GET and no write.
 *   kube_update_retry_from()  the same, starting from a cached copy (an
 *                        informer's) instead of a GET: a fresh cache
 *                        costs the write alone; a stale one earns a 409,
 *                        and the retries read the object.
 *   kube_apply()         server-side apply of a desired object
 *                        (PATCH application/apply-patch+yaml with a field
 *                        manager; JSON is YAML, so the object is sent as
 *                        JSON).
 *
 * Threads: these block; call them from reconcile workers (never from the
 * loop thread of the struct kube_rest).
 *
 * Errors: 0 or a negative errno as kube_status_to_error() maps it (-ENOENT
 * when the object is gone, -EBUSY when every try conflicted), err filled
 * with the server's message. */
#ifndef DPF_KUBE_WRITE_H
#define DPF_KUBE_WRITE_H

#include <jansson.h>
#include <stdbool.h>

#include "lib/base/error.h"
#include "lib/kube/kube-rest.h"

/* Change obj (a private copy of the server's object) in place. Return 1
 * to write it, 0 when there is nothing to write, or a negative errno to
 * give up (returned by kube_update_retry()). */
typedef int (*kube_mutate_fn)(void *arg, json_t *obj);

#define KUBE_UPDATE_TRIES 5

/* Read-modify-write ns/name of gvr (ns NULL for cluster-scoped), on the
 * object (subresource NULL) or a subresource ("status"). *out (may be
 * NULL) gets the object as written, or as read when nothing was written.
 * Returns 0 (written or nothing to do), mutate's negative value, or the
 * request's error. */
int kube_update_retry(struct kube_rest *r, const struct kube_gvr *gvr,
                      const char *ns, const char *name, const char *subresource,
                      kube_mutate_fn mutate, void *arg, json_t **out,
                      struct dpf_error *err);

/* kube_update_retry() whose first try changes a copy of cached (the
 * object with its resourceVersion, as a cache holds it) instead of
 * reading it; NULL cached is kube_update_retry(). When nothing is to be
 * written, *out gets that copy. */
int kube_update_retry_from(struct kube_rest *r, const struct kube_gvr *gvr,
                           const char *ns, const char *name,
                           const char *subresource, const json_t *cached,
                           kube_mutate_fn mutate, void *arg, json_t **out,
                           struct dpf_error *err);

/* Server-side apply obj (apiVersion, kind, metadata.name[, namespace]
 * required) as field_manager; force takes over fields other managers
 * own. *out (may be NULL) gets the object the server returned. */
int kube_apply(struct kube_rest *r, const struct kube_gvr *gvr,
               const json_t *obj, const char *field_manager, bool force,
               json_t **out, struct dpf_error *err);

#endif
