/* kubeconfig: see kubeconfig.h. */
#include "lib/kube/kubeconfig.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lib/base/util.h"
#include "lib/codecs/yamljson.h"
#include "lib/base/base64.h"

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
        if (base64_decode(data, strlen(data), BASE64_LENIENT, out, out_len) <
            0) {
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

/* client-go trims a tokenFile's content (strings.TrimSpace). */
static void
strip_token(char *t)
{
    size_t n = strlen(t);
    while (n > 0 && (t[n - 1] == '\n' || t[n - 1] == '\r' || t[n - 1] == ' ' ||
                     t[n - 1] == '\t')) {
        t[--n] = '\0';
    }
    size_t lead = strspn(t, " \t\r\n");
    if (lead) {
        memmove(t, t + lead, n - lead + 1);
    }
}

long
kubeconfig_find_ctl(const char *s)
{
    for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return (long) (p - (const unsigned char *) s);
        }
    }
    return -1;
}

/* Name of a control character for messages. */
static const char *
ctl_name(unsigned char c, char *buf, size_t size)
{
    switch (c) {
    case '\r':
        return "CR";
    case '\n':
        return "LF";
    case '\t':
        return "TAB";
    default:
        snprintf(buf, size, "0x%02x", c);
        return buf;
    }
}

/* Refuse a secret that would break the header it goes into. */
static int
check_header_value(const char *fname, const char *where, const char *field,
                   const char *user, const char *v, struct dpf_error *err)
{
    long i = kubeconfig_find_ctl(v);
    if (i < 0) {
        return 0;
    }
    char nb[8];
    dpf_error_set(err, 400, "BadRequest",
                  "kubeconfig %s: %s.%s of user \"%s\" contains a control "
                  "character (%s at offset %ld); refusing to send it",
                  fname, where, field, user,
                  ctl_name((unsigned char) v[i], nb, sizeof nb), i);
    return -EINVAL;
}

/* The value of the extension named name in o's extensions list. */
static json_t *
find_extension(const json_t *o, const char *name)
{
    json_t *list = json_object_get(o, "extensions");
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e)
    {
        const char *n = json_string_value(json_object_get(e, "name"));
        if (n && !strcmp(n, name)) {
            json_t *v = json_object_get(e, "extension");
            return v ? v : json_null();
        }
    }
    return NULL;
}

/* spec.cluster of KUBERNETES_EXEC_INFO: client-go's clientauthentication
 * Cluster in its field order, empty fields left out as Go's omitempty
 * does (config is a RawExtension and always present, null when unset). */
static char *
exec_cluster_json(const struct kubeconfig *kc, const char *server,
                  const json_t *cl)
{
    json_t *c = json_object();
    json_object_set_new(c, "server", json_string(server));
    if (kc->tls_server_name) {
        json_object_set_new(c, "tls-server-name",
                            json_string(kc->tls_server_name));
    }
    if (kc->insecure_skip_tls_verify) {
        json_object_set_new(c, "insecure-skip-tls-verify", json_true());
    }
    if (kc->ca_pem && kc->ca_len) {
        char *b = base64_encode(kc->ca_pem, kc->ca_len, BASE64_STD);
        json_object_set_new(c, "certificate-authority-data", json_string(b));
        free(b);
    }
    if (get_bool(cl, "disable-compression")) {
        json_object_set_new(c, "disable-compression", json_true());
    }
    json_t *ext = find_extension(cl, "client.authentication.k8s.io/exec");
    json_object_set(c, "config", ext ? ext : json_null());
    char *r = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    return r;
}

/* users[].user.exec -> kc->exec, checked as client-go's clientcmd
 * validation and exec authenticator check it. */
