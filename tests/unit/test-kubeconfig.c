/* Unit tests for lib/kubeconfig: parsing, file references, resolution
 * order and the error messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/util.h"
#include "lib/kube/kubeconfig.h"
#include "lib/net/pki.h"

/* base64 of "CA-PEM", "CERT", "KEY" */
#define B64_CA "Q0EtUEVN"
#define B64_CERT "Q0VSVA=="
#define B64_KEY "S0VZ"

static const char full[] = "apiVersion: v1\n"
                           "kind: Config\n"
                           "clusters:\n"
                           "- name: other\n"
                           "  cluster:\n"
                           "    server: https://10.0.0.1:6443\n"
                           "- name: dpf\n"
                           "  cluster:\n"
                           "    server: https://127.0.0.1:6443/\n"
                           "    certificate-authority-data: " B64_CA "\n"
                           "contexts:\n"
                           "- name: dpf\n"
                           "  context:\n"
                           "    cluster: dpf\n"
                           "    user: dpf-admin\n"
                           "    namespace: dpf-operator-system\n"
                           "- name: bare\n"
                           "  context:\n"
                           "    cluster: other\n"
                           "current-context: dpf\n"
                           "users:\n"
                           "- name: dpf-admin\n"
                           "  user:\n"
                           "    client-certificate-data: " B64_CERT "\n"
                           "    client-key-data: " B64_KEY "\n"
                           "    token: abc123\n";

static void
test_parse_full(void **state)
{
    struct kubeconfig *kc = NULL;
    struct dpf_error err = {0};
    assert_int_equal(
        kubeconfig_parse(full, strlen(full), "/x/kc", NULL, &kc, &err), 0);
    assert_string_equal(kc->context, "dpf");
    assert_string_equal(kc->server, "https://127.0.0.1:6443");
    assert_string_equal(kc->namespace, "dpf-operator-system");
    assert_int_equal(kc->ca_len, 6);
    assert_string_equal(kc->ca_pem, "CA-PEM");
    assert_string_equal(kc->cert_pem, "CERT");
    assert_string_equal(kc->key_pem, "KEY");
    assert_string_equal(kc->token, "abc123");
    assert_false(kc->insecure_skip_tls_verify);
    kubeconfig_free(kc);

    /* an explicit context; no user, default namespace */
    assert_int_equal(
        kubeconfig_parse(full, strlen(full), "/x/kc", "bare", &kc, &err), 0);
    assert_string_equal(kc->server, "https://10.0.0.1:6443");
    assert_string_equal(kc->namespace, "default");
    assert_null(kc->token);
    assert_null(kc->ca_pem);
    assert_null(kc->user_name);
    kubeconfig_free(kc);
}

static void
expect_error(const char *text, const char *context, const char *needle1,
             const char *needle2)
{
    struct kubeconfig *kc = NULL;
    struct dpf_error err = {0};
    int r = kubeconfig_parse(text, strlen(text), "/etc/kc.yaml", context, &kc,
                             &err);
    assert_true(r < 0);
    assert_null(kc);
    if (!strstr(err.message, needle1) || !strstr(err.message, needle2)) {
        fail_msg("message \"%s\" lacks \"%s\" or \"%s\"", err.message, needle1,
                 needle2);
    }
    assert_non_null(strstr(err.message, "/etc/kc.yaml"));
}

static void
test_errors(void **state)
{
    expect_error("apiVersion: v1\nclusters: []\n", NULL, "current-context",
                 "not set");
    expect_error(full, "nope", "context \"nope\"", "not found");
    expect_error("current-context: a\ncontexts:\n- name: a\n  context:\n"
                 "    user: u\n",
                 NULL, "contexts[0].context.cluster", "missing");
    expect_error("current-context: a\ncontexts:\n- name: a\n  context:\n"
                 "    cluster: c\nclusters:\n- name: c\n  cluster:\n"
                 "    insecure-skip-tls-verify: true\n",
                 NULL, "clusters[0].cluster.server", "missing");
    expect_error("current-context: a\ncontexts:\n- name: a\n  context:\n"
                 "    cluster: c\nclusters:\n- name: c\n  cluster:\n"
                 "    server: ftp://x\n",
                 NULL, "clusters[0].cluster.server", "https://");
    expect_error("current-context: a\ncontexts:\n- name: a\n  context:\n"
                 "    cluster: c\nclusters:\n- name: c\n  cluster:\n"
                 "    server: https://x\n"
                 "    certificate-authority-data: '!!notbase64'\n",
                 NULL, "certificate-authority-data", "base64");
    expect_error("current-context: a\ncontexts:\n- name: a\n  context:\n"
                 "    cluster: c\n    user: u\nclusters:\n- name: c\n"
                 "  cluster:\n    server: https://x\nusers:\n- name: u\n"
                 "  user:\n    client-certificate-data: " B64_CERT "\n",
                 NULL, "users[0].user.client-key-data", "missing");
    expect_error("current-context: a\ncontexts:\n- name: a\n  context:\n"
                 "    cluster: c\n    user: ghost\nclusters:\n- name: c\n"
                 "  cluster:\n    server: https://x\n",
                 NULL, "user \"ghost\"", "not found");
    expect_error("- just\n- a list\n", NULL, "kubeconfig", "mapping");
    expect_error("a: [unclosed\n", NULL, "kubeconfig", "line");
}

