/* Unit tests for lib/net/spdy: frames, the dictionary, header blocks. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <cmocka.h>

#include "lib/net/spdy.h"

/* The dictionary's Adler-32 is what a peer checks (the zlib header's
 * DICTID): SPDY/3's is 0xe3c6a7c2, over 1423 bytes. */
static void
test_dictionary(void **state)
{
    (void) state;
    size_t len;
    const uint8_t *d = spdy_dictionary(&len);
    assert_int_equal(len, 1423);
    assert_int_equal(adler32(1, d, (uInt) len), 0xe3c6a7c2u);
    assert_memory_equal(d, "\0\0\0\7options", 11);
    assert_memory_equal(d + len - 6, "enq=0.", 6);
}

/* A SYN_STREAM as another SPDY/3 implementation writes it: stream 1,
 * headers ":method: GET" and ":path: /". */
static void
test_foreign_syn_stream(void **state)
{
    (void) state;
    static const char hex[] = "800300010000002c0000000100000000000078f9e3c6"
                              "a7c202e50e507ab442a45a77d7105006b32a4804974d"
                              "8cfa00000000ffff";
    uint8_t buf[64];
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        buf[i] = (uint8_t) v;
    }
    struct spdy_frame f;
    assert_int_equal(spdy_frame_parse(buf, n, 1024, &f), (ssize_t) n);
    assert_int_equal(f.type, SPDY_SYN_STREAM);
    assert_int_equal(f.stream_id, 1);
    assert_int_equal(spdy_frame_parse(buf, n - 1, 1024, &f), 0);
    assert_int_equal(spdy_frame_parse(buf, n, 16, &f), -EMSGSIZE);
    assert_int_equal(spdy_frame_parse(buf, n, 1024, &f), (ssize_t) n);

    struct spdy_zin *zin = spdy_zin_new();
    struct spdy_headers h;
    assert_int_equal(spdy_headers_decode(zin, f.payload, f.len, 4096, 16, &h),
                     0);
    assert_int_equal(h.n, 2);
    assert_string_equal(spdy_headers_get(&h, ":method"), "GET");
    assert_string_equal(spdy_headers_get(&h, ":path"), "/");
    assert_null(spdy_headers_get(&h, "streamtype"));
    spdy_headers_free(&h);
    spdy_zin_free(zin);
}

/* Our writer and reader: one compression stream across frames, as
 * kubectl opens its streams. */
static void
test_round_trip(void **state)
{
    (void) state;
    struct spdy_zout *zout = spdy_zout_new();
    struct spdy_zin *zin = spdy_zin_new();
    struct dbuf b;
    dbuf_init(&b);
    static const char *const types[] = {"error", "stdin", "stdout", "stderr"};
    for (uint32_t i = 0; i < 4; i++) {
        const char *pairs[] = {"streamtype", types[i], NULL};
        spdy_put_syn_stream(&b, zout, 2 * i + 1, 0, pairs);
    }
    spdy_put_data(&b, 3, SPDY_FLAG_FIN, "hi", 2);
    spdy_put_window_update(&b, 0, 100);
    spdy_put_ping(&b, 7);
    spdy_put_rst_stream(&b, 5, SPDY_RST_CANCEL);
    spdy_put_goaway(&b, 7, SPDY_GOAWAY_OK);
    spdy_put_syn_reply(&b, zout, 1, SPDY_FLAG_FIN, NULL);

    const uint8_t *p = (const uint8_t *) b.data;
    size_t pos = 0;
    struct spdy_frame f;
    for (uint32_t i = 0; i < 4; i++) {
        ssize_t u = spdy_frame_parse(p + pos, b.len - pos, 1024, &f);
        assert_true(u > 0);
        pos += (size_t) u;
        assert_int_equal(f.type, SPDY_SYN_STREAM);
        assert_int_equal(f.stream_id, 2 * i + 1);
        struct spdy_headers h;
        assert_int_equal(
            spdy_headers_decode(zin, f.payload, f.len, 4096, 16, &h), 0);
        assert_string_equal(spdy_headers_get(&h, "streamType"), types[i]);
        spdy_headers_free(&h);
    }
    ssize_t u = spdy_frame_parse(p + pos, b.len - pos, 1024, &f);
    pos += (size_t) u;
    assert_int_equal(f.type, SPDY_DATA);
    assert_int_equal(f.stream_id, 3);
    assert_int_equal(f.flags, SPDY_FLAG_FIN);
    assert_int_equal(f.len, 2);
    assert_memory_equal(f.payload, "hi", 2);
    pos += (size_t) spdy_frame_parse(p + pos, b.len - pos, 1024, &f);
    assert_int_equal(f.type, SPDY_WINDOW_UPDATE);
    assert_int_equal(f.stream_id, 0);
    assert_int_equal(f.value, 100);
    pos += (size_t) spdy_frame_parse(p + pos, b.len - pos, 1024, &f);
    assert_int_equal(f.type, SPDY_PING);
    assert_int_equal(f.value, 7);
    pos += (size_t) spdy_frame_parse(p + pos, b.len - pos, 1024, &f);
    assert_int_equal(f.type, SPDY_RST_STREAM);
    assert_int_equal(f.stream_id, 5);
    assert_int_equal(f.value, SPDY_RST_CANCEL);
    pos += (size_t) spdy_frame_parse(p + pos, b.len - pos, 1024, &f);
    assert_int_equal(f.type, SPDY_GOAWAY);
    assert_int_equal(f.stream_id, 7);
    pos += (size_t) spdy_frame_parse(p + pos, b.len - pos, 1024, &f);
    assert_int_equal(f.type, SPDY_SYN_REPLY);
    assert_int_equal(f.flags, SPDY_FLAG_FIN);
    struct spdy_headers h;
    assert_int_equal(spdy_headers_decode(zin, f.payload, f.len, 4096, 16, &h),
                     0);
    assert_int_equal(h.n, 0);
    spdy_headers_free(&h);
    assert_int_equal(pos, b.len);

    dbuf_free(&b);
    spdy_zin_free(zin);
    spdy_zout_free(zout);
}

