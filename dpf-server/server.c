/* server: see server.h. */
#include "dpf-server/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "controllers/controllers.h"
#include "dpf-server/apiserver.h"
#include "dpf-server/auth.h"
#include "dpf-server/metrics.h"
#include "lib/net/http-server.h"
#include "lib/base/log.h"
#include "lib/codecs/duration.h"
#include "lib/net/pki.h"
#include "lib/store/store.h"
#include "lib/base/util.h"
#include "lib/kube/kube-status.h"
#include "lib/store/watch-cache.h"

LOG_MODULE(server);

#define SERVER_CA_DAYS 3650
#define SERVER_LEAF_DAYS 365
#define SERVER_RENEW_DAYS 30 /* reissue leaves closer than this to expiry */
#define SERVER_MAX_BODY (3u * 1024 * 1024)
#define SERVER_ADMIN_CN "dpf-admin"
#define SERVER_ADMIN_ORG "system:masters"
/* What dpf-server shows node agents for pods/log and pods/exec (as
 * kubeadm names kube-apiserver's kubelet client certificate). */
#define SERVER_KUBELET_CLIENT_CN "kube-apiserver-kubelet-client"
#define SERVER_LOCK_FILE "dpf-server.lock"
/* Watch memory bounds: defaults and the range the flags accept. */
/* 32 MiB of events: at 10,000 DPUs provisioning, 15-30 s of history,
 * more than a reconnecting informer needs to resume (a watch's bookmarks
 * keep its resourceVersion fresh); 128 MiB was an eighth of the
 * server's memory there. */
#define SERVER_WATCH_CACHE_BYTES ((size_t) 32 << 20)
#define SERVER_WATCH_BUFFER_BYTES ((size_t) 16 << 20)
#define SERVER_WATCH_BUFFER_TOTAL_BYTES ((size_t) 128 << 20)
#define SERVER_WATCH_MIN_BYTES ((size_t) 1 << 20)
#define SERVER_WATCH_MAX_BYTES ((size_t) 1 << 40)
/* Each connection's buffer: a request's head must fit in about three
 * quarters of it. 16 KiB takes heads of ~12 KB (nginx's default line
 * limit is 8 KB) and holds ~28 KB per idle TLS connection (32 KiB: 44). */
#define SERVER_CONN_MEMORY ((size_t) 16 << 10)
#define SERVER_CONN_MEMORY_MIN ((size_t) 4 << 10)
#define SERVER_CONN_MEMORY_MAX ((size_t) 1 << 20)

/* Everything the running server holds. */
struct server {
    const struct server_options *opt; /* borrowed */
    char *token;                      /* admin bearer token (NULL: insecure) */
    atomic_bool ready;                /* store open, apiserver created */
    _Atomic(struct apiserver *) api;  /* set once ready */
    struct store *store;              /* owned */
    struct watch_cache *wc;           /* owned */
    struct http_server *http;         /* owned */
    struct http_server *local_http;   /* the controllers' Unix socket */
    char *pki_dir;                    /* <data-dir>/pki */
    struct ctrl_runner *controllers;  /* in-process controllers (owned) */
    pthread_mutex_t controllers_mu;   /* controllers vs. /metrics */
    struct auth *auth;                /* authn + authz (NULL: insecure) */
    struct metrics *metrics;          /* /metrics (owned) */
};

/* ---------------------------------------------------------------- */
/* options                                                           */

void
server_options_init(struct server_options *o)
{
    memset(o, 0, sizeof(*o));
    o->data_dir = xstrdup("/var/lib/dpf");
    o->bind_address = xstrdup("0.0.0.0");
    o->port = 6443;
    o->threads = 4;
    o->watch_cache_size = 100000;
    o->watch_cache_bytes = SERVER_WATCH_CACHE_BYTES;
    o->watch_buffer_bytes = SERVER_WATCH_BUFFER_BYTES;
    o->watch_buffer_total_bytes = SERVER_WATCH_BUFFER_TOTAL_BYTES;
    o->event_ttl_ms = 3600 * 1000; /* kube-apiserver's --event-ttl */
    o->log_level = xstrdup("info");
    o->max_conns = HTTP_DEFAULT_MAX_CONN;
    o->header_timeout = HTTP_DEFAULT_HEADER_TIMEOUT_S;
    o->idle_timeout = HTTP_DEFAULT_IDLE_TIMEOUT_S;
    o->conn_memory = SERVER_CONN_MEMORY;
    o->controllers = xstrdup("all");
}

void
server_options_free(struct server_options *o)
{
    free(o->data_dir);
    free(o->store_url);
    free(o->bind_address);
    free(o->kubeconfig_out);
    for (size_t i = 0; i < o->n_server_names; i++) {
        free(o->server_names[i]);
    }
    free(o->server_names);
    free(o->log_level);
    free(o->log_file);
    free(o->tls_priorities);
    free(o->controllers);
    free(o->bfb_dir);
    free(o->local_socket);
    free(o->dpuc_dir);
    free(o->dpuc_address);
    free(o->kubelet_ca);
    memset(o, 0, sizeof(*o));
}

