/* store-bench: write latency and throughput of a store, printed as figures.
 *
 *   store-bench [-u URL] [-n PRELOAD] [-t THREADS] [-c OPS_PER_THREAD]
 *               [-s VALUE_BYTES] [-m create|update] [-W WATCHERS] [-R] [-L]
 *   store-bench -e http://127.0.0.1:2379 ...   (etcd v3 JSON gateway, for
 *                                               comparison; puts)
 *
 * Preloads PRELOAD keys, then THREADS threads each run OPS_PER_THREAD
 * operations back to back and record each one's latency. Prints p50, p90,
 * p99, p99.9, max and the aggregate rate. -W attaches a watch cache with
 * that many watchers (drained by one thread), as the API server does. -R
 * then closes the store and times reopening it with each integrity check
 * (check=full, quick, off). -L times a list of every key (what
 * dpf-server's Event TTL sweep reads once a sample period, 1 min by
 * default). Not a test: it never fails on speed. Results
 * and commands go to docs/benchmarks.md and docs/dev/store.md. */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/store/store.h"
#include "lib/base/util.h"
#include "lib/store/watch-cache.h"

/* Benchmark parameters and shared state. */
struct bench {
    const char *url;  /* store URL */
    const char *etcd; /* etcd gateway base URL, or NULL */
    int preload;      /* keys written before measuring */
    int threads;      /* concurrent clients */
    int ops;          /* operations per client */
    int value_size;   /* approximate object size */
    bool update;      /* update preloaded keys instead of creating */
    struct store *s;  /* opened store (not with etcd) */
    char *value;      /* the object text */
    int64_t *lat;     /* threads * ops latencies (ns) */
    int failures;     /* operations that did not return 0 */
    pthread_mutex_t lock;
    int watchers;           /* -W */
    struct watch_cache *wc; /* with -W */
    struct watcher **w;     /* the watchers */
    atomic_int pending;     /* notifies not yet drained */
    atomic_bool stop;       /* ends the drain thread */
    int64_t delivered;      /* events pulled by all watchers */
    bool reopen;            /* -R: time reopening with each check */
    bool list;              /* -L: time a list of every key */
};

/* One client thread. */
struct client {
    struct bench *b;
    int id;
    int first, count; /* key range for preload */
    bool measure;     /* record latencies (else preload) */
    CURL *curl;       /* etcd only */
};

static int
mutate_replace(void *arg, const char *old, size_t old_len, int64_t old_rv,
               char **out, size_t *out_len)
{
    *out = xstrdup(arg);
    *out_len = strlen(*out);
    return 0;
}

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
    return size * n;
}

static char *
base64(const char *s)
{
    static const char tbl[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(s);
    char *out = xmalloc(4 * ((n + 2) / 3) + 1), *o = out;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t) (unsigned char) s[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t) (unsigned char) s[i + 1] << 8;
        }
        if (i + 2 < n) {
            v |= (unsigned char) s[i + 2];
        }
        *o++ = tbl[(v >> 18) & 63];
        *o++ = tbl[(v >> 12) & 63];
        *o++ = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        *o++ = i + 2 < n ? tbl[v & 63] : '=';
    }
    *o = 0;
    return out;
}

static int
etcd_put(struct client *c, const char *key, const char *b64value)
{
    char *k = base64(key);
    char *body = xasprintf("{\"key\":\"%s\",\"value\":\"%s\"}", k, b64value);
    char *url = xasprintf("%s/v3/kv/put", c->b->etcd);
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, body);
    CURLcode rc = curl_easy_perform(c->curl);
    long code = 0;
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &code);
    free(k);
    free(body);
    free(url);
    return rc == CURLE_OK && code == 200 ? 0 : -EIO;
}

static void *
client_main(void *arg)
{
    struct client *c = arg;
    struct bench *b = c->b;
    char *b64 = b->etcd ? base64(b->value) : NULL;
    if (b->etcd) {
        c->curl = curl_easy_init();
        curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, discard);
    }
    int fails = 0;
    for (int i = 0; i < c->count; i++) {
        char key[96];
        int n = c->measure ? c->id * b->ops + i : c->first + i;
        if (c->measure && !b->update) {
            snprintf(key, sizeof key, "/bench/things/ns/new-%d-%07d", c->id, i);
        } else {
            snprintf(key, sizeof key, "/bench/things/ns/obj-%07d",
                     c->measure ? (int) ((int64_t) n * 7919 % b->preload) : n);
        }
        int64_t t0 = time_mono_ns(), rv;
        int rc;
        if (b->etcd) {
            rc = etcd_put(c, key, b64);
        } else if (c->measure && b->update) {
            rc = store_update(b->s, key, mutate_replace, b->value, &rv, NULL);
        } else {
            rc = store_create(b->s, key, b->value, strlen(b->value), &rv, NULL);
        }
        if (c->measure) {
            b->lat[(size_t) c->id * (size_t) b->ops + (size_t) i] =
                time_mono_ns() - t0;
        }
        fails += rc != 0;
    }
    pthread_mutex_lock(&b->lock);
    b->failures += fails;
    pthread_mutex_unlock(&b->lock);
    if (c->curl) {
        curl_easy_cleanup(c->curl);
    }
    free(b64);
    return NULL;
}

