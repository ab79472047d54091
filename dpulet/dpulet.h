/* dpulet: dpf's node agent (issue 10, first part). The core: everything
 * but main() and the kubelet HTTPS API (dpulet-api.c).
 *
 * One dpulet per node. Connected (a kubeconfig), it registers the Node
 * (or adopts an existing one), keeps its status and conditions fresh every
 * status interval, renews the Lease kube-node-lease/<node> every 10 s,
 * puts DPF's DPU detection labels on the Node (detect.h, rescanned every
 * 60 s) and runs the pods bound to the node (an informer on pods with
 * fieldSelector spec.nodeName=<node>) with the process runtime of
 * proc.h. Static pods come from --static-pod-path (rescanned every 5 s);
 * with a kubeconfig each gets a mirror pod <name>-<node>. Without a
 * kubeconfig dpulet runs static pods only.
 *
 * State lives under root_dir: pods/<ns>_<name>_<uid>/ holds a pod's
 * volumes, its logs (<container>/<restartCount>.log, CRI format) and
 * .state/<container>.{run,exit}: the shim and container PIDs with their
 * start times, and the exit record. At start dpulet adopts the containers
 * whose pod it still has to run, and kills (SIGKILL to the container's
 * process group) and removes those of pods it no longer has.
 *
 * Threads: everything runs on the loop thread given to dpulet_start();
 * API writes are blocking calls there (loopback or a near control plane;
 * a slow server delays the loop, never corrupts state). The hooks for the
 * kubelet API (struct dpulet_hooks) run on the loop thread too. */
#ifndef DPF_DPULET_H
#define DPF_DPULET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/base/error.h"

struct loop;
struct dpulet;

struct dpulet_config {
    const char *kubeconfig;      /* NULL = standalone (static pods only) */
    const char *node_name;       /* required */
    const char *node_ip;         /* InternalIP; required */
    const char *root_dir;        /* required */
    const char *sysfs_root;      /* NULL = /sys */
    const char *static_pod_path; /* NULL = none */
    const char *path;            /* command lookup; NULL = $PATH */
    const char *node_labels;     /* "k=v,k2=v2" or NULL */
    const char *taints;          /* "key=val:Effect,..." or NULL */
    int api_port;                /* daemonEndpoints.kubeletEndpoint.Port */
    int64_t lease_ms;            /* 0 = 40 s */
    int64_t lease_renew_ms;      /* 0 = 10 s */
    int64_t status_ms;           /* 0 = 10 s */
    int64_t detect_ms;           /* 0 = 60 s */
};

/* Check cfg and start on loop. NULL with err set when a flag is invalid
 * (err names it) or root_dir cannot be made. */
struct dpulet *dpulet_start(struct loop *loop, const struct dpulet_config *cfg,
                            struct dpf_error *err);
/* Stop watching and free. Containers keep running (a restarted dpulet
 * adopts them), as kubelet leaves its containers to the runtime. */
void dpulet_destroy(struct dpulet *d);

/* The hook table of the kubelet API (dpulet-api.c). Its operations are
 * called from the API's threads, concurrently: they read a snapshot that
 * the loop thread publishes after every tick (200 ms), under a lock, and
 * return copies the caller owns. Errors as kubelet's: -ENOENT (no such
 * pod on this node), -ESRCH (no such container in the pod), -ENODATA
 * (previous: no earlier run), -EAGAIN (exec: not running), err filled. An
 * empty container name means the pod's first container. */
struct dpulet_hooks {
    /* The CRI log file of the current run (or, with previous, the one
     * before); *path malloc'd; *running: that run is still going. */
    int (*container_log_path)(void *arg, const char *ns, const char *pod,
                              const char *container, bool previous, char **path,
                              bool *running, struct dpf_error *err);
    /* How to exec in the container: a process of it (its mount namespace
     * to join), its environment (malloc'd NULL-terminated array of
     * malloc'd "K=V") and working directory (malloc'd or NULL = /). */
    int (*container_exec)(void *arg, const char *ns, const char *pod,
                          const char *container, pid_t *pid, char ***envp,
                          char **cwd, struct dpf_error *err);
    /* The pods this node runs, with their status: a new JSON array. */
    struct json_t *(*list_pods)(void *arg);
    void *arg;
};

void dpulet_get_hooks(struct dpulet *d, struct dpulet_hooks *out);

/* Parse "k=v,k2=v2" into a JSON object / "key=val:Effect,..." into a
 * taints array. -EINVAL with err naming the bad entry. */
struct json_t;
int dpulet_parse_labels(const char *s, struct json_t **out,
                        struct dpf_error *err);
int dpulet_parse_taints(const char *s, struct json_t **out,
                        struct dpf_error *err);

#endif
