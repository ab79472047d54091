/* store-sqlite: the embedded SQLite store backend ("sqlite:<path>").
 *
 * URL: sqlite:<path>[?opt=value&...], options:
 *   sync=off|normal|full|extra  SQLite's synchronous for the writer.
 *                               full (default): an acknowledged write was
 *                               fsynced and survives power loss (one fsync
 *                               per group commit); normal (unsafe opt-in):
 *                               it survives a crash of the process only.
 *   check=full|quick|off  integrity check at open (integrity_check,
 *                quick_check, none; default full)
 *   batch=N      writes per group commit (default 256; 1 = off)
 *   wal_pages=N  WAL size in 4 KB pages that starts a checkpoint (2000)
 *   busy_ms=N    wait for a lock held by another process (10000)
 *   cache_kib=N  the writer's page cache in KiB (8192; 256..1048576)
 *   reserve=N    bytes of <path>-reserve, given back when the disk is full
 *                so that deletes find room (4 MiB; 0 = none)
 * One database file in WAL mode, used by one process at a time; it and its
 * -wal/-shm are 0600. Callers go through lib/store.h; see
 * docs/dev/store.md for the design. */
#ifndef DPF_STORE_SQLITE_H
#define DPF_STORE_SQLITE_H

#include "lib/store/store-backend.h"

/* The backend's operation table, registered in store.c. */
extern const struct store_ops store_sqlite_ops;

#endif
