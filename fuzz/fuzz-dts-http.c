/* Fuzz target for the request parser of dts/dts-http: any input parses,
 * asks for more bytes or fails cleanly; a parsed head is within the input
 * and its fields are NUL-terminated and sane. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dts/dts-http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dts_http_request req;
    ssize_t n = dts_http_parse_request((const char *) data, size, &req);
    if (n == 0 || n == -EBADMSG || n == -EMSGSIZE) {
        return 0;
    }
    if (n < 0 || (size_t) n > size || n > DTS_HTTP_MAX_HEAD) {
        abort();
    }
    if (!memchr(req.method, '\0', sizeof req.method) ||
        !memchr(req.path, '\0', sizeof req.path) || !req.method[0] ||
        (req.minor < 0 || req.minor > 9)) {
        abort();
    }
    /* Parsing is a pure function of the head's bytes. */
    struct dts_http_request again;
    if (dts_http_parse_request((const char *) data, (size_t) n, &again) != n ||
        strcmp(again.path, req.path) != 0 || again.close != req.close ||
        again.has_body != req.has_body) {
        abort();
    }
    return 0;
}
