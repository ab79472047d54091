/* dts-view: what the Prometheus endpoint shows of the model — the naming
 * mode, DOCA's counter sets (.cset) and field sets (.fset), the index
 * (label) selection and the ignore lists of dts_config.ini.
 *
 *   metric-naming=dts|doca        node_exporter-style names (dts_..._total)
 *                                 or the counters' own names (DOCA's)
 *   prometheus-cset-dir=DIR       <name>.cset files: counter-name tokens
 *   prometheus-fset-dir=DIR       <name>.fset files: field (label) tokens
 *   prometheus-indexes=LIST       labels every series keeps (others drop)
 *   prometheus-fset-indexes=LIST  labels an fset view keeps besides its
 *   (or -fset-indexes-file=PATH)  fields
 *   prometheus-ignore-names=LIST  counters never exported
 *   prometheus-ignore-tagss=LIST  app source tags never exported
 *
 * A token (a .cset/.fset line, a list item) is a POSIX extended regular
 * expression searched anywhere in the name, so `rx_bytes` matches
 * `rx_bytes` and `dts_net_rx_bytes_total` and `^id$` only `id`; `@name`
 * is the exact name. Files: `#` starts a comment line, blank lines are
 * skipped; regular files of at most DTS_SET_MAX_FILE bytes, at most
 * DTS_SET_MAX_TOKENS tokens of DTS_SET_MAX_TOKEN bytes; at most
 * DTS_SET_MAX_FILES files per directory.
 *
 * Ownership: dts_view_load() returns a view the caller frees with
 * dts_view_free() (the model takes it over, see dts_model_set_view()).
 * A view is read-only after loading and may be read by any thread. */
#ifndef DTS_VIEW_H
#define DTS_VIEW_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/base/error.h"

#define DTS_SET_MAX_FILE (1024 * 1024)
#define DTS_SET_MAX_TOKENS 10000
#define DTS_SET_MAX_TOKEN 1024
#define DTS_SET_MAX_FILES 256

/* Metric naming of provider counters. */
enum dts_naming {
    DTS_NAMING_DTS = 0,  /* dts_<provider>_<counter>_total (default) */
    DTS_NAMING_DOCA = 1, /* <counter> with a provider label */
};

/* Output formats of the endpoint. */
enum dts_view_format {
    DTS_FMT_PROM = 0, /* text exposition 0.0.4 */
    DTS_FMT_JSON = 1, /* {"timestamp":..,"metrics":[..]} */
    DTS_FMT_CSV = 2,  /* metric,value,labels */
};

struct dts_tokens;

/* Parse a token file's text (one token per line). name is used in
 * messages ("<name>:<line>: ..."). NULL with err set on a bad regex, a
 * NUL byte or a limit exceeded. */
struct dts_tokens *dts_tokens_parse(const char *text, size_t len,
                                    const char *name, struct dpf_error *err);
/* Parse a comma list (a config value) the same way. */
struct dts_tokens *dts_tokens_parse_list(const char *list, const char *name,
                                         struct dpf_error *err);
/* True if one token matches s. */
bool dts_tokens_match(const struct dts_tokens *t, const char *s);
size_t dts_tokens_count(const struct dts_tokens *t);
void dts_tokens_free(struct dts_tokens *t);

/* One named set: a <name>.cset and/or a <name>.fset. */
struct dts_view_set {
    char *name;              /* file name without extension */
    struct dts_tokens *cset; /* counter tokens or NULL */
    struct dts_tokens *fset; /* field tokens or NULL */
};

struct dts_view {
    enum dts_naming naming;
    struct dts_tokens *indexes;      /* labels kept on every series */
    struct dts_tokens *fset_indexes; /* labels kept in fset views */
    struct dts_tokens *ignore_names; /* counters never exported */
    struct dts_tokens *ignore_tags;  /* source_tag values never exported */
    size_t n_sets;
    struct dts_view_set *sets; /* sorted by name */
};

/* Settings the view is built from (strings borrowed). */
struct dts_view_settings {
    enum dts_naming naming;
    const char *cset_dir;          /* or NULL */
    const char *fset_dir;          /* or NULL */
    const char *indexes;           /* comma list or NULL */
    const char *fset_indexes;      /* comma list or NULL */
    const char *fset_indexes_file; /* or NULL */
    const char *ignore_names;      /* comma list or NULL */
    const char *ignore_tags;       /* comma list or NULL */
};

/* Build a view: read the set directories and files. NULL with err naming
 * the file (and line) on any error. A missing directory is an error too:
 * a filtered deployment must not silently export everything. */
struct dts_view *dts_view_load(const struct dts_view_settings *s,
                               struct dpf_error *err);
void dts_view_free(struct dts_view *v);
/* The set called name, or NULL. */
const struct dts_view_set *dts_view_find(const struct dts_view *v,
                                         const char *name);

/* The name DOCA's consumers use for a dts family name (the counter's own
 * name: dts_ethtool_tx_packets_phy_total -> tx_packets_phy,
 * dts_ib_hw_rp_cnp_handled_total -> hw_rp_cnp_handled), written to buf;
 * NULL if the family has no DOCA name (dts's own status series, tc,
 * ifconfig, hwmon) and keeps its dts name. */
const char *dts_view_doca_name(const char *name, char *buf, size_t size);
/* The factor from a dts family's unit to its DOCA name's (nvidia-smi
 * reports percent and MiB where dts has ratios and bytes); 1 otherwise. */
double dts_view_doca_scale(const char *name);

#endif
