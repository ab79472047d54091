/* Unit tests for the watch cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"
#include "lib/store/watch-cache.h"

/* Feed one event for key with rv; the value is a small object. */
static void
feed(struct watch_cache *wc, enum store_event_type type, const char *key,
     int64_t rv)
{
    char value[128];
    snprintf(value, sizeof value,
             "{\"kind\":\"T\",\"metadata\":{\"name\":\"%s\"},\"n\":%" PRId64
             "}",
             key, rv);
    watch_cache_store_hook(wc, type, key, value, strlen(value), rv);
}

static int64_t
object_rv(const struct watch_event *ev)
{
    json_t *o = json_loadb(ev->object, ev->len, 0, NULL);
    assert_non_null(o);
    const char *s = json_string_value(
        json_object_get(json_object_get(o, "metadata"), "resourceVersion"));
    assert_non_null(s);
    int64_t rv = strtoll(s, NULL, 10);
    json_decref(o);
    return rv;
}

/* Pull one event; assert it exists and has the given rv. */
static void
expect_event(struct watcher *w, int64_t rv, const char *key)
{
    struct watch_event *ev = NULL;
    assert_int_equal(watch_cache_next(w, &ev), 1);
    assert_int_equal(ev->rv, rv);
    assert_int_equal(object_rv(ev), rv);
    assert_int_equal(ev->len, strlen(ev->object));
    if (key) {
        assert_string_equal(ev->key, key);
    }
    watch_event_release(ev);
}

static void
expect_none(struct watcher *w)
{
    struct watch_event *ev = (struct watch_event *) 1;
    assert_int_equal(watch_cache_next(w, &ev), 0);
    assert_null(ev);
}

static void
test_inject(void **state)
{
    struct watch_cache *wc = watch_cache_create(8, 10);
    struct watcher *w = watch_cache_subscribe(wc, "/", 0, NULL, NULL, NULL);
    assert_non_null(w);
    /* existing resourceVersion is replaced; metadata is created when
     * missing; non-objects pass through unchanged */
    const char *v1 = "{\"metadata\":{\"name\":\"a\",\"resourceVersion\":\"3\"},"
                     "\"spec\":{\"x\":[1,2]}}";
    watch_cache_store_hook(wc, STORE_EVENT_ADDED, "/a", v1, strlen(v1), 11);
    watch_cache_store_hook(wc, STORE_EVENT_MODIFIED, "/b", "{\"k\":1}", 7, 12);
    watch_cache_store_hook(wc, STORE_EVENT_DELETED, "/c", "[1]", 3, 13);
    struct watch_event *ev;
    assert_int_equal(watch_cache_next(w, &ev), 1);
    assert_int_equal(ev->type, STORE_EVENT_ADDED);
    assert_string_equal(ev->object,
                        "{\"metadata\":{\"name\":\"a\",\"resourceVersion\":"
                        "\"11\"},\"spec\":{\"x\":[1,2]}}");
    watch_event_release(ev);
    assert_int_equal(watch_cache_next(w, &ev), 1);
    assert_int_equal(ev->type, STORE_EVENT_MODIFIED);
    assert_string_equal(ev->object,
                        "{\"metadata\":{\"resourceVersion\":\"12\"},\"k\":1}");
    watch_event_release(ev);
    assert_int_equal(watch_cache_next(w, &ev), 1);
    assert_int_equal(ev->type, STORE_EVENT_DELETED);
    assert_string_equal(ev->object, "[1]");
    assert_int_equal(ev->len, 3);
    /* events outlive the cache's ring while referenced */
    watch_cache_unsubscribe(w);
    watch_cache_destroy(wc);
    assert_string_equal(ev->key, "/c");
    watch_event_release(ev);
}

static void
test_resume(void **state)
{
    struct watch_cache *wc = watch_cache_create(100, 1);
    assert_int_equal(watch_cache_current_rv(wc), 1);
    for (int64_t rv = 2; rv <= 31; rv++) {
        feed(wc, STORE_EVENT_ADDED, rv % 2 ? "/g/r/ns/odd" : "/g/r/ns/even",
             rv);
    }
    assert_int_equal(watch_cache_current_rv(wc), 31);
    /* a client that saw up to rv 20 resumes: 21..31 exactly once */
    struct watcher *w =
        watch_cache_subscribe(wc, "/g/r/", 20, NULL, NULL, NULL);
    assert_non_null(w);
    for (int64_t rv = 21; rv <= 31; rv++) {
        expect_event(w, rv, NULL);
    }
    expect_none(w);
    feed(wc, STORE_EVENT_MODIFIED, "/g/r/ns/even", 32);
    expect_event(w, 32, "/g/r/ns/even");
    expect_none(w);
    watch_cache_unsubscribe(w);

    /* resume from the start revision: everything */
    w = watch_cache_subscribe(wc, "/g/r/ns/odd", 1, NULL, NULL, NULL);
    assert_non_null(w);
    for (int64_t rv = 3; rv <= 31; rv += 2) {
        expect_event(w, rv, "/g/r/ns/odd");
    }
    expect_none(w);
    watch_cache_unsubscribe(w);

    /* since_rv = 0: only new events */
    w = watch_cache_subscribe(wc, "/", 0, NULL, NULL, NULL);
    expect_none(w);
    feed(wc, STORE_EVENT_ADDED, "/x", 33);
    expect_event(w, 33, "/x");
    watch_cache_unsubscribe(w);

    /* since_rv in the future (a list read ahead of the hook): events up to
     * it are skipped, later ones delivered */
    w = watch_cache_subscribe(wc, "/", 35, NULL, NULL, NULL);
    assert_non_null(w);
    feed(wc, STORE_EVENT_ADDED, "/y", 34);
    feed(wc, STORE_EVENT_ADDED, "/y", 35);
    expect_none(w);
    feed(wc, STORE_EVENT_ADDED, "/y", 36);
    expect_event(w, 36, "/y");
    watch_cache_unsubscribe(w);
    watch_cache_destroy(wc);
}

