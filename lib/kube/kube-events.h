/* kube-events: record core/v1 Events about objects, aggregated the way
 * Kubernetes' event recorder does it, so a controller that fails the same
 * way every few seconds leaves one Event with a growing count, not
 * thousands of objects.
 *
 *   - Identical events (same object, type, reason and message) within
 *     KUBE_EVENT_WINDOW_S of the first: the existing Event is patched,
 *     count + 1 and lastTimestamp = now.
 *   - Similar events (same object, type and reason, other messages): after
 *     KUBE_EVENT_SIMILAR of them within the window, further ones go into
 *     one Event whose message starts with "(combined from similar
 *     events): " (what client-go's EventAggregator does).
 *   - Otherwise a new Event is created, named <object>.<unique hex>, in
 *     the object's namespace ("default" for cluster-scoped objects), with
 *     source.component and reportingComponent set to the component.
 *
 * Recording never fails the caller: a failed write is logged (rate
 * limited) and dropped, as client-go does.
 *
 * Threads: kube_recorder_event() blocks on the API (reconcile workers);
 * any number of threads may call it at once. Ownership: the recorder
 * borrows the struct kube_rest, which must outlive it. */
#ifndef DPF_KUBE_EVENTS_H
#define DPF_KUBE_EVENTS_H

#include <jansson.h>

#include "lib/kube/kube-rest.h"

#define KUBE_EVENT_WINDOW_S 600 /* aggregation window (10 min) */
#define KUBE_EVENT_SIMILAR 10   /* similar events before combining */
#define KUBE_EVENT_CACHE 4096   /* events remembered for aggregation */

struct kube_recorder;

/* A recorder writing as component (e.g. "bfb-controller"); host may be
 * NULL. */
struct kube_recorder *kube_recorder_create(struct kube_rest *r,
                                           const char *component,
                                           const char *host);
/* Free. NULL is fine. */
void kube_recorder_destroy(struct kube_recorder *rec);

/* Record an event about obj (its apiVersion, kind, namespace, name, uid
 * and resourceVersion become involvedObject). type is "Normal" or
 * "Warning"; reason is CamelCase. */
void kube_recorder_event(struct kube_recorder *rec, const json_t *obj,
                         const char *type, const char *reason, const char *fmt,
                         ...) __attribute__((format(printf, 5, 6)));

/* Events written (created or patched) and dropped (failed writes). */
void kube_recorder_stats(struct kube_recorder *rec, unsigned long *written,
                         unsigned long *dropped);

#endif
