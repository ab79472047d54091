/* dpu-pods: see dpu-pods.h. (Stubs until the builders land.) */
#include <errno.h>

#include "controllers/dms-client.h"
#include "controllers/dpu-pods.h"

int
dpu_host_index(const json_t *dpu, const json_t *host, struct dpf_error *err)
{
    return -ENOSYS;
}

const char *
dpu_host_ip(const json_t *host)
{
    return NULL;
}

int
dpu_dms_port(int index)
{
    return DMS_PORT_BASE + index;
}

json_t *
dpu_pod_dms(const struct dpu_pods_in *in, struct dpf_error *err)
{
    return NULL;
}

json_t *
dpu_pod_hostnetwork(const struct dpu_pods_in *in, struct dpf_error *err)
{
    return NULL;
}

int
dpu_certs_ensure(struct kube_rest *r, const json_t *dpu, const char *host_ip,
                 const struct dpu_certs_signer *s, int64_t *recheck_ms,
                 struct dpf_error *err)
{
    return -ENOSYS;
}

int
dpu_certs_delete(struct kube_rest *r, const json_t *dpu,
                 struct dpf_error *err)
{
    return -ENOSYS;
}
