/* dts-daemon: see dts-daemon.h. */
#include "dts/dts-daemon.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dpf/dts-exporter.h"
#include "lib/base/daemon.h"
#include "dts/dts-export.h"
#include "lib/net/http-lite.h"
#include "dts/dts-ipc-server.h"
#include "dts/dts-labels.h"
#include "dts/dts-provider.h"
#include "dts/dts-view.h"
#include "lib/base/log.h"
#include "lib/base/util.h"

LOG_MODULE(dts);

/* Delay between a file event and the reload, so an editor's burst of
 * writes/renames is applied once. */
#define DTS_RELOAD_DEBOUNCE_MS 100

/* One running (or unavailable) provider. */
struct dts_pinst {
    char *name;                         /* canonical name */
    const struct dts_provider_ops *ops; /* NULL: no implementation */
    void *state;                        /* ops state when up */
    bool up;                            /* init succeeded */
    char *fingerprint;                  /* settings it was started with */
    double last_duration;               /* seconds of the last collect */
};

struct dts_daemon {
    struct loop *loop;
    struct dts_runtime rt;
    char *config_dir;
    char *sysfs_root;
    char *ipc_dir_opt;
    struct dts_config *cfg;
    struct dts_filter *filter;
    struct dts_labels *labels;
    struct dts_model *model;
    size_t n_pinst;
    struct dts_pinst *pinst;
    struct loop_timer *collect_timer;
    struct loop_timer *reload_timer;
    int inotify_fd;
    struct loop_watch *inotify_watch;
    uint64_t loaded_stamp; /* config files' stamp taken before the load */
    struct dts_http *http;
    char *http_url;                /* URL the server was started for */
    struct loop_timer *http_retry; /* armed while the bind keeps failing */
    uint64_t http_bind_failures;   /* failed attempts for the current URL */
    bool prom_off_logged;          /* "endpoint off" said since last on */
    size_t last_render_len;        /* size hint for the next /metrics body */
    struct dts_export *export;
    struct dts_ipc_server *ipc;
    char *ipc_path;
    unsigned ipc_mode; /* mode and group the socket was set up with */
    long ipc_gid;
    uint64_t ipc_errors_seen;
    uint64_t collections;
    bool last_reload_ok;
    double last_reload_ts;
    int64_t start_ns;
};

/* ---- providers ------------------------------------------------------- */

/* Settings that, when changed, require restarting a provider. */
static char *
dts_provider_fingerprint(const struct dts_config *c, const char *name)
{
    struct dbuf b;
    dbuf_init(&b);
    dbuf_printf(&b, "root=%s", c->sysfs_root);
    if (!strcmp(name, "sysfs")) {
        dbuf_printf(&b, " comp=%u", c->sysfs_components);
        for (size_t i = 0; i < c->n_sysfs_devs; i++) {
            dbuf_printf(&b, " %s=%u", c->sysfs_devs[i].device,
                        c->sysfs_devs[i].mask);
        }
    }
    if (!strcmp(name, "prometheus_aggr")) {
        for (size_t i = 0; i < c->n_prom_aggr; i++) {
            dbuf_printf(&b, " ep=%s", c->prom_aggr[i]);
        }
        dbuf_printf(&b, " update=%ld", c->update_ms);
    } else if (!strcmp(name, "fluent_aggr")) {
        dbuf_printf(&b, " addr=%s port=%u", c->fluent_aggr_address,
                    c->fluent_aggr_port);
        if (c->fluent_aggr_shared_key) {
            /* a digest, never the key: restart when it changes */
            uint64_t h = 1469598103934665603ull;
            for (const char *k = c->fluent_aggr_shared_key; *k; k++) {
                h = (h ^ (unsigned char) *k) * 1099511628211ull;
            }
            dbuf_printf(&b, " key=%016llx host=%s", (unsigned long long) h,
                        c->fluent_aggr_hostname ? c->fluent_aggr_hostname : "");
        }
    }
    return dbuf_steal(&b, NULL);
}

static void
dts_pinst_stop(struct dts_daemon *d, struct dts_pinst *p)
{
    if (p->up && p->ops) {
        p->ops->destroy(p->state);
    }
    dts_model_put(d->model, p->name, NULL);
    free(p->name);
    free(p->fingerprint);
    memset(p, 0, sizeof *p);
}

