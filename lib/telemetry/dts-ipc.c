/* dts-ipc: codec of the exporter-library <-> dts wire protocol. */
#include "lib/telemetry/dts-ipc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bounds on a declared type beyond the header's: an event must fit in a
 * frame, a string or array field stays reasonable. */
#define DTS_IPC_MAX_EVENT 65536
#define DTS_IPC_MAX_COUNT 4096

/* ---- little-endian helpers --------------------------------------------- */

static void
put_u8(struct dbuf *b, uint8_t v)
{
    dbuf_append(b, &v, 1);
}

static void
put_u16(struct dbuf *b, uint16_t v)
{
    uint8_t p[2] = {(uint8_t) v, (uint8_t) (v >> 8)};
    dbuf_append(b, p, 2);
}

static void
put_u32(struct dbuf *b, uint32_t v)
{
    uint8_t p[4];
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t) (v >> (8 * i));
    }
    dbuf_append(b, p, 4);
}

static void
put_u64(struct dbuf *b, uint64_t v)
{
    uint8_t p[8];
    for (int i = 0; i < 8; i++) {
        p[i] = (uint8_t) (v >> (8 * i));
    }
    dbuf_append(b, p, 8);
}

static void
put_str(struct dbuf *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n > 0xffff) {
        n = 0xffff;
    }
    put_u16(b, (uint16_t) n);
    dbuf_append(b, s ? s : "", n);
}

static uint16_t
get_u16(const uint8_t *p)
{
    return (uint16_t) (p[0] | (p[1] << 8));
}

static uint32_t
get_u32(const uint8_t *p)
{
    return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) |
           ((uint32_t) p[3] << 24);
}

static uint64_t
get_u64(const uint8_t *p)
{
    return (uint64_t) get_u32(p) | ((uint64_t) get_u32(p + 4) << 32);
}

/* Reserve a frame header; returns its offset for frame_end(). */
static size_t
frame_begin(struct dbuf *b, enum dts_ipc_type type)
{
    size_t off = b->len;
    put_u32(b, 0);
    put_u8(b, DTS_IPC_VERSION);
    put_u8(b, (uint8_t) type);
    put_u16(b, 0);
    return off;
}

static void
frame_end(struct dbuf *b, size_t off)
{
    uint32_t len = (uint32_t) (b->len - off);
    for (int i = 0; i < 4; i++) {
        b->data[off + i] = (char) (len >> (8 * i));
    }
}

/* ---- names and types --------------------------------------------------- */

static const struct {
    const char *name;
    uint32_t size;
} field_types[] = {
    [DTS_IPC_FIELD_U8] = {"u8", 1},
    [DTS_IPC_FIELD_U16] = {"u16", 2},
    [DTS_IPC_FIELD_U32] = {"u32", 4},
    [DTS_IPC_FIELD_U64] = {"u64", 8},
    [DTS_IPC_FIELD_I8] = {"i8", 1},
    [DTS_IPC_FIELD_I16] = {"i16", 2},
    [DTS_IPC_FIELD_I32] = {"i32", 4},
    [DTS_IPC_FIELD_I64] = {"i64", 8},
    [DTS_IPC_FIELD_FLOAT] = {"float", 4},
    [DTS_IPC_FIELD_DOUBLE] = {"double", 8},
    [DTS_IPC_FIELD_STRING] = {"string", 1},
    [DTS_IPC_FIELD_IP4] = {"ip4", 4},
    [DTS_IPC_FIELD_IP6] = {"ip6", 16},
    [DTS_IPC_FIELD_MAC] = {"mac", 6},
    [DTS_IPC_FIELD_TIMESTAMP] = {"timestamp", 8},
};

const char *
dts_ipc_field_type_name(unsigned type)
{
    if (type == 0 || type >= ARRAY_SIZE(field_types)) {
        return NULL;
    }
    return field_types[type].name;
}

/* Identifier: [A-Za-z0-9_], 1..63 characters. */
static bool
ident_ok(const char *s, size_t n)
{
    if (n == 0 || n > 63) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_')) {
            return false;
        }
    }
    return true;
}

/* Counter name: identifier characters plus ':' '.' '-', 1..127. */
static bool
counter_name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= DTS_IPC_MAX_NAME) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_' || c == ':' || c == '.' ||
              c == '-')) {
            return false;
        }
    }
    return true;
}

/* Printable ASCII, 0..127 characters (source id/tag). */
static bool
text_ok(const char *s, size_t n)
{
    if (n >= DTS_IPC_MAX_NAME) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

bool
dts_ipc_label_name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= DTS_IPC_MAX_LABEL_NAME || (s[0] >= '0' && s[0] <= '9') ||
        (n >= 2 && s[0] == '_' && s[1] == '_') || !strcmp(s, "source_id") ||
        !strcmp(s, "source_tag")) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '_')) {
            return false;
        }
    }
    return true;
}

