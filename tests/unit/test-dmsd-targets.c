/* Unit tests for dmsd/dmsd-targets: the control lines of dmsd --targets
 * (parse errors naming line and field) and the set of targets in one pool
 * (add answers with the port, a port in use is refused with the kernel's
 * reason, remove closes the port, an add of a present id replaces it).
 * The server certificate is made here with libcrypto (an EC key, fast). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dmsd/dmsd-targets.h"
#include "dmsd/dmsd.h"
#include "lib/base/util.h"

struct pki {
    char *cert; /* self-signed: also the CA */
    char *key;
    char *other_key;
};

static char *
bio_text(BIO *b)
{
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *s = xmalloc((size_t) n + 1);
    memcpy(s, p, (size_t) n);
    s[n] = '\0';
    BIO_free(b);
    return s;
}

static char *
key_pem(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL),
                     1);
    return bio_text(b);
}

static void
pki_make(struct pki *p)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    EVP_PKEY *other = EVP_EC_gen("P-256");
    assert_non_null(k);
    assert_non_null(other);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               (const unsigned char *) "dmsd-test", -1, -1, 0);
    X509_set_issuer_name(x, name);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_X509(b, x), 1);
    p->cert = bio_text(b);
    p->key = key_pem(k);
    p->other_key = key_pem(other);
    X509_free(x);
    EVP_PKEY_free(k);
    EVP_PKEY_free(other);
}

static void
pki_free(struct pki *p)
{
    free(p->cert);
    free(p->key);
    free(p->other_key);
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    return remove(path);
}

/* An add line for id on addr, with dirs under tmp; key may be swapped. */
static char *
add_line(const struct pki *p, const char *tmp, const char *id, const char *addr,
         const char *key)
{
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s+, s:s+}", "op", "add",
                  "id", id, "bind_address", addr, "ca_pem", p->cert, "cert_pem",
                  p->cert, "key_pem", key ? key : p->key, "rshim", tmp,
                  "/rshim", "image_folder", tmp, "/bfb");
    assert_non_null(o);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* Feed one line, return the reply parsed (NULL if none). */
static json_t *
feed(struct dmsd_targets *t, const char *line, unsigned long lineno)
{
    struct dbuf out;
    dbuf_init(&out);
    dmsd_targets_line(t, line, strlen(line), lineno, &out);
    if (!out.len) {
        dbuf_free(&out);
        return NULL;
    }
    assert_int_equal(out.data[out.len - 1], '\n');
    assert_null(memchr(out.data, '\n', out.len - 1));
    json_error_t jerr;
    json_t *r = json_loadb(out.data, out.len, 0, &jerr);
    assert_non_null(r);
    dbuf_free(&out);
    return r;
}

static const char *
error_of(json_t *r)
{
    assert_false(json_is_true(json_object_get(r, "ok")));
    const char *e = json_string_value(json_object_get(r, "error"));
    assert_non_null(e);
    return e;
}

static bool
port_answers(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t) port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = connect(fd, (struct sockaddr *) &sa, sizeof sa) == 0;
    close(fd);
    return ok;
}

