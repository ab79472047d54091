/* bfcfg: the bf.cfg a DPU is installed with (dpf-spec §2.7.3).
 *
 * A bf.cfg is a bash fragment the BFB installer sources: the flavor's
 * bfcfgParameters as KEY=value lines, then a function bfb_modify_os() the
 * installer calls with the new root file system at /mnt. Ours writes a
 * NoCloud cloud-init seed there whose user-data holds the ubuntu user, the
 * files DPF writes (netplan, sysctl, SF creation, kubelet drop-in, the
 * join script with the `kubeadm join ...` line, systemd units, DNS clean
 * up, the flavor's nvconfig/sysctl/grub/configFiles/ovs/containerd
 * settings) and runcmd in DPF's order, the first setting the hostname to
 * the DPU's name.
 *
 * Flavor strings are user input: the user-data is a JSON tree written as
 * YAML by the project's emitter (lib/codecs/yamljson: every scalar quoted
 * as it needs, multi-line text in indented literal blocks) and reaches
 * the DPU's disk through a quoted heredoc, so nothing in a flavor is
 * expanded by the installer's shell; values we put into scripts of our
 * own (nvconfig and kernel parameters, the registry endpoint) are
 * single-quoted shell words; one-line fields (paths, sysctl lines,
 * parameters) holding a line break are refused. bfcfgParameters are
 * copied verbatim by design (DPF does: they are the installer's shell
 * assignments), but each must be one NAME=value line with a plain NAME
 * (or a comment or empty). The flavor's ovs.rawConfigScript is a script
 * by definition and runs as written.
 *
 * Threads: pure function, any thread. */
#ifndef DPF_CONTROLLERS_BFCFG_H
#define DPF_CONTROLLERS_BFCFG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "lib/base/error.h"

/* The largest bf.cfg DMS accepts (DPF's limit). */
#define BFCFG_MAX_SIZE (128 * 1024)

/* Render the bf.cfg for DPU dpu_name from flavor (a DPUFlavor object:
 * metadata.name for messages, spec for the content; NULL = an empty
 * flavor) and the join command (`kubeadm join HOST:PORT --token ...`,
 * copied verbatim into the join script; required). additional_reboot:
 * the host's reboot command is `skip`, so restart.sh reboots the DPU once
 * more after update-grub (DPF's AdditionalReboot).
 * On success *out (malloc'd, NUL-terminated) and *len; -EINVAL with err
 * naming the flavor and field for a bad flavor, -EFBIG with err naming
 * the flavor when the result exceeds BFCFG_MAX_SIZE. */
int bfcfg_render(const json_t *flavor, const char *dpu_name,
                 const char *join_command, bool additional_reboot, char **out,
                 size_t *len, struct dpf_error *err);

/* The user-data cloud-config a bf.cfg from bfcfg_render() carries (the
 * body of bfb_modify_os()'s heredoc, starting with "#cloud-config"), for
 * the emulated DPU and tests: *yaml (malloc'd, NUL-terminated) and *ylen.
 * -ENOENT when bfcfg has no such heredoc, -EINVAL when it is not closed. */
int bfcfg_user_data(const char *bfcfg, size_t len, char **yaml, size_t *ylen);

/* NAME=<integer> from the flavor's spec.nvconfig parameters (NUM_OF_VFS,
 * PF_TOTAL_SF): the value, dflt when absent, -EINVAL when not a number. */
int bfcfg_nvconfig_int(const json_t *flavor, const char *name, int dflt);

#endif