static int
parse_exec(const char *kc_path, const char *where, const char *user,
           const json_t *ex, struct kubeconfig *kc, const char *server,
           const json_t *cl, struct dpf_error *err)
{
    const char *fname = kc_path ? kc_path : "-";
    if (!json_is_object(ex)) {
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: %s.exec: expected a mapping", fname,
                      where);
        return -EINVAL;
    }
    const char *cmd = get_str(ex, "command");
    const char *apiv = get_str(ex, "apiVersion");
    if (!cmd) {
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: %s.exec.command: command must be "
                      "specified for %s to use exec authentication plugin",
                      fname, where, user);
        return -EINVAL;
    }
    if (!apiv) {
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: %s.exec.apiVersion: apiVersion must be "
                      "specified for %s to use exec authentication plugin",
                      fname, where, user);
        return -EINVAL;
    }
    bool v1 = !strcmp(apiv, "client.authentication.k8s.io/v1");
    if (!v1 && strcmp(apiv, "client.authentication.k8s.io/v1beta1") != 0) {
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: %s.exec.apiVersion: exec plugin: "
                      "invalid apiVersion \"%s\" (expected "
                      "client.authentication.k8s.io/v1 or v1beta1)",
                      fname, where, apiv);
        return -EINVAL;
    }
    const char *mode = get_str(ex, "interactiveMode");
    enum kubeconfig_exec_interactive im;
    if (!mode && !v1) {
        im = KUBECONFIG_EXEC_IF_AVAILABLE; /* client-go's v1beta1 default */
    } else if (!mode) {
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: %s.exec.interactiveMode: "
                      "interactiveMode must be specified for %s to use exec "
                      "authentication plugin (Never, IfAvailable or Always)",
                      fname, where, user);
        return -EINVAL;
    } else if (!strcmp(mode, "Never")) {
        im = KUBECONFIG_EXEC_NEVER;
    } else if (!strcmp(mode, "IfAvailable")) {
        im = KUBECONFIG_EXEC_IF_AVAILABLE;
    } else if (!strcmp(mode, "Always")) {
        im = KUBECONFIG_EXEC_ALWAYS;
    } else {
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: %s.exec.interactiveMode: invalid "
                      "interactiveMode for %s: \"%s\" (expected Never, "
                      "IfAvailable or Always)",
                      fname, where, user, mode);
        return -EINVAL;
    }
    json_t *args = json_object_get(ex, "args");
    json_t *env = json_object_get(ex, "env");
    if ((args && !json_is_array(args) && !json_is_null(args)) ||
        (env && !json_is_array(env) && !json_is_null(env))) {
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: %s.exec.%s: expected a list", fname,
                      where, args && !json_is_array(args) ? "args" : "env");
        return -EINVAL;
    }
    struct kubeconfig_exec *x = xcalloc(1, sizeof *x);
    kc->exec = x;
    x->user = xstrdup(user);
    x->path = xstrdup(fname);
    x->api_version = xstrdup(apiv);
    x->interactive = im;
    /* a command with a '/' is a path, relative to the kubeconfig's
     * directory; a bare name is looked up in $PATH (client-go's rule) */
    x->command = strchr(cmd, '/') ? resolve_rel(kc_path, cmd) : xstrdup(cmd);
    x->argv = xcalloc(json_array_size(args) + 2, sizeof *x->argv);
    x->argv[x->argc++] = xstrdup(x->command);
    size_t i;
    json_t *a;
    json_array_foreach(args, i, a)
    {
        if (!json_is_string(a)) {
            dpf_error_set(err, 400, "BadRequest",
                          "kubeconfig %s: %s.exec.args[%zu]: expected a "
                          "string",
                          fname, where, i);
            return -EINVAL;
        }
        x->argv[x->argc++] = xstrdup(json_string_value(a));
    }
    x->env = xcalloc(json_array_size(env) + 1, sizeof *x->env);
    json_array_foreach(env, i, a)
    {
        const char *n = json_string_value(json_object_get(a, "name"));
        json_t *jv = json_object_get(a, "value");
        if (!n || !*n) {
            dpf_error_set(err, 400, "BadRequest",
                          "kubeconfig %s: %s.exec.env[%zu].name: env "
                          "variable name must be specified for %s to use "
                          "exec authentication plugin",
                          fname, where, i, user);
            return -EINVAL;
        }
        if (strchr(n, '=')) {
            dpf_error_set(err, 400, "BadRequest",
                          "kubeconfig %s: %s.exec.env[%zu].name: \"%s\" "
                          "contains '='",
                          fname, where, i, n);
            return -EINVAL;
        }
        if (jv && !json_is_string(jv) && !json_is_null(jv)) {
            dpf_error_set(err, 400, "BadRequest",
                          "kubeconfig %s: %s.exec.env[%zu].value: expected "
                          "a string",
                          fname, where, i);
            return -EINVAL;
        }
        const char *v = json_string_value(jv);
        x->env[x->n_env++] = xasprintf("%s=%s", n, v ? v : "");
    }
    const char *hint = get_str(ex, "installHint");
    x->install_hint = hint ? xstrdup(hint) : NULL;
    x->provide_cluster_info = get_bool(ex, "provideClusterInfo");
    if (x->provide_cluster_info) {
        x->cluster_json = exec_cluster_json(kc, server, cl);
    }
    return 0;
}

