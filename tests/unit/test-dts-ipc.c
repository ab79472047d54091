/* Unit tests for lib/dts-ipc: schema layout, frame codec, session decoder
 * strictness, event-to-JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/telemetry/dts-ipc.h"

static const struct dts_ipc_field_decl fields[] = {
    {"ts", DTS_IPC_FIELD_TIMESTAMP, 1}, {"port", DTS_IPC_FIELD_U16, 1},
    {"addr", DTS_IPC_FIELD_IP4, 1},     {"addr6", DTS_IPC_FIELD_IP6, 1},
    {"mac", DTS_IPC_FIELD_MAC, 1},      {"name", DTS_IPC_FIELD_STRING, 8},
    {"vals", DTS_IPC_FIELD_I16, 3},     {"load", DTS_IPC_FIELD_DOUBLE, 1},
};

struct __attribute__((packed)) ev {
    uint64_t ts;
    uint16_t port;
    uint8_t addr[4];
    uint8_t addr6[16];
    uint8_t mac[6];
    char name[8];
    int16_t vals[3];
    double load;
};

struct seen {
    int hello, schema, events, counters, flows, bye;
    char source_id[128];
    struct ev last;
    struct dts_ipc_counter ctr[4];
    struct nf_flow flow;
};

static void
on_hello(void *aux, const struct dts_ipc_hello *h)
{
    struct seen *s = aux;
    s->hello++;
    strcpy(s->source_id, h->source_id);
}

static void
on_schema(void *aux, const struct dts_ipc_schema *sc)
{
    ((struct seen *) aux)->schema++;
}

static void
on_event(void *aux, const struct dts_ipc_evtype *t, unsigned idx,
         const uint8_t *data)
{
    struct seen *s = aux;
    assert_int_equal(t->size, sizeof(struct ev));
    memcpy(&s->last, data, sizeof s->last);
    s->events++;
}

static void
on_counter(void *aux, int64_t t, const struct dts_ipc_counter *c)
{
    struct seen *s = aux;
    if (s->counters < 4) {
        s->ctr[s->counters] = *c;
    }
    s->counters++;
}

static void
on_netflow(void *aux, const struct nf_flow *f)
{
    struct seen *s = aux;
    s->flow = *f;
    s->flows++;
}

static void
on_bye(void *aux)
{
    ((struct seen *) aux)->bye++;
}

static const struct dts_ipc_handlers handlers = {
    on_hello, on_schema, on_event, on_counter, on_netflow, on_bye,
};

static struct dts_ipc_schema *
make_schema(void)
{
    struct dts_ipc_schema *s = dts_ipc_schema_create("test");
    assert_int_equal(
        dts_ipc_schema_add_type(s, "ev", fields, ARRAY_SIZE(fields), NULL), 0);
    return s;
}

/* A whole valid session: HELLO SCHEMA EVENT(2) COUNTER(2) NETFLOW BYE. */
static void
make_session(struct dbuf *b, struct ev *e)
{
    struct dts_ipc_hello h = {.pid = 7};
    strcpy(h.source_id, "app1");
    strcpy(h.source_tag, "tag1");
    struct dts_ipc_schema *s = make_schema();
    dts_ipc_encode_hello(b, &h);
    dts_ipc_encode_schema(b, s);
    dts_ipc_schema_free(s);
    memset(e, 0, sizeof *e);
    e->ts = 1700000000123456789ull;
    e->port = 443;
    memcpy(e->addr, "\x0a\x00\x00\x01", 4);
    e->addr6[0] = 0x20;
    e->addr6[1] = 0x01;
    e->addr6[15] = 1;
    memcpy(e->mac, "\x02\x00\x00\xaa\xbb\xcc", 6);
    memcpy(e->name, "abcdefgh", 8); /* no NUL: full width */
    e->vals[0] = -1;
    e->vals[2] = 300;
    e->load = 0.25;
    struct ev two[2] = {*e, *e};
    two[0].port = 1;
    dts_ipc_encode_events(b, 0, two, sizeof *e, 2);
    struct dts_ipc_counter c[2] = {
        {.name = "rx_total", .kind = DTS_IPC_COUNTER_U64, .u64 = 1ull << 60},
        {.name = "temp", .kind = DTS_IPC_GAUGE_F64, .f64 = -1.5},
    };
    dts_ipc_encode_counters(b, 5, c, 2);
    struct nf_flow f = {.family = 4,
                        .protocol = 6,
                        .src_port = 40000,
                        .dst_port = 443,
                        .bytes = 1500,
                        .packets = 10,
                        .start_ms = 1,
                        .end_ms = 2,
                        .in_if = 3,
                        .out_if = 4};
    memcpy(f.src, "\x0a\x00\x00\x02", 4);
    dts_ipc_encode_netflow(b, &f, 1);
    dts_ipc_encode_bye(b);
}

