/* kube-watch: the incremental parser for a Kubernetes watch stream.
 *
 * A watch reply is a stream of JSON objects {"type": T, "object": O}, one
 * per line (Kubernetes' JSON framing; we also accept several objects on one
 * line). Bytes arrive in arbitrary chunks from the network; the parser
 * keeps the partial line between calls and hands every complete event to
 * a callback. The input is untrusted server output: a line longer than the
 * configured bound, JSON that does not parse, or an event without a known
 * type or an object stops the parser with an error (fuzzed by
 * fuzz/fuzz-kube-watch.c).
 *
 * ERROR events are handed to the callback like the others: the object is
 * a metav1.Status whose "code" is 410 when the resourceVersion is too old
 * (the client must list again).
 *
 * Memory: the object passed to the callback is borrowed (valid during the
 * call; json_incref() it to keep it). The parser owns its buffer; release
 * it with kube_watch_parser_free().
 *
 * Threads: a parser is used by one thread at a time. */
#ifndef DPF_KUBE_WATCH_H
#define DPF_KUBE_WATCH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "lib/base/error.h"
#include "lib/base/util.h"

/* Watch event types, in the order of their names. */
enum kube_event_type {
    KUBE_EVENT_ADDED,
    KUBE_EVENT_MODIFIED,
    KUBE_EVENT_DELETED,
    KUBE_EVENT_BOOKMARK,
    KUBE_EVENT_ERROR,
};

/* Default bound on one event's line (Kubernetes objects are at most
 * ~1.5 MiB in etcd; a list of many objects never comes through a watch). */
#define KUBE_WATCH_MAX_LINE (16u * 1024 * 1024)

/* One event. Return 0 to go on, a positive value to stop the parser
 * without error (kube_watch_parser_feed() returns it), or a negative errno
 * to stop with that error. */
typedef int (*kube_watch_event_fn)(void *arg, enum kube_event_type type,
                                   json_t *object);
/* A cheap look at a line's text before it is parsed: true = no event on
 * it is wanted, skip it unparsed.
 * It must say false for any line it is not sure of: BOOKMARK and ERROR
 * events included. A skipped event's resourceVersion is not seen. */
typedef bool (*kube_watch_skip_fn)(void *arg, const char *text, size_t len);

struct kube_watch_parser {
    struct dbuf line;          /* bytes of the incomplete line */
    size_t max_line;           /* bound on one line */
    kube_watch_event_fn fn;    /* per-event callback */
    void *arg;                 /* its argument */
    int stopped;               /* sticky: the value that stopped it */
    unsigned long long events; /* events delivered so far */
    kube_watch_skip_fn skip;   /* NULL, or see kube_watch_skip_fn */
};

/* Prepare a parser (max_line 0 = KUBE_WATCH_MAX_LINE). */
void kube_watch_parser_init(struct kube_watch_parser *p, size_t max_line,
                            kube_watch_event_fn fn, void *arg);
/* Feed len bytes. Returns 0 when everything was consumed, the callback's
 * positive value when it stopped, or a negative errno (-EPROTO: not a watch
 * event; -EMSGSIZE: a line over the bound) with err saying what was wrong.
 * Once stopped, further calls return the same value and parse nothing. */
int kube_watch_parser_feed(struct kube_watch_parser *p, const char *data,
                           size_t len, struct dpf_error *err);
/* End of stream: parse a last event that lacks its newline. Same returns. */
int kube_watch_parser_finish(struct kube_watch_parser *p,
                             struct dpf_error *err);
/* Release the buffer (the struct itself is the caller's). */
void kube_watch_parser_free(struct kube_watch_parser *p);

/* "ADDED", ... */
const char *kube_event_type_name(enum kube_event_type t);
/* Parse a type name; 0 or -EINVAL. */
int kube_event_type_parse(const char *s, enum kube_event_type *out);

#endif
