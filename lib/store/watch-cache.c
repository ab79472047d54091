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
 * One text per version: the hook copies the stored value once, with
 * metadata.resourceVersion set to its revision, and that text is the
 * event's object, the index's current value and, later, the next event's
 * previous value. Watchers and lists send it as it is (no second copy
 * with the resourceVersion injected per event, which had been a quarter
 * of the server's heap at 1,000 DPUs). */
#include "lib/store/watch-cache.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"
#include "lib/codecs/json-text.h"
#include "lib/codecs/zpack.h"

/* Bytes charged per event on top of its key and value: the bookkeeping
 * struct, allocator headers and the injected resourceVersion. */
#define WC_EVENT_OVERHEAD 96

/* A resource's dictionary for packed texts: a copy of the first of its
 * objects that was packed. Lives as long as the cache. */
struct wc_dict {
    struct wc_dict *next;
    char *prefix; /* "/group/plural/" */
    size_t len;
    char data[];
};

/* An index entry whose value just left the ring, and its packed copy. */
struct wc_cold {
    struct wc_entry *e;
    struct wc_text *packed;
};

/* A stored value, shared by the index and the ring's events. Plain
 * (packed == 0: data is the NUL-terminated text of len bytes) or, for an
 * index value no event holds any more, deflated against dict (data holds
 * packed bytes that inflate to len bytes). */
struct wc_text {
    atomic_int refs;
    uint32_t packed;
    size_t len;
    const struct wc_dict *dict;
    char data[];
};

/* An object's labels: n key/value pairs pointing into the same block. */
struct watch_cache_labels {
    size_t n;
    size_t size;      /* bytes of the whole block */
    const char *kv[]; /* key0, value0, key1, value1, ... */
};

/* One key's current value in the index: one block holding the entry,
 * its key and its labels, so a list's walk over 100,000 entries touches
 * one place per entry (the walk is bound by cache misses). */
struct wc_entry {
    struct wc_entry *hnext;            /* hash chain */
    struct wc_post *posts;             /* one per label, in this block */
    uint64_t hash;                     /* of key */
    struct wc_text *text;              /* current value */
    int64_t rv;                        /* its mod revision */
    struct watch_cache_labels *labels; /* in this block; NULL = none */
    size_t cost;                       /* bytes charged to index_bytes */
    char key[];                        /* then the labels, aligned */
};

/* The inverted label index: for each label pair k=v present on some
 * object, the list of entries carrying it, so a list by an equality
 * selector walks only those entries instead of every object. A post is
 * one entry's membership in one pair's list; it lives in the entry's
 * block, so linking costs no allocation. */
struct wc_post {
    struct wc_post *prev, *next; /* in head's list */
    struct wc_entry *e;          /* the entry carrying the label */
    struct wc_phead *head;       /* the pair's list */
};

struct wc_phead {
    struct wc_phead *hnext; /* hash chain */
    uint64_t hash;          /* of kv */
    struct wc_post *first;  /* entries with this pair */
    size_t count;           /* their number */
    size_t klen;            /* strlen of the key part of kv */
    char kv[];              /* key, NUL, value, NUL */
};

/* An event with its private bookkeeping. */
struct wc_event {
    struct watch_event pub;        /* must be first: handed out to watchers */
    atomic_int refs;               /* ring + deliveries not yet released */
    struct wc_text *text;          /* pub.object (shared with the index) */
    struct wc_text *prev;          /* the value before (shared) or NULL */
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

    /* The object index (under lock, written by the hook). */
    struct wc_entry **buckets; /* hash table, n_buckets a power of two */
    size_t n_buckets;
    size_t n_entries;
    size_t index_bytes;         /* charged for entries and their texts */
    struct wc_phead **pbuckets; /* label pairs, n_pbuckets a power of 2 */
    size_t n_pbuckets;
    size_t n_pheads;
    bool loaded; /* filled from the store: lists may use it */
    char **skip; /* key prefixes kept out of the index */
    size_t n_skip;
    /* packing cold index values (under hook_lock) */
    struct zpack *zp;      /* NULL: zlib failed, nothing is packed */
    struct wc_dict *dicts; /* one per resource */
    struct wc_cold *cold;  /* entries to pack after an eviction */
    size_t cold_cap;       /* its capacity */
};

/* ---- shared texts ---- */

/* The stored value with metadata.resourceVersion = rv, as the API server
 * sends objects (the store's values have none: the API server strips it
 * before writing), built in place in one allocation. A value that is not
 * a JSON object is kept as stored. */
static struct wc_text *
wc_text_with_rv(const char *value, size_t len, int64_t rv)
{
    /* the header goes in front of the text; 64 bytes cover the
     * member json_text_set_rv() adds, so the buffer does not move */
    const size_t hdr = offsetof(struct wc_text, data);
    struct dbuf b;
    dbuf_init(&b);
    if (dbuf_try_reserve(&b, hdr + len + 64) < 0) {
        abort(); /* as xmalloc does */
    }
    static const char zero[offsetof(struct wc_text, data)];
    dbuf_append(&b, zero, hdr);
    if (!json_text_set_rv(&b, value, len, rv)) {
        dbuf_append(&b, value, len);
    }
    size_t n = 0;
    char *p = dbuf_steal(&b, &n);
    /* shrinking in place: the allocator splits the block, no copy */
    struct wc_text *t = realloc(p, n + 1);
    if (!t) {
        t = (struct wc_text *) (void *) p;
    }
    atomic_init(&t->refs, 1);
    t->len = n - hdr;
    return t;
}

static struct wc_text *
wc_text_ref(struct wc_text *t)
{
    if (t) {
        atomic_fetch_add(&t->refs, 1);
    }
    return t;
}

static void
wc_text_unref(struct wc_text *t)
{
    if (t && atomic_fetch_sub(&t->refs, 1) == 1) {
        free(t);
    }
}

/* Bytes a text takes (charged to the index). */
static size_t
wc_text_bytes(const struct wc_text *t)
{
    return sizeof *t + (t->packed ? t->packed : t->len + 1);
}

/* Length of a key's resource part ("/group/plural/"); 0 when it has
 * none (such keys share one dictionary). */
static size_t
wc_resource_len(const char *key)
{
    int n = 0;
    for (const char *p = key; *p; p++) {
        if (*p == '/' && ++n == 3) {
            return (size_t) (p - key) + 1;
        }
    }
    return 0;
}

/* The dictionary of key's resource; made from plain text t, the first
 * of the resource's objects to be packed, when there is none yet. Caller
 * holds hook_lock. */
static const struct wc_dict *
wc_dict_for(struct watch_cache *wc, const char *key, const struct wc_text *t)
{
    size_t rl = wc_resource_len(key);
    for (struct wc_dict *d = wc->dicts; d; d = d->next) {
        if (!strncmp(d->prefix, key, rl) && !d->prefix[rl]) {
            return d;
        }
    }
    size_t n = t->len < ZPACK_DICT_MAX ? t->len : ZPACK_DICT_MAX;
    struct wc_dict *d = xmalloc(sizeof *d + n);
    d->prefix = xstrndup(key, rl);
    d->len = n;
    memcpy(d->data, t->data + t->len - n, n);
    d->next = wc->dicts;
    wc->dicts = d;
    return d;
}

/* A packed copy of key's plain text t, or NULL when packing does not pay
 * (or zlib is missing). Caller holds hook_lock. */
static struct wc_text *
wc_text_pack(struct watch_cache *wc, const char *key, const struct wc_text *t)
{
    if (!wc->zp || t->packed) {
        return NULL;
    }
    const struct wc_dict *d = wc_dict_for(wc, key, t);
    size_t n = 0;
    const size_t hdr = offsetof(struct wc_text, data);
    char *p = zpack_pack(wc->zp, d->data, d->len, t->data, t->len, hdr, &n);
    if (!p) {
        return NULL;
    }
    struct wc_text *pt = (struct wc_text *) (void *) p;
    atomic_init(&pt->refs, 1);
    pt->packed = (uint32_t) n;
    pt->len = t->len;
    pt->dict = d;
    return pt;
}

/* t as plain text: a new reference to t, or an unpacked copy of it. */
static struct wc_text *
wc_text_plain(struct wc_text *t)
{
    if (!t || !t->packed) {
        return wc_text_ref(t);
    }
    const size_t hdr = offsetof(struct wc_text, data);
    struct wc_text *u = xmalloc(hdr + t->len + 1);
    if (zpack_unpack(t->dict->data, t->dict->len, t->data, t->packed, u->data,
                     t->len) < 0) {
        abort(); /* the cache's own bytes: only corrupt memory gets here */
    }
    atomic_init(&u->refs, 1);
    u->packed = 0;
    u->len = t->len;
    u->dict = NULL;
    return u;
}

/* ---- the object index ---- */

static uint64_t
wc_hash(const char *key)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *) key; *p; p++) {
        h = (h ^ *p) * 1099511628211ULL;
    }
    return h;
}

