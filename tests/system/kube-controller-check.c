/* kube-controller-check: a small controller written on lib/kube, run
 * against a live server by tests/system/test_informer.py.
 *
 * The controller keeps, for every ConfigMap labelled copy=src (the
 * primary), a ConfigMap "<name>-copy" labelled copy=dst with the same data
 * and a controlling owner reference to the source (the secondary, mapped
 * back to its owner with controller_map_owner()). The program creates
 * --sources sources and waits until every copy exists with the same data,
 * then changes a source and waits for its copy to follow, then deletes a
 * copy and waits for the controller to put it back. It counts reconciles
 * of one key running at the same time (must be 0) and exits 0 when every
 * step converged, 1 when one did not within --timeout seconds, 2 on a
 * setup error. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/kube/controller.h"
#include "lib/base/util.h"

static const struct kube_gvr configmaps = {"", "v1", "configmaps", true};

static pthread_mutex_t inflight_mu = PTHREAD_MUTEX_INITIALIZER;
static json_t *inflight; /* keys being reconciled */
static atomic_long overlaps;

static bool
enter(const char *key)
{
    pthread_mutex_lock(&inflight_mu);
    bool busy = json_object_get(inflight, key) != NULL;
    json_object_set_new(inflight, key, json_true());
    pthread_mutex_unlock(&inflight_mu);
    return !busy;
}

static void
leave(const char *key)
{
    pthread_mutex_lock(&inflight_mu);
    json_object_del(inflight, key);
    pthread_mutex_unlock(&inflight_mu);
}

static const char *
md_str(const json_t *o, const char *field)
{
    return json_string_value(
        json_object_get(json_object_get(o, "metadata"), field));
}

static struct controller_result
reconcile_copy(struct controller *c, const char *key)
{
    if (!enter(key)) {
        atomic_fetch_add(&overlaps, 1);
    }
    usleep(2000); /* widen the window a second worker would need */
    struct controller_result res = controller_done();
    json_t *src = kube_cache_get(controller_cache(c, 0), key);
    if (!src) {
        goto out; /* gone: the server's GC removes owned copies */
    }
    const char *ns = md_str(src, "namespace");
    char *copy_name = xasprintf("%s-copy", md_str(src, "name"));
    json_t *copy = kube_cache_get_name(controller_cache(c, 1), ns, copy_name);
    json_t *want_data = json_object_get(src, "data");
    struct dpf_error err = {0};
    int rc = 0;
    if (!copy) {
        json_t *obj = json_pack(
            "{s:s,s:s,s:{s:s,s:{s:s},s:[{s:s,s:s,s:s,s:s,s:b}]},s:O}",
            "apiVersion", "v1", "kind", "ConfigMap", "metadata", "name",
            copy_name, "labels", "copy", "dst", "ownerReferences", "apiVersion",
            "v1", "kind", "ConfigMap", "name", md_str(src, "name"), "uid",
            md_str(src, "uid"), "controller", 1, "data",
            want_data ? want_data : json_object());
        char *path = kube_path(&configmaps, ns, NULL, NULL);
        rc = kube_rest_json_wait(controller_rest(c), "POST", path, NULL, obj,
                                 NULL, NULL, &err);
        free(path);
        json_decref(obj);
    } else if (!json_equal(json_object_get(copy, "data"), want_data)) {
        json_t *patch =
            json_pack("{s:O}", "data", want_data ? want_data : json_object());
        char *path = kube_path(&configmaps, ns, copy_name, NULL);
        rc = kube_rest_json_wait(controller_rest(c), "PATCH", path, NULL, patch,
                                 "application/merge-patch+json", NULL, &err);
        free(path);
        json_decref(patch);
    }
    if (rc == -EEXIST) {
        res = controller_requeue(); /* our cache is behind: look again */
    } else if (rc < 0) {
        fprintf(stderr, "reconcile %s: %s\n", key, err.message);
        res = controller_error();
    }
    json_decref(copy);
    json_decref(src);
    free(copy_name);
out:
    leave(key);
    return res;
}

static const struct controller_watch copy_secondary[] = {
    {.gvr = {"", "v1", "configmaps", true},
     .namespace = "default",
     .label_selector = "copy=dst",
     .map = controller_map_owner},
};

static const struct controller_ops copy_ops = {
    .name = "configmap-copy",
    .primary_kind = "ConfigMap",
    .primary = {.gvr = {"", "v1", "configmaps", true},
                .namespace = "default",
                .label_selector = "copy=src"},
    .secondary = copy_secondary,
    .n_secondary = 1,
    .reconcile = reconcile_copy,
    .workers = 4,
};

/* Wait until copy i has data v=value (and, if not NULL, a uid other
 * than old_uid). */
