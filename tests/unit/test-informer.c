/* Unit tests for lib/kube/informer and kube-rest against a scripted HTTP
 * server on loopback: the list/watch requests an informer sends, relist
 * on an HTTP 410 reply, backoff after an ERROR event with another code,
 * bookmarks advancing the resourceVersion, the handlers' view, and the
 * transform applied before objects are cached, and the text filter that
 * skips listed objects and watch lines unparsed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/kube/informer.h"
#include "lib/base/util.h"

struct fake {
    int lfd;
    int port;
    pthread_t thread;
    pthread_mutex_t mu;
    char requests[16][512]; /* request targets, in order */
    int n_requests;
    int lists, watches;
    int hold_fd; /* the last watch, left open */
    int mode;    /* 0: the relist script; 1: the filter script */
};

static void
send_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w <= 0) {
            return;
        }
        s += w;
        n -= (size_t) w;
    }
}

static void
reply(int fd, int status, const char *body, bool chunked_stream)
{
    char head[256];
    if (chunked_stream) {
        snprintf(head, sizeof head,
                 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                 "Connection: close\r\n\r\n",
                 status);
    } else {
        snprintf(head, sizeof head,
                 "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                 status, strlen(body));
    }
    send_all(fd, head, strlen(head));
    send_all(fd, body, strlen(body));
}

/* a ConfigMap with data.node set, for the filter script */
#define CMN(name, rv, node)                                      \
    "{\"metadata\":{\"name\":\"" name "\",\"namespace\":\"ns\"," \
    "\"resourceVersion\":\"" rv "\"},\"data\":{\"node\":\"" node "\"}}"

#define CM(name, rv)                                             \
    "{\"metadata\":{\"name\":\"" name "\",\"namespace\":\"ns\"," \
    "\"resourceVersion\":\"" rv "\"},\"data\":{\"big\":\"x\"}}"

/* The transform under test: what the cache keeps has no data. */
static void
drop_data(json_t *obj)
{
    json_object_del(obj, "data");
}

static void
serve_one(struct fake *f, int fd)
{
    char buf[4096];
    size_t n = 0;
    while (n < sizeof buf - 1) {
        ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
        if (r <= 0) {
            close(fd);
            return;
        }
        n += (size_t) r;
        buf[n] = '\0';
        if (strstr(buf, "\r\n\r\n")) {
            break;
        }
    }
    char target[512] = "";
    sscanf(buf, "GET %511s", target);
    pthread_mutex_lock(&f->mu);
    if (f->n_requests < 16) {
        snprintf(f->requests[f->n_requests++], 512, "%s", target);
    }
    bool watch = strstr(target, "watch=true") != NULL;
    int nth = watch ? f->watches++ : f->lists++;
    pthread_mutex_unlock(&f->mu);
    if (f->mode == 1 && !watch) {
        reply(fd, 200,
              "{\"kind\":\"ConfigMapList\",\"metadata\":{\"resourceVersion\":"
              "\"10\"},\"items\":[" CMN("a", "5", "n1") "," CMN("b", "6",
                                                                "n2") "]}",
              false);
    } else if (f->mode == 1) {
        reply(fd, 200,
              "{\"type\":\"ADDED\",\"object\":" CMN(
                  "c", "11",
                  "n2") "}\n"
                        "{\"type\":\"ADDED\",\"object\":" CMN(
                            "d", "12",
                            "n1") "}\n"
                                  "{\"type\":\"MODIFIED\",\"object\":" CMN(
                                      "b", "13",
                                      "n2") "}\n"
                                            "{\"type\":\"BOOKMARK\",\"object\":"
                                            "{\"metadata\":{"
                                            "\"resourceVersion\":\"40\"}}}\n",
              true);
        pthread_mutex_lock(&f->mu);
        f->hold_fd = fd;
        pthread_mutex_unlock(&f->mu);
        return;
    } else if (!watch && nth == 0) {
        reply(fd, 200,
              "{\"kind\":\"ConfigMapList\",\"metadata\":{\"resourceVersion\":"
              "\"10\"},\"items\":[" CM("a", "5") "]}",
              false);
    } else if (!watch) {
        reply(fd, 200,
              "{\"kind\":\"ConfigMapList\",\"metadata\":{\"resourceVersion\":"
              "\"30\"},\"items\":[" CM("b", "20") "]}",
              false);
    } else if (nth == 0) {
        reply(fd, 410,
              "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":"
              "\"Failure\",\"reason\":\"Expired\",\"code\":410,\"message\":"
              "\"too old resource version: 10 (99)\"}",
              false);
    } else if (nth == 1) {
        reply(fd, 200,
              "{\"type\":\"ADDED\",\"object\":" CM(
                  "c",
                  "31") "}\n"
                        "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\","
                        "\"code\":500,\"message\":\"etcd hiccup\"}}\n",
              true);
    } else {
        reply(fd, 200,
              "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{"
              "\"resourceVersion\":\"40\"}}}\n",
              true);
        pthread_mutex_lock(&f->mu);
        f->hold_fd = fd; /* keep the stream open */
        pthread_mutex_unlock(&f->mu);
        return;
    }
    close(fd);
}

static void *
fake_main(void *arg)
{
    struct fake *f = arg;
    for (;;) {
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0) {
            return NULL;
        }
        serve_one(f, fd);
    }
}

