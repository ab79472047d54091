/* Unit tests for yamljson: type resolution, errors, emitter layout and
 * round trips, the manifests of examples/ and (run with --dpf-fixtures,
 * see manifest-dirs.h) DPF's verbatim use-case manifests. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/base/util.h"
#include "lib/codecs/yamljson.h"
#include "manifest-dirs.h"

static json_t *
parse1(const char *text)
{
    json_t *doc = NULL;
    struct dpf_error err = {0};
    int rc = yamljson_parse_one(text, strlen(text), &doc, &err);
    if (rc < 0) {
        fail_msg("parse of \"%s\" failed: %s", text, err.message);
    }
    return doc;
}

/* Parse "v: <text>" and return the value (new reference). */
static json_t *
scalar(const char *text)
{
    char *y = xasprintf("v: %s\n", text);
    json_t *doc = parse1(y);
    free(y);
    json_t *v = json_incref(json_object_get(doc, "v"));
    json_decref(doc);
    return v;
}

static void
expect_parse_error(const char *text, const char *needle)
{
    json_t *docs = NULL;
    struct dpf_error err = {0};
    int rc = yamljson_parse(text, strlen(text), &docs, &err);
    if (rc == 0) {
        fail_msg("parse of \"%s\" should fail", text);
    }
    assert_null(docs);
    assert_int_equal(err.code, 400);
    assert_string_equal(err.reason, "BadRequest");
    if (!strstr(err.message, needle)) {
        fail_msg("error \"%s\" lacks \"%s\"", err.message, needle);
    }
}

static void
test_resolution_table(void **state)
{
    static const struct {
        const char *text;
        const char *json; /* expected value, as JSON */
    } cases[] = {
        {"", "null"},
        {"~", "null"},
        {"null", "null"},
        {"Null", "null"},
        {"NULL", "null"},
        {"nULL", "\"nULL\""},
        {"true", "true"},
        {"True", "true"},
        {"TRUE", "true"},
        {"false", "false"},
        {"yes", "true"},
        {"Yes", "true"},
        {"no", "false"},
        {"NO", "false"},
        {"on", "true"},
        {"Off", "false"},
        {"y", "\"y\""},
        {"tRue", "\"tRue\""},
        {"0", "0"},
        {"-0", "0"},
        {"42", "42"},
        {"+42", "42"},
        {"-17", "-17"},
        {"1_000", "1000"},
        {"0x1F", "31"},
        {"0o17", "15"},
        {"0644", "420"},
        {"09", "9"},
        {"9223372036854775807", "9223372036854775807"},
        {"-9223372036854775808", "-9223372036854775808"},
        {"9223372036854775808", "9.2233720368547758e18"},
        {"1.5", "1.5"},
        {"-.5", "-0.5"},
        {"1.", "1.0"},
        {"1e3", "1000.0"},
        {"6.02e+23", "6.02e23"},
        {"1e999", "\"1e999\""},
        {".inf", "\".inf\""},
        {".nan", "\".nan\""},
        {"0x", "\"0x\""},
        {"1.2.3", "\"1.2.3\""},
        {"12:30", "\"12:30\""},
        {"'true'", "\"true\""},
        {"\"10\"", "\"10\""},
        {"!!str 10", "\"10\""},
        {"!!int \"10\"", "10"},
        {"!!float 1", "1.0"},
        {"!!bool yes", "true"},
        {"!!null ''", "null"},
        {"hello world", "\"hello world\""},
        {"a: b", NULL}, /* error: mapping in a value position on one line */
        {"[1, two, 3.0]", "[1, \"two\", 3.0]"},
        {"{a: 1}", "{\"a\": 1}"},
        {"|\n  x\n  y\n", "\"x\\ny\\n\""},
        {">-\n  folded\n  text\n", "\"folded text\""},
        {"\"esc\\t\\u00e9\\x41\"", "\"esc\\t\\u00e9A\""},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        if (!cases[i].json) {
            char *y = xasprintf("v: %s\n", cases[i].text);
            expect_parse_error(y, "line 1");
            free(y);
            continue;
        }
        json_t *got = scalar(cases[i].text);
        json_error_t jerr;
        json_t *want = json_loads(cases[i].json, JSON_DECODE_ANY, &jerr);
        assert_non_null(want);
        if (!json_equal(got, want)) {
            char *g = json_dumps(got, JSON_ENCODE_ANY);
            fail_msg("\"%s\": got %s want %s", cases[i].text, g, cases[i].json);
        }
        json_decref(got);
        json_decref(want);
    }
}

