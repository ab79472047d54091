/* Unit tests for lib/pki: certificates checked with OpenSSL itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/net/pki.h"
#include "lib/base/util.h"

static char dir[64];

static char *
path(const char *name)
{
    return xasprintf("%s/%s", dir, name);
}

static int
setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/dpf-test-pki-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int
teardown(void **state)
{
    char *cmd = xasprintf("rm -rf '%s'", dir);
    int r = system(cmd);
    free(cmd);
    return r == 0 ? 0 : -1;
}

static X509 *
read_cert(const char *p)
{
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    return x;
}

static unsigned
file_mode(const char *p)
{
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    return st.st_mode & 07777;
}

static bool
verifies(const char *ca_path, const char *cert_path)
{
    X509 *ca = read_cert(ca_path);
    X509 *x = read_cert(cert_path);
    X509_STORE *store = X509_STORE_new();
    X509_STORE_add_cert(store, ca);
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    X509_STORE_CTX_init(ctx, store, x, NULL);
    bool ok = X509_verify_cert(ctx) == 1;
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    X509_free(x);
    X509_free(ca);
    return ok;
}

static void
make_ca(const char *prefix)
{
    char *crt = xasprintf("%s/%s.crt", dir, prefix);
    char *key = xasprintf("%s/%s.key", dir, prefix);
    struct dpf_error err = {0};
    assert_int_equal(pki_ca_create(crt, key, "dpf-ca", 3650, &err), 0);
    free(crt);
    free(key);
}

static void
test_ca(void **state)
{
    make_ca("ca");
    char *crt = path("ca.crt");
    char *key = path("ca.key");
    assert_int_equal(file_mode(key), 0600);
    assert_int_equal(file_mode(crt), 0644);
    X509 *x = read_cert(crt);
    assert_int_equal(X509_check_ca(x), 1);
    /* Self-signed and about ten years long. */
    assert_true(verifies(crt, crt));
    int days = 0, secs = 0;
    ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(x), X509_get0_notAfter(x));
    assert_true(days >= 3650);
    X509_free(x);
    free(crt);
    free(key);
}

static void
test_server_cert(void **state)
{
    make_ca("ca");
    char *ca = path("ca.crt");
    char *cakey = path("ca.key");
    char *crt = path("server.crt");
    char *key = path("server.key");
    const char *sans[] = {"localhost", "127.0.0.1", "::1", "node-1.example"};
    struct dpf_error err = {0};
    assert_int_equal(
        pki_issue_server(ca, cakey, crt, key, NULL, sans, 4, 365, &err), 0);
    assert_int_equal(file_mode(key), 0600);
    assert_true(verifies(ca, crt));

    X509 *x = read_cert(crt);
    assert_int_equal(X509_check_host(x, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_host(x, "node-1.example", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(x, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(x, "::1", 0), 1);
    assert_int_not_equal(X509_check_host(x, "other.example", 0, 0, NULL), 1);
    assert_int_not_equal(X509_check_ip_asc(x, "10.0.0.1", 0), 1);
    assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0), 1);
    assert_int_equal(X509_check_ca(x), 0);
    X509_free(x);

    /* The check accepts it for those names and refuses others. */
    assert_int_equal(pki_cert_check(ca, crt, key, sans, 4, 30, &err), 0);
    const char *more[] = {"localhost", "10.1.2.3"};
    assert_int_equal(pki_cert_check(ca, crt, key, more, 2, 30, &err),
                     -EKEYREJECTED);
    assert_non_null(strstr(err.message, "10.1.2.3"));
    /* ... and refuses it when it would expire too soon. */
    assert_int_equal(pki_cert_check(ca, crt, key, sans, 4, 400, &err),
                     -EKEYREJECTED);

    /* A bad SAN is a user error. */
    const char *bad[] = {"a,b"};
    assert_int_equal(
        pki_issue_server(ca, cakey, crt, key, NULL, bad, 1, 365, &err),
        -EINVAL);
    free(ca);
    free(cakey);
    free(crt);
    free(key);
}

static void
test_client_cert(void **state)
{
    make_ca("ca");
    make_ca("other");
    char *ca = path("ca.crt");
    char *cakey = path("ca.key");
    char *other = path("other.crt");
    char *crt = path("admin.crt");
    char *key = path("admin.key");
    struct dpf_error err = {0};
    assert_int_equal(pki_issue_client(ca, cakey, crt, key, "dpf-admin",
                                      "system:masters", 365, &err),
                     0);
    assert_int_equal(file_mode(key), 0600);
    assert_true(verifies(ca, crt));
    assert_false(verifies(other, crt));

    X509 *x = read_cert(crt);
    char buf[128];
    X509_NAME *n = X509_get_subject_name(x);
    assert_true(X509_NAME_get_text_by_NID(n, NID_commonName, buf, sizeof(buf)) >
                0);
    assert_string_equal(buf, "dpf-admin");
    assert_true(X509_NAME_get_text_by_NID(n, NID_organizationName, buf,
                                          sizeof(buf)) > 0);
    assert_string_equal(buf, "system:masters");
    assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_CLIENT, 0), 1);
    assert_int_not_equal(X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0), 1);
    X509_free(x);

    assert_int_equal(pki_cert_check(ca, crt, key, NULL, 0, 30, &err), 0);
    assert_int_equal(pki_cert_check(other, crt, key, NULL, 0, 30, &err),
                     -EKEYREJECTED);
    /* A key that is not the certificate's. */
    char *cakey2 = path("other.key");
    assert_int_equal(pki_cert_check(ca, crt, cakey2, NULL, 0, 30, &err),
                     -EKEYREJECTED);
    char *missing = path("missing.crt");
    assert_int_equal(pki_cert_check(ca, missing, key, NULL, 0, 30, &err),
                     -ENOENT);
    free(missing);
    free(cakey2);
    free(ca);
    free(cakey);
    free(other);
    free(crt);
    free(key);
}

