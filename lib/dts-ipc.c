/* dts-ipc: see dts-ipc.h. (stub, implementation follows) */
#include "lib/dts-ipc.h"

#include <errno.h>

struct dts_ipc_schema *
dts_ipc_schema_create(const char *name)
{
    return xcalloc(1, sizeof(struct dts_ipc_schema));
}

int
dts_ipc_schema_add_type(struct dts_ipc_schema *s, const char *name,
                        const struct dts_exporter_field *fields, size_t n,
                        struct dpf_error *err)
{
    return -ENOSYS;
}

void
dts_ipc_schema_free(struct dts_ipc_schema *s)
{
    free(s);
}

json_t *
dts_ipc_schema_to_json(const struct dts_ipc_schema *s)
{
    return json_object();
}

struct dts_ipc_schema *
dts_ipc_schema_from_json(const json_t *j, struct dpf_error *err)
{
    return NULL;
}

const char *
dts_ipc_field_type_name(unsigned type)
{
    return NULL;
}

json_t *
dts_ipc_event_to_json(const struct dts_ipc_evtype *t, const uint8_t *data)
{
    return json_object();
}

void
dts_ipc_encode_hello(struct dbuf *out, const struct dts_ipc_hello *h)
{
}

void
dts_ipc_encode_schema(struct dbuf *out, const struct dts_ipc_schema *s)
{
}

void
dts_ipc_encode_events(struct dbuf *out, uint16_t type_index, const void *events,
                      uint32_t size, uint32_t count)
{
}

void
dts_ipc_encode_counters(struct dbuf *out, int64_t time_ns,
                        const struct dts_ipc_counter *c, size_t n)
{
}

void
dts_ipc_encode_netflow(struct dbuf *out, const struct nf_flow *f, size_t n)
{
}

void
dts_ipc_encode_bye(struct dbuf *out)
{
}

struct dts_ipc_session *
dts_ipc_session_create(const struct dts_ipc_handlers *h, void *aux,
                       size_t max_frame)
{
    return NULL;
}

int
dts_ipc_session_feed(struct dts_ipc_session *s, const void *buf, size_t len,
                     struct dpf_error *err)
{
    return -ENOSYS;
}

const struct dts_ipc_hello *
dts_ipc_session_hello(const struct dts_ipc_session *s)
{
    return NULL;
}

const struct dts_ipc_schema *
dts_ipc_session_schema(const struct dts_ipc_session *s)
{
    return NULL;
}

bool
dts_ipc_session_done(const struct dts_ipc_session *s)
{
    return false;
}

uint64_t
dts_ipc_session_frames(const struct dts_ipc_session *s)
{
    return 0;
}

void
dts_ipc_session_free(struct dts_ipc_session *s)
{
}
