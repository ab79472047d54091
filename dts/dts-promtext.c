/* dts-promtext: see dts-promtext.h. Two passes: the first parses every
 * line into an array (so a failure anywhere delivers nothing), the second
 * resolves each sample's family and calls back. Hand-written because no
 * Debian C library parses the text format. */
#include "dts/dts-promtext.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/base/util.h"

#define PT_MAX_LINE 65536

struct pt_family {
    char *name;
    char *help;
    enum dts_promtext_type type;
};

struct pt_sample {
    char *name;
    char *labels;
    double value;
};

struct pt_state {
    size_t n_fam, cap_fam;
    struct pt_family *fam;
    size_t n_smp, cap_smp;
    struct pt_sample *smp;
};

static void
pt_free(struct pt_state *st)
{
    for (size_t i = 0; i < st->n_fam; i++) {
        free(st->fam[i].name);
        free(st->fam[i].help);
    }
    free(st->fam);
    for (size_t i = 0; i < st->n_smp; i++) {
        free(st->smp[i].name);
        free(st->smp[i].labels);
    }
    free(st->smp);
}

static struct pt_family *
pt_family(struct pt_state *st, const char *name, size_t len)
{
    for (size_t i = 0; i < st->n_fam; i++) {
        if (strlen(st->fam[i].name) == len &&
            memcmp(st->fam[i].name, name, len) == 0) {
            return &st->fam[i];
        }
    }
    if (st->n_fam == st->cap_fam) {
        st->cap_fam = st->cap_fam ? st->cap_fam * 2 : 16;
        st->fam = xrealloc(st->fam, st->cap_fam * sizeof *st->fam);
    }
    struct pt_family *f = &st->fam[st->n_fam++];
    f->name = xstrndup(name, len);
    f->help = NULL;
    f->type = DTS_PT_UNTYPED;
    return f;
}

static bool
pt_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           c == ':';
}

static bool
pt_name_char(char c)
{
    return pt_name_start(c) || (c >= '0' && c <= '9');
}

static bool
pt_label_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool
pt_label_char(char c)
{
    return pt_label_start(c) || (c >= '0' && c <= '9');
}

/* Length of a metric name at p (0 if none). */
static size_t
pt_name_len(const char *p, const char *e)
{
    if (p >= e || !pt_name_start(*p)) {
        return 0;
    }
    const char *q = p + 1;
    while (q < e && pt_name_char(*q)) {
        q++;
    }
    return (size_t) (q - p);
}

static const char *
pt_skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t')) {
        p++;
    }
    return p;
}

static int
pt_parse_value(const char *p, size_t len, double *out)
{
    char buf[64];
    if (len == 0 || len >= sizeof buf) {
        return -1;
    }
    memcpy(buf, p, len);
    buf[len] = '\0';
    if (!strcasecmp(buf, "nan")) {
        *out = NAN;
        return 0;
    }
    if (!strcasecmp(buf, "+inf") || !strcasecmp(buf, "inf")) {
        *out = INFINITY;
        return 0;
    }
    if (!strcasecmp(buf, "-inf")) {
        *out = -INFINITY;
        return 0;
    }
    /* strtod also takes hex floats, "infinity" and "nan(...)": refuse
     * them to stay with the format's grammar. */
    for (const char *c = buf; *c; c++) {
        if (!strchr("0123456789+-.eE", *c)) {
            return -1;
        }
    }
    char *end;
    *out = strtod(buf, &end);
    return *end ? -1 : 0;
}

static int
pt_fail(struct dpf_error *err, unsigned line, const char *what)
{
    dpf_error_set(err, 400, "Invalid", "line %u: %s", line, what);
    return -EBADMSG;
}

/* Parse a label list starting after '{'; renders canonically into out.
 * *pp is left after '}'. */