static char *
make_tmpdir(void)
{
    char tmpl[] = "/tmp/dpf-test-kc-XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return xstrdup(d);
}

static void
write_file(const char *path, const char *text)
{
    assert_int_equal(file_write_atomic(path, text, strlen(text), 0600), 0);
}

static void
test_file_references(void **state)
{
    char *dir = make_tmpdir();
    char *ca = xasprintf("%s/ca.crt", dir);
    char *tok = xasprintf("%s/token", dir);
    char *kcp = xasprintf("%s/config", dir);
    write_file(ca, "FILE-CA");
    write_file(tok, "tok-from-file\n");
    write_file(kcp, "current-context: a\n"
                    "contexts:\n- name: a\n  context: {cluster: c, user: u}\n"
                    "clusters:\n- name: c\n  cluster:\n"
                    "    server: https://h:1\n"
                    "    certificate-authority: ca.crt\n"
                    "    tls-server-name: dpf.example\n"
                    "users:\n- name: u\n  user:\n    tokenFile: token\n");
    struct kubeconfig_options o = {.path = kcp};
    struct kubeconfig *kc = NULL;
    struct dpf_error err = {0};
    assert_int_equal(kubeconfig_load(&o, &kc, &err), 0);
    assert_string_equal(kc->ca_pem, "FILE-CA");
    assert_string_equal(kc->token, "tok-from-file");
    assert_false(kc->insecure_skip_tls_verify);
    assert_string_equal(kc->tls_server_name, "dpf.example");
    assert_string_equal(kc->path, kcp);
    kubeconfig_free(kc);

    /* a missing referenced file is named in the error */
    unlink(ca);
    assert_true(kubeconfig_load(&o, &kc, &err) < 0);
    assert_non_null(strstr(err.message, "certificate-authority"));
    assert_non_null(strstr(err.message, "ca.crt"));

    unlink(tok);
    unlink(kcp);
    rmdir(dir);
    free(ca);
    free(tok);
    free(kcp);
    free(dir);
}

static void
test_resolve_order(void **state)
{
    char *dir = make_tmpdir();
    char *a = xasprintf("%s/a", dir);
    char *home = xasprintf("%s/home", dir);
    char *kdir = xasprintf("%s/home/.kube", dir);
    char *hk = xasprintf("%s/home/.kube/config", dir);
    write_file(a, "x: 1\n");
    assert_int_equal(dir_create_all(kdir, 0700), 0);
    write_file(hk, "x: 1\n");
    struct dpf_error err = {0};
    char *old_kc = getenv("KUBECONFIG") ? xstrdup(getenv("KUBECONFIG")) : NULL;
    char *old_home = getenv("HOME") ? xstrdup(getenv("HOME")) : NULL;

    /* the flag wins */
    setenv("KUBECONFIG", a, 1);
    char *p = kubeconfig_resolve_path("/flag/path", &err);
    assert_string_equal(p, "/flag/path");
    free(p);
    /* then the first existing file of $KUBECONFIG */
    char *list = xasprintf("/nonexistent/x:%s:%s", a, hk);
    setenv("KUBECONFIG", list, 1);
    p = kubeconfig_resolve_path(NULL, &err);
    assert_string_equal(p, a);
    free(p);
    /* none exists: an error naming the variable */
    setenv("KUBECONFIG", "/nonexistent/x", 1);
    assert_null(kubeconfig_resolve_path(NULL, &err));
    assert_non_null(strstr(err.message, "KUBECONFIG"));
    /* then ~/.kube/config */
    unsetenv("KUBECONFIG");
    setenv("HOME", home, 1);
    p = kubeconfig_resolve_path(NULL, &err);
    assert_string_equal(p, hk);
    free(p);
    setenv("HOME", "/nonexistent", 1);
    assert_null(kubeconfig_resolve_path(NULL, &err));
    assert_non_null(strstr(err.message, "--kubeconfig"));

    if (old_kc) {
        setenv("KUBECONFIG", old_kc, 1);
    }
    if (old_home) {
        setenv("HOME", old_home, 1);
    }
    free(old_kc);
    free(old_home);
    free(list);
    unlink(a);
    unlink(hk);
    rmdir(kdir);
    rmdir(home);
    rmdir(dir);
    free(a);
    free(home);
    free(kdir);
    free(hk);
    free(dir);
}

static void
test_base64(void **state)
{
    char *out;
    size_t len;
    assert_int_equal(kubeconfig_base64_decode("aGVsbG8=", &out, &len), 0);
    assert_int_equal(len, 5);
    assert_string_equal(out, "hello");
    free(out);
    assert_int_equal(kubeconfig_base64_decode("aGVs\nbG8", &out, &len), 0);
    assert_string_equal(out, "hello");
    free(out);
    assert_int_equal(kubeconfig_base64_decode("", &out, &len), 0);
    assert_int_equal(len, 0);
    free(out);
    assert_int_equal(kubeconfig_base64_decode("a", &out, &len), -EINVAL);
    assert_int_equal(kubeconfig_base64_decode("a*b=", &out, &len), -EINVAL);
    assert_int_equal(kubeconfig_base64_decode("aG=Vs", &out, &len), -EINVAL);
}

/* A kubeconfig whose single user is given as YAML lines under "user:" and
 * whose cluster gets cluster_extra lines. */
