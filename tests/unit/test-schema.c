/* Unit tests for the resource schema (api/schema.h): registry, DPF's
 * validation rules (each invalid case asserts rc, HTTP code and the exact
 * field path of the cause), defaulting, immutability, delete rules,
 * pruning, CRD export, printer columns, the manifests of examples/, and
 * (run with --dpf-fixtures, see manifest-dirs.h) DPF's hbn_only example
 * manifests, which must validate unchanged. */
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

#include "lib/codecs/quantity.h"
#include "api/schema-node.h"
#include "api/schema.h"
#include "lib/base/util.h"
#include "lib/codecs/yamljson.h"
#include "manifest-dirs.h"

static json_t *
load(const char *text)
{
    json_error_t jerr;
    json_t *o = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!o) {
        fail_msg("bad test JSON: %s: %s", jerr.text, text);
    }
    return o;
}

static const struct schema_kind *
kind(const char *name)
{
    const struct schema_kind *k = schema_find_name(name);
    if (!k) {
        fail_msg("no kind %s", name);
    }
    return k;
}

/* Default then validate (as the API server does for a create or update);
 * returns the rc and leaves the error in *err. */
static int
admit(const char *kname, const char *text, const char *old_text,
      struct dpf_error *err)
{
    const struct schema_kind *k = kind(kname);
    json_t *o = load(text);
    json_t *old = old_text ? load(old_text) : NULL;
    schema_prune(k, o, SCHEMA_UNKNOWN_PRUNE, NULL, NULL);
    schema_default(k, o);
    if (old) {
        schema_default(k, old);
    }
    int rc = schema_validate(k, o, old, err);
    json_decref(o);
    json_decref(old);
    return rc;
}

/* Asserts that the object is rejected with code and a cause at field. */
#define assert_invalid(kname, text, old, code_, field_)                     \
    do {                                                                    \
        struct dpf_error e_;                                                \
        int rc_ = admit(kname, text, old, &e_);                             \
        if (rc_ != -EINVAL || e_.code != (code_) || e_.n_causes < 1 ||      \
            strcmp(e_.causes[0].field, field_)) {                           \
            fail_msg("%s: rc=%d code=%d causes=%zu field=%s msg=%s", kname, \
                     rc_, e_.code, e_.n_causes,                             \
                     e_.n_causes ? e_.causes[0].field : "-", e_.message);   \
        }                                                                   \
    } while (0)

#define assert_valid(kname, text, old)                                    \
    do {                                                                  \
        struct dpf_error e_;                                              \
        int rc_ = admit(kname, text, old, &e_);                           \
        if (rc_ != 0) {                                                   \
            fail_msg("%s: unexpected rc=%d: %s", kname, rc_, e_.message); \
        }                                                                 \
    } while (0)

#define PROV "\"apiVersion\":\"provisioning.dpu.nvidia.com/v1alpha1\","
#define SVC "\"apiVersion\":\"svc.dpu.nvidia.com/v1alpha1\","
#define OPER "\"apiVersion\":\"operator.dpu.nvidia.com/v1alpha1\","
#define META(n) "\"metadata\":{\"name\":\"" n "\",\"namespace\":\"ns1\"},"
#define META_OP(n) \
    "\"metadata\":{\"name\":\"" n "\",\"namespace\":\"dpf-operator-system\"},"

/* ------------------------------------------------------------------ */

static void
test_registry(void **state)
{
    size_t n;
    const struct schema_kind *const *all = schema_kinds(&n);
    assert_int_equal(n, 45);
    for (size_t i = 0; i < n; i++) {
        const struct schema_kind *k = all[i];
        assert_ptr_equal(schema_find_resource(k->group, k->version, k->plural),
                         k);
        assert_ptr_equal(schema_find_kind(schema_api_version(k), k->kind), k);
        /* A view of another kind's objects (events.k8s.io Event) shares
         * its word with the stored kind, which comes first. */
        assert_ptr_equal(schema_find_name(k->kind),
                         k->stored_as ? k->stored_as : k);
        assert_non_null(k->root);
    }
    const struct schema_kind *k =
        schema_find_resource("provisioning.dpu.nvidia.com", "v1alpha1", "dpus");
    assert_string_equal(k->kind, "DPU");
    assert_ptr_equal(schema_find_name("dpu"), k);
    assert_ptr_equal(schema_find_name("DPUs.provisioning.dpu.nvidia.com"), k);
    assert_ptr_equal(schema_find_name("dpus.provisioning"), k);
    assert_null(schema_find_name("dpus.svc"));
    assert_string_equal(schema_api_version(k),
                        "provisioning.dpu.nvidia.com/v1alpha1");
    assert_string_equal(schema_find_name("po")->kind, "Pod");
    assert_string_equal(schema_find_name("deploy")->kind, "Deployment");
    assert_string_equal(schema_find_name("deployments.apps")->kind,
                        "Deployment");
    assert_string_equal(schema_api_version(schema_find_name("pods")), "v1");
    assert_string_equal(schema_api_version(schema_find_name("ds")), "apps/v1");
    assert_false(schema_find_name("ns")->namespaced);
    assert_false(schema_find_name("nodes")->namespaced);
    assert_null(schema_find_resource("", "v1", "nothings"));
    assert_null(schema_find_resource("svc.dpu.nvidia.com", "v1", "dpus"));
    assert_null(schema_find_kind("v1", "DPU"));
    assert_null(schema_find_name(""));

    /* the group registry lists every kind exactly once, under its group */
    size_t ng, listed = 0;
    const struct schema_group *const *groups = schema_groups(&ng);
    assert_int_equal(ng, 13);
    for (size_t i = 0; i < ng; i++) {
        const struct schema_group *g = groups[i];
        bool preferred_served = false;
        for (const struct schema_group_version *v = g->versions; v->version;
             v++) {
            preferred_served |= !strcmp(v->version, g->preferred_version);
            for (const struct schema_kind *const *kk = v->kinds; *kk; kk++) {
                assert_string_equal((*kk)->group, g->name);
                assert_string_equal((*kk)->version, v->version);
                assert_ptr_equal(schema_kind_group(*kk), g);
                listed++;
            }
        }
        assert_true(preferred_served);
    }
    assert_int_equal(listed, n);
    /* the registry is built: no group can join any more */
    const struct schema_group late = {
        .name = "late.example.org",
        .preferred_version = "v1",
        .versions = (const struct schema_group_version[]){{NULL, NULL}},
    };
    assert_int_equal(schema_register_group(&late), -EBUSY);
    /* flags: Kubernetes' kinds are built in, the platform's are CRDs */
    assert_true(schema_find_name("leases")->builtin);
    assert_true(schema_find_name("deployments")->builtin);
    assert_false(schema_find_name("ippools")->builtin);
    assert_false(k->builtin);
    assert_true(schema_find_name("namespaces")->name_is_label);
    assert_false(schema_find_name("pods")->name_is_label);
    const char *need[] = {
        "BFB",
        "DPUFlavor",
        "DPUSet",
        "DPU",
        "DPUCluster",
        "DPUService",
        "DPUDeployment",
        "DPUServiceTemplate",
        "DPUServiceConfiguration",
        "DPUServiceCredentialRequest",
        "DPUServiceInterface",
        "DPUServiceChain",
        "DPUServiceIPAM",
        "ServiceInterfaceSet",
        "ServiceInterface",
        "ServiceChainSet",
        "ServiceChain",
        "DPFOperatorConfig",
        "Namespace",
        "Node",
        "Pod",
        "Secret",
        "ConfigMap",
        "ServiceAccount",
        "Event",
        "Lease",
        "DaemonSet",
        "Deployment",
        "IPPool",
        "CIDRPool",
    };
    for (size_t i = 0; i < ARRAY_SIZE(need); i++) {
        assert_non_null(schema_find_name(need[i]));
    }
}

/* ------------------------------------------------------------------ */
/* provisioning                                                         */
/* ------------------------------------------------------------------ */

#define BFB(spec) "{" PROV "\"kind\":\"BFB\"," META("bf") "\"spec\":" spec "}"

static void
test_bfb_rules(void **state)
{
    assert_valid("bfb", BFB("{\"url\":\"http://x/y.bfb\"}"), NULL);
    assert_invalid("bfb", BFB("{}"), NULL, 422, "spec.url");
    assert_invalid("bfb", BFB("{\"url\":\"ftp://x/y.bfb\"}"), NULL, 422,
                   "spec.url");
    assert_invalid("bfb",
                   BFB("{\"url\":\"http://x/y.bfb\",\"fileName\":\"a b.bfb\"}"),
                   NULL, 422, "spec.fileName");
    assert_invalid("bfb",
                   BFB("{\"url\":\"http://x/y.bfb\",\"fileName\":\"a.img\"}"),
                   NULL, 422, "spec.fileName");
    /* whole spec immutable */
    assert_invalid("bfb", BFB("{\"url\":\"http://x/z.bfb\"}"),
                   BFB("{\"url\":\"http://x/y.bfb\"}"), 422, "spec");
    assert_valid("bfb", BFB("{\"url\":\"http://x/y.bfb\"}"),
                 BFB("{\"url\":\"http://x/y.bfb\"}"));

    struct dpf_error err;
    assert_int_equal(
        admit("bfb", BFB("{\"url\":\"ftp://x/y.bfb\"}"), NULL, &err), -EINVAL);
    assert_string_equal(err.reason, "Invalid");
    assert_string_equal(err.causes[0].type, DPF_CAUSE_INVALID);
    assert_string_equal(
        err.message,
        "BFB.provisioning.dpu.nvidia.com \"bf\" is invalid: spec.url: "
        "Invalid value: \"ftp://x/y.bfb\": spec.url in body should match "
        "'^(http|https)://.+\\.bfb$'");
    assert_int_equal(admit("bfb", BFB("{\"url\":\"http://x/z.bfb\"}"),
                           BFB("{\"url\":\"http://x/y.bfb\"}"), &err),
                     -EINVAL);
    assert_string_equal(err.causes[0].message,
                        "Invalid value: \"object\": Value is immutable");
}

/* Default a BFB as the API server does; returns spec.fileName (owned). */
static char *
bfb_default_filename(const char *text)
{
    json_t *o = load(text);
    schema_prune(kind("bfb"), o, SCHEMA_UNKNOWN_PRUNE, NULL, NULL);
    schema_default(kind("bfb"), o);
    const char *fn = json_string_value(
        json_object_get(json_object_get(o, "spec"), "fileName"));
    char *r = fn ? xstrdup(fn) : NULL;
    json_decref(o);
    return r;
}

/* DPF's mbfb.kb.io webhook: an unset or empty spec.fileName becomes
 * <namespace>-<name>.bfb; a given one is kept. */
