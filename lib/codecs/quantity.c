/* quantity: see quantity.h. Written by hand: no C library implements the
 * Kubernetes quantity grammar. */
#include "lib/codecs/quantity.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* 10^38 fits in a signed 128-bit integer (max ~1.7e38). */
#define QUANTITY_MAX_POW10 37

static __int128
pow10_i128(int e)
{
    __int128 v = 1;
    for (int i = 0; i < e; i++) {
        v *= 10;
    }
    return v;
}

/* Number of decimal digits of a non-negative value (0 -> 1). */
static int
digits_i128(__int128 v)
{
    int n = 1;
    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

static int
parse_suffix(const char *s, int *exp10, int *pow1024, bool *binary)
{
    *exp10 = 0;
    *pow1024 = 0;
    *binary = false;
    if (!*s) {
        return 0;
    }
    if (s[1] == 'i' && s[2] == '\0') {
        static const char bin[] = "KMGTPE";
        const char *p = strchr(bin, s[0]);
        if (!p || !s[0]) {
            return -EINVAL;
        }
        *pow1024 = (int) (p - bin) + 1;
        *binary = true;
        return 0;
    }
    if (s[1] == '\0') {
        switch (s[0]) {
        case 'n':
            *exp10 = -9;
            return 0;
        case 'u':
            *exp10 = -6;
            return 0;
        case 'm':
            *exp10 = -3;
            return 0;
        case 'k':
            *exp10 = 3;
            return 0;
        case 'M':
            *exp10 = 6;
            return 0;
        case 'G':
            *exp10 = 9;
            return 0;
        case 'T':
            *exp10 = 12;
            return 0;
        case 'P':
            *exp10 = 15;
            return 0;
        case 'E':
            *exp10 = 18;
            return 0;
        default:
            break;
        }
    }
    if (s[0] == 'e' || s[0] == 'E') {
        const char *p = s + 1;
        int sign = 1;
        if (*p == '+' || *p == '-') {
            sign = *p == '-' ? -1 : 1;
            p++;
        }
        if (!*p) {
            return -EINVAL;
        }
        int e = 0;
        for (; *p; p++) {
            if (*p < '0' || *p > '9') {
                return -EINVAL;
            }
            if (e < 1000) {
                e = e * 10 + (*p - '0');
            }
        }
        *exp10 = sign * e;
        return 0;
    }
    return -EINVAL;
}

int
quantity_parse(const char *s, struct quantity *q)
{
    if (!s || !*s) {
        return -EINVAL;
    }
    const char *p = s;
    bool neg = false;
    if (*p == '+' || *p == '-') {
        neg = *p == '-';
        p++;
    }
    __int128 mant = 0;
    int ndigits = 0, frac = 0, dropped = 0;
    bool any = false, dot = false, nonzero_dropped = false;
    for (;; p++) {
        if (*p >= '0' && *p <= '9') {
            any = true;
            if (ndigits < 30) {
                if (mant || *p != '0') {
                    ndigits++;
                }
                mant = mant * 10 + (*p - '0');
                if (dot) {
                    frac++;
                }
            } else if (!dot) {
                dropped++; /* integer digits beyond precision: scale up */
            } else if (*p != '0') {
                nonzero_dropped = true;
            }
        } else if (*p == '.' && !dot) {
            dot = true;
        } else {
            break;
        }
    }
    if (!any) {
        return -EINVAL;
    }
    int exp10, pow1024;
    bool binary;
    if (parse_suffix(p, &exp10, &pow1024, &binary) < 0) {
        return -EINVAL;
    }
    /* nano = mant * 1024^pow1024 * 10^(9 + exp10 - frac + dropped) */
    __int128 v = mant;
    for (int i = 0; i < pow1024; i++) {
        if (v > ((__int128) 1 << 100)) {
            return -ERANGE;
        }
        v *= 1024;
    }
    int e = 9 + exp10 - frac + dropped;
    if (e > 0) {
        if (v != 0 && digits_i128(v) + e > QUANTITY_MAX_POW10) {
            return -ERANGE;
        }
        v *= pow10_i128(e);
    } else if (e < 0) {
        if (-e > QUANTITY_MAX_POW10) {
            v = v ? 1 : 0; /* rounds up to one nano-unit */
        } else {
            __int128 d = pow10_i128(-e);
            __int128 r = v % d;
            v /= d;
            if (r) {
                v++; /* Kubernetes rounds up below nano precision */
            }
        }
    }
    if (nonzero_dropped && v == 0) {
        v = 1;
    }
    q->nano = neg ? -v : v;
    q->binary = binary;
    return 0;
}

int
quantity_cmp(const struct quantity *a, const struct quantity *b)
{
    return a->nano < b->nano ? -1 : a->nano > b->nano ? 1 : 0;
}

void
quantity_sub(const struct quantity *a, const struct quantity *b,
             struct quantity *out)
{
    out->nano = a->nano - b->nano;
    out->binary = a->binary;
}

static void
format_u128(__int128 v, char *buf, size_t size)
{
    char tmp[48];
    int n = 0;
    do {
        tmp[n++] = (char) ('0' + (int) (v % 10));
        v /= 10;
    } while (v && n < (int) sizeof tmp);
    size_t j = 0;
    while (n > 0 && j + 1 < size) {
        buf[j++] = tmp[--n];
    }
    buf[j] = '\0';
}

char *
quantity_format(const struct quantity *q, char *buf, size_t size)
{
    static const char *const bin[] = {"Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
    static const char *const dec[] = {"k", "M", "G", "T", "P", "E"};
    __int128 v = q->nano < 0 ? -q->nano : q->nano;
    const char *sign = q->nano < 0 ? "-" : "";
    char num[48];
    const __int128 one = 1000000000;
    if (v % one == 0) {
        __int128 whole = v / one;
        const char *suffix = "";
        if (whole != 0 && q->binary) {
            for (int i = 5; i >= 0; i--) {
                __int128 m = (__int128) 1 << (10 * (i + 1));
                if (whole % m == 0) {
                    whole /= m;
                    suffix = bin[i];
                    break;
                }
            }
        } else if (whole != 0) {
            for (int i = 5; i >= 0; i--) {
                __int128 m = pow10_i128(3 * (i + 1));
                if (whole % m == 0) {
                    whole /= m;
                    suffix = dec[i];
                    break;
                }
            }
        }
        format_u128(whole, num, sizeof num);
        snprintf(buf, size, "%s%s%s", sign, num, suffix);
    } else if (v % 1000000 == 0) {
        format_u128(v / 1000000, num, sizeof num);
        snprintf(buf, size, "%s%sm", sign, num);
    } else if (v % 1000 == 0) {
        format_u128(v / 1000, num, sizeof num);
        snprintf(buf, size, "%s%su", sign, num);
    } else {
        format_u128(v, num, sizeof num);
        snprintf(buf, size, "%s%sn", sign, num);
    }
    return buf;
}
