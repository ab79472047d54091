/* dts-config: see dts-config.h. Keys are handled through one table (key,
 * handler); the DPF YAML form is flattened into the same key=value
 * entries and goes through the same table, so both forms validate alike. */
#include "dts/dts-config.h"

#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <dirent.h>
#include <sys/stat.h>

#include "lib/base/ini.h"
#include "lib/base/util.h"
#include "lib/codecs/yamljson.h"

/* Provider names we know, canonical first. */
static const struct {
    const char *alias;
    const char *canon;
} dts_provider_names[] = {
    {"sysfs", "sysfs"},
    {"ethtool", "ethtool"},
    {"tc", "tc"},
    {"ifconfig", "ifconfig"},
    {"prometheus_aggr", "prometheus_aggr"},
    {"prometheus-aggr", "prometheus_aggr"},
    {"fluent_aggr", "fluent_aggr"},
    {"fluent-aggr", "fluent_aggr"},
    {"nvidia-smi", "nvidia-smi"},
    {"nvidia_smi", "nvidia-smi"},
    {"dcgm", "dcgm"},
    /* DOCA providers that need BlueField hardware: accepted, reported as
     * not available at run time. */
    {"amber", "amber"},
    {"ppcc_eth", "ppcc_eth"},
    {"bfperf", "bfperf"},
    {"vnic", "vnic"},
    {"rdma_notifications", "rdma_notifications"},
    {"diagnostic_data", "diagnostic_data"},
    {"diagnostic_data_low_freq", "diagnostic_data_low_freq"},
    {"hcaperf", "hcaperf"},
    {"ngauge", "ngauge"},
};

const char *
dts_config_provider_canon(const char *name)
{
    /* DOCA's remote collection "grpc.<provider>" keeps its name: it is
     * reported not available (no gRPC collection here). */
    if (str_has_prefix(name, "grpc.") && dts_config_provider_canon(name + 5)) {
        return name;
    }
    for (size_t i = 0; i < ARRAY_SIZE(dts_provider_names); i++) {
        if (strcmp(dts_provider_names[i].alias, name) == 0) {
            return dts_provider_names[i].canon;
        }
    }
    return NULL;
}

/* Keys DOCA documents that we accept without acting on them. */
static const char *const dts_ignored_keys[] = {
    "sync-time-limit",
    "counter-buffer-size",
    "event-buffer-size",
    "pedantic",
    "data-template",
    "data-events-template",
    "schema-path",
    "collect-on-idle",
    "standalone",
    "spread-workload",
    "idle-time-limit",
    "comm-time-limit",
    "port",
    "run-over-tcp",
    "sr-connect-dev",
    "sr-suffix",
    "runtime-configuration-folder",
    "exporters-dir",
    "metadata-file",
    "influx-key",
    "influx-db",
    "influx-bulk",
    "influx-min-reconnect",
    "influx-max-reconnect",
    "open-telemetry-ca-file",
    "open-telemetry-field-set",
    "open-telemetry-counter-set",
    "open-telemetry-transport",
    /* CollectX engine options DOCA's DTS inherits */
    "daemon",
    "logfile",
    "stats",
    "verbose",
    "extra",
    "exit-after-schema-write",
    "mlnx.device-name",
    "nvidia-smi-max-processes",
    "nvidia-smi-xid-logfile",
    "python-import-app-id",
    "python-import-num-scripts",
    "python-import-config-dir",
    "dcgm-events-monitor-period",
    "dcgm-events-profile-period",
    "dcgm-events-static-period",
    "dcgm-events-enable-common-fields",
    "dcgm-events-enable-ecc-fields",
    "dcgm-events-enable-gpu-fields",
    "dcgm-events-enable-nvlink-fields",
    "dcgm-events-enable-nvswitch-fields",
    "dcgm-events-enable-prof-fields",
    "dcgm-events-enable-vgpu-fields",
};

/* DOCA keys for outputs this build does not have: an operator relying on
 * them (HTTPS, OpenTelemetry, InfluxDB, diagnostic data) is warned. */
static const struct {
    const char *key;
    const char *why;
} dts_unavailable_keys[] = {
    {"prometheus-cert", "no TLS on the Prometheus endpoint (plain HTTP)"},
    {"prometheus-key", "no TLS on the Prometheus endpoint (plain HTTP)"},
    {"open-telemetry-receiver", "no OpenTelemetry exporter"},
    {"influx", "no InfluxDB exporter"},
    {"diagnostic-data-yml-file",
     "the diagnostic_data provider needs BlueField hardware"},
};

/* Parsing state: the config being built plus enable/disable bookkeeping. */
struct dts_cfg_build {
    struct dts_config *c;
    const char *name; /* source name for messages */
    size_t n_disabled;
    char **disabled;
    bool providers_set;      /* an explicit list replaces the sysfs default */
    bool exp_fwd;            /* a forward .exp set the main destination */
    unsigned sysfs_explicit; /* components the file turned on by name */
    size_t include_lc[2], exclude_lc[2]; /* length, capacity of the lists */
    struct dpf_error *err;
};

static void
dts_strv_push(char ***v, size_t *n, const char *s)
{
    *v = xrealloc(*v, (*n + 1) * sizeof **v);
    (*v)[(*n)++] = xstrdup(s);
}

static void
dts_strv_free(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

static bool
dts_strv_has(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(v[i], s) == 0) {
            return true;
        }
    }
    return false;
}

