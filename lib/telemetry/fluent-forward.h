/* fluent-forward: the Fluentd Forward protocol v1 (msgpack over TCP).
 *
 * The codec only; the listener and the sender that move frames over TCP
 * are dts's (dts/dts-forward.h). Two parts:
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
 *    accepted and ignored. The HELO/PING/PONG handshake (shared-key auth)
 *    is the listener's (dts/dts-forward.c), which checks a PING with
 *    ff_scan_object() before msgpack-c builds it;
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

#include "lib/base/error.h"
#include "lib/base/util.h"

/* Default bound of one decoded frame (bytes on the wire). */
#define FF_DEFAULT_MAX_FRAME (8u * 1024 * 1024)
/* Longest tag accepted or sent. */
#define FF_MAX_TAG 1024
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

/* A Forward message built in pieces by a sender that queues entries
 * already encoded with ff_encode_entry(): the head ([tag, [ with room for
 * n entries), then the n entries, then the tail (the options map with
 * "size" n and "chunk" unless NULL). */
void ff_encode_forward_head(struct dbuf *out, const char *tag, size_t n);
void ff_encode_forward_tail(struct dbuf *out, size_t n, const char *chunk);

/* Decode one {"ack": chunk} answer at the start of buf[0..len). Returns
 * the bytes it used (> 0; chunk gets the id, or "" when the map has no
 * string "ack" of fewer than size bytes), 0 when incomplete, -EBADMSG when
 * it can never be valid. */
long ff_decode_ack(const void *buf, size_t len, char *chunk, size_t size);
/* Check that buf starts with one complete msgpack object, nested at most
 * max_depth deep, every length within the bytes present, before msgpack-c
 * builds it (a header announcing 4 billion elements must not become an
 * allocation). Its size, 0 when more bytes are needed, or -EBADMSG. */
long ff_scan_object(const void *buf, size_t len, unsigned max_depth);

#endif
