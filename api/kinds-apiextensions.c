/* kinds-apiextensions: apiextensions.k8s.io/v1 CustomResourceDefinition,
 * the kind through which a user or a chart adds a resource. Its checks and
 * the conversion of its schemas into kinds are the engine's
 * (api/schema-crd.c); serving what it declares is the API server's
 * (dpf-server/apiserver-crd.c). Here: the declaration, its defaults and
 * the status kube-apiserver's controllers would write (accepted names,
 * NamesAccepted, Established, Terminating, storedVersions), computed
 * on every write since registration is immediate. */
#include <string.h>

#include "api/schema-node.h"
#include "lib/base/util.h"

#define CRD_FINALIZER "customresourcecleanup.apiextensions.k8s.io"

static const struct schema_column crd_columns[] = {
    COLUMN("Created At", "string", ".metadata.creationTimestamp"),
    COLUMNS_END,
};

static int
crd_validate(const json_t *obj, const json_t *old, struct dpf_error *err)
{
    return schema_crd_check(obj, old, err);
}

/* The condition of type `type` in conds set to status/reason/message,
 * keeping its lastTransitionTime when the status did not change. */
static void
crd_set_condition(json_t *conds, const char *type, const char *status,
                  const char *reason, const char *message, const char *now)
{
    size_t i;
    json_t *c = NULL;
    for (i = 0; i < json_array_size(conds); i++) {
        c = json_array_get(conds, i);
        if (!strcmp(json_string_value(json_object_get(c, "type")) ?: "",
                    type)) {
            break;
        }
        c = NULL;
    }
    const char *old_status =
        c ? json_string_value(json_object_get(c, "status")) : NULL;
    const char *old_time =
        c ? json_string_value(json_object_get(c, "lastTransitionTime")) : NULL;
    json_t *n = json_pack(
        "{s:s,s:s,s:s,s:s,s:s}", "type", type, "status", status, "reason",
        reason, "message", message, "lastTransitionTime",
        old_status && old_time && !strcmp(old_status, status) ? old_time : now);
    if (c) {
        json_array_set_new(conds, i, n);
    } else {
        json_array_append_new(conds, n);
    }
}

static void
crd_defaults(json_t *obj)
{
    json_t *spec = json_object_get(obj, "spec");
    json_t *names = json_object_get(spec, "names");
    const char *kind = json_string_value(json_object_get(names, "kind"));
    if (!json_is_object(names) || !kind) {
        return;
    }
    if (!json_object_get(names, "singular")) {
        char low[128];
        snprintf(low, sizeof low, "%s", kind);
        for (char *p = low; *p; p++) {
            *p = (char) (*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
        }
        json_object_set_new(names, "singular", json_string(low));
    }
    if (!json_object_get(names, "listKind")) {
        char lk[140];
        snprintf(lk, sizeof lk, "%sList", kind);
        json_object_set_new(names, "listKind", json_string(lk));
    }
    if (!json_object_get(spec, "conversion")) {
        json_object_set_new(spec, "conversion",
                            json_pack("{s:s}", "strategy", "None"));
    }
    json_t *md = schema_ensure_obj(obj, "metadata");
    bool deleting = json_object_get(md, "deletionTimestamp") != NULL;
    json_t *fin = json_object_get(md, "finalizers");
    bool has_fin = false;
    size_t i;
    json_t *f;
    json_array_foreach(fin, i, f)
    {
        has_fin = has_fin || !strcmp(json_string_value(f) ?: "", CRD_FINALIZER);
    }
    if (!deleting && !has_fin) {
        if (!json_is_array(fin)) {
            fin = json_array();
            json_object_set_new(md, "finalizers", fin);
        }
        json_array_append_new(fin, json_string(CRD_FINALIZER));
    }
    /* Status as kube-apiserver's naming and establishing controllers
     * leave it once they ran. */
    json_t *status = json_object_get(obj, "status");
    if (!json_is_object(status)) {
        status = json_object();
        json_object_set_new(obj, "status", status);
    }
    json_object_set(status, "acceptedNames", names);
    json_t *stored = json_object_get(status, "storedVersions");
    if (!json_is_array(stored)) {
        stored = json_array();
        json_object_set_new(status, "storedVersions", stored);
    }
    json_t *v;
    json_array_foreach(json_object_get(spec, "versions"), i, v)
    {
        if (!json_is_true(json_object_get(v, "storage"))) {
            continue;
        }
        const char *name = json_string_value(json_object_get(v, "name"));
        bool have = false;
        size_t j;
        json_t *s;
        json_array_foreach(stored, j, s)
        {
            have = have || !strcmp(json_string_value(s) ?: "", name ?: "");
        }
        if (name && !have) {
            json_array_append_new(stored, json_string(name));
        }
    }
    json_t *conds = json_object_get(status, "conditions");
    if (!json_is_array(conds)) {
        conds = json_array();
        json_object_set_new(status, "conditions", conds);
    }
    char now[40];
    time_format_rfc3339(time_wall_ns(), now, sizeof now);
    crd_set_condition(conds, "NamesAccepted", "True", "NoConflicts",
                      "no conflicts found", now);
    crd_set_condition(conds, "Established", "True", "InitialNamesAccepted",
                      "the initial names have been accepted", now);
    if (deleting) {
        crd_set_condition(conds, "Terminating", "True",
                          "InstanceDeletionInProgress",
                          "CustomResource deletion is in progress", now);
    }
}

static const struct schema_doc crd_docs[] = {
    {"", "CustomResourceDefinition represents a resource that should be "
         "exposed on the API server. Its name MUST be in the format "
         "<.spec.name>.<.spec.group>."},
    {"spec", "What the resource is: its group, names, scope and versions "
             "with their schemas."},
    {"spec.group", "The API group of the defined custom resource."},
    {"spec.names", "The resource and kind names of the custom resource."},
    {"spec.scope", "Namespaced or Cluster."},
    {"spec.versions", "The served versions; exactly one is the storage "
                      "version."},
    {"status", "What the server made of the definition."},
    {NULL, NULL},
};

static const struct schema_kind kind_crd = {
    .group = "apiextensions.k8s.io",
    .version = "v1",
    KIND_NAMES("CustomResourceDefinition", "customresourcedefinitions",
               "customresourcedefinition"),
    .short_names = (const char *const[]){"crd", "crds", NULL},
    .builtin = true,
    .has_status = true,
    .columns = crd_columns,
    .docs = crd_docs,
    .root = KIND_ROOT(
        R("spec", N_OBJ(FIELDS(R("group", N_STR()), R("names", N_OBJ(PRESERVE)),
                               R("scope", N_STR()),
                               R("versions", N_ARR(N_OBJ(PRESERVE))),
                               F("conversion", N_OBJ(PRESERVE)),
                               F("preserveUnknownFields", N_BOOL())))),
        F("status", N_OBJ(PRESERVE))),
    .validate = crd_validate,
    .set_defaults = crd_defaults,
};

SCHEMA_GROUP_1(schema_group_apiextensions, "apiextensions.k8s.io", "v1",
               &kind_crd);
