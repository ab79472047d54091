/* kinds-shared: sub-schemas that kinds of several groups use — ObjectMeta,
 * label and node selectors, conditions, taints, quantities. */
#include "api/schema-node.h"

#define QUANTITY_PATTERN                                                   \
    "^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|" \
    "([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$"

/* ------------------------------------------------------------------ */
/* shared sub-schemas                                                   */
/* ------------------------------------------------------------------ */

const struct schema_node schema_string = {
    .type = SCHEMA_T_STRING,
};

const struct schema_node schema_string_list = {
    .type = SCHEMA_T_ARRAY,
    .items = &schema_string,
};

const struct schema_node schema_string_map = {
    .type = SCHEMA_T_MAP,
    .items = &schema_string,
};

const struct schema_node schema_object_meta = {
    .type = SCHEMA_T_OBJECT,
    .export_plain = true,
    FIELDS(F("name", N_STR()), F("generateName", N_STR()),
           F("namespace", N_STR()), F("selfLink", N_STR()), F("uid", N_STR()),
           F("resourceVersion", N_STR()), F("generation", N_INT()),
           F("creationTimestamp", N_STR(FORMAT("date-time"))),
           F("deletionTimestamp", N_STR(FORMAT("date-time"))),
           F("deletionGracePeriodSeconds", N_INT()),
           F("labels", &schema_string_map),
           F("annotations", &schema_string_map),
           F("ownerReferences",
             N_ARR(N_OBJ(FIELDS(R("apiVersion", N_STR()), R("kind", N_STR()),
                                R("name", N_STR()), R("uid", N_STR()),
                                F("controller", N_BOOL()),
                                F("blockOwnerDeletion", N_BOOL()))),
                   LIST_MAP("uid"), PATCH_MERGE_KEY("uid"))),
           F("finalizers",
             N_ARR(&schema_string, LIST_SET, PATCH_STRATEGY("merge"))),
           F("managedFields", N_ARR(N_ANY(), ATOMIC_LIST))),
};

const struct schema_node schema_label_selector = {
    .type = SCHEMA_T_OBJECT,
    .map_type = "atomic",
    DESC("A label query over a set of resources."),
    FIELDS(
        F("matchExpressions",
          N_ARR(N_OBJ(FIELDS(R("key", N_STR()), R("operator", N_STR()),
                             F("values", N_ARR(&schema_string, ATOMIC_LIST)))),
                ATOMIC_LIST)),
        F("matchLabels", &schema_string_map)),
};

const struct schema_node schema_node_selector = {
    .type = SCHEMA_T_OBJECT,
    .map_type = "atomic",
    DESC("A node selector (terms are ORed)."),
    FIELDS(R(
        "nodeSelectorTerms",
        N_ARR(
            N_OBJ(FIELDS(F("matchExpressions",
                           N_ARR(N_OBJ(FIELDS(R("key", N_STR()),
                                              R("operator", N_STR()),
                                              F("values", N_ARR(&schema_string,
                                                                ATOMIC_LIST)))),
                                 ATOMIC_LIST)),
                         F("matchFields",
                           N_ARR(N_OBJ(FIELDS(R("key", N_STR()),
                                              R("operator", N_STR()),
                                              F("values", N_ARR(&schema_string,
                                                                ATOMIC_LIST)))),
                                 ATOMIC_LIST))),
                  ATOMIC_MAP),
            ATOMIC_LIST))),
};

const struct schema_node schema_conditions = {
    .type = SCHEMA_T_ARRAY,
    DESC("Conditions reflect the status of the object."),
    ITEMS(N_OBJ(FIELDS(
        R("lastTransitionTime", N_STR(FORMAT("date-time"))),
        R("message", N_STR(MAXLEN(32768))),
        F("observedGeneration", N_INT(FORMAT("int64"), MINIMUM(0))),
        R("reason", N_STR(PATTERN("^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"),
                          MINLEN(1), MAXLEN(1024))),
        R("status", N_STR(ENUM("True", "False", "Unknown"))),
        R("type",
          N_STR(PATTERN("^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-"
                        "9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-"
                        "Za-z0-9])$"),
                MAXLEN(316)))))),
};

const struct schema_node schema_core_conditions = {
    .type = SCHEMA_T_ARRAY,
    LIST_MAP("type"),
    PATCH_MERGE_KEY("type"),
    ITEMS(N_OBJ(PRESERVE, FIELDS(R("type", N_STR()), F("status", N_STR()),
                                 F("reason", N_STR()), F("message", N_STR())))),
};

const struct schema_node schema_taint = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(R("effect", N_STR()), R("key", N_STR()),
           F("timeAdded", N_STR(FORMAT("date-time"))), F("value", N_STR())),
};

const struct schema_node schema_quantity = {
    .type = SCHEMA_T_INT_OR_STRING,
    PATTERN(QUANTITY_PATTERN),
};

const struct schema_node schema_resource_list = {
    .type = SCHEMA_T_MAP,
    ITEMS(&schema_quantity),
};

/* Printer columns several kinds share. */
const struct schema_column schema_columns_age[] = {
    COLUMN_AGE,
    COLUMNS_END,
};

const struct schema_column schema_columns_ready_reason_age[] = {
    COLUMN_READY,
    COLUMN_READY_REASON,
    COLUMN_AGE,
    COLUMNS_END,
};
