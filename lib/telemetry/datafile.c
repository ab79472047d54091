/* datafile: DTS binary data files, writer with rotation and strict reader.
 * The format is ours (DOCA's binary format is not documented). */
#include "lib/telemetry/datafile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/telemetry/dts-ipc.h"
#include "lib/base/util.h"

#define DATAFILE_HDR_FIXED 16 /* magic + version + schema_len */
#define DATAFILE_REC_FIXED 12 /* kind + flags + time, after the length */
#define DATAFILE_MAX_SCHEMA (16u * 1024 * 1024)

static void
le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t) (v >> (8 * i));
    }
}

static void
le64(uint8_t *p, uint64_t v)
{
    le32(p, (uint32_t) v);
    le32(p + 4, (uint32_t) (v >> 32));
}

static uint32_t
rd32(const uint8_t *p)
{
    return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) |
           ((uint32_t) p[3] << 24);
}

/* ---- writer ------------------------------------------------------------- */

struct datafile_writer {
    char *dir;                       /* output directory */
    char *prefix;                    /* file name prefix */
    char *schema;                    /* header schema text */
    uint64_t size_limit;             /* bytes per file */
    unsigned time_limit;             /* seconds per file */
    FILE *f;                         /* current file */
    char *path;                      /* its path */
    uint64_t size;                   /* bytes in it */
    int64_t opened_ms;               /* when it was opened (monotonic) */
    unsigned seq;                    /* file counter */
    struct datafile_writer_stats st; /* counters */
};

static int
writer_open_file(struct datafile_writer *w)
{
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm);
    free(w->path);
    w->path = xasprintf("%s/%s-%s-%d-%04u.dtsd", w->dir, w->prefix, stamp,
                        (int) getpid(), w->seq++);
    w->f = fopen(w->path, "wbx");
    if (!w->f) {
        return -errno;
    }
    size_t slen = strlen(w->schema);
    uint8_t hdr[DATAFILE_HDR_FIXED];
    memcpy(hdr, DATAFILE_MAGIC, 8);
    le32(hdr + 8, DATAFILE_VERSION);
    le32(hdr + 12, (uint32_t) slen);
    if (fwrite(hdr, 1, sizeof hdr, w->f) != sizeof hdr ||
        fwrite(w->schema, 1, slen, w->f) != slen) {
        int rc = -errno;
        fclose(w->f);
        w->f = NULL;
        return rc ? rc : -EIO;
    }
    w->size = sizeof hdr + slen;
    w->opened_ms = time_mono_ms();
    w->st.files++;
    w->st.bytes += w->size;
    return 0;
}

static int
writer_close_file(struct datafile_writer *w)
{
    int rc = 0;
    if (w->f && fclose(w->f) != 0) {
        rc = -errno;
        w->st.errors++;
    }
    w->f = NULL;
    return rc;
}

struct datafile_writer *
datafile_writer_open(const struct datafile_writer_config *cfg,
                     struct dpf_error *err)
{
    if (!cfg->dir || !*cfg->dir) {
        dpf_error_set(err, 422, "Invalid",
                      "data files: output directory "
                      "is required");
        return NULL;
    }
    size_t slen = cfg->schema ? strlen(cfg->schema) : 2;
    if (slen > DATAFILE_MAX_SCHEMA) {
        dpf_error_set(err, 422, "Invalid", "data files: schema too large");
        return NULL;
    }
    int rc = dir_create_all(cfg->dir, 0755);
    if (rc < 0) {
        dpf_error_set(err, 422, "Invalid",
                      "data files: cannot create directory %s: %s", cfg->dir,
                      strerror(-rc));
        return NULL;
    }
    struct datafile_writer *w = xcalloc(1, sizeof *w);
    w->dir = xstrdup(cfg->dir);
    w->prefix = xstrdup(cfg->prefix ? cfg->prefix : "dts");
    w->schema = xstrdup(cfg->schema ? cfg->schema : "{}");
    w->size_limit =
        cfg->size_limit ? cfg->size_limit : DATAFILE_DEFAULT_SIZE_LIMIT;
    w->time_limit =
        cfg->time_limit ? cfg->time_limit : DATAFILE_DEFAULT_TIME_LIMIT;
    rc = writer_open_file(w);
    if (rc < 0) {
        dpf_error_set(err, 422, "Invalid", "data files: cannot create %s: %s",
                      w->path, strerror(-rc));
        datafile_writer_close(w);
        return NULL;
    }
    return w;
}

