/* dpf-bench: benchmark programs that print figures (never pass/fail).
 *
 *   dpf-bench api [options]
 *
 * Starts dpf-server on a fresh data directory and port 0, reads the admin
 * kubeconfig it writes, and drives it with N client threads over HTTPS
 * (libcurl, one keep-alive handle per thread, bearer token): fill to each
 * object count (create latency), random gets, updates (PUT with the
 * current resourceVersion), full lists of 10,000 objects, watch delivery
 * to many watchers, and the server's RSS. Then starts etcd (Debian's
 * etcd-server) and measures the same puts and gets with the same payload
 * bytes and client count through its JSON gateway, and prints both with
 * the ratios ours/etcd. */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/base/util.h"
#include "lib/codecs/yamljson.h"

#define DPU_PATH \
    "/apis/provisioning.dpu.nvidia.com/v1alpha1/namespaces/bench/dpus"
#define LIST_SIZE 10000

/* ---- options and results ---- */

struct opts {
    long objects[8];        /* ascending object counts */
    size_t n_objects;       /* entries in objects */
    int clients;            /* concurrent client threads */
    int watchers;           /* watch streams */
    int watch_updates;      /* updates made while watchers listen */
    double duration;        /* seconds per get/update phase */
    int list_reps;          /* full lists per measurement */
    const char *server_bin; /* dpf-server executable */
    const char *etcd_bin;   /* etcd executable */
    const char *server_arg; /* extra argument for dpf-server (or NULL) */
    const char *store_sync; /* sqlite sync mode for dpf-server (or NULL) */
    bool no_server;         /* skip our server */
    bool no_etcd;           /* skip etcd */
    bool json;              /* print JSON instead of the table */
    bool keep;              /* keep the temp directory */
    bool update_apply;      /* updates are server-side applies, not PUTs */
};

/* Latency summary of one phase. */
struct lat {
    long ops;        /* successful operations */
    long errors;     /* failed operations */
    double secs;     /* wall time of the phase */
    double p50_ms;   /* median latency */
    double p99_ms;   /* 99th percentile */
    double max_ms;   /* worst */
    char error[200]; /* first error seen, for the report */
};

/* Everything measured for one system at one object count. */
struct figures {
    long objects;          /* stored objects */
    bool valid;            /* measured */
    struct lat create;     /* fill phase */
    struct lat get;        /* random gets */
    struct lat update;     /* updates */
    struct lat list;       /* full lists of LIST_SIZE objects */
    long list_items;       /* items in the last list */
    double list_mb;        /* bytes of one list response */
    double watch_rate;     /* events per second across all watchers */
    long watch_delivered;  /* events received */
    long watch_expected;   /* watchers * updates */
    int watch_established; /* streams that got a 200 */
    double rss_mb;         /* VmRSS after fill (and phases) */
    double hwm_mb;         /* VmHWM */
};

static struct opts opt = {
    .clients = 16,
    .watchers = 1000,
    .watch_updates = 200,
    .duration = 10,
    .list_reps = 5,
    .etcd_bin = "etcd",
};

/* ---- child processes ---- */

struct child {
    pid_t pid;        /* 0 when not running */
    char *log_path;   /* stdout+stderr of the child */
    const char *what; /* "dpf-server" or "etcd" */
};

static int
child_start(struct child *c, char *const argv[], const char *log_path)
{
    c->log_path = xstrdup(log_path);
    pid_t pid = fork();
    if (pid < 0) {
        return -errno;
    }
    if (pid == 0) {
        FILE *f = freopen(log_path, "w", stdout);
        if (f) {
            dup2(fileno(stdout), 2);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    c->pid = pid;
    return 0;
}

static bool
child_alive(struct child *c)
{
    int st;
    if (c->pid <= 0) {
        return false;
    }
    if (waitpid(c->pid, &st, WNOHANG) == c->pid) {
        c->pid = 0;
        return false;
    }
    return true;
}

static void
child_stop(struct child *c)
{
    if (c->pid > 0) {
        kill(c->pid, SIGTERM);
        for (int i = 0; i < 200; i++) {
            if (!child_alive(c)) {
                break;
            }
            usleep(50000);
        }
        if (c->pid > 0) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, NULL, 0);
            c->pid = 0;
        }
    }
    free(c->log_path);
    c->log_path = NULL;
}

static void
child_dump_log(const struct child *c)
{
    char *data;
    size_t len;
    if (c->log_path && file_read_all(c->log_path, &data, &len) == 0) {
        size_t off = len > 3000 ? len - 3000 : 0;
        fprintf(stderr, "--- last lines of %s log ---\n%s\n", c->what,
                data + off);
        free(data);
    }
}

/* Memory of a process in MB from /proc/<pid>/status. */
static void
proc_rss(pid_t pid, double *rss_mb, double *hwm_mb)
{
    char path[64], *data;
    size_t len;
    *rss_mb = *hwm_mb = 0;
    snprintf(path, sizeof path, "/proc/%d/status", (int) pid);
    if (file_read_all(path, &data, &len) < 0) {
        return;
    }
    const char *p = strstr(data, "VmRSS:");
    if (p) {
        *rss_mb = strtod(p + 6, NULL) / 1024.0;
    }
    p = strstr(data, "VmHWM:");
    if (p) {
        *hwm_mb = strtod(p + 6, NULL) / 1024.0;
    }
    free(data);
}

static int
free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *) &sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *) &sa, &sl) == 0) {
        port = ntohs(sa.sin_port);
    }
    if (fd >= 0) {
        close(fd);
    }
    return port;
}

/* ---- HTTP client (one per thread) ---- */

struct client {
    CURL *h;                       /* keep-alive easy handle */
    struct curl_slist *hdrs;       /* auth + content type */
    struct curl_slist *apply_hdrs; /* the same for server-side apply */
    struct dbuf resp;              /* last response body */
    char *url;                     /* scratch URL buffer */
    uint64_t rng;                  /* xorshift state */
    int64_t *lat;                  /* latencies (ns) of this phase */
    size_t n_lat, cap_lat;         /* used / allocated */
    long errors;                   /* failed operations in this phase */
    char error[200];               /* first error */
    int id;                        /* thread index */
    struct phase *phase;           /* the phase this thread runs */
};

