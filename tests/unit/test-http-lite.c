/* Unit tests for lib/net/http-lite: the request parser, and the server over
 * real sockets on 127.0.0.1 (keep-alive, pipelining, HEAD, errors,
 * half-close, big bodies, the connection limit). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/net/http-lite.h"
#include "lib/base/util.h"

static ssize_t
parse(const char *text, struct http_lite_request *req)
{
    return http_lite_parse_request(text, strlen(text), req);
}

static void
test_parse(void **state)
{
    struct http_lite_request r;
    const char *t = "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\nGET /";
    assert_int_equal(parse(t, &r), strstr(t, "\r\n\r\n") + 4 - t);
    assert_string_equal(r.method, "GET");
    assert_string_equal(r.path, "/metrics");
    assert_int_equal(r.minor, 1);
    assert_false(r.close);
    assert_false(r.has_body);

    assert_int_equal(parse("\r\nHEAD /h HTTP/1.1\nX-A: b\n\n", &r), 27);
    assert_string_equal(r.method, "HEAD");
    assert_string_equal(r.path, "/h");

    assert_true(parse("GET / HTTP/1.0\r\n\r\n", &r) > 0);
    assert_true(r.close);
    assert_true(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", &r) >
                0);
    assert_false(r.close);
    assert_true(
        parse("GET / HTTP/1.1\r\nconnection: upgrade, CLOSE\r\n\r\n", &r) > 0);
    assert_true(r.close);
    assert_true(parse("POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", &r) >
                0);
    assert_true(r.has_body);
    assert_true(parse("GET / HTTP/1.1\r\nContent-Length: 000\r\n\r\n", &r) > 0);
    assert_false(r.has_body);
    assert_true(
        parse("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &r) > 0);
    assert_true(r.has_body);

    /* Incomplete. */
    assert_int_equal(parse("", &r), 0);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: a\r\n", &r), 0);
    /* Malformed. */
    static const char *const bad[] = {
        "GET / HTTP/2.0\r\n\r\n",
        "GET /  HTTP/1.1\r\n\r\n",
        "GET /\r\n\r\n",
        " GET / HTTP/1.1\r\n\r\n",
        "G(T / HTTP/1.1\r\n\r\n",
        "GETTTTTTTTTTTTTTTTTT / HTTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\n folded: x\r\n\r\n",
        "GET / HTTP/1.1\r\nno colon\r\n\r\n",
        "GET / HTTP/1.1\r\n: empty name\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n",
        "GET / HTTP/1.1\r\nContent-Length:\r\n\r\n",
        "GET /a\rb HTTP/1.1\r\n\r\n",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        assert_int_equal(parse(bad[i], &r), -EBADMSG);
    }
    char nul[] = "GET / HTTP/1.1\r\nA: \0b\r\n\r\n";
    assert_int_equal(http_lite_parse_request(nul, sizeof nul - 1, &r),
                     -EBADMSG);
    /* Too large: no end of head within the limit. */
    char *big = xmalloc(HTTP_LITE_MAX_HEAD + 100);
    memset(big, 'a', HTTP_LITE_MAX_HEAD + 100);
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    assert_int_equal(http_lite_parse_request(big, HTTP_LITE_MAX_HEAD + 100, &r),
                     -EMSGSIZE);
    assert_int_equal(http_lite_parse_request(big, HTTP_LITE_MAX_HEAD - 1, &r),
                     0);
    free(big);
    /* A target longer than the path buffer. */
    char *longt = xasprintf("GET /%01500d HTTP/1.1\r\n\r\n", 0);
    assert_int_equal(parse(longt, &r), -EBADMSG);
    free(longt);
}

/* ---- live server ---------------------------------------------------- */

static void
handler(void *arg, const struct http_lite_request *req,
        struct http_lite_response *resp)
{
    (*(int *) arg)++;
    if (strcmp(req->method, "GET") && strcmp(req->method, "HEAD")) {
        resp->status = 405;
        resp->allow = "GET, HEAD";
        dbuf_puts(&resp->body, "no\n");
    } else if (!strcmp(req->path, "/big")) {
        for (int i = 0; i < 100000; i++) {
            dbuf_puts(&resp->body, "0123456789");
        }
    } else if (!strcmp(req->path, "/404")) {
        resp->status = 404;
        dbuf_puts(&resp->body, "not found\n");
    } else {
        dbuf_printf(&resp->body, "path=%s\n", req->path);
    }
}

