/* cri-log: see cri-log.h. */
#include "lib/codecs/cri-log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* n decimal digits at s; -1 if any is not a digit. */
static int
digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil), so no time zone or libc state is involved. */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned) (y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t) doe - 719468;
}

int
cri_time_parse(const char *s, size_t len, int64_t *ns)
{
    if (len < 20 || s[4] != '-' || s[7] != '-' ||
        (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':') {
        return -EINVAL;
    }
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), se = digits(s + 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 ||
        mi < 0 || mi > 59 || se < 0 || se > 60) {
        return -EINVAL;
    }
    size_t i = 19;
    int64_t frac = 0;
    if (i < len && s[i] == '.') {
        i++;
        int nd = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (nd < 9) {
                frac = frac * 10 + (s[i] - '0');
            }
            nd++;
            i++;
        }
        if (nd == 0 || nd > 9) {
            return -EINVAL;
        }
        for (; nd < 9; nd++) {
            frac *= 10;
        }
    }
    int64_t off = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 <= len && (s[i] == '+' || s[i] == '-') &&
               s[i + 3] == ':') {
        int oh = digits(s + i + 1, 2), om = digits(s + i + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59) {
            return -EINVAL;
        }
        off = (oh * 60 + om) * 60 * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return -EINVAL;
    }
    if (i != len) {
        return -EINVAL;
    }
    int64_t secs = days_from_civil(y, (unsigned) mo, (unsigned) d) * 86400 +
                   h * 3600 + mi * 60 + se - off;
    /* nanoseconds since 1970 in 64 bits: the years 1678 to 2262 */
    if (secs < INT64_MIN / 1000000000LL + 1 ||
        secs > INT64_MAX / 1000000000LL - 1) {
        return -EINVAL;
    }
    *ns = secs * 1000000000LL + frac;
    return 0;
}

size_t
cri_time_format(int64_t ns, char *buf, size_t size)
{
    time_t secs = (time_t) (ns / 1000000000LL);
    long frac = (long) (ns % 1000000000LL);
    if (frac < 0) {
        frac += 1000000000L;
        secs--;
    }
    struct tm tm;
    gmtime_r(&secs, &tm);
    int n = snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec, frac);
    return n < 0 ? 0 : (size_t) n >= size ? size - 1 : (size_t) n;
}

int
cri_log_parse(const char *line, size_t len, struct cri_log_line *out)
{
    const char *sp = memchr(line, ' ', len);
    if (!sp) {
        return -EINVAL;
    }
    size_t ts_len = (size_t) (sp - line);
    if (cri_time_parse(line, ts_len, &out->ts_ns) < 0) {
        return -EINVAL;
    }
    out->ts = line;
    out->ts_len = ts_len;
    const char *p = sp + 1, *end = line + len;
    if ((size_t) (end - p) >= 7 && !memcmp(p, "stdout ", 7)) {
        out->is_stderr = false;
    } else if ((size_t) (end - p) >= 7 && !memcmp(p, "stderr ", 7)) {
        out->is_stderr = true;
    } else {
        return -EINVAL;
    }
    p += 7;
    /* The tag: P or F (a future runtime may add ":"-separated tags after
     * it; the first one is what counts). */
    if (p >= end || (*p != 'P' && *p != 'F')) {
        return -EINVAL;
    }
    out->partial = *p == 'P';
    p++;
    while (p < end && *p != ' ') {
        if (*p != ':' && (*p < 'A' || *p > 'Z')) {
            return -EINVAL;
        }
        p++;
    }
    if (p < end) {
        p++; /* the space before the text */
    }
    out->msg = p;
    out->msg_len = (size_t) (end - p);
    return 0;
}