struct target;
struct phase;

/* What a benchmark target implements (our API server, etcd). */
struct target_ops {
    const char *name;
    /* Create object i (payload generation 0). 0 or -1. */
    int (*create)(struct target *, struct client *, long i);
    /* Read object i. */
    int (*get)(struct target *, struct client *, long i);
    /* Update object i to generation gen. */
    int (*update)(struct target *, struct client *, long i, long gen);
};

struct target {
    const struct target_ops *ops; /* operations */
    char *base;                   /* base URL */
    char *token;                  /* bearer token (server only) */
    char *ca_pem;                 /* CA certificate (server only) */
    size_t ca_len;                /* bytes in ca_pem */
    char (*rv)[24];               /* per-object resourceVersion (server) */
    long cap;                     /* objects rv has room for */
};

static size_t
curl_write(char *p, size_t size, size_t n, void *arg)
{
    dbuf_append(arg, p, size * n);
    return size * n;
}

static void
client_init(struct client *c, struct target *t, int id)
{
    memset(c, 0, sizeof *c);
    c->id = id;
    c->rng = 0x9E3779B97F4A7C15ull * (uint64_t) (id + 1);
    dbuf_init(&c->resp);
    c->h = curl_easy_init();
    curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, curl_write);
    curl_easy_setopt(c->h, CURLOPT_WRITEDATA, &c->resp);
    curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT, 60L);
    c->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    c->hdrs = curl_slist_append(c->hdrs, "Accept: application/json");
    c->hdrs = curl_slist_append(c->hdrs, "Expect:");
    c->apply_hdrs =
        curl_slist_append(NULL, "Content-Type: application/apply-patch+yaml");
    c->apply_hdrs =
        curl_slist_append(c->apply_hdrs, "Accept: application/json");
    c->apply_hdrs = curl_slist_append(c->apply_hdrs, "Expect:");
    if (t->token) {
        char *a = xasprintf("Authorization: Bearer %s", t->token);
        c->hdrs = curl_slist_append(c->hdrs, a);
        c->apply_hdrs = curl_slist_append(c->apply_hdrs, a);
        free(a);
    }
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->hdrs);
    if (t->ca_pem) {
        struct curl_blob blob = {
            .data = t->ca_pem, .len = t->ca_len, .flags = CURL_BLOB_COPY};
        curl_easy_setopt(c->h, CURLOPT_CAINFO_BLOB, &blob);
    }
}

static void
client_free(struct client *c)
{
    curl_easy_cleanup(c->h);
    curl_slist_free_all(c->hdrs);
    curl_slist_free_all(c->apply_hdrs);
    dbuf_free(&c->resp);
    free(c->url);
    free(c->lat);
}

static uint64_t
client_rand(struct client *c)
{
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return c->rng;
}

static void client_error(struct client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
client_error(struct client *c, const char *fmt, ...)
{
    c->errors++;
    if (!c->error[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->error, sizeof c->error, fmt, ap);
        va_end(ap);
    }
}

/* One request; returns the HTTP status or -1. The body is in c->resp. */
static long
client_do(struct client *c, const char *method, const char *url,
          const char *body, size_t body_len)
{
    c->resp.len = 0;
    if (c->resp.data) {
        c->resp.data[0] = '\0';
    }
    curl_easy_setopt(c->h, CURLOPT_URL, url);
    curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE, (long) body_len);
    } else {
        curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode rc = curl_easy_perform(c->h);
    if (rc != CURLE_OK) {
        client_error(c, "%s %s: %s", method, url, curl_easy_strerror(rc));
        return -1;
    }
    long status = 0;
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

static void
client_record(struct client *c, int64_t ns)
{
    if (c->n_lat == c->cap_lat) {
        c->cap_lat = c->cap_lat ? c->cap_lat * 2 : 4096;
        c->lat = xrealloc(c->lat, c->cap_lat * sizeof *c->lat);
    }
    c->lat[c->n_lat++] = ns;
}

/* ---- the payload: a realistic ~1 KB DPU object ---- */

static size_t
dpu_json(char *buf, size_t size, long i, long gen, const char *rv)
{
    char rvpart[64] = "";
    if (rv && rv[0]) {
        snprintf(rvpart, sizeof rvpart, "\"resourceVersion\":\"%s\",", rv);
    }
    int n = snprintf(
        buf, size,
        "{\"apiVersion\":\"provisioning.dpu.nvidia.com/v1alpha1\","
        "\"kind\":\"DPU\",\"metadata\":{\"name\":\"bench-dpu-%07ld\","
        "\"namespace\":\"bench\",%s\"labels\":{"
        "\"provisioning.dpu.nvidia.com/dpuset-name\":\"bench-dpuset\","
        "\"provisioning.dpu.nvidia.com/dpuset-namespace\":\"bench\","
        "\"provisioning.dpu.nvidia.com/dpu-pciAddress\":\"0000-%02lx-00\","
        "\"feature.node.kubernetes.io/dpu-enabled\":\"true\","
        "\"kubernetes.io/hostname\":\"worker-%06ld\","
        "\"bench.dpf/batch\":\"%ld\",\"bench.dpf/gen\":\"%ld\"},"
        "\"annotations\":{\"bench.dpf/note\":\"provisioned by dpf-bench; "
        "this annotation pads the object to about one kilobyte, the size "
        "of a typical DPU object with its labels and status\"}},"
        "\"spec\":{\"nodeName\":\"worker-%06ld\",\"bfb\":"
        "\"bf-bundle-2.9.1-40\",\"pciAddress\":\"0000-%02lx-00\","
        "\"dpuFlavor\":\"dpf-provisioning-hbn-ovn\",\"nodeEffect\":{"
        "\"taint\":{\"key\":\"dpu.nvidia.com/provisioning\",\"value\":"
        "\"true\",\"effect\":\"NoSchedule\"}},\"cluster\":{\"name\":"
        "\"dpu-cplane-tenant1\",\"namespace\":\"dpu-cplane-tenant1\","
        "\"nodeLabels\":{\"topology.kubernetes.io/zone\":\"zone-%ld\","
        "\"dpu.nvidia.com/host\":\"worker-%06ld\"}},"
        "\"automaticNodeReboot\":true}}",
        i, rvpart, (unsigned long) (i % 256), i, i / LIST_SIZE, gen, i,
        (unsigned long) (i % 256), i % 4, i);
    return (size_t) n;
}

/* ---- our API server ---- */

static void
server_note_rv(struct target *t, struct client *c, long i)
{
    json_t *o =
        json_loadb(c->resp.data ? c->resp.data : "", c->resp.len, 0, NULL);
    const char *rv = json_string_value(
        json_object_get(json_object_get(o, "metadata"), "resourceVersion"));
    if (rv && i < t->cap) {
        snprintf(t->rv[i], sizeof t->rv[i], "%s", rv);
    } else {
        client_error(c, "no metadata.resourceVersion in response");
    }
    json_decref(o);
}

static int
server_create(struct target *t, struct client *c, long i)
{
    char body[2048];
    size_t n = dpu_json(body, sizeof body, i, 0, NULL);
    free(c->url);
    c->url = xasprintf("%s" DPU_PATH, t->base);
    long st = client_do(c, "POST", c->url, body, n);
    if (st != 201 && st != 200) {
        if (st > 0) {
            client_error(c, "create %ld: HTTP %ld %.120s", i, st,
                         c->resp.data ? c->resp.data : "");
        }
        return -1;
    }
    server_note_rv(t, c, i);
    return 0;
}

static int
server_get(struct target *t, struct client *c, long i)
{
    free(c->url);
    c->url = xasprintf("%s" DPU_PATH "/bench-dpu-%07ld", t->base, i);
    long st = client_do(c, "GET", c->url, NULL, 0);
    if (st != 200) {
        if (st > 0) {
            client_error(c, "get %ld: HTTP %ld", i, st);
        }
        return -1;
    }
    return 0;
}

static int
server_update(struct target *t, struct client *c, long i, long gen)
{
    char body[2048];
    size_t n =
        dpu_json(body, sizeof body, i, gen, opt.update_apply ? NULL : t->rv[i]);
    free(c->url);
    long st;
    if (opt.update_apply) {
        /* The same object, applied by one field manager (YAML is a JSON
         * superset). */
        c->url = xasprintf("%s" DPU_PATH "/bench-dpu-%07ld?fieldManager="
                           "dpf-bench&force=true",
                           t->base, i);
        curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->apply_hdrs);
        st = client_do(c, "PATCH", c->url, body, n);
        curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->hdrs);
    } else {
        c->url = xasprintf("%s" DPU_PATH "/bench-dpu-%07ld", t->base, i);
        st = client_do(c, "PUT", c->url, body, n);
    }
    if (st != 200) {
        if (st > 0) {
            client_error(c, "update %ld: HTTP %ld %.120s", i, st,
                         c->resp.data ? c->resp.data : "");
        }
        if (st == 409 && server_get(t, c, i) == 0) {
            server_note_rv(t, c, i);
        }
        return -1;
    }
    server_note_rv(t, c, i);
    return 0;
}

