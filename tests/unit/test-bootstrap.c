/* Unit tests for node bootstrap: the CA pin (kube-bootstrap), tokens and
 * their Secret, CSRs made by the client and checked by the server
 * (pki-csr, the signers' rules in dpf-server/certs), bootstrap-token
 * authentication (dpf-server/authn) and the rotation point. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "dpf-server/authn.h"
#include "dpf-server/certs.h"
#include "lib/base/base64.h"
#include "lib/kube/kube-bootstrap.h"
#include "lib/net/pki-csr.h"
#include "lib/net/pki.h"

/* A fixed CA; its pin computed independently (python3-cryptography:
 * SHA-256 over the DER SubjectPublicKeyInfo). */
static const char ca_pem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBeTCCAR+gAwIBAgIUNd22m18GdSWrhWmp3OjpZ4av0j8wCgYIKoZIzj0EAwIw\n"
    "EjEQMA4GA1UEAwwHdW5pdC1jYTAeFw0yNjEyMDIwMDA3MTdaFw0zNjExMjkwMDA3\n"
    "MTdaMBIxEDAOBgNVBAMMB3VuaXQtY2EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNC\n"
    "AAQI+HKan7BKgvjm8QkESNqHpH3mHGupT+2hEoVR2m7A8uMWYnXccL+gyjBk02wO\n"
    "NjWBBUY6U1lWL+xqUfxxco66o1MwUTAdBgNVHQ4EFgQUT26+D/VDNHUz70M8Lc4G\n"
    "ItJLd6cwHwYDVR0jBBgwFoAUT26+D/VDNHUz70M8Lc4GItJLd6cwDwYDVR0TAQH/\n"
    "BAUwAwEB/zAKBggqhkjOPQQDAgNIADBFAiEAituebKfKuOtz08KF+aXdIakNJhyS\n"
    "BubODVFlh2SFuM0CICBEQua4fFkCJdItWTJO9cbWfuesG3JsvMlSMDpySTKS\n"
    "-----END CERTIFICATE-----\n";
#define CA_PIN \
    "sha256:460d7c4820529de4395ef9ebd801e67f97cfc1eb3d4b9342a0c753a8f18da96f"

static void
test_ca_hash(void **state)
{
    (void) state;
    char h[KUBE_BOOTSTRAP_HASH_SIZE];
    struct dpf_error err = {0};
    assert_int_equal(kube_bootstrap_ca_hash(ca_pem, strlen(ca_pem), h, &err),
                     0);
    assert_string_equal(h, CA_PIN);
    assert_int_equal(
        kube_bootstrap_ca_hash_check(ca_pem, strlen(ca_pem), CA_PIN, &err), 0);
    /* hex in upper case is the same pin */
    char upper[sizeof CA_PIN];
    strcpy(upper, CA_PIN);
    for (char *p = upper + 7; *p; p++) {
        if (*p >= 'a' && *p <= 'f') {
            *p = (char) (*p - 'a' + 'A');
        }
    }
    assert_int_equal(
        kube_bootstrap_ca_hash_check(ca_pem, strlen(ca_pem), upper, &err), 0);
    /* another pin: refused, and the message shows the real hash */
    char other[sizeof CA_PIN];
    strcpy(other, CA_PIN);
    other[10] = other[10] == '0' ? '1' : '0';
    assert_int_equal(
        kube_bootstrap_ca_hash_check(ca_pem, strlen(ca_pem), other, &err),
        -EKEYREJECTED);
    assert_non_null(strstr(err.message, CA_PIN));
    assert_non_null(strstr(err.message, "does not match"));
    /* malformed pins and CAs */
    const char *bad[] = {"sha1:460d", "sha256:xyz", "460d7c48", "", "sha256:"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(
            kube_bootstrap_ca_hash_check(ca_pem, strlen(ca_pem), bad[i], &err),
            -EINVAL);
    }
    assert_int_equal(kube_bootstrap_ca_hash("junk", 4, h, &err), -EINVAL);
    assert_int_equal(kube_bootstrap_ca_hash_check("junk", 4, CA_PIN, &err),
                     -EINVAL);
}

