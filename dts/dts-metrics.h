/* dts-metrics: the DTS metric model — samples, batches, the model that
 * holds one batch per producer, and the Prometheus text renderer.
 *
 * Producers (providers, the daemon itself) fill a struct dts_batch through
 * a struct dts_sink once per collection cycle: every sample names its
 * family (metric name, type, help) and its labels. The sink applies the
 * counter selection (include-names / exclude-names / name-match) and adds
 * the level labels (global labels everywhere, device labels by device)
 * before the sample is stored, so what is stored is what is exported.
 *
 * The model keeps the newest batch of each producer, keyed by name.
 * dts_model_put() replaces a producer's batch (under the model lock);
 * dts_model_render() renders every batch as one Prometheus text
 * exposition (families sorted by name, HELP/TYPE once per family). The
 * model also keeps the daemon's error counters (`dts_<part>_errors_total`)
 * which survive configuration reloads.
 *
 * Threads: a sink and its batch belong to one thread until handed to
 * dts_model_put(), which takes ownership. dts_model_render(),
 * dts_model_error_inc() and dts_model_foreach() are thread-safe. */
#ifndef DTS_METRICS_H
#define DTS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/error.h"
#include "lib/base/util.h"

/* Prometheus metric types. */
enum dts_mtype {
    DTS_COUNTER = 0, /* monotonic; name must end in _total */
    DTS_GAUGE = 1,   /* may go up and down */
    DTS_UNTYPED = 2, /* re-exported series of unknown type */
};

/* How include-names / exclude-names patterns match. */
enum dts_name_match {
    DTS_MATCH_WILDCARD = 0, /* fnmatch(3) globs (default) */
    DTS_MATCH_EXACT = 1,    /* string equality */
    DTS_MATCH_REGEX = 2,    /* POSIX extended regular expressions */
};

struct dts_filter;
struct dts_labels;
struct dts_strchunk;

/* Compile a filter from comma-separated include and exclude lists (either
 * may be NULL/empty). A sample passes when the include list is empty or
 * one include pattern matches its metric name or its device label, and no
 * exclude pattern matches either. NULL with err set on a bad regex. */
struct dts_filter *dts_filter_create(const char *include, const char *exclude,
                                     enum dts_name_match match,
                                     struct dpf_error *err);
/* True if a sample with this name and device (may be NULL) passes. */
bool dts_filter_pass(const struct dts_filter *f, const char *name,
                     const char *device);
void dts_filter_free(struct dts_filter *f);

/* One stored sample. */
struct dts_sample {
    char *labels; /* rendered label list `a="x",b="y"` ("" = none); lives
                   * in the batch's string arena, never freed alone */
    double value; /* sample value */
};

/* One family inside a batch. */
struct dts_family {
    char *name;                 /* metric name */
    char *help;                 /* HELP text (raw, escaped on render) */
    enum dts_mtype type;        /* TYPE */
    size_t n_samples;           /* number of samples */
    size_t cap_samples;         /* allocated */
    struct dts_sample *samples; /* samples in insertion order */
};

/* A set of families produced in one cycle by one producer. */
struct dts_batch {
    size_t n_families;            /* number of families */
    size_t cap_families;          /* allocated */
    struct dts_family **families; /* insertion order */
    size_t n_buckets;             /* hash index size (power of two) */
    struct dts_family **buckets;  /* open-addressing index by name */
    size_t n_samples;             /* total samples in the batch */
    struct dts_strchunk *strings; /* arena of sample label strings */
};

/* Where producers put samples: a batch plus the filter and labels to
 * apply (both borrowed, may be NULL). */
struct dts_sink {
    struct dts_batch *batch;         /* destination (owned by the caller) */
    const struct dts_filter *filter; /* counter selection or NULL */
    const struct dts_labels *labels; /* level labels or NULL */
    uint64_t filtered;               /* samples dropped by the filter */
    struct dbuf scratch;             /* label rendering buffer (reused) */
};

struct dts_batch *dts_batch_create(void);
void dts_batch_free(struct dts_batch *b);
/* The family named name, or NULL. */
const struct dts_family *dts_batch_find(const struct dts_batch *b,
                                        const char *name);

/* Start filling a fresh batch (sink->batch is new; filter/labels as
 * given). */
void dts_sink_init(struct dts_sink *s, const struct dts_filter *filter,
                   const struct dts_labels *labels);
