/* dts-config: the DTS configuration (dts_config.ini, DOCA's keys) and the
 * telemetry-init step that writes a default file into an empty config
 * directory.
 *
 * The file is plain `key=value` (lib/ini.h). Keys read (DOCA spelling
 * where DOCA's is known; ours marked *):
 *   update                       sampling period, ms (default 1000)
 *   enable-provider / disable-provider   one line per provider (repeat)
 *   providers*, aggregator-providers*    comma lists (the DPF YAML form)
 *   prometheus                   http://<addr>:<port> of /metrics
 *   include-names, exclude-names, name-match (exact|wildcard|regex)
 *   level-labels-file            level_labels.ini path
 *   output                       data-file directory (unset = no files)
 *   data-file-size-limit, data-file-time-limit   rotation (bytes, s)
 *   fluentbit-config-dir         dir of Fluent Bit *.exp export files
 *   netflow-collector-ip, netflow-collector-port, netflow-version*
 *   prometheus-aggr-endpoints*   comma list of URLs for prometheus_aggr
 *   fluent-aggr-address*, fluent-aggr-port*   fluent_aggr listener
 *   fluent-aggr-shared-key*, fluent-aggr-self-hostname*  Forward's
 *                                shared-key handshake on that listener
 *   ipc-sockets-dir*             exporter-library socket directory
 *   ipc-socket-mode*, ipc-socket-group*   its file mode (octal) and group
 *                                (name or number): apps of other users
 *   series-expiry*               s without update before an app or
 *                                fluent_aggr series is dropped (0 = never)
 *   app-series-limit*, app-series-per-source-limit*  memory budget of app
 *                                series (refusals: dts_memory_budget_errors)
 *   fluent-forward-{enable,host,port,tag}*  Forward output without .exp
 *   fluent-forward-require-ack*, fluent-forward-buffer-records*  (acks with
 *                                resend; queue bound, default 10000)
 *   metric-naming*               dts (default) or doca names (dts-view.h)
 *   prometheus-cset-dir, prometheus-fset-dir, prometheus-indexes,
 *   prometheus-fset-indexes[-file], prometheus-ignore-names,
 *   prometheus-ignore-tagss      the endpoint's view (dts-view.h); the
 *                                view is built here, so a bad set file
 *                                rejects the configuration
 *   sysfs.component.<c|ib-dev>   sysfs components on/off, per-device lists
 *   hcaperf.<dev>                validated, warned about (not available)
 *   counter-file                 names, one per line, join include-names
 *   exit-on-plugin-load-error    start-up fails if a provider cannot start
 * DOCA keys for outputs that do not exist here (prometheus-cert,
 * open-telemetry-receiver, influx, ...) are accepted and put in
 * `warnings` (logged at warn level); tuning keys of DOCA's engine
 * (sync-time-limit, *-buffer-size, ...) in `notes`; unknown keys are
 * noted too. None of them makes the file invalid.
 *
 * Ownership: dts_config_load() returns a config the caller frees with
 * dts_config_free(); all strings inside are owned by it. */
#ifndef DTS_CONFIG_H
#define DTS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dts/dts-metrics.h"
#include "dts/dts-view.h"
#include "lib/base/error.h"

#define DTS_CONFIG_FILE "dts_config.ini"
#define DTS_CONFIG_YAML "dts_config.yaml"
#define DTS_DEFAULT_UPDATE_MS 1000
#define DTS_DEFAULT_PROM_PORT 9100
/* Series of a source that stops updating them are dropped after this many
 * seconds (key series-expiry; 0 = never). */
#define DTS_DEFAULT_SERIES_EXPIRY 300
/* Memory budget of app series (keys app-series-limit and
 * app-series-per-source-limit). */
#define DTS_DEFAULT_APP_SERIES 200000
#define DTS_DEFAULT_APP_SERIES_PER_SOURCE 100000
/* Largest dts_config.ini / .yaml read; must be a regular file too (a
 * FIFO or /dev/zero as config is refused with a message, never read). */
#define DTS_CONFIG_MAX_FILE (4 * 1024 * 1024)

/* Options that come from the command line, not the file. */
struct daemon;

struct dts_runtime {
    const char *config_dir; /* --config-dir */
    const char *sysfs_root; /* --sysfs-root ("/sys") */
    const char *ipc_dir;    /* --ipc-dir (NULL = key or default) */
    struct daemon *daemon;  /* health state for /healthz, /readyz; or NULL */
};

/* Components of the sysfs provider (DOCA's names; sysfs.component.<c>,
 * enable-provider=sysfs.<c>, disable-provider=sysfs.<c>). */
enum {
    DTS_SYSFS_ETH = 1,          /* eth: class/net statistics */
    DTS_SYSFS_IB_PORT = 2,      /* ib_port: IB port counters */
    DTS_SYSFS_IB_HW = 4,        /* ib_hw (hw_port): IB hw_counters */
    DTS_SYSFS_HWMON = 8,        /* hwmon: sensors */
    DTS_SYSFS_IB_MR_CACHE = 16, /* ib_mr_cache: not available here */
    DTS_SYSFS_BF_PTM = 32,      /* bf_ptm: BlueField-3 power/thermal, not
                                * available here; off by default */
};
/* DOCA: every component except bf_ptm is on when sysfs is enabled. */
#define DTS_SYSFS_DEFAULT                                                    \
    (DTS_SYSFS_ETH | DTS_SYSFS_IB_PORT | DTS_SYSFS_IB_HW | DTS_SYSFS_HWMON | \
     DTS_SYSFS_IB_MR_CACHE)
