/* dts-labels: see dts-labels.h. */
#include "dts/dts-labels.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dts/dts-metrics.h"

struct dts_kv {
    char *name;
    char *value;
};

/* Labels of one [device_labels] key. */
struct dts_devlabels {
    char *key; /* PCI BDF or device name */
    size_t n;
    struct dts_kv *kv;
};

/* Cached device -> devlabels resolution (NULL = none). */
struct dts_devcache {
    char *device;
    const struct dts_devlabels *labels;
};

struct dts_labels {
    char *sysfs_root;
    size_t n_global;
    struct dts_kv *global;
    size_t n_dev;
    struct dts_devlabels *dev;
    size_t n_cache;
    struct dts_devcache *cache;
};

void
dts_labels_free(struct dts_labels *l)
{
    if (!l) {
        return;
    }
    for (size_t i = 0; i < l->n_global; i++) {
        free(l->global[i].name);
        free(l->global[i].value);
    }
    free(l->global);
    for (size_t i = 0; i < l->n_dev; i++) {
        for (size_t j = 0; j < l->dev[i].n; j++) {
            free(l->dev[i].kv[j].name);
            free(l->dev[i].kv[j].value);
        }
        free(l->dev[i].kv);
        free(l->dev[i].key);
    }
    free(l->dev);
    for (size_t i = 0; i < l->n_cache; i++) {
        free(l->cache[i].device);
    }
    free(l->cache);
    free(l->sysfs_root);
    free(l);
}

static void
dts_kv_push(struct dts_kv **arr, size_t *n, const char *name, const char *value)
{
    *arr = xrealloc(*arr, (*n + 1) * sizeof **arr);
    (*arr)[*n].name = xstrdup(name);
    dts_label_name_sanitize((*arr)[*n].name);
    (*arr)[*n].value = xstrdup(value);
    (*n)++;
}

struct dts_labels *
dts_labels_from_ini(const struct ini *ini, const char *sysfs_root,
                    struct dpf_error *err)
{
    struct dts_labels *l = xcalloc(1, sizeof *l);
    l->sysfs_root = xstrdup(sysfs_root ? sysfs_root : "/sys");
    for (const struct ini_entry *e = ini_next(ini, "global_labels", NULL, NULL);
         e; e = ini_next(ini, "global_labels", NULL, e)) {
        dts_kv_push(&l->global, &l->n_global, e->key, e->value);
    }
    for (const struct ini_entry *e = ini_next(ini, "device_labels", NULL, NULL);
         e; e = ini_next(ini, "device_labels", NULL, e)) {
        l->dev = xrealloc(l->dev, (l->n_dev + 1) * sizeof *l->dev);
        struct dts_devlabels *d = &l->dev[l->n_dev++];
        memset(d, 0, sizeof *d);
        d->key = xstrdup(e->key);
        /* Split k|v|k|v. */
        char *copy = xstrdup(e->value);
        size_t nparts = 0;
        char *parts[256];
        char *save = NULL;
        for (char *tok = strtok_r(copy, "|", &save); tok && nparts < 256;
             tok = strtok_r(NULL, "|", &save)) {
            parts[nparts++] = tok;
        }
        if (nparts % 2 != 0) {
            dpf_error_set(err, 400, "Invalid",
                          "%s:%u: device label list for %s must be "
                          "name|value pairs",
                          ini->name, e->line, e->key);
            dpf_error_add_cause(err, DPF_CAUSE_INVALID, "device_labels",
                                "odd number of | separated items");
            free(copy);
            dts_labels_free(l);
            return NULL;
        }
        for (size_t i = 0; i < nparts; i += 2) {
            dts_kv_push(&d->kv, &d->n, parts[i], parts[i + 1]);
        }
        free(copy);
    }
    return l;
}

struct dts_labels *
dts_labels_load(const char *path, const char *sysfs_root, struct dpf_error *err)
{
    struct ini *ini = ini_load(path, err);
    if (!ini) {
        return NULL;
    }
    struct dts_labels *l = dts_labels_from_ini(ini, sysfs_root, err);
    ini_free(ini);
    return l;
}

unsigned
dts_labels_n_global(const struct dts_labels *l)
{
    return (unsigned) l->n_global;
}

static const struct dts_devlabels *
dts_labels_lookup_key(const struct dts_labels *l, const char *key)
{
    for (size_t i = 0; i < l->n_dev; i++) {
        if (strcmp(l->dev[i].key, key) == 0) {
            return &l->dev[i];
        }
    }
    return NULL;
}

/* Resolve (and cache) the device labels of a device name. */
static const struct dts_devlabels *
dts_labels_for_device(struct dts_labels *l, const char *device)
{
    if (!device || l->n_dev == 0) {
        return NULL;
    }
    for (size_t i = 0; i < l->n_cache; i++) {
        if (strcmp(l->cache[i].device, device) == 0) {
            return l->cache[i].labels;
        }
    }
    const struct dts_devlabels *d = dts_labels_lookup_key(l, device);
    if (!d && !strchr(device, '/')) {
        /* netdev -> PCI BDF through the sysfs "device" link. */
        const char *classes[] = {"net", "infiniband"};
        for (size_t c = 0; c < 2 && !d; c++) {
            char *link = xasprintf("%s/class/%s/%s/device", l->sysfs_root,
                                   classes[c], device);
            char target[PATH_MAX];
            ssize_t n = readlink(link, target, sizeof target - 1);
            free(link);
            if (n > 0) {
                target[n] = '\0';
                const char *base = strrchr(target, '/');
                d = dts_labels_lookup_key(l, base ? base + 1 : target);
            }
        }
    }
    if (l->n_cache < 4096) {
        l->cache = xrealloc(l->cache, (l->n_cache + 1) * sizeof *l->cache);
        l->cache[l->n_cache].device = xstrdup(device);
        l->cache[l->n_cache].labels = d;
        l->n_cache++;
    }
    return d;
}

static bool
dts_label_taken(const char *const *taken, const char *name)
{
    for (size_t i = 0; taken && taken[i]; i += 2) {
        if (strcmp(taken[i], name) == 0) {
            return true;
        }
    }
    return false;
}

static bool
dts_kv_has(const struct dts_devlabels *d, const char *name)
{
    for (size_t i = 0; d && i < d->n; i++) {
        if (strcmp(d->kv[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

/* Emit kv labels not taken by the provider nor by `shadow` (the device
 * labels, which win over global ones). */
static void
dts_labels_emit(const struct dts_kv *kv, size_t n, const char *const *taken,
                const struct dts_devlabels *shadow, struct dbuf *out,
                bool *first)
{
    for (size_t i = 0; i < n; i++) {
        if (dts_label_taken(taken, kv[i].name) ||
            dts_kv_has(shadow, kv[i].name)) {
            continue;
        }
        dbuf_printf(out, "%s%s=\"", *first ? "" : ",", kv[i].name);
        dts_escape_label_value(out, kv[i].value);
        dbuf_puts(out, "\"");
        *first = false;
    }
}

void
dts_labels_render(struct dts_labels *l, const char *device,
                  const char *const *taken, struct dbuf *out, bool *first)
{
    const struct dts_devlabels *d = dts_labels_for_device(l, device);
    if (d) {
        dts_labels_emit(d->kv, d->n, taken, NULL, out, first);
    }
    dts_labels_emit(l->global, l->n_global, taken, d, out, first);
}
