/* Fuzz the API server's request handling end to end, without sockets:
 * apiserver_handle() runs on requests whose method, path, query
 * parameters, Content-Type and Accept headers and body all come from the
 * input, against a real store (SQLite in a temporary directory), watch
 * cache and watch dispatcher.
 *
 * The HTTP layer is replaced at link time: this file defines every
 * http_request_* / http_respond* / http_stream_* function apiserver*.c
 * calls, so the linker never pulls lib/http-server.o out of libdpf.a (if
 * the API server starts calling one more, the link fails with a duplicate
 * symbol and it must be added here). Requests are handed over exactly as
 * libmicrohttpd would: the path and query values already percent-decoded,
 * so every byte value reaches the API server.
 *
 * Checks, besides the sanitizers: every JSON response and every line of a
 * watch stream is valid JSON (jansson rejects invalid UTF-8), every error
 * is a Status carrying the response's code, no response header carries CR
 * or LF, and a request whose path, checked query parameters or headers are
 * not valid UTF-8 is answered 400.
 *
 * Input: byte 0 picks the method (bits 0-2: GET POST PUT PATCH DELETE GET
 * HEAD GET), then NUL-separated fields: path, query string (k=v&k2=v2, no
 * decoding), Content-Type, Accept, body (the rest, NULs allowed). Missing
 * fields are absent; an empty header field is no header. Watches are given
 * timeoutSeconds=0, so each ends after delivering what is pending. Objects
 * a request created are deleted afterwards, so the store stays small, and
 * the garbage collector runs after every request. */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "dpf-server/apiserver-private.h"
#include "lib/net/http-server.h"
#include "lib/base/log.h"
#include "lib/store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ------------------------------------------------------------------ */
/* the fake HTTP layer */

struct fz_param {
    char *name;
    char *value;
};

struct http_stream {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct dbuf out;             /* everything written */
    bool closed;                 /* http_stream_close called */
    bool aborted;                /* http_stream_abort called */
    size_t max_queued;           /* budget (no reader: all stays queued) */
    atomic_size_t *total;        /* shared count */
    void (*on_close)(void *arg); /* the watch's close callback */
    void *arg;
};

struct http_request {
    const char *method;
    char *path;
    struct fz_param *query;
    size_t n_query;
    const char *content_type; /* NULL = absent */
    const char *accept;       /* NULL = absent */
    const char *body;
    size_t body_len;
    int status;      /* 0 until answered */
    char *ctype;     /* response content type */
    char *resp;      /* response body */
    size_t resp_len; /* its length */
    struct http_stream *stream;
};

const char *
http_request_method(const struct http_request *req)
{
    return req->method;
}

const char *
http_request_path(const struct http_request *req)
{
    return req->path;
}

const char *
http_request_query(const struct http_request *req, const char *name)
{
    if (!strcmp(name, "timeoutSeconds") && req->method[0] == 'G') {
        return "0"; /* watches end after one dispatcher turn */
    }
    for (size_t i = 0; i < req->n_query; i++) {
        if (!strcmp(req->query[i].name, name)) {
            return req->query[i].value;
        }
    }
    return NULL;
}

const char *
http_request_header(const struct http_request *req, const char *name)
{
    if (!strcasecmp(name, "Content-Type")) {
        return req->content_type;
    }
    if (!strcasecmp(name, "Accept")) {
        return req->accept;
    }
    return NULL;
}

const char *
http_request_body(const struct http_request *req, size_t *len)
{
    *len = req->body_len;
    return req->body;
}

const char *
http_request_remote(const struct http_request *req)
{
    return "fuzz";
}

void
http_response_header(struct http_request *req, const char *name,
                     const char *value)
{
    if (strpbrk(name, "\r\n") || strpbrk(value, "\r\n")) {
        abort(); /* header injection */
    }
}

static void
fz_answer(struct http_request *req, int status, const char *content_type)
{
    if (req->status || req->stream) {
        abort(); /* answered twice */
    }
    req->status = status;
    req->ctype = xstrdup(content_type);
}

void
http_respond_take(struct http_request *req, int status,
                  const char *content_type, char *body, size_t len)
{
    fz_answer(req, status, content_type);
    req->resp = body;
    req->resp_len = len;
}

void
http_respond(struct http_request *req, int status, const char *content_type,
             const char *body, size_t len)
{
    http_respond_take(req, status, content_type, xstrndup(body, len), len);
}

