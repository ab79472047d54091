/* Unit tests for dts/dts-config: DOCA keys, repeated provider lines,
 * validation errors with line numbers, the DPF YAML form, telemetry-init. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dts/dts-config.h"
#include "lib/base/util.h"

static const struct dts_runtime rt = {
    .config_dir = "/opt/mellanox/doca/services/telemetry/config",
    .sysfs_root = "/tmp/fake-sys",
};

static struct dts_config *
parse(const char *text, struct dpf_error *err)
{
    dpf_error_clear(err);
    return dts_config_parse_ini(text, strlen(text), "dts_config.ini", &rt, err);
}

static void
test_defaults(void **state)
{
    struct dpf_error err;
    struct dts_config *c = parse("", &err);
    assert_non_null(c);
    assert_int_equal(c->update_ms, 1000);
    assert_int_equal(c->n_providers, 1);
    assert_string_equal(c->providers[0], "sysfs");
    assert_null(c->prometheus);
    assert_string_equal(c->sysfs_root, "/tmp/fake-sys");
    assert_string_equal(c->ipc_dir,
                        "/opt/mellanox/doca/services/telemetry/ipc_sockets");
    assert_int_equal(c->fluent_aggr_port, 42442);
    /* an unauthenticated listener stays on loopback unless configured */
    assert_string_equal(c->fluent_aggr_address, "127.0.0.1");
    assert_int_equal(c->series_expiry_s, 300);
    assert_int_equal(c->app_max_series, 200000);
    assert_int_equal(c->app_max_series_per_source, 100000);
    assert_int_equal(c->ipc_mode, 0660);
    assert_int_equal(c->ipc_gid, -1);
    assert_string_equal(c->fwd_tag, "doca_telemetry");
    dts_config_free(c);
}

static void expect_reject(const char *text, const char *want);

static void
test_hardening_keys(void **state)
{
    struct dpf_error err;
    struct dts_config *c = parse("series-expiry=0\n"
                                 "app-series-limit=10\n"
                                 "app-series-per-source-limit=3\n"
                                 "ipc-socket-mode=0666\n"
                                 "ipc-socket-group=0\n",
                                 &err);
    assert_non_null(c);
    assert_int_equal(c->series_expiry_s, 0);
    assert_int_equal(c->app_max_series, 10);
    assert_int_equal(c->app_max_series_per_source, 3);
    assert_int_equal(c->ipc_mode, 0666);
    assert_int_equal(c->ipc_gid, 0);
    dts_config_free(c);
    expect_reject("ipc-socket-mode=0044\n", "ipc-socket-mode");
    expect_reject("ipc-socket-mode=rw\n", "ipc-socket-mode");
    expect_reject("ipc-socket-group=no-such-group-x\n", "no-such-group-x");
    expect_reject("series-expiry=-1\n", "series-expiry");
    expect_reject("app-series-limit=0\n", "app-series-limit");
}

/* Stock DOCA values: sizes in MB, numeric name-match, DOCA-only and
 * remote providers, the numbered prometheus_aggr endpoint keys. */
static void
test_doca_spellings(void **state)
{
    struct dpf_error err;
    struct dts_config *c =
        parse("data-file-size-limit=128\n"
              "name-match=1\n"
              "enable-provider=hcaperf\n"
              "enable-provider=ngauge\n"
              "enable-provider=grpc.sysfs\n"
              "prometheus-aggr-endpoint.0=http://127.0.0.1:9100/metrics\n"
              "prometheus-aggr-endpoint.1=http://127.0.0.1:9101/metrics\n",
              &err);
    assert_non_null(c);
    assert_int_equal(c->data_file_size_limit, 128ull * 1024 * 1024);
    assert_int_equal(c->name_match, DTS_MATCH_WILDCARD);
    assert_true(dts_config_has_provider(c, "hcaperf"));
    assert_true(dts_config_has_provider(c, "ngauge"));
    assert_true(dts_config_has_provider(c, "grpc.sysfs"));
    assert_int_equal(c->n_prom_aggr, 2);
    assert_string_equal(c->prom_aggr[1], "http://127.0.0.1:9101/metrics");
    dts_config_free(c);
    c = parse("name-match=0\ndata-file-size-limit=20000B\n", &err);
    assert_non_null(c);
    assert_int_equal(c->name_match, DTS_MATCH_EXACT);
    assert_int_equal(c->data_file_size_limit, 20000);
    dts_config_free(c);
    c = parse("name-match=2\ndata-file-size-limit=2G\n", &err);
    assert_non_null(c);
    assert_int_equal(c->name_match, DTS_MATCH_REGEX);
    assert_int_equal(c->data_file_size_limit, 2ull << 30);
    dts_config_free(c);
    expect_reject("data-file-size-limit=100B\n", "data-file-size-limit");
    expect_reject("data-file-size-limit=12parsecs\n", "data-file-size-limit");
    expect_reject("name-match=3\n", "name-match");
    expect_reject("enable-provider=grpc.nosuch\n", "grpc.nosuch");
}

