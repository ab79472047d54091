/* dts-bench: figures for the telemetry service (issue 3). Prints numbers,
 * never fails on speed. Subcommands:
 *
 *   dts-bench netdev --dts-url URL --dts-pid PID --ne-url URL --ne-pid PID
 *                    [--idle S] [--duration S] [--rate N]
 *       CPU per second of idle collection, CPU per scrape, scrape latency
 *       p50/p99 at N scrapes/s, and RSS, for dts and node_exporter side by
 *       side (bench/dts-bench-netdev.sh sets up the 200 veths and starts
 *       both exporters inside a netns).
 *   dts-bench events --socket PATH --metrics-url URL [--count N] [--pid PID]
 *       exporter-library events per second into a running dts, measured
 *       until dts's dts_ipc_records_total{kind="event"} has them all.
 *   dts-bench counters --socket PATH --metrics-url URL [--count N]
 *                      [--names K] [--pid PID]
 *       exporter-library app counters per second over K distinct names
 *       (default 2,000,000 records over 100,000 names), per tenth of the
 *       run and overall, until dts has counted them all.
 *   dts-bench netflow [--count N] [--socket PATH --metrics-url URL]
 *       NetFlow v9 records per second out of lib/netflow (in process, to a
 *       UDP sink on 127.0.0.1); with --socket also end to end: app ->
 *       libdts-exporter -> dts -> NetFlow datagrams, measured on
 *       dts_netflow_records_total.
 *
 * CPU comes from /proc/<pid>/task/<tid>/schedstat (run time, ns), RSS
 * from /proc/<pid>/status (VmRSS), PSS from /proc/<pid>/smaps_rollup. */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dpf/dts-exporter.h"
#include "lib/telemetry/netflow.h"
#include "lib/base/util.h"

/* ---- /proc helpers -------------------------------------------------------- */

/* CPU seconds of pid: the sum of its threads' run time from
 * /proc/<pid>/task/<tid>/schedstat (nanoseconds, so a 20 s idle window
 * resolves 0.001 % of a core; /proc/<pid>/stat counts 10 ms ticks).
 * Falls back to utime + stime when schedstat is missing. Time of threads
 * that exited is not in the sum; both exporters keep their threads. */
static double
proc_cpu_s(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    double total = 0;
    bool any = false;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char p[320], *data;
        size_t len;
        snprintf(p, sizeof p, "/proc/%d/task/%s/schedstat", pid, e->d_name);
        if (file_read_all(p, &data, &len) == 0) {
            total += strtod(data, NULL) / 1e9;
            any = true;
            free(data);
        }
    }
    if (d) {
        closedir(d);
    }
    if (any) {
        return total;
    }
    char *data;
    size_t len;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    if (file_read_all(path, &data, &len) < 0) {
        return -1;
    }
    /* fields after the ")" of comm: state is field 3; utime 14, stime 15 */
    char *p = strrchr(data, ')');
    unsigned long ut = 0, st = 0;
    if (p) {
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
               &ut, &st);
    }
    free(data);
    return (double) (ut + st) / (double) sysconf(_SC_CLK_TCK);
}

/* A "Key:   N kB" field of /proc/<pid>/<file>, in MiB (-1 if absent). */
static double
proc_kb_field_mib(int pid, const char *file, const char *key)
{
    char path[64], *data;
    size_t len;
    snprintf(path, sizeof path, "/proc/%d/%s", pid, file);
    if (file_read_all(path, &data, &len) < 0) {
        return -1;
    }
    char *p = strstr(data, key);
    long kb = p ? strtol(p + strlen(key), NULL, 10) : -1;
    free(data);
    return kb < 0 ? -1 : kb / 1024.0;
}

static double
proc_rss_mib(int pid)
{
    return proc_kb_field_mib(pid, "status", "VmRSS:");
}

/* Proportional set size: shared library pages divided among the
 * processes that map them. */
static double
proc_pss_mib(int pid)
{
    return proc_kb_field_mib(pid, "smaps_rollup", "\nPss:");
}

/* ---- tiny HTTP GET ------------------------------------------------------- */

