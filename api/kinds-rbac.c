/* kinds-rbac: rbac.authorization.k8s.io/v1 Role, ClusterRole, RoleBinding,
 * ClusterRoleBinding, with Kubernetes' validation of policy rules,
 * subjects and role references (pkg/apis/rbac/validation). Enforcement
 * is the API server's (dpf-server/rbac.c, authz.c). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api/schema-node.h"

#define RBAC_GROUP "rbac.authorization.k8s.io"
#define RBAC_V1                                            \
    .group = RBAC_GROUP, .version = "v1", .builtin = true, \
    .name_is_path_segment = true

/* ------------------------------------------------------------------ */
/* shared sub-schemas                                                   */
/* ------------------------------------------------------------------ */

static const struct schema_node policy_rule = {
    .type = SCHEMA_T_OBJECT,
    DESC("PolicyRule holds information that describes a policy rule."),
    FIELDS(R("verbs", N_ARR(&schema_string, ATOMIC_LIST)),
           F("apiGroups", N_ARR(&schema_string, ATOMIC_LIST)),
           F("resources", N_ARR(&schema_string, ATOMIC_LIST)),
           F("resourceNames", N_ARR(&schema_string, ATOMIC_LIST)),
           F("nonResourceURLs", N_ARR(&schema_string, ATOMIC_LIST))),
};

static const struct schema_node policy_rules = {
    .type = SCHEMA_T_ARRAY,
    .items = &policy_rule,
    .list_type = "atomic",
};

static const struct schema_node subject = {
    .type = SCHEMA_T_OBJECT,
    .map_type = "atomic",
    FIELDS(R("kind", N_STR()), F("apiGroup", N_STR()), R("name", N_STR()),
           F("namespace", N_STR())),
};

static const struct schema_node role_ref = {
    .type = SCHEMA_T_OBJECT,
    .map_type = "atomic",
    FIELDS(R("apiGroup", N_STR()), R("kind", N_STR()), R("name", N_STR())),
};

static const struct schema_column role_columns[] = {
    COLUMN("Created At", "date", ".metadata.creationTimestamp"),
    COLUMNS_END,
};

static const struct schema_column binding_columns[] = {
    COLUMN("Role", "string", ".roleRef.name"),
    COLUMN_AGE,
    COLUMNS_END,
};

/* ------------------------------------------------------------------ */
/* validation                                                           */
/* ------------------------------------------------------------------ */

static int
rbac_validate_rules(const json_t *obj, bool namespaced, struct dpf_error *err)
{
    const json_t *rules = json_object_get(obj, "rules");
    int r = 0;
    size_t i;
    const json_t *rule;
    json_array_foreach(rules, i, rule)
    {
        char path[64];
        const json_t *nru = json_object_get(rule, "nonResourceURLs");
        if (json_array_size(json_object_get(rule, "verbs")) == 0) {
            snprintf(path, sizeof path, "rules[%zu].verbs", i);
            schema_err_required(err, path,
                                "verbs must contain at least one value");
            r = -EINVAL;
        }
        if (json_array_size(nru) > 0) {
            snprintf(path, sizeof path, "rules[%zu].nonResourceURLs", i);
            if (namespaced) {
                schema_err_invalid(err, path, nru,
                                   "namespaced rules cannot apply to "
                                   "non-resource URLs");
                r = -EINVAL;
            }
            if (json_array_size(json_object_get(rule, "apiGroups")) ||
                json_array_size(json_object_get(rule, "resources")) ||
                json_array_size(json_object_get(rule, "resourceNames"))) {
                schema_err_invalid(err, path, nru,
                                   "rules cannot apply to both regular "
                                   "resources and non-resource URLs");
                r = -EINVAL;
            }
            continue;
        }
        if (json_array_size(json_object_get(rule, "apiGroups")) == 0) {
            snprintf(path, sizeof path, "rules[%zu].apiGroups", i);
            schema_err_required(err, path,
                                "resource rules must supply at least one "
                                "api group");
            r = -EINVAL;
        }
        if (json_array_size(json_object_get(rule, "resources")) == 0) {
            snprintf(path, sizeof path, "rules[%zu].resources", i);
            schema_err_required(err, path,
                                "resource rules must supply at least one "
                                "resource");
            r = -EINVAL;
        }
    }
    return r;
}

static int
role_validate(const json_t *obj, const json_t *old, struct dpf_error *err)
{
    (void) old;
    return rbac_validate_rules(obj, true, err);
}

static int
clusterrole_validate(const json_t *obj, const json_t *old,
                     struct dpf_error *err)
{
    (void) old;
    int r = rbac_validate_rules(obj, false, err);
    const json_t *sel = schema_get(obj, "aggregationRule.clusterRoleSelectors");
    if (schema_get(obj, "aggregationRule") && json_array_size(sel) == 0) {
        schema_err_required(err, "aggregationRule.clusterRoleSelectors", NULL);
        r = -EINVAL;
    }
    return r;
}

