/* dpuset: the DPUSet controller (dpf-spec §2.6). A DPUSet makes one DPU
 * object per selected DPU of every selected host Node:
 *
 *   nodes      Nodes matching spec.nodeSelector (none = every node);
 *   DPUs       per node the indexes spec.dpuSelector picks (dpuset-util);
 *              name <lowercase(node)>-<pci label>, the set's labels plus
 *              DPF's dpuset-name/-namespace, dpu-pciAddress, dpu-pf-name,
 *              dpu-host-ip, the template's annotations and spec, and a
 *              controller owner reference to the set;
 *   removal    a DPU whose node stopped matching (or lost the DPU) is
 *              deleted (the DPU controller then cleans up behind it);
 *   update     Recreate: DPUs keep their BFB/flavor until deleted;
 *              RollingUpdate: DPUs whose bfb or dpuFlavor differ from
 *              the template are deleted (and so recreated) while fewer
 *              than maxUnavailable DPUs are unavailable (missing, not
 *              Ready, or being deleted); unavailable ones at once;
 *              spec.cluster.nodeLabels are merged into every DPU in place
 *              under both strategies (no reprovisioning);
 *   status     dpuStatistics: DPUs per phase, every phase counted (DPF
 *              leaves out "Node Effect" and "Rebooting");
 *   deletion   the set's finalizer deletes its DPUs, then goes.
 *
 * Unlike DPF, DPUs are matched to the set by name rather than by node, so
 * a node with two selected DPUs gets both. Events SuccessfulCreate,
 * FailedCreate, SuccessfulDelete (DPF's reasons). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controllers/controllers.h"
#include "controllers/dpuset-util.h"
#include "lib/base/log.h"
#include "lib/codecs/selector.h"
#include "lib/kube/controller.h"
#include "lib/kube/kube-cache.h"
#include "lib/kube/kube-events.h"
#include "lib/kube/kube-object.h"
#include "lib/kube/kube-write.h"

LOG_MODULE(dpuset);

#define DPUSET_FINALIZER PROV_GROUP "/dpuset-protection"

static const struct kube_gvr dpuset_gvr = {PROV_GROUP, "v1alpha1", "dpusets",
                                           true};
static const struct kube_gvr dpu_gvr = {PROV_GROUP, "v1alpha1", "dpus", true};

struct dpuset_ctrl {
    struct controller_ops ops;
    struct kube_recorder *rec;
};

static json_t *
map_all_sets(struct controller *c, const json_t *obj)
{
    (void) obj;
    return kube_cache_keys(controller_cache(c, 0));
}

/* A DPUSet's reconcile walks all its DPUs and the hosts: DPU and Node
 * events (thousands during a fleet's provisioning) are coalesced into at
 * most one reconcile per DPUSet and second. */
#define DPUSET_COALESCE_MS 1000

static const struct controller_watch dpuset_watches[] = {
    {.gvr = {PROV_GROUP, "v1alpha1", "dpus", true},
     .map = controller_map_owner,
     .coalesce_ms = DPUSET_COALESCE_MS},
    {.gvr = {"", "v1", "nodes", false},
     .map = map_all_sets,
     .coalesce_ms = DPUSET_COALESCE_MS},
};

static const char *
str_at(const json_t *obj, const char *a, const char *b)
{
    const json_t *x = json_object_get(obj, a);
    return json_string_value(b ? json_object_get(x, b) : x);
}

static int
finalizer_add_fn(void *arg, json_t *obj)
{
    (void) arg;
    return !kube_is_deleting(obj) && kube_finalizer_add(obj, DPUSET_FINALIZER)
               ? 1
               : 0;
}

static int
finalizer_remove_fn(void *arg, json_t *obj)
{
    (void) arg;
    return kube_finalizer_remove(obj, DPUSET_FINALIZER) ? 1 : 0;
}

