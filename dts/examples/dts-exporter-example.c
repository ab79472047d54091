/* dts-exporter-example: an application using libdts-exporter. It declares
 * one event type, sends a few events, two counter samples and NetFlow
 * records to dts, and prints what the library counted.
 *
 *   dts-exporter-example [--socket PATH | --ipc-dir DIR] [--source-id ID]
 *       [--source-tag TAG] [--events N]
 *       [--flow SRC,DST,SPORT,DPORT,PROTO,BYTES,PACKETS]...
 *
 * Without --flow it sends two sample flows (one IPv4, one IPv6). */
#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dpf/dts-exporter.h"

/* The packed layout of our event type (see the field list below). */
struct example_event {
    uint64_t timestamp;
    uint32_t seq;
    uint16_t port;
    uint8_t addr[4];
    char name[16];
    double load;
} __attribute__((packed));

static const struct dts_exporter_field example_fields[] = {
    {"timestamp", DTS_EXPORTER_TIMESTAMP, 1},
    {"seq", DTS_EXPORTER_U32, 1},
    {"port", DTS_EXPORTER_U16, 1},
    {"addr", DTS_EXPORTER_IP4, 1},
    {"name", DTS_EXPORTER_STRING, 16},
    {"load", DTS_EXPORTER_DOUBLE, 1},
};

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static int
parse_addr(const char *s, struct dts_exporter_netflow_record *r, bool src)
{
    uint8_t *dst = src ? r->src : r->dst;
    if (inet_pton(AF_INET, s, dst) == 1) {
        r->family = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, s, dst) == 1) {
        r->family = 6;
        return 0;
    }
    return -1;
}

/* SRC,DST,SPORT,DPORT,PROTO,BYTES,PACKETS */
static int
parse_flow(const char *arg, struct dts_exporter_netflow_record *r)
{
    char *copy = strdup(arg);
    char *fields[7];
    int n = 0;
    char *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t && n < 7;
         t = strtok_r(NULL, ",", &save)) {
        fields[n++] = t;
    }
    int rc = -1;
    memset(r, 0, sizeof *r);
    if (n == 7 && parse_addr(fields[0], r, true) == 0) {
        uint8_t fam = r->family;
        if (parse_addr(fields[1], r, false) == 0 && r->family == fam) {
            r->src_port = (uint16_t) strtoul(fields[2], NULL, 10);
            r->dst_port = (uint16_t) strtoul(fields[3], NULL, 10);
            r->protocol = (uint8_t) strtoul(fields[4], NULL, 10);
            r->bytes = strtoull(fields[5], NULL, 10);
            r->packets = strtoull(fields[6], NULL, 10);
            r->tcp_flags = r->protocol == 6 ? 0x1b : 0;
            uint64_t ms = now_ns() / 1000000;
            r->start_ms = ms - 5000;
            r->end_ms = ms - 100;
            r->in_if = 1;
            r->out_if = 2;
            rc = 0;
        }
    }
    free(copy);
    return rc;
}

static void
usage(FILE *f)
{
    fprintf(f, "Usage: dts-exporter-example [--socket PATH | --ipc-dir DIR]\n"
               "  [--source-id ID] [--source-tag TAG] [--events N]\n"
               "  [--flow SRC,DST,SPORT,DPORT,PROTO,BYTES,PACKETS]...\n");
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},
        {"ipc-dir", required_argument, NULL, 'd'},
        {"source-id", required_argument, NULL, 'i'},
        {"source-tag", required_argument, NULL, 't'},
        {"events", required_argument, NULL, 'e'},
        {"flow", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct dts_exporter_options o = {.source_id = "example",
                                     .block_when_full = true};
    struct dts_exporter_netflow_record flows[64];
    int n_flows = 0, n_events = 3, c;
    while ((c = getopt_long(argc, argv, "s:d:i:t:e:f:h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            o.socket_path = optarg;
            break;
        case 'd':
            o.ipc_dir = optarg;
            break;
        case 'i':
            o.source_id = optarg;
            break;
        case 't':
            o.source_tag = optarg;
            break;
        case 'e':
            n_events = atoi(optarg);
            break;
        case 'f':
            if (n_flows == 64 || parse_flow(optarg, &flows[n_flows]) < 0) {
                fprintf(stderr, "dts-exporter-example: bad --flow %s\n",
                        optarg);
                return 2;
            }
            n_flows++;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (n_flows == 0) {
        parse_flow("10.203.0.1,10.203.1.1,40000,443,6,1500,10", &flows[0]);
        parse_flow("2001:db8::1,2001:db8::2,40001,53,17,300,3", &flows[1]);
        n_flows = 2;
    }

    struct dts_exporter *ex = dts_exporter_create(&o);
    if (!ex) {
        perror("dts-exporter-example: create");
        return 1;
    }
    int type =
        dts_exporter_add_type(ex, "example_event", example_fields,
                              sizeof example_fields / sizeof example_fields[0]);
    if (type < 0 ||
        dts_exporter_type_size(ex, type) != sizeof(struct example_event)) {
        fprintf(stderr, "dts-exporter-example: bad event type\n");
        dts_exporter_destroy(ex);
        return 1;
    }
    int rc = dts_exporter_start(ex);
    if (rc < 0) {
        fprintf(stderr, "dts-exporter-example: cannot reach dts: %s\n",
                strerror(-rc));
        dts_exporter_destroy(ex);
        return 1;
    }
    for (int i = 0; i < n_events; i++) {
        struct example_event ev = {.timestamp = now_ns(),
                                   .seq = (uint32_t) i,
                                   .port = (uint16_t) (8000 + i),
                                   .addr = {192, 0, 2, (uint8_t) (i + 1)},
                                   .load = 0.5 * i};
        snprintf(ev.name, sizeof ev.name, "ev-%d", i % 1000000);
        dts_exporter_send_event(ex, type, &ev, sizeof ev);
    }
    dts_exporter_send_counter(ex, "example_requests", 42);
    dts_exporter_send_gauge(ex, "example_temperature", 36.6);
    for (int i = 0; i < n_flows; i++) {
        dts_exporter_send_netflow(ex, &flows[i]);
    }
    rc = dts_exporter_flush(ex);
    struct dts_exporter_stats st;
    dts_exporter_get_stats(ex, &st);
    printf("events=%llu counters=%llu netflow=%llu dropped=%llu errors=%llu\n",
           (unsigned long long) st.events, (unsigned long long) st.counters,
           (unsigned long long) st.netflow, (unsigned long long) st.dropped,
           (unsigned long long) st.errors);
    dts_exporter_destroy(ex);
    return rc < 0 || st.dropped ? 1 : 0;
}
