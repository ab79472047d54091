/* Unit tests for lib/api-client against a tiny scripted HTTP server on
 * 127.0.0.1 (plain HTTP, one thread): request building, keep-alive,
 * Status decoding, paging, watch streams and client-side errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/kube/api-client.h"
#include "lib/base/util.h"

/* One scripted reply. */
struct fake_resp {
    int status;
    const char *body;      /* whole body (not streaming) */
    const char *chunks[8]; /* streaming: written one by one, then close */
    int hold_ms;           /* streaming: stay open this long at the end */
};

#define MAX_REQ 16

/* The fake server. */
struct fake {
    int lfd;
    int port;
    pthread_t th;
    struct fake_resp resp[MAX_REQ];
    size_t nresp;
    size_t served;
    char *req[MAX_REQ]; /* recorded request head + body */
    int conns;          /* accepted connections */
    volatile int stop;
};

static void
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) {
            return;
        }
        p += w;
        n -= (size_t) w;
    }
}

/* Read one request; returns false when the peer closed. */
static bool
read_request(struct fake *f, int fd)
{
    struct dbuf b;
    dbuf_init(&b);
    char buf[4096];
    char *end = NULL;
    while (!end) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) == 0) {
            if (f->stop) {
                dbuf_free(&b);
                return false;
            }
            continue;
        }
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0) {
            dbuf_free(&b);
            return false;
        }
        dbuf_append(&b, buf, (size_t) r);
        end = strstr(b.data, "\r\n\r\n");
    }
    size_t head = (size_t) (end - b.data) + 4;
    size_t clen = 0;
    const char *cl = strcasestr(b.data, "\r\nContent-Length:");
    if (cl && cl < end) {
        clen = strtoul(cl + 17, NULL, 10);
    }
    while (b.len < head + clen) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0) {
            break;
        }
        dbuf_append(&b, buf, (size_t) r);
    }
    if (f->served < MAX_REQ) {
        f->req[f->served] = dbuf_steal(&b, NULL);
    } else {
        dbuf_free(&b);
    }
    return true;
}

static void *
fake_main(void *arg)
{
    struct fake *f = arg;
    while (!f->stop) {
        struct pollfd pfd = {.fd = f->lfd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0) {
            continue;
        }
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0) {
            continue;
        }
        f->conns++;
        bool open = true;
        while (open && !f->stop && read_request(f, fd)) {
            struct fake_resp *r =
                &f->resp[f->served < f->nresp ? f->served : 0];
            f->served++;
            char hdr[256];
            if (r->chunks[0]) {
                snprintf(hdr, sizeof hdr,
                         "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                         "Connection: close\r\n\r\n",
                         r->status);
                write_all(fd, hdr, strlen(hdr));
                for (int i = 0; i < 8 && r->chunks[i]; i++) {
                    write_all(fd, r->chunks[i], strlen(r->chunks[i]));
                    usleep(20000);
                }
                for (int t = 0; t < r->hold_ms && !f->stop; t += 10) {
                    struct pollfd hp = {.fd = fd, .events = POLLIN};
                    char c;
                    if (poll(&hp, 1, 10) > 0 && read(fd, &c, 1) <= 0) {
                        break; /* the client went away */
                    }
                }
                open = false;
            } else {
                const char *body = r->body ? r->body : "";
                snprintf(hdr, sizeof hdr,
                         "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\n\r\n",
                         r->status, strlen(body));
                write_all(fd, hdr, strlen(hdr));
                write_all(fd, body, strlen(body));
            }
        }
        close(fd);
    }
    return NULL;
}

static struct fake *
fake_start(const struct fake_resp *resp, size_t n)
{
    struct fake *f = xcalloc(1, sizeof *f);
    memcpy(f->resp, resp, n * sizeof *resp);
    f->nresp = n;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(f->lfd, (struct sockaddr *) &sa, sizeof sa), 0);
    assert_int_equal(listen(f->lfd, 8), 0);
    socklen_t sl = sizeof sa;
    getsockname(f->lfd, (struct sockaddr *) &sa, &sl);
    f->port = ntohs(sa.sin_port);
    pthread_create(&f->th, NULL, fake_main, f);
    return f;
}

