/* store: URL dispatch to a backend; see store.h and store-backend.h. */
#include "lib/store/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/store/store-backend.h"
#include "lib/store/store-sqlite.h"
#include "lib/base/util.h"

/* Every compiled-in backend; etcd will add one line here. */
static const struct store_ops *const store_backends[] = {
    &store_sqlite_ops,
};

void
store_kv_free(struct store_kv *kv)
{
    if (!kv) {
        return;
    }
    free(kv->key);
    free(kv->value);
    kv->key = NULL;
    kv->value = NULL;
    kv->len = 0;
}

struct store *
store_open(const char *url, const struct store_options *opts,
           struct dpf_error *err)
{
    static const struct store_options defaults = {0};
    const char *colon = url ? strchr(url, ':') : NULL;
    if (!colon || colon == url) {
        dpf_error_set(err, 400, "Invalid",
                      "store URL \"%s\": expected <scheme>:<location>, "
                      "e.g. sqlite:/var/lib/dpf/state.db",
                      url ? url : "");
        return NULL;
    }
    size_t n = (size_t) (colon - url);
    for (size_t i = 0; i < ARRAY_SIZE(store_backends); i++) {
        const struct store_ops *ops = store_backends[i];
        if (strlen(ops->scheme) == n && !strncmp(ops->scheme, url, n)) {
            return ops->open(colon + 1, opts ? opts : &defaults, err);
        }
    }
    dpf_error_set(err, 400, "Invalid",
                  "store URL \"%s\": unknown scheme \"%.*s\" (supported: "
                  "sqlite)",
                  url, (int) n, url);
    return NULL;
}

void
store_close(struct store *s)
{
    if (s) {
        s->ops->close(s);
    }
}

void
store_set_event_hook(struct store *s, store_event_fn fn, void *arg)
{
    s->ops->set_event_hook(s, fn, arg);
}

void
store_stats(struct store *s, struct store_stats *out)
{
    out->commits = atomic_load(&s->commits);
    out->writes = atomic_load(&s->writes);
}

int
store_create(struct store *s, const char *key, const char *value, size_t len,
             int64_t *rv_out, struct dpf_error *err)
{
    return s->ops->create(s, key, value, len, rv_out, err);
}

int
store_update(struct store *s, const char *key, store_mutate_fn fn, void *arg,
             int64_t *rv_out, struct dpf_error *err)
{
    return s->ops->update(s, key, fn, arg, rv_out, err);
}

int
store_delete(struct store *s, const char *key, int64_t expected_rv,
             int64_t *rv_out, struct dpf_error *err)
{
    return s->ops->delete_(s, key, expected_rv, rv_out, err);
}

int
store_get(struct store *s, const char *key, struct store_kv *out,
          struct dpf_error *err)
{
    return s->ops->get(s, key, out, err);
}

int
store_list(struct store *s, const char *prefix, const char *after_key,
           size_t limit, store_list_fn cb, void *arg, int64_t *list_rv,
           bool *more, struct dpf_error *err)
{
    return s->ops->list(s, prefix, after_key, limit, cb, arg, list_rv, more,
                        err);
}

int64_t
store_count(struct store *s, const char *prefix)
{
    return s->ops->count(s, prefix);
}

int64_t
store_current_rv(struct store *s)
{
    return s->ops->current_rv(s);
}

int
store_health(struct store *s, char *why, size_t why_size)
{
    return s->ops->health(s, why, why_size);
}
