/* netflow: see netflow.h. (stub, implementation follows) */
#include "lib/netflow.h"

#include <errno.h>

struct nf_exporter *
nf_exporter_create(const struct nf_exporter_config *cfg, struct dpf_error *err)
{
    dpf_error_set(err, 500, "InternalError", "not implemented");
    return NULL;
}

int
nf_exporter_add(struct nf_exporter *e, const struct nf_flow *f)
{
    return -ENOSYS;
}

int
nf_exporter_flush(struct nf_exporter *e)
{
    return -ENOSYS;
}

void
nf_exporter_get_stats(const struct nf_exporter *e, struct nf_exporter_stats *st)
{
    *st = (struct nf_exporter_stats){0};
}

void
nf_exporter_destroy(struct nf_exporter *e)
{
}

long
nf_encode_packet(enum nf_version v, uint32_t domain_id, uint32_t seq,
                 uint32_t uptime_ms, uint32_t unix_secs, bool with_templates,
                 const struct nf_flow *flows, size_t n, uint8_t *buf,
                 size_t cap)
{
    return -ENOSYS;
}

struct nf_decoder *
nf_decoder_create(void)
{
    return NULL;
}

int
nf_decoder_feed(struct nf_decoder *d, const void *buf, size_t len,
                nf_flow_cb cb, void *aux, struct nf_packet_info *info,
                struct dpf_error *err)
{
    return -ENOSYS;
}

void
nf_decoder_destroy(struct nf_decoder *d)
{
}
