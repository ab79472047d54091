/* datafile: see datafile.h. (stub, implementation follows) */
#include "lib/datafile.h"

#include <errno.h>

struct datafile_writer *
datafile_writer_open(const struct datafile_writer_config *cfg,
                     struct dpf_error *err)
{
    dpf_error_set(err, 500, "InternalError", "not implemented");
    return NULL;
}

int
datafile_writer_append(struct datafile_writer *w, enum datafile_kind kind,
                       int64_t time_ns, const void *payload, size_t len)
{
    return -ENOSYS;
}

int
datafile_writer_rotate(struct datafile_writer *w)
{
    return -ENOSYS;
}

int
datafile_writer_flush(struct datafile_writer *w)
{
    return -ENOSYS;
}

const char *
datafile_writer_path(const struct datafile_writer *w)
{
    return "";
}

void
datafile_writer_get_stats(const struct datafile_writer *w,
                          struct datafile_writer_stats *st)
{
    *st = (struct datafile_writer_stats){0};
}

void
datafile_writer_close(struct datafile_writer *w)
{
}

struct datafile_reader *
datafile_reader_open(const char *path, struct dpf_error *err)
{
    dpf_error_set(err, 500, "InternalError", "not implemented");
    return NULL;
}

const char *
datafile_reader_schema(const struct datafile_reader *r)
{
    return "{}";
}

int
datafile_reader_next(struct datafile_reader *r, struct datafile_record *rec,
                     struct dpf_error *err)
{
    return -ENOSYS;
}

void
datafile_reader_close(struct datafile_reader *r)
{
}
