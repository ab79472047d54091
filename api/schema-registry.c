/* schema-registry: the table of groups and kinds behind api/schema.h's
 * lookups.
 *
 * The groups come from api/kinds.c (the built-in ones), from
 * schema_register_group() before first use, and from the
 * CustomResourceDefinitions served with schema_crd_register() at any
 * time; nothing here names a group. The registry is a snapshot: every
 * kind's apiVersion and qualified name, two open-addressing hash tables
 * (by group/version/plural and by apiVersion/kind), compiled patterns and
 * parsed defaults. The first one is built under pthread_once; serving or
 * withdrawing a CRD builds the next one and publishes it atomically (see
 * struct snapshot for the locking). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/schema-engine.h"
#include "lib/base/util.h"

/* Groups a program or test may add to the built-in ones. */
#define SCHEMA_MAX_REGISTERED 16

static const struct schema_group *g_registered[SCHEMA_MAX_REGISTERED];
static size_t g_n_registered;
static bool g_built; /* set once the registry is built */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* One immutable view of the registry. Readers (every request thread)
 * load the current one with one acquire load and use it without a lock;
 * a change (a CRD served, replaced or withdrawn) builds a whole new
 * snapshot under g_write_lock and publishes it with a release store.
 * Nothing a snapshot points to is freed while the process runs, since a
 * reader may still hold it, or a kind of it: replaced snapshots go on
 * g_retired and replaced CRD kinds stay on their crd_def, so their memory
 * stays reachable (an RCU whose grace period is the process's life). A
 * CRD change costs one snapshot of a few KB and its old kinds; CRDs
 * change rarely, and the number of served CRDs is bounded
 * (SCHEMA_MAX_CRDS). */
struct snapshot {
    const struct schema_group **groups; /* NULL-terminated */
    size_t n_groups;
    struct kind_rt *rt;
    const struct schema_kind **list; /* NULL-terminated */
    size_t n;
    unsigned short *ht_res;  /* index + 1, 0 = empty */
    unsigned short *ht_kind; /* index + 1, 0 = empty */
    uint32_t ht_size;        /* power of two, >= 4 x kinds */
    struct snapshot *retired_next;
};

static struct snapshot *_Atomic g_snap;
static struct snapshot *_Atomic g_retired; /* pushed under g_write_lock */
static pthread_mutex_t g_write_lock = PTHREAD_MUTEX_INITIALIZER;
/* Every CRD ever built (served or not any more), newest first, under
 * g_write_lock; `served` marks the ones in the current snapshot. */
static struct crd_def *g_crds;
static size_t g_n_served;

static const struct snapshot *
snap_get(void)
{
    schema_ensure_init();
    return atomic_load_explicit(&g_snap, memory_order_acquire);
}

static uint32_t
fnv_step(uint32_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char) *s;
        h *= 16777619u;
    }
    return h;
}

static uint32_t
hash3(const char *a, const char *b, const char *c)
{
    uint32_t h = 2166136261u;
    h = fnv_step(h, a);
    h = fnv_step(h, "/");
    h = fnv_step(h, b);
    if (c) {
        h = fnv_step(h, "/");
        h = fnv_step(h, c);
    }
    return h;
}

static void
ht_insert(struct snapshot *s, unsigned short *ht, uint32_t h, size_t idx)
{
    for (uint32_t i = 0; i < s->ht_size; i++) {
        uint32_t slot = (h + i) & (s->ht_size - 1);
        if (!ht[slot]) {
            ht[slot] = (unsigned short) (idx + 1);
            return;
        }
    }
}

static void init_node(const struct schema_node *n, int depth);

static void
init_fields(const struct schema_node *n, int depth)
{
    if (n->fields) {
        for (const struct schema_field *f = n->fields; f->name; f++) {
            init_node(f->node, depth + 1);
        }
    }
    if (n->items) {
        init_node(n->items, depth + 1);
    }
}

