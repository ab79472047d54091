/* doca_telemetry_exporter.h: DOCA's telemetry exporter API (schemas,
 * sources, typed events, the metrics API with label sets) implemented by
 * dpf on top of libdts-exporter and dts's IPC protocol
 * (docs/services/dts-ipc.md). The names, types, constants and results are
 * DOCA's, so an app written against DOCA's documentation builds and runs
 * unchanged; what dpf does not implement is listed in docs/services/dts.md
 * ("DOCA exporter API") and answers DOCA_ERROR_NOT_SUPPORTED.
 *
 * Life cycle (each step's misuse is refused, never undefined):
 *   schema_init -> schema_set_* -> type_create / field_create ->
 *   field_set_* -> type_add_field -> schema_add_type -> schema_start ->
 *   source_create -> source_set_id / _tag -> source_start ->
 *   source_report / metrics_* -> source_flush -> source_destroy ->
 *   schema_destroy.
 * A call out of this order returns DOCA_ERROR_BAD_STATE (adding a type to
 * a started schema, reporting on a source that was not started, creating
 * a source from a schema that was not started, destroying a schema that
 * still has sources); a NULL handle or output pointer returns
 * DOCA_ERROR_INVALID_VALUE. The void setters ignore a NULL handle (DOCA
 * calls that undefined; dpf does nothing) and do nothing once the schema
 * or source has started; their values are checked where they are used
 * (field names and types in schema_add_type, source id and tag in
 * source_start: DOCA_ERROR_INVALID_VALUE), and a copy that ran out of
 * memory is reported there as DOCA_ERROR_NO_MEMORY.
 *
 * Events: a type's fields are C types named by the
 * DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_* strings; an event is the packed
 * struct of those fields in order (__attribute__((packed))). A "char"
 * field with array_len n is a fixed n-byte string. dts turns each event
 * into a JSON record (field name -> value, plus event_type, source_id,
 * source_tag) for its Fluent Forward destinations and data files.
 *
 * Metrics: after source_start, metrics_create_context; counters and
 * gauges with a label set (metrics_add_label_names) and constant labels
 * become Prometheus series dts_app_<name>{source_id,source_tag,labels} on
 * dts's /metrics.
 *
 * Transport: IPC only (schema_set_ipc_enabled); the socket is
 * <ipc_sockets_dir>/dts.sock, the directory DOCA's default unless set
 * (or $DTS_IPC_DIR). Reports are buffered (schema_set_buf_size) and
 * written when the buffer fills, on source_flush / metrics_flush and on
 * destroy; while dts is absent they are dropped, and the library tries
 * again at most once a second.
 *
 * Threads: not thread-safe (as DOCA's): one source per thread, or a lock
 * around every call on a source. The library never prints, exits or
 * aborts inside the app. Strings passed in are copied. */
#ifndef DOCA_TELEMETRY_EXPORTER_H_
#define DOCA_TELEMETRY_EXPORTER_H_

#include <stddef.h>
#include <stdint.h>

#include <doca_compat.h>
#include <doca_error.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What doca_telemetry_exporter_check_ipc_status() reports. */
typedef enum doca_telemetry_exporter_ipc_status {
    DOCA_TELEMETRY_EXPORTER_IPC_STATUS_FAILED = -1, /* enabled, no dts now */
    DOCA_TELEMETRY_EXPORTER_IPC_STATUS_CONNECTED,   /* connected to dts */
    DOCA_TELEMETRY_EXPORTER_IPC_STATUS_DISABLED,    /* IPC not enabled */
} doca_telemetry_exporter_ipc_status_t;

/* Opaque handles. */
struct doca_telemetry_exporter_schema;
struct doca_telemetry_exporter_source;
struct doca_telemetry_exporter_field;
struct doca_telemetry_exporter_type;

/* Index of a type in its schema (from schema_add_type). */
typedef uint8_t doca_telemetry_exporter_type_index_t;
/* Timestamps: nanoseconds since the Unix epoch. */
typedef uint64_t doca_telemetry_exporter_timestamp_t;
/* A label set of the metrics API (from metrics_add_label_names); 0 is
 * "no labels". */