/* Parse metadata.labels out of a stored value; NULL when there are none
 * (or the value is not an object). One allocation. */
static struct watch_cache_labels *
wc_labels_parse(const char *value, size_t len)
{
    json_t *labels =
        json_text_load_path(value, len, JSON_TEXT_PATH("metadata", "labels"));
    struct watch_cache_labels *l = NULL;
    size_t n = 0, bytes = 0;
    const char *k;
    json_t *v;
    json_object_foreach(labels, k, v)
    {
        if (json_is_string(v)) {
            n++;
            bytes += strlen(k) + 1 + json_string_length(v) + 1;
        }
    }
    if (n) {
        size_t size = sizeof *l + 2 * n * sizeof(char *) + bytes;
        l = xmalloc(size);
        l->size = size;
        char *p = (char *) &l->kv[2 * n];
        l->n = 0;
        json_object_foreach(labels, k, v)
        {
            if (!json_is_string(v)) {
                continue;
            }
            size_t kl = strlen(k) + 1, vl = json_string_length(v) + 1;
            memcpy(p, k, kl);
            l->kv[2 * l->n] = p;
            p += kl;
            memcpy(p, json_string_value(v), vl);
            l->kv[2 * l->n + 1] = p;
            p += vl;
            l->n++;
        }
    }
    json_decref(labels);
    return l;
}

