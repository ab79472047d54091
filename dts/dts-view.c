/* dts-view: see dts-view.h. */
#include "dts/dts-view.h"

#include <dirent.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"

/* One token: a literal (searched with strstr, or compared when exact) or
 * a compiled regex. */
struct dts_token {
    char *text;
    bool exact;   /* @name */
    bool literal; /* no regex metacharacter: strstr */
    regex_t re;   /* when !exact && !literal */
};

struct dts_tokens {
    size_t n, cap;
    struct dts_token *v;
};

static bool
dts_token_has_meta(const char *s)
{
    return strpbrk(s, "^$.[]()|*+?{}\\") != NULL;
}

void
dts_tokens_free(struct dts_tokens *t)
{
    if (!t) {
        return;
    }
    for (size_t i = 0; i < t->n; i++) {
        if (!t->v[i].exact && !t->v[i].literal) {
            regfree(&t->v[i].re);
        }
        free(t->v[i].text);
    }
    free(t->v);
    free(t);
}

size_t
dts_tokens_count(const struct dts_tokens *t)
{
    return t ? t->n : 0;
}

/* Add one token (trimmed, non-empty). 0 or -EINVAL with err set. */
static int
dts_tokens_add(struct dts_tokens *t, const char *tok, size_t len,
               const char *name, unsigned line, struct dpf_error *err)
{
    if (len > DTS_SET_MAX_TOKEN) {
        dpf_error_set(err, 400, "Invalid", "%s:%u: token longer than %d bytes",
                      name, line, DTS_SET_MAX_TOKEN);
        return -EINVAL;
    }
    if (t->n >= DTS_SET_MAX_TOKENS) {
        dpf_error_set(err, 400, "Invalid", "%s:%u: more than %d tokens", name,
                      line, DTS_SET_MAX_TOKENS);
        return -EINVAL;
    }
    if (memchr(tok, '\0', len)) {
        dpf_error_set(err, 400, "Invalid", "%s:%u: NUL byte", name, line);
        return -EINVAL;
    }
    struct dts_token k = {.text = xstrndup(tok, len)};
    if (k.text[0] == '@' && k.text[1]) {
        k.exact = true;
        memmove(k.text, k.text + 1, len);
    } else if (!dts_token_has_meta(k.text)) {
        k.literal = true;
    } else {
        int rc = regcomp(&k.re, k.text, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char what[128];
            regerror(rc, &k.re, what, sizeof what);
            dpf_error_set(err, 400, "Invalid",
                          "%s:%u: \"%s\" is not a regular expression: %s", name,
                          line, k.text, what);
            free(k.text);
            return -EINVAL;
        }
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 8;
        t->v = xrealloc(t->v, t->cap * sizeof *t->v);
    }
    t->v[t->n++] = k;
    return 0;
}

static bool
dts_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

struct dts_tokens *
dts_tokens_parse(const char *text, size_t len, const char *name,
                 struct dpf_error *err)
{
    struct dts_tokens *t = xcalloc(1, sizeof *t);
    unsigned line = 0;
    size_t i = 0;
    while (i < len) {
        line++;
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t) (nl - text) : len;
        size_t a = i, b = end;
        while (a < b && dts_is_space(text[a])) {
            a++;
        }
        while (b > a && dts_is_space(text[b - 1])) {
            b--;
        }
        if (b > a && text[a] != '#' &&
            dts_tokens_add(t, text + a, b - a, name, line, err) < 0) {
            dts_tokens_free(t);
            return NULL;
        }
        i = end + 1;
    }
    return t;
}

struct dts_tokens *
dts_tokens_parse_list(const char *list, const char *name, struct dpf_error *err)
{
    struct dts_tokens *t = xcalloc(1, sizeof *t);
    const char *p = list ? list : "";
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t) (comma - p) : strlen(p);
        size_t a = 0, b = n;
        while (a < b && (dts_is_space(p[a]) || p[a] == '\n')) {
            a++;
        }
        while (b > a && (dts_is_space(p[b - 1]) || p[b - 1] == '\n')) {
            b--;
        }
        if (b > a && dts_tokens_add(t, p + a, b - a, name, 0, err) < 0) {
            dts_tokens_free(t);
            return NULL;
        }
        p += n + (comma ? 1 : 0);
    }
    return t;
}

bool
dts_tokens_match(const struct dts_tokens *t, const char *s)
{
    for (size_t i = 0; t && i < t->n; i++) {
        const struct dts_token *k = &t->v[i];
        if (k->exact     ? !strcmp(k->text, s)
            : k->literal ? strstr(s, k->text) != NULL
                         : regexec(&k->re, s, 0, NULL, 0) == 0) {
            return true;
        }
    }
    return false;
}

/* ---- view ------------------------------------------------------------ */