bool
dts_ipc_label_value_ok(const char *s, size_t n)
{
    if (n >= DTS_IPC_MAX_LABEL_VALUE || !utf8_valid(s, n)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        if (c < 0x20 || c == 0x7f) {
            return false;
        }
    }
    return true;
}

/* ---- schema ------------------------------------------------------------ */

struct dts_ipc_schema *
dts_ipc_schema_create(const char *name)
{
    struct dts_ipc_schema *s = calloc(1, sizeof *s);
    if (!s) {
        return NULL;
    }
    snprintf(s->name, sizeof s->name, "%s", name ? name : "default");
    return s;
}

void
dts_ipc_schema_free(struct dts_ipc_schema *s)
{
    if (!s) {
        return;
    }
    for (unsigned i = 0; i < s->n_types; i++) {
        free(s->types[i].fields);
    }
    free(s->types);
    free(s);
}

int
dts_ipc_schema_add_type(struct dts_ipc_schema *s, const char *name,
                        const struct dts_ipc_field_decl *fields, size_t n,
                        struct dpf_error *err)
{
    if (!name || !ident_ok(name, strlen(name))) {
        dpf_error_set(err, 422, "Invalid",
                      "event type name \"%s\": expected 1..63 characters "
                      "[A-Za-z0-9_]",
                      name ? name : "");
        return -EINVAL;
    }
    if (s->n_types >= DTS_IPC_MAX_TYPES) {
        dpf_error_set(err, 422, "Invalid", "schema %s: more than %d types",
                      s->name, DTS_IPC_MAX_TYPES);
        return -E2BIG;
    }
    for (unsigned i = 0; i < s->n_types; i++) {
        if (!strcmp(s->types[i].name, name)) {
            dpf_error_set(err, 409, "AlreadyExists",
                          "event type %s declared twice", name);
            return -EEXIST;
        }
    }
    if (n == 0 || n > DTS_IPC_MAX_FIELDS) {
        dpf_error_set(err, 422, "Invalid",
                      "event type %s: expected 1..%d fields, got %zu", name,
                      DTS_IPC_MAX_FIELDS, n);
        return -EINVAL;
    }
    struct dts_ipc_field *f = calloc(n, sizeof *f);
    if (!f) {
        dpf_error_set(err, 500, "InternalError", "event type %s: out of memory",
                      name);
        return -ENOMEM;
    }
    uint32_t off = 0;
    for (size_t i = 0; i < n; i++) {
        const struct dts_ipc_field_decl *in = &fields[i];
        if (!in->name || !ident_ok(in->name, strlen(in->name))) {
            dpf_error_set(err, 422, "Invalid",
                          "event type %s field %zu: bad name (expected "
                          "1..63 characters [A-Za-z0-9_])",
                          name, i);
            free(f);
            return -EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (!strcmp(f[j].name, in->name)) {
                dpf_error_set(err, 422, "Invalid",
                              "event type %s: field %s declared twice", name,
                              in->name);
                free(f);
                return -EINVAL;
            }
        }
        if (!dts_ipc_field_type_name((unsigned) in->type)) {
            dpf_error_set(err, 422, "Invalid",
                          "event type %s field %s: unknown type %d", name,
                          in->name, (int) in->type);
            free(f);
            return -EINVAL;
        }
        if (in->count == 0 || in->count > DTS_IPC_MAX_COUNT) {
            dpf_error_set(err, 422, "Invalid",
                          "event type %s field %s: count must be 1..%d", name,
                          in->name, DTS_IPC_MAX_COUNT);
            free(f);
            return -EINVAL;
        }
        snprintf(f[i].name, sizeof f[i].name, "%s", in->name);
        f[i].type = (uint8_t) in->type;
        f[i].count = in->count;
        f[i].offset = off;
        f[i].size = field_types[in->type].size * in->count;
        off += f[i].size;
        if (off > DTS_IPC_MAX_EVENT) {
            dpf_error_set(err, 422, "Invalid",
                          "event type %s: events larger than %d bytes", name,
                          DTS_IPC_MAX_EVENT);
            free(f);
            return -EINVAL;
        }
    }
    struct dts_ipc_evtype *types =
        realloc(s->types, (s->n_types + 1) * sizeof *s->types);
    if (!types) {
        dpf_error_set(err, 500, "InternalError", "event type %s: out of memory",
                      name);
        free(f);
        return -ENOMEM;
    }
    s->types = types;
    struct dts_ipc_evtype *t = &s->types[s->n_types];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->n_fields = (unsigned) n;
    t->fields = f;
    t->size = off;
    return (int) s->n_types++;
}

