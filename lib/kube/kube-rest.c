/* kube-rest: see kube-rest.h.
 *
 * curl's multi socket API in short: curl calls sock_cb() to say which
 * events it wants on which socket and timer_cb() to say when it wants to be
 * called back; we map those onto loop watches and one loop timer, and call
 * curl_multi_socket_action() when the loop reports readiness or the timer
 * fires. Finished transfers are collected with curl_multi_info_read()
 * after curl returns, so done callbacks never run inside curl: they may
 * start and cancel calls freely.
 *
 * Cancelling inside curl (from an event callback, which runs within curl's
 * write callback) cannot remove the easy handle there; the call is marked,
 * its write callback refuses further bytes, and it is reaped as soon as
 * curl returns. */
#include "lib/kube/kube-rest.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"
#include "lib/kube/kubeconfig-curl.h"

enum call_kind { CALL_PLAIN, CALL_LIST, CALL_WATCH };

struct kube_call {
    struct kube_rest *rest;
    enum call_kind kind;
    CURL *easy;                   /* current transfer (a list has several) */
    struct curl_slist *hdrs;      /* its header list */
    char errbuf[CURL_ERROR_SIZE]; /* curl's last error text */
    struct dbuf body;             /* reply (plain, list) or error body */
    char *method;                 /* for messages and re-issue */
    char *path;                   /* collection or object path */
    char *query;                  /* base query (lists: without continue) */
    char *accept;                 /* Accept or NULL */
    char *content_type;           /* request body type or NULL */
    char *req_body;               /* request body or NULL */
    size_t req_body_len;          /* its length */
    long timeout_ms;              /* per transfer */
    bool reauth;                  /* repeated once after a 401 */
    struct loop_timer *fail;      /* reports a credential failure */
    int fail_rc;                  /* that failure */
    /* list */
    kube_rest_page_fn page; /* per page */
    long limit;             /* page size (0 = unpaged) */
    char *cont;             /* continue token of the next page */
    /* watch */
    kube_watch_event_fn event;       /* per event */
    struct kube_watch_parser parser; /* the stream parser */
    int stop_rc;                     /* non-zero: the parser stopped */
    /* all: why a credential refresh or the watch parser failed; made by
     * call_err() when first needed, as an error is ~18 KiB and a call
     * that needs none (nearly all) should stay a small allocation: a
     * large calloc per request cost the loop an madvise() and page faults
     * (docs/benchmarks.md, sixteenth session) */
    struct dpf_error *err;
    kube_rest_done_fn done;
    void *arg;
    bool cancelled;
    struct kube_call *prev, *next; /* live list, or the reap list */
};

struct kr_sock {
    struct kube_rest *rest;
    struct loop_watch *w;
    curl_socket_t fd;
    struct kr_sock *prev, *next;
};

struct kube_rest {
    struct loop *loop;
    CURLM *multi;
    struct loop_timer *timer;     /* curl's timeout, NULL when none */
    struct kubeconfig_curl *conn; /* server, TLS, credentials */
    struct kube_call *calls;      /* live calls */
    struct kube_call *reap;       /* cancelled inside curl, to free */
    struct kr_sock *socks;        /* sockets curl asked us to watch */
    int depth;                    /* > 0 while inside curl */
};

/* --- paths --- */

char *
kube_escape(const char *s)
{
    struct dbuf b;
    dbuf_init(&b);
    for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
            (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
            *p == '~') {
            dbuf_append(&b, p, 1);
        } else {
            dbuf_printf(&b, "%%%02X", *p);
        }
    }
    dbuf_append(&b, "", 0);
    return dbuf_steal(&b, NULL);
}

