/* netflow: NetFlow v9 (RFC 3954) and IPFIX (RFC 7011) export over UDP.
 * Hand-written: Debian has no C library that builds NetFlow/IPFIX
 * datagrams (libfixbuf is not packaged in bookworm). */
#include "lib/telemetry/netflow.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "lib/base/util.h"

/* Information element ids (RFC 3954 field types = IANA IPFIX IEs). */
enum {
    IE_OCTETS = 1,
    IE_PACKETS = 2,
    IE_PROTOCOL = 4,
    IE_TCP_FLAGS = 6,
    IE_SRC_PORT = 7,
    IE_SRC_IPV4 = 8,
    IE_INPUT_IF = 10,
    IE_DST_PORT = 11,
    IE_DST_IPV4 = 12,
    IE_OUTPUT_IF = 14,
    IE_LAST_SWITCHED = 21,
    IE_FIRST_SWITCHED = 22,
    IE_SRC_IPV6 = 27,
    IE_DST_IPV6 = 28,
    IE_FLOW_START_SEC = 150,
    IE_FLOW_END_SEC = 151,
    IE_FLOW_START_MS = 152,
    IE_FLOW_END_MS = 153,
};

struct nf_field_def {
    uint16_t id;  /* information element */
    uint16_t len; /* bytes */
};

#define NF_TEMPLATE_FIELDS 12
#define V9_HDR_LEN 20
#define IPFIX_HDR_LEN 16

/* Field list of a built-in template for a version and family. */
static void
template_fields(enum nf_version v, int family, struct nf_field_def *f)
{
    int i = 0;
    if (family == 4) {
        f[i++] = (struct nf_field_def){IE_SRC_IPV4, 4};
        f[i++] = (struct nf_field_def){IE_DST_IPV4, 4};
    } else {
        f[i++] = (struct nf_field_def){IE_SRC_IPV6, 16};
        f[i++] = (struct nf_field_def){IE_DST_IPV6, 16};
    }
    f[i++] = (struct nf_field_def){IE_SRC_PORT, 2};
    f[i++] = (struct nf_field_def){IE_DST_PORT, 2};
    f[i++] = (struct nf_field_def){IE_PROTOCOL, 1};
    f[i++] = (struct nf_field_def){IE_TCP_FLAGS, 1};
    f[i++] = (struct nf_field_def){IE_OCTETS, 8};
    f[i++] = (struct nf_field_def){IE_PACKETS, 8};
    f[i++] = (struct nf_field_def){IE_INPUT_IF, 4};
    f[i++] = (struct nf_field_def){IE_OUTPUT_IF, 4};
    if (v == NF_VERSION_V9) {
        f[i++] = (struct nf_field_def){IE_FIRST_SWITCHED, 4};
        f[i++] = (struct nf_field_def){IE_LAST_SWITCHED, 4};
    } else {
        f[i++] = (struct nf_field_def){IE_FLOW_START_MS, 8};
        f[i++] = (struct nf_field_def){IE_FLOW_END_MS, 8};
    }
}

static size_t
record_len(enum nf_version v, int family)
{
    size_t addr = family == 4 ? 8 : 32;
    return addr + 2 + 2 + 1 + 1 + 8 + 8 + 4 + 4 + (v == NF_VERSION_V9 ? 8 : 16);
}

static size_t
header_len(enum nf_version v)
{
    return v == NF_VERSION_V9 ? V9_HDR_LEN : IPFIX_HDR_LEN;
}

/* Template set: set header + 2 template records. */
static size_t
template_set_len(void)
{
    return 4 + 2 * (4 + NF_TEMPLATE_FIELDS * 4);
}

static size_t
pad4(enum nf_version v, size_t n)
{
    return v == NF_VERSION_V9 ? (4 - n % 4) % 4 : 0;
}

static size_t
data_set_len(enum nf_version v, int family, size_t n)
{
    if (n == 0) {
        return 0;
    }
    size_t len = 4 + n * record_len(v, family);
    return len + pad4(v, len);
}