static void
dts_pinst_start(struct dts_daemon *d, struct dts_pinst *p, const char *name)
{
    memset(p, 0, sizeof *p);
    p->name = xstrdup(name);
    p->ops = dts_provider_find(name);
    p->fingerprint = dts_provider_fingerprint(d->cfg, name);
    dts_model_error_declare(d->model, "provider", "provider", name);
    if (!p->ops) {
        log_warn("provider not available", "provider=%s reason=\"%s\"", name,
                 str_has_prefix(name, "grpc.")
                     ? "remote collection over gRPC is not implemented"
                     : "needs BlueField hardware; not in this build");
        return;
    }
    struct dpf_error err;
    dpf_error_clear(&err);
    struct dts_provider_ctx ctx = {.config = d->cfg, .model = d->model};
    int rc = p->ops->init(&ctx, &p->state, &err);
    if (rc < 0) {
        log_warn("provider not available", "provider=%s reason=\"%s\"", name,
                 err.message[0] ? err.message : strerror(-rc));
        return;
    }
    p->up = true;
    log_info("provider started", "provider=%s", name);
}

/* Bring the provider set in line with d->cfg. */
static void
dts_providers_apply(struct dts_daemon *d)
{
    /* Stop instances that are disabled or whose settings changed. */
    for (size_t i = 0; i < d->n_pinst;) {
        struct dts_pinst *p = &d->pinst[i];
        char *fp = dts_provider_fingerprint(d->cfg, p->name);
        bool keep = dts_config_has_provider(d->cfg, p->name) &&
                    !strcmp(fp, p->fingerprint);
        free(fp);
        if (keep) {
            i++;
            continue;
        }
        log_info("provider stopped", "provider=%s", p->name);
        dts_pinst_stop(d, p);
        d->pinst[i] = d->pinst[--d->n_pinst];
    }
    for (size_t j = 0; j < d->cfg->n_providers; j++) {
        const char *name = d->cfg->providers[j];
        bool have = false;
        for (size_t i = 0; i < d->n_pinst; i++) {
            have = have || !strcmp(d->pinst[i].name, name);
        }
        if (have) {
            continue;
        }
        d->pinst = xrealloc(d->pinst, (d->n_pinst + 1) * sizeof *d->pinst);
        dts_pinst_start(d, &d->pinst[d->n_pinst++], name);
    }
}

/* ---- collection ------------------------------------------------------ */

static void
dts_collect_self(struct dts_daemon *d, struct dts_sink *sink)
{
    for (size_t i = 0; i < d->n_pinst; i++) {
        const struct dts_pinst *p = &d->pinst[i];
        const char *labels[] = {"provider", p->name, NULL};
        dts_sink_add(sink, DTS_GAUGE, "dts_provider_up",
                     "1 if the provider is running, 0 if it is not "
                     "available here.",
                     labels, p->up ? 1 : 0);
        if (p->up) {
            dts_sink_add(sink, DTS_GAUGE,
                         "dts_provider_collect_duration_seconds",
                         "Time the provider's last collection took.", labels,
                         p->last_duration);
        }
    }
    dts_sink_add(sink, DTS_COUNTER, "dts_collections_total",
                 "Collection cycles run.", NULL, (double) d->collections);
    dts_sink_add(sink, DTS_GAUGE, "dts_update_period_seconds",
                 "Configured collection period (update).", NULL,
                 (double) d->cfg->update_ms / 1000.0);
    dts_sink_add(sink, DTS_GAUGE, "dts_config_last_reload_successful",
                 "1 if the last configuration (re)load was applied.", NULL,
                 d->last_reload_ok ? 1 : 0);
    dts_sink_add(sink, DTS_GAUGE,
                 "dts_config_last_reload_success_timestamp_seconds",
                 "Time the configuration in force was applied.", NULL,
                 d->last_reload_ts);
    dts_sink_add(sink, DTS_GAUGE, "dts_start_time_seconds",
                 "Time the daemon started, seconds since the epoch.", NULL,
                 (double) d->start_ns / 1e9);
    const char *bl[] = {"version", DPF_VERSION, NULL};
    dts_sink_add(sink, DTS_GAUGE, "dts_build_info",
                 "Version of the dts daemon (value is always 1).", bl, 1);
    /* IPC server counters. */
    if (d->ipc) {
        struct dts_ipc_server_stats st;
        dts_ipc_server_get_stats(d->ipc, &st);
        dts_model_error_sync(d->model, "ipc", st.errors, &d->ipc_errors_seen);
        dts_sink_add(sink, DTS_COUNTER, "dts_ipc_connections_total",
                     "Exporter-library connections accepted.", NULL,
                     (double) st.connections);
        dts_sink_add(sink, DTS_GAUGE, "dts_ipc_clients",
                     "Exporter-library clients connected now.", NULL,
                     (double) st.clients);
        const char *kinds[][2] = {
            {"kind", "event"}, {"kind", "counter"}, {"kind", "netflow"}};
        uint64_t vals[] = {st.events, st.counters, st.netflow};
        for (size_t k = 0; k < 3; k++) {
            const char *l[] = {kinds[k][0], kinds[k][1], NULL};
            dts_sink_add(sink, DTS_COUNTER, "dts_ipc_records_total",
                         "Records received from exporter-library apps.", l,
                         (double) vals[k]);
        }
    }
    dts_export_collect(d->export, sink);
}

