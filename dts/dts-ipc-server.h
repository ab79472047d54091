/* dts-ipc-server: the daemon side of the exporter-library IPC.
 *
 * Listens on a Unix stream socket (normally <ipc-dir>/dts.sock), accepts
 * exporter-library connections and decodes their frames with
 * lib/dts-ipc.h. The server runs its OWN THREAD (a poll loop); the record
 * callback is called from that thread, so it must be thread-safe with
 * respect to the rest of the daemon. A connection that sends anything
 * invalid (garbage, truncated or oversized frames, unknown types, events
 * that do not match its schema) is closed and counted in `errors`; the
 * server keeps serving the others.
 *
 * Ownership: a record passed to the callback and everything it points to
 * is borrowed for the duration of the call. */
#ifndef DTS_IPC_SERVER_H
#define DTS_IPC_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "lib/telemetry/dts-ipc.h"
#include "lib/base/error.h"
#include "lib/telemetry/netflow.h"

/* What a record carries. */
enum dts_ipc_record_kind {
    DTS_IPC_RECORD_EVENT = 1,   /* one event of a declared type */
    DTS_IPC_RECORD_COUNTER = 2, /* one counter or gauge sample */
    DTS_IPC_RECORD_NETFLOW = 3, /* one flow record */
};

/* One record received from an exporter-library client. */
struct dts_ipc_record {
    enum dts_ipc_record_kind kind;         /* which member below is set */
    const struct dts_ipc_hello *source;    /* the sender (id, tag, pid) */
    const struct dts_ipc_schema *schema;   /* the sender's schema (events) */
    const struct dts_ipc_evtype *type;     /* EVENT: its type */
    unsigned type_index;                   /* EVENT: index in the schema */
    const uint8_t *data;                   /* EVENT: type->size packed bytes */
    int64_t time_ns;                       /* COUNTER: sample time */
    const struct dts_ipc_counter *counter; /* COUNTER: the sample */
    const struct nf_flow *flow;            /* NETFLOW: the flow */
};

/* Called once per record from the server thread. */
typedef void (*dts_ipc_server_cb)(void *aux, const struct dts_ipc_record *r);

/* Server configuration. */
struct dts_ipc_server_config {
    const char *path;     /* socket path: a stale socket file is replaced,
                           * a live one (another dts answers) is not */
    unsigned mode;        /* socket file mode; 0 = 0660 */
    long gid;             /* socket file group; -1 = the process's */
    size_t max_frame;     /* 0 = DTS_IPC_DEFAULT_MAX_FRAME */
    unsigned max_clients; /* 0 = 256 */
    dts_ipc_server_cb cb; /* record callback */
    void *aux;            /* passed to cb */
};

/* Server counters (monotonic except clients). */
struct dts_ipc_server_stats {
    uint64_t connections; /* accepted */
    uint64_t frames;      /* frames decoded */
    uint64_t events;      /* event records */
    uint64_t counters;    /* counter records */
    uint64_t netflow;     /* flow records */
    uint64_t errors;      /* connections closed for protocol errors */
    uint64_t clients;     /* connected now (gauge) */
};

struct dts_ipc_server;

/* Create the directory if needed, bind, set mode and group, listen, start
 * the thread. NULL on error (err names the path and the reason; code 409
 * when another process is listening on the path). */
struct dts_ipc_server *
dts_ipc_server_start(const struct dts_ipc_server_config *cfg,
                     struct dpf_error *err);
/* Snapshot of the counters; thread-safe. */
void dts_ipc_server_get_stats(const struct dts_ipc_server *s,
                              struct dts_ipc_server_stats *st);
/* Stop the thread, close all connections, unlink the socket (only if the
 * path still is the socket we bound), free. */
void dts_ipc_server_stop(struct dts_ipc_server *s);

#endif
