/* http-server: an HTTP/1.1 server (libmicrohttpd underneath) for the API
 * server, /metrics endpoints and every daemon's /healthz.
 *
 * One handler function receives every request once its body is complete
 * (bodies larger than max_body are refused with 413 before the handler
 * runs). The handler must answer exactly once, either synchronously with
 * http_respond*() or by turning the request into a stream with
 * http_respond_stream() (chunked transfer, used by watches), which any
 * thread may then write to until it closes it.
 *
 * An optional gate runs when a request's headers are in, before any of its
 * body is read (authentication belongs there: a client without credentials
 * never gets to upload a body). Framing the server cannot trust is refused
 * before the gate: more than one Content-Length, Transfer-Encoding together
 * with Content-Length (400), a transfer coding other than chunked (501).
 *
 * Connections: a client gets header_timeout_s to finish the TLS handshake
 * and send a request's headers (a deadline, not an idle timer); then
 * idle_timeout_s of silence is allowed while a request runs or while a
 * trusted connection waits for its next request. A connection is trusted
 * once the gate called http_request_mark_trusted() on one of its requests
 * (without a gate: once one of its requests was answered). Past
 * max_connections the oldest untrusted connection that is not in the
 * middle of a request is closed for every new one, so a flood of idle
 * sockets cannot lock out clients with credentials; MHD's own hard limit
 * is twice max_connections.
 *
 * Memory: each connection has a buffer of conn_memory bytes for its
 * request's head and the response being written, so a server that holds
 * thousands of kept-alive agent connections (kubelets' Lease renewals)
 * sets it small and a server for people's tools keeps room for long
 * selectors and tokens.
 *
 * TLS: with cert_file/key_file set the server speaks HTTPS only, TLS 1.2
 * and 1.3 with ECDHE and AEAD ciphers unless tls_priorities (a GnuTLS
 * priority string) says otherwise; with client_ca_file set it asks for
 * (but does not require) a client certificate and verifies it against
 * that CA, exposing the verified subject through http_request_peer_cn()/
 * _org(). With unix_path instead, the server listens on an owner-only
 * Unix socket with plain HTTP, and a peer running as this user or root
 * gets local_user/local_groups as its subject (SO_PEERCRED). Threads: `threads` worker threads run handlers (default 4);
 * handlers may block briefly (a store write) but must not wait on other
 * requests; the gate runs in the same worker threads. */
#ifndef DPF_HTTP_SERVER_H
#define DPF_HTTP_SERVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/error.h"

struct http_server;
struct http_request;
struct http_stream;
struct http_upgrade;

typedef void (*http_handler_fn)(void *arg, struct http_request *req);
/* The gate: runs once per request when its headers are in, before its
 * body is read, in a worker thread. Return true to go on (read the body,
 * then run the handler), or answer with http_respond*() and return false:
 * the answer goes out at once and, if the request announced a body, the
 * connection is closed after it instead of reading that body. Body and
 * streams are not available to the gate. */
typedef bool (*http_gate_fn)(void *arg, struct http_request *req);
/* Observers (metrics): http_observe_fn runs once per request when its
 * answer is settled (just before it is queued, or as the server writes
 * it itself), also for the gate's answers and the server's own refusals
 * (400, 408, 413, 503), in the thread that answers, with the request's
 * accessors valid. status is the answer's code and elapsed_ns the time
 * since the request's headers were in. For a long-running answer (a
 * stream or a 101 upgrade) long_running is true and what the observer
 * returns is handed to http_observe_end_fn once that answer ends (the
 * stream finished or the client went, the upgraded connection closed),
 * in any server thread, with the time since the headers again; for
 * other answers the return value is ignored. Both must be quick and
 * must not call back into the server. */
typedef void *(*http_observe_fn)(void *arg, struct http_request *req,
                                 int status, int64_t elapsed_ns,
                                 bool long_running);
typedef void (*http_observe_end_fn)(void *arg, void *token, int64_t elapsed_ns);

/* Defaults for the zero values in struct http_server_config. */
#define HTTP_DEFAULT_MAX_CONN 4096
#define HTTP_DEFAULT_HEADER_TIMEOUT_S 10
#define HTTP_DEFAULT_IDLE_TIMEOUT_S 90
/* TLS 1.3 (preferred) and 1.2; for 1.2 only ECDHE key exchange with
 * AES-GCM or ChaCha20-Poly1305, the server's order first. */
#define HTTP_DEFAULT_TLS_PRIORITIES                                        \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-KX-ALL:+ECDHE-ECDSA:"     \
    "+ECDHE-RSA:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:" \
    "-MAC-ALL:+AEAD:%SERVER_PRECEDENCE"

