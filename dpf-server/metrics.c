/* metrics: see metrics.h. */
#include "dpf-server/metrics.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api/schema.h"
#include "lib/net/http-server.h"
#include "lib/store/store.h"

/* The table holds twice the series it may keep, so probes stay short. */
#define METRICS_SLOTS (2 * METRICS_MAX_SERIES)
/* Distinct status codes kept per label set (more: code="other"). */
#define METRICS_CODES 16

/* kube-apiserver's buckets of apiserver_request_duration_seconds. */
static const char *const bucket_le[] = {
    "0.005", "0.025", "0.05", "0.1", "0.2", "0.4", "0.6", "0.8",
    "1",     "1.25",  "1.5",  "2",   "3",   "4",   "5",   "6",
    "8",     "10",    "15",   "20",  "30",  "45",  "60",
};
#define NBUCKETS (sizeof(bucket_le) / sizeof(bucket_le[0]))
static const int64_t bucket_ns[NBUCKETS] = {
    5000000,     25000000,    50000000,    100000000,   200000000,
    400000000,   600000000,   800000000,   1000000000,  1250000000,
    1500000000,  2000000000,  3000000000,  4000000000,  5000000000,
    6000000000,  8000000000,  10000000000, 15000000000, 20000000000,
    30000000000, 45000000000, 60000000000,
};

/* One label set (without code): its counters by code, its duration
 * histogram and, for watches and connects, how many run now. */
struct series {
    uint64_t hash;
    struct metrics_labels l;                    /* static strings */
    atomic_uint_least64_t bucket[NBUCKETS + 1]; /* last: above 60 s */
    atomic_uint_least64_t sum_ns;
    atomic_int_least64_t longrunning;
    atomic_int code[METRICS_CODES]; /* 0 = free slot */
    atomic_uint_least64_t code_n[METRICS_CODES];
    atomic_uint_least64_t code_other;
};

/* A running long request: where it counts once it ends. */
struct lr_token {
    struct series *s;
    int status;
};

struct metrics {
    _Atomic(struct series *) slot[METRICS_SLOTS];
    pthread_mutex_t mu; /* only to add a series */
    size_t n_series;    /* under mu */
    struct series overflow;
    atomic_int_least64_t inflight[2]; /* readOnly, mutating */
    double start_time;                /* process start, Unix seconds */
};

/* ------------------------------------------------------------------ */
/* labels                                                              */

static const char *const subresources[] = {
    "status",
    "scale",
    "log",
    "exec",
    "attach",
    "portforward",
    "proxy",
    "eviction",
    "binding",
    "token",
    "approval",
    "finalize",
    "ephemeralcontainers",
    "resize",
};

/* A path segment: not NUL-terminated. */
struct seg {
    const char *p;
    size_t n;
};

static bool
seg_is(const struct seg *s, const char *word)
{
    return s->n == strlen(word) && memcmp(s->p, word, s->n) == 0;
}

/* Copy a segment into buf (size bytes); false when it does not fit. */
static bool
seg_copy(const struct seg *s, char *buf, size_t size)
{
    if (s->n >= size) {
        return false;
    }
    memcpy(buf, s->p, s->n);
    buf[s->n] = '\0';
    return true;
}

#define MAX_SEGS 10

/* Split the path as kube-apiserver does (outer slashes trimmed, then on
 * every slash). Returns the count, MAX_SEGS + 1 when there are more. */
static size_t
path_split(const char *path, struct seg *segs)
{
    size_t len = strlen(path);
    while (len && *path == '/') {
        path++;
        len--;
    }
    while (len && path[len - 1] == '/') {
        len--;
    }
    if (!len) {
        return 0;
    }
    size_t n = 0;
    const char *end = path + len;
    for (const char *p = path;;) {
        const char *slash = memchr(p, '/', (size_t) (end - p));
        const char *stop = slash ? slash : end;
        if (n == MAX_SEGS) {
            return MAX_SEGS + 1;
        }
        segs[n].p = p;
        segs[n].n = (size_t) (stop - p);
        n++;
        if (!slash) {
            return n;
        }
        p = slash + 1;
    }
}

static bool
path_is_or_under(const char *path, const char *base)
{
    size_t n = strlen(base);
    return strncmp(path, base, n) == 0 &&
           (path[n] == '\0' || (path[n] == '/' && path[n + 1] == '\0'));
}

