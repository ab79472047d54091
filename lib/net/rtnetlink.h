/* dts-rtnl: a tiny rtnetlink dump helper (libmnl) shared by the `tc` and
 * `ifconfig` providers.
 *
 * One struct dts_rtnl per provider instance holds a NETLINK_ROUTE socket
 * in the daemon's network namespace. dts_rtnl_dump() sends one dump
 * request (NLM_F_DUMP) with a family header and calls cb for every reply
 * message until NLMSG_DONE. Not thread-safe (one provider, one thread). */
#ifndef DTS_RTNL_H
#define DTS_RTNL_H

#include <libmnl/libmnl.h>
#include <stddef.h>
#include <stdint.h>

struct dts_rtnl;

/* Open the socket. NULL with errno set. */
struct dts_rtnl *dts_rtnl_open(void);
void dts_rtnl_close(struct dts_rtnl *r);
/* Dump: type is RTM_GET*, hdr/hdr_len the family header (ifinfomsg,
 * tcmsg, ...) copied into the request. 0 or -errno. */
int dts_rtnl_dump(struct dts_rtnl *r, uint16_t type, const void *hdr,
                  size_t hdr_len, mnl_cb_t cb, void *data);

#endif