struct http_server_config {
    const char *address;        /* bind address, e.g. "127.0.0.1"; NULL=any */
    uint16_t port;              /* 0 = pick a free port (see _port()) */
    const char *cert_file;      /* PEM serving cert (chain); NULL = plain */
    const char *key_file;       /* PEM private key */
    const char *client_ca_file; /* PEM CA for client certs; NULL = none */
    const char *tls_priorities; /* GnuTLS priorities; NULL = the default */
    unsigned threads;           /* worker threads; 0 = 4 */
    size_t max_body;            /* request body limit; 0 = 3 MiB */
    unsigned max_connections;   /* untrusted ones evicted past it; 0=4096 */
    unsigned header_timeout_s;  /* handshake + request headers; 0 = 10 */
    unsigned idle_timeout_s;    /* silence within a request or between a
                                   trusted client's requests; 0 = 90 */
    size_t conn_memory;     /* each connection's buffer (read buffer, headers,
                           response buffer): the request line and headers
                           must fit in about three quarters of it, else
                           431; an idle kept-alive connection holds about
                           this much resident plus ~20 KiB of TLS state;
                           0 = 32 KiB; at least 4 KiB */
    const char *unix_path;  /* listen on this Unix socket instead of TCP:
                                plain HTTP (no cert_file), the file made
                                owner-only (0600); a peer running as this
                                process's user or as root is local_user
                                with local_groups (SO_PEERCRED), any other
                                peer is anonymous */
    const char *local_user; /* with unix_path; NULL = anonymous */
    const char *const *local_groups; /* with local_user; NULL-terminated */
    http_gate_fn gate;               /* NULL = none; gets the handler's arg */
    http_observe_fn observe;         /* NULL = none; gets the handler's arg */
    http_observe_end_fn observe_end; /* with observe: long answers' end */
};

/* Counters for tests and logs (a snapshot). */
struct http_server_stats {
    unsigned connections;      /* open, not yet told to go */
    unsigned untrusted;        /* of those, not trusted yet */
    uint64_t evicted;          /* closed to make room, since start */
    uint64_t deadline_expired; /* closed at the header deadline */
};

/* arg goes to the handler and to cfg->gate. */
struct http_server *http_server_create(const struct http_server_config *cfg,
                                       http_handler_fn handler, void *arg,
                                       struct dpf_error *err);
/* The port actually bound (useful with port 0). */
uint16_t http_server_port(const struct http_server *srv);
/* Stop accepting, close streams, join threads, free. */
void http_server_destroy(struct http_server *srv);
void http_server_get_stats(struct http_server *srv,
                           struct http_server_stats *out);

/* --- request accessors (valid until the response is queued) --- */
const char *http_request_method(const struct http_request *req);
/* Path without the query string, percent-decoded. */
const char *http_request_path(const struct http_request *req);
/* Decoded query parameter ("+" is a space), "" for a key without a value
 * ("?watch"), NULL if absent. */
const char *http_request_query(const struct http_request *req,
                               const char *name);
/* Every value of a repeated query parameter ("?command=a&command=b"), in
 * order: up to max pointers into out (valid as the request); returns how
 * many there are (which may be more than max). */
size_t http_request_query_values(const struct http_request *req,
                                 const char *name, const char **out,
                                 size_t max);
/* The same for a header sent on several lines (case-insensitive name). */
size_t http_request_header_values(const struct http_request *req,
                                  const char *name, const char **out,
                                  size_t max);
/* Header value (case-insensitive name) or NULL; the first of repeated
 * headers. A NUL byte on the wire ends the value early: where that matters
 * (credentials) use http_request_header_n, whose *len is the length as
 * received, so larger than strlen() of the value when the line held a NUL
 * (the bytes after it are not readable). */
const char *http_request_header(const struct http_request *req,
                                const char *name);
const char *http_request_header_n(const struct http_request *req,
                                  const char *name, size_t *len);
/* The request proved who sent it (the gate checked its credentials): its
 * connection is no longer evicted to make room for others and may stay
 * idle for idle_timeout_s between requests. */
void http_request_mark_trusted(struct http_request *req);
/* The body (NUL-terminated for convenience; may contain NULs). */
const char *http_request_body(const struct http_request *req, size_t *len);
/* Verified TLS client certificate subject CN / first O, or NULL. */
const char *http_request_peer_cn(const struct http_request *req);
const char *http_request_peer_org(const struct http_request *req);
/* Every O of the verified subject, in certificate order (the first
 * HTTP_PEER_ORGS_MAX); *n receives the count (0 without a certificate). */
#define HTTP_PEER_ORGS_MAX 16
const char *const *http_request_peer_orgs(const struct http_request *req,
                                          size_t *n);
