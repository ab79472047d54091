/* Unit tests for lib/kube/workqueue: de-duplication, re-queue of a key
 * added while it is processing, per-key exponential backoff (growth, cap,
 * jitter bounds, forget), delayed adds, the urgent lane, shutdown with
 * and without drain, and that many workers never hold one key at the same
 * time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/kube/workqueue.h"
#include "lib/base/util.h"

static void
expect_get(struct workqueue *q, const char *want)
{
    char *k = workqueue_get(q);
    assert_non_null(k);
    assert_string_equal(k, want);
    workqueue_done(q, k);
    free(k);
}

static void
test_dedup(void **state)
{
    struct workqueue *q = workqueue_create(NULL);
    workqueue_add(q, "ns/a");
    workqueue_add(q, "ns/b");
    workqueue_add(q, "ns/a");
    workqueue_add(q, "ns/a");
    assert_int_equal(workqueue_len(q), 2);
    expect_get(q, "ns/a"); /* FIFO, one copy each */
    expect_get(q, "ns/b");
    assert_int_equal(workqueue_len(q), 0);
    workqueue_destroy(q);
}

static void
test_readd_while_processing(void **state)
{
    struct workqueue *q = workqueue_create(NULL);
    workqueue_add(q, "k");
    char *k = workqueue_get(q);
    assert_string_equal(k, "k");
    /* added twice while processing: not handed out, queued once at done */
    workqueue_add(q, "k");
    workqueue_add(q, "k");
    assert_int_equal(workqueue_len(q), 0);
    workqueue_done(q, k);
    free(k);
    assert_int_equal(workqueue_len(q), 1);
    expect_get(q, "k");
    assert_int_equal(workqueue_len(q), 0);
    workqueue_destroy(q);
}

static void
test_backoff_growth_and_cap(void **state)
{
    /* defaults: 5 ms doubling, capped at 1000 s */
    struct workqueue *q = workqueue_create(NULL);
    assert_int_equal(workqueue_backoff_ms(q, "x"), 5);
    int64_t want = 5;
    for (int i = 0; i < 40; i++) {
        assert_int_equal(workqueue_backoff_ms(q, "x"), want);
        int64_t d = workqueue_add_rate_limited(q, "x");
        /* default jitter removes at most 10% */
        assert_true(d <= want);
        assert_true(d >= want - want / 10 - 1);
        want = want * 2 > 1000000 ? 1000000 : want * 2;
    }
    assert_int_equal(workqueue_num_requeues(q, "x"), 40);
    assert_int_equal(workqueue_backoff_ms(q, "x"), 1000000);
    /* per key: another key starts at the base */
    assert_int_equal(workqueue_backoff_ms(q, "y"), 5);
    /* forget resets */
    workqueue_forget(q, "x");
    assert_int_equal(workqueue_num_requeues(q, "x"), 0);
    assert_int_equal(workqueue_backoff_ms(q, "x"), 5);
    workqueue_destroy(q);
}

static void
test_backoff_jitter_bounds(void **state)
{
    struct workqueue_options o = {
        .base_delay_ms = 10000, .max_delay_ms = 20000, .jitter = 0.25};
    struct workqueue *q = workqueue_create(&o);
    int64_t lo = INT64_MAX, hi = 0;
    for (int i = 0; i < 500; i++) {
        int64_t d = workqueue_add_rate_limited(q, "j");
        assert_true(d > 7500 - 1 && d <= 10000);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
        workqueue_forget(q, "j");
    }
    /* the jitter really spreads: 500 draws cover most of the range */
    assert_true(hi - lo > 1000);
    /* the cap holds with jitter: never above max */
    for (int i = 0; i < 10; i++) {
        int64_t d = workqueue_add_rate_limited(q, "c");
        assert_true(d <= 20000);
    }
    /* the delayed adds are waiting, not ready */
    assert_int_equal(workqueue_len(q), 0);
    assert_int_equal(workqueue_len_delayed(q), 2);
    workqueue_destroy(q);
}

static void
test_delayed(void **state)
{
    struct workqueue *q = workqueue_create(NULL);
    int64_t t0 = time_mono_ms();
    workqueue_add_after(q, "later", 150);
    assert_int_equal(workqueue_len(q), 0);
    assert_int_equal(workqueue_len_delayed(q), 1);
    char *k = workqueue_get(q); /* sleeps until due */
    int64_t waited = time_mono_ms() - t0;
    assert_string_equal(k, "later");
    assert_true(waited >= 150);
    workqueue_done(q, k);
    free(k);
    /* a second add_after with an earlier time wins */
    t0 = time_mono_ms();
    workqueue_add_after(q, "y", 600000);
    workqueue_add_after(q, "y", 50);
    workqueue_add_after(q, "y", 300000); /* later: ignored */
    assert_int_equal(workqueue_len_delayed(q), 1);
    k = workqueue_get(q);
    assert_string_equal(k, "y");
    assert_true(time_mono_ms() - t0 < 60000);
    workqueue_done(q, k);
    free(k);
    assert_int_equal(workqueue_len_delayed(q), 0);
    /* a delayed key that is also added now is handed out once now */
    workqueue_add_after(q, "z", 100);
    workqueue_add(q, "z");
    expect_get(q, "z");
    workqueue_destroy(q);
}

