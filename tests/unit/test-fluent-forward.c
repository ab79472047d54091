/* Unit tests for lib/fluent-forward: encoder/decoder round trips in all
 * four modes, strictness on bad frames, and listener <-> client over
 * loopback with acks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <msgpack.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "dts/dts-forward.h"

struct got {
    int n;
    char tag[64];
    int64_t time_ns[16];
    char rec[16][256];
};

static void
collect(void *aux, const char *tag, int64_t t, json_t *rec)
{
    struct got *g = aux;
    if (g->n < 16) {
        snprintf(g->tag, sizeof g->tag, "%s", tag);
        g->time_ns[g->n] = t;
        char *s = json_dumps(rec, JSON_COMPACT | JSON_SORT_KEYS);
        snprintf(g->rec[g->n], sizeof g->rec[0], "%s", s);
        free(s);
    }
    g->n++;
}

static int
wr(void *data, const char *buf, size_t len)
{
    dbuf_append(data, buf, len);
    return 0;
}

static void
test_forward_roundtrip(void **state)
{
    json_t *r1 = json_pack("{s:s, s:i, s:f, s:b, s:n, s:[i,i], s:{s:s}}",
                           "name", "eth0", "rx", 12345, "ratio", 0.5, "up", 1,
                           "none", "arr", 1, 2, "sub", "k", "v");
    json_t *r2 = json_pack("{s:I}", "big", (json_int_t) 1 << 40);
    struct ff_entry e[2] = {{1700000000123456789LL, r1},
                            {1700000001000000000LL, r2}};
    struct dbuf b;
    dbuf_init(&b);
    assert_int_equal(ff_encode_forward(&b, "doca_telemetry", e, 2, "abc"), 0);
    /* EventTime: fixext8 type 0 right after the entry array header */
    assert_non_null(memmem(b.data, b.len, "\xd7\x00\x65\x53\xf1\x00", 6));
    struct got g = {0};
    struct ff_frame_info info;
    long n = ff_decode_frame(b.data, b.len, NULL, collect, &g, &info, NULL);
    assert_int_equal(n, (long) b.len);
    assert_int_equal(info.n_events, 2);
    assert_string_equal(info.chunk, "abc");
    assert_string_equal(g.tag, "doca_telemetry");
    assert_true(g.time_ns[0] == 1700000000123456789LL);
    assert_string_equal(g.rec[0],
                        "{\"arr\":[1,2],\"name\":\"eth0\",\"none\":null,"
                        "\"ratio\":0.5,\"rx\":12345,\"sub\":{\"k\":\"v\"},"
                        "\"up\":true}");
    assert_string_equal(g.rec[1], "{\"big\":1099511627776}");
    /* every proper prefix is incomplete, never an error */
    for (size_t i = 0; i < b.len; i++) {
        assert_int_equal(
            ff_decode_frame(b.data, i, NULL, collect, &g, NULL, NULL), 0);
    }
    assert_int_equal(g.n, 2);
    /* non-object record */
    json_t *arr = json_array();
    struct ff_entry bad = {0, arr};
    assert_int_equal(ff_encode_forward(&b, "t", &bad, 1, NULL), -EINVAL);
    json_decref(arr);
    json_decref(r1);
    json_decref(r2);
    dbuf_free(&b);
}

/* [tag, time, {"a": 1}] with integer time */
static void
test_message_mode(void **state)
{
    struct dbuf b;
    dbuf_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b, wr);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_str_with_body(&pk, "app.log", 7);
    msgpack_pack_uint32(&pk, 1700000000);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "a", 1);
    msgpack_pack_int(&pk, 1);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "chunk", 5);
    msgpack_pack_str_with_body(&pk, "c1", 2);
    struct got g = {0};
    struct ff_frame_info info;
    assert_int_equal(
        ff_decode_frame(b.data, b.len, NULL, collect, &g, &info, NULL),
        (long) b.len);
    assert_int_equal(g.n, 1);
    assert_true(g.time_ns[0] == 1700000000LL * 1000000000);
    assert_string_equal(info.chunk, "c1");
    /* heartbeat */
    assert_int_equal(ff_decode_frame("\xc0", 1, NULL, collect, &g, &info, NULL),
                     1);
    assert_true(info.heartbeat);
    dbuf_free(&b);
}

static void
pack_packed(struct dbuf *b, const char *payload, size_t len, bool gzip,
            int size)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, b, wr);
    msgpack_pack_array(&pk, 3);
    msgpack_pack_str_with_body(&pk, "packed", 6);
    msgpack_pack_bin_with_body(&pk, payload, len);
    msgpack_pack_map(&pk, gzip ? 2 : 1);
    msgpack_pack_str_with_body(&pk, "size", 4);
    msgpack_pack_int(&pk, size);
    if (gzip) {
        msgpack_pack_str_with_body(&pk, "compressed", 10);
        msgpack_pack_str_with_body(&pk, "gzip", 4);
    }
}

