/* runner: see controllers.h. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "controllers/controllers.h"
#include "lib/base/log.h"
#include "lib/base/thread.h"
#include "lib/kube/controller.h"
#include "lib/kube/kubeconfig.h"
#include "lib/kube/leader.h"

LOG_MODULE(ctrl);

#define SYNC_POLL_MS 500

struct ctrl_runner {
    struct ctrl_runner_config cfg; /* strings below */
    char *identity, *lease_ns, *lease_name;
    struct controller_manager *m;
    struct leader_elector *le;
    struct bfb_ctrl *bfb;
    struct witness_ctrl *witness;
    pthread_t thread;
    bool thread_running;
    atomic_bool stop;
    atomic_bool ready;
    atomic_bool leading;
};

int
ctrl_parse_list(const char *list, unsigned *mask, struct dpf_error *err)
{
    *mask = 0;
    char *copy = xstrdup(list ? list : "");
    char *save = NULL;
    int rc = 0;
    for (char *t = strtok_r(copy, ",", &save); t;
         t = strtok_r(NULL, ",", &save)) {
        if (!strcmp(t, "all")) {
            *mask |= CTRL_ALL;
        } else if (!strcmp(t, "none")) {
            /* nothing */
        } else if (!strcmp(t, "bfb")) {
            *mask |= CTRL_BFB;
        } else {
            dpf_error_set(err, 400, "BadRequest",
                          "unknown controller \"%s\" (known: bfb; or all, "
                          "none)",
                          t);
            rc = -EINVAL;
            break;
        }
    }
    free(copy);
    return rc;
}

static void
on_started(void *arg)
{
    struct ctrl_runner *r = arg;
    atomic_store(&r->leading, true);
    controller_manager_start_workers(r->m);
}

static void
on_stopped(void *arg)
{
    struct ctrl_runner *r = arg;
    atomic_store(&r->leading, false);
    /* Stop writing before anything else: a standby may hold the Lease
     * once its lease duration has passed. */
    controller_manager_stop_workers(r->m);
    if (r->cfg.on_lost) {
        r->cfg.on_lost(r->cfg.arg);
    }
}

static void *
runner_main(void *arg)
{
    struct ctrl_runner *r = arg;
    struct dpf_error err = {0};
    int64_t since = time_mono_ms();
    bool warned = false;
    while (!atomic_load(&r->stop)) {
        int rc = controller_manager_start_informers(r->m, SYNC_POLL_MS, &err);
        if (rc == 0) {
            break;
        }
        if (!warned && time_mono_ms() - since > 30000) {
            log_warn("caches not synced yet; is the API server reachable?",
                     "error=\"%s\"", err.message);
            warned = true;
        }
    }
    if (atomic_load(&r->stop)) {
        return NULL;
    }
    atomic_store(&r->ready, true);
    log_info("caches synced", "leader_elect=%s",
             r->cfg.leader_elect ? "true" : "false");
    if (!r->cfg.leader_elect) {
        on_started(r);
        return NULL;
    }
    struct leader_config lc = {
        .namespace = r->lease_ns,
        .name = r->lease_name,
        .identity = r->identity,
        .lease_ms = r->cfg.lease_ms,
        .renew_deadline_ms = r->cfg.renew_deadline_ms,
        .retry_ms = r->cfg.retry_ms,
        .release_on_stop = true,
        .on_started = on_started,
        .on_stopped = on_stopped,
        .arg = r,
    };
    r->le = leader_elector_create(controller_manager_rest(r->m), &lc, &err);
    if (!r->le || leader_elector_start(r->le) < 0) {
        log_error("cannot start leader election", "error=\"%s\"", err.message);
        if (r->cfg.on_lost) {
            r->cfg.on_lost(r->cfg.arg);
        }
    }
    return NULL;
}

