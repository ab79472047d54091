/* dpf-emu: an emulated fleet of hosts with BlueField DPUs. main, the
 * subcommands and their flags only; the fleet is emu-fleet.c. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dpf-emu/emu-fast.h"
#include "dpf-emu/emu-fleet.h"
#include "lib/base/daemon.h"
#include "lib/base/loop.h"
#include "lib/base/util.h"
#include "lib/codecs/duration.h"

struct emu_main {
    struct emu_fleet_config cfg;
    struct emu_fleet *fleet;
    char *dpulet_found;
};

static int
parse_uint(const char *flag, const char *v, unsigned *out,
           struct dpf_error *err)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < 0 || n > 100000) {
        dpf_error_set(err, 400, "BadRequest",
                      "%s \"%s\": expected a whole number", flag, v);
        return -EINVAL;
    }
    *out = (unsigned) n;
    return 0;
}

static int
parse_ms(const char *flag, const char *v, int64_t *ms, struct dpf_error *err)
{
    if (duration_parse(v, ms) < 0 || *ms < 0) {
        dpf_error_set(err, 400, "BadRequest",
                      "%s \"%s\": expected a duration such as 30s, 500ms "
                      "or 0",
                      flag, v);
        return -EINVAL;
    }
    return 0;
}

#define CFG(arg) (&((struct emu_main *) (arg))->cfg)

static int
set_hosts(void *a, const char *v, struct dpf_error *e)
{
    return parse_uint("--hosts", v, &CFG(a)->hosts, e);
}

static int
set_dpus(void *a, const char *v, struct dpf_error *e)
{
    return parse_uint("--dpus-per-host", v, &CFG(a)->dpus_per_host, e);
}

static int
set_vfs(void *a, const char *v, struct dpf_error *e)
{
    return parse_uint("--vfs", v, &CFG(a)->vfs, e);
}

static int
set_state_dir(void *a, const char *v, struct dpf_error *e)
{
    (void) e;
    CFG(a)->state_dir = v;
    return 0;
}

static int
set_fleet(void *a, const char *v, struct dpf_error *e)
{
    (void) e;
    CFG(a)->fleet = v;
    return 0;
}

static int
set_server(void *a, const char *v, struct dpf_error *e)
{
    if (!str_has_prefix(v, "https://") && !str_has_prefix(v, "http://")) {
        dpf_error_set(e, 400, "BadRequest",
                      "--server \"%s\": expected a URL such as "
                      "https://10.251.0.1:6443",
                      v);
        return -EINVAL;
    }
    CFG(a)->server_url = v;
    return 0;
}

static int
set_kubeconfig(void *a, const char *v, struct dpf_error *e)
{
    (void) e;
    CFG(a)->kubeconfig = v;
    return 0;
}

static int
set_bootstrap(void *a, const char *v, struct dpf_error *e)
{
    (void) e;
    CFG(a)->bootstrap_kubeconfig = v;
    return 0;
}

static int
set_dpulet(void *a, const char *v, struct dpf_error *e)
{
    (void) e;
    CFG(a)->dpulet = v;
    return 0;
}

static int
set_cidr(void *a, const char *v, struct dpf_error *e)
{
    (void) e;
    CFG(a)->mgmt_cidr = v;
    return 0;
}

static int
set_install(void *a, const char *v, struct dpf_error *e)
{
    return parse_ms("--install-time", v, &CFG(a)->install_ms, e);
}

static int
set_reboot(void *a, const char *v, struct dpf_error *e)
{
    return parse_ms("--reboot-time", v, &CFG(a)->reboot_ms, e);
}

static int
set_power_off_delay(void *a, const char *v, struct dpf_error *e)
{
    return parse_ms("--power-off-delay", v, &CFG(a)->power_off_delay_ms, e);
}

static int
set_reboot_hosts(void *a, const char *v, struct dpf_error *e)
{
    (void) v;
    (void) e;
    CFG(a)->reboot_hosts = true;
    return 0;
}

static const struct daemon_flag up_flags[] = {
    {"state-dir", "DIR",
     "where the fleet keeps its files (sysfs trees, rshim devices, DPU\n"
     "disks, logs, the record `down` reads); required",
     set_state_dir},
    {"hosts", "N", "emulated hosts (default 2)", set_hosts},
    {"dpus-per-host", "M", "DPUs per host, 1..8 (default 1)", set_dpus},
    {"vfs", "K", "VF netdev pairs per DPU, 0..16 (default 2)", set_vfs},
    {"fleet", "NAME",
     "name part of every namespace and link, [a-z0-9]{1,4} (default e):\n"
     "netns dpfemu-NAME-h<i>[-d<j>], bridge dpfemuNAME",
     set_fleet},
    {"mgmt-cidr", "NET",
     "the management network (default 10.251.0.0/16): the root bridge\n"
     "has its first address, host i .<i>.1, its DPU j .<i>.<10+j>",
     set_cidr},
    {"server", "URL",
     "the API server as the namespaces reach it, e.g.\n"
     "https://10.251.0.1:6443 (dpf-server bound to 0.0.0.0 or the bridge\n"
     "address); replaces the kubeconfig's server for the host dpulets",
     set_server},
    {"kubeconfig", "FILE",
     "the host dpulets' kubeconfig; dpf-emu also uses it to annotate the\n"
     "host Nodes with their rshim and sysfs paths",
     set_kubeconfig},
    {"bootstrap-kubeconfig", "FILE",
     "instead of --kubeconfig: a bootstrap-token kubeconfig the host\n"
     "dpulets join with (no Node annotations then)",
     set_bootstrap},
    {"dpulet", "PATH",
     "the dpulet binary (default: next to dpf-emu, else in PATH)", set_dpulet},
    {"install-time", "DUR",
     "emulated BFB install time after the stream (default 5s)", set_install},
    {"reboot-time", "DUR",
     "emulated DPU reboot time, and how long a host is off when its\n"
     "ipmitool reboots it (default 3s)",
     set_reboot},
    {"reboot-hosts", NULL,
     "do not annotate the host Nodes reboot-command skip: the DPU\n"
     "controller reboots a host with `ipmitool chassis power cycle|reset`\n"
     "in its DMS pod, and the host's dpulet and pods die and start again\n"
     "in a fresh time namespace (/proc/uptime from 0). Every host has\n"
     "that ipmitool, first in its pods' PATH, either way",
     set_reboot_hosts},
    {"power-off-delay", "DUR",
     "how long after `ipmitool chassis power cycle|reset` a host's power\n"
     "goes (default 500ms: the answer gets back first)",
     set_power_off_delay},
    {NULL, NULL, NULL, NULL},
};

static void
on_sigchld(void *arg, int signo)
{
    (void) signo;
    struct emu_main *m = arg;
    if (m->fleet) {
        emu_fleet_reap(m->fleet);
    }
}

static int
up_start(void *arg, struct daemon *d, struct dpf_error *err)
{
    struct emu_main *m = arg;
    if (!m->cfg.state_dir) {
        dpf_error_set(err, 400, "BadRequest", "--state-dir is required");
        return -EINVAL;
    }
    loop_signal(daemon_loop(d), SIGCHLD, on_sigchld, m);
    m->fleet = emu_fleet_up(daemon_loop(d), &m->cfg, err);
    if (!m->fleet) {
        return -EIO;
    }
    daemon_set_ready(d, "fleet", true, NULL);
    return 0;
}

static void
up_stop(void *arg)
{
    struct emu_main *m = arg;
    emu_fleet_destroy(m->fleet);
    m->fleet = NULL;
}

/* Program name next to our own binary (or in its sibling build folder),
 * else the first in PATH. */
