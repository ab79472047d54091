/* fluent-forward: Fluentd Forward protocol v1 encoder and bounded decoder.
 * msgpack-c does the packing and object building; the bounds scanner in
 * front of it is ours (see the header). */
#include "lib/telemetry/fluent-forward.h"

#include <errno.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---- encoder ------------------------------------------------------------ */

static int
dbuf_write_cb(void *data, const char *buf, size_t len)
{
    dbuf_append(data, buf, len);
    return 0;
}

static void
pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void
pack_json(msgpack_packer *pk, json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        const char *k;
        size_t klen;
        json_t *v;
        msgpack_pack_map(pk, json_object_size(j));
        json_object_keylen_foreach(j, k, klen, v)
        {
            msgpack_pack_str_with_body(pk, k, klen);
            pack_json(pk, v);
        }
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *v;
        msgpack_pack_array(pk, json_array_size(j));
        json_array_foreach(j, i, v)
        {
            pack_json(pk, v);
        }
        break;
    }
    case JSON_STRING:
        msgpack_pack_str_with_body(pk, json_string_value(j),
                                   json_string_length(j));
        break;
    case JSON_INTEGER:
        msgpack_pack_int64(pk, json_integer_value(j));
        break;
    case JSON_REAL:
        msgpack_pack_double(pk, json_real_value(j));
        break;
    case JSON_TRUE:
        msgpack_pack_true(pk);
        break;
    case JSON_FALSE:
        msgpack_pack_false(pk);
        break;
    case JSON_NULL:
        msgpack_pack_nil(pk);
        break;
    }
}

static void
pack_event_time(msgpack_packer *pk, int64_t time_ns)
{
    if (time_ns < 0) {
        time_ns = 0;
    }
    uint32_t sec = (uint32_t) (time_ns / 1000000000);
    uint32_t nsec = (uint32_t) (time_ns % 1000000000);
    uint8_t b[8] = {(uint8_t) (sec >> 24),  (uint8_t) (sec >> 16),
                    (uint8_t) (sec >> 8),   (uint8_t) sec,
                    (uint8_t) (nsec >> 24), (uint8_t) (nsec >> 16),
                    (uint8_t) (nsec >> 8),  (uint8_t) nsec};
    msgpack_pack_ext(pk, 8, 0);
    msgpack_pack_ext_body(pk, b, 8);
}

int
ff_encode_entry(struct dbuf *out, int64_t time_ns, json_t *record)
{
    if (!json_is_object(record)) {
        return -EINVAL;
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, dbuf_write_cb);
    msgpack_pack_array(&pk, 2);
    pack_event_time(&pk, time_ns);
    pack_json(&pk, record);
    return 0;
}

/* The options map that ends a Forward message. */
static void
pack_options(msgpack_packer *pk, size_t n, const char *chunk)
{
    msgpack_pack_map(pk, chunk ? 2 : 1);
    if (chunk) {
        pack_str(pk, "chunk");
        pack_str(pk, chunk);
    }
    pack_str(pk, "size");
    msgpack_pack_uint64(pk, n);
}

int
ff_encode_forward(struct dbuf *out, const char *tag,
                  const struct ff_entry *entries, size_t n, const char *chunk)
{
    for (size_t i = 0; i < n; i++) {
        if (!json_is_object(entries[i].record)) {
            return -EINVAL;
        }
    }
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, dbuf_write_cb);
    msgpack_pack_array(&pk, 3);
    pack_str(&pk, tag);
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < n; i++) {
        ff_encode_entry(out, entries[i].time_ns, entries[i].record);
    }
    pack_options(&pk, n, chunk);
    return 0;
}

void
ff_encode_forward_head(struct dbuf *out, const char *tag, size_t n)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, dbuf_write_cb);
    msgpack_pack_array(&pk, 3);
    pack_str(&pk, tag);
    msgpack_pack_array(&pk, n);
}

void
ff_encode_forward_tail(struct dbuf *out, size_t n, const char *chunk)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, dbuf_write_cb);
    pack_options(&pk, n, chunk);
}

void
ff_encode_ack(struct dbuf *out, const char *chunk)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, dbuf_write_cb);
    msgpack_pack_map(&pk, 1);
    pack_str(&pk, "ack");
    pack_str(&pk, chunk);
}

/* ---- bounds scanner ----------------------------------------------------- */