struct ctrl_runner *
ctrl_runner_start(const struct ctrl_runner_config *cfg, struct dpf_error *err)
{
    if ((cfg->controllers & CTRL_BFB) && (!cfg->bfb_dir || !*cfg->bfb_dir)) {
        dpf_error_set(err, 400, "BadRequest",
                      "the bfb controller needs a BFB directory (--bfb-dir)");
        return NULL;
    }
    if ((cfg->controllers & CTRL_WITNESS) && !cfg->witness) {
        dpf_error_set(err, 400, "BadRequest",
                      "the witness controller needs its ConfigMap");
        return NULL;
    }
    struct kubeconfig_options ko = {.path = cfg->kubeconfig,
                                    .context = cfg->context};
    struct kubeconfig *kc = NULL;
    if (kubeconfig_load(&ko, &kc, err) < 0) {
        return NULL;
    }
    struct controller_manager *m = controller_manager_create(kc, err);
    kubeconfig_free(kc);
    if (!m) {
        return NULL;
    }
    struct ctrl_runner *r = xcalloc(1, sizeof *r);
    r->cfg = *cfg;
    r->m = m;
    if (cfg->identity && *cfg->identity) {
        r->identity = xstrdup(cfg->identity);
    } else {
        char host[256] = "localhost";
        gethostname(host, sizeof host - 1);
        r->identity = xasprintf("%s_%ld", host, (long) getpid());
    }
    r->lease_ns = xstrdup(cfg->lease_namespace && *cfg->lease_namespace
                              ? cfg->lease_namespace
                              : "dpf-operator-system");
    r->lease_name =
        xstrdup(cfg->lease_name && *cfg->lease_name ? cfg->lease_name
                                                    : "dpf-controller-manager");
    r->cfg.identity = r->identity;
    r->cfg.lease_namespace = r->lease_ns;
    r->cfg.lease_name = r->lease_name;
    const char *component = cfg->component ? cfg->component : "dpf";
    if (cfg->controllers & CTRL_BFB) {
        r->bfb = bfb_ctrl_add(m, cfg->bfb_dir, component, err);
        if (!r->bfb) {
            ctrl_runner_stop(r);
            return NULL;
        }
    }
    if (cfg->controllers & CTRL_WITNESS) {
        r->witness = witness_ctrl_add(m, cfg->witness, r->identity,
                                      cfg->witness_period_ms, err);
        if (!r->witness) {
            ctrl_runner_stop(r);
            return NULL;
        }
    }
    r->cfg.bfb_dir = NULL; /* not kept: bfb copied what it needs */
    r->cfg.witness = NULL;
    r->cfg.kubeconfig = NULL;
    r->cfg.context = NULL;
    r->cfg.component = NULL;
    if (thread_start(&r->thread, NULL, "controllers", runner_main, r) != 0) {
        dpf_error_set(err, 500, "InternalError",
                      "cannot start the controller runner thread");
        ctrl_runner_stop(r);
        return NULL;
    }
    r->thread_running = true;
    log_info("controllers starting", "identity=%s leader_elect=%s", r->identity,
             cfg->leader_elect ? "true" : "false");
    return r;
}

bool
ctrl_runner_ready(struct ctrl_runner *r)
{
    return atomic_load(&r->ready);
}

bool
ctrl_runner_leading(struct ctrl_runner *r)
{
    return atomic_load(&r->leading);
}

void
ctrl_runner_metrics(struct ctrl_runner *r, struct dbuf *out)
{
    controller_manager_metrics(r->m, out);
    if (r->cfg.leader_elect) {
        dbuf_printf(out,
                    "# HELP leader_election_master_status 1 while this "
                    "candidate holds the Lease.\n"
                    "# TYPE leader_election_master_status gauge\n"
                    "leader_election_master_status{name=\"%s\"} %d\n",
                    r->lease_name, atomic_load(&r->leading) ? 1 : 0);
    }
    if (r->bfb) {
        bfb_ctrl_metrics(r->bfb, out);
    }
}

void
ctrl_runner_stop(struct ctrl_runner *r)
{
    if (!r) {
        return;
    }
    atomic_store(&r->stop, true);
    if (r->thread_running) {
        pthread_join(r->thread, NULL);
    }
    /* Hand-over order: workers finish their reconcile, downloads stop,
     * the Lease is released (the loop still runs for that), then the
     * informers and the loop stop. */
    controller_manager_stop_workers(r->m);
    bfb_ctrl_stop(r->bfb);
    leader_elector_destroy(r->le);
    controller_manager_destroy(r->m);
    bfb_ctrl_destroy(r->bfb);
    witness_ctrl_destroy(r->witness);
    log_info("controllers stopped", "identity=%s", r->identity);
    free(r->identity);
    free(r->lease_ns);
    free(r->lease_name);
    free(r);
}