static void
test_schema_layout(void **state)
{
    struct dts_ipc_schema *s = make_schema();
    const struct dts_ipc_evtype *t = &s->types[0];
    assert_int_equal(t->size, sizeof(struct ev));
    assert_int_equal(t->fields[1].offset, offsetof(struct ev, port));
    assert_int_equal(t->fields[6].offset, offsetof(struct ev, vals));
    assert_int_equal(t->fields[6].size, 6);
    /* bad inputs name what is wrong */
    struct dpf_error err = {0};
    struct dts_ipc_field_decl bad[] = {{"x y", DTS_IPC_FIELD_U8, 1}};
    assert_int_equal(dts_ipc_schema_add_type(s, "t2", bad, 1, &err), -EINVAL);
    assert_non_null(strstr(err.message, "field 0"));
    struct dts_ipc_field_decl badtype[] = {{"x", 99, 1}};
    assert_int_equal(dts_ipc_schema_add_type(s, "t2", badtype, 1, NULL),
                     -EINVAL);
    struct dts_ipc_field_decl zero[] = {{"x", DTS_IPC_FIELD_U8, 0}};
    assert_int_equal(dts_ipc_schema_add_type(s, "t2", zero, 1, NULL), -EINVAL);
    struct dts_ipc_field_decl dup[] = {{"x", DTS_IPC_FIELD_U8, 1},
                                       {"x", DTS_IPC_FIELD_U8, 1}};
    assert_int_equal(dts_ipc_schema_add_type(s, "t2", dup, 2, NULL), -EINVAL);
    assert_int_equal(dts_ipc_schema_add_type(s, "ev", fields, 1, NULL),
                     -EEXIST);
    assert_int_equal(dts_ipc_schema_add_type(s, "t2", fields, 0, NULL),
                     -EINVAL);
    /* JSON round trip */
    json_t *j = dts_ipc_schema_to_json(s);
    struct dts_ipc_schema *s2 = dts_ipc_schema_from_json(j, NULL);
    assert_non_null(s2);
    assert_int_equal(s2->n_types, 1);
    assert_int_equal(s2->types[0].size, t->size);
    assert_string_equal(s2->types[0].fields[5].name, "name");
    json_decref(j);
    dts_ipc_schema_free(s2);
    dts_ipc_schema_free(s);
}

static void
check_seen(const struct seen *s, const struct ev *e)
{
    assert_int_equal(s->hello, 1);
    assert_string_equal(s->source_id, "app1");
    assert_int_equal(s->schema, 1);
    assert_int_equal(s->events, 2);
    assert_memory_equal(&s->last, e, sizeof *e);
    assert_int_equal(s->counters, 2);
    assert_string_equal(s->ctr[0].name, "rx_total");
    assert_true(s->ctr[0].u64 == 1ull << 60);
    assert_true(s->ctr[1].f64 == -1.5);
    assert_int_equal(s->flows, 1);
    assert_int_equal(s->flow.dst_port, 443);
    assert_int_equal(s->flow.bytes, 1500);
    assert_int_equal(s->bye, 1);
}

static void
test_session_roundtrip(void **state)
{
    struct dbuf b;
    struct ev e;
    dbuf_init(&b);
    make_session(&b, &e);
    /* in one piece */
    struct seen s1 = {0};
    struct dts_ipc_session *s = dts_ipc_session_create(&handlers, &s1, 0);
    assert_int_equal(dts_ipc_session_feed(s, b.data, b.len, NULL), 0);
    check_seen(&s1, &e);
    assert_true(dts_ipc_session_done(s));
    assert_int_equal(dts_ipc_session_frames(s), 6);
    dts_ipc_session_free(s);
    /* one byte at a time */
    struct seen s2 = {0};
    s = dts_ipc_session_create(&handlers, &s2, 0);
    for (size_t i = 0; i < b.len; i++) {
        assert_int_equal(dts_ipc_session_feed(s, b.data + i, 1, NULL), 0);
    }
    check_seen(&s2, &e);
    dts_ipc_session_free(s);
    dbuf_free(&b);
}

