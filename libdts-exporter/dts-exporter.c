/* dts-exporter: see include/dts-exporter.h. (stub) */
#include "dts-exporter.h"

#include <errno.h>
#include <stdlib.h>

struct dts_exporter *
dts_exporter_create(const struct dts_exporter_options *o)
{
    errno = ENOSYS;
    return NULL;
}

int
dts_exporter_add_type(struct dts_exporter *ex, const char *name,
                      const struct dts_exporter_field *fields, size_t n_fields)
{
    return -ENOSYS;
}

size_t
dts_exporter_type_size(const struct dts_exporter *ex, int type_index)
{
    return 0;
}

int
dts_exporter_start(struct dts_exporter *ex)
{
    return -ENOSYS;
}

int
dts_exporter_send_events(struct dts_exporter *ex, int type_index,
                         const void *events, size_t count)
{
    return -ENOSYS;
}

int
dts_exporter_send_event(struct dts_exporter *ex, int type_index,
                        const void *event, size_t size)
{
    return -ENOSYS;
}

int
dts_exporter_send_counter(struct dts_exporter *ex, const char *name,
                          uint64_t value)
{
    return -ENOSYS;
}

int
dts_exporter_send_gauge(struct dts_exporter *ex, const char *name, double value)
{
    return -ENOSYS;
}

int
dts_exporter_send_netflow(struct dts_exporter *ex,
                          const struct dts_exporter_netflow_record *r)
{
    return -ENOSYS;
}

int
dts_exporter_flush(struct dts_exporter *ex)
{
    return -ENOSYS;
}

void
dts_exporter_get_stats(const struct dts_exporter *ex,
                       struct dts_exporter_stats *st)
{
    *st = (struct dts_exporter_stats){0};
}

void
dts_exporter_destroy(struct dts_exporter *ex)
{
}
