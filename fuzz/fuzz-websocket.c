/* Fuzz target for lib/net/websocket: RFC 6455 frames as a server reads
 * them (masked) and as a client reads them (unmasked), from any bytes.
 * Checks: a frame never reaches past the bytes given, a parsed frame's
 * payload lies inside it and respects the maximum, control frames are
 * final and short, and re-encoding a parsed frame's header gives the
 * same frame length. Also the subprotocol picker and the accept key. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/net/websocket.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
parse_all(const uint8_t *data, size_t size, bool masked, size_t max)
{
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    size_t pos = 0;
    while (pos < size) {
        struct ws_frame f;
        ssize_t n = ws_frame_parse(buf + pos, size - pos, masked, max, &f);
        if (n == 0 || n == -EPROTO || n == -EMSGSIZE) {
            break;
        }
        if (n < 0 || (size_t) n > size - pos) {
            abort();
        }
        if (f.payload < buf + pos || f.payload + f.len != buf + pos + n ||
            f.len > max) {
            abort();
        }
        if ((f.opcode & 0x8) && (!f.fin || f.len > 125)) {
            abort();
        }
        uint8_t hdr[WS_MAX_HEADER];
        uint8_t key[4] = {1, 2, 3, 4};
        size_t hl =
            ws_frame_header(hdr, f.opcode, f.fin, f.len, masked ? key : NULL);
        if (hl + f.len != (size_t) n) {
            abort();
        }
        pos += (size_t) n;
    }
    free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    parse_all(data, size, true, 1u << 20);
    parse_all(data, size, false, 64);

    /* The first line as a Sec-WebSocket-Protocol offer and a key. */
    char text[256];
    size_t tl = size < sizeof text - 1 ? size : sizeof text - 1;
    memcpy(text, data, tl);
    text[tl] = '\0';
    static const char *const ours[] = {"v5.channel.k8s.io", "v4.channel.k8s.io",
                                       NULL};
    const char *p = ws_pick_protocol(text, ours);
    if (p && p != ours[0] && p != ours[1]) {
        abort();
    }
    char *acc = ws_accept_key(text);
    if (acc && strlen(acc) != 28) {
        abort();
    }
    free(acc);
    return 0;
}