void
dts_view_free(struct dts_view *v)
{
    if (!v) {
        return;
    }
    dts_tokens_free(v->indexes);
    dts_tokens_free(v->fset_indexes);
    dts_tokens_free(v->ignore_names);
    dts_tokens_free(v->ignore_tags);
    for (size_t i = 0; i < v->n_sets; i++) {
        free(v->sets[i].name);
        dts_tokens_free(v->sets[i].cset);
        dts_tokens_free(v->sets[i].fset);
    }
    free(v->sets);
    free(v);
}

static struct dts_view_set *
dts_view_set_get(struct dts_view *v, const char *name, size_t len)
{
    for (size_t i = 0; i < v->n_sets; i++) {
        if (strlen(v->sets[i].name) == len &&
            !memcmp(v->sets[i].name, name, len)) {
            return &v->sets[i];
        }
    }
    v->sets = xrealloc(v->sets, (v->n_sets + 1) * sizeof *v->sets);
    struct dts_view_set *s = &v->sets[v->n_sets++];
    memset(s, 0, sizeof *s);
    s->name = xstrndup(name, len);
    return s;
}

static const char *dts_set_ext;

static int
dts_set_filter(const struct dirent *d)
{
    return d->d_name[0] != '.' && str_has_suffix(d->d_name, dts_set_ext) &&
           strlen(d->d_name) > strlen(dts_set_ext);
}

/* Read one token file with the size and type limits. */
static struct dts_tokens *
dts_tokens_load(const char *path, struct dpf_error *err)
{
    char *data = NULL;
    size_t len = 0;
    int rc = file_read_regular(path, DTS_SET_MAX_FILE, &data, &len);
    if (rc == -EINVAL) {
        dpf_error_set(err, 400, "Invalid",
                      "%s: not a regular file (FIFOs, devices and "
                      "directories are refused)",
                      path);
        return NULL;
    }
    if (rc == -EFBIG) {
        dpf_error_set(err, 400, "Invalid", "%s: larger than %d bytes", path,
                      DTS_SET_MAX_FILE);
        return NULL;
    }
    if (rc < 0) {
        dpf_error_set(err, 400, "Invalid", "%s: cannot read: %s", path,
                      strerror(-rc));
        return NULL;
    }
    struct dts_tokens *t = dts_tokens_parse(data, len, path, err);
    free(data);
    return t;
}

/* Load every <name><ext> of dir into the view's sets (fset or cset). */
static int
dts_view_load_dir(struct dts_view *v, const char *key, const char *dir,
                  const char *ext, bool fset, struct dpf_error *err)
{
    struct dirent **ents;
    dts_set_ext = ext; /* scandir's filter takes no argument; loop thread */
    int n = scandir(dir, &ents, dts_set_filter, alphasort);
    if (n < 0) {
        dpf_error_set(err, 400, "Invalid", "%s: %s: %s", key, dir,
                      strerror(errno));
        return -EINVAL;
    }
    int rc = 0;
    if (n > DTS_SET_MAX_FILES) {
        dpf_error_set(err, 400, "Invalid", "%s: %s: more than %d %s files", key,
                      dir, DTS_SET_MAX_FILES, ext);
        rc = -EINVAL;
    }
    for (int i = 0; i < n; i++) {
        if (rc == 0) {
            char *path = xasprintf("%s/%s", dir, ents[i]->d_name);
            struct dts_tokens *t = dts_tokens_load(path, err);
            free(path);
            if (!t) {
                rc = -EINVAL;
            } else {
                size_t len = strlen(ents[i]->d_name) - strlen(ext);
                struct dts_view_set *s =
                    dts_view_set_get(v, ents[i]->d_name, len);
                struct dts_tokens **slot = fset ? &s->fset : &s->cset;
                dts_tokens_free(*slot);
                *slot = t;
            }
        }
        free(ents[i]);
    }
    free(ents);
    return rc;
}

static int
dts_view_set_cmp(const void *a, const void *b)
{
    return strcmp(((const struct dts_view_set *) a)->name,
                  ((const struct dts_view_set *) b)->name);
}

static int
dts_view_list(struct dts_tokens **dst, const char *list, const char *key,
              struct dpf_error *err)
{
    if (!list || !*list) {
        return 0;
    }
    *dst = dts_tokens_parse_list(list, key, err);
    return *dst ? 0 : -EINVAL;
}

