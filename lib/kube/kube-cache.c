/* kube-cache: see kube-cache.h. The maps are jansson objects used as hash
 * tables: items maps key -> the object's compact JSON text (a jansson
 * string), and each index maps value -> the one cache key holding it (a
 * string) or, once two or more do, a set (an object whose keys are cache
 * keys). Texts are parsed outside the lock: the informer is the one
 * writer, so the text a writer read under the read lock is still the
 * current one when it takes the write lock. */
#include "lib/kube/kube-cache.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"
#include "lib/codecs/json-text.h"

struct kube_index {
    char *name;
    kube_index_fn fn;
    void *arg;
    json_t *map; /* value -> {key: true} */
};

struct kube_cache {
    pthread_rwlock_t lock;
    json_t *items; /* key -> compact JSON text (string) */
    struct kube_index *idx;
    size_t n_idx;
    /* kube_cache_note_text(): key -> the text of the object a write
     * returned (a string), newer than items' until the informer catches
     * up; parsed only when read before that, which is rare: the write's
     * own watch event usually comes first and is what requeues the key */
    pthread_mutex_t wmu;
    json_t *written;
    atomic_size_t n_written; /* lets reads skip wmu while it is empty */
};

/* metadata.resourceVersion as a number; 0 when absent or not a decimal
 * number (then the written object is not used: only the informer's). */