/* Refresh the daemon's own series now (after each collection and each
 * reload attempt, so a scrape never shows a stale reload status). Self
 * metrics are not subject to counter selection. */
static void
dts_publish_self(struct dts_daemon *d)
{
    struct dts_sink self;
    dts_sink_init(&self, NULL, NULL);
    dts_collect_self(d, &self);
    dts_model_put(d->model, "dts", dts_sink_take(&self));
    dts_sink_fini(&self);
}

void
dts_daemon_collect(struct dts_daemon *d)
{
    d->collections++;
    for (size_t i = 0; i < d->n_pinst; i++) {
        struct dts_pinst *p = &d->pinst[i];
        if (!p->up) {
            continue;
        }
        struct dts_sink sink;
        dts_sink_init(&sink, d->filter, d->labels);
        int64_t t0 = time_mono_ns();
        int rc = p->ops->collect(p->state, &sink);
        p->last_duration = (double) (time_mono_ns() - t0) / 1e9;
        if (rc < 0) {
            dts_model_error_inc(d->model, "provider", "provider", p->name);
            log_warn_rl("provider collection failed",
                        "provider=%s error=\"%s\"", p->name, strerror(-rc));
        }
        dts_model_put(d->model, p->name, dts_sink_take(&sink));
        dts_sink_fini(&sink);
    }
    dts_publish_self(d);
    dts_export_cycle(d->export, d->model, time_wall_ns());
}

static void
dts_on_collect_timer(void *arg, struct loop_timer *t)
{
    dts_daemon_collect(arg);
}

/* ---- HTTP endpoint --------------------------------------------------- */

/* The collector's data paths (DOCA's endpoint): an optional format prefix
 * /json or /csv, then /metrics (everything), /cset/<name>, /fset/<name>
 * or /<name> (the .cset and the .fset of that name). */
