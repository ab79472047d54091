/* controller: see controller.h. */
#include "lib/kube/controller.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/base/thread.h"
#include "lib/base/util.h"

LOG_MODULE(controller);

#define DEFAULT_WORKERS 2

/* Reconcile duration histogram buckets (seconds), controller-runtime's
 * range from 5 ms to a minute. */
static const double hist_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                     1,     2.5,  5,     10,   30,  60};
#define N_BOUNDS (sizeof hist_bounds / sizeof hist_bounds[0])

/* One watch of one controller: the handler argument. */
struct ctl_watch {
    struct controller *c;
    const struct controller_watch *w;
    struct informer *inf;
};

struct controller {
    struct controller_manager *m;
    const struct controller_ops *ops;
    void *arg;
    struct workqueue *q;
    struct ctl_watch *watches; /* [0] primary, then secondaries */
    size_t n_watches;
    pthread_t *threads;
    int n_threads;
    _Atomic uint64_t reconciles, errors, requeues;
    /* by outcome: success (done), requeue, requeue_after, error */
    _Atomic uint64_t outcomes[4];
    /* duration histogram: counts per bucket (+Inf last), sum in us */
    _Atomic uint64_t hist[N_BOUNDS + 1];
    _Atomic uint64_t hist_sum_us;
};

struct shared_informer {
    struct informer *inf;
    char *id; /* group/version/resource|ns|selector */
};

struct controller_manager {
    struct loop *loop;
    struct kube_rest *rest;
    struct controller **ctls;
    size_t n_ctls;
    struct shared_informer *infs;
    size_t n_infs;
    pthread_t loop_thread;
    bool loop_running;
    bool started;
    bool workers_started;       /* under workers_mu */
    pthread_mutex_t workers_mu; /* start/stop of workers from two threads */
};

struct controller_result
controller_done(void)
{
    return (struct controller_result){.outcome = CONTROLLER_DONE};
}

struct controller_result
controller_requeue(void)
{
    return (struct controller_result){.outcome = CONTROLLER_REQUEUE};
}

struct controller_result
controller_requeue_after(int64_t ms)
{
    return (struct controller_result){.outcome = CONTROLLER_REQUEUE_AFTER,
                                      .after_ms = ms};
}

struct controller_result
controller_error(void)
{
    return (struct controller_result){.outcome = CONTROLLER_ERROR};
}

void *
controller_arg(struct controller *c)
{
    return c->arg;
}

const struct controller_ops *
controller_ops(struct controller *c)
{
    return c->ops;
}

struct kube_cache *
controller_cache(struct controller *c, size_t i)
{
    return i < c->n_watches ? informer_cache(c->watches[i].inf) : NULL;
}

struct kube_rest *
controller_rest(struct controller *c)
{
    return c->m->rest;
}

struct workqueue *
controller_queue(struct controller *c)
{
    return c->q;
}

void
controller_stats(struct controller *c, struct controller_stats *out)
{
    out->reconciles = atomic_load(&c->reconciles);
    out->errors = atomic_load(&c->errors);
    out->requeues = atomic_load(&c->requeues);
}

json_t *
controller_map_owner(struct controller *c, const json_t *obj)
{
    const struct controller_ops *ops = c->ops;
    const struct kube_gvr *g = &ops->primary.gvr;
    json_t *md = json_object_get(obj, "metadata");
    json_t *refs = json_object_get(md, "ownerReferences");
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    char *api_version = g->group && *g->group
                            ? xasprintf("%s/%s", g->group, g->version)
                            : xstrdup(g->version);
    json_t *out = NULL;
    size_t i;
    json_t *ref;
    json_array_foreach(refs, i, ref)
    {
        const char *kind = json_string_value(json_object_get(ref, "kind"));
        const char *av = json_string_value(json_object_get(ref, "apiVersion"));
        const char *name = json_string_value(json_object_get(ref, "name"));
        if (!json_is_true(json_object_get(ref, "controller")) || !kind || !av ||
            !name || !ops->primary_kind ||
            strcmp(kind, ops->primary_kind) != 0 ||
            strcmp(av, api_version) != 0) {
            continue;
        }
        char *key = kube_cache_key_of(g->namespaced ? ns : NULL, name);
        out = json_pack("[s]", key);
        free(key);
        break;
    }
    free(api_version);
    return out;
}

