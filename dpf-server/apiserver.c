/* apiserver: see apiserver.h. This file holds creation and destruction,
 * the store hook, the checks of request text and the routing of resource
 * paths to the verbs; the verbs and everything they share live in
 * apiserver-*.c (the list, one job a file, is in apiserver-private.h).
 *
 * Objects are stored as compact JSON without metadata.resourceVersion (the
 * store owns revisions; apiserver-storage.c). Every change of a stored
 * object goes through one guaranteed update (apiserver-update.c): compute
 * the new object outside the store's write lock, commit with a
 * compare-and-swap on the revision read, and run again when another
 * writer got there first, unless the client named a resourceVersion:
 * then a mismatch is a 409 Conflict. */
#include "dpf-server/apiserver.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpf-server/apiserver-private.h"
#include "lib/net/http-server.h"

#define AS_WATCH_BUFFER_BYTES ((size_t) 16 * 1024 * 1024)
#define AS_WATCH_BUFFER_TOTAL_BYTES ((size_t) 128 * 1024 * 1024)

const char *const as_default_namespaces[AS_DEFAULT_NAMESPACES] = {
    "default",
    "kube-system",
    "kube-public",
    "dpf-operator-system",
};

/* ------------------------------------------------------------------ */
/* request text and query options */

bool
as_query_bool(struct http_request *req, const char *name)
{
    const char *v = http_request_query(req, name);
    return v && (!strcmp(v, "true") || !strcmp(v, "1"));
}

