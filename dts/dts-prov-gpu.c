/* dts-prov-gpu: the GPU providers `nvidia-smi` and `dcgm` (host-only in
 * DOCA). Both read NVIDIA's management library, libnvidia-ml.so.1, which
 * is loaded with dlopen() at run time so dts has no build or run time
 * dependency on the driver: where the library is absent (every DPU, this
 * CI) init() fails with a clear "not available" reason and the daemon
 * exports dts_provider_up{provider}=0. $DTS_NVML_LIBRARY overrides the
 * library path (tests). `dcgm` additionally needs the DCGM host engine,
 * which we do not speak: it reports not available with that reason.
 *
 * Series (nvidia-smi): dts_gpu_temperature_celsius, dts_gpu_power_watts,
 * dts_gpu_utilization_ratio, dts_gpu_memory_utilization_ratio,
 * dts_gpu_memory_used_bytes, dts_gpu_memory_total_bytes
 * {gpu (index), uuid, name}. The NVML entry points used are part of its
 * stable public C API (nvmlInit_v2, nvmlDeviceGetCount_v2, ...). */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dts/dts-provider.h"
#include "lib/base/util.h"

#define GPU_NVML_LIB "libnvidia-ml.so.1"

typedef void *gpu_dev_t; /* nvmlDevice_t: an opaque handle */

struct gpu_util {
    unsigned gpu;    /* percent */
    unsigned memory; /* percent */
};

struct gpu_mem {
    unsigned long long total, free, used; /* bytes */
};

struct gpu_nvml {
    void *lib;
    int (*init)(void);
    int (*shutdown)(void);
    int (*count)(unsigned *);
    int (*handle)(unsigned, gpu_dev_t *);
    int (*name)(gpu_dev_t, char *, unsigned);
    int (*uuid)(gpu_dev_t, char *, unsigned);
    int (*temp)(gpu_dev_t, int, unsigned *);
    int (*power)(gpu_dev_t, unsigned *);
    int (*util)(gpu_dev_t, struct gpu_util *);
    int (*mem)(gpu_dev_t, struct gpu_mem *);
};

static int
gpu_open(struct gpu_nvml *n, struct dpf_error *err)
{
    const char *path = getenv("DTS_NVML_LIBRARY");
    if (!path || !*path) {
        path = GPU_NVML_LIB;
    }
    n->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!n->lib) {
        dpf_error_set(err, 404, "NotFound",
                      "not available: %s cannot be loaded (no NVIDIA GPU "
                      "driver on this machine)",
                      path);
        return -ENOENT;
    }
    static const char *const names[] = {
        "nvmlInit_v2",
        "nvmlShutdown",
        "nvmlDeviceGetCount_v2",
        "nvmlDeviceGetHandleByIndex_v2",
        "nvmlDeviceGetName",
        "nvmlDeviceGetUUID",
        "nvmlDeviceGetTemperature",
        "nvmlDeviceGetPowerUsage",
        "nvmlDeviceGetUtilizationRates",
        "nvmlDeviceGetMemoryInfo",
    };
    void **slots[] = {
        (void **) &n->init,   (void **) &n->shutdown, (void **) &n->count,
        (void **) &n->handle, (void **) &n->name,     (void **) &n->uuid,
        (void **) &n->temp,   (void **) &n->power,    (void **) &n->util,
        (void **) &n->mem,
    };
    for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
        *slots[i] = dlsym(n->lib, names[i]);
        if (!*slots[i]) {
            dpf_error_set(err, 404, "NotFound",
                          "not available: %s lacks %s (driver too old)", path,
                          names[i]);
            dlclose(n->lib);
            n->lib = NULL;
            return -ENOENT;
        }
    }
    int rc = n->init();
    if (rc != 0) {
        dpf_error_set(err, 503, "ServiceUnavailable",
                      "not available: nvmlInit failed (NVML error %d)", rc);
        dlclose(n->lib);
        n->lib = NULL;
        return -ENODEV;
    }
    return 0;
}

static int
gpu_smi_init(const struct dts_provider_ctx *ctx, void **state,
             struct dpf_error *err)
{
    struct gpu_nvml *n = xcalloc(1, sizeof *n);
    int rc = gpu_open(n, err);
    if (rc < 0) {
        free(n);
        return rc;
    }
    *state = n;
    return 0;
}

static int
gpu_smi_collect(void *state, struct dts_sink *sink)
{
    struct gpu_nvml *n = state;
    unsigned count = 0;
    if (n->count(&count) != 0) {
        return -EIO;
    }
    for (unsigned i = 0; i < count; i++) {
        gpu_dev_t dev;
        if (n->handle(i, &dev) != 0) {
            continue;
        }
        char name[96] = "", uuid[96] = "", idx[16];
        n->name(dev, name, sizeof name);
        n->uuid(dev, uuid, sizeof uuid);
        snprintf(idx, sizeof idx, "%u", i);
        const char *labels[] = {"gpu", idx, "uuid", uuid, "name", name, NULL};
        unsigned v;
        if (n->temp(dev, 0, &v) == 0) {
            dts_sink_add(sink, DTS_GAUGE, "dts_gpu_temperature_celsius",
                         "GPU core temperature.", labels, v);
        }
        if (n->power(dev, &v) == 0) {
            dts_sink_add(sink, DTS_GAUGE, "dts_gpu_power_watts",
                         "GPU power draw.", labels, v / 1000.0);
        }
        struct gpu_util u;
        if (n->util(dev, &u) == 0) {
            dts_sink_add(sink, DTS_GAUGE, "dts_gpu_utilization_ratio",
                         "Fraction of time a kernel ran on the GPU.", labels,
                         u.gpu / 100.0);
            dts_sink_add(sink, DTS_GAUGE, "dts_gpu_memory_utilization_ratio",
                         "Fraction of time GPU memory was read or written.",
                         labels, u.memory / 100.0);
        }
        struct gpu_mem m;
        if (n->mem(dev, &m) == 0) {
            dts_sink_add(sink, DTS_GAUGE, "dts_gpu_memory_used_bytes",
                         "GPU memory in use.", labels, (double) m.used);
            dts_sink_add(sink, DTS_GAUGE, "dts_gpu_memory_total_bytes",
                         "GPU memory installed.", labels, (double) m.total);
        }
    }
    return 0;
}

static void
gpu_smi_destroy(void *state)
{
    struct gpu_nvml *n = state;
    n->shutdown();
    dlclose(n->lib);
    free(n);
}

const struct dts_provider_ops dts_prov_nvsmi_ops = {
    .name = "nvidia-smi",
    .init = gpu_smi_init,
    .collect = gpu_smi_collect,
    .destroy = gpu_smi_destroy,
};

static int
gpu_dcgm_init(const struct dts_provider_ctx *ctx, void **state,
              struct dpf_error *err)
{
    struct gpu_nvml n;
    memset(&n, 0, sizeof n);
    int rc = gpu_open(&n, err);
    if (rc < 0) {
        return rc;
    }
    n.shutdown();
    dlclose(n.lib);
    dpf_error_set(err, 501, "NotImplemented",
                  "not available: dcgm needs the DCGM host engine; enable "
                  "the nvidia-smi provider for NVML counters");
    return -ENOTSUP;
}

static int
gpu_dcgm_collect(void *state, struct dts_sink *sink)
{
    return -ENOTSUP;
}

static void
gpu_dcgm_destroy(void *state)
{
}

const struct dts_provider_ops dts_prov_dcgm_ops = {
    .name = "dcgm",
    .init = gpu_dcgm_init,
    .collect = gpu_dcgm_collect,
    .destroy = gpu_dcgm_destroy,
};