static void
test_bad_tag(void **state)
{
    expect_parse_error("v: !!int abc\n", "line 1, column 4");
}

static void
test_multi_doc(void **state)
{
    const char *y = "---\na: 1\n---\n---\n# only a comment\n---\n- x\n...\n";
    json_t *docs;
    struct dpf_error err = {0};
    assert_int_equal(yamljson_parse(y, strlen(y), &docs, &err), 0);
    assert_int_equal(json_array_size(docs), 2);
    assert_true(json_is_object(json_array_get(docs, 0)));
    assert_true(json_is_array(json_array_get(docs, 1)));
    json_decref(docs);

    json_t *doc;
    assert_int_equal(yamljson_parse_one(y, strlen(y), &doc, &err), -EINVAL);
    assert_non_null(strstr(err.message, "one document"));
    assert_int_equal(yamljson_parse_one("", 0, &doc, &err), -EINVAL);
    assert_non_null(strstr(err.message, "no document"));
}

static void
test_errors(void **state)
{
    expect_parse_error("a: 1\na: 2\n", "line 2, column 1: duplicate key \"a\"");
    expect_parse_error("a:\n  b: 1\n  b: 2\n", "line 3, column 3");
    expect_parse_error("a: [1, 2\n", "line 2");
    expect_parse_error("a: b\n c\nd: :\n  - x\n", "line ");
    expect_parse_error("? [a]\n: 1\n", "mapping keys must be scalars");
    expect_parse_error("a: *nope\n", "unknown anchor \"nope\"");
    expect_parse_error("a: \"unterminated\n", "line ");
    expect_parse_error("\t- x\n", "line 1");
    expect_parse_error("{\"a\": 1, \"a\": 2}", "duplicate key \"a\"");
    /* deep nesting */
    struct dbuf b;
    dbuf_init(&b);
    for (int i = 0; i < 600; i++) {
        dbuf_puts(&b, "[");
    }
    for (int i = 0; i < 600; i++) {
        dbuf_puts(&b, "]");
    }
    expect_parse_error(b.data, "nesting deeper");
    dbuf_free(&b);
}

static void
test_alias_bomb(void **state)
{
    const char *bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                       "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                       "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                       "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                       "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                       "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                       "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n";
    expect_parse_error(bomb, "aliases expand to more than");

    /* ordinary anchors, aliases and merge keys work */
    json_t *doc = parse1("base: &b {x: 1, y: 2}\n"
                         "use: *b\n"
                         "merged:\n  <<: *b\n  y: 3\n"
                         "list: &l [1, 2]\nagain: *l\n");
    json_t *want = json_loads("{\"base\":{\"x\":1,\"y\":2},"
                              "\"use\":{\"x\":1,\"y\":2},"
                              "\"merged\":{\"y\":3,\"x\":1},"
                              "\"list\":[1,2],\"again\":[1,2]}",
                              0, NULL);
    assert_true(json_equal(doc, want));
    /* aliases are copies: changing one leaves the other alone */
    json_object_set_new(json_object_get(doc, "use"), "x", json_integer(9));
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(doc, "base"), "x")),
        1);
    json_decref(doc);
    json_decref(want);
}

static void
test_json_input(void **state)
{
    const char *j = "{\"kind\": \"DPU\", \"n\": 12345678901234, \"f\": 0.25,"
                    " \"l\": [true, null, \"s\\/x\"], \"o\": {}}";
    json_t *doc = parse1(j);
    json_t *want = json_loads(j, 0, NULL);
    assert_true(json_equal(doc, want));
    json_decref(doc);
    json_decref(want);
    /* JSON with a big integer falls back to the YAML parser */
    doc = parse1("{\"n\": 123456789012345678901234567890}");
    assert_true(json_is_real(json_object_get(doc, "n")));
    json_decref(doc);
}

