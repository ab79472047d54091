/* doca_telemetry_exporter_netflow.h: DOCA's NetFlow exporter API
 * (process-wide, no handle) implemented by dpf on top of libdts-exporter.
 *
 * An app describes its records with a template (a list of NetFlow
 * information elements, ids and byte lengths from
 * doca_telemetry_exporter_netflow_types.h) and sends packed structs laid
 * out exactly as the template, multi-byte values in network byte order.
 * dpf converts each record to a flow (addresses, ports, protocol, TCP
 * flags, ToS, byte and packet counts, first/last switched, interfaces) and
 * sends it over IPC to dts, which re-exports NetFlow v9 or IPFIX to its
 * configured collector (netflow-collector-ip/-port/-version). Elements
 * outside that set are skipped; docs/services/dts.md lists the mapping.
 * Direct export from the app to a collector
 * (set_collector_addr/_port/_max_packet_size) is recorded but not done:
 * with IPC disabled, send answers DOCA_ERROR_NOT_SUPPORTED.
 *
 * Order: init -> set_* -> start -> send... -> flush -> destroy; init twice
 * or start twice gives DOCA_ERROR_BAD_STATE, as does send/flush before
 * start. Not thread-safe (one global exporter, as in DOCA). */
#ifndef DOCA_TELEMETRY_EXPORTER_NETFLOW_H_
#define DOCA_TELEMETRY_EXPORTER_NETFLOW_H_

#include <stddef.h>
#include <stdint.h>

#include <doca_telemetry_exporter.h>
#include <doca_telemetry_exporter_netflow_types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* DOCA's fixed application id of NetFlow data (a GUID). */
#define DOCA_NETFLOW_APP_ID                                               \
    {                                                                     \
        0x99, 0x10, 0xc1, 0x28, 0x39, 0x61, 0x47, 0xe6, 0xbe, 0x6c, 0x71, \
            0x5a, 0x0f, 0x03, 0xad, 0xd6                                  \
    }
/* The usual collector port. */
#define DOCA_NETFLOW_DEFAULT_PORT 2055

/* Opaque: one template field, and a template. */
struct doca_telemetry_exporter_netflow_flowset_field;
struct doca_telemetry_exporter_netflow_template;

/* Set up the exporter; source_id is the NetFlow source id. BAD_STATE if
 * already initialised (destroy first). */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_netflow_init(uint16_t source_id);

/* Direct collector export: recorded, not done (see above). */
DOCA_EXPERIMENTAL
void
doca_telemetry_exporter_netflow_set_collector_addr(const char *collector_addr);
DOCA_EXPERIMENTAL
void
doca_telemetry_exporter_netflow_set_collector_port(uint16_t collector_port);
DOCA_EXPERIMENTAL
void
doca_telemetry_exporter_netflow_set_max_packet_size(uint16_t max_packet_size);

/* Template fields: type = element id, length in bytes (1..16, or up to
 * 65535 for the byte-string elements the mapping skips). */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_netflow_field_create(
    struct doca_telemetry_exporter_netflow_flowset_field **field);
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_netflow_field_set_type(
    struct doca_telemetry_exporter_netflow_flowset_field *field, uint16_t type);
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_netflow_field_set_len(
    struct doca_telemetry_exporter_netflow_flowset_field *field,
    uint16_t length);
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_netflow_field_destroy(
    struct doca_telemetry_exporter_netflow_flowset_field *field);

/* Buffer size (bytes) and data root, as for a schema (after init). */
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_netflow_set_buf_size(uint64_t size);
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_netflow_get_buf_size(uint64_t *size);
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_netflow_set_buf_data_root(const char *path);
/* A copy the caller frees. */
DOCA_EXPERIMENTAL
doca_error_t
doca_telemetry_exporter_netflow_get_buf_data_root(const char **path);

/* Templates: the template takes each field added to it. */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_netflow_template_create(
    struct doca_telemetry_exporter_netflow_template **netflow_template);
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_netflow_template_add_field(
    struct doca_telemetry_exporter_netflow_template *netflow_template,
    struct doca_telemetry_exporter_netflow_flowset_field *field);
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_netflow_template_destroy(
    struct doca_telemetry_exporter_netflow_template *netflow_template);

/* File write: recorded, not done (as for schemas). */
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_netflow_set_file_write_enabled(void);
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_netflow_set_file_write_max_size(size_t size);
DOCA_EXPERIMENTAL
doca_error_t
doca_telemetry_exporter_netflow_get_file_write_max_size(size_t *size);
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_netflow_set_file_write_max_age(
    doca_telemetry_exporter_timestamp_t max_age);
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_netflow_get_file_write_max_age(
    doca_telemetry_exporter_timestamp_t *max_age);

/* IPC to dts. */
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_netflow_set_ipc_enabled(void);
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_netflow_set_ipc_sockets_dir(const char *path);
/* A copy the caller frees. */
DOCA_EXPERIMENTAL
doca_error_t
doca_telemetry_exporter_netflow_get_ipc_sockets_dir(const char **path);

/* Source id / tag of the IPC session (as for sources). */
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_netflow_source_set_id(const char *source_id);
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_netflow_source_set_tag(const char *source_tag);

/* Finish set-up and connect. BAD_STATE if not initialised or started. */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_netflow_start(void);

/* Send nof_records records (records[i] points at one packed record laid
 * out as netflow_template). *nof_records_sent (if not NULL) counts those
 * queued. BAD_STATE before start; INVALID_VALUE for NULLs or an empty
 * template. */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_netflow_send(
    const struct doca_telemetry_exporter_netflow_template *netflow_template,
    const void **records, size_t nof_records, size_t *nof_records_sent);

/* Write what is buffered now. BAD_STATE before start. */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_netflow_flush(void);

/* Flush, disconnect, free; init may be called again after it. */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_netflow_destroy(void);

#ifdef __cplusplus
}
#endif

#endif