static void
test_prefix_isolation(void **state)
{
    struct watch_cache *wc = watch_cache_create(16, 1);
    struct watcher *w = watch_cache_subscribe(wc, "/a/b/", 0, NULL, NULL, NULL);
    feed(wc, STORE_EVENT_ADDED, "/a/bc/x", 2);
    feed(wc, STORE_EVENT_ADDED, "/a/b", 3);
    feed(wc, STORE_EVENT_ADDED, "/a/b/x", 4);
    feed(wc, STORE_EVENT_ADDED, "/a/", 5);
    expect_event(w, 4, "/a/b/x");
    expect_none(w);
    watch_cache_unsubscribe(w);
    watch_cache_destroy(wc);
}

static void
test_erange(void **state)
{
    struct watch_cache *wc = watch_cache_create(10, 100);
    int err = 0;
    /* nothing before the cache's start revision is known */
    assert_null(watch_cache_subscribe(wc, "/", 50, NULL, NULL, &err));
    assert_int_equal(err, -ERANGE);
    struct watcher *w = watch_cache_subscribe(wc, "/", 100, NULL, NULL, &err);
    assert_non_null(w);
    assert_int_equal(err, 0);
    for (int64_t rv = 101; rv <= 125; rv++) {
        feed(wc, STORE_EVENT_ADDED, "/k", rv);
    }
    /* the ring holds 116..125: since 115 is fine, 114 is too old */
    struct watcher *w2 = watch_cache_subscribe(wc, "/", 115, NULL, NULL, &err);
    assert_non_null(w2);
    expect_event(w2, 116, NULL);
    watch_cache_unsubscribe(w2);
    assert_null(watch_cache_subscribe(wc, "/", 114, NULL, NULL, &err));
    assert_int_equal(err, -ERANGE);
    /* the watcher that did not pull fell behind the ring */
    struct watch_event *ev = (struct watch_event *) 1;
    assert_int_equal(watch_cache_next(w, &ev), -ERANGE);
    assert_null(ev);
    watch_cache_unsubscribe(w);
    watch_cache_destroy(wc);
}

/* Feed an event whose value is about size bytes. */
static void
feed_big(struct watch_cache *wc, const char *key, int64_t rv, size_t size)
{
    char *value = xmalloc(size + 64);
    int n = snprintf(value, 64, "{\"metadata\":{\"name\":\"x\"},\"d\":\"");
    memset(value + n, 'a', size);
    memcpy(value + n + size, "\"}", 3);
    watch_cache_store_hook(wc, STORE_EVENT_MODIFIED, key, value, strlen(value),
                           rv);
    free(value);
}

/* The byte bound: the cache charges every event its key, value and
 * bookkeeping, evicts the oldest first to stay under the bound, and a
 * resume from an evicted revision is -ERANGE exactly as with the count
 * bound. */
static void
test_byte_bound(void **state)
{
    const size_t ev_size = 100000;
    struct watch_cache *wc = watch_cache_create(1000, 1);
    watch_cache_set_max_bytes(wc, 10 * ev_size + ev_size / 2);
    int err = 0;
    struct watcher *slow = watch_cache_subscribe(wc, "/", 1, NULL, NULL, &err);
    assert_non_null(slow);
    feed_big(wc, "/k", 2, ev_size);
    size_t one = watch_cache_bytes(wc);
    /* charged at least the value, and not much more */
    assert_true(one >= ev_size && one < ev_size + 1024);
    /* an update is also charged the value it replaced, which the event
     * keeps (a selector watch needs it) once the index has let it go */
    feed_big(wc, "/k", 3, ev_size);
    size_t two = watch_cache_bytes(wc) - one;
    assert_true(two >= 2 * ev_size && two < 2 * ev_size + 1024);
    for (int64_t rv = 4; rv <= 101; rv++) {
        feed_big(wc, "/k", rv, ev_size);
        assert_true(watch_cache_bytes(wc) <= 10 * ev_size + ev_size / 2);
    }
    /* 5 of 100 updates fit: 97..101 (their texts carry 2- and 3-digit
     * resourceVersions where the second event's had 1) */
    assert_int_equal(watch_cache_events(wc), 5);
    assert_true(watch_cache_bytes(wc) >= 5 * two &&
                watch_cache_bytes(wc) <= 5 * two + 5 * 4);
    struct watcher *w = watch_cache_subscribe(wc, "/", 96, NULL, NULL, &err);
    assert_non_null(w);
    expect_event(w, 97, "/k");
    watch_cache_unsubscribe(w);
    assert_null(watch_cache_subscribe(wc, "/", 95, NULL, NULL, &err));
    assert_int_equal(err, -ERANGE);
    struct watch_event *ev = NULL;
    assert_int_equal(watch_cache_next(slow, &ev), -ERANGE);
    watch_cache_unsubscribe(slow);

    /* small events: the count bound still applies, bytes follow evictions */
    for (int64_t rv = 102; rv <= 3101; rv++) {
        feed(wc, STORE_EVENT_ADDED, "/s", rv);
    }
    assert_int_equal(watch_cache_events(wc), 1000);
    assert_true(watch_cache_bytes(wc) < 1000 * 512);

    /* an event larger than the bound stays alone (the newest is kept) */
    feed_big(wc, "/huge", 3102, 20 * ev_size);
    assert_int_equal(watch_cache_events(wc), 1);
    assert_true(watch_cache_bytes(wc) > 20 * ev_size);
    w = watch_cache_subscribe(wc, "/", 3101, NULL, NULL, &err);
    assert_non_null(w);
    expect_event(w, 3102, "/huge");
    expect_none(w);
    feed(wc, STORE_EVENT_ADDED, "/s", 3103);
    assert_int_equal(watch_cache_events(wc), 1);
    expect_event(w, 3103, "/s");
    watch_cache_unsubscribe(w);

    /* no bound: nothing evicted but by count */
    watch_cache_set_max_bytes(wc, 0);
    for (int64_t rv = 3104; rv <= 3110; rv++) {
        feed_big(wc, "/k", rv, ev_size);
    }
    assert_int_equal(watch_cache_events(wc), 8);
    watch_cache_destroy(wc);
}

