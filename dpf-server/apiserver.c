/* apiserver: see apiserver.h. This file holds a request's way in and
 * out: the checks of request text, errors and responses, the routing of
 * resource paths to the verbs; and creation, destruction and the store
 * hook. The verbs and everything they share live in apiserver-*.c (the
 * list, one job a file, is in apiserver-private.h).
 *
 * Every error is a Kubernetes Status object built by lib/kube/kube-status
 * (the builder whose decoder the clients use): messages are cut on a
 * character boundary when they are set, library text is repaired when it
 * is taken over, and the builder repairs whatever is still not UTF-8, so
 * every answer is valid JSON; a document that still cannot be encoded is
 * answered with a 500 Status. Documents go out as JSON or, when the
 * client asked for it, YAML.
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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpf-server/apiserver-private.h"
#include "lib/codecs/yamljson.h"
#include "lib/net/http-server.h"

/* Bytes of a field path quoted in a Warning header. */
#define AS_WARNING_PATH_MAX 256

#define AS_WATCH_BUFFER_BYTES ((size_t) 16 * 1024 * 1024)
#define AS_WATCH_BUFFER_TOTAL_BYTES ((size_t) 128 * 1024 * 1024)

const char *const as_default_namespaces[AS_DEFAULT_NAMESPACES] = {
    "default",         "kube-system",         "kube-public",
    "kube-node-lease", "dpf-operator-system",
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

/* ------------------------------------------------------------------ */
/* errors */

void
as_error_set(struct as_error *ae, int code, const char *reason, const char *fmt,
             ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    dpf_error_set(&ae->e, code, reason, "%s", "");
    /* Messages quote names, kinds and selectors from the request: cut them
     * on a character boundary so the Status stays valid JSON. */
    utf8_copy(ae->e.message, sizeof(ae->e.message), msg);
    free(msg);
}

void
as_error_details(struct as_error *ae, const char *name, const char *group,
                 const char *kind)
{
    kube_status_details_set(&ae->d, name, group, kind);
}

void
as_error_not_found(struct as_error *ae, const struct schema_kind *k,
                   const char *name)
{
    char qr[256];
    as_qualified_resource(k, qr, sizeof(qr));
    as_error_set(ae, 404, "NotFound", "%s \"%s\" not found", qr, name);
    as_error_details(ae, name, k->group, k->plural);
}

void
as_error_conflict(struct as_error *ae, const struct schema_kind *k,
                  const char *name, const char *what)
{
    char qr[256];
    as_qualified_resource(k, qr, sizeof(qr));
    as_error_set(ae, 409, "Conflict",
                 "Operation cannot be fulfilled on %s "
                 "\"%s\": %s",
                 qr, name, what);
    as_error_details(ae, name, k->group, k->plural);
}

void
as_error_precondition(struct as_error *ae, const struct schema_kind *k,
                      const char *name, const char *what, const char *want,
                      const char *have)
{
    char *msg = xasprintf("Precondition failed: %s in precondition: %s, %s "
                          "in object meta: %s",
                          what, want, what, have);
    as_error_conflict(ae, k, name, msg);
    free(msg);
}

void
as_error_stale(struct as_error *ae, const struct schema_kind *k,
               const char *name)
{
    as_error_conflict(ae, k, name,
                      "the object has been modified; please apply your "
                      "changes to the latest version and try again");
}

void
as_error_from(struct as_error *ae, const struct dpf_error *e, int def_code,
              const char *def_reason)
{
    ae->e = *e;
    kube_status_clean(&ae->e);
    if (!ae->e.code) {
        ae->e.code = def_code;
    }
    if (!ae->e.reason[0]) {
        snprintf(ae->e.reason, sizeof(ae->e.reason), "%s", def_reason);
    }
    if (!ae->e.message[0]) {
        snprintf(ae->e.message, sizeof(ae->e.message), "%s", def_reason);
    }
}

void
as_error_store(struct as_error *ae, const struct schema_kind *k,
               const char *name, int r, const struct dpf_error *e)
{
    if (r == -ENOENT) {
        as_error_not_found(ae, k, name);
    } else {
        as_error_from(ae, e, 500, "InternalError");
    }
}

/* ------------------------------------------------------------------ */
/* responses */

char *
as_status_text(const struct as_error *ae, size_t *len)
{
    return kube_status_dump(&ae->e, &ae->d, len);
}

/* A document that could not be encoded (cannot happen with the builders
 * here; kept so that no response is ever empty or a crash). */
static void
as_respond_unencodable(struct http_request *req)
{
    struct as_error ae = {0};
    as_error_set(&ae, 500, "InternalError",
                 "the response could not be encoded");
    as_respond_error(req, &ae);
}

void
as_respond_error(struct http_request *req, const struct as_error *ae)
{
    size_t len;
    char *text = as_status_text(ae, &len);
    int code = ae->e.code ? ae->e.code : 500;
    if (code == 405) {
        http_response_header(req, "Allow", "GET, POST, PUT, PATCH, DELETE");
    }
    http_respond_take(req, code, "application/json", text, len);
}

void
as_respond_text(struct http_request *req, int status,
                const struct as_format *fmt, char *text, size_t len)
{
    if (!text) {
        as_respond_unencodable(req);
        return;
    }
    if (fmt && fmt->out == AS_OUT_YAML) {
        json_t *doc = json_loadb(text, len, 0, NULL);
        free(text);
        if (!doc) {
            as_respond_unencodable(req);
            return;
        }
        char *y = yamljson_emit(doc);
        json_decref(doc);
        http_respond_take(req, status, "application/yaml", y, strlen(y));
        return;
    }
    http_respond_take(req, status, "application/json", text, len);
}

void
as_respond_json(struct http_request *req, int status,
                const struct as_format *fmt, const json_t *doc)
{
    if (!doc) {
        as_respond_unencodable(req);
        return;
    }
    if (fmt && fmt->out == AS_OUT_YAML) {
        char *y = yamljson_emit(doc);
        http_respond_take(req, status, "application/yaml", y, strlen(y));
        return;
    }
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text) {
        as_respond_unencodable(req);
        return;
    }
    http_respond_take(req, status, "application/json", text, strlen(text));
}