static void
watch_notify(void *arg)
{
    struct bench *b = arg;
    atomic_fetch_add(&b->pending, 1);
}

/* Pulls every watcher whenever something was notified (polls at 1 kHz
 * otherwise; this is a benchmark, not the server's loop). */
static void *
drain_main(void *arg)
{
    struct bench *b = arg;
    while (!atomic_load(&b->stop) || atomic_load(&b->pending)) {
        if (!atomic_exchange(&b->pending, 0)) {
            usleep(1000);
            continue;
        }
        for (int i = 0; i < b->watchers; i++) {
            struct watch_event *ev;
            while (watch_cache_next(b->w[i], &ev) == 1) {
                b->delivered++;
                watch_event_release(ev);
            }
        }
    }
    return NULL;
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

static double
pct(const int64_t *v, size_t n, double p)
{
    size_t i = (size_t) (p / 100.0 * (double) (n - 1) + 0.5);
    return (double) v[i] / 1e6;
}

static void
run_phase(struct bench *b, bool measure, int total)
{
    pthread_t th[256];
    struct client cl[256];
    int per = (total + b->threads - 1) / b->threads;
    for (int i = 0; i < b->threads; i++) {
        cl[i] = (struct client){.b = b, .id = i, .measure = measure};
        cl[i].first = i * per;
        cl[i].count = measure ? b->ops : DPF_MIN(per, total - i * per);
        if (cl[i].count < 0) {
            cl[i].count = 0;
        }
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    }
    for (int i = 0; i < b->threads; i++) {
        pthread_join(th[i], NULL);
    }
}

/* Time store_open() of the store just written, with each integrity check
 * (the page cache is warm: the figures are the CPU cost; a cold start adds
 * reading the whole file). */
static void
reopen_times(const char *url)
{
    static const char *const checks[] = {"full", "quick", "off"};
    for (size_t i = 0; i < ARRAY_SIZE(checks); i++) {
        char *u = xasprintf("%s%scheck=%s", url, strchr(url, '?') ? "&" : "?",
                            checks[i]);
        struct dpf_error err = {0};
        int64_t t0 = time_mono_ns();
        struct store *s = store_open(u, NULL, &err);
        int64_t t1 = time_mono_ns();
        if (!s) {
            fprintf(stderr, "store-bench: reopen: %s\n", err.message);
        } else {
            printf("reopen check=%s: %.3f s (%" PRId64 " keys)\n", checks[i],
                   (t1 - t0) / 1e9, store_count(s, ""));
            store_close(s);
        }
        free(u);
    }
}

/* What the list of -L saw. */
struct list_count {
    int64_t keys, bytes, old; /* old: mod_rv at most half the revision */
    int64_t half;
};

static int
list_count_each(void *arg, const struct store_kv *kv)
{
    struct list_count *c = arg;
    c->keys++;
    c->bytes += (int64_t) kv->len;
    c->old += kv->rv <= c->half;
    return 0;
}

/* Time one list of every key, testing each one's revision as the Event
 * TTL sweep does. */
static void
list_time(struct store *s)
{
    struct list_count c = {.half = store_current_rv(s) / 2};
    struct dpf_error err = {0};
    int64_t t0 = time_mono_ns();
    int r = store_list(s, "/bench/", NULL, 0, list_count_each, &c, NULL, NULL,
                       &err);
    int64_t t1 = time_mono_ns();
    if (r < 0) {
        fprintf(stderr, "store-bench: list: %s\n", err.message);
        return;
    }
    printf("list: %" PRId64 " keys, %.1f MB of values in %.3f s (%" PRId64
           " with mod_rv <= %" PRId64 ")\n",
           c.keys, c.bytes / 1e6, (t1 - t0) / 1e9, c.old, c.half);
}

int
main(int argc, char **argv)
{
    struct bench b = {
        .preload = 100000,
        .threads = 16,
        .ops = 2000,
        .value_size = 1000,
        .lock = PTHREAD_MUTEX_INITIALIZER,
    };
    int opt;
    while ((opt = getopt(argc, argv, "u:e:n:t:c:s:m:W:RLh")) != -1) {
        switch (opt) {
        case 'u':
            b.url = optarg;
            break;
        case 'e':
            b.etcd = optarg;
            break;
        case 'n':
            b.preload = atoi(optarg);
            break;
        case 't':
            b.threads = DPF_MAX(1, DPF_MIN(256, atoi(optarg)));
            break;
        case 'c':
            b.ops = atoi(optarg);
            break;
        case 's':
            b.value_size = atoi(optarg);
            break;
        case 'm':
            b.update = !strcmp(optarg, "update");
            break;
        case 'W':
            b.watchers = atoi(optarg);
            break;
        case 'R':
            b.reopen = true;
            break;
        case 'L':
            b.list = true;
            break;
        default:
            fprintf(stderr,
                    "usage: store-bench [-u URL | -e ETCD_URL] [-n PRELOAD] "
                    "[-t THREADS] [-c OPS] [-s BYTES] [-m create|update] "
                    "[-W WATCHERS] [-R] [-L]\n");
            return opt == 'h' ? 0 : 2;
        }
    }
    char dir[] = "/tmp/dpf-store-bench-XXXXXX";
    char *url = NULL;
    if (!b.etcd && !b.url) {
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            return 1;
        }
        url = xasprintf("sqlite:%s/bench.db", dir);
        b.url = url;
    }
    struct dbuf v;
    dbuf_init(&v);
    dbuf_puts(&v,
              "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":"
              "{\"name\":\"bench\",\"namespace\":\"ns\",\"uid\":"
              "\"6f1c2a8e-8d2b-4f57-9a51-0f6c1d2e3b4a\"},\"data\":{\"x\":\"");
    while ((int) v.len < b.value_size - 3) {
        dbuf_puts(&v, "abcdefghij");
    }
    dbuf_puts(&v, "\"}}");
    b.value = v.data;
    if (b.etcd) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
    } else {
        struct dpf_error err = {0};
        struct store_options so = {.create = true};
        b.s = store_open(b.url, &so, &err);
        if (!b.s) {
            fprintf(stderr, "store-bench: %s\n", err.message);
            return 1;
        }
    }
    pthread_t drain;
    if (b.watchers > 0 && b.s) {
        b.wc = watch_cache_create(100000, store_current_rv(b.s));
        store_set_event_hook(b.s, watch_cache_store_hook, b.wc);
        b.w = xcalloc((size_t) b.watchers, sizeof *b.w);
        for (int i = 0; i < b.watchers; i++) {
            b.w[i] = watch_cache_subscribe(b.wc, "/bench/", 0, watch_notify, &b,
                                           NULL);
        }
        pthread_create(&drain, NULL, drain_main, &b);
    }
    int64_t t0 = time_mono_ns();
    run_phase(&b, false, b.preload);
    int64_t t1 = time_mono_ns();
    printf("preload: %d keys in %.2f s (%.0f writes/s)\n", b.preload,
           (t1 - t0) / 1e9, b.preload / ((t1 - t0) / 1e9));
    b.failures = 0;
    size_t n = (size_t) b.threads * (size_t) b.ops;
    b.lat = xcalloc(n, sizeof *b.lat);
    t0 = time_mono_ns();
    run_phase(&b, true, 0);
    t1 = time_mono_ns();
    qsort(b.lat, n, sizeof *b.lat, cmp_i64);
    printf("%s %s: %d threads x %d ops, %d-byte objects, %d preloaded\n",
           b.etcd ? b.etcd : b.url, b.update ? "update" : "create", b.threads,
           b.ops, (int) strlen(b.value), b.preload);
    printf("  throughput %.0f ops/s, failures %d\n", n / ((t1 - t0) / 1e9),
           b.failures);
    printf("  latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max "
           "%.3f\n",
           pct(b.lat, n, 50), pct(b.lat, n, 90), pct(b.lat, n, 99),
           pct(b.lat, n, 99.9), (double) b.lat[n - 1] / 1e6);
    if (b.wc) {
        atomic_store(&b.stop, true);
        pthread_join(drain, NULL);
        printf("  watch: %d watchers, %" PRId64 " events delivered\n",
               b.watchers, b.delivered);
        for (int i = 0; i < b.watchers; i++) {
            watch_cache_unsubscribe(b.w[i]);
        }
        free(b.w);
    }
    if (b.list && b.s) {
        list_time(b.s);
    }
    if (b.s) {
        store_close(b.s);
    }
    if (b.reopen && b.s) {
        reopen_times(b.url);
    }
    watch_cache_destroy(b.wc);
    if (url) {
        char *cmd = xasprintf("rm -rf '%s'", dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "store-bench: could not remove %s\n", dir);
        }
        free(cmd);
        free(url);
    }
    free(b.lat);
    free(b.value);
    return 0;
}