static int dts_cfg_fail(struct dts_cfg_build *b, unsigned line, const char *key,
                        const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void dts_cfg_note(struct dts_cfg_build *b, unsigned line,
                         const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
dts_cfg_fail(struct dts_cfg_build *b, unsigned line, const char *key,
             const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (line) {
        dpf_error_set(b->err, 400, "Invalid", "%s:%u: %s: %s", b->name, line,
                      key, what);
    } else {
        dpf_error_set(b->err, 400, "Invalid", "%s: %s: %s", b->name, key, what);
    }
    dpf_error_add_cause(b->err, DPF_CAUSE_INVALID, key, "%s", what);
    return -EINVAL;
}

static void
dts_cfg_note(struct dts_cfg_build *b, unsigned line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    char *full = line ? xasprintf("line %u: %s", line, msg) : xstrdup(msg);
    free(msg);
    b->c->notes = xrealloc(b->c->notes, (b->c->n_notes + 1) * sizeof(char *));
    b->c->notes[b->c->n_notes++] = full;
}

static void dts_cfg_warn(struct dts_cfg_build *b, unsigned line,
                         const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A key that is valid but cannot take effect on this machine: logged at
 * warn level so it is never silently ignored. */
static void
dts_cfg_warn(struct dts_cfg_build *b, unsigned line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    char *full = line ? xasprintf("line %u: %s", line, msg) : xstrdup(msg);
    free(msg);
    b->c->warnings =
        xrealloc(b->c->warnings, (b->c->n_warnings + 1) * sizeof(char *));
    b->c->warnings[b->c->n_warnings++] = full;
}

static const struct {
    const char *name;
    unsigned bit;
} dts_sysfs_components[] = {
    {"eth", DTS_SYSFS_ETH},
    {"ib_port", DTS_SYSFS_IB_PORT},
    {"ib_hw", DTS_SYSFS_IB_HW},
    {"hw_port", DTS_SYSFS_IB_HW},
    {"hwmon", DTS_SYSFS_HWMON},
    {"ib_mr_cache", DTS_SYSFS_IB_MR_CACHE},
    {"mr_cache", DTS_SYSFS_IB_MR_CACHE},
    {"bf_ptm", DTS_SYSFS_BF_PTM},
};

unsigned
dts_config_sysfs_component(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(dts_sysfs_components); i++) {
        if (!strcmp(dts_sysfs_components[i].name, name)) {
            return dts_sysfs_components[i].bit;
        }
    }
    return 0;
}

static void
dts_set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = (v && *v) ? xstrdup(v) : NULL;
}

/* Append a comma list value to an existing comma list (repeated keys). */
static void
dts_append_list(char **dst, size_t len_cap[2], const char *v)
{
    if (!v || !*v) {
        return;
    }
    /* grown geometrically with length and capacity kept: 30,000
     * include-names lines made copying the whole list per line quadratic
     * (seconds of a blocked loop on reload) */
    size_t old = *dst ? len_cap[0] : 0, add = strlen(v);
    size_t need = old + (*dst ? 1 : 0) + add + 1;
    if (!*dst || need > len_cap[1]) {
        len_cap[1] = DPF_MAX(need, 2 * len_cap[1]);
        *dst = xrealloc(*dst, len_cap[1]);
    }
    if (old == 0) {
        memcpy(*dst, v, add + 1);
        len_cap[0] = add;
        return;
    }
    len_cap[0] = old + 1 + add;
    (*dst)[old] = ',';
    memcpy(*dst + old + 1, v, add + 1);
}

/* Parse "http://host:port[/...]" (scheme optional). */
static int
dts_parse_hostport(const char *v, char **host, uint16_t *port,
                   uint16_t default_port)
{
    const char *p = v;
    if (str_has_prefix(p, "http://")) {
        p += 7;
    } else if (strstr(p, "://")) {
        return -EINVAL;
    }
    const char *end = p + strcspn(p, "/");
    const char *colon = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t) (end - p));
        if (!rb) {
            return -EINVAL;
        }
        *host = xstrndup(p + 1, (size_t) (rb - p - 1));
        colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(p, ':', (size_t) (end - p));
        *host = xstrndup(p, (size_t) ((colon ? colon : end) - p));
    }
    if (!**host) {
        free(*host);
        *host = NULL;
        return -EINVAL;
    }
    *port = default_port;
    if (colon) {
        char *pe;
        long n = strtol(colon + 1, &pe, 10);
        if (pe != end || n < 0 || n > 65535 || pe == colon + 1) {
            free(*host);
            *host = NULL;
            return -EINVAL;
        }
        *port = (uint16_t) n;
    }
    return 0;
}

static int
dts_cfg_provider_list(struct dts_cfg_build *b, unsigned line, const char *key,
                      const char *v, bool enable)
{
    char *copy = xstrdup(v);
    char *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(copy, ", \t", &save); tok;
         tok = strtok_r(NULL, ", \t", &save)) {
        /* DOCA's sysfs components: sysfs.<component>, remote
         * grpc.sysfs.<component> */
        const char *comp = str_has_prefix(tok, "grpc.sysfs.") ? tok + 11
                           : str_has_prefix(tok, "sysfs.")    ? tok + 6
                                                              : NULL;
        if (comp) {
            unsigned bit = dts_config_sysfs_component(comp);
            if (!bit) {
                rc = dts_cfg_fail(b, line, key,
                                  "unknown sysfs component \"%s\" (eth, "
                                  "ib_port, ib_hw, hwmon, ib_mr_cache, bf_ptm)",
                                  comp);
                break;
            }
            if (enable) {
                b->c->sysfs_components |= bit;
                b->sysfs_explicit |= bit;
            } else {
                b->c->sysfs_components &= ~bit;
                b->sysfs_explicit &= ~bit;
            }
            continue;
        }
        const char *canon = dts_config_provider_canon(tok);
        if (!canon) {
            rc = dts_cfg_fail(b, line, key, "unknown provider \"%s\"", tok);
            break;
        }
        if (enable) {
            b->providers_set = true;
            if (!dts_strv_has(b->c->providers, b->c->n_providers, canon)) {
                dts_strv_push(&b->c->providers, &b->c->n_providers, canon);
            }
        } else {
            dts_strv_push(&b->disabled, &b->n_disabled, canon);
        }
    }
    free(copy);
    return rc;
}

static int
dts_cfg_port(struct dts_cfg_build *b, unsigned line, const char *key,
             const char *v, uint16_t *out)
{
    long n;
    if (ini_parse_long(v, 1, 65535, &n) < 0) {
        return dts_cfg_fail(b, line, key,
                            "\"%s\" is not a port number (1-65535)", v);
    }
    *out = (uint16_t) n;
    return 0;
}

