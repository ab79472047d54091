/* emu-fast: dpf-emu's fast mode (emu-fast.h, docs/dpf-emu.md). */
#include "dpf-emu/emu-fast.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "controllers/dpu-pods.h"
#include "dpf-emu/emu-bfcfg.h"
#include "dpf-emu/emu-fleet.h"
#include "dpf-rshim-emu/rshim-emu.h"
#include "dpulet/detect.h"
#include "lib/base/base64.h"
#include "lib/base/log.h"
#include "lib/base/loop.h"
#include "lib/base/thread.h"
#include "lib/base/util.h"
#include "lib/kube/api-client.h"
#include "lib/kube/informer.h"
#include "lib/kube/kube-bootstrap.h"
#include "lib/kube/kube-object.h"
#include "lib/kube/kubeconfig.h"

LOG_MODULE(emu);

#define FAST_PCI_BUS0 0x4b         /* as the namespace mode */
#define FAST_REPLY_MAX (64 * 1024) /* a dmsd control reply line */
#define FAST_RETRY_MS 3000         /* a failed step is tried again */
#define FAST_JOIN_RETRY_MS 5000    /* DPF's join script loops every 5 s */
#define FAST_LEASE_S 40            /* kubelet's nodeLeaseDurationSeconds */
#define FAST_LEASE_BATCH 200       /* Leases renewed per job */
#define FAST_API_TIMEOUT_MS 30000

static const struct kube_gvr GVR_NODES = {"", "v1", "nodes", false};
static const struct kube_gvr GVR_PODS = {"", "v1", "pods", true};
static const struct kube_gvr GVR_SECRETS = {"", "v1", "secrets", true};
static const struct kube_gvr GVR_LEASES = {"coordination.k8s.io", "v1",
                                           "leases", true};

struct fast_host {
    char name[64];
    char ip[20];
    atomic_bool registered;
};

struct fast_dpu {
    struct emu_fast *f;
    unsigned i, j, g;
    char dev_name[32];
    char ip[20];
    char *dir, *rshim_dir, *disk, *kubeconfig;
    struct rshim_emu *dev;
    /* below: under f->mu */
    char *node;            /* the Node it registered, or NULL */
    struct kubeconfig *kc; /* its node identity, once joined */
    unsigned kc_gen;       /* bumped whenever kc changes */
    bool up;
    /* Lease renewal's own connection, as a kubelet keeps one (a new TLS
     * handshake per renewal cost the DPU clusters more than the renewal):
     * touched only by the one lease job that owns this DPU in a round
     * (rounds never overlap) and at shutdown. */
    struct api_client *lease_client;
    unsigned lease_gen; /* the kc_gen lease_client was made from */
    /* under f->mu: the connection the Node was registered on, handed to
     * the next lease job (a kubelet registers and renews over one
     * connection; a new one cost each join another TLS handshake) */
    struct api_client *handoff;
    unsigned handoff_gen; /* the kc_gen it was made from */
};

/* A `dmsd --targets -` process: one request line in, one reply line out,
 * one exchange at a time. */
struct fast_pool {
    pthread_mutex_t mu;
    pid_t pid;
    int in;    /* its stdin (we write) */
    FILE *out; /* its stdout (we read) */
    bool dead;
    unsigned k;
};

enum job_kind {
    JOB_HOST,      /* register host idx */
    JOB_POD_START, /* run pod */
    JOB_POD_STOP,  /* stop pod, finish its deletion */
    JOB_DPU_BOOT,  /* DPU idx came up (fresh: after an install) */
    JOB_LEASES,    /* renew Leases [idx, idx + FAST_LEASE_BATCH) */
};

/* Queues: the general workers take turns between pods (a DMS pod that
 * waits behind thousands of boots fails its DPU after 5 minutes) and
 * boots and registrations, so neither starves the other; leases have
 * their own workers. */
enum { LANE_POD, LANE_BOOT, LANE_LEASE, N_LANES };
#define FAST_LEASE_WORKERS 2

struct job {
    struct job *next;
    struct emu_fast *f;
    enum job_kind kind;
    unsigned idx;
    json_t *pod;
    char *bfcfg;
    size_t len;
    bool fresh;
};

struct emu_fast {
    struct emu_fast_config cfg;
    struct loop *loop;
    struct kubeconfig *kc;
    struct kube_rest *rest;
    struct informer *pods;
    char *sys;
    char *status_path;
    json_t *det_labels;
    struct fast_host *hosts;
    struct fast_dpu *dpus;
    unsigned n_dpus;
    json_t *host_index; /* Node name -> host index; read-only after up */
    struct fast_pool *pools;
    unsigned n_pools;

    pthread_mutex_t mu;      /* the queues, targets, the DPUs' fields */
    pthread_cond_t cv;       /* general workers */
    pthread_cond_t lease_cv; /* lease workers */
    struct job *head[N_LANES], *tail[N_LANES];
    bool stop;
    pthread_t *threads;
    unsigned n_threads;
    pthread_t lease_threads[FAST_LEASE_WORKERS];
    unsigned n_lease_threads;
    unsigned pop_turn;           /* under mu: job_pop_locked()'s rotation */
    atomic_uint lease_jobs_left; /* of the current round */
    atomic_uint lease_rounds_skipped; /* the last round was not done */
    json_t *targets; /* "ns/name" of running DMS pods -> pool index */

    json_t *seen; /* loop thread: "ns/name" -> uid handed to a worker */
    struct loop_timer *lease_timer, *status_timer;

    atomic_uint hosts_registered, dms_running, pods_ready, installs, joins,
        dpus_registered, failures;
};

/* --- the queue --------------------------------------------------------- */

static void
job_free(struct job *j)
{
    json_decref(j->pod);
    if (j->bfcfg) {
        explicit_bzero(j->bfcfg, j->len); /* it holds a join token */
        free(j->bfcfg);
    }
    free(j);
}

static int
job_lane(const struct job *j)
{
    switch (j->kind) {
    case JOB_POD_START:
    case JOB_POD_STOP:
        return LANE_POD;
    case JOB_LEASES:
        return LANE_LEASE;
    default:
        return LANE_BOOT;
    }
}

