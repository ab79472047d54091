/* store: the API server's durable key/value store, behind one interface.
 *
 * Keys are registry paths ("/<group>/<plural>/<namespace>/<name>", with
 * "core" as the group of the legacy API and "" as namespace of cluster
 * scoped objects: "/core/namespaces//default"). Values are the object's JSON
 * text WITHOUT metadata.resourceVersion: the store owns revisions. Every
 * successful write bumps one global revision counter (int64, starting at 1)
 * and the key's mod revision becomes that value; the API server reports it
 * as metadata.resourceVersion. (An empty store is at revision 1, so the
 * first write gets 2, as in etcd; 0 never names a state.)
 *
 * Durability contract: when a write call returns 0, the write is on disk
 * and survives SIGKILL of the process and, unless the store URL asks for
 * less (sqlite: sync=normal), power loss: it was fsynced. Writes are
 * totally ordered by revision, and the event hook sees them in that order,
 * only after they are committed. Revisions never go backwards, also across
 * restarts of a store whose bookkeeping was damaged.
 *
 * Implementations: "sqlite:<path>" (embedded default, one file, WAL) and,
 * later, "etcd:<host:port>[,...]". All functions are thread-safe.
 * Errors: 0 or negative errno (-ENOENT missing key, -EEXIST on create of an
 * existing key, -ESTALE when expected_rv does not match, -ENOSPC when a
 * create or update would exceed the quota or the disk is full (deletes
 * still work then), -EIO on backend failure, -ENOMEM never: allocation
 * aborts). Backend failures and -ENOSPC also fill err where one is passed
 * (-ENOSPC with code 507, reason "InsufficientStorage"). */
#ifndef DPF_STORE_H
#define DPF_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/error.h"

struct store;

enum store_event_type {
    STORE_EVENT_ADDED = 0,
    STORE_EVENT_MODIFIED = 1,
    STORE_EVENT_DELETED = 2,
};

/* One key with its value, as read from the store. */
struct store_kv {
    char *key;   /* owned */
    char *value; /* owned, NUL-terminated JSON text */
    size_t len;  /* strlen(value) */
    int64_t rv;  /* mod revision of this key */
};
void store_kv_free(struct store_kv *kv); /* frees members, not kv itself */

/* Called for every committed write, in revision order, while the store's
 * write lock is held (so keep it short: copy, queue, signal). For DELETED,
 * value is the last value before deletion and rv the deletion revision. */
typedef void (*store_event_fn)(void *arg, enum store_event_type type,
                               const char *key, const char *value, size_t len,
                               int64_t rv);

/* Read-modify-write step for store_update(). Given the current value and
 * its revision, produce the new value in *out (malloc'd; the store frees
 * it), or set *out = NULL to leave the key unchanged (the call then returns
 * 0 with *rv_out = old_rv). A negative return aborts the update and is
 * returned by store_update() unchanged (use it for Conflict/Invalid).
 * It runs exactly once per store_update() call, under the write lock and
 * possibly on another writer's thread (group commit): keep it short, use
 * no thread-local state, and never call a store write function from it
 * (store_get/store_list are fine). */
typedef int (*store_mutate_fn)(void *arg, const char *old, size_t old_len,
                               int64_t old_rv, char **out, size_t *out_len);

/* Default space quota, as etcd's --quota-backend-bytes: 2 GiB. */
#define STORE_QUOTA_DEFAULT (2LL * 1024 * 1024 * 1024)

/* How store_open() treats the database; zero-initialise for defaults. */
struct store_options {
    /* Create a new, empty store if the database does not exist, is empty
     * (0 bytes) or holds no tables. Without it such a store is refused
     * (NULL, err->code 404), so a lost or truncated database is never
     * silently replaced by an empty one. */
    bool create;
    /* Space the objects may take, in bytes (0 = STORE_QUOTA_DEFAULT). A
     * create or update that would take the store past it fails with
     * -ENOSPC and raises an alarm that refuses every create and update
     * until deletes brought the store back under the quota; deletes always
     * pass. */
    int64_t quota_bytes;
    /* How the user sets the quota, named in the -ENOSPC message (e.g.
     * "--quota-backend-bytes"); NULL = not named. Borrowed. */
    const char *quota_setting;
};

/* Open a store from a URL ("sqlite:/var/lib/dpf/state.db"); opts may be
 * NULL (= zero options: refuse a missing store). Checks the store's
 * integrity first: a damaged store is refused (NULL, err->code 500, the
 * message names the file and what to do). NULL + err. */
struct store *store_open(const char *url, const struct store_options *opts,
                         struct dpf_error *err);
void store_close(struct store *s);

/* Install the event hook (one per store; NULL to remove). Call before the
 * first write. */
void store_set_event_hook(struct store *s, store_event_fn fn, void *arg);

/* Since open: durable commits (each one fsync with sync=full) and the
 * writes they carried (writes / commits is the group commit's mean
 * batch). */
struct store_stats {
    int64_t commits;
    int64_t writes;
};
void store_stats(struct store *s, struct store_stats *out);

/* Create key; -EEXIST if present. *rv_out = new revision. */
int store_create(struct store *s, const char *key, const char *value,
                 size_t len, int64_t *rv_out, struct dpf_error *err);
/* Atomic read-modify-write of an existing key (-ENOENT if absent). */
int store_update(struct store *s, const char *key, store_mutate_fn fn,
                 void *arg, int64_t *rv_out, struct dpf_error *err);
/* Delete key; if expected_rv > 0 it must equal the key's mod revision
 * (-ESTALE otherwise). *rv_out = deletion revision. */
int store_delete(struct store *s, const char *key, int64_t expected_rv,
                 int64_t *rv_out, struct dpf_error *err);
/* Read one key into *out (caller frees with store_kv_free). */
int store_get(struct store *s, const char *key, struct store_kv *out,
              struct dpf_error *err);

/* List keys with the given prefix in key order, starting strictly after
 * after_key (NULL = from the start), at most limit entries (0 = all).
 * cb is called per entry (the kv is only valid during the call; a non-zero
 * return stops the listing and is returned). *list_rv = store revision at
 * the time of the read; *more = true if entries remain after the last one
 * delivered. Either out pointer may be NULL. */
typedef int (*store_list_fn)(void *arg, const struct store_kv *kv);
int store_list(struct store *s, const char *prefix, const char *after_key,
               size_t limit, store_list_fn cb, void *arg, int64_t *list_rv,
               bool *more, struct dpf_error *err);
/* Number of keys with the prefix. */
int64_t store_count(struct store *s, const char *prefix);
/* Current (latest committed) revision. */
int64_t store_current_rv(struct store *s);

/* Whether the store can serve: 0, or -EIO with a short reason in why (no
 * file paths: it may be shown to unauthenticated health probes). Fails
 * for good once a read or write met a damaged or unreadable database, and
 * while the database file is gone or replaced; a full disk or a quota
 * alarm is not a failure (deletes still work). Cheap: one small read. */
int store_health(struct store *s, char *why, size_t why_size);

#endif
