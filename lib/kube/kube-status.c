/* kube-status: see kube-status.h. */
#include "lib/kube/kube-status.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"

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
    kube_status_clean(err);
    json_decref(st);
    return r;
}

/* ------------------------------------------------------------------ */
/* the builder */

json_t *
kube_status_string(const char *s)
{
    if (!s) {
        return json_string("");
    }
    json_t *j = json_string(s);
    if (j) {
        return j;
    }
    size_t n;
    char *fixed = utf8_sanitize(s, strlen(s), &n);
    j = json_stringn(fixed, n);
    free(fixed);
    return j ? j : json_string("");
}

/* Make a fixed-size text buffer valid UTF-8 in place: libraries fill
 * their messages with vsnprintf, which may cut the last character. */
static void
kube_status_clean_text(char *buf, size_t size)
{
    size_t len = strlen(buf);
    if (utf8_valid(buf, len)) {
        return;
    }
    char *clean = utf8_sanitize(buf, len, NULL);
    utf8_copy(buf, size, clean);
    free(clean);
}

void
kube_status_clean(struct dpf_error *err)
{
    if (!err) {
        return;
    }
    kube_status_clean_text(err->reason, sizeof(err->reason));
    kube_status_clean_text(err->message, sizeof(err->message));
    for (size_t i = 0; i < err->n_causes; i++) {
        struct dpf_cause *c = &err->causes[i];
        kube_status_clean_text(c->type, sizeof(c->type));
        kube_status_clean_text(c->field, sizeof(c->field));
        kube_status_clean_text(c->message, sizeof(c->message));
    }
}

void
kube_status_details_set(struct kube_status_details *d, const char *name,
                        const char *group, const char *kind)
{
    utf8_copy(d->name, sizeof(d->name), name ? name : "");
    utf8_copy(d->group, sizeof(d->group), group ? group : "");
    utf8_copy(d->kind, sizeof(d->kind), kind ? kind : "");
}

static json_t *
kube_status_details_json(const struct dpf_error *err,
                         const struct kube_status_details *d)
{
    json_t *det = json_object();
    if (d && d->name[0]) {
        json_object_set_new(det, "name", kube_status_string(d->name));
    }
    if (d && d->group[0]) {
        json_object_set_new(det, "group", kube_status_string(d->group));
    }
    if (d && d->kind[0]) {
        json_object_set_new(det, "kind", kube_status_string(d->kind));
    }
    if (err->n_causes) {
        json_t *causes = json_array();
        for (size_t i = 0; i < err->n_causes; i++) {
            const struct dpf_cause *c = &err->causes[i];
            json_t *jc = json_object();
            json_object_set_new(jc, "reason", kube_status_string(c->type));
            json_object_set_new(jc, "message", kube_status_string(c->message));
            json_object_set_new(jc, "field", kube_status_string(c->field));
            json_array_append_new(causes, jc);
        }
        json_object_set_new(det, "causes", causes);
    }
    if (d && d->retry_after_s > 0) {
        json_object_set_new(det, "retryAfterSeconds",
                            json_integer(d->retry_after_s));
    }
    if (!json_object_size(det)) {
        json_decref(det);
        return NULL;
    }
    return det;
}

json_t *
kube_status_build(const struct dpf_error *err,
                  const struct kube_status_details *d)
{
    int code = err->code ? err->code : 500;
    json_t *st = json_object();
    json_object_set_new(st, "kind", json_string("Status"));
    json_object_set_new(st, "apiVersion", json_string("v1"));
    json_object_set_new(st, "metadata", json_object());
    json_object_set_new(st, "status", json_string("Failure"));
    json_object_set_new(st, "message", kube_status_string(err->message));
    json_object_set_new(st, "reason",
                        kube_status_string(err->reason[0]
                                               ? err->reason
                                               : kube_status_reason(code)));
    json_object_set_new(st, "code", json_integer(code));
    json_t *det = kube_status_details_json(err, d);
    if (det) {
        json_object_set_new(st, "details", det);
    }
    return st;
}

/* Last resort when a Status cannot be encoded (cannot happen with the
 * builder above; kept so that no answer is ever empty or a crash). */
static const char kube_status_unencodable[] =
    "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},"
    "\"status\":\"Failure\",\"message\":\"the response could not be "
    "encoded\",\"reason\":\"InternalError\",\"code\":500}";

char *
kube_status_dump(const struct dpf_error *err,
                 const struct kube_status_details *d, size_t *len)
{
    json_t *st = kube_status_build(err, d);
    char *text = json_dumps(st, JSON_COMPACT);
    json_decref(st);
    if (!text) {
        text = xstrdup(kube_status_unencodable);
    }
    if (len) {
        *len = strlen(text);
    }
    return text;
}
