/* Unit tests for lib/stream-server: a line protocol over TCP and Unix
 * sockets (partial lines stay buffered, replies are written back), slot
 * exhaustion, peer close with bytes in flight, bad input counted, the
 * reply bound, and stop with connections still open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/net/stream-server.h"
#include "lib/base/util.h"

/* Test protocol: newline-terminated lines. "quit" closes quietly, "bad"
 * is a protocol error, "two" writes twice, anything else is answered
 * "ok:<line>\n"; "hold" blocks the server thread until the test releases
 * it. Callbacks run on the server thread, so they count
 * instead of asserting. */
struct proto {
    int opens;     /* on_open calls (atomic) */
    int closes;    /* on_close calls (atomic) */
    int lines;     /* lines seen (atomic) */
    int nobufs;    /* stream_conn_write -ENOBUFS results (atomic) */
    int holding;   /* on_data is waiting for release (atomic) */
    int release;   /* set by the test to end the wait (atomic) */
    int tails;     /* connections holding a partial line of >= 9 bytes
                      (atomic): the server has read all of "half a li" */
    char last[64]; /* last line seen (server thread only) */
};

static int
get(const int *v)
{
    return __atomic_load_n(v, __ATOMIC_SEQ_CST);
}

static void
inc(int *v)
{
    __atomic_add_fetch(v, 1, __ATOMIC_SEQ_CST);
}

static void *
p_open(void *aux, struct stream_conn *c)
{
    (void) c;
    inc(&((struct proto *) aux)->opens);
    return xcalloc(1, 16); /* freed in on_close: ASan checks it */
}

static long
p_data(void *aux, struct stream_conn *c, void *user, const uint8_t *data,
       size_t len)
{
    struct proto *p = aux;
    if (!user) {
        return STREAM_SERVER_ERROR; /* on_open's pointer must come back */
    }
    size_t off = 0;
    for (;;) {
        const uint8_t *nl = memchr(data + off, '\n', len - off);
        if (!nl) {
            bool *counted = user;
            if (len - off >= 9 && !*counted) {
                *counted = true;
                inc(&p->tails);
            }
            return (long) off;
        }
        size_t n = (size_t) (nl - (data + off));
        snprintf(p->last, sizeof p->last, "%.*s", (int) n,
                 (const char *) data + off);
        off += n + 1;
        inc(&p->lines);
        if (strcmp(p->last, "quit") == 0) {
            return STREAM_SERVER_CLOSE;
        }
        if (strcmp(p->last, "bad") == 0) {
            return STREAM_SERVER_ERROR;
        }
        if (strcmp(p->last, "hold") == 0) {
            inc(&p->holding);
            for (int i = 0; i < 500 && !get(&p->release); i++) {
                poll(NULL, 0, 10);
            }
            continue;
        }
        if (strcmp(p->last, "two") == 0) {
            stream_conn_write(c, "0123456789", 10);
            if (stream_conn_write(c, "x", 1) == -ENOBUFS) {
                inc(&p->nobufs);
            }
            continue;
        }
        char out[80];
        int w = snprintf(out, sizeof out, "ok:%s\n", p->last);
        stream_conn_write(c, out, (size_t) w);
    }
}

static void
p_close(void *aux, struct stream_conn *c, void *user)
{
    (void) c;
    free(user);
    inc(&((struct proto *) aux)->closes);
}

static const struct stream_server_ops p_ops = {
    .on_open = p_open,
    .on_data = p_data,
    .on_close = p_close,
};

/* Wait (bounded) until *v reaches want. */
static void
wait_int(const int *v, int want)
{
    for (int i = 0; i < 500 && get(v) < want; i++) {
        poll(NULL, 0, 10);
    }
    assert_int_equal(get(v), want);
}

/* Wait (bounded) until a stats field reaches want. */
static struct stream_server_stats
wait_stat(struct stream_server *s, size_t field_off, uint64_t want)
{
    struct stream_server_stats st;
    for (int i = 0; i < 500; i++) {
        stream_server_get_stats(s, &st);
        if (*(uint64_t *) ((char *) &st + field_off) == want) {
            break;
        }
        poll(NULL, 0, 10);
    }
    assert_int_equal(*(uint64_t *) ((char *) &st + field_off), want);
    return st;
}

#define WAIT_STAT(s, f, v) \
    wait_stat((s), offsetof(struct stream_server_stats, f), (v))

/* A listening TCP socket on 127.0.0.1, any port. */
static int
tcp_listener(struct sockaddr_in *sin)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    *sin = (struct sockaddr_in){.sin_family = AF_INET,
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *) sin, sizeof *sin), 0);
    socklen_t sl = sizeof *sin;
    assert_int_equal(getsockname(fd, (struct sockaddr *) sin, &sl), 0);
    assert_int_equal(listen(fd, 16), 0);
    return fd;
}