/* Stop and free the server; returns how many connections it accepted. */
static int
fake_stop(struct fake *f)
{
    f->stop = 1;
    pthread_join(f->th, NULL);
    close(f->lfd);
    for (size_t i = 0; i < MAX_REQ; i++) {
        free(f->req[i]);
    }
    int conns = f->conns;
    free(f);
    return conns;
}

static struct api_client *
client_for(struct fake *f)
{
    struct kubeconfig kc = {0};
    char *server = xasprintf("http://127.0.0.1:%d", f->port);
    kc.server = server;
    kc.token = "sekrit";
    kc.allow_plaintext_credentials = true; /* the fake speaks plain HTTP */
    struct dpf_error err = {0};
    struct api_client *c = api_client_create(&kc, &err);
    assert_non_null(c);
    free(server);
    return c;
}

static const struct kube_gvr bfb_gvr = {"provisioning.dpu.nvidia.com",
                                        "v1alpha1", "bfbs", true};
static const struct kube_gvr ns_gvr = {"", "v1", "namespaces", false};

static void
test_paths(void **state)
{
    char *p = kube_path(&bfb_gvr, "ns1", "a b", "status");
    assert_string_equal(
        p, "/apis/provisioning.dpu.nvidia.com/v1alpha1/namespaces/ns1/bfbs/"
           "a%20b/status");
    free(p);
    p = kube_path(&bfb_gvr, NULL, NULL, NULL);
    assert_string_equal(p, "/apis/provisioning.dpu.nvidia.com/v1alpha1/bfbs");
    free(p);
    p = kube_path(&ns_gvr, "ignored", "x", NULL);
    assert_string_equal(p, "/api/v1/namespaces/x");
    free(p);
    p = kube_escape("metadata.name=a,b c");
    assert_string_equal(p, "metadata.name%3Da%2Cb%20c");
    free(p);
}

static void
test_get_and_keepalive(void **state)
{
    struct fake_resp r[] = {
        {200, "{\"kind\":\"BFB\",\"metadata\":{\"name\":\"a\"}}", {0}, 0},
        {200, "{\"kind\":\"BFB\",\"metadata\":{\"name\":\"b\"}}", {0}, 0},
        {201, "{\"kind\":\"BFB\",\"metadata\":{\"name\":\"c\"}}", {0}, 0},
    };
    struct fake *f = fake_start(r, 3);
    struct api_client *c = client_for(f);
    struct dpf_error err = {0};
    json_t *o = NULL;
    assert_int_equal(api_client_get(c, &bfb_gvr, "ns1", "a", &o, &err), 0);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(o, "metadata"), "name")),
                        "a");
    json_decref(o);
    assert_int_equal(api_client_get(c, &bfb_gvr, "ns1", "b", &o, &err), 0);
    json_decref(o);
    json_t *obj =
        json_pack("{s:s,s:{s:s}}", "kind", "BFB", "metadata", "name", "c");
    assert_int_equal(
        api_client_post(c, &bfb_gvr, "ns1", obj, "mgr", NULL, &err), 0);
    json_decref(obj);
    api_client_destroy(c);
    /* all three requests on one connection */
    assert_int_equal(fake_stop(f), 1);
}