json_t *
dts_ipc_schema_to_json(const struct dts_ipc_schema *s)
{
    json_t *types = json_array();
    for (unsigned i = 0; i < s->n_types; i++) {
        const struct dts_ipc_evtype *t = &s->types[i];
        json_t *fields = json_array();
        for (unsigned k = 0; k < t->n_fields; k++) {
            const struct dts_ipc_field *f = &t->fields[k];
            json_array_append_new(
                fields, json_pack("{s:s, s:s, s:i}", "name", f->name, "type",
                                  dts_ipc_field_type_name(f->type), "count",
                                  (int) f->count));
        }
        json_array_append_new(types, json_pack("{s:s, s:i, s:o}", "name",
                                               t->name, "size", (int) t->size,
                                               "fields", fields));
    }
    return json_pack("{s:s, s:o}", "name", s->name, "types", types);
}

static int
type_by_name(const char *name)
{
    for (unsigned i = 1; i < ARRAY_SIZE(field_types); i++) {
        if (!strcmp(field_types[i].name, name)) {
            return (int) i;
        }
    }
    return -1;
}

struct dts_ipc_schema *
dts_ipc_schema_from_json(const json_t *j, struct dpf_error *err)
{
    const char *name = json_string_value(json_object_get(j, "name"));
    json_t *types = json_object_get(j, "types");
    if (!name || !json_is_array(types)) {
        dpf_error_set(err, 422, "Invalid",
                      "schema: expected {\"name\": string, \"types\": []}");
        return NULL;
    }
    struct dts_ipc_schema *s = dts_ipc_schema_create(name);
    if (!s) {
        dpf_error_set(err, 500, "InternalError", "schema: out of memory");
        return NULL;
    }
    size_t i;
    json_t *t;
    json_array_foreach(types, i, t)
    {
        const char *tname = json_string_value(json_object_get(t, "name"));
        json_t *fields = json_object_get(t, "fields");
        size_t nf = json_array_size(fields);
        if (!tname || nf == 0 || nf > DTS_IPC_MAX_FIELDS) {
            dpf_error_set(err, 422, "Invalid",
                          "schema types[%zu]: expected name and 1..%d fields",
                          i, DTS_IPC_MAX_FIELDS);
            dts_ipc_schema_free(s);
            return NULL;
        }
        struct dts_ipc_field_decl *f = xcalloc(nf, sizeof *f);
        for (size_t k = 0; k < nf; k++) {
            json_t *fj = json_array_get(fields, k);
            const char *ty = json_string_value(json_object_get(fj, "type"));
            json_int_t cnt = json_integer_value(json_object_get(fj, "count"));
            f[k].name = json_string_value(json_object_get(fj, "name"));
            f[k].type = (enum dts_ipc_field_type)(ty ? type_by_name(ty) : -1);
            f[k].count =
                (cnt > 0 && cnt <= DTS_IPC_MAX_COUNT) ? (uint16_t) cnt : 0;
        }
        int rc = dts_ipc_schema_add_type(s, tname, f, nf, err);
        free(f);
        if (rc < 0) {
            dts_ipc_schema_free(s);
            return NULL;
        }
    }
    return s;
}

/* ---- event to JSON ----------------------------------------------------- */

static json_t *
text_value(const uint8_t *p, size_t n)
{
    size_t len = strnlen((const char *) p, n);
    json_t *v = json_stringn((const char *) p, len);
    if (v) {
        return v;
    }
    /* Not UTF-8: keep ASCII, replace the rest. */
    char *tmp = xmalloc(len + 1);
    for (size_t i = 0; i < len; i++) {
        tmp[i] = p[i] < 0x80 ? (char) p[i] : '?';
    }
    v = json_stringn(tmp, len);
    free(tmp);
    return v;
}

static json_t *
real_value(double d)
{
    return isfinite(d) ? json_real(d) : json_null();
}

static json_t *
element_value(unsigned type, const uint8_t *p)
{
    char buf[64];
    uint32_t u32;
    uint64_t u64;
    float fl;
    double db;
    switch (type) {
    case DTS_IPC_FIELD_U8:
        return json_integer(p[0]);
    case DTS_IPC_FIELD_U16:
        return json_integer(get_u16(p));
    case DTS_IPC_FIELD_U32:
        return json_integer(get_u32(p));
    case DTS_IPC_FIELD_U64:
    case DTS_IPC_FIELD_TIMESTAMP:
        u64 = get_u64(p);
        return u64 > INT64_MAX ? json_real((double) u64)
                               : json_integer((json_int_t) u64);
    case DTS_IPC_FIELD_I8:
        return json_integer((int8_t) p[0]);
    case DTS_IPC_FIELD_I16:
        return json_integer((int16_t) get_u16(p));
    case DTS_IPC_FIELD_I32:
        return json_integer((int32_t) get_u32(p));
    case DTS_IPC_FIELD_I64:
        return json_integer((json_int_t) get_u64(p));
    case DTS_IPC_FIELD_FLOAT:
        u32 = get_u32(p);
        memcpy(&fl, &u32, 4);
        return real_value(fl);
    case DTS_IPC_FIELD_DOUBLE:
        u64 = get_u64(p);
        memcpy(&db, &u64, 8);
        return real_value(db);
    case DTS_IPC_FIELD_IP4:
        inet_ntop(AF_INET, p, buf, sizeof buf);
        return json_string(buf);
    case DTS_IPC_FIELD_IP6:
        inet_ntop(AF_INET6, p, buf, sizeof buf);
        return json_string(buf);
    case DTS_IPC_FIELD_MAC:
        snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", p[0], p[1],
                 p[2], p[3], p[4], p[5]);
        return json_string(buf);
    default:
        return json_null();
    }
}

