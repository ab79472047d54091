/* dts-prov-sysfs: the `sysfs` provider. Reads, under a configurable root
 * (default /sys, tests use a fake tree):
 *   class/net/<dev>/statistics/<stat>      -> dts_net_<stat>_total{device}
 *   class/infiniband/<dev>/ports/<p>/counters/<c>
 *                                          -> dts_ib_<c>_total{device,port}
 *   class/infiniband/<dev>/ports/<p>/hw_counters/<c>
 *                                          -> dts_ib_hw_<c>_total{...}
 *   class/hwmon/hwmon<N>/{temp,fan,in,curr,power}<i>_input
 *       -> dts_hwmon_temp_celsius, _fan_rpm, _in_volts, _curr_amps,
 *          _power_watts {chip, sensor}
 * Values are exported as the kernel reports them (IB data counters are in
 * 4-byte words, as in sysfs); hwmon values are scaled to base units.
 * Directories are listed on every collection, so devices that come and go
 * appear and disappear.
 *
 * Net statistics fast path: when the root is the real "/sys", the
 * net-device counters come from ONE rtnetlink RTM_GETLINK dump per cycle
 * (IFLA_STATS64, struct rtnl_link_stats64) instead of ~24 open/read/close
 * per interface. The kernel fills both from dev_get_stats(), so the numbers
 * are the same; the series (names, help, labels, order) are exactly those
 * of the file tree: the 24 statistics files sysfs has (rx_otherhost_dropped
 * is netlink-only and not exported). Any other root (a test's fake tree)
 * reads the files, and so does a device whose dump lacks IFLA_STATS64. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dts/dts-provider.h"
#include "lib/net/rtnetlink.h"
#include "lib/base/util.h"

struct sysfs_net_dev;

struct sysfs_state {
    char *root;
    unsigned components;             /* DTS_SYSFS_* bits */
    size_t n_devs_comp;              /* sysfs.component.<dev> lists (copy: */
    struct dts_sysfs_dev *devs_comp; /* the config may be replaced) */
    struct rtnetlink *rtnl;          /* set when net stats come from netlink */
    struct sysfs_net_dev *devs;      /* per-cycle dump result (reused) */
    size_t n_devs, cap_devs;         /* used, allocated */
};

/* The files of /sys/class/net/<dev>/statistics, in scandir (strcmp)
 * order, with their place in struct rtnl_link_stats64 and the exported
 * metric name and help (what the file tree path builds for that file). */
#define SYSFS_NET_STAT(f)                                              \
    {                                                                  \
        offsetof(struct rtnl_link_stats64, f), "dts_net_" #f "_total", \
            "Network device statistic " #f "."                         \
    }
static const struct {
    size_t offset;
    const char *metric;
    const char *help;
} sysfs_net_stats[] = {
    SYSFS_NET_STAT(collisions),        SYSFS_NET_STAT(multicast),
    SYSFS_NET_STAT(rx_bytes),          SYSFS_NET_STAT(rx_compressed),
    SYSFS_NET_STAT(rx_crc_errors),     SYSFS_NET_STAT(rx_dropped),
    SYSFS_NET_STAT(rx_errors),         SYSFS_NET_STAT(rx_fifo_errors),
    SYSFS_NET_STAT(rx_frame_errors),   SYSFS_NET_STAT(rx_length_errors),
    SYSFS_NET_STAT(rx_missed_errors),  SYSFS_NET_STAT(rx_nohandler),
    SYSFS_NET_STAT(rx_over_errors),    SYSFS_NET_STAT(rx_packets),
    SYSFS_NET_STAT(tx_aborted_errors), SYSFS_NET_STAT(tx_bytes),
    SYSFS_NET_STAT(tx_carrier_errors), SYSFS_NET_STAT(tx_compressed),
    SYSFS_NET_STAT(tx_dropped),        SYSFS_NET_STAT(tx_errors),
    SYSFS_NET_STAT(tx_fifo_errors),    SYSFS_NET_STAT(tx_heartbeat_errors),
    SYSFS_NET_STAT(tx_packets),        SYSFS_NET_STAT(tx_window_errors),
};

/* One interface of a RTM_GETLINK dump. */
struct sysfs_net_dev {
    char name[IFNAMSIZ];            /* IFLA_IFNAME */
    bool have_stats;                /* IFLA_STATS64 present */
    struct rtnl_link_stats64 stats; /* zero-filled past a short attr */
};

