/* allocator: see allocator.h. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "controllers/allocator.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/kube/kube-rest.h"

LOG_MODULE(allocator);

#define DEFAULT_MAX_NODES 1000 /* DPF's default for spec.maxNodes */

static const struct kube_gvr cluster_gvr = {"provisioning.dpu.nvidia.com",
                                            "v1alpha1", "dpuclusters", true};
static const struct kube_gvr dpu_gvr = {"provisioning.dpu.nvidia.com",
                                        "v1alpha1", "dpus", true};

struct allocator {
    struct kube_rest *rest; /* borrowed; NULL in unit tests */
    pthread_mutex_t mu;
    bool loaded;      /* rebuilt from the API once */
    json_t *clusters; /* "ns/name" -> {"phase": s, "max": i} */
    json_t *dpus;     /* dpu uid -> "ns/name" */
    json_t *counts;   /* "ns/name" -> DPUs assigned (kept with dpus: a
                         walk over every DPU per assignment was O(N^2)
                         for a fleet) */
};

struct allocator *
allocator_create(struct kube_rest *rest)
{
    struct allocator *a = xcalloc(1, sizeof *a);
    a->rest = rest;
    pthread_mutex_init(&a->mu, NULL);
    a->clusters = json_object();
    a->dpus = json_object();
    a->counts = json_object();
    return a;
}

