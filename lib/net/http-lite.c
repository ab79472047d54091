/* http-lite: see http-lite.h. One thread runs an epoll loop over the
 * listening socket, an eventfd (stop) and the connections. A connection
 * reads until it holds a complete request head, answers it (the response
 * head and body go out with one sendmsg() where the socket allows), and
 * only reads the next request once the response is out, so a client that
 * does not read its responses cannot make the server buffer more than
 * one response for it. */
#include "lib/net/http-lite.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "lib/base/log.h"
#include "lib/base/thread.h"

LOG_MODULE(http);

/* How long a connection that got its last response is drained. */
#define HTTP_LITE_LINGER_MS 2000

/* Stack of the server thread: it renders /metrics with heap buffers, so
 * the default 8 MiB reservation is far more than it touches. */
#define HTTP_LITE_STACK_SIZE (256 * 1024)

/* ---- request parser ------------------------------------------------- */

/* tchar of RFC 9110 (method and header names). */
static bool
http_lite_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Trim optional whitespace around [*s, *e). */
static void
http_lite_trim(const char **s, const char **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t')) {
        (*s)++;
    }
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t')) {
        (*e)--;
    }
}

/* True if [s, e) equals word, ignoring case. */
static bool
http_lite_eq(const char *s, const char *e, const char *word)
{
    size_t n = strlen(word);
    return (size_t) (e - s) == n && strncasecmp(s, word, n) == 0;
}

/* True if the comma list [s, e) holds token word (Connection header). */
static bool
http_lite_list_has(const char *s, const char *e, const char *word)
{
    while (s < e) {
        const char *c = memchr(s, ',', (size_t) (e - s));
        const char *te = c ? c : e;
        const char *ts = s;
        http_lite_trim(&ts, &te);
        if (http_lite_eq(ts, te, word)) {
            return true;
        }
        s = c ? c + 1 : e;
    }
    return false;
}

/* The request line: METHOD SP target SP HTTP/1.x */
static int
http_lite_parse_line(const char *s, const char *e,
                     struct http_lite_request *req)
{
    const char *sp1 = memchr(s, ' ', (size_t) (e - s));
    if (!sp1 || sp1 == s || (size_t) (sp1 - s) >= sizeof req->method) {
        return -EBADMSG;
    }
    for (const char *c = s; c < sp1; c++) {
        if (!http_lite_tchar(*c)) {
            return -EBADMSG;
        }
    }
    memcpy(req->method, s, (size_t) (sp1 - s));
    req->method[sp1 - s] = '\0';
    const char *t = sp1 + 1;
    const char *sp2 = memchr(t, ' ', (size_t) (e - t));
    if (!sp2 || sp2 == t) {
        return -EBADMSG;
    }
    for (const char *c = t; c < sp2; c++) {
        if ((unsigned char) *c <= 0x20 || *c == 0x7f) {
            return -EBADMSG;
        }
    }
    size_t tl = strcspn(t, "?# ");
    if (t + tl > sp2) {
        tl = (size_t) (sp2 - t);
    }
    if (tl >= sizeof req->path) {
        return -EBADMSG;
    }
    memcpy(req->path, t, tl);
    req->path[tl] = '\0';
    const char *v = sp2 + 1;
    if (e - v != 8 || strncmp(v, "HTTP/1.", 7) != 0 || v[7] < '0' ||
        v[7] > '9') {
        return -EBADMSG;
    }
    req->minor = v[7] - '0';
    req->close = req->minor == 0;
    return 0;
}

/* One header line "name: value". */
static int
http_lite_parse_header(const char *s, const char *e,
                       struct http_lite_request *req, bool *keep_alive)
{
    if (*s == ' ' || *s == '\t') {
        return -EBADMSG; /* obsolete line folding */
    }
    const char *colon = memchr(s, ':', (size_t) (e - s));
    if (!colon || colon == s) {
        return -EBADMSG;
    }
    for (const char *c = s; c < colon; c++) {
        if (!http_lite_tchar(*c)) {
            return -EBADMSG;
        }
    }
    const char *vs = colon + 1, *ve = e;
    http_lite_trim(&vs, &ve);
    if (http_lite_eq(s, colon, "connection")) {
        if (http_lite_list_has(vs, ve, "close")) {
            req->close = true;
        }
        if (http_lite_list_has(vs, ve, "keep-alive")) {
            *keep_alive = true;
        }
    } else if (http_lite_eq(s, colon, "content-length")) {
        if (vs == ve) {
            return -EBADMSG;
        }
        bool nonzero = false;
        for (const char *c = vs; c < ve; c++) {
            if (*c < '0' || *c > '9') {
                return -EBADMSG;
            }
            nonzero = nonzero || *c != '0';
        }
        req->has_body = req->has_body || nonzero;
    } else if (http_lite_eq(s, colon, "transfer-encoding")) {
        req->has_body = true;
    }
    return 0;
}

