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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/base/error.h"
#include "lib/base/util.h"
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

/* --- the stream without the connection (kube_exec_run() uses these; the
 * fuzzer fuzz/fuzz-kube-exec.c and tests feed them any bytes) --- */

/* What the server sent after the upgrade, split into its channels. */
struct kube_exec_demux {
    size_t max_output;     /* per stream (0 at init: 64 KiB) */
    struct dbuf out, err;  /* channels 1 and 2 */
    struct dbuf status;    /* channel 3, at most 64 KiB */
    int channel;           /* of the message being received, -1 none */
    bool closed;           /* the server's close frame came */
    uint8_t close_code[2]; /* its status code, to echo */
    size_t close_len;      /* 0 or 2 */
    int overflow;          /* -EMSGSIZE: the channel that overflowed */
    bool bad_frame;        /* -EPROTO: a frame RFC 6455 forbids */
    bool status_too_long;  /* -EPROTO: channel 3 past 64 KiB */
};
void kube_exec_demux_init(struct kube_exec_demux *d, size_t max_output);
void kube_exec_demux_free(struct kube_exec_demux *d);
typedef void (*kube_exec_ping_fn)(void *arg, const uint8_t *payload,
                                  size_t len);
/* Handle the whole frames in buf[0..len) (the server's: unmasked;
 * payloads are unmasked in place), up to and including a close frame.
 * Pings go to on_ping (may be NULL) for the pong. Returns the bytes
 * consumed (the rest is an incomplete frame, or follows the close), or
 * -EPROTO (a bad frame, a Status past 64 KiB) or -EMSGSIZE (stdout or
 * stderr past max_output; d->overflow says which). */
ssize_t kube_exec_demux_feed(struct kube_exec_demux *d, uint8_t *buf,
                             size_t len, kube_exec_ping_fn on_ping, void *arg);
/* Channel 3's Status -> the exit code: 0 with *code (Success: 0;
 * Failure/NonZeroExitCode: its ExitCode cause), -EIO when the command did
 * not run (err: the Status's reason and message), -EPROTO when the text
 * is not a Status. */
int kube_exec_status_decode(const char *text, size_t len, int *code,
                            struct dpf_error *err);

#endif