/* sysfs.component.<name>=<value>: <name> a component and the value 0/1
 * turns it off/on; otherwise <name> is an InfiniBand device and the value
 * the list of IB components read for it (CollectX's
 * sysfs.component.<hca-device>). */
static int
dts_cfg_sysfs_component(struct dts_cfg_build *b, unsigned line, const char *key,
                        const char *name, const char *v)
{
    struct dts_config *c = b->c;
    unsigned bit = dts_config_sysfs_component(name);
    if (bit) {
        bool on;
        if (ini_parse_bool(v, &on) < 0) {
            return dts_cfg_fail(b, line, key, "\"%s\" is not 0/1", v);
        }
        if (on) {
            c->sysfs_components |= bit;
            b->sysfs_explicit |= bit;
        } else {
            c->sysfs_components &= ~bit;
            b->sysfs_explicit &= ~bit;
        }
        return 0;
    }
    unsigned mask = 0;
    char *copy = xstrdup(v);
    char *save = NULL;
    for (char *tok = strtok_r(copy, ", \t", &save); tok;
         tok = strtok_r(NULL, ", \t", &save)) {
        unsigned cb = dts_config_sysfs_component(tok);
        if (!cb) {
            int rc = dts_cfg_fail(b, line, key,
                                  "unknown sysfs component \"%s\" (ib_port, "
                                  "ib_hw, ib_mr_cache, eth, hwmon)",
                                  tok);
            free(copy);
            return rc;
        }
        mask |= cb;
    }
    free(copy);
    c->sysfs_devs =
        xrealloc(c->sysfs_devs, (c->n_sysfs_devs + 1) * sizeof *c->sysfs_devs);
    c->sysfs_devs[c->n_sysfs_devs].device = xstrdup(name);
    c->sysfs_devs[c->n_sysfs_devs].mask = mask;
    c->n_sysfs_devs++;
    return 0;
}

/* counter-file: DOCA's list of counter names to collect, one per line;
 * the names join include-names (so name-match applies to them too). */
static int
dts_cfg_counter_file(struct dts_cfg_build *b, unsigned line, const char *key,
                     const char *path)
{
    char *data = NULL;
    size_t len = 0;
    int rc = file_read_regular(path, DTS_CONFIG_MAX_FILE, &data, &len);
    if (rc == -EINVAL) {
        return dts_cfg_fail(b, line, key,
                            "%s: not a regular file (FIFOs, devices and "
                            "directories are refused)",
                            path);
    }
    if (rc == -EFBIG) {
        return dts_cfg_fail(b, line, key, "%s: larger than %d bytes", path,
                            DTS_CONFIG_MAX_FILE);
    }
    if (rc < 0) {
        return dts_cfg_fail(b, line, key, "%s: cannot read: %s", path,
                            strerror(-rc));
    }
    if (memchr(data, '\0', len)) {
        free(data);
        return dts_cfg_fail(b, line, key, "%s: NUL byte in the file", path);
    }
    char *save = NULL;
    for (char *l = strtok_r(data, "\n", &save); l;
         l = strtok_r(NULL, "\n", &save)) {
        l += strspn(l, " \t\r");
        size_t n = strcspn(l, " \t\r,#");
        if (n == 0) {
            continue;
        }
        l[n] = '\0';
        dts_append_list(&b->c->include_names, b->include_lc, l);
    }
    free(data);
    return 0;
}