struct getter {
    struct workqueue *q;
    char *key;
    atomic_bool returned;
};

static void *
getter_main(void *arg)
{
    struct getter *g = arg;
    g->key = workqueue_get(g->q);
    atomic_store(&g->returned, true);
    return NULL;
}

/* A second worker asking while the only key is processing waits, even
 * though the key was added again; it gets the key after done(). */
static void
test_no_second_worker_on_key(void **state)
{
    struct workqueue *q = workqueue_create(NULL);
    workqueue_add(q, "k");
    char *k = workqueue_get(q);
    workqueue_add(q, "k");
    struct getter g = {.q = q};
    pthread_t t;
    pthread_create(&t, NULL, getter_main, &g);
    usleep(200 * 1000);
    assert_false(atomic_load(&g.returned));
    workqueue_done(q, k);
    free(k);
    pthread_join(t, NULL);
    assert_string_equal(g.key, "k");
    workqueue_done(q, g.key);
    free(g.key);
    workqueue_destroy(q);
}

#define N_KEYS 8
#define N_WORKERS 8
#define N_ADDS 40000

struct stress {
    struct workqueue *q;
    atomic_int in_flight[N_KEYS];
    atomic_int violations;
    atomic_long processed;
    atomic_int last_gen_seen[N_KEYS]; /* generation seen at a start */
    atomic_int gen[N_KEYS];           /* generation of the latest add */
};

static int
key_index(const char *k)
{
    return atoi(k + 4);
}

static void *
stress_worker(void *arg)
{
    struct stress *s = arg;
    char *k;
    while ((k = workqueue_get(s->q))) {
        int i = key_index(k);
        if (atomic_fetch_add(&s->in_flight[i], 1) != 0) {
            atomic_fetch_add(&s->violations, 1);
        }
        atomic_store(&s->last_gen_seen[i], atomic_load(&s->gen[i]));
        for (int y = 0; y < 3; y++) {
            sched_yield(); /* widen the window for a second worker */
        }
        atomic_fetch_sub(&s->in_flight[i], 1);
        atomic_fetch_add(&s->processed, 1);
        workqueue_done(s->q, k);
        free(k);
    }
    return NULL;
}

static void
test_exclusion_many_workers(void **state)
{
    static struct stress s;
    memset(&s, 0, sizeof s);
    s.q = workqueue_create(NULL);
    pthread_t t[N_WORKERS];
    for (int i = 0; i < N_WORKERS; i++) {
        pthread_create(&t[i], NULL, stress_worker, &s);
    }
    for (int n = 0; n < N_ADDS; n++) {
        int i = n % N_KEYS;
        char key[16];
        snprintf(key, sizeof key, "key-%d", i);
        atomic_fetch_add(&s.gen[i], 1);
        workqueue_add(s.q, key);
        if (n % 64 == 0) {
            sched_yield();
        }
    }
    workqueue_shut_down_drain(s.q);
    for (int i = 0; i < N_WORKERS; i++) {
        pthread_join(t[i], NULL);
    }
    assert_int_equal(atomic_load(&s.violations), 0);
    /* de-duplication folded adds together... */
    assert_true(atomic_load(&s.processed) < N_ADDS);
    /* ...but no add was lost: each key was processed after its last add */
    for (int i = 0; i < N_KEYS; i++) {
        assert_int_equal(atomic_load(&s.last_gen_seen[i]),
                         atomic_load(&s.gen[i]));
    }
    workqueue_destroy(s.q);
}

static void
test_shutdown(void **state)
{
    struct workqueue *q = workqueue_create(NULL);
    workqueue_add(q, "a");
    workqueue_add(q, "b");
    workqueue_add_after(q, "d", 100000);
    workqueue_shut_down(q);
    assert_true(workqueue_shutting_down(q));
    assert_int_equal(workqueue_len_delayed(q), 0); /* delayed dropped */
    workqueue_add(q, "c");                         /* refused */
    workqueue_add_after(q, "e", 10);               /* refused */
    assert_int_equal(workqueue_len(q), 2);
    expect_get(q, "a"); /* what was queued is still handed out */
    expect_get(q, "b");
    assert_null(workqueue_get(q));
    workqueue_destroy(q);

    /* a getter blocked on an empty queue is woken by the shutdown */
    q = workqueue_create(NULL);
    struct getter g = {.q = q};
    pthread_t t;
    pthread_create(&t, NULL, getter_main, &g);
    usleep(50 * 1000);
    workqueue_shut_down(q);
    pthread_join(t, NULL);
    assert_null(g.key);
    workqueue_destroy(q);
}

struct drainer {
    struct workqueue *q;
    atomic_bool returned;
};

static void *
drainer_main(void *arg)
{
    struct drainer *d = arg;
    workqueue_shut_down_drain(d->q);
    atomic_store(&d->returned, true);
    return NULL;
}

