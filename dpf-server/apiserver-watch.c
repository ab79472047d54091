/* apiserver-watch: watch streams.
 *
 * A watch request subscribes to the watch cache and becomes a chunked
 * HTTP stream of newline-delimited {"type":...,"object":...} events. The
 * cache's notify callback runs on the writer's thread, so it only queues
 * the watch for the dispatcher thread, which drains pending events,
 * filters them (selectors), formats them (plain objects or Table rows)
 * and writes one batch per wake-up. The dispatcher also sends BOOKMARK
 * events and ends streams at their timeout.
 *
 * Semantics (Kubernetes'): resourceVersion unset or "0" first sends
 * synthetic ADDED events for the current state and then everything after
 * it; resourceVersion=N sends every event with a revision > N (so a
 * client that reconnects with the last revision it saw misses nothing and
 * sees nothing twice); a revision older than the cache holds yields one
 * ERROR event with a 410 Expired Status, after which the stream ends.
 *
 * Memory: every byte a watch holds for its client is in its HTTP stream's
 * queue, and only the dispatcher thread writes to watch streams (the
 * initial events built by the request handler are handed to it), so the
 * budgets are enforced in one place. Events are pulled from the watch
 * cache's ring, which holds them anyway, only while the stream's unsent
 * backlog is under watch_buffer_bytes: a watch whose client lags is
 * paused (its cursor stays in the ring) and polled every AS_WATCH_POLL_MS
 * until the client has drained, so a client catching up on a long backlog
 * is paced by its own reading instead of buffered. A paused watch whose
 * client drains nothing for AS_WATCH_STALL_MS is stalled and ended; one
 * that falls behind the ring gets 410. The total over all watches is
 * bounded the same way: at watch_buffer_total_bytes the dispatcher ends
 * stalled watches (clients that read nothing for AS_WATCH_EVICT_MS),
 * longest stalled first, and when there is none a watch waits, paused,
 * until there is room; a client that reads is never ended for the cap.
 * Only the dispatcher writes, so the total passes the cap by at most one
 * batch and one event. An ended stream just stops, as Kubernetes ends a
 * slow watcher: the client resumes from the last resourceVersion it saw,
 * or relists on 410. Writes are batched in pieces of at most
 * AS_WATCH_BATCH bytes so a backlog never sits in one buffer. Per watch:
 * at most watch_buffer_bytes + one batch + one event.
 *
 * Lifetime: a watch is reference counted: one reference for the hub
 * (until the dispatcher finishes it), one for the HTTP stream's on_close
 * callback, one per queue membership. Stream functions that may resume a
 * connection are never called with the hub lock held; ws->st of a watch
 * in hub->all stays valid until the dispatcher finishes it. */
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dpf-server/apiserver-private.h"
#include "lib/net/http-server.h"
#include "lib/base/log.h"
#include "lib/base/thread.h"
#include "lib/store/watch-cache.h"

LOG_MODULE(apiserver);

/* Bytes of formatted events the dispatcher collects before writing. */
#define AS_WATCH_BATCH (256u * 1024)
/* How often a paused watch looks whether its client has drained. */
#define AS_WATCH_POLL_MS 20
/* A paused watch whose client drains nothing for this long is ended. */
#define AS_WATCH_STALL_MS 10000
/* Over the global cap, watches whose clients drained nothing for this
 * long are ended to make room; others wait. */
#define AS_WATCH_EVICT_MS 2000
/* Least time between two searches for stalled watches over the cap. */
#define AS_WATCH_ROOM_SCAN_MS 100

struct as_watch {
    struct as_hub *hub;
    int refs;               /* under hub's lock */
    struct http_stream *st; /* set before ready */
    struct watcher *w;      /* cache subscription */
    const struct schema_kind *k;
    char *only_key;               /* watching one object: its key */
    struct as_filter filter;      /* selectors */
    struct as_format fmt;         /* output format */
    bool bookmarks;               /* allowWatchBookmarks */
    int64_t deadline_ms;          /* monotonic end of the stream */
    int64_t next_bookmark_ms;     /* monotonic time of the next bookmark */
    int64_t last_rv;              /* highest revision sent */
    bool ready;                   /* stream set up; dispatcher may write */
    bool queued;                  /* in the dispatcher queue */
    bool gone;                    /* client went away (on_close) */
    bool done;                    /* finished by the dispatcher */
    bool paused;                  /* backlog full: not pulling events */
    int64_t resume_ms;            /* paused: monotonic time of next look */
    int64_t drained_ms;           /* last time the backlog shrank or was
                                   * empty (monotonic) */
    size_t seen_queued;           /* backlog when last looked at */
    struct dbuf initial;          /* first events, for the dispatcher */
    char remote[64];              /* client address (logs) */
    struct as_watch *prev, *next; /* hub->all */
    struct as_watch *qnext;       /* hub queue */
};