/* notify counter for a watcher */
struct counter {
    atomic_int n;
};

static void
count_notify(void *arg)
{
    struct counter *c = arg;
    atomic_fetch_add(&c->n, 1);
}

static void
test_idle_prefix_watcher(void **state)
{
    struct watch_cache *wc = watch_cache_create(10, 1);
    struct counter c = {0};
    struct watcher *w =
        watch_cache_subscribe(wc, "/mine/", 0, count_notify, &c, NULL);
    expect_none(w);
    /* 100 unrelated events: far more than the ring */
    for (int64_t rv = 2; rv < 102; rv++) {
        feed(wc, STORE_EVENT_ADDED, "/theirs/k", rv);
    }
    assert_int_equal(atomic_load(&c.n), 0);
    feed(wc, STORE_EVENT_ADDED, "/mine/k", 102);
    assert_int_equal(atomic_load(&c.n), 1);
    /* not re-notified until it drains */
    feed(wc, STORE_EVENT_ADDED, "/mine/k", 103);
    assert_int_equal(atomic_load(&c.n), 1);
    expect_event(w, 102, "/mine/k");
    expect_event(w, 103, "/mine/k");
    expect_none(w);
    feed(wc, STORE_EVENT_ADDED, "/mine/k", 104);
    assert_int_equal(atomic_load(&c.n), 2);
    /* unsubscribe stops notify */
    watch_cache_unsubscribe(w);
    assert_int_equal(watch_cache_watchers(wc), 0);
    feed(wc, STORE_EVENT_ADDED, "/mine/k", 105);
    assert_int_equal(atomic_load(&c.n), 2);
    watch_cache_destroy(wc);
}

/* ---- fan-out ---- */

enum { FAN_WATCHERS = 1000, FAN_EVENTS = 1000, FAN_THREADS = 4 };

struct fan {
    struct watch_cache *wc;
    struct watcher *w[FAN_WATCHERS];
    atomic_int wake[FAN_WATCHERS];
    int64_t last[FAN_WATCHERS];
    int got[FAN_WATCHERS];
    bool bad;
    atomic_bool done;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    atomic_int notifies;
};

struct fan_slot {
    struct fan *fan;
    int i;
};

static void
fan_notify(void *arg)
{
    struct fan_slot *s = arg;
    atomic_store(&s->fan->wake[s->i], 1);
    atomic_fetch_add(&s->fan->notifies, 1);
    pthread_mutex_lock(&s->fan->lock);
    pthread_cond_broadcast(&s->fan->cond);
    pthread_mutex_unlock(&s->fan->lock);
}

struct fan_worker {
    struct fan *fan;
    int first, step;
};

/* Drains its share of watchers whenever they are notified. */
static void *
fan_worker_main(void *p)
{
    struct fan_worker *wk = p;
    struct fan *f = wk->fan;
    for (;;) {
        bool finished = true;
        for (int i = wk->first; i < FAN_WATCHERS; i += wk->step) {
            if (atomic_exchange(&f->wake[i], 0)) {
                struct watch_event *ev;
                int rc;
                while ((rc = watch_cache_next(f->w[i], &ev)) == 1) {
                    if (ev->rv != f->last[i] + 1) {
                        f->bad = true;
                    }
                    __atomic_store_n(&f->last[i], ev->rv, __ATOMIC_RELAXED);
                    f->got[i]++;
                    watch_event_release(ev);
                }
                if (rc < 0) {
                    f->bad = true;
                }
            }
            if (f->got[i] < FAN_EVENTS) {
                finished = false;
            }
        }
        if (finished) {
            return NULL;
        }
        pthread_mutex_lock(&f->lock);
        bool pending = false;
        for (int i = wk->first; i < FAN_WATCHERS; i += wk->step) {
            pending |= atomic_load(&f->wake[i]) != 0;
        }
        if (!pending) {
            pthread_cond_wait(&f->cond, &f->lock);
        }
        pthread_mutex_unlock(&f->lock);
    }
}

