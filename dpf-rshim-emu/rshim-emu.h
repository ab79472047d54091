/* rshim-emu: an emulated rshim device directory (the host-side view of a
 * BlueField's boot FIFO) for tests and demos without a DPU.
 *
 * The directory holds what the rshim driver exposes under /dev/rshim<N>
 * (doca-services.md §11) that DPF and DMS use:
 *   boot  a FIFO. A writer (`cat x.bfb bf.cfg > boot`) is one boot session:
 *         the emulated DPU parses the stream as it arrives (lib/codecs/bfb),
 *         so a bad magic or CRC is reported in misc as soon as it is seen;
 *         the bytes after the BFB's last image are the appended bf.cfg.
 *         When the writer closes, a good stream "installs" (log lines over
 *         install_ms), then reboots (reboot_ms) and ends "DPU is ready".
 *   misc  a regular file in rshim's text format (DISPLAY_LEVEL, BF_MODE,
 *         BOOT_MODE, DEV_NAME, DEV_INFO, ...; with DISPLAY_LEVEL 2 the boot
 *         log, " INFO[...]" / " ERR[...]" lines). It is rewritten in place
 *         on every change; commands written into it ("DISPLAY_LEVEL 2",
 *         "SW_RESET 1", ...) are seen through inotify (IN_CLOSE_WRITE) and
 *         applied before the next rewrite.
 * With DISPLAY_LEVEL 2 the log of a DPU that came up names the BFB it runs
 * (" INFO[MISC]: BFB version V", our addition).
 * and a state file (JSON, replaced atomically) recording what the DPU has
 * installed: the BFB's version (its info image), the appended bf.cfg, the
 * byte count, plus a count of boot sessions, so a test can tell whether
 * anything at all was written to boot.
 *
 * Differences from the real driver, by design of a plain directory: misc
 * is not a device file, so CLEAR_ON_READ is accepted but has no effect,
 * a reader may see a rewrite half done (poll again), a command written
 * in the microseconds between a check and a rewrite may be lost, and a
 * second writer that opens boot before the emulator has read the first
 * one's end joins the first session (a FIFO has no open/release): a
 * client pushing twice waits for "sessionOpen": false in the state file.
 *
 * Threads: everything runs on the loop given to rshim_emu_start(); the
 * devices of one loop share one inotify instance. */
#ifndef DPF_RSHIM_EMU_H
#define DPF_RSHIM_EMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/error.h"

struct loop;
struct rshim_emu;

/* What the emulated DPU did, for a program embedding the device (dpf-emu
 * runs the DPU's OS around it). */
enum rshim_emu_event {
    RSHIM_EMU_DOWN, /* a push began, or a reboot (install end, SW_RESET) */
    RSHIM_EMU_UP,   /* the DPU finished booting ("DPU is ready") */
};

/* Called on the loop thread. On RSHIM_EMU_UP, fresh is true when the boot
 * follows a new install (not a SW_RESET of the OS already there), and
 * bfcfg/len is the bf.cfg that install carried (len 0 if none); the bytes
 * belong to the device and are valid during the call only. */
typedef void (*rshim_emu_event_fn)(void *arg, enum rshim_emu_event ev,
                                   bool fresh, const char *bfcfg, size_t len);

/* The device keeps the config's pointers: its strings must outlive it. */
struct rshim_emu_config {
    const char *dir;        /* created if missing (mode 0755) */
    const char *state_path; /* NULL = <dir>/emu-state.json */
    const char *dev_name;   /* DEV_NAME, e.g. "pcie-0000:4b:00.2" */
    const char *dev_info;   /* DEV_INFO, e.g. "BlueField-3(Rev 1)" */
    const char *opn;        /* OPN_STR; NULL shows "N/A" */
    int display_level;      /* initial DISPLAY_LEVEL (0..2) */
    int64_t install_ms;     /* emulated install time after the stream */
    int64_t reboot_ms;      /* emulated reboot time after the install */
    /* NULL, or a directory standing for the host's /sys: the DPU's two
     * ports appear there as the host sees them (bus/pci/devices/<PCI of
     * dev_name>.<0|1>/net/p<0|1>/{operstate,mtu} and
     * .../infiniband/mlx5_<n>/fw_ver), down while the DPU boots */
    const char *sysfs;
    const char *fw_version; /* fw_ver in sysfs, e.g. "32.43.1014" */
    /* the host's netdev names of the two ports in sysfs (net/<name>);
     * NULL = "p0", "p1" */
    const char *port_names[2];
    rshim_emu_event_fn on_event; /* NULL = nobody listens */
    void *event_arg;
    /* The state file and sysfs files are replaced atomically but not
     * flushed (FILE_REPLACE_NOSYNC): for dpf-emu's fast mode, where
     * thousands of devices share one event loop and each flush blocks it.
     * false = durable (one device per process). */
    bool volatile_files;
};

/* Create the directory's files and start serving on loop. NULL with err
 * set (the path and the errno) on failure. */
struct rshim_emu *rshim_emu_start(struct loop *loop,
                                  const struct rshim_emu_config *cfg,
                                  struct dpf_error *err);
/* Stop: remove the watches and the boot FIFO (misc and the state file
 * stay for inspection). NULL is allowed. */
void rshim_emu_stop(struct rshim_emu *e);

#endif