static void
job_push(struct emu_fast *f, struct job *j)
{
    int lane = job_lane(j);
    pthread_mutex_lock(&f->mu);
    if (f->stop) {
        pthread_mutex_unlock(&f->mu);
        job_free(j);
        return;
    }
    j->next = NULL;
    if (f->tail[lane]) {
        f->tail[lane]->next = j;
    } else {
        f->head[lane] = j;
    }
    f->tail[lane] = j;
    pthread_cond_signal(lane == LANE_LEASE ? &f->lease_cv : &f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* Under f->mu: the first job of a non-empty lane in [from, to), trying
 * the lanes in turn from a rotating start. */
static struct job *
job_pop_locked(struct emu_fast *f, int from, int to)
{
    int n = to - from;
    int start = (int) (f->pop_turn++ % (unsigned) n);
    for (int i = 0; i < n; i++) {
        int l = from + (start + i) % n;
        struct job *j = f->head[l];
        if (j) {
            f->head[l] = j->next;
            if (!f->head[l]) {
                f->tail[l] = NULL;
            }
            return j;
        }
    }
    return NULL;
}

static struct job *
job_new(struct emu_fast *f, enum job_kind kind, unsigned idx)
{
    struct job *j = xcalloc(1, sizeof *j);
    j->f = f;
    j->kind = kind;
    j->idx = idx;
    return j;
}

static void
job_later_cb(void *arg, struct loop_timer *t)
{
    (void) t;
    struct job *j = arg;
    job_push(j->f, j);
}

static void
job_later_post(void *arg)
{
    struct job *j = arg;
    loop_timer_add(j->f->loop, FAST_RETRY_MS, 0, job_later_cb, j);
}

/* Any thread: run j again after a while (the loop owns timers). */
static void
job_later(struct job *j)
{
    atomic_fetch_add(&j->f->failures, 1);
    loop_post(j->f->loop, job_later_post, j);
}

/* --- small helpers ----------------------------------------------------- */

static const char *
jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static const char *
md(const json_t *obj, const char *k)
{
    return jstr(json_object_get(obj, "metadata"), k);
}

static void
addr_of(unsigned first, unsigned n, char *out, size_t size)
{
    snprintf(out, size, "127.%u.%u.%u", first + (n >> 16), (n >> 8) & 255u,
             n & 255u);
}

static int
rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st;
    (void) ftw;
    return flag == FTW_DP ? rmdir(p) : unlink(p);
}

static json_t *
base_labels(const char *node)
{
    struct utsname u;
    uname(&u);
    const char *arch = !strcmp(u.machine, "x86_64")    ? "amd64"
                       : !strcmp(u.machine, "aarch64") ? "arm64"
                                                       : u.machine;
    return json_pack("{s:s, s:s, s:s}", "kubernetes.io/hostname", node,
                     "kubernetes.io/os", "linux", "kubernetes.io/arch", arch);
}

/* A Node's status as a healthy kubelet posts it. */
static json_t *
node_status(const char *node, const char *ip)
{
    char now[40];
    kube_time_now(now, sizeof now);
    json_t *conds = json_array();
    static const char *const c[4][3] = {
        {"MemoryPressure", "False", "KubeletHasSufficientMemory"},
        {"DiskPressure", "False", "KubeletHasNoDiskPressure"},
        {"PIDPressure", "False", "KubeletHasSufficientPID"},
        {"Ready", "True", "KubeletReady"},
    };
    for (int k = 0; k < 4; k++) {
        json_array_append_new(
            conds,
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", c[k][0],
                      "status", c[k][1], "reason", c[k][2], "message",
                      "emulated by dpf-emu (fast mode)", "lastHeartbeatTime",
                      now, "lastTransitionTime", now));
    }
    json_t *res = json_pack("{s:s, s:s, s:s}", "cpu", "16", "memory", "32Gi",
                            "pods", "110");
    return json_pack(
        "{s:o, s:O, s:o, s:[{s:s, s:s}, {s:s, s:s}], s:{s:{s:i}}, "
        "s:{s:s, s:s, s:s, s:s}}",
        "conditions", conds, "capacity", res, "allocatable", res, "addresses",
        "type", "InternalIP", "address", ip, "type", "Hostname", "address",
        node, "daemonEndpoints", "kubeletEndpoint", "Port", 10250, "nodeInfo",
        "containerRuntimeVersion", "dpf-emu://fast", "kubeletVersion",
        "v1.30.0-dpf-emu", "operatingSystem", "linux", "architecture", "amd64");
}

/* Create or refresh Node name (labels, annotations may be NULL), post its
 * status and its Lease. 0 or -errno (logged). */
static int
node_register(struct api_client *c, const char *name, const char *ip,
              json_t *labels, json_t *annotations, char **uid_out)
{
    struct dpf_error err = {0};
    json_t *meta = json_pack("{s:s, s:O}", "name", name, "labels", labels);
    if (annotations) {
        json_object_set(meta, "annotations", annotations);
    }
    json_t *obj = json_pack("{s:s, s:s, s:o}", "apiVersion", "v1", "kind",
                            "Node", "metadata", meta);
    json_t *out = NULL;
    int rc = api_client_post(c, &GVR_NODES, NULL, obj, "dpf-emu", &out, &err);
    if (rc == -EEXIST) {
        dpf_error_clear(&err);
        json_t *patch = json_pack("{s:O}", "metadata", meta);
        json_object_del(json_object_get(patch, "metadata"), "name");
        rc = api_client_patch(c, &GVR_NODES, NULL, name, NULL, API_PATCH_MERGE,
                              patch, "dpf-emu", &out, &err);
        json_decref(patch);
    }
    json_decref(obj);
    if (rc < 0) {
        log_warn_rl("cannot register a node", "node=%s error=\"%s\"", name,
                    err.message);
        json_decref(out);
        return rc;
    }
    char *uid = xstrdup(md(out, "uid") ? md(out, "uid") : "");
    json_decref(out);
    json_t *st = json_pack("{s:o}", "status", node_status(name, ip));
    rc = api_client_patch(c, &GVR_NODES, NULL, name, "status", API_PATCH_MERGE,
                          st, "dpf-emu", NULL, &err);
    json_decref(st);
    if (rc == 0) {
        char now[64];
        kube_microtime_now(now, sizeof now);
        json_t *lease =
            json_pack("{s:s, s:s, s:{s:s, s:s, s:[{s:s, s:s, s:s, s:s}]}, "
                      "s:{s:s, s:i, s:s}}",
                      "apiVersion", "coordination.k8s.io/v1", "kind", "Lease",
                      "metadata", "name", name, "namespace", "kube-node-lease",
                      "ownerReferences", "apiVersion", "v1", "kind", "Node",
                      "name", name, "uid", uid, "spec", "holderIdentity", name,
                      "leaseDurationSeconds", FAST_LEASE_S, "renewTime", now);
        rc = api_client_post(c, &GVR_LEASES, "kube-node-lease", lease,
                             "dpf-emu", NULL, &err);
        if (rc == -EEXIST) {
            rc = 0; /* renewed by the timer */
        }
        json_decref(lease);
    }
    if (rc < 0) {
        log_warn_rl("cannot post a node's status or lease",
                    "node=%s error=\"%s\"", name, err.message);
        free(uid);
        return rc;
    }
    if (uid_out) {
        *uid_out = uid;
    } else {
        free(uid);
    }
    return 0;
}