/* Handle one key=value. */
static int
dts_cfg_key(struct dts_cfg_build *b, unsigned line, const char *key,
            const char *v)
{
    struct dts_config *c = b->c;
    long n;
    bool flag;
    if (!strcmp(key, "update")) {
        if (ini_parse_long(v, 10, 3600000, &n) < 0) {
            return dts_cfg_fail(b, line, key,
                                "\"%s\" is not a period in ms (10-3600000)", v);
        }
        c->update_ms = n;
    } else if (!strcmp(key, "enable-provider") || !strcmp(key, "providers") ||
               !strcmp(key, "aggregator-providers") ||
               !strcmp(key, "aggregator_providers")) {
        return dts_cfg_provider_list(b, line, key, v, true);
    } else if (!strcmp(key, "disable-provider")) {
        return dts_cfg_provider_list(b, line, key, v, false);
    } else if (!strcmp(key, "prometheus")) {
        free(c->prom_address);
        c->prom_address = NULL;
        dts_set_str(&c->prometheus, v);
        if (c->prometheus &&
            dts_parse_hostport(v, &c->prom_address, &c->prom_port,
                               DTS_DEFAULT_PROM_PORT) < 0) {
            return dts_cfg_fail(b, line, key,
                                "\"%s\" is not http://<address>:<port>", v);
        }
    } else if (!strcmp(key, "exit-on-plugin-load-error")) {
        if (ini_parse_bool(v, &flag) < 0) {
            return dts_cfg_fail(b, line, key, "\"%s\" is not true/false", v);
        }
        c->exit_on_plugin_error = flag;
    } else if (!strcmp(key, "counter-file")) {
        return dts_cfg_counter_file(b, line, key, v);
    } else if (!strcmp(key, "include-names")) {
        dts_append_list(&c->include_names, b->include_lc, v);
    } else if (!strcmp(key, "exclude-names")) {
        dts_append_list(&c->exclude_names, b->exclude_lc, v);
    } else if (!strcmp(key, "name-match")) {
        if (!strcasecmp(v, "wildcard") || !strcasecmp(v, "glob")) {
            c->name_match = DTS_MATCH_WILDCARD;
        } else if (!strcasecmp(v, "exact")) {
            c->name_match = DTS_MATCH_EXACT;
        } else if (!strcasecmp(v, "regex") || !strcasecmp(v, "regexp")) {
            c->name_match = DTS_MATCH_REGEX;
        } else if (!strcmp(v, "0") || !strcmp(v, "1") || !strcmp(v, "2")) {
            /* DOCA's numeric form, in the order its guide lists the modes
             * (exact, wildcard, regexp) */
            c->name_match = v[0] == '0'   ? DTS_MATCH_EXACT
                            : v[0] == '1' ? DTS_MATCH_WILDCARD
                                          : DTS_MATCH_REGEX;
        } else {
            return dts_cfg_fail(b, line, key,
                                "\"%s\" is not exact, wildcard or regex", v);
        }
    } else if (!strcmp(key, "level-labels-file")) {
        dts_set_str(&c->level_labels_file, v);
    } else if (!strcmp(key, "output")) {
        dts_set_str(&c->output, v);
    } else if (!strcmp(key, "data-file-size-limit")) {
        /* DOCA's unit is megabytes ("128"); a suffix B, K(B), M(B), G(B)
         * gives another unit (ours, e.g. "20000B" in tests) */
        char *end;
        errno = 0;
        unsigned long long nv = strtoull(v, &end, 10);
        unsigned long long mult = 1024 * 1024;
        if (!strcasecmp(end, "b")) {
            mult = 1;
        } else if (!strcasecmp(end, "k") || !strcasecmp(end, "kb")) {
            mult = 1024;
        } else if (!strcasecmp(end, "g") || !strcasecmp(end, "gb")) {
            mult = 1024ull * 1024 * 1024;
        } else if (*end && strcasecmp(end, "m") && strcasecmp(end, "mb")) {
            mult = 0;
        }
        if (end == v || errno || mult == 0 || nv > (1ull << 50) / mult ||
            nv * mult < 4096) {
            return dts_cfg_fail(b, line, key,
                                "\"%s\" is not a size: megabytes (DOCA), or a "
                                "number with B, K, M or G; at least 4096 bytes",
                                v);
        }
        c->data_file_size_limit = (uint64_t) (nv * mult);
    } else if (!strcmp(key, "data-file-time-limit")) {
        if (ini_parse_long(v, 1, 31 * 86400, &n) < 0) {
            return dts_cfg_fail(b, line, key, "\"%s\" is not a time in seconds",
                                v);
        }
        c->data_file_time_limit = (unsigned) n;
    } else if (!strcmp(key, "fluentbit-config-dir")) {
        dts_set_str(&c->fluentbit_config_dir, v);
    } else if (!strcmp(key, "netflow-collector-ip") ||
               !strcmp(key, "netflow-collector-addr")) {
        dts_set_str(&c->netflow_host, v);
    } else if (!strcmp(key, "netflow-collector-port")) {
        return dts_cfg_port(b, line, key, v, &c->netflow_port);
    } else if (!strcmp(key, "netflow-version")) {
        if (ini_parse_long(v, 9, 10, &n) < 0) {
            return dts_cfg_fail(b, line, key, "\"%s\" is not 9 or 10", v);
        }
        c->netflow_version = (int) n;
    } else if (str_has_prefix(key, "prometheus-aggr-endpoint.") ||
               !strcmp(key, "prometheus-aggr-endpoint")) {
        /* DOCA's spelling: one URL per numbered key */
        if (!str_has_prefix(v, "http://")) {
            return dts_cfg_fail(b, line, key, "\"%s\" is not an http:// URL",
                                v);
        }
        dts_strv_push(&c->prom_aggr, &c->n_prom_aggr, v);
    } else if (!strcmp(key, "prometheus-aggr-endpoints")) {
        char *copy = xstrdup(v);
        char *save = NULL;
        for (char *tok = strtok_r(copy, ", \t", &save); tok;
             tok = strtok_r(NULL, ", \t", &save)) {
            if (!str_has_prefix(tok, "http://")) {
                int rc = dts_cfg_fail(b, line, key,
                                      "\"%s\" is not an http:// URL", tok);
                free(copy);
                return rc;
            }
            dts_strv_push(&c->prom_aggr, &c->n_prom_aggr, tok);
        }
        free(copy);
    } else if (!strcmp(key, "metric-naming")) {
        if (!strcasecmp(v, "dts") || !strcasecmp(v, "prometheus")) {
            c->naming = DTS_NAMING_DTS;
        } else if (!strcasecmp(v, "doca")) {
            c->naming = DTS_NAMING_DOCA;
        } else {
            return dts_cfg_fail(b, line, key, "\"%s\" is not dts or doca", v);
        }
    } else if (!strcmp(key, "prometheus-cset-dir")) {
        dts_set_str(&c->cset_dir, v);
    } else if (!strcmp(key, "prometheus-fset-dir")) {
        dts_set_str(&c->fset_dir, v);
    } else if (!strcmp(key, "prometheus-indexes")) {
        dts_set_str(&c->prom_indexes, v);
    } else if (!strcmp(key, "prometheus-fset-indexes")) {
        dts_set_str(&c->prom_fset_indexes, v);
    } else if (!strcmp(key, "prometheus-fset-indexes-file")) {
        dts_set_str(&c->prom_fset_indexes_file, v);
    } else if (!strcmp(key, "prometheus-ignore-names")) {
        dts_set_str(&c->prom_ignore_names, v);
    } else if (!strcmp(key, "prometheus-ignore-tagss") ||
               !strcmp(key, "prometheus-ignore-tags")) {
        dts_set_str(&c->prom_ignore_tags, v);
    } else if (str_has_prefix(key, "sysfs.component.") && key[16]) {
        return dts_cfg_sysfs_component(b, line, key, key + 16, v);
    } else if ((str_has_prefix(key, "hcaperf.") && key[8]) ||
               (str_has_prefix(key, "grpc.hcaperf.") && key[13])) {
        /* hcaperf.<ib-device>=init|sample|ignore (DOCA's enum) */
        if (strcmp(v, "init") && strcmp(v, "sample") && strcmp(v, "ignore")) {
            return dts_cfg_fail(b, line, key,
                                "\"%s\" is not init, sample or ignore", v);
        }
        dts_cfg_warn(b, line,
                     "%s=%s has no effect: the hcaperf provider (HCA "
                     "performance counters through DOCA's privileged "
                     "executer) is not available here",
                     key, v);
    } else if (!strcmp(key, "fluent-aggr-address")) {
        dts_set_str(&c->fluent_aggr_address, v);
    } else if (!strcmp(key, "fluent-aggr-shared-key")) {
        dts_set_str(&c->fluent_aggr_shared_key, v);
    } else if (!strcmp(key, "fluent-aggr-self-hostname")) {
        dts_set_str(&c->fluent_aggr_hostname, v);
    } else if (!strcmp(key, "fluent-aggr-port")) {
        return dts_cfg_port(b, line, key, v, &c->fluent_aggr_port);
    } else if (!strcmp(key, "ipc-sockets-dir")) {
        dts_set_str(&c->ipc_dir, v);
    } else if (!strcmp(key, "series-expiry")) {
        if (ini_parse_long(v, 0, 31 * 86400, &n) < 0) {
            return dts_cfg_fail(
                b, line, key, "\"%s\" is not a time in seconds (0 = never)", v);
        }
        c->series_expiry_s = (unsigned) n;
    } else if (!strcmp(key, "app-series-limit") ||
               !strcmp(key, "app-series-per-source-limit")) {
        if (ini_parse_long(v, 1, 10000000, &n) < 0) {
            return dts_cfg_fail(b, line, key,
                                "\"%s\" is not a count in 1..10000000", v);
        }
        if (!strcmp(key, "app-series-limit")) {
            c->app_max_series = (size_t) n;
        } else {
            c->app_max_series_per_source = (size_t) n;
        }
    } else if (!strcmp(key, "ipc-socket-mode")) {
        char *end;
        unsigned long m = strtoul(v, &end, 8);
        if (!*v || *end || m > 0777 || !(m & 0600)) {
            return dts_cfg_fail(b, line, key,
                                "\"%s\" is not an octal mode 0600..0777 "
                                "(the owner must read and write)",
                                v);
        }
        c->ipc_mode = (unsigned) m;
    } else if (!strcmp(key, "ipc-socket-group")) {
        char *end;
        long gid = strtol(v, &end, 10);
        if (!*v || *end) {
            struct group *g = getgrnam(v);
            if (!g) {
                return dts_cfg_fail(b, line, key, "no group named \"%s\"", v);
            }
            gid = (long) g->gr_gid;
        } else if (gid < 0) {
            return dts_cfg_fail(b, line, key, "\"%s\" is not a group", v);
        }
        c->ipc_gid = gid;
    } else if (!strcmp(key, "fluent-forward-enable")) {
        if (ini_parse_bool(v, &flag) < 0) {
            return dts_cfg_fail(b, line, key, "\"%s\" is not 0/1", v);
        }
        c->fwd_enable = flag;
    } else if (!strcmp(key, "fluent-forward-host")) {
        dts_set_str(&c->fwd_host, v);
    } else if (!strcmp(key, "fluent-forward-port")) {
        return dts_cfg_port(b, line, key, v, &c->fwd_port);
    } else if (!strcmp(key, "fluent-forward-tag")) {
        dts_set_str(&c->fwd_tag, v);
    } else if (!strcmp(key, "fluent-forward-require-ack")) {
        if (ini_parse_bool(v, &flag) < 0) {
            return dts_cfg_fail(b, line, key, "\"%s\" is not 0/1", v);
        }
        c->fwd_require_ack = flag;
    } else if (!strcmp(key, "fluent-forward-buffer-records")) {
        char *end;
        unsigned long cnt = strtoul(v, &end, 10);
        if (*end || cnt == 0 || cnt > 10000000) {
            return dts_cfg_fail(b, line, key,
                                "\"%s\" is not a count in 1..10000000", v);
        }
        c->fwd_buffer_records = (unsigned) cnt;
    } else {
        for (size_t i = 0; i < ARRAY_SIZE(dts_unavailable_keys); i++) {
            if (!strcmp(key, dts_unavailable_keys[i].key)) {
                dts_cfg_warn(b, line, "%s has no effect: %s", key,
                             dts_unavailable_keys[i].why);
                return 0;
            }
        }
        for (size_t i = 0; i < ARRAY_SIZE(dts_ignored_keys); i++) {
            if (!strcmp(key, dts_ignored_keys[i])) {
                dts_cfg_note(b, line, "key %s is accepted but not implemented",
                             key);
                return 0;
            }
        }
        dts_cfg_note(b, line, "unknown key %s ignored", key);
    }
    return 0;
}