/* Scan one msgpack object at p[0..len). Returns its size, 0 when more
 * bytes are needed, -EBADMSG when it can never be valid. Only ext type 0
 * with 8 bytes (EventTime) is accepted. */
static long
mp_scan(const uint8_t *p, size_t len, unsigned depth, unsigned max_depth)
{
    if (len == 0) {
        return 0;
    }
    if (depth > max_depth) {
        return -EBADMSG;
    }
    uint8_t c = p[0];
    size_t hdr = 1, body = 0, children = 0;
#define NEED(n)          \
    do {                 \
        if (len < (n)) { \
            return 0;    \
        }                \
    } while (0)
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
        return 1;
    } else if (c >= 0x80 && c <= 0x8f) {
        children = 2 * (size_t) (c & 0x0f);
    } else if (c >= 0x90 && c <= 0x9f) {
        children = c & 0x0f;
    } else if (c >= 0xa0 && c <= 0xbf) {
        body = c & 0x1f;
    } else {
        switch (c) {
        case 0xc4:
        case 0xd9: /* bin8 / str8 */
            NEED(2);
            hdr = 2;
            body = p[1];
            break;
        case 0xc5:
        case 0xda: /* bin16 / str16 */
            NEED(3);
            hdr = 3;
            body = ((size_t) p[1] << 8) | p[2];
            break;
        case 0xc6:
        case 0xdb: /* bin32 / str32 */
            NEED(5);
            hdr = 5;
            body = ((size_t) p[1] << 24) | ((size_t) p[2] << 16) |
                   ((size_t) p[3] << 8) | p[4];
            break;
        case 0xca:
            body = 4;
            break;
        case 0xcb:
            body = 8;
            break;
        case 0xcc:
        case 0xd0:
            body = 1;
            break;
        case 0xcd:
        case 0xd1:
            body = 2;
            break;
        case 0xce:
        case 0xd2:
            body = 4;
            break;
        case 0xcf:
        case 0xd3:
            body = 8;
            break;
        case 0xd7: /* fixext8: the only ext we accept */
            NEED(2);
            if (p[1] != 0) {
                return -EBADMSG;
            }
            hdr = 2;
            body = 8;
            break;
        case 0xdc: /* array16 */
            NEED(3);
            hdr = 3;
            children = ((size_t) p[1] << 8) | p[2];
            break;
        case 0xdd: /* array32 */
            NEED(5);
            hdr = 5;
            children = ((size_t) p[1] << 24) | ((size_t) p[2] << 16) |
                       ((size_t) p[3] << 8) | p[4];
            break;
        case 0xde: /* map16 */
            NEED(3);
            hdr = 3;
            children = 2 * (((size_t) p[1] << 8) | p[2]);
            break;
        case 0xdf: /* map32 */
            NEED(5);
            hdr = 5;
            children = 2 * (((size_t) p[1] << 24) | ((size_t) p[2] << 16) |
                            ((size_t) p[3] << 8) | p[4]);
            break;
        default: /* 0xc1, other ext forms */
            return -EBADMSG;
        }
    }
#undef NEED
    if (children == 0) {
        return len >= hdr + body ? (long) (hdr + body) : 0;
    }
    size_t off = hdr;
    for (size_t i = 0; i < children; i++) {
        /* each child takes at least one byte */
        if (len - off < children - i) {
            return 0;
        }
        long r = mp_scan(p + off, len - off, depth + 1, max_depth);
        if (r <= 0) {
            return r;
        }
        off += (size_t) r;
    }
    return (long) off;
}

/* ---- decoder ------------------------------------------------------------ */

struct ff_event {
    int64_t time_ns;
    json_t *record;
};

struct ff_events {
    struct ff_event *v;
    size_t n, cap;
};

static void
events_push(struct ff_events *ev, int64_t t, json_t *rec)
{
    if (ev->n == ev->cap) {
        ev->cap = ev->cap ? 2 * ev->cap : 16;
        ev->v = xrealloc(ev->v, ev->cap * sizeof *ev->v);
    }
    ev->v[ev->n++] = (struct ff_event){t, rec};
}

static void
events_free(struct ff_events *ev)
{
    for (size_t i = 0; i < ev->n; i++) {
        json_decref(ev->v[i].record);
    }
    free(ev->v);
}

static int
derr(struct dpf_error *err, const char *what)
{
    dpf_error_set(err, 400, "BadRequest", "forward: %s", what);
    return -EBADMSG;
}

