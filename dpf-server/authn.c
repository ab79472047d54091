/* authn: see authn.h. */
#include "dpf-server/authn.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "dpf-server/sa.h"
#include "lib/base/base64.h"
#include "lib/base/util.h"
#include "lib/net/http-server.h"
#include "lib/store/store.h"

struct authn {
    char *token;          /* admin token or NULL */
    struct sa_tokens *sa; /* borrowed or NULL */
    struct store *store;  /* borrowed or NULL: bootstrap tokens */
};

struct authn *
authn_create(const char *admin_token, struct sa_tokens *sa)
{
    struct authn *a = xcalloc(1, sizeof(*a));
    a->token = admin_token ? xstrdup(admin_token) : NULL;
    a->sa = sa;
    return a;
}

void
authn_set_store(struct authn *a, struct store *st)
{
    a->store = st;
}

void
authn_destroy(struct authn *a)
{
    if (!a) {
        return;
    }
    if (a->token) {
        OPENSSL_cleanse(a->token, strlen(a->token));
        free(a->token);
    }
    free(a);
}

void
auth_fmt(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

void
authn_user_init(struct authn_user *u, const char *name)
{
    memset(u, 0, offsetof(struct authn_user, groups));
    u->pod_name[0] = '\0';
    u->pod_uid[0] = '\0';
    auth_fmt(u->name, sizeof(u->name), "%s", name ? name : "");
}

bool
authn_user_in_group(const struct authn_user *u, const char *g)
{
    for (size_t i = 0; i < u->n_groups; i++) {
        if (!strcmp(u->groups[i], g)) {
            return true;
        }
    }
    return false;
}

void
authn_user_add_group(struct authn_user *u, const char *g)
{
    if (u->n_groups >= AUTHN_GROUPS_MAX || authn_user_in_group(u, g)) {
        return;
    }
    auth_fmt(u->groups[u->n_groups++], AUTHN_NAME_MAX, "%s", g);
}

/* Does the given token equal the admin token? Constant time in the
 * length of the admin token, whatever was sent. */
static bool
authn_is_admin_token(const char *token, const char *given, size_t glen)
{
    if (!token) {
        return false;
    }
    size_t tlen = strlen(token);
    char buf[256] = {0};
    memcpy(buf, given, DPF_MIN(glen, sizeof(buf)));
    bool same = tlen < sizeof(buf) && CRYPTO_memcmp(buf, token, tlen) == 0;
    return same && glen == tlen;
}

/* ------------------------------------------------------------------ */
/* bootstrap tokens                                                     */

bool
authn_bootstrap_token_form(const char *s, size_t len)
{
    if (len != AUTHN_BOOTSTRAP_ID_LEN + 1 + AUTHN_BOOTSTRAP_SECRET_LEN ||
        s[AUTHN_BOOTSTRAP_ID_LEN] != '.') {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (i == AUTHN_BOOTSTRAP_ID_LEN) {
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            return false;
        }
    }
    return true;
}

/* A Secret data value decoded (malloc'd) or NULL. */
static char *
authn_secret_value(const json_t *data, const char *key)
{
    const char *v = json_string_value(json_object_get(data, key));
    char *out = NULL;
    size_t n;
    if (!v || base64_decode(v, strlen(v), BASE64_STRICT, &out, &n) < 0) {
        return NULL;
    }
    if (strlen(out) != n) { /* a NUL inside: not a usable value */
        free(out);
        return NULL;
    }
    return out;
}

/* "2026-12-02T00:00:00Z" -> Unix seconds; -1 when malformed. Only the
 * UTC form kubeadm writes, and offsets, as time.RFC3339 parses. */
int64_t
authn_parse_rfc3339(const char *s)
{
    struct tm tm = {0};
    const char *p = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!p) {
        return -1;
    }
    if (*p == '.') { /* fractional seconds: ignored */
        p++;
        while (*p >= '0' && *p <= '9') {
            p++;
        }
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int hh = (p[1] - '0') * 10 + (p[2] - '0');
        int mm = (p[4] - '0') * 10 + (p[5] - '0');
        off = (int64_t) (hh * 3600 + mm * 60) * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return -1;
    }
    if (*p) {
        return -1;
    }
    return (int64_t) timegm(&tm) - off;
}

