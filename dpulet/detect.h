/* detect: DPF's DPU detection on a host (dpf-spec §2.8, dpudetector + the
 * NFD rule), done by dpulet itself instead of a DaemonSet and NFD.
 *
 * dpulet_detect_scan() reads <sysfs_root>/bus/pci/devices/<addr>/device
 * for every PCI function, in the directory's sorted order (the order of
 * dpudetector's glob), keeps those whose device id is 0xa2dc (BlueField-3)
 * or 0xa2d6 (BlueField-2) (the vendor is not checked, as in DPF), groups
 * functions by domain:bus:dev and numbers each new device from 0. A DPU's
 * PF0 netdev is the first entry (sorted) of <addr-of-function-0>/net/.
 *
 * dpulet_detect_labels() turns a scan into the Node labels
 * feature.node.kubernetes.io/dpu-enabled=true (when any DPU is found),
 * dpu-<i>-pci-address=0000-4b-00, dpu-<i>-pf0-name=<netdev> (when the PF
 * has a netdev) and dpu-oob-bridge-configured= (empty value) when
 * dpulet_detect_oob_bridge() says so.
 *
 * dpulet_detect_oob_bridge() asks the kernel over rtnetlink, in the
 * caller's network namespace: 1 when link br-dpu exists and is a bridge,
 * an IPv4 default route goes via it and no default route via it has a
 * metric <= 2; 0 otherwise; -errno when netlink fails.
 *
 * Threads: no shared state; any thread. */
#ifndef DPF_DPULET_DETECT_H
#define DPF_DPULET_DETECT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define DPULET_DETECT_MAX 16 /* DPUs per host we report */
#define DPULET_LABEL_PREFIX "feature.node.kubernetes.io/"

struct dpulet_dpu {
    char pci[16]; /* "0000-4b-00" */
    char pf0[64]; /* netdev of function 0, "" if none */
};

/* Scan; at most max DPUs into out, their count into *n. 0 or -errno when
 * the devices directory cannot be read (a missing directory is 0 DPUs). */
int dpulet_detect_scan(const char *sysfs_root, struct dpulet_dpu *out,
                       size_t max, size_t *n);
/* The labels as a new JSON object (string values). */
json_t *dpulet_detect_labels(const struct dpulet_dpu *d, size_t n, bool oob);
/* True for a label key this module owns (so stale ones can be removed). */
bool dpulet_detect_owns_label(const char *key);
int dpulet_detect_oob_bridge(void);

#endif
