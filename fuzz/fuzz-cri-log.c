/* Fuzz target for lib/codecs/cri-log and the kubelet API's log rendering
 * (dpulet_log_render, dpulet_log_tail_offset): any bytes as a CRI log
 * file. Checks: a parsed record's fields lie inside the line, the
 * rendering consumes whole lines only and never produces more than the
 * input plus a timestamp and a newline per line, and the tail offset is a
 * line start within the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dpulet/dpulet-api.h"
#include "lib/base/util.h"
#include "lib/codecs/cri-log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *) data;
    size_t lines = 0;
    for (size_t pos = 0; pos < size;) {
        const char *nl = memchr(in + pos, '\n', size - pos);
        size_t len = nl ? (size_t) (nl - (in + pos)) : size - pos;
        struct cri_log_line l;
        if (cri_log_parse(in + pos, len, &l) == 0) {
            if (l.ts != in + pos || l.ts_len > len || l.msg < in + pos ||
                l.msg + l.msg_len != in + pos + len) {
                abort();
            }
            char buf[64];
            size_t n = cri_time_format(l.ts_ns, buf, sizeof buf);
            int64_t back;
            if (n == 0 || cri_time_parse(buf, n, &back) != 0 ||
                back != l.ts_ns) {
                abort();
            }
        }
        lines++;
        pos += len + 1;
    }
    struct dpulet_log_opts o = {
        .timestamps = size & 1, .tail_lines = -1, .limit_bytes = -1};
    struct dbuf out;
    dbuf_init(&out);
    size_t used = dpulet_log_render(in, size, &o, &out);
    if (used > size || (used && in[used - 1] != '\n')) {
        abort();
    }
    if (out.len > used + lines * 2) {
        abort(); /* each line: its text, a space after the time, "\n" */
    }
    dbuf_free(&out);
    for (int64_t n = 0; n < 4; n++) {
        size_t off = dpulet_log_tail_offset(in, size, n);
        if (off > size || (off > 0 && in[off - 1] != '\n')) {
            abort();
        }
    }
    return 0;
}