ssize_t
http_lite_parse_request(const char *buf, size_t len,
                        struct http_lite_request *req)
{
    memset(req, 0, sizeof *req);
    size_t limit = DPF_MIN(len, (size_t) HTTP_LITE_MAX_HEAD);
    size_t pos = 0;
    bool seen_line = false, keep_alive = false;
    for (;;) {
        const char *nl = memchr(buf + pos, '\n', limit - pos);
        if (!nl) {
            return limit >= HTTP_LITE_MAX_HEAD ? -EMSGSIZE : 0;
        }
        const char *s = buf + pos;
        const char *e = nl;
        if (e > s && e[-1] == '\r') {
            e--;
        }
        pos = (size_t) (nl - buf) + 1;
        if (memchr(s, '\0', (size_t) (e - s)) ||
            memchr(s, '\r', (size_t) (e - s))) {
            return -EBADMSG;
        }
        if (!seen_line) {
            if (s == e) {
                continue; /* empty lines before the request line */
            }
            if (http_lite_parse_line(s, e, req) < 0) {
                return -EBADMSG;
            }
            seen_line = true;
            continue;
        }
        if (s == e) {
            if (req->minor == 0 && keep_alive) {
                req->close = false;
            }
            return (ssize_t) pos;
        }
        if (http_lite_parse_header(s, e, req, &keep_alive) < 0) {
            return -EBADMSG;
        }
    }
}

/* ---- server ------------------------------------------------------------ */

struct http_lite_conn {
    int fd;
    size_t in_len;                 /* bytes buffered in in[] */
    char head[512];                /* response head being sent */
    size_t head_len;               /* bytes in head */
    struct dbuf body;              /* response body being sent */
    size_t sent;                   /* bytes of head + body written */
    bool writing;                  /* a response is (partly) unsent */
    bool close_after;              /* close once the response is out */
    bool peer_eof;                 /* the client shut its side down */
    bool lingering;                /* answered and shut down: draining */
    int64_t last_ms;               /* last progress (idle timeout) */
    char remote[64];               /* peer address, for logs */
    struct http_lite_conn *next;   /* list of connections */
    struct http_lite_conn **pprev; /* link pointing here */
    char in[HTTP_LITE_MAX_HEAD];   /* request bytes not yet consumed */
};

struct dts_http {
    int listen_fd;
    int stop_fd; /* eventfd */
    int ep;      /* epoll */
    uint16_t port;
    pthread_t thread;
    http_lite_handler_fn handler;
    void *arg;
    unsigned n_conns;
    struct http_lite_conn *conns;
    bool listen_paused;        /* out of fds: accept retried later */
    char tag_listen, tag_stop; /* epoll data pointers */
};

static const char *
http_lite_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    default:
        return "Unknown";
    }
}

