/* apiserver-private: what the apiserver*.c files share. Not a public
 * contract: only dpf-server/apiserver*.c and the apiserver fuzz target
 * include it.
 *
 * Files: apiserver.c (routing, CRUD, errors), apiserver-discovery.c
 * (/version, health, discovery, OpenAPI), apiserver-table.c (Accept
 * negotiation, Table output), apiserver-watch.c (watch streams and their
 * dispatcher thread), apiserver-gc.c (ownerReference garbage collector,
 * namespace deletion, graceful-deletion expiry). */
#ifndef DPF_SERVER_APISERVER_PRIVATE_H
#define DPF_SERVER_APISERVER_PRIVATE_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/schema.h"
#include "dpf-server/apiserver.h"
#include "lib/base/error.h"
#include "lib/store/store.h"
#include "lib/base/util.h"
#include "lib/store/watch-cache.h"

struct http_request;
struct selector;
struct as_gc;
struct as_hub;

struct apiserver {
    struct store *store;         /* borrowed */
    struct watch_cache *wc;      /* borrowed */
    struct apiserver_config cfg; /* copy with defaults filled */
    struct as_gc *gc;            /* garbage collector (apiserver-gc.c) */
    struct as_hub *hub;          /* watch dispatcher (apiserver-watch.c) */
    bool ready;                  /* answered by /readyz */
    pthread_mutex_t ns_lock;     /* guards ns_cache and ns_gen */
    json_t *ns_cache;            /* namespace name -> true if terminating */
    uint64_t ns_gen;             /* bumped by every namespace event */
};

/* Output representation negotiated from the Accept header. */
enum as_output {
    AS_OUT_JSON = 0,
    AS_OUT_YAML = 1,
    AS_OUT_TABLE = 2, /* meta.k8s.io Table */
};

/* includeObject for Table rows. */
enum as_include {
    AS_INCLUDE_METADATA = 0,
    AS_INCLUDE_NONE = 1,
    AS_INCLUDE_OBJECT = 2,
};

/* A negotiated response format. */
struct as_format {
    enum as_output out;      /* representation */
    const char *table_api;   /* "meta.k8s.io/v1" or "meta.k8s.io/v1beta1" */
    enum as_include include; /* Table rows' object */
};

/* Status details of an error (k8s StatusDetails). */
struct as_details {
    char name[256];  /* object name */
    char group[128]; /* API group */
    char kind[64];   /* Kind (Invalid) or plural resource (NotFound) */
};

/* An error to report as a Status object. */
struct as_error {
    struct dpf_error e;    /* code, reason, message, causes */
    struct as_details d;   /* details (empty = omitted) */
    int64_t retry_after_s; /* details.retryAfterSeconds when > 0 */
};

/* Label and field selectors of a list or watch. */
struct as_filter {
    struct selector *labels; /* NULL = no label selector */
    struct selector *fields; /* NULL = no field selector */
    bool fields_meta_only;   /* only metadata.name/namespace: key decides */
};

/* --- apiserver.c --- */
/* Store key of an object: "/<group|core>/<plural>/<ns>/<name>". */
char *as_key(const struct schema_kind *k, const char *ns, const char *name);
/* Store key prefix of a collection; ns NULL = every namespace. */
char *as_prefix(const struct schema_kind *k, const char *ns);
/* "plural.group" or "plural" for the core group (error messages). */
void as_qualified_resource(const struct schema_kind *k, char *buf, size_t size);
/* Insert "resourceVersion":"rv" into the top-level metadata object of a
 * JSON text; new malloc'd text, length in *out_len. */
char *as_inject_rv(const char *json, size_t len, int64_t rv, size_t *out_len);
/* Parse stored text and set metadata.resourceVersion. New ref or NULL. */
json_t *as_load_object(const char *json, size_t len, int64_t rv);
/* A JSON string for text from anywhere (request, store, library message):
 * json_string(s) when s is valid UTF-8, else s with its invalid bytes
 * replaced (utf8_sanitize). Never NULL; NULL s gives "". */
json_t *as_json_text(const char *s);
/* Value of the Warning header naming an unknown field (new string):
 * quotes escaped, control characters replaced, long paths cut on a
 * character boundary. */
char *as_warning_value(const char *path);
/* Check everything of a request the API server reads as text (path
 * segments, the query parameters it uses, Accept and Content-Type) for
 * valid UTF-8 before routing. 0, or -EINVAL with ae filled (400
 * BadRequest naming the segment, parameter or header). */
int as_check_request_text(struct http_request *req, const char *path,
                          struct as_error *ae);
/* The Status object of an error as compact JSON text (new string, length
 * in *len). Always valid JSON, whatever bytes the error holds. */
