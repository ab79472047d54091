/* Fuzz target for lib/kube/kube-watch (the watch-stream parser) and the
 * cache the informer feeds from it: the input is a watch stream as a
 * server would send it, fed in chunks whose sizes come from the input's
 * first byte, once with the default line bound and once with a small one.
 * Every event's object goes through lib/kube/kube-cache as the informer
 * would (put for ADDED/MODIFIED, remove for DELETED), which runs the
 * label and owner indexes on untrusted metadata. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/kube/kube-cache.h"
#include "lib/kube/kube-watch.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
on_event(void *arg, enum kube_event_type t, json_t *obj)
{
    struct kube_cache *c = arg;
    if (!json_is_object(obj)) {
        abort(); /* the parser promises an object */
    }
    switch (t) {
    case KUBE_EVENT_ADDED:
    case KUBE_EVENT_MODIFIED: {
        int rc;
        json_decref(kube_cache_put(c, obj, &rc));
        break;
    }
    case KUBE_EVENT_DELETED: {
        char *key = kube_cache_key(obj);
        if (key) {
            json_decref(kube_cache_remove(c, key));
            free(key);
        }
        break;
    }
    case KUBE_EVENT_BOOKMARK:
        break;
    case KUBE_EVENT_ERROR:
        /* the informer stops on a 410 */
        return json_integer_value(json_object_get(obj, "code")) == 410 ? 1 : 0;
    }
    return 0;
}

static void
run(const uint8_t *data, size_t size, size_t chunk, size_t max_line)
{
    struct kube_cache *c = kube_cache_create();
    kube_cache_add_index(c, KUBE_INDEX_LABEL, NULL, NULL);
    kube_cache_add_index(c, KUBE_INDEX_OWNER, NULL, NULL);
    kube_cache_add_index(c, KUBE_INDEX_NAMESPACE, NULL, NULL);
    struct kube_watch_parser p;
    struct dpf_error err = {0};
    kube_watch_parser_init(&p, max_line, on_event, c);
    int r = 0;
    for (size_t off = 0; off < size && r == 0; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        r = kube_watch_parser_feed(&p, (const char *) data + off, n, &err);
    }
    if (r == 0) {
        r = kube_watch_parser_finish(&p, &err);
    }
    if (r < 0 && !dpf_error_is_set(&err)) {
        abort(); /* every parse failure says why */
    }
    json_decref(kube_cache_by_index(c, KUBE_INDEX_LABEL, "app=x"));
    json_decref(kube_cache_list(c));
    kube_watch_parser_free(&p);
    kube_cache_destroy(c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    size_t chunk = (size_t) data[0] % 64 + 1;
    run(data + 1, size - 1, chunk, 0);
    run(data + 1, size - 1, size, 64);
    return 0;
}
