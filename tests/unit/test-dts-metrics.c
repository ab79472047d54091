/* Unit tests for dts/dts-metrics and dts/dts-labels: sinks, filters,
 * level labels, rendering, error series. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dts/dts-export.h"
#include "dts/dts-labels.h"
#include "dts/dts-metrics.h"
#include "dts/dts-view.h"
#include "lib/base/util.h"

static char *
render(struct dts_model *m)
{
    struct dbuf b;
    dbuf_init(&b);
    dts_model_render(m, &b);
    return b.data ? dbuf_steal(&b, NULL) : xstrdup("");
}

static void
test_render(void **state)
{
    struct dts_model *m = dts_model_create();
    struct dts_sink s;
    dts_sink_init(&s, NULL, NULL);
    const char *l0[] = {"device", "veth0", NULL};
    const char *l1[] = {"device", "we\"ird\\\n", NULL};
    dts_sink_add(&s, DTS_COUNTER, "dts_net_rx_bytes_total", "Rx bytes.", l0,
                 1234);
    dts_sink_add(&s, DTS_COUNTER, "dts_net_rx_bytes_total", "ignored", l1, 5);
    dts_sink_add(&s, DTS_GAUGE, "dts_a_gauge", "Line1\nline2", NULL, 0.5);
    dts_sink_add(&s, DTS_GAUGE, "dts_big", "Big.", NULL, 1e20);
    dts_sink_add(&s, DTS_GAUGE, "dts_nan", "NaN.", NULL, NAN);
    dts_model_put(m, "p1", dts_sink_take(&s));
    dts_sink_fini(&s);
    /* A second producer adds to the same family. */
    dts_sink_init(&s, NULL, NULL);
    const char *l2[] = {"device", "veth1", NULL};
    dts_sink_add(&s, DTS_COUNTER, "dts_net_rx_bytes_total", "Rx bytes.", l2, 7);
    dts_model_put(m, "p2", dts_sink_take(&s));
    dts_sink_fini(&s);
    dts_model_error_declare(m, "prometheus_aggr", NULL, NULL);
    dts_model_error_inc(m, "prometheus_aggr", "source", "127.0.0.1:1");
    dts_model_error_inc(m, "prometheus_aggr", "source", "127.0.0.1:1");

    char *text = render(m);
    assert_non_null(strstr(text, "# HELP dts_a_gauge Line1\\nline2\n"
                                 "# TYPE dts_a_gauge gauge\n"
                                 "dts_a_gauge 0.5\n"));
    assert_non_null(strstr(text, "dts_net_rx_bytes_total{device=\"veth0\"} "
                                 "1234\n"));
    assert_non_null(
        strstr(text, "dts_net_rx_bytes_total{device=\"we\\\"ird\\\\\\n\"} 5"));
    assert_non_null(strstr(text, "dts_net_rx_bytes_total{device=\"veth1\"} 7"));
    assert_non_null(strstr(text, "dts_big 1e+20\n"));
    assert_non_null(strstr(text, "dts_nan NaN\n"));
    assert_non_null(strstr(text, "dts_prometheus_aggr_errors_total 0\n"));
    assert_non_null(strstr(text, "dts_prometheus_aggr_errors_total{source="
                                 "\"127.0.0.1:1\"} 2\n"));
    /* HELP/TYPE once per family even across producers. */
    const char *first = strstr(text, "# TYPE dts_net_rx_bytes_total counter");
    assert_non_null(first);
    assert_null(strstr(first + 1, "# TYPE dts_net_rx_bytes_total"));
    /* Families sorted by name. */
    assert_true(strstr(text, "dts_a_gauge") < strstr(text, "dts_big"));
    assert_int_equal(
        dts_model_error_get(m, "prometheus_aggr", "source", "127.0.0.1:1"), 2);
    free(text);

    /* Removing a producer removes its series. */
    dts_model_put(m, "p2", NULL);
    text = render(m);
    assert_null(strstr(text, "veth1"));
    free(text);
    dts_model_free(m);
}