static json_t *
to_json(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return o->via.u64 > INT64_MAX ? json_real((double) o->via.u64)
                                      : json_integer((json_int_t) o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer(o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return isfinite(o->via.f64) ? json_real(o->via.f64) : json_null();
    case MSGPACK_OBJECT_STR:
        return json_stringn(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_BIN:
        return json_stringn(o->via.bin.ptr, o->via.bin.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            json_t *v = to_json(&o->via.array.ptr[i]);
            if (!v) {
                json_decref(a);
                return NULL;
            }
            json_array_append_new(a, v);
        }
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            json_t *v = NULL;
            if (k->type == MSGPACK_OBJECT_STR ||
                k->type == MSGPACK_OBJECT_BIN) {
                v = to_json(&o->via.map.ptr[i].val);
            }
            if (!v || json_object_setn_new(m, k->via.str.ptr, k->via.str.size,
                                           v) < 0) {
                json_decref(m);
                return NULL;
            }
        }
        return m;
    }
    default:
        return NULL; /* ext inside a record */
    }
}

static bool
is_str(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_STR || o->type == MSGPACK_OBJECT_BIN;
}

static bool
str_eq(const msgpack_object *o, const char *s)
{
    size_t n = strlen(s);
    return is_str(o) && o->via.str.size == n && !memcmp(o->via.str.ptr, s, n);
}

static int
get_time(const msgpack_object *o, int64_t *t)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        if (o->via.u64 > UINT32_MAX) {
            return -1;
        }
        *t = (int64_t) o->via.u64 * 1000000000;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_EXT && o->via.ext.type == 0 &&
        o->via.ext.size == 8) {
        const uint8_t *b = (const uint8_t *) o->via.ext.ptr;
        uint32_t sec = ((uint32_t) b[0] << 24) | ((uint32_t) b[1] << 16) |
                       ((uint32_t) b[2] << 8) | b[3];
        uint32_t nsec = ((uint32_t) b[4] << 24) | ((uint32_t) b[5] << 16) |
                        ((uint32_t) b[6] << 8) | b[7];
        if (nsec >= 1000000000) {
            return -1;
        }
        *t = (int64_t) sec * 1000000000 + nsec;
        return 0;
    }
    return -1;
}

/* One [time, record] entry. */
static int
take_entry(const msgpack_object *e, struct ff_events *ev, size_t max_entries,
           struct dpf_error *err)
{
    int64_t t;
    if (e->type != MSGPACK_OBJECT_ARRAY || e->via.array.size != 2) {
        return derr(err, "entry is not [time, record]");
    }
    if (get_time(&e->via.array.ptr[0], &t) < 0) {
        return derr(err, "bad event time (integer or EventTime ext 0)");
    }
    if (e->via.array.ptr[1].type != MSGPACK_OBJECT_MAP) {
        return derr(err, "record is not a map");
    }
    if (ev->n >= max_entries) {
        return derr(err, "too many entries in one frame");
    }
    json_t *rec = to_json(&e->via.array.ptr[1]);
    if (!rec) {
        return derr(err, "record has a non-string key, bad UTF-8 or an ext");
    }
    events_push(ev, t, rec);
    return 0;
}

/* gunzip (possibly several concatenated members), bounded by max. */
static int
gunzip(const uint8_t *in, size_t in_len, size_t max, struct dbuf *out)
{
    z_stream zs = {0};
    if (inflateInit2(&zs, 15 + 16) != Z_OK) {
        return -ENOMEM;
    }
    zs.next_in = (Bytef *) in;
    zs.avail_in = (uInt) in_len;
    uint8_t buf[16384];
    int rc = 0;
    for (;;) {
        zs.next_out = buf;
        zs.avail_out = sizeof buf;
        int zr = inflate(&zs, Z_NO_FLUSH);
        size_t got = sizeof buf - zs.avail_out;
        if (out->len + got > max) {
            rc = -EMSGSIZE;
            break;
        }
        dbuf_append(out, buf, got);
        if (zr == Z_STREAM_END) {
            if (zs.avail_in == 0) {
                break;
            }
            inflateReset(&zs); /* next gzip member */
            continue;
        }
        if (zr != Z_OK || (zs.avail_in == 0 && got == 0)) {
            rc = -EBADMSG;
            break;
        }
    }
    inflateEnd(&zs);
    return rc;
}

