/* apiserver-discovery: /version, health endpoints, API discovery and the
 * OpenAPI documents, all derived from the schema registry.
 *
 * kubectl 1.32 asks for aggregated discovery (apidiscovery.k8s.io/v2) but
 * accepts the plain APIGroupList/APIResourceList we serve. /openapi/v2
 * answers an empty protobuf document to kubectl (enough for its client
 * validation) and a JSON swagger document to JSON clients; /openapi/v3
 * serves one document per group-version with paths (so kubectl learns
 * that PATCH accepts fieldValidation and which patch types each kind
 * takes) and components.schemas from schema_openapi_v3(). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dpf-server/apiserver-private.h"
#include "lib/net/http-server.h"

#ifndef DPF_VERSION
#define DPF_VERSION "0.0.0"
#endif

/* The Kubernetes release whose API conventions we follow; kubectl's
 * dispatcher picks a client from it. */
#define AS_KUBE_MAJOR "1"
#define AS_KUBE_MINOR "30"

static const char *const as_verbs[] = {
    "create", "delete", "deletecollection", "get",
    "list",   "patch",  "update",           "watch",
};

static void
as_respond_plain(struct http_request *req, int code, const char *text)
{
    http_respond(req, code, "text/plain; charset=utf-8", text, strlen(text));
}

static json_t *
as_version_json(void)
{
    return json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "major",
                     AS_KUBE_MAJOR, "minor", AS_KUBE_MINOR, "gitVersion",
                     "v" AS_KUBE_MAJOR "." AS_KUBE_MINOR ".0-dpf." DPF_VERSION,
                     "gitCommit", "", "gitTreeState", "clean", "buildDate",
                     "1970-01-01T00:00:00Z", "goVersion", "c17", "compiler",
                     "gcc", "platform", "linux/amd64");
}

/* The registry's group/version pairs, in its order, each group's preferred
 * version first (as_api_group takes the first as preferred). */
struct as_gv {
    const char *group;
    const char *version;
};

static size_t
as_group_versions(struct as_gv *out, size_t max)
{
    size_t n, m = 0;
    const struct schema_group *const *groups = schema_groups(&n);
    for (size_t i = 0; i < n; i++) {
        const struct schema_group *g = groups[i];
        if (m < max) {
            out[m++] = (struct as_gv){g->name, g->preferred_version};
        }
        for (const struct schema_group_version *v = g->versions;
             v->version && m < max; v++) {
            if (strcmp(v->version, g->preferred_version) != 0) {
                out[m++] = (struct as_gv){g->name, v->version};
            }
        }
    }
    return m;
}

/* The verbs of a kind: a view of another kind's objects is not watched
 * or deleted as a collection (apiserver-view.c). */
static json_t *
as_kind_verbs(const struct schema_kind *k)
{
    json_t *verbs = json_array();
    for (size_t v = 0; v < ARRAY_SIZE(as_verbs); v++) {
        if (k->stored_as && (!strcmp(as_verbs[v], "watch") ||
                             !strcmp(as_verbs[v], "deletecollection"))) {
            continue;
        }
        json_array_append_new(verbs, json_string(as_verbs[v]));
    }
    return verbs;
}

static json_t *
as_string_array(const char *const *list)
{
    json_t *a = json_array();
    for (size_t i = 0; list && list[i]; i++) {
        json_array_append_new(a, json_string(list[i]));
    }
    return a;
}