static void
test_keys(void **state)
{
    struct dpf_error err;
    struct dts_config *c =
        parse("update=250\n"
              "enable-provider=ethtool\n"
              "enable-provider=tc\n"
              "enable-provider=prometheus-aggr\n"
              "enable-provider=sysfs\n"
              "disable-provider=tc\n"
              "prometheus=http://127.0.0.1:19100\n"
              "include-names=veth*\n"
              "include-names=dts_tc_*\n"
              "exclude-names=lo\n"
              "name-match=wildcard\n"
              "output=/data\n"
              "data-file-size-limit=1MB\n"
              "data-file-time-limit=60\n"
              "netflow-collector-ip=127.0.0.1\n"
              "netflow-collector-port=9995\n"
              "prometheus-aggr-endpoints=http://127.0.0.1:1/metrics,"
              "http://127.0.0.1:2/m\n"
              "sync-time-limit=10\n"
              "frobnicate=1\n",
              &err);
    assert_non_null(c);
    assert_int_equal(c->update_ms, 250);
    assert_int_equal(c->n_providers, 3);
    assert_string_equal(c->providers[0], "ethtool");
    assert_string_equal(c->providers[1], "prometheus_aggr");
    assert_string_equal(c->providers[2], "sysfs");
    assert_true(dts_config_has_provider(c, "sysfs"));
    assert_false(dts_config_has_provider(c, "tc"));
    assert_string_equal(c->prom_address, "127.0.0.1");
    assert_int_equal(c->prom_port, 19100);
    assert_string_equal(c->include_names, "veth*,dts_tc_*");
    assert_string_equal(c->exclude_names, "lo");
    assert_string_equal(c->output, "/data");
    assert_int_equal(c->data_file_size_limit, 1048576);
    assert_int_equal(c->data_file_time_limit, 60);
    assert_string_equal(c->netflow_host, "127.0.0.1");
    assert_int_equal(c->netflow_port, 9995);
    assert_int_equal(c->n_prom_aggr, 2);
    assert_string_equal(c->prom_aggr[1], "http://127.0.0.1:2/m");
    /* sync-time-limit: not implemented; frobnicate: unknown. */
    assert_int_equal(c->n_notes, 2);
    assert_non_null(strstr(c->notes[0], "line 18"));
    assert_non_null(strstr(c->notes[1], "frobnicate"));
    dts_config_free(c);
}

static void
expect_reject(const char *text, const char *want)
{
    struct dpf_error err;
    struct dts_config *c = parse(text, &err);
    if (c) {
        fail_msg("accepted: %s", text);
    }
    if (!strstr(err.message, want)) {
        fail_msg("message \"%s\" lacks \"%s\"", err.message, want);
    }
}

static void
test_rejects(void **state)
{
    expect_reject("update=1000\nupdate=fast\n", "dts_config.ini:2: update");
    expect_reject("update=0\n", "update");
    expect_reject("enable-provider=bogus\n", "unknown provider \"bogus\"");
    expect_reject("prometheus=https://x:1\n", "prometheus");
    expect_reject("prometheus=http://0.0.0.0:99999\n", "prometheus");
    expect_reject("name-match=fuzzy\n", "name-match");
    expect_reject("name-match=regex\ninclude-names=([\n", "include-names");
    expect_reject("netflow-collector-ip=1.2.3.4\n", "netflow-collector-port");
    expect_reject("netflow-collector-port=0\n", "netflow-collector-port");
    expect_reject("this line is broken\n", "dts_config.ini:1:");
    expect_reject("prometheus-aggr-endpoints=ftp://x\n", "http://");
}

