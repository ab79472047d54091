/* cri-log: the container log format of the Container Runtime Interface,
 * one line per record:
 *
 *     <RFC 3339 time with nanoseconds> <stdout|stderr> <P|F> <text>
 *
 * (P: a partial line continued by the next record; F: the line's end).
 * dpulet writes container output in it and its kubelet API reads it back
 * for `kubectl logs`. Written here: the format is four fields and no
 * library parses it.
 *
 * Threads: pure functions. Memory: the parsed record points into the
 * caller's line. */
#ifndef DPF_CRI_LOG_H
#define DPF_CRI_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cri_log_line {
    const char *ts;  /* the time as written */
    size_t ts_len;   /* its length */
    int64_t ts_ns;   /* the time in ns since the epoch (UTC) */
    bool is_stderr;  /* stream: stderr (else stdout) */
    bool partial;    /* tag P: the line goes on in the next record */
    const char *msg; /* the text (without the record's newline) */
    size_t msg_len;  /* its length */
};

/* Parse one record line[0..len) (without its '\n'; a trailing '\r' is
 * part of the text). 0, or -EINVAL when the line is not a CRI record. */
int cri_log_parse(const char *line, size_t len, struct cri_log_line *out);

/* RFC 3339 time ("2026-12-01T23:35:06.123456789Z" or with a "+01:00"
 * offset; fraction optional, up to 9 digits) to ns since the epoch. 0 or
 * -EINVAL. */
int cri_time_parse(const char *s, size_t len, int64_t *ns);

/* Format ns since the epoch as RFC 3339 with nanoseconds in UTC, as the
 * CRI writes it, into buf (at least 36 bytes). Returns the length. */
size_t cri_time_format(int64_t ns, char *buf, size_t size);

#endif