static void
test_emit_layout(void **state)
{
    json_t *doc = json_loads(
        "{\"apiVersion\":\"v1\",\"kind\":\"Pod\","
        "\"metadata\":{\"name\":\"p\",\"labels\":{\"app\":\"x\"}},"
        "\"spec\":{\"containers\":[{\"name\":\"c\",\"args\":[\"--v=2\","
        "\"a b\"],\"ports\":[{\"containerPort\":80}]}],"
        "\"empty\":{},\"none\":[],\"nil\":null,\"t\":true,\"f\":1.5,"
        "\"nested\":[[1,2],[]],\"script\":\"line1\\nline2\\n\","
        "\"nonl\":\"a\\nb\"}}",
        0, NULL);
    assert_non_null(doc);
    char *y = yamljson_emit(doc);
    const char *want = "apiVersion: v1\n"
                       "kind: Pod\n"
                       "metadata:\n"
                       "  name: p\n"
                       "  labels:\n"
                       "    app: x\n"
                       "spec:\n"
                       "  containers:\n"
                       "  - name: c\n"
                       "    args:\n"
                       "    - --v=2\n"
                       "    - a b\n"
                       "    ports:\n"
                       "    - containerPort: 80\n"
                       "  empty: {}\n"
                       "  none: []\n"
                       "  nil: null\n"
                       "  t: true\n"
                       "  f: 1.5\n"
                       "  nested:\n"
                       "  - - 1\n"
                       "    - 2\n"
                       "  - []\n"
                       "  script: |\n"
                       "    line1\n"
                       "    line2\n"
                       "  nonl: |-\n"
                       "    a\n"
                       "    b\n";
    assert_string_equal(y, want);
    free(y);
    json_decref(doc);

    json_t *s = json_string("plain");
    y = yamljson_emit(s);
    assert_string_equal(y, "plain\n");
    free(y);
    json_decref(s);
}

static void
test_emit_quoting(void **state)
{
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"true", "v: \"true\"\n"},
        {"yes", "v: \"yes\"\n"},
        {"y", "v: \"y\"\n"},
        {"10", "v: \"10\"\n"},
        {"0644", "v: \"0644\"\n"},
        {"1e3", "v: \"1e3\"\n"},
        {"", "v: \"\"\n"},
        {"null", "v: \"null\"\n"},
        {"~", "v: \"~\"\n"},
        {"a: b", "v: 'a: b'\n"},
        {"a #b", "v: 'a #b'\n"},
        {"*", "v: '*'\n"},
        {"- x", "v: '- x'\n"},
        {"-x", "v: -x\n"},
        {"it's", "v: it's\n"},
        {"'q'", "v: '''q'''\n"},
        {" lead", "v: ' lead'\n"},
        {"trail ", "v: 'trail '\n"},
        {"tab\there", "v: \"tab\\there\"\n"},
        {"nul\x01", "v: \"nul\\x01\"\n"},
        {"1.2.3", "v: 1.2.3\n"},
        {"key:", "v: 'key:'\n"},
        {"http://x:80/p", "v: http://x:80/p\n"},
        {"---", "v: '---'\n"},
        {"caf\xc3\xa9", "v: caf\xc3\xa9\n"},
        {"\xe2\x80\xa8", "v: \"\\u2028\"\n"},
        /* YAML 1.1 timestamps: kubectl quotes them */
        {"2026-11-22T04:40:55Z", "v: \"2026-11-22T04:40:55Z\"\n"},
        {"2026-11-22", "v: \"2026-11-22\"\n"},
        {"2026x", "v: 2026x\n"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        json_t *doc = json_pack("{s:s}", "v", cases[i].in);
        char *y = yamljson_emit(doc);
        if (strcmp(y, cases[i].out)) {
            fail_msg("emit \"%s\": got [%s] want [%s]", cases[i].in, y,
                     cases[i].out);
        }
        free(y);
        json_decref(doc);
    }
}