static void
gzip_into(struct dbuf *out, const char *in, size_t len)
{
    z_stream zs = {0};
    assert_int_equal(
        deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    char buf[4096];
    zs.next_in = (Bytef *) in;
    zs.avail_in = (uInt) len;
    zs.next_out = (Bytef *) buf;
    zs.avail_out = sizeof buf;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    dbuf_append(out, buf, sizeof buf - zs.avail_out);
    deflateEnd(&zs);
}

static void
test_packed_modes(void **state)
{
    /* two entries, concatenated */
    struct dbuf entries;
    dbuf_init(&entries);
    json_t *r = json_pack("{s:s}", "k", "v");
    ff_encode_entry(&entries, 5000000001LL, r);
    ff_encode_entry(&entries, 6000000002LL, r);
    json_decref(r);

    struct dbuf b;
    dbuf_init(&b);
    pack_packed(&b, entries.data, entries.len, false, 2);
    struct got g = {0};
    assert_int_equal(
        ff_decode_frame(b.data, b.len, NULL, collect, &g, NULL, NULL),
        (long) b.len);
    assert_int_equal(g.n, 2);
    assert_true(g.time_ns[1] == 6000000002LL);

    /* CompressedPackedForward, two gzip members back to back */
    struct dbuf z;
    dbuf_init(&z);
    gzip_into(&z, entries.data, entries.len);
    gzip_into(&z, entries.data, entries.len);
    b.len = 0;
    pack_packed(&b, z.data, z.len, true, 4);
    g.n = 0;
    assert_int_equal(
        ff_decode_frame(b.data, b.len, NULL, collect, &g, NULL, NULL),
        (long) b.len);
    assert_int_equal(g.n, 4);

    /* corrupt gzip */
    z.data[z.len / 2] ^= 0xff;
    b.len = 0;
    pack_packed(&b, z.data, z.len, true, 4);
    g.n = 0;
    assert_int_equal(
        ff_decode_frame(b.data, b.len, NULL, collect, &g, NULL, NULL),
        -EBADMSG);
    assert_int_equal(g.n, 0);

    /* size option that lies */
    b.len = 0;
    pack_packed(&b, entries.data, entries.len, false, 3);
    assert_int_equal(
        ff_decode_frame(b.data, b.len, NULL, collect, &g, NULL, NULL),
        -EBADMSG);
    assert_int_equal(g.n, 0);
    dbuf_free(&z);
    dbuf_free(&b);
    dbuf_free(&entries);
}

static long
decode_raw(const void *p, size_t n, const struct ff_limits *lim)
{
    struct got g = {0};
    struct dpf_error err = {0};
    long rc = ff_decode_frame(p, n, lim, collect, &g, NULL, &err);
    if (rc < 0) {
        assert_int_equal(g.n, 0); /* nothing of a bad frame is delivered */
        assert_true(dpf_error_is_set(&err));
    }
    return rc;
}

static void
test_rejects(void **state)
{
    /* array32 announcing 4 billion elements: incomplete, then too big */
    const char huge[] = "\xdd\xff\xff\xff\xff\xc0\xc0";
    assert_int_equal(decode_raw(huge, 7, NULL), 0);
    struct ff_limits lim = {.max_frame = 64};
    char buf[128];
    memset(buf, 0xc0, sizeof buf);
    memcpy(buf, huge, 5);
    assert_int_equal(decode_raw(buf, sizeof buf, &lim), -EMSGSIZE);
    /* never-used byte 0xc1 */
    assert_int_equal(decode_raw("\x93\xc1\xc0\xc0", 4, NULL), -EBADMSG);
    /* ext type 5 */
    assert_int_equal(
        decode_raw("\x93\xa1t\xd7\x05\0\0\0\0\0\0\0\0\x80", 14, NULL),
        -EBADMSG);
    /* nesting deeper than the limit */
    char deep[64];
    memset(deep, 0x91, sizeof deep);
    deep[63] = 0x80;
    assert_int_equal(decode_raw(deep, sizeof deep, NULL), -EBADMSG);
    /* tag is an integer */
    assert_int_equal(decode_raw("\x93\x01\x01\x80", 4, NULL), -EBADMSG);
    /* record is an array */
    assert_int_equal(decode_raw("\x93\xa1t\x01\x90", 5, NULL), -EBADMSG);
    /* a map at top level */
    assert_int_equal(decode_raw("\x81\xa1k\xa1v", 5, NULL), -EBADMSG);
    /* record key is an integer */
    assert_int_equal(decode_raw("\x93\xa1t\x01\x81\x01\x01", 7, NULL),
                     -EBADMSG);
    /* EventTime with nanoseconds >= 1e9 */
    assert_int_equal(decode_raw("\x93\xa1t\xd7\x00\0\0\0\x01\xff\xff\xff\xff"
                                "\x80",
                                14, NULL),
                     -EBADMSG);
    /* Forward entry with 3 elements */
    assert_int_equal(decode_raw("\x92\xa1t\x91\x93\x01\x80\x01", 8, NULL),
                     -EBADMSG);
    /* record string that is not UTF-8 */
    assert_int_equal(decode_raw("\x93\xa1t\x01\x81\xa1k\xa1\xff", 9, NULL),
                     -EBADMSG);
    /* valid minimal message */
    assert_int_equal(decode_raw("\x93\xa1t\x01\x80", 5, NULL), 5);
    /* every byte flip of a valid Forward frame: no crash */
    json_t *r = json_pack("{s:s, s:[i]}", "a", "b", "c", 1);
    struct ff_entry e = {1, r};
    struct dbuf b;
    dbuf_init(&b);
    ff_encode_forward(&b, "tag", &e, 1, "ch");
    for (size_t i = 0; i < b.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b.data[i] ^= (char) (1 << bit);
            decode_raw(b.data, b.len, NULL);
            b.data[i] ^= (char) (1 << bit);
        }
    }
    json_decref(r);
    dbuf_free(&b);
}

