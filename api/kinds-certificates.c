/* kinds-certificates: certificates.k8s.io/v1 CertificateSigningRequest,
 * with kube-apiserver's validation: spec.request is one PEM CERTIFICATE
 * REQUEST whose signature verifies, signerName is required, usages are
 * Kubernetes' key usage words, expirationSeconds is at least 600; the spec
 * never changes; Approved and Denied exclude each other, are never removed
 * and change only through the approval subresource (dpf-server sets
 * schema_csr_approval_write around that write); status.certificate only
 * on an approved request, and once set it stays. spec.username, uid,
 * groups and extra are the requester's, written by dpf-server (never
 * taken from the body). */
#include <errno.h>
#include <string.h>

#include "api/kinds-certificates.h"
#include "api/schema-node.h"
#include "lib/base/base64.h"
#include "lib/base/util.h"
#include "lib/net/pki-csr.h"

#define CERTS_GROUP "certificates.k8s.io"
#define CERTS_V1 .group = CERTS_GROUP, .version = "v1", .builtin = true

_Thread_local bool schema_csr_approval_write;

static const struct schema_column csr_columns[] = {
    COLUMN_AGE,
    COLUMN("SignerName", "string", ".spec.signerName"),
    COLUMN("Requestor", "string", ".spec.username"),
    COLUMN("RequestedDuration", "string", ".spec.expirationSeconds"),
    COLUMN("Condition", "string", ".status.conditions[*].type"),
    COLUMNS_END,
};

/* The condition of type t (borrowed) or NULL. */
const json_t *
schema_csr_condition(const json_t *obj, const char *t)
{
    const json_t *conds = schema_get(obj, "status.conditions");
    size_t i;
    const json_t *c;
    json_array_foreach(conds, i, c)
    {
        const char *ct = json_string_value(json_object_get(c, "type"));
        if (ct && !strcmp(ct, t)) {
            return c;
        }
    }
    return NULL;
}

static int
csr_check_request(const json_t *obj, struct dpf_error *err)
{
    const json_t *v = schema_get(obj, "spec.request");
    const char *b64 = json_string_value(v);
    if (!b64 || !*b64) {
        schema_err_required(err, "spec.request", NULL);
        return -EINVAL;
    }
    char *pem = NULL;
    size_t n = 0;
    if (base64_decode(b64, strlen(b64), BASE64_STRICT, &pem, &n) < 0) {
        schema_err_invalid(err, "spec.request", NULL, "not base64 data");
        return -EINVAL;
    }
    struct pki_csr_info info;
    struct dpf_error e = {0};
    int rc = pki_csr_parse(pem, n, &info, &e);
    free(pem);
    if (rc < 0) {
        schema_err_invalid(err, "spec.request", NULL, "%s", e.message);
        return -EINVAL;
    }
    return 0;
}

static int
csr_check_spec(const json_t *obj, struct dpf_error *err)
{
    int rc = csr_check_request(obj, err);
    const char *signer = schema_get_str(obj, "spec.signerName");
    if (!signer || !*signer) {
        schema_err_required(err, "spec.signerName", NULL);
        rc = -EINVAL;
    } else {
        const char *slash = strchr(signer, '/');
        char dom[256];
        size_t dl = slash ? (size_t) (slash - signer) : 0;
        if (!slash || dl == 0 || dl >= sizeof dom || !slash[1] ||
            strlen(signer) > 571) {
            schema_err_invalid(err, "spec.signerName",
                               schema_get(obj, "spec.signerName"),
                               "must be a fully qualified domain and path "
                               "of the form 'example.com/signer-name'");
            rc = -EINVAL;
        } else {
            memcpy(dom, signer, dl);
            dom[dl] = '\0';
            if (!schema_is_dns_subdomain(dom) || !strchr(dom, '.')) {
                schema_err_invalid(err, "spec.signerName",
                                   schema_get(obj, "spec.signerName"),
                                   "the domain part must be a fully "
                                   "qualified DNS subdomain");
                rc = -EINVAL;
            }
        }
    }
    const json_t *usages = schema_get(obj, "spec.usages");
    if (!json_array_size(usages)) {
        schema_err_required(err, "spec.usages", NULL);
        rc = -EINVAL;
    }
    size_t i;
    const json_t *u;
    json_array_foreach(usages, i, u)
    {
        char p[40];
        snprintf(p, sizeof p, "spec.usages[%zu]", i);
        const char *w = json_string_value(u);
        if (!w || !pki_usage_known(w)) {
            schema_err_invalid(err, p, u, "not a supported key usage");
            rc = -EINVAL;
            continue;
        }
        for (size_t j = 0; j < i; j++) {
            if (json_equal(json_array_get(usages, j), u)) {
                schema_err_duplicate(err, p, u);
                rc = -EINVAL;
            }
        }
    }
    const json_t *exp = schema_get(obj, "spec.expirationSeconds");
    if (exp && (!json_is_integer(exp) || json_integer_value(exp) < 600)) {
        schema_err_invalid(err, "spec.expirationSeconds", exp,
                           "may not specify a duration less than 600 "
                           "seconds (10 minutes)");
        rc = -EINVAL;
    }
    return rc;
}

