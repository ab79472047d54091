/* schema: every resource kind the platform serves, declared once.
 *
 * Each kind has one declaration (api/kinds-*.c), listed in its group in
 * the group registry (api/kinds.c), from which everything else is
 * derived: validation (types, required, enums, patterns, bounds,
 * immutability and the kind's own rules), defaulting, unknown-field
 * pruning, delete rules, printer columns, and the OpenAPI v3 schema /
 * CustomResourceDefinition export. The engine behind this header knows no
 * group: a kind's hooks and flags say what is special about it. The API
 * server, dpfctl and the controllers use only this header.
 *
 * Objects are jansson json_t trees of the full object (apiVersion, kind,
 * metadata, spec, status). Functions that modify an object do so in place.
 * Field paths in errors are dotted JSON paths with indices in brackets
 * ("spec.switches[0].ports[1].serviceInterface.matchLabels"). */
#ifndef DPF_API_SCHEMA_H
#define DPF_API_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "lib/base/error.h"
#include "lib/kube/kube-rest.h"

/* One printer column (CRD additionalPrinterColumns). */
struct schema_column {
    const char *name;      /* "Ready" */
    const char *type;      /* "string" | "integer" | "date" | ... */
    const char *json_path; /* ".status.conditions[?(@.type=='Ready')].status" */
    const char *description;
    int priority; /* 0 = always shown, 1 = only with -o wide */
    /* Core kinds only: a value kubectl computes and JSONPath cannot
     * express ("1/1" READY of a Pod); NULL = evaluate json_path. Such
     * columns are never exported into a CRD. Returns a malloc'd string. */
    char *(*compute)(const json_t *obj);
};

struct schema_node; /* the field tree; private to api/ */

/* Read access to other objects for rules that span objects (a DPUFlavor
 * may not be deleted while a DPUSet uses it). list() calls cb for every
 * object of group/plural in namespace ns (NULL = all namespaces). */
struct schema_reader {
    int (*list)(void *arg, const char *group, const char *plural,
                const char *ns, int (*cb)(void *cbarg, const json_t *obj),
                void *cbarg);
    void *arg;
};

/* A kind. All strings are static. */
struct schema_kind {
    const char *group;              /* "" for the core group */
    const char *version;            /* "v1alpha1" */
    const char *kind;               /* "DPUSet" */
    const char *list_kind;          /* "DPUSetList" */
    const char *plural;             /* "dpusets" */
    const char *singular;           /* "dpuset" */
    const char *const *short_names; /* NULL-terminated or NULL */
    const char *const *categories;  /* NULL-terminated or NULL */
    bool namespaced;
    bool has_status;                     /* serves the status subresource */
    const struct schema_column *columns; /* terminated by name == NULL */
    const struct schema_node *root;      /* field tree of the whole object */
    /* Cross-field rules (DPF webhooks and CEL rules). old is NULL on
     * create. Add causes to err; return 0 or -EINVAL. */
    int (*validate)(const json_t *obj, const json_t *old,
                    struct dpf_error *err);
    /* Kind-specific defaulting beyond the field tree (DPF's mutating
     * webhooks, e.g. BFB fileName from namespace/name). */
    void (*set_defaults)(json_t *obj);
    /* Code for HTTP status of validation failure: 422 normally; DPF's IPAM
     * webhook answers 400 (BadRequest) and we keep that. 0 = 422. */
    int invalid_code;
    /* Rules on delete (DPF's delete webhooks, Kubernetes' admission
     * plugins). reader may be NULL (then rules that must look at other
     * objects let the delete pass). 0, or -EPERM with err filled (403). */
    int (*validate_delete)(const json_t *obj,
                           const struct schema_reader *reader,
                           struct dpf_error *err);
    /* Kubernetes' own kind, served by the API server itself and never as
     * a CustomResourceDefinition (core, apps, *.k8s.io). */
    bool builtin;
    /* Names are DNS-1123 labels (63 characters, no dots) rather than
     * subdomains, as for a Namespace. */
    bool name_is_label;
    /* Names need only be valid path segments (not "." or "..", no '/'
     * or '%'), as for RBAC roles and bindings ("system:basic-user"). */
    bool name_is_path_segment;
    /* Descriptions of the kind ("" = the kind itself) and its fields by
     * dotted path ("spec.strategy.type"; array items and map values add
     * nothing), for OpenAPI and kubectl explain; ends with {NULL}. A
     * kind with docs also takes the shared descriptions of common
     * fields (conditions, selectors) that it does not describe itself. */
    const struct schema_doc *docs;
    /* Serves the scale subresource (autoscaling/v1 Scale), or NULL. */
    const struct schema_scale *scale;
    /* Another group's view of stored_as's objects (events.k8s.io/v1
     * Event of core/v1 Event, as Kubernetes keeps both in one resource):
     * objects are stored as stored_as, converted by these two (new
     * references, apiVersion and kind set, metadata kept). */
    const struct schema_kind *stored_as;
    json_t *(*to_stored)(const json_t *obj);
    json_t *(*from_stored)(const json_t *obj);
    /* Made from a CustomResourceDefinition (schema_crd_register()) and
     * served while it is: a custom resource. */
    bool crd;
    /* Its CRD is being deleted: no new objects (405), as kube-apiserver. */
    bool crd_terminating;
};

