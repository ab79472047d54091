/* doca-netflow: DOCA's NetFlow exporter API (doca_telemetry_exporter_
 * netflow.h) on top of libdts-exporter. One process-wide exporter, as in
 * DOCA. Each record the app sends, laid out by its template, becomes a
 * dts flow record (docs/services/dts-ipc.md, NETFLOW) which dts
 * re-exports as NetFlow v9 / IPFIX; the elements converted are those
 * doca_nf_apply() knows, the others are skipped.
 *
 * Runs inside applications: nothing here aborts, prints or exits. */
#include <doca_telemetry_exporter_netflow.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dpf/dts-exporter.h"
#include "lib/base/util.h"
#include "libdoca-telemetry-exporter/doca-internal.h"

struct doca_telemetry_exporter_netflow_flowset_field {
    uint16_t type;   /* information element id */
    uint16_t length; /* bytes in the record */
};

struct doca_telemetry_exporter_netflow_template {
    struct doca_telemetry_exporter_netflow_flowset_field **fields; /* owned */
    size_t n;
};

/* The process-wide exporter. */
static struct {
    bool inited;
    bool started;
    bool nomem; /* a setter ran out of memory: start fails */
    uint16_t source_id;
    char *collector;
    uint16_t collector_port;
    uint16_t max_packet;
    uint64_t buf_size;
    char *data_root;
    bool file_write;
    size_t file_max_size;
    doca_telemetry_exporter_timestamp_t file_max_age;
    bool ipc;
    char *sockets_dir;
    char *id;
    char *tag;
    struct dts_exporter *ex;
} nf;

/* Setters act between init and start only. */
#define NF_SETTABLE() (nf.inited && !nf.started)

static void
nf_str(char **dst, const char *v)
{
    if (NF_SETTABLE() && !doca_set_str(dst, v)) {
        nf.nomem = true;
    }
}

doca_error_t
doca_telemetry_exporter_netflow_init(uint16_t source_id)
{
    if (nf.inited) {
        return DOCA_ERROR_BAD_STATE;
    }
    memset(&nf, 0, sizeof nf);
    nf.inited = true;
    nf.source_id = source_id;
    nf.collector_port = DOCA_NETFLOW_DEFAULT_PORT;
    nf.buf_size = 60000;
    nf.file_max_size = 1024 * 1024;
    nf.file_max_age = 3600ull * 1000000;
    return DOCA_SUCCESS;
}

void
doca_telemetry_exporter_netflow_set_collector_addr(const char *collector_addr)
{
    nf_str(&nf.collector, collector_addr);
}

void
doca_telemetry_exporter_netflow_set_collector_port(uint16_t collector_port)
{
    if (NF_SETTABLE()) {
        nf.collector_port = collector_port;
    }
}

void
doca_telemetry_exporter_netflow_set_max_packet_size(uint16_t max_packet_size)
{
    if (NF_SETTABLE()) {
        nf.max_packet = max_packet_size;
    }
}

doca_error_t
doca_telemetry_exporter_netflow_field_create(
    struct doca_telemetry_exporter_netflow_flowset_field **field)
{
    if (!field) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    *field = calloc(1, sizeof **field);
    return *field ? DOCA_SUCCESS : DOCA_ERROR_NO_MEMORY;
}

void
doca_telemetry_exporter_netflow_field_set_type(
    struct doca_telemetry_exporter_netflow_flowset_field *field, uint16_t type)
{
    if (field) {
        field->type = type;
    }
}

void
doca_telemetry_exporter_netflow_field_set_len(
    struct doca_telemetry_exporter_netflow_flowset_field *field,
    uint16_t length)
{
    if (field) {
        field->length = length;
    }
}

doca_error_t
doca_telemetry_exporter_netflow_field_destroy(
    struct doca_telemetry_exporter_netflow_flowset_field *field)
{
    if (!field) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    free(field);
    return DOCA_SUCCESS;
}

void
doca_telemetry_exporter_netflow_set_buf_size(uint64_t size)
{
    if (NF_SETTABLE()) {
        nf.buf_size = size;
    }
}

doca_error_t
doca_telemetry_exporter_netflow_get_buf_size(uint64_t *size)
{
    if (!size) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    if (!nf.inited) {
        return DOCA_ERROR_BAD_STATE;
    }
    *size = nf.buf_size;
    return DOCA_SUCCESS;
}

void
doca_telemetry_exporter_netflow_set_buf_data_root(const char *path)
{
    nf_str(&nf.data_root, path);
}