static int
lease_renew(struct api_client *c, const char *name)
{
    char now[64];
    kube_microtime_now(now, sizeof now);
    json_t *patch = json_pack("{s:{s:s}}", "spec", "renewTime", now);
    struct dpf_error err = {0};
    int rc = api_client_patch(c, &GVR_LEASES, "kube-node-lease", name, NULL,
                              API_PATCH_MERGE, patch, "dpf-emu", NULL, &err);
    json_decref(patch);
    if (rc < 0) {
        log_warn_rl("cannot renew a node lease", "node=%s error=\"%s\"", name,
                    err.message);
    }
    return rc;
}

/* --- the dmsd pool ----------------------------------------------------- */

static int
pool_spawn(struct emu_fast *f, struct fast_pool *p, struct dpf_error *err)
{
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0) {
        dpf_error_set(err, 500, "InternalError", "pipe: %s", strerror(errno));
        return -errno;
    }
    char *log = xasprintf("%s/dmsd-%u.log", f->cfg.state_dir, p->k);
    int logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    free(log);
    pid_t pid = fork();
    if (pid < 0) {
        dpf_error_set(err, 500, "InternalError", "fork: %s", strerror(errno));
        return -errno;
    }
    if (pid == 0) {
        /* the pool goes with us: nothing else would clean it up */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(in[0], 0);
        dup2(out[1], 1);
        if (logfd >= 0) {
            dup2(logfd, 2);
        }
        sigset_t all;
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        execl(f->cfg.dmsd, f->cfg.dmsd, "--targets", "-", "--exec_timeout",
              "1800", "--disable_unbind_at_activate", "--reboot_status_check",
              "none", (char *) NULL);
        dprintf(2, "dpf-emu: cannot run %s: %s\n", f->cfg.dmsd,
                strerror(errno));
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    if (logfd >= 0) {
        close(logfd);
    }
    p->pid = pid;
    p->in = in[1];
    p->out = fdopen(out[0], "r");
    p->dead = false;
    return 0;
}

/* One exchange with pool p. 0 with *reply (a new reference), or -EIO
 * with err when the process is gone or answered nonsense. */
static int
pool_call(struct fast_pool *p, json_t *req, json_t **reply,
          struct dpf_error *err)
{
    char *line = json_dumps(req, JSON_COMPACT);
    size_t n = strlen(line);
    line = xrealloc(line, n + 2);
    line[n++] = '\n';
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    for (size_t off = 0; !p->dead && off < n;) {
        ssize_t w = write(p->in, line + off, n - off);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            p->dead = true;
            break;
        }
        off += (size_t) w;
    }
    explicit_bzero(line, n); /* a key travels in it */
    free(line);
    char *buf = NULL;
    size_t cap = 0;
    ssize_t got = p->dead ? -1 : getline(&buf, &cap, p->out);
    if (got <= 0 || got > FAST_REPLY_MAX) {
        p->dead = true;
        dpf_error_set(err, 503, "ServiceUnavailable",
                      "dmsd pool process %u (pid %d) is gone; see "
                      "dmsd-%u.log in the state directory",
                      p->k, (int) p->pid, p->k);
        rc = -EIO;
    } else {
        json_error_t je;
        *reply = json_loadb(buf, (size_t) got, 0, &je);
        if (!json_is_object(*reply)) {
            json_decref(*reply);
            *reply = NULL;
            dpf_error_set(err, 502, "BadGateway",
                          "dmsd pool process %u answered no JSON object: %s",
                          p->k, je.text);
            rc = -EIO;
        }
    }
    pthread_mutex_unlock(&p->mu);
    free(buf);
    return rc;
}

/* --- pods -------------------------------------------------------------- */

static const char *
pod_container(const json_t *pod)
{
    return jstr(
        json_array_get(
            json_object_get(json_object_get(pod, "spec"), "containers"), 0),
        "name");
}

/* The value after flag in the first container's command. */
static const char *
pod_arg(const json_t *pod, const char *flag)
{
    json_t *cmd = json_object_get(
        json_array_get(
            json_object_get(json_object_get(pod, "spec"), "containers"), 0),
        "command");
    for (size_t k = 0; k + 1 < json_array_size(cmd); k++) {
        const char *a = json_string_value(json_array_get(cmd, k));
        if (a && !strcmp(a, flag)) {
            return json_string_value(json_array_get(cmd, k + 1));
        }
    }
    return NULL;
}

/* The volume the container mounts at the longest prefix of path, and
 * the rest of the path. */
static const json_t *
pod_volume_for(const json_t *pod, const char *path, const char **rest)
{
    const json_t *spec = json_object_get(pod, "spec");
    json_t *mounts = json_object_get(
        json_array_get(json_object_get(spec, "containers"), 0), "volumeMounts");
    const char *best = NULL;
    size_t best_len = 0;
    size_t k;
    json_t *m;
    json_array_foreach(mounts, k, m)
    {
        const char *mp = jstr(m, "mountPath");
        size_t n = mp ? strlen(mp) : 0;
        if (n > best_len && !strncmp(path, mp, n) &&
            (path[n] == '/' || !path[n])) {
            best = jstr(m, "name");
            best_len = n;
        }
    }
    json_t *v;
    json_array_foreach(json_object_get(spec, "volumes"), k, v)
    {
        if (best && jstr(v, "name") && !strcmp(jstr(v, "name"), best)) {
            *rest = path + best_len;
            return v;
        }
    }
    return NULL;
}

/* A container path on the host: through a hostPath volume, or as is. */
static char *
pod_host_path(const json_t *pod, const char *path)
{
    const char *rest = "";
    const json_t *v = path ? pod_volume_for(pod, path, &rest) : NULL;
    const char *hp = jstr(json_object_get(v, "hostPath"), "path");
    if (hp) {
        return xasprintf("%s%s", hp, rest);
    }
    return path ? xstrdup(path) : NULL;
}

/* The file behind a container path in a Secret volume, decoded. */
static char *
pod_secret_file(struct api_client *c, const json_t *pod, const char *path,
                json_t **cache, struct dpf_error *err)
{
    const char *rest = "";
    const json_t *v = path ? pod_volume_for(pod, path, &rest) : NULL;
    const char *secret = jstr(json_object_get(v, "secret"), "secretName");
    if (!secret || rest[0] != '/') {
        dpf_error_set(err, 422, "Invalid",
                      "pod %s/%s: %s is not a file of a Secret volume",
                      md(pod, "namespace"), md(pod, "name"),
                      path ? path : "(missing flag)");
        return NULL;
    }
    if (!*cache && api_client_get(c, &GVR_SECRETS, md(pod, "namespace"), secret,
                                  cache, err) < 0) {
        return NULL;
    }
    const char *b64 = jstr(json_object_get(*cache, "data"), rest + 1);
    char *out = NULL;
    size_t len = 0;
    if (!b64 ||
        base64_decode(b64, strlen(b64), BASE64_STRICT, &out, &len) < 0) {
        dpf_error_set(err, 422, "Invalid", "Secret %s/%s has no key %s",
                      md(pod, "namespace"), secret, rest + 1);
        return NULL;
    }
    return out;
}

