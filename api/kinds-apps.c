/* kinds-apps: apps/v1 DaemonSet, Deployment, ReplicaSet and StatefulSet, the workloads DPUServices
 * become: a selector that must select the template's labels and may not
 * change, Kubernetes' defaults for strategies and history. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api/schema-node.h"
#include "lib/base/util.h"

#define APPS_V1 .group = "apps", .version = "v1", .builtin = true

/* ------------------------------------------------------------------ */
/* DaemonSet, Deployment                                                */
/* ------------------------------------------------------------------ */

/* apps/v1: a selector is required, must select the template's labels and
 * is immutable. */
static int
apps_validate(const json_t *obj, const json_t *old, struct dpf_error *err)
{
    int rc = 0;
    const json_t *sel = schema_get(obj, "spec.selector");
    const json_t *ml = json_object_get(sel, "matchLabels");
    const json_t *me = json_object_get(sel, "matchExpressions");
    if (!json_object_size(ml) && !json_array_size(me)) {
        schema_err_invalid(err, "spec.selector", sel,
                           "empty selector is invalid for deployment");
        rc = -EINVAL;
    }
    const json_t *tl = schema_get(obj, "spec.template.metadata.labels");
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *) ml, key, val)
    {
        const json_t *tv = json_object_get(tl, key);
        if (!tv || !json_equal((json_t *) tv, (json_t *) val)) {
            schema_err_invalid(err, "spec.template.metadata.labels", tl,
                               "`selector` does not match template `labels`");
            rc = -EINVAL;
            break;
        }
    }
    schema_check_labels(tl, "spec.template.metadata.labels", err);
    if (old && !json_equal((json_t *) sel, schema_get(old, "spec.selector"))) {
        schema_err_invalid(err, "spec.selector", sel, "field is immutable");
        rc = -EINVAL;
    }
    return rc;
}

static const struct schema_node pod_template_node = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(F("metadata",
             N_OBJ(PRESERVE, FIELDS(F("labels", &schema_string_map),
                                    F("annotations", &schema_string_map)))),
           R("spec", &schema_pod_spec)),
};

/* What every apps/v1 workload is and has. */
#define APPS_WORKLOAD                                          \
    APPS_V1, .categories = (const char *const[]){"all", NULL}, \
             .namespaced = true, .has_status = true, .validate = apps_validate
#define WORKLOAD_FIELDS                                                       \
    R("selector", &schema_label_selector), R("template", &pod_template_node), \
        F("minReadySeconds", N_INT(MINIMUM(0))),                              \
        F("revisionHistoryLimit", N_INT(MINIMUM(0), DEFAULT("10")))

static const struct schema_node workload_status = {
    .type = SCHEMA_T_OBJECT,
    PRESERVE,
    FIELDS(F("conditions", &schema_core_conditions)),
};

static const struct schema_node rolling_update = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(F("maxUnavailable", N_IOS()), F("maxSurge", N_IOS())),
};

static char *
ds_node_selector(const json_t *obj)
{
    const json_t *ns = schema_get(obj, "spec.template.spec.nodeSelector");
    if (!json_object_size(ns)) {
        return xstrdup("<none>");
    }
    struct dbuf b;
    dbuf_init(&b);
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *) ns, key, v)
    {
        const char *val = json_string_value(v);
        dbuf_printf(&b, "%s%s=%s", b.len ? "," : "", key, val ? val : "");
    }
    return dbuf_steal(&b, NULL);
}

static const struct schema_column daemonset_columns[] = {
    COLUMN("Desired", "integer", ".status.desiredNumberScheduled"),
    COLUMN("Current", "integer", ".status.currentNumberScheduled"),
    COLUMN("Ready", "integer", ".status.numberReady"),
    COLUMN("Up-to-date", "integer", ".status.updatedNumberScheduled"),
    COLUMN("Available", "integer", ".status.numberAvailable"),
    {"Node Selector", "string", NULL, NULL, 0, ds_node_selector},
    COLUMN_AGE,
    COLUMNS_END,
};

static const struct schema_kind kind_daemonset = {
    APPS_WORKLOAD,
    KIND_NAMES("DaemonSet", "daemonsets", "daemonset"),
    .short_names = (const char *const[]){"ds", NULL},
    .columns = daemonset_columns,
    .root = KIND_ROOT(
        R("spec",
          N_OBJ(FIELDS(
              WORKLOAD_FIELDS,
              F("updateStrategy",
                N_OBJ(FIELDS(F("type", N_STR(ENUM("RollingUpdate", "OnDelete"),
                                             DEFAULT("\"RollingUpdate\""))),
                             F("rollingUpdate", &rolling_update)),
                      DEFAULT("{\"type\":\"RollingUpdate\",\"rollingUpdate\":"
                              "{\"maxUnavailable\":1,\"maxSurge\":0}}")))))),
        F("status", &workload_status)),
};

static char *
deploy_ready(const json_t *obj)
{
    return xasprintf(
        "%lld/%lld",
        (long long) json_integer_value(schema_get(obj, "status.readyReplicas")),
        (long long) json_integer_value(schema_get(obj, "spec.replicas")));
}