static char *
find_program(const char *name)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = '\0';
            /* the build tree keeps programs in sibling folders */
            for (size_t k = 0; k < 2; k++) {
                char *p = k ? xasprintf("%s/../%s/%s", self, name, name)
                            : xasprintf("%s/%s", self, name);
                if (access(p, X_OK) == 0) {
                    return p;
                }
                free(p);
            }
        }
    }
    const char *path = getenv("PATH");
    char *copy = xstrdup(path ? path : "/usr/bin:/bin");
    char *save = NULL;
    for (char *d = strtok_r(copy, ":", &save); d;
         d = strtok_r(NULL, ":", &save)) {
        char *p = xasprintf("%s/%s", d, name);
        if (access(p, X_OK) == 0) {
            free(copy);
            return p;
        }
        free(p);
    }
    free(copy);
    return NULL;
}

static int
cmd_up(int argc, char **argv)
{
    struct emu_main m = {
        .cfg = {.hosts = 2,
                .dpus_per_host = 1,
                .vfs = 2,
                .fleet = "e",
                .mgmt_cidr = "10.251.0.0/16",
                .install_ms = 5000,
                .reboot_ms = 3000,
                .power_off_delay_ms = 500},
    };
    const struct daemon_spec spec = {
        .name = "dpf-emu up",
        .summary =
            "Build an emulated fleet of hosts with BlueField DPUs from "
            "network\nnamespaces and run it until SIGTERM/SIGINT (then "
            "take it down).\nEach host runs a dpulet and one emulated rshim "
            "device per DPU; a BFB\nand bf.cfg written to a device's boot "
            "file install the DPU, which then\njoins its cluster with "
            "dpulet join.",
        .epilog = "Example:\n"
                  "  dpf-emu up --state-dir /var/lib/dpf-emu --hosts 2 "
                  "--dpus-per-host 1 \\\n"
                  "      --kubeconfig admin.kubeconfig --server "
                  "https://10.251.0.1:6443\n"
                  "  dpf-emu status --state-dir /var/lib/dpf-emu\n"
                  "  dpf-emu down --state-dir /var/lib/dpf-emu\n",
        .flags = up_flags,
        .arg = &m,
        .start = up_start,
        .stop = up_stop,
    };
    /* the default dpulet is looked up only when --dpulet is absent */
    bool given = false;
    for (int k = 1; k < argc; k++) {
        given |= str_has_prefix(argv[k], "--dpulet");
    }
    if (!given) {
        m.dpulet_found = find_program("dpulet");
        m.cfg.dpulet = m.dpulet_found;
    }
    /* the hosts' ipmitool runs us */
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        m.cfg.self = self;
    }
    int rc = daemon_main(&spec, argc, argv);
    free(m.dpulet_found);
    return rc;
}

