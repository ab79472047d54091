/* workqueue: see workqueue.h. One mutex guards everything; the sets are
 * jansson objects used as string hash sets, the ready keys two FIFOs (the
 * urgent lane is served first), the delayed keys a binary min-heap on due
 * time with lazy deletion (an entry whose time no longer matches `waiting`
 * was superseded by an earlier add_after and is skipped when it comes
 * up). */
#include "lib/kube/workqueue.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/base/util.h"

#define DEFAULT_BASE_MS 5
#define DEFAULT_MAX_MS 1000000
#define DEFAULT_JITTER 0.1

struct delayed {
    int64_t due_ms;
    char *key;
};

/* Ready keys: items[head .. tail). */
struct fifo {
    char **items;
    size_t head, tail, cap;
};

struct workqueue {
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* a key may be ready (getters wait here) */
    pthread_cond_t idle_cv; /* processing became empty (drain waits) */
    int64_t base_ms;
    int64_t max_ms;
    double jitter;
    uint64_t rng;
    struct fifo ready;  /* ready keys */
    struct fifo urgent; /* ready keys marked urgent: handed out first */
    json_t *marked;     /* keys marked urgent (workqueue_set_urgent) */
    json_t *in_ready;   /* keys whose live entry is in the ready lane */
    /* key -> entries left behind in the ready lane when the key was
     * marked urgent while it waited there (a copy went to the urgent
     * lane): skipped when they come up */
    json_t *moved;
    json_t *dirty;      /* keys that need processing (queued or re-added) */
    json_t *processing; /* keys handed out and not done */
    json_t *waiting;    /* key -> due time of its delayed add */
    json_t *failures;   /* key -> consecutive failures */
    struct delayed *heap;
    size_t n_heap, cap_heap;
    bool shutting_down;
    uint64_t adds;    /* keys that entered the queue (not de-duplicated) */
    uint64_t retries; /* rate-limited adds */
};

static int64_t
now_ms(void)
{
    return time_mono_ms();
}

static double
rng_unit(struct workqueue *q)
{
    uint64_t x = q->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    q->rng = x;
    return (double) (x >> 11) / (double) (1ull << 53);
}

struct workqueue *
workqueue_create(const struct workqueue_options *o)
{
    static const struct workqueue_options none;
    if (!o) {
        o = &none;
    }
    struct workqueue *q = xcalloc(1, sizeof *q);
    pthread_mutex_init(&q->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->cv, &ca);
    pthread_cond_init(&q->idle_cv, &ca);
    pthread_condattr_destroy(&ca);
    q->base_ms = o->base_delay_ms > 0 ? o->base_delay_ms : DEFAULT_BASE_MS;
    q->max_ms = o->max_delay_ms > 0 ? o->max_delay_ms : DEFAULT_MAX_MS;
    q->jitter = o->jitter > 0 ? o->jitter : o->jitter < 0 ? 0 : DEFAULT_JITTER;
    if (q->jitter > 1) {
        q->jitter = 1;
    }
    q->rng = (uint64_t) time_mono_ns() ^ (uint64_t) (uintptr_t) q;
    if (!q->rng) {
        q->rng = 0x2545f4914f6cdd1dull;
    }
    q->dirty = json_object();
    q->processing = json_object();
    q->waiting = json_object();
    q->failures = json_object();
    q->marked = json_object();
    q->in_ready = json_object();
    q->moved = json_object();
    return q;
}

void
workqueue_destroy(struct workqueue *q)
{
    if (!q) {
        return;
    }
    struct fifo *lanes[] = {&q->ready, &q->urgent};
    for (size_t l = 0; l < 2; l++) {
        for (size_t i = lanes[l]->head; i < lanes[l]->tail; i++) {
            free(lanes[l]->items[i]);
        }
        free(lanes[l]->items);
    }
    for (size_t i = 0; i < q->n_heap; i++) {
        free(q->heap[i].key);
    }
    free(q->heap);
    json_decref(q->dirty);
    json_decref(q->processing);
    json_decref(q->waiting);
    json_decref(q->failures);
    json_decref(q->marked);
    json_decref(q->in_ready);
    json_decref(q->moved);
    pthread_cond_destroy(&q->cv);
    pthread_cond_destroy(&q->idle_cv);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

static void
fifo_push(struct fifo *f, const char *key)
{
    if (f->tail == f->cap) {
        if (f->head > 0) { /* reuse the consumed front */
            memmove(f->items, f->items + f->head,
                    (f->tail - f->head) * sizeof *f->items);
            f->tail -= f->head;
            f->head = 0;
        }
        if (f->tail == f->cap) {
            f->cap = f->cap ? f->cap * 2 : 64;
            f->items = xrealloc(f->items, f->cap * sizeof *f->items);
        }
    }
    f->items[f->tail++] = xstrdup(key);
}

/* The first key of f (the caller owns it), or NULL when f is empty. */
static char *
fifo_pop(struct fifo *f)
{
    if (f->head == f->tail) {
        return NULL;
    }
    char *key = f->items[f->head++];
    if (f->head == f->tail) {
        f->head = f->tail = 0;
    }
    return key;
}

static size_t
fifo_len(const struct fifo *f)
{
    return f->tail - f->head;
}

/* Keys ready to hand out, both lanes (caller holds mu). */
static size_t
ready_len(const struct workqueue *q)
{
    size_t left_behind = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *) q->moved, k, v)
    {
        left_behind += (size_t) json_integer_value(v);
    }
    return fifo_len(&q->ready) + fifo_len(&q->urgent) - left_behind;
}

