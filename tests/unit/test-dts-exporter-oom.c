/* libdts-exporter under allocation failure: the library runs inside
 * applications, so when memory runs out it must return -ENOMEM (create:
 * NULL, errno ENOMEM) and never abort, leak or corrupt its stream.
 *
 * This program is linked with -Wl,--wrap=malloc,calloc,realloc,strdup,
 * strndup,vasprintf (tests/unit/meson.build): every allocation made by the
 * library and the code it links (lib/telemetry, lib/base) goes through the
 * wrappers below. A whole session (create, two event types, start, events,
 * counters, a gauge, a flow record, flush, destroy) is run once to count its
 * allocations, then once for every N in 1..total with the Nth allocation
 * failing. Each public call must return its success value or -ENOMEM; the
 * bytes dts receives must decode as a valid dts-ipc stream; under ASan
 * (build-asan) LeakSanitizer fails the program on any leak. An abort would
 * kill the program, which fails the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "dpf/dts-exporter.h"
#include "lib/telemetry/dts-ipc.h"

/* ---- failing allocator ------------------------------------------------- */

static bool armed;    /* count (and fail) allocations now */
static long n_allocs; /* allocations counted while armed */
static long fail_at;  /* 1-based allocation to fail; 0 = none */
static long n_failed; /* allocations failed */

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
    if (fail_at && n_allocs == fail_at) {
        n_failed++;
        return true;
    }
    return false;
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

/* ---- a stand-in for dts: a listening socket we drain ourselves --------- */

struct fake_dts {
    char dir[64];
    char path[96];
    int lfd;
};