static bool
wait_copy(struct controller *c, long i, const char *value, const char *old_uid,
          int timeout_s)
{
    char name[64];
    snprintf(name, sizeof name, "src-%03ld-copy", i);
    int64_t deadline = time_mono_ms() + timeout_s * 1000;
    while (time_mono_ms() < deadline) {
        json_t *o =
            kube_cache_get_name(controller_cache(c, 1), "default", name);
        const char *v =
            json_string_value(json_object_get(json_object_get(o, "data"), "v"));
        bool ok = v && !strcmp(v, value) &&
                  (!old_uid || strcmp(md_str(o, "uid"), old_uid) != 0);
        json_decref(o);
        if (ok) {
            return true;
        }
        usleep(20 * 1000);
    }
    fprintf(stderr, "timeout: %s never got v=%s\n", name, value);
    return false;
}

int
main(int argc, char **argv)
{
    const char *kcpath = NULL;
    long sources = 20;
    int timeout_s = 60;
    static const struct option lo[] = {
        {"kubeconfig", required_argument, NULL, 'k'},
        {"sources", required_argument, NULL, 's'},
        {"timeout", required_argument, NULL, 't'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (ch == 'k') {
            kcpath = optarg;
        } else if (ch == 's') {
            sources = atol(optarg);
        } else if (ch == 't') {
            timeout_s = atoi(optarg);
        } else {
            return 2;
        }
    }
    if (!kcpath || sources < 2) {
        fprintf(stderr, "usage: kube-controller-check --kubeconfig PATH "
                        "[--sources N] [--timeout S]\n");
        return 2;
    }
    inflight = json_object();
    struct kubeconfig_options ko = {.path = kcpath};
    struct kubeconfig *kc = NULL;
    struct dpf_error err = {0};
    if (kubeconfig_load(&ko, &kc, &err) < 0) {
        fprintf(stderr, "kubeconfig: %s\n", err.message);
        return 2;
    }
    struct controller_manager *m = controller_manager_create(kc, &err);
    kubeconfig_free(kc);
    if (!m) {
        fprintf(stderr, "manager: %s\n", err.message);
        return 2;
    }
    struct controller *c = controller_manager_add(m, &copy_ops, NULL);
    if (controller_manager_start(m, 30000, &err) < 0) {
        fprintf(stderr, "start: %s\n", err.message);
        return 2;
    }
    struct kube_rest *rest = controller_manager_rest(m);
    char *coll = kube_path(&configmaps, "default", NULL, NULL);
    for (long i = 0; i < sources; i++) {
        char name[64];
        snprintf(name, sizeof name, "src-%03ld", i);
        json_t *obj =
            json_pack("{s:s,s:s,s:{s:s,s:{s:s}},s:{s:s}}", "apiVersion", "v1",
                      "kind", "ConfigMap", "metadata", "name", name, "labels",
                      "copy", "src", "data", "v", "1");
        int rc = kube_rest_json_wait(rest, "POST", coll, NULL, obj, NULL, NULL,
                                     &err);
        json_decref(obj);
        if (rc < 0) {
            fprintf(stderr, "create %s: %s\n", name, err.message);
            return 2;
        }
    }
    bool ok = true;
    for (long i = 0; i < sources && ok; i++) {
        ok = wait_copy(c, i, "1", NULL, timeout_s);
    }
    printf("step create: %s\n", ok ? "converged" : "timeout");
    /* a source changes: its copy follows */
    if (ok) {
        char *p = kube_path(&configmaps, "default", "src-000", NULL);
        json_t *patch = json_pack("{s:{s:s}}", "data", "v", "2");
        kube_rest_json_wait(rest, "PATCH", p, NULL, patch,
                            "application/merge-patch+json", NULL, &err);
        json_decref(patch);
        free(p);
        ok = wait_copy(c, 0, "2", NULL, timeout_s);
        printf("step update: %s\n", ok ? "converged" : "timeout");
    }
    /* a copy is deleted: the secondary watch maps it to its owner, which
     * puts it back */
    if (ok) {
        json_t *old = kube_cache_get_name(controller_cache(c, 1), "default",
                                          "src-001-copy");
        char *uid = xstrdup(md_str(old, "uid"));
        json_decref(old);
        char *p = kube_path(&configmaps, "default", "src-001-copy", NULL);
        kube_rest_json_wait(rest, "DELETE", p, NULL, NULL, NULL, NULL, &err);
        free(p);
        ok = wait_copy(c, 1, "1", uid, timeout_s);
        free(uid);
        printf("step recreate: %s\n", ok ? "converged" : "timeout");
    }
    free(coll);
    controller_manager_stop(m);
    struct controller_stats st;
    controller_stats(c, &st);
    printf("controller: reconciles=%llu errors=%llu requeues=%llu "
           "overlaps=%ld\n",
           (unsigned long long) st.reconciles, (unsigned long long) st.errors,
           (unsigned long long) st.requeues, atomic_load(&overlaps));
    controller_manager_destroy(m);
    json_decref(inflight);
    return ok && atomic_load(&overlaps) == 0 ? 0 : 1;
}
