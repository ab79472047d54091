/* dpuset-util: see dpuset-util.h. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controllers/dpuset-util.h"
#include "lib/base/util.h"
#include "lib/kube/kube-object.h"

#define ANN_CORDONED_BY PROV_GROUP "/cordoned-by"

char *
dpuset_dpu_name(const char *node, const char *pci)
{
    char *s = xasprintf("%s-%s", node, pci);
    for (char *p = s; *p; p++) {
        *p = (char) tolower((unsigned char) *p);
    }
    return s;
}

char *
dpuset_nfd_key(int index, const char *suffix)
{
    return xasprintf(NFD_PREFIX "dpu-%d-%s", index, suffix);
}

/* N of "feature.node.kubernetes.io/dpu-<N>-..." or -1. */
static int
nfd_index(const char *key)
{
    size_t n = strlen(NFD_PREFIX "dpu-");
    if (strncmp(key, NFD_PREFIX "dpu-", n) != 0 ||
        !isdigit((unsigned char) key[n])) {
        return -1;
    }
    char *end = NULL;
    long v = strtol(key + n, &end, 10);
    if (*end != '-' || v < 0 || v >= DPU_MAX_INDEX) {
        return -1;
    }
    return (int) v;
}

size_t
dpuset_select_indexes(const json_t *node_labels, const json_t *dpu_selector,
                      int *out, size_t max)
{
    bool pick[DPU_MAX_INDEX] = {false};
    if (!json_is_object(dpu_selector) || json_object_size(dpu_selector) == 0) {
        char *k = dpuset_nfd_key(0, "pci-address");
        pick[0] = json_object_get(node_labels, k) != NULL;
        free(k);
    } else {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *) dpu_selector, key, v)
        {
            int i = nfd_index(key);
            const char *have =
                json_string_value(json_object_get(node_labels, key));
            if (i >= 0 && have && json_is_string(v) &&
                !strcmp(have, json_string_value(v))) {
                pick[i] = true;
            }
        }
    }
    size_t n = 0;
    for (int i = 0; i < DPU_MAX_INDEX && n < max; i++) {
        if (pick[i]) {
            out[n++] = i;
        }
    }
    return n;
}

int
dpuset_max_unavailable(const json_t *v, int total)
{
    if (total <= 0) {
        return 0;
    }
    long m = 1;
    if (json_is_integer(v)) {
        m = (long) json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end = NULL;
        long pct = strtol(s, &end, 10);
        if (end != s && end[0] == '%' && end[1] == '\0' && pct > 0) {
            m = (pct * total + 99) / 100;
        } else if (end != s && *end == '\0') {
            m = pct; /* an integer as a string */
        }
    }
    if (m < 1) {
        m = 1;
    }
    if (m > total) {
        m = total;
    }
    return (int) m;
}

void
dpuset_node_slim(json_t *node)
{
    kube_json_keep_only(node, "status", "addresses");
}

const char *
dpuset_node_internal_ip(const json_t *node)
{
    size_t i;
    json_t *a;
    json_array_foreach(
        json_object_get(json_object_get(node, "status"), "addresses"), i, a)
    {
        const char *type = json_string_value(json_object_get(a, "type"));
        if (type && !strcmp(type, "InternalIP")) {
            return json_string_value(json_object_get(a, "address"));
        }
    }
    return NULL;
}

