/* rbac: see rbac.h. */
#include "dpf-server/rbac.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/base/thread.h"
#include "lib/base/util.h"
#include "lib/codecs/selector.h"

LOG_MODULE(rbac);

#define RBAC_PREFIX "/rbac.authorization.k8s.io/"
#define RBAC_KEY_MAX 600

struct rbac {
    pthread_rwlock_t lock; /* guards the four maps */
    json_t *roles;         /* "<ns>/<name>" -> Role */
    json_t *croles;        /* name -> ClusterRole */
    json_t *bindings;      /* store key -> RoleBinding/ClusterRoleBinding */
    json_t *subjects;      /* "u:<user>" / "g:<group>" -> {binding key: 1} */
    /* the aggregation worker */
    struct worker w; /* its lock guards dirty */
    bool dirty;      /* a ClusterRole changed since the last pass */
    bool started;    /* worker running */
    rbac_write_rules_fn write;
    void *write_arg;
};

/* ------------------------------------------------------------------ */
/* request attributes                                                   */

static const char *
authz_verb_of(const char *method)
{
    if (!strcmp(method, "GET") || !strcmp(method, "HEAD")) {
        return "get";
    }
    if (!strcmp(method, "POST")) {
        return "create";
    }
    if (!strcmp(method, "PUT")) {
        return "update";
    }
    if (!strcmp(method, "PATCH")) {
        return "patch";
    }
    if (!strcmp(method, "DELETE")) {
        return "delete";
    }
    return "";
}