static char *
kc_text(const char *cluster_extra, const char *user)
{
    return xasprintf("current-context: a\n"
                     "contexts:\n- name: a\n  context: {cluster: c, user: "
                     "u}\n"
                     "clusters:\n- name: c\n  cluster:\n"
                     "    server: https://h:1\n%s"
                     "users:\n- name: u\n  user:\n%s",
                     cluster_extra, user);
}

static void
expect_kc_error(const char *cluster_extra, const char *user,
                const char *needle1, const char *needle2)
{
    char *t = kc_text(cluster_extra, user);
    expect_error(t, NULL, needle1, needle2);
    free(t);
}

static struct kubeconfig *
kc_ok(const char *cluster_extra, const char *user)
{
    char *t = kc_text(cluster_extra, user);
    struct kubeconfig *kc = NULL;
    struct dpf_error err = {0};
    if (kubeconfig_parse(t, strlen(t), "/etc/kc.yaml", NULL, &kc, &err) < 0) {
        fail_msg("%s", err.message);
    }
    free(t);
    return kc;
}

/* What client-go refuses, and secrets that would split a header line. */
static void
test_credential_errors(void **state)
{
    expect_kc_error("", "    token: \"abc\\r\\nX-Injected: 1\"\n",
                    "users[0].user.token of user \"u\" contains a control "
                    "character (CR at offset 3); refusing to send it",
                    "/etc/kc.yaml");
    expect_kc_error("", "    token: \"abc\\ndef\"\n", "token of user \"u\"",
                    "LF at offset 3");
    expect_kc_error("", "    token: \"a\\x01\"\n", "token of user \"u\"",
                    "0x01 at offset 1");
    expect_kc_error("", "    username: \"ad\\rmin\"\n    password: p\n",
                    "users[0].user.username of user \"u\"", "CR at offset 2");
    expect_kc_error("", "    username: admin\n    password: \"p\\nq\"\n",
                    "users[0].user.password of user \"u\"", "LF at offset 1");
    expect_kc_error("", "    username: \"a:b\"\n    password: p\n",
                    "username of user \"u\" contains ':'", "basic");
    expect_kc_error("", "    token: t\n    username: a\n    password: p\n",
                    "more than one authentication method found for u; found "
                    "[token basicAuth], only one is allowed",
                    "users[0].user");
    expect_kc_error("    insecure-skip-tls-verify: true\n"
                    "    certificate-authority-data: " B64_CA "\n",
                    "    token: t\n",
                    "clusters[0].cluster (cluster \"c\"): specifying a root "
                    "certificates file with the insecure flag is not allowed",
                    "certificate-authority-data is set");
    expect_kc_error("", "    auth-provider:\n      name: oidc\n",
                    "users[0].user.auth-provider (user \"u\")",
                    "not supported");
    expect_kc_error("    tls-server-name: \"a b\"\n", "    token: t\n",
                    "clusters[0].cluster.tls-server-name", "not a host name");
    expect_kc_error("    tls-server-name: \"h:1\"\n", "    token: t\n",
                    "tls-server-name", "not a host name");

    /* a token file: surrounding whitespace is trimmed (client-go's
     * TrimSpace), a line break inside is refused */
    char *dir = make_tmpdir();
    char *tok = xasprintf("%s/token", dir);
    char *user = xasprintf("    tokenFile: %s\n", tok);
    write_file(tok, "  tok-1\n\n");
    struct kubeconfig *kc = kc_ok("", user);
    assert_string_equal(kc->token, "tok-1");
    kubeconfig_free(kc);
    write_file(tok, "tok-1\nX-Injected: 1\n");
    expect_kc_error("", user, "users[0].user.tokenFile of user \"u\"",
                    "LF at offset 5");
    /* the file wins over token; token is used while the file is missing */
    free(user);
    user = xasprintf("    token: inline\n    tokenFile: %s\n", tok);
    write_file(tok, "from-file\n");
    kc = kc_ok("", user);
    assert_string_equal(kc->token, "from-file");
    kubeconfig_free(kc);
    unlink(tok);
    kc = kc_ok("", user);
    assert_string_equal(kc->token, "inline");
    kubeconfig_free(kc);
    rmdir(dir);
    free(user);
    free(tok);
    free(dir);

    /* the plain-http opt-in and basic auth are recorded */
    kc = kc_ok("    extensions:\n    - name: " KUBECONFIG_EXT_PLAINTEXT "\n"
               "      extension: {}\n",
               "    username: admin\n    password: pw\n");
    assert_true(kc->allow_plaintext_credentials);
    assert_string_equal(kc->username, "admin");
    assert_string_equal(kc->password, "pw");
    assert_null(kc->token);
    kubeconfig_free(kc);
    kc = kc_ok("", "    token: t\n");
    assert_false(kc->allow_plaintext_credentials);
    kubeconfig_free(kc);
}

#define V1 "client.authentication.k8s.io/v1"
#define V1B "client.authentication.k8s.io/v1beta1"

/* users[].user.exec: the fields client-go reads, its defaults, and the
 * errors clientcmd's validation gives. */
