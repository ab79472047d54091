/* store-backend: the interface a store implementation provides.
 *
 * Only store.c (the URL dispatcher) and the backends include this header;
 * callers use lib/store.h. A backend embeds `struct store` as the first
 * member of its own state, fills `ops`, and implements every operation with
 * exactly the semantics documented in lib/store.h (thread safety, error
 * codes, revision order of the event hook). Adding a backend (etcd) means
 * one new file with one `struct store_ops` and one line in store.c's table;
 * callers do not change. */
#ifndef DPF_STORE_BACKEND_H
#define DPF_STORE_BACKEND_H

#include <stdatomic.h>

#include "lib/store/store.h"

struct store_ops;

/* Base of every backend's state; the backend owns the whole allocation. */
struct store {
    const struct store_ops *ops; /* the backend's operation table */
    _Atomic int64_t commits;     /* store_stats(): the backend counts */
    _Atomic int64_t writes;
};

/* One backend. Each member mirrors the store_* function of the same name;
 * `s` is the struct store the backend returned from open(). */
struct store_ops {
    /* URL scheme without the colon ("sqlite"). */
    const char *scheme;
    /* Open from the part of the URL after "<scheme>:"; opts is never
     * NULL. NULL + err. */
    struct store *(*open)(const char *rest, const struct store_options *opts,
                          struct dpf_error *err);
    /* Release everything; s is invalid afterwards. */
    void (*close)(struct store *s);
    /* See store_set_event_hook(). */
    void (*set_event_hook)(struct store *s, store_event_fn fn, void *arg);
    /* See store_create(). */
    int (*create)(struct store *s, const char *key, const char *value,
                  size_t len, int64_t *rv_out, struct dpf_error *err);
    /* See store_update(). */
    int (*update)(struct store *s, const char *key, store_mutate_fn fn,
                  void *arg, int64_t *rv_out, struct dpf_error *err);
    /* See store_delete(). */
    int (*delete_)(struct store *s, const char *key, int64_t expected_rv,
                   int64_t *rv_out, struct dpf_error *err);
    /* See store_get(). */
    int (*get)(struct store *s, const char *key, struct store_kv *out,
               struct dpf_error *err);
    /* See store_list(). */
    int (*list)(struct store *s, const char *prefix, const char *after_key,
                size_t limit, store_list_fn cb, void *arg, int64_t *list_rv,
                bool *more, struct dpf_error *err);
    /* See store_count(). */
    int64_t (*count)(struct store *s, const char *prefix);
    /* See store_current_rv(). */
    int64_t (*current_rv)(struct store *s);
    /* See store_health(). */
    int (*health)(struct store *s, char *why, size_t why_size);
};

#endif