/* The users[] entry: credentials, checked as client-go checks them. */
static int
parse_user(const char *path, const char *where, const char *user,
           const json_t *u, struct kubeconfig *kc, const char *server,
           const json_t *cl, struct dpf_error *err)
{
    const char *fname = path ? path : "-";
    int r;
    if ((r = load_blob(path, u, "client-certificate", where, &kc->cert_pem,
                       &kc->cert_len, err)) < 0 ||
        (r = load_blob(path, u, "client-key", where, &kc->key_pem, &kc->key_len,
                       err)) < 0) {
        return r;
    }
    if (!kc->cert_pem != !kc->key_pem) {
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: %s.%s is missing (a client "
                      "certificate needs its key and vice versa)",
                      fname, where,
                      kc->cert_pem ? "client-key-data"
                                   : "client-certificate-data");
        return -EINVAL;
    }
    if (json_object_get(u, "auth-provider")) {
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: %s.auth-provider (user \"%s\"): auth "
                      "provider plugins are not supported; use an exec "
                      "credential plugin (users[].user.exec)",
                      fname, where, user);
        return -EINVAL;
    }
    const char *token = get_str(u, "token");
    const char *token_file = get_str(u, "tokenFile");
    if (!token_file) {
        token_file = get_str(u, "token-file");
    }
    const char *uname = get_str(u, "username");
    const char *pw = get_str(u, "password");
    if ((token || token_file) && (uname || pw)) {
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: %s: more than one authentication "
                      "method found for %s; found [token basicAuth], only "
                      "one is allowed",
                      fname, where, user);
        return -EINVAL;
    }
    char *file_token = NULL;
    size_t tl = 0;
    if (token_file) {
        /* client-go: the file's content wins over token; token is the
         * fallback while the file cannot be read */
        char *p = resolve_rel(path, token_file);
        r = file_read_all(p, &file_token, &tl);
        if (r < 0 && !token) {
            dpf_error_set(err, 400, "BadRequest",
                          "kubeconfig %s: %s.tokenFile: cannot read %s: %s",
                          fname, where, p, strerror(-r));
            free(p);
            return r;
        }
        free(p);
    }
    if (file_token) {
        kc->token = file_token;
        if (strlen(kc->token) != tl) {
            dpf_error_set(err, 400, "BadRequest",
                          "kubeconfig %s: %s.tokenFile of user \"%s\" "
                          "contains a NUL byte; refusing to send it",
                          fname, where, user);
            return -EINVAL;
        }
        strip_token(kc->token);
        if ((r = check_header_value(fname, where, "tokenFile", user, kc->token,
                                    err)) < 0) {
            return r;
        }
    } else if (token) {
        if ((r = check_header_value(fname, where, "token", user, token, err)) <
            0) {
            return r;
        }
        kc->token = xstrdup(token);
    }
    if (uname || pw) {
        if ((r = check_header_value(fname, where, "username", user,
                                    uname ? uname : "", err)) < 0 ||
            (r = check_header_value(fname, where, "password", user,
                                    pw ? pw : "", err)) < 0) {
            return r;
        }
        if (uname && strchr(uname, ':')) {
            dpf_error_set(err, 400, "BadRequest",
                          "kubeconfig %s: %s.username of user \"%s\" "
                          "contains ':', which basic authentication cannot "
                          "carry",
                          fname, where, user);
            return -EINVAL;
        }
        kc->username = xstrdup(uname ? uname : "");
        kc->password = xstrdup(pw ? pw : "");
    }
    json_t *ex = json_object_get(u, "exec");
    if (ex && !json_is_null(ex)) {
        return parse_exec(path, where, user, ex, kc, server, cl, err);
    }
    return 0;
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
    if (kubeconfig_find_ctl(server) >= 0 || strchr(server, ' ')) {
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: %s.server: contains a space or a "
                      "control character",
                      fname, where);
        goto fail;
    }
    kc->server = xstrdup(server);
    size_t sl = strlen(kc->server);
    while (sl > 0 && kc->server[sl - 1] == '/') {
        kc->server[--sl] = '\0';
    }
    kc->insecure_skip_tls_verify = get_bool(cl, "insecure-skip-tls-verify");
    kc->allow_plaintext_credentials =
        find_extension(cl, KUBECONFIG_EXT_PLAINTEXT) != NULL;
    const char *sni = get_str(cl, "tls-server-name");
    if (sni && (kubeconfig_find_ctl(sni) >= 0 || strpbrk(sni, " /:@?#"))) {
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: %s.tls-server-name \"%s\": not a host "
                      "name",
                      fname, where, sni);
        goto fail;
    }
    kc->tls_server_name = sni ? xstrdup(sni) : NULL;
    if ((r = load_blob(path, cl, "certificate-authority", where, &kc->ca_pem,
                       &kc->ca_len, err)) < 0) {
        goto fail;
    }
    r = -EINVAL;
    if (kc->insecure_skip_tls_verify && kc->ca_pem) {
        /* client-go refuses this combination rather than guess which of
         * the two the user meant */
        dpf_error_set(err, 400, "BadRequest",
                      "kubeconfig %s: %s (cluster \"%s\"): specifying a root "
                      "certificates file with the insecure flag is not "
                      "allowed (insecure-skip-tls-verify is true and "
                      "certificate-authority%s is set)",
                      fname, where, cluster_name,
                      get_str(cl, "certificate-authority-data") ? "-data" : "");
        goto fail;
    }

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
        if ((r = parse_user(path, where, user_name, u, kc, server, cl, err)) <
            0) {
            goto fail;
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

/* Free (secrets wiped) and clear what reaching the server over TLS and
 * proving who we are takes: the TLS settings and every credential. */
static void
kc_clear_tls_and_credentials(struct kubeconfig *kc)
{
    free(kc->tls_server_name);
    kc->tls_server_name = NULL;
    kc->insecure_skip_tls_verify = false;
    free(kc->ca_pem);
    kc->ca_pem = NULL;
    kc->ca_len = 0;
    free(kc->cert_pem);
    kc->cert_pem = NULL;
    kc->cert_len = 0;
    wipe_free(kc->key_pem, kc->key_len);
    kc->key_pem = NULL;
    kc->key_len = 0;
    wipe_free(kc->token, kc->token ? strlen(kc->token) : 0);
    kc->token = NULL;
    free(kc->username);
    kc->username = NULL;
    wipe_free(kc->password, kc->password ? strlen(kc->password) : 0);
    kc->password = NULL;
    kubeconfig_exec_free(kc->exec);
    kc->exec = NULL;
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
    kc_clear_tls_and_credentials(kc);
    free(kc->unix_socket);
    free(kc);
}

void
kubeconfig_use_unix_socket(struct kubeconfig *kc, const char *path)
{
    free(kc->unix_socket);
    kc->unix_socket = xstrdup(path);
    free(kc->server);
    kc->server = xstrdup("http://localhost");
    kc_clear_tls_and_credentials(kc);
}

struct kubeconfig *
kubeconfig_dup(const struct kubeconfig *kc)
{
    struct kubeconfig *r = xcalloc(1, sizeof *r);
    *r = *kc; /* lengths and flags; every pointer is replaced below */
    r->path = xstrdup(kc->path);
    r->context = xstrdup(kc->context);
    r->cluster_name = xstrdup(kc->cluster_name);
    r->user_name = xstrdup(kc->user_name);
    r->server = xstrdup(kc->server);
    r->namespace = xstrdup(kc->namespace);
    r->tls_server_name = xstrdup(kc->tls_server_name);
    r->ca_pem = kc->ca_pem ? xstrndup(kc->ca_pem, kc->ca_len) : NULL;
    r->cert_pem = kc->cert_pem ? xstrndup(kc->cert_pem, kc->cert_len) : NULL;
    r->key_pem = kc->key_pem ? xstrndup(kc->key_pem, kc->key_len) : NULL;
    r->token = xstrdup(kc->token);
    r->username = xstrdup(kc->username);
    r->password = xstrdup(kc->password);
    r->exec = kubeconfig_exec_dup(kc->exec);
    r->unix_socket = xstrdup(kc->unix_socket);
    return r;
}

/* --- exec credential plugins --- */

static char **
strv_dup(char *const *v, size_t n)
{
    char **r = xcalloc(n + 1, sizeof *r);
    for (size_t i = 0; i < n; i++) {
        r[i] = xstrdup(v[i]);
    }
    return r;
}

static void
strv_free(char **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i]);
    }
    free(v);
}

