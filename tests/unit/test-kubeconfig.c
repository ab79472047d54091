/* Unit tests for lib/kubeconfig: parsing, file references, resolution
 * order and the error messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/kube/kubeconfig.h"
#include "lib/base/util.h"

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
                    "    insecure-skip-tls-verify: true\n"
                    "users:\n- name: u\n  user:\n    tokenFile: token\n");
    struct kubeconfig_options o = {.path = kcp};
    struct kubeconfig *kc = NULL;
    struct dpf_error err = {0};
    assert_int_equal(kubeconfig_load(&o, &kc, &err), 0);
    assert_string_equal(kc->ca_pem, "FILE-CA");
    assert_string_equal(kc->token, "tok-from-file");
    assert_true(kc->insecure_skip_tls_verify);
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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_full),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_file_references),
        cmocka_unit_test(test_resolve_order),
        cmocka_unit_test(test_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