static size_t
packet_len(enum nf_version v, bool with_t, size_t n4, size_t n6)
{
    return header_len(v) + (with_t ? template_set_len() : 0) +
           data_set_len(v, 4, n4) + data_set_len(v, 6, n6);
}

/* ---- big-endian writer -------------------------------------------------- */

struct wr {
    uint8_t *p;
    size_t len;
};

static void
w8(struct wr *w, uint8_t v)
{
    w->p[w->len++] = v;
}

static void
w16(struct wr *w, uint16_t v)
{
    w8(w, (uint8_t) (v >> 8));
    w8(w, (uint8_t) v);
}

static void
w32(struct wr *w, uint32_t v)
{
    w16(w, (uint16_t) (v >> 16));
    w16(w, (uint16_t) v);
}

static void
w64(struct wr *w, uint64_t v)
{
    w32(w, (uint32_t) (v >> 32));
    w32(w, (uint32_t) v);
}

static void
wbytes(struct wr *w, const void *p, size_t n)
{
    memcpy(w->p + w->len, p, n);
    w->len += n;
}

static void
put_at16(struct wr *w, size_t off, uint16_t v)
{
    w->p[off] = (uint8_t) (v >> 8);
    w->p[off + 1] = (uint8_t) v;
}

static void
write_templates(struct wr *w, enum nf_version v)
{
    size_t set = w->len;
    w16(w, v == NF_VERSION_V9 ? 0 : 2);
    w16(w, 0);
    for (int fam = 4; fam <= 6; fam += 2) {
        struct nf_field_def f[NF_TEMPLATE_FIELDS];
        template_fields(v, fam, f);
        w16(w, fam == 4 ? NF_TEMPLATE_IPV4 : NF_TEMPLATE_IPV6);
        w16(w, NF_TEMPLATE_FIELDS);
        for (int i = 0; i < NF_TEMPLATE_FIELDS; i++) {
            w16(w, f[i].id);
            w16(w, f[i].len);
        }
    }
    put_at16(w, set + 2, (uint16_t) (w->len - set));
}

/* sysUptime (ms) of a wall-clock time, given "now" in both clocks. */
static uint32_t
uptime_of(uint64_t wall_ms, uint64_t now_wall_ms, uint32_t now_uptime)
{
    int64_t delta = (int64_t) now_wall_ms - (int64_t) wall_ms;
    if (delta < 0) {
        delta = 0;
    }
    return now_uptime - (uint32_t) delta;
}

static void
write_record(struct wr *w, enum nf_version v, const struct nf_flow *f,
             uint64_t now_wall_ms, uint32_t uptime)
{
    if (f->family == 4) {
        wbytes(w, f->src, 4);
        wbytes(w, f->dst, 4);
    } else {
        wbytes(w, f->src, 16);
        wbytes(w, f->dst, 16);
    }
    w16(w, f->src_port);
    w16(w, f->dst_port);
    w8(w, f->protocol);
    w8(w, f->tcp_flags);
    w64(w, f->bytes);
    w64(w, f->packets);
    w32(w, f->in_if);
    w32(w, f->out_if);
    if (v == NF_VERSION_V9) {
        w32(w, uptime_of(f->start_ms, now_wall_ms, uptime));
        w32(w, uptime_of(f->end_ms, now_wall_ms, uptime));
    } else {
        w64(w, f->start_ms);
        w64(w, f->end_ms);
    }
}

static void
write_data_set(struct wr *w, enum nf_version v, int family,
               const struct nf_flow *flows, size_t n, uint64_t now_wall_ms,
               uint32_t uptime)
{
    size_t set = w->len;
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (flows[i].family != family) {
            continue;
        }
        if (!any) {
            w16(w, family == 4 ? NF_TEMPLATE_IPV4 : NF_TEMPLATE_IPV6);
            w16(w, 0);
            any = true;
        }
        write_record(w, v, &flows[i], now_wall_ms, uptime);
    }
    if (!any) {
        return;
    }
    size_t pad = pad4(v, w->len - set);
    for (size_t i = 0; i < pad; i++) {
        w8(w, 0);
    }
    put_at16(w, set + 2, (uint16_t) (w->len - set));
}