doca_error_t
doca_telemetry_exporter_netflow_get_buf_data_root(const char **path)
{
    if (!path) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    if (!nf.inited) {
        return DOCA_ERROR_BAD_STATE;
    }
    return doca_get_str(nf.data_root ? nf.data_root : DOCA_DEFAULT_DATA_ROOT,
                        path);
}

doca_error_t
doca_telemetry_exporter_netflow_template_create(
    struct doca_telemetry_exporter_netflow_template **netflow_template)
{
    if (!netflow_template) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    *netflow_template = calloc(1, sizeof **netflow_template);
    return *netflow_template ? DOCA_SUCCESS : DOCA_ERROR_NO_MEMORY;
}

doca_error_t
doca_telemetry_exporter_netflow_template_add_field(
    struct doca_telemetry_exporter_netflow_template *t,
    struct doca_telemetry_exporter_netflow_flowset_field *field)
{
    if (!t || !field || field->length == 0) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    if (t->n >= 1024) {
        return DOCA_ERROR_FULL;
    }
    struct doca_telemetry_exporter_netflow_flowset_field **nfs =
        realloc(t->fields, (t->n + 1) * sizeof *nfs);
    if (!nfs) {
        return DOCA_ERROR_NO_MEMORY;
    }
    t->fields = nfs;
    t->fields[t->n++] = field;
    return DOCA_SUCCESS;
}

doca_error_t
doca_telemetry_exporter_netflow_template_destroy(
    struct doca_telemetry_exporter_netflow_template *t)
{
    if (!t) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    for (size_t i = 0; i < t->n; i++) {
        free(t->fields[i]);
    }
    free(t->fields);
    free(t);
    return DOCA_SUCCESS;
}

void
doca_telemetry_exporter_netflow_set_file_write_enabled(void)
{
    if (NF_SETTABLE()) {
        nf.file_write = true;
    }
}

void
doca_telemetry_exporter_netflow_set_file_write_max_size(size_t size)
{
    if (NF_SETTABLE()) {
        nf.file_max_size = size;
    }
}

doca_error_t
doca_telemetry_exporter_netflow_get_file_write_max_size(size_t *size)
{
    if (!size) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    if (!nf.inited) {
        return DOCA_ERROR_BAD_STATE;
    }
    *size = nf.file_max_size;
    return DOCA_SUCCESS;
}

void
doca_telemetry_exporter_netflow_set_file_write_max_age(
    doca_telemetry_exporter_timestamp_t max_age)
{
    if (NF_SETTABLE()) {
        nf.file_max_age = max_age;
    }
}

doca_error_t
doca_telemetry_exporter_netflow_get_file_write_max_age(
    doca_telemetry_exporter_timestamp_t *max_age)
{
    if (!max_age) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    if (!nf.inited) {
        return DOCA_ERROR_BAD_STATE;
    }
    *max_age = nf.file_max_age;
    return DOCA_SUCCESS;
}

void
doca_telemetry_exporter_netflow_set_ipc_enabled(void)
{
    if (NF_SETTABLE()) {
        nf.ipc = true;
    }
}

void
doca_telemetry_exporter_netflow_set_ipc_sockets_dir(const char *path)
{
    nf_str(&nf.sockets_dir, path);
}

doca_error_t
doca_telemetry_exporter_netflow_get_ipc_sockets_dir(const char **path)
{
    if (!path) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    if (!nf.inited) {
        return DOCA_ERROR_BAD_STATE;
    }
    return doca_get_str(doca_ipc_dir(nf.sockets_dir), path);
}

void
doca_telemetry_exporter_netflow_source_set_id(const char *source_id)
{
    nf_str(&nf.id, source_id);
}

void
doca_telemetry_exporter_netflow_source_set_tag(const char *source_tag)
{
    nf_str(&nf.tag, source_tag);
}

doca_error_t
doca_telemetry_exporter_netflow_start(void)
{
    if (!nf.inited || nf.started) {
        return DOCA_ERROR_BAD_STATE;
    }
    if (nf.nomem) {
        return DOCA_ERROR_NO_MEMORY;
    }
    if ((nf.id && !doca_text_ok(nf.id)) || (nf.tag && !doca_text_ok(nf.tag))) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    if (nf.ipc) {
        struct dts_exporter_options o = {
            .ipc_dir = nf.sockets_dir,
            .schema_name = "netflow",
            .source_id = nf.id,
            .source_tag = nf.tag,
            .buffer_bytes = (size_t) DPF_MIN(nf.buf_size, 64u << 20),
        };
        nf.ex = dts_exporter_create(&o);
        if (!nf.ex) {
            return errno == ENOMEM ? DOCA_ERROR_NO_MEMORY
                                   : DOCA_ERROR_INVALID_VALUE;
        }
        if (dts_exporter_start(nf.ex) == -ENOMEM) {
            dts_exporter_destroy(nf.ex);
            nf.ex = NULL;
            return DOCA_ERROR_NO_MEMORY;
        }
    }
    nf.started = true;
    return DOCA_SUCCESS;
}

