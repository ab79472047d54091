/* kube-status: see kube-status.h. */
#include "lib/kube/kube-status.h"

#include <errno.h>
#include <jansson.h>
#include <string.h>

const char *
kube_status_reason(long status)
{
    switch (status) {
    case 400:
        return "BadRequest";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "NotFound";
    case 405:
        return "MethodNotAllowed";
    case 406:
        return "NotAcceptable";
    case 409:
        return "Conflict";
    case 410:
        return "Expired";
    case 415:
        return "UnsupportedMediaType";
    case 422:
        return "Invalid";
    case 429:
        return "TooManyRequests";
    case 500:
        return "InternalError";
    case 503:
        return "ServiceUnavailable";
    case 504:
        return "Timeout";
    default:
        return "Unknown";
    }
}

const char *
kube_status_message(long status)
{
    switch (status) {
    case 401:
        return "the server has asked for the client to provide credentials";
    case 403:
        return "the server does not allow access to the requested resource";
    case 404:
        return "the server could not find the requested resource";
    case 409:
        return "the server reported a conflict";
    case 410:
        return "the server reports that the resource version is too old";
    case 422:
        return "the server rejected our request due to an error in our "
               "request";
    case 500:
        return "an error on the server has prevented the request from "
               "succeeding";
    case 503:
        return "the server is currently unable to handle the request";
    case 504:
        return "the server was unable to return a response in the time "
               "allotted";
    default:
        return "the server rejected our request for an unknown reason";
    }
}

int
kube_status_errno(long status, const char *reason)
{
    switch (status) {
    case 404:
        return -ENOENT;
    case 409:
        return reason && !strcmp(reason, "AlreadyExists") ? -EEXIST : -EBUSY;
    case 400:
    case 422:
        return -EINVAL;
    case 401:
    case 403:
        return -EACCES;
    case 410:
        return -ESTALE;
    case 429:
        return -EAGAIN;
    case 504:
        return -ETIMEDOUT;
    default:
        return -EIO;
    }
}

int
kube_status_to_error(long status, const char *body, size_t len,
                     struct dpf_error *err)
{
    if (status / 100 == 2) {
        return 0;
    }
    json_t *st = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    const char *kind = json_string_value(json_object_get(st, "kind"));
    if (!st || !kind || strcmp(kind, "Status") != 0) {
        dpf_error_set(err, (int) status, kube_status_reason(status), "%s",
                      kube_status_message(status));
        json_decref(st);
        return kube_status_errno(status, NULL);
    }
    const char *reason = json_string_value(json_object_get(st, "reason"));
    const char *msg = json_string_value(json_object_get(st, "message"));
    long code = (long) json_integer_value(json_object_get(st, "code"));
    if (code < 400 || code > 599) {
        code = status; /* a Status that names no error code */
    }
    dpf_error_set(err, (int) code,
                  reason && *reason ? reason : kube_status_reason(code), "%s",
                  msg && *msg ? msg : kube_status_message(code));
    json_t *causes = json_object_get(json_object_get(st, "details"), "causes");
    size_t i;
    json_t *cz;
    json_array_foreach(causes, i, cz)
    {
        const char *t = json_string_value(json_object_get(cz, "reason"));
        const char *f = json_string_value(json_object_get(cz, "field"));
        const char *m = json_string_value(json_object_get(cz, "message"));
        dpf_error_add_cause(err, t ? t : "", f ? f : "", "%s", m ? m : "");
    }
    int r = kube_status_errno(code, err ? err->reason : reason);
    json_decref(st);
    return r;
}
