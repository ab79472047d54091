/* kinds-authz: the review kinds of authorization.k8s.io/v1
 * (SelfSubjectAccessReview, SubjectAccessReview,
 * LocalSubjectAccessReview, SelfSubjectRulesReview) and
 * authentication.k8s.io/v1 (TokenReview, SelfSubjectReview). They are
 * never stored: a create is answered with the object and its status
 * filled in (dpf-server/authz.c), as kube-apiserver does. The
 * TokenRequest of serviceaccounts/<name>/token is a subresource, not a
 * resource, so it is not listed here. */
#include "api/schema-node.h"

#define AUTHZ_GROUP "authorization.k8s.io"
#define AUTHN_GROUP "authentication.k8s.io"
#define AUTHZ_V1 .group = AUTHZ_GROUP, .version = "v1", .builtin = true
#define AUTHN_V1 .group = AUTHN_GROUP, .version = "v1", .builtin = true

static const struct schema_node resource_attributes = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(F("namespace", N_STR()), F("verb", N_STR()), F("group", N_STR()),
           F("version", N_STR()), F("resource", N_STR()),
           F("subresource", N_STR()), F("name", N_STR()),
           F("fieldSelector", N_ANY()), F("labelSelector", N_ANY())),
};

static const struct schema_node non_resource_attributes = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(F("path", N_STR()), F("verb", N_STR())),
};

static const struct schema_node access_review_status = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(R("allowed", N_BOOL()), F("denied", N_BOOL()), F("reason", N_STR()),
           F("evaluationError", N_STR())),
};

static const struct schema_node user_extra = {
    .type = SCHEMA_T_MAP,
    .items = &schema_string_list,
};

static const struct schema_kind kind_ssar = {
    AUTHZ_V1,
    KIND_NAMES("SelfSubjectAccessReview", "selfsubjectaccessreviews",
               "selfsubjectaccessreview"),
    .root = KIND_ROOT(
        R("spec",
          N_OBJ(FIELDS(F("resourceAttributes", &resource_attributes),
                       F("nonResourceAttributes", &non_resource_attributes)))),
        F("status", &access_review_status)),
};

static const struct schema_node sar_spec = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(F("resourceAttributes", &resource_attributes),
           F("nonResourceAttributes", &non_resource_attributes),
           F("user", N_STR()), F("groups", &schema_string_list),
           F("uid", N_STR()), F("extra", &user_extra)),
};

static const struct schema_kind kind_sar = {
    AUTHZ_V1,
    KIND_NAMES("SubjectAccessReview", "subjectaccessreviews",
               "subjectaccessreview"),
    .root = KIND_ROOT(R("spec", &sar_spec), F("status", &access_review_status)),
};

static const struct schema_kind kind_lsar = {
    AUTHZ_V1,
    KIND_NAMES("LocalSubjectAccessReview", "localsubjectaccessreviews",
               "localsubjectaccessreview"),
    .namespaced = true,
    .root = KIND_ROOT(R("spec", &sar_spec), F("status", &access_review_status)),
};

static const struct schema_kind kind_ssrr = {
    AUTHZ_V1,
    KIND_NAMES("SelfSubjectRulesReview", "selfsubjectrulesreviews",
               "selfsubjectrulesreview"),
    .root = KIND_ROOT(
        R("spec", N_OBJ(FIELDS(F("namespace", N_STR())))),
        F("status", N_OBJ(FIELDS(F("resourceRules", N_ARR(N_ANY())),
                                 F("nonResourceRules", N_ARR(N_ANY())),
                                 F("incomplete", N_BOOL()),
                                 F("evaluationError", N_STR()))))),
};

SCHEMA_GROUP_1(schema_group_authorization, AUTHZ_GROUP, "v1", &kind_lsar,
               &kind_ssar, &kind_ssrr, &kind_sar);

static const struct schema_node user_info = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(F("username", N_STR()), F("uid", N_STR()),
           F("groups", &schema_string_list), F("extra", &user_extra)),
};

static const struct schema_kind kind_tokenreview = {
    AUTHN_V1,
    KIND_NAMES("TokenReview", "tokenreviews", "tokenreview"),
    .root =
        KIND_ROOT(R("spec", N_OBJ(FIELDS(F("token", N_STR()),
                                         F("audiences", &schema_string_list)))),
                  F("status", N_OBJ(FIELDS(F("authenticated", N_BOOL()),
                                           F("user", &user_info),
                                           F("audiences", &schema_string_list),
                                           F("error", N_STR()))))),
};

static const struct schema_kind kind_selfsubjectreview = {
    AUTHN_V1,
    KIND_NAMES("SelfSubjectReview", "selfsubjectreviews", "selfsubjectreview"),
    .root = KIND_ROOT(F("status", N_OBJ(FIELDS(F("userInfo", &user_info))))),
};

SCHEMA_GROUP_1(schema_group_authentication, AUTHN_GROUP, "v1",
               &kind_selfsubjectreview, &kind_tokenreview);
