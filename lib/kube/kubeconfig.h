/* kubeconfig: load a kubectl kubeconfig file and resolve one context.
 *
 * Which file: the explicit path (dpfctl/kubectl --kubeconfig) if given,
 * else $KUBECONFIG, else ~/.kube/config. $KUBECONFIG may be a colon
 * separated list; unlike kubectl we do not merge the files, we use the
 * first one that exists (documented in docs/dpfctl.md).
 *
 * Which context: the explicit one (--context) or current-context. From it
 * we take the cluster (server, certificate-authority[-data],
 * insecure-skip-tls-verify, tls-server-name), the user (token, tokenFile,
 * client-certificate[-data], client-key[-data]) and the namespace (default
 * "default"). Relative file paths are resolved against the directory of
 * the kubeconfig file, as kubectl does. *-data fields are base64 and are
 * decoded here; file fields are read here, so the result holds PEM bytes.
 *
 * Errors fill a struct dpf_error naming the file and the missing or bad
 * field ("kubeconfig /x: users[0].user.client-key-data: not valid
 * base64"). The returned struct kubeconfig is owned by the caller and
 * released with kubeconfig_free(); it holds secrets (key, token): never
 * log its fields. */
#ifndef DPF_KUBECONFIG_H
#define DPF_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/base/error.h"

/* What to load. All fields may be NULL. */
struct kubeconfig_options {
    const char *path;    /* explicit file; NULL = $KUBECONFIG/~/.kube */
    const char *context; /* context name; NULL = current-context */
};

/* A resolved context. Every pointer is owned by the struct. */
struct kubeconfig {
    char *path;            /* the file that was loaded */
    char *context;         /* context name used */
    char *cluster_name;    /* the context's cluster */
    char *user_name;       /* the context's user (may be NULL: no auth) */
    char *server;          /* "https://127.0.0.1:6443" (no trailing '/') */
    char *namespace;       /* context namespace, "default" if unset */
    char *tls_server_name; /* SNI / verification name override, or NULL */
    bool insecure_skip_tls_verify; /* do not verify the server's cert */
    char *ca_pem;                  /* CA bundle PEM (NUL-terminated) or NULL */
    size_t ca_len;                 /* bytes in ca_pem */
    char *cert_pem;                /* client certificate PEM or NULL */
    size_t cert_len;               /* bytes in cert_pem */
    char *key_pem;                 /* client key PEM or NULL (secret) */
    size_t key_len;                /* bytes in key_pem */
    char *token;                   /* bearer token or NULL (secret) */
};

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

/* Decode base64 (standard alphabet, padding optional, whitespace
 * ignored) into a new NUL-terminated buffer. 0 or -EINVAL. */
int kubeconfig_base64_decode(const char *in, char **out, size_t *out_len);

#endif
