/* thread: the one way a long-lived worker thread is set up.
 *
 * Every background thread in the tree (the watch dispatcher, the garbage
 * collector, the store's checkpointer, the controllers' workers, download
 * threads, the daemons' HTTP and stream servers) has the same needs: it
 * must not take process signals (they belong to the event loop's
 * signalfd), it should carry a name that shows in `top -H` and gdb, it
 * sleeps on a condition with a monotonic deadline (wall-clock jumps must
 * not stall or spin it), and its owner stops it with a flag, a wake-up and
 * a join. struct worker bundles the mutex, the condition, the stop flag
 * and the thread so those steps are written once.
 *
 * Use:
 *     worker_init(&w);
 *     worker_start(&w, "gc", gc_main, gc);      // -errno on failure
 *     ... in gc_main:  worker_lock(&w);
 *                      while (worker_wait(&w, 1000)) { ...locked work... }
 *                      worker_unlock(&w);
 *     ... elsewhere:   worker_lock(&w); queue...; worker_wake(&w);
 *                      worker_unlock(&w);
 *     worker_stop(&w);                           // joins
 *     worker_destroy(&w);
 *
 * Threads: worker_wake() and worker_wait() are called with the lock held;
 * worker_stop() without it, and never from the worker itself. */
#ifndef DPF_THREAD_H
#define DPF_THREAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* Start a plain thread with every signal blocked and the given name (cut
 * to 15 bytes, the kernel's limit). attr may be NULL. Returns 0 or a
 * negative errno; errno-style failures of pthread_create come back as is.
 */
int thread_start(pthread_t *t, const pthread_attr_t *attr, const char *name,
                 void *(*fn)(void *), void *arg);

struct worker {
    pthread_mutex_t mu; /* the owner's lock: guards stop and its own state */
    pthread_cond_t cv;  /* CLOCK_MONOTONIC */
    pthread_t thread;
    bool started;
    bool stop;
};

/* Mutex and monotonic condition; no thread yet. */
void worker_init(struct worker *w);
/* Start fn(arg) as the worker's thread (see thread_start). */
int worker_start(struct worker *w, const char *name, void *(*fn)(void *),
                 void *arg);
void worker_lock(struct worker *w);
void worker_unlock(struct worker *w);
/* With the lock held: sleep until woken, stopped, or timeout_ms passed
 * (negative = no timeout). Returns false once a stop was asked for, so a
 * loop reads `while (worker_wait(w, ms))`. A stop asked before the call
 * returns false at once. */
bool worker_wait(struct worker *w, int64_t timeout_ms);
/* Has a stop been asked for? With the lock held. */
bool worker_stopping(const struct worker *w);
/* With the lock held: wake the worker (and any other waiter). */
void worker_wake(struct worker *w);
/* Ask the worker to stop, wake it and join it; a worker that never
 * started is just marked stopped. Idempotent. */
void worker_stop(struct worker *w);
/* Release the mutex and condition (after worker_stop). */
void worker_destroy(struct worker *w);

#endif
