/* server: see server.h. */
#include "dpf-server/server.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dpf-server/apiserver.h"
#include "lib/http-server.h"
#include "lib/log.h"
#include "lib/pki.h"
#include "lib/store.h"
#include "lib/util.h"
#include "lib/watch-cache.h"

LOG_MODULE(server);

#define SERVER_CA_DAYS 3650
#define SERVER_LEAF_DAYS 365
#define SERVER_RENEW_DAYS 30 /* reissue leaves closer than this to expiry */
#define SERVER_MAX_BODY (3u * 1024 * 1024)
#define SERVER_ADMIN_CN "dpf-admin"
#define SERVER_ADMIN_ORG "system:masters"
/* Watch memory bounds: defaults and the range the flags accept. */
#define SERVER_WATCH_CACHE_BYTES ((size_t) 128 << 20)
#define SERVER_WATCH_BUFFER_BYTES ((size_t) 16 << 20)
#define SERVER_WATCH_BUFFER_TOTAL_BYTES ((size_t) 128 << 20)
#define SERVER_WATCH_MIN_BYTES ((size_t) 1 << 20)
#define SERVER_WATCH_MAX_BYTES ((size_t) 1 << 40)

/* Everything the running server holds. */
struct server {
    const struct server_options *opt; /* borrowed */
    char *token;                      /* admin bearer token (NULL: insecure) */
    atomic_bool ready;                /* store open, apiserver created */
    _Atomic(struct apiserver *) api;  /* set once ready */
    struct store *store;              /* owned */
    struct watch_cache *wc;           /* owned */
    struct http_server *http;         /* owned */
    char *pki_dir;                    /* <data-dir>/pki */
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
    o->log_level = xstrdup("info");
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
               "sqlite:<data-dir>/state.db)\n"
               "  --bind-address ADDR    listen address (default 0.0.0.0)\n"
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
               "                         (default 128Mi)\n"
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
               "  --insecure-dev         plain HTTP and NO authentication "
               "(development only)\n"
               "  --log-level L          error|warn|info|debug (default info)\n"
               "  --log-file PATH        log to a file instead of stderr\n"
               "  --help                 show this help\n"
               "  --version              show the version\n"
               "\n"
               "On first start the CA, serving and admin certificates and the "
               "admin token are\n"
               "created under <data-dir>/pki and <data-dir>/admin.token; later "
               "starts reuse them.\n");
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

enum {
    OPT_DATA_DIR = 256,
    OPT_STORE,
    OPT_BIND,
    OPT_PORT,
    OPT_KUBECONFIG,
    OPT_SERVER_NAME,
    OPT_THREADS,
    OPT_WATCH_CACHE,
    OPT_WATCH_CACHE_BYTES,
    OPT_WATCH_BUFFER,
    OPT_WATCH_BUFFER_TOTAL,
    OPT_INSECURE,
    OPT_LOG_LEVEL,
    OPT_LOG_FILE,
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
        {"insecure-dev", no_argument, NULL, OPT_INSECURE},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"log-file", required_argument, NULL, OPT_LOG_FILE},
        {"help", no_argument, NULL, OPT_HELP},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    unsigned long long v;
    int c;

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
        case OPT_BIND:
            set_str(&o->bind_address, optarg);
            break;
        case OPT_PORT:
            if (parse_uint(optarg, 0, 65535, &v) < 0) {
                fprintf(errout,
                        "dpf-server: --port: \"%s\" is not a port number "
                        "(0-65535)\n",
                        optarg);
                return -EINVAL;
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
                return -EINVAL;
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
                return -EINVAL;
            }
            o->threads = (unsigned) v;
            break;
        case OPT_WATCH_CACHE:
            if (parse_uint(optarg, 1, 100000000, &v) < 0) {
                fprintf(errout,
                        "dpf-server: --watch-cache-size: \"%s\" is not a "
                        "number between 1 and 100000000\n",
                        optarg);
                return -EINVAL;
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
        case OPT_INSECURE:
            o->insecure_dev = true;
            break;
        case OPT_LOG_LEVEL:
            if (strcmp(optarg, "error") && strcmp(optarg, "warn") &&
                strcmp(optarg, "info") && strcmp(optarg, "debug")) {
                fprintf(errout,
                        "dpf-server: --log-level: \"%s\" is not one of "
                        "error, warn, info, debug\n",
                        optarg);
                return -EINVAL;
            }
            set_str(&o->log_level, optarg);
            break;
        case OPT_LOG_FILE:
            set_str(&o->log_file, optarg);
            break;
        case OPT_HELP:
            usage(out);
            return 1;
        case OPT_VERSION:
            fprintf(out, "dpf-server %s\n", DPF_VERSION);
            return 1;
        case ':':
            fprintf(errout, "dpf-server: %s needs a value\n", argv[optind - 1]);
            return -EINVAL;
        default:
            fprintf(errout,
                    "dpf-server: unknown option \"%s\" (see "
                    "--help)\n",
                    argv[optind - 1]);
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(errout, "dpf-server: unexpected argument \"%s\" (see --help)\n",
                argv[optind]);
        return -EINVAL;
    }
    if (!*o->data_dir) {
        fprintf(errout, "dpf-server: --data-dir must not be empty\n");
        return -EINVAL;
    }
    if (o->watch_buffer_bytes > o->watch_buffer_total_bytes) {
        fprintf(errout,
                "dpf-server: --watch-buffer-bytes (%zu) must not be "
                "larger than --watch-buffer-total-bytes (%zu)\n",
                o->watch_buffer_bytes, o->watch_buffer_total_bytes);
        return -EINVAL;
    }
    return 0;
}