static void
fake_dts_start(struct fake_dts *d)
{
    snprintf(d->dir, sizeof d->dir, "/tmp/dts-oom-XXXXXX");
    assert_non_null(mkdtemp(d->dir));
    snprintf(d->path, sizeof d->path, "%s/dts.sock", d->dir);
    d->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    assert_true(d->lfd >= 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", d->path);
    assert_int_equal(bind(d->lfd, (struct sockaddr *) &sun, sizeof sun), 0);
    assert_int_equal(listen(d->lfd, 64), 0);
}

static void
fake_dts_stop(struct fake_dts *d)
{
    close(d->lfd);
    unlink(d->path);
    rmdir(d->dir);
}

struct received {
    long hello, schema, events, counters, flows, bye;
};

static void
on_hello(void *aux, const struct dts_ipc_hello *h)
{
    (void) h;
    ((struct received *) aux)->hello++;
}

static void
on_schema(void *aux, const struct dts_ipc_schema *s)
{
    (void) s;
    ((struct received *) aux)->schema++;
}

static void
on_event(void *aux, const struct dts_ipc_evtype *t, unsigned idx,
         const uint8_t *data)
{
    (void) t;
    (void) idx;
    (void) data;
    ((struct received *) aux)->events++;
}

static void
on_counter(void *aux, int64_t ts, const struct dts_ipc_counter *c)
{
    (void) ts;
    (void) c;
    ((struct received *) aux)->counters++;
}

static void
on_netflow(void *aux, const struct nf_flow *f)
{
    (void) f;
    ((struct received *) aux)->flows++;
}

static void
on_bye(void *aux)
{
    ((struct received *) aux)->bye++;
}

/* Accept every connection the exporter made (it has closed them all by
 * now) and decode what it sent: any protocol violation fails the test. */
static void
fake_dts_drain(struct fake_dts *d, struct received *rx)
{
    static const struct dts_ipc_handlers h = {on_hello,   on_schema,  on_event,
                                              on_counter, on_netflow, on_bye};
    int fd;
    while ((fd = accept4(d->lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
        struct dts_ipc_session *s = dts_ipc_session_create(&h, rx, 0);
        char buf[65536];
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0) {
            struct dpf_error err = {0};
            int rc = dts_ipc_session_feed(s, buf, (size_t) n, &err);
            if (rc < 0) {
                fail_msg("dts received a bad stream (fail_at %ld): %s", fail_at,
                         err.message);
            }
        }
        assert_int_equal(n, 0);
        dts_ipc_session_free(s);
        close(fd);
    }
    assert_int_equal(errno, EAGAIN);
}

/* ---- one session ------------------------------------------------------- */

struct __attribute__((packed)) conn_event {
    uint64_t ts;
    uint16_t port;
    uint8_t addr[4];
    char name[32];
};

static const struct dts_exporter_field conn_fields[] = {
    {"ts", DTS_EXPORTER_TIMESTAMP, 1},
    {"port", DTS_EXPORTER_U16, 1},
    {"addr", DTS_EXPORTER_IP4, 1},
    {"name", DTS_EXPORTER_STRING, 32},
};

static const struct dts_exporter_field load_fields[] = {
    {"cpu", DTS_EXPORTER_DOUBLE, 1},
    {"queue", DTS_EXPORTER_U32, 4},
};

/* rc of a call that may fail only for lack of memory. */
static void
ok_or_enomem(int rc, const char *call)
{
    if (rc != 0 && rc != -ENOMEM) {
        fail_msg("%s returned %d (fail_at %ld): expected 0 or -ENOMEM", call,
                 rc, fail_at);
    }
}

/* Declare a type; -ENOMEM must leave the exporter as it was, so the same
 * call then succeeds with the same index. */
static void
add_type(struct dts_exporter *ex, const char *name,
         const struct dts_exporter_field *f, size_t n, int want)
{
    int rc = dts_exporter_add_type(ex, name, f, n);
    if (rc == -ENOMEM) {
        rc = dts_exporter_add_type(ex, name, f, n);
    }
    assert_int_equal(rc, want);
}

/* The whole session; returns whether the exporter was created. */
static bool
run_session(struct fake_dts *d, struct received *rx,
            struct dts_exporter_stats *st)
{
    struct dts_exporter_options o = {
        .socket_path = d ? d->path : "/nonexistent-dts-oom/dts.sock",
        .source_id = "oom-test",
        .source_tag = "unit",
    };
    armed = true;
    errno = 0;
    struct dts_exporter *ex = dts_exporter_create(&o);
    if (!ex) {
        armed = false;
        assert_int_equal(errno, ENOMEM);
        return false;
    }
    add_type(ex, "conn", conn_fields, ARRAY_SIZE(conn_fields), 0);
    add_type(ex, "load", load_fields, ARRAY_SIZE(load_fields), 1);
    int rc = dts_exporter_start(ex);
    if (d) {
        ok_or_enomem(rc, "dts_exporter_start");
    } else {
        assert_int_not_equal(rc, 0); /* nobody listens */
    }
    /* enough data that the output buffer grows several times */
    for (int i = 0; i < 40; i++) {
        struct conn_event ev = {.ts = (uint64_t) i, .port = (uint16_t) i};
        snprintf(ev.name, sizeof ev.name, "conn-%d", i);
        ok_or_enomem(dts_exporter_send_event(ex, 0, &ev, sizeof ev),
                     "dts_exporter_send_event");
    }
    struct conn_event two[2] = {{.port = 1}, {.port = 2}};
    ok_or_enomem(dts_exporter_send_events(ex, 0, two, 2),
                 "dts_exporter_send_events");
    uint8_t load[8 + 4 * 4] = {0};
    assert_int_equal(dts_exporter_type_size(ex, 1), sizeof load);
    ok_or_enomem(dts_exporter_send_event(ex, 1, load, sizeof load),
                 "dts_exporter_send_event");
    for (int i = 0; i < 20; i++) {
        char name[64];
        snprintf(name, sizeof name, "app.requests_%d", i);
        ok_or_enomem(dts_exporter_send_counter(ex, name, (uint64_t) i),
                     "dts_exporter_send_counter");
    }
    ok_or_enomem(dts_exporter_send_gauge(ex, "app.load", 0.5),
                 "dts_exporter_send_gauge");
    struct dts_exporter_netflow_record fr = {.family = 4,
                                             .protocol = 6,
                                             .src = {10, 0, 0, 1},
                                             .dst = {10, 0, 0, 2},
                                             .src_port = 1000,
                                             .dst_port = 80,
                                             .bytes = 100,
                                             .packets = 1};
    ok_or_enomem(dts_exporter_send_netflow(ex, &fr),
                 "dts_exporter_send_netflow");
    rc = dts_exporter_flush(ex);
    if (d) {
        /* -ENOTCONN: start failed for lack of memory and no retry yet */
        if (rc != 0 && rc != -ENOTCONN) {
            fail_msg("dts_exporter_flush returned %d (fail_at %ld)", rc,
                     fail_at);
        }
    }
    dts_exporter_get_stats(ex, st);
    dts_exporter_destroy(ex);
    armed = false;
    if (d) {
        fake_dts_drain(d, rx);
    }
    return true;
}

/* Records the application handed over: 43 events, 21 counter/gauge
 * samples, 1 flow. */
#define SESSION_EVENTS 43
#define SESSION_COUNTERS 21
#define SESSION_FLOWS 1

static void
check_accounting(const struct dts_exporter_stats *st, const struct received *rx,
                 bool connected)
{
    /* every record is either handed to dts or counted as dropped */
    assert_int_equal(st->events + st->counters + st->netflow + st->dropped,
                     SESSION_EVENTS + SESSION_COUNTERS + SESSION_FLOWS);
    if (connected) {
        /* what was handed over arrived, in a complete session */
        assert_int_equal(rx->events, st->events);
        assert_int_equal(rx->counters, st->counters);
        assert_int_equal(rx->flows, st->netflow);
    }
}

static void
test_session_counts(void **state)
{
    (void) state;
    struct fake_dts d = {0};
    fake_dts_start(&d);
    struct received rx = {0};
    struct dts_exporter_stats st;
    n_allocs = 0;
    fail_at = 0;
    assert_true(run_session(&d, &rx, &st));
    /* the wrappers see the library's allocations: create (3), two types
     * (4), the growing output buffer (several) */
    assert_true(n_allocs >= 10);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.events, SESSION_EVENTS);
    assert_int_equal(rx.hello, 1);
    assert_int_equal(rx.schema, 1);
    assert_int_equal(rx.bye, 1);
    check_accounting(&st, &rx, true);
    fake_dts_stop(&d);
}

/* Fail allocation N of the session, for every N. */
static void
fail_each_allocation(struct fake_dts *d)
{
    struct received rx0 = {0};
    struct dts_exporter_stats st;
    n_allocs = 0;
    fail_at = 0;
    assert_true(run_session(d, &rx0, &st));
    long total = n_allocs;
    assert_true(total >= 7);
    long created = 0, enomem_seen = 0;
    for (long n = 1; n <= total; n++) {
        struct received rx = {0};
        memset(&st, 0, sizeof st);
        n_allocs = 0;
        n_failed = 0;
        fail_at = n;
        bool made = run_session(d, &rx, &st);
        /* the Nth allocation happened and was refused */
        assert_int_equal(n_failed, 1);
        if (!made) {
            continue;
        }
        created++;
        if (st.dropped || st.errors) {
            enomem_seen++;
        }
        check_accounting(&st, &rx, d && rx.hello && rx.bye);
    }
    fail_at = 0;
    /* some failures hit create, others later calls */
    assert_true(created > 0 && created < total);
    if (d) {
        assert_true(enomem_seen > 0);
    }
    print_message("fail-each-allocation: %ld allocations per session%s\n",
                  total, d ? "" : " (dts absent)");
}

static void
test_fail_each_allocation_connected(void **state)
{
    (void) state;
    struct fake_dts d = {0};
    fake_dts_start(&d);
    fail_each_allocation(&d);
    fake_dts_stop(&d);
}

static void
test_fail_each_allocation_dts_absent(void **state)
{
    (void) state;
    fail_each_allocation(NULL);
}

/* The public functions refuse a NULL exporter instead of crashing. */
static void
test_null_exporter(void **state)
{
    (void) state;
    struct dts_exporter_stats st = {.events = 7};
    assert_int_equal(dts_exporter_add_type(NULL, "x", conn_fields, 1), -EINVAL);
    assert_int_equal(dts_exporter_start(NULL), -EINVAL);
    assert_int_equal(dts_exporter_send_counter(NULL, "c", 1), -EINVAL);
    assert_int_equal(dts_exporter_send_gauge(NULL, "c", 1), -EINVAL);
    assert_int_equal(dts_exporter_send_event(NULL, 0, "", 1), -EINVAL);
    assert_int_equal(dts_exporter_send_events(NULL, 0, "", 1), -EINVAL);
    assert_int_equal(dts_exporter_send_netflow(NULL, NULL), -EINVAL);
    assert_int_equal(dts_exporter_flush(NULL), -EINVAL);
    assert_int_equal(dts_exporter_type_size(NULL, 0), 0);
    dts_exporter_get_stats(NULL, &st);
    assert_int_equal(st.events, 7);
    dts_exporter_destroy(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_session_counts),
        cmocka_unit_test(test_fail_each_allocation_connected),
        cmocka_unit_test(test_fail_each_allocation_dts_absent),
        cmocka_unit_test(test_null_exporter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
