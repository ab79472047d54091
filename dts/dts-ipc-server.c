/* dts-ipc-server: see dts-ipc-server.h. (stub, implementation follows) */
#include "dts/dts-ipc-server.h"

struct dts_ipc_server *
dts_ipc_server_start(const struct dts_ipc_server_config *cfg,
                     struct dpf_error *err)
{
    dpf_error_set(err, 500, "InternalError", "not implemented");
    return NULL;
}

void
dts_ipc_server_get_stats(const struct dts_ipc_server *s,
                         struct dts_ipc_server_stats *st)
{
    *st = (struct dts_ipc_server_stats){0};
}

void
dts_ipc_server_stop(struct dts_ipc_server *s)
{
}
