/* Unit tests for the dts providers: sysfs over a fake tree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dts/dts-promtext.h"
#include "dts/dts-provider.h"
#include "lib/base/util.h"

static void
put(const char *root, const char *rel, const char *content)
{
    char *path = xasprintf("%s/%s", root, rel);
    char *dir = xstrdup(path);
    *strrchr(dir, '/') = '\0';
    assert_int_equal(dir_create_all(dir, 0755), 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
    free(dir);
    free(path);
}

static char *
collect(const struct dts_provider_ops *ops, struct dts_config *cfg,
        const struct dts_filter *filter)
{
    struct dts_model *m = dts_model_create();
    struct dts_provider_ctx ctx = {.config = cfg, .model = m};
    void *st = NULL;
    struct dpf_error err;
    dpf_error_clear(&err);
    int rc = ops->init(&ctx, &st, &err);
    if (rc < 0) {
        fail_msg("init: %s", err.message);
    }
    struct dts_sink s;
    dts_sink_init(&s, filter, NULL);
    assert_int_equal(ops->collect(st, &s), 0);
    dts_model_put(m, ops->name, dts_sink_take(&s));
    dts_sink_fini(&s);
    ops->destroy(st);
    struct dbuf b;
    dbuf_init(&b);
    dts_model_render(m, &b);
    dts_model_free(m);
    return dbuf_steal(&b, NULL);
}

static void
test_sysfs(void **state)
{
    char root[] = "/tmp/dts-sysfs-XXXXXX";
    assert_non_null(mkdtemp(root));
    put(root, "class/net/veth0/statistics/rx_bytes", "1234\n");
    put(root, "class/net/veth0/statistics/tx_packets", "17\n");
    put(root, "class/net/veth0/statistics/garbage", "n/a\n");
    put(root, "class/net/lo/statistics/rx_bytes", "99\n");
    put(root, "class/infiniband/mlx5_0/ports/1/counters/port_rcv_data",
        "4096\n");
    put(root, "class/infiniband/mlx5_0/ports/1/hw_counters/out_of_buffer",
        "3\n");
    put(root, "class/hwmon/hwmon0/name", "mlxsw\n");
    put(root, "class/hwmon/hwmon0/temp1_input", "45500\n");
    put(root, "class/hwmon/hwmon0/temp1_label", "asic\n");
    put(root, "class/hwmon/hwmon0/fan2_input", "3000\n");
    put(root, "class/hwmon/hwmon0/in0_input", "1200\n");
    put(root, "class/hwmon/hwmon0/power1_input", "25000000\n");

    struct dts_runtime rt = {.config_dir = root, .sysfs_root = root};
    struct dpf_error err;
    dpf_error_clear(&err);
    struct dts_config *cfg = dts_config_parse_ini("", 0, "t", &rt, &err);
    assert_non_null(cfg);
    char *out = collect(&dts_prov_sysfs_ops, cfg, NULL);
    assert_non_null(strstr(out, "# TYPE dts_net_rx_bytes_total counter\n"));
    assert_non_null(strstr(out, "dts_net_rx_bytes_total{device=\"veth0\"} "
                                "1234\n"));
    assert_non_null(strstr(out, "dts_net_rx_bytes_total{device=\"lo\"} 99\n"));
    assert_non_null(strstr(out, "dts_net_tx_packets_total{device=\"veth0\"} "
                                "17\n"));
    assert_null(strstr(out, "garbage"));
    assert_non_null(strstr(out, "dts_ib_port_rcv_data_total{device=\"mlx5_0\","
                                "port=\"1\"} 4096\n"));
    assert_non_null(strstr(out, "dts_ib_hw_out_of_buffer_total{device="
                                "\"mlx5_0\",port=\"1\"} 3\n"));
    assert_non_null(strstr(out, "dts_hwmon_temp_celsius{chip=\"mlxsw\","
                                "sensor=\"asic\"} 45.5\n"));
    assert_non_null(strstr(out, "dts_hwmon_fan_rpm{chip=\"mlxsw\","
                                "sensor=\"fan2\"} 3000\n"));
    assert_non_null(strstr(out, "dts_hwmon_in_volts{chip=\"mlxsw\","
                                "sensor=\"in0\"} 1.2\n"));
    assert_non_null(strstr(out, "dts_hwmon_power_watts{chip=\"mlxsw\","
                                "sensor=\"power1\"} 25\n"));
    free(out);

    /* include-names limits devices. */
    struct dts_filter *f =
        dts_filter_create("veth*", NULL, DTS_MATCH_WILDCARD, &err);
    out = collect(&dts_prov_sysfs_ops, cfg, f);
    assert_non_null(strstr(out, "device=\"veth0\""));
    assert_null(strstr(out, "device=\"lo\""));
    free(out);
    dts_filter_free(f);

    dts_config_free(cfg);
    char *cmd = xasprintf("rm -rf %s", root);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