static void
test_tokens(void **state)
{
    (void) state;
    struct kube_bootstrap_token t, u;
    struct dpf_error err = {0};
    assert_int_equal(kube_bootstrap_token_generate(&t, &err), 0);
    assert_int_equal(strlen(t.id), 6);
    assert_int_equal(strlen(t.secret), 16);
    char s[32];
    snprintf(s, sizeof s, "%s.%s", t.id, t.secret);
    assert_true(authn_bootstrap_token_form(s, strlen(s)));
    assert_int_equal(kube_bootstrap_token_parse(s, strlen(s), &u, &err), 0);
    assert_string_equal(u.id, t.id);
    assert_string_equal(u.secret, t.secret);
    const char *bad[] = {"abcdef0123456789abcdef",
                         "abcde.0123456789abcdef",
                         "ABCDEF.0123456789abcdef",
                         "abcdef.0123456789abcde",
                         "abcdef.0123456789abcdef0",
                         "abcdef.0123456789abcd-f",
                         ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(
            kube_bootstrap_token_parse(bad[i], strlen(bad[i]), &u, &err),
            -EINVAL);
        assert_false(authn_bootstrap_token_form(bad[i], strlen(bad[i])));
        /* the message never echoes the value */
        if (bad[i][0]) {
            assert_null(strstr(err.message, bad[i]));
        }
    }
    /* a NUL inside does not pass */
    char nul[] = "abcdef.0123456789abcdef";
    nul[3] = '\0';
    assert_int_equal(kube_bootstrap_token_parse(nul, 23, &u, &err), -EINVAL);

    json_t *sec = kube_bootstrap_token_secret(&t, 1000000000, 3600, NULL, "d");
    assert_string_equal(json_string_value(json_object_get(sec, "type")),
                        "bootstrap.kubernetes.io/token");
    json_t *sd = json_object_get(sec, "stringData");
    assert_string_equal(json_string_value(json_object_get(sd, "expiration")),
                        "2001-09-09T02:46:40Z");
    assert_string_equal(
        json_string_value(json_object_get(sd, "auth-extra-groups")),
        KUBE_BOOTSTRAP_DEFAULT_GROUP);
    char want[64];
    snprintf(want, sizeof want, "bootstrap-token-%s", t.id);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(sec, "metadata"), "name")),
                        want);
    json_decref(sec);
    sec = kube_bootstrap_token_secret(&t, 1000000000, 0, NULL, NULL);
    assert_null(
        json_object_get(json_object_get(sec, "stringData"), "expiration"));
    json_decref(sec);

    strcpy(t.id, "abcdef");
    strcpy(t.secret, "0123456789abcdef");
    char *j = kube_bootstrap_join_text("https://10.0.0.1:6443/", &t, CA_PIN);
    assert_string_equal(j, "kubeadm join 10.0.0.1:6443 --token "
                           "abcdef.0123456789abcdef "
                           "--discovery-token-ca-cert-hash " CA_PIN);
    free(j);
}

/* A bootstrap-token Secret as stored (data base64). */
static json_t *
stored_secret(const char *id, const char *secret, const char *exp,
              const char *usage, const char *groups)
{
    json_t *data = json_object();
    const char *kv[][2] = {{"token-id", id},
                           {"token-secret", secret},
                           {"expiration", exp},
                           {"usage-bootstrap-authentication", usage},
                           {"auth-extra-groups", groups}};
    for (size_t i = 0; i < 5; i++) {
        if (kv[i][1]) {
            char *b = base64_encode(kv[i][1], strlen(kv[i][1]), BASE64_STD);
            json_object_set_new(data, kv[i][0], json_string(b));
            free(b);
        }
    }
    return json_pack("{s:s,s:o,s:{s:s}}", "type",
                     "bootstrap.kubernetes.io/token", "data", data, "metadata",
                     "name", "x");
}

