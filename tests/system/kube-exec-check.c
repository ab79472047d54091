/* kube-exec-check: lib/kube/kube-exec.h against a live server, for
 * tests/system/test_pod_proxy.py (which runs the same command with stock
 * kubectl to compare).
 *
 *   kube-exec-check KUBECONFIG NS POD CONTAINER|- TIMEOUT_MS MAX_OUTPUT
 *                   -- COMMAND [ARG...]
 *
 * Prints one JSON object: {"rc": <kube_exec_run's return>, "exitCode",
 * "stdout", "stderr", "protocol", "error": {"code","reason","message"}}
 * and exits 0 (2 on a usage or setup error). */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/kube/kube-exec.h"
#include "lib/kube/kubeconfig.h"

int
main(int argc, char **argv)
{
    if (argc < 9 || strcmp(argv[7], "--") != 0) {
        fprintf(stderr, "usage: kube-exec-check KUBECONFIG NS POD "
                        "CONTAINER|- TIMEOUT_MS MAX_OUTPUT -- CMD...\n");
        return 2;
    }
    struct dpf_error err = {0};
    struct kubeconfig *kc = NULL;
    struct kubeconfig_options o = {.path = argv[1]};
    if (kubeconfig_load(&o, &kc, &err) < 0) {
        fprintf(stderr, "%s\n", err.message);
        return 2;
    }
    struct kube_exec *x = kube_exec_create(kc, &err);
    kubeconfig_free(kc);
    if (!x) {
        fprintf(stderr, "%s\n", err.message);
        return 2;
    }
    struct kube_exec_request req = {
        .ns = argv[2],
        .pod = argv[3],
        .container = strcmp(argv[4], "-") ? argv[4] : NULL,
        .argv = (const char *const *) &argv[8],
        .timeout_ms = strtol(argv[5], NULL, 10),
        .max_output = strtoul(argv[6], NULL, 10),
    };
    struct kube_exec_result res;
    int rc = kube_exec_run(x, &req, &res, &err);
    json_t *j = json_pack("{s:i,s:i,s:s%,s:s%,s:s,s:{s:i,s:s,s:s}}", "rc", rc,
                          "exitCode", res.exit_code, "stdout", res.out,
                          res.out_len, "stderr", res.err, res.err_len,
                          "protocol", res.proto, "error", "code", err.code,
                          "reason", err.reason, "message", err.message);
    char *text = json_dumps(j, JSON_COMPACT);
    printf("%s\n", text ? text : "{}");
    free(text);
    json_decref(j);
    kube_exec_result_free(&res);
    kube_exec_destroy(x);
    return 0;
}
