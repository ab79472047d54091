/* base64: see base64.h. */
#include "lib/base/base64.h"

#include <errno.h>
#include <stdlib.h>

#include "lib/base/util.h"

static const char base64_std_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char base64_url_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Value of one symbol in the given alphabet(s), or -1. */
static int
base64_value(unsigned char c, bool std, bool url)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if ((std && c == '+') || (url && c == '-')) {
        return 62;
    }
    if ((std && c == '/') || (url && c == '_')) {
        return 63;
    }
    return -1;
}

char *
base64_encode(const void *in, size_t n, enum base64_variant v)
{
    const unsigned char *p = in;
    const char *chars = v == BASE64_STD ? base64_std_chars : base64_url_chars;
    bool pad = v == BASE64_STD;
    char *out = xmalloc((n + 2) / 3 * 4 + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned w = (unsigned) p[i] << 16;
        if (i + 1 < n) {
            w |= (unsigned) p[i + 1] << 8;
        }
        if (i + 2 < n) {
            w |= p[i + 2];
        }
        out[o++] = chars[(w >> 18) & 63];
        out[o++] = chars[(w >> 12) & 63];
        if (i + 1 < n) {
            out[o++] = chars[(w >> 6) & 63];
        } else if (pad) {
            out[o++] = '=';
        }
        if (i + 2 < n) {
            out[o++] = chars[w & 63];
        } else if (pad) {
            out[o++] = '=';
        }
    }
    out[o] = '\0';
    return out;
}

long
base64_check(const char *s, size_t n)
{
    if (n % 4) {
        return -(long) (n - n % 4) - 1;
    }
    size_t out = 0;
    for (size_t i = 0; i < n; i += 4) {
        bool last = i + 4 == n;
        for (size_t j = 0; j < 4; j++) {
            unsigned char c = (unsigned char) s[i + j];
            if (c == '=' && last && j >= 2) {
                if (j == 2 && s[i + 3] != '=') {
                    return -(long) (i + 3) - 1;
                }
                break;
            }
            if (base64_value(c, true, false) < 0) {
                return -(long) (i + j) - 1;
            }
        }
        out += 3;
    }
    if (n >= 1 && s[n - 1] == '=') {
        out--;
    }
    if (n >= 2 && s[n - 2] == '=') {
        out--;
    }
    return (long) out;
}

int
base64_decode(const char *s, size_t n, enum base64_mode mode, char **out,
              size_t *out_len)
{
    if (mode == BASE64_STRICT && base64_check(s, n) < 0) {
        return -EINVAL;
    }
    /* Every mode takes the standard alphabet; the URL modes also the
     * URL one (a token may have passed through either). */
    bool url = mode != BASE64_STRICT;
    char *buf = xmalloc(n / 4 * 3 + 4);
    size_t len = 0;
    unsigned acc = 0;
    int bits = 0;
    bool padding = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        if (mode == BASE64_LENIENT &&
            (c == ' ' || c == '\n' || c == '\r' || c == '\t')) {
            continue;
        }
        if (c == '=') {
            padding = true;
            continue;
        }
        int v = base64_value(c, true, url);
        if (v < 0 || padding) {
            free(buf);
            return -EINVAL;
        }
        acc = (acc << 6) | (unsigned) v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[len++] = (char) ((acc >> bits) & 0xff);
        }
    }
    if (bits >= 6) { /* one leftover symbol cannot encode a byte */
        free(buf);
        return -EINVAL;
    }
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
}
