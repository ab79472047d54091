/* dts-prov-ethtool: the `ethtool` provider — driver statistics (what
 * `ethtool -S <dev>` prints) through the SIOCETHTOOL ioctl:
 * ETHTOOL_GSSET_INFO for the number of ETH_SS_STATS strings,
 * ETHTOOL_GSTRINGS for their names and ETHTOOL_GSTATS for the values.
 * Every statistic becomes dts_ethtool_<name>_total{device} (a counter;
 * the few known non-counters such as peer_ifindex are gauges without the
 * suffix). Interfaces are those of the daemon's network namespace;
 * devices without driver statistics (lo) are skipped. */
#include <errno.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dts/dts-provider.h"
#include "lib/base/util.h"

/* Bound on the statistics of one device (mlx5 has a few thousand). */
#define ETHTOOL_MAX_STATS 65536

struct ethtool_state {
    int fd; /* any socket will do for SIOCETHTOOL */
};

static int
ethtool_ioctl(int fd, const char *dev, void *cmd)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", dev);
    ifr.ifr_data = cmd;
    return ioctl(fd, SIOCETHTOOL, &ifr) < 0 ? -errno : 0;
}

/* Number of ETH_SS_STATS strings, or a negative errno. */
static int
ethtool_n_stats(int fd, const char *dev)
{
    /* struct ethtool_sset_info ends in a flexible array (one u32 per bit
     * set in sset_mask; we ask for one), so it cannot be a member of a
     * struct with room after it (clang: -Wgnu-variable-sized-type-not-
     * at-end): use an aligned byte buffer. */
    uint64_t raw[(sizeof(struct ethtool_sset_info) + sizeof(uint32_t) + 7) / 8];
    memset(raw, 0, sizeof raw);
    struct ethtool_sset_info *sset = (struct ethtool_sset_info *) raw;
    sset->cmd = ETHTOOL_GSSET_INFO;
    sset->sset_mask = 1ull << ETH_SS_STATS;
    int rc = ethtool_ioctl(fd, dev, sset);
    if (rc == 0) {
        return (sset->sset_mask & (1ull << ETH_SS_STATS)) ? (int) sset->data[0]
                                                          : 0;
    }
    /* Old drivers: the count is in the driver info. */
    struct ethtool_drvinfo drv;
    memset(&drv, 0, sizeof drv);
    drv.cmd = ETHTOOL_GDRVINFO;
    rc = ethtool_ioctl(fd, dev, &drv);
    return rc < 0 ? rc : (int) drv.n_stats;
}

static bool
ethtool_is_gauge(const char *name)
{
    return !strcmp(name, "peer_ifindex") || str_has_suffix(name, "_ifindex");
}

static void
ethtool_collect_dev(struct ethtool_state *st, const char *dev,
                    struct dts_sink *sink)
{
    int n = ethtool_n_stats(st->fd, dev);
    if (n <= 0 || n > ETHTOOL_MAX_STATS) {
        return;
    }
    struct ethtool_gstrings *strs =
        xcalloc(1, sizeof *strs + (size_t) n * ETH_GSTRING_LEN);
    strs->cmd = ETHTOOL_GSTRINGS;
    strs->string_set = ETH_SS_STATS;
    strs->len = (uint32_t) n;
    struct ethtool_stats *vals =
        xcalloc(1, sizeof *vals + (size_t) n * sizeof(uint64_t));
    vals->cmd = ETHTOOL_GSTATS;
    vals->n_stats = (uint32_t) n;
    if (ethtool_ioctl(st->fd, dev, strs) == 0 &&
        ethtool_ioctl(st->fd, dev, vals) == 0) {
        uint32_t count = DPF_MIN(strs->len, vals->n_stats);
        const char *labels[] = {"device", dev, NULL};
        for (uint32_t i = 0; i < count; i++) {
            char raw[ETH_GSTRING_LEN + 1];
            memcpy(raw, strs->data + (size_t) i * ETH_GSTRING_LEN,
                   ETH_GSTRING_LEN);
            raw[ETH_GSTRING_LEN] = '\0';
            /* Some drivers pad names with spaces. */
            size_t len = strlen(raw);
            while (len && raw[len - 1] == ' ') {
                raw[--len] = '\0';
            }
            if (!len) {
                continue;
            }
            bool gauge = ethtool_is_gauge(raw);
            char *name =
                xasprintf("dts_ethtool_%s%s", raw, gauge ? "" : "_total");
            dts_metric_name_sanitize(name);
            char *help = xasprintf("ethtool -S statistic %s.", raw);
            dts_sink_add(sink, gauge ? DTS_GAUGE : DTS_COUNTER, name, help,
                         labels, (double) vals->data[i]);
            free(name);
            free(help);
        }
    }
    free(strs);
    free(vals);
}

static int
ethtool_init(const struct dts_provider_ctx *ctx, void **state,
             struct dpf_error *err)
{
    struct ethtool_state *st = xcalloc(1, sizeof *st);
    st->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (st->fd < 0) {
        int e = errno;
        dpf_error_set(err, 500, "InternalError", "ethtool: socket: %s",
                      strerror(e));
        free(st);
        return -e;
    }
    *state = st;
    return 0;
}

static int
ethtool_collect(void *state, struct dts_sink *sink)
{
    struct ethtool_state *st = state;
    struct if_nameindex *ifs = if_nameindex();
    if (!ifs) {
        return -errno;
    }
    for (struct if_nameindex *i = ifs; i->if_index; i++) {
        ethtool_collect_dev(st, i->if_name, sink);
    }
    if_freenameindex(ifs);
    return 0;
}

static void
ethtool_destroy(void *state)
{
    struct ethtool_state *st = state;
    close(st->fd);
    free(st);
}

const struct dts_provider_ops dts_prov_ethtool_ops = {
    .name = "ethtool",
    .init = ethtool_init,
    .collect = ethtool_collect,
    .destroy = ethtool_destroy,
};
