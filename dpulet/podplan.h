/* podplan: a Pod object -> the run plan dpulet's process runtime follows.
 *
 * A pod spec is input from the API (or from a static manifest on disk), so
 * this is the one place that reads it: every field dpulet uses is checked
 * here, sizes are bounded (DPULET_PLAN_MAX_*), and an error names the pod
 * and the field ("pod ns/name: spec.containers[1].command: ...") so the
 * message can go into the pod's status or the log as it is.
 *
 * What a plan holds: the containers (init containers first, in order) with
 * their argv (command + args, not yet looked up in --path), env (plain
 * values, or a fieldRef path resolved when the container starts),
 * workingDir, volume mounts and probes; the volumes; restartPolicy,
 * hostNetwork and the termination grace period. Fields dpulet does not
 * implement and that change what a container sees (a non-hostNetwork pod
 * is allowed and runs in the node's network namespace all the same; see
 * docs/dpulet.md) are refused rather than ignored: env valueFrom other
 * than fieldRef, volume kinds other than secret/configMap/hostPath/
 * emptyDir, subPath, lifecycle hooks.
 *
 * Ownership: the plan owns every string (copied from the pod). Threads:
 * pure functions, any thread. */
#ifndef DPF_DPULET_PODPLAN_H
#define DPF_DPULET_PODPLAN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/error.h"

#define DPULET_PLAN_MAX_CONTAINERS 32 /* init + regular */
#define DPULET_PLAN_MAX_ARGS 256
#define DPULET_PLAN_MAX_ENV 256
#define DPULET_PLAN_MAX_VOLUMES 64
#define DPULET_PLAN_MAX_MOUNTS 64
#define DPULET_PLAN_MAX_STRING 4096 /* one argument, value or path */
#define DPULET_PLAN_MAX_GRACE_S 3600

enum dpulet_restart {
    DPULET_RESTART_ALWAYS = 0,
    DPULET_RESTART_ON_FAILURE,
    DPULET_RESTART_NEVER,
};

enum dpulet_volume_kind {
    DPULET_VOL_EMPTY_DIR = 0,
    DPULET_VOL_HOST_PATH,
    DPULET_VOL_SECRET,
    DPULET_VOL_CONFIG_MAP,
};

struct dpulet_volume {
    char *name;
    enum dpulet_volume_kind kind;
    char *source;  /* hostPath path, secret or configMap name; NULL */
    bool optional; /* secret / configMap may be missing */
};

struct dpulet_mount {
    char *volume; /* a name in plan->volumes (checked) */
    char *path;   /* absolute mountPath */
    bool read_only;
};

struct dpulet_env {
    char *name;
    char *value;      /* plain value, or NULL with field set */
    char *field_path; /* valueFrom.fieldRef.fieldPath, or NULL */
};

enum dpulet_probe_kind {
    DPULET_PROBE_NONE = 0,
    DPULET_PROBE_EXEC,
    DPULET_PROBE_HTTP,
    DPULET_PROBE_TCP,
};

struct dpulet_probe {
    enum dpulet_probe_kind kind;
    char **argv; /* exec: NULL-terminated */
    char *host;  /* http/tcp: NULL = the pod IP */
    int port;    /* http/tcp (named ports resolved from the container) */
    char *path;  /* http: request path ("/" by default) */
    int initial_delay_s, period_s, timeout_s;
    int success_threshold, failure_threshold;
};

struct dpulet_container {
    char *name;
    char *image; /* recorded, never pulled */
    bool init;   /* an init container */
    char **argv; /* command + args, NULL-terminated, argv[0] non-empty */
    size_t n_env;
    struct dpulet_env *env;
    char *working_dir; /* NULL = / */
    size_t n_mounts;
    struct dpulet_mount *mounts;
    struct dpulet_probe liveness, readiness, startup;
};

struct dpulet_plan {
    char *ns, *name, *uid;
    enum dpulet_restart restart;
    bool host_network;
    int64_t grace_s; /* terminationGracePeriodSeconds (default 30) */
    size_t n_containers, n_init; /* containers[0..n_init) are init ones */
    struct dpulet_container *containers;
    size_t n_volumes;
    struct dpulet_volume *volumes;
};

/* Build the plan for pod (a v1 Pod object). 0, or -EINVAL with err's
 * message naming the pod and the field (code 422, reason "Invalid"). */
int dpulet_plan_from_pod(const json_t *pod, struct dpulet_plan **out,
                         struct dpf_error *err);
void dpulet_plan_free(struct dpulet_plan *p);
/* The container called name, or NULL. */
const struct dpulet_container *
dpulet_plan_container(const struct dpulet_plan *p, const char *name);
/* A restart policy's name as the API writes it. */
const char *dpulet_restart_name(enum dpulet_restart r);

#endif