/* Queue a ready key in its lane. */
static void
ready_push(struct workqueue *q, const char *key)
{
    if (json_object_get(q->marked, key)) {
        fifo_push(&q->urgent, key);
    } else {
        fifo_push(&q->ready, key);
        json_object_set_new_nocheck(q->in_ready, key, json_true());
    }
    pthread_cond_signal(&q->cv);
}

/* The next live key of the ready lane (the caller owns it), skipping
 * entries left behind by workqueue_set_urgent(). */
static char *
ready_pop(struct workqueue *q)
{
    for (;;) {
        char *key = fifo_pop(&q->ready);
        if (!key) {
            return NULL;
        }
        json_t *m = json_object_get(q->moved, key);
        if (!m) {
            json_object_del(q->in_ready, key);
            return key;
        }
        /* entries of one key leave in the order they came: a left-behind
         * one comes up before any live one queued after it */
        if (json_integer_value(m) <= 1) {
            json_object_del(q->moved, key);
        } else {
            json_integer_set(m, json_integer_value(m) - 1);
        }
        free(key);
    }
}

static void
add_locked(struct workqueue *q, const char *key)
{
    if (json_object_get(q->dirty, key)) {
        return; /* already queued, or queued again at done() */
    }
    json_object_set_new_nocheck(q->dirty, key, json_true());
    q->adds++;
    if (json_object_get(q->processing, key)) {
        return; /* done() queues it */
    }
    ready_push(q, key);
}

void
workqueue_add(struct workqueue *q, const char *key)
{
    pthread_mutex_lock(&q->mu);
    if (!q->shutting_down) {
        add_locked(q, key);
    }
    pthread_mutex_unlock(&q->mu);
}

static void
heap_swap(struct delayed *a, struct delayed *b)
{
    struct delayed t = *a;
    *a = *b;
    *b = t;
}

static void
heap_push(struct workqueue *q, int64_t due, const char *key)
{
    if (q->n_heap == q->cap_heap) {
        q->cap_heap = q->cap_heap ? q->cap_heap * 2 : 32;
        q->heap = xrealloc(q->heap, q->cap_heap * sizeof *q->heap);
    }
    size_t i = q->n_heap++;
    q->heap[i].due_ms = due;
    q->heap[i].key = xstrdup(key);
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (q->heap[p].due_ms <= q->heap[i].due_ms) {
            break;
        }
        heap_swap(&q->heap[p], &q->heap[i]);
        i = p;
    }
}

/* Remove the root; the caller owns the returned key. */
static struct delayed
heap_pop(struct workqueue *q)
{
    struct delayed top = q->heap[0];
    q->heap[0] = q->heap[--q->n_heap];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < q->n_heap && q->heap[l].due_ms < q->heap[m].due_ms) {
            m = l;
        }
        if (r < q->n_heap && q->heap[r].due_ms < q->heap[m].due_ms) {
            m = r;
        }
        if (m == i) {
            break;
        }
        heap_swap(&q->heap[i], &q->heap[m]);
        i = m;
    }
    return top;
}

/* Move delayed keys that are due into the queue. */
static void
promote_due(struct workqueue *q)
{
    int64_t now = now_ms();
    while (q->n_heap > 0 && q->heap[0].due_ms <= now) {
        struct delayed d = heap_pop(q);
        json_t *w = json_object_get(q->waiting, d.key);
        if (w && json_integer_value(w) == d.due_ms) {
            json_object_del(q->waiting, d.key);
            add_locked(q, d.key);
        }
        free(d.key);
    }
}

void
workqueue_add_after(struct workqueue *q, const char *key, int64_t delay_ms)
{
    if (delay_ms <= 0) {
        workqueue_add(q, key);
        return;
    }
    pthread_mutex_lock(&q->mu);
    if (!q->shutting_down) {
        int64_t due = now_ms() + delay_ms;
        json_t *w = json_object_get(q->waiting, key);
        if (!w || json_integer_value(w) > due) {
            json_object_set_new_nocheck(q->waiting, key, json_integer(due));
            heap_push(q, due, key);
            /* waiting getters recompute how long they may sleep */
            pthread_cond_broadcast(&q->cv);
        }
    }
    pthread_mutex_unlock(&q->mu);
}

static int64_t
backoff_locked(struct workqueue *q, const char *key)
{
    int64_t n = json_integer_value(json_object_get(q->failures, key));
    if (n >= 62) {
        return q->max_ms;
    }
    int64_t d = q->base_ms;
    for (int64_t i = 0; i < n && d < q->max_ms; i++) {
        d *= 2;
    }
    return d < q->max_ms ? d : q->max_ms;
}