static json_t *
as_resource_list(const char *group, const char *version)
{
    size_t n;
    const struct schema_kind *const *kinds = schema_kinds(&n);
    json_t *res = json_array();
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        const struct schema_kind *k = kinds[i];
        if (strcmp(k->group, group) != 0 || strcmp(k->version, version) != 0) {
            continue;
        }
        any = true;
        json_t *verbs = as_kind_verbs(k);
        json_t *r = json_pack("{s:s,s:s,s:b,s:s,s:o}", "name", k->plural,
                              "singularName", k->singular, "namespaced",
                              k->namespaced, "kind", k->kind, "verbs", verbs);
        if (k->short_names && k->short_names[0]) {
            json_object_set_new(r, "shortNames",
                                as_string_array(k->short_names));
        }
        if (k->categories && k->categories[0]) {
            json_object_set_new(r, "categories",
                                as_string_array(k->categories));
        }
        json_array_append_new(res, r);
        if (k->has_status) {
            char sub[160];
            snprintf(sub, sizeof(sub), "%s/status", k->plural);
            json_array_append_new(
                res,
                json_pack("{s:s,s:s,s:b,s:s,s:[s,s,s]}", "name", sub,
                          "singularName", "", "namespaced", k->namespaced,
                          "kind", k->kind, "verbs", "get", "patch", "update"));
        }
        if (k->scale) {
            char sub[160];
            snprintf(sub, sizeof(sub), "%s/scale", k->plural);
            json_array_append_new(
                res,
                json_pack("{s:s,s:s,s:b,s:s,s:s,s:s,s:[s,s,s]}", "name", sub,
                          "singularName", "", "namespaced", k->namespaced,
                          "group", "autoscaling", "version", "v1", "kind",
                          "Scale", "verbs", "get", "patch", "update"));
        }
        if (!k->group[0] && !strcmp(k->plural, "namespaces")) {
            json_array_append_new(
                res, json_pack("{s:s,s:s,s:b,s:s,s:[s]}", "name",
                               "namespaces/finalize", "singularName", "",
                               "namespaced", 0, "kind", "Namespace", "verbs",
                               "update"));
        }
    }
    if (!any) {
        json_decref(res);
        return NULL;
    }
    char gv[200];
    if (group[0]) {
        snprintf(gv, sizeof(gv), "%s/%s", group, version);
    } else {
        snprintf(gv, sizeof(gv), "%s", version);
    }
    return json_pack("{s:s,s:s,s:s,s:o}", "kind", "APIResourceList",
                     "apiVersion", "v1", "groupVersion", gv, "resources", res);
}

static json_t *
as_api_group(const char *group, const struct as_gv *gvs, size_t n)
{
    json_t *versions = json_array();
    json_t *preferred = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(gvs[i].group, group) != 0) {
            continue;
        }
        char gv[200];
        snprintf(gv, sizeof(gv), "%s/%s", group, gvs[i].version);
        json_t *v = json_pack("{s:s,s:s}", "groupVersion", gv, "version",
                              gvs[i].version);
        if (!preferred) {
            preferred = json_deep_copy(v);
        }
        json_array_append_new(versions, v);
    }
    if (!preferred) {
        json_decref(versions);
        return NULL;
    }
    return json_pack("{s:s,s:o,s:o}", "name", group, "versions", versions,
                     "preferredVersion", preferred);
}

static json_t *
as_group_list(void)
{
    struct as_gv gvs[256];
    size_t n = as_group_versions(gvs, ARRAY_SIZE(gvs));
    json_t *groups = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!gvs[i].group[0]) {
            continue;
        }
        bool seen = false;
        for (size_t j = 0; j < i; j++) {
            if (!strcmp(gvs[j].group, gvs[i].group)) {
                seen = true;
            }
        }
        if (!seen) {
            json_array_append_new(groups, as_api_group(gvs[i].group, gvs, n));
        }
    }
    return json_pack("{s:s,s:s,s:o}", "kind", "APIGroupList", "apiVersion",
                     "v1", "groups", groups);
}

/* ------------------------------------------------------------------ */
/* Aggregated discovery (apidiscovery.k8s.io/v2 and v2beta1): /api or
 * /apis with every group, version and resource in one document, which
 * kubectl 1.30+ asks for first and takes when the response's
 * Content-Type names the kind it asked for. */

static json_t *
as_gvk_json(const char *group, const char *version, const char *kind)
{
    return json_pack("{s:s,s:s,s:s}", "group", group, "version", version,
                     "kind", kind);
}

static json_t *
as_agg_resource(const struct schema_kind *k)
{
    json_t *verbs = as_kind_verbs(k);
    json_t *r =
        json_pack("{s:s,s:o,s:s,s:s,s:o}", "resource", k->plural,
                  "responseKind", as_gvk_json(k->group, k->version, k->kind),
                  "scope", k->namespaced ? "Namespaced" : "Cluster",
                  "singularResource", k->singular, "verbs", verbs);
    if (k->short_names && k->short_names[0]) {
        json_object_set_new(r, "shortNames", as_string_array(k->short_names));
    }
    if (k->categories && k->categories[0]) {
        json_object_set_new(r, "categories", as_string_array(k->categories));
    }
    json_t *subs = json_array();
    if (k->has_status) {
        json_array_append_new(
            subs, json_pack("{s:s,s:o,s:[s,s,s]}", "subresource", "status",
                            "responseKind",
                            as_gvk_json(k->group, k->version, k->kind), "verbs",
                            "get", "patch", "update"));
    }
    if (k->scale) {
        json_array_append_new(
            subs,
            json_pack("{s:s,s:o,s:[s,s,s]}", "subresource", "scale",
                      "responseKind", as_gvk_json("autoscaling", "v1", "Scale"),
                      "verbs", "get", "patch", "update"));
    }
    if (!k->group[0] && !strcmp(k->plural, "namespaces")) {
        json_array_append_new(subs,
                              json_pack("{s:s,s:o,s:[s]}", "subresource",
                                        "finalize", "responseKind",
                                        as_gvk_json("", k->version, k->kind),
                                        "verbs", "update"));
    }
    if (json_array_size(subs)) {
        json_object_set_new(r, "subresources", subs);
    } else {
        json_decref(subs);
    }
    return r;
}