static void
test_bfb_filename_default(void **state)
{
    static const struct {
        const char *spec;
        const char *want;
    } cases[] = {
        {"{\"url\":\"http://x/y.bfb\"}", "ns1-bf.bfb"},
        {"{\"url\":\"http://x/y.bfb\",\"fileName\":\"\"}", "ns1-bf.bfb"},
        {"{\"url\":\"http://x/y.bfb\",\"fileName\":null}", "ns1-bf.bfb"},
        {"{\"url\":\"http://x/y.bfb\",\"fileName\":\"mine.bfb\"}", "mine.bfb"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char *text =
            xasprintf("{" PROV "\"kind\":\"BFB\"," META("bf") "\"spec\":%s}",
                      cases[i].spec);
        char *fn = bfb_default_filename(text);
        if (!fn || strcmp(fn, cases[i].want) != 0) {
            fail_msg("%s: fileName %s, want %s", cases[i].spec,
                     fn ? fn : "(unset)", cases[i].want);
        }
        free(fn);
        free(text);
    }
    /* the defaulted object passes validation (the empty string alone
     * would fail the pattern) */
    assert_valid("bfb", BFB("{\"url\":\"http://x/y.bfb\",\"fileName\":\"\"}"),
                 NULL);
}

#define FLAVOR(spec) \
    "{" PROV "\"kind\":\"DPUFlavor\"," META("fl") "\"spec\":" spec "}"

static void
test_dpuflavor_rules(void **state)
{
    assert_valid("dpuflavor",
                 FLAVOR("{\"nvconfig\":[{\"device\":\"*\",\"parameters\":"
                        "[\"NUM_OF_VFS=8\"]}],\"dpuResources\":{\"cpu\":\"16\","
                        "\"memory\":\"32Gi\"},\"systemReservedResources\":{"
                        "\"cpu\":\"1500m\",\"memory\":\"32Gi\"}}"),
                 NULL);
    assert_invalid("dpuflavor",
                   FLAVOR("{\"nvconfig\":[{\"device\":\"*\"},{\"device\":"
                          "\"*\"}]}"),
                   NULL, 422, "spec.nvconfig");
    assert_invalid("dpuflavor", FLAVOR("{\"nvconfig\":[{\"device\":\"mlx\"}]}"),
                   NULL, 422, "spec.nvconfig[0].device");
    assert_invalid("dpuflavor",
                   FLAVOR("{\"systemReservedResources\":{\"cpu\":1}}"), NULL,
                   422, "spec.systemReservedResources");
    assert_invalid("dpuflavor",
                   FLAVOR("{\"dpuResources\":{\"cpu\":2,\"memory\":\"1Gi\"},"
                          "\"systemReservedResources\":{\"memory\":"
                          "\"2048Mi\"}}"),
                   NULL, 422, "spec.systemReservedResources");
    /* a reserved resource missing from dpuResources counts as 0 */
    assert_invalid("dpuflavor",
                   FLAVOR("{\"dpuResources\":{\"cpu\":2},"
                          "\"systemReservedResources\":{\"nvidia.com/sf\":1}}"),
                   NULL, 422, "spec.systemReservedResources");
    assert_invalid("dpuflavor", FLAVOR("{\"dpuResources\":{\"cpu\":\"two\"}}"),
                   NULL, 422, "spec.dpuResources[cpu]");
    assert_invalid("dpuflavor",
                   FLAVOR("{\"configFiles\":[{\"operation\":\"replace\"}]}"),
                   NULL, 422, "spec.configFiles[0].operation");
    /* immutable spec */
    assert_invalid("dpuflavor", FLAVOR("{\"bfcfgParameters\":[\"A=1\"]}"),
                   FLAVOR("{\"bfcfgParameters\":[\"A=2\"]}"), 422, "spec");

    struct dpf_error err;
    admit("dpuflavor",
          FLAVOR("{\"dpuResources\":{\"memory\":\"1Gi\"},"
                 "\"systemReservedResources\":{\"memory\":\"2Gi\"}}"),
          NULL, &err);
    assert_non_null(strstr(err.message, "[memory: 1Gi]"));
    admit("dpuflavor", FLAVOR("{\"bfcfgParameters\":[\"A=1\"]}"),
          FLAVOR("{\"bfcfgParameters\":[\"A=2\"]}"), &err);
    assert_non_null(strstr(err.message, "DPUFlavor spec is immutable"));
    assert_int_equal(admit("dpuflavor",
                           FLAVOR("{\"configFiles\":[{\"operation\":\"x\"}]}"),
                           NULL, &err),
                     -EINVAL);
    assert_string_equal(err.causes[0].type, DPF_CAUSE_NOT_SUPPORTED);
    assert_string_equal(err.causes[0].message,
                        "Unsupported value: \"x\": supported values: "
                        "\"override\", \"append\"");
}

#define CLUSTER(spec) \
    "{" PROV "\"kind\":\"DPUCluster\"," META("c1") "\"spec\":" spec "}"
#define KA(vrid, ifc)                                                         \
    "\"clusterEndpoint\":{\"keepalived\":{\"interface\":\"" ifc "\",\"vip\":" \
    "\"10.0.0.1\",\"virtualRouterID\":" vrid "}}"

static void
test_dpucluster_rules(void **state)
{
    assert_valid("dpucluster",
                 CLUSTER("{\"type\":\"kamaji\",\"version\":\"v1.30.2\"," KA(
                     "126", "eth0") "}"),
                 NULL);
    assert_valid("dpucluster",
                 CLUSTER("{\"type\":\"nvidia.com/x\",\"version\":\"v1\"}"),
                 NULL);
    assert_invalid("dpucluster",
                   CLUSTER("{\"type\":\"other\",\"version\":\"v1\"}"), NULL,
                   422, "spec.type");
    assert_invalid("dpucluster", CLUSTER("{\"type\":\"static\"}"), NULL, 422,
                   "spec.version");
    assert_invalid("dpucluster",
                   CLUSTER("{\"type\":\"static\",\"version\":\"v1\","
                           "\"maxNodes\":0}"),
                   NULL, 422, "spec.maxNodes");
    assert_invalid("dpucluster",
                   CLUSTER("{\"type\":\"static\",\"version\":\"v1\","
                           "\"maxNodes\":1001}"),
                   NULL, 422, "spec.maxNodes");
    assert_invalid("dpucluster",
                   CLUSTER("{\"type\":\"static\",\"version\":\"v1\","
                           "\"maxNodes\":\"ten\"}"),
                   NULL, 422, "spec.maxNodes");
    assert_invalid("dpucluster",
                   CLUSTER("{\"type\":\"kamaji\",\"version\":\"v1\"," KA(
                       "256", "eth0") "}"),
                   NULL, 422,
                   "spec.clusterEndpoint.keepalived.virtualRouterID");
    assert_invalid(
        "dpucluster",
        CLUSTER("{\"type\":\"kamaji\",\"version\":\"v1\"," KA("1", "") "}"),
        NULL, 422, "spec.clusterEndpoint.keepalived.interface");
    /* kubeconfig: may only change from empty */
    assert_valid(
        "dpucluster",
        CLUSTER(
            "{\"type\":\"static\",\"version\":\"v1\",\"kubeconfig\":\"a\"}"),
        CLUSTER(
            "{\"type\":\"static\",\"version\":\"v1\",\"kubeconfig\":\"\"}"));
    assert_valid(
        "dpucluster",
        CLUSTER(
            "{\"type\":\"static\",\"version\":\"v1\",\"kubeconfig\":\"a\"}"),
        CLUSTER("{\"type\":\"static\",\"version\":\"v1\"}"));
    assert_invalid(
        "dpucluster",
        CLUSTER(
            "{\"type\":\"static\",\"version\":\"v1\",\"kubeconfig\":\"b\"}"),
        CLUSTER(
            "{\"type\":\"static\",\"version\":\"v1\",\"kubeconfig\":\"a\"}"),
        422, "spec.kubeconfig");

    struct dpf_error err;
    admit("dpucluster",
          CLUSTER("{\"type\":\"static\",\"version\":\"v1\",\"maxNodes\":0}"),
          NULL, &err);
    assert_string_equal(err.causes[0].message,
                        "Invalid value: 0: spec.maxNodes in body should be "
                        "greater than or equal to 1");
    admit(
        "dpucluster",
        CLUSTER("{\"type\":\"static\",\"version\":\"v1\",\"maxNodes\":\"x\"}"),
        NULL, &err);
    assert_string_equal(err.causes[0].type, DPF_CAUSE_TYPE);
}

#define DPUSET(spec) \
    "{" PROV "\"kind\":\"DPUSet\"," META("dpuset") "\"spec\":" spec "}"
#define ROLLING(mu)                                                 \
    "{\"strategy\":{\"type\":\"RollingUpdate\",\"rollingUpdate\":{" \
    "\"maxUnavailable\":" mu "}}}"
#define MU_PATH "spec.strategy.rollingUpdate.maxUnavailable"

static void
test_dpuset_rules(void **state)
{
    assert_valid("dpuset", DPUSET(ROLLING("\"10%\"")), NULL);
    assert_valid("dpuset", DPUSET(ROLLING("\"100%\"")), NULL);
    assert_valid("dpuset", DPUSET(ROLLING("3")), NULL);
    assert_invalid("dpuset", DPUSET(ROLLING("\"0%\"")), NULL, 422, MU_PATH);
    assert_invalid("dpuset", DPUSET(ROLLING("\"101%\"")), NULL, 422, MU_PATH);
    assert_invalid("dpuset", DPUSET(ROLLING("0")), NULL, 422, MU_PATH);
    assert_invalid("dpuset", DPUSET(ROLLING("-2")), NULL, 422, MU_PATH);
    assert_invalid("dpuset", DPUSET(ROLLING("\"ten\"")), NULL, 422, MU_PATH);
    assert_invalid("dpuset", DPUSET(ROLLING("true")), NULL, 422, MU_PATH);
    assert_invalid("dpuset", DPUSET("{\"strategy\":{\"type\":\"Blue\"}}"), NULL,
                   422, "spec.strategy.type");
    assert_invalid("dpuset",
                   DPUSET("{\"dpuTemplate\":{\"spec\":{\"nodeEffect\":{"
                          "\"noEffect\":true,\"taint\":{\"key\":\"k\","
                          "\"effect\":\"NoSchedule\"}}}}}"),
                   NULL, 422, "spec.dpuTemplate.spec.nodeEffect");
    assert_invalid("dpuset",
                   DPUSET("{\"dpuTemplate\":{\"spec\":{\"nodeEffect\":{"
                          "\"taint\":{\"key\":\"k\"}}}}}"),
                   NULL, 422, "spec.dpuTemplate.spec.nodeEffect.taint.effect");
    const char *bad_ann =
        DPUSET("{\"dpuTemplate\":{\"annotations\":{\"provisioning.dpu.nvidia."
               "com/host-power-cycle-required\":\"maybe\"}}}");
    assert_invalid("dpuset", bad_ann, NULL, 422,
                   "spec.dpuTemplate.annotations[provisioning.dpu.nvidia.com/"
                   "host-power-cycle-required]");
    /* the annotation is checked on create only, as DPF does */
    assert_valid("dpuset", bad_ann, bad_ann);
    assert_valid("dpuset",
                 DPUSET("{\"dpuTemplate\":{\"annotations\":{\"provisioning.dpu."
                        "nvidia.com/host-power-cycle-required\":\"True\"}}}"),
                 NULL);

    struct dpf_error err;
    admit("dpuset", DPUSET(ROLLING("\"0%\"")), NULL, &err);
    assert_string_equal(
        err.message,
        "DPUSet.provisioning.dpu.nvidia.com \"dpuset\" is invalid: "
        "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: \"0%\": "
        "must be in range (0%, 100%]");
}

#define DPU(spec) "{" PROV "\"kind\":\"DPU\"," META("d1") "\"spec\":" spec "}"
#define DPU_ANN(ann, spec)                                     \
    "{" PROV "\"kind\":\"DPU\",\"metadata\":{\"name\":\"d1\"," \
    "\"namespace\":\"ns1\",\"annotations\":" ann "},\"spec\":" spec "}"

static void
test_dpu_rules(void **state)
{
    const char *base = DPU("{\"nodeName\":\"n1\",\"bfb\":\"b\"}");
    assert_valid("dpu", base, NULL);
    assert_invalid("dpu", DPU("{\"nodeName\":\"n1\"}"), NULL, 422, "spec.bfb");
    assert_invalid("dpu", DPU("{\"bfb\":\"b\"}"), NULL, 422, "spec.nodeName");
    assert_invalid("dpu",
                   DPU("{\"nodeName\":\"n1\",\"bfb\":\"b\",\"nodeEffect\":{"
                       "\"noEffect\":true,\"customLabel\":{\"a\":\"b\"}}}"),
                   NULL, 422, "spec.nodeEffect");
    /* an empty customLabel does not count as an effect */
    assert_valid("dpu",
                 DPU("{\"nodeName\":\"n1\",\"bfb\":\"b\",\"nodeEffect\":{"
                     "\"noEffect\":true,\"customLabel\":{}}}"),
                 NULL);
    const char *ann = DPU_ANN("{\"provisioning.dpu.nvidia.com/"
                              "host-power-cycle-required\":\"yes\"}",
                              "{\"nodeName\":\"n1\",\"bfb\":\"b\"}");
    assert_invalid("dpu", ann, NULL, 422,
                   "metadata.annotations[provisioning.dpu.nvidia.com/"
                   "host-power-cycle-required]");
    assert_valid("dpu", ann, ann);
    /* immutability */
    assert_invalid("dpu", DPU("{\"nodeName\":\"n2\",\"bfb\":\"b\"}"), base, 422,
                   "spec.nodeName");
    assert_invalid("dpu",
                   DPU("{\"nodeName\":\"n1\",\"bfb\":\"b\",\"pciAddress\":"
                       "\"0000-04-01\"}"),
                   DPU("{\"nodeName\":\"n1\",\"bfb\":\"b\",\"pciAddress\":"
                       "\"0000-04-00\"}"),
                   422, "spec.pciAddress");
    assert_valid("dpu",
                 DPU("{\"nodeName\":\"n1\",\"bfb\":\"b\",\"cluster\":{\"name\":"
                     "\"c\",\"namespace\":\"x\"}}"),
                 base);
    assert_invalid("dpu",
                   DPU("{\"nodeName\":\"n1\",\"bfb\":\"b\",\"cluster\":{"
                       "\"name\":\"c2\"}}"),
                   DPU("{\"nodeName\":\"n1\",\"bfb\":\"b\",\"cluster\":{"
                       "\"name\":\"c\"}}"),
                   422, "spec.cluster.name");
    assert_invalid("dpu",
                   DPU("{\"nodeName\":\"n1\",\"bfb\":\"b\",\"cluster\":{"
                       "\"namespace\":\"y\"}}"),
                   DPU("{\"nodeName\":\"n1\",\"bfb\":\"b\",\"cluster\":{"
                       "\"namespace\":\"x\"}}"),
                   422, "spec.cluster.namespace");
    /* node labels stay mutable */
    assert_valid("dpu",
                 DPU("{\"nodeName\":\"n1\",\"bfb\":\"b\",\"cluster\":{"
                     "\"nodeLabels\":{\"a\":\"1\"}}}"),
                 base);
    assert_invalid("dpu",
                   "{" PROV "\"kind\":\"DPU\"," META(
                       "d1") "\"spec\":{"
                             "\"nodeName\":\"n1\",\"bfb\":\"b\"},\"status\":{"
                             "\"phase\":\"Flying\"}}",
                   NULL, 422, "status.phase");
    assert_invalid(
        "dpu",
        "{" PROV "\"kind\":\"DPU\"," META(
            "d1") "\"spec\":{"
                  "\"nodeName\":\"n1\",\"bfb\":\"b\"},\"status\":{"
                  "\"phase\":\"Ready\",\"conditions\":[{\"type\":\"Ready\","
                  "\"status\":\"Maybe\",\"reason\":\"x\",\"message\":\"\","
                  "\"lastTransitionTime\":\"2024-01-01T00:00:00Z\"}]}}",
        NULL, 422, "status.conditions[0].status");
    assert_invalid(
        "dpu",
        "{" PROV "\"kind\":\"DPU\"," META(
            "d1") "\"spec\":{"
                  "\"nodeName\":\"n1\",\"bfb\":\"b\"},\"status\":{"
                  "\"phase\":\"Ready\",\"conditions\":[{\"type\":\"Ready\","
                  "\"status\":\"True\",\"reason\":\"x\",\"message\":\"\","
                  "\"lastTransitionTime\":\"yesterday\"}]}}",
        NULL, 422, "status.conditions[0].lastTransitionTime");
}

/* ------------------------------------------------------------------ */
/* svc                                                                  */
/* ------------------------------------------------------------------ */

#define DPUSVC(spec) \
    "{" SVC "\"kind\":\"DPUService\"," META("s1") "\"spec\":" spec "}"
#define HELM(url, ver)                                                      \
    "\"helmChart\":{\"source\":{\"repoURL\":\"" url "\",\"version\":\"" ver \
    "\"},\"values\":{\"any\":{\"thing\":[1,2]}}}"

static void
test_dpuservice_rules(void **state)
{
    assert_valid("dpuservice", DPUSVC("{" HELM("https://h/c", "1.0") "}"),
                 NULL);
    assert_valid("dpuservice",
                 DPUSVC("{" HELM("oci://h/c", "1.0") ",\"serviceID\":\"s\","
                                                     "\"interfaces\":[\"a\"]}"),
                 NULL);
    assert_invalid("dpuservice",
                   DPUSVC("{" HELM("https://h/c", "1") ",\"interfaces\":"
                                                       "[\"a\"]}"),
                   NULL, 422, "spec");
    assert_invalid("dpuservice", DPUSVC("{" HELM("http://h/c", "1") "}"), NULL,
                   422, "spec.helmChart.source.repoURL");
    assert_invalid("dpuservice", DPUSVC("{" HELM("https://h/c", "") "}"), NULL,
                   422, "spec.helmChart.source.version");
    assert_invalid("dpuservice", DPUSVC("{\"serviceID\":\"x\"}"), NULL, 422,
                   "spec.helmChart");
    assert_invalid("dpuservice",
                   DPUSVC("{" HELM("https://h/c", "1") ",\"serviceID\":\"x\","
                                                       "\"interfaces\":[]}"),
                   NULL, 422, "spec.interfaces");
    json_t *big =
        load(DPUSVC("{" HELM("https://h/c", "1") ",\"serviceID\":"
                                                 "\"x\",\"interfaces\":[]}"));
    json_t *ifs = schema_get(big, "spec.interfaces");
    for (int i = 0; i < 51; i++) {
        char name[16];
        snprintf(name, sizeof name, "if%d", i);
        json_array_append_new(ifs, json_string(name));
    }
    struct dpf_error err;
    assert_int_equal(schema_validate(kind("dpuservice"), big, NULL, &err),
                     -EINVAL);
    assert_string_equal(err.causes[0].field, "spec.interfaces");
    assert_string_equal(err.causes[0].type, DPF_CAUSE_TOO_MANY);
    assert_string_equal(err.causes[0].message,
                        "Too many: 51: must have at most 50 items");
    json_decref(big);
    admit("dpuservice",
          DPUSVC("{" HELM("https://h/c", "1") ",\"interfaces\":[\"a\"]}"), NULL,
          &err);
    assert_string_equal(err.causes[0].message,
                        "Invalid value: \"object\": serviceID must be "
                        "provided when interfaces are provided");
}

#define DEPLOY(chains)                                                       \
    "{" SVC "\"kind\":\"DPUDeployment\"," META(                              \
        "dd") "\"spec\":{\"dpus\":{"                                         \
              "\"bfb\":\"b\",\"flavor\":\"f\",\"dpuSets\":[{\"nameSuffix\":" \
              "\"s1\"}]},"                                                   \
              "\"services\":{\"hbn\":{\"serviceTemplate\":\"t\","            \
              "\"serviceConfiguration\":\"c\"}},\"serviceChains\":" chains   \
              "}}"
#define PORT_SVC "{\"service\":{\"name\":\"hbn\",\"interface\":\"p0_if\"}}"
#define PORT_IFC "{\"serviceInterface\":{\"matchLabels\":{\"uplink\":\"p0\"}}}"

static void
test_dpudeployment_rules(void **state)
{
    assert_valid("dpudeployment",
                 DEPLOY("[{\"ports\":[" PORT_SVC "," PORT_IFC "]}]"), NULL);
    assert_invalid("dpudeployment",
                   DEPLOY("[{\"ports\":[" PORT_IFC ",{\"service\":{\"name\":"
                          "\"hbn\",\"interface\":\"x\"},\"serviceInterface\":{"
                          "\"matchLabels\":{\"a\":\"b\"}}}]}]"),
                   NULL, 422, "spec.serviceChains[0].ports[1]");
    assert_invalid("dpudeployment", DEPLOY("[{\"ports\":[{}]}]"), NULL, 422,
                   "spec.serviceChains[0].ports[0]");
    assert_invalid("dpudeployment", DEPLOY("[]"), NULL, 422,
                   "spec.serviceChains");
    assert_invalid("dpudeployment",
                   DEPLOY("[{\"ports\":[{\"serviceInterface\":{"
                          "\"matchLabels\":{}}}]}]"),
                   NULL, 422,
                   "spec.serviceChains[0].ports[0].serviceInterface."
                   "matchLabels");
    assert_invalid(
        "dpudeployment",
        "{" SVC "\"kind\":\"DPUDeployment\"," META(
            "dd") "\"spec\":{\"dpus\":{"
                  "\"bfb\":\"b\",\"flavor\":\"f\",\"dpuSets\":[{\"nameSuffix\":"
                  "\""
                  "012345678901234567890123456789012345678901234567890123456789"
                  "0123\"}]},"
                  "\"services\":{},\"serviceChains\":[{\"ports\":[" PORT_IFC
                  "]}]}}",
        NULL, 422, "spec.dpus.dpuSets[0].nameSuffix");
}

#define IPAM(ns, spec)                                                      \
    "{" SVC "\"kind\":\"DPUServiceIPAM\",\"metadata\":{\"name\":\"pool1\"," \
    "\"namespace\":\"" ns "\"},\"spec\":" spec "}"
#define NET(x) "{\"ipv4Network\":" x "}"
#define SUB(x) "{\"ipv4Subnet\":" x "}"
#define OPNS "dpf-operator-system"

static void
test_dpuserviceipam_rules(void **state)
{
    const char *good =
        IPAM(OPNS, NET("{\"network\":\"10.0.0.0/16\",\"prefixSize\":24,"
                       "\"gatewayIndex\":1,\"exclusions\":[\"10.0.0.5\"],"
                       "\"allocations\":{\"n1\":\"10.0.3.0/24\"},\"routes\":[{"
                       "\"dst\":\"5.5.0.0/16\"}]}"));
    assert_valid("dpuserviceipam", good, NULL);
    assert_valid("dpuserviceipam",
                 IPAM(OPNS, SUB("{\"subnet\":\"192.168.0.0/20\",\"gateway\":"
                                "\"192.168.0.1\",\"perNodeIPCount\":256}")),
                 NULL);
    assert_invalid("dpuserviceipam",
                   IPAM("default", NET("{\"network\":\"10.0.0.0/16\","
                                       "\"prefixSize\":24}")),
                   NULL, 400, "metadata.namespace");
    assert_invalid("dpuserviceipam", IPAM(OPNS, "{}"), NULL, 400, "spec");
    assert_invalid("dpuserviceipam",
                   IPAM(OPNS, "{\"ipv4Network\":{\"network\":\"10.0.0.0/16\","
                              "\"prefixSize\":24},\"ipv4Subnet\":{\"subnet\":"
                              "\"10.1.0.0/16\",\"gateway\":\"10.1.0.1\","
                              "\"perNodeIPCount\":4}}"),
                   NULL, 400, "spec");
    assert_invalid("dpuserviceipam",
                   IPAM(OPNS, NET("{\"network\":\"10.0.0/16\","
                                  "\"prefixSize\":24}")),
                   NULL, 400, "spec.ipv4Network.network");
    assert_invalid("dpuserviceipam",
                   IPAM(OPNS, NET("{\"network\":\"10.0.0.0/16\","
                                  "\"prefixSize\":8}")),
                   NULL, 400, "spec.ipv4Network.prefixSize");
    assert_invalid("dpuserviceipam",
                   IPAM(OPNS, NET("{\"network\":\"10.0.0.0/16\",\"prefixSize\":"
                                  "24,\"exclusions\":[\"10.0.0.1\","
                                  "\"10.1.0.1\"]}")),
                   NULL, 400, "spec.ipv4Network.exclusions[1]");
    assert_invalid("dpuserviceipam",
                   IPAM(OPNS, NET("{\"network\":\"10.0.0.0/16\",\"prefixSize\":"
                                  "24,\"exclusions\":[\"nope\"]}")),
                   NULL, 400, "spec.ipv4Network.exclusions[0]");
    assert_invalid("dpuserviceipam",
                   IPAM(OPNS, NET("{\"network\":\"10.0.0.0/16\",\"prefixSize\":"
                                  "24,\"allocations\":{\"n1\":"
                                  "\"10.0.1.0/25\"}}")),
                   NULL, 400, "spec.ipv4Network.allocations[n1]");
    assert_invalid("dpuserviceipam",
                   IPAM(OPNS, SUB("{\"subnet\":\"192.168.0.0/20\",\"gateway\":"
                                  "\"192.169.0.1\",\"perNodeIPCount\":2}")),
                   NULL, 400, "spec.ipv4Subnet.gateway");
    assert_invalid("dpuserviceipam",
                   IPAM(OPNS, SUB("{\"subnet\":\"192.168.0.0/20\",\"gateway\":"
                                  "\"192.168.0.1\",\"perNodeIPCount\":2,"
                                  "\"defaultGateway\":true,\"routes\":[{"
                                  "\"dst\":\"0.0.0.0/0\"}]}")),
                   NULL, 400, "spec.ipv4Subnet.routes[0].dst");
    assert_invalid("dpuserviceipam",
                   IPAM(OPNS, SUB("{\"subnet\":\"192.168.0.0/20\",\"gateway\":"
                                  "\"192.168.0.1\",\"perNodeIPCount\":2,"
                                  "\"routes\":[{\"dst\":\"fd00::/64\"}]}")),
                   NULL, 400, "spec.ipv4Subnet.routes[0].dst");
    /* updates: no switching, no shrinking; growing is fine */
    assert_invalid("dpuserviceipam",
                   IPAM(OPNS, SUB("{\"subnet\":\"10.0.0.0/16\",\"gateway\":"
                                  "\"10.0.0.1\",\"perNodeIPCount\":2}")),
                   good, 400, "spec");
    assert_invalid("dpuserviceipam",
                   IPAM(OPNS, NET("{\"network\":\"10.0.0.0/20\","
                                  "\"prefixSize\":24}")),
                   good, 400, "spec.ipv4Network.network");
    assert_valid("dpuserviceipam",
                 IPAM(OPNS, NET("{\"network\":\"10.0.0.0/15\","
                                "\"prefixSize\":24}")),
                 good);
    /* schema errors stay 422; only the webhook's rules answer 400 */
    assert_invalid("dpuserviceipam",
                   IPAM(OPNS, NET("{\"network\":\"10.0.0.0/16\"}")), NULL, 422,
                   "spec.ipv4Network.prefixSize");

    struct dpf_error err;
    admit("dpuserviceipam", IPAM(OPNS, "{}"), NULL, &err);
    assert_string_equal(err.reason, "BadRequest");
    assert_non_null(strstr(err.message, "either ipv4Subnet or ipv4Network "
                                        "must be specified"));
}

#define SI(spec) \
    "{" SVC "\"kind\":\"ServiceInterface\"," META("si") "\"spec\":" spec "}"

static void
test_interface_chain_rules(void **state)
{
    assert_valid("serviceinterface", SI("{\"interfaceType\":\"ovn\"}"), NULL);
    assert_valid("serviceinterface",
                 SI("{\"interfaceType\":\"vf\",\"vf\":{\"vfID\":2,\"pfID\":0,"
                    "\"parentInterfaceRef\":\"pf0\"}}"),
                 NULL);
    assert_invalid("serviceinterface", SI("{\"interfaceType\":\"vf\"}"), NULL,
                   422, "spec");
    assert_invalid("serviceinterface", SI("{\"interfaceType\":\"tap\"}"), NULL,
                   422, "spec.interfaceType");
    assert_invalid("serviceinterface",
                   SI("{\"interfaceType\":\"vlan\",\"vlan\":{\"vlanID\":5}}"),
                   NULL, 422, "spec.vlan.parentInterfaceRef");
    assert_invalid(
        "dpuserviceinterface",
        "{" SVC "\"kind\":\"DPUServiceInterface\"," META(
            "x") "\"spec\":{\"template\":{\"spec\":{\"template\":{\"spec\":{"
                 "\"interfaceType\":\"service\"}}}}}}",
        NULL, 422, "spec.template.spec.template.spec");
    assert_invalid(
        "dpuservicechain",
        "{" SVC "\"kind\":\"DPUServiceChain\"," META(
            "c") "\"spec\":{\"template\":{\"spec\":{\"template\":{\"spec\":{"
                 "\"switches\":[{\"ports\":[{\"serviceInterface\":{"
                 "\"matchLabels\":{}}}]}]}}}}}}",
        NULL, 422,
        "spec.template.spec.template.spec.switches[0].ports[0]."
        "serviceInterface.matchLabels");
    assert_invalid("servicechain",
                   "{" SVC "\"kind\":\"ServiceChain\"," META(
                       "c") "\"spec\":{\"switches\":[{\"ports\":[]}]}}",
                   NULL, 422, "spec.switches[0].ports");
    assert_invalid("dpuservicecredentialrequest",
                   "{" SVC "\"kind\":\"DPUServiceCredentialRequest\"," META(
                       "cr") "\"spec\":{\"serviceAccount\":{\"name\":\"sa\"},"
                             "\"secret\":{\"name\":\"s\"},\"type\":"
                             "\"tokenFile\",\"duration\":\"1d\"}}",
                   NULL, 422, "spec.duration");
    assert_invalid("dpuservicecredentialrequest",
                   "{" SVC "\"kind\":\"DPUServiceCredentialRequest\"," META(
                       "cr") "\"spec\":{\"serviceAccount\":{\"name\":\"sa\"},"
                             "\"secret\":{\"name\":\"s\"},\"type\":\"json\"}}",
                   NULL, 422, "spec.type");
    assert_valid("dpuservicecredentialrequest",
                 "{" SVC "\"kind\":\"DPUServiceCredentialRequest\"," META(
                     "cr") "\"spec\":{\"serviceAccount\":{\"name\":\"sa\"},"
                           "\"secret\":{\"name\":\"s\"},\"type\":\"tokenFile\","
                           "\"duration\":\"1h30m\"}}",
                 NULL);
}

#define OPCFG(spec)                                     \
    "{" OPER "\"kind\":\"DPFOperatorConfig\"," META_OP( \
        "dpfoperatorconfig") "\"spec\":" spec "}"
#define PC "\"provisioningController\":{\"bfbPVCName\":\"bfb-pvc\"}"

static void
test_operator_rules(void **state)
{
    assert_valid("dpfoperatorconfig",
                 OPCFG("{" PC ",\"multus\":{\"image\":\"nvcr.io/nvidia/"
                       "multus:v1.2\",\"helmChart\":\"oci://ghcr.io/x/"
                       "dpu-networking:v0.1\"}}"),
                 NULL);
    assert_invalid("dpfoperatorconfig", OPCFG("{}"), NULL, 422,
                   "spec.provisioningController");
    assert_invalid("dpfoperatorconfig",
                   OPCFG("{\"provisioningController\":{\"bfbPVCName\":\"\"}}"),
                   NULL, 422, "spec.provisioningController.bfbPVCName");
    assert_invalid("dpfoperatorconfig",
                   OPCFG("{\"provisioningController\":{\"bfbPVCName\":\"p\","
                         "\"dmsTimeout\":0}}"),
                   NULL, 422, "spec.provisioningController.dmsTimeout");
    assert_invalid("dpfoperatorconfig",
                   OPCFG("{" PC ",\"networking\":{\"controlPlaneMTU\":9217}}"),
                   NULL, 422, "spec.networking.controlPlaneMTU");
    assert_invalid("dpfoperatorconfig",
                   OPCFG("{" PC ",\"networking\":{\"highSpeedMTU\":-1}}"), NULL,
                   422, "spec.networking.highSpeedMTU");
    assert_invalid("dpfoperatorconfig",
                   OPCFG("{" PC ",\"ovsCNI\":{\"image\":\"Bad/Image:tag\"}}"),
                   NULL, 422, "spec.ovsCNI.image");
    assert_invalid(
        "dpfoperatorconfig",
        OPCFG("{" PC ",\"flannel\":{\"helmChart\":\"http://x/c:1\"}}"), NULL,
        422, "spec.flannel.helmChart");
}

/* ------------------------------------------------------------------ */
/* metadata and core kinds                                              */
/* ------------------------------------------------------------------ */

#define CM(meta) \
    "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":" meta "}"

