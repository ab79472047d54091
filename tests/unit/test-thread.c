/* Unit tests for lib/base/thread: threads start with signals blocked and
 * named; a worker sleeps until woken, times out on the monotonic clock,
 * and stops with a join. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "lib/base/thread.h"

struct probe {
    int sigterm_blocked;
    char name[16];
};

static void *
probe_main(void *arg)
{
    struct probe *p = arg;
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    p->sigterm_blocked = sigismember(&cur, SIGTERM);
    /* named before fn runs */
    pthread_getname_np(pthread_self(), p->name, sizeof p->name);
    return NULL;
}

static void
test_thread_start(void **state)
{
    (void) state;
    sigset_t before, after;
    pthread_sigmask(SIG_BLOCK, NULL, &before);
    struct probe p = {0};
    pthread_t t;
    /* longer than the kernel's 15 bytes: cut, not refused */
    assert_int_equal(
        thread_start(&t, NULL, "a-thread-name-that-is-long", probe_main, &p),
        0);
    pthread_join(t, NULL);
    assert_int_equal(p.sigterm_blocked, 1);
    assert_string_equal(p.name, "a-thread-name-t");
    /* the creator's own mask is unchanged */
    pthread_sigmask(SIG_BLOCK, NULL, &after);
    assert_int_equal(sigismember(&before, SIGTERM),
                     sigismember(&after, SIGTERM));
}

static atomic_int quick_ran;

static void *
quick_main(void *arg)
{
    (void) arg;
    atomic_fetch_add(&quick_ran, 1);
    return NULL;
}

/* Detached threads that end at once: naming one from the creator after
 * pthread_create touched a freed descriptor (dmsd's per-call threads
 * crashed that way under load); each is named from inside now. */
static void
test_thread_start_detached(void **state)
{
    (void) state;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (int i = 0; i < 2000; i++) {
        pthread_t t;
        assert_int_equal(thread_start(&t, &attr, "quick", quick_main, NULL), 0);
    }
    pthread_attr_destroy(&attr);
    for (int i = 0; i < 5000 && atomic_load(&quick_ran) < 2000; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(atomic_load(&quick_ran), 2000);
}

struct counter {
    struct worker w;
    int queued;  /* under w's lock */
    int handled; /* under w's lock */
    int timeouts;
};

static void *
counter_main(void *arg)
{
    struct counter *c = arg;
    worker_lock(&c->w);
    for (;;) {
        while (c->queued > 0) {
            c->queued--;
            c->handled++;
        }
        if (!worker_wait(&c->w, 20)) {
            break;
        }
        if (c->queued == 0) {
            c->timeouts++;
        }
    }
    worker_unlock(&c->w);
    return NULL;
}

static int64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
test_worker(void **state)
{
    (void) state;
    struct counter c = {0};
    worker_init(&c.w);
    assert_int_equal(worker_start(&c.w, "counter", counter_main, &c), 0);
    for (int i = 0; i < 100; i++) {
        worker_lock(&c.w);
        c.queued++;
        worker_wake(&c.w);
        worker_unlock(&c.w);
    }
    /* wait (bounded) until all are handled and a timeout has passed */
    int64_t end = now_ms() + 10000;
    int handled = 0, timeouts = 0;
    while (now_ms() < end) {
        worker_lock(&c.w);
        handled = c.handled;
        timeouts = c.timeouts;
        worker_unlock(&c.w);
        if (handled == 100 && timeouts > 0) {
            break;
        }
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(handled, 100);
    assert_true(timeouts > 0);
    worker_stop(&c.w);
    assert_false(c.w.started);
    worker_stop(&c.w); /* idempotent */
    /* after a stop, a wait returns false at once */
    worker_lock(&c.w);
    assert_true(worker_stopping(&c.w));
    assert_false(worker_wait(&c.w, -1));
    worker_unlock(&c.w);
    worker_destroy(&c.w);
}

static void
test_worker_never_started(void **state)
{
    (void) state;
    struct worker w;
    worker_init(&w);
    worker_stop(&w); /* no thread: nothing to join */
    worker_destroy(&w);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_thread_start),
        cmocka_unit_test(test_thread_start_detached),
        cmocka_unit_test(test_worker),
        cmocka_unit_test(test_worker_never_started),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
