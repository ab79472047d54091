/* websocket: RFC 6455 frames, the handshake's accept key and subprotocol
 * choice, for the kubelet API's exec/attach streams (dpulet) and its
 * tests.
 *
 * Written by hand on purpose (style.md prefers Debian's libraries):
 * Debian's libwebsockets is a whole HTTP server and client with its own
 * event loop and connection handling; here the connection is already
 * upgraded by libmicrohttpd (lib/net/http-server), and what is missing is
 * the frame format alone. The parser is small, bounds every length
 * against the bytes present and a caller's maximum, and is fuzzed
 * (fuzz/fuzz-websocket.c, corpus fuzz/corpus/websocket/).
 *
 * Threads: pure functions; no state. Memory: ws_accept_key() returns a
 * malloc'd string the caller frees; the parser unmasks in place and
 * points into the caller's buffer. */
#ifndef DPF_WEBSOCKET_H
#define DPF_WEBSOCKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

/* Largest frame header: 2 + 8 (64-bit length) + 4 (mask key). */
#define WS_MAX_HEADER 14

struct ws_frame {
    bool fin;         /* last frame of its message */
    uint8_t opcode;   /* enum ws_opcode */
    uint8_t *payload; /* into the parsed buffer, unmasked */
    size_t len;       /* payload bytes */
};

/* Parse one frame at buf[0..len). A server passes require_mask (RFC 6455
 * 5.1: a client's frames are masked; an unmasked one is a protocol
 * error). The payload is unmasked in place. Returns the frame's size in
 * bytes (> 0), 0 when buf holds only part of it, -EPROTO for a frame
 * RFC 6455 forbids (reserved bits or opcodes, a fragmented or oversized
 * control frame, a non-minimal length, a mask where none is allowed...),
 * -EMSGSIZE when the payload exceeds max_payload. */
ssize_t ws_frame_parse(uint8_t *buf, size_t len, bool require_mask,
                       size_t max_payload, struct ws_frame *f);

/* Write the header of a frame with len payload bytes into out; with
 * mask_key (4 bytes; a client's frames) the header carries it and the
 * caller masks the payload with ws_mask(). Returns the header's length. */
size_t ws_frame_header(uint8_t out[WS_MAX_HEADER], uint8_t opcode, bool fin,
                       size_t len, const uint8_t *mask_key);

/* XOR data with the 4-byte key, starting at key offset off. */
void ws_mask(uint8_t *data, size_t len, const uint8_t key[4], size_t off);

/* Sec-WebSocket-Accept for a client's Sec-WebSocket-Key:
 * base64(SHA-1(key + the RFC's GUID)). NULL for a key that is not 24
 * characters of base64 (16 bytes). */
char *ws_accept_key(const char *key);

/* The first of ours (NULL-terminated, preference order) that the client's
 * Sec-WebSocket-Protocol list offers (comma-separated, spaces allowed),
 * or NULL. */
const char *ws_pick_protocol(const char *offer, const char *const *ours);

#endif