json_t *
dts_ipc_event_to_json(const struct dts_ipc_evtype *t, const uint8_t *data)
{
    json_t *o = json_object();
    for (unsigned i = 0; i < t->n_fields; i++) {
        const struct dts_ipc_field *f = &t->fields[i];
        const uint8_t *p = data + f->offset;
        json_t *v;
        if (f->type == DTS_IPC_FIELD_STRING) {
            v = text_value(p, f->count);
        } else if (f->count == 1) {
            v = element_value(f->type, p);
        } else {
            uint32_t esz = field_types[f->type].size;
            v = json_array();
            for (unsigned k = 0; k < f->count; k++) {
                json_array_append_new(v, element_value(f->type, p + k * esz));
            }
        }
        json_object_set_new(o, f->name, v);
    }
    return o;
}

/* ---- encoders ---------------------------------------------------------- */

/* Every encoder first reserves the whole frame with dbuf_try_reserve(), so
 * the appends that follow never allocate: an encoder either appends a
 * complete frame or returns -ENOMEM and leaves out unchanged. */

/* Bytes put_str() writes for s. */
static size_t
str_len(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return 2 + (n > 0xffff ? 0xffff : n);
}

int
dts_ipc_encode_hello(struct dbuf *out, const struct dts_ipc_hello *h)
{
    size_t len =
        DTS_IPC_HDR_LEN + 12 + str_len(h->source_id) + str_len(h->source_tag);
    if (dbuf_try_reserve(out, len) < 0) {
        return -ENOMEM;
    }
    size_t off = frame_begin(out, DTS_IPC_HELLO);
    put_u32(out, DTS_IPC_MAGIC);
    put_u16(out, h->proto ? h->proto : DTS_IPC_VERSION);
    put_u16(out, 1); /* flags: bit 0 = little-endian events */
    put_u32(out, h->pid);
    put_str(out, h->source_id);
    put_str(out, h->source_tag);
    frame_end(out, off);
    return 0;
}

int
dts_ipc_encode_schema(struct dbuf *out, const struct dts_ipc_schema *s)
{
    size_t len = DTS_IPC_HDR_LEN + str_len(s->name) + 2;
    for (unsigned i = 0; i < s->n_types; i++) {
        const struct dts_ipc_evtype *t = &s->types[i];
        len += str_len(t->name) + 2;
        for (unsigned k = 0; k < t->n_fields; k++) {
            len += str_len(t->fields[k].name) + 4;
        }
    }
    if (dbuf_try_reserve(out, len) < 0) {
        return -ENOMEM;
    }
    size_t off = frame_begin(out, DTS_IPC_SCHEMA);
    put_str(out, s->name);
    put_u16(out, (uint16_t) s->n_types);
    for (unsigned i = 0; i < s->n_types; i++) {
        const struct dts_ipc_evtype *t = &s->types[i];
        put_str(out, t->name);
        put_u16(out, (uint16_t) t->n_fields);
        for (unsigned k = 0; k < t->n_fields; k++) {
            put_str(out, t->fields[k].name);
            put_u8(out, t->fields[k].type);
            put_u8(out, 0);
            put_u16(out, t->fields[k].count);
        }
    }
    frame_end(out, off);
    return 0;
}

int
dts_ipc_encode_events(struct dbuf *out, uint16_t type_index, const void *events,
                      uint32_t size, uint32_t count)
{
    if (dbuf_try_reserve(out, DTS_IPC_HDR_LEN + 8 + (size_t) size * count) <
        0) {
        return -ENOMEM;
    }
    size_t off = frame_begin(out, DTS_IPC_EVENT);
    put_u16(out, type_index);
    put_u16(out, 0);
    put_u32(out, count);
    dbuf_append(out, events, (size_t) size * count);
    frame_end(out, off);
    return 0;
}