static void
dts_daemon_http_data(struct dts_daemon *d, const char *path,
                     struct http_lite_response *resp)
{
    int fmt = DTS_FMT_PROM;
    if (str_has_prefix(path, "/json") && (!path[5] || path[5] == '/')) {
        fmt = DTS_FMT_JSON;
        path += 5;
    } else if (str_has_prefix(path, "/csv") && (!path[4] || path[4] == '/')) {
        fmt = DTS_FMT_CSV;
        path += 4;
    }
    const char *set = NULL;
    enum dts_set_kind kind = DTS_SET_ANY;
    if (!*path || !strcmp(path, "/") || !strcmp(path, "/metrics")) {
        set = NULL;
    } else if (str_has_prefix(path, "/cset/") && path[6]) {
        set = path + 6;
        kind = DTS_SET_CSET;
    } else if (str_has_prefix(path, "/fset/") && path[6]) {
        set = path + 6;
        kind = DTS_SET_FSET;
    } else {
        set = path + 1;
    }
    if (set && (strchr(set, '/') || !*set)) {
        resp->status = 404;
        dbuf_puts(&resp->body, "not found\n");
        return;
    }
    if (fmt == DTS_FMT_PROM && !set) {
        /* Size the buffer once: a page of 5,000 series is ~400 KB and
         * growing it by doubling would copy it ~13 times. */
        size_t hint = d->last_render_len + d->last_render_len / 8;
        if (hint && !resp->body.data) {
            resp->body.data = xmalloc(hint);
            resp->body.data[0] = '\0';
            resp->body.cap = hint;
        }
    }
    long n = dts_model_render_view(d->model, fmt, set, kind, &resp->body);
    if (n == -ENOENT) {
        resp->body.len = 0;
        resp->status = 404;
        dbuf_printf(&resp->body, "no %s named \"%s\" (see %s)\n",
                    kind == DTS_SET_CSET   ? "counter set (.cset)"
                    : kind == DTS_SET_FSET ? "field set (.fset)"
                                           : "counter set or field set",
                    set,
                    kind == DTS_SET_FSET ? "prometheus-fset-dir"
                                         : "prometheus-cset-dir");
        return;
    }
    if (fmt == DTS_FMT_PROM && !set) {
        d->last_render_len = resp->body.len;
    }
    resp->content_type = fmt == DTS_FMT_JSON  ? "application/json"
                         : fmt == DTS_FMT_CSV ? "text/csv; charset=utf-8"
                                              : "text/plain; version=0.0.4; "
                                                "charset=utf-8";
}

static void
dts_daemon_http_handler(void *arg, const struct http_lite_request *req,
                        struct http_lite_response *resp)
{
    struct dts_daemon *d = arg;
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        resp->status = 405;
        resp->allow = "GET, HEAD";
        dbuf_puts(&resp->body, "method not allowed\n");
        return;
    }
    int health =
        d->rt.daemon ? daemon_health(d->rt.daemon, req->path, &resp->body) : 0;
    if (health) {
        resp->status = health;
    } else if (!strcmp(req->path, "/healthz")) {
        dbuf_puts(&resp->body, "ok\n");
    } else if (!strcmp(req->path, "/")) {
        resp->content_type = "text/html";
        dbuf_puts(&resp->body,
                  "<html><head><title>DOCA Telemetry Service</title></head>"
                  "<body><h1>dts</h1><p><a href=\"/metrics\">Metrics</a> "
                  "<a href=\"/json\">JSON</a> <a href=\"/csv\">CSV</a></p>"
                  "</body></html>\n");
    } else {
        dts_daemon_http_data(d, req->path, resp);
    }
}
static void dts_daemon_http_start(struct dts_daemon *d);

static void
dts_on_http_retry(void *arg, struct loop_timer *t)
{
    (void) t;
    dts_daemon_http_start(arg);
}

/* Bind the endpoint for d->cfg->prometheus. A failure (port in use, the
 * address not there yet) is logged, counted in dts_prometheus_errors_total
 * and retried every DTS_HTTP_RETRY_MS; readiness says why meanwhile. */
#define DTS_HTTP_RETRY_MS 2000
static void
dts_daemon_http_start(struct dts_daemon *d)
{
    const char *url = d->cfg->prometheus;
    struct dpf_error err;
    dpf_error_clear(&err);
    d->http = http_lite_create(d->cfg->prom_address, d->cfg->prom_port,
                               dts_daemon_http_handler, d, &err);
    if (!d->http) {
        dts_model_error_inc(d->model, "prometheus", NULL, NULL);
        if (d->http_bind_failures++ == 0) {
            log_error("cannot start prometheus endpoint; retrying",
                      "url=%s retry_ms=%d error=\"%s\"", url, DTS_HTTP_RETRY_MS,
                      err.message);
        }
        if (d->rt.daemon) {
            daemon_set_ready(d->rt.daemon, "prometheus-endpoint", false,
                             err.message);
        }
        if (!d->http_retry) {
            d->http_retry =
                loop_timer_add(d->loop, DTS_HTTP_RETRY_MS, DTS_HTTP_RETRY_MS,
                               dts_on_http_retry, d);
        }
        return;
    }
    loop_timer_cancel(d->http_retry);
    d->http_retry = NULL;
    d->http_url = xstrdup(url);
    if (d->rt.daemon) {
        daemon_set_ready(d->rt.daemon, "prometheus-endpoint", true, NULL);
    }
    log_info("prometheus endpoint listening",
             "address=%s port=%u attempts=%llu", d->cfg->prom_address,
             http_lite_port(d->http),
             (unsigned long long) d->http_bind_failures + 1);
}