static int
pt_parse_labels(const char **pp, const char *e, struct dbuf *out, unsigned line,
                struct dpf_error *err)
{
    const char *p = *pp;
    char seen[64][64];
    size_t n_seen = 0;
    bool first = true;
    for (;;) {
        p = pt_skip_ws(p, e);
        if (p < e && *p == '}') {
            p++;
            break;
        }
        if (p >= e || !pt_label_start(*p)) {
            return pt_fail(err, line, "bad label name");
        }
        const char *nb = p;
        while (p < e && pt_label_char(*p)) {
            p++;
        }
        size_t nlen = (size_t) (p - nb);
        for (size_t i = 0; i < n_seen; i++) {
            if (strlen(seen[i]) == nlen && !memcmp(seen[i], nb, nlen)) {
                return pt_fail(err, line, "duplicate label name");
            }
        }
        if (n_seen < 64 && nlen < 64) {
            memcpy(seen[n_seen], nb, nlen);
            seen[n_seen][nlen] = '\0';
            n_seen++;
        }
        p = pt_skip_ws(p, e);
        if (p >= e || *p != '=') {
            return pt_fail(err, line, "expected '=' after label name");
        }
        p = pt_skip_ws(p + 1, e);
        if (p >= e || *p != '"') {
            return pt_fail(err, line, "expected '\"' to start label value");
        }
        p++;
        dbuf_printf(out, "%s%.*s=\"", first ? "" : ",", (int) nlen, nb);
        first = false;
        for (;;) {
            if (p >= e) {
                return pt_fail(err, line, "unterminated label value");
            }
            if (*p == '"') {
                p++;
                break;
            }
            if (*p == '\\') {
                if (p + 1 >= e) {
                    return pt_fail(err, line, "unterminated label value");
                }
                char c = p[1];
                if (c == 'n') {
                    dbuf_puts(out, "\\n");
                } else if (c == '\\') {
                    dbuf_puts(out, "\\\\");
                } else if (c == '"') {
                    dbuf_puts(out, "\\\"");
                } else {
                    return pt_fail(err, line, "bad escape in label value");
                }
                p += 2;
                continue;
            }
            dbuf_append(out, p, 1);
            p++;
        }
        dbuf_puts(out, "\"");
        p = pt_skip_ws(p, e);
        if (p < e && *p == ',') {
            p++;
        } else if (p < e && *p == '}') {
            p++;
            break;
        } else {
            return pt_fail(err, line, "expected ',' or '}' in label list");
        }
    }
    *pp = p;
    return 0;
}

static void
pt_unescape_help(const char *p, const char *e, struct dbuf *out)
{
    while (p < e) {
        if (*p == '\\' && p + 1 < e && (p[1] == 'n' || p[1] == '\\')) {
            dbuf_append(out, p[1] == 'n' ? "\n" : "\\", 1);
            p += 2;
        } else {
            dbuf_append(out, p, 1);
            p++;
        }
    }
}

static int
pt_comment(struct pt_state *st, const char *p, const char *e, unsigned line,
           struct dpf_error *err)
{
    p = pt_skip_ws(p + 1, e);
    bool help = (size_t) (e - p) >= 4 && !memcmp(p, "HELP", 4);
    bool type = (size_t) (e - p) >= 4 && !memcmp(p, "TYPE", 4);
    if ((!help && !type) || (p + 4 < e && p[4] != ' ' && p[4] != '\t')) {
        return 0; /* an ordinary comment */
    }
    p = pt_skip_ws(p + 4, e);
    size_t nlen = pt_name_len(p, e);
    if (!nlen) {
        return pt_fail(err, line, "bad metric name in HELP/TYPE");
    }
    struct pt_family *f = pt_family(st, p, nlen);
    p = pt_skip_ws(p + nlen, e);
    if (help) {
        struct dbuf b;
        dbuf_init(&b);
        pt_unescape_help(p, e, &b);
        free(f->help);
        f->help = b.data ? dbuf_steal(&b, NULL) : xstrdup("");
        return 0;
    }
    const char *te = e;
    while (te > p && (te[-1] == ' ' || te[-1] == '\t')) {
        te--;
    }
    static const struct {
        const char *s;
        enum dts_promtext_type t;
    } types[] = {
        {"counter", DTS_PT_COUNTER},     {"gauge", DTS_PT_GAUGE},
        {"histogram", DTS_PT_HISTOGRAM}, {"summary", DTS_PT_SUMMARY},
        {"untyped", DTS_PT_UNTYPED},
    };
    for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
        if ((size_t) (te - p) == strlen(types[i].s) &&
            !memcmp(p, types[i].s, (size_t) (te - p))) {
            f->type = types[i].t;
            return 0;
        }
    }
    return pt_fail(err, line, "unknown metric type in TYPE");
}

