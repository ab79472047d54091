/* A DOCA telemetry exporter application written from DOCA's public
 * documentation (the "DOCA Telemetry Exporter" programming guide, the
 * doca_telemetry_exporter.h / _netflow.h API reference and the
 * telemetry_export / telemetry_export_netflow / metrics samples it
 * describes), the way a DOCA sample is written. It uses DOCA's names only
 * and is built by tests/system/test_dts_doca_api.py with
 *     cc doca_telemetry_app.c $(pkg-config --cflags --libs
 *                                doca-telemetry-exporter)
 * against dpf's library, unchanged.
 *
 * What it sends (the test checks each at dts's outputs):
 *  - 10 events of type "example_event" from source doca_app_src /
 *    doca_app_tag (-> Fluent Forward);
 *  - metrics with the constant label hostname=doca-test-host and the label
 *    set {interface}: packets_sent_total (absolute counter),
 *    requests_total (counter increments of 5, 3 times per interface) and
 *    bandwidth_mbps (gauge) for eth0 and eth1 (-> Prometheus);
 *  - 4 NetFlow records through an app-defined template (-> NetFlow).
 *
 * Usage: doca_telemetry_app <ipc_sockets_dir> */
#include <arpa/inet.h>
#include <endian.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <doca_telemetry_exporter.h>
#include <doca_telemetry_exporter_netflow.h>

#define NB_EVENTS 10
#define STR_SIZE 64
#define NB_IFACES 2

struct example_event {
    doca_telemetry_exporter_timestamp_t timestamp;
    int32_t event_number;
    int32_t iter_number;
    uint64_t string_number;
    char example_string[STR_SIZE];
} __attribute__((packed));

#define CHECK(call)                                                     \
    do {                                                                \
        doca_error_t r_ = (call);                                       \
        if (r_ != DOCA_SUCCESS) {                                       \
            fprintf(stderr, "%s failed: %s (%s)\n", #call,              \
                    doca_error_get_name(r_), doca_error_get_descr(r_)); \
            return r_;                                                  \
        }                                                               \
    } while (0)

static doca_error_t
add_field(struct doca_telemetry_exporter_type *type, const char *name,
          const char *type_name, uint16_t len)
{
    struct doca_telemetry_exporter_field *field;
    CHECK(doca_telemetry_exporter_field_create(&field));
    doca_telemetry_exporter_field_set_name(field, name);
    doca_telemetry_exporter_field_set_description(field, name);
    doca_telemetry_exporter_field_set_type_name(field, type_name);
    doca_telemetry_exporter_field_set_array_len(field, len);
    CHECK(doca_telemetry_exporter_type_add_field(type, field));
    return DOCA_SUCCESS;
}

