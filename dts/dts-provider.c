/* dts-provider: the table of built-in providers (see dts-provider.h). */
#include "dts/dts-provider.h"

#include <string.h>

static const struct dts_provider_ops *const dts_providers[] = {
    &dts_prov_sysfs_ops,    &dts_prov_ethtool_ops,   &dts_prov_tc_ops,
    &dts_prov_ifconfig_ops, &dts_prov_prom_aggr_ops, &dts_prov_fluent_aggr_ops,
    &dts_prov_nvsmi_ops,    &dts_prov_dcgm_ops,
};

const struct dts_provider_ops *
dts_provider_find(const char *name)
{
    for (size_t i = 0; i < sizeof dts_providers / sizeof dts_providers[0];
         i++) {
        if (strcmp(dts_providers[i]->name, name) == 0) {
            return dts_providers[i];
        }
    }
    return NULL;
}