int
dts_ipc_encode_counters(struct dbuf *out, int64_t time_ns,
                        const struct dts_ipc_counter *c, size_t n)
{
    size_t len = DTS_IPC_HDR_LEN + 12;
    for (size_t i = 0; i < n; i++) {
        len += str_len(c[i].name) + 9;
        if (c[i].n_labels) {
            len += 1;
            for (unsigned k = 0; k < c[i].n_labels; k++) {
                len += str_len(c[i].labels[k].name) +
                       str_len(c[i].labels[k].value);
            }
        }
    }
    if (dbuf_try_reserve(out, len) < 0) {
        return -ENOMEM;
    }
    size_t off = frame_begin(out, DTS_IPC_COUNTER);
    put_u64(out, (uint64_t) time_ns);
    put_u16(out, (uint16_t) n);
    put_u16(out, 0);
    for (size_t i = 0; i < n; i++) {
        put_str(out, c[i].name);
        put_u8(out, (uint8_t) (c[i].kind |
                               (c[i].n_labels ? DTS_IPC_KIND_LABELS : 0)));
        if (c[i].kind == DTS_IPC_GAUGE_F64) {
            uint64_t bits;
            memcpy(&bits, &c[i].f64, 8);
            put_u64(out, bits);
        } else {
            put_u64(out, c[i].u64);
        }
        if (c[i].n_labels) {
            put_u8(out, (uint8_t) c[i].n_labels);
            for (unsigned k = 0; k < c[i].n_labels; k++) {
                put_str(out, c[i].labels[k].name);
                put_str(out, c[i].labels[k].value);
            }
        }
    }
    frame_end(out, off);
    return 0;
}

int
dts_ipc_encode_netflow(struct dbuf *out, const struct nf_flow *f, size_t n)
{
    if (n > (SIZE_MAX / 2) / DTS_IPC_NETFLOW_RECORD_LEN ||
        dbuf_try_reserve(out, DTS_IPC_HDR_LEN + 8 +
                                  n * DTS_IPC_NETFLOW_RECORD_LEN) < 0) {
        return -ENOMEM;
    }
    size_t off = frame_begin(out, DTS_IPC_NETFLOW);
    put_u32(out, (uint32_t) n);
    put_u32(out, 0);
    for (size_t i = 0; i < n; i++) {
        put_u8(out, f[i].family);
        put_u8(out, f[i].protocol);
        put_u8(out, f[i].tcp_flags);
        put_u8(out, 0);
        put_u16(out, f[i].src_port);
        put_u16(out, f[i].dst_port);
        put_u32(out, f[i].in_if);
        put_u32(out, f[i].out_if);
        dbuf_append(out, f[i].src, 16);
        dbuf_append(out, f[i].dst, 16);
        put_u64(out, f[i].bytes);
        put_u64(out, f[i].packets);
        put_u64(out, f[i].start_ms);
        put_u64(out, f[i].end_ms);
    }
    frame_end(out, off);
    return 0;
}

int
dts_ipc_encode_bye(struct dbuf *out)
{
    if (dbuf_try_reserve(out, DTS_IPC_HDR_LEN) < 0) {
        return -ENOMEM;
    }
    size_t off = frame_begin(out, DTS_IPC_BYE);
    frame_end(out, off);
    return 0;
}

/* ---- session decoder --------------------------------------------------- */

struct dts_ipc_session {
    struct dts_ipc_handlers h;     /* callbacks */
    void *aux;                     /* their argument */
    size_t max_frame;              /* frame bound */
    uint8_t *pending;              /* partial frame bytes */
    size_t pending_len;            /* bytes in pending */
    size_t pending_cap;            /* allocated */
    bool have_hello;               /* HELLO seen */
    bool done;                     /* BYE seen */
    int failed;                    /* first error (negative errno) or 0 */
    uint64_t frames;               /* frames decoded */
    struct dts_ipc_hello hello;    /* the sender */
    struct dts_ipc_schema *schema; /* the sender's schema, or NULL */
};

/* A bounded reader over one frame body. */
struct rd {
    const uint8_t *p; /* next byte */
    size_t left;      /* bytes left */
    bool bad;         /* ran past the end */
};

