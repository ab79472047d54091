/* dts-prov-fluent-aggr: the `fluent_aggr` provider. Runs a Fluent Forward
 * listener (lib/fluent-forward.h, default 127.0.0.1:42442, keys
 * fluent-aggr-address / fluent-aggr-port) and turns received records into
 * telemetry: every numeric field (integer, float, boolean) of a record
 * becomes the gauge dts_fluent_aggr_<field>{tag, <string fields>} holding
 * the newest value; the record's string fields (at most 16, values up to
 * 256 bytes) become labels, so {"port":"p0","rx":5} under tag "app"
 * gives dts_fluent_aggr_rx{tag="app",port="p0"} 5. Nested objects and
 * arrays are ignored. A record whose label names cannot be exported
 * faithfully is refused and counted in dts_fluent_aggr_errors_total: a
 * name Prometheus reserves (starting with "__", such as __name__, which
 * would make every scrape invalid) or two fields that give the same label
 * name ("a-b" and "a_b", or "tag"). A series not updated for
 * series-expiry seconds is dropped (the peer went away); at most 50,000
 * are held, new ones beyond are refused and counted (also in
 * dts_memory_budget_errors_total{part="fluent_aggr_series"}). Frames the
 * listener rejects are counted in dts_fluent_aggr_errors_total. The
 * listener thread only takes this provider's lock. */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dts/dts-provider.h"
#include "dts/dts-forward.h"
#include "lib/base/util.h"

#define FA_MAX_SERIES 50000
#define FA_MAX_LABELS 16
#define FA_BUCKETS 4096

struct fa_series {
    char *name;   /* metric name */
    char *labels; /* rendered label list */
    double value;
    int64_t seen_ms;        /* last update (monotonic) */
    struct fa_series *next; /* hash chain */
};

struct fa_state {
    pthread_mutex_t lock;
    struct dts_forward_server *srv;
    struct dts_model *model;
    uint64_t errors_seen;
    uint64_t over_budget_seen; /* listener's over_budget already counted */
    uint64_t refused;          /* series refused at the cap */
    uint64_t bad_records;      /* records refused for their label names */
    uint64_t expired;          /* series dropped by expiry */
    unsigned expiry_s;         /* series-expiry, 0 = never */
    size_t n_series;
    struct fa_series *buckets[FA_BUCKETS];
};

static uint64_t
fa_hash(const char *a, const char *b)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *s = a; *s; s++) {
        h = (h ^ (unsigned char) *s) * 1099511628211ull;
    }
    h = (h ^ 1u) * 1099511628211ull;
    for (const char *s = b; *s; s++) {
        h = (h ^ (unsigned char) *s) * 1099511628211ull;
    }
    return h;
}

/* Store one value; caller holds the lock. */
static void
fa_store(struct fa_state *st, const char *name, const char *labels,
         double value)
{
    size_t i = (size_t) (fa_hash(name, labels) % FA_BUCKETS);
    for (struct fa_series *s = st->buckets[i]; s; s = s->next) {
        if (!strcmp(s->name, name) && !strcmp(s->labels, labels)) {
            s->value = value;
            s->seen_ms = time_mono_ms();
            return;
        }
    }
    if (st->n_series >= FA_MAX_SERIES) {
        st->refused++;
        return;
    }
    struct fa_series *s = xcalloc(1, sizeof *s);
    s->name = xstrdup(name);
    s->labels = xstrdup(labels);
    s->value = value;
    s->seen_ms = time_mono_ms();
    s->next = st->buckets[i];
    st->buckets[i] = s;
    st->n_series++;
}

static void
fa_on_event(void *aux, const char *tag, int64_t time_ns, json_t *record)
{
    struct fa_state *st = aux;
    if (!json_is_object(record)) {
        return;
    }
    /* Labels: tag first, then string fields in record order. */
    struct dbuf lb;
    dbuf_init(&lb);
    dbuf_puts(&lb, "tag=\"");
    dts_escape_label_value(&lb, tag ? tag : "");
    dbuf_puts(&lb, "\"");
    const char *key;
    json_t *v;
    unsigned n_labels = 0;
    char *names[FA_MAX_LABELS] = {0};
    bool bad = false;
    json_object_foreach(record, key, v)
    {
        if (!json_is_string(v) || n_labels >= FA_MAX_LABELS ||
            json_string_length(v) > 256 || !*key) {
            continue;
        }
        char *lname = xstrdup(key);
        dts_label_name_sanitize(lname);
        bool dup = !strcmp(lname, "tag");
        for (unsigned i = 0; i < n_labels && !dup; i++) {
            dup = !strcmp(names[i], lname);
        }
        if (dup || str_has_prefix(lname, "__")) {
            free(lname);
            bad = true;
            break;
        }
        dbuf_printf(&lb, ",%s=\"", lname);
        dts_escape_label_value(&lb, json_string_value(v));
        dbuf_puts(&lb, "\"");
        names[n_labels++] = lname;
    }
    for (unsigned i = 0; i < n_labels; i++) {
        free(names[i]);
    }
    pthread_mutex_lock(&st->lock);
    if (bad) {
        st->bad_records++;
        pthread_mutex_unlock(&st->lock);
        dbuf_free(&lb);
        return;
    }
    json_object_foreach(record, key, v)
    {
        double d;
        if (json_is_integer(v)) {
            d = (double) json_integer_value(v);
        } else if (json_is_real(v)) {
            d = json_real_value(v);
        } else if (json_is_boolean(v)) {
            d = json_is_true(v) ? 1 : 0;
        } else {
            continue;
        }
        char *name = xasprintf("dts_fluent_aggr_%s", key);
        dts_metric_name_sanitize(name);
        fa_store(st, name, lb.data, d);
        free(name);
    }
    pthread_mutex_unlock(&st->lock);
    dbuf_free(&lb);
}

