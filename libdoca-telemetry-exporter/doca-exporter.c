/* doca-exporter: DOCA's telemetry exporter API (doca_telemetry_exporter.h)
 * on top of libdts-exporter. A schema collects event types (validated and
 * laid out by lib/telemetry/dts-ipc's schema code as they are added); each
 * started source is one libdts-exporter connection that declares those
 * types in the same order, so DOCA's type index is the wire's type index.
 * The metrics context turns counters and gauges with label sets into
 * labelled samples (protocol 2 of docs/services/dts-ipc.md).
 *
 * Runs inside applications: nothing here aborts, prints or exits; every
 * allocation is checked and reported as DOCA_ERROR_NO_MEMORY. */
#include <doca_telemetry_exporter.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dpf/dts-exporter.h"
#include "lib/base/util.h"
#include "lib/telemetry/dts-ipc.h"
#include "libdoca-telemetry-exporter/doca-internal.h"

/* DOCA's documented defaults. */
#define DOCA_DEF_BUF_SIZE 60000
#define DOCA_DEF_FILE_MAX_SIZE (1024 * 1024)
#define DOCA_DEF_FILE_MAX_AGE (3600ull * 1000000) /* 1 h in us, as DOCA */
#define DOCA_DEF_RECONNECT_MS 100
#define DOCA_DEF_RECONNECT_TRIES 3
#define DOCA_DEF_SOCKET_TIMEOUT_MS 3000
#define DOCA_MAX_TYPES 255 /* the index is a uint8_t */

struct doca_telemetry_exporter_field {
    char *name;      /* NULL until set */
    char *desc;      /* kept, not sent */
    char *type_name; /* one of the FIELD_TYPE strings */
    uint16_t len;    /* array length, 1 = single */
    bool nomem;      /* a setter ran out of memory */
};

struct doca_telemetry_exporter_type {
    struct doca_telemetry_exporter_field **fields; /* owned */
    size_t n;
};

struct doca_telemetry_exporter_schema {
    struct dts_ipc_schema *types; /* validated types, index = DOCA index */
    uint64_t buf_size;
    char *data_root;
    bool file_write;
    size_t file_max_size;
    doca_telemetry_exporter_timestamp_t file_max_age;
    bool ipc;
    char *sockets_dir; /* NULL = $DTS_IPC_DIR or DOCA's default */
    uint32_t reconnect_ms;
    uint8_t reconnect_tries;
    uint32_t socket_timeout_ms;
    bool opaque;
    bool started;
    bool nomem;       /* a setter ran out of memory: start fails */
    size_t n_sources; /* live sources made from it */
};

/* One label set of a metrics context. */
struct doca_labelset {
    char **names;
    size_t n;
};

/* Running total of an *_increment series. */
struct doca_sum {
    char *key;
    uint64_t hash;
    uint64_t u64;
    double f64;
    struct doca_sum *next;
};

struct doca_metrics {
    struct dts_exporter_label konst[DTS_EXPORTER_MAX_LABELS]; /* owned */
    size_t n_konst;
    struct doca_labelset *sets; /* id i+1 = sets[i] */
    size_t n_sets;
    struct doca_sum **sums; /* hash buckets */
    size_t sums_mask;       /* buckets - 1 */
    size_t n_sums;
    uint64_t interval_ms; /* 0 = flush only when asked */
    int64_t oldest_ms;    /* first unflushed sample, -1 = none */
};

struct doca_telemetry_exporter_source {
    struct doca_telemetry_exporter_schema *schema;
    char *id;
    char *tag;
    bool nomem;
    bool started;
    struct dts_exporter *ex; /* NULL when IPC is off */
    struct doca_metrics *metrics;
};

/* ---- helpers ------------------------------------------------------------ */

doca_error_t
doca_from_errno(int rc)
{
    switch (rc) {
    case 0:
        return DOCA_SUCCESS;
    case -EINVAL:
        return DOCA_ERROR_INVALID_VALUE;
    case -ENOMEM:
        return DOCA_ERROR_NO_MEMORY;
    case -EPIPE:
    case -EBUSY:
        return DOCA_ERROR_BAD_STATE;
    case -EEXIST:
        return DOCA_ERROR_ALREADY_EXIST;
    case -E2BIG:
        return DOCA_ERROR_FULL;
    case -ETIMEDOUT:
        return DOCA_ERROR_TIME_OUT;
    case -ENOTCONN:
        /* dts absent: the data was dropped and counted, as documented */
        return DOCA_SUCCESS;
    default:
        return DOCA_ERROR_IO_FAILED;
    }
}

/* Replace *dst by a copy of src (NULL clears); false when out of memory
 * (then *dst is unchanged). */
bool
doca_set_str(char **dst, const char *src)
{
    char *c = NULL;
    if (src && !(c = strdup(src))) {
        return false;
    }
    free(*dst);
    *dst = c;
    return true;
}

