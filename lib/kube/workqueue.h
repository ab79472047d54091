/* workqueue: the queue of keys between informer handlers and reconcile
 * workers.
 *
 * Semantics (the ones Kubernetes controllers rely on):
 *   - De-duplication: a key is in the queue at most once. Adding a key
 *     that is already waiting does nothing; twenty updates to one object
 *     before a worker gets to it cost one reconcile.
 *   - Exclusion: a key handed out by workqueue_get() is "processing" until
 *     workqueue_done(); while it is, no other worker gets it. A key added
 *     while it is processing is marked dirty and queued again at done(),
 *     so the change is not lost and is handled after the running
 *     reconcile, never beside it.
 *   - Delayed adds: workqueue_add_after() queues a key once a delay has
 *     passed (a key waiting twice keeps the earlier time).
 *   - Rate-limited adds: workqueue_add_rate_limited() waits a per-key
 *     exponential delay: base * 2^n for the key's n-th failure in a row,
 *     capped at max (defaults 5 ms and 1000 s), minus a random jitter of
 *     up to jitter * delay (default 0.1), so keys that failed together do
 *     not retry together. workqueue_forget() resets the key's count (call
 *     it after a success).
 *   - Urgent keys: workqueue_set_urgent() marks a key (until unmarked);
 *     a marked key that becomes ready goes to a lane served before all
 *     others, in its own FIFO order, and a key marked while it waits in
 *     the common lane moves to that lane. A controller marks the objects whose
 *     progress frees something others wait for (a DPU holding one of a
 *     few install slots) so they do not wait behind thousands of keys
 *     that can only take a step each (controller-runtime's priority
 *     queue serves the same purpose). A key already queued when marked
 *     keeps its place.
 *   - Shutdown: workqueue_shut_down() refuses new adds, drops delayed
 *     keys and wakes every worker; get() still hands out what is queued
 *     and returns NULL once the queue is empty.
 *     workqueue_shut_down_drain() also waits until every key being
 *     processed is done.
 *
 * Threads: every function is thread-safe; workqueue_get() blocks. Delayed
 * keys need no thread of their own: a waiting get() sleeps until the
 * earliest one is due.
 *
 * Ownership: keys are copied in; workqueue_get() returns a malloc'd key
 * the caller frees after workqueue_done(). */
#ifndef DPF_WORKQUEUE_H
#define DPF_WORKQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct workqueue;

/* Tuning. Zero-initialise for the defaults. */
struct workqueue_options {
    int64_t base_delay_ms; /* first retry delay; 0 = 5 */
    int64_t max_delay_ms;  /* cap; 0 = 1000000 (1000 s) */
    double jitter;         /* fraction removed at random; 0 = 0.1, < 0 =
                              none */
};

/* Create a queue (o may be NULL). */
struct workqueue *workqueue_create(const struct workqueue_options *o);
/* Free the queue. No thread may be inside it. NULL is fine. */
void workqueue_destroy(struct workqueue *q);

/* Queue key now (no-op if already queued, or after shutdown). */
void workqueue_add(struct workqueue *q, const char *key);
/* Queue key after delay_ms (<= 0: now). */
void workqueue_add_after(struct workqueue *q, const char *key,
                         int64_t delay_ms);
/* Queue key after its backoff delay and count a failure. Returns the
 * delay chosen (ms). */
int64_t workqueue_add_rate_limited(struct workqueue *q, const char *key);
/* The delay the next workqueue_add_rate_limited(key) would use before
 * jitter (for logs and tests). */
int64_t workqueue_backoff_ms(struct workqueue *q, const char *key);
/* Mark key urgent (or not); the mark outlives the key's passes through
 * the queue, so unmark a key whose object is gone. */
void workqueue_set_urgent(struct workqueue *q, const char *key, bool urgent);
/* Reset key's failure count. */
void workqueue_forget(struct workqueue *q, const char *key);
/* Consecutive failures counted for key. */
unsigned workqueue_num_requeues(struct workqueue *q, const char *key);

/* Block until a key is ready, mark it processing and return it (malloc'd,
 * caller frees). NULL once the queue is shut down and empty. */
char *workqueue_get(struct workqueue *q);
/* The worker finished key (requeues it if it was added meanwhile). */
void workqueue_done(struct workqueue *q, const char *key);

/* Keys queued and ready (not delayed, not processing). */
size_t workqueue_len(struct workqueue *q);
/* Keys waiting for their delay. */
size_t workqueue_len_delayed(struct workqueue *q);

/* Counters for metrics (client-go's workqueue_* names in
 * controller_manager_metrics()). */
struct workqueue_stats {
    uint64_t adds;    /* keys added that were not already queued */
    uint64_t retries; /* workqueue_add_rate_limited() calls */
    size_t depth;     /* keys queued and ready (both lanes) */
    size_t urgent;    /* of them, in the urgent lane */
    size_t delayed;   /* keys waiting for their delay */
};
void workqueue_stats(struct workqueue *q, struct workqueue_stats *out);

/* Refuse new keys, drop delayed ones, wake every get(). */
void workqueue_shut_down(struct workqueue *q);
/* The same, then wait until nothing is processing. */
void workqueue_shut_down_drain(struct workqueue *q);
/* True after shut down. */
bool workqueue_shutting_down(struct workqueue *q);

#endif
