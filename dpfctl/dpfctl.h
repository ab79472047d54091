/* dpfctl: the command-line client, kubectl-compatible in output and exit
 * codes (see docs/dpfctl.md).
 *
 * dpfctl_main() is the whole program minus main(): it parses the global
 * flags (--kubeconfig, --context, -n, -A, --request-timeout, -h,
 * --version), finds the command and runs it. Each command lives in its
 * own module (cmd-apply.c, cmd-get.c, ...) and receives a struct dpfctl
 * holding the resolved options, the output streams and, after
 * dpfctl_connect(), the kubeconfig and API client.
 *
 * Conventions shared by the commands (kubectl's):
 *   - results on stdout, errors on stderr as "error: ..." or
 *     "Error from server (<Reason>): <message>";
 *   - exit 0 on success, 1 on any error (a command keeps going over the
 *     remaining objects and exits 1 at the end). */
#ifndef DPFCTL_DPFCTL_H
#define DPFCTL_DPFCTL_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "api/schema.h"
#include "lib/kube/api-client.h"
#include "lib/base/error.h"
#include "lib/kube/kubeconfig.h"

/* Everything a command needs. */
struct dpfctl {
    FILE *out;                  /* results (stdout) */
    FILE *err;                  /* diagnostics (stderr) */
    const char *kubeconfig;     /* --kubeconfig or NULL */
    const char *context;        /* --context or NULL */
    const char *namespace_flag; /* -n/--namespace or NULL */
    bool all_namespaces;        /* -A/--all-namespaces */
    long request_timeout_ms;    /* --request-timeout (0 = none) */
    struct kubeconfig *kc;      /* after dpfctl_connect() */
    struct api_client *client;  /* after dpfctl_connect() */
    const char *ns;             /* effective namespace after connect */
    bool stdin_used;            /* a command reads stdin (-f -): an exec
                                   credential plugin must not */
};

/* One command's option table entry beyond the global ones. */
struct dpfctl_cmd {
    const char *name;              /* "get" */
    const char *summary;           /* one line for the top-level help */
    const char *usage;             /* full help text of the command */
    const struct option *longopts; /* terminated by a zero entry */
    const char *shortopts;         /* getopt short option string */
    /* Run with the parsed option values delivered one by one through
     * opt() and the positional arguments. Returns the exit code. */
    int (*run)(struct dpfctl *d, int argc, char **argv, void *state);
    /* Handle one command-specific option (getopt's value and optarg).
     * 0 or -EINVAL (the caller prints usage hints). */
    int (*opt)(void *state, int c, const char *arg, struct dpfctl *d);
    size_t state_size;               /* bytes of zeroed per-run option state */
    void (*state_free)(void *state); /* release option state (may be NULL) */
};

/* The program: returns the process exit code. out/err are usually
 * stdout/stderr (tests pass memory streams). */
int dpfctl_main(int argc, char **argv, FILE *out, FILE *err);

/* Load the kubeconfig and create the API client (once). Prints the error
 * and returns -errno on failure. */
int dpfctl_connect(struct dpfctl *d);

/* Print a server or client error the way kubectl does:
 * "Error from server (<Reason>): <prefix><message>" when the error came
 * from the server (code != 0 and not a transport failure), else
 * "error: <prefix><message>". prefix may be NULL. */
void dpfctl_print_error(struct dpfctl *d, const struct dpf_error *err,
                        const char *prefix);
/* True if err came from the API server rather than the transport. */
bool dpfctl_error_from_server(const struct dpf_error *err);

/* Resolve a user's resource word (plural, singular, short name, kind,
 * plural.group). NULL after printing kubectl's "the server doesn't have a
 * resource type" error. */
const struct schema_kind *dpfctl_resolve_type(struct dpfctl *d,
                                              const char *word);
/* Namespace to use for kind k: NULL for cluster-scoped kinds or with -A
 * (when all_ok), else the effective namespace. */
const char *dpfctl_ns_for(struct dpfctl *d, const struct schema_kind *k,
                          bool all_ok);

/* "dpuset.provisioning.dpu.nvidia.com" or "namespace" (kind lower-case
 * plus group). Static buffer per call site use: copy if needed. */
const char *dpfctl_kind_group(const struct schema_kind *k, char *buf,
                              size_t size);
/* "dpusets.provisioning.dpu.nvidia.com" or "namespaces". */
const char *dpfctl_resource_group(const struct schema_kind *k, char *buf,
                                  size_t size);

/* Command entry points (one module each). */
extern const struct dpfctl_cmd cmd_apply;
extern const struct dpfctl_cmd cmd_get;
extern const struct dpfctl_cmd cmd_describe;
extern const struct dpfctl_cmd cmd_delete;
extern const struct dpfctl_cmd cmd_wait;
extern const struct dpfctl_cmd cmd_crds;
extern const struct dpfctl_cmd cmd_api_resources;
extern const struct dpfctl_cmd cmd_version;
extern const struct dpfctl_cmd cmd_bfb;
extern const struct dpfctl_cmd cmd_token;
extern const struct dpfctl_cmd cmd_join;
extern const struct dpfctl_cmd cmd_certificate;

/* kubeadm join's TLS bootstrap with progress lines on err_out (dpfctl
 * join; node_name NULL = the host name). The exit code. */
int dpfctl_join_run(const char *endpoint, const char *token,
                    const char *ca_hash, const char *node_name,
                    const char *kubeconfig, int64_t timeout_ms, FILE *out,
                    FILE *err_out);

#endif
