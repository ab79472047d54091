/* Unit tests for lib/loop: fd watches, timers (one-shot, periodic, cancel
 * from inside a callback, thousands at once in deadline order), posts
 * from another thread, signals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/loop.h"
#include "lib/base/util.h"

struct fdctx {
    int reads;
    char last;
    struct loop_watch *w;
    struct loop *loop;
};

static void
on_readable(void *arg, int fd, uint32_t events)
{
    struct fdctx *c = arg;
    char ch;
    if (read(fd, &ch, 1) == 1) {
        c->last = ch;
        c->reads++;
    }
    if (c->reads == 2) {
        loop_watch_remove(c->w); /* removal from inside the callback */
        c->w = NULL;
    }
}

static void
test_fd_watch(void **state)
{
    struct loop *loop = loop_create();
    assert_non_null(loop);
    int p[2];
    assert_int_equal(pipe(p), 0);
    struct fdctx c = {0};
    c.w = loop_watch_fd(loop, p[0], LOOP_READ, on_readable, &c);
    assert_non_null(c.w);
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(write(p[1], "a", 1), 1);
    assert_int_equal(loop_run_once(loop, 1000), 1);
    assert_int_equal(c.reads, 1);
    assert_int_equal(c.last, 'a');
    assert_int_equal(write(p[1], "bc", 2), 2);
    loop_run_once(loop, 1000);
    assert_int_equal(c.reads, 2);
    assert_null(c.w);
    /* Removed: more data does not call back. */
    assert_int_equal(loop_run_once(loop, 0), 0);
    assert_int_equal(c.reads, 2);
    close(p[0]);
    close(p[1]);
    loop_destroy(loop);
}

struct tctx {
    int fired;
    int64_t first_ms;
    struct loop_timer *other;
    struct loop *loop;
    int stop_after;
};

static void
on_timer(void *arg, struct loop_timer *t)
{
    struct tctx *c = arg;
    if (c->fired++ == 0) {
        c->first_ms = time_mono_ms();
    }
    if (c->other) {
        loop_timer_cancel(c->other);
        c->other = NULL;
    }
    if (c->stop_after && c->fired >= c->stop_after) {
        loop_timer_cancel(t); /* cancel self */
        loop_stop(c->loop);
    }
}

static void
test_timers(void **state)
{
    struct loop *loop = loop_create();
    struct tctx once = {0}, periodic = {0}, victim = {0};
    int64_t start = time_mono_ms();
    struct loop_timer *t1 = loop_timer_add(loop, 30, 0, on_timer, &once);
    periodic.loop = loop;
    periodic.stop_after = 5;
    loop_timer_add(loop, 10, 10, on_timer, &periodic);
    /* The one-shot timer cancels "victim" before it is due. */
    once.other = loop_timer_add(loop, 200, 0, on_timer, &victim);
    assert_int_equal(loop_run(loop), 0);
    int64_t took = time_mono_ms() - start;
    assert_int_equal(periodic.fired, 5);
    assert_true(took >= 50);
    assert_int_equal(once.fired, 1);
    assert_true(once.first_ms - start >= 30);
    /* One-shot timers stay allocated; re-arm it. */
    loop_timer_reset(t1, 0, 0);
    loop_run_once(loop, 100);
    assert_int_equal(once.fired, 2);
    /* Victim never fires even after its deadline. */
    while (time_mono_ms() - start < 220) {
        loop_run_once(loop, 50);
    }
    assert_int_equal(victim.fired, 0);
    loop_timer_cancel(t1);
    loop_destroy(loop);
}

/* Thousands of timers (an emulator's fleet): each armed one fires once,
 * at or after its deadline, in deadline order, equal deadlines in arming
 * order; cancelled ones never fire; the rest of the heap is intact after
 * removals from its middle. */
#define MANY 3000
struct many {
    struct loop *loop;
    struct loop_timer *t[MANY];
    int64_t armed_at[MANY];
    int delay[MANY];
    int fired_at_pos[MANY]; /* 1-based firing position; 0 = never */
    int64_t fired_ms[MANY];
    int pos;
    int expected;
};

