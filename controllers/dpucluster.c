/* dpucluster: the DPUCluster controller (DPF's provisioning-side
 * DPUCluster controller and its cluster managers in one, dpf-spec
 * §2.3-2.4).
 *
 * Phases: Pending -> Creating -> Ready / NotReady (DPF's; Failed is never
 * set, as in DPF). Conditions:
 *   Created  True/Created once the cluster exists; False with
 *            EmptyKubeconfig (static, spec.kubeconfig empty) or
 *            ClusterNotReady (embedded: the API server is starting, or
 *            exited and is restarted; the message says which);
 *   Ready    True/HealthCheckPassed when GET /version with the kubeconfig
 *            Secret's admin.conf answers; False/HealthCheckFailed (the
 *            Secret, its admin.conf or the server is wrong: the message
 *            names which), or False with the Created condition's reason
 *            while the cluster is not created.
 *
 * Types:
 *   static    DPF's contract: spec.kubeconfig names a Secret in the
 *             DPUCluster's namespace whose admin.conf is a kubeconfig with
 *             exactly one cluster and one user.
 *   embedded  (and kamaji, which we serve with the same implementation)
 *             the controller runs a child dpf-server per DPUCluster: its
 *             own data directory <dir>/<ns>_<name>_<uid> (store, CA,
 *             port), --controllers=none. Its admin kubeconfig, with the
 *             server URL https://<address>:<port> the DPUs reach, goes
 *             into Secret <name>-admin-kubeconfig (key admin.conf,
 *             owned by the DPUCluster), and spec.kubeconfig is set to it
 *             when empty (DPF does so). A child that exits is restarted
 *             after a backoff (1 s doubling to 60 s, reset after 60 s of
 *             running). Children run in their own session, so they
 *             outlive a crash of the controller's process; a restarted
 *             controller finds them by their data directory's lock
 *             (dpf-server.lock holds the PID while the lock is held) and
 *             adopts them. A clean stop of the controller (SIGTERM, lost
 *             leadership) stops the children it knows; deleting the
 *             DPUCluster stops its child and removes its data directory
 *             and Secret.
 *   other     (a vendor type "x/y"): the phase and health check only, as
 *             DPF's provisioning-side controller does; some other cluster
 *             manager creates the cluster.
 *
 * maxNodes is enforced by the allocator (controllers/allocator.h), which
 * this controller keeps informed of every DPUCluster's phase.
 *
 * Threads: reconcile on two workers; a monitor thread looks at the
 * children every 500 ms and queues the key of one that exited, so the
 * status says so at once rather than at the next health check. The child
 * table is guarded by one mutex. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "controllers/allocator.h"
#include "controllers/controllers.h"
#include "controllers/dpucluster.h"
#include "lib/base/base64.h"
#include "lib/base/log.h"
#include "lib/base/thread.h"
#include "lib/codecs/yamljson.h"
#include "lib/kube/api-client.h"
#include "lib/kube/controller.h"
#include "lib/kube/kube-events.h"
#include "lib/kube/kube-object.h"
#include "lib/kube/kube-write.h"

LOG_MODULE(dpucluster);

#define DPUC_FINALIZER "provisioning.dpu.nvidia.com/cluster-manager-clean-up"
#define KUBECONFIG_KEY "admin.conf"
#define HEALTH_READY_MS 10000  /* Ready: health check period */
#define HEALTH_RETRY_MS 3000   /* not Ready: look again */
#define START_POLL_MS 300      /* child starting: look again */
#define START_TIMEOUT_MS 60000 /* child not answering: kill, restart */
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 60000
#define BACKOFF_RESET_MS 60000 /* running this long resets the backoff */
#define STOP_WAIT_MS 10000     /* SIGTERM, then SIGKILL */
#define MONITOR_MS 500
#define HEALTH_TIMEOUT_MS 5000

static const struct kube_gvr dpuc_gvr = {"provisioning.dpu.nvidia.com",
                                         "v1alpha1", "dpuclusters", true};
static const struct kube_gvr secret_gvr = {"", "v1", "secrets", true};

/* One embedded cluster's API server process. */
struct child {
    char *key; /* "ns/name" */
    char *uid;
    char *dir;
    pid_t pid;          /* running (0: none) */
    bool ours;          /* forked by us: reaped with waitpid */
    bool ready;         /* its admin.kubeconfig appeared */
    int64_t started_ms; /* when started or adopted */
    int64_t next_ms;    /* earliest restart */
    int failures;       /* consecutive exits, for the backoff */
    char *exit_msg;     /* how the last one ended, or NULL */
    bool exit_reported; /* exit_msg went into an event */
};

struct dpuc_ctrl {
    char *dir;     /* state directory of the children */
    char *address; /* address DPUs reach the children on */
    char *server_bin;
    struct allocator *alloc; /* borrowed */
    struct kube_recorder *rec;
    struct controller *ctl;
    struct controller_ops ops;
    pthread_mutex_t mu;
    struct child **children;
    size_t n_children;
    struct worker monitor;
};

/* --- the child table (callers hold mu) --- */

static struct child *
child_find(struct dpuc_ctrl *d, const char *key)
{
    for (size_t i = 0; i < d->n_children; i++) {
        if (!strcmp(d->children[i]->key, key)) {
            return d->children[i];
        }
    }
    return NULL;
}

static void
child_free(struct child *ch)
{
    if (!ch) {
        return;
    }
    free(ch->key);
    free(ch->uid);
    free(ch->dir);
    free(ch->exit_msg);
    free(ch);
}

static void
child_remove(struct dpuc_ctrl *d, const char *key)
{
    for (size_t i = 0; i < d->n_children; i++) {
        if (!strcmp(d->children[i]->key, key)) {
            child_free(d->children[i]);
            d->children[i] = d->children[--d->n_children];
            return;
        }
    }
}

/* The PID holding dir's dpf-server.lock, or 0 when nobody holds it. */
static pid_t
lock_holder(const char *dir)
{
    char *path = xasprintf("%s/dpf-server.lock", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0) {
        return 0;
    }
    pid_t pid = 0;
    if (flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
        char buf[24] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        long v = strtol(buf, NULL, 10);
        pid = v > 0 ? (pid_t) v : 0;
    }
    close(fd); /* drops our shared lock, if we got it */
    return pid;
}