static char *
dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

struct kubeconfig_exec *
kubeconfig_exec_dup(const struct kubeconfig_exec *x)
{
    if (!x) {
        return NULL;
    }
    struct kubeconfig_exec *r = xcalloc(1, sizeof *r);
    r->user = dup_or_null(x->user);
    r->path = dup_or_null(x->path);
    r->api_version = dup_or_null(x->api_version);
    r->command = dup_or_null(x->command);
    r->argv = strv_dup(x->argv, x->argc);
    r->argc = x->argc;
    r->env = strv_dup(x->env, x->n_env);
    r->n_env = x->n_env;
    r->install_hint = dup_or_null(x->install_hint);
    r->provide_cluster_info = x->provide_cluster_info;
    r->interactive = x->interactive;
    r->cluster_json = dup_or_null(x->cluster_json);
    return r;
}

void
kubeconfig_exec_free(struct kubeconfig_exec *x)
{
    if (!x) {
        return;
    }
    free(x->user);
    free(x->path);
    free(x->api_version);
    free(x->command);
    strv_free(x->argv, x->argc);
    /* env values may carry secrets handed to the plugin */
    for (size_t i = 0; i < x->n_env; i++) {
        wipe_free(x->env[i], strlen(x->env[i]));
    }
    free(x->env);
    free(x->install_hint);
    free(x->cluster_json);
    free(x);
}