static void
fake_start(struct fake *f)
{
    memset(f, 0, sizeof *f);
    f->hold_fd = -1;
    pthread_mutex_init(&f->mu, NULL);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(f->lfd, (struct sockaddr *) &a, sizeof a), 0);
    assert_int_equal(listen(f->lfd, 16), 0);
    socklen_t al = sizeof a;
    getsockname(f->lfd, (struct sockaddr *) &a, &al);
    f->port = ntohs(a.sin_port);
    pthread_create(&f->thread, NULL, fake_main, f);
}

static void
fake_stop(struct fake *f)
{
    shutdown(f->lfd, SHUT_RDWR);
    close(f->lfd);
    pthread_join(f->thread, NULL);
    if (f->hold_fd >= 0) {
        close(f->hold_fd);
    }
}

struct seen {
    pthread_mutex_t mu;
    char log[512];
};

static void
note(struct seen *s, const char *what, const json_t *obj)
{
    const char *name = json_string_value(
        json_object_get(json_object_get(obj, "metadata"), "name"));
    pthread_mutex_lock(&s->mu);
    size_t l = strlen(s->log);
    snprintf(s->log + l, sizeof s->log - l, "%s:%s ", what, name);
    pthread_mutex_unlock(&s->mu);
}

static void
h_add(void *arg, const json_t *o)
{
    note(arg, "add", o);
}

static void
h_update(void *arg, const json_t *old, const json_t *o)
{
    note(arg, "update", o);
}

static void
h_delete(void *arg, const json_t *o)
{
    note(arg, "delete", o);
}

static void *
loop_main(void *arg)
{
    loop_run(arg);
    return NULL;
}

static void
post_start(void *arg)
{
    informer_start(arg);
}

static void
post_stop(void *arg)
{
    informer_stop(arg);
}

static int
cmp_str(const void *x, const void *y)
{
    return strcmp(*(const char *const *) x, *(const char *const *) y);
}

/* The cache's keys, sorted, joined by ',' (static buffer). */
static const char *
cache_keys(struct kube_cache *c)
{
    static char buf[256];
    json_t *keys = kube_cache_keys(c);
    const char *v[16];
    size_t n = 0, i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        if (n < 16) {
            v[n++] = json_string_value(k);
        }
    }
    qsort(v, n, sizeof *v, cmp_str);
    buf[0] = '\0';
    for (i = 0; i < n; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, sizeof buf - l, "%s%s", i ? "," : "", v[i]);
    }
    json_decref(keys);
    return buf;
}

/* An informer on a fake server, its loop running on a thread. */
struct run {
    struct fake f;
    struct loop *loop;
    struct kube_rest *rest;
    struct informer *inf;
    struct seen s;
    pthread_t t;
};

/* Start the fake (in mode), then an informer made with o (its transform
 * if any), wait until it synced and its last resourceVersion is 40. */
static void
run_start(struct run *r, int mode, struct informer_options *o,
          void (*transform)(json_t *))
{
    fake_start(&r->f);
    r->f.mode = mode;
    char server[64];
    snprintf(server, sizeof server, "http://127.0.0.1:%d", r->f.port);
    struct kubeconfig kc = {.server = server};
    r->loop = loop_create();
    struct dpf_error err = {0};
    r->rest = kube_rest_create(r->loop, &kc, &err);
    assert_non_null(r->rest);
    r->inf = informer_create(r->rest, o);
    if (transform) {
        informer_set_transform(r->inf, transform);
    }
    memset(&r->s, 0, sizeof r->s);
    pthread_mutex_init(&r->s.mu, NULL);
    struct informer_handlers h = {h_add, h_update, h_delete, &r->s};
    informer_add_handlers(r->inf, &h);
    loop_post(r->loop, post_start, r->inf);
    pthread_create(&r->t, NULL, loop_main, r->loop);
    assert_int_equal(informer_wait_synced(r->inf, 10000), 0);
    char rv[64] = "";
    int64_t deadline = time_mono_ms() + 20000;
    while (time_mono_ms() < deadline) {
        informer_last_rv(r->inf, rv, sizeof rv);
        if (!strcmp(rv, "40")) {
            break;
        }
        usleep(10 * 1000);
    }
    assert_string_equal(rv, "40");
}