/* A copy for a getter whose caller owns the result. */
doca_error_t
doca_get_str(const char *v, const char **out)
{
    if (!out) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    char *c = strdup(v ? v : "");
    if (!c) {
        return DOCA_ERROR_NO_MEMORY;
    }
    *out = c;
    return DOCA_SUCCESS;
}

bool
doca_text_ok(const char *s)
{
    if (!s || strlen(s) >= DTS_IPC_MAX_NAME) {
        return false;
    }
    for (; *s; s++) {
        if (*s < 0x20 || *s > 0x7e) {
            return false;
        }
    }
    return true;
}

static bool
doca_ident_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
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

/* The wire type of a DOCA field type name and array length; 0 if
 * unknown. A "char" array is a fixed-width string. */
static unsigned
doca_wire_type(const char *t, uint16_t len, uint16_t *count)
{
    static const struct {
        const char *name;
        unsigned type;
    } map[] = {
        {DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_BOOL, DTS_IPC_FIELD_U8},
        {DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_SHORT, DTS_IPC_FIELD_I16},
        {DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_INT, DTS_IPC_FIELD_I32},
        {DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_LONG,
         sizeof(long) == 8 ? DTS_IPC_FIELD_I64 : DTS_IPC_FIELD_I32},
        {DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_LONGLONG, DTS_IPC_FIELD_I64},
        {DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_UCHAR, DTS_IPC_FIELD_U8},
        {DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_USHORT, DTS_IPC_FIELD_U16},
        {DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_UINT, DTS_IPC_FIELD_U32},
        {DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_ULONG,
         sizeof(long) == 8 ? DTS_IPC_FIELD_U64 : DTS_IPC_FIELD_U32},
        {DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_ULONGLONG, DTS_IPC_FIELD_U64},
        {DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_FLOAT, DTS_IPC_FIELD_FLOAT},
        {DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_DOUBLE, DTS_IPC_FIELD_DOUBLE},
        {DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_INT8, DTS_IPC_FIELD_I8},
        {DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_INT16, DTS_IPC_FIELD_I16},
        {DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_INT32, DTS_IPC_FIELD_I32},
        {DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_INT64, DTS_IPC_FIELD_I64},
        {DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_UINT8, DTS_IPC_FIELD_U8},
        {DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_UINT16, DTS_IPC_FIELD_U16},
        {DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_UINT32, DTS_IPC_FIELD_U32},
        {DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_UINT64, DTS_IPC_FIELD_U64},
    };
    if (!t || len == 0) {
        return 0;
    }
    *count = len;
    if (!strcmp(t, DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_CHAR)) {
        return len > 1 ? DTS_IPC_FIELD_STRING : DTS_IPC_FIELD_I8;
    }
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++) {
        if (!strcmp(t, map[i].name)) {
            return map[i].type;
        }
    }
    return 0;
}

/* ---- schema ------------------------------------------------------------- */

doca_error_t
doca_telemetry_exporter_schema_init(const char *schema_name,
                                    struct doca_telemetry_exporter_schema **s)
{
    if (!s) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    *s = NULL;
    if (!doca_ident_ok(schema_name)) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    struct doca_telemetry_exporter_schema *sc = calloc(1, sizeof *sc);
    if (!sc) {
        return DOCA_ERROR_NO_MEMORY;
    }
    sc->types = dts_ipc_schema_create(schema_name);
    if (!sc->types) {
        free(sc);
        return DOCA_ERROR_NO_MEMORY;
    }
    sc->buf_size = DOCA_DEF_BUF_SIZE;
    sc->file_max_size = DOCA_DEF_FILE_MAX_SIZE;
    sc->file_max_age = DOCA_DEF_FILE_MAX_AGE;
    sc->reconnect_ms = DOCA_DEF_RECONNECT_MS;
    sc->reconnect_tries = DOCA_DEF_RECONNECT_TRIES;
    sc->socket_timeout_ms = DOCA_DEF_SOCKET_TIMEOUT_MS;
    *s = sc;
    return DOCA_SUCCESS;
}

/* The setters change nothing on a NULL or started schema. */
#define SCHEMA_SETTABLE(s) ((s) && !(s)->started)

void
doca_telemetry_exporter_schema_set_buf_size(
    struct doca_telemetry_exporter_schema *s, uint64_t size)
{
    if (SCHEMA_SETTABLE(s)) {
        s->buf_size = size;
    }
}

doca_error_t
doca_telemetry_exporter_schema_get_buf_size(
    struct doca_telemetry_exporter_schema *s, uint64_t *size)
{
    if (!s || !size) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    *size = s->buf_size;
    return DOCA_SUCCESS;
}

void
doca_telemetry_exporter_schema_set_buf_data_root(
    struct doca_telemetry_exporter_schema *s, const char *path)
{
    if (SCHEMA_SETTABLE(s) && !doca_set_str(&s->data_root, path)) {
        s->nomem = true;
    }
}

doca_error_t
doca_telemetry_exporter_schema_get_buf_data_root(
    struct doca_telemetry_exporter_schema *s, const char **path)
{
    if (!s) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    return doca_get_str(s->data_root ? s->data_root : DOCA_DEFAULT_DATA_ROOT,
                        path);
}