/* --- informer handlers: object -> keys -> queue --- */

static void
enqueue_for(struct ctl_watch *cw, const json_t *obj)
{
    if (!cw->w->map) {
        char *key = kube_cache_key(obj);
        if (key) {
            workqueue_add(cw->c->q, key);
            free(key);
        }
        return;
    }
    json_t *keys = cw->w->map(cw->c, obj);
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        if (json_string_value(k)) {
            workqueue_add_after(cw->c->q, json_string_value(k),
                                cw->w->coalesce_ms);
        }
    }
    json_decref(keys);
}

static void
on_add(void *arg, const json_t *obj)
{
    enqueue_for(arg, obj);
}

static void
on_update(void *arg, const json_t *old_obj, const json_t *obj)
{
    struct ctl_watch *cw = arg;
    if (cw->w->relevant && old_obj != obj && !cw->w->relevant(old_obj, obj)) {
        return;
    }
    /* A secondary may have changed owner: both the old and the new
     * owners need a look. */
    if (cw->w->map && old_obj != obj) {
        enqueue_for(cw, old_obj);
    }
    enqueue_for(cw, obj);
}

static void
on_delete(void *arg, const json_t *obj)
{
    enqueue_for(arg, obj);
}

/* --- workers --- */

static void *
worker_main(void *arg)
{
    struct controller *c = arg;
    char *key;
    while ((key = workqueue_get(c->q))) {
        atomic_fetch_add(&c->reconciles, 1);
        int64_t t0 = time_mono_ns();
        struct controller_result r = c->ops->reconcile(c, key);
        int64_t us = (time_mono_ns() - t0) / 1000;
        size_t b = 0;
        while (b < N_BOUNDS && (double) us / 1e6 > hist_bounds[b]) {
            b++;
        }
        atomic_fetch_add(&c->hist[b], 1);
        atomic_fetch_add(&c->hist_sum_us, (uint64_t) us);
        if ((unsigned) r.outcome < 4) {
            atomic_fetch_add(&c->outcomes[r.outcome], 1);
        }
        switch (r.outcome) {
        case CONTROLLER_DONE:
            workqueue_forget(c->q, key);
            break;
        case CONTROLLER_REQUEUE:
            atomic_fetch_add(&c->requeues, 1);
            workqueue_add_rate_limited(c->q, key);
            break;
        case CONTROLLER_REQUEUE_AFTER:
            atomic_fetch_add(&c->requeues, 1);
            workqueue_forget(c->q, key);
            workqueue_add_after(c->q, key, r.after_ms);
            break;
        case CONTROLLER_ERROR: {
            atomic_fetch_add(&c->errors, 1);
            int64_t d = workqueue_add_rate_limited(c->q, key);
            log_warn_rl("reconcile failed, retrying",
                        "controller=%s key=%s retry_ms=%lld", c->ops->name, key,
                        (long long) d);
            break;
        }
        }
        workqueue_done(c->q, key);
        free(key);
    }
    return NULL;
}

/* --- manager --- */

struct controller_manager *
controller_manager_create(const struct kubeconfig *kc, struct dpf_error *err)
{
    struct loop *loop = loop_create();
    if (!loop) {
        dpf_error_set(err, 500, "InternalError", "cannot create a loop: %s",
                      strerror(errno));
        return NULL;
    }
    struct kube_rest *rest = kube_rest_create(loop, kc, err);
    if (!rest) {
        loop_destroy(loop);
        return NULL;
    }
    struct controller_manager *m = xcalloc(1, sizeof *m);
    m->loop = loop;
    m->rest = rest;
    pthread_mutex_init(&m->workers_mu, NULL);
    return m;
}