static void
test_metadata_rules(void **state)
{
    assert_valid("configmap", CM("{\"name\":\"a.b-c\",\"namespace\":\"x\"}"),
                 NULL);
    assert_valid("configmap", CM("{\"generateName\":\"gen-\"}"), NULL);
    assert_invalid("configmap", CM("{\"namespace\":\"x\"}"), NULL, 422,
                   "metadata.name");
    assert_invalid("configmap", CM("{\"name\":\"Upper\"}"), NULL, 422,
                   "metadata.name");
    assert_invalid("configmap", CM("{\"name\":\"a_b\"}"), NULL, 422,
                   "metadata.name");
    assert_invalid("configmap", CM("{\"generateName\":\"Gen-\"}"), NULL, 422,
                   "metadata.generateName");
    assert_invalid("configmap", CM("{\"name\":\"a\",\"namespace\":\"a.b\"}"),
                   NULL, 422, "metadata.namespace");
    assert_invalid("configmap",
                   CM("{\"name\":\"a\",\"labels\":{\"-bad\":\"x\"}}"), NULL,
                   422, "metadata.labels");
    assert_invalid("configmap",
                   CM("{\"name\":\"a\",\"labels\":{\"Bad.Prefix/x\":\"x\"}}"),
                   NULL, 422, "metadata.labels");
    assert_invalid("configmap",
                   CM("{\"name\":\"a\",\"labels\":{\"x\":\"bad value\"}}"),
                   NULL, 422, "metadata.labels");
    assert_invalid("configmap",
                   CM("{\"name\":\"a\",\"labels\":{\"x\":\"0123456789012345678"
                      "9012345678901234567890123456789012345678901234\"}}"),
                   NULL, 422, "metadata.labels");
    assert_valid("configmap",
                 CM("{\"name\":\"a\",\"labels\":{\"dpu.nvidia.com/x_y.z\":\"\","
                    "\"k\":\"V-1_2.3\"}}"),
                 NULL);
    assert_invalid("configmap",
                   CM("{\"name\":\"a\",\"annotations\":{\"a b\":\"x\"}}"), NULL,
                   422, "metadata.annotations");
    /* names: 253 for subdomains, 63 (label) for namespaces */
    char name[300];
    memset(name, 'a', 254);
    name[254] = '\0';
    char *text = xasprintf(CM("{\"name\":\"%s\"}"), name);
    assert_invalid("configmap", text, NULL, 422, "metadata.name");
    free(text);
    assert_invalid("namespace",
                   "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\","
                   "\"metadata\":{\"name\":\"a.b\"}}",
                   NULL, 422, "metadata.name");
    assert_valid("namespace",
                 "{\"apiVersion\":\"v1\",\"kind\":\"Namespace\","
                 "\"metadata\":{\"name\":\"dpf-operator-system\"}}",
                 NULL);
    assert_invalid("node",
                   "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{"
                   "\"name\":\"n1\",\"namespace\":\"x\"}}",
                   NULL, 422, "metadata.namespace");
    /* annotations at most 256 KiB in total */
    struct dbuf b;
    dbuf_init(&b);
    dbuf_puts(&b, CM("{\"name\":\"a\",\"annotations\":{\"big\":\""));
    for (int i = 0; i < 256 * 1024 / 8 + 1; i++) {
        dbuf_puts(&b, "xxxxxxxx");
    }
    dbuf_puts(&b, "\"}}}");
    assert_invalid("configmap", b.data, NULL, 422, "metadata.annotations");
    dbuf_free(&b);

    struct dpf_error err;
    assert_int_equal(schema_validate_name(kind("namespace"), "ok-name", &err),
                     0);
    assert_int_equal(schema_validate_name(kind("namespace"), "a.b", &err),
                     -EINVAL);
    assert_int_equal(schema_validate_name(kind("pod"), "a.b", &err), 0);
    assert_int_equal(schema_validate_name(kind("pod"), "A", &err), -EINVAL);
    assert_int_equal(err.code, 422);
    assert_string_equal(err.causes[0].field, "metadata.name");
    /* a kind mismatch is reported */
    assert_invalid("configmap",
                   "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{"
                   "\"name\":\"a\"}}",
                   NULL, 422, "kind");
}

