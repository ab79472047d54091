/* kube-status: the Kubernetes Status object, in one place for both sides.
 * Servers (dpf-server's API server and its HTTP gate) build every failure
 * Status with kube_status_build()/kube_status_dump(); clients (the
 * blocking api-client and the event-loop kube-rest) decode one with
 * kube_status_to_error(). Also here: the reason Kubernetes gives an HTTP
 * code, kubectl's wording for an error that came without a Status body,
 * and the errno the project's callers branch on.
 *
 * Text: a Status quotes names, selectors and library messages that may
 * hold any bytes (a message cut by vsnprintf in the middle of a
 * character, raw bytes from a request). The builder never fails on them:
 * every string goes through kube_status_string(), which repairs text that
 * is not UTF-8, so the result is always valid JSON and never NULL.
 *
 * Errno mapping: 404 -ENOENT, 409 AlreadyExists -EEXIST, other 409 -EBUSY,
 * 400/422 -EINVAL, 401/403 -EACCES, 410 -ESTALE, 429 -EAGAIN, 504 -ETIMEDOUT, other
 * -EIO. */
#ifndef DPF_KUBE_STATUS_H
#define DPF_KUBE_STATUS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/error.h"

/* metav1.StatusDetails of a failure. Empty strings and retry_after_s <= 0
 * are left out; all zero = no details. Fixed buffers, like dpf_error, so
 * it lives on the stack. */
struct kube_status_details {
    char name[256];        /* object name */
    char group[128];       /* API group ("" = core) */
    char kind[64];         /* Kind (Invalid) or plural (NotFound, ...) */
    int64_t retry_after_s; /* retryAfterSeconds when > 0 */
};

/* Fill d's strings, each cut on a character boundary to its buffer;
 * NULL strings give "". retry_after_s is left as it is. */
void kube_status_details_set(struct kube_status_details *d, const char *name,
                             const char *group, const char *kind);
/* The failure Status for err (code, reason, message, causes as
 * StatusCause {reason, message, field}) with details d (NULL = none).
 * code 0 is 500; an empty reason is kube_status_reason(code). Never NULL;
 * new reference. */
json_t *kube_status_build(const struct dpf_error *err,
                          const struct kube_status_details *d);
/* The same Status as compact JSON text (malloc'd, caller frees; length
 * in *len unless len is NULL). Never NULL: should encoding fail anyway,
 * a fixed 500 InternalError Status. */
char *kube_status_dump(const struct dpf_error *err,
                       const struct kube_status_details *d, size_t *len);
/* A JSON string for text from anywhere: json_string(s) when s is valid
 * UTF-8, else s with its invalid bytes repaired (a character cut at the
 * end is dropped, other bad bytes become U+FFFD). NULL s gives "". Never
 * NULL; new reference. */
json_t *kube_status_string(const char *s);
/* Make err's message and causes valid UTF-8 in place (see "Text"). */
void kube_status_clean(struct dpf_error *err);

/* metav1.StatusReason for an HTTP code ("NotFound"; "Unknown"). Static. */
const char *kube_status_reason(long status);
/* kubectl's message for an HTTP error without a Status body. Static. */
const char *kube_status_message(long status);
/* The errno for an HTTP code and Status reason (may be NULL). */
int kube_status_errno(long status, const char *reason);
/* Decode a reply: 0 for 2xx; otherwise fill err from the Status body
 * (code, reason, message, causes) or, without one, from the code alone,
 * and return the errno. err's text is valid UTF-8 (kube_status_clean). */
int kube_status_to_error(long status, const char *body, size_t len,
                         struct dpf_error *err);

#endif