static void
dts_daemon_http_apply(struct dts_daemon *d)
{
    const char *url = d->cfg->prometheus;
    if (d->http && url && d->http_url && !strcmp(url, d->http_url)) {
        return;
    }
    loop_timer_cancel(d->http_retry);
    d->http_retry = NULL;
    d->http_bind_failures = 0;
    if (d->http) {
        http_lite_destroy(d->http);
        d->http = NULL;
        log_info("prometheus endpoint stopped", "url=%s", d->http_url);
        free(d->http_url);
        d->http_url = NULL;
    }
    if (!url) {
        if (d->rt.daemon) {
            daemon_set_ready(d->rt.daemon, "prometheus-endpoint", true, NULL);
        }
        /* Off is the default (as DOCA ships it): say once how to turn it
         * on, since nothing else tells the operator why :9100 is closed. */
        if (!d->prom_off_logged) {
            log_info("prometheus endpoint off",
                     "hint=\"set prometheus=http://0.0.0.0:9100 in "
                     "dts_config.ini\"");
            d->prom_off_logged = true;
        }
        return;
    }
    d->prom_off_logged = false;
    dts_daemon_http_start(d);
}

/* ---- IPC ------------------------------------------------------------- */

static void
dts_on_ipc_record(void *aux, const struct dts_ipc_record *r)
{
    struct dts_daemon *d = aux;
    dts_export_ipc_record(d->export, r);
}

static void
dts_ipc_apply(struct dts_daemon *d)
{
    char *path = d->cfg->ipc_dir ? xasprintf("%s/%s", d->cfg->ipc_dir,
                                             DTS_EXPORTER_SOCKET_NAME)
                                 : NULL;
    if (d->ipc && path && d->ipc_path && !strcmp(path, d->ipc_path) &&
        d->ipc_mode == d->cfg->ipc_mode && d->ipc_gid == d->cfg->ipc_gid) {
        free(path);
        return;
    }
    if (d->ipc) {
        dts_ipc_server_stop(d->ipc);
        d->ipc = NULL;
        d->ipc_errors_seen = 0;
    }
    free(d->ipc_path);
    d->ipc_path = NULL;
    if (!path) {
        return;
    }
    struct dts_ipc_server_config ic = {
        .path = path,
        .mode = d->cfg->ipc_mode,
        .gid = d->cfg->ipc_gid,
        .cb = dts_on_ipc_record,
        .aux = d,
    };
    struct dpf_error err;
    dpf_error_clear(&err);
    d->ipc = dts_ipc_server_start(&ic, &err);
    if (!d->ipc) {
        log_error("exporter IPC not available", "path=%s error=\"%s\"", path,
                  err.message);
        free(path);
        return;
    }
    d->ipc_path = path;
    d->ipc_mode = d->cfg->ipc_mode;
    d->ipc_gid = d->cfg->ipc_gid;
    log_info("exporter IPC listening", "path=%s mode=%04o gid=%ld", path,
             d->cfg->ipc_mode, d->cfg->ipc_gid);
}

/* ---- configuration --------------------------------------------------- */

static void dts_watch_apply(struct dts_daemon *d);

/* Where DPF writes each DPU's topology labels (DPUFlavor configFiles);
 * DOCA's DTS reads it without being told, so dts does too. */
#define DTS_DEFAULT_LEVEL_LABELS \
    "/opt/mellanox/doca/telemetry/config-dpu/level_labels.ini"

/* The level-labels file to load: the configured one (which must exist), or
 * DOCA's default path when something is there (most DPUs have none). */