static void
usage(FILE *f)
{
    fprintf(f, "Usage: dpf-server [options]\n"
               "\n"
               "The DPF control plane's API server (Kubernetes REST API over "
               "HTTPS).\n"
               "\n"
               "Options:\n"
               "  --data-dir DIR         state directory (default "
               "/var/lib/dpf); created 0700\n"
               "  --store URL            store (default "
               "sqlite:<data-dir>/state.db; URL options in\n"
               "                         docs/dev/store.md, e.g. "
               "?sync=normal trades power-loss\n"
               "                         safety for speed)\n"
               "  --init-store           create an empty store if it is "
               "missing or empty (needed\n"
               "                         when the data directory was used "
               "before; never erases\n"
               "                         an existing store)\n"
               "  --quota-backend-bytes N  space the objects may take "
               "(default and 0: 2 GiB);\n"
               "                         past it creates and updates fail "
               "(507), deletes work\n"
               "  --bind-address ADDR    listen address (default 0.0.0.0; "
               "127.0.0.1 with\n"
               "                         --insecure-dev)\n"
               "  --port N               listen port (default 6443; 0 = pick a "
               "free port)\n"
               "  --kubeconfig-out PATH  admin kubeconfig (default "
               "<data-dir>/admin.kubeconfig)\n"
               "  --server-name NAME     extra DNS name or IP for the serving "
               "certificate\n"
               "                         (repeatable)\n"
               "  --threads N            HTTP worker threads (default 4)\n"
               "  --watch-cache-size N   events kept for watch resume (default "
               "100000)\n"
               "  --watch-cache-bytes N  memory for those events, oldest "
               "dropped first\n"
               "                         (default 32Mi)\n"
               "  --watch-buffer-bytes N data one watch may hold for a client "
               "that does not\n"
               "                         read; past it the watch is ended "
               "(default 16Mi)\n"
               "  --watch-buffer-total-bytes N\n"
               "                         the same for all watches together; "
               "the largest\n"
               "                         backlogs are ended first (default "
               "128Mi)\n"
               "                         (sizes: bytes, or a number with Ki, "
               "Mi or Gi)\n"
               "  --event-ttl D          delete Events not written for this "
               "long (default 1h,\n"
               "                         as kube-apiserver; 0 = keep them)\n"
               "  --insecure-dev         plain HTTP and NO authentication "
               "(development only);\n"
               "                         binds 127.0.0.1 unless "
               "--bind-address is given\n"
               "  --max-connections N    connections held before the oldest "
               "one without\n"
               "                         credentials is closed for each new "
               "one (default 4096;\n"
               "                         connections that passed "
               "authentication are kept up to\n"
               "                         twice this)\n"
               "  --request-header-timeout S\n"
               "                         seconds a client has to finish the "
               "TLS handshake and\n"
               "                         send a request's headers (default "
               "10)\n"
               "  --idle-timeout S       seconds of silence allowed inside a "
               "request, or between\n"
               "                         an authenticated client's requests "
               "(default 90);\n"
               "                         watches waiting for events are not "
               "cut\n"
               "  --connection-memory N  buffer of each connection for a "
               "request's line and\n"
               "                         headers and the answer being "
               "written; heads longer\n"
               "                         than about 3/4 of it get 431; an "
               "idle kept-alive\n"
               "                         connection holds it (default 16Ki; "
               "4Ki to 1Mi)\n"
               "  --tls-min-version V    VersionTLS12 (default) or "
               "VersionTLS13; TLS 1.3 is\n"
               "                         preferred either way\n"
               "  --tls-cipher-suites L  comma-separated TLS 1.2 suites "
               "(IANA names as\n"
               "                         kube-apiserver takes them), ECDHE "
               "with AES-GCM or\n"
               "                         CHACHA20-POLY1305 only, e.g.\n"
               "                         "
               "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256; the ciphers\n"
               "                         named also limit TLS 1.3 (default: "
               "all of them)\n"
               "  --controllers LIST     controllers run in-process over "
               "this server's API:\n"
               "                         all (default), none, or a comma "
               "list of:\n"
               "                         bfb, dpucluster, dpuset, dpu\n"
               "  --local-socket PATH    Unix socket the in-process "
               "controllers reach the API on\n"
               "                         (plain HTTP, owner-only; a peer "
               "running as this\n"
               "                         user or root is the admin; default "
               "<data-dir>/api.sock;\n"
               "                         none: they use the TLS port)\n"
               "  --max-concurrent-installs N\n"
               "                         DPU OS installs at once (default 16)\n"
               "  --bfb-dir DIR          BFB content cache (default "
               "<data-dir>/bfb)\n"
               "  --dpu-cluster-dir DIR  data of the embedded DPU clusters' "
               "API servers\n"
               "                         (default <data-dir>/dpuclusters)\n"
               "  --dpu-cluster-address A  address the DPUs reach embedded "
               "DPU clusters on\n"
               "                         (in their kubeconfig and serving "
               "certificate;\n"
               "                         default: this host's primary "
               "address)\n"
               "  --kubelet-certificate-authority FILE\n"
               "                         CA (PEM) that node agents' serving "
               "certificates must\n"
               "                         verify against for pods/log, "
               "pods/exec, pods/attach\n"
               "                         (default: not verified, as "
               "kube-apiserver)\n"
               "  --log-level L          error|warn|info|debug (default info)\n"
               "  --log-file PATH        log to a file instead of stderr\n"
               "  --help                 show this help\n"
               "  --version              show the version\n"
               "\n"
               "On first start the CA, serving and admin certificates and the "
               "admin token are\n"
               "created under <data-dir>/pki and <data-dir>/admin.token; later "
               "starts reuse them.\n"
               "A new data directory gets an empty store. Once it holds pki/, "
               "admin.token or\n"
               "admin.kubeconfig, a missing or empty store is refused "
               "(restore it from a backup\n"
               "or start with --init-store), as is a damaged one (the "
               "integrity check at start\n"
               "names the file). One server per data directory: a second one "
               "exits at once.\n");
    fprintf(f, "\n"
               "Users: a client certificate signed by the CA (CN = user, "
               "each O = a group),\n"
               "the admin token (user dpf-admin in system:masters) or a "
               "service-account token\n"
               "(kubectl create token; signed with <data-dir>/pki/sa.key). "
               "Only system:masters\n"
               "is admin; others get what RBAC grants them (default roles "
               "cluster-admin, admin,\n"
               "edit, view), and node identities (system:node:NAME in "
               "system:nodes) write only\n"
               "their own Node, Lease and pods' status. Without a "
               "credential only /healthz,\n"
               "/readyz, /livez and /version answer.\n"
               "/metrics (Prometheus text format) needs a user RBAC lets "
               "get it, e.g. one in\n"
               "system:masters or system:monitoring.\n");
}

/* Parse an unsigned number in [min, max]. */
static int
parse_uint(const char *s, unsigned long long min, unsigned long long max,
           unsigned long long *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-') {
        return -EINVAL;
    }
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max) {
        return -EINVAL;
    }
    *out = v;
    return 0;
}

/* Parse a byte size: a number with an optional Ki, Mi or Gi suffix, in
 * [min, max]. */
static int
parse_size(const char *s, size_t min, size_t max, size_t *out)
{
    char *end;
    errno = 0;
    if (!s || !*s || *s == '-') {
        return -EINVAL;
    }
    unsigned long long v = strtoull(s, &end, 10);
    unsigned shift = 0;
    if (!strcmp(end, "Ki")) {
        shift = 10;
    } else if (!strcmp(end, "Mi")) {
        shift = 20;
    } else if (!strcmp(end, "Gi")) {
        shift = 30;
    } else if (*end) {
        return -EINVAL;
    }
    if (errno || end == s || v > (max >> shift) || (v << shift) < min) {
        return -EINVAL;
    }
    *out = (size_t) (v << shift);
    return 0;
}

static void
set_str(char **dst, const char *src)
{
    free(*dst);
    *dst = xstrdup(src);
}

/* --tls-cipher-suites: the names kube-apiserver (Go's crypto/tls) takes,
 * mapped to GnuTLS key exchange and cipher keywords. Only ECDHE with an
 * AEAD cipher is offered; the TLS 1.3 names are accepted too and, as
 * GnuTLS has one cipher list for both versions, every listed cipher
 * limits TLS 1.3 as well. */
struct tls_suite {
    const char *name;   /* IANA / Go name */
    const char *kx;     /* GnuTLS key exchange, NULL for TLS 1.3 */
    const char *cipher; /* GnuTLS cipher */
};

static const struct tls_suite tls_suites[] = {
    {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA", "AES-128-GCM"},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA", "AES-256-GCM"},
    {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "ECDHE-ECDSA",
     "CHACHA20-POLY1305"},
    {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA",
     "CHACHA20-POLY1305"},
    {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA", "AES-128-GCM"},
    {"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA", "AES-256-GCM"},
    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "ECDHE-RSA", "CHACHA20-POLY1305"},
    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA",
     "CHACHA20-POLY1305"},
    {"TLS_AES_128_GCM_SHA256", NULL, "AES-128-GCM"},
    {"TLS_AES_256_GCM_SHA384", NULL, "AES-256-GCM"},
    {"TLS_CHACHA20_POLY1305_SHA256", NULL, "CHACHA20-POLY1305"},
};

/* Names Go knows that we refuse: CBC (padding oracles, no AEAD), RC4,
 * 3DES, and RSA key exchange (no forward secrecy). */
static const char *const tls_insecure_suites[] = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_RSA_WITH_RC4_128_SHA",
};

/* Append "+word" to the priority string unless it is there already. */
static void
prio_add(struct dbuf *b, const char *word)
{
    char *tok = xasprintf(":+%s:", word);
    bool have = strstr(b->data, tok) != NULL; /* b starts with ":" */
    free(tok);
    if (!have) {
        dbuf_printf(b, "+%s:", word);
    }
}

/* Build the GnuTLS priority string for --tls-min-version and
 * --tls-cipher-suites (NULL = every suite we allow); *out stays NULL when
 * both are at their defaults (the http server's default applies). */
