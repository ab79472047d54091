/* dcview: the Nodes of the DPU clusters, watched (dcview.h). */
#include "controllers/dcview.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/base/loop.h"
#include "lib/base/util.h"
#include "lib/kube/informer.h"
#include "lib/kube/kube-bootstrap.h"
#include "lib/kube/kube-object.h"
#include "lib/kube/kube-rest.h"
#include "lib/kube/kubeconfig.h"

LOG_MODULE(dpu);

struct dcview {
    struct dcviews *v;
    char *uid, *cluster;
    struct kubeconfig *kc; /* until made on the loop */
    char *server;          /* the API endpoint, for join commands */
    char pin[72];          /* the CA's kubeadm pin, "" if none */
    struct kube_rest *rest;
    struct informer *nodes;
};

struct dcviews {
    struct loop *loop;
    dcview_node_fn on_node;
    void *arg;
    pthread_mutex_t mu;
    struct dcview **views;
    size_t n;
    bool stopped; /* dcviews_stop() ran: the loop may be gone */
};

struct dcviews *
dcviews_create(struct loop *loop, dcview_node_fn on_node, void *arg)
{
    struct dcviews *v = xcalloc(1, sizeof *v);
    v->loop = loop;
    v->on_node = on_node;
    v->arg = arg;
    pthread_mutex_init(&v->mu, NULL);
    return v;
}

static void
view_free(struct dcview *w)
{
    informer_destroy(w->nodes);
    kube_rest_destroy(w->rest);
    kubeconfig_free(w->kc);
    free(w->server);
    free(w->uid);
    free(w->cluster);
    free(w);
}

void
dcviews_destroy(struct dcviews *v)
{
    if (!v) {
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        view_free(v->views[i]);
    }
    free(v->views);
    pthread_mutex_destroy(&v->mu);
    free(v);
}

/* With mu held. */
static struct dcview *
view_find(struct dcviews *v, const char *uid)
{
    for (size_t i = 0; i < v->n; i++) {
        if (!strcmp(v->views[i]->uid, uid)) {
            return v->views[i];
        }
    }
    return NULL;
}

int
dcviews_state(struct dcviews *v, const char *uid)
{
    pthread_mutex_lock(&v->mu);
    struct dcview *w = view_find(v, uid);
    int rc = !w ? -ENOENT : w->nodes && informer_has_synced(w->nodes) ? 1 : 0;
    pthread_mutex_unlock(&v->mu);
    return rc;
}

/* The Ready condition's status ("" when none). */
static const char *
node_ready(const json_t *n)
{
    const char *s = json_string_value(
        json_object_get(kube_condition_find(n, "Ready"), "status"));
    return s ? s : "";
}

static void
node_changed(struct dcview *w, const json_t *n)
{
    const char *name = json_string_value(
        json_object_get(json_object_get(n, "metadata"), "name"));
    if (name) {
        w->v->on_node(w->v->arg, name);
    }
}

static void
on_add(void *arg, const json_t *obj)
{
    node_changed(arg, obj);
}

/* What the DPU controller reads of a DPU cluster's Node: its metadata
 * (labels) and status.conditions (Ready). The spec, addresses, capacity,
 * node info and images are dropped before the Node is cached: with
 * thousands of DPUs, the views are a large share of the controller's
 * memory. */
static void
node_slim(json_t *node)
{
    json_object_del(node, "spec");
    kube_json_keep_only(node, "status", "conditions");
}

static void
on_update(void *arg, const json_t *old, const json_t *obj)
{
    /* heartbeats change the status every few seconds: only the Ready
     * condition and the labels matter to the DPU controller */
    const json_t *la =
        json_object_get(json_object_get(old, "metadata"), "labels");
    const json_t *lb =
        json_object_get(json_object_get(obj, "metadata"), "labels");
    if (strcmp(node_ready(old), node_ready(obj)) || !kube_json_same(la, lb)) {
        node_changed(arg, obj);
    }
}

static void
on_delete(void *arg, const json_t *obj)
{
    node_changed(arg, obj);
}

/* Loop thread: make the view's client and informer. */
static void
view_make(void *arg)
{
    struct dcview *w = arg;
    struct dpf_error err = {0};
    struct kube_rest *rest = kube_rest_create(w->v->loop, w->kc, &err);
    if (!rest) {
        log_warn_rl("cannot watch the DPU cluster's nodes",
                    "cluster=%s error=\"%s\"", w->cluster, err.message);
        pthread_mutex_lock(&w->v->mu);
        /* gone from the list: the next reconcile tries again */
        for (size_t i = 0; i < w->v->n; i++) {
            if (w->v->views[i] == w) {
                w->v->views[i] = w->v->views[--w->v->n];
                break;
            }
        }
        pthread_mutex_unlock(&w->v->mu);
        view_free(w);
        return;
    }
    kube_rest_set_user_agent(rest, "dpf-dpu-controller");
    struct informer_options o = {.gvr = {"", "v1", "nodes", false}};
    struct informer *inf = informer_create(rest, &o);
    informer_set_transform(inf, node_slim);
    struct informer_handlers h = {on_add, on_update, on_delete, w};
    informer_add_handlers(inf, &h);
    pthread_mutex_lock(&w->v->mu);
    w->rest = rest;
    w->nodes = inf;
    pthread_mutex_unlock(&w->v->mu);
    informer_start(inf);
    log_info("watching the DPU cluster's nodes", "cluster=%s", w->cluster);
}