/* Forwarding switched on without a destination is refused whole (dts
 * would otherwise run with an exporter that can never send), whether
 * the host is absent, empty, or set and then cleared; with a host the
 * same file is accepted. */
static void
test_forward_needs_host(void **state)
{
    static const char *const bad[] = {
        "fluent-forward-enable=1\n",
        "fluent-forward-enable=1\nfluent-forward-port=24224\n",
        "fluent-forward-enable=1\nfluent-forward-host=\n",
        "fluent-forward-host=10.0.0.1\nfluent-forward-host=\n"
        "fluent-forward-enable=1\n",
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        struct dpf_error err;
        struct dts_config *c = parse(bad[i], &err);
        if (c) {
            fail_msg("accepted without a host: %s", bad[i]);
        }
        assert_string_equal(err.message,
                            "dts_config.ini: fluent-forward-host: required "
                            "when forwarding is enabled");
    }
    struct dpf_error err;
    struct dts_config *c =
        parse("fluent-forward-enable=1\nfluent-forward-host=127.0.0.1\n", &err);
    if (!c) {
        fail_msg("%s", err.message);
    }
    assert_true(c->fwd_enable);
    assert_string_equal(c->fwd_host, "127.0.0.1");
    dts_config_free(c);
    /* a host alone does not switch forwarding on */
    c = parse("fluent-forward-host=127.0.0.1\n", &err);
    assert_non_null(c);
    assert_false(c->fwd_enable);
    dts_config_free(c);
}

static void
test_prometheus_default_port(void **state)
{
    struct dpf_error err;
    struct dts_config *c = parse("prometheus=http://0.0.0.0\n", &err);
    assert_non_null(c);
    assert_int_equal(c->prom_port, 9100);
    dts_config_free(c);
}

static char *
mktmp(void)
{
    char tmpl[] = "/tmp/dts-cfg-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    return xstrdup(tmpl);
}