static int
tls_priorities_build(const char *suites, bool tls13_only, char **out,
                     FILE *errout)
{
    *out = NULL;
    if (!suites && !tls13_only) {
        return 0;
    }
    struct dbuf kx, ciphers;
    dbuf_init(&kx);
    dbuf_init(&ciphers);
    dbuf_puts(&kx, ":");
    dbuf_puts(&ciphers, ":");
    int r = 0;
    char *list = xstrdup(suites ? suites : "");
    char *save = NULL;
    for (char *name = strtok_r(list, ",", &save); name;
         name = strtok_r(NULL, ",", &save)) {
        while (*name == ' ') {
            name++;
        }
        size_t len = strlen(name);
        while (len > 0 && name[len - 1] == ' ') {
            name[--len] = '\0';
        }
        if (!*name) {
            continue;
        }
        const struct tls_suite *found = NULL;
        for (size_t i = 0; i < ARRAY_SIZE(tls_suites); i++) {
            if (strcmp(name, tls_suites[i].name) == 0) {
                found = &tls_suites[i];
            }
        }
        if (!found) {
            bool insecure = false;
            for (size_t i = 0; i < ARRAY_SIZE(tls_insecure_suites); i++) {
                insecure |= strcmp(name, tls_insecure_suites[i]) == 0;
            }
            fprintf(errout,
                    "dpf-server: --tls-cipher-suites: %s \"%s\" (allowed: "
                    "ECDHE with AES-GCM or CHACHA20-POLY1305, e.g. "
                    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, see --help)\n",
                    insecure ? "insecure cipher suite" : "unknown cipher suite",
                    name);
            r = -EINVAL;
            break;
        }
        if (found->kx) {
            prio_add(&kx, found->kx);
        }
        prio_add(&ciphers, found->cipher);
    }
    free(list);
    if (r == 0 && suites && ciphers.len <= 1) {
        fprintf(errout, "dpf-server: --tls-cipher-suites: the list is "
                        "empty\n");
        r = -EINVAL;
    }
    if (r == 0 && suites && kx.len <= 1 && !tls13_only) {
        fprintf(errout,
                "dpf-server: --tls-cipher-suites: no TLS 1.2 suite listed; "
                "add one or use --tls-min-version=VersionTLS13\n");
        r = -EINVAL;
    }
    if (r == 0) {
        if (!suites) {
            dbuf_puts(&kx, "+ECDHE-ECDSA:+ECDHE-RSA:");
            dbuf_puts(&ciphers,
                      "+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:");
        }
        *out =
            xasprintf("NORMAL:-VERS-ALL:+VERS-TLS1.3:%s-KX-ALL%s"
                      "-CIPHER-ALL%s-MAC-ALL:+AEAD:%%SERVER_PRECEDENCE",
                      tls13_only ? "" : "+VERS-TLS1.2:", kx.data, ciphers.data);
    }
    dbuf_free(&kx);
    dbuf_free(&ciphers);
    return r;
}

enum {
    OPT_DATA_DIR = 256,
    OPT_STORE,
    OPT_INIT_STORE,
    OPT_QUOTA,
    OPT_BIND,
    OPT_PORT,
    OPT_KUBECONFIG,
    OPT_SERVER_NAME,
    OPT_THREADS,
    OPT_WATCH_CACHE,
    OPT_WATCH_CACHE_BYTES,
    OPT_WATCH_BUFFER,
    OPT_WATCH_BUFFER_TOTAL,
    OPT_EVENT_TTL,
    OPT_INSECURE,
    OPT_MAX_CONN,
    OPT_HEADER_TIMEOUT,
    OPT_IDLE_TIMEOUT,
    OPT_CONN_MEMORY,
    OPT_TLS_MIN,
    OPT_TLS_SUITES,
    OPT_LOG_LEVEL,
    OPT_LOG_FILE,
    OPT_CONTROLLERS,
    OPT_LOCAL_SOCKET,
    OPT_BFB_DIR,
    OPT_MAX_INSTALLS,
    OPT_DPUC_DIR,
    OPT_DPUC_ADDRESS,
    OPT_KUBELET_CA,
    OPT_HELP,
    OPT_VERSION,
};