struct url {
    char host[64];
    uint16_t port;
    char path[256];
};

static int
url_parse(const char *s, struct url *u)
{
    unsigned port = 80;
    memset(u, 0, sizeof *u);
    if (sscanf(s, "http://%63[^:/]:%u%255s", u->host, &port, u->path) < 2) {
        return -1;
    }
    u->port = (uint16_t) port;
    if (!u->path[0]) {
        strcpy(u->path, "/");
    }
    return 0;
}

/* GET the URL; body into out (may be NULL). Returns bytes read or -errno. */
static long
http_get(const struct url *u, struct dbuf *out)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(u->port)};
    inet_pton(AF_INET, u->host, &a.sin_addr);
    if (connect(fd, (struct sockaddr *) &a, sizeof a) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
                     "Accept: text/plain\r\n\r\n",
                     u->path, u->host);
    if (write(fd, req, (size_t) n) != n) {
        close(fd);
        return -EIO;
    }
    char buf[65536];
    long total = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0) {
        total += r;
        if (out) {
            dbuf_append(out, buf, (size_t) r);
        }
    }
    close(fd);
    return total;
}

/* Sum of the values of the series `name{labels}` on a /metrics page. */
static double
metric_value(const struct url *u, const char *series)
{
    struct dbuf b;
    dbuf_init(&b);
    if (http_get(u, &b) < 0 || !b.data) {
        dbuf_free(&b);
        return -1;
    }
    double v = -1;
    size_t sl = strlen(series);
    for (char *line = b.data; line && *line;) {
        char *nl = strchr(line, '\n');
        if (!strncmp(line, series, sl) && line[sl] == ' ') {
            v = strtod(line + sl + 1, NULL);
            break;
        }
        line = nl ? nl + 1 : NULL;
    }
    dbuf_free(&b);
    return v;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

/* ---- netdev --------------------------------------------------------------- */

struct target {
    const char *name;
    struct url url;
    int pid;
    double idle_cpu_per_s; /* CPU s per s without scrapes */
    double cpu_per_scrape; /* CPU s per scrape, idle part removed */
    double p50_ms, p99_ms; /* scrape latency */
    double rss_mib;        /* resident set */
    double pss_mib;        /* proportional set */
    long bytes;            /* size of one scrape */
    long lines;            /* metric lines of one scrape */
};

static void
scrape_phase(struct target *t, double duration, int rate)
{
    int n = (int) (duration * rate);
    double *lat = xcalloc((size_t) n, sizeof *lat);
    double cpu0 = proc_cpu_s(t->pid);
    int64_t start = time_mono_ns();
    int64_t period = 1000000000LL / rate;
    int ok = 0;
    for (int i = 0; i < n; i++) {
        int64_t due = start + i * period;
        int64_t now = time_mono_ns();
        if (due > now) {
            poll(NULL, 0, (int) ((due - now) / 1000000));
        }
        int64_t t0 = time_mono_ns();
        long r = http_get(&t->url, NULL);
        if (r > 0) {
            lat[ok++] = (double) (time_mono_ns() - t0) / 1e6;
            t->bytes = r;
        }
    }
    double elapsed = (double) (time_mono_ns() - start) / 1e9;
    double cpu = proc_cpu_s(t->pid) - cpu0;
    qsort(lat, (size_t) ok, sizeof *lat, cmp_double);
    t->p50_ms = ok ? lat[ok / 2] : NAN;
    t->p99_ms =
        ok ? lat[(int) (ok * 0.99) < ok ? (int) (ok * 0.99) : ok - 1] : NAN;
    t->cpu_per_scrape = ok ? (cpu - t->idle_cpu_per_s * elapsed) / ok : NAN;
    t->rss_mib = proc_rss_mib(t->pid);
    t->pss_mib = proc_pss_mib(t->pid);
    struct dbuf b;
    dbuf_init(&b);
    http_get(&t->url, &b);
    t->lines = 0;
    for (size_t i = 0; i < b.len; i++) {
        t->lines += b.data[i] == '\n';
    }
    dbuf_free(&b);
    free(lat);
    if (ok != n) {
        fprintf(stderr, "%s: %d of %d scrapes failed\n", t->name, n - ok, n);
    }
}

static int
cmd_netdev(int argc, char **argv)
{
    struct target t[2] = {{.name = "dts"}, {.name = "node_exporter"}};
    double idle = 20, duration = 30;
    int rate = 10, c;
    static const struct option opts[] = {
        {"dts-url", required_argument, NULL, 'a'},
        {"dts-pid", required_argument, NULL, 'b'},
        {"ne-url", required_argument, NULL, 'c'},
        {"ne-pid", required_argument, NULL, 'd'},
        {"idle", required_argument, NULL, 'i'},
        {"duration", required_argument, NULL, 'D'},
        {"rate", required_argument, NULL, 'r'},
        {NULL, 0, NULL, 0},
    };
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
        case 'c':
            if (url_parse(optarg, &t[c == 'c'].url) < 0) {
                fprintf(stderr, "dts-bench: bad URL %s\n", optarg);
                return 2;
            }
            break;
        case 'b':
        case 'd':
            t[c == 'd'].pid = atoi(optarg);
            break;
        case 'i':
            idle = atof(optarg);
            break;
        case 'D':
            duration = atof(optarg);
            break;
        case 'r':
            rate = atoi(optarg);
            break;
        default:
            return 2;
        }
    }
    if (!t[0].pid || !t[1].pid || rate <= 0) {
        fprintf(stderr, "dts-bench netdev: --dts-pid/--ne-pid required\n");
        return 2;
    }
    /* idle: both processes, no scrapes */
    double c0[2] = {proc_cpu_s(t[0].pid), proc_cpu_s(t[1].pid)};
    int64_t s0 = time_mono_ns();
    poll(NULL, 0, (int) (idle * 1000));
    double el = (double) (time_mono_ns() - s0) / 1e9;
    for (int i = 0; i < 2; i++) {
        t[i].idle_cpu_per_s = (proc_cpu_s(t[i].pid) - c0[i]) / el;
    }
    for (int i = 0; i < 2; i++) {
        scrape_phase(&t[i], duration, rate);
    }
    printf("%-14s %12s %12s %10s %10s %9s %9s %9s %7s\n", "exporter",
           "idle_cpu_%", "cpu_ms/scr", "p50_ms", "p99_ms", "rss_MiB", "pss_MiB",
           "bytes", "lines");
    for (int i = 0; i < 2; i++) {
        printf("%-14s %12.3f %12.3f %10.2f %10.2f %9.2f %9.2f %9ld %7ld\n",
               t[i].name, t[i].idle_cpu_per_s * 100, t[i].cpu_per_scrape * 1000,
               t[i].p50_ms, t[i].p99_ms, t[i].rss_mib, t[i].pss_mib, t[i].bytes,
               t[i].lines);
    }
    printf("ratio dts/node_exporter: cpu_per_scrape %.3f (goal <= 0.3), "
           "rss %.3f (goal <= 0.25)\n",
           t[0].cpu_per_scrape / t[1].cpu_per_scrape,
           t[0].rss_mib / t[1].rss_mib);
    printf("dts collection CPU at its update period: %.3f%% of a core "
           "(goal < 1%%)\n",
           t[0].idle_cpu_per_s * 100);
    return 0;
}