static void
http_lite_close(struct dts_http *srv, struct http_lite_conn *c)
{
    epoll_ctl(srv->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    *c->pprev = c->next;
    if (c->next) {
        c->next->pprev = c->pprev;
    }
    dbuf_free(&c->body);
    srv->n_conns--;
    free(c);
}

static void
http_lite_want(struct dts_http *srv, struct http_lite_conn *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(srv->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Frame resp as the connection's pending response. */
static void
http_lite_queue(struct http_lite_conn *c, const char *method,
                struct http_lite_response *resp)
{
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    int n = snprintf(c->head, sizeof c->head,
                     "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\n%s%s%s%s\r\n",
                     resp->status, http_lite_reason(resp->status), date,
                     resp->content_type, resp->body.len,
                     resp->allow ? "Allow: " : "",
                     resp->allow ? resp->allow : "", resp->allow ? "\r\n" : "",
                     c->close_after ? "Connection: close\r\n" : "");
    c->head_len = DPF_MIN((size_t) n, sizeof c->head - 1);
    dbuf_free(&c->body);
    if (strcmp(method, "HEAD") != 0) {
        c->body = resp->body; /* takes the buffer */
    } else {
        dbuf_free(&resp->body);
    }
    dbuf_init(&resp->body);
    c->sent = 0;
    c->writing = true;
}

/* Answer a request the parser rejected, then close. */
static void
http_lite_queue_error(struct http_lite_conn *c, int status, const char *text)
{
    struct http_lite_response resp = {.status = status,
                                      .content_type = "text/plain"};
    dbuf_init(&resp.body);
    dbuf_puts(&resp.body, text);
    c->close_after = true;
    c->in_len = 0;
    http_lite_queue(c, "GET", &resp);
}

/* Parse and answer the next buffered request, if complete. */
static bool
http_lite_next(struct dts_http *srv, struct http_lite_conn *c)
{
    if (c->writing || c->close_after) {
        return false;
    }
    struct http_lite_request req;
    ssize_t n = http_lite_parse_request(c->in, c->in_len, &req);
    if (n == 0) {
        return false;
    }
    if (n < 0) {
        log_debug("bad request", "remote=%s error=\"%s\"", c->remote,
                  n == -EMSGSIZE ? "request head too large" : "malformed");
        if (n == -EMSGSIZE) {
            http_lite_queue_error(c, 431, "request head too large\n");
        } else {
            http_lite_queue_error(c, 400, "bad request\n");
        }
        return true;
    }
    memmove(c->in, c->in + n, c->in_len - (size_t) n);
    c->in_len -= (size_t) n;
    c->close_after = req.close || req.has_body;
    int64_t t0 = time_mono_ns();
    struct http_lite_response resp = {.status = 200,
                                      .content_type = "text/plain"};
    dbuf_init(&resp.body);
    srv->handler(srv->arg, &req, &resp);
    int status = resp.status;
    http_lite_queue(c, req.method, &resp);
    log_debug("request", "method=%s path=\"%s\" status=%d us=%lld remote=%s",
              req.method, req.path, status,
              (long long) ((time_mono_ns() - t0) / 1000), c->remote);
    return true;
}

/* Write what is pending; on completion go on with buffered requests.
 * Returns false when the connection was closed. */
static bool
http_lite_flush(struct dts_http *srv, struct http_lite_conn *c)
{
    while (c->writing) {
        struct iovec iov[2];
        int n = 0;
        if (c->sent < c->head_len) {
            iov[n++] = (struct iovec){c->head + c->sent, c->head_len - c->sent};
        }
        size_t boff = c->sent > c->head_len ? c->sent - c->head_len : 0;
        if (boff < c->body.len) {
            iov[n++] = (struct iovec){c->body.data + boff, c->body.len - boff};
        }
        if (n > 0) {
            struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t) n};
            ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
            if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                http_lite_want(srv, c, EPOLLOUT);
                return true;
            }
            if (w < 0 && errno == EINTR) {
                continue;
            }
            if (w < 0) {
                http_lite_close(srv, c);
                return false;
            }
            c->sent += (size_t) w;
            c->last_ms = time_mono_ms();
            if (c->sent < c->head_len + c->body.len) {
                continue;
            }
        }
        /* Response complete. */
        c->writing = false;
        dbuf_free(&c->body);
        if (c->close_after && c->peer_eof) {
            http_lite_close(srv, c);
            return false;
        }
        if (c->close_after) {
            /* Lingering close: send FIN and drain what the client still
             * sends (a body, the rest of an oversized head) for a while.
             * Closing with unread input would reset the connection, and
             * the client could lose the response it has not read yet. */
            shutdown(c->fd, SHUT_WR);
            c->lingering = true;
            c->in_len = 0;
            c->last_ms = time_mono_ms();
            http_lite_want(srv, c, EPOLLIN);
            return true;
        }
        http_lite_next(srv, c); /* a pipelined request may be waiting */
    }
    if (c->peer_eof) {
        http_lite_close(srv, c);
        return false;
    }
    http_lite_want(srv, c, EPOLLIN);
    return true;
}

static void
http_lite_on_readable(struct dts_http *srv, struct http_lite_conn *c)
{
    if (c->lingering) {
        for (;;) {
            ssize_t r = read(c->fd, c->in, sizeof c->in);
            if (r > 0) {
                continue;
            }
            if (r < 0 && errno == EINTR) {
                continue;
            }
            if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
                http_lite_close(srv, c);
            }
            return;
        }
    }
    while (c->in_len < sizeof c->in) {
        ssize_t r = read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len);
        if (r > 0) {
            c->in_len += (size_t) r;
            c->last_ms = time_mono_ms();
            continue;
        }
        if (r == 0) {
            c->peer_eof = true;
        } else if (errno == EINTR) {
            continue;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            http_lite_close(srv, c);
            return;
        }
        break;
    }
    http_lite_next(srv, c);
    http_lite_flush(srv, c);
}

