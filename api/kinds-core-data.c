/* kinds-core-data: core/v1 Secret and ConfigMap — data keys, base64,
 * the 1 MiB limit, typed Secrets' required keys, immutability, and the
 * stringData merge the API server does on write. Listed in the core
 * group by kinds-core.c. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/schema-node.h"
#include "lib/base/base64.h"
#include "lib/base/util.h"

#define CORE_V1 .group = "", .version = "v1", .builtin = true

/* ------------------------------------------------------------------ */
/* column helpers                                                       */
/* ------------------------------------------------------------------ */

/* The Data column of both kinds: keys of data and binaryData (a Secret
 * has no binaryData: it is pruned). */
static char *
data_count(const json_t *obj)
{
    return xasprintf("%zu",
                     json_object_size(schema_get(obj, "data")) +
                         json_object_size(schema_get(obj, "binaryData")));
}

#define DATA_COLUMN                                                   \
    {                                                                 \
        "Data", "integer", NULL, "number of data keys", 0, data_count \
    }

/* ------------------------------------------------------------------ */
/* Secret, ConfigMap                                                    */
/* ------------------------------------------------------------------ */

#define SCHEMA_DATA_MAX (1024 * 1024)

/* Keys of Secret/ConfigMap data: [-._a-zA-Z0-9]+, at most 253. */
static int
check_data_keys(const json_t *v, const char *path, struct dpf_error *err)
{
    int rc = 0;
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *) v, key, val)
    {
        size_t n = strlen(key);
        bool ok = n > 0 && n <= 253 && strcmp(key, ".") && strcmp(key, "..");
        for (size_t i = 0; ok && i < n; i++) {
            char c = key[i];
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
        }
        if (!ok) {
            json_t *jk = json_string(key);
            schema_err_invalid(err, path, jk,
                               "a valid config key must consist of "
                               "alphanumeric characters, '-', '_' or '.' "
                               "(e.g. 'key.name', or 'KEY_NAME', or "
                               "'key-name')");
            json_decref(jk);
            rc = -EINVAL;
        }
    }
    return rc;
}

/* Secret and ConfigMap data: 1 MiB in all. */
static int
check_data_size(size_t total, const char *path, struct dpf_error *err)
{
    if (total <= SCHEMA_DATA_MAX) {
        return 0;
    }
    dpf_error_add_cause(err, DPF_CAUSE_TOO_LONG, path,
                        "Too long: must have at most %d bytes",
                        SCHEMA_DATA_MAX);
    return -EINVAL;
}

static int
check_b64_map(const json_t *v, const char *path, struct dpf_error *err)
{
    int rc = check_data_keys(v, path, err);
    const char *key;
    const json_t *val;
    size_t total = 0;
    json_object_foreach((json_t *) v, key, val)
    {
        long r = base64_check(json_string_value(val), json_string_length(val));
        if (r < 0) {
            char p[320];
            snprintf(p, sizeof p, "%s[%s]", path, key);
            json_t *mask = json_string("<secret data>");
            schema_err_invalid(err, p, mask,
                               "illegal base64 data at input byte %ld", -r - 1);
            json_decref(mask);
            rc = -EINVAL;
        } else {
            total += (size_t) r;
        }
    }
    return check_data_size(total, path, err) < 0 ? -EINVAL : rc;
}

/* Secret and ConfigMap: once `immutable` is set, data, binaryData and
 * the flag itself may no longer change. */
static int
check_immutable_data(const json_t *obj, const json_t *old,
                     struct dpf_error *err)
{
    if (!json_is_true(json_object_get(old, "immutable"))) {
        return 0;
    }
    const char *fields[] = {"data", "binaryData"};
    bool same = json_is_true(json_object_get(obj, "immutable"));
    for (size_t i = 0; same && i < ARRAY_SIZE(fields); i++) {
        same = json_equal(json_object_get(obj, fields[i]),
                          json_object_get(old, fields[i]));
        same = same || (!json_object_get(obj, fields[i]) &&
                        !json_object_get(old, fields[i]));
    }
    if (same) {
        return 0;
    }
    schema_err_forbidden(err, "data",
                         "field is immutable when `immutable` is set");
    return -EINVAL;
}

/* As the API server's conversion does: stringData is merged into data
 * (base64-encoded, stringData wins) and dropped; type defaults to Opaque. */
static void
secret_defaults(json_t *obj)
{
    json_t *sd = json_object_get(obj, "stringData");
    if (json_is_object(sd)) {
        json_t *data = json_object_get(obj, "data");
        if (!json_is_object(data)) {
            data = json_object();
            json_object_set_new(obj, "data", data);
        }
        const char *key;
        json_t *val;
        json_object_foreach(sd, key, val)
        {
            if (json_is_string(val)) {
                char *enc = base64_encode(json_string_value(val),
                                          json_string_length(val), BASE64_STD);
                json_object_set_new(data, key, json_string(enc));
                free(enc);
            }
        }
    }
    json_object_del(obj, "stringData");
}