static void
test_requests_on_the_wire(void **state)
{
    struct fake_resp r[] = {
        {201, "{}", {0}, 0},
        {200, "{}", {0}, 0},
        {200, "{}", {0}, 0},
        {200, "{}", {0}, 0},
    };
    struct fake *f = fake_start(r, 4);
    struct api_client *c = client_for(f);
    struct dpf_error err = {0};
    json_t *obj = json_pack("{s:{s:s}}", "metadata", "name", "x");
    assert_int_equal(api_client_post(c, &bfb_gvr, "n", obj,
                                     "kubectl-client-side-apply", NULL, &err),
                     0);
    json_t *patch = json_pack("{s:{s:i}}", "spec", "a", 1);
    assert_int_equal(api_client_patch(c, &bfb_gvr, "n", "x", NULL,
                                      API_PATCH_MERGE, patch, NULL, NULL, &err),
                     0);
    assert_int_equal(
        api_client_delete(c, &bfb_gvr, "n", "x", "Background", NULL, &err), 0);
    assert_int_equal(
        api_client_put(c, &bfb_gvr, "n", obj, "status", NULL, NULL, &err), 0);
    json_decref(obj);
    json_decref(patch);
    api_client_destroy(c);
    char *q[4];
    for (int i = 0; i < 4; i++) {
        q[i] = f->req[i];
        f->req[i] = NULL;
    }
    fake_stop(f);

    assert_true(str_has_prefix(
        q[0], "POST /apis/provisioning.dpu.nvidia.com/v1alpha1/namespaces/n/"
              "bfbs?fieldManager=kubectl-client-side-apply HTTP/1.1"));
    assert_non_null(strstr(q[0], "Authorization: Bearer sekrit"));
    assert_non_null(strstr(q[0], "Content-Type: application/json"));
    assert_non_null(strstr(q[0], "{\"metadata\":{\"name\":\"x\"}}"));
    assert_true(str_has_prefix(q[1], "PATCH /apis/provisioning.dpu.nvidia."
                                     "com/v1alpha1/namespaces/n/bfbs/x "));
    assert_non_null(strstr(q[1], "Content-Type: application/merge-patch+json"));
    assert_true(str_has_prefix(q[2], "DELETE /apis/"));
    assert_non_null(strstr(q[2], "{\"propagationPolicy\":\"Background\"}"));
    assert_true(str_has_prefix(q[3], "PUT /apis/provisioning.dpu.nvidia.com/"
                                     "v1alpha1/namespaces/n/bfbs/x/status "));
    for (int i = 0; i < 4; i++) {
        free(q[i]);
    }
}

static void
test_status_errors(void **state)
{
    struct fake_resp r[] = {
        {404,
         "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
         "\"message\":\"bfbs.provisioning.dpu.nvidia.com \\\"a\\\" not "
         "found\",\"reason\":\"NotFound\",\"code\":404}",
         {0},
         0},
        {422,
         "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"BFB "
         "\\\"a\\\" is invalid\",\"reason\":\"Invalid\",\"details\":"
         "{\"causes\":[{\"reason\":\"FieldValueRequired\",\"message\":"
         "\"Required value\",\"field\":\"spec.url\"}]},\"code\":422}",
         {0},
         0},
        {409,
         "{\"kind\":\"Status\",\"reason\":\"AlreadyExists\",\"message\":"
         "\"exists\",\"code\":409}",
         {0},
         0},
        {500, "oops, not json", {0}, 0},
    };
    struct fake *f = fake_start(r, 4);
    struct api_client *c = client_for(f);
    struct dpf_error err = {0};
    json_t *o = NULL;
    assert_int_equal(api_client_get(c, &bfb_gvr, "n", "a", &o, &err), -ENOENT);
    assert_null(o);
    assert_int_equal(err.code, 404);
    assert_string_equal(err.reason, "NotFound");
    assert_string_equal(err.message,
                        "bfbs.provisioning.dpu.nvidia.com \"a\" not found");
    dpf_error_clear(&err);
    json_t *obj = json_object();
    assert_int_equal(api_client_post(c, &bfb_gvr, "n", obj, NULL, NULL, &err),
                     -EINVAL);
    assert_string_equal(err.reason, "Invalid");
    assert_int_equal(err.n_causes, 1);
    assert_string_equal(err.causes[0].field, "spec.url");
    assert_string_equal(err.causes[0].type, "FieldValueRequired");
    dpf_error_clear(&err);
    assert_int_equal(api_client_post(c, &bfb_gvr, "n", obj, NULL, NULL, &err),
                     -EEXIST);
    dpf_error_clear(&err);
    assert_int_equal(api_client_get(c, &bfb_gvr, "n", "a", &o, &err), -EIO);
    assert_int_equal(err.code, 500);
    assert_string_equal(err.reason, "InternalError");
    json_decref(obj);
    api_client_destroy(c);
    fake_stop(f);
}