typedef uint64_t doca_telemetry_exporter_label_set_id_t;

/* Field types: the C type of a field, by name. */
#define DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_BOOL "bool"
#define DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_CHAR "char"
#define DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_SHORT "short"
#define DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_INT "int"
#define DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_LONG "long"
#define DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_LONGLONG "long long"
#define DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_UCHAR "unsigned char"
#define DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_USHORT "unsigned short"
#define DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_UINT "unsigned int"
#define DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_ULONG "unsigned long"
#define DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_ULONGLONG "unsigned long long"
#define DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_FLOAT "float"
#define DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_DOUBLE "double"
#define DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_INT8 "int8_t"
#define DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_INT16 "int16_t"
#define DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_INT32 "int32_t"
#define DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_INT64 "int64_t"
#define DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_UINT8 "uint8_t"
#define DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_UINT16 "uint16_t"
#define DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_UINT32 "uint32_t"
#define DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_UINT64 "uint64_t"
/* A timestamp field is a uint64_t of nanoseconds. */
#define DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_TIMESTAMP \
    DOCA_TELEMETRY_EXPORTER_FIELD_TYPE_UINT64

/* GUIDs (opaque events' application id). */
#define DOCA_GUID_SIZE 16
typedef uint8_t doca_guid_t[DOCA_GUID_SIZE];

/* ---- schema ------------------------------------------------------------ */

/* A new schema named schema_name ([A-Za-z0-9_], 1..63 chars). NO_MEMORY,
 * INVALID_VALUE (NULL or bad name). */
DOCA_EXPERIMENTAL
doca_error_t
doca_telemetry_exporter_schema_init(const char *schema_name,
                                    struct doca_telemetry_exporter_schema **s);

/* Batch buffer of each source, bytes (default 60000; at least 4096 is
 * used). */
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_schema_set_buf_size(
    struct doca_telemetry_exporter_schema *s, uint64_t size);
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_schema_get_buf_size(
    struct doca_telemetry_exporter_schema *s, uint64_t *size);

/* Directory for data files. dpf keeps the value (get returns a copy the
 * caller frees) but writes no files itself: dts's `output` key stores the
 * app's events instead. */
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_schema_set_buf_data_root(
    struct doca_telemetry_exporter_schema *s, const char *path);
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_schema_get_buf_data_root(
    struct doca_telemetry_exporter_schema *s, const char **path);

/* Local file write: accepted and remembered, see buf_data_root. */
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_schema_set_file_write_enabled(
    struct doca_telemetry_exporter_schema *s);
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_schema_set_file_write_max_size(
    struct doca_telemetry_exporter_schema *s, size_t size);
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_schema_get_file_write_max_size(
    struct doca_telemetry_exporter_schema *s, size_t *size);
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_schema_set_file_write_max_age(
    struct doca_telemetry_exporter_schema *s,
    doca_telemetry_exporter_timestamp_t max_age);
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_schema_get_file_write_max_age(
    struct doca_telemetry_exporter_schema *s,
    doca_telemetry_exporter_timestamp_t *max_age);

/* IPC to dts (off by default, as in DOCA). */
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_schema_set_ipc_enabled(
    struct doca_telemetry_exporter_schema *s);
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_schema_set_ipc_sockets_dir(
    struct doca_telemetry_exporter_schema *s, const char *sockets_dir);
/* A copy the caller frees. */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_schema_get_ipc_sockets_dir(
    struct doca_telemetry_exporter_schema *s, const char **sockets_dir);
/* Reconnect budget and socket timeout (ms): kept and reported; dpf
 * retries at most once a second and waits at most 5 s for a flush. */
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_schema_set_ipc_reconnect_time(
    struct doca_telemetry_exporter_schema *s, uint32_t max_time);
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_schema_get_ipc_reconnect_time(
    struct doca_telemetry_exporter_schema *s, uint32_t *max_time);
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_schema_set_ipc_reconnect_tries(
    struct doca_telemetry_exporter_schema *s, uint8_t tries);
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_schema_get_ipc_reconnect_tries(
    struct doca_telemetry_exporter_schema *s, uint8_t *tries);
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_schema_set_ipc_socket_timeout(
    struct doca_telemetry_exporter_schema *s, uint32_t timeout);
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_schema_get_ipc_socket_timeout(
    struct doca_telemetry_exporter_schema *s, uint32_t *timeout);

