/* kube-cache: the indexed, thread-safe object cache behind an informer.
 *
 * Objects are keyed "namespace/name" (cluster-scoped: "name"), as
 * Kubernetes' client tooling does. Besides the key, the cache keeps
 * indexes: an index function maps an object to zero or more index values
 * and the cache answers "every object whose index X has value V". A cache
 * has only the indexes its users add with kube_cache_add_index() before
 * the first object goes in: every index costs memory per object (at
 * 10,000 DPUs, indexing every label, namespace and owner of the
 * in-process controllers' caches took 48 MB, for one query on owners).
 * Three are built in, added by name with fn NULL:
 *   KUBE_INDEX_NAMESPACE  metadata.namespace;
 *   KUBE_INDEX_LABEL      "key=value" for every metadata.labels entry;
 *   KUBE_INDEX_OWNER      metadata.ownerReferences[].uid.
 *
 * Objects are kept as their compact JSON text, not as trees: a jansson
 * tree takes about ten times its text's memory (a DPU's 1.9 KB of JSON is
 * 18 KB of tree, a pod's 6.4 KB is 76 KB), and the in-process controllers'
 * caches were the largest part of dpf-server's memory at 10,000 DPUs.
 * Every read parses the text into a new object the caller owns (a DPU in
 * about 20 us); an object noted by kube_cache_note_write() is returned as
 * a new reference to the noted json_t instead. Treat what a read returns
 * as read-only (json_deep_copy() it to edit): callers do not know which
 * of the two they got.
 *
 * Threads: one writer (the informer, on the loop thread) and any number of
 * readers (reconcile workers) at once; a rwlock guards the maps. jansson's
 * reference counts are atomic, so a reader may keep and drop an object
 * after the writer replaced it. Index functions run under the write lock:
 * they must be quick and must not call the cache. */
#ifndef DPF_KUBE_CACHE_H
#define DPF_KUBE_CACHE_H

#include <jansson.h>
#include <stddef.h>

#define KUBE_INDEX_NAMESPACE "namespace"
#define KUBE_INDEX_LABEL "label"
#define KUBE_INDEX_OWNER "owner"

struct kube_cache;

/* An index function: the index values of obj as a new JSON array of
 * strings, or NULL for none. Must be deterministic (the cache calls it
 * again on the old object to unindex it). */
typedef json_t *(*kube_index_fn)(void *arg, const json_t *obj);

/* A cache without indexes. */
struct kube_cache *kube_cache_create(void);
/* Free the cache and drop its references. NULL is fine. */
void kube_cache_destroy(struct kube_cache *c);
/* Add an index; fn NULL adds the built-in index name (-EINVAL when name
 * is not one). Only while the cache is empty: -EBUSY otherwise, -EEXIST
 * if the name is taken. */
int kube_cache_add_index(struct kube_cache *c, const char *name,
                         kube_index_fn fn, void *arg);

/* The cache key of an object ("ns/name" or "name"), malloc'd; NULL if it
 * has no metadata.name. */
char *kube_cache_key(const json_t *obj);
/* The key of ns/name (ns NULL or "" for cluster-scoped), malloc'd. */
char *kube_cache_key_of(const char *ns, const char *name);

/* A write's result (the object a PUT, PATCH or POST returned, as the
 * reply's JSON text), from any thread: until the informer delivers this
 * resourceVersion or a newer one, kube_cache_get() and
 * kube_cache_get_name() return it instead of the informer's older copy,
 * so a controller's next reconcile sees its own write even when the watch
 * lags (client-go's MutationCache). The text is copied and parsed only if
 * it is read before the informer catches up (its managedFields dropped
 * then, as the informer drops them). Only objects whose resourceVersion
 * is a decimal number (the servers' revisions) are noted; lists and
 * indexes show the informer's view only. A deletion the informer
 * delivers forgets the note. */
void kube_cache_note_text(struct kube_cache *c, const char *text, size_t len);
/* The same for an object already parsed (obj stays the caller's). */
void kube_cache_note_write(struct kube_cache *c, const json_t *obj);
/* Noted writes the informer has not delivered yet (tests, metrics). */
size_t kube_cache_notes(struct kube_cache *c);

/* Writer side. Put obj under its key (its text; obj stays the caller's).
 * Returns the object it replaced (new, the caller's) or NULL. A NULL
 * return with no key: -EINVAL through *rc when rc is not NULL. */
json_t *kube_cache_put(struct kube_cache *c, const json_t *obj, int *rc);
/* Remove the object under key; returns it (new, the caller's) or NULL. */
json_t *kube_cache_remove(struct kube_cache *c, const char *key);

/* Reader side: every json_t returned is the caller's (see above). */
/* The object under key, or NULL. */
json_t *kube_cache_get(struct kube_cache *c, const char *key);
/* The object ns/name, or NULL. */
json_t *kube_cache_get_name(struct kube_cache *c, const char *ns,
                            const char *name);
/* Every object, as a JSON array (order unspecified). */
json_t *kube_cache_list(struct kube_cache *c);
/* Every key, as a JSON array of strings. */
json_t *kube_cache_keys(struct kube_cache *c);
/* The objects whose index has value, as a JSON array (empty when none;
 * NULL when there is no such index). */
json_t *kube_cache_by_index(struct kube_cache *c, const char *index,
                            const char *value);
/* The keys of the objects whose index has value, as a JSON array of
 * strings (nothing parsed); NULL when there is no such index. */
json_t *kube_cache_keys_by_index(struct kube_cache *c, const char *index,
                                 const char *value);
/* The texts of the objects whose index has value, unparsed: a JSON
 * object {key: text} of new references to the cache's immutable JSON
 * strings; NULL when there is no such index. A put replaces an object's
 * string, so a caller that keeps something derived from an object can
 * tell whether it changed by comparing the string's pointer with the one
 * it kept a reference to. Parse one with kube_cache_text_load(). */
json_t *kube_cache_texts_by_index(struct kube_cache *c, const char *index,
                                  const char *value);
/* The object a text from kube_cache_texts_by_index() holds (new), or
 * NULL. */
json_t *kube_cache_text_load(const json_t *text);
/* Number of objects. */
size_t kube_cache_len(struct kube_cache *c);

#endif
