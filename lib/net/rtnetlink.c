/* rtnetlink: see rtnetlink.h. */
#include "lib/net/rtnetlink.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/base/util.h"

/* Receive buffer. The kernel sizes its dump skbs after the largest
 * recvmsg() buffer seen, so 32 KiB (as iproute2 uses) returns a link or
 * qdisc dump of hundreds of interfaces in a few reads instead of one read
 * per page (MNL_SOCKET_BUFFER_SIZE is a page). */
#define RTNETLINK_BUF_SIZE 32768

struct rtnetlink {
    struct mnl_socket *nl;
    unsigned portid;
    unsigned seq;
    char *buf; /* RTNETLINK_BUF_SIZE bytes */
};

struct rtnetlink *
rtnetlink_open(void)
{
    struct mnl_socket *nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
    if (!nl) {
        return NULL;
    }
    if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
        int e = errno;
        mnl_socket_close(nl);
        errno = e;
        return NULL;
    }
    struct rtnetlink *r = xcalloc(1, sizeof *r);
    r->nl = nl;
    r->portid = mnl_socket_get_portid(nl);
    r->seq = (unsigned) time(NULL);
    r->buf = xmalloc(RTNETLINK_BUF_SIZE);
    return r;
}

void
rtnetlink_close(struct rtnetlink *r)
{
    if (!r) {
        return;
    }
    mnl_socket_close(r->nl);
    free(r->buf);
    free(r);
}

int
rtnetlink_dump(struct rtnetlink *r, uint16_t type, const void *hdr,
               size_t hdr_len, mnl_cb_t cb, void *data)
{
    struct nlmsghdr *nlh = mnl_nlmsg_put_header(r->buf);
    nlh->nlmsg_type = type;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    nlh->nlmsg_seq = ++r->seq;
    void *h = mnl_nlmsg_put_extra_header(nlh, hdr_len);
    memcpy(h, hdr, hdr_len);
    if (mnl_socket_sendto(r->nl, nlh, nlh->nlmsg_len) < 0) {
        return -errno;
    }
    for (;;) {
        ssize_t n = mnl_socket_recvfrom(r->nl, r->buf, RTNETLINK_BUF_SIZE);
        if (n < 0) {
            return -errno;
        }
        int rc = mnl_cb_run(r->buf, (size_t) n, r->seq, r->portid, cb, data);
        if (rc == MNL_CB_STOP) {
            return 0;
        }
        if (rc < 0) {
            return -errno;
        }
    }
}
