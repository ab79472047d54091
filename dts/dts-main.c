/* dts: the DOCA Telemetry Service daemon (main only; see dts-daemon.h). */
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dts/dts-daemon.h"
#include "lib/base/log.h"
#include "lib/base/loop.h"

LOG_MODULE(dts);

static void
usage(FILE *f)
{
    fprintf(f, "Usage: dts [OPTIONS]\n"
               "DOCA Telemetry Service: collects counters from providers and\n"
               "exports them (Prometheus /metrics, Fluent Forward, NetFlow,\n"
               "data files). Configuration: <config-dir>/dts_config.ini\n"
               "(a default is written into an empty directory).\n"
               "\n"
               "  --config-dir DIR   configuration directory\n"
               "                     (default /opt/mellanox/doca/services/"
               "telemetry/config)\n"
               "  --sysfs-root DIR   read sysfs under DIR (default /sys)\n"
               "  --ipc-dir DIR      exporter-library socket directory\n"
               "                     (default: ipc_sockets next to the config "
               "dir)\n"
               "  --log-level LEVEL  error, warn, info (default) or debug\n"
               "  --log-file PATH    log to PATH instead of stderr\n"
               "  --help             show this help\n"
               "  --version          show the version\n"
               "\n"
               "Signals: SIGTERM/SIGINT stop cleanly, SIGHUP reloads the "
               "configuration.\n");
}

static void
on_stop(void *arg, int signo)
{
    log_info("stopping", "signal=%d", signo);
    loop_stop(arg);
}

static void
on_hup(void *arg, int signo)
{
    struct dts_daemon **d = arg;
    if (*d) {
        log_info("reloading", "signal=%d", signo);
        dts_daemon_reload(*d);
    }
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config-dir", required_argument, NULL, 'c'},
        {"sysfs-root", required_argument, NULL, 's'},
        {"ipc-dir", required_argument, NULL, 'i'},
        {"log-level", required_argument, NULL, 'l'},
        {"log-file", required_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    struct dts_runtime rt = {
        .config_dir = "/opt/mellanox/doca/services/telemetry/config",
        .sysfs_root = "/sys",
    };
    int c;
    while ((c = getopt_long(argc, argv, "c:s:i:l:f:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            rt.config_dir = optarg;
            break;
        case 's':
            rt.sysfs_root = optarg;
            break;
        case 'i':
            rt.ipc_dir = optarg;
            break;
        case 'l':
            if (log_set_level_name(optarg) < 0) {
                fprintf(stderr, "dts: --log-level: unknown level \"%s\"\n",
                        optarg);
                return 2;
            }
            break;
        case 'f':
            if (log_set_file(optarg) < 0) {
                fprintf(stderr, "dts: --log-file: cannot open %s\n", optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("dts %s\n", DPF_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "dts: unexpected argument \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    /* Memory: one malloc arena instead of one per thread (each thread
     * that allocates would keep its own arena's pages resident; the
     * threads here allocate little and rarely at the same time), and a
     * fixed mmap threshold so a freed /metrics body (a few hundred KB)
     * goes back to the kernel instead of raising the threshold and
     * staying in the heap. */
    mallopt(M_ARENA_MAX, 1);
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    struct loop *loop = loop_create();
    if (!loop) {
        fprintf(stderr, "dts: cannot create the event loop\n");
        return 1;
    }
    /* Before any thread exists, so all threads inherit the blocked mask. */
    loop_signal(loop, SIGTERM, on_stop, loop);
    loop_signal(loop, SIGINT, on_stop, loop);
    struct dts_daemon *d = NULL;
    loop_signal(loop, SIGHUP, on_hup, &d);
    signal(SIGPIPE, SIG_IGN);
    struct dpf_error err;
    dpf_error_clear(&err);
    d = dts_daemon_start(loop, &rt, &err);
    if (!d) {
        log_error("cannot start", "error=\"%s\"", err.message);
        loop_destroy(loop);
        return 1;
    }
    log_info("dts started", "version=%s config_dir=%s", DPF_VERSION,
             rt.config_dir);
    int rc = loop_run(loop);
    dts_daemon_destroy(d);
    loop_destroy(loop);
    log_info("dts stopped", "rc=%d", rc);
    return rc < 0 ? 1 : 0;
}
