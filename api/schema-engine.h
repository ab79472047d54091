/* schema-engine: what the engine's files (api/schema-*.c) share and no
 * one else uses: the registry's per-kind data, the field-path walker and
 * the error and name helpers behind validation.
 *
 * The engine knows no API group and no kind: everything that is true of
 * one kind is in its declaration (struct schema_kind, its hooks and
 * flags) and the groups come from the registry (schema-registry.c). */
#ifndef DPF_API_SCHEMA_ENGINE_H
#define DPF_API_SCHEMA_ENGINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "api/schema-node.h"
#include "api/schema.h"
#include "lib/base/error.h"

/* --- registry (schema-registry.c) --- */
/* Per-kind strings computed once when the registry is built. */
struct kind_rt {
    const struct schema_kind *k;  /* the declaration */
    const struct schema_group *g; /* its group */
    char api_version[96];         /* "group/version" or "v1" */
    char qualified[128];          /* "Kind.group" or "Kind" (core) */
};
/* Build the registry once (compiles patterns, parses defaults). */
void schema_ensure_init(void);
/* The runtime record of a registered kind, or NULL. */
const struct kind_rt *schema_kind_rt(const struct schema_kind *k);

/* --- CustomResourceDefinitions (schema-crd.c) --- */
/* The kinds one CRD serves, built by schema_crd_build(). Once the
 * registry lists it, it is never freed (see schema-registry.c). */
struct crd_def {
    char *name;                       /* metadata.name */
    char *group;                      /* spec.group */
    char *plural;                     /* spec.names.plural */
    const char *preferred_version;    /* the storage version */
    const struct schema_kind **kinds; /* served versions, NULL-terminated */
    char *spec_text;                  /* spec as compact sorted JSON */
    struct crd_arena *arena;          /* everything the kinds point to */
    bool served;                      /* in the current snapshot */
    struct crd_def *next;             /* registry list (g_crds) */
};
/* Check and convert a CRD. NULL with err's causes filled. */
struct crd_def *schema_crd_build(const json_t *crd, struct dpf_error *err);
/* Free a definition no snapshot ever listed. */
void schema_crd_def_free(struct crd_def *d);
/* Do a and b serve the same thing (same spec)? */
bool schema_crd_same(const struct crd_def *a, const struct crd_def *b);

/* --- errors (schema-errors.c) --- */
/* "object", "array", "string", ... as Kubernetes names a JSON type. */
const char *schema_json_type_name(const json_t *v);
/* Fill err's code (invalid_code or 422), reason and message
 * `<Kind.group> "<name>" is invalid: <causes>` from its causes. */
void schema_finish_invalid(const struct schema_kind *k, const json_t *obj,
                           struct dpf_error *err, int invalid_code);

/* --- names (schema-names.c) --- */
/* Check a name (or, with prefix, a generateName prefix) as a DNS-1123
 * label or subdomain; adds an Invalid cause at path. 0 or -EINVAL. */
int schema_check_name(bool label, const char *name, bool prefix,
                      const char *path, struct dpf_error *err);
/* The same for an object name of kind k: a DNS label or subdomain, or
 * only a valid path segment for kinds with name_is_path_segment. */
int schema_check_kind_name(const struct schema_kind *k, const char *name,
                           bool prefix, const char *path,
                           struct dpf_error *err);

/* --- the field path of a walk (schema-validate.c) --- */
/* The field path being visited, in a fixed buffer. */
struct walk {
    struct dpf_error *err;         /* causes go here */
    char path[512];                /* "spec.switches[0].ports" */
    size_t len;                    /* strlen(path) */
    enum schema_unknown_mode mode; /* prune: what to do with unknowns */
    json_t *unknown;               /* prune: paths of unknown fields */
};
/* Push ".key", "[idx]" or "[key]"; each returns the length to pop to. */
size_t schema_path_push_key(struct walk *w, const char *key);
size_t schema_path_push_index(struct walk *w, size_t idx);
size_t schema_path_push_mapkey(struct walk *w, const char *key);
void schema_path_pop(struct walk *w, size_t saved);
/* A node type as an OpenAPI type word ("string", "integer", ... "object"
 * for maps, "integer or string"). */
const char *schema_type_word(enum schema_type t);

#endif
