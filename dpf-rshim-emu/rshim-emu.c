/* rshim-emu: the emulated rshim device directory (see rshim-emu.h). */
#include "dpf-rshim-emu/rshim-emu.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/base/log.h"
#include "lib/base/loop.h"
#include "lib/base/util.h"
#include "lib/codecs/bfb.h"
#include "lib/codecs/rshim-misc.h"

LOG_MODULE(rshim);

#define EMU_CHUNK (64 * 1024)
#define EMU_LOG_MAX 64            /* boot log lines kept for misc */
#define EMU_INFO_MAX (64 * 1024)  /* info image bytes kept */
#define EMU_CFG_MAX (1024 * 1024) /* bf.cfg bytes kept (DPF's are <= 128 KiB) */

/* What the emulated DPU is doing. */
enum emu_phase {
    EMU_IDLE,       /* nothing pushed since start */
    EMU_RECEIVING,  /* a boot session is open */
    EMU_FAILED,     /* the session's stream was refused; draining */
    EMU_INSTALLING, /* stream complete, "installing" */
    EMU_REBOOTING,
    EMU_READY,
};

static const char *const phase_names[] = {
    "idle", "receiving", "failed", "installing", "rebooting", "ready",
};

/* The installer's progress lines, spread over install_ms. */
static const char *const install_steps[] = {
    "INFO[MISC]: Found bf.cfg",
    "INFO[MISC]: Ubuntu installation started",
    "INFO[MISC]: Installing OS image",
    "INFO[MISC]: Ubuntu installation completed",
    "INFO[MISC]: Updating NIC firmware...",
    "INFO[MISC]: NIC firmware update done",
    "INFO[MISC]: Installation finished",
};

struct rshim_emu {
    struct rshim_emu_config cfg;
    struct loop *loop;
    char *dir, *boot_path, *misc_path, *state_path;
    int boot_fd;
    struct loop_watch *boot_watch;
    int misc_fd;         /* kept open: our writes never raise IN_CLOSE_WRITE */
    struct emu_hub *hub; /* the loop's shared inotify instance */
    int wd;              /* our directory's watch in it, or -1 */
    bool misc_pending;   /* a client closed misc after writing */
    struct loop_timer *timer;

    /* device settings shown in misc */
    int display_level;
    int boot_mode;
    int drop_mode;
    int boot_reset_skip;
    int boot_timeout, usb_timeout;
    int64_t up_since_ms;

    /* the boot session */
    enum emu_phase phase;
    struct bfb_reader *reader;
    uint64_t session_bytes;
    struct dbuf info;
    struct dbuf cfg_data;
    bool cfg_truncated;
    size_t step;

    /* the boot log (ring of lines) */
    char *log[EMU_LOG_MAX];
    size_t n_log;

    /* recorded in the state file */
    unsigned sessions;     /* boot sessions that carried at least a byte */
    unsigned refused;      /* of which refused */
    json_t *installed;     /* last good install, or NULL */
    bool fresh;            /* the next "up" follows a new install */
    char last_error[1024]; /* last refusal, or "" */
};

/* One inotify instance per loop, shared by its devices: a user may own
 * only fs.inotify.max_user_instances (128 by default) instances, and
 * dpf-emu's fast mode runs thousands of devices on one loop. A watch
 * descriptor indexes the device. Devices are made and stopped on their
 * loop's thread; the list of hubs is shared between loops. */
struct emu_hub {
    struct emu_hub *next;
    struct loop *loop;
    int fd;
    struct loop_watch *watch;
    unsigned refs;
    struct rshim_emu **by_wd; /* indexed by watch descriptor */
    size_t cap;
};

static struct emu_hub *emu_hubs;
static pthread_mutex_t emu_hubs_mu = PTHREAD_MUTEX_INITIALIZER;

static void emu_write_misc(struct rshim_emu *e);
static void emu_write_state(struct rshim_emu *e);
static void emu_ports_set(struct rshim_emu *e, const char *operstate);
static bool emu_poll_commands(struct rshim_emu *e);
static void emu_read_commands(struct rshim_emu *e);