/* ---------------------------------------------------------------- */
/* authentication gate                                               */

bool
server_request_authenticated(const struct http_request *req, const char *token)
{
    if (http_request_peer_cn(req)) {
        return true; /* verified against our CA by the TLS layer */
    }
    const char *auth = http_request_header(req, "Authorization");
    if (!auth || !token || strncasecmp(auth, "Bearer ", 7) != 0) {
        return false;
    }
    const char *given = auth + 7;
    while (*given == ' ') {
        given++;
    }
    size_t glen = strlen(given);
    while (glen > 0 && given[glen - 1] == ' ') {
        glen--;
    }
    size_t tlen = strlen(token);
    /* Compare the full token length whatever was sent, so the time taken
     * says nothing about how much of a guess was right. */
    char buf[256] = {0};
    memcpy(buf, given, DPF_MIN(glen, sizeof(buf)));
    bool same = tlen < sizeof(buf) && CRYPTO_memcmp(buf, token, tlen) == 0;
    return same && glen == tlen;
}

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
    char *body = xasprintf("{\"kind\":\"Status\",\"apiVersion\":\"v1\","
                           "\"metadata\":{},\"status\":\"Failure\","
                           "\"message\":\"%s\",\"reason\":\"%s\","
                           "\"details\":{},\"code\":%d}\n",
                           message, reason, code);
    http_respond_take(req, code, "application/json", body, strlen(body));
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
    bool ok = !readyz || atomic_load(&srv->ready);
    bool verbose = http_request_query(req, "verbose") != NULL;
    struct dbuf b;
    dbuf_init(&b);
    if (verbose) {
        dbuf_puts(&b, "[+]ping ok\n");
        if (readyz) {
            dbuf_printf(&b, "[%c]store %s\n", ok ? '+' : '-',
                        ok ? "ok" : "failed: not open yet");
        }
        dbuf_printf(&b, "%s check %s\n", path + 1, ok ? "passed" : "failed");
    } else {
        dbuf_puts(&b, ok ? "ok"
                         : "[-]store failed: not open yet\n"
                           "readyz check failed\n");
    }
    size_t len;
    char *body = dbuf_steal(&b, &len);
    http_respond_take(req, ok ? 200 : 503, "text/plain; charset=utf-8", body,
                      len);
    return true;
}

