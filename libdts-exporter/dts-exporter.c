/* dts-exporter: the client library apps use to send telemetry to dts.
 * Frames are built with lib/dts-ipc.h into one output buffer; consecutive
 * events of the same type are merged into one EVENT frame.
 *
 * The library runs inside applications, so nothing here may abort: every
 * allocation is checked (no x* allocator, no dbuf_append() that can grow
 * the buffer) and reported as -ENOMEM. tests/unit/test-dts-exporter-oom.c
 * fails each allocation of a whole session in turn to hold us to that. */
#include "dpf/dts-exporter.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/telemetry/dts-ipc.h"
#include "lib/base/util.h"

/* The public field types are the wire protocol's (lib/telemetry/dts-ipc.h). */
_Static_assert((int) DTS_EXPORTER_U8 == (int) DTS_IPC_FIELD_U8, "U8");
_Static_assert((int) DTS_EXPORTER_U16 == (int) DTS_IPC_FIELD_U16, "U16");
_Static_assert((int) DTS_EXPORTER_U32 == (int) DTS_IPC_FIELD_U32, "U32");
_Static_assert((int) DTS_EXPORTER_U64 == (int) DTS_IPC_FIELD_U64, "U64");
_Static_assert((int) DTS_EXPORTER_I8 == (int) DTS_IPC_FIELD_I8, "I8");
_Static_assert((int) DTS_EXPORTER_I16 == (int) DTS_IPC_FIELD_I16, "I16");
_Static_assert((int) DTS_EXPORTER_I32 == (int) DTS_IPC_FIELD_I32, "I32");
_Static_assert((int) DTS_EXPORTER_I64 == (int) DTS_IPC_FIELD_I64, "I64");
_Static_assert((int) DTS_EXPORTER_FLOAT == (int) DTS_IPC_FIELD_FLOAT, "FLOAT");
_Static_assert((int) DTS_EXPORTER_DOUBLE == (int) DTS_IPC_FIELD_DOUBLE,
               "DOUBLE");
_Static_assert((int) DTS_EXPORTER_STRING == (int) DTS_IPC_FIELD_STRING,
               "STRING");
_Static_assert((int) DTS_EXPORTER_IP4 == (int) DTS_IPC_FIELD_IP4, "IP4");
_Static_assert((int) DTS_EXPORTER_IP6 == (int) DTS_IPC_FIELD_IP6, "IP6");
_Static_assert((int) DTS_EXPORTER_MAC == (int) DTS_IPC_FIELD_MAC, "MAC");
_Static_assert((int) DTS_EXPORTER_TIMESTAMP == (int) DTS_IPC_FIELD_TIMESTAMP,
               "TIMESTAMP");

/* Largest EVENT frame we build (well below the server's 1 MiB bound). */
#define EXPORTER_MAX_BATCH (256u * 1024)
/* How long flush/destroy wait for dts to read. */
#define EXPORTER_FLUSH_MS 5000

struct dts_exporter {
    char *path;                    /* socket path */
    struct dts_ipc_schema *schema; /* declared types */
    struct dts_ipc_hello hello;    /* our identity */
    bool started;                  /* dts_exporter_start() called */
    bool block;                    /* wait instead of dropping */
    int fd;                        /* connection, -1 = none */
    int64_t last_try_ms;           /* last connection attempt */
    struct dbuf out;               /* frames not yet written */
    size_t out_off;                /* written part of out */
    size_t out_records;            /* records in the unwritten part */
    size_t cap;                    /* buffer bound */
    int batch_type;                /* type of the open EVENT frame, -1 */
    size_t batch_off;              /* offset of its header in out */
    struct dts_exporter_stats st;  /* counters */
};

static void
exp_disconnect(struct dts_exporter *ex)
{
    if (ex->fd >= 0) {
        close(ex->fd);
    }
    ex->fd = -1;
    ex->st.connected = false;
    ex->st.dropped += ex->out_records;
    ex->out.len = 0;
    ex->out_off = 0;
    ex->out_records = 0;
    ex->batch_type = -1;
}