/* The DPU object for one selected DPU (new). */
static json_t *
dpu_build(const json_t *set, const char *name, const char *node, json_t *labels)
{
    const json_t *md = json_object_get(set, "metadata");
    const json_t *tmpl =
        json_object_get(json_object_get(set, "spec"), "dpuTemplate");
    const json_t *ts = json_object_get(tmpl, "spec");
    json_t *spec = json_pack("{s:s}", "nodeName", node);
    const char *bfb = str_at(ts, "bfb", "name");
    json_object_set_new(spec, "bfb", json_string(bfb ? bfb : ""));
    const char *copy[] = {"nodeEffect", "dpuFlavor", "automaticNodeReboot"};
    for (size_t i = 0; i < 3; i++) {
        json_t *v = json_object_get(ts, copy[i]);
        if (v) {
            json_object_set(spec, copy[i], v);
        }
    }
    json_t *nl = json_object_get(json_object_get(ts, "cluster"), "nodeLabels");
    if (json_is_object(nl)) {
        json_object_set_new(spec, "cluster",
                            json_pack("{s:O}", "nodeLabels", nl));
    }
    json_t *meta =
        json_pack("{s:s, s:O, s:o}", "name", name, "namespace",
                  json_object_get(md, "namespace"), "labels", labels);
    json_t *ann = json_object_get(tmpl, "annotations");
    if (json_is_object(ann) && json_object_size(ann)) {
        json_object_set(meta, "annotations", ann);
    }
    json_object_set_new(meta, "ownerReferences",
                        json_pack("[o]", kube_owner_ref(set, true)));
    return json_pack("{s:s, s:s, s:o, s:o}", "apiVersion",
                     PROV_GROUP "/v1alpha1", "kind", "DPU", "metadata", meta,
                     "spec", spec);
}

/* Merge the template's nodeLabels into a DPU (mutate function). */
static int
merge_node_labels_fn(void *arg, json_t *obj)
{
    const json_t *want = arg;
    json_t *spec = json_object_get(obj, "spec");
    json_t *cl = json_object_get(spec, "cluster");
    if (!json_is_object(cl)) {
        cl = json_object();
        json_object_set_new(spec, "cluster", cl);
    }
    json_t *nl = json_object_get(cl, "nodeLabels");
    if (!json_is_object(nl)) {
        nl = json_object();
        json_object_set_new(cl, "nodeLabels", nl);
    }
    bool changed = false;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *) want, k, v)
    {
        if (!json_equal(json_object_get(nl, k), v)) {
            json_object_set(nl, k, v);
            changed = true;
        }
    }
    return changed ? 1 : 0;
}

static bool
labels_merged(const json_t *dpu, const json_t *want)
{
    const json_t *nl = json_object_get(
        json_object_get(json_object_get(dpu, "spec"), "cluster"), "nodeLabels");
    const char *k;
    json_t *v;
    json_object_foreach((json_t *) want, k, v)
    {
        if (!json_equal(json_object_get(nl, k), v)) {
            return false;
        }
    }
    return true;
}

static int
stats_fn(void *arg, json_t *obj)
{
    json_t *want = arg;
    json_t *st = json_object_get(obj, "status");
    if (!json_is_object(st)) {
        st = json_object();
        json_object_set_new(obj, "status", st);
    }
    if (json_equal(json_object_get(st, "dpuStatistics"), want)) {
        return 0;
    }
    json_object_set(st, "dpuStatistics", want);
    return 1;
}

static int
dpu_delete(struct controller *c, struct dpuset_ctrl *d, const json_t *set,
           const json_t *dpu, const char *why)
{
    const char *ns = str_at(dpu, "metadata", "namespace");
    const char *name = str_at(dpu, "metadata", "name");
    char *path = kube_path(&dpu_gvr, ns, name, NULL);
    struct dpf_error err = {0};
    int rc = kube_rest_json_wait(controller_rest(c), "DELETE", path, NULL, NULL,
                                 NULL, NULL, &err);
    free(path);
    if (rc < 0 && rc != -ENOENT) {
        log_warn_rl("cannot delete a DPU", "dpu=%s/%s error=\"%s\"", ns, name,
                    err.message);
        return rc;
    }
    log_info("DPU deleted", "dpu=%s/%s why=\"%s\"", ns, name, why);
    kube_recorder_event(d->rec, set, "Normal", "SuccessfulDelete",
                        "Deleted DPU %s: %s", name, why);
    return 0;
}

static bool
dpu_unavailable(const json_t *dpu)
{
    return kube_is_deleting(dpu) || !kube_condition_is_true(dpu, "Ready");
}

static bool
needs_update(const json_t *dpu, const json_t *tspec)
{
    const json_t *s = json_object_get(dpu, "spec");
    const char *bfb = str_at(tspec, "bfb", "name");
    const char *fl = str_at(tspec, "dpuFlavor", NULL);
    const char *have_bfb = str_at(s, "bfb", NULL);
    const char *have_fl = str_at(s, "dpuFlavor", NULL);
    return strcmp(bfb ? bfb : "", have_bfb ? have_bfb : "") != 0 ||
           strcmp(fl ? fl : "", have_fl ? have_fl : "") != 0;
}

