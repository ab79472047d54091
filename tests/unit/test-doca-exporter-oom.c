/* libdoca-telemetry-exporter under allocation failure: like libdts-exporter
 * under it (test-dts-exporter-oom.c), DOCA's API runs inside applications,
 * so a failed allocation must come back as DOCA_ERROR_NO_MEMORY, never as
 * an abort, a leak or a crash.
 *
 * Linked with -Wl,--wrap=malloc,calloc,realloc,strdup,strndup,vasprintf
 * (tests/unit/meson.build). A whole DOCA session (schema with a type,
 * source, events, a metrics context with constant label, label set,
 * counters, increments and a gauge, then a NetFlow template, exporter and
 * records) runs once to count its allocations, then once for every N with
 * the Nth allocation failing. Every call must return DOCA_SUCCESS or
 * DOCA_ERROR_NO_MEMORY; after a failure the session cleans up as an app
 * would, and under ASan LeakSanitizer fails the program on any leak. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <doca_telemetry_exporter.h>
#include <doca_telemetry_exporter_netflow.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* ---- failing allocator ------------------------------------------------- */

static bool armed;
static long n_allocs;
static long fail_at;

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
int __real_vasprintf(char **out, const char *fmt, va_list ap);

static bool
alloc_fails(void)
{
    if (!armed) {
        return false;
    }
    n_allocs++;
    return fail_at && n_allocs == fail_at;
}

void *
__wrap_malloc(size_t n)
{
    return alloc_fails() ? NULL : __real_malloc(n);
}

void *
__wrap_calloc(size_t n, size_t size)
{
    return alloc_fails() ? NULL : __real_calloc(n, size);
}

void *
__wrap_realloc(void *p, size_t n)
{
    return alloc_fails() ? NULL : __real_realloc(p, n);
}

char *
__wrap_strdup(const char *s)
{
    return alloc_fails() ? NULL : __real_strdup(s);
}

char *
__wrap_strndup(const char *s, size_t n)
{
    return alloc_fails() ? NULL : __real_strndup(s, n);
}

int
__wrap_vasprintf(char **out, const char *fmt, va_list ap)
{
    if (alloc_fails()) {
        return -1;
    }
    return __real_vasprintf(out, fmt, ap);
}

/* ---- a listening socket standing in for dts ---------------------------- */

static char dts_dir[64];
static char dts_path[96];
static int dts_fd = -1;

