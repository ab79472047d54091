/* detect: DPU detection from sysfs and rtnetlink (see detect.h). */
#include "dpulet/detect.h"

#include <dirent.h>
#include <errno.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"
#include "lib/net/rtnetlink.h"

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

/* The sorted entry names of dir (no dot entries); NULL-terminated. */
static char **
dir_sorted(const char *dir, size_t *n, int *rc)
{
    *n = 0;
    *rc = 0;
    DIR *d = opendir(dir);
    if (!d) {
        *rc = -errno;
        return NULL;
    }
    size_t cap = 16;
    char **v = xmalloc(cap * sizeof(char *));
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') {
            continue;
        }
        if (*n + 1 >= cap) {
            cap *= 2;
            v = xrealloc(v, cap * sizeof(char *));
        }
        v[(*n)++] = xstrdup(e->d_name);
    }
    closedir(d);
    qsort(v, *n, sizeof(char *), cmp_str);
    v[*n] = NULL;
    return v;
}

static void
dir_free(char **v)
{
    for (char **p = v; p && *p; p++) {
        free(*p);
    }
    free(v);
}

static bool
is_bluefield(const char *path)
{
    char buf[32] = "";
    FILE *f = fopen(path, "re");
    if (!f) {
        return false;
    }
    bool ok = fgets(buf, sizeof(buf), f) != NULL;
    fclose(f);
    if (!ok) {
        return false;
    }
    buf[strcspn(buf, "\r\n \t")] = 0;
    return !strcasecmp(buf, "0xa2dc") || !strcasecmp(buf, "0xa2d6");
}

int
dpulet_detect_scan(const char *sysfs_root, struct dpulet_dpu *out, size_t max,
                   size_t *n)
{
    *n = 0;
    char *dir = xasprintf("%s/bus/pci/devices", sysfs_root);
    size_t cnt;
    int rc;
    char **ents = dir_sorted(dir, &cnt, &rc);
    if (!ents) {
        free(dir);
        return rc == -ENOENT ? 0 : rc;
    }
    for (size_t i = 0; i < cnt; i++) {
        const char *addr = ents[i];
        /* domain:bus:dev.fn */
        const char *dot = strrchr(addr, '.');
        if (!dot || dot - addr >= 16 || strlen(addr) > 64) {
            continue;
        }
        char *dev = xasprintf("%s/%s/device", dir, addr);
        bool bf = is_bluefield(dev);
        free(dev);
        if (!bf) {
            continue;
        }
        char group[16];
        memcpy(group, addr, (size_t) (dot - addr));
        group[dot - addr] = 0;
        for (char *c = group; *c; c++) {
            if (*c == ':') {
                *c = '-';
            }
        }
        bool seen = false;
        for (size_t k = 0; k < *n; k++) {
            seen |= !strcmp(out[k].pci, group);
        }
        if (seen || *n >= max) {
            continue;
        }
        struct dpulet_dpu *d = &out[(*n)++];
        memset(d, 0, sizeof(*d));
        snprintf(d->pci, sizeof(d->pci), "%s", group);
        /* PF0 is function 0 of the device, whichever function matched */
        char *net = xasprintf("%s/%.*s.0/net", dir, (int) (dot - addr), addr);
        size_t nn;
        int nrc;
        char **nets = dir_sorted(net, &nn, &nrc);
        if (nets && nn > 0 && strlen(nets[0]) < sizeof(d->pf0)) {
            snprintf(d->pf0, sizeof(d->pf0), "%s", nets[0]);
        }
        dir_free(nets);
        free(net);
    }
    dir_free(ents);
    free(dir);
    return 0;
}

json_t *
dpulet_detect_labels(const struct dpulet_dpu *d, size_t n, bool oob)
{
    json_t *l = json_object();
    char key[128];
    for (size_t i = 0; i < n; i++) {
        snprintf(key, sizeof(key), DPULET_LABEL_PREFIX "dpu-%zu-pci-address",
                 i);
        json_object_set_new(l, key, json_string(d[i].pci));
        if (d[i].pf0[0]) {
            snprintf(key, sizeof(key), DPULET_LABEL_PREFIX "dpu-%zu-pf0-name",
                     i);
            json_object_set_new(l, key, json_string(d[i].pf0));
        }
    }
    if (n > 0) {
        json_object_set_new(l, DPULET_LABEL_PREFIX "dpu-enabled",
                            json_string("true"));
    }
    if (oob) {
        json_object_set_new(l, DPULET_LABEL_PREFIX "dpu-oob-bridge-configured",
                            json_string(""));
    }
    return l;
}