static void
rmrf(const char *dir)
{
    char *cmd = xasprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

static void
test_yaml(void **state)
{
    char *dir = mktmp();
    char *path = xasprintf("%s/%s", dir, DTS_CONFIG_YAML);
    const char *yaml = "configMapData:\n"
                       "  providers: \"sysfs,ethtool\"\n"
                       "  aggregator_providers: \"fluent_aggr\"\n"
                       "  general:\n"
                       "    update: 500\n"
                       "    sync-time-limit: 10000\n"
                       "  prometheus:\n"
                       "    enable: 1\n"
                       "  fluent:\n"
                       "    forward:\n"
                       "      enable: 1\n"
                       "      host: 127.0.0.1\n"
                       "      port: 24225\n"
                       "      tag: mytag\n"
                       "    kafka:\n"
                       "      enable: 0\n";
    assert_int_equal(file_write_atomic(path, yaml, strlen(yaml), 0644), 0);
    struct dts_runtime r = {.config_dir = dir, .sysfs_root = "/sys"};
    struct dpf_error err;
    dpf_error_clear(&err);
    struct dts_config *c = dts_config_load(&r, &err);
    if (!c) {
        fail_msg("%s", err.message);
    }
    assert_int_equal(c->update_ms, 500);
    assert_int_equal(c->n_providers, 3);
    assert_true(dts_config_has_provider(c, "ethtool"));
    assert_true(dts_config_has_provider(c, "fluent_aggr"));
    assert_string_equal(c->prometheus, "http://0.0.0.0:9100");
    assert_true(c->fwd_enable);
    assert_string_equal(c->fwd_host, "127.0.0.1");
    assert_int_equal(c->fwd_port, 24225);
    assert_string_equal(c->fwd_tag, "mytag");
    dts_config_free(c);

    /* A bad YAML value is rejected like a bad ini value. */
    const char *bad = "general:\n  update: soon\n";
    assert_int_equal(file_write_atomic(path, bad, strlen(bad), 0644), 0);
    dpf_error_clear(&err);
    assert_null(dts_config_load(&r, &err));
    assert_non_null(strstr(err.message, "update"));

    /* The DPF YAML form has the same rule: forward enabled, no host. */
    const char *nohost = "configMapData:\n"
                         "  fluent:\n"
                         "    forward:\n"
                         "      enable: 1\n"
                         "      port: 24225\n";
    assert_int_equal(file_write_atomic(path, nohost, strlen(nohost), 0644), 0);
    dpf_error_clear(&err);
    assert_null(dts_config_load(&r, &err));
    assert_non_null(strstr(err.message, "fluent-forward-host: required when "
                                        "forwarding is enabled"));
    free(path);
    rmrf(dir);
    free(dir);
}

static void
test_init_default(void **state)
{
    char *dir = mktmp();
    char *sub = xasprintf("%s/config", dir);
    assert_int_equal(dts_config_init_default(sub), 1);
    assert_int_equal(dts_config_init_default(sub), 0);
    struct dts_runtime r = {.config_dir = sub, .sysfs_root = "/sys"};
    struct dpf_error err;
    dpf_error_clear(&err);
    struct dts_config *c = dts_config_load(&r, &err);
    assert_non_null(c);
    /* the endpoint is off unless configured, as DOCA ships it */
    assert_null(c->prometheus);
    assert_true(dts_config_has_provider(c, "sysfs"));
    char *ipc = xasprintf("%s/ipc_sockets", dir);
    assert_string_equal(c->ipc_dir, ipc);
    free(ipc);
    dts_config_free(c);
    /* Neither file: 404. */
    char *empty = xasprintf("%s/empty", dir);
    assert_int_equal(dir_create_all(empty, 0755), 0);
    r.config_dir = empty;
    dpf_error_clear(&err);
    assert_null(dts_config_load(&r, &err));
    assert_int_equal(err.code, 404);
    free(empty);
    free(sub);
    rmrf(dir);
    free(dir);
}

static void
test_exp_files(void **state)
{
    char *dir = mktmp();
    char *fb = xasprintf("%s/fluent_bit_configs", dir);
    assert_int_equal(dir_create_all(fb, 0755), 0);
    char *f1 = xasprintf("%s/forward.exp", fb);
    char *f2 = xasprintf("%s/kafka.exp", fb);
    const char *fwd = "# forward to a local fluent-bit\n"
                      "name=forward\nplugin_name=forward\nenable=1\n"
                      "host=10.0.0.5\nport=24225\ntag=dts_tag\n";
    const char *kafka = "plugin_name=kafka\nenable=1\nbrokers=x\n";
    assert_int_equal(file_write_atomic(f1, fwd, strlen(fwd), 0644), 0);
    assert_int_equal(file_write_atomic(f2, kafka, strlen(kafka), 0644), 0);
    char *text = xasprintf("fluentbit-config-dir=%s\n", fb);
    struct dpf_error err;
    struct dts_config *c = parse(text, &err);
    assert_non_null(c);
    assert_true(c->fwd_enable);
    assert_string_equal(c->fwd_host, "10.0.0.5");
    assert_int_equal(c->fwd_port, 24225);
    assert_string_equal(c->fwd_tag, "dts_tag");
    assert_int_equal(c->n_notes, 1);
    assert_non_null(strstr(c->notes[0], "kafka"));
    dts_config_free(c);
    /* A broken .exp rejects the whole configuration. */
    const char *bad = "plugin_name=forward\nenable=1\nport=huge\n";
    assert_int_equal(file_write_atomic(f1, bad, strlen(bad), 0644), 0);
    assert_null(parse(text, &err));
    assert_non_null(strstr(err.message, "forward.exp:3: port"));
    free(text);
    free(f1);
    free(f2);
    free(fb);
    rmrf(dir);
    free(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_hardening_keys),
        cmocka_unit_test(test_doca_spellings),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_forward_needs_host),
        cmocka_unit_test(test_prometheus_default_port),
        cmocka_unit_test(test_yaml),
        cmocka_unit_test(test_init_default),
        cmocka_unit_test(test_exp_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
