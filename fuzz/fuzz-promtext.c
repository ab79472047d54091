/* Fuzz target for dts/dts-promtext: any input parses or fails cleanly;
 * what parses re-renders into a sink without tripping the sanitizers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dts/dts-metrics.h"
#include "dts/dts-promtext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
on_sample(void *arg, const struct dts_promtext_sample *s)
{
    struct dts_sink *sink = arg;
    if (!s->name[0]) {
        abort();
    }
    dts_sink_add_raw(sink, DTS_UNTYPED, s->name, s->help, NULL, s->labels,
                     s->value);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dts_sink sink;
    dts_sink_init(&sink, NULL, NULL);
    struct dpf_error err;
    dpf_error_clear(&err);
    long n = dts_promtext_parse((const char *) data, size, 10000, on_sample,
                                &sink, &err);
    if (n < 0 && strncmp(err.message, "line ", 5) != 0) {
        abort();
    }
    if (n >= 0 && (size_t) n != sink.batch->n_samples) {
        abort();
    }
    struct dts_model *m = dts_model_create();
    dts_model_put(m, "fuzz", dts_sink_take(&sink));
    struct dbuf out;
    dbuf_init(&out);
    dts_model_render(m, &out);
    dbuf_free(&out);
    dts_model_free(m);
    dts_sink_fini(&sink);
    return 0;
}
