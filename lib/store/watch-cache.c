/* watch-cache: see watch-cache.h and docs/dev/store.md.
 *
 * Events live in a ring indexed by a sequence number (seq % capacity); the
 * ring holds one reference to each event and every delivery adds one. The
 * ring holds the sequences [tail, head): at most `capacity` events and,
 * when a byte bound is set, at most `max_bytes` of event memory (keys,
 * values, bookkeeping), oldest evicted first; the newest event always
 * stays, however large. A watcher is a cursor (the next seq to look at)
 * plus a filter, so fan-out costs nothing per watcher until the watcher
 * pulls. `floor_rv` is the revision below which events may be missing: the
 * ring holds every event with rv > floor_rv (it starts as start_rv and
 * becomes the rv of each evicted event).
 *
 * Notification: a watcher is "armed" when watch_cache_next() found nothing
 * for it. The hook notifies only armed watchers whose prefix matches the
 * new event (and disarms them); an armed watcher whose prefix does not
 * match just has its cursor moved past the event, so an idle watcher never
 * falls behind the ring because of other keys' traffic.
 *
 * The object JSON (resourceVersion injected) is built lazily, once, by the
 * first watcher that pulls the event, so the store's write path only
 * copies the value. */
#include "lib/store/watch-cache.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"

/* Stripes of locks serialising the lazy build of event objects. */
#define WC_BUILD_LOCKS 64
/* Bytes charged per event on top of its key and value: the bookkeeping
 * struct, allocator headers and the injected resourceVersion. */
#define WC_EVENT_OVERHEAD 96

/* An event with its private bookkeeping. */
struct wc_event {
    struct watch_event pub;        /* must be first: handed out to watchers */
    atomic_int refs;               /* ring + deliveries not yet released */
    atomic_bool built;             /* pub.object is final */
    char *raw;                     /* the store's value until built */
    size_t raw_len;                /* its length */
    size_t cost;                   /* bytes charged to the cache's byte bound */
    struct wc_event *evicted_next; /* hook's list of events to release */
};

struct watcher {
    struct watch_cache *wc;      /* owning cache */
    char *prefix;                /* owned key prefix */
    size_t prefix_len;           /* strlen(prefix) */
    int64_t since_rv;            /* deliver only events with rv > this */
    uint64_t cursor;             /* next ring sequence to examine */
    void (*notify)(void *arg);   /* wake-up callback */
    void *arg;                   /* its argument */
    atomic_bool armed;           /* caught up: notify on the next match */
    atomic_int pending;          /* notify calls in flight */
    bool dead;                   /* unsubscribing (under notify_lock) */
    struct watcher *prev, *next; /* list of live watchers */
};

struct watch_cache {
    pthread_rwlock_t lock;  /* ring, head, floor_rv, watcher list, cursors */
    size_t capacity;        /* ring slots */
    struct wc_event **ring; /* capacity slots */
    uint64_t head;          /* sequence number of the next event */
    uint64_t tail;          /* sequence number of the oldest event held */
    size_t max_bytes;       /* byte bound of held events (0 = none) */
    size_t bytes;           /* bytes charged for held events */
    int64_t floor_rv;       /* every event with rv > floor_rv is retained */
    _Atomic int64_t current_rv; /* rv of the newest event (or start_rv) */
    struct watcher *watchers;   /* live watchers */
    size_t n_watchers;          /* their number */

    pthread_mutex_t hook_lock; /* one hook at a time (owns scratch) */
    struct watcher **scratch;  /* watchers to notify for one event */
    size_t scratch_cap;        /* its capacity */

    pthread_mutex_t notify_lock; /* pending/dead handshake */
    pthread_cond_t notify_cond;  /* signalled when a dead watcher's
                                  * pending count drops */
    pthread_mutex_t build_locks[WC_BUILD_LOCKS]; /* lazy event build */
};

