/* leader: leader election on a coordination.k8s.io/v1 Lease, as client-go
 * does it, so that of several controller managers against one API server
 * exactly one runs the controllers and a standby takes over when it dies.
 *
 * The Lease (namespace/name) records holderIdentity, leaseDurationSeconds,
 * acquireTime, renewTime and leaseTransitions. A candidate:
 *   - acquires the Lease when nobody holds it (missing, or holderIdentity
 *     empty after a release) or when the holder's record has not changed
 *     for leaseDurationSeconds as measured on the candidate's own
 *     monotonic clock from when it first saw that record (no clock skew
 *     between machines matters: renewTime is never compared with our
 *     clock); it tries every retry period, stretched by a random 0-120 %
 *     so candidates do not collide in step;
 *   - once leader, renews every retry period; when no renewal has
 *     succeeded for the renew deadline it has lost: on_stopped runs and the
 *     elector ends. The renew deadline (10 s) is shorter than the lease
 *     duration (15 s), so a leader cut off from the server stops before a
 *     standby can take over;
 *   - on leader_elector_stop() with release_on_stop, a leader writes
 *     holderIdentity "" and leaseDurationSeconds 1, so a standby takes over
 *     at its next try instead of waiting out the lease.
 * Every write is a PUT with the resourceVersion read, so two candidates
 * racing for the Lease cannot both win: the second gets a 409 Conflict.
 *
 * Defaults are client-go's: lease 15 s, renew deadline 10 s, retry 2 s.
 *
 * Threads: the elector runs on a thread of its own (it blocks on the API
 * through kube_rest_request_wait(), so the struct kube_rest's loop must be
 * running on another thread). on_started and on_stopped run on that
 * thread; leader_elector_is_leader() may be called from any thread.
 * Ownership: the config's strings are copied; the struct kube_rest is
 * borrowed and must outlive the elector. */
#ifndef DPF_LEADER_H
#define DPF_LEADER_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/base/error.h"
#include "lib/kube/kube-rest.h"

#define LEADER_LEASE_MS 15000
#define LEADER_RENEW_DEADLINE_MS 10000
#define LEADER_RETRY_MS 2000

struct leader_config {
    const char *namespace;     /* of the Lease (required) */
    const char *name;          /* of the Lease (required) */
    const char *identity;      /* this candidate (required, unique) */
    int64_t lease_ms;          /* 0 = LEADER_LEASE_MS */
    int64_t renew_deadline_ms; /* 0 = LEADER_RENEW_DEADLINE_MS */
    int64_t retry_ms;          /* 0 = LEADER_RETRY_MS */
    bool release_on_stop;      /* clear the holder on leader_elector_stop */
    /* Became leader. Elector thread; may block (e.g. start workers). */
    void (*on_started)(void *arg);
    /* Lost the lease (renew deadline passed). Elector thread. Not called
     * for leader_elector_stop(). */
    void (*on_stopped)(void *arg);
    void *arg;
};

struct leader_elector;

/* An elector for cfg on r, not yet running. NULL with err set when a
 * required field is missing or the durations are inconsistent (renew
 * deadline must be below the lease duration and above the retry period).
 */
struct leader_elector *leader_elector_create(struct kube_rest *r,
                                             const struct leader_config *cfg,
                                             struct dpf_error *err);
/* Start the elector thread. 0 or -errno. */
int leader_elector_start(struct leader_elector *le);
/* Stop campaigning; a leader releases the Lease if release_on_stop. Joins
 * the thread. Idempotent. Never from on_started/on_stopped. */
void leader_elector_stop(struct leader_elector *le);
/* Stop and free. NULL is fine. */
void leader_elector_destroy(struct leader_elector *le);
/* True while this candidate holds the Lease (renewed within the renew
 * deadline). Any thread. */
bool leader_elector_is_leader(struct leader_elector *le);
/* The holder last seen in the Lease into buf ("" if none). Any thread. */
void leader_elector_holder(struct leader_elector *le, char *buf, size_t size);
/* Times this candidate acquired the Lease. Any thread. */
uint64_t leader_elector_transitions(struct leader_elector *le);

#endif
