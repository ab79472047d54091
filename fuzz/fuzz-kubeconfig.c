/* Fuzz target for lib/kubeconfig: the input is parsed as a kubeconfig
 * (default context and a named one); every failure must name the file.
 * When it has an exec section, the KUBERNETES_EXEC_INFO request is built
 * from it (it must be JSON naming ExecCredential) and the section is
 * copied. The same input is also decoded as a plugin's ExecCredential
 * reply. No plugin is ever run. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/kube/kubeconfig.h"
#include "lib/base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_exec(const struct kubeconfig_exec *x)
{
    if (!x->command || !x->api_version || !x->argv || x->argc < 1 ||
        x->argv[x->argc] || strcmp(x->argv[0], x->command) != 0) {
        abort();
    }
    for (int interactive = 0; interactive < 2; interactive++) {
        char *info = kubeconfig_exec_info(x, interactive);
        json_t *o = json_loads(info, 0, NULL);
        const char *kind = json_string_value(json_object_get(o, "kind"));
        json_t *spec = json_object_get(o, "spec");
        if (!kind || strcmp(kind, "ExecCredential") != 0 ||
            json_is_true(json_object_get(spec, "interactive")) !=
                (interactive == 1) ||
            (json_object_get(spec, "cluster") != NULL) !=
                x->provide_cluster_info) {
            abort();
        }
        json_decref(o);
        free(info);
    }
    struct kubeconfig_exec *copy = kubeconfig_exec_dup(x);
    if (copy->argc != x->argc || copy->n_env != x->n_env) {
        abort();
    }
    kubeconfig_exec_free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const contexts[] = {NULL, "dpf"};
    for (size_t i = 0; i < 2; i++) {
        struct kubeconfig *kc = NULL;
        struct dpf_error err = {0};
        /* no path: relative file references resolve against the current
         * directory, and a fuzzer must not read arbitrary files, so use an
         * absolute non-existent directory */
        int r = kubeconfig_parse((const char *) data, size,
                                 "/nonexistent-fuzz/config", contexts[i], &kc,
                                 &err);
        if (r < 0) {
            if (kc || !strstr(err.message, "/nonexistent-fuzz/config")) {
                abort();
            }
        } else if (!kc || !kc->server || !kc->namespace) {
            abort();
        } else {
            /* what reaches a header line never has a control character */
            if ((kc->token && kubeconfig_find_ctl(kc->token) >= 0) ||
                (kc->username && kubeconfig_find_ctl(kc->username) >= 0) ||
                (kc->password && kubeconfig_find_ctl(kc->password) >= 0)) {
                abort();
            }
            if (kc->insecure_skip_tls_verify && kc->ca_pem) {
                abort();
            }
            if (kc->exec) {
                check_exec(kc->exec);
            }
        }
        kubeconfig_free(kc);
    }

    /* the input as a plugin's reply */
    static const struct kubeconfig_exec x = {
        .user = "fuzz",
        .api_version = "client.authentication.k8s.io/v1",
        .command = "/nonexistent-fuzz/plugin",
    };
    struct kubeconfig_credential cred;
    struct dpf_error err = {0};
    if (kubeconfig_exec_decode(&x, (const char *) data, size, &cred, &err) ==
        0) {
        if ((!cred.token && !cred.cert_pem) ||
            !cred.cert_pem != !cred.key_pem ||
            (cred.token && kubeconfig_find_ctl(cred.token) >= 0)) {
            abort();
        }
    } else if (!strstr(err.message, "user \"fuzz\"") || cred.token) {
        abort();
    }
    kubeconfig_credential_clear(&cred);
    return 0;
}