void
doca_telemetry_exporter_schema_set_file_write_enabled(
    struct doca_telemetry_exporter_schema *s)
{
    if (SCHEMA_SETTABLE(s)) {
        s->file_write = true;
    }
}

void
doca_telemetry_exporter_schema_set_file_write_max_size(
    struct doca_telemetry_exporter_schema *s, size_t size)
{
    if (SCHEMA_SETTABLE(s)) {
        s->file_max_size = size;
    }
}

doca_error_t
doca_telemetry_exporter_schema_get_file_write_max_size(
    struct doca_telemetry_exporter_schema *s, size_t *size)
{
    if (!s || !size) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    *size = s->file_max_size;
    return DOCA_SUCCESS;
}

void
doca_telemetry_exporter_schema_set_file_write_max_age(
    struct doca_telemetry_exporter_schema *s,
    doca_telemetry_exporter_timestamp_t max_age)
{
    if (SCHEMA_SETTABLE(s)) {
        s->file_max_age = max_age;
    }
}

doca_error_t
doca_telemetry_exporter_schema_get_file_write_max_age(
    struct doca_telemetry_exporter_schema *s,
    doca_telemetry_exporter_timestamp_t *max_age)
{
    if (!s || !max_age) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    *max_age = s->file_max_age;
    return DOCA_SUCCESS;
}

void
doca_telemetry_exporter_schema_set_ipc_enabled(
    struct doca_telemetry_exporter_schema *s)
{
    if (SCHEMA_SETTABLE(s)) {
        s->ipc = true;
    }
}

void
doca_telemetry_exporter_schema_set_ipc_sockets_dir(
    struct doca_telemetry_exporter_schema *s, const char *sockets_dir)
{
    if (SCHEMA_SETTABLE(s) && !doca_set_str(&s->sockets_dir, sockets_dir)) {
        s->nomem = true;
    }
}

doca_error_t
doca_telemetry_exporter_schema_get_ipc_sockets_dir(
    struct doca_telemetry_exporter_schema *s, const char **sockets_dir)
{
    if (!s) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    return doca_get_str(doca_ipc_dir(s->sockets_dir), sockets_dir);
}

void
doca_telemetry_exporter_schema_set_ipc_reconnect_time(
    struct doca_telemetry_exporter_schema *s, uint32_t max_time)
{
    if (SCHEMA_SETTABLE(s)) {
        s->reconnect_ms = max_time;
    }
}

doca_error_t
doca_telemetry_exporter_schema_get_ipc_reconnect_time(
    struct doca_telemetry_exporter_schema *s, uint32_t *max_time)
{
    if (!s || !max_time) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    *max_time = s->reconnect_ms;
    return DOCA_SUCCESS;
}

void
doca_telemetry_exporter_schema_set_ipc_reconnect_tries(
    struct doca_telemetry_exporter_schema *s, uint8_t tries)
{
    if (SCHEMA_SETTABLE(s)) {
        s->reconnect_tries = tries;
    }
}

doca_error_t
doca_telemetry_exporter_schema_get_ipc_reconnect_tries(
    struct doca_telemetry_exporter_schema *s, uint8_t *tries)
{
    if (!s || !tries) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    *tries = s->reconnect_tries;
    return DOCA_SUCCESS;
}

void
doca_telemetry_exporter_schema_set_ipc_socket_timeout(
    struct doca_telemetry_exporter_schema *s, uint32_t timeout)
{
    if (SCHEMA_SETTABLE(s)) {
        s->socket_timeout_ms = timeout;
    }
}

doca_error_t
doca_telemetry_exporter_schema_get_ipc_socket_timeout(
    struct doca_telemetry_exporter_schema *s, uint32_t *timeout)
{
    if (!s || !timeout) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    *timeout = s->socket_timeout_ms;
    return DOCA_SUCCESS;
}

void
doca_telemetry_exporter_schema_set_opaque_events_enabled(
    struct doca_telemetry_exporter_schema *s)
{
    if (SCHEMA_SETTABLE(s)) {
        s->opaque = true;
    }
}

/* ---- types and fields --------------------------------------------------- */

doca_error_t
doca_telemetry_exporter_type_create(struct doca_telemetry_exporter_type **t)
{
    if (!t) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    *t = calloc(1, sizeof **t);
    return *t ? DOCA_SUCCESS : DOCA_ERROR_NO_MEMORY;
}

doca_error_t
doca_telemetry_exporter_field_create(struct doca_telemetry_exporter_field **f)
{
    if (!f) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    *f = calloc(1, sizeof **f);
    if (!*f) {
        return DOCA_ERROR_NO_MEMORY;
    }
    (*f)->len = 1;
    return DOCA_SUCCESS;
}

doca_error_t
doca_telemetry_exporter_field_destroy(struct doca_telemetry_exporter_field *f)
{
    if (!f) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    free(f->name);
    free(f->desc);
    free(f->type_name);
    free(f);
    return DOCA_SUCCESS;
}

