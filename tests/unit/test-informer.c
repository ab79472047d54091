/* Unit tests for lib/kube/informer and kube-rest against a scripted HTTP
 * server on loopback: the list/watch requests an informer sends, relist
 * on an HTTP 410 reply, backoff after an ERROR event with another code,
 * bookmarks advancing the resourceVersion, the handlers' view, and the
 * transform applied before objects are cached. */
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
    if (!watch && nth == 0) {
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

static void
test_relist_on_410_and_backoff(void **state)
{
    struct fake f;
    fake_start(&f);
    char server[64];
    snprintf(server, sizeof server, "http://127.0.0.1:%d", f.port);
    struct kubeconfig kc = {.server = server};
    struct loop *loop = loop_create();
    struct dpf_error err = {0};
    struct kube_rest *rest = kube_rest_create(loop, &kc, &err);
    assert_non_null(rest);
    struct informer_options o = {
        .gvr = {"", "v1", "configmaps", true},
        .namespace = "ns",
        .label_selector = "app=x",
        .watch_timeout_s = 30,
    };
    struct informer *inf = informer_create(rest, &o);
    informer_set_transform(inf, drop_data);
    struct seen s = {.log = ""};
    pthread_mutex_init(&s.mu, NULL);
    struct informer_handlers h = {h_add, h_update, h_delete, &s};
    informer_add_handlers(inf, &h);
    loop_post(loop, post_start, inf);
    pthread_t t;
    pthread_create(&t, NULL, loop_main, loop);
    assert_int_equal(informer_wait_synced(inf, 10000), 0);

    /* wait for the bookmark of the third watch */
    char rv[64] = "";
    int64_t deadline = time_mono_ms() + 20000;
    while (time_mono_ms() < deadline) {
        informer_last_rv(inf, rv, sizeof rv);
        if (!strcmp(rv, "40")) {
            break;
        }
        usleep(10 * 1000);
    }
    assert_string_equal(rv, "40");
    struct informer_stats st;
    informer_stats(inf, &st);
    assert_int_equal(st.lists, 2);
    assert_int_equal(st.relists, 1); /* the HTTP 410 */
    assert_int_equal(st.errors, 1);  /* the ERROR event with code 500 */
    assert_int_equal(st.watches, 3);
    assert_int_equal(st.events, 1);

    /* the cache is the second list plus the watch's add */
    struct kube_cache *c = informer_cache(inf);
    assert_int_equal(kube_cache_len(c), 2);
    json_t *b = kube_cache_get(c, "ns/b");
    json_t *cc = kube_cache_get(c, "ns/c");
    assert_non_null(b);
    assert_non_null(cc);
    assert_null(kube_cache_get(c, "ns/a"));
    /* listed (b) and watched (c) objects both went through the transform */
    assert_null(json_object_get(b, "data"));
    assert_null(json_object_get(cc, "data"));
    assert_non_null(json_object_get(b, "metadata"));
    json_decref(b);
    json_decref(cc);
    pthread_mutex_lock(&s.mu);
    assert_string_equal(s.log, "add:a delete:a add:b add:c ");
    pthread_mutex_unlock(&s.mu);

    /* what the informer asked for */
    pthread_mutex_lock(&f.mu);
    assert_int_equal(f.n_requests, 5);
    assert_string_equal(f.requests[0], "/api/v1/namespaces/ns/configmaps?"
                                       "labelSelector=app%3Dx&limit=500");
    assert_non_null(strstr(f.requests[1], "watch=true&labelSelector=app%3Dx"
                                          "&resourceVersion=10&"
                                          "allowWatchBookmarks=true&"
                                          "timeoutSeconds="));
    assert_non_null(strstr(f.requests[3], "resourceVersion=30"));
    assert_non_null(strstr(f.requests[4], "resourceVersion=31"));
    pthread_mutex_unlock(&f.mu);

    loop_post(loop, post_stop, inf);
    loop_stop(loop);
    pthread_join(t, NULL);
    informer_destroy(inf);
    kube_rest_destroy(rest);
    loop_destroy(loop);
    fake_stop(&f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relist_on_410_and_backoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
