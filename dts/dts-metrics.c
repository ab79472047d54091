/* dts-metrics: see dts-metrics.h. A batch indexes its families with a
 * small open-addressing hash table; rendering gathers the families of all
 * batches, sorts them by name and prints each name's HELP/TYPE once. */
#include "dts/dts-metrics.h"

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dts/dts-labels.h"
#include "dts/dts-view.h"

/* ---- filter ---------------------------------------------------------- */

struct dts_pattern {
    char *text;
    regex_t re;
    bool compiled;
    bool literal; /* in the filter's literal set instead */
};

/* Literal names (exact mode, or wildcard patterns without a glob
 * character) in an open-addressing set: a sample costs one lookup however
 * many names the operator listed (30,000 include-names used to be 30,000
 * comparisons per sample). */
struct dts_litset {
    size_t n, mask; /* entries, buckets - 1 */
    char **slot;    /* borrowed from the pattern texts; NULL = empty */
};

struct dts_filter {
    enum dts_name_match match;
    size_t n_inc, n_exc;           /* patterns matched one by one */
    struct dts_pattern *inc, *exc; /* (globs, regular expressions) */
    struct dts_litset inc_lit, exc_lit;
};

static uint64_t dts_hash(const char *s);

static char **
dts_litset_slot(const struct dts_litset *ls, const char *s)
{
    size_t i = (size_t) dts_hash(s) & ls->mask;
    while (ls->slot[i] && strcmp(ls->slot[i], s) != 0) {
        i = (i + 1) & ls->mask;
    }
    return &ls->slot[i];
}

static void
dts_litset_add(struct dts_litset *ls, char *s)
{
    if ((ls->n + 1) * 2 > ls->mask + 1 || !ls->slot) {
        size_t nb = ls->slot ? 2 * (ls->mask + 1) : 64;
        char **old = ls->slot;
        size_t old_nb = ls->slot ? ls->mask + 1 : 0;
        ls->slot = xcalloc(nb, sizeof *ls->slot);
        ls->mask = nb - 1;
        for (size_t i = 0; i < old_nb; i++) {
            if (old[i]) {
                *dts_litset_slot(ls, old[i]) = old[i];
            }
        }
        free(old);
    }
    char **slot = dts_litset_slot(ls, s);
    if (!*slot) {
        *slot = s;
        ls->n++;
    }
}

static bool
dts_litset_has(const struct dts_litset *ls, const char *s)
{
    return s && ls->n && *dts_litset_slot(ls, s);
}

/* A pattern that can only match itself. */
static bool
dts_pattern_literal(enum dts_name_match match, const char *text)
{
    return match == DTS_MATCH_EXACT ||
           (match == DTS_MATCH_WILDCARD && !strpbrk(text, "*?[\\"));
}

static int
dts_filter_split(const char *list, enum dts_name_match match,
                 struct dts_pattern **out, size_t *n, struct dts_litset *lit,
                 struct dpf_error *err, const char *field)
{
    *out = NULL;
    *n = 0;
    size_t cap = 0;
    if (!list) {
        return 0;
    }
    const char *p = list;
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *e = comma ? comma : p + strlen(p);
        while (p < e && (*p == ' ' || *p == '\t')) {
            p++;
        }
        const char *te = e;
        while (te > p && (te[-1] == ' ' || te[-1] == '\t')) {
            te--;
        }
        if (te > p) {
            if (*n == cap) {
                cap = cap ? 2 * cap : 16;
                *out = xrealloc(*out, cap * sizeof **out);
            }
            struct dts_pattern *pat = &(*out)[*n];
            memset(pat, 0, sizeof *pat);
            pat->text = xstrndup(p, (size_t) (te - p));
            (*n)++;
            if (dts_pattern_literal(match, pat->text)) {
                /* the text stays in the array (freed with it) and is
                 * looked up in the set; mark it so the scan skips it */
                dts_litset_add(lit, pat->text);
                pat->literal = true;
            }
            if (match == DTS_MATCH_REGEX) {
                int rc = regcomp(&pat->re, pat->text, REG_EXTENDED | REG_NOSUB);
                if (rc != 0) {
                    char msg[128];
                    regerror(rc, &pat->re, msg, sizeof msg);
                    dpf_error_set(err, 400, "Invalid",
                                  "%s: bad regular expression \"%s\": %s",
                                  field, pat->text, msg);
                    dpf_error_add_cause(err, DPF_CAUSE_INVALID, field,
                                        "bad regular expression: %s", msg);
                    return -1;
                }
                pat->compiled = true;
            }
        }
        p = comma ? comma + 1 : e;
    }
    return 0;
}

