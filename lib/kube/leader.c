/* leader: see leader.h. */
#include "lib/kube/leader.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/base/log.h"
#include "lib/base/thread.h"
#include "lib/base/util.h"

LOG_MODULE(leader);

#define JITTER 1.2 /* client-go's JitterFactor for the retry period */

static const struct kube_gvr lease_gvr = {"coordination.k8s.io", "v1", "leases",
                                          true};

struct leader_elector {
    struct kube_rest *rest;
    struct leader_config cfg; /* strings below */
    char *ns, *name, *identity;
    char *path, *coll_path;
    pthread_t thread;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    atomic_bool leading;
    _Atomic uint64_t transitions;
    char holder[256];    /* under mu */
    json_t *observed;    /* spec last seen (thread only) */
    int64_t observed_ms; /* when it changed (monotonic) */
    uint64_t rng;
    int64_t req_timeout_ms; /* for the next requests (thread only) */
};

static double
rng_unit(struct leader_elector *le)
{
    le->rng ^= le->rng << 13;
    le->rng ^= le->rng >> 7;
    le->rng ^= le->rng << 17;
    return (double) (le->rng >> 11) / (double) (1ULL << 53);
}

struct leader_elector *
leader_elector_create(struct kube_rest *r, const struct leader_config *cfg,
                      struct dpf_error *err)
{
    if (!cfg->namespace || !*cfg->namespace || !cfg->name || !*cfg->name ||
        !cfg->identity || !*cfg->identity) {
        dpf_error_set(err, 400, "BadRequest",
                      "leader election needs a Lease namespace, name and an "
                      "identity");
        return NULL;
    }
    struct leader_elector *le = xcalloc(1, sizeof *le);
    le->rest = r;
    le->cfg = *cfg;
    if (!le->cfg.lease_ms) {
        le->cfg.lease_ms = LEADER_LEASE_MS;
    }
    if (!le->cfg.renew_deadline_ms) {
        le->cfg.renew_deadline_ms = LEADER_RENEW_DEADLINE_MS;
    }
    if (!le->cfg.retry_ms) {
        le->cfg.retry_ms = LEADER_RETRY_MS;
    }
    if (le->cfg.lease_ms < 1000 ||
        le->cfg.renew_deadline_ms >= le->cfg.lease_ms ||
        le->cfg.retry_ms * JITTER >= (double) le->cfg.renew_deadline_ms) {
        dpf_error_set(err, 400, "BadRequest",
                      "leader election: need lease duration (%lld ms, >= 1 s) "
                      "> renew deadline (%lld ms) > 1.2 x retry period (%lld "
                      "ms)",
                      (long long) le->cfg.lease_ms,
                      (long long) le->cfg.renew_deadline_ms,
                      (long long) le->cfg.retry_ms);
        free(le);
        return NULL;
    }
    le->ns = xstrdup(cfg->namespace);
    le->name = xstrdup(cfg->name);
    le->identity = xstrdup(cfg->identity);
    le->cfg.namespace = le->ns;
    le->cfg.name = le->name;
    le->cfg.identity = le->identity;
    le->path = kube_path(&lease_gvr, le->ns, le->name, NULL);
    le->coll_path = kube_path(&lease_gvr, le->ns, NULL, NULL);
    pthread_mutex_init(&le->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&le->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&le->leading, false);
    le->rng = (uint64_t) time_wall_ns() ^ (uint64_t) (uintptr_t) le;
    if (!le->rng) {
        le->rng = 1;
    }
    return le;
}

/* Wait ms or until stop; true when stopping. */
static bool
wait_or_stop(struct leader_elector *le, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = ts.tv_nsec + (ms % 1000) * 1000000LL;
    ts.tv_sec += ms / 1000 + ns / 1000000000LL;
    ts.tv_nsec = ns % 1000000000LL;
    pthread_mutex_lock(&le->mu);
    while (!le->stop) {
        if (pthread_cond_timedwait(&le->cv, &le->mu, &ts) == ETIMEDOUT) {
            break;
        }
    }
    bool stop = le->stop;
    pthread_mutex_unlock(&le->mu);
    return stop;
}

static bool
stopping(struct leader_elector *le)
{
    pthread_mutex_lock(&le->mu);
    bool s = le->stop;
    pthread_mutex_unlock(&le->mu);
    return s;
}

/* MicroTime, as Lease times are written: 2006-01-02T15:04:05.000000Z. */
static void
micro_now(char *buf, size_t size)
{
    int64_t ns = time_wall_ns();
    time_t s = (time_t) (ns / 1000000000LL);
    struct tm tm;
    gmtime_r(&s, &tm);
    char head[32];
    strftime(head, sizeof head, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, size, "%s.%06ldZ", head, (long) ((ns % 1000000000LL) / 1000));
}

