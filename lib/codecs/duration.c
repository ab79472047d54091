/* duration: see duration.h. */
#include "lib/codecs/duration.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
duration_human(int64_t s, char *buf, size_t size)
{
    if (s < -1) {
        snprintf(buf, size, "<invalid>");
        return;
    }
    if (s < 0) {
        s = 0;
    }
    if (s < 120) {
        snprintf(buf, size, "%llds", (long long) s);
        return;
    }
    int64_t m = s / 60;
    if (m < 10) {
        if (s % 60 == 0) {
            snprintf(buf, size, "%lldm", (long long) m);
        } else {
            snprintf(buf, size, "%lldm%llds", (long long) m,
                     (long long) (s % 60));
        }
        return;
    }
    if (m < 180) {
        snprintf(buf, size, "%lldm", (long long) m);
        return;
    }
    int64_t h = s / 3600;
    if (h < 8) {
        if (m % 60 == 0) {
            snprintf(buf, size, "%lldh", (long long) h);
        } else {
            snprintf(buf, size, "%lldh%lldm", (long long) h,
                     (long long) (m % 60));
        }
        return;
    }
    if (h < 48) {
        snprintf(buf, size, "%lldh", (long long) h);
        return;
    }
    if (h < 24 * 8) {
        if (h % 24 == 0) {
            snprintf(buf, size, "%lldd", (long long) (h / 24));
        } else {
            snprintf(buf, size, "%lldd%lldh", (long long) (h / 24),
                     (long long) (h % 24));
        }
        return;
    }
    if (h < 24 * 365 * 2) {
        snprintf(buf, size, "%lldd", (long long) (h / 24));
        return;
    }
    if (h < 24 * 365 * 8) {
        int64_t dy = (h / 24) % 365;
        if (dy == 0) {
            snprintf(buf, size, "%lldy", (long long) (h / 24 / 365));
        } else {
            snprintf(buf, size, "%lldy%lldd", (long long) (h / 24 / 365),
                     (long long) dy);
        }
        return;
    }
    snprintf(buf, size, "%lldy", (long long) (h / 24 / 365));
}

int
duration_parse(const char *s, int64_t *ms)
{
    if (!s || !*s) {
        return -EINVAL;
    }
    char *end;
    /* bare number: seconds (kubectl --request-timeout accepts it) */
    double v = strtod(s, &end);
    if (end != s && *end == '\0') {
        if (v < 0) {
            return -EINVAL;
        }
        *ms = (int64_t) (v * 1000.0);
        return 0;
    }
    double total = 0;
    const char *p = s;
    while (*p) {
        v = strtod(p, &end);
        if (end == p || v < 0) {
            return -EINVAL;
        }
        p = end;
        double mult;
        if (!strncmp(p, "ms", 2)) {
            mult = 1, p += 2;
        } else if (!strncmp(p, "us", 2)) {
            mult = 0.001, p += 2;
        } else if (!strncmp(p, "ns", 2)) {
            mult = 0.000001, p += 2;
        } else if (*p == 'h') {
            mult = 3600000, p++;
        } else if (*p == 'm') {
            mult = 60000, p++;
        } else if (*p == 's') {
            mult = 1000, p++;
        } else {
            return -EINVAL;
        }
        total += v * mult;
    }
    *ms = (int64_t) total;
    return 0;
}