/* One APIGroupDiscovery: the group's versions, preferred first. */
static json_t *
as_agg_group(const char *group, const struct as_gv *gvs, size_t n)
{
    size_t nk;
    const struct schema_kind *const *kinds = schema_kinds(&nk);
    json_t *versions = json_array();
    for (size_t i = 0; i < n; i++) {
        if (strcmp(gvs[i].group, group) != 0) {
            continue;
        }
        json_t *res = json_array();
        for (size_t j = 0; j < nk; j++) {
            if (!strcmp(kinds[j]->group, group) &&
                !strcmp(kinds[j]->version, gvs[i].version)) {
                json_array_append_new(res, as_agg_resource(kinds[j]));
            }
        }
        json_array_append_new(versions, json_pack("{s:s,s:o,s:s}", "version",
                                                  gvs[i].version, "resources",
                                                  res, "freshness", "Current"));
    }
    json_t *md = group[0] ? json_pack("{s:s}", "name", group) : json_object();
    return json_pack("{s:o,s:o}", "metadata", md, "versions", versions);
}

/* The APIGroupDiscoveryList of /api (core only) or /apis (the rest). */
static json_t *
as_agg_list(bool core, const char *api_version)
{
    struct as_gv gvs[256];
    size_t n = as_group_versions(gvs, ARRAY_SIZE(gvs));
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        if (core != !gvs[i].group[0]) {
            continue;
        }
        bool seen = false;
        for (size_t j = 0; j < i; j++) {
            if (!strcmp(gvs[j].group, gvs[i].group)) {
                seen = true;
            }
        }
        if (!seen) {
            json_array_append_new(items, as_agg_group(gvs[i].group, gvs, n));
        }
    }
    return json_pack("{s:s,s:s,s:{},s:o}", "kind", "APIGroupDiscoveryList",
                     "apiVersion", api_version, "metadata", "items", items);
}

/* Does one media range of Accept ask for the APIGroupDiscoveryList of
 * apidiscovery.k8s.io/<version>? Parameters in any order. */
static bool
as_accept_range_agg(const char *range, size_t len, const char *version)
{
    char buf[256];
    if (len >= sizeof(buf)) {
        return false;
    }
    memcpy(buf, range, len);
    buf[len] = '\0';
    bool json = false, g = false, v = false, as_ = false;
    char *save = NULL;
    for (char *t = strtok_r(buf, ";", &save); t;
         t = strtok_r(NULL, ";", &save)) {
        while (*t == ' ') {
            t++;
        }
        char *e = t + strlen(t);
        while (e > t && e[-1] == ' ') {
            *--e = '\0';
        }
        if (!strcasecmp(t, "application/json")) {
            json = true;
        } else if (!strcmp(t, "g=apidiscovery.k8s.io")) {
            g = true;
        } else if (!strncmp(t, "v=", 2) && !strcmp(t + 2, version)) {
            v = true;
        } else if (!strcmp(t, "as=APIGroupDiscoveryList")) {
            as_ = true;
        }
    }
    return json && g && v && as_;
}

/* The aggregated discovery version the Accept header asks for first
 * ("v2", "v2beta1"), or NULL for the plain documents. */
static const char *
as_accept_agg(struct http_request *req)
{
    const char *a = http_request_header(req, "Accept");
    while (a && *a) {
        const char *e = strchr(a, ',');
        size_t len = e ? (size_t) (e - a) : strlen(a);
        if (as_accept_range_agg(a, len, "v2")) {
            return "v2";
        }
        if (as_accept_range_agg(a, len, "v2beta1")) {
            return "v2beta1";
        }
        a = e ? e + 1 : NULL;
    }
    return NULL;
}

static void as_send(struct http_request *req, json_t *doc);

static void
as_send_agg(struct http_request *req, bool core, const char *version)
{
    char av[64], ct[160];
    snprintf(av, sizeof(av), "apidiscovery.k8s.io/%s", version);
    snprintf(ct, sizeof(ct),
             "application/json;g=apidiscovery.k8s.io;v=%s;"
             "as=APIGroupDiscoveryList",
             version);
    json_t *doc = as_agg_list(core, av);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!text) {
        as_send(req, NULL);
        return;
    }
    http_respond_take(req, 200, ct, text, strlen(text));
}

/* ------------------------------------------------------------------ */
/* OpenAPI */