static void
test_filter(void **state)
{
    struct dpf_error err;
    dpf_error_clear(&err);
    struct dts_filter *f =
        dts_filter_create("veth*, dts_tc_*", "veth9", DTS_MATCH_WILDCARD, &err);
    assert_non_null(f);
    assert_true(dts_filter_pass(f, "dts_net_rx_bytes_total", "veth0"));
    assert_false(dts_filter_pass(f, "dts_net_rx_bytes_total", "eth0"));
    assert_true(dts_filter_pass(f, "dts_tc_qdisc_bytes_total", "eth0"));
    assert_false(dts_filter_pass(f, "dts_net_rx_bytes_total", "veth9"));
    dts_filter_free(f);

    f = dts_filter_create("^v.*[0-3]$", NULL, DTS_MATCH_REGEX, &err);
    assert_non_null(f);
    assert_true(dts_filter_pass(f, "x", "veth3"));
    assert_false(dts_filter_pass(f, "x", "veth4"));
    dts_filter_free(f);

    f = dts_filter_create("eth0", NULL, DTS_MATCH_EXACT, &err);
    assert_true(dts_filter_pass(f, "x", "eth0"));
    assert_false(dts_filter_pass(f, "x", "eth01"));
    dts_filter_free(f);

    assert_null(dts_filter_create("([", NULL, DTS_MATCH_REGEX, &err));
    assert_non_null(strstr(err.message, "include-names"));

    /* The sink counts filtered samples. */
    f = dts_filter_create(NULL, "lo", DTS_MATCH_WILDCARD, &err);
    struct dts_sink s;
    dts_sink_init(&s, f, NULL);
    const char *lo[] = {"device", "lo", NULL};
    dts_sink_add(&s, DTS_COUNTER, "dts_x_total", "x", lo, 1);
    assert_int_equal(s.filtered, 1);
    assert_int_equal(s.batch->n_samples, 0);
    dts_sink_fini(&s);
    dts_filter_free(f);
}

static void
test_labels(void **state)
{
    char dir[] = "/tmp/dts-labels-XXXXXX";
    assert_non_null(mkdtemp(dir));
    /* Fake sysfs: class/net/p0/device -> ../../0000:03:00.0 */
    char *netdir = xasprintf("%s/class/net/p0", dir);
    assert_int_equal(dir_create_all(netdir, 0755), 0);
    char *link = xasprintf("%s/device", netdir);
    assert_int_equal(symlink("../../../devices/pci0000:00/0000:03:00.0", link),
                     0);
    const char *text = "[global_labels]\n"
                       "pod=pod1\n"
                       "rack=r7\n"
                       "[device_labels]\n"
                       "0000:03:00.0=rail|1|plane|2|rack|devrack\n"
                       "veth0=role|uplink\n"
                       "[data_types_mapping]\n"
                       "ethtool_event=device_name|netif\n";
    struct dpf_error err;
    dpf_error_clear(&err);
    struct ini *ini = ini_parse(text, strlen(text), "ll.ini", &err);
    assert_non_null(ini);
    struct dts_labels *l = dts_labels_from_ini(ini, dir, &err);
    ini_free(ini);
    assert_non_null(l);
    assert_int_equal(dts_labels_n_global(l), 2);

    struct dts_model *m = dts_model_create();
    struct dts_sink s;
    dts_sink_init(&s, NULL, l);
    const char *p0[] = {"device", "p0", NULL};
    const char *v0[] = {"device", "veth0", "pod", "mine", NULL};
    dts_sink_add(&s, DTS_GAUGE, "dts_g", "g", p0, 1);
    dts_sink_add(&s, DTS_GAUGE, "dts_g", "g", v0, 2);
    dts_sink_add(&s, DTS_GAUGE, "dts_h", "h", NULL, 3);
    dts_model_put(m, "p", dts_sink_take(&s));
    dts_sink_fini(&s);
    char *out = render(m);
    assert_non_null(strstr(out, "dts_g{device=\"p0\",rail=\"1\",plane=\"2\","
                                "rack=\"devrack\",pod=\"pod1\"} 1\n"));
    assert_non_null(strstr(out, "dts_g{device=\"veth0\",pod=\"mine\","
                                "role=\"uplink\",rack=\"r7\"} 2\n"));
    assert_non_null(strstr(out, "dts_h{pod=\"pod1\",rack=\"r7\"} 3\n"));
    free(out);
    dts_model_free(m);
    dts_labels_free(l);

    /* Odd k|v list is an error naming the line. */
    const char *bad = "[device_labels]\nx=a|b|c\n";
    ini = ini_parse(bad, strlen(bad), "bad.ini", &err);
    assert_non_null(ini);
    assert_null(dts_labels_from_ini(ini, dir, &err));
    assert_non_null(strstr(err.message, "bad.ini:2"));
    ini_free(ini);
    unlink(link);
    free(link);
    free(netdir);
    char *cmd = xasprintf("rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

static void
test_labels_json(void **state)
{
    json_t *o = dts_export_labels_to_json("a=\"x\",b=\"y\\\"z\\\\\\n\"");
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "a")), "x");
    assert_string_equal(json_string_value(json_object_get(o, "b")), "y\"z\\\n");
    json_decref(o);
    o = dts_export_labels_to_json("");
    assert_non_null(o);
    assert_int_equal(json_object_size(o), 0);
    json_decref(o);
    assert_null(dts_export_labels_to_json("a=x"));
    assert_null(dts_export_labels_to_json("a=\"x"));
}

