/* Fuzz target: the Fluent Forward frame decoder (all four modes). The
 * input is treated as a TCP stream: frames are decoded one after another
 * until an error or the end, as the listener does. */
#include <stddef.h>
#include <stdint.h>

#include "lib/telemetry/fluent-forward.h"

static void
sink(void *aux, const char *tag, int64_t t, json_t *rec)
{
    (void) aux;
    (void) tag;
    (void) t;
    /* touch the record the way a consumer would */
    char *s = json_dumps(rec, JSON_COMPACT);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ff_limits lim = {
        .max_frame = 65536, .max_depth = 16, .max_entries = 10000};
    size_t off = 0;
    while (off < size) {
        struct ff_frame_info info;
        long n = ff_decode_frame(data + off, size - off, &lim, sink, NULL,
                                 &info, NULL);
        if (n <= 0) {
            break;
        }
        off += (size_t) n;
    }
    return 0;
}
