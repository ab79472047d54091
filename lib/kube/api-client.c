/* api-client: see api-client.h. The connection, credentials and Status
 * decoding are lib/kube's shared ones (kubeconfig-curl, kube-status,
 * kube-watch); what is left here is the blocking transfer on one easy
 * handle and the object verbs. */
#include "lib/kube/api-client.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"
#include "lib/kube/kubeconfig-curl.h"

struct api_client {
    CURL *curl;                   /* one easy handle: keeps the connection */
    struct kubeconfig_curl *conn; /* server, TLS, credentials */
    long timeout_ms;              /* per non-watch request; 0 = none */
    char errbuf[CURL_ERROR_SIZE]; /* curl's last error text */
};

struct api_client *
api_client_create(const struct kubeconfig *kc, struct dpf_error *err)
{
    struct kubeconfig_curl *conn = kubeconfig_curl_create(kc, err);
    if (!conn) {
        return NULL;
    }
    struct api_client *c = xcalloc(1, sizeof *c);
    c->conn = conn;
    c->curl = curl_easy_init();
    if (!c->curl) {
        api_client_destroy(c);
        dpf_error_set(err, 500, "InternalError", "curl_easy_init failed");
        return NULL;
    }
    return c;
}

void
api_client_destroy(struct api_client *c)
{
    if (!c) {
        return;
    }
    curl_easy_cleanup(c->curl);
    kubeconfig_curl_destroy(c->conn);
    free(c);
}

void
api_client_set_exec_options(struct api_client *c,
                            const struct kubeconfig_exec_options *o)
{
    kubeconfig_curl_set_exec_options(c->conn, o);
}

int
api_client_exec_runs(const struct api_client *c)
{
    return kubeconfig_curl_exec_runs(c->conn);
}

void
api_client_set_timeout(struct api_client *c, long timeout_ms)
{
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
}

void
api_client_set_user_agent(struct api_client *c, const char *ua)
{
    kubeconfig_curl_set_user_agent(c->conn, ua);
}

const char *
api_client_server(const struct api_client *c)
{
    return kubeconfig_curl_server(c->conn);
}

/* --- one exchange, plain or watch --- */

struct xfer {
    struct api_client *c;
    struct dbuf body; /* whole body (plain) or error body (watch) */
    /* watch only */
    struct kube_watch_parser *parser; /* splits a 2xx body into events */
    kube_watch_event_fn cb;           /* the caller's callback */
    void *cb_arg;                     /* its argument */
    struct api_watch_options *wopts;  /* resume state */
    int stop;                         /* non-zero: the parser stopped */
    struct dpf_error *err;            /* where event errors go */
};

static size_t
write_cb(char *buf, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    size_t len = size * n;
    long status = 0;
    curl_easy_getinfo(x->c->curl, CURLINFO_RESPONSE_CODE, &status);
    if (!x->parser || status / 100 != 2) { /* a reply or an error Status */
        dbuf_append(&x->body, buf, len);
        return len;
    }
    x->stop = kube_watch_parser_feed(x->parser, buf, len, x->err);
    return x->stop ? 0 : len; /* 0 aborts the transfer */
}

/* Send req with the current credential (the exec plugin runs first when
 * its credential is missing or expired, and once more after a 401, when
 * the request is repeated). Returns curl's result; *status gets the HTTP
 * status (0 if none came), err the plugin's failure (*plugin_rc). */
static CURLcode
exchange(struct api_client *c, const struct kube_request *req, struct xfer *x,
         long *status, int *plugin_rc, struct dpf_error *err)
{
    for (int attempt = 0;; attempt++) {
        *status = 0;
        *plugin_rc = kubeconfig_curl_refresh(c->conn, attempt > 0, err);
        if (*plugin_rc < 0) {
            return CURLE_OK;
        }
        if (x->body.data) { /* a 401's body */
            x->body.len = 0;
            x->body.data[0] = '\0';
        }
        struct curl_slist *hdrs =
            kubeconfig_curl_setup(c->conn, c->curl, req, c->errbuf);
        curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, x);
        CURLcode rc = curl_easy_perform(c->curl);
        kubeconfig_curl_headers_free(hdrs);
        curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, status);
        if (rc == CURLE_OK && *status == 401 &&
            kubeconfig_curl_uses_exec(c->conn) && attempt == 0) {
            continue;
        }
        return rc;
    }
}

int
api_client_request(struct api_client *c, const struct kube_request *req,
                   struct kube_response *resp, struct dpf_error *err)
{
    struct kube_request r = *req;
    if (r.timeout_ms <= 0) {
        r.timeout_ms = c->timeout_ms;
    }
    struct xfer x = {.c = c};
    dbuf_init(&x.body);
    int plugin_rc;
    CURLcode rc = exchange(c, &r, &x, &resp->status, &plugin_rc, err);
    if (!x.body.data) {
        dbuf_append(&x.body, "", 0);
    }
    resp->body = dbuf_steal(&x.body, &resp->len);
    if (plugin_rc < 0) {
        return plugin_rc;
    }
    if (rc != CURLE_OK) {
        resp->status = 0;
        return kubeconfig_curl_error(c->conn, rc, c->errbuf, r.method, r.path,
                                     err);
    }
    return 0;
}

