/* bfcfg: see bfcfg.h. (Stub until the renderer lands.) */
#include <errno.h>

#include "controllers/bfcfg.h"

int
bfcfg_render(const json_t *flavor, const char *dpu_name,
             const char *join_command, bool additional_reboot, char **out,
             size_t *len, struct dpf_error *err)
{
    dpf_error_set(err, 501, "InternalError", "bf.cfg renderer not built yet");
    return -ENOSYS;
}
