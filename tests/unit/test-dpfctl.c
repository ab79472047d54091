/* Unit tests for dpfctl's core library: JSONPath templates, table and
 * age formatting, the client-side apply patch, flag parsing and the
 * commands that need no server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpfctl/cmd-apply.h"
#include "dpfctl/dpfctl.h"
#include "lib/codecs/jsonpath.h"
#include "dpfctl/printer.h"
#include "lib/base/util.h"
#include "lib/codecs/yamljson.h"
#include "lib/codecs/duration.h"

static json_t *
yaml(const char *text)
{
    json_t *doc = NULL;
    struct dpf_error err = {0};
    if (yamljson_parse_one(text, strlen(text), &doc, &err) < 0) {
        fail_msg("bad test yaml: %s", err.message);
    }
    return doc;
}

static void
expect_render(const char *tmpl, const json_t *data, const char *want)
{
    struct dbuf b;
    struct dpf_error err = {0};
    dbuf_init(&b);
    int r = jsonpath_render(tmpl, data, &b, &err);
    if (r < 0) {
        fail_msg("%s: %s", tmpl, err.message);
    }
    if (strcmp(b.data, want) != 0) {
        fail_msg("%s: got \"%s\", want \"%s\"", tmpl, b.data, want);
    }
    dbuf_free(&b);
}

static void
test_jsonpath(void **state)
{
    json_t *d =
        yaml("kind: List\n"
             "items:\n"
             "- metadata: {name: a, labels: {app.kubernetes.io/name: x}}\n"
             "  spec: {n: 3, ok: true, f: 1.5}\n"
             "  status:\n"
             "    phase: Ready\n"
             "    conditions:\n"
             "    - {type: Ready, status: 'True'}\n"
             "    - {type: Synced, status: 'False'}\n"
             "- metadata: {name: b}\n"
             "  spec: {n: 7}\n"
             "  status: {phase: Pending}\n");
    expect_render("{.kind}", d, "List");
    expect_render(".kind", d, "List");
    expect_render("{$.items[0].metadata.name}", d, "a");
    expect_render("{.items[-1].metadata.name}", d, "b");
    expect_render("{.items[*].metadata.name}", d, "a b");
    expect_render("{.items[0:1].metadata.name}", d, "a");
    expect_render("{.items[5].metadata.name}", d, "");
    expect_render("{.items[0].spec.n}/{.items[0].spec.ok}/{.items[0].spec.f}",
                  d, "3/true/1.5");
    expect_render("{range .items[*]}{.metadata.name}={.status.phase}{\"\\n\"}"
                  "{end}",
                  d, "a=Ready\nb=Pending\n");
    expect_render("{.items[0].status.conditions[?(@.type==\"Ready\")].status}",
                  d, "True");
    expect_render("{.items[0].status.conditions[?(@.type!='Ready')].type}", d,
                  "Synced");
    expect_render("{.items[?(@.spec.n>5)].metadata.name}", d, "b");
    expect_render("{.items[?(@.spec.ok)].metadata.name}", d, "a");
    expect_render("{.items[0].metadata.labels['app.kubernetes.io/name']}", d,
                  "x");
    expect_render("{.items[0].metadata.labels.app\\.kubernetes\\.io/name}", d,
                  "x");
    expect_render("{..phase}", d, "Ready Pending");
    expect_render("{.items[1].spec}", d, "{\"n\":7}");
    expect_render("names: {.items[*].metadata.name}!", d, "names: a b!");
    expect_render("{.missing.deeper}", d, "");

    struct dbuf b;
    struct dpf_error err = {0};
    dbuf_init(&b);
    assert_int_equal(jsonpath_render("{.items[", d, &b, &err), -EINVAL);
    assert_int_equal(jsonpath_render("{range .items[*]}x", d, &b, &err),
                     -EINVAL);
    assert_int_equal(jsonpath_render("{end}", d, &b, &err), -EINVAL);
    dbuf_free(&b);

    json_t *res = NULL;
    assert_int_equal(jsonpath_eval("{.items[*].spec.n}", d, &res, &err), 0);
    assert_int_equal(json_array_size(res), 2);
    json_decref(res);
    json_decref(d);
}

/* Every boundary of kubectl's age rules (apimachinery's
 * duration.HumanDuration): seconds below 2m; minutes and seconds below
 * 10m; minutes below 3h; hours and minutes below 8h; hours below 48h;
 * days and hours below 8d; days below 2y; years and days below 8y; years
 * beyond. Each rule is checked on both sides of its edge and at a value
 * that would show the next finer unit if the edge were misplaced. */