struct as_hub {
    struct apiserver *as;
    struct worker w; /* lock, wake-up, stop flag, thread */
    struct as_watch *all;
    struct as_watch *qhead, *qtail;
    atomic_size_t buffered; /* bytes queued on all watch streams */
    int64_t next_scan_ms;   /* monotonic time of the next timer scan */
    int64_t room_scan_ms;   /* earliest next search for stalled watches */
};

static void
as_watch_unref_locked(struct as_watch *ws)
{
    if (--ws->refs == 0) {
        dbuf_free(&ws->initial);
        as_filter_free(&ws->filter);
        free(ws->only_key);
        free(ws);
    }
}

static void
as_enqueue_locked(struct as_hub *hub, struct as_watch *ws)
{
    if (ws->queued || ws->done) {
        return;
    }
    ws->queued = true;
    ws->refs++;
    ws->qnext = NULL;
    if (hub->qtail) {
        hub->qtail->qnext = ws;
    } else {
        hub->qhead = ws;
    }
    hub->qtail = ws;
    worker_wake(&hub->w);
}

static void
as_watch_notify(void *arg)
{
    struct as_watch *ws = arg;
    struct as_hub *hub = ws->hub;
    worker_lock(&hub->w);
    if (ws->ready) {
        as_enqueue_locked(hub, ws);
    }
    worker_unlock(&hub->w);
}

static void
as_watch_on_close(void *arg)
{
    struct as_watch *ws = arg;
    struct as_hub *hub = ws->hub;
    worker_lock(&hub->w);
    ws->gone = true;
    if (ws->ready) {
        as_enqueue_locked(hub, ws);
    }
    as_watch_unref_locked(ws);
    worker_unlock(&hub->w);
}

static const char *
as_event_type(enum store_event_type t)
{
    switch (t) {
    case STORE_EVENT_ADDED:
        return "ADDED";
    case STORE_EVENT_MODIFIED:
        return "MODIFIED";
    case STORE_EVENT_DELETED:
        return "DELETED";
    }
    return "MODIFIED";
}

static void
as_append_table_event(struct dbuf *b, const struct as_watch *ws,
                      const char *type, const json_t *obj)
{
    /* Built field by field: json_pack would drop the whole event for one
     * missing or unencodable value. */
    json_t *t = json_object();
    json_object_set_new(t, "kind", json_string("Table"));
    json_object_set_new(t, "apiVersion", json_string(ws->fmt.table_api));
    json_t *md = json_object();
    json_t *rv =
        json_object_get(json_object_get(obj, "metadata"), "resourceVersion");
    if (rv) {
        json_object_set(md, "resourceVersion", rv);
    }
    json_object_set_new(t, "metadata", md);
    json_object_set_new(t, "columnDefinitions", as_table_columns(ws->k));
    json_t *rows = json_array();
    json_array_append_new(
        rows, as_table_row(ws->k, obj, ws->fmt.include, time_wall_ns()));
    json_object_set_new(t, "rows", rows);
    char *text = json_dumps(t, JSON_COMPACT);
    json_decref(t);
    if (text) {
        dbuf_printf(b, "{\"type\":\"%s\",\"object\":%s}\n", type, text);
    }
    free(text);
}

/* Does one version of an object (stored text, with or without its
 * resourceVersion) pass the watch's selectors? */
static bool
as_watch_match(const struct as_watch *ws, const char *key, const char *text,
               size_t len)
{
    if (!as_filter_needs_object(&ws->filter)) {
        return as_filter_match(&ws->filter, key, NULL);
    }
    json_t *obj = as_filter_labels_only(&ws->filter)
                      ? as_load_labels(text, len)
                      : json_loadb(text, len, 0, NULL);
    bool ok = obj && as_filter_match(&ws->filter, key, obj);
    json_decref(obj);
    return ok;
}