static struct controller_result
reconcile_dpuset(struct controller *c, const char *key)
{
    struct dpuset_ctrl *d = controller_arg(c);
    json_t *set = kube_cache_get(controller_cache(c, 0), key);
    if (!set) {
        return controller_done(); /* its finalizer already ran */
    }
    struct controller_result res = controller_done();
    struct dpf_error err = {0};
    const char *ns = str_at(set, "metadata", "namespace");
    const char *name = str_at(set, "metadata", "name");
    const char *uid = str_at(set, "metadata", "uid");
    json_t *owned = NULL, *nodes = NULL, *want = NULL, *have = NULL;
    struct selector *sel = NULL;
    if (!ns || !name || !uid) {
        goto out;
    }
    owned = kube_cache_by_index(controller_cache(c, 1), KUBE_INDEX_OWNER, uid);
    if (!owned) {
        owned = json_array();
    }

    if (kube_is_deleting(set)) {
        if (!kube_finalizer_has(set, DPUSET_FINALIZER)) {
            goto out;
        }
        size_t i;
        json_t *dpu;
        json_array_foreach(owned, i, dpu)
        {
            if (!kube_is_deleting(dpu) &&
                dpu_delete(c, d, set, dpu, "the DPUSet is being deleted") < 0) {
                res = controller_error();
            }
        }
        if (res.outcome == CONTROLLER_ERROR) {
            goto out;
        }
        if (kube_update_retry(controller_rest(c), &dpuset_gvr, ns, name, NULL,
                              finalizer_remove_fn, NULL, NULL, &err) < 0 &&
            err.code != 404) {
            res = controller_error();
        }
        goto out;
    }
    if (!kube_finalizer_has(set, DPUSET_FINALIZER)) {
        if (kube_update_retry(controller_rest(c), &dpuset_gvr, ns, name, NULL,
                              finalizer_add_fn, NULL, NULL, &err) < 0) {
            res = controller_error();
        }
        goto out;
    }

    const json_t *spec = json_object_get(set, "spec");
    const json_t *tspec =
        json_object_get(json_object_get(spec, "dpuTemplate"), "spec");
    sel = selector_from_label_selector(json_object_get(spec, "nodeSelector"),
                                       &err);
    if (!sel) {
        log_warn_rl("bad nodeSelector", "dpuset=%s error=\"%s\"", key,
                    err.message);
        goto out; /* validation should have refused it */
    }
    /* What should exist: name -> [node, labels]. */
    want = json_object();
    nodes = kube_cache_list(controller_cache(c, 2));
    size_t i;
    json_t *node;
    json_array_foreach(nodes, i, node)
    {
        const json_t *nmd = json_object_get(node, "metadata");
        const char *nname = str_at(nmd, "name", NULL);
        if (!nname || kube_is_deleting(node) ||
            !selector_match_labels(sel, json_object_get(nmd, "labels"))) {
            continue;
        }
        int idx[DPU_MAX_INDEX];
        size_t n = dpuset_select_indexes(json_object_get(nmd, "labels"),
                                         json_object_get(spec, "dpuSelector"),
                                         idx, DPU_MAX_INDEX);
        for (size_t k = 0; k < n; k++) {
            const char *why = NULL;
            json_t *labels = dpuset_dpu_labels(set, node, idx[k], &why);
            if (!labels) {
                kube_recorder_event(d->rec, set, "Warning", "FailedCreate",
                                    "node %s, DPU %d: %s", nname, idx[k], why);
                continue;
            }
            char *dname = dpuset_dpu_name(
                nname,
                json_string_value(json_object_get(labels, LABEL_DPU_PCI)));
            json_object_set_new(want, dname,
                                json_pack("[s, o]", nname, labels));
            free(dname);
        }
    }
    have = json_object();
    json_t *dpu;
    json_array_foreach(owned, i, dpu)
    {
        json_t *ctl = kube_owner_controller(dpu);
        const char *cu = ctl ? str_at(ctl, "uid", NULL) : NULL;
        if (cu && !strcmp(cu, uid)) {
            json_object_set(have, str_at(dpu, "metadata", "name"), dpu);
        }
    }

    bool acted = false;
    /* Remove DPUs no longer wanted. */
    const char *dname;
    json_object_foreach(have, dname, dpu)
    {
        if (!json_object_get(want, dname) && !kube_is_deleting(dpu)) {
            if (dpu_delete(c, d, set, dpu,
                           "its node or DPU is no longer selected") < 0) {
                res = controller_error();
            }
            acted = true;
        }
    }
    /* Create missing ones. */
    json_t *w;
    json_object_foreach(want, dname, w)
    {
        if (json_object_get(have, dname)) {
            continue;
        }
        const char *nname = json_string_value(json_array_get(w, 0));
        json_t *obj =
            dpu_build(set, dname, nname, json_incref(json_array_get(w, 1)));
        char *path = kube_path(&dpu_gvr, ns, NULL, NULL);
        int rc = kube_rest_json_wait(controller_rest(c), "POST", path, NULL,
                                     obj, NULL, NULL, &err);
        free(path);
        json_decref(obj);
        acted = true;
        if (rc == -EEXIST) {
            res = controller_requeue(); /* the cache is behind */
        } else if (rc < 0) {
            kube_recorder_event(d->rec, set, "Warning", "FailedCreate",
                                "Failed to create DPU %s: %s", dname,
                                err.message);
            res = controller_error();
        } else {
            log_info("DPU created", "dpuset=%s dpu=%s node=%s", key, dname,
                     nname);
            kube_recorder_event(d->rec, set, "Normal", "SuccessfulCreate",
                                "Created DPU %s", dname);
        }
    }
    /* nodeLabels in place. */
    const json_t *tnl =
        json_object_get(json_object_get(tspec, "cluster"), "nodeLabels");
    if (json_is_object(tnl) && json_object_size(tnl)) {
        json_object_foreach(have, dname, dpu)
        {
            if (kube_is_deleting(dpu) || labels_merged(dpu, tnl)) {
                continue;
            }
            if (kube_update_retry(controller_rest(c), &dpu_gvr, ns, dname, NULL,
                                  merge_node_labels_fn, (void *) tnl, NULL,
                                  &err) < 0 &&
                err.code != 404) {
                res = controller_error();
            }
        }
    }
    /* RollingUpdate. */
    const char *stype = str_at(spec, "strategy", "type");
    if (stype && !strcmp(stype, "RollingUpdate")) {
        int total = (int) json_object_size(want);
        int maxu = dpuset_max_unavailable(
            json_object_get(json_object_get(json_object_get(spec, "strategy"),
                                            "rollingUpdate"),
                            "maxUnavailable"),
            total);
        int unavailable = 0;
        json_object_foreach(want, dname, w)
        {
            json_t *h = json_object_get(have, dname);
            if (!h || dpu_unavailable(h)) {
                unavailable++;
            }
        }
        json_object_foreach(have, dname, dpu)
        {
            if (kube_is_deleting(dpu) || !json_object_get(want, dname) ||
                !needs_update(dpu, tspec)) {
                continue;
            }
            if (dpu_unavailable(dpu)) {
                dpu_delete(c, d, set, dpu, "rolling update (not Ready)");
                acted = true;
            } else if (unavailable < maxu) {
                unavailable++;
                dpu_delete(c, d, set, dpu, "rolling update");
                acted = true;
            }
        }
    }
    /* Status. */
    json_t *stats = json_object();
    json_object_foreach(have, dname, dpu)
    {
        const char *phase = str_at(dpu, "status", "phase");
        if (!phase || !*phase) {
            phase = "Initializing";
        }
        json_int_t n = json_integer_value(json_object_get(stats, phase));
        json_object_set_new(stats, phase, json_integer(n + 1));
    }
    json_t *copy = json_deep_copy(set);
    if (stats_fn(stats, copy) &&
        kube_update_retry(controller_rest(c), &dpuset_gvr, ns, name, "status",
                          stats_fn, stats, NULL, &err) < 0 &&
        err.code != 404) {
        log_warn_rl("cannot update the DPUSet status", "dpuset=%s error=\"%s\"",
                    key, err.message);
    }
    json_decref(copy);
    json_decref(stats);
    (void) acted;
out:
    selector_free(sel);
    json_decref(owned);
    json_decref(nodes);
    json_decref(want);
    json_decref(have);
    json_decref(set);
    return res;
}

struct dpuset_ctrl *
dpuset_ctrl_add(struct controller_manager *m, const char *component,
                struct dpf_error *err)
{
    (void) err;
    struct dpuset_ctrl *d = xcalloc(1, sizeof *d);
    d->rec = kube_recorder_create(controller_manager_rest(m), component, NULL);
    d->ops.name = "dpuset";
    d->ops.primary_kind = "DPUSet";
    d->ops.primary.gvr = dpuset_gvr;
    d->ops.secondary = dpuset_watches;
    d->ops.n_secondary = 2;
    d->ops.reconcile = reconcile_dpuset;
    d->ops.workers = 2;
    controller_manager_add(m, &d->ops, d);
    return d;
}

void
dpuset_ctrl_destroy(struct dpuset_ctrl *d)
{
    if (!d) {
        return;
    }
    kube_recorder_destroy(d->rec);
    free(d);
}