/* Write as much as the socket takes; -errno when the connection broke. */
static int
exp_write(struct dts_exporter *ex)
{
    while (ex->out_off < ex->out.len) {
        ssize_t w =
            send(ex->fd, ex->out.data + ex->out_off, ex->out.len - ex->out_off,
                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                break;
            }
            int rc = -errno;
            ex->st.errors++;
            exp_disconnect(ex);
            return rc;
        }
        ex->out_off += (size_t) w;
        ex->batch_type = -1; /* never grow a frame that is on the wire */
    }
    if (ex->out_off == ex->out.len) {
        ex->out.len = 0;
        ex->out_off = 0;
        ex->out_records = 0;
    } else if (ex->out_off > ex->cap / 2) {
        memmove(ex->out.data, ex->out.data + ex->out_off,
                ex->out.len - ex->out_off);
        ex->out.len -= ex->out_off;
        ex->out_off = 0;
    }
    return 0;
}

/* Wait until the socket is writable (bounded); false on timeout. */
static bool
exp_wait(struct dts_exporter *ex, int timeout_ms)
{
    struct pollfd p = {.fd = ex->fd, .events = POLLOUT};
    return poll(&p, 1, timeout_ms) == 1;
}

static int
exp_connect(struct dts_exporter *ex)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    snprintf(sun.sun_path, sizeof sun.sun_path, "%s", ex->path);
    ex->last_try_ms = time_mono_ms();
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    if (connect(fd, (struct sockaddr *) &sun, sizeof sun) < 0) {
        int rc = -errno;
        close(fd);
        return rc;
    }
    ex->fd = fd;
    ex->st.connected = true;
    ex->out.len = 0;
    ex->out_off = 0;
    ex->out_records = 0;
    ex->batch_type = -1;
    if (dts_ipc_encode_hello(&ex->out, &ex->hello) < 0 ||
        dts_ipc_encode_schema(&ex->out, ex->schema) < 0) {
        /* dts would refuse a session without both: start again later */
        exp_disconnect(ex);
        return -ENOMEM;
    }
    return exp_write(ex);
}

struct dts_exporter *
dts_exporter_create(const struct dts_exporter_options *o)
{
    struct dts_exporter_options def = {0};
    if (!o) {
        o = &def;
    }
    /* The socket path, checked against sun_path before any allocation. */
    char pathbuf[sizeof((struct sockaddr_un *) NULL)->sun_path];
    int n;
    if (o->socket_path) {
        n = snprintf(pathbuf, sizeof pathbuf, "%s", o->socket_path);
    } else {
        const char *dir = o->ipc_dir ? o->ipc_dir : getenv("DTS_IPC_DIR");
        if (!dir || !*dir) {
            dir = DTS_EXPORTER_DEFAULT_IPC_DIR;
        }
        n = snprintf(pathbuf, sizeof pathbuf, "%s/%s", dir,
                     DTS_EXPORTER_SOCKET_NAME);
    }
    const char *id =
        o->source_id ? o->source_id : program_invocation_short_name;
    const char *tag = o->source_tag ? o->source_tag : "";
    if (n < 0 || (size_t) n >= sizeof pathbuf ||
        strlen(id) >= DTS_IPC_MAX_NAME || strlen(tag) >= DTS_IPC_MAX_NAME) {
        errno = EINVAL;
        return NULL;
    }
    struct dts_exporter *ex = calloc(1, sizeof *ex);
    if (!ex) {
        errno = ENOMEM;
        return NULL;
    }
    ex->path = strdup(pathbuf);
    ex->schema =
        dts_ipc_schema_create(o->schema_name ? o->schema_name : "default");
    if (!ex->path || !ex->schema) {
        dts_ipc_schema_free(ex->schema);
        free(ex->path);
        free(ex);
        errno = ENOMEM;
        return NULL;
    }
    ex->hello.proto = DTS_IPC_PROTO_MAX; /* labelled samples */
    ex->hello.pid = (uint32_t) getpid();
    snprintf(ex->hello.source_id, sizeof ex->hello.source_id, "%s", id);
    snprintf(ex->hello.source_tag, sizeof ex->hello.source_tag, "%s", tag);
    ex->cap = o->buffer_bytes ? o->buffer_bytes : 256u * 1024;
    if (ex->cap < 4096) {
        ex->cap = 4096;
    }
    ex->block = o->block_when_full;
    ex->fd = -1;
    ex->batch_type = -1;
    dbuf_init(&ex->out);
    return ex;
}