#define SECRET(body)                                                           \
    "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"s\"}" \
    "," body "}"
#define POD(spec)                                                            \
    "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"}," \
    "\"spec\":" spec "}"

static void
test_core_rules(void **state)
{
    assert_valid("secret", SECRET("\"data\":{\"k\":\"aGVsbG8=\"}"), NULL);
    assert_invalid("secret", SECRET("\"data\":{\"k\":\"aGVsbG8\"}"), NULL, 422,
                   "data[k]");
    assert_invalid("secret", SECRET("\"data\":{\"k\":\"a!==\"}"), NULL, 422,
                   "data[k]");
    assert_invalid("secret", SECRET("\"data\":{\"k/x\":\"YQ==\"}"), NULL, 422,
                   "data");
    assert_invalid("secret",
                   SECRET("\"type\":\"kubernetes.io/tls\",\"data\":{"
                          "\"tls.crt\":\"YQ==\"}"),
                   NULL, 422, "data[tls.key]");
    assert_invalid("secret", SECRET("\"type\":\"a\""), SECRET("\"type\":\"b\""),
                   422, "type");
    assert_invalid("secret", SECRET("\"data\":{\"k\":5}"), NULL, 422,
                   "data[k]");
    assert_valid("pod",
                 POD("{\"containers\":[{\"name\":\"c\",\"image\":\"i\"}]}"),
                 NULL);
    assert_invalid("pod", POD("{}"), NULL, 422, "spec.containers");
    assert_invalid("pod", POD("{\"containers\":[{\"name\":\"c\"}]}"), NULL, 422,
                   "spec.containers[0].image");
    assert_invalid("pod", POD("{\"containers\":[{\"image\":\"i\"}]}"), NULL,
                   422, "spec.containers[0].name");
    assert_invalid("pod",
                   POD("{\"containers\":[{\"name\":\"c\",\"image\":\"i\"},{"
                       "\"name\":\"c\",\"image\":\"j\"}]}"),
                   NULL, 422, "spec.containers[1].name");
    assert_invalid("pod",
                   POD("{\"containers\":[{\"name\":\"C_1\",\"image\":\"i\"}]}"),
                   NULL, 422, "spec.containers[0].name");
    assert_invalid("pod",
                   POD("{\"containers\":[{\"name\":\"c\",\"image\":\"i\"}],"
                       "\"restartPolicy\":\"Sometimes\"}"),
                   NULL, 422, "spec.restartPolicy");
    /* pod updates: image may change, the rest may not (nodeName from empty) */
    const char *p1 = POD("{\"containers\":[{\"name\":\"c\",\"image\":\"i\"}]}");
    assert_valid(
        "pod",
        POD("{\"containers\":[{\"name\":\"c\",\"image\":\"i2\"}],\"nodeName\":"
            "\"n1\"}"),
        p1);
    assert_invalid("pod",
                   POD("{\"containers\":[{\"name\":\"c\",\"image\":\"i\","
                       "\"args\":[\"x\"]}]}"),
                   p1, 422, "spec");
#define DEP(app)                                                         \
    "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{" \
    "\"name\":\"d\"},\"spec\":{\"selector\":{\"matchLabels\":{\"app\":"  \
    "\"x\"}},\"template\":{\"metadata\":{\"labels\":{\"app\":\"" app     \
    "\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\"}]}}}}"
    char *ok = xstrdup(DEP("x"));
    char *bad = xstrdup(DEP("y"));
    assert_valid("deployment", ok, NULL);
    assert_invalid("deployment", bad, NULL, 422,
                   "spec.template.metadata.labels");
    free(ok);
    free(bad);
    assert_invalid("event",
                   "{\"apiVersion\":\"v1\",\"kind\":\"Event\",\"metadata\":{"
                   "\"name\":\"e\",\"namespace\":\"a\"},\"involvedObject\":{"
                   "\"kind\":\"Pod\",\"name\":\"p\",\"namespace\":\"b\"}}",
                   NULL, 422, "involvedObject.namespace");
    assert_invalid("cidrpool",
                   "{\"apiVersion\":\"nv-ipam.nvidia.com/v1alpha1\",\"kind\":"
                   "\"CIDRPool\",\"metadata\":{\"name\":\"p\"},\"spec\":{"
                   "\"cidr\":\"10.0.0.0/8\"}}",
                   NULL, 422, "spec.perNodeNetworkPrefix");
}

