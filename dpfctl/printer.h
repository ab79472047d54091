/* printer: kubectl-style output for dpfctl: aligned tables (Go
 * tabwriter with kubectl's settings: minimum cell width 6, padding 3,
 * last column unpadded), humanised ages, and YAML/JSON documents with
 * keys sorted as kubectl prints them.
 *
 * Tables own copies of their cells; everything returned is owned by the
 * caller. */
#ifndef DPFCTL_PRINTER_H
#define DPFCTL_PRINTER_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

/* A table being built: header row plus data rows. */
struct printer_table {
    size_t ncols;       /* columns per row */
    size_t nrows;       /* rows including the header */
    char **cells;       /* nrows * ncols strings, owned */
    size_t *width;      /* widest cell per column (display bytes) */
    size_t minwidth;    /* minimum cell width incl. padding (get: 6) */
    size_t padding;     /* spaces after the widest cell (get: 3) */
    const char *indent; /* printed before every row ("" by default) */
};

/* Start a table with ncols columns (kubectl get's spacing; describe
 * sets minwidth 0, padding 2 and an indent afterwards). */
void printer_table_init(struct printer_table *t, size_t ncols);
/* Append a row of ncols cells (copied; NULL prints as ""). */
void printer_table_add(struct printer_table *t, const char *const *cells);
/* Print rows [from, nrows) aligned over all rows' widths. */
void printer_table_print_from(const struct printer_table *t, size_t from,
                              FILE *out);
/* Print every row. */
void printer_table_print(const struct printer_table *t, FILE *out);
/* Release the cells; t must be initialised again before reuse. */
void printer_table_free(struct printer_table *t);

/* Print text whose lines hold tab-separated cells, aligned the way Go's
 * text/tabwriter does it (what kubectl describe uses: minwidth 0, padding
 * 2): a column is aligned over each run of consecutive lines that have a
 * cell in it; the last cell of a line is never padded. */
void printer_tabwrite(FILE *out, const char *text, size_t minwidth,
                      size_t padding);

/* Parse an RFC 3339 timestamp (fractional seconds allowed) into seconds
 * since the epoch. 0 or -EINVAL. */
int printer_parse_time(const char *s, int64_t *epoch);
/* Age of an RFC 3339 timestamp relative to now ("<unknown>" if bad). */
void printer_age(const char *ts, char *buf, size_t size);
/* A Table cell as text: strings as is, numbers, booleans, null as ""
 * (what kubectl prints), others as compact JSON. Malloc'd. */
char *printer_cell(const json_t *v);

/* Deep copy with object keys sorted (kubectl's key order). New ref. */
json_t *printer_sorted(const json_t *v);
/* Print one document as YAML (sorted keys). */
void printer_yaml(FILE *out, const json_t *doc);
/* Print one document as JSON, 4-space indent, sorted keys, newline. */
void printer_json(FILE *out, const json_t *doc);
/* Wrap objects in a kubectl "kind: List" (new ref; items borrowed). */
json_t *printer_list(json_t *items);

#endif
