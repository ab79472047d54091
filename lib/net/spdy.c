/* spdy: see spdy.h. */
#include "lib/net/spdy.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "lib/base/util.h"

static uint32_t
get32(const uint8_t *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 |
           (uint32_t) p[2] << 8 | p[3];
}

static void
put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t) (v >> 24);
    p[1] = (uint8_t) (v >> 16);
    p[2] = (uint8_t) (v >> 8);
    p[3] = (uint8_t) v;
}

ssize_t
spdy_frame_parse(const uint8_t *buf, size_t len, size_t max_len,
                 struct spdy_frame *f)
{
    if (len < SPDY_FRAME_HEADER) {
        return 0;
    }
    memset(f, 0, sizeof(*f));
    uint32_t w0 = get32(buf);
    uint32_t w1 = get32(buf + 4);
    f->flags = (uint8_t) (w1 >> 24);
    size_t flen = w1 & SPDY_MAX_LENGTH;
    if (flen > max_len) {
        return -EMSGSIZE;
    }
    if (len - SPDY_FRAME_HEADER < flen) {
        return 0;
    }
    const uint8_t *b = buf + SPDY_FRAME_HEADER;
    ssize_t total = (ssize_t) (SPDY_FRAME_HEADER + flen);
    if (!(w0 & 0x80000000u)) {
        /* DATA (2.2.2) */
        f->type = SPDY_DATA;
        f->stream_id = w0 & 0x7fffffffu;
        f->payload = b;
        f->len = flen;
        return f->stream_id ? total : -EPROTO;
    }
    if (((w0 >> 16) & 0x7fffu) != SPDY_VERSION) {
        return -EPROTO;
    }
    f->type = (uint16_t) (w0 & 0xffffu);
    switch (f->type) {
    case SPDY_SYN_STREAM: /* 2.6.1: id, associated id, pri/slot, block */
        if (flen < 10) {
            return -EPROTO;
        }
        f->stream_id = get32(b) & 0x7fffffffu;
        f->assoc_id = get32(b + 4) & 0x7fffffffu;
        f->priority = b[8] >> 5;
        f->payload = b + 10;
        f->len = flen - 10;
        break;
    case SPDY_SYN_REPLY: /* 2.6.2 */
    case SPDY_HEADERS:   /* 2.6.7 */
        if (flen < 4) {
            return -EPROTO;
        }
        f->stream_id = get32(b) & 0x7fffffffu;
        f->payload = b + 4;
        f->len = flen - 4;
        break;
    case SPDY_RST_STREAM:    /* 2.6.3 */
    case SPDY_WINDOW_UPDATE: /* 2.6.8 */
        if (flen != 8) {
            return -EPROTO;
        }
        f->stream_id = get32(b) & 0x7fffffffu;
        f->value = get32(b + 4);
        if (f->type == SPDY_WINDOW_UPDATE) {
            f->value &= 0x7fffffffu;
            if (f->value == 0) {
                return -EPROTO;
            }
            return total; /* stream 0: the session's window (3.1) */
        }
        break;
    case SPDY_GOAWAY: /* 2.6.6 */
        if (flen != 8) {
            return -EPROTO;
        }
        f->stream_id = get32(b) & 0x7fffffffu;
        f->value = get32(b + 4);
        return total;
    case SPDY_PING: /* 2.6.5 */
        if (flen != 4) {
            return -EPROTO;
        }
        f->value = get32(b);
        return total;
    case SPDY_SETTINGS: /* 2.6.4: count, then 8 bytes each */
        if (flen < 4 || (flen - 4) / 8 < get32(b) || (flen - 4) % 8 != 0) {
            return -EPROTO;
        }
        f->payload = b;
        f->len = flen;
        return total;
    default:
        f->payload = b;
        f->len = flen;
        return total;
    }
    return f->stream_id ? total : -EPROTO;
}

bool
spdy_settings_get(const struct spdy_frame *f, uint32_t id, uint32_t *value)
{
    if (f->type != SPDY_SETTINGS || f->len < 4) {
        return false;
    }
    uint32_t n = get32(f->payload);
    for (uint32_t i = 0; i < n && 4 + (size_t) i * 8 + 8 <= f->len; i++) {
        const uint8_t *e = f->payload + 4 + (size_t) i * 8;
        if ((get32(e) & 0xffffffu) == id) {
            *value = get32(e + 4);
            return true;
        }
    }
    return false;
}

