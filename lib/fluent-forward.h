/* fluent-forward: the Fluentd Forward protocol v1 (msgpack over TCP).
 *
 * Four parts:
 *  - an encoder for Forward mode
 *      [tag, [[EventTime, {record}], ...], {"chunk": id, "size": n}]
 *    with EventTime = msgpack ext type 0, 4-byte BE seconds + 4-byte BE
 *    nanoseconds;
 *  - a strict, bounded decoder for all four modes (Message, Forward,
 *    PackedForward, CompressedPackedForward with gzip). Before msgpack-c
 *    builds any object, a hand-written scanner walks the frame and checks
 *    every length against the bytes present, the nesting depth and the
 *    frame size, so a 5-byte header announcing 4 billion elements is an
 *    error rather than a huge allocation. Heartbeats (msgpack nil) are
 *    accepted and ignored. The HELO/PING/PONG handshake (shared-key auth) is
 *    not implemented: a client that sends PING is answered with nothing and
 *    its frame is counted as an error;
 *  - a listener: a TCP server that runs its OWN THREAD (poll loop). For each
 *    event it calls the configured callback FROM THAT THREAD with (tag,
 *    time, record); the callback must be thread-safe with respect to the
 *    rest of the program. It answers {"ack": chunk} when a message carries
 *    a "chunk" option. A connection that sends a bad frame is closed and
 *    counted; the listener itself never stops on bad input;
 *  - a client: a sender thread that connects to host:port, sends Forward
 *    mode batches with EventTime, optionally asks for acks (chunk ids) and
 *    resends an unacknowledged batch after a timeout, and reconnects with
 *    exponential backoff. ff_client_post() never blocks on the network: it
 *    encodes the record, appends it to a bounded in-memory queue and
 *    returns. When the queue is full the OLDEST queued record is dropped
 *    (counted in `dropped`): for telemetry the newest sample is the most
 *    useful one.
 *
 * Ownership: records handed to callbacks are borrowed (valid during the
 * call; json_incref() to keep them). Strings and buffers returned by the
 * encoder belong to the caller. */
#ifndef DPF_FLUENT_FORWARD_H
#define DPF_FLUENT_FORWARD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/error.h"
#include "lib/util.h"

/* Default TCP port of our Forward listener (fluent_aggr provider). */
#define FF_DEFAULT_LISTEN_PORT 42442
/* Default port of a Fluentd/Fluent Bit forward input (client target). */
#define FF_DEFAULT_CLIENT_PORT 24224
/* Default bound of one decoded frame (bytes on the wire). */
#define FF_DEFAULT_MAX_FRAME (8u * 1024 * 1024)
/* Default bound of msgpack nesting depth inside a frame. */
#define FF_DEFAULT_MAX_DEPTH 16

/* One event to encode: time plus a JSON object. */
struct ff_entry {
    int64_t time_ns; /* wall clock, nanoseconds since the epoch */
    json_t *record;  /* borrowed; must be a JSON object */
};

/* Encode one Forward-mode message into out (appended). chunk may be NULL
 * (no ack requested); the "size" option is always written. 0 or -EINVAL
 * (a record is not an object). */
int ff_encode_forward(struct dbuf *out, const char *tag,
                      const struct ff_entry *entries, size_t n,
                      const char *chunk);

/* Encode one [EventTime, record] entry (used by the client's queue). */
int ff_encode_entry(struct dbuf *out, int64_t time_ns, json_t *record);

/* Decoder limits. Zero fields mean the FF_DEFAULT_* values. */
struct ff_limits {
    size_t max_frame;   /* largest frame accepted, bytes */
    unsigned max_depth; /* deepest msgpack nesting accepted */
    size_t max_entries; /* most events in one frame (0 = 1,000,000) */
};

/* Called once per decoded event. tag and record are borrowed. */
typedef void (*ff_event_cb)(void *aux, const char *tag, int64_t time_ns,
                            json_t *record);

/* Result of decoding one frame. */
struct ff_frame_info {
    size_t n_events; /* events delivered to the callback */
    bool heartbeat;  /* the frame was a msgpack nil */
    char chunk[128]; /* "chunk" option ("" when absent): ack it */
};

