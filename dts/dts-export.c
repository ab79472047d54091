/* dts-export: see dts-export.h. Each output is (re)started only when its
 * settings string changes, so a config reload that touches something
 * else keeps connections and open files. */
#include "dts/dts-export.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/telemetry/datafile.h"
#include "dts/dts-forward.h"
#include "lib/base/log.h"
#include "lib/telemetry/netflow.h"
#include "lib/base/util.h"

LOG_MODULE(dts_export);

/* Latest value of one app counter. */
struct dts_appctr {
    char *source_id;
    char *source_tag;
    char *name;
    uint8_t kind;
    double value;
};

struct dts_export {
    pthread_mutex_t lock;
    struct dts_model *model;
    struct dts_forward_client *fwd;
    char *fwd_key;
    uint64_t fwd_errors_seen;
    struct nf_exporter *nf;
    char *nf_key;
    uint64_t nf_errors_seen;
    struct datafile_writer *df;
    char *df_key;
    uint64_t df_errors_seen;
    size_t n_app;
    struct dts_appctr *app;
    uint64_t ipc_events;
};

struct dts_export *
dts_export_create(struct dts_model *model)
{
    struct dts_export *x = xcalloc(1, sizeof *x);
    pthread_mutex_init(&x->lock, NULL);
    x->model = model;
    return x;
}

static bool
dts_key_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

static void
dts_export_apply_fwd(struct dts_export *x, const struct dts_config *c)
{
    char *key = c->fwd_enable
                    ? xasprintf("%s:%u tag=%s ack=%d buffer=%u", c->fwd_host,
                                c->fwd_port, c->fwd_tag, c->fwd_require_ack,
                                c->fwd_buffer_records)
                    : NULL;
    if (dts_key_same(key, x->fwd_key)) {
        free(key);
        return;
    }
    if (x->fwd) {
        dts_forward_client_stop(x->fwd);
        x->fwd = NULL;
        log_info("fluent forward output stopped", "target=\"%s\"", x->fwd_key);
    }
    free(x->fwd_key);
    x->fwd_key = NULL;
    x->fwd_errors_seen = 0;
    if (!key) {
        return;
    }
    struct dts_forward_client_config fc = {
        .host = c->fwd_host,
        .port = c->fwd_port,
        .tag = c->fwd_tag,
        .require_ack = c->fwd_require_ack,
        .buffer_records = c->fwd_buffer_records,
    };
    struct dpf_error err;
    dpf_error_clear(&err);
    x->fwd = dts_forward_client_start(&fc, &err);
    if (!x->fwd) {
        dts_model_error_inc(x->model, "fluent_forward", NULL, NULL);
        log_error("cannot start fluent forward output",
                  "target=\"%s\" error=\"%s\"", key, err.message);
        free(key);
        return;
    }
    x->fwd_key = key;
    log_info("fluent forward output started", "target=\"%s\"", key);
}

static void
dts_export_apply_nf(struct dts_export *x, const struct dts_config *c)
{
    char *key = c->netflow_host ? xasprintf("v%d %s:%u", c->netflow_version,
                                            c->netflow_host, c->netflow_port)
                                : NULL;
    if (dts_key_same(key, x->nf_key)) {
        free(key);
        return;
    }
    if (x->nf) {
        nf_exporter_destroy(x->nf);
        x->nf = NULL;
    }
    free(x->nf_key);
    x->nf_key = NULL;
    x->nf_errors_seen = 0;
    if (!key) {
        return;
    }
    struct nf_exporter_config nc = {
        .version = c->netflow_version == 10 ? NF_VERSION_IPFIX : NF_VERSION_V9,
        .host = c->netflow_host,
        .port = c->netflow_port,
    };
    struct dpf_error err;
    dpf_error_clear(&err);
    x->nf = nf_exporter_create(&nc, &err);
    if (!x->nf) {
        dts_model_error_inc(x->model, "netflow", NULL, NULL);
        log_error("cannot start netflow export", "target=\"%s\" error=\"%s\"",
                  key, err.message);
        free(key);
        return;
    }
    x->nf_key = key;
    log_info("netflow export started", "target=\"%s\"", key);
}

static void
dts_export_apply_df(struct dts_export *x, const struct dts_config *c)
{
    char *key = c->output
                    ? xasprintf("%s size=%llu time=%u", c->output,
                                (unsigned long long) c->data_file_size_limit,
                                c->data_file_time_limit)
                    : NULL;
    if (dts_key_same(key, x->df_key)) {
        free(key);
        return;
    }
    if (x->df) {
        datafile_writer_close(x->df);
        x->df = NULL;
    }
    free(x->df_key);
    x->df_key = NULL;
    x->df_errors_seen = 0;
    if (!key) {
        return;
    }
    struct datafile_writer_config wc = {
        .dir = c->output,
        .prefix = "dts",
        .schema = "{\"name\":\"dts\",\"records\":\"json\"}",
        .size_limit = c->data_file_size_limit,
        .time_limit = c->data_file_time_limit,
    };
    struct dpf_error err;
    dpf_error_clear(&err);
    x->df = datafile_writer_open(&wc, &err);
    if (!x->df) {
        dts_model_error_inc(x->model, "datafile", NULL, NULL);
        log_error("cannot open data file", "dir=%s error=\"%s\"", c->output,
                  err.message);
        free(key);
        return;
    }
    x->df_key = key;
    log_info("data files enabled", "dir=%s", c->output);
}

