/* fluent-forward: Fluentd Forward protocol v1 codec, listener and client.
 * msgpack-c does the packing and object building; the bounds scanner in
 * front of it is ours (see the header). */
#include "lib/fluent-forward.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <msgpack.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include "lib/stream-server.h"

#define FF_MAX_TAG 1024

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

/* ---- listener ------------------------------------------------------------ */

/* Unsent acks beyond this mean the client does not read them: close it. */
#define FF_MAX_UNSENT_ACKS 65536

struct ff_server {
    struct ff_server_config cfg; /* copy (address not kept) */
    uint16_t port;               /* bound port */
    struct stream_server *ss;    /* accepts, reads, writes acks */
    uint64_t frames;             /* frames decoded (atomic) */
    uint64_t events;             /* events delivered (atomic) */
    uint64_t acks;               /* acks queued (atomic) */
    uint64_t errors;             /* bad frames, ack backlog (atomic) */
};

static void
stat_add(uint64_t *v, uint64_t n)
{
    __atomic_add_fetch(v, n, __ATOMIC_RELAXED);
}

static uint64_t
stat_get(const uint64_t *v)
{
    return __atomic_load_n(v, __ATOMIC_RELAXED);
}

/* stream-server on_data: decode every complete frame, queue the acks. */
static long
server_on_data(void *aux, struct stream_conn *c, void *user,
               const uint8_t *data, size_t len)
{
    struct ff_server *s = aux;
    (void) user;
    size_t off = 0;
    while (off < len) {
        struct ff_frame_info info;
        long n = ff_decode_frame(data + off, len - off, &s->cfg.limits,
                                 s->cfg.cb, s->cfg.aux, &info, NULL);
        if (n == 0) {
            break;
        }
        if (n < 0) {
            return STREAM_SERVER_ERROR;
        }
        off += (size_t) n;
        if (info.heartbeat) {
            continue;
        }
        stat_add(&s->frames, 1);
        stat_add(&s->events, info.n_events);
        if (info.chunk[0]) {
            struct dbuf ack;
            dbuf_init(&ack);
            ff_encode_ack(&ack, info.chunk);
            int rc = stream_conn_write(c, ack.data, ack.len);
            dbuf_free(&ack);
            if (rc < 0) {
                return STREAM_SERVER_ERROR; /* client does not read acks */
            }
            stat_add(&s->acks, 1);
        }
    }
    return (long) off;
}

static const struct stream_server_ops ff_server_ops = {
    .on_data = server_on_data,
};

struct ff_server *
ff_server_start(const struct ff_server_config *cfg, struct dpf_error *err)
{
    const char *addr = cfg->address ? cfg->address : "127.0.0.1";
    char port[8];
    snprintf(port, sizeof port, "%u", cfg->port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(addr, port, &hints, &ai);
    if (rc != 0) {
        dpf_error_set(err, 422, "Invalid",
                      "forward listener: cannot resolve address %s: %s", addr,
                      gai_strerror(rc));
        return NULL;
    }
    int fd =
        socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    }
    if (fd < 0 || bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
        listen(fd, 64) < 0) {
        dpf_error_set(err, 503, "ServiceUnavailable",
                      "forward listener: cannot listen on %s:%u: %s", addr,
                      cfg->port, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        freeaddrinfo(ai);
        return NULL;
    }
    freeaddrinfo(ai);
    struct ff_server *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    s->cfg.address = NULL;
    if (!s->cfg.limits.max_frame) {
        s->cfg.limits.max_frame = FF_DEFAULT_MAX_FRAME;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *) &ss, &sl);
    s->port = ntohs(ss.ss_family == AF_INET6
                        ? ((struct sockaddr_in6 *) &ss)->sin6_port
                        : ((struct sockaddr_in *) &ss)->sin_port);
    struct stream_server_config scfg = {
        .listen_fd = fd,
        .max_clients = cfg->max_clients ? cfg->max_clients : 64,
        .read_size = 64u * 1024,
        .read_rounds = 16,
        .read_max = s->cfg.limits.max_frame,
        .write_max = FF_MAX_UNSENT_ACKS,
        .ops = &ff_server_ops,
        .aux = s,
    };
    s->ss = stream_server_start(&scfg, "forward listener", err);
    if (!s->ss) {
        free(s);
        return NULL;
    }
    return s;
}