static long
encode(enum nf_version v, uint32_t domain_id, uint32_t seq, uint32_t uptime,
       uint32_t unix_secs, uint64_t now_wall_ms, bool with_t,
       const struct nf_flow *flows, size_t n, uint8_t *buf, size_t cap)
{
    size_t n4 = 0, n6 = 0;
    for (size_t i = 0; i < n; i++) {
        if (flows[i].family == 4) {
            n4++;
        } else if (flows[i].family == 6) {
            n6++;
        } else {
            return -EINVAL;
        }
    }
    size_t total = packet_len(v, with_t, n4, n6);
    if (total > cap || total > 0xffff) {
        return -EMSGSIZE;
    }
    struct wr w = {buf, 0};
    w16(&w, (uint16_t) v);
    if (v == NF_VERSION_V9) {
        w16(&w, (uint16_t) ((with_t ? 2 : 0) + n));
        w32(&w, uptime);
        w32(&w, unix_secs);
        w32(&w, seq);
        w32(&w, domain_id);
    } else {
        w16(&w, (uint16_t) total);
        w32(&w, unix_secs);
        w32(&w, seq);
        w32(&w, domain_id);
    }
    if (with_t) {
        write_templates(&w, v);
    }
    write_data_set(&w, v, 4, flows, n, now_wall_ms, uptime);
    write_data_set(&w, v, 6, flows, n, now_wall_ms, uptime);
    return (long) w.len;
}

long
nf_encode_packet(enum nf_version v, uint32_t domain_id, uint32_t seq,
                 uint32_t uptime_ms, uint32_t unix_secs, bool with_templates,
                 const struct nf_flow *flows, size_t n, uint8_t *buf,
                 size_t cap)
{
    if (v != NF_VERSION_V9 && v != NF_VERSION_IPFIX) {
        return -EINVAL;
    }
    return encode(v, domain_id, seq, uptime_ms, unix_secs,
                  (uint64_t) unix_secs * 1000, with_templates, flows, n, buf,
                  cap);
}

/* ---- exporter ------------------------------------------------------------ */

struct nf_exporter {
    enum nf_version version;        /* 9 or 10 */
    uint32_t domain_id;             /* source id / observation domain */
    int fd;                         /* connected UDP socket */
    size_t max_payload;             /* UDP payload bound from the MTU */
    unsigned refresh_packets;       /* template refresh period, packets */
    unsigned refresh_sec;           /* template refresh period, seconds */
    unsigned since_template;        /* packets since the last template */
    int64_t template_ms;            /* when templates were last sent (mono) */
    bool sent_template;             /* templates sent at least once */
    uint32_t seq_packets;           /* v9 sequence */
    uint32_t seq_records;           /* IPFIX sequence */
    struct nf_flow *pending;        /* records waiting for a datagram */
    size_t n_pending;               /* number of them */
    size_t n4, n6;                  /* per family */
    size_t cap_pending;             /* allocated */
    int64_t first_pending_ms;       /* when the oldest pending was added */
    struct nf_exporter_stats stats; /* counters */
    uint8_t *buf;                   /* datagram buffer */
};