/* Parse the dts_net_* lines of device lo from a rendered page: names
 * (with labels) into names[], values into vals[]. Returns the count. */
static size_t
lo_series(const char *page, char names[][96], double *vals, size_t max)
{
    size_t n = 0;
    for (const char *l = page; l && *l && n < max;) {
        const char *nl = strchr(l, '\n');
        size_t len = nl ? (size_t) (nl - l) : strlen(l);
        const char *sp = memchr(l, ' ', len);
        if (!strncmp(l, "dts_net_", 8) && sp && sp - l > 13 &&
            !strncmp(sp - 13, "{device=\"lo\"}", 13)) {
            snprintf(names[n], 96, "%.*s", (int) (sp - l), l);
            vals[n++] = strtod(sp + 1, NULL);
        }
        l = nl ? nl + 1 : NULL;
    }
    return n;
}

/* On the real /sys the net statistics come from one RTM_GETLINK dump;
 * the series must be those of the files, with the same numbers (counters
 * only grow between the two reads). "//sys" forces the file path. */
static void
test_sysfs_netlink_matches_files(void **state)
{
    struct dpf_error err;
    dpf_error_clear(&err);
    struct dts_runtime rt_files = {.config_dir = "/tmp", .sysfs_root = "//sys"};
    struct dts_runtime rt_nl = {.config_dir = "/tmp", .sysfs_root = "/sys"};
    struct dts_config *cf = dts_config_parse_ini("", 0, "t", &rt_files, &err);
    struct dts_config *cn = dts_config_parse_ini("", 0, "t", &rt_nl, &err);
    assert_non_null(cf);
    assert_non_null(cn);
    char *files = collect(&dts_prov_sysfs_ops, cf, NULL);
    char *nl = collect(&dts_prov_sysfs_ops, cn, NULL);
    static char fn[64][96], nn[64][96];
    double fv[64], nv[64];
    size_t nf = lo_series(files, fn, fv, 64);
    size_t nn_ = lo_series(nl, nn, nv, 64);
    assert_int_equal(nf, 24); /* every file of statistics/ */
    assert_int_equal(nn_, nf);
    for (size_t i = 0; i < nf; i++) {
        assert_string_equal(nn[i], fn[i]);
        assert_true(nv[i] >= fv[i]);
    }
    /* Same help and type lines. */
    assert_non_null(strstr(nl, "# HELP dts_net_rx_bytes_total Network device "
                               "statistic rx_bytes.\n# TYPE "
                               "dts_net_rx_bytes_total counter\n"));
    free(files);
    free(nl);
    dts_config_free(cf);
    dts_config_free(cn);
}

static struct dts_config *
empty_config(void)
{
    struct dts_runtime rt = {.config_dir = "/tmp", .sysfs_root = "/sys"};
    struct dpf_error err;
    dpf_error_clear(&err);
    struct dts_config *c = dts_config_parse_ini("", 0, "t", &rt, &err);
    assert_non_null(c);
    return c;
}

static void
test_gpu_not_available(void **state)
{
    setenv("DTS_NVML_LIBRARY", "/nonexistent/libnvidia-ml.so.1", 1);
    struct dts_config *c = empty_config();
    struct dts_model *m = dts_model_create();
    struct dts_provider_ctx ctx = {.config = c, .model = m};
    const struct dts_provider_ops *ops[] = {dts_provider_find("nvidia-smi"),
                                            dts_provider_find("dcgm")};
    for (size_t i = 0; i < 2; i++) {
        assert_non_null(ops[i]);
        void *st = NULL;
        struct dpf_error err;
        dpf_error_clear(&err);
        assert_true(ops[i]->init(&ctx, &st, &err) < 0);
        assert_non_null(strstr(err.message, "not available"));
        assert_non_null(strstr(err.message, "libnvidia-ml.so.1"));
    }
    /* Known BlueField-only providers have no implementation here. */
    assert_null(dts_provider_find("amber"));
    assert_non_null(dts_provider_find("tc"));
    unsetenv("DTS_NVML_LIBRARY");
    dts_model_free(m);
    dts_config_free(c);
}

