/* Unit tests for the controller helpers of lib/kube: conditions,
 * finalizers and owner references (kube-object), read-modify-write with
 * conflict retry and server-side apply (kube-write), event aggregation
 * (kube-events), leader election's configuration checks (leader) and
 * kube-rest's exec credential plugin (401 retry, failure),
 * the writers against a scripted HTTP server on loopback. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/base/loop.h"
#include "lib/base/util.h"
#include "lib/kube/kube-events.h"
#include "lib/kube/kube-object.h"
#include "lib/kube/kube-write.h"
#include "lib/kube/leader.h"

/* --- kube-object --- */

static void
test_conditions(void **state)
{
    json_t *o = json_pack("{s:{s:s}}", "metadata", "name", "x");
    assert_null(kube_condition_find(o, "Ready"));
    assert_true(kube_condition_set(o, "Ready", "False", "Downloading", "m1", 1,
                                   "2026-01-01T00:00:00Z"));
    json_t *c = kube_condition_find(o, "Ready");
    assert_string_equal(json_string_value(json_object_get(c, "reason")),
                        "Downloading");
    assert_string_equal(
        json_string_value(json_object_get(c, "lastTransitionTime")),
        "2026-01-01T00:00:00Z");
    assert_int_equal(
        json_integer_value(json_object_get(c, "observedGeneration")), 1);
    assert_false(kube_condition_is_true(o, "Ready"));
    /* The same again: no change. */
    assert_false(kube_condition_set(o, "Ready", "False", "Downloading", "m1", 1,
                                    "2026-01-02T00:00:00Z"));
    /* A new message, same status: changed, transition time kept. */
    assert_true(kube_condition_set(o, "Ready", "False", "HTTPError", "m2", 1,
                                   "2026-01-03T00:00:00Z"));
    c = kube_condition_find(o, "Ready");
    assert_string_equal(
        json_string_value(json_object_get(c, "lastTransitionTime")),
        "2026-01-01T00:00:00Z");
    /* A new status: the transition time moves. */
    assert_true(kube_condition_set(o, "Ready", "True", "Downloaded", "ok", 2,
                                   "2026-01-04T00:00:00Z"));
    c = kube_condition_find(o, "Ready");
    assert_string_equal(
        json_string_value(json_object_get(c, "lastTransitionTime")),
        "2026-01-04T00:00:00Z");
    assert_true(kube_condition_is_true(o, "Ready"));
    /* Another type is a second entry; remove takes one out. */
    assert_true(kube_condition_set(o, "Other", "Unknown", "R", "", -1, NULL));
    assert_int_equal(json_array_size(json_object_get(
                         json_object_get(o, "status"), "conditions")),
                     2);
    assert_null(
        json_object_get(kube_condition_find(o, "Other"), "observedGeneration"));
    assert_true(kube_condition_remove(o, "Other"));
    assert_false(kube_condition_remove(o, "Other"));
    assert_non_null(kube_condition_find(o, "Ready"));
    json_decref(o);
}

static void
test_json_helpers(void **state)
{
    (void) state;
    json_t *o =
        json_loads("{\"spec\":{\"nodeName\":\"h1\",\"containers\":[1]},"
                   "\"status\":{\"phase\":\"Running\"},\"kind\":\"Pod\"}",
                   0, NULL);
    kube_json_keep_only(o, "spec", "nodeName");
    kube_json_keep_only(o, "status", "conditions"); /* absent: emptied */
    kube_json_keep_only(o, "kind", "x");            /* not an object */
    json_t *want = json_loads("{\"spec\":{\"nodeName\":\"h1\"},\"status\":{},"
                              "\"kind\":\"Pod\"}",
                              0, NULL);
    assert_true(json_equal(o, want));
    assert_true(kube_json_same(NULL, NULL));
    assert_false(kube_json_same(NULL, json_object_get(o, "kind")));
    assert_true(kube_json_same(json_object_get(o, "spec"),
                               json_object_get(want, "spec")));
    static const char *const spec_node[] = {"spec.nodeName", NULL};
    static const char *const status_phase[] = {"kind", "status.phase", NULL};
    json_object_set_new(json_object_get(want, "spec"), "nodeName",
                        json_string("h2"));
    assert_true(kube_json_changed(o, want, spec_node));
    assert_false(kube_json_changed(o, want, status_phase)); /* both absent */
    json_object_set_new(json_object_get(want, "status"), "phase",
                        json_string("Running"));
    assert_true(kube_json_changed(o, want, status_phase));
    json_decref(want);
    json_decref(o);
}