static const char *
authz_lower_method(const char *method)
{
    static const char *const m[][2] = {
        {"GET", "get"},         {"HEAD", "head"},   {"POST", "post"},
        {"PUT", "put"},         {"PATCH", "patch"}, {"DELETE", "delete"},
        {"OPTIONS", "options"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(m); i++) {
        if (!strcmp(method, m[i][0])) {
            return m[i][1];
        }
    }
    return "";
}

/* The name a list's field selector pins: exactly one term
 * metadata.name=X (or ==). Points into buf (a copy it makes). */
static const char *
authz_selector_name(const char *fs, char **buf)
{
    *buf = NULL;
    if (!fs || strncmp(fs, "metadata.name=", 14) != 0) {
        return NULL;
    }
    const char *v = fs + 14;
    if (*v == '=') {
        v++;
    }
    if (!*v || strchr(v, ',') || strchr(v, '/') || !strcmp(v, ".") ||
        !strcmp(v, "..")) {
        return NULL;
    }
    *buf = xstrdup(v);
    return *buf;
}

void
authz_attrs_from_request(struct authz_attrs *a, const char *method,
                         const char *path, bool watch,
                         const char *field_selector)
{
    memset(a, 0, sizeof(*a));
    a->group = a->version = a->resource = a->subresource = a->ns = a->name = "";
    a->path = path;
    a->buf = xstrdup(path);
    char *seg[16];
    size_t n = 0;
    char *save = NULL;
    for (char *t = strtok_r(a->buf, "/", &save); t && n < ARRAY_SIZE(seg);
         t = strtok_r(NULL, "/", &save)) {
        seg[n++] = t;
    }
    size_t i;
    if (n >= 3 && !strcmp(seg[0], "api")) {
        a->version = seg[1];
        i = 2;
    } else if (n >= 4 && !strcmp(seg[0], "apis")) {
        a->group = seg[1];
        a->version = seg[2];
        i = 3;
    } else {
        a->verb = authz_lower_method(method);
        if (!strcmp(a->verb, "head")) {
            a->verb = "get";
        }
        return;
    }
    a->resource_request = true;
    a->verb = authz_verb_of(method);
    if (i < n && !strcmp(seg[i], "watch")) {
        /* the legacy /watch/ prefix */
        a->verb = "watch";
        i++;
    }
    char **p = seg + i;
    size_t m = n - i;
    if (m >= 1 && !strcmp(p[0], "namespaces") && m >= 2) {
        a->ns = p[1];
        if (m > 2 && strcmp(p[2], "status") != 0 &&
            strcmp(p[2], "finalize") != 0) {
            p += 2;
            m -= 2;
        }
    }
    if (m >= 3) {
        a->subresource = p[2];
    }
    if (m >= 2) {
        a->name = p[1];
    }
    if (m >= 1) {
        a->resource = p[0];
    }
    if (!strcmp(a->resource, "pods") && !*a->group &&
        (!strcmp(a->subresource, "exec") || !strcmp(a->subresource, "attach") ||
         !strcmp(a->subresource, "portforward"))) {
        /* Running commands in a pod is a create whatever the method:
         * kubectl 1.30+ opens these WebSocket streams with GET, and a
         * "get pods/exec" grant must not let a reader in (as
         * kube-apiserver 1.35 with AuthorizePodWebsocketUpgradeCreate
         * Permission). */
        a->verb = "create";
    }
    if (!strcmp(a->verb, "get") && watch) {
        a->verb = "watch";
    }
    if (!*a->name && (!strcmp(a->verb, "get") || !strcmp(a->verb, "watch"))) {
        if (!strcmp(a->verb, "get")) {
            a->verb = "list";
        }
        /* A list or watch pinned to one name by its field selector is
         * authorized as that name (kubectl get x -w does that). The
         * copy lives in the same buffer's tail: re-home it. */
        char *nb = NULL;
        const char *nm = authz_selector_name(field_selector, &nb);
        if (nm) {
            size_t off = strlen(path) + 1;
            size_t nl = strlen(nm) + 1;
            char *grown = xmalloc(off + nl);
            memcpy(grown, a->buf, off);
            memcpy(grown + off, nm, nl);
            /* the pointers into the old buffer move with it */
#define REHOME(f)                                \
    if (a->f >= a->buf && a->f < a->buf + off) { \
        a->f = grown + (a->f - a->buf);          \
    }
            REHOME(group);
            REHOME(version);
            REHOME(resource);
            REHOME(subresource);
            REHOME(ns);
#undef REHOME
            free(a->buf);
            a->buf = grown;
            a->name = grown + off;
        }
        free(nb);
    }
    if (!*a->name && !strcmp(a->verb, "delete")) {
        a->verb = "deletecollection";
    }
}

void
authz_attrs_set(struct authz_attrs *a, const char *verb, const char *group,
                const char *resource, const char *subresource, const char *ns,
                const char *name)
{
    memset(a, 0, sizeof(*a));
    a->resource_request = true;
    a->verb = verb ? verb : "";
    a->group = group ? group : "";
    a->version = "";
    a->resource = resource ? resource : "";
    a->subresource = subresource ? subresource : "";
    a->ns = ns ? ns : "";
    a->name = name ? name : "";
    a->path = "";
}

void
authz_attrs_set_path(struct authz_attrs *a, const char *verb, const char *path)
{
    memset(a, 0, sizeof(*a));
    a->verb = verb ? verb : "";
    a->group = a->version = a->resource = a->subresource = a->ns = a->name = "";
    a->path = path ? path : "";
}

void
authz_attrs_free(struct authz_attrs *a)
{
    free(a->buf);
    a->buf = NULL;
}

/* ------------------------------------------------------------------ */
/* rules                                                                */

static bool
rbac_has(const json_t *arr, const char *s)
{
    size_t i;
    const json_t *v;
    json_array_foreach(arr, i, v)
    {
        const char *x = json_string_value(v);
        if (x && !strcmp(x, s)) {
            return true;
        }
    }
    return false;
}

static bool
rbac_url_matches(const char *rule, const char *path)
{
    if (!strcmp(rule, "*") || !strcmp(rule, path)) {
        return true;
    }
    size_t n = strlen(rule);
    return n > 0 && rule[n - 1] == '*' && strncmp(rule, path, n - 1) == 0;
}

/* Does rule resource list hold the combined resource (res or res/sub)? */
static bool
rbac_resource_matches(const json_t *resources, const char *res, const char *sub)
{
    size_t i;
    const json_t *v;
    json_array_foreach(resources, i, v)
    {
        const char *x = json_string_value(v);
        if (!x) {
            continue;
        }
        if (!strcmp(x, "*")) {
            return true;
        }
        size_t rl = strlen(res);
        if (!*sub) {
            if (!strcmp(x, res)) {
                return true;
            }
            continue;
        }
        if (!strncmp(x, res, rl) && x[rl] == '/' && !strcmp(x + rl + 1, sub)) {
            return true;
        }
        if (x[0] == '*' && x[1] == '/' && !strcmp(x + 2, sub)) {
            return true;
        }
    }
    return false;
}

bool
rbac_rule_allows(const json_t *rule, const struct authz_attrs *a)
{
    const json_t *verbs = json_object_get(rule, "verbs");
    if (!rbac_has(verbs, a->verb) && !rbac_has(verbs, "*")) {
        return false;
    }
    if (!a->resource_request) {
        size_t i;
        const json_t *v;
        json_array_foreach(json_object_get(rule, "nonResourceURLs"), i, v)
        {
            const char *x = json_string_value(v);
            if (x && rbac_url_matches(x, a->path)) {
                return true;
            }
        }
        return false;
    }
    const json_t *groups = json_object_get(rule, "apiGroups");
    if (!rbac_has(groups, a->group) && !rbac_has(groups, "*")) {
        return false;
    }
    if (!rbac_resource_matches(json_object_get(rule, "resources"), a->resource,
                               a->subresource)) {
        return false;
    }
    const json_t *names = json_object_get(rule, "resourceNames");
    return json_array_size(names) == 0 ||
           (*a->name && rbac_has(names, a->name));
}

/* One permission of a servant rule: is it covered by an owner rule? As
 * Kubernetes' ruleCovers on a rule of single verb, group, resource and
 * name (or single verb and URL). */
static bool
rbac_rule_covers_one(const json_t *o, const char *verb, const char *group,
                     const char *res, const char *name, const char *url)
{
    const json_t *verbs = json_object_get(o, "verbs");
    if (!rbac_has(verbs, "*") && !rbac_has(verbs, verb)) {
        return false;
    }
    if (group) {
        const json_t *g = json_object_get(o, "apiGroups");
        if (!rbac_has(g, "*") && !rbac_has(g, group)) {
            return false;
        }
    }
    if (res) {
        const json_t *r = json_object_get(o, "resources");
        if (!rbac_has(r, "*") && !rbac_has(r, res)) {
            const char *slash = strchr(res, '/');
            char want[RBAC_KEY_MAX];
            auth_fmt(want, sizeof want, "*/%s", slash ? slash + 1 : "");
            if (!slash || !rbac_has(r, want)) {
                return false;
            }
        }
    }
    if (url) {
        bool ok = false;
        size_t i;
        const json_t *v;
        json_array_foreach(json_object_get(o, "nonResourceURLs"), i, v)
        {
            const char *x = json_string_value(v);
            ok |= x && rbac_url_matches(x, url);
        }
        if (!ok) {
            return false;
        }
    }
    const json_t *names = json_object_get(o, "resourceNames");
    if (!name) {
        return json_array_size(names) == 0;
    }
    return json_array_size(names) == 0 || rbac_has(names, name);
}

static bool
rbac_covered(const json_t *owner, const char *verb, const char *group,
             const char *res, const char *name, const char *url)
{
    size_t i;
    const json_t *o;
    json_array_foreach(owner, i, o)
    {
        if (rbac_rule_covers_one(o, verb, group, res, name, url)) {
            return true;
        }
    }
    return false;
}

static void
rbac_add_missing(json_t **missing, const char *verb, const char *group,
                 const char *res, const char *name, const char *url)
{
    if (!missing) {
        return;
    }
    if (!*missing) {
        *missing = json_array();
    }
    json_t *r = json_object();
    json_object_set_new(r, "verbs", json_pack("[s]", verb));
    if (url) {
        json_object_set_new(r, "nonResourceURLs", json_pack("[s]", url));
    } else {
        json_object_set_new(r, "apiGroups", json_pack("[s]", group));
        json_object_set_new(r, "resources", json_pack("[s]", res));
        if (name) {
            json_object_set_new(r, "resourceNames", json_pack("[s]", name));
        }
    }
    json_array_append_new(*missing, r);
}

bool
rbac_rules_cover(const json_t *owner, const json_t *servant, json_t **missing)
{
    bool all = true;
    size_t i;
    const json_t *s;
    if (missing) {
        *missing = NULL;
    }
    json_array_foreach(servant, i, s)
    {
        const json_t *verbs = json_object_get(s, "verbs");
        const json_t *urls = json_object_get(s, "nonResourceURLs");
        size_t vi, ui, gi, ri, ni;
        const json_t *v, *u, *g, *r, *n;
        json_array_foreach(verbs, vi, v)
        {
            const char *verb = json_string_value(v);
            if (!verb) {
                continue;
            }
            json_array_foreach(urls, ui, u)
            {
                const char *url = json_string_value(u);
                if (url && !rbac_covered(owner, verb, NULL, NULL, NULL, url)) {
                    all = false;
                    rbac_add_missing(missing, verb, NULL, NULL, NULL, url);
                }
            }
            json_array_foreach(json_object_get(s, "apiGroups"), gi, g)
            {
                json_array_foreach(json_object_get(s, "resources"), ri, r)
                {
                    const char *grp = json_string_value(g);
                    const char *res = json_string_value(r);
                    if (!grp || !res) {
                        continue;
                    }
                    const json_t *names = json_object_get(s, "resourceNames");
                    if (json_array_size(names) == 0) {
                        if (!rbac_covered(owner, verb, grp, res, NULL, NULL)) {
                            all = false;
                            rbac_add_missing(missing, verb, grp, res, NULL,
                                             NULL);
                        }
                        continue;
                    }
                    json_array_foreach(names, ni, n)
                    {
                        const char *nm = json_string_value(n);
                        if (nm &&
                            !rbac_covered(owner, verb, grp, res, nm, NULL)) {
                            all = false;
                            rbac_add_missing(missing, verb, grp, res, nm, NULL);
                        }
                    }
                }
            }
        }
    }
    return all;
}

/* ------------------------------------------------------------------ */
/* the index                                                            */

/* Split "/rbac.authorization.k8s.io/<plural>/<ns>/<name>". */
static bool
rbac_key_split(const char *key, char *plural, char *ns, char *name)
{
    const char *p = key + strlen(RBAC_PREFIX);
    const char *s1 = strchr(p, '/');
    const char *s2 = s1 ? strchr(s1 + 1, '/') : NULL;
    if (!s1 || !s2 || (size_t) (s1 - p) >= 64 ||
        (size_t) (s2 - s1 - 1) >= 256 || strlen(s2 + 1) >= 256) {
        return false;
    }
    memcpy(plural, p, (size_t) (s1 - p));
    plural[s1 - p] = '\0';
    memcpy(ns, s1 + 1, (size_t) (s2 - s1 - 1));
    ns[s2 - s1 - 1] = '\0';
    strcpy(name, s2 + 1);
    return true;
}

/* The subject's index key into buf ("u:<user>" or "g:<group>"); a
 * ServiceAccount is its user. false for a subject that names nobody. */
static bool
rbac_subject_key(const json_t *s, const char *binding_ns, char *buf,
                 size_t size)
{
    const char *kind = json_string_value(json_object_get(s, "kind"));
    const char *name = json_string_value(json_object_get(s, "name"));
    if (!kind || !name) {
        return false;
    }
    if (!strcmp(kind, "User")) {
        auth_fmt(buf, size, "u:%s", name);
    } else if (!strcmp(kind, "Group")) {
        auth_fmt(buf, size, "g:%s", name);
    } else if (!strcmp(kind, "ServiceAccount")) {
        const char *ns = json_string_value(json_object_get(s, "namespace"));
        if (!ns || !*ns) {
            ns = binding_ns;
        }
        auth_fmt(buf, size, "u:" AUTHN_SA_PREFIX "%s:%s", ns ? ns : "", name);
    } else {
        return false;
    }
    return true;
}

static void
rbac_index_binding(struct rbac *r, const char *key, const json_t *b, bool add)
{
    const char *bns = json_string_value(
        json_object_get(json_object_get(b, "metadata"), "namespace"));
    size_t i;
    const json_t *s;
    json_array_foreach(json_object_get(b, "subjects"), i, s)
    {
        char sk[RBAC_KEY_MAX];
        if (!rbac_subject_key(s, bns, sk, sizeof sk)) {
            continue;
        }
        json_t *set = json_object_get(r->subjects, sk);
        if (add) {
            if (!set) {
                set = json_object();
                json_object_set_new(r->subjects, sk, set);
            }
            json_object_set_new(set, key, json_true());
        } else if (set) {
            json_object_del(set, key);
            if (json_object_size(set) == 0) {
                json_object_del(r->subjects, sk);
            }
        }
    }
}

/* Wake the aggregation worker. */
static void
rbac_mark_dirty(struct rbac *r)
{
    worker_lock(&r->w);
    r->dirty = true;
    worker_wake(&r->w);
    worker_unlock(&r->w);
}

void
rbac_store_event(struct rbac *r, enum store_event_type type, const char *key,
                 const char *value, size_t len)
{
    if (strncmp(key, RBAC_PREFIX, sizeof(RBAC_PREFIX) - 1) != 0) {
        return;
    }
    char plural[64], ns[256], name[256];
    if (!rbac_key_split(key, plural, ns, name)) {
        return;
    }
    json_t *obj = NULL;
    if (type != STORE_EVENT_DELETED) {
        obj = json_loadb(value, len, 0, NULL);
        if (!obj) {
            return;
        }
    }
    bool crole_changed = false;
    pthread_rwlock_wrlock(&r->lock);
    if (!strcmp(plural, "roles") || !strcmp(plural, "clusterroles")) {
        bool cluster = plural[0] == 'c';
        char k[RBAC_KEY_MAX];
        auth_fmt(k, sizeof k, "%s/%s", ns, name);
        json_t *map = cluster ? r->croles : r->roles;
        const char *mk = cluster ? name : k;
        if (obj) {
            json_object_set(map, mk, obj);
        } else {
            json_object_del(map, mk);
        }
        crole_changed = cluster;
    } else if (!strcmp(plural, "rolebindings") ||
               !strcmp(plural, "clusterrolebindings")) {
        json_t *old = json_object_get(r->bindings, key);
        if (old) {
            rbac_index_binding(r, key, old, false);
        }
        if (obj) {
            json_object_set(r->bindings, key, obj);
            rbac_index_binding(r, key, obj, true);
        } else {
            json_object_del(r->bindings, key);
        }
    }
    pthread_rwlock_unlock(&r->lock);
    json_decref(obj);
    if (crole_changed) {
        rbac_mark_dirty(r);
    }
}

struct rbac_load_ctx {
    struct rbac *r;
};

static int
rbac_load_one(void *arg, const struct store_kv *kv)
{
    struct rbac_load_ctx *c = arg;
    rbac_store_event(c->r, STORE_EVENT_ADDED, kv->key, kv->value, kv->len);
    return 0;
}

int
rbac_load(struct rbac *r, struct store *st, struct dpf_error *err)
{
    struct rbac_load_ctx c = {r};
    return store_list(st, RBAC_PREFIX, NULL, 0, rbac_load_one, &c, NULL, NULL,
                      err);
}

/* The rules of a binding's role (borrowed; lock held) or NULL. */
static const json_t *
rbac_binding_rules(struct rbac *r, const json_t *b, const char *bns)
{
    const json_t *ref = json_object_get(b, "roleRef");
    const char *kind = json_string_value(json_object_get(ref, "kind"));
    const char *name = json_string_value(json_object_get(ref, "name"));
    if (!kind || !name) {
        return NULL;
    }
    if (!strcmp(kind, "ClusterRole")) {
        return json_object_get(json_object_get(r->croles, name), "rules");
    }
    if (!strcmp(kind, "Role") && bns) {
        char k[RBAC_KEY_MAX];
        auth_fmt(k, sizeof k, "%s/%s", bns, name);
        return json_object_get(json_object_get(r->roles, k), "rules");
    }
    return NULL;
}

/* Call fn on the rules of every binding of the user that applies in ns
 * (the lock held shared); stop when it returns true. */
static bool
rbac_visit(struct rbac *r, const struct authn_user *u, const char *ns,
           bool (*fn)(void *arg, const json_t *rules), void *arg)
{
    char sk[AUTHN_NAME_MAX + 3];
    for (size_t gi = 0; gi <= u->n_groups; gi++) {
        if (gi == 0) {
            auth_fmt(sk, sizeof sk, "u:%s", u->name);
        } else {
            auth_fmt(sk, sizeof sk, "g:%s", u->groups[gi - 1]);
        }
        const json_t *set = json_object_get(r->subjects, sk);
        const char *bkey;
        const json_t *one;
        json_object_foreach((json_t *) set, bkey, one)
        {
            const json_t *b = json_object_get(r->bindings, bkey);
            const char *bns = json_string_value(
                json_object_get(json_object_get(b, "metadata"), "namespace"));
            if (bns && *bns && strcmp(bns, ns) != 0) {
                continue;
            }
            const json_t *rules = rbac_binding_rules(r, b, bns);
            if (rules && fn(arg, rules)) {
                return true;
            }
        }
    }
    return false;
}

static bool
rbac_rules_allow(void *arg, const json_t *rules)
{
    const struct authz_attrs *a = arg;
    size_t i;
    const json_t *rule;
    json_array_foreach(rules, i, rule)
    {
        if (rbac_rule_allows(rule, a)) {
            return true;
        }
    }
    return false;
}

bool
rbac_allows(struct rbac *r, const struct authn_user *u,
            const struct authz_attrs *a)
{
    pthread_rwlock_rdlock(&r->lock);
    bool ok = rbac_visit(r, u, a->ns, rbac_rules_allow, (void *) a);
    pthread_rwlock_unlock(&r->lock);
    return ok;
}

static bool
rbac_rules_collect(void *arg, const json_t *rules)
{
    json_t *out = arg;
    size_t i;
    json_t *rule;
    json_array_foreach((json_t *) rules, i, rule)
    {
        json_array_append_new(out, json_deep_copy(rule));
    }
    return false;
}

json_t *
rbac_user_rules(struct rbac *r, const struct authn_user *u, const char *ns)
{
    json_t *out = json_array();
    pthread_rwlock_rdlock(&r->lock);
    rbac_visit(r, u, ns ? ns : "", rbac_rules_collect, out);
    pthread_rwlock_unlock(&r->lock);
    return out;
}

json_t *
rbac_role_rules(struct rbac *r, const char *kind, const char *ns,
                const char *name)
{
    json_t *out = NULL;
    pthread_rwlock_rdlock(&r->lock);
    const json_t *role = NULL;
    if (kind && !strcmp(kind, "ClusterRole")) {
        role = json_object_get(r->croles, name);
    } else if (kind && !strcmp(kind, "Role")) {
        char k[RBAC_KEY_MAX];
        auth_fmt(k, sizeof k, "%s/%s", ns ? ns : "", name);
        role = json_object_get(r->roles, k);
    }
    if (role) {
        const json_t *rules = json_object_get(role, "rules");
        out = rules ? json_deep_copy(rules) : json_array();
    }
    pthread_rwlock_unlock(&r->lock);
    return out;
}

/* ------------------------------------------------------------------ */
/* aggregation                                                          */

static int
rbac_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* The rules an aggregated ClusterRole should have (new array), from the
 * ClusterRoles its selectors match, in name order, without duplicates.
 * Lock held. */
static json_t *
rbac_aggregate_one(struct rbac *r, const char *self, const json_t *selectors)
{
    size_t n = json_object_size(r->croles);
    const char **names = xcalloc(n + 1, sizeof(*names));
    size_t m = 0;
    const char *name;
    json_t *role;
    json_object_foreach(r->croles, name, role)
    {
        if (strcmp(name, self) != 0) {
            names[m++] = name;
        }
    }
    qsort(names, m, sizeof(*names), rbac_cmp_str);
    struct selector *sels[16];
    size_t ns = 0;
    size_t i;
    const json_t *s;
    json_array_foreach(selectors, i, s)
    {
        if (ns < ARRAY_SIZE(sels)) {
            struct dpf_error err = {0};
            sels[ns] = selector_from_label_selector(s, &err);
            if (sels[ns]) {
                ns++;
            }
        }
    }
    json_t *rules = json_array();
    for (size_t k = 0; k < m; k++) {
        const json_t *cr = json_object_get(r->croles, names[k]);
        const json_t *labels =
            json_object_get(json_object_get(cr, "metadata"), "labels");
        bool match = false;
        for (size_t j = 0; j < ns && !match; j++) {
            match = !selector_empty(sels[j]) &&
                    selector_match_labels(sels[j], labels);
        }
        if (!match) {
            continue;
        }
        size_t ri;
        json_t *rule;
        json_array_foreach(json_object_get(cr, "rules"), ri, rule)
        {
            bool dup = false;
            size_t di;
            json_t *have;
            json_array_foreach(rules, di, have)
            {
                dup |= json_equal(have, rule);
            }
            if (!dup) {
                json_array_append_new(rules, json_deep_copy(rule));
            }
        }
    }
    for (size_t j = 0; j < ns; j++) {
        selector_free(sels[j]);
    }
    free(names);
    return rules;
}

/* One pass: compute every aggregated role, write those that differ. */
static void
rbac_aggregate(struct rbac *r)
{
    json_t *todo = json_object();
    pthread_rwlock_rdlock(&r->lock);
    const char *name;
    json_t *role;
    json_object_foreach(r->croles, name, role)
    {
        const json_t *sel = json_object_get(
            json_object_get(role, "aggregationRule"), "clusterRoleSelectors");
        if (!json_array_size(sel)) {
            continue;
        }
        json_t *rules = rbac_aggregate_one(r, name, sel);
        const json_t *cur = json_object_get(role, "rules");
        /* no rules yet and none aggregated: nothing to write */
        bool same = cur ? json_equal(rules, cur) : !json_array_size(rules);
        if (!same) {
            json_object_set_new(todo, name, rules);
        } else {
            json_decref(rules);
        }
    }
    pthread_rwlock_unlock(&r->lock);
    json_t *rules;
    json_object_foreach(todo, name, rules)
    {
        int rc = r->write(r->write_arg, name, rules);
        if (rc < 0 && rc != -ENOENT) {
            log_warn("cannot write an aggregated ClusterRole",
                     "name=%s error=%d", name, rc);
        }
    }
    json_decref(todo);
}

static void *
rbac_worker_main(void *arg)
{
    struct rbac *r = arg;
    worker_lock(&r->w);
    while (!worker_stopping(&r->w)) {
        if (!r->dirty) {
            if (!worker_wait(&r->w, -1)) {
                break;
            }
            continue;
        }
        r->dirty = false;
        worker_unlock(&r->w);
        rbac_aggregate(r);
        worker_lock(&r->w);
    }
    worker_unlock(&r->w);
    return NULL;
}

struct rbac *
rbac_create(void)
{
    struct rbac *r = xcalloc(1, sizeof(*r));
    pthread_rwlock_init(&r->lock, NULL);
    r->roles = json_object();
    r->croles = json_object();
    r->bindings = json_object();
    r->subjects = json_object();
    worker_init(&r->w);
    return r;
}

int
rbac_start(struct rbac *r, rbac_write_rules_fn write, void *arg)
{
    r->write = write;
    r->write_arg = arg;
    worker_lock(&r->w);
    r->dirty = true;
    worker_unlock(&r->w);
    int rc = worker_start(&r->w, "rbac-aggregate", rbac_worker_main, r);
    r->started = rc == 0;
    return rc;
}

void
rbac_stop(struct rbac *r)
{
    worker_stop(&r->w);
}

void
rbac_destroy(struct rbac *r)
{
    if (!r) {
        return;
    }
    worker_stop(&r->w);
    worker_destroy(&r->w);
    json_decref(r->roles);
    json_decref(r->croles);
    json_decref(r->bindings);
    json_decref(r->subjects);
    pthread_rwlock_destroy(&r->lock);
    free(r);
}

/* ------------------------------------------------------------------ */
/* the default policy                                                   */

/* As kube-apiserver's bootstrap policy, for the kinds dpf serves, plus
 * dpf:aggregate-to-* roles that give view/edit/admin DPF's own groups. */
static const char rbac_bootstrap_json[] =
    "["
    /* cluster-admin */
    "{\"kind\":\"ClusterRole\",\"metadata\":{\"name\":\"cluster-admin\"},"
    "\"rules\":[{\"apiGroups\":[\"*\"],\"resources\":[\"*\"],\"verbs\":[\"*\"]"
    "},{\"nonResourceURLs\":[\"*\"],\"verbs\":[\"*\"]}]},"
    /* admin, edit, view */
    "{\"kind\":\"ClusterRole\",\"metadata\":{\"name\":\"admin\"},"
    "\"aggregationRule\":{\"clusterRoleSelectors\":[{\"matchLabels\":{"
    "\"rbac.authorization.k8s.io/aggregate-to-admin\":\"true\"}}]}},"
    "{\"kind\":\"ClusterRole\",\"metadata\":{\"name\":\"edit\",\"labels\":{"
    "\"rbac.authorization.k8s.io/aggregate-to-admin\":\"true\"}},"
    "\"aggregationRule\":{\"clusterRoleSelectors\":[{\"matchLabels\":{"
    "\"rbac.authorization.k8s.io/aggregate-to-edit\":\"true\"}}]}},"
    "{\"kind\":\"ClusterRole\",\"metadata\":{\"name\":\"view\",\"labels\":{"
    "\"rbac.authorization.k8s.io/aggregate-to-edit\":\"true\"}},"
    "\"aggregationRule\":{\"clusterRoleSelectors\":[{\"matchLabels\":{"
    "\"rbac.authorization.k8s.io/aggregate-to-view\":\"true\"}}]}},"
    /* what they aggregate */
    "{\"kind\":\"ClusterRole\",\"metadata\":{\"name\":"
    "\"system:aggregate-to-admin\",\"labels\":{"
    "\"rbac.authorization.k8s.io/aggregate-to-admin\":\"true\"}},"
    "\"rules\":["
    "{\"apiGroups\":[\"authorization.k8s.io\"],\"resources\":["
    "\"localsubjectaccessreviews\"],\"verbs\":[\"create\"]},"
    "{\"apiGroups\":[\"rbac.authorization.k8s.io\"],\"resources\":["
    "\"rolebindings\",\"roles\"],\"verbs\":[\"create\",\"delete\","
    "\"deletecollection\",\"get\",\"list\",\"patch\",\"update\",\"watch\"]}"
    "]},"
    "{\"kind\":\"ClusterRole\",\"metadata\":{\"name\":"
    "\"system:aggregate-to-edit\",\"labels\":{"
    "\"rbac.authorization.k8s.io/aggregate-to-edit\":\"true\"}},"
    "\"rules\":["
    "{\"apiGroups\":[\"\"],\"resources\":[\"pods/attach\",\"pods/exec\","
    "\"pods/portforward\",\"pods/proxy\",\"secrets\",\"services/proxy\"],"
    "\"verbs\":[\"get\",\"list\",\"watch\"]},"
    "{\"apiGroups\":[\"\"],\"resources\":[\"serviceaccounts\"],\"verbs\":["
    "\"impersonate\"]},"
    "{\"apiGroups\":[\"\"],\"resources\":[\"pods\",\"pods/attach\","
    "\"pods/exec\",\"pods/portforward\",\"pods/proxy\"],\"verbs\":["
    "\"create\",\"delete\",\"deletecollection\",\"patch\",\"update\"]},"
    "{\"apiGroups\":[\"\"],\"resources\":[\"configmaps\",\"events\","
    "\"persistentvolumeclaims\",\"replicationcontrollers\","
    "\"replicationcontrollers/scale\",\"secrets\",\"serviceaccounts\","
    "\"services\",\"services/proxy\"],\"verbs\":[\"create\",\"delete\","
    "\"deletecollection\",\"patch\",\"update\"]},"
    "{\"apiGroups\":[\"\"],\"resources\":[\"serviceaccounts/token\"],"
    "\"verbs\":[\"create\"]},"
    "{\"apiGroups\":[\"apps\"],\"resources\":[\"daemonsets\","
    "\"deployments\",\"deployments/rollback\",\"deployments/scale\","
    "\"replicasets\",\"replicasets/scale\",\"statefulsets\","
    "\"statefulsets/scale\"],\"verbs\":[\"create\",\"delete\","
    "\"deletecollection\",\"patch\",\"update\"]}"
    "]},"
    "{\"kind\":\"ClusterRole\",\"metadata\":{\"name\":"
    "\"system:aggregate-to-view\",\"labels\":{"
    "\"rbac.authorization.k8s.io/aggregate-to-view\":\"true\"}},"
    "\"rules\":["
    "{\"apiGroups\":[\"\"],\"resources\":[\"configmaps\",\"endpoints\","
    "\"persistentvolumeclaims\",\"persistentvolumeclaims/status\",\"pods\","
    "\"replicationcontrollers\",\"replicationcontrollers/scale\","
    "\"serviceaccounts\",\"services\",\"services/status\"],\"verbs\":["
    "\"get\",\"list\",\"watch\"]},"
    "{\"apiGroups\":[\"\"],\"resources\":[\"bindings\",\"events\","
    "\"limitranges\",\"namespaces/status\",\"pods/log\",\"pods/status\","
    "\"replicationcontrollers/status\",\"resourcequotas\","
    "\"resourcequotas/status\"],\"verbs\":[\"get\",\"list\",\"watch\"]},"
    "{\"apiGroups\":[\"\"],\"resources\":[\"namespaces\"],\"verbs\":["
    "\"get\",\"list\",\"watch\"]},"
    "{\"apiGroups\":[\"apps\"],\"resources\":[\"controllerrevisions\","
    "\"daemonsets\",\"daemonsets/status\",\"deployments\","
    "\"deployments/scale\",\"deployments/status\",\"replicasets\","
    "\"replicasets/scale\",\"replicasets/status\",\"statefulsets\","
    "\"statefulsets/scale\",\"statefulsets/status\"],\"verbs\":[\"get\","
    "\"list\",\"watch\"]}"
    "]},"
    /* DPF's own groups in view and edit (and so admin) */
    "{\"kind\":\"ClusterRole\",\"metadata\":{\"name\":"
    "\"dpf:aggregate-to-view\",\"labels\":{"
    "\"rbac.authorization.k8s.io/aggregate-to-view\":\"true\"}},"
    "\"rules\":[{\"apiGroups\":[\"provisioning.dpu.nvidia.com\","
    "\"svc.dpu.nvidia.com\",\"operator.dpu.nvidia.com\","
    "\"nv-ipam.nvidia.com\"],\"resources\":[\"*\"],\"verbs\":[\"get\","
    "\"list\",\"watch\"]}]},"
    "{\"kind\":\"ClusterRole\",\"metadata\":{\"name\":"
    "\"dpf:aggregate-to-edit\",\"labels\":{"
    "\"rbac.authorization.k8s.io/aggregate-to-edit\":\"true\"}},"
    "\"rules\":[{\"apiGroups\":[\"provisioning.dpu.nvidia.com\","
    "\"svc.dpu.nvidia.com\",\"operator.dpu.nvidia.com\","
    "\"nv-ipam.nvidia.com\"],\"resources\":[\"*\"],\"verbs\":[\"create\","
    "\"delete\",\"deletecollection\",\"patch\",\"update\"]}]},"
    /* every authenticated user */
    "{\"kind\":\"ClusterRole\",\"metadata\":{\"name\":\"system:basic-user\"},"
    "\"rules\":[{\"apiGroups\":[\"authorization.k8s.io\"],\"resources\":["
    "\"selfsubjectaccessreviews\",\"selfsubjectrulesreviews\"],\"verbs\":["
    "\"create\"]},{\"apiGroups\":[\"authentication.k8s.io\"],\"resources\":["
    "\"selfsubjectreviews\"],\"verbs\":[\"create\"]}]},"
    "{\"kind\":\"ClusterRole\",\"metadata\":{\"name\":\"system:discovery\"},"
    "\"rules\":[{\"nonResourceURLs\":[\"/api\",\"/api/*\",\"/apis\","
    "\"/apis/*\",\"/healthz\",\"/livez\",\"/openapi\",\"/openapi/*\","
    "\"/readyz\",\"/version\",\"/version/\"],\"verbs\":[\"get\"]}]},"
    "{\"kind\":\"ClusterRole\",\"metadata\":{\"name\":"
    "\"system:public-info-viewer\"},\"rules\":[{\"nonResourceURLs\":["
    "\"/healthz\",\"/livez\",\"/readyz\",\"/version\",\"/version/\"],"
    "\"verbs\":[\"get\"]}]},"
    /* what a metrics scraper needs, as kube-apiserver's role */
    "{\"kind\":\"ClusterRole\",\"metadata\":{\"name\":\"system:monitoring\"},"
    "\"rules\":[{\"nonResourceURLs\":[\"/healthz\",\"/healthz/*\",\"/livez\","
    "\"/livez/*\",\"/metrics\",\"/metrics/slis\",\"/readyz\",\"/readyz/*\"],"
    "\"verbs\":[\"get\"]}]},"
    /* node bootstrap, as kube-apiserver and kubeadm create it */
    "{\"kind\":\"ClusterRole\",\"metadata\":{\"name\":\"system:node-"
    "bootstrapper\"},"
    "\"rules\":[{\"apiGroups\":[\"certificates.k8s.io\"],\"resources\":["
    "\"certificatesigningrequests\"],\"verbs\":[\"create\",\"get\",\"list\","
    "\"watch\"]}]},"
    "{\"kind\":\"ClusterRole\",\"metadata\":{\"name\":\"system:certificates."
    "k8s.io:certificatesigningrequests:nodeclient\"},"
    "\"rules\":[{\"apiGroups\":[\"certificates.k8s.io\"],\"resources\":["
    "\"certificatesigningrequests/nodeclient\"],\"verbs\":[\"create\"]}]},"
    "{\"kind\":\"ClusterRole\",\"metadata\":{\"name\":\"system:certificates."
    "k8s.io:certificatesigningrequests:selfnodeclient\"},"
    "\"rules\":[{\"apiGroups\":[\"certificates.k8s.io\"],\"resources\":["
    "\"certificatesigningrequests/selfnodeclient\"],\"verbs\":[\"create\"]}]},"
    "{\"kind\":\"ClusterRoleBinding\",\"metadata\":{\"name\":\"kubeadm:kubelet-"
    "bootstrap\"},"
    "\"roleRef\":{\"apiGroup\":\"rbac.authorization.k8s.io\",\"kind\":"
    "\"ClusterRole\","
    "\"name\":\"system:node-bootstrapper\"},\"subjects\":[{\"apiGroup\":\"rbac."
    "authorization.k8s.io\","
    "\"kind\":\"Group\",\"name\":\"system:bootstrappers:kubeadm:default-node-"
    "token\"}]},"
    "{\"kind\":\"ClusterRoleBinding\",\"metadata\":{\"name\":\"kubeadm:node-"
    "autoapprove-bootstrap\"},"
    "\"roleRef\":{\"apiGroup\":\"rbac.authorization.k8s.io\",\"kind\":"
    "\"ClusterRole\","
    "\"name\":\"system:certificates.k8s.io:certificatesigningrequests:"
    "nodeclient\"},\"subjects\":[{\"apiGroup\":\"rbac.authorization.k8s.io\","
    "\"kind\":\"Group\",\"name\":\"system:bootstrappers:kubeadm:default-node-"
    "token\"}]},"
    "{\"kind\":\"ClusterRoleBinding\",\"metadata\":{\"name\":\"kubeadm:node-"
    "autoapprove-certificate-rotation\"},"
    "\"roleRef\":{\"apiGroup\":\"rbac.authorization.k8s.io\",\"kind\":"
    "\"ClusterRole\","
    "\"name\":\"system:certificates.k8s.io:certificatesigningrequests:"
    "selfnodeclient\"},\"subjects\":[{\"apiGroup\":\"rbac.authorization.k8s."
    "io\","
    "\"kind\":\"Group\",\"name\":\"system:nodes\"}]},"
    /* cluster-info for anyone: kubeadm join reads it before it trusts
     * the server */
    "{\"kind\":\"Role\",\"metadata\":{\"name\":"
    "\"kubeadm:bootstrap-signer-clusterinfo\",\"namespace\":\"kube-public\"},"
    "\"rules\":[{\"apiGroups\":[\"\"],\"resources\":[\"configmaps\"],"
    "\"resourceNames\":[\"cluster-info\"],\"verbs\":[\"get\"]}]},"
    "{\"kind\":\"RoleBinding\",\"metadata\":{\"name\":"
    "\"kubeadm:bootstrap-signer-clusterinfo\",\"namespace\":\"kube-public\"},"
    "\"roleRef\":{\"apiGroup\":\"rbac.authorization.k8s.io\",\"kind\":\"Role\","
    "\"name\":\"kubeadm:bootstrap-signer-clusterinfo\"},\"subjects\":[{"
    "\"apiGroup\":\"rbac.authorization.k8s.io\",\"kind\":\"User\",\"name\":"
    "\"system:anonymous\"}]},"
    /* bindings */
    "{\"kind\":\"ClusterRoleBinding\",\"metadata\":{\"name\":"
    "\"cluster-admin\"},\"roleRef\":{\"apiGroup\":"
    "\"rbac.authorization.k8s.io\",\"kind\":\"ClusterRole\",\"name\":"
    "\"cluster-admin\"},\"subjects\":[{\"apiGroup\":"
    "\"rbac.authorization.k8s.io\",\"kind\":\"Group\",\"name\":"
    "\"system:masters\"}]},"
    "{\"kind\":\"ClusterRoleBinding\",\"metadata\":{\"name\":"
    "\"system:basic-user\"},\"roleRef\":{\"apiGroup\":"
    "\"rbac.authorization.k8s.io\",\"kind\":\"ClusterRole\",\"name\":"
    "\"system:basic-user\"},\"subjects\":[{\"apiGroup\":"
    "\"rbac.authorization.k8s.io\",\"kind\":\"Group\",\"name\":"
    "\"system:authenticated\"}]},"
    "{\"kind\":\"ClusterRoleBinding\",\"metadata\":{\"name\":"
    "\"system:discovery\"},\"roleRef\":{\"apiGroup\":"
    "\"rbac.authorization.k8s.io\",\"kind\":\"ClusterRole\",\"name\":"
    "\"system:discovery\"},\"subjects\":[{\"apiGroup\":"
    "\"rbac.authorization.k8s.io\",\"kind\":\"Group\",\"name\":"
    "\"system:authenticated\"}]},"
    "{\"kind\":\"ClusterRoleBinding\",\"metadata\":{\"name\":"
    "\"system:public-info-viewer\"},\"roleRef\":{\"apiGroup\":"
    "\"rbac.authorization.k8s.io\",\"kind\":\"ClusterRole\",\"name\":"
    "\"system:public-info-viewer\"},\"subjects\":[{\"apiGroup\":"
    "\"rbac.authorization.k8s.io\",\"kind\":\"Group\",\"name\":"
    "\"system:authenticated\"},{\"apiGroup\":\"rbac.authorization.k8s.io\","
    "\"kind\":\"Group\",\"name\":\"system:unauthenticated\"}]},"
    "{\"kind\":\"ClusterRoleBinding\",\"metadata\":{\"name\":"
    "\"system:monitoring\"},\"roleRef\":{\"apiGroup\":"
    "\"rbac.authorization.k8s.io\",\"kind\":\"ClusterRole\",\"name\":"
    "\"system:monitoring\"},\"subjects\":[{\"apiGroup\":"
    "\"rbac.authorization.k8s.io\",\"kind\":\"Group\",\"name\":"
    "\"system:monitoring\"}]}"
    "]";

json_t *
rbac_bootstrap_objects(void)
{
    json_t *objs = json_loads(rbac_bootstrap_json, 0, NULL);
    size_t i;
    json_t *o;
    json_array_foreach(objs, i, o)
    {
        json_object_set_new(o, "apiVersion",
                            json_string("rbac.authorization.k8s.io/v1"));
        json_t *md = json_object_get(o, "metadata");
        json_t *labels = json_object_get(md, "labels");
        if (!labels) {
            labels = json_object();
            json_object_set_new(md, "labels", labels);
        }
        json_object_set_new(labels, "kubernetes.io/bootstrapping",
                            json_string("rbac-defaults"));
        json_object_set_new(md, "annotations",
                            json_pack("{s:s}",
                                      "rbac.authorization.kubernetes.io/"
                                      "autoupdate",
                                      "true"));
    }
    return objs;
}