char *
kube_path(const struct kube_gvr *gvr, const char *ns, const char *name,
          const char *subresource)
{
    struct dbuf b;
    dbuf_init(&b);
    if (!gvr->group || !*gvr->group) {
        dbuf_printf(&b, "/api/%s", gvr->version);
    } else {
        dbuf_printf(&b, "/apis/%s/%s", gvr->group, gvr->version);
    }
    if (gvr->namespaced && ns && *ns) {
        char *e = kube_escape(ns);
        dbuf_printf(&b, "/namespaces/%s", e);
        free(e);
    }
    dbuf_printf(&b, "/%s", gvr->resource);
    if (name) {
        char *e = kube_escape(name);
        dbuf_printf(&b, "/%s", e);
        free(e);
        if (subresource && *subresource) {
            dbuf_printf(&b, "/%s", subresource);
        }
    }
    return dbuf_steal(&b, NULL);
}

void
kube_query_add(struct dbuf *q, const char *key, const char *value)
{
    if (!value || !*value) {
        return;
    }
    char *e = kube_escape(value);
    dbuf_printf(q, "%s%s=%s", q->len ? "&" : "", key, e);
    free(e);
}

void
kube_list_query(struct dbuf *q, const char *label_selector,
                const char *field_selector, const char *resource_version,
                long limit)
{
    kube_query_add(q, "labelSelector", label_selector);
    kube_query_add(q, "fieldSelector", field_selector);
    kube_query_add(q, "resourceVersion", resource_version);
    if (limit > 0) {
        dbuf_printf(q, "%slimit=%ld", q->len ? "&" : "", limit);
    }
}

char *
kube_watch_query(const struct kube_watch_options *o)
{
    struct dbuf q;
    dbuf_init(&q);
    dbuf_puts(&q, "watch=true");
    kube_list_query(&q, o->label_selector, o->field_selector,
                    o->resource_version, 0);
    if (o->allow_bookmarks) {
        dbuf_puts(&q, "&allowWatchBookmarks=true");
    }
    if (o->timeout_seconds > 0) {
        dbuf_printf(&q, "&timeoutSeconds=%ld", o->timeout_seconds);
    }
    return dbuf_steal(&q, NULL);
}

int
kube_response_json(long status, const char *body, size_t len,
                   const char *method, const char *path, json_t **out,
                   struct dpf_error *err)
{
    if (out) {
        *out = NULL;
    }
    int r = kube_status_to_error(status, body, len, err);
    if (r == 0 && out) {
        json_error_t jerr;
        *out = json_loadb(body, len, 0, &jerr);
        if (!*out) {
            dpf_error_set(err, 500, "InternalError",
                          "%s %s: the reply is not JSON: %s", method, path,
                          jerr.text);
            r = -EPROTO;
        }
    }
    return r;
}

/* --- calls --- */

static void
call_free(struct kube_call *c)
{
    loop_timer_cancel(c->fail);
    if (c->kind == CALL_WATCH) {
        kube_watch_parser_free(&c->parser);
    }
    dbuf_free(&c->body);
    free(c->method);
    free(c->path);
    free(c->query);
    free(c->accept);
    free(c->content_type);
    free(c->req_body);
    free(c->cont);
    free(c->err);
    free(c);
}

/* The call's error, zeroed the first time it is asked for. */
static struct dpf_error *
call_err(struct kube_call *c)
{
    if (!c->err) {
        c->err = xmalloc(sizeof *c->err);
        dpf_error_clear(c->err);
    }
    return c->err;
}

static void
call_unlink(struct kube_call *c, struct kube_call **head)
{
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        *head = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = NULL;
}

static void
call_link(struct kube_call *c, struct kube_call **head)
{
    c->prev = NULL;
    c->next = *head;
    if (*head) {
        (*head)->prev = c;
    }
    *head = c;
}

/* Drop the current transfer (if any). Never inside curl. */
static void
call_release_easy(struct kube_call *c)
{
    if (c->easy) {
        curl_multi_remove_handle(c->rest->multi, c->easy);
        curl_easy_cleanup(c->easy);
        c->easy = NULL;
    }
    kubeconfig_curl_headers_free(c->hdrs);
    c->hdrs = NULL;
}