json_t *
dpuset_dpu_labels(const json_t *set, const json_t *node, int i,
                  const char **why)
{
    const json_t *smd = json_object_get(set, "metadata");
    const json_t *nlabels =
        json_object_get(json_object_get(node, "metadata"), "labels");
    char *pk = dpuset_nfd_key(i, "pci-address");
    char *fk = dpuset_nfd_key(i, "pf0-name");
    const char *pci = json_string_value(json_object_get(nlabels, pk));
    const char *pf = json_string_value(json_object_get(nlabels, fk));
    free(pk);
    free(fk);
    if (!pci || !*pci) {
        *why = "the node has no PCI address label for this DPU";
        return NULL;
    }
    json_t *l = json_object();
    json_t *own = json_object_get(smd, "labels");
    if (json_is_object(own)) {
        json_object_update(l, own);
    }
    json_object_set(l, LABEL_DPUSET_NAME, json_object_get(smd, "name"));
    json_object_set(l, LABEL_DPUSET_NAMESPACE,
                    json_object_get(smd, "namespace"));
    json_object_set_new(l, LABEL_DPU_PCI, json_string(pci));
    if (pf && *pf) {
        json_object_set_new(l, LABEL_DPU_PF, json_string(pf));
    }
    const char *ip = dpuset_node_internal_ip(node);
    if (ip && *ip) {
        json_object_set_new(l, LABEL_DPU_HOST_IP, json_string(ip));
    }
    return l;
}

char *
dpuset_pci_bus_dev(const char *label)
{
    unsigned dom, bus, dev;
    char tail;
    if (!label ||
        sscanf(label, "%4x-%2x-%2x%c", &dom, &bus, &dev, &tail) != 3) {
        return NULL;
    }
    return xasprintf("%02x:%02x", bus, dev);
}

/* --- node effects --- */

static json_t *
obj_path(json_t *obj, const char *a, const char *b)
{
    json_t *x = json_object_get(obj, a);
    if (!json_is_object(x)) {
        x = json_object();
        json_object_set_new(obj, a, x);
    }
    if (!b) {
        return x;
    }
    json_t *y = json_object_get(x, b);
    if (!json_is_object(y)) {
        y = json_object();
        json_object_set_new(x, b, y);
    }
    return y;
}

static ssize_t
taint_find(const json_t *node, const char *key)
{
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(json_object_get(node, "spec"), "taints"),
                       i, t)
    {
        const char *k = json_string_value(json_object_get(t, "key"));
        if (k && !strcmp(k, key)) {
            return (ssize_t) i;
        }
    }
    return -1;
}

/* The cordoned-by list as a JSON array (new). */
static json_t *
cordoned_by(const json_t *node)
{
    const char *v = json_string_value(json_object_get(
        json_object_get(json_object_get(node, "metadata"), "annotations"),
        ANN_CORDONED_BY));
    json_t *a = v ? json_loads(v, 0, NULL) : NULL;
    if (!json_is_array(a)) {
        json_decref(a);
        a = json_array();
    }
    return a;
}

static ssize_t
str_index(const json_t *a, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        if (json_is_string(v) && !strcmp(json_string_value(v), s)) {
            return (ssize_t) i;
        }
    }
    return -1;
}

bool
dpuset_node_effect_applied(const json_t *node, const json_t *effect,
                           const char *requestor)
{
    const json_t *taint = json_object_get(effect, "taint");
    const json_t *labels = json_object_get(effect, "customLabel");
    const json_t *drain = json_object_get(effect, "drain");
    if (json_is_object(taint)) {
        const char *key = json_string_value(json_object_get(taint, "key"));
        return !key || taint_find(node, key) >= 0;
    }
    if (json_is_object(labels)) {
        const json_t *nl =
            json_object_get(json_object_get(node, "metadata"), "labels");
        const char *k;
        json_t *v;
        json_object_foreach((json_t *) labels, k, v)
        {
            if (!json_equal(json_object_get(nl, k), v)) {
                return false;
            }
        }
        return true;
    }
    if (json_is_object(drain)) {
        json_t *by = cordoned_by(node);
        bool mine = str_index(by, requestor) >= 0;
        json_decref(by);
        return mine && json_is_true(json_object_get(
                           json_object_get(node, "spec"), "unschedulable"));
    }
    return true;
}