static void
test_list_pages(void **state)
{
    struct fake_resp r[] = {
        {200,
         "{\"kind\":\"BFBList\",\"metadata\":{\"resourceVersion\":\"5\","
         "\"continue\":\"tok1\"},\"items\":[{\"n\":1},{\"n\":2}]}",
         {0},
         0},
        {200,
         "{\"kind\":\"BFBList\",\"metadata\":{\"resourceVersion\":\"5\"},"
         "\"items\":[{\"n\":3}]}",
         {0},
         0},
    };
    struct fake *f = fake_start(r, 2);
    struct api_client *c = client_for(f);
    struct dpf_error err = {0};
    json_t *l = NULL;
    struct api_list_options lo = {.label_selector = "a=b", .limit = 2};
    assert_int_equal(api_client_list(c, &bfb_gvr, "n", &lo, &l, &err), 0);
    assert_int_equal(json_array_size(json_object_get(l, "items")), 3);
    assert_null(json_object_get(json_object_get(l, "metadata"), "continue"));
    json_decref(l);
    api_client_destroy(c);
    char *q1 = f->req[1];
    f->req[1] = NULL;
    char *q0 = f->req[0];
    f->req[0] = NULL;
    fake_stop(f);
    assert_non_null(strstr(q0, "?labelSelector=a%3Db&limit=2 HTTP"));
    assert_non_null(strstr(q1, "&limit=2&continue=tok1 HTTP"));
    free(q0);
    free(q1);
}

/* Watch callback state. */
struct seen {
    int n;
    char names[8][16];
    enum kube_event_type types[8];
    int stop_after; /* return 1 after this many events (0 = never) */
};

static int
on_event(void *arg, enum kube_event_type t, json_t *obj)
{
    struct seen *s = arg;
    const char *n = json_string_value(
        json_object_get(json_object_get(obj, "metadata"), "name"));
    if (s->n < 8) {
        snprintf(s->names[s->n], sizeof s->names[0], "%s", n ? n : "");
        s->types[s->n] = t;
    }
    s->n++;
    return s->stop_after && s->n >= s->stop_after ? 1 : 0;
}

#define EV(t, name, rv)                                                    \
    "{\"type\":\"" t "\",\"object\":{\"metadata\":{\"name\":\"" name "\"," \
    "\"resourceVersion\":\"" rv "\"}}}\n"

static void
test_watch(void **state)
{
    /* events split across writes; the server then ends the stream */
    struct fake_resp r[] = {
        {200,
         NULL,
         {EV("ADDED", "a", "11") "{\"type\":\"MODIF",
          "IED\",\"object\":{\"metadata\":{\"name\":\"a\",\"resourceVersion\""
          ":\"12\"}}}\n",
          EV("DELETED", "a", "13")},
         0},
        /* cb stops after the first */
        {200, NULL, {EV("ADDED", "b", "20") EV("ADDED", "c", "21")}, 500},
        /* 410 Gone as an ERROR event */
        {200,
         NULL,
         {"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,"
          "\"reason\":\"Expired\",\"message\":\"too old resource version\"}}"
          "\n"},
         0},
        /* silent server: the client deadline ends the watch */
        {200, NULL, {"\n"}, 3000},
        /* an error reply instead of a stream */
        {403,
         "{\"kind\":\"Status\",\"reason\":\"Forbidden\",\"message\":"
         "\"no\",\"code\":403}",
         {0},
         0},
    };
    struct fake *f = fake_start(r, 5);
    struct api_client *c = client_for(f);
    struct dpf_error err = {0};
    struct seen s = {0};
    struct api_watch_options wo = {.field_selector = "metadata.name=a"};
    snprintf(wo.resource_version, sizeof wo.resource_version, "10");
    assert_int_equal(
        api_client_watch(c, &bfb_gvr, "n", &wo, on_event, &s, &err), 0);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.types[0], KUBE_EVENT_ADDED);
    assert_int_equal(s.types[1], KUBE_EVENT_MODIFIED);
    assert_int_equal(s.types[2], KUBE_EVENT_DELETED);
    assert_string_equal(wo.resource_version, "13");

    struct seen s2 = {.stop_after = 1};
    assert_int_equal(
        api_client_watch(c, &bfb_gvr, "n", &wo, on_event, &s2, &err), 1);
    assert_int_equal(s2.n, 1);
    assert_string_equal(s2.names[0], "b");
    assert_string_equal(wo.resource_version, "20");

    struct seen s3 = {0};
    assert_int_equal(
        api_client_watch(c, &bfb_gvr, "n", &wo, on_event, &s3, &err), -ESTALE);
    assert_int_equal(s3.n, 0);
    assert_string_equal(err.reason, "Expired");

    dpf_error_clear(&err);
    struct seen s4 = {0};
    wo.deadline_ms = time_mono_ms() + 300;
    int64_t t0 = time_mono_ms();
    assert_int_equal(
        api_client_watch(c, &bfb_gvr, "n", &wo, on_event, &s4, &err),
        -ETIMEDOUT);
    assert_true(time_mono_ms() - t0 < 2500);
    assert_string_equal(err.reason, KUBE_REASON_CLIENT);

    dpf_error_clear(&err);
    wo.deadline_ms = 0;
    assert_int_equal(
        api_client_watch(c, &bfb_gvr, "n", &wo, on_event, &s4, &err), -EACCES);
    assert_string_equal(err.reason, "Forbidden");

    api_client_destroy(c);
    char *q0 = f->req[0];
    f->req[0] = NULL;
    fake_stop(f);
    assert_non_null(strstr(q0, "GET /apis/provisioning.dpu.nvidia.com/"
                               "v1alpha1/namespaces/n/bfbs?watch=true&"
                               "fieldSelector=metadata.name%3Da&"
                               "resourceVersion=10 HTTP/1.1"));
    free(q0);
}