/* Is ch's process still running? Reaps our own children. Sets
 * exit_msg when it ended. */
static bool
child_alive(struct child *ch)
{
    if (!ch->pid) {
        return false;
    }
    if (ch->ours) {
        int status = 0;
        pid_t r = waitpid(ch->pid, &status, WNOHANG);
        if (r == 0) {
            return true;
        }
        free(ch->exit_msg);
        if (r == ch->pid && WIFSIGNALED(status)) {
            ch->exit_msg =
                xasprintf("was killed by signal %d (%s)", WTERMSIG(status),
                          strsignal(WTERMSIG(status)));
        } else if (r == ch->pid && WIFEXITED(status)) {
            ch->exit_msg =
                xasprintf("exited with status %d", WEXITSTATUS(status));
        } else {
            ch->exit_msg = xstrdup("is gone");
        }
    } else {
        if (kill(ch->pid, 0) == 0 && lock_holder(ch->dir) == ch->pid) {
            return true;
        }
        free(ch->exit_msg);
        ch->exit_msg = xstrdup("exited");
    }
    ch->pid = 0;
    ch->ready = false;
    ch->exit_reported = false;
    /* Backoff: a child that ran long enough starts from the minimum. */
    if (time_mono_ms() - ch->started_ms >= BACKOFF_RESET_MS) {
        ch->failures = 0;
    }
    int64_t delay = BACKOFF_MIN_MS;
    for (int i = 0; i < ch->failures && delay < BACKOFF_MAX_MS; i++) {
        delay *= 2;
    }
    if (delay > BACKOFF_MAX_MS) {
        delay = BACKOFF_MAX_MS;
    }
    ch->failures++;
    ch->next_ms = time_mono_ms() + delay;
    return false;
}

/* Stop ch's process: SIGTERM, wait, SIGKILL. Caller holds mu (the wait is
 * short and only delete and stop come here). */
static void
child_stop(struct child *ch)
{
    if (!ch->pid || !child_alive(ch)) {
        return;
    }
    pid_t pid = ch->pid;
    kill(pid, SIGTERM);
    int64_t until = time_mono_ms() + STOP_WAIT_MS;
    while (time_mono_ms() < until) {
        if (!child_alive(ch)) {
            break;
        }
        usleep(50 * 1000);
    }
    if (ch->pid) {
        log_warn("the DPU cluster's API server did not stop; killing it",
                 "cluster=%s pid=%ld", ch->key, (long) pid);
        kill(pid, SIGKILL);
        while (child_alive(ch)) {
            usleep(20 * 1000);
        }
    }
    /* An adopted process is not ours to reap; wait for its lock to go so
     * the directory is free. */
    until = time_mono_ms() + STOP_WAIT_MS;
    while (lock_holder(ch->dir) && time_mono_ms() < until) {
        usleep(20 * 1000);
    }
    log_info("DPU cluster API server stopped", "cluster=%s pid=%ld", ch->key,
             (long) pid);
}

/* --- files --- */

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) flag;
    (void) ftw;
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

static int
rm_tree(const char *dir)
{
    if (access(dir, F_OK) < 0) {
        return 0;
    }
    return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS) < 0 ? -errno : 0;
}

static char *
read_text(const char *path)
{
    char *data = NULL;
    size_t len = 0;
    if (file_read_all(path, &data, &len) < 0) {
        return NULL;
    }
    return data;
}

/* The port the child listens on: <dir>/port, or 0 for a new one. */
static unsigned
child_port(const char *dir)
{
    char *path = xasprintf("%s/port", dir);
    char *txt = read_text(path);
    free(path);
    unsigned long v = txt ? strtoul(txt, NULL, 10) : 0;
    free(txt);
    return v > 0 && v < 65536 ? (unsigned) v : 0;
}

/* The port in the child's own admin kubeconfig ("server: https://...:P"),
 * 0 when not there yet. */
static unsigned
child_kubeconfig_port(const char *dir)
{
    char *path = xasprintf("%s/admin.kubeconfig", dir);
    struct kubeconfig_options ko = {.path = path};
    struct kubeconfig *kc = NULL;
    struct dpf_error err = {0};
    unsigned port = 0;
    if (access(path, F_OK) == 0 && kubeconfig_load(&ko, &kc, &err) == 0) {
        const char *colon = strrchr(kc->server, ':');
        unsigned long v = colon ? strtoul(colon + 1, NULL, 10) : 0;
        port = v > 0 && v < 65536 ? (unsigned) v : 0;
    }
    kubeconfig_free(kc);
    free(path);
    return port;
}

static bool
is_loopback_addr(const char *a)
{
    return !strcmp(a, "localhost") || !strcmp(a, "::1") ||
           !strncmp(a, "127.", 4);
}

/* fork + exec the child dpf-server. Everything is prepared before the
 * fork; the child only calls async-signal-safe functions. Caller holds
 * mu. */
