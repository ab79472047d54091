/* kinds-operator: operator.dpu.nvidia.com/v1alpha1 DPFOperatorConfig. */
#include "api/schema-node.h"

const struct schema_kind *const schema_kinds_operator[] = {
    NULL,
};