/* ------------------------------------------------------------------ */
/* defaulting                                                           */
/* ------------------------------------------------------------------ */

static json_t *
defaulted(const char *kname, const char *text)
{
    const struct schema_kind *k = kind(kname);
    json_t *o = load(text);
    schema_default(k, o);
    struct dpf_error err;
    if (schema_validate(k, o, NULL, &err) < 0) {
        fail_msg("defaulted object invalid: %s", err.message);
    }
    return o;
}

static void
assert_json(const json_t *o, const char *path, const char *want)
{
    json_t *w = load(want);
    json_t *v = NULL;
    /* path is dotted; no indices needed here */
    const json_t *cur = o;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save, *t = strtok_r(buf, ".", &save); t && cur;
         t = strtok_r(NULL, ".", &save)) {
        cur = json_object_get(cur, t);
    }
    v = (json_t *) cur;
    if (!v || !json_equal(v, w)) {
        char *got = v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;
        fail_msg("%s: got %s want %s", path, got ? got : "(absent)", want);
    }
    json_decref(w);
}

static void
test_defaults(void **state)
{
    json_t *o = defaulted("bfb", BFB("{\"url\":\"http://x/y.bfb\"}"));
    assert_json(o, "spec.fileName", "\"ns1-bf.bfb\"");
    assert_json(o, "status", "{\"phase\":\"Initializing\"}");
    json_decref(o);
    o = defaulted("bfb", BFB("{\"url\":\"http://x/y.bfb\",\"fileName\":"
                             "\"mine.bfb\"}"));
    assert_json(o, "spec.fileName", "\"mine.bfb\"");
    json_decref(o);

    o = defaulted("dpucluster",
                  CLUSTER("{\"type\":\"static\",\"version\":\"v1\"}"));
    assert_json(o, "spec.maxNodes", "1000");
    assert_json(o, "status.phase", "\"Pending\"");
    json_decref(o);

    /* DPUSet: no strategy -> Recreate; no template -> noEffect */
    o = defaulted("dpuset", DPUSET("{}"));
    assert_json(o, "spec.strategy", "{\"type\":\"Recreate\"}");
    assert_json(o, "spec.dpuTemplate.spec.nodeEffect", "{\"noEffect\":true}");
    json_decref(o);
    /* RollingUpdate without rollingUpdate -> maxUnavailable 1; a template
     * spec gets the CRD default drain (DPF quirk 13) */
    o = defaulted("dpuset", DPUSET("{\"strategy\":{\"type\":\"RollingUpdate\"},"
                                   "\"dpuTemplate\":{\"spec\":{\"bfb\":{"
                                   "\"name\":\"b\"}}}}"));
    assert_json(o, "spec.strategy.rollingUpdate", "{\"maxUnavailable\":1}");
    assert_json(o, "spec.dpuTemplate.spec.nodeEffect",
                "{\"drain\":{\"automaticNodeReboot\":true}}");
    assert_json(o, "spec.dpuTemplate.spec.automaticNodeReboot", "true");
    json_decref(o);
    o = defaulted("dpuset", DPUSET("{\"strategy\":{}}"));
    assert_json(o, "spec.strategy.type", "\"Recreate\"");
    json_decref(o);

    o = defaulted("dpu", DPU("{\"nodeName\":\"n1\",\"bfb\":\"b\"}"));
    assert_json(o, "spec.nodeEffect",
                "{\"drain\":{\"automaticNodeReboot\":true}}");
    assert_json(o, "spec.automaticNodeReboot", "true");
    assert_json(o, "status.phase", "\"Initializing\"");
    json_decref(o);
    o = defaulted("dpu",
                  DPU("{\"nodeName\":\"n1\",\"bfb\":\"b\",\"nodeEffect\":"
                      "{\"drain\":{}}}"));
    assert_json(o, "spec.nodeEffect.drain.automaticNodeReboot", "true");
    json_decref(o);

    o = defaulted("dpfoperatorconfig", OPCFG("{" PC "}"));
    assert_json(o, "spec.networking",
                "{\"controlPlaneMTU\":1500,\"highSpeedMTU\":1500}");
    json_decref(o);

    o = defaulted("secret", SECRET("\"stringData\":{\"a\":\"hello\"},"
                                   "\"data\":{\"b\":\"eA==\"}"));
    assert_json(o, "data", "{\"a\":\"aGVsbG8=\",\"b\":\"eA==\"}");
    assert_json(o, "type", "\"Opaque\"");
    assert_null(json_object_get(o, "stringData"));
    json_decref(o);

    o = defaulted("deployment",
                  "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\","
                  "\"metadata\":{\"name\":\"d\"},\"spec\":{\"selector\":{"
                  "\"matchLabels\":{\"a\":\"b\"}},\"template\":{\"metadata\":{"
                  "\"labels\":{\"a\":\"b\"}},\"spec\":{\"containers\":[{"
                  "\"name\":\"c\",\"image\":\"reg/img:1.0\"}]}}}}");
    assert_json(o, "spec.replicas", "1");
    assert_json(o, "spec.strategy.rollingUpdate.maxSurge", "\"25%\"");
    assert_json(o, "spec.template.spec.restartPolicy", "\"Always\"");
    json_decref(o);
}

/* ------------------------------------------------------------------ */
/* pruning                                                              */
/* ------------------------------------------------------------------ */

