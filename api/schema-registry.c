/* schema-registry: the table of groups and kinds behind api/schema.h's
 * lookups.
 *
 * The groups come from api/kinds.c (the built-in ones) and from
 * schema_register_group() before first use; nothing here names a group.
 * The registry is built once under pthread_once: every kind gets its
 * apiVersion and qualified name, two open-addressing hash tables (by
 * group/version/plural and by apiVersion/kind), compiled patterns and
 * parsed defaults. After that it is read-only and needs no lock. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
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
static const struct schema_group **g_groups; /* NULL-terminated */
static size_t g_n_groups;
static struct kind_rt *g_rt;
static const struct schema_kind **g_list; /* NULL-terminated */
static size_t g_n;
static unsigned short *g_ht_res;  /* index + 1, 0 = empty */
static unsigned short *g_ht_kind; /* index + 1, 0 = empty */
static uint32_t g_ht_size;        /* power of two, >= 4 x kinds */

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
ht_insert(unsigned short *ht, uint32_t h, size_t idx)
{
    for (uint32_t i = 0; i < g_ht_size; i++) {
        uint32_t slot = (h + i) & (g_ht_size - 1);
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

/* Call fn for every kind of every group, in registry order. */
static void
for_each_kind(void (*fn)(const struct schema_group *g,
                         const struct schema_group_version *gv,
                         const struct schema_kind *k))
{
    for (size_t i = 0; i < g_n_groups; i++) {
        const struct schema_group *g = g_groups[i];
        for (const struct schema_group_version *gv = g->versions;
             gv && gv->version; gv++) {
            for (const struct schema_kind *const *k = gv->kinds; k && *k; k++) {
                fn(g, gv, *k);
            }
        }
    }
}

static void
count_kind(const struct schema_group *g, const struct schema_group_version *gv,
           const struct schema_kind *k)
{
    (void) g;
    (void) gv;
    (void) k;
    g_n++;
}

static void
add_kind(const struct schema_group *g, const struct schema_group_version *gv,
         const struct schema_kind *k)
{
    /* A kind states its group and version for its callers (SCHEMA_GVR);
     * the registry is where it is listed, and the two must agree. */
    if (strcmp(k->group, g->name) || strcmp(k->version, gv->version)) {
        fprintf(stderr, "schema: kind %s is listed under %s/%s, skipped\n",
                k->kind, g->name, gv->version);
        return;
    }
    struct kind_rt *rt = &g_rt[g_n];
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
    ht_insert(g_ht_res, hash3(k->group, k->version, k->plural), g_n);
    ht_insert(g_ht_kind, hash3(rt->api_version, k->kind, NULL), g_n);
    g_list[g_n] = k;
    init_node(k->root, 0);
    g_n++;
}

static void
schema_init(void)
{
    size_t nb = 0;
    while (schema_builtin_groups[nb]) {
        nb++;
    }
    g_groups = xcalloc(nb + g_n_registered + 1, sizeof *g_groups);
    for (size_t i = 0; i < nb; i++) {
        g_groups[g_n_groups++] = schema_builtin_groups[i];
    }
    for (size_t i = 0; i < g_n_registered; i++) {
        g_groups[g_n_groups++] = g_registered[i];
    }
    for_each_kind(count_kind);
    size_t total = g_n;
    g_n = 0;
    g_ht_size = 64;
    while (g_ht_size < 4 * total) {
        g_ht_size *= 2;
    }
    g_ht_res = xcalloc(g_ht_size, sizeof *g_ht_res);
    g_ht_kind = xcalloc(g_ht_size, sizeof *g_ht_kind);
    g_rt = xcalloc(total ? total : 1, sizeof *g_rt);
    g_list = xcalloc(total + 1, sizeof *g_list);
    for_each_kind(add_kind);
    g_built = true;
}

void
schema_ensure_init(void)
{
    pthread_once(&g_once, schema_init);
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

const struct schema_group *const *
schema_groups(size_t *n)
{
    schema_ensure_init();
    if (n) {
        *n = g_n_groups;
    }
    return g_groups;
}

const struct kind_rt *
schema_kind_rt(const struct schema_kind *k)
{
    schema_ensure_init();
    for (size_t i = 0; i < g_n; i++) {
        if (g_rt[i].k == k) {
            return &g_rt[i];
        }
    }
    return NULL;
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
    schema_ensure_init();
    if (n) {
        *n = g_n;
    }
    return g_list;
}

/* Probe ht from hash h until an empty slot or a kind match() accepts. */
static const struct kind_rt *
ht_find(const unsigned short *ht, uint32_t h,
        bool (*match)(const struct kind_rt *rt, const char *a, const char *b,
                      const char *c),
        const char *a, const char *b, const char *c)
{
    for (uint32_t i = 0; i < g_ht_size; i++) {
        unsigned short v = ht[(h + i) & (g_ht_size - 1)];
        if (!v) {
            return NULL;
        }
        if (match(&g_rt[v - 1], a, b, c)) {
            return &g_rt[v - 1];
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
    schema_ensure_init();
    if (!group || !version || !plural) {
        return NULL;
    }
    const struct kind_rt *rt = ht_find(g_ht_res, hash3(group, version, plural),
                                       match_resource, group, version, plural);
    return rt ? rt->k : NULL;
}

const struct schema_kind *
schema_find_kind(const char *api_version, const char *kind)
{
    schema_ensure_init();
    if (!api_version || !kind) {
        return NULL;
    }
    const struct kind_rt *rt =
        ht_find(g_ht_kind, hash3(api_version, kind, NULL), match_kind,
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
    schema_ensure_init();
    if (!word || !*word) {
        return NULL;
    }
    const char *dot = strchr(word, '.');
    size_t len = dot ? (size_t) (dot - word) : strlen(word);
    /* First match in registry order: the groups listed first (the
     * platform's own) win a plain word over Kubernetes' kinds. */
    for (size_t i = 0; i < g_n; i++) {
        const struct schema_kind *k = g_rt[i].k;
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
