/* dms-client: see dms-client.h. (Stubs until the gRPC client lands.) */
#include <errno.h>
#include <stdlib.h>

#include "controllers/dms-client.h"

struct dms_client {
    int unused;
};

struct dms_client *
dms_client_create(const struct dms_client_config *cfg, struct dpf_error *err)
{
    dpf_error_set(err, 501, "InternalError", "DMS client not built yet");
    return NULL;
}

void
dms_client_destroy(struct dms_client *c)
{
    free(c);
}

bool
dms_error_retriable(int rc)
{
    return rc == -EAGAIN || rc == -ETIMEDOUT;
}

int
dms_set_mode_dpu(struct dms_client *c, struct dpf_error *err)
{
    return -ENOSYS;
}

int
dms_get(struct dms_client *c, const char *path, char **value,
        struct dpf_error *err)
{
    return -ENOSYS;
}

int
dms_install_file(struct dms_client *c, const struct dms_install *in,
                 bool *already, struct dpf_error *err)
{
    return -ENOSYS;
}

int
dms_activate(struct dms_client *c, const char *version, bool no_reboot,
             struct dpf_error *err)
{
    return -ENOSYS;
}

int
dms_reboot_status(struct dms_client *c, bool *active,
                  enum dms_reboot_result *status, char *message, size_t size,
                  struct dpf_error *err)
{
    return -ENOSYS;
}