static void
round_trip(json_t *doc)
{
    char *y = yamljson_emit(doc);
    json_t *back = NULL;
    struct dpf_error err = {0};
    if (yamljson_parse_one(y, strlen(y), &back, &err) < 0) {
        fail_msg("re-parse failed: %s\n%s", err.message, y);
    }
    if (!json_equal(doc, back)) {
        char *a = json_dumps(doc, JSON_ENCODE_ANY);
        char *b = json_dumps(back, JSON_ENCODE_ANY);
        fail_msg("round trip differs:\n%s\n%s\nyaml:\n%s", a, b, y);
    }
    json_decref(back);
    free(y);
}

static void
test_round_trip_strings(void **state)
{
    static const char *const tricky[] = {
        "true",
        "False",
        "on",
        "OFF",
        "y",
        "n",
        "~",
        "null",
        "",
        " ",
        "  x",
        "x  ",
        "10",
        "-10",
        "+1",
        "0x1f",
        "0o7",
        "0644",
        "1_000",
        "1.5",
        ".5",
        "1e5",
        ".inf",
        "-.Inf",
        ".NaN",
        "12:30:45",
        "0b101",
        "<<",
        "=",
        "-",
        "--",
        "---",
        "...",
        "- a",
        "? a",
        ": a",
        "a:",
        "a: b",
        "a #c",
        "#c",
        "@x",
        "`x",
        "%x",
        "!x",
        "&x",
        "*x",
        "|x",
        ">x",
        "[x]",
        "{x}",
        "x,y",
        "'",
        "\"",
        "\\",
        "\\n",
        "a\nb",
        "a\nb\n",
        "a\nb\n\n",
        "\n",
        "\n\n",
        "\na",
        "\n\na\n",
        " a\nb",
        "a\n b\n",
        "a\n  \nb",
        "a\n\tb",
        "\ta",
        "a\t",
        "a\r\nb",
        "\x01\x02",
        "\x7f",
        "\xc2\x85",
        "\xc2\xa0",
        "\xef\xbb\xbf"
        "bom",
        "\xe2\x80\xa9",
        "caf\xc3\xa9",
        "\xf0\x9f\x98\x80",
        "key: value\nother: x\n",
        "# comment\n",
        "- item\n- item2",
        "trailing space \nline",
        "{\"json\": true}",
        "a: &x 1",
    };
    json_t *obj = json_object();
    json_t *arr = json_array();
    for (size_t i = 0; i < ARRAY_SIZE(tricky); i++) {
        json_t *s = json_string(tricky[i]);
        assert_non_null(s);
        round_trip(s); /* as the whole document */
        json_array_append(arr, s);
        json_object_set(obj, tricky[i], s); /* as key and value */
        json_t *nested = json_pack("{s:[{s:O}]}", "k", tricky[i], s);
        round_trip(nested);
        json_decref(nested);
        json_decref(s);
    }
    round_trip(obj);
    round_trip(arr);
    json_decref(obj);
    json_decref(arr);

    /* long keys use the explicit form */
    char *longkey = xmalloc(3000);
    memset(longkey, 'k', 2999);
    longkey[2999] = '\0';
    json_t *lk = json_pack("{s:{s:i},s:[i]}", longkey, "a", 1, "x", 2);
    round_trip(lk);
    json_object_set_new(lk, "y", json_pack("{s:[i,i]}", longkey, 1, 2));
    round_trip(lk);
    json_decref(lk);
    free(longkey);

    /* numbers */
    json_t *nums = json_pack("[I,I,f,f,f,f,f,f]", (json_int_t) INT64_MAX,
                             (json_int_t) INT64_MIN, 0.1, 1e300, -2.5e-300, 1.0,
                             100.0, 123456789.125);
    round_trip(nums);
    json_decref(nums);
}

static int
not_hidden(const struct dirent *de)
{
    return de->d_name[0] != '.';
}

/* Parse every *.yaml under dir (subdirectories too when recurse): each
 * document is an object with kind and apiVersion that survives
 * emit + parse unchanged. Returns the number of files. */