static void
test_fanout(void **state)
{
    struct fan *f = xcalloc(1, sizeof *f);
    struct fan_slot *slots = xcalloc(FAN_WATCHERS, sizeof *slots);
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    /* ring smaller than the event count: watchers must keep up */
    f->wc = watch_cache_create(FAN_EVENTS / 2, 1);
    for (int i = 0; i < FAN_WATCHERS; i++) {
        slots[i] = (struct fan_slot){.fan = f, .i = i};
        f->last[i] = 1;
        f->w[i] =
            watch_cache_subscribe(f->wc, "/g/", 1, fan_notify, &slots[i], NULL);
        assert_non_null(f->w[i]);
    }
    assert_int_equal(watch_cache_watchers(f->wc), FAN_WATCHERS);
    pthread_t th[FAN_THREADS];
    struct fan_worker wk[FAN_THREADS];
    for (int t = 0; t < FAN_THREADS; t++) {
        wk[t] = (struct fan_worker){.fan = f, .first = t, .step = FAN_THREADS};
        assert_int_equal(pthread_create(&th[t], NULL, fan_worker_main, &wk[t]),
                         0);
    }
    int64_t t0 = time_mono_ns();
    for (int64_t rv = 2; rv < 2 + FAN_EVENTS; rv++) {
        feed(f->wc, STORE_EVENT_MODIFIED, "/g/r/ns/obj", rv);
        /* Backpressure: the ring is half the run; a real server would end
         * slow watchers with 410, here we wait for the slowest watcher
         * instead, so the test checks delivery, not speed. */
        for (;;) {
            int64_t min = INT64_MAX;
            for (int i = 0; i < FAN_WATCHERS; i++) {
                min = DPF_MIN(min,
                              __atomic_load_n(&f->last[i], __ATOMIC_RELAXED));
            }
            if (rv - min < FAN_EVENTS / 4) {
                break;
            }
            sched_yield();
        }
    }
    for (int t = 0; t < FAN_THREADS; t++) {
        pthread_join(th[t], NULL);
    }
    int64_t t1 = time_mono_ns();
    assert_false(f->bad);
    for (int i = 0; i < FAN_WATCHERS; i++) {
        assert_int_equal(f->got[i], FAN_EVENTS);
        assert_int_equal(f->last[i], 1 + FAN_EVENTS);
    }
    print_message("fan-out: %d watchers x %d events in %.1f ms, %d notifies\n",
                  FAN_WATCHERS, FAN_EVENTS, (t1 - t0) / 1e6,
                  atomic_load(&f->notifies));
    for (int i = 0; i < FAN_WATCHERS; i++) {
        watch_cache_unsubscribe(f->w[i]);
    }
    assert_int_equal(watch_cache_watchers(f->wc), 0);
    watch_cache_destroy(f->wc);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->cond);
    free(slots);
    free(f);
}

/* ---- unsubscribe racing with notify ---- */

struct race {
    struct watch_cache *wc;
    atomic_bool stop;
};

static void
race_notify(void *arg)
{
    /* touches the watcher's owner state: must never run after
     * unsubscribe returned (ASan would flag the freed counter) */
    struct counter *c = arg;
    atomic_fetch_add(&c->n, 1);
}

static void *
race_feeder(void *p)
{
    struct race *r = p;
    int64_t rv = 2;
    while (!atomic_load(&r->stop)) {
        feed(r->wc, STORE_EVENT_ADDED, "/k", rv++);
    }
    return NULL;
}

static void
test_unsubscribe_race(void **state)
{
    struct race r = {.wc = watch_cache_create(64, 1)};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, race_feeder, &r), 0);
    for (int i = 0; i < 2000; i++) {
        struct counter *c = xcalloc(1, sizeof *c);
        struct watcher *w =
            watch_cache_subscribe(r.wc, "/", 0, race_notify, c, NULL);
        assert_non_null(w);
        struct watch_event *ev;
        while (watch_cache_next(w, &ev) == 1) {
            watch_event_release(ev);
        }
        watch_cache_unsubscribe(w);
        free(c);
    }
    atomic_store(&r.stop, true);
    pthread_join(th, NULL);
    watch_cache_destroy(r.wc);
}

/* A new SQLite store in a fresh directory made from template dir. */
static struct store *
temp_store(char *dir)
{
    assert_non_null(mkdtemp(dir));
    char url[128];
    snprintf(url, sizeof url, "sqlite:%s/s.db?sync=off", dir);
    struct store_options opts = {.create = true};
    struct dpf_error err = {0};
    struct store *s = store_open(url, &opts, &err);
    assert_non_null(s);
    return s;
}