/* Opaque events: not supported by dpf (source_opaque_report answers
 * NOT_SUPPORTED). */
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_schema_set_opaque_events_enabled(
    struct doca_telemetry_exporter_schema *s);

/* ---- types and fields -------------------------------------------------- */

DOCA_EXPERIMENTAL
doca_error_t
doca_telemetry_exporter_type_create(struct doca_telemetry_exporter_type **t);
/* The type takes the field: do not use or destroy it after success. */
DOCA_EXPERIMENTAL
doca_error_t
doca_telemetry_exporter_type_add_field(struct doca_telemetry_exporter_type *t,
                                       struct doca_telemetry_exporter_field *f);
/* Frees the type and the fields it took. */
DOCA_EXPERIMENTAL
doca_error_t
doca_telemetry_exporter_type_destroy(struct doca_telemetry_exporter_type *t);

DOCA_EXPERIMENTAL
doca_error_t
doca_telemetry_exporter_field_create(struct doca_telemetry_exporter_field **f);
DOCA_EXPERIMENTAL
doca_error_t
doca_telemetry_exporter_field_destroy(struct doca_telemetry_exporter_field *f);
/* Name ([A-Za-z0-9_], 1..63), description (kept, not sent), type (one of
 * the FIELD_TYPE strings) and array length (1 = a single value; for
 * "char" the string's byte width). */
DOCA_EXPERIMENTAL
void
doca_telemetry_exporter_field_set_name(struct doca_telemetry_exporter_field *f,
                                       const char *name);
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_field_set_description(
    struct doca_telemetry_exporter_field *f, const char *desc);
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_field_set_type_name(
    struct doca_telemetry_exporter_field *f, const char *type);
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_field_set_array_len(
    struct doca_telemetry_exporter_field *f, uint16_t len);

/* Add type t under new_type_name; the schema takes t on success.
 * INVALID_VALUE: NULL, a name already used, a field without name or with
 * an unknown type; BAD_STATE after schema_start; FULL past 255 types. */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_schema_add_type(
    struct doca_telemetry_exporter_schema *s, const char *new_type_name,
    struct doca_telemetry_exporter_type *t,
    doca_telemetry_exporter_type_index_t *type_index);

/* Freeze the schema (no more types or settings); BAD_STATE if started. */
DOCA_EXPERIMENTAL
doca_error_t
doca_telemetry_exporter_schema_start(struct doca_telemetry_exporter_schema *s);

/* Free the schema. BAD_STATE while sources made from it still exist. */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_schema_destroy(
    struct doca_telemetry_exporter_schema *s);

/* ---- sources ----------------------------------------------------------- */

/* A source of a started schema (BAD_STATE otherwise). */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_source_create(
    struct doca_telemetry_exporter_schema *s,
    struct doca_telemetry_exporter_source **source);
/* Source id (hostname or GUID) and tag; printable ASCII, < 128 bytes.
 * Both must be set before source_start (INVALID_VALUE otherwise). */
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_source_set_id(
    struct doca_telemetry_exporter_source *source, const char *source_id);
DOCA_EXPERIMENTAL
void doca_telemetry_exporter_source_set_tag(
    struct doca_telemetry_exporter_source *source, const char *source_tag);
/* Start reporting: connects to dts when IPC is enabled (a dts that is not
 * there yet is not an error: reports wait for it as described above). */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_source_start(
    struct doca_telemetry_exporter_source *source);
/* count packed events of type index from data. INVALID_VALUE: NULL data,
 * count < 1, unknown index; BAD_STATE: not started. */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_source_report(
    struct doca_telemetry_exporter_source *source,
    doca_telemetry_exporter_type_index_t index, void *data, int count);