static struct dts_config *
dts_cfg_new(const char *name, const struct dts_runtime *rt)
{
    struct dts_config *c = xcalloc(1, sizeof *c);
    c->path = xstrdup(name);
    c->update_ms = DTS_DEFAULT_UPDATE_MS;
    c->name_match = DTS_MATCH_WILDCARD;
    c->data_file_size_limit = 128ull * 1024 * 1024;
    c->data_file_time_limit = 1800;
    c->fwd_port = 24224;
    c->fwd_tag = xstrdup("doca_telemetry");
    c->netflow_version = 9;
    c->fluent_aggr_port = 42442;
    c->ipc_mode = 0660;
    c->series_expiry_s = DTS_DEFAULT_SERIES_EXPIRY;
    c->app_max_series = DTS_DEFAULT_APP_SERIES;
    c->app_max_series_per_source = DTS_DEFAULT_APP_SERIES_PER_SOURCE;
    c->ipc_gid = -1;
    c->sysfs_root = xstrdup(rt && rt->sysfs_root ? rt->sysfs_root : "/sys");
    c->sysfs_components = DTS_SYSFS_DEFAULT;
    return c;
}

static int
dts_exp_filter(const struct dirent *d)
{
    return str_has_suffix(d->d_name, ".exp") && d->d_name[0] != '.';
}

/* Fluent Bit export files: each *.exp is an ini file naming an output
 * plugin (`plugin_name` or `name`), whether it is on (`enable`) and its
 * target. We implement the forward plugin; others are noted. */