struct kube_rest *
controller_manager_rest(struct controller_manager *m)
{
    return m->rest;
}

struct informer *
controller_manager_informer(struct controller_manager *m,
                            const struct kube_gvr *gvr, const char *ns,
                            const char *label_selector, int64_t resync_ms)
{
    char *id = xasprintf("%s/%s/%s|%s|%s", gvr->group ? gvr->group : "",
                         gvr->version, gvr->resource, ns ? ns : "",
                         label_selector ? label_selector : "");
    for (size_t i = 0; i < m->n_infs; i++) {
        if (!strcmp(m->infs[i].id, id)) {
            free(id);
            return m->infs[i].inf;
        }
    }
    struct informer_options o = {.gvr = *gvr,
                                 .namespace = ns,
                                 .label_selector = label_selector,
                                 .resync_ms = resync_ms};
    m->infs = xrealloc(m->infs, (m->n_infs + 1) * sizeof *m->infs);
    m->infs[m->n_infs].inf = informer_create(m->rest, &o);
    m->infs[m->n_infs].id = id;
    return m->infs[m->n_infs++].inf;
}

struct controller *
controller_manager_add(struct controller_manager *m,
                       const struct controller_ops *ops, void *arg)
{
    struct controller *c = xcalloc(1, sizeof *c);
    c->m = m;
    c->ops = ops;
    c->arg = arg;
    c->q = workqueue_create(NULL);
    c->n_watches = 1 + ops->n_secondary;
    c->watches = xcalloc(c->n_watches, sizeof *c->watches);
    for (size_t i = 0; i < c->n_watches; i++) {
        const struct controller_watch *w =
            i == 0 ? &ops->primary : &ops->secondary[i - 1];
        struct ctl_watch *cw = &c->watches[i];
        cw->c = c;
        cw->w = w;
        cw->inf = controller_manager_informer(m, &w->gvr, w->namespace,
                                              w->label_selector,
                                              i == 0 ? ops->resync_ms : 0);
        struct informer_handlers h = {.on_add = on_add,
                                      .on_update = on_update,
                                      .on_delete = on_delete,
                                      .arg = cw};
        informer_add_handlers(cw->inf, &h);
    }
    m->ctls = xrealloc(m->ctls, (m->n_ctls + 1) * sizeof *m->ctls);
    m->ctls[m->n_ctls++] = c;
    return c;
}

static void
start_informers(void *arg)
{
    struct controller_manager *m = arg;
    for (size_t i = 0; i < m->n_infs; i++) {
        informer_start(m->infs[i].inf);
    }
}

static void
stop_informers(void *arg)
{
    struct controller_manager *m = arg;
    for (size_t i = 0; i < m->n_infs; i++) {
        informer_stop(m->infs[i].inf);
    }
    loop_stop(m->loop);
}

static void *
loop_main(void *arg)
{
    struct controller_manager *m = arg;
    loop_run(m->loop);
    return NULL;
}

int
controller_manager_start_informers(struct controller_manager *m,
                                   int64_t sync_timeout_ms,
                                   struct dpf_error *err)
{
    if (!m->started) {
        m->started = true;
        loop_post(m->loop, start_informers, m);
        if (thread_start(&m->loop_thread, NULL, "ctrl-loop", loop_main, m) !=
            0) {
            dpf_error_set(err, 500, "InternalError",
                          "cannot start the loop thread");
            return -EAGAIN;
        }
        m->loop_running = true;
    }
    int64_t deadline = time_mono_ms() + sync_timeout_ms;
    for (size_t i = 0; i < m->n_infs; i++) {
        int64_t left = sync_timeout_ms < 0 ? -1 : deadline - time_mono_ms();
        if (sync_timeout_ms >= 0 && left < 0) {
            left = 0;
        }
        if (informer_wait_synced(m->infs[i].inf, left) < 0) {
            dpf_error_set(err, 504, "Timeout",
                          "the cache of %s did not sync within %lld ms",
                          m->infs[i].id, (long long) sync_timeout_ms);
            return -ETIMEDOUT;
        }
    }
    return 0;
}