static void
test_connection_refused(void **state)
{
    /* a port that was free a moment ago */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *) &sa, sizeof sa);
    socklen_t sl = sizeof sa;
    getsockname(fd, (struct sockaddr *) &sa, &sl);
    close(fd);
    struct kubeconfig kc = {0};
    char *server = xasprintf("http://127.0.0.1:%d", ntohs(sa.sin_port));
    kc.server = server;
    struct dpf_error err = {0};
    struct api_client *c = api_client_create(&kc, &err);
    json_t *o = NULL;
    assert_int_equal(api_client_get(c, &bfb_gvr, "n", "a", &o, &err),
                     -ECONNREFUSED);
    assert_string_equal(err.reason, KUBE_REASON_CLIENT);
    assert_non_null(strstr(err.message, server));
    api_client_destroy(c);
    free(server);
}

/* --- credentials ---------------------------------------------------- */

/* A kubeconfig for the fake server whose user is given as YAML lines
 * (indented under "user:"); cluster_extra goes under "cluster:". */
static struct kubeconfig *
kc_for(struct fake *f, const char *cluster_extra, const char *user)
{
    char *text = xasprintf("current-context: c\n"
                           "contexts:\n- name: c\n"
                           "  context: {cluster: fake, user: alice}\n"
                           "clusters:\n- name: fake\n  cluster:\n"
                           "    server: http://127.0.0.1:%d\n%s"
                           "users:\n- name: alice\n  user:\n%s",
                           f ? f->port : 1, cluster_extra, user);
    struct kubeconfig *kc = NULL;
    struct dpf_error err = {0};
    if (kubeconfig_parse(text, strlen(text), "/tmp/kc-test", NULL, &kc, &err) <
        0) {
        fail_msg("%s", err.message);
    }
    free(text);
    return kc;
}

#define ALLOW_PLAIN                              \
    "    extensions:\n"                          \
    "    - name: " KUBECONFIG_EXT_PLAINTEXT "\n" \
    "      extension: {}\n"

/* Credentials never go to an http:// server unless the cluster opts in;
 * the refusal happens before any connection. */
