/* emu-fleet: an emulated fleet of hosts with BlueField DPUs, built from
 * Linux network namespaces on this machine (docs/dpf-emu.md).
 *
 *   host i    netns dpfemu-<fleet>-h<i>: a sysfs tree under the state dir
 *             showing its DPUs as PCI functions, PF/VF netdevs (veths into
 *             the DPUs), br-dpu on the management network with a default
 *             route, one emulated rshim device per DPU (rshim-emu, in this
 *             process), and a dpulet;
 *   DPU i,j   netns dpfemu-<fleet>-h<i>-d<j>: p0/p1 into the fabric netns,
 *             oob_net0 on the management network, pf0hpf/pf1hpf/pf0vf<k>,
 *             tmfifo_net0; a disk directory. A BFB + bf.cfg written to its
 *             rshim boot file installs, reboots, applies the bf.cfg and
 *             boots: dpulet join, then dpulet, in the DPU's netns;
 *   network   bridge dpfemu<fleet> in the root netns (the first address
 *             of --mgmt-cidr), veths to every host and DPU.
 *
 * Everything made is first written to <state-dir>/fleet.record (names of
 * namespaces and root links, PIDs with their start times), so that
 * emu_fleet_down() removes it all from any process, also after this one
 * crashed. Network changes go through iproute2's `ip -batch` (one run per
 * namespace), not hand-built netlink: the commands are what an operator
 * would type, and the record lists the same names.
 *
 * Threads: everything runs on the loop given to emu_fleet_up(); the Node
 * annotation requests are blocking calls on that loop (a few per host). */
#ifndef DPF_EMU_FLEET_H
#define DPF_EMU_FLEET_H

#include <stdint.h>
#include <stdio.h>

#include "lib/base/error.h"

struct loop;
struct emu_fleet;

struct emu_fleet_config {
    const char *state_dir;  /* created; holds everything but namespaces */
    const char *fleet;      /* name part, [a-z0-9]{1,4} */
    unsigned hosts;         /* >= 1 */
    unsigned dpus_per_host; /* 1..8 */
    unsigned vfs;           /* VF netdev pairs per DPU, 0..16 */
    const char *mgmt_cidr;  /* IPv4 network, prefix /8../16 */
    const char *server_url; /* the API as seen from the namespaces, or NULL */
    const char *kubeconfig; /* the host dpulets' kubeconfig, or NULL */
    const char *bootstrap_kubeconfig; /* or a bootstrap one, or NULL */
    const char *dpulet;               /* the dpulet binary (absolute) */
    int64_t install_ms, reboot_ms;
    /* hosts reboot for real when their ipmitool asks (chassis power
     * cycle|reset), and their Nodes are not annotated reboot-command
     * skip; the emulator's own path (for the ipmitool script) */
    bool reboot_hosts;
    const char *self;
    /* how long after a power cycle/reset request the power goes (the
     * answer gets back through the exec stream first; a real host takes
     * its time to shut down) */
    int64_t power_off_delay_ms;
};

/* Build the fleet and start its processes. NULL with err set (not root, a
 * name already in use, a missing binary, an ip command that failed: what
 * and why); whatever was made before the failure is removed again. */
struct emu_fleet *emu_fleet_up(struct loop *loop,
                               const struct emu_fleet_config *cfg,
                               struct dpf_error *err);
/* Reap exited children (SIGCHLD) and restart dpulets that died. */
void emu_fleet_reap(struct emu_fleet *f);
/* Stop every process and remove every namespace and link; free f. */
void emu_fleet_destroy(struct emu_fleet *f);

/* `dpf-emu ipmitool`: what a host's ipmitool (a script in
 * <state-dir>/hosts/h<i>/bin, first in the PATH of the host's pods) runs:
 * ask the running emulator of state_dir for "chassis power
 * cycle|reset|status" of host i (1-based) over its BMC socket
 * (<state-dir>/bmc.sock). Prints what ipmitool prints; returns the exit
 * code (0, or 1 with the error on stderr). */
int emu_ipmitool(const char *state_dir, unsigned host, int argc, char **argv);

/* Write a host's sysfs view of its DPU j (0000:<4b+j>:00.0 and .1, a
 * BlueField's vendor, device and class, sriov files, the PFs' netdevs
 * pf0/pf1, and vfs virtual functions of PF0 linked as virtfn<k>) under
 * sys. Shared by both modes. 0 or -errno with err naming the path. */
int emu_sysfs_write_dpu(const char *sys, unsigned j, const char *pf0,
                        const char *pf1, unsigned vfs, struct dpf_error *err);

/* Remove what the record in state_dir lists: stop a running `dpf-emu up`
 * for it, kill the recorded processes still running (same PID and start
 * time), delete the namespaces and links. Idempotent: 0 when nothing is
 * left (also when there was no record), else -errno with err. progress
 * (may be NULL) gets one line per removed thing. */
int emu_fleet_down(const char *state_dir, FILE *progress,
                   struct dpf_error *err);
/* Print the fleet's state (status.json written by the running emulator,
 * and which recorded things still exist). 0, or -ENOENT with err. */
int emu_fleet_status(const char *state_dir, FILE *out, struct dpf_error *err);

#endif