static void
test_finalizers(void **state)
{
    json_t *o = json_pack("{s:{s:s}}", "metadata", "name", "x");
    assert_false(kube_finalizer_has(o, "a/b"));
    assert_true(kube_finalizer_add(o, "a/b"));
    assert_false(kube_finalizer_add(o, "a/b"));
    assert_true(kube_finalizer_add(o, "c/d"));
    assert_true(kube_finalizer_has(o, "a/b"));
    assert_true(kube_finalizer_remove(o, "a/b"));
    assert_false(kube_finalizer_remove(o, "a/b"));
    json_t *f = json_object_get(json_object_get(o, "metadata"), "finalizers");
    assert_int_equal(json_array_size(f), 1);
    assert_string_equal(json_string_value(json_array_get(f, 0)), "c/d");
    assert_false(kube_is_deleting(o));
    json_object_set_new(json_object_get(o, "metadata"), "deletionTimestamp",
                        json_string("2026-01-01T00:00:00Z"));
    assert_true(kube_is_deleting(o));
    json_decref(o);
}

static void
test_owner_refs(void **state)
{
    json_t *owner = json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion",
                              "provisioning.dpu.nvidia.com/v1alpha1", "kind",
                              "DPUSet", "metadata", "name", "set", "uid", "u1");
    json_t *other =
        json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind",
                  "ConfigMap", "metadata", "name", "cm", "uid", "u2");
    json_t *noid = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "v1", "kind",
                             "ConfigMap", "metadata", "name", "cm");
    json_t *o = json_object();
    assert_null(kube_owner_ref(noid, true));
    assert_int_equal(kube_owner_ref_set(o, noid, true), -EINVAL);
    assert_int_equal(kube_owner_ref_set(o, owner, true), 1);
    assert_int_equal(kube_owner_ref_set(o, owner, true), 0);
    json_t *c = kube_owner_controller(o);
    assert_string_equal(json_string_value(json_object_get(c, "uid")), "u1");
    assert_true(json_is_true(json_object_get(c, "blockOwnerDeletion")));
    /* A second controller is refused; a plain owner is fine. */
    assert_int_equal(kube_owner_ref_set(o, other, true), -EEXIST);
    assert_int_equal(kube_owner_ref_set(o, other, false), 1);
    assert_true(kube_owned_by(o, "u2"));
    assert_false(kube_owned_by(o, "u3"));
    /* The same owner as non-controller replaces its entry. */
    assert_int_equal(kube_owner_ref_set(o, owner, false), 1);
    assert_null(kube_owner_controller(o));
    assert_int_equal(json_array_size(json_object_get(
                         json_object_get(o, "metadata"), "ownerReferences")),
                     2);
    json_decref(o);
    json_decref(owner);
    json_decref(other);
    json_decref(noid);
}

/* --- a scripted server --- */

#define MAX_REQ 64

struct req {
    char method[16];
    char target[512];
    char ctype[128];
    char auth[128]; /* Authorization header */
    char *body;
};

struct fake;
/* Answer request i: fill status and body (static or malloc'd in *owned). */
typedef void (*script_fn)(struct fake *f, int i, const struct req *r,
                          int *status, const char **body);