int64_t
workqueue_backoff_ms(struct workqueue *q, const char *key)
{
    pthread_mutex_lock(&q->mu);
    int64_t d = backoff_locked(q, key);
    pthread_mutex_unlock(&q->mu);
    return d;
}

int64_t
workqueue_add_rate_limited(struct workqueue *q, const char *key)
{
    pthread_mutex_lock(&q->mu);
    int64_t d = backoff_locked(q, key);
    d -= (int64_t) (rng_unit(q) * q->jitter * (double) d);
    if (d < 1) {
        d = 1;
    }
    int64_t n = json_integer_value(json_object_get(q->failures, key));
    json_object_set_new_nocheck(q->failures, key, json_integer(n + 1));
    q->retries++;
    pthread_mutex_unlock(&q->mu);
    workqueue_add_after(q, key, d);
    return d;
}

void
workqueue_set_urgent(struct workqueue *q, const char *key, bool urgent)
{
    pthread_mutex_lock(&q->mu);
    if (urgent) {
        json_object_set_new_nocheck(q->marked, key, json_true());
        /* waiting in the ready lane: it moves to the urgent one (its old
         * entry is skipped when it comes up) */
        if (json_object_get(q->in_ready, key)) {
            json_object_del(q->in_ready, key);
            json_t *m = json_object_get(q->moved, key);
            json_object_set_new_nocheck(
                q->moved, key, json_integer(m ? json_integer_value(m) + 1 : 1));
            fifo_push(&q->urgent, key);
            pthread_cond_signal(&q->cv);
        }
    } else {
        json_object_del(q->marked, key);
    }
    pthread_mutex_unlock(&q->mu);
}

void
workqueue_forget(struct workqueue *q, const char *key)
{
    pthread_mutex_lock(&q->mu);
    json_object_del(q->failures, key);
    pthread_mutex_unlock(&q->mu);
}

unsigned
workqueue_num_requeues(struct workqueue *q, const char *key)
{
    pthread_mutex_lock(&q->mu);
    unsigned n =
        (unsigned) json_integer_value(json_object_get(q->failures, key));
    pthread_mutex_unlock(&q->mu);
    return n;
}

char *
workqueue_get(struct workqueue *q)
{
    char *key = NULL;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        if (!q->shutting_down) {
            promote_due(q);
        }
        key = fifo_pop(&q->urgent);
        if (!key) {
            key = ready_pop(q);
        }
        if (key) {
            json_object_del(q->dirty, key);
            json_object_set_new_nocheck(q->processing, key, json_true());
            break;
        }
        if (q->shutting_down) {
            break;
        }
        if (q->n_heap > 0) {
            int64_t due = q->heap[0].due_ms;
            struct timespec ts = {.tv_sec = due / 1000,
                                  .tv_nsec = (due % 1000) * 1000000};
            pthread_cond_timedwait(&q->cv, &q->mu, &ts);
        } else {
            pthread_cond_wait(&q->cv, &q->mu);
        }
    }
    pthread_mutex_unlock(&q->mu);
    return key;
}

void
workqueue_done(struct workqueue *q, const char *key)
{
    pthread_mutex_lock(&q->mu);
    json_object_del(q->processing, key);
    if (json_object_get(q->dirty, key)) {
        ready_push(q, key);
    }
    if (json_object_size(q->processing) == 0) {
        pthread_cond_broadcast(&q->idle_cv);
    }
    pthread_mutex_unlock(&q->mu);
}

size_t
workqueue_len(struct workqueue *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = ready_len(q);
    pthread_mutex_unlock(&q->mu);
    return n;
}

size_t
workqueue_len_delayed(struct workqueue *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = json_object_size(q->waiting);
    pthread_mutex_unlock(&q->mu);
    return n;
}

void
workqueue_shut_down(struct workqueue *q)
{
    pthread_mutex_lock(&q->mu);
    q->shutting_down = true;
    for (size_t i = 0; i < q->n_heap; i++) {
        free(q->heap[i].key);
    }
    q->n_heap = 0;
    json_object_clear(q->waiting);
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
}

void
workqueue_shut_down_drain(struct workqueue *q)
{
    workqueue_shut_down(q);
    pthread_mutex_lock(&q->mu);
    while (json_object_size(q->processing) > 0) {
        pthread_cond_wait(&q->idle_cv, &q->mu);
    }
    pthread_mutex_unlock(&q->mu);
}

bool
workqueue_shutting_down(struct workqueue *q)
{
    pthread_mutex_lock(&q->mu);
    bool s = q->shutting_down;
    pthread_mutex_unlock(&q->mu);
    return s;
}

void
workqueue_stats(struct workqueue *q, struct workqueue_stats *out)
{
    pthread_mutex_lock(&q->mu);
    out->adds = q->adds;
    out->retries = q->retries;
    out->depth = ready_len(q);
    out->urgent = fifo_len(&q->urgent);
    out->delayed = json_object_size(q->waiting);
    pthread_mutex_unlock(&q->mu);
}