void
dcviews_add(struct dcviews *v, const char *uid, const char *cluster,
            const struct kubeconfig *kc)
{
    pthread_mutex_lock(&v->mu);
    if (v->stopped || view_find(v, uid)) {
        pthread_mutex_unlock(&v->mu);
        return;
    }
    struct dcview *w = xcalloc(1, sizeof *w);
    w->v = v;
    w->uid = xstrdup(uid);
    w->cluster = xstrdup(cluster);
    w->kc = kubeconfig_dup(kc);
    w->server = xstrdup(kc->server ? kc->server : "");
    struct dpf_error perr = {0};
    if (!kc->ca_pem ||
        kube_bootstrap_ca_hash(kc->ca_pem, kc->ca_len, w->pin, &perr) < 0) {
        w->pin[0] = '\0';
    }
    v->views = xrealloc(v->views, (v->n + 1) * sizeof *v->views);
    v->views[v->n++] = w;
    pthread_mutex_unlock(&v->mu);
    loop_post(v->loop, view_make, w);
}

struct stop_wait {
    struct dcviews *v;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
};

static void
stop_on_loop(void *arg)
{
    struct stop_wait *sw = arg;
    struct dcviews *v = sw->v;
    pthread_mutex_lock(&v->mu);
    for (size_t i = 0; i < v->n; i++) {
        informer_destroy(v->views[i]->nodes);
        v->views[i]->nodes = NULL;
        kube_rest_destroy(v->views[i]->rest);
        v->views[i]->rest = NULL;
    }
    pthread_mutex_unlock(&v->mu);
    pthread_mutex_lock(&sw->mu);
    sw->done = true;
    pthread_cond_signal(&sw->cv);
    pthread_mutex_unlock(&sw->mu);
}

void
dcviews_stop(struct dcviews *v)
{
    if (!v) {
        return;
    }
    pthread_mutex_lock(&v->mu);
    size_t n = v->stopped ? 0 : v->n;
    v->stopped = true; /* and no new view: dcviews_add() refuses */
    pthread_mutex_unlock(&v->mu);
    if (!n) {
        return;
    }
    struct stop_wait sw = {.v = v, .done = false};
    pthread_mutex_init(&sw.mu, NULL);
    pthread_cond_init(&sw.cv, NULL);
    loop_post(v->loop, stop_on_loop, &sw);
    pthread_mutex_lock(&sw.mu);
    while (!sw.done) {
        pthread_cond_wait(&sw.cv, &sw.mu);
    }
    pthread_mutex_unlock(&sw.mu);
    pthread_cond_destroy(&sw.cv);
    pthread_mutex_destroy(&sw.mu);
}

json_t *
dcviews_node(struct dcviews *v, const char *uid, const char *name)
{
    pthread_mutex_lock(&v->mu);
    struct dcview *w = view_find(v, uid);
    struct kube_cache *c = w && w->nodes ? informer_cache(w->nodes) : NULL;
    pthread_mutex_unlock(&v->mu);
    /* views are freed only by dcviews_destroy(): c stays valid */
    return c ? kube_cache_get(c, name) : NULL;
}

int
dcviews_join_data(struct dcviews *v, const char *uid, char **server,
                  char pin[72])
{
    pthread_mutex_lock(&v->mu);
    struct dcview *w = view_find(v, uid);
    int rc = w && w->rest && w->pin[0] ? 0 : -ENOENT;
    if (rc == 0) {
        *server = xstrdup(w->server);
        memcpy(pin, w->pin, sizeof w->pin);
    }
    pthread_mutex_unlock(&v->mu);
    return rc;
}

int
dcviews_json_wait(struct dcviews *v, const char *uid, const char *method,
                  const char *path, const json_t *body,
                  const char *content_type, json_t **out, struct dpf_error *err)
{
    pthread_mutex_lock(&v->mu);
    struct dcview *w = view_find(v, uid);
    struct kube_rest *rest = w ? w->rest : NULL;
    pthread_mutex_unlock(&v->mu);
    if (!rest) {
        dpf_error_set(err, 503, "ServiceUnavailable",
                      "no connection to the DPU cluster yet");
        return -ENOENT;
    }
    return kube_rest_json_wait(rest, method, path, NULL, body, content_type,
                               out, err);
}