struct fake {
    int lfd, port;
    pthread_t thread;
    pthread_mutex_t mu;
    struct req reqs[MAX_REQ];
    int n;
    script_fn script;
    int state; /* script's own */
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
serve_one(struct fake *f, int fd)
{
    char buf[16384];
    size_t n = 0;
    char *end = NULL;
    while (n < sizeof buf - 1 && !end) {
        ssize_t r = read(fd, buf + n, sizeof buf - 1 - n);
        if (r <= 0) {
            close(fd);
            return;
        }
        n += (size_t) r;
        buf[n] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    struct req rq = {0};
    sscanf(buf, "%15s %511s", rq.method, rq.target);
    const char *ct = strcasestr(buf, "\r\nContent-Type: ");
    if (ct && ct < end) {
        sscanf(ct + 16, "%127[^\r]", rq.ctype);
    }
    const char *au = strcasestr(buf, "\r\nAuthorization: ");
    if (au && au < end) {
        sscanf(au + 17, "%127[^\r]", rq.auth);
    }
    size_t clen = 0;
    const char *cl = strcasestr(buf, "\r\nContent-Length: ");
    if (cl && cl < end) {
        clen = strtoul(cl + 18, NULL, 10);
    }
    size_t have = n - (size_t) (end + 4 - buf);
    rq.body = xcalloc(1, clen + 1);
    memcpy(rq.body, end + 4, have < clen ? have : clen);
    while (have < clen) {
        ssize_t r = read(fd, rq.body + have, clen - have);
        if (r <= 0) {
            break;
        }
        have += (size_t) r;
    }
    pthread_mutex_lock(&f->mu);
    int i = f->n < MAX_REQ ? f->n++ : MAX_REQ - 1;
    free(f->reqs[i].body);
    f->reqs[i] = rq;
    int status = 500;
    const char *body = "{}";
    f->script(f, i, &f->reqs[i], &status, &body);
    pthread_mutex_unlock(&f->mu);
    char head[256];
    snprintf(head, sizeof head,
             "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
             status, strlen(body));
    send_all(fd, head, strlen(head));
    send_all(fd, body, strlen(body));
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

/* The server, a loop thread and a client. */
struct env {
    struct fake f;
    struct loop *loop;
    pthread_t loop_thread;
    struct kube_rest *rest;
};

static void *
loop_main(void *arg)
{
    loop_run(arg);
    return NULL;
}

/* kc NULL: a kubeconfig with the server and no user. */
static void
env_start_kc(struct env *e, script_fn script, struct kubeconfig *kc)
{
    memset(e, 0, sizeof *e);
    struct fake *f = &e->f;
    f->script = script;
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
    e->loop = loop_create();
    char server[64];
    snprintf(server, sizeof server, "http://127.0.0.1:%d", f->port);
    struct kubeconfig plain = {.server = server, .namespace = "default"};
    if (kc) {
        free(kc->server);
        kc->server = xstrdup(server);
    }
    struct dpf_error err = {0};
    e->rest = kube_rest_create(e->loop, kc ? kc : &plain, &err);
    assert_non_null(e->rest);
    pthread_create(&e->loop_thread, NULL, loop_main, e->loop);
}

static void
env_start(struct env *e, script_fn script)
{
    env_start_kc(e, script, NULL);
}

static void
env_stop(struct env *e)
{
    loop_stop(e->loop);
    pthread_join(e->loop_thread, NULL);
    kube_rest_destroy(e->rest);
    loop_destroy(e->loop);
    shutdown(e->f.lfd, SHUT_RDWR);
    close(e->f.lfd);
    pthread_join(e->f.thread, NULL);
    for (int i = 0; i < e->f.n; i++) {
        free(e->f.reqs[i].body);
    }
}

/* --- kube-write --- */

#define CM_RV(rv)                                                           \
    "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":" \
    "\"c\",\"namespace\":\"ns\",\"resourceVersion\":\"" rv "\"}}"

/* GET rv 1, PUT 409, GET rv 2, PUT 200. */
static void
conflict_script(struct fake *f, int i, const struct req *r, int *status,
                const char **body)
{
    if (!strcmp(r->method, "GET")) {
        *status = 200;
        *body = f->state++ == 0 ? CM_RV("1") : CM_RV("2");
    } else if (!strcmp(r->method, "PUT") && strstr(r->body, "\"1\"")) {
        *status = 409;
        *body = "{\"kind\":\"Status\",\"status\":\"Failure\",\"reason\":"
                "\"Conflict\",\"code\":409,\"message\":\"the object has been "
                "modified\"}";
    } else {
        *status = 200;
        *body = CM_RV("3");
    }
}

static int
set_data(void *arg, json_t *obj)
{
    int *calls = arg;
    (*calls)++;
    json_object_set_new(obj, "data", json_pack("{s:s}", "k", "v"));
    return 1;
}

static int
no_change(void *arg, json_t *obj)
{
    return 0;
}

static const struct kube_gvr cm_gvr = {"", "v1", "configmaps", true};

static void
test_update_retry_on_conflict(void **state)
{
    struct env e;
    env_start(&e, conflict_script);
    int calls = 0;
    json_t *out = NULL;
    struct dpf_error err = {0};
    int rc = kube_update_retry(e.rest, &cm_gvr, "ns", "c", "status", set_data,
                               &calls, &out, &err);
    assert_int_equal(rc, 0);
    assert_int_equal(calls, 2); /* mutated again on the fresh read */
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(out, "metadata"),
                                          "resourceVersion")),
        "3");
    json_decref(out);
    assert_int_equal(e.f.n, 4);
    assert_string_equal(e.f.reqs[0].target,
                        "/api/v1/namespaces/ns/configmaps/c");
    assert_string_equal(e.f.reqs[1].method, "PUT");
    assert_string_equal(e.f.reqs[1].target,
                        "/api/v1/namespaces/ns/configmaps/c/status");
    assert_non_null(strstr(e.f.reqs[3].body, "\"k\":\"v\""));
    assert_non_null(strstr(e.f.reqs[3].body, "\"2\""));
    /* Nothing to write: one GET, no PUT. */
    rc = kube_update_retry(e.rest, &cm_gvr, "ns", "c", NULL, no_change, NULL,
                           NULL, &err);
    assert_int_equal(rc, 0);
    assert_int_equal(e.f.n, 5);
    assert_string_equal(e.f.reqs[4].method, "GET");
    env_stop(&e);
}