static void
dts_patterns_free(struct dts_pattern *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(p[i].text);
        if (p[i].compiled) {
            regfree(&p[i].re);
        }
    }
    free(p);
}

void
dts_filter_free(struct dts_filter *f)
{
    if (!f) {
        return;
    }
    dts_patterns_free(f->inc, f->n_inc);
    dts_patterns_free(f->exc, f->n_exc);
    free(f->inc_lit.slot);
    free(f->exc_lit.slot);
    free(f);
}

struct dts_filter *
dts_filter_create(const char *include, const char *exclude,
                  enum dts_name_match match, struct dpf_error *err)
{
    struct dts_filter *f = xcalloc(1, sizeof *f);
    f->match = match;
    if (dts_filter_split(include, match, &f->inc, &f->n_inc, &f->inc_lit, err,
                         "include-names") < 0 ||
        dts_filter_split(exclude, match, &f->exc, &f->n_exc, &f->exc_lit, err,
                         "exclude-names") < 0) {
        dts_filter_free(f);
        return NULL;
    }
    return f;
}

static bool
dts_pattern_match(const struct dts_filter *f, const struct dts_pattern *p,
                  const char *s)
{
    if (!s) {
        return false;
    }
    switch (f->match) {
    case DTS_MATCH_EXACT:
        return strcmp(p->text, s) == 0;
    case DTS_MATCH_REGEX:
        return regexec(&p->re, s, 0, NULL, 0) == 0;
    case DTS_MATCH_WILDCARD:
    default:
        return fnmatch(p->text, s, 0) == 0;
    }
}

static bool
dts_patterns_any(const struct dts_filter *f, const struct dts_pattern *p,
                 size_t n, const struct dts_litset *lit, const char *name,
                 const char *device)
{
    if (dts_litset_has(lit, name) || dts_litset_has(lit, device)) {
        return true;
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i].literal) {
            continue;
        }
        if (dts_pattern_match(f, &p[i], name) ||
            dts_pattern_match(f, &p[i], device)) {
            return true;
        }
    }
    return false;
}

bool
dts_filter_pass(const struct dts_filter *f, const char *name,
                const char *device)
{
    if (!f || (!f->n_inc && !f->n_exc)) {
        return true;
    }
    /* DOCA's configurations list the counters' own names
     * (include-names=rx_bytes): a pattern may match that name too */
    char buf[256];
    const char *doca = dts_view_doca_name(name, buf, sizeof buf);
    if (f->n_inc &&
        !dts_patterns_any(f, f->inc, f->n_inc, &f->inc_lit, name, device) &&
        !(doca &&
          dts_patterns_any(f, f->inc, f->n_inc, &f->inc_lit, doca, NULL))) {
        return false;
    }
    return !dts_patterns_any(f, f->exc, f->n_exc, &f->exc_lit, name, device) &&
           !(doca &&
             dts_patterns_any(f, f->exc, f->n_exc, &f->exc_lit, doca, NULL));
}

/* ---- names and values ------------------------------------------------ */

void
dts_metric_name_sanitize(char *name)
{
    for (char *c = name; *c; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  *c == '_' || *c == ':' ||
                  (c != name && *c >= '0' && *c <= '9');
        if (!ok) {
            *c = '_';
        }
    }
}

void
dts_label_name_sanitize(char *name)
{
    for (char *c = name; *c; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  *c == '_' || (c != name && *c >= '0' && *c <= '9');
        if (!ok) {
            *c = '_';
        }
    }
}

void
dts_escape_label_value(struct dbuf *out, const char *v)
{
    const char *run = v;
    for (const char *c = v; *c; c++) {
        const char *rep = NULL;
        if (*c == '\\') {
            rep = "\\\\";
        } else if (*c == '"') {
            rep = "\\\"";
        } else if (*c == '\n') {
            rep = "\\n";
        }
        if (rep) {
            dbuf_append(out, run, (size_t) (c - run));
            dbuf_puts(out, rep);
            run = c + 1;
        }
    }
    dbuf_puts(out, run);
}

static void
dts_escape_help(struct dbuf *out, const char *v)
{
    for (const char *c = v; *c; c++) {
        if (*c == '\\') {
            dbuf_puts(out, "\\\\");
        } else if (*c == '\n') {
            dbuf_puts(out, "\\n");
        } else {
            dbuf_append(out, c, 1);
        }
    }
}

