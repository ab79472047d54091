/* websocket: see websocket.h. */
#include "lib/net/websocket.h"

#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>

#include "lib/base/base64.h"
#include "lib/base/util.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

ssize_t
ws_frame_parse(uint8_t *buf, size_t len, bool require_mask, size_t max_payload,
               struct ws_frame *f)
{
    if (len < 2) {
        return 0;
    }
    uint8_t b0 = buf[0], b1 = buf[1];
    if (b0 & 0x70) {
        return -EPROTO; /* RSV1-3 without a negotiated extension */
    }
    uint8_t op = b0 & 0x0f;
    bool control = op & 0x8;
    if (op != WS_OP_CONT && op != WS_OP_TEXT && op != WS_OP_BINARY &&
        op != WS_OP_CLOSE && op != WS_OP_PING && op != WS_OP_PONG) {
        return -EPROTO;
    }
    bool fin = b0 & 0x80;
    bool masked = b1 & 0x80;
    if (masked != require_mask) {
        return -EPROTO;
    }
    uint64_t plen = b1 & 0x7f;
    size_t pos = 2;
    if (plen == 126) {
        if (len < pos + 2) {
            return 0;
        }
        plen = ((uint64_t) buf[2] << 8) | buf[3];
        pos += 2;
        if (plen < 126) {
            return -EPROTO;
        }
    } else if (plen == 127) {
        if (len < pos + 8) {
            return 0;
        }
        plen = 0;
        for (int i = 0; i < 8; i++) {
            plen = (plen << 8) | buf[2 + i];
        }
        pos += 8;
        if (plen < 65536 || (plen >> 63)) {
            return -EPROTO;
        }
    }
    if (control && (!fin || plen > 125)) {
        return -EPROTO;
    }
    if (plen > max_payload) {
        return -EMSGSIZE;
    }
    uint8_t key[4] = {0};
    if (masked) {
        if (len < pos + 4) {
            return 0;
        }
        memcpy(key, buf + pos, 4);
        pos += 4;
    }
    if (len - pos < plen) {
        return 0;
    }
    if (masked) {
        ws_mask(buf + pos, (size_t) plen, key, 0);
    }
    f->fin = fin;
    f->opcode = op;
    f->payload = buf + pos;
    f->len = (size_t) plen;
    return (ssize_t) (pos + plen);
}

size_t
ws_frame_header(uint8_t out[WS_MAX_HEADER], uint8_t opcode, bool fin,
                size_t len, const uint8_t *mask_key)
{
    size_t pos = 0;
    out[pos++] = (uint8_t) ((fin ? 0x80 : 0) | (opcode & 0x0f));
    uint8_t m = mask_key ? 0x80 : 0;
    if (len < 126) {
        out[pos++] = (uint8_t) (m | len);
    } else if (len <= 0xffff) {
        out[pos++] = m | 126;
        out[pos++] = (uint8_t) (len >> 8);
        out[pos++] = (uint8_t) len;
    } else {
        out[pos++] = m | 127;
        for (int i = 7; i >= 0; i--) {
            out[pos++] = (uint8_t) ((uint64_t) len >> (8 * i));
        }
    }
    if (mask_key) {
        memcpy(out + pos, mask_key, 4);
        pos += 4;
    }
    return pos;
}

void
ws_mask(uint8_t *data, size_t len, const uint8_t key[4], size_t off)
{
    for (size_t i = 0; i < len; i++) {
        data[i] ^= key[(i + off) & 3];
    }
}

char *
ws_accept_key(const char *key)
{
    if (!key || strlen(key) != 24 || base64_check(key, 24) != 16) {
        return NULL;
    }
    char in[24 + sizeof(WS_GUID)];
    memcpy(in, key, 24);
    memcpy(in + 24, WS_GUID, sizeof(WS_GUID));
    uint8_t digest[20];
    if (gnutls_hash_fast(GNUTLS_DIG_SHA1, in, strlen(in), digest) < 0) {
        return NULL;
    }
    return base64_encode(digest, sizeof digest, BASE64_STD);
}

const char *
ws_pick_protocol(const char *offer, const char *const *ours)
{
    if (!offer) {
        return NULL;
    }
    for (size_t i = 0; ours[i]; i++) {
        size_t n = strlen(ours[i]);
        const char *p = offer;
        while (*p) {
            while (*p == ' ' || *p == '\t' || *p == ',') {
                p++;
            }
            const char *e = p;
            while (*e && *e != ',' && *e != ' ' && *e != '\t') {
                e++;
            }
            if ((size_t) (e - p) == n && !memcmp(p, ours[i], n)) {
                return ours[i];
            }
            p = e;
        }
    }
    return NULL;
}