void
dts_export_apply(struct dts_export *x, const struct dts_config *c)
{
    pthread_mutex_lock(&x->lock);
    dts_export_apply_fwd(x, c);
    dts_export_apply_nf(x, c);
    dts_export_apply_df(x, c);
    pthread_mutex_unlock(&x->lock);
}

json_t *
dts_export_labels_to_json(const char *s)
{
    json_t *o = json_object();
    const char *p = s;
    while (*p) {
        const char *eq = strchr(p, '=');
        if (!eq || eq[1] != '"') {
            json_decref(o);
            return NULL;
        }
        char *name = xstrndup(p, (size_t) (eq - p));
        struct dbuf v;
        dbuf_init(&v);
        p = eq + 2;
        while (*p && *p != '"') {
            if (*p == '\\' && p[1]) {
                char c = p[1] == 'n' ? '\n' : p[1];
                dbuf_append(&v, &c, 1);
                p += 2;
            } else {
                dbuf_append(&v, p, 1);
                p++;
            }
        }
        if (*p != '"') {
            free(name);
            dbuf_free(&v);
            json_decref(o);
            return NULL;
        }
        p++;
        json_object_set_new(o, name, json_string(v.data ? v.data : ""));
        free(name);
        dbuf_free(&v);
        if (*p == ',') {
            p++;
        } else if (*p) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

struct dts_cycle_ctx {
    struct dts_export *x;
    int64_t now_ns;
};

static void
dts_export_sample(void *arg, const struct dts_family *f,
                  const struct dts_sample *s)
{
    struct dts_cycle_ctx *c = arg;
    json_t *rec = dts_export_labels_to_json(s->labels);
    if (!rec) {
        return;
    }
    json_object_set_new(rec, "metric", json_string(f->name));
    json_object_set_new(rec, "value", json_real(s->value));
    if (c->x->fwd) {
        dts_forward_client_post(c->x->fwd, c->now_ns, rec);
    }
    if (c->x->df) {
        char *text = json_dumps(rec, JSON_COMPACT);
        if (text) {
            datafile_writer_append(c->x->df, DATAFILE_JSON, c->now_ns, text,
                                   strlen(text));
            free(text);
        }
    }
    json_decref(rec);
}

void
dts_export_cycle(struct dts_export *x, struct dts_model *m, int64_t now_ns)
{
    pthread_mutex_lock(&x->lock);
    if (x->fwd || x->df) {
        struct dts_cycle_ctx c = {.x = x, .now_ns = now_ns};
        dts_model_foreach(m, dts_export_sample, &c);
    }
    if (x->df) {
        datafile_writer_flush(x->df);
    }
    if (x->nf) {
        nf_exporter_flush(x->nf);
    }
    pthread_mutex_unlock(&x->lock);
}

static void
dts_export_app_counter(struct dts_export *x, const struct dts_ipc_record *r)
{
    const char *sid = r->source ? r->source->source_id : "";
    const char *stag = r->source ? r->source->source_tag : "";
    const struct dts_ipc_counter *c = r->counter;
    double v = c->kind == DTS_IPC_COUNTER_U64 ? (double) c->u64 : c->f64;
    for (size_t i = 0; i < x->n_app; i++) {
        struct dts_appctr *a = &x->app[i];
        if (!strcmp(a->source_id, sid) && !strcmp(a->source_tag, stag) &&
            !strcmp(a->name, c->name) && a->kind == c->kind) {
            a->value = v;
            return;
        }
    }
    if (x->n_app >= 100000) {
        dts_model_error_inc(x->model, "ipc", NULL, NULL);
        return;
    }
    x->app = xrealloc(x->app, (x->n_app + 1) * sizeof *x->app);
    struct dts_appctr *a = &x->app[x->n_app++];
    a->source_id = xstrdup(sid);
    a->source_tag = xstrdup(stag);
    a->name = xstrdup(c->name);
    a->kind = c->kind;
    a->value = v;
}

void
dts_export_ipc_record(struct dts_export *x, const struct dts_ipc_record *r)
{
    pthread_mutex_lock(&x->lock);
    switch (r->kind) {
    case DTS_IPC_RECORD_COUNTER:
        dts_export_app_counter(x, r);
        break;
    case DTS_IPC_RECORD_NETFLOW:
        if (x->nf && nf_exporter_add(x->nf, r->flow) < 0) {
            dts_model_error_inc(x->model, "netflow", NULL, NULL);
        }
        break;
    case DTS_IPC_RECORD_EVENT: {
        x->ipc_events++;
        if (!x->fwd && !x->df) {
            break;
        }
        json_t *rec = dts_ipc_event_to_json(r->type, r->data);
        if (!rec) {
            break;
        }
        json_object_set_new(rec, "event_type", json_string(r->type->name));
        if (r->source) {
            json_object_set_new(rec, "source_id",
                                json_string(r->source->source_id));
            json_object_set_new(rec, "source_tag",
                                json_string(r->source->source_tag));
        }
        int64_t now = time_wall_ns();
        if (x->fwd) {
            dts_forward_client_post(x->fwd, now, rec);
        }
        if (x->df) {
            char *text = json_dumps(rec, JSON_COMPACT);
            if (text) {
                datafile_writer_append(x->df, DATAFILE_JSON, now, text,
                                       strlen(text));
                free(text);
            }
        }
        json_decref(rec);
        break;
    }
    }
    pthread_mutex_unlock(&x->lock);
}

void
dts_export_collect(struct dts_export *x, struct dts_sink *sink)
{
    pthread_mutex_lock(&x->lock);
    for (size_t i = 0; i < x->n_app; i++) {
        const struct dts_appctr *a = &x->app[i];
        bool ctr = a->kind == DTS_IPC_COUNTER_U64;
        /* A counter ends in exactly one _total: an app that already
         * named its counter "requests_total" keeps that name. */
        char *name = xasprintf("dts_app_%s", a->name);
        dts_metric_name_sanitize(name);
        if (ctr && !str_has_suffix(name, "_total")) {
            char *t = xasprintf("%s_total", name);
            free(name);
            name = t;
        }
        const char *labels[] = {"source_id", a->source_id, "source_tag",
                                a->source_tag, NULL};
        dts_sink_add(sink, ctr ? DTS_COUNTER : DTS_GAUGE, name,
                     ctr ? "Counter sent by an exporter-library app."
                         : "Gauge sent by an exporter-library app.",
                     labels, a->value);
        free(name);
    }
    if (x->fwd) {
        struct dts_forward_client_stats st;
        dts_forward_client_get_stats(x->fwd, &st);
        dts_model_error_sync(x->model, "fluent_forward", st.errors,
                             &x->fwd_errors_seen);
        dts_sink_add(sink, DTS_COUNTER, "dts_fluent_forward_sent_total",
                     "Records written to the Fluent Forward peer.", NULL,
                     (double) st.sent);
        dts_sink_add(sink, DTS_COUNTER, "dts_fluent_forward_dropped_total",
                     "Records dropped because the Forward queue was full.",
                     NULL, (double) st.dropped);
        dts_sink_add(sink, DTS_GAUGE, "dts_fluent_forward_queued_records",
                     "Records waiting for the Forward peer.", NULL,
                     (double) st.queued);
        dts_sink_add(sink, DTS_GAUGE, "dts_fluent_forward_connected",
                     "1 while connected to the Forward peer.", NULL,
                     st.connected ? 1 : 0);
    }
    if (x->nf) {
        struct nf_exporter_stats st;
        nf_exporter_get_stats(x->nf, &st);
        dts_model_error_sync(x->model, "netflow", st.errors,
                             &x->nf_errors_seen);
        dts_sink_add(sink, DTS_COUNTER, "dts_netflow_packets_total",
                     "NetFlow/IPFIX datagrams sent.", NULL,
                     (double) st.packets);
        dts_sink_add(sink, DTS_COUNTER, "dts_netflow_records_total",
                     "Flow records sent.", NULL, (double) st.records);
    }
    if (x->df) {
        struct datafile_writer_stats st;
        datafile_writer_get_stats(x->df, &st);
        dts_model_error_sync(x->model, "datafile", st.errors,
                             &x->df_errors_seen);
        dts_sink_add(sink, DTS_COUNTER, "dts_datafile_records_total",
                     "Records written to data files.", NULL,
                     (double) st.records);
        dts_sink_add(sink, DTS_COUNTER, "dts_datafile_files_total",
                     "Data files opened.", NULL, (double) st.files);
    }
    pthread_mutex_unlock(&x->lock);
}

void
dts_export_destroy(struct dts_export *x)
{
    if (!x) {
        return;
    }
    dts_forward_client_stop(x->fwd);
    nf_exporter_destroy(x->nf);
    datafile_writer_close(x->df);
    free(x->fwd_key);
    free(x->nf_key);
    free(x->df_key);
    for (size_t i = 0; i < x->n_app; i++) {
        free(x->app[i].source_id);
        free(x->app[i].source_tag);
        free(x->app[i].name);
    }
    free(x->app);
    pthread_mutex_destroy(&x->lock);
    free(x);
}