struct nf_exporter *
nf_exporter_create(const struct nf_exporter_config *cfg, struct dpf_error *err)
{
    if (cfg->version != NF_VERSION_V9 && cfg->version != NF_VERSION_IPFIX) {
        dpf_error_set(err, 422, "Invalid",
                      "netflow: version must be 9 or 10 (IPFIX), got %d",
                      (int) cfg->version);
        return NULL;
    }
    if (!cfg->host || !*cfg->host || cfg->port == 0) {
        dpf_error_set(err, 422, "Invalid",
                      "netflow: collector host and port are required");
        return NULL;
    }
    unsigned mtu = cfg->mtu ? cfg->mtu : 1500;
    if (mtu < 576 || mtu > 65535) {
        dpf_error_set(err, 422, "Invalid",
                      "netflow: mtu %u out of range 576..65535", mtu);
        return NULL;
    }
    char port[8];
    snprintf(port, sizeof port, "%u", cfg->port);
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM, .ai_family = AF_UNSPEC};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(cfg->host, port, &hints, &ai);
    if (rc != 0) {
        dpf_error_set(err, 422, "Invalid",
                      "netflow: cannot resolve collector %s: %s", cfg->host,
                      gai_strerror(rc));
        return NULL;
    }
    int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        dpf_error_set(err, 503, "ServiceUnavailable",
                      "netflow: cannot open UDP socket to %s:%u: %s", cfg->host,
                      cfg->port, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        freeaddrinfo(ai);
        return NULL;
    }
    size_t ip_udp = ai->ai_family == AF_INET6 ? 48 : 28;
    freeaddrinfo(ai);
    struct nf_exporter *e = xcalloc(1, sizeof *e);
    e->version = cfg->version;
    e->domain_id = cfg->domain_id;
    e->fd = fd;
    e->max_payload = mtu - ip_udp;
    e->refresh_packets =
        cfg->template_refresh_packets ? cfg->template_refresh_packets : 20;
    e->refresh_sec = cfg->template_refresh_sec ? cfg->template_refresh_sec : 30;
    e->buf = xmalloc(e->max_payload);
    return e;
}

static uint32_t
boot_uptime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint32_t) ((uint64_t) ts.tv_sec * 1000 +
                       (uint64_t) ts.tv_nsec / 1000000);
}

static bool
need_templates(const struct nf_exporter *e)
{
    return !e->sent_template || e->since_template + 1 >= e->refresh_packets ||
           time_mono_ms() - e->template_ms >= (int64_t) e->refresh_sec * 1000;
}

int
nf_exporter_flush(struct nf_exporter *e)
{
    bool with_t = need_templates(e);
    if (e->n_pending == 0 && !with_t) {
        return 0;
    }
    if (e->n_pending == 0 && e->sent_template) {
        return 0; /* nothing to say: templates go with the next data */
    }
    int64_t now_wall = time_wall_ns() / 1000000;
    uint32_t seq =
        e->version == NF_VERSION_V9 ? e->seq_packets : e->seq_records;
    long len = encode(e->version, e->domain_id, seq, boot_uptime_ms(),
                      (uint32_t) (now_wall / 1000), (uint64_t) now_wall, with_t,
                      e->pending, e->n_pending, e->buf, e->max_payload);
    size_t n = e->n_pending;
    e->n_pending = e->n4 = e->n6 = 0;
    if (len < 0) {
        e->stats.errors += n;
        return (int) len;
    }
    e->seq_packets++;
    e->seq_records += (uint32_t) n;
    if (with_t) {
        e->sent_template = true;
        e->since_template = 0;
        e->template_ms = time_mono_ms();
        e->stats.templates++;
    } else {
        e->since_template++;
    }
    ssize_t w = send(e->fd, e->buf, (size_t) len, MSG_NOSIGNAL);
    if (w < 0 && errno == ECONNREFUSED) {
        /* That is the ICMP error of an earlier datagram (the collector
         * was down): count it; this one was not sent yet, try once more. */
        e->stats.errors++;
        w = send(e->fd, e->buf, (size_t) len, MSG_NOSIGNAL);
    }
    if (w < 0) {
        e->stats.errors++;
        return -errno;
    }
    e->stats.packets++;
    e->stats.records += n;
    return 0;
}

