/* store-sqlite: the embedded SQLite store backend ("sqlite:<path>").
 *
 * URL: sqlite:<path>[?sync=off|normal|full|extra]. One database file in WAL
 * mode; `sync` is SQLite's synchronous setting for the writer (default
 * normal: an acknowledged write survives a crash of the process; full: it
 * also survives power loss, at one fsync per group commit). Callers go
 * through lib/store.h; see docs/dev/store.md for the design. */
#ifndef DPF_STORE_SQLITE_H
#define DPF_STORE_SQLITE_H

#include "lib/store-backend.h"

/* The backend's operation table, registered in store.c. */
extern const struct store_ops store_sqlite_ops;

#endif