static int
connect_to(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *) &a, sizeof a), 0);
    return fd;
}

static void
send_all(int fd, const char *s)
{
    size_t n = strlen(s);
    assert_int_equal(write(fd, s, n), (ssize_t) n);
}

/* Read one response: status, the body into body (may be NULL), whether
 * the server said Connection: close. -1 on EOF before a response. */
static int
read_response(int fd, struct dbuf *pending, bool head_only, struct dbuf *body,
              bool *closing)
{
    for (;;) {
        char *end = pending->data ? strstr(pending->data, "\r\n\r\n") : NULL;
        if (end) {
            size_t hl = (size_t) (end + 4 - pending->data);
            const char *cl = strcasestr(pending->data, "Content-Length: ");
            assert_non_null(cl);
            size_t blen = strtoul(cl + 16, NULL, 10);
            size_t need = hl + (head_only ? 0 : blen);
            if (pending->len >= need) {
                int status = atoi(pending->data + 9);
                if (closing) {
                    char *c = strstr(pending->data, "Connection: close");
                    *closing = c && c < end;
                }
                if (body) {
                    dbuf_append(body, pending->data + hl, need - hl);
                }
                memmove(pending->data, pending->data + need,
                        pending->len - need + 1);
                pending->len -= need;
                return status;
            }
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 5000), 1);
        char buf[65536];
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0) {
            return -1;
        }
        dbuf_append(pending, buf, (size_t) r);
    }
}

/* True when the server closed the connection (EOF within 5 s). */
static bool
at_eof(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 5000) != 1) {
        return false;
    }
    char c;
    return read(fd, &c, 1) == 0;
}