static void
test_duration(void **state)
{
    enum { M = 60, H = 3600, D = 86400, Y = 365 * 86400 };
    static const struct {
        int64_t s;
        const char *want;
    } cases[] = {
        {-2, "<invalid>"},
        {-5, "<invalid>"},
        {-1, "0s"},
        {0, "0s"},
        {1, "1s"},
        {59, "59s"},
        {60, "60s"},
        {119, "119s"},
        {2 * M, "2m"},
        {2 * M + 1, "2m1s"},
        {3 * M + 12, "3m12s"},
        {9 * M + 59, "9m59s"},
        {10 * M, "10m"},
        {10 * M + 1, "10m"},
        {10 * M + 30, "10m"}, /* 630 s: seconds are dropped from 10m */
        {10 * M + 59, "10m"},
        {11 * M, "11m"},
        {179 * M, "179m"},
        {179 * M + 59, "179m"},
        {3 * H, "3h"},
        {3 * H + 59, "3h"},
        {3 * H + M, "3h1m"},
        {4 * H + 5 * M, "4h5m"},
        {7 * H + 59 * M + 59, "7h59m"},
        {8 * H, "8h"},
        {8 * H + M, "8h"},
        {47 * H, "47h"},
        {47 * H + 59 * M + 59, "47h"},
        {2 * D, "2d"},
        {2 * D + H - 1, "2d"},
        {2 * D + H, "2d1h"},
        {2 * D + 5 * H, "2d5h"},
        {8 * D - 1, "7d23h"},
        {8 * D, "8d"},
        {8 * D + H, "8d"},
        {30 * D, "30d"},
        {730 * D - 1, "729d"},
        {2 * Y, "2y"},
        {2 * Y + D - 1, "2y"},
        {2 * Y + D, "2y1d"},
        {3 * Y, "3y"},
        {3 * Y + 10 * D, "3y10d"},
        {8 * Y - 1, "7y364d"},
        {8 * Y, "8y"},
        {8 * Y + 100 * D, "8y"},
        {9 * Y, "9y"},
    };
    char buf[32];
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        duration_human(cases[i].s, buf, sizeof buf);
        if (strcmp(buf, cases[i].want) != 0) {
            fail_msg("%lld s: got %s want %s", (long long) cases[i].s, buf,
                     cases[i].want);
        }
    }
    int64_t t;
    assert_int_equal(printer_parse_time("2026-11-22T03:56:27Z", &t), 0);
    assert_int_equal(t, 1795319787);
    assert_int_equal(printer_parse_time("2026-11-22T03:56:27.123456Z", &t), 0);
    assert_int_equal(t, 1795319787);
    assert_int_equal(printer_parse_time("2026-11-22T04:56:27+01:00", &t), 0);
    assert_int_equal(t, 1795319787);
    assert_int_equal(printer_parse_time("yesterday", &t), -EINVAL);

    /* printer_age applies the same rules to a creationTimestamp; the
     * ages are mid-range so a second passing during the test does not
     * change the expected text */
    static const struct {
        int64_t ago;
        const char *want;
    } ages[] = {
        {30, "30s"},
        {5 * 60 + 30, "5m30s"},
        {630, "10m"},
        {2 * 3600 + 600, "130m"},
        {5 * 3600 + 1230, "5h20m"},
        {20 * 3600 + 600, "20h"},
        {3 * 86400 + 7230, "3d2h"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(ages); i++) {
        char ts[64];
        time_format_rfc3339(time_wall_ns() - ages[i].ago * 1000000000LL, ts,
                            sizeof ts);
        printer_age(ts, buf, sizeof buf);
        if (strcmp(buf, ages[i].want) != 0) {
            fail_msg("age of %s (%lld s ago): got %s want %s", ts,
                     (long long) ages[i].ago, buf, ages[i].want);
        }
    }
    printer_age("not a time", buf, sizeof buf);
    assert_string_equal(buf, "<unknown>");
}

static void
test_table(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    struct printer_table t;
    printer_table_init(&t, 3);
    const char *h[] = {"NAME", "OK", "AGE"};
    const char *r1[] = {"bf-bundle", "True", "5s"};
    const char *r2[] = {"x", NULL, "3m12s"};
    printer_table_add(&t, h);
    printer_table_add(&t, r1);
    printer_table_add(&t, r2);
    printer_table_print(&t, f);
    printer_table_free(&t);
    fclose(f);
    /* kubectl: padding 3, minimum width 6, last column unpadded */
    assert_string_equal(buf, "NAME        OK     AGE\n"
                             "bf-bundle   True   5s\n"
                             "x                  3m12s\n");
    free(buf);
}