static void
test_prune(void **state)
{
    const struct schema_kind *k = kind("dpuservice");
    const char *text = DPUSVC(
        "{" HELM("https://h/c",
                 "1") ",\"bogus\":1,\"serviceID\":null,"
                      "\"serviceDaemonSet\":{\"labels\":null,\"extra\":{}}}");
    json_t *o = load(text);
    json_object_set_new(json_object_get(o, "metadata"), "weird", json_true());
    json_object_set_new(o, "top", json_true());
    json_t *warn = NULL;
    struct dpf_error err = {0};
    assert_int_equal(schema_prune(k, o, SCHEMA_UNKNOWN_WARN, &warn, &err), 0);
    assert_non_null(warn);
    json_t *want = load("[\"metadata.weird\",\"spec.bogus\","
                        "\"spec.serviceDaemonSet.extra\",\"top\"]");
    /* order follows the object: compare as sets */
    assert_int_equal(json_array_size(warn), json_array_size(want));
    size_t i;
    json_t *p;
    json_array_foreach(want, i, p)
    {
        bool found = false;
        size_t j;
        json_t *q;
        json_array_foreach(warn, j, q)
        {
            found |= json_equal(p, q);
        }
        if (!found) {
            fail_msg("missing warning %s", json_string_value(p));
        }
    }
    json_decref(want);
    json_decref(warn);
    assert_null(schema_get(o, "spec.bogus"));
    assert_null(schema_get(o, "spec.serviceID")); /* null pruned */
    assert_null(schema_get(o, "spec.serviceDaemonSet.labels"));
    assert_non_null(schema_get(o, "spec.helmChart.values.any.thing"));
    assert_non_null(schema_get(o, "metadata.name"));
    json_decref(o);

    o = load(text);
    assert_int_equal(schema_prune(k, o, SCHEMA_UNKNOWN_STRICT, NULL, &err),
                     -EINVAL);
    assert_int_equal(err.code, 400);
    assert_string_equal(err.reason, "BadRequest");
    assert_string_equal(err.message, "strict decoding error: unknown field "
                                     "\"spec.bogus\", unknown field "
                                     "\"spec.serviceDaemonSet.extra\"");
    assert_string_equal(err.causes[0].type, DPF_CAUSE_UNKNOWN_FIELD);
    json_decref(o);

    /* plain prune: silent; a null with a default gets the default */
    o = load(CLUSTER("{\"type\":\"static\",\"version\":\"v1\",\"maxNodes\":"
                     "null,\"x\":1}"));
    assert_int_equal(
        schema_prune(kind("dpucluster"), o, SCHEMA_UNKNOWN_PRUNE, NULL, NULL),
        0);
    schema_default(kind("dpucluster"), o);
    assert_json(o, "spec.maxNodes", "1000");
    assert_null(schema_get(o, "spec.x"));
    json_decref(o);

    /* pod specs keep unknown fields; labels maps keep every key */
    o = load(POD("{\"containers\":[{\"name\":\"c\",\"image\":\"i\","
                 "\"securityContext\":{\"privileged\":true}}],"
                 "\"hostPID\":true}"));
    json_object_set_new(json_object_get(o, "metadata"), "labels",
                        json_pack("{s:s}", "any", "thing"));
    assert_int_equal(
        schema_prune(kind("pod"), o, SCHEMA_UNKNOWN_STRICT, NULL, &err), 0);
    assert_non_null(schema_get(o, "spec.hostPID"));
    assert_non_null(schema_get(o, "metadata.labels.any"));
    json_decref(o);
}

/* ------------------------------------------------------------------ */
/* delete rules                                                         */
/* ------------------------------------------------------------------ */

struct fake_store {
    json_t *objs; /* array of objects with "_plural" keys */
    int calls;
};

static int
fake_list(void *arg, const char *group, const char *plural, const char *ns,
          int (*cb)(void *cbarg, const json_t *obj), void *cbarg)
{
    struct fake_store *fs = arg;
    fs->calls++;
    size_t i;
    json_t *o;
    json_array_foreach(fs->objs, i, o)
    {
        const char *p = json_string_value(json_object_get(o, "_plural"));
        const char *ons = schema_get_str(o, "metadata.namespace");
        if (strcmp(p, plural) || (ns && strcmp(ns, ons))) {
            continue;
        }
        assert_string_equal(group, "provisioning.dpu.nvidia.com");
        cb(cbarg, o);
    }
    return 0;
}

static void
test_delete_rules(void **state)
{
    struct fake_store fs = {
        .objs =
            load("[{\"_plural\":\"dpusets\",\"metadata\":{\"name\":\"set1\","
                 "\"namespace\":\"ns1\"},\"spec\":{\"dpuTemplate\":{\"spec\":{"
                 "\"dpuFlavor\":\"fl\",\"bfb\":{\"name\":\"bf\"}}}}},"
                 "{\"_plural\":\"dpusets\",\"metadata\":{\"name\":\"set2\","
                 "\"namespace\":\"ns1\"},\"spec\":{\"dpuTemplate\":{\"spec\":{"
                 "\"dpuFlavor\":\"fl\",\"bfb\":{\"name\":\"other\"}}}}},"
                 "{\"_plural\":\"dpus\",\"metadata\":{\"name\":\"d1\","
                 "\"namespace\":\"ns2\"},\"spec\":{\"dpuFlavor\":\"fl2\"}}]")};
    struct schema_reader reader = {.list = fake_list, .arg = &fs};
    struct dpf_error err;

    json_t *fl = load(FLAVOR("{}"));
    assert_int_equal(
        schema_validate_delete(kind("dpuflavor"), fl, &reader, &err), -EPERM);
    assert_int_equal(err.code, 403);
    assert_string_equal(err.reason, "Forbidden");
    assert_string_equal(err.message,
                        "admission webhook \"vdpuflavor.kb.io\" denied the "
                        "request: DPUFlavor is being referred to by "
                        "DPUSet(s) [set1 set2], you must delete the "
                        "DPUSet(s) first");
    json_decref(fl);

    /* referenced only by a DPU */
    fl = load("{" PROV "\"kind\":\"DPUFlavor\",\"metadata\":{\"name\":\"fl2\","
              "\"namespace\":\"ns2\"}}");
    assert_int_equal(
        schema_validate_delete(kind("dpuflavor"), fl, &reader, &err), -EPERM);
    assert_non_null(strstr(err.message, "DPU(s) [d1]"));
    json_decref(fl);

    /* another namespace: free to go */
    fl = load("{" PROV "\"kind\":\"DPUFlavor\",\"metadata\":{\"name\":\"fl\","
              "\"namespace\":\"ns3\"}}");
    assert_int_equal(
        schema_validate_delete(kind("dpuflavor"), fl, &reader, &err), 0);
    json_decref(fl);

    json_t *bfb = load(BFB("{\"url\":\"http://x/y.bfb\"}"));
    assert_int_equal(schema_validate_delete(kind("bfb"), bfb, &reader, &err),
                     -EPERM);
    assert_string_equal(err.message,
                        "admission webhook \"vbfb.kb.io\" denied the "
                        "request: being referred to by DPUSet(s) [set1], "
                        "you must delete the DPUSet(s) first");
    assert_string_equal(err.causes[0].field, "metadata.name");
    json_decref(bfb);
    bfb = load("{" PROV "\"kind\":\"BFB\",\"metadata\":{\"name\":\"unused\","
               "\"namespace\":\"ns1\"}}");
    assert_int_equal(schema_validate_delete(kind("bfb"), bfb, &reader, &err),
                     0);
    json_decref(bfb);

    /* without a reader, rules that need other objects let it pass */
    fl = load(FLAVOR("{}"));
    assert_int_equal(schema_validate_delete(kind("dpuflavor"), fl, NULL, &err),
                     0);
    json_decref(fl);

    /* Kubernetes' protected namespaces: the Namespace kind's own hook,
     * 403 with kube-apiserver's message; it needs no reader */
    const char *kept[] = {"default", "kube-system", "kube-public"};
    for (size_t i = 0; i < ARRAY_SIZE(kept); i++) {
        json_t *ns = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "v1", "kind",
                               "Namespace", "metadata", "name", kept[i]);
        assert_int_equal(
            schema_validate_delete(kind("namespaces"), ns, NULL, &err), -EPERM);
        assert_int_equal(err.code, 403);
        assert_string_equal(err.reason, "Forbidden");
        char want[128];
        snprintf(want, sizeof want,
                 "namespaces \"%s\" is forbidden: this namespace may not be "
                 "deleted",
                 kept[i]);
        assert_string_equal(err.message, want);
        json_decref(ns);
    }
    json_t *ns = load("{\"apiVersion\":\"v1\",\"kind\":\"Namespace\","
                      "\"metadata\":{\"name\":\"kube-systems\"}}");
    assert_int_equal(schema_validate_delete(kind("namespaces"), ns, NULL, &err),
                     0);
    assert_int_equal(err.code, 0);
    json_decref(ns);

    /* kinds without delete rules never list */
    int calls = fs.calls;
    json_t *d = load(DPU("{}"));
    assert_int_equal(schema_validate_delete(kind("dpu"), d, &reader, &err), 0);
    assert_int_equal(fs.calls, calls);
    json_decref(d);
    json_decref(fs.objs);
}

/* ------------------------------------------------------------------ */
/* export                                                               */
/* ------------------------------------------------------------------ */

/* Structural-schema rules a real API server enforces on a CRD. */
static void
check_structural(const json_t *s, const char *path, int depth)
{
    assert_true(depth < 40);
    assert_true(json_is_object(s));
    const json_t *type = json_object_get(s, "type");
    bool ios = json_is_true(json_object_get(s, "x-kubernetes-int-or-string"));
    bool pres = json_is_true(
        json_object_get(s, "x-kubernetes-preserve-unknown-fields"));
    if (!type && !ios && !pres) {
        fail_msg("%s: no type", path);
    }
    if (ios) {
        assert_null(type);
        assert_int_equal(json_array_size(json_object_get(s, "anyOf")), 2);
    }
    const char *t = json_string_value(type);
    const json_t *props = json_object_get(s, "properties");
    const json_t *addl = json_object_get(s, "additionalProperties");
    const json_t *items = json_object_get(s, "items");
    if (props || addl) {
        assert_string_equal(t, "object");
    }
    if (props && addl) {
        fail_msg("%s: properties and additionalProperties", path);
    }
    if (items || (t && !strcmp(t, "array"))) {
        assert_string_equal(t, "array");
        assert_non_null(items);
    }
    const json_t *req = json_object_get(s, "required");
    size_t i;
    const json_t *r;
    json_array_foreach(req, i, r)
    {
        if (!json_object_get(props, json_string_value(r))) {
            fail_msg("%s: required %s not a property", path,
                     json_string_value(r));
        }
    }
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *) props, key, v)
    {
        char *p = xasprintf("%s.%s", path, key);
        check_structural(v, p, depth + 1);
        free(p);
    }
    if (addl) {
        char *p = xasprintf("%s{}", path);
        check_structural(addl, p, depth + 1);
        free(p);
    }
    if (items) {
        char *p = xasprintf("%s[]", path);
        check_structural(items, p, depth + 1);
        free(p);
    }
    /* every default must be valid for its own node (type-wise) */
    const json_t *def = json_object_get(s, "default");
    if (def && t) {
        bool ok = (!strcmp(t, "object") && json_is_object(def)) ||
                  (!strcmp(t, "string") && json_is_string(def)) ||
                  (!strcmp(t, "integer") && json_is_integer(def)) ||
                  (!strcmp(t, "boolean") && json_is_boolean(def));
        if (!ok) {
            fail_msg("%s: default of the wrong type", path);
        }
    }
    json_array_foreach(json_object_get(s, "x-kubernetes-validations"), i, r)
    {
        assert_non_null(json_string_value(json_object_get(r, "rule")));
        assert_non_null(json_string_value(json_object_get(r, "message")));
    }
}

