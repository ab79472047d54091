/* Fuzz target for dts/dts-view's token parser: a .cset/.fset file (and
 * the same bytes as a comma list, as prometheus-indexes etc. read it)
 * parses or fails with a message; what parses matches names without
 * tripping the sanitizers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dts/dts-view.h"
#include "lib/base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const names[] = {
    "rx_bytes", "dts_net_rx_bytes_total", "hw_rp_cnp_handled", "id", "",
    "device",   "tx_prio0_bytes",
};

static void
exercise(const struct dts_tokens *t)
{
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        (void) dts_tokens_match(t, names[i]);
    }
    if (dts_tokens_count(t) > DTS_SET_MAX_TOKENS) {
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dpf_error err;
    dpf_error_clear(&err);
    struct dts_tokens *t =
        dts_tokens_parse((const char *) data, size, "fuzz.cset", &err);
    if (t) {
        exercise(t);
        dts_tokens_free(t);
    } else if (!err.message[0]) {
        abort(); /* a refusal always says why */
    }
    char *s = xstrndup((const char *) data, size);
    dpf_error_clear(&err);
    t = dts_tokens_parse_list(s, "prometheus-indexes", &err);
    if (t) {
        exercise(t);
        dts_tokens_free(t);
    }
    free(s);
    char buf[512];
    s = xstrndup((const char *) data, size < 300 ? size : 300);
    (void) dts_view_doca_name(s, buf, sizeof buf);
    free(s);
    return 0;
}
