/* informer-bench: one side of the informer benchmark, and its loader.
 *
 *   informer-bench watch --kubeconfig PATH --namespace NS
 *   informer-bench load  --kubeconfig PATH --namespace NS
 *                        (--create N | --update N) [--objects N]
 *                        [--concurrency N] [--data-bytes N]
 *                        [--value-base N]
 *
 * watch runs one lib/kube informer on the ConfigMaps of NS, on the main
 * thread's event loop, with add/update/delete handlers that count events
 * and stamp the time of the first and last one (CLOCK_MONOTONIC, the clock
 * of bench/informer-bench.py and of Node's process.hrtime). It reads
 * commands from standard input, one per line, and answers each with one
 * JSON line on standard output:
 *   report TAG         the counters now;
 *   wait FIELD N TAG   the counters once FIELD (synced, adds, updates,
 *                      deletes, events) reaches N (synced: 1 once the
 *                      first list is in the cache);
 *   quit               exit.
 * bench/informer-node/informer.mjs speaks the same protocol with
 * @kubernetes/client-node's informer, so the driver treats both alike.
 *
 * load writes ConfigMaps named cm-000000.. with N requests in flight on one
 * loop (each its own keep-alive HTTPS connection): --create N creates
 * them, --update N sends N merge patches round-robin over --objects of
 * them, setting data.v to value-base + 1, + 2, ... (each storm passes a
 * new base: a patch that changes nothing makes no event). It prints one
 * JSON line: counts, the monotonic time the first request was sent and
 * the last reply arrived.
 *
 * A benchmark program: it prints figures and never judges them. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "lib/base/loop.h"
#include "lib/base/util.h"
#include "lib/kube/informer.h"
#include "lib/kube/kube-rest.h"
#include "lib/kube/kubeconfig.h"

static const struct kube_gvr configmaps = {"", "v1", "configmaps", true};

struct opts {
    const char *kubeconfig;
    const char *ns;
    long create;
    long update;
    long objects;
    long concurrency;
    long data_bytes;
    long value_base;
};

/* ---- watch ---- */

enum counter { C_SYNCED, C_ADDS, C_UPDATES, C_DELETES, C_EVENTS, C_N };
static const char *const counter_names[C_N] = {"synced", "adds", "updates",
                                               "deletes", "events"};

/* A wait command not yet answered. */
struct pending {
    enum counter field;
    long target;
    char tag[64];
};

struct watch_bench {
    struct loop *loop;
    struct informer *inf;
    long n[C_N];
    int64_t first_ns, last_ns; /* any event */
    int64_t last_add_ns;       /* last add */
    int64_t first_upd_ns;      /* first update */
    int64_t last_upd_ns;       /* last update */
    struct dbuf in;            /* partial command line */
    struct pending wait[16];   /* wait commands */
    size_t n_wait;
    struct loop_watch *stdin_w;
};

static void
stamp(struct watch_bench *b, enum counter c)
{
    int64_t now = time_mono_ns();
    b->n[c]++;
    b->n[C_EVENTS]++;
    if (!b->first_ns) {
        b->first_ns = now;
    }
    b->last_ns = now;
    if (c == C_ADDS) {
        b->last_add_ns = now;
    } else if (c == C_UPDATES) {
        if (!b->first_upd_ns) {
            b->first_upd_ns = now;
        }
        b->last_upd_ns = now;
    }
}

static void
on_add(void *arg, const json_t *obj)
{
    stamp(arg, C_ADDS);
}

static void
on_update(void *arg, const json_t *old_obj, const json_t *obj)
{
    stamp(arg, C_UPDATES);
}

static void
on_delete(void *arg, const json_t *obj)
{
    stamp(arg, C_DELETES);
}

/* A "Key:   N kB" field of /proc/self/status (0 if absent). */
static long
status_kb(const char *status, const char *key)
{
    const char *p = strstr(status, key);
    return p ? strtol(p + strlen(key), NULL, 10) : 0;
}