static bool
csr_cond_true(const json_t *obj, const char *t)
{
    const json_t *c = schema_csr_condition(obj, t);
    const char *s = c ? json_string_value(json_object_get(c, "status")) : NULL;
    return s && !strcmp(s, "True");
}

static int
csr_check_status(const json_t *obj, const json_t *old, struct dpf_error *err)
{
    int rc = 0;
    const json_t *conds = schema_get(obj, "status.conditions");
    size_t i;
    const json_t *c;
    json_array_foreach(conds, i, c)
    {
        char p[64];
        snprintf(p, sizeof p, "status.conditions[%zu].type", i);
        const char *t = json_string_value(json_object_get(c, "type"));
        const char *st = json_string_value(json_object_get(c, "status"));
        if (!t || !*t) {
            schema_err_required(err, p, NULL);
            rc = -EINVAL;
            continue;
        }
        bool fixed = !strcmp(t, "Approved") || !strcmp(t, "Denied") ||
                     !strcmp(t, "Failed");
        for (size_t j = 0; fixed && j < i; j++) {
            const char *tj = json_string_value(
                json_object_get(json_array_get(conds, j), "type"));
            if (tj && !strcmp(tj, t)) {
                schema_err_duplicate(err, p, json_object_get(c, "type"));
                rc = -EINVAL;
            }
        }
        snprintf(p, sizeof p, "status.conditions[%zu].status", i);
        if (fixed && (!st || strcmp(st, "True") != 0)) {
            schema_err_invalid(err, p, json_object_get(c, "status"),
                               "must be \"True\" for %s", t);
            rc = -EINVAL;
        }
    }
    bool approved = csr_cond_true(obj, "Approved");
    if (approved && csr_cond_true(obj, "Denied")) {
        schema_err_invalid(err, "status.conditions", NULL,
                           "Approved and Denied conditions are mutually "
                           "exclusive");
        rc = -EINVAL;
    }
    const json_t *cert = schema_get(obj, "status.certificate");
    if (cert && json_string_length(cert) > 0) {
        const char *b64 = json_string_value(cert);
        char *pem = NULL;
        size_t n = 0;
        if (!b64 ||
            base64_decode(b64, strlen(b64), BASE64_STRICT, &pem, &n) < 0 ||
            !memmem(pem, n, "-----BEGIN CERTIFICATE-----", 27)) {
            schema_err_invalid(err, "status.certificate", NULL,
                               "must be PEM-encoded certificates");
            rc = -EINVAL;
        }
        free(pem);
        if (!approved) {
            schema_err_forbidden(err, "status.certificate",
                                 "may only be set on an approved request");
            rc = -EINVAL;
        } else if (csr_cond_true(obj, "Failed")) {
            schema_err_forbidden(err, "status.certificate",
                                 "may not be set on a failed request");
            rc = -EINVAL;
        }
    }
    if (!old) {
        return rc;
    }
    const json_t *ocert = schema_get(old, "status.certificate");
    if (ocert && json_string_length(ocert) > 0 && !json_equal(ocert, cert)) {
        schema_err_forbidden(err, "status.certificate",
                             "updates may not modify existing certificate "
                             "content");
        rc = -EINVAL;
    }
    static const char *const approval[] = {"Approved", "Denied"};
    for (size_t k = 0; k < 2; k++) {
        const json_t *oc = schema_csr_condition(old, approval[k]);
        const json_t *nc = schema_csr_condition(obj, approval[k]);
        if (oc && !nc) {
            schema_err_forbidden(err, "status.conditions",
                                 "updates may not remove a condition of "
                                 "type \"%s\"",
                                 approval[k]);
            rc = -EINVAL;
        } else if (!schema_csr_approval_write && !oc && nc) {
            schema_err_forbidden(err, "status.conditions",
                                 "a condition of type \"%s\" may only be "
                                 "added through the approval subresource",
                                 approval[k]);
            rc = -EINVAL;
        }
    }
    const json_t *of = schema_csr_condition(old, "Failed");
    if (of && !schema_csr_condition(obj, "Failed")) {
        schema_err_forbidden(err, "status.conditions",
                             "updates may not remove a condition of type "
                             "\"Failed\"");
        rc = -EINVAL;
    }
    return rc;
}