/* --- fast mode --------------------------------------------------------- */

struct fast_main {
    struct emu_fast_config cfg;
    struct emu_fast *fast;
    char *dmsd_found;
};

#define FCFG(arg) (&((struct fast_main *) (arg))->cfg)

static int
fset_state_dir(void *a, const char *v, struct dpf_error *e)
{
    (void) e;
    FCFG(a)->state_dir = v;
    return 0;
}

static int
fset_hosts(void *a, const char *v, struct dpf_error *e)
{
    return parse_uint("--hosts", v, &FCFG(a)->hosts, e);
}

static int
fset_first(void *a, const char *v, struct dpf_error *e)
{
    return parse_uint("--first-host", v, &FCFG(a)->first_host, e);
}

static int
fset_dpus(void *a, const char *v, struct dpf_error *e)
{
    return parse_uint("--dpus-per-host", v, &FCFG(a)->dpus_per_host, e);
}

static int
fset_fleet(void *a, const char *v, struct dpf_error *e)
{
    (void) e;
    FCFG(a)->fleet = v;
    return 0;
}

static int
fset_kubeconfig(void *a, const char *v, struct dpf_error *e)
{
    (void) e;
    FCFG(a)->kubeconfig = v;
    return 0;
}

static int
fset_dmsd(void *a, const char *v, struct dpf_error *e)
{
    (void) e;
    FCFG(a)->dmsd = v;
    return 0;
}

static int
fset_per_dmsd(void *a, const char *v, struct dpf_error *e)
{
    int rc = parse_uint("--targets-per-dmsd", v, &FCFG(a)->targets_per_dmsd, e);
    if (rc == 0 && FCFG(a)->targets_per_dmsd == 0) {
        dpf_error_set(e, 400, "BadRequest", "--targets-per-dmsd must be >= 1");
        rc = -EINVAL;
    }
    return rc;
}

static int
fset_workers(void *a, const char *v, struct dpf_error *e)
{
    int rc = parse_uint("--workers", v, &FCFG(a)->workers, e);
    if (rc == 0 && (FCFG(a)->workers == 0 || FCFG(a)->workers > 256)) {
        dpf_error_set(e, 400, "BadRequest", "--workers takes 1 to 256");
        rc = -EINVAL;
    }
    return rc;
}