char *as_status_text(const struct as_error *ae, size_t *len);
/* Send a Status error. */
void as_respond_error(struct http_request *req, const struct as_error *ae);
/* Fill an error without details. */
void as_error_set(struct as_error *ae, int code, const char *reason,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Fill a NotFound error for resource k / name. */
void as_error_not_found(struct as_error *ae, const struct schema_kind *k,
                        const char *name);
/* Respond with a JSON document in the negotiated format (JSON or YAML). */
void as_respond_json(struct http_request *req, int status,
                     const struct as_format *fmt, const json_t *doc);
/* Respond with JSON text (steals text). */
void as_respond_text(struct http_request *req, int status,
                     const struct as_format *fmt, char *text, size_t len);

/* Options of a delete. */
struct as_delete_opts {
    const char *propagation; /* "Background", "Foreground", "Orphan" */
    int64_t grace_seconds;   /* -1 = unset */
    const char *uid;         /* precondition or NULL */
    const char *rv;          /* precondition or NULL */
    bool dry_run;
};
/* Delete one object with Kubernetes semantics (finalizers, graceful
 * deletion, propagation). *out (may be NULL) receives the object returned
 * to the client (new ref). 0 or -errno with ae filled. */
int as_delete_object(struct apiserver *as, const struct schema_kind *k,
                     const char *ns, const char *name,
                     const struct as_delete_opts *opts, json_t **out,
                     struct as_error *ae);
/* Read-modify-write of one object by a C callback (the GC's edits:
 * removing finalizers and ownerReferences). fn edits obj in place and
 * returns 1 to write, 0 to leave it, negative to abort. Runs the same
 * update path as a PUT (finalizer rules, deletion when the last finalizer
 * goes). */
int as_edit_object(struct apiserver *as, const struct schema_kind *k,
                   const char *ns, const char *name,
                   int (*fn)(void *arg, json_t *obj), void *arg,
                   struct as_error *ae);
/* Decode a request body (JSON or YAML by content type) into one object,
 * with duplicate-key rejection when strict. 0 or -errno with ae filled
 * (400 BadRequest, 415, 413). */
int as_decode_body(const char *body, size_t len, const char *content_type,
                   size_t max_len, bool strict, json_t **out,
                   struct as_error *ae);
/* Full admission of a new object: decode body, check apiVersion/kind,
 * prune/default/validate (the create path without the store). Used by the
 * fuzz target. 0 or -errno with ae filled. */
int as_admit_create(const struct schema_kind *k, const char *ns,
                    const char *body, size_t len, const char *content_type,
                    const char *field_validation, json_t **out,
                    json_t **warnings, struct as_error *ae);
/* Parse labelSelector/fieldSelector texts (either may be NULL). */
int as_filter_init(struct as_filter *f, const struct schema_kind *k,
                   const char *labels, const char *fields, struct as_error *ae);
void as_filter_free(struct as_filter *f);
/* Must the object be parsed to decide a match? */
bool as_filter_needs_object(const struct as_filter *f);
/* Is metadata.labels all the object the filter needs? */
bool as_filter_labels_only(const struct as_filter *f);
/* {"metadata":{"labels":...}} cut out of an object's JSON text without
 * parsing the rest (new ref; labels absent when the object has none). */
json_t *as_load_labels(const char *json, size_t len);
/* Does the object (key always; obj when needed) match? */
bool as_filter_match(const struct as_filter *f, const char *key,
                     const json_t *obj);
/* A schema_reader listing objects from the store. */
void as_reader_init(struct apiserver *as, struct schema_reader *r);

/* --- apiserver-discovery.c --- */
/* Handle non-resource paths and discovery; true if handled. */
bool as_discovery_handle(struct apiserver *as, struct http_request *req,
                         const char *method, const char *path);

/* --- apiserver-table.c --- */
/* Negotiate the Accept header; false (406 sent by caller) if nothing
 * acceptable. allow_table: the verb may return a Table. */
bool as_format_negotiate(struct http_request *req, bool allow_table,
                         struct as_format *fmt);
/* columnDefinitions array for a kind (new ref). */
json_t *as_table_columns(const struct schema_kind *k);
/* One Table row for obj (new ref). now_ns: wall clock for ages. */
json_t *as_table_row(const struct schema_kind *k, const json_t *obj,
                     enum as_include include, int64_t now_ns);
/* Kubernetes duration.HumanDuration of a span in seconds into buf. */
void as_human_duration(int64_t seconds, char *buf, size_t size);

/* --- apiserver-watch.c --- */
struct as_hub *as_hub_create(struct apiserver *as);
void as_hub_destroy(struct as_hub *hub);
/* Serve a watch request on collection k in ns (NULL = all); name (may be
 * NULL) restricts to one object. Responds in every case. */
void as_watch_serve(struct apiserver *as, struct http_request *req,
                    const struct schema_kind *k, const char *ns,
                    const char *name, const struct as_format *fmt);
/* Allowed field selector paths for a kind (NULL-terminated). */
const char *const *as_field_selector_paths(const struct schema_kind *k);

/* --- apiserver-gc.c --- */
struct as_gc *as_gc_create(struct apiserver *as, bool thread);
void as_gc_destroy(struct as_gc *gc);
/* Feed one store event (called from the store hook with its lock held:
 * copies what it needs and signals). */
void as_gc_note(struct as_gc *gc, enum store_event_type type, const char *key,
                const char *value, size_t len);
/* One full pass (see apiserver_gc_run). */
int as_gc_pass(struct as_gc *gc);

#endif
