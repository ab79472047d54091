/* runner: see controllers.h. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "controllers/allocator.h"
#include "controllers/controllers.h"
#include "controllers/dpuset-util.h"
#include "lib/base/log.h"
#include "lib/base/thread.h"
#include "lib/kube/controller.h"
#include "lib/kube/kubeconfig.h"
#include "lib/kube/leader.h"

LOG_MODULE(ctrl);

#define SYNC_POLL_MS 500

/* One term of office: a controller manager with its controllers and, with
 * leader election, the elector. A term ends when the runner stops or
 * (leader election) when the Lease is lost; then everything in it is torn
 * down and, with recampaign, the runner builds the next term from the
 * saved configuration: informers start from a fresh list, so nothing the
 * lost term cached or queued survives into the next. */
struct term {
    struct controller_manager *m;
    struct leader_elector *le;
    struct bfb_ctrl *bfb;
    struct dpuset_ctrl *dpuset;
    struct dpu_ctrl *dpu;
    struct witness_ctrl *witness;
    struct allocator *alloc; /* shared by the DPUCluster and DPU controllers */
    struct dpuc_ctrl *dpuc;
};

struct ctrl_runner {
    struct ctrl_runner_config cfg; /* strings below, owned */
    char *identity, *lease_ns, *lease_name;
    char *kubeconfig, *context, *unix_socket, *bfb_dir, *witness, *component;
    char *dpuc_dir, *dpuc_address, *server_bin;
    struct worker w;  /* runner thread; its lock guards lost and cur */
    bool lost;        /* the current term's leadership ended */
    struct term *cur; /* metrics read it under w's lock */
    atomic_bool ready;
    atomic_bool leading;
    atomic_uint terms; /* terms started (1 + re-campaigns) */
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
        } else if (!strcmp(t, "dpucluster")) {
            *mask |= CTRL_DPUCLUSTER;
        } else if (!strcmp(t, "dpuset")) {
            *mask |= CTRL_DPUSET;
        } else if (!strcmp(t, "dpu")) {
            *mask |= CTRL_DPU;
        } else {
            dpf_error_set(err, 400, "BadRequest",
                          "unknown controller \"%s\" (known: bfb, "
                          "dpucluster, dpuset, dpu; or all, none)",
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
    worker_lock(&r->w);
    struct term *t = r->cur;
    worker_unlock(&r->w);
    if (t) {
        controller_manager_start_workers(t->m);
    }
}

static void
on_stopped(void *arg)
{
    struct ctrl_runner *r = arg;
    atomic_store(&r->leading, false);
    /* Stop writing before anything else: a standby may hold the Lease
     * once its lease duration has passed. */
    worker_lock(&r->w);
    struct term *t = r->cur;
    worker_unlock(&r->w);
    if (t) {
        controller_manager_stop_workers(t->m);
    }
    worker_lock(&r->w);
    r->lost = true;
    worker_wake(&r->w);
    worker_unlock(&r->w);
}

static struct term *
term_create(struct ctrl_runner *r, struct dpf_error *err)
{
    struct kubeconfig_options ko = {.path = r->kubeconfig,
                                    .context = r->context};
    struct kubeconfig *kc = NULL;
    if (kubeconfig_load(&ko, &kc, err) < 0) {
        return NULL;
    }
    if (r->unix_socket) {
        kubeconfig_use_unix_socket(kc, r->unix_socket);
    }
    struct term *t = xcalloc(1, sizeof *t);
    t->m = controller_manager_create(kc, err);
    if (!t->m) {
        kubeconfig_free(kc);
        free(t);
        return NULL;
    }
    const char *component = r->component ? r->component : "dpf";
    if (r->cfg.controllers & CTRL_BFB) {
        t->bfb = bfb_ctrl_add(t->m, r->bfb_dir, component, err);
        if (!t->bfb) {
            goto fail;
        }
    }
    /* One allocator per term, whichever controllers use it (the
     * DPUCluster controller keeps it told of the clusters, the DPU
     * controller assigns with it); it rebuilds itself from the API. */
    t->alloc = allocator_create(controller_manager_rest(t->m));
    if (r->cfg.controllers & CTRL_DPUCLUSTER) {
        struct dpuc_ctrl_config dc = {
            .dir = r->dpuc_dir,
            .address = r->dpuc_address,
            .server_binary = r->server_bin,
            .component = component,
        };
        t->dpuc = dpuc_ctrl_add(t->m, &dc, t->alloc, err);
        if (!t->dpuc) {
            goto fail;
        }
    }
    if (r->cfg.controllers & CTRL_DPUSET) {
        if (!(t->dpuset = dpuset_ctrl_add(t->m, component, err))) {
            goto fail;
        }
    }
    if (r->cfg.controllers & CTRL_DPU) {
        t->dpu = dpu_ctrl_add(t->m, kc, r->bfb_dir, r->cfg.max_installs,
                              t->alloc, component, err);
        if (!t->dpu) {
            goto fail;
        }
    }
    if (r->cfg.controllers & (CTRL_DPUSET | CTRL_DPU)) {
        /* the host-Node cache the two share keeps only what they read */
        static const struct kube_gvr nodes = {"", "v1", "nodes", false};
        informer_set_transform(
            controller_manager_informer(t->m, &nodes, NULL, NULL, 0),
            dpuset_node_slim);
    }
    if (r->cfg.controllers & CTRL_WITNESS) {
        t->witness = witness_ctrl_add(t->m, r->witness, r->identity,
                                      r->cfg.witness_period_ms, err);
        if (!t->witness) {
            goto fail;
        }
    }
    kubeconfig_free(kc);
    return t;
fail:
    kubeconfig_free(kc);
    dpuc_ctrl_stop(t->dpuc);
    controller_manager_destroy(t->m);
    bfb_ctrl_destroy(t->bfb);
    dpuset_ctrl_destroy(t->dpuset);
    dpu_ctrl_destroy(t->dpu);
    dpuc_ctrl_destroy(t->dpuc);
    allocator_destroy(t->alloc);
    free(t);
    return NULL;
}

/* Hand-over order: workers finish their reconcile, downloads stop, the
 * Lease is released (the loop still runs for that), then the informers
 * and the loop stop. */
static void
term_destroy(struct term *t)
{
    if (!t) {
        return;
    }
    controller_manager_stop_workers(t->m);
    bfb_ctrl_stop(t->bfb);
    dpu_ctrl_stop(t->dpu);
    dpuc_ctrl_stop(t->dpuc); /* its children stop with the term */
    leader_elector_destroy(t->le);
    controller_manager_destroy(t->m);
    bfb_ctrl_destroy(t->bfb);
    dpuset_ctrl_destroy(t->dpuset);
    dpu_ctrl_destroy(t->dpu);
    dpuc_ctrl_destroy(t->dpuc);
    allocator_destroy(t->alloc);
    witness_ctrl_destroy(t->witness);
    free(t);
}

/* Wait for the caches; false when the runner is stopping. */
static bool
term_sync(struct ctrl_runner *r, struct term *t)
{
    struct dpf_error err = {0};
    int64_t since = time_mono_ms();
    bool warned = false;
    for (;;) {
        worker_lock(&r->w);
        bool stop = worker_stopping(&r->w);
        worker_unlock(&r->w);
        if (stop) {
            return false;
        }
        if (controller_manager_start_informers(t->m, SYNC_POLL_MS, &err) == 0) {
            return true;
        }
        if (!warned && time_mono_ms() - since > 30000) {
            log_warn("caches not synced yet; is the API server reachable?",
                     "error=\"%s\"", err.message);
            warned = true;
        }
    }
}

static void *
runner_main(void *arg)
{
    struct ctrl_runner *r = arg;
    struct term *t = NULL;
    for (;;) {
        worker_lock(&r->w);
        t = r->cur;
        worker_unlock(&r->w);
        if (!term_sync(r, t)) {
            break;
        }
        atomic_store(&r->ready, true);
        log_info("caches synced", "leader_elect=%s term=%u",
                 r->cfg.leader_elect ? "true" : "false",
                 atomic_load(&r->terms));
        if (!r->cfg.leader_elect) {
            on_started(r);
            worker_lock(&r->w);
            while (worker_wait(&r->w, -1)) {
            }
            worker_unlock(&r->w);
            break;
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
        struct dpf_error err = {0};
        t->le = leader_elector_create(controller_manager_rest(t->m), &lc, &err);
        if (!t->le || leader_elector_start(t->le) < 0) {
            log_error("cannot start leader election", "error=\"%s\"",
                      err.message);
            worker_lock(&r->w);
            r->lost = true;
            worker_unlock(&r->w);
        }
        worker_lock(&r->w);
        while (!r->lost && worker_wait(&r->w, -1)) {
        }
        bool lost = r->lost && !worker_stopping(&r->w);
        worker_unlock(&r->w);
        if (!lost) {
            break; /* stopping: ctrl_runner_stop tears the term down */
        }
        /* The term is over: tear it down off the lock (metrics see no
         * term meanwhile), then tell the program or campaign again. */
        atomic_store(&r->ready, false);
        worker_lock(&r->w);
        r->cur = NULL;
        r->lost = false;
        worker_unlock(&r->w);
        term_destroy(t);
        t = NULL;
        if (!r->cfg.recampaign) {
            if (r->cfg.on_lost) {
                r->cfg.on_lost(r->cfg.arg);
            }
            break;
        }
        log_warn("leadership lost; campaigning again with fresh caches",
                 "lease=%s/%s identity=%s", r->lease_ns, r->lease_name,
                 r->identity);
        /* Build the next term; a failure (the kubeconfig went away) is
         * retried at the lease's retry period until a stop. */
        for (;;) {
            struct dpf_error e2 = {0};
            struct term *next = term_create(r, &e2);
            worker_lock(&r->w);
            if (next) {
                r->cur = next;
                atomic_fetch_add(&r->terms, 1);
            }
            bool go = next || worker_wait(&r->w, 2000);
            bool stop = worker_stopping(&r->w);
            worker_unlock(&r->w);
            if (next && stop) {
                break; /* ctrl_runner_stop destroys r->cur */
            }
            if (next) {
                break;
            }
            log_error("cannot rebuild the controllers; retrying",
                      "error=\"%s\"", e2.message);
            if (!go) {
                break;
            }
        }
        worker_lock(&r->w);
        bool have = r->cur != NULL;
        worker_unlock(&r->w);
        if (!have) {
            break;
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
    if ((cfg->controllers & CTRL_DPUCLUSTER) &&
        (!cfg->dpucluster_dir || !*cfg->dpucluster_dir)) {
        dpf_error_set(err, 400, "BadRequest",
                      "the dpucluster controller needs a directory for the "
                      "DPU clusters' data (--dpu-cluster-dir)");
        return NULL;
    }
    if ((cfg->controllers & CTRL_WITNESS) && !cfg->witness) {
        dpf_error_set(err, 400, "BadRequest",
                      "the witness controller needs its ConfigMap");
        return NULL;
    }
    struct ctrl_runner *r = xcalloc(1, sizeof *r);
    r->cfg = *cfg;
    worker_init(&r->w);
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
    r->kubeconfig = cfg->kubeconfig ? xstrdup(cfg->kubeconfig) : NULL;
    r->context = cfg->context ? xstrdup(cfg->context) : NULL;
    r->unix_socket = cfg->unix_socket ? xstrdup(cfg->unix_socket) : NULL;
    r->bfb_dir = cfg->bfb_dir ? xstrdup(cfg->bfb_dir) : NULL;
    r->witness = cfg->witness ? xstrdup(cfg->witness) : NULL;
    r->component = cfg->component ? xstrdup(cfg->component) : NULL;
    r->dpuc_dir = cfg->dpucluster_dir ? xstrdup(cfg->dpucluster_dir) : NULL;
    r->dpuc_address = cfg->dpucluster_address && *cfg->dpucluster_address
                          ? xstrdup(cfg->dpucluster_address)
                          : ctrl_primary_address();
    r->server_bin =
        cfg->dpf_server_binary ? xstrdup(cfg->dpf_server_binary) : NULL;
    r->cfg.identity = r->identity;
    r->cfg.lease_namespace = r->lease_ns;
    r->cfg.lease_name = r->lease_name;
    r->cfg.kubeconfig = r->kubeconfig;
    r->cfg.context = r->context;
    r->cfg.unix_socket = r->unix_socket;
    r->cfg.bfb_dir = r->bfb_dir;
    r->cfg.witness = r->witness;
    r->cfg.component = r->component;
    r->cfg.dpucluster_dir = r->dpuc_dir;
    r->cfg.dpucluster_address = r->dpuc_address;
    r->cfg.dpf_server_binary = r->server_bin;
    r->cur = term_create(r, err);
    if (!r->cur) {
        ctrl_runner_stop(r);
        return NULL;
    }
    atomic_store(&r->terms, 1);
    if (worker_start(&r->w, "controllers", runner_main, r) != 0) {
        dpf_error_set(err, 500, "InternalError",
                      "cannot start the controller runner thread");
        ctrl_runner_stop(r);
        return NULL;
    }
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

unsigned
ctrl_runner_terms(struct ctrl_runner *r)
{
    return atomic_load(&r->terms);
}

void
ctrl_runner_metrics(struct ctrl_runner *r, struct dbuf *out)
{
    worker_lock(&r->w);
    struct term *t = r->cur;
    if (t) {
        controller_manager_metrics(t->m, out);
    }
    if (r->cfg.leader_elect) {
        dbuf_printf(out,
                    "# HELP leader_election_master_status 1 while this "
                    "candidate holds the Lease.\n"
                    "# TYPE leader_election_master_status gauge\n"
                    "leader_election_master_status{name=\"%s\"} %d\n",
                    r->lease_name, atomic_load(&r->leading) ? 1 : 0);
        dbuf_printf(out,
                    "# HELP dpf_controllers_terms_total Terms of office "
                    "started (1 + campaigns after a lost Lease).\n"
                    "# TYPE dpf_controllers_terms_total counter\n"
                    "dpf_controllers_terms_total %u\n",
                    atomic_load(&r->terms));
    }
    if (t && t->bfb) {
        bfb_ctrl_metrics(t->bfb, out);
    }
    worker_unlock(&r->w);
}

void
ctrl_runner_stop(struct ctrl_runner *r)
{
    if (!r) {
        return;
    }
    worker_stop(&r->w);
    term_destroy(r->cur);
    r->cur = NULL;
    worker_destroy(&r->w);
    log_info("controllers stopped", "identity=%s", r->identity);
    free(r->identity);
    free(r->lease_ns);
    free(r->lease_name);
    free(r->kubeconfig);
    free(r->context);
    free(r->unix_socket);
    free(r->bfb_dir);
    free(r->witness);
    free(r->component);
    free(r->dpuc_dir);
    free(r->dpuc_address);
    free(r->server_bin);
    free(r);
}

char *
ctrl_primary_address(void)
{
    /* A UDP "connect" sends nothing; it only picks the route, and with it
     * the source address, to a documentation address (RFC 5737). */
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    char buf[INET_ADDRSTRLEN] = "127.0.0.1";
    if (fd >= 0) {
        struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9)};
        inet_pton(AF_INET, "192.0.2.1", &to.sin_addr);
        struct sockaddr_in me;
        socklen_t len = sizeof me;
        if (connect(fd, (struct sockaddr *) &to, sizeof to) == 0 &&
            getsockname(fd, (struct sockaddr *) &me, &len) == 0 &&
            me.sin_addr.s_addr != htonl(INADDR_ANY)) {
            inet_ntop(AF_INET, &me.sin_addr, buf, sizeof buf);
        }
        close(fd);
    }
    return xstrdup(buf);
}
