/* kinds-coordination: coordination.k8s.io/v1 Lease, what leader election
 * (lib/kube) holds and renews. */
#include "api/schema-node.h"

#define COORDINATION_GROUP "coordination.k8s.io"
#define COORDINATION_V1 \
    .group = COORDINATION_GROUP, .version = "v1", .builtin = true

/* ------------------------------------------------------------------ */
/* Lease                                                                */
/* ------------------------------------------------------------------ */

static const struct schema_column lease_columns[] = {
    COLUMN("Holder", "string", ".spec.holderIdentity"),
    COLUMN_AGE,
    COLUMNS_END,
};

static const struct schema_kind kind_lease = {
    COORDINATION_V1,
    KIND_NAMES("Lease", "leases", "lease"),
    .namespaced = true,
    .columns = lease_columns,
    .root = KIND_ROOT(
        F("spec",
          N_OBJ(FIELDS(
              F("holderIdentity", N_STR()),
              F("leaseDurationSeconds", N_INT(FORMAT("int32"), MINIMUM(1))),
              F("acquireTime", N_STR()), F("renewTime", N_STR()),
              F("leaseTransitions", N_INT(FORMAT("int32"), MINIMUM(0))),
              F("strategy", N_STR()), F("preferredHolder", N_STR()))))),
};

SCHEMA_GROUP_1(schema_group_coordination, COORDINATION_GROUP, "v1",
               &kind_lease);
