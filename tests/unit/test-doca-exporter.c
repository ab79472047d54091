/* libdoca-telemetry-exporter: DOCA's API on libdts-exporter.
 *
 *  - argument checking: NULL handles and outputs give
 *    DOCA_ERROR_INVALID_VALUE, calls out of order DOCA_ERROR_BAD_STATE,
 *    as DOCA documents (and docs/services/dts.md lists);
 *  - what reaches dts: a fake dts listens on a Unix socket in a temporary
 *    directory and decodes what the library sends with lib/telemetry's
 *    session decoder; the events, labelled counters and gauges (including
 *    the *_increment running totals) and the flows converted from an
 *    app-defined NetFlow template must come out with the right values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <doca_telemetry_exporter.h>
#include <doca_telemetry_exporter_netflow.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/base/util.h"
#include "lib/telemetry/dts-ipc.h"

/* ---- a fake dts ---------------------------------------------------------- */

struct fake_dts {
    char dir[64];
    char path[128];
    int lfd;
    /* what arrived */
    int events;
    char ev_text[16][256]; /* event JSON */
    int counters;
    struct dts_ipc_counter ctr[64];
    int flows;
    struct nf_flow flow[8];
    struct dts_ipc_hello hello;
};

static void
on_hello(void *aux, const struct dts_ipc_hello *h)
{
    ((struct fake_dts *) aux)->hello = *h;
}

static void
on_event(void *aux, const struct dts_ipc_evtype *t, unsigned idx,
         const uint8_t *data)
{
    struct fake_dts *f = aux;
    (void) idx;
    json_t *j = dts_ipc_event_to_json(t, data);
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    if (f->events < 16) {
        snprintf(f->ev_text[f->events], sizeof f->ev_text[0], "%s:%s", t->name,
                 s);
    }
    f->events++;
    free(s);
    json_decref(j);
}

static void
on_counter(void *aux, int64_t ts, const struct dts_ipc_counter *c)
{
    struct fake_dts *f = aux;
    (void) ts;
    if (f->counters < 64) {
        f->ctr[f->counters] = *c;
    }
    f->counters++;
}

static void
on_netflow(void *aux, const struct nf_flow *fl)
{
    struct fake_dts *f = aux;
    if (f->flows < 8) {
        f->flow[f->flows] = *fl;
    }
    f->flows++;
}

static const struct dts_ipc_handlers fake_handlers = {
    .on_hello = on_hello,
    .on_event = on_event,
    .on_counter = on_counter,
    .on_netflow = on_netflow,
};

static void
fake_start(struct fake_dts *f)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/doca-ut-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/dts.sock", f->dir);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    assert_true(strlen(f->path) < sizeof sun.sun_path);
    memcpy(sun.sun_path, f->path, strlen(f->path) + 1);
    f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(f->lfd >= 0);
    assert_int_equal(bind(f->lfd, (struct sockaddr *) &sun, sizeof sun), 0);
    assert_int_equal(listen(f->lfd, 8), 0);
}

/* Accept one connection and decode it until EOF; the library has closed
 * it (destroy) before this runs. */
static void
fake_drain(struct fake_dts *f)
{
    int c = accept(f->lfd, NULL, NULL);
    assert_true(c >= 0);
    struct dts_ipc_session *s = dts_ipc_session_create(&fake_handlers, f, 0);
    uint8_t buf[65536];
    for (;;) {
        struct pollfd p = {.fd = c, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 5000), 1);
        ssize_t n = read(c, buf, sizeof buf);
        assert_true(n >= 0);
        if (n == 0) {
            break;
        }
        assert_int_equal(dts_ipc_session_feed(s, buf, (size_t) n, NULL), 0);
    }
    assert_true(dts_ipc_session_done(s));
    dts_ipc_session_free(s);
    close(c);
}

static void
fake_stop(struct fake_dts *f)
{
    close(f->lfd);
    unlink(f->path);
    rmdir(f->dir);
}