/* ---- events --------------------------------------------------------------- */

struct bench_event {
    uint64_t ts;
    uint32_t id;
    uint32_t value;
    uint16_t port;
    uint8_t addr[4];
    uint8_t pad[10];
} __attribute__((packed));

static const struct dts_exporter_field bench_fields[] = {
    {"ts", DTS_EXPORTER_TIMESTAMP, 1}, {"id", DTS_EXPORTER_U32, 1},
    {"value", DTS_EXPORTER_U32, 1},    {"port", DTS_EXPORTER_U16, 1},
    {"addr", DTS_EXPORTER_IP4, 1},     {"pad", DTS_EXPORTER_U8, 10},
};

static double
wait_series(const struct url *u, const char *series, double target,
            int timeout_s)
{
    int64_t deadline = time_mono_ms() + timeout_s * 1000LL;
    double v;
    while ((v = metric_value(u, series)) < target &&
           time_mono_ms() < deadline) {
        poll(NULL, 0, 10);
    }
    return v;
}

static int
cmd_events(int argc, char **argv)
{
    const char *sock = NULL, *murl = NULL;
    long count = 5000000;
    int pid = 0, c;
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"metrics-url", required_argument, NULL, 'm'},
        {"count", required_argument, NULL, 'n'},
        {"pid", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            sock = optarg;
            break;
        case 'm':
            murl = optarg;
            break;
        case 'n':
            count = atol(optarg);
            break;
        case 'p':
            pid = atoi(optarg);
            break;
        default:
            return 2;
        }
    }
    struct url u;
    if (!sock || !murl || url_parse(murl, &u) < 0) {
        fprintf(stderr, "dts-bench events: --socket and --metrics-url\n");
        return 2;
    }
    const char *series = "dts_ipc_records_total{kind=\"event\"}";
    double base = metric_value(&u, series);
    if (base < 0) {
        base = 0;
    }
    struct dts_exporter_options o = {.socket_path = sock,
                                     .source_id = "bench",
                                     .buffer_bytes = 1 << 20,
                                     .block_when_full = true};
    struct dts_exporter *ex = dts_exporter_create(&o);
    int type = dts_exporter_add_type(ex, "bench_event", bench_fields,
                                     ARRAY_SIZE(bench_fields));
    if (type < 0 || dts_exporter_start(ex) < 0) {
        fprintf(stderr, "dts-bench events: cannot connect to %s\n", sock);
        return 1;
    }
    struct bench_event batch[256];
    memset(batch, 0, sizeof batch);
    double cpu0 = pid ? proc_cpu_s(pid) : 0;
    int64_t t0 = time_mono_ns();
    for (long i = 0; i < count; i += 256) {
        size_t n = (size_t) DPF_MIN(256, count - i);
        for (size_t k = 0; k < n; k++) {
            batch[k].id = (uint32_t) (i + (long) k);
        }
        dts_exporter_send_events(ex, type, batch, n);
    }
    dts_exporter_flush(ex);
    int64_t t_sent = time_mono_ns();
    double got = wait_series(&u, series, base + (double) count, 120);
    int64_t t1 = time_mono_ns();
    double cpu = pid ? proc_cpu_s(pid) - cpu0 : 0;
    struct dts_exporter_stats st;
    dts_exporter_get_stats(ex, &st);
    dts_exporter_destroy(ex);
    double secs = (double) (t1 - t0) / 1e9;
    printf("events: %ld sent in %.3f s (library), %.0f received by dts in "
           "%.3f s: %.0f events/s; dropped %llu\n",
           count, (double) (t_sent - t0) / 1e9, got - base, secs,
           (got - base) / secs, (unsigned long long) st.dropped);
    if (pid) {
        printf("dts CPU: %.3f s for the run = %.1f%% of a core, %.0f ns per "
               "event\n",
               cpu, 100 * cpu / secs, cpu * 1e9 / (got - base));
    }
    return 0;
}