/* The component bit called name (DOCA's spelling or alias), or 0. */
unsigned dts_config_sysfs_component(const char *name);

/* sysfs.component.<hca-device>=<list>: the IB components read for one
 * InfiniBand device. */
struct dts_sysfs_dev {
    char *device;  /* e.g. mlx5_0 */
    unsigned mask; /* DTS_SYSFS_IB_* bits */
};

/* A Fluent Forward destination beyond the first (fwd_host/port/tag). */
struct dts_fwd_dest {
    char *host;    /* target host */
    uint16_t port; /* target port */
    char *tag;     /* tag of the records sent there */
};
/* At most this many Forward destinations in all. */
#define DTS_MAX_FWD 16

/* A parsed, validated configuration. */
struct dts_config {
    char *path;          /* the file it came from */
    long update_ms;      /* collection period */
    size_t n_providers;  /* enabled providers (data + aggregators) */
    char **providers;    /* canonical names, file order, no duplicates */
    char *prometheus;    /* endpoint URL or NULL (no HTTP server) */
    char *prom_address;  /* host part of prometheus */
    uint16_t prom_port;  /* port part of prometheus */
    char *include_names; /* comma list or NULL */
    char *exclude_names; /* comma list or NULL */
    enum dts_name_match name_match;   /* how names match */
    char *level_labels_file;          /* path or NULL */
    char *output;                     /* data-file dir or NULL */
    uint64_t data_file_size_limit;    /* bytes */
    unsigned data_file_time_limit;    /* seconds */
    char *fluentbit_config_dir;       /* .exp dir or NULL */
    bool fwd_enable;                  /* Fluent Forward output on */
    char *fwd_host;                   /* Forward target host */
    uint16_t fwd_port;                /* Forward target port */
    char *fwd_tag;                    /* Forward tag */
    bool fwd_require_ack;             /* ask the peer for acks */
    unsigned fwd_buffer_records;      /* client queue bound (0 = default) */
    size_t n_fwd_more;                /* further Forward destinations */
    struct dts_fwd_dest *fwd_more;    /* (one per extra .exp file) */
    char *netflow_host;               /* collector or NULL */
    uint16_t netflow_port;            /* collector UDP port */
    int netflow_version;              /* 9 or 10 */
    size_t n_prom_aggr;               /* prometheus_aggr endpoints */
    char **prom_aggr;                 /* endpoint URLs */
    char *fluent_aggr_address;        /* listener address */
    uint16_t fluent_aggr_port;        /* listener port */
    char *fluent_aggr_shared_key;     /* Forward handshake key or NULL */
    char *fluent_aggr_hostname;       /* our name in PONG, NULL = host's */
    char *ipc_dir;                    /* IPC socket directory */
    unsigned ipc_mode;                /* socket file mode (default 0660) */
    unsigned series_expiry_s;         /* drop stale app/Forward series */
    size_t app_max_series;            /* app series, all sources */
    size_t app_max_series_per_source; /* app series of one source */
    long ipc_gid;                     /* socket file group, -1 = unchanged */
    char *sysfs_root;                 /* copy of the runtime option */
    unsigned sysfs_components;        /* DTS_SYSFS_* bits in force */
    size_t n_sysfs_devs;              /* per-device component lists */
    struct dts_sysfs_dev *sysfs_devs;
    enum dts_naming naming;       /* metric-naming */
    bool exit_on_plugin_error;    /* exit-on-plugin-load-error: a provider
                                * that cannot start at start-up stops dts
                                * (exit 1) */
    char *cset_dir, *fset_dir;    /* prometheus-cset-dir, -fset-dir */
    char *prom_indexes;           /* prometheus-indexes */
    char *prom_fset_indexes;      /* prometheus-fset-indexes */
    char *prom_fset_indexes_file; /* prometheus-fset-indexes-file */
    char *prom_ignore_names;      /* prometheus-ignore-names */
    char *prom_ignore_tags;       /* prometheus-ignore-tagss */
    struct dts_view *view;        /* built from the keys above; the
                                       * daemon takes it (may be NULL) */
    size_t n_warnings;            /* keys that cannot take effect here */
    char **warnings;              /* (logged at warn level) */
    size_t n_notes;               /* non-fatal remarks for the log */
    char **notes;                 /* "line 7: key x not implemented" */
};

/* Parse config text (ini form). name is used in messages. NULL with err
 * naming the line and key on a syntax or value error. */
struct dts_config *dts_config_parse_ini(const char *text, size_t len,
                                        const char *name,
                                        const struct dts_runtime *rt,
                                        struct dpf_error *err);
/* Load <config_dir>/dts_config.ini, else <config_dir>/dts_config.yaml
 * (DPF configMapData form). NULL with err set (404 when neither exists). */
struct dts_config *dts_config_load(const struct dts_runtime *rt,
                                   struct dpf_error *err);
void dts_config_free(struct dts_config *c);
/* True if c enables provider name. */
bool dts_config_has_provider(const struct dts_config *c, const char *name);
/* Canonical provider name ("prometheus-aggr" -> "prometheus_aggr"), or
 * NULL if unknown. */
const char *dts_config_provider_canon(const char *name);

/* telemetry-init: if config_dir holds neither config file, create the
 * directory and write the default dts_config.ini. 1 if written, 0 if a
 * config exists, -errno on failure. */
int dts_config_init_default(const char *config_dir);
/* The default file's text (static). */
const char *dts_config_default_text(void);

#endif
