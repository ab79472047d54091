/* zpack: see zpack.h. */
#include "lib/codecs/zpack.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "lib/base/util.h"

/* Level 1: the dictionary does most of the work; higher levels gain a
 * fifth more for twice the time. */
#define ZPACK_LEVEL 1

struct zpack {
    z_stream zs;
    char *buf; /* deflate output, reused */
    size_t cap;
};

struct zpack *
zpack_create(void)
{
    struct zpack *z = xcalloc(1, sizeof *z);
    if (deflateInit2(&z->zs, ZPACK_LEVEL, Z_DEFLATED, -15, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        free(z);
        return NULL;
    }
    return z;
}

void
zpack_destroy(struct zpack *z)
{
    if (z) {
        deflateEnd(&z->zs);
        free(z->buf);
        free(z);
    }
}

static void
zpack_dict_tail(const char **dict, size_t *dict_len)
{
    if (*dict_len > ZPACK_DICT_MAX) {
        *dict += *dict_len - ZPACK_DICT_MAX;
        *dict_len = ZPACK_DICT_MAX;
    }
}

char *
zpack_pack(struct zpack *z, const char *dict, size_t dict_len, const char *text,
           size_t len, size_t hdr, size_t *out_len)
{
    if (!z || len < 64 || len > UINT_MAX / 2) {
        return NULL;
    }
    zpack_dict_tail(&dict, &dict_len);
    if (deflateReset(&z->zs) != Z_OK ||
        (dict_len && deflateSetDictionary(&z->zs, (const Bytef *) dict,
                                          (uInt) dict_len) != Z_OK)) {
        return NULL;
    }
    /* worth keeping only below 7/8 of the text: stop there */
    size_t limit = len - len / 8;
    if (z->cap < limit) {
        free(z->buf);
        z->cap = limit;
        z->buf = xmalloc(z->cap);
    }
    z->zs.next_in = (Bytef *) (uintptr_t) text;
    z->zs.avail_in = (uInt) len;
    z->zs.next_out = (Bytef *) z->buf;
    z->zs.avail_out = (uInt) limit;
    if (deflate(&z->zs, Z_FINISH) != Z_STREAM_END) {
        return NULL; /* did not fit: not worth it */
    }
    size_t n = limit - z->zs.avail_out;
    char *out = xmalloc(hdr + n);
    memcpy(out + hdr, z->buf, n);
    *out_len = n;
    return out;
}

int
zpack_unpack(const char *dict, size_t dict_len, const char *packed, size_t plen,
             char *out, size_t len)
{
    if (plen > UINT_MAX || len >= UINT_MAX) {
        return -EINVAL;
    }
    zpack_dict_tail(&dict, &dict_len);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, -15) != Z_OK) {
        return -ENOMEM;
    }
    int r = 0;
    if (dict_len && inflateSetDictionary(&zs, (const Bytef *) dict,
                                         (uInt) dict_len) != Z_OK) {
        r = -EINVAL;
    } else {
        zs.next_in = (Bytef *) (uintptr_t) packed;
        zs.avail_in = (uInt) plen;
        zs.next_out = (Bytef *) out;
        zs.avail_out = (uInt) len + 1; /* room to see a longer stream */
        if (inflate(&zs, Z_FINISH) != Z_STREAM_END || zs.total_out != len ||
            zs.avail_in) {
            r = -EINVAL;
        }
    }
    inflateEnd(&zs);
    out[len] = '\0';
    return r;
}