static uint64_t
rv_of(const json_t *obj)
{
    const char *s = json_string_value(
        json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
    if (!s || !*s) {
        return 0;
    }
    char *end = NULL;
    uint64_t v = strtoull(s, &end, 10);
    return end && *end == '\0' ? v : 0;
}

/* The resourceVersion of a cached text, as rv_of() reads it. */
static uint64_t
text_rv(const json_t *text)
{
    if (!text) {
        return 0;
    }
    json_t *rv =
        json_text_load_path(json_string_value(text), json_string_length(text),
                            JSON_TEXT_PATH("metadata", "resourceVersion"));
    const char *s = json_string_value(rv);
    uint64_t v = 0;
    if (s && *s) {
        char *end = NULL;
        v = strtoull(s, &end, 10);
        if (!end || *end) {
            v = 0;
        }
    }
    json_decref(rv);
    return v;
}

/* The object a cached text holds (new), or NULL for no text. */
static json_t *
text_load(const json_t *text)
{
    if (!text) {
        return NULL;
    }
    return json_loadb(json_string_value(text), json_string_length(text), 0,
                      NULL);
}

/* A new reference to the text under key (read lock held by the caller). */
static json_t *
text_at(struct kube_cache *c, const char *key)
{
    return json_incref(json_object_get(c->items, key));
}

static json_t *
index_namespace(void *arg, const json_t *obj)
{
    const char *ns = json_string_value(
        json_object_get(json_object_get(obj, "metadata"), "namespace"));
    return ns && *ns ? json_pack("[s]", ns) : NULL;
}

static json_t *
index_label(void *arg, const json_t *obj)
{
    json_t *labels =
        json_object_get(json_object_get(obj, "metadata"), "labels");
    if (!json_is_object(labels) || json_object_size(labels) == 0) {
        return NULL;
    }
    json_t *out = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(labels, k, v)
    {
        const char *s = json_string_value(v);
        char *kv = xasprintf("%s=%s", k, s ? s : "");
        json_array_append_new(out, json_string(kv));
        free(kv);
    }
    return out;
}

static json_t *
index_owner(void *arg, const json_t *obj)
{
    json_t *refs =
        json_object_get(json_object_get(obj, "metadata"), "ownerReferences");
    if (!json_is_array(refs) || json_array_size(refs) == 0) {
        return NULL;
    }
    json_t *out = json_array();
    size_t i;
    json_t *ref;
    json_array_foreach(refs, i, ref)
    {
        const char *uid = json_string_value(json_object_get(ref, "uid"));
        if (uid && *uid) {
            json_array_append_new(out, json_string(uid));
        }
    }
    return out;
}

static void
index_register(struct kube_cache *c, const char *name, kube_index_fn fn,
               void *arg)
{
    c->idx = xrealloc(c->idx, (c->n_idx + 1) * sizeof *c->idx);
    struct kube_index *ix = &c->idx[c->n_idx++];
    ix->name = xstrdup(name);
    ix->fn = fn;
    ix->arg = arg;
    ix->map = json_object();
}

struct kube_cache *
kube_cache_create(void)
{
    struct kube_cache *c = xcalloc(1, sizeof *c);
    pthread_rwlock_init(&c->lock, NULL);
    c->items = json_object();
    pthread_mutex_init(&c->wmu, NULL);
    c->written = json_object();
    return c;
}

void
kube_cache_destroy(struct kube_cache *c)
{
    if (!c) {
        return;
    }
    for (size_t i = 0; i < c->n_idx; i++) {
        free(c->idx[i].name);
        json_decref(c->idx[i].map);
    }
    free(c->idx);
    json_decref(c->items);
    json_decref(c->written);
    pthread_mutex_destroy(&c->wmu);
    pthread_rwlock_destroy(&c->lock);
    free(c);
}

int
kube_cache_add_index(struct kube_cache *c, const char *name, kube_index_fn fn,
                     void *arg)
{
    if (!fn) {
        fn = !strcmp(name, KUBE_INDEX_NAMESPACE) ? index_namespace
             : !strcmp(name, KUBE_INDEX_LABEL)   ? index_label
             : !strcmp(name, KUBE_INDEX_OWNER)   ? index_owner
                                                 : NULL;
        if (!fn) {
            return -EINVAL;
        }
    }
    int rc = 0;
    pthread_rwlock_wrlock(&c->lock);
    if (json_object_size(c->items) > 0) {
        rc = -EBUSY;
    }
    for (size_t i = 0; rc == 0 && i < c->n_idx; i++) {
        if (!strcmp(c->idx[i].name, name)) {
            rc = -EEXIST;
        }
    }
    if (rc == 0) {
        index_register(c, name, fn, arg);
    }
    pthread_rwlock_unlock(&c->lock);
    return rc;
}

char *
kube_cache_key_of(const char *ns, const char *name)
{
    if (ns && *ns) {
        return xasprintf("%s/%s", ns, name);
    }
    return xstrdup(name);
}

char *
kube_cache_key(const json_t *obj)
{
    json_t *md = json_object_get(obj, "metadata");
    const char *name = json_string_value(json_object_get(md, "name"));
    if (!name || !*name) {
        return NULL;
    }
    return kube_cache_key_of(
        json_string_value(json_object_get(md, "namespace")), name);
}

/* Add (add=true) or remove key under each value of vals in index ix.
 * A value's set is the one key itself (a string) until a second key
 * joins it, then an object of keys: most index values (a label unique to
 * one object, an owner's uid, a DPU's name) have one object, and a
 * jansson object per value had been 21 MB of a 4,000-DPU server's
 * informer caches. */
static void
index_apply(struct kube_index *ix, const json_t *vals, const char *key,
            bool add)
{
    size_t j;
    json_t *v;
    json_array_foreach(vals, j, v)
    {
        const char *s = json_string_value(v);
        if (!s) {
            continue;
        }
        json_t *set = json_object_get(ix->map, s);
        if (add) {
            if (!set) {
                json_object_set_new_nocheck(ix->map, s,
                                            json_string_nocheck(key));
            } else if (json_is_string(set)) {
                if (strcmp(json_string_value(set), key) != 0) {
                    json_t *o = json_object();
                    json_object_set_new_nocheck(o, json_string_value(set),
                                                json_true());
                    json_object_set_new_nocheck(o, key, json_true());
                    json_object_set_new_nocheck(ix->map, s, o);
                }
            } else {
                json_object_set_new_nocheck(set, key, json_true());
            }
        } else if (json_is_string(set)) {
            if (!strcmp(json_string_value(set), key)) {
                json_object_del(ix->map, s);
            }
        } else if (set) {
            json_object_del(set, key);
            if (json_object_size(set) == 0) {
                json_object_del(ix->map, s);
            }
        }
    }
}

/* Add (add=true) or remove key under every index value of obj. */
static void
index_update(struct kube_cache *c, const json_t *obj, const char *key, bool add)
{
    for (size_t i = 0; i < c->n_idx; i++) {
        struct kube_index *ix = &c->idx[i];
        json_t *vals = ix->fn(ix->arg, obj);
        index_apply(ix, vals, key, add);
        json_decref(vals);
    }
}

/* Move key from old's index values to obj's. Most updates leave an
 * object's labels, namespace and owners as they were: then the index maps
 * are not touched (the informer benchmark's storm spends a third of the
 * cache's time there otherwise). */
static void
index_replace(struct kube_cache *c, const json_t *old, const json_t *obj,
              const char *key)
{
    for (size_t i = 0; i < c->n_idx; i++) {
        struct kube_index *ix = &c->idx[i];
        json_t *was = ix->fn(ix->arg, old);
        json_t *now = ix->fn(ix->arg, obj);
        if (!json_equal(was, now) &&
            (json_array_size(was) || json_array_size(now))) {
            index_apply(ix, was, key, false);
            index_apply(ix, now, key, true);
        }
        json_decref(was);
        json_decref(now);
    }
}

/* The informer holds key at revision rv (UINT64_MAX: key is gone): a
 * note of that revision or an older one has nothing left to tell, and
 * would otherwise hold its text until the next read of key, which for an
 * object nobody reconciles again never comes. */
static void
forget_note(struct kube_cache *c, const char *key, uint64_t rv)
{
    if (atomic_load(&c->n_written) == 0) {
        return;
    }
    pthread_mutex_lock(&c->wmu);
    json_t *w = json_object_get(c->written, key);
    if (w && text_rv(w) <= rv && json_object_del(c->written, key) == 0) {
        atomic_fetch_sub(&c->n_written, 1);
    }
    pthread_mutex_unlock(&c->wmu);
}

json_t *
kube_cache_put(struct kube_cache *c, const json_t *obj, int *rc)
{
    char *key = kube_cache_key(obj);
    if (rc) {
        *rc = key ? 0 : -EINVAL;
    }
    if (!key) {
        return NULL;
    }
    char *text = json_dumps(obj, JSON_COMPACT);
    if (!text) {
        if (rc) {
            *rc = -ENOMEM;
        }
        free(key);
        return NULL;
    }
    pthread_rwlock_rdlock(&c->lock);
    json_t *was = text_at(c, key);
    pthread_rwlock_unlock(&c->lock);
    json_t *old = text_load(was);
    json_decref(was);
    json_t *now = json_string_nocheck(text);
    free(text);
    pthread_rwlock_wrlock(&c->lock);
    json_object_set_new_nocheck(c->items, key, now);
    if (old) {
        index_replace(c, old, obj, key);
    } else {
        index_update(c, obj, key, true);
    }
    pthread_rwlock_unlock(&c->lock);
    forget_note(c, key, rv_of(obj));
    free(key);
    return old;
}

json_t *
kube_cache_remove(struct kube_cache *c, const char *key)
{
    pthread_rwlock_rdlock(&c->lock);
    json_t *was = text_at(c, key);
    pthread_rwlock_unlock(&c->lock);
    json_t *old = text_load(was);
    json_decref(was);
    if (old) {
        pthread_rwlock_wrlock(&c->lock);
        index_update(c, old, key, false);
        json_object_del(c->items, key);
        pthread_rwlock_unlock(&c->lock);
    }
    forget_note(c, key, UINT64_MAX);
    return old;
}

json_t *
kube_cache_get(struct kube_cache *c, const char *key)
{
    pthread_rwlock_rdlock(&c->lock);
    json_t *text = text_at(c, key);
    pthread_rwlock_unlock(&c->lock);
    if (atomic_load(&c->n_written) > 0) {
        pthread_mutex_lock(&c->wmu);
        json_t *w = json_incref(json_object_get(c->written, key));
        pthread_mutex_unlock(&c->wmu);
        if (w) {
            uint64_t wrv = text_rv(w);
            if (wrv && (!text || wrv > text_rv(text))) {
                json_decref(text);
                json_t *o = text_load(w);
                json_decref(w);
                /* as the informer keeps it */
                json_object_del(json_object_get(o, "metadata"),
                                "managedFields");
                return o;
            }
            /* the informer caught up (a put racing a note) */
            forget_note(c, key, text_rv(text));
            json_decref(w);
        }
    }
    json_t *o = text_load(text);
    json_decref(text);
    return o;
}

void
kube_cache_note_text(struct kube_cache *c, const char *text, size_t len)
{
    if (!text) {
        return;
    }
    json_t *note = json_stringn_nocheck(text, len);
    json_t *ns =
        json_text_load_path(text, len, JSON_TEXT_PATH("metadata", "namespace"));
    json_t *name =
        json_text_load_path(text, len, JSON_TEXT_PATH("metadata", "name"));
    const char *nm = json_string_value(name);
    char *key = nm && *nm ? kube_cache_key_of(json_string_value(ns), nm) : NULL;
    json_decref(ns);
    json_decref(name);
    uint64_t rv = text_rv(note);
    if (!key || !rv) {
        free(key);
        json_decref(note);
        return;
    }
    pthread_rwlock_rdlock(&c->lock);
    json_t *had = text_at(c, key);
    pthread_rwlock_unlock(&c->lock);
    uint64_t have = text_rv(had);
    json_decref(had);
    pthread_mutex_lock(&c->wmu);
    json_t *w = json_object_get(c->written, key);
    if (rv > have && (!w || rv > text_rv(w))) {
        if (!w) {
            atomic_fetch_add(&c->n_written, 1);
        }
        json_object_set(c->written, key, note);
    }
    pthread_mutex_unlock(&c->wmu);
    json_decref(note);
    free(key);
}

void
kube_cache_note_write(struct kube_cache *c, const json_t *obj)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    if (text) {
        kube_cache_note_text(c, text, strlen(text));
    }
    free(text);
}