/* One description of a kind's docs table. */
struct schema_doc {
    const char *path; /* dotted field path; NULL ends the table */
    const char *text;
};

/* Where a kind keeps what its scale subresource shows, as dotted paths
 * into the object (a CRD's specReplicasPath etc. without the leading
 * dot). The selector path names a LabelSelector object (apps/v1) or a
 * selector string (a CRD's labelSelectorPath); NULL = none. */
struct schema_scale {
    const char *spec_replicas;   /* "spec.replicas" */
    const char *status_replicas; /* "status.replicas" */
    const char *label_selector;  /* "spec.selector", or NULL */
};

/* One served version of a group and its kinds (NULL-terminated). */
struct schema_group_version {
    const char *version;                    /* "v1alpha1"; NULL ends */
    const struct schema_kind *const *kinds; /* all of this group/version */
};

/* An API group: what discovery lists and lookups search. All static. */
struct schema_group {
    const char *name;                            /* "" = the core group */
    const char *preferred_version;               /* one of versions */
    const struct schema_group_version *versions; /* version == NULL ends */
};

/* The kind as the kube layer's plain resource data (a compound literal,
 * valid in the enclosing block): api_client_get(c, SCHEMA_GVR(k), ...). */
#define SCHEMA_GVR(k)                                                \
    (&(const struct kube_gvr){(k)->group, (k)->version, (k)->plural, \
                              (k)->namespaced})

/* --- registry --- */
/* All groups, in a stable order (the built-in groups of api/kinds.c, then
 * registered ones); *n receives the count. Discovery lists exactly these. */
const struct schema_group *const *schema_groups(size_t *n);
/* Add a group (and its kinds) to the registry. Only before the first call
 * of any other schema function, from one thread (start-up, tests); g and
 * everything it points to must outlive the process. 0, -EBUSY after the
 * registry was built, -EEXIST for a group already there, -ENOSPC past the
 * limit of registered groups. */
int schema_register_group(const struct schema_group *g);
/* The group a kind belongs to. */
const struct schema_group *schema_kind_group(const struct schema_kind *k);
/* All kinds, in a stable order; *n receives the count. */
const struct schema_kind *const *schema_kinds(size_t *n);
/* By group ("" = core), version and plural resource name. */
const struct schema_kind *schema_find_resource(const char *group,
                                               const char *version,
                                               const char *plural);
/* By apiVersion ("v1", "provisioning.dpu.nvidia.com/v1alpha1") and kind. */
const struct schema_kind *schema_find_kind(const char *api_version,
                                           const char *kind);