static void
test_event_json(void **state)
{
    struct dbuf b;
    struct ev e;
    dbuf_init(&b);
    make_session(&b, &e);
    dbuf_free(&b);
    struct dts_ipc_schema *s = make_schema();
    json_t *j = dts_ipc_event_to_json(&s->types[0], (const uint8_t *) &e);
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text,
                        "{\"addr\":\"10.0.0.1\",\"addr6\":\"2001::1\","
                        "\"load\":0.25,\"mac\":\"02:00:00:aa:bb:cc\","
                        "\"name\":\"abcdefgh\",\"port\":443,"
                        "\"ts\":1700000000123456789,\"vals\":[-1,0,300]}");
    free(text);
    json_decref(j);
    dts_ipc_schema_free(s);
}

/* Feed buf to a fresh session; return the result. */
static int
feed_once(const void *buf, size_t len, struct seen *seen)
{
    struct dts_ipc_session *s = dts_ipc_session_create(&handlers, seen, 4096);
    struct dpf_error err = {0};
    int rc = dts_ipc_session_feed(s, buf, len, &err);
    if (rc < 0) {
        assert_true(dpf_error_is_set(&err));
        /* a failed session stays failed */
        assert_int_equal(dts_ipc_session_feed(s, buf, len, NULL), rc);
    }
    dts_ipc_session_free(s);
    return rc;
}

static void
test_session_rejects(void **state)
{
    struct dbuf b;
    struct ev e;
    struct seen seen = {0};
    dbuf_init(&b);
    make_session(&b, &e);
    uint8_t *p = (uint8_t *) b.data;
    size_t hello_len = p[0] | (p[1] << 8);

    /* garbage */
    assert_int_equal(feed_once("GET / HTTP/1.1\r\n\r\n", 18, &seen),
                     -EPROTONOSUPPORT);
    /* first frame must be HELLO: skip it */
    assert_int_equal(feed_once(p + hello_len, b.len - hello_len, &seen),
                     -EPROTO);
    /* oversized frame */
    uint8_t big[8] = {0x00, 0x00, 0x10, 0x00, 1, 1, 0, 0};
    assert_int_equal(feed_once(big, 8, &seen), -EMSGSIZE);
    /* frame shorter than its header */
    uint8_t tiny[8] = {4, 0, 0, 0, 1, 1, 0, 0};
    assert_int_equal(feed_once(tiny, 8, &seen), -EBADMSG);
    /* unknown type after HELLO */
    struct dbuf c;
    dbuf_init(&c);
    dbuf_append(&c, p, hello_len);
    uint8_t unk[8] = {8, 0, 0, 0, 1, 77, 0, 0};
    dbuf_append(&c, unk, 8);
    assert_int_equal(feed_once(c.data, c.len, &seen), -EBADMSG);
    /* EVENT before SCHEMA */
    c.len = hello_len;
    struct ev one = e;
    dts_ipc_encode_events(&c, 0, &one, sizeof one, 1);
    assert_int_equal(feed_once(c.data, c.len, &seen), -EPROTO);
    /* EVENT whose size does not match the schema */
    dbuf_free(&c);
    dbuf_init(&c);
    struct dts_ipc_hello h = {.pid = 1};
    dts_ipc_encode_hello(&c, &h);
    struct dts_ipc_schema *sc = make_schema();
    dts_ipc_encode_schema(&c, sc);
    dts_ipc_schema_free(sc);
    size_t good = c.len;
    dts_ipc_encode_events(&c, 0, &one, sizeof one - 1, 1);
    assert_int_equal(feed_once(c.data, c.len, &seen), -EBADMSG);
    /* EVENT of a type index not in the schema */
    c.len = good;
    dts_ipc_encode_events(&c, 3, &one, sizeof one, 1);
    assert_int_equal(feed_once(c.data, c.len, &seen), -EBADMSG);
    /* a counter with a bad name */
    c.len = good;
    struct dts_ipc_counter bad = {.name = "a b", .kind = 0};
    dts_ipc_encode_counters(&c, 0, &bad, 1);
    assert_int_equal(feed_once(c.data, c.len, &seen), -EBADMSG);
    /* a flow with family 5 */
    c.len = good;
    struct nf_flow f = {.family = 5};
    dts_ipc_encode_netflow(&c, &f, 1);
    assert_int_equal(feed_once(c.data, c.len, &seen), -EBADMSG);
    /* second HELLO */
    c.len = good;
    dts_ipc_encode_hello(&c, &h);
    assert_int_equal(feed_once(c.data, c.len, &seen), -EPROTO);
    /* a truncated session is just incomplete */
    assert_int_equal(feed_once(b.data, b.len - 3, &seen), 0);
    /* every single-byte corruption is handled without a crash */
    for (size_t i = 0; i < b.len; i++) {
        uint8_t save = p[i];
        p[i] ^= 0x5a;
        feed_once(b.data, b.len, &seen);
        p[i] = save;
    }
    dbuf_free(&c);
    dbuf_free(&b);
}

