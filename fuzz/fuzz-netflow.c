/* Fuzz target: the NetFlow v9 / IPFIX test decoder. The input is a
 * sequence of datagrams, each prefixed with a 2-byte big-endian length,
 * decoded by one decoder so templates carry over. */
#include <stddef.h>
#include <stdint.h>

#include "lib/telemetry/netflow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct nf_decoder *d = nf_decoder_create();
    size_t off = 0;
    while (off + 2 <= size) {
        size_t n = ((size_t) data[off] << 8) | data[off + 1];
        off += 2;
        if (n > size - off) {
            n = size - off;
        }
        nf_decoder_feed(d, data + off, n, NULL, NULL, NULL, NULL);
        off += n;
    }
    nf_decoder_destroy(d);
    return 0;
}
