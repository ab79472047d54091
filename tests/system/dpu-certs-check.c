/* dpu-certs-check: dpu_certs_ensure() / dpu_certs_delete() against a
 * running API server, for tests/system/test_dpu_certs.py.
 *
 * usage: dpu-certs-check KUBECONFIG OWNER_PATH HOST_IP ensure|again|memo|delete
 *                        [--ca-cert FILE --ca-key FILE]
 * OWNER_PATH is the API path of the object that stands for the DPU (its
 * name, namespace, uid, apiVersion and kind are what the code uses).
 * Prints "ok recheck_s=N" or "error rc=N: MESSAGE" (exit 1). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controllers/dpu-pods.h"
#include "lib/base/loop.h"
#include "lib/base/util.h"
#include "lib/kube/kube-rest.h"
#include "lib/kube/kubeconfig.h"

static void *
loop_main(void *arg)
{
    loop_run(arg);
    return NULL;
}

int
main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr,
                "usage: %s KUBECONFIG OWNER_PATH HOST_IP "
                "ensure|delete [--ca-cert F --ca-key F]\n",
                argv[0]);
        return 2;
    }
    struct dpu_certs_signer signer = {0};
    for (int i = 5; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--ca-cert")) {
            signer.ca_cert_path = argv[i + 1];
        } else if (!strcmp(argv[i], "--ca-key")) {
            signer.ca_key_path = argv[i + 1];
        }
    }
    struct dpf_error err = {0};
    struct kubeconfig_options ko = {.path = argv[1]};
    struct kubeconfig *kc;
    if (kubeconfig_load(&ko, &kc, &err) < 0) {
        fprintf(stderr, "%s\n", err.message);
        return 2;
    }
    struct loop *loop = loop_create();
    struct kube_rest *r = kube_rest_create(loop, kc, &err);
    pthread_t th;
    pthread_create(&th, NULL, loop_main, loop);
    json_t *owner = NULL;
    int rc =
        kube_rest_json_wait(r, "GET", argv[2], NULL, NULL, NULL, &owner, &err);
    if (rc == 0) {
        if (!strcmp(argv[4], "ensure")) {
            int64_t recheck = 0;
            rc = dpu_certs_ensure(r, owner, argv[3],
                                  signer.ca_cert_path ? &signer : NULL, NULL,
                                  &recheck, &err);
            if (rc == 0) {
                printf("ok recheck_s=%lld\n", (long long) (recheck / 1000));
            }
        } else if (!strcmp(argv[4], "again")) {
            /* two checks with one memo, as the DPU controller makes for
             * two DPUs: the CA is read once */
            struct dpu_certs_memo *m = dpu_certs_memo_create();
            for (int i = 0; i < 2 && rc == 0; i++) {
                rc = dpu_certs_ensure(r, owner, argv[3],
                                      signer.ca_cert_path ? &signer : NULL, m,
                                      NULL, &err);
            }
            if (rc == 0) {
                printf("ok\n");
            }
            dpu_certs_memo_destroy(m);
        } else if (!strcmp(argv[4], "memo")) {
            /* the shared client Secret into a memo, a line from stdin
             * (the test changes the Secret meanwhile), then ensure with
             * that memo */
            struct dpu_certs_memo *m = dpu_certs_memo_create();
            json_t *s = NULL;
            const char *ns = json_string_value(json_object_get(
                json_object_get(owner, "metadata"), "namespace"));
            rc = dpu_certs_client(r, m, ns, &s, &err);
            json_decref(s);
            if (rc == 0) {
                printf("read\n");
                fflush(stdout);
                char line[16];
                if (!fgets(line, sizeof line, stdin)) {
                    line[0] = '\0';
                }
                int64_t recheck = 0;
                rc = dpu_certs_ensure(r, owner, argv[3],
                                      signer.ca_cert_path ? &signer : NULL, m,
                                      &recheck, &err);
                if (rc == 0) {
                    printf("ok recheck_s=%lld\n", (long long) (recheck / 1000));
                }
            }
            dpu_certs_memo_destroy(m);
        } else {
            rc = dpu_certs_delete(r, owner, &err);
            if (rc == 0) {
                printf("ok\n");
            }
        }
    }
    if (rc < 0) {
        printf("error rc=%d: %s\n", rc, err.message);
    }
    json_decref(owner);
    loop_stop(loop);
    pthread_join(th, NULL);
    kube_rest_destroy(r);
    loop_destroy(loop);
    kubeconfig_free(kc);
    return rc < 0 ? 1 : 0;
}
