/* store-sqlite: the embedded SQLite store backend ("sqlite:<path>").
 *
 * URL: sqlite:<path>[?opt=value&...], options:
 *   sync=off|normal|full|extra  SQLite's synchronous for the writer.
 *                               normal (default): an acknowledged write
 *                               survives a crash of the process; full: it
 *                               also survives power loss, at one fsync per
 *                               group commit.
 *   batch=N      writes per group commit (default 256; 1 = off)
 *   wal_pages=N  WAL size in 4 KB pages that starts a checkpoint (2000)
 *   busy_ms=N    wait for a lock held by another process (10000)
 * One database file in WAL mode, used by one process at a time. Callers go
 * through lib/store.h; see docs/dev/store.md for the design. */
#ifndef DPF_STORE_SQLITE_H
#define DPF_STORE_SQLITE_H

#include "lib/store/store-backend.h"

/* The backend's operation table, registered in store.c. */
extern const struct store_ops store_sqlite_ops;

#endif