/* VmRSS, VmHWM and RssAnon (the process's private memory) in KiB. */
static void
self_memory(long *rss_kb, long *hwm_kb, long *anon_kb)
{
    char *data;
    size_t len;
    *rss_kb = *hwm_kb = *anon_kb = 0;
    if (file_read_all("/proc/self/status", &data, &len) < 0) {
        return;
    }
    *rss_kb = status_kb(data, "VmRSS:");
    *hwm_kb = status_kb(data, "VmHWM:");
    *anon_kb = status_kb(data, "RssAnon:");
    free(data);
}

static void
report(struct watch_bench *b, const char *tag)
{
    long rss, hwm, anon;
    self_memory(&rss, &hwm, &anon);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_ms = (double) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
                    (double) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
    struct informer_stats st;
    informer_stats(b->inf, &st);
    struct mallinfo2 mi = mallinfo2(); /* malloc'd bytes in use */
    json_t *o = json_pack(
        "{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
        "s:I,s:I,s:f,s:I,s:I}",
        "tag", tag, "impl", "dpf", "now_ns", (json_int_t) time_mono_ns(),
        "synced", (json_int_t) b->n[C_SYNCED], "adds",
        (json_int_t) b->n[C_ADDS], "updates", (json_int_t) b->n[C_UPDATES],
        "deletes", (json_int_t) b->n[C_DELETES], "events",
        (json_int_t) b->n[C_EVENTS], "cached",
        (json_int_t) kube_cache_len(informer_cache(b->inf)), "first_ns",
        (json_int_t) b->first_ns, "last_ns", (json_int_t) b->last_ns,
        "last_add_ns", (json_int_t) b->last_add_ns, "first_update_ns",
        (json_int_t) b->first_upd_ns, "last_update_ns",
        (json_int_t) b->last_upd_ns, "rss_kb", (json_int_t) rss, "hwm_kb",
        (json_int_t) hwm, "anon_kb", (json_int_t) anon, "heap_used_kb",
        (json_int_t) ((mi.uordblks + mi.hblkhd) / 1024), "cpu_ms", cpu_ms,
        "lists", (json_int_t) st.lists, "watches", (json_int_t) st.watches);
    char *text = json_dumps(o, JSON_COMPACT);
    printf("%s\n", text);
    free(text);
    json_decref(o);
    fflush(stdout);
}

/* Answer the waits that are due. */
static void
check_waits(struct watch_bench *b)
{
    b->n[C_SYNCED] = informer_has_synced(b->inf) ? 1 : 0;
    size_t kept = 0;
    for (size_t i = 0; i < b->n_wait; i++) {
        if (b->n[b->wait[i].field] >= b->wait[i].target) {
            report(b, b->wait[i].tag);
        } else {
            b->wait[kept++] = b->wait[i];
        }
    }
    b->n_wait = kept;
}

static void
on_tick(void *arg, struct loop_timer *t)
{
    check_waits(arg);
}

static void
command(struct watch_bench *b, char *line)
{
    char verb[16] = "", field[16] = "", tag[64] = "";
    long target = 0;
    int n = sscanf(line, "%15s %15s %ld %63s", verb, field, &target, tag);
    if (n >= 1 && !strcmp(verb, "quit")) {
        loop_stop(b->loop);
        return;
    }
    if (n >= 2 && !strcmp(verb, "report")) {
        b->n[C_SYNCED] = informer_has_synced(b->inf) ? 1 : 0;
        report(b, field);
        return;
    }
    if (n == 4 && !strcmp(verb, "wait") && b->n_wait < ARRAY_SIZE(b->wait)) {
        for (int c = 0; c < C_N; c++) {
            if (!strcmp(field, counter_names[c])) {
                struct pending *p = &b->wait[b->n_wait++];
                p->field = (enum counter) c;
                p->target = target;
                snprintf(p->tag, sizeof p->tag, "%s", tag);
                check_waits(b);
                return;
            }
        }
    }
    printf("{\"error\":\"bad command\"}\n");
    fflush(stdout);
}