/* PackedForward payload: concatenated [time, record] entries. */
static int
take_packed(const uint8_t *p, size_t len, const struct ff_limits *lim,
            struct ff_events *ev, struct dpf_error *err)
{
    size_t off = 0;
    while (off < len) {
        long n = mp_scan(p + off, len - off, 0, lim->max_depth);
        if (n <= 0) {
            return derr(err, "packed entries are not complete msgpack");
        }
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t uoff = 0;
        int ur =
            msgpack_unpack_next(&u, (const char *) p + off, (size_t) n, &uoff);
        int rc = ur == MSGPACK_UNPACK_SUCCESS
                     ? take_entry(&u.data, ev, lim->max_entries, err)
                     : derr(err, "packed entry does not unpack");
        msgpack_unpacked_destroy(&u);
        if (rc < 0) {
            return rc;
        }
        off += (size_t) n;
    }
    return 0;
}

static int
take_options(const msgpack_object *o, struct ff_frame_info *info, int64_t *size,
             const msgpack_object **compressed, struct dpf_error *err)
{
    if (o->type != MSGPACK_OBJECT_MAP) {
        return derr(err, "option is not a map");
    }
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        const msgpack_object *v = &o->via.map.ptr[i].val;
        if (!is_str(k)) {
            return derr(err, "option key is not a string");
        }
        if (str_eq(k, "chunk")) {
            if (!is_str(v) || v->via.str.size == 0 ||
                v->via.str.size >= sizeof info->chunk) {
                return derr(err, "chunk must be a string of 1..127 bytes");
            }
            memcpy(info->chunk, v->via.str.ptr, v->via.str.size);
            info->chunk[v->via.str.size] = '\0';
        } else if (str_eq(k, "size")) {
            if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
                v->via.u64 > INT64_MAX) {
                return derr(err, "size must be a non-negative integer");
            }
            *size = (int64_t) v->via.u64;
        } else if (str_eq(k, "compressed")) {
            *compressed = v;
        }
    }
    return 0;
}

static int
decode_message(const msgpack_object *top, const struct ff_limits *lim,
               struct ff_events *ev, char *tag, struct ff_frame_info *info,
               struct dpf_error *err)
{
    if (top->type != MSGPACK_OBJECT_ARRAY || top->via.array.size < 2 ||
        top->via.array.size > 4) {
        return derr(err, "message is not an array of 2..4 elements");
    }
    const msgpack_object *a = top->via.array.ptr;
    size_t n = top->via.array.size;
    if (a[0].type != MSGPACK_OBJECT_STR || a[0].via.str.size == 0 ||
        a[0].via.str.size > FF_MAX_TAG ||
        memchr(a[0].via.str.ptr, '\0', a[0].via.str.size)) {
        return derr(err, "tag is not a string of 1..1024 bytes");
    }
    memcpy(tag, a[0].via.str.ptr, a[0].via.str.size);
    tag[a[0].via.str.size] = '\0';
    int64_t size = -1;
    const msgpack_object *compressed = NULL;
    int rc;
    switch (a[1].type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_EXT: { /* Message mode */
        int64_t t;
        if (n < 3) {
            return derr(err, "message mode needs [tag, time, record]");
        }
        if (n == 4 &&
            (rc = take_options(&a[3], info, &size, &compressed, err)) < 0) {
            return rc;
        }
        if (get_time(&a[1], &t) < 0) {
            return derr(err, "bad event time (integer or EventTime ext 0)");
        }
        if (a[2].type != MSGPACK_OBJECT_MAP) {
            return derr(err, "record is not a map");
        }
        json_t *rec = to_json(&a[2]);
        if (!rec) {
            return derr(err, "record has a non-string key, bad UTF-8 or an "
                             "ext");
        }
        events_push(ev, t, rec);
        break;
    }
    case MSGPACK_OBJECT_ARRAY: /* Forward mode */
        if (n == 4) {
            return derr(err, "forward mode takes [tag, entries, option]");
        }
        if (n == 3 &&
            (rc = take_options(&a[2], info, &size, &compressed, err)) < 0) {
            return rc;
        }
        if (compressed) {
            return derr(err, "compressed is only valid for packed entries");
        }
        for (uint32_t i = 0; i < a[1].via.array.size; i++) {
            if ((rc = take_entry(&a[1].via.array.ptr[i], ev, lim->max_entries,
                                 err)) < 0) {
                return rc;
            }
        }
        break;
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN: { /* (Compressed)PackedForward */
        if (n == 4) {
            return derr(err, "packed forward takes [tag, entries, option]");
        }
        if (n == 3 &&
            (rc = take_options(&a[2], info, &size, &compressed, err)) < 0) {
            return rc;
        }
        const uint8_t *p = (const uint8_t *) a[1].via.bin.ptr;
        size_t len = a[1].via.bin.size;
        if (compressed) {
            if (!str_eq(compressed, "gzip")) {
                return derr(err, "compressed must be \"gzip\"");
            }
            struct dbuf plain;
            dbuf_init(&plain);
            rc = gunzip(p, len, lim->max_frame, &plain);
            if (rc == 0) {
                rc = take_packed((const uint8_t *) plain.data, plain.len, lim,
                                 ev, err);
            } else {
                derr(err, rc == -EMSGSIZE ? "gzip payload exceeds the limit"
                                          : "bad gzip payload");
                rc = rc == -EMSGSIZE ? -EMSGSIZE : -EBADMSG;
            }
            dbuf_free(&plain);
        } else {
            rc = take_packed(p, len, lim, ev, err);
        }
        if (rc < 0) {
            return rc;
        }
        break;
    }
    default:
        return derr(err, "second element is not time, entries or packed "
                         "entries");
    }
    if (size >= 0 && (size_t) size != ev->n) {
        return derr(err, "size option does not match the entry count");
    }
    return 0;
}