static void
test_token(void **state)
{
    char *a = pki_token_new();
    char *b = pki_token_new();
    assert_int_equal(strlen(a), PKI_TOKEN_HEX_LEN);
    assert_int_equal(strspn(a, "0123456789abcdef"), PKI_TOKEN_HEX_LEN);
    assert_string_not_equal(a, b);
    free(a);
    free(b);

    char *p = path("admin.token");
    char *t1 = NULL, *t2 = NULL;
    struct dpf_error err = {0};
    assert_int_equal(pki_token_load_or_create(p, &t1, &err), 0);
    assert_int_equal(file_mode(p), 0600);
    assert_int_equal(pki_token_load_or_create(p, &t2, &err), 0);
    assert_string_equal(t1, t2);
    assert_int_equal(strlen(t1), PKI_TOKEN_HEX_LEN);
    free(t1);
    free(t2);
    free(p);
}

static void
test_kubeconfig(void **state)
{
    make_ca("ca");
    char *ca = path("ca.crt");
    char *cakey = path("ca.key");
    char *crt = path("admin.crt");
    char *key = path("admin.key");
    char *kcp = path("admin.kubeconfig");
    struct dpf_error err = {0};
    assert_int_equal(pki_issue_client(ca, cakey, crt, key, "dpf-admin",
                                      "system:masters", 365, &err),
                     0);
    struct pki_kubeconfig kc = {
        .cluster = "dpf",
        .server = "https://127.0.0.1:6443",
        .user = "dpf-admin",
        .namespace_ = "default",
        .ca_path = ca,
        .cert_path = crt,
        .key_path = key,
        .token = "abc123",
    };
    assert_int_equal(pki_kubeconfig_write(kcp, &kc, &err), 0);
    assert_int_equal(file_mode(kcp), 0600);
    char *text;
    size_t len;
    assert_int_equal(file_read_all(kcp, &text, &len), 0);
    assert_non_null(strstr(text, "server: \"https://127.0.0.1:6443\"\n"));
    assert_non_null(strstr(text, "current-context: \"dpf\"\n"));
    assert_non_null(strstr(text, "namespace: \"default\"\n"));
    assert_non_null(strstr(text, "token: \"abc123\"\n"));
    assert_non_null(strstr(text, "client-key-data: "));

    /* certificate-authority-data is the CA file, base64. */
    const char *tag = "certificate-authority-data: ";
    char *p = strstr(text, tag);
    assert_non_null(p);
    p += strlen(tag);
    size_t n = strcspn(p, "\n");
    unsigned char *dec = xmalloc(n);
    int dlen = EVP_DecodeBlock(dec, (unsigned char *) p, (int) n);
    char *pem;
    size_t pem_len;
    assert_int_equal(file_read_all(ca, &pem, &pem_len), 0);
    /* DecodeBlock counts padding as zero bytes. */
    assert_true((size_t) dlen >= pem_len && (size_t) dlen <= pem_len + 2);
    assert_memory_equal(dec, pem, pem_len);
    free(dec);
    free(pem);
    free(text);

    /* Missing required field. */
    kc.server = NULL;
    assert_int_equal(pki_kubeconfig_write(kcp, &kc, &err), -EINVAL);
    free(ca);
    free(cakey);
    free(crt);
    free(key);
    free(kcp);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ca, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_cert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_cert, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kubeconfig, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