/* Kubernetes-style definition name: reverse group domain + version +
 * kind ("com.nvidia.dpu.provisioning.v1alpha1.DPU"); core kinds are
 * "io.k8s.api.core.v1.Pod". */
static void
as_definition_name(const struct schema_kind *k, char *buf, size_t size)
{
    if (!k->group[0]) {
        snprintf(buf, size, "io.k8s.api.core.%s.%s", k->version, k->kind);
        return;
    }
    if (k->builtin) {
        /* Kubernetes' own groups: io.k8s.api.apps.v1.Deployment,
         * io.k8s.api.events.v1.Event (the group's first label). */
        snprintf(buf, size, "io.k8s.api.%.*s.%s.%s",
                 (int) strcspn(k->group, "."), k->group, k->version, k->kind);
        return;
    }
    char rev[200] = "";
    const char *g = k->group;
    const char *end = g + strlen(g);
    while (end > g) {
        const char *dot = end - 1;
        while (dot > g && *dot != '.') {
            dot--;
        }
        const char *start = *dot == '.' ? dot + 1 : dot;
        size_t l = strlen(rev);
        snprintf(rev + l, sizeof(rev) - l, "%s%.*s", l ? "." : "",
                 (int) (end - start), start);
        end = dot;
    }
    snprintf(buf, size, "%s.%s.%s", rev, k->version, k->kind);
}

static json_t *
as_gvk_ext(const struct schema_kind *k)
{
    return json_pack("{s:s,s:s,s:s}", "group", k->group, "version", k->version,
                     "kind", k->kind);
}

static json_t *
as_op(const struct schema_kind *k, const char *action, const char *id,
      const char *ref, bool field_validation, bool patch)
{
    json_t *params = json_array();
    if (field_validation) {
        json_array_append_new(
            params, json_pack("{s:s,s:s,s:s,s:{s:s},s:b}", "name",
                              "fieldValidation", "in", "query", "description",
                              "Ignore, Warn or Strict handling of unknown "
                              "and duplicate fields",
                              "schema", "type", "string", "uniqueItems", 1));
        json_array_append_new(params,
                              json_pack("{s:s,s:s,s:{s:s},s:b}", "name",
                                        "dryRun", "in", "query", "schema",
                                        "type", "string", "uniqueItems", 1));
        json_array_append_new(params,
                              json_pack("{s:s,s:s,s:{s:s},s:b}", "name",
                                        "fieldManager", "in", "query", "schema",
                                        "type", "string", "uniqueItems", 1));
    }
    char refbuf[300];
    snprintf(refbuf, sizeof(refbuf), "#/components/schemas/%s", ref);
    json_t *content = json_pack("{s:{s:{s:s}}}", "application/json", "schema",
                                "$ref", refbuf);
    json_t *op =
        json_pack("{s:s,s:o,s:{s:{s:s,s:o}},s:s,s:o}", "operationId", id,
                  "parameters", params, "responses", "200", "description", "OK",
                  "content", content, "x-kubernetes-action", action,
                  "x-kubernetes-group-version-kind", as_gvk_ext(k));
    if (patch) {
        json_t *body = json_pack(
            "{s:{s:{s:s}},s:{s:{s:s}},s:{s:{s:s}}}",
            "application/json-patch+json", "schema", "type", "object",
            "application/merge-patch+json", "schema", "type", "object",
            "application/apply-patch+yaml", "schema", "type", "object");
        if (k->builtin) {
            json_object_set_new(
                body, "application/strategic-merge-patch+json",
                json_pack("{s:{s:s}}", "schema", "type", "object"));
        }
        json_object_set_new(
            op, "requestBody",
            json_pack("{s:o,s:b}", "content", body, "required", 1));
    } else if (field_validation) {
        json_object_set_new(op, "requestBody",
                            json_pack("{s:{s:{s:{s:s}}},s:b}", "content",
                                      "application/json", "schema", "$ref",
                                      refbuf, "required", 1));
    }
    return op;
}