int
nf_exporter_add(struct nf_exporter *e, const struct nf_flow *f)
{
    if (f->family != 4 && f->family != 6) {
        e->stats.errors++;
        return -EINVAL;
    }
    size_t n4 = e->n4 + (f->family == 4);
    size_t n6 = e->n6 + (f->family == 6);
    int rc = 0;
    /* Room is computed with templates included so a refresh never makes a
     * datagram exceed the MTU. */
    if (e->n_pending && packet_len(e->version, true, n4, n6) > e->max_payload) {
        rc = nf_exporter_flush(e);
        n4 = f->family == 4;
        n6 = f->family == 6;
    }
    if (e->n_pending == e->cap_pending) {
        e->cap_pending = e->cap_pending ? 2 * e->cap_pending : 32;
        e->pending = xrealloc(e->pending, e->cap_pending * sizeof *f);
    }
    if (e->n_pending == 0) {
        e->first_pending_ms = time_mono_ms();
    }
    e->pending[e->n_pending++] = *f;
    e->n4 = n4;
    e->n6 = n6;
    /* Do not hold records for long when the caller adds slowly. */
    if (time_mono_ms() - e->first_pending_ms >= 1000) {
        int rc2 = nf_exporter_flush(e);
        rc = rc ? rc : rc2;
    }
    return rc;
}

void
nf_exporter_get_stats(const struct nf_exporter *e, struct nf_exporter_stats *st)
{
    *st = e->stats;
}

void
nf_exporter_destroy(struct nf_exporter *e)
{
    if (!e) {
        return;
    }
    if (e->n_pending) {
        nf_exporter_flush(e);
    }
    close(e->fd);
    free(e->pending);
    free(e->buf);
    free(e);
}

/* ---- decoder ------------------------------------------------------------- */

#define NF_DEC_MAX_TEMPLATES 64
#define NF_DEC_MAX_FIELDS 128

struct nf_dec_template {
    uint16_t id;                              /* template id (0 = free) */
    unsigned version;                         /* 9 or 10 */
    uint32_t domain;                          /* owning domain */
    unsigned n;                               /* fields */
    struct nf_field_def f[NF_DEC_MAX_FIELDS]; /* fields */
};

struct nf_decoder {
    struct nf_dec_template t[NF_DEC_MAX_TEMPLATES]; /* known templates */
};

struct nf_decoder *
nf_decoder_create(void)
{
    return xcalloc(1, sizeof(struct nf_decoder));
}

void
nf_decoder_destroy(struct nf_decoder *d)
{
    free(d);
}

static uint64_t
be_read(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n && i < 8; i++) {
        v = (v << 8) | p[i];
    }
    return v;
}

static struct nf_dec_template *
find_template(struct nf_decoder *d, unsigned version, uint32_t domain,
              uint16_t id, bool create)
{
    struct nf_dec_template *free_slot = NULL;
    for (int i = 0; i < NF_DEC_MAX_TEMPLATES; i++) {
        struct nf_dec_template *t = &d->t[i];
        if (t->id == id && t->version == version && t->domain == domain) {
            return t;
        }
        if (!t->id && !free_slot) {
            free_slot = t;
        }
    }
    return create ? free_slot : NULL;
}

static int
bad(struct dpf_error *err, const char *what)
{
    dpf_error_set(err, 400, "BadRequest", "netflow: %s", what);
    return -EBADMSG;
}