/* CPU seconds of pid's thread named comm (e.g. dts's "ipc"), or -1. */
static double
thread_cpu_s(int pid, const char *comm)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *d = opendir(path);
    double total = -1;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char p[320], *data;
        size_t len;
        snprintf(p, sizeof p, "/proc/%d/task/%s/comm", pid, e->d_name);
        if (file_read_all(p, &data, &len) < 0) {
            continue;
        }
        bool match =
            len && !strncmp(data, comm, len - 1) && strlen(comm) == len - 1;
        free(data);
        snprintf(p, sizeof p, "/proc/%d/task/%s/schedstat", pid, e->d_name);
        if (match && file_read_all(p, &data, &len) == 0) {
            total = strtod(data, NULL) / 1e9;
            free(data);
        }
    }
    if (d) {
        closedir(d);
    }
    return total;
}

/* ---- counters ------------------------------------------------------------ */

/* App counters over --names distinct names, round robin: dts keeps one
 * series per name, so this measures the per-name cost of its intake. The
 * sender blocks when dts falls behind (block_when_full), so the rate of
 * each tenth of the run is dts's rate at that point: the first tenth
 * creates the series, the last ones update them. */
static int
cmd_counters(int argc, char **argv)
{
    const char *sock = NULL, *murl = NULL;
    long count = 2000000, names = 100000;
    int pid = 0, c;
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"metrics-url", required_argument, NULL, 'm'},
        {"count", required_argument, NULL, 'n'},
        {"names", required_argument, NULL, 'k'},
        {"pid", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            sock = optarg;
            break;
        case 'm':
            murl = optarg;
            break;
        case 'n':
            count = atol(optarg);
            break;
        case 'k':
            names = atol(optarg);
            break;
        case 'p':
            pid = atoi(optarg);
            break;
        default:
            return 2;
        }
    }
    struct url u;
    if (!sock || !murl || url_parse(murl, &u) < 0 || names < 1 || count < 10) {
        fprintf(stderr, "dts-bench counters: --socket and --metrics-url\n");
        return 2;
    }
    const char *series = "dts_ipc_records_total{kind=\"counter\"}";
    double base = metric_value(&u, series);
    if (base < 0) {
        base = 0;
    }
    struct dts_exporter_options o = {.socket_path = sock,
                                     .source_id = "bench-counters",
                                     .buffer_bytes = 256 * 1024,
                                     .block_when_full = true};
    struct dts_exporter *ex = dts_exporter_create(&o);
    if (!ex || dts_exporter_start(ex) < 0) {
        fprintf(stderr, "dts-bench counters: cannot connect to %s\n", sock);
        return 1;
    }
    char(*name)[32] = calloc((size_t) names, sizeof *name);
    for (long i = 0; i < names; i++) {
        snprintf(name[i], sizeof name[i], "bench_ctr_%ld", i);
    }
    double cpu0 = pid ? proc_cpu_s(pid) : 0;
    double ipc0 = pid ? thread_cpu_s(pid, "ipc") : 0;
    int64_t t0 = time_mono_ns(), tslice = t0;
    long slice = count / 10;
    double min_rate = 0;
    for (long i = 0; i < count; i++) {
        dts_exporter_send_counter(ex, name[i % names], (uint64_t) i);
        if ((i + 1) % slice == 0) {
            int64_t now = time_mono_ns();
            double rate = (double) slice * 1e9 / (double) (now - tslice);
            printf("counters %ld..%ld: %.0f records/s\n", i + 1 - slice, i,
                   rate);
            if (min_rate == 0 || rate < min_rate) {
                min_rate = rate;
            }
            tslice = now;
        }
    }
    dts_exporter_flush(ex);
    double got = wait_series(&u, series, base + (double) count, 300);
    int64_t t1 = time_mono_ns();
    double cpu = pid ? proc_cpu_s(pid) - cpu0 : 0;
    double ipc = pid ? thread_cpu_s(pid, "ipc") - ipc0 : 0;
    struct dts_exporter_stats st;
    dts_exporter_get_stats(ex, &st);
    dts_exporter_destroy(ex);
    free(name);
    double secs = (double) (t1 - t0) / 1e9;
    printf("counters: %ld records over %ld names, %.0f received by dts in "
           "%.3f s: %.0f records/s overall, slowest tenth %.0f records/s; "
           "dropped %llu\n",
           count, names, got - base, secs, (got - base) / secs, min_rate,
           (unsigned long long) st.dropped);
    if (pid) {
        /* The intake thread's CPU per record bounds the rate dts sustains
         * on a core of its own, whatever else shares the machine. */
        double ns = ipc * 1e9 / (got - base);
        printf("dts CPU: %.3f s = %.0f ns per record; intake thread "
               "(\"ipc\") %.3f s = %.0f ns per record = %.2f M records/s "
               "per core\n",
               cpu, cpu * 1e9 / (got - base), ipc, ns, 1e3 / ns);
    }
    return 0;
}

