/* dpulet: dpf's node agent (main only; see dpulet.h). */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpulet/dpulet-join.h"
#include "dpulet/dpulet.h"
#include "lib/base/daemon.h"
#include "lib/codecs/duration.h"

struct dpulet_main {
    struct dpulet_config cfg;
    const char *listen, *bootstrap;
    struct dpulet *d;
};

#define SET_STR(fn, field)                                         \
    static int fn(void *arg, const char *v, struct dpf_error *err) \
    {                                                              \
        (void) err;                                                \
        ((struct dpulet_main *) arg)->field = v;                   \
        return 0;                                                  \
    }
SET_STR(set_kubeconfig, cfg.kubeconfig)
SET_STR(set_bootstrap, bootstrap)
SET_STR(set_node_name, cfg.node_name)
SET_STR(set_node_ip, cfg.node_ip)
SET_STR(set_root_dir, cfg.root_dir)
SET_STR(set_sysfs_root, cfg.sysfs_root)
SET_STR(set_static, cfg.static_pod_path)
SET_STR(set_path, cfg.path)
SET_STR(set_labels, cfg.node_labels)
SET_STR(set_taints, cfg.taints)
SET_STR(set_listen, listen)

static int
set_duration(const char *flag, const char *v, int64_t *out,
             struct dpf_error *err)
{
    if (duration_parse(v, out) < 0 || *out < 1000 || *out > 3600000) {
        dpf_error_set(err, 400, "BadRequest",
                      "--%s: \"%s\" is not a duration between 1s and 1h "
                      "(for example 40s)",
                      flag, v);
        return -EINVAL;
    }
    return 0;
}

#define SET_DUR(fn, flag, field)                                               \
    static int fn(void *arg, const char *v, struct dpf_error *err)             \
    {                                                                          \
        return set_duration(flag, v, &((struct dpulet_main *) arg)->cfg.field, \
                            err);                                              \
    }
SET_DUR(set_lease, "lease-duration", lease_ms)
SET_DUR(set_status, "status-interval", status_ms)
SET_DUR(set_renew, "lease-renew-interval", lease_renew_ms)
SET_DUR(set_detect, "detect-interval", detect_ms)

static int
ignore_flag(void *arg, const char *v, struct dpf_error *err)
{
    (void) arg;
    (void) v;
    (void) err;
    return 0; /* taken by the kubelet API (dpulet-api.c) */
}

static int
main_start(void *arg, struct daemon *dm, struct dpf_error *err)
{
    struct dpulet_main *m = arg;
    if (m->bootstrap) {
        dpf_error_set(err, 400, "BadRequest",
                      "--bootstrap-kubeconfig is not supported yet: run "
                      "`dpulet join` first (TLS bootstrap lands with the "
                      "certificates work)");
        return -EINVAL;
    }
    m->cfg.api_port = 10250;
    if (m->listen) {
        const char *colon = strrchr(m->listen, ':');
        long port = colon ? strtol(colon + 1, NULL, 10) : 0;
        if (port < 1 || port > 65535) {
            dpf_error_set(err, 400, "BadRequest",
                          "--listen: \"%s\" is not ADDR:PORT", m->listen);
            return -EINVAL;
        }
        m->cfg.api_port = (int) port;
    }
    m->d = dpulet_start(daemon_loop(dm), &m->cfg, err);
    if (!m->d) {
        return -EINVAL;
    }
    /* The kubelet HTTPS API (logs, exec) starts here once dpulet-api.c is
     * merged: dpulet_get_hooks() gives it each container's log path, PID
     * and env. */
    daemon_set_ready(dm, "dpulet", true, NULL);
    return 0;
}

static void
main_stop(void *arg)
{
    struct dpulet_main *m = arg;
    dpulet_destroy(m->d);
    m->d = NULL;
}

int
main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "join")) {
#ifdef DPULET_HAVE_JOIN
        return dpulet_join_main(argc - 1, argv + 1);
#else
        fputs("dpulet join: this build has no bootstrap client "
              "(lib/kube/kube-bootstrap.c)\n",
              stderr);
        return 2;
#endif
    }
    /* two arenas are plenty for one loop thread and curl's resolver */
    mallopt(M_ARENA_MAX, 2);
    static const struct daemon_flag flags[] = {
        {"kubeconfig", "PATH",
         "the API server and credentials; without it dpulet runs static\n"
         "pods only (standalone)",
         set_kubeconfig},
        {"bootstrap-kubeconfig", "PATH",
         "bootstrap credentials (not yet: use `dpulet join`)", set_bootstrap},
        {"node-name", "NAME", "this node's name (required)", set_node_name},
        {"node-ip", "IP",
         "the Node's InternalIP (required); also the pods'\n"
         "podIP/hostIP (host network)",
         set_node_ip},
        {"root-dir", "DIR", "state, volumes and logs of the pods (required)",
         set_root_dir},
        {"sysfs-root", "DIR",
         "scan DIR/bus/pci/devices for BlueField DPUs\n"
         "(default /sys)",
         set_sysfs_root},
        {"static-pod-path", "DIR",
         "run the Pod manifests in DIR (rescanned "
         "every 5 s)",
         set_static},
        {"path", "DIRS",
         "colon list where container commands are looked up\n"
         "(default $PATH)",
         set_path},
        {"node-labels", "K=V,...", "labels for the Node", set_labels},
        {"register-with-taints", "K=V:EFFECT,...",
         "taints the Node is registered with", set_taints},
        {"listen", "ADDR:PORT",
         "kubelet API address (default NODE-IP:10250); its port is\n"
         "the Node's daemonEndpoints.kubeletEndpoint.Port",
         set_listen},
        {"tls-cert-file", "PATH", "kubelet API certificate", ignore_flag},
        {"tls-private-key-file", "PATH", "kubelet API key", ignore_flag},
        {"lease-duration", "DUR", "the node Lease's duration (default 40s)",
         set_lease},
        {"lease-renew-interval", "DUR",
         "renew the Lease this often (default "
         "10s)",
         set_renew},
        {"status-interval", "DUR",
         "update the Node status this often "
         "(default 10s)",
         set_status},
        {"detect-interval", "DUR",
         "rescan sysfs for DPUs this often "
         "(default 60s)",
         set_detect},
        {NULL, NULL, NULL, NULL},
    };
    static struct dpulet_main m;
    struct daemon_spec spec = {
        .name = "dpulet",
        .summary = "       dpulet join ENDPOINT --token ID.SECRET "
                   "--discovery-token-ca-cert-hash sha256:HEX\n"
                   "              --kubeconfig PATH [--node-name NAME]\n\n"
                   "dpf's node agent: registers the Node (with DPF's DPU "
                   "labels on a host),\nkeeps its Lease, and runs the pods "
                   "bound to it and the static pods\nas processes "
                   "(docs/dpulet.md).",
        .flags = flags,
        .arg = &m,
        .start = main_start,
        .stop = main_stop,
    };
    return daemon_main(&spec, argc, argv);
}
