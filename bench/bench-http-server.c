/* dpf-bench-http: figures for lib/http-server alone (never pass/fail).
 *
 *   dpf-bench-http [--threads N] [--clients N] [--seconds S]
 *                  [--streams N] [--events N]
 *
 * Starts an http_server on 127.0.0.1 port 0 (HTTPS with a fresh CA from
 * lib/pki, and plain HTTP), then
 *   1. requests/s and latency percentiles of small GETs from `clients`
 *      keep-alive libcurl handles, one per client thread;
 *   2. opens `streams` concurrent chunked streams over HTTPS (one libcurl
 *      multi loop), reports the process's thread count and RSS with all of
 *      them parked, then writes `events` lines to every stream from one
 *      thread and reports how long until every client had every line.
 * Client and server share the process (and the machine's cores), so the
 * request rate is a lower bound for the server. */
#include <curl/curl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lib/net/http-server.h"
#include "lib/net/pki.h"
#include "lib/base/util.h"

struct bench {
    unsigned threads;
    int clients;
    double seconds;
    int n_streams;
    int events;
    char dir[64];
    char base[64];
    bool tls;
    pthread_mutex_t mu;
    struct http_stream **streams;
    int opened;
    atomic_int closed;
};

static struct bench B = {
    .threads = 4,
    .clients = 2,
    .seconds = 3,
    .n_streams = 2000,
    .events = 20,
};

static void
on_close(void *arg)
{
    atomic_fetch_add(&B.closed, 1);
}

static void
handler(void *arg, struct http_request *req)
{
    if (strcmp(http_request_path(req), "/stream") == 0) {
        pthread_mutex_lock(&B.mu);
        if (B.opened < B.n_streams) {
            B.streams[B.opened] = http_respond_stream(
                req, 200, "application/json", on_close, NULL);
            B.opened++;
        } else {
            http_respond(req, 429, "text/plain", "no", 2);
        }
        pthread_mutex_unlock(&B.mu);
        return;
    }
    static const char body[] = "{\"kind\":\"Status\",\"status\":\"Success\"}";
    http_respond(req, 200, "application/json", body, sizeof(body) - 1);
}

static char *
pki_path(const char *name)
{
    return xasprintf("%s/%s", B.dir, name);
}

static size_t
discard(char *p, size_t size, size_t n, void *arg)
{
    if (arg) {
        *(size_t *) arg += size * n;
    }
    return size * n;
}

static CURL *
easy(const char *path, size_t *counter)
{
    CURL *c = curl_easy_init();
    char *url = xasprintf("%s%s", B.base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    free(url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, counter);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    if (B.tls) {
        char *ca = pki_path("ca.crt");
        curl_easy_setopt(c, CURLOPT_CAINFO, ca);
        free(ca);
    }
    return c;
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return (x > y) - (x < y);
}

struct client_result {
    int64_t *lat_ns;
    size_t n;
    size_t cap;
    int errors;
};

static void *
client_main(void *arg)
{
    struct client_result *res = arg;
    CURL *c = easy("/x", NULL);
    int64_t end = time_mono_ns() + (int64_t) (B.seconds * 1e9);
    while (time_mono_ns() < end) {
        int64_t t0 = time_mono_ns();
        long status = 0;
        if (curl_easy_perform(c) != CURLE_OK) {
            res->errors++;
            continue;
        }
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200) {
            res->errors++;
        }
        if (res->n == res->cap) {
            res->cap = res->cap ? 2 * res->cap : 4096;
            res->lat_ns = xrealloc(res->lat_ns, res->cap * sizeof(int64_t));
        }
        res->lat_ns[res->n++] = time_mono_ns() - t0;
    }
    curl_easy_cleanup(c);
    return NULL;
}

static void
bench_requests(void)
{
    pthread_t *t = xcalloc((size_t) B.clients, sizeof(*t));
    struct client_result *res = xcalloc((size_t) B.clients, sizeof(*res));
    for (int i = 0; i < B.clients; i++) {
        pthread_create(&t[i], NULL, client_main, &res[i]);
    }
    size_t total = 0;
    int errors = 0;
    for (int i = 0; i < B.clients; i++) {
        pthread_join(t[i], NULL);
        total += res[i].n;
        errors += res[i].errors;
    }
    int64_t *all = xcalloc(total ? total : 1, sizeof(*all));
    size_t k = 0;
    for (int i = 0; i < B.clients; i++) {
        memcpy(all + k, res[i].lat_ns, res[i].n * sizeof(int64_t));
        k += res[i].n;
        free(res[i].lat_ns);
    }
    qsort(all, total, sizeof(*all), cmp_i64);
    printf("%-5s GET keep-alive: clients=%d requests=%zu errors=%d "
           "rate=%.0f/s p50=%.0fus p99=%.0fus\n",
           B.tls ? "https" : "http", B.clients, total, errors,
           (double) total / B.seconds,
           total ? (double) all[total / 2] / 1e3 : 0.0,
           total ? (double) all[total * 99 / 100] / 1e3 : 0.0);
    free(all);
    free(res);
    free(t);
}

static long
status_field(const char *name)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(name);
    while (f && fgets(line, sizeof(line), f)) {
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    }
    if (f) {
        fclose(f);
    }
    return v;
}