/* The labels of a counter as "a=x,b=y". */
static const char *
labels_text(const struct dts_ipc_counter *c)
{
    static char out[1024];
    size_t k = 0;
    out[0] = '\0';
    for (unsigned i = 0; i < c->n_labels; i++) {
        k += (size_t) snprintf(out + k, sizeof out - k, "%s%s=%s", i ? "," : "",
                               c->labels[i].name, c->labels[i].value);
    }
    return out;
}

/* ---- argument checking -------------------------------------------------- */

static void
test_null_arguments(void **state)
{
    (void) state;
    struct doca_telemetry_exporter_schema *s = NULL;
    assert_int_equal(doca_telemetry_exporter_schema_init("x", NULL),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(doca_telemetry_exporter_schema_init(NULL, &s),
                     DOCA_ERROR_INVALID_VALUE);
    assert_null(s);
    assert_int_equal(doca_telemetry_exporter_schema_init("bad name", &s),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(doca_telemetry_exporter_schema_start(NULL),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(doca_telemetry_exporter_schema_destroy(NULL),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(doca_telemetry_exporter_type_create(NULL),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(doca_telemetry_exporter_field_create(NULL),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(doca_telemetry_exporter_type_add_field(NULL, NULL),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(doca_telemetry_exporter_type_destroy(NULL),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(doca_telemetry_exporter_field_destroy(NULL),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(doca_telemetry_exporter_source_create(NULL, NULL),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(doca_telemetry_exporter_source_start(NULL),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(doca_telemetry_exporter_source_report(NULL, 0, "", 1),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(doca_telemetry_exporter_source_flush(NULL),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(doca_telemetry_exporter_source_destroy(NULL),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(doca_telemetry_exporter_get_timestamp(NULL),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(doca_telemetry_exporter_check_ipc_status(NULL, NULL),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(doca_telemetry_exporter_metrics_create_context(NULL),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(doca_telemetry_exporter_metrics_flush(NULL),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(
        doca_telemetry_exporter_metrics_add_counter(NULL, 0, "a", 1, 0, NULL),
        DOCA_ERROR_INVALID_VALUE);
    /* the void setters ignore NULL instead of crashing */
    doca_telemetry_exporter_schema_set_buf_size(NULL, 1);
    doca_telemetry_exporter_schema_set_ipc_enabled(NULL);
    doca_telemetry_exporter_field_set_name(NULL, "x");
    doca_telemetry_exporter_source_set_id(NULL, "x");
    /* getters */
    assert_int_equal(doca_telemetry_exporter_schema_init("s", &s),
                     DOCA_SUCCESS);
    uint64_t sz = 0;
    assert_int_equal(doca_telemetry_exporter_schema_get_buf_size(s, NULL),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(doca_telemetry_exporter_schema_get_buf_size(s, &sz),
                     DOCA_SUCCESS);
    assert_int_equal(sz, 60000); /* DOCA's default */
    const char *dir = NULL;
    doca_telemetry_exporter_schema_set_ipc_sockets_dir(s, "/run/x");
    assert_int_equal(
        doca_telemetry_exporter_schema_get_ipc_sockets_dir(s, &dir),
        DOCA_SUCCESS);
    assert_string_equal(dir, "/run/x");
    free((char *) dir);
    assert_int_equal(doca_telemetry_exporter_schema_destroy(s), DOCA_SUCCESS);
    assert_string_equal(doca_error_get_name(DOCA_ERROR_BAD_STATE),
                        "DOCA_ERROR_BAD_STATE");
    assert_string_equal(doca_error_get_name((doca_error_t) 999),
                        "DOCA_ERROR_UNKNOWN");
}

/* A one-field type named name of field type ftype. */
static struct doca_telemetry_exporter_type *
one_field_type(const char *fname, const char *ftype, uint16_t len)
{
    struct doca_telemetry_exporter_type *t;
    struct doca_telemetry_exporter_field *f;
    assert_int_equal(doca_telemetry_exporter_type_create(&t), DOCA_SUCCESS);
    assert_int_equal(doca_telemetry_exporter_field_create(&f), DOCA_SUCCESS);
    doca_telemetry_exporter_field_set_name(f, fname);
    doca_telemetry_exporter_field_set_type_name(f, ftype);
    doca_telemetry_exporter_field_set_array_len(f, len);
    assert_int_equal(doca_telemetry_exporter_type_add_field(t, f),
                     DOCA_SUCCESS);
    return t;
}

static void
test_order_is_enforced(void **state)
{
    (void) state;
    struct doca_telemetry_exporter_schema *s;
    struct doca_telemetry_exporter_source *src = NULL;
    doca_telemetry_exporter_type_index_t idx = 9;
    assert_int_equal(doca_telemetry_exporter_schema_init("order", &s),
                     DOCA_SUCCESS);
    /* a source before schema_start */
    assert_int_equal(doca_telemetry_exporter_source_create(s, &src),
                     DOCA_ERROR_BAD_STATE);
    assert_null(src);
    /* an unknown field type, then a good type, then its name again */
    struct doca_telemetry_exporter_type *bad =
        one_field_type("a", "complex double", 1);
    assert_int_equal(doca_telemetry_exporter_schema_add_type(s, "t", bad, &idx),
                     DOCA_ERROR_INVALID_VALUE);
    doca_telemetry_exporter_type_destroy(bad); /* still ours after failure */
    struct doca_telemetry_exporter_type *t =
        one_field_type("a", DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_UINT32, 1);
    assert_int_equal(doca_telemetry_exporter_schema_add_type(s, "t", t, &idx),
                     DOCA_SUCCESS);
    assert_int_equal(idx, 0);
    t = one_field_type("a", DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_UINT32, 1);
    assert_int_equal(doca_telemetry_exporter_schema_add_type(s, "t", t, &idx),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(doca_telemetry_exporter_schema_start(s), DOCA_SUCCESS);
    /* no more types, no second start */
    assert_int_equal(doca_telemetry_exporter_schema_add_type(s, "u", t, &idx),
                     DOCA_ERROR_BAD_STATE);
    doca_telemetry_exporter_type_destroy(t);
    assert_int_equal(doca_telemetry_exporter_schema_start(s),
                     DOCA_ERROR_BAD_STATE);
    assert_int_equal(doca_telemetry_exporter_source_create(s, &src),
                     DOCA_SUCCESS);
    /* report / flush / metrics before source_start */
    uint32_t v = 1;
    assert_int_equal(doca_telemetry_exporter_source_report(src, 0, &v, 1),
                     DOCA_ERROR_BAD_STATE);
    assert_int_equal(doca_telemetry_exporter_source_flush(src),
                     DOCA_ERROR_BAD_STATE);
    assert_int_equal(doca_telemetry_exporter_metrics_create_context(src),
                     DOCA_ERROR_BAD_STATE);
    /* start needs id and tag */
    assert_int_equal(doca_telemetry_exporter_source_start(src),
                     DOCA_ERROR_INVALID_VALUE);
    doca_telemetry_exporter_source_set_id(src, "id1");
    doca_telemetry_exporter_source_set_tag(src, "tag1");
    assert_int_equal(doca_telemetry_exporter_source_start(src), DOCA_SUCCESS);
    assert_int_equal(doca_telemetry_exporter_source_start(src),
                     DOCA_ERROR_BAD_STATE);
    /* bad reports */
    assert_int_equal(doca_telemetry_exporter_source_report(src, 1, &v, 1),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(doca_telemetry_exporter_source_report(src, 0, NULL, 1),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(doca_telemetry_exporter_source_report(src, 0, &v, 0),
                     DOCA_ERROR_INVALID_VALUE);
    /* IPC was not enabled: a report goes nowhere, and says so */
    assert_int_equal(doca_telemetry_exporter_source_report(src, 0, &v, 1),
                     DOCA_SUCCESS);
    doca_telemetry_exporter_ipc_status_t st = 0;
    assert_int_equal(doca_telemetry_exporter_check_ipc_status(src, &st),
                     DOCA_SUCCESS);
    assert_int_equal(st, DOCA_TELEMETRY_EXPORTER_IPC_STATUS_DISABLED);
    /* metrics calls before the context */
    assert_int_equal(doca_telemetry_exporter_metrics_flush(src),
                     DOCA_ERROR_BAD_STATE);
    assert_int_equal(
        doca_telemetry_exporter_metrics_add_gauge(src, 0, "g", 1, 0, NULL),
        DOCA_ERROR_BAD_STATE);
    assert_int_equal(doca_telemetry_exporter_metrics_create_context(src),
                     DOCA_SUCCESS);
    assert_int_equal(doca_telemetry_exporter_metrics_create_context(src),
                     DOCA_ERROR_BAD_STATE);
    /* label names: reserved and malformed ones are refused */
    doca_telemetry_exporter_label_set_id_t id = 0;
    const char *reserved[] = {"__name__"};
    const char *dup[] = {"a", "a"};
    const char *src_id[] = {"source_id"};
    const char *digit[] = {"1x"};
    const char *good[] = {"iface", "dir"};
    assert_int_equal(
        doca_telemetry_exporter_metrics_add_label_names(src, reserved, 1, &id),
        DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(
        doca_telemetry_exporter_metrics_add_label_names(src, dup, 2, &id),
        DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(
        doca_telemetry_exporter_metrics_add_label_names(src, src_id, 1, &id),
        DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(
        doca_telemetry_exporter_metrics_add_label_names(src, digit, 1, &id),
        DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(
        doca_telemetry_exporter_metrics_add_label_names(src, good, 2, NULL),
        DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(
        doca_telemetry_exporter_metrics_add_label_names(src, good, 2, &id),
        DOCA_SUCCESS);
    assert_int_equal(id, 1);
    assert_int_equal(
        doca_telemetry_exporter_metrics_add_constant_label(src, "iface", "x"),
        DOCA_ERROR_INVALID_VALUE); /* clashes with the set */
    assert_int_equal(doca_telemetry_exporter_metrics_add_constant_label(
                         src, "host", "bad\nvalue"),
                     DOCA_ERROR_INVALID_VALUE);
    /* an unknown set, values missing, a value with a control char */
    const char *vals[] = {"eth0", "rx"};
    const char *badv[] = {"eth0", "r\x01"};
    assert_int_equal(
        doca_telemetry_exporter_metrics_add_counter(src, 0, "c", 1, 7, vals),
        DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(
        doca_telemetry_exporter_metrics_add_counter(src, 0, "c", 1, id, NULL),
        DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(
        doca_telemetry_exporter_metrics_add_counter(src, 0, "c", 1, id, badv),
        DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(
        doca_telemetry_exporter_metrics_add_counter(src, 0, "c", 1, id, vals),
        DOCA_SUCCESS);
    /* the schema outlives its sources */
    assert_int_equal(doca_telemetry_exporter_schema_destroy(s),
                     DOCA_ERROR_BAD_STATE);
    assert_int_equal(doca_telemetry_exporter_metrics_destroy_context(src),
                     DOCA_SUCCESS);
    assert_int_equal(doca_telemetry_exporter_metrics_destroy_context(src),
                     DOCA_ERROR_BAD_STATE);
    assert_int_equal(doca_telemetry_exporter_source_destroy(src), DOCA_SUCCESS);
    assert_int_equal(doca_telemetry_exporter_schema_destroy(s), DOCA_SUCCESS);
}

static void
test_netflow_order(void **state)
{
    (void) state;
    struct doca_telemetry_exporter_netflow_template *t;
    const void *rec[1] = {"x"};
    size_t sent = 5;
    assert_int_equal(doca_telemetry_exporter_netflow_template_create(NULL),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(doca_telemetry_exporter_netflow_template_create(&t),
                     DOCA_SUCCESS);
    assert_int_equal(
        doca_telemetry_exporter_netflow_template_add_field(t, NULL),
        DOCA_ERROR_INVALID_VALUE);
    struct doca_telemetry_exporter_netflow_flowset_field *f;
    assert_int_equal(doca_telemetry_exporter_netflow_field_create(&f),
                     DOCA_SUCCESS);
    doca_telemetry_exporter_netflow_field_set_type(
        f, DOCA_TELEMETRY_EXPORTER_NETFLOW_PROTOCOL);
    doca_telemetry_exporter_netflow_field_set_len(f, 1);
    assert_int_equal(doca_telemetry_exporter_netflow_template_add_field(t, f),
                     DOCA_SUCCESS);
    /* before init / start */
    assert_int_equal(doca_telemetry_exporter_netflow_start(),
                     DOCA_ERROR_BAD_STATE);
    assert_int_equal(doca_telemetry_exporter_netflow_send(t, rec, 1, &sent),
                     DOCA_ERROR_BAD_STATE);
    assert_int_equal(sent, 0);
    assert_int_equal(doca_telemetry_exporter_netflow_flush(),
                     DOCA_ERROR_BAD_STATE);
    assert_int_equal(doca_telemetry_exporter_netflow_init(1), DOCA_SUCCESS);
    assert_int_equal(doca_telemetry_exporter_netflow_init(1),
                     DOCA_ERROR_BAD_STATE);
    assert_int_equal(doca_telemetry_exporter_netflow_send(t, rec, 1, &sent),
                     DOCA_ERROR_BAD_STATE);
    assert_int_equal(doca_telemetry_exporter_netflow_start(), DOCA_SUCCESS);
    assert_int_equal(doca_telemetry_exporter_netflow_start(),
                     DOCA_ERROR_BAD_STATE);
    assert_int_equal(doca_telemetry_exporter_netflow_send(NULL, rec, 1, NULL),
                     DOCA_ERROR_INVALID_VALUE);
    assert_int_equal(doca_telemetry_exporter_netflow_send(t, NULL, 1, NULL),
                     DOCA_ERROR_INVALID_VALUE);
    /* without IPC there is nowhere to send (no direct collector export) */
    assert_int_equal(doca_telemetry_exporter_netflow_send(t, rec, 1, &sent),
                     DOCA_ERROR_NOT_SUPPORTED);
    assert_int_equal(doca_telemetry_exporter_netflow_destroy(), DOCA_SUCCESS);
    /* init works again after destroy */
    assert_int_equal(doca_telemetry_exporter_netflow_init(2), DOCA_SUCCESS);
    assert_int_equal(doca_telemetry_exporter_netflow_destroy(), DOCA_SUCCESS);
    doca_telemetry_exporter_netflow_template_destroy(t);
}

/* ---- what reaches dts --------------------------------------------------- */

struct ev {
    doca_telemetry_exporter_timestamp_t ts;
    int32_t number;
    uint8_t ok; /* bool */
    char text[8];
} __attribute__((packed));

static void
test_events_and_metrics_reach_dts(void **state)
{
    (void) state;
    struct fake_dts f;
    fake_start(&f);
    struct doca_telemetry_exporter_schema *s;
    assert_int_equal(doca_telemetry_exporter_schema_init("app_schema", &s),
                     DOCA_SUCCESS);
    doca_telemetry_exporter_schema_set_ipc_enabled(s);
    doca_telemetry_exporter_schema_set_ipc_sockets_dir(s, f.dir);
    struct doca_telemetry_exporter_type *t;
    assert_int_equal(doca_telemetry_exporter_type_create(&t), DOCA_SUCCESS);
    const struct {
        const char *name, *type;
        uint16_t len;
    } fields[] = {
        {"ts", DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_TIMESTAMP, 1},
        {"number", DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_INT32, 1},
        {"ok", DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_BOOL, 1},
        {"text", DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_CHAR, 8},
    };
    for (size_t i = 0; i < 4; i++) {
        struct doca_telemetry_exporter_field *fl;
        assert_int_equal(doca_telemetry_exporter_field_create(&fl),
                         DOCA_SUCCESS);
        doca_telemetry_exporter_field_set_name(fl, fields[i].name);
        doca_telemetry_exporter_field_set_description(fl, "d");
        doca_telemetry_exporter_field_set_type_name(fl, fields[i].type);
        doca_telemetry_exporter_field_set_array_len(fl, fields[i].len);
        assert_int_equal(doca_telemetry_exporter_type_add_field(t, fl),
                         DOCA_SUCCESS);
    }
    doca_telemetry_exporter_type_index_t idx;
    assert_int_equal(
        doca_telemetry_exporter_schema_add_type(s, "app_ev", t, &idx),
        DOCA_SUCCESS);
    assert_int_equal(doca_telemetry_exporter_schema_start(s), DOCA_SUCCESS);
    struct doca_telemetry_exporter_source *src;
    assert_int_equal(doca_telemetry_exporter_source_create(s, &src),
                     DOCA_SUCCESS);
    doca_telemetry_exporter_source_set_id(src, "unit-src");
    doca_telemetry_exporter_source_set_tag(src, "unit-tag");
    assert_int_equal(doca_telemetry_exporter_source_start(src), DOCA_SUCCESS);
    doca_telemetry_exporter_ipc_status_t st;
    assert_int_equal(doca_telemetry_exporter_check_ipc_status(src, &st),
                     DOCA_SUCCESS);
    assert_int_equal(st, DOCA_TELEMETRY_EXPORTER_IPC_STATUS_CONNECTED);
    struct ev e[2] = {{1000, -5, 1, "hello"}, {2000, 7, 0, "world"}};
    assert_int_equal(doca_telemetry_exporter_source_report(src, idx, e, 2),
                     DOCA_SUCCESS);
    /* metrics: constant label, a set, absolute and incremented values */
    assert_int_equal(doca_telemetry_exporter_metrics_create_context(src),
                     DOCA_SUCCESS);
    assert_int_equal(
        doca_telemetry_exporter_metrics_add_constant_label(src, "host", "h1"),
        DOCA_SUCCESS);
    const char *names[] = {"iface"};
    doca_telemetry_exporter_label_set_id_t id;
    assert_int_equal(
        doca_telemetry_exporter_metrics_add_label_names(src, names, 1, &id),
        DOCA_SUCCESS);
    const char *eth0[] = {"eth0"};
    const char *eth1[] = {"eth1"};
    assert_int_equal(doca_telemetry_exporter_metrics_add_counter(
                         src, 0, "pkts_total", 42, id, eth0),
                     DOCA_SUCCESS);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(doca_telemetry_exporter_metrics_add_counter_increment(
                             src, 0, "ops_total", 5, id, eth1),
                         DOCA_SUCCESS);
    }
    assert_int_equal(doca_telemetry_exporter_metrics_add_gauge(src, 0, "temp",
                                                               36.5, 0, NULL),
                     DOCA_SUCCESS);
    assert_int_equal(doca_telemetry_exporter_metrics_add_gauge_increment(
                         src, 0, "level", 2.5, id, eth0),
                     DOCA_SUCCESS);
    assert_int_equal(doca_telemetry_exporter_metrics_add_gauge_increment(
                         src, 0, "level", -1.0, id, eth0),
                     DOCA_SUCCESS);
    assert_int_equal(doca_telemetry_exporter_metrics_flush(src), DOCA_SUCCESS);
    assert_int_equal(doca_telemetry_exporter_source_destroy(src), DOCA_SUCCESS);
    assert_int_equal(doca_telemetry_exporter_schema_destroy(s), DOCA_SUCCESS);
    fake_drain(&f);
    fake_stop(&f);

    assert_string_equal(f.hello.source_id, "unit-src");
    assert_string_equal(f.hello.source_tag, "unit-tag");
    assert_int_equal(f.hello.proto, 2);
    assert_int_equal(f.events, 2);
    assert_string_equal(f.ev_text[0], "app_ev:{\"number\":-5,\"ok\":1,"
                                      "\"text\":\"hello\",\"ts\":1000}");
    assert_string_equal(f.ev_text[1], "app_ev:{\"number\":7,\"ok\":0,"
                                      "\"text\":\"world\",\"ts\":2000}");
    assert_int_equal(f.counters, 1 + 3 + 1 + 2);
    assert_string_equal(f.ctr[0].name, "pkts_total");
    assert_int_equal(f.ctr[0].kind, DTS_IPC_COUNTER_U64);
    assert_int_equal(f.ctr[0].u64, 42);
    assert_string_equal(labels_text(&f.ctr[0]), "host=h1,iface=eth0");
    /* the running total is sent, not the increment */
    assert_int_equal(f.ctr[3].u64, 15);
    assert_string_equal(labels_text(&f.ctr[3]), "host=h1,iface=eth1");
    assert_int_equal(f.ctr[4].kind, DTS_IPC_GAUGE_F64);
    assert_true(f.ctr[4].f64 == 36.5);
    assert_string_equal(labels_text(&f.ctr[4]), "host=h1");
    assert_true(f.ctr[6].f64 == 1.5);
}

/* A record laid out as DOCA's NetFlow sample lays it out (a subset). */
struct nfrec {
    uint32_t src4, dst4;
    uint8_t src6[16];
    uint16_t sport, dport;
    uint8_t proto;
    uint32_t pkts, bytes;
    char app[8];
} __attribute__((packed));

static void
test_netflow_template_reaches_dts(void **state)
{
    (void) state;
    struct fake_dts f;
    fake_start(&f);
    struct doca_telemetry_exporter_netflow_template *t;
    assert_int_equal(doca_telemetry_exporter_netflow_template_create(&t),
                     DOCA_SUCCESS);
    const uint16_t fl[][2] = {
        {DOCA_TELEMETRY_EXPORTER_NETFLOW_IPV4_SRC_ADDR, 4},
        {DOCA_TELEMETRY_EXPORTER_NETFLOW_IPV4_DST_ADDR, 4},
        {DOCA_TELEMETRY_EXPORTER_NETFLOW_IPV6_SRC_ADDR, 16},
        {DOCA_TELEMETRY_EXPORTER_NETFLOW_L4_SRC_PORT, 2},
        {DOCA_TELEMETRY_EXPORTER_NETFLOW_L4_DST_PORT, 2},
        {DOCA_TELEMETRY_EXPORTER_NETFLOW_PROTOCOL, 1},
        {DOCA_TELEMETRY_EXPORTER_NETFLOW_IN_PKTS, 4},
        {DOCA_TELEMETRY_EXPORTER_NETFLOW_IN_BYTES, 4},
        {DOCA_TELEMETRY_EXPORTER_NETFLOW_APPLICATION_NAME, 8},
    };
    for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++) {
        struct doca_telemetry_exporter_netflow_flowset_field *x;
        assert_int_equal(doca_telemetry_exporter_netflow_field_create(&x),
                         DOCA_SUCCESS);
        doca_telemetry_exporter_netflow_field_set_type(x, fl[i][0]);
        doca_telemetry_exporter_netflow_field_set_len(x, fl[i][1]);
        assert_int_equal(
            doca_telemetry_exporter_netflow_template_add_field(t, x),
            DOCA_SUCCESS);
    }
    assert_int_equal(doca_telemetry_exporter_netflow_init(111), DOCA_SUCCESS);
    doca_telemetry_exporter_netflow_set_ipc_enabled();
    doca_telemetry_exporter_netflow_set_ipc_sockets_dir(f.dir);
    doca_telemetry_exporter_netflow_source_set_id("nf-src");
    doca_telemetry_exporter_netflow_source_set_tag("nf-tag");
    assert_int_equal(doca_telemetry_exporter_netflow_start(), DOCA_SUCCESS);
    struct nfrec r = {
        .src4 = inet_addr("192.0.2.1"),
        .dst4 = inet_addr("198.51.100.2"),
        .sport = htons(5353),
        .dport = htons(8000),
        .proto = 17,
        .pkts = htonl(9),
        .bytes = htonl(1909),
        .app = "demo",
    };
    const void *recs[3] = {&r, &r, &r};
    size_t sent = 0;
    assert_int_equal(doca_telemetry_exporter_netflow_send(t, recs, 3, &sent),
                     DOCA_SUCCESS);
    assert_int_equal(sent, 3);
    assert_int_equal(doca_telemetry_exporter_netflow_flush(), DOCA_SUCCESS);
    assert_int_equal(doca_telemetry_exporter_netflow_destroy(), DOCA_SUCCESS);
    doca_telemetry_exporter_netflow_template_destroy(t);
    fake_drain(&f);
    fake_stop(&f);
    assert_string_equal(f.hello.source_id, "nf-src");
    assert_int_equal(f.flows, 3);
    const struct nf_flow *x = &f.flow[0];
    assert_int_equal(x->family, 4);
    assert_memory_equal(x->src, &r.src4, 4);
    assert_memory_equal(x->dst, &r.dst4, 4);
    assert_int_equal(x->src_port, 5353);
    assert_int_equal(x->dst_port, 8000);
    assert_int_equal(x->protocol, 17);
    assert_int_equal(x->packets, 9);
    assert_int_equal(x->bytes, 1909);
    assert_true(x->end_ms >= x->start_ms && x->end_ms > 0);
}

/* dts not running: DOCA's calls still succeed (the data is dropped and
 * counted by libdts-exporter, which retries later); the status says so. */
static void
test_dts_absent(void **state)
{
    (void) state;
    char dir[] = "/tmp/doca-ut-none-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct doca_telemetry_exporter_schema *s;
    struct doca_telemetry_exporter_source *src;
    assert_int_equal(doca_telemetry_exporter_schema_init("absent", &s),
                     DOCA_SUCCESS);
    doca_telemetry_exporter_schema_set_ipc_enabled(s);
    doca_telemetry_exporter_schema_set_ipc_sockets_dir(s, dir);
    struct doca_telemetry_exporter_type *t =
        one_field_type("v", DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_UINT64, 1);
    doca_telemetry_exporter_type_index_t idx;
    assert_int_equal(doca_telemetry_exporter_schema_add_type(s, "t", t, &idx),
                     DOCA_SUCCESS);
    assert_int_equal(doca_telemetry_exporter_schema_start(s), DOCA_SUCCESS);
    assert_int_equal(doca_telemetry_exporter_source_create(s, &src),
                     DOCA_SUCCESS);
    doca_telemetry_exporter_source_set_id(src, "a");
    doca_telemetry_exporter_source_set_tag(src, "b");
    assert_int_equal(doca_telemetry_exporter_source_start(src), DOCA_SUCCESS);
    doca_telemetry_exporter_ipc_status_t st = 0;
    assert_int_equal(doca_telemetry_exporter_check_ipc_status(src, &st),
                     DOCA_SUCCESS);
    assert_int_equal(st, DOCA_TELEMETRY_EXPORTER_IPC_STATUS_FAILED);
    uint64_t v = 5;
    assert_int_equal(doca_telemetry_exporter_source_report(src, idx, &v, 1),
                     DOCA_SUCCESS);
    assert_int_equal(doca_telemetry_exporter_source_flush(src), DOCA_SUCCESS);
    assert_int_equal(doca_telemetry_exporter_source_destroy(src), DOCA_SUCCESS);
    assert_int_equal(doca_telemetry_exporter_schema_destroy(s), DOCA_SUCCESS);
    rmdir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_order_is_enforced),
        cmocka_unit_test(test_netflow_order),
        cmocka_unit_test(test_events_and_metrics_reach_dts),
        cmocka_unit_test(test_netflow_template_reaches_dts),
        cmocka_unit_test(test_dts_absent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