void
dts_format_value(struct dbuf *out, double v)
{
    if (isnan(v)) {
        dbuf_puts(out, "NaN");
    } else if (isinf(v)) {
        dbuf_puts(out, v > 0 ? "+Inf" : "-Inf");
    } else if (v == floor(v) && fabs(v) < 1e15) {
        /* What "%.0f" prints, without printf (the hot path of a scrape:
         * almost every sample is an integer counter). */
        char buf[24], *p = buf + sizeof buf;
        uint64_t u = (uint64_t) fabs(v);
        do {
            *--p = (char) ('0' + u % 10);
            u /= 10;
        } while (u);
        if (signbit(v)) {
            *--p = '-';
        }
        dbuf_append(out, p, (size_t) (buf + sizeof buf - p));
    } else {
        /* Shortest of %.15g/%.17g that reads back exactly. */
        char buf[40];
        snprintf(buf, sizeof buf, "%.15g", v);
        if (strtod(buf, NULL) != v) {
            snprintf(buf, sizeof buf, "%.17g", v);
        }
        dbuf_puts(out, buf);
    }
}

/* ---- batches --------------------------------------------------------- */

static uint64_t
dts_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h ^= (unsigned char) *s;
        h *= 1099511628211ull;
    }
    /* FNV's low bits mix poorly for names that differ only at the end
     * (dts_app_ctr_1, _2, ...), and the index uses the low bits: finish
     * with a 64-bit mixer so linear probing does not form long runs. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

/* A block of the batch's string arena: sample label strings are packed
 * here instead of one malloc each (a 200-interface sysfs cycle has ~5,000
 * samples; the old batch is freed every cycle). */
struct dts_strchunk {
    struct dts_strchunk *next; /* older chunk */
    size_t used, cap;          /* bytes used / available in data */
    char data[];               /* the strings, NUL-terminated */
};

#define DTS_STRCHUNK_SIZE 16384

/* Copy len bytes of s plus a NUL into b's arena. */
static char *
dts_batch_strdup(struct dts_batch *b, const char *s, size_t len)
{
    struct dts_strchunk *c = b->strings;
    if (!c || c->cap - c->used < len + 1) {
        size_t cap = DPF_MAX((size_t) DTS_STRCHUNK_SIZE, len + 1);
        c = xmalloc(sizeof *c + cap);
        c->used = 0;
        c->cap = cap;
        c->next = b->strings;
        b->strings = c;
    }
    char *p = c->data + c->used;
    memcpy(p, s, len);
    p[len] = '\0';
    c->used += len + 1;
    return p;
}

struct dts_batch *
dts_batch_create(void)
{
    struct dts_batch *b = xcalloc(1, sizeof *b);
    b->n_buckets = 64;
    b->buckets = xcalloc(b->n_buckets, sizeof *b->buckets);
    return b;
}

void
dts_batch_free(struct dts_batch *b)
{
    if (!b) {
        return;
    }
    for (size_t i = 0; i < b->n_families; i++) {
        struct dts_family *f = b->families[i];
        free(f->samples);
        free(f->name);
        free(f->help);
        free(f);
    }
    free(b->families);
    free(b->buckets);
    while (b->strings) {
        struct dts_strchunk *next = b->strings->next;
        free(b->strings);
        b->strings = next;
    }
    free(b);
}

static struct dts_family **
dts_batch_slot(const struct dts_batch *b, const char *name)
{
    size_t mask = b->n_buckets - 1;
    size_t i = (size_t) dts_hash(name) & mask;
    while (b->buckets[i] && strcmp(b->buckets[i]->name, name) != 0) {
        i = (i + 1) & mask;
    }
    return &b->buckets[i];
}

const struct dts_family *
dts_batch_find(const struct dts_batch *b, const char *name)
{
    return *dts_batch_slot(b, name);
}

static struct dts_family *
dts_batch_family(struct dts_batch *b, enum dts_mtype type, const char *name,
                 const char *help)
{
    struct dts_family **slot = dts_batch_slot(b, name);
    struct dts_family *found = *slot;
    if (found) {
        return found;
    }
    if ((b->n_families + 1) * 2 > b->n_buckets) {
        size_t nb = b->n_buckets * 2;
        free(b->buckets);
        b->buckets = xcalloc(nb, sizeof *b->buckets);
        b->n_buckets = nb;
        for (size_t i = 0; i < b->n_families; i++) {
            *dts_batch_slot(b, b->families[i]->name) = b->families[i];
        }
        slot = dts_batch_slot(b, name);
    }
    struct dts_family *f = xcalloc(1, sizeof *f);
    f->name = xstrdup(name);
    f->help = xstrdup(help ? help : name);
    f->type = type;
    if (b->n_families == b->cap_families) {
        b->cap_families = b->cap_families ? b->cap_families * 2 : 16;
        b->families =
            xrealloc(b->families, b->cap_families * sizeof *b->families);
    }
    b->families[b->n_families++] = f;
    *slot = f;
    return f;
}

