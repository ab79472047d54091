/* dts-exporter: the client library applications use to send telemetry to
 * the dts daemon (our open counterpart of DOCA's telemetry exporter).
 *
 * Usage:
 *   struct dts_exporter_options o = {.source_id = "app1",
 *                                    .source_tag = "rack7"};
 *   struct dts_exporter *ex = dts_exporter_create(&o);
 *   static const struct dts_exporter_field f[] = {
 *       {"timestamp", DTS_EXPORTER_TIMESTAMP, 1},
 *       {"port", DTS_EXPORTER_U16, 1},
 *       {"name", DTS_EXPORTER_STRING, 32},     // fixed 32 bytes, NUL padded
 *   };
 *   int t = dts_exporter_add_type(ex, "my_event", f, 3);
 *   dts_exporter_start(ex);                   // connects, sends the schema
 *   struct my_event ev = {...};               // __attribute__((packed))
 *   dts_exporter_send_event(ex, t, &ev, sizeof ev);
 *   dts_exporter_send_counter(ex, "rx_drops", 12);
 *   dts_exporter_send_netflow(ex, &flow);
 *   dts_exporter_destroy(ex);                 // flushes, says BYE
 *
 * Events are packed structs: fields in declaration order, no padding,
 * little-endian (the byte order of every platform dts runs on). A STRING
 * field of count n occupies n bytes (NUL padded); other types occupy
 * count elements of their natural size (IP4 4, IP6 16, MAC 6, TIMESTAMP 8
 * = nanoseconds since the epoch).
 *
 * Transport: a Unix stream socket `dts.sock` in the IPC directory, which is
 * options.ipc_dir, else $DTS_IPC_DIR, else DTS_EXPORTER_DEFAULT_IPC_DIR
 * (DOCA's path). Data is batched in a buffer (options.buffer_bytes) and
 * written when full, on dts_exporter_flush() and on destroy. When dts is
 * not running the calls still succeed: records are dropped and counted and
 * the library retries the connection at most once a second. With
 * options.block_when_full the library waits for dts instead of dropping
 * while connected. The wire protocol is docs/services/dts-ipc.md.
 *
 * Not thread-safe: use one exporter per thread. The library never exits,
 * aborts or prints inside your process; functions return 0 / a
 * non-negative value or a negative errno. Every pointer passed in is
 * borrowed for the duration of the call.
 *
 * Out of memory: no function aborts when an allocation fails.
 * dts_exporter_create() returns NULL with errno ENOMEM; every function
 * returning int returns -ENOMEM, and then nothing changed (add_type: the
 * type was not added; a send: its records were not queued and count in
 * stats.dropped; start: not connected, retried like an absent dts).
 * dts_exporter_destroy() frees everything whatever failed before. A NULL
 * exporter makes a function return -EINVAL (size: 0) rather than crash. */
#ifndef DTS_EXPORTER_H
#define DTS_EXPORTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Where dts listens unless told otherwise (DOCA's ipc_sockets dir). */
#define DTS_EXPORTER_DEFAULT_IPC_DIR \
    "/opt/mellanox/doca/services/telemetry/ipc_sockets"
/* File name of the socket inside the IPC directory. */
#define DTS_EXPORTER_SOCKET_NAME "dts.sock"

/* Field types of an event type. Values are part of the wire protocol. */
enum dts_exporter_field_type {
    DTS_EXPORTER_U8 = 1,         /* uint8_t */
    DTS_EXPORTER_U16 = 2,        /* uint16_t */
    DTS_EXPORTER_U32 = 3,        /* uint32_t */
    DTS_EXPORTER_U64 = 4,        /* uint64_t */
    DTS_EXPORTER_I8 = 5,         /* int8_t */
    DTS_EXPORTER_I16 = 6,        /* int16_t */
    DTS_EXPORTER_I32 = 7,        /* int32_t */
    DTS_EXPORTER_I64 = 8,        /* int64_t */
    DTS_EXPORTER_FLOAT = 9,      /* IEEE-754 binary32 */
    DTS_EXPORTER_DOUBLE = 10,    /* IEEE-754 binary64 */
    DTS_EXPORTER_STRING = 11,    /* count bytes, NUL padded */
    DTS_EXPORTER_IP4 = 12,       /* 4 bytes, network order */
    DTS_EXPORTER_IP6 = 13,       /* 16 bytes, network order */
    DTS_EXPORTER_MAC = 14,       /* 6 bytes */
    DTS_EXPORTER_TIMESTAMP = 15, /* uint64_t ns since the epoch */
};

/* One field of an event type. */
struct dts_exporter_field {
    const char *name;                  /* [A-Za-z0-9_], 1..63 chars */
    enum dts_exporter_field_type type; /* element type */
    uint16_t count;                    /* array length / string bytes (>=1) */
};

