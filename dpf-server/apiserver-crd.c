/* apiserver-crd: serving what CustomResourceDefinitions declare.
 *
 * A CRD is a stored object like any other (admitted by its kind in
 * api/kinds-apiextensions.c, which checks it and fills its status). What
 * it declares is served from the moment it is stored: the store's event
 * hook, which sees every committed change in revision order, registers
 * the CRD's kinds with the schema registry (schema_crd_register(), safe
 * while request threads look kinds up) or withdraws them when the CRD is
 * removed. At start, every stored CRD is registered before the server
 * answers its first request. Deleting a CRD goes through its finalizer
 * customresourcecleanup.apiextensions.k8s.io: the garbage collector
 * (apiserver-gc.c) deletes its objects, then the finalizer, and the CRD
 * goes. */
#include <errno.h>
#include <string.h>

#include "dpf-server/apiserver-private.h"
#include "lib/base/log.h"

LOG_MODULE(apiserver);

static void
as_crd_register_text(const char *value, size_t len)
{
    json_t *crd = json_loadb(value, len, 0, NULL);
    if (!crd) {
        return;
    }
    struct dpf_error err = {0};
    int r = schema_crd_register(crd, &err);
    const char *name = as_md_str(crd, "name");
    if (r < 0) {
        /* Admission checked it; a CRD stored by an older server that no
         * longer passes is not served, and says so. */
        log_warn("CustomResourceDefinition not served", "name=%s err=%s",
                 name ? name : "", err.message);
    }
    json_decref(crd);
}

void
as_crd_event(struct apiserver *as, enum store_event_type type, const char *key,
             const char *value, size_t len)
{
    (void) as;
    size_t pl = strlen(AS_CRD_KEY_PREFIX);
    if (strncmp(key, AS_CRD_KEY_PREFIX, pl) != 0) {
        return;
    }
    if (type == STORE_EVENT_DELETED) {
        const char *name = strrchr(key, '/');
        if (name) {
            schema_crd_unregister(name + 1);
        }
        return;
    }
    as_crd_register_text(value, len);
}

static int
as_crd_load_each(void *arg, const struct store_kv *kv)
{
    (void) arg;
    as_crd_register_text(kv->value, kv->len);
    return 0;
}

void
as_crd_load(struct apiserver *as)
{
    store_list(as->store, AS_CRD_KEY_PREFIX, NULL, 0, as_crd_load_each, NULL,
               NULL, NULL, NULL);
}
