/* dts-prov-prom-aggr: the `prometheus_aggr` provider. A worker thread
 * scrapes every endpoint of `prometheus-aggr-endpoints` once per update
 * period with libcurl (timeout: the period, at most 10 s), parses the text
 * exposition (dts-promtext) and keeps the newest result per endpoint.
 * collect() re-exports those series unchanged except for one added label
 * source="<host:port>" (host:port/path when the path is not /metrics;
 * a scraped label already named `source` becomes
 * `exported_source`), plus
 *   dts_prometheus_aggr_up{source}                  1 if the last scrape
 *                                                   parsed, else 0
 *   dts_prometheus_aggr_scrape_duration_seconds{source}
 * A failed scrape (connection refused, HTTP status other than 200, a body
 * over 16 MiB, text that does not parse) drops that endpoint's series and
 * counts one dts_prometheus_aggr_errors_total{source}. Counters whose name
 * lacks `_total`, histograms and summaries are re-exported as untyped.
 *
 * libcurl is loaded with dlopen() when the provider starts, not linked:
 * linking it maps ~25 libraries (OpenSSL, Kerberos, LDAP, ssh2, ...) and
 * ~3.5 MiB of resident memory into every dts, although most never scrape
 * anything. Without libcurl.so.4 the provider reports "not available"
 * with the reason (install libcurl4); $DTS_CURL_LIBRARY overrides the
 * path (tests). The library stays loaded until exit. */
#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dts/dts-promtext.h"
#include "dts/dts-provider.h"
#include "lib/base/log.h"
#include "lib/base/thread.h"
#include "lib/base/util.h"

LOG_MODULE(prometheus_aggr);

#define PA_MAX_BODY (16u * 1024 * 1024)
#define PA_MAX_SAMPLES 200000

struct pa_sample {
    char *name;
    char *help;
    enum dts_mtype type;
    char *labels; /* rendered, `source` already renamed */
    double value;
};

struct pa_endpoint {
    char *url;
    char *source; /* host:port */
    bool up;
    double duration;
    size_t n;
    struct pa_sample *samples; /* newest good scrape */
};

/* The libcurl entry points used, resolved with dlsym(). */
static struct {
    void *lib;
    char error[512]; /* why loading failed ("" = loaded) */
    CURLcode (*global_init)(long flags);
    CURL *(*easy_init)(void);
    void (*easy_reset)(CURL *curl);
    CURLcode (*easy_setopt)(CURL *curl, CURLoption option, ...);
    CURLcode (*easy_perform)(CURL *curl);
    CURLcode (*easy_getinfo)(CURL *curl, CURLINFO info, ...);
    const char *(*easy_strerror)(CURLcode code);
    void (*easy_cleanup)(CURL *curl);
} pa_curl;

#define PA_CURL_LIB "libcurl.so.4"

/* Load libcurl once (pthread_once); pa_curl.error says why it failed. */
static void
pa_curl_load(void)
{
    const char *path = getenv("DTS_CURL_LIBRARY");
    if (!path || !*path) {
        path = PA_CURL_LIB;
    }
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        const char *why = dlerror();
        snprintf(pa_curl.error, sizeof pa_curl.error,
                 "not available: %s cannot be loaded (install libcurl4): %s",
                 path, why ? why : "not found");
        return;
    }
    static const char *const names[] = {
        "curl_global_init",   "curl_easy_init",    "curl_easy_reset",
        "curl_easy_setopt",   "curl_easy_perform", "curl_easy_getinfo",
        "curl_easy_strerror", "curl_easy_cleanup",
    };
    void **slots[] = {
        (void **) &pa_curl.global_init,   (void **) &pa_curl.easy_init,
        (void **) &pa_curl.easy_reset,    (void **) &pa_curl.easy_setopt,
        (void **) &pa_curl.easy_perform,  (void **) &pa_curl.easy_getinfo,
        (void **) &pa_curl.easy_strerror, (void **) &pa_curl.easy_cleanup,
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        *slots[i] = dlsym(lib, names[i]);
        if (!*slots[i]) {
            snprintf(pa_curl.error, sizeof pa_curl.error,
                     "not available: %s lacks %s", path, names[i]);
            dlclose(lib);
            return;
        }
    }
    if (pa_curl.global_init(CURL_GLOBAL_ALL) != CURLE_OK) {
        snprintf(pa_curl.error, sizeof pa_curl.error,
                 "not available: curl_global_init failed");
        dlclose(lib);
        return;
    }
    pa_curl.lib = lib;
}

struct pa_state {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_t thread;
    bool stop;
    long period_ms;
    struct dts_model *model;
    size_t n_ep;
    struct pa_endpoint *ep;
};

static void
pa_samples_free(struct pa_sample *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(s[i].name);
        free(s[i].help);
        free(s[i].labels);
    }
    free(s);
}

struct pa_body {
    struct dbuf buf;
    bool too_big;
};