void
kubeconfig_credential_clear(struct kubeconfig_credential *cred)
{
    if (!cred) {
        return;
    }
    wipe_free(cred->token, cred->token ? strlen(cred->token) : 0);
    free(cred->cert_pem);
    wipe_free(cred->key_pem, cred->key_len);
    memset(cred, 0, sizeof *cred);
}

char *
kubeconfig_exec_info(const struct kubeconfig_exec *x, bool interactive)
{
    /* TypeMeta first, then spec with cluster before interactive: the
     * order of client-go's encoding */
    json_t *o = json_object();
    json_object_set_new(o, "kind", json_string("ExecCredential"));
    json_object_set_new(o, "apiVersion", json_string(x->api_version));
    json_t *spec = json_object();
    if (x->provide_cluster_info && x->cluster_json) {
        json_t *c = json_loads(x->cluster_json, 0, NULL);
        if (c) {
            json_object_set_new(spec, "cluster", c);
        }
    }
    json_object_set_new(spec, "interactive", json_boolean(interactive));
    json_object_set_new(o, "spec", spec);
    char *j = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    char *r = xasprintf("%s\n", j); /* Go's encoder ends with a newline */
    free(j);
    return r;
}

/* RFC 3339 ("2026-11-22T03:56:27Z", fraction and offset allowed), as a
 * metav1.Time is written. */
static int
parse_rfc3339(const char *s, int64_t *ns)
{
    struct tm tm = {0};
    const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!p) {
        return -EINVAL;
    }
    int64_t frac = 0;
    if (*p == '.') {
        int64_t scale = 100000000;
        p++;
        if (!isdigit((unsigned char) *p)) {
            return -EINVAL;
        }
        for (; isdigit((unsigned char) *p); p++) {
            frac += (*p - '0') * scale;
            scale /= 10;
        }
    }
    long off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm;
        if (!isdigit((unsigned char) p[1]) || !isdigit((unsigned char) p[2]) ||
            p[3] != ':' || !isdigit((unsigned char) p[4]) ||
            !isdigit((unsigned char) p[5])) {
            return -EINVAL;
        }
        hh = (p[1] - '0') * 10 + (p[2] - '0');
        mm = (p[4] - '0') * 10 + (p[5] - '0');
        off = (hh * 3600L + mm * 60L) * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return -EINVAL;
    }
    if (*p) {
        return -EINVAL;
    }
    time_t t = timegm(&tm);
    if (t == (time_t) -1) {
        return -EINVAL;
    }
    *ns = ((int64_t) t - off) * 1000000000LL + frac;
    return 0;
}

/* Do the certificate and key parse as PEM and belong together? */
static bool
pem_pair_ok(const char *cert, size_t cert_len, const char *key, size_t key_len)
{
    BIO *cb = BIO_new_mem_buf(cert, (int) cert_len);
    BIO *kb = BIO_new_mem_buf(key, (int) key_len);
    X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
    EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
    bool ok = x && k && X509_check_private_key(x, k) == 1;
    X509_free(x);
    EVP_PKEY_free(k);
    BIO_free(cb);
    BIO_free(kb);
    ERR_clear_error();
    return ok;
}