/* ------------------------------------------------------------------ */
/* The dictionary of section 2.6.10.1: the common header names and
 * values, each as 4-byte big-endian length and the text, then a tail of
 * status codes, reason phrases, dates and media types without lengths.
 * 1423 bytes; a peer checks its Adler-32 (the zlib header's DICTID), so
 * one byte off and no header block decodes. */

static const char *const dict_words[] = {
    "options",
    "head",
    "post",
    "put",
    "delete",
    "trace",
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "connection",
    "content-base",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-md5",
    "content-range",
    "content-type",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "retry-after",
    "server",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
    "vary",
    "via",
    "warning",
    "www-authenticate",
    "method",
    "get",
    "status",
    "200 OK",
    "version",
    "HTTP/1.1",
    "url",
    "public",
    "set-cookie",
    "keep-alive",
    "origin",
};

static const char dict_tail[] =
    "100101201202205206300302303304305306307402405406407408409410411412"
    "413414415416417502504505"
    "203 Non-Authoritative Information"
    "204 No Content"
    "301 Moved Permanently"
    "400 Bad Request"
    "401 Unauthorized"
    "403 Forbidden"
    "404 Not Found"
    "500 Internal Server Error"
    "501 Not Implemented"
    "503 Service Unavailable"
    "Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec "
    "00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT"
    "chunked,text/html,image/png,image/jpg,image/gif,application/xml,"
    "application/xhtml+xml,text/plain,text/javascript,"
    "publicprivatemax-age=gzip,deflate,sdch"
    "charset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

#define DICT_LEN 1423
static uint8_t dict_bytes[DICT_LEN];
static size_t dict_len;
static pthread_once_t dict_once = PTHREAD_ONCE_INIT;

static void
dict_build(void)
{
    size_t pos = 0;
    for (size_t i = 0; i < sizeof dict_words / sizeof *dict_words; i++) {
        size_t wl = strlen(dict_words[i]);
        if (pos + 4 + wl > DICT_LEN) {
            abort(); /* the table above is wrong */
        }
        put32(dict_bytes + pos, (uint32_t) wl);
        memcpy(dict_bytes + pos + 4, dict_words[i], wl);
        pos += 4 + wl;
    }
    size_t tl = sizeof dict_tail - 1;
    if (pos + tl != DICT_LEN) {
        abort();
    }
    memcpy(dict_bytes + pos, dict_tail, tl);
    dict_len = pos + tl;
}

const uint8_t *
spdy_dictionary(size_t *len)
{
    pthread_once(&dict_once, dict_build);
    *len = dict_len;
    return dict_bytes;
}

/* ------------------------------------------------------------------ */
/* header blocks                                                      */

struct spdy_zin {
    z_stream zs;
    bool init; /* inflateInit() succeeded: inflateEnd() at free */
    bool ok;   /* in step with the peer's stream */
};

struct spdy_zout {
    z_stream zs;
    bool ok;
};

struct spdy_zin *
spdy_zin_new(void)
{
    struct spdy_zin *z = xcalloc(1, sizeof(*z));
    z->init = z->ok = inflateInit(&z->zs) == Z_OK;
    return z;
}

void
spdy_zin_free(struct spdy_zin *z)
{
    if (z) {
        if (z->init) {
            inflateEnd(&z->zs);
        }
        free(z);
    }
}

struct spdy_zout *
spdy_zout_new(void)
{
    struct spdy_zout *z = xcalloc(1, sizeof(*z));
    size_t dl;
    const uint8_t *d = spdy_dictionary(&dl);
    z->ok = deflateInit(&z->zs, Z_DEFAULT_COMPRESSION) == Z_OK &&
            deflateSetDictionary(&z->zs, d, (uInt) dl) == Z_OK;
    return z;
}

void
spdy_zout_free(struct spdy_zout *z)
{
    if (z) {
        deflateEnd(&z->zs);
        free(z);
    }
}

void
spdy_headers_free(struct spdy_headers *h)
{
    for (size_t i = 0; i < h->n; i++) {
        free(h->names[i]);
        free(h->values[i]);
    }
    free(h->names);
    free(h->values);
    free(h->value_lens);
    memset(h, 0, sizeof(*h));
}