static size_t
write_cb(char *buf, size_t size, size_t n, void *arg)
{
    struct kube_call *c = arg;
    size_t len = size * n;
    if (c->cancelled || c->stop_rc) {
        return 0; /* makes curl abort the transfer */
    }
    if (c->kind != CALL_WATCH) {
        dbuf_append(&c->body, buf, len);
        return len;
    }
    long status = 0;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status / 100 != 2) {
        /* an error reply (a Status): keep it whole, bounded */
        if (c->body.len + len > 1024 * 1024) {
            return 0;
        }
        dbuf_append(&c->body, buf, len);
        return len;
    }
    int r = kube_watch_parser_feed(&c->parser, buf, len, call_err(c));
    if (r != 0) {
        c->stop_rc = r;
        return 0;
    }
    return c->cancelled ? 0 : len;
}

static void call_end(struct kube_call *c, int rc, long status,
                     const struct dpf_error *err);

/* The exec plugin failed before the transfer could start: report it from
 * the loop, never from inside the call that started the transfer. */
static void
on_credential_failed(void *arg, struct loop_timer *t)
{
    struct kube_call *c = arg;
    call_end(c, c->fail_rc, 0, call_err(c));
}

/* Start (or restart: next page, retry after a 401) the call's transfer. */
static void
call_start(struct kube_call *c)
{
    struct kube_rest *r = c->rest;
    if (c->body.data) {
        c->body.len = 0;
        c->body.data[0] = '\0';
    }
    /* the plugin runs here, on the loop thread, when its credential is
     * missing or expired (see kube-rest.h) */
    int cr = kubeconfig_curl_refresh(
        r->conn, false,
        kubeconfig_curl_uses_exec(r->conn) ? call_err(c) : NULL);
    if (cr < 0) {
        c->fail_rc = cr;
        c->fail = loop_timer_add(r->loop, 0, 0, on_credential_failed, c);
        return;
    }
    CURL *h = curl_easy_init();
    if (!h) {
        abort(); /* out of memory: the x* allocators' policy */
    }
    c->easy = h;
    struct dbuf q;
    dbuf_init(&q);
    dbuf_puts(&q, c->query ? c->query : "");
    if (c->kind == CALL_LIST && c->cont) {
        kube_query_add(&q, "continue", c->cont);
    }
    struct kube_request req = {.method = c->method,
                               .path = c->path,
                               .query = q.data,
                               .content_type = c->content_type,
                               .body = c->req_body,
                               .body_len = c->req_body_len,
                               .accept = c->accept,
                               .timeout_ms = c->timeout_ms};
    c->hdrs = kubeconfig_curl_setup(r->conn, h, &req, c->errbuf);
    dbuf_free(&q);
    curl_easy_setopt(h, CURLOPT_PRIVATE, c);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_multi_add_handle(r->multi, h);
}

static struct kube_call *
call_new(struct kube_rest *r, enum call_kind kind, const char *method,
         const char *path, kube_rest_done_fn done, void *arg)
{
    struct kube_call *c = xcalloc(1, sizeof *c);
    c->rest = r;
    c->kind = kind;
    c->method = xstrdup(method ? method : "GET");
    c->path = xstrdup(path);
    c->done = done;
    c->arg = arg;
    dbuf_init(&c->body);
    call_link(c, &r->calls);
    return c;
}

struct kube_call *
kube_rest_send(struct kube_rest *r, const struct kube_request *req,
               kube_rest_done_fn done, void *arg)
{
    struct kube_call *c =
        call_new(r, CALL_PLAIN, req->method, req->path, done, arg);
    c->query = req->query && *req->query ? xstrdup(req->query) : NULL;
    c->accept = xstrdup(req->accept);
    c->content_type = xstrdup(req->content_type);
    if (req->body) {
        c->req_body = xstrndup(req->body, req->body_len);
        c->req_body_len = req->body_len;
    }
    c->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : 0;
    call_start(c);
    return c;
}