static int
round_trip_dir(const char *dir, bool recurse)
{
    struct dirent **names;
    int n = scandir(dir, &names, not_hidden, alphasort);
    if (n < 0) {
        fail_msg("cannot open %s: %s", dir, strerror(errno));
    }
    int files = 0;
    for (int i = 0; i < n; i++) {
        char *path = xasprintf("%s/%s", dir, names[i]->d_name);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        if (S_ISDIR(st.st_mode) && recurse) {
            files += round_trip_dir(path, recurse);
        } else if (str_has_suffix(path, ".yaml")) {
            char *text;
            size_t len;
            assert_int_equal(file_read_all(path, &text, &len), 0);
            json_t *docs;
            struct dpf_error err = {0};
            if (yamljson_parse(text, len, &docs, &err) < 0) {
                fail_msg("%s: %s", path, err.message);
            }
            assert_true(json_array_size(docs) >= 1);
            size_t j;
            json_t *doc;
            json_array_foreach(docs, j, doc)
            {
                if (!json_is_string(json_object_get(doc, "kind")) ||
                    !json_is_string(json_object_get(doc, "apiVersion"))) {
                    fail_msg("%s: document %zu lacks kind or apiVersion", path,
                             j);
                }
                round_trip(doc);
            }
            json_decref(docs);
            free(text);
            files++;
        }
        free(path);
        free(names[i]);
    }
    free(names);
    return files;
}

/* The only document of path (new reference). */
static json_t *
parse_file(const char *path)
{
    char *text;
    size_t len;
    if (file_read_all(path, &text, &len) < 0) {
        fail_msg("cannot read %s", path);
    }
    json_t *doc;
    struct dpf_error err = {0};
    if (yamljson_parse_one(text, len, &doc, &err) < 0) {
        fail_msg("%s: %s", path, err.message);
    }
    free(text);
    return doc;
}

static void
test_examples(void **state)
{
    assert_true(round_trip_dir(EXAMPLES_DIR, true) >= 14);
}

/* The member of o at the given keys, NULL-terminated (NULL if absent). */
static json_t *
at(json_t *o, ...)
{
    va_list ap;
    va_start(ap, o);
    for (const char *k; o && (k = va_arg(ap, const char *));) {
        o = json_is_array(o) ? json_array_get(o, strtoul(k, NULL, 10))
                             : json_object_get(o, k);
    }
    va_end(ap);
    return o;
}

#define STR(...) json_string_value(at(__VA_ARGS__, NULL))

/* assert_string_equal() that fails, rather than crashes, on NULL */
static void
want_string(const char *got, const char *want, const char *what)
{
    if (!got || strcmp(got, want)) {
        fail_msg("%s: got %s%s%s, want \"%s\"", what, got ? "\"" : "",
                 got ? got : "no string", got ? "\"" : "", want);
    }
}