int
dts_exporter_add_type(struct dts_exporter *ex, const char *name,
                      const struct dts_exporter_field *fields, size_t n_fields)
{
    if (!ex) {
        return -EINVAL;
    }
    if (ex->started) {
        return -EBUSY;
    }
    if (n_fields > DTS_IPC_MAX_FIELDS || (n_fields && !fields)) {
        return -EINVAL;
    }
    struct dts_ipc_field_decl decl[DTS_IPC_MAX_FIELDS];
    for (size_t i = 0; i < n_fields; i++) {
        decl[i] = (struct dts_ipc_field_decl){
            fields[i].name, (enum dts_ipc_field_type) fields[i].type,
            fields[i].count};
    }
    int rc = dts_ipc_schema_add_type(ex->schema, name, decl, n_fields, NULL);
    if (rc >= 0 && ex->schema->types[rc].size > EXPORTER_MAX_BATCH / 2) {
        return -EINVAL; /* cannot happen with the schema's own bounds */
    }
    return rc;
}

size_t
dts_exporter_type_size(const struct dts_exporter *ex, int type_index)
{
    if (!ex || type_index < 0 || (unsigned) type_index >= ex->schema->n_types) {
        return 0;
    }
    return ex->schema->types[type_index].size;
}

int
dts_exporter_start(struct dts_exporter *ex)
{
    if (!ex) {
        return -EINVAL;
    }
    ex->started = true;
    if (ex->fd >= 0) {
        return 0;
    }
    int rc = exp_connect(ex);
    if (rc < 0) {
        ex->st.errors++;
    }
    return rc;
}

/* Make room for need more bytes: 0, EXP_DROP when the record must be
 * dropped (dts absent or too slow), or -ENOMEM. */
#define EXP_DROP 1
static int
exp_reserve(struct dts_exporter *ex, size_t need)
{
    if (ex->fd < 0) {
        if (time_mono_ms() - ex->last_try_ms < 1000) {
            return EXP_DROP;
        }
        int rc = exp_connect(ex);
        if (rc < 0) {
            ex->st.errors++;
            return rc == -ENOMEM ? rc : EXP_DROP;
        }
    }
    if (ex->out.len - ex->out_off + need <= ex->cap) {
        return 0;
    }
    if (exp_write(ex) < 0) {
        return EXP_DROP;
    }
    while (ex->out.len - ex->out_off + need > ex->cap) {
        if (!ex->block || ex->fd < 0) {
            return EXP_DROP;
        }
        if (!exp_wait(ex, EXPORTER_FLUSH_MS) || exp_write(ex) < 0) {
            return EXP_DROP;
        }
    }
    return 0;
}

/* The result of a send call whose records could not be queued. */
static int
exp_dropped(struct dts_exporter *ex, int rc, size_t count)
{
    ex->st.dropped += count;
    return rc < 0 ? rc : 0;
}