static size_t
pa_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct pa_body *b = userdata;
    size_t n = size * nmemb;
    if (b->buf.len + n > PA_MAX_BODY) {
        b->too_big = true;
        return 0; /* aborts the transfer */
    }
    dbuf_append(&b->buf, ptr, n);
    return n;
}

struct pa_collect {
    size_t n, cap;
    struct pa_sample *s;
};

/* Rename a scraped `source` label so ours stays unique. */
static char *
pa_rename_source(const char *labels)
{
    if (strncmp(labels, "source=", 7) != 0 && !strstr(labels, ",source=")) {
        return xstrdup(labels);
    }
    struct dbuf b;
    dbuf_init(&b);
    const char *p = labels;
    bool at_start = true;
    while (*p) {
        if (at_start && !strncmp(p, "source=", 7)) {
            dbuf_puts(&b, "exported_");
        }
        at_start = false;
        if (*p == '"') {
            /* Copy the quoted value verbatim (it may contain commas). */
            dbuf_append(&b, p, 1);
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1]) {
                    dbuf_append(&b, p, 2);
                    p += 2;
                } else {
                    dbuf_append(&b, p, 1);
                    p++;
                }
            }
            if (*p) {
                dbuf_append(&b, p, 1);
                p++;
            }
            continue;
        }
        dbuf_append(&b, p, 1);
        at_start = *p == ',';
        p++;
    }
    return dbuf_steal(&b, NULL);
}

static void
pa_on_sample(void *arg, const struct dts_promtext_sample *s)
{
    struct pa_collect *c = arg;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->s = xrealloc(c->s, c->cap * sizeof *c->s);
    }
    struct pa_sample *d = &c->s[c->n++];
    d->name = xstrdup(s->name);
    d->help = xstrdup(s->help ? s->help : "Re-exported by prometheus_aggr.");
    if (s->type == DTS_PT_COUNTER && str_has_suffix(s->name, "_total")) {
        d->type = DTS_COUNTER;
    } else if (s->type == DTS_PT_GAUGE) {
        d->type = DTS_GAUGE;
    } else {
        d->type = DTS_UNTYPED;
    }
    d->labels = pa_rename_source(s->labels);
    d->value = s->value;
}

/* Scrape one endpoint (worker thread, no lock held). */
static void
pa_scrape(struct pa_state *st, size_t idx, CURL *curl)
{
    char *url;
    long timeout_ms;
    pthread_mutex_lock(&st->lock);
    url = xstrdup(st->ep[idx].url);
    timeout_ms = DPF_MIN(st->period_ms, 10000);
    pthread_mutex_unlock(&st->lock);
    if (timeout_ms < 200) {
        timeout_ms = 200;
    }
    struct pa_body body;
    dbuf_init(&body.buf);
    body.too_big = false;
    pa_curl.easy_reset(curl);
    pa_curl.easy_setopt(curl, CURLOPT_URL, url);
    pa_curl.easy_setopt(curl, CURLOPT_WRITEFUNCTION, pa_write);
    pa_curl.easy_setopt(curl, CURLOPT_WRITEDATA, &body);
    pa_curl.easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
    pa_curl.easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                        DPF_MIN(timeout_ms, 2000));
    pa_curl.easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    pa_curl.easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http");
    pa_curl.easy_setopt(curl, CURLOPT_USERAGENT, "dts-prometheus-aggr");
    pa_curl.easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
    int64_t t0 = time_mono_ns();
    CURLcode cc = pa_curl.easy_perform(curl);
    double dur = (double) (time_mono_ns() - t0) / 1e9;
    long status = 0;
    pa_curl.easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    struct pa_collect col = {0};
    struct dpf_error err;
    dpf_error_clear(&err);
    char reason[1200] = "";
    if (cc != CURLE_OK) {
        snprintf(reason, sizeof reason, "%s",
                 body.too_big ? "body over 16 MiB" : pa_curl.easy_strerror(cc));
    } else if (status != 200) {
        snprintf(reason, sizeof reason, "HTTP status %ld", status);
    } else if (dts_promtext_parse(body.buf.data ? body.buf.data : "",
                                  body.buf.len, PA_MAX_SAMPLES, pa_on_sample,
                                  &col, &err) < 0) {
        snprintf(reason, sizeof reason, "not Prometheus text: %s", err.message);
    }
    dbuf_free(&body.buf);
    bool ok = reason[0] == '\0';
    pthread_mutex_lock(&st->lock);
    struct pa_endpoint *ep = &st->ep[idx];
    pa_samples_free(ep->samples, ep->n);
    ep->samples = ok ? col.s : NULL;
    ep->n = ok ? col.n : 0;
    ep->up = ok;
    ep->duration = dur;
    char *source = xstrdup(ep->source);
    pthread_mutex_unlock(&st->lock);
    if (!ok) {
        pa_samples_free(col.s, col.n);
        dts_model_error_inc(st->model, "prometheus_aggr", "source", source);
        log_warn_rl("scrape failed", "url=%s reason=\"%s\"", url, reason);
    }
    free(source);
    free(url);
}

