/* apiserver-storage: how the API server keeps objects in the store.
 *
 * Keys are "/<group|core>/<plural>/<namespace>/<name>" (namespace empty
 * for cluster-scoped kinds). Objects are stored as compact JSON WITHOUT
 * metadata.resourceVersion: the store's revision of the key is the
 * resourceVersion. Reads inject it into the stored text with a small
 * scanner instead of parsing and re-serialising, so get and plain JSON
 * lists never build a jansson tree; label selectors cut only
 * metadata.labels out of the text.
 *
 * Also here: the namespace cache every create consults, and the
 * schema_reader through which the schema's delete validation lists
 * objects. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpf-server/apiserver-private.h"
#include "lib/codecs/json-text.h"

/* ------------------------------------------------------------------ */
/* keys */

static const char *
as_group_key(const struct schema_kind *k)
{
    return k->group[0] ? k->group : "core";
}

char *
as_key(const struct schema_kind *k, const char *ns, const char *name)
{
    return xasprintf("/%s/%s/%s/%s", as_group_key(k), k->plural,
                     k->namespaced && ns ? ns : "", name);
}

char *
as_prefix(const struct schema_kind *k, const char *ns)
{
    if (!k->namespaced) {
        return xasprintf("/%s/%s//", as_group_key(k), k->plural);
    }
    if (!ns) {
        return xasprintf("/%s/%s/", as_group_key(k), k->plural);
    }
    return xasprintf("/%s/%s/%s/", as_group_key(k), k->plural, ns);
}

void
as_qualified_resource(const struct schema_kind *k, char *buf, size_t size)
{
    if (k->group[0]) {
        snprintf(buf, size, "%s.%s", k->plural, k->group);
    } else {
        snprintf(buf, size, "%s", k->plural);
    }
}

void
apiserver_storage_objects(void *apiserver,
                          void (*emit)(void *emit_arg, const char *resource,
                                       int64_t n),
                          void *emit_arg)
{
    struct apiserver *as = apiserver;
    size_t n = 0;
    const struct schema_kind *const *kinds = schema_kinds(&n);
    char **seen = xcalloc(n ? n : 1, sizeof(*seen));
    size_t n_seen = 0;
    for (size_t i = 0; i < n; i++) {
        const struct schema_kind *k = kinds[i];
        if (k->stored_as) {
            continue; /* counted under the kind that stores them */
        }
        /* Every object of the resource, whatever its scope. */
        char *prefix = xasprintf("/%s/%s/", as_group_key(k), k->plural);
        bool dup = false;
        for (size_t j = 0; j < n_seen && !dup; j++) {
            dup = strcmp(seen[j], prefix) == 0;
        }
        if (dup) {
            free(prefix);
            continue;
        }
        seen[n_seen++] = prefix;
        char name[320];
        as_qualified_resource(k, name, sizeof name);
        int64_t count = store_count(as->store, prefix);
        emit(emit_arg, name, count > 0 ? count : 0);
    }
    for (size_t j = 0; j < n_seen; j++) {
        free(seen[j]);
    }
    free(seen);
}

/* ------------------------------------------------------------------ */
/* stored text */

json_t *
as_load_labels(const char *json, size_t len)
{
    json_t *labels =
        json_text_load_path(json, len, JSON_TEXT_PATH("metadata", "labels"));
    json_t *obj = json_object();
    json_t *md = json_object();
    if (json_is_object(labels)) {
        json_object_set_new(md, "labels", labels);
    } else {
        json_decref(labels);
    }
    json_object_set_new(obj, "metadata", md);
    return obj;
}

/* Append json to b with metadata.resourceVersion set to rv. */
void
as_append_rv(struct dbuf *b, const char *json, size_t len, int64_t rv)
{
    if (!json_text_set_rv(b, json, len, rv)) {
        dbuf_append(b, json, len);
    }
}

int
as_get_current(struct apiserver *as, const char *key, struct store_kv *out,
               struct dpf_error *err)
{
    int r = as->wc ? watch_cache_get(as->wc, key, out) : -ENOTSUP;
    if (r != -ENOTSUP) {
        return r;
    }
    return store_get(as->store, key, out, err);
}

char *
as_inject_rv(const char *json, size_t len, int64_t rv, size_t *out_len)
{
    struct dbuf b;
    dbuf_init(&b);
    as_append_rv(&b, json, len, rv);
    return dbuf_steal(&b, out_len);
}

json_t *
as_load_object(const char *json, size_t len, int64_t rv)
{
    json_t *obj = json_loadb(json, len, 0, NULL);
    if (!obj || !json_is_object(obj)) {
        json_decref(obj);
        return NULL;
    }
    json_t *md = json_object_get(obj, "metadata");
    if (!json_is_object(md)) {
        md = json_object();
        json_object_set_new(obj, "metadata", md);
    }
    char buf[32];
    snprintf(buf, sizeof(buf), "%lld", (long long) rv);
    json_object_set_new(md, "resourceVersion", json_string(buf));
    return obj;
}

json_t *
as_md(const json_t *obj)
{
    return json_object_get(obj, "metadata");
}

const char *
as_md_str(const json_t *obj, const char *field)
{
    return json_string_value(
        json_object_get(json_object_get(obj, "metadata"), field));
}

char *
as_dump_store(json_t *obj, size_t max, size_t *len, struct as_error *ae)
{
    json_t *md = as_md(obj);
    if (md) {
        json_object_del(md, "resourceVersion");
    }
    char *text = json_dumps(obj, JSON_COMPACT);
    *len = strlen(text);
    if (*len > max) {
        as_error_set(ae, 413, "RequestEntityTooLarge",
                     "Request entity too large: object is %zu bytes, "
                     "limit is %zu",
                     *len, max);
        free(text);
        return NULL;
    }
    return text;
}