/* A big-endian unsigned integer of len (1..8) bytes. */
static uint64_t
nf_be(const uint8_t *p, uint16_t len)
{
    uint64_t v = 0;
    for (uint16_t i = 0; i < len; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* Milliseconds since boot now (a stand-in for sysUpTime). */
static int64_t
nf_uptime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* What one record carries, before choosing the address family. */
struct nf_parsed {
    struct dts_exporter_netflow_record r;
    uint8_t v4src[4], v4dst[4], v6src[16], v6dst[16];
    bool have_v4, have_v6;
};

static bool
nf_nonzero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i]) {
            return true;
        }
    }
    return false;
}

/* Convert one element of the record into the flow; elements outside this
 * list (or of a length that does not fit them) are skipped. */
static void
nf_apply(struct nf_parsed *x, uint16_t type, const uint8_t *p, uint16_t len)
{
    bool num = len >= 1 && len <= 8;
    uint64_t v = num ? nf_be(p, len) : 0;
    int64_t now_ms = time_wall_ns() / 1000000;
    switch (type) {
    case DOCA_TELEMETRY_EXPORTER_NETFLOW_IN_BYTES:
        if (num) {
            x->r.bytes = v;
        }
        break;
    case DOCA_TELEMETRY_EXPORTER_NETFLOW_OUT_BYTES:
        if (num && !x->r.bytes) {
            x->r.bytes = v;
        }
        break;
    case DOCA_TELEMETRY_EXPORTER_NETFLOW_IN_PKTS:
        if (num) {
            x->r.packets = v;
        }
        break;
    case DOCA_TELEMETRY_EXPORTER_NETFLOW_OUT_PKTS:
        if (num && !x->r.packets) {
            x->r.packets = v;
        }
        break;
    case DOCA_TELEMETRY_EXPORTER_NETFLOW_PROTOCOL:
        if (num) {
            x->r.protocol = (uint8_t) v;
        }
        break;
    case DOCA_TELEMETRY_EXPORTER_NETFLOW_TCP_FLAGS:
        if (num) {
            x->r.tcp_flags = (uint8_t) v;
        }
        break;
    case DOCA_TELEMETRY_EXPORTER_NETFLOW_L4_SRC_PORT:
        if (num) {
            x->r.src_port = (uint16_t) v;
        }
        break;
    case DOCA_TELEMETRY_EXPORTER_NETFLOW_L4_DST_PORT:
        if (num) {
            x->r.dst_port = (uint16_t) v;
        }
        break;
    case DOCA_TELEMETRY_EXPORTER_NETFLOW_INPUT_SNMP:
        if (num) {
            x->r.in_if = (uint32_t) v;
        }
        break;
    case DOCA_TELEMETRY_EXPORTER_NETFLOW_OUTPUT_SNMP:
        if (num) {
            x->r.out_if = (uint32_t) v;
        }
        break;
    case DOCA_TELEMETRY_EXPORTER_NETFLOW_IPV4_SRC_ADDR:
        if (len == 4) {
            memcpy(x->v4src, p, 4);
            x->have_v4 = true;
        }
        break;
    case DOCA_TELEMETRY_EXPORTER_NETFLOW_IPV4_DST_ADDR:
        if (len == 4) {
            memcpy(x->v4dst, p, 4);
            x->have_v4 = true;
        }
        break;
    case DOCA_TELEMETRY_EXPORTER_NETFLOW_IPV6_SRC_ADDR:
        if (len == 16) {
            memcpy(x->v6src, p, 16);
            x->have_v6 = true;
        }
        break;
    case DOCA_TELEMETRY_EXPORTER_NETFLOW_IPV6_DST_ADDR:
        if (len == 16) {
            memcpy(x->v6dst, p, 16);
            x->have_v6 = true;
        }
        break;
    case DOCA_TELEMETRY_EXPORTER_NETFLOW_FIRST_SWITCHED:
    case DOCA_TELEMETRY_EXPORTER_NETFLOW_LAST_SWITCHED:
        if (num) {
            /* sysUpTime ms: this host's boot time is the reference */
            int64_t up = nf_uptime_ms();
            int64_t ago = up > (int64_t) v ? up - (int64_t) v : 0;
            uint64_t ms = (uint64_t) (now_ms - ago);
            if (type == DOCA_TELEMETRY_EXPORTER_NETFLOW_FIRST_SWITCHED) {
                x->r.start_ms = ms;
            } else {
                x->r.end_ms = ms;
            }
        }
        break;
    case DOCA_TELEMETRY_EXPORTER_NETFLOW_FLOW_START_MILLISECONDS:
        if (num) {
            x->r.start_ms = v;
        }
        break;
    case DOCA_TELEMETRY_EXPORTER_NETFLOW_FLOW_END_MILLISECONDS:
        if (num) {
            x->r.end_ms = v;
        }
        break;
    case DOCA_TELEMETRY_EXPORTER_NETFLOW_FLOW_START_SECONDS:
        if (num) {
            x->r.start_ms = v * 1000;
        }
        break;
    case DOCA_TELEMETRY_EXPORTER_NETFLOW_FLOW_END_SECONDS:
        if (num) {
            x->r.end_ms = v * 1000;
        }
        break;
    default:
        break;
    }
}

