/* dts-ipc: codec of the exporter-library <-> dts wire protocol, shared by
 * libdts-exporter (encoder) and the daemon's IPC server (session decoder).
 *
 * Every frame is an 8-byte little-endian header
 *     u32 length (whole frame, header included)
 *     u8  version (DTS_IPC_VERSION)
 *     u8  type (enum dts_ipc_type)
 *     u16 reserved (0)
 * followed by the body; docs/services/dts-ipc.md describes every body.
 * A session must start with HELLO, then SCHEMA (once), then any number of
 * EVENT / COUNTER / NETFLOW frames, then BYE. The session decoder checks
 * everything: lengths against the frame, the frame against the bound,
 * unknown versions and types, truncated bodies, events whose size does not
 * match the schema, names with bad characters; the first violation makes
 * the session fail for good (the server then closes the connection).
 *
 * Ownership: structures passed to handlers are borrowed for the duration
 * of the call. Encoders append to a caller-owned struct dbuf. */
#ifndef DPF_DTS_IPC_H
#define DPF_DTS_IPC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/error.h"
#include "lib/telemetry/netflow.h"
#include "lib/base/util.h"

#define DTS_IPC_VERSION 1
/* Protocol versions a HELLO may announce: 1 (the original), 2 (adds
 * labelled counter samples, see docs/services/dts-ipc.md). The frame
 * header's version byte stays DTS_IPC_VERSION in both. */
#define DTS_IPC_PROTO_MIN 1
#define DTS_IPC_PROTO_MAX 2
/* Labels of one counter sample (protocol 2). */
#define DTS_IPC_MAX_LABELS 16
#define DTS_IPC_MAX_LABEL_NAME 64   /* incl. NUL */
#define DTS_IPC_MAX_LABEL_VALUE 128 /* incl. NUL */
#define DTS_IPC_HDR_LEN 8
/* Default and hard upper bound of one frame. */
#define DTS_IPC_DEFAULT_MAX_FRAME (1u << 20)
#define DTS_IPC_MAX_NAME 128      /* names incl. NUL */
#define DTS_IPC_MAX_TYPES 256     /* event types per schema */
#define DTS_IPC_MAX_FIELDS 128    /* fields per event type */
#define DTS_IPC_MAGIC 0x58535444u /* "DTSX" little-endian, in HELLO */
/* Bytes of one NETFLOW record on the wire. */
#define DTS_IPC_NETFLOW_RECORD_LEN 80

/* Frame types. */
enum dts_ipc_type {
    DTS_IPC_HELLO = 1,   /* who is talking */
    DTS_IPC_SCHEMA = 2,  /* event types and their fields */
    DTS_IPC_EVENT = 3,   /* a batch of events of one type */
    DTS_IPC_COUNTER = 4, /* counter/gauge samples */
    DTS_IPC_NETFLOW = 5, /* flow records */
    DTS_IPC_BYE = 6,     /* orderly close */
};

/* Element types of an event field on the wire. The values are the
 * protocol's and equal libdts-exporter's public enum dts_exporter_field_type
 * (the library checks that at compile time). */
enum dts_ipc_field_type {
    DTS_IPC_FIELD_U8 = 1,         /* uint8_t */
    DTS_IPC_FIELD_U16 = 2,        /* uint16_t */
    DTS_IPC_FIELD_U32 = 3,        /* uint32_t */
    DTS_IPC_FIELD_U64 = 4,        /* uint64_t */
    DTS_IPC_FIELD_I8 = 5,         /* int8_t */
    DTS_IPC_FIELD_I16 = 6,        /* int16_t */
    DTS_IPC_FIELD_I32 = 7,        /* int32_t */
    DTS_IPC_FIELD_I64 = 8,        /* int64_t */
    DTS_IPC_FIELD_FLOAT = 9,      /* IEEE-754 binary32 */
    DTS_IPC_FIELD_DOUBLE = 10,    /* IEEE-754 binary64 */
    DTS_IPC_FIELD_STRING = 11,    /* count bytes, NUL padded */
    DTS_IPC_FIELD_IP4 = 12,       /* 4 bytes, network order */
    DTS_IPC_FIELD_IP6 = 13,       /* 16 bytes, network order */
    DTS_IPC_FIELD_MAC = 14,       /* 6 bytes */
    DTS_IPC_FIELD_TIMESTAMP = 15, /* uint64_t ns since the epoch */
};

