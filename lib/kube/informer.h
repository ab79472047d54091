/* informer: keep a local, indexed copy of one resource and tell handlers
 * what changed.
 *
 * An informer lists a collection (by kind, namespace and selectors), then
 * watches it from the list's resourceVersion, and applies every event to
 * its cache (lib/kube/kube-cache.h). It runs on the loop thread of its
 * struct kube_rest: no thread per watch. Its life cycle:
 *   list      GET the collection in pages (limit/continue); the watch
 *             resumes from the first page's resourceVersion (on a server
 *             whose pages are not one snapshot, such as dpf-server, later
 *             events are replayed rather than lost: applying an event is
 *             idempotent; a server whose first page carries no
 *             resourceVersion is listed unpaged from then on). The list
 *             then replaces the cache: objects that
 *             vanished get a delete, new ones an add, changed ones
 *             (another resourceVersion) an update.
 *   watch     with allowWatchBookmarks and a server-side timeoutSeconds
 *             drawn at random in [t, 2t) so a fleet of informers does not
 *             re-watch in step; a clean end re-watches from the last
 *             resourceVersion seen (events and bookmarks advance it).
 *   relist    when the server says that resourceVersion is gone (HTTP 410,
 *             or an ERROR event with code 410), list again.
 *   backoff   on any other failure (connection refused, 5xx, bad stream)
 *             retry after an exponential delay with jitter (0.8 s doubling
 *             to 30 s); a successful list or an event resets it.
 *   resync    every resync_ms (if set), every cached object is handed to
 *             the update handlers again (old == new), so controllers
 *             re-check objects whose change they may have missed.
 *
 * Cached objects carry no metadata.managedFields (dropped on arrival:
 * controllers do not read it, and it is much of an object's size).
 *
 * Handlers run on the loop thread, in event order, after the cache was
 * updated; they must return quickly (the usual handler maps the object to
 * work-queue keys). Objects passed to handlers are borrowed and immutable.
 *
 * Threads: informer_create/_add_handlers/_add_index/_start/_stop/_destroy
 * run on the loop thread (before the loop runs, the thread that will run
 * it counts as the loop thread). informer_cache(), _has_synced(),
 * _wait_synced(), _last_rv() and _stats() may be called from any thread.
 *
 * Ownership: the informer borrows the struct kube_rest (which must outlive
 * it) and owns its cache; options are copied. */
#ifndef DPF_INFORMER_H
#define DPF_INFORMER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/kube/kube-cache.h"
#include "lib/kube/kube-rest.h"

struct informer;

/* What to watch and how. Zero-initialise; gvr is required. */
struct informer_options {
    struct kube_gvr gvr;        /* the resource (strings copied) */
    const char *namespace;      /* NULL or "" = all namespaces */
    const char *label_selector; /* labelSelector or NULL */
    const char *field_selector; /* fieldSelector or NULL */
    int64_t resync_ms;          /* periodic resync; 0 = never */
    long page_size;             /* list page size; 0 = 500; < 0 = unpaged */
    long watch_timeout_s;       /* t above; 0 = 300 (5 to 10 min) */
    /* A client-side filter on an object's text, for what no selector can
     * say (an emulator that runs a range of nodes): true = not wanted. It
     * sees each watch line before it is parsed (kube_watch_skip_fn: it
     * must say false when unsure, BOOKMARK and ERROR events included) and
     * each listed object's compact text; what it skips is never cached
     * nor handed to the handlers. Loop thread. NULL = everything. */
    bool (*skip_text)(void *arg, const char *text, size_t len);
    void *skip_arg;
};

/* Event handlers; any of them may be NULL. */
struct informer_handlers {
    void (*on_add)(void *arg, const json_t *obj);
    void (*on_update)(void *arg, const json_t *old_obj, const json_t *obj);
    void (*on_delete)(void *arg, const json_t *obj);
    void *arg;
};

/* Counters, for tests and metrics. */
struct informer_stats {
    uint64_t lists;   /* complete lists (the first one included) */
    uint64_t relists; /* lists forced by 410 Gone */
    uint64_t watches; /* watch requests started */
    uint64_t events;  /* watch events applied (bookmarks excluded) */
    uint64_t errors;  /* failed lists and watches (then backoff) */
    uint64_t resyncs; /* resync rounds */
    uint64_t skipped; /* listed objects and watch lines skip_text skipped */
};

/* A stopped informer for o on rest. */
struct informer *informer_create(struct kube_rest *rest,
                                 const struct informer_options *o);
/* Add a set of handlers (copied). If the informer already synced, the
 * new handlers get an add for every cached object first. */
void informer_add_handlers(struct informer *inf,
                           const struct informer_handlers *h);
/* Reduce every object before it is cached and handed to the handlers
 * (client-go's SetTransform): fn edits obj in place, on the loop thread,
 * after managedFields went, and must keep its metadata.name, namespace
 * and resourceVersion. Set before informer_start; one per informer. A
 * shared informer's transform must keep every field any of its users
 * read: set it where the informer is made for one user. */
void informer_set_transform(struct informer *inf, void (*fn)(json_t *obj));
/* Add a cache index (before informer_start). 0 or -errno. */
int informer_add_index(struct informer *inf, const char *name, kube_index_fn fn,
                       void *arg);
/* Start listing and watching. */
void informer_start(struct informer *inf);
/* Stop: cancel the current request and timers (the cache stays). */
void informer_stop(struct informer *inf);
/* Stop and free. NULL is fine. */
void informer_destroy(struct informer *inf);

/* The cache (owned by the informer; readers from any thread). */
struct kube_cache *informer_cache(struct informer *inf);
/* The resource this informer follows. */
const struct kube_gvr *informer_gvr(const struct informer *inf);
/* True once the first list is in the cache. Any thread. */
bool informer_has_synced(struct informer *inf);
/* Wait until synced, at most timeout_ms (< 0 = forever). 0 or -ETIMEDOUT.
 * Any thread but the loop thread. */
int informer_wait_synced(struct informer *inf, int64_t timeout_ms);
/* The last resourceVersion seen (list, event or bookmark) into buf. */
void informer_last_rv(struct informer *inf, char *buf, size_t size);
/* A copy of the counters. Any thread. */
void informer_stats(struct informer *inf, struct informer_stats *out);

#endif
