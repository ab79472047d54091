/* kubeconfig: load a kubectl kubeconfig file, resolve one context, and
 * obtain the user's credentials the way client-go does (including exec
 * credential plugins).
 *
 * Which file: the explicit path (dpfctl/kubectl --kubeconfig) if given,
 * else $KUBECONFIG, else ~/.kube/config. $KUBECONFIG may be a colon
 * separated list; unlike kubectl we do not merge the files, we use the
 * first one that exists (documented in docs/dpfctl.md).
 *
 * Which context: the explicit one (--context) or current-context. From it
 * we take the cluster (server, certificate-authority[-data],
 * insecure-skip-tls-verify, tls-server-name, disable-compression and the
 * extensions named below), the user (token, tokenFile, username/password,
 * client-certificate[-data], client-key[-data], exec) and the namespace
 * (default "default"). Relative file paths, and an exec command that
 * contains a '/', are resolved against the directory of the kubeconfig
 * file, as kubectl does. *-data fields are base64 and are decoded here;
 * file fields are read here, so the result holds PEM bytes.
 *
 * Refused at parse time, as client-go refuses them (message and field
 * named): insecure-skip-tls-verify together with a CA; a token and
 * username/password together; an exec section without command or
 * apiVersion, with an unknown apiVersion or interactiveMode, or an env
 * entry without a name; auth-provider (not supported). Refused where
 * client-go's HTTP layer would refuse to send them: a token, tokenFile
 * content, username or password with a control character (CR, LF, ...),
 * so a kubeconfig can never inject header lines.
 *
 * Exec plugins (users[].user.exec, client.authentication.k8s.io/v1 and
 * v1beta1): kubeconfig_parse() only records the section; the plugin runs
 * when kubeconfig_exec_run() is called (the API client does that before
 * its first request and again when the credential expires or the server
 * answers 401). The plugin gets the process environment plus exec.env
 * plus KUBERNETES_EXEC_INFO (an ExecCredential request, with spec.cluster
 * when provideClusterInfo is true), runs with a timeout and bounded
 * output, and must print an ExecCredential of the same apiVersion whose
 * status holds a token and/or clientCertificateData+clientKeyData and an
 * optional expirationTimestamp.
 *
 * Errors fill a struct dpf_error naming the file and the missing or bad
 * field ("kubeconfig /x: users[0].user.client-key-data: not valid
 * base64"), or the user for credential errors. The returned struct
 * kubeconfig is owned by the caller and released with kubeconfig_free();
 * it holds secrets (key, token, password): never log its fields.
 *
 * Threads: no shared state; kubeconfig_exec_run() forks a child and waits
 * for it in the calling thread. */
#ifndef DPF_KUBECONFIG_H
#define DPF_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/base/error.h"

/* What to load. All fields may be NULL. */
struct kubeconfig_options {
    const char *path;    /* explicit file; NULL = $KUBECONFIG/~/.kube */
    const char *context; /* context name; NULL = current-context */
};

/* When an exec plugin may read standard input (exec.interactiveMode). */
enum kubeconfig_exec_interactive {
    KUBECONFIG_EXEC_NEVER = 0,        /* "Never" */
    KUBECONFIG_EXEC_IF_AVAILABLE = 1, /* "IfAvailable" (v1beta1 default) */
    KUBECONFIG_EXEC_ALWAYS = 2,       /* "Always": fails without a tty */
};

/* users[].user.exec, resolved. Every pointer is owned by the struct. */
struct kubeconfig_exec {
    char *user;                /* kubeconfig user name, for messages */
    char *path;                /* kubeconfig file, for messages */
    char *api_version;         /* client.authentication.k8s.io/v1 or v1beta1 */
    char *command;             /* as given, or resolved against the kubeconfig
                           directory when relative and containing '/' */
    char **argv;               /* command, then args; NULL-terminated */
    size_t argc;               /* entries in argv before the NULL */
    char **env;                /* "NAME=value" from exec.env */
    size_t n_env;              /* entries in env */
    char *install_hint;        /* exec.installHint or NULL */
    bool provide_cluster_info; /* exec.provideClusterInfo */
    enum kubeconfig_exec_interactive interactive; /* exec.interactiveMode */
    char *cluster_json; /* spec.cluster of KUBERNETES_EXEC_INFO (compact
                           JSON) when provide_cluster_info, else NULL */
};

/* The cluster extension that lets credentials travel over plain http://
 * (see kubeconfig_curl_create()); its value is not looked at. */
#define KUBECONFIG_EXT_PLAINTEXT \
    "dpfctl.dpu.nvidia.com/allow-plaintext-credentials"

/* A resolved context. Every pointer is owned by the struct. */
struct kubeconfig {
    char *path;            /* the file that was loaded */
    char *context;         /* context name used */
    char *cluster_name;    /* the context's cluster */
    char *user_name;       /* the context's user (may be NULL: no auth) */
    char *server;          /* "https://127.0.0.1:6443" (no trailing '/') */
    char *namespace;       /* context namespace, "default" if unset */
    char *tls_server_name; /* SNI / verification name override, or NULL */
    bool insecure_skip_tls_verify;    /* do not verify the server's cert */
    bool allow_plaintext_credentials; /* KUBECONFIG_EXT_PLAINTEXT present */
    char *ca_pem;                 /* CA bundle PEM (NUL-terminated) or NULL */
    size_t ca_len;                /* bytes in ca_pem */
    char *cert_pem;               /* client certificate PEM or NULL */
    size_t cert_len;              /* bytes in cert_pem */
    char *key_pem;                /* client key PEM or NULL (secret) */
    size_t key_len;               /* bytes in key_pem */
    char *token;                  /* bearer token or NULL (secret) */
    char *username;               /* basic auth user or NULL */
    char *password;               /* basic auth password or NULL (secret) */
    struct kubeconfig_exec *exec; /* exec plugin or NULL; client-go uses
                                      it only when the user has no token,
                                      basic auth or client certificate */
    char *unix_socket; /* never read from a file: a program that reaches its
                          server on a local Unix socket sets it (dpf-server's
                          own controllers); the server URL then only names
                          the Host and the scheme */
};