static void
temp_store_close(struct store *s, const char *dir)
{
    store_close(s);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* The object index: each event carries the key's previous value, and
 * lists come from memory, now or as they were at an older revision that
 * the ring still reaches back to. */
struct collected {
    char names[64][32];
    int64_t rvs[64];
    size_t n;
};

static int
collect(void *arg, const struct store_kv *kv)
{
    struct collected *c = arg;
    snprintf(c->names[c->n], sizeof c->names[0], "%s", kv->key);
    /* the listed text carries the object's own revision */
    char want[48];
    snprintf(want, sizeof want, "\"resourceVersion\":\"%" PRId64 "\"", kv->rv);
    assert_non_null(strstr(kv->value, want));
    c->rvs[c->n++] = kv->rv;
    return 0;
}

static bool
only_team_a(void *arg, const char *key, const char *value, size_t len,
            const struct watch_cache_labels *labels)
{
    (void) arg;
    (void) key;
    if (!labels) {
        /* an older version: the caller parses the text itself */
        return strstr(value, "\"team\":\"a\"") != NULL && len > 0;
    }
    const char *t = watch_cache_label(labels, "team");
    return t && !strcmp(t, "a");
}

static void
feed_team(struct watch_cache *wc, enum store_event_type type, const char *key,
          const char *team, int64_t rv)
{
    char value[160];
    snprintf(value, sizeof value,
             "{\"metadata\":{\"name\":\"%s\",\"labels\":{\"team\":"
             "\"%s\",\"x\":\"y\"}},\"n\":%" PRId64 "}",
             key, team, rv);
    watch_cache_store_hook(wc, type, key, value, strlen(value), rv);
}

static void
test_index(void **state)
{
    (void) state;
    char dir[] = "/tmp/test-wc-index-XXXXXX";
    struct dpf_error err = {0};
    struct store *s = temp_store(dir);
    int64_t rv = 0;
    const char *v1 = "{\"metadata\":{\"labels\":{\"team\":\"a\"}}}";
    assert_int_equal(store_create(s, "/p/a", v1, strlen(v1), &rv, &err), 0);
    const char *v2 = "{\"metadata\":{\"labels\":{\"team\":\"b\"}}}";
    assert_int_equal(store_create(s, "/p/b", v2, strlen(v2), &rv, &err), 0);

    struct watch_cache *wc = watch_cache_create(100, store_current_rv(s));
    struct collected c = {0};
    int64_t at = 0;
    assert_int_equal(
        watch_cache_list(wc, "/p/", NULL, 0, NULL, NULL, collect, &c, &at),
        -ENOTSUP);
    struct store_kv kv = {0};
    assert_int_equal(watch_cache_get(wc, "/p/a", &kv), -ENOTSUP);
    assert_int_equal(watch_cache_load(wc, s, &err), 0);
    size_t objects = 0, bytes = 0;
    watch_cache_index_stats(wc, &objects, &bytes);
    assert_int_equal(objects, 2);
    /* a get answers as the store does: text, revision, or no object */
    struct store_kv sk = {0};
    assert_int_equal(store_get(s, "/p/b", &sk, &err), 0);
    assert_int_equal(watch_cache_get(wc, "/p/b", &kv), 0);
    assert_string_equal(kv.key, "/p/b");
    assert_int_equal(kv.rv, sk.rv);
    assert_int_equal(kv.len, strlen(kv.value));
    assert_non_null(strstr(kv.value, "\"team\":\"b\""));
    store_kv_free(&kv);
    store_kv_free(&sk);
    assert_int_equal(watch_cache_get(wc, "/p/zz", &kv), -ENOENT);
    assert_int_equal(watch_cache_get(wc, "/p/", &kv), -ENOENT);
    assert_true(bytes > strlen(v1) + strlen(v2));
    int64_t loaded = watch_cache_current_rv(wc);
    assert_int_equal(loaded, rv);

    /* selector over the parsed labels, in key order */
    assert_int_equal(watch_cache_list(wc, "/p/", NULL, 0, only_team_a, NULL,
                                      collect, &c, &at),
                     0);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.names[0], "/p/a");
    assert_int_equal(at, loaded);

    /* a moves to team b: the event carries its previous value */
    int e = 0;
    struct watcher *w =
        watch_cache_subscribe(wc, "/p/", loaded, NULL, NULL, &e);
    feed_team(wc, STORE_EVENT_MODIFIED, "/p/a", "b", loaded + 1);
    feed_team(wc, STORE_EVENT_ADDED, "/p/c", "a", loaded + 2);
    feed_team(wc, STORE_EVENT_DELETED, "/p/b", "b", loaded + 3);
    struct watch_event *ev = NULL;
    assert_int_equal(watch_cache_next(w, &ev), 1);
    assert_non_null(ev->prev);
    /* every text the cache hands out carries its own revision */
    char v1_rv[96];
    snprintf(v1_rv, sizeof v1_rv,
             "{\"metadata\":{\"resourceVersion\":\"%" PRId64
             "\",\"labels\":{\"team\":\"a\"}}}",
             loaded - 1);
    assert_string_equal(ev->prev, v1_rv);
    assert_int_equal(ev->prev_rv, loaded - 1);
    watch_event_release(ev);
    assert_int_equal(watch_cache_next(w, &ev), 1);
    assert_null(ev->prev); /* created */
    watch_event_release(ev);
    assert_int_equal(watch_cache_next(w, &ev), 1);
    assert_non_null(ev->prev); /* deleted: its last value */
    watch_event_release(ev);
    watch_cache_unsubscribe(w);

    /* a get follows every write: a's new value, c created, b deleted */
    assert_int_equal(watch_cache_get(wc, "/p/a", &kv), 0);
    assert_int_equal(kv.rv, loaded + 1);
    assert_non_null(strstr(kv.value, "\"team\":\"b\""));
    store_kv_free(&kv);
    assert_int_equal(watch_cache_get(wc, "/p/c", &kv), 0);
    assert_int_equal(kv.rv, loaded + 2);
    store_kv_free(&kv);
    assert_int_equal(watch_cache_get(wc, "/p/b", &kv), -ENOENT);

    /* now: c only has team a; b is gone */
    memset(&c, 0, sizeof c);
    watch_cache_list(wc, "/p/", NULL, 0, only_team_a, NULL, collect, &c, &at);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.names[0], "/p/c");
    memset(&c, 0, sizeof c);
    watch_cache_list(wc, "/p/", NULL, 0, NULL, NULL, collect, &c, &at);
    assert_int_equal(c.n, 2);
    assert_int_equal(at, loaded + 3);

    /* as it was at the load: a (team a, old rv) and b; no c */
    memset(&c, 0, sizeof c);
    assert_int_equal(
        watch_cache_list(wc, "/p/", NULL, loaded, NULL, NULL, collect, &c, &at),
        0);
    assert_int_equal(at, loaded);
    assert_int_equal(c.n, 2);
    assert_string_equal(c.names[0], "/p/a");
    assert_int_equal(c.rvs[0], loaded - 1);
    assert_string_equal(c.names[1], "/p/b");
    memset(&c, 0, sizeof c);
    watch_cache_list(wc, "/p/", NULL, loaded, only_team_a, NULL, collect, &c,
                     &at);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.names[0], "/p/a");
    /* after a key */
    memset(&c, 0, sizeof c);
    watch_cache_list(wc, "/p/", "/p/a", loaded, NULL, NULL, collect, &c, &at);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.names[0], "/p/b");
    /* older than the ring reaches, or newer than the cache */
    assert_int_equal(
        watch_cache_list(wc, "/p/", NULL, 1, NULL, NULL, collect, &c, &at),
        -ERANGE);
    assert_int_equal(watch_cache_list(wc, "/p/", NULL, loaded + 9, NULL, NULL,
                                      collect, &c, &at),
                     -ERANGE);
    watch_cache_destroy(wc);
    temp_store_close(s, dir);
}