struct kube_call *
kube_rest_list(struct kube_rest *r, const char *path,
               const struct kube_list_options *opts, kube_rest_page_fn page,
               kube_rest_done_fn done, void *arg)
{
    static const struct kube_list_options none;
    if (!opts) {
        opts = &none;
    }
    struct kube_call *c = call_new(r, CALL_LIST, "GET", path, done, arg);
    struct dbuf q;
    dbuf_init(&q);
    kube_list_query(&q, opts->label_selector, opts->field_selector,
                    opts->resource_version, opts->limit);
    c->query = q.data; /* NULL when empty */
    c->page = page;
    c->limit = opts->limit > 0 ? opts->limit : 0;
    c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 0;
    call_start(c);
    return c;
}

struct kube_call *
kube_rest_watch(struct kube_rest *r, const char *path,
                const struct kube_watch_options *opts,
                kube_watch_event_fn event, kube_rest_done_fn done, void *arg)
{
    struct kube_call *c = call_new(r, CALL_WATCH, "GET", path, done, arg);
    c->query = kube_watch_query(opts);
    c->event = event;
    kube_watch_parser_init(&c->parser, 0, event, arg);
    c->parser.skip = opts->skip;
    if (opts->deadline_ms > 0) {
        c->timeout_ms = opts->deadline_ms;
    } else if (opts->timeout_seconds > 0) {
        c->timeout_ms = (opts->timeout_seconds + 30) * 1000;
    }
    call_start(c);
    return c;
}

static void
reap_cancelled(struct kube_rest *r)
{
    while (r->reap) {
        struct kube_call *c = r->reap;
        call_unlink(c, &r->reap);
        call_release_easy(c);
        call_free(c);
    }
}

void
kube_rest_cancel(struct kube_call *c)
{
    if (!c || c->cancelled) {
        return;
    }
    struct kube_rest *r = c->rest;
    c->cancelled = true;
    call_unlink(c, &r->calls);
    if (r->depth > 0) {
        call_link(c, &r->reap); /* freed when curl or check_done returns */
        return;
    }
    call_release_easy(c);
    call_free(c);
}

/* A list page arrived (2xx): hand it over and decide what comes next.
 * Returns true when the list goes on with another page. */
static bool
list_page(struct kube_call *c, int *rc, struct dpf_error *err)
{
    json_error_t jerr;
    json_t *page =
        json_loadb(c->body.data ? c->body.data : "", c->body.len, 0, &jerr);
    if (!json_is_object(page)) {
        dpf_error_set(err, 500, "InternalError",
                      "list %s: the reply is not a JSON object: %s", c->path,
                      page ? "another JSON value" : jerr.text);
        json_decref(page);
        *rc = -EPROTO;
        return false;
    }
    const char *next = json_string_value(
        json_object_get(json_object_get(page, "metadata"), "continue"));
    char *cont = next && *next && c->limit > 0 ? xstrdup(next) : NULL;
    int pr = c->page ? c->page(c->arg, page) : 0;
    if (!c->page) {
        json_decref(page);
    }
    if (c->cancelled) {
        free(cont);
        return false;
    }
    free(c->cont);
    c->cont = cont;
    if (pr != 0) {
        *rc = pr;
        return false;
    }
    if (cont) {
        call_release_easy(c);
        call_start(c);
        return true;
    }
    *rc = 0;
    return false;
}

/* The call is over: tell its owner and free it (never inside curl). */
static void
call_end(struct kube_call *c, int rc, long status, const struct dpf_error *err)
{
    if (c->body.data == NULL) {
        dbuf_append(&c->body, "", 0);
    }
    struct kube_response resp = {
        .status = status, .body = c->body.data, .len = c->body.len};
    /* Unlink before the callback: the call is over, cancelling it from
     * its own done callback is a no-op. */
    call_unlink(c, &c->rest->calls);
    c->cancelled = true;
    call_release_easy(c);
    if (c->done) {
        c->done(c->arg, rc, &resp, err);
    }
    call_free(c);
}