/* App counters end in exactly one _total; gauges never get one. */
static void
test_app_counter_names(void **state)
{
    struct dts_model *m = dts_model_create();
    struct dts_export *x = dts_export_create(m);
    struct dts_ipc_hello src = {.pid = 1};
    strcpy(src.source_id, "app1");
    strcpy(src.source_tag, "t");
    static const struct {
        const char *name;
        uint8_t kind;
    } in[] = {
        {"requests", DTS_IPC_COUNTER_U64},
        {"bytes_total", DTS_IPC_COUNTER_U64},
        {"odd.total", DTS_IPC_COUNTER_U64},
        {"temp_total", DTS_IPC_GAUGE_F64},
    };
    for (size_t i = 0; i < ARRAY_SIZE(in); i++) {
        struct dts_ipc_counter c = {.kind = in[i].kind, .u64 = 7, .f64 = 7};
        strcpy(c.name, in[i].name);
        struct dts_ipc_record r = {
            .kind = DTS_IPC_RECORD_COUNTER, .source = &src, .counter = &c};
        dts_export_ipc_record(x, &r);
    }
    struct dts_sink s;
    dts_sink_init(&s, NULL, NULL);
    dts_export_collect(x, &s);
    dts_model_put(m, "app", dts_sink_take(&s));
    dts_sink_fini(&s);
    char *text = render(m);
    const char *lab = "{source_id=\"app1\",source_tag=\"t\"} 7\n";
    char *want[] = {
        xasprintf("\ndts_app_requests_total%s", lab),
        xasprintf("\ndts_app_bytes_total%s", lab),
        xasprintf("\ndts_app_odd_total%s", lab),
        xasprintf("\ndts_app_temp_total%s", lab),
    };
    for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
        assert_non_null(strstr(text, want[i]));
        free(want[i]);
    }
    assert_null(strstr(text, "_total_total"));
    assert_non_null(strstr(text, "# TYPE dts_app_temp_total gauge\n"));
    assert_non_null(strstr(text, "# TYPE dts_app_bytes_total counter\n"));
    free(text);
    dts_export_destroy(x);
    dts_model_free(m);
}