static void
test_tabwrite(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    /* Go text/tabwriter semantics: a column block is a run of lines with
     * a cell in that column; a line without tabs ends the block */
    printer_tabwrite(f,
                     "Name:\tds\n"
                     "Annotations:\t<none>\n"
                     "Spec:\n"
                     "  Automatic Node Reboot:\ttrue\n"
                     "  Bfb:\n"
                     "    Name:\tbf\n"
                     "  Dpu Flavor:\tf\n"
                     "Events:\n"
                     "  Type\tReason\tAge\n"
                     "  ----\t------\t---\n"
                     "  Normal\tX\t5s\n",
                     0, 2);
    fclose(f);
    assert_string_equal(buf, "Name:         ds\n"
                             "Annotations:  <none>\n"
                             "Spec:\n"
                             "  Automatic Node Reboot:  true\n"
                             "  Bfb:\n"
                             "    Name:      bf\n"
                             "  Dpu Flavor:  f\n"
                             "Events:\n"
                             "  Type    Reason  Age\n"
                             "  ----    ------  ---\n"
                             "  Normal  X       5s\n");
    free(buf);
}

static void
test_three_way(void **state)
{
    json_t *orig = yaml("spec: {a: 1, b: 2, m: {x: 1, y: 2}, l: [1, 2]}\n"
                        "metadata: {name: n, labels: {k: v}}\n");
    json_t *mod = yaml("spec: {a: 1, c: 3, m: {x: 1}, l: [1]}\n"
                       "metadata: {name: n}\n");
    json_t *cur = yaml("spec: {a: 5, b: 2, m: {x: 1, y: 2, z: 9}, l: [1, 2],"
                       " defaulted: d}\n"
                       "metadata: {name: n, uid: u, labels: {k: v}}\n"
                       "status: {phase: Ready}\n");
    json_t *p = cmd_apply_three_way(orig, mod, cur);
    json_t *want = yaml("spec: {a: 1, b: null, c: 3, m: {y: null}, l: [1]}\n"
                        "metadata: {labels: null}\n");
    if (!json_equal(p, want)) {
        char *s = json_dumps(p, JSON_SORT_KEYS);
        fail_msg("patch %s", s);
    }
    json_decref(p);
    json_decref(want);

    /* nothing to do */
    p = cmd_apply_three_way(mod, mod, cur);
    json_decref(p);
    json_t *same = yaml("spec: {a: 1, c: 3, m: {x: 1}, l: [1], extra: e}\n"
                        "metadata: {name: n}\n");
    p = cmd_apply_three_way(mod, mod, same);
    assert_int_equal(json_object_size(p), 0);
    json_decref(p);
    /* no last-applied: no deletions */
    p = cmd_apply_three_way(NULL, mod, same);
    assert_int_equal(json_object_size(p), 0);
    json_decref(p);
    json_decref(same);
    /* nulls in the file: dropped, unless they delete a recorded field */
    json_t *o2 = yaml("spec: {a: 1, gone: x}\n");
    json_t *m2 = yaml("spec: {a: 1, gone: null, labels: null, "
                      "n: {x: null, y: 1}}\n");
    json_t *c2 = yaml("spec: {a: 1, gone: x}\n");
    p = cmd_apply_three_way(o2, m2, c2);
    want = yaml("spec: {gone: null, n: {y: 1}}\n");
    assert_true(json_equal(p, want));
    json_decref(want);
    json_decref(p);
    json_decref(o2);
    json_decref(m2);
    json_decref(c2);
    json_decref(orig);
    json_decref(mod);
    json_decref(cur);
}

static void
test_annotation(void **state)
{
    json_t *o = yaml("kind: BFB\napiVersion: g/v1\nmetadata:\n  name: a\n"
                     "  annotations:\n"
                     "    " CMD_APPLY_LAST_APPLIED ": old\n"
                     "spec: {url: 'http://x/a&b<c>'}\n");
    json_t *m = cmd_apply_with_annotation(o);
    const char *ann = json_string_value(json_object_get(
        json_object_get(json_object_get(m, "metadata"), "annotations"),
        CMD_APPLY_LAST_APPLIED));
    assert_non_null(ann);
    assert_string_equal(ann, "{\"apiVersion\":\"g/v1\",\"kind\":\"BFB\","
                             "\"metadata\":{\"annotations\":{},\"name\":\"a\"},"
                             "\"spec\":{\"url\":"
                             "\"http://x/a\\u0026b\\u003cc\\u003e\"}}\n");
    json_decref(m);
    json_decref(o);
}