/* Read a small file holding one unsigned or signed integer. */
static int
sysfs_read_num(int dirfd, const char *name, double *out)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    char buf[64];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) {
        return -EIO;
    }
    buf[n] = '\0';
    char *end;
    if (buf[0] == '-') {
        long long v = strtoll(buf, &end, 10);
        *out = (double) v;
    } else {
        unsigned long long v = strtoull(buf, &end, 10);
        *out = (double) v;
    }
    if (end == buf || (*end && *end != '\n')) {
        return -EINVAL;
    }
    return 0;
}

/* Read a one-line text file into buf (newline stripped). */
static int
sysfs_read_line(int dirfd, const char *name, char *buf, size_t size)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n < 0) {
        return -EIO;
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

static int
sysfs_name_cmp(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int
sysfs_not_dot(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

/* Export every numeric file in dir as a counter named prefix<file>_total. */
static void
sysfs_counters_dir(struct dts_sink *sink, const char *dir, const char *prefix,
                   const char *help_what, const char *const *labels)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        return;
    }
    struct dirent **ents;
    int n = scandir(dir, &ents, sysfs_not_dot, sysfs_name_cmp);
    for (int i = 0; i < n; i++) {
        double v;
        if (sysfs_read_num(dfd, ents[i]->d_name, &v) == 0) {
            char *name = xasprintf("%s%s_total", prefix, ents[i]->d_name);
            dts_metric_name_sanitize(name);
            char *help = xasprintf("%s %s.", help_what, ents[i]->d_name);
            dts_sink_add(sink, DTS_COUNTER, name, help, labels, v);
            free(name);
            free(help);
        }
        free(ents[i]);
    }
    if (n >= 0) {
        free(ents);
    }
    close(dfd);
}

static int
sysfs_link_cb(const struct nlmsghdr *nlh, void *data)
{
    struct sysfs_state *st = data;
    const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
    const char *name = NULL;
    const struct nlattr *stats = NULL;
    const struct nlattr *a;
    mnl_attr_for_each(a, nlh, sizeof *ifi)
    {
        switch (mnl_attr_get_type(a)) {
        case IFLA_IFNAME:
            if (mnl_attr_validate(a, MNL_TYPE_STRING) == 0) {
                name = mnl_attr_get_str(a);
            }
            break;
        case IFLA_STATS64:
            stats = a;
            break;
        default:
            break;
        }
    }
    if (!name || strlen(name) >= IFNAMSIZ) {
        return MNL_CB_OK;
    }
    if (st->n_devs == st->cap_devs) {
        st->cap_devs = st->cap_devs ? st->cap_devs * 2 : 64;
        st->devs = xrealloc(st->devs, st->cap_devs * sizeof *st->devs);
    }
    struct sysfs_net_dev *dv = &st->devs[st->n_devs++];
    memset(dv, 0, sizeof *dv);
    memcpy(dv->name, name, strlen(name) + 1);
    if (stats) {
        size_t len = mnl_attr_get_payload_len(stats);
        memcpy(&dv->stats, mnl_attr_get_payload(stats),
               DPF_MIN(len, sizeof dv->stats));
        dv->have_stats = true;
    }
    return MNL_CB_OK;
}

static int
sysfs_net_dev_cmp(const void *a, const void *b)
{
    return strcmp(((const struct sysfs_net_dev *) a)->name,
                  ((const struct sysfs_net_dev *) b)->name);
}

/* Net statistics of every interface from one RTM_GETLINK dump. */
static int
sysfs_collect_net_rtnl(struct sysfs_state *st, struct dts_sink *sink)
{
    struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
    st->n_devs = 0;
    int rc = rtnetlink_dump(st->rtnl, RTM_GETLINK, &ifi, sizeof ifi,
                            sysfs_link_cb, st);
    if (rc < 0) {
        return rc;
    }
    qsort(st->devs, st->n_devs, sizeof *st->devs, sysfs_net_dev_cmp);
    for (size_t i = 0; i < st->n_devs; i++) {
        const struct sysfs_net_dev *dv = &st->devs[i];
        const char *labels[] = {"device", dv->name, NULL};
        if (!dv->have_stats) {
            char *dir =
                xasprintf("%s/class/net/%s/statistics", st->root, dv->name);
            sysfs_counters_dir(sink, dir, "dts_net_",
                               "Network device statistic", labels);
            free(dir);
            continue;
        }
        const char *base = (const char *) &dv->stats;
        for (size_t k = 0; k < ARRAY_SIZE(sysfs_net_stats); k++) {
            uint64_t v;
            memcpy(&v, base + sysfs_net_stats[k].offset, sizeof v);
            dts_sink_add(sink, DTS_COUNTER, sysfs_net_stats[k].metric,
                         sysfs_net_stats[k].help, labels, (double) v);
        }
    }
    return 0;
}

static void
sysfs_collect_net(struct sysfs_state *st, struct dts_sink *sink)
{
    if (st->rtnl && sysfs_collect_net_rtnl(st, sink) == 0) {
        return;
    }
    char *base = xasprintf("%s/class/net", st->root);
    struct dirent **devs;
    int n = scandir(base, &devs, sysfs_not_dot, sysfs_name_cmp);
    for (int i = 0; i < n; i++) {
        const char *dev = devs[i]->d_name;
        const char *labels[] = {"device", dev, NULL};
        char *dir = xasprintf("%s/%s/statistics", base, dev);
        sysfs_counters_dir(sink, dir, "dts_net_", "Network device statistic",
                           labels);
        free(dir);
        free(devs[i]);
    }
    if (n >= 0) {
        free(devs);
    }
    free(base);
}

static void
sysfs_collect_ib(struct sysfs_state *st, struct dts_sink *sink)
{
    char *base = xasprintf("%s/class/infiniband", st->root);
    struct dirent **devs;
    int n = scandir(base, &devs, sysfs_not_dot, sysfs_name_cmp);
    for (int i = 0; i < n; i++) {
        const char *dev = devs[i]->d_name;
        /* sysfs.component.<dev>=<list> narrows what this device gives */
        unsigned comp = st->components;
        for (size_t k = 0; k < st->n_devs_comp; k++) {
            if (!strcmp(st->devs_comp[k].device, dev)) {
                comp &= st->devs_comp[k].mask;
            }
        }
        char *pdir = xasprintf("%s/%s/ports", base, dev);
        struct dirent **ports;
        int np = scandir(pdir, &ports, sysfs_not_dot, sysfs_name_cmp);
        for (int j = 0; j < np; j++) {
            const char *labels[] = {"device", dev, "port", ports[j]->d_name,
                                    NULL};
            if (comp & DTS_SYSFS_IB_PORT) {
                char *d = xasprintf("%s/%s/counters", pdir, ports[j]->d_name);
                sysfs_counters_dir(sink, d, "dts_ib_",
                                   "InfiniBand port counter", labels);
                free(d);
            }
            if (comp & DTS_SYSFS_IB_HW) {
                char *d =
                    xasprintf("%s/%s/hw_counters", pdir, ports[j]->d_name);
                sysfs_counters_dir(sink, d, "dts_ib_hw_",
                                   "InfiniBand hardware counter", labels);
                free(d);
            }
            free(ports[j]);
        }
        if (np >= 0) {
            free(ports);
        }
        free(pdir);
        free(devs[i]);
    }
    if (n >= 0) {
        free(devs);
    }
    free(base);
}

/* hwmon sensor kinds: file prefix, metric, help, divisor. */
static const struct {
    const char *prefix;
    const char *metric;
    const char *help;
    double div;
} sysfs_hwmon_kinds[] = {
    {"temp", "dts_hwmon_temp_celsius", "Hardware monitor temperature.", 1000.0},
    {"fan", "dts_hwmon_fan_rpm", "Hardware monitor fan speed.", 1.0},
    {"in", "dts_hwmon_in_volts", "Hardware monitor voltage.", 1000.0},
    {"curr", "dts_hwmon_curr_amps", "Hardware monitor current.", 1000.0},
    {"power", "dts_hwmon_power_watts", "Hardware monitor power.", 1e6},
};

static void
sysfs_collect_hwmon(struct sysfs_state *st, struct dts_sink *sink)
{
    char *base = xasprintf("%s/class/hwmon", st->root);
    struct dirent **chips;
    int n = scandir(base, &chips, sysfs_not_dot, sysfs_name_cmp);
    for (int i = 0; i < n; i++) {
        char *dir = xasprintf("%s/%s", base, chips[i]->d_name);
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        char chip[300];
        if (dfd < 0 || sysfs_read_line(dfd, "name", chip, sizeof chip) < 0 ||
            !chip[0]) {
            snprintf(chip, sizeof chip, "%s", chips[i]->d_name);
        }
        struct dirent **files;
        int nf =
            dfd >= 0 ? scandir(dir, &files, sysfs_not_dot, sysfs_name_cmp) : -1;
        for (int j = 0; j < nf; j++) {
            const char *fname = files[j]->d_name;
            if (!str_has_suffix(fname, "_input")) {
                free(files[j]);
                continue;
            }
            for (size_t k = 0; k < ARRAY_SIZE(sysfs_hwmon_kinds); k++) {
                size_t pl = strlen(sysfs_hwmon_kinds[k].prefix);
                if (strncmp(fname, sysfs_hwmon_kinds[k].prefix, pl) != 0 ||
                    fname[pl] < '0' || fname[pl] > '9') {
                    continue;
                }
                double v;
                if (sysfs_read_num(dfd, fname, &v) < 0) {
                    break;
                }
                char sensor[128];
                size_t stem = strlen(fname) - strlen("_input");
                char *lab = xasprintf("%.*s_label", (int) stem, fname);
                if (sysfs_read_line(dfd, lab, sensor, sizeof sensor) < 0 ||
                    !sensor[0]) {
                    snprintf(sensor, sizeof sensor, "%.*s", (int) stem, fname);
                }
                free(lab);
                const char *labels[] = {"chip", chip, "sensor", sensor, NULL};
                dts_sink_add(sink, DTS_GAUGE, sysfs_hwmon_kinds[k].metric,
                             sysfs_hwmon_kinds[k].help, labels,
                             v / sysfs_hwmon_kinds[k].div);
                break;
            }
            free(files[j]);
        }
        if (nf >= 0) {
            free(files);
        }
        if (dfd >= 0) {
            close(dfd);
        }
        free(dir);
        free(chips[i]);
    }
    if (n >= 0) {
        free(chips);
    }
    free(base);
}

static int
sysfs_init(const struct dts_provider_ctx *ctx, void **state,
           struct dpf_error *err)
{
    struct sysfs_state *st = xcalloc(1, sizeof *st);
    st->root = xstrdup(ctx->config->sysfs_root);
    st->components = ctx->config->sysfs_components;
    st->n_devs_comp = ctx->config->n_sysfs_devs;
    st->devs_comp = xcalloc(st->n_devs_comp + 1, sizeof *st->devs_comp);
    for (size_t i = 0; i < st->n_devs_comp; i++) {
        st->devs_comp[i].device = xstrdup(ctx->config->sysfs_devs[i].device);
        st->devs_comp[i].mask = ctx->config->sysfs_devs[i].mask;
    }
    /* Only the literal real root: any other spelling (a fake tree, or
     * "//sys" to force the files) is read as files. The dump reads the
     * daemon's network namespace, which is what /sys shows it. */
    if (!strcmp(st->root, "/sys") || !strcmp(st->root, "/sys/")) {
        st->rtnl = rtnetlink_open(); /* NULL: fall back to the files */
    }
    *state = st;
    return 0;
}

static int
sysfs_collect(void *state, struct dts_sink *sink)
{
    struct sysfs_state *st = state;
    if (st->components & DTS_SYSFS_ETH) {
        sysfs_collect_net(st, sink);
    }
    if (st->components & (DTS_SYSFS_IB_PORT | DTS_SYSFS_IB_HW)) {
        sysfs_collect_ib(st, sink);
    }
    if (st->components & DTS_SYSFS_HWMON) {
        sysfs_collect_hwmon(st, sink);
    }
    return 0;
}

static void
sysfs_destroy(void *state)
{
    struct sysfs_state *st = state;
    rtnetlink_close(st->rtnl);
    for (size_t i = 0; i < st->n_devs_comp; i++) {
        free(st->devs_comp[i].device);
    }
    free(st->devs_comp);
    free(st->devs);
    free(st->root);
    free(st);
}

const struct dts_provider_ops dts_prov_sysfs_ops = {
    .name = "sysfs",
    .init = sysfs_init,
    .collect = sysfs_collect,
    .destroy = sysfs_destroy,
};
