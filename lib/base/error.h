/* error: the user-facing error record filled at API and config boundaries.
 *
 * Library functions return 0 or a negative errno; where a user must act on
 * the failure (bad object, bad config line, unreachable peer) they also fill
 * a struct dpf_error that names the object, the field and what was expected.
 * The record maps one-to-one onto a Kubernetes Status object: code is the
 * HTTP status, reason the Status reason ("Invalid", "NotFound", ...), and
 * each cause a StatusCause (type, field path, message).
 *
 * The struct is self-contained (fixed buffers, no heap), so callers put it
 * on the stack and never free it. */
#ifndef DPF_ERROR_H
#define DPF_ERROR_H

#include <stdbool.h>
#include <stddef.h>

#define DPF_ERROR_MAX_CAUSES 32

/* StatusCause type strings (k8s.io/apimachinery CauseType values). */
#define DPF_CAUSE_REQUIRED "FieldValueRequired"
#define DPF_CAUSE_INVALID "FieldValueInvalid"
#define DPF_CAUSE_NOT_SUPPORTED "FieldValueNotSupported"
#define DPF_CAUSE_DUPLICATE "FieldValueDuplicate"
#define DPF_CAUSE_TOO_LONG "FieldValueTooLong"
#define DPF_CAUSE_TOO_MANY "FieldValueTooMany"
#define DPF_CAUSE_FORBIDDEN "FieldValueForbidden"
#define DPF_CAUSE_NOT_FOUND "FieldValueNotFound"
#define DPF_CAUSE_TYPE "FieldValueTypeInvalid"
#define DPF_CAUSE_UNKNOWN_FIELD "FieldValueUnknown"

/* One StatusCause. */
struct dpf_cause {
    char type[32];     /* DPF_CAUSE_* */
    char field[256];   /* JSON path, e.g. "spec.strategy.type" */
    char message[256]; /* what was wrong and what was expected */
};

/* A user-facing error. Zero-initialise (or dpf_error_clear) before use. */
struct dpf_error {
    int code;        /* HTTP status (400, 404, 409, 422, ...); 0 = none */
    char reason[32]; /* Status reason: "Invalid", "NotFound", ... */
    char message[1024];
    size_t n_causes;
    struct dpf_cause causes[DPF_ERROR_MAX_CAUSES];
};

void dpf_error_clear(struct dpf_error *err);
/* Set code, reason and message (replaces any earlier message). NULL err is
 * allowed and ignored, so callers may pass NULL when they do not care. */
void dpf_error_set(struct dpf_error *err, int code, const char *reason,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Append a cause (silently dropped past DPF_ERROR_MAX_CAUSES). */
void dpf_error_add_cause(struct dpf_error *err, const char *type,
                         const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
bool dpf_error_is_set(const struct dpf_error *err);

#endif
