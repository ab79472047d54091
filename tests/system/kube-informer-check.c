/* kube-informer-check: drive an informer through a storm of ConfigMap
 * writes and check that its cache ends up exactly equal to the server.
 *
 * Run by tests/system/test_informer.py against a dpf-server started with a
 * small --watch-cache-size. The program:
 *   1. starts an informer on the ConfigMaps of one namespace on its own
 *      loop thread (short watch timeouts, so it re-watches often), with
 *      handlers that keep a mirror of the events they were given;
 *   2. creates --initial ConfigMaps, then performs --ops random creates,
 *      updates (merge patches) and deletes, from --writers threads on a
 *      second client (a second loop, so a stalled informer does not stall
 *      the writers);
 *   3. midway, stalls the informer's loop thread until its watch has
 *      timed out on the server and --stall-events more writes went by,
 *      so that the resume point has left the server's watch cache and the
 *      informer must get a 410 Gone and list again;
 *   4. writes a sentinel object and waits until the informer has it;
 *   5. compares the cache with a fresh list (names, resourceVersions,
 *      data) and with the handlers' mirror, prints every difference and
 *      the informer's counters, and exits 1 on any difference.
 * Exit codes: 0 equal, 1 different, 2 usage or setup error, 3 a write
 * failed, 4 timeout waiting for the informer. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/kube/informer.h"
#include "lib/kube/kube-rest.h"
#include "lib/kube/kubeconfig.h"
#include "lib/base/loop.h"
#include "lib/base/util.h"

static const struct kube_gvr configmaps = {"", "v1", "configmaps", true};

struct opts {
    const char *kubeconfig;
    const char *ns;
    long initial;
    long ops;
    long writers;
    long names;
    long watch_timeout_s;
    long stall_events;
    long page_size;
    unsigned seed;
};

/* A loop on its own thread. */
struct loop_thread {
    struct loop *loop;
    pthread_t thread;
};

static void *
loop_main(void *arg)
{
    loop_run(arg);
    return NULL;
}

/* --- the informer side --- */

struct mirror {
    pthread_mutex_t mu;
    json_t *objs;   /* key -> object, as the handlers saw them */
    long anomalies; /* add of a known key, update/delete of unknown */
    long adds, updates, deletes;
};

static void
mirror_note(struct mirror *m, const char *what, const char *key)
{
    if (m->anomalies++ < 10) {
        fprintf(stderr, "handler anomaly: %s %s\n", what, key);
    }
}

static void
on_add(void *arg, const json_t *obj)
{
    struct mirror *m = arg;
    char *key = kube_cache_key(obj);
    pthread_mutex_lock(&m->mu);
    m->adds++;
    if (json_object_get(m->objs, key)) {
        mirror_note(m, "add of a key already known", key);
    }
    json_object_set(m->objs, key, (json_t *) obj);
    pthread_mutex_unlock(&m->mu);
    free(key);
}

static void
on_update(void *arg, const json_t *old_obj, const json_t *obj)
{
    struct mirror *m = arg;
    char *key = kube_cache_key(obj);
    pthread_mutex_lock(&m->mu);
    m->updates++;
    if (!json_object_get(m->objs, key)) {
        mirror_note(m, "update of an unknown key", key);
    }
    json_object_set(m->objs, key, (json_t *) obj);
    pthread_mutex_unlock(&m->mu);
    free(key);
}

static void
on_delete(void *arg, const json_t *obj)
{
    struct mirror *m = arg;
    char *key = kube_cache_key(obj);
    pthread_mutex_lock(&m->mu);
    m->deletes++;
    if (!json_object_get(m->objs, key)) {
        mirror_note(m, "delete of an unknown key", key);
    }
    json_object_del(m->objs, key);
    pthread_mutex_unlock(&m->mu);
    free(key);
}

/* The stall: a closure that blocks the informer's loop thread. */
struct stall {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started, released;
};

