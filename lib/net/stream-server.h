/* stream-server: a threaded listener for stream sockets (TCP or Unix).
 *
 * The one way we serve a byte-stream protocol from a daemon: the caller
 * binds and listens (so it words its own errors), then hands the listening
 * fd to stream_server_start(). The server runs its OWN THREAD (a poll
 * loop) that accepts connections into a fixed table of max_clients slots,
 * reads each connection into a per-connection buffer and hands the
 * buffered bytes to the protocol through callbacks, all called FROM THAT
 * THREAD:
 *  - on_open: a connection was accepted; returns the per-connection user
 *    pointer (may be NULL);
 *  - on_data: bytes arrived; the callback returns how many leading bytes it
 *    consumed (the rest stays buffered and is offered again, with more,
 *    next time), or STREAM_SERVER_CLOSE (close the connection quietly), or
 *    STREAM_SERVER_ERROR (close it and count it in `errors`). Replies are
 *    queued with stream_conn_write() and flushed after on_data returns;
 *  - on_close: the connection is gone (peer closed, error, or server stop);
 *    the callback frees its user pointer.
 * A connection beyond max_clients is closed at once and counted in
 * `rejected`, unless evict_idle_ms is set and a connection has been silent
 * that long: then the longest-silent one is closed (counted in `evicted`,
 * on_close called) and the new one takes its slot; read and write failures are counted in `errors`. When a peer
 * closes (or resets) the connection, the bytes already buffered are
 * offered once more before on_close. The server never stops on bad input.
 *
 * Ownership: the listening fd passes to the server (closed by
 * stream_server_stop(), also when start fails). Bytes passed to on_data are
 * borrowed for the call. A struct stream_conn belongs to the server and is
 * valid from on_open until on_close returns. stream_server_stop() joins the
 * thread first and then calls on_close for every open connection from the
 * calling thread. */
#ifndef DPF_STREAM_SERVER_H
#define DPF_STREAM_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "lib/base/error.h"

/* on_data result: close the connection without counting an error. */
#define STREAM_SERVER_CLOSE (-1L)
/* on_data result: close the connection and count it in `errors`. */
#define STREAM_SERVER_ERROR (-2L)

struct stream_conn;

/* Per-connection callbacks; aux is stream_server_config.aux. */
struct stream_server_ops {
    /* Accepted; returns the connection's user pointer (may be NULL). */
    void *(*on_open)(void *aux, struct stream_conn *c);
    /* Buffered bytes data[0..len); consumed count or STREAM_SERVER_*. */
    long (*on_data)(void *aux, struct stream_conn *c, void *user,
                    const uint8_t *data, size_t len);
    /* The connection is closed; free user. May be NULL. */
    void (*on_close)(void *aux, struct stream_conn *c, void *user);
};

/* Server configuration. Zero fields take the documented defaults. */
struct stream_server_config {
    int listen_fd;        /* bound, listening socket; owned from now on */
    unsigned max_clients; /* connection slots (0 = 64) */
    size_t read_size;     /* bytes per recv() (0 = 64 KiB) */
    unsigned read_rounds; /* most recv() per connection per wakeup (0 = 16) */
    size_t read_max;      /* stop reading a wakeup at this many buffered
                            bytes and call on_data (0 = no early stop) */
    size_t write_max;     /* stream_conn_write fails beyond this many unsent
                            bytes (0 = no bound) */
    size_t buffered_max;  /* bytes buffered for on_data over ALL connections
                            (partial messages); a connection whose read
                            would pass it is closed and counted in
                            over_budget (0 = no bound) */
    /* At the slot limit, close the connection silent longest if it has
     * been silent at least this long and has no reply pending (0 = never,
     * the new connection is rejected). */
    unsigned evict_idle_ms;
    const struct stream_server_ops *ops; /* callbacks (on_data required) */
    void *aux;                           /* passed to every callback */
};

/* Server counters (monotonic except clients). */
struct stream_server_stats {
    uint64_t connections; /* accepted into a slot */
    uint64_t rejected;    /* closed at once: every slot was taken */
    uint64_t errors;      /* closed for a read/write failure or by on_data */
    uint64_t clients;     /* connected now (gauge) */
    uint64_t over_budget; /* closed because buffered_max was reached (also
                             counted in errors) */
    uint64_t evicted;     /* closed to make room: silent evict_idle_ms */
};

struct stream_server;

/* Start the server thread on cfg->listen_fd (made non-blocking). NULL on
 * error (err filled, prefixed with `what`; the fd is closed). */
struct stream_server *
stream_server_start(const struct stream_server_config *cfg, const char *what,
                    struct dpf_error *err);
/* Snapshot of the counters; thread-safe. */
void stream_server_get_stats(const struct stream_server *s,
                             struct stream_server_stats *st);
/* Stop the thread, close every connection (on_close for each) and the
 * listening fd, free. NULL is a no-op. */
void stream_server_stop(struct stream_server *s);

/* Queue a reply on c; flushed after the current on_data returns (or when
 * the socket is writable again). Call only from the callbacks, i.e. from
 * the server thread. 0, or -ENOBUFS when more than write_max bytes are
 * still unsent (nothing is queued). */
int stream_conn_write(struct stream_conn *c, const void *data, size_t len);

#endif
