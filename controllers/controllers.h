/* controllers: the project's controllers and the runner that starts them,
 * shared by dpf-controller-manager (against any API server, from a
 * kubeconfig) and dpf-server (in-process, over a loopback connection to
 * its own API with its admin credentials: the same code path).
 *
 * Registry: each controller has a name ("bfb"); --controllers takes a
 * comma list of names, "all" (every controller meant for production) or
 * "none". "witness" is a test controller (tests/system/
 * test_controller_manager.py): it is never part of "all" and runs only
 * when a witness ConfigMap is configured.
 *
 * Runner: loads the kubeconfig, creates a lib/kube controller manager,
 * adds the selected controllers, and on a thread of its own waits for the
 * caches and then, with leader election, for the Lease
 * (lib/kube/leader.h), before it starts the workers. Stopping is a clean
 * hand-over: workers finish their reconcile, downloads are cancelled
 * (their partial files stay for the next leader), the Lease is released,
 * then the informers stop. Everything from the manager to the elector is
 * one *term*; a lost Lease ends the term, and with recampaign the runner
 * starts a new one (see struct ctrl_runner_config).
 *
 * Threads: ctrl_runner_start/_stop from one thread (the program's main
 * thread); _ready, _leading and _metrics from any thread.
 * Ownership: the config's strings are copied. */
#ifndef DPF_CONTROLLERS_H
#define DPF_CONTROLLERS_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/base/error.h"
#include "lib/base/util.h"

/* Controller selection bits. */
#define CTRL_BFB 0x1u
#define CTRL_WITNESS 0x2u
#define CTRL_DPUCLUSTER 0x4u
#define CTRL_DPUSET 0x8u
#define CTRL_DPU 0x10u
/* what "all" means */
#define CTRL_ALL (CTRL_BFB | CTRL_DPUCLUSTER | CTRL_DPUSET | CTRL_DPU)

/* The names and their help, for --help. */
#define CTRL_NAMES_HELP                                                \
    "bfb (BFB downloads), dpucluster (DPU clusters), dpuset (DPUs of " \
    "DPUSets), dpu (DPU provisioning)"

/* Parse a --controllers value into a mask of CTRL_* bits. 0 or -EINVAL
 * with err naming the unknown controller. */
int ctrl_parse_list(const char *list, unsigned *mask, struct dpf_error *err);

struct ctrl_runner_config {
    const char *kubeconfig; /* path (NULL: $KUBECONFIG, ~/.kube/config) */
    const char *context;    /* NULL = current-context */
    /* Reach the server on this local Unix socket (plain HTTP, the server
     * names the peer by its credentials) instead of the kubeconfig's
     * address; the kubeconfig still names the server. NULL = as the
     * kubeconfig says. dpf-server sets it for its own controllers. */
    const char *unix_socket;
    unsigned controllers; /* CTRL_* mask */
    const char *bfb_dir;  /* BFB content cache (required with CTRL_BFB) */
    const char *witness;  /* "namespace/name" ConfigMap (CTRL_WITNESS) */
    int max_installs;     /* DPU installs at once (CTRL_DPU); 0 = 16 */
    /* CTRL_DPUCLUSTER: where embedded DPU clusters keep their data
     * (required), the address DPUs reach them on (NULL: the primary
     * address, see ctrl_primary_address()), the dpf-server program (NULL:
     * next to our own executable). */
    const char *dpucluster_dir;
    const char *dpucluster_address;
    const char *dpf_server_binary;
    int64_t witness_period_ms; /* witness write period; 0 = 500 */
    bool leader_elect;
    const char *lease_namespace; /* default dpf-operator-system */
    const char *lease_name;      /* default dpf-controller-manager */
    const char *identity;        /* default <hostname>_<pid> */
    int64_t lease_ms, renew_deadline_ms, retry_ms; /* 0 = defaults */
    const char *component; /* events' source ("dpf-controller-manager") */
    /* Leadership lost: the workers were stopped and the whole term (the
     * manager, its informers and controllers, the elector) torn down.
     * With recampaign, the runner then builds a new term from this
     * configuration and campaigns again (dpf-server: no stuck state after
     * a network blip); without it, on_lost runs (on the runner thread;
     * it must not call ctrl_runner_stop) and the program should exit so a
     * supervisor restarts it, as controller-runtime managers do. */
    bool recampaign;
    void (*on_lost)(void *arg);
    void *arg;
};

struct ctrl_runner;

/* Start (returns at once; the runner's thread waits for caches and
 * Lease). NULL with err set when the kubeconfig cannot be loaded or the
 * configuration is inconsistent. */
