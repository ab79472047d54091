/* dpf-controller-manager: runs the project's controllers (controllers/)
 * against an API server named by a kubeconfig, with optional leader
 * election so that several copies can run as active + standbys. main and
 * flags only; the controllers and the runner live in controllers/. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "controllers/controllers.h"
#include "lib/base/daemon.h"
#include "lib/base/log.h"
#include "lib/base/loop.h"
#include "lib/codecs/duration.h"
#include "lib/net/http-lite.h"

LOG_MODULE(manager);

struct cm {
    struct ctrl_runner_config cfg;
    const char *controllers;
    const char *metrics_addr;
    const char *health_addr;
    struct daemon *d;
    struct ctrl_runner *runner;
    struct dts_http *metrics_http, *health_http;
    struct loop_timer *ready_timer;
};

static int
set_kubeconfig(void *arg, const char *v, struct dpf_error *err)
{
    ((struct cm *) arg)->cfg.kubeconfig = v;
    return 0;
}

static int
set_context(void *arg, const char *v, struct dpf_error *err)
{
    ((struct cm *) arg)->cfg.context = v;
    return 0;
}

static int
set_controllers(void *arg, const char *v, struct dpf_error *err)
{
    unsigned mask;
    if (ctrl_parse_list(v, &mask, err) < 0) {
        return -EINVAL;
    }
    ((struct cm *) arg)->controllers = v;
    return 0;
}

static int
set_bfb_dir(void *arg, const char *v, struct dpf_error *err)
{
    if (!*v) {
        dpf_error_set(err, 400, "BadRequest", "--bfb-dir must not be empty");
        return -EINVAL;
    }
    ((struct cm *) arg)->cfg.bfb_dir = v;
    return 0;
}

static int
set_dpuc_dir(void *arg, const char *v, struct dpf_error *err)
{
    if (!*v) {
        dpf_error_set(err, 400, "BadRequest",
                      "--dpu-cluster-dir must not be empty");
        return -EINVAL;
    }
    ((struct cm *) arg)->cfg.dpucluster_dir = v;
    return 0;
}

static int
set_dpuc_address(void *arg, const char *v, struct dpf_error *err)
{
    ((struct cm *) arg)->cfg.dpucluster_address = v;
    return 0;
}

static int
set_server_binary(void *arg, const char *v, struct dpf_error *err)
{
    ((struct cm *) arg)->cfg.dpf_server_binary = v;
    return 0;
}

static int
set_leader_elect(void *arg, const char *v, struct dpf_error *err)
{
    ((struct cm *) arg)->cfg.leader_elect = true;
    return 0;
}

static int
set_lease_ns(void *arg, const char *v, struct dpf_error *err)
{
    ((struct cm *) arg)->cfg.lease_namespace = v;
    return 0;
}

static int
set_lease_name(void *arg, const char *v, struct dpf_error *err)
{
    ((struct cm *) arg)->cfg.lease_name = v;
    return 0;
}

static int
set_identity(void *arg, const char *v, struct dpf_error *err)
{
    ((struct cm *) arg)->cfg.identity = v;
    return 0;
}

/* A duration as Go writes it ("15s", "500ms", "1m30s") or seconds. */
static int
parse_duration(const char *v, int64_t *ms, struct dpf_error *err)
{
    if (duration_parse(v, ms) < 0 || *ms <= 0) {
        dpf_error_set(err, 400, "BadRequest",
                      "\"%s\" is not a duration such as 15s, 500ms or 2m", v);
        return -EINVAL;
    }
    return 0;
}

static int
set_lease_duration(void *arg, const char *v, struct dpf_error *err)
{
    return parse_duration(v, &((struct cm *) arg)->cfg.lease_ms, err);
}

static int
set_renew_deadline(void *arg, const char *v, struct dpf_error *err)
{
    return parse_duration(v, &((struct cm *) arg)->cfg.renew_deadline_ms, err);
}

static int
set_retry_period(void *arg, const char *v, struct dpf_error *err)
{
    return parse_duration(v, &((struct cm *) arg)->cfg.retry_ms, err);
}

static int
set_metrics(void *arg, const char *v, struct dpf_error *err)
{
    ((struct cm *) arg)->metrics_addr = v;
    return 0;
}

static int
set_health(void *arg, const char *v, struct dpf_error *err)
{
    ((struct cm *) arg)->health_addr = v;
    return 0;
}