static void
test_crd_export(void **state)
{
    size_t n;
    const struct schema_kind *const *all = schema_kinds(&n);
    int crds = 0;
    for (size_t i = 0; i < n; i++) {
        const struct schema_kind *k = all[i];
        json_t *s = schema_openapi_v3(k);
        check_structural(s, k->kind, 0);
        /* metadata is only "type: object" at the root */
        json_t *md = schema_get(s, "properties.metadata");
        assert_int_equal(json_object_size(md), 1);
        assert_string_equal(json_string_value(json_object_get(md, "type")),
                            "object");
        json_decref(s);
        json_t *crd = schema_crd(k);
        if (!k->group[0] || !strcmp(k->group, "apps") ||
            str_has_suffix(k->group, ".k8s.io")) {
            assert_null(crd); /* Kubernetes' own kinds */
            continue;
        }
        if (!crd) {
            fail_msg("no CRD for %s", k->kind);
        }
        crds++;
        char name[256];
        snprintf(name, sizeof name, "%s.%s", k->plural, k->group);
        assert_string_equal(schema_get_str(crd, "apiVersion"),
                            "apiextensions.k8s.io/v1");
        assert_string_equal(schema_get_str(crd, "kind"),
                            "CustomResourceDefinition");
        assert_string_equal(schema_get_str(crd, "metadata.name"), name);
        json_t *ann = schema_get(crd, "metadata.annotations");
        assert_string_equal(
            json_string_value(json_object_get(ann, "helm.sh/resource-policy")),
            "keep");
        assert_string_equal(schema_get_str(crd, "spec.group"), k->group);
        assert_string_equal(schema_get_str(crd, "spec.names.kind"), k->kind);
        assert_string_equal(schema_get_str(crd, "spec.names.listKind"),
                            k->list_kind);
        assert_string_equal(schema_get_str(crd, "spec.names.plural"),
                            k->plural);
        assert_string_equal(schema_get_str(crd, "spec.names.singular"),
                            k->singular);
        assert_string_equal(schema_get_str(crd, "spec.scope"),
                            k->namespaced ? "Namespaced" : "Cluster");
        json_t *ver = json_array_get(schema_get(crd, "spec.versions"), 0);
        assert_int_equal(json_array_size(schema_get(crd, "spec.versions")), 1);
        assert_string_equal(schema_get_str(ver, "name"), k->version);
        assert_true(json_is_true(json_object_get(ver, "served")));
        assert_true(json_is_true(json_object_get(ver, "storage")));
        assert_int_equal(schema_get(ver, "subresources.status") != NULL,
                         k->has_status);
        check_structural(schema_get(ver, "schema.openAPIV3Schema"), k->kind, 0);
        size_t j;
        json_t *col;
        json_array_foreach(json_object_get(ver, "additionalPrinterColumns"), j,
                           col)
        {
            assert_non_null(schema_get_str(col, "name"));
            assert_non_null(schema_get_str(col, "type"));
            assert_true(schema_get_str(col, "jsonPath")[0] == '.');
        }
        json_decref(crd);
    }
    assert_int_equal(crds, 20); /* 18 DPF kinds + IPPool + CIDRPool */

    /* spot checks of DPF's schema */
    json_t *crd = schema_crd(kind("dpucluster"));
    json_t *spec = schema_get(crd, "spec.versions");
    json_t *oas = schema_get(json_array_get(spec, 0), "schema.openAPIV3Schema");
    assert_json(oas, "properties.spec.properties.maxNodes",
                "{\"type\":\"integer\",\"minimum\":1,\"maximum\":1000,"
                "\"default\":1000,\"description\":\"Most DPUs the cluster "
                "takes, 1 to 1000 (default 1000).\"}");
    assert_json(oas, "properties.spec.properties.kubeconfig",
                "{\"type\":\"string\",\"x-kubernetes-validations\":[{"
                "\"rule\":\"oldSelf == \\\"\\\" || self == oldSelf\","
                "\"message\":\"kubeconfig is immutable\"}],"
                "\"description\":\"Secret in this namespace whose admin.conf "
                "key holds the cluster's kubeconfig; may change only from "
                "empty.\"}");
    assert_json(oas, "required", "[\"spec\"]");
    json_t *cols =
        schema_get(json_array_get(spec, 0), "additionalPrinterColumns");
    assert_int_equal(json_array_size(cols), 6);
    assert_string_equal(schema_get_str(json_array_get(cols, 3), "name"),
                        "MaxNodes");
    assert_string_equal(schema_get_str(json_array_get(cols, 3), "type"),
                        "integer");
    json_decref(crd);

    crd = schema_crd(kind("dpuset"));
    oas = schema_get(json_array_get(schema_get(crd, "spec.versions"), 0),
                     "schema.openAPIV3Schema");
    assert_json(oas,
                "properties.spec.properties.strategy.properties.rollingUpdate."
                "properties.maxUnavailable",
                "{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"string\"}],"
                "\"x-kubernetes-int-or-string\":true,\"description\":\"Most "
                "DPUs being updated at once: a number above 0 or a percentage "
                "in (0%, 100%]; default 1.\"}");
    json_decref(crd);

    crd = schema_crd(kind("dpuservice"));
    oas = schema_get(json_array_get(schema_get(crd, "spec.versions"), 0),
                     "schema.openAPIV3Schema");
    assert_json(oas, "properties.spec.properties.helmChart.properties.values",
                "{\"type\":\"object\",\"description\":\"Helm values (free "
                "form)\",\"x-kubernetes-preserve-unknown-fields\":true}");
    assert_non_null(
        schema_get(oas, "properties.spec.x-kubernetes-validations"));
    json_decref(crd);
}

/* ------------------------------------------------------------------ */
/* columns                                                              */
/* ------------------------------------------------------------------ */

static char *
column(const char *kname, const char *col, const json_t *o)
{
    const struct schema_kind *k = kind(kname);
    for (const struct schema_column *c = k->columns; c && c->name; c++) {
        if (!strcmp(c->name, col)) {
            return schema_column_value(c, o);
        }
    }
    fail_msg("%s has no column %s", kname, col);
    return NULL;
}

#define assert_column(kname, col, o, want) \
    do {                                   \
        char *v_ = column(kname, col, o);  \
        assert_string_equal(v_, want);     \
        free(v_);                          \
    } while (0)

static void
test_columns(void **state)
{
    json_t *d = load("{\"metadata\":{\"name\":\"d\",\"creationTimestamp\":"
                     "\"2024-01-01T00:00:00Z\"},\"status\":{\"phase\":"
                     "\"OS Installing\",\"conditions\":[{\"type\":"
                     "\"Initialized\",\"status\":\"True\"},{\"type\":\"Ready\","
                     "\"status\":\"False\",\"reason\":\"Pending\"}]}}");
    assert_column("dpu", "Ready", d, "False");
    assert_column("dpu", "Phase", d, "OS Installing");
    assert_column("dpu", "Age", d, "2024-01-01T00:00:00Z");
    assert_column("dpuservice", "Phase", d, "Pending");
    json_decref(d);
    d = load("{\"metadata\":{},\"spec\":{\"maxNodes\":10,\"type\":"
             "\"kamaji\"}}");
    assert_column("dpucluster", "MaxNodes", d, "10");
    assert_column("dpucluster", "Type", d, "kamaji");
    assert_column("dpucluster", "Ready", d, "");
    json_decref(d);
    d = load("{\"spec\":{\"template\":{\"spec\":{\"template\":{\"spec\":{"
             "\"interfaceType\":\"service\"}}}}}}");
    assert_column("dpuserviceinterface", "IfType", d, "service");
    assert_column("dpuserviceinterface", "IfName", d, "");
    json_decref(d);

    /* the JSONPath subset directly */
    json_t *o = load("{\"a\":{\"b\":[{\"k\":\"x\",\"v\":1},{\"k\":\"y\","
                     "\"v\":{\"z\":true}}]},\"m\":{\"a.b/c\":\"dot\"}}");
    struct schema_column c = {"X", "string", ".a.b[1].v.z", NULL, 0, NULL};
    char *v = schema_column_value(&c, o);
    assert_string_equal(v, "true");
    free(v);
    c.json_path = ".a.b[?(@.k==\"y\")].v";
    v = schema_column_value(&c, o);
    assert_string_equal(v, "{\"z\":true}");
    free(v);
    c.json_path = ".a.b[?(@.k=='x')].v";
    v = schema_column_value(&c, o);
    assert_string_equal(v, "1");
    free(v);
    c.json_path = ".a.b[-1].k";
    v = schema_column_value(&c, o);
    assert_string_equal(v, "y");
    free(v);
    c.json_path = ".a.b[*].k";
    v = schema_column_value(&c, o);
    assert_string_equal(v, "x");
    free(v);
    c.json_path = ".m['a.b/c']";
    v = schema_column_value(&c, o);
    assert_string_equal(v, "dot");
    free(v);
    c.json_path = "{.a.b[5].k}";
    v = schema_column_value(&c, o);
    assert_string_equal(v, "");
    free(v);
    json_decref(o);

    /* kubectl's computed columns for core kinds */
    json_t *pod = load(
        "{\"metadata\":{\"name\":\"p\"},\"spec\":{\"containers\":[{},{}]},"
        "\"status\":{\"phase\":\"Running\",\"containerStatuses\":[{\"ready\":"
        "true,\"restartCount\":2,\"state\":{\"running\":{}}},{\"ready\":false,"
        "\"restartCount\":1,\"state\":{\"waiting\":{\"reason\":"
        "\"CrashLoopBackOff\"}}}]}}");
    assert_column("pod", "Ready", pod, "1/2");
    assert_column("pod", "Status", pod, "CrashLoopBackOff");
    assert_column("pod", "Restarts", pod, "3");
    json_decref(pod);
    json_t *node = load("{\"metadata\":{\"labels\":{\"node-role.kubernetes.io/"
                        "control-plane\":\"\"}},\"spec\":{\"unschedulable\":"
                        "true},\"status\":{\"conditions\":[{\"type\":"
                        "\"Ready\",\"status\":\"True\"}],\"nodeInfo\":{"
                        "\"kubeletVersion\":\"v1.30.2\"}}}");
    assert_column("node", "Status", node, "Ready,SchedulingDisabled");
    assert_column("node", "Roles", node, "control-plane");
    assert_column("node", "Version", node, "v1.30.2");
    json_decref(node);
    node = load("{\"metadata\":{}}");
    assert_column("node", "Status", node, "Unknown");
    assert_column("node", "Roles", node, "<none>");
    json_decref(node);
    json_t *dep = load("{\"spec\":{\"replicas\":3},\"status\":{"
                       "\"readyReplicas\":2}}");
    assert_column("deployment", "Ready", dep, "2/3");
    json_decref(dep);
    json_t *sec =
        load("{\"type\":\"Opaque\",\"data\":{\"a\":\"\",\"b\":\"\"}}");
    assert_column("secret", "Data", sec, "2");
    assert_column("secret", "Type", sec, "Opaque");
    json_decref(sec);
}

/* ------------------------------------------------------------------ */
/* quantity                                                             */
/* ------------------------------------------------------------------ */

static void
test_quantity(void **state)
{
    struct {
        const char *a, *b;
        int cmp;
    } const cases[] = {
        {"1Gi", "1024Mi", 0},      {"1G", "1000M", 0}, {"1", "1000m", 0},
        {"1.5", "1500m", 0},       {"1e3", "1k", 0},   {"2Ki", "2048", 0},
        {"100m", "0.1", 0},        {"1Gi", "1G", 1},   {"-1", "0", -1},
        {"1E", "1000P", 0},        {".5", "500m", 0},  {"1n", "0.000000001", 0},
        {"0.0000000001", "1n", 0}, /* rounds up below nano precision */
        {"3", "2.999", 1},         {"+2", "2", 0},     {"1e-3", "1m", 0},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct quantity a, b;
        assert_int_equal(quantity_parse(cases[i].a, &a), 0);
        assert_int_equal(quantity_parse(cases[i].b, &b), 0);
        if (quantity_cmp(&a, &b) != cases[i].cmp) {
            fail_msg("%s vs %s", cases[i].a, cases[i].b);
        }
    }
    const char *bad[] = {"",   "Gi",  "1.2.3", "1Zi", "1 Gi",
                         "1e", "abc", "1ki",   "--1"};
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        struct quantity q;
        if (quantity_parse(bad[i], &q) != -EINVAL) {
            fail_msg("accepted %s", bad[i]);
        }
    }
    struct quantity q;
    assert_int_equal(quantity_parse("1e40", &q), -ERANGE);
    char buf[64];
    quantity_parse("2048Mi", &q);
    assert_string_equal(quantity_format(&q, buf, sizeof buf), "2Gi");
    quantity_parse("1500m", &q);
    assert_string_equal(quantity_format(&q, buf, sizeof buf), "1500m");
    quantity_parse("3000", &q);
    assert_string_equal(quantity_format(&q, buf, sizeof buf), "3k");
    struct quantity a, b, d;
    quantity_parse("1Gi", &a);
    quantity_parse("2Gi", &b);
    quantity_sub(&a, &b, &d);
    assert_true(d.nano < 0);
}

/* ------------------------------------------------------------------ */
/* Manifests: examples/ always, DPF's verbatim ones when present        */
/* ------------------------------------------------------------------ */

/* envsubst, as DPF's guide runs it over its manifests (examples/ has no
 * placeholders; running it there changes nothing) */