/* Decode the first complete frame in buf[0..len). Returns the number of
 * bytes the frame used (> 0), 0 when the frame is incomplete (read more),
 * or a negative errno: -EMSGSIZE (frame exceeds the limit), -EBADMSG
 * (wrong types, bad ext, too deep, size mismatch, bad gzip). Events are
 * delivered only when the whole frame is valid. err (may be NULL) gets a
 * one-line reason. */
long ff_decode_frame(const void *buf, size_t len, const struct ff_limits *lim,
                     ff_event_cb cb, void *aux, struct ff_frame_info *info,
                     struct dpf_error *err);

/* Encode the {"ack": chunk} answer into out. */
void ff_encode_ack(struct dbuf *out, const char *chunk);

/* ---- listener ---------------------------------------------------------- */

/* Listener configuration. */
struct ff_server_config {
    const char *address;     /* bind address; NULL = "127.0.0.1" */
    uint16_t port;           /* 0 = pick a free port (see ff_server_port) */
    struct ff_limits limits; /* decoder bounds */
    unsigned max_clients;    /* concurrent connections (0 = 64) */
    ff_event_cb cb;          /* called from the listener thread */
    void *aux;               /* passed to cb */
};

/* Listener counters (monotonic). */
struct ff_server_stats {
    uint64_t connections; /* accepted connections */
    uint64_t frames;      /* frames decoded */
    uint64_t events;      /* events delivered to the callback */
    uint64_t acks;        /* ack answers written */
    uint64_t errors;      /* bad frames, oversized frames, I/O errors */
};

struct ff_server;

/* Bind, listen and start the listener thread. NULL on error (err filled:
 * which address/port and why). */
struct ff_server *ff_server_start(const struct ff_server_config *cfg,
                                  struct dpf_error *err);
/* The bound TCP port (useful when cfg.port was 0). */
uint16_t ff_server_port(const struct ff_server *s);
/* Snapshot of the counters; thread-safe. */
void ff_server_get_stats(const struct ff_server *s, struct ff_server_stats *st);
/* Stop the thread, close every socket, free. NULL is a no-op. */
void ff_server_stop(struct ff_server *s);

/* ---- client ------------------------------------------------------------ */

/* Client configuration. Zero fields take the documented defaults. */
struct ff_client_config {
    const char *host;        /* target host or address (required) */
    uint16_t port;           /* 0 = 24224 */
    const char *tag;         /* tag of every message; NULL = doca_telemetry */
    bool require_ack;        /* send "chunk" and wait for {"ack"} */
    unsigned ack_timeout_ms; /* resend after this (0 = 5000) */
    unsigned buffer_records; /* queue bound in records (0 = 10000) */
    size_t buffer_bytes;     /* queue bound in bytes (0 = 16 MiB) */
    unsigned batch_records;  /* most records per message (0 = 1000) */
    unsigned backoff_min_ms; /* first reconnect delay (0 = 100) */
    unsigned backoff_max_ms; /* reconnect delay cap (0 = 30000) */
    unsigned connect_timeout_ms; /* TCP connect timeout (0 = 3000) */
};

/* Client counters (monotonic except queued/connected). */
struct ff_client_stats {
    uint64_t sent;    /* records written to the peer */
    uint64_t acked;   /* records the peer acknowledged */
    uint64_t dropped; /* records dropped because the queue was full */
    uint64_t errors;  /* connect/write failures, ack timeouts, bad acks */
    uint64_t resent;  /* records sent again after an ack timeout */
    uint64_t queued;  /* records waiting now (gauge) */
    bool connected;   /* a TCP connection is up now */
};

struct ff_client;

/* Start the sender thread (it connects in the background). NULL on a
 * config error (err filled). */
struct ff_client *ff_client_start(const struct ff_client_config *cfg,
                                  struct dpf_error *err);
/* Queue one record (a JSON object, borrowed: it is encoded before return).
 * Never blocks on the network. 0, or -EINVAL for a non-object. */
int ff_client_post(struct ff_client *c, int64_t time_ns, json_t *record);
/* Snapshot of the counters; thread-safe. */
void ff_client_get_stats(struct ff_client *c, struct ff_client_stats *st);
/* Stop the sender thread (a last attempt to send what is queued is made
 * only when connected, bounded by 1 s) and free. NULL is a no-op. */
void ff_client_stop(struct ff_client *c);

#endif