static void
test_plaintext_refused(void **state)
{
    struct fake_resp r[] = {{200, "{}", {0}, 0}};
    struct fake *f = fake_start(r, 1);
    static const char *const users[] = {
        "    token: abc\n",
        "    username: u\n    password: p\n",
        "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
        "      command: /bin/false\n      interactiveMode: Never\n",
    };
    static const char *const what[] = {"a bearer token",
                                       "a username and password",
                                       "an exec credential plugin"};
    for (size_t i = 0; i < ARRAY_SIZE(users); i++) {
        struct kubeconfig *kc = kc_for(f, "", users[i]);
        struct dpf_error err = {0};
        assert_null(api_client_create(kc, &err));
        char *want = xasprintf(
            "kubeconfig /tmp/kc-test: user \"alice\" has %s, but cluster "
            "\"fake\" is reached over plain http (http://127.0.0.1:%d): "
            "refusing to send credentials in clear text",
            what[i], f->port);
        if (!str_has_prefix(err.message, want)) {
            fail_msg("got: %s\nwant: %s", err.message, want);
        }
        assert_non_null(strstr(err.message, KUBECONFIG_EXT_PLAINTEXT));
        free(want);
        kubeconfig_free(kc);
    }
    /* no credentials: plain http is fine */
    struct kubeconfig *kc = kc_for(f, "", "    {}\n");
    struct dpf_error err = {0};
    struct api_client *c = api_client_create(kc, &err);
    assert_non_null(c);
    api_client_destroy(c);
    kubeconfig_free(kc);
    assert_int_equal(fake_stop(f), 0);

    /* with the extension, basic auth goes out as RFC 7617 says */
    struct fake_resp r2[] = {{200, "{}", {0}, 0}};
    f = fake_start(r2, 1);
    kc = kc_for(f, ALLOW_PLAIN, "    username: u\n    password: p w\n");
    c = api_client_create(kc, &err);
    assert_non_null(c);
    json_t *o = NULL;
    assert_int_equal(api_client_get(c, &ns_gvr, NULL, "x", &o, &err), 0);
    json_decref(o);
    api_client_destroy(c);
    kubeconfig_free(kc);
    char *q = f->req[0];
    f->req[0] = NULL;
    fake_stop(f);
    /* base64("u:p w") */
    assert_non_null(strstr(q, "\r\nAuthorization: Basic dTpwIHc=\r\n"));
    free(q);
}

/* A hand-made struct kubeconfig with a CR/LF token (kubeconfig_parse()
 * refuses those already) or insecure+CA is refused too. */
static void
test_create_refuses_bad_material(void **state)
{
    struct kubeconfig kc = {0};
    kc.server = "https://127.0.0.1:1";
    kc.token = "abc\r\nX-Injected: 1";
    kc.user_name = "bob";
    struct dpf_error err = {0};
    assert_null(api_client_create(&kc, &err));
    assert_non_null(strstr(err.message, "user \"bob\""));
    assert_non_null(strstr(err.message, "control character"));
    kc.token = NULL;
    kc.insecure_skip_tls_verify = true;
    kc.ca_pem = "PEM";
    kc.ca_len = 3;
    assert_null(api_client_create(&kc, &err));
    assert_non_null(strstr(err.message, "specifying a root certificates "
                                        "file with the insecure flag is not "
                                        "allowed"));
}

static char *plugin_dir;

/* A plugin that counts its runs, records KUBERNETES_EXEC_INFO, says
 * something on stderr and returns token tok-<run> (expiring at $EXPIRY
 * when set). */
static char *
write_plugin(void)
{
    char tmpl[] = "/tmp/dpf-test-exec-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    plugin_dir = xstrdup(tmpl);
    char *path = xasprintf("%s/plugin", plugin_dir);
    const char *sh =
        "#!/bin/sh\n"
        "d=$(dirname \"$0\")\n"
        "n=$(cat \"$d/count\" 2>/dev/null || echo 0)\n"
        "n=$((n + 1))\n"
        "echo $n > \"$d/count\"\n"
        "printf '%s' \"$KUBERNETES_EXEC_INFO\" > \"$d/info\"\n"
        "echo \"plugin run $n\" >&2\n"
        "exp=\n"
        "[ -n \"$EXPIRY\" ] && exp=\",\\\"expirationTimestamp\\\":"
        "\\\"$EXPIRY\\\"\"\n"
        "printf '{\"apiVersion\":\"client.authentication.k8s.io/v1\","
        "\"kind\":\"ExecCredential\",\"status\":{\"token\":\"tok-%s\"%s}}\\n'"
        " \"$n\" \"$exp\"\n";
    assert_int_equal(file_write_atomic(path, sh, strlen(sh), 0755), 0);
    return path;
}

static int
plugin_count(void)
{
    char *p = xasprintf("%s/count", plugin_dir);
    char *t = NULL;
    int n = file_read_all(p, &t, NULL) == 0 ? atoi(t) : 0;
    free(t);
    free(p);
    return n;
}

