/* witness: a test controller that proves leader election. Every period
 * it appends "<identity> <unix ms>" to data.log of one ConfigMap, so a
 * test reading the ConfigMap sees which manager ran controllers when: two
 * identities interleaved would be two leaders at once. Enabled only by
 * dpf-controller-manager --test-witness NS/NAME; never part of "all". */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "controllers/controllers.h"
#include "lib/base/log.h"
#include "lib/kube/controller.h"

LOG_MODULE(witness);

struct witness_ctrl {
    struct controller_ops ops;
    struct controller_watch primary;
    char *ns, *name, *key, *identity;
    int64_t period_ms;
    int64_t last_ms; /* last write (one key: one worker at a time) */
};

static const struct kube_gvr cm_gvr = {"", "v1", "configmaps", true};

static struct controller_result
witness_reconcile(struct controller *c, const char *key)
{
    struct witness_ctrl *w = controller_arg(c);
    if (strcmp(key, w->key) != 0) {
        return controller_done();
    }
    int64_t due = w->last_ms + w->period_ms - time_mono_ms();
    if (w->last_ms && due > 0) {
        return controller_requeue_after(due);
    }
    struct kube_rest *rest = controller_rest(c);
    char *path = kube_path(&cm_gvr, w->ns, w->name, NULL);
    char line[300];
    snprintf(line, sizeof line, "%s %lld\n", w->identity,
             (long long) (time_wall_ns() / 1000000));
    struct dpf_error err = {0};
    json_t *cm = NULL;
    int rc =
        kube_rest_json_wait(rest, "GET", path, NULL, NULL, NULL, &cm, &err);
    if (rc == -ENOENT) {
        json_t *n = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s}}", "apiVersion",
                              "v1", "kind", "ConfigMap", "metadata", "name",
                              w->name, "namespace", w->ns, "data", "log", line);
        char *coll = kube_path(&cm_gvr, w->ns, NULL, NULL);
        rc = kube_rest_json_wait(rest, "POST", coll, NULL, n, NULL, NULL, &err);
        free(coll);
        json_decref(n);
    } else if (rc == 0) {
        json_t *data = json_object_get(cm, "data");
        if (!json_is_object(data)) {
            data = json_object();
            json_object_set_new(cm, "data", data);
        }
        const char *old = json_string_value(json_object_get(data, "log"));
        char *log = xasprintf("%s%s", old ? old : "", line);
        json_object_set_new(data, "log", json_string(log));
        free(log);
        rc = kube_rest_json_wait(rest, "PUT", path, NULL, cm, NULL, NULL, &err);
    }
    json_decref(cm);
    free(path);
    if (rc < 0) {
        log_warn_rl("witness write failed", "configmap=%s error=\"%s\"", w->key,
                    err.message);
        return controller_requeue_after(w->period_ms);
    }
    w->last_ms = time_mono_ms();
    return controller_requeue_after(w->period_ms);
}

struct witness_ctrl *
witness_ctrl_add(struct controller_manager *m, const char *ns_name,
                 const char *identity, int64_t period_ms, struct dpf_error *err)
{
    const char *slash = ns_name ? strchr(ns_name, '/') : NULL;
    if (!slash || slash == ns_name || !slash[1]) {
        dpf_error_set(err, 400, "BadRequest",
                      "the witness ConfigMap must be NAMESPACE/NAME, not "
                      "\"%s\"",
                      ns_name ? ns_name : "");
        return NULL;
    }
    struct witness_ctrl *w = xcalloc(1, sizeof *w);
    w->ns = xstrndup(ns_name, (size_t) (slash - ns_name));
    w->name = xstrdup(slash + 1);
    w->key = xstrdup(ns_name);
    w->identity = xstrdup(identity);
    w->period_ms = period_ms > 0 ? period_ms : 500;
    w->primary.gvr = cm_gvr;
    w->primary.namespace = w->ns;
    w->ops.name = "witness";
    w->ops.primary = w->primary;
    w->ops.reconcile = witness_reconcile;
    w->ops.workers = 1;
    struct controller *c = controller_manager_add(m, &w->ops, w);
    workqueue_add(controller_queue(c), w->key); /* runs once workers start */
    return w;
}

void
witness_ctrl_destroy(struct witness_ctrl *w)
{
    if (!w) {
        return;
    }
    free(w->ns);
    free(w->name);
    free(w->key);
    free(w->identity);
    free(w);
}