size_t
kube_cache_notes(struct kube_cache *c)
{
    return atomic_load(&c->n_written);
}

json_t *
kube_cache_get_name(struct kube_cache *c, const char *ns, const char *name)
{
    char *key = kube_cache_key_of(ns, name);
    json_t *o = kube_cache_get(c, key);
    free(key);
    return o;
}

/* The objects of an array of texts (consumed), parsed outside the lock. */
static json_t *
texts_load(json_t *texts)
{
    json_t *out = json_array();
    size_t i;
    json_t *t;
    json_array_foreach(texts, i, t)
    {
        json_t *o = text_load(t);
        if (o) {
            json_array_append_new(out, o);
        }
    }
    json_decref(texts);
    return out;
}

json_t *
kube_cache_list(struct kube_cache *c)
{
    json_t *texts = json_array();
    pthread_rwlock_rdlock(&c->lock);
    const char *k;
    json_t *v;
    json_object_foreach(c->items, k, v)
    {
        json_array_append(texts, v);
    }
    pthread_rwlock_unlock(&c->lock);
    return texts_load(texts);
}

json_t *
kube_cache_keys(struct kube_cache *c)
{
    json_t *out = json_array();
    pthread_rwlock_rdlock(&c->lock);
    const char *k;
    json_t *v;
    json_object_foreach(c->items, k, v)
    {
        json_array_append_new(out, json_string(k));
    }
    pthread_rwlock_unlock(&c->lock);
    return out;
}

