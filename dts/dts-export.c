/* dts-export: see dts-export.h. Each output is (re)started only when its
 * settings string changes, so a config reload that touches something
 * else keeps connections and open files. */
#include "dts/dts-export.h"

#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "lib/telemetry/datafile.h"
#include "dts/dts-forward.h"
#include "lib/base/log.h"
#include "lib/telemetry/netflow.h"
#include "lib/base/util.h"

LOG_MODULE(dts_export);

/* Latest value of one app counter, in a hash chain keyed by source id,
 * source tag, name and kind: an update costs one hash and one compare
 * whatever the number of names (a linear scan made 100,000 names crawl at
 * ~1,000 records/s). */
struct dts_appctr {
    char *source_id;
    char *source_tag;
    char *name;
    char *lkey;    /* the app's labels as "n\x1fv\x1f..." ("" = none) */
    char **lpairs; /* name, value, ..., NULL: the app's labels, or NULL */
    char *metric;  /* exported name, made once */
    uint8_t kind;
    double value;
    uint64_t hash;           /* of the key */
    int64_t seen_ms;         /* last update (monotonic) */
    struct dts_appsrc *src;  /* its source's bookkeeping */
    struct dts_appctr *next; /* hash chain */
};

/* What collect copies under the lock: the node (whose strings only the
 * loop thread frees) and its value at that moment. */
struct dts_appsnap {
    struct dts_appctr *a;
    double value;
};

/* Per source (id + tag): how many series it holds, for the cap. */
struct dts_appsrc {
    char *source_id;
    char *source_tag;
    uint64_t hash;
    size_t n_series;
    struct dts_appsrc *next;
};

/* A chained hash table that doubles when its load passes 1. */
struct dts_apptab {
    size_t n;       /* entries */
    size_t mask;    /* buckets - 1 (power of two) */
    void **buckets; /* struct dts_appctr * or struct dts_appsrc * chains */
};

struct dts_export {
    pthread_mutex_t lock;
    struct dts_model *model;
    struct dts_fwd_out {
        struct dts_forward_client *cl; /* NULL = off or failed */
        char *key;                     /* settings it was started with */
        uint64_t errors_seen;
    } fwd_out[DTS_MAX_FWD];
    size_t n_fwd;                   /* destinations configured */
    struct dts_forward_client *fwd; /* non-NULL while any client runs */
    struct nf_exporter *nf;
    char *nf_key;
    uint64_t nf_errors_seen;
    struct datafile_writer *df;
    char *df_key;
    uint64_t df_errors_seen;
    struct dts_apptab app;     /* struct dts_appctr */
    struct dts_apptab sources; /* struct dts_appsrc */
    unsigned expiry_s;         /* drop series not updated for this long */
    size_t max_series;         /* all app series */
    size_t max_per_source;     /* series of one source */
    uint64_t expired;          /* series dropped by expiry */
    struct dts_appsnap *snap;  /* collect's copy (reused) */
    size_t snap_cap;
    uint64_t ipc_events;
};

struct dts_export *
dts_export_create(struct dts_model *model)
{
    struct dts_export *x = xcalloc(1, sizeof *x);
    pthread_mutex_init(&x->lock, NULL);
    x->model = model;
    x->expiry_s = DTS_DEFAULT_SERIES_EXPIRY;
    x->max_series = DTS_DEFAULT_APP_SERIES;
    x->max_per_source = DTS_DEFAULT_APP_SERIES_PER_SOURCE;
    return x;
}

/* ---- app counter tables ------------------------------------------------ */

static uint64_t
dts_fnv(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h = (h ^ (unsigned char) *s) * 1099511628211ull;
    }
    h = (h ^ 0xffu) * 1099511628211ull; /* separator */
    return h ^ (h >> 29); /* the table indexes with the low bits */
}

