/* rbac-bench: cost of one authorization decision for a user that is not
 * in system:masters (the admin is decided by one group check), with a
 * policy of many bindings: the request's attributes parsed from the path,
 * then RBAC through the subject index. Prints ns per decision; never
 * fails on speed.
 *
 *   rbac-bench [bindings (default 10000)] [iterations (default 1000000)]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpf-server/rbac.h"
#include "lib/base/util.h"

static void
add(struct rbac *r, const char *key, json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    rbac_store_event(r, STORE_EVENT_ADDED, key, text, strlen(text));
    free(text);
    json_decref(obj);
}

static double
run(struct rbac *r, const struct authn_user *u, const char *method,
    const char *path, long iters, bool *allowed)
{
    int64_t t0 = time_mono_ns();
    bool ok = false;
    for (long i = 0; i < iters; i++) {
        struct authz_attrs a;
        authz_attrs_from_request(&a, method, path, false, NULL);
        ok = rbac_allows(r, u, &a);
        authz_attrs_free(&a);
    }
    *allowed = ok;
    return (double) (time_mono_ns() - t0) / (double) iters;
}

int
main(int argc, char **argv)
{
    long nb = argc > 1 ? atol(argv[1]) : 10000;
    long iters = argc > 2 ? atol(argv[2]) : 1000000;
    struct rbac *r = rbac_create();
    json_t *boot = rbac_bootstrap_objects();
    size_t i;
    json_t *o;
    json_array_foreach(boot, i, o)
    {
        const char *kind = json_string_value(json_object_get(o, "kind"));
        const char *name = json_string_value(
            json_object_get(json_object_get(o, "metadata"), "name"));
        char key[256];
        snprintf(key, sizeof key, "/rbac.authorization.k8s.io/%s//%s",
                 !strcmp(kind, "ClusterRole") ? "clusterroles"
                                              : "clusterrolebindings",
                 name);
        add(r, key, json_incref(o));
    }
    json_decref(boot);
    /* 100 namespaces, each a Role; nb RoleBindings of users u<i> */
    for (long n = 0; n < 100; n++) {
        char key[256], ns[32];
        snprintf(ns, sizeof ns, "ns%ld", n);
        snprintf(key, sizeof key, "/rbac.authorization.k8s.io/roles/%s/rw", ns);
        add(r, key,
            json_pack("{s:{s:s,s:s},s:[{s:[s,s,s],s:[s],s:[s,s]}]}", "metadata",
                      "name", "rw", "namespace", ns, "rules", "verbs", "get",
                      "list", "update", "apiGroups",
                      "provisioning.dpu.nvidia.com", "resources", "dpus",
                      "bfbs"));
    }
    for (long b = 0; b < nb; b++) {
        char key[256], ns[32], user[32], name[32];
        snprintf(ns, sizeof ns, "ns%ld", b % 100);
        snprintf(user, sizeof user, "u%ld", b);
        snprintf(name, sizeof name, "b%ld", b);
        snprintf(key, sizeof key,
                 "/rbac.authorization.k8s.io/rolebindings/%s/%s", ns, name);
        add(r, key,
            json_pack("{s:{s:s,s:s},s:{s:s,s:s},s:[{s:s,s:s},{s:s,s:s}]}",
                      "metadata", "name", name, "namespace", ns, "roleRef",
                      "kind", "Role", "name", "rw", "subjects", "kind", "User",
                      "name", user, "kind", "Group", "name", "team"));
    }
    struct authn_user u;
    authn_user_init(&u, "u42");
    authn_user_add_group(&u, "dev");
    authn_user_add_group(&u, "system:authenticated");
    bool ok;
    double ns_allow = run(r, &u, "PUT",
                          "/apis/provisioning.dpu.nvidia.com/v1alpha1/"
                          "namespaces/ns42/dpus/worker1-0000-04-00",
                          iters, &ok);
    printf("bindings=%ld allowed update: %.0f ns/decision (allowed=%d)\n", nb,
           ns_allow, ok);
    double ns_deny = run(r, &u, "POST",
                         "/apis/provisioning.dpu.nvidia.com/v1alpha1/"
                         "namespaces/ns43/dpus",
                         iters, &ok);
    printf("bindings=%ld denied create: %.0f ns/decision (allowed=%d)\n", nb,
           ns_deny, ok);
    rbac_destroy(r);
    return 0;
}