/* From a cached copy: a fresh one costs the PUT alone; a stale one
 * (resourceVersion 1, which the script refuses) a 409, then reads. */
static void
test_update_from_cache(void **state)
{
    struct env e;
    env_start(&e, conflict_script);
    int calls = 0;
    struct dpf_error err = {0};
    json_t *fresh = json_loads(CM_RV("2"), 0, NULL);
    int rc = kube_update_retry_from(e.rest, &cm_gvr, "ns", "c", NULL, fresh,
                                    set_data, &calls, NULL, &err);
    assert_int_equal(rc, 0);
    assert_int_equal(e.f.n, 1);
    assert_string_equal(e.f.reqs[0].method, "PUT");
    assert_non_null(strstr(e.f.reqs[0].body, "\"k\":\"v\""));
    /* the cached copy itself is left as it was */
    assert_null(json_object_get(fresh, "data"));
    json_decref(fresh);

    json_t *stale = json_loads(CM_RV("1"), 0, NULL);
    rc = kube_update_retry_from(e.rest, &cm_gvr, "ns", "c", NULL, stale,
                                set_data, &calls, NULL, &err);
    json_decref(stale);
    assert_int_equal(rc, 0);
    assert_string_equal(e.f.reqs[1].method, "PUT"); /* 409 */
    assert_string_equal(e.f.reqs[2].method, "GET");
    assert_string_equal(e.f.reqs[e.f.n - 1].method, "PUT");
    int puts = 0;
    for (int i = 0; i < (int) e.f.n; i++) {
        puts += !strcmp(e.f.reqs[i].method, "PUT");
    }
    assert_int_equal(calls, puts); /* mutated once per write */
    env_stop(&e);
}