struct watch_cache *
watch_cache_create(size_t capacity, int64_t start_rv)
{
    struct watch_cache *wc = xcalloc(1, sizeof *wc);
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* Writers (the store hook) must not starve behind 1,000 pullers. */
    pthread_rwlockattr_setkind_np(&attr,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&wc->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    wc->capacity = capacity ? capacity : 1;
    wc->ring = xcalloc(wc->capacity, sizeof *wc->ring);
    wc->floor_rv = start_rv;
    atomic_init(&wc->current_rv, start_rv);
    pthread_mutex_init(&wc->hook_lock, NULL);
    pthread_mutex_init(&wc->notify_lock, NULL);
    pthread_cond_init(&wc->notify_cond, NULL);
    for (size_t i = 0; i < WC_BUILD_LOCKS; i++) {
        pthread_mutex_init(&wc->build_locks[i], NULL);
    }
    return wc;
}

void
watch_event_release(struct watch_event *ev)
{
    if (!ev) {
        return;
    }
    struct wc_event *e = (struct wc_event *) ev;
    if (atomic_fetch_sub(&e->refs, 1) == 1) {
        free(e->pub.key);
        if (e->pub.object != e->raw) {
            free(e->pub.object);
        }
        free(e->raw);
        free(e);
    }
}

void
watch_cache_destroy(struct watch_cache *wc)
{
    if (!wc) {
        return;
    }
    while (wc->watchers) {
        struct watcher *w = wc->watchers;
        wc->watchers = w->next;
        free(w->prefix);
        free(w);
    }
    for (uint64_t seq = wc->tail; seq < wc->head; seq++) {
        watch_event_release(&wc->ring[seq % wc->capacity]->pub);
    }
    free(wc->ring);
    free(wc->scratch);
    pthread_rwlock_destroy(&wc->lock);
    pthread_mutex_destroy(&wc->hook_lock);
    pthread_mutex_destroy(&wc->notify_lock);
    pthread_cond_destroy(&wc->notify_cond);
    for (size_t i = 0; i < WC_BUILD_LOCKS; i++) {
        pthread_mutex_destroy(&wc->build_locks[i]);
    }
    free(wc);
}

void
watch_cache_set_max_bytes(struct watch_cache *wc, size_t max_bytes)
{
    pthread_rwlock_wrlock(&wc->lock);
    wc->max_bytes = max_bytes;
    pthread_rwlock_unlock(&wc->lock);
}

size_t
watch_cache_bytes(struct watch_cache *wc)
{
    pthread_rwlock_rdlock(&wc->lock);
    size_t n = wc->bytes;
    pthread_rwlock_unlock(&wc->lock);
    return n;
}

size_t
watch_cache_events(struct watch_cache *wc)
{
    pthread_rwlock_rdlock(&wc->lock);
    size_t n = (size_t) (wc->head - wc->tail);
    pthread_rwlock_unlock(&wc->lock);
    return n;
}

/* The first ring sequence still held. */
static uint64_t
wc_oldest_seq(const struct watch_cache *wc)
{
    return wc->tail;
}

/* Evict the oldest event (the ring is not empty); it is pushed on *list
 * for release once the lock is dropped. Caller holds the write lock. */
static void
wc_evict_oldest(struct watch_cache *wc, struct wc_event **list)
{
    struct wc_event **slot = &wc->ring[wc->tail % wc->capacity];
    struct wc_event *e = *slot;
    *slot = NULL;
    wc->tail++;
    wc->floor_rv = e->pub.rv;
    wc->bytes -= e->cost;
    e->evicted_next = *list;
    *list = e;
}

static bool
wc_matches(const struct watcher *w, const char *key)
{
    return !strncmp(key, w->prefix, w->prefix_len);
}

void
watch_cache_store_hook(void *arg, enum store_event_type type, const char *key,
                       const char *value, size_t len, int64_t rv)
{
    struct watch_cache *wc = arg;
    struct wc_event *e = xcalloc(1, sizeof *e);
    atomic_init(&e->refs, 1);
    atomic_init(&e->built, false);
    e->pub.type = type;
    e->pub.rv = rv;
    e->pub.key = xstrdup(key);
    e->raw = xstrndup(value ? value : "", len);
    e->raw_len = len;
    e->cost = sizeof *e + strlen(key) + 1 + len + 1 + WC_EVENT_OVERHEAD;

    pthread_mutex_lock(&wc->hook_lock);
    pthread_rwlock_wrlock(&wc->lock);
    struct wc_event *evicted = NULL;
    while (wc->head - wc->tail >= wc->capacity ||
           (wc->max_bytes && wc->tail < wc->head &&
            wc->bytes + e->cost > wc->max_bytes)) {
        wc_evict_oldest(wc, &evicted);
    }
    wc->ring[wc->head % wc->capacity] = e;
    wc->bytes += e->cost;
    uint64_t seq = wc->head++;
    atomic_store(&wc->current_rv, rv);
    if (wc->scratch_cap < wc->n_watchers) {
        wc->scratch_cap = wc->n_watchers * 2;
        wc->scratch =
            xrealloc(wc->scratch, wc->scratch_cap * sizeof *wc->scratch);
    }
    size_t n = 0;
    for (struct watcher *w = wc->watchers; w; w = w->next) {
        if (!atomic_load_explicit(&w->armed, memory_order_relaxed)) {
            continue;
        }
        if (wc_matches(w, key)) {
            atomic_store_explicit(&w->armed, false, memory_order_relaxed);
            atomic_fetch_add(&w->pending, 1);
            wc->scratch[n++] = w;
        } else if (w->cursor == seq) {
            w->cursor = seq + 1;
        }
    }
    pthread_rwlock_unlock(&wc->lock);

    for (size_t i = 0; i < n; i++) {
        wc->scratch[i]->notify(wc->scratch[i]->arg);
    }
    if (n) {
        pthread_mutex_lock(&wc->notify_lock);
        bool wake = false;
        for (size_t i = 0; i < n; i++) {
            atomic_fetch_sub(&wc->scratch[i]->pending, 1);
            wake |= wc->scratch[i]->dead;
        }
        if (wake) {
            pthread_cond_broadcast(&wc->notify_cond);
        }
        pthread_mutex_unlock(&wc->notify_lock);
    }
    pthread_mutex_unlock(&wc->hook_lock);
    while (evicted) {
        struct wc_event *next = evicted->evicted_next;
        watch_event_release(&evicted->pub);
        evicted = next;
    }
}

/* First sequence in the ring whose event has rv > since (head if none). */
static uint64_t
wc_find_seq(const struct watch_cache *wc, int64_t since)
{
    uint64_t lo = wc_oldest_seq(wc), hi = wc->head;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (wc->ring[mid % wc->capacity]->pub.rv > since) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}

struct watcher *
watch_cache_subscribe(struct watch_cache *wc, const char *prefix,
                      int64_t since_rv, void (*notify)(void *arg), void *arg,
                      int *errp)
{
    pthread_rwlock_wrlock(&wc->lock);
    int64_t current = atomic_load(&wc->current_rv);
    if (since_rv > 0 && since_rv < wc->floor_rv && since_rv < current) {
        pthread_rwlock_unlock(&wc->lock);
        if (errp) {
            *errp = -ERANGE;
        }
        return NULL;
    }
    struct watcher *w = xcalloc(1, sizeof *w);
    w->wc = wc;
    w->prefix = xstrdup(prefix ? prefix : "");
    w->prefix_len = strlen(w->prefix);
    w->notify = notify;
    w->arg = arg;
    /* Armed from the start: a backlog is pulled by the subscriber right
     * away, and a spurious notify is harmless. */
    atomic_init(&w->armed, notify != NULL);
    atomic_init(&w->pending, 0);
    if (since_rv <= 0) {
        w->since_rv = current;
        w->cursor = wc->head;
    } else {
        w->since_rv = since_rv;
        w->cursor = wc_find_seq(wc, since_rv);
    }
    w->next = wc->watchers;
    if (w->next) {
        w->next->prev = w;
    }
    wc->watchers = w;
    wc->n_watchers++;
    pthread_rwlock_unlock(&wc->lock);
    if (errp) {
        *errp = 0;
    }
    return w;
}

/* Inject metadata.resourceVersion into the event's object, once. */
static void
wc_event_build(struct watch_cache *wc, struct wc_event *e)
{
    if (atomic_load_explicit(&e->built, memory_order_acquire)) {
        return;
    }
    pthread_mutex_t *m =
        &wc->build_locks[(uint64_t) e->pub.rv % WC_BUILD_LOCKS];
    pthread_mutex_lock(m);
    if (!atomic_load_explicit(&e->built, memory_order_relaxed)) {
        json_t *root = json_loadb(e->raw, e->raw_len, 0, NULL);
        char *out = NULL;
        if (json_is_object(root)) {
            json_t *meta = json_object_get(root, "metadata");
            if (!json_is_object(meta)) {
                meta = json_object();
                json_object_set_new(root, "metadata", meta);
            }
            char rv[24];
            snprintf(rv, sizeof rv, "%" PRId64, e->pub.rv);
            json_object_set_new(meta, "resourceVersion", json_string(rv));
            out = json_dumps(root, JSON_COMPACT);
        }
        json_decref(root);
        if (out) {
            e->pub.object = out;
            e->pub.len = strlen(out);
            free(e->raw);
            e->raw = NULL;
        } else {
            /* Not a JSON object: deliver the value as stored. */
            e->pub.object = e->raw;
            e->pub.len = e->raw_len;
        }
        atomic_store_explicit(&e->built, true, memory_order_release);
    }
    pthread_mutex_unlock(m);
}

int
watch_cache_next(struct watcher *w, struct watch_event **ev)
{
    struct watch_cache *wc = w->wc;
    struct wc_event *found = NULL;
    *ev = NULL;
    pthread_rwlock_rdlock(&wc->lock);
    if (w->cursor < wc_oldest_seq(wc)) {
        pthread_rwlock_unlock(&wc->lock);
        return -ERANGE;
    }
    while (w->cursor < wc->head) {
        struct wc_event *e = wc->ring[w->cursor++ % wc->capacity];
        if (e->pub.rv > w->since_rv && wc_matches(w, e->pub.key)) {
            atomic_fetch_add(&e->refs, 1);
            found = e;
            break;
        }
    }
    if (!found && w->notify) {
        atomic_store_explicit(&w->armed, true, memory_order_relaxed);
    }
    pthread_rwlock_unlock(&wc->lock);
    if (!found) {
        return 0;
    }
    wc_event_build(wc, found);
    *ev = &found->pub;
    return 1;
}

void
watch_cache_unsubscribe(struct watcher *w)
{
    if (!w) {
        return;
    }
    struct watch_cache *wc = w->wc;
    pthread_rwlock_wrlock(&wc->lock);
    if (w->prev) {
        w->prev->next = w->next;
    } else {
        wc->watchers = w->next;
    }
    if (w->next) {
        w->next->prev = w->prev;
    }
    wc->n_watchers--;
    pthread_rwlock_unlock(&wc->lock);
    /* The hook may have picked w before we unlinked it: wait until its
     * notify call has returned. */
    pthread_mutex_lock(&wc->notify_lock);
    w->dead = true;
    while (atomic_load(&w->pending) > 0) {
        pthread_cond_wait(&wc->notify_cond, &wc->notify_lock);
    }
    pthread_mutex_unlock(&wc->notify_lock);
    free(w->prefix);
    free(w);
}

int64_t
watch_cache_current_rv(struct watch_cache *wc)
{
    return atomic_load(&wc->current_rv);
}

size_t
watch_cache_watchers(struct watch_cache *wc)
{
    pthread_rwlock_rdlock(&wc->lock);
    size_t n = wc->n_watchers;
    pthread_rwlock_unlock(&wc->lock);
    return n;
}