static int
fset_install(void *a, const char *v, struct dpf_error *e)
{
    return parse_ms("--install-time", v, &FCFG(a)->install_ms, e);
}

static int
fset_reboot(void *a, const char *v, struct dpf_error *e)
{
    return parse_ms("--reboot-time", v, &FCFG(a)->reboot_ms, e);
}

static int
fset_lease(void *a, const char *v, struct dpf_error *e)
{
    return parse_ms("--lease-renew", v, &FCFG(a)->lease_renew_ms, e);
}

static const struct daemon_flag fast_flags[] = {
    {"state-dir", "DIR",
     "where the devices, the DPUs' disks and kubeconfigs, the dmsd logs\n"
     "and status.json go (required)",
     fset_state_dir},
    {"hosts", "N", "emulated hosts, 1..60000 (default 2)", fset_hosts},
    {"first-host", "K",
     "number the hosts from K (default 0): emulators sharing one control\n"
     "plane take disjoint ranges (names and loopback addresses); each\n"
     "needs five open files per DPU",
     fset_first},
    {"dpus-per-host", "M", "DPUs per host, 1..8 (default 1)", fset_dpus},
    {"fleet", "NAME", "host Nodes are dpfemu-NAME-h<i> (default f)",
     fset_fleet},
    {"kubeconfig", "FILE",
     "the control plane, with rights on Nodes, Leases, Pods and Secrets\n"
     "(required)",
     fset_kubeconfig},
    {"dmsd", "PATH", "the dmsd binary (default: next to dpf-emu, else PATH)",
     fset_dmsd},
    {"targets-per-dmsd", "N",
     "DMS endpoints served by one dmsd process (default 1000)", fset_per_dmsd},
    {"workers", "N",
     "threads for API calls, joins and dmsd requests (default 8)",
     fset_workers},
    {"install-time", "DUR", "emulated BFB install time (default 0)",
     fset_install},
    {"reboot-time", "DUR", "emulated DPU reboot time (default 0)", fset_reboot},
    {"lease-renew", "DUR",
     "renew every host's and DPU's Lease this often (default 10s, as\n"
     "kubelet; 0 = never)",
     fset_lease},
    {NULL, NULL, NULL, NULL},
};

static int
fast_start(void *arg, struct daemon *d, struct dpf_error *err)
{
    struct fast_main *m = arg;
    m->fast = emu_fast_up(daemon_loop(d), &m->cfg, err);
    if (!m->fast) {
        return -EIO;
    }
    daemon_set_ready(d, "fleet", true, NULL);
    return 0;
}

static void
fast_stop(void *arg)
{
    struct fast_main *m = arg;
    emu_fast_destroy(m->fast);
    m->fast = NULL;
}

static int
cmd_fast(int argc, char **argv)
{
    struct fast_main m = {
        .cfg = {.hosts = 2,
                .dpus_per_host = 1,
                .fleet = "f",
                .targets_per_dmsd = 1000,
                .workers = 8,
                .lease_renew_ms = 10000},
    };
    const struct daemon_spec spec = {
        .name = "dpf-emu fast",
        .summary =
            "Emulate many hosts with BlueField DPUs in this one process, "
            "for scale\ntests: host Nodes registered here, DMS pods served "
            "by a pool of dmsd\nprocesses (gNOI over mutual TLS, as on a "
            "host), one emulated rshim\ndevice per DPU, and each installed "
            "DPU joining its DPU cluster with the\nbf.cfg's token and "
            "registering its Node. No namespaces, no root needed\n"
            "(but the open-file limit must allow two files per DPU).",
        .epilog = "Example:\n"
                  "  dpf-emu fast --state-dir /var/tmp/fleet --hosts 500 "
                  "--dpus-per-host 2 \\\n"
                  "      --kubeconfig admin.kubeconfig\n",
        .flags = fast_flags,
        .arg = &m,
        .start = fast_start,
        .stop = fast_stop,
    };
    bool given = false;
    for (int k = 1; k < argc; k++) {
        given |= str_has_prefix(argv[k], "--dmsd");
    }
    if (!given) {
        m.dmsd_found = find_program("dmsd");
        m.cfg.dmsd = m.dmsd_found;
    }
    int rc = daemon_main(&spec, argc, argv);
    free(m.dmsd_found);
    return rc;
}

