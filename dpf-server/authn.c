/* authn: see authn.h. */
#include "dpf-server/authn.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dpf-server/sa.h"
#include "lib/base/util.h"
#include "lib/net/http-server.h"

struct authn {
    char *token;          /* admin token or NULL */
    struct sa_tokens *sa; /* borrowed or NULL */
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
    return -EACCES;
}
