/* watch-cache: recent events in memory, fanned out to many watchers.
 *
 * The API server feeds it from the store's event hook (in revision order).
 * It keeps the last `capacity` events in a ring, and with a byte bound set
 * (watch_cache_set_max_bytes) no more than that many bytes of them: the
 * oldest events go first, so a ring of large objects holds fewer events
 * and a resume from an evicted revision gets -ERANGE. Each event holds the
 * object's JSON text with metadata.resourceVersion already set (the cache
 * injects it once, so 1,000 watchers do not re-serialise). A watcher
 * subscribes with a key prefix and a starting revision and then pulls
 * events; the cache calls the watcher's notify function (from the writer's
 * thread, without the cache lock held) when new events may be available,
 * so an HTTP watch stream can resume itself.
 *
 * A subscription whose since_rv is older than the oldest event retained
 * (and older than the current revision) fails with -ERANGE: the API server
 * answers 410 Gone ("too old resource version"). since_rv = 0 means "from
 * now". Events with rv <= since_rv are never delivered, so a client that
 * reconnects with its last seen resourceVersion misses nothing and sees
 * nothing twice. Thread-safe. */
#ifndef DPF_WATCH_CACHE_H
#define DPF_WATCH_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/store/store.h"

struct watch_cache;
struct watcher;

/* One event; shared by all watchers (reference counted). */
struct watch_event {
    enum store_event_type type;
    int64_t rv;
    char *key;    /* registry key */
    char *object; /* JSON text with metadata.resourceVersion = rv */
    size_t len;   /* strlen(object) */
};

/* start_rv: the store's current revision when the cache is created. */
struct watch_cache *watch_cache_create(size_t capacity, int64_t start_rv);
void watch_cache_destroy(struct watch_cache *wc);
/* Bound the memory of the events held (keys, values and per-event
 * bookkeeping) to max_bytes; 0 = no bound (the default). Takes effect at
 * the next event. The newest event is kept even when it alone exceeds the
 * bound. */
void watch_cache_set_max_bytes(struct watch_cache *wc, size_t max_bytes);
/* Bytes charged for the events held now, and their number (tests,
 * metrics). */
size_t watch_cache_bytes(struct watch_cache *wc);
size_t watch_cache_events(struct watch_cache *wc);

/* Store event hook: matches store_event_fn; pass the cache as arg. */
void watch_cache_store_hook(void *wc, enum store_event_type type,
                            const char *key, const char *value, size_t len,
                            int64_t rv);

/* Subscribe to keys starting with prefix, events with rv > since_rv.
 * notify(arg) may be called from any thread. NULL + *errp = -ERANGE if
 * since_rv is too old. Pull with watch_cache_next() right away (there may
 * be a backlog) until it returns 0; after that notify fires once when a
 * matching event arrives, then not again until next() has returned 0
 * again. notify must not call watch_cache_unsubscribe(). A watcher has one
 * consumer at a time; different watchers may be used concurrently. */
struct watcher *watch_cache_subscribe(struct watch_cache *wc,
                                      const char *prefix, int64_t since_rv,
                                      void (*notify)(void *arg), void *arg,
                                      int *errp);
/* Next pending event for this watcher: 1 and *ev (caller releases with
 * watch_event_release), 0 if none pending now, -ERANGE if the watcher fell
 * further behind than the ring holds (the server then ends the stream with
 * a 410 ERROR event so the client relists). */
int watch_cache_next(struct watcher *w, struct watch_event **ev);
void watch_event_release(struct watch_event *ev);
/* Stop delivery; no notify call happens after this returns. */
void watch_cache_unsubscribe(struct watcher *w);
/* Latest revision seen by the cache (for BOOKMARK events). */
int64_t watch_cache_current_rv(struct watch_cache *wc);
/* Number of live watchers (for metrics and tests). */
size_t watch_cache_watchers(struct watch_cache *wc);

#endif