static json_t *
as_openapi_v3_doc(const char *group, const char *version)
{
    size_t n;
    const struct schema_kind *const *kinds = schema_kinds(&n);
    json_t *paths = json_object();
    json_t *schemas = json_object();
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        const struct schema_kind *k = kinds[i];
        if (strcmp(k->group, group) != 0 || strcmp(k->version, version) != 0) {
            continue;
        }
        any = true;
        char def[256];
        as_definition_name(k, def, sizeof(def));
        json_t *sch = schema_openapi_v3(k);
        if (!json_is_object(sch)) {
            json_decref(sch);
            sch = json_pack("{s:s}", "type", "object");
        }
        json_object_set_new(sch, "x-kubernetes-group-version-kind",
                            json_pack("[o]", as_gvk_ext(k)));
        json_object_set_new(schemas, def, sch);
        char base[300], coll[400], item[450], status[480], id[200];
        if (group[0]) {
            snprintf(base, sizeof(base), "/apis/%s/%s", group, version);
        } else {
            snprintf(base, sizeof(base), "/api/%s", version);
        }
        if (k->namespaced) {
            snprintf(coll, sizeof(coll), "%s/namespaces/{namespace}/%s", base,
                     k->plural);
        } else {
            snprintf(coll, sizeof(coll), "%s/%s", base, k->plural);
        }
        snprintf(item, sizeof(item), "%s/{name}", coll);
        snprintf(status, sizeof(status), "%s/status", item);
        snprintf(id, sizeof(id), "%s%s", k->kind, k->namespaced ? "Ns" : "");
        char oid[256];
        json_t *pc = json_object();
        snprintf(oid, sizeof(oid), "list%s", id);
        json_object_set_new(pc, "get",
                            as_op(k, "list", oid, def, false, false));
        snprintf(oid, sizeof(oid), "create%s", id);
        json_object_set_new(pc, "post",
                            as_op(k, "post", oid, def, true, false));
        snprintf(oid, sizeof(oid), "deletecollection%s", id);
        json_object_set_new(
            pc, "delete", as_op(k, "deletecollection", oid, def, false, false));
        json_object_set_new(paths, coll, pc);
        json_t *pi = json_object();
        snprintf(oid, sizeof(oid), "read%s", id);
        json_object_set_new(pi, "get", as_op(k, "get", oid, def, false, false));
        snprintf(oid, sizeof(oid), "replace%s", id);
        json_object_set_new(pi, "put", as_op(k, "put", oid, def, true, false));
        snprintf(oid, sizeof(oid), "patch%s", id);
        json_object_set_new(pi, "patch",
                            as_op(k, "patch", oid, def, true, true));
        snprintf(oid, sizeof(oid), "delete%s", id);
        json_object_set_new(pi, "delete",
                            as_op(k, "delete", oid, def, false, false));
        json_object_set_new(paths, item, pi);
        if (k->has_status) {
            json_t *ps = json_object();
            snprintf(oid, sizeof(oid), "read%sStatus", id);
            json_object_set_new(ps, "get",
                                as_op(k, "get", oid, def, false, false));
            snprintf(oid, sizeof(oid), "replace%sStatus", id);
            json_object_set_new(ps, "put",
                                as_op(k, "put", oid, def, true, false));
            snprintf(oid, sizeof(oid), "patch%sStatus", id);
            json_object_set_new(ps, "patch",
                                as_op(k, "patch", oid, def, true, true));
            json_object_set_new(paths, status, ps);
        }
    }
    if (!any) {
        json_decref(paths);
        json_decref(schemas);
        return NULL;
    }
    return json_pack("{s:s,s:{s:s,s:s},s:o,s:{s:o}}", "openapi", "3.0.0",
                     "info", "title", "dpf", "version",
                     "v" AS_KUBE_MAJOR "." AS_KUBE_MINOR ".0-dpf." DPF_VERSION,
                     "paths", paths, "components", "schemas", schemas);
}

static json_t *
as_openapi_v3_index(void)
{
    struct as_gv gvs[256];
    size_t n = as_group_versions(gvs, ARRAY_SIZE(gvs));
    json_t *paths = json_object();
    for (size_t i = 0; i < n; i++) {
        char p[256], url[400];
        if (gvs[i].group[0]) {
            snprintf(p, sizeof(p), "apis/%s/%s", gvs[i].group, gvs[i].version);
        } else {
            snprintf(p, sizeof(p), "api/%s", gvs[i].version);
        }
        snprintf(url, sizeof(url), "/openapi/v3/%s?hash=DPF%s", p, DPF_VERSION);
        json_object_set_new(paths, p,
                            json_pack("{s:s}", "serverRelativeURL", url));
    }
    return json_pack("{s:o}", "paths", paths);
}

/* One v2 operation of k: its id, the action and group-version-kind
 * extensions kubectl looks for, the query parameters a write takes
 * (dryRun: kubectl 1.20 checks it is there before diff and
 * apply --dry-run=server) and the body. */