static char *
envsubst(const char *text)
{
    static const char *const vars[][2] = {
        {"$BLUEFIELD_BITSTREAM", "http://127.0.0.1/bf.bfb"},
        {"$DPUCLUSTER_VIP", "10.0.110.200"},
        {"$DPUCLUSTER_INTERFACE", "br-dpu"},
    };
    struct dbuf b;
    dbuf_init(&b);
    for (const char *p = text; *p;) {
        bool hit = false;
        for (size_t i = 0; i < ARRAY_SIZE(vars); i++) {
            if (str_has_prefix(p, vars[i][0])) {
                dbuf_puts(&b, vars[i][1]);
                p += strlen(vars[i][0]);
                hit = true;
                break;
            }
        }
        if (!hit) {
            dbuf_append(&b, p++, 1);
        }
    }
    return dbuf_steal(&b, NULL);
}

/* Run every document of one file through what the server does on create:
 * prune (no unknown field allowed), default, validate as a create and as
 * an update with itself. Stores the results in by_key under "Kind/name". */
static int
check_manifest_file(const char *path, json_t *by_key)
{
    char *raw;
    size_t len;
    if (file_read_all(path, &raw, &len) < 0) {
        fail_msg("cannot read %s", path);
    }
    char *text = envsubst(raw);
    json_t *docs;
    struct dpf_error err = {0};
    if (yamljson_parse(text, strlen(text), &docs, &err) < 0) {
        fail_msg("%s: %s", path, err.message);
    }
    size_t i;
    json_t *o;
    json_array_foreach(docs, i, o)
    {
        const char *kind = schema_get_str(o, "kind");
        const struct schema_kind *k =
            schema_find_kind(schema_get_str(o, "apiVersion"), kind);
        if (!k) {
            fail_msg("%s: unknown kind %s", path, kind);
        }
        json_t *warn = NULL;
        assert_int_equal(schema_prune(k, o, SCHEMA_UNKNOWN_WARN, &warn, &err),
                         0);
        if (json_array_size(warn)) {
            char *w = json_dumps(warn, 0);
            fail_msg("%s: unknown fields %s", path, w);
        }
        json_decref(warn);
        schema_default(k, o);
        if (schema_validate(k, o, NULL, &err) < 0) {
            fail_msg("%s: %s", path, err.message);
        }
        /* an update with the same object is fine too */
        if (schema_validate(k, o, o, &err) < 0) {
            fail_msg("%s (update): %s", path, err.message);
        }
        char *key =
            xasprintf("%s/%s", kind, schema_get_str(o, "metadata.name"));
        if (json_object_get(by_key, key)) {
            fail_msg("%s: %s appears twice", path, key);
        }
        json_object_set(by_key, key, o);
        free(key);
    }
    int n = (int) json_array_size(docs);
    json_decref(docs);
    free(text);
    free(raw);
    return n;
}

static int
not_hidden(const struct dirent *de)
{
    return de->d_name[0] != '.';
}

/* check_manifest_file() over every *.yaml of dir and, when recurse, of its
 * subdirectories; returns the number of documents. */
static int
check_manifest_dir(const char *dir, bool recurse, json_t *by_key)
{
    struct dirent **names;
    int n = scandir(dir, &names, not_hidden, alphasort);
    if (n < 0) {
        fail_msg("cannot open %s: %s", dir, strerror(errno));
    }
    int docs = 0;
    for (int i = 0; i < n; i++) {
        char *path = xasprintf("%s/%s", dir, names[i]->d_name);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        if (S_ISDIR(st.st_mode) && recurse) {
            docs += check_manifest_dir(path, recurse, by_key);
        } else if (str_has_suffix(path, ".yaml")) {
            docs += check_manifest_file(path, by_key);
        }
        free(path);
        free(names[i]);
    }
    free(names);
    return docs;
}

static const json_t *
manifest(const json_t *by_key, const char *key)
{
    const json_t *o = json_object_get(by_key, key);
    if (!o) {
        fail_msg("no %s among the manifests", key);
    }
    return o;
}

/* examples/ (the README's tour): every kind it is meant to show is there,
 * all of it validates, and DPF's defaults land where the comments in the
 * files say they do. */
static void
test_examples(void **state)
{
    json_t *by_key = json_object();
    int docs = check_manifest_dir(EXAMPLES_DIR, true, by_key);
    assert_true(docs >= 25);

    static const char *const kinds[] = {
        "Namespace",
        "DPFOperatorConfig",
        "BFB",
        "DPUCluster",
        "DPUFlavor",
        "DPUSet",
        "DPUServiceIPAM",
        "DPUServiceInterface",
        "DPUService",
        "DPUServiceChain",
        "DPUServiceCredentialRequest",
        "DPUServiceTemplate",
        "DPUServiceConfiguration",
        "DPUDeployment",
    };
    for (size_t i = 0; i < ARRAY_SIZE(kinds); i++) {
        bool seen = false;
        const char *key;
        json_t *o;
        json_object_foreach(by_key, key, o)
        {
            seen |= !strcmp(schema_get_str(o, "kind"), kinds[i]);
        }
        if (!seen) {
            fail_msg("examples/ has no %s", kinds[i]);
        }
    }

    const json_t *o = manifest(by_key, "BFB/doca-bundle");
    assert_json(o, "spec.fileName", "\"dpf-operator-system-doca-bundle.bfb\"");
    assert_json(o, "status.phase", "\"Initializing\"");
    o = manifest(by_key, "DPUCluster/rack-a");
    assert_json(o, "spec.maxNodes", "1000");
    assert_json(o, "status.phase", "\"Pending\"");
    assert_json(o, "spec.clusterEndpoint.keepalived.nodeSelector",
                "{\"node-role.kubernetes.io/control-plane\":\"\"}");
    o = manifest(by_key, "DPFOperatorConfig/dpfoperatorconfig");
    assert_json(o, "spec.networking",
                "{\"controlPlaneMTU\":1500,\"highSpeedMTU\":1500}");
    o = manifest(by_key, "DPUSet/rack-a-workers");
    assert_json(o, "spec.strategy.rollingUpdate.maxUnavailable", "\"25%\"");
    assert_json(o, "spec.dpuTemplate.spec.nodeEffect",
                "{\"taint\":{\"key\":\"dpu\",\"value\":\"installing\","
                "\"effect\":\"NoSchedule\"}}");
    assert_json(o, "spec.dpuTemplate.spec.automaticNodeReboot", "true");
    o = manifest(by_key, "DPUSet/rack-a-canary");
    assert_json(o, "spec.strategy", "{\"type\":\"Recreate\"}");
    assert_json(o, "spec.dpuTemplate.spec.nodeEffect",
                "{\"drain\":{\"automaticNodeReboot\":true}}");
    o = manifest(by_key, "DPUService/hbn");
    assert_null(schema_get(o, "spec.serviceDaemonSet.labels")); /* was null */
    assert_true(json_is_string(
        schema_get(o, "spec.helmChart.values.configuration.startupYAMLJ2")));
    o = manifest(by_key, "DPUServiceChain/fabric-to-hbn");
    assert_null(schema_get(o, "spec.template.spec.nodeSelector")); /* null */
    assert_non_null(schema_get(o, "spec.template.spec.template.spec.switches"));
    o = manifest(by_key, "DPUServiceIPAM/hbn-blue");
    assert_json(o, "spec.ipv4Subnet.perNodeIPCount", "16");
    o = manifest(by_key, "DPUDeployment/rack-b");
    assert_json(o, "spec.services.dts",
                "{\"serviceTemplate\":\"dts\","
                "\"serviceConfiguration\":\"dts\"}");

    /* the examples reach DPF's webhook rules: the README's invalid patch
     * and an IPAM pool outside dpf-operator-system are refused */
    struct dpf_error err = {0};
    json_t *bad = json_deep_copy(manifest(by_key, "DPUSet/rack-a-workers"));
    json_t *ru = schema_get(bad, "spec.strategy.rollingUpdate");
    json_object_set_new(ru, "maxUnavailable", json_string("0%"));
    const struct schema_kind *k =
        schema_find_kind("provisioning.dpu.nvidia.com/v1alpha1", "DPUSet");
    assert_int_equal(schema_validate(k, bad, NULL, &err), -EINVAL);
    assert_non_null(
        strstr(err.message, "spec.strategy.rollingUpdate.maxUnavailable"));
    json_decref(bad);
    bad = json_deep_copy(manifest(by_key, "DPUServiceIPAM/hbn-red"));
    json_object_set_new(json_object_get(bad, "metadata"), "namespace",
                        json_string("default"));
    k = schema_find_kind("svc.dpu.nvidia.com/v1alpha1", "DPUServiceIPAM");
    assert_int_equal(schema_validate(k, bad, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.message, "dpf-operator-system"));
    json_decref(bad);
    json_decref(by_key);
}

/* DPF's hbn_only manifests, verbatim: they validate unchanged after the
 * guide's envsubst, and DPF's defaults land. Run with --dpf-fixtures. */
static void
test_dpf_fixtures(void **state)
{
    char *dir = manifest_dpf_fixtures_dir();
    json_t *by_key = json_object();
    assert_true(check_manifest_dir(dir, false, by_key) >= 19);
    free(dir);

    const json_t *o = manifest(by_key, "BFB/bf-bundle");
    assert_json(o, "spec.fileName", "\"dpf-operator-system-bf-bundle.bfb\"");
    assert_json(o, "spec.url", "\"http://127.0.0.1/bf.bfb\"");
    assert_json(o, "status.phase", "\"Initializing\"");
    o = manifest(by_key, "DPUSet/dpuset");
    assert_json(o, "spec.strategy.rollingUpdate.maxUnavailable", "\"10%\"");
    assert_json(o, "spec.dpuTemplate.spec.nodeEffect",
                "{\"taint\":{\"key\":\"dpu\",\"value\":\"provisioning\","
                "\"effect\":\"NoSchedule\"}}");
    o = manifest(by_key, "DPUCluster/dpu-cplane-tenant1");
    assert_json(o, "spec.maxNodes", "10");
    assert_json(o, "spec.clusterEndpoint.keepalived.vip", "\"10.0.110.200\"");
    assert_json(o, "status.phase", "\"Pending\"");
    o = manifest(by_key, "DPFOperatorConfig/dpfoperatorconfig");
    assert_json(o, "spec.networking",
                "{\"controlPlaneMTU\":1500,\"highSpeedMTU\":1500}");
    o = manifest(by_key, "DPUService/doca-hbn");
    assert_null(schema_get(o, "spec.serviceDaemonSet.labels")); /* was null */
    assert_non_null(schema_get(o, "spec.helmChart.values.configuration"));
    o = manifest(by_key, "DPUServiceChain/hbn-to-fabric");
    assert_null(schema_get(o, "spec.template.spec.nodeSelector"));
    /* written "host-pf1-sf " in DPF's file: YAML drops the trailing blank */
    manifest(by_key, "DPUServiceInterface/host-pf1-sf");
    json_decref(by_key);
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
        };
        return cmocka_run_group_tests_name("schema, DPF's manifests", dpf, NULL,
                                           NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_bfb_rules),
        cmocka_unit_test(test_bfb_filename_default),
        cmocka_unit_test(test_dpuflavor_rules),
        cmocka_unit_test(test_dpucluster_rules),
        cmocka_unit_test(test_dpuset_rules),
        cmocka_unit_test(test_dpu_rules),
        cmocka_unit_test(test_dpuservice_rules),
        cmocka_unit_test(test_dpudeployment_rules),
        cmocka_unit_test(test_dpuserviceipam_rules),
        cmocka_unit_test(test_interface_chain_rules),
        cmocka_unit_test(test_operator_rules),
        cmocka_unit_test(test_metadata_rules),
        cmocka_unit_test(test_core_rules),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_prune),
        cmocka_unit_test(test_delete_rules),
        cmocka_unit_test(test_crd_export),
        cmocka_unit_test(test_columns),
        cmocka_unit_test(test_quantity),
        cmocka_unit_test(test_examples),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