static void
test_listener_client_ack(void **state)
{
    struct got g = {0};
    struct dts_forward_server_config scfg = {
        .port = 0, .cb = collect, .aux = &g};
    struct dpf_error err = {0};
    struct dts_forward_server *s = dts_forward_server_start(&scfg, &err);
    assert_non_null(s);
    struct dts_forward_client_config ccfg = {.host = "127.0.0.1",
                                             .port = dts_forward_server_port(s),
                                             .tag = "unit",
                                             .require_ack = true,
                                             .batch_records = 7};
    struct dts_forward_client *c = dts_forward_client_start(&ccfg, &err);
    assert_non_null(c);
    for (int i = 0; i < 50; i++) {
        json_t *r = json_pack("{s:i}", "i", i);
        assert_int_equal(dts_forward_client_post(c, 1000000000LL * i, r), 0);
        json_decref(r);
    }
    struct dts_forward_client_stats cs = {0};
    for (int i = 0; i < 500; i++) {
        dts_forward_client_get_stats(c, &cs);
        if (cs.acked == 50) {
            break;
        }
        poll(NULL, 0, 10);
    }
    assert_int_equal(cs.acked, 50);
    assert_int_equal(cs.sent, 50);
    assert_int_equal(cs.dropped, 0);
    assert_true(cs.connected);
    struct dts_forward_server_stats ss;
    dts_forward_server_get_stats(s, &ss);
    assert_int_equal(ss.events, 50);
    assert_int_equal(ss.acks, ss.frames);
    assert_int_equal(ss.errors, 0);
    assert_int_equal(g.n, 50);
    assert_string_equal(g.tag, "unit");
    dts_forward_client_stop(c);
    dts_forward_server_stop(s);
}

static void
test_client_bounded_queue(void **state)
{
    /* nobody listens on port 1 of 127.0.0.1: the queue fills, the oldest
     * records are dropped, post never blocks */
    struct dts_forward_client_config ccfg = {.host = "127.0.0.1",
                                             .port = 1,
                                             .buffer_records = 10,
                                             .backoff_min_ms = 50};
    struct dts_forward_client *c = dts_forward_client_start(&ccfg, NULL);
    assert_non_null(c);
    int64_t t0 = time_mono_ms();
    for (int i = 0; i < 25; i++) {
        json_t *r = json_pack("{s:i}", "i", i);
        assert_int_equal(dts_forward_client_post(c, 0, r), 0);
        json_decref(r);
    }
    assert_true(time_mono_ms() - t0 < 1000);
    struct dts_forward_client_stats cs;
    dts_forward_client_get_stats(c, &cs);
    assert_int_equal(cs.queued, 10);
    assert_int_equal(cs.dropped, 15);
    assert_false(cs.connected);
    dts_forward_client_stop(c);
    /* config errors */
    struct dpf_error err = {0};
    struct dts_forward_client_config bad = {.host = ""};
    assert_null(dts_forward_client_start(&bad, &err));
    assert_non_null(strstr(err.message, "host"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_roundtrip),
        cmocka_unit_test(test_message_mode),
        cmocka_unit_test(test_packed_modes),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_listener_client_ack),
        cmocka_unit_test(test_client_bounded_queue),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
