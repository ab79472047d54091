/* schema-names: Kubernetes' name rules — DNS-1123 labels and subdomains
 * (object names, namespaces), qualified names (label and annotation keys,
 * finalizers) and label values — with kube-apiserver's messages. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "api/schema-engine.h"

static bool
is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool
is_alnum(char c)
{
    return is_lower_alnum(c) || (c >= 'A' && c <= 'Z');
}

/* [a-z0-9]([-a-z0-9]*[a-z0-9])? of length len, any length: a label, or
 * one dot-separated part of a subdomain. */
static bool
dns_part(const char *s, size_t len)
{
    if (len == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[len - 1])) {
        return false;
    }
    for (size_t i = 1; i + 1 < len; i++) {
        if (!is_lower_alnum(s[i]) && s[i] != '-') {
            return false;
        }
    }
    return true;
}

static bool
dns_label_n(const char *s, size_t len)
{
    return len <= 63 && dns_part(s, len);
}

bool
schema_is_dns_label(const char *s)
{
    return s && dns_label_n(s, strlen(s));
}

/* Parts as a label's but without the 63 limit, 253 in all. */
static bool
dns_subdomain_n(const char *s, size_t len)
{
    if (len == 0 || len > 253) {
        return false;
    }
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || s[i] == '.') {
            if (!dns_part(s + start, i - start)) {
                return false;
            }
            start = i + 1;
        }
    }
    return true;
}

bool
schema_is_dns_subdomain(const char *s)
{
    return s && dns_subdomain_n(s, strlen(s));
}

/* ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9] */
static bool
qualified_name_part(const char *s, size_t len)
{
    if (len == 0 || len > 63 || !is_alnum(s[0]) || !is_alnum(s[len - 1])) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.') {
            return false;
        }
    }
    return true;
}

static const char msg_qname[] =
    "name part must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character (e.g. "
    "'MyName', or 'my.name', or '123-abc')";

/* Add an Invalid cause for a key (a string value) with a message. */
static void
key_invalid(struct dpf_error *err, const char *path, const char *key,
            const char *msg)
{
    json_t *jk = json_string(key);
    schema_err_invalid(err, path, jk, "%s", msg);
    json_decref(jk);
}

int
schema_check_qualified_name(const char *key, const char *path,
                            struct dpf_error *err)
{
    const char *slash = strchr(key, '/');
    const char *name = slash ? slash + 1 : key;
    int rc = 0;
    if (slash) {
        size_t plen = (size_t) (slash - key);
        if (plen == 0) {
            key_invalid(err, path, key, "prefix part must be non-empty");
            rc = -EINVAL;
        } else if (!dns_subdomain_n(key, plen)) {
            key_invalid(err, path, key,
                        "prefix part a lowercase RFC 1123 subdomain must "
                        "consist of lower case alphanumeric characters, '-' "
                        "or '.', and must start and end with an alphanumeric "
                        "character");
            rc = -EINVAL;
        }
    }
    size_t nlen = strlen(name);
    if (nlen == 0) {
        key_invalid(err, path, key, "name part must be non-empty");
        rc = -EINVAL;
    } else if (nlen > 63) {
        key_invalid(err, path, key,
                    "name part must be no more than 63 characters");
        rc = -EINVAL;
    } else if (!qualified_name_part(name, nlen)) {
        key_invalid(err, path, key, msg_qname);
        rc = -EINVAL;
    }
    return rc;
}

int
schema_check_labels(const json_t *labels, const char *path,
                    struct dpf_error *err)
{
    if (!labels || !json_is_object(labels)) {
        return 0;
    }
    int rc = 0;
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *) labels, key, val)
    {
        if (schema_check_qualified_name(key, path, err) < 0) {
            rc = -EINVAL;
        }
        if (!json_is_string(val)) {
            continue; /* the field tree reports the type */
        }
        const char *s = json_string_value(val);
        size_t n = strlen(s);
        if (n > 63) {
            schema_err_invalid(err, path, val,
                               "must be no more than 63 characters");
            rc = -EINVAL;
        } else if (n && !qualified_name_part(s, n)) {
            schema_err_invalid(
                err, path, val,
                "a valid label must be an empty string or consist of "
                "alphanumeric characters, '-', '_' or '.', and must start "
                "and end with an alphanumeric character");
            rc = -EINVAL;
        }
    }
    return rc;
}

static const char msg_subdomain[] =
    "a lowercase RFC 1123 subdomain must consist of lower case "
    "alphanumeric characters, '-' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'example.com')";
static const char msg_label[] =
    "a lowercase RFC 1123 label must consist of lower case alphanumeric "
    "characters or '-', and must start and end with an alphanumeric "
    "character (e.g. 'my-name', or '123-abc')";

int
schema_check_kind_name(const struct schema_kind *k, const char *name,
                       bool prefix, const char *path, struct dpf_error *err)
{
    if (k->name_is_path_segment) {
        /* path.IsValidPathSegmentName: RBAC names such as
         * "system:aggregate-to-view" are no DNS names. */
        const char *why = NULL;
        if (!prefix && (!strcmp(name, ".") || !strcmp(name, ".."))) {
            why = !strcmp(name, ".") ? "may not be '.'" : "may not be '..'";
        } else if (strchr(name, '/')) {
            why = "may not contain '/'";
        } else if (strchr(name, '%')) {
            why = "may not contain '%'";
        }
        if (why) {
            json_t *jv = json_string(name);
            schema_err_invalid(err, path, jv, "%s", why);
            json_decref(jv);
            return -EINVAL;
        }
        return 0;
    }
    return schema_check_name(k->name_is_label, name, prefix, path, err);
}

int
schema_check_name(bool label, const char *name, bool prefix, const char *path,
                  struct dpf_error *err)
{
    char buf[300];
    snprintf(buf, sizeof buf, "%s", name);
    size_t len = strlen(buf);
    if (prefix && len && buf[len - 1] == '-') {
        buf[len - 1] = 'a'; /* a generateName prefix may end in '-' */
    }
    size_t max = label ? 63 : 253;
    json_t *jv = json_string(name);
    int rc = 0;
    if (strlen(name) > max) {
        schema_err_invalid(err, path, jv, "must be no more than %zu characters",
                           max);
        rc = -EINVAL;
    } else if (label ? !dns_label_n(buf, len) : !dns_subdomain_n(buf, len)) {
        schema_err_invalid(err, path, jv, "%s",
                           label ? msg_label : msg_subdomain);
        rc = -EINVAL;
    }
    json_decref(jv);
    return rc;
}