static void
as_append_object(struct dbuf *b, const struct as_watch *ws, const char *type,
                 const char *object, size_t len)
{
    if (ws->fmt.out == AS_OUT_TABLE) {
        json_t *obj = json_loadb(object, len, 0, NULL);
        if (obj) {
            as_append_table_event(b, ws, type, obj);
        }
        json_decref(obj);
        return;
    }
    dbuf_printf(b, "{\"type\":\"%s\",\"object\":", type);
    dbuf_append(b, object, len);
    dbuf_puts(b, "}\n");
}

/* Append one event as this watch sees it (kube-apiserver's rules): with
 * selectors, an object that starts matching is ADDED, one that stops is
 * DELETED carrying its previous content with the event's
 * resourceVersion, and one that matches neither before nor after is not
 * sent. prev is the stored value before the event (NULL: none or
 * unknown); object has its resourceVersion set to rv. */
static void
as_append_event(struct dbuf *b, const struct as_watch *ws,
                enum store_event_type type, const char *key, const char *object,
                size_t len, const char *prev, size_t prev_len, int64_t rv)
{
    if (ws->only_key && strcmp(key, ws->only_key) != 0) {
        return;
    }
    if (!ws->filter.labels && !ws->filter.fields) {
        as_append_object(b, ws, as_event_type(type), object, len);
        return;
    }
    bool now =
        type != STORE_EVENT_DELETED && as_watch_match(ws, key, object, len);
    bool before = false;
    if (type == STORE_EVENT_DELETED) {
        /* The deleted value is the event's object. */
        before = as_watch_match(ws, key, object, len);
    } else if (prev && type == STORE_EVENT_MODIFIED) {
        before = as_watch_match(ws, key, prev, prev_len);
    }
    if (now) {
        as_append_object(b, ws, before ? "MODIFIED" : "ADDED", object, len);
    } else if (before && type == STORE_EVENT_DELETED) {
        as_append_object(b, ws, "DELETED", object, len);
    } else if (before) {
        size_t n;
        char *text = as_inject_rv(prev, prev_len, rv, &n);
        as_append_object(b, ws, "DELETED", text, n);
        free(text);
    }
}

/* A BOOKMARK at rv; initial_end marks the end of the initial events of a
 * sendInitialEvents=true watch (annotation k8s.io/initial-events-end). */
static void
as_append_bookmark_at(struct dbuf *b, const struct as_watch *ws, int64_t rv,
                      bool initial_end)
{
    dbuf_printf(b,
                "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"%s\","
                "\"apiVersion\":\"%s\",\"metadata\":{\"resourceVersion\":"
                "\"%lld\"%s}}}\n",
                ws->k->kind, schema_api_version(ws->k), (long long) rv,
                initial_end ? ",\"annotations\":{\"k8s.io/initial-events-end\":"
                              "\"true\"}"
                            : "");
}

static void
as_append_bookmark(struct dbuf *b, const struct as_watch *ws, int64_t rv)
{
    as_append_bookmark_at(b, ws, rv, false);
}

/* An ERROR event carrying a 410 Expired Status with message msg. */
static void
as_append_gone(struct dbuf *b, const char *msg)
{
    struct dpf_error e = {0};
    dpf_error_set(&e, 410, "Expired", "%s", msg);
    size_t len;
    char *st = kube_status_dump(&e, NULL, &len);
    dbuf_puts(b, "{\"type\":\"ERROR\",\"object\":");
    dbuf_append(b, st, len);
    dbuf_puts(b, "}\n");
    free(st);
}

static void
as_append_expired(struct dbuf *b, int64_t rv, int64_t cur)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "too old resource version: %lld (%lld)",
             (long long) rv, (long long) cur);
    as_append_gone(b, msg);
}

/* Dispatcher: look at ws's backlog; a client that read something since
 * the last look (or has nothing waiting) is draining. Returns the
 * backlog. */
static size_t
as_watch_observe(struct as_watch *ws, int64_t now)
{
    size_t q = http_stream_queued(ws->st);
    if (q == 0 || q < ws->seen_queued) {
        ws->drained_ms = now;
    }
    ws->seen_queued = q;
    return q;
}

/* Dispatcher: the backlog right after a write, remembered for the next
 * look (growth by our own writes is not the client's doing). */
static size_t
as_watch_wrote(struct as_watch *ws)
{
    ws->seen_queued = http_stream_queued(ws->st);
    return ws->seen_queued;
}

