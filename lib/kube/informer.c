/* informer: see informer.h. One state at a time: a list in flight, a watch
 * in flight, or a backoff timer armed; `call` and `retry` hold whichever
 * is current, so stop() only has to cancel those two. */
#include "lib/kube/informer.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/base/log.h"
#include "lib/base/util.h"

LOG_MODULE(informer);

#define BACKOFF_BASE_MS 800
#define BACKOFF_MAX_MS 30000
#define DEFAULT_PAGE 500
#define DEFAULT_WATCH_TIMEOUT_S 300

struct informer {
    struct kube_rest *rest;
    struct loop *loop;
    struct kube_gvr gvr; /* strings owned */
    char *path;          /* collection path */
    char *label_selector;
    char *field_selector;
    int64_t resync_ms;
    long page_size; /* 0 = unpaged */
    long watch_timeout_s;
    struct kube_cache *cache;
    void (*transform)(json_t *obj); /* informer_set_transform() */
    bool (*skip_text)(void *arg, const char *text, size_t len);
    void *skip_arg;
    struct informer_handlers *handlers;
    size_t n_handlers;
    bool running;
    struct kube_call *call;     /* list or watch in flight */
    struct loop_timer *retry;   /* backoff timer */
    struct loop_timer *resync;  /* resync timer */
    unsigned failures;          /* consecutive failures (backoff step) */
    json_t *listed;             /* list in progress: key -> its text */
    char *list_rv;              /* its resourceVersion (first page) */
    int64_t watch_start_ms;     /* when the current watch began */
    uint64_t watch_events;      /* events in the current watch */
    bool want_relist;           /* the watch saw a 410 ERROR event */
    struct dpf_error event_err; /* another ERROR event's Status */
    uint64_t rng;               /* xorshift state for jitter */
    /* shared with other threads */
    pthread_mutex_t mu;
    pthread_cond_t synced_cv;
    bool synced;
    char rv[64];
    struct informer_stats stats;
};

/* metadata.managedFields is for apply's conflict detection on the
 * server; a cache holding it for every object is a large share of a
 * controller's memory (with 10,000 DPUs, hundreds of MB), as client-go's
 * informers' users find and strip it too. */
static void
strip_managed_fields(struct informer *inf, json_t *obj)
{
    json_object_del(json_object_get(obj, "metadata"), "managedFields");
    if (inf->transform) {
        inf->transform(obj);
    }
}

static uint64_t
rng_next(struct informer *inf)
{
    uint64_t x = inf->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    inf->rng = x;
    return x;
}

/* Uniform in [0, 1). */
static double
rng_unit(struct informer *inf)
{
    return (double) (rng_next(inf) >> 11) / (double) (1ull << 53);
}

static void
stat_add(struct informer *inf, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&inf->mu);
    *field += n;
    pthread_mutex_unlock(&inf->mu);
}

