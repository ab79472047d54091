/* Fuzz target: the dts IPC session decoder (exporter library -> dts).
 * The input is fed in two pieces split at a position taken from the first
 * byte, to exercise partial-frame buffering. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/telemetry/dts-ipc.h"

static void
on_event(void *aux, const struct dts_ipc_evtype *t, unsigned idx,
         const uint8_t *data)
{
    (void) aux;
    (void) idx;
    json_t *j = dts_ipc_event_to_json(t, data);
    char *s = json_dumps(j, JSON_COMPACT);
    free(s);
    json_decref(j);
}

/* Touch every byte of a sample's labels (protocol 2) so that the
 * sanitizers see any read past what the decoder validated. */
static void
on_counter(void *aux, int64_t t, const struct dts_ipc_counter *c)
{
    size_t n = strlen(c->name);
    (void) aux;
    (void) t;
    for (unsigned i = 0; i < c->n_labels; i++) {
        n += strlen(c->labels[i].name) + strlen(c->labels[i].value);
    }
    if (n == (size_t) -1) {
        abort();
    }
}

static const struct dts_ipc_handlers handlers = {.on_event = on_event,
                                                 .on_counter = on_counter};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t split = data[0] % (size);
    data++;
    size--;
    if (split > size) {
        split = size;
    }
    struct dts_ipc_session *s = dts_ipc_session_create(&handlers, NULL, 65536);
    if (dts_ipc_session_feed(s, data, split, NULL) == 0) {
        dts_ipc_session_feed(s, data + split, size - split, NULL);
    }
    dts_ipc_session_free(s);
    return 0;
}
