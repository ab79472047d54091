/* controller: write a controller as one file of reconcile logic.
 *
 * A controller declares, in a struct controller_ops, what it watches and
 * how to reconcile one object:
 *   primary    the resource it owns the state of; every add, update,
 *              delete or resync of a primary object queues its key
 *              ("namespace/name");
 *   secondary  resources whose changes matter to some primary object,
 *              each with a map function from a changed object to the keys
 *              of the primaries to reconcile (controller_map_owner() is
 *              the usual one: the controlling owner reference, when it
 *              points at the primary kind);
 *   reconcile  called with a key on a worker thread; it reads the current
 *              state from the informer caches (never from the event that
 *              queued the key: several events fold into one key), makes
 *              the world match, and says what next: done, requeue (with
 *              backoff), requeue after a delay, or error (logged, retried
 *              with backoff).
 *
 * A struct controller_manager runs controllers: one loop thread runs the
 * REST client and every informer (informers are shared: two controllers
 * watching the same resource, namespace and selector share one list+watch
 * and one cache), and each controller has its own work queue and a
 * bounded number of worker threads. controller_manager_start() starts the
 * informers, waits until every cache has synced, and only then starts the
 * workers, so a reconcile never sees a half-filled cache.
 *
 * Threads: reconcile runs on a controller's worker threads, several keys
 * at once but never one key on two workers at once (lib/kube/workqueue.h).
 * From reconcile, read caches (controller_cache()) and talk to the API
 * with the blocking kube_rest_*_wait() calls on controller_rest(); never
 * block the loop thread. Map functions run on the loop thread and must be
 * quick. The manager's own functions are called from one thread (the
 * program's main thread).
 *
 * Ownership: ops and the strings it points to must outlive the manager
 * (they are usually static); the manager owns informers, queues and
 * threads. */
#ifndef DPF_CONTROLLER_H
#define DPF_CONTROLLER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/error.h"
#include "lib/base/util.h"
#include "lib/kube/informer.h"
#include "lib/kube/kube-rest.h"
#include "lib/kube/workqueue.h"
#include "lib/kube/kubeconfig.h"

struct controller;
struct controller_manager;

/* What reconcile asks for next. */
enum controller_outcome {
    CONTROLLER_DONE,          /* converged: forget the key's failures */
    CONTROLLER_REQUEUE,       /* try again after the key's backoff */
    CONTROLLER_REQUEUE_AFTER, /* try again after after_ms (no backoff) */
    CONTROLLER_ERROR,         /* failed: log, retry after backoff */
};

struct controller_result {
    enum controller_outcome outcome;
    int64_t after_ms; /* CONTROLLER_REQUEUE_AFTER only */
};

/* Map a changed object to the keys to reconcile: a new JSON array of key
 * strings, or NULL for none. Loop thread. */
typedef json_t *(*controller_map_fn)(struct controller *c, const json_t *obj);

/* One watched resource. */
struct controller_watch {
    struct kube_gvr gvr;        /* the resource */
    const char *namespace;      /* NULL = all namespaces */
    const char *label_selector; /* NULL = everything */
    controller_map_fn map;      /* secondaries: required; primary: NULL */
    /* Queue the mapped keys this long after the event (0 = at once): a
     * burst of events (a thousand DPUs changing phase) then makes one
     * reconcile of their owner per period instead of one per event. */
    int64_t coalesce_ms;
    /* Updates only: whether the change from old to obj matters (NULL =
     * every update does). Adds and deletes always map. Loop thread, quick:
     * it keeps a controller that reads only labels from reconciling on
     * every status write (controller-runtime's update predicates). */
    bool (*relevant)(const json_t *old_obj, const json_t *obj);
};

struct controller_ops {
    const char *name;         /* for logs: "dpuset" */
    const char *primary_kind; /* "DPUSet": owner references match this */
    struct controller_watch primary;
    const struct controller_watch *secondary; /* may be NULL */
    size_t n_secondary;
    /* Reconcile key ("ns/name"). Worker thread. */
    struct controller_result (*reconcile)(struct controller *c,
                                          const char *key);
    int workers;       /* worker threads; 0 = 2 */
    int64_t resync_ms; /* informer resync for the primary; 0 = never */
};