/* Dispatcher: is there room for len more bytes under the global cap?
 * Makes room by ending stalled watches (their clients read nothing for
 * AS_WATCH_EVICT_MS), the longest stalled first; a client that reads, even
 * slowly, is never ended for the cap, its watch waits instead. Scans at
 * most every AS_WATCH_ROOM_SCAN_MS. */
static bool
as_hub_room(struct as_hub *hub, size_t len)
{
    size_t cap = hub->as->cfg.watch_buffer_total_bytes;
    if (atomic_load(&hub->buffered) + len <= cap) {
        return true;
    }
    int64_t now = time_mono_ms();
    if (now < hub->room_scan_ms) {
        return false;
    }
    hub->room_scan_ms = now + AS_WATCH_ROOM_SCAN_MS;
    while (atomic_load(&hub->buffered) + len > cap) {
        struct as_watch *victim = NULL;
        size_t most = 0;
        worker_lock(&hub->w);
        for (struct as_watch *w = hub->all; w; w = w->next) {
            size_t q = w->st ? as_watch_observe(w, now) : 0;
            if (!q || now - w->drained_ms < AS_WATCH_EVICT_MS) {
                continue;
            }
            if (!victim || w->drained_ms < victim->drained_ms ||
                (w->drained_ms == victim->drained_ms && q > most)) {
                most = q;
                victim = w;
            }
        }
        worker_unlock(&hub->w);
        if (!victim) {
            return false;
        }
        log_warn_rl("ending a stalled watch: all watches together would "
                    "buffer more than --watch-buffer-total-bytes",
                    "resource=%s remote=%s queued=%zu total=%zu limit=%zu",
                    victim->k->plural, victim->remote, most,
                    (size_t) atomic_load(&hub->buffered), cap);
        /* Safe outside the lock: only this thread finishes watches. It
         * drops the victim's queue at once; the dispatcher finishes the
         * watch when its on_close arrives. */
        http_stream_abort(victim->st);
        victim->seen_queued = 0;
    }
    return true;
}

/* Dispatcher: queue data for ws's client. 0, or negative when the stream
 * is over (client gone, or its backlog passed the HTTP layer's bound). */
static int
as_watch_send(struct as_hub *hub, struct as_watch *ws, const char *data,
              size_t len)
{
    int r = http_stream_write(ws->st, data, len);
    if (r == -ENOBUFS) {
        log_warn_rl("ending a watch whose backlog passed its bound",
                    "resource=%s remote=%s limit=%zu", ws->k->plural,
                    ws->remote, hub->as->cfg.watch_buffer_bytes);
    }
    return r;
}

/* Dispatcher: end a watch. */
static void
as_watch_finish(struct as_hub *hub, struct as_watch *ws)
{
    worker_lock(&hub->w);
    ws->done = true;
    if (ws->prev) {
        ws->prev->next = ws->next;
    } else if (hub->all == ws) {
        hub->all = ws->next;
    }
    if (ws->next) {
        ws->next->prev = ws->prev;
    }
    ws->prev = ws->next = NULL;
    worker_unlock(&hub->w);
    if (ws->w) {
        watch_cache_unsubscribe(ws->w);
        ws->w = NULL;
    }
    http_stream_close(ws->st);
    worker_lock(&hub->w);
    as_watch_unref_locked(ws);
    worker_unlock(&hub->w);
}

/* Dispatcher: pause ws (its backlog is full); the timer scan brings it
 * back after AS_WATCH_POLL_MS. */
static void
as_watch_pause(struct as_hub *hub, struct as_watch *ws, int64_t now)
{
    ws->paused = true;
    worker_lock(&hub->w);
    ws->resume_ms = now + AS_WATCH_POLL_MS;
    if (ws->resume_ms < hub->next_scan_ms) {
        hub->next_scan_ms = ws->resume_ms;
        worker_wake(&hub->w);
    }
    worker_unlock(&hub->w);
}