/* By a user's word: plural, singular, short name or kind, case-insensitive,
 * optionally "plural.group" ("dpus.provisioning.dpu.nvidia.com"). */
const struct schema_kind *schema_find_name(const char *word);
/* "group/version" or "v1" for the core group (static buffer per kind). */
const char *schema_api_version(const struct schema_kind *k);

/* --- CustomResourceDefinitions (api/schema-crd.c) ---
 * A CRD (apiextensions.k8s.io/v1, a json object) becomes one kind per
 * served version, its openAPIV3Schema converted into the same field tree
 * the built-in kinds declare, so one engine validates, defaults, prunes
 * and exports both. Registration is safe while other threads look kinds
 * up (a new registry snapshot is published atomically; nothing a reader
 * may hold is ever freed, see api/schema-registry.c). */
#define SCHEMA_MAX_CRDS 512
/* Check a CRD as kube-apiserver does: metadata.name is <plural>.<group>,
 * the names, scope, versions (one storage version, one served at least),
 * structural schemas (a type at every level but int-or-string and
 * preserve-unknown ones, no additionalProperties beside properties,
 * list types and their keys, patterns that compile, bounded depth and
 * sizes), Kubernetes' protected groups (*.k8s.io, *.kubernetes.io)
 * only with the api-approved.kubernetes.io annotation. old is the stored
 * CRD on update (NULL on create): group, names.kind, plural and scope
 * may not change. Causes carry the field paths ("spec.versions[0].schema.
 * openAPIV3Schema.properties[spec].type"). 0 or -EINVAL. */
int schema_crd_check(const json_t *crd, const json_t *old,
                     struct dpf_error *err);
/* Serve crd's resource (or replace what it served): 0; 1 when a built-in
 * kind already serves that group/resource (DPF's own kinds as `dpfctl
 * crds` prints them), which then keeps serving it; -EINVAL (err filled)
 * for a CRD schema_crd_check() refuses; -ENOSPC past SCHEMA_MAX_CRDS. */
int schema_crd_register(const json_t *crd, struct dpf_error *err);
/* Stop serving the CRD named name ("widgets.example.com"): 0 or -ENOENT. */
int schema_crd_unregister(const char *name);

/* --- object processing, in the order the API server applies it --- */
enum schema_unknown_mode {
    SCHEMA_UNKNOWN_PRUNE = 0,  /* drop unknown fields silently */
    SCHEMA_UNKNOWN_WARN = 1,   /* drop, and report them in *warnings */
    SCHEMA_UNKNOWN_STRICT = 2, /* reject with 400 BadRequest */
};
/* Remove (or reject) fields the schema does not declare, except inside
 * preserve-unknown-fields subtrees (helm values, metadata.labels, ...).
 * warnings (may be NULL) receives a new json array of field paths. */
int schema_prune(const struct schema_kind *k, json_t *obj,
                 enum schema_unknown_mode mode, json_t **warnings,
                 struct dpf_error *err);
/* Apply field defaults (CRD defaults) and the kind's set_defaults. */
void schema_default(const struct schema_kind *k, json_t *obj);
/* Validate metadata (name/generateName rules, labels, annotations size),
 * the field tree, immutability (old != NULL on update) and the kind's
 * rules. Fills err with code 422 (or k->invalid_code), reason "Invalid",
 * message `<Kind> "<name>" is invalid: <causes>` and one cause per
 * problem. Returns 0 or -EINVAL. */
int schema_validate(const struct schema_kind *k, const json_t *obj,
                    const json_t *old, struct dpf_error *err);
/* Rules on delete: the kind's validate_delete hook (DPF's delete webhooks,
 * Kubernetes' protected namespaces). 0, or -EPERM with err filled as an
 * admission denial: code 403, reason "Forbidden", a message naming what
 * forbids it (the object that still references this one). */
int schema_validate_delete(const struct schema_kind *k, const json_t *obj,
                           const struct schema_reader *reader,
                           struct dpf_error *err);