static void
on_stdin(void *arg, int fd, uint32_t events)
{
    struct watch_bench *b = arg;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) {
        if (n < 0 && errno == EINTR) {
            return;
        }
        loop_stop(b->loop); /* the driver went away */
        return;
    }
    dbuf_append(&b->in, buf, (size_t) n);
    char *start = b->in.data;
    char *nl;
    while (
        (nl = memchr(start, '\n', b->in.len - (size_t) (start - b->in.data)))) {
        *nl = '\0';
        command(b, start);
        start = nl + 1;
    }
    size_t rest = b->in.len - (size_t) (start - b->in.data);
    memmove(b->in.data, start, rest);
    b->in.len = rest;
}

static int
run_watch(const struct opts *o, const struct kubeconfig *kc)
{
    struct watch_bench b = {.loop = loop_create()};
    struct dpf_error err = {0};
    struct kube_rest *rest = kube_rest_create(b.loop, kc, &err);
    if (!rest) {
        fprintf(stderr, "informer-bench: %s\n", err.message);
        return 2;
    }
    struct informer_options io = {.gvr = configmaps, .namespace = o->ns};
    b.inf = informer_create(rest, &io);
    struct informer_handlers h = {.on_add = on_add,
                                  .on_update = on_update,
                                  .on_delete = on_delete,
                                  .arg = &b};
    informer_add_handlers(b.inf, &h);
    dbuf_init(&b.in);
    b.stdin_w = loop_watch_fd(b.loop, 0, LOOP_READ, on_stdin, &b);
    /* waits are answered within 20 ms; the handlers stamp the exact times */
    struct loop_timer *tick = loop_timer_add(b.loop, 20, 20, on_tick, &b);
    informer_start(b.inf);
    loop_run(b.loop);
    loop_timer_cancel(tick);
    loop_watch_remove(b.stdin_w);
    informer_destroy(b.inf);
    kube_rest_destroy(rest);
    loop_destroy(b.loop);
    dbuf_free(&b.in);
    return 0;
}

/* ---- load ---- */

struct load_bench {
    const struct opts *o;
    struct loop *loop;
    struct kube_rest *rest;
    char *path;    /* collection path */
    char *payload; /* data.payload of every object */
    long total;    /* requests to make */
    long started;  /* requests sent */
    long done, errors;
    int64_t first_ns; /* first request sent */
    int64_t last_ns;  /* last reply */
    char first_error[256];
};

static void load_next(struct load_bench *l);

static void
on_load_done(void *arg, int rc, const struct kube_response *resp,
             const struct dpf_error *err)
{
    struct load_bench *l = arg;
    l->done++;
    l->last_ns = time_mono_ns();
    if (rc != 0) {
        if (l->errors++ == 0) {
            utf8_copy(l->first_error, sizeof l->first_error,
                      err && err->message[0] ? err->message : "error");
        }
    }
    if (l->done == l->total) {
        loop_stop(l->loop);
        return;
    }
    load_next(l);
}

static void
load_next(struct load_bench *l)
{
    if (l->started >= l->total) {
        return;
    }
    long i = l->started++;
    char name[32], *url, *body;
    struct kube_request req = {0};
    if (l->o->create) {
        snprintf(name, sizeof name, "cm-%06ld", i);
        body = xasprintf(
            "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":"
            "{\"name\":\"%s\",\"labels\":{\"app\":\"informer-bench\","
            "\"tier\":\"t%ld\",\"shard\":\"s%ld\"}},\"data\":{\"v\":\"0\","
            "\"payload\":\"%s\"}}",
            name, i % 10, i % 100, l->payload);
        url = xstrdup(l->path);
        req.method = "POST";
    } else {
        snprintf(name, sizeof name, "cm-%06ld", i % l->o->objects);
        /* a value no earlier patch set: a patch that changes nothing
         * makes no event */
        body =
            xasprintf("{\"data\":{\"v\":\"%ld\"}}", l->o->value_base + i + 1);
        url = xasprintf("%s/%s", l->path, name);
        req.method = "PATCH";
        req.content_type = "application/merge-patch+json";
    }
    req.path = url;
    req.body = body;
    req.body_len = strlen(body);
    req.timeout_ms = 120000;
    if (!l->first_ns) {
        l->first_ns = time_mono_ns();
    }
    kube_rest_send(l->rest, &req, on_load_done, l);
    free(url);
    free(body);
}

