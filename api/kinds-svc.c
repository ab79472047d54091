/* kinds-svc: svc.dpu.nvidia.com/v1alpha1 kinds (host side and DPU-cluster
 * side). */
#include "api/schema-node.h"

const struct schema_kind *const schema_kinds_svc[] = {
    NULL,
};
