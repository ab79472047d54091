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

#include "dts/dts-provider.h"
#include "lib/util.h"

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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sysfs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
