/* emu-fast: dpf-emu's fast mode, thousands of emulated DPUs in one
 * process for scale tests (docs/dpf-emu.md, "Fast mode").
 *
 * No namespaces and no agent per host: this process is the node agent of
 * every emulated host and DPU, and keeps what the controllers talk to
 * real:
 *   hosts     Node objects it registers itself, with the detection labels
 *             dpulet would compute from a sysfs tree (one tree, shared by
 *             all hosts: they are alike), an address of their own on the
 *             loopback network (127.1.0.0/16 and up), the dpu.emu/ Node
 *             annotations, and Leases it renews;
 *   DMS pods  run by a pool of `dmsd --targets -` processes (each target
 *             a DMS endpoint on its host's address and port, with the
 *             pod's certificates from its Secret), so the DPU controller
 *             speaks gNOI to real dmsd code; the pod status says Running
 *             once the target listens;
 *   host-network pods  marked Ready at once (nothing to configure: the
 *             hosts have no netdevs in this mode);
 *   DPUs      one in-process rshim device each (rshim-emu, one loop and
 *             one inotify instance for all); a BFB and bf.cfg written to
 *             it install, reboot, and then the DPU joins its DPU cluster
 *             as `dpulet join` does (bootstrap token, CSR, node
 *             certificate), registers its Node Ready with that identity
 *             and renews its Lease.
 * Other pods bound to the emulated hosts are left Pending (logged once).
 *
 * Threads: the loop thread runs the pod informer, the devices and the
 * timers; blocking API calls, joins and dmsd requests run on a pool of
 * worker threads fed by a queue. */
#ifndef DPF_EMU_FAST_H
#define DPF_EMU_FAST_H

#include <stdint.h>

#include "lib/base/error.h"

struct loop;
struct emu_fast;

struct emu_fast_config {
    const char *state_dir;     /* created; devices, disks, dmsd logs */
    const char *fleet;         /* Node names dpfemu-<fleet>-h<i> */
    unsigned hosts;            /* >= 1 */
    unsigned first_host;       /* number of the first host (emulators sharing
                            one control plane take disjoint ranges) */
    unsigned dpus_per_host;    /* 1..8 */
    const char *kubeconfig;    /* the control plane (admin), required */
    const char *dmsd;          /* the dmsd binary (absolute) */
    unsigned targets_per_dmsd; /* DMS targets per dmsd process */
    unsigned workers;          /* worker threads */
    int64_t install_ms, reboot_ms;
    int64_t lease_renew_ms; /* Lease renewal period; 0 = never renewed */
};

/* Start: write the sysfs tree, start the devices and the dmsd pool,
 * register the host Nodes (in the background) and follow the pods. NULL
 * with err set on a bad configuration or a failure to start. */
struct emu_fast *emu_fast_up(struct loop *loop,
                             const struct emu_fast_config *cfg,
                             struct dpf_error *err);
/* Stop the workers, the devices and the dmsd pool; free f. The Nodes and
 * Leases stay (delete them through the API if needed). */
void emu_fast_destroy(struct emu_fast *f);

#endif