/* Compile a node's pattern and parse its default, once. */
static void
init_node(const struct schema_node *n, int depth)
{
    if (!n || depth > 64) {
        return;
    }
    if (n->pattern && !n->pattern->code) {
        int errcode;
        PCRE2_SIZE erroff;
        pcre2_code *re = pcre2_compile(
            (PCRE2_SPTR) n->pattern->src, PCRE2_ZERO_TERMINATED,
            PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &errcode, &erroff, NULL);
        if (re) {
            pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
            n->pattern->code = re;
        } else {
            fprintf(stderr, "schema: bad pattern %s at %zu\n", n->pattern->src,
                    (size_t) erroff);
        }
    }
    if (n->def && !n->def->value) {
        json_error_t jerr;
        n->def->value = json_loads(n->def->json, JSON_DECODE_ANY, &jerr);
        if (!n->def->value) {
            fprintf(stderr, "schema: bad default %s: %s\n", n->def->json,
                    jerr.text);
        }
    }
    init_fields(n, depth);
}

/* Call fn for every kind of every group of s, in registry order. */
static void
for_each_kind(struct snapshot *s,
              void (*fn)(struct snapshot *s, const struct schema_group *g,
                         const struct schema_group_version *gv,
                         const struct schema_kind *k))
{
    for (size_t i = 0; i < s->n_groups; i++) {
        const struct schema_group *g = s->groups[i];
        for (const struct schema_group_version *gv = g->versions;
             gv && gv->version; gv++) {
            for (const struct schema_kind *const *k = gv->kinds; k && *k; k++) {
                fn(s, g, gv, *k);
            }
        }
    }
}

static void
count_kind(struct snapshot *s, const struct schema_group *g,
           const struct schema_group_version *gv, const struct schema_kind *k)
{
    (void) g;
    (void) gv;
    (void) k;
    s->n++;
}

static void
add_kind(struct snapshot *s, const struct schema_group *g,
         const struct schema_group_version *gv, const struct schema_kind *k)
{
    /* A kind states its group and version for its callers (SCHEMA_GVR);
     * the registry is where it is listed, and the two must agree. */
    if (strcmp(k->group, g->name) || strcmp(k->version, gv->version)) {
        fprintf(stderr, "schema: kind %s is listed under %s/%s, skipped\n",
                k->kind, g->name, gv->version);
        return;
    }
    struct kind_rt *rt = &s->rt[s->n];
    rt->k = k;
    rt->g = g;
    if (k->group[0]) {
        snprintf(rt->api_version, sizeof rt->api_version, "%s/%s", k->group,
                 k->version);
        snprintf(rt->qualified, sizeof rt->qualified, "%s.%s", k->kind,
                 k->group);
    } else {
        snprintf(rt->api_version, sizeof rt->api_version, "%s", k->version);
        snprintf(rt->qualified, sizeof rt->qualified, "%s", k->kind);
    }
    ht_insert(s, s->ht_res, hash3(k->group, k->version, k->plural), s->n);
    ht_insert(s, s->ht_kind, hash3(rt->api_version, k->kind, NULL), s->n);
    s->list[s->n] = k;
    init_node(k->root, 0);
    s->n++;
}

/* The served CRDs' kinds of group `name` at version v (NULL-terminated,
 * new array) appended after `base` (a static group's kinds, or NULL). */
static const struct schema_kind **
crd_kinds_of(const char *name, const char *v,
             const struct schema_kind *const *base)
{
    size_t n = 0, cap = 8;
    const struct schema_kind **out = xcalloc(cap, sizeof *out);
    for (const struct schema_kind *const *k = base; k && *k; k++) {
        if (n + 1 >= cap) {
            cap *= 2;
            out = xrealloc(out, cap * sizeof *out);
        }
        out[n++] = *k;
    }
    for (struct crd_def *d = g_crds; d; d = d->next) {
        if (!d->served || strcmp(d->group, name)) {
            continue;
        }
        for (const struct schema_kind *const *k = d->kinds; *k; k++) {
            if (strcmp((*k)->version, v)) {
                continue;
            }
            if (n + 1 >= cap) {
                cap *= 2;
                out = xrealloc(out, cap * sizeof *out);
            }
            out[n++] = *k;
        }
    }
    out[n] = NULL;
    return out;
}

/* Group `name` as the snapshot serves it: the static group g (may be
 * NULL) with the versions and kinds of the served CRDs of that name
 * added, as a new group; g itself when no CRD adds to it. */
