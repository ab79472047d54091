/* loop: see loop.h. epoll for fds, a binary min-heap for timers and an
 * eventfd for posted closures and a signalfd for signals.
 *
 * Scale: an emulator process runs thousands of DPUs on one loop, each
 * with its own timers and connections, so every operation on a watch or
 * a timer is O(1) or O(log n): watches and timers sit on doubly linked
 * lists (for loop_destroy), armed timers in a heap ordered by deadline and
 * then by arming order (equal deadlines fire in the order they were
 * armed). A sorted list with a scan of every disarmed timer per round,
 * the first design, cost a 3,300-DPU emulator most of its CPU.
 *
 * Handles removed during a dispatch round go to a graveyard that is
 * emptied when the round ends, so a callback can remove any handle that
 * a later event of the same round still points at. */
#include "lib/base/loop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "lib/base/util.h"

#define LOOP_MAX_EVENTS 64
#define LOOP_NSIG 65

struct loop_watch {
    struct loop *loop;
    int fd;
    loop_fd_fn fn;
    void *arg;
    bool dead;
    struct loop_watch *prev; /* live list */
    struct loop_watch *next; /* live list, or graveyard */
};

struct loop_timer {
    struct loop *loop;
    int64_t deadline_ms; /* valid when armed */
    uint64_t seq;        /* arming order, breaks deadline ties */
    int64_t period_ms;
    size_t heap_at; /* position in the heap + 1; 0 = not armed */
    bool firing;    /* due in the current round, callback not yet run */
    bool dead;
    loop_timer_fn fn;
    void *arg;
    struct loop_timer *prev;     /* live list */
    struct loop_timer *next;     /* live list, or graveyard */
    struct loop_timer *due_next; /* this round's due list */
};

struct loop_post_item {
    loop_post_fn fn;
    void *arg;
    struct loop_post_item *next;
};

struct loop_sig {
    loop_signal_fn fn;
    void *arg;
};

struct loop {
    int epfd;
    int eventfd;
    int sigfd;
    sigset_t sigmask;
    struct loop_sig sigs[LOOP_NSIG];
    struct loop_watch *watches;      /* live watches */
    struct loop_watch *dead_watches; /* graveyard */
    struct loop_timer *timers;       /* live timers, armed or not */
    struct loop_timer *dead_timers;  /* graveyard */
    struct loop_timer **heap;        /* armed timers, earliest first */
    size_t n_heap, cap_heap;
    uint64_t timer_seq;
    pthread_mutex_t post_lock;
    struct loop_post_item *post_head;
    struct loop_post_item *post_tail;
    volatile int stop; /* written by any thread */
    int64_t now_ms;
};

/* Tokens for the loop's own fds in epoll data (watches use pointers). */
static char loop_token_event;
static char loop_token_signal;

struct loop *
loop_create(void)
{
    struct loop *loop = xcalloc(1, sizeof *loop);
    loop->sigfd = -1;
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0) {
        free(loop);
        return NULL;
    }
    loop->eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop->eventfd < 0) {
        int e = errno;
        close(loop->epfd);
        free(loop);
        errno = e;
        return NULL;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &loop_token_event};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->eventfd, &ev) < 0) {
        int e = errno;
        close(loop->eventfd);
        close(loop->epfd);
        free(loop);
        errno = e;
        return NULL;
    }
    sigemptyset(&loop->sigmask);
    pthread_mutex_init(&loop->post_lock, NULL);
    loop->now_ms = time_mono_ms();
    return loop;
}

static void
loop_free_timer_list(struct loop_timer *t)
{
    while (t) {
        struct loop_timer *next = t->next;
        free(t);
        t = next;
    }
}

static void
loop_free_watch_list(struct loop_watch *w)
{
    while (w) {
        struct loop_watch *next = w->next;
        free(w);
        w = next;
    }
}

