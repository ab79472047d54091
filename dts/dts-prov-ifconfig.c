/* dts-prov-ifconfig: the `ifconfig` provider — interface configuration
 * and state over rtnetlink (RTM_GETLINK and RTM_GETADDR dumps):
 *   dts_ifconfig_info{device,operstate,address} 1   (address = MAC)
 *   dts_ifconfig_mtu_bytes{device}
 *   dts_ifconfig_up{device}        1 if administratively up (IFF_UP)
 *   dts_ifconfig_running{device}   1 if IFF_RUNNING (carrier and up)
 *   dts_ifconfig_txqlen{device}
 *   dts_ifconfig_address_info{device,family,address,prefixlen} 1
 * The daemon's network namespace is what is reported. */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dts/dts-provider.h"
#include "lib/net/rtnetlink.h"
#include "lib/base/util.h"

/* if.h from glibc and linux/if.h clash; take if_indextoname by hand. */
extern char *if_indextoname(unsigned int ifindex, char *ifname);

struct ifc_state {
    struct rtnetlink *rtnl;
};

static const char *const ifc_operstates[] = {
    "unknown", "notpresent", "down", "lowerlayerdown",
    "testing", "dormant",    "up",
};

static int
ifc_link_cb(const struct nlmsghdr *nlh, void *data)
{
    struct dts_sink *sink = data;
    const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
    const char *name = NULL;
    uint32_t mtu = 0, txqlen = 0;
    uint8_t oper = 0;
    char mac[64] = "";
    const struct nlattr *a;
    mnl_attr_for_each(a, nlh, sizeof *ifi)
    {
        switch (mnl_attr_get_type(a)) {
        case IFLA_IFNAME:
            if (mnl_attr_validate(a, MNL_TYPE_STRING) == 0) {
                name = mnl_attr_get_str(a);
            }
            break;
        case IFLA_MTU:
            if (mnl_attr_validate(a, MNL_TYPE_U32) == 0) {
                mtu = mnl_attr_get_u32(a);
            }
            break;
        case IFLA_TXQLEN:
            if (mnl_attr_validate(a, MNL_TYPE_U32) == 0) {
                txqlen = mnl_attr_get_u32(a);
            }
            break;
        case IFLA_OPERSTATE:
            if (mnl_attr_validate(a, MNL_TYPE_U8) == 0) {
                oper = mnl_attr_get_u8(a);
            }
            break;
        case IFLA_ADDRESS: {
            uint16_t len = mnl_attr_get_payload_len(a);
            const uint8_t *p = mnl_attr_get_payload(a);
            size_t off = 0;
            for (uint16_t i = 0; i < len && off + 4 < sizeof mac; i++) {
                off += (size_t) snprintf(mac + off, sizeof mac - off,
                                         i ? ":%02x" : "%02x", p[i]);
            }
            break;
        }
        default:
            break;
        }
    }
    if (!name) {
        return MNL_CB_OK;
    }
    const char *state =
        oper < ARRAY_SIZE(ifc_operstates) ? ifc_operstates[oper] : "unknown";
    const char *info[] = {"device",  name, "operstate", state,
                          "address", mac,  NULL};
    dts_sink_add(sink, DTS_GAUGE, "dts_ifconfig_info",
                 "Interface state and MAC address (value is always 1).", info,
                 1);
    const char *labels[] = {"device", name, NULL};
    dts_sink_add(sink, DTS_GAUGE, "dts_ifconfig_mtu_bytes", "Interface MTU.",
                 labels, mtu);
    dts_sink_add(sink, DTS_GAUGE, "dts_ifconfig_up",
                 "1 if the interface is administratively up.", labels,
                 (ifi->ifi_flags & IFF_UP) ? 1 : 0);
    dts_sink_add(sink, DTS_GAUGE, "dts_ifconfig_running",
                 "1 if the interface is up and has carrier.", labels,
                 (ifi->ifi_flags & IFF_RUNNING) ? 1 : 0);
    dts_sink_add(sink, DTS_GAUGE, "dts_ifconfig_txqlen",
                 "Interface transmit queue length.", labels, txqlen);
    return MNL_CB_OK;
}

static int
ifc_addr_cb(const struct nlmsghdr *nlh, void *data)
{
    struct dts_sink *sink = data;
    const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
    const void *addr = NULL;
    const struct nlattr *a;
    mnl_attr_for_each(a, nlh, sizeof *ifa)
    {
        uint16_t t = mnl_attr_get_type(a);
        /* IFA_LOCAL is the interface's own address on point-to-point
         * links; prefer it over IFA_ADDRESS (the peer there). */
        if (t == IFA_LOCAL || (t == IFA_ADDRESS && !addr)) {
            addr = mnl_attr_get_payload(a);
        }
    }
    if (!addr || (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6)) {
        return MNL_CB_OK;
    }
    char text[INET6_ADDRSTRLEN];
    if (!inet_ntop(ifa->ifa_family, addr, text, sizeof text)) {
        return MNL_CB_OK;
    }
    char dev[IFNAMSIZ];
    if (!if_indextoname(ifa->ifa_index, dev)) {
        snprintf(dev, sizeof dev, "if%u", ifa->ifa_index);
    }
    char plen[8];
    snprintf(plen, sizeof plen, "%u", ifa->ifa_prefixlen);
    const char *labels[] = {
        "device",    dev,
        "family",    ifa->ifa_family == AF_INET ? "inet" : "inet6",
        "address",   text,
        "prefixlen", plen,
        NULL};
    dts_sink_add(sink, DTS_GAUGE, "dts_ifconfig_address_info",
                 "An address configured on the interface (value is always "
                 "1).",
                 labels, 1);
    return MNL_CB_OK;
}

static int
ifc_init(const struct dts_provider_ctx *ctx, void **state,
         struct dpf_error *err)
{
    struct rtnetlink *r = rtnetlink_open();
    if (!r) {
        int e = errno;
        dpf_error_set(err, 500, "InternalError", "ifconfig: rtnetlink: %s",
                      strerror(e));
        return -e;
    }
    struct ifc_state *st = xcalloc(1, sizeof *st);
    st->rtnl = r;
    *state = st;
    return 0;
}

static int
ifc_collect(void *state, struct dts_sink *sink)
{
    struct ifc_state *st = state;
    struct ifinfomsg ifi;
    memset(&ifi, 0, sizeof ifi);
    ifi.ifi_family = AF_UNSPEC;
    int rc = rtnetlink_dump(st->rtnl, RTM_GETLINK, &ifi, sizeof ifi,
                            ifc_link_cb, sink);
    if (rc < 0) {
        return rc;
    }
    struct ifaddrmsg ifa;
    memset(&ifa, 0, sizeof ifa);
    ifa.ifa_family = AF_UNSPEC;
    return rtnetlink_dump(st->rtnl, RTM_GETADDR, &ifa, sizeof ifa, ifc_addr_cb,
                          sink);
}

static void
ifc_destroy(void *state)
{
    struct ifc_state *st = state;
    rtnetlink_close(st->rtnl);
    free(st);
}

const struct dts_provider_ops dts_prov_ifconfig_ops = {
    .name = "ifconfig",
    .init = ifc_init,
    .collect = ifc_collect,
    .destroy = ifc_destroy,
};