static json_t *
as_v2_op(const struct schema_kind *k, const char *action, const char *id,
         const char *ref, bool write, bool patch)
{
    char refbuf[300];
    snprintf(refbuf, sizeof(refbuf), "#/definitions/%s", ref);
    json_t *params = json_array();
    if (write) {
        static const char *const q[] = {"dryRun", "fieldManager",
                                        "fieldValidation"};
        for (size_t i = 0; i < ARRAY_SIZE(q); i++) {
            json_array_append_new(
                params, json_pack("{s:s,s:s,s:s,s:b}", "name", q[i], "in",
                                  "query", "type", "string", "uniqueItems", 1));
        }
        json_array_append_new(
            params, json_pack("{s:s,s:s,s:b,s:o}", "name", "body", "in", "body",
                              "required", 1, "schema",
                              patch ? json_pack("{s:s}", "type", "object")
                                    : json_pack("{s:s}", "$ref", refbuf)));
    }
    json_t *op = json_pack("{s:s,s:o,s:{s:{s:s,s:{s:s}}},s:s,s:o,s:[s,s]}",
                           "operationId", id, "parameters", params, "responses",
                           "200", "description", "OK", "schema", "$ref", refbuf,
                           "x-kubernetes-action", action,
                           "x-kubernetes-group-version-kind", as_gvk_ext(k),
                           "produces", "application/json", "application/yaml");
    if (patch) {
        json_t *c = json_pack("[s,s,s]", "application/json-patch+json",
                              "application/merge-patch+json",
                              "application/apply-patch+yaml");
        if (!k->group[0]) {
            json_array_append_new(
                c, json_string("application/strategic-merge-patch+json"));
        }
        json_object_set_new(op, "consumes", c);
    }
    return op;
}

#define AS_OBJECT_META "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"

/* ObjectMeta as its own definition, which every kind's metadata refers
 * to (as in Kubernetes' document): kubectl explains it, and its patch
 * logic wants a kind there, not a free map. */
static json_t *
as_object_meta_v2(void)
{
    static const struct {
        const char *name, *type, *desc;
    } f[] = {
        {"name", "string", "Name of the object, unique in its namespace."},
        {"generateName", "string",
         "Prefix the server completes to a unique name when name is empty."},
        {"namespace", "string", "The namespace the object lives in."},
        {"uid", "string", "Unique id the server gives the object."},
        {"resourceVersion", "string",
         "Version of the object for optimistic concurrency and watches."},
        {"generation", "integer",
         "Number the server bumps on every change of the desired state."},
        {"creationTimestamp", "string", "When the object was created (UTC)."},
        {"deletionTimestamp", "string",
         "When deletion was requested; set by the server."},
        {"deletionGracePeriodSeconds", "integer",
         "Seconds the object has to go away once deletion started."},
    };
    json_t *props = json_object();
    for (size_t i = 0; i < ARRAY_SIZE(f); i++) {
        json_object_set_new(props, f[i].name,
                            json_pack("{s:s,s:s}", "type", f[i].type,
                                      "description", f[i].desc));
    }
    json_object_set_new(
        props, "labels",
        json_pack("{s:s,s:{s:s},s:s}", "type", "object", "additionalProperties",
                  "type", "string", "description",
                  "Keys and values to select and organise objects by."));
    json_object_set_new(
        props, "annotations",
        json_pack("{s:s,s:{s:s},s:s}", "type", "object", "additionalProperties",
                  "type", "string", "description",
                  "Unstructured keys and values tools keep on the object."));
    json_object_set_new(
        props, "finalizers",
        json_pack("{s:s,s:{s:s},s:s}", "type", "array", "items", "type",
                  "string", "description",
                  "What must happen before the object is removed."));
    json_object_set_new(
        props, "ownerReferences",
        json_pack("{s:s,s:{s:s,s:{s:{s:s},s:{s:s},s:{s:s},s:{s:s},"
                  "s:{s:s},s:{s:s}}},s:s,s:s,s:s}",
                  "type", "array", "items", "type", "object", "properties",
                  "apiVersion", "type", "string", "kind", "type", "string",
                  "name", "type", "string", "uid", "type", "string",
                  "controller", "type", "boolean", "blockOwnerDeletion", "type",
                  "boolean", "x-kubernetes-patch-merge-key", "uid",
                  "x-kubernetes-patch-strategy", "merge", "description",
                  "Objects this one depends on; it is collected when they "
                  "are gone."));
    json_object_set_new(props, "managedFields",
                        json_pack("{s:{},s:s}", "items", "description",
                                  "Which manager owns which fields."));
    json_object_set_new(json_object_get(props, "managedFields"), "type",
                        json_string("array"));
    return json_pack("{s:s,s:s,s:o}", "description",
                     "Metadata every persisted object has.", "type", "object",
                     "properties", props);
}

/* The swagger 2.0 document: every kind's definition (schema_openapi_v2,
 * with x-kubernetes-group-version-kind, which kubectl explain keys on)
 * and its paths. */