static bool
path_under(const char *path, const char *base)
{
    size_t n = strlen(base);
    return strncmp(path, base, n) == 0 && path[n] == '/' && path[n + 1];
}

/* The label of a non-resource path: one of a fixed list, or "other". */
static const char *
nonresource_label(const char *path)
{
    static const char *const health[] = {"/healthz", "/livez", "/readyz"};
    for (size_t i = 0; i < ARRAY_SIZE(health); i++) {
        if (path_is_or_under(path, health[i]) || path_under(path, health[i])) {
            return health[i];
        }
    }
    static const char *const exact[] = {
        "/version",
        "/metrics",
        "/api",
        "/apis",
        "/openapi/v2",
        "/openapi/v3",
        "/.well-known/openid-configuration",
        "/openid/v1/jwks",
    };
    for (size_t i = 0; i < ARRAY_SIZE(exact); i++) {
        if (path_is_or_under(path, exact[i])) {
            return exact[i];
        }
    }
    if (path_under(path, "/openapi/v3")) {
        return "/openapi/v3/*";
    }
    /* Discovery of one group or version (a resource path is not here). */
    if (path_under(path, "/api")) {
        return "/api/*";
    }
    if (path_under(path, "/apis")) {
        return "/apis/*";
    }
    return "other";
}