static void *
pa_thread(void *arg)
{
    struct pa_state *st = arg;
    CURL *curl = pa_curl.easy_init();
    pthread_mutex_lock(&st->lock);
    while (!st->stop) {
        size_t n = st->n_ep;
        pthread_mutex_unlock(&st->lock);
        for (size_t i = 0; i < n && curl; i++) {
            pa_scrape(st, i, curl);
        }
        pthread_mutex_lock(&st->lock);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += st->period_ms / 1000;
        ts.tv_nsec += (st->period_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!st->stop &&
               pthread_cond_timedwait(&st->cond, &st->lock, &ts) == 0) {
        }
    }
    pthread_mutex_unlock(&st->lock);
    if (curl) {
        pa_curl.easy_cleanup(curl);
    }
    return NULL;
}

/* host:port of an http:// URL, plus the path when it is not /metrics
 * (so two endpoints on one port stay apart). */
static char *
pa_source(const char *url)
{
    const char *p = url;
    if (str_has_prefix(p, "http://")) {
        p += 7;
    }
    size_t n = strcspn(p, "/?#");
    if (!p[n] || !strcmp(p + n, "/") || !strcmp(p + n, "/metrics")) {
        return xstrndup(p, n);
    }
    return xstrdup(p);
}

static int
pa_init(const struct dts_provider_ctx *ctx, void **state, struct dpf_error *err)
{
    const struct dts_config *c = ctx->config;
    if (c->n_prom_aggr == 0) {
        dpf_error_set(err, 400, "Invalid",
                      "no endpoints: set prometheus-aggr-endpoints");
        return -EINVAL;
    }
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, pa_curl_load);
    if (!pa_curl.lib) {
        dpf_error_set(err, 404, "NotFound", "%s", pa_curl.error);
        return -ENOENT;
    }
    struct pa_state *st = xcalloc(1, sizeof *st);
    pthread_mutex_init(&st->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&st->cond, &ca);
    pthread_condattr_destroy(&ca);
    st->model = ctx->model;
    st->period_ms = c->update_ms;
    st->n_ep = c->n_prom_aggr;
    st->ep = xcalloc(st->n_ep, sizeof *st->ep);
    for (size_t i = 0; i < st->n_ep; i++) {
        st->ep[i].url = xstrdup(c->prom_aggr[i]);
        st->ep[i].source = pa_source(c->prom_aggr[i]);
        dts_model_error_declare(st->model, "prometheus_aggr", "source",
                                st->ep[i].source);
    }
    int rc = thread_start(&st->thread, NULL, "prom-aggr", pa_thread, st);
    if (rc != 0) {
        dpf_error_set(err, 500, "InternalError", "cannot start thread: %s",
                      strerror(-rc));
        for (size_t i = 0; i < st->n_ep; i++) {
            free(st->ep[i].url);
            free(st->ep[i].source);
        }
        free(st->ep);
        free(st);
        return -rc;
    }
    *state = st;
    return 0;
}

static int
pa_collect(void *state, struct dts_sink *sink)
{
    struct pa_state *st = state;
    pthread_mutex_lock(&st->lock);
    for (size_t i = 0; i < st->n_ep; i++) {
        const struct pa_endpoint *ep = &st->ep[i];
        const char *src[] = {"source", ep->source, NULL};
        for (size_t j = 0; j < ep->n; j++) {
            const struct pa_sample *s = &ep->samples[j];
            dts_sink_add_raw(sink, s->type, s->name, s->help, src, s->labels,
                             s->value);
        }
        dts_sink_add(sink, DTS_GAUGE, "dts_prometheus_aggr_up",
                     "1 if the last scrape of the endpoint succeeded.", src,
                     ep->up ? 1 : 0);
        dts_sink_add(
            sink, DTS_GAUGE, "dts_prometheus_aggr_scrape_duration_seconds",
            "Duration of the last scrape of the endpoint.", src, ep->duration);
    }
    pthread_mutex_unlock(&st->lock);
    return 0;
}

static void
pa_destroy(void *state)
{
    struct pa_state *st = state;
    pthread_mutex_lock(&st->lock);
    st->stop = true;
    pthread_cond_signal(&st->cond);
    pthread_mutex_unlock(&st->lock);
    pthread_join(st->thread, NULL);
    for (size_t i = 0; i < st->n_ep; i++) {
        free(st->ep[i].url);
        free(st->ep[i].source);
        pa_samples_free(st->ep[i].samples, st->ep[i].n);
    }
    free(st->ep);
    pthread_cond_destroy(&st->cond);
    pthread_mutex_destroy(&st->lock);
    free(st);
}

const struct dts_provider_ops dts_prov_prom_aggr_ops = {
    .name = "prometheus_aggr",
    .init = pa_init,
    .collect = pa_collect,
    .destroy = pa_destroy,
};
