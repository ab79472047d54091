/* dts-prov-tc: the `tc` provider — queueing discipline and class
 * statistics (what `tc -s qdisc` / `tc -s class` print) over rtnetlink.
 *
 * RTM_GETQDISC is dumped once for all devices; RTM_GETTCLASS per device
 * (the kernel only dumps classes of the device named in tcm_ifindex).
 * From TCA_STATS2 the basic (bytes, packets; TCA_STATS_PKT64 when present)
 * and queue (qlen, backlog, drops, requeues, overlimits) blocks are read.
 * Series:
 *   dts_tc_qdisc_{bytes,packets,drops,requeues,overlimits}_total,
 *   dts_tc_qdisc_qlen, dts_tc_qdisc_backlog_bytes
 *       {device, kind, handle, parent}
 *   dts_tc_class_... likewise {device, kind, classid, parent}
 * Handles print like tc does ("1:", "1:10", "root", "ingress"). */
#include <errno.h>
#include <linux/gen_stats.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dts/dts-provider.h"
#include "lib/net/rtnetlink.h"
#include "lib/base/util.h"

struct tc_state {
    struct rtnetlink *rtnl;
};

struct tc_ctx {
    struct dts_sink *sink;
    bool classes;
};

static void
tc_fmt_handle(uint32_t h, char *buf, size_t size)
{
    if (h == TC_H_ROOT) {
        snprintf(buf, size, "root");
    } else if (h == TC_H_UNSPEC) {
        snprintf(buf, size, "none");
    } else if (h == TC_H_INGRESS) {
        snprintf(buf, size, "ingress");
    } else if (TC_H_MIN(h) == 0) {
        snprintf(buf, size, "%x:", TC_H_MAJ(h) >> 16);
    } else {
        snprintf(buf, size, "%x:%x", TC_H_MAJ(h) >> 16, TC_H_MIN(h));
    }
}

struct tc_stats_vals {
    bool have_basic, have_queue;
    uint64_t bytes, packets;
    uint32_t qlen, backlog, drops, requeues, overlimits;
};

static void
tc_parse_stats2(const struct nlattr *nest, struct tc_stats_vals *v)
{
    const struct nlattr *a;
    mnl_attr_for_each_nested(a, nest)
    {
        uint16_t t = mnl_attr_get_type(a);
        uint16_t len = mnl_attr_get_payload_len(a);
        const uint8_t *p = mnl_attr_get_payload(a);
        if (t == TCA_STATS_BASIC && len >= 12) {
            uint64_t bytes;
            uint32_t pkts;
            memcpy(&bytes, p, 8);
            memcpy(&pkts, p + 8, 4);
            v->bytes = bytes;
            if (!v->packets) {
                v->packets = pkts;
            }
            v->have_basic = true;
        } else if (t == TCA_STATS_PKT64 && len >= 8) {
            memcpy(&v->packets, p, 8);
        } else if (t == TCA_STATS_QUEUE &&
                   len >= sizeof(struct gnet_stats_queue)) {
            struct gnet_stats_queue q;
            memcpy(&q, p, sizeof q);
            v->qlen = q.qlen;
            v->backlog = q.backlog;
            v->drops = q.drops;
            v->requeues = q.requeues;
            v->overlimits = q.overlimits;
            v->have_queue = true;
        }
    }
}

