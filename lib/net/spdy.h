/* spdy: SPDY/3.1 frames and compressed header blocks, for the kubelet
 * API's exec/attach streams with kubectl before 1.30 (dpulet) and its
 * tests.
 *
 * The protocol: draft-mbelshe-httpbis-spdy-00 ("SPDY Protocol - Draft 3",
 * section 2: framing; 2.6.10: header blocks, zlib-compressed with a
 * fixed dictionary, 2.6.10.1), plus SPDY/3.1's session-wide
 * WINDOW_UPDATE (stream 0). Kubernetes' SPDY client (moby/spdystream)
 * uses this framing with header names in lower case.
 *
 * Written by hand on purpose (style.md prefers Debian's libraries):
 * Debian has no SPDY library left (spdylay is gone; nghttp2 speaks
 * HTTP/2 only). What is here is the frame format and the header blocks;
 * the compression itself is zlib's. The parser bounds every length
 * against the bytes present and a caller's maximum, and is fuzzed with
 * the header-block decoder (fuzz/fuzz-spdy.c, corpus fuzz/corpus/spdy/).
 *
 * Threads: the frame functions are pure; a struct spdy_zin or
 * spdy_zout is one direction of one session's header compression and is
 * used by one thread at a time. Memory: what a parsed frame points to
 * lies in the caller's buffer; decoded headers are owned by the struct
 * spdy_headers (spdy_headers_free()); the spdy_put_*() writers append
 * to a caller's dbuf. */
#ifndef DPF_SPDY_H
#define DPF_SPDY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/base/util.h"

#define SPDY_VERSION 3
/* Every frame starts with 8 bytes (2.2). */
#define SPDY_FRAME_HEADER 8
/* The 24-bit length field's limit. */
#define SPDY_MAX_LENGTH 0xffffffu
/* A stream's and the session's window before any WINDOW_UPDATE (2.6.8). */
#define SPDY_INITIAL_WINDOW 65536u

enum spdy_type {
    SPDY_DATA = 0, /* not a control frame; our name for DATA */
    SPDY_SYN_STREAM = 1,
    SPDY_SYN_REPLY = 2,
    SPDY_RST_STREAM = 3,
    SPDY_SETTINGS = 4,
    SPDY_PING = 6,
    SPDY_GOAWAY = 7,
    SPDY_HEADERS = 8,
    SPDY_WINDOW_UPDATE = 9,
};

enum {
    SPDY_FLAG_FIN = 0x01,
    SPDY_FLAG_UNIDIRECTIONAL = 0x02, /* SYN_STREAM */
};

/* RST_STREAM status codes (2.6.3). */
enum {
    SPDY_RST_PROTOCOL_ERROR = 1,
    SPDY_RST_INVALID_STREAM = 2,
    SPDY_RST_REFUSED_STREAM = 3,
    SPDY_RST_CANCEL = 5,
    SPDY_RST_INTERNAL_ERROR = 6,
    SPDY_RST_FRAME_TOO_LARGE = 11,
};

/* GOAWAY status codes (2.6.6). */
enum {
    SPDY_GOAWAY_OK = 0,
    SPDY_GOAWAY_PROTOCOL_ERROR = 1,
    SPDY_GOAWAY_INTERNAL_ERROR = 2,
};

/* SETTINGS ids we look at (2.6.4). */
#define SPDY_SETTINGS_INITIAL_WINDOW_SIZE 7

struct spdy_frame {
    uint16_t type;      /* enum spdy_type; unknown control types pass through */
    uint8_t flags;      /* SPDY_FLAG_* */
    uint32_t stream_id; /* DATA, SYN_*, RST_STREAM, HEADERS, WINDOW_UPDATE;
                         * GOAWAY: the last good stream */
    uint32_t assoc_id;  /* SYN_STREAM */
    uint8_t priority;   /* SYN_STREAM, 0 (highest) to 7 */
    uint32_t value;     /* RST_STREAM and GOAWAY: status; PING: id;
                         * WINDOW_UPDATE: delta */
    const uint8_t *payload; /* DATA: the data; SYN_STREAM, SYN_REPLY,
                             * HEADERS: the compressed header block;
                             * SETTINGS and unknown types: the body */
    size_t len;             /* bytes at payload */
};

/* Parse one frame at buf[0..len). Returns its size in bytes (> 0), 0
 * when buf holds only part of it, -EMSGSIZE when its length field
 * exceeds max_len (checked from the 8-byte header alone, so the caller
 * can refuse before buffering it), -EPROTO for a frame the protocol
 * forbids: a control frame of another version, a fixed-size frame of
 * the wrong size, stream id 0 where a stream is needed, a zero
 * WINDOW_UPDATE delta. Control frames of unknown types parse (the spec
 * says to ignore them) with payload/len their body. */
ssize_t spdy_frame_parse(const uint8_t *buf, size_t len, size_t max_len,
                         struct spdy_frame *f);

/* SETTINGS: the value of setting id, if the frame carries it. */
bool spdy_settings_get(const struct spdy_frame *f, uint32_t id,
                       uint32_t *value);

/* --- header blocks (2.6.10) --- */

/* Header-block decompression, one per session (the client's zlib stream
 * runs across all its frames). */
struct spdy_zin;
struct spdy_zin *spdy_zin_new(void);
void spdy_zin_free(struct spdy_zin *z);

/* Header-block compression for what we send. */
struct spdy_zout;
struct spdy_zout *spdy_zout_new(void);
void spdy_zout_free(struct spdy_zout *z);

struct spdy_headers {
    size_t n;
    char **names;  /* lower case as received */
    char **values; /* several values of a name: NUL-separated, so C
                    * string functions see the first one */
    size_t *value_lens;
};

/* Decompress and parse the header block at block[0..len) into out
 * (cleared first). At most max_out bytes decompressed and max_pairs
 * pairs. Returns 0, -EMSGSIZE past a limit, -EPROTO for a block zlib or
 * the pair format refuses (a length past the end, bytes after the last
 * pair, an empty name). After an error the session's decompressor is
 * out of step: end the session. */
int spdy_headers_decode(struct spdy_zin *z, const uint8_t *block, size_t len,
                        size_t max_out, size_t max_pairs,
                        struct spdy_headers *out);
/* The value of name (case-insensitive), or NULL. */
const char *spdy_headers_get(const struct spdy_headers *h, const char *name);
void spdy_headers_free(struct spdy_headers *h);

/* The dictionary of 2.6.10.1 (tests). */
const uint8_t *spdy_dictionary(size_t *len);

/* --- writing frames: each appends one whole frame to out --- */

/* DATA; len at most SPDY_MAX_LENGTH. */
void spdy_put_data(struct dbuf *out, uint32_t stream_id, uint8_t flags,
                   const void *data, size_t len);
/* SYN_REPLY with the pairs (name, value, name, value, ..., NULL; names
 * in lower case) compressed by z. */
void spdy_put_syn_reply(struct dbuf *out, struct spdy_zout *z,
                        uint32_t stream_id, uint8_t flags,
                        const char *const *pairs);
/* SYN_STREAM (tests: what a client sends). */
void spdy_put_syn_stream(struct dbuf *out, struct spdy_zout *z,
                         uint32_t stream_id, uint8_t flags,
                         const char *const *pairs);
void spdy_put_rst_stream(struct dbuf *out, uint32_t stream_id, uint32_t status);
void spdy_put_ping(struct dbuf *out, uint32_t id);
void spdy_put_goaway(struct dbuf *out, uint32_t last_good, uint32_t status);
void spdy_put_window_update(struct dbuf *out, uint32_t stream_id,
                            uint32_t delta);

#endif