static const uint8_t *
rd_take(struct rd *r, size_t n)
{
    if (r->bad || n > r->left) {
        r->bad = true;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

static uint8_t
rd_u8(struct rd *r)
{
    const uint8_t *p = rd_take(r, 1);
    return p ? p[0] : 0;
}

static uint16_t
rd_u16(struct rd *r)
{
    const uint8_t *p = rd_take(r, 2);
    return p ? get_u16(p) : 0;
}

static uint32_t
rd_u32(struct rd *r)
{
    const uint8_t *p = rd_take(r, 4);
    return p ? get_u32(p) : 0;
}

static uint64_t
rd_u64(struct rd *r)
{
    const uint8_t *p = rd_take(r, 8);
    return p ? get_u64(p) : 0;
}

/* A string into a NUL-terminated buffer; false if too long or truncated. */
static bool
rd_str(struct rd *r, char *dst, size_t cap, size_t *len)
{
    uint16_t n = rd_u16(r);
    const uint8_t *p = rd_take(r, n);
    if (!p || n >= cap) {
        r->bad = true;
        return false;
    }
    memcpy(dst, p, n);
    dst[n] = '\0';
    *len = n;
    return true;
}

static int
fail(struct dts_ipc_session *s, int rc, struct dpf_error *err,
     const char *frame, const char *what)
{
    s->failed = rc;
    dpf_error_set(err, 400, "BadRequest", "dts-ipc %s: %s", frame, what);
    return rc;
}

static int
decode_hello(struct dts_ipc_session *s, struct rd *r, struct dpf_error *err)
{
    struct dts_ipc_hello h = {0};
    size_t n1 = 0, n2 = 0;
    uint32_t magic = rd_u32(r);
    uint16_t ver = rd_u16(r);
    uint16_t flags = rd_u16(r);
    h.pid = rd_u32(r);
    if (!rd_str(r, h.source_id, sizeof h.source_id, &n1) ||
        !rd_str(r, h.source_tag, sizeof h.source_tag, &n2) || r->left) {
        return fail(s, -EBADMSG, err, "HELLO", "bad length");
    }
    if (magic != DTS_IPC_MAGIC) {
        return fail(s, -EBADMSG, err, "HELLO", "bad magic");
    }
    if (ver < DTS_IPC_PROTO_MIN || ver > DTS_IPC_PROTO_MAX) {
        return fail(s, -EPROTONOSUPPORT, err, "HELLO",
                    "unsupported protocol version");
    }
    h.proto = ver;
    if (!(flags & 1)) {
        return fail(s, -EPROTONOSUPPORT, err, "HELLO",
                    "big-endian events are not supported");
    }
    if (!text_ok(h.source_id, n1) || !text_ok(h.source_tag, n2)) {
        return fail(s, -EBADMSG, err, "HELLO",
                    "source id/tag must be printable ASCII");
    }
    s->hello = h;
    s->have_hello = true;
    if (s->h.on_hello) {
        s->h.on_hello(s->aux, &s->hello);
    }
    return 0;
}

static int
decode_schema(struct dts_ipc_session *s, struct rd *r, struct dpf_error *err)
{
    char name[DTS_IPC_MAX_NAME];
    size_t n;
    if (!rd_str(r, name, sizeof name, &n) || !ident_ok(name, n)) {
        return fail(s, -EBADMSG, err, "SCHEMA", "bad schema name");
    }
    uint16_t n_types = rd_u16(r);
    if (n_types > DTS_IPC_MAX_TYPES) {
        return fail(s, -EBADMSG, err, "SCHEMA", "too many types");
    }
    struct dts_ipc_schema *sc = dts_ipc_schema_create(name);
    if (!sc) {
        return fail(s, -ENOMEM, err, "SCHEMA", "out of memory");
    }
    struct dts_ipc_field_decl fields[DTS_IPC_MAX_FIELDS];
    char fnames[DTS_IPC_MAX_FIELDS][64];
    for (unsigned i = 0; i < n_types; i++) {
        char tname[64];
        if (!rd_str(r, tname, sizeof tname, &n)) {
            break;
        }
        uint16_t nf = rd_u16(r);
        if (nf > DTS_IPC_MAX_FIELDS) {
            r->bad = true;
            break;
        }
        for (unsigned k = 0; k < nf && !r->bad; k++) {
            rd_str(r, fnames[k], sizeof fnames[k], &n);
            fields[k].name = fnames[k];
            fields[k].type = (enum dts_ipc_field_type) rd_u8(r);
            rd_u8(r);
            fields[k].count = rd_u16(r);
        }
        if (r->bad) {
            break;
        }
        struct dpf_error e2 = {0};
        if (dts_ipc_schema_add_type(sc, tname, fields, nf, &e2) < 0) {
            dts_ipc_schema_free(sc);
            return fail(s, -EBADMSG, err, "SCHEMA", e2.message);
        }
    }
    if (r->bad || r->left) {
        dts_ipc_schema_free(sc);
        return fail(s, -EBADMSG, err, "SCHEMA", "bad length");
    }
    s->schema = sc;
    if (s->h.on_schema) {
        s->h.on_schema(s->aux, sc);
    }
    return 0;
}

static int
decode_events(struct dts_ipc_session *s, struct rd *r, struct dpf_error *err)
{
    uint16_t idx = rd_u16(r);
    uint16_t rsv = rd_u16(r);
    uint32_t count = rd_u32(r);
    if (r->bad || rsv) {
        return fail(s, -EBADMSG, err, "EVENT", "bad header");
    }
    if (idx >= s->schema->n_types) {
        return fail(s, -EBADMSG, err, "EVENT", "type index not in the schema");
    }
    const struct dts_ipc_evtype *t = &s->schema->types[idx];
    if (count == 0 || (uint64_t) count * t->size != r->left) {
        return fail(s, -EBADMSG, err, "EVENT",
                    "length does not match count x event size");
    }
    if (s->h.on_event) {
        for (uint32_t i = 0; i < count; i++) {
            s->h.on_event(s->aux, t, idx, r->p + (size_t) i * t->size);
        }
    }
    return 0;
}

/* One sample (name, kind, value and, from protocol 2, labels); false if
 * anything in it is malformed. */
static bool
rd_sample(struct rd *r, uint16_t proto, struct dts_ipc_counter *c)
{
    size_t len = 0;
    if (!rd_str(r, c->name, sizeof c->name, &len) ||
        !counter_name_ok(c->name, len)) {
        return false;
    }
    uint8_t kind = rd_u8(r);
    bool labels = kind & DTS_IPC_KIND_LABELS;
    c->kind = kind & (uint8_t) ~DTS_IPC_KIND_LABELS;
    uint64_t v = rd_u64(r);
    if (c->kind > DTS_IPC_GAUGE_F64 || (labels && proto < 2)) {
        return false;
    }
    if (c->kind == DTS_IPC_GAUGE_F64) {
        memcpy(&c->f64, &v, 8);
    } else {
        c->u64 = v;
    }
    c->n_labels = 0;
    if (!labels) {
        return !r->bad;
    }
    unsigned n = rd_u8(r);
    if (n == 0 || n > DTS_IPC_MAX_LABELS) {
        return false;
    }
    for (unsigned k = 0; k < n; k++) {
        struct dts_ipc_label *l = &c->labels[k];
        size_t ln = 0, lv = 0;
        if (!rd_str(r, l->name, sizeof l->name, &ln) ||
            !rd_str(r, l->value, sizeof l->value, &lv) ||
            !dts_ipc_label_name_ok(l->name, ln) ||
            !dts_ipc_label_value_ok(l->value, lv)) {
            return false;
        }
        /* a name twice would make an invalid exposition line */
        for (unsigned j = 0; j < k; j++) {
            if (!strcmp(c->labels[j].name, l->name)) {
                return false;
            }
        }
    }
    c->n_labels = n;
    return !r->bad;
}

static int
decode_counters(struct dts_ipc_session *s, struct rd *r, struct dpf_error *err)
{
    int64_t ts = (int64_t) rd_u64(r);
    uint16_t n = rd_u16(r);
    uint16_t rsv = rd_u16(r);
    if (r->bad || rsv || n == 0) {
        return fail(s, -EBADMSG, err, "COUNTER", "bad header");
    }
    /* Validate the whole frame before delivering anything. */
    struct rd probe = *r;
    struct dts_ipc_counter c;
    for (unsigned i = 0; i < n; i++) {
        if (!rd_sample(&probe, s->hello.proto, &c)) {
            return fail(s, -EBADMSG, err, "COUNTER", "bad sample");
        }
    }
    if (probe.bad || probe.left) {
        return fail(s, -EBADMSG, err, "COUNTER", "bad length");
    }
    for (unsigned i = 0; i < n; i++) {
        rd_sample(r, s->hello.proto, &c);
        if (s->h.on_counter) {
            s->h.on_counter(s->aux, ts, &c);
        }
    }
    return 0;
}

static int
decode_netflow(struct dts_ipc_session *s, struct rd *r, struct dpf_error *err)
{
    uint32_t n = rd_u32(r);
    uint32_t rsv = rd_u32(r);
    if (r->bad || rsv || n == 0 ||
        (uint64_t) n * DTS_IPC_NETFLOW_RECORD_LEN != r->left) {
        return fail(s, -EBADMSG, err, "NETFLOW", "bad length");
    }
    for (uint32_t i = 0; i < n; i++) {
        struct nf_flow f = {0};
        f.family = rd_u8(r);
        f.protocol = rd_u8(r);
        f.tcp_flags = rd_u8(r);
        uint8_t pad = rd_u8(r);
        f.src_port = rd_u16(r);
        f.dst_port = rd_u16(r);
        f.in_if = rd_u32(r);
        f.out_if = rd_u32(r);
        memcpy(f.src, rd_take(r, 16), 16);
        memcpy(f.dst, rd_take(r, 16), 16);
        f.bytes = rd_u64(r);
        f.packets = rd_u64(r);
        f.start_ms = rd_u64(r);
        f.end_ms = rd_u64(r);
        if ((f.family != 4 && f.family != 6) || pad) {
            return fail(s, -EBADMSG, err, "NETFLOW", "family must be 4 or 6");
        }
        if (s->h.on_netflow) {
            s->h.on_netflow(s->aux, &f);
        }
    }
    return 0;
}

/* Decode one complete frame (header already checked). */
static int
decode_frame(struct dts_ipc_session *s, uint8_t type, const uint8_t *body,
             size_t len, struct dpf_error *err)
{
    struct rd r = {body, len, false};
    if (s->done) {
        return fail(s, -EPROTO, err, "frame", "frame after BYE");
    }
    if (type != DTS_IPC_HELLO && !s->have_hello) {
        return fail(s, -EPROTO, err, "frame", "first frame must be HELLO");
    }
    s->frames++;
    switch (type) {
    case DTS_IPC_HELLO:
        if (s->have_hello) {
            return fail(s, -EPROTO, err, "frame", "second HELLO");
        }
        return decode_hello(s, &r, err);
    case DTS_IPC_SCHEMA:
        if (s->schema) {
            return fail(s, -EPROTO, err, "frame", "second SCHEMA");
        }
        return decode_schema(s, &r, err);
    case DTS_IPC_EVENT:
        if (!s->schema) {
            return fail(s, -EPROTO, err, "frame", "EVENT before SCHEMA");
        }
        return decode_events(s, &r, err);
    case DTS_IPC_COUNTER:
        return decode_counters(s, &r, err);
    case DTS_IPC_NETFLOW:
        return decode_netflow(s, &r, err);
    case DTS_IPC_BYE:
        if (len) {
            return fail(s, -EBADMSG, err, "frame", "BYE with a body");
        }
        s->done = true;
        if (s->h.on_bye) {
            s->h.on_bye(s->aux);
        }
        return 0;
    default:
        return fail(s, -EBADMSG, err, "frame", "unknown frame type");
    }
}

/* Check a header; returns the frame length or a negative errno. */
static long
check_header(struct dts_ipc_session *s, const uint8_t *p, struct dpf_error *err)
{
    uint32_t len = get_u32(p);
    if (p[4] != DTS_IPC_VERSION) {
        return fail(s, -EPROTONOSUPPORT, err, "frame",
                    "unsupported frame version");
    }
    if (len < DTS_IPC_HDR_LEN || get_u16(p + 6) != 0) {
        return fail(s, -EBADMSG, err, "frame", "bad frame header");
    }
    if (len > s->max_frame) {
        return fail(s, -EMSGSIZE, err, "frame", "frame exceeds the size limit");
    }
    return (long) len;
}

struct dts_ipc_session *
dts_ipc_session_create(const struct dts_ipc_handlers *h, void *aux,
                       size_t max_frame)
{
    struct dts_ipc_session *s = xcalloc(1, sizeof *s);
    if (h) {
        s->h = *h;
    }
    s->aux = aux;
    s->max_frame = max_frame ? max_frame : DTS_IPC_DEFAULT_MAX_FRAME;
    if (s->max_frame < 64) {
        s->max_frame = 64;
    }
    return s;
}

static void
pending_add(struct dts_ipc_session *s, const uint8_t *p, size_t n)
{
    if (s->pending_len + n > s->pending_cap) {
        size_t cap = s->pending_cap ? s->pending_cap : 4096;
        while (cap < s->pending_len + n) {
            cap *= 2;
        }
        s->pending = xrealloc(s->pending, cap);
        s->pending_cap = cap;
    }
    memcpy(s->pending + s->pending_len, p, n);
    s->pending_len += n;
}

int
dts_ipc_session_feed(struct dts_ipc_session *s, const void *buf, size_t len,
                     struct dpf_error *err)
{
    const uint8_t *in = buf;
    if (s->failed) {
        dpf_error_set(err, 400, "BadRequest", "session already failed");
        return s->failed;
    }
    /* Complete a pending partial frame first. */
    while (s->pending_len && len) {
        if (s->pending_len < DTS_IPC_HDR_LEN) {
            size_t take = DPF_MIN(len, DTS_IPC_HDR_LEN - s->pending_len);
            pending_add(s, in, take);
            in += take;
            len -= take;
            if (s->pending_len < DTS_IPC_HDR_LEN) {
                return 0;
            }
        }
        long flen = check_header(s, s->pending, err);
        if (flen < 0) {
            return (int) flen;
        }
        size_t take = DPF_MIN(len, (size_t) flen - s->pending_len);
        pending_add(s, in, take);
        in += take;
        len -= take;
        if (s->pending_len < (size_t) flen) {
            return 0;
        }
        int rc = decode_frame(s, s->pending[5], s->pending + DTS_IPC_HDR_LEN,
                              (size_t) flen - DTS_IPC_HDR_LEN, err);
        s->pending_len = 0;
        if (rc < 0) {
            return rc;
        }
    }
    /* Whole frames straight from the caller's buffer. */
    while (len >= DTS_IPC_HDR_LEN) {
        long flen = check_header(s, in, err);
        if (flen < 0) {
            return (int) flen;
        }
        if ((size_t) flen > len) {
            break;
        }
        int rc = decode_frame(s, in[5], in + DTS_IPC_HDR_LEN,
                              (size_t) flen - DTS_IPC_HDR_LEN, err);
        if (rc < 0) {
            return rc;
        }
        in += flen;
        len -= (size_t) flen;
    }
    if (len) {
        pending_add(s, in, len);
    }
    return 0;
}

const struct dts_ipc_hello *
dts_ipc_session_hello(const struct dts_ipc_session *s)
{
    return s->have_hello ? &s->hello : NULL;
}

const struct dts_ipc_schema *
dts_ipc_session_schema(const struct dts_ipc_session *s)
{
    return s->schema;
}

bool
dts_ipc_session_done(const struct dts_ipc_session *s)
{
    return s->done;
}

uint64_t
dts_ipc_session_frames(const struct dts_ipc_session *s)
{
    return s->frames;
}

void
dts_ipc_session_free(struct dts_ipc_session *s)
{
    if (!s) {
        return;
    }
    dts_ipc_schema_free(s->schema);
    free(s->pending);
    free(s);
}