static void
test_token_authn(void **state)
{
    (void) state;
    const char *tok = "abcdef.0123456789abcdef";
    struct authn_user u;
    int64_t now = authn_parse_rfc3339("2026-12-01T00:00:00Z");
    assert_true(now > 0);
    json_t *s = stored_secret("abcdef", "0123456789abcdef",
                              "2026-12-02T00:00:00Z", "true",
                              "system:bootstrappers:kubeadm:default-node-"
                              "token, system:masters");
    assert_int_equal(authn_bootstrap_check(s, tok, strlen(tok), now, &u), 1);
    assert_string_equal(u.name, "system:bootstrap:abcdef");
    assert_true(authn_user_in_group(&u, "system:bootstrappers"));
    assert_true(authn_user_in_group(
        &u, "system:bootstrappers:kubeadm:default-node-token"));
    assert_true(authn_user_in_group(&u, "system:authenticated"));
    assert_false(authn_user_in_group(&u, "system:masters"));
    /* expired: at and after the instant */
    int64_t exp = authn_parse_rfc3339("2026-12-02T00:00:00Z");
    assert_int_equal(authn_bootstrap_check(s, tok, strlen(tok), exp, &u), 0);
    /* a wrong secret, a different id */
    const char *wrong = "abcdef.0123456789abcdee";
    assert_int_equal(authn_bootstrap_check(s, wrong, strlen(wrong), now, &u),
                     0);
    const char *other = "bbcdef.0123456789abcdef";
    assert_int_equal(authn_bootstrap_check(s, other, strlen(other), now, &u),
                     0);
    json_decref(s);
    /* not for authentication, wrong type */
    s = stored_secret("abcdef", "0123456789abcdef", NULL, "false", NULL);
    assert_int_equal(authn_bootstrap_check(s, tok, strlen(tok), now, &u), 0);
    json_decref(s);
    s = stored_secret("abcdef", "0123456789abcdef", NULL, "true", NULL);
    assert_int_equal(authn_bootstrap_check(s, tok, strlen(tok), now, &u), 1);
    json_object_set_new(s, "type", json_string("Opaque"));
    assert_int_equal(authn_bootstrap_check(s, tok, strlen(tok), now, &u), 0);
    json_decref(s);
    /* a malformed expiration never authenticates */
    s = stored_secret("abcdef", "0123456789abcdef", "tomorrow", "true", NULL);
    assert_int_equal(authn_bootstrap_check(s, tok, strlen(tok), now, &u), 0);
    json_decref(s);
    assert_int_equal(authn_parse_rfc3339("2026-12-02T05:30:00+05:30"),
                     authn_parse_rfc3339("2026-12-02T00:00:00Z"));
    assert_int_equal(authn_parse_rfc3339("2026-12-02"), -1);
}