/* Dispatcher: deliver what is pending, bookmarks, timeouts. */
static void
as_watch_process(struct as_hub *hub, struct as_watch *ws)
{
    worker_lock(&hub->w);
    bool gone = ws->gone, done = ws->done;
    worker_unlock(&hub->w);
    if (done) {
        return;
    }
    if (gone) {
        as_watch_finish(hub, ws);
        return;
    }
    int64_t now = time_mono_ms();
    size_t budget = hub->as->cfg.watch_buffer_bytes;
    size_t queued = as_watch_observe(ws, now);
    if (ws->paused) {
        if (now >= ws->deadline_ms) {
            as_watch_finish(hub, ws); /* timeoutSeconds: end as usual */
            return;
        }
        if (queued >= budget) {
            if (now - ws->drained_ms >= AS_WATCH_STALL_MS) {
                log_warn_rl("ending a stalled watch: its client has read "
                            "nothing for a while",
                            "resource=%s remote=%s queued=%zu", ws->k->plural,
                            ws->remote, queued);
                http_stream_abort(ws->st);
                as_watch_finish(hub, ws);
                return;
            }
            as_watch_pause(hub, ws, now);
            return;
        }
        ws->paused = false;
    }
    if (ws->initial.len) {
        if (!as_hub_room(hub, ws->initial.len)) {
            as_watch_pause(hub, ws, now); /* all buffers full: wait */
            return;
        }
        int r = as_watch_send(hub, ws, ws->initial.data, ws->initial.len);
        dbuf_free(&ws->initial);
        if (r < 0) {
            as_watch_finish(hub, ws);
            return;
        }
        queued = as_watch_wrote(ws);
    }
    if (!ws->w) {
        /* Failed at the start (410): the ERROR event was the stream. */
        as_watch_finish(hub, ws);
        return;
    }
    struct dbuf b;
    dbuf_init(&b);
    bool end = false, full = false;
    int64_t cur = watch_cache_current_rv(hub->as->wc);
    for (int n = 0; n < 10000; n++) {
        if (b.len >= AS_WATCH_BATCH || (b.len && queued + b.len >= budget)) {
            int r = as_watch_send(hub, ws, b.data, b.len);
            b.len = 0;
            if (r < 0) {
                end = true;
                break;
            }
            queued = as_watch_wrote(ws);
        }
        if (queued + b.len >= budget || !as_hub_room(hub, b.len + 1)) {
            full = true; /* the rest stays in the ring for now */
            break;
        }
        struct watch_event *ev = NULL;
        int r = watch_cache_next(ws->w, &ev);
        if (r == 0) {
            break;
        }
        if (r < 0) {
            as_append_expired(&b, ws->last_rv, cur);
            end = true;
            break;
        }
        if (ev->rv > ws->last_rv) {
            as_append_event(&b, ws, ev->type, ev->key, ev->object, ev->len,
                            ev->prev, ev->prev_len, ev->rv);
            ws->last_rv = ev->rv;
        }
        watch_event_release(ev);
        if (n == 9999) {
            /* More pending: come back after other watches had a turn. */
            worker_lock(&hub->w);
            as_enqueue_locked(hub, ws);
            worker_unlock(&hub->w);
        }
    }
    now = time_mono_ms();
    if (!end && !full && ws->bookmarks && now >= ws->next_bookmark_ms) {
        as_append_bookmark(&b, ws, DPF_MAX(cur, ws->last_rv));
        ws->next_bookmark_ms = now + hub->as->cfg.bookmark_interval_ms;
    }
    if (!end && now >= ws->deadline_ms) {
        if (ws->bookmarks) {
            as_append_bookmark(&b, ws, DPF_MAX(cur, ws->last_rv));
        }
        end = true;
    }
    if (b.len && as_watch_send(hub, ws, b.data, b.len) < 0) {
        end = true;
    }
    dbuf_free(&b);
    if (end) {
        as_watch_finish(hub, ws);
    } else if (full) {
        as_watch_wrote(ws);
        as_watch_pause(hub, ws, now);
    }
}

static void *
as_hub_main(void *arg)
{
    struct as_hub *hub = arg;
    worker_lock(&hub->w);
    hub->next_scan_ms = time_mono_ms() + 1000;
    while (!worker_stopping(&hub->w)) {
        struct as_watch *ws = hub->qhead;
        if (ws) {
            hub->qhead = ws->qnext;
            if (!hub->qhead) {
                hub->qtail = NULL;
            }
            ws->queued = false;
            worker_unlock(&hub->w);
            as_watch_process(hub, ws);
            worker_lock(&hub->w);
            as_watch_unref_locked(ws);
            continue;
        }
        int64_t now = time_mono_ms();
        if (now >= hub->next_scan_ms) {
            /* Timers: queue watches whose bookmark, deadline or pause
             * is due. */
            int64_t soonest = now + 1000;
            for (struct as_watch *w = hub->all; w; w = w->next) {
                int64_t due = w->deadline_ms;
                if (w->bookmarks && w->next_bookmark_ms < due) {
                    due = w->next_bookmark_ms;
                }
                if (w->paused && w->resume_ms < due) {
                    due = w->resume_ms;
                }
                if (due <= now) {
                    as_enqueue_locked(hub, w);
                } else if (due < soonest) {
                    soonest = due;
                }
            }
            hub->next_scan_ms = soonest;
            continue;
        }
        worker_wait(&hub->w, hub->next_scan_ms - now);
    }
    worker_unlock(&hub->w);
    return NULL;
}

