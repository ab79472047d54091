/* Fuzz target for lib/kube/kube-exec: what a server sends after the
 * pods/exec upgrade (frames split into channels, pings, close) fed in
 * pieces, then channel 3 decoded as the Status that ends the command.
 * Checks: the bytes consumed never pass the input, the streams respect
 * the output limit, an exit code is 0..255. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/kube/kube-exec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    struct kube_exec_demux d;
    kube_exec_demux_init(&d, 256);
    /* the first byte says how the bytes arrive: in pieces of 1..256 */
    size_t step = size ? (size_t) data[0] + 1 : 1;
    size_t off = 0, end = 0;
    while (end < size && !d.closed) {
        end = end + step < size ? end + step : size;
        ssize_t n = kube_exec_demux_feed(&d, buf + off, end - off, NULL, NULL);
        if (n < 0) {
            if (n != -EPROTO && n != -EMSGSIZE) {
                abort();
            }
            break;
        }
        if ((size_t) n > end - off) {
            abort();
        }
        off += (size_t) n;
    }
    if (d.out.len > 256 || d.err.len > 256 || d.status.len > 65536) {
        abort();
    }
    int code = -1;
    struct dpf_error err = {0};
    if (kube_exec_status_decode(d.status.data ? d.status.data : "",
                                d.status.len, &code, &err) == 0 &&
        (code < 0 || code > 255)) {
        abort();
    }
    /* the input itself as a Status */
    code = -1;
    if (kube_exec_status_decode((const char *) data, size, &code, &err) == 0 &&
        (code < 0 || code > 255)) {
        abort();
    }
    kube_exec_demux_free(&d);
    free(buf);
    return 0;
}