void
doca_telemetry_exporter_field_set_name(struct doca_telemetry_exporter_field *f,
                                       const char *name)
{
    if (f && !doca_set_str(&f->name, name)) {
        f->nomem = true;
    }
}

void
doca_telemetry_exporter_field_set_description(
    struct doca_telemetry_exporter_field *f, const char *desc)
{
    if (f && !doca_set_str(&f->desc, desc)) {
        f->nomem = true;
    }
}

void
doca_telemetry_exporter_field_set_type_name(
    struct doca_telemetry_exporter_field *f, const char *type)
{
    if (f && !doca_set_str(&f->type_name, type)) {
        f->nomem = true;
    }
}

void
doca_telemetry_exporter_field_set_array_len(
    struct doca_telemetry_exporter_field *f, uint16_t len)
{
    if (f) {
        f->len = len;
    }
}

doca_error_t
doca_telemetry_exporter_type_add_field(struct doca_telemetry_exporter_type *t,
                                       struct doca_telemetry_exporter_field *f)
{
    if (!t || !f) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    if (t->n >= DTS_IPC_MAX_FIELDS) {
        return DOCA_ERROR_FULL;
    }
    struct doca_telemetry_exporter_field **nf =
        realloc(t->fields, (t->n + 1) * sizeof *nf);
    if (!nf) {
        return DOCA_ERROR_NO_MEMORY;
    }
    t->fields = nf;
    t->fields[t->n++] = f;
    return DOCA_SUCCESS;
}

doca_error_t
doca_telemetry_exporter_type_destroy(struct doca_telemetry_exporter_type *t)
{
    if (!t) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    for (size_t i = 0; i < t->n; i++) {
        doca_telemetry_exporter_field_destroy(t->fields[i]);
    }
    free(t->fields);
    free(t);
    return DOCA_SUCCESS;
}

doca_error_t
doca_telemetry_exporter_schema_add_type(
    struct doca_telemetry_exporter_schema *s, const char *new_type_name,
    struct doca_telemetry_exporter_type *t,
    doca_telemetry_exporter_type_index_t *type_index)
{
    if (!s || !new_type_name || !t || !type_index) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    if (s->started) {
        return DOCA_ERROR_BAD_STATE;
    }
    if (s->types->n_types >= DOCA_MAX_TYPES) {
        return DOCA_ERROR_FULL;
    }
    if (t->n == 0) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    struct dts_ipc_field_decl decl[DTS_IPC_MAX_FIELDS];
    for (size_t i = 0; i < t->n; i++) {
        const struct doca_telemetry_exporter_field *f = t->fields[i];
        uint16_t count = 1;
        unsigned wt = doca_wire_type(f->type_name, f->len, &count);
        if (f->nomem) {
            return DOCA_ERROR_NO_MEMORY;
        }
        if (!f->name || !wt) {
            return DOCA_ERROR_INVALID_VALUE;
        }
        decl[i] = (struct dts_ipc_field_decl){
            f->name, (enum dts_ipc_field_type) wt, count};
    }
    int rc = dts_ipc_schema_add_type(s->types, new_type_name, decl, t->n, NULL);
    if (rc < 0) {
        /* a repeated type name is "invalid" in DOCA's words */
        return rc == -EEXIST ? DOCA_ERROR_INVALID_VALUE : doca_from_errno(rc);
    }
    *type_index = (doca_telemetry_exporter_type_index_t) rc;
    doca_telemetry_exporter_type_destroy(t); /* the schema took it */
    return DOCA_SUCCESS;
}

doca_error_t
doca_telemetry_exporter_schema_start(struct doca_telemetry_exporter_schema *s)
{
    if (!s) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    if (s->started) {
        return DOCA_ERROR_BAD_STATE;
    }
    if (s->nomem) {
        return DOCA_ERROR_NO_MEMORY;
    }
    s->started = true;
    return DOCA_SUCCESS;
}

doca_error_t
doca_telemetry_exporter_schema_destroy(struct doca_telemetry_exporter_schema *s)
{
    if (!s) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    if (s->n_sources) {
        return DOCA_ERROR_BAD_STATE;
    }
    dts_ipc_schema_free(s->types);
    free(s->data_root);
    free(s->sockets_dir);
    free(s);
    return DOCA_SUCCESS;
}

/* ---- sources ------------------------------------------------------------ */

doca_error_t
doca_telemetry_exporter_source_create(
    struct doca_telemetry_exporter_schema *s,
    struct doca_telemetry_exporter_source **source)
{
    if (!s || !source) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    *source = NULL;
    if (!s->started) {
        return DOCA_ERROR_BAD_STATE;
    }
    struct doca_telemetry_exporter_source *src = calloc(1, sizeof *src);
    if (!src) {
        return DOCA_ERROR_NO_MEMORY;
    }
    src->schema = s;
    s->n_sources++;
    *source = src;
    return DOCA_SUCCESS;
}