/* A field as a sender declares it. */
struct dts_ipc_field_decl {
    const char *name;             /* [A-Za-z0-9_], 1..63 chars */
    enum dts_ipc_field_type type; /* element type */
    uint16_t count;               /* array length / string bytes (>= 1) */
};

/* Counter sample kinds. */
enum dts_ipc_counter_kind {
    DTS_IPC_COUNTER_U64 = 0, /* monotonic counter, uint64 */
    DTS_IPC_GAUGE_F64 = 1,   /* gauge, double */
};
/* Set in a sample's kind byte (protocol 2): labels follow the value. */
#define DTS_IPC_KIND_LABELS 0x80

/* HELLO contents. */
struct dts_ipc_hello {
    uint16_t proto;                    /* protocol version announced; the
                                        * encoder sends 1 when 0 */
    uint32_t pid;                      /* sender's process id */
    char source_id[DTS_IPC_MAX_NAME];  /* source id */
    char source_tag[DTS_IPC_MAX_NAME]; /* source tag */
};

/* One field of a decoded/declared event type. */
struct dts_ipc_field {
    char name[64];   /* field name */
    uint8_t type;    /* enum dts_ipc_field_type */
    uint16_t count;  /* array length / string bytes */
    uint32_t offset; /* byte offset inside the packed event */
    uint32_t size;   /* bytes the field occupies */
};

/* One event type. */
struct dts_ipc_evtype {
    char name[64];                /* type name */
    unsigned n_fields;            /* number of fields */
    struct dts_ipc_field *fields; /* owned by the schema */
    uint32_t size;                /* packed size of one event */
};

/* A schema: a name plus event types (index = position). */
struct dts_ipc_schema {
    char name[64];                /* schema name */
    unsigned n_types;             /* number of types */
    struct dts_ipc_evtype *types; /* owned */
};

/* One label of a counter sample. */
struct dts_ipc_label {
    char name[DTS_IPC_MAX_LABEL_NAME];   /* [a-zA-Z_][a-zA-Z0-9_]*, see
                                          * dts_ipc_label_name_ok() */
    char value[DTS_IPC_MAX_LABEL_VALUE]; /* UTF-8, no control chars */
};

/* One counter sample. */
struct dts_ipc_counter {
    char name[DTS_IPC_MAX_NAME]; /* counter name */
    uint8_t kind;                /* enum dts_ipc_counter_kind */
    uint64_t u64;                /* value when kind == COUNTER_U64 */
    double f64;                  /* value when kind == GAUGE_F64 */
    unsigned n_labels;           /* labels below (protocol 2), 0..16 */
    struct dts_ipc_label labels[DTS_IPC_MAX_LABELS];
};

/* A label name dts accepts from an app: [a-zA-Z_][a-zA-Z0-9_]*, 1..63
 * bytes, not starting with "__" (Prometheus reserves those) and not
 * source_id / source_tag (dts sets those itself). */
bool dts_ipc_label_name_ok(const char *s, size_t n);
/* A label value dts accepts: valid UTF-8, no control characters, 0..127
 * bytes. */
bool dts_ipc_label_value_ok(const char *s, size_t n);

/* ---- schema helpers ---------------------------------------------------- */

/* Empty schema with a name; free with dts_ipc_schema_free(). NULL when out
 * of memory (the schema functions never abort: see the encoders). */
struct dts_ipc_schema *dts_ipc_schema_create(const char *name);
/* Add a type; computes offsets and sizes. Returns its index or -EINVAL
 * (bad name, type or count; err says which), -EEXIST, -E2BIG, -ENOMEM
 * (the schema is unchanged). */
int dts_ipc_schema_add_type(struct dts_ipc_schema *s, const char *name,
                            const struct dts_ipc_field_decl *fields, size_t n,
                            struct dpf_error *err);
