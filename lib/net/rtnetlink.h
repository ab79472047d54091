/* rtnetlink: a tiny rtnetlink dump helper (libmnl), used by dts's `tc` and
 * `ifconfig` providers.
 *
 * One struct rtnetlink per provider instance holds a NETLINK_ROUTE socket
 * in the daemon's network namespace. rtnetlink_dump() sends one dump
 * request (NLM_F_DUMP) with a family header and calls cb for every reply
 * message until NLMSG_DONE. Not thread-safe (one provider, one thread). */
#ifndef DPF_RTNETLINK_H
#define DPF_RTNETLINK_H

#include <libmnl/libmnl.h>
#include <stddef.h>
#include <stdint.h>

struct rtnetlink;

/* Open the socket. NULL with errno set. */
struct rtnetlink *rtnetlink_open(void);
void rtnetlink_close(struct rtnetlink *r);
/* Dump: type is RTM_GET*, hdr/hdr_len the family header (ifinfomsg,
 * tcmsg, ...) copied into the request. 0 or -errno. */
int rtnetlink_dump(struct rtnetlink *r, uint16_t type, const void *hdr,
                   size_t hdr_len, mnl_cb_t cb, void *data);

#endif