static bool
query_true(const char *v)
{
    static const char *const yes[] = {"1", "t", "T", "true", "TRUE", "True"};
    for (size_t i = 0; v && i < ARRAY_SIZE(yes); i++) {
        if (strcmp(v, yes[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* The verb of a request's method; GET becomes LIST or WATCH later. */
static const char *
method_verb(const char *method, const char *content_type)
{
    static const char *const same[] = {"POST", "PUT", "DELETE"};
    if (!strcmp(method, "GET") || !strcmp(method, "HEAD")) {
        return "GET";
    }
    for (size_t i = 0; i < ARRAY_SIZE(same); i++) {
        if (!strcmp(method, same[i])) {
            return same[i];
        }
    }
    if (!strcmp(method, "PATCH")) {
        return content_type &&
                       !strncasecmp(content_type, "application/apply-patch",
                                    strlen("application/apply-patch"))
                   ? "APPLY"
                   : "PATCH";
    }
    return "other";
}

static void
labels_unknown(struct metrics_labels *out)
{
    out->group = out->version = out->resource = out->scope = "";
    out->subresource = "other";
}

void
metrics_classify(const char *method, const char *path, const char *watch,
                 const char *dry_run, const char *content_type,
                 struct metrics_labels *out)
{
    struct seg segs[MAX_SEGS];
    size_t n = path_split(path ? path : "", segs);
    bool deep = n > MAX_SEGS; /* only the first MAX_SEGS were split */
    if (deep) {
        n = MAX_SEGS;
    }
    const char *verb = method_verb(method ? method : "", content_type);
    bool write = strcmp(verb, "GET") != 0 && strcmp(verb, "other") != 0;

    out->verb = verb;
    out->dry_run = write && dry_run && !strcmp(dry_run, "All") ? "All" : "";
    out->group = out->version = out->resource = out->scope = "";
    out->subresource = "";

    size_t first; /* where the resource part starts */
    if (n >= 3 && seg_is(&segs[0], "api")) {
        first = 2;
    } else if (n >= 4 && seg_is(&segs[0], "apis")) {
        first = 3;
    } else if (deep) {
        labels_unknown(out); /* deeper than anything served */
        return;
    } else {
        out->subresource = nonresource_label(path ? path : "");
        return;
    }
    char group[254] = "", version[64], resource[254];
    if ((first == 3 && !seg_copy(&segs[1], group, sizeof group)) ||
        !seg_copy(&segs[first - 1], version, sizeof version)) {
        labels_unknown(out);
        return;
    }
    struct seg *rest = &segs[first];
    size_t len = n - first;
    bool watch_path = false, in_ns = false;
    if (seg_is(&rest[0], "watch")) {
        watch_path = true;
        rest++;
        len--;
    }
    if (len >= 2 && seg_is(&rest[0], "namespaces") &&
        !(len > 2 &&
          (seg_is(&rest[2], "status") || seg_is(&rest[2], "finalize")))) {
        if (len > 2) {
            in_ns = true;
            rest += 2;
            len -= 2;
        }
    }
    const struct schema_kind *k = NULL;
    if (len >= 1 && seg_copy(&rest[0], resource, sizeof resource)) {
        k = schema_find_resource(group, version, resource);
    }
    if (!k) {
        labels_unknown(out);
        return;
    }
    out->group = k->group;
    out->version = k->version;
    out->resource = k->plural;
    out->scope = len >= 2 ? "resource" : in_ns ? "namespace" : "cluster";
    if (len >= 3) {
        out->subresource = "other";
        for (size_t i = 0; i < ARRAY_SIZE(subresources); i++) {
            if (seg_is(&rest[2], subresources[i]) &&
                ((len == 3 && !deep) || !strcmp(subresources[i], "proxy"))) {
                out->subresource = subresources[i];
            }
        }
        const char *sub = out->subresource;
        if (!strcmp(sub, "exec") || !strcmp(sub, "attach") ||
            !strcmp(sub, "portforward") || !strcmp(sub, "proxy")) {
            out->verb = "CONNECT";
            out->dry_run = "";
            return;
        }
    }
    if (!strcmp(verb, "GET")) {
        if (watch_path || query_true(watch)) {
            out->verb = "WATCH";
        } else if (len < 2) {
            out->verb = "LIST";
        }
    }
}

/* ------------------------------------------------------------------ */
/* the table                                                           */

static uint64_t
hash_str(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h = (h ^ (unsigned char) *s) * 1099511628211ULL;
    }
    return (h ^ 0xff) * 1099511628211ULL; /* field separator */
}

static uint64_t
labels_hash(const struct metrics_labels *l)
{
    uint64_t h = 14695981039346656037ULL;
    h = hash_str(h, l->verb);
    h = hash_str(h, l->dry_run);
    h = hash_str(h, l->group);
    h = hash_str(h, l->version);
    h = hash_str(h, l->resource);
    h = hash_str(h, l->subresource);
    return hash_str(h, l->scope);
}

/* Equal by content: a CustomResourceDefinition made again brings a new
 * kind with equal strings, and must count in the same series. */
static bool
labels_equal(const struct metrics_labels *a, const struct metrics_labels *b)
{
    return !strcmp(a->verb, b->verb) && !strcmp(a->dry_run, b->dry_run) &&
           !strcmp(a->group, b->group) && !strcmp(a->version, b->version) &&
           !strcmp(a->resource, b->resource) &&
           !strcmp(a->subresource, b->subresource) &&
           !strcmp(a->scope, b->scope);
}

static struct series *
series_find(struct metrics *m, const struct metrics_labels *l)
{
    uint64_t h = labels_hash(l);
    size_t mask = METRICS_SLOTS - 1;
    for (size_t i = 0, idx = h & mask; i < METRICS_SLOTS;
         i++, idx = (idx + 1) & mask) {
        struct series *s =
            atomic_load_explicit(&m->slot[idx], memory_order_acquire);
        if (!s) {
            pthread_mutex_lock(&m->mu);
            s = atomic_load_explicit(&m->slot[idx], memory_order_acquire);
            if (!s) {
                if (m->n_series >= METRICS_MAX_SERIES) {
                    pthread_mutex_unlock(&m->mu);
                    return &m->overflow;
                }
                s = xcalloc(1, sizeof(*s));
                s->hash = h;
                s->l = *l;
                m->n_series++;
                atomic_store_explicit(&m->slot[idx], s, memory_order_release);
                pthread_mutex_unlock(&m->mu);
                return s;
            }
            pthread_mutex_unlock(&m->mu);
        }
        if (s->hash == h && labels_equal(&s->l, l)) {
            return s;
        }
    }
    return &m->overflow;
}

static void
series_count(struct series *s, int status, int64_t elapsed_ns)
{
    for (size_t i = 0; i < METRICS_CODES; i++) {
        int c = atomic_load_explicit(&s->code[i], memory_order_acquire);
        if (c == 0) {
            int expect = 0;
            if (atomic_compare_exchange_strong(&s->code[i], &expect, status)) {
                c = status;
            } else {
                c = expect;
            }
        }
        if (c == status) {
            atomic_fetch_add_explicit(&s->code_n[i], 1, memory_order_relaxed);
            goto histogram;
        }
    }
    atomic_fetch_add_explicit(&s->code_other, 1, memory_order_relaxed);
histogram:
    if (elapsed_ns < 0) {
        elapsed_ns = 0;
    }
    size_t b = 0;
    while (b < NBUCKETS && elapsed_ns > bucket_ns[b]) {
        b++;
    }
    atomic_fetch_add_explicit(&s->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_ns, (uint64_t) elapsed_ns,
                              memory_order_relaxed);
}

struct metrics *
metrics_create(void)
{
    struct metrics *m = xcalloc(1, sizeof(*m));
    pthread_mutex_init(&m->mu, NULL);
    m->overflow.l = (struct metrics_labels){.verb = "other",
                                            .dry_run = "",
                                            .group = "",
                                            .version = "",
                                            .resource = "",
                                            .subresource = "other",
                                            .scope = ""};
    /* The process's start: boot time plus its start in clock ticks. */
    FILE *f = fopen("/proc/stat", "r");
    long long btime = 0;
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "btime %lld", &btime) == 1) {
            break;
        }
    }
    if (f) {
        fclose(f);
    }
    unsigned long long start_ticks = 0;
    f = fopen("/proc/self/stat", "r");
    char stat[1024];
    if (f && fgets(stat, sizeof stat, f)) {
        const char *p = strrchr(stat, ')');
        /* Field 22 (starttime) is the 20th after the command. */
        for (int i = 0; p && i < 20; i++) {
            p = strchr(p + 1, ' ');
        }
        if (p) {
            start_ticks = strtoull(p + 1, NULL, 10);
        }
    }
    if (f) {
        fclose(f);
    }
    long hz = sysconf(_SC_CLK_TCK);
    m->start_time = (double) btime + (double) start_ticks / (hz > 0 ? hz : 100);
    return m;
}

void
metrics_destroy(struct metrics *m)
{
    if (!m) {
        return;
    }
    for (size_t i = 0; i < METRICS_SLOTS; i++) {
        free(atomic_load(&m->slot[i]));
    }
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static void
labels_of_request(struct http_request *req, struct metrics_labels *l)
{
    metrics_classify(http_request_method(req), http_request_path(req),
                     http_request_query(req, "watch"),
                     http_request_query(req, "dryRun"),
                     http_request_header(req, "Content-Type"), l);
}

static int
status_clean(int status)
{
    /* Never 0: that marks a free code slot. */
    return status < 100 || status > 999 ? 999 : status;
}

void
metrics_count(struct metrics *m, const struct metrics_labels *l, int status,
              int64_t elapsed_ns)
{
    series_count(series_find(m, l), status_clean(status), elapsed_ns);
}

void *
metrics_observe(void *arg, struct http_request *req, int status,
                int64_t elapsed_ns, bool long_running)
{
    struct metrics *m = arg;
    struct metrics_labels l;
    labels_of_request(req, &l);
    if (!long_running) {
        metrics_count(m, &l, status, elapsed_ns);
        return NULL;
    }
    struct series *s = series_find(m, &l);
    status = status_clean(status);
    atomic_fetch_add_explicit(&s->longrunning, 1, memory_order_relaxed);
    struct lr_token *t = xmalloc(sizeof(*t));
    t->s = s;
    t->status = status;
    return t;
}

void
metrics_observe_end(void *arg, void *token, int64_t elapsed_ns)
{
    (void) arg;
    struct lr_token *t = token;
    atomic_fetch_sub_explicit(&t->s->longrunning, 1, memory_order_relaxed);
    series_count(t->s, t->status, elapsed_ns);
    free(t);
}

void
metrics_inflight_add(struct metrics *m, bool mutating, int delta)
{
    atomic_fetch_add_explicit(&m->inflight[mutating ? 1 : 0], delta,
                              memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* exposition                                                          */

/* A label value, escaped as the format asks (backslash, quote, newline). */
static void
put_value(struct dbuf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"') {
            dbuf_printf(b, "\\%c", *v);
        } else if (*v == '\n') {
            dbuf_puts(b, "\\n");
        } else {
            dbuf_append(b, v, 1);
        }
    }
}

static void
put_label(struct dbuf *b, bool *first, const char *name, const char *value)
{
    dbuf_puts(b, *first ? "{" : ",");
    *first = false;
    dbuf_printf(b, "%s=\"", name);
    put_value(b, value);
    dbuf_puts(b, "\"");
}

/* The labels of s in name order; code and le are added when non-NULL,
 * dry_run only when with_dry_run. Leaves the brace open. */
static void
put_labels(struct dbuf *b, const struct series *s, const char *code,
           bool with_dry_run)
{
    bool first = true;
    if (code) {
        put_label(b, &first, "code", code);
    }
    put_label(b, &first, "component", "apiserver");
    if (with_dry_run) {
        put_label(b, &first, "dry_run", s->l.dry_run);
    }
    put_label(b, &first, "group", s->l.group);
    put_label(b, &first, "resource", s->l.resource);
    put_label(b, &first, "scope", s->l.scope);
    put_label(b, &first, "subresource", s->l.subresource);
    put_label(b, &first, "verb", s->l.verb);
    put_label(b, &first, "version", s->l.version);
}

static void
put_family(struct dbuf *b, const char *name, const char *type, const char *help)
{
    dbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Call fn for every series there is, the overflow one last. */
static void
each_series(struct metrics *m, void (*fn)(struct dbuf *, struct series *),
            struct dbuf *b)
{
    for (size_t i = 0; i < METRICS_SLOTS; i++) {
        struct series *s =
            atomic_load_explicit(&m->slot[i], memory_order_acquire);
        if (s) {
            fn(b, s);
        }
    }
    fn(b, &m->overflow);
}

static void
render_counts(struct dbuf *b, struct series *s)
{
    char code[16];
    for (size_t i = 0; i < METRICS_CODES; i++) {
        int c = atomic_load_explicit(&s->code[i], memory_order_acquire);
        uint64_t n = atomic_load_explicit(&s->code_n[i], memory_order_relaxed);
        if (c == 0 || n == 0) {
            continue;
        }
        snprintf(code, sizeof code, "%d", c);
        dbuf_puts(b, "apiserver_request_total");
        put_labels(b, s, code, true);
        dbuf_printf(b, "} %llu\n", (unsigned long long) n);
    }
    uint64_t other = atomic_load_explicit(&s->code_other, memory_order_relaxed);
    if (other) {
        dbuf_puts(b, "apiserver_request_total");
        put_labels(b, s, "other", true);
        dbuf_printf(b, "} %llu\n", (unsigned long long) other);
    }
}

static void
render_durations(struct dbuf *b, struct series *s)
{
    uint64_t cum[NBUCKETS + 1], total = 0;
    for (size_t i = 0; i <= NBUCKETS; i++) {
        total += atomic_load_explicit(&s->bucket[i], memory_order_relaxed);
        cum[i] = total;
    }
    if (!total) {
        return;
    }
    for (size_t i = 0; i <= NBUCKETS; i++) {
        dbuf_puts(b, "apiserver_request_duration_seconds_bucket");
        put_labels(b, s, NULL, true);
        dbuf_printf(b, ",le=\"%s\"} %llu\n",
                    i < NBUCKETS ? bucket_le[i] : "+Inf",
                    (unsigned long long) cum[i]);
    }
    uint64_t sum = atomic_load_explicit(&s->sum_ns, memory_order_relaxed);
    dbuf_puts(b, "apiserver_request_duration_seconds_sum");
    put_labels(b, s, NULL, true);
    dbuf_printf(b, "} %.9f\n", (double) sum / 1e9);
    dbuf_puts(b, "apiserver_request_duration_seconds_count");
    put_labels(b, s, NULL, true);
    dbuf_printf(b, "} %llu\n", (unsigned long long) total);
}

static void
render_longrunning(struct dbuf *b, struct series *s)
{
    /* Only long-running verbs; their dry_run is always "" (no double
     * label sets once dry_run is left out). */
    if (strcmp(s->l.verb, "WATCH") != 0 && strcmp(s->l.verb, "CONNECT") != 0) {
        return;
    }
    int64_t n = atomic_load_explicit(&s->longrunning, memory_order_relaxed);
    dbuf_puts(b, "apiserver_longrunning_requests");
    put_labels(b, s, NULL, false);
    dbuf_printf(b, "} %lld\n", (long long) (n > 0 ? n : 0));
}

static void
emit_storage(void *arg, const char *resource, int64_t n)
{
    struct dbuf *b = arg;
    dbuf_puts(b, "apiserver_storage_objects{resource=\"");
    put_value(b, resource);
    dbuf_printf(b, "\"} %lld\n", (long long) n);
}

static void
render_process(struct metrics *m, struct dbuf *b)
{
    double cpu = 0, vsize = 0, rss = 0;
    FILE *f = fopen("/proc/self/stat", "r");
    char stat[1024];
    if (f && fgets(stat, sizeof stat, f)) {
        const char *p = strrchr(stat, ')');
        unsigned long long v[22] = {0}; /* fields 3.. after the command */
        for (int i = 0; p && i < 22; i++) {
            p = strchr(p + 1, ' ');
            if (p) {
                v[i] = strtoull(p + 1, NULL, 10);
            }
        }
        long hz = sysconf(_SC_CLK_TCK);
        long page = sysconf(_SC_PAGESIZE);
        cpu = (double) (v[11] + v[12]) / (hz > 0 ? hz : 100);     /* 14, 15 */
        vsize = (double) v[20];                                   /* 23 */
        rss = (double) v[21] * (double) (page > 0 ? page : 4096); /* 24 */
    }
    if (f) {
        fclose(f);
    }
    long fds = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d));) {
        fds += e->d_name[0] != '.';
    }
    if (d) {
        closedir(d);
        fds--; /* the directory's own descriptor */
    }
    struct rlimit rl = {0};
    getrlimit(RLIMIT_NOFILE, &rl);

    put_family(b, "process_cpu_seconds_total", "counter",
               "Total user and system CPU time spent in seconds.");
    dbuf_printf(b, "process_cpu_seconds_total %.2f\n", cpu);
    put_family(b, "process_max_fds", "gauge",
               "Maximum number of open file descriptors.");
    dbuf_printf(b, "process_max_fds %llu\n", (unsigned long long) rl.rlim_cur);
    put_family(b, "process_open_fds", "gauge",
               "Number of open file descriptors.");
    dbuf_printf(b, "process_open_fds %ld\n", fds);
    put_family(b, "process_resident_memory_bytes", "gauge",
               "Resident memory size in bytes.");
    dbuf_printf(b, "process_resident_memory_bytes %.0f\n", rss);
    put_family(b, "process_start_time_seconds", "gauge",
               "Start time of the process since unix epoch in seconds.");
    dbuf_printf(b, "process_start_time_seconds %.2f\n", m->start_time);
    put_family(b, "process_virtual_memory_bytes", "gauge",
               "Virtual memory size in bytes.");
    dbuf_printf(b, "process_virtual_memory_bytes %.0f\n", vsize);
}