/* --- object verbs --- */

/* Send a request and decode a JSON reply into *out (may be NULL). */
static int
do_json(struct api_client *c, const struct kube_request *req, json_t **out,
        struct dpf_error *err)
{
    struct kube_response resp;
    if (out) {
        *out = NULL;
    }
    int r = api_client_request(c, req, &resp, err);
    if (r == 0) {
        r = kube_response_json(resp.status, resp.body, resp.len, req->method,
                               req->path, out, err);
    }
    kube_response_free(&resp);
    return r;
}

int
api_client_get(struct api_client *c, const struct kube_gvr *gvr, const char *ns,
               const char *name, json_t **out, struct dpf_error *err)
{
    char *path = kube_path(gvr, ns, name, NULL);
    struct kube_request req = {.method = "GET", .path = path};
    int r = do_json(c, &req, out, err);
    free(path);
    return r;
}

int
api_client_list(struct api_client *c, const struct kube_gvr *gvr,
                const char *ns, const struct api_list_options *opts,
                json_t **out, struct dpf_error *err)
{
    static const struct api_list_options none;
    if (!opts) {
        opts = &none;
    }
    char *path = kube_path(gvr, ns, NULL, NULL);
    json_t *all = NULL;
    char *cont = NULL;
    int r;
    bool table = opts->accept && strstr(opts->accept, "as=Table");
    *out = NULL;
    for (;;) {
        struct dbuf q;
        dbuf_init(&q);
        kube_list_query(&q, opts->label_selector, opts->field_selector,
                        opts->resource_version, opts->limit);
        kube_query_add(&q, "continue", cont);
        struct kube_request req = {.method = "GET",
                                   .path = path,
                                   .query = q.data,
                                   .accept = opts->accept};
        json_t *page = NULL;
        r = do_json(c, &req, &page, err);
        dbuf_free(&q);
        if (r < 0) {
            break;
        }
        const char *next = json_string_value(
            json_object_get(json_object_get(page, "metadata"), "continue"));
        if (!all) {
            all = page;
        } else {
            json_array_extend(json_object_get(all, "items"),
                              json_object_get(page, "items"));
            json_object_set(all, "metadata", json_object_get(page, "metadata"));
            json_decref(page);
        }
        free(cont);
        cont = NULL;
        if (table || !next || !*next || opts->limit <= 0) {
            break;
        }
        cont = xstrdup(next);
    }
    free(cont);
    free(path);
    if (r < 0) {
        json_decref(all);
        return r;
    }
    json_t *md = json_object_get(all, "metadata");
    if (json_is_object(md)) {
        json_object_del(md, "continue");
    }
    if (!table && !json_is_array(json_object_get(all, "items"))) {
        json_object_set_new(all, "items", json_array());
    }
    *out = all;
    return 0;
}

static int
send_obj(struct api_client *c, const char *method, const char *path,
         const char *field_manager, const char *ctype, const json_t *obj,
         json_t **out, struct dpf_error *err)
{
    char *body = json_dumps(obj, JSON_COMPACT);
    struct dbuf q;
    dbuf_init(&q);
    kube_query_add(&q, "fieldManager", field_manager);
    struct kube_request req = {.method = method,
                               .path = path,
                               .query = q.data,
                               .content_type = ctype,
                               .body = body,
                               .body_len = strlen(body)};
    int r = do_json(c, &req, out, err);
    dbuf_free(&q);
    free(body);
    return r;
}

int
api_client_post(struct api_client *c, const struct kube_gvr *gvr,
                const char *ns, const json_t *obj, const char *field_manager,
                json_t **out, struct dpf_error *err)
{
    char *path = kube_path(gvr, ns, NULL, NULL);
    int r = send_obj(c, "POST", path, field_manager, NULL, obj, out, err);
    free(path);
    return r;
}

int
api_client_put(struct api_client *c, const struct kube_gvr *gvr, const char *ns,
               const json_t *obj, const char *subresource,
               const char *field_manager, json_t **out, struct dpf_error *err)
{
    const char *name = json_string_value(
        json_object_get(json_object_get(obj, "metadata"), "name"));
    if (!name || !*name) {
        dpf_error_set(err, 400, "BadRequest",
                      "%s: metadata.name is required for an update",
                      gvr->resource);
        return -EINVAL;
    }
    char *path = kube_path(gvr, ns, name, subresource);
    int r = send_obj(c, "PUT", path, field_manager, NULL, obj, out, err);
    free(path);
    return r;
}