int
server_options_parse(struct server_options *o, int argc, char **argv, FILE *out,
                     FILE *errout)
{
    static const struct option longopts[] = {
        {"data-dir", required_argument, NULL, OPT_DATA_DIR},
        {"store", required_argument, NULL, OPT_STORE},
        {"init-store", no_argument, NULL, OPT_INIT_STORE},
        {"quota-backend-bytes", required_argument, NULL, OPT_QUOTA},
        {"bind-address", required_argument, NULL, OPT_BIND},
        {"port", required_argument, NULL, OPT_PORT},
        {"kubeconfig-out", required_argument, NULL, OPT_KUBECONFIG},
        {"server-name", required_argument, NULL, OPT_SERVER_NAME},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"watch-cache-size", required_argument, NULL, OPT_WATCH_CACHE},
        {"watch-cache-bytes", required_argument, NULL, OPT_WATCH_CACHE_BYTES},
        {"watch-buffer-bytes", required_argument, NULL, OPT_WATCH_BUFFER},
        {"watch-buffer-total-bytes", required_argument, NULL,
         OPT_WATCH_BUFFER_TOTAL},
        {"event-ttl", required_argument, NULL, OPT_EVENT_TTL},
        {"insecure-dev", no_argument, NULL, OPT_INSECURE},
        {"max-connections", required_argument, NULL, OPT_MAX_CONN},
        {"request-header-timeout", required_argument, NULL, OPT_HEADER_TIMEOUT},
        {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
        {"connection-memory", required_argument, NULL, OPT_CONN_MEMORY},
        {"tls-min-version", required_argument, NULL, OPT_TLS_MIN},
        {"tls-cipher-suites", required_argument, NULL, OPT_TLS_SUITES},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"log-file", required_argument, NULL, OPT_LOG_FILE},
        {"controllers", required_argument, NULL, OPT_CONTROLLERS},
        {"local-socket", required_argument, NULL, OPT_LOCAL_SOCKET},
        {"dpu-cluster-dir", required_argument, NULL, OPT_DPUC_DIR},
        {"dpu-cluster-address", required_argument, NULL, OPT_DPUC_ADDRESS},
        {"bfb-dir", required_argument, NULL, OPT_BFB_DIR},
        {"max-concurrent-installs", required_argument, NULL, OPT_MAX_INSTALLS},
        {"kubelet-certificate-authority", required_argument, NULL,
         OPT_KUBELET_CA},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    unsigned long long v;
    int c;
    bool bind_given = false;
    bool tls13_only = false;
    char *suites = NULL;

    optind = 0; /* also resets getopt's state for repeated calls */
    opterr = 0;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_DATA_DIR:
            set_str(&o->data_dir, optarg);
            break;
        case OPT_STORE:
            set_str(&o->store_url, optarg);
            break;
        case OPT_INIT_STORE:
            o->init_store = true;
            break;
        case OPT_QUOTA:
            if (parse_uint(optarg, 0, INT64_MAX, &v) < 0) {
                fprintf(errout,
                        "dpf-server: --quota-backend-bytes: \"%s\" is not "
                        "a number of bytes (0 = the default, 2 GiB)\n",
                        optarg);
                return -EINVAL;
            }
            o->quota_bytes = (int64_t) v;
            break;
        case OPT_BIND:
            set_str(&o->bind_address, optarg);
            bind_given = true;
            break;
        case OPT_PORT:
            if (parse_uint(optarg, 0, 65535, &v) < 0) {
                fprintf(errout,
                        "dpf-server: --port: \"%s\" is not a port number "
                        "(0-65535)\n",
                        optarg);
                goto fail;
            }
            o->port = (uint16_t) v;
            break;
        case OPT_KUBECONFIG:
            set_str(&o->kubeconfig_out, optarg);
            break;
        case OPT_SERVER_NAME:
            if (!*optarg || strchr(optarg, ',') || strchr(optarg, ' ')) {
                fprintf(errout,
                        "dpf-server: --server-name: \"%s\" is not a DNS "
                        "name or IP address\n",
                        optarg);
                goto fail;
            }
            o->server_names =
                xrealloc(o->server_names,
                         (o->n_server_names + 1) * sizeof(*o->server_names));
            o->server_names[o->n_server_names++] = xstrdup(optarg);
            break;
        case OPT_THREADS:
            if (parse_uint(optarg, 1, 256, &v) < 0) {
                fprintf(errout,
                        "dpf-server: --threads: \"%s\" is not a number "
                        "between 1 and 256\n",
                        optarg);
                goto fail;
            }
            o->threads = (unsigned) v;
            break;
        case OPT_WATCH_CACHE:
            if (parse_uint(optarg, 1, 100000000, &v) < 0) {
                fprintf(errout,
                        "dpf-server: --watch-cache-size: \"%s\" is not a "
                        "number between 1 and 100000000\n",
                        optarg);
                goto fail;
            }
            o->watch_cache_size = (size_t) v;
            break;
        case OPT_WATCH_CACHE_BYTES:
        case OPT_WATCH_BUFFER:
        case OPT_WATCH_BUFFER_TOTAL: {
            const char *name =
                c == OPT_WATCH_CACHE_BYTES ? "--watch-cache-bytes"
                : c == OPT_WATCH_BUFFER    ? "--watch-buffer-bytes"
                                           : "--watch-buffer-total-bytes";
            size_t *dst = c == OPT_WATCH_CACHE_BYTES ? &o->watch_cache_bytes
                          : c == OPT_WATCH_BUFFER
                              ? &o->watch_buffer_bytes
                              : &o->watch_buffer_total_bytes;
            if (parse_size(optarg, SERVER_WATCH_MIN_BYTES,
                           SERVER_WATCH_MAX_BYTES, dst) < 0) {
                fprintf(errout,
                        "dpf-server: %s: \"%s\" is not a size between 1Mi "
                        "and 1024Gi (bytes, or a number with Ki, Mi or Gi)\n",
                        name, optarg);
                return -EINVAL;
            }
            break;
        }
        case OPT_EVENT_TTL: {
            int64_t ms = 0;
            if (duration_parse(optarg, &ms) < 0) {
                fprintf(errout,
                        "dpf-server: --event-ttl: \"%s\" is not a duration "
                        "(e.g. 1h, 30m, 90s; 0 keeps Events)\n",
                        optarg);
                goto fail;
            }
            o->event_ttl_ms = ms;
            break;
        }
        case OPT_INSECURE:
            o->insecure_dev = true;
            break;
        case OPT_MAX_CONN:
            if (parse_uint(optarg, 16, 1000000, &v) < 0) {
                fprintf(errout,
                        "dpf-server: --max-connections: \"%s\" is not a "
                        "number between 16 and 1000000\n",
                        optarg);
                goto fail;
            }
            o->max_conns = (unsigned) v;
            break;
        case OPT_HEADER_TIMEOUT:
        case OPT_IDLE_TIMEOUT:
            if (parse_uint(optarg, 1, 3600, &v) < 0) {
                fprintf(errout,
                        "dpf-server: %s: \"%s\" is not a number of seconds "
                        "between 1 and 3600\n",
                        c == OPT_HEADER_TIMEOUT ? "--request-header-timeout"
                                                : "--idle-timeout",
                        optarg);
                goto fail;
            }
            if (c == OPT_HEADER_TIMEOUT) {
                o->header_timeout = (unsigned) v;
            } else {
                o->idle_timeout = (unsigned) v;
            }
            break;
        case OPT_CONN_MEMORY:
            if (parse_size(optarg, SERVER_CONN_MEMORY_MIN,
                           SERVER_CONN_MEMORY_MAX, &o->conn_memory) < 0) {
                fprintf(errout,
                        "dpf-server: --connection-memory: \"%s\" is not a "
                        "size between 4Ki and 1Mi (bytes, or a number with "
                        "Ki or Mi)\n",
                        optarg);
                goto fail;
            }
            break;
        case OPT_TLS_MIN:
            if (strcmp(optarg, "VersionTLS12") == 0) {
                tls13_only = false;
            } else if (strcmp(optarg, "VersionTLS13") == 0) {
                tls13_only = true;
            } else {
                fprintf(errout,
                        "dpf-server: --tls-min-version: \"%s\" is not "
                        "VersionTLS12 or VersionTLS13%s\n",
                        optarg,
                        (strcmp(optarg, "VersionTLS10") == 0 ||
                         strcmp(optarg, "VersionTLS11") == 0)
                            ? " (TLS 1.0 and 1.1 are insecure)"
                            : "");
                goto fail;
            }
            break;
        case OPT_TLS_SUITES:
            set_str(&suites, optarg);
            break;
        case OPT_LOG_LEVEL:
            if (strcmp(optarg, "error") && strcmp(optarg, "warn") &&
                strcmp(optarg, "info") && strcmp(optarg, "debug")) {
                fprintf(errout,
                        "dpf-server: --log-level: \"%s\" is not one of "
                        "error, warn, info, debug\n",
                        optarg);
                goto fail;
            }
            set_str(&o->log_level, optarg);
            break;
        case OPT_LOG_FILE:
            set_str(&o->log_file, optarg);
            break;
        case OPT_CONTROLLERS: {
            unsigned mask;
            struct dpf_error cerr = {0};
            if (ctrl_parse_list(optarg, &mask, &cerr) < 0) {
                fprintf(errout, "dpf-server: --controllers: %s\n",
                        cerr.message);
                return -EINVAL;
            }
            set_str(&o->controllers, optarg);
            break;
        }
        case OPT_BFB_DIR:
            if (!*optarg) {
                fprintf(errout, "dpf-server: --bfb-dir must not be empty\n");
                return -EINVAL;
            }
            set_str(&o->bfb_dir, optarg);
            break;
        case OPT_LOCAL_SOCKET:
            set_str(&o->local_socket, optarg);
            break;
        case OPT_MAX_INSTALLS: {
            char *end = NULL;
            long n = strtol(optarg, &end, 10);
            if (!*optarg || *end || n < 1 || n > 10000) {
                fprintf(errout, "dpf-server: --max-concurrent-installs must "
                                "be 1-10000\n");
                return -EINVAL;
            }
            o->max_installs = (int) n;
            break;
        }
        case OPT_DPUC_DIR:
            if (!*optarg) {
                fprintf(errout,
                        "dpf-server: --dpu-cluster-dir must not be empty\n");
                return -EINVAL;
            }
            set_str(&o->dpuc_dir, optarg);
            break;
        case OPT_DPUC_ADDRESS:
            if (!*optarg) {
                fprintf(errout, "dpf-server: --dpu-cluster-address must not "
                                "be empty\n");
                return -EINVAL;
            }
            set_str(&o->dpuc_address, optarg);
            break;
        case OPT_KUBELET_CA:
            if (access(optarg, R_OK) < 0) {
                fprintf(errout,
                        "dpf-server: --kubelet-certificate-authority: cannot "
                        "read \"%s\": %s\n",
                        optarg, strerror(errno));
                return -EINVAL;
            }
            set_str(&o->kubelet_ca, optarg);
            break;
        case OPT_HELP:
            usage(out);
            free(suites);
            return 1;
        case OPT_VERSION:
            fprintf(out, "dpf-server %s\n", DPF_VERSION);
            free(suites);
            return 1;
        case ':':
            fprintf(errout, "dpf-server: %s needs a value\n", argv[optind - 1]);
            goto fail;
        default:
            fprintf(errout,
                    "dpf-server: unknown option \"%s\" (see "
                    "--help)\n",
                    argv[optind - 1]);
            goto fail;
        }
    }
    if (optind < argc) {
        fprintf(errout, "dpf-server: unexpected argument \"%s\" (see --help)\n",
                argv[optind]);
        goto fail;
    }
    if (!*o->data_dir) {
        fprintf(errout, "dpf-server: --data-dir must not be empty\n");
        goto fail;
    }
    /* Development mode has no authentication: only this host may talk to
     * it unless the operator names an address. */
    if (o->insecure_dev && !bind_given) {
        set_str(&o->bind_address, "127.0.0.1");
    }
    free(o->tls_priorities);
    o->tls_priorities = NULL;
    if (tls_priorities_build(suites, tls13_only, &o->tls_priorities, errout) <
        0) {
        goto fail;
    }
    free(suites);
    if (o->watch_buffer_bytes > o->watch_buffer_total_bytes) {
        fprintf(errout,
                "dpf-server: --watch-buffer-bytes (%zu) must not be "
                "larger than --watch-buffer-total-bytes (%zu)\n",
                o->watch_buffer_bytes, o->watch_buffer_total_bytes);
        return -EINVAL;
    }
    return 0;