void
dts_sink_init(struct dts_sink *s, const struct dts_filter *filter,
              const struct dts_labels *labels)
{
    memset(s, 0, sizeof *s);
    s->batch = dts_batch_create();
    s->filter = filter;
    s->labels = labels;
}

struct dts_batch *
dts_sink_take(struct dts_sink *s)
{
    struct dts_batch *b = s->batch;
    s->batch = NULL;
    return b;
}

void
dts_sink_fini(struct dts_sink *s)
{
    dts_batch_free(s->batch);
    s->batch = NULL;
    dbuf_free(&s->scratch);
}

void
dts_sink_add_raw(struct dts_sink *s, enum dts_mtype type, const char *name,
                 const char *help, const char *const *labels,
                 const char *raw_labels, double value)
{
    const char *device = NULL;
    for (size_t i = 0; labels && labels[i]; i += 2) {
        if (strcmp(labels[i], "device") == 0) {
            device = labels[i + 1];
        }
    }
    if (!dts_filter_pass(s->filter, name, device)) {
        s->filtered++;
        return;
    }
    struct dts_family *f = dts_batch_family(s->batch, type, name, help);
    struct dbuf *lb = &s->scratch;
    lb->len = 0;
    bool first = true;
    for (size_t i = 0; labels && labels[i]; i += 2) {
        if (!first) {
            dbuf_append(lb, ",", 1);
        }
        dbuf_puts(lb, labels[i]);
        dbuf_append(lb, "=\"", 2);
        dts_escape_label_value(lb, labels[i + 1] ? labels[i + 1] : "");
        dbuf_append(lb, "\"", 1);
        first = false;
    }
    if (raw_labels && *raw_labels) {
        if (!first) {
            dbuf_append(lb, ",", 1);
        }
        dbuf_puts(lb, raw_labels);
        first = false;
    }
    if (s->labels) {
        /* dts_labels caches device lookups; the sink owns the only
         * reference during a collection cycle. */
        dts_labels_render((struct dts_labels *) s->labels, device, labels, lb,
                          &first);
    }
    if (f->n_samples == f->cap_samples) {
        f->cap_samples = f->cap_samples ? f->cap_samples * 2 : 8;
        f->samples = xrealloc(f->samples, f->cap_samples * sizeof *f->samples);
    }
    struct dts_sample *smp = &f->samples[f->n_samples++];
    smp->labels = dts_batch_strdup(s->batch, lb->len ? lb->data : "", lb->len);
    smp->value = value;
    s->batch->n_samples++;
}

void
dts_sink_add(struct dts_sink *s, enum dts_mtype type, const char *name,
             const char *help, const char *const *labels, double value)
{
    dts_sink_add_raw(s, type, name, help, labels, NULL, value);
}

/* ---- model ----------------------------------------------------------- */

struct dts_producer {
    char *name;
    struct dts_batch *batch;
};

struct dts_error_series {
    char *part;
    char *label_name;  /* may be NULL */
    char *label_value; /* may be NULL */
    uint64_t value;
};

struct dts_model {
    pthread_mutex_t lock;
    size_t n_producers;
    struct dts_producer *producers;
    size_t n_errors;
    struct dts_error_series *errors;
    struct dts_view *view; /* what the endpoint shows (NULL = all) */
};