bool
dpuset_node_effect_edit(json_t *node, const json_t *effect, bool apply,
                        const char *requestor)
{
    const json_t *taint = json_object_get(effect, "taint");
    const json_t *labels = json_object_get(effect, "customLabel");
    const json_t *drain = json_object_get(effect, "drain");
    bool changed = false;
    if (json_is_object(taint)) {
        const char *key = json_string_value(json_object_get(taint, "key"));
        if (!key) {
            return false;
        }
        ssize_t at = taint_find(node, key);
        json_t *spec = obj_path(node, "spec", NULL);
        if (apply && at < 0) {
            json_t *taints = json_object_get(spec, "taints");
            if (!json_is_array(taints)) {
                taints = json_array();
                json_object_set_new(spec, "taints", taints);
            }
            json_t *t = json_object();
            const char *f[] = {"key", "value", "effect"};
            for (size_t i = 0; i < 3; i++) {
                json_t *v = json_object_get(taint, f[i]);
                if (json_is_string(v)) {
                    json_object_set(t, f[i], v);
                }
            }
            if (!json_object_get(t, "effect")) {
                json_object_set_new(t, "effect", json_string("NoSchedule"));
            }
            json_array_append_new(taints, t);
            changed = true;
        } else if (!apply && at >= 0) {
            json_array_remove(json_object_get(spec, "taints"), (size_t) at);
            changed = true;
        }
        return changed;
    }
    if (json_is_object(labels)) {
        json_t *nl = obj_path(node, "metadata", "labels");
        const char *k;
        json_t *v;
        json_object_foreach((json_t *) labels, k, v)
        {
            json_t *have = json_object_get(nl, k);
            if (apply && !json_equal(have, v) && json_is_string(v)) {
                json_object_set(nl, k, v);
                changed = true;
            } else if (!apply && have && json_equal(have, v)) {
                json_object_del(nl, k);
                changed = true;
            }
        }
        return changed;
    }
    if (json_is_object(drain)) {
        json_t *by = cordoned_by(node);
        json_t *spec = obj_path(node, "spec", NULL);
        bool cordoned = json_is_true(json_object_get(spec, "unschedulable"));
        ssize_t at = str_index(by, requestor);
        if (apply) {
            if (at < 0) {
                if (json_array_size(by) == 0 && cordoned) {
                    /* cordoned by someone else: remember that, so we do
                     * not uncordon it when we lift */
                    json_array_append_new(by, json_string("(admin)"));
                }
                json_array_append_new(by, json_string(requestor));
                changed = true;
            }
            if (!cordoned) {
                json_object_set_new(spec, "unschedulable", json_true());
                changed = true;
            }
        } else if (at >= 0) {
            json_array_remove(by, (size_t) at);
            changed = true;
            if (json_array_size(by) == 0) {
                json_object_del(spec, "unschedulable");
            }
        }
        if (changed) {
            json_t *ann = obj_path(node, "metadata", "annotations");
            if (json_array_size(by) == 0 ||
                (json_array_size(by) == 1 && str_index(by, "(admin)") == 0)) {
                json_object_del(ann, ANN_CORDONED_BY);
            } else {
                char *s = json_dumps(by, JSON_COMPACT);
                json_object_set_new(ann, ANN_CORDONED_BY, json_string(s));
                free(s);
            }
        }
        json_decref(by);
        return changed;
    }
    return false;
}

bool
dpuset_pod_evictable(const json_t *pod)
{
    const json_t *md = json_object_get(pod, "metadata");
    if (json_object_get(json_object_get(md, "annotations"),
                        "kubernetes.io/config.mirror")) {
        return false;
    }
    const char *phase = json_string_value(
        json_object_get(json_object_get(pod, "status"), "phase"));
    if (phase && (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed"))) {
        return false;
    }
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(md, "ownerReferences"), i, o)
    {
        const char *kind = json_string_value(json_object_get(o, "kind"));
        if (kind && (!strcmp(kind, "DaemonSet") || !strcmp(kind, "DPU"))) {
            return false;
        }
    }
    return true;
}