struct http_stream *
http_respond_stream(struct http_request *req, int status,
                    const char *content_type, void (*on_close)(void *arg),
                    void *arg)
{
    fz_answer(req, status, content_type);
    struct http_stream *st = xcalloc(1, sizeof(*st));
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    dbuf_init(&st->out);
    st->max_queued = 16u << 20;
    st->on_close = on_close;
    st->arg = arg;
    req->stream = st;
    return st;
}

int
http_stream_write(struct http_stream *st, const char *data, size_t len)
{
    int r = 0;
    pthread_mutex_lock(&st->mu);
    if (st->closed || st->aborted) {
        r = -EPIPE;
    } else if (st->out.len && st->out.len + len > st->max_queued) {
        st->aborted = true;
        r = -ENOBUFS;
    } else {
        dbuf_append(&st->out, data, len);
        if (st->total) {
            atomic_fetch_add(st->total, len);
        }
    }
    pthread_mutex_unlock(&st->mu);
    return r;
}

void
http_stream_set_budget(struct http_stream *st, size_t max_queued,
                       atomic_size_t *total)
{
    pthread_mutex_lock(&st->mu);
    st->max_queued = max_queued ? max_queued : 16u << 20;
    st->total = total;
    pthread_mutex_unlock(&st->mu);
}

size_t
http_stream_queued(struct http_stream *st)
{
    /* Nobody reads: whatever was written is still queued. */
    pthread_mutex_lock(&st->mu);
    size_t n = st->aborted ? 0 : st->out.len;
    pthread_mutex_unlock(&st->mu);
    return n;
}

void
http_stream_abort(struct http_stream *st)
{
    pthread_mutex_lock(&st->mu);
    st->aborted = true;
    pthread_mutex_unlock(&st->mu);
}

void
http_stream_close(struct http_stream *st)
{
    pthread_mutex_lock(&st->mu);
    if (st->closed) {
        abort(); /* closed twice */
    }
    st->closed = true;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
}

size_t
http_request_query_values(const struct http_request *req, const char *name,
                          const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < req->n_query; i++) {
        if (!strcmp(req->query[i].name, name)) {
            if (n < max) {
                out[n] = req->query[i].value;
            }
            n++;
        }
    }
    return n;
}

size_t
http_request_header_values(const struct http_request *req, const char *name,
                           const char **out, size_t max)
{
    const char *v = http_request_header(req, name);
    if (v && max) {
        out[0] = v;
    }
    return v ? 1 : 0;
}

/* pods/exec and pods/attach: the fuzzer's requests carry no Upgrade
 * header, so the proxy never gets this far; a call is a bug. */
void
http_respond_upgrade(struct http_request *req, http_upgrade_fn fn, void *arg)
{
    abort();
}

int
http_upgrade_fd(const struct http_upgrade *up)
{
    abort();
}

const char *
http_upgrade_extra(const struct http_upgrade *up, size_t *len)
{
    abort();
}

void
http_upgrade_linger(struct http_upgrade *up, int timeout_ms)
{
    abort();
}

void
http_upgrade_close(struct http_upgrade *up)
{
    abort();
}

/* ------------------------------------------------------------------ */
/* the server under test */

static struct {
    char dir[64];
    struct store *store;
    struct watch_cache *wc;
    struct apiserver *as;
} fz;

static int
fz_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void
fz_teardown(void)
{
    apiserver_destroy(fz.as);
    watch_cache_destroy(fz.wc);
    store_close(fz.store);
    nftw(fz.dir, fz_rm, 8, FTW_DEPTH | FTW_PHYS);
}

static void fz_run(struct http_request *req);

