/* watch-cache: recent events in memory, fanned out to many watchers.
 *
 * The API server feeds it from the store's event hook (in revision order).
 * It keeps the last `capacity` events in a ring, and with a byte bound set
 * (watch_cache_set_max_bytes) no more than that many bytes of them: the
 * oldest events go first, so a ring of large objects holds fewer events
 * and a resume from an evicted revision gets -ERANGE. Each event holds the
 * object's JSON text with metadata.resourceVersion already set (the cache
 * injects it once, as it copies the value, so 1,000 watchers do not
 * re-serialise). Every text the cache hands out (events, their previous
 * values, lists) carries the resourceVersion of its own revision: one
 * copy per version serves the index, the ring and every watcher. A watcher
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
    /* The key's value before this event (with its own resourceVersion,
     * prev_rv), from the object index; NULL when the key had none (ADDED) or the
     * index did not know it. For DELETED it is the deleted value. A
     * watch with a selector needs it to tell an object that stops
     * matching (DELETED) from one that starts (ADDED). */
    const char *prev;
    size_t prev_len;
    int64_t prev_rv; /* its mod revision */
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
/* ---- object index ----
 *
 * Besides the ring, the cache keeps the current value of every key (as
 * kube-apiserver's watch cache keeps every object): the text is shared
 * with the ring's events (one copy per version, reference counted) and
 * each object's labels are parsed once, when it is written. Lists are
 * then served from memory, and a list at an older revision (a continue
 * token's snapshot, resourceVersionMatch=Exact) is rebuilt from the
 * current values and the ring's events after that revision. The index
 * is fed by the store hook like the ring, so it holds exactly the state
 * at watch_cache_current_rv(). A value that left the ring without being
 * written again is kept deflated (docs/dev/store.md, "Cold values are
 * packed"); everything the cache hands out is plain text. */

/* Fill the index from the store. Call once, before the store's hook
 * feeds the cache and before any write; until then (and in caches that
 * never load) watch_cache_list() answers -ENOTSUP and events carry prev
 * only for keys written since the cache was created. 0, or the store's
 * error. */
int watch_cache_load(struct watch_cache *wc, struct store *s,
                     struct dpf_error *err);

/* Keep keys starting with prefix out of the index (call before
 * watch_cache_load and before the first event): their events still go
 * through the ring to watchers, but without a previous value, and a list
 * whose prefix overlaps prefix answers -ENOTSUP, so the caller reads the
 * store. For kinds that are written often, read rarely and never listed
 * by a controller (kube-apiserver keeps no watch cache for Events). */
void watch_cache_skip_index(struct watch_cache *wc, const char *prefix);

/* An object's labels in the index; look one up with
 * watch_cache_label(). */
struct watch_cache_labels;
/* The value of label key, or NULL. l may be NULL (no labels). */
const char *watch_cache_label(const void *l, const char *key);

/* Decides whether an object is listed. labels is the index's parsed
 * labels, or NULL when the object is an older version the index did not
 * parse or one the index keeps packed (then parse value, the stored
 * text, if labels matter). */
typedef bool (*watch_cache_filter_fn)(void *arg, const char *key,
                                      const char *value, size_t len,
                                      const struct watch_cache_labels *labels);

/* The current value of key from the index, as store_get() would answer
 * it (the index follows every commit under the store's write lock, so
 * the answer is as fresh as the store's): 0 and *out filled (free with
 * store_kv_free()), -ENOENT when no such object exists, -ENOTSUP when
 * the index is not loaded or leaves key out (watch_cache_skip_index):
 * then read the store. */
int watch_cache_get(struct watch_cache *wc, const char *key,
                    struct store_kv *out);

/* List the objects whose key starts with prefix and sorts after
 * after_key (NULL = from the start), in key order, as they were at
 * revision at_rv (0 = now). filter (may be NULL = all) runs under the
 * cache's read lock, so keep it short (for a value the index keeps
 * packed it runs after the lock, on the unpacked text, from the same
 * thread); cb runs after the lock is
 * released, once per listed object (its kv is only valid during the
 * call; value carries metadata.resourceVersion = kv->rv, the mod
 * revision, when it is a JSON object with a metadata object); a
 * non-zero return stops the listing and is returned. *list_rv = the
 * revision listed. -ENOTSUP when the index is not loaded, -ERANGE when
 * at_rv is older than the ring holds (410) or newer than the cache. */
int watch_cache_list(struct watch_cache *wc, const char *prefix,
                     const char *after_key, int64_t at_rv,
                     watch_cache_filter_fn filter, void *filter_arg,
                     store_list_fn cb, void *arg, int64_t *list_rv);

/* The same, walking only the objects that carry label label_key with
 * value label_value (an inverted index kept beside the object index), for
 * a selector every match of which has that label (see
 * selector_equality_hint()). filter must still decide; objects written
 * after at_rv are considered whatever their labels. */
int watch_cache_list_label(struct watch_cache *wc, const char *prefix,
                           const char *after_key, int64_t at_rv,
                           const char *label_key, const char *label_value,
                           watch_cache_filter_fn filter, void *filter_arg,
                           store_list_fn cb, void *arg, int64_t *list_rv);

/* What the index holds (for logs and the benchmark): objects, and bytes
 * of their texts, keys, labels and bookkeeping (texts shared with the
 * ring counted once). */
void watch_cache_index_stats(struct watch_cache *wc, size_t *objects,
                             size_t *bytes);

/* Latest revision seen by the cache (for BOOKMARK events). */
int64_t watch_cache_current_rv(struct watch_cache *wc);
/* Number of live watchers (for metrics and tests). */
size_t watch_cache_watchers(struct watch_cache *wc);

#endif