void
loop_destroy(struct loop *loop)
{
    if (!loop) {
        return;
    }
    loop_free_watch_list(loop->watches);
    loop_free_watch_list(loop->dead_watches);
    loop_free_timer_list(loop->timers);
    loop_free_timer_list(loop->dead_timers);
    free(loop->heap);
    struct loop_post_item *p = loop->post_head;
    while (p) {
        struct loop_post_item *next = p->next;
        free(p);
        p = next;
    }
    if (loop->sigfd >= 0) {
        close(loop->sigfd);
    }
    close(loop->eventfd);
    close(loop->epfd);
    pthread_mutex_destroy(&loop->post_lock);
    free(loop);
}

int64_t
loop_now_ms(const struct loop *loop)
{
    return loop->now_ms;
}

void
loop_stop(struct loop *loop)
{
    __atomic_store_n(&loop->stop, 1, __ATOMIC_SEQ_CST);
    uint64_t one = 1;
    /* Wake epoll_wait; a full counter already means "awake". */
    ssize_t n = write(loop->eventfd, &one, sizeof one);
    (void) n;
}

bool
loop_stopped(const struct loop *loop)
{
    return __atomic_load_n(&loop->stop, __ATOMIC_SEQ_CST) != 0;
}

/* ---- fd watches ---- */

struct loop_watch *
loop_watch_fd(struct loop *loop, int fd, uint32_t events, loop_fd_fn fn,
              void *arg)
{
    struct loop_watch *w = xcalloc(1, sizeof *w);
    w->loop = loop;
    w->fd = fd;
    w->fn = fn;
    w->arg = arg;
    struct epoll_event ev = {.events = events, .data.ptr = w};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int e = errno;
        free(w);
        errno = e;
        return NULL;
    }
    w->next = loop->watches;
    if (w->next) {
        w->next->prev = w;
    }
    loop->watches = w;
    return w;
}

int
loop_watch_modify(struct loop_watch *w, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = w};
    if (epoll_ctl(w->loop->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0) {
        return -errno;
    }
    return 0;
}

void
loop_watch_remove(struct loop_watch *w)
{
    if (!w || w->dead) {
        return;
    }
    struct loop *loop = w->loop;
    /* The fd may already be closed by a careless caller: ignore errors. */
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
    if (w->prev) {
        w->prev->next = w->next;
    } else {
        loop->watches = w->next;
    }
    if (w->next) {
        w->next->prev = w->prev;
    }
    w->dead = true;
    w->prev = NULL;
    w->next = loop->dead_watches;
    loop->dead_watches = w;
}

/* ---- timers ---- */

/* Whether heap entry a fires before b. */
static bool
timer_before(const struct loop_timer *a, const struct loop_timer *b)
{
    return a->deadline_ms < b->deadline_ms ||
           (a->deadline_ms == b->deadline_ms && a->seq < b->seq);
}

static void
heap_place(struct loop *loop, size_t i, struct loop_timer *t)
{
    loop->heap[i] = t;
    t->heap_at = i + 1;
}

static void
heap_up(struct loop *loop, size_t i)
{
    struct loop_timer *t = loop->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_before(t, loop->heap[parent])) {
            break;
        }
        heap_place(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_place(loop, i, t);
}

static void
heap_down(struct loop *loop, size_t i)
{
    struct loop_timer *t = loop->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= loop->n_heap) {
            break;
        }
        if (c + 1 < loop->n_heap &&
            timer_before(loop->heap[c + 1], loop->heap[c])) {
            c++;
        }
        if (!timer_before(loop->heap[c], t)) {
            break;
        }
        heap_place(loop, i, loop->heap[c]);
        i = c;
    }
    heap_place(loop, i, t);
}

/* Arm t for deadline_ms (t is not armed). */
static void
timer_arm(struct loop_timer *t, int64_t deadline_ms)
{
    struct loop *loop = t->loop;
    if (loop->n_heap == loop->cap_heap) {
        loop->cap_heap = loop->cap_heap ? 2 * loop->cap_heap : 16;
        loop->heap = xrealloc(loop->heap, loop->cap_heap * sizeof *loop->heap);
    }
    t->deadline_ms = deadline_ms;
    t->seq = loop->timer_seq++;
    size_t i = loop->n_heap++;
    heap_place(loop, i, t);
    heap_up(loop, i);
}