static void
on_many(void *arg, struct loop_timer *t)
{
    struct many *m = arg;
    int i = 0;
    while (i < MANY && m->t[i] != t) {
        i++;
    }
    if (i >= MANY) {
        fail_msg("a timer the test did not arm fired");
        return;
    }
    m->fired_at_pos[i] = ++m->pos;
    m->fired_ms[i] = time_mono_ms();
    if (m->pos == m->expected) {
        loop_stop(m->loop);
    }
}

static void
test_many_timers(void **state)
{
    static struct many m;
    memset(&m, 0, sizeof m);
    m.loop = loop_create();
    for (int i = 0; i < MANY; i++) {
        m.t[i] = loop_timer_add(m.loop, 10000, 0, on_many, &m);
    }
    /* re-arm in a new order, cancelling every third: the arming order is
     * the order of these calls */
    for (int i = 0; i < MANY; i++) {
        if (i % 3 == 0) {
            loop_timer_cancel(m.t[i]);
            continue;
        }
        m.delay[i] = (i * 37) % 40;
        m.armed_at[i] = time_mono_ms();
        loop_timer_reset(m.t[i], m.delay[i], 0);
        m.expected++;
    }
    assert_int_equal(loop_run(m.loop), 0);
    assert_int_equal(m.pos, m.expected);
    for (int i = 0; i < MANY; i++) {
        if (i % 3 == 0) {
            assert_int_equal(m.fired_at_pos[i], 0);
            continue;
        }
        assert_true(m.fired_at_pos[i] > 0);
        assert_true(m.fired_ms[i] >= m.armed_at[i] + m.delay[i]);
        for (int j = i + 1; j < MANY; j++) {
            /* armed after i with no shorter delay: due no earlier */
            if (j % 3 != 0 && m.delay[j] >= m.delay[i]) {
                assert_true(m.fired_at_pos[i] < m.fired_at_pos[j]);
            }
        }
    }
    loop_destroy(m.loop); /* frees the disarmed timers */
}

struct pctx {
    struct loop *loop;
    int sum;
    pthread_t self;
    int on_loop_thread;
};

static void
on_post(void *arg)
{
    struct pctx *c = arg;
    c->sum++;
    if (pthread_equal(pthread_self(), c->self)) {
        c->on_loop_thread++;
    }
    if (c->sum == 1000) {
        loop_stop(c->loop);
    }
}

static void *
poster(void *arg)
{
    struct pctx *c = arg;
    for (int i = 0; i < 500; i++) {
        loop_post(c->loop, on_post, c);
    }
    return NULL;
}

static void
test_post(void **state)
{
    struct pctx c = {0};
    c.loop = loop_create();
    c.self = pthread_self();
    pthread_t a, b;
    pthread_create(&a, NULL, poster, &c);
    pthread_create(&b, NULL, poster, &c);
    assert_int_equal(loop_run(c.loop), 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    assert_int_equal(c.sum, 1000);
    assert_int_equal(c.on_loop_thread, 1000);
    /* Posted but never run: destroy frees it. */
    loop_post(c.loop, on_post, &c);
    loop_destroy(c.loop);
}

static void
on_signal(void *arg, int signo)
{
    int *got = arg;
    *got = signo;
}

static void
test_signal(void **state)
{
    struct loop *loop = loop_create();
    int got = 0;
    assert_int_equal(loop_signal(loop, SIGUSR1, on_signal, &got), 0);
    assert_int_equal(loop_signal(loop, SIGUSR2, on_signal, &got), 0);
    kill(getpid(), SIGUSR2);
    for (int i = 0; i < 10 && !got; i++) {
        loop_run_once(loop, 100);
    }
    assert_int_equal(got, SIGUSR2);
    assert_int_equal(loop_signal(loop, 0, on_signal, &got), -EINVAL);
    loop_destroy(loop);
}

static void
test_stop_before_run(void **state)
{
    struct loop *loop = loop_create();
    loop_stop(loop);
    assert_true(loop_stopped(loop));
    assert_int_equal(loop_run(loop), 0);
    assert_false(loop_stopped(loop));
    loop_destroy(loop);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fd_watch),
        cmocka_unit_test(test_timers),
        cmocka_unit_test(test_many_timers),
        cmocka_unit_test(test_post),
        cmocka_unit_test(test_signal),
        cmocka_unit_test(test_stop_before_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