static void
test_csr_roundtrip_and_rules(void **state)
{
    (void) state;
    char *key = NULL, *csr = NULL;
    struct dpf_error err = {0};
    const char *orgs[] = {"system:nodes", NULL};
    const char *sans[] = {"n1", "10.0.0.7", "fd00::1", NULL};
    assert_int_equal(
        kube_bootstrap_csr_new("system:node:n1", orgs, sans, &key, &csr, &err),
        0);
    assert_non_null(strstr(key, "PRIVATE KEY"));
    struct pki_csr_info info;
    assert_int_equal(pki_csr_parse(csr, strlen(csr), &info, &err), 0);
    assert_string_equal(info.cn, "system:node:n1");
    assert_int_equal(info.n_orgs, 1);
    assert_string_equal(info.orgs[0], "system:nodes");
    assert_int_equal(info.n_dns, 1);
    assert_string_equal(info.dns[0], "n1");
    assert_int_equal(info.n_ips, 2);
    assert_string_equal(info.ips[0], "10.0.0.7");
    assert_string_equal(info.ips[1], "fd00::1");
    assert_true(info.key_ok);

    json_t *serving = json_pack("[s,s]", "digital signature", "server auth");
    json_t *client = json_pack("[s]", "client auth");
    unsigned bits;
    char msg[256];
    assert_int_equal(certs_signer_check("kubernetes.io/kubelet-serving", &info,
                                        serving, &bits, msg, sizeof msg),
                     0);
    assert_int_equal(bits, PKI_USAGE_DIGITAL_SIGNATURE | PKI_USAGE_SERVER_AUTH);
    /* names are not for client certificates */
    assert_int_equal(
        certs_signer_check("kubernetes.io/kube-apiserver-client-kubelet", &info,
                           client, &bits, msg, sizeof msg),
        -EINVAL);
    assert_non_null(strstr(msg, "DNS and IP names are not allowed"));
    assert_false(certs_is_node_client(&info, client));
    assert_int_equal(certs_signer_check("example.com/x", &info, client, &bits,
                                        msg, sizeof msg),
                     -ENOENT);
    free(key);
    free(csr);

    /* a node client request */
    assert_int_equal(
        kube_bootstrap_csr_new("system:node:n1", orgs, NULL, &key, &csr, &err),
        0);
    assert_int_equal(pki_csr_parse(csr, strlen(csr), &info, &err), 0);
    assert_true(certs_is_node_client(&info, client));
    assert_false(certs_is_node_client(&info, serving));
    assert_int_equal(
        certs_signer_check("kubernetes.io/kube-apiserver-client-kubelet", &info,
                           client, &bits, msg, sizeof msg),
        0);
    assert_int_equal(bits, PKI_USAGE_CLIENT_AUTH);
    assert_int_equal(certs_signer_check("kubernetes.io/kubelet-serving", &info,
                                        serving, &bits, msg, sizeof msg),
                     -EINVAL);
    assert_non_null(strstr(msg, "at least one DNS or IP name"));
    /* two PEM blocks, trailing junk, a damaged signature */
    size_t n = strlen(csr);
    char *two = malloc(2 * n + 1);
    memcpy(two, csr, n);
    memcpy(two + n, csr, n + 1);
    assert_int_equal(pki_csr_parse(two, 2 * n, &info, &err), -EINVAL);
    assert_non_null(strstr(err.message, "more than one PEM block"));
    free(two);
    char *bad = strdup(csr);
    char *body = strchr(bad, '\n') + 40;
    *body = *body == 'A' ? 'B' : 'A';
    assert_int_equal(pki_csr_parse(bad, n, &info, &err), -EINVAL);
    free(bad);
    assert_int_equal(pki_csr_parse("hello", 5, &info, &err), -EINVAL);
    assert_non_null(strstr(err.message, "not a PEM CERTIFICATE REQUEST"));
    free(key);
    free(csr);

    /* someone else's identity is never a node client */
    const char *masters[] = {"system:masters", NULL};
    assert_int_equal(
        kube_bootstrap_csr_new("dpf-admin", masters, NULL, &key, &csr, &err),
        0);
    assert_int_equal(pki_csr_parse(csr, strlen(csr), &info, &err), 0);
    assert_false(certs_is_node_client(&info, client));
    assert_int_equal(
        certs_signer_check("kubernetes.io/kube-apiserver-client-kubelet", &info,
                           client, &bits, msg, sizeof msg),
        -EINVAL);
    assert_non_null(strstr(msg, "system:node:<name>"));
    free(key);
    free(csr);
    json_decref(serving);
    json_decref(client);

    assert_int_equal(pki_usage_bit("client auth"), PKI_USAGE_CLIENT_AUTH);
    assert_int_equal(pki_usage_bit("code signing"), 0);
    assert_int_equal(pki_usage_bit("flying"), -1);
}

/* A request read once is signed from what was read: the certificate
 * carries its subject and the lifetime asked for; a damaged request is
 * never read. */