static void
test_netlink_providers_on_lo(void **state)
{
    struct dts_config *c = empty_config();
    char *out = collect(&dts_prov_ifconfig_ops, c, NULL);
    assert_non_null(strstr(out, "dts_ifconfig_mtu_bytes{device=\"lo\"}"));
    assert_non_null(strstr(out, "dts_ifconfig_address_info{device=\"lo\","
                                "family=\"inet\",address=\"127.0.0.1\","
                                "prefixlen=\"8\"} 1"));
    free(out);
    out = collect(&dts_prov_tc_ops, c, NULL);
    assert_non_null(strstr(out, "# TYPE dts_tc_qdisc_bytes_total counter"));
    free(out);
    /* lo has no driver statistics: ethtool reports nothing for it. */
    out = collect(&dts_prov_ethtool_ops, c, NULL);
    assert_null(strstr(out, "device=\"lo\""));
    free(out);
    dts_config_free(c);
}

struct pt_seen {
    int n;
    char text[4096];
};

static void
pt_cb(void *arg, const struct dts_promtext_sample *s)
{
    struct pt_seen *p = arg;
    size_t len = strlen(p->text);
    snprintf(p->text + len, sizeof p->text - len, "%s|%d|%s|%s|%g\n", s->name,
             (int) s->type, s->help ? s->help : "-", s->labels, s->value);
    p->n++;
}

static void
test_promtext(void **state)
{
    const char *ok = "# HELP req_total Requests\\n served.\n"
                     "# TYPE req_total counter\n"
                     "req_total{code=\"200\",path=\"/a\\\"b\"} 42 17000\n"
                     "\n"
                     "# just a comment\n"
                     "# TYPE lat histogram\n"
                     "lat_bucket{le=\"+Inf\",} 3\n"
                     "lat_sum 1.5\n"
                     "temp -Inf\r\n"
                     "free NaN\n";
    struct pt_seen seen = {0};
    struct dpf_error err;
    dpf_error_clear(&err);
    assert_int_equal(dts_promtext_parse(ok, strlen(ok), 0, pt_cb, &seen, &err),
                     5);
    assert_non_null(strstr(seen.text, "req_total|1|Requests\n served.|"
                                      "code=\"200\",path=\"/a\\\"b\"|42\n"));
    assert_non_null(strstr(seen.text, "lat_bucket|3|-|le=\"+Inf\"|3\n"));
    assert_non_null(strstr(seen.text, "lat_sum|3|-||1.5\n"));
    assert_non_null(strstr(seen.text, "temp|0|-||-inf\n"));
    assert_non_null(strstr(seen.text, "free|0|-||nan\n"));

    static const char *const bad[] = {
        "a{b=\"1} 2\n",
        "a 0x10\n",
        "1abc 2\n",
        "a{b=\"1\",b=\"2\"} 1\n",
        "a 1 2 3\n",
        "# TYPE a weird\n",
        "a{b=\"\\q\"} 1\n",
        "a{=\"x\"} 1\n",
        "a\n",
        "<html>\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&seen, 0, sizeof seen);
        dpf_error_clear(&err);
        char *text = xasprintf("good 1\n%s", bad[i]);
        long rc = dts_promtext_parse(text, strlen(text), 0, pt_cb, &seen, &err);
        if (rc >= 0) {
            fail_msg("accepted: %s", bad[i]);
        }
        assert_int_equal(seen.n, 0); /* nothing delivered on failure */
        assert_non_null(strstr(err.message, "line 2:"));
        free(text);
    }
    /* Sample bound. */
    dpf_error_clear(&err);
    assert_true(
        dts_promtext_parse("a 1\nb 2\nc 3\n", 12, 2, pt_cb, &seen, &err) < 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sysfs),
        cmocka_unit_test(test_sysfs_netlink_matches_files),
        cmocka_unit_test(test_gpu_not_available),
        cmocka_unit_test(test_netlink_providers_on_lo),
        cmocka_unit_test(test_promtext),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