static int
dts_cfg_load_exp(struct dts_cfg_build *b)
{
    struct dts_config *c = b->c;
    struct dirent **ents;
    int n = scandir(c->fluentbit_config_dir, &ents, dts_exp_filter, alphasort);
    if (n < 0) {
        dts_cfg_note(b, 0, "fluentbit-config-dir %s: %s",
                     c->fluentbit_config_dir, strerror(errno));
        return 0;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char *path =
            xasprintf("%s/%s", c->fluentbit_config_dir, ents[i]->d_name);
        free(ents[i]);
        if (rc < 0) {
            free(path);
            continue;
        }
        struct ini *ini = ini_load(path, b->err);
        if (!ini) {
            rc = -EINVAL;
            free(path);
            continue;
        }
        const char *plugin = ini_get(ini, "", "plugin_name");
        if (!plugin) {
            plugin = ini_get(ini, "", "name");
        }
        const char *en = ini_get(ini, "", "enable");
        bool on = true;
        if (en && ini_parse_bool(en, &on) < 0) {
            const struct ini_entry *e = ini_find(ini, "", "enable");
            dpf_error_set(b->err, 400, "Invalid",
                          "%s:%u: enable: \"%s\" is "
                          "not 0/1",
                          path, e->line, en);
            rc = -EINVAL;
        } else if (on && plugin && !strcmp(plugin, "forward")) {
            const char *host = ini_get(ini, "", "host");
            const char *port = ini_get(ini, "", "port");
            const char *tag = ini_get(ini, "", "tag");
            long p = 24224;
            if (port && ini_parse_long(port, 1, 65535, &p) < 0) {
                const struct ini_entry *e = ini_find(ini, "", "port");
                dpf_error_set(b->err, 400, "Invalid",
                              "%s:%u: port: \"%s\" is not a port number", path,
                              e->line, port);
                rc = -EINVAL;
            } else if (!b->exp_fwd) {
                /* the first forward .exp is the main destination */
                b->exp_fwd = true;
                c->fwd_enable = true;
                dts_set_str(&c->fwd_host, host ? host : "127.0.0.1");
                c->fwd_port = (uint16_t) p;
                if (tag && *tag) {
                    dts_set_str(&c->fwd_tag, tag);
                }
            } else if (c->n_fwd_more + 1 >= DTS_MAX_FWD) {
                dpf_error_set(b->err, 400, "Invalid",
                              "%s: more than %d Forward destinations", path,
                              DTS_MAX_FWD);
                rc = -EINVAL;
            } else {
                /* each further one is sent the same records too */
                c->fwd_more = xrealloc(c->fwd_more, (c->n_fwd_more + 1) *
                                                        sizeof *c->fwd_more);
                struct dts_fwd_dest *dd = &c->fwd_more[c->n_fwd_more++];
                dd->host = xstrdup(host ? host : "127.0.0.1");
                dd->port = (uint16_t) p;
                dd->tag = xstrdup(tag && *tag ? tag : "doca_telemetry");
            }
        } else if (on) {
            dts_cfg_note(b, 0, "%s: output plugin %s not implemented", path,
                         plugin ? plugin : "(unnamed)");
        }
        ini_free(ini);
        free(path);
    }
    free(ents);
    return rc;
}

/* Defaults that depend on what was read; validation across keys. */
static int
dts_cfg_finish(struct dts_cfg_build *b, const struct dts_runtime *rt)
{
    struct dts_config *c = b->c;
    if (!b->providers_set) {
        dts_strv_push(&c->providers, &c->n_providers, "sysfs");
    }
    for (size_t i = 0; i < b->n_disabled; i++) {
        for (size_t j = 0; j < c->n_providers; j++) {
            if (!strcmp(c->providers[j], b->disabled[i])) {
                free(c->providers[j]);
                memmove(&c->providers[j], &c->providers[j + 1],
                        (c->n_providers - j - 1) * sizeof(char *));
                c->n_providers--;
                break;
            }
        }
    }
    if (!c->fluent_aggr_address) {
        c->fluent_aggr_address = xstrdup("127.0.0.1");
    }
    if (rt && rt->ipc_dir) {
        dts_set_str(&c->ipc_dir, rt->ipc_dir);
    }
    if (!c->ipc_dir && rt && rt->config_dir) {
        /* DOCA layout: <telemetry>/config next to <telemetry>/ipc_sockets */
        char *dir = xstrdup(rt->config_dir);
        size_t len = strlen(dir);
        while (len > 1 && dir[len - 1] == '/') {
            dir[--len] = '\0';
        }
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = '\0';
            c->ipc_dir = xasprintf("%s/ipc_sockets", dir);
        } else {
            c->ipc_dir = xstrdup(slash ? "/ipc_sockets" : "ipc_sockets");
        }
        free(dir);
    }
    if (c->fluentbit_config_dir && dts_cfg_load_exp(b) < 0) {
        return -EINVAL;
    }
    if (c->netflow_host && !c->netflow_port) {
        return dts_cfg_fail(b, 0, "netflow-collector-port",
                            "required when netflow-collector-ip is set (%s)",
                            c->netflow_host);
    }
    if (c->fwd_enable && !c->fwd_host) {
        return dts_cfg_fail(b, 0, "fluent-forward-host",
                            "required when forwarding is enabled%s", "");
    }
    struct dpf_error ferr;
    dpf_error_clear(&ferr);
    struct dts_filter *f = dts_filter_create(c->include_names, c->exclude_names,
                                             c->name_match, &ferr);
    if (!f) {
        dpf_error_set(b->err, 400, "Invalid", "%s: %s", b->name, ferr.message);
        return -EINVAL;
    }
    dts_filter_free(f);
    static const struct {
        unsigned bit;
        const char *name, *why;
    } unavailable[] = {
        {DTS_SYSFS_IB_MR_CACHE, "ib_mr_cache",
         "the mlx5 MR cache counters are not in sysfs"},
        {DTS_SYSFS_BF_PTM, "bf_ptm",
         "BlueField-3 power/thermal counters need the mlxbf-ptm module and "
         "DOCA's privileged executer"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(unavailable); i++) {
        if (b->sysfs_explicit & c->sysfs_components & unavailable[i].bit) {
            dts_cfg_warn(b, 0, "sysfs component %s is not available here: %s",
                         unavailable[i].name, unavailable[i].why);
        }
    }
    struct dts_view_settings vs = {
        .naming = c->naming,
        .cset_dir = c->cset_dir,
        .fset_dir = c->fset_dir,
        .indexes = c->prom_indexes,
        .fset_indexes = c->prom_fset_indexes,
        .fset_indexes_file = c->prom_fset_indexes_file,
        .ignore_names = c->prom_ignore_names,
        .ignore_tags = c->prom_ignore_tags,
    };
    dpf_error_clear(&ferr);
    c->view = dts_view_load(&vs, &ferr);
    if (!c->view) {
        dpf_error_set(b->err, 400, "Invalid", "%s: %s", b->name, ferr.message);
        return -EINVAL;
    }
    return 0;
}

