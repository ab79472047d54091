/* kubeconfig-curl: the one way a libcurl handle is pointed at a
 * kubeconfig's cluster as the kubeconfig's user.
 *
 * Both REST clients go through here for every transfer: the blocking
 * lib/kube/api-client (one easy handle, dpfctl) and the event-loop
 * lib/kube/kube-rest (a multi handle, the controllers). A struct
 * kubeconfig_curl holds what a kubeconfig says about the connection and
 * the credentials, and kubeconfig_curl_setup() turns one struct
 * kube_request into curl options on an easy handle:
 *
 *   URL          server + path + query; with tls-server-name the URL's
 *                host is that name (so curl sends it as SNI and verifies
 *                the certificate against it), CURLOPT_CONNECT_TO dials
 *                the server's real host and the Host header keeps the
 *                server's authority (client-go's tls.Config.ServerName);
 *                with the kubeconfig's unix_socket (set by a program,
 *                never read from a file) curl dials that socket instead
 *                (CURLOPT_UNIX_SOCKET_PATH);
 *   TLS          CA bundle (certificate-authority[-data]) as an in-memory
 *                blob, peer and host verification (off only with
 *                insecure-skip-tls-verify), the client certificate and
 *                key as PEM blobs (the exec plugin's, when it gave one);
 *   credentials  client-go's order: a bearer token, basic auth or a
 *                client certificate from the kubeconfig; otherwise the
 *                user's exec plugin, whose credential is cached and run
 *                again once its expirationTimestamp has passed
 *                (kubeconfig_curl_refresh()); the clients also force a
 *                run after a 401 and repeat the request once;
 *   the rest     method, body and its Content-Type, Accept, User-Agent,
 *                the request's deadline, a 30 s connect timeout, TCP
 *                keep-alive, no signals, no "Expect: 100-continue".
 *                Redirects are never followed (curl's default), so
 *                credentials never travel to another host. Proxies come
 *                from the environment (https_proxy, no_proxy), as curl
 *                and client-go take them.
 *
 * Stricter than client-go: kubeconfig_curl_create() refuses to send a
 * token, basic auth or a plugin's credential to an http:// server unless
 * the cluster has the KUBECONFIG_EXT_PLAINTEXT extension, refuses
 * insecure-skip-tls-verify with a CA, and refuses credentials with a
 * control character (they would split a header line).
 *
 * Secrets: the object holds the client key, token, password and the
 * plugin's credential; they are wiped when freed and never logged. Header
 * lists from kubeconfig_curl_setup() may hold the token: free them with
 * kubeconfig_curl_headers_free(), which wipes them.
 *
 * Threads: an object is used by one thread at a time (api-client: its
 * caller; kube-rest: the loop thread). kubeconfig_curl_refresh() runs the
 * plugin in the calling thread and waits for it (kubeconfig_exec_run()).
 * curl's global initialisation is done once, thread-safely, by
 * kubeconfig_curl_create(). */
#ifndef DPF_KUBECONFIG_CURL_H
#define DPF_KUBECONFIG_CURL_H

#include <curl/curl.h>
#include <stdbool.h>

#include "lib/base/error.h"
#include "lib/kube/kube-rest.h"
#include "lib/kube/kubeconfig.h"

struct kubeconfig_curl;

/* Check kc's credentials (see above) and copy what is needed (kc may be
 * freed afterwards). NULL with err set when they cannot be used. Nothing
 * is sent and no plugin runs here. */
struct kubeconfig_curl *kubeconfig_curl_create(const struct kubeconfig *kc,
                                               struct dpf_error *err);
/* Wipe the secrets and free. NULL is fine. */
void kubeconfig_curl_destroy(struct kubeconfig_curl *k);
/* User-Agent header (copied; default "dpf/<version>"). */
void kubeconfig_curl_set_user_agent(struct kubeconfig_curl *k, const char *ua);
/* How the exec plugin runs (copied; the FILE must outlive k). The default
 * gives the plugin no standard input and drops its stderr. */
void kubeconfig_curl_set_exec_options(struct kubeconfig_curl *k,
                                      const struct kubeconfig_exec_options *o);
/* The server URL ("https://127.0.0.1:6443", no trailing '/'). */
const char *kubeconfig_curl_server(const struct kubeconfig_curl *k);
/* True when the credential comes from an exec plugin. */
bool kubeconfig_curl_uses_exec(const struct kubeconfig_curl *k);
/* How many times the plugin has run successfully. */
int kubeconfig_curl_exec_runs(const struct kubeconfig_curl *k);

/* Make sure the plugin's credential is there and not expired; force runs
 * it again regardless (after a 401). 0 without a plugin. On failure
 * -EACCES whatever the cause (callers read -ENOENT as "object not found"
 * and -ETIMEDOUT as their own deadline) with err: code 401, reason
 * KUBE_REASON_CLIENT and the plugin's message. */
int kubeconfig_curl_refresh(struct kubeconfig_curl *k, bool force,
                            struct dpf_error *err);

/* Set every option of h for req (the handle is reset first: live
 * connections stay) with the current credential; errbuf
 * (CURL_ERROR_SIZE bytes) gets curl's error text. Returns the header list
 * to free with kubeconfig_curl_headers_free() after the transfer; the
 * caller still sets the write (and header) callbacks. */
struct curl_slist *kubeconfig_curl_setup(struct kubeconfig_curl *k, CURL *h,
                                         const struct kube_request *req,
                                         char *errbuf);
/* For a request whose HTTP the caller speaks itself on a connection curl
 * only opens (an upgrade to a WebSocket, which this libcurl cannot do):
 * h is set up as kubeconfig_curl_setup() does, with CURLOPT_CONNECT_ONLY
 * (curl_easy_perform() then dials and does the TLS handshake; the caller
 * goes on with curl_easy_send/recv). Returns the head's first lines,
 * "METHOD <target> HTTP/1.1\r\n" then Host, User-Agent and the
 * credential's Authorization (bearer token or basic auth), each ending in
 * "\r\n"; the caller appends its own headers and the blank line. The
 * string holds the credential: wipe it (explicit_bzero) before free. */
char *kubeconfig_curl_setup_raw(struct kubeconfig_curl *k, CURL *h,
                                const struct kube_request *req, char *errbuf);
/* Wipe (it may hold the token) and free a header list. NULL is fine. */
void kubeconfig_curl_headers_free(struct curl_slist *hdrs);

/* A failed transfer as a negative errno (-ECONNREFUSED, -ETIMEDOUT,
 * -EHOSTUNREACH, -EPROTO for TLS, else -EIO) and err: code 504 for a
 * timeout, else 503, reason KUBE_REASON_CLIENT, "METHOD \"URL\": why". */
int kubeconfig_curl_error(const struct kubeconfig_curl *k, CURLcode rc,
                          const char *errbuf, const char *method,
                          const char *path, struct dpf_error *err);

#endif