struct dts_model *
dts_model_create(void)
{
    struct dts_model *m = xcalloc(1, sizeof *m);
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

void
dts_model_free(struct dts_model *m)
{
    if (!m) {
        return;
    }
    for (size_t i = 0; i < m->n_producers; i++) {
        free(m->producers[i].name);
        dts_batch_free(m->producers[i].batch);
    }
    free(m->producers);
    for (size_t i = 0; i < m->n_errors; i++) {
        free(m->errors[i].part);
        free(m->errors[i].label_name);
        free(m->errors[i].label_value);
    }
    free(m->errors);
    dts_view_free(m->view);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

void
dts_model_put(struct dts_model *m, const char *name, struct dts_batch *b)
{
    struct dts_batch *old = NULL;
    pthread_mutex_lock(&m->lock);
    size_t i;
    for (i = 0; i < m->n_producers; i++) {
        if (strcmp(m->producers[i].name, name) == 0) {
            break;
        }
    }
    if (i < m->n_producers) {
        old = m->producers[i].batch;
        if (b) {
            m->producers[i].batch = b;
        } else {
            free(m->producers[i].name);
            m->producers[i] = m->producers[--m->n_producers];
        }
    } else if (b) {
        m->producers =
            xrealloc(m->producers, (m->n_producers + 1) * sizeof *m->producers);
        m->producers[m->n_producers].name = xstrdup(name);
        m->producers[m->n_producers].batch = b;
        m->n_producers++;
    }
    pthread_mutex_unlock(&m->lock);
    dts_batch_free(old); /* outside the lock: renders are not held up */
}

static bool
dts_str_eq(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Find or add an error series; caller holds the lock. */
static struct dts_error_series *
dts_model_error_find(struct dts_model *m, const char *part,
                     const char *label_name, const char *label_value)
{
    for (size_t i = 0; i < m->n_errors; i++) {
        struct dts_error_series *e = &m->errors[i];
        if (strcmp(e->part, part) == 0 &&
            dts_str_eq(e->label_name, label_name) &&
            dts_str_eq(e->label_value, label_value)) {
            return e;
        }
    }
    m->errors = xrealloc(m->errors, (m->n_errors + 1) * sizeof *m->errors);
    struct dts_error_series *e = &m->errors[m->n_errors++];
    e->part = xstrdup(part);
    e->label_name = xstrdup(label_name);
    e->label_value =
        label_name ? xstrdup(label_value ? label_value : "") : NULL;
    e->value = 0;
    return e;
}

void
dts_model_error_declare(struct dts_model *m, const char *part,
                        const char *label_name, const char *label_value)
{
    pthread_mutex_lock(&m->lock);
    dts_model_error_find(m, part, label_name, label_value);
    pthread_mutex_unlock(&m->lock);
}

void
dts_model_error_inc(struct dts_model *m, const char *part,
                    const char *label_name, const char *label_value)
{
    pthread_mutex_lock(&m->lock);
    dts_model_error_find(m, part, label_name, label_value)->value++;
    pthread_mutex_unlock(&m->lock);
}

void
dts_model_error_add(struct dts_model *m, const char *part,
                    const char *label_name, const char *label_value, uint64_t n)
{
    pthread_mutex_lock(&m->lock);
    dts_model_error_find(m, part, label_name, label_value)->value += n;
    pthread_mutex_unlock(&m->lock);
}

void
dts_model_error_sync(struct dts_model *m, const char *part, uint64_t total,
                     uint64_t *seen)
{
    if (total > *seen) {
        dts_model_error_add(m, part, NULL, NULL, total - *seen);
        *seen = total;
    }
}

uint64_t
dts_model_error_get(struct dts_model *m, const char *part,
                    const char *label_name, const char *label_value)
{
    pthread_mutex_lock(&m->lock);
    uint64_t v = dts_model_error_find(m, part, label_name, label_value)->value;
    pthread_mutex_unlock(&m->lock);
    return v;
}

static const char *const dts_type_names[] = {"counter", "gauge", "untyped"};

static int
dts_error_cmp(const void *a, const void *b)
{
    const struct dts_error_series *ea = a, *eb = b;
    int c = strcmp(ea->part, eb->part);
    if (c) {
        return c;
    }
    return strcmp(ea->label_value ? ea->label_value : "",
                  eb->label_value ? eb->label_value : "");
}

/* Error families rendered as one more pseudo-batch. Caller holds lock. */
static struct dts_batch *
dts_model_error_batch(struct dts_model *m)
{
    struct dts_batch *b = dts_batch_create();
    if (m->n_errors > 1) {
        qsort(m->errors, m->n_errors, sizeof *m->errors, dts_error_cmp);
    }
    struct dts_sink s = {.batch = b};
    for (size_t i = 0; i < m->n_errors; i++) {
        const struct dts_error_series *e = &m->errors[i];
        char *name = xasprintf("dts_%s_errors_total", e->part);
        dts_metric_name_sanitize(name);
        char *help = xasprintf("Inputs rejected by %s.", e->part);
        const char *labels[] = {e->label_name, e->label_value, NULL};
        dts_sink_add(&s, DTS_COUNTER, name, help, e->label_name ? labels : NULL,
                     (double) e->value);
        free(name);
        free(help);
    }
    dbuf_free(&s.scratch);
    return b;
}

/* One family as the view shows it. */
struct dts_rentry {
    const char *name;           /* exported name */
    const struct dts_family *f; /* the samples */
    const char *provider;       /* provider label value or NULL */
    double scale;               /* unit change of the DOCA name */
};

static int
dts_rentry_cmp(const void *a, const void *b)
{
    const struct dts_rentry *ea = a, *eb = b;
    int c = strcmp(ea->name, eb->name);
    if (c) {
        return c;
    }
    /* same name from several providers: a stable order between scrapes */
    return strcmp(ea->provider ? ea->provider : "",
                  eb->provider ? eb->provider : "");
}

/* Next label of a rendered list (`a="x",b="y"`) at *p: its name and its
 * raw (escaped) value. false at the end. */
static bool
dts_label_next(const char **p, const char **n, size_t *nl, const char **v,
               size_t *vl)
{
    const char *s = *p;
    if (*s == ',') {
        s++;
    }
    const char *eq = strchr(s, '=');
    if (!*s || !eq || eq[1] != '"') {
        return false;
    }
    *n = s;
    *nl = (size_t) (eq - s);
    const char *q = eq + 2;
    *v = q;
    while (*q && *q != '"') {
        if (*q == '\\' && q[1]) {
            q++;
        }
        q++;
    }
    *vl = (size_t) (q - *v);
    *p = *q == '"' ? q + 1 : q;
    return true;
}

/* Exact-duplicate series suppression when labels are projected away
 * (two series that differed only in a dropped label): the first wins,
 * so the page stays a valid exposition. */
struct dts_seen {
    size_t n, cap;
    char **slots;
};

static bool
dts_seen_add(struct dts_seen *s, const char *name, const char *labels)
{
    if (2 * (s->n + 1) > s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 1024;
        char **slots = xcalloc(cap, sizeof *slots);
        for (size_t i = 0; i < s->cap; i++) {
            if (s->slots[i]) {
                size_t j = dts_hash(s->slots[i]) & (cap - 1);
                while (slots[j]) {
                    j = (j + 1) & (cap - 1);
                }
                slots[j] = s->slots[i];
            }
        }
        free(s->slots);
        s->slots = slots;
        s->cap = cap;
    }
    char *key = xasprintf("%s{%s", name, labels);
    size_t j = dts_hash(key) & (s->cap - 1);
    while (s->slots[j]) {
        if (!strcmp(s->slots[j], key)) {
            free(key);
            return false;
        }
        j = (j + 1) & (s->cap - 1);
    }
    s->slots[j] = key;
    s->n++;
    return true;
}

static void
dts_seen_free(struct dts_seen *s)
{
    for (size_t i = 0; i < s->cap; i++) {
        free(s->slots[i]);
    }
    free(s->slots);
}

/* A Prometheus-escaped label value as JSON string content. */
static void
dts_json_label_value(struct dbuf *out, const char *v, size_t vl)
{
    for (size_t i = 0; i < vl; i++) {
        unsigned char c = (unsigned char) v[i];
        if (c == '\\' && i + 1 < vl) {
            c = (unsigned char) v[++i];
            c = c == 'n' ? '\n' : c;
        }
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char) c};
            dbuf_append(out, esc, 2);
        } else if (c < 0x20) {
            dbuf_printf(out, "\\u%04x", c);
        } else {
            dbuf_append(out, (const char *) &c, 1);
        }
    }
}