/* Protocol 2: counter samples with labels. A protocol-1 session may not
 * send them; label names that are reserved (__*, source_id, source_tag),
 * malformed or repeated and values with control characters are refused. */
static void
test_labelled_counters(void **state)
{
    struct dts_ipc_counter c = {
        .name = "ops_total", .kind = 0, .u64 = 5, .n_labels = 2};
    strcpy(c.labels[0].name, "iface");
    strcpy(c.labels[0].value, "eth0");
    strcpy(c.labels[1].name, "dir");
    strcpy(c.labels[1].value, "r\xc3\xa9x"); /* UTF-8 is fine */
    struct seen seen;
    struct dbuf b;
    /* protocol 2: delivered with its labels */
    dbuf_init(&b);
    struct dts_ipc_hello h2 = {.proto = 2, .pid = 1};
    dts_ipc_encode_hello(&b, &h2);
    size_t hello_end = b.len;
    dts_ipc_encode_counters(&b, 0, &c, 1);
    memset(&seen, 0, sizeof seen);
    assert_int_equal(feed_once(b.data, b.len, &seen), 0);
    assert_int_equal(seen.counters, 1);
    assert_int_equal(seen.ctr[0].n_labels, 2);
    assert_string_equal(seen.ctr[0].labels[1].name, "dir");
    assert_string_equal(seen.ctr[0].labels[1].value, "r\xc3\xa9x");
    assert_int_equal(seen.ctr[0].u64, 5);
    /* bad labels, each refused */
    static const char *const bad_names[] = {
        "__name__", "source_id", "source_tag", "1a", "a-b", "dir"};
    for (size_t i = 0; i < ARRAY_SIZE(bad_names); i++) {
        struct dts_ipc_counter x = c;
        strcpy(x.labels[0].name, bad_names[i]); /* "dir": a repeat */
        b.len = hello_end;
        dts_ipc_encode_counters(&b, 0, &x, 1);
        assert_int_equal(feed_once(b.data, b.len, &seen), -EBADMSG);
    }
    struct dts_ipc_counter x = c;
    strcpy(x.labels[0].value, "a\nb");
    b.len = hello_end;
    dts_ipc_encode_counters(&b, 0, &x, 1);
    assert_int_equal(feed_once(b.data, b.len, &seen), -EBADMSG);
    strcpy(x.labels[0].value, "\xff\xfe"); /* not UTF-8 */
    b.len = hello_end;
    dts_ipc_encode_counters(&b, 0, &x, 1);
    assert_int_equal(feed_once(b.data, b.len, &seen), -EBADMSG);
    /* protocol 1 may not carry labels */
    b.len = 0;
    struct dts_ipc_hello h1 = {.pid = 1};
    dts_ipc_encode_hello(&b, &h1);
    dts_ipc_encode_counters(&b, 0, &c, 1);
    assert_int_equal(feed_once(b.data, b.len, &seen), -EBADMSG);
    /* protocol 3 is not known */
    b.len = 0;
    struct dts_ipc_hello h3 = {.proto = 3, .pid = 1};
    dts_ipc_encode_hello(&b, &h3);
    assert_int_equal(feed_once(b.data, b.len, &seen), -EPROTONOSUPPORT);
    dbuf_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_layout),
        cmocka_unit_test(test_session_roundtrip),
        cmocka_unit_test(test_event_json),
        cmocka_unit_test(test_session_rejects),
        cmocka_unit_test(test_labelled_counters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