static int
fa_init(const struct dts_provider_ctx *ctx, void **state, struct dpf_error *err)
{
    struct fa_state *st = xcalloc(1, sizeof *st);
    pthread_mutex_init(&st->lock, NULL);
    st->model = ctx->model;
    st->expiry_s = ctx->config->series_expiry_s;
    struct dts_forward_server_config sc = {
        .address = ctx->config->fluent_aggr_address,
        .port = ctx->config->fluent_aggr_port,
        .cb = fa_on_event,
        .aux = st,
        .shared_key = ctx->config->fluent_aggr_shared_key,
        .hostname = ctx->config->fluent_aggr_hostname,
    };
    st->srv = dts_forward_server_start(&sc, err);
    if (!st->srv) {
        pthread_mutex_destroy(&st->lock);
        free(st);
        return -EADDRNOTAVAIL;
    }
    *state = st;
    return 0;
}

static int
fa_collect(void *state, struct dts_sink *sink)
{
    struct fa_state *st = state;
    struct dts_forward_server_stats ss;
    dts_forward_server_get_stats(st->srv, &ss);
    dts_model_error_sync(st->model, "fluent_aggr", ss.errors, &st->errors_seen);
    pthread_mutex_lock(&st->lock);
    if (st->refused) {
        dts_model_error_add(st->model, "fluent_aggr", NULL, NULL, st->refused);
        dts_model_error_add(st->model, "memory_budget", "part",
                            "fluent_aggr_series", st->refused);
        st->refused = 0;
    }
    if (ss.over_budget > st->over_budget_seen) {
        dts_model_error_add(st->model, "memory_budget", "part",
                            "fluent_aggr_buffers",
                            ss.over_budget - st->over_budget_seen);
        st->over_budget_seen = ss.over_budget;
    }
    if (st->bad_records) {
        dts_model_error_add(st->model, "fluent_aggr", NULL, NULL,
                            st->bad_records);
        st->bad_records = 0;
    }
    int64_t cutoff = time_mono_ms() - (int64_t) st->expiry_s * 1000;
    for (size_t i = 0; i < FA_BUCKETS; i++) {
        struct fa_series **pp = &st->buckets[i];
        while (st->expiry_s && *pp) {
            struct fa_series *s = *pp;
            if (s->seen_ms >= cutoff) {
                pp = &s->next;
                continue;
            }
            *pp = s->next;
            free(s->name);
            free(s->labels);
            free(s);
            st->n_series--;
            st->expired++;
        }
        for (const struct fa_series *s = st->buckets[i]; s; s = s->next) {
            dts_sink_add_raw(sink, DTS_GAUGE, s->name,
                             "Numeric field of records received by "
                             "fluent_aggr.",
                             NULL, s->labels, s->value);
        }
    }
    pthread_mutex_unlock(&st->lock);
    dts_sink_add(sink, DTS_COUNTER, "dts_fluent_aggr_events_total",
                 "Records received by the fluent_aggr listener.", NULL,
                 (double) ss.events);
    dts_sink_add(sink, DTS_COUNTER, "dts_fluent_aggr_series_expired_total",
                 "fluent_aggr series dropped after series-expiry seconds "
                 "without an update.",
                 NULL, (double) st->expired);
    dts_sink_add(sink, DTS_COUNTER, "dts_fluent_aggr_auth_failures_total",
                 "fluent_aggr connections refused by the shared-key "
                 "handshake (also in dts_fluent_aggr_errors_total).",
                 NULL, (double) ss.auth_failures);
    dts_sink_add(sink, DTS_COUNTER, "dts_fluent_aggr_connections_total",
                 "Connections accepted by the fluent_aggr listener.", NULL,
                 (double) ss.connections);
    dts_sink_add(sink, DTS_COUNTER, "dts_fluent_aggr_connections_evicted_total",
                 "Idle fluent_aggr connections closed to admit a new one "
                 "(every slot was taken).",
                 NULL, (double) ss.evicted);
    return 0;
}

static void
fa_destroy(void *state)
{
    struct fa_state *st = state;
    dts_forward_server_stop(st->srv);
    for (size_t i = 0; i < FA_BUCKETS; i++) {
        struct fa_series *s = st->buckets[i];
        while (s) {
            struct fa_series *next = s->next;
            free(s->name);
            free(s->labels);
            free(s);
            s = next;
        }
    }
    pthread_mutex_destroy(&st->lock);
    free(st);
}

const struct dts_provider_ops dts_prov_fluent_aggr_ops = {
    .name = "fluent_aggr",
    .init = fa_init,
    .collect = fa_collect,
    .destroy = fa_destroy,
};