static void
dts_start(void)
{
    snprintf(dts_dir, sizeof dts_dir, "/tmp/doca-oom-XXXXXX");
    assert_non_null(mkdtemp(dts_dir));
    snprintf(dts_path, sizeof dts_path, "%s/dts.sock", dts_dir);
    dts_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(dts_fd >= 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    memcpy(sun.sun_path, dts_path, strlen(dts_path) + 1);
    assert_int_equal(bind(dts_fd, (struct sockaddr *) &sun, sizeof sun), 0);
    assert_int_equal(listen(dts_fd, 64), 0);
}

/* Close what the library connected, so the backlog never fills. */
static void
dts_drain(void)
{
    int c;
    while ((c = accept(dts_fd, NULL, NULL)) >= 0) {
        close(c);
    }
}

static void
dts_stop(void)
{
    close(dts_fd);
    unlink(dts_path);
    rmdir(dts_dir);
}

/* ---- one session --------------------------------------------------------- */

/* A call's result must be success or out-of-memory; on the latter the
 * session jumps to its clean-up. */
#define TRY(call)                                       \
    do {                                                \
        doca_error_t r_ = (call);                       \
        if (r_ != DOCA_SUCCESS) {                       \
            assert_int_equal(r_, DOCA_ERROR_NO_MEMORY); \
            goto out;                                   \
        }                                               \
    } while (0)

struct ev {
    uint64_t ts;
    char name[8];
} __attribute__((packed));

static void
events_and_metrics(void)
{
    struct doca_telemetry_exporter_schema *s = NULL;
    struct doca_telemetry_exporter_source *src = NULL;
    struct doca_telemetry_exporter_type *t = NULL;
    struct doca_telemetry_exporter_field *f = NULL;
    doca_telemetry_exporter_type_index_t idx;
    TRY(doca_telemetry_exporter_schema_init("oom", &s));
    doca_telemetry_exporter_schema_set_ipc_enabled(s);
    doca_telemetry_exporter_schema_set_ipc_sockets_dir(s, dts_dir);
    TRY(doca_telemetry_exporter_type_create(&t));
    static const char *const names[] = {"ts", "name"};
    static const char *const types[] = {
        DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_TIMESTAMP,
        DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_CHAR};
    static const uint16_t lens[] = {1, 8};
    for (int i = 0; i < 2; i++) {
        TRY(doca_telemetry_exporter_field_create(&f));
        doca_telemetry_exporter_field_set_name(f, names[i]);
        doca_telemetry_exporter_field_set_type_name(f, types[i]);
        doca_telemetry_exporter_field_set_array_len(f, lens[i]);
        TRY(doca_telemetry_exporter_type_add_field(t, f));
        f = NULL;
    }
    TRY(doca_telemetry_exporter_schema_add_type(s, "ev", t, &idx));
    t = NULL;
    TRY(doca_telemetry_exporter_schema_start(s));
    TRY(doca_telemetry_exporter_source_create(s, &src));
    doca_telemetry_exporter_source_set_id(src, "oom-src");
    doca_telemetry_exporter_source_set_tag(src, "oom-tag");
    TRY(doca_telemetry_exporter_source_start(src));
    struct ev e[3] = {{1, "a"}, {2, "b"}, {3, "c"}};
    TRY(doca_telemetry_exporter_source_report(src, idx, e, 3));
    TRY(doca_telemetry_exporter_metrics_create_context(src));
    TRY(doca_telemetry_exporter_metrics_add_constant_label(src, "host", "h"));
    const char *ln[] = {"iface", "dir"};
    doca_telemetry_exporter_label_set_id_t id;
    TRY(doca_telemetry_exporter_metrics_add_label_names(src, ln, 2, &id));
    const char *lv[] = {"eth0", "rx"};
    TRY(doca_telemetry_exporter_metrics_add_counter(src, 0, "c_total", 3, id,
                                                    lv));
    TRY(doca_telemetry_exporter_metrics_add_counter_increment(src, 0, "i_total",
                                                              1, id, lv));
    TRY(doca_telemetry_exporter_metrics_add_counter_increment(src, 0, "i_total",
                                                              1, id, lv));
    TRY(doca_telemetry_exporter_metrics_add_gauge_increment(src, 0, "g", 1.5, 0,
                                                            NULL));
    TRY(doca_telemetry_exporter_metrics_flush(src));
    const char *root = NULL;
    TRY(doca_telemetry_exporter_schema_get_ipc_sockets_dir(s, &root));
    free((char *) root);
out:
    doca_telemetry_exporter_field_destroy(f);
    doca_telemetry_exporter_type_destroy(t);
    doca_telemetry_exporter_source_destroy(src); /* frees the context */
    doca_telemetry_exporter_schema_destroy(s);
}

struct nfrec {
    uint32_t src, dst;
    uint16_t sport;
} __attribute__((packed));

static void
netflow(void)
{
    struct doca_telemetry_exporter_netflow_template *t = NULL;
    struct doca_telemetry_exporter_netflow_flowset_field *f = NULL;
    bool inited = false;
    TRY(doca_telemetry_exporter_netflow_template_create(&t));
    static const uint16_t fl[][2] = {
        {DOCA_TELEMETRY_EXPORTER_NETFLOW_IPV4_SRC_ADDR, 4},
        {DOCA_TELEMETRY_EXPORTER_NETFLOW_IPV4_DST_ADDR, 4},
        {DOCA_TELEMETRY_EXPORTER_NETFLOW_L4_SRC_PORT, 2},
    };
    for (int i = 0; i < 3; i++) {
        TRY(doca_telemetry_exporter_netflow_field_create(&f));
        doca_telemetry_exporter_netflow_field_set_type(f, fl[i][0]);
        doca_telemetry_exporter_netflow_field_set_len(f, fl[i][1]);
        TRY(doca_telemetry_exporter_netflow_template_add_field(t, f));
        f = NULL;
    }
    TRY(doca_telemetry_exporter_netflow_init(7));
    inited = true;
    doca_telemetry_exporter_netflow_set_ipc_enabled();
    doca_telemetry_exporter_netflow_set_ipc_sockets_dir(dts_dir);
    doca_telemetry_exporter_netflow_source_set_id("oom-nf");
    TRY(doca_telemetry_exporter_netflow_start());
    struct nfrec r = {0x0100000a, 0x0200000a, 0x5000};
    const void *recs[2] = {&r, &r};
    TRY(doca_telemetry_exporter_netflow_send(t, recs, 2, NULL));
    TRY(doca_telemetry_exporter_netflow_flush());
out:
    if (inited) {
        doca_telemetry_exporter_netflow_destroy();
    }
    if (f) {
        doca_telemetry_exporter_netflow_field_destroy(f);
    }
    if (t) {
        doca_telemetry_exporter_netflow_template_destroy(t);
    }
}

static void
run_session(long fail)
{
    n_allocs = 0;
    fail_at = fail;
    armed = true;
    events_and_metrics();
    netflow();
    armed = false;
    dts_drain();
}

static void
test_fail_each_allocation(void **state)
{
    (void) state;
    dts_start();
    run_session(0);
    long total = n_allocs;
    assert_true(total > 20);
    for (long n = 1; n <= total; n++) {
        run_session(n);
    }
    dts_stop();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fail_each_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