struct as_hub *
as_hub_create(struct apiserver *as)
{
    struct as_hub *hub = xcalloc(1, sizeof(*hub));
    hub->as = as;
    worker_init(&hub->w);
    if (worker_start(&hub->w, "watch-hub", as_hub_main, hub) < 0) {
        log_error("cannot start the watch dispatcher thread", "thread=%s",
                  "watch");
    }
    return hub;
}

void
as_hub_destroy(struct as_hub *hub)
{
    if (!hub) {
        return;
    }
    worker_stop(&hub->w);
    /* Finish what is left: queued entries, then every live watch. */
    worker_lock(&hub->w);
    while (hub->qhead) {
        struct as_watch *ws = hub->qhead;
        hub->qhead = ws->qnext;
        ws->queued = false;
        as_watch_unref_locked(ws);
    }
    hub->qtail = NULL;
    while (hub->all) {
        struct as_watch *ws = hub->all;
        ws->refs++;
        worker_unlock(&hub->w);
        as_watch_finish(hub, ws);
        worker_lock(&hub->w);
        as_watch_unref_locked(ws);
    }
    worker_unlock(&hub->w);
    worker_destroy(&hub->w);
    free(hub);
}

struct as_initial {
    struct as_watch *ws;
    struct dbuf *b;
    size_t max;  /* the watch's buffer budget */
    bool over;   /* the initial events do not fit it */
    bool has_rv; /* the texts carry their resourceVersion (the object
                    * index's; the index also applied the selectors) */
};

static int
as_initial_each(void *arg, const struct store_kv *kv)
{
    struct as_initial *c = arg;
    if (c->ws->only_key && strcmp(kv->key, c->ws->only_key) != 0) {
        return 0;
    }
    if (c->has_rv) {
        as_append_object(c->b, c->ws, "ADDED", kv->value, kv->len);
    } else {
        size_t len;
        char *text = as_inject_rv(kv->value, kv->len, kv->rv, &len);
        as_append_event(c->b, c->ws, STORE_EVENT_ADDED, kv->key, text, len,
                        NULL, 0, kv->rv);
        free(text);
    }
    if (c->b->len > c->max) {
        c->over = true;
        return 1; /* stop listing */
    }
    return 0;
}

/* The initial state is larger than a watch may buffer: the client sent
 * no resourceVersion and cannot read it before we queue all of it. A 410
 * makes a client list (paged) and watch from the list's revision. */
static void
as_append_initial_too_large(struct dbuf *b, size_t max)
{
    char msg[192];
    snprintf(msg, sizeof(msg),
             "the initial events of this watch exceed its buffer of %zu "
             "bytes (--watch-buffer-bytes): list, then watch from the "
             "list's resourceVersion",
             max);
    as_append_gone(b, msg);
}