static json_t *
pod_running_status(const json_t *pod, const char *ip)
{
    char now[40];
    kube_time_now(now, sizeof now);
    json_t *conds = json_array();
    const char *types[] = {"PodReadyToStartContainers", "Initialized",
                           "ContainersReady", "Ready", "PodScheduled"};
    for (int k = 0; k < 5; k++) {
        json_array_append_new(conds, json_pack("{s:s, s:s, s:s}", "type",
                                               types[k], "status", "True",
                                               "lastTransitionTime", now));
    }
    json_t *ctrs = json_array();
    size_t k;
    json_t *c;
    json_array_foreach(
        json_object_get(json_object_get(pod, "spec"), "containers"), k, c)
    {
        char id[128];
        snprintf(id, sizeof id, "dpf-emu://%s-%zu", md(pod, "uid"), k);
        json_array_append_new(
            ctrs, json_pack("{s:s?, s:s?, s:s, s:s, s:b, s:b, s:i, "
                            "s:{s:{s:s}}}",
                            "name", jstr(c, "name"), "image", jstr(c, "image"),
                            "imageID", "", "containerID", id, "ready", 1,
                            "started", 1, "restartCount", 0, "state", "running",
                            "startedAt", now));
    }
    return json_pack("{s:{s:s, s:o, s:s, s:s, s:[{s:s}], s:[{s:s}], s:s, "
                     "s:o, s:s}}",
                     "status", "phase", "Running", "conditions", conds,
                     "hostIP", ip, "podIP", ip, "hostIPs", "ip", ip, "podIPs",
                     "ip", ip, "startTime", now, "containerStatuses", ctrs,
                     "qosClass", "BestEffort");
}

/* Hand the DMS pod to a dmsd target. 0 or -errno with err. */
static int
dms_start(struct emu_fast *f, struct api_client *c, const json_t *pod,
          unsigned host, struct dpf_error *err)
{
    json_t *secret = NULL;
    char *ca = pod_secret_file(c, pod, pod_arg(pod, "--ca"), &secret, err);
    char *cert = ca ? pod_secret_file(c, pod, pod_arg(pod, "--tls_cert_file"),
                                      &secret, err)
                    : NULL;
    char *key = cert ? pod_secret_file(c, pod, pod_arg(pod, "--tls_key_file"),
                                       &secret, err)
                     : NULL;
    json_decref(secret);
    int rc = -EINVAL;
    if (key) {
        char *images = pod_host_path(pod, pod_arg(pod, "--image_folder"));
        char *state = pod_host_path(pod, pod_arg(pod, "--state_dir"));
        char *id = xasprintf("%s/%s", md(pod, "namespace"), md(pod, "name"));
        json_t *req = json_pack(
            "{s:s, s:s, s:s?, s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s?}",
            "op", "add", "id", id, "bind_address",
            pod_arg(pod, "--bind_address"), "ca_pem", ca, "cert_pem", cert,
            "key_pem", key, "rshim", pod_arg(pod, "--rshim"), "target_pci",
            pod_arg(pod, "--target_pci"), "sysfs", pod_arg(pod, "--sysfs"),
            "image_folder", images, "state_dir", state);
        unsigned k = host % f->n_pools;
        json_t *reply = NULL;
        rc = pool_call(&f->pools[k], req, &reply, err);
        json_decref(req);
        if (rc == 0 && !json_is_true(json_object_get(reply, "ok"))) {
            dpf_error_set(err, 500, "InternalError", "dmsd target %s: %s", id,
                          jstr(reply, "error") ? jstr(reply, "error")
                                               : "refused");
            rc = -EIO;
        }
        json_decref(reply);
        if (rc == 0) {
            pthread_mutex_lock(&f->mu);
            json_object_set_new(f->targets, id, json_integer(k));
            pthread_mutex_unlock(&f->mu);
            atomic_fetch_add(&f->dms_running, 1);
        }
        free(images);
        free(state);
        free(id);
    }
    if (key) {
        explicit_bzero(key, strlen(key));
    }
    free(ca);
    free(cert);
    free(key);
    return rc;
}

static void
dms_stop(struct emu_fast *f, const char *id)
{
    pthread_mutex_lock(&f->mu);
    json_t *k = json_object_get(f->targets, id);
    int pool = k ? (int) json_integer_value(k) : -1;
    if (k) {
        json_object_del(f->targets, id);
    }
    pthread_mutex_unlock(&f->mu);
    if (pool < 0) {
        return;
    }
    json_t *req = json_pack("{s:s, s:s}", "op", "remove", "id", id);
    json_t *reply = NULL;
    struct dpf_error err = {0};
    if (pool_call(&f->pools[pool], req, &reply, &err) < 0) {
        log_warn_rl("cannot stop a DMS target", "pod=%s error=\"%s\"", id,
                    err.message);
    }
    atomic_fetch_sub(&f->dms_running, 1);
    json_decref(req);
    json_decref(reply);
}

static void
job_pod_start(struct job *j, struct api_client *c)
{
    struct emu_fast *f = j->f;
    const char *ns = md(j->pod, "namespace"), *name = md(j->pod, "name");
    const char *ip = f->hosts[j->idx].ip;
    struct dpf_error err = {0};
    if (!strcmp(pod_container(j->pod), DPU_DMS_CONTAINER) &&
        dms_start(f, c, j->pod, j->idx, &err) < 0) {
        log_warn_rl("cannot start a DMS pod", "pod=%s/%s error=\"%s\"", ns,
                    name, err.message);
        job_later(j);
        return;
    }
    json_t *st = pod_running_status(j->pod, ip);
    int rc = api_client_patch(c, &GVR_PODS, ns, name, "status", API_PATCH_MERGE,
                              st, "dpf-emu", NULL, &err);
    json_decref(st);
    if (rc == -ENOENT) {
        char *id = xasprintf("%s/%s", ns, name);
        dms_stop(f, id);
        free(id);
    } else if (rc < 0) {
        log_warn_rl("cannot post a pod's status", "pod=%s/%s error=\"%s\"", ns,
                    name, err.message);
        job_later(j);
        return;
    } else {
        atomic_fetch_add(&f->pods_ready, 1);
    }
    job_free(j);
}

