/* http-lite: the small HTTP/1.1 server of the daemons other than the API
 * server (dts's Prometheus endpoint, every daemon's /healthz and /readyz,
 * controller metrics). The API server keeps lib/http-server
 * (libmicrohttpd), which it needs for TLS and streaming.
 *
 * Written by hand on purpose (style.md prefers libmicrohttpd, which the
 * rest of the project uses through lib/http-server): Debian's
 * libmicrohttpd is linked against GnuTLS, and loading it maps GnuTLS,
 * p11-kit, nettle, hogweed, gmp, libtasn1, libidn2, libunistring and
 * libffi into the process (~2.5 MiB resident) although dts never speaks
 * TLS. The goal puts dts at <= 0.25x node_exporter's RSS, ~5 MiB
 * in all, which is out of reach with that chain loaded. The endpoint only
 * answers GET/HEAD of a few fixed paths, so the server is small: one
 * thread, epoll, non-blocking sockets, keep-alive and pipelined requests,
 * a bounded request head, no request bodies, no TLS.
 *
 * Limits: request head <= HTTP_LITE_MAX_HEAD bytes (else 431 and close),
 * HTTP_LITE_MAX_CONN connections (at the limit a new client takes the
 * place of the connection idle for longest that is not being answered;
 * only when every connection is being answered is the new one closed), a
 * connection idle for HTTP_LITE_IDLE_MS is closed. A request that announces a body
 * (Content-Length > 0 or Transfer-Encoding) is answered and then the
 * connection is closed, so body bytes are never parsed as a request.
 *
 * Threads: the handler runs on the server's own thread, one request at a
 * time. Ownership: the server owns its connections and its thread;
 * http_lite_destroy() joins the thread before returning. */
#ifndef HTTP_LITE_H
#define HTTP_LITE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/base/error.h"
#include "lib/base/util.h"

#define HTTP_LITE_MAX_HEAD 8192  /* request line + headers, bytes */
#define HTTP_LITE_MAX_CONN 64    /* concurrent connections */
#define HTTP_LITE_IDLE_MS 120000 /* idle keep-alive connections closed */

/* One parsed request head. */
struct http_lite_request {
    char method[16]; /* "GET", "HEAD", ... */
    char path[1024]; /* request target up to '?' or '#' (not decoded) */
    int minor;       /* 1 for HTTP/1.1, 0 for HTTP/1.0 */
    bool close;      /* the client asked to close (or HTTP/1.0) */
    bool has_body;   /* Content-Length > 0 or Transfer-Encoding present */
};

/* What the handler answers. */
struct http_lite_response {
    int status;               /* HTTP status (default 200) */
    const char *content_type; /* static string (default text/plain) */
    const char *allow;        /* Allow header value or NULL */
    struct dbuf body;         /* the body; the server frees it */
};

/* Called once per request on the server thread; fills resp. */
typedef void (*http_lite_handler_fn)(void *arg,
                                     const struct http_lite_request *req,
                                     struct http_lite_response *resp);

/* Parse the request head at the start of buf[0, len). Returns its length
 * in bytes (> 0) once complete, 0 if more bytes are needed, -EBADMSG if it
 * is malformed (bad request line, header line without ':', obsolete line
 * folding, a Content-Length that is not a number, a target too long, a
 * version other than HTTP/1.x) and -EMSGSIZE when HTTP_LITE_MAX_HEAD bytes
 * hold no complete head. Empty lines before the request line are skipped.
 * Line ends may be CRLF or LF. */
ssize_t http_lite_parse_request(const char *buf, size_t len,
                                struct http_lite_request *req);

struct dts_http;

/* Bind address:port (IPv4 or IPv6 literal, "[v6]" accepted, a host name
 * is resolved; NULL/"" = all addresses, dual stack; "0.0.0.0" = IPv4
 * only), listen and start the thread. NULL with err naming the address
 * and the reason. */
struct dts_http *http_lite_create(const char *address, uint16_t port,
                                  http_lite_handler_fn handler, void *arg,
                                  struct dpf_error *err);
/* The port actually bound (useful with port 0). */
uint16_t http_lite_port(const struct dts_http *srv);
/* Stop the thread, close every connection and the socket, free. */
void http_lite_destroy(struct dts_http *srv);

#endif