void
doca_telemetry_exporter_source_set_id(
    struct doca_telemetry_exporter_source *source, const char *source_id)
{
    if (source && !source->started && !doca_set_str(&source->id, source_id)) {
        source->nomem = true;
    }
}

void
doca_telemetry_exporter_source_set_tag(
    struct doca_telemetry_exporter_source *source, const char *source_tag)
{
    if (source && !source->started && !doca_set_str(&source->tag, source_tag)) {
        source->nomem = true;
    }
}

doca_error_t
doca_telemetry_exporter_source_start(
    struct doca_telemetry_exporter_source *source)
{
    if (!source) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    if (source->started) {
        return DOCA_ERROR_BAD_STATE;
    }
    if (source->nomem) {
        return DOCA_ERROR_NO_MEMORY;
    }
    if (!doca_text_ok(source->id) || !doca_text_ok(source->tag)) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    const struct doca_telemetry_exporter_schema *s = source->schema;
    if (s->ipc) {
        struct dts_exporter_options o = {
            .ipc_dir = s->sockets_dir,
            .schema_name = s->types->name,
            .source_id = source->id,
            .source_tag = source->tag,
            .buffer_bytes = (size_t) DPF_MIN(s->buf_size, 64u << 20),
        };
        struct dts_exporter *ex = dts_exporter_create(&o);
        if (!ex) {
            return errno == ENOMEM ? DOCA_ERROR_NO_MEMORY
                                   : DOCA_ERROR_INVALID_VALUE;
        }
        for (unsigned i = 0; i < s->types->n_types; i++) {
            const struct dts_ipc_evtype *t = &s->types->types[i];
            struct dts_exporter_field f[DTS_IPC_MAX_FIELDS];
            for (unsigned k = 0; k < t->n_fields; k++) {
                f[k] = (struct dts_exporter_field){
                    t->fields[k].name,
                    (enum dts_exporter_field_type) t->fields[k].type,
                    t->fields[k].count};
            }
            int rc = dts_exporter_add_type(ex, t->name, f, t->n_fields);
            if (rc < 0) {
                dts_exporter_destroy(ex);
                return doca_from_errno(rc);
            }
        }
        /* dts may come later: the exporter retries by itself */
        int rc = dts_exporter_start(ex);
        if (rc == -ENOMEM) {
            dts_exporter_destroy(ex);
            return DOCA_ERROR_NO_MEMORY;
        }
        source->ex = ex;
    }
    source->started = true;
    return DOCA_SUCCESS;
}

doca_error_t
doca_telemetry_exporter_source_report(
    struct doca_telemetry_exporter_source *source,
    doca_telemetry_exporter_type_index_t index, void *data, int count)
{
    if (!source || !data || count < 1) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    if (!source->started) {
        return DOCA_ERROR_BAD_STATE;
    }
    if (index >= source->schema->types->n_types) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    if (!source->ex) {
        return DOCA_SUCCESS; /* no output enabled: nothing to do */
    }
    return doca_from_errno(
        dts_exporter_send_events(source->ex, index, data, (size_t) count));
}

doca_error_t
doca_telemetry_exporter_source_opaque_report(
    struct doca_telemetry_exporter_source *source, const doca_guid_t app_id,
    uint64_t user_defined1, uint64_t user_defined2, const void *data,
    uint32_t data_size)
{
    (void) app_id;
    (void) user_defined1;
    (void) user_defined2;
    (void) data_size;
    if (!source || !data) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    return DOCA_ERROR_NOT_SUPPORTED;
}

doca_error_t
doca_telemetry_exporter_source_get_opaque_report_max_data_size(
    struct doca_telemetry_exporter_source *source, uint32_t *max_data_size)
{
    if (!source || !max_data_size) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    return DOCA_ERROR_NOT_SUPPORTED;
}

doca_error_t
doca_telemetry_exporter_source_flush(
    struct doca_telemetry_exporter_source *source)
{
    if (!source) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    if (!source->started) {
        return DOCA_ERROR_BAD_STATE;
    }
    if (source->metrics) {
        source->metrics->oldest_ms = -1;
    }
    return source->ex ? doca_from_errno(dts_exporter_flush(source->ex))
                      : DOCA_SUCCESS;
}

static void doca_metrics_free(struct doca_metrics *m);

doca_error_t
doca_telemetry_exporter_source_destroy(
    struct doca_telemetry_exporter_source *source)
{
    if (!source) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    doca_metrics_free(source->metrics);
    dts_exporter_destroy(source->ex); /* flushes and says BYE */
    source->schema->n_sources--;
    free(source->id);
    free(source->tag);
    free(source);
    return DOCA_SUCCESS;
}

/* ---- utilities ---------------------------------------------------------- */

doca_error_t
doca_telemetry_exporter_get_timestamp(
    doca_telemetry_exporter_timestamp_t *timestamp)
{
    if (!timestamp) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    *timestamp = (doca_telemetry_exporter_timestamp_t) time_wall_ns();
    return DOCA_SUCCESS;
}