static json_t *
as_swagger_v2(void)
{
    size_t n;
    const struct schema_kind *const *kinds = schema_kinds(&n);
    json_t *defs = json_object();
    json_t *paths = json_object();
    for (size_t i = 0; i < n; i++) {
        const struct schema_kind *k = kinds[i];
        char def[256];
        as_definition_name(k, def, sizeof(def));
        json_t *sch = schema_openapi_v2(k);
        if (!json_is_object(sch)) {
            json_decref(sch);
            continue;
        }
        json_object_set_new(sch, "x-kubernetes-group-version-kind",
                            json_pack("[o]", as_gvk_ext(k)));
        json_t *props = json_object_get(sch, "properties");
        if (json_object_get(props, "metadata")) {
            json_object_set_new(
                props, "metadata",
                json_pack("{s:s,s:s}", "$ref", "#/definitions/" AS_OBJECT_META,
                          "description", "Standard object's metadata."));
        }
        json_object_set_new(defs, def, sch);
        char base[300], coll[400], item[450], sub[480], id[200], oid[256];
        if (k->group[0]) {
            snprintf(base, sizeof(base), "/apis/%s/%s", k->group, k->version);
        } else {
            snprintf(base, sizeof(base), "/api/%s", k->version);
        }
        if (k->namespaced) {
            snprintf(coll, sizeof(coll), "%s/namespaces/{namespace}/%s", base,
                     k->plural);
        } else {
            snprintf(coll, sizeof(coll), "%s/%s", base, k->plural);
        }
        snprintf(item, sizeof(item), "%s/{name}", coll);
        snprintf(id, sizeof(id), "%s%s%s", k->group[0] ? k->group : "core",
                 k->kind, k->namespaced ? "Ns" : "");
        json_t *pc = json_object();
        snprintf(oid, sizeof(oid), "list%s", id);
        json_object_set_new(pc, "get", as_v2_op(k, "list", oid, def, 0, 0));
        snprintf(oid, sizeof(oid), "create%s", id);
        json_object_set_new(pc, "post", as_v2_op(k, "post", oid, def, 1, 0));
        json_object_set_new(paths, coll, pc);
        json_t *pi = json_object();
        snprintf(oid, sizeof(oid), "read%s", id);
        json_object_set_new(pi, "get", as_v2_op(k, "get", oid, def, 0, 0));
        snprintf(oid, sizeof(oid), "replace%s", id);
        json_object_set_new(pi, "put", as_v2_op(k, "put", oid, def, 1, 0));
        snprintf(oid, sizeof(oid), "patch%s", id);
        json_object_set_new(pi, "patch", as_v2_op(k, "patch", oid, def, 1, 1));
        snprintf(oid, sizeof(oid), "delete%s", id);
        json_object_set_new(pi, "delete",
                            as_v2_op(k, "delete", oid, def, 1, 0));
        json_object_set_new(paths, item, pi);
        if (k->has_status) {
            snprintf(sub, sizeof(sub), "%s/status", item);
            json_t *ps = json_object();
            snprintf(oid, sizeof(oid), "read%sStatus", id);
            json_object_set_new(ps, "get", as_v2_op(k, "get", oid, def, 0, 0));
            snprintf(oid, sizeof(oid), "replace%sStatus", id);
            json_object_set_new(ps, "put", as_v2_op(k, "put", oid, def, 1, 0));
            snprintf(oid, sizeof(oid), "patch%sStatus", id);
            json_object_set_new(ps, "patch",
                                as_v2_op(k, "patch", oid, def, 1, 1));
            json_object_set_new(paths, sub, ps);
        }
    }
    json_object_set_new(defs, AS_OBJECT_META, as_object_meta_v2());
    return json_pack("{s:s,s:{s:s,s:s},s:o,s:o}", "swagger", "2.0", "info",
                     "title", "dpf", "version",
                     "v" AS_KUBE_MAJOR "." AS_KUBE_MINOR ".0-dpf." DPF_VERSION,
                     "paths", paths, "definitions", defs);
}

static bool
as_accepts_json(struct http_request *req)
{
    const char *a = http_request_header(req, "Accept");
    return a && strstr(a, "application/json") && !strstr(a, "protobuf");
}

/* Split "a/b/c" (no leading slash) into up to 4 segments. */
static int
as_split(const char *path, char seg[][160], int max)
{
    int n = 0;
    const char *p = path;
    while (*p == '/') {
        p++;
    }
    while (*p && n < max) {
        const char *e = strchr(p, '/');
        size_t l = e ? (size_t) (e - p) : strlen(p);
        if (l >= 160) {
            return -1;
        }
        memcpy(seg[n], p, l);
        seg[n][l] = '\0';
        n++;
        if (!e) {
            break;
        }
        p = e;
        while (*p == '/') {
            p++;
        }
    }
    if (*p && n == max && strchr(p, '/')) {
        return max + 1;
    }
    return n;
}

