/* Fuzz target for lib/net/spdy: SPDY/3.1 frames as dpulet reads a
 * client's, from any bytes, with every header block (SYN_STREAM,
 * SYN_REPLY, HEADERS) inflated by one decompressor across frames as in a
 * session. Checks: a frame never reaches past the bytes given or the
 * maximum, its payload lies inside it, decoded headers respect the pair
 * and size limits and have non-empty names. The input as a whole is also
 * decoded as a single header block, so the decoder is reached without
 * valid framing around it. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/net/spdy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FRAME 65536
#define MAX_OUT 16384
#define MAX_PAIRS 64

static void
check_headers(const struct spdy_headers *h)
{
    if (h->n > MAX_PAIRS) {
        abort();
    }
    size_t total = 0;
    for (size_t i = 0; i < h->n; i++) {
        if (!h->names[i] || !h->names[i][0] || !h->values[i]) {
            abort();
        }
        total += strlen(h->names[i]) + h->value_lens[i];
    }
    if (total > MAX_OUT) {
        abort();
    }
    (void) spdy_headers_get(h, "streamtype");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct spdy_zin *z = spdy_zin_new();
    size_t pos = 0;
    bool zok = true;
    while (pos < size) {
        struct spdy_frame f;
        ssize_t n = spdy_frame_parse(data + pos, size - pos, MAX_FRAME, &f);
        if (n == 0 || n == -EPROTO || n == -EMSGSIZE) {
            break;
        }
        if (n < SPDY_FRAME_HEADER || (size_t) n > size - pos ||
            (size_t) n > SPDY_FRAME_HEADER + MAX_FRAME) {
            abort();
        }
        if (f.len && (f.payload < data + pos + SPDY_FRAME_HEADER ||
                      f.payload + f.len > data + pos + n)) {
            abort();
        }
        if (zok && (f.type == SPDY_SYN_STREAM || f.type == SPDY_SYN_REPLY ||
                    f.type == SPDY_HEADERS)) {
            struct spdy_headers h;
            int r = spdy_headers_decode(z, f.payload, f.len, MAX_OUT, MAX_PAIRS,
                                        &h);
            if (r == 0) {
                check_headers(&h);
            } else if (r != -EPROTO && r != -EMSGSIZE) {
                abort();
            } else {
                zok = false; /* a session would end here */
            }
            spdy_headers_free(&h);
        }
        uint32_t v;
        (void) spdy_settings_get(&f, SPDY_SETTINGS_INITIAL_WINDOW_SIZE, &v);
        pos += (size_t) n;
    }
    spdy_zin_free(z);

    z = spdy_zin_new();
    struct spdy_headers h;
    int r = spdy_headers_decode(z, data, size, MAX_OUT, MAX_PAIRS, &h);
    if (r == 0) {
        check_headers(&h);
    } else if (r != -EPROTO && r != -EMSGSIZE) {
        abort();
    }
    spdy_headers_free(&h);
    spdy_zin_free(z);
    return 0;
}