/* Values print as "%.0f" would for integers, shortest exact form else. */
static void
test_format_value(void **state)
{
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0, "0"},
        {-0.0, "-0"},
        {7, "7"},
        {-42, "-42"},
        {18446744073.0, "18446744073"},
        {999999999999999.0, "999999999999999"},
        {-999999999999999.0, "-999999999999999"},
        {1e15, "1e+15"},
        {1.8446744073709552e19, "1.8446744073709552e+19"},
        {0.5, "0.5"},
        {0.1, "0.1"},
        {NAN, "NaN"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct dbuf b;
        dbuf_init(&b);
        dts_format_value(&b, cases[i].v);
        assert_string_equal(b.data, cases[i].text);
        if (isfinite(cases[i].v) && fabs(cases[i].v) < 1e15) {
            char ref[64];
            snprintf(ref, sizeof ref, "%.0f", cases[i].v);
            if (cases[i].v == floor(cases[i].v)) {
                assert_string_equal(b.data, ref);
            }
        }
        dbuf_free(&b);
    }
}

static void
test_names(void **state)
{
    char n[] = "dts_ethtool_rx-queue.0:x y";
    dts_metric_name_sanitize(n);
    assert_string_equal(n, "dts_ethtool_rx_queue_0:x_y");
    char l[] = "0abc:d-e";
    dts_label_name_sanitize(l);
    assert_string_equal(l, "_abc_d_e");
}

/* DOCA names: the counters' own names (NetQ's whitelist spelling). */
static void
test_doca_names(void **state)
{
    char buf[256];
    assert_string_equal(
        dts_view_doca_name("dts_ethtool_tx_packets_phy_total", buf, sizeof buf),
        "tx_packets_phy");
    assert_string_equal(
        dts_view_doca_name("dts_ib_hw_rp_cnp_handled_total", buf, sizeof buf),
        "hw_rp_cnp_handled");
    assert_string_equal(
        dts_view_doca_name("dts_net_rx_bytes_total", buf, sizeof buf),
        "rx_bytes");
    assert_string_equal(
        dts_view_doca_name("dts_gpu_temperature_celsius", buf, sizeof buf),
        "nvidia_smi_temperature_gpu");
    assert_null(dts_view_doca_name("dts_provider_up", buf, sizeof buf));
    assert_null(dts_view_doca_name("dts_app_series", buf, sizeof buf));
    assert_null(dts_view_doca_name("dts_tc_qdisc_bytes_total", buf, 8));
}

/* include-names / exclude-names written with DOCA's counter names match
 * the dts families of those counters. */
static void
test_filter_doca_names(void **state)
{
    struct dpf_error err;
    dpf_error_clear(&err);
    struct dts_filter *f = dts_filter_create("rx_bytes,hw_rp_cnp_handled",
                                             "tx_bytes", DTS_MATCH_EXACT, &err);
    assert_non_null(f);
    assert_true(dts_filter_pass(f, "dts_net_rx_bytes_total", "eth0"));
    assert_true(dts_filter_pass(f, "dts_ib_hw_rp_cnp_handled_total", "m"));
    assert_false(dts_filter_pass(f, "dts_net_rx_packets_total", "eth0"));
    assert_false(dts_filter_pass(f, "dts_net_tx_bytes_total", "eth0"));
    dts_filter_free(f);
}

/* Tokens: regex search, literal search, @exact, comments, bad regex with
 * file and line, limits. */
static void
test_tokens(void **state)
{
    struct dpf_error err;
    dpf_error_clear(&err);
    const char text[] = "# comment\n  rx_bytes \n^id$\n@pod\n\n";
    struct dts_tokens *t = dts_tokens_parse(text, strlen(text), "a.cset", &err);
    assert_non_null(t);
    assert_int_equal(dts_tokens_count(t), 3);
    assert_true(dts_tokens_match(t, "dts_net_rx_bytes_total"));
    assert_true(dts_tokens_match(t, "id"));
    assert_false(dts_tokens_match(t, "device_id"));
    assert_true(dts_tokens_match(t, "pod"));
    assert_false(dts_tokens_match(t, "pod_name"));
    dts_tokens_free(t);
    const char bad[] = "ok\n(open\n";
    assert_null(dts_tokens_parse(bad, strlen(bad), "b.cset", &err));
    assert_non_null(strstr(err.message, "b.cset:2:"));
    dpf_error_clear(&err);
    t = dts_tokens_parse_list("device_name, ^id$ ,", "prometheus-indexes",
                              &err);
    assert_non_null(t);
    assert_int_equal(dts_tokens_count(t), 2);
    dts_tokens_free(t);
}