int
authn_bootstrap_check(const json_t *secret, const char *given, size_t glen,
                      int64_t now, struct authn_user *u)
{
    if (!authn_bootstrap_token_form(given, glen)) {
        return 0;
    }
    const char *type = json_string_value(json_object_get(secret, "type"));
    const json_t *data = json_object_get(secret, "data");
    if (!type || strcmp(type, "bootstrap.kubernetes.io/token") != 0 ||
        !json_is_object(data) ||
        json_object_get(json_object_get(secret, "metadata"),
                        "deletionTimestamp")) {
        return 0;
    }
    int rc = 0;
    char *id = authn_secret_value(data, "token-id");
    char *sec = authn_secret_value(data, "token-secret");
    char *use = authn_secret_value(data, "usage-bootstrap-authentication");
    char *exp = authn_secret_value(data, "expiration");
    char *groups = authn_secret_value(data, "auth-extra-groups");
    if (!id || !sec || strcmp(id, "") == 0 ||
        strncmp(id, given, AUTHN_BOOTSTRAP_ID_LEN) != 0 ||
        strlen(id) != AUTHN_BOOTSTRAP_ID_LEN ||
        strlen(sec) != AUTHN_BOOTSTRAP_SECRET_LEN) {
        goto out;
    }
    if (CRYPTO_memcmp(sec, given + AUTHN_BOOTSTRAP_ID_LEN + 1,
                      AUTHN_BOOTSTRAP_SECRET_LEN) != 0) {
        goto out;
    }
    if (!use || strcmp(use, "true") != 0) {
        goto out;
    }
    if (exp) {
        int64_t t = authn_parse_rfc3339(exp);
        if (t < 0 || now >= t) {
            goto out;
        }
    }
    char name[AUTHN_NAME_MAX];
    auth_fmt(name, sizeof name, "%s%s", AUTHN_BOOTSTRAP_PREFIX, id);
    authn_user_init(u, name);
    authn_user_add_group(u, AUTHN_GROUP_BOOTSTRAPPERS);
    /* Extra groups must stay under system:bootstrappers: (as
     * kube-apiserver's bootstrap authenticator): a token must not name
     * itself into system:masters. */
    char *save = NULL;
    for (char *g = groups ? strtok_r(groups, ",", &save) : NULL; g;
         g = strtok_r(NULL, ",", &save)) {
        while (*g == ' ') {
            g++;
        }
        size_t n = strlen(g);
        while (n > 0 && g[n - 1] == ' ') {
            g[--n] = '\0';
        }
        if (!strncmp(g, AUTHN_GROUP_BOOTSTRAPPERS ":",
                     strlen(AUTHN_GROUP_BOOTSTRAPPERS) + 1)) {
            authn_user_add_group(u, g);
        }
    }
    authn_user_add_group(u, AUTHN_GROUP_AUTHENTICATED);
    rc = 1;
out:
    if (sec) {
        OPENSSL_cleanse(sec, strlen(sec));
    }
    free(id);
    free(sec);
    free(use);
    free(exp);
    free(groups);
    return rc;
}

/* Look the token's Secret up in the store (by id: kube-system/
 * bootstrap-token-<id>) and check it. 1 or 0; never logs the token. */
static int
authn_bootstrap_token(struct store *st, const char *given, size_t glen,
                      int64_t now, struct authn_user *u)
{
    if (!authn_bootstrap_token_form(given, glen)) {
        return 0;
    }
    char key[96];
    auth_fmt(key, sizeof key, "/core/secrets/kube-system/bootstrap-token-%.*s",
             AUTHN_BOOTSTRAP_ID_LEN, given);
    struct store_kv kv = {0};
    if (store_get(st, key, &kv, NULL) < 0) {
        return 0;
    }
    json_t *obj = json_loadb(kv.value, kv.len, 0, NULL);
    store_kv_free(&kv);
    int rc = obj ? authn_bootstrap_check(obj, given, glen, now, u) : 0;
    json_decref(obj);
    return rc;
}

int
authn_request(struct authn *a, const struct http_request *req,
              struct authn_user *u)
{
    const char *cn = http_request_peer_cn(req);
    if (cn) {
        /* Verified against our CA by the TLS layer. */
        authn_user_init(u, cn);
        size_t n = 0;
        const char *const *orgs = http_request_peer_orgs(req, &n);
        for (size_t i = 0; i < n; i++) {
            authn_user_add_group(u, orgs[i]);
        }
        authn_user_add_group(u, AUTHN_GROUP_AUTHENTICATED);
        return 1;
    }
    /* The length as received: a NUL inside the header must not end the
     * comparison early (MHD's own view of the value stops there). */
    size_t alen;
    const char *auth = http_request_header_n(req, "Authorization", &alen);
    if (!auth) {
        authn_user_init(u, AUTHN_USER_ANONYMOUS);
        authn_user_add_group(u, AUTHN_GROUP_UNAUTHENTICATED);
        return 0;
    }
    if (alen < 7 || strncasecmp(auth, "Bearer ", 7) != 0 ||
        strlen(auth) != alen) {
        return -EACCES;
    }
    const char *given = auth + 7;
    size_t glen = alen - 7;
    while (glen > 0 && *given == ' ') {
        given++;
        glen--;
    }
    while (glen > 0 && given[glen - 1] == ' ') {
        glen--;
    }
    if (authn_is_admin_token(a->token, given, glen)) {
        authn_user_init(u, AUTHN_ADMIN_USER);
        authn_user_add_group(u, AUTHN_GROUP_MASTERS);
        authn_user_add_group(u, AUTHN_GROUP_AUTHENTICATED);
        return 1;
    }
    if (a->sa && sa_tokens_authenticate(a->sa, given, glen, u) == 1) {
        return 1;
    }
    if (a->store &&
        authn_bootstrap_token(a->store, given, glen, time(NULL), u) == 1) {
        return 1;
    }
    return -EACCES;
}