int
api_client_patch(struct api_client *c, const struct kube_gvr *gvr,
                 const char *ns, const char *name, const char *subresource,
                 enum api_patch_type type, const json_t *patch,
                 const char *field_manager, json_t **out, struct dpf_error *err)
{
    char *path = kube_path(gvr, ns, name, subresource);
    int r = send_obj(c, "PATCH", path, field_manager,
                     type == API_PATCH_JSON ? "application/json-patch+json"
                                            : "application/merge-patch+json",
                     patch, out, err);
    free(path);
    return r;
}

int
api_client_delete(struct api_client *c, const struct kube_gvr *gvr,
                  const char *ns, const char *name, const char *propagation,
                  json_t **out, struct dpf_error *err)
{
    char *path = kube_path(gvr, ns, name, NULL);
    int r;
    if (propagation) {
        json_t *opts = json_pack("{s:s}", "propagationPolicy", propagation);
        r = send_obj(c, "DELETE", path, NULL, NULL, opts, out, err);
        json_decref(opts);
    } else {
        struct kube_request req = {.method = "DELETE", .path = path};
        r = do_json(c, &req, out, err);
    }
    free(path);
    return r;
}

/* --- watch --- */

static void
remember_rv(struct api_watch_options *o, const json_t *obj)
{
    const char *rv = json_string_value(
        json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
    json_t *rows = json_object_get(obj, "rows");
    if (json_is_array(rows)) { /* a Table: the rows' objects carry it */
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row)
        {
            const char *r = json_string_value(json_object_get(
                json_object_get(json_object_get(row, "object"), "metadata"),
                "resourceVersion"));
            if (r && *r) {
                rv = r;
            }
        }
    }
    if (rv && *rv) {
        snprintf(o->resource_version, sizeof o->resource_version, "%s", rv);
    }
}

/* One event from the parser: ERROR ends the watch with its Status. */
static int
watch_event(void *arg, enum kube_event_type t, json_t *obj)
{
    struct xfer *x = arg;
    if (t == KUBE_EVENT_ERROR) {
        long code = (long) json_integer_value(json_object_get(obj, "code"));
        char *txt = json_dumps(obj, JSON_COMPACT);
        int r =
            kube_status_to_error(code ? code : 500, txt, strlen(txt), x->err);
        free(txt);
        return r < 0 ? r : -EIO;
    }
    remember_rv(x->wopts, obj);
    int r = x->cb(x->cb_arg, t, obj);
    return r > 0 ? 1 : r;
}

int
api_client_watch_path(struct api_client *c, const char *path,
                      struct api_watch_options *opts, kube_watch_event_fn cb,
                      void *arg, struct dpf_error *err)
{
    long timeout_ms = 0;
    if (opts->deadline_ms > 0) {
        int64_t left = opts->deadline_ms - time_mono_ms();
        if (left <= 0) {
            dpf_error_set(err, 504, KUBE_REASON_CLIENT,
                          "watch deadline passed");
            return -ETIMEDOUT;
        }
        timeout_ms = (long) left;
    }
    struct kube_watch_options wo = {.label_selector = opts->label_selector,
                                    .field_selector = opts->field_selector,
                                    .resource_version = opts->resource_version,
                                    .allow_bookmarks = opts->allow_bookmarks,
                                    .timeout_seconds = opts->timeout_seconds};
    char *query = kube_watch_query(&wo);
    struct kube_request req = {.method = "GET",
                               .path = path,
                               .query = query,
                               .accept = opts->accept,
                               .timeout_ms = timeout_ms};
    struct kube_watch_parser parser;
    struct xfer x = {.c = c,
                     .parser = &parser,
                     .cb = cb,
                     .cb_arg = arg,
                     .wopts = opts,
                     .err = err};
    kube_watch_parser_init(&parser, 0, watch_event, &x);
    dbuf_init(&x.body);
    long status;
    int r;
    CURLcode rc = exchange(c, &req, &x, &status, &r, err);
    if (r < 0 || x.stop != 0) {
        r = r < 0 ? r : x.stop;
    } else if (rc == CURLE_OPERATION_TIMEDOUT && opts->deadline_ms > 0) {
        dpf_error_set(err, 504, KUBE_REASON_CLIENT,
                      "watch %s: deadline reached", path);
        r = -ETIMEDOUT;
    } else if (rc != CURLE_OK) {
        r = kubeconfig_curl_error(c->conn, rc, c->errbuf, "GET", path, err);
    } else if (status / 100 != 2) {
        r = kube_status_to_error(status, x.body.data, x.body.len, err);
    } else {
        r = kube_watch_parser_finish(&parser, err); /* a last event
                                                       without newline */
    }
    kube_watch_parser_free(&parser);
    dbuf_free(&x.body);
    free(query);
    return r;
}

int
api_client_watch(struct api_client *c, const struct kube_gvr *gvr,
                 const char *ns, struct api_watch_options *opts,
                 kube_watch_event_fn cb, void *arg, struct dpf_error *err)
{
    char *path = kube_path(gvr, ns, NULL, NULL);
    int r = api_client_watch_path(c, path, opts, cb, arg, err);
    free(path);
    return r;
}