struct ctrl_runner *ctrl_runner_start(const struct ctrl_runner_config *cfg,
                                      struct dpf_error *err);
/* Caches synced (the controllers can work once leading). */
bool ctrl_runner_ready(struct ctrl_runner *r);
/* Workers running (leader, or no leader election). */
bool ctrl_runner_leading(struct ctrl_runner *r);
/* Terms of office started: 1, plus one per campaign after a lost Lease. */
unsigned ctrl_runner_terms(struct ctrl_runner *r);
/* Metrics in Prometheus text: the manager's (lib/kube/controller.h),
 * leader_election_master_status and the controllers' own. */
void ctrl_runner_metrics(struct ctrl_runner *r, struct dbuf *out);
/* Clean stop and free (see above). NULL is fine. */
void ctrl_runner_stop(struct ctrl_runner *r);

/* --- for the controllers' files --- */
struct controller_manager;
struct bfb_ctrl;
/* Set on a BFB by the DPU controller when DMS or the device refused the
 * BFB's content (the value says which DPU and why): the BFB controller
 * parses its cached file in full, downloads it again when it is bad, and
 * removes the annotation. A DPU waits in Pending while it is there. */
#define BFB_VERIFY_ANNOTATION "provisioning.dpu.nvidia.com/verify-cache"
struct bfb_ctrl *bfb_ctrl_add(struct controller_manager *m, const char *dir,
                              const char *component, struct dpf_error *err);
/* Cancel downloads (partial files stay), join their threads. After the
 * workers stopped. */
void bfb_ctrl_stop(struct bfb_ctrl *b);
void bfb_ctrl_destroy(struct bfb_ctrl *b);
void bfb_ctrl_metrics(struct bfb_ctrl *b, struct dbuf *out);

/* The DPUCluster controller (controllers/dpucluster.c). */
struct allocator;
struct dpuc_ctrl;
struct dpuc_ctrl_config {
    const char *dir;           /* children's data directories */
    const char *address;       /* NULL = 127.0.0.1 */
    const char *server_binary; /* NULL = find it */
    const char *component;     /* events' source */
};
/* NULL with err set when the directory cannot be made. A dpf-server
 * program that cannot be found is logged and shown in the status of
 * embedded DPUClusters, not fatal. alloc is borrowed. */
struct dpuc_ctrl *dpuc_ctrl_add(struct controller_manager *m,
                                const struct dpuc_ctrl_config *cfg,
                                struct allocator *alloc, struct dpf_error *err);
/* Stop the monitor and the children this controller runs (after the
 * workers stopped). */
void dpuc_ctrl_stop(struct dpuc_ctrl *d);
void dpuc_ctrl_destroy(struct dpuc_ctrl *d);
/* Embedded clusters whose API server process is running. */
size_t dpuc_ctrl_children(struct dpuc_ctrl *d);

/* The address other machines reach this one on: the source address of
 * the route to the default gateway, else 127.0.0.1 (malloc'd). */
char *ctrl_primary_address(void);

/* The DPUSet controller (controllers/dpuset.c). */
struct dpuset_ctrl;
struct dpuset_ctrl *dpuset_ctrl_add(struct controller_manager *m,
                                    const char *component,
                                    struct dpf_error *err);
void dpuset_ctrl_destroy(struct dpuset_ctrl *d);

/* The DPU controller (controllers/dpu.c). kc (copied; may be NULL) is
 * the host cluster's kubeconfig for pods/exec in the DMS pods (the host's
 * uptime, its reboot); bfb_dir (may be NULL) is where the DPUs' bf.cfg
 * files live; alloc (borrowed, required) assigns DPUs to DPUClusters. */
struct dpu_ctrl;
struct kubeconfig;
struct dpu_ctrl *dpu_ctrl_add(struct controller_manager *m,
                              const struct kubeconfig *kc, const char *bfb_dir,
                              int max_installs, struct allocator *alloc,
                              const char *component, struct dpf_error *err);
/* Cancel the installs and join their threads (progress stays in status
 * for the next leader). After the workers stopped. */
void dpu_ctrl_stop(struct dpu_ctrl *d);
void dpu_ctrl_destroy(struct dpu_ctrl *d);

struct witness_ctrl;
struct witness_ctrl *witness_ctrl_add(struct controller_manager *m,
                                      const char *ns_name, const char *identity,
                                      int64_t period_ms, struct dpf_error *err);
void witness_ctrl_destroy(struct witness_ctrl *w);

#endif