/* At the connection limit, make room for a new client by closing the
 * connection that has made no progress for the longest time and is not
 * sending a response (an idle keep-alive or a half-sent request head):
 * otherwise a few hundred idle sockets would lock every scraper out. The
 * list is at most HTTP_LITE_MAX_CONN long. False if none qualifies. */
static bool
http_lite_evict(struct dts_http *srv)
{
    struct http_lite_conn *oldest = NULL;
    for (struct http_lite_conn *c = srv->conns; c; c = c->next) {
        if (!c->writing && (!oldest || c->last_ms < oldest->last_ms)) {
            oldest = c;
        }
    }
    if (!oldest) {
        return false;
    }
    log_debug("connection limit: closing the longest idle one", "remote=%s",
              oldest->remote);
    http_lite_close(srv, oldest);
    return true;
}

static void
http_lite_accept(struct dts_http *srv)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(srv->listen_fd, (struct sockaddr *) &ss, &sl,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                /* Out of fds (or memory): the listening socket stays
                 * readable, so stop polling it until the next sweep
                 * instead of spinning. */
                log_warn_rl("accept failed", "error=\"%s\"", strerror(errno));
                epoll_ctl(srv->ep, EPOLL_CTL_DEL, srv->listen_fd, NULL);
                srv->listen_paused = true;
            }
            return;
        }
        if (srv->n_conns >= HTTP_LITE_MAX_CONN && !http_lite_evict(srv)) {
            log_warn_rl("too many connections; closing a new one", "limit=%d",
                        HTTP_LITE_MAX_CONN);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct http_lite_conn *c = xmalloc(sizeof *c);
        memset(c, 0, offsetof(struct http_lite_conn, in));
        c->fd = fd;
        c->last_ms = time_mono_ms();
        char host[INET6_ADDRSTRLEN] = "?";
        uint16_t port = 0;
        if (ss.ss_family == AF_INET) {
            const struct sockaddr_in *a = (const struct sockaddr_in *) &ss;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            const struct sockaddr_in6 *a = (const struct sockaddr_in6 *) &ss;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
            port = ntohs(a->sin6_port);
        }
        snprintf(c->remote, sizeof c->remote, "%s:%u", host, port);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(srv->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
            continue;
        }
        c->next = srv->conns;
        c->pprev = &srv->conns;
        if (srv->conns) {
            srv->conns->pprev = &c->next;
        }
        srv->conns = c;
        srv->n_conns++;
    }
}

static void *
http_lite_thread(void *arg)
{
    struct dts_http *srv = arg;
    int64_t last_sweep = time_mono_ms();
    for (;;) {
        struct epoll_event evs[32];
        /* Wake up once a second only while there is something to time
         * out or retry. */
        int timeout = srv->conns || srv->listen_paused ? 1000 : -1;
        int n = epoll_wait(srv->ep, evs, (int) ARRAY_SIZE(evs), timeout);
        if (n < 0 && errno != EINTR) {
            log_error("epoll_wait failed", "error=\"%s\"", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &srv->tag_stop) {
                return NULL;
            }
            if (p == &srv->tag_listen) {
                http_lite_accept(srv);
                continue;
            }
            struct http_lite_conn *c = p;
            uint32_t e = evs[i].events;
            if (e & EPOLLOUT) {
                http_lite_flush(srv, c);
            } else if (e & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                http_lite_on_readable(srv, c);
            }
        }
        int64_t now = time_mono_ms();
        if (now - last_sweep >= 1000) {
            last_sweep = now;
            if (srv->listen_paused) {
                struct epoll_event el = {.events = EPOLLIN,
                                         .data.ptr = &srv->tag_listen};
                srv->listen_paused =
                    epoll_ctl(srv->ep, EPOLL_CTL_ADD, srv->listen_fd, &el) < 0;
            }
            for (struct http_lite_conn *c = srv->conns, *next; c; c = next) {
                next = c->next;
                if (now - c->last_ms >
                    (c->lingering ? HTTP_LITE_LINGER_MS : HTTP_LITE_IDLE_MS)) {
                    http_lite_close(srv, c);
                }
            }
        }
    }
    return NULL;
}