uint16_t
ff_server_port(const struct ff_server *s)
{
    return s->port;
}

void
ff_server_get_stats(const struct ff_server *s, struct ff_server_stats *st)
{
    struct stream_server_stats ss;
    stream_server_get_stats(s->ss, &ss);
    st->connections = ss.connections;
    st->frames = stat_get(&s->frames);
    st->events = stat_get(&s->events);
    st->acks = stat_get(&s->acks);
    st->errors = ss.errors + ss.rejected;
}

void
ff_server_stop(struct ff_server *s)
{
    if (!s) {
        return;
    }
    stream_server_stop(s->ss);
    free(s);
}

/* ---- client -------------------------------------------------------------- */

struct ff_qent {
    uint8_t *data; /* one encoded [time, record] entry */
    size_t len;    /* its length */
};

struct ff_client {
    char *host;               /* target */
    uint16_t port;            /* target port */
    char *tag;                /* message tag */
    bool require_ack;         /* ask for acks */
    unsigned ack_timeout_ms;  /* resend after */
    unsigned cap;             /* queue bound, records */
    size_t cap_bytes;         /* queue bound, bytes */
    unsigned batch;           /* records per message */
    unsigned backoff_min;     /* first reconnect delay */
    unsigned backoff_max;     /* reconnect delay cap */
    unsigned connect_timeout; /* TCP connect timeout */

    pthread_mutex_t mu;        /* guards queue, stop, stats */
    struct ff_qent *q;         /* ring of cap entries */
    unsigned q_head;           /* oldest entry */
    unsigned q_n;              /* entries queued */
    size_t q_bytes;            /* bytes queued */
    bool stop;                 /* stop requested */
    struct ff_client_stats st; /* counters */
    int wakefd;                /* eventfd: new data or stop */
    pthread_t th;              /* sender thread */

    /* sender thread only */
    int fd;              /* connection, -1 when down */
    struct dbuf msg;     /* the in-flight message */
    size_t msg_off;      /* bytes of msg written */
    size_t msg_n;        /* records in msg (0 = none in flight) */
    char chunk[64];      /* its chunk id */
    int64_t written_ms;  /* when msg was fully written */
    struct dbuf ackbuf;  /* bytes read from the peer */
    uint64_t chunk_seq;  /* chunk id counter */
    uint32_t chunk_salt; /* per-client random part of chunk ids */
};

static void
client_wake(struct ff_client *c)
{
    uint64_t one = 1;
    if (write(c->wakefd, &one, sizeof one) < 0) {
        /* only fails on overflow, which still leaves it readable */
    }
}

static void
client_drain_wake(struct ff_client *c)
{
    uint64_t v;
    if (read(c->wakefd, &v, sizeof v) < 0) {
        /* EAGAIN: nothing pending */
    }
}

int
ff_client_post(struct ff_client *c, int64_t time_ns, json_t *record)
{
    struct dbuf b;
    dbuf_init(&b);
    if (ff_encode_entry(&b, time_ns, record) < 0) {
        return -EINVAL;
    }
    struct ff_qent e;
    e.data = (uint8_t *) dbuf_steal(&b, &e.len);
    pthread_mutex_lock(&c->mu);
    bool was_empty = c->q_n == 0;
    while (c->q_n && (c->q_n == c->cap || c->q_bytes + e.len > c->cap_bytes)) {
        struct ff_qent *old = &c->q[c->q_head];
        c->q_bytes -= old->len;
        free(old->data);
        c->q_head = (c->q_head + 1) % c->cap;
        c->q_n--;
        c->st.dropped++;
    }
    if (e.len > c->cap_bytes) {
        c->st.dropped++;
        pthread_mutex_unlock(&c->mu);
        free(e.data);
        return 0;
    }
    c->q[(c->q_head + c->q_n) % c->cap] = e;
    c->q_n++;
    c->q_bytes += e.len;
    pthread_mutex_unlock(&c->mu);
    if (was_empty) {
        client_wake(c);
    }
    return 0;
}