/* Remote address as text, for logs. */
const char *http_request_remote(const struct http_request *req);

/* --- responses: exactly one per request --- */
/* Add a response header (before responding). */
void http_response_header(struct http_request *req, const char *name,
                          const char *value);
/* Respond with a copy of body. */
void http_respond(struct http_request *req, int status,
                  const char *content_type, const char *body, size_t len);
/* Respond, taking ownership of a malloc'd body. */
void http_respond_take(struct http_request *req, int status,
                       const char *content_type, char *body, size_t len);

/* Start a chunked streaming response. The request must not be touched
 * after this; use the stream. on_close(arg) is called once, from any
 * thread, when the client goes away or the stream is closed, after which
 * writes fail with -EPIPE. It runs in a server thread (never inside
 * http_stream_write/close), after the last chunk was sent or the
 * connection dropped, also during http_server_destroy(). The caller owns
 * one reference to the stream and must always release it with
 * http_stream_close() exactly once, also after on_close (on_close itself
 * may call it). */
struct http_stream *http_respond_stream(struct http_request *req, int status,
                                        const char *content_type,
                                        void (*on_close)(void *arg), void *arg);
/* Queue data (copied). Thread-safe. -EPIPE if the client is gone, -ENOBUFS
 * if unsent data is queued already and the queue would grow past the
 * stream's bound (16 MiB unless http_stream_set_budget says otherwise): a
 * slow client, which is then dropped as by http_stream_abort(). A write
 * into an empty queue always succeeds, so one piece larger than the bound
 * still goes out. */
int http_stream_write(struct http_stream *st, const char *data, size_t len);
/* Set the stream's queue bound (0 = 16 MiB) and a counter of queued bytes
 * shared with other streams (NULL = none): the stream adds what it queues
 * and takes back what is sent or dropped, so the owner of several streams
 * can bound their sum. The counter must outlive the stream, which lasts
 * until http_stream_close() and, for a stream still sending, until its
 * connection ends or http_server_destroy(). Thread-safe. */
void http_stream_set_budget(struct http_stream *st, size_t max_queued,
                            atomic_size_t *total);
/* Bytes queued on the stream and not yet sent. Thread-safe. */
size_t http_stream_queued(struct http_stream *st);
/* Drop the client now: queued data is discarded, the connection is shut
 * down, writes fail with -EPIPE and on_close follows as for a client that
 * went away. The caller still releases the stream with http_stream_close().
 * Thread-safe; a no-op on a stream already gone. */
void http_stream_abort(struct http_stream *st);
/* Finish the response (flushes what is queued) and release the stream.
 * The caller must not use st afterwards. */
void http_stream_close(struct http_stream *st);

/* --- protocol upgrades (WebSocket, SPDY): 101 Switching Protocols --- */
/* Called once the 101 answer is on the wire, in a server thread: take the
 * connection (http_upgrade_fd) and return quickly (a long session runs in
 * a thread of the caller's). The callee owns up and must release it with
 * http_upgrade_close() exactly once. */
typedef void (*http_upgrade_fn)(void *arg, struct http_upgrade *up);
/* Answer 101 with the headers given by http_response_header() (the
 * caller sets Upgrade and the protocol's own headers; the server adds
 * Connection: Upgrade) and hand the connection over to fn. The request
 * must have asked for an upgrade (Connection: Upgrade). If the client
 * goes away before the 101 is sent, fn is called with up == NULL instead
 * (so arg can be freed). */
void http_respond_upgrade(struct http_request *req, http_upgrade_fn fn,
                          void *arg);
/* The upgraded connection as a plain (decrypted) non-blocking socket,
 * valid until http_upgrade_close(). */
int http_upgrade_fd(const struct http_upgrade *up);
/* Bytes the client sent after the request head, before the upgrade was
 * handed over (they belong to the new protocol); valid until close. */
const char *http_upgrade_extra(const struct http_upgrade *up, size_t *len);
/* Wait up to timeout_ms for the client to close its side, discarding what
 * it still sends. Call it before http_upgrade_close() when the last bytes
 * written must reach the client: over TLS the server forwards the
 * socket's bytes to the client asynchronously, and closing at once can
 * cut off what it has not forwarded yet. (A WebSocket client closes after
 * the close frame, which comes last.) */
void http_upgrade_linger(struct http_upgrade *up, int timeout_ms);
/* Close the upgraded connection and free up. Thread-safe. */
void http_upgrade_close(struct http_upgrade *up);
/* Upgraded connections not closed yet (tests, limits). */
unsigned http_server_upgrades(struct http_server *srv);

#endif