static int
child_start(struct dpuc_ctrl *d, struct child *ch, struct dpf_error *err)
{
    int r = dir_create_all(ch->dir, 0700);
    if (r < 0) {
        dpf_error_set(err, 500, "InternalError", "cannot create %s: %s",
                      ch->dir, strerror(-r));
        return r;
    }
    char *kc = xasprintf("%s/admin.kubeconfig", ch->dir);
    unlink(kc); /* its appearance says this start is ready */
    free(kc);
    unsigned port = child_port(ch->dir);
    char *port_s = xasprintf("%u", port);
    char *data_arg = xstrdup(ch->dir);
    /* the store is a few MB: the writer's default 8 MiB cache would hold
     * all of it, in every cluster's server */
    char *store_arg = xasprintf("sqlite:%s/state.db?cache_kib=2048", ch->dir);
    char *log_path = xasprintf("%s/dpf-server.log", ch->dir);
    const char *bind = is_loopback_addr(d->address) ? "127.0.0.1" : "0.0.0.0";
    char *argv[] = {d->server_bin, "--data-dir", data_arg, "--store", store_arg,
                    "--port", port_s, "--bind-address", (char *) bind,
                    "--server-name", d->address, "--controllers=none",
                    /* each worker polls every kept-alive agent
                     * connection it holds whenever it wakes (poll(),
                     * lib/net/http-server.c): with 1,000 agents, 2
                     * workers spent a third of the server's CPU in
                     * poll(); 8 took 15 % less CPU for 2-3 MB more RSS
                     * (4,000 DPUs, docs/benchmarks.md) */
                    "--threads", "8",
                    /* Lease renewals of 1,000 nodes fill 4 MiB in about
                     * 30 s: enough for the one informer that follows
                     * the cluster (the DPU controller's) to resume */
                    "--watch-cache-size", "10000", "--watch-cache-bytes", "4Mi",
                    /* a DPU cluster holds a kept-alive connection per
                     * node agent (Lease renewals): 8 KiB buffers hold
                     * ~20 KB per connection where 32 KiB held ~44 KB
                     * (most of the rest is the TLS session), and
                     * agents' request heads are small. 4 KiB saved
                     * 4 MB per 1,000 agents but the servers took
                     * 20-50 % more CPU in the two runs that had it. */
                    "--connection-memory", "8Ki", NULL};
    int logfd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (logfd < 0 || nullfd < 0) {
        dpf_error_set(err, 500, "InternalError", "cannot open %s: %s", log_path,
                      strerror(errno));
        r = -errno;
        goto out;
    }
    pid_t pid = fork();
    if (pid < 0) {
        r = -errno;
        dpf_error_set(err, 500, "InternalError", "fork: %s", strerror(errno));
        goto out;
    }
    if (pid == 0) {
        /* Own session: a terminal's ^C or the death of the controller's
         * process does not take the DPU cluster down. */
        setsid();
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL); /* dpf-server blocks some */
        signal(SIGPIPE, SIG_DFL);
        dup2(nullfd, 0);
        dup2(logfd, 1);
        dup2(logfd, 2);
        syscall(SYS_close_range, 3u, ~0u, 0u);
        execv(d->server_bin, argv);
        _exit(127);
    }
    ch->pid = pid;
    ch->ours = true;
    ch->ready = false;
    ch->started_ms = time_mono_ms();
    log_info("started the DPU cluster's API server",
             "cluster=%s pid=%ld port=%u dir=%s", ch->key, (long) pid, port,
             ch->dir);
    r = 0;
out:
    if (logfd >= 0) {
        close(logfd);
    }
    if (nullfd >= 0) {
        close(nullfd);
    }
    free(port_s);
    free(data_arg);
    free(store_arg);
    free(log_path);
    return r;
}

/* The admin kubeconfig for the Secret: the child's CA and admin client
 * certificate inline, the server at the address DPUs reach. NULL with err
 * set when the child's PKI is not there. */
static char *
admin_conf_build(struct dpuc_ctrl *d, const char *dir, const char *name,
                 unsigned port, struct dpf_error *err)
{
    static const char *const files[] = {"pki/ca.crt", "pki/admin.crt",
                                        "pki/admin.key"};
    char *b64[3] = {NULL, NULL, NULL};
    char *out = NULL;
    for (int i = 0; i < 3; i++) {
        char *p = xasprintf("%s/%s", dir, files[i]);
        char *data = NULL;
        size_t len = 0;
        int r = file_read_all(p, &data, &len);
        if (r < 0) {
            dpf_error_set(err, 500, "InternalError", "cannot read %s: %s", p,
                          strerror(-r));
            free(p);
            goto out;
        }
        b64[i] = base64_encode(data, len, BASE64_STD);
        explicit_bzero(data, len);
        free(data);
        free(p);
    }
    bool v6 = strchr(d->address, ':') != NULL;
    char *server = xasprintf("https://%s%s%s:%u", v6 ? "[" : "", d->address,
                             v6 ? "]" : "", port);
    char *user = xasprintf("%s-admin", name);
    char *ctx = xasprintf("%s@%s", user, name);
    json_t *kc = json_pack(
        "{s:s, s:s, s:[{s:s, s:{s:s, s:s}}], s:[{s:s, s:{s:s, s:s}}],"
        " s:[{s:s, s:{s:s, s:s}}], s:s, s:{}}",
        "apiVersion", "v1", "kind", "Config", "clusters", "name", name,
        "cluster", "server", server, "certificate-authority-data", b64[0],
        "users", "name", user, "user", "client-certificate-data", b64[1],
        "client-key-data", b64[2], "contexts", "name", ctx, "context",
        "cluster", name, "user", user, "current-context", ctx, "preferences");
    out = yamljson_emit(kc);
    json_decref(kc);
    free(server);
    free(user);
    free(ctx);
out:
    for (int i = 0; i < 3; i++) {
        if (b64[i]) {
            explicit_bzero(b64[i], strlen(b64[i]));
            free(b64[i]);
        }
    }
    return out;
}

/* --- API writes --- */

struct status_want {
    const char *phase;
    const char *created_status, *created_reason, *created_msg;
    const char *ready_status, *ready_reason, *ready_msg;
    int64_t generation;
};

static int
status_mutate(void *arg, json_t *obj)
{
    const struct status_want *w = arg;
    json_t *st = json_object_get(obj, "status");
    if (!json_is_object(st)) {
        st = json_object();
        json_object_set_new(obj, "status", st);
    }
    bool changed = false;
    const char *phase = json_string_value(json_object_get(st, "phase"));
    if (w->phase && (!phase || strcmp(phase, w->phase) != 0)) {
        json_object_set_new(st, "phase", json_string(w->phase));
        changed = true;
    }
    if (w->created_status) {
        changed |= kube_condition_set(obj, "Created", w->created_status,
                                      w->created_reason, w->created_msg,
                                      w->generation, NULL);
    }
    if (w->ready_status) {
        changed |=
            kube_condition_set(obj, "Ready", w->ready_status, w->ready_reason,
                               w->ready_msg, w->generation, NULL);
    }
    return changed ? 1 : 0;
}