static void
emu_log(struct rshim_emu *e, const char *line)
{
    if (e->n_log == EMU_LOG_MAX) {
        free(e->log[0]);
        memmove(e->log, e->log + 1, (EMU_LOG_MAX - 1) * sizeof e->log[0]);
        e->n_log--;
    }
    e->log[e->n_log++] = xasprintf(" %s", line);
    log_info("boot log", "dir=%s line=\"%s\"", e->dir, line);
}

static void
emu_clear_log(struct rshim_emu *e)
{
    for (size_t i = 0; i < e->n_log; i++) {
        free(e->log[i]);
    }
    e->n_log = 0;
}

/* --- the DPU's ports, as the host's sysfs shows them ----------------- */

/* SYSFS/bus/pci/devices/<domain:bus:dev>.<fn> for port fn: the PCI
 * address comes from DEV_NAME ("pcie-0000:4b:00.2" -> 0000:4b:00). */
static char *
emu_port_dir(const struct rshim_emu *e, unsigned fn)
{
    const char *name = e->cfg.dev_name;
    if (str_has_prefix(name, "pcie-")) {
        name += 5;
    }
    const char *dot = strrchr(name, '.');
    int n = dot ? (int) (dot - name) : (int) strlen(name);
    return xasprintf("%s/bus/pci/devices/%.*s.%u", e->cfg.sysfs, n, name, fn);
}

static char *
emu_port_net(const struct rshim_emu *e, const char *dev, unsigned fn)
{
    return e->cfg.port_names[fn]
               ? xasprintf("%s/net/%s", dev, e->cfg.port_names[fn])
               : xasprintf("%s/net/p%u", dev, fn);
}

static void
emu_event(struct rshim_emu *e, enum rshim_emu_event ev)
{
    if (e->cfg.on_event) {
        e->cfg.on_event(e->cfg.event_arg, ev, e->fresh, e->cfg_data.data,
                        e->cfg_data.len);
    }
}

/* Replace one of the device's files (flushed unless volatile_files). */
static int
emu_file_replace(const struct rshim_emu *e, const char *path, const char *text)
{
    return file_replace(path, text, strlen(text), 0644,
                        e->cfg.volatile_files ? FILE_REPLACE_NOSYNC : 0);
}

static void
emu_sysfs_write(const struct rshim_emu *e, const char *dir, const char *name,
                const char *text, bool keep)
{
    char *p = xasprintf("%s/%s", dir, name);
    if (!(keep && access(p, F_OK) == 0)) {
        int rc = emu_file_replace(e, p, text);
        if (rc < 0) {
            log_error_rl("cannot write sysfs file", "path=%s error=\"%s\"", p,
                         strerror(-rc));
        }
    }
    free(p);
}

/* Create the ports (p0, p1: net/<if>/{operstate,mtu}, and the firmware
 * version in infiniband/mlx5_<n>/fw_ver). An MTU already there is kept,
 * as a test or an operator may have changed it. */