struct dts_config *
dts_config_parse_ini(const char *text, size_t len, const char *name,
                     const struct dts_runtime *rt, struct dpf_error *err)
{
    struct ini *ini = ini_parse(text, len, name, err);
    if (!ini) {
        return NULL;
    }
    struct dts_cfg_build b = {
        .c = dts_cfg_new(name, rt), .name = name, .err = err};
    int rc = 0;
    for (size_t i = 0; i < ini->n_entries && rc == 0; i++) {
        const struct ini_entry *e = &ini->entries[i];
        if (e->section[0]) {
            dts_cfg_note(&b, e->line, "key %s inside a [section] ignored",
                         e->key);
            continue;
        }
        rc = dts_cfg_key(&b, e->line, e->key, e->value);
    }
    if (rc == 0) {
        rc = dts_cfg_finish(&b, rt);
    }
    ini_free(ini);
    dts_strv_free(b.disabled, b.n_disabled);
    if (rc < 0) {
        dts_config_free(b.c);
        return NULL;
    }
    return b.c;
}

/* Scalar JSON value as text for the key table. */
static char *
dts_json_scalar(const json_t *v)
{
    if (json_is_string(v)) {
        return xstrdup(json_string_value(v));
    }
    if (json_is_integer(v)) {
        return xasprintf("%lld", (long long) json_integer_value(v));
    }
    if (json_is_real(v)) {
        return xasprintf("%g", json_real_value(v));
    }
    if (json_is_boolean(v)) {
        return xstrdup(json_is_true(v) ? "1" : "0");
    }
    return NULL;
}

static int
dts_cfg_json_key(struct dts_cfg_build *b, const char *key, const json_t *v)
{
    char *s = dts_json_scalar(v);
    if (!s) {
        if (json_is_null(v)) {
            return 0;
        }
        return dts_cfg_fail(b, 0, key, "expected a scalar value%s", "");
    }
    int rc = dts_cfg_key(b, 0, key, s);
    free(s);
    return rc;
}

/* DPF configMapData: providers, aggregator_providers, general.*,
 * prometheus.enable, fluent.forward.*; other scalars are ini keys. */
static int
dts_cfg_from_json(struct dts_cfg_build *b, const json_t *cm)
{
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach((json_t *) cm, key, v)
    {
        if (rc < 0) {
            break;
        }
        if (!strcmp(key, "general") && json_is_object(v)) {
            const char *k2;
            json_t *v2;
            json_object_foreach(v, k2, v2)
            {
                if (rc == 0) {
                    rc = dts_cfg_json_key(b, k2, v2);
                }
            }
        } else if (!strcmp(key, "prometheus") && json_is_object(v)) {
            json_t *en = json_object_get(v, "enable");
            char *s = en ? dts_json_scalar(en) : NULL;
            bool on = false;
            if (s && ini_parse_bool(s, &on) < 0) {
                rc = dts_cfg_fail(b, 0, "prometheus.enable",
                                  "\"%s\" is not 0/1", s);
            }
            free(s);
            if (rc == 0 && on) {
                json_t *port = json_object_get(v, "port");
                char *url = xasprintf("http://0.0.0.0:%lld",
                                      json_is_integer(port)
                                          ? (long long) json_integer_value(port)
                                          : (long long) DTS_DEFAULT_PROM_PORT);
                rc = dts_cfg_key(b, 0, "prometheus", url);
                free(url);
            }
        } else if (!strcmp(key, "fluent") && json_is_object(v)) {
            json_t *fw = json_object_get(v, "forward");
            if (json_is_object(fw)) {
                static const char *const map[][2] = {
                    {"enable", "fluent-forward-enable"},
                    {"host", "fluent-forward-host"},
                    {"port", "fluent-forward-port"},
                    {"tag", "fluent-forward-tag"},
                };
                for (size_t i = 0; i < ARRAY_SIZE(map) && rc == 0; i++) {
                    json_t *x = json_object_get(fw, map[i][0]);
                    if (x) {
                        rc = dts_cfg_json_key(b, map[i][1], x);
                    }
                }
            }
            const char *k2;
            json_t *v2;
            json_object_foreach(v, k2, v2)
            {
                if (strcmp(k2, "forward") && rc == 0) {
                    dts_cfg_note(b, 0, "fluent output %s not implemented", k2);
                }
            }
        } else {
            rc = dts_cfg_json_key(b, key, v);
        }
    }
    return rc;
}

static struct dts_config *
dts_config_parse_yaml(const char *text, size_t len, const char *name,
                      const struct dts_runtime *rt, struct dpf_error *err)
{
    json_t *doc = NULL;
    if (yamljson_parse_one(text, len, &doc, err) < 0) {
        return NULL;
    }
    /* Accept configMapData itself, {configMapData: ...}, or a whole
     * DPUService (spec.helmChart.values.configMapData). */
    const json_t *cm = doc;
    json_t *x = json_object_get(doc, "configMapData");
    if (x) {
        cm = x;
    } else {
        x = json_object_get(
            json_object_get(
                json_object_get(json_object_get(doc, "spec"), "helmChart"),
                "values"),
            "configMapData");
        if (x) {
            cm = x;
        }
    }
    if (!json_is_object(cm)) {
        dpf_error_set(err, 400, "Invalid", "%s: expected a mapping", name);
        json_decref(doc);
        return NULL;
    }
    struct dts_cfg_build b = {
        .c = dts_cfg_new(name, rt), .name = name, .err = err};
    int rc = dts_cfg_from_json(&b, cm);
    if (rc == 0) {
        rc = dts_cfg_finish(&b, rt);
    }
    json_decref(doc);
    dts_strv_free(b.disabled, b.n_disabled);
    if (rc < 0) {
        dts_config_free(b.c);
        return NULL;
    }
    return b.c;
}

