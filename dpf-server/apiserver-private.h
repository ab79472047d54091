/* apiserver-private: what the apiserver*.c files share. Not a public
 * contract: only dpf-server/apiserver*.c, the apiserver fuzz target and
 * the apiserver unit test include it. Everything here runs on the HTTP
 * server's request threads or the garbage collector's thread and is
 * thread-safe unless it says otherwise; returned strings and json_t
 * references belong to the caller.
 *
 * Files, one job each:
 *   apiserver.c           request text checks, errors (as_error ->
 *                         Status through lib/kube/kube-status), JSON/YAML
 *                         responses, the Warning header, routing to the
 *                         verbs; creation and the store hook
 *   apiserver-storage.c   store keys, stored text and its resourceVersion,
 *                         the namespace cache, the schema reader
 *   apiserver-admit.c     body decoding and admission: type checks, prune,
 *                         default, validate, the steps of a create
 *   apiserver-update.c    the guaranteed update: the one read-modify-write
 *                         path of the store and the common steps of every
 *                         update
 *   apiserver-read.c      get, list, selectors, continue tokens
 *   apiserver-write.c     create, update (PUT), patch (every patch type)
 *   apiserver-delete.c    delete and deletecollection: DeleteOptions,
 *                         finalizers, graceful deletion, propagation
 *   apiserver-scale.c     the scale subresource (autoscaling/v1 Scale)
 *   apiserver-view.c      kinds stored as another kind (events.k8s.io)
 *   apiserver-discovery.c /version, health, discovery, OpenAPI
 *   apiserver-openapi-pb.c /openapi/v2 in protobuf (gnostic's model)
 *   apiserver-table.c     Accept negotiation, Table output
 *   apiserver-watch.c     watch streams and their dispatcher thread
 *   apiserver-gc.c        ownerReference garbage collector, namespace
 *                         deletion, graceful-deletion expiry, CRD cleanup
 *   apiserver-crd.c       serving what CustomResourceDefinitions declare */
#ifndef DPF_SERVER_APISERVER_PRIVATE_H
#define DPF_SERVER_APISERVER_PRIVATE_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/schema.h"
#include "dpf-server/apiserver.h"
#include "lib/base/error.h"
#include "lib/base/util.h"
#include "lib/kube/kube-status.h"
#include "lib/store/store.h"
#include "lib/store/watch-cache.h"

struct http_request;
struct selector;
struct as_gc;
struct as_hub;

/* Request body limit when the config names none. */
#define AS_MAX_BODY (3u * 1024 * 1024)

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
    atomic_uint proxy_streams;   /* open pods/log, exec, attach streams */
    atomic_uint proxy_dialing;   /* requests waiting on a node agent */
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

/* An error to report as a Status object (built by kube_status_build()). */
struct as_error {
    struct dpf_error e;           /* code, reason, message, causes */
    struct kube_status_details d; /* details (all empty = omitted) */
};

/* Which part of the object a write takes from the mutated object. */
enum as_part {
    AS_PART_MAIN = 0, /* main resource: status stays as stored for kinds
                       * with a status subresource */
    AS_PART_STATUS,   /* /status: only status is taken */
    AS_PART_ALL,      /* the server's own edits: everything */
};

/* Label and field selectors of a list or watch. */
struct as_filter {
    struct selector *labels; /* NULL = no label selector */
    struct selector *fields; /* NULL = no field selector */
    bool fields_meta_only;   /* only metadata.name/namespace: key decides */
};

/* --- apiserver.c --- */
/* The namespaces created on start (which of them can never be deleted is
 * the Namespace kind's delete hook in api/kinds-core.c). */
#define AS_DEFAULT_NAMESPACES 5
extern const char *const as_default_namespaces[AS_DEFAULT_NAMESPACES];
/* Check everything of a request the API server reads as text (path
 * segments, the query parameters it uses, Accept and Content-Type) for
 * valid UTF-8 before routing. 0, or -EINVAL with ae filled (400
 * BadRequest naming the segment, parameter or header). */
int as_check_request_text(struct http_request *req, const char *path,
                          struct as_error *ae);