static const struct schema_group *
merged_group(const char *name, const struct schema_group *g)
{
    const char *vs[64];
    size_t nv = 0;
    const char *preferred = g ? g->preferred_version : NULL;
    bool extra = false;
    for (const struct schema_group_version *gv = g ? g->versions : NULL;
         gv && gv->version && nv < ARRAY_SIZE(vs); gv++) {
        vs[nv++] = gv->version;
    }
    for (struct crd_def *d = g_crds; d; d = d->next) {
        if (!d->served || strcmp(d->group, name)) {
            continue;
        }
        extra = true;
        if (!preferred) {
            preferred = d->preferred_version;
        }
        for (const struct schema_kind *const *k = d->kinds; *k; k++) {
            bool have = false;
            for (size_t i = 0; i < nv; i++) {
                have = have || !strcmp(vs[i], (*k)->version);
            }
            if (!have && nv < ARRAY_SIZE(vs)) {
                vs[nv++] = (*k)->version;
            }
        }
    }
    if (!extra) {
        return g;
    }
    struct schema_group *ng = xcalloc(1, sizeof *ng);
    struct schema_group_version *gvs = xcalloc(nv + 1, sizeof *gvs);
    for (size_t i = 0; i < nv; i++) {
        const struct schema_kind *const *base = NULL;
        for (const struct schema_group_version *gv = g ? g->versions : NULL;
             gv && gv->version; gv++) {
            if (!strcmp(gv->version, vs[i])) {
                base = gv->kinds;
            }
        }
        gvs[i].version = vs[i];
        gvs[i].kinds = crd_kinds_of(name, vs[i], base);
    }
    ng->name = name;
    ng->preferred_version = preferred;
    ng->versions = gvs;
    return ng;
}

/* Build a snapshot of the static groups and the served CRDs. The caller
 * holds g_write_lock, or is schema_init(). */
static struct snapshot *
snapshot_build(void)
{
    struct snapshot *s = xcalloc(1, sizeof *s);
    size_t nb = 0;
    while (schema_builtin_groups[nb]) {
        nb++;
    }
    size_t cap = nb + g_n_registered + g_n_served + 1;
    s->groups = xcalloc(cap, sizeof *s->groups);
    const struct schema_group *statics[nb + g_n_registered + 1];
    size_t ns = 0;
    for (size_t i = 0; i < nb; i++) {
        statics[ns++] = schema_builtin_groups[i];
    }
    for (size_t i = 0; i < g_n_registered; i++) {
        statics[ns++] = g_registered[i];
    }
    for (size_t i = 0; i < ns; i++) {
        s->groups[s->n_groups++] = merged_group(statics[i]->name, statics[i]);
    }
    /* Groups only CRDs serve, oldest CRD first (g_crds is newest first). */
    size_t nd = 0;
    for (struct crd_def *d = g_crds; d; d = d->next) {
        nd++;
    }
    struct crd_def **order = xcalloc(nd + 1, sizeof *order);
    size_t o = nd;
    for (struct crd_def *d = g_crds; d; d = d->next) {
        order[--o] = d;
    }
    for (size_t i = 0; i < nd; i++) {
        struct crd_def *d = order[i];
        bool have = !d->served;
        for (size_t j = 0; j < s->n_groups && !have; j++) {
            have = !strcmp(s->groups[j]->name, d->group);
        }
        if (!have && s->n_groups + 1 < cap) {
            s->groups[s->n_groups++] = merged_group(d->group, NULL);
        }
    }
    free(order);
    for_each_kind(s, count_kind);
    size_t total = s->n;
    s->n = 0;
    s->ht_size = 64;
    while (s->ht_size < 4 * total) {
        s->ht_size *= 2;
    }
    s->ht_res = xcalloc(s->ht_size, sizeof *s->ht_res);
    s->ht_kind = xcalloc(s->ht_size, sizeof *s->ht_kind);
    s->rt = xcalloc(total ? total : 1, sizeof *s->rt);
    s->list = xcalloc(total + 1, sizeof *s->list);
    for_each_kind(s, add_kind);
    return s;
}

static void
schema_init(void)
{
    struct snapshot *s = snapshot_build();
    g_built = true;
    atomic_store_explicit(&g_snap, s, memory_order_release);
}

void
schema_ensure_init(void)
{
    pthread_once(&g_once, schema_init);
}

/* Publish a new snapshot; the old one is retired, never freed. Caller
 * holds g_write_lock. */