/* ---- netflow -------------------------------------------------------------- */

static int
cmd_netflow(int argc, char **argv)
{
    long count = 2000000;
    const char *sock = NULL, *murl = NULL;
    int c;
    static const struct option opts[] = {
        {"count", required_argument, NULL, 'n'},
        {"socket", required_argument, NULL, 's'},
        {"metrics-url", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            count = atol(optarg);
            break;
        case 's':
            sock = optarg;
            break;
        case 'm':
            murl = optarg;
            break;
        default:
            return 2;
        }
    }
    /* in process: lib/netflow to a UDP sink nobody reads */
    int sink = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(sink, (struct sockaddr *) &a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(sink, (struct sockaddr *) &a, &al);
    struct nf_exporter_config cfg = {.version = NF_VERSION_V9,
                                     .host = "127.0.0.1",
                                     .port = ntohs(a.sin_port)};
    struct nf_exporter *e = nf_exporter_create(&cfg, NULL);
    struct nf_flow f = {.family = 4,
                        .protocol = 6,
                        .src_port = 1,
                        .dst_port = 443,
                        .bytes = 1500,
                        .packets = 10};
    memcpy(f.src, "\x0a\x00\x00\x01", 4);
    memcpy(f.dst, "\x0a\x00\x00\x02", 4);
    int64_t t0 = time_mono_ns();
    for (long i = 0; i < count; i++) {
        f.src_port = (uint16_t) i;
        nf_exporter_add(e, &f);
    }
    nf_exporter_flush(e);
    double secs = (double) (time_mono_ns() - t0) / 1e9;
    struct nf_exporter_stats st;
    nf_exporter_get_stats(e, &st);
    printf("netflow (lib, v9, MTU 1500): %ld records in %llu datagrams, "
           "%.3f s: %.0f records/s, %.0f datagrams/s\n",
           count, (unsigned long long) st.packets, secs, count / secs,
           (double) st.packets / secs);
    nf_exporter_destroy(e);
    close(sink);
    if (!sock) {
        return 0;
    }
    /* end to end through dts */
    struct url u;
    if (!murl || url_parse(murl, &u) < 0) {
        fprintf(stderr, "dts-bench netflow: --metrics-url needed\n");
        return 2;
    }
    const char *series = "dts_netflow_records_total";
    double base = metric_value(&u, series);
    struct dts_exporter_options o = {.socket_path = sock,
                                     .source_id = "bench-nf",
                                     .buffer_bytes = 1 << 20,
                                     .block_when_full = true};
    struct dts_exporter *ex = dts_exporter_create(&o);
    if (dts_exporter_start(ex) < 0) {
        fprintf(stderr, "dts-bench netflow: cannot connect to %s\n", sock);
        return 1;
    }
    struct dts_exporter_netflow_record r = {.family = 4,
                                            .protocol = 6,
                                            .dst_port = 443,
                                            .bytes = 1500,
                                            .packets = 10};
    memcpy(r.src, "\x0a\x00\x00\x01", 4);
    memcpy(r.dst, "\x0a\x00\x00\x02", 4);
    long n = count / 4;
    t0 = time_mono_ns();
    for (long i = 0; i < n; i++) {
        r.src_port = (uint16_t) i;
        dts_exporter_send_netflow(ex, &r);
    }
    dts_exporter_flush(ex);
    double got = wait_series(&u, series, base + (double) n, 120);
    secs = (double) (time_mono_ns() - t0) / 1e9;
    dts_exporter_destroy(ex);
    printf("netflow (app -> dts -> UDP): %.0f of %ld records out in %.3f s: "
           "%.0f records/s\n",
           got - base, n, secs, (got - base) / secs);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help")) {
        printf("Usage: dts-bench netdev|events|counters|netflow [options]\n"
               "See the comment at the top of bench/dts-bench.c and\n"
               "docs/benchmarks.md.\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "netdev")) {
        return cmd_netdev(argc - 1, argv + 1);
    }
    if (!strcmp(argv[1], "events")) {
        return cmd_events(argc - 1, argv + 1);
    }
    if (!strcmp(argv[1], "counters")) {
        return cmd_counters(argc - 1, argv + 1);
    }
    if (!strcmp(argv[1], "netflow")) {
        return cmd_netflow(argc - 1, argv + 1);
    }
    fprintf(stderr, "dts-bench: unknown command %s\n", argv[1]);
    return 2;
}