void
controller_manager_start_workers(struct controller_manager *m)
{
    pthread_mutex_lock(&m->workers_mu);
    if (m->workers_started) {
        pthread_mutex_unlock(&m->workers_mu);
        return;
    }
    m->workers_started = true;
    for (size_t i = 0; i < m->n_ctls; i++) {
        struct controller *c = m->ctls[i];
        int n = c->ops->workers > 0 ? c->ops->workers : DEFAULT_WORKERS;
        c->threads = xcalloc((size_t) n, sizeof *c->threads);
        for (int j = 0; j < n; j++) {
            if (thread_start(&c->threads[j], NULL, c->ops->name, worker_main,
                             c) != 0) {
                break;
            }
            c->n_threads++;
        }
        log_info("controller started", "controller=%s workers=%d", c->ops->name,
                 c->n_threads);
    }
    pthread_mutex_unlock(&m->workers_mu);
}

int
controller_manager_start(struct controller_manager *m, int64_t sync_timeout_ms,
                         struct dpf_error *err)
{
    int rc = controller_manager_start_informers(m, sync_timeout_ms, err);
    if (rc < 0) {
        controller_manager_stop(m);
        return rc;
    }
    controller_manager_start_workers(m);
    return 0;
}

/* --- metrics --- */

static const char *const outcome_names[] = {"success", "requeue",
                                            "requeue_after", "error"};

void
controller_manager_metrics(struct controller_manager *m, struct dbuf *out)
{
    dbuf_puts(out, "# HELP controller_runtime_reconcile_total Reconciles per "
                   "controller and result.\n"
                   "# TYPE controller_runtime_reconcile_total counter\n");
    for (size_t i = 0; i < m->n_ctls; i++) {
        struct controller *c = m->ctls[i];
        for (int o = 0; o < 4; o++) {
            dbuf_printf(out,
                        "controller_runtime_reconcile_total{controller=\"%s\","
                        "result=\"%s\"} %llu\n",
                        c->ops->name, outcome_names[o],
                        (unsigned long long) atomic_load(&c->outcomes[o]));
        }
    }
    dbuf_puts(out, "# HELP controller_runtime_reconcile_errors_total "
                   "Reconciles that returned an error.\n"
                   "# TYPE controller_runtime_reconcile_errors_total "
                   "counter\n");
    for (size_t i = 0; i < m->n_ctls; i++) {
        struct controller *c = m->ctls[i];
        dbuf_printf(out,
                    "controller_runtime_reconcile_errors_total{controller="
                    "\"%s\"} %llu\n",
                    c->ops->name, (unsigned long long) atomic_load(&c->errors));
    }
    dbuf_puts(out, "# HELP controller_runtime_reconcile_time_seconds Time "
                   "per reconcile.\n"
                   "# TYPE controller_runtime_reconcile_time_seconds "
                   "histogram\n");
    for (size_t i = 0; i < m->n_ctls; i++) {
        struct controller *c = m->ctls[i];
        uint64_t cum = 0;
        for (size_t b = 0; b <= N_BOUNDS; b++) {
            cum += atomic_load(&c->hist[b]);
            char le[32];
            if (b < N_BOUNDS) {
                snprintf(le, sizeof le, "%g", hist_bounds[b]);
            } else {
                snprintf(le, sizeof le, "+Inf");
            }
            dbuf_printf(out,
                        "controller_runtime_reconcile_time_seconds_bucket{"
                        "controller=\"%s\",le=\"%s\"} %llu\n",
                        c->ops->name, le, (unsigned long long) cum);
        }
        dbuf_printf(out,
                    "controller_runtime_reconcile_time_seconds_sum{controller="
                    "\"%s\"} %.6f\n"
                    "controller_runtime_reconcile_time_seconds_count{"
                    "controller=\"%s\"} %llu\n",
                    c->ops->name, (double) atomic_load(&c->hist_sum_us) / 1e6,
                    c->ops->name, (unsigned long long) cum);
    }
    static const char *const wq[][3] = {
        {"workqueue_depth", "gauge", "Keys queued and ready."},
        {"workqueue_adds_total", "counter", "Keys added to the queue."},
        {"workqueue_retries_total", "counter", "Rate-limited re-adds."},
    };
    for (size_t k = 0; k < 3; k++) {
        dbuf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", wq[k][0], wq[k][2],
                    wq[k][0], wq[k][1]);
        for (size_t i = 0; i < m->n_ctls; i++) {
            struct workqueue_stats st;
            workqueue_stats(m->ctls[i]->q, &st);
            unsigned long long v = k == 0   ? (unsigned long long) st.depth
                                   : k == 1 ? (unsigned long long) st.adds
                                            : (unsigned long long) st.retries;
            dbuf_printf(out, "%s{name=\"%s\"} %llu\n", wq[k][0],
                        m->ctls[i]->ops->name, v);
        }
    }
    static const char *const inf[][2] = {
        {"lists", "Complete lists (relists included)."},
        {"relists", "Lists forced by 410 Gone."},
        {"watches", "Watch requests started."},
        {"events", "Watch events applied."},
        {"errors", "Failed lists and watches."},
    };
    for (size_t k = 0; k < 5; k++) {
        dbuf_printf(out,
                    "# HELP dpf_informer_%s_total %s\n"
                    "# TYPE dpf_informer_%s_total counter\n",
                    inf[k][0], inf[k][1], inf[k][0]);
        for (size_t i = 0; i < m->n_infs; i++) {
            struct informer_stats st;
            informer_stats(m->infs[i].inf, &st);
            uint64_t v = k == 0   ? st.lists
                         : k == 1 ? st.relists
                         : k == 2 ? st.watches
                         : k == 3 ? st.events
                                  : st.errors;
            const struct kube_gvr *g = informer_gvr(m->infs[i].inf);
            dbuf_printf(
                out, "dpf_informer_%s_total{resource=\"%s%s%s\"} %llu\n",
                inf[k][0], g->resource, g->group && *g->group ? "." : "",
                g->group ? g->group : "", (unsigned long long) v);
        }
    }
}

