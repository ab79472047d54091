/* dts-forward: Fluentd Forward over TCP for dts, on the codec in
 * lib/telemetry/fluent-forward.h. Two parts:
 *  - a listener: a TCP server that runs its OWN THREAD (poll loop). For each
 *    event it calls the configured callback FROM THAT THREAD with (tag,
 *    time, record); the callback must be thread-safe with respect to the
 *    rest of the program. It answers {"ack": chunk} when a message carries
 *    a "chunk" option. A connection that sends a bad frame is closed and
 *    counted; the listener itself never stops on bad input. With a shared
 *    key it first runs Forward's handshake: HELO (random 16-byte nonce, no
 *    user auth), then the client's PING must carry hex(sha512(salt +
 *    hostname + nonce + key)); PONG true with our own digest, or PONG
 *    false and nothing more is read (counted in errors and
 *    auth_failures). The key is never logged;
 *  - a client: a sender thread that connects to host:port, sends Forward
 *    mode batches with EventTime, optionally asks for acks (chunk ids) and
 *    resends an unacknowledged batch after a timeout, and reconnects with
 *    exponential backoff. dts_forward_client_post() never blocks on the network: it
 *    encodes the record, appends it to a bounded in-memory queue and
 *    returns. When the queue is full the OLDEST queued record is dropped
 *    (counted in `dropped`): for telemetry the newest sample is the most
 *    useful one.
 *
 */
#ifndef DPF_DTS_FORWARD_H
#define DPF_DTS_FORWARD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/telemetry/fluent-forward.h"

/* Default TCP port of our Forward listener (fluent_aggr provider). */
#define DTS_FORWARD_LISTEN_PORT 42442
/* Default port of a Fluentd/Fluent Bit forward input (client target). */
#define DTS_FORWARD_CLIENT_PORT 24224

/* ---- listener ---------------------------------------------------------- */

/* Listener configuration. */
struct dts_forward_server_config {
    const char *address; /* bind address; NULL = "127.0.0.1" */
    uint16_t port; /* 0 = pick a free port (see dts_forward_server_port) */
    struct ff_limits limits; /* decoder bounds */
    unsigned max_clients;    /* concurrent connections (0 = 64) */
    ff_event_cb cb;          /* called from the listener thread */
    void *aux;               /* passed to cb */
    const char *shared_key;  /* non-NULL: Forward's shared-key handshake
                              * (HELO, PING, PONG) before any data; copied */
    const char *hostname;    /* our name in PONG (NULL = gethostname) */
    size_t buffered_max;     /* partial frames held over all connections
                              * (0 = DTS_FORWARD_BUFFERED_MAX) */
};
/* Default bound of partially received frames held by the listener. */
#define DTS_FORWARD_BUFFERED_MAX (32u * 1024 * 1024)
/* With every connection slot taken, a new sender replaces the connection
 * silent longest once that one has been silent this long: idle or
 * slow-loris peers cannot lock senders out, and Forward clients reconnect
 * when closed. */
#define DTS_FORWARD_EVICT_IDLE_MS 1000

/* Listener counters (monotonic). */
struct dts_forward_server_stats {
    uint64_t connections;   /* accepted connections */
    uint64_t frames;        /* frames decoded */
    uint64_t events;        /* events delivered to the callback */
    uint64_t acks;          /* ack answers written */
    uint64_t errors;        /* bad frames, oversized frames, I/O errors,
                           * failed authentications */
    uint64_t auth_failures; /* of which: refused handshakes */
    uint64_t over_budget;   /* of which: closed at buffered_max */
    uint64_t evicted;       /* idle connections closed to admit a new one */
};

struct dts_forward_server;

/* Bind, listen and start the listener thread. NULL on error (err filled:
 * which address/port and why). */
struct dts_forward_server *
dts_forward_server_start(const struct dts_forward_server_config *cfg,
                         struct dpf_error *err);
/* The bound TCP port (useful when cfg.port was 0). */
uint16_t dts_forward_server_port(const struct dts_forward_server *s);
/* Snapshot of the counters; thread-safe. */
void dts_forward_server_get_stats(const struct dts_forward_server *s,
                                  struct dts_forward_server_stats *st);
/* Stop the thread, close every socket, free. NULL is a no-op. */
void dts_forward_server_stop(struct dts_forward_server *s);

/* ---- client ------------------------------------------------------------ */

/* Client configuration. Zero fields take the documented defaults. */
struct dts_forward_client_config {
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
struct dts_forward_client_stats {
    uint64_t sent;    /* records written to the peer */
    uint64_t acked;   /* records the peer acknowledged */
    uint64_t dropped; /* records dropped because the queue was full */
    uint64_t errors;  /* connect/write failures, ack timeouts, bad acks */
    uint64_t resent;  /* records sent again after an ack timeout */
    uint64_t queued;  /* records waiting now (gauge) */
    bool connected;   /* a TCP connection is up now */
};

struct dts_forward_client;

/* Start the sender thread (it connects in the background). NULL on a
 * config error (err filled). */
struct dts_forward_client *
dts_forward_client_start(const struct dts_forward_client_config *cfg,
                         struct dpf_error *err);
/* Queue one record (a JSON object, borrowed: it is encoded before return).
 * Never blocks on the network. 0, or -EINVAL for a non-object. */
int dts_forward_client_post(struct dts_forward_client *c, int64_t time_ns,
                            json_t *record);
/* Snapshot of the counters; thread-safe. */
void dts_forward_client_get_stats(struct dts_forward_client *c,
                                  struct dts_forward_client_stats *st);
/* Stop the sender thread (a last attempt to send what is queued is made
 * only when connected, bounded by 1 s) and free. NULL is a no-op. */
void dts_forward_client_stop(struct dts_forward_client *c);

#endif
