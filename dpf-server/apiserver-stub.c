/* apiserver-stub: stands in for apiserver*.c while api/ (the schema) is
 * not on main yet; removed once it is. Answers every
 * request with a Kubernetes Status 404. */
#include "dpf-server/apiserver.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/http-server.h"
#include "lib/util.h"

struct apiserver {
    struct store *store;         /* borrowed */
    struct watch_cache *wc;      /* borrowed */
    struct apiserver_config cfg; /* copy */
};

struct apiserver *
apiserver_create(struct store *store, struct watch_cache *wc,
                 const struct apiserver_config *cfg, struct dpf_error *err)
{
    struct apiserver *as = xcalloc(1, sizeof(*as));
    as->store = store;
    as->wc = wc;
    if (cfg) {
        as->cfg = *cfg;
    }
    store_set_event_hook(store, watch_cache_store_hook, wc);
    return as;
}

void
apiserver_destroy(struct apiserver *as)
{
    free(as);
}

int
apiserver_gc_run(struct apiserver *as)
{
    return 0;
}

void
apiserver_handle(void *apiserver, struct http_request *req)
{
    static const char body[] =
        "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
        "\"status\":\"Failure\",\"message\":\"the server could not find the "
        "requested resource\",\"reason\":\"NotFound\",\"details\":{},"
        "\"code\":404}\n";
    http_respond(req, 404, "application/json", body, strlen(body));
}