struct dts_config *
dts_config_load(const struct dts_runtime *rt, struct dpf_error *err)
{
    const char *dir = rt->config_dir ? rt->config_dir : ".";
    char *path = xasprintf("%s/%s", dir, DTS_CONFIG_FILE);
    char *data = NULL;
    size_t len = 0;
    struct dts_config *c = NULL;
    int rc = file_read_regular(path, DTS_CONFIG_MAX_FILE, &data, &len);
    if (rc == 0) {
        c = dts_config_parse_ini(data, len, path, rt, err);
    } else if (rc == -ENOENT) {
        free(path);
        path = xasprintf("%s/%s", dir, DTS_CONFIG_YAML);
        rc = file_read_regular(path, DTS_CONFIG_MAX_FILE, &data, &len);
        if (rc == 0) {
            c = dts_config_parse_yaml(data, len, path, rt, err);
        } else if (rc == -ENOENT) {
            dpf_error_set(err, 404, "NotFound", "%s: neither %s nor %s exists",
                          dir, DTS_CONFIG_FILE, DTS_CONFIG_YAML);
        }
    }
    if (rc == -EINVAL) {
        dpf_error_set(err, 400, "Invalid",
                      "%s: not a regular file (FIFOs, devices and "
                      "directories are refused)",
                      path);
    } else if (rc == -EFBIG) {
        dpf_error_set(err, 400, "Invalid", "%s: larger than %d bytes", path,
                      DTS_CONFIG_MAX_FILE);
    } else if (rc < 0 && rc != -ENOENT) {
        dpf_error_set(err, 400, "Invalid", "%s: cannot read: %s", path,
                      strerror(-rc));
    }
    free(data);
    free(path);
    return c;
}

void
dts_config_free(struct dts_config *c)
{
    if (!c) {
        return;
    }
    free(c->path);
    dts_strv_free(c->providers, c->n_providers);
    free(c->prometheus);
    free(c->prom_address);
    free(c->include_names);
    free(c->exclude_names);
    free(c->level_labels_file);
    free(c->output);
    free(c->fluentbit_config_dir);
    free(c->fwd_host);
    free(c->fwd_tag);
    for (size_t i = 0; i < c->n_fwd_more; i++) {
        free(c->fwd_more[i].host);
        free(c->fwd_more[i].tag);
    }
    free(c->fwd_more);
    free(c->netflow_host);
    dts_strv_free(c->prom_aggr, c->n_prom_aggr);
    free(c->fluent_aggr_address);
    free(c->fluent_aggr_shared_key);
    free(c->fluent_aggr_hostname);
    free(c->ipc_dir);
    free(c->sysfs_root);
    for (size_t i = 0; i < c->n_sysfs_devs; i++) {
        free(c->sysfs_devs[i].device);
    }
    free(c->sysfs_devs);
    free(c->cset_dir);
    free(c->fset_dir);
    free(c->prom_indexes);
    free(c->prom_fset_indexes);
    free(c->prom_fset_indexes_file);
    free(c->prom_ignore_names);
    free(c->prom_ignore_tags);
    dts_view_free(c->view);
    dts_strv_free(c->warnings, c->n_warnings);
    dts_strv_free(c->notes, c->n_notes);
    free(c);
}

bool
dts_config_has_provider(const struct dts_config *c, const char *name)
{
    return dts_strv_has(c->providers, c->n_providers, name);
}

static const char dts_default_text[] =
    "# DOCA Telemetry Service configuration (written by telemetry-init).\n"
    "# Edit and save: dts applies changes at run time; a file that does\n"
    "# not parse is rejected (see the log) and the running config stays.\n"
    "# Keys: docs/services/dts.md.\n"
    "\n"
    "# Sampling period in milliseconds.\n"
    "update=1000\n"
    "\n"
    "# Providers: one line each. sysfs is on unless disabled.\n"
    "enable-provider=sysfs\n"
    "#enable-provider=ethtool\n"
    "#enable-provider=tc\n"
    "#enable-provider=ifconfig\n"
    "#enable-provider=prometheus_aggr\n"
    "#prometheus-aggr-endpoints=http://127.0.0.1:9200/metrics\n"
    "#enable-provider=fluent_aggr\n"
    "#fluent-aggr-port=42442\n"
    "#disable-provider=sysfs\n"
    "\n"
    "# Prometheus endpoint (/metrics, /healthz): off unless set, as DOCA\n"
    "# ships it.\n"
    "#prometheus=http://0.0.0.0:9100\n"
    "\n"
    "# Counter selection (comma lists; name-match=exact|wildcard|regex).\n"
    "#include-names=eth*,p0\n"
    "#exclude-names=lo\n"
    "#name-match=wildcard\n"
    "\n"
    "# Topology labels.\n"
    "#level-labels-file=/config/level_labels.ini\n"
    "\n"
    "# Binary data files (disabled by default).\n"
    "#output=/data\n"
    "#data-file-size-limit=134217728\n"
    "#data-file-time-limit=1800\n"
    "\n"
    "# Fluent Bit export files (*.exp).\n"
    "#fluentbit-config-dir=/config/fluent_bit_configs\n"
    "\n"
    "# NetFlow export of records sent by exporter-library apps.\n"
    "#netflow-collector-ip=127.0.0.1\n"
    "#netflow-collector-port=9995\n";

const char *
dts_config_default_text(void)
{
    return dts_default_text;
}

int
dts_config_init_default(const char *config_dir)
{
    char *ini = xasprintf("%s/%s", config_dir, DTS_CONFIG_FILE);
    char *yml = xasprintf("%s/%s", config_dir, DTS_CONFIG_YAML);
    struct stat st;
    int rc;
    if (stat(ini, &st) == 0 || stat(yml, &st) == 0) {
        rc = 0;
    } else {
        rc = dir_create_all(config_dir, 0755);
        if (rc == 0) {
            rc = file_write_atomic(ini, dts_default_text,
                                   sizeof dts_default_text - 1, 0644);
        }
        if (rc == 0) {
            rc = 1;
        }
    }
    free(ini);
    free(yml);
    return rc;
}