/* Bucket array for a chain of entries whose next pointer is at next_off. */
static void
dts_apptab_grow(struct dts_apptab *t, size_t next_off, size_t hash_off)
{
    if (t->buckets && t->n <= t->mask + 1) {
        return;
    }
    size_t nb = t->buckets ? 2 * (t->mask + 1) : 1024;
    void **b = xcalloc(nb, sizeof *b);
    for (size_t i = 0; t->buckets && i <= t->mask; i++) {
        char *e = t->buckets[i];
        while (e) {
            char *next = *(char **) (e + next_off);
            uint64_t h = *(uint64_t *) (e + hash_off);
            *(void **) (e + next_off) = b[h & (nb - 1)];
            b[h & (nb - 1)] = e;
            e = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->mask = nb - 1;
}

static struct dts_appsrc *
dts_appsrc_get(struct dts_export *x, const char *sid, const char *stag)
{
    uint64_t h = dts_fnv(dts_fnv(1469598103934665603ull, sid), stag);
    dts_apptab_grow(&x->sources, offsetof(struct dts_appsrc, next),
                    offsetof(struct dts_appsrc, hash));
    struct dts_appsrc **head =
        (struct dts_appsrc **) &x->sources.buckets[h & x->sources.mask];
    for (struct dts_appsrc *s = *head; s; s = s->next) {
        if (s->hash == h && !strcmp(s->source_id, sid) &&
            !strcmp(s->source_tag, stag)) {
            return s;
        }
    }
    struct dts_appsrc *s = xcalloc(1, sizeof *s);
    s->source_id = xstrdup(sid);
    s->source_tag = xstrdup(stag);
    s->hash = h;
    s->next = *head;
    *head = s;
    x->sources.n++;
    return s;
}

static void
dts_appsrc_release(struct dts_export *x, struct dts_appsrc *s)
{
    if (--s->n_series > 0) {
        return;
    }
    struct dts_appsrc **pp =
        (struct dts_appsrc **) &x->sources.buckets[s->hash & x->sources.mask];
    while (*pp != s) {
        pp = &(*pp)->next;
    }
    *pp = s->next;
    x->sources.n--;
    free(s->source_id);
    free(s->source_tag);
    free(s);
}

static void
dts_appctr_free(struct dts_appctr *a)
{
    for (size_t i = 0; a->lpairs && a->lpairs[i]; i++) {
        free(a->lpairs[i]);
    }
    free(a->lpairs);
    free(a->lkey);
    free(a->name);
    free(a->metric);
    free(a);
}

/* Drop series not updated for expiry_s (a departed app's). Loop thread. */
static void
dts_app_expire(struct dts_export *x, int64_t now_ms)
{
    if (!x->expiry_s || !x->app.buckets) {
        return;
    }
    int64_t cutoff = now_ms - (int64_t) x->expiry_s * 1000;
    for (size_t i = 0; i <= x->app.mask; i++) {
        struct dts_appctr **pp = (struct dts_appctr **) &x->app.buckets[i];
        while (*pp) {
            struct dts_appctr *a = *pp;
            if (a->seen_ms >= cutoff) {
                pp = &a->next;
                continue;
            }
            *pp = a->next;
            x->app.n--;
            x->expired++;
            dts_appsrc_release(x, a->src);
            dts_appctr_free(a);
        }
    }
}

static bool
dts_key_same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* (Re)start Forward destination i for host/port/tag (NULL host = off);
 * a destination whose settings did not change keeps its connection. */
static void
dts_export_apply_fwd_one(struct dts_export *x, size_t i, const char *host,
                         uint16_t port, const char *tag,
                         const struct dts_config *c)
{
    struct dts_fwd_out *o = &x->fwd_out[i];
    char *key = host ? xasprintf("%s:%u tag=%s ack=%d buffer=%u", host, port,
                                 tag, c->fwd_require_ack, c->fwd_buffer_records)
                     : NULL;
    if (dts_key_same(key, o->key)) {
        free(key);
        return;
    }
    if (o->cl) {
        dts_forward_client_stop(o->cl);
        o->cl = NULL;
        log_info("fluent forward output stopped", "target=\"%s\"", o->key);
    }
    free(o->key);
    o->key = NULL;
    o->errors_seen = 0;
    if (!key) {
        return;
    }
    struct dts_forward_client_config fc = {
        .host = host,
        .port = port,
        .tag = tag,
        .require_ack = c->fwd_require_ack,
        .buffer_records = c->fwd_buffer_records,
    };
    struct dpf_error err;
    dpf_error_clear(&err);
    o->cl = dts_forward_client_start(&fc, &err);
    if (!o->cl) {
        dts_model_error_inc(x->model, "fluent_forward", NULL, NULL);
        log_error("cannot start fluent forward output",
                  "target=\"%s\" error=\"%s\"", key, err.message);
        free(key);
        return;
    }
    o->key = key;
    log_info("fluent forward output started", "target=\"%s\"", key);
}

/* Every destination: the main one (keys or the first .exp file) and one
 * per further .exp file; each gets every record. */
static void
dts_export_apply_fwd(struct dts_export *x, const struct dts_config *c)
{
    size_t n = c->fwd_enable ? 1 + c->n_fwd_more : 0;
    for (size_t i = 0; i < DTS_MAX_FWD; i++) {
        if (i >= n) {
            dts_export_apply_fwd_one(x, i, NULL, 0, NULL, c);
        } else if (i == 0) {
            dts_export_apply_fwd_one(x, 0, c->fwd_host, c->fwd_port, c->fwd_tag,
                                     c);
        } else {
            const struct dts_fwd_dest *dd = &c->fwd_more[i - 1];
            dts_export_apply_fwd_one(x, i, dd->host, dd->port, dd->tag, c);
        }
    }
    x->n_fwd = n;
    x->fwd = NULL;
    for (size_t i = 0; i < n && !x->fwd; i++) {
        x->fwd = x->fwd_out[i].cl;
    }
}

/* Post one record to every running destination. */
static void
dts_export_fwd_post(struct dts_export *x, int64_t time_ns, json_t *rec)
{
    for (size_t i = 0; i < x->n_fwd; i++) {
        if (x->fwd_out[i].cl) {
            dts_forward_client_post(x->fwd_out[i].cl, time_ns, rec);
        }
    }
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
    x->expiry_s = c->series_expiry_s;
    x->max_series = c->app_max_series;
    x->max_per_source = c->app_max_series_per_source;
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
        dts_export_fwd_post(c->x, c->now_ns, rec);
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
    /* The labels are part of the series' identity: one key string, made
     * on the stack (16 labels of at most 63 + 127 bytes). */
    char lkey[DTS_IPC_MAX_LABELS *
                  (DTS_IPC_MAX_LABEL_NAME + DTS_IPC_MAX_LABEL_VALUE) +
              1];
    size_t lk = 0;
    for (unsigned i = 0; i < c->n_labels && i < DTS_IPC_MAX_LABELS; i++) {
        /* each entry is at most 63 + 1 + 127 + 1 bytes: it always fits */
        size_t nl = strlen(c->labels[i].name);
        size_t vl = strlen(c->labels[i].value);
        memcpy(lkey + lk, c->labels[i].name, nl);
        lkey[lk + nl] = '\x1f';
        memcpy(lkey + lk + nl + 1, c->labels[i].value, vl);
        lkey[lk + nl + 1 + vl] = '\x1f';
        lk += nl + vl + 2;
    }
    lkey[lk] = '\0';
    uint64_t h = dts_fnv(
        dts_fnv(dts_fnv(dts_fnv(1469598103934665603ull ^ c->kind, sid), stag),
                c->name),
        lkey);
    int64_t now = time_mono_ms();
    if (x->app.buckets) {
        for (struct dts_appctr *a = x->app.buckets[h & x->app.mask]; a;
             a = a->next) {
            if (a->hash == h && a->kind == c->kind &&
                !strcmp(a->name, c->name) && !strcmp(a->lkey, lkey) &&
                !strcmp(a->src->source_id, sid) &&
                !strcmp(a->src->source_tag, stag)) {
                a->value = v;
                a->seen_ms = now;
                return;
            }
        }
    }
    if (x->app.n >= x->max_series) {
        dts_model_error_inc(x->model, "ipc", NULL, NULL);
        dts_model_error_inc(x->model, "memory_budget", "part", "app_series");
        return;
    }
    struct dts_appsrc *src = dts_appsrc_get(x, sid, stag);
    if (src->n_series >= x->max_per_source) {
        dts_model_error_inc(x->model, "ipc", NULL, NULL);
        dts_model_error_inc(x->model, "memory_budget", "part",
                            "app_series_per_source");
        return;
    }
    dts_apptab_grow(&x->app, offsetof(struct dts_appctr, next),
                    offsetof(struct dts_appctr, hash));
    struct dts_appctr *a = xcalloc(1, sizeof *a);
    a->source_id = src->source_id;
    a->source_tag = src->source_tag;
    a->name = xstrdup(c->name);
    a->lkey = xstrdup(lkey);
    if (c->n_labels) {
        a->lpairs = xcalloc(2 * c->n_labels + 1, sizeof *a->lpairs);
        for (unsigned i = 0; i < c->n_labels; i++) {
            a->lpairs[2 * i] = xstrdup(c->labels[i].name);
            a->lpairs[2 * i + 1] = xstrdup(c->labels[i].value);
        }
    }
    a->kind = c->kind;
    a->value = v;
    a->hash = h;
    a->seen_ms = now;
    a->src = src;
    src->n_series++;
    struct dts_appctr **head =
        (struct dts_appctr **) &x->app.buckets[h & x->app.mask];
    a->next = *head;
    *head = a;
    x->app.n++;
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
            dts_export_fwd_post(x, now, rec);
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
    /* Copy the series under the lock and render them after: the intake
     * thread waits for a copy of pointers, not for 100,000 samples. */
    pthread_mutex_lock(&x->lock);
    dts_app_expire(x, time_mono_ms());
    if (x->snap_cap < x->app.n) {
        x->snap_cap = x->app.n + x->app.n / 4;
        free(x->snap);
        x->snap = xcalloc(x->snap_cap, sizeof *x->snap);
    }
    size_t n_snap = 0;
    for (size_t i = 0; x->app.buckets && i <= x->app.mask; i++) {
        for (struct dts_appctr *a = x->app.buckets[i]; a; a = a->next) {
            x->snap[n_snap++] = (struct dts_appsnap){a, a->value};
        }
    }
    size_t n_series = x->app.n;
    uint64_t expired = x->expired;
    pthread_mutex_unlock(&x->lock);
    for (size_t i = 0; i < n_snap; i++) {
        struct dts_appctr *a = x->snap[i].a;
        bool ctr = a->kind == DTS_IPC_COUNTER_U64;
        if (!a->metric) {
            /* made here, by the only thread that reads or frees it; a
             * counter ends in exactly one _total: an app that already
             * named its counter "requests_total" keeps that name */
            a->metric = xasprintf("dts_app_%s", a->name);
            dts_metric_name_sanitize(a->metric);
            if (ctr && !str_has_suffix(a->metric, "_total")) {
                char *t = xasprintf("%s_total", a->metric);
                free(a->metric);
                a->metric = t;
            }
        }
        const char *labels[4 + 2 * DTS_IPC_MAX_LABELS + 1] = {
            "source_id", a->source_id, "source_tag", a->source_tag};
        size_t nl = 4;
        for (size_t k = 0; a->lpairs && a->lpairs[k]; k++) {
            labels[nl++] = a->lpairs[k];
        }
        labels[nl] = NULL;
        dts_sink_add(sink, ctr ? DTS_COUNTER : DTS_GAUGE, a->metric,
                     ctr ? "Counter sent by an exporter-library app."
                         : "Gauge sent by an exporter-library app.",
                     labels, x->snap[i].value);
    }
    pthread_mutex_lock(&x->lock);
    dts_sink_add(sink, DTS_GAUGE, "dts_app_series",
                 "App counter/gauge series held (exporter library).", NULL,
                 (double) n_series);
    dts_sink_add(sink, DTS_COUNTER, "dts_app_series_expired_total",
                 "App series dropped after series-expiry seconds without "
                 "an update.",
                 NULL, (double) expired);
    if (x->fwd) {
        /* summed over the destinations; connected counts them */
        struct dts_forward_client_stats st = {0};
        unsigned connected = 0;
        for (size_t i = 0; i < x->n_fwd; i++) {
            struct dts_fwd_out *o = &x->fwd_out[i];
            struct dts_forward_client_stats one;
            if (!o->cl) {
                continue;
            }
            dts_forward_client_get_stats(o->cl, &one);
            dts_model_error_sync(x->model, "fluent_forward", one.errors,
                                 &o->errors_seen);
            st.sent += one.sent;
            st.dropped += one.dropped;
            st.queued += one.queued;
            connected += one.connected ? 1 : 0;
        }
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
                     "Forward peers connected now (1 with one peer).", NULL,
                     (double) connected);
        dts_sink_add(sink, DTS_GAUGE, "dts_fluent_forward_destinations",
                     "Fluent Forward destinations configured.", NULL,
                     (double) x->n_fwd);
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
    for (size_t i = 0; i < DTS_MAX_FWD; i++) {
        dts_forward_client_stop(x->fwd_out[i].cl);
        free(x->fwd_out[i].key);
    }
    nf_exporter_destroy(x->nf);
    datafile_writer_close(x->df);
    free(x->nf_key);
    free(x->df_key);
    for (size_t i = 0; x->app.buckets && i <= x->app.mask; i++) {
        struct dts_appctr *a = x->app.buckets[i];
        while (a) {
            struct dts_appctr *next = a->next;
            dts_appctr_free(a);
            a = next;
        }
    }
    free(x->app.buckets);
    for (size_t i = 0; x->sources.buckets && i <= x->sources.mask; i++) {
        struct dts_appsrc *s = x->sources.buckets[i];
        while (s) {
            struct dts_appsrc *next = s->next;
            free(s->source_id);
            free(s->source_tag);
            free(s);
            s = next;
        }
    }
    free(x->sources.buckets);
    free(x->snap);
    pthread_mutex_destroy(&x->lock);
    free(x);
}