/* Objects the corpus refers to (inputs may change or delete them). */
static void
fz_seed(void)
{
    static const char *const seeds[][2] = {
        {"/api/v1/namespaces/default/configmaps",
         "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":"
         "{\"name\":\"seed\",\"labels\":{\"app\":\"a\"},"
         "\"annotations\":{\"note\":\"\u00e9\u00e9\u00e9\"}},"
         "\"data\":{\"k\":\"\u00e9t\u00e9\"}}"},
        {"/apis/provisioning.dpu.nvidia.com/v1alpha1/namespaces/default/bfbs",
         "{\"apiVersion\":\"provisioning.dpu.nvidia.com/v1alpha1\","
         "\"kind\":\"BFB\",\"metadata\":{\"name\":\"seed-bfb\"},"
         "\"spec\":{\"url\":\"http://example.com/b.bfb\"}}"},
        {"/api/v1/namespaces/default/pods",
         "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{"
         "\"name\":\"seed-pod\"},\"spec\":{\"nodeName\":\"n1\","
         "\"containers\":[{\"name\":\"c\",\"image\":\"busybox\"}]}}"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(seeds); i++) {
        struct http_request req = {
            .method = "POST",
            .path = xstrdup(seeds[i][0]),
            .content_type = "application/json",
            .body = seeds[i][1],
            .body_len = strlen(seeds[i][1]),
        };
        fz_run(&req);
        if (req.status != 201) {
            fprintf(stderr, "fuzz: seeding %s: %d\n", seeds[i][0], req.status);
            abort();
        }
        free(req.ctype);
        free(req.resp);
        free(req.path);
    }
}

static void
fz_setup(void)
{
    log_set_level(DPF_LOG_ERROR);
    snprintf(fz.dir, sizeof(fz.dir), "/dev/shm/dpf-fuzz-XXXXXX");
    if (!mkdtemp(fz.dir)) {
        snprintf(fz.dir, sizeof(fz.dir), "/tmp/dpf-fuzz-XXXXXX");
        if (!mkdtemp(fz.dir)) {
            abort();
        }
    }
    char *url = xasprintf("sqlite:%s/state.db", fz.dir);
    struct dpf_error err = {0};
    const struct store_options sopt = {.create = true};
    fz.store = store_open(url, &sopt, &err);
    free(url);
    if (!fz.store) {
        fprintf(stderr, "fuzz: store: %s\n", err.message);
        abort();
    }
    fz.wc = watch_cache_create(1000, store_current_rv(fz.store));
    watch_cache_set_max_bytes(fz.wc, 4u << 20);
    struct apiserver_config cfg = {
        .no_gc_thread = true,
        .watch_buffer_bytes = 1u << 20,
        .watch_buffer_total_bytes = 2u << 20,
        .bookmark_interval_ms = 1,
        .no_node_proxy = true,
    };
    fz.as = apiserver_create(fz.store, fz.wc, &cfg, &err);
    if (!fz.as) {
        fprintf(stderr, "fuzz: apiserver: %s\n", err.message);
        abort();
    }
    atexit(fz_teardown);
    fz_seed();
}

/* Query parameters and headers the API server checks at its edge (see
 * as_check_request_text): the request is 400 when one is not UTF-8. */
static const char *const fz_checked_params[] = {
    "watch",
    "labelSelector",
    "fieldSelector",
    "limit",
    "continue",
    "resourceVersion",
    "allowWatchBookmarks",
    "includeObject",
    "dryRun",
    "fieldValidation",
    "propagationPolicy",
    "gracePeriodSeconds",
    "orphanDependents",
    "verbose",
};

static bool
fz_text_ok(const char *s)
{
    return !s || utf8_valid(s, strlen(s));
}

static bool
fz_request_text_ok(const struct http_request *req)
{
    if (!fz_text_ok(req->path) || !fz_text_ok(req->content_type) ||
        !fz_text_ok(req->accept)) {
        return false;
    }
    for (size_t i = 0; i < ARRAY_SIZE(fz_checked_params); i++) {
        if (!fz_text_ok(http_request_query(req, fz_checked_params[i]))) {
            return false;
        }
    }
    return true;
}

/* A JSON response: valid JSON; an error is a Status with its code. */
static void
fz_check_json(int status, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *doc = json_loadb(text, len, 0, &jerr);
    if (!doc) {
        fprintf(stderr, "fuzz: invalid JSON response (%d): %s\n", status,
                jerr.text);
        abort();
    }
    if (status >= 400) {
        const char *kind = json_string_value(json_object_get(doc, "kind"));
        json_int_t code = json_integer_value(json_object_get(doc, "code"));
        if (!kind || strcmp(kind, "Status") != 0 || code != status) {
            fprintf(stderr, "fuzz: error %d is not a Status with its code\n",
                    status);
            abort();
        }
    }
    json_decref(doc);
}

/* Wait for the watch dispatcher to end the stream, check every event
 * line, then report the client gone as the HTTP layer would. */
static void
fz_finish_stream(struct http_stream *st)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 20;
    pthread_mutex_lock(&st->mu);
    while (!st->closed) {
        if (pthread_cond_timedwait(&st->cv, &st->mu, &ts) == ETIMEDOUT) {
            fprintf(stderr, "fuzz: a watch with timeoutSeconds=0 did not "
                            "end\n");
            abort();
        }
    }
    pthread_mutex_unlock(&st->mu);
    const char *p = st->out.data ? st->out.data : "";
    const char *end = p + st->out.len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t) (end - p));
        if (!nl) {
            abort(); /* events are whole lines */
        }
        fz_check_json(200, p, (size_t) (nl - p));
        p = nl + 1;
    }
    if (st->total) {
        atomic_fetch_sub(st->total, st->out.len);
    }
    st->on_close(st->arg);
    dbuf_free(&st->out);
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->mu);
    free(st);
}

