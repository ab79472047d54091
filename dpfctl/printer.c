/* printer: see printer.h. */
#include "dpfctl/printer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/base/util.h"
#include "lib/codecs/yamljson.h"
#include "lib/codecs/duration.h"

/* kubectl: tabwriter.NewWriter(out, 6, 4, 3, ' ', 0) */
#define TAB_MINWIDTH 6
#define TAB_PADDING 3

void
printer_table_init(struct printer_table *t, size_t ncols)
{
    memset(t, 0, sizeof *t);
    t->ncols = ncols;
    t->minwidth = TAB_MINWIDTH;
    t->padding = TAB_PADDING;
    t->indent = "";
    t->width = xcalloc(ncols ? ncols : 1, sizeof *t->width);
}

/* Display width: count UTF-8 code points, not bytes. */
static size_t
text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++) {
        if (((unsigned char) *s & 0xc0) != 0x80) {
            w++;
        }
    }
    return w;
}

void
printer_table_add(struct printer_table *t, const char *const *cells)
{
    t->cells = xrealloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(char *));
    for (size_t i = 0; i < t->ncols; i++) {
        const char *s = cells[i] ? cells[i] : "";
        t->cells[t->nrows * t->ncols + i] = xstrdup(s);
        size_t w = text_width(s);
        if (w > t->width[i]) {
            t->width[i] = w;
        }
    }
    t->nrows++;
}

void
printer_table_print_from(const struct printer_table *t, size_t from, FILE *out)
{
    for (size_t r = from; r < t->nrows; r++) {
        fputs(t->indent, out);
        for (size_t i = 0; i < t->ncols; i++) {
            const char *s = t->cells[r * t->ncols + i];
            fputs(s, out);
            if (i + 1 < t->ncols) {
                size_t cw = t->width[i] + t->padding;
                if (cw < t->minwidth) {
                    cw = t->minwidth;
                }
                for (size_t k = text_width(s); k < cw; k++) {
                    fputc(' ', out);
                }
            }
        }
        fputc('\n', out);
    }
    fflush(out);
}

void
printer_table_print(const struct printer_table *t, FILE *out)
{
    printer_table_print_from(t, 0, out);
}

void
printer_table_free(struct printer_table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++) {
        free(t->cells[i]);
    }
    free(t->cells);
    free(t->width);
    memset(t, 0, sizeof *t);
}

/* One line split into cells for printer_tabwrite(). */
struct twline {
    char **cells; /* NUL-terminated cells (pointers into a copy) */
    size_t n;     /* cell count (tabs + 1) */
};

/* Write lines [l0, l1) with the current column widths. */
static void
tw_write(FILE *out, const struct twline *lines, size_t l0, size_t l1,
         const size_t *widths, size_t nwidths)
{
    for (size_t i = l0; i < l1; i++) {
        for (size_t j = 0; j < lines[i].n; j++) {
            const char *c = lines[i].cells[j];
            fputs(c, out);
            if (j < nwidths && j + 1 < lines[i].n) {
                for (size_t k = text_width(c); k < widths[j]; k++) {
                    fputc(' ', out);
                }
            }
        }
        fputc('\n', out);
    }
}

/* Go's tabwriter format(): recursive over column blocks. */
static void
tw_format(FILE *out, const struct twline *lines, size_t l0, size_t l1,
          size_t *widths, size_t nwidths, size_t minwidth, size_t padding)
{
    size_t column = nwidths;
    for (size_t t = l0; t < l1; t++) {
        if (column + 1 >= lines[t].n) {
            continue;
        }
        tw_write(out, lines, l0, t, widths, nwidths);
        l0 = t;
        size_t width = minwidth;
        for (; t < l1; t++) {
            if (column + 1 >= lines[t].n) {
                break;
            }
            size_t w = text_width(lines[t].cells[column]) + padding;
            if (w > width) {
                width = w;
            }
        }
        widths[nwidths] = width;
        tw_format(out, lines, l0, t, widths, nwidths + 1, minwidth, padding);
        l0 = t;
        if (t == l1) {
            break;
        }
    }
    tw_write(out, lines, l0, l1, widths, nwidths);
}