/* Not supported by dpf: NOT_SUPPORTED. */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_source_opaque_report(
    struct doca_telemetry_exporter_source *source, const doca_guid_t app_id,
    uint64_t user_defined1, uint64_t user_defined2, const void *data,
    uint32_t data_size);
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_source_get_opaque_report_max_data_size(
    struct doca_telemetry_exporter_source *source, uint32_t *max_data_size);
/* Write everything buffered now (waits up to 5 s for dts to read). */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_source_flush(
    struct doca_telemetry_exporter_source *source);
/* Flush, close, free (also its metrics context). */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_source_destroy(
    struct doca_telemetry_exporter_source *source);

/* ---- utilities --------------------------------------------------------- */

/* Now, in nanoseconds since the epoch. */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_get_timestamp(
    doca_telemetry_exporter_timestamp_t *timestamp);
/* Whether the source's IPC is connected now. */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_check_ipc_status(
    struct doca_telemetry_exporter_source *source,
    doca_telemetry_exporter_ipc_status_t *status);

/* ---- metrics ------------------------------------------------------------ */

/* The metrics context of a started source (BAD_STATE if not started or
 * the context exists). Every other metrics call needs it (BAD_STATE). */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_metrics_create_context(
    struct doca_telemetry_exporter_source *source);
/* Flush what is pending and drop the context, its labels and sums. */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_metrics_destroy_context(
    struct doca_telemetry_exporter_source *source);
/* Flush pending samples by themselves once the oldest is this old
 * (checked on every metrics call; 0 = only on flush). */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_metrics_set_flush_interval_ms(
    struct doca_telemetry_exporter_source *source, uint64_t interval_ms);
/* A label every series of the source carries. Names as in label sets;
 * INVALID_VALUE for a bad or repeated name, FULL past 16 labels in all. */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_metrics_add_constant_label(
    struct doca_telemetry_exporter_source *source, const char *label_name,
    const char *label_value);
/* Declare a label set: num_labels names ([a-zA-Z_][a-zA-Z0-9_]*, not
 * "__..." and not source_id / source_tag, which dts sets); its id is
 * written to label_set_id (ids start at 1). */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_metrics_add_label_names(
    struct doca_telemetry_exporter_source *source, const char **label_names,
    size_t num_labels, doca_telemetry_exporter_label_set_id_t *label_set_id);
/* A counter's value now (monotonic). label_set_id 0 with label_values
 * NULL: no labels; otherwise label_values holds one value per name of
 * the set (UTF-8, no control characters, < 128 bytes). */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_metrics_add_counter(
    struct doca_telemetry_exporter_source *source,
    doca_telemetry_exporter_timestamp_t timestamp, const char *name,
    uint64_t value, doca_telemetry_exporter_label_set_id_t label_set_id,
    const char **label_values);
/* Add value to the counter's running total (kept by the library per name
 * and label values) and report the total. */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_metrics_add_counter_increment(
    struct doca_telemetry_exporter_source *source,
    doca_telemetry_exporter_timestamp_t timestamp, const char *name,
    uint64_t value, doca_telemetry_exporter_label_set_id_t label_set_id,
    const char **label_values);
/* A gauge's value now. */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_metrics_add_gauge(
    struct doca_telemetry_exporter_source *source,
    doca_telemetry_exporter_timestamp_t timestamp, const char *name,
    double value, doca_telemetry_exporter_label_set_id_t label_set_id,
    const char **label_values);
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_metrics_add_gauge_uint64(
    struct doca_telemetry_exporter_source *source,
    doca_telemetry_exporter_timestamp_t timestamp, const char *name,
    uint64_t value, doca_telemetry_exporter_label_set_id_t label_set_id,
    const char **label_values);
/* Add value (may be negative) to the gauge's current value and report
 * it. */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_metrics_add_gauge_increment(
    struct doca_telemetry_exporter_source *source,
    doca_telemetry_exporter_timestamp_t timestamp, const char *name,
    double value, doca_telemetry_exporter_label_set_id_t label_set_id,
    const char **label_values);
/* Send the pending samples now. */
DOCA_EXPERIMENTAL
doca_error_t doca_telemetry_exporter_metrics_flush(
    struct doca_telemetry_exporter_source *source);

#ifdef __cplusplus
}
#endif

#endif