static const struct target_ops server_ops = {
    .name = "dpf-server",
    .create = server_create,
    .get = server_get,
    .update = server_update,
};

/* ---- etcd through its JSON gateway ---- */

static char *
b64(const void *p, size_t n)
{
    char *out = xmalloc(4 * ((n + 2) / 3) + 1);
    EVP_EncodeBlock((unsigned char *) out, p, (int) n);
    return out;
}

static int
etcd_put(struct target *t, struct client *c, long i, long gen)
{
    char body[2048], key[64];
    size_t n = dpu_json(body, sizeof body, i, gen, NULL);
    int kn =
        snprintf(key, sizeof key, "/registry/dpus/bench/bench-dpu-%07ld", i);
    char *k64 = b64(key, (size_t) kn), *v64 = b64(body, n);
    char *req = xasprintf("{\"key\":\"%s\",\"value\":\"%s\"}", k64, v64);
    free(c->url);
    c->url = xasprintf("%s/v3/kv/put", t->base);
    long st = client_do(c, "POST", c->url, req, strlen(req));
    free(k64);
    free(v64);
    free(req);
    if (st != 200) {
        if (st > 0) {
            client_error(c, "etcd put %ld: HTTP %ld", i, st);
        }
        return -1;
    }
    return 0;
}

static int
etcd_create(struct target *t, struct client *c, long i)
{
    return etcd_put(t, c, i, 0);
}

static int
etcd_update(struct target *t, struct client *c, long i, long gen)
{
    return etcd_put(t, c, i, gen);
}

static int
etcd_get(struct target *t, struct client *c, long i)
{
    char key[64];
    int kn =
        snprintf(key, sizeof key, "/registry/dpus/bench/bench-dpu-%07ld", i);
    char *k64 = b64(key, (size_t) kn);
    char *req = xasprintf("{\"key\":\"%s\"}", k64);
    free(c->url);
    c->url = xasprintf("%s/v3/kv/range", t->base);
    long st = client_do(c, "POST", c->url, req, strlen(req));
    free(k64);
    free(req);
    if (st != 200 || !c->resp.data || !strstr(c->resp.data, "\"kvs\"")) {
        if (st > 0) {
            client_error(c, "etcd range %ld: HTTP %ld, no kvs", i, st);
        }
        return -1;
    }
    return 0;
}

static const struct target_ops etcd_ops = {
    .name = "etcd",
    .create = etcd_create,
    .get = etcd_get,
    .update = etcd_update,
};

/* ---- phases ---- */

enum phase_kind {
    PHASE_FILL,
    PHASE_GET,
    PHASE_UPDATE,
};

struct phase {
    struct target *t;       /* system under test */
    enum phase_kind kind;   /* what to do */
    atomic_long next;       /* FILL: next object index */
    long end;               /* FILL: stop before this index */
    long n_objects;         /* GET/UPDATE: objects to pick from */
    long max_ops;           /* UPDATE: total operations (0 = by time) */
    atomic_long done_ops;   /* UPDATE with max_ops: operations started */
    int64_t deadline_ns;    /* GET/UPDATE: stop time (0 = none) */
    atomic_long gen;        /* update generation counter */
    struct client *clients; /* one per thread */
};