int
dts_exporter_send_events(struct dts_exporter *ex, int type_index,
                         const void *events, size_t count)
{
    if (!ex) {
        return -EINVAL;
    }
    if (!ex->started) {
        return -EPIPE;
    }
    size_t size = dts_exporter_type_size(ex, type_index);
    if (size == 0 || (count && !events)) {
        return -EINVAL;
    }
    const uint8_t *p = events;
    while (count) {
        /* events that fit in one batch frame */
        size_t n = DPF_MIN(count, (EXPORTER_MAX_BATCH - 16) / size);
        bool extend = ex->batch_type == type_index && ex->fd >= 0;
        size_t frame_len = 0;
        if (extend) {
            frame_len = ex->out.len - ex->batch_off;
            n = DPF_MIN(n, (EXPORTER_MAX_BATCH - frame_len) / size);
            if (n == 0) {
                extend = false;
                n = DPF_MIN(count, (EXPORTER_MAX_BATCH - 16) / size);
            }
        }
        int rc = exp_reserve(ex, n * size + (extend ? 0 : 16));
        if (rc != 0) {
            return exp_dropped(ex, rc, count);
        }
        if (ex->batch_type != type_index) {
            extend = false; /* exp_reserve wrote the open frame out */
        }
        if (extend) {
            /* grow the open EVENT frame: data first, so that a failed
             * allocation leaves the frame as it was */
            if (dbuf_try_reserve(&ex->out, n * size) < 0) {
                return exp_dropped(ex, -ENOMEM, count);
            }
            dbuf_append(&ex->out, p, n * size);
            /* then its length and count, in place */
            uint8_t *h = (uint8_t *) ex->out.data + ex->batch_off;
            uint32_t len = (uint32_t) (frame_len + n * size);
            uint32_t cnt = (uint32_t) h[12] | ((uint32_t) h[13] << 8) |
                           ((uint32_t) h[14] << 16) | ((uint32_t) h[15] << 24);
            cnt += (uint32_t) n;
            for (int i = 0; i < 4; i++) {
                h[i] = (uint8_t) (len >> (8 * i));
                h[12 + i] = (uint8_t) (cnt >> (8 * i));
            }
        } else {
            size_t off = ex->out.len;
            if (dts_ipc_encode_events(&ex->out, (uint16_t) type_index, p,
                                      (uint32_t) size, (uint32_t) n) < 0) {
                return exp_dropped(ex, -ENOMEM, count);
            }
            ex->batch_off = off;
            ex->batch_type = type_index;
        }
        ex->out_records += n;
        ex->st.events += n;
        p += n * size;
        count -= n;
    }
    return 0;
}

int
dts_exporter_send_event(struct dts_exporter *ex, int type_index,
                        const void *event, size_t size)
{
    if (!ex || size != dts_exporter_type_size(ex, type_index)) {
        return -EINVAL;
    }
    return dts_exporter_send_events(ex, type_index, event, 1);
}

static int
send_counter(struct dts_exporter *ex, const struct dts_ipc_counter *c)
{
    if (!ex) {
        return -EINVAL;
    }
    if (!ex->started) {
        return -EPIPE;
    }
    size_t n = strlen(c->name);
    if (n == 0 || n >= DTS_IPC_MAX_NAME) {
        return -EINVAL;
    }
    size_t need = 8 + 12 + 2 + n + 9 + 1;
    for (unsigned i = 0; i < c->n_labels; i++) {
        need += 4 + strlen(c->labels[i].name) + strlen(c->labels[i].value);
    }
    int rc = exp_reserve(ex, need);
    if (rc != 0) {
        return exp_dropped(ex, rc, 1);
    }
    ex->batch_type = -1;
    if (dts_ipc_encode_counters(&ex->out, time_wall_ns(), c, 1) < 0) {
        return exp_dropped(ex, -ENOMEM, 1);
    }
    ex->out_records++;
    ex->st.counters++;
    return 0;
}

int
dts_exporter_send_counter(struct dts_exporter *ex, const char *name,
                          uint64_t value)
{
    struct dts_ipc_counter c = {.kind = DTS_IPC_COUNTER_U64, .u64 = value};
    if (!name || strlen(name) >= sizeof c.name) {
        return -EINVAL;
    }
    strcpy(c.name, name);
    return send_counter(ex, &c);
}

int
dts_exporter_send_gauge(struct dts_exporter *ex, const char *name, double value)
{
    struct dts_ipc_counter c = {.kind = DTS_IPC_GAUGE_F64, .f64 = value};
    if (!name || strlen(name) >= sizeof c.name) {
        return -EINVAL;
    }
    strcpy(c.name, name);
    return send_counter(ex, &c);
}