static int
pt_sample_line(struct pt_state *st, const char *p, const char *e, unsigned line,
               size_t max, struct dpf_error *err)
{
    size_t nlen = pt_name_len(p, e);
    if (!nlen) {
        return pt_fail(err, line, "bad metric name");
    }
    const char *name = p;
    p += nlen;
    struct dbuf labels;
    dbuf_init(&labels);
    const char *q = pt_skip_ws(p, e);
    if (q < e && *q == '{') {
        p = q + 1;
        int rc = pt_parse_labels(&p, e, &labels, line, err);
        if (rc < 0) {
            dbuf_free(&labels);
            return rc;
        }
    }
    const char *vb = pt_skip_ws(p, e);
    if (vb == p && p < e) {
        dbuf_free(&labels);
        return pt_fail(err, line, "expected a space before the value");
    }
    const char *ve = vb;
    while (ve < e && *ve != ' ' && *ve != '\t') {
        ve++;
    }
    double v;
    if (pt_parse_value(vb, (size_t) (ve - vb), &v) < 0) {
        dbuf_free(&labels);
        return pt_fail(err, line, "value is not a number");
    }
    const char *ts = pt_skip_ws(ve, e);
    if (ts < e) {
        const char *tse = ts;
        if (tse < e && *tse == '-') {
            tse++;
        }
        while (tse < e && *tse >= '0' && *tse <= '9') {
            tse++;
        }
        if (tse == ts || pt_skip_ws(tse, e) != e) {
            dbuf_free(&labels);
            return pt_fail(err, line, "bad timestamp");
        }
    }
    if (st->n_smp >= max) {
        dbuf_free(&labels);
        return pt_fail(err, line, "too many samples");
    }
    if (st->n_smp == st->cap_smp) {
        st->cap_smp = st->cap_smp ? st->cap_smp * 2 : 64;
        st->smp = xrealloc(st->smp, st->cap_smp * sizeof *st->smp);
    }
    struct pt_sample *s = &st->smp[st->n_smp++];
    s->name = xstrndup(name, nlen);
    s->labels = labels.data ? dbuf_steal(&labels, NULL) : xstrdup("");
    s->value = v;
    return 0;
}

static const struct pt_family *
pt_resolve(const struct pt_state *st, const char *name)
{
    static const char *const suffixes[] = {"", "_total", "_count", "_sum",
                                           "_bucket"};
    size_t len = strlen(name);
    for (size_t k = 0; k < ARRAY_SIZE(suffixes); k++) {
        size_t sl = strlen(suffixes[k]);
        if (sl > len || strcmp(name + len - sl, suffixes[k]) != 0) {
            continue;
        }
        for (size_t i = 0; i < st->n_fam; i++) {
            if (strlen(st->fam[i].name) == len - sl &&
                !memcmp(st->fam[i].name, name, len - sl)) {
                return &st->fam[i];
            }
        }
    }
    return NULL;
}

long
dts_promtext_parse(const char *text, size_t len, size_t max_samples,
                   dts_promtext_cb cb, void *arg, struct dpf_error *err)
{
    struct pt_state st;
    memset(&st, 0, sizeof st);
    if (!max_samples) {
        max_samples = 1000000;
    }
    const char *pos = text, *end = text + len;
    unsigned line = 0;
    int rc = 0;
    while (pos < end && rc == 0) {
        line++;
        const char *nl = memchr(pos, '\n', (size_t) (end - pos));
        const char *le = nl ? nl : end;
        const char *p = pos;
        pos = nl ? nl + 1 : end;
        if ((size_t) (le - p) > PT_MAX_LINE) {
            rc = pt_fail(err, line, "line too long");
            break;
        }
        if (memchr(p, '\0', (size_t) (le - p))) {
            rc = pt_fail(err, line, "NUL byte");
            break;
        }
        if (le > p && le[-1] == '\r') {
            le--;
        }
        p = pt_skip_ws(p, le);
        if (p == le) {
            continue;
        }
        if (*p == '#') {
            rc = pt_comment(&st, p, le, line, err);
        } else {
            rc = pt_sample_line(&st, p, le, line, max_samples, err);
        }
    }
    if (rc < 0) {
        pt_free(&st);
        return rc;
    }
    for (size_t i = 0; i < st.n_smp; i++) {
        const struct pt_family *f = pt_resolve(&st, st.smp[i].name);
        struct dts_promtext_sample s = {
            .name = st.smp[i].name,
            .help = f ? f->help : NULL,
            .type = f ? f->type : DTS_PT_UNTYPED,
            .labels = st.smp[i].labels,
            .value = st.smp[i].value,
        };
        cb(arg, &s);
    }
    long n = (long) st.n_smp;
    pt_free(&st);
    return n;
}