static void
plugin_cleanup(char *path)
{
    char *cmd = xasprintf("rm -rf '%s'", plugin_dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
    free(path);
    free(plugin_dir);
    plugin_dir = NULL;
}

static struct api_client *
exec_client(struct fake *f, const char *plugin, const char *expiry)
{
    char *user =
        xasprintf("    exec:\n"
                  "      apiVersion: client.authentication.k8s.io/v1\n"
                  "      command: %s\n"
                  "      interactiveMode: Never\n"
                  "      env:\n      - {name: EXPIRY, value: \"%s\"}\n",
                  plugin, expiry ? expiry : "");
    struct kubeconfig *kc = kc_for(f, ALLOW_PLAIN, user);
    free(user);
    struct dpf_error err = {0};
    struct api_client *c = api_client_create(kc, &err);
    if (!c) {
        fail_msg("%s", err.message);
    }
    kubeconfig_free(kc);
    /* creating the client runs nothing */
    assert_int_equal(plugin_count(), 0);
    return c;
}

/* Several requests, one plugin run while the credential has not expired;
 * one run per request once it has. */
static void
test_exec_cache_and_expiry(void **state)
{
    char *plugin = write_plugin();
    struct fake_resp ok[] = {{200, "{}", {0}, 0}};
    struct fake *f = fake_start(ok, 1);
    json_t *o = NULL;
    struct dpf_error err = {0};

    char future[32];
    time_format_rfc3339(time_wall_ns() + 3600 * 1000000000LL, future,
                        sizeof future);
    struct api_client *c = exec_client(f, plugin, future);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(api_client_get(c, &ns_gvr, NULL, "x", &o, &err), 0);
        json_decref(o);
    }
    assert_int_equal(api_client_exec_runs(c), 1);
    assert_int_equal(plugin_count(), 1);
    api_client_destroy(c);
    for (int i = 0; i < 3; i++) {
        assert_non_null(
            strstr(f->req[i], "\r\nAuthorization: Bearer tok-1\r\n"));
    }
    fake_stop(f);

    /* no expirationTimestamp: cached for the life of the client */
    f = fake_start(ok, 1);
    char *p2 = xasprintf("%s/count", plugin_dir);
    unlink(p2);
    free(p2);
    c = exec_client(f, plugin, NULL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(api_client_get(c, &ns_gvr, NULL, "x", &o, &err), 0);
        json_decref(o);
    }
    assert_int_equal(api_client_exec_runs(c), 1);
    api_client_destroy(c);
    fake_stop(f);

    /* expired (in the past): run again before every request */
    f = fake_start(ok, 1);
    p2 = xasprintf("%s/count", plugin_dir);
    unlink(p2);
    free(p2);
    c = exec_client(f, plugin, "2020-01-01T00:00:00Z");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(api_client_get(c, &ns_gvr, NULL, "x", &o, &err), 0);
        json_decref(o);
    }
    assert_int_equal(api_client_exec_runs(c), 3);
    api_client_destroy(c);
    for (int i = 0; i < 3; i++) {
        char *want = xasprintf("\r\nAuthorization: Bearer tok-%d\r\n", i + 1);
        assert_non_null(strstr(f->req[i], want));
        free(want);
    }
    fake_stop(f);
    plugin_cleanup(plugin);
}

/* A 401 runs the plugin again and repeats the request once with the new
 * token; a second 401 is the answer (no loop). Watches too. */
static void
test_exec_401_retry(void **state)
{
    char *plugin = write_plugin();
    static const char unauth[] =
        "{\"kind\":\"Status\",\"reason\":\"Unauthorized\",\"code\":401,"
        "\"message\":\"Unauthorized\"}";
    struct fake_resp r[] = {
        {401, unauth, {0}, 0},
        {200, "{\"kind\":\"Namespace\"}", {0}, 0},
        {401, unauth, {0}, 0},
        {401, unauth, {0}, 0},
        {401, unauth, {0}, 0},
        {200,
         NULL,
         {"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\","
          "\"resourceVersion\":\"5\"}}}\n"},
         0},
    };
    struct fake *f = fake_start(r, ARRAY_SIZE(r));
    struct api_client *c = exec_client(f, plugin, NULL);
    json_t *o = NULL;
    struct dpf_error err = {0};
    assert_int_equal(api_client_get(c, &ns_gvr, NULL, "x", &o, &err), 0);
    json_decref(o);
    assert_int_equal(api_client_exec_runs(c), 2);
    assert_int_equal(api_client_get(c, &ns_gvr, NULL, "x", &o, &err), -EACCES);
    assert_int_equal(err.code, 401);
    assert_int_equal(api_client_exec_runs(c), 3);
    struct api_watch_options wo = {0};
    struct seen seen = {0};
    assert_int_equal(
        api_client_watch(c, &ns_gvr, NULL, &wo, on_event, &seen, &err), 0);
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.names[0], "a");
    assert_int_equal(api_client_exec_runs(c), 4);
    api_client_destroy(c);
    static const char *const tok[] = {"tok-1", "tok-2", "tok-2",
                                      "tok-3", "tok-3", "tok-4"};
    for (size_t i = 0; i < ARRAY_SIZE(tok); i++) {
        char *want = xasprintf("\r\nAuthorization: Bearer %s\r\n", tok[i]);
        if (!f->req[i] || !strstr(f->req[i], want)) {
            fail_msg("request %zu lacks %s: %s", i, want,
                     f->req[i] ? f->req[i] : "(none)");
        }
        free(want);
    }
    assert_int_equal(f->served, 6);
    fake_stop(f);
    plugin_cleanup(plugin);
}

