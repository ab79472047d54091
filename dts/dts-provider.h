/* dts-provider: the one interface every DTS data provider implements, and
 * the table of built-in providers.
 *
 * A provider is a small module with an ops struct (init/collect/destroy).
 * The daemon calls init() when a configuration enables it, collect() once
 * per update period on the loop thread (it must not block for long:
 * providers that talk to slow peers do that on their own thread and hand
 * collect() their latest result), and destroy() when the configuration
 * disables it or the daemon stops. Every provider puts its samples into
 * the sink it is given; the sink applies counter selection and level
 * labels.
 *
 * Ownership: init() returns a state pointer the provider owns until
 * destroy(). The config and model passed to init() outlive the instance. */
#ifndef DTS_PROVIDER_H
#define DTS_PROVIDER_H

#include "dts/dts-config.h"
#include "dts/dts-metrics.h"
#include "lib/base/error.h"

/* What init() gets. */
struct dts_provider_ctx {
    const struct dts_config *config; /* the configuration being applied */
    struct dts_model *model;         /* for error counters */
};

/* A provider implementation. */
struct dts_provider_ops {
    const char *name; /* canonical name used in the config */
    /* Prepare; *state is passed to the other calls. A negative errno with
     * err set means "not available here" (the daemon logs it once and
     * exports dts_provider_up{provider}=0); -ENOTSUP marks a provider that
     * needs hardware this machine lacks. */
    int (*init)(const struct dts_provider_ctx *ctx, void **state,
                struct dpf_error *err);
    /* Put this period's samples into sink. 0 or -errno (counted). */
    int (*collect)(void *state, struct dts_sink *sink);
    /* Release everything. */
    void (*destroy)(void *state);
};

/* Built-in providers (one module each: dts/dts-prov-<name>.c). */
extern const struct dts_provider_ops dts_prov_sysfs_ops;
extern const struct dts_provider_ops dts_prov_ethtool_ops;
extern const struct dts_provider_ops dts_prov_tc_ops;
extern const struct dts_provider_ops dts_prov_ifconfig_ops;
extern const struct dts_provider_ops dts_prov_prom_aggr_ops;
extern const struct dts_provider_ops dts_prov_fluent_aggr_ops;
extern const struct dts_provider_ops dts_prov_nvsmi_ops;
extern const struct dts_provider_ops dts_prov_dcgm_ops;

/* The implementation of a canonical provider name, or NULL if DTS knows
 * the name but this build has no implementation (BlueField-only ones). */
const struct dts_provider_ops *dts_provider_find(const char *name);

#endif