static void
job_pod_stop(struct job *j, struct api_client *c)
{
    const char *ns = md(j->pod, "namespace"), *name = md(j->pod, "name");
    char *id = xasprintf("%s/%s", ns, name);
    dms_stop(j->f, id);
    free(id);
    if (md(j->pod, "deletionTimestamp")) {
        /* the agent's last word on a terminated pod: delete it now */
        char *path = kube_path(&GVR_PODS, ns, name, NULL);
        json_t *opts =
            json_pack("{s:s, s:s, s:i, s:{s:s?}}", "kind", "DeleteOptions",
                      "apiVersion", "v1", "gracePeriodSeconds", 0,
                      "preconditions", "uid", md(j->pod, "uid"));
        char *body = json_dumps(opts, JSON_COMPACT);
        struct kube_request req = {.method = "DELETE",
                                   .path = path,
                                   .body = body,
                                   .body_len = strlen(body)};
        struct kube_response resp = {0};
        struct dpf_error err = {0};
        int rc = api_client_request(c, &req, &resp, &err);
        if (rc < 0 ||
            (resp.status >= 300 && resp.status != 404 && resp.status != 409)) {
            log_warn_rl("cannot delete a terminated pod",
                        "pod=%s/%s status=%ld", ns, name, resp.status);
        }
        kube_response_free(&resp);
        free(body);
        json_decref(opts);
        free(path);
    }
    job_free(j);
}

/* Loop thread: a pod changed (or went: gone). */
static void
pod_event(struct emu_fast *f, const json_t *pod, bool gone)
{
    const char *node = jstr(json_object_get(pod, "spec"), "nodeName");
    json_t *hi = node ? json_object_get(f->host_index, node) : NULL;
    if (!hi) {
        return;
    }
    unsigned host = (unsigned) json_integer_value(hi);
    char *key = xasprintf("%s/%s", md(pod, "namespace"), md(pod, "name"));
    const char *uid = md(pod, "uid") ? md(pod, "uid") : "";
    const char *had = json_string_value(json_object_get(f->seen, key));
    const char *ctr = pod_container(pod) ? pod_container(pod) : "";
    bool ours = !strcmp(ctr, DPU_DMS_CONTAINER) ||
                !strcmp(ctr, DPU_HOSTNETWORK_CONTAINER);
    if (gone || md(pod, "deletionTimestamp")) {
        if (had && strcmp(had, "stopping")) {
            json_object_set_new(f->seen, key, json_string("stopping"));
            struct job *j = job_new(f, JOB_POD_STOP, host);
            j->pod = json_deep_copy(pod);
            job_push(f, j);
        }
        if (gone) {
            json_object_del(f->seen, key);
        }
    } else if (!ours) {
        if (!had) {
            log_info("fast mode runs only the DPU controller's pods: this "
                     "one stays Pending",
                     "pod=%s node=%s", key, node);
            json_object_set_new(f->seen, key, json_string("ignored"));
        }
    } else if (!had || strcmp(had, uid)) {
        json_object_set_new(f->seen, key, json_string(uid));
        struct job *j = job_new(f, JOB_POD_START, host);
        j->pod = json_deep_copy(pod);
        job_push(f, j);
    }
    free(key);
}

/* The informer's text filter: a pod bound to another emulator's host is
 * skipped unparsed. Each emulator process watches every pod of the fleet
 * (no selector names a range of nodes), and parsing the others' took a
 * sixth of its CPU at 10,000 DPUs. Unsure (no spec.nodeName seen, an
 * escape in the value) = parse it. In compact JSON the bytes "nodeName":"
 * only occur as that key: a quote inside a string is escaped. */
static bool
pod_text_skip(void *arg, const char *text, size_t len)
{
    struct emu_fast *f = arg;
    static const char pat[] = "\"nodeName\":\"";
    const size_t pl = sizeof pat - 1;
    const char *p = text, *end = text + len;
    bool seen = false;
    while ((p = memmem(p, (size_t) (end - p), pat, pl))) {
        const char *v = p + pl;
        const char *q = memchr(v, '"', (size_t) (end - v));
        if (!q || memchr(v, '\\', (size_t) (q - v))) {
            return false;
        }
        if (json_object_getn(f->host_index, v, (size_t) (q - v))) {
            return false;
        }
        seen = true;
        p = q;
    }
    return seen;
}

static void
on_pod_add(void *arg, const json_t *obj)
{
    pod_event(arg, obj, false);
}

static void
on_pod_update(void *arg, const json_t *old, const json_t *obj)
{
    (void) old;
    pod_event(arg, obj, false);
}

static void
on_pod_delete(void *arg, const json_t *obj)
{
    pod_event(arg, obj, true);
}

/* --- hosts and DPUs ---------------------------------------------------- */

static void
job_host(struct job *j, struct api_client *c)
{
    struct emu_fast *f = j->f;
    struct fast_host *h = &f->hosts[j->idx];
    json_t *labels = base_labels(h->name);
    json_object_update(labels, f->det_labels);
    json_t *ann =
        json_pack("{s:s, s:s}", "dpu.emu/sysfs", f->sys,
                  "provisioning.dpu.nvidia.com/reboot-command", "skip");
    for (unsigned k = 0; k < f->cfg.dpus_per_host; k++) {
        char key[32];
        snprintf(key, sizeof key, "dpu.emu/rshim-%u", k);
        json_object_set_new(
            ann, key,
            json_string(f->dpus[j->idx * f->cfg.dpus_per_host + k].rshim_dir));
    }
    int rc = node_register(c, h->name, h->ip, labels, ann, NULL);
    json_decref(labels);
    json_decref(ann);
    if (rc < 0) {
        job_later(j);
        return;
    }
    atomic_store(&h->registered, true);
    atomic_fetch_add(&f->hosts_registered, 1);
    job_free(j);
}

static void
join_progress(void *arg, const char *line)
{
    log_debug("join", "dpu=%s step=\"%s\"", (const char *) arg, line);
}

