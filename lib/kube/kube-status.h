/* kube-status: the Kubernetes Status object on the client side, in one
 * place for every client (the blocking api-client and the event-loop
 * kube-rest): the reason Kubernetes gives an HTTP code, kubectl's wording
 * for an error that came without a Status body, and the errno the
 * project's callers branch on.
 *
 * Errno mapping: 404 -ENOENT, 409 AlreadyExists -EEXIST, other 409 -EBUSY,
 * 400/422 -EINVAL, 401/403 -EACCES, 410 -ESTALE, 429 -EAGAIN, 504 -ETIMEDOUT, other
 * -EIO. */
#ifndef DPF_KUBE_STATUS_H
#define DPF_KUBE_STATUS_H

#include <stddef.h>

#include "lib/base/error.h"

/* metav1.StatusReason for an HTTP code ("NotFound"; "Unknown"). Static. */
const char *kube_status_reason(long status);
/* kubectl's message for an HTTP error without a Status body. Static. */
const char *kube_status_message(long status);
/* The errno for an HTTP code and Status reason (may be NULL). */
int kube_status_errno(long status, const char *reason);
/* Decode a reply: 0 for 2xx; otherwise fill err from the Status body
 * (code, reason, message, causes) or, without one, from the code alone,
 * and return the errno. */
int kube_status_to_error(long status, const char *body, size_t len,
                         struct dpf_error *err);

#endif