static int
request(struct leader_elector *le, const char *method, const char *path,
        const json_t *body, json_t **out, struct dpf_error *err)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct kube_request req = {.method = method,
                               .path = path,
                               .body = text,
                               .body_len = text ? strlen(text) : 0,
                               .timeout_ms = le->req_timeout_ms};
    struct kube_response resp = {0};
    int rc = kube_rest_request_wait(le->rest, &req, &resp, err);
    if (rc == 0 && out) {
        *out = json_loadb(resp.body, resp.len, 0, NULL);
        if (!*out) {
            dpf_error_set(err, 500, "InternalError",
                          "the Lease reply is not JSON");
            rc = -EBADMSG;
        }
    }
    kube_response_free(&resp);
    free(text);
    return rc;
}

static void
set_holder(struct leader_elector *le, const char *h)
{
    pthread_mutex_lock(&le->mu);
    snprintf(le->holder, sizeof le->holder, "%s", h ? h : "");
    pthread_mutex_unlock(&le->mu);
}

/* One try to acquire or renew (client-go's tryAcquireOrRenew). True when
 * we hold the Lease afterwards. */
static bool
try_acquire_or_renew(struct leader_elector *le)
{
    char now[64];
    micro_now(now, sizeof now);
    long dur_s = (long) ((le->cfg.lease_ms + 999) / 1000);
    struct dpf_error err = {0};
    json_t *lease = NULL;
    int rc = request(le, "GET", le->path, NULL, &lease, &err);
    if (rc == -ENOENT) {
        json_t *nl = json_pack(
            "{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:i, s:s, s:s, s:i}}",
            "apiVersion", "coordination.k8s.io/v1", "kind", "Lease", "metadata",
            "name", le->name, "namespace", le->ns, "spec", "holderIdentity",
            le->identity, "leaseDurationSeconds", (int) dur_s, "acquireTime",
            now, "renewTime", now, "leaseTransitions", 0);
        rc = request(le, "POST", le->coll_path, nl, NULL, &err);
        json_decref(nl);
        if (rc < 0) {
            log_info("cannot create the lease", "lease=%s/%s error=\"%s\"",
                     le->ns, le->name, err.message);
            return false;
        }
        json_decref(le->observed);
        le->observed = NULL;
        le->observed_ms = time_mono_ms();
        set_holder(le, le->identity);
        return true;
    }
    if (rc < 0) {
        log_warn_rl("cannot read the lease", "lease=%s/%s error=\"%s\"", le->ns,
                    le->name, err.message);
        return false;
    }
    json_t *spec = json_object_get(lease, "spec");
    if (!json_is_object(spec)) {
        spec = json_object();
        json_object_set_new(lease, "spec", spec);
    }
    const char *holder =
        json_string_value(json_object_get(spec, "holderIdentity"));
    int64_t now_ms = time_mono_ms();
    if (!le->observed || !json_equal(le->observed, spec)) {
        json_decref(le->observed);
        le->observed = json_deep_copy(spec);
        le->observed_ms = now_ms;
    }
    set_holder(le, holder);
    bool mine = holder && !strcmp(holder, le->identity);
    json_int_t held_s =
        json_integer_value(json_object_get(spec, "leaseDurationSeconds"));
    if (holder && *holder && !mine &&
        now_ms < le->observed_ms + (int64_t) held_s * 1000) {
        json_decref(lease);
        return false; /* held by a live leader */
    }
    json_int_t transitions =
        json_integer_value(json_object_get(spec, "leaseTransitions"));
    if (!mine) {
        json_object_set_new(spec, "acquireTime", json_string(now));
        json_object_set_new(spec, "leaseTransitions",
                            json_integer(transitions + 1));
    }
    json_object_set_new(spec, "holderIdentity", json_string(le->identity));
    json_object_set_new(spec, "leaseDurationSeconds", json_integer(dur_s));
    json_object_set_new(spec, "renewTime", json_string(now));
    json_t *written = NULL;
    rc = request(le, "PUT", le->path, lease, &written, &err);
    json_decref(lease);
    if (rc < 0) {
        log_info(mine ? "cannot renew the lease" : "cannot acquire the lease",
                 "lease=%s/%s error=\"%s\"", le->ns, le->name, err.message);
        return false;
    }
    json_decref(le->observed);
    le->observed = json_deep_copy(json_object_get(written, "spec"));
    le->observed_ms = now_ms;
    json_decref(written);
    set_holder(le, le->identity);
    return true;
}

