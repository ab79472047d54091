/* kinds: the groups this platform serves, in registry order. Discovery
 * lists them in this order, and a plain word ("dpu", "pods") resolves to
 * the first group that has a kind of that name, so the platform's own
 * groups come before Kubernetes'. Add a group here (its kinds file
 * defines it with SCHEMA_GROUP_1 or by hand for several versions). */
#include "api/schema-node.h"

const struct schema_group *const schema_builtin_groups[] = {
    &schema_group_provisioning,   &schema_group_svc,
    &schema_group_operator,       &schema_group_core,
    &schema_group_coordination,   &schema_group_apps,
    &schema_group_ipam,           &schema_group_events,
    &schema_group_rbac,           &schema_group_authorization,
    &schema_group_authentication, &schema_group_apiextensions,
    &schema_group_certificates,   NULL,
};