static void
bench_streams(void)
{
    CURLM *m = curl_multi_init();
    CURL **e = xcalloc((size_t) B.n_streams, sizeof(*e));
    size_t *got = xcalloc((size_t) B.n_streams, sizeof(*got));
    long rss0 = status_field("VmRSS");
    int64_t t0 = time_mono_ns();
    for (int i = 0; i < B.n_streams; i++) {
        e[i] = easy("/stream", &got[i]);
        curl_multi_add_handle(m, e[i]);
    }
    int running = 1;
    for (;;) {
        curl_multi_perform(m, &running);
        pthread_mutex_lock(&B.mu);
        int opened = B.opened;
        pthread_mutex_unlock(&B.mu);
        if (opened == B.n_streams || !running) {
            break;
        }
        curl_multi_poll(m, NULL, 0, 10, NULL);
    }
    double open_s = (double) (time_mono_ns() - t0) / 1e9;
    printf("%s streams: open=%d in %.2fs; parked: threads=%ld "
           "(server pool %u) rss=%ld->%ld KiB\n",
           B.tls ? "https" : "http", B.opened, open_s, status_field("Threads"),
           B.threads, rss0, status_field("VmRSS"));

    char line[128];
    int len = snprintf(line, sizeof(line),
                       "{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"X\","
                       "\"rv\":\"%08d\"}}\n",
                       0);
    size_t want = (size_t) len * (size_t) B.events;
    t0 = time_mono_ns();
    for (int ev = 0; ev < B.events; ev++) {
        for (int i = 0; i < B.opened; i++) {
            http_stream_write(B.streams[i], line, (size_t) len);
        }
    }
    int done = 0;
    while (done < B.opened && running) {
        curl_multi_perform(m, &running);
        done = 0;
        for (int i = 0; i < B.opened; i++) {
            done += got[i] >= want;
        }
        if (done < B.opened) {
            curl_multi_poll(m, NULL, 0, 10, NULL);
        }
    }
    double fan_s = (double) (time_mono_ns() - t0) / 1e9;
    printf("%s streams: %d events x %d streams delivered in %.3fs "
           "(%.0f events/s)\n",
           B.tls ? "https" : "http", B.events, B.opened, fan_s,
           (double) B.events * B.opened / (fan_s > 0 ? fan_s : 1e-9));
    for (int i = 0; i < B.opened; i++) {
        http_stream_close(B.streams[i]);
    }
    while (running) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 10, NULL);
    }
    for (int i = 0; i < B.n_streams; i++) {
        curl_multi_remove_handle(m, e[i]);
        curl_easy_cleanup(e[i]);
    }
    curl_multi_cleanup(m);
    free(e);
    free(got);
}

static struct http_server *
start(bool tls)
{
    B.tls = tls;
    char *crt = pki_path("server.crt"), *key = pki_path("server.key");
    struct http_server_config cfg = {
        .address = "127.0.0.1",
        .threads = B.threads,
        .cert_file = tls ? crt : NULL,
        .key_file = tls ? key : NULL,
        .max_connections = (unsigned) B.n_streams + 100,
    };
    struct dpf_error err = {0};
    struct http_server *srv = http_server_create(&cfg, handler, NULL, &err);
    free(crt);
    free(key);
    if (!srv) {
        fprintf(stderr, "dpf-bench-http: %s\n", err.message);
        exit(1);
    }
    snprintf(B.base, sizeof(B.base), "%s://127.0.0.1:%u",
             tls ? "https" : "http", http_server_port(srv));
    return srv;
}

int
main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"threads", required_argument, NULL, 't'},
        {"clients", required_argument, NULL, 'c'},
        {"seconds", required_argument, NULL, 's'},
        {"streams", required_argument, NULL, 'w'},
        {"events", required_argument, NULL, 'e'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 't':
            B.threads = (unsigned) atoi(optarg);
            break;
        case 'c':
            B.clients = atoi(optarg);
            break;
        case 's':
            B.seconds = atof(optarg);
            break;
        case 'w':
            B.n_streams = atoi(optarg);
            break;
        case 'e':
            B.events = atoi(optarg);
            break;
        default:
            printf("usage: dpf-bench-http [--threads N] [--clients N] "
                   "[--seconds S] [--streams N] [--events N]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    curl_global_init(CURL_GLOBAL_ALL);
    pthread_mutex_init(&B.mu, NULL);
    B.streams = xcalloc((size_t) B.n_streams, sizeof(*B.streams));

    snprintf(B.dir, sizeof(B.dir), "/tmp/dpf-bench-http-XXXXXX");
    if (!mkdtemp(B.dir)) {
        perror("mkdtemp");
        return 1;
    }
    char *ca = pki_path("ca.crt"), *cakey = pki_path("ca.key");
    char *crt = pki_path("server.crt"), *key = pki_path("server.key");
    const char *sans[] = {"localhost", "127.0.0.1"};
    struct dpf_error err = {0};
    if (pki_ca_create(ca, cakey, "bench-ca", 2, &err) < 0 ||
        pki_issue_server(ca, cakey, crt, key, NULL, sans, 2, 2, &err) < 0) {
        fprintf(stderr, "dpf-bench-http: %s\n", err.message);
        return 1;
    }

    struct http_server *srv = start(false);
    bench_requests();
    http_server_destroy(srv);

    srv = start(true);
    bench_requests();
    bench_streams();
    http_server_destroy(srv);

    B.opened = 0;
    srv = start(false);
    bench_streams();
    http_server_destroy(srv);

    printf("streams closed (on_close calls): %d\n", atomic_load(&B.closed));
    unlink(ca);
    unlink(cakey);
    unlink(crt);
    unlink(key);
    rmdir(B.dir);
    free(ca);
    free(cakey);
    free(crt);
    free(key);
    free(B.streams);
    curl_global_cleanup();
    return 0;
}
