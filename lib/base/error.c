/* error: see error.h. */
#include "lib/base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void
dpf_error_clear(struct dpf_error *err)
{
    if (err) {
        memset(err, 0, sizeof *err);
    }
}

void
dpf_error_set(struct dpf_error *err, int code, const char *reason,
              const char *fmt, ...)
{
    if (!err) {
        return;
    }
    err->code = code;
    snprintf(err->reason, sizeof err->reason, "%s", reason ? reason : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
}

void
dpf_error_add_cause(struct dpf_error *err, const char *type, const char *field,
                    const char *fmt, ...)
{
    if (!err || err->n_causes >= DPF_ERROR_MAX_CAUSES) {
        return;
    }
    struct dpf_cause *c = &err->causes[err->n_causes++];
    snprintf(c->type, sizeof c->type, "%s", type ? type : "");
    snprintf(c->field, sizeof c->field, "%s", field ? field : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->message, sizeof c->message, fmt, ap);
    va_end(ap);
}

bool
dpf_error_is_set(const struct dpf_error *err)
{
    return err && err->code != 0;
}