static int
set_witness(void *arg, const char *v, struct dpf_error *err)
{
    if (!strchr(v, '/')) {
        dpf_error_set(err, 400, "BadRequest",
                      "--test-witness takes NAMESPACE/NAME, not \"%s\"", v);
        return -EINVAL;
    }
    ((struct cm *) arg)->cfg.witness = v;
    return 0;
}

/* HOST:PORT, [V6]:PORT or :PORT into host (malloc'd, NULL = all
 * addresses) and port; "0" = disabled (returns 1). */
static int
split_hostport(const char *v, char **host, uint16_t *port,
               struct dpf_error *err)
{
    *host = NULL;
    if (!strcmp(v, "0")) {
        return 1;
    }
    const char *colon = strrchr(v, ':');
    char *end = NULL;
    long p = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || !end || *end || colon[1] == '\0' || p < 0 || p > 65535) {
        dpf_error_set(err, 400, "BadRequest",
                      "\"%s\" is not HOST:PORT, :PORT or 0 (disabled)", v);
        return -EINVAL;
    }
    *port = (uint16_t) p;
    if (colon > v) {
        const char *h = v;
        size_t n = (size_t) (colon - v);
        if (h[0] == '[' && h[n - 1] == ']') {
            h++;
            n -= 2;
        }
        *host = xstrndup(h, n);
    }
    return 0;
}

static void
http_handler(void *arg, const struct http_lite_request *req,
             struct http_lite_response *resp)
{
    struct cm *m = arg;
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        resp->status = 405;
        resp->allow = "GET, HEAD";
        dbuf_puts(&resp->body, "method not allowed\n");
        return;
    }
    if (!strcmp(req->path, "/metrics")) {
        resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
        ctrl_runner_metrics(m->runner, &resp->body);
        return;
    }
    int st = daemon_health(m->d, req->path, &resp->body);
    if (st) {
        resp->status = st;
        return;
    }
    resp->status = 404;
    dbuf_puts(&resp->body, "not found\n");
}

static struct dts_http *
listen_on(struct cm *m, const char *what, const char *addr,
          struct dpf_error *err)
{
    char *host = NULL;
    uint16_t port = 0;
    int rc = split_hostport(addr, &host, &port, err);
    if (rc != 0) {
        return NULL;
    }
    struct dts_http *h = http_lite_create(host, port, http_handler, m, err);
    if (h) {
        log_info("serving", "endpoint=%s address=%s port=%u", what,
                 host ? host : "*", http_lite_port(h));
    }
    free(host);
    return h;
}

static void
ready_tick(void *arg, struct loop_timer *t)
{
    struct cm *m = arg;
    daemon_set_ready(m->d, "caches", ctrl_runner_ready(m->runner),
                     "informer caches not synced");
}

static void
on_lost(void *arg)
{
    /* The workers are stopped already; exit so that a supervisor restarts
     * us as a fresh candidate (what controller-runtime managers do). */
    log_error("leadership lost; exiting", "exit=1");
    _exit(1);
}

static int
cm_start(void *arg, struct daemon *d, struct dpf_error *err)
{
    struct cm *m = arg;
    m->d = d;
    if (ctrl_parse_list(m->controllers, &m->cfg.controllers, err) < 0) {
        return -EINVAL;
    }
    if (m->cfg.witness) {
        m->cfg.controllers |= CTRL_WITNESS;
    }
    if (!m->cfg.controllers) {
        dpf_error_set(err, 400, "BadRequest",
                      "no controller selected (--controllers)");
        return -EINVAL;
    }
    m->cfg.on_lost = on_lost;
    m->cfg.arg = m;
    m->cfg.component = "dpf-controller-manager";
    daemon_set_ready(d, "caches", false, "informer caches not synced");
    m->runner = ctrl_runner_start(&m->cfg, err);
    if (!m->runner) {
        return -EINVAL;
    }
    bool same = !strcmp(m->metrics_addr, m->health_addr);
    if (strcmp(m->metrics_addr, "0") != 0) {
        m->metrics_http = listen_on(m, same ? "metrics,health" : "metrics",
                                    m->metrics_addr, err);
        if (!m->metrics_http) {
            return -EINVAL;
        }
    }
    if (!same && strcmp(m->health_addr, "0") != 0) {
        m->health_http = listen_on(m, "health", m->health_addr, err);
        if (!m->health_http) {
            return -EINVAL;
        }
    }
    m->ready_timer = loop_timer_add(daemon_loop(d), 200, 500, ready_tick, m);
    return 0;
}