/* Name validation alone (DNS-1123 subdomain or label as the kind needs). */
int schema_validate_name(const struct schema_kind *k, const char *name,
                         struct dpf_error *err);

/* --- strategic merge patch --- */
/* Apply a strategic merge patch (application/strategic-merge-patch+json)
 * to obj in place, driven by the patch strategies and merge keys of k's
 * field tree (docs/dev/schema.md): lists merged by key or as sets,
 * $patch replace/delete/merge, $retainKeys, $deleteFromPrimitiveList/<f>,
 * $setElementOrder/<f>. Only Kubernetes' own kinds take one, as in
 * Kubernetes, where custom resources have no Go types to say how: other
 * kinds answer -ENOTSUP with err as kube-apiserver's 415. A malformed
 * directive is -EINVAL with 400 BadRequest; a patch that cannot apply
 * (a list element without its merge key) -EINVAL with 422. On error obj
 * may be half-patched: patch a copy. */
int schema_strategic_merge(const struct schema_kind *k, json_t *obj,
                           const json_t *patch, struct dpf_error *err);

/* --- field ownership (metadata.managedFields) and server-side apply ---
 * Sets of fields in Kubernetes' fieldsV1 format, computed from the list
 * types (`atomic`, `set`, `map` with its keys) and map types of k's field
 * tree (api/schema-fields.c, docs/dev/schema.md). */
struct schema_field_manager {
    const char *manager;     /* fieldManager (or the User-Agent's prefix) */
    const char *subresource; /* "status", or NULL for the main resource */
    const char *time;        /* RFC 3339, recorded in the entry */
};
/* Record an Update by m: the fields that differ between old (NULL on
 * create) and newobj move to m's Update entry, leaving every other
 * manager; ownership of fields that are gone is dropped. Reads old's
 * managedFields and writes newobj's. A write that changes nothing keeps
 * old's managedFields. */
void schema_fields_update(const struct schema_kind *k, const json_t *old,
                          json_t *newobj, const struct schema_field_manager *m);
/* Server-side apply of config (the applied configuration, an object) to
 * live (the stored object with its managedFields, or NULL when absent):
 * config merged into live (lists by their keys or as sets, atomic ones
 * replaced), then the fields m applied before and applies no more
 * removed unless another manager owns them; m's Apply entry becomes the
 * set of config. A field whose value changes and another manager owns is
 * a conflict: without force -EBUSY with err as kube-apiserver's 409
 * ("Apply failed with N conflicts: ..." and one FieldManagerConflict
 * cause per field); with force the other managers lose it. *out: the new
 * object with its managedFields (new ref). */
int schema_fields_apply(const struct schema_kind *k, const json_t *live,
                        const json_t *config,
                        const struct schema_field_manager *m, bool force,
                        json_t **out, struct dpf_error *err);
/* The fieldsV1 set a manager applying obj would own (new ref). */
json_t *schema_fields_set(const struct schema_kind *k, const json_t *obj);

/* --- export --- */
/* OpenAPI v3 schema object of the whole kind (structural). New ref. */
json_t *schema_openapi_v3(const struct schema_kind *k);
/* The same as kube-apiserver publishes it in OpenAPI v2 (/openapi/v2):
 * no anyOf/oneOf/nullable; values that keep unknown fields untyped;
 * int-or-string as type string, format int-or-string. New ref. */
json_t *schema_openapi_v2(const struct schema_kind *k);
/* A complete apiextensions.k8s.io/v1 CustomResourceDefinition for a kind
 * (NULL for a built-in kind, which Kubernetes serves itself). New ref. */
json_t *schema_crd(const struct schema_kind *k);

/* --- tables --- */
/* Evaluate a printer column's JSONPath on obj into a display string
 * (malloc'd; "" if absent; "<unknown>" is never returned). Age/date
 * columns return the raw timestamp; the caller formats it. */
char *schema_column_value(const struct schema_column *c, const json_t *obj);

#endif