static int
emu_ports_create(struct rshim_emu *e, struct dpf_error *err)
{
    if (!e->cfg.sysfs) {
        return 0;
    }
    for (unsigned fn = 0; fn < 2; fn++) {
        char *dev = emu_port_dir(e, fn);
        char *net = emu_port_net(e, dev, fn);
        char *ib = xasprintf("%s/infiniband/mlx5_%u", dev, fn);
        int rc = dir_create_all(net, 0755);
        if (rc == 0) {
            rc = dir_create_all(ib, 0755);
        }
        if (rc < 0) {
            dpf_error_set(err, 500, "InternalError", "%s: %s", net,
                          strerror(-rc));
        } else {
            char fw[160];
            snprintf(fw, sizeof fw, "%s\n", e->cfg.fw_version);
            emu_sysfs_write(e, net, "mtu", "1500\n", true);
            emu_sysfs_write(e, net, "operstate", "up\n", false);
            emu_sysfs_write(e, ib, "fw_ver", fw, false);
        }
        free(dev);
        free(net);
        free(ib);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* The links go down while the DPU boots and come up when it is ready. */
static void
emu_ports_set(struct rshim_emu *e, const char *operstate)
{
    if (!e->cfg.sysfs) {
        return;
    }
    char text[32];
    snprintf(text, sizeof text, "%s\n", operstate);
    for (unsigned fn = 0; fn < 2; fn++) {
        char *dev = emu_port_dir(e, fn);
        char *net = emu_port_net(e, dev, fn);
        emu_sysfs_write(e, net, "operstate", text, false);
        free(dev);
        free(net);
    }
}

/* --- misc ------------------------------------------------------------ */

static void
emu_write_misc(struct rshim_emu *e)
{
    if (e->hub && emu_poll_commands(e)) {
        emu_read_commands(e);
    }
    struct dbuf b;
    dbuf_init(&b);
    int64_t up = e->phase == EMU_READY
                     ? (loop_now_ms(e->loop) - e->up_since_ms) / 1000
                     : 0;
    dbuf_printf(&b, "DISPLAY_LEVEL   %d (0:basic, 1:advanced, 2:log)\n",
                e->display_level);
    dbuf_printf(&b, "BF_MODE         DPU mode\n");
    dbuf_printf(&b,
                "BOOT_MODE       %d (0:rshim, 1:emmc, "
                "2:emmc-boot-swap)\n",
                e->boot_mode);
    dbuf_printf(&b, "BOOT_TIMEOUT    %d (seconds)\n", e->boot_timeout);
    dbuf_printf(&b, "USB_TIMEOUT     %d (seconds)\n", e->usb_timeout);
    dbuf_printf(&b, "DROP_MODE       %d (0:normal, 1:drop)\n", e->drop_mode);
    dbuf_printf(&b, "SW_RESET        0 (1: reset)\n");
    dbuf_printf(&b, "DEV_NAME        %s\n", e->cfg.dev_name);
    dbuf_printf(&b, "DEV_INFO        %s\n", e->cfg.dev_info);
    dbuf_printf(&b, "OPN_STR         %s\n",
                e->cfg.opn && *e->cfg.opn ? e->cfg.opn : "N/A");
    dbuf_printf(&b, "UP_TIME         %" PRId64 "(s)\n", up);
    dbuf_printf(&b, "SECURE_NIC_MODE 0 (0:no, 1:yes)\n");
    dbuf_printf(&b, "FORCE_CMD       0 (1: send Force command)\n");
    if (e->display_level >= 1) {
        dbuf_printf(&b, "BOOT_RESET_SKIP %d (1: skip)\n", e->boot_reset_skip);
        dbuf_printf(&b, "PEER_MAC        00:1a:ca:ff:ff:01 (rw)\n");
        dbuf_printf(&b, "PXE_ID          0x00000000 (rw)\n");
        dbuf_printf(&b, "VLAN_ID         0 0 (rw)\n");
        dbuf_printf(&b, "CLEAR_ON_READ   0 (0:no, 1:yes)\n");
    }
    if (e->display_level >= 2) {
        dbuf_printf(&b, "---------------------------------------\n"
                        "             Log Messages\n"
                        "---------------------------------------\n");
        for (size_t i = 0; i < e->n_log; i++) {
            dbuf_printf(&b, "%s\n", e->log[i]);
        }
    }
    /* rewritten in place rather than replaced, so that a command a client
     * writes always lands in the file we watch; commands already written
     * were applied above so the rewrite does not erase them */
    if (pwrite(e->misc_fd, b.data, b.len, 0) != (ssize_t) b.len ||
        ftruncate(e->misc_fd, (off_t) b.len) < 0) {
        log_error_rl("cannot write misc", "path=%s error=\"%s\"", e->misc_path,
                     strerror(errno));
    }
    dbuf_free(&b);
}

/* --- state file ------------------------------------------------------ */

static void
emu_write_state(struct rshim_emu *e)
{
    json_t *st =
        json_pack("{s:s, s:I, s:I, s:s}", "phase", phase_names[e->phase],
                  "bootSessions", (json_int_t) e->sessions, "refusedSessions",
                  (json_int_t) e->refused, "lastError", e->last_error);
    json_object_set(st, "installed", e->installed ? e->installed : json_null());
    /* a FIFO cannot tell one writer from the next: a client that pushes
     * twice waits for the first session to close before the second */
    json_object_set_new(st, "sessionOpen", json_boolean(e->reader != NULL));
    char *s = json_dumps(st, JSON_INDENT(2) | JSON_SORT_KEYS);
    int rc = emu_file_replace(e, e->state_path, s);
    if (rc < 0) {
        log_error_rl("cannot write the state file", "path=%s error=\"%s\"",
                     e->state_path, strerror(-rc));
    }
    free(s);
    json_decref(st);
}

/* --- install timeline ------------------------------------------------ */

static void
emu_timer_cancel(struct rshim_emu *e)
{
    if (e->timer) {
        loop_timer_cancel(e->timer);
        e->timer = NULL;
    }
}

static void emu_on_timer(void *arg, struct loop_timer *t);

static void
emu_timer_set(struct rshim_emu *e, int64_t ms)
{
    emu_timer_cancel(e);
    e->timer = loop_timer_add(e->loop, ms, 0, emu_on_timer, e);
}

static int64_t
step_ms(const struct rshim_emu *e)
{
    return e->cfg.install_ms / (int64_t) ARRAY_SIZE(install_steps);
}

static void
emu_on_timer(void *arg, struct loop_timer *t)
{
    (void) t;
    struct rshim_emu *e = arg;
    e->timer = NULL;
    switch (e->phase) {
    case EMU_INSTALLING:
        if (e->step < ARRAY_SIZE(install_steps)) {
            if (e->step > 0 || e->cfg_data.len) {
                emu_log(e, install_steps[e->step]);
            }
            e->step++;
            emu_timer_set(e, step_ms(e));
            break;
        }
        /* the OS is on the disk: that is what the DPU has from now on */
        json_decref(e->installed);
        e->installed =
            json_pack("{s:I}", "bfbBytes",
                      (json_int_t) (e->session_bytes - e->cfg_data.len));
        {
            char version[256];
            json_object_set_new(e->installed, "version",
                                bfb_info_version(e->info.data, e->info.len,
                                                 version, sizeof version) == 0
                                    ? json_string(version)
                                    : json_null());
        }
        json_object_set_new(
            e->installed, "bfcfg",
            e->cfg_data.len && utf8_valid(e->cfg_data.data, e->cfg_data.len)
                ? json_stringn(e->cfg_data.data, e->cfg_data.len)
                : json_null());
        json_object_set_new(e->installed, "bfcfgBytes",
                            json_integer((json_int_t) e->cfg_data.len));
        emu_log(e, "INFO[MISC]: Rebooting...");
        e->phase = EMU_REBOOTING;
        e->fresh = true;
        emu_timer_set(e, e->cfg.reboot_ms);
        emu_write_state(e);
        emu_event(e, RSHIM_EMU_DOWN);
        break;
    case EMU_REBOOTING: {
        /* the OS it booted says which BFB it came from (our addition to
         * the log, so dmsd can report what the device itself runs) */
        const char *v =
            json_string_value(json_object_get(e->installed, "version"));
        if (v) {
            char line[300];
            snprintf(line, sizeof line, "INFO[MISC]: BFB version %.200s", v);
            emu_log(e, line);
        }
        emu_log(e, "INFO[MISC]: Linux up");
        emu_log(e, "INFO[MISC]: DPU is ready");
        e->phase = EMU_READY;
        e->boot_mode = 1; /* back to eMMC, as the driver does on release */
        e->up_since_ms = loop_now_ms(e->loop);
        emu_ports_set(e, "up");
        emu_write_state(e);
        emu_event(e, RSHIM_EMU_UP);
        e->fresh = false;
        break;
    }
    default:
        break;
    }
    emu_write_misc(e);
}

/* --- boot sessions --------------------------------------------------- */

static int
on_data(void *ctx, const struct bfb_image *img, const uint8_t *p, size_t n,
        struct dpf_error *err)
{
    (void) err;
    struct rshim_emu *e = ctx;
    if (img->h.id == BFB_ID_INFO && e->info.len < EMU_INFO_MAX) {
        dbuf_append(&e->info, p, DPF_MIN(n, EMU_INFO_MAX - e->info.len));
    }
    return 0;
}

static int
on_header(void *ctx, const struct bfb_image *img, struct dpf_error *err)
{
    (void) err;
    struct rshim_emu *e = ctx;
    /* the boot stages announce themselves as their images arrive */
    char line[128];
    const char *stage = NULL;
    switch (img->h.id) {
    case 1:
        stage = "INFO[BL2]: start";
        break;
    case 3:
        stage = "INFO[BL31]: start";
        break;
    case 5:
        stage = "INFO[UEFI]: start";
        break;
    case BFB_ID_IMAGE:
        stage = "INFO[UEFI]: Linux kernel loading";
        break;
    case BFB_ID_INITRAMFS:
        snprintf(line, sizeof line,
                 "INFO[MISC]: initramfs loading (%" PRIu32 " bytes)",
                 img->h.length);
        stage = line;
        break;
    default:
        break;
    }
    if (stage) {
        emu_log(e, stage);
        emu_write_misc(e);
    }
    return 0;
}

static int
on_trailer(void *ctx, const uint8_t *p, size_t n, struct dpf_error *err)
{
    (void) err;
    struct rshim_emu *e = ctx;
    size_t room = EMU_CFG_MAX - e->cfg_data.len;
    if (n > room) {
        e->cfg_truncated = true;
    }
    dbuf_append(&e->cfg_data, p, DPF_MIN(n, room));
    return 0;
}

static const struct bfb_reader_ops emu_ops = {
    .header = on_header,
    .data = on_data,
    .trailer = on_trailer,
};

/* The first byte of a session: the driver resets the chip and the boot
 * ROM starts reading the FIFO. */
static void
session_begin(struct rshim_emu *e)
{
    emu_timer_cancel(e);
    emu_clear_log(e);
    bfb_reader_free(e->reader);
    e->reader = bfb_reader_new(&emu_ops, e);
    dbuf_free(&e->info);
    dbuf_free(&e->cfg_data);
    e->cfg_truncated = false;
    e->session_bytes = 0;
    e->step = 0;
    e->sessions++;
    e->boot_mode = 0; /* booting from rshim */
    e->phase = EMU_RECEIVING;
    emu_ports_set(e, "down");
    emu_log(e, "INFO[PSC]: PSC BL1 START");
    emu_log(e, "INFO[BL2]: boot mode (rshim)");
    emu_write_misc(e);
    emu_write_state(e);
    emu_event(e, RSHIM_EMU_DOWN);
}

static void
session_refuse(struct rshim_emu *e, const struct dpf_error *err)
{
    char line[1100];
    snprintf(e->last_error, sizeof e->last_error, "%s", err->message);
    snprintf(line, sizeof line, "ERR[BL2]: %s", err->message);
    emu_log(e, line);
    e->phase = EMU_FAILED;
    e->refused++;
    log_warn("boot stream refused", "dir=%s error=\"%s\"", e->dir,
             err->message);
    emu_write_misc(e);
    emu_write_state(e);
}

/* The writer closed boot. */
static void
session_end(struct rshim_emu *e)
{
    if (e->phase == EMU_RECEIVING) {
        struct dpf_error err = {0};
        if (bfb_reader_finish(e->reader, &err) < 0) {
            session_refuse(e, &err);
        } else if (e->cfg_truncated) {
            dpf_error_set(&err, 400, "Invalid", "bf.cfg larger than %d bytes",
                          EMU_CFG_MAX);
            session_refuse(e, &err);
        } else {
            log_info("boot stream complete",
                     "dir=%s bytes=%" PRIu64 " images=%u bfcfg_bytes=%zu",
                     e->dir, e->session_bytes, bfb_reader_images(e->reader),
                     e->cfg_data.len);
            e->last_error[0] = '\0';
            emu_log(e, "INFO[UEFI]: Linux from rshim");
            e->phase = EMU_INSTALLING;
            emu_timer_set(e, step_ms(e));
            emu_write_misc(e);
            emu_write_state(e);
        }
    }
    if (e->phase == EMU_FAILED) {
        /* a refused stream leaves the DPU waiting for the next push */
        e->boot_mode = 1;
        emu_write_misc(e);
    }
    bfb_reader_free(e->reader);
    e->reader = NULL;
    emu_write_state(e);
}

static int emu_open_boot(struct rshim_emu *e);

static void
on_boot(void *arg, int fd, uint32_t events)
{
    struct rshim_emu *e = arg;
    uint8_t *buf = xmalloc(EMU_CHUNK);
    bool eof = false;
    /* bounded per wake-up so misc commands and timers keep running */
    for (int i = 0; i < 64; i++) {
        ssize_t k = read(fd, buf, EMU_CHUNK);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            if (errno != EAGAIN) {
                log_error("boot read failed", "error=\"%s\"", strerror(errno));
                eof = true;
            }
            break;
        }
        if (k == 0) {
            eof = true;
            break;
        }
        if (e->phase != EMU_RECEIVING && e->phase != EMU_FAILED) {
            session_begin(e);
        } else if (e->phase == EMU_FAILED && !e->reader) {
            session_begin(e);
        }
        e->session_bytes += (uint64_t) k;
        if (e->phase == EMU_RECEIVING) {
            struct dpf_error err = {0};
            if (bfb_reader_feed(e->reader, buf, (size_t) k, &err) < 0) {
                session_refuse(e, &err);
            }
        }
    }
    free(buf);
    if (eof || (events & LOOP_HUP && !(events & LOOP_READ))) {
        if (e->reader) {
            session_end(e);
        }
        /* a FIFO whose writer left keeps signalling hang-up: reopen it
         * so the next writer starts a new session */
        loop_watch_remove(e->boot_watch);
        e->boot_watch = NULL;
        close(e->boot_fd);
        e->boot_fd = -1;
        if (emu_open_boot(e) < 0) {
            log_error("cannot reopen boot", "path=%s", e->boot_path);
        }
    }
}

static int
emu_open_boot(struct rshim_emu *e)
{
    e->boot_fd = open(e->boot_path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (e->boot_fd < 0) {
        return -errno;
    }
    e->boot_watch = loop_watch_fd(e->loop, e->boot_fd, LOOP_READ, on_boot, e);
    return 0;
}

/* --- misc commands --------------------------------------------------- */

static void
emu_command(struct rshim_emu *e, const char *key, const char *val)
{
    char *end;
    long v = strtol(val, &end, 0);
    bool num = *val && !*end;
    if (!strcmp(key, "DISPLAY_LEVEL") && num && v >= 0 && v <= 2) {
        e->display_level = (int) v;
    } else if (!strcmp(key, "BOOT_MODE") && *val) {
        e->boot_mode = (int) strtol(val, NULL, 16);
    } else if (!strcmp(key, "DROP_MODE") && num) {
        e->drop_mode = v != 0;
    } else if (!strcmp(key, "BOOT_RESET_SKIP") && num) {
        e->boot_reset_skip = v != 0;
    } else if (!strcmp(key, "BOOT_TIMEOUT") && num && v >= 0 && v <= 300) {
        e->boot_timeout = v ? (int) v : 300;
    } else if (!strcmp(key, "USB_TIMEOUT") && num && v >= 0 && v <= 300) {
        e->usb_timeout = v ? (int) v : 40;
    } else if (!strcmp(key, "SW_RESET") && num && v == 1) {
        emu_clear_log(e);
        emu_log(e, "INFO[MISC]: Rebooting...");
        e->phase = EMU_REBOOTING;
        emu_ports_set(e, "down");
        emu_timer_set(e, e->cfg.reboot_ms);
        emu_write_state(e);
        emu_event(e, RSHIM_EMU_DOWN);
    } else if (!strcmp(key, "CLEAR_ON_READ") || !strcmp(key, "PEER_MAC") ||
               !strcmp(key, "PXE_ID") || !strcmp(key, "VLAN_ID") ||
               !strcmp(key, "OPN_STR") || !strcmp(key, "DEBUG_CODE") ||
               !strcmp(key, "FORCE_CMD") || !strcmp(key, "DEV_NAME")) {
        /* accepted, nothing to emulate */
    } else {
        /* status lines of ours (BF_MODE, the log) when a client appended
         * its command with >>; and unknown keys */
        log_debug("misc line ignored", "key=%s", key);
    }
}

static void
emu_command_cb(void *arg, const char *key, const char *value)
{
    emu_command(arg, key, value);
}

static void
emu_read_commands(struct rshim_emu *e)
{
    struct stat st;
    if (fstat(e->misc_fd, &st) < 0 || st.st_size > 65536) {
        return;
    }
    char *text = xmalloc((size_t) st.st_size + 1);
    ssize_t got = pread(e->misc_fd, text, (size_t) st.st_size, 0);
    rshim_misc_commands(text, got > 0 ? (size_t) got : 0, emu_command_cb, e);
    free(text);
}

/* Drain the hub's queue, marking the devices whose misc a client wrote. */
static void
hub_drain(struct emu_hub *h)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    for (;;) {
        ssize_t k = read(h->fd, buf, sizeof buf);
        if (k <= 0) {
            break;
        }
        for (char *p = buf; p < buf + k;) {
            struct inotify_event *ev = (struct inotify_event *) p;
            if (ev->len && !strcmp(ev->name, "misc") && ev->wd >= 0 &&
                (size_t) ev->wd < h->cap && h->by_wd[ev->wd]) {
                h->by_wd[ev->wd]->misc_pending = true;
            }
            p += sizeof *ev + ev->len;
        }
    }
}

/* True if a client wrote e's misc since the last look. */
static bool
emu_poll_commands(struct rshim_emu *e)
{
    hub_drain(e->hub);
    bool misc = e->misc_pending;
    e->misc_pending = false;
    return misc;
}

static void
on_inotify(void *arg, int fd, uint32_t events)
{
    (void) fd;
    (void) events;
    struct emu_hub *h = arg;
    hub_drain(h);
    /* a command may stop devices (the owner's event handler): look each
     * one up again by its descriptor */
    for (size_t wd = 0; wd < h->cap; wd++) {
        struct rshim_emu *e = h->by_wd[wd];
        if (e && e->misc_pending) {
            e->misc_pending = false;
            emu_read_commands(e);
            emu_write_misc(e);
        }
    }
}

static struct emu_hub *
hub_get(struct loop *loop)
{
    pthread_mutex_lock(&emu_hubs_mu);
    struct emu_hub *h = emu_hubs;
    while (h && h->loop != loop) {
        h = h->next;
    }
    if (!h) {
        int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (fd >= 0) {
            h = xcalloc(1, sizeof *h);
            h->loop = loop;
            h->fd = fd;
            h->watch = loop_watch_fd(loop, fd, LOOP_READ, on_inotify, h);
            h->next = emu_hubs;
            emu_hubs = h;
        }
    }
    if (h) {
        h->refs++;
    }
    pthread_mutex_unlock(&emu_hubs_mu);
    return h;
}

static void
hub_put(struct emu_hub *h)
{
    pthread_mutex_lock(&emu_hubs_mu);
    if (--h->refs == 0) {
        struct emu_hub **pp = &emu_hubs;
        while (*pp != h) {
            pp = &(*pp)->next;
        }
        *pp = h->next;
        loop_watch_remove(h->watch);
        close(h->fd);
        free(h->by_wd);
        free(h);
    }
    pthread_mutex_unlock(&emu_hubs_mu);
}

static int
hub_watch(struct rshim_emu *e, const char *dir)
{
    int wd = inotify_add_watch(e->hub->fd, dir, IN_CLOSE_WRITE);
    if (wd < 0) {
        return -errno;
    }
    struct emu_hub *h = e->hub;
    if ((size_t) wd >= h->cap) {
        size_t cap = h->cap ? h->cap : 64;
        while (cap <= (size_t) wd) {
            cap *= 2;
        }
        h->by_wd = xrealloc(h->by_wd, cap * sizeof *h->by_wd);
        memset(h->by_wd + h->cap, 0, (cap - h->cap) * sizeof *h->by_wd);
        h->cap = cap;
    }
    h->by_wd[wd] = e;
    e->wd = wd;
    return 0;
}

/* --- lifecycle ------------------------------------------------------- */

struct rshim_emu *
rshim_emu_start(struct loop *loop, const struct rshim_emu_config *cfg,
                struct dpf_error *err)
{
    struct rshim_emu *e = xcalloc(1, sizeof *e);
    e->cfg = *cfg;
    e->loop = loop;
    e->dir = xstrdup(cfg->dir);
    e->boot_path = xasprintf("%s/boot", cfg->dir);
    e->misc_path = xasprintf("%s/misc", cfg->dir);
    e->state_path = cfg->state_path ? xstrdup(cfg->state_path)
                                    : xasprintf("%s/emu-state.json", cfg->dir);
    e->boot_fd = e->misc_fd = e->wd = -1;
    e->display_level = cfg->display_level;
    e->boot_mode = 1;
    e->boot_timeout = 300;
    e->usb_timeout = 40;
    e->phase = EMU_READY; /* a DPU that is up, with whatever it had */
    e->up_since_ms = loop_now_ms(loop);
    int rc = dir_create_all(cfg->dir, 0755);
    if (rc < 0) {
        dpf_error_set(err, 500, "InternalError", "%s: %s", cfg->dir,
                      strerror(-rc));
        goto fail;
    }
    /* keep what an earlier run installed: the emulated DPU's disk */
    char *old;
    size_t old_len;
    if (file_read_all(e->state_path, &old, &old_len) == 0) {
        json_t *j = json_loadb(old, old_len, 0, NULL);
        json_t *inst = json_object_get(j, "installed");
        if (json_is_object(inst)) {
            e->installed = json_incref(inst);
        }
        json_decref(j);
        free(old);
    }
    unlink(e->boot_path);
    if (mkfifo(e->boot_path, 0620) < 0) {
        dpf_error_set(err, 500, "InternalError", "%s: %s", e->boot_path,
                      strerror(errno));
        goto fail;
    }
    if ((rc = emu_open_boot(e)) < 0) {
        dpf_error_set(err, 500, "InternalError", "%s: %s", e->boot_path,
                      strerror(-rc));
        goto fail;
    }
    e->misc_fd = open(e->misc_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (e->misc_fd < 0) {
        dpf_error_set(err, 500, "InternalError", "%s: %s", e->misc_path,
                      strerror(errno));
        goto fail;
    }
    /* watch before the files exist: the state file tells clients the
     * device is ready, and their first command must not be missed */
    e->hub = hub_get(loop);
    if (!e->hub || (rc = hub_watch(e, cfg->dir)) < 0) {
        dpf_error_set(err, 500, "InternalError", "inotify on %s: %s", cfg->dir,
                      strerror(e->hub ? -rc : errno));
        goto fail;
    }
    if (emu_ports_create(e, err) < 0) {
        goto fail;
    }
    emu_write_misc(e);
    emu_write_state(e);
    log_info("rshim device ready",
             "dir=%s dev_name=%s install_ms=%" PRId64 " reboot_ms=%" PRId64,
             e->dir, cfg->dev_name, cfg->install_ms, cfg->reboot_ms);
    return e;
fail:
    rshim_emu_stop(e);
    return NULL;
}

void
rshim_emu_stop(struct rshim_emu *e)
{
    if (!e) {
        return;
    }
    emu_timer_cancel(e);
    if (e->boot_watch) {
        loop_watch_remove(e->boot_watch);
    }
    if (e->boot_fd >= 0) {
        close(e->boot_fd);
        unlink(e->boot_path);
    }
    if (e->hub) {
        if (e->wd >= 0) {
            inotify_rm_watch(e->hub->fd, e->wd);
            e->hub->by_wd[e->wd] = NULL;
        }
        hub_put(e->hub);
    }
    if (e->misc_fd >= 0) {
        close(e->misc_fd);
    }
    bfb_reader_free(e->reader);
    emu_clear_log(e);
    dbuf_free(&e->info);
    dbuf_free(&e->cfg_data);
    json_decref(e->installed);
    free(e->dir);
    free(e->boot_path);
    free(e->misc_path);
    free(e->state_path);
    free(e);
}
