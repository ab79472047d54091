/* kube-exec: run a command in a container through the API server's
 * pods/exec, as `kubectl exec` does, and collect its output and exit
 * code. The DPU controller reads the host's /proc/uptime with it and asks
 * the host's BMC (ipmitool) for a reboot, as DPF does (dpf-spec §2.7.4).
 *
 * Protocol: a WebSocket upgrade of
 *   GET /api/v1/namespaces/<ns>/pods/<pod>/exec?command=..&container=..
 *       &stdout=true&stderr=true
 * offering Sec-WebSocket-Protocol v5.channel.k8s.io, then
 * v4.channel.k8s.io (whichever the server picks). Each binary message
 * starts with its channel: 1 stdout, 2 stderr, 3 the Status that ends the
 * command ({"status":"Success"}, or "Failure" with reason
 * NonZeroExitCode and a cause of reason ExitCode whose message is the
 * code; any other Failure means the command did not run). No stdin, no
 * terminal. Frames: lib/net/websocket.h (ours masked, as RFC 6455 asks of
 * a client).
 *
 * Transport: Debian's libcurl (7.88) has no WebSocket support, so curl
 * only dials the server and does TLS (CURLOPT_CONNECT_ONLY, set up by
 * lib/kube/kubeconfig-curl.h from the kubeconfig: CA, client
 * certificate, token, basic auth, exec plugin, tls-server-name); the
 * upgrade and the frames go over curl_easy_send/recv.
 *
 * Limits: one deadline covers the whole exchange (dial, TLS, upgrade, the
 * command's run, its output); stdout and stderr are each kept up to
 * max_output bytes (more is an error: the command's output is not what
 * the caller expected); the Status and an error reply are bounded too.
 *
 * Threads: a struct kube_exec may be used from several threads at once
 * (the credential is refreshed under a lock; each call has its own
 * connection). Secrets: the request head with the credential is wiped
 * after it is sent and never logged. */
#ifndef DPF_KUBE_EXEC_H
#define DPF_KUBE_EXEC_H

#include <stddef.h>

#include "lib/base/error.h"
#include "lib/kube/kubeconfig.h"

struct kube_exec;

/* A client for kc's server (kc is copied). NULL with err set when the
 * credentials cannot be used (kubeconfig_curl_create()). */
struct kube_exec *kube_exec_create(const struct kubeconfig *kc,
                                   struct dpf_error *err);
/* NULL is fine. */
void kube_exec_destroy(struct kube_exec *x);

struct kube_exec_request {
    const char *ns, *pod, *container; /* container NULL: the pod's only */
    const char *const *argv;          /* NULL-terminated, argv[0] required */
    long timeout_ms;                  /* whole exchange; <= 0: 10 s */
    size_t max_output;                /* per stream; 0: 64 KiB */
};

struct kube_exec_result {
    int exit_code;  /* the command's exit code (0 on Success) */
    char *out;      /* stdout, NUL-terminated (malloc'd, never NULL) */
    size_t out_len; /* bytes in out */
    char *err;      /* stderr, the same */
    size_t err_len; /* bytes in err */
    char proto[32]; /* the subprotocol the server chose */
};

/* Run req's command and wait for it. 0 when the command ran to its end
 * (whatever its exit code: see res->exit_code); otherwise a negative
 * errno with err naming the pod: the server's Status when it refused the
 * upgrade (-ENOENT for a missing pod, -EACCES/-EPERM, ...), -ETIMEDOUT at
 * the deadline, -EMSGSIZE when a stream passes max_output, -EPROTO when
 * the server breaks the protocol or the stream ends without a Status,
 * -EIO when the Status says the command could not run, or curl's
 * transport errors (kubeconfig_curl_error()). res is filled as far as it
 * got; free it with kube_exec_result_free() in every case. */
int kube_exec_run(struct kube_exec *x, const struct kube_exec_request *req,
                  struct kube_exec_result *res, struct dpf_error *err);
void kube_exec_result_free(struct kube_exec_result *res);

#endif