/* Resolve address into ss (see http_lite_create for the forms). */
static int
http_lite_address(const char *address, uint16_t port,
                  struct sockaddr_storage *ss, socklen_t *sl)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in = (struct sockaddr_in *) ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) ss;
    if (!address || !*address || !strcmp(address, "::")) {
        in6->sin6_family = AF_INET6;
        in6->sin6_addr = in6addr_any;
        in6->sin6_port = htons(port);
        *sl = sizeof *in6;
        return 0;
    }
    if (inet_pton(AF_INET, address, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(port);
        *sl = sizeof *in;
        return 0;
    }
    char buf[INET6_ADDRSTRLEN];
    const char *a = address;
    size_t len = strlen(a);
    if (len > 2 && a[0] == '[' && a[len - 1] == ']' && len - 2 < sizeof buf) {
        memcpy(buf, a + 1, len - 2);
        buf[len - 2] = '\0';
        a = buf;
    }
    if (inet_pton(AF_INET6, a, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        *sl = sizeof *in6;
        return 0;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(address, NULL, &hints, &res);
    if (rc != 0 || !res || res->ai_addrlen > sizeof *ss) {
        if (res) {
            freeaddrinfo(res);
        }
        return -ENOENT;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *sl = res->ai_addrlen;
    freeaddrinfo(res);
    if (ss->ss_family == AF_INET) {
        in->sin_port = htons(port);
    } else {
        in6->sin6_port = htons(port);
    }
    return 0;
}

static int
http_lite_listen(const char *address, uint16_t port, struct dpf_error *err)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    const char *shown = address && *address ? address : "::";
    if (http_lite_address(address, port, &ss, &sl) < 0) {
        dpf_error_set(err, 400, "BadRequest",
                      "prometheus: cannot resolve listen address \"%s\"",
                      shown);
        return -1;
    }
    bool any6 = !address || !*address || !strcmp(address, "::");
    int fd =
        socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 && any6) {
        /* No IPv6 here: all IPv4 addresses instead. */
        http_lite_address("0.0.0.0", port, &ss, &sl);
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    if (fd < 0) {
        dpf_error_set(err, 500, "InternalError", "prometheus: socket: %s",
                      strerror(errno));
        return -1;
    }
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss.ss_family == AF_INET6) {
        /* Dual stack for "::"; a specific v6 address is v6 anyway. */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    }
    if (bind(fd, (struct sockaddr *) &ss, sl) < 0 || listen(fd, 128) < 0) {
        dpf_error_set(err, 500, "InternalError",
                      "prometheus: cannot listen on %s port %u: %s", shown,
                      port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

struct dts_http *
http_lite_create(const char *address, uint16_t port,
                 http_lite_handler_fn handler, void *arg, struct dpf_error *err)
{
    int lfd = http_lite_listen(address, port, err);
    if (lfd < 0) {
        return NULL;
    }
    struct dts_http *srv = xcalloc(1, sizeof *srv);
    srv->listen_fd = lfd;
    srv->handler = handler;
    srv->arg = arg;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(lfd, (struct sockaddr *) &ss, &sl) == 0) {
        srv->port = ntohs(ss.ss_family == AF_INET
                              ? ((struct sockaddr_in *) &ss)->sin_port
                              : ((struct sockaddr_in6 *) &ss)->sin6_port);
    }
    srv->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    srv->ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event el = {.events = EPOLLIN, .data.ptr = &srv->tag_listen};
    struct epoll_event es = {.events = EPOLLIN, .data.ptr = &srv->tag_stop};
    int rc = -1;
    if (srv->stop_fd >= 0 && srv->ep >= 0 &&
        epoll_ctl(srv->ep, EPOLL_CTL_ADD, lfd, &el) == 0 &&
        epoll_ctl(srv->ep, EPOLL_CTL_ADD, srv->stop_fd, &es) == 0) {
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, HTTP_LITE_STACK_SIZE);
        rc = thread_start(&srv->thread, &attr, "http", http_lite_thread, srv);
        pthread_attr_destroy(&attr);
    }
    if (rc != 0) {
        dpf_error_set(err, 500, "InternalError",
                      "http server: cannot start its thread");
        if (srv->ep >= 0) {
            close(srv->ep);
        }
        if (srv->stop_fd >= 0) {
            close(srv->stop_fd);
        }
        close(lfd);
        free(srv);
        return NULL;
    }
    return srv;
}

uint16_t
http_lite_port(const struct dts_http *srv)
{
    return srv->port;
}

void
http_lite_destroy(struct dts_http *srv)
{
    if (!srv) {
        return;
    }
    uint64_t one = 1;
    ssize_t w = write(srv->stop_fd, &one, sizeof one);
    (void) w;
    pthread_join(srv->thread, NULL);
    while (srv->conns) {
        http_lite_close(srv, srv->conns);
    }
    close(srv->listen_fd);
    close(srv->stop_fd);
    close(srv->ep);
    free(srv);
}