bool
dpulet_detect_owns_label(const char *key)
{
    if (!str_has_prefix(key, DPULET_LABEL_PREFIX "dpu-")) {
        return false;
    }
    const char *k = key + strlen(DPULET_LABEL_PREFIX "dpu-");
    if (!strcmp(k, "enabled") || !strcmp(k, "oob-bridge-configured")) {
        return true;
    }
    char *end;
    strtoul(k, &end, 10);
    return end != k &&
           (!strcmp(end, "-pci-address") || !strcmp(end, "-pf0-name"));
}

/* ---- rtnetlink ---- */

struct oob_scan {
    int br_index; /* br-dpu's ifindex, 0 if absent or not a bridge */
    bool route, low_metric;
};

static int
oob_link_attr(const struct nlattr *a, void *data)
{
    const struct nlattr **tb = data;
    int t = mnl_attr_get_type(a);
    if (t <= IFLA_MAX) {
        tb[t] = a;
    }
    return MNL_CB_OK;
}

static int
oob_link_cb(const struct nlmsghdr *nlh, void *data)
{
    struct oob_scan *s = data;
    const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
    const struct nlattr *tb[IFLA_MAX + 1] = {0};
    mnl_attr_parse(nlh, sizeof(*ifi), oob_link_attr, tb);
    if (!tb[IFLA_IFNAME] ||
        strcmp(mnl_attr_get_str(tb[IFLA_IFNAME]), "br-dpu") ||
        !tb[IFLA_LINKINFO]) {
        return MNL_CB_OK;
    }
    const struct nlattr *li[IFLA_INFO_MAX + 1] = {0};
    const struct nlattr *a;
    mnl_attr_for_each_nested(a, tb[IFLA_LINKINFO])
    {
        if (mnl_attr_get_type(a) <= IFLA_INFO_MAX) {
            li[mnl_attr_get_type(a)] = a;
        }
    }
    if (li[IFLA_INFO_KIND] &&
        !strcmp(mnl_attr_get_str(li[IFLA_INFO_KIND]), "bridge")) {
        s->br_index = ifi->ifi_index;
    }
    return MNL_CB_OK;
}

static int
oob_route_attr(const struct nlattr *a, void *data)
{
    const struct nlattr **tb = data;
    int t = mnl_attr_get_type(a);
    if (t <= RTA_MAX) {
        tb[t] = a;
    }
    return MNL_CB_OK;
}

static int
oob_route_cb(const struct nlmsghdr *nlh, void *data)
{
    struct oob_scan *s = data;
    const struct rtmsg *rt = mnl_nlmsg_get_payload(nlh);
    if (rt->rtm_family != AF_INET || rt->rtm_dst_len != 0 ||
        rt->rtm_type != RTN_UNICAST) {
        return MNL_CB_OK;
    }
    const struct nlattr *tb[RTA_MAX + 1] = {0};
    mnl_attr_parse(nlh, sizeof(*rt), oob_route_attr, tb);
    if (!tb[RTA_OIF] || (int) mnl_attr_get_u32(tb[RTA_OIF]) != s->br_index) {
        return MNL_CB_OK;
    }
    uint32_t metric = tb[RTA_PRIORITY] ? mnl_attr_get_u32(tb[RTA_PRIORITY]) : 0;
    s->route = true;
    if (metric <= 2) {
        s->low_metric = true;
    }
    return MNL_CB_OK;
}

int
dpulet_detect_oob_bridge(void)
{
    struct rtnetlink *r = rtnetlink_open();
    if (!r) {
        return -errno;
    }
    struct oob_scan s = {0};
    struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
    int rc = rtnetlink_dump(r, RTM_GETLINK, &ifi, sizeof(ifi), oob_link_cb, &s);
    if (rc == 0 && s.br_index > 0) {
        struct rtmsg rtm = {.rtm_family = AF_INET};
        rc = rtnetlink_dump(r, RTM_GETROUTE, &rtm, sizeof(rtm), oob_route_cb,
                            &s);
    }
    rtnetlink_close(r);
    if (rc < 0) {
        return rc;
    }
    return s.br_index > 0 && s.route && !s.low_metric;
}
