/* Fuzz target for controllers/bfcfg: random DPUFlavors. The input is a
 * flavor in JSON, or else up to eight strings separated by NUL bytes that
 * are put into every field a user controls (bfcfgParameters, a config
 * file's path and content, kernel and sysctl parameters, nvconfig, the OVS
 * script, the registry endpoint). Whatever the flavor, the renderer either
 * refuses it with a message naming the flavor, or gives at most 128 KiB
 * whose user-data parses as one YAML document with the config file's
 * content byte for byte and the hostname first in runcmd. */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "controllers/bfcfg.h"
#include "lib/base/util.h"
#include "lib/codecs/yamljson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char join[] = "kubeadm join 10.0.0.1:6443 --token abcdef."
                           "0123456789abcdef --discovery-token-ca-cert-hash "
                           "sha256:00ff";

static json_t *
flavor_from_strings(const uint8_t *data, size_t size, char **raw)
{
    char *f[8] = {0};
    size_t start = 0, k = 0;
    for (size_t i = 0; i <= size && k < 8; i++) {
        if (i == size || data[i] == 0) {
            size_t n;
            f[k++] = utf8_sanitize((const char *) data + start, i - start, &n);
            start = i + 1;
        }
    }
    for (; k < 8; k++) {
        f[k] = xstrdup("x");
    }
    char *path = f[1][0] == '/' ? xstrdup(f[1]) : xasprintf("/%s", f[1]);
    json_t *fl = json_pack(
        "{s:{s:s,s:s},s:{s:[s],s:[{s:s,s:s,s:s}],s:{s:[s]},s:{s:[s]},"
        "s:[{s:[s]}],s:{s:s},s:{s:s}}}",
        "metadata", "name", "fuzz", "namespace", "ns", "spec",
        "bfcfgParameters", f[0], "configFiles", "path", path, "operation",
        "append", "raw", f[2], "grub", "kernelParameters", f[3], "sysctl",
        "parameters", f[4], "nvconfig", "parameters", f[5], "ovs",
        "rawConfigScript", f[6], "containerdConfig", "registryEndpoint", f[7]);
    *raw = xstrdup(f[2]);
    free(path);
    for (k = 0; k < 8; k++) {
        free(f[k]);
    }
    return fl;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *raw = NULL;
    json_t *fl = json_loadb((const char *) data, size, 0, NULL);
    if (!json_is_object(fl)) {
        json_decref(fl);
        fl = flavor_from_strings(data, size, &raw);
    }
    if (!fl) {
        free(raw);
        return 0; /* json_pack refuses what is not UTF-8: sanitized above */
    }
    char *out = NULL;
    size_t len = 0;
    struct dpf_error err = {0};
    int rc = bfcfg_render(fl, "dpu-0", join, size & 1, &out, &len, &err);
    if (rc < 0) {
        if (out || len || (rc != -EINVAL && rc != -EFBIG) || !err.message[0] ||
            !strstr(err.message, "DPUFlavor")) {
            abort();
        }
        json_decref(fl);
        free(raw);
        return 0;
    }
    if (len > BFCFG_MAX_SIZE || strlen(out) != len) {
        abort();
    }
    char *yaml;
    size_t ylen;
    if (bfcfg_user_data(out, len, &yaml, &ylen) != 0) {
        abort();
    }
    json_t *ud;
    struct dpf_error perr = {0};
    if (yamljson_parse_one(yaml, ylen, &ud, &perr) != 0) {
        abort();
    }
    const json_t *rc0 = json_array_get(json_object_get(ud, "runcmd"), 0);
    if (strcmp(json_string_value(json_array_get(rc0, 2)), "dpu-0") != 0) {
        abort();
    }
    if (raw) {
        /* the config file we put in comes back whole */
        size_t i;
        const json_t *f;
        bool found = false;
        json_array_foreach(json_object_get(ud, "write_files"), i, f)
        {
            const char *c = json_string_value(json_object_get(f, "content"));
            if (json_object_get(f, "append") && c && !strcmp(c, raw)) {
                found = true;
            }
        }
        if (!found) {
            abort();
        }
    }
    json_decref(ud);
    free(yaml);
    free(out);
    json_decref(fl);
    free(raw);
    return 0;
}