void
controller_manager_stop_workers(struct controller_manager *m)
{
    pthread_mutex_lock(&m->workers_mu);
    m->workers_started = true; /* never (re)start them after this */
    for (size_t i = 0; i < m->n_ctls; i++) {
        workqueue_shut_down_drain(m->ctls[i]->q);
    }
    for (size_t i = 0; i < m->n_ctls; i++) {
        struct controller *c = m->ctls[i];
        for (int j = 0; j < c->n_threads; j++) {
            pthread_join(c->threads[j], NULL);
        }
        c->n_threads = 0;
    }
    pthread_mutex_unlock(&m->workers_mu);
}

void
controller_manager_stop(struct controller_manager *m)
{
    controller_manager_stop_workers(m);
    if (m->loop_running) {
        loop_post(m->loop, stop_informers, m);
        pthread_join(m->loop_thread, NULL);
        m->loop_running = false;
    }
}

void
controller_manager_destroy(struct controller_manager *m)
{
    if (!m) {
        return;
    }
    controller_manager_stop(m);
    for (size_t i = 0; i < m->n_infs; i++) {
        informer_destroy(m->infs[i].inf);
        free(m->infs[i].id);
    }
    free(m->infs);
    for (size_t i = 0; i < m->n_ctls; i++) {
        struct controller *c = m->ctls[i];
        workqueue_destroy(c->q);
        free(c->watches);
        free(c->threads);
        free(c);
    }
    free(m->ctls);
    kube_rest_destroy(m->rest);
    loop_destroy(m->loop);
    pthread_mutex_destroy(&m->workers_mu);
    free(m);
}