static void
test_shutdown_drain(void **state)
{
    struct workqueue *q = workqueue_create(NULL);
    workqueue_add(q, "busy");
    char *k = workqueue_get(q);
    struct drainer d = {.q = q};
    pthread_t t;
    pthread_create(&t, NULL, drainer_main, &d);
    usleep(200 * 1000);
    assert_false(atomic_load(&d.returned)); /* "busy" is still running */
    workqueue_done(q, k);
    free(k);
    pthread_join(t, NULL);
    assert_true(atomic_load(&d.returned));
    assert_null(workqueue_get(q));
    workqueue_destroy(q);
}

/* The counters behind workqueue_depth/_adds_total/_retries_total. */
static void
test_stats(void **state)
{
    struct workqueue *q = workqueue_create(NULL);
    struct workqueue_stats st;
    workqueue_add(q, "a");
    workqueue_add(q, "a"); /* de-duplicated: not an add */
    workqueue_add(q, "b");
    workqueue_stats(q, &st);
    assert_int_equal(st.adds, 2);
    assert_int_equal(st.depth, 2);
    assert_int_equal(st.retries, 0);
    char *k = workqueue_get(q);
    workqueue_add_rate_limited(q, k);
    workqueue_done(q, k);
    free(k);
    workqueue_stats(q, &st);
    assert_int_equal(st.retries, 1);
    assert_int_equal(st.depth, 1);
    assert_int_equal(st.delayed, 1);
    workqueue_destroy(q);
}

/* A key marked urgent while it waits in the common lane moves ahead; the
 * entry it left is skipped, also when the key is queued again meanwhile,
 * and the length counts it once. */
static void
test_marked_while_queued(void **state)
{
    (void) state;
    struct workqueue *q = workqueue_create(NULL);
    workqueue_add(q, "a");
    workqueue_add(q, "b");
    workqueue_add(q, "c");
    workqueue_set_urgent(q, "c", true);
    workqueue_set_urgent(q, "c", true); /* once */
    assert_int_equal(workqueue_len(q), 3);
    expect_get(q, "c");
    assert_int_equal(workqueue_len(q), 2);
    /* c again, unmarked: behind b in the common lane; marked once more
     * while its old entry is still there */
    workqueue_set_urgent(q, "c", false);
    workqueue_add(q, "c");
    workqueue_add(q, "d");
    assert_int_equal(workqueue_len(q), 4);
    workqueue_set_urgent(q, "c", true);
    assert_int_equal(workqueue_len(q), 4);
    expect_get(q, "c");
    expect_get(q, "a");
    expect_get(q, "b");
    expect_get(q, "d");
    assert_int_equal(workqueue_len(q), 0);
    /* nothing of c is left to hand out */
    workqueue_add(q, "e");
    expect_get(q, "e");
    assert_int_equal(workqueue_len(q), 0);
    workqueue_destroy(q);
}

static void
test_urgent_lane(void **state)
{
    struct workqueue *q = workqueue_create(NULL);
    workqueue_set_urgent(q, "u1", true);
    workqueue_set_urgent(q, "u2", true);
    workqueue_add(q, "a");
    workqueue_add(q, "u1");
    workqueue_add(q, "b");
    workqueue_add(q, "u2");
    workqueue_add(q, "u1"); /* de-duplicated across lanes too */
    struct workqueue_stats st;
    workqueue_stats(q, &st);
    assert_int_equal(st.depth, 4);
    assert_int_equal(st.urgent, 2);
    assert_int_equal(workqueue_len(q), 4);
    /* marked keys first, each lane in its own order */
    expect_get(q, "u1");
    expect_get(q, "u2");
    expect_get(q, "a");
    /* the mark outlives a pass: u1 overtakes b and c again, also when it
     * was added while a worker had it (queued again at done()) */
    workqueue_add(q, "u1");
    workqueue_add(q, "c");
    char *k = workqueue_get(q);
    assert_string_equal(k, "u1");
    workqueue_add(q, "u1");
    workqueue_done(q, k);
    free(k);
    expect_get(q, "u1");
    expect_get(q, "b");
    /* unmarked: back in the common FIFO order */
    workqueue_set_urgent(q, "u2", false);
    workqueue_add(q, "u2");
    expect_get(q, "c");
    expect_get(q, "u2");
    /* a delayed urgent key is served first once due */
    workqueue_add(q, "d");
    workqueue_add_after(q, "u1", 20);
    usleep(40 * 1000);
    expect_get(q, "u1");
    expect_get(q, "d");
    assert_int_equal(workqueue_len(q), 0);
    workqueue_destroy(q);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dedup),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_readd_while_processing),
        cmocka_unit_test(test_backoff_growth_and_cap),
        cmocka_unit_test(test_backoff_jitter_bounds),
        cmocka_unit_test(test_delayed),
        cmocka_unit_test(test_urgent_lane),
        cmocka_unit_test(test_marked_while_queued),
        cmocka_unit_test(test_no_second_worker_on_key),
        cmocka_unit_test(test_exclusion_many_workers),
        cmocka_unit_test(test_shutdown),
        cmocka_unit_test(test_shutdown_drain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