void
printer_tabwrite(FILE *out, const char *text, size_t minwidth, size_t padding)
{
    char *copy = xstrdup(text);
    struct twline *lines = NULL;
    size_t n = 0, maxcells = 1;
    char *p = copy;
    size_t len = strlen(copy);
    if (len > 0 && copy[len - 1] == '\n') {
        copy[len - 1] = '\0';
    }
    while (p) {
        char *nl = strchr(p, '\n');
        if (nl) {
            *nl = '\0';
        }
        lines = xrealloc(lines, (n + 1) * sizeof *lines);
        struct twline *l = &lines[n++];
        l->n = 1;
        for (char *q = p; *q; q++) {
            l->n += *q == '\t';
        }
        l->cells = xcalloc(l->n, sizeof *l->cells);
        size_t c = 0;
        l->cells[c++] = p;
        for (char *q = p; *q; q++) {
            if (*q == '\t') {
                *q = '\0';
                l->cells[c++] = q + 1;
            }
        }
        maxcells = DPF_MAX(maxcells, l->n);
        p = nl ? nl + 1 : NULL;
    }
    if (len > 0) {
        size_t *widths = xcalloc(maxcells, sizeof *widths);
        tw_format(out, lines, 0, n, widths, 0, minwidth, padding);
        free(widths);
    }
    for (size_t i = 0; i < n; i++) {
        free(lines[i].cells);
    }
    free(lines);
    free(copy);
    fflush(out);
}

int
printer_parse_time(const char *s, int64_t *epoch)
{
    struct tm tm = {0};
    if (!s) {
        return -EINVAL;
    }
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p) {
        return -EINVAL;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            p++;
        }
    }
    long off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm;
        if (sscanf(p + 1, "%2d:%2d", &hh, &mm) != 2) {
            return -EINVAL;
        }
        off = (hh * 3600L + mm * 60L) * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return -EINVAL;
    }
    if (*p) {
        return -EINVAL;
    }
    *epoch = (int64_t) timegm(&tm) - off;
    return 0;
}

void
printer_age(const char *ts, char *buf, size_t size)
{
    int64_t t;
    if (printer_parse_time(ts, &t) < 0) {
        snprintf(buf, size, "<unknown>");
        return;
    }
    int64_t now = time_wall_ns() / 1000000000LL;
    duration_human(now - t, buf, size);
}

char *
printer_cell(const json_t *v)
{
    if (!v || json_is_null(v)) {
        return xstrdup(""); /* kubectl prints nothing for a nil cell */
    }
    if (json_is_string(v)) {
        return xstrdup(json_string_value(v));
    }
    if (json_is_integer(v)) {
        return xasprintf("%lld", (long long) json_integer_value(v));
    }
    if (json_is_real(v)) {
        return xasprintf("%g", json_real_value(v));
    }
    if (json_is_boolean(v)) {
        return xstrdup(json_is_true(v) ? "true" : "false");
    }
    char *s = json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    return s ? s : xstrdup("");
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

json_t *
printer_sorted(const json_t *v)
{
    if (json_is_object(v)) {
        size_t n = json_object_size(v);
        const char **keys = xcalloc(n ? n : 1, sizeof *keys);
        size_t i = 0;
        const char *k;
        json_t *val;
        json_object_foreach((json_t *) v, k, val)
        {
            keys[i++] = k;
        }
        qsort(keys, n, sizeof *keys, cmp_str);
        json_t *o = json_object();
        for (i = 0; i < n; i++) {
            json_object_set_new(o, keys[i],
                                printer_sorted(json_object_get(v, keys[i])));
        }
        free(keys);
        return o;
    }
    if (json_is_array(v)) {
        json_t *a = json_array();
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e)
        {
            json_array_append_new(a, printer_sorted(e));
        }
        return a;
    }
    return json_deep_copy(v);
}

void
printer_yaml(FILE *out, const json_t *doc)
{
    json_t *s = printer_sorted(doc);
    char *y = yamljson_emit(s);
    fputs(y, out);
    free(y);
    json_decref(s);
    fflush(out);
}

void
printer_json(FILE *out, const json_t *doc)
{
    char *j =
        json_dumps(doc, JSON_INDENT(4) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    fprintf(out, "%s\n", j ? j : "null");
    free(j);
    fflush(out);
}

json_t *
printer_list(json_t *items)
{
    return json_pack("{s:s, s:O, s:s, s:{s:s}}", "apiVersion", "v1", "items",
                     items, "kind", "List", "metadata", "resourceVersion", "");
}
