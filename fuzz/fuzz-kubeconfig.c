/* Fuzz target for lib/kubeconfig: the input is parsed as a kubeconfig
 * (default context and a named one); every failure must name the file. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/kube/kubeconfig.h"
#include "lib/base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
        }
        kubeconfig_free(kc);
    }
    return 0;
}