static int
tc_msg_cb(const struct nlmsghdr *nlh, void *data)
{
    struct tc_ctx *c = data;
    const struct tcmsg *tcm = mnl_nlmsg_get_payload(nlh);
    const char *kind = NULL;
    struct tc_stats_vals v;
    memset(&v, 0, sizeof v);
    const struct nlattr *a;
    mnl_attr_for_each(a, nlh, sizeof *tcm)
    {
        uint16_t t = mnl_attr_get_type(a);
        if (t == TCA_KIND && mnl_attr_validate(a, MNL_TYPE_STRING) == 0) {
            kind = mnl_attr_get_str(a);
        } else if (t == TCA_STATS2) {
            tc_parse_stats2(a, &v);
        } else if (t == TCA_STATS && !v.have_basic &&
                   mnl_attr_get_payload_len(a) >= sizeof(struct tc_stats)) {
            struct tc_stats s;
            memcpy(&s, mnl_attr_get_payload(a), sizeof s);
            v.bytes = s.bytes;
            v.packets = s.packets;
            v.drops = s.drops;
            v.overlimits = s.overlimits;
            v.qlen = s.qlen;
            v.backlog = s.backlog;
            v.have_basic = v.have_queue = true;
        }
    }
    char dev[IF_NAMESIZE];
    if (!if_indextoname((unsigned) tcm->tcm_ifindex, dev)) {
        snprintf(dev, sizeof dev, "if%d", tcm->tcm_ifindex);
    }
    char handle[32], parent[32];
    tc_fmt_handle(tcm->tcm_handle, handle, sizeof handle);
    tc_fmt_handle(tcm->tcm_parent, parent, sizeof parent);
    const char *obj = c->classes ? "class" : "qdisc";
    const char *labels[] = {"device",
                            dev,
                            "kind",
                            kind ? kind : "",
                            c->classes ? "classid" : "handle",
                            handle,
                            "parent",
                            parent,
                            NULL};
    static const char *const what[] = {"bytes", "packets", "drops", "requeues",
                                       "overlimits"};
    double vals[] = {(double) v.bytes, (double) v.packets, (double) v.drops,
                     (double) v.requeues, (double) v.overlimits};
    for (size_t i = 0; i < ARRAY_SIZE(what); i++) {
        char name[64], help[96];
        snprintf(name, sizeof name, "dts_tc_%s_%s_total", obj, what[i]);
        snprintf(help, sizeof help, "Traffic control %s %s.", obj, what[i]);
        dts_sink_add(c->sink, DTS_COUNTER, name, help, labels, vals[i]);
    }
    char name[64], help[96];
    snprintf(name, sizeof name, "dts_tc_%s_qlen", obj);
    snprintf(help, sizeof help, "Traffic control %s queue length (packets).",
             obj);
    dts_sink_add(c->sink, DTS_GAUGE, name, help, labels, (double) v.qlen);
    snprintf(name, sizeof name, "dts_tc_%s_backlog_bytes", obj);
    snprintf(help, sizeof help, "Traffic control %s backlog.", obj);
    dts_sink_add(c->sink, DTS_GAUGE, name, help, labels, (double) v.backlog);
    return MNL_CB_OK;
}

static int
tc_init(const struct dts_provider_ctx *ctx, void **state, struct dpf_error *err)
{
    struct rtnetlink *r = rtnetlink_open();
    if (!r) {
        int e = errno;
        dpf_error_set(err, 500, "InternalError", "tc: rtnetlink: %s",
                      strerror(e));
        return -e;
    }
    struct tc_state *st = xcalloc(1, sizeof *st);
    st->rtnl = r;
    *state = st;
    return 0;
}

static int
tc_collect(void *state, struct dts_sink *sink)
{
    struct tc_state *st = state;
    struct tc_ctx c = {.sink = sink, .classes = false};
    struct tcmsg req;
    memset(&req, 0, sizeof req);
    req.tcm_family = AF_UNSPEC;
    int rc =
        rtnetlink_dump(st->rtnl, RTM_GETQDISC, &req, sizeof req, tc_msg_cb, &c);
    if (rc < 0) {
        return rc;
    }
    struct if_nameindex *ifs = if_nameindex();
    if (!ifs) {
        return -errno;
    }
    c.classes = true;
    for (struct if_nameindex *i = ifs; i->if_index && rc == 0; i++) {
        memset(&req, 0, sizeof req);
        req.tcm_family = AF_UNSPEC;
        req.tcm_ifindex = (int) i->if_index;
        rc = rtnetlink_dump(st->rtnl, RTM_GETTCLASS, &req, sizeof req,
                            tc_msg_cb, &c);
    }
    if_freenameindex(ifs);
    return rc;
}

static void
tc_destroy(void *state)
{
    struct tc_state *st = state;
    rtnetlink_close(st->rtnl);
    free(st);
}

const struct dts_provider_ops dts_prov_tc_ops = {
    .name = "tc",
    .init = tc_init,
    .collect = tc_collect,
    .destroy = tc_destroy,
};