static int
secret_validate(const json_t *obj, const json_t *old, struct dpf_error *err)
{
    int rc = 0;
    const char *type = json_string_value(json_object_get(obj, "type"));
    const json_t *data = json_object_get(obj, "data");
    struct {
        const char *type;
        const char *keys[2];
    } const required[] = {
        {"kubernetes.io/tls", {"tls.crt", "tls.key"}},
        {"kubernetes.io/dockerconfigjson", {".dockerconfigjson", NULL}},
        {"kubernetes.io/dockercfg", {".dockercfg", NULL}},
        {"kubernetes.io/ssh-auth", {"ssh-privatekey", NULL}},
    };
    for (size_t i = 0; type && i < ARRAY_SIZE(required); i++) {
        if (strcmp(type, required[i].type)) {
            continue;
        }
        for (size_t j = 0; j < 2 && required[i].keys[j]; j++) {
            if (!json_object_get(data, required[i].keys[j])) {
                char p[64];
                snprintf(p, sizeof p, "data[%s]", required[i].keys[j]);
                schema_err_required(err, p, NULL);
                rc = -EINVAL;
            }
        }
    }
    if (type && !strcmp(type, "kubernetes.io/service-account-token") &&
        !schema_get_str(obj, "metadata.annotations") &&
        !json_object_get(schema_get(obj, "metadata.annotations"),
                         "kubernetes.io/service-account.name")) {
        schema_err_required(
            err, "metadata.annotations[kubernetes.io/service-account.name]",
            NULL);
        rc = -EINVAL;
    }
    if (old) {
        const char *otype = json_string_value(json_object_get(old, "type"));
        if (otype && type && strcmp(otype, type)) {
            schema_err_invalid(err, "type", json_object_get(obj, "type"),
                               "field is immutable");
            rc = -EINVAL;
        }
        if (check_immutable_data(obj, old, err) < 0) {
            rc = -EINVAL;
        }
    }
    return rc;
}

static const struct schema_column secret_columns[] = {
    COLUMN("Type", "string", ".type"),
    DATA_COLUMN,
    COLUMN_AGE,
    COLUMNS_END,
};

const struct schema_kind schema_kind_secret = {
    CORE_V1,
    KIND_NAMES("Secret", "secrets", "secret"),
    .namespaced = true,
    .columns = secret_columns,
    .root = KIND_ROOT(
        F("data", N_MAP(&schema_string, CHECK(check_b64_map))),
        F("stringData", N_MAP(&schema_string, CHECK(check_data_keys))),
        F("type", N_STR(DEFAULT("\"Opaque\""))), F("immutable", N_BOOL())),
    .validate = secret_validate,
    .set_defaults = secret_defaults,
};

static int
check_configmap_data(const json_t *v, const char *path, struct dpf_error *err)
{
    int rc = check_data_keys(v, path, err);
    size_t total = 0;
    const char *key;
    const json_t *val;
    json_object_foreach((json_t *) v, key, val)
    {
        total += json_string_length(val);
    }
    return check_data_size(total, path, err) < 0 ? -EINVAL : rc;
}

static int
configmap_validate(const json_t *obj, const json_t *old, struct dpf_error *err)
{
    const json_t *data = json_object_get(obj, "data");
    const json_t *bin = json_object_get(obj, "binaryData");
    const char *key;
    const json_t *val;
    int rc = 0;
    json_object_foreach((json_t *) bin, key, val)
    {
        if (json_object_get(data, key)) {
            char p[300];
            snprintf(p, sizeof p, "data[%s]", key);
            schema_err_duplicate(err, p, json_string_value(val) ? val : NULL);
            rc = -EINVAL;
        }
    }
    if (old && check_immutable_data(obj, old, err) < 0) {
        rc = -EINVAL;
    }
    return rc;
}

static const struct schema_column configmap_columns[] = {
    DATA_COLUMN,
    COLUMN_AGE,
    COLUMNS_END,
};

const struct schema_kind schema_kind_configmap = {
    CORE_V1,
    KIND_NAMES("ConfigMap", "configmaps", "configmap"),
    .short_names = (const char *const[]){"cm", NULL},
    .namespaced = true,
    .columns = configmap_columns,
    .root =
        KIND_ROOT(F("data", N_MAP(&schema_string, CHECK(check_configmap_data))),
                  F("binaryData", N_MAP(&schema_string, CHECK(check_b64_map))),
                  F("immutable", N_BOOL())),
    .validate = configmap_validate,
};