/* Every PUT conflicts. */
static void
always_conflict(struct fake *f, int i, const struct req *r, int *status,
                const char **body)
{
    if (!strcmp(r->method, "GET")) {
        *status = 200;
        *body = CM_RV("1");
    } else {
        *status = 409;
        *body = "{\"kind\":\"Status\",\"reason\":\"Conflict\",\"code\":409,"
                "\"message\":\"the object has been modified\"}";
    }
}

static void
test_update_gives_up(void **state)
{
    struct env e;
    env_start(&e, always_conflict);
    int calls = 0;
    struct dpf_error err = {0};
    int rc = kube_update_retry(e.rest, &cm_gvr, "ns", "c", NULL, set_data,
                               &calls, NULL, &err);
    assert_int_equal(rc, -EBUSY);
    assert_int_equal(calls, KUBE_UPDATE_TRIES);
    assert_non_null(strstr(err.message, "modified"));
    env_stop(&e);
}

static void
ok_script(struct fake *f, int i, const struct req *r, int *status,
          const char **body)
{
    *status = !strcmp(r->method, "POST") ? 201 : 200;
    *body = CM_RV("9");
}

static void
test_apply(void **state)
{
    struct env e;
    env_start(&e, ok_script);
    json_t *obj =
        json_pack("{s:s, s:s, s:{s:s, s:s}}", "apiVersion", "v1", "kind",
                  "ConfigMap", "metadata", "name", "c", "namespace", "ns");
    struct dpf_error err = {0};
    assert_int_equal(
        kube_apply(e.rest, &cm_gvr, obj, "dpf-test", true, NULL, &err), 0);
    assert_string_equal(e.f.reqs[0].method, "PATCH");
    assert_string_equal(e.f.reqs[0].target,
                        "/api/v1/namespaces/ns/configmaps/c?fieldManager=dpf-"
                        "test&force=true");
    assert_string_equal(e.f.reqs[0].ctype, "application/apply-patch+yaml");
    assert_non_null(strstr(e.f.reqs[0].body, "\"kind\":\"ConfigMap\""));
    json_object_del(json_object_get(obj, "metadata"), "name");
    assert_int_equal(kube_apply(e.rest, &cm_gvr, obj, "m", false, NULL, &err),
                     -EINVAL);
    json_decref(obj);
    env_stop(&e);
}

/* --- kube-events --- */

static int
count_method(struct fake *f, const char *m)
{
    int n = 0;
    for (int i = 0; i < f->n; i++) {
        n += !strcmp(f->reqs[i].method, m);
    }
    return n;
}