doca_error_t
doca_telemetry_exporter_check_ipc_status(
    struct doca_telemetry_exporter_source *source,
    doca_telemetry_exporter_ipc_status_t *status)
{
    if (!source || !status) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    if (!source->schema->ipc) {
        *status = DOCA_TELEMETRY_EXPORTER_IPC_STATUS_DISABLED;
        return DOCA_SUCCESS;
    }
    struct dts_exporter_stats st = {0};
    if (source->ex) {
        dts_exporter_get_stats(source->ex, &st);
    }
    *status = st.connected ? DOCA_TELEMETRY_EXPORTER_IPC_STATUS_CONNECTED
                           : DOCA_TELEMETRY_EXPORTER_IPC_STATUS_FAILED;
    return DOCA_SUCCESS;
}

/* ---- metrics ------------------------------------------------------------ */

static void
doca_metrics_free(struct doca_metrics *m)
{
    if (!m) {
        return;
    }
    for (size_t i = 0; i < m->n_konst; i++) {
        free((char *) m->konst[i].name);
        free((char *) m->konst[i].value);
    }
    for (size_t i = 0; i < m->n_sets; i++) {
        for (size_t k = 0; k < m->sets[i].n; k++) {
            free(m->sets[i].names[k]);
        }
        free(m->sets[i].names);
    }
    free(m->sets);
    for (size_t i = 0; m->sums && i <= m->sums_mask; i++) {
        struct doca_sum *e = m->sums[i];
        while (e) {
            struct doca_sum *next = e->next;
            free(e->key);
            free(e);
            e = next;
        }
    }
    free(m->sums);
    free(m);
}

doca_error_t
doca_telemetry_exporter_metrics_create_context(
    struct doca_telemetry_exporter_source *source)
{
    if (!source) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    if (!source->started || source->metrics) {
        return DOCA_ERROR_BAD_STATE;
    }
    source->metrics = calloc(1, sizeof *source->metrics);
    if (!source->metrics) {
        return DOCA_ERROR_NO_MEMORY;
    }
    source->metrics->oldest_ms = -1;
    return DOCA_SUCCESS;
}

doca_error_t
doca_telemetry_exporter_metrics_destroy_context(
    struct doca_telemetry_exporter_source *source)
{
    if (!source) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    if (!source->metrics) {
        return DOCA_ERROR_BAD_STATE;
    }
    doca_error_t rc = doca_telemetry_exporter_metrics_flush(source);
    doca_metrics_free(source->metrics);
    source->metrics = NULL;
    return rc;
}

/* The source's metrics context, or NULL with *rc set. */
static struct doca_metrics *
doca_metrics_of(struct doca_telemetry_exporter_source *source, doca_error_t *rc)
{
    if (!source) {
        *rc = DOCA_ERROR_INVALID_VALUE;
        return NULL;
    }
    if (!source->metrics) {
        *rc = DOCA_ERROR_BAD_STATE;
        return NULL;
    }
    *rc = DOCA_SUCCESS;
    return source->metrics;
}

doca_error_t
doca_telemetry_exporter_metrics_set_flush_interval_ms(
    struct doca_telemetry_exporter_source *source, uint64_t interval_ms)
{
    doca_error_t rc;
    struct doca_metrics *m = doca_metrics_of(source, &rc);
    if (m) {
        m->interval_ms = interval_ms;
    }
    return rc;
}

/* Is name already one of the context's constant labels? */
static bool
doca_label_taken(const struct doca_metrics *m, const char *name)
{
    for (size_t i = 0; i < m->n_konst; i++) {
        if (!strcmp(m->konst[i].name, name)) {
            return true;
        }
    }
    return false;
}

doca_error_t
doca_telemetry_exporter_metrics_add_constant_label(
    struct doca_telemetry_exporter_source *source, const char *label_name,
    const char *label_value)
{
    doca_error_t rc;
    struct doca_metrics *m = doca_metrics_of(source, &rc);
    if (!m) {
        return rc;
    }
    if (!label_name || !label_value ||
        !dts_ipc_label_name_ok(label_name, strlen(label_name)) ||
        !dts_ipc_label_value_ok(label_value, strlen(label_value)) ||
        doca_label_taken(m, label_name)) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    /* a constant label may not shadow a name of an existing set */
    for (size_t i = 0; i < m->n_sets; i++) {
        for (size_t k = 0; k < m->sets[i].n; k++) {
            if (!strcmp(m->sets[i].names[k], label_name)) {
                return DOCA_ERROR_INVALID_VALUE;
            }
        }
        if (m->sets[i].n + m->n_konst + 1 > DTS_EXPORTER_MAX_LABELS) {
            return DOCA_ERROR_FULL;
        }
    }
    if (m->n_konst >= DTS_EXPORTER_MAX_LABELS) {
        return DOCA_ERROR_FULL;
    }
    char *n = strdup(label_name);
    char *v = strdup(label_value);
    if (!n || !v) {
        free(n);
        free(v);
        return DOCA_ERROR_NO_MEMORY;
    }
    m->konst[m->n_konst++] = (struct dts_exporter_label){n, v};
    return DOCA_SUCCESS;
}