void
as_respond_generic_404(struct http_request *req)
{
    struct as_error ae = {0};
    as_error_set(&ae, 404, "NotFound",
                 "the server could not find the requested resource");
    as_respond_error(req, &ae);
}

/* ------------------------------------------------------------------ */
/* warnings */

/* The Warning header for an unknown field (RFC 7234 warn-text, as
 * Kubernetes sends it): the field path comes from the keys of the
 * client's body, so its quotes and backslashes are escaped, control
 * characters (a key may hold CR/LF) become '?', and a long path is cut on
 * a character boundary. New string. */
char *
as_warning_value(const char *path)
{
    struct dbuf b;
    dbuf_init(&b);
    dbuf_puts(&b, "299 - \"unknown field \\\"");
    size_t len = strlen(path);
    size_t n = utf8_prefix(path, len, AS_WARNING_PATH_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) path[i];
        if (c < 0x20 || c == 0x7f) {
            dbuf_puts(&b, "?");
        } else if (c == '"' || c == '\\') {
            dbuf_puts(&b, c == '"' ? "\\\\\\\"" : "\\\\\\\\");
        } else {
            dbuf_append(&b, &path[i], 1);
        }
    }
    if (n < len) {
        dbuf_puts(&b, "...");
    }
    dbuf_puts(&b, "\\\"\"");
    return dbuf_steal(&b, NULL);
}

void
as_add_warnings(struct http_request *req, const json_t *warnings)
{
    /* The first 21 fields only: a body with thousands of unknown fields
     * must not make the response headers grow without bound. */
    for (size_t i = 0; i < json_array_size(warnings) && i <= 20; i++) {
        const char *path = json_string_value(json_array_get(warnings, i));
        if (path) {
            char *hdr = as_warning_value(path);
            http_response_header(req, "Warning", hdr);
            free(hdr);
        }
    }
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
    if (as->cfg.extension && as->cfg.extension(as->cfg.extension_arg, req, rt.k,
                                               rt.ns, rt.name, rt.sub)) {
        as_route_free(&rt);
        return;
    }
    if (rt.sub && as_proxy_handle(as, req, rt.k, rt.ns, rt.name, rt.sub)) {
        as_route_free(&rt);
        return;
    }
    if (rt.k->stored_as && !rt.sub) {
        struct as_format vfmt;
        if (!as_format_negotiate(req, !strcmp(method, "GET"), &vfmt)) {
            struct as_error ae = {0};
            as_error_set(&ae, 406, "NotAcceptable",
                         "only the following media types are accepted: "
                         "application/json, application/yaml, "
                         "application/json;as=Table;v=v1;g=meta.k8s.io");
            as_respond_error(req, &ae);
        } else {
            as_handle_view(as, req, rt.k, rt.ns, rt.name, method, &vfmt);
        }
        as_route_free(&rt);
        return;
    }
    if (rt.sub && !strcmp(rt.sub, "scale") && rt.k->scale && rt.name) {
        struct as_format sfmt;
        if (strcmp(method, "GET") != 0 && strcmp(method, "PUT") != 0 &&
            strcmp(method, "PATCH") != 0) {
            as_method_not_allowed(req, method);
        } else if (!as_format_negotiate(req, false, &sfmt)) {
            struct as_error ae = {0};
            as_error_set(&ae, 406, "NotAcceptable",
                         "only the following media types are accepted: "
                         "application/json, application/yaml");
            as_respond_error(req, &ae);
        } else {
            as_handle_scale(as, req, rt.k, rt.ns, rt.name, method, &sfmt);
        }
        as_route_free(&rt);
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
    as_crd_event(as, type, key, value, len);
    if (as->gc) {
        as_gc_note(as->gc, type, key, value, len);
    }
    if (as->cfg.event_hook) {
        as->cfg.event_hook(as->cfg.event_hook_arg, type, key, value, len, rv);
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
    as_crd_load(as);
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
    as_proxy_shutdown(as);
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