static const char *
dts_level_labels_path(const struct dts_config *c)
{
    if (c->level_labels_file) {
        return c->level_labels_file;
    }
    struct stat st;
    if (lstat(DTS_DEFAULT_LEVEL_LABELS, &st) == 0) {
        return DTS_DEFAULT_LEVEL_LABELS;
    }
    return NULL;
}

/* Validate everything that can fail in a new config before touching the
 * running state: filter, level labels. */
static int
dts_prepare(struct dts_daemon *d, struct dts_config *c,
            struct dts_filter **filter, struct dts_labels **labels,
            struct dpf_error *err)
{
    *filter = dts_filter_create(c->include_names, c->exclude_names,
                                c->name_match, err);
    if (!*filter) {
        return -EINVAL;
    }
    *labels = NULL;
    const char *ll = dts_level_labels_path(c);
    if (ll) {
        *labels = dts_labels_load(ll, c->sysfs_root, err);
        if (!*labels) {
            dts_filter_free(*filter);
            *filter = NULL;
            return -EINVAL;
        }
    }
    return 0;
}

static void
dts_apply(struct dts_daemon *d, struct dts_config *c, struct dts_filter *filter,
          struct dts_labels *labels)
{
    struct dts_config *old = d->cfg;
    d->cfg = c;
    dts_filter_free(d->filter);
    d->filter = filter;
    dts_labels_free(d->labels);
    d->labels = labels;
    for (size_t i = 0; i < c->n_notes; i++) {
        log_info("config note", "file=%s note=\"%s\"", c->path, c->notes[i]);
    }
    for (size_t i = 0; i < c->n_warnings; i++) {
        log_warn("config key not available", "file=%s note=\"%s\"", c->path,
                 c->warnings[i]);
    }
    /* the endpoint's naming, sets and label lists (the model takes the
     * view; the HTTP thread reads it under the model lock) */
    dts_model_set_view(d->model, c->view);
    c->view = NULL;
    dts_providers_apply(d);
    dts_daemon_http_apply(d);
    dts_export_apply(d->export, c);
    dts_ipc_apply(d);
    if (!old || old->update_ms != c->update_ms) {
        if (d->collect_timer) {
            loop_timer_reset(d->collect_timer, 0, c->update_ms);
        } else {
            d->collect_timer = loop_timer_add(d->loop, 0, c->update_ms,
                                              dts_on_collect_timer, d);
        }
    }
    d->last_reload_ok = true;
    d->last_reload_ts = (double) time_wall_ns() / 1e9;
    dts_config_free(old);
    dts_watch_apply(d);
    log_info("configuration applied", "file=%s update_ms=%ld providers=%zu",
             c->path, c->update_ms, c->n_providers);
}

/* A fingerprint of the configuration's files (the config dir itself,
 * whose mtime moves on a rename into it, and both config file names),
 * taken before a load: when the watch is (re)created after the load, a
 * different stamp means the files changed in between, unseen by inotify,
 * and a reload is scheduled. */
static uint64_t
dts_config_stamp(const char *dir)
{
    static const char *const names[] = {"", "/" DTS_CONFIG_FILE,
                                        "/" DTS_CONFIG_YAML};
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        char path[PATH_MAX];
        struct stat st;
        uint64_t v[4] = {0, 0, 0, 0};
        if ((size_t) snprintf(path, sizeof path, "%s%s", dir, names[i]) <
                sizeof path &&
            stat(path, &st) == 0) {
            v[0] = (uint64_t) st.st_ino;
            v[1] = (uint64_t) st.st_mtim.tv_sec;
            v[2] = (uint64_t) st.st_mtim.tv_nsec;
            v[3] = (uint64_t) st.st_size;
        }
        for (size_t k = 0; k < 4; k++) {
            h = (h ^ v[k]) * 1099511628211ull;
        }
    }
    return h;
}

int
dts_daemon_reload(struct dts_daemon *d)
{
    struct dpf_error err;
    dpf_error_clear(&err);
    d->loaded_stamp = dts_config_stamp(d->config_dir);
    struct dts_config *c = dts_config_load(&d->rt, &err);
    struct dts_filter *filter = NULL;
    struct dts_labels *labels = NULL;
    if (!c || dts_prepare(d, c, &filter, &labels, &err) < 0) {
        dts_config_free(c);
        d->last_reload_ok = false;
        dts_publish_self(d);
        dts_model_error_inc(d->model, "config", NULL, NULL);
        log_error("configuration rejected; keeping the running one",
                  "error=\"%s\"", err.message);
        return -EINVAL;
    }
    dts_apply(d, c, filter, labels);
    dts_publish_self(d);
    return 0;
}

