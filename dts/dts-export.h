/* dts-export: the push outputs of DTS and the exporter-library intake.
 *
 *  - Fluent Forward client (lib/fluent-forward.h): once per cycle every
 *    sample becomes one record {"metric": name, "value": v, <labels>}
 *    under the configured tag; app events become records too.
 *  - NetFlow v9/IPFIX exporter (lib/netflow.h): flow records apps send
 *    over the IPC go to the configured collector.
 *  - Binary data files (lib/datafile.h): samples (JSON records) and app
 *    events (packed, with the app's schema) when `output` is set.
 *  - App counters sent over the IPC are kept (latest value per source and
 *    name) and exported as dts_app_<name>[_total]{source_id,source_tag}.
 *
 * Threads: dts_export_ipc_record() is called from the IPC server thread,
 * everything else from the loop thread; an internal mutex serialises the
 * outputs. Ownership: the exporter owns the clients/writers it starts. */
#ifndef DTS_EXPORT_H
#define DTS_EXPORT_H

#include <stdint.h>

#include "dts/dts-config.h"
#include "dts/dts-ipc-server.h"
#include "dts/dts-metrics.h"
#include "lib/base/error.h"

struct dts_export;

/* model receives error counts (fluent_forward, netflow, datafile, ipc). */
struct dts_export *dts_export_create(struct dts_model *model);
/* (Re)configure the outputs for c: outputs whose settings did not change
 * keep running. Failures to start an output are logged and counted, never
 * fatal (the peer may come later; the client reconnects by itself). */
void dts_export_apply(struct dts_export *x, const struct dts_config *c);
/* Push this cycle's samples to the Forward client and the data file. */
void dts_export_cycle(struct dts_export *x, struct dts_model *m,
                      int64_t now_ns);
/* One record from the IPC server (any thread). */
void dts_export_ipc_record(struct dts_export *x,
                           const struct dts_ipc_record *r);
/* App counters and output statistics as samples. */
void dts_export_collect(struct dts_export *x, struct dts_sink *sink);
void dts_export_destroy(struct dts_export *x);

/* Parse a rendered label list (`a="x",b="y\"z"`) into a JSON object
 * (new reference); NULL if malformed. Used for Forward records. */
json_t *dts_export_labels_to_json(const char *rendered);

#endif
