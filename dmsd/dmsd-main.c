/* dmsd: the DOCA Management Service daemon. main and flags only; the
 * server is dmsd.c. Flags are spelled as DPF's pod spec passes them, Go
 * style with one dash (-bind_address 0.0.0.0:9339); --flag works too. */
#include <ctype.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmsd/dmsd.h"
#include "lib/base/daemon.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/codecs/duration.h"

struct dm {
    struct dmsd_config cfg;
    struct dmsd *s;
};

#define STR_FLAG(fn, field)                                        \
    static int fn(void *arg, const char *v, struct dpf_error *err) \
    {                                                              \
        (void) err;                                                \
        ((struct dm *) arg)->cfg.field = v;                        \
        return 0;                                                  \
    }

STR_FLAG(set_bind, bind_address)
STR_FLAG(set_ca, ca)
STR_FLAG(set_cert, tls_cert_file)
STR_FLAG(set_key, tls_key_file)
STR_FLAG(set_username, username)
STR_FLAG(set_password, password)
STR_FLAG(set_allowed, allowed_users)
STR_FLAG(set_images, image_folder)
STR_FLAG(set_pci, target_pci)
STR_FLAG(set_rshim, rshim)
STR_FLAG(set_state_dir, state_dir)
STR_FLAG(set_sysfs, sysfs)

static int
set_auth(void *arg, const char *v, struct dpf_error *err)
{
    struct dm *m = arg;
    if (!strcmp(v, "cert")) {
        m->cfg.auth = DMSD_AUTH_CERT;
    } else if (!strcmp(v, "credentials")) {
        m->cfg.auth = DMSD_AUTH_CREDENTIALS;
    } else if (!strcmp(v, "none")) {
        m->cfg.auth = DMSD_AUTH_NONE;
    } else {
        dpf_error_set(err, 400, "BadRequest",
                      "-auth \"%s\": expected cert, credentials or none", v);
        return -EINVAL;
    }
    return 0;
}

static int
set_exec_timeout(void *arg, const char *v, struct dpf_error *err)
{
    int64_t ms;
    char *end;
    long secs = strtol(v, &end, 10);
    if (*v && !*end && secs > 0) {
        ms = (int64_t) secs * 1000; /* DPF passes plain seconds */
    } else if (duration_parse(v, &ms) < 0 || ms <= 0) {
        dpf_error_set(err, 400, "BadRequest",
                      "-exec_timeout \"%s\": expected seconds or a duration "
                      "such as 30m",
                      v);
        return -EINVAL;
    }
    ((struct dm *) arg)->cfg.exec_timeout_ms = ms;
    return 0;
}

static int
set_ignored(void *arg, const char *v, struct dpf_error *err)
{
    (void) arg;
    (void) v;
    (void) err;
    return 0;
}

static int
set_v(void *arg, const char *v, struct dpf_error *err)
{
    (void) arg;
    (void) err;
    log_set_level(atoi(v) >= 4 ? DPF_LOG_DEBUG : DPF_LOG_INFO);
    return 0;
}

static const struct daemon_flag flags[] = {
    {"bind_address", "ADDR:PORT",
     "where to serve gNMI and gNOI (default "
     "0.0.0.0:9339)",
     set_bind},
    {"auth", "MODE",
     "cert (mutual TLS, default), credentials "
     "(username/password\nmetadata over TLS) or none "
     "(plaintext, loopback only)",
     set_auth},
    {"ca", "FILE",
     "CA certificate (PEM) that client certificates must "
     "chain to",
     set_ca},
    {"tls_cert_file", "FILE", "server certificate (PEM)", set_cert},
    {"tls_key_file", "FILE", "server private key (PEM)", set_key},
    {"username", "NAME", "the user for -auth credentials", set_username},
    {"password", "PASS", "the password for -auth credentials", set_password},
    {"allowed_users", "A,B",
     "only these users (certificate CN or "
     "username), in every mode",
     set_allowed},
    {"image_folder", "DIR",
     "where installed images and bf.cfg files live "
     "(required)",
     set_images},
    {"rshim", "DIR",
     "the rshim device directory (/dev/rshim0 on a host; "
     "required)",
     set_rshim},
    {"state_dir", "DIR",
     "dmsd's own state (default "
     "IMAGE_FOLDER/.dmsd)",
     set_state_dir},
    {"target_pci", "BUS:DEV",
     "the DPU's PCI address (4b:00): its ports and firmware\n"
     "version are read from sysfs (default: the address in misc's DEV_NAME)",
     set_pci},
    {"sysfs", "DIR",
     "the host's sysfs (default /sys; dpf-rshim-emu --sysfs "
     "makes one)",
     set_sysfs},
    {"exec_timeout", "SECONDS",
     "how long an activation may take (default "
     "1800)",
     set_exec_timeout},
    {"disable_unbind_at_activate", NULL,
     "accepted for DPF's pod spec (no "
     "driver to unbind here)",
     NULL},
    {"reboot_status_check", "MODE", "accepted for DPF's pod spec", set_ignored},
    {"v", "LEVEL", "verbosity: 4 and above log every call", set_v},
    {NULL, NULL, NULL, NULL},
};

static int
dm_start(void *arg, struct daemon *d, struct dpf_error *err)
{
    struct dm *m = arg;
    m->s = dmsd_start(&m->cfg, err);
    if (!m->s) {
        return -EINVAL;
    }
    daemon_set_ready(d, "grpc", true, NULL);
    return 0;
}

static void
dm_stop(void *arg)
{
    struct dm *m = arg;
    dmsd_stop(m->s);
    m->s = NULL;
}

int
main(int argc, char **argv)
{
    struct dm m = {.cfg = {.bind_address = "0.0.0.0:9339",
                           .auth = DMSD_AUTH_CERT,
                           .sysfs = "/sys",
                           .exec_timeout_ms = 1800 * 1000}};
    /* gRPC allocates and frees its receive buffers for every 64 KiB
     * transfer message (dmsd itself no longer copies them): without these
     * glibc keeps returning the top of the heap to the kernel and faulting
     * it back, which once cost most of the CPU of an Install. Two arenas
     * bound the memory the call threads can spread over. */
    mallopt(M_TRIM_THRESHOLD, 16 << 20);
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_ARENA_MAX, 2);
    /* Go's flag package takes -name; getopt_long wants --name */
    char **av = xcalloc((size_t) argc + 1, sizeof *av);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        av[i] = i > 0 && a[0] == '-' && isalpha((unsigned char) a[1])
                    ? xasprintf("-%s", a)
                    : xstrdup(a);
    }
    const struct daemon_spec spec = {
        .name = "dmsd",
        .summary = "Serve gNMI and gNOI (the DOCA Management Service) on one "
                   "gRPC port:\nthe BlueField mode, OS.Install of BFBs and "
                   "bf.cfg files, OS.Activate\ninto the rshim boot device, "
                   "System.Reboot and RebootStatus, File in the image\n"
                   "folder; gNMI reads the DPU's identity, versions and ports.",
        .flags = flags,
        .arg = &m,
        .start = dm_start,
        .stop = dm_stop,
    };
    int rc = daemon_main(&spec, argc, av);
    for (int i = 0; i < argc; i++) {
        free(av[i]);
    }
    free(av);
    return rc;
}