static void
stall_run(void *arg)
{
    struct stall *s = arg;
    pthread_mutex_lock(&s->mu);
    s->started = true;
    pthread_cond_broadcast(&s->cv);
    while (!s->released) {
        pthread_cond_wait(&s->cv, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
}

/* --- the writers --- */

struct writer {
    const struct opts *o;
    struct kube_rest *rest;
    long index;
    long ops_initial, ops_random;
    unsigned rng;
    unsigned char *exists; /* by name number */
    pthread_t thread;
};

static atomic_long writes_done;
static atomic_int write_failed;

static int
write_one(struct writer *w, const char *method, long n, json_t *body,
          const char *ctype)
{
    char name[32];
    snprintf(name, sizeof name, "cm-%06ld", n);
    char *path = strcmp(method, "POST") == 0
                     ? kube_path(&configmaps, w->o->ns, NULL, NULL)
                     : kube_path(&configmaps, w->o->ns, name, NULL);
    struct dpf_error err = {0};
    int rc = kube_rest_json_wait(w->rest, method, path, NULL, body, ctype, NULL,
                                 &err);
    free(path);
    json_decref(body);
    if (rc != 0) {
        fprintf(stderr, "write failed: %s %s: %s\n", method, name, err.message);
        atomic_store(&write_failed, 1);
        return -1;
    }
    atomic_fetch_add(&writes_done, 1);
    return 0;
}

static json_t *
cm_body(long n, long version)
{
    char name[32], v[32];
    snprintf(name, sizeof name, "cm-%06ld", n);
    snprintf(v, sizeof v, "%ld", version);
    return json_pack("{s:s,s:s,s:{s:s},s:{s:s,s:s}}", "apiVersion", "v1",
                     "kind", "ConfigMap", "metadata", "name", name, "data", "v",
                     v, "name", name);
}

static void *
writer_main(void *arg)
{
    struct writer *w = arg;
    long stride = w->o->writers;
    /* phase 1: creates (names index, index + stride, ...) */
    long n = w->index;
    for (long i = 0; i < w->ops_initial && !atomic_load(&write_failed); i++) {
        if (write_one(w, "POST", n, cm_body(n, 0), NULL) < 0) {
            return NULL;
        }
        w->exists[n] = 1;
        n += stride;
    }
    /* phase 2: random creates, updates and deletes on this writer's
     * names, so no two writers race on one object */
    long mine = (w->o->names - w->index + stride - 1) / stride;
    for (long i = 0; i < w->ops_random && !atomic_load(&write_failed); i++) {
        long k = w->index + (long) (rand_r(&w->rng) % (unsigned) mine) * stride;
        int r;
        if (!w->exists[k]) {
            r = write_one(w, "POST", k, cm_body(k, i), NULL);
            w->exists[k] = 1;
        } else if (rand_r(&w->rng) % 2) {
            char v[32];
            snprintf(v, sizeof v, "%ld", i);
            r = write_one(w, "PATCH", k, json_pack("{s:{s:s}}", "data", "v", v),
                          "application/merge-patch+json");
        } else {
            r = write_one(w, "DELETE", k, NULL, NULL);
            w->exists[k] = 0;
        }
        if (r < 0) {
            return NULL;
        }
    }
    return NULL;
}

/* --- comparison --- */

static const char *
rv_of(const json_t *o)
{
    const char *rv = json_string_value(
        json_object_get(json_object_get(o, "metadata"), "resourceVersion"));
    return rv ? rv : "";
}

/* Compare two key -> object maps; print differences; return how many. */
static long
compare(const char *what_a, json_t *a, const char *what_b, json_t *b)
{
    long diffs = 0;
    const char *key;
    json_t *oa;
    json_object_foreach(a, key, oa)
    {
        json_t *ob = json_object_get(b, key);
        if (!ob) {
            if (diffs++ < 20) {
                printf("diff: %s only in %s (rv %s)\n", key, what_a, rv_of(oa));
            }
        } else if (strcmp(rv_of(oa), rv_of(ob)) != 0 ||
                   !json_equal(json_object_get(oa, "data"),
                               json_object_get(ob, "data"))) {
            if (diffs++ < 20) {
                printf("diff: %s: %s has rv %s, %s has rv %s\n", key, what_a,
                       rv_of(oa), what_b, rv_of(ob));
            }
        }
    }
    json_object_foreach(b, key, oa)
    {
        if (!json_object_get(a, key) && diffs++ < 20) {
            printf("diff: %s only in %s (rv %s)\n", key, what_b, rv_of(oa));
        }
    }
    return diffs;
}

static json_t *
by_key(json_t *arr)
{
    json_t *m = json_object();
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        char *k = kube_cache_key(o);
        if (k) {
            json_object_set(m, k, o);
        }
        free(k);
    }
    return m;
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: kube-informer-check --kubeconfig PATH [--namespace NS]\n"
            "  [--initial N] [--ops N] [--writers N] [--names N]\n"
            "  [--watch-timeout S] [--stall-events N] [--page-size N]\n"
            "  [--seed N]\n");
}

static void
start_informer(void *arg)
{
    informer_start(arg);
}

static void
stop_informer(void *arg)
{
    informer_stop(arg);
}

