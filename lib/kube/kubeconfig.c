/* kubeconfig: see kubeconfig.h. */
#include "lib/kube/kubeconfig.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/util.h"
#include "lib/codecs/yamljson.h"

static int
b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }
    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }
    if (c == '+' || c == '-') {
        return 62;
    }
    if (c == '/' || c == '_') {
        return 63;
    }
    return -1;
}

int
kubeconfig_base64_decode(const char *in, char **out, size_t *out_len)
{
    size_t n = strlen(in);
    char *buf = xmalloc(n / 4 * 3 + 4);
    size_t len = 0;
    unsigned acc = 0;
    int bits = 0;
    bool padding = false;

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) in[i];
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
            continue;
        }
        if (c == '=') {
            padding = true;
            continue;
        }
        int v = b64_value(c);
        if (v < 0 || padding) {
            free(buf);
            return -EINVAL;
        }
        acc = (acc << 6) | (unsigned) v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[len++] = (char) ((acc >> bits) & 0xff);
        }
    }
    if (bits >= 6) { /* a single leftover symbol cannot encode a byte */
        free(buf);
        return -EINVAL;
    }
    buf[len] = '\0';
    *out = buf;
    if (out_len) {
        *out_len = len;
    }
    return 0;
}

static bool
file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

char *
kubeconfig_resolve_path(const char *explicit_path, struct dpf_error *err)
{
    if (explicit_path && *explicit_path) {
        return xstrdup(explicit_path);
    }
    const char *env = getenv("KUBECONFIG");
    if (env && *env) {
        /* kubectl merges every file of the list; we take the first that
         * exists (see the header). */
        char *list = xstrdup(env);
        char *save = NULL;
        for (char *p = strtok_r(list, ":", &save); p;
             p = strtok_r(NULL, ":", &save)) {
            if (*p && file_exists(p)) {
                char *r = xstrdup(p);
                free(list);
                return r;
            }
        }
        free(list);
        dpf_error_set(err, 400, "BadRequest",
                      "no file of $KUBECONFIG (%s) exists", env);
        return NULL;
    }
    const char *home = getenv("HOME");
    if (home && *home) {
        char *p = xasprintf("%s/.kube/config", home);
        if (file_exists(p)) {
            return p;
        }
        free(p);
    }
    dpf_error_set(err, 400, "BadRequest",
                  "no kubeconfig: pass --kubeconfig, set $KUBECONFIG or "
                  "create ~/.kube/config");
    return NULL;
}

/* Find the entry named name in the list at key ("clusters"), returning its
 * inner object (entry[inner]) and its index. */
static json_t *
find_named(const json_t *root, const char *key, const char *inner,
           const char *name, size_t *index)
{
    json_t *list = json_object_get(root, key);
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        const char *n = json_string_value(json_object_get(e, "name"));
        if (n && !strcmp(n, name)) {
            *index = i;
            json_t *o = json_object_get(e, inner);
            return o ? o : json_null();
        }
    }
    return NULL;
}

static const char *
get_str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s && *s ? s : NULL;
}

/* Resolve path relative to the kubeconfig's directory. */
static char *
resolve_rel(const char *kc_path, const char *p)
{
    if (p[0] == '/' || !kc_path) {
        return xstrdup(p);
    }
    if (p[0] == '~' && p[1] == '/' && getenv("HOME")) {
        return xasprintf("%s%s", getenv("HOME"), p + 1);
    }
    const char *slash = strrchr(kc_path, '/');
    if (!slash) {
        return xstrdup(p);
    }
    return xasprintf("%.*s/%s", (int) (slash - kc_path), kc_path, p);
}

/* Load "<field>-data" (base64) or "<field>" (a file) from o into *out. */
static int
load_blob(const char *kc_path, const json_t *o, const char *field,
          const char *where, char **out, size_t *out_len, struct dpf_error *err)
{
    char key[64];
    snprintf(key, sizeof key, "%s-data", field);
    const char *data = get_str(o, key);
    if (data) {
        if (kubeconfig_base64_decode(data, out, out_len) < 0) {
            dpf_error_set(err, 400, "BadRequest",
                          "kubeconfig %s: %s.%s: not valid base64",
                          kc_path ? kc_path : "-", where, key);
            return -EINVAL;
        }
        return 0;
    }
    const char *file = get_str(o, field);
    if (file) {
        char *p = resolve_rel(kc_path, file);
        int r = file_read_all(p, out, out_len);
        if (r < 0) {
            dpf_error_set(err, 400, "BadRequest",
                          "kubeconfig %s: %s.%s: cannot read %s: %s",
                          kc_path ? kc_path : "-", where, field, p,
                          strerror(-r));
            free(p);
            return r;
        }
        free(p);
    }
    return 0;
}

static bool
get_bool(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (json_is_boolean(v)) {
        return json_is_true(v);
    }
    const char *s = json_string_value(v);
    return s && !strcmp(s, "true");
}

static void
strip_token(char *t)
{
    size_t n = strlen(t);
    while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == ' ' ||
                     t[n - 1] == '\t')) {
        t[--n] = '\0';
    }
}

int
kubeconfig_parse(const char *text, size_t len, const char *path,
                 const char *context, struct kubeconfig **out,
                 struct dpf_error *err)
{
    const char *fname = path ? path : "-";
    json_t *root = NULL;
    struct dpf_error perr = {0};
    *out = NULL;

    if (yamljson_parse_one(text, len, &root, &perr) < 0) {
        dpf_error_set(err, 400, "BadRequest", "kubeconfig %s: %s", fname,
                      perr.message);
        return -EINVAL;
    }
    if (!json_is_object(root)) {
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: not a mapping at the top level", fname);
        json_decref(root);
        return -EINVAL;
    }