/* One transfer ended (never inside curl). */
static void
call_finish(struct kube_call *c, CURLcode result)
{
    struct kubeconfig_curl *conn = c->rest->conn;
    struct dpf_error err = {0};
    long status = 0;
    int rc = 0;
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &status);
    if (c->kind == CALL_WATCH && c->stop_rc != 0) {
        rc = c->stop_rc;
        err = *call_err(c);
    } else if (result != CURLE_OK) {
        rc = kubeconfig_curl_error(conn, result, c->errbuf, c->method, c->path,
                                   &err);
        status = 0;
    } else if (status == 401 && kubeconfig_curl_uses_exec(conn) && !c->reauth) {
        /* client-go runs the plugin again after a 401; the request is
         * repeated once with the new credential */
        c->reauth = true;
        rc = kubeconfig_curl_refresh(conn, true, &err);
        if (rc == 0) {
            call_release_easy(c);
            call_start(c);
            return;
        }
    } else if (status / 100 != 2) {
        rc = kube_status_to_error(status, c->body.data, c->body.len, &err);
    } else if (c->kind == CALL_WATCH) {
        rc = kube_watch_parser_finish(&c->parser, &err);
    } else if (c->kind == CALL_LIST) {
        if (list_page(c, &rc, &err)) {
            return; /* the next page is on its way */
        }
    }
    if (c->cancelled) {
        return; /* cancelled by a page or event callback: already freed */
    }
    call_end(c, rc, status, &err);
}

static void
check_done(struct kube_rest *r)
{
    CURLMsg *msg;
    int left;
    /* Callbacks below may cancel calls whose completion is still queued in
     * curl: defer those frees until the queue is drained. */
    r->depth++;
    while ((msg = curl_multi_info_read(r->multi, &left))) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        struct kube_call *c = NULL;
        CURLcode result = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &c);
        if (!c || c->cancelled) {
            continue; /* reaped below */
        }
        call_finish(c, result);
    }
    r->depth--;
    reap_cancelled(r);
}

/* --- curl <-> loop glue --- */

static void
on_fd(void *arg, int fd, uint32_t events)
{
    struct kube_rest *r = arg;
    int flags = 0;
    if (events & LOOP_READ) {
        flags |= CURL_CSELECT_IN;
    }
    if (events & LOOP_WRITE) {
        flags |= CURL_CSELECT_OUT;
    }
    if (events & (LOOP_ERROR | LOOP_HUP)) {
        flags |= CURL_CSELECT_ERR;
    }
    int running;
    r->depth++;
    curl_multi_socket_action(r->multi, fd, flags, &running);
    r->depth--;
    check_done(r);
}

static void
on_timer(void *arg, struct loop_timer *t)
{
    struct kube_rest *r = arg;
    int running;
    r->depth++;
    curl_multi_socket_action(r->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    r->depth--;
    check_done(r);
}

static int
sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct kube_rest *r = userp;
    struct kr_sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            loop_watch_remove(s->w);
            if (s->prev) {
                s->prev->next = s->next;
            } else {
                r->socks = s->next;
            }
            if (s->next) {
                s->next->prev = s->prev;
            }
            free(s);
            curl_multi_assign(r->multi, fd, NULL);
        }
        return 0;
    }
    uint32_t ev = 0;
    if (what & CURL_POLL_IN) {
        ev |= LOOP_READ;
    }
    if (what & CURL_POLL_OUT) {
        ev |= LOOP_WRITE;
    }
    if (s) {
        loop_watch_modify(s->w, ev);
        return 0;
    }
    struct loop_watch *w = loop_watch_fd(r->loop, fd, ev, on_fd, r);
    if (!w) {
        return -1; /* curl fails the transfer */
    }
    s = xcalloc(1, sizeof *s);
    s->rest = r;
    s->w = w;
    s->fd = fd;
    s->next = r->socks;
    if (r->socks) {
        r->socks->prev = s;
    }
    r->socks = s;
    curl_multi_assign(r->multi, fd, s);
    return 0;
}