static void
test_csr_read_then_sign(void **state)
{
    (void) state;
    char dir[] = "/tmp/dpf-test-csr-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char ca[64], cakey[80];
    snprintf(ca, sizeof ca, "%s/ca.crt", dir);
    snprintf(cakey, sizeof cakey, "%s/ca.key", dir);
    struct dpf_error err = {0};
    assert_int_equal(pki_ca_create(ca, cakey, "test-ca", 30, &err), 0);
    struct pki_signer *s = pki_signer_load(ca, cakey, &err);
    assert_non_null(s);

    char *key = NULL, *csr = NULL;
    const char *orgs[] = {"system:nodes", NULL};
    assert_int_equal(
        kube_bootstrap_csr_new("system:node:n2", orgs, NULL, &key, &csr, &err),
        0);
    struct pki_csr_info info;
    struct pki_csr *req = pki_csr_read(csr, strlen(csr), &info, &err);
    assert_non_null(req);
    assert_string_equal(info.cn, "system:node:n2");
    char *cert = NULL;
    assert_int_equal(
        pki_signer_sign(s, req, PKI_USAGE_CLIENT_AUTH, 7200, &cert, &err), 0);
    assert_non_null(strstr(cert, "BEGIN CERTIFICATE"));
    struct kube_bootstrap_cert_times t;
    assert_int_equal(kube_bootstrap_cert_times(cert, strlen(cert), &t, &err),
                     0);
    /* not-before a minute back, then the 2 h asked for */
    assert_int_equal(t.not_after_s - t.not_before_s, 7200 + 60);
    /* the certificate carries the request's key (copied as it is, not
     * parsed and set), a P-256 key named by its curve, and verifies
     * against the CA */
    BIO *cb = BIO_new_mem_buf(cert, -1), *kb = BIO_new_mem_buf(key, -1);
    X509 *x = PEM_read_bio_X509(cb, NULL, NULL, NULL);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL);
    assert_non_null(x);
    assert_non_null(k);
    assert_non_null(strstr(key, "BEGIN PRIVATE KEY"));
    assert_int_equal(X509_check_private_key(x, k), 1);
    char group[32];
    size_t glen = 0;
    assert_true(EVP_PKEY_get_group_name(k, group, sizeof group, &glen));
    assert_string_equal(group, "prime256v1");
    FILE *caf = fopen(ca, "r");
    X509 *cax = caf ? PEM_read_X509(caf, NULL, NULL, NULL) : NULL;
    assert_non_null(cax);
    assert_int_equal(X509_verify(x, X509_get0_pubkey(cax)), 1);
    fclose(caf);
    X509_free(cax);
    X509_free(x);
    EVP_PKEY_free(k);
    BIO_free(cb);
    BIO_free(kb);
    free(cert);
    pki_csr_free(req);

    char *bad = strdup(csr);
    char *body = strchr(bad, '\n') + 40;
    *body = *body == 'A' ? 'B' : 'A';
    assert_null(pki_csr_read(bad, strlen(bad), &info, &err));
    assert_int_equal(err.code, 422);
    free(bad);
    pki_csr_free(NULL);
    free(key);
    free(csr);
    pki_signer_free(s);
    unlink(ca);
    unlink(cakey);
    rmdir(dir);
}

static void
test_rotation_point(void **state)
{
    (void) state;
    /* DPF: 24 h, renewed 8 h before the end */
    struct kube_bootstrap_cert_times t = {0, 24 * 3600};
    assert_false(kube_bootstrap_cert_due(&t, 0));
    assert_false(kube_bootstrap_cert_due(&t, 16 * 3600 - 1));
    assert_true(kube_bootstrap_cert_due(&t, 16 * 3600));
    assert_true(kube_bootstrap_cert_due(&t, 30 * 3600));
    struct kube_bootstrap_cert_times bad = {100, 100};
    assert_true(kube_bootstrap_cert_due(&bad, 0));
    struct dpf_error err = {0};
    assert_int_equal(
        kube_bootstrap_cert_times(ca_pem, strlen(ca_pem), &t, &err), 0);
    assert_int_equal(t.not_after_s - t.not_before_s, 3650LL * 24 * 3600);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ca_hash),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_token_authn),
        cmocka_unit_test(test_csr_roundtrip_and_rules),
        cmocka_unit_test(test_csr_read_then_sign),
        cmocka_unit_test(test_rotation_point),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