    struct kubeconfig *kc = xcalloc(1, sizeof *kc);
    int r = -EINVAL;
    char where[96];
    size_t idx = 0;

    kc->path = xstrdup(fname);
    const char *ctx_name = context ? context : get_str(root, "current-context");
    if (!ctx_name) {
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: current-context is not set (and no "
                      "--context given)",
                      fname);
        goto fail;
    }
    kc->context = xstrdup(ctx_name);
    json_t *ctx = find_named(root, "contexts", "context", ctx_name, &idx);
    if (!ctx) {
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: context \"%s\" not found in contexts",
                      fname, ctx_name);
        goto fail;
    }
    const char *cluster_name = get_str(ctx, "cluster");
    if (!cluster_name) {
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: contexts[%zu].context.cluster is "
                      "missing (context \"%s\")",
                      fname, idx, ctx_name);
        goto fail;
    }
    kc->cluster_name = xstrdup(cluster_name);
    const char *ns = get_str(ctx, "namespace");
    kc->namespace = xstrdup(ns ? ns : "default");

    json_t *cl = find_named(root, "clusters", "cluster", cluster_name, &idx);
    if (!cl) {
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: cluster \"%s\" (of context \"%s\") not "
                      "found in clusters",
                      fname, cluster_name, ctx_name);
        goto fail;
    }
    snprintf(where, sizeof where, "clusters[%zu].cluster", idx);
    const char *server = get_str(cl, "server");
    if (!server) {
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: %s.server is missing (cluster \"%s\")",
                      fname, where, cluster_name);
        goto fail;
    }
    if (!str_has_prefix(server, "https://") &&
        !str_has_prefix(server, "http://")) {
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: %s.server \"%s\": expected an "
                      "https:// or http:// URL",
                      fname, where, server);
        goto fail;
    }
    kc->server = xstrdup(server);
    size_t sl = strlen(kc->server);
    while (sl > 0 && kc->server[sl - 1] == '/') {
        kc->server[--sl] = '\0';
    }
    kc->insecure_skip_tls_verify = get_bool(cl, "insecure-skip-tls-verify");
    const char *sni = get_str(cl, "tls-server-name");
    kc->tls_server_name = sni ? xstrdup(sni) : NULL;
    if ((r = load_blob(path, cl, "certificate-authority", where, &kc->ca_pem,
                       &kc->ca_len, err)) < 0) {
        goto fail;
    }
    r = -EINVAL;

    const char *user_name = get_str(ctx, "user");
    if (user_name) {
        kc->user_name = xstrdup(user_name);
        json_t *u = find_named(root, "users", "user", user_name, &idx);
        if (!u) {
            dpf_error_set(err, 400, "BadRequest",
                          "kubeconfig %s: user \"%s\" (of context \"%s\") "
                          "not found in users",
                          fname, user_name, ctx_name);
            goto fail;
        }
        snprintf(where, sizeof where, "users[%zu].user", idx);
        if ((r = load_blob(path, u, "client-certificate", where, &kc->cert_pem,
                           &kc->cert_len, err)) < 0 ||
            (r = load_blob(path, u, "client-key", where, &kc->key_pem,
                           &kc->key_len, err)) < 0) {
            goto fail;
        }
        r = -EINVAL;
        if (!kc->cert_pem != !kc->key_pem) {
            dpf_error_set(err, 400, "BadRequest",
                          "kubeconfig %s: %s.%s is missing (a client "
                          "certificate needs its key and vice versa)",
                          fname, where,
                          kc->cert_pem ? "client-key-data"
                                       : "client-certificate-data");
            goto fail;
        }
        const char *token = get_str(u, "token");
        const char *token_file = get_str(u, "tokenFile");
        if (!token_file) {
            token_file = get_str(u, "token-file");
        }
        if (token) {
            kc->token = xstrdup(token);
        } else if (token_file) {
            char *p = resolve_rel(path, token_file);
            size_t tl;
            int rr = file_read_all(p, &kc->token, &tl);
            if (rr < 0) {
                dpf_error_set(err, 400, "BadRequest",
                              "kubeconfig %s: %s.tokenFile: cannot read %s: "
                              "%s",
                              fname, where, p, strerror(-rr));
                free(p);
                r = rr;
                goto fail;
            }
            free(p);
            strip_token(kc->token);
        }
    }
    json_decref(root);
    *out = kc;
    return 0;

fail:
    json_decref(root);
    kubeconfig_free(kc);
    return r;
}

int
kubeconfig_load(const struct kubeconfig_options *opts, struct kubeconfig **out,
                struct dpf_error *err)
{
    *out = NULL;
    char *path = kubeconfig_resolve_path(opts ? opts->path : NULL, err);
    if (!path) {
        return -ENOENT;
    }
    char *text = NULL;
    size_t len = 0;
    int r = file_read_all(path, &text, &len);
    if (r < 0) {
        dpf_error_set(err, 400, "BadRequest", "kubeconfig %s: %s", path,
                      strerror(-r));
        free(path);
        return r;
    }
    r = kubeconfig_parse(text, len, path, opts ? opts->context : NULL, out,
                         err);
    free(text);
    free(path);
    return r;
}

static void
wipe_free(char *p, size_t n)
{
    if (p) {
        explicit_bzero(p, n);
        free(p);
    }
}

void
kubeconfig_free(struct kubeconfig *kc)
{
    if (!kc) {
        return;
    }
    free(kc->path);
    free(kc->context);
    free(kc->cluster_name);
    free(kc->user_name);
    free(kc->server);
    free(kc->namespace);
    free(kc->tls_server_name);
    free(kc->ca_pem);
    free(kc->cert_pem);
    wipe_free(kc->key_pem, kc->key_len);
    wipe_free(kc->token, kc->token ? strlen(kc->token) : 0);
    free(kc);
}
