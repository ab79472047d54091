/* kube-object: small edits of Kubernetes objects that controllers make
 * over and over: status conditions, finalizers and owner references.
 *
 * Everything here works on a json_t the caller owns and may change (a
 * json_deep_copy() of a cached object, never the cached object itself:
 * cached objects are shared, see kube-cache.h). The "set"/"add"/"remove"
 * functions return whether they changed anything, so a controller writes
 * to the API server only when the object really changed.
 *
 * Conditions follow metav1.Condition: type, status ("True", "False",
 * "Unknown"), reason (CamelCase), message, lastTransitionTime (RFC 3339)
 * and observedGeneration. lastTransitionTime moves only when status
 * changes; a new reason or message alone keeps it, as Kubernetes'
 * meta.SetStatusCondition does.
 *
 * Threads: pure functions; any thread. */
#ifndef DPF_KUBE_OBJECT_H
#define DPF_KUBE_OBJECT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Whether two optional values are equal: json_equal(), except that two
 * absent (NULL) values are equal too (jansson's json_equal(NULL, NULL) is
 * 0, which makes "did this field change" true for every object without
 * the field). */
bool kube_json_same(const json_t *a, const json_t *b);

/* Whether any of the dotted member paths (NULL-terminated list, e.g.
 * "metadata.labels") differs between old and obj, by kube_json_same(): an
 * update predicate's "did what I care about change". */
bool kube_json_changed(const json_t *old, const json_t *obj,
                       const char *const *paths);

/* Empty obj[member] except for its child `keep` (an informer transform's
 * way to cache an object with one member cut down); nothing happens when
 * obj[member] is not an object. */
void kube_json_keep_only(json_t *obj, const char *member, const char *keep);

/* The condition of the given type in obj.status.conditions (borrowed), or
 * NULL. */
json_t *kube_condition_find(const json_t *obj, const char *type);
/* True when that condition exists and its status is "True". */
bool kube_condition_is_true(const json_t *obj, const char *type);
/* Set condition type on obj (status.conditions is created if missing).
 * now is the RFC 3339 time to record when status changes (NULL = the wall
 * clock). observed_generation < 0 leaves the field out. Returns true when
 * the condition changed (added, or any field differs). */
bool kube_condition_set(json_t *obj, const char *type, const char *status,
                        const char *reason, const char *message,
                        int64_t observed_generation, const char *now);
/* Remove condition type. True when it was there. */
bool kube_condition_remove(json_t *obj, const char *type);

/* True when metadata.finalizers holds name. */
bool kube_finalizer_has(const json_t *obj, const char *name);
/* Append name to metadata.finalizers if missing. True when added. */
bool kube_finalizer_add(json_t *obj, const char *name);
/* Remove every occurrence of name. True when one was removed. */
bool kube_finalizer_remove(json_t *obj, const char *name);
/* True when metadata.deletionTimestamp is set. */
bool kube_is_deleting(const json_t *obj);

/* The owner reference of owner (apiVersion, kind, name, uid from its
 * fields), with controller and blockOwnerDeletion set to controller. A
 * new object, or NULL when owner lacks one of those fields. */
json_t *kube_owner_ref(const json_t *owner, bool controller);
/* Put owner's reference into obj's metadata.ownerReferences (replacing
 * one with the same uid). A controller reference is refused (-EEXIST)
 * when another owner already controls obj. 1 when changed, 0 when it was
 * there already, -EINVAL when owner lacks a field. */
int kube_owner_ref_set(json_t *obj, const json_t *owner, bool controller);
/* The controlling owner reference (borrowed) or NULL. */
json_t *kube_owner_controller(const json_t *obj);
/* True when obj has an owner reference with this uid. */
bool kube_owned_by(const json_t *obj, const char *uid);

/* Now on the wall clock in RFC 3339 (UTC, seconds) into buf (>= 32). */
void kube_time_now(char *buf, size_t size);
/* Now as a MicroTime (RFC 3339 with microseconds, UTC: a Lease's
 * renewTime) into buf (>= 40). */
void kube_microtime_now(char *buf, size_t size);

#endif