fail:
    free(suites);
    return -EINVAL;
}

/* ---------------------------------------------------------------- */
/* authentication gate                                               */

static bool
is_open_path(const char *method, const char *path)
{
    static const char *const open[] = {"/healthz", "/readyz", "/livez",
                                       "/version"};
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        return false;
    }
    for (size_t i = 0; i < ARRAY_SIZE(open); i++) {
        size_t n = strlen(open[i]);
        if (strncmp(path, open[i], n) == 0 &&
            (path[n] == '\0' || path[n] == '/')) {
            return true;
        }
    }
    return false;
}

static void
respond_status(struct http_request *req, int code, const char *reason,
               const char *message)
{
    struct dpf_error e = {0};
    dpf_error_set(&e, code, reason, "%s", message);
    size_t len;
    char *body = kube_status_dump(&e, NULL, &len);
    http_respond_take(req, code, "application/json", body, len);
}

/* The health endpoints are the process's own business: the gate answers
 * them (also while the store is still opening) instead of the apiserver. */
static bool
respond_health(struct server *srv, struct http_request *req)
{
    const char *path = http_request_path(req);
    bool readyz = str_has_prefix(path, "/readyz");
    if (!readyz && !str_has_prefix(path, "/healthz") &&
        !str_has_prefix(path, "/livez")) {
        return false;
    }
    /* Readiness includes the store's health, as kube-apiserver's does
     * etcd's: a store that met damage or I/O errors, or whose file is
     * gone, fails it (the reason, without paths, in the check line). */
    char why[192] = "not open yet";
    bool ok = !readyz || (atomic_load(&srv->ready) &&
                          store_health(srv->store, why, sizeof(why)) == 0);
    bool verbose = http_request_query(req, "verbose") != NULL;
    struct dbuf b;
    dbuf_init(&b);
    if (verbose || !ok) {
        dbuf_puts(&b, "[+]ping ok\n");
        if (readyz) {
            dbuf_printf(&b, "[%c]store %s%s\n", ok ? '+' : '-',
                        ok ? "ok" : "failed: ", ok ? "" : why);
        }
        dbuf_printf(&b, "%s check %s\n", path + 1, ok ? "passed" : "failed");
    } else {
        dbuf_puts(&b, "ok");
    }
    size_t len;
    char *body = dbuf_steal(&b, &len);
    http_respond_take(req, ok ? 200 : 503, "text/plain; charset=utf-8", body,
                      len);
    return true;
}

/* The gate, run when a request's headers are in and before its body is
 * read: a client without credentials gets its 401 without uploading
 * anything, and a connection that showed credentials is kept under load
 * (http_request_mark_trusted). */
static bool
server_gate(void *arg, struct http_request *req)
{
    struct server *srv = arg;
    if (!srv->auth) {
        return true; /* --insecure-dev: nobody is asked */
    }
    const char *method = http_request_method(req);
    const char *path = http_request_path(req);
    return auth_gate(srv->auth, req, is_open_path(method, path));
}

/* /metrics (the gate authorized it as a non-resource get). */
static void
respond_metrics(struct server *srv, struct http_request *req)
{
    const char *method = http_request_method(req);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        http_response_header(req, "Allow", "GET, HEAD");
        respond_status(req, 405, "MethodNotAllowed",
                       "/metrics is read with GET");
        return;
    }
    struct apiserver *api = atomic_load(&srv->api);
    struct dbuf b;
    dbuf_init(&b);
    metrics_render(srv->metrics, &b, api ? apiserver_storage_objects : NULL,
                   api);
    if (srv->store) {
        struct store_stats st;
        store_stats(srv->store, &st);
        metrics_render_store(&b, &st);
    }
    /* the in-process controllers' series, as dpf-controller-manager's
     * own /metrics serves them */
    pthread_mutex_lock(&srv->controllers_mu);
    if (srv->controllers) {
        ctrl_runner_metrics(srv->controllers, &b);
    }
    pthread_mutex_unlock(&srv->controllers_mu);
    size_t len;
    char *body = dbuf_steal(&b, &len);
    http_respond_take(req, 200, METRICS_CONTENT_TYPE, body, len);
}

/* Observers of every answer (http-server.h), for /metrics. */
static void *
server_observe(void *arg, struct http_request *req, int status,
               int64_t elapsed_ns, bool long_running)
{
    struct server *srv = arg;
    return metrics_observe(srv->metrics, req, status, elapsed_ns, long_running);
}

static void
server_observe_end(void *arg, void *token, int64_t elapsed_ns)
{
    struct server *srv = arg;
    metrics_observe_end(srv->metrics, token, elapsed_ns);
}

/* Runs only for requests the gate let through. */
static void
server_handle(void *arg, struct http_request *req)
{
    struct server *srv = arg;
    const char *method = http_request_method(req);
    const char *path = http_request_path(req);
    bool open = is_open_path(method, path);

    if (open && respond_health(srv, req)) {
        return;
    }
    if (!strcmp(path, "/metrics")) {
        respond_metrics(srv, req);
        return;
    }
    struct apiserver *api = atomic_load(&srv->api);
    if (!api) {
        respond_status(req, 503, "ServiceUnavailable",
                       "the API server is starting: the store is not open "
                       "yet");
        return;
    }
    /* In flight while the API server works on it (a watch only until
     * its stream starts), as kube-apiserver's max-in-flight filter. */
    bool mutating = strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
    metrics_inflight_add(srv->metrics, mutating, 1);
    apiserver_handle(api, req);
    metrics_inflight_add(srv->metrics, mutating, -1);
}

/* ---------------------------------------------------------------- */
/* start-up                                                          */

static char *
join(const char *dir, const char *name)
{
    return xasprintf("%s/%s", dir, name);
}

static bool
is_wildcard(const char *addr)
{
    return !addr || !*addr || !strcmp(addr, "0.0.0.0") || !strcmp(addr, "::") ||
           !strcmp(addr, "[::]");
}

/* 127.0.0.0/8, ::1 or an IPv4-mapped 127.x address. */
static bool
is_loopback(const char *addr)
{
    struct in_addr a4;
    struct in6_addr a6;
    char buf[INET6_ADDRSTRLEN];
    if (!addr) {
        return false;
    }
    if (inet_pton(AF_INET, addr, &a4) == 1) {
        return (ntohl(a4.s_addr) >> 24) == 127;
    }
    size_t len = strlen(addr);
    if (len > 2 && addr[0] == '[' && addr[len - 1] == ']' &&
        len - 2 < sizeof(buf)) {
        memcpy(buf, addr + 1, len - 2);
        buf[len - 2] = '\0';
        addr = buf;
    }
    if (inet_pton(AF_INET6, addr, &a6) == 1) {
        return IN6_IS_ADDR_LOOPBACK(&a6) ||
               (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    }
    return false;
}

/* Tighten a directory that exists with group or other bits to 0700: an
 * older version or a hand-made directory may be 0755, and the store and
 * the keys inside must not be reachable by other local users. */
static int
server_make_dir_private(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) < 0) {
        return errno == ENOENT ? 0 : -errno;
    }
    if ((st.st_mode & 077) && chmod(dir, 0700) < 0) {
        int r = -errno;
        log_error("cannot make the directory owner-only (0700)",
                  "path=%s error=\"%s\"", dir, strerror(-r));
        return r;
    }
    return 0;
}