static int
csr_validate(const json_t *obj, const json_t *old, struct dpf_error *err)
{
    int rc = 0;
    if (old) {
        if (!json_equal(json_object_get(obj, "spec"),
                        json_object_get(old, "spec"))) {
            schema_err_forbidden(err, "spec", "field is immutable");
            rc = -EINVAL;
        }
    } else {
        rc = csr_check_spec(obj, err);
        /* A new request carries no status: kube-apiserver drops it on
         * create; here it is refused rather than silently dropped only
         * when it claims an approval. */
        if (csr_cond_true(obj, "Approved") || csr_cond_true(obj, "Denied") ||
            schema_get(obj, "status.certificate")) {
            schema_err_forbidden(err, "status",
                                 "may not be set when the request is "
                                 "created");
            rc = -EINVAL;
        }
    }
    if (csr_check_status(obj, old, err) < 0) {
        rc = -EINVAL;
    }
    return rc;
}

static const struct schema_node csr_condition = {
    .type = SCHEMA_T_OBJECT,
    .fields =
        (const struct schema_field[]){
            R("type", N_STR()),
            R("status", N_STR(ENUM("True", "False", "Unknown"))),
            F("reason", N_STR()),
            F("message", N_STR()),
            F("lastUpdateTime", N_STR(FORMAT("date-time"))),
            F("lastTransitionTime", N_STR(FORMAT("date-time"))),
            {0}},
};

static const struct schema_kind kind_csr = {
    CERTS_V1,
    KIND_NAMES("CertificateSigningRequest", "certificatesigningrequests",
               "certificatesigningrequest"),
    .short_names = (const char *const[]){"csr", NULL},
    .namespaced = false,
    .has_status = true,
    .columns = csr_columns,
    .validate = csr_validate,
    .root = KIND_ROOT(
        F("spec", N_OBJ(FIELDS(F("request", N_STR(FORMAT("byte"))),
                               F("signerName", N_STR()),
                               F("expirationSeconds", N_INT(FORMAT("int32"))),
                               F("usages", N_ARR(&schema_string, ATOMIC_LIST)),
                               F("username", N_STR()), F("uid", N_STR()),
                               F("groups", N_ARR(&schema_string, ATOMIC_LIST)),
                               F("extra", N_MAP(N_ARR(&schema_string)))))),
        F("status",
          N_OBJ(FIELDS(F("conditions", N_ARR(&csr_condition, LIST_MAP("type"))),
                       F("certificate", N_STR(FORMAT("byte"))))))),
};

SCHEMA_GROUP_1(schema_group_certificates, CERTS_GROUP, "v1", &kind_csr);