static int
rbac_validate_binding(const json_t *obj, const json_t *old, bool namespaced,
                      struct dpf_error *err)
{
    int r = 0;
    const json_t *ref = json_object_get(obj, "roleRef");
    const char *kind = schema_get_str(obj, "roleRef.kind");
    const char *group = schema_get_str(obj, "roleRef.apiGroup");
    if (kind && strcmp(kind, "ClusterRole") != 0 &&
        (!namespaced || strcmp(kind, "Role") != 0)) {
        schema_err_invalid(err, "roleRef.kind", json_object_get(ref, "kind"),
                           "supported values: %s",
                           namespaced ? "\"Role\", \"ClusterRole\""
                                      : "\"ClusterRole\"");
        r = -EINVAL;
    }
    if (group && strcmp(group, RBAC_GROUP) != 0) {
        schema_err_invalid(err, "roleRef.apiGroup",
                           json_object_get(ref, "apiGroup"),
                           "supported values: \"" RBAC_GROUP "\"");
        r = -EINVAL;
    }
    if (old && !json_equal(ref, json_object_get(old, "roleRef"))) {
        schema_err_invalid(err, "roleRef", ref, "cannot change roleRef");
        r = -EINVAL;
    }
    size_t i;
    const json_t *s;
    json_array_foreach(json_object_get(obj, "subjects"), i, s)
    {
        char path[64];
        const char *sk = schema_get_str(s, "kind");
        const char *sg = schema_get_str(s, "apiGroup");
        if (!sk) {
            continue;
        }
        if (!strcmp(sk, "ServiceAccount")) {
            if (sg && *sg) {
                snprintf(path, sizeof path, "subjects[%zu].apiGroup", i);
                schema_err_invalid(err, path, json_object_get(s, "apiGroup"),
                                   "supported values: \"\"");
                r = -EINVAL;
            }
            const char *sns = schema_get_str(s, "namespace");
            if (!namespaced && (!sns || !*sns)) {
                snprintf(path, sizeof path, "subjects[%zu].namespace", i);
                schema_err_required(err, path, NULL);
                r = -EINVAL;
            }
        } else if (!strcmp(sk, "User") || !strcmp(sk, "Group")) {
            if (sg && strcmp(sg, RBAC_GROUP) != 0) {
                snprintf(path, sizeof path, "subjects[%zu].apiGroup", i);
                schema_err_invalid(err, path, json_object_get(s, "apiGroup"),
                                   "supported values: \"" RBAC_GROUP "\"");
                r = -EINVAL;
            }
        } else {
            snprintf(path, sizeof path, "subjects[%zu].kind", i);
            schema_err_invalid(err, path, json_object_get(s, "kind"),
                               "supported values: \"ServiceAccount\", "
                               "\"User\", \"Group\"");
            r = -EINVAL;
        }
    }
    return r;
}

static int
rolebinding_validate(const json_t *obj, const json_t *old,
                     struct dpf_error *err)
{
    return rbac_validate_binding(obj, old, true, err);
}

static int
clusterrolebinding_validate(const json_t *obj, const json_t *old,
                            struct dpf_error *err)
{
    return rbac_validate_binding(obj, old, false, err);
}

/* Subjects' apiGroup as Kubernetes defaults it (SetDefaults_Subject). */
static void
binding_defaults(json_t *obj)
{
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(obj, "subjects"), i, s)
    {
        const char *kind = schema_get_str(s, "kind");
        if (!kind || json_object_get(s, "apiGroup")) {
            continue;
        }
        if (!strcmp(kind, "User") || !strcmp(kind, "Group")) {
            json_object_set_new(s, "apiGroup", json_string(RBAC_GROUP));
        } else if (!strcmp(kind, "ServiceAccount")) {
            json_object_set_new(s, "apiGroup", json_string(""));
        }
    }
}

/* ------------------------------------------------------------------ */
/* kinds                                                                */
/* ------------------------------------------------------------------ */

static const struct schema_kind kind_role = {
    RBAC_V1,
    KIND_NAMES("Role", "roles", "role"),
    .namespaced = true,
    .columns = role_columns,
    .root = KIND_ROOT(F("rules", &policy_rules)),
    .validate = role_validate,
};

static const struct schema_kind kind_clusterrole = {
    RBAC_V1,
    KIND_NAMES("ClusterRole", "clusterroles", "clusterrole"),
    .columns = role_columns,
    .root = KIND_ROOT(
        F("rules", &policy_rules),
        F("aggregationRule",
          N_OBJ(FIELDS(F("clusterRoleSelectors",
                         N_ARR(&schema_label_selector, ATOMIC_LIST)))))),
    .validate = clusterrole_validate,
};

static const struct schema_kind kind_rolebinding = {
    RBAC_V1,
    KIND_NAMES("RoleBinding", "rolebindings", "rolebinding"),
    .namespaced = true,
    .columns = binding_columns,
    .root = KIND_ROOT(F("subjects", N_ARR(&subject, ATOMIC_LIST)),
                      R("roleRef", &role_ref)),
    .validate = rolebinding_validate,
    .set_defaults = binding_defaults,
};

static const struct schema_kind kind_clusterrolebinding = {
    RBAC_V1,
    KIND_NAMES("ClusterRoleBinding", "clusterrolebindings",
               "clusterrolebinding"),
    .columns = binding_columns,
    .root = KIND_ROOT(F("subjects", N_ARR(&subject, ATOMIC_LIST)),
                      R("roleRef", &role_ref)),
    .validate = clusterrolebinding_validate,
    .set_defaults = binding_defaults,
};

SCHEMA_GROUP_1(schema_group_rbac, RBAC_GROUP, "v1", &kind_clusterrole,
               &kind_clusterrolebinding, &kind_role, &kind_rolebinding);