static const struct schema_column deployment_columns[] = {
    {"Ready", "string", NULL, "ready/desired replicas", 0, deploy_ready},
    COLUMN("Up-to-date", "integer", ".status.updatedReplicas"),
    COLUMN("Available", "integer", ".status.availableReplicas"),
    COLUMN_AGE,
    COLUMNS_END,
};

/* The scale subresource of the replicated workloads (autoscaling/v1). */
static const struct schema_scale apps_scale = {
    .spec_replicas = "spec.replicas",
    .status_replicas = "status.replicas",
    .label_selector = "spec.selector",
};

static const struct schema_kind kind_deployment = {
    APPS_WORKLOAD,
    KIND_NAMES("Deployment", "deployments", "deployment"),
    .short_names = (const char *const[]){"deploy", NULL},
    .columns = deployment_columns,
    .scale = &apps_scale,
    .root = KIND_ROOT(
        R("spec",
          N_OBJ(FIELDS(
              WORKLOAD_FIELDS, F("replicas", N_INT(MINIMUM(0), DEFAULT("1"))),
              F("strategy",
                N_OBJ(PATCH_STRATEGY("retainKeys"),
                      FIELDS(F("type", N_STR(ENUM("RollingUpdate", "Recreate"),
                                             DEFAULT("\"RollingUpdate\""))),
                             F("rollingUpdate", &rolling_update)),
                      DEFAULT("{\"type\":\"RollingUpdate\",\"rollingUpdate\":"
                              "{\"maxUnavailable\":\"25%\",\"maxSurge\":"
                              "\"25%\"}}"))),
              F("paused", N_BOOL()),
              F("progressDeadlineSeconds", N_INT(DEFAULT("600")))))),
        F("status", &workload_status)),
};

/* ------------------------------------------------------------------ */
/* ReplicaSet, StatefulSet                                              */
/* ------------------------------------------------------------------ */

static const struct schema_node claim_template = {
    .type = SCHEMA_T_OBJECT,
    .preserve_unknown = true,
};

static const struct schema_column replicaset_columns[] = {
    COLUMN("Desired", "integer", ".spec.replicas"),
    COLUMN("Current", "integer", ".status.replicas"),
    COLUMN("Ready", "integer", ".status.readyReplicas"),
    COLUMN_AGE,
    COLUMNS_END,
};

static const struct schema_kind kind_replicaset = {
    APPS_WORKLOAD,
    KIND_NAMES("ReplicaSet", "replicasets", "replicaset"),
    .short_names = (const char *const[]){"rs", NULL},
    .columns = replicaset_columns,
    .scale = &apps_scale,
    .root = KIND_ROOT(
        R("spec",
          N_OBJ(FIELDS(R("selector", &schema_label_selector),
                       F("template", &pod_template_node),
                       F("minReadySeconds", N_INT(MINIMUM(0))),
                       F("replicas", N_INT(MINIMUM(0), DEFAULT("1")))))),
        F("status", N_OBJ(PRESERVE))),
};

static char *
sts_ready(const json_t *obj)
{
    return xasprintf(
        "%lld/%lld",
        (long long) json_integer_value(schema_get(obj, "status.readyReplicas")),
        (long long) json_integer_value(schema_get(obj, "spec.replicas")));
}

static const struct schema_column statefulset_columns[] = {
    {"Ready", "string", NULL, "ready/desired replicas", 0, sts_ready},
    COLUMN_AGE,
    COLUMNS_END,
};

static const struct schema_kind kind_statefulset = {
    APPS_WORKLOAD,
    KIND_NAMES("StatefulSet", "statefulsets", "statefulset"),
    .short_names = (const char *const[]){"sts", NULL},
    .columns = statefulset_columns,
    .scale = &apps_scale,
    .root = KIND_ROOT(
        R("spec",
          N_OBJ(FIELDS(
              WORKLOAD_FIELDS, F("replicas", N_INT(MINIMUM(0), DEFAULT("1"))),
              F("serviceName", N_STR()),
              F("podManagementPolicy", N_STR(ENUM("OrderedReady", "Parallel"),
                                             DEFAULT("\"OrderedReady\""))),
              F("updateStrategy",
                N_OBJ(FIELDS(F("type", N_STR(ENUM("RollingUpdate", "OnDelete"),
                                             DEFAULT("\"RollingUpdate\""))),
                             F("rollingUpdate",
                               N_OBJ(FIELDS(F("partition", N_INT(MINIMUM(0))),
                                            F("maxUnavailable", N_IOS()))))),
                      DEFAULT("{\"type\":\"RollingUpdate\",\"rollingUpdate\":"
                              "{\"partition\":0}}"))),
              F("volumeClaimTemplates", N_ARR(&claim_template)),
              F("persistentVolumeClaimRetentionPolicy",
                N_OBJ(FIELDS(F("whenDeleted", N_STR(ENUM("Retain", "Delete"),
                                                    DEFAULT("\"Retain\""))),
                             F("whenScaled", N_STR(ENUM("Retain", "Delete"),
                                                   DEFAULT("\"Retain\"")))))),
              F("ordinals", N_OBJ(FIELDS(F("start", N_INT(MINIMUM(0))))))))),
        F("status", N_OBJ(PRESERVE))),
};

SCHEMA_GROUP_1(schema_group_apps, "apps", "v1", &kind_daemonset,
               &kind_deployment, &kind_replicaset, &kind_statefulset);
