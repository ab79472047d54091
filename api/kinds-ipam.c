/* kinds-ipam: nv-ipam.nvidia.com/v1alpha1 IPPool and CIDRPool, the pools
 * the IPAM controller creates in DPU clusters from DPUServiceIPAMs. */
#include "api/schema-node.h"

#define IPAM_GROUP "nv-ipam.nvidia.com"
#define IPAM_V1ALPHA1 .group = IPAM_GROUP, .version = "v1alpha1"

/* ------------------------------------------------------------------ */
/* nv-ipam.nvidia.com/v1alpha1 IPPool, CIDRPool                          */
/* ------------------------------------------------------------------ */

static const struct schema_node ipam_exclusions = {
    .type = SCHEMA_T_ARRAY,
    ITEMS(N_OBJ(FIELDS(R("startIP", N_STR()), R("endIP", N_STR())))),
};
static const struct schema_node ipam_routes = {
    .type = SCHEMA_T_ARRAY,
    ITEMS(N_OBJ(FIELDS(R("dst", N_STR())))),
};

static const struct schema_column ippool_columns[] = {
    COLUMN("Subnet", "string", ".spec.subnet"),
    COLUMN("Gateway", "string", ".spec.gateway"),
    COLUMN("Block Size", "integer", ".spec.perNodeBlockSize"),
    COLUMN_AGE,
    COLUMNS_END,
};

static const struct schema_doc ippool_docs[] = {
    {"", "An NVIDIA IPAM pool: a subnet handed out to nodes in blocks."},
    {"spec", "The subnet and how it is split."},
    {"spec.subnet", "The subnet in CIDR notation."},
    {"status", "Blocks given to nodes."},
    {"status.allocations.nodeName", "The node the block is for."},
    {"status.allocations.startIP", "First address of the node's block."},
    {"status.allocations.endIP", "Last address of the node's block."},
    {NULL, NULL},
};

static const struct schema_kind kind_ippool = {
    .docs = ippool_docs,
    IPAM_V1ALPHA1,
    KIND_NAMES("IPPool", "ippools", "ippool"),
    .namespaced = true,
    .has_status = true,
    .columns = ippool_columns,
    .root = KIND_ROOT(
        R("spec",
          N_OBJ(FIELDS(F("defaultGateway", N_BOOL()),
                       F("exclusions", &ipam_exclusions), F("gateway", N_STR()),
                       F("nodeSelector", &schema_node_selector),
                       R("perNodeBlockSize", N_INT()),
                       F("routes", &ipam_routes), R("subnet", N_STR())))),
        F("status",
          N_OBJ(FIELDS(
              R("allocations",
                N_ARR(N_OBJ(FIELDS(R("endIP", N_STR()), R("nodeName", N_STR()),
                                   R("startIP", N_STR()))))))))),
};

static const struct schema_column cidrpool_columns[] = {
    COLUMN("CIDR", "string", ".spec.cidr"),
    COLUMN("Gateway index", "string", ".spec.gatewayIndex"),
    {"Per Node Network Prefix", "integer", ".spec.perNodeNetworkPrefix", NULL,
     0, NULL},
    COLUMN_AGE,
    COLUMNS_END,
};

static const struct schema_doc cidrpool_docs[] = {
    {"", "An NVIDIA IPAM CIDR pool: a network split into one subnet per node."},
    {"spec", "The network and how it is split."},
    {"spec.cidr", "The network in CIDR notation."},
    {"spec.gatewayIndex",
     "Index of the gateway address in each node's subnet."},
    {"spec.perNodeNetworkPrefix", "Prefix length of each node's subnet."},
    {"spec.staticAllocations", "Fixed subnets for nodes."},
    {"spec.staticAllocations.nodeName", "The node."},
    {"spec.staticAllocations.prefix", "Its subnet in CIDR notation."},
    {"spec.staticAllocations.gateway", "Its gateway."},
    {"status", "Subnets given to nodes."},
    {"status.allocations.nodeName", "The node."},
    {"status.allocations.prefix", "Its subnet in CIDR notation."},
    {"status.allocations.gateway", "Its gateway."},
    {NULL, NULL},
};

static const struct schema_kind kind_cidrpool = {
    .docs = cidrpool_docs,
    IPAM_V1ALPHA1,
    KIND_NAMES("CIDRPool", "cidrpools", "cidrpool"),
    .namespaced = true,
    .has_status = true,
    .columns = cidrpool_columns,
    .root = KIND_ROOT(
        R("spec",
          N_OBJ(FIELDS(R("cidr", N_STR()), F("defaultGateway", N_BOOL()),
                       F("exclusions", &ipam_exclusions),
                       F("gatewayIndex", N_INT(FORMAT("int32"))),
                       F("nodeSelector", &schema_node_selector),
                       R("perNodeNetworkPrefix", N_INT(FORMAT("int32"))),
                       F("routes", &ipam_routes),
                       F("staticAllocations",
                         N_ARR(N_OBJ(FIELDS(F("gateway", N_STR()),
                                            F("nodeName", N_STR()),
                                            R("prefix", N_STR())))))))),
        F("status",
          N_OBJ(FIELDS(R(
              "allocations",
              N_ARR(N_OBJ(FIELDS(F("gateway", N_STR()), R("nodeName", N_STR()),
                                 R("prefix", N_STR()))))))))),
};

SCHEMA_GROUP_1(schema_group_ipam, IPAM_GROUP, "v1alpha1", &kind_ippool,
               &kind_cidrpool);