/* Keys under a skipped prefix (the server's Events) stay out of the
 * index: not loaded, no previous value on their events, and a list that
 * could include them says -ENOTSUP so the caller reads the store; other
 * prefixes list from the index as before and watchers still get every
 * event. */
static void
test_skip_index(void **state)
{
    (void) state;
    char dir[] = "/tmp/test-wc-skip-XXXXXX";
    struct dpf_error err = {0};
    struct store *s = temp_store(dir);
    int64_t rv = 0;
    const char *v = "{\"metadata\":{\"labels\":{\"team\":\"a\"}}}";
    assert_int_equal(store_create(s, "/p/a", v, strlen(v), &rv, &err), 0);
    assert_int_equal(store_create(s, "/ev/x/1", v, strlen(v), &rv, &err), 0);
    assert_int_equal(store_create(s, "/ev/y/2", v, strlen(v), &rv, &err), 0);

    struct watch_cache *wc = watch_cache_create(100, store_current_rv(s));
    watch_cache_skip_index(wc, "/ev/");
    assert_int_equal(watch_cache_load(wc, s, &err), 0);
    size_t objects = 0;
    watch_cache_index_stats(wc, &objects, NULL);
    assert_int_equal(objects, 1);
    int64_t loaded = watch_cache_current_rv(wc);

    struct collected c = {0};
    int64_t at = 0;
    /* the skipped prefix, one under it, and one above it */
    assert_int_equal(
        watch_cache_list(wc, "/ev/", NULL, 0, NULL, NULL, collect, &c, &at),
        -ENOTSUP);
    assert_int_equal(
        watch_cache_list(wc, "/ev/x/", NULL, 0, NULL, NULL, collect, &c, &at),
        -ENOTSUP);
    assert_int_equal(
        watch_cache_list(wc, "/", NULL, 0, NULL, NULL, collect, &c, &at),
        -ENOTSUP);
    assert_int_equal(c.n, 0);
    /* a get under the skipped prefix sends the caller to the store */
    struct store_kv kv = {0};
    assert_int_equal(watch_cache_get(wc, "/ev/x/1", &kv), -ENOTSUP);
    assert_int_equal(watch_cache_get(wc, "/p/a", &kv), 0);
    store_kv_free(&kv);
    assert_int_equal(
        watch_cache_list(wc, "/p/", NULL, 0, NULL, NULL, collect, &c, &at), 0);
    assert_int_equal(c.n, 1);
    assert_string_equal(c.names[0], "/p/a");

    int e = 0;
    struct watcher *w =
        watch_cache_subscribe(wc, "/ev/", loaded, NULL, NULL, &e);
    feed_team(wc, STORE_EVENT_MODIFIED, "/ev/x/1", "b", loaded + 1);
    feed_team(wc, STORE_EVENT_DELETED, "/ev/y/2", "a", loaded + 2);
    struct watch_event *ev = NULL;
    assert_int_equal(watch_cache_next(w, &ev), 1);
    assert_string_equal(ev->key, "/ev/x/1");
    assert_null(ev->prev); /* not indexed: unknown */
    assert_non_null(strstr(ev->object, "\"team\":\"b\""));
    watch_event_release(ev);
    assert_int_equal(watch_cache_next(w, &ev), 1);
    assert_int_equal(ev->type, STORE_EVENT_DELETED);
    assert_non_null(strstr(ev->object, "\"team\":\"a\"")); /* its value */
    watch_event_release(ev);
    assert_int_equal(watch_cache_next(w, &ev), 0);
    watch_cache_unsubscribe(w);
    watch_cache_index_stats(wc, &objects, NULL);
    assert_int_equal(objects, 1);
    watch_cache_destroy(wc);
    temp_store_close(s, dir);
}

/* Cold values are kept deflated: what was loaded from the store and what
 * left the ring without being written again. Lists, filters and events'
 * previous values still see the exact texts, and the index takes a
 * fraction of the bytes. */
static void
thing(char *buf, size_t cap, int i, int gen)
{
    snprintf(buf, cap,
             "{\"apiVersion\":\"v1\",\"kind\":\"Thing\",\"metadata\":{"
             "\"name\":\"thing-%03d\",\"namespace\":\"ns\",\"labels\":{"
             "\"team\":\"%s\"},\"managedFields\":[{\"manager\":\"dpf\","
             "\"operation\":\"Update\",\"fieldsType\":\"FieldsV1\","
             "\"fieldsV1\":{\"f:spec\":{\"f:size\":{},\"f:color\":{}}}}]},"
             "\"spec\":{\"size\":%d,\"color\":\"blue\",\"note\":\"%0*d\"},"
             "\"status\":{\"generation\":%d,\"phase\":\"Ready\"}}",
             i, i % 2 ? "a" : "b", i, 1500, i, gen);
}