/* Lock <data-dir>/SERVER_LOCK_FILE for the life of the process. A second
 * server on the same directory finds the lock held and stops here, before
 * it writes anything in the directory (the lock file's creation aside).
 * Returns the lock's fd, or -1 (logged). */
static int
server_lock_data_dir(const char *dir)
{
    char *path = join(dir, SERVER_LOCK_FILE);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_error("cannot open the data directory lock", "path=%s error=\"%s\"",
                  path, strerror(errno));
        free(path);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        char pid[24] = "";
        ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        if (e == EWOULDBLOCK) {
            log_error("the data directory is in use by another dpf-server; "
                      "stopping without touching it",
                      "dir=%s holder_pid=%s lock=%s", dir,
                      *pid ? pid : "unknown", path);
        } else {
            log_error("cannot lock the data directory", "path=%s error=\"%s\"",
                      path, strerror(e));
        }
        close(fd);
        free(path);
        return -1;
    }
    /* Who holds it, for the message of the next one that tries. */
    char pid[24];
    int len = snprintf(pid, sizeof(pid), "%ld\n", (long) getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t) len, 0) != len) {
        log_warn("cannot record the PID in the data directory lock",
                 "path=%s error=\"%s\"", path, strerror(errno));
    }
    free(path);
    return fd;
}

/* What an earlier start left in the data directory, or NULL if it is new.
 * A missing or empty store in a used directory is a lost store: it must
 * not be replaced by an empty one unless the operator says so. */
static const char *
server_data_dir_used(const char *dir)
{
    static const char *const marks[] = {"pki", "admin.token",
                                        "admin.kubeconfig"};
    for (size_t i = 0; i < ARRAY_SIZE(marks); i++) {
        char *p = join(dir, marks[i]);
        bool there = access(p, F_OK) == 0;
        free(p);
        if (there) {
            return marks[i];
        }
    }
    return NULL;
}

/* Open the store: create it only in a new data directory or with
 * --init-store; refuse a lost or damaged one with what to do. */
static struct store *
server_open_store(const struct server_options *o, const char *url)
{
    const char *used = server_data_dir_used(o->data_dir);
    struct store_options so = {
        .create = o->init_store || !used,
        .quota_bytes = o->quota_bytes,
        .quota_setting = "--quota-backend-bytes",
    };
    struct dpf_error err = {0};
    struct store *st = store_open(url, &so, &err);
    if (st) {
        return st;
    }
    if (err.code == 404) {
        log_error("refusing to start: the store is missing or empty, but "
                  "the data directory was used before, so its objects are "
                  "lost, not new",
                  "url=%s data_dir=%s found=%s error=\"%s\" fix=\"restore "
                  "the store from a backup, or start with --init-store to "
                  "begin with an empty store\"",
                  url, o->data_dir, used ? used : "-", err.message);
    } else {
        log_error("refusing to start: cannot open the store",
                  "url=%s error=\"%s\" fix=\"%s\"", url, err.message,
                  err.code == 409 ? "stop the other process that uses it"
                                  : "after moving a damaged store away, "
                                    "start with --init-store");
    }
    return NULL;
}

/* CA, serving cert, admin cert and token under <data-dir>. */
static int
server_pki_bootstrap(struct server *srv)
{
    const struct server_options *o = srv->opt;
    struct dpf_error err = {0};
    int r;
    char *ca = join(srv->pki_dir, "ca.crt");
    char *ca_key = join(srv->pki_dir, "ca.key");
    char *crt = join(srv->pki_dir, "server.crt");
    char *key = join(srv->pki_dir, "server.key");
    char *adm = join(srv->pki_dir, "admin.crt");
    char *adm_key = join(srv->pki_dir, "admin.key");
    char *kcl = join(srv->pki_dir, "kubelet-client.crt");
    char *kcl_key = join(srv->pki_dir, "kubelet-client.key");
    char *tok = join(o->data_dir, "admin.token");
    const char **sans = xcalloc(o->n_server_names + 5, sizeof(*sans));
    size_t n = 0;
    char host[HOST_NAME_MAX + 1] = "";

    if ((r = dir_create_all(srv->pki_dir, 0700)) < 0) {
        log_error("cannot create the PKI directory", "path=%s error=\"%s\"",
                  srv->pki_dir, strerror(-r));
        goto out;
    }
    if ((r = server_make_dir_private(srv->pki_dir)) < 0) {
        goto out;
    }
    bool have_crt = access(ca, F_OK) == 0;
    bool have_key = access(ca_key, F_OK) == 0;
    if (have_crt != have_key) {
        /* Never replace half a CA: every issued credential hangs on it. */
        log_error("CA certificate and key must both exist or both be absent",
                  "cert=%s key=%s", ca, ca_key);
        r = -EEXIST;
        goto out;
    }
    if (!have_crt) {
        if ((r = pki_ca_create(ca, ca_key, "dpf-ca", SERVER_CA_DAYS, &err)) <
            0) {
            goto fail;
        }
        log_info("created CA", "cert=%s", ca);
    } else if ((r = pki_cert_check(ca, ca, ca_key, NULL, 0, 0, &err)) < 0) {
        goto fail;
    }

    sans[n++] = "localhost";
    sans[n++] = "127.0.0.1";
    sans[n++] = "::1";
    if (gethostname(host, sizeof(host) - 1) == 0 && *host &&
        strcmp(host, "localhost") != 0) {
        sans[n++] = host;
    }
    for (size_t i = 0; i < o->n_server_names; i++) {
        sans[n++] = o->server_names[i];
    }
    if (!is_wildcard(o->bind_address) &&
        strcmp(o->bind_address, "127.0.0.1") != 0 &&
        strcmp(o->bind_address, "::1") != 0) {
        sans[n++] = o->bind_address;
    }
    if (pki_cert_check(ca, crt, key, sans, n, SERVER_RENEW_DAYS, &err) < 0) {
        log_info("issuing serving certificate", "cert=%s reason=\"%s\"", crt,
                 err.message);
        dpf_error_clear(&err);
        if ((r = pki_issue_server(ca, ca_key, crt, key, NULL, sans, n,
                                  SERVER_LEAF_DAYS, &err)) < 0) {
            goto fail;
        }
    }
    if (pki_cert_check(ca, adm, adm_key, NULL, 0, SERVER_RENEW_DAYS, &err) <
        0) {
        log_info("issuing admin client certificate", "cert=%s", adm);
        dpf_error_clear(&err);
        if ((r = pki_issue_client(ca, ca_key, adm, adm_key, SERVER_ADMIN_CN,
                                  SERVER_ADMIN_ORG, SERVER_LEAF_DAYS, &err)) <
            0) {
            goto fail;
        }
    }
    if (pki_cert_check(ca, kcl, kcl_key, NULL, 0, SERVER_RENEW_DAYS, &err) <
        0) {
        log_info("issuing the kubelet client certificate", "cert=%s", kcl);
        dpf_error_clear(&err);
        if ((r = pki_issue_client(ca, ca_key, kcl, kcl_key,
                                  SERVER_KUBELET_CLIENT_CN, SERVER_ADMIN_ORG,
                                  SERVER_LEAF_DAYS, &err)) < 0) {
            goto fail;
        }
    }
    if ((r = pki_token_load_or_create(tok, &srv->token, &err)) < 0) {
        goto fail;
    }
    r = 0;
    goto out;
fail:
    log_error("PKI bootstrap failed", "error=\"%s\"", err.message);
out:
    free(sans);
    free(ca);
    free(ca_key);
    free(crt);
    free(key);
    free(adm);
    free(adm_key);
    free(kcl);
    free(kcl_key);
    free(tok);
    return r;
}