static void
test_event_aggregation(void **state)
{
    struct env e;
    env_start(&e, ok_script);
    struct kube_recorder *rec = kube_recorder_create(e.rest, "test-ctl", NULL);
    json_t *obj =
        json_pack("{s:s, s:s, s:{s:s, s:s, s:s}}", "apiVersion",
                  "provisioning.dpu.nvidia.com/v1alpha1", "kind", "BFB",
                  "metadata", "name", "b", "namespace", "ns", "uid", "u-1");
    kube_recorder_event(rec, obj, "Warning", "FailedDownload", "HTTP %d", 404);
    assert_int_equal(e.f.n, 1);
    assert_string_equal(e.f.reqs[0].method, "POST");
    assert_string_equal(e.f.reqs[0].target, "/api/v1/namespaces/ns/events");
    json_t *ev = json_loads(e.f.reqs[0].body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(ev, "reason")),
                        "FailedDownload");
    assert_string_equal(json_string_value(json_object_get(ev, "message")),
                        "HTTP 404");
    assert_int_equal(json_integer_value(json_object_get(ev, "count")), 1);
    json_t *io = json_object_get(ev, "involvedObject");
    assert_string_equal(json_string_value(json_object_get(io, "kind")), "BFB");
    assert_string_equal(json_string_value(json_object_get(io, "uid")), "u-1");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(ev, "source"), "component")),
                        "test-ctl");
    const char *name = json_string_value(
        json_object_get(json_object_get(ev, "metadata"), "name"));
    char want[600];
    snprintf(want, sizeof want, "/api/v1/namespaces/ns/events/%s", name);
    /* The same event again: a PATCH of that Event, count 2. */
    kube_recorder_event(rec, obj, "Warning", "FailedDownload", "HTTP 404");
    assert_int_equal(e.f.n, 2);
    assert_string_equal(e.f.reqs[1].method, "PATCH");
    assert_string_equal(e.f.reqs[1].target, want);
    assert_string_equal(e.f.reqs[1].ctype, "application/merge-patch+json");
    assert_non_null(strstr(e.f.reqs[1].body, "\"count\":2"));
    json_decref(ev);
    /* Similar events (other messages): ten distinct ones are their own
     * Events, then they are combined into one. */
    for (int i = 1; i < KUBE_EVENT_SIMILAR; i++) {
        kube_recorder_event(rec, obj, "Warning", "FailedDownload", "HTTP %d",
                            500 + i);
    }
    assert_int_equal(count_method(&e.f, "POST"), KUBE_EVENT_SIMILAR);
    kube_recorder_event(rec, obj, "Warning", "FailedDownload", "HTTP 599");
    int last = e.f.n - 1;
    assert_string_equal(e.f.reqs[last].method, "POST");
    assert_non_null(strstr(e.f.reqs[last].body,
                           "(combined from similar events): HTTP 599"));
    kube_recorder_event(rec, obj, "Warning", "FailedDownload", "HTTP 598");
    last = e.f.n - 1;
    assert_string_equal(e.f.reqs[last].method, "PATCH");
    assert_non_null(strstr(e.f.reqs[last].body,
                           "(combined from similar events): HTTP 598"));
    assert_non_null(strstr(e.f.reqs[last].body, "\"count\":2"));
    /* Another reason is not similar. */
    kube_recorder_event(rec, obj, "Normal", "SuccessfulDownload", "done");
    assert_string_equal(e.f.reqs[e.f.n - 1].method, "POST");
    unsigned long written, dropped;
    kube_recorder_stats(rec, &written, &dropped);
    assert_int_equal(written, (unsigned long) e.f.n);
    assert_int_equal(dropped, 0);
    kube_recorder_destroy(rec);
    json_decref(obj);
    env_stop(&e);
}

/* --- leader --- */

/* --- kube-rest with an exec credential plugin --- */

/* 401 for the first plugin's token, 200 for any other. */
static void
reauth_script(struct fake *f, int i, const struct req *r, int *status,
              const char **body)
{
    *status = strcmp(r->auth, "Bearer tok-1") ? 200 : 401;
    *body = *status == 200 ? CM_RV("5")
                           : "{\"kind\":\"Status\",\"reason\":"
                             "\"Unauthorized\",\"code\":401}";
}

/* A kubeconfig (over http, allowed by the extension) whose user runs cmd,
 * by default dir/plugin: it prints token tok-<run> (one line per run in
 * dir/runs). */
static struct kubeconfig *
plugin_kubeconfig(const char *dir, const char *cmd)
{
    char *plugin = xasprintf("%s/plugin", dir);
    char *sh = xasprintf("#!/bin/sh\necho run >> %s/runs\n"
                         "echo '{\"apiVersion\":\"client.authentication.k8s"
                         ".io/v1\",\"kind\":\"ExecCredential\",\"status\":"
                         "{\"token\":\"tok-'$(wc -l < %s/runs)'\"}}'\n",
                         dir, dir);
    assert_int_equal(file_write_atomic(plugin, sh, strlen(sh), 0755), 0);
    free(sh);
    char *text =
        xasprintf("current-context: c\n"
                  "contexts:\n- name: c\n  context: {cluster: k, user: u}\n"
                  "clusters:\n- name: k\n  cluster:\n    server: http://x\n"
                  "    extensions:\n    - name: " KUBECONFIG_EXT_PLAINTEXT "\n"
                  "      extension: {}\n"
                  "users:\n- name: u\n  user:\n    exec:\n"
                  "      apiVersion: client.authentication.k8s.io/v1\n"
                  "      command: %s\n      interactiveMode: Never\n",
                  cmd ? cmd : plugin);
    struct kubeconfig *kc = NULL;
    struct dpf_error err = {0};
    int r = kubeconfig_parse(text, strlen(text), "/tmp/kc", NULL, &kc, &err);
    free(text);
    free(plugin);
    assert_int_equal(r, 0);
    return kc;
}