int
kubeconfig_exec_decode(const struct kubeconfig_exec *x, const char *out,
                       size_t len, struct kubeconfig_credential *cred,
                       struct dpf_error *err)
{
    memset(cred, 0, sizeof *cred);
    json_error_t jerr;
    json_t *o = json_loadb(out, len, 0, &jerr);
    const char *user = x->user ? x->user : "";
    int r = -EACCES;
    if (!json_is_object(o)) {
        dpf_error_set(err, 401, "ClientError",
                      "getting credentials for user \"%s\": exec plugin %s: "
                      "decoding stdout: %s",
                      user, x->command, o ? "not a JSON object" : jerr.text);
        goto out;
    }
    const char *kind = json_string_value(json_object_get(o, "kind"));
    const char *apiv = json_string_value(json_object_get(o, "apiVersion"));
    if (!kind || strcmp(kind, "ExecCredential") != 0) {
        dpf_error_set(err, 401, "ClientError",
                      "getting credentials for user \"%s\": exec plugin %s: "
                      "decoding stdout: kind is \"%s\", expected "
                      "ExecCredential",
                      user, x->command, kind ? kind : "");
        goto out;
    }
    if (!apiv || strcmp(apiv, x->api_version) != 0) {
        dpf_error_set(err, 401, "ClientError",
                      "getting credentials for user \"%s\": exec plugin is "
                      "configured to use API version %s, plugin returned "
                      "version %s",
                      user, x->api_version, apiv ? apiv : "\"\"");
        goto out;
    }
    json_t *st = json_object_get(o, "status");
    if (!json_is_object(st)) {
        dpf_error_set(err, 401, "ClientError",
                      "getting credentials for user \"%s\": exec plugin "
                      "didn't return a status field",
                      user);
        goto out;
    }
    const char *tok = get_str(st, "token");
    const char *crt = get_str(st, "clientCertificateData");
    const char *key = get_str(st, "clientKeyData");
    json_t *exp = json_object_get(st, "expirationTimestamp");
    if (!tok && !crt && !key) {
        dpf_error_set(err, 401, "ClientError",
                      "getting credentials for user \"%s\": exec plugin "
                      "didn't return a token or cert/key pair",
                      user);
        goto out;
    }
    if (!crt != !key) {
        dpf_error_set(err, 401, "ClientError",
                      "getting credentials for user \"%s\": exec plugin "
                      "returned only certificate or key, not both",
                      user);
        goto out;
    }
    long bad = tok ? kubeconfig_find_ctl(tok) : -1;
    if (bad >= 0) {
        char nb[8];
        dpf_error_set(err, 401, "ClientError",
                      "getting credentials for user \"%s\": exec plugin "
                      "returned a token with a control character (%s at "
                      "offset %ld); refusing to send it",
                      user, ctl_name((unsigned char) tok[bad], nb, sizeof nb),
                      bad);
        goto out;
    }
    if (crt && !pem_pair_ok(crt, strlen(crt), key, strlen(key))) {
        dpf_error_set(err, 401, "ClientError",
                      "getting credentials for user \"%s\": exec plugin "
                      "returned a client certificate and key that are not "
                      "a matching PEM pair",
                      user);
        goto out;
    }
    if (exp && !json_is_null(exp)) {
        const char *es = json_string_value(exp);
        if (!es || parse_rfc3339(es, &cred->expiry_ns) < 0) {
            dpf_error_set(err, 401, "ClientError",
                          "getting credentials for user \"%s\": exec plugin "
                          "%s: decoding stdout: status.expirationTimestamp: "
                          "not an RFC 3339 time",
                          user, x->command);
            cred->expiry_ns = 0;
            goto out;
        }
    }
    cred->token = dup_or_null(tok);
    if (crt) {
        cred->cert_pem = xstrdup(crt);
        cred->cert_len = strlen(crt);
        cred->key_pem = xstrdup(key);
        cred->key_len = strlen(key);
    }
    r = 0;
out:
    json_decref(o);
    return r;
}

/* The environment of a plugin: ours, then exec.env, then
 * KUBERNETES_EXEC_INFO; a later entry replaces an earlier one of the same
 * name (Go's os/exec keeps the last duplicate). Entries are borrowed. */
static char **
exec_envp(const struct kubeconfig_exec *x, char *info_entry)
{
    size_t n = 0;
    for (char **e = environ; e && *e; e++) {
        n++;
    }
    char *const *extra = x->env;
    size_t n_extra = x->n_env;
    char **v = xcalloc(n + n_extra + 2, sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < n + n_extra + 1; i++) {
        char *e = i < n             ? environ[i]
                  : i < n + n_extra ? extra[i - n]
                                    : info_entry;
        size_t nl = strcspn(e, "=");
        bool replaced = false;
        for (size_t j = (i < n ? 0 : i - n + 1); j < n_extra + 1 && !replaced;
             j++) {
            const char *later = j < n_extra ? extra[j] : info_entry;
            replaced = strcspn(later, "=") == nl && !strncmp(later, e, nl);
        }
        if (!replaced) {
            v[k++] = e;
        }
    }
    v[k] = NULL;
    return v;
}