static int
status_write(struct controller *c, const json_t *cached,
             const struct status_want *w)
{
    json_t *copy = json_deep_copy(cached);
    int changed = status_mutate((void *) w, copy);
    json_decref(copy);
    if (!changed) {
        return 0;
    }
    const char *ns = json_string_value(
        json_object_get(json_object_get(cached, "metadata"), "namespace"));
    const char *name = json_string_value(
        json_object_get(json_object_get(cached, "metadata"), "name"));
    struct dpf_error err = {0};
    int rc = kube_update_retry(controller_rest(c), &dpuc_gvr, ns, name,
                               "status", status_mutate, (void *) w, NULL, &err);
    if (rc < 0 && rc != -ENOENT) {
        log_warn_rl("cannot update the DPUCluster status",
                    "cluster=%s/%s error=\"%s\"", ns, name, err.message);
    }
    return rc;
}

static int
finalizer_add_fn(void *arg, json_t *obj)
{
    (void) arg;
    if (kube_is_deleting(obj)) {
        return 0;
    }
    return kube_finalizer_add(obj, DPUC_FINALIZER) ? 1 : 0;
}

static int
finalizer_remove_fn(void *arg, json_t *obj)
{
    (void) arg;
    return kube_finalizer_remove(obj, DPUC_FINALIZER) ? 1 : 0;
}

/* spec.kubeconfig := name, only when empty (it may change only from
 * empty: the schema refuses anything else). */
static int
kubeconfig_set_fn(void *arg, json_t *obj)
{
    json_t *spec = json_object_get(obj, "spec");
    const char *have = json_string_value(json_object_get(spec, "kubeconfig"));
    if (!json_is_object(spec) || (have && *have) || kube_is_deleting(obj)) {
        return 0;
    }
    json_object_set_new(spec, "kubeconfig", json_string(arg));
    return 1;
}

/* Create or update Secret <secret> with admin.conf = conf, owned by the
 * DPUCluster. */
static int
secret_ensure(struct controller *c, const json_t *dc, const char *ns,
              const char *secret, const char *conf, struct dpf_error *err)
{
    char *b64 = base64_encode(conf, strlen(conf), BASE64_STD);
    char *path = kube_path(&secret_gvr, ns, secret, NULL);
    json_t *have = NULL;
    int rc = kube_rest_json_wait(controller_rest(c), "GET", path, NULL, NULL,
                                 NULL, &have, err);
    if (rc == 0) {
        const char *cur = json_string_value(
            json_object_get(json_object_get(have, "data"), KUBECONFIG_KEY));
        if (cur && !strcmp(cur, b64)) {
            goto out; /* as it should be */
        }
        json_t *data = json_object_get(have, "data");
        if (!json_is_object(data)) {
            data = json_object();
            json_object_set_new(have, "data", data);
        }
        json_object_set_new(data, KUBECONFIG_KEY, json_string(b64));
        kube_owner_ref_set(have, dc, true);
        rc = kube_rest_json_wait(controller_rest(c), "PUT", path, NULL, have,
                                 NULL, NULL, err);
        goto out;
    }
    if (rc != -ENOENT && err->code != 404) {
        goto out;
    }
    dpf_error_clear(err);
    json_t *obj =
        json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:s, s:{s:s}}",
                  "apiVersion", "v1", "kind", "Secret", "metadata", "name",
                  secret, "namespace", ns, "labels", "dpu.nvidia.com/cluster",
                  json_string_value(
                      json_object_get(json_object_get(dc, "metadata"), "name")),
                  "type", "Opaque", "data", KUBECONFIG_KEY, b64);
    kube_owner_ref_set(obj, dc, true);
    char *coll = kube_path(&secret_gvr, ns, NULL, NULL);
    rc = kube_rest_json_wait(controller_rest(c), "POST", coll, NULL, obj, NULL,
                             NULL, err);
    free(coll);
    json_decref(obj);
out:
    json_decref(have);
    free(path);
    explicit_bzero(b64, strlen(b64));
    free(b64);
    return rc;
}

/* --- health check --- */

int
dpuc_kubeconfig_from_secret(struct kube_rest *rest, const char *ns,
                            const char *secret, struct kubeconfig **out,
                            struct dpf_error *err)
{
    *out = NULL;
    struct dpf_error e = {0};
    char *path = kube_path(&secret_gvr, ns, secret, NULL);
    json_t *s = NULL;
    char *conf = NULL;
    size_t conf_len = 0;
    json_t *doc = NULL;
    int rc = -EINVAL;
    if (!secret || !*secret) {
        dpf_error_set(err, 409, "Conflict", "spec.kubeconfig is empty");
        goto out;
    }
    if ((rc = kube_rest_json_wait(rest, "GET", path, NULL, NULL, NULL, &s,
                                  &e)) < 0) {
        if (e.code == 404) {
            dpf_error_set(err, 404, "NotFound",
                          "Secret %s/%s (spec.kubeconfig) not found", ns,
                          secret);
            rc = -ENOENT;
        } else {
            dpf_error_set(err, e.code ? e.code : 500, "InternalError",
                          "cannot read Secret %s/%s: %s", ns, secret,
                          e.message);
        }
        goto out;
    }
    rc = -EINVAL;
    const char *b64 = json_string_value(
        json_object_get(json_object_get(s, "data"), KUBECONFIG_KEY));
    if (!b64) {
        dpf_error_set(err, 422, "Invalid", "Secret %s/%s has no key %s", ns,
                      secret, KUBECONFIG_KEY);
        goto out;
    }
    if (base64_decode(b64, strlen(b64), BASE64_LENIENT, &conf, &conf_len) < 0) {
        dpf_error_set(err, 422, "Invalid", "Secret %s/%s key %s is not base64",
                      ns, secret, KUBECONFIG_KEY);
        goto out;
    }
    if (yamljson_parse_one(conf, conf_len, &doc, &e) < 0 ||
        !json_is_object(doc)) {
        dpf_error_set(err, 422, "Invalid",
                      "Secret %s/%s key %s is not a kubeconfig: %s", ns, secret,
                      KUBECONFIG_KEY,
                      e.message[0] ? e.message : "not a mapping");
        goto out;
    }
    size_t nc = json_array_size(json_object_get(doc, "clusters"));
    size_t nu = json_array_size(json_object_get(doc, "users"));
    if (nc != 1 || nu != 1) {
        dpf_error_set(err, 422, "Invalid",
                      "Secret %s/%s key %s: the kubeconfig must have exactly "
                      "one cluster and one user (it has %zu clusters and %zu "
                      "users)",
                      ns, secret, KUBECONFIG_KEY, nc, nu);
        goto out;
    }
    dpf_error_clear(&e);
    if (kubeconfig_parse(conf, conf_len, NULL, NULL, out, &e) < 0) {
        dpf_error_set(err, 422, "Invalid", "Secret %s/%s key %s: %s", ns,
                      secret, KUBECONFIG_KEY, e.message);
        goto out;
    }
    rc = 0;
out:
    json_decref(doc);
    if (conf) {
        explicit_bzero(conf, conf_len);
        free(conf);
    }
    json_decref(s);
    free(path);
    return rc;
}