/* What by_index() gives for each object. */
enum by_index_what { BY_TEXTS, BY_KEYS, BY_KEYED_TEXTS };

/* Add key's text (or key) to out when the cache has it. */
static void
by_index_add(struct kube_cache *c, json_t *out, const char *k,
             enum by_index_what what)
{
    json_t *t = json_object_get(c->items, k);
    if (!t) {
        return;
    }
    switch (what) {
    case BY_TEXTS:
        json_array_append(out, t);
        break;
    case BY_KEYS:
        json_array_append_new(out, json_string(k));
        break;
    case BY_KEYED_TEXTS:
        json_object_set(out, k, t);
        break;
    }
}

/* The texts, keys or {key: text} of the objects whose index has value
 * (an array, or an object for BY_KEYED_TEXTS); NULL when there is no such
 * index. */
static json_t *
by_index(struct kube_cache *c, const char *index, const char *value,
         enum by_index_what what)
{
    json_t *out = NULL;
    pthread_rwlock_rdlock(&c->lock);
    for (size_t i = 0; i < c->n_idx; i++) {
        if (strcmp(c->idx[i].name, index) != 0) {
            continue;
        }
        out = what == BY_KEYED_TEXTS ? json_object() : json_array();
        json_t *set = json_object_get(c->idx[i].map, value);
        if (json_is_string(set)) {
            by_index_add(c, out, json_string_value(set), what);
            break;
        }
        const char *k;
        json_t *v;
        json_object_foreach(set, k, v)
        {
            by_index_add(c, out, k, what);
        }
        break;
    }
    pthread_rwlock_unlock(&c->lock);
    return out;
}

json_t *
kube_cache_by_index(struct kube_cache *c, const char *index, const char *value)
{
    json_t *texts = by_index(c, index, value, BY_TEXTS);
    return texts ? texts_load(texts) : NULL;
}

json_t *
kube_cache_keys_by_index(struct kube_cache *c, const char *index,
                         const char *value)
{
    return by_index(c, index, value, BY_KEYS);
}

json_t *
kube_cache_texts_by_index(struct kube_cache *c, const char *index,
                          const char *value)
{
    return by_index(c, index, value, BY_KEYED_TEXTS);
}

json_t *
kube_cache_text_load(const json_t *text)
{
    return json_is_string(text) ? text_load(text) : NULL;
}

size_t
kube_cache_len(struct kube_cache *c)
{
    pthread_rwlock_rdlock(&c->lock);
    size_t n = json_object_size(c->items);
    pthread_rwlock_unlock(&c->lock);
    return n;
}
