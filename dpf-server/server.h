/* server: the dpf-server process around the API server.
 *
 * Parses the command line (docs: /work/notes/server-contract.md, `dpf-server
 * --help`), bootstraps the PKI under <data-dir>/pki (CA, serving and admin
 * client certificates, admin token; reused on later starts), opens the
 * store and the watch cache, serves HTTPS with libmicrohttpd
 * (lib/http-server.h), writes the admin kubeconfig once bound, and runs
 * until SIGTERM or SIGINT.
 *
 * Every request passes the authentication gate first: GET/HEAD of
 * /healthz, /readyz, /livez and /version are open; everything else needs
 * a client certificate verified against the CA or the admin bearer token
 * (compared in constant time), else 401 with a Kubernetes Status. With
 * --insecure-dev the server speaks plain HTTP without authentication (for
 * development only; off by default).
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
    char *bind_address;      /* --bind-address (default 0.0.0.0) */
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
    bool insecure_dev;               /* --insecure-dev: plain HTTP, no auth */
    char *log_level;                 /* --log-level (default info) */
    char *log_file;                  /* --log-file; NULL = stderr */
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

/* The authentication decision of the gate, exposed for tests: true if the
 * request carries a verified client certificate or `Authorization: Bearer
 * <token>` with exactly this token. */
bool server_request_authenticated(const struct http_request *req,
                                  const char *token);

#endif