static void
cm_stop(void *arg)
{
    struct cm *m = arg;
    /* Controllers first (clean hand-over of the Lease), then endpoints. */
    ctrl_runner_stop(m->runner);
    m->runner = NULL;
    http_lite_destroy(m->metrics_http);
    http_lite_destroy(m->health_http);
    m->metrics_http = m->health_http = NULL;
}

int
main(int argc, char **argv)
{
    static const struct daemon_flag flags[] = {
        {"kubeconfig", "PATH",
         "kubeconfig of the API server (default $KUBECONFIG,\n"
         "~/.kube/config)",
         set_kubeconfig},
        {"context", "NAME", "kubeconfig context (default current-context)",
         set_context},
        {"controllers", "LIST",
         "controllers to run: comma list of names, all (default)\nor none. "
         "Names: " CTRL_NAMES_HELP,
         set_controllers},
        {"bfb-dir", "DIR",
         "BFB content cache directory (default /var/lib/dpf/bfb)", set_bfb_dir},
        {"dpu-cluster-dir", "DIR",
         "data of the embedded DPU clusters' API servers, which\nthis "
         "process runs (default /var/lib/dpf/dpuclusters)",
         set_dpuc_dir},
        {"dpu-cluster-address", "ADDR",
         "address the DPUs reach embedded DPU clusters on\n(default: this "
         "host's primary address)",
         set_dpuc_address},
        {"dpf-server-binary", "PATH",
         "the dpf-server program embedded DPU clusters run\n(default: next "
         "to this program)",
         set_server_binary},
        {"leader-elect", NULL,
         "take part in leader election: run the controllers\nonly while "
         "holding the Lease (standby otherwise)",
         set_leader_elect},
        {"leader-elect-namespace", "NS",
         "namespace of the Lease (default dpf-operator-system)", set_lease_ns},
        {"leader-elect-id", "NAME",
         "name of the Lease (default dpf-controller-manager)", set_lease_name},
        {"leader-elect-lease-duration", "DUR",
         "how long a standby waits for a silent leader\n(default 15s)",
         set_lease_duration},
        {"leader-elect-renew-deadline", "DUR",
         "how long a leader keeps trying to renew before it\ngives up "
         "(default 10s)",
         set_renew_deadline},
        {"leader-elect-retry-period", "DUR",
         "time between tries to acquire or renew (default 2s)",
         set_retry_period},
        {"identity", "ID",
         "this candidate's name in the Lease (default\nHOSTNAME_PID)",
         set_identity},
        {"metrics-bind-address", "ADDR",
         "Prometheus /metrics on HOST:PORT, :PORT, or 0 = off\n(default "
         "127.0.0.1:8080)",
         set_metrics},
        {"health-probe-bind-address", "ADDR",
         "/healthz and /readyz on HOST:PORT, :PORT, or 0 = off\n(default "
         ":8081)",
         set_health},
        {"test-witness", "NS/NAME",
         "tests only: run the witness controller, which appends\n"
         "\"<identity> <unix ms>\" to the ConfigMap's data.log\nevery half "
         "second while this manager leads",
         set_witness},
        {NULL, NULL, NULL, NULL},
    };
    struct cm m = {
        .cfg = {.bfb_dir = "/var/lib/dpf/bfb",
                .dpucluster_dir = "/var/lib/dpf/dpuclusters"},
        .controllers = "all",
        .metrics_addr = "127.0.0.1:8080",
        .health_addr = ":8081",
    };
    const struct daemon_spec spec = {
        .name = "dpf-controller-manager",
        .summary =
            "Runs the DPF controllers against an API server (dpf-server or "
            "any\nKubernetes API server) named by a kubeconfig. dpf-server "
            "runs the\nsame controllers in-process unless started with "
            "--controllers=none.",
        .epilog = "Endpoints: /metrics (Prometheus text), /healthz, /readyz.",
        .flags = flags,
        .arg = &m,
        .start = cm_start,
        .stop = cm_stop,
    };
    /* One malloc arena: the threads allocate little and rarely together
     * (see dts-main.c for the measurements behind this). */
    mallopt(M_ARENA_MAX, 1);
    return daemon_main(&spec, argc, argv);
}