struct dts_view *
dts_view_load(const struct dts_view_settings *s, struct dpf_error *err)
{
    struct dts_view *v = xcalloc(1, sizeof *v);
    v->naming = s->naming;
    /* DOCA: when only one of the two directories is given, the other
     * defaults to it (NetQ's example points both at one directory) */
    const char *cdir = s->cset_dir ? s->cset_dir : s->fset_dir;
    const char *fdir = s->fset_dir ? s->fset_dir : s->cset_dir;
    int rc = 0;
    if (cdir) {
        rc = dts_view_load_dir(v, "prometheus-cset-dir", cdir, ".cset", false,
                               err);
    }
    if (rc == 0 && fdir) {
        rc = dts_view_load_dir(v, "prometheus-fset-dir", fdir, ".fset", true,
                               err);
    }
    if (rc == 0) {
        rc = dts_view_list(&v->indexes, s->indexes, "prometheus-indexes", err);
    }
    if (rc == 0) {
        rc = dts_view_list(&v->fset_indexes, s->fset_indexes,
                           "prometheus-fset-indexes", err);
    }
    if (rc == 0 && s->fset_indexes_file) {
        struct dts_tokens *t = dts_tokens_load(s->fset_indexes_file, err);
        if (!t) {
            rc = -EINVAL;
        } else if (!v->fset_indexes) {
            v->fset_indexes = t;
        } else {
            for (size_t i = 0; i < t->n; i++) {
                /* move the file's tokens behind the key's */
                if (v->fset_indexes->n == v->fset_indexes->cap) {
                    v->fset_indexes->cap = 2 * v->fset_indexes->cap + 8;
                    v->fset_indexes->v = xrealloc(v->fset_indexes->v,
                                                  v->fset_indexes->cap *
                                                      sizeof(struct dts_token));
                }
                v->fset_indexes->v[v->fset_indexes->n++] = t->v[i];
            }
            t->n = 0;
            dts_tokens_free(t);
        }
    }
    if (rc == 0) {
        rc = dts_view_list(&v->ignore_names, s->ignore_names,
                           "prometheus-ignore-names", err);
    }
    if (rc == 0) {
        rc = dts_view_list(&v->ignore_tags, s->ignore_tags,
                           "prometheus-ignore-tagss", err);
    }
    if (rc < 0) {
        dts_view_free(v);
        return NULL;
    }
    if (v->n_sets > 1) {
        qsort(v->sets, v->n_sets, sizeof *v->sets, dts_view_set_cmp);
    }
    return v;
}

const struct dts_view_set *
dts_view_find(const struct dts_view *v, const char *name)
{
    for (size_t i = 0; v && i < v->n_sets; i++) {
        if (!strcmp(v->sets[i].name, name)) {
            return &v->sets[i];
        }
    }
    return NULL;
}

/* ---- DOCA names ------------------------------------------------------ */

/* Families whose DOCA name is not derived by the prefix rules. nvidia-smi
 * names: NetQ's documented whitelist of DTS data. */
static const struct {
    const char *dts;
    const char *doca;
    double scale; /* dts value * scale = nvidia-smi's unit */
} dts_doca_fixed[] = {
    {"dts_gpu_temperature_celsius", "nvidia_smi_temperature_gpu", 1},
    /* nvidia-smi reports utilization in percent, memory in MiB */
    {"dts_gpu_utilization_ratio", "nvidia_smi_utilization_gpu", 100},
    {"dts_gpu_memory_utilization_ratio", "nvidia_smi_utilization_memory", 100},
    {"dts_gpu_memory_used_bytes", "nvidia_smi_memory_used",
     1.0 / (1024 * 1024)},
};

double
dts_view_doca_scale(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(dts_doca_fixed); i++) {
        if (!strcmp(name, dts_doca_fixed[i].dts)) {
            return dts_doca_fixed[i].scale;
        }
    }
    return 1;
}

/* Prefix rules: dts prefix -> DOCA prefix; the counter's own name follows
 * (minus a _total suffix). IB hw_counters carry DOCA's hw_ prefix
 * (NetQ: hw_rp_cnp_handled). */
static const struct {
    const char *dts;
    const char *doca;
} dts_doca_prefix[] = {
    {"dts_net_", ""},     {"dts_ib_hw_", "hw_"}, {"dts_ib_", ""},
    {"dts_ethtool_", ""}, {"dts_app_", ""},
};

const char *
dts_view_doca_name(const char *name, char *buf, size_t size)
{
    for (size_t i = 0; i < ARRAY_SIZE(dts_doca_fixed); i++) {
        if (!strcmp(name, dts_doca_fixed[i].dts)) {
            snprintf(buf, size, "%s", dts_doca_fixed[i].doca);
            return buf;
        }
    }
    /* the app-series bookkeeping keeps its dts name */
    if (!strcmp(name, "dts_app_series") ||
        !strcmp(name, "dts_app_series_expired_total")) {
        return NULL;
    }
    for (size_t i = 0; i < ARRAY_SIZE(dts_doca_prefix); i++) {
        size_t pl = strlen(dts_doca_prefix[i].dts);
        if (strncmp(name, dts_doca_prefix[i].dts, pl) != 0) {
            continue;
        }
        const char *rest = name + pl;
        size_t n = strlen(rest);
        if (str_has_suffix(rest, "_total")) {
            n -= 6;
        }
        if (n == 0) {
            return NULL;
        }
        int w = snprintf(buf, size, "%s%.*s", dts_doca_prefix[i].doca, (int) n,
                         rest);
        if (w < 0 || (size_t) w >= size) {
            return NULL;
        }
        /* a counter whose own name starts with a digit cannot be a
         * Prometheus name: it keeps the dts one */
        if (buf[0] >= '0' && buf[0] <= '9') {
            return NULL;
        }
        return buf;
    }
    return NULL;
}
