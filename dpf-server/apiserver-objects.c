/* apiserver-objects: the server's own writes (see apiserver.h): the
 * default RBAC policy and service accounts created at start, the
 * aggregated ClusterRoles. They take the paths a client's writes take
 * (admission, the guaranteed update), without a request. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dpf-server/apiserver-private.h"

int
apiserver_ensure_object(struct apiserver *as, const json_t *obj,
                        struct dpf_error *err)
{
    const char *api = json_string_value(json_object_get(obj, "apiVersion"));
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    const struct schema_kind *k =
        api && kind ? schema_find_kind(api, kind) : NULL;
    const char *name = as_md_str(obj, "name");
    const char *ns = as_md_str(obj, "namespace");
    if (!k || !name) {
        dpf_error_set(err, 400, "BadRequest", "no such kind or no name");
        return -EINVAL;
    }
    char *key = as_key(k, k->namespaced ? ns : NULL, name);
    struct store_kv kv = {0};
    int r = store_get(as->store, key, &kv, err);
    free(key);
    if (r == 0) {
        store_kv_free(&kv);
        return 0;
    }
    if (r != -ENOENT) {
        return r;
    }
    json_t *copy = json_deep_copy(obj);
    struct as_error ae = {0};
    char *text = NULL;
    size_t len;
    r = as_prepare_create(k, k->namespaced ? ns : NULL, copy,
                          SCHEMA_UNKNOWN_PRUNE, NULL, &ae);
    if (r == 0) {
        r = as_store_create(as, k, copy, false, &text, &len, &ae);
    }
    json_decref(copy);
    free(text);
    if (r < 0 && r != -EEXIST) {
        if (err) {
            *err = ae.e;
        }
        return r;
    }
    return 0;
}

struct as_edit_ctx {
    int (*edit)(void *arg, json_t *obj);
    void *arg;
};

static int
as_edit_mutate(void *arg, const json_t *cur, json_t **out, struct as_error *ae)
{
    struct as_edit_ctx *c = arg;
    json_t *obj = json_deep_copy(cur);
    int r = c->edit(c->arg, obj);
    if (r <= 0) {
        json_decref(obj);
        if (r < 0) {
            as_error_set(ae, 500, "InternalError", "edit failed: %d", r);
            return r;
        }
        return AS_UNCHANGED;
    }
    *out = obj;
    return AS_WRITE;
}

int
apiserver_update_object(struct apiserver *as, const struct schema_kind *k,
                        const char *ns, const char *name,
                        int (*edit)(void *arg, json_t *obj), void *arg,
                        struct dpf_error *err)
{
    struct as_edit_ctx c = {edit, arg};
    struct as_update_opts opts = {.part = AS_PART_ALL};
    struct as_update_result res = {0};
    struct as_error ae = {0};
    int r = as_guaranteed_update(as, k, k->namespaced ? ns : NULL, name, &opts,
                                 as_edit_mutate, &c, &res, &ae);
    as_update_result_free(&res);
    if (r < 0 && err) {
        *err = ae.e;
    }
    return r;
}