static void
dts_json_value(struct dbuf *out, double v)
{
    if (isfinite(v)) {
        dts_format_value(out, v);
    } else {
        dbuf_append(out, "\"", 1);
        dts_format_value(out, v);
        dbuf_append(out, "\"", 1);
    }
}

/* One sample in the requested format; labels already projected. */
static void
dts_render_sample(struct dbuf *out, int fmt, const char *name, size_t name_len,
                  enum dts_mtype type, const char *labels, size_t labels_len,
                  double value, bool *first)
{
    if (fmt == DTS_FMT_JSON) {
        dbuf_puts(out, *first ? "\n{\"name\":\"" : ",\n{\"name\":\"");
        dbuf_append(out, name, name_len);
        dbuf_printf(out, "\",\"type\":\"%s\",\"labels\":{",
                    dts_type_names[type]);
        const char *p = labels, *n, *v;
        size_t nl, vl;
        bool f1 = true;
        while (dts_label_next(&p, &n, &nl, &v, &vl)) {
            dbuf_puts(out, f1 ? "\"" : ",\"");
            dbuf_append(out, n, nl);
            dbuf_append(out, "\":\"", 3);
            dts_json_label_value(out, v, vl);
            dbuf_append(out, "\"", 1);
            f1 = false;
        }
        dbuf_puts(out, "},\"value\":");
        dts_json_value(out, value);
        dbuf_append(out, "}", 1);
    } else if (fmt == DTS_FMT_CSV) {
        dbuf_append(out, name, name_len);
        dbuf_append(out, ",", 1);
        dts_format_value(out, value);
        dbuf_append(out, ",\"", 2);
        for (size_t i = 0; i < labels_len; i++) {
            if (labels[i] == '"') {
                dbuf_append(out, "\"\"", 2);
            } else {
                dbuf_append(out, &labels[i], 1);
            }
        }
        dbuf_append(out, "\"\n", 2);
    } else {
        dbuf_append(out, name, name_len);
        if (labels_len) {
            dbuf_append(out, "{", 1);
            dbuf_append(out, labels, labels_len);
            dbuf_append(out, "}", 1);
        }
        dbuf_append(out, " ", 1);
        dts_format_value(out, value);
        dbuf_append(out, "\n", 1);
    }
    *first = false;
}