/* The flow of one record; false when it has no address to export. */
static bool
nf_convert(const struct doca_telemetry_exporter_netflow_template *t,
           const uint8_t *rec, struct dts_exporter_netflow_record *out)
{
    struct nf_parsed x = {0};
    size_t off = 0;
    for (size_t i = 0; i < t->n; i++) {
        nf_apply(&x, t->fields[i]->type, rec + off, t->fields[i]->length);
        off += t->fields[i]->length;
    }
    /* A record with both families (DOCA's sample fills both) is exported
     * as IPv4 unless only its IPv6 addresses are set. */
    bool v4 = x.have_v4 &&
              (nf_nonzero(x.v4src, 4) || nf_nonzero(x.v4dst, 4) || !x.have_v6);
    if (v4) {
        x.r.family = 4;
        memcpy(x.r.src, x.v4src, 4);
        memcpy(x.r.dst, x.v4dst, 4);
    } else if (x.have_v6) {
        x.r.family = 6;
        memcpy(x.r.src, x.v6src, 16);
        memcpy(x.r.dst, x.v6dst, 16);
    } else {
        return false;
    }
    if (!x.r.end_ms) {
        x.r.end_ms = (uint64_t) (time_wall_ns() / 1000000);
    }
    if (!x.r.start_ms) {
        x.r.start_ms = x.r.end_ms;
    }
    *out = x.r;
    return true;
}

doca_error_t
doca_telemetry_exporter_netflow_send(
    const struct doca_telemetry_exporter_netflow_template *t,
    const void **records, size_t nof_records, size_t *nof_records_sent)
{
    if (nof_records_sent) {
        *nof_records_sent = 0;
    }
    if (!t || !records || t->n == 0) {
        return DOCA_ERROR_INVALID_VALUE;
    }
    if (!nf.started) {
        return DOCA_ERROR_BAD_STATE;
    }
    if (!nf.ex) {
        /* direct export to a collector is not implemented (see header) */
        return DOCA_ERROR_NOT_SUPPORTED;
    }
    size_t sent = 0;
    for (size_t i = 0; i < nof_records; i++) {
        struct dts_exporter_netflow_record r;
        if (!records[i]) {
            return DOCA_ERROR_INVALID_VALUE;
        }
        if (!nf_convert(t, records[i], &r)) {
            return DOCA_ERROR_INVALID_VALUE; /* no address element */
        }
        int rc = dts_exporter_send_netflow(nf.ex, &r);
        if (rc < 0) {
            return doca_from_errno(rc);
        }
        sent++;
        if (nof_records_sent) {
            *nof_records_sent = sent;
        }
    }
    return DOCA_SUCCESS;
}

doca_error_t
doca_telemetry_exporter_netflow_flush(void)
{
    if (!nf.started) {
        return DOCA_ERROR_BAD_STATE;
    }
    return nf.ex ? doca_from_errno(dts_exporter_flush(nf.ex)) : DOCA_SUCCESS;
}

doca_error_t
doca_telemetry_exporter_netflow_destroy(void)
{
    dts_exporter_destroy(nf.ex);
    free(nf.collector);
    free(nf.data_root);
    free(nf.sockets_dir);
    free(nf.id);
    free(nf.tag);
    memset(&nf, 0, sizeof nf);
    return DOCA_SUCCESS;
}