static void
test_exec_parse(void **state)
{
    struct kubeconfig *kc =
        kc_ok("    certificate-authority-data: " B64_CA "\n"
              "    tls-server-name: api.example\n"
              "    extensions:\n"
              "    - name: client.authentication.k8s.io/exec\n"
              "      extension: {audience: dpf, level: 2}\n",
              "    exec:\n"
              "      apiVersion: " V1 "\n"
              "      command: bin/get-token\n"
              "      args: [--cluster, \"a b\"]\n"
              "      env:\n"
              "      - {name: MODE, value: fast}\n"
              "      - {name: EMPTY}\n"
              "      installHint: apt install get-token\n"
              "      provideClusterInfo: true\n"
              "      interactiveMode: Never\n");
    const struct kubeconfig_exec *x = kc->exec;
    assert_non_null(x);
    assert_string_equal(x->user, "u");
    assert_string_equal(x->api_version, V1);
    /* a relative path with '/' is relative to the kubeconfig's directory */
    assert_string_equal(x->command, "/etc/bin/get-token");
    assert_int_equal(x->argc, 3);
    assert_string_equal(x->argv[0], "/etc/bin/get-token");
    assert_string_equal(x->argv[1], "--cluster");
    assert_string_equal(x->argv[2], "a b");
    assert_null(x->argv[3]);
    assert_int_equal(x->n_env, 2);
    assert_string_equal(x->env[0], "MODE=fast");
    assert_string_equal(x->env[1], "EMPTY=");
    assert_string_equal(x->install_hint, "apt install get-token");
    assert_int_equal(x->interactive, KUBECONFIG_EXEC_NEVER);
    assert_true(x->provide_cluster_info);
    /* KUBERNETES_EXEC_INFO as client-go encodes it (CA as base64 again) */
    char *info = kubeconfig_exec_info(x, false);
    assert_string_equal(
        info, "{\"kind\":\"ExecCredential\",\"apiVersion\":\"" V1 "\","
              "\"spec\":{\"cluster\":{\"server\":\"https://h:1\","
              "\"tls-server-name\":\"api.example\","
              "\"certificate-authority-data\":\"" B64_CA "\","
              "\"config\":{\"audience\":\"dpf\",\"level\":2}},"
              "\"interactive\":false}}\n");
    free(info);
    struct kubeconfig_exec *copy = kubeconfig_exec_dup(x);
    info = kubeconfig_exec_info(copy, true);
    assert_true(str_has_suffix(info, "\"interactive\":true}}\n"));
    free(info);
    kubeconfig_exec_free(copy);
    kubeconfig_free(kc);

    /* v1beta1: interactiveMode defaults to IfAvailable; a bare command
     * name is left for $PATH; no cluster info unless asked for */
    kc = kc_ok("", "    exec:\n      apiVersion: " V1B "\n"
                   "      command: get-token\n");
    assert_int_equal(kc->exec->interactive, KUBECONFIG_EXEC_IF_AVAILABLE);
    assert_string_equal(kc->exec->command, "get-token");
    assert_int_equal(kc->exec->argc, 1);
    assert_null(kc->exec->cluster_json);
    info = kubeconfig_exec_info(kc->exec, false);
    assert_string_equal(info,
                        "{\"kind\":\"ExecCredential\",\"apiVersion\":"
                        "\"" V1B "\",\"spec\":{\"interactive\":false}}\n");
    free(info);
    kubeconfig_free(kc);
    kc = kc_ok("", "    exec:\n      apiVersion: " V1 "\n"
                   "      command: /x\n      interactiveMode: Always\n"
                   "      provideClusterInfo: true\n");
    assert_int_equal(kc->exec->interactive, KUBECONFIG_EXEC_ALWAYS);
    assert_string_equal(kc->exec->cluster_json,
                        "{\"server\":\"https://h:1\",\"config\":null}");
    kubeconfig_free(kc);

    expect_kc_error("",
                    "    exec:\n      apiVersion: " V1 "\n"
                    "      interactiveMode: Never\n",
                    "users[0].user.exec.command: command must be specified "
                    "for u to use exec authentication plugin",
                    "/etc/kc.yaml");
    expect_kc_error("", "    exec:\n      command: /x\n",
                    "users[0].user.exec.apiVersion: apiVersion must be "
                    "specified for u to use exec authentication plugin",
                    "/etc/kc.yaml");
    expect_kc_error("",
                    "    exec:\n      command: /x\n"
                    "      apiVersion: client.authentication.k8s.io/"
                    "v1alpha1\n",
                    "exec plugin: invalid apiVersion "
                    "\"client.authentication.k8s.io/v1alpha1\"",
                    "users[0].user.exec.apiVersion");
    expect_kc_error("",
                    "    exec:\n      command: /x\n"
                    "      apiVersion: " V1 "\n",
                    "users[0].user.exec.interactiveMode: interactiveMode "
                    "must be specified for u to use exec authentication "
                    "plugin",
                    "Never");
    expect_kc_error("",
                    "    exec:\n      command: /x\n"
                    "      apiVersion: " V1 "\n"
                    "      interactiveMode: Sometimes\n",
                    "invalid interactiveMode for u: \"Sometimes\"",
                    "users[0].user.exec.interactiveMode");
    expect_kc_error("",
                    "    exec:\n      command: /x\n"
                    "      apiVersion: " V1B "\n"
                    "      env: [{value: v}]\n",
                    "users[0].user.exec.env[0].name: env variable name must "
                    "be specified for u",
                    "exec");
    expect_kc_error("",
                    "    exec:\n      command: /x\n"
                    "      apiVersion: " V1B "\n"
                    "      env: [{name: \"A=B\", value: v}]\n",
                    "users[0].user.exec.env[0].name", "'='");
    expect_kc_error("",
                    "    exec:\n      command: /x\n"
                    "      apiVersion: " V1B "\n"
                    "      args: [ok, [nested]]\n",
                    "users[0].user.exec.args[1]", "expected a string");
    expect_kc_error("",
                    "    exec:\n      command: /x\n"
                    "      apiVersion: " V1B "\n      args: one\n",
                    "users[0].user.exec.args", "expected a list");
    expect_kc_error("", "    exec: [1]\n", "users[0].user.exec",
                    "expected a mapping");
}