doca_error_t
doca_telemetry_exporter_metrics_add_label_names(
    struct doca_telemetry_exporter_source *source, const char **label_names,
    size_t num_labels, doca_telemetry_exporter_label_set_id_t *label_set_id)
{
    doca_error_t rc;
    struct doca_metrics *m = doca_metrics_of(source, &rc);
    if (!m) {
        return rc;
    }
    if (!label_names || !label_set_id || num_labels == 0) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    if (num_labels + m->n_konst > DTS_EXPORTER_MAX_LABELS) {
        return DOCA_ERROR_FULL;
    }
    for (size_t i = 0; i < num_labels; i++) {
        const char *n = label_names[i];
        if (!n || !dts_ipc_label_name_ok(n, strlen(n)) ||
            doca_label_taken(m, n)) {
            return DOCA_ERROR_INVALID_VALUE;
        }
        for (size_t j = 0; j < i; j++) {
            if (!strcmp(label_names[j], n)) {
                return DOCA_ERROR_INVALID_VALUE;
            }
        }
    }
    struct doca_labelset *ns = realloc(m->sets, (m->n_sets + 1) * sizeof *ns);
    if (!ns) {
        return DOCA_ERROR_NO_MEMORY;
    }
    m->sets = ns;
    struct doca_labelset set = {calloc(num_labels, sizeof(char *)), num_labels};
    for (size_t i = 0; set.names && i < num_labels; i++) {
        if (!(set.names[i] = strdup(label_names[i]))) {
            for (size_t k = 0; k < i; k++) {
                free(set.names[k]);
            }
            free(set.names);
            set.names = NULL;
        }
    }
    if (!set.names) {
        return DOCA_ERROR_NO_MEMORY;
    }
    m->sets[m->n_sets++] = set;
    *label_set_id = m->n_sets;
    return DOCA_SUCCESS;
}

/* Build the label list of one sample: constant labels, then the set's
 * names with label_values. */
static doca_error_t
doca_sample_labels(const struct doca_metrics *m,
                   doca_telemetry_exporter_label_set_id_t id,
                   const char **values, struct dts_exporter_label *out,
                   size_t *n)
{
    size_t k = 0;
    for (size_t i = 0; i < m->n_konst; i++) {
        out[k++] = m->konst[i];
    }
    if (id == 0) {
        if (values) {
            return DOCA_ERROR_INVALID_VALUE; /* values for no set */
        }
        *n = k;
        return DOCA_SUCCESS;
    }
    if (id > m->n_sets || !values) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    const struct doca_labelset *set = &m->sets[id - 1];
    for (size_t i = 0; i < set->n; i++) {
        if (!values[i] ||
            !dts_ipc_label_value_ok(values[i], strlen(values[i]))) {
            return DOCA_ERROR_INVALID_VALUE;
        }
        out[k++] = (struct dts_exporter_label){set->names[i], values[i]};
    }
    *n = k;
    return DOCA_SUCCESS;
}

static uint64_t
doca_hash(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h = (h ^ (unsigned char) *s) * 1099511628211ull;
    }
    return (h ^ 0x1f) * 1099511628211ull;
}

/* The running total of (kind, name, label values), created at 0. NULL
 * when out of memory. */
static struct doca_sum *
doca_sum_get(struct doca_metrics *m, char kind, const char *name,
             const struct dts_exporter_label *l, size_t n)
{
    size_t len = 3 + strlen(name);
    for (size_t i = 0; i < n; i++) {
        len += strlen(l[i].value) + 1;
    }
    char *key = malloc(len);
    if (!key) {
        return NULL;
    }
    char *p = key;
    *p++ = kind;
    p = stpcpy(p, name);
    for (size_t i = 0; i < n; i++) {
        *p++ = '\x1f';
        p = stpcpy(p, l[i].value);
    }
    *p = '\0';
    uint64_t h = doca_hash(1469598103934665603ull, key);
    if (m->sums) {
        for (struct doca_sum *e = m->sums[h & m->sums_mask]; e; e = e->next) {
            if (e->hash == h && !strcmp(e->key, key)) {
                free(key);
                return e;
            }
        }
    }
    if (!m->sums || m->n_sums > m->sums_mask) {
        size_t nb = m->sums ? 2 * (m->sums_mask + 1) : 64;
        struct doca_sum **b = calloc(nb, sizeof *b);
        if (!b) {
            free(key);
            return NULL;
        }
        for (size_t i = 0; m->sums && i <= m->sums_mask; i++) {
            struct doca_sum *e = m->sums[i];
            while (e) {
                struct doca_sum *next = e->next;
                e->next = b[e->hash & (nb - 1)];
                b[e->hash & (nb - 1)] = e;
                e = next;
            }
        }
        free(m->sums);
        m->sums = b;
        m->sums_mask = nb - 1;
    }
    struct doca_sum *e = calloc(1, sizeof *e);
    if (!e) {
        free(key);
        return NULL;
    }
    e->key = key;
    e->hash = h;
    e->next = m->sums[h & m->sums_mask];
    m->sums[h & m->sums_mask] = e;
    m->n_sums++;
    return e;
}