static int
parse_templates(struct nf_decoder *d, unsigned version, uint32_t domain,
                const uint8_t *p, size_t len, struct nf_packet_info *info,
                struct dpf_error *err)
{
    while (len >= 4) {
        uint16_t id = (uint16_t) be_read(p, 2);
        uint16_t n = (uint16_t) be_read(p + 2, 2);
        p += 4;
        len -= 4;
        if (id < 256) {
            return bad(err, "template id below 256");
        }
        if (n > NF_DEC_MAX_FIELDS) {
            return bad(err, "too many template fields");
        }
        struct nf_dec_template tmp = {
            .id = id, .version = version, .domain = domain, .n = n};
        for (unsigned i = 0; i < n; i++) {
            if (len < 4) {
                return bad(err, "truncated template");
            }
            uint16_t fid = (uint16_t) be_read(p, 2);
            uint16_t flen = (uint16_t) be_read(p + 2, 2);
            p += 4;
            len -= 4;
            if (version == NF_VERSION_IPFIX && (fid & 0x8000)) {
                if (len < 4) {
                    return bad(err, "truncated enterprise number");
                }
                p += 4; /* enterprise number: element unknown to us */
                len -= 4;
                fid = 0;
            }
            if (flen == 0 || (flen == 0xffff && version == NF_VERSION_V9)) {
                return bad(err, "zero-length template field");
            }
            tmp.f[i] = (struct nf_field_def){fid, flen};
        }
        if (n == 0 && version == NF_VERSION_V9) {
            return bad(err, "template without fields");
        }
        struct nf_dec_template *t =
            find_template(d, version, domain, id, n > 0);
        if (n == 0) {
            if (t) {
                t->id = 0; /* IPFIX template withdrawal */
            }
        } else if (t) {
            *t = tmp;
        }
        info->n_templates++;
    }
    return 0;
}

static void
set_field(struct nf_flow *f, uint16_t id, const uint8_t *p, size_t n,
          uint32_t unix_secs, uint32_t uptime, bool *has_addr)
{
    switch (id) {
    case IE_SRC_IPV4:
    case IE_DST_IPV4:
        if (n == 4) {
            memcpy(id == IE_SRC_IPV4 ? f->src : f->dst, p, 4);
            f->family = 4;
            *has_addr = true;
        }
        break;
    case IE_SRC_IPV6:
    case IE_DST_IPV6:
        if (n == 16) {
            memcpy(id == IE_SRC_IPV6 ? f->src : f->dst, p, 16);
            f->family = 6;
            *has_addr = true;
        }
        break;
    case IE_SRC_PORT:
        f->src_port = (uint16_t) be_read(p, n);
        break;
    case IE_DST_PORT:
        f->dst_port = (uint16_t) be_read(p, n);
        break;
    case IE_PROTOCOL:
        f->protocol = (uint8_t) be_read(p, n);
        break;
    case IE_TCP_FLAGS:
        f->tcp_flags = (uint8_t) be_read(p, n);
        break;
    case IE_OCTETS:
        f->bytes = be_read(p, n);
        break;
    case IE_PACKETS:
        f->packets = be_read(p, n);
        break;
    case IE_INPUT_IF:
        f->in_if = (uint32_t) be_read(p, n);
        break;
    case IE_OUTPUT_IF:
        f->out_if = (uint32_t) be_read(p, n);
        break;
    case IE_FIRST_SWITCHED:
    case IE_LAST_SWITCHED: {
        uint32_t t = (uint32_t) be_read(p, n);
        uint64_t ms = (uint64_t) unix_secs * 1000 - (uint32_t) (uptime - t);
        if (id == IE_FIRST_SWITCHED) {
            f->start_ms = ms;
        } else {
            f->end_ms = ms;
        }
        break;
    }
    case IE_FLOW_START_MS:
        f->start_ms = be_read(p, n);
        break;
    case IE_FLOW_END_MS:
        f->end_ms = be_read(p, n);
        break;
    case IE_FLOW_START_SEC:
        f->start_ms = be_read(p, n) * 1000;
        break;
    case IE_FLOW_END_SEC:
        f->end_ms = be_read(p, n) * 1000;
        break;
    default:
        break;
    }
}