/* "<what>" plus the plugin's stderr (its tail) and the install hint. */
static void exec_fail(struct dpf_error *err, const struct kubeconfig_exec *x,
                      const struct dbuf *eb, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
exec_fail(struct dpf_error *err, const struct kubeconfig_exec *x,
          const struct dbuf *eb, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const char *tail = "";
    size_t tl = eb ? eb->len : 0;
    while (tl > 0 && (eb->data[tl - 1] == '\n' || eb->data[tl - 1] == '\r')) {
        tl--;
    }
    const char *more = "";
    if (tl > 0) {
        tail = eb->data;
        if (tl > KUBECONFIG_EXEC_STDERR_TAIL) {
            tail += tl - KUBECONFIG_EXEC_STDERR_TAIL;
            tl = KUBECONFIG_EXEC_STDERR_TAIL;
            more = "...";
        }
    }
    dpf_error_set(err, 401, "ClientError",
                  "getting credentials for user \"%s\": %s%s%s%.*s%s%s",
                  x->user ? x->user : "", what, tl ? "\nplugin stderr: " : "",
                  more, (int) tl, tail, x->install_hint ? "\n" : "",
                  x->install_hint ? x->install_hint : "");
}

/* Read what fd has into b (at most cap bytes kept; the rest is counted in
 * *dropped). Returns false at end of file or on an error. */
static bool
drain(int fd, struct dbuf *b, size_t cap, size_t *dropped)
{
    char buf[4096];
    ssize_t r = read(fd, buf, sizeof buf);
    if (r < 0) {
        return errno == EINTR || errno == EAGAIN;
    }
    if (r == 0) {
        return false;
    }
    size_t keep = (size_t) r;
    if (b->len + keep > cap) {
        keep = b->len < cap ? cap - b->len : 0;
        *dropped += (size_t) r - keep;
    }
    dbuf_append(b, buf, keep);
    return true;
}

int
kubeconfig_exec_run(const struct kubeconfig_exec *x,
                    const struct kubeconfig_exec_options *o,
                    struct kubeconfig_credential *cred, struct dpf_error *err)
{
    static const struct kubeconfig_exec_options defaults;
    if (!o) {
        o = &defaults;
    }
    memset(cred, 0, sizeof *cred);
    bool tty = isatty(o->stdin_fd) == 1;
    bool interactive = false;
    switch (x->interactive) {
    case KUBECONFIG_EXEC_NEVER:
        break;
    case KUBECONFIG_EXEC_IF_AVAILABLE:
        interactive = tty && !o->stdin_unavailable;
        break;
    case KUBECONFIG_EXEC_ALWAYS:
        if (!tty || o->stdin_unavailable) {
            exec_fail(err, x, NULL,
                      "exec plugin cannot support interactive mode: %s "
                      "(interactiveMode is Always)",
                      !tty ? "standard input is not a terminal"
                           : "standard input is unavailable");
            return -EINVAL;
        }
        interactive = true;
        break;
    }
    long timeout = o->timeout_ms > 0 ? o->timeout_ms
                   : interactive     ? KUBECONFIG_EXEC_TIMEOUT_TTY_MS
                                     : KUBECONFIG_EXEC_TIMEOUT_MS;
    size_t max_out = o->max_output ? o->max_output : KUBECONFIG_EXEC_MAX_OUTPUT;

    char *info = kubeconfig_exec_info(x, interactive);
    char *info_entry = xasprintf("KUBERNETES_EXEC_INFO=%s", info);
    free(info);
    char **envp = exec_envp(x, info_entry);
    int out_p[2] = {-1, -1}, err_p[2] = {-1, -1};
    int r = 0;
    pid_t pid = -1;
    struct dbuf ob, eb;
    dbuf_init(&ob);
    dbuf_init(&eb);
    if (pipe2(out_p, O_CLOEXEC) < 0 ||
        (!interactive && pipe2(err_p, O_CLOEXEC) < 0)) {
        r = -errno;
        exec_fail(err, x, NULL, "exec: pipe: %s", strerror(-r));
        goto out;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    sigset_t none, def;
    sigemptyset(&none);
    sigemptyset(&def);
    sigaddset(&def, SIGPIPE);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &def);
    if (interactive) {
        /* the plugin talks to the user: our terminal, our stderr, and our
         * process group so it may read the terminal */
        if (o->stdin_fd != STDIN_FILENO) {
            posix_spawn_file_actions_adddup2(&fa, o->stdin_fd, STDIN_FILENO);
        }
    } else {
        /* its own process group, so a timeout ends its children too */
        flags |= POSIX_SPAWN_SETPGROUP;
        posix_spawnattr_setpgroup(&at, 0);
        posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null",
                                         O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, err_p[1], STDERR_FILENO);
    }
    posix_spawn_file_actions_adddup2(&fa, out_p[1], STDOUT_FILENO);
    posix_spawnattr_setflags(&at, flags);
    int rc = strchr(x->command, '/')
                 ? posix_spawn(&pid, x->command, &fa, &at, x->argv, envp)
                 : posix_spawnp(&pid, x->command, &fa, &at, x->argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(out_p[1]);
    out_p[1] = -1;
    if (err_p[1] >= 0) {
        close(err_p[1]);
        err_p[1] = -1;
    }
    if (rc == ENOENT) {
        exec_fail(err, x, NULL,
                  "exec: executable %s not found\n\nIt looks like the "
                  "credential plugin of this kubeconfig user is not "
                  "installed.",
                  x->command);
        r = -ENOENT;
        goto out;
    }
    if (rc != 0) {
        exec_fail(err, x, NULL, "exec: cannot run %s: %s", x->command,
                  strerror(rc));
        r = -rc;
        goto out;
    }

    int pidfd = pidfd_open(pid, 0);
    bool out_open = true, err_open = err_p[0] >= 0, exited = pidfd < 0;
    bool timed_out = false, too_much = false;
    size_t out_dropped = 0, err_dropped = 0;
    int64_t deadline = time_mono_ms() + timeout;
    while (out_open || err_open || !exited) {
        struct pollfd pf[3];
        int n = 0, i_out = -1, i_err = -1, i_pid = -1;
        if (out_open) {
            pf[i_out = n++] = (struct pollfd){.fd = out_p[0], .events = POLLIN};
        }
        if (err_open) {
            pf[i_err = n++] = (struct pollfd){.fd = err_p[0], .events = POLLIN};
        }
        if (!exited) {
            pf[i_pid = n++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        }
        int64_t left = deadline - time_mono_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        int pr =
            poll(pf, (nfds_t) n, (int) (left > INT32_MAX ? INT32_MAX : left));
        if (pr < 0 && errno != EINTR) {
            timed_out = true; /* cannot wait: treat as a hang */
            break;
        }
        if (pr <= 0) {
            continue;
        }
        if (i_out >= 0 && pf[i_out].revents) {
            out_open = drain(out_p[0], &ob, max_out, &out_dropped);
            if (out_dropped) {
                too_much = true;
                break;
            }
        }
        if (i_err >= 0 && pf[i_err].revents) {
            err_open = drain(err_p[0], &eb, 65536, &err_dropped);
        }
        if (i_pid >= 0 && pf[i_pid].revents) {
            exited = true;
        }
    }
    if (timed_out || too_much) {
        kill(interactive ? pid : -pid, SIGKILL);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (pidfd >= 0) {
        close(pidfd);
    }
    if (timed_out) {
        exec_fail(err, x, &eb,
                  "exec: executable %s did not finish within %ld ms and "
                  "was killed",
                  x->command, timeout);
        r = -ETIMEDOUT;
    } else if (too_much) {
        exec_fail(err, x, &eb,
                  "exec: executable %s wrote more than %zu bytes to "
                  "standard output and was killed",
                  x->command, max_out);
        r = -EMSGSIZE;
    } else if (WIFSIGNALED(status)) {
        exec_fail(err, x, &eb, "exec: executable %s was killed by signal %d",
                  x->command, WTERMSIG(status));
        r = -EACCES;
    } else if (WEXITSTATUS(status) != 0) {
        exec_fail(err, x, &eb, "exec: executable %s failed with exit code %d",
                  x->command, WEXITSTATUS(status));
        r = -EACCES;
    } else {
        r = kubeconfig_exec_decode(x, ob.data ? ob.data : "", ob.len, cred,
                                   err);
        if (r == 0 && o->stderr_out && eb.len) {
            /* client-go passes a plugin's stderr through */
            fwrite(eb.data, 1, eb.len, o->stderr_out);
            fflush(o->stderr_out);
        }
    }
out:
    for (int i = 0; i < 2; i++) {
        if (out_p[i] >= 0) {
            close(out_p[i]);
        }
        if (err_p[i] >= 0) {
            close(err_p[i]);
        }
    }
    if (ob.data) {
        explicit_bzero(ob.data, ob.len); /* it held the credential */
    }
    dbuf_free(&ob);
    dbuf_free(&eb);
    free(envp);
    wipe_free(info_entry, strlen(info_entry));
    return r;
}
