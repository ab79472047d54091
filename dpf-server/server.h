/* server: the dpf-server process around the API server.
 *
 * Parses the command line (docs: /work/notes/server-contract.md, `dpf-server
 * --help`), locks the data directory (<data-dir>/dpf-server.lock, flock:
 * a second server on it stops before it writes anything there), makes it
 * owner-only (umask 077, chmod 0700), opens the store (refusing a missing
 * or empty one unless the data directory is new or --init-store is given,
 * and a damaged one always), bootstraps the PKI under <data-dir>/pki (CA,
 * serving and admin client certificates, admin token; reused on later
 * starts), opens the watch cache, serves HTTPS with libmicrohttpd
 * (lib/http-server.h), writes the admin kubeconfig once it serves, and
 * runs until SIGTERM or SIGINT. /readyz reports the store's health.
 *
 * Every request passes the gate first (auth.h): GET/HEAD of /healthz,
 * /readyz, /livez and /version are open to anonymous clients; everything
 * else needs a credential (a client certificate verified against the CA:
 * CN user, O groups; the admin bearer token; a service-account token),
 * else 401, and what the user asks must be authorized (system:masters,
 * the Node authorizer, RBAC), else 403, both as Kubernetes Status
 * objects. The gate runs when a request's headers are in, before its
 * body is read. /metrics (metrics.h) is served here too, to whoever RBAC
 * lets get that path; every answer is counted for it through the HTTP
 * server's observer.
 * With --insecure-dev the server speaks plain HTTP without authentication
 * (for development only; off by default) on 127.0.0.1 unless
 * --bind-address says otherwise.
 *
 * Ownership: struct server_options owns its strings (server_options_free).
 * The server borrows nothing from the caller after server_run returns. */
#ifndef DPF_SERVER_SERVER_H
#define DPF_SERVER_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct http_request;

/* Command-line settings; server_options_init gives the defaults. */
struct server_options {
    char *data_dir;          /* --data-dir (default /var/lib/dpf) */
    char *store_url;         /* --store; NULL = sqlite:<data-dir>/state.db */
    bool init_store;         /* --init-store: create a missing store */
    int64_t quota_bytes;     /* --quota-backend-bytes (0 = 2 GiB) */
    char *bind_address;      /* --bind-address (default 0.0.0.0; 127.0.0.1
                                with --insecure-dev) */
    uint16_t port;           /* --port (default 6443; 0 = any free port) */
    char *kubeconfig_out;    /* --kubeconfig-out; NULL = <data-dir>/... */
    char **server_names;     /* --server-name values (extra SANs) */
    size_t n_server_names;   /* count */
    unsigned threads;        /* --threads (default 4) */
    size_t watch_cache_size; /* --watch-cache-size (default 100000) */
    /* Memory bounds of watches (bytes; defaults in server.c's --help). */
    size_t watch_cache_bytes;        /* --watch-cache-bytes */
    size_t watch_buffer_bytes;       /* --watch-buffer-bytes (per watch) */
    size_t watch_buffer_total_bytes; /* --watch-buffer-total-bytes */
    int64_t event_ttl_ms;            /* --event-ttl (default 1 h; 0 = keep) */
    bool insecure_dev;               /* --insecure-dev: plain HTTP, no auth */
    unsigned max_conns;              /* --max-connections (default 4096) */
    unsigned header_timeout; /* --request-header-timeout, s (default 10) */
    unsigned idle_timeout;   /* --idle-timeout, s (default 90) */
    size_t conn_memory;      /* --connection-memory, bytes (default 16Ki) */
    char *tls_priorities;    /* GnuTLS priorities from --tls-min-version
                                and --tls-cipher-suites; NULL = default */
    char *log_level;         /* --log-level (default info) */
    char *log_file;          /* --log-file; NULL = stderr */
    char *controllers;       /* --controllers (default "all"; "none") */
    char *bfb_dir;           /* --bfb-dir; NULL = <data-dir>/bfb */
    char *local_socket;      /* --local-socket; NULL = <data-dir>/api.sock,
                                "none" = controllers use the TLS port */
    int max_installs;        /* --max-concurrent-installs; 0 = 16 */
    char *dpuc_dir;     /* --dpu-cluster-dir; NULL = <data-dir>/dpuclusters */
    char *dpuc_address; /* --dpu-cluster-address; NULL = primary */
    char *kubelet_ca;   /* --kubelet-certificate-authority or NULL */
};

/* Fill in the defaults. */
void server_options_init(struct server_options *o);
/* Free the strings (not o itself). */
void server_options_free(struct server_options *o);

/* Parse argv into o (initialised with server_options_init). Returns 0 to
 * run, 1 if --help or --version was answered on out (exit 0), or -EINVAL
 * after printing a usage error on errout (exit 2). */
int server_options_parse(struct server_options *o, int argc, char **argv,
                         FILE *out, FILE *errout);

/* Run the server until SIGTERM/SIGINT. Returns the process exit code:
 * 0 after a clean shutdown, 1 when start-up failed (logged). */
int server_run(const struct server_options *o);

#endif