/* A flow record for NetFlow v9 / IPFIX re-export by dts. */
struct dts_exporter_netflow_record {
    uint8_t family;    /* 4 or 6 */
    uint8_t protocol;  /* IP protocol number */
    uint8_t tcp_flags; /* OR of TCP flags */
    uint8_t src[16];   /* source address, network order (4 bytes for v4) */
    uint8_t dst[16];   /* destination address */
    uint16_t src_port; /* host order */
    uint16_t dst_port; /* host order */
    uint64_t bytes;    /* octets */
    uint64_t packets;  /* packets */
    uint64_t start_ms; /* first packet, epoch ms */
    uint64_t end_ms;   /* last packet, epoch ms */
    uint32_t in_if;    /* input ifindex */
    uint32_t out_if;   /* output ifindex */
};

/* Options for dts_exporter_create(); zero/NULL fields take defaults. */
struct dts_exporter_options {
    const char *ipc_dir;     /* directory of dts.sock (see above) */
    const char *socket_path; /* full socket path; overrides ipc_dir */
    const char *schema_name; /* schema name (default "default") */
    const char *source_id;   /* source id (default: the process name) */
    const char *source_tag;  /* source tag (default "") */
    size_t buffer_bytes;     /* batch buffer (default 256 KiB, min 4 KiB) */
    bool block_when_full;    /* wait for dts instead of dropping */
};

/* One label of a labelled sample: name [a-zA-Z_][a-zA-Z0-9_]*, 1..63
 * bytes, not "__..." nor source_id / source_tag (dts adds those); value
 * UTF-8 without control characters, 0..127 bytes. */
struct dts_exporter_label {
    const char *name;
    const char *value;
};
/* At most this many labels per sample. */
#define DTS_EXPORTER_MAX_LABELS 16

/* Library counters. */
struct dts_exporter_stats {
    uint64_t events;   /* events handed to dts */
    uint64_t counters; /* counter samples handed to dts */
    uint64_t netflow;  /* flow records handed to dts */
    uint64_t dropped;  /* records dropped (dts absent or too slow) */
    uint64_t errors;   /* connect/write failures */
    bool connected;    /* the socket is connected now */
};

struct dts_exporter;

/* Create an exporter (not connected yet). NULL with errno on bad options
 * or out of memory. */
struct dts_exporter *dts_exporter_create(const struct dts_exporter_options *o);
/* Declare an event type before dts_exporter_start(). Returns its index
 * (>= 0) or -EINVAL (bad name/type/count), -EEXIST, -EBUSY (started),
 * -ENOMEM. */
int dts_exporter_add_type(struct dts_exporter *ex, const char *name,
                          const struct dts_exporter_field *fields,
                          size_t n_fields);
/* Packed size in bytes of one event of the type, or 0 if unknown. */
size_t dts_exporter_type_size(const struct dts_exporter *ex, int type_index);
/* Connect and send HELLO + SCHEMA. 0, or a negative errno when dts is not
 * reachable now or memory ran out (-ENOMEM); the exporter stays usable and
 * retries later. */
int dts_exporter_start(struct dts_exporter *ex);
/* Send count events of one type; events holds count packed events of
 * dts_exporter_type_size() bytes each. 0 (sent or dropped-and-counted),
 * -EINVAL (unknown type), -EPIPE (not started), -ENOMEM (the events not
 * yet queued were dropped and counted). The other send functions return
 * the same values. */
int dts_exporter_send_events(struct dts_exporter *ex, int type_index,
                             const void *events, size_t count);
/* One event; size must equal dts_exporter_type_size(). */
int dts_exporter_send_event(struct dts_exporter *ex, int type_index,
                            const void *event, size_t size);
/* A monotonic counter sample (name 1..127 chars). */
int dts_exporter_send_counter(struct dts_exporter *ex, const char *name,
                              uint64_t value);
/* A gauge sample. */
int dts_exporter_send_gauge(struct dts_exporter *ex, const char *name,
                            double value);
/* A counter / gauge sample with labels (0..DTS_EXPORTER_MAX_LABELS;
 * -EINVAL for a bad name, label or count). dts exports each distinct set
 * of label values as its own series. */
int dts_exporter_send_counter_labels(struct dts_exporter *ex, const char *name,
                                     uint64_t value,
                                     const struct dts_exporter_label *labels,
                                     size_t n_labels);
int dts_exporter_send_gauge_labels(struct dts_exporter *ex, const char *name,
                                   double value,
                                   const struct dts_exporter_label *labels,
                                   size_t n_labels);
/* One flow record for NetFlow/IPFIX re-export. */
int dts_exporter_send_netflow(struct dts_exporter *ex,
                              const struct dts_exporter_netflow_record *r);
/* Write everything buffered now. 0 or a negative errno. */
int dts_exporter_flush(struct dts_exporter *ex);
/* Counters. */
void dts_exporter_get_stats(const struct dts_exporter *ex,
                            struct dts_exporter_stats *st);
/* Flush, send BYE, close and free. NULL is a no-op. */
void dts_exporter_destroy(struct dts_exporter *ex);

#ifdef __cplusplus
}
#endif

#endif