int
dpuc_kubeconfig_get(struct kube_rest *rest, const char *ns, const char *name,
                    struct kubeconfig **out, struct dpf_error *err)
{
    *out = NULL;
    char *path = kube_path(&dpuc_gvr, ns, name, NULL);
    json_t *dc = NULL;
    int rc = kube_rest_json_wait(rest, "GET", path, NULL, NULL, NULL, &dc, err);
    free(path);
    if (rc < 0) {
        return rc;
    }
    const char *secret = json_string_value(
        json_object_get(json_object_get(dc, "spec"), "kubeconfig"));
    rc = dpuc_kubeconfig_from_secret(rest, ns, secret, out, err);
    json_decref(dc);
    return rc;
}

/* GET /version with the kubeconfig in Secret ns/secret, key admin.conf.
 * 0 with msg describing the server, or -1 with msg saying what is wrong
 * (the Secret, the key, the kubeconfig's shape, or the server). */
static int
health_check(struct controller *c, const char *ns, const char *secret,
             char **msg)
{
    struct dpf_error err = {0};
    struct kubeconfig *kc = NULL;
    struct api_client *cl = NULL;
    struct kube_response resp = {0};
    int rc = -1;
    if (dpuc_kubeconfig_from_secret(controller_rest(c), ns, secret, &kc, &err) <
        0) {
        *msg = xstrdup(err.message);
        goto out;
    }
    cl = api_client_create(kc, &err);
    if (!cl) {
        *msg = xasprintf("Secret %s/%s key %s: %s", ns, secret, KUBECONFIG_KEY,
                         err.message);
        goto out;
    }
    api_client_set_timeout(cl, HEALTH_TIMEOUT_MS);
    struct kube_request req = {.method = "GET", .path = "/version"};
    if (api_client_request(cl, &req, &resp, &err) < 0) {
        *msg = xasprintf("GET %s/version: %s", kc->server, err.message);
        goto out;
    }
    if (resp.status != 200) {
        *msg = xasprintf("GET %s/version: HTTP %ld", kc->server, resp.status);
        goto out;
    }
    json_t *v = json_loads(resp.body, 0, NULL);
    const char *gv = json_string_value(json_object_get(v, "gitVersion"));
    *msg = xasprintf("the API server at %s answers (version %s)", kc->server,
                     gv ? gv : "unknown");
    json_decref(v);
    rc = 0;
out:
    kube_response_free(&resp);
    api_client_destroy(cl);
    kubeconfig_free(kc);
    return rc;
}

/* --- reconcile --- */

static bool
is_embedded(const char *type)
{
    return type && (!strcmp(type, "embedded") || !strcmp(type, "kamaji"));
}

static char *
child_dir(struct dpuc_ctrl *d, const char *ns, const char *name,
          const char *uid)
{
    return xasprintf("%s/%s_%s_%s", d->dir, ns, name, uid);
}

/* Delete: stop the child, remove its data and Secret. 0 when done. */
static int
cleanup(struct dpuc_ctrl *d, struct controller *c, const json_t *obj,
        const char *key, const char *ns, const char *name, const char *uid)
{
    const char *type = json_string_value(
        json_object_get(json_object_get(obj, "spec"), "type"));
    allocator_cluster_remove(d->alloc, ns, name);
    if (!is_embedded(type)) {
        return 0;
    }
    char *dir = child_dir(d, ns, name, uid);
    pthread_mutex_lock(&d->mu);
    struct child *ch = child_find(d, key);
    if (!ch) {
        pid_t held = lock_holder(dir);
        if (held) {
            ch = xcalloc(1, sizeof *ch);
            ch->key = xstrdup(key);
            ch->uid = xstrdup(uid);
            ch->dir = xstrdup(dir);
            ch->pid = held;
            d->children = xrealloc(d->children,
                                   (d->n_children + 1) * sizeof *d->children);
            d->children[d->n_children++] = ch;
        }
    }
    if (ch) {
        child_stop(ch);
        child_remove(d, key);
    }
    pthread_mutex_unlock(&d->mu);
    int rc = rm_tree(dir);
    if (rc < 0) {
        kube_recorder_event(d->rec, obj, "Warning", "FailedDelete",
                            "cannot remove %s: %s", dir, strerror(-rc));
        free(dir);
        return rc;
    }
    free(dir);
    char *secret = xasprintf("%s-admin-kubeconfig", name);
    char *path = kube_path(&secret_gvr, ns, secret, NULL);
    struct dpf_error err = {0};
    rc = kube_rest_json_wait(controller_rest(c), "DELETE", path, NULL, NULL,
                             NULL, NULL, &err);
    free(path);
    free(secret);
    if (rc < 0 && err.code != 404) {
        log_warn("cannot delete the admin kubeconfig Secret",
                 "cluster=%s error=\"%s\"", key, err.message);
        return rc;
    }
    return 0;
}

/* Embedded: make the child run and the Secret hold its kubeconfig. Fills
 * the Created condition (status, reason, message: static strings or
 * *msg_out, malloc'd) and says when to look again. */
