/* thread: see thread.h. */
#include "lib/base/thread.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* What a new thread needs before it runs fn: its name is set from inside
 * the thread, because a detached thread may have exited (and its
 * descriptor been reused) by the time pthread_create returns. */
struct thread_boot {
    void *(*fn)(void *);
    void *arg;
    char name[16];
};

static void *
thread_boot_main(void *p)
{
    struct thread_boot b = *(struct thread_boot *) p;
    free(p);
    if (b.name[0]) {
        pthread_setname_np(pthread_self(), b.name); /* cosmetic */
    }
    return b.fn(b.arg);
}

int
thread_start(pthread_t *t, const pthread_attr_t *attr, const char *name,
             void *(*fn)(void *), void *arg)
{
    struct thread_boot *b = calloc(1, sizeof *b);
    if (!b) {
        return -ENOMEM;
    }
    b->fn = fn;
    b->arg = arg;
    if (name) {
        size_t len = strlen(name);
        if (len > sizeof b->name - 1) {
            len = sizeof b->name - 1;
        }
        memcpy(b->name, name, len);
    }
    /* The new thread inherits the creator's mask: block everything around
     * the create so no signal can land on it, then restore ours. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(t, attr, thread_boot_main, b);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        free(b);
        return -rc;
    }
    return 0;
}

void
worker_init(struct worker *w)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cv, &ca);
    pthread_condattr_destroy(&ca);
}

int
worker_start(struct worker *w, const char *name, void *(*fn)(void *), void *arg)
{
    int rc = thread_start(&w->thread, NULL, name, fn, arg);
    if (rc == 0) {
        w->started = true;
    }
    return rc;
}

void
worker_lock(struct worker *w)
{
    pthread_mutex_lock(&w->mu);
}

void
worker_unlock(struct worker *w)
{
    pthread_mutex_unlock(&w->mu);
}

bool
worker_stopping(const struct worker *w)
{
    return w->stop;
}

bool
worker_wait(struct worker *w, int64_t timeout_ms)
{
    if (w->stop) {
        return false;
    }
    if (timeout_ms < 0) {
        pthread_cond_wait(&w->cv, &w->mu);
        return !w->stop;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    return !w->stop;
}

void
worker_wake(struct worker *w)
{
    pthread_cond_broadcast(&w->cv);
}

void
worker_stop(struct worker *w)
{
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (w->started) {
        pthread_join(w->thread, NULL);
        w->started = false;
    }
}

void
worker_destroy(struct worker *w)
{
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
}