/* Take the batch out of the sink (the caller owns it). */
struct dts_batch *dts_sink_take(struct dts_sink *s);
/* Free the sink's batch if it was not taken. */
void dts_sink_fini(struct dts_sink *s);
/* Add one sample. labels is a NULL-terminated array of name, value
 * pairs (NULL = none); a "device" label selects level device labels and
 * is matched by the filter. name must be a valid metric name (see
 * dts_metric_name_sanitize) and a counter's name must end in _total. A
 * family keeps the type and help of its first sample. */
void dts_sink_add(struct dts_sink *s, enum dts_mtype type, const char *name,
                  const char *help, const char *const *labels, double value);
/* Same with extra pre-rendered labels (`a="x",b="y"`, escaped) appended
 * after labels; used for re-exported series. */
void dts_sink_add_raw(struct dts_sink *s, enum dts_mtype type, const char *name,
                      const char *help, const char *const *labels,
                      const char *raw_labels, double value);

/* Replace invalid metric-name characters by '_' in place (a leading digit
 * gets no prefix: callers always prepend "dts_..."). */
void dts_metric_name_sanitize(char *name);
/* Replace invalid label-name characters by '_' in place. */
void dts_label_name_sanitize(char *name);
/* Append a label value escaped for the text format (\\, \", \n). */
void dts_escape_label_value(struct dbuf *out, const char *v);
/* Append a sample value in the text format (integers without exponent,
 * NaN, +Inf, -Inf). */
void dts_format_value(struct dbuf *out, double v);

struct dts_model;

struct dts_model *dts_model_create(void);
void dts_model_free(struct dts_model *m);
/* Store the batch of producer `name`, replacing (and freeing) its
 * previous one; NULL removes the producer. Takes ownership of b. */
void dts_model_put(struct dts_model *m, const char *name, struct dts_batch *b);
/* Render every batch plus the error counters as text exposition 0.0.4
 * into out, through the model's view (naming, index and ignore lists; see
 * dts-view.h). Returns the number of samples rendered. */
size_t dts_model_render(struct dts_model *m, struct dbuf *out);

struct dts_view;
/* Replace the model's view (takes ownership; NULL = dts names, no
 * filtering). The old view is freed. Thread-safe. */
void dts_model_set_view(struct dts_model *m, struct dts_view *v);
/* What the set filter of a request names. */
enum dts_set_kind {
    DTS_SET_ANY = 0,  /* /<name>: the .cset and the .fset of that name */
    DTS_SET_CSET = 1, /* /cset/<name> */
    DTS_SET_FSET = 2, /* /fset/<name> */
};
/* Render in format fmt (enum dts_view_format), restricted to the set
 * called set (NULL = everything). Returns the number of samples, or
 * -ENOENT if the view has no such set of that kind. */
long dts_model_render_view(struct dts_model *m, int fmt, const char *set,
                           enum dts_set_kind kind, struct dbuf *out);
/* Call fn for every sample of every batch (under the model lock; fn must
 * not call back into the model). */
void dts_model_foreach(struct dts_model *m,
                       void (*fn)(void *arg, const struct dts_family *f,
                                  const struct dts_sample *s),
                       void *arg);

/* Declare an error series so it is exported (value 0) before the first
 * error: part "prometheus_aggr" gives dts_prometheus_aggr_errors_total.
 * label_name/label_value may be NULL for an unlabelled series. */
void dts_model_error_declare(struct dts_model *m, const char *part,
                             const char *label_name, const char *label_value);
/* Count one rejected input for part (and the optional label). */
void dts_model_error_inc(struct dts_model *m, const char *part,
                         const char *label_name, const char *label_value);
/* Count n rejected inputs at once (deltas of a component's counter). */
void dts_model_error_add(struct dts_model *m, const char *part,
                         const char *label_name, const char *label_value,
                         uint64_t n);
/* Fold a component's cumulative error count into part's unlabelled error
 * series: adds what total gained since *seen, then records total in *seen
 * (the caller keeps *seen, zeroing it when it recreates the component). */
void dts_model_error_sync(struct dts_model *m, const char *part, uint64_t total,
                          uint64_t *seen);
/* Current value of an error series (tests). */
uint64_t dts_model_error_get(struct dts_model *m, const char *part,
                             const char *label_name, const char *label_value);

#endif