static void
job_dpu_boot(struct job *j)
{
    struct emu_fast *f = j->f;
    struct fast_dpu *d = &f->dpus[j->idx];
    struct emu_bfcfg cfg;
    struct dpf_error err = {0};
    if (emu_bfcfg_parse(j->bfcfg ? j->bfcfg : "", j->len, &cfg, &err) < 0) {
        log_error("the DPU's bf.cfg cannot be applied", "dpu=%s error=\"%s\"",
                  d->dev_name, err.message);
        emu_bfcfg_free(&cfg);
        job_free(j);
        return;
    }
    if (j->fresh) {
        /* a new OS: the disk is what the bf.cfg writes, and no identity */
        nftw(d->disk, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
        dir_create_all(d->disk, 0755);
        if (emu_bfcfg_write_files(&cfg, d->disk, &err) < 0) {
            log_warn_rl("cannot write the bf.cfg's files",
                        "dpu=%s error=\"%s\"", d->dev_name, err.message);
        }
        unlink(d->kubeconfig);
        pthread_mutex_lock(&f->mu);
        kubeconfig_free(d->kc);
        d->kc = NULL;
        d->kc_gen++;
        free(d->node);
        d->node = NULL;
        pthread_mutex_unlock(&f->mu);
        atomic_fetch_add(&f->installs, 1);
        j->fresh = false; /* a retry only joins again */
    }
    const char *name = cfg.hostname;
    if (!name || !cfg.join_endpoint || !cfg.join_token) {
        log_error("the DPU's bf.cfg has no hostname or no kubeadm join line: "
                  "it cannot join a cluster",
                  "dpu=%s", d->dev_name);
        emu_bfcfg_free(&cfg);
        job_free(j);
        return;
    }
    struct kubeconfig *kc = NULL;
    struct kubeconfig_options ko = {.path = d->kubeconfig};
    if (kubeconfig_load(&ko, &kc, &err) < 0) {
        dpf_error_clear(&err);
        struct kube_bootstrap_join_options jo = {
            .endpoint = cfg.join_endpoint,
            .token = cfg.join_token,
            .ca_hash = cfg.join_ca_hash,
            .node_name = name,
            .kubeconfig_path = d->kubeconfig,
            .timeout_ms = 60000,
            .progress = join_progress,
            .progress_arg = d->dev_name,
        };
        if (kube_bootstrap_join(&jo, &err) < 0 ||
            kubeconfig_load(&ko, &kc, &err) < 0) {
            log_warn_rl("DPU join failed; trying again", "dpu=%s error=\"%s\"",
                        d->dev_name, err.message);
            emu_bfcfg_free(&cfg);
            job_later(j);
            return;
        }
        atomic_fetch_add(&f->joins, 1);
    }
    struct api_client *nc = api_client_create(kc, &err);
    int rc = -EIO;
    if (nc) {
        api_client_set_timeout(nc, FAST_API_TIMEOUT_MS);
        json_t *labels = base_labels(name);
        rc = node_register(nc, name, d->ip, labels, NULL, NULL);
        json_decref(labels);
    }
    if (rc < 0) {
        api_client_destroy(nc);
        kubeconfig_free(kc);
        emu_bfcfg_free(&cfg);
        job_later(j);
        return;
    }
    pthread_mutex_lock(&f->mu);
    bool first = !d->node;
    kubeconfig_free(d->kc);
    d->kc = kc;
    d->kc_gen++;
    free(d->node);
    d->node = xstrdup(name);
    struct api_client *dropped = d->handoff;
    d->handoff = nc;
    d->handoff_gen = d->kc_gen;
    pthread_mutex_unlock(&f->mu);
    api_client_destroy(dropped);
    if (first) {
        atomic_fetch_add(&f->dpus_registered, 1);
    }
    emu_bfcfg_free(&cfg);
    job_free(j);
}

/* Hosts first, then DPUs: [idx, idx + FAST_LEASE_BATCH) of that order. */
static void
job_leases(struct job *j, struct api_client *c)
{
    struct emu_fast *f = j->f;
    unsigned end = j->idx + FAST_LEASE_BATCH;
    for (unsigned k = j->idx; k < end && k < f->cfg.hosts + f->n_dpus; k++) {
        if (k < f->cfg.hosts) {
            if (atomic_load(&f->hosts[k].registered)) {
                lease_renew(c, f->hosts[k].name);
            }
            continue;
        }
        struct fast_dpu *d = &f->dpus[k - f->cfg.hosts];
        pthread_mutex_lock(&f->mu);
        bool live = d->up && d->kc && d->node;
        struct api_client *handed = NULL;
        if (d->handoff && d->handoff_gen == d->kc_gen) {
            handed = d->handoff;
            d->handoff = NULL;
        }
        bool stale = !handed && (!d->lease_client || d->lease_gen != d->kc_gen);
        struct kubeconfig *kc = live && stale ? kubeconfig_dup(d->kc) : NULL;
        unsigned gen = d->kc_gen;
        char *node = live ? xstrdup(d->node) : NULL;
        pthread_mutex_unlock(&f->mu);
        if (handed) {
            api_client_destroy(d->lease_client);
            d->lease_client = handed;
            d->lease_gen = gen;
        }
        if (!live) {
            continue;
        }
        if (kc) {
            struct dpf_error err = {0};
            api_client_destroy(d->lease_client);
            d->lease_client = api_client_create(kc, &err);
            d->lease_gen = gen;
            if (d->lease_client) {
                api_client_set_timeout(d->lease_client, FAST_API_TIMEOUT_MS);
            }
            kubeconfig_free(kc);
        }
        if (d->lease_client) {
            lease_renew(d->lease_client, node);
        }
        free(node);
    }
    atomic_fetch_sub(&f->lease_jobs_left, 1);
    job_free(j);
}

static void
on_lease_timer(void *arg, struct loop_timer *t)
{
    struct emu_fast *f = arg;
    /* A round still running when the next is due (the API server is
     * slower than the renewals) is not doubled: the next round waits. */
    if (atomic_load(&f->lease_jobs_left) > 0) {
        atomic_fetch_add(&f->lease_rounds_skipped, 1);
        loop_timer_reset(t, f->cfg.lease_renew_ms, 0);
        return;
    }
    unsigned n = f->cfg.hosts + f->n_dpus;
    atomic_store(&f->lease_jobs_left,
                 (n + FAST_LEASE_BATCH - 1) / FAST_LEASE_BATCH);
    for (unsigned k = 0; k < n; k += FAST_LEASE_BATCH) {
        job_push(f, job_new(f, JOB_LEASES, k));
    }
    loop_timer_reset(t, f->cfg.lease_renew_ms, 0);
}

/* Loop thread: a device's DPU went down or came up. */
static void
dpu_on_event(void *arg, enum rshim_emu_event ev, bool fresh, const char *bfcfg,
             size_t len)
{
    struct fast_dpu *d = arg;
    struct emu_fast *f = d->f;
    pthread_mutex_lock(&f->mu);
    d->up = ev == RSHIM_EMU_UP;
    pthread_mutex_unlock(&f->mu);
    if (ev != RSHIM_EMU_UP) {
        return;
    }
    struct job *j = job_new(f, JOB_DPU_BOOT, d->g);
    j->fresh = fresh;
    if (len) {
        j->bfcfg = xmalloc(len + 1);
        memcpy(j->bfcfg, bfcfg, len);
        j->bfcfg[len] = '\0';
        j->len = len;
    }
    if (!fresh && !len) {
        /* a reboot of the OS already there: its Node is posted again */
        pthread_mutex_lock(&f->mu);
        bool known = d->node != NULL;
        pthread_mutex_unlock(&f->mu);
        if (!known) {
            job_free(j);
            return;
        }
    }
    job_push(f, j);
}

/* --- workers and status ------------------------------------------------ */

static void *
worker_run(struct emu_fast *f, bool leases)
{
    struct dpf_error err = {0};
    struct api_client *c = api_client_create(f->kc, &err);
    if (!c) {
        log_error("worker without an API client", "error=\"%s\"", err.message);
        return NULL;
    }
    api_client_set_timeout(c, FAST_API_TIMEOUT_MS);
    api_client_set_user_agent(c, "dpf-emu/fast");
    for (;;) {
        pthread_mutex_lock(&f->mu);
        struct job *j = NULL;
        while (!f->stop && !(j = leases ? job_pop_locked(f, LANE_LEASE, N_LANES)
                                        : job_pop_locked(f, 0, LANE_LEASE))) {
            pthread_cond_wait(leases ? &f->lease_cv : &f->cv, &f->mu);
        }
        if (f->stop) {
            pthread_mutex_unlock(&f->mu);
            if (j) {
                job_free(j);
            }
            break;
        }
        pthread_mutex_unlock(&f->mu);
        switch (j->kind) {
        case JOB_HOST:
            job_host(j, c);
            break;
        case JOB_POD_START:
            job_pod_start(j, c);
            break;
        case JOB_POD_STOP:
            job_pod_stop(j, c);
            break;
        case JOB_DPU_BOOT:
            job_dpu_boot(j);
            break;
        case JOB_LEASES:
            job_leases(j, c);
            break;
        }
    }
    api_client_destroy(c);
    return NULL;
}

static void *
worker_main(void *arg)
{
    return worker_run(arg, false);
}

static void *
lease_worker_main(void *arg)
{
    return worker_run(arg, true);
}

static void
on_status_timer(void *arg, struct loop_timer *t)
{
    struct emu_fast *f = arg;
    json_t *st = json_pack(
        "{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}", "mode", "fast",
        "hosts", f->cfg.hosts, "dpus", f->n_dpus, "hostsRegistered",
        atomic_load(&f->hosts_registered), "dmsTargets",
        atomic_load(&f->dms_running), "podsRunning",
        atomic_load(&f->pods_ready), "installs", atomic_load(&f->installs),
        "joins", atomic_load(&f->joins), "dpuNodes",
        atomic_load(&f->dpus_registered), "retries", atomic_load(&f->failures));
    json_object_set_new(st, "leaseRoundsSkipped",
                        json_integer(atomic_load(&f->lease_rounds_skipped)));
    char *text = json_dumps(st, JSON_INDENT(2));
    file_write_atomic(f->status_path, text, strlen(text), 0644);
    free(text);
    json_decref(st);
    loop_timer_reset(t, 1000, 0);
}

/* --- life cycle -------------------------------------------------------- */

static int
fast_rlimit(struct emu_fast *f, struct dpf_error *err)
{
    /* per DPU: the boot FIFO and misc, and once it joined its kept-alive
     * Lease connection and its node client's, and its share of its host's
     * connections (targets' listeners are in dmsd): 4,000 DPUs held
     * 12,000 sockets and 8,000 device files. A fleet past the limit would
     * stall mid-way with connections that "cannot connect", so it is
     * refused up front */
    rlim_t want = (rlim_t) f->n_dpus * 5 + 256;
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max < want) {
        rl.rlim_max = want; /* root may raise the hard limit */
    }
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
        getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_max < want) {
            dpf_error_set(err, 400, "BadRequest",
                          "%u DPUs need %llu open files; the limit is %llu "
                          "(run as root or raise ulimit -n)",
                          f->n_dpus, (unsigned long long) want,
                          (unsigned long long) rl.rlim_max);
            return -EMFILE;
        }
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    return 0;
}