/* Build the next message from the queue (sender thread). */
static bool
client_take_batch(struct ff_client *c)
{
    pthread_mutex_lock(&c->mu);
    unsigned n = DPF_MIN(c->q_n, c->batch);
    if (n == 0) {
        pthread_mutex_unlock(&c->mu);
        return false;
    }
    struct ff_qent *ents = xmalloc(n * sizeof *ents);
    for (unsigned i = 0; i < n; i++) {
        ents[i] = c->q[c->q_head];
        c->q_bytes -= ents[i].len;
        c->q_head = (c->q_head + 1) % c->cap;
    }
    c->q_n -= n;
    pthread_mutex_unlock(&c->mu);

    dbuf_free(&c->msg);
    dbuf_init(&c->msg);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &c->msg, dbuf_write_cb);
    msgpack_pack_array(&pk, 3);
    pack_str(&pk, c->tag);
    msgpack_pack_array(&pk, n);
    for (unsigned i = 0; i < n; i++) {
        dbuf_append(&c->msg, ents[i].data, ents[i].len);
        free(ents[i].data);
    }
    free(ents);
    if (c->require_ack) {
        snprintf(c->chunk, sizeof c->chunk, "dts-%08x-%016llx", c->chunk_salt,
                 (unsigned long long) ++c->chunk_seq);
        pack_options(&pk, n, c->chunk);
    } else {
        pack_options(&pk, n, NULL);
    }
    c->msg_off = 0;
    c->msg_n = n;
    c->written_ms = 0;
    return true;
}

static void
client_disconnect(struct ff_client *c)
{
    if (c->fd >= 0) {
        close(c->fd);
    }
    c->fd = -1;
    c->ackbuf.len = 0;
    c->msg_off = 0; /* an in-flight message is written again */
    c->written_ms = 0;
    pthread_mutex_lock(&c->mu);
    c->st.connected = false;
    pthread_mutex_unlock(&c->mu);
}

static void
client_count(struct ff_client *c, uint64_t *field, uint64_t n)
{
    pthread_mutex_lock(&c->mu);
    *field += n;
    pthread_mutex_unlock(&c->mu);
}

static int
client_connect(struct ff_client *c)
{
    char port[8];
    snprintf(port, sizeof port, "%u", c->port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(c->host, port, &hints, &ai) != 0) {
        return -EHOSTUNREACH;
    }
    int rc = -ECONNREFUSED;
    for (struct addrinfo *a = ai; a; a = a->ai_next) {
        int fd =
            socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 &&
            errno != EINPROGRESS) {
            rc = -errno;
            close(fd);
            continue;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (poll(&p, 1, (int) c->connect_timeout) != 1 ||
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
            rc = soerr ? -soerr : -ETIMEDOUT;
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        c->fd = fd;
        rc = 0;
        break;
    }
    freeaddrinfo(ai);
    return rc;
}

/* Parse acks from ackbuf; true when the in-flight chunk is acknowledged. */
static int
client_read_acks(struct ff_client *c)
{
    char buf[4096];
    for (;;) {
        ssize_t r = recv(c->fd, buf, sizeof buf, 0);
        if (r == 0) {
            return -EPIPE;
        }
        if (r < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                break;
            }
            return -errno;
        }
        if (c->ackbuf.len + (size_t) r > 65536) {
            return -EBADMSG;
        }
        dbuf_append(&c->ackbuf, buf, (size_t) r);
    }
    size_t off = 0;
    int rc = 0;
    while (off < c->ackbuf.len) {
        long n = mp_scan((const uint8_t *) c->ackbuf.data + off,
                         c->ackbuf.len - off, 0, 4);
        if (n == 0) {
            break;
        }
        if (n < 0) {
            rc = -EBADMSG;
            break;
        }
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t uoff = 0;
        if (msgpack_unpack_next(&u, c->ackbuf.data + off, (size_t) n, &uoff) ==
                MSGPACK_UNPACK_SUCCESS &&
            u.data.type == MSGPACK_OBJECT_MAP) {
            for (uint32_t i = 0; i < u.data.via.map.size; i++) {
                if (str_eq(&u.data.via.map.ptr[i].key, "ack") && c->msg_n &&
                    c->written_ms &&
                    str_eq(&u.data.via.map.ptr[i].val, c->chunk)) {
                    client_count(c, &c->st.acked, c->msg_n);
                    c->msg_n = 0;
                    dbuf_free(&c->msg);
                }
            }
        }
        msgpack_unpacked_destroy(&u);
        off += (size_t) n;
    }
    if (off) {
        memmove(c->ackbuf.data, c->ackbuf.data + off, c->ackbuf.len - off);
        c->ackbuf.len -= off;
    }
    return rc;
}