static void
dts_on_reload_timer(void *arg, struct loop_timer *t)
{
    struct dts_daemon *d = arg;
    loop_timer_cancel(t);
    d->reload_timer = NULL;
    dts_daemon_reload(d);
}

static void
dts_on_inotify(void *arg, int fd, uint32_t events)
{
    struct dts_daemon *d = arg;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool relevant = false;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0) {
            break;
        }
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *) p;
            /* Ignore editor backup and swap files. Dot files count: a
             * Kubernetes ConfigMap volume updates by renaming "..data". */
            if (ev->len == 0 || (!str_has_suffix(ev->name, "~") &&
                                 !str_has_suffix(ev->name, ".swp") &&
                                 !str_has_suffix(ev->name, ".swx"))) {
                relevant = true;
            }
            p += sizeof *ev + ev->len;
        }
    }
    if (!relevant) {
        return;
    }
    if (d->reload_timer) {
        loop_timer_reset(d->reload_timer, DTS_RELOAD_DEBOUNCE_MS, 0);
    } else {
        d->reload_timer = loop_timer_add(d->loop, DTS_RELOAD_DEBOUNCE_MS, 0,
                                         dts_on_reload_timer, d);
    }
}

/* Directory part of a path (new string). */
static char *
dts_dirname(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        return xstrdup(".");
    }
    if (slash == path) {
        return xstrdup("/");
    }
    return xstrndup(path, (size_t) (slash - path));
}

/* (Re)create the inotify instance watching the config dir, the level
 * labels file's dir and the Fluent Bit export dir. */
static void
dts_watch_apply(struct dts_daemon *d)
{
    if (d->inotify_watch) {
        loop_watch_remove(d->inotify_watch);
        d->inotify_watch = NULL;
    }
    if (d->inotify_fd >= 0) {
        close(d->inotify_fd);
    }
    d->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (d->inotify_fd < 0) {
        log_warn("cannot watch the configuration", "error=\"%s\"",
                 strerror(errno));
        return;
    }
    const uint32_t mask =
        IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE;
    char *dirs[3] = {xstrdup(d->config_dir), NULL, NULL};
    /* the default labels directory too when it exists, so a file DPF
     * writes later is picked up */
    if (d->cfg->level_labels_file) {
        dirs[1] = dts_dirname(d->cfg->level_labels_file);
    } else {
        char *def = dts_dirname(DTS_DEFAULT_LEVEL_LABELS);
        struct stat st;
        if (stat(def, &st) == 0 && S_ISDIR(st.st_mode)) {
            dirs[1] = def;
        } else {
            free(def);
        }
    }
    if (d->cfg->fluentbit_config_dir) {
        dirs[2] = xstrdup(d->cfg->fluentbit_config_dir);
    }
    for (size_t i = 0; i < 3; i++) {
        if (dirs[i] && inotify_add_watch(d->inotify_fd, dirs[i], mask) < 0) {
            log_warn("cannot watch directory", "dir=%s error=\"%s\"", dirs[i],
                     strerror(errno));
        }
        free(dirs[i]);
    }
    d->inotify_watch =
        loop_watch_fd(d->loop, d->inotify_fd, LOOP_READ, dts_on_inotify, d);
    /* a change between the load and this watch would otherwise be lost */
    if (!d->reload_timer &&
        dts_config_stamp(d->config_dir) != d->loaded_stamp) {
        d->reload_timer = loop_timer_add(d->loop, DTS_RELOAD_DEBOUNCE_MS, 0,
                                         dts_on_reload_timer, d);
    }
}

/* ---- lifecycle ------------------------------------------------------- */