/* Delete what a successful create made, so the store does not grow. */
static void
fz_forget_created(const char *text, size_t len)
{
    json_t *o = json_loadb(text, len, 0, NULL);
    const char *av = json_string_value(json_object_get(o, "apiVersion"));
    const char *kind = json_string_value(json_object_get(o, "kind"));
    json_t *md = json_object_get(o, "metadata");
    const char *name = json_string_value(json_object_get(md, "name"));
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    const struct schema_kind *k =
        av && kind ? schema_find_kind(av, kind) : NULL;
    if (k && name) {
        char *key = as_key(k, ns, name);
        store_delete(fz.store, key, 0, NULL, NULL);
        free(key);
    }
    json_decref(o);
}

/* Handle one request and check the answer. */
static void
fz_run(struct http_request *req)
{
    apiserver_handle(fz.as, req);
    if (!req->status) {
        abort(); /* every request is answered */
    }
    if (!fz_request_text_ok(req) && req->status != 400) {
        fprintf(stderr, "fuzz: text that is not UTF-8 got %d\n", req->status);
        abort();
    }
    if (req->stream) {
        fz_finish_stream(req->stream);
    } else if (!strcmp(req->ctype, "application/json")) {
        fz_check_json(req->status, req->resp, req->resp_len);
    }
    /* The garbage collector runs here, not on its own thread: what the
     * request deleted or marked is collected before the next one. */
    apiserver_gc_run(fz.as);
}

/* Split data at the next NUL: the field, and advance. NULL if none. */
static char *
fz_field(const uint8_t **p, const uint8_t *end)
{
    if (*p > end) {
        return NULL;
    }
    const uint8_t *nul = memchr(*p, 0, (size_t) (end - *p));
    const uint8_t *stop = nul ? nul : end;
    char *f = xstrndup((const char *) *p, (size_t) (stop - *p));
    *p = stop + 1;
    return f;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET",    "POST", "PUT",  "PATCH",
                                          "DELETE", "GET",  "HEAD", "GET"};
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    if (size < 1) {
        return 0;
    }
    pthread_once(&once, fz_setup);
    const uint8_t *p = data + 1, *end = data + size;
    struct http_request req = {.method = methods[data[0] & 7]};
    req.path = fz_field(&p, end);
    char *query = fz_field(&p, end);
    char *ct = fz_field(&p, end);
    char *accept = fz_field(&p, end);
    const uint8_t *body = p <= end ? p : end;
    if (!req.path || !*req.path) {
        free(req.path);
        req.path = xstrdup("/api/v1/namespaces/default/configmaps");
    }
    req.content_type = ct && *ct ? ct : NULL;
    req.accept = accept && *accept ? accept : NULL;
    req.body = xstrndup((const char *) body, (size_t) (end - body));
    req.body_len = (size_t) (end - body);
    for (char *save = NULL, *kv = query ? strtok_r(query, "&", &save) : NULL;
         kv; kv = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(kv, '=');
        req.query = xrealloc(req.query, (req.n_query + 1) * sizeof(*req.query));
        req.query[req.n_query].name =
            xstrndup(kv, eq ? (size_t) (eq - kv) : strlen(kv));
        req.query[req.n_query].value = xstrdup(eq ? eq + 1 : "");
        req.n_query++;
    }

    fz_run(&req);
    if (!req.stream && req.status == 201) {
        fz_forget_created(req.resp, req.resp_len);
    }

    for (size_t i = 0; i < req.n_query; i++) {
        free(req.query[i].name);
        free(req.query[i].value);
    }
    free(req.query);
    free((char *) req.body);
    free(req.ctype);
    free(req.resp);
    free(req.path);
    free(query);
    free(ct);
    free(accept);
    return 0;
}