const char *
spdy_headers_get(const struct spdy_headers *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++) {
        if (!strcasecmp(h->names[i], name)) {
            return h->values[i];
        }
    }
    return NULL;
}

/* Inflate all of block into out (at most max_out bytes). */
static int
zin_inflate(struct spdy_zin *z, const uint8_t *block, size_t len,
            size_t max_out, struct dbuf *out)
{
    if (!z->ok) {
        return -EPROTO;
    }
    z->zs.next_in = (Bytef *) (uintptr_t) block;
    z->zs.avail_in = (uInt) len;
    uint8_t chunk[4096];
    for (;;) {
        z->zs.next_out = chunk;
        z->zs.avail_out = sizeof chunk;
        int r = inflate(&z->zs, Z_SYNC_FLUSH);
        if (r == Z_NEED_DICT) {
            size_t dl;
            const uint8_t *d = spdy_dictionary(&dl);
            if (inflateSetDictionary(&z->zs, d, (uInt) dl) != Z_OK) {
                z->ok = false; /* a dictionary other than SPDY's */
                return -EPROTO;
            }
            continue;
        }
        /* Z_STREAM_END too is wrong: the session's stream never ends. */
        if (r != Z_OK && r != Z_BUF_ERROR) {
            z->ok = false;
            return -EPROTO;
        }
        size_t got = sizeof chunk - z->zs.avail_out;
        if (out->len + got > max_out) {
            z->ok = false;
            return -EMSGSIZE;
        }
        dbuf_append(out, chunk, got);
        if (r == Z_BUF_ERROR || (z->zs.avail_in == 0 && z->zs.avail_out != 0)) {
            break; /* all in and out, or no progress possible */
        }
    }
    if (z->zs.avail_in != 0) {
        z->ok = false;
        return -EPROTO;
    }
    return 0;
}

int
spdy_headers_decode(struct spdy_zin *z, const uint8_t *block, size_t len,
                    size_t max_out, size_t max_pairs, struct spdy_headers *out)
{
    memset(out, 0, sizeof(*out));
    struct dbuf raw;
    dbuf_init(&raw);
    int r = zin_inflate(z, block, len, max_out, &raw);
    if (r < 0) {
        dbuf_free(&raw);
        return r;
    }
    const uint8_t *p = (const uint8_t *) raw.data;
    size_t n = raw.len, pos = 4;
    if (n < 4) {
        dbuf_free(&raw);
        return -EPROTO;
    }
    uint32_t pairs = get32(p);
    if (pairs > max_pairs) {
        dbuf_free(&raw);
        return -EMSGSIZE;
    }
    /* Each pair takes at least 8 bytes: a count the block cannot hold
     * is refused before anything is allocated for it. */
    if (pairs > (n - 4) / 8) {
        dbuf_free(&raw);
        return -EPROTO;
    }
    if (pairs) {
        out->names = xcalloc(pairs, sizeof(*out->names));
        out->values = xcalloc(pairs, sizeof(*out->values));
        out->value_lens = xcalloc(pairs, sizeof(*out->value_lens));
    }
    for (uint32_t i = 0; i < pairs; i++) {
        uint32_t nl, vl;
        if (n - pos < 4 || (nl = get32(p + pos)) == 0 || n - pos - 4 < nl) {
            r = -EPROTO;
            break;
        }
        const uint8_t *name = p + pos + 4;
        pos += 4 + nl;
        if (n - pos < 4 || n - pos - 4 < (vl = get32(p + pos))) {
            r = -EPROTO;
            break;
        }
        const uint8_t *value = p + pos + 4;
        pos += 4 + vl;
        out->names[i] = xstrndup((const char *) name, nl);
        out->values[i] = xmalloc((size_t) vl + 1);
        memcpy(out->values[i], value, vl);
        out->values[i][vl] = '\0';
        out->value_lens[i] = vl;
        out->n = i + 1;
    }
    if (r == 0 && pos != n) {
        r = -EPROTO; /* bytes after the last pair */
    }
    dbuf_free(&raw);
    if (r < 0) {
        spdy_headers_free(out);
    }
    return r;
}

/* ------------------------------------------------------------------ */
/* writing                                                            */