/* Write the in-flight message as far as the socket takes it. */
static int
client_write(struct ff_client *c)
{
    while (c->msg_off < c->msg.len) {
        ssize_t w = send(c->fd, c->msg.data + c->msg_off,
                         c->msg.len - c->msg_off, MSG_NOSIGNAL);
        if (w < 0) {
            return errno == EAGAIN || errno == EINTR ? 0 : -errno;
        }
        c->msg_off += (size_t) w;
    }
    if (!c->written_ms) {
        c->written_ms = time_mono_ms();
        client_count(c, &c->st.sent, c->msg_n);
        if (!c->require_ack) {
            c->msg_n = 0;
            dbuf_free(&c->msg);
        }
    }
    return 0;
}

static bool
client_stopping(struct ff_client *c)
{
    pthread_mutex_lock(&c->mu);
    bool s = c->stop;
    pthread_mutex_unlock(&c->mu);
    return s;
}

static void *
client_thread(void *arg)
{
    struct ff_client *c = arg;
    unsigned backoff = c->backoff_min;
    int64_t next_try = 0;
    int64_t stop_deadline = 0;
    for (;;) {
        int64_t now = time_mono_ms();
        bool stopping = client_stopping(c);
        if (stopping) {
            if (!stop_deadline) {
                stop_deadline = now + 1000;
            }
            /* last attempt: only while connected and within 1 s */
            if (c->fd < 0 || now >= stop_deadline) {
                break;
            }
            if (!c->msg_n && !client_take_batch(c)) {
                break;
            }
        }
        if (c->fd < 0) {
            if (now < next_try) {
                struct pollfd p = {.fd = c->wakefd, .events = POLLIN};
                poll(&p, 1, (int) (next_try - now));
                client_drain_wake(c);
                continue;
            }
            if (client_connect(c) < 0) {
                client_count(c, &c->st.errors, 1);
                next_try = time_mono_ms() + backoff;
                backoff = DPF_MIN(backoff * 2, c->backoff_max);
                continue;
            }
            backoff = c->backoff_min;
            pthread_mutex_lock(&c->mu);
            c->st.connected = true;
            pthread_mutex_unlock(&c->mu);
            if (c->msg_n) {
                client_count(c, &c->st.resent, c->msg_n);
            }
        }
        if (!c->msg_n) {
            client_take_batch(c);
        }
        if (c->msg_n && client_write(c) < 0) {
            client_count(c, &c->st.errors, 1);
            client_disconnect(c);
            continue;
        }
        if (c->msg_n == 0 && client_take_batch(c)) {
            continue; /* more queued: write it at once */
        }
        int timeout = -1;
        if (c->msg_n && c->written_ms) {
            int64_t due = c->written_ms + c->ack_timeout_ms;
            now = time_mono_ms();
            if (now >= due) {
                /* no ack in time: reconnect and send the chunk again */
                client_count(c, &c->st.errors, 1);
                client_disconnect(c);
                continue;
            }
            timeout = (int) (due - now);
        }
        if (stopping) {
            timeout = (int) DPF_MAX(0, stop_deadline - time_mono_ms());
        }
        struct pollfd p[2] = {
            {.fd = c->wakefd, .events = POLLIN},
            {.fd = c->fd,
             .events =
                 (short) (POLLIN |
                          (c->msg_n && c->msg_off < c->msg.len ? POLLOUT : 0))},
        };
        if (poll(p, 2, timeout) < 0 && errno != EINTR) {
            break;
        }
        if (p[0].revents) {
            client_drain_wake(c);
        }
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            if (client_read_acks(c) < 0) {
                client_count(c, &c->st.errors, 1);
                client_disconnect(c);
            }
        }
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    return NULL;
}