struct emu_fast *
emu_fast_up(struct loop *loop, const struct emu_fast_config *cfg,
            struct dpf_error *err)
{
    if (!cfg->state_dir || !cfg->kubeconfig || !cfg->dmsd) {
        dpf_error_set(err, 400, "BadRequest",
                      "fast mode needs --state-dir, --kubeconfig and a dmsd "
                      "binary (--dmsd)");
        return NULL;
    }
    if (cfg->hosts < 1 || cfg->first_host + cfg->hosts > 60000 ||
        cfg->dpus_per_host < 1 || cfg->dpus_per_host > 8) {
        dpf_error_set(err, 400, "BadRequest",
                      "--hosts %u --dpus-per-host %u: fast mode takes 1 to "
                      "60000 hosts (with --first-host) with 1 to 8 DPUs each",
                      cfg->hosts, cfg->dpus_per_host);
        return NULL;
    }
    if (access(cfg->dmsd, X_OK) < 0) {
        dpf_error_set(err, 400, "BadRequest", "--dmsd %s: %s", cfg->dmsd,
                      strerror(errno));
        return NULL;
    }
    struct emu_fast *f = xcalloc(1, sizeof *f);
    f->cfg = *cfg;
    f->loop = loop;
    f->n_dpus = cfg->hosts * cfg->dpus_per_host;
    if (!f->cfg.targets_per_dmsd) {
        f->cfg.targets_per_dmsd = 1000;
    }
    if (!f->cfg.workers) {
        f->cfg.workers = 8;
    }
    if (!f->cfg.fleet) {
        f->cfg.fleet = "f";
    }
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    pthread_cond_init(&f->lease_cv, NULL);
    f->targets = json_object();
    f->seen = json_object();
    f->host_index = json_object();
    f->sys = xasprintf("%s/sys", cfg->state_dir);
    f->status_path = xasprintf("%s/status.json", cfg->state_dir);
    signal(SIGPIPE, SIG_IGN);
    if (fast_rlimit(f, err) < 0) {
        goto fail;
    }
    int rc = dir_create_all(cfg->state_dir, 0755);
    if (rc < 0) {
        dpf_error_set(err, 500, "InternalError", "%s: %s", cfg->state_dir,
                      strerror(-rc));
        goto fail;
    }
    struct kubeconfig_options ko = {.path = cfg->kubeconfig};
    if (kubeconfig_load(&ko, &f->kc, err) < 0) {
        goto fail;
    }
    /* one sysfs tree for every host: they are alike */
    for (unsigned j = 0; j < cfg->dpus_per_host; j++) {
        char pf0[32], pf1[32];
        snprintf(pf0, sizeof pf0, "ens%uf0np0", j + 1);
        snprintf(pf1, sizeof pf1, "ens%uf1np1", j + 1);
        if (emu_sysfs_write_dpu(f->sys, j, pf0, pf1, 0, err) < 0) {
            goto fail;
        }
    }
    struct dpulet_dpu found[DPULET_DETECT_MAX];
    size_t n_found = 0;
    if (dpulet_detect_scan(f->sys, found, DPULET_DETECT_MAX, &n_found) < 0) {
        dpf_error_set(err, 500, "InternalError", "the DPU scan of %s failed",
                      f->sys);
        goto fail;
    }
    f->det_labels = dpulet_detect_labels(found, n_found, true);

