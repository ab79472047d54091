/* netflow: NetFlow v9 (RFC 3954) and IPFIX (RFC 7011) export over UDP.
 *
 * The exporter knows two fixed templates, one per address family:
 *   256  IPv4: sourceIPv4Address(8) destinationIPv4Address(12)
 *   257  IPv6: sourceIPv6Address(27) destinationIPv6Address(28)
 * followed by sourceTransportPort(7) destinationTransportPort(11)
 * protocolIdentifier(4) tcpControlBits(6, 1 byte) octetDeltaCount(1, 8)
 * packetDeltaCount(2, 8) ingressInterface(10, 4) egressInterface(14, 4)
 * and the flow times: v9 uses FIRST_SWITCHED(22)/LAST_SWITCHED(21) in
 * sysUptime milliseconds, IPFIX flowStartMilliseconds(152) /
 * flowEndMilliseconds(153) as absolute epoch milliseconds.
 *
 * Records are packed into MTU-bounded datagrams (templates are sent in the
 * first datagram and again every `template_refresh_packets` datagrams or
 * `template_refresh_sec` seconds, whichever comes first). Sequence numbers
 * follow the RFCs: v9 counts export packets, IPFIX counts data records
 * sent before this message, both per observation domain / source id.
 * sysUptime is measured from CLOCK_BOOTTIME.
 *
 * The decoder is a small one used by tests and the fuzz target: it keeps
 * the templates it has seen and turns data records of any template that
 * carries the fields above into struct nf_flow.
 *
 * Not thread-safe: one exporter per thread (or lock around it). */
#ifndef DPF_NETFLOW_H
#define DPF_NETFLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/error.h"

/* Export protocol version on the wire. */
enum nf_version {
    NF_VERSION_V9 = 9,     /* NetFlow v9, RFC 3954 */
    NF_VERSION_IPFIX = 10, /* IPFIX, RFC 7011 */
};

/* Template ids of the two built-in templates. */
#define NF_TEMPLATE_IPV4 256
#define NF_TEMPLATE_IPV6 257

/* One flow record. */
struct nf_flow {
    uint8_t family;    /* 4 or 6 */
    uint8_t protocol;  /* IP protocol number */
    uint8_t tcp_flags; /* OR of the TCP flags seen */
    uint8_t src[16];   /* source address (first 4 bytes for IPv4) */
    uint8_t dst[16];   /* destination address */
    uint16_t src_port; /* source L4 port, host order */
    uint16_t dst_port; /* destination L4 port, host order */
    uint64_t bytes;    /* octets in the flow */
    uint64_t packets;  /* packets in the flow */
    uint64_t start_ms; /* first packet, epoch milliseconds */
    uint64_t end_ms;   /* last packet, epoch milliseconds */
    uint32_t in_if;    /* input interface index */
    uint32_t out_if;   /* output interface index */
};

/* Exporter configuration; zero fields take the defaults. */
struct nf_exporter_config {
    enum nf_version version;           /* 9 or 10 (required) */
    const char *host;                  /* collector address (required) */
    uint16_t port;                     /* collector UDP port (required) */
    uint32_t domain_id;                /* v9 source id / IPFIX domain */
    unsigned mtu;                      /* path MTU (0 = 1500) */
    unsigned template_refresh_packets; /* 0 = 20 */
    unsigned template_refresh_sec;     /* 0 = 30 */
};

/* Exporter counters (monotonic). */
struct nf_exporter_stats {
    uint64_t packets;   /* datagrams sent */
    uint64_t records;   /* data records sent */
    uint64_t templates; /* template sets sent */
    uint64_t errors;    /* send failures and rejected records */
};

struct nf_exporter;

/* Resolve the collector and open the UDP socket. NULL on error (err says
 * which field is wrong). */
struct nf_exporter *nf_exporter_create(const struct nf_exporter_config *cfg,
                                       struct dpf_error *err);
/* Add one record; a full datagram is sent on the way. 0 or -errno. */
int nf_exporter_add(struct nf_exporter *e, const struct nf_flow *f);
/* Send what is pending now. 0 or -errno. */
int nf_exporter_flush(struct nf_exporter *e);
/* Counters. */
void nf_exporter_get_stats(const struct nf_exporter *e,
                           struct nf_exporter_stats *st);
/* Flush and free. NULL is a no-op. */
void nf_exporter_destroy(struct nf_exporter *e);

/* Encode one datagram without sending it (used by tests): header plus,
 * when with_templates, the template set, plus the data records. Returns
 * the datagram length, or -EMSGSIZE when it does not fit in cap. seq and
 * uptime/export time are caller-chosen. */
long nf_encode_packet(enum nf_version v, uint32_t domain_id, uint32_t seq,
                      uint32_t uptime_ms, uint32_t unix_secs,
                      bool with_templates, const struct nf_flow *flows,
                      size_t n, uint8_t *buf, size_t cap);

/* ---- decoder (tests, fuzzing) ------------------------------------------ */

/* Header fields of a decoded datagram. */
struct nf_packet_info {
    unsigned version;     /* 9 or 10 */
    uint32_t sequence;    /* header sequence number */
    uint32_t domain_id;   /* source id / observation domain */
    uint32_t unix_secs;   /* export time */
    uint32_t uptime_ms;   /* v9 sysUptime (0 for IPFIX) */
    unsigned count;       /* v9 header count (records incl. templates) */
    unsigned n_templates; /* template records seen */
    unsigned n_records;   /* data records decoded */
};

/* Called for each decoded data record. */
typedef void (*nf_flow_cb)(void *aux, const struct nf_flow *f);

struct nf_decoder;

/* A decoder remembering up to 64 templates. */
struct nf_decoder *nf_decoder_create(void);
/* Decode one datagram. 0 or -EBADMSG (err explains). Records of unknown
 * templates are skipped. */
int nf_decoder_feed(struct nf_decoder *d, const void *buf, size_t len,
                    nf_flow_cb cb, void *aux, struct nf_packet_info *info,
                    struct dpf_error *err);
void nf_decoder_destroy(struct nf_decoder *d);

#endif