static void
load_start(void *arg)
{
    struct load_bench *l = arg;
    for (long i = 0; i < l->o->concurrency; i++) {
        load_next(l);
    }
}

static int
run_load(const struct opts *o, const struct kubeconfig *kc)
{
    struct load_bench l = {.o = o, .loop = loop_create()};
    struct dpf_error err = {0};
    l.rest = kube_rest_create(l.loop, kc, &err);
    if (!l.rest) {
        fprintf(stderr, "informer-bench: %s\n", err.message);
        return 2;
    }
    l.path = kube_path(&configmaps, o->ns, NULL, NULL);
    l.payload = xmalloc((size_t) o->data_bytes + 1);
    for (long i = 0; i < o->data_bytes; i++) {
        l.payload[i] = (char) ('a' + i % 26);
    }
    l.payload[o->data_bytes] = '\0';
    l.total = o->create ? o->create : o->update;
    if (l.total > 0) {
        loop_post(l.loop, load_start, &l);
        loop_run(l.loop);
    }
    double secs = (double) (l.last_ns - l.first_ns) / 1e9;
    json_t *out = json_pack(
        "{s:s,s:I,s:I,s:I,s:I,s:f,s:s}", "op", o->create ? "create" : "update",
        "requests", (json_int_t) l.done, "errors", (json_int_t) l.errors,
        "first_ns", (json_int_t) l.first_ns, "last_ns", (json_int_t) l.last_ns,
        "per_s", secs > 0 ? (double) l.done / secs : 0.0, "first_error",
        l.first_error);
    char *text = json_dumps(out, JSON_COMPACT);
    printf("%s\n", text);
    free(text);
    json_decref(out);
    kube_rest_destroy(l.rest);
    loop_destroy(l.loop);
    free(l.path);
    free(l.payload);
    return l.errors ? 3 : 0;
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: informer-bench watch --kubeconfig PATH --namespace NS\n"
            "       informer-bench load --kubeconfig PATH --namespace NS\n"
            "           (--create N | --update N) [--objects N]\n"
            "           [--concurrency N] [--data-bytes N] [--value-base N]\n");
}

int
main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "watch") && strcmp(argv[1], "load"))) {
        usage();
        return 2;
    }
    const char *mode = argv[1];
    struct opts o = {.concurrency = 32, .data_bytes = 512};
    static const struct option lo[] = {
        {"kubeconfig", required_argument, NULL, 'k'},
        {"namespace", required_argument, NULL, 'n'},
        {"create", required_argument, NULL, 'c'},
        {"update", required_argument, NULL, 'u'},
        {"objects", required_argument, NULL, 'o'},
        {"concurrency", required_argument, NULL, 'C'},
        {"data-bytes", required_argument, NULL, 'd'},
        {"value-base", required_argument, NULL, 'b'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'k':
            o.kubeconfig = optarg;
            break;
        case 'n':
            o.ns = optarg;
            break;
        case 'c':
            o.create = atol(optarg);
            break;
        case 'u':
            o.update = atol(optarg);
            break;
        case 'o':
            o.objects = atol(optarg);
            break;
        case 'C':
            o.concurrency = atol(optarg);
            break;
        case 'd':
            o.data_bytes = atol(optarg);
            break;
        case 'b':
            o.value_base = atol(optarg);
            break;
        default:
            usage();
            return 2;
        }
    }
    bool load = !strcmp(mode, "load");
    if (!o.kubeconfig || !o.ns || o.concurrency < 1 || o.data_bytes < 0 ||
        (load && (!o.create == !o.update || o.create < 0 || o.update < 0 ||
                  (o.update && o.objects < 1)))) {
        usage();
        return 2;
    }
    struct kubeconfig_options ko = {.path = o.kubeconfig};
    struct kubeconfig *kc = NULL;
    struct dpf_error err = {0};
    if (kubeconfig_load(&ko, &kc, &err) < 0) {
        fprintf(stderr, "informer-bench: kubeconfig: %s\n", err.message);
        return 2;
    }
    int rc = load ? run_load(&o, kc) : run_watch(&o, kc);
    kubeconfig_free(kc);
    return rc;
}