bool
as_is_namespace_kind(const struct schema_kind *k)
{
    return !k->group[0] && !strcmp(k->plural, "namespaces");
}

/* ------------------------------------------------------------------ */
/* namespaces */

/* Namespace existence cache: every create checks its namespace, and a
 * store read per create cost a WAL lookup under the write storm. Entries
 * come from the store event hook (which has seen every acknowledged write,
 * so a deleted or terminating namespace is never answered as active) and
 * from store reads made on a miss, kept only when no namespace event
 * happened during the read. Negative answers are not cached. */
#define AS_NS_KEY_PREFIX "/core/namespaces//"
#define AS_NS_CACHE_MAX 65536

/* 1 if the namespace object text has metadata.deletionTimestamp, 0 if
 * not, -1 if it does not parse. */
static int
as_ns_text_terminating(const char *value, size_t len)
{
    json_t *o = json_loadb(value, len, 0, NULL);
    if (!o) {
        return -1;
    }
    int t = as_md_str(o, "deletionTimestamp") ? 1 : 0;
    json_decref(o);
    return t;
}

/* Store event hook part: keep the namespace cache current. */
void
as_ns_cache_event(struct apiserver *as, enum store_event_type type,
                  const char *key, const char *value, size_t len)
{
    size_t pl = strlen(AS_NS_KEY_PREFIX);
    if (strncmp(key, AS_NS_KEY_PREFIX, pl) != 0) {
        return;
    }
    const char *name = key + pl;
    int t =
        type == STORE_EVENT_DELETED ? -1 : as_ns_text_terminating(value, len);
    pthread_mutex_lock(&as->ns_lock);
    as->ns_gen++;
    if (t < 0) {
        json_object_del(as->ns_cache, name);
    } else if (json_object_get(as->ns_cache, name) ||
               json_object_size(as->ns_cache) < AS_NS_CACHE_MAX) {
        json_object_set_new(as->ns_cache, name, json_boolean(t));
    }
    pthread_mutex_unlock(&as->ns_lock);
}

/* 1 terminating, 0 active, -ENOENT missing, other negative: read error. */
static int
as_ns_state(struct apiserver *as, const char *ns)
{
    pthread_mutex_lock(&as->ns_lock);
    json_t *v = json_object_get(as->ns_cache, ns);
    int cached = v ? json_is_true(v) : -1;
    uint64_t gen = as->ns_gen;
    pthread_mutex_unlock(&as->ns_lock);
    if (cached >= 0) {
        return cached;
    }
    const struct schema_kind *nsk =
        schema_find_resource("", "v1", "namespaces");
    struct store_kv kv = {0};
    char *key = as_key(nsk, NULL, ns);
    int r = store_get(as->store, key, &kv, NULL);
    free(key);
    if (r < 0) {
        return r;
    }
    int t = as_ns_text_terminating(kv.value, kv.len);
    store_kv_free(&kv);
    if (t < 0) {
        return 0; /* unparsable: exists, as before the cache */
    }
    pthread_mutex_lock(&as->ns_lock);
    if (as->ns_gen == gen && json_object_size(as->ns_cache) < AS_NS_CACHE_MAX) {
        json_object_set_new(as->ns_cache, ns, json_boolean(t));
    }
    pthread_mutex_unlock(&as->ns_lock);
    return t;
}

int
as_check_namespace(struct apiserver *as, const struct schema_kind *k,
                   const char *ns, const char *name, struct as_error *ae)
{
    const struct schema_kind *nsk =
        schema_find_resource("", "v1", "namespaces");
    if (!k->namespaced || !nsk || !ns) {
        return 0;
    }
    int r = as_ns_state(as, ns);
    if (r == -ENOENT) {
        as_error_not_found(ae, nsk, ns);
        return -ENOENT;
    }
    if (r < 0) {
        as_error_set(ae, 500, "InternalError", "reading namespace %s: %s", ns,
                     strerror(-r));
        return r;
    }
    if (r == 1) {
        char qr[256];
        as_qualified_resource(k, qr, sizeof(qr));
        as_error_set(ae, 403, "Forbidden",
                     "%s \"%s\" is forbidden: unable to create new content "
                     "in namespace %s because it is being terminated",
                     qr, name ? name : "", ns);
        as_error_details(ae, name, k->group, k->plural);
        return -EPERM;
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* schema reader */

struct as_reader_ctx {
    int (*cb)(void *cbarg, const json_t *obj);
    void *cbarg;
};

static int
as_reader_each(void *arg, const struct store_kv *kv)
{
    struct as_reader_ctx *c = arg;
    json_t *obj = as_load_object(kv->value, kv->len, kv->rv);
    if (!obj) {
        return 0;
    }
    int r = c->cb(c->cbarg, obj);
    json_decref(obj);
    return r;
}

static int
as_reader_list(void *arg, const char *group, const char *plural, const char *ns,
               int (*cb)(void *cbarg, const json_t *obj), void *cbarg)
{
    struct apiserver *as = arg;
    char *prefix;
    const char *g = group && *group ? group : "core";
    if (ns) {
        prefix = xasprintf("/%s/%s/%s/", g, plural, ns);
    } else {
        prefix = xasprintf("/%s/%s/", g, plural);
    }
    struct as_reader_ctx c = {cb, cbarg};
    int r = store_list(as->store, prefix, NULL, 0, as_reader_each, &c, NULL,
                       NULL, NULL);
    free(prefix);
    return r;
}

void
as_reader_init(struct apiserver *as, struct schema_reader *r)
{
    r->list = as_reader_list;
    r->arg = as;
}