void
dts_model_set_view(struct dts_model *m, struct dts_view *v)
{
    pthread_mutex_lock(&m->lock);
    struct dts_view *old = m->view;
    m->view = v;
    pthread_mutex_unlock(&m->lock);
    dts_view_free(old);
}

long
dts_model_render_view(struct dts_model *m, int fmt, const char *set,
                      enum dts_set_kind kind, struct dbuf *out)
{
    pthread_mutex_lock(&m->lock);
    const struct dts_view *view = m->view;
    const struct dts_tokens *cset = NULL, *fset = NULL;
    if (set) {
        const struct dts_view_set *vs = dts_view_find(view, set);
        cset = vs && kind != DTS_SET_FSET ? vs->cset : NULL;
        fset = vs && kind != DTS_SET_CSET ? vs->fset : NULL;
        if (!cset && !fset) {
            pthread_mutex_unlock(&m->lock);
            return -ENOENT;
        }
    }
    bool doca = view && view->naming == DTS_NAMING_DOCA;
    const struct dts_tokens *ignore = view ? view->ignore_names : NULL;
    const struct dts_tokens *tags = view ? view->ignore_tags : NULL;
    /* labels kept: an fset view keeps its fields and the fset indexes;
     * otherwise prometheus-indexes (when set) limits every series */
    const struct dts_tokens *keep_a = NULL, *keep_b = NULL;
    if (fset) {
        keep_a = fset;
        keep_b = view->fset_indexes;
    } else if (view && view->indexes) {
        keep_a = view->indexes;
    }
    bool project = keep_a || tags;