static const struct kubeconfig_exec dec_x = {
    .user = "u",
    .api_version = V1,
    .command = "/usr/bin/plugin",
};

static void
expect_decode_error(const char *out, const char *want)
{
    struct kubeconfig_credential cred;
    struct dpf_error err = {0};
    assert_int_equal(
        kubeconfig_exec_decode(&dec_x, out, strlen(out), &cred, &err), -EACCES);
    assert_null(cred.token);
    if (!strstr(err.message, want) ||
        !str_has_prefix(err.message, "getting credentials for user \"u\": ")) {
        fail_msg("message \"%s\" lacks \"%s\"", err.message, want);
    }
}

#define CRED(status)        \
    "{\"apiVersion\":\"" V1 \
    "\",\"kind\":\"ExecCredential\",\"status\":" status "}"

/* A pair that belongs together: a CA certificate and its key. */
static void
make_pair(const char *dir, const char *name, char **cert, char **key)
{
    char *cp = xasprintf("%s/%s.crt", dir, name);
    char *kp = xasprintf("%s/%s.key", dir, name);
    struct dpf_error err = {0};
    assert_int_equal(pki_ca_create(cp, kp, name, 1, &err), 0);
    assert_int_equal(file_read_all(cp, cert, NULL), 0);
    assert_int_equal(file_read_all(kp, key, NULL), 0);
    unlink(cp);
    unlink(kp);
    free(cp);
    free(kp);
}

/* An ExecCredential reply: what client-go accepts and refuses. */
static void
test_exec_decode(void **state)
{
    struct kubeconfig_credential cred;
    struct dpf_error err = {0};
    const char *ok = CRED("{\"token\":\"abc\",\"expirationTimestamp\":"
                          "\"2030-01-02T03:04:05Z\"}");
    assert_int_equal(
        kubeconfig_exec_decode(&dec_x, ok, strlen(ok), &cred, &err), 0);
    assert_string_equal(cred.token, "abc");
    assert_int_equal(cred.expiry_ns, 1893553445LL * 1000000000LL);
    assert_null(cred.cert_pem);
    kubeconfig_credential_clear(&cred);
    assert_null(cred.token);
    ok = CRED("{\"token\":\"abc\",\"expirationTimestamp\":"
              "\"2030-01-02T05:04:05.5+02:00\"}");
    assert_int_equal(
        kubeconfig_exec_decode(&dec_x, ok, strlen(ok), &cred, &err), 0);
    assert_int_equal(cred.expiry_ns, 1893553445LL * 1000000000LL + 500000000);
    kubeconfig_credential_clear(&cred);
    ok = CRED("{\"token\":\"abc\"}");
    assert_int_equal(
        kubeconfig_exec_decode(&dec_x, ok, strlen(ok), &cred, &err), 0);
    assert_int_equal(cred.expiry_ns, 0);
    kubeconfig_credential_clear(&cred);

    expect_decode_error("not json", "decoding stdout");
    expect_decode_error("[1]", "decoding stdout: not a JSON object");
    expect_decode_error("{\"apiVersion\":\"" V1 "\",\"kind\":\"Pod\","
                        "\"status\":{\"token\":\"a\"}}",
                        "kind is \"Pod\", expected ExecCredential");
    expect_decode_error("{\"apiVersion\":\"" V1B "\",\"kind\":"
                        "\"ExecCredential\",\"status\":{\"token\":\"a\"}}",
                        "exec plugin is configured to use API version " V1
                        ", plugin returned version " V1B);
    expect_decode_error("{\"apiVersion\":\"" V1 "\",\"kind\":"
                        "\"ExecCredential\"}",
                        "exec plugin didn't return a status field");
    expect_decode_error(CRED("{}"),
                        "exec plugin didn't return a token or cert/key pair");
    expect_decode_error(CRED("{\"clientCertificateData\":\"x\"}"),
                        "exec plugin returned only certificate or key, not "
                        "both");
    expect_decode_error(CRED("{\"token\":\"a\\r\\nX-Injected: 1\"}"),
                        "exec plugin returned a token with a control "
                        "character (CR at offset 1); refusing to send it");
    expect_decode_error(CRED("{\"token\":\"a\",\"expirationTimestamp\":"
                             "\"tomorrow\"}"),
                        "status.expirationTimestamp: not an RFC 3339 time");
    expect_decode_error(CRED("{\"token\":\"a\",\"expirationTimestamp\":5}"),
                        "status.expirationTimestamp");

    /* a client certificate and key: PEM that belong together */
    char *dir = make_tmpdir();
    char *c1, *k1, *c2, *k2;
    make_pair(dir, "one", &c1, &k1);
    make_pair(dir, "two", &c2, &k2);
    rmdir(dir);
    free(dir);
    json_t *st = json_pack("{s:s,s:s,s:{s:s,s:s}}", "apiVersion", V1, "kind",
                           "ExecCredential", "status", "clientCertificateData",
                           c1, "clientKeyData", k1);
    char *txt = json_dumps(st, 0);
    assert_int_equal(
        kubeconfig_exec_decode(&dec_x, txt, strlen(txt), &cred, &err), 0);
    assert_string_equal(cred.cert_pem, c1);
    assert_string_equal(cred.key_pem, k1);
    assert_int_equal(cred.key_len, strlen(k1));
    assert_null(cred.token);
    kubeconfig_credential_clear(&cred);
    free(txt);
    json_object_set_new(json_object_get(st, "status"), "clientKeyData",
                        json_string(k2));
    txt = json_dumps(st, 0);
    expect_decode_error(txt, "not a matching PEM pair");
    free(txt);
    json_decref(st);
    free(c1);
    free(k1);
    free(c2);
    free(k2);
}