static int
tcp_connect(const struct sockaddr_in *sin)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(fd, (const struct sockaddr *) sin, sizeof *sin),
                     0);
    return fd;
}

static struct stream_server *
start(int lfd, unsigned max_clients, size_t write_max, struct proto *p)
{
    struct stream_server_config cfg = {
        .listen_fd = lfd,
        .max_clients = max_clients,
        .read_size = 4, /* tiny reads: lines arrive in pieces */
        .write_max = write_max,
        .ops = &p_ops,
        .aux = p,
    };
    struct dpf_error err = {0};
    struct stream_server *s = stream_server_start(&cfg, "test", &err);
    assert_non_null(s);
    return s;
}

static void
send_all(int fd, const char *s)
{
    assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t) strlen(s));
}

/* Read exactly want bytes (bounded wait) and compare. */
static void
expect_reply(int fd, const char *want)
{
    char buf[256] = {0};
    size_t got = 0;
    size_t n = strlen(want);
    while (got < n) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 5000), 1);
        ssize_t r = recv(fd, buf + got, n - got, 0);
        assert_true(r > 0);
        got += (size_t) r;
    }
    assert_string_equal(buf, want);
}

/* The server closed fd: recv sees EOF (bounded wait). */
static void
expect_eof(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 5000), 1);
    char ch;
    assert_int_equal(recv(fd, &ch, 1, 0), 0);
}

static void
test_tcp_echo(void **state)
{
    (void) state;
    struct proto p = {0};
    struct sockaddr_in sin;
    struct stream_server *s = start(tcp_listener(&sin), 4, 0, &p);
    int c = tcp_connect(&sin);
    send_all(c, "hello\nwor");
    expect_reply(c, "ok:hello\n");
    send_all(c, "ld\n");
    expect_reply(c, "ok:world\n");
    struct stream_server_stats st = WAIT_STAT(s, connections, 1);
    assert_int_equal(st.clients, 1);
    send_all(c, "quit\n");
    expect_eof(c);
    wait_int(&p.closes, 1);
    st = WAIT_STAT(s, clients, 0);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.rejected, 0);
    close(c);
    stream_server_stop(s);
    assert_int_equal(get(&p.opens), 1);
    assert_int_equal(get(&p.closes), 1);
}

static void
test_unix_echo(void **state)
{
    (void) state;
    char dir[] = "/tmp/test-stream-server-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s/s.sock", dir);
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(bind(lfd, (struct sockaddr *) &sun, sizeof sun), 0);
    assert_int_equal(listen(lfd, 16), 0);
    struct proto p = {0};
    struct stream_server *s = start(lfd, 0, 0, &p);
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(c, (struct sockaddr *) &sun, sizeof sun), 0);
    send_all(c, "a\nbb\nccc\n");
    expect_reply(c, "ok:a\nok:bb\nok:ccc\n");
    close(c);
    stream_server_stop(s);
    unlink(sun.sun_path);
    rmdir(dir);
    assert_int_equal(get(&p.closes), 1);
}

static void
test_slots_exhausted(void **state)
{
    (void) state;
    struct proto p = {0};
    struct sockaddr_in sin;
    struct stream_server *s = start(tcp_listener(&sin), 2, 0, &p);
    int a = tcp_connect(&sin);
    int b = tcp_connect(&sin);
    WAIT_STAT(s, connections, 2);
    int c = tcp_connect(&sin);
    expect_eof(c); /* no slot: closed at once */
    struct stream_server_stats st = WAIT_STAT(s, rejected, 1);
    assert_int_equal(st.connections, 2);
    assert_int_equal(st.clients, 2);
    assert_int_equal(st.errors, 0);
    /* the two admitted connections still work */
    send_all(b, "x\n");
    expect_reply(b, "ok:x\n");
    /* a freed slot is reused */
    close(a);
    wait_int(&p.closes, 1);
    int d = tcp_connect(&sin);
    send_all(d, "y\n");
    expect_reply(d, "ok:y\n");
    close(b);
    close(c);
    close(d);
    stream_server_stop(s);
    assert_int_equal(get(&p.opens), 3);
    assert_int_equal(get(&p.closes), 3);
}

/* With evict_idle_ms, a new connection at the slot limit replaces the one
 * silent longest; one that just sent keeps its slot. */