static void
run_stop(struct run *r)
{
    loop_post(r->loop, post_stop, r->inf);
    loop_stop(r->loop);
    pthread_join(r->t, NULL);
    informer_destroy(r->inf);
    kube_rest_destroy(r->rest);
    loop_destroy(r->loop);
    fake_stop(&r->f);
}

static void
test_relist_on_410_and_backoff(void **state)
{
    struct informer_options o = {
        .gvr = {"", "v1", "configmaps", true},
        .namespace = "ns",
        .label_selector = "app=x",
        .watch_timeout_s = 30,
    };
    struct run r;
    /* the third watch's bookmark (40) ends the script */
    run_start(&r, 0, &o, drop_data);
    struct informer *inf = r.inf;
    struct informer_stats st;
    informer_stats(inf, &st);
    assert_int_equal(st.lists, 2);
    assert_int_equal(st.relists, 1); /* the HTTP 410 */
    assert_int_equal(st.errors, 1);  /* the ERROR event with code 500 */
    assert_int_equal(st.watches, 3);
    assert_int_equal(st.events, 1);

    /* the cache is the second list plus the watch's add */
    struct kube_cache *c = informer_cache(inf);
    assert_string_equal(cache_keys(c), "ns/b,ns/c");
    json_t *b = kube_cache_get(c, "ns/b");
    json_t *cc = kube_cache_get(c, "ns/c");
    /* listed (b) and watched (c) objects both went through the transform */
    assert_null(json_object_get(b, "data"));
    assert_null(json_object_get(cc, "data"));
    assert_non_null(json_object_get(b, "metadata"));
    json_decref(b);
    json_decref(cc);
    pthread_mutex_lock(&r.s.mu);
    assert_string_equal(r.s.log, "add:a delete:a add:b add:c ");
    pthread_mutex_unlock(&r.s.mu);

    /* what the informer asked for */
    pthread_mutex_lock(&r.f.mu);
    assert_int_equal(r.f.n_requests, 5);
    assert_string_equal(r.f.requests[0], "/api/v1/namespaces/ns/configmaps?"
                                         "labelSelector=app%3Dx&limit=500");
    assert_non_null(strstr(r.f.requests[1], "watch=true&labelSelector=app%3Dx"
                                            "&resourceVersion=10&"
                                            "allowWatchBookmarks=true&"
                                            "timeoutSeconds="));
    assert_non_null(strstr(r.f.requests[3], "resourceVersion=30"));
    assert_non_null(strstr(r.f.requests[4], "resourceVersion=31"));
    pthread_mutex_unlock(&r.f.mu);

    run_stop(&r);
}

/* The filter under test: objects on node n2 are another's. */
static int skip_calls;

static bool
skip_n2(void *arg, const char *text, size_t len)
{
    (void) arg;
    skip_calls++;
    char *t = strndup(text, len);
    bool skip = strstr(t, "\"node\":\"n2\"") != NULL;
    free(t);
    return skip;
}

static void
test_text_filter(void **state)
{
    struct informer_options o = {
        .gvr = {"", "v1", "configmaps", true},
        .namespace = "ns",
        .watch_timeout_s = 30,
        .skip_text = skip_n2,
    };
    struct run r;
    /* the bookmark still passed (the filter said false for it) */
    run_start(&r, 1, &o, NULL);
    struct informer *inf = r.inf;
    struct informer_stats st;
    informer_stats(inf, &st);
    assert_int_equal(st.skipped, 3); /* b listed, c added, b modified */
    assert_int_equal(st.events, 1);  /* d */
    assert_string_equal(cache_keys(informer_cache(inf)), "ns/a,ns/d");
    pthread_mutex_lock(&r.s.mu);
    assert_string_equal(r.s.log, "add:a add:d ");
    pthread_mutex_unlock(&r.s.mu);
    assert_int_equal(skip_calls, 6); /* 2 listed objects, 4 watch lines */

    run_stop(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relist_on_410_and_backoff),
        cmocka_unit_test(test_text_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