/* Limits: too many pairs, too many bytes, garbage, a wrong dictionary. */
static void
test_header_limits(void **state)
{
    (void) state;
    struct spdy_zout *zout = spdy_zout_new();
    struct dbuf b;
    dbuf_init(&b);
    const char *pairs[] = {"a", "1", "b", "2", "c", "3", NULL};
    spdy_put_syn_reply(&b, zout, 1, 0, pairs);
    struct spdy_frame f;
    assert_true(spdy_frame_parse((uint8_t *) b.data, b.len, 1024, &f) > 0);
    struct spdy_headers h;
    struct spdy_zin *zin = spdy_zin_new();
    assert_int_equal(spdy_headers_decode(zin, f.payload, f.len, 4096, 2, &h),
                     -EMSGSIZE);
    spdy_zin_free(zin);
    zin = spdy_zin_new();
    assert_int_equal(spdy_headers_decode(zin, f.payload, f.len, 8, 16, &h),
                     -EMSGSIZE);
    spdy_zin_free(zin);
    zin = spdy_zin_new();
    static const uint8_t junk[] = "not zlib at all";
    assert_int_equal(
        spdy_headers_decode(zin, junk, sizeof junk - 1, 4096, 16, &h), -EPROTO);
    spdy_zin_free(zin);

    /* zlib with another dictionary */
    uint8_t out[128];
    z_stream zs = {0};
    deflateInit(&zs, Z_DEFAULT_COMPRESSION);
    deflateSetDictionary(&zs, (const Bytef *) "other", 5);
    static const uint8_t raw[4] = {0, 0, 0, 0};
    zs.next_in = (Bytef *) raw;
    zs.avail_in = sizeof raw;
    zs.next_out = out;
    zs.avail_out = sizeof out;
    deflate(&zs, Z_SYNC_FLUSH);
    size_t ol = sizeof out - zs.avail_out;
    deflateEnd(&zs);
    zin = spdy_zin_new();
    assert_int_equal(spdy_headers_decode(zin, out, ol, 4096, 16, &h), -EPROTO);
    spdy_zin_free(zin);

    dbuf_free(&b);
    spdy_zout_free(zout);
}

static void
test_protocol_errors(void **state)
{
    (void) state;
    struct spdy_frame f;
    /* SPDY/2 control frame */
    uint8_t v2[] = {0x80, 0x02, 0x00, 0x06, 0, 0, 0, 4, 0, 0, 0, 1};
    assert_int_equal(spdy_frame_parse(v2, sizeof v2, 100, &f), -EPROTO);
    /* PING of 3 bytes */
    uint8_t ping[] = {0x80, 0x03, 0x00, 0x06, 0, 0, 0, 3, 0, 0, 1};
    assert_int_equal(spdy_frame_parse(ping, sizeof ping, 100, &f), -EPROTO);
    /* DATA on stream 0 */
    uint8_t data0[] = {0, 0, 0, 0, 0, 0, 0, 1, 'x'};
    assert_int_equal(spdy_frame_parse(data0, sizeof data0, 100, &f), -EPROTO);
    /* WINDOW_UPDATE of 0 */
    uint8_t wu[] = {0x80, 3, 0, 9, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0};
    assert_int_equal(spdy_frame_parse(wu, sizeof wu, 100, &f), -EPROTO);
    /* SYN_STREAM on stream 0 */
    uint8_t syn0[] = {0x80, 3, 0, 1, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(spdy_frame_parse(syn0, sizeof syn0, 100, &f), -EPROTO);
    /* SETTINGS whose count exceeds its entries */
    uint8_t set[] = {0x80, 3, 0, 4, 0, 0, 0, 12, 0, 0,
                     0,    2, 0, 0, 0, 7, 0, 1,  0, 0};
    assert_int_equal(spdy_frame_parse(set, sizeof set, 100, &f), -EPROTO);
    set[11] = 1;
    assert_int_equal(spdy_frame_parse(set, sizeof set, 100, &f),
                     (ssize_t) sizeof set);
    uint32_t v = 0;
    assert_true(spdy_settings_get(&f, SPDY_SETTINGS_INITIAL_WINDOW_SIZE, &v));
    assert_int_equal(v, 0x10000);
    /* an unknown control type passes (to be ignored) */
    uint8_t unk[] = {0x80, 3, 0, 0x42, 0, 0, 0, 2, 'a', 'b'};
    assert_int_equal(spdy_frame_parse(unk, sizeof unk, 100, &f),
                     (ssize_t) sizeof unk);
    assert_int_equal(f.type, 0x42);
    /* a length past the maximum is refused from the header alone */
    uint8_t big[] = {0, 0, 0, 1, 0, 0x10, 0, 0};
    assert_int_equal(spdy_frame_parse(big, sizeof big, 1024, &f), -EMSGSIZE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dictionary),
        cmocka_unit_test(test_foreign_syn_stream),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_header_limits),
        cmocka_unit_test(test_protocol_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