static void
server_handle(void *arg, struct http_request *req)
{
    struct server *srv = arg;
    const char *method = http_request_method(req);
    const char *path = http_request_path(req);
    bool open = is_open_path(method, path);

    if (!open && srv->token && !server_request_authenticated(req, srv->token)) {
        log_debug("unauthenticated request", "method=%s path=%s remote=%s",
                  method, path, http_request_remote(req));
        respond_status(req, 401, "Unauthorized", "Unauthorized");
        return;
    }
    if (open && respond_health(srv, req)) {
        return;
    }
    struct apiserver *api = atomic_load(&srv->api);
    if (!api) {
        respond_status(req, 503, "ServiceUnavailable",
                       "the API server is starting: the store is not open "
                       "yet");
        return;
    }
    apiserver_handle(api, req);
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
    char *tok = join(o->data_dir, "admin.token");
    const char **sans = xcalloc(o->n_server_names + 5, sizeof(*sans));
    size_t n = 0;
    char host[HOST_NAME_MAX + 1] = "";

    if ((r = dir_create_all(srv->pki_dir, 0700)) < 0) {
        log_error("cannot create the PKI directory", "path=%s error=\"%s\"",
                  srv->pki_dir, strerror(-r));
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
    free(tok);
    return r;
}

static int
server_write_kubeconfig(struct server *srv, const char *path)
{
    const struct server_options *o = srv->opt;
    uint16_t port = http_server_port(srv->http);
    const char *scheme = o->insecure_dev ? "http" : "https";
    char *url;
    if (is_wildcard(o->bind_address)) {
        url = xasprintf("%s://127.0.0.1:%u", scheme, port);
    } else if (strchr(o->bind_address, ':') && o->bind_address[0] != '[') {
        url = xasprintf("%s://[%s]:%u", scheme, o->bind_address, port);
    } else {
        url = xasprintf("%s://%s:%u", scheme, o->bind_address, port);
    }
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

/* Two malloc arenas unless MALLOC_ARENA_MAX says otherwise: glibc's
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

int
server_run(const struct server_options *o)
{
    struct server srv = {.opt = o};
    int exit_code = 1;
    int sfd = -1;
    char *kubeconfig = NULL;
    char *store_url = NULL;

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
    srv.pki_dir = join(o->data_dir, "pki");
    kubeconfig = o->kubeconfig_out ? xstrdup(o->kubeconfig_out)
                                   : join(o->data_dir, "admin.kubeconfig");
    store_url = o->store_url ? xstrdup(o->store_url)
                             : xasprintf("sqlite:%s/state.db", o->data_dir);

    if (o->insecure_dev) {
        log_warn("INSECURE: --insecure-dev serves plain HTTP without "
                 "authentication; never use it outside development",
                 "mode=insecure-dev");
    } else if (server_pki_bootstrap(&srv) < 0) {
        goto out;
    }

    char *crt = join(srv.pki_dir, "server.crt");
    char *key = join(srv.pki_dir, "server.key");
    char *ca = join(srv.pki_dir, "ca.crt");
    struct http_server_config hc = {
        .address = o->bind_address,
        .port = o->port,
        .cert_file = o->insecure_dev ? NULL : crt,
        .key_file = o->insecure_dev ? NULL : key,
        .client_ca_file = o->insecure_dev ? NULL : ca,
        .threads = o->threads,
        .max_body = SERVER_MAX_BODY,
    };
    struct dpf_error err = {0};
    srv.http = http_server_create(&hc, server_handle, &srv, &err);
    free(crt);
    free(key);
    free(ca);
    if (!srv.http) {
        log_error("cannot start the HTTP server", "error=\"%s\"", err.message);
        goto out;
    }
    if (server_write_kubeconfig(&srv, kubeconfig) < 0) {
        goto out;
    }

    srv.store = store_open(store_url, &err);
    if (!srv.store) {
        log_error("cannot open the store", "url=%s error=\"%s\"", store_url,
                  err.message);
        goto out;
    }
    srv.wc =
        watch_cache_create(o->watch_cache_size, store_current_rv(srv.store));
    watch_cache_set_max_bytes(srv.wc, o->watch_cache_bytes);
    struct apiserver_config ac = {
        .max_body = SERVER_MAX_BODY,
        .watch_buffer_bytes = o->watch_buffer_bytes,
        .watch_buffer_total_bytes = o->watch_buffer_total_bytes,
    };
    struct apiserver *api = apiserver_create(srv.store, srv.wc, &ac, &err);
    if (!api) {
        log_error("cannot start the API server", "error=\"%s\"", err.message);
        goto out;
    }
    atomic_store(&srv.api, api);
    atomic_store(&srv.ready, true);
    log_info("listening", "address=%s port=%u kubeconfig=%s tls=%s",
             o->bind_address, http_server_port(srv.http), kubeconfig,
             o->insecure_dev ? "off" : "on");

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
    /* HTTP first (no more requests, streams closed), then the API server
     * that served them, then what it borrowed. */
    http_server_destroy(srv.http);
    apiserver_destroy(atomic_load(&srv.api));
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
    free(kubeconfig);
    free(store_url);
    if (sfd >= 0) {
        close(sfd);
    }
    return exit_code;
}