static void
snapshot_publish(void)
{
    struct snapshot *s = snapshot_build();
    struct snapshot *old = atomic_load_explicit(&g_snap, memory_order_relaxed);
    old->retired_next = atomic_load_explicit(&g_retired, memory_order_relaxed);
    atomic_store_explicit(&g_retired, old, memory_order_release);
    atomic_store_explicit(&g_snap, s, memory_order_release);
}

int
schema_register_group(const struct schema_group *g)
{
    if (!g || !g->name || !g->versions) {
        return -EINVAL;
    }
    if (g_built) {
        return -EBUSY;
    }
    for (size_t i = 0; schema_builtin_groups[i]; i++) {
        if (!strcmp(schema_builtin_groups[i]->name, g->name)) {
            return -EEXIST;
        }
    }
    for (size_t i = 0; i < g_n_registered; i++) {
        if (!strcmp(g_registered[i]->name, g->name)) {
            return -EEXIST;
        }
    }
    if (g_n_registered >= SCHEMA_MAX_REGISTERED) {
        return -ENOSPC;
    }
    g_registered[g_n_registered++] = g;
    return 0;
}

/* Is group/plural served by a static (non-CRD) kind of s? */
static bool
served_statically(const struct snapshot *s, const char *group,
                  const char *plural)
{
    for (size_t i = 0; i < s->n; i++) {
        const struct schema_kind *k = s->rt[i].k;
        if (!k->crd && !strcmp(k->group, group) && !strcmp(k->plural, plural)) {
            return true;
        }
    }
    return false;
}

int
schema_crd_register(const json_t *crd, struct dpf_error *err)
{
    schema_ensure_init();
    struct crd_def *d = schema_crd_build(crd, err);
    if (!d) {
        return -EINVAL;
    }
    pthread_mutex_lock(&g_write_lock);
    const struct snapshot *cur =
        atomic_load_explicit(&g_snap, memory_order_relaxed);
    int r = 0;
    bool changed = false;
    struct crd_def *old = NULL;
    for (struct crd_def *e = g_crds; e; e = e->next) {
        if (e->served && !strcmp(e->name, d->name)) {
            old = e;
        }
    }
    if (served_statically(cur, d->group, d->plural)) {
        /* DPF's own kinds exported as CRDs: the built-in declaration,
         * whose schema this CRD was made from, keeps serving them. */
        r = 1;
    } else if (!old && g_n_served >= SCHEMA_MAX_CRDS) {
        dpf_error_set(err, 422, "Invalid",
                      "too many CustomResourceDefinitions served (%d)",
                      SCHEMA_MAX_CRDS);
        r = -ENOSPC;
    } else if (old && schema_crd_same(old, d)) {
        r = 0; /* a status or metadata change: keep serving old */
    } else {
        if (old) {
            old->served = false;
        } else {
            g_n_served++;
        }
        d->served = true;
        changed = true;
    }
    /* d is kept (never freed) once built and listed: a request may hold
     * a kind of an old definition. An unserved, never listed one goes. */
    if (changed) {
        d->next = g_crds;
        g_crds = d;
        snapshot_publish();
    } else {
        schema_crd_def_free(d);
    }
    pthread_mutex_unlock(&g_write_lock);
    return r;
}

int
schema_crd_unregister(const char *name)
{
    schema_ensure_init();
    int r = -ENOENT;
    pthread_mutex_lock(&g_write_lock);
    for (struct crd_def *e = g_crds; e; e = e->next) {
        if (e->served && !strcmp(e->name, name)) {
            e->served = false;
            g_n_served--;
            r = 0;
        }
    }
    if (r == 0) {
        snapshot_publish();
    }
    pthread_mutex_unlock(&g_write_lock);
    return r;
}

const struct schema_group *const *
schema_groups(size_t *n)
{
    const struct snapshot *s = snap_get();
    if (n) {
        *n = s->n_groups;
    }
    return s->groups;
}

static const struct kind_rt *
snap_rt(const struct snapshot *s, const struct schema_kind *k)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->rt[i].k == k) {
            return &s->rt[i];
        }
    }
    return NULL;
}

const struct kind_rt *
schema_kind_rt(const struct schema_kind *k)
{
    const struct kind_rt *rt = snap_rt(snap_get(), k);
    /* A kind a request still holds after its CRD changed: the snapshots
     * that served it are kept. */
    for (const struct snapshot *s =
             atomic_load_explicit(&g_retired, memory_order_acquire);
         !rt && s; s = s->retired_next) {
        rt = snap_rt(s, k);
    }
    return rt;
}