/* --- running plugins --- */

static char *run_dir;

static char *
script(const char *name, const char *body)
{
    char *p = xasprintf("%s/%s", run_dir, name);
    char *text = xasprintf("#!/bin/sh\n%s", body);
    assert_int_equal(file_write_atomic(p, text, strlen(text), 0755), 0);
    free(text);
    return p;
}

static char *
read_back(const char *name)
{
    char *p = xasprintf("%s/%s", run_dir, name);
    char *t = NULL;
    if (file_read_all(p, &t, NULL) < 0) {
        t = xstrdup("");
    }
    free(p);
    return t;
}

static struct kubeconfig_exec *
plugin(const char *cmd, enum kubeconfig_exec_interactive mode, const char *hint)
{
    struct kubeconfig_exec *x = xcalloc(1, sizeof *x);
    x->user = xstrdup("u");
    x->path = xstrdup("/etc/kc.yaml");
    x->api_version = xstrdup(V1);
    x->command = xstrdup(cmd);
    x->argv = xcalloc(2, sizeof *x->argv);
    x->argv[0] = xstrdup(cmd);
    x->argc = 1;
    x->env = xcalloc(1, sizeof *x->env);
    x->interactive = mode;
    x->install_hint = hint ? xstrdup(hint) : NULL;
    return x;
}

#define GOOD_REPLY                                                  \
    "echo '{\"apiVersion\":\"" V1 "\",\"kind\":\"ExecCredential\"," \
    "\"status\":{\"token\":\"tok\"}}'\n"