/* Take t out of the heap (no-op when it is not armed). */
static void
timer_disarm(struct loop_timer *t)
{
    struct loop *loop = t->loop;
    if (!t->heap_at) {
        return;
    }
    size_t i = t->heap_at - 1;
    t->heap_at = 0;
    struct loop_timer *last = loop->heap[--loop->n_heap];
    if (last == t) {
        return;
    }
    heap_place(loop, i, last);
    if (i > 0 && timer_before(last, loop->heap[(i - 1) / 2])) {
        heap_up(loop, i);
    } else {
        heap_down(loop, i);
    }
}

struct loop_timer *
loop_timer_add(struct loop *loop, int64_t delay_ms, int64_t period_ms,
               loop_timer_fn fn, void *arg)
{
    struct loop_timer *t = xcalloc(1, sizeof *t);
    t->loop = loop;
    t->fn = fn;
    t->arg = arg;
    t->period_ms = period_ms > 0 ? period_ms : 0;
    t->next = loop->timers;
    if (t->next) {
        t->next->prev = t;
    }
    loop->timers = t;
    timer_arm(t, time_mono_ms() + (delay_ms > 0 ? delay_ms : 0));
    return t;
}

void
loop_timer_reset(struct loop_timer *t, int64_t delay_ms, int64_t period_ms)
{
    if (t->dead) {
        return;
    }
    timer_disarm(t);
    t->firing = false;
    t->period_ms = period_ms > 0 ? period_ms : 0;
    timer_arm(t, time_mono_ms() + (delay_ms > 0 ? delay_ms : 0));
}

void
loop_timer_cancel(struct loop_timer *t)
{
    if (!t || t->dead) {
        return;
    }
    struct loop *loop = t->loop;
    timer_disarm(t);
    if (t->prev) {
        t->prev->next = t->next;
    } else {
        loop->timers = t->next;
    }
    if (t->next) {
        t->next->prev = t->prev;
    }
    t->firing = false;
    t->dead = true;
    t->prev = NULL;
    t->next = loop->dead_timers;
    loop->dead_timers = t;
}

/* Milliseconds until the first timer, or -1 if none is armed. */
static int
loop_next_timeout(struct loop *loop, int64_t now)
{
    if (!loop->n_heap) {
        return -1;
    }
    int64_t d = loop->heap[0]->deadline_ms - now;
    if (d < 0) {
        return 0;
    }
    return d > 3600000 ? 3600000 : (int) d;
}

/* Run the timers that are due at `now`. The due timers leave the heap
 * first, in firing order; then each runs unless a callback before it
 * reset or cancelled it. A timer armed for "now" by a callback waits for
 * the next round, so timers cannot starve fds. Periodic timers are
 * re-armed before their callback runs, so the callback may cancel them. */
static int
loop_run_timers(struct loop *loop, int64_t now)
{
    struct loop_timer *due = NULL, **tail = &due;
    while (loop->n_heap && loop->heap[0]->deadline_ms <= now) {
        struct loop_timer *t = loop->heap[0];
        timer_disarm(t);
        t->firing = true;
        t->due_next = NULL;
        *tail = t;
        tail = &t->due_next;
    }
    int ran = 0;
    while (due) {
        struct loop_timer *t = due;
        due = t->due_next;
        t->due_next = NULL;
        if (!t->firing) {
            continue; /* reset or cancelled by an earlier callback */
        }
        t->firing = false;
        if (t->period_ms > 0) {
            timer_arm(t, now + t->period_ms);
        }
        t->fn(t->arg, t);
        ran++;
    }
    return ran;
}

/* ---- signals ---- */