enum doca_sample_op {
    DOCA_SET_COUNTER,
    DOCA_ADD_COUNTER,
    DOCA_SET_GAUGE,
    DOCA_ADD_GAUGE,
};

static doca_error_t
doca_metric(struct doca_telemetry_exporter_source *source, const char *name,
            enum doca_sample_op op, uint64_t u64, double f64,
            doca_telemetry_exporter_label_set_id_t id, const char **values)
{
    doca_error_t rc;
    struct doca_metrics *m = doca_metrics_of(source, &rc);
    if (!m) {
        return rc;
    }
    if (!name) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    struct dts_exporter_label l[DTS_EXPORTER_MAX_LABELS];
    size_t n = 0;
    rc = doca_sample_labels(m, id, values, l, &n);
    if (rc != DOCA_SUCCESS) {
        return rc;
    }
    if (op == DOCA_ADD_COUNTER || op == DOCA_ADD_GAUGE) {
        struct doca_sum *e =
            doca_sum_get(m, op == DOCA_ADD_COUNTER ? 'c' : 'g', name, l, n);
        if (!e) {
            return DOCA_ERROR_NO_MEMORY;
        }
        e->u64 += u64;
        e->f64 += f64;
        u64 = e->u64;
        f64 = e->f64;
    }
    if (!source->ex) {
        return DOCA_SUCCESS; /* IPC off: nowhere to send */
    }
    int r = op == DOCA_SET_COUNTER || op == DOCA_ADD_COUNTER
                ? dts_exporter_send_counter_labels(source->ex, name, u64, l, n)
                : dts_exporter_send_gauge_labels(source->ex, name, f64, l, n);
    if (r < 0) {
        return doca_from_errno(r);
    }
    int64_t now = time_mono_ms();
    if (m->oldest_ms < 0) {
        m->oldest_ms = now;
    }
    if (m->interval_ms && now - m->oldest_ms >= (int64_t) m->interval_ms) {
        return doca_telemetry_exporter_metrics_flush(source);
    }
    return DOCA_SUCCESS;
}

doca_error_t
doca_telemetry_exporter_metrics_add_counter(
    struct doca_telemetry_exporter_source *source,
    doca_telemetry_exporter_timestamp_t timestamp, const char *name,
    uint64_t value, doca_telemetry_exporter_label_set_id_t label_set_id,
    const char **label_values)
{
    (void) timestamp; /* dts stamps samples when it exports them */
    return doca_metric(source, name, DOCA_SET_COUNTER, value, 0, label_set_id,
                       label_values);
}

doca_error_t
doca_telemetry_exporter_metrics_add_counter_increment(
    struct doca_telemetry_exporter_source *source,
    doca_telemetry_exporter_timestamp_t timestamp, const char *name,
    uint64_t value, doca_telemetry_exporter_label_set_id_t label_set_id,
    const char **label_values)
{
    (void) timestamp;
    return doca_metric(source, name, DOCA_ADD_COUNTER, value, 0, label_set_id,
                       label_values);
}

doca_error_t
doca_telemetry_exporter_metrics_add_gauge(
    struct doca_telemetry_exporter_source *source,
    doca_telemetry_exporter_timestamp_t timestamp, const char *name,
    double value, doca_telemetry_exporter_label_set_id_t label_set_id,
    const char **label_values)
{
    (void) timestamp;
    return doca_metric(source, name, DOCA_SET_GAUGE, 0, value, label_set_id,
                       label_values);
}

doca_error_t
doca_telemetry_exporter_metrics_add_gauge_uint64(
    struct doca_telemetry_exporter_source *source,
    doca_telemetry_exporter_timestamp_t timestamp, const char *name,
    uint64_t value, doca_telemetry_exporter_label_set_id_t label_set_id,
    const char **label_values)
{
    (void) timestamp;
    return doca_metric(source, name, DOCA_SET_GAUGE, 0, (double) value,
                       label_set_id, label_values);
}

doca_error_t
doca_telemetry_exporter_metrics_add_gauge_increment(
    struct doca_telemetry_exporter_source *source,
    doca_telemetry_exporter_timestamp_t timestamp, const char *name,
    double value, doca_telemetry_exporter_label_set_id_t label_set_id,
    const char **label_values)
{
    (void) timestamp;
    return doca_metric(source, name, DOCA_ADD_GAUGE, 0, value, label_set_id,
                       label_values);
}

doca_error_t
doca_telemetry_exporter_metrics_flush(
    struct doca_telemetry_exporter_source *source)
{
    doca_error_t rc;
    struct doca_metrics *m = doca_metrics_of(source, &rc);
    if (!m) {
        return rc;
    }
    m->oldest_ms = -1;
    return source->ex ? doca_from_errno(dts_exporter_flush(source->ex))
                      : DOCA_SUCCESS;
}