    struct dts_batch *errs = dts_model_error_batch(m);
    size_t nf = errs->n_families;
    for (size_t i = 0; i < m->n_producers; i++) {
        nf += m->producers[i].batch->n_families;
    }
    struct dts_rentry *fams = xmalloc((nf + 1) * sizeof *fams);
    char **owned = xmalloc((nf + 1) * sizeof *owned);
    size_t k = 0, n_owned = 0;
    char buf[512];
    for (size_t i = 0; i <= m->n_producers; i++) {
        bool self = i == m->n_producers;
        const struct dts_batch *b = self ? errs : m->producers[i].batch;
        for (size_t j = 0; j < b->n_families; j++) {
            const struct dts_family *f = b->families[j];
            const char *dn = dts_view_doca_name(f->name, buf, sizeof buf);
            if (ignore && (dts_tokens_match(ignore, f->name) ||
                           (dn && dts_tokens_match(ignore, dn)))) {
                continue;
            }
            if (cset && !dts_tokens_match(cset, f->name) &&
                !(dn && dts_tokens_match(cset, dn))) {
                continue;
            }
            struct dts_rentry *e = &fams[k++];
            e->f = f;
            e->name = f->name;
            e->provider = NULL;
            e->scale = 1;
            if (doca && dn) {
                e->scale = dts_view_doca_scale(f->name);
                owned[n_owned] = xstrdup(dn);
                e->name = owned[n_owned++];
                /* the same counter may come from two providers (rx_bytes
                 * from sysfs and ethtool): the label keeps them apart */
                e->provider = self || !strcmp(m->producers[i].name, "dts")
                                  ? "app"
                                  : m->producers[i].name;
            }
        }
    }
    if (k > 1) {
        qsort(fams, k, sizeof *fams, dts_rentry_cmp);
    }
    if (fmt == DTS_FMT_JSON) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        dbuf_printf(out, "{\"timestamp\":%lld,\"metrics\":[",
                    (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
    } else if (fmt == DTS_FMT_CSV) {
        dbuf_puts(out, "metric,value,labels\n");
    }
    struct dts_seen seen = {0};
    struct dbuf lb;
    dbuf_init(&lb);
    size_t n = 0;
    bool first = true;
    const char *prev = NULL;
    for (size_t i = 0; i < k; i++) {
        const struct dts_rentry *e = &fams[i];
        const struct dts_family *f = e->f;
        if (f->n_samples == 0) {
            continue;
        }
        if (fmt == DTS_FMT_PROM && (!prev || strcmp(prev, e->name) != 0)) {
            dbuf_printf(out, "# HELP %s ", e->name);
            dts_escape_help(out, f->help);
            dbuf_printf(out, "\n# TYPE %s %s\n", e->name,
                        dts_type_names[f->type]);
            prev = e->name;
        }
        size_t name_len = strlen(e->name);
        for (size_t j = 0; j < f->n_samples; j++) {
            const struct dts_sample *s = &f->samples[j];
            const char *labels = s->labels;
            size_t labels_len = strlen(labels);
            if (!project && e->provider && fmt == DTS_FMT_PROM) {
                /* DOCA names without projection, the hot case: the
                 * provider label goes in front of the stored labels,
                 * written straight into the page */
                dbuf_append(out, e->name, name_len);
                dbuf_append(out, "{provider=\"", 11);
                dbuf_puts(out, e->provider);
                dbuf_append(out, labels_len ? "\"," : "\"", labels_len ? 2 : 1);
                dbuf_append(out, labels, labels_len);
                dbuf_append(out, "} ", 2);
                dts_format_value(out, s->value * e->scale);
                dbuf_append(out, "\n", 1);
                n++;
                continue;
            }
            if (!project && e->provider) {
                lb.len = 0;
                dbuf_puts(&lb, "provider=\"");
                dbuf_puts(&lb, e->provider);
                dbuf_append(&lb, "\"", 1);
                if (labels_len) {
                    dbuf_append(&lb, ",", 1);
                    dbuf_append(&lb, labels, labels_len);
                }
                labels = lb.data;
                labels_len = lb.len;
            } else if (project) {
                lb.len = 0;
                bool drop = false;
                if (e->provider &&
                    (!keep_a || dts_tokens_match(keep_a, "provider") ||
                     dts_tokens_match(keep_b, "provider"))) {
                    dbuf_printf(&lb, "provider=\"%s\"", e->provider);
                }
                const char *p = labels, *ln, *lv;
                size_t nl, vl;
                while (dts_label_next(&p, &ln, &nl, &lv, &vl)) {
                    char lname[256];
                    snprintf(lname, sizeof lname, "%.*s", (int) nl, ln);
                    if (tags && !strcmp(lname, "source_tag")) {
                        char *val = xstrndup(lv, vl);
                        drop = dts_tokens_match(tags, val);
                        free(val);
                        if (drop) {
                            break;
                        }
                    }
                    if (keep_a && !dts_tokens_match(keep_a, lname) &&
                        !dts_tokens_match(keep_b, lname)) {
                        continue;
                    }
                    if (lb.len) {
                        dbuf_append(&lb, ",", 1);
                    }
                    dbuf_append(&lb, ln, nl);
                    dbuf_append(&lb, "=\"", 2);
                    dbuf_append(&lb, lv, vl);
                    dbuf_append(&lb, "\"", 1);
                }
                if (drop) {
                    continue;
                }
                labels = lb.len ? lb.data : "";
                labels_len = lb.len;
                if (keep_a && !dts_seen_add(&seen, e->name, labels)) {
                    continue;
                }
            }
            dts_render_sample(out, fmt, e->name, name_len, f->type, labels,
                              labels_len, s->value * e->scale, &first);
            n++;
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (fmt == DTS_FMT_JSON) {
        dbuf_puts(out, "\n]}\n");
    }
    dbuf_free(&lb);
    dts_seen_free(&seen);
    for (size_t i = 0; i < n_owned; i++) {
        free(owned[i]);
    }
    free(owned);
    free(fams);
    dts_batch_free(errs);
    if (!out->data) {
        dbuf_puts(out, "");
    }
    return (long) n;
}

size_t
dts_model_render(struct dts_model *m, struct dbuf *out)
{
    long n = dts_model_render_view(m, DTS_FMT_PROM, NULL, DTS_SET_ANY, out);
    return n > 0 ? (size_t) n : 0;
}

void
dts_model_foreach(struct dts_model *m,
                  void (*fn)(void *arg, const struct dts_family *f,
                             const struct dts_sample *s),
                  void *arg)
{
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n_producers; i++) {
        const struct dts_batch *b = m->producers[i].batch;
        for (size_t j = 0; j < b->n_families; j++) {
            const struct dts_family *f = b->families[j];
            for (size_t k = 0; k < f->n_samples; k++) {
                fn(arg, f, &f->samples[k]);
            }
        }
    }
    pthread_mutex_unlock(&m->lock);
}