static void
put_control(struct dbuf *out, uint16_t type, uint8_t flags, size_t len)
{
    uint8_t h[SPDY_FRAME_HEADER];
    put32(h, 0x80000000u | (uint32_t) SPDY_VERSION << 16 | type);
    put32(h + 4, (uint32_t) flags << 24 | (uint32_t) len);
    dbuf_append(out, h, sizeof h);
}

void
spdy_put_data(struct dbuf *out, uint32_t stream_id, uint8_t flags,
              const void *data, size_t len)
{
    uint8_t h[SPDY_FRAME_HEADER];
    put32(h, stream_id & 0x7fffffffu);
    put32(h + 4, (uint32_t) flags << 24 | (uint32_t) len);
    dbuf_append(out, h, sizeof h);
    if (len) {
        dbuf_append(out, data, len);
    }
}

/* The compressed block for pairs, appended to out. */
static void
zout_block(struct spdy_zout *z, const char *const *pairs, struct dbuf *out)
{
    struct dbuf raw;
    dbuf_init(&raw);
    uint8_t w[4];
    size_t n = 0;
    while (pairs && pairs[2 * n]) {
        n++;
    }
    put32(w, (uint32_t) n);
    dbuf_append(&raw, w, 4);
    for (size_t i = 0; i < 2 * n; i++) {
        size_t l = strlen(pairs[i]);
        put32(w, (uint32_t) l);
        dbuf_append(&raw, w, 4);
        dbuf_append(&raw, pairs[i], l);
    }
    z->zs.next_in = (Bytef *) raw.data;
    z->zs.avail_in = (uInt) raw.len;
    uint8_t chunk[4096];
    do {
        z->zs.next_out = chunk;
        z->zs.avail_out = sizeof chunk;
        if (!z->ok || deflate(&z->zs, Z_SYNC_FLUSH) == Z_STREAM_ERROR) {
            abort(); /* only from misuse: deflateInit failed or a bug */
        }
        dbuf_append(out, chunk, sizeof chunk - z->zs.avail_out);
    } while (z->zs.avail_out == 0);
    dbuf_free(&raw);
}

void
spdy_put_syn_reply(struct dbuf *out, struct spdy_zout *z, uint32_t stream_id,
                   uint8_t flags, const char *const *pairs)
{
    struct dbuf block;
    dbuf_init(&block);
    zout_block(z, pairs, &block);
    put_control(out, SPDY_SYN_REPLY, flags, 4 + block.len);
    uint8_t w[4];
    put32(w, stream_id & 0x7fffffffu);
    dbuf_append(out, w, 4);
    dbuf_append(out, block.data, block.len);
    dbuf_free(&block);
}

void
spdy_put_syn_stream(struct dbuf *out, struct spdy_zout *z, uint32_t stream_id,
                    uint8_t flags, const char *const *pairs)
{
    struct dbuf block;
    dbuf_init(&block);
    zout_block(z, pairs, &block);
    put_control(out, SPDY_SYN_STREAM, flags, 10 + block.len);
    uint8_t w[10] = {0};
    put32(w, stream_id & 0x7fffffffu);
    dbuf_append(out, w, 10); /* no associated stream, priority 0 */
    dbuf_append(out, block.data, block.len);
    dbuf_free(&block);
}

static void
put_two(struct dbuf *out, uint16_t type, uint32_t a, uint32_t b)
{
    put_control(out, type, 0, 8);
    uint8_t w[8];
    put32(w, a);
    put32(w + 4, b);
    dbuf_append(out, w, 8);
}

void
spdy_put_rst_stream(struct dbuf *out, uint32_t stream_id, uint32_t status)
{
    put_two(out, SPDY_RST_STREAM, stream_id & 0x7fffffffu, status);
}

void
spdy_put_ping(struct dbuf *out, uint32_t id)
{
    put_control(out, SPDY_PING, 0, 4);
    uint8_t w[4];
    put32(w, id);
    dbuf_append(out, w, 4);
}

void
spdy_put_goaway(struct dbuf *out, uint32_t last_good, uint32_t status)
{
    put_two(out, SPDY_GOAWAY, last_good & 0x7fffffffu, status);
}

void
spdy_put_window_update(struct dbuf *out, uint32_t stream_id, uint32_t delta)
{
    put_two(out, SPDY_WINDOW_UPDATE, stream_id & 0x7fffffffu,
            delta & 0x7fffffffu);
}
