/* dpf-rshim-emu: serves an emulated rshim device directory (boot FIFO,
 * misc, state file) so that dmsd, bfb-install-style scripts and the tests
 * can push BFBs without a BlueField. main and flags only; the device is
 * rshim-emu.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpf-rshim-emu/rshim-emu.h"
#include "lib/base/daemon.h"
#include "lib/codecs/duration.h"

struct emu_main {
    struct rshim_emu_config cfg;
    struct rshim_emu *emu;
};

static int
set_dir(void *arg, const char *v, struct dpf_error *err)
{
    if (!*v) {
        dpf_error_set(err, 400, "BadRequest", "--dir must not be empty");
        return -EINVAL;
    }
    ((struct emu_main *) arg)->cfg.dir = v;
    return 0;
}

static int
set_state(void *arg, const char *v, struct dpf_error *err)
{
    (void) err;
    ((struct emu_main *) arg)->cfg.state_path = v;
    return 0;
}

static int
set_dev_name(void *arg, const char *v, struct dpf_error *err)
{
    (void) err;
    ((struct emu_main *) arg)->cfg.dev_name = v;
    return 0;
}

static int
set_dev_info(void *arg, const char *v, struct dpf_error *err)
{
    (void) err;
    ((struct emu_main *) arg)->cfg.dev_info = v;
    return 0;
}

static int
set_display_level(void *arg, const char *v, struct dpf_error *err)
{
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < 0 || n > 2) {
        dpf_error_set(err, 400, "BadRequest",
                      "--display-level \"%s\": expected 0, 1 or 2", v);
        return -EINVAL;
    }
    ((struct emu_main *) arg)->cfg.display_level = (int) n;
    return 0;
}

static int
parse_ms(const char *flag, const char *v, int64_t *ms, struct dpf_error *err)
{
    if (duration_parse(v, ms) < 0 || *ms < 0) {
        dpf_error_set(err, 400, "BadRequest",
                      "%s \"%s\": expected a duration such as 30s, 500ms "
                      "or 0",
                      flag, v);
        return -EINVAL;
    }
    return 0;
}

static int
set_install_time(void *arg, const char *v, struct dpf_error *err)
{
    return parse_ms("--install-time", v,
                    &((struct emu_main *) arg)->cfg.install_ms, err);
}

static int
set_reboot_time(void *arg, const char *v, struct dpf_error *err)
{
    return parse_ms("--reboot-time", v,
                    &((struct emu_main *) arg)->cfg.reboot_ms, err);
}

static int
set_opn(void *arg, const char *v, struct dpf_error *err)
{
    (void) err;
    ((struct emu_main *) arg)->cfg.opn = v;
    return 0;
}

static int
set_sysfs(void *arg, const char *v, struct dpf_error *err)
{
    (void) err;
    ((struct emu_main *) arg)->cfg.sysfs = v;
    return 0;
}

static int
set_fw_version(void *arg, const char *v, struct dpf_error *err)
{
    (void) err;
    ((struct emu_main *) arg)->cfg.fw_version = v;
    return 0;
}

static const struct daemon_flag flags[] = {
    {"dir", "DIR",
     "the device directory to create (/dev/rshim<N> on a host "
     "with a DPU); required",
     set_dir},
    {"state", "FILE",
     "what the emulated DPU has installed, as JSON\n"
     "(default DIR/emu-state.json)",
     set_state},
    {"dev-name", "NAME", "DEV_NAME in misc (default pcie-0000:4b:00.2)",
     set_dev_name},
    {"dev-info", "TEXT", "DEV_INFO in misc (default \"BlueField-3(Rev 1)\")",
     set_dev_info},
    {"opn", "TEXT", "OPN_STR in misc, the part number (default N/A)", set_opn},
    {"display-level", "N", "initial DISPLAY_LEVEL, 0..2 (default 0)",
     set_display_level},
    {"install-time", "DUR",
     "time the emulated install takes after the "
     "stream ends (default 5s)",
     set_install_time},
    {"reboot-time", "DUR", "time the emulated reboot takes (default 3s)",
     set_reboot_time},
    {"sysfs", "DIR",
     "also show the DPU's ports p0, p1 as a host's sysfs would,\n"
     "under DIR/bus/pci/devices/<PCI of --dev-name>.<0|1>/ (net/pN/"
     "operstate,\nmtu; infiniband/mlx5_N/fw_ver): what dmsd -sysfs DIR "
     "reads",
     set_sysfs},
    {"fw-version", "VER",
     "the NIC firmware version in fw_ver (default "
     "32.43.1014)",
     set_fw_version},
    {NULL, NULL, NULL, NULL},
};

static int
emu_start(void *arg, struct daemon *d, struct dpf_error *err)
{
    struct emu_main *m = arg;
    if (!m->cfg.dir) {
        dpf_error_set(err, 400, "BadRequest", "--dir is required");
        return -EINVAL;
    }
    m->emu = rshim_emu_start(daemon_loop(d), &m->cfg, err);
    if (!m->emu) {
        return -EIO;
    }
    daemon_set_ready(d, "rshim", true, NULL);
    return 0;
}

static void
emu_stop(void *arg)
{
    struct emu_main *m = arg;
    rshim_emu_stop(m->emu);
    m->emu = NULL;
}

int
main(int argc, char **argv)
{
    struct emu_main m = {
        .cfg = {.dev_name = "pcie-0000:4b:00.2",
                .dev_info = "BlueField-3(Rev 1)",
                .install_ms = 5000,
                .reboot_ms = 3000,
                .fw_version = "32.43.1014"},
    };
    const struct daemon_spec spec = {
        .name = "dpf-rshim-emu",
        .summary = "Serve an emulated rshim device directory: a boot FIFO "
                   "that parses\nthe BFB pushed into it, misc in rshim's "
                   "text format, and a state\nfile recording the installed "
                   "BFB version and bf.cfg.",
        .epilog = "Push a BFB as on a host with a DPU:\n"
                  "  cat os.bfb bf.cfg > DIR/boot\n"
                  "  echo 'DISPLAY_LEVEL 2' > DIR/misc; cat DIR/misc\n",
        .flags = flags,
        .arg = &m,
        .start = emu_start,
        .stop = emu_stop,
    };
    return daemon_main(&spec, argc, argv);
}