/* The URL clients reach the server at (admin kubeconfig, cluster-info). */
static char *
server_url(struct server *srv)
{
    const struct server_options *o = srv->opt;
    uint16_t port = http_server_port(srv->http);
    const char *scheme = o->insecure_dev ? "http" : "https";
    if (is_wildcard(o->bind_address)) {
        return xasprintf("%s://127.0.0.1:%u", scheme, port);
    }
    if (strchr(o->bind_address, ':') && o->bind_address[0] != '[') {
        return xasprintf("%s://[%s]:%u", scheme, o->bind_address, port);
    }
    return xasprintf("%s://%s:%u", scheme, o->bind_address, port);
}

static int
server_write_kubeconfig(struct server *srv, const char *path)
{
    const struct server_options *o = srv->opt;
    char *url = server_url(srv);
    char *ca = join(srv->pki_dir, "ca.crt");
    char *adm = join(srv->pki_dir, "admin.crt");
    char *adm_key = join(srv->pki_dir, "admin.key");
    struct pki_kubeconfig kc = {
        .cluster = "dpf",
        .server = url,
        .user = SERVER_ADMIN_CN,
        .namespace_ = "default",
        .ca_path = o->insecure_dev ? NULL : ca,
        .cert_path = o->insecure_dev ? NULL : adm,
        .key_path = o->insecure_dev ? NULL : adm_key,
        .token = srv->token,
    };
    struct dpf_error err = {0};
    int r = pki_kubeconfig_write(path, &kc, &err);
    if (r < 0) {
        log_error("cannot write the admin kubeconfig", "error=\"%s\"",
                  err.message);
    }
    free(url);
    free(ca);
    free(adm);
    free(adm_key);
    return r;
}

/* Raise the open-file limit: every watch holds a socket. */
static void
raise_nofile_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* For glibc's allocator (the release build links jemalloc, configured in
 * dpf-server-main.c; sanitizer builds keep glibc's).
 * Two malloc arenas unless MALLOC_ARENA_MAX says otherwise: glibc's
 * default (8 per core) left each worker thread's freed request and watch
 * buffers in its own arena; at 100k objects with 1,000 watchers RSS was
 * 306 MB with the default and 243 MB with two arenas. */
static void
limit_malloc_arenas(void)
{
    if (!getenv("MALLOC_ARENA_MAX")) {
        mallopt(M_ARENA_MAX, 2);
    }
}

/* What both listeners share: limits, deadlines and the request hooks. */
static struct http_server_config
server_http_config(const struct server_options *o)
{
    return (struct http_server_config){
        .threads = o->threads,
        .max_body = SERVER_MAX_BODY,
        .max_connections = o->max_conns,
        .header_timeout_s = o->header_timeout,
        .idle_timeout_s = o->idle_timeout,
        .conn_memory = o->conn_memory,
        .gate = server_gate,
        .observe = server_observe,
        .observe_end = server_observe_end,
    };
}

/* The controllers' own door: the same handler as the TLS port, on an
 * owner-only Unix socket where a peer running as this user (or root) is
 * the admin, as its admin.kubeconfig would make it. NULL (and the
 * controllers use the TLS port) when turned off or it cannot listen. */
static char *
server_start_local(struct server *srv)
{
    const struct server_options *o = srv->opt;
    if (o->local_socket && strcmp(o->local_socket, "none") == 0) {
        return NULL;
    }
    char *path = o->local_socket ? xstrdup(o->local_socket)
                                 : join(o->data_dir, "api.sock");
    static const char *const groups[] = {SERVER_ADMIN_ORG, NULL};
    struct http_server_config hc = server_http_config(o);
    hc.unix_path = path;
    hc.local_user = SERVER_ADMIN_CN;
    hc.local_groups = groups;
    struct dpf_error err = {0};
    srv->local_http = http_server_create(&hc, server_handle, srv, &err);
    if (!srv->local_http) {
        log_warn("the controllers use the TLS port", "reason=\"%s\"",
                 err.message);
        free(path);
        return NULL;
    }
    log_info("listening for the controllers", "socket=%s", path);
    return path;
}

/* The in-process controllers: the same runner dpf-controller-manager
 * uses, on threads of its own, through this server's whole request path
 * (authentication, authorization, admission, the store, watches) over
 * its Unix socket, or over a loopback TLS connection with the admin
 * kubeconfig just written. They take part in leader election under a
 * stable identity, so an external dpf-controller-manager with
 * --leader-elect stays a standby while this server runs, and a restarted
 * server takes its Lease back at once. */
static void
server_start_controllers(struct server *srv, const char *kubeconfig)
{
    const struct server_options *o = srv->opt;
    unsigned mask = 0;
    if (ctrl_parse_list(o->controllers, &mask, NULL) < 0 || !mask) {
        return;
    }
    char *local = server_start_local(srv);
    char host[200] = "localhost";
    gethostname(host, sizeof host - 1);
    char *identity = xasprintf("dpf-server_%s", host);
    char *bfb_dir = o->bfb_dir ? xstrdup(o->bfb_dir) : join(o->data_dir, "bfb");
    char *dpuc_dir =
        o->dpuc_dir ? xstrdup(o->dpuc_dir) : join(o->data_dir, "dpuclusters");
    struct ctrl_runner_config cfg = {
        .kubeconfig = kubeconfig,
        .unix_socket = local,
        .controllers = mask,
        .bfb_dir = bfb_dir,
        .max_installs = o->max_installs,
        .dpucluster_dir = dpuc_dir,
        .dpucluster_address = o->dpuc_address,
        .leader_elect = true,
        .identity = identity,
        .component = "dpf-server",
        .recampaign = true,
    };
    struct dpf_error err = {0};
    struct ctrl_runner *cr = ctrl_runner_start(&cfg, &err);
    pthread_mutex_lock(&srv->controllers_mu);
    srv->controllers = cr;
    pthread_mutex_unlock(&srv->controllers_mu);
    if (!cr) {
        log_error("cannot start the in-process controllers", "error=\"%s\"",
                  err.message);
    }
    free(identity);
    free(bfb_dir);
    free(dpuc_dir);
    free(local);
}

