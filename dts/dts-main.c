/* dts: the DOCA Telemetry Service daemon (main only; see dts-daemon.h). */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>

#include "dts/dts-daemon.h"
#include "lib/base/daemon.h"

struct dts_main {
    struct dts_runtime rt;  /* flags */
    struct dts_daemon *dts; /* running daemon */
};

static int
dts_main_set_config_dir(void *arg, const char *v, struct dpf_error *err)
{
    ((struct dts_main *) arg)->rt.config_dir = v;
    return 0;
}

static int
dts_main_set_sysfs_root(void *arg, const char *v, struct dpf_error *err)
{
    ((struct dts_main *) arg)->rt.sysfs_root = v;
    return 0;
}

static int
dts_main_set_ipc_dir(void *arg, const char *v, struct dpf_error *err)
{
    ((struct dts_main *) arg)->rt.ipc_dir = v;
    return 0;
}

static int
dts_main_start(void *arg, struct daemon *d, struct dpf_error *err)
{
    struct dts_main *m = arg;
    m->rt.daemon = d;
    m->dts = dts_daemon_start(daemon_loop(d), &m->rt, err);
    if (!m->dts) {
        return -EINVAL;
    }
    daemon_set_ready(d, "config", true, NULL);
    return 0;
}

static void
dts_main_reload(void *arg)
{
    struct dts_main *m = arg;
    if (m->dts) {
        dts_daemon_reload(m->dts);
    }
}

static void
dts_main_stop(void *arg)
{
    struct dts_main *m = arg;
    dts_daemon_destroy(m->dts);
    m->dts = NULL;
}

int
main(int argc, char **argv)
{
    static const struct daemon_flag flags[] = {
        {"config-dir", "DIR",
         "configuration directory\n(default /opt/mellanox/doca/services/"
         "telemetry/config)",
         dts_main_set_config_dir},
        {"sysfs-root", "DIR", "read sysfs under DIR (default /sys)",
         dts_main_set_sysfs_root},
        {"ipc-dir", "DIR",
         "exporter-library socket directory\n(default: ipc_sockets next to "
         "the config dir)",
         dts_main_set_ipc_dir},
        {NULL, NULL, NULL, NULL},
    };
    struct dts_main m = {
        .rt = {.config_dir = "/opt/mellanox/doca/services/telemetry/config",
               .sysfs_root = "/sys"},
    };
    const struct daemon_spec spec = {
        .name = "dts",
        .summary = "DOCA Telemetry Service: collects counters from providers "
                   "and\nexports them (Prometheus /metrics, Fluent Forward, "
                   "NetFlow,\ndata files). Configuration: "
                   "<config-dir>/dts_config.ini\n(a default is written into "
                   "an empty directory).",
        .epilog = "Health: /healthz and /readyz on the Prometheus endpoint.",
        .flags = flags,
        .arg = &m,
        .start = dts_main_start,
        .reload = dts_main_reload,
        .stop = dts_main_stop,
    };
    /* Memory: one malloc arena instead of one per thread (each thread
     * that allocates would keep its own arena's pages resident; the
     * threads here allocate little and rarely at the same time), and a
     * fixed mmap threshold so a freed /metrics body (a few hundred KB)
     * goes back to the kernel instead of raising the threshold and
     * staying in the heap. */
    mallopt(M_ARENA_MAX, 1);
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    return daemon_main(&spec, argc, argv);
}