bool
as_dry_run(struct http_request *req, struct as_error *ae, bool *bad)
{
    const char *d = http_request_query(req, "dryRun");
    *bad = false;
    if (!d || !*d) {
        return false;
    }
    if (strcmp(d, "All") != 0) {
        as_error_set(ae, 400, "BadRequest",
                     "Invalid dry run value: %s (only All is supported)", d);
        *bad = true;
        return false;
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* routing */

struct as_route {
    const struct schema_kind *k;
    char *ns;   /* namespace from the path or NULL */
    char *name; /* object name or NULL (collection) */
    char *sub;  /* subresource ("status") or NULL */
};

static void
as_route_free(struct as_route *rt)
{
    free(rt->ns);
    free(rt->name);
    free(rt->sub);
}

/* Parse /api/v1/... and /apis/<g>/<v>/... resource paths. 0, or -ENOENT
 * (404 generic). */
static int
as_route_parse(const char *path, struct as_route *rt)
{
    char *copy = xstrdup(path);
    char *seg[12];
    int n = 0;
    char *save = NULL;
    memset(rt, 0, sizeof(*rt));
    for (char *t = strtok_r(copy, "/", &save); t;
         t = strtok_r(NULL, "/", &save)) {
        if (n == (int) ARRAY_SIZE(seg)) {
            free(copy);
            return -ENOENT;
        }
        seg[n++] = t;
    }
    const char *group = NULL, *version = NULL;
    int i = 0;
    if (n >= 2 && !strcmp(seg[0], "api")) {
        group = "";
        version = seg[1];
        i = 2;
    } else if (n >= 3 && !strcmp(seg[0], "apis")) {
        group = seg[1];
        version = seg[2];
        i = 3;
    } else {
        free(copy);
        return -ENOENT;
    }
    int rest = n - i;
    char **r = seg + i;
    const struct schema_kind *k = NULL;
    if (rest >= 3 && !strcmp(r[0], "namespaces") &&
        (k = schema_find_resource(group, version, r[2])) != NULL &&
        k->namespaced && rest <= 5) {
        rt->ns = xstrdup(r[1]);
        if (rest >= 4) {
            rt->name = xstrdup(r[3]);
        }
        if (rest == 5) {
            rt->sub = xstrdup(r[4]);
        }
    } else if (rest >= 1 && rest <= 3 &&
               (k = schema_find_resource(group, version, r[0])) != NULL &&
               (!k->namespaced || rest == 1)) {
        if (rest >= 2) {
            rt->name = xstrdup(r[1]);
        }
        if (rest == 3) {
            rt->sub = xstrdup(r[2]);
        }
    } else {
        free(copy);
        return -ENOENT;
    }
    rt->k = k;
    free(copy);
    return 0;
}

/* Query parameters the API server (and server.c's health checks) read.
 * Parameters it never looks at cannot reach a response, so they are not
 * checked; a new lookup belongs here too. */
static const char *const as_text_params[] = {
    "watch",
    "labelSelector",
    "fieldSelector",
    "limit",
    "continue",
    "resourceVersion",
    "timeoutSeconds",
    "allowWatchBookmarks",
    "includeObject",
    "dryRun",
    "fieldValidation",
    "propagationPolicy",
    "gracePeriodSeconds",
    "orphanDependents",
    "verbose",
};

/* Request headers the API server reads. */
static const char *const as_text_headers[] = {
    "Accept",
    "Content-Type",
};

int
as_check_request_text(struct http_request *req, const char *path,
                      struct as_error *ae)
{
    int seg = 0;
    const char *p = path;
    while (*p) {
        while (*p == '/') {
            p++;
        }
        if (!*p) {
            break;
        }
        size_t n = strcspn(p, "/");
        seg++;
        if (!utf8_valid(p, n)) {
            char *shown = utf8_sanitize(path, strlen(path), NULL);
            as_error_set(ae, 400, "BadRequest",
                         "invalid request path \"%s\": path segment %d is "
                         "not valid UTF-8",
                         shown, seg);
            free(shown);
            return -EINVAL;
        }
        p += n;
    }
    for (size_t i = 0; i < ARRAY_SIZE(as_text_params); i++) {
        const char *v = http_request_query(req, as_text_params[i]);
        if (v && !utf8_valid(v, strlen(v))) {
            as_error_set(ae, 400, "BadRequest",
                         "invalid query parameter %s: the value is not "
                         "valid UTF-8",
                         as_text_params[i]);
            return -EINVAL;
        }
    }
    for (size_t i = 0; i < ARRAY_SIZE(as_text_headers); i++) {
        const char *v = http_request_header(req, as_text_headers[i]);
        if (v && !utf8_valid(v, strlen(v))) {
            as_error_set(ae, 400, "BadRequest",
                         "invalid %s header: the value is not valid UTF-8",
                         as_text_headers[i]);
            return -EINVAL;
        }
    }
    return 0;
}

static void
as_method_not_allowed(struct http_request *req, const char *method)
{
    struct as_error ae = {0};
    as_error_set(&ae, 405, "MethodNotAllowed",
                 "the server does not allow this method on the requested "
                 "resource");
    as_respond_error(req, &ae);
}

void
apiserver_handle(void *apiserver, struct http_request *req)
{
    struct apiserver *as = apiserver;
    const char *method = http_request_method(req);
    const char *path = http_request_path(req);
    struct as_error bad = {0};
    if (as_check_request_text(req, path, &bad) < 0) {
        as_respond_error(req, &bad);
        return;
    }
    if (as_discovery_handle(as, req, method, path)) {
        return;
    }
    struct as_route rt;
    if (as_route_parse(path, &rt) < 0) {
        as_respond_generic_404(req);
        return;
    }
    if (rt.sub && strcmp(rt.sub, "status") != 0 &&
        !(as_is_namespace_kind(rt.k) && !strcmp(rt.sub, "finalize"))) {
        as_respond_generic_404(req);
        as_route_free(&rt);
        return;
    }
    if (rt.sub && !rt.k->has_status && !strcmp(rt.sub, "status")) {
        as_respond_generic_404(req);
        as_route_free(&rt);
        return;
    }
    bool is_get = !strcmp(method, "GET");
    bool watch = is_get && as_query_bool(req, "watch");
    struct as_format fmt;
    if (!as_format_negotiate(req, is_get && !rt.sub, &fmt)) {
        struct as_error ae = {0};
        as_error_set(&ae, 406, "NotAcceptable",
                     "only the following media types are accepted: "
                     "application/json, application/yaml, "
                     "application/json;as=Table;v=v1;g=meta.k8s.io");
        as_respond_error(req, &ae);
        as_route_free(&rt);
        return;
    }
    if (!rt.name) {
        if (watch) {
            as_watch_serve(as, req, rt.k, rt.ns, NULL, &fmt);
        } else if (is_get) {
            as_handle_list(as, req, rt.k, rt.ns, &fmt);
        } else if (!strcmp(method, "POST")) {
            as_handle_create(as, req, rt.k, rt.ns, &fmt);
        } else if (!strcmp(method, "DELETE")) {
            as_handle_deletecollection(as, req, rt.k, rt.ns, &fmt);
        } else {
            as_method_not_allowed(req, method);
        }
    } else if (watch) {
        as_watch_serve(as, req, rt.k, rt.ns, rt.name, &fmt);
    } else if (is_get) {
        as_handle_get(as, req, rt.k, rt.ns, rt.name, &fmt);
    } else if (!strcmp(method, "PUT")) {
        as_handle_update(as, req, rt.k, rt.ns, rt.name, rt.sub, &fmt);
    } else if (!strcmp(method, "PATCH")) {
        as_handle_patch(as, req, rt.k, rt.ns, rt.name, rt.sub, &fmt);
    } else if (!strcmp(method, "DELETE") && !rt.sub) {
        as_handle_delete(as, req, rt.k, rt.ns, rt.name, &fmt);
    } else {
        as_method_not_allowed(req, method);
    }
    as_route_free(&rt);
}

/* ------------------------------------------------------------------ */
/* lifecycle */

static void
as_store_hook(void *arg, enum store_event_type type, const char *key,
              const char *value, size_t len, int64_t rv)
{
    struct apiserver *as = arg;
    watch_cache_store_hook(as->wc, type, key, value, len, rv);
    as_ns_cache_event(as, type, key, value, len);
    if (as->gc) {
        as_gc_note(as->gc, type, key, value, len);
    }
}

static int
as_ensure_namespace(struct apiserver *as, const char *name,
                    struct dpf_error *err)
{
    const struct schema_kind *nsk =
        schema_find_resource("", "v1", "namespaces");
    if (!nsk) {
        return 0;
    }
    char *key = as_key(nsk, NULL, name);
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
    json_t *obj = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind",
                            "Namespace", "metadata", "name", name);
    struct as_error ae = {0};
    char *text = NULL;
    size_t len;
    r = as_prepare_create(nsk, NULL, obj, SCHEMA_UNKNOWN_PRUNE, NULL, &ae);
    if (r == 0) {
        r = as_store_create(as, nsk, obj, false, &text, &len, &ae);
    }
    json_decref(obj);
    free(text);
    if (r < 0 && r != -EEXIST) {
        if (err) {
            *err = ae.e;
        }
        return r;
    }
    return 0;
}

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
    if (!as->cfg.max_body) {
        as->cfg.max_body = AS_MAX_BODY;
    }
    if (!as->cfg.bookmark_interval_ms) {
        as->cfg.bookmark_interval_ms = 60000;
    }
    if (!as->cfg.watch_timeout_s) {
        as->cfg.watch_timeout_s = 1800;
    }
    if (!as->cfg.watch_buffer_bytes) {
        as->cfg.watch_buffer_bytes = AS_WATCH_BUFFER_BYTES;
    }
    if (!as->cfg.watch_buffer_total_bytes) {
        as->cfg.watch_buffer_total_bytes = AS_WATCH_BUFFER_TOTAL_BYTES;
    }
    pthread_mutex_init(&as->ns_lock, NULL);
    as->ns_cache = json_object();
    as->gc = as_gc_create(as, !as->cfg.no_gc_thread);
    store_set_event_hook(store, as_store_hook, as);
    as->hub = as_hub_create(as);
    if (!as->cfg.no_default_namespaces) {
        for (size_t i = 0; i < ARRAY_SIZE(as_default_namespaces); i++) {
            if (as_ensure_namespace(as, as_default_namespaces[i], err) < 0) {
                apiserver_destroy(as);
                return NULL;
            }
        }
    }
    as->ready = true;
    return as;
}

void
apiserver_destroy(struct apiserver *as)
{
    if (!as) {
        return;
    }
    store_set_event_hook(as->store, watch_cache_store_hook, as->wc);
    as_hub_destroy(as->hub);
    as_gc_destroy(as->gc);
    json_decref(as->ns_cache);
    pthread_mutex_destroy(&as->ns_lock);
    free(as);
}

int
apiserver_gc_run(struct apiserver *as)
{
    return as_gc_pass(as->gc);
}