static size_t
packed_raw_total(int n)
{
    size_t t = 0;
    char v[2048];
    for (int i = 0; i < n; i++) {
        thing(v, sizeof v, i, 0);
        t += strlen(v);
    }
    return t;
}

struct texts {
    size_t n;
    char keys[64][40];
    char *values[64];
};

static int
keep_text(void *arg, const struct store_kv *kv)
{
    struct texts *t = arg;
    snprintf(t->keys[t->n], sizeof t->keys[0], "%s", kv->key);
    assert_int_equal(strlen(kv->value), kv->len);
    t->values[t->n++] = xstrdup(kv->value);
    return 0;
}

static void
texts_free(struct texts *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->values[i]);
    }
    memset(t, 0, sizeof *t);
}

/* The text the cache should hand out: the stored one with its revision. */
static void
expect_thing(const char *got, int i, int gen, int64_t rv)
{
    char v[2048];
    thing(v, sizeof v, i, gen);
    json_t *want = json_loads(v, 0, NULL);
    char rvs[24];
    snprintf(rvs, sizeof rvs, "%" PRId64, rv);
    json_object_set_new(json_object_get(want, "metadata"), "resourceVersion",
                        json_string(rvs));
    json_t *have = json_loads(got, 0, NULL);
    assert_non_null(have);
    assert_true(json_equal(want, have));
    json_decref(want);
    json_decref(have);
}

static bool
size_even(void *arg, const char *key, const char *value, size_t len,
          const struct watch_cache_labels *labels)
{
    (void) arg;
    (void) key;
    (void) labels;
    json_t *o = json_loadb(value, len, 0, NULL);
    assert_non_null(o);
    bool even = json_integer_value(
                    json_object_get(json_object_get(o, "spec"), "size")) %
                    2 ==
                0;
    json_decref(o);
    return even;
}

static void
test_packed(void **state)
{
    (void) state;
    enum { N = 40 };
    char dir[] = "/tmp/test-wc-packed-XXXXXX";
    struct dpf_error err = {0};
    struct store *s = temp_store(dir);
    int64_t rvs[N];
    char key[40], v[2048];
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "/g/things/ns/thing-%03d", i);
        thing(v, sizeof v, i, 0);
        assert_int_equal(store_create(s, key, v, strlen(v), &rvs[i], &err), 0);
    }
    /* a ring of 4 events: later writes push values out of it */
    struct watch_cache *wc = watch_cache_create(4, store_current_rv(s));
    assert_int_equal(watch_cache_load(wc, s, &err), 0);
    size_t objects = 0, bytes = 0;
    watch_cache_index_stats(wc, &objects, &bytes);
    assert_int_equal(objects, N);
    /* loaded values are packed: keys, bookkeeping and all take less
     * than half of the bare texts (plain, they would take more) */
    size_t raw = packed_raw_total(N);
    assert_true(bytes < raw / 2);

    /* a list hands out the exact texts, in key order */
    struct texts t = {0};
    int64_t at = 0;
    assert_int_equal(watch_cache_list(wc, "/g/things/", NULL, 0, NULL, NULL,
                                      keep_text, &t, &at),
                     0);
    assert_int_equal(t.n, N);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "/g/things/ns/thing-%03d", i);
        assert_string_equal(t.keys[i], key);
        expect_thing(t.values[i], i, 0, rvs[i]);
    }
    texts_free(&t);
    /* a get of a packed value hands out the exact text too */
    for (int i = 0; i < N; i += 7) {
        struct store_kv kv = {0};
        snprintf(key, sizeof key, "/g/things/ns/thing-%03d", i);
        assert_int_equal(watch_cache_get(wc, key, &kv), 0);
        assert_int_equal(kv.rv, rvs[i]);
        expect_thing(kv.value, i, 0, rvs[i]);
        store_kv_free(&kv);
    }
    /* a filter that reads the text gets it unpacked */
    assert_int_equal(watch_cache_list(wc, "/g/things/", NULL, 0, size_even,
                                      NULL, keep_text, &t, &at),
                     0);
    assert_int_equal(t.n, N / 2);
    for (size_t j = 0; j < t.n; j++) {
        expect_thing(t.values[j], (int) j * 2, 0, rvs[j * 2]);
    }
    texts_free(&t);
    /* the label index still works on packed values */
    assert_int_equal(watch_cache_list_label(wc, "/g/things/", NULL, 0, "team",
                                            "a", only_team_a, NULL, keep_text,
                                            &t, &at),
                     0);
    assert_int_equal(t.n, N / 2);
    texts_free(&t);

    /* writing a packed object: its event's previous value is the plain
     * old text */
    int e = 0;
    int64_t rv = store_current_rv(s);
    struct watcher *w = watch_cache_subscribe(wc, "/g/", rv, NULL, NULL, &e);
    assert_non_null(w);
    thing(v, sizeof v, 7, 1);
    watch_cache_store_hook(wc, STORE_EVENT_MODIFIED, "/g/things/ns/thing-007",
                           v, strlen(v), ++rv);
    struct watch_event *ev = NULL;
    assert_int_equal(watch_cache_next(w, &ev), 1);
    assert_non_null(ev->prev);
    assert_int_equal(ev->prev_len, strlen(ev->prev));
    expect_thing(ev->prev, 7, 0, rvs[7]);
    expect_thing(ev->object, 7, 1, rv);
    watch_event_release(ev);
    int64_t rv7 = rv;
    /* deleting a packed one: the event's previous value is what it was */
    thing(v, sizeof v, 8, 0);
    watch_cache_store_hook(wc, STORE_EVENT_DELETED, "/g/things/ns/thing-008", v,
                           strlen(v), ++rv);
    assert_int_equal(watch_cache_next(w, &ev), 1);
    assert_int_equal(ev->type, STORE_EVENT_DELETED);
    expect_thing(ev->prev, 8, 0, rvs[8]);
    watch_event_release(ev);
    watch_cache_unsubscribe(w);

    /* more writes push thing-007's event out of the ring: its value is
     * packed again, and listed as written */
    size_t before = 0;
    for (int g = 2; g < 8; g++) {
        thing(v, sizeof v, 9, g);
        watch_cache_store_hook(wc, STORE_EVENT_MODIFIED,
                               "/g/things/ns/thing-009", v, strlen(v), ++rv);
        if (g == 2) {
            /* 007 still in the ring, 009 just written: both plain */
            watch_cache_index_stats(wc, NULL, &before);
        }
    }
    /* 009 is as large as before; 007 went from plain to packed */
    watch_cache_index_stats(wc, NULL, &bytes);
    assert_true(bytes + 200 < before);
    assert_int_equal(watch_cache_list(wc, "/g/things/ns/thing-00", NULL, 0,
                                      NULL, NULL, keep_text, &t, &at),
                     0);
    assert_int_equal(t.n, 9); /* 000..009 without 008 */
    expect_thing(t.values[7], 7, 1, rv7);
    expect_thing(t.values[8], 9, 7, rv);
    texts_free(&t);
    watch_cache_destroy(wc);
    temp_store_close(s, dir);
}