struct ff_client *
ff_client_start(const struct ff_client_config *cfg, struct dpf_error *err)
{
    if (!cfg->host || !*cfg->host) {
        dpf_error_set(err, 422, "Invalid", "forward client: host is required");
        return NULL;
    }
    const char *tag = cfg->tag ? cfg->tag : "doca_telemetry";
    if (!*tag || strlen(tag) > FF_MAX_TAG) {
        dpf_error_set(err, 422, "Invalid",
                      "forward client: tag must be 1..%d characters",
                      FF_MAX_TAG);
        return NULL;
    }
    struct ff_client *c = xcalloc(1, sizeof *c);
    c->host = xstrdup(cfg->host);
    c->port = cfg->port ? cfg->port : FF_DEFAULT_CLIENT_PORT;
    c->tag = xstrdup(tag);
    c->require_ack = cfg->require_ack;
    c->ack_timeout_ms = cfg->ack_timeout_ms ? cfg->ack_timeout_ms : 5000;
    c->cap = cfg->buffer_records ? cfg->buffer_records : 10000;
    c->cap_bytes = cfg->buffer_bytes ? cfg->buffer_bytes : 16u << 20;
    c->batch = cfg->batch_records ? cfg->batch_records : 1000;
    c->backoff_min = cfg->backoff_min_ms ? cfg->backoff_min_ms : 100;
    c->backoff_max = cfg->backoff_max_ms ? cfg->backoff_max_ms : 30000;
    if (c->backoff_max < c->backoff_min) {
        c->backoff_max = c->backoff_min;
    }
    c->connect_timeout =
        cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 3000;
    c->q = xcalloc(c->cap, sizeof *c->q);
    c->fd = -1;
    c->chunk_salt = (uint32_t) (time_wall_ns() ^ (getpid() << 16));
    dbuf_init(&c->msg);
    dbuf_init(&c->ackbuf);
    pthread_mutex_init(&c->mu, NULL);
    c->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->wakefd < 0 || pthread_create(&c->th, NULL, client_thread, c)) {
        dpf_error_set(err, 500, "InternalError",
                      "forward client: cannot start sender thread");
        if (c->wakefd >= 0) {
            close(c->wakefd);
        }
        free(c->q);
        free(c->host);
        free(c->tag);
        free(c);
        return NULL;
    }
    return c;
}

void
ff_client_get_stats(struct ff_client *c, struct ff_client_stats *st)
{
    pthread_mutex_lock(&c->mu);
    *st = c->st;
    st->queued = c->q_n;
    pthread_mutex_unlock(&c->mu);
}

void
ff_client_stop(struct ff_client *c)
{
    if (!c) {
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_mutex_unlock(&c->mu);
    client_wake(c);
    pthread_join(c->th, NULL);
    for (unsigned i = 0; i < c->q_n; i++) {
        free(c->q[(c->q_head + i) % c->cap].data);
    }
    free(c->q);
    dbuf_free(&c->msg);
    dbuf_free(&c->ackbuf);
    close(c->wakefd);
    pthread_mutex_destroy(&c->mu);
    free(c->host);
    free(c->tag);
    free(c);
}