void
as_watch_serve(struct apiserver *as, struct http_request *req,
               const struct schema_kind *k, const char *ns, const char *name,
               const struct as_format *fmt)
{
    struct as_error ae = {0};
    struct as_hub *hub = as->hub;
    if (as_check_list_options(req, true, &ae) < 0) {
        as_respond_error(req, &ae);
        return;
    }
    struct as_watch *ws = xcalloc(1, sizeof(*ws));
    ws->hub = hub;
    ws->k = k;
    ws->fmt = *fmt;
    ws->refs = 1;
    if (as_filter_init(&ws->filter, k, http_request_query(req, "labelSelector"),
                       http_request_query(req, "fieldSelector"), &ae) < 0) {
        free(ws);
        as_respond_error(req, &ae);
        return;
    }
    if (name) {
        ws->only_key = as_key(k, ns, name);
    }
    const char *rvs = http_request_query(req, "resourceVersion");
    const char *sie = http_request_query(req, "sendInitialEvents");
    int64_t since = 0;
    bool no_rv = !rvs || !*rvs || !strcmp(rvs, "0");
    /* Without sendInitialEvents: the current state first only when no
     * resourceVersion is given (the legacy rule). With it: the state
     * (not older than resourceVersion) first when true, and nothing but
     * the changes after resourceVersion (or now) when false. */
    bool send_initial = sie && (!strcmp(sie, "true") || !strcmp(sie, "1"));
    bool initial = sie ? send_initial : no_rv;
    if (!no_rv) {
        char *end;
        long long v = strtoll(rvs, &end, 10);
        if (*end || v < 0) {
            as_error_set(&ae, 400, "BadRequest", "invalid resource version: %s",
                         rvs);
            as_filter_free(&ws->filter);
            free(ws->only_key);
            free(ws);
            as_respond_error(req, &ae);
            return;
        }
        since = v;
    }
    const char *ts = http_request_query(req, "timeoutSeconds");
    int64_t timeout_s = as->cfg.watch_timeout_s;
    if (ts && *ts) {
        timeout_s = strtoll(ts, NULL, 10);
        if (timeout_s < 0) {
            timeout_s = 0;
        }
    }
    const char *bm = http_request_query(req, "allowWatchBookmarks");
    ws->bookmarks = bm && (!strcmp(bm, "true") || !strcmp(bm, "1"));
    int64_t now = time_mono_ms();
    ws->deadline_ms = now + timeout_s * 1000;
    ws->next_bookmark_ms = now + as->cfg.bookmark_interval_ms;
    ws->drained_ms = now;

    struct dbuf *b = &ws->initial;
    dbuf_init(b);
    char *prefix = as_prefix(k, ns);
    bool too_large = false;
    if (initial) {
        struct as_initial c = {ws, b, as->cfg.watch_buffer_bytes, false, true};
        int64_t list_rv = 0;
        const char *from = ws->only_key ? ws->only_key : prefix;
        if (watch_cache_list(as->wc, from, NULL, 0, as_index_filter,
                             &ws->filter, as_initial_each, &c,
                             &list_rv) == -ENOTSUP) {
            c.has_rv = false;
            store_list(as->store, from, NULL, 0, as_initial_each, &c, &list_rv,
                       NULL, NULL);
        }
        since = list_rv;
        if (c.over) {
            too_large = true;
            dbuf_free(b);
            as_append_initial_too_large(b, c.max);
        } else if (send_initial && ws->bookmarks) {
            /* The client's informer is synced once it has read this. */
            as_append_bookmark_at(b, ws, list_rv, true);
        }
    } else if (sie && no_rv) {
        since = watch_cache_current_rv(as->wc);
    }
    ws->last_rv = since;
    int err = 0;
    if (!too_large) {
        ws->w = watch_cache_subscribe(as->wc, prefix, since, as_watch_notify,
                                      ws, &err);
        if (!ws->w) {
            as_append_expired(b, since, watch_cache_current_rv(as->wc));
        }
    }
    free(prefix);
    snprintf(ws->remote, sizeof(ws->remote), "%s", http_request_remote(req));
    http_response_header(req, "Cache-Control", "no-cache, private");
    ws->refs++; /* the stream's on_close reference */
    ws->st = http_respond_stream(req, 200, "application/json",
                                 as_watch_on_close, ws);
    /* The dispatcher stops pulling events at watch_buffer_bytes; the
     * stream's own bound is only a backstop above the batch and one event
     * (a Table row may carry its object twice) it may write past that. */
    http_stream_set_budget(ws->st,
                           as->cfg.watch_buffer_bytes + AS_WATCH_BATCH +
                               2 * as->cfg.max_body + 65536,
                           &hub->buffered);
    /* The first events (or the ERROR event) stay in ws->initial: the
     * dispatcher writes them, within the budgets, before anything else. */
    worker_lock(&hub->w);
    ws->ready = true;
    ws->next = hub->all;
    if (hub->all) {
        hub->all->prev = ws;
    }
    hub->all = ws;
    if (!ws->w || timeout_s == 0) {
        ws->deadline_ms = 0;
    }
    /* Deliver the first events and whatever arrived since the
     * subscription; also ends the stream after its ERROR event when it
     * already failed. */
    as_enqueue_locked(hub, ws);
    /* The creator's reference is now the hub's (dropped by finish). */
    worker_unlock(&hub->w);
}