struct dts_daemon *
dts_daemon_start(struct loop *loop, const struct dts_runtime *rt,
                 struct dpf_error *err)
{
    const char *dir = rt->config_dir ? rt->config_dir : ".";
    int rc = dts_config_init_default(dir);
    if (rc < 0) {
        dpf_error_set(err, 500, "InternalError",
                      "%s: cannot write the default configuration: %s", dir,
                      strerror(-rc));
        return NULL;
    }
    if (rc == 1) {
        log_info("telemetry-init: wrote default configuration", "dir=%s", dir);
    }
    struct dts_daemon *d = xcalloc(1, sizeof *d);
    d->loop = loop;
    d->inotify_fd = -1;
    d->config_dir = xstrdup(dir);
    d->sysfs_root = xstrdup(rt->sysfs_root ? rt->sysfs_root : "/sys");
    d->ipc_dir_opt = xstrdup(rt->ipc_dir);
    d->rt.config_dir = d->config_dir;
    d->rt.sysfs_root = d->sysfs_root;
    d->rt.ipc_dir = d->ipc_dir_opt;
    d->rt.daemon = rt->daemon;
    d->start_ns = time_wall_ns();
    d->model = dts_model_create();
    /* Every error series exists from the start (value 0). */
    static const char *const parts[] = {
        "config", "prometheus",     "prometheus_aggr", "fluent_aggr",
        "ipc",    "fluent_forward", "netflow",         "datafile",
    };
    for (size_t i = 0; i < ARRAY_SIZE(parts); i++) {
        dts_model_error_declare(d->model, parts[i], NULL, NULL);
    }
    /* refusals of the memory budget, by what was full */
    static const char *const budget[] = {"app_series", "app_series_per_source",
                                         "fluent_aggr_series",
                                         "fluent_aggr_buffers"};
    for (size_t i = 0; i < ARRAY_SIZE(budget); i++) {
        dts_model_error_declare(d->model, "memory_budget", "part", budget[i]);
    }
    d->export = dts_export_create(d->model);
    d->loaded_stamp = dts_config_stamp(d->config_dir);
    struct dts_config *c = dts_config_load(&d->rt, err);
    struct dts_filter *filter = NULL;
    struct dts_labels *labels = NULL;
    if (!c || dts_prepare(d, c, &filter, &labels, err) < 0) {
        dts_config_free(c);
        dts_daemon_destroy(d);
        return NULL;
    }
    dts_apply(d, c, filter, labels);
    for (size_t i = 0; c->exit_on_plugin_error && i < d->n_pinst; i++) {
        if (!d->pinst[i].up) {
            /* DOCA's exit-on-plugin-load-error: fail the start */
            dpf_error_set(err, 400, "Invalid",
                          "%s: provider %s could not be started and "
                          "exit-on-plugin-load-error is set",
                          c->path, d->pinst[i].name);
            dts_daemon_destroy(d);
            return NULL;
        }
    }
    return d;
}

struct dts_model *
dts_daemon_model(struct dts_daemon *d)
{
    return d->model;
}

uint16_t
dts_daemon_http_port(const struct dts_daemon *d)
{
    return d->http ? http_lite_port(d->http) : 0;
}

const struct dts_config *
dts_daemon_config(const struct dts_daemon *d)
{
    return d->cfg;
}

void
dts_daemon_destroy(struct dts_daemon *d)
{
    if (!d) {
        return;
    }
    /* Stop the inputs first so no thread calls into freed state. */
    loop_timer_cancel(d->http_retry);
    http_lite_destroy(d->http);
    if (d->ipc) {
        dts_ipc_server_stop(d->ipc);
    }
    for (size_t i = 0; i < d->n_pinst; i++) {
        dts_pinst_stop(d, &d->pinst[i]);
    }
    free(d->pinst);
    dts_export_destroy(d->export);
    loop_timer_cancel(d->collect_timer);
    loop_timer_cancel(d->reload_timer);
    loop_watch_remove(d->inotify_watch);
    if (d->inotify_fd >= 0) {
        close(d->inotify_fd);
    }
    dts_config_free(d->cfg);
    dts_filter_free(d->filter);
    dts_labels_free(d->labels);
    dts_model_free(d->model);
    free(d->http_url);
    free(d->ipc_path);
    free(d->config_dir);
    free(d->sysfs_root);
    free(d->ipc_dir_opt);
    free(d);
}