static void
set_rv(struct informer *inf, const json_t *obj)
{
    const char *rv = json_string_value(
        json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
    if (!rv || !*rv) {
        return;
    }
    pthread_mutex_lock(&inf->mu);
    snprintf(inf->rv, sizeof inf->rv, "%s", rv);
    pthread_mutex_unlock(&inf->mu);
}

static const char *
obj_rv(const json_t *obj)
{
    const char *rv = json_string_value(
        json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
    return rv ? rv : "";
}

/* --- handler delivery --- */

static void
emit_add(struct informer *inf, const json_t *obj)
{
    for (size_t i = 0; i < inf->n_handlers; i++) {
        if (inf->handlers[i].on_add) {
            inf->handlers[i].on_add(inf->handlers[i].arg, obj);
        }
    }
}

static void
emit_update(struct informer *inf, const json_t *old, const json_t *obj)
{
    for (size_t i = 0; i < inf->n_handlers; i++) {
        if (inf->handlers[i].on_update) {
            inf->handlers[i].on_update(inf->handlers[i].arg, old, obj);
        }
    }
}

static void
emit_delete(struct informer *inf, const json_t *obj)
{
    for (size_t i = 0; i < inf->n_handlers; i++) {
        if (inf->handlers[i].on_delete) {
            inf->handlers[i].on_delete(inf->handlers[i].arg, obj);
        }
    }
}

/* --- state machine --- */

static void start_list(struct informer *inf);
static void start_watch(struct informer *inf);

static void
on_retry(void *arg, struct loop_timer *t)
{
    struct informer *inf = arg;
    loop_timer_cancel(inf->retry);
    inf->retry = NULL;
    if (!inf->running) {
        return;
    }
    if (inf->synced) {
        start_watch(inf); /* a stale resourceVersion turns into a relist */
    } else {
        start_list(inf);
    }
}

/* Count a failure and retry after the backoff delay. */
static void
backoff(struct informer *inf, const char *what, const struct dpf_error *err)
{
    stat_add(inf, &inf->stats.errors, 1);
    unsigned n = inf->failures < 16 ? inf->failures : 16;
    inf->failures++;
    int64_t d = (int64_t) BACKOFF_BASE_MS << n;
    if (d > BACKOFF_MAX_MS) {
        d = BACKOFF_MAX_MS;
    }
    /* uniform in [d/2, d): spread retries of many informers */
    int64_t delay = d / 2 + (int64_t) (rng_unit(inf) * (double) (d / 2));
    log_warn_rl("retrying", "resource=%s op=%s delay_ms=%lld error=\"%s\"",
                inf->gvr.resource, what, (long long) delay,
                err && err->message[0] ? err->message : "unknown");
    inf->retry = loop_timer_add(inf->loop, delay, 0, on_retry, inf);
}

/* Replace the cache with the finished list and emit the differences. */
static void
apply_list(struct informer *inf)
{
    json_t *keys = kube_cache_keys(inf->cache);
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        const char *key = json_string_value(k);
        if (!json_object_get(inf->listed, key)) {
            json_t *old = kube_cache_remove(inf->cache, key);
            if (old) {
                emit_delete(inf, old);
                json_decref(old);
            }
        }
    }
    json_decref(keys);
    const char *key;
    json_t *text;
    json_object_foreach(inf->listed, key, text)
    {
        json_t *obj = json_loadb(json_string_value(text),
                                 json_string_length(text), 0, NULL);
        if (!obj) {
            continue; /* it was dumped by on_page(): cannot happen */
        }
        json_t *old = kube_cache_put(inf->cache, obj, NULL);
        if (!old) {
            emit_add(inf, obj);
        } else if (strcmp(obj_rv(old), obj_rv(obj)) != 0) {
            emit_update(inf, old, obj);
        }
        json_decref(old);
        json_decref(obj);
    }
}

/* on_page's value when a paged list cannot be resumed safely. */
#define LIST_NEEDS_UNPAGED 2

static int
on_page(void *arg, json_t *page)
{
    struct informer *inf = arg;
    if (!inf->list_rv) {
        json_t *md = json_object_get(page, "metadata");
        const char *rv =
            json_string_value(json_object_get(md, "resourceVersion"));
        const char *next = json_string_value(json_object_get(md, "continue"));
        if ((!rv || !*rv || !strcmp(rv, "0")) && next && *next) {
            /* A first page without a usable resourceVersion leaves no
             * safe point to watch from (a later page's may be past
             * deletions of objects on earlier pages): list unpaged. */
            json_decref(page);
            return LIST_NEEDS_UNPAGED;
        }
        inf->list_rv = xstrdup(rv ? rv : "");
    }
    json_t *items = json_object_get(page, "items");
    size_t i;
    json_t *obj;
    json_array_foreach(items, i, obj)
    {
        char *key = kube_cache_key(obj);
        if (key && json_is_object(obj)) {
            /* Kept as text until the list is complete, as the cache keeps
             * objects: a parsed tree takes about ten times its text (an
             * emulator re-listing 20,000 pods held 1.5 GB of trees). */
            strip_managed_fields(inf, obj);
            char *t = json_dumps(obj, JSON_COMPACT);
            size_t tl = t ? strlen(t) : 0;
            if (t && inf->skip_text && inf->skip_text(inf->skip_arg, t, tl)) {
                stat_add(inf, &inf->stats.skipped, 1);
            } else if (t) {
                json_object_set_new_nocheck(inf->listed, key,
                                            json_stringn_nocheck(t, tl));
            }
            free(t);
        }
        free(key);
    }
    json_decref(page);
    return 0;
}

static void
on_list_done(void *arg, int rc, const struct kube_response *resp,
             const struct dpf_error *err)
{
    struct informer *inf = arg;
    inf->call = NULL;
    if (rc == -ESTALE) {
        /* the continue token expired mid-list: start over */
        json_decref(inf->listed);
        inf->listed = NULL;
        stat_add(inf, &inf->stats.relists, 1);
        start_list(inf);
        return;
    }
    if (rc == LIST_NEEDS_UNPAGED) {
        log_info("list pages carry no resourceVersion, listing unpaged",
                 "resource=%s", inf->gvr.resource);
        inf->page_size = 0;
        start_list(inf);
        return;
    }
    if (rc != 0) {
        json_decref(inf->listed);
        inf->listed = NULL;
        backoff(inf, "list", err);
        return;
    }
    apply_list(inf);
    json_decref(inf->listed);
    inf->listed = NULL;
    pthread_mutex_lock(&inf->mu);
    snprintf(inf->rv, sizeof inf->rv, "%s", inf->list_rv);
    inf->stats.lists++;
    if (!inf->synced) {
        inf->synced = true;
        pthread_cond_broadcast(&inf->synced_cv);
    }
    pthread_mutex_unlock(&inf->mu);
    free(inf->list_rv);
    inf->list_rv = NULL;
    inf->failures = 0;
    log_debug("listed", "resource=%s objects=%zu rv=%s", inf->gvr.resource,
              kube_cache_len(inf->cache), inf->rv);
    start_watch(inf);
}

static void
start_list(struct informer *inf)
{
    json_decref(inf->listed);
    inf->listed = json_object();
    free(inf->list_rv);
    inf->list_rv = NULL;
    struct kube_list_options lo = {.label_selector = inf->label_selector,
                                   .field_selector = inf->field_selector,
                                   .limit = inf->page_size,
                                   .timeout_ms = 300000};
    inf->call =
        kube_rest_list(inf->rest, inf->path, &lo, on_page, on_list_done, inf);
}

static int
on_event(void *arg, enum kube_event_type type, json_t *obj)
{
    struct informer *inf = arg;
    switch (type) {
    case KUBE_EVENT_ERROR: {
        long code = (long) json_integer_value(json_object_get(obj, "code"));
        if (code == 410) {
            inf->want_relist = true;
            return 1;
        }
        const char *msg = json_string_value(json_object_get(obj, "message"));
        dpf_error_set(&inf->event_err, code ? (int) code : 500, "InternalError",
                      "watch ERROR event: %s", msg ? msg : "no message");
        return -EIO;
    }
    case KUBE_EVENT_BOOKMARK:
        set_rv(inf, obj);
        return 0;
    case KUBE_EVENT_ADDED:
    case KUBE_EVENT_MODIFIED: {
        int rc;
        strip_managed_fields(inf, obj);
        json_t *old = kube_cache_put(inf->cache, obj, &rc);
        if (rc < 0) {
            return -EPROTO; /* no metadata.name: not an object we know */
        }
        if (old) {
            emit_update(inf, old, obj);
            json_decref(old);
        } else {
            emit_add(inf, obj);
        }
        break;
    }
    case KUBE_EVENT_DELETED: {
        char *key = kube_cache_key(obj);
        if (!key) {
            return -EPROTO;
        }
        json_t *old = kube_cache_remove(inf->cache, key);
        free(key);
        if (old) {
            json_decref(old);
            emit_delete(inf, obj);
        }
        break;
    }
    }
    set_rv(inf, obj);
    inf->watch_events++;
    inf->failures = 0;
    stat_add(inf, &inf->stats.events, 1);
    return 0;
}

static void
on_watch_done(void *arg, int rc, const struct kube_response *resp,
              const struct dpf_error *err)
{
    struct informer *inf = arg;
    inf->call = NULL;
    if ((rc == 1 && inf->want_relist) || rc == -ESTALE) {
        log_info("resourceVersion expired, listing again", "resource=%s rv=%s",
                 inf->gvr.resource, inf->rv);
        stat_add(inf, &inf->stats.relists, 1);
        start_list(inf);
        return;
    }
    if (rc == 0) {
        /* The server ended the stream (timeoutSeconds). A stream that ends
         * at once without events is a misbehaving server: back off. */
        int64_t lasted = loop_now_ms(inf->loop) - inf->watch_start_ms;
        if (inf->watch_events == 0 && lasted < 1000) {
            struct dpf_error e = {0};
            dpf_error_set(&e, 500, "InternalError",
                          "watch ended after %lld ms without an event",
                          (long long) lasted);
            backoff(inf, "watch", &e);
            return;
        }
        start_watch(inf);
        return;
    }
    backoff(inf, "watch", inf->event_err.code ? &inf->event_err : err);
}

/* kube_watch_skip_fn for the watch: the user's filter, counted. */
static bool
watch_skip(void *arg, const char *text, size_t len)
{
    struct informer *inf = arg;
    if (!inf->skip_text(inf->skip_arg, text, len)) {
        return false;
    }
    stat_add(inf, &inf->stats.skipped, 1);
    return true;
}

static void
start_watch(struct informer *inf)
{
    char rv[64];
    pthread_mutex_lock(&inf->mu);
    snprintf(rv, sizeof rv, "%s", inf->rv);
    inf->stats.watches++;
    pthread_mutex_unlock(&inf->mu);
    long t = inf->watch_timeout_s;
    struct kube_watch_options wo = {
        .label_selector = inf->label_selector,
        .field_selector = inf->field_selector,
        .resource_version = rv,
        .allow_bookmarks = true,
        .timeout_seconds = t + (long) (rng_unit(inf) * (double) t),
        .skip = inf->skip_text ? watch_skip : NULL,
    };
    inf->want_relist = false;
    dpf_error_clear(&inf->event_err);
    inf->watch_events = 0;
    inf->watch_start_ms = loop_now_ms(inf->loop);
    inf->call = kube_rest_watch(inf->rest, inf->path, &wo, on_event,
                                on_watch_done, inf);
}

static void
on_resync(void *arg, struct loop_timer *t)
{
    struct informer *inf = arg;
    if (!inf->synced) {
        return;
    }
    json_t *all = kube_cache_list(inf->cache);
    size_t i;
    json_t *obj;
    json_array_foreach(all, i, obj)
    {
        emit_update(inf, obj, obj);
    }
    json_decref(all);
    stat_add(inf, &inf->stats.resyncs, 1);
}

/* --- public --- */

struct informer *
informer_create(struct kube_rest *rest, const struct informer_options *o)
{
    struct informer *inf = xcalloc(1, sizeof *inf);
    inf->rest = rest;
    inf->loop = kube_rest_loop(rest);
    inf->gvr.group = xstrdup(o->gvr.group ? o->gvr.group : "");
    inf->gvr.version = xstrdup(o->gvr.version);
    inf->gvr.resource = xstrdup(o->gvr.resource);
    inf->gvr.namespaced = o->gvr.namespaced;
    inf->path = kube_path(&o->gvr, o->namespace, NULL, NULL);
    inf->label_selector = o->label_selector && *o->label_selector
                              ? xstrdup(o->label_selector)
                              : NULL;
    inf->field_selector = o->field_selector && *o->field_selector
                              ? xstrdup(o->field_selector)
                              : NULL;
    inf->resync_ms = o->resync_ms > 0 ? o->resync_ms : 0;
    inf->page_size = o->page_size == 0  ? DEFAULT_PAGE
                     : o->page_size < 0 ? 0
                                        : o->page_size;
    inf->watch_timeout_s =
        o->watch_timeout_s > 0 ? o->watch_timeout_s : DEFAULT_WATCH_TIMEOUT_S;
    inf->skip_text = o->skip_text;
    inf->skip_arg = o->skip_arg;
    inf->cache = kube_cache_create();
    inf->rng = (uint64_t) time_mono_ns() ^ (uint64_t) (uintptr_t) inf;
    if (!inf->rng) {
        inf->rng = 0x9e3779b97f4a7c15ull;
    }
    pthread_mutex_init(&inf->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&inf->synced_cv, &ca);
    pthread_condattr_destroy(&ca);
    return inf;
}

void
informer_add_handlers(struct informer *inf, const struct informer_handlers *h)
{
    inf->handlers =
        xrealloc(inf->handlers, (inf->n_handlers + 1) * sizeof *inf->handlers);
    inf->handlers[inf->n_handlers++] = *h;
    if (inf->synced && h->on_add) {
        json_t *all = kube_cache_list(inf->cache);
        size_t i;
        json_t *obj;
        json_array_foreach(all, i, obj)
        {
            h->on_add(h->arg, obj);
        }
        json_decref(all);
    }
}

void
informer_set_transform(struct informer *inf, void (*fn)(json_t *obj))
{
    inf->transform = fn;
}

int
informer_add_index(struct informer *inf, const char *name, kube_index_fn fn,
                   void *arg)
{
    return kube_cache_add_index(inf->cache, name, fn, arg);
}

void
informer_start(struct informer *inf)
{
    if (inf->running) {
        return;
    }
    inf->running = true;
    if (inf->resync_ms > 0) {
        inf->resync = loop_timer_add(inf->loop, inf->resync_ms, inf->resync_ms,
                                     on_resync, inf);
    }
    start_list(inf);
}

void
informer_stop(struct informer *inf)
{
    inf->running = false;
    kube_rest_cancel(inf->call);
    inf->call = NULL;
    loop_timer_cancel(inf->retry);
    inf->retry = NULL;
    loop_timer_cancel(inf->resync);
    inf->resync = NULL;
    json_decref(inf->listed);
    inf->listed = NULL;
}

void
informer_destroy(struct informer *inf)
{
    if (!inf) {
        return;
    }
    informer_stop(inf);
    kube_cache_destroy(inf->cache);
    free((char *) inf->gvr.group);
    free((char *) inf->gvr.version);
    free((char *) inf->gvr.resource);
    free(inf->path);
    free(inf->label_selector);
    free(inf->field_selector);
    free(inf->handlers);
    free(inf->list_rv);
    pthread_cond_destroy(&inf->synced_cv);
    pthread_mutex_destroy(&inf->mu);
    free(inf);
}

struct kube_cache *
informer_cache(struct informer *inf)
{
    return inf->cache;
}

const struct kube_gvr *
informer_gvr(const struct informer *inf)
{
    return &inf->gvr;
}

bool
informer_has_synced(struct informer *inf)
{
    pthread_mutex_lock(&inf->mu);
    bool s = inf->synced;
    pthread_mutex_unlock(&inf->mu);
    return s;
}

int
informer_wait_synced(struct informer *inf, int64_t timeout_ms)
{
    struct timespec dl;
    clock_gettime(CLOCK_MONOTONIC, &dl);
    if (timeout_ms >= 0) {
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (timeout_ms % 1000) * 1000000;
        if (dl.tv_nsec >= 1000000000) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000;
        }
    }
    int rc = 0;
    pthread_mutex_lock(&inf->mu);
    while (!inf->synced && rc == 0) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&inf->synced_cv, &inf->mu);
        } else if (pthread_cond_timedwait(&inf->synced_cv, &inf->mu, &dl) ==
                   ETIMEDOUT) {
            rc = inf->synced ? 0 : -ETIMEDOUT;
        }
    }
    pthread_mutex_unlock(&inf->mu);
    return rc;
}

void
informer_last_rv(struct informer *inf, char *buf, size_t size)
{
    pthread_mutex_lock(&inf->mu);
    snprintf(buf, size, "%s", inf->rv);
    pthread_mutex_unlock(&inf->mu);
}

void
informer_stats(struct informer *inf, struct informer_stats *out)
{
    pthread_mutex_lock(&inf->mu);
    *out = inf->stats;
    pthread_mutex_unlock(&inf->mu);
}