static int
parse_state_dir(const char *cmd, int argc, char **argv, const char **dir)
{
    static const struct option opts[] = {
        {"state-dir", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (c == 's') {
            *dir = optarg;
        } else if (c == 'h') {
            printf("Usage: dpf-emu %s --state-dir DIR\n\n%s\n", cmd,
                   !strcmp(cmd, "down")
                       ? "Remove every namespace, link and process the "
                         "fleet of DIR made\n(from DIR/fleet.record; also "
                         "after a crash of dpf-emu up).\nIdempotent."
                       : "Show the fleet of DIR: hosts, DPUs, their states "
                         "and agents.");
            return 1;
        } else {
            return -1;
        }
    }
    if (optind < argc || !*dir) {
        fprintf(stderr, "dpf-emu %s: %s\n", cmd,
                optind < argc ? "unexpected argument"
                              : "--state-dir is "
                                "required");
        return -1;
    }
    return 0;
}

/* dpf-emu ipmitool --state-dir DIR --host N chassis power cycle|reset|status
 */
static int
cmd_ipmitool(int argc, char **argv)
{
    const char *dir = NULL;
    unsigned host = 0;
    int k = 1;
    for (; k + 1 < argc && str_has_prefix(argv[k], "--"); k += 2) {
        if (!strcmp(argv[k], "--state-dir")) {
            dir = argv[k + 1];
        } else if (!strcmp(argv[k], "--host")) {
            host = (unsigned) strtoul(argv[k + 1], NULL, 10);
        } else {
            break;
        }
    }
    if (!dir || !host) {
        fprintf(stderr,
                "Usage: dpf-emu ipmitool --state-dir DIR --host N chassis "
                "power cycle|reset|status\n\nThe BMC of host N of the "
                "running fleet of DIR: cycle and reset take the\nhost's "
                "dpulet and pods down and start them again after "
                "--reboot-time,\nwith /proc/uptime from 0. Each host runs "
                "this through the ipmitool\nfirst in its pods' PATH.\n");
        return 1;
    }
    return emu_ipmitool(dir, host, argc - k, argv + k);
}

static void
usage(FILE *out)
{
    fprintf(out,
            "Usage: dpf-emu COMMAND [OPTIONS]\n\n"
            "An emulated fleet of hosts with BlueField DPUs (network "
            "namespaces,\nemulated rshim devices, dpulet agents) for DPF's "
            "provisioning.\n\n"
            "Commands:\n"
            "  up       build the fleet and run it (dpf-emu up --help)\n"
            "  fast     many DPUs in one process, for scale tests\n"
            "           (dpf-emu fast --help)\n"
            "  down     remove everything a fleet made\n"
            "  ipmitool a host's BMC: chassis power cycle|reset|status\n"
            "  status   show a fleet\n");
}

int
main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "up")) {
        return cmd_up(argc - 1, argv + 1);
    }
    if (!strcmp(cmd, "fast")) {
        return cmd_fast(argc - 1, argv + 1);
    }
    if (!strcmp(cmd, "ipmitool")) {
        return cmd_ipmitool(argc - 1, argv + 1);
    }
    if (!strcmp(cmd, "down") || !strcmp(cmd, "status")) {
        const char *dir = NULL;
        int rc = parse_state_dir(cmd, argc - 1, argv + 1, &dir);
        if (rc) {
            return rc > 0 ? 0 : 2;
        }
        struct dpf_error err = {0};
        if (!strcmp(cmd, "down")) {
            if (geteuid() != 0) {
                fprintf(stderr, "dpf-emu down: must run as root (it deletes "
                                "network namespaces)\n");
                return 1;
            }
            rc = emu_fleet_down(dir, stdout, &err);
        } else {
            rc = emu_fleet_status(dir, stdout, &err);
        }
        if (rc < 0) {
            fprintf(stderr, "dpf-emu %s: %s\n", cmd, err.message);
            return 1;
        }
        return 0;
    }
    fprintf(stderr, "dpf-emu: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
}