/* Results, for reconcile's return statement. */
struct controller_result controller_done(void);
struct controller_result controller_requeue(void);
struct controller_result controller_requeue_after(int64_t ms);
struct controller_result controller_error(void);

/* Map function: the key of the object's controlling owner reference
 * (controller: true) when its kind is the primary kind and its apiVersion
 * the primary's group/version; owners are in the object's namespace. */
json_t *controller_map_owner(struct controller *c, const json_t *obj);

/* From reconcile (any thread): */
/* The user argument given to controller_manager_add(). */
void *controller_arg(struct controller *c);
/* The ops. */
const struct controller_ops *controller_ops(struct controller *c);
/* The cache of the primary (i = 0) or of secondary i - 1. */
struct kube_cache *controller_cache(struct controller *c, size_t i);
/* The REST client (use the *_wait calls from workers). */
struct kube_rest *controller_rest(struct controller *c);
/* The controller's queue (e.g. to queue another key). */
struct workqueue *controller_queue(struct controller *c);

/* Counters for tests and metrics. */
struct controller_stats {
    uint64_t reconciles; /* reconcile calls */
    uint64_t errors;     /* CONTROLLER_ERROR results */
    uint64_t requeues;   /* REQUEUE and REQUEUE_AFTER results */
};
void controller_stats(struct controller *c, struct controller_stats *out);

/* A manager talking to kc's server. NULL with err set on failure. */
struct controller_manager *
controller_manager_create(const struct kubeconfig *kc, struct dpf_error *err);
/* Register a controller (before start). Returns its handle. */
struct controller *controller_manager_add(struct controller_manager *m,
                                          const struct controller_ops *ops,
                                          void *arg);
/* The shared informer for a resource/namespace/selector, created if new
 * (before start). For programs that read a cache outside a controller. */
struct informer *controller_manager_informer(struct controller_manager *m,
                                             const struct kube_gvr *gvr,
                                             const char *ns,
                                             const char *label_selector,
                                             int64_t resync_ms);
/* The REST client. */
struct kube_rest *controller_manager_rest(struct controller_manager *m);
/* Start the loop thread and informers, wait for every cache to sync (at
 * most sync_timeout_ms; < 0 = forever), then start the workers. 0, or
 * -ETIMEDOUT with err naming the resource that did not sync (the manager
 * is then stopped). */
int controller_manager_start(struct controller_manager *m,
                             int64_t sync_timeout_ms, struct dpf_error *err);
/* The two halves of controller_manager_start(), for a program that keeps
 * its caches warm while it waits to become leader (lib/kube/leader.h):
 * start the loop and informers and wait for the caches (on failure the
 * manager stays as it is; controller_manager_stop() cleans up), then,
 * once leading, start the workers. start_informers may be called again
 * after a timeout to keep waiting. */
int controller_manager_start_informers(struct controller_manager *m,
                                       int64_t sync_timeout_ms,
                                       struct dpf_error *err);
void controller_manager_start_workers(struct controller_manager *m);
/* Append the manager's metrics in Prometheus text format to out: per
 * controller controller_runtime_reconcile_total{result},
 * _reconcile_errors_total, _reconcile_time_seconds (histogram),
 * workqueue_depth/_adds_total/_retries_total{name}; per informer
 * dpf_informer_{lists,relists,watches,events,errors}_total{resource}.
 * Any thread. */
void controller_manager_metrics(struct controller_manager *m, struct dbuf *out);
/* Stop the workers only (queues drained, running reconciles finish); the
 * loop and informers keep running, e.g. to release a Lease. Workers are
 * never started again. */
void controller_manager_stop_workers(struct controller_manager *m);
/* Stop: drain the queues (running reconciles finish), join the workers,
 * stop the informers and the loop thread. Idempotent. */
void controller_manager_stop(struct controller_manager *m);
/* Stop and free. NULL is fine. */
void controller_manager_destroy(struct controller_manager *m);

#endif