static doca_error_t
events_and_metrics(const char *ipc_dir)
{
    struct doca_telemetry_exporter_schema *schema;
    struct doca_telemetry_exporter_type *type;
    struct doca_telemetry_exporter_source *source;
    doca_telemetry_exporter_type_index_t index;

    CHECK(doca_telemetry_exporter_schema_init("doca_app_schema", &schema));
    doca_telemetry_exporter_schema_set_buf_size(
        schema, sizeof(struct example_event) * 5);
    doca_telemetry_exporter_schema_set_ipc_enabled(schema);
    doca_telemetry_exporter_schema_set_ipc_sockets_dir(schema, ipc_dir);

    CHECK(doca_telemetry_exporter_type_create(&type));
    CHECK(add_field(type, "timestamp",
                    DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_TIMESTAMP, 1));
    CHECK(add_field(type, "event_number",
                    DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_INT32, 1));
    CHECK(add_field(type, "iter_num", DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_INT32,
                    1));
    CHECK(add_field(type, "string_number",
                    DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_UINT64, 1));
    CHECK(add_field(type, "example_string",
                    DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_CHAR, STR_SIZE));
    CHECK(doca_telemetry_exporter_schema_add_type(schema, "example_event", type,
                                                  &index));
    CHECK(doca_telemetry_exporter_schema_start(schema));

    CHECK(doca_telemetry_exporter_source_create(schema, &source));
    doca_telemetry_exporter_source_set_id(source, "doca_app_src");
    doca_telemetry_exporter_source_set_tag(source, "doca_app_tag");
    CHECK(doca_telemetry_exporter_source_start(source));

    doca_telemetry_exporter_timestamp_t ts;
    for (int i = 0; i < NB_EVENTS; i++) {
        struct example_event ev = {0};
        CHECK(doca_telemetry_exporter_get_timestamp(&ts));
        ev.timestamp = ts;
        ev.event_number = i;
        ev.iter_number = i / 5;
        ev.string_number = (uint64_t) i * 1000;
        snprintf(ev.example_string, sizeof ev.example_string, "example_str_%d",
                 i);
        CHECK(doca_telemetry_exporter_source_report(source, index, &ev, 1));
    }
    CHECK(doca_telemetry_exporter_source_flush(source));

    /* metrics: context after source_start */
    static const char *ifaces[NB_IFACES] = {"eth0", "eth1"};
    const char *label_names[] = {"interface"};
    doca_telemetry_exporter_label_set_id_t set_id = 0;
    CHECK(doca_telemetry_exporter_metrics_create_context(source));
    CHECK(doca_telemetry_exporter_metrics_set_flush_interval_ms(source, 1000));
    CHECK(doca_telemetry_exporter_metrics_add_constant_label(source, "hostname",
                                                             "doca-test-host"));
    CHECK(doca_telemetry_exporter_metrics_add_label_names(source, label_names,
                                                          1, &set_id));
    for (int it = 0; it < 3; it++) {
        CHECK(doca_telemetry_exporter_get_timestamp(&ts));
        for (int i = 0; i < NB_IFACES; i++) {
            const char *values[] = {ifaces[i]};
            uint64_t sent = (uint64_t) (1000 + it * 100) * (uint64_t) (i + 1);
            CHECK(doca_telemetry_exporter_metrics_add_counter(
                source, ts, "packets_sent_total", sent, set_id, values));
            CHECK(doca_telemetry_exporter_metrics_add_counter_increment(
                source, ts, "requests_total", 5, set_id, values));
            CHECK(doca_telemetry_exporter_metrics_add_gauge(
                source, ts, "bandwidth_mbps", (50.0 + it * 5.5) * (i + 1),
                set_id, values));
        }
    }
    CHECK(doca_telemetry_exporter_metrics_flush(source));
    CHECK(doca_telemetry_exporter_metrics_destroy_context(source));

    doca_telemetry_exporter_ipc_status_t st;
    CHECK(doca_telemetry_exporter_check_ipc_status(source, &st));
    printf("ipc_status=%d\n", (int) st);
    CHECK(doca_telemetry_exporter_source_destroy(source));
    CHECK(doca_telemetry_exporter_schema_destroy(schema));
    return DOCA_SUCCESS;
}

/* NetFlow record laid out as the template below (packed, network order). */
struct flow_record {
    uint32_t src_addr_v4;
    uint32_t dst_addr_v4;
    uint16_t src_port;
    uint16_t dst_port;
    uint8_t protocol;
    uint8_t tcp_flags;
    uint32_t d_pkts;
    uint32_t d_octets;
    uint16_t input;
    uint16_t output;
    char application_name
        [DOCA_TELEMETRY_EXPORTER_NETFLOW_APPLICATION_NAME_DEFAULT_LENGTH];
} __attribute__((packed));

static doca_error_t
add_nf_field(struct doca_telemetry_exporter_netflow_template *t, uint16_t type,
             uint16_t len)
{
    struct doca_telemetry_exporter_netflow_flowset_field *field;
    CHECK(doca_telemetry_exporter_netflow_field_create(&field));
    doca_telemetry_exporter_netflow_field_set_type(field, type);
    doca_telemetry_exporter_netflow_field_set_len(field, len);
    doca_error_t r =
        doca_telemetry_exporter_netflow_template_add_field(t, field);
    if (r != DOCA_SUCCESS) {
        doca_telemetry_exporter_netflow_field_destroy(field);
    }
    return r;
}

