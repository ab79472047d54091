/* Unit tests for lib/net/websocket: frames, the accept key, subprotocol
 * choice. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/net/websocket.h"

/* RFC 6455 1.3's example. */
static void
test_accept_key(void **state)
{
    (void) state;
    char *a = ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==");
    assert_string_equal(a, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    free(a);
    assert_null(ws_accept_key("short"));
    assert_null(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ=!"));
    assert_null(ws_accept_key(NULL));
}

static void
test_pick_protocol(void **state)
{
    (void) state;
    static const char *const ours[] = {"v5.channel.k8s.io", "v4.channel.k8s.io",
                                       NULL};
    assert_string_equal(
        ws_pick_protocol("v4.channel.k8s.io,v5.channel.k8s.io", ours),
        "v5.channel.k8s.io");
    assert_string_equal(
        ws_pick_protocol("base64.channel.k8s.io, v4.channel.k8s.io", ours),
        "v4.channel.k8s.io");
    assert_null(ws_pick_protocol("v4.channel.k8s.io.evil", ours));
    assert_null(ws_pick_protocol("channel.k8s.io", ours));
    assert_null(ws_pick_protocol(NULL, ours));
}

/* A masked client frame round trip, each length encoding. */
static void
test_masked_round_trip(void **state)
{
    (void) state;
    static const size_t lens[] = {0, 1, 125, 126, 65535, 65536, 70000};
    const uint8_t key[4] = {0xde, 0xad, 0xbe, 0xef};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        size_t n = lens[i];
        uint8_t *buf = malloc(WS_MAX_HEADER + n + 1);
        size_t hl = ws_frame_header(buf, WS_OP_BINARY, true, n, key);
        for (size_t j = 0; j < n; j++) {
            buf[hl + j] = (uint8_t) j;
        }
        ws_mask(buf + hl, n, key, 0);
        struct ws_frame f;
        /* every prefix is incomplete */
        assert_int_equal(
            ws_frame_parse(buf, hl + n - (n ? 1 : hl), true, 1u << 20, &f), 0);
        assert_int_equal(ws_frame_parse(buf, hl + n, true, 1u << 20, &f),
                         (ssize_t) (hl + n));
        assert_true(f.fin);
        assert_int_equal(f.opcode, WS_OP_BINARY);
        assert_int_equal(f.len, n);
        for (size_t j = 0; j < n; j++) {
            assert_int_equal(f.payload[j], (uint8_t) j);
        }
        free(buf);
    }
}

static void
test_protocol_errors(void **state)
{
    (void) state;
    struct ws_frame f;
    uint8_t unmasked[] = {0x82, 0x01, 'x'};
    assert_int_equal(ws_frame_parse(unmasked, sizeof unmasked, true, 100, &f),
                     -EPROTO);
    assert_int_equal(ws_frame_parse(unmasked, sizeof unmasked, false, 100, &f),
                     3);
    uint8_t rsv[] = {0xc2, 0x00};
    assert_int_equal(ws_frame_parse(rsv, sizeof rsv, false, 100, &f), -EPROTO);
    uint8_t opcode[] = {0x83, 0x00};
    assert_int_equal(ws_frame_parse(opcode, sizeof opcode, false, 100, &f),
                     -EPROTO);
    uint8_t frag_ping[] = {0x09, 0x00};
    assert_int_equal(
        ws_frame_parse(frag_ping, sizeof frag_ping, false, 100, &f), -EPROTO);
    uint8_t long_ping[] = {0x89, 126, 0, 126};
    assert_int_equal(
        ws_frame_parse(long_ping, sizeof long_ping, false, 1000, &f), -EPROTO);
    uint8_t nonminimal[] = {0x82, 126, 0, 5, 1, 2, 3, 4, 5};
    assert_int_equal(
        ws_frame_parse(nonminimal, sizeof nonminimal, false, 100, &f), -EPROTO);
    uint8_t big[] = {0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0};
    assert_int_equal(ws_frame_parse(big, sizeof big, false, 1u << 20, &f),
                     -EMSGSIZE);
    uint8_t huge[] = {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(ws_frame_parse(huge, sizeof huge, false, 1u << 20, &f),
                     -EPROTO);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test(test_pick_protocol),
        cmocka_unit_test(test_masked_round_trip),
        cmocka_unit_test(test_protocol_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
