/* dts-daemon: the DOCA Telemetry Service daemon, minus main().
 *
 * Ties together the configuration (dts-config), the providers
 * (dts-provider), the metric model (dts-metrics) and the outputs: the
 * Prometheus endpoint (/metrics, /healthz on lib/http-server), the Fluent
 * Forward client, NetFlow export and binary data files (dts-export), and
 * the exporter-library IPC server. It runs on a caller-provided loop:
 * one periodic timer collects every `update` ms; an inotify watch on the
 * config directory (and the level-labels file and the Fluent Bit export
 * dir) reloads the configuration at run time. A change that does not
 * parse or validate is logged, counted in dts_config_errors_total and
 * dropped; the running configuration stays in force.
 *
 * Threads: create/start/reload/destroy on the loop thread. HTTP handlers
 * and the IPC/Forward listener threads only touch the model and the
 * exporters, which lock. Ownership: the daemon owns everything it starts;
 * the loop is borrowed and must outlive it. */
#ifndef DTS_DAEMON_H
#define DTS_DAEMON_H

#include <stdint.h>

#include "dts/dts-config.h"
#include "dts/dts-metrics.h"
#include "lib/base/error.h"
#include "lib/base/loop.h"

struct dts_daemon;

/* Run telemetry-init if the config dir is empty, load the configuration,
 * start providers and outputs, arm the timers and the config watch. NULL
 * with err set if the initial configuration is unusable. rt is copied. */
struct dts_daemon *dts_daemon_start(struct loop *loop,
                                    const struct dts_runtime *rt,
                                    struct dpf_error *err);
/* Re-read the configuration now (SIGHUP, inotify). 0 if applied, -EINVAL
 * if rejected (the old configuration stays). */
int dts_daemon_reload(struct dts_daemon *d);
/* Run one collection cycle now (tests). */
void dts_daemon_collect(struct dts_daemon *d);
/* The model (tests, benchmarks). */
struct dts_model *dts_daemon_model(struct dts_daemon *d);
/* The bound /metrics port, 0 if the endpoint is off. */
uint16_t dts_daemon_http_port(const struct dts_daemon *d);
/* The configuration in force (owned by the daemon). */
const struct dts_config *dts_daemon_config(const struct dts_daemon *d);
/* Stop everything and free. */
void dts_daemon_destroy(struct dts_daemon *d);

#endif