static void
test_parse_errors(void **state)
{
    (void) state;
    static const struct {
        const char *line;
        const char *id; /* the id a refusal still names, or NULL */
        const char *why;
    } cases[] = {
        {"{bad", NULL, "not JSON"},
        {"[1]", NULL, "expected a JSON object"},
        {"{\"op\":\"add\"}", NULL, "field \"id\""},
        {"{\"op\":\"add\",\"id\":\"\"}", NULL, "field \"id\""},
        {"{\"op\":\"add\",\"id\":\"a\\nb\"}", NULL, "field \"id\""},
        {"{\"op\":\"list\",\"id\":\"x\"}", "x", "field \"op\""},
        {"{\"op\":\"remove\",\"id\":\"x\",\"rshim\":\"/r\"}", "x",
         "field \"rshim\": not known for op \"remove\""},
        {"{\"op\":\"add\",\"id\":\"x\",\"auth\":\"none\"}", "x",
         "field \"auth\": not known"},
        {"{\"op\":\"add\",\"id\":\"x\",\"rshim\":7}", "x",
         "field \"rshim\": expected a non-empty string"},
        {"{\"op\":\"add\",\"id\":\"x\",\"rshim\":\"a\\u0000b\"}", NULL,
         "not JSON: \\u0000 is not allowed"},
        {"{\"op\":\"add\",\"id\":\"x\",\"rshim\":\"\"}", "x",
         "field \"rshim\": expected a non-empty string"},
        {"{\"op\":\"add\",\"id\":\"x\",\"rshim\":\"/r\"}", "x",
         "field \"bind_address\": required for op \"add\""},
        {"{\"op\":\"remove\",\"id\":\"a\",\"id\":\"b\"}", NULL, "not JSON"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        struct dmsd_ctl ctl;
        char why[256] = "";
        int rc = dmsd_ctl_parse(&ctl, cases[i].line, strlen(cases[i].line), why,
                                sizeof why);
        if (rc != -EINVAL || !strstr(why, cases[i].why)) {
            fail_msg("%s: rc %d, why \"%s\", expected \"%s\"", cases[i].line,
                     rc, why, cases[i].why);
        }
        if (cases[i].id) {
            assert_string_equal(ctl.id, cases[i].id);
        } else {
            assert_null(ctl.id);
        }
        dmsd_ctl_clear(&ctl);
    }
    struct dmsd_ctl ctl;
    char why[256];
    const char *ok = "{\"op\":\"remove\",\"id\":\"ns.dpu-1\"}";
    assert_int_equal(dmsd_ctl_parse(&ctl, ok, strlen(ok), why, sizeof why), 0);
    assert_int_equal(ctl.op, DMSD_CTL_REMOVE);
    assert_string_equal(ctl.id, "ns.dpu-1");
    dmsd_ctl_clear(&ctl);
}

static void
test_add_remove_replace(void **state)
{
    (void) state;
    struct pki p;
    pki_make(&p);
    char tmp[] = "/tmp/test-dmsd-targets.XXXXXX";
    assert_non_null(mkdtemp(tmp));
    struct dmsd_config defaults = {.sysfs = "/sys",
                                   .exec_timeout_ms = 60 * 1000};
    struct dpf_error err = {0};
    struct dmsd_targets *t = dmsd_targets_create(&defaults, &err);
    assert_non_null(t);

    char *line = add_line(&p, tmp, "ns.a", "127.0.0.1:0", NULL);
    json_t *r = feed(t, line, 1);
    free(line);
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_string_equal(json_string_value(json_object_get(r, "id")), "ns.a");
    int port = (int) json_integer_value(json_object_get(r, "port"));
    json_decref(r);
    assert_true(port > 0);
    assert_true(port_answers(port));
    assert_int_equal(dmsd_targets_count(t), 1);

    /* the same port for another id: refused, with the kernel's reason */
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", port);
    line = add_line(&p, tmp, "ns.b", addr, NULL);
    r = feed(t, line, 2);
    char want[128];
    snprintf(want, sizeof want, "bind %s: Address already in use", addr);
    assert_string_equal(error_of(r), want);
    assert_string_equal(json_string_value(json_object_get(r, "id")), "ns.b");
    json_decref(r);
    assert_int_equal(dmsd_targets_count(t), 1);

    /* a key that is not the certificate's */
    char *bad = add_line(&p, tmp, "ns.c", "127.0.0.1:0", p.other_key);
    r = feed(t, bad, 3);
    free(bad);
    assert_string_equal(error_of(r),
                        "key_pem: not the key of the certificate in cert_pem");
    json_decref(r);

    /* an add of a present id replaces it, on the same port */
    char *again = add_line(&p, tmp, "ns.a", addr, NULL);
    r = feed(t, again, 4);
    assert_true(json_is_true(json_object_get(r, "ok")));
    assert_int_equal(json_integer_value(json_object_get(r, "port")), port);
    json_decref(r);
    assert_int_equal(dmsd_targets_count(t), 1);

    /* remove closes the port */
    r = feed(t, "{\"op\":\"remove\",\"id\":\"ns.a\"}", 6);
    assert_true(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
    assert_false(port_answers(port));
    assert_int_equal(dmsd_targets_count(t), 0);
    r = feed(t, "{\"op\":\"remove\",\"id\":\"ns.a\"}", 7);
    assert_string_equal(error_of(r), "line 7: no target \"ns.a\" to remove");
    json_decref(r);

    /* and frees it for another id */
    r = feed(t, line, 8);
    assert_true(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
    assert_true(port_answers(port));

    /* bad lines name the line; blank ones get no reply */
    r = feed(t, "{\"op\":\"add\",\"id\":\"ns.d\"}", 9);
    assert_string_equal(
        error_of(r), "line 9: field \"bind_address\": required for op \"add\"");
    assert_string_equal(json_string_value(json_object_get(r, "id")), "ns.d");
    json_decref(r);
    assert_null(feed(t, " \t\r", 10));

    dmsd_targets_destroy(t);
    assert_false(port_answers(port));
    free(line);
    free(again);
    pki_free(&p);
    nftw(tmp, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

static void
test_single_pem(void **state)
{
    (void) state;
    struct pki p;
    pki_make(&p);
    char tmp[] = "/tmp/test-dmsd-targets.XXXXXX";
    assert_non_null(mkdtemp(tmp));
    char *images = xasprintf("%s/bfb", tmp);
    struct dmsd_config cfg = {.bind_address = "127.0.0.1:0",
                              .auth = DMSD_AUTH_CERT,
                              .ca_pem = p.cert,
                              .cert_pem = p.cert,
                              .key_pem = p.key,
                              .image_folder = images,
                              .rshim = tmp,
                              .exec_timeout_ms = 1000};
    struct dpf_error err = {0};
    struct dmsd *s = dmsd_start(&cfg, &err);
    assert_non_null(s);
    assert_true(port_answers(dmsd_port(s)));
    dmsd_stop(s);
    cfg.ca_pem = "not a certificate";
    assert_null(dmsd_start(&cfg, &err));
    assert_string_equal(err.message, "ca_pem: no PEM certificate in it");
    free(images);
    pki_free(&p);
    nftw(tmp, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_add_remove_replace),
        cmocka_unit_test(test_single_pem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