/* The YAML forms examples/ uses on purpose read as a user expects. */
static void
test_example_values(void **state)
{
    json_t *svc = parse_file(EXAMPLES_DIR "/hbn/08-dpuservice.yaml");
    json_t *sds = at(svc, "spec", "serviceDaemonSet", NULL);
    /* "labels:" with nothing after it is null */
    assert_true(json_is_null(at(sds, "labels", NULL)));
    /* "|-": the text as written, without the final newline */
    const char *nets = STR(sds, "annotations", "k8s.v1.cni.cncf.io/networks");
    assert_non_null(nets);
    assert_true(str_has_prefix(nets, "[\n  {\"name\": \"iprequest\""));
    assert_int_equal(nets[strlen(nets) - 1], ']');
    json_t *values = at(svc, "spec", "helmChart", "values", NULL);
    /* "|": one final newline kept; "on" inside it stays text */
    const char *j2 = STR(values, "configuration", "startupYAMLJ2");
    assert_non_null(j2);
    assert_true(str_has_suffix(j2, "{{ ipaddresses.ip_lo.ip }}\n"));
    assert_non_null(strstr(j2, "enable: on\n"));
    /* plain scalars: an integer; a dotted version stays a string */
    assert_int_equal(
        json_integer_value(at(values, "resources", "nvidia.com/bf_sf", NULL)),
        4);
    want_string(STR(svc, "spec", "helmChart", "source", "version"), "1.0.1",
                "helmChart.source.version");
    json_decref(svc);

    json_t *flavor = parse_file(EXAMPLES_DIR "/hbn/04-dpuflavor.yaml");
    /* quoted "0644" stays a string (plain 0644 would be the integer 420) */
    want_string(STR(flavor, "spec", "configFiles", "0", "permissions"), "0644",
                "configFiles[0].permissions");
    /* a double-quoted escape */
    want_string(STR(flavor, "spec", "configFiles", "2", "raw"),
                "Provisioned by DPF (flavor hbn-rack-a)\n",
                "configFiles[2].raw");
    json_decref(flavor);

    json_t *cluster = parse_file(EXAMPLES_DIR "/hbn/03-dpucluster.yaml");
    /* "" is the empty string, not null */
    want_string(STR(cluster, "spec", "clusterEndpoint", "keepalived",
                    "nodeSelector", "node-role.kubernetes.io/control-plane"),
                "", "keepalived.nodeSelector");
    json_decref(cluster);

    json_t *docs;
    char *text;
    size_t len;
    struct dpf_error err = {0};
    assert_int_equal(file_read_all(EXAMPLES_DIR
                                   "/dpudeployment/20-configurations.yaml",
                                   &text, &len),
                     0);
    assert_int_equal(yamljson_parse(text, len, &docs, &err), 0);
    /* ">-": lines folded into one, no final newline */
    const char *folded =
        STR(docs, "0", "spec", "serviceConfiguration", "serviceDaemonSet",
            "annotations", "k8s.v1.cni.cncf.io/networks");
    assert_non_null(folded);
    assert_null(strchr(folded, '\n'));
    assert_true(str_has_prefix(folded, "[{\"name\": \"iprequest\", "));
    assert_true(str_has_suffix(folded, "}}]"));
    json_decref(docs);
    free(text);
}

/* DPF's hbn_only manifests, verbatim (run with --dpf-fixtures). */
static void
test_dpf_fixtures(void **state)
{
    char *dir = manifest_dpf_fixtures_dir();
    assert_true(round_trip_dir(dir, false) >= 10);
    free(dir);
}

static void
test_dpf_fixture_values(void **state)
{
    char *dir = manifest_dpf_fixtures_dir();
    char *path = xasprintf("%s/hbn-dpuservice.yaml", dir);
    json_t *doc = parse_file(path);
    json_t *sds =
        json_object_get(json_object_get(doc, "spec"), "serviceDaemonSet");
    /* "labels:" with nothing after it is null */
    assert_true(json_is_null(json_object_get(sds, "labels")));
    const char *nets = json_string_value(json_object_get(
        json_object_get(sds, "annotations"), "k8s.v1.cni.cncf.io/networks"));
    assert_non_null(nets);
    assert_int_equal(nets[0], '[');
    assert_int_equal(nets[strlen(nets) - 1], ']'); /* |- strips */
    json_decref(doc);
    free(path);
    free(dir);
}

int
main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--dpf-fixtures")) {
        char *dir = manifest_dpf_fixtures_dir();
        int present = manifest_dpf_fixtures_present(dir);
        free(dir);
        if (present <= 0) {
            return present == 0 ? TEST_EXIT_SKIP : 1;
        }
        const struct CMUnitTest dpf[] = {
            cmocka_unit_test(test_dpf_fixtures),
            cmocka_unit_test(test_dpf_fixture_values),
        };
        return cmocka_run_group_tests_name("yamljson, DPF's manifests", dpf,
                                           NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolution_table),
        cmocka_unit_test(test_bad_tag),
        cmocka_unit_test(test_multi_doc),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_alias_bomb),
        cmocka_unit_test(test_json_input),
        cmocka_unit_test(test_emit_layout),
        cmocka_unit_test(test_emit_quoting),
        cmocka_unit_test(test_round_trip_strings),
        cmocka_unit_test(test_examples),
        cmocka_unit_test(test_example_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