static int
timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct kube_rest *r = userp;
    if (timeout_ms < 0) {
        loop_timer_cancel(r->timer);
        r->timer = NULL;
    } else if (r->timer) {
        loop_timer_reset(r->timer, timeout_ms, 0);
    } else {
        r->timer = loop_timer_add(r->loop, timeout_ms, 0, on_timer, r);
    }
    return 0;
}

/* --- client --- */

struct kube_rest *
kube_rest_create(struct loop *loop, const struct kubeconfig *kc,
                 struct dpf_error *err)
{
    struct kubeconfig_curl *conn = kubeconfig_curl_create(kc, err);
    if (!conn) {
        return NULL;
    }
    struct kube_rest *r = xcalloc(1, sizeof *r);
    r->multi = curl_multi_init();
    if (!r->multi) {
        kubeconfig_curl_destroy(conn);
        free(r);
        dpf_error_set(err, 500, "InternalError", "curl_multi_init failed");
        return NULL;
    }
    r->loop = loop;
    r->conn = conn;
    curl_multi_setopt(r->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(r->multi, CURLMOPT_SOCKETDATA, r);
    curl_multi_setopt(r->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(r->multi, CURLMOPT_TIMERDATA, r);
    return r;
}

void
kube_rest_destroy(struct kube_rest *r)
{
    if (!r) {
        return;
    }
    while (r->calls) {
        struct kube_call *c = r->calls;
        call_unlink(c, &r->calls);
        call_release_easy(c);
        call_free(c);
    }
    reap_cancelled(r);
    curl_multi_cleanup(r->multi);
    while (r->socks) {
        struct kr_sock *s = r->socks;
        r->socks = s->next;
        loop_watch_remove(s->w);
        free(s);
    }
    loop_timer_cancel(r->timer);
    kubeconfig_curl_destroy(r->conn);
    free(r);
}

void
kube_rest_set_user_agent(struct kube_rest *r, const char *ua)
{
    kubeconfig_curl_set_user_agent(r->conn, ua);
}

struct loop *
kube_rest_loop(const struct kube_rest *r)
{
    return r->loop;
}

/* --- blocking wrapper for other threads --- */

struct sync_batch {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t remaining;
};

struct sync_call {
    struct kube_rest *rest;
    struct sync_batch *batch;       /* kube_rest_request_wait_all(); or NULL */
    const struct kube_request *req; /* the waiting caller's */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool finished;
    int rc;
    struct kube_response resp; /* owned copy */
    struct dpf_error err;
};

static void
sync_done(void *arg, int rc, const struct kube_response *resp,
          const struct dpf_error *err)
{
    struct sync_call *s = arg;
    pthread_mutex_lock(&s->mu);
    s->rc = rc;
    s->resp.status = resp->status;
    s->resp.body = xstrndup(resp->body, resp->len);
    s->resp.len = resp->len;
    s->err = *err;
    s->finished = true;
    pthread_cond_signal(&s->cv);
    struct sync_batch *b = s->batch;
    pthread_mutex_unlock(&s->mu);
    if (b) {
        pthread_mutex_lock(&b->mu);
        if (--b->remaining == 0) {
            pthread_cond_signal(&b->cv);
        }
        pthread_mutex_unlock(&b->mu);
    }
}

static void
sync_start(void *arg)
{
    struct sync_call *s = arg;
    kube_rest_send(s->rest, s->req, sync_done, s);
}

int
kube_rest_request_wait(struct kube_rest *r, const struct kube_request *req,
                       struct kube_response *resp, struct dpf_error *err)
{
    struct sync_call s = {.rest = r, .req = req};
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    loop_post(r->loop, sync_start, &s);
    pthread_mutex_lock(&s.mu);
    while (!s.finished) {
        pthread_cond_wait(&s.cv, &s.mu);
    }
    pthread_mutex_unlock(&s.mu);
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
    *resp = s.resp;
    if (s.rc != 0 && err) {
        *err = s.err;
    }
    return s.rc;
}

void
kube_rest_request_wait_all(struct kube_rest *r, size_t n,
                           const struct kube_request *reqs,
                           struct kube_response *resps, int *rcs,
                           struct dpf_error *errs)
{
    struct sync_batch b = {.remaining = n};
    if (n == 0) {
        return;
    }
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    struct sync_call *calls = xcalloc(n, sizeof *calls);
    for (size_t i = 0; i < n; i++) {
        calls[i].rest = r;
        calls[i].req = &reqs[i];
        calls[i].batch = &b;
        pthread_mutex_init(&calls[i].mu, NULL);
        pthread_cond_init(&calls[i].cv, NULL);
        loop_post(r->loop, sync_start, &calls[i]);
    }
    pthread_mutex_lock(&b.mu);
    while (b.remaining > 0) {
        pthread_cond_wait(&b.cv, &b.mu);
    }
    pthread_mutex_unlock(&b.mu);
    for (size_t i = 0; i < n; i++) {
        /* sync_done() released calls[i].mu before counting down. */
        resps[i] = calls[i].resp;
        rcs[i] = calls[i].rc;
        if (errs) {
            errs[i] = calls[i].rc != 0 ? calls[i].err : (struct dpf_error){0};
        }
        pthread_cond_destroy(&calls[i].cv);
        pthread_mutex_destroy(&calls[i].mu);
    }
    free(calls);
    pthread_cond_destroy(&b.cv);
    pthread_mutex_destroy(&b.mu);
}

/* Send body (JSON, may be NULL) and wait for the reply. */
static int
request_json_wait(struct kube_rest *r, const char *method, const char *path,
                  const char *query, const json_t *body,
                  const char *content_type, struct kube_response *resp,
                  struct dpf_error *err)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct kube_request req = {.method = method,
                               .path = path,
                               .query = query,
                               .content_type = content_type,
                               .body = text,
                               .body_len = text ? strlen(text) : 0};
    int rc = kube_rest_request_wait(r, &req, resp, err);
    free(text);
    return rc;
}

int
kube_rest_json_wait(struct kube_rest *r, const char *method, const char *path,
                    const char *query, const json_t *body,
                    const char *content_type, json_t **out,
                    struct dpf_error *err)
{
    struct kube_response resp;
    if (out) {
        *out = NULL;
    }
    int rc = request_json_wait(r, method, path, query, body, content_type,
                               &resp, err);
    if (rc == 0) {
        rc = kube_response_json(resp.status, resp.body, resp.len, method, path,
                                out, err);
    }
    kube_response_free(&resp);
    return rc;
}

int
kube_rest_text_wait(struct kube_rest *r, const char *method, const char *path,
                    const char *query, const json_t *body,
                    const char *content_type, char **out, size_t *out_len,
                    struct dpf_error *err)
{
    struct kube_response resp;
    *out = NULL;
    *out_len = 0;
    int rc = request_json_wait(r, method, path, query, body, content_type,
                               &resp, err);
    if (rc == 0) {
        rc = kube_status_to_error(resp.status, resp.body, resp.len, err);
    }
    if (rc == 0) {
        *out = resp.body; /* NUL-terminated (sync_done) */
        *out_len = resp.len;
        resp.body = NULL;
    }
    kube_response_free(&resp);
    return rc;
}

void
kube_response_free(struct kube_response *resp)
{
    if (resp) {
        free(resp->body);
        memset(resp, 0, sizeof *resp);
    }
}