/* A failing plugin: the request fails with the plugin's message (user,
 * exit code, stderr, installHint), -EACCES, and nothing is sent. */
static void
test_exec_failure(void **state)
{
    char tmpl[] = "/tmp/dpf-test-exec-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    char *path = xasprintf("%s/failing", tmpl);
    const char *sh = "#!/bin/sh\necho 'login expired: run sso-login' >&2\n"
                     "exit 3\n";
    assert_int_equal(file_write_atomic(path, sh, strlen(sh), 0755), 0);
    struct fake_resp r[] = {{200, "{}", {0}, 0}};
    struct fake *f = fake_start(r, 1);
    char *user = xasprintf("    exec:\n"
                           "      apiVersion: client.authentication.k8s.io/"
                           "v1beta1\n"
                           "      command: %s\n"
                           "      installHint: install sso-tool first\n",
                           path);
    struct kubeconfig *kc = kc_for(f, ALLOW_PLAIN, user);
    free(user);
    struct dpf_error err = {0};
    struct api_client *c = api_client_create(kc, &err);
    assert_non_null(c);
    kubeconfig_free(kc);
    json_t *o = NULL;
    assert_int_equal(api_client_get(c, &ns_gvr, NULL, "x", &o, &err), -EACCES);
    char *want = xasprintf("getting credentials for user \"alice\": exec: "
                           "executable %s failed with exit code 3\n"
                           "plugin stderr: login expired: run sso-login\n"
                           "install sso-tool first",
                           path);
    assert_string_equal(err.message, want);
    assert_string_equal(err.reason, KUBE_REASON_CLIENT);
    free(want);
    api_client_destroy(c);
    assert_int_equal(fake_stop(f), 0);
    unlink(path);
    rmdir(tmpl);
    free(path);
}

static void
test_status_decode_plain(void **state)
{
    struct dpf_error err = {0};
    assert_int_equal(kube_status_to_error(200, "", 0, &err), 0);
    assert_int_equal(kube_status_to_error(401, "", 0, &err), -EACCES);
    assert_string_equal(err.reason, "Unauthorized");
    assert_int_equal(kube_status_to_error(404, "404 page not found", 18, &err),
                     -ENOENT);
    assert_string_equal(err.message,
                        "the server could not find the requested resource");
    const char *conflict = "{\"kind\":\"Status\",\"reason\":\"Conflict\","
                           "\"message\":\"m\",\"code\":409}";
    assert_int_equal(
        kube_status_to_error(409, conflict, strlen(conflict), &err), -EBUSY);
    assert_string_equal(kube_event_type_name(KUBE_EVENT_BOOKMARK), "BOOKMARK");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paths),
        cmocka_unit_test(test_get_and_keepalive),
        cmocka_unit_test(test_requests_on_the_wire),
        cmocka_unit_test(test_status_errors),
        cmocka_unit_test(test_list_pages),
        cmocka_unit_test(test_watch),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_status_decode_plain),
        cmocka_unit_test(test_plaintext_refused),
        cmocka_unit_test(test_create_refuses_bad_material),
        cmocka_unit_test(test_exec_cache_and_expiry),
        cmocka_unit_test(test_exec_401_retry),
        cmocka_unit_test(test_exec_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