int
main(int argc, char **argv)
{
    struct opts o = {.ns = "default",
                     .initial = 10000,
                     .ops = 20000,
                     .writers = 4,
                     .names = 15000,
                     .watch_timeout_s = 2,
                     .stall_events = 0,
                     .page_size = 500,
                     .seed = 1};
    static const struct option lo[] = {
        {"kubeconfig", required_argument, NULL, 'k'},
        {"namespace", required_argument, NULL, 'n'},
        {"initial", required_argument, NULL, 'i'},
        {"ops", required_argument, NULL, 'o'},
        {"writers", required_argument, NULL, 'w'},
        {"names", required_argument, NULL, 'N'},
        {"watch-timeout", required_argument, NULL, 't'},
        {"stall-events", required_argument, NULL, 's'},
        {"page-size", required_argument, NULL, 'p'},
        {"seed", required_argument, NULL, 'S'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'k':
            o.kubeconfig = optarg;
            break;
        case 'n':
            o.ns = optarg;
            break;
        case 'i':
            o.initial = atol(optarg);
            break;
        case 'o':
            o.ops = atol(optarg);
            break;
        case 'w':
            o.writers = atol(optarg);
            break;
        case 'N':
            o.names = atol(optarg);
            break;
        case 't':
            o.watch_timeout_s = atol(optarg);
            break;
        case 's':
            o.stall_events = atol(optarg);
            break;
        case 'p':
            o.page_size = atol(optarg);
            break;
        case 'S':
            o.seed = (unsigned) atol(optarg);
            break;
        default:
            usage();
            return 2;
        }
    }
    if (!o.kubeconfig || o.writers < 1 || o.writers > 64 ||
        o.names < o.initial || o.names < o.writers) {
        usage();
        return 2;
    }
    struct kubeconfig_options ko = {.path = o.kubeconfig};
    struct kubeconfig *kc = NULL;
    struct dpf_error err = {0};
    if (kubeconfig_load(&ko, &kc, &err) < 0) {
        fprintf(stderr, "kubeconfig: %s\n", err.message);
        return 2;
    }

    /* informer on its own loop thread */
    struct loop_thread inf_lt = {.loop = loop_create()};
    struct kube_rest *inf_rest = kube_rest_create(inf_lt.loop, kc, &err);
    /* writers' client on a second loop thread */
    struct loop_thread wr_lt = {.loop = loop_create()};
    struct kube_rest *wr_rest = kube_rest_create(wr_lt.loop, kc, &err);
    kubeconfig_free(kc);
    if (!inf_rest || !wr_rest) {
        fprintf(stderr, "client: %s\n", err.message);
        return 2;
    }
    struct informer_options io = {.gvr = configmaps,
                                  .namespace = o.ns,
                                  .page_size = o.page_size,
                                  .watch_timeout_s = o.watch_timeout_s};
    struct informer *inf = informer_create(inf_rest, &io);
    struct mirror mirror = {.objs = json_object()};
    pthread_mutex_init(&mirror.mu, NULL);
    struct informer_handlers h = {.on_add = on_add,
                                  .on_update = on_update,
                                  .on_delete = on_delete,
                                  .arg = &mirror};
    informer_add_handlers(inf, &h);
    loop_post(inf_lt.loop, start_informer, inf);
    pthread_create(&inf_lt.thread, NULL, loop_main, inf_lt.loop);
    pthread_create(&wr_lt.thread, NULL, loop_main, wr_lt.loop);
    if (informer_wait_synced(inf, 60000) < 0) {
        fprintf(stderr, "informer did not sync\n");
        return 4;
    }
    int64_t t0 = time_mono_ms();

    /* writers */
    struct writer *ws = xcalloc((size_t) o.writers, sizeof *ws);
    for (long i = 0; i < o.writers; i++) {
        ws[i].o = &o;
        ws[i].rest = wr_rest;
        ws[i].index = i;
        ws[i].ops_initial = o.initial / o.writers + (i < o.initial % o.writers);
        ws[i].ops_random = o.ops / o.writers + (i < o.ops % o.writers);
        ws[i].rng = o.seed * 7919u + (unsigned) i;
        ws[i].exists = xcalloc((size_t) o.names, 1);
        pthread_create(&ws[i].thread, NULL, writer_main, &ws[i]);
    }

    /* the stall, once the random phase begins */
    long stalled_events = 0;
    static struct stall stall; /* read by the loop thread after release */
    if (o.stall_events > 0) {
        while (atomic_load(&writes_done) < o.initial &&
               !atomic_load(&write_failed)) {
            usleep(20 * 1000);
        }
        pthread_mutex_init(&stall.mu, NULL);
        pthread_cond_init(&stall.cv, NULL);
        loop_post(inf_lt.loop, stall_run, &stall);
        pthread_mutex_lock(&stall.mu);
        while (!stall.started) {
            pthread_cond_wait(&stall.cv, &stall.mu);
        }
        pthread_mutex_unlock(&stall.mu);
        /* the current watch ends on the server within 2 * timeout */
        usleep((useconds_t) (2 * o.watch_timeout_s + 1) * 1000000);
        long from = atomic_load(&writes_done);
        long total = o.initial + o.ops;
        while (atomic_load(&writes_done) - from < o.stall_events &&
               atomic_load(&writes_done) < total &&
               !atomic_load(&write_failed)) {
            usleep(20 * 1000);
        }
        stalled_events = atomic_load(&writes_done) - from;
        pthread_mutex_lock(&stall.mu);
        stall.released = true;
        pthread_cond_broadcast(&stall.cv);
        pthread_mutex_unlock(&stall.mu);
    }
    for (long i = 0; i < o.writers; i++) {
        pthread_join(ws[i].thread, NULL);
        free(ws[i].exists);
    }
    free(ws);
    if (atomic_load(&write_failed)) {
        return 3;
    }
    int64_t t_writes = time_mono_ms() - t0;

    /* sentinel: the last write; wait until the informer has it */
    char *path = kube_path(&configmaps, o.ns, NULL, NULL);
    json_t *sent = NULL;
    json_t *body = json_pack("{s:s,s:s,s:{s:s},s:{s:s}}", "apiVersion", "v1",
                             "kind", "ConfigMap", "metadata", "name",
                             "zz-sentinel", "data", "v", "end");
    if (kube_rest_json_wait(wr_rest, "POST", path, NULL, body, NULL, &sent,
                            &err) != 0) {
        fprintf(stderr, "sentinel: %s\n", err.message);
        return 3;
    }
    json_decref(body);
    char sentinel_rv[64];
    snprintf(sentinel_rv, sizeof sentinel_rv, "%s", rv_of(sent));
    json_decref(sent);
    int64_t deadline = time_mono_ms() + 180000;
    for (;;) {
        json_t *s =
            kube_cache_get_name(informer_cache(inf), o.ns, "zz-sentinel");
        bool seen = s && !strcmp(rv_of(s), sentinel_rv);
        json_decref(s);
        if (seen) {
            break;
        }
        if (time_mono_ms() > deadline) {
            fprintf(stderr,
                    "timeout: the informer never saw the sentinel "
                    "(rv %s)\n",
                    sentinel_rv);
            return 4;
        }
        usleep(20 * 1000);
    }
    int64_t t_caught_up = time_mono_ms() - t0;

    /* a fresh list (one unpaged GET: a consistent snapshot) */
    json_t *list = NULL;
    if (kube_rest_json_wait(wr_rest, "GET", path, NULL, NULL, NULL, &list,
                            &err) != 0) {
        fprintf(stderr, "list: %s\n", err.message);
        return 3;
    }
    free(path);
    json_t *server = by_key(json_object_get(list, "items"));
    json_t *cached_arr = kube_cache_list(informer_cache(inf));
    json_t *cached = by_key(cached_arr);
    json_decref(cached_arr);
    long diffs = compare("server", server, "cache", cached);
    pthread_mutex_lock(&mirror.mu);
    long mdiffs = compare("cache", cached, "handlers", mirror.objs);
    long anomalies = mirror.anomalies;
    printf("handlers: adds=%ld updates=%ld deletes=%ld anomalies=%ld\n",
           mirror.adds, mirror.updates, mirror.deletes, anomalies);
    pthread_mutex_unlock(&mirror.mu);

    struct informer_stats st;
    informer_stats(inf, &st);
    printf("writes: %ld in %lld ms (stall covered %ld writes); caught up "
           "after %lld ms\n",
           atomic_load(&writes_done), (long long) t_writes, stalled_events,
           (long long) t_caught_up);
    printf("informer: lists=%llu relists=%llu watches=%llu events=%llu "
           "errors=%llu\n",
           (unsigned long long) st.lists, (unsigned long long) st.relists,
           (unsigned long long) st.watches, (unsigned long long) st.events,
           (unsigned long long) st.errors);
    printf("result: server=%zu cache=%zu diffs=%ld handler_diffs=%ld\n",
           json_object_size(server), json_object_size(cached), diffs, mdiffs);

    loop_post(inf_lt.loop, stop_informer, inf);
    loop_stop(inf_lt.loop);
    loop_stop(wr_lt.loop);
    pthread_join(inf_lt.thread, NULL);
    pthread_join(wr_lt.thread, NULL);
    informer_destroy(inf);
    kube_rest_destroy(inf_rest);
    kube_rest_destroy(wr_rest);
    loop_destroy(inf_lt.loop);
    loop_destroy(wr_lt.loop);
    json_decref(server);
    json_decref(cached);
    json_decref(list);
    json_decref(mirror.objs);
    return diffs || mdiffs || anomalies ? 1 : 0;
}