static void
test_rest_exec_plugin(void **state)
{
    char dir[] = "/tmp/dpf-test-rest-exec-XXXXXX";
    assert_non_null(mkdtemp(dir));
    /* A 401 runs the plugin again and repeats the request once. */
    struct kubeconfig *kc = plugin_kubeconfig(dir, NULL);
    struct env e;
    env_start_kc(&e, reauth_script, kc);
    json_t *out = NULL;
    struct dpf_error err = {0};
    assert_int_equal(kube_rest_json_wait(e.rest, "GET",
                                         "/api/v1/namespaces/ns/configmaps/c",
                                         NULL, NULL, NULL, &out, &err),
                     0);
    json_decref(out);
    assert_int_equal(e.f.n, 2);
    assert_string_equal(e.f.reqs[0].auth, "Bearer tok-1");
    assert_string_equal(e.f.reqs[1].auth, "Bearer tok-2");
    /* The new credential is kept: no run for the next request. */
    assert_int_equal(kube_rest_json_wait(e.rest, "GET",
                                         "/api/v1/namespaces/ns/configmaps/c",
                                         NULL, NULL, NULL, NULL, &err),
                     0);
    assert_int_equal(e.f.n, 3);
    assert_string_equal(e.f.reqs[2].auth, "Bearer tok-2");
    env_stop(&e);
    kubeconfig_free(kc);

    /* A plugin that cannot run: -EACCES, nothing sent. */
    char *missing = xasprintf("%s/missing-plugin", dir);
    kc = plugin_kubeconfig(dir, missing);
    env_start_kc(&e, reauth_script, kc);
    dpf_error_clear(&err);
    assert_int_equal(kube_rest_json_wait(e.rest, "GET", "/api/v1/namespaces",
                                         NULL, NULL, NULL, NULL, &err),
                     -EACCES);
    assert_int_equal(err.code, 401);
    assert_string_equal(err.reason, KUBE_REASON_CLIENT);
    assert_non_null(strstr(err.message, "getting credentials for user \"u\""));
    assert_int_equal(e.f.n, 0);
    env_stop(&e);
    kubeconfig_free(kc);
    free(missing);
    char *cmd = xasprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

static void
test_leader_config(void **state)
{
    struct dpf_error err = {0};
    struct leader_config c = {.namespace = "ns", .name = "l", .identity = "me"};
    struct leader_elector *le = leader_elector_create(NULL, &c, &err);
    assert_non_null(le);
    assert_false(leader_elector_is_leader(le));
    leader_elector_destroy(le);
    c.renew_deadline_ms = 20000; /* >= lease duration */
    assert_null(leader_elector_create(NULL, &c, &err));
    assert_non_null(strstr(err.message, "renew deadline"));
    c.renew_deadline_ms = 3000;
    c.retry_ms = 3000; /* 1.2 x retry beyond the renew deadline */
    assert_null(leader_elector_create(NULL, &c, &err));
    c.retry_ms = 0;
    c.identity = "";
    assert_null(leader_elector_create(NULL, &c, &err));
    assert_non_null(strstr(err.message, "identity"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conditions),
        cmocka_unit_test(test_json_helpers),
        cmocka_unit_test(test_finalizers),
        cmocka_unit_test(test_owner_refs),
        cmocka_unit_test(test_update_retry_on_conflict),
        cmocka_unit_test(test_update_from_cache),
        cmocka_unit_test(test_update_gives_up),
        cmocka_unit_test(test_apply),
        cmocka_unit_test(test_event_aggregation),
        cmocka_unit_test(test_leader_config),
        cmocka_unit_test(test_rest_exec_plugin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