const char *
watch_cache_label(const void *arg, const char *key)
{
    const struct watch_cache_labels *l = arg;
    for (size_t i = 0; l && i < l->n; i++) {
        if (!strcmp(l->kv[2 * i], key)) {
            return l->kv[2 * i + 1];
        }
    }
    return NULL;
}

static struct wc_entry **
wc_index_slot(struct watch_cache *wc, const char *key, uint64_t h)
{
    struct wc_entry **pp = &wc->buckets[h & (wc->n_buckets - 1)];
    while (*pp && ((*pp)->hash != h || strcmp((*pp)->key, key) != 0)) {
        pp = &(*pp)->hnext;
    }
    return pp;
}

static void
wc_index_grow(struct watch_cache *wc)
{
    size_t n = wc->n_buckets ? wc->n_buckets * 2 : 1024;
    struct wc_entry **b = xcalloc(n, sizeof *b);
    for (size_t i = 0; i < wc->n_buckets; i++) {
        struct wc_entry *e = wc->buckets[i];
        while (e) {
            struct wc_entry *next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(wc->buckets);
    wc->buckets = b;
    wc->n_buckets = n;
}

static void
wc_entry_free(struct wc_entry *e)
{
    wc_text_unref(e->text);
    free(e);
}

/* A new entry block for key, with a copy of labels (may be NULL). */
static struct wc_entry *
wc_entry_new(const char *key, const struct watch_cache_labels *labels)
{
    size_t klen = strlen(key) + 1;
    size_t at = (sizeof(struct wc_entry) + klen + 7) & ~(size_t) 7;
    size_t lsize = labels ? (labels->size + 7) & ~(size_t) 7 : 0;
    size_t psize = labels ? labels->n * sizeof(struct wc_post) : 0;
    struct wc_entry *e = xcalloc(1, at + lsize + psize);
    memcpy(e->key, key, klen);
    if (psize) {
        e->posts = (struct wc_post *) ((char *) e + at + lsize);
    }
    if (labels) {
        struct watch_cache_labels *l =
            (struct watch_cache_labels *) ((char *) e + at);
        memcpy(l, labels, labels->size);
        /* The pairs point into the block: move them with it. */
        for (size_t i = 0; i < 2 * l->n; i++) {
            l->kv[i] =
                (const char *) l + (labels->kv[i] - (const char *) labels);
        }
        e->labels = l;
    }
    return e;
}

static uint64_t
wc_pair_hash(const char *key, const char *value)
{
    uint64_t h = wc_hash(key) ^ 0xff;
    h *= 1099511628211ULL;
    for (const unsigned char *p = (const unsigned char *) value; *p; p++) {
        h = (h ^ *p) * 1099511628211ULL;
    }
    return h;
}

static struct wc_phead **
wc_phead_slot(struct watch_cache *wc, const char *key, const char *value,
              uint64_t h)
{
    struct wc_phead **pp = &wc->pbuckets[h & (wc->n_pbuckets - 1)];
    while (*pp && ((*pp)->hash != h || strcmp((*pp)->kv, key) != 0 ||
                   strcmp((*pp)->kv + (*pp)->klen + 1, value) != 0)) {
        pp = &(*pp)->hnext;
    }
    return pp;
}

static void
wc_phead_grow(struct watch_cache *wc)
{
    size_t n = wc->n_pbuckets ? wc->n_pbuckets * 2 : 256;
    struct wc_phead **b = xcalloc(n, sizeof *b);
    for (size_t i = 0; i < wc->n_pbuckets; i++) {
        struct wc_phead *h = wc->pbuckets[i];
        while (h) {
            struct wc_phead *next = h->hnext;
            h->hnext = b[h->hash & (n - 1)];
            b[h->hash & (n - 1)] = h;
            h = next;
        }
    }
    free(wc->pbuckets);
    wc->pbuckets = b;
    wc->n_pbuckets = n;
}

/* Enter each of e's labels in its pair's list. */
static void
wc_posts_link(struct watch_cache *wc, struct wc_entry *e)
{
    for (size_t i = 0; e->labels && i < e->labels->n; i++) {
        const char *k = e->labels->kv[2 * i], *v = e->labels->kv[2 * i + 1];
        if (wc->n_pheads >= wc->n_pbuckets) {
            wc_phead_grow(wc);
        }
        uint64_t h = wc_pair_hash(k, v);
        struct wc_phead **pp = wc_phead_slot(wc, k, v, h);
        if (!*pp) {
            size_t kl = strlen(k), vl = strlen(v);
            struct wc_phead *nh = xcalloc(1, sizeof *nh + kl + vl + 2);
            nh->hash = h;
            nh->klen = kl;
            memcpy(nh->kv, k, kl + 1);
            memcpy(nh->kv + kl + 1, v, vl + 1);
            *pp = nh;
            wc->n_pheads++;
            wc->index_bytes += sizeof *nh + kl + vl + 2 + sizeof(void *);
        }
        struct wc_post *p = &e->posts[i];
        p->e = e;
        p->head = *pp;
        p->prev = NULL;
        p->next = (*pp)->first;
        if (p->next) {
            p->next->prev = p;
        }
        (*pp)->first = p;
        (*pp)->count++;
    }
}

/* Take e's labels out of their pairs' lists; a pair no object carries
 * any more goes. */
static void
wc_posts_unlink(struct watch_cache *wc, struct wc_entry *e)
{
    for (size_t i = 0; e->labels && i < e->labels->n; i++) {
        struct wc_post *p = &e->posts[i];
        struct wc_phead *h = p->head;
        if (p->prev) {
            p->prev->next = p->next;
        } else {
            h->first = p->next;
        }
        if (p->next) {
            p->next->prev = p->prev;
        }
        if (--h->count == 0) {
            struct wc_phead **pp =
                wc_phead_slot(wc, h->kv, h->kv + h->klen + 1, h->hash);
            *pp = h->hnext;
            wc->n_pheads--;
            wc->index_bytes -= sizeof *h + strlen(h->kv) +
                               strlen(h->kv + h->klen + 1) + 2 + sizeof(void *);
            free(h);
        }
    }
}

/* Apply one write to the index (caller holds the write lock); returns
 * the key's previous text (a reference the caller owns) and its rv.
 * labels were parsed from text by the caller, outside the lock. */
static struct wc_text *
wc_index_apply(struct watch_cache *wc, enum store_event_type type,
               const char *key, struct wc_text *text,
               struct watch_cache_labels *labels, int64_t rv, int64_t *prev_rv)
{
    if (wc->n_entries >= wc->n_buckets) {
        wc_index_grow(wc);
    }
    uint64_t h = wc_hash(key);
    struct wc_entry **pp = wc_index_slot(wc, key, h);
    struct wc_entry *e = *pp;
    struct wc_text *prev = NULL;
    *prev_rv = 0;
    if (e) {
        prev = wc_text_ref(e->text);
        *prev_rv = e->rv;
    }
    if (type == STORE_EVENT_DELETED) {
        free(labels);
        if (e) {
            *pp = e->hnext;
            wc->n_entries--;
            wc->index_bytes -= e->cost;
            wc_posts_unlink(wc, e);
            wc_entry_free(e);
        }
        return prev;
    }
    struct wc_entry *ne = wc_entry_new(key, labels);
    free(labels);
    ne->hash = h;
    if (!e) {
        ne->hnext = *pp;
        wc->n_entries++;
    } else {
        ne->hnext = e->hnext;
        wc->index_bytes -= e->cost;
        wc_posts_unlink(wc, e);
        wc_entry_free(e);
    }
    *pp = ne;
    wc_posts_link(wc, ne);
    ne->text = wc_text_ref(text);
    ne->rv = rv;
    ne->cost = sizeof *ne + strlen(key) + 1 + 7 + wc_text_bytes(text) +
               (ne->labels ? ne->labels->size + 7 +
                                 ne->labels->n * sizeof(struct wc_post)
                           : 0) +
               sizeof(void *) + WC_EVENT_OVERHEAD;
    wc->index_bytes += ne->cost;
    return prev;
}

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
    wc->zp = zpack_create();
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
        wc_text_unref(e->text);
        wc_text_unref(e->prev);
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
    for (size_t i = 0; i < wc->n_buckets; i++) {
        while (wc->buckets[i]) {
            struct wc_entry *e = wc->buckets[i];
            wc->buckets[i] = e->hnext;
            wc_entry_free(e);
        }
    }
    free(wc->buckets);
    for (size_t i = 0; i < wc->n_pbuckets; i++) {
        while (wc->pbuckets[i]) {
            struct wc_phead *h = wc->pbuckets[i];
            wc->pbuckets[i] = h->hnext;
            free(h);
        }
    }
    free(wc->pbuckets);
    while (wc->dicts) {
        struct wc_dict *d = wc->dicts;
        wc->dicts = d->next;
        free(d->prefix);
        free(d);
    }
    free(wc->cold);
    for (size_t i = 0; i < wc->n_skip; i++) {
        free(wc->skip[i]);
    }
    free(wc->skip);
    zpack_destroy(wc->zp);
    pthread_rwlock_destroy(&wc->lock);
    pthread_mutex_destroy(&wc->hook_lock);
    pthread_mutex_destroy(&wc->notify_lock);
    pthread_cond_destroy(&wc->notify_cond);
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

/* Index entries whose current value only evicted events held (the key
 * was not written since): they go into wc->cold, to be packed. Caller
 * holds hook_lock and the write lock. Their number. */
static size_t
wc_find_cold(struct watch_cache *wc, const struct wc_event *evicted)
{
    size_t n = 0;
    for (const struct wc_event *v = evicted; v && wc->zp; v = v->evicted_next) {
        if (v->pub.type == STORE_EVENT_DELETED || v->text->packed) {
            continue;
        }
        struct wc_entry *en =
            *wc_index_slot(wc, v->pub.key, wc_hash(v->pub.key));
        if (!en || en->text != v->text) {
            continue;
        }
        if (n == wc->cold_cap) {
            wc->cold_cap = wc->cold_cap ? wc->cold_cap * 2 : 16;
            wc->cold = xrealloc(wc->cold, wc->cold_cap * sizeof *wc->cold);
        }
        wc->cold[n++] = (struct wc_cold){en, NULL};
    }
    return n;
}

/* Pack the n entries wc_find_cold() found. Caller holds hook_lock (so
 * the entries stay: only the hook changes the index), not the lock; the
 * texts are deflated outside it and swapped in under it. */
static void
wc_pack_cold(struct watch_cache *wc, size_t n)
{
    if (!n) {
        return;
    }
    for (size_t i = 0; i < n; i++) {
        wc->cold[i].packed =
            wc_text_pack(wc, wc->cold[i].e->key, wc->cold[i].e->text);
    }
    pthread_rwlock_wrlock(&wc->lock);
    for (size_t i = 0; i < n; i++) {
        struct wc_entry *en = wc->cold[i].e;
        struct wc_text *pt = wc->cold[i].packed;
        if (!pt) {
            continue;
        }
        size_t saved = wc_text_bytes(en->text) - wc_text_bytes(pt);
        wc->cold[i].packed = en->text; /* released below */
        en->text = pt;
        en->cost -= saved;
        wc->index_bytes -= saved;
    }
    pthread_rwlock_unlock(&wc->lock);
    for (size_t i = 0; i < n; i++) {
        wc_text_unref(wc->cold[i].packed);
    }
}

static bool
wc_matches(const struct watcher *w, const char *key)
{
    return !strncmp(key, w->prefix, w->prefix_len);
}

/* Is key under a prefix kept out of the index? */
static bool
wc_skipped(const struct watch_cache *wc, const char *key)
{
    for (size_t i = 0; i < wc->n_skip; i++) {
        if (str_has_prefix(key, wc->skip[i])) {
            return true;
        }
    }
    return false;
}

void
watch_cache_skip_index(struct watch_cache *wc, const char *prefix)
{
    pthread_rwlock_wrlock(&wc->lock);
    wc->skip = xrealloc(wc->skip, (wc->n_skip + 1) * sizeof *wc->skip);
    wc->skip[wc->n_skip++] = xstrdup(prefix);
    pthread_rwlock_unlock(&wc->lock);
}

void
watch_cache_store_hook(void *arg, enum store_event_type type, const char *key,
                       const char *value, size_t len, int64_t rv)
{
    struct watch_cache *wc = arg;
    struct wc_event *e = xcalloc(1, sizeof *e);
    atomic_init(&e->refs, 1);
    e->pub.type = type;
    e->pub.rv = rv;
    e->pub.key = xstrdup(key);
    e->text = wc_text_with_rv(value ? value : "", value ? len : 0, rv);
    e->pub.object = e->text->data;
    e->pub.len = e->text->len;
    /* wc->skip only changes before the first event */
    bool indexed = !wc_skipped(wc, key);
    struct watch_cache_labels *labels =
        type == STORE_EVENT_DELETED || !indexed
            ? NULL
            : wc_labels_parse(e->text->data, e->text->len);

    pthread_mutex_lock(&wc->hook_lock);
    pthread_rwlock_wrlock(&wc->lock);
    e->prev = indexed ? wc_index_apply(wc, type, key, e->text, labels, rv,
                                       &e->pub.prev_rv)
                      : NULL;
    if (e->prev && e->prev->packed) {
        struct wc_text *u = wc_text_plain(e->prev);
        wc_text_unref(e->prev);
        e->prev = u;
    }
    if (e->prev) {
        e->pub.prev = e->prev->data;
        e->pub.prev_len = e->prev->len;
    }
    /* The previous version is charged too: once the index lets go of it,
     * the event may be what keeps it. */
    e->cost = sizeof *e + strlen(key) + 1 + e->text->len + 1 +
              WC_EVENT_OVERHEAD +
              (e->prev && type != STORE_EVENT_DELETED ? e->prev->len : 0);
    struct wc_event *evicted = NULL;
    while (wc->head - wc->tail >= wc->capacity ||
           (wc->max_bytes && wc->tail < wc->head &&
            wc->bytes + e->cost > wc->max_bytes)) {
        wc_evict_oldest(wc, &evicted);
    }
    size_t n_cold = wc_find_cold(wc, evicted);
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
    wc_pack_cold(wc, n_cold);
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

/* ---- loading and listing the index ---- */

static int
wc_load_each(void *arg, const struct store_kv *kv)
{
    struct watch_cache *wc = arg;
    if (wc_skipped(wc, kv->key)) {
        return 0;
    }
    struct wc_text *t = wc_text_with_rv(kv->value, kv->len, kv->rv);
    struct watch_cache_labels *l = wc_labels_parse(t->data, t->len);
    /* nothing holds what the store had: packed at once */
    pthread_mutex_lock(&wc->hook_lock);
    struct wc_text *pt = wc_text_pack(wc, kv->key, t);
    pthread_mutex_unlock(&wc->hook_lock);
    if (pt) {
        wc_text_unref(t);
        t = pt;
    }
    int64_t prev_rv;
    pthread_rwlock_wrlock(&wc->lock);
    wc_text_unref(
        wc_index_apply(wc, STORE_EVENT_ADDED, kv->key, t, l, kv->rv, &prev_rv));
    pthread_rwlock_unlock(&wc->lock);
    wc_text_unref(t);
    return 0;
}

int
watch_cache_load(struct watch_cache *wc, struct store *s, struct dpf_error *err)
{
    int64_t rv = 0;
    int r = store_list(s, "", NULL, 0, wc_load_each, wc, &rv, NULL, err);
    if (r < 0) {
        return r;
    }
    pthread_rwlock_wrlock(&wc->lock);
    wc->loaded = true;
    if (rv > atomic_load(&wc->current_rv) && wc->head == wc->tail) {
        atomic_store(&wc->current_rv, rv);
        wc->floor_rv = rv;
    }
    pthread_rwlock_unlock(&wc->lock);
    return 0;
}

void
watch_cache_index_stats(struct watch_cache *wc, size_t *objects, size_t *bytes)
{
    pthread_rwlock_rdlock(&wc->lock);
    if (objects) {
        *objects = wc->n_entries;
    }
    if (bytes) {
        *bytes = wc->index_bytes + wc->n_buckets * sizeof(void *);
    }
    pthread_rwlock_unlock(&wc->lock);
}

/* One object of a listing, holding its text. */
struct wc_item {
    const char *key; /* the entry's or the event's (alive while listed) */
    struct wc_text *text;
    int64_t rv;
    bool check; /* packed: the filter runs once it is unpacked */
};

/* A key changed after the listed revision: its state at that revision. */
struct wc_touched {
    const char *key;
    uint64_t seq;         /* first event after the revision */
    struct wc_text *text; /* value then, NULL = absent */
    int64_t rv;
};

static int
wc_item_cmp(const void *a, const void *b)
{
    return strcmp(((const struct wc_item *) a)->key,
                  ((const struct wc_item *) b)->key);
}

static int
wc_touched_cmp(const void *a, const void *b)
{
    const struct wc_touched *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c) {
        return c;
    }
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static int
wc_touched_key_cmp(const void *key, const void *b)
{
    return strcmp(key, ((const struct wc_touched *) b)->key);
}

static bool
wc_in_range(const char *key, const char *prefix, size_t plen, const char *after)
{
    return !strncmp(key, prefix, plen) && (!after || strcmp(key, after) > 0);
}

/* Add entry e to a listing when it is in range, not touched after the
 * listed revision and passes the filter. */
static void
wc_list_consider(struct wc_entry *e, const char *prefix, size_t plen,
                 const char *after_key, const struct wc_touched *t, size_t nt,
                 watch_cache_filter_fn filter, void *filter_arg,
                 struct wc_item **items, size_t *n, size_t *cap)
{
    if (!wc_in_range(e->key, prefix, plen, after_key) ||
        (nt && bsearch(e->key, t, nt, sizeof *t, wc_touched_key_cmp))) {
        return;
    }
    /* a packed value is unpacked after the lock, and filtered then */
    bool check = filter && e->text->packed;
    if (filter && !check &&
        !filter(filter_arg, e->key, e->text->data, e->text->len, e->labels)) {
        return;
    }
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 256;
        *items = xrealloc(*items, *cap * sizeof **items);
    }
    (*items)[(*n)++] =
        (struct wc_item){e->key, wc_text_ref(e->text), e->rv, check};
}

int
watch_cache_get(struct watch_cache *wc, const char *key, struct store_kv *out)
{
    memset(out, 0, sizeof *out);
    uint64_t h = wc_hash(key);
    pthread_rwlock_rdlock(&wc->lock);
    if (!wc->loaded || wc_skipped(wc, key)) {
        pthread_rwlock_unlock(&wc->lock);
        return -ENOTSUP;
    }
    struct wc_entry *e = wc->n_buckets ? *wc_index_slot(wc, key, h) : NULL;
    struct wc_text *t = e ? wc_text_ref(e->text) : NULL;
    int64_t rv = e ? e->rv : 0;
    pthread_rwlock_unlock(&wc->lock);
    if (!t) {
        return -ENOENT;
    }
    /* unpacked after the lock, as lists do */
    struct wc_text *u = wc_text_plain(t);
    out->key = xstrdup(key);
    out->value = xstrndup(u->data, u->len);
    out->len = u->len;
    out->rv = rv;
    wc_text_unref(u);
    wc_text_unref(t);
    return 0;
}

int
watch_cache_list(struct watch_cache *wc, const char *prefix,
                 const char *after_key, int64_t at_rv,
                 watch_cache_filter_fn filter, void *filter_arg,
                 store_list_fn cb, void *arg, int64_t *list_rv)
{
    return watch_cache_list_label(wc, prefix, after_key, at_rv, NULL, NULL,
                                  filter, filter_arg, cb, arg, list_rv);
}

int
watch_cache_list_label(struct watch_cache *wc, const char *prefix,
                       const char *after_key, int64_t at_rv,
                       const char *label_key, const char *label_value,
                       watch_cache_filter_fn filter, void *filter_arg,
                       store_list_fn cb, void *arg, int64_t *list_rv)
{
    size_t plen = strlen(prefix);
    struct wc_item *items = NULL;
    size_t n = 0, cap = 0;
    struct wc_touched *t = NULL;
    size_t nt = 0;
    pthread_rwlock_rdlock(&wc->lock);
    bool overlaps = false;
    for (size_t i = 0; i < wc->n_skip && !overlaps; i++) {
        overlaps = str_has_prefix(prefix, wc->skip[i]) ||
                   str_has_prefix(wc->skip[i], prefix);
    }
    if (!wc->loaded || overlaps) {
        pthread_rwlock_unlock(&wc->lock);
        return -ENOTSUP;
    }
    int64_t cur = atomic_load(&wc->current_rv);
    if (at_rv <= 0 || at_rv == cur) {
        at_rv = cur;
    } else if (at_rv > cur || at_rv < wc->floor_rv) {
        pthread_rwlock_unlock(&wc->lock);
        return -ERANGE;
    }
    /* Keys written after at_rv: their first later event says what they
     * were at at_rv (absent before an ADDED, else its previous value). */
    uint64_t from = wc_find_seq(wc, at_rv);
    if (from < wc->head) {
        t = xmalloc((size_t) (wc->head - from) * sizeof *t);
        for (uint64_t seq = from; seq < wc->head; seq++) {
            struct wc_event *e = wc->ring[seq % wc->capacity];
            if (!wc_in_range(e->pub.key, prefix, plen, after_key)) {
                continue;
            }
            t[nt++] = (struct wc_touched){
                e->pub.key, seq,
                e->pub.type == STORE_EVENT_ADDED ? NULL : e->prev,
                e->pub.prev_rv};
        }
        if (nt > 1) {
            qsort(t, nt, sizeof *t, wc_touched_cmp);
        }
        size_t w = 0;
        for (size_t i = 0; i < nt; i++) {
            if (w && !strcmp(t[w - 1].key, t[i].key)) {
                continue; /* a later event of the same key */
            }
            t[w++] = t[i];
        }
        nt = w;
    }
    if (label_key && label_value) {
        struct wc_phead *h =
            wc->n_pbuckets
                ? *wc_phead_slot(wc, label_key, label_value,
                                 wc_pair_hash(label_key, label_value))
                : NULL;
        for (struct wc_post *p = h ? h->first : NULL; p; p = p->next) {
            wc_list_consider(p->e, prefix, plen, after_key, t, nt, filter,
                             filter_arg, &items, &n, &cap);
        }
    } else {
        for (size_t b = 0; b < wc->n_buckets; b++) {
            for (struct wc_entry *e = wc->buckets[b]; e; e = e->hnext) {
                wc_list_consider(e, prefix, plen, after_key, t, nt, filter,
                                 filter_arg, &items, &n, &cap);
            }
        }
    }
    for (size_t i = 0; i < nt; i++) {
        if (!t[i].text ||
            (filter && !filter(filter_arg, t[i].key, t[i].text->data,
                               t[i].text->len, NULL))) {
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            items = xrealloc(items, cap * sizeof *items);
        }
        items[n++] =
            (struct wc_item){t[i].key, wc_text_ref(t[i].text), t[i].rv, false};
    }
    /* Keys must outlive the lock: copy them (entries may go). */
    for (size_t i = 0; i < n; i++) {
        items[i].key = xstrdup(items[i].key);
    }
    pthread_rwlock_unlock(&wc->lock);
    free(t);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        struct wc_item it = items[i];
        if (it.text->packed) {
            struct wc_text *u = wc_text_plain(it.text);
            wc_text_unref(it.text);
            it.text = u;
        }
        if (it.check &&
            !filter(filter_arg, it.key, it.text->data, it.text->len, NULL)) {
            free((char *) it.key);
            wc_text_unref(it.text);
            continue;
        }
        items[kept++] = it;
    }
    n = kept;
    if (n > 1) {
        qsort(items, n, sizeof *items, wc_item_cmp);
    }
    int r = 0;
    for (size_t i = 0; i < n; i++) {
        if (!r) {
            struct store_kv kv = {(char *) items[i].key, items[i].text->data,
                                  items[i].text->len, items[i].rv};
            r = cb(arg, &kv);
        }
        free((char *) items[i].key);
        wc_text_unref(items[i].text);
    }
    free(items);
    if (list_rv) {
        *list_rv = at_rv;
    }
    return r;
}