static void *
phase_thread(void *arg)
{
    struct client *c = arg;
    struct phase *ph = c->phase;
    for (;;) {
        long i;
        if (ph->kind == PHASE_FILL) {
            i = atomic_fetch_add(&ph->next, 1);
            if (i >= ph->end) {
                break;
            }
        } else {
            if (ph->deadline_ns && time_mono_ns() >= ph->deadline_ns) {
                break;
            }
            if (ph->max_ops &&
                atomic_fetch_add(&ph->done_ops, 1) >= ph->max_ops) {
                break;
            }
            if (ph->kind == PHASE_UPDATE) {
                /* thread t owns objects i % clients == t: no conflicts */
                long per = ph->n_objects / opt.clients;
                i = (long) (client_rand(c) % (uint64_t) DPF_MAX(per, 1)) *
                        opt.clients +
                    c->id;
                if (i >= ph->n_objects) {
                    i = c->id % ph->n_objects;
                }
            } else {
                i = (long) (client_rand(c) % (uint64_t) ph->n_objects);
            }
        }
        int64_t t0 = time_mono_ns();
        int rc;
        switch (ph->kind) {
        case PHASE_FILL:
            rc = ph->t->ops->create(ph->t, c, i);
            break;
        case PHASE_GET:
            rc = ph->t->ops->get(ph->t, c, i);
            break;
        default:
            rc = ph->t->ops->update(ph->t, c, i,
                                    atomic_fetch_add(&ph->gen, 1) + 1);
            break;
        }
        if (rc == 0) {
            client_record(c, time_mono_ns() - t0);
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

static void
lat_summarise(struct lat *l, struct client *cl, int n, double secs)
{
    size_t total = 0;
    memset(l, 0, sizeof *l);
    for (int i = 0; i < n; i++) {
        total += cl[i].n_lat;
        l->errors += cl[i].errors;
        if (!l->error[0] && cl[i].error[0]) {
            snprintf(l->error, sizeof l->error, "%s", cl[i].error);
        }
    }
    int64_t *all = xmalloc((total + 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        memcpy(all + k, cl[i].lat, cl[i].n_lat * sizeof *all);
        k += cl[i].n_lat;
        cl[i].n_lat = 0;
        cl[i].errors = 0;
        cl[i].error[0] = '\0';
    }
    qsort(all, total, sizeof *all, cmp_i64);
    l->ops = (long) total;
    l->secs = secs;
    if (total) {
        l->p50_ms = all[total / 2] / 1e6;
        l->p99_ms = all[DPF_MIN(total - 1, total * 99 / 100)] / 1e6;
        l->max_ms = all[total - 1] / 1e6;
    }
    free(all);
}

static void
phase_run(struct phase *ph, struct lat *out)
{
    pthread_t th[256];
    int n = opt.clients;
    int64_t t0 = time_mono_ns();
    for (int i = 0; i < n; i++) {
        ph->clients[i].phase = ph;
        pthread_create(&th[i], NULL, phase_thread, &ph->clients[i]);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
    }
    double secs = (time_mono_ns() - t0) / 1e9;
    if (out) {
        lat_summarise(out, ph->clients, n, secs);
    } else {
        for (int i = 0; i < n; i++) {
            ph->clients[i].n_lat = 0;
            ph->clients[i].errors = 0;
            ph->clients[i].error[0] = '\0';
        }
    }
}

/* ---- watch ---- */

struct watch_stream {
    long lines;   /* complete lines (events) received */
    long status;  /* HTTP status */
    bool headers; /* header block complete */
    CURL *h;      /* easy handle */
};

struct watch_run {
    struct watch_stream *s; /* streams */
    int n;                  /* number of streams */
    atomic_long total;      /* events across all streams */
    atomic_int established; /* streams with a 200 and headers */
    atomic_int finished;    /* streams that ended */
    atomic_bool stop;       /* tell the thread to quit */
    atomic_long last_ns;    /* time of the most recent event */
    CURLM *multi;           /* the multi handle */
    CURLSH *share;          /* TLS session sharing */
};

static size_t
watch_write(char *p, size_t size, size_t n, void *arg)
{
    struct watch_stream *s = arg;
    struct watch_run *w = NULL;
    curl_easy_getinfo(s->h, CURLINFO_PRIVATE, (char **) &w);
    long k = 0;
    for (size_t i = 0; i < size * n; i++) {
        k += p[i] == '\n';
    }
    if (k) {
        s->lines += k;
        atomic_fetch_add(&w->total, k);
        atomic_store(&w->last_ns, time_mono_ns());
    }
    return size * n;
}

static size_t
watch_header(char *p, size_t size, size_t n, void *arg)
{
    struct watch_stream *s = arg;
    size_t len = size * n;
    if (len >= 5 && !memcmp(p, "HTTP/", 5)) {
        s->status = strtol(
            memchr(p, ' ', len) ? (char *) memchr(p, ' ', len) : p, NULL, 10);
    } else if ((len == 2 && p[0] == '\r') || (len == 1 && p[0] == '\n')) {
        if (!s->headers) {
            s->headers = true;
            struct watch_run *w = NULL;
            curl_easy_getinfo(s->h, CURLINFO_PRIVATE, (char **) &w);
            if (s->status == 200) {
                atomic_fetch_add(&w->established, 1);
            }
        }
    }
    return len;
}

static void *
watch_thread(void *arg)
{
    struct watch_run *w = arg;
    while (!atomic_load(&w->stop)) {
        int running = 0;
        curl_multi_perform(w->multi, &running);
        CURLMsg *m;
        int q;
        while ((m = curl_multi_info_read(w->multi, &q))) {
            if (m->msg == CURLMSG_DONE) {
                atomic_fetch_add(&w->finished, 1);
            }
        }
        curl_multi_poll(w->multi, NULL, 0, 50, NULL);
    }
    return NULL;
}

/* Open opt.watchers streams from resourceVersion rv, make
 * opt.watch_updates updates, and measure delivery. */
static void
watch_measure(struct target *t, struct phase *upd, const char *rv,
              struct figures *f)
{
    struct watch_run w = {0};
    w.n = opt.watchers;
    w.s = xcalloc((size_t) w.n, sizeof *w.s);
    w.multi = curl_multi_init();
    w.share = curl_share_init();
    curl_share_setopt(w.share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    char *url =
        xasprintf("%s" DPU_PATH "?watch=true&resourceVersion=%s", t->base, rv);
    struct curl_slist *hdrs = NULL;
    char *auth = xasprintf("Authorization: Bearer %s", t->token);
    hdrs = curl_slist_append(hdrs, auth);
    free(auth);
    struct curl_blob blob = {
        .data = t->ca_pem, .len = t->ca_len, .flags = CURL_BLOB_COPY};
    for (int i = 0; i < w.n; i++) {
        CURL *h = curl_easy_init();
        w.s[i].h = h;
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
        curl_easy_setopt(h, CURLOPT_SHARE, w.share);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, watch_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &w.s[i]);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, watch_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, &w.s[i]);
        curl_easy_setopt(h, CURLOPT_PRIVATE, (char *) &w);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_multi_add_handle(w.multi, h);
    }
    pthread_t th;
    pthread_create(&th, NULL, watch_thread, &w);

    /* wait until every stream is established (or 60 s) */
    int64_t until = time_mono_ns() + 60 * 1000000000ll;
    while (atomic_load(&w.established) + atomic_load(&w.finished) < w.n &&
           time_mono_ns() < until) {
        usleep(20000);
    }
    f->watch_established = atomic_load(&w.established);
    long base = atomic_load(&w.total);
    f->watch_expected = (long) f->watch_established * opt.watch_updates;

    int64_t t0 = time_mono_ns();
    upd->max_ops = opt.watch_updates;
    atomic_store(&upd->done_ops, 0);
    upd->deadline_ns = 0;
    phase_run(upd, NULL);
    /* wait for delivery: all events, or 10 s without progress */
    for (;;) {
        long got = atomic_load(&w.total) - base;
        if (got >= f->watch_expected) {
            break;
        }
        int64_t last = atomic_load(&w.last_ns);
        if (time_mono_ns() - DPF_MAX(last, t0) > 10 * 1000000000ll) {
            break;
        }
        usleep(10000);
    }
    int64_t t1 = atomic_load(&w.last_ns);
    f->watch_delivered = atomic_load(&w.total) - base;
    f->watch_rate = t1 > t0 ? f->watch_delivered / ((t1 - t0) / 1e9) : 0;

    atomic_store(&w.stop, true);
    pthread_join(th, NULL);
    for (int i = 0; i < w.n; i++) {
        curl_multi_remove_handle(w.multi, w.s[i].h);
        curl_easy_cleanup(w.s[i].h);
    }
    curl_multi_cleanup(w.multi);
    curl_share_cleanup(w.share);
    curl_slist_free_all(hdrs);
    free(url);
    free(w.s);
}

/* Time full lists; rv_out gets the list's resourceVersion. */
static void
list_measure(struct target *t, struct client *c, long n_objects,
             struct figures *f, char *rv_out, size_t rv_size)
{
    free(c->url);
    if (n_objects <= LIST_SIZE) {
        c->url = xasprintf("%s" DPU_PATH, t->base);
    } else {
        c->url = xasprintf(
            "%s" DPU_PATH "?labelSelector=bench.dpf%%2Fbatch%%3D0", t->base);
    }
    char *url = xstrdup(c->url);
    for (int r = 0; r < opt.list_reps; r++) {
        int64_t t0 = time_mono_ns();
        long st = client_do(c, "GET", url, NULL, 0);
        if (st != 200) {
            client_error(c, "list: HTTP %ld", st);
            continue;
        }
        client_record(c, time_mono_ns() - t0);
        f->list_mb = c->resp.len / 1e6;
        json_t *o = json_loadb(c->resp.data, c->resp.len, 0, NULL);
        f->list_items = (long) json_array_size(json_object_get(o, "items"));
        const char *rv = json_string_value(
            json_object_get(json_object_get(o, "metadata"), "resourceVersion"));
        if (rv) {
            snprintf(rv_out, rv_size, "%s", rv);
        }
        json_decref(o);
    }
    free(url);
    lat_summarise(&f->list, c, 1, 0);
}

/* Fill to each object count and measure at each. */
static void
run_target(struct target *t, pid_t pid, struct figures *figs)
{
    struct client *cl = xcalloc((size_t) opt.clients, sizeof *cl);
    for (int i = 0; i < opt.clients; i++) {
        client_init(&cl[i], t, i);
    }
    if (t->ops == &server_ops) {
        /* objects live in namespace "bench", which must exist */
        static const char ns[] = "{\"apiVersion\":\"v1\",\"kind\":"
                                 "\"Namespace\",\"metadata\":{\"name\":"
                                 "\"bench\"}}";
        char *url = xasprintf("%s/api/v1/namespaces", t->base);
        long st = client_do(&cl[0], "POST", url, ns, strlen(ns));
        if (st != 201 && st != 200 && st != 409) {
            fprintf(stderr, "dpf-bench: create namespace bench: HTTP %ld %s\n",
                    st, cl[0].resp.data ? cl[0].resp.data : cl[0].error);
        }
        free(url);
        cl[0].errors = 0;
        cl[0].error[0] = '\0';
    }
    long have = 0;
    for (size_t k = 0; k < opt.n_objects; k++) {
        struct figures *f = &figs[k];
        f->objects = opt.objects[k];
        fprintf(stderr, "dpf-bench: %s: filling to %ld objects\n", t->ops->name,
                f->objects);
        struct phase fill = {
            .t = t, .kind = PHASE_FILL, .end = f->objects, .clients = cl};
        atomic_store(&fill.next, have);
        phase_run(&fill, &f->create);
        have = f->objects;
        proc_rss(pid, &f->rss_mb, &f->hwm_mb);

        fprintf(stderr, "dpf-bench: %s: get\n", t->ops->name);
        struct phase get = {
            .t = t, .kind = PHASE_GET, .n_objects = have, .clients = cl};
        get.deadline_ns = time_mono_ns() + (int64_t) (opt.duration * 1e9);
        phase_run(&get, &f->get);

        fprintf(stderr, "dpf-bench: %s: update\n", t->ops->name);
        struct phase upd = {
            .t = t, .kind = PHASE_UPDATE, .n_objects = have, .clients = cl};
        upd.deadline_ns = time_mono_ns() + (int64_t) (opt.duration * 1e9);
        phase_run(&upd, &f->update);

        if (t->ops == &server_ops) {
            fprintf(stderr, "dpf-bench: %s: list\n", t->ops->name);
            char rv[32] = "";
            list_measure(t, &cl[0], have, f, rv, sizeof rv);
            if (opt.watchers > 0 && rv[0]) {
                fprintf(stderr, "dpf-bench: %s: %d watchers\n", t->ops->name,
                        opt.watchers);
                watch_measure(t, &upd, rv, f);
            }
        }
        double rss, hwm;
        proc_rss(pid, &rss, &hwm);
        f->rss_mb = DPF_MAX(f->rss_mb, rss);
        f->hwm_mb = hwm;
        f->valid = true;
    }
    for (int i = 0; i < opt.clients; i++) {
        client_free(&cl[i]);
    }
    free(cl);
}

/* ---- starting the systems ---- */

static int
server_setup(struct target *t, struct child *ch, const char *dir)
{
    char *data = xasprintf("%s/server", dir);
    char *log = xasprintf("%s/server.log", dir);
    char *kc = xasprintf("%s/admin.kubeconfig", data);
    char *argv[16];
    int a = 0;
    argv[a++] = (char *) opt.server_bin;
    argv[a++] = "--data-dir";
    argv[a++] = data;
    argv[a++] = "--port";
    argv[a++] = "0";
    argv[a++] = "--bind-address";
    argv[a++] = "127.0.0.1";
    argv[a++] = "--log-level";
    argv[a++] = "warn";
    if (opt.server_arg) {
        argv[a++] = (char *) opt.server_arg;
    }
    char *store = NULL;
    if (opt.store_sync) {
        store = xasprintf("sqlite:%s/state.db?sync=%s", data, opt.store_sync);
        argv[a++] = "--store";
        argv[a++] = store;
    }
    argv[a] = NULL;
    ch->what = "dpf-server";
    int rc = child_start(ch, argv, log);
    char *text = NULL;
    size_t len = 0;
    for (int i = 0; rc == 0 && i < 1500; i++) {
        if (file_read_all(kc, &text, &len) == 0) {
            break;
        }
        if (!child_alive(ch)) {
            rc = -ECHILD;
            break;
        }
        usleep(20000);
    }
    if (rc == 0 && !text) {
        rc = -ETIMEDOUT;
    }
    json_t *doc = NULL;
    struct dpf_error err = {0};
    if (rc == 0 && yamljson_parse_one(text, len, &doc, &err) < 0) {
        fprintf(stderr, "dpf-bench: kubeconfig: %s\n", err.message);
        rc = -EINVAL;
    }
    json_t *cluster = json_object_get(
        json_array_get(json_object_get(doc, "clusters"), 0), "cluster");
    json_t *user = json_object_get(
        json_array_get(json_object_get(doc, "users"), 0), "user");
    const char *server = json_string_value(json_object_get(cluster, "server"));
    const char *ca = json_string_value(
        json_object_get(cluster, "certificate-authority-data"));
    const char *token = json_string_value(json_object_get(user, "token"));
    if (rc == 0 && (!server || !ca || !token)) {
        fprintf(stderr, "dpf-bench: kubeconfig lacks server, CA or token\n");
        rc = -EINVAL;
    }
    if (rc == 0) {
        t->base = xstrdup(server);
        t->token = xstrdup(token);
        size_t cl = strlen(ca);
        t->ca_pem = xmalloc(cl + 1);
        int n = EVP_DecodeBlock((unsigned char *) t->ca_pem,
                                (const unsigned char *) ca, (int) cl);
        t->ca_len = n > 0 ? (size_t) n : 0;
        while (t->ca_len > 0 && t->ca_pem[t->ca_len - 1] == '\0') {
            t->ca_len--; /* base64 padding decodes to NULs */
        }
    }
    if (rc == 0) {
        /* the kubeconfig appears once the port is bound; requests are
         * served when /readyz says so */
        struct client c;
        client_init(&c, t, 0);
        char *url = xasprintf("%s/readyz", t->base);
        rc = -ETIMEDOUT;
        for (int i = 0; i < 3000 && child_alive(ch); i++) {
            if (client_do(&c, "GET", url, NULL, 0) == 200) {
                rc = 0;
                break;
            }
            usleep(20000);
        }
        free(url);
        client_free(&c);
    }
    json_decref(doc);
    free(text);
    free(data);
    free(store);
    free(log);
    free(kc);
    return rc;
}

static int
etcd_setup(struct target *t, struct child *ch, const char *dir)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        int cp = free_port(), pp = free_port();
        char *data = xasprintf("%s/etcd", dir);
        char *log = xasprintf("%s/etcd.log", dir);
        char *curl_ = xasprintf("http://127.0.0.1:%d", cp);
        char *purl = xasprintf("http://127.0.0.1:%d", pp);
        char *cluster = xasprintf("bench=%s", purl);
        char *argv[] = {(char *) opt.etcd_bin,
                        "--name",
                        "bench",
                        "--data-dir",
                        data,
                        "--listen-client-urls",
                        curl_,
                        "--advertise-client-urls",
                        curl_,
                        "--listen-peer-urls",
                        purl,
                        "--initial-advertise-peer-urls",
                        purl,
                        "--initial-cluster",
                        cluster,
                        "--log-level",
                        "warn",
                        NULL};
        ch->what = "etcd";
        int rc = child_start(ch, argv, log);
        struct client c;
        struct target probe = {0};
        client_init(&c, &probe, 0);
        char *health = xasprintf("%s/health", curl_);
        bool up = false;
        for (int i = 0; rc == 0 && i < 500 && !up; i++) {
            if (!child_alive(ch)) {
                break;
            }
            up = client_do(&c, "GET", health, NULL, 0) == 200 &&
                 strstr(c.resp.data, "true");
            if (!up) {
                usleep(20000);
            }
        }
        client_free(&c);
        free(health);
        if (up) {
            t->base = xstrdup(curl_);
        }
        free(data);
        free(log);
        free(purl);
        free(cluster);
        free(curl_);
        if (up) {
            return 0;
        }
        child_dump_log(ch);
        child_stop(ch);
    }
    return -EIO;
}

/* ---- report ---- */

static double
ratio(double a, double b)
{
    return b > 0 ? a / b : 0;
}

static void
print_table(const struct figures *s, const struct figures *e)
{
    struct sysinfo si;
    sysinfo(&si);
    printf("dpf-bench api: %d clients, %ld CPUs, %.1f GiB RAM, %d watchers, "
           "%.0f s per get/update phase\n",
           opt.clients, sysconf(_SC_NPROCESSORS_ONLN),
           si.totalram * (double) si.mem_unit / (1 << 30), opt.watchers,
           opt.duration);
    printf("latencies in ms; ratio = dpf/etcd (latency: lower is better, "
           "throughput: higher is better)\n");
    for (size_t k = 0; k < opt.n_objects; k++) {
        const struct figures *a = &s[k], *b = &e[k];
        printf("\n== %ld objects ==\n", a->valid ? a->objects : b->objects);
        printf("%-10s %8s %8s %9s | %8s %8s %9s | %7s %7s\n", "operation",
               "dpf p50", "dpf p99", "dpf op/s", "etcd p50", "etcd p99",
               "etcd op/s", "p99 x", "op/s x");
        const struct {
            const char *name;
            const struct lat *x, *y;
        } rows[] = {
            {"create", &a->create, &b->create},
            {"get", &a->get, &b->get},
            {"update", &a->update, &b->update},
        };
        for (size_t r = 0; r < ARRAY_SIZE(rows); r++) {
            const struct lat *x = rows[r].x, *y = rows[r].y;
            double tx = x->secs > 0 ? x->ops / x->secs : 0;
            double ty = y->secs > 0 ? y->ops / y->secs : 0;
            printf("%-10s %8.2f %8.2f %9.0f | %8.2f %8.2f %9.0f | %7.2f "
                   "%7.2f\n",
                   rows[r].name, x->p50_ms, x->p99_ms, tx, y->p50_ms, y->p99_ms,
                   ty, ratio(x->p99_ms, y->p99_ms), ratio(tx, ty));
            if (x->errors || y->errors) {
                printf("  errors: dpf %ld (%s), etcd %ld (%s)\n", x->errors,
                       x->error, y->errors, y->error);
            }
        }
        if (a->valid) {
            printf("list %ld objects (%.1f MB): p50 %.1f ms, max %.1f ms "
                   "over %ld lists%s\n",
                   a->list_items, a->list_mb, a->list.p50_ms, a->list.max_ms,
                   a->list.ops,
                   a->objects > LIST_SIZE ? " (labelSelector)" : "");
            printf("watch: %d/%d streams, %ld/%ld events delivered, "
                   "%.0f events/s\n",
                   a->watch_established, opt.watchers, a->watch_delivered,
                   a->watch_expected, a->watch_rate);
        }
        printf("RSS MB: dpf %.0f (peak %.0f), etcd %.0f (peak %.0f), "
               "ratio %.2f\n",
               a->rss_mb, a->hwm_mb, b->rss_mb, b->hwm_mb,
               ratio(a->rss_mb, b->rss_mb));
    }
}

static json_t *
lat_json(const struct lat *l)
{
    return json_pack("{s:I,s:I,s:f,s:f,s:f,s:f,s:f}", "ops",
                     (json_int_t) l->ops, "errors", (json_int_t) l->errors,
                     "seconds", l->secs, "p50_ms", l->p50_ms, "p99_ms",
                     l->p99_ms, "max_ms", l->max_ms, "ops_per_s",
                     l->secs > 0 ? l->ops / l->secs : 0.0);
}

static json_t *
figs_json(const struct figures *f)
{
    if (!f->valid) {
        return json_null();
    }
    return json_pack(
        "{s:I,s:o,s:o,s:o,s:o,s:I,s:f,s:f,s:I,s:I,s:i,s:f,s:f}", "objects",
        (json_int_t) f->objects, "create", lat_json(&f->create), "get",
        lat_json(&f->get), "update", lat_json(&f->update), "list",
        lat_json(&f->list), "list_items", (json_int_t) f->list_items, "list_mb",
        f->list_mb, "watch_events_per_s", f->watch_rate, "watch_delivered",
        (json_int_t) f->watch_delivered, "watch_expected",
        (json_int_t) f->watch_expected, "watch_streams", f->watch_established,
        "rss_mb", f->rss_mb, "rss_peak_mb", f->hwm_mb);
}

static void
print_json(const struct figures *s, const struct figures *e)
{
    json_t *out =
        json_pack("{s:i,s:i,s:i,s:f,s:[]}", "clients", opt.clients, "watchers",
                  opt.watchers, "cpus", (int) sysconf(_SC_NPROCESSORS_ONLN),
                  "duration_s", opt.duration, "results");
    for (size_t k = 0; k < opt.n_objects; k++) {
        json_t *r =
            json_pack("{s:I,s:o,s:o}", "objects", (json_int_t) opt.objects[k],
                      "dpf", figs_json(&s[k]), "etcd", figs_json(&e[k]));
        if (s[k].valid && e[k].valid) {
            json_object_set_new(
                r, "ratio",
                json_pack(
                    "{s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "create_p99",
                    ratio(s[k].create.p99_ms, e[k].create.p99_ms), "create_ops",
                    ratio(s[k].create.ops / s[k].create.secs,
                          e[k].create.ops / e[k].create.secs),
                    "get_p99", ratio(s[k].get.p99_ms, e[k].get.p99_ms),
                    "get_ops",
                    ratio(s[k].get.ops / s[k].get.secs,
                          e[k].get.ops / e[k].get.secs),
                    "update_p99", ratio(s[k].update.p99_ms, e[k].update.p99_ms),
                    "update_ops",
                    ratio(s[k].update.ops / s[k].update.secs,
                          e[k].update.ops / e[k].update.secs),
                    "rss", ratio(s[k].rss_mb, e[k].rss_mb)));
        }
        json_array_append_new(json_object_get(out, "results"), r);
    }
    char *txt = json_dumps(out, JSON_INDENT(2));
    printf("%s\n", txt);
    free(txt);
    json_decref(out);
}

/* ---- main ---- */

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: dpf-bench api [options]\n"
            "  --objects N[,N...]   stored object counts (default "
            "10000,100000)\n"
            "  --clients N          concurrent clients (default 16)\n"
            "  --watchers N         watch streams (default 1000; 0 = skip)\n"
            "  --watch-updates N    updates made while watching (default "
            "200)\n"
            "  --duration S         seconds per get/update phase (default "
            "10)\n"
            "  --list-reps N        lists per list measurement (default 5)\n"
            "  --server-bin PATH    dpf-server (default "
            "<build>/dpf-server/dpf-server)\n"
            "  --server-arg ARG     extra dpf-server argument\n"
            "  --store-sync MODE    dpf-server's SQLite sync mode (full, the\n"
            "                       default, or normal: the old, not\n"
            "                       power-safe mode)\n"
            "  --etcd-bin PATH      etcd (default etcd from PATH)\n"
            "  --no-server          measure etcd only\n"
            "  --no-etcd            measure dpf-server only\n"
            "  --update-apply       updates are server-side applies (PATCH\n"
            "                       apply-patch+yaml) instead of PUTs\n"
            "  --keep               keep the temporary directory\n"
            "  --json               print JSON instead of the table\n"
            "  --help\n");
}