int
datafile_writer_rotate(struct datafile_writer *w)
{
    int rc = writer_close_file(w);
    int rc2 = writer_open_file(w);
    if (rc2 < 0) {
        w->st.errors++;
        return rc2;
    }
    return rc;
}

int
datafile_writer_append(struct datafile_writer *w, enum datafile_kind kind,
                       int64_t time_ns, const void *payload, size_t len)
{
    if (len > DATAFILE_MAX_RECORD ||
        (kind != DATAFILE_JSON && kind != DATAFILE_EVENT)) {
        w->st.errors++;
        return -EINVAL;
    }
    uint64_t rec = 4 + DATAFILE_REC_FIXED + len;
    bool full = w->size > DATAFILE_HDR_FIXED + strlen(w->schema) &&
                w->size + rec > w->size_limit;
    bool old = time_mono_ms() - w->opened_ms >= (int64_t) w->time_limit * 1000;
    if (!w->f || full || old) {
        int rc = datafile_writer_rotate(w);
        if (rc < 0 && !w->f) {
            return rc;
        }
    }
    uint8_t hdr[4 + DATAFILE_REC_FIXED];
    le32(hdr, (uint32_t) (DATAFILE_REC_FIXED + len));
    hdr[4] = (uint8_t) kind;
    hdr[5] = (uint8_t) (kind >> 8);
    hdr[6] = hdr[7] = 0;
    le64(hdr + 8, (uint64_t) time_ns);
    if (fwrite(hdr, 1, sizeof hdr, w->f) != sizeof hdr ||
        fwrite(payload, 1, len, w->f) != len) {
        w->st.errors++;
        return errno ? -errno : -EIO;
    }
    w->size += rec;
    w->st.records++;
    w->st.bytes += rec;
    return 0;
}

int
datafile_writer_flush(struct datafile_writer *w)
{
    if (w->f && fflush(w->f) != 0) {
        w->st.errors++;
        return -errno;
    }
    return 0;
}

const char *
datafile_writer_path(const struct datafile_writer *w)
{
    return w->path;
}

void
datafile_writer_get_stats(const struct datafile_writer *w,
                          struct datafile_writer_stats *st)
{
    *st = w->st;
}

void
datafile_writer_close(struct datafile_writer *w)
{
    if (!w) {
        return;
    }
    writer_close_file(w);
    free(w->dir);
    free(w->prefix);
    free(w->schema);
    free(w->path);
    free(w);
}

/* ---- reader ------------------------------------------------------------- */

struct datafile_reader {
    FILE *f;       /* the file */
    char *schema;  /* header schema, NUL-terminated */
    uint8_t *buf;  /* current record payload */
    size_t cap;    /* allocated */
    uint64_t off;  /* offset of the next record */
    uint64_t size; /* file size */
};

