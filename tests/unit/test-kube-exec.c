/* Unit tests for lib/kube/kube-exec: the server's stream split into its
 * channels (fragments, pings, close, limits) and the Status that ends it,
 * as dpulet and kubelet send it. The client against a live server:
 * tests/system/test_pod_proxy.py::test_lib_kube_exec_matches_kubectl. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/base/util.h"
#include "lib/kube/kube-exec.h"
#include "lib/net/websocket.h"

/* A server frame (unmasked): opcode, fin, [channel] + text. */
static void
frame(struct dbuf *b, uint8_t op, bool fin, int ch, const char *text)
{
    size_t tl = strlen(text), n = tl + (ch >= 0 ? 1 : 0);
    uint8_t hdr[WS_MAX_HEADER];
    dbuf_append(b, hdr, ws_frame_header(hdr, op, fin, n, NULL));
    if (ch >= 0) {
        uint8_t c = (uint8_t) ch;
        dbuf_append(b, &c, 1);
    }
    dbuf_append(b, text, tl);
}

static int pings;

static void
on_ping(void *arg, const uint8_t *p, size_t n)
{
    (void) arg;
    assert_int_equal(n, 2);
    assert_memory_equal(p, "hi", 2);
    pings++;
}

static void
test_channels_fragments_ping_close(void **state)
{
    (void) state;
    struct dbuf b;
    dbuf_init(&b);
    frame(&b, WS_OP_BINARY, true, 1, "out ");
    frame(&b, WS_OP_BINARY, false, 2, "er");
    frame(&b, WS_OP_PING, true, -1, "hi"); /* between fragments: allowed */
    frame(&b, WS_OP_CONT, true, -1, "r\n");
    frame(&b, WS_OP_BINARY, true, 1, "more\n");
    frame(&b, WS_OP_BINARY, true, 3,
          "{\"metadata\":{},\"status\":\"Success\"}");
    uint8_t close[2] = {0x03, 0xe8};
    uint8_t hdr[WS_MAX_HEADER];
    dbuf_append(&b, hdr, ws_frame_header(hdr, WS_OP_CLOSE, true, 2, NULL));
    dbuf_append(&b, close, 2);
    dbuf_append(&b, "trailing", 8);

    struct kube_exec_demux d;
    kube_exec_demux_init(&d, 0);
    pings = 0;
    /* byte by byte: every prefix is an incomplete frame or whole ones */
    size_t off = 0;
    for (size_t end = 1; end <= b.len && !d.closed; end++) {
        ssize_t n = kube_exec_demux_feed(&d, (uint8_t *) b.data + off,
                                         end - off, on_ping, NULL);
        assert_true(n >= 0);
        off += (size_t) n;
    }
    assert_true(d.closed);
    assert_int_equal(b.len - off, 8); /* what follows the close stays */
    assert_int_equal(pings, 1);
    assert_int_equal(d.out.len, 9);
    assert_memory_equal(d.out.data, "out more\n", 9);
    assert_int_equal(d.err.len, 4);
    assert_memory_equal(d.err.data, "err\n", 4);
    assert_int_equal(d.close_len, 2);
    int code = -1;
    struct dpf_error err = {0};
    assert_int_equal(
        kube_exec_status_decode(d.status.data, d.status.len, &code, &err), 0);
    assert_int_equal(code, 0);
    kube_exec_demux_free(&d);
    dbuf_free(&b);
}

static void
test_limits(void **state)
{
    (void) state;
    struct dbuf b;
    dbuf_init(&b);
    frame(&b, WS_OP_BINARY, true, 1, "12345");
    frame(&b, WS_OP_BINARY, true, 2, "123456");
    struct kube_exec_demux d;
    kube_exec_demux_init(&d, 5);
    assert_int_equal(
        kube_exec_demux_feed(&d, (uint8_t *) b.data, b.len, NULL, NULL),
        -EMSGSIZE);
    assert_int_equal(d.overflow, 2);
    kube_exec_demux_free(&d);
    dbuf_free(&b);

    /* a masked frame from the server is a protocol error */
    uint8_t masked[] = {0x82, 0x82, 1, 2, 3, 4, 0, 0};
    kube_exec_demux_init(&d, 0);
    assert_int_equal(
        kube_exec_demux_feed(&d, masked, sizeof masked, NULL, NULL), -EPROTO);
    assert_true(d.bad_frame);
    kube_exec_demux_free(&d);
}

static void
test_status(void **state)
{
    (void) state;
    int code = -1;
    struct dpf_error err = {0};
    /* dpulet's (and kubelet's) Status for exit code 3 */
    const char *nz =
        "{\"metadata\":{},\"status\":\"Failure\",\"message\":\"command "
        "terminated with non-zero exit code: error executing command [sh], "
        "exit code 3\",\"reason\":\"NonZeroExitCode\",\"details\":{"
        "\"causes\":[{\"reason\":\"ExitCode\",\"message\":\"3\"}]}}";
    assert_int_equal(kube_exec_status_decode(nz, strlen(nz), &code, &err), 0);
    assert_int_equal(code, 3);

    const char *ie = "{\"status\":\"Failure\",\"message\":\"cannot enter the "
                     "container\",\"reason\":\"InternalError\",\"code\":500}";
    assert_int_equal(kube_exec_status_decode(ie, strlen(ie), &code, &err),
                     -EIO);
    assert_string_equal(err.reason, "InternalError");
    assert_non_null(strstr(err.message, "cannot enter the container"));

    const char *bad_code = "{\"status\":\"Failure\",\"reason\":"
                           "\"NonZeroExitCode\",\"details\":{\"causes\":[{"
                           "\"reason\":\"ExitCode\",\"message\":\"x9\"}]}}";
    assert_int_equal(
        kube_exec_status_decode(bad_code, strlen(bad_code), &code, &err), -EIO);
    assert_int_equal(kube_exec_status_decode("not json", 8, &code, &err),
                     -EPROTO);
    assert_non_null(strstr(err.message, "not a Status"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_channels_fragments_ping_close),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