/* The view at render time: DOCA names with a provider label, a cset,
 * index projection without duplicate series, ignore list, JSON and CSV. */
static void
test_render_view(void **state)
{
    struct dts_model *m = dts_model_create();
    struct dts_sink s;
    dts_sink_init(&s, NULL, NULL);
    const char *l1[] = {"device", "p0", "port", "1", NULL};
    const char *l2[] = {"device", "p0", "port", "2", NULL};
    dts_sink_add(&s, DTS_COUNTER, "dts_ethtool_rx_bytes_total", "h", l1, 5);
    dts_sink_add(&s, DTS_COUNTER, "dts_ethtool_rx_bytes_total", "h", l2, 6);
    dts_sink_add(&s, DTS_COUNTER, "dts_ethtool_tx_bytes_total", "h", l1, 7);
    dts_model_put(m, "ethtool", dts_sink_take(&s));
    dts_sink_fini(&s);
    struct dts_view *v = xcalloc(1, sizeof *v);
    v->naming = DTS_NAMING_DOCA;
    v->sets = xcalloc(1, sizeof *v->sets);
    v->n_sets = 1;
    v->sets[0].name = xstrdup("rx");
    struct dpf_error err;
    dpf_error_clear(&err);
    v->sets[0].cset = dts_tokens_parse_list("^rx_", "t", &err);
    v->ignore_names = dts_tokens_parse_list("@nothing", "t", &err);
    dts_model_set_view(m, v);
    struct dbuf b;
    dbuf_init(&b);
    assert_int_equal(
        dts_model_render_view(m, DTS_FMT_PROM, "rx", DTS_SET_ANY, &b), 2);
    assert_non_null(strstr(b.data,
                           "rx_bytes{provider=\"ethtool\",device=\"p0\",port="
                           "\"1\"} 5\n"));
    assert_null(strstr(b.data, "tx_bytes"));
    b.len = 0;
    assert_int_equal(
        dts_model_render_view(m, DTS_FMT_PROM, "nope", DTS_SET_ANY, &b),
        -ENOENT);
    assert_int_equal(
        dts_model_render_view(m, DTS_FMT_PROM, "rx", DTS_SET_FSET, &b),
        -ENOENT);
    /* projection to `device`: the two ports collapse into one series */
    v = xcalloc(1, sizeof *v);
    v->indexes = dts_tokens_parse_list("@device", "t", &err);
    dts_model_set_view(m, v);
    b.len = 0;
    assert_int_equal(
        dts_model_render_view(m, DTS_FMT_PROM, NULL, DTS_SET_ANY, &b), 2);
    assert_non_null(
        strstr(b.data, "dts_ethtool_rx_bytes_total{device=\"p0\"} 5\n"));
    b.len = 0;
    dts_model_render_view(m, DTS_FMT_JSON, NULL, DTS_SET_ANY, &b);
    json_error_t je;
    json_t *doc = json_loads(b.data, 0, &je);
    assert_non_null(doc);
    assert_int_equal(json_array_size(json_object_get(doc, "metrics")), 2);
    json_decref(doc);
    b.len = 0;
    dts_model_render_view(m, DTS_FMT_CSV, NULL, DTS_SET_ANY, &b);
    assert_true(str_has_prefix(b.data, "metric,value,labels\n"));
    assert_non_null(
        strstr(b.data, "dts_ethtool_tx_bytes_total,7,\"device=\"\"p0\"\"\"\n"));
    dbuf_free(&b);
    dts_model_free(m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_filter),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_labels_json),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_format_value),
        cmocka_unit_test(test_app_counter_names),
        cmocka_unit_test(test_doca_names),
        cmocka_unit_test(test_filter_doca_names),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_render_view),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
