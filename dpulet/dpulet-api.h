/* dpulet-api: the node agent's kubelet API, the HTTPS endpoint through
 * which dpf-server serves `kubectl logs`, `kubectl exec` and `kubectl
 * attach` (pods/log, pods/exec, pods/attach), as a kubelet's port 10250:
 *
 *   GET /healthz                      "ok" (no credentials needed)
 *   GET /pods                         a v1 PodList of the pods it runs
 *   GET /containerLogs/<ns>/<pod>/<container>
 *       ?follow&previous&tailLines=N&sinceSeconds=N&sinceTime=T
 *        &timestamps&limitBytes=N     the container's output from its
 *                                     CRI log file (lib/codecs/cri-log.h)
 *   GET|POST /exec/<ns>/<pod>/<container>?command=..&command=..
 *        &stdin&stdout&stderr&tty     run a command in the container
 *   GET|POST /attach/<ns>/<pod>/<container>?stdout&stderr
 *                                     the container's output from now on
 *
 * exec and attach are WebSocket upgrades speaking Kubernetes' channel
 * protocol (Sec-WebSocket-Protocol v5.channel.k8s.io or
 * v4.channel.k8s.io: each binary message starts with its channel, 0
 * stdin, 1 stdout, 2 stderr, 3 error (the Status that ends the stream,
 * with the exit code), 4 terminal resize; v5 adds 255, "close this
 * channel", with which the client ends stdin), as kubectl 1.30+ uses; or
 * SPDY/3.1 upgrades (older kubectl, X-Stream-Protocol-Version
 * v4.channel.k8s.io) where each channel is a stream the client opens
 * with a streamType header (error, stdin, stdout, stderr, resize), the
 * command starting once all the request asks for are open (within
 * stream_create_ms, else the session ends). Framing: lib/net/websocket.h, lib/net/spdy.h.
 *
 * Security: HTTPS only. Every path but /healthz needs a client certificate
 * that verifies against client_ca_file and whose subject has O
 * system:masters or a CN of allowed_cns (the API server's kubelet client,
 * kube-apiserver-kubelet-client); others get 401 (no certificate) or 403.
 *
 * Where a container's log is and how to enter it is the runtime's
 * business: the caller (dpulet) gives a table of ops; the tests give a
 * fake. Threads: the ops are called from the API's threads, concurrently;
 * they must be thread-safe. Limits: at most max_streams log, exec and
 * attach streams at once (beyond: 429), a stream's unsent output is
 * bounded (a slow client is dropped), an exec stream with no traffic in
 * either direction for idle_timeout_s is ended (kubelet's
 * streamingConnectionIdleTimeout, 4 h). */
#ifndef DPF_DPULET_API_H
#define DPF_DPULET_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "lib/base/error.h"

/* How to run a command in a container (container_exec_target). */
struct dpulet_exec_target {
    pid_t pid;  /* a process of the container: the command joins its
                   mount namespace; 0 = stay in dpulet's */
    char **env; /* the container's environment, "K=V", NULL-terminated
                   (malloc'd array of malloc'd strings; NULL = empty) */
    char *cwd;  /* working directory (malloc'd) or NULL for "/" */
};

/* Free what a dpulet_exec_target holds (not t itself). */
void dpulet_exec_target_free(struct dpulet_exec_target *t);

struct dpulet_api_ops {
    /* The CRI log file of container `container` of pod ns/pod: its
     * current run, or with previous the run before it. *path is malloc'd
     * (the caller frees); *running says whether that run is still going
     * (a follow ends when it is not and the file is read to its end).
     * 0, or -ENOENT (no such pod), -ESRCH (no such container in the
     * pod), -ENODATA (previous: no earlier run), with err's message
     * naming the object as kubelet does. */
    int (*container_log_path)(void *arg, const char *ns, const char *pod,
                              const char *container, bool previous, char **path,
                              bool *running, struct dpf_error *err);
    /* How to exec in the container (fills *t; the caller frees it with
     * dpulet_exec_target_free). 0, or -ENOENT/-ESRCH as above, -EAGAIN
     * (not running), with err filled. */
    int (*container_exec_target)(void *arg, const char *ns, const char *pod,
                                 const char *container,
                                 struct dpulet_exec_target *t,
                                 struct dpf_error *err);
    /* The pods this node runs, as a JSON array of v1 Pods (new
     * reference). May be NULL: /pods is then an empty list. */
    json_t *(*list_pods)(void *arg);
    void *arg; /* given to every op */
};

struct dpulet_api_config {
    const char *address;            /* bind address (e.g. the node IP) */
    uint16_t port;                  /* 0 = any free port (tests) */
    const char *cert_file;          /* serving certificate (PEM) */
    const char *key_file;           /* its key */
    const char *client_ca_file;     /* CA for client certificates */
    const char *const *allowed_cns; /* NULL-terminated CNs allowed besides
                                       O=system:masters; NULL = the
                                       default, kube-apiserver-kubelet-
                                       client */
    unsigned max_streams;           /* 0 = 32 */
    unsigned idle_timeout_s;        /* exec/attach idle end; 0 = 4 h */
    unsigned stream_create_ms;      /* SPDY: time the client has to open
                                       its streams; 0 = 30 s (kubelet's
                                       stream creation timeout) */
};

struct dpulet_api;

/* Listen and serve; ops is copied. NULL + err (naming the address or
 * file) on failure. */
struct dpulet_api *dpulet_api_start(const struct dpulet_api_config *cfg,
                                    const struct dpulet_api_ops *ops,
                                    struct dpf_error *err);
/* The port actually bound. */
uint16_t dpulet_api_port(const struct dpulet_api *api);
/* Stop serving: open streams are ended (exec'd commands get SIGKILL),
 * their threads joined; then free. NULL is allowed. */
void dpulet_api_stop(struct dpulet_api *api);

/* --- exposed for tests and fuzzing --- */

/* Options of a log request (kubelet's PodLogOptions). */
struct dpulet_log_opts {
    bool follow;
    bool timestamps;
    int64_t tail_lines;  /* -1 = all */
    int64_t since_ns;    /* only records at or after (0 = all) */
    int64_t limit_bytes; /* -1 = no limit */
};

/* Turn CRI records in[0..len) into what `kubectl logs` shows: the texts
 * (P records joined with the next), each F record ending a line, with
 * the record's time and a space before each line with timestamps;
 * records before since_ns skipped; lines that are not CRI records are
 * skipped. Appends to out (a dbuf from lib/base/util.h) and returns the
 * number of bytes of in consumed (whole lines only; the rest waits for
 * more data). limit_bytes is not applied here. */
struct dbuf;
size_t dpulet_log_render(const char *in, size_t len,
                         const struct dpulet_log_opts *o, struct dbuf *out);

/* Offset in in[0..len) where the last n lines begin (n >= 0). */
size_t dpulet_log_tail_offset(const char *in, size_t len, int64_t n);

#endif