static int64_t
embedded_reconcile(struct dpuc_ctrl *d, struct controller *c, const json_t *obj,
                   const char *key, const char *ns, const char *name,
                   const char *uid, struct status_want *w, char **msg_out)
{
    char *dir = child_dir(d, ns, name, uid);
    struct dpf_error err = {0};
    int64_t after = START_POLL_MS;
    char *event_exit = NULL;
    bool started = false;
    pid_t started_pid = 0;
    pthread_mutex_lock(&d->mu);
    struct child *ch = child_find(d, key);
    if (ch && strcmp(ch->uid, uid) != 0) {
        child_stop(ch); /* a recreated object: the old one's child */
        child_remove(d, key);
        ch = NULL;
    }
    if (!ch) {
        ch = xcalloc(1, sizeof *ch);
        ch->key = xstrdup(key);
        ch->uid = xstrdup(uid);
        ch->dir = xstrdup(dir);
        d->children =
            xrealloc(d->children, (d->n_children + 1) * sizeof *d->children);
        d->children[d->n_children++] = ch;
        pid_t held = lock_holder(dir);
        if (held) { /* left running by an earlier controller: adopt it */
            ch->pid = held;
            ch->ours = false;
            ch->started_ms = time_mono_ms();
            log_info("adopted the running DPU cluster API server",
                     "cluster=%s pid=%ld", key, (long) held);
        }
    }
    bool alive = child_alive(ch);
    if (!alive && ch->exit_msg && !ch->exit_reported) {
        event_exit = xstrdup(ch->exit_msg);
        ch->exit_reported = true;
    }
    if (!alive) {
        int64_t wait = ch->next_ms - time_mono_ms();
        if (wait > 0) {
            *msg_out = xasprintf("the API server process %s; restarting it "
                                 "in %lld s",
                                 ch->exit_msg ? ch->exit_msg : "is not running",
                                 (long long) ((wait + 999) / 1000));
            w->created_status = "False";
            w->created_reason = "ClusterNotReady";
            after = wait;
            goto unlock;
        }
        if (!d->server_bin) {
            *msg_out = xstrdup("the dpf-server program was not found next to "
                               "the controller's executable; give its path "
                               "with --dpf-server-binary");
            w->created_status = "False";
            w->created_reason = "ClusterNotReady";
            after = BACKOFF_MAX_MS;
            goto unlock;
        }
        if (child_start(d, ch, &err) < 0) {
            *msg_out =
                xasprintf("cannot start the API server: %s", err.message);
            ch->failures++;
            ch->next_ms = time_mono_ms() + BACKOFF_MAX_MS / 4;
            w->created_status = "False";
            w->created_reason = "ClusterNotReady";
            after = BACKOFF_MAX_MS / 4;
            goto unlock;
        }
        started = true;
        started_pid = ch->pid;
    }
    unsigned port = child_port(dir);
    if (!ch->ready) {
        unsigned kport = child_kubeconfig_port(dir);
        if (kport) {
            ch->ready = true;
            if (kport != port) {
                char *pf = xasprintf("%s/port", dir);
                char *txt = xasprintf("%u\n", kport);
                file_write_atomic(pf, txt, strlen(txt), 0600);
                free(pf);
                free(txt);
                port = kport;
            }
        } else if (time_mono_ms() - ch->started_ms > START_TIMEOUT_MS) {
            log_warn("the DPU cluster API server does not answer; "
                     "restarting it",
                     "cluster=%s pid=%ld", key, (long) ch->pid);
            child_stop(ch);
            *msg_out = xstrdup("the API server did not start within 60 s; "
                               "restarting it (see dpf-server.log in its "
                               "data directory)");
            w->created_status = "False";
            w->created_reason = "ClusterNotReady";
            goto unlock;
        } else {
            *msg_out =
                xasprintf("starting the API server (pid %ld)", (long) ch->pid);
            w->created_status = "False";
            w->created_reason = "ClusterNotReady";
            goto unlock;
        }
    }
    pthread_mutex_unlock(&d->mu);
    /* Running and answering: publish its kubeconfig. */
    char *conf = admin_conf_build(d, dir, name, port, &err);
    char *secret = xasprintf("%s-admin-kubeconfig", name);
    if (!conf || secret_ensure(c, obj, ns, secret, conf, &err) < 0) {
        *msg_out = xasprintf("cannot publish the admin kubeconfig in Secret "
                             "%s/%s: %s",
                             ns, secret, err.message);
        w->created_status = "False";
        w->created_reason = "ClusterNotReady";
        after = HEALTH_RETRY_MS;
    } else {
        const char *have = json_string_value(
            json_object_get(json_object_get(obj, "spec"), "kubeconfig"));
        if (!have || !*have) {
            kube_update_retry(controller_rest(c), &dpuc_gvr, ns, name, NULL,
                              kubeconfig_set_fn, secret, NULL, &err);
        }
        *msg_out = xasprintf("the API server runs (pid %ld, port %u); "
                             "admin kubeconfig in Secret %s/%s",
                             (long) ch->pid, port, ns, secret);
        w->created_status = "True";
        w->created_reason = "Created";
        after = 0;
    }
    if (conf) {
        explicit_bzero(conf, strlen(conf));
        free(conf);
    }
    free(secret);
    goto events;
unlock:
    pthread_mutex_unlock(&d->mu);
events:
    if (event_exit) {
        log_warn("the DPU cluster's API server stopped",
                 "cluster=%s how=\"%s\"", key, event_exit);
        kube_recorder_event(d->rec, obj, "Warning", "ClusterProcessExited",
                            "the API server process %s", event_exit);
    }
    if (started) {
        kube_recorder_event(d->rec, obj, "Normal", "ClusterProcessStarted",
                            "started the API server (pid %ld) in %s",
                            (long) started_pid, dir);
    }
    free(event_exit);
    free(dir);
    return after;
}