static int
parse_data(const struct nf_dec_template *t, const uint8_t *p, size_t len,
           uint32_t unix_secs, uint32_t uptime, nf_flow_cb cb, void *aux,
           struct nf_packet_info *info, struct dpf_error *err)
{
    size_t min_len = 0;
    for (unsigned i = 0; i < t->n; i++) {
        min_len += t->f[i].len == 0xffff ? 1 : t->f[i].len;
    }
    while (len >= min_len && len > 0) {
        struct nf_flow f = {0};
        bool has_addr = false;
        for (unsigned i = 0; i < t->n; i++) {
            size_t n = t->f[i].len;
            if (n == 0xffff) {
                if (len < 1) {
                    return bad(err, "truncated variable-length field");
                }
                n = p[0];
                p++;
                len--;
                if (n == 255) {
                    if (len < 2) {
                        return bad(err, "truncated variable length");
                    }
                    n = (size_t) be_read(p, 2);
                    p += 2;
                    len -= 2;
                }
            }
            if (n > len) {
                return bad(err, "truncated data record");
            }
            set_field(&f, t->f[i].id, p, n, unix_secs, uptime, &has_addr);
            p += n;
            len -= n;
        }
        if (has_addr) {
            info->n_records++;
            if (cb) {
                cb(aux, &f);
            }
        }
        if (min_len == 0) {
            break;
        }
    }
    return 0; /* what is left is padding */
}

int
nf_decoder_feed(struct nf_decoder *d, const void *buf, size_t len,
                nf_flow_cb cb, void *aux, struct nf_packet_info *info,
                struct dpf_error *err)
{
    const uint8_t *p = buf;
    struct nf_packet_info dummy;
    if (!info) {
        info = &dummy;
    }
    memset(info, 0, sizeof *info);
    if (len < 4) {
        return bad(err, "datagram shorter than a header");
    }
    unsigned version = (unsigned) be_read(p, 2);
    size_t hlen;
    if (version == NF_VERSION_V9) {
        hlen = V9_HDR_LEN;
        if (len < hlen) {
            return bad(err, "truncated v9 header");
        }
        info->count = (unsigned) be_read(p + 2, 2);
        info->uptime_ms = (uint32_t) be_read(p + 4, 4);
        info->unix_secs = (uint32_t) be_read(p + 8, 4);
        info->sequence = (uint32_t) be_read(p + 12, 4);
        info->domain_id = (uint32_t) be_read(p + 16, 4);
    } else if (version == NF_VERSION_IPFIX) {
        hlen = IPFIX_HDR_LEN;
        if (len < hlen) {
            return bad(err, "truncated IPFIX header");
        }
        size_t total = (size_t) be_read(p + 2, 2);
        if (total != len) {
            return bad(err, "IPFIX length does not match the datagram");
        }
        info->unix_secs = (uint32_t) be_read(p + 4, 4);
        info->sequence = (uint32_t) be_read(p + 8, 4);
        info->domain_id = (uint32_t) be_read(p + 12, 4);
    } else {
        return bad(err, "unsupported version");
    }
    info->version = version;
    p += hlen;
    len -= hlen;
    while (len > 0) {
        if (len < 4) {
            if (version == NF_VERSION_V9) {
                break; /* trailing padding */
            }
            return bad(err, "truncated set header");
        }
        uint16_t id = (uint16_t) be_read(p, 2);
        size_t slen = (size_t) be_read(p + 2, 2);
        if (slen < 4 || slen > len) {
            return bad(err, "bad set length");
        }
        const uint8_t *body = p + 4;
        size_t blen = slen - 4;
        int rc = 0;
        bool is_tmpl = version == NF_VERSION_V9 ? id == 0 : id == 2;
        bool is_opt = version == NF_VERSION_V9 ? id == 1 : id == 3;
        if (is_tmpl) {
            rc = parse_templates(d, version, info->domain_id, body, blen, info,
                                 err);
        } else if (is_opt || id < 256) {
            /* options templates and reserved ids: skipped */
        } else {
            const struct nf_dec_template *t =
                find_template(d, version, info->domain_id, id, false);
            if (t) {
                rc = parse_data(t, body, blen, info->unix_secs, info->uptime_ms,
                                cb, aux, info, err);
            }
        }
        if (rc < 0) {
            return rc;
        }
        p += slen;
        len -= slen;
    }
    return 0;
}