    f->hosts = xcalloc(cfg->hosts, sizeof *f->hosts);
    f->dpus = xcalloc(f->n_dpus, sizeof *f->dpus);
    for (unsigned i = 0; i < cfg->hosts; i++) {
        struct fast_host *h = &f->hosts[i];
        unsigned n = cfg->first_host + i;
        snprintf(h->name, sizeof h->name, "dpfemu-%s-h%u", f->cfg.fleet, n);
        addr_of(1, n + 1, h->ip, sizeof h->ip);
        json_object_set_new(f->host_index, h->name, json_integer(i));
    }
    for (unsigned g = 0; g < f->n_dpus; g++) {
        struct fast_dpu *d = &f->dpus[g];
        d->f = f;
        d->g = g;
        d->i = g / cfg->dpus_per_host;
        d->j = g % cfg->dpus_per_host;
        addr_of(64, cfg->first_host * cfg->dpus_per_host + g + 1, d->ip,
                sizeof d->ip);
        snprintf(d->dev_name, sizeof d->dev_name, "pcie-0000:%02x:00.2",
                 FAST_PCI_BUS0 + d->j);
        d->dir = xasprintf("%s/dpus/h%u-d%u", cfg->state_dir, d->i, d->j);
        d->rshim_dir = xasprintf("%s/rshim", d->dir);
        d->disk = xasprintf("%s/disk", d->dir);
        d->kubeconfig = xasprintf("%s/kubelet.conf", d->dir);
        struct rshim_emu_config rc_cfg = {
            .dir = d->rshim_dir,
            .dev_name = d->dev_name,
            .dev_info = "BlueField-3(Rev 1)",
            .install_ms = cfg->install_ms,
            .reboot_ms = cfg->reboot_ms,
            .fw_version = "32.43.1014",
            .on_event = dpu_on_event,
            .event_arg = d,
            .volatile_files = true,
        };
        if (dir_create_all(d->disk, 0755) < 0 ||
            !(d->dev = rshim_emu_start(loop, &rc_cfg, err))) {
            if (!err->message[0]) {
                dpf_error_set(err, 500, "InternalError", "%s: cannot create",
                              d->disk);
            }
            goto fail;
        }
    }
    f->n_pools =
        (f->n_dpus + f->cfg.targets_per_dmsd - 1) / f->cfg.targets_per_dmsd;
    f->pools = xcalloc(f->n_pools, sizeof *f->pools);
    for (unsigned k = 0; k < f->n_pools; k++) {
        pthread_mutex_init(&f->pools[k].mu, NULL);
        f->pools[k].k = k;
        f->pools[k].in = -1;
        if (pool_spawn(f, &f->pools[k], err) < 0) {
            goto fail;
        }
    }
    f->threads = xcalloc(f->cfg.workers, sizeof *f->threads);
    for (; f->n_threads < f->cfg.workers; f->n_threads++) {
        if (thread_start(&f->threads[f->n_threads], NULL, "emu-worker",
                         worker_main, f) != 0) {
            dpf_error_set(err, 500, "InternalError", "cannot start threads");
            goto fail;
        }
    }
    for (; f->n_lease_threads < FAST_LEASE_WORKERS; f->n_lease_threads++) {
        if (thread_start(&f->lease_threads[f->n_lease_threads], NULL,
                         "emu-lease", lease_worker_main, f) != 0) {
            dpf_error_set(err, 500, "InternalError", "cannot start threads");
            goto fail;
        }
    }
    f->rest = kube_rest_create(loop, f->kc, err);
    if (!f->rest) {
        goto fail;
    }
    kube_rest_set_user_agent(f->rest, "dpf-emu/fast");
    /* the resync is a safety net only (every pod event is acted on as it
     * comes): each round parses every cached pod, 20,000 of them at
     * 10,000 DPUs */
    struct informer_options io = {
        .gvr = GVR_PODS,
        .resync_ms = 300000,
        .skip_text = pod_text_skip,
        .skip_arg = f,
    };
    f->pods = informer_create(f->rest, &io);
    struct informer_handlers hd = {on_pod_add, on_pod_update, on_pod_delete, f};
    informer_add_handlers(f->pods, &hd);
    informer_start(f->pods);
    for (unsigned i = 0; i < cfg->hosts; i++) {
        job_push(f, job_new(f, JOB_HOST, i));
    }
    if (cfg->lease_renew_ms > 0) {
        f->lease_timer =
            loop_timer_add(loop, cfg->lease_renew_ms, 0, on_lease_timer, f);
    }
    f->status_timer = loop_timer_add(loop, 0, 0, on_status_timer, f);
    log_info("fast fleet up", "hosts=%u dpus=%u dmsd_processes=%u workers=%u",
             cfg->hosts, f->n_dpus, f->n_pools, f->cfg.workers);
    return f;
fail:
    emu_fast_destroy(f);
    return NULL;
}

void
emu_fast_destroy(struct emu_fast *f)
{
    if (!f) {
        return;
    }
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_cond_broadcast(&f->cv);
    pthread_cond_broadcast(&f->lease_cv);
    pthread_mutex_unlock(&f->mu);
    for (unsigned k = 0; k < f->n_threads; k++) {
        pthread_join(f->threads[k], NULL);
    }
    for (unsigned k = 0; k < f->n_lease_threads; k++) {
        pthread_join(f->lease_threads[k], NULL);
    }
    struct job *j;
    while ((j = job_pop_locked(f, 0, N_LANES))) {
        job_free(j);
    }
    informer_destroy(f->pods);
    kube_rest_destroy(f->rest);
    if (f->lease_timer) {
        loop_timer_cancel(f->lease_timer);
    }
    if (f->status_timer) {
        loop_timer_cancel(f->status_timer);
    }
    for (unsigned k = 0; k < f->n_pools; k++) {
        struct fast_pool *p = &f->pools[k];
        if (p->in >= 0) {
            close(p->in); /* EOF: the pool stops its targets and exits */
        }
        if (p->pid > 0) {
            int st;
            for (int w = 0; w < 50 && waitpid(p->pid, &st, WNOHANG) == 0; w++) {
                usleep(100000);
            }
            if (kill(p->pid, SIGKILL) == 0) {
                waitpid(p->pid, &st, 0);
            }
        }
        if (p->out) {
            fclose(p->out);
        }
        pthread_mutex_destroy(&p->mu);
    }
    for (unsigned g = 0; f->dpus && g < f->n_dpus; g++) {
        struct fast_dpu *d = &f->dpus[g];
        rshim_emu_stop(d->dev);
        api_client_destroy(d->lease_client);
        api_client_destroy(d->handoff);
        kubeconfig_free(d->kc);
        free(d->node);
        free(d->dir);
        free(d->rshim_dir);
        free(d->disk);
        free(d->kubeconfig);
    }
    free(f->pools);
    free(f->threads);
    free(f->dpus);
    free(f->hosts);
    kubeconfig_free(f->kc);
    json_decref(f->det_labels);
    json_decref(f->targets);
    json_decref(f->seen);
    json_decref(f->host_index);
    free(f->sys);
    free(f->status_path);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    pthread_cond_destroy(&f->lease_cv);
    free(f);
}