static void
test_idle_evicted_for_new_client(void **state)
{
    (void) state;
    struct proto p = {0};
    struct sockaddr_in sin;
    struct stream_server_config cfg = {
        .listen_fd = tcp_listener(&sin),
        .max_clients = 2,
        .evict_idle_ms = 2000,
        .ops = &p_ops,
        .aux = &p,
    };
    struct dpf_error err = {0};
    struct stream_server *s = stream_server_start(&cfg, "test", &err);
    assert_non_null(s);
    int a = tcp_connect(&sin);
    WAIT_STAT(s, connections, 1);
    int b = tcp_connect(&sin);
    WAIT_STAT(s, connections, 2);
    /* both too recent: a third one is refused */
    int c = tcp_connect(&sin);
    expect_eof(c);
    struct stream_server_stats st = WAIT_STAT(s, rejected, 1);
    assert_int_equal(st.evicted, 0);
    usleep(2500 * 1000);
    send_all(b, "x\n"); /* b is active again; a stays silent */
    expect_reply(b, "ok:x\n");
    int d = tcp_connect(&sin);
    expect_eof(a); /* the silent one made room */
    send_all(d, "y\n");
    expect_reply(d, "ok:y\n");
    st = WAIT_STAT(s, evicted, 1);
    assert_int_equal(st.rejected, 1);
    assert_int_equal(st.clients, 2);
    send_all(b, "z\n");
    expect_reply(b, "ok:z\n");
    close(a);
    close(b);
    close(c);
    close(d);
    stream_server_stop(s);
    assert_int_equal(get(&p.opens), 3);
    assert_int_equal(get(&p.closes), 3);
}

static void
test_peer_close_delivers(void **state)
{
    (void) state;
    struct proto p = {0};
    struct sockaddr_in sin;
    struct stream_server *s = start(tcp_listener(&sin), 4, 0, &p);
    int c = tcp_connect(&sin);
    int hold = tcp_connect(&sin);
    send_all(hold, "hold\n"); /* the server thread waits in on_data */
    wait_int(&p.holding, 1);
    send_all(c, "first\nlast\nparts"); /* 4 full reads, then EOF */
    close(c);
    __atomic_store_n(&p.release, 1, __ATOMIC_SEQ_CST);
    wait_int(&p.closes, 1);
    assert_int_equal(get(&p.lines), 3); /* hold, first, last */
    assert_string_equal(p.last, "last");
    struct stream_server_stats st = WAIT_STAT(s, clients, 1);
    assert_int_equal(st.errors, 0);
    close(hold);
    stream_server_stop(s);
}

static void
test_bad_input_counted(void **state)
{
    (void) state;
    struct proto p = {0};
    struct sockaddr_in sin;
    struct stream_server *s = start(tcp_listener(&sin), 4, 0, &p);
    int good = tcp_connect(&sin);
    int bad = tcp_connect(&sin);
    send_all(bad, "bad\n");
    expect_eof(bad);
    struct stream_server_stats st = WAIT_STAT(s, errors, 1);
    assert_int_equal(st.connections, 2);
    send_all(good, "still\n"); /* the others keep being served */
    expect_reply(good, "ok:still\n");
    close(good);
    close(bad);
    stream_server_stop(s);
    assert_int_equal(get(&p.closes), 2);
}

static void
test_write_bound(void **state)
{
    (void) state;
    struct proto p = {0};
    struct sockaddr_in sin;
    struct stream_server *s = start(tcp_listener(&sin), 4, 4, &p);
    int c = tcp_connect(&sin);
    send_all(c, "two\n");
    expect_reply(c, "0123456789"); /* the second write was refused */
    assert_int_equal(get(&p.nobufs), 1);
    send_all(c, "ok\n"); /* flushed, so writing works again */
    expect_reply(c, "ok:ok\n");
    close(c);
    stream_server_stop(s);
}

static void
test_stop_with_open_connections(void **state)
{
    (void) state;
    struct proto p = {0};
    struct sockaddr_in sin;
    struct stream_server *s = start(tcp_listener(&sin), 8, 0, &p);
    int c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = tcp_connect(&sin);
        send_all(c[i], "half a li"); /* stays buffered */
    }
    WAIT_STAT(s, connections, 3);
    wait_int(&p.opens, 3);
    /* every byte read by the server: a socket closed with unread input
     * sends a reset, not the end of stream this test expects */
    wait_int(&p.tails, 3);
    stream_server_stop(s);
    assert_int_equal(get(&p.closes), 3); /* on_close for each, then freed */
    for (int i = 0; i < 3; i++) {
        expect_eof(c[i]);
        close(c[i]);
    }
    stream_server_stop(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp_echo),
        cmocka_unit_test(test_unix_echo),
        cmocka_unit_test(test_slots_exhausted),
        cmocka_unit_test(test_idle_evicted_for_new_client),
        cmocka_unit_test(test_peer_close_delivers),
        cmocka_unit_test(test_bad_input_counted),
        cmocka_unit_test(test_write_bound),
        cmocka_unit_test(test_stop_with_open_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