static void
test_parse_duration(void **state)
{
    int64_t ms;
    assert_int_equal(duration_parse("30s", &ms), 0);
    assert_int_equal(ms, 30000);
    assert_int_equal(duration_parse("1m30s", &ms), 0);
    assert_int_equal(ms, 90000);
    assert_int_equal(duration_parse("500ms", &ms), 0);
    assert_int_equal(ms, 500);
    assert_int_equal(duration_parse("2h", &ms), 0);
    assert_int_equal(ms, 7200000);
    assert_int_equal(duration_parse("5", &ms), 0);
    assert_int_equal(ms, 5000);
    assert_int_equal(duration_parse("0", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(duration_parse("5x", &ms), -EINVAL);
    assert_int_equal(duration_parse("", &ms), -EINVAL);
}

/* Run dpfctl_main with captured output. */
static int
run(const char *const *args, char **out, char **err)
{
    size_t ol, el;
    FILE *fo = open_memstream(out, &ol);
    FILE *fe = open_memstream(err, &el);
    int argc = 0;
    char *argv[32];
    argv[argc++] = "dpfctl";
    for (; args[argc - 1]; argc++) {
        argv[argc] = (char *) args[argc - 1];
    }
    argv[argc] = NULL;
    int rc = dpfctl_main(argc, argv, fo, fe);
    fclose(fo);
    fclose(fe);
    return rc;
}

static void
test_cli_without_server(void **state)
{
    char *out, *err;
    const char *v[] = {"--version", NULL};
    assert_int_equal(run(v, &out, &err), 0);
    assert_string_equal(out, "dpfctl v" DPF_VERSION "\n");
    free(out);
    free(err);

    const char *h[] = {"get", "-h", NULL};
    assert_int_equal(run(h, &out, &err), 0);
    assert_non_null(strstr(out, "dpfctl get TYPE"));
    assert_non_null(strstr(out, "--kubeconfig"));
    free(out);
    free(err);

    const char *bad[] = {"get", "--bogus", "bfb", NULL};
    assert_int_equal(run(bad, &out, &err), 1);
    assert_non_null(strstr(err, "unknown flag: --bogus"));
    free(out);
    free(err);

    const char *cmd[] = {"frobnicate", NULL};
    assert_int_equal(run(cmd, &out, &err), 1);
    assert_non_null(strstr(err, "unknown command \"frobnicate\""));
    free(out);
    free(err);

    const char *noarg[] = {"get", "-o", NULL};
    assert_int_equal(run(noarg, &out, &err), 1);
    assert_non_null(strstr(err, "flag needs an argument"));
    free(out);
    free(err);

    const char *nokc[] = {"--kubeconfig", "/nonexistent/kc", "get", "bfb",
                          NULL};
    assert_int_equal(run(nokc, &out, &err), 1);
    assert_non_null(strstr(err, "/nonexistent/kc"));
    free(out);
    free(err);

    const char *cv[] = {"version", "--client", NULL};
    assert_int_equal(run(cv, &out, &err), 0);
    assert_string_equal(out, "Client Version: v" DPF_VERSION "\n");
    free(out);
    free(err);

    const char *ar[] = {"api-resources", NULL};
    assert_int_equal(run(ar, &out, &err), 0);
    assert_true(str_has_prefix(out, "NAME"));
    assert_non_null(strstr(out, "provisioning.dpu.nvidia.com/"));
    free(out);
    free(err);

    const char *crds[] = {"crds", "-o", "json", NULL};
    assert_int_equal(run(crds, &out, &err), 0);
    json_t *list = json_loads(out, 0, NULL);
    assert_non_null(list);
    assert_string_equal(json_string_value(json_object_get(list, "kind")),
                        "List");
    assert_true(json_array_size(json_object_get(list, "items")) > 0);
    json_decref(list);
    free(out);
    free(err);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jsonpath),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_tabwrite),
        cmocka_unit_test(test_three_way),
        cmocka_unit_test(test_annotation),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_cli_without_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