int
loop_signal(struct loop *loop, int signo, loop_signal_fn fn, void *arg)
{
    if (signo <= 0 || signo >= LOOP_NSIG) {
        return -EINVAL;
    }
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, signo);
    int rc = pthread_sigmask(SIG_BLOCK, &one, NULL);
    if (rc != 0) {
        return -rc;
    }
    sigaddset(&loop->sigmask, signo);
    int fd = signalfd(loop->sigfd, &loop->sigmask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (fd < 0) {
        return -errno;
    }
    if (loop->sigfd < 0) {
        struct epoll_event ev = {.events = EPOLLIN,
                                 .data.ptr = &loop_token_signal};
        if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
            int e = errno;
            close(fd);
            return -e;
        }
        loop->sigfd = fd;
    }
    loop->sigs[signo].fn = fn;
    loop->sigs[signo].arg = arg;
    return 0;
}

static int
loop_read_signals(struct loop *loop)
{
    int ran = 0;
    struct signalfd_siginfo si;
    while (read(loop->sigfd, &si, sizeof si) == (ssize_t) sizeof si) {
        int signo = (int) si.ssi_signo;
        if (signo > 0 && signo < LOOP_NSIG && loop->sigs[signo].fn) {
            loop->sigs[signo].fn(loop->sigs[signo].arg, signo);
            ran++;
        }
    }
    return ran;
}

/* ---- posted closures ---- */

void
loop_post(struct loop *loop, loop_post_fn fn, void *arg)
{
    struct loop_post_item *p = xmalloc(sizeof *p);
    p->fn = fn;
    p->arg = arg;
    p->next = NULL;
    pthread_mutex_lock(&loop->post_lock);
    if (loop->post_tail) {
        loop->post_tail->next = p;
    } else {
        loop->post_head = p;
    }
    loop->post_tail = p;
    pthread_mutex_unlock(&loop->post_lock);
    uint64_t one = 1;
    ssize_t n = write(loop->eventfd, &one, sizeof one);
    (void) n;
}

static int
loop_run_posts(struct loop *loop)
{
    uint64_t cnt;
    ssize_t n = read(loop->eventfd, &cnt, sizeof cnt);
    (void) n;
    pthread_mutex_lock(&loop->post_lock);
    struct loop_post_item *p = loop->post_head;
    loop->post_head = loop->post_tail = NULL;
    pthread_mutex_unlock(&loop->post_lock);
    int ran = 0;
    while (p) {
        struct loop_post_item *next = p->next;
        p->fn(p->arg);
        free(p);
        ran++;
        p = next;
    }
    return ran;
}

/* ---- dispatch ---- */

static void
loop_reap(struct loop *loop)
{
    loop_free_watch_list(loop->dead_watches);
    loop->dead_watches = NULL;
    loop_free_timer_list(loop->dead_timers);
    loop->dead_timers = NULL;
}

int
loop_run_once(struct loop *loop, int timeout_ms)
{
    int64_t now = time_mono_ms();
    int t = loop_next_timeout(loop, now);
    if (t < 0 || (timeout_ms >= 0 && timeout_ms < t)) {
        t = timeout_ms;
    }
    struct epoll_event evs[LOOP_MAX_EVENTS];
    int n = epoll_wait(loop->epfd, evs, LOOP_MAX_EVENTS, t);
    if (n < 0) {
        if (errno != EINTR) {
            return -errno;
        }
        n = 0;
    }
    int ran = 0;
    for (int i = 0; i < n; i++) {
        void *ptr = evs[i].data.ptr;
        if (ptr == &loop_token_event) {
            ran += loop_run_posts(loop);
        } else if (ptr == &loop_token_signal) {
            ran += loop_read_signals(loop);
        } else {
            struct loop_watch *w = ptr;
            if (!w->dead) {
                w->fn(w->arg, w->fd, evs[i].events);
                ran++;
            }
        }
    }
    now = time_mono_ms();
    loop->now_ms = now;
    ran += loop_run_timers(loop, now);
    loop_reap(loop);
    return ran;
}

int
loop_run(struct loop *loop)
{
    while (!loop_stopped(loop)) {
        int rc = loop_run_once(loop, -1);
        if (rc < 0) {
            return rc;
        }
    }
    __atomic_store_n(&loop->stop, 0, __ATOMIC_SEQ_CST);
    return 0;
}