static char *
default_server_bin(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        return xstrdup("dpf-server");
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (slash) {
        *slash = '\0';
    }
    return xasprintf("%s/../dpf-server/dpf-server", exe);
}

static int
parse_objects(const char *s)
{
    opt.n_objects = 0;
    char *copy = xstrdup(s), *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        long v = strtol(tok, NULL, 10);
        if (v <= 0 || opt.n_objects == ARRAY_SIZE(opt.objects) ||
            (opt.n_objects && v <= opt.objects[opt.n_objects - 1])) {
            free(copy);
            return -1;
        }
        opt.objects[opt.n_objects++] = v;
    }
    free(copy);
    return opt.n_objects ? 0 : -1;
}

static int
rm_rf(const char *dir)
{
    char *cmd = xasprintf("rm -rf '%s'", dir);
    int rc = system(cmd);
    free(cmd);
    return rc;
}

int
main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "api")) {
        fprintf(stderr, "dpf-bench: unknown benchmark \"%s\"\n", argv[1]);
        usage(stderr);
        return 2;
    }
    static const struct option longopts[] = {
        {"objects", required_argument, NULL, 'o'},
        {"clients", required_argument, NULL, 'c'},
        {"watchers", required_argument, NULL, 'w'},
        {"watch-updates", required_argument, NULL, 'W'},
        {"duration", required_argument, NULL, 'd'},
        {"list-reps", required_argument, NULL, 'l'},
        {"server-bin", required_argument, NULL, 's'},
        {"server-arg", required_argument, NULL, 'a'},
        {"store-sync", required_argument, NULL, 'y'},
        {"etcd-bin", required_argument, NULL, 'e'},
        {"no-server", no_argument, NULL, 'S'},
        {"no-etcd", no_argument, NULL, 'E'},
        {"keep", no_argument, NULL, 'k'},
        {"update-apply", no_argument, NULL, 'U'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    parse_objects("10000,100000");
    char *server_bin = default_server_bin();
    opt.server_bin = server_bin;
    int ch;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'o':
            if (parse_objects(optarg) < 0) {
                fprintf(stderr, "dpf-bench: --objects wants ascending "
                                "positive counts\n");
                return 2;
            }
            break;
        case 'c':
            opt.clients = atoi(optarg);
            if (opt.clients < 1 || opt.clients > 256) {
                fprintf(stderr, "dpf-bench: --clients must be 1..256\n");
                return 2;
            }
            break;
        case 'w':
            opt.watchers = atoi(optarg);
            break;
        case 'W':
            opt.watch_updates = atoi(optarg);
            break;
        case 'd':
            opt.duration = strtod(optarg, NULL);
            break;
        case 'l':
            opt.list_reps = atoi(optarg);
            break;
        case 's':
            opt.server_bin = optarg;
            break;
        case 'y':
            opt.store_sync = optarg;
            break;
        case 'a':
            opt.server_arg = optarg;
            break;
        case 'e':
            opt.etcd_bin = optarg;
            break;
        case 'S':
            opt.no_server = true;
            break;
        case 'E':
            opt.no_etcd = true;
            break;
        case 'k':
            opt.keep = true;
            break;
        case 'U':
            opt.update_apply = true;
            break;
        case 'j':
            opt.json = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }

    /* watchers need file descriptors on both sides */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_ALL);
    char dir[] = "/tmp/dpf-bench-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("dpf-bench: mkdtemp");
        return 1;
    }
    struct figures sf[8] = {0}, ef[8] = {0};
    int rc = 0;

    if (!opt.no_server) {
        struct target t = {.ops = &server_ops};
        struct child c = {0};
        t.cap = opt.objects[opt.n_objects - 1];
        t.rv = xcalloc((size_t) t.cap, sizeof *t.rv);
        if (server_setup(&t, &c, dir) < 0) {
            fprintf(stderr, "dpf-bench: dpf-server (%s) did not start\n",
                    opt.server_bin);
            child_dump_log(&c);
            rc = 1;
        } else {
            fprintf(stderr, "dpf-bench: dpf-server pid %d at %s\n", (int) c.pid,
                    t.base);
            run_target(&t, c.pid, sf);
            if (!child_alive(&c)) {
                fprintf(stderr, "dpf-bench: dpf-server died\n");
                child_dump_log(&c);
                rc = 1;
            }
        }
        child_stop(&c);
        free(t.base);
        free(t.token);
        free(t.ca_pem);
        free(t.rv);
    }
    if (!opt.no_etcd) {
        struct target t = {.ops = &etcd_ops};
        struct child c = {0};
        if (etcd_setup(&t, &c, dir) < 0) {
            fprintf(stderr, "dpf-bench: etcd did not start\n");
            rc = 1;
        } else {
            fprintf(stderr, "dpf-bench: etcd pid %d at %s\n", (int) c.pid,
                    t.base);
            run_target(&t, c.pid, ef);
        }
        child_stop(&c);
        free(t.base);
    }
    if (opt.json) {
        print_json(sf, ef);
    } else {
        print_table(sf, ef);
    }
    if (opt.keep) {
        fprintf(stderr, "dpf-bench: kept %s\n", dir);
    } else {
        rm_rf(dir);
    }
    free(server_bin);
    curl_global_cleanup();
    return rc;
}