/* The plugin's environment, arguments, stdin and stderr. */
static void
test_exec_run_env(void **state)
{
    char tmpl[] = "/tmp/dpf-test-run-XXXXXX";
    run_dir = mkdtemp(tmpl);
    assert_non_null(run_dir);
    setenv("DPF_TEST_INHERITED", "parent", 1);
    setenv("DPF_TEST_OVERRIDDEN", "parent", 1);
    setenv("KUBERNETES_EXEC_INFO", "stale", 1);
    char *p = script("env-plugin",
                     "d=$(dirname \"$0\")\n"
                     "printf '%s' \"$KUBERNETES_EXEC_INFO\" > \"$d/info\"\n"
                     "printf '%s|%s|%s|' \"$DPF_TEST_INHERITED\" "
                     "\"$DPF_TEST_OVERRIDDEN\" \"$EXTRA\" > \"$d/env\"\n"
                     "env | grep -c '^DPF_TEST_OVERRIDDEN=' >> \"$d/env\"\n"
                     "printf '%s,' \"$@\" > \"$d/args\"\n"
                     "readlink /proc/self/fd/0 > \"$d/stdin\"\n"
                     "echo 'a warning from the plugin' >&2\n" GOOD_REPLY);
    struct kubeconfig_exec *x = plugin(p, KUBECONFIG_EXEC_NEVER, NULL);
    x->argv = xrealloc(x->argv, 4 * sizeof *x->argv);
    x->argv[1] = xstrdup("one");
    x->argv[2] = xstrdup("two words");
    x->argv[3] = NULL;
    x->argc = 3;
    x->env = xrealloc(x->env, 3 * sizeof *x->env);
    x->env[0] = xstrdup("DPF_TEST_OVERRIDDEN=kubeconfig");
    x->env[1] = xstrdup("EXTRA=x y");
    x->n_env = 2;
    char *ebuf = NULL;
    size_t elen = 0;
    FILE *errf = open_memstream(&ebuf, &elen);
    struct kubeconfig_exec_options o = {.stderr_out = errf};
    struct kubeconfig_credential cred;
    struct dpf_error err = {0};
    assert_int_equal(kubeconfig_exec_run(x, &o, &cred, &err), 0);
    assert_string_equal(cred.token, "tok");
    kubeconfig_credential_clear(&cred);
    fclose(errf);
    /* a successful plugin's stderr is passed on */
    assert_string_equal(ebuf, "a warning from the plugin\n");
    free(ebuf);
    char *info = read_back("info");
    char *want = kubeconfig_exec_info(x, false);
    assert_string_equal(info, want);
    free(info);
    free(want);
    char *env = read_back("env");
    assert_string_equal(env, "parent|kubeconfig|x y|1\n");
    free(env);
    char *args = read_back("args");
    assert_string_equal(args, "one,two words,");
    free(args);
    char *in = read_back("stdin");
    assert_string_equal(in, "/dev/null\n");
    free(in);
    kubeconfig_exec_free(x);

    /* a bare name is looked up in $PATH */
    x = plugin("sh", KUBECONFIG_EXEC_NEVER, NULL);
    x->argv = xrealloc(x->argv, 4 * sizeof *x->argv);
    x->argv[1] = xstrdup("-c");
    x->argv[2] = xstrdup(GOOD_REPLY);
    x->argv[3] = NULL;
    x->argc = 3;
    assert_int_equal(kubeconfig_exec_run(x, NULL, &cred, &err), 0);
    assert_string_equal(cred.token, "tok");
    kubeconfig_credential_clear(&cred);
    kubeconfig_exec_free(x);
    unsetenv("DPF_TEST_INHERITED");
    unsetenv("DPF_TEST_OVERRIDDEN");
    unsetenv("KUBERNETES_EXEC_INFO");
    free(p);
    char *cmd = xasprintf("rm -rf '%s'", run_dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

/* Is the process gone (or a zombie waiting for its parent)? */
static bool
process_gone(pid_t pid)
{
    char *p = xasprintf("/proc/%d/stat", (int) pid);
    char *t = NULL;
    bool gone = file_read_all(p, &t, NULL) < 0;
    if (!gone) {
        const char *rp = strrchr(t, ')');
        gone = rp && rp[1] == ' ' && rp[2] == 'Z';
    }
    free(t);
    free(p);
    return gone;
}

/* Failures: not installed, exit code, signal, timeout, too much output,
 * a bad reply; each names the user, shows stderr and the installHint. */
static void
test_exec_run_failures(void **state)
{
    char tmpl[] = "/tmp/dpf-test-run-XXXXXX";
    run_dir = mkdtemp(tmpl);
    assert_non_null(run_dir);
    struct kubeconfig_credential cred;
    struct dpf_error err = {0};
    const char *hint = "Install it with: apt install get-token";

    char *missing = xasprintf("%s/not-there", run_dir);
    struct kubeconfig_exec *x = plugin(missing, KUBECONFIG_EXEC_NEVER, hint);
    assert_int_equal(kubeconfig_exec_run(x, NULL, &cred, &err), -ENOENT);
    char *want = xasprintf("getting credentials for user \"u\": exec: "
                           "executable %s not found\n\nIt looks like the "
                           "credential plugin of this kubeconfig user is not "
                           "installed.\n%s",
                           missing, hint);
    assert_string_equal(err.message, want);
    free(want);
    kubeconfig_exec_free(x);
    free(missing);
    x = plugin("dpf-no-such-plugin", KUBECONFIG_EXEC_NEVER, NULL);
    assert_int_equal(kubeconfig_exec_run(x, NULL, &cred, &err), -ENOENT);
    assert_non_null(strstr(err.message, "executable dpf-no-such-plugin not "
                                        "found"));
    kubeconfig_exec_free(x);

    char *p = script("exit3", "echo 'token expired' >&2\nexit 3\n");
    x = plugin(p, KUBECONFIG_EXEC_NEVER, hint);
    assert_int_equal(kubeconfig_exec_run(x, NULL, &cred, &err), -EACCES);
    want = xasprintf("getting credentials for user \"u\": exec: executable "
                     "%s failed with exit code 3\nplugin stderr: token "
                     "expired\n%s",
                     p, hint);
    assert_string_equal(err.message, want);
    assert_int_equal(err.code, 401);
    free(want);
    kubeconfig_exec_free(x);
    free(p);

    /* long stderr: its tail is kept */
    p = script("chatty", "i=0\nwhile [ $i -lt 200 ]; do echo \"line $i\" >&2; "
                         "i=$((i + 1)); done\nexit 1\n");
    x = plugin(p, KUBECONFIG_EXEC_NEVER, NULL);
    assert_int_equal(kubeconfig_exec_run(x, NULL, &cred, &err), -EACCES);
    assert_non_null(strstr(err.message, "\nplugin stderr: ..."));
    assert_true(str_has_suffix(err.message, "line 198\nline 199"));
    assert_null(strstr(err.message, "line 100\n"));
    kubeconfig_exec_free(x);
    free(p);

    p = script("signal", "kill -9 $$\n");
    x = plugin(p, KUBECONFIG_EXEC_NEVER, NULL);
    assert_int_equal(kubeconfig_exec_run(x, NULL, &cred, &err), -EACCES);
    assert_non_null(strstr(err.message, "was killed by signal 9"));
    kubeconfig_exec_free(x);
    free(p);

    /* a hung plugin and the child it started are killed at the timeout */
    p = script("hang", "d=$(dirname \"$0\")\nsleep 60 &\n"
                       "echo $! > \"$d/child\"\necho 'waiting for sso' >&2\n"
                       "wait\n");
    x = plugin(p, KUBECONFIG_EXEC_NEVER, NULL);
    struct kubeconfig_exec_options o = {.timeout_ms = 500};
    int64_t t0 = time_mono_ms();
    assert_int_equal(kubeconfig_exec_run(x, &o, &cred, &err), -ETIMEDOUT);
    assert_true(time_mono_ms() - t0 < 30000);
    want = xasprintf("getting credentials for user \"u\": exec: executable "
                     "%s did not finish within 500 ms and was killed\n"
                     "plugin stderr: waiting for sso",
                     p);
    assert_string_equal(err.message, want);
    free(want);
    char *child = read_back("child");
    pid_t cpid = (pid_t) atoi(child);
    free(child);
    assert_true(cpid > 0);
    bool gone = false;
    for (int i = 0; i < 500 && !(gone = process_gone(cpid)); i++) {
        usleep(10000);
    }
    assert_true(gone);
    kubeconfig_exec_free(x);
    free(p);

    /* output is bounded */
    p = script("flood", "exec yes\n");
    x = plugin(p, KUBECONFIG_EXEC_NEVER, NULL);
    o = (struct kubeconfig_exec_options){.max_output = 65536};
    assert_int_equal(kubeconfig_exec_run(x, &o, &cred, &err), -EMSGSIZE);
    assert_non_null(strstr(err.message, "wrote more than 65536 bytes to "
                                        "standard output and was killed"));
    kubeconfig_exec_free(x);
    free(p);

    /* a reply that is not an ExecCredential */
    p = script("garbage", "echo 'hello'\n");
    x = plugin(p, KUBECONFIG_EXEC_NEVER, NULL);
    assert_int_equal(kubeconfig_exec_run(x, NULL, &cred, &err), -EACCES);
    assert_non_null(strstr(err.message, "decoding stdout"));
    kubeconfig_exec_free(x);
    free(p);

    char *cmd = xasprintf("rm -rf '%s'", run_dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

/* interactiveMode against a terminal (a pseudo-terminal here) and a
 * non-terminal standard input. */
static void
test_exec_run_interactive(void **state)
{
    char tmpl[] = "/tmp/dpf-test-run-XXXXXX";
    run_dir = mkdtemp(tmpl);
    assert_non_null(run_dir);
    char *p = script("tty-plugin",
                     "d=$(dirname \"$0\")\n"
                     "printf '%s' \"$KUBERNETES_EXEC_INFO\" > \"$d/info\"\n"
                     "if [ -t 0 ]; then echo tty; else echo no; fi "
                     "> \"$d/stdin\"\n" GOOD_REPLY);
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    assert_true(master >= 0);
    assert_int_equal(grantpt(master), 0);
    assert_int_equal(unlockpt(master), 0);
    int pty = open(ptsname(master), O_RDWR | O_NOCTTY);
    assert_true(pty >= 0);
    int devnull = open("/dev/null", O_RDONLY);
    static const struct {
        enum kubeconfig_exec_interactive mode;
        bool tty;
        bool unavailable;
        int rc;
        const char *stdin_seen; /* NULL: the plugin must not run */
        bool interactive;
    } cases[] = {
        {KUBECONFIG_EXEC_NEVER, true, false, 0, "no\n", false},
        {KUBECONFIG_EXEC_IF_AVAILABLE, true, false, 0, "tty\n", true},
        {KUBECONFIG_EXEC_IF_AVAILABLE, true, true, 0, "no\n", false},
        {KUBECONFIG_EXEC_IF_AVAILABLE, false, false, 0, "no\n", false},
        {KUBECONFIG_EXEC_ALWAYS, true, false, 0, "tty\n", true},
        {KUBECONFIG_EXEC_ALWAYS, false, false, -EINVAL, NULL, false},
        {KUBECONFIG_EXEC_ALWAYS, true, true, -EINVAL, NULL, false},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        char *ip = xasprintf("%s/info", run_dir);
        unlink(ip);
        free(ip);
        struct kubeconfig_exec *x = plugin(p, cases[i].mode, NULL);
        struct kubeconfig_exec_options o = {
            .stdin_fd = cases[i].tty ? pty : devnull,
            .stdin_unavailable = cases[i].unavailable};
        struct kubeconfig_credential cred;
        struct dpf_error err = {0};
        int rc = kubeconfig_exec_run(x, &o, &cred, &err);
        if (rc != cases[i].rc) {
            fail_msg("case %zu: rc %d: %s", i, rc, err.message);
        }
        kubeconfig_credential_clear(&cred);
        char *info = read_back("info");
        if (!cases[i].stdin_seen) {
            assert_string_equal(info, "");
            assert_non_null(strstr(err.message, "exec plugin cannot support "
                                                "interactive mode: "));
            assert_non_null(strstr(err.message, cases[i].tty
                                                    ? "standard input is "
                                                      "unavailable"
                                                    : "standard input is not a "
                                                      "terminal"));
        } else {
            char *want = kubeconfig_exec_info(x, cases[i].interactive);
            assert_string_equal(info, want);
            free(want);
            char *in = read_back("stdin");
            if (strcmp(in, cases[i].stdin_seen) != 0) {
                fail_msg("case %zu: stdin %s", i, in);
            }
            free(in);
        }
        free(info);
        kubeconfig_exec_free(x);
    }
    close(devnull);
    close(pty);
    close(master);
    free(p);
    char *cmd = xasprintf("rm -rf '%s'", run_dir);
    assert_int_equal(system(cmd), 0);
    free(cmd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_full),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_file_references),
        cmocka_unit_test(test_resolve_order),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_credential_errors),
        cmocka_unit_test(test_exec_parse),
        cmocka_unit_test(test_exec_decode),
        cmocka_unit_test(test_exec_run_env),
        cmocka_unit_test(test_exec_run_failures),
        cmocka_unit_test(test_exec_run_interactive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