static struct controller_result
reconcile_dpucluster(struct controller *c, const char *key)
{
    struct dpuc_ctrl *d = controller_arg(c);
    json_t *obj = kube_cache_get(controller_cache(c, 0), key);
    if (!obj) {
        /* Gone (its finalizer ran). A child without an object (the
         * finalizer was removed by hand) is stopped. */
        pthread_mutex_lock(&d->mu);
        struct child *ch = child_find(d, key);
        if (ch) {
            child_stop(ch);
            child_remove(d, key);
        }
        pthread_mutex_unlock(&d->mu);
        return controller_done();
    }
    json_t *md = json_object_get(obj, "metadata");
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    const char *name = json_string_value(json_object_get(md, "name"));
    const char *uid = json_string_value(json_object_get(md, "uid"));
    int64_t gen = json_integer_value(json_object_get(md, "generation"));
    json_t *spec = json_object_get(obj, "spec");
    const char *type = json_string_value(json_object_get(spec, "type"));
    const char *kcname = json_string_value(json_object_get(spec, "kubeconfig"));
    const char *phase = json_string_value(
        json_object_get(json_object_get(obj, "status"), "phase"));
    struct dpf_error err = {0};
    struct controller_result res = controller_done();
    char *created_msg = NULL, *ready_msg = NULL;
    json_t *conds_copy = NULL;
    if (!ns || !name || !uid || !type) {
        goto out;
    }
    allocator_cluster_set(d->alloc, obj);

    if (kube_is_deleting(obj)) {
        if (!kube_finalizer_has(obj, DPUC_FINALIZER)) {
            goto out;
        }
        if (cleanup(d, c, obj, key, ns, name, uid) < 0) {
            res = controller_error();
            goto out;
        }
        if (kube_update_retry(controller_rest(c), &dpuc_gvr, ns, name, NULL,
                              finalizer_remove_fn, NULL, NULL, &err) < 0 &&
            err.code != 404) {
            res = controller_error();
            goto out;
        }
        log_info("DPUCluster cleaned up", "cluster=%s type=%s", key, type);
        goto out;
    }
    if (!kube_finalizer_has(obj, DPUC_FINALIZER)) {
        if (kube_update_retry(controller_rest(c), &dpuc_gvr, ns, name, NULL,
                              finalizer_add_fn, NULL, NULL, &err) < 0) {
            log_warn_rl("cannot add the finalizer", "cluster=%s error=\"%s\"",
                        key, err.message);
            res = controller_error();
        }
        goto out; /* the update brings us back */
    }
    if (!phase || !strcmp(phase, "Pending") || !strcmp(phase, "Failed")) {
        struct status_want w = {.phase = "Creating", .generation = gen};
        if (status_write(c, obj, &w) < 0) {
            res = controller_requeue();
        } else {
            kube_recorder_event(d->rec, obj, "Normal", "Creating",
                                "creating the %s DPU cluster", type);
        }
        goto out;
    }

    /* The cluster manager's part: the Created condition. */
    struct status_want w = {.generation = gen};
    int64_t after = HEALTH_RETRY_MS;
    if (is_embedded(type)) {
        after =
            embedded_reconcile(d, c, obj, key, ns, name, uid, &w, &created_msg);
        /* spec.kubeconfig may have just been set: the health check reads
         * the Secret by its known name. */
        if (!kcname || !*kcname) {
            kcname = NULL;
        }
    } else if (!strcmp(type, "static")) {
        if (kcname && *kcname) {
            w.created_status = "True";
            w.created_reason = "Created";
            created_msg = xasprintf("kubeconfig in Secret %s/%s", ns, kcname);
        } else {
            w.created_status = "False";
            w.created_reason = "EmptyKubeconfig";
            created_msg = xstrdup("spec.kubeconfig is empty");
        }
    }
    w.created_msg = created_msg;

    /* The provisioning side: health check once every other condition is
     * True and Created exists. */
    json_t *copy = json_deep_copy(obj);
    if (w.created_status) {
        kube_condition_set(copy, "Created", w.created_status, w.created_reason,
                           created_msg, gen, NULL);
    }
    bool all_true = kube_condition_is_true(copy, "Created");
    json_t *conds =
        json_object_get(json_object_get(copy, "status"), "conditions");
    size_t i;
    json_t *cd;
    const char *not_true = NULL, *not_true_reason = NULL, *not_true_msg = NULL;
    json_array_foreach(conds, i, cd)
    {
        const char *t = json_string_value(json_object_get(cd, "type"));
        const char *s = json_string_value(json_object_get(cd, "status"));
        if (t && strcmp(t, "Ready") != 0 && (!s || strcmp(s, "True") != 0)) {
            all_true = false;
            if (!not_true) {
                not_true = t;
                not_true_reason =
                    json_string_value(json_object_get(cd, "reason"));
                not_true_msg =
                    json_string_value(json_object_get(cd, "message"));
            }
        }
    }
    bool was_ready = phase && !strcmp(phase, "Ready");
    if (all_true) {
        const char *secret = kcname;
        char *own = NULL;
        if (!secret && is_embedded(type)) {
            secret = own = xasprintf("%s-admin-kubeconfig", name);
        }
        int hc = health_check(c, ns, secret ? secret : "", &ready_msg);
        free(own);
        if (hc == 0) {
            w.phase = "Ready";
            w.ready_status = "True";
            w.ready_reason = "HealthCheckPassed";
            after = HEALTH_READY_MS;
        } else {
            w.phase = "NotReady";
            w.ready_status = "False";
            w.ready_reason = "HealthCheckFailed";
            after =
                after > 0 && after < HEALTH_RETRY_MS ? after : HEALTH_RETRY_MS;
        }
    } else {
        w.phase = !strcmp(phase, "Ready") || !strcmp(phase, "NotReady")
                      ? "NotReady"
                      : NULL;
        w.ready_status = "False";
        if (not_true) {
            w.ready_reason =
                not_true_reason ? not_true_reason : "ClusterNotReady";
            ready_msg = xasprintf("condition %s is not True: %s", not_true,
                                  not_true_msg ? not_true_msg : "no message");
        } else {
            w.ready_reason = "ClusterNotReady";
            ready_msg = xasprintf("waiting for the cluster manager of type "
                                  "\"%s\" to create the cluster",
                                  type);
        }
        if (after <= 0) {
            after = HEALTH_RETRY_MS;
        }
    }
    w.ready_msg = ready_msg;
    /* copy holds the strings not_true_* point at: kept until out. */
    conds_copy = copy;
    if (status_write(c, obj, &w) < 0) {
        res = controller_requeue();
        goto out;
    }
    bool now_ready = w.phase && !strcmp(w.phase, "Ready");
    if (now_ready && !was_ready) {
        log_info("DPUCluster Ready", "cluster=%s type=%s", key, type);
        kube_recorder_event(d->rec, obj, "Normal", "HealthCheckPassed", "%s",
                            ready_msg);
    } else if (!now_ready && was_ready) {
        log_warn("DPUCluster not Ready", "cluster=%s reason=%s message=\"%s\"",
                 key, w.ready_reason, ready_msg);
        kube_recorder_event(d->rec, obj, "Warning", w.ready_reason, "%s",
                            ready_msg);
    }
    {
        json_t *copy2 = json_deep_copy(obj);
        status_mutate(&w, copy2);
        allocator_cluster_set(d->alloc, copy2);
        json_decref(copy2);
    }
    res = controller_requeue_after(after);
out:
    free(created_msg);
    free(ready_msg);
    json_decref(conds_copy);
    json_decref(obj);
    return res;
}

