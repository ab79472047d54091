/* metrics: dpf-server's /metrics, kube-apiserver's series in the
 * Prometheus text exposition format 0.0.4.
 *
 * Series (names and labels as kube-apiserver 1.32 has them):
 *   apiserver_request_total{verb,dry_run,group,version,resource,
 *       subresource,scope,component,code}          counter
 *   apiserver_request_duration_seconds{verb,dry_run,group,version,
 *       resource,subresource,scope,component}      histogram
 *   apiserver_longrunning_requests{verb,group,version,resource,
 *       subresource,scope,component}               gauge (watches, exec..)
 *   apiserver_current_inflight_requests{request_kind} gauge
 *   apiserver_storage_objects{resource}            gauge (the caller's)
 *   process_cpu_seconds_total, process_resident_memory_bytes,
 *   process_virtual_memory_bytes, process_start_time_seconds,
 *   process_open_fds, process_max_fds
 *
 * Every request is counted once its answer is settled (http-server.h's
 * observer), whoever sent it (the in-process controllers over loopback
 * too) and whatever the answer (401 and 403 of the gate included); a
 * long-running request (a watch, exec, attach, port-forward, proxy) is
 * counted when it ends, with its whole duration, as kube-apiserver does.
 *
 * Labels are bounded: group, version and resource are those of a kind
 * the schema registry serves (api/schema.h), subresource one of a fixed
 * list, and a non-resource path one of a fixed list ("/healthz", "/api",
 * ...). A path that names nothing served is counted with every label
 * empty but subresource="other", so a client cannot grow the series
 * with made-up paths. At most METRICS_MAX_SERIES label sets are kept;
 * past that, requests count under verb="other", subresource="other".
 *
 * Cost: counting takes no lock: a lock-free lookup in an open-addressing
 * table (a mutex only the first time a label set is seen) and a few
 * relaxed atomic additions. Rendering reads the counters without
 * stopping the writers.
 *
 * No Debian package offers a Prometheus client for C, so the exposition
 * is written here.
 *
 * Threads: every function is thread-safe. */
#ifndef DPF_SERVER_METRICS_H
#define DPF_SERVER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/util.h"

struct http_request;
struct metrics;

#define METRICS_MAX_SERIES 2048
/* The Content-Type of the exposition. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* What a request is counted as (metrics_classify); strings are static. */
struct metrics_labels {
    const char *verb;        /* "GET", "LIST", "WATCH", ..., "other" */
    const char *dry_run;     /* "" or "All" */
    const char *group;       /* "" for the core group and non-resources */
    const char *version;     /* "" for non-resources */
    const char *resource;    /* plural, "" for non-resources */
    const char *subresource; /* "status", ..., a non-resource path, "" */
    const char *scope;       /* "resource", "namespace", "cluster" or "" */
};

/* Label a request as kube-apiserver does: method and path (decoded,
 * without query), the watch and dryRun query parameters and the
 * Content-Type header (each may be NULL). */
void metrics_classify(const char *method, const char *path, const char *watch,
                      const char *dry_run, const char *content_type,
                      struct metrics_labels *out);

struct metrics *metrics_create(void);
/* After the HTTP server stopped (its observers may still run until
 * then). NULL is allowed. */
void metrics_destroy(struct metrics *m);

/* The http_observe_fn / http_observe_end_fn for the HTTP server (arg is
 * the struct metrics). */
void *metrics_observe(void *m, struct http_request *req, int status,
                      int64_t elapsed_ns, bool long_running);
void metrics_observe_end(void *m, void *token, int64_t elapsed_ns);

/* What metrics_observe does for an answered request that is not
 * long-running, by its labels (strings that outlive m): for tests. */
void metrics_count(struct metrics *m, const struct metrics_labels *l,
                   int status, int64_t elapsed_ns);

/* Count a request in or out of apiserver_current_inflight_requests
 * (mutating = not a get, list or watch). */
void metrics_inflight_add(struct metrics *m, bool mutating, int delta);

/* Fills apiserver_storage_objects: calls emit(emit_arg, resource, n) for
 * every resource ("plural" or "plural.group"). */
typedef void (*metrics_emit_fn)(void *emit_arg, const char *resource,
                                int64_t n);
typedef void (*metrics_storage_fn)(void *arg, metrics_emit_fn emit,
                                   void *emit_arg);

/* Append the whole exposition to b; storage (NULL = no such series) is
 * asked for the object counts. */
void metrics_render(struct metrics *m, struct dbuf *b,
                    metrics_storage_fn storage, void *storage_arg);

/* Append the store's commit counters (dpf_store_commits_total,
 * dpf_store_writes_total: their ratio is group commit's mean batch). */
struct store_stats;
void metrics_render_store(struct dbuf *b, const struct store_stats *st);

#endif
