/* dts-promtext: a strict parser for the Prometheus text exposition format
 * (version 0.0.4), used by the prometheus_aggr provider to read the
 * endpoints it aggregates.
 *
 * Accepted: `# HELP name text` and `# TYPE name counter|gauge|histogram|
 * summary|untyped` lines, other `#` comments, blank lines, and samples
 * `name{l="v",...} value [timestamp]` with the format's escapes (\\, \",
 * \n) in label values, NaN/+Inf/-Inf values and an optional trailing
 * comma in the label list. Anything else (a bad name, an unterminated
 * label value, a value that is not a number, a duplicate label name, a
 * NUL byte, a line over 64 KiB) fails the whole parse with the line
 * number, as Prometheus itself fails such a scrape. Timestamps are
 * accepted and ignored.
 *
 * The callback receives each sample with its family's type and help
 * (matched by name, or by name minus a _total/_count/_sum/_bucket suffix)
 * and its labels re-rendered in canonical escaped form (`a="x",b="y"`).
 * All pointers passed to the callback are valid only during the call. */
#ifndef DTS_PROMTEXT_H
#define DTS_PROMTEXT_H

#include <stddef.h>

#include "dts/dts-metrics.h"
#include "lib/base/error.h"

/* Family types as written in TYPE lines. */
enum dts_promtext_type {
    DTS_PT_UNTYPED = 0,
    DTS_PT_COUNTER,
    DTS_PT_GAUGE,
    DTS_PT_HISTOGRAM,
    DTS_PT_SUMMARY,
};

/* One parsed sample. */
struct dts_promtext_sample {
    const char *name;            /* metric name */
    const char *help;            /* HELP text (unescaped) or NULL */
    enum dts_promtext_type type; /* family type (UNTYPED if no TYPE) */
    const char *labels;          /* canonical rendered labels ("" = none) */
    double value;                /* sample value */
};

typedef void (*dts_promtext_cb)(void *arg, const struct dts_promtext_sample *s);

/* Parse text (len bytes). Returns the number of samples (>= 0) delivered
 * to cb, or -EBADMSG with err set ("line N: what"). Samples are delivered
 * only once the whole input parsed, so a failed parse delivers none.
 * max_samples bounds the work (0 = 1,000,000; more is an error). */
long dts_promtext_parse(const char *text, size_t len, size_t max_samples,
                        dts_promtext_cb cb, void *arg, struct dpf_error *err);

#endif