/* A credential: from the kubeconfig or an exec plugin. Owned buffers. */
struct kubeconfig_credential {
    char *token;       /* bearer token or NULL (secret) */
    char *cert_pem;    /* client certificate PEM or NULL */
    size_t cert_len;   /* bytes in cert_pem */
    char *key_pem;     /* client key PEM or NULL (secret) */
    size_t key_len;    /* bytes in key_pem */
    int64_t expiry_ns; /* wall clock expiry (time_wall_ns()); 0 = none */
};

/* How to run an exec plugin. Zero-initialise for the defaults. */
struct kubeconfig_exec_options {
    long timeout_ms;        /* 0 = KUBECONFIG_EXEC_TIMEOUT_MS (or
                               KUBECONFIG_EXEC_TIMEOUT_TTY_MS when the
                               plugin talks to a terminal) */
    size_t max_output;      /* stdout bytes; 0 = KUBECONFIG_EXEC_MAX_OUTPUT */
    bool stdin_unavailable; /* the program reads stdin itself (-f -) */
    int stdin_fd;           /* the terminal candidate (0 = stdin) */
    FILE *stderr_out;       /* gets a non-interactive plugin's stderr after
                               it succeeded (NULL = dropped; on failure the
                               stderr goes into the error message) */
};

#define KUBECONFIG_EXEC_TIMEOUT_MS 60000L
#define KUBECONFIG_EXEC_TIMEOUT_TTY_MS 300000L
#define KUBECONFIG_EXEC_MAX_OUTPUT ((size_t) 1 << 20)
/* The most plugin stderr kept for an error message. */
#define KUBECONFIG_EXEC_STDERR_TAIL 480

/* The file to load: opts->path, the first existing entry of $KUBECONFIG,
 * or ~/.kube/config. Returns a malloc'd path, or NULL with err set when
 * nothing is configured or found. */
char *kubeconfig_resolve_path(const char *explicit_path, struct dpf_error *err);
/* Resolve the file (kubeconfig_resolve_path) and load it. 0 or -errno
 * (-ENOENT, -EINVAL, ...) with err naming the file and field. */
int kubeconfig_load(const struct kubeconfig_options *opts,
                    struct kubeconfig **out, struct dpf_error *err);
/* Parse kubeconfig text already in memory; path is used for messages and
 * to resolve relative file references (may be NULL: current dir). */
int kubeconfig_parse(const char *text, size_t len, const char *path,
                     const char *context, struct kubeconfig **out,
                     struct dpf_error *err);
/* Release everything (wipes the secrets first). NULL is fine. */
void kubeconfig_free(struct kubeconfig *kc);
/* A deep copy (secrets included: free it with kubeconfig_free()). */
/* Point kc at a local Unix socket: requests go there as plain HTTP to
 * http://localhost, with no credentials (the server names a local peer
 * by its Unix credentials). The TLS settings and credentials are
 * dropped. */
void kubeconfig_use_unix_socket(struct kubeconfig *kc, const char *path);
struct kubeconfig *kubeconfig_dup(const struct kubeconfig *kc);

/* Copy / free an exec section. */
struct kubeconfig_exec *kubeconfig_exec_dup(const struct kubeconfig_exec *x);
void kubeconfig_exec_free(struct kubeconfig_exec *x);

/* The KUBERNETES_EXEC_INFO value for a run: an ExecCredential request
 * ({"kind":"ExecCredential","apiVersion":..,"spec":{"cluster":..,
 * "interactive":..}}) as client-go encodes it, compact JSON and a
 * newline. Malloc'd. */
char *kubeconfig_exec_info(const struct kubeconfig_exec *x, bool interactive);
/* Decode a plugin's stdout into *cred (cleared first). Checks what
 * client-go checks (kind, the configured apiVersion, status present, a
 * token or a cert/key pair, both or neither of cert and key, a valid
 * expirationTimestamp) and more: the token has no control character and
 * the certificate and key are PEM that belong together. 0 or -EINVAL with
 * err naming the user. */
int kubeconfig_exec_decode(const struct kubeconfig_exec *x, const char *out,
                           size_t len, struct kubeconfig_credential *cred,
                           struct dpf_error *err);
/* Run the plugin once and decode its reply (see the top of this file).
 * 0, or -ENOENT (not installed), -ETIMEDOUT, -EMSGSIZE (too much output),
 * -EACCES (failed, or bad reply; err says which, with the plugin's stderr
 * and the installHint), -EINVAL (interactive mode cannot be met). */
int kubeconfig_exec_run(const struct kubeconfig_exec *x,
                        const struct kubeconfig_exec_options *o,
                        struct kubeconfig_credential *cred,
                        struct dpf_error *err);
/* Wipe and free the buffers (the struct itself is the caller's). */
void kubeconfig_credential_clear(struct kubeconfig_credential *cred);

/* Index of the first control character (0x00-0x1f, 0x7f) in s, or -1:
 * such a byte would end or split an HTTP header line. */
long kubeconfig_find_ctl(const char *s);

#endif