static void
test_server(void **state)
{
    int calls = 0;
    struct dpf_error err;
    dpf_error_clear(&err);
    struct dts_http *srv =
        http_lite_create("127.0.0.1", 0, handler, &calls, &err);
    assert_non_null(srv);
    uint16_t port = http_lite_port(srv);
    assert_true(port > 0);
    struct dbuf pend, body;
    dbuf_init(&pend);
    dbuf_init(&body);
    bool closing;

    /* Keep-alive: two requests, one connection; then pipelined three. */
    int fd = connect_to(port);
    send_all(fd, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_int_equal(read_response(fd, &pend, false, &body, &closing), 200);
    assert_string_equal(body.data, "path=/a\n");
    assert_false(closing);
    send_all(fd, "GET /b?q HTTP/1.1\r\n\r\nHEAD /c HTTP/1.1\r\n\r\n"
                 "DELETE /d HTTP/1.1\r\n\r\n");
    body.len = 0;
    assert_int_equal(read_response(fd, &pend, false, &body, NULL), 200);
    assert_string_equal(body.data, "path=/b\n");
    body.len = 0;
    assert_int_equal(read_response(fd, &pend, true, &body, NULL), 200);
    assert_int_equal(body.len, 0);
    assert_int_equal(read_response(fd, &pend, false, NULL, NULL), 405);
    send_all(fd, "GET /404 HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_int_equal(read_response(fd, &pend, false, NULL, &closing), 404);
    assert_true(closing);
    assert_true(at_eof(fd));
    close(fd);
    assert_int_equal(calls, 5);

    /* 405 names the allowed methods. */
    fd = connect_to(port);
    send_all(fd, "POST / HTTP/1.1\r\nConnection: close\r\n\r\n");
    char raw[1024];
    ssize_t got = 0, r;
    while ((r = read(fd, raw + got, sizeof raw - 1 - (size_t) got)) > 0) {
        got += r;
    }
    raw[got] = '\0';
    assert_true(str_has_prefix(raw, "HTTP/1.1 405 Method Not Allowed\r\n"));
    assert_non_null(strstr(raw, "\r\nAllow: GET, HEAD\r\n"));
    close(fd);
    assert_int_equal(calls, 6);

    /* A malformed request gets 400 and the connection is closed. */
    fd = connect_to(port);
    pend.len = 0;
    send_all(fd, "BLAH\r\n\r\n");
    assert_int_equal(read_response(fd, &pend, false, NULL, &closing), 400);
    assert_true(closing);
    assert_true(at_eof(fd));
    close(fd);

    /* An oversized head gets 431. */
    fd = connect_to(port);
    pend.len = 0;
    char *big = xmalloc(HTTP_LITE_MAX_HEAD + 64);
    memset(big, 'a', HTTP_LITE_MAX_HEAD + 63);
    big[HTTP_LITE_MAX_HEAD + 63] = '\0';
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    send_all(fd, big);
    free(big);
    assert_int_equal(read_response(fd, &pend, false, NULL, NULL), 431);
    assert_true(at_eof(fd));
    close(fd);

    /* The client half-closes after its request: still answered. */
    fd = connect_to(port);
    pend.len = 0;
    send_all(fd, "GET /half HTTP/1.1\r\n\r\n");
    shutdown(fd, SHUT_WR);
    body.len = 0;
    assert_int_equal(read_response(fd, &pend, false, &body, NULL), 200);
    assert_string_equal(body.data, "path=/half\n");
    assert_true(at_eof(fd));
    close(fd);

    /* A request with a body is answered, then the connection closes. */
    fd = connect_to(port);
    pend.len = 0;
    send_all(fd, "GET /x HTTP/1.1\r\nContent-Length: 4\r\n\r\nGET ");
    assert_int_equal(read_response(fd, &pend, false, NULL, &closing), 200);
    assert_true(closing);
    assert_true(at_eof(fd));
    close(fd);

    /* A 1 MB body read slowly arrives whole. */
    fd = connect_to(port);
    pend.len = 0;
    send_all(fd, "GET /big HTTP/1.1\r\n\r\n");
    usleep(200000);
    body.len = 0;
    assert_int_equal(read_response(fd, &pend, false, &body, NULL), 200);
    assert_int_equal(body.len, 1000000);
    assert_int_equal(memcmp(body.data + 999990, "0123456789", 10), 0);
    close(fd);

    /* Connection limit: a new client takes the place of the connection
     * idle for longest (so idle sockets cannot lock scrapers out); the
     * others still work. */
    int fds[HTTP_LITE_MAX_CONN];
    for (int i = 0; i < HTTP_LITE_MAX_CONN; i++) {
        fds[i] = connect_to(port);
        if (i == 0) {
            usleep(50000); /* fds[0] is the idlest by a clear margin */
        }
    }
    usleep(100000);
    fd = connect_to(port);
    pend.len = 0;
    send_all(fd, "GET /ok HTTP/1.1\r\n\r\n");
    assert_int_equal(read_response(fd, &pend, false, NULL, NULL), 200);
    close(fd);
    assert_true(at_eof(fds[0]));
    pend.len = 0;
    send_all(fds[1], "GET /ok HTTP/1.1\r\n\r\n");
    assert_int_equal(read_response(fds[1], &pend, false, NULL, NULL), 200);
    for (int i = 0; i < HTTP_LITE_MAX_CONN; i++) {
        close(fds[i]);
    }

    dbuf_free(&pend);
    dbuf_free(&body);
    http_lite_destroy(srv);
}

static void
test_bind_errors(void **state)
{
    struct dpf_error err;
    dpf_error_clear(&err);
    assert_null(
        http_lite_create("no.such.host.invalid", 0, handler, NULL, &err));
    assert_non_null(strstr(err.message, "no.such.host.invalid"));
    /* A port in use. */
    int calls = 0;
    struct dts_http *a =
        http_lite_create("127.0.0.1", 0, handler, &calls, &err);
    assert_non_null(a);
    dpf_error_clear(&err);
    assert_null(http_lite_create("127.0.0.1", http_lite_port(a), handler,
                                 &calls, &err));
    assert_non_null(strstr(err.message, "cannot listen"));
    http_lite_destroy(a);
    /* Dual stack on "::" takes IPv4 clients. */
    struct dts_http *b = http_lite_create("::", 0, handler, &calls, &err);
    assert_non_null(b);
    int fd = connect_to(http_lite_port(b));
    struct dbuf pend;
    dbuf_init(&pend);
    send_all(fd, "GET / HTTP/1.1\r\n\r\n");
    assert_int_equal(read_response(fd, &pend, false, NULL, NULL), 200);
    dbuf_free(&pend);
    close(fd);
    http_lite_destroy(b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_server),
        cmocka_unit_test(test_bind_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