static void
as_send(struct http_request *req, json_t *doc)
{
    as_respond_json(req, 200, NULL, doc); /* 500 Status if doc is NULL */
    json_decref(doc);
}

bool
as_discovery_handle(struct apiserver *as, struct http_request *req,
                    const char *method, const char *path)
{
    bool get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    if (!strcmp(path, "/healthz") || !strcmp(path, "/livez") ||
        str_has_prefix(path, "/healthz/") || str_has_prefix(path, "/livez/")) {
        as_respond_plain(req, 200, "ok");
        return true;
    }
    if (!strcmp(path, "/readyz") || str_has_prefix(path, "/readyz/")) {
        if (as->ready) {
            as_respond_plain(req, 200, "ok");
        } else {
            as_respond_plain(req, 503, "not ready");
        }
        return true;
    }
    if (!strcmp(path, "/version") || !strcmp(path, "/version/")) {
        as_send(req, as_version_json());
        return true;
    }
    if (str_has_prefix(path, "/openapi/v2") ||
        str_has_prefix(path, "/swagger")) {
        if (!strcmp(path, "/openapi/v2") && get) {
            json_t *doc = as_swagger_v2();
            if (as_accepts_json(req)) {
                as_send(req, doc);
                return true;
            }
            /* kubectl asks for gnostic's protobuf encoding of the same
             * document (explain, validation, the dry-run check). */
            size_t len = 0;
            uint8_t *pb = as_openapi_v2_protobuf(doc, &len);
            json_decref(doc);
            if (!pb) {
                as_send(req, NULL);
                return true;
            }
            /* (kubectl's media type parser refuses the '@' of the
             * type it asked for, so the bytes go as octet-stream.) */
            http_respond_take(req, 200, "application/octet-stream", (char *) pb,
                              len);
            return true;
        }
        return false;
    }
    if (str_has_prefix(path, "/openapi/v3")) {
        if (!get) {
            return false;
        }
        const char *rest = path + strlen("/openapi/v3");
        if (!*rest || !strcmp(rest, "/")) {
            as_send(req, as_openapi_v3_index());
            return true;
        }
        char seg[4][160];
        int n = as_split(rest, seg, 4);
        json_t *doc = NULL;
        if (n == 2 && !strcmp(seg[0], "api")) {
            doc = as_openapi_v3_doc("", seg[1]);
        } else if (n == 3 && !strcmp(seg[0], "apis")) {
            doc = as_openapi_v3_doc(seg[1], seg[2]);
        }
        if (!doc) {
            return false;
        }
        as_send(req, doc);
        return true;
    }
    char seg[4][160];
    int n = as_split(path, seg, 4);
    if (n < 1 || n > 3 ||
        (strcmp(seg[0], "api") != 0 && strcmp(seg[0], "apis") != 0)) {
        return false;
    }
    if (!strcmp(seg[0], "api") && n > 2) {
        return false;
    }
    if (!get) {
        struct as_error ae = {0};
        as_error_set(&ae, 405, "MethodNotAllowed",
                     "the server does not allow this method on the "
                     "requested resource");
        as_respond_error(req, &ae);
        return true;
    }
    const char *agg = n == 1 ? as_accept_agg(req) : NULL;
    if (agg) {
        as_send_agg(req, !strcmp(seg[0], "api"), agg);
        return true;
    }
    if (!strcmp(seg[0], "api")) {
        if (n == 1) {
            as_send(req, json_pack("{s:s,s:[s],s:[{s:s,s:s}]}", "kind",
                                   "APIVersions", "versions", "v1",
                                   "serverAddressByClientCIDRs", "clientCIDR",
                                   "0.0.0.0/0", "serverAddress", ""));
            return true;
        }
        json_t *rl = as_resource_list("", seg[1]);
        if (!rl) {
            return false;
        }
        as_send(req, rl);
        return true;
    }
    if (n == 1) {
        as_send(req, as_group_list());
        return true;
    }
    if (n == 2) {
        struct as_gv gvs[256];
        size_t m = as_group_versions(gvs, ARRAY_SIZE(gvs));
        json_t *g = as_api_group(seg[1], gvs, m);
        if (!g) {
            return false;
        }
        json_object_set_new(g, "kind", json_string("APIGroup"));
        json_object_set_new(g, "apiVersion", json_string("v1"));
        as_send(req, g);
        return true;
    }
    json_t *rl = as_resource_list(seg[1], seg[2]);
    if (!rl) {
        return false;
    }
    as_send(req, rl);
    return true;
}
