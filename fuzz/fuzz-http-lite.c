/* Fuzz target for the request parser of lib/net/http-lite: any input parses,
 * asks for more bytes or fails cleanly; a parsed head is within the input
 * and its fields are NUL-terminated and sane. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/net/http-lite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct http_lite_request req;
    ssize_t n = http_lite_parse_request((const char *) data, size, &req);
    if (n == 0 || n == -EBADMSG || n == -EMSGSIZE) {
        return 0;
    }
    if (n < 0 || (size_t) n > size || n > HTTP_LITE_MAX_HEAD) {
        abort();
    }
    if (!memchr(req.method, '\0', sizeof req.method) ||
        !memchr(req.path, '\0', sizeof req.path) || !req.method[0] ||
        (req.minor < 0 || req.minor > 9)) {
        abort();
    }
    /* Parsing is a pure function of the head's bytes. */
    struct http_lite_request again;
    if (http_lite_parse_request((const char *) data, (size_t) n, &again) != n ||
        strcmp(again.path, req.path) != 0 || again.close != req.close ||
        again.has_body != req.has_body) {
        abort();
    }
    return 0;
}