const struct schema_group *
schema_kind_group(const struct schema_kind *k)
{
    const struct kind_rt *rt = schema_kind_rt(k);
    return rt ? rt->g : NULL;
}

const struct schema_kind *const *
schema_kinds(size_t *n)
{
    const struct snapshot *s = snap_get();
    if (n) {
        *n = s->n;
    }
    return s->list;
}

/* Probe ht from hash h until an empty slot or a kind match() accepts. */
static const struct kind_rt *
ht_find(const struct snapshot *s, const unsigned short *ht, uint32_t h,
        bool (*match)(const struct kind_rt *rt, const char *a, const char *b,
                      const char *c),
        const char *a, const char *b, const char *c)
{
    for (uint32_t i = 0; i < s->ht_size; i++) {
        unsigned short v = ht[(h + i) & (s->ht_size - 1)];
        if (!v) {
            return NULL;
        }
        if (match(&s->rt[v - 1], a, b, c)) {
            return &s->rt[v - 1];
        }
    }
    return NULL;
}

static bool
match_resource(const struct kind_rt *rt, const char *group, const char *version,
               const char *plural)
{
    return !strcmp(rt->k->plural, plural) && !strcmp(rt->k->group, group) &&
           !strcmp(rt->k->version, version);
}

static bool
match_kind(const struct kind_rt *rt, const char *api_version, const char *kind,
           const char *unused)
{
    (void) unused;
    return !strcmp(rt->k->kind, kind) && !strcmp(rt->api_version, api_version);
}

const struct schema_kind *
schema_find_resource(const char *group, const char *version, const char *plural)
{
    const struct snapshot *s = snap_get();
    if (!group || !version || !plural) {
        return NULL;
    }
    const struct kind_rt *rt =
        ht_find(s, s->ht_res, hash3(group, version, plural), match_resource,
                group, version, plural);
    return rt ? rt->k : NULL;
}

const struct schema_kind *
schema_find_kind(const char *api_version, const char *kind)
{
    const struct snapshot *s = snap_get();
    if (!api_version || !kind) {
        return NULL;
    }
    const struct kind_rt *rt =
        ht_find(s, s->ht_kind, hash3(api_version, kind, NULL), match_kind,
                api_version, kind, NULL);
    return rt ? rt->k : NULL;
}

static bool
word_matches(const struct schema_kind *k, const char *w, size_t len)
{
    const char *cands[] = {k->plural, k->singular, k->kind};
    for (size_t i = 0; i < ARRAY_SIZE(cands); i++) {
        if (cands[i] && strlen(cands[i]) == len &&
            !strncasecmp(cands[i], w, len)) {
            return true;
        }
    }
    for (const char *const *s = k->short_names; s && *s; s++) {
        if (strlen(*s) == len && !strncasecmp(*s, w, len)) {
            return true;
        }
    }
    return false;
}

/* Does the user's group text name k's group, exactly or as a prefix that
 * ends at a dot ("example" for "example.com")? */
static bool
group_matches(const struct schema_kind *k, const char *g)
{
    size_t n = strlen(g);
    if (strncasecmp(k->group, g, n)) {
        return false;
    }
    return k->group[n] == '\0' || k->group[n] == '.';
}

const struct schema_kind *
schema_find_name(const char *word)
{
    const struct snapshot *s = snap_get();
    if (!word || !*word) {
        return NULL;
    }
    const char *dot = strchr(word, '.');
    size_t len = dot ? (size_t) (dot - word) : strlen(word);
    /* First match in registry order: the groups listed first (the
     * platform's own) win a plain word over Kubernetes' kinds. */
    for (size_t i = 0; i < s->n; i++) {
        const struct schema_kind *k = s->rt[i].k;
        if (!word_matches(k, word, len)) {
            continue;
        }
        if (dot && !group_matches(k, dot + 1)) {
            continue;
        }
        return k;
    }
    return NULL;
}

const char *
schema_api_version(const struct schema_kind *k)
{
    const struct kind_rt *rt = schema_kind_rt(k);
    return rt ? rt->api_version : "";
}