long
ff_decode_frame(const void *buf, size_t len, const struct ff_limits *lim_in,
                ff_event_cb cb, void *aux, struct ff_frame_info *info,
                struct dpf_error *err)
{
    struct ff_limits lim = lim_in ? *lim_in : (struct ff_limits){0};
    struct ff_frame_info dummy;
    const uint8_t *p = buf;
    if (!lim.max_frame) {
        lim.max_frame = FF_DEFAULT_MAX_FRAME;
    }
    if (!lim.max_depth) {
        lim.max_depth = FF_DEFAULT_MAX_DEPTH;
    }
    if (!lim.max_entries) {
        lim.max_entries = 1000000;
    }
    if (!info) {
        info = &dummy;
    }
    memset(info, 0, sizeof *info);
    if (len == 0) {
        return 0;
    }
    if (p[0] == 0xc0) {
        info->heartbeat = true;
        return 1;
    }
    long n = mp_scan(p, DPF_MIN(len, lim.max_frame), 0, lim.max_depth);
    if (n < 0) {
        return derr(err, "malformed msgpack, unsupported ext or nesting "
                         "too deep");
    }
    if (n == 0) {
        if (len >= lim.max_frame) {
            dpf_error_set(err, 413, "TooLarge",
                          "forward: frame exceeds %zu bytes", lim.max_frame);
            return -EMSGSIZE;
        }
        return 0;
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (msgpack_unpack_next(&u, buf, (size_t) n, &off) !=
            MSGPACK_UNPACK_SUCCESS ||
        off != (size_t) n) {
        msgpack_unpacked_destroy(&u);
        return derr(err, "msgpack does not unpack");
    }
    struct ff_events ev = {0};
    char tag[FF_MAX_TAG + 1];
    int rc = decode_message(&u.data, &lim, &ev, tag, info, err);
    msgpack_unpacked_destroy(&u);
    if (rc < 0) {
        events_free(&ev);
        info->chunk[0] = '\0';
        return rc;
    }
    for (size_t i = 0; i < ev.n; i++) {
        if (cb) {
            cb(aux, tag, ev.v[i].time_ns, ev.v[i].record);
        }
    }
    info->n_events = ev.n;
    events_free(&ev);
    return n;
}

long
ff_scan_object(const void *buf, size_t len, unsigned max_depth)
{
    return mp_scan(buf, len, 0, max_depth);
}

long
ff_decode_ack(const void *buf, size_t len, char *chunk, size_t size)
{
    long n = mp_scan(buf, len, 0, 4);
    if (n <= 0) {
        return n;
    }
    if (size) {
        chunk[0] = '\0';
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (msgpack_unpack_next(&u, buf, (size_t) n, &off) ==
            MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < u.data.via.map.size; i++) {
            const msgpack_object *v = &u.data.via.map.ptr[i].val;
            if (str_eq(&u.data.via.map.ptr[i].key, "ack") && is_str(v) &&
                v->via.str.size < size) {
                memcpy(chunk, v->via.str.ptr, v->via.str.size);
                chunk[v->via.str.size] = '\0';
            }
        }
    }
    msgpack_unpacked_destroy(&u);
    return n;
}