int
server_run(const struct server_options *o)
{
    struct server srv = {.opt = o};
    pthread_mutex_init(&srv.controllers_mu, NULL);
    int exit_code = 1;
    int sfd = -1;
    int lock_fd = -1;
    char *kubelet_crt = NULL, *kubelet_key = NULL;
    char *kubeconfig = NULL;
    char *store_url = NULL;

    /* Everything this process creates is owner-only (the store, keys,
     * token, kubeconfig, lock), whatever umask it was started with. */
    umask(077);
    limit_malloc_arenas();
    atomic_init(&srv.ready, false);
    atomic_init(&srv.api, NULL);
    if (log_set_level_name(o->log_level) < 0) {
        fprintf(stderr, "dpf-server: bad log level %s\n", o->log_level);
        return 2;
    }
    if (o->log_file) {
        int r = log_set_file(o->log_file);
        if (r < 0) {
            fprintf(stderr, "dpf-server: cannot open log file %s: %s\n",
                    o->log_file, strerror(-r));
            return 1;
        }
    }

    /* Signals go to a signalfd read by this thread; block them before any
     * thread starts so every thread inherits the mask. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd < 0) {
        log_error("signalfd failed", "errno=%d", errno);
        goto out;
    }
    raise_nofile_limit();

    int r = dir_create_all(o->data_dir, 0700);
    if (r < 0) {
        log_error("cannot create the data directory", "path=%s error=\"%s\"",
                  o->data_dir, strerror(-r));
        goto out;
    }
    /* First the lock, then anything else in the directory. */
    lock_fd = server_lock_data_dir(o->data_dir);
    if (lock_fd < 0 || server_make_dir_private(o->data_dir) < 0) {
        goto out;
    }
    srv.pki_dir = join(o->data_dir, "pki");
    kubeconfig = o->kubeconfig_out ? xstrdup(o->kubeconfig_out)
                                   : join(o->data_dir, "admin.kubeconfig");
    store_url = o->store_url ? xstrdup(o->store_url)
                             : xasprintf("sqlite:%s/state.db", o->data_dir);

    /* The store before the PKI and the kubeconfig: whether it may be
     * created depends on what earlier starts left, and a refused start
     * leaves the directory as it found it. */
    srv.store = server_open_store(o, store_url);
    if (!srv.store) {
        goto out;
    }

    if (o->insecure_dev) {
        log_warn("INSECURE: --insecure-dev serves plain HTTP without "
                 "authentication; never use it outside development",
                 "mode=insecure-dev");
        if (!is_loopback(o->bind_address)) {
            log_warn("INSECURE: --insecure-dev listens on a non-loopback "
                     "address: anyone who reaches it can read and change "
                     "everything, Secrets included",
                     "address=%s", o->bind_address);
        }
    } else if (server_pki_bootstrap(&srv) < 0) {
        goto out;
    }

    struct dpf_error err = {0};
    if (!o->insecure_dev) {
        char *sa_key = join(srv.pki_dir, "sa.key");
        srv.auth = auth_create(srv.token, sa_key, srv.store, &err);
        free(sa_key);
        if (!srv.auth) {
            log_error("cannot set up authentication", "error=\"%s\"",
                      err.message);
            goto out;
        }
    }

    char *crt = join(srv.pki_dir, "server.crt");
    char *key = join(srv.pki_dir, "server.key");
    char *ca = join(srv.pki_dir, "ca.crt");
    struct http_server_config hc = server_http_config(o);
    hc.address = o->bind_address;
    hc.port = o->port;
    hc.cert_file = o->insecure_dev ? NULL : crt;
    hc.key_file = o->insecure_dev ? NULL : key;
    hc.client_ca_file = o->insecure_dev ? NULL : ca;
    hc.tls_priorities = o->tls_priorities;
    srv.metrics = metrics_create();
    srv.http = http_server_create(&hc, server_handle, &srv, &err);
    free(crt);
    free(key);
    free(ca);
    if (!srv.http) {
        log_error("cannot start the HTTP server", "error=\"%s\"", err.message);
        goto out;
    }

    srv.wc =
        watch_cache_create(o->watch_cache_size, store_current_rv(srv.store));
    watch_cache_set_max_bytes(srv.wc, o->watch_cache_bytes);
    /* Events stay out of the index, as kube-apiserver keeps no watch
     * cache for them: they are most of the objects at scale (8 per DPU)
     * and only `describe` lists them, from the store. */
    watch_cache_skip_index(srv.wc, APISERVER_EVENTS_PREFIX);
    /* Every object into the watch cache's index before the API answers
     * (and before the store's hook feeds it): lists are served from it. */
    int64_t t_load = time_mono_ms();
    if (watch_cache_load(srv.wc, srv.store, &err) < 0) {
        log_error("cannot load the objects into the watch cache",
                  "error=\"%s\"", err.message);
        goto out;
    }
    size_t idx_objects = 0, idx_bytes = 0;
    watch_cache_index_stats(srv.wc, &idx_objects, &idx_bytes);
    log_info("watch cache index loaded", "objects=%zu bytes=%zu ms=%lld",
             idx_objects, idx_bytes, (long long) (time_mono_ms() - t_load));
    kubelet_crt = join(srv.pki_dir, "kubelet-client.crt");
    kubelet_key = join(srv.pki_dir, "kubelet-client.key");
    struct apiserver_config ac = {
        .max_body = SERVER_MAX_BODY,
        .watch_buffer_bytes = o->watch_buffer_bytes,
        .watch_buffer_total_bytes = o->watch_buffer_total_bytes,
        .event_ttl_ms = o->event_ttl_ms,
        .kubelet_client_cert = o->insecure_dev ? NULL : kubelet_crt,
        .kubelet_client_key = o->insecure_dev ? NULL : kubelet_key,
        .kubelet_ca = o->kubelet_ca,
    };
    if (srv.auth) {
        auth_configure(srv.auth, &ac);
    }
    struct apiserver *api = apiserver_create(srv.store, srv.wc, &ac, &err);
    if (!api) {
        log_error("cannot start the API server", "error=\"%s\"", err.message);
        goto out;
    }
    if (srv.auth) {
        char *ca_crt = join(srv.pki_dir, "ca.crt");
        char *ca_key = join(srv.pki_dir, "ca.key");
        char *url = server_url(&srv);
        auth_set_ca(srv.auth, ca_crt, ca_key, url);
        free(ca_crt);
        free(ca_key);
        free(url);
    }
    if (srv.auth && auth_start(srv.auth, api, &err) < 0) {
        log_error("cannot start authorization", "error=\"%s\"", err.message);
        apiserver_destroy(api);
        goto out;
    }
    atomic_store(&srv.api, api);
    atomic_store(&srv.ready, true);
    /* Written once the server answers, so whoever waits for the file
     * finds a ready server. */
    if (server_write_kubeconfig(&srv, kubeconfig) < 0) {
        goto out;
    }
    log_info("listening", "address=%s port=%u kubeconfig=%s tls=%s",
             o->bind_address, http_server_port(srv.http), kubeconfig,
             o->insecure_dev ? "off" : "on");
    server_start_controllers(&srv, kubeconfig);

    for (;;) {
        struct signalfd_siginfo si;
        ssize_t n = read(sfd, &si, sizeof(si));
        if (n == (ssize_t) sizeof(si)) {
            log_info("shutting down", "signal=%s",
                     si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
            break;
        }
        if (n < 0 && errno != EINTR) {
            log_error("reading signals failed", "errno=%d", errno);
            goto out;
        }
    }
    exit_code = 0;

out:
    /* Controllers first, while the API still answers (they release their
     * Lease); then HTTP (no more requests, streams closed), then the API
     * server that served them, then what it borrowed. */
    pthread_mutex_lock(&srv.controllers_mu);
    struct ctrl_runner *cr = srv.controllers;
    srv.controllers = NULL;
    pthread_mutex_unlock(&srv.controllers_mu);
    ctrl_runner_stop(cr);
    http_server_destroy(srv.local_http);
    http_server_destroy(srv.http);
    metrics_destroy(srv.metrics); /* its observers ran until here */
    auth_stop(srv.auth);
    apiserver_destroy(atomic_load(&srv.api));
    auth_destroy(srv.auth);
    watch_cache_destroy(srv.wc);
    store_close(srv.store);
    if (exit_code == 0) {
        log_info("stopped", "exit=%d", exit_code);
    }
    if (srv.token) {
        OPENSSL_cleanse(srv.token, strlen(srv.token));
        free(srv.token);
    }
    free(srv.pki_dir);
    free(kubelet_crt);
    free(kubelet_key);
    free(kubeconfig);
    free(store_url);
    if (sfd >= 0) {
        close(sfd);
    }
    if (lock_fd >= 0) {
        close(lock_fd); /* releases the data directory */
    }
    return exit_code;
}