void
allocator_destroy(struct allocator *a)
{
    if (!a) {
        return;
    }
    json_decref(a->clusters);
    json_decref(a->dpus);
    json_decref(a->counts);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

static const char *
str_at(const json_t *obj, const char *a, const char *b)
{
    return json_string_value(json_object_get(json_object_get(obj, a), b));
}

/* Caller holds mu. */
static void
cluster_set_locked(struct allocator *a, const json_t *c)
{
    const char *ns = str_at(c, "metadata", "namespace");
    const char *name = str_at(c, "metadata", "name");
    if (!ns || !name) {
        return;
    }
    const char *phase = str_at(c, "status", "phase");
    json_t *max = json_object_get(json_object_get(c, "spec"), "maxNodes");
    json_int_t m =
        json_is_integer(max) ? json_integer_value(max) : DEFAULT_MAX_NODES;
    bool deleting =
        json_object_get(json_object_get(c, "metadata"), "deletionTimestamp");
    char *key = xasprintf("%s/%s", ns, name);
    json_object_set_new(
        a->clusters, key,
        json_pack("{s:s, s:I}", "phase",
                  deleting ? "Deleting" : (phase ? phase : "Pending"), "max",
                  m));
    free(key);
}

/* The cluster a DPU names in spec.cluster, "ns/name", or NULL. */
static char *
dpu_cluster_key(const json_t *dpu)
{
    json_t *cl = json_object_get(json_object_get(dpu, "spec"), "cluster");
    const char *name = json_string_value(json_object_get(cl, "name"));
    const char *ns = json_string_value(json_object_get(cl, "namespace"));
    if (!name || !*name) {
        return NULL;
    }
    if (!ns || !*ns) {
        ns = str_at(dpu, "metadata", "namespace");
    }
    return xasprintf("%s/%s", ns ? ns : "default", name);
}

static void
count_add_locked(struct allocator *a, const char *key, json_int_t d)
{
    json_int_t n = json_integer_value(json_object_get(a->counts, key)) + d;
    if (n > 0) {
        json_object_set_new(a->counts, key, json_integer(n));
    } else {
        json_object_del(a->counts, key);
    }
}

/* DPU uid is on cluster key (NULL: on none). */
static void
dpu_set_locked(struct allocator *a, const char *uid, const char *key)
{
    const char *old = json_string_value(json_object_get(a->dpus, uid));
    if (old) {
        count_add_locked(a, old, -1);
    }
    if (key) {
        json_object_set_new(a->dpus, uid, json_string(key));
        count_add_locked(a, key, 1);
    } else {
        json_object_del(a->dpus, uid);
    }
}

static void
dpu_save_locked(struct allocator *a, const json_t *dpu)
{
    const char *uid = str_at(dpu, "metadata", "uid");
    char *key = dpu_cluster_key(dpu);
    if (uid && key) {
        dpu_set_locked(a, uid, key);
    }
    free(key);
}

void
allocator_load(struct allocator *a, const json_t *clusters, const json_t *dpus)
{
    pthread_mutex_lock(&a->mu);
    json_object_clear(a->clusters);
    json_object_clear(a->dpus);
    json_object_clear(a->counts);
    size_t i;
    json_t *v;
    json_array_foreach(clusters, i, v)
    {
        cluster_set_locked(a, v);
    }
    json_array_foreach(dpus, i, v)
    {
        dpu_save_locked(a, v);
    }
    a->loaded = true;
    pthread_mutex_unlock(&a->mu);
}

void
allocator_cluster_set(struct allocator *a, const json_t *cluster)
{
    pthread_mutex_lock(&a->mu);
    cluster_set_locked(a, cluster);
    pthread_mutex_unlock(&a->mu);
}

void
allocator_cluster_remove(struct allocator *a, const char *ns, const char *name)
{
    char *key = xasprintf("%s/%s", ns, name);
    pthread_mutex_lock(&a->mu);
    json_object_del(a->clusters, key);
    pthread_mutex_unlock(&a->mu);
    free(key);
}

static size_t
count_locked(struct allocator *a, const char *key)
{
    return (size_t) json_integer_value(json_object_get(a->counts, key));
}

size_t
allocator_count(struct allocator *a, const char *ns, const char *name)
{
    char *key = xasprintf("%s/%s", ns, name);
    pthread_mutex_lock(&a->mu);
    size_t n = count_locked(a, key);
    pthread_mutex_unlock(&a->mu);
    free(key);
    return n;
}

/* Order: name, then namespace (DPF sorts by name). */
static int
cmp_keys(const void *x, const void *y)
{
    const char *a = *(const char *const *) x;
    const char *b = *(const char *const *) y;
    const char *an = strchr(a, '/') + 1, *bn = strchr(b, '/') + 1;
    int c = strcmp(an, bn);
    return c ? c : strcmp(a, b);
}

static void
split_key(const char *key, char **ns, char **name)
{
    const char *slash = strchr(key, '/');
    if (ns) {
        *ns = xstrndup(key, (size_t) (slash - key));
    }
    if (name) {
        *name = xstrdup(slash + 1);
    }
}

int
allocator_pick(struct allocator *a, const json_t *dpu, char **ns, char **name,
               struct dpf_error *err)
{
    const char *uid = str_at(dpu, "metadata", "uid");
    if (!uid) {
        dpf_error_set(err, 400, "BadRequest", "the DPU has no metadata.uid");
        return -EINVAL;
    }
    int rc = -EAGAIN;
    pthread_mutex_lock(&a->mu);
    const char *have = json_string_value(json_object_get(a->dpus, uid));
    if (have) {
        split_key(have, ns, name);
        pthread_mutex_unlock(&a->mu);
        return 0;
    }
    size_t n = json_object_size(a->clusters);
    const char **keys = xcalloc(n ? n : 1, sizeof *keys);
    size_t k = 0;
    const char *key;
    json_t *v;
    json_object_foreach(a->clusters, key, v)
    {
        keys[k++] = key;
    }
    qsort(keys, k, sizeof *keys, cmp_keys);
    struct dbuf why;
    dbuf_init(&why);
    bool any_ready = false;
    for (size_t i = 0; i < k; i++) {
        json_t *c = json_object_get(a->clusters, keys[i]);
        const char *phase = json_string_value(json_object_get(c, "phase"));
        json_int_t max = json_integer_value(json_object_get(c, "max"));
        if (strcmp(phase, "Ready") != 0) {
            dbuf_printf(&why, "%s%s is %s", why.len ? ", " : "", keys[i],
                        phase);
            continue;
        }
        any_ready = true;
        size_t used = count_locked(a, keys[i]);
        if ((json_int_t) used >= max) {
            dbuf_printf(&why, "%s%s has %zu of %lld nodes", why.len ? ", " : "",
                        keys[i], used, (long long) max);
            continue;
        }
        dpu_set_locked(a, uid, keys[i]);
        split_key(keys[i], ns, name);
        rc = 0;
        break;
    }
    if (rc < 0) {
        if (k == 0) {
            dpf_error_set(err, 409, "Conflict", "there is no DPUCluster");
        } else if (!any_ready) {
            dpf_error_set(err, 409, "Conflict", "no DPUCluster is Ready: %s",
                          why.data);
        } else {
            dpf_error_set(err, 409, "Conflict",
                          "every Ready DPUCluster is full: %s", why.data);
        }
    }
    dbuf_free(&why);
    free(keys);
    pthread_mutex_unlock(&a->mu);
    return rc;
}

/* List every object of gvr in all namespaces: a new array, or NULL. */
static json_t *
list_all(struct kube_rest *rest, const struct kube_gvr *gvr,
         struct dpf_error *err)
{
    char *path = kube_path(gvr, NULL, NULL, NULL);
    json_t *out = NULL;
    int rc =
        kube_rest_json_wait(rest, "GET", path, NULL, NULL, NULL, &out, err);
    free(path);
    if (rc < 0) {
        return NULL;
    }
    json_t *items = json_incref(json_object_get(out, "items"));
    json_decref(out);
    return items ? items : json_array();
}

static int
rebuild(struct allocator *a, struct dpf_error *err)
{
    json_t *clusters = list_all(a->rest, &cluster_gvr, err);
    if (!clusters) {
        return -EIO;
    }
    json_t *dpus = list_all(a->rest, &dpu_gvr, err);
    if (!dpus) {
        json_decref(clusters);
        return -EIO;
    }
    allocator_load(a, clusters, dpus);
    log_info("allocator state rebuilt from the API", "clusters=%zu dpus=%zu",
             json_array_size(clusters), json_array_size(dpus));
    json_decref(clusters);
    json_decref(dpus);
    return 0;
}

int
allocator_assign(struct allocator *a, const json_t *dpu, char **ns_out,
                 char **name_out, json_t **patched, struct dpf_error *err)
{
    if (patched) {
        *patched = NULL;
    }
    if (ns_out) {
        *ns_out = NULL;
    }
    if (name_out) {
        *name_out = NULL;
    }
    pthread_mutex_lock(&a->mu);
    bool loaded = a->loaded;
    pthread_mutex_unlock(&a->mu);
    if (!loaded && a->rest && rebuild(a, err) < 0) {
        return -EIO;
    }
    char *ns = NULL, *name = NULL;
    int rc = allocator_pick(a, dpu, &ns, &name, err);
    if (rc < 0) {
        return rc;
    }
    if (a->rest) {
        const char *dns = str_at(dpu, "metadata", "namespace");
        const char *dname = str_at(dpu, "metadata", "name");
        char *path = kube_path(&dpu_gvr, dns, dname, NULL);
        json_t *patch = json_pack("{s:{s:{s:s, s:s}}}", "spec", "cluster",
                                  "name", name, "namespace", ns);
        rc = kube_rest_json_wait(a->rest, "PATCH", path, NULL, patch,
                                 "application/merge-patch+json", patched, err);
        json_decref(patch);
        free(path);
        if (rc < 0) {
            allocator_release(a, str_at(dpu, "metadata", "uid"));
            free(ns);
            free(name);
            return rc;
        }
        log_info("DPU assigned to a DPU cluster", "dpu=%s/%s cluster=%s/%s",
                 dns, dname, ns, name);
    }
    if (ns_out) {
        *ns_out = ns;
    } else {
        free(ns);
    }
    if (name_out) {
        *name_out = name;
    } else {
        free(name);
    }
    return 0;
}

void
allocator_save(struct allocator *a, const json_t *dpu)
{
    pthread_mutex_lock(&a->mu);
    dpu_save_locked(a, dpu);
    pthread_mutex_unlock(&a->mu);
}

void
allocator_release(struct allocator *a, const char *dpu_uid)
{
    if (!dpu_uid) {
        return;
    }
    pthread_mutex_lock(&a->mu);
    dpu_set_locked(a, dpu_uid, NULL);
    pthread_mutex_unlock(&a->mu);
}