/* A sample with labels, checked as dts will check it. */
static int
send_labeled(struct dts_exporter *ex, const char *name, uint8_t kind,
             uint64_t u64, double f64, const struct dts_exporter_label *l,
             size_t n)
{
    struct dts_ipc_counter c = {.kind = kind, .u64 = u64, .f64 = f64};
    if (!name || strlen(name) >= sizeof c.name || n > DTS_IPC_MAX_LABELS ||
        (n && !l)) {
        return -EINVAL;
    }
    strcpy(c.name, name);
    for (size_t i = 0; i < n; i++) {
        if (!l[i].name || !l[i].value ||
            !dts_ipc_label_name_ok(l[i].name, strlen(l[i].name)) ||
            !dts_ipc_label_value_ok(l[i].value, strlen(l[i].value))) {
            return -EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (!strcmp(l[i].name, l[j].name)) {
                return -EINVAL;
            }
        }
        strcpy(c.labels[i].name, l[i].name);
        strcpy(c.labels[i].value, l[i].value);
    }
    c.n_labels = (unsigned) n;
    return send_counter(ex, &c);
}

int
dts_exporter_send_counter_labels(struct dts_exporter *ex, const char *name,
                                 uint64_t value,
                                 const struct dts_exporter_label *labels,
                                 size_t n_labels)
{
    return send_labeled(ex, name, DTS_IPC_COUNTER_U64, value, 0, labels,
                        n_labels);
}

int
dts_exporter_send_gauge_labels(struct dts_exporter *ex, const char *name,
                               double value,
                               const struct dts_exporter_label *labels,
                               size_t n_labels)
{
    return send_labeled(ex, name, DTS_IPC_GAUGE_F64, 0, value, labels,
                        n_labels);
}

int
dts_exporter_send_netflow(struct dts_exporter *ex,
                          const struct dts_exporter_netflow_record *r)
{
    if (!ex) {
        return -EINVAL;
    }
    if (!ex->started) {
        return -EPIPE;
    }
    if (!r || (r->family != 4 && r->family != 6)) {
        return -EINVAL;
    }
    struct nf_flow f = {
        .family = r->family,
        .protocol = r->protocol,
        .tcp_flags = r->tcp_flags,
        .src_port = r->src_port,
        .dst_port = r->dst_port,
        .bytes = r->bytes,
        .packets = r->packets,
        .start_ms = r->start_ms,
        .end_ms = r->end_ms,
        .in_if = r->in_if,
        .out_if = r->out_if,
    };
    memcpy(f.src, r->src, 16);
    memcpy(f.dst, r->dst, 16);
    int rc = exp_reserve(ex, 16 + DTS_IPC_NETFLOW_RECORD_LEN);
    if (rc != 0) {
        return exp_dropped(ex, rc, 1);
    }
    ex->batch_type = -1;
    if (dts_ipc_encode_netflow(&ex->out, &f, 1) < 0) {
        return exp_dropped(ex, -ENOMEM, 1);
    }
    ex->out_records++;
    ex->st.netflow++;
    return 0;
}

int
dts_exporter_flush(struct dts_exporter *ex)
{
    if (!ex) {
        return -EINVAL;
    }
    int64_t deadline = time_mono_ms() + EXPORTER_FLUSH_MS;
    while (ex->fd >= 0 && ex->out_off < ex->out.len) {
        int rc = exp_write(ex);
        if (rc < 0) {
            return rc;
        }
        if (ex->out_off == ex->out.len) {
            break;
        }
        int64_t left = deadline - time_mono_ms();
        if (left <= 0 || !exp_wait(ex, (int) left)) {
            return -ETIMEDOUT;
        }
    }
    return ex->fd >= 0 || !ex->started ? 0 : -ENOTCONN;
}

void
dts_exporter_get_stats(const struct dts_exporter *ex,
                       struct dts_exporter_stats *st)
{
    if (ex && st) {
        *st = ex->st;
    }
}

void
dts_exporter_destroy(struct dts_exporter *ex)
{
    if (!ex) {
        return;
    }
    if (ex->fd >= 0) {
        ex->batch_type = -1;
        /* without memory for BYE, closing still ends the session: dts
         * treats EOF as a departure too */
        (void) dts_ipc_encode_bye(&ex->out);
        dts_exporter_flush(ex);
        close(ex->fd);
    }
    dts_ipc_schema_free(ex->schema);
    dbuf_free(&ex->out);
    free(ex->path);
    free(ex);
}