static doca_error_t
netflow(const char *ipc_dir)
{
    struct doca_telemetry_exporter_netflow_template *t;
    CHECK(doca_telemetry_exporter_netflow_template_create(&t));
    CHECK(add_nf_field(
        t, DOCA_TELEMETRY_EXPORTER_NETFLOW_IPV4_SRC_ADDR,
        DOCA_TELEMETRY_EXPORTER_NETFLOW_IPV4_SRC_ADDR_DEFAULT_LENGTH));
    CHECK(add_nf_field(
        t, DOCA_TELEMETRY_EXPORTER_NETFLOW_IPV4_DST_ADDR,
        DOCA_TELEMETRY_EXPORTER_NETFLOW_IPV4_DST_ADDR_DEFAULT_LENGTH));
    CHECK(add_nf_field(
        t, DOCA_TELEMETRY_EXPORTER_NETFLOW_L4_SRC_PORT,
        DOCA_TELEMETRY_EXPORTER_NETFLOW_L4_SRC_PORT_DEFAULT_LENGTH));
    CHECK(add_nf_field(
        t, DOCA_TELEMETRY_EXPORTER_NETFLOW_L4_DST_PORT,
        DOCA_TELEMETRY_EXPORTER_NETFLOW_L4_DST_PORT_DEFAULT_LENGTH));
    CHECK(
        add_nf_field(t, DOCA_TELEMETRY_EXPORTER_NETFLOW_PROTOCOL,
                     DOCA_TELEMETRY_EXPORTER_NETFLOW_PROTOCOL_DEFAULT_LENGTH));
    CHECK(
        add_nf_field(t, DOCA_TELEMETRY_EXPORTER_NETFLOW_TCP_FLAGS,
                     DOCA_TELEMETRY_EXPORTER_NETFLOW_TCP_FLAGS_DEFAULT_LENGTH));
    CHECK(add_nf_field(t, DOCA_TELEMETRY_EXPORTER_NETFLOW_IN_PKTS,
                       DOCA_TELEMETRY_EXPORTER_NETFLOW_IN_PKTS_DEFAULT_LENGTH));
    CHECK(
        add_nf_field(t, DOCA_TELEMETRY_EXPORTER_NETFLOW_IN_BYTES,
                     DOCA_TELEMETRY_EXPORTER_NETFLOW_IN_BYTES_DEFAULT_LENGTH));
    CHECK(add_nf_field(
        t, DOCA_TELEMETRY_EXPORTER_NETFLOW_INPUT_SNMP,
        DOCA_TELEMETRY_EXPORTER_NETFLOW_INPUT_SNMP_DEFAULT_LENGTH));
    CHECK(add_nf_field(
        t, DOCA_TELEMETRY_EXPORTER_NETFLOW_OUTPUT_SNMP,
        DOCA_TELEMETRY_EXPORTER_NETFLOW_OUTPUT_SNMP_DEFAULT_LENGTH));
    CHECK(add_nf_field(
        t, DOCA_TELEMETRY_EXPORTER_NETFLOW_APPLICATION_NAME,
        DOCA_TELEMETRY_EXPORTER_NETFLOW_APPLICATION_NAME_DEFAULT_LENGTH));

    CHECK(doca_telemetry_exporter_netflow_init(111));
    doca_telemetry_exporter_netflow_set_ipc_enabled();
    doca_telemetry_exporter_netflow_set_ipc_sockets_dir(ipc_dir);
    doca_telemetry_exporter_netflow_set_collector_addr("127.0.0.1");
    doca_telemetry_exporter_netflow_set_collector_port(
        DOCA_NETFLOW_DEFAULT_PORT);
    doca_telemetry_exporter_netflow_source_set_id("doca_nf_src");
    doca_telemetry_exporter_netflow_source_set_tag("doca_nf_tag");
    CHECK(doca_telemetry_exporter_netflow_start());

    struct flow_record recs[4];
    const void *ptrs[4];
    for (int i = 0; i < 4; i++) {
        char src[32];
        memset(&recs[i], 0, sizeof recs[i]);
        snprintf(src, sizeof src, "192.168.120.%d", i + 1);
        recs[i].src_addr_v4 = inet_addr(src);
        recs[i].dst_addr_v4 = inet_addr("192.168.121.9");
        recs[i].src_port = htobe16((uint16_t) (5353 + i));
        recs[i].dst_port = htobe16(8000);
        recs[i].protocol = i % 2 ? 6 : 17;
        recs[i].d_pkts = htobe32((uint32_t) (9 + i));
        recs[i].d_octets = htobe32((uint32_t) (1909 + 100 * i));
        recs[i].input = htobe16(1);
        recs[i].output = htobe16(2);
        strcpy(recs[i].application_name, "DOCA TELEMETRY NETFLOW TEST");
        ptrs[i] = &recs[i];
    }
    size_t sent = 0;
    CHECK(doca_telemetry_exporter_netflow_send(t, ptrs, 4, &sent));
    printf("netflow_sent=%zu\n", sent);
    CHECK(doca_telemetry_exporter_netflow_flush());
    CHECK(doca_telemetry_exporter_netflow_destroy());
    CHECK(doca_telemetry_exporter_netflow_template_destroy(t));
    return DOCA_SUCCESS;
}

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s <ipc_sockets_dir>\n", argv[0]);
        return 2;
    }
    if (events_and_metrics(argv[1]) != DOCA_SUCCESS ||
        netflow(argv[1]) != DOCA_SUCCESS) {
        return 1;
    }
    printf("done\n");
    return 0;
}