/* Is a boolean query parameter "true" or "1"? */
bool as_query_bool(struct http_request *req, const char *name);
/* dryRun of the request: true for "All"; *bad (ae filled, 400) for any
 * other value. */
bool as_dry_run(struct http_request *req, struct as_error *ae, bool *bad);

/* Fill an error without details; the message is cut on a character
 * boundary. */
void as_error_set(struct as_error *ae, int code, const char *reason,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Set the details (name, group, kind or plural). */
void as_error_details(struct as_error *ae, const char *name, const char *group,
                      const char *kind);
/* NotFound for resource k / name. */
void as_error_not_found(struct as_error *ae, const struct schema_kind *k,
                        const char *name);
/* 409 for a failed precondition: what ("UID", "ResourceVersion") was
 * want in the request and is have in the stored object. */
void as_error_precondition(struct as_error *ae, const struct schema_kind *k,
                           const char *name, const char *what, const char *want,
                           const char *have);
/* Conflict on k / name: "Operation cannot be fulfilled on ...: what". */
void as_error_conflict(struct as_error *ae, const struct schema_kind *k,
                       const char *name, const char *what);
/* The Conflict of a write that lost against a newer resourceVersion. */
void as_error_stale(struct as_error *ae, const struct schema_kind *k,
                    const char *name);
/* Take over an error filled by a library (schema, selector, patch, store),
 * its text made valid UTF-8; an empty code or reason gets the default. */
void as_error_from(struct as_error *ae, const struct dpf_error *e, int def_code,
                   const char *def_reason);
/* A failed store call on one object: -ENOENT is NotFound for it, anything
 * else an InternalError carrying the store's message. */
void as_error_store(struct as_error *ae, const struct schema_kind *k,
                    const char *name, int r, const struct dpf_error *e);
/* The Status object of an error as compact JSON text (new string, length
 * in *len). Always valid JSON, whatever bytes the error holds. */
char *as_status_text(const struct as_error *ae, size_t *len);
/* Send a Status error. */
void as_respond_error(struct http_request *req, const struct as_error *ae);
/* 404 for a path that names no resource. */
void as_respond_generic_404(struct http_request *req);
/* Respond with a JSON document in the negotiated format (JSON or YAML;
 * fmt NULL = JSON); a NULL doc is a 500 Status. */
void as_respond_json(struct http_request *req, int status,
                     const struct as_format *fmt, const json_t *doc);
/* Respond with JSON text (steals text; NULL is a 500 Status). */
void as_respond_text(struct http_request *req, int status,
                     const struct as_format *fmt, char *text, size_t len);
/* Value of the Warning header naming an unknown field (new string):
 * quotes escaped, control characters replaced, long paths cut on a
 * character boundary. */
char *as_warning_value(const char *path);
/* One Warning header per unknown field path in warnings (may be NULL). */
void as_add_warnings(struct http_request *req, const json_t *warnings);

/* --- apiserver-crd.c --- */
/* Store key prefix of CustomResourceDefinitions (cluster-scoped). */
#define AS_CRD_KEY_PREFIX "/apiextensions.k8s.io/customresourcedefinitions//"
/* The finalizer through which a CRD's objects are deleted with it. */
#define AS_CRD_FINALIZER "customresourcecleanup.apiextensions.k8s.io"
/* Store hook part (store write lock held): a CRD stored is served (its
 * kinds registered or replaced), a CRD removed is withdrawn. */
void as_crd_event(struct apiserver *as, enum store_event_type type,
                  const char *key, const char *value, size_t len);
/* Register every stored CRD (start-up, before serving). */
void as_crd_load(struct apiserver *as);

/* --- apiserver-proxy.c --- */
/* pods/log, pods/exec, pods/attach of k/ns/name: proxied to the node
 * agent of the pod's node. true when the request was one of those (and
 * answered), false to route it elsewhere. */
bool as_proxy_handle(struct apiserver *as, struct http_request *req,
                     const struct schema_kind *k, const char *ns,
                     const char *name, const char *sub);
/* At destroy, after the HTTP server stopped: wait (bounded) for the
 * proxied streams' threads to end. */
void as_proxy_shutdown(struct apiserver *as);

/* --- apiserver-storage.c --- */
/* Store key of an object: "/<group|core>/<plural>/<ns>/<name>". */
char *as_key(const struct schema_kind *k, const char *ns, const char *name);
/* Store key prefix of a collection; ns NULL = every namespace. */
char *as_prefix(const struct schema_kind *k, const char *ns);
/* "plural.group" or "plural" for the core group (error messages). */
void as_qualified_resource(const struct schema_kind *k, char *buf, size_t size);
/* An object's current text and revision, as store_get() answers: from
 * the watch cache's object index when it holds the key (it follows every
 * commit before the writer is answered, so it is as fresh as the store,
 * and a hash lookup costs far less than an SQLite read), else from the
 * store. For the read of a read-modify-write, whose commit compares the
 * revision anyway, and the collector's owner lookups. A GET still reads
 * the store: a read of the file is what notices damage to it at run time
 * (readyz, docs/dev/store.md). */
int as_get_current(struct apiserver *as, const char *key, struct store_kv *out,
                   struct dpf_error *err);
/* Append stored JSON text to b with "resourceVersion" injected into its
 * top-level metadata (no parse, no re-serialisation). */
void as_append_rv(struct dbuf *b, const char *json, size_t len, int64_t rv);
/* The same as a new malloc'd text, length in *out_len. */
char *as_inject_rv(const char *json, size_t len, int64_t rv, size_t *out_len);
/* Parse stored text and set metadata.resourceVersion. New ref or NULL. */
json_t *as_load_object(const char *json, size_t len, int64_t rv);
/* {"metadata":{"labels":...}} cut out of an object's JSON text without
 * parsing the rest (new ref; labels absent when the object has none). */
json_t *as_load_labels(const char *json, size_t len);
/* Serialise for the store: drops metadata.resourceVersion (from obj
 * too), compact. New string, length in *len; NULL with ae filled (413)
 * when the text is longer than max. */
char *as_dump_store(json_t *obj, size_t max, size_t *len, struct as_error *ae);
/* obj's metadata object (borrowed) or NULL. */
json_t *as_md(const json_t *obj);
/* A string field of obj's metadata (borrowed) or NULL. */
const char *as_md_str(const json_t *obj, const char *field);
/* Is k the core Namespace kind? */
bool as_is_namespace_kind(const struct schema_kind *k);
/* Store hook part: keep the namespace cache current (store lock held). */
void as_ns_cache_event(struct apiserver *as, enum store_event_type type,
                       const char *key, const char *value, size_t len);
/* 0 if namespace ns exists and accepts new content (name: the object
 * being created, for the message); else -ENOENT (404), -EPERM (403
 * terminating) or a read error, with ae filled. */
int as_check_namespace(struct apiserver *as, const struct schema_kind *k,
                       const char *ns, const char *name, struct as_error *ae);
/* A schema_reader listing objects from the store. */
void as_reader_init(struct apiserver *as, struct schema_reader *r);

/* --- apiserver-admit.c --- */
/* Decode a request body (JSON or YAML by content type) into one object,
 * with duplicate-key rejection when strict. 0 or -errno with ae filled
 * (400 BadRequest, 415, 413). */
int as_decode_body(const char *body, size_t len, const char *content_type,
                   size_t max_len, bool strict, json_t **out,
                   struct as_error *ae);
/* Is the Content-Type (parameters ignored) type? A YAML type? */
bool as_media_is(const char *ct, const char *type);
bool as_media_yaml(const char *ct);
/* fieldValidation: the pruning mode it asks for; 0 or 400 when it is not
 * Strict, Warn, Ignore or absent. */
enum schema_unknown_mode as_unknown_mode(const char *fv);
int as_check_field_validation(const char *fv, struct as_error *ae);
/* apiVersion and kind of a body must name the URL's kind (400). With
 * fill, a built-in kind's body that leaves them out gets the URL's (as
 * kube-apiserver's decoder defaults them); a mismatch is still 400. */
int as_check_type(const struct schema_kind *k, json_t *obj, bool fill,
                  struct as_error *ae);
/* Everything a create does without the store: type and namespace checks,
 * prune (warnings appended to *warnings when not NULL), server metadata
 * (uid, creationTimestamp, generation, generateName), namespace specifics,
 * defaults, validation. 0 or -EINVAL with ae filled. */
int as_prepare_create(const struct schema_kind *k, const char *ns, json_t *obj,
                      enum schema_unknown_mode mode, json_t **warnings,
                      struct as_error *ae);
/* Full admission of a new object: decode body, then as_prepare_create().
 * Used by the fuzz target. 0 or -errno with ae filled. */
int as_admit_create(const struct schema_kind *k, const char *ns,
                    const char *body, size_t len, const char *content_type,
                    const char *field_validation, json_t **out,
                    json_t **warnings, struct as_error *ae);
/* Prune unknown fields of obj as mode says (warnings appended to
 * *warnings when not NULL; Strict: 400). */
int as_prune(const struct schema_kind *k, json_t *obj,
             enum schema_unknown_mode mode, json_t **warnings,
             struct as_error *ae);
/* Validate obj (old: the stored object for immutability rules, or NULL):
 * 422 Invalid (or the kind's code) naming the kind and the fields. */
int as_validate(const struct schema_kind *k, const json_t *obj,
                const json_t *old, struct as_error *ae);
/* A new random name suffix of n (<= 16) characters of Kubernetes'
 * generateName alphabet into buf (n + 1 bytes). */
void as_random_suffix(char *buf, size_t n);
/* Now plus plus_s seconds as RFC 3339 (UTC, seconds). */
void as_now_rfc3339(char *buf, size_t size, int64_t plus_s);
/* Does the string array arr hold s? */
bool as_str_in_array(const json_t *arr, const char *s);
/* Number of metadata.finalizers of obj. */
size_t as_finalizer_count(const json_t *obj);

/* --- apiserver-update.c: the guaranteed update ---
 *
 * Every change of a stored object goes through as_guaranteed_update(), as
 * every write in Kubernetes goes through the storage's GuaranteedUpdate:
 * PUT (main resource, /status, namespaces' /finalize), every PATCH type,
 * DELETE (marking with deletionTimestamp, the final removal, the removal
 * once the last finalizer goes), and the garbage collector's edits
 * (ownerReferences, orphaning, finalizers, namespace finalization,
 * graceful-deletion expiry). Only create writes elsewhere.
 *
 * One attempt: read the object and its revision; check the preconditions
 * of opts (uid, resourceVersion: 409 naming both values); call the mutate
 * callback on the current object; for a write run the common steps (a
 * resourceVersion the new object carries must equal the current one, 409;
 * server-owned metadata comes from the stored object; no finalizer may be
 * added to an object being deleted; prune, default and validate against
 * the schema with the stored object as old; generation + 1 when anything
 * but metadata and status changed, or when deletion starts; field
 * ownership (opts->fm: managedFields, schema_fields_update); the 413
 * size limit); skip the write when nothing changed; otherwise write with
 * a compare-and-swap on the revision read (store_update, store_delete
 * with expected_rv). When another writer won the race, the attempt is
 * thrown away and the whole thing runs again on the newer object (up to
 * AS_UPDATE_ATTEMPTS times, then 409: every lost race is another
 * writer's success, so only a request starved by that many writes to the
 * same object gives up) -- unless the new object named a
 * resourceVersion, which pins it: then 409 at once. Preconditions of opts
 * are checked again on the next attempt, so they answer 409 with their
 * own message. A write that leaves an object being deleted with no
 * finalizer and no grace period left removes it (the MODIFIED event is
 * followed by DELETED). The store is never locked while the callback
 * runs: a slow callback costs retries, never other writers' time. */

#define AS_UPDATE_ATTEMPTS 1000

/* What a mutate callback decided for the current object. */
enum as_verdict {
    AS_WRITE = 0,     /* store *out, the new object */
    AS_UNCHANGED = 1, /* leave the object as it is */
    AS_MARK = 2,      /* store *out, the object the delete path marked for
                       * deletion: its deletionTimestamp,
                       * deletionGracePeriodSeconds and finalizers are
                       * taken; not pruned or validated, so a deletion is
                       * never refused because a stored object no longer
                       * passes today's schema */
    AS_REMOVE = 3,    /* remove the object now */
};

/* Decide what to do with cur (the stored object with its
 * metadata.resourceVersion; read only): return an as_verdict, with a new
 * reference in *out for AS_WRITE and AS_MARK; or a negative errno with ae
 * filled to end the update with that error. Runs once per attempt, on the
 * caller's thread, outside any store lock; it may read the store but
 * must not write it, and it must decide from cur alone (a retry calls it
 * again with a newer cur). */
typedef int (*as_mutate_fn)(void *arg, const json_t *cur, json_t **out,
                            struct as_error *ae);

struct as_update_opts {
    enum as_part part;
    enum schema_unknown_mode unknown; /* pruning of unknown fields */
    bool dry_run;                     /* everything but the store write */
    const char *uid; /* precondition on metadata.uid, or NULL */
    const char *rv;  /* precondition on metadata.resourceVersion, or NULL */
    /* Field ownership: the writer whose changes become its Update entry
     * in metadata.managedFields (NULL: keep them as stored, as for the
     * delete path and the garbage collector). A body's managedFields are
     * ignored, except [{}], which clears them (as in Kubernetes). */
    const struct schema_field_manager *fm;
    /* The callback computed managedFields itself (server-side apply):
     * take the new object's. */
    bool fields_done;
};

struct as_update_result {
    enum as_verdict verdict; /* what was done (AS_WRITE also when the
                              * write changed nothing and was skipped) */
    char *text;              /* the object now, with its resourceVersion;
                              * for AS_REMOVE as it was last stored */
    size_t len;
    json_t *warnings; /* unknown fields pruned, or NULL */
};

/* Read-modify-write object k/ns/name through fn (see above). 0 with res
 * filled (free with as_update_result_free), or -errno with ae filled:
 * -ENOENT 404, -ESTALE 409, -EINVAL 400/422, -EPERM 403, -E2BIG 413,
 * other store errors 500. res is cleared first. */
int as_guaranteed_update(struct apiserver *as, const struct schema_kind *k,
                         const char *ns, const char *name,
                         const struct as_update_opts *opts, as_mutate_fn fn,
                         void *arg, struct as_update_result *res,
                         struct as_error *ae);
void as_update_result_free(struct as_update_result *res);

/* --- apiserver-scale.c --- */
/* GET, PUT or PATCH of <object>/scale for a kind with k->scale: the
 * autoscaling/v1 Scale; a write changes only the replica count, through
 * the guaranteed update. */
void as_handle_scale(struct apiserver *as, struct http_request *req,
                     const struct schema_kind *k, const char *ns,
                     const char *name, const char *method,
                     const struct as_format *fmt);

/* --- apiserver-view.c --- */
/* Every verb of a kind with k->stored_as (a view of another kind's
 * objects through its conversion); watch and deletecollection are 405. */
void as_handle_view(struct apiserver *as, struct http_request *req,
                    const struct schema_kind *k, const char *ns,
                    const char *name, const char *method,
                    const struct as_format *fmt);

/* The writer of a request for managedFields: the fieldManager parameter,
 * else the User-Agent up to its first '/' (as kube-apiserver does); the
 * strings point into req or buf. */
void as_field_manager(struct http_request *req, const char *sub,
                      struct schema_field_manager *fm, char *buf, size_t size,
                      char *tbuf, size_t tsize);

/* --- apiserver-read.c --- */
void as_handle_get(struct apiserver *as, struct http_request *req,
                   const struct schema_kind *k, const char *ns,
                   const char *name, const struct as_format *fmt);
void as_handle_list(struct apiserver *as, struct http_request *req,
                    const struct schema_kind *k, const char *ns,
                    const struct as_format *fmt);
/* Parse labelSelector/fieldSelector texts (either may be NULL). */
int as_filter_init(struct as_filter *f, const struct schema_kind *k,
                   const char *labels, const char *fields, struct as_error *ae);
void as_filter_free(struct as_filter *f);
/* Must the object be parsed to decide a match? */
bool as_filter_needs_object(const struct as_filter *f);
/* Is metadata.labels all the object the filter needs? */
bool as_filter_labels_only(const struct as_filter *f);
/* Does the object (key always; obj when needed) match? */
bool as_filter_match(const struct as_filter *f, const char *key,
                     const json_t *obj);
/* The ListOptions combinations kube-apiserver refuses (resourceVersionMatch
 * without resourceVersion, sendInitialEvents on a list, ...): 0, or
 * -EINVAL with a 422 Invalid on ListOptions.meta.k8s.io in ae. */
int as_check_list_options(struct http_request *req, bool watch,
                          struct as_error *ae);
struct watch_cache_labels;
/* watch_cache_filter_fn over a struct as_filter (arg). */
bool as_index_filter(void *arg, const char *key, const char *value, size_t len,
                     const struct watch_cache_labels *labels);
/* Allowed field selector paths for a kind (NULL-terminated). */
const char *const *as_field_selector_paths(const struct schema_kind *k);

/* --- apiserver-write.c --- */
/* Create obj (prepared by as_prepare_create) in the store, retrying a
 * generateName that collided. *out_text: the object with its
 * resourceVersion. 0 or -errno with ae filled (409 AlreadyExists, 413,
 * 422 without a name). */
int as_store_create(struct apiserver *as, const struct schema_kind *k,
                    json_t *obj, bool dry_run, char **out_text, size_t *out_len,
                    struct as_error *ae);
void as_handle_create(struct apiserver *as, struct http_request *req,
                      const struct schema_kind *k, const char *ns,
                      const struct as_format *fmt);
/* PUT on the object, its /status or a namespace's /finalize (sub). */
void as_handle_update(struct apiserver *as, struct http_request *req,
                      const struct schema_kind *k, const char *ns,
                      const char *name, const char *sub,
                      const struct as_format *fmt);
void as_handle_patch(struct apiserver *as, struct http_request *req,
                     const struct schema_kind *k, const char *ns,
                     const char *name, const char *sub,
                     const struct as_format *fmt);

/* --- apiserver-delete.c --- */
/* Options of a delete. */
struct as_delete_opts {
    const char *propagation; /* "Background", "Foreground", "Orphan" */
    int64_t grace_seconds;   /* -1 = unset */
    const char *uid;         /* precondition or NULL */
    const char *rv;          /* precondition or NULL */
    bool dry_run;
};
/* The delete verdict on cur (an as_mutate_fn's work, for callers that
 * delete from inside their own callback, like the garbage collector):
 * 403 when the schema or a default namespace forbids it; AS_UNCHANGED
 * when cur is already being deleted (unless a pod is forced); AS_MARK
 * with *out set (deletionTimestamp, finalizers of the propagation policy,
 * graceful pods, namespaces: phase Terminating); else AS_REMOVE.
 * Preconditions of o are the guaranteed update's job. */
int as_delete_decide(struct apiserver *as, const struct schema_kind *k,
                     const struct as_delete_opts *o, const json_t *cur,
                     json_t **out, struct as_error *ae);
/* Delete one object with Kubernetes semantics (finalizers, graceful
 * deletion, propagation) through the guaranteed update. *out (may be
 * NULL) receives the object returned to the client (new ref). 0 or
 * -errno with ae filled. */
int as_delete_object(struct apiserver *as, const struct schema_kind *k,
                     const char *ns, const char *name,
                     const struct as_delete_opts *opts, json_t **out,
                     struct as_error *ae);
void as_handle_delete(struct apiserver *as, struct http_request *req,
                      const struct schema_kind *k, const char *ns,
                      const char *name, const struct as_format *fmt);
void as_handle_deletecollection(struct apiserver *as, struct http_request *req,
                                const struct schema_kind *k, const char *ns,
                                const struct as_format *fmt);

/* --- apiserver-discovery.c --- */
/* Handle non-resource paths and discovery; true if handled. */
bool as_discovery_handle(struct apiserver *as, struct http_request *req,
                         const char *method, const char *path);

/* --- apiserver-openapi-pb.c --- */
/* The swagger 2.0 document doc (as built for /openapi/v2) in gnostic's
 * protobuf encoding, as kubectl asks for it. malloc'ed, *len bytes; NULL
 * when out of memory. */
uint8_t *as_openapi_v2_protobuf(const json_t *doc, size_t *len);

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