void
metrics_render(struct metrics *m, struct dbuf *b, metrics_storage_fn storage,
               void *storage_arg)
{
    put_family(b, "apiserver_current_inflight_requests", "gauge",
               "[STABLE] Maximal number of currently used inflight request "
               "limit of this apiserver per request kind in last second.");
    int64_t ro = atomic_load(&m->inflight[0]),
            mu = atomic_load(&m->inflight[1]);
    dbuf_printf(b,
                "apiserver_current_inflight_requests{request_kind="
                "\"mutating\"} %lld\n"
                "apiserver_current_inflight_requests{request_kind="
                "\"readOnly\"} %lld\n",
                (long long) (mu > 0 ? mu : 0), (long long) (ro > 0 ? ro : 0));
    put_family(b, "apiserver_longrunning_requests", "gauge",
               "[STABLE] Gauge of all active long-running apiserver requests "
               "broken out by verb, group, version, resource, scope and "
               "component. Not all requests are tracked this way.");
    each_series(m, render_longrunning, b);
    put_family(b, "apiserver_request_duration_seconds", "histogram",
               "[STABLE] Response latency distribution in seconds for each "
               "verb, dry run value, group, version, resource, subresource, "
               "scope and component.");
    each_series(m, render_durations, b);
    put_family(b, "apiserver_request_total", "counter",
               "[STABLE] Counter of apiserver requests broken out for each "
               "verb, dry run value, group, version, resource, scope, "
               "component, and HTTP response code.");
    each_series(m, render_counts, b);
    if (storage) {
        put_family(b, "apiserver_storage_objects", "gauge",
                   "[STABLE] Number of stored objects at the time of last "
                   "check split by kind.");
        storage(storage_arg, emit_storage, b);
    }
    render_process(m, b);
}

void
metrics_render_store(struct dbuf *b, const struct store_stats *st)
{
    put_family(b, "dpf_store_commits_total", "counter",
               "Durable commits of the store (one fsync each with "
               "sync=full); a commit carries a group of writes.");
    dbuf_printf(b, "dpf_store_commits_total %lld\n", (long long) st->commits);
    put_family(b, "dpf_store_writes_total", "counter",
               "Writes (creates, updates, deletes) the store committed.");
    dbuf_printf(b, "dpf_store_writes_total %lld\n", (long long) st->writes);
}