void dts_ipc_schema_free(struct dts_ipc_schema *s);
/* Schema as JSON: {"name":..,"types":[{"name":..,"size":..,"fields":
 * [{"name":..,"type":"u16","count":1}]}]}. New reference. */
json_t *dts_ipc_schema_to_json(const struct dts_ipc_schema *s);
/* Rebuild a schema from dts_ipc_schema_to_json() output; NULL if bad. */
struct dts_ipc_schema *dts_ipc_schema_from_json(const json_t *j,
                                                struct dpf_error *err);
/* Lower-case name of a field type ("u8", "ip6", ...) or NULL. */
const char *dts_ipc_field_type_name(unsigned type);
/* Decode one packed event into a JSON object (field name -> value; ip4/ip6
 * as text, mac as aa:bb:.., strings up to the first NUL, arrays of count >
 * 1 as JSON arrays, timestamps as integer ns). New reference. */
json_t *dts_ipc_event_to_json(const struct dts_ipc_evtype *t,
                              const uint8_t *data);

/* ---- encoders ------------------------------------------------------------ */

/* Each encoder appends one complete frame to out and returns 0, or returns
 * -ENOMEM with out unchanged: they never abort, because libdts-exporter
 * runs them inside applications. */
int dts_ipc_encode_hello(struct dbuf *out, const struct dts_ipc_hello *h);
int dts_ipc_encode_schema(struct dbuf *out, const struct dts_ipc_schema *s);
/* A batch of count events of type_index, each size bytes. */
int dts_ipc_encode_events(struct dbuf *out, uint16_t type_index,
                          const void *events, uint32_t size, uint32_t count);
int dts_ipc_encode_counters(struct dbuf *out, int64_t time_ns,
                            const struct dts_ipc_counter *c, size_t n);
int dts_ipc_encode_netflow(struct dbuf *out, const struct nf_flow *f, size_t n);
int dts_ipc_encode_bye(struct dbuf *out);

/* ---- session decoder --------------------------------------------------- */

/* Handlers called by the session decoder; any may be NULL. */
struct dts_ipc_handlers {
    /* HELLO accepted. */
    void (*on_hello)(void *aux, const struct dts_ipc_hello *h);
    /* SCHEMA accepted. */
    void (*on_schema)(void *aux, const struct dts_ipc_schema *s);
    /* One event (data is t->size bytes, not aligned). */
    void (*on_event)(void *aux, const struct dts_ipc_evtype *t,
                     unsigned type_index, const uint8_t *data);
    /* One counter sample. */
    void (*on_counter)(void *aux, int64_t time_ns,
                       const struct dts_ipc_counter *c);
    /* One flow record. */
    void (*on_netflow)(void *aux, const struct nf_flow *f);
    /* BYE received. */
    void (*on_bye)(void *aux);
};

struct dts_ipc_session;

/* New session decoder. max_frame 0 = DTS_IPC_DEFAULT_MAX_FRAME. */
struct dts_ipc_session *dts_ipc_session_create(const struct dts_ipc_handlers *h,
                                               void *aux, size_t max_frame);
/* Feed bytes as they arrive (any split). Complete frames are decoded and
 * handlers called; a partial frame is kept. 0, or a negative errno on the
 * first protocol violation (-EBADMSG, -EMSGSIZE, -EPROTO for wrong order,
 * -EPROTONOSUPPORT for a version); after an error every call fails. */
int dts_ipc_session_feed(struct dts_ipc_session *s, const void *buf, size_t len,
                         struct dpf_error *err);
/* The hello of the session, or NULL before HELLO. */
const struct dts_ipc_hello *
dts_ipc_session_hello(const struct dts_ipc_session *s);
/* The schema of the session, or NULL before SCHEMA. */
const struct dts_ipc_schema *
dts_ipc_session_schema(const struct dts_ipc_session *s);
/* True once BYE was decoded. */
bool dts_ipc_session_done(const struct dts_ipc_session *s);
/* Frames decoded so far. */
uint64_t dts_ipc_session_frames(const struct dts_ipc_session *s);
void dts_ipc_session_free(struct dts_ipc_session *s);

#endif
