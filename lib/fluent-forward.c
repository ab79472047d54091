/* fluent-forward: see fluent-forward.h. (stub, implementation follows) */
#include "lib/fluent-forward.h"

#include <errno.h>

int
ff_encode_forward(struct dbuf *out, const char *tag,
                  const struct ff_entry *entries, size_t n, const char *chunk)
{
    return -ENOSYS;
}

int
ff_encode_entry(struct dbuf *out, int64_t time_ns, json_t *record)
{
    return -ENOSYS;
}

long
ff_decode_frame(const void *buf, size_t len, const struct ff_limits *lim,
                ff_event_cb cb, void *aux, struct ff_frame_info *info,
                struct dpf_error *err)
{
    return -ENOSYS;
}

void
ff_encode_ack(struct dbuf *out, const char *chunk)
{
}

struct ff_server *
ff_server_start(const struct ff_server_config *cfg, struct dpf_error *err)
{
    dpf_error_set(err, 500, "InternalError", "not implemented");
    return NULL;
}

uint16_t
ff_server_port(const struct ff_server *s)
{
    return 0;
}

void
ff_server_get_stats(const struct ff_server *s, struct ff_server_stats *st)
{
    *st = (struct ff_server_stats){0};
}

void
ff_server_stop(struct ff_server *s)
{
}

struct ff_client *
ff_client_start(const struct ff_client_config *cfg, struct dpf_error *err)
{
    dpf_error_set(err, 500, "InternalError", "not implemented");
    return NULL;
}

int
ff_client_post(struct ff_client *c, int64_t time_ns, json_t *record)
{
    return -ENOSYS;
}

void
ff_client_get_stats(struct ff_client *c, struct ff_client_stats *st)
{
    *st = (struct ff_client_stats){0};
}

void
ff_client_stop(struct ff_client *c)
{
}