/* Give the Lease up (client-go's release). */
static void
release(struct leader_elector *le)
{
    struct dpf_error err = {0};
    json_t *lease = NULL;
    if (request(le, "GET", le->path, NULL, &lease, &err) < 0) {
        log_warn("cannot release the lease", "lease=%s/%s error=\"%s\"", le->ns,
                 le->name, err.message);
        return;
    }
    json_t *spec = json_object_get(lease, "spec");
    const char *holder =
        json_string_value(json_object_get(spec, "holderIdentity"));
    if (!holder || strcmp(holder, le->identity) != 0) {
        json_decref(lease);
        return; /* not ours any more */
    }
    char now[64];
    micro_now(now, sizeof now);
    json_object_set_new(spec, "holderIdentity", json_string(""));
    json_object_set_new(spec, "leaseDurationSeconds", json_integer(1));
    json_object_set_new(spec, "renewTime", json_string(now));
    json_object_set_new(spec, "acquireTime", json_string(now));
    int rc = request(le, "PUT", le->path, lease, NULL, &err);
    json_decref(lease);
    if (rc < 0) {
        log_warn("cannot release the lease", "lease=%s/%s error=\"%s\"", le->ns,
                 le->name, err.message);
    } else {
        log_info("released the lease", "lease=%s/%s identity=%s", le->ns,
                 le->name, le->identity);
        set_holder(le, "");
    }
}

static int64_t
jittered(struct leader_elector *le)
{
    return le->cfg.retry_ms +
           (int64_t) (rng_unit(le) * JITTER * (double) le->cfg.retry_ms);
}

static void *
elector_main(void *arg)
{
    struct leader_elector *le = arg;
    log_info("waiting for the lease", "lease=%s/%s identity=%s", le->ns,
             le->name, le->identity);
    le->req_timeout_ms = le->cfg.renew_deadline_ms / 2;
    while (!stopping(le)) {
        if (try_acquire_or_renew(le)) {
            break;
        }
        if (wait_or_stop(le, jittered(le))) {
            return NULL;
        }
    }
    if (stopping(le)) {
        return NULL;
    }
    atomic_store(&le->leading, true);
    atomic_fetch_add(&le->transitions, 1);
    log_info("became leader", "lease=%s/%s identity=%s", le->ns, le->name,
             le->identity);
    if (le->cfg.on_started) {
        le->cfg.on_started(le->cfg.arg);
    }
    int64_t last_ok = time_mono_ms();
    while (!wait_or_stop(le, le->cfg.retry_ms)) {
        /* A renewal must not outlast the renew deadline (a hung server
         * would otherwise keep us "leading" past it). */
        int64_t left = le->cfg.renew_deadline_ms - (time_mono_ms() - last_ok);
        le->req_timeout_ms = left < 1 ? 1 : left;
        if (try_acquire_or_renew(le)) {
            last_ok = time_mono_ms();
            continue;
        }
        if (time_mono_ms() - last_ok >= le->cfg.renew_deadline_ms) {
            atomic_store(&le->leading, false);
            log_error("lost the lease: no renewal within the renew deadline",
                      "lease=%s/%s identity=%s renew_deadline_ms=%lld", le->ns,
                      le->name, le->identity,
                      (long long) le->cfg.renew_deadline_ms);
            if (le->cfg.on_stopped) {
                le->cfg.on_stopped(le->cfg.arg);
            }
            return NULL;
        }
    }
    return NULL;
}

int
leader_elector_start(struct leader_elector *le)
{
    if (le->running) {
        return 0;
    }
    int rc = thread_start(&le->thread, NULL, "leader-elect", elector_main, le);
    if (rc != 0) {
        return rc;
    }
    le->running = true;
    return 0;
}

void
leader_elector_stop(struct leader_elector *le)
{
    if (!le || !le->running) {
        return;
    }
    pthread_mutex_lock(&le->mu);
    le->stop = true;
    pthread_cond_broadcast(&le->cv);
    pthread_mutex_unlock(&le->mu);
    pthread_join(le->thread, NULL);
    le->running = false;
    if (atomic_load(&le->leading)) {
        atomic_store(&le->leading, false);
        le->req_timeout_ms = le->cfg.renew_deadline_ms / 2;
        if (le->cfg.release_on_stop) {
            release(le);
        }
    }
}

void
leader_elector_destroy(struct leader_elector *le)
{
    if (!le) {
        return;
    }
    leader_elector_stop(le);
    json_decref(le->observed);
    pthread_mutex_destroy(&le->mu);
    pthread_cond_destroy(&le->cv);
    free(le->path);
    free(le->coll_path);
    free(le->ns);
    free(le->name);
    free(le->identity);
    free(le);
}

bool
leader_elector_is_leader(struct leader_elector *le)
{
    return atomic_load(&le->leading);
}

void
leader_elector_holder(struct leader_elector *le, char *buf, size_t size)
{
    pthread_mutex_lock(&le->mu);
    snprintf(buf, size, "%s", le->holder);
    pthread_mutex_unlock(&le->mu);
}

uint64_t
leader_elector_transitions(struct leader_elector *le)
{
    return atomic_load(&le->transitions);
}