/* The inverted label index lists by k=v exactly what a walk of every
 * object with the same filter lists, through creates, relabels, deletes
 * and a listing at an older revision. */
static void
test_label_index(void **state)
{
    (void) state;
    char dir[] = "/tmp/test-wc-label-XXXXXX";
    struct dpf_error err = {0};
    struct store *s = temp_store(dir);
    struct watch_cache *wc = watch_cache_create(1000, store_current_rv(s));
    assert_int_equal(watch_cache_load(wc, s, &err), 0);
    int64_t rv = watch_cache_current_rv(wc);
    char key[32];
    for (int i = 0; i < 60; i++) {
        snprintf(key, sizeof key, "/p/o%02d", i);
        feed_team(wc, STORE_EVENT_ADDED, key, i % 3 ? "b" : "a", ++rv);
    }
    int64_t before = rv;
    /* relabel some, delete some, add one under another prefix */
    for (int i = 0; i < 60; i += 7) {
        snprintf(key, sizeof key, "/p/o%02d", i);
        feed_team(wc, STORE_EVENT_MODIFIED, key, i % 2 ? "a" : "b", ++rv);
    }
    for (int i = 1; i < 60; i += 11) {
        snprintf(key, sizeof key, "/p/o%02d", i);
        feed_team(wc, STORE_EVENT_DELETED, key, "a", ++rv);
    }
    feed_team(wc, STORE_EVENT_ADDED, "/q/x", "a", ++rv);
    int64_t revs[] = {0, before};
    for (size_t r = 0; r < 2; r++) {
        struct collected all = {0}, hinted = {0};
        int64_t at1 = 0, at2 = 0;
        assert_int_equal(watch_cache_list(wc, "/p/", NULL, revs[r], only_team_a,
                                          NULL, collect, &all, &at1),
                         0);
        assert_int_equal(watch_cache_list_label(wc, "/p/", NULL, revs[r],
                                                "team", "a", only_team_a, NULL,
                                                collect, &hinted, &at2),
                         0);
        assert_int_equal(at1, at2);
        assert_true(all.n > 5);
        assert_int_equal(all.n, hinted.n);
        for (size_t i = 0; i < all.n; i++) {
            assert_string_equal(all.names[i], hinted.names[i]);
            assert_int_equal(all.rvs[i], hinted.rvs[i]);
        }
    }
    /* a pair nobody carries lists nothing */
    struct collected none = {0};
    int64_t at = 0;
    assert_int_equal(watch_cache_list_label(wc, "/p/", NULL, 0, "team", "z",
                                            NULL, NULL, collect, &none, &at),
                     0);
    assert_int_equal(none.n, 0);
    /* every object deleted: the pairs go, the index is as small as new */
    size_t objects = 0, bytes = 0;
    for (int i = 0; i < 60; i++) {
        snprintf(key, sizeof key, "/p/o%02d", i);
        feed_team(wc, STORE_EVENT_DELETED, key, "a", ++rv);
    }
    feed_team(wc, STORE_EVENT_DELETED, "/q/x", "a", ++rv);
    watch_cache_index_stats(wc, &objects, &bytes);
    assert_int_equal(objects, 0);
    memset(&none, 0, sizeof none);
    watch_cache_list_label(wc, "/p/", NULL, 0, "team", "b", NULL, NULL, collect,
                           &none, &at);
    assert_int_equal(none.n, 0);
    watch_cache_destroy(wc);
    temp_store_close(s, dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inject),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_prefix_isolation),
        cmocka_unit_test(test_erange),
        cmocka_unit_test(test_byte_bound),
        cmocka_unit_test(test_idle_prefix_watcher),
        cmocka_unit_test(test_fanout),
        cmocka_unit_test(test_unsubscribe_race),
        cmocka_unit_test(test_index),
        cmocka_unit_test(test_skip_index),
        cmocka_unit_test(test_label_index),
        cmocka_unit_test(test_packed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