struct datafile_reader *
datafile_reader_open(const char *path, struct dpf_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        dpf_error_set(err, 404, "NotFound", "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    uint8_t hdr[DATAFILE_HDR_FIXED];
    if (fstat(fileno(f), &st) < 0 ||
        fread(hdr, 1, sizeof hdr, f) != sizeof hdr ||
        memcmp(hdr, DATAFILE_MAGIC, 8) != 0) {
        dpf_error_set(err, 400, "BadRequest",
                      "%s: not a dts data file (bad magic)", path);
        fclose(f);
        return NULL;
    }
    if (rd32(hdr + 8) != DATAFILE_VERSION) {
        dpf_error_set(err, 400, "BadRequest",
                      "%s: unsupported data file version %u", path,
                      rd32(hdr + 8));
        fclose(f);
        return NULL;
    }
    uint32_t slen = rd32(hdr + 12);
    if (slen > DATAFILE_MAX_SCHEMA ||
        (uint64_t) slen + sizeof hdr > (uint64_t) st.st_size) {
        dpf_error_set(err, 400, "BadRequest",
                      "%s: schema length %u past the end of the file", path,
                      slen);
        fclose(f);
        return NULL;
    }
    struct datafile_reader *r = xcalloc(1, sizeof *r);
    r->f = f;
    r->schema = xmalloc(slen + 1);
    if (fread(r->schema, 1, slen, f) != slen) {
        dpf_error_set(err, 400, "BadRequest", "%s: truncated schema", path);
        datafile_reader_close(r);
        return NULL;
    }
    r->schema[slen] = '\0';
    r->off = sizeof hdr + slen;
    r->size = (uint64_t) st.st_size;
    return r;
}

const char *
datafile_reader_schema(const struct datafile_reader *r)
{
    return r->schema;
}

int
datafile_reader_next(struct datafile_reader *r, struct datafile_record *rec,
                     struct dpf_error *err)
{
    uint8_t hdr[4 + DATAFILE_REC_FIXED];
    size_t got = fread(hdr, 1, sizeof hdr, r->f);
    if (got == 0 && feof(r->f)) {
        return 0;
    }
    if (got != sizeof hdr) {
        dpf_error_set(err, 400, "BadRequest",
                      "truncated record header at offset %llu",
                      (unsigned long long) r->off);
        return -EBADMSG;
    }
    uint32_t len = rd32(hdr);
    unsigned kind = hdr[4] | (hdr[5] << 8);
    if (r->off + 4 + len > r->size) {
        dpf_error_set(err, 400, "BadRequest",
                      "truncated record at offset %llu: length %u runs past "
                      "the end of the file",
                      (unsigned long long) r->off, len);
        return -EBADMSG;
    }
    if (len < DATAFILE_REC_FIXED ||
        len - DATAFILE_REC_FIXED > DATAFILE_MAX_RECORD ||
        (kind != DATAFILE_JSON && kind != DATAFILE_EVENT)) {
        dpf_error_set(err, 400, "BadRequest",
                      "bad record (length %u, kind %u) at offset %llu", len,
                      kind, (unsigned long long) r->off);
        return -EBADMSG;
    }
    size_t plen = len - DATAFILE_REC_FIXED;
    if (plen + 1 > r->cap) {
        r->cap = plen + 1;
        r->buf = xrealloc(r->buf, r->cap);
    }
    if (fread(r->buf, 1, plen, r->f) != plen) {
        dpf_error_set(err, 400, "BadRequest", "truncated record at offset %llu",
                      (unsigned long long) r->off);
        return -EBADMSG;
    }
    r->buf[plen] = 0;
    uint64_t t = (uint64_t) rd32(hdr + 8) | ((uint64_t) rd32(hdr + 12) << 32);
    rec->kind = (enum datafile_kind) kind;
    rec->time_ns = (int64_t) t;
    rec->payload = r->buf;
    rec->len = plen;
    r->off += 4 + len;
    return 1;
}

void
datafile_reader_close(struct datafile_reader *r)
{
    if (!r) {
        return;
    }
    fclose(r->f);
    free(r->schema);
    free(r->buf);
    free(r);
}

long
datafile_dump_json(const char *path, FILE *out, struct dpf_error *err)
{
    struct datafile_reader *r = datafile_reader_open(path, err);
    if (!r) {
        return -ENOENT;
    }
    json_t *sj = json_loads(r->schema, 0, NULL);
    struct dts_ipc_schema *schema =
        sj ? dts_ipc_schema_from_json(sj, NULL) : NULL;
    json_decref(sj);
    long n = 0;
    struct datafile_record rec;
    int rc;
    while ((rc = datafile_reader_next(r, &rec, err)) == 1) {
        json_t *line = json_pack("{s:I}", "time_ns", (json_int_t) rec.time_ns);
        json_t *body = NULL;
        if (rec.kind == DATAFILE_JSON) {
            body = json_loadb((const char *) rec.payload, rec.len, 0, NULL);
        } else if (schema && rec.len >= 2) {
            unsigned idx = rec.payload[0] | (rec.payload[1] << 8);
            if (idx < schema->n_types &&
                rec.len - 2 == schema->types[idx].size) {
                json_object_set_new(line, "type",
                                    json_string(schema->types[idx].name));
                body =
                    dts_ipc_event_to_json(&schema->types[idx], rec.payload + 2);
            }
        }
        if (!body) {
            dpf_error_set(err, 400, "BadRequest",
                          "%s: record %ld cannot be decoded", path, n + 1);
            json_decref(line);
            rc = -EBADMSG;
            break;
        }
        json_object_set_new(line, "record", body);
        char *text = json_dumps(line, JSON_COMPACT);
        fprintf(out, "%s\n", text);
        free(text);
        json_decref(line);
        n++;
    }
    dts_ipc_schema_free(schema);
    datafile_reader_close(r);
    return rc < 0 ? rc : n;
}
