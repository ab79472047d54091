/* kube-write: see kube-write.h. */
#include "lib/kube/kube-write.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/base/util.h"

/* The pause between conflict retries (a worker's own backoff: it waits
 * for nothing another thread does). */
static void
pause_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000,
                          .tv_nsec = (long) (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
}

int
kube_update_retry(struct kube_rest *r, const struct kube_gvr *gvr,
                  const char *ns, const char *name, const char *subresource,
                  kube_mutate_fn mutate, void *arg, json_t **out,
                  struct dpf_error *err)
{
    return kube_update_retry_from(r, gvr, ns, name, subresource, NULL, mutate,
                                  arg, out, err);
}

int
kube_update_retry_from(struct kube_rest *r, const struct kube_gvr *gvr,
                       const char *ns, const char *name,
                       const char *subresource, const json_t *cached,
                       kube_mutate_fn mutate, void *arg, json_t **out,
                       struct dpf_error *err)
{
    char *path = kube_path(gvr, ns, name, NULL);
    char *put_path = kube_path(gvr, ns, name, subresource);
    int64_t delay = 10;
    int rc = -EBUSY;
    if (out) {
        *out = NULL;
    }
    for (int attempt = 0; attempt < KUBE_UPDATE_TRIES; attempt++) {
        json_t *obj = NULL;
        if (attempt == 0 && cached) {
            obj = json_deep_copy(cached);
            rc = obj ? 0 : -ENOMEM;
        } else {
            rc = kube_rest_json_wait(r, "GET", path, NULL, NULL, NULL, &obj,
                                     err);
        }
        if (rc < 0) {
            break;
        }
        rc = mutate(arg, obj);
        if (rc <= 0) {
            if (out && rc == 0) {
                *out = obj;
            } else {
                json_decref(obj);
            }
            break;
        }
        json_t *written = NULL;
        rc = kube_rest_json_wait(r, "PUT", put_path, NULL, obj, NULL,
                                 out ? &written : NULL, err);
        json_decref(obj);
        if (rc == 0) {
            if (out) {
                *out = written;
            } else {
                json_decref(written);
            }
            break;
        }
        if (rc != -EBUSY) {
            break;
        }
        /* Conflict: someone wrote between our read and write (after a
         * cached copy, the cache was behind: read at once) */
        if (attempt > 0 || !cached) {
            pause_ms(delay + (int64_t) (rand() % (int) (delay / 2 + 1)));
            delay *= 2;
        }
    }
    free(path);
    free(put_path);
    return rc;
}

int
kube_apply(struct kube_rest *r, const struct kube_gvr *gvr, const json_t *obj,
           const char *field_manager, bool force, json_t **out,
           struct dpf_error *err)
{
    const json_t *md = json_object_get(obj, "metadata");
    const char *name = json_string_value(json_object_get(md, "name"));
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    if (!name || !field_manager || !*field_manager) {
        dpf_error_set(err, 400, "BadRequest",
                      "apply needs metadata.name and a field manager");
        return -EINVAL;
    }
    char *path = kube_path(gvr, gvr->namespaced ? ns : NULL, name, NULL);
    char *fm = kube_escape(field_manager);
    char *query =
        xasprintf("fieldManager=%s%s", fm, force ? "&force=true" : "");
    int rc = kube_rest_json_wait(r, "PATCH", path, query, obj,
                                 "application/apply-patch+yaml", out, err);
    free(query);
    free(fm);
    free(path);
    return rc;
}
