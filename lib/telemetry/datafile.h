/* datafile: DTS binary data files (the `output`/`data-file-*` options).
 *
 * File layout (all integers little-endian):
 *   header: "DTSDATA1" (8 bytes) | u32 version (1) | u32 schema_len |
 *           schema (schema_len bytes of JSON text, opaque to this module)
 *   records: u32 length (of what follows the length) | u16 kind |
 *            u16 flags (0) | i64 time_ns | payload (length - 12 bytes)
 * A record kind says how to read the payload: DATAFILE_JSON is a JSON
 * object in UTF-8; DATAFILE_EVENT is "u16 type_index | packed event"
 * decoded with the schema (lib/dts-ipc.h schema JSON).
 *
 * The writer creates <dir>/<prefix>-<UTC yyyymmddThhmmss>-<pid>-<seq>.dtsd.
 * It rotates to a new file when the next record would pass size_limit bytes
 * or when time_limit seconds have passed since the file was opened
 * (DTS's data-file-size-limit / data-file-time-limit). Files are written
 * with buffered stdio and flushed on rotation, datafile_writer_flush() and
 * close. The reader is strict: bad magic, version, or a record length past
 * the end of the file is an error, never a crash.
 *
 * Not thread-safe. Returned strings belong to the reader/writer. */
#ifndef DPF_DATAFILE_H
#define DPF_DATAFILE_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

#include "lib/base/error.h"

#define DATAFILE_MAGIC "DTSDATA1"
#define DATAFILE_VERSION 1
/* DTS defaults: 128 MB and 1800 s. */
#define DATAFILE_DEFAULT_SIZE_LIMIT (128ull * 1024 * 1024)
#define DATAFILE_DEFAULT_TIME_LIMIT 1800
/* Largest record payload accepted by writer and reader. */
#define DATAFILE_MAX_RECORD (16u * 1024 * 1024)

/* Record kinds. */
enum datafile_kind {
    DATAFILE_JSON = 1,  /* payload: JSON object text */
    DATAFILE_EVENT = 2, /* payload: u16 type index + packed event */
};

/* Writer configuration. */
struct datafile_writer_config {
    const char *dir;     /* output directory (created if missing) */
    const char *prefix;  /* file name prefix (NULL = "dts") */
    const char *schema;  /* JSON text stored in every header (NULL="{}") */
    uint64_t size_limit; /* bytes per file (0 = 128 MB) */
    unsigned time_limit; /* seconds per file (0 = 1800) */
};

/* Writer counters. */
struct datafile_writer_stats {
    uint64_t records; /* records written */
    uint64_t bytes;   /* bytes written (headers included) */
    uint64_t files;   /* files opened */
    uint64_t errors;  /* failed writes */
};

struct datafile_writer;

/* Open the first file. NULL on error (err names the directory). */
struct datafile_writer *
datafile_writer_open(const struct datafile_writer_config *cfg,
                     struct dpf_error *err);
/* Append one record, rotating first if a limit is reached. 0 or -errno. */
int datafile_writer_append(struct datafile_writer *w, enum datafile_kind kind,
                           int64_t time_ns, const void *payload, size_t len);
/* Start a new file now. 0 or -errno. */
int datafile_writer_rotate(struct datafile_writer *w);
/* Flush stdio buffers to the kernel. 0 or -errno. */
int datafile_writer_flush(struct datafile_writer *w);
/* Path of the file being written. */
const char *datafile_writer_path(const struct datafile_writer *w);
void datafile_writer_get_stats(const struct datafile_writer *w,
                               struct datafile_writer_stats *st);
/* Flush, close, free. NULL is a no-op. */
void datafile_writer_close(struct datafile_writer *w);

/* One record read back. payload points into the reader's buffer and is
 * valid until the next call. */
struct datafile_record {
    enum datafile_kind kind; /* record kind */
    int64_t time_ns;         /* record time */
    const uint8_t *payload;  /* payload bytes */
    size_t len;              /* payload length */
};

struct datafile_reader;

/* Open and check the header. NULL on error (err says what is wrong). */
struct datafile_reader *datafile_reader_open(const char *path,
                                             struct dpf_error *err);
/* Schema text from the header (NUL-terminated). */
const char *datafile_reader_schema(const struct datafile_reader *r);
/* Next record: 1 = got one, 0 = clean end of file, -EBADMSG = corrupt or
 * truncated (err says at which offset). */
int datafile_reader_next(struct datafile_reader *r, struct datafile_record *rec,
                         struct dpf_error *err);
void datafile_reader_close(struct datafile_reader *r);

/* Print every record of a file as one JSON line on out:
 *   {"time_ns": N, "record": {...}}                       (JSON records)
 *   {"time_ns": N, "type": "name", "record": {...}}       (EVENT records,
 *                                  decoded with the header's schema)
 * Returns the number of records printed, or -EBADMSG/-ENOENT (err says
 * why; records before a corrupt one are printed). */
long datafile_dump_json(const char *path, FILE *out, struct dpf_error *err);

#endif