/* --- monitor: queue the key of a child that exited --- */

static void *
monitor_main(void *arg)
{
    struct dpuc_ctrl *d = arg;
    worker_lock(&d->monitor);
    while (worker_wait(&d->monitor, MONITOR_MS)) {
        worker_unlock(&d->monitor);
        json_t *keys = json_array();
        pthread_mutex_lock(&d->mu);
        for (size_t i = 0; i < d->n_children; i++) {
            struct child *ch = d->children[i];
            if (ch->pid && !child_alive(ch)) {
                json_array_append_new(keys, json_string(ch->key));
            }
        }
        pthread_mutex_unlock(&d->mu);
        size_t i;
        json_t *k;
        json_array_foreach(keys, i, k)
        {
            workqueue_add(controller_queue(d->ctl), json_string_value(k));
        }
        json_decref(keys);
        worker_lock(&d->monitor);
    }
    worker_unlock(&d->monitor);
    return NULL;
}

/* --- life cycle --- */

/* dpf-server next to our own executable, or in the build tree's
 * ../dpf-server/, or NULL. */
static char *
find_server_binary(void)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) {
        return NULL;
    }
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash) {
        return NULL;
    }
    *slash = '\0';
    const char *tries[] = {"dpf-server", "../dpf-server/dpf-server"};
    for (size_t i = 0; i < 2; i++) {
        char *p = xasprintf("%s/%s", self, tries[i]);
        char *real = realpath(p, NULL);
        free(p);
        if (real && access(real, X_OK) == 0) {
            return real;
        }
        free(real);
    }
    return NULL;
}

struct dpuc_ctrl *
dpuc_ctrl_add(struct controller_manager *m, const struct dpuc_ctrl_config *cfg,
              struct allocator *alloc, struct dpf_error *err)
{
    int rc = dir_create_all(cfg->dir, 0700);
    if (rc < 0) {
        dpf_error_set(err, 500, "InternalError",
                      "cannot create the DPU cluster directory %s: %s",
                      cfg->dir, strerror(-rc));
        return NULL;
    }
    /* A missing program is not fatal: static clusters still work, and
     * embedded ones say in their status what is missing. */
    char *bin = cfg->server_binary && *cfg->server_binary
                    ? realpath(cfg->server_binary, NULL)
                    : find_server_binary();
    if (!bin || access(bin, X_OK) < 0) {
        log_error("cannot find the dpf-server program; embedded DPU "
                  "clusters will not start (give its path with "
                  "--dpf-server-binary)",
                  "given=%s", cfg->server_binary ? cfg->server_binary : "-");
        free(bin);
        bin = NULL;
    }
    struct dpuc_ctrl *d = xcalloc(1, sizeof *d);
    d->dir = xstrdup(cfg->dir);
    d->address =
        xstrdup(cfg->address && *cfg->address ? cfg->address : "127.0.0.1");
    d->server_bin = bin;
    d->alloc = alloc;
    pthread_mutex_init(&d->mu, NULL);
    d->rec =
        kube_recorder_create(controller_manager_rest(m),
                             cfg->component ? cfg->component : "dpf", NULL);
    d->ops.name = "dpucluster";
    d->ops.primary_kind = "DPUCluster";
    d->ops.primary.gvr = dpuc_gvr;
    d->ops.reconcile = reconcile_dpucluster;
    d->ops.workers = 2;
    d->ctl = controller_manager_add(m, &d->ops, d);
    worker_init(&d->monitor);
    if (worker_start(&d->monitor, "dpuc-monitor", monitor_main, d) != 0) {
        dpf_error_set(err, 500, "InternalError",
                      "cannot start the DPU cluster monitor thread");
        worker_destroy(&d->monitor);
        kube_recorder_destroy(d->rec);
        pthread_mutex_destroy(&d->mu);
        free(d->dir);
        free(d->address);
        free(d->server_bin);
        free(d);
        return NULL;
    }
    log_info("dpucluster controller", "dir=%s address=%s dpf_server=%s", d->dir,
             d->address, d->server_bin);
    return d;
}

void
dpuc_ctrl_stop(struct dpuc_ctrl *d)
{
    if (!d) {
        return;
    }
    worker_stop(&d->monitor);
    pthread_mutex_lock(&d->mu);
    for (size_t i = 0; i < d->n_children; i++) {
        child_stop(d->children[i]);
    }
    pthread_mutex_unlock(&d->mu);
}

void
dpuc_ctrl_destroy(struct dpuc_ctrl *d)
{
    if (!d) {
        return;
    }
    dpuc_ctrl_stop(d);
    worker_destroy(&d->monitor);
    for (size_t i = 0; i < d->n_children; i++) {
        child_free(d->children[i]);
    }
    free(d->children);
    kube_recorder_destroy(d->rec);
    pthread_mutex_destroy(&d->mu);
    free(d->dir);
    free(d->address);
    free(d->server_bin);
    free(d);
}

size_t
dpuc_ctrl_children(struct dpuc_ctrl *d)
{
    pthread_mutex_lock(&d->mu);
    size_t n = 0;
    for (size_t i = 0; i < d->n_children; i++) {
        n += d->children[i]->pid != 0;
    }
    pthread_mutex_unlock(&d->mu);
    return n;
}
