/* dpu: the DPU controller, DPF's provisioning phase machine (dpf-spec
 * §2.7), on the runtime. Each reconcile looks at status.phase, does that
 * phase's work, and writes the new phase and conditions:
 *
 *   Initializing      host Node has the OOB-bridge label; a DPUCluster is
 *                     assigned (dpu_cluster_allocate)        Initialized
 *   Node Effect       taint / customLabel / drain applied     NodeEffectReady
 *   Pending           the BFB is Ready                        BFBReady
 *   DMS Deployment    pod <dpu>-dms Running, port answers     DMSRunning
 *   OS Installing     install thread: BFB and bf.cfg to DMS   OSInstalled
 *   Rebooting         the host rebooted (uptime)              Rebooted
 *   Host Network Configuration  pod <dpu>-hostnetwork Ready   HostNetworkReady
 *   DPU Cluster Config  Node <dpu> Ready in the DPU cluster, labels set
 *   Ready             node effect lifted; DPU Node healthy    Ready
 *   Error             node effect lifted; retried with backoff
 *   Deleting          install cancelled, pods, Secret, bf.cfg, the DPU
 *                     cluster's Node removed; then the finalizer goes
 *
 * Better than DPF (dpf-spec §6): Error is not terminal: after 5 s,
 * doubling to 5 min, the DPU starts again from Initializing and
 * status.attempts counts the retries; status.lastError keeps the error.
 * While not Ready, the Ready condition names the reason and message of
 * what the DPU waits for (a BFB whose URL answers 404 shows the BFB's own
 * message). Installs run on threads (at most max_installs at once), with
 * progress in status.installProgress, so a restarted controller starts a
 * new install thread that asks DMS first what it already has.
 *
 * Drain: DPF asks an external NodeMaintenance operator; dpf has none, so
 * the controller cordons the host itself (spec.unschedulable, with the
 * annotation provisioning.dpu.nvidia.com/cordoned-by so an admin's cordon
 * survives), deletes the pods on it that are not mirror pods, DaemonSet
 * pods or DPF's own (owned by a DPU), waits until they are gone, and
 * uncordons when the effect is lifted. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "controllers/allocator.h"
#include "controllers/bfcfg.h"
#include "controllers/controllers.h"
#include "controllers/dcview.h"
#include "controllers/dms-client.h"
#include "controllers/dpu-pods.h"
#include "controllers/dpuset-util.h"
#include "controllers/install-slots.h"
#include "lib/base/base64.h"
#include "lib/base/log.h"
#include "lib/base/thread.h"
#include "lib/kube/api-client.h"
#include "lib/kube/controller.h"
#include "lib/kube/informer.h"
#include "lib/kube/kube-bootstrap.h"
#include "lib/kube/kube-cache.h"
#include "lib/kube/kube-events.h"
#include "lib/kube/kube-exec.h"
#include "lib/kube/kube-object.h"
#include "lib/kube/kube-write.h"
#include "lib/kube/kubeconfig.h"

LOG_MODULE(dpu);

#define DPU_FINALIZER PROV_GROUP "/dpu-protection"
#define LABEL_POD_DPU PROV_GROUP "/dpu-name"
#define REQUEUE_MS 5000     /* DPF's RequeueInterval */
#define READY_POLL_MS 30000 /* Ready: look at the DPU's Node again */
/* An install's progress goes to status this often; its end queues the
 * DPU at once. */
#define INSTALL_POLL_MS 3000
#define SLOT_POLL_MS 60000 /* waiting for a slot: safety net only */
/* A slot handed to the first waiting DPU is held for it this long: long
 * enough for its reconcile to come round on a busy controller, short
 * enough that a DPU that went away does not keep a slot */
#define SLOT_HOLD_MS 30000
/* The DPU's Node watched in its DPU cluster (dcview.h): safety net only */
#define VIEW_POLL_MS (10 * 60 * 1000)
/* Waiting for one of the DPU's pods: its changes queue the DPU (map_pod),
 * so the requeue is a safety net. At 10,000 DPUs a 5 s poll of every
 * waiting DPU was thousands of reconciles a second. */
#define POD_WAIT_MS 30000
#define BACKOFF_MIN_MS 5000   /* Error: first retry */
#define BACKOFF_MAX_MS 300000 /* Error: longest wait */
#define DMS_POD_TIMEOUT_MS (5 * 60 * 1000)
#define DMS_PORT 9339
/* Rebooting: exec in the DMS pod, bounded so a worker is not held long */
#define DPU_EXEC_UPTIME_MS 5000
#define DPU_EXEC_REBOOT_MS 10000
/* a reboot asked for and not seen (uptime) is asked for again after */
#define DPU_REBOOT_REPEAT_MS (10 * 60 * 1000)

static const struct kube_gvr dpu_gvr = {PROV_GROUP, "v1alpha1", "dpus", true};
static const struct kube_gvr bfb_gvr = {PROV_GROUP, "v1alpha1", "bfbs", true};
static const struct kube_gvr node_gvr = {"", "v1", "nodes", false};
static const struct kube_gvr pod_gvr = {"", "v1", "pods", true};
static const struct kube_gvr secret_gvr = {"", "v1", "secrets", true};

/* secondary caches, in the order of dpu_watches */
enum {
    C_DPU = 0,
    C_NODE = 1,
    C_BFB = 2,
    C_POD = 3,
    C_CLUSTER = 4,
    C_FLAVOR = 5
};

/* One DPU's install. The reconcile worker gathers everything from the
 * API (certificates, file names, the rendered bf.cfg) before the thread
 * starts; the thread only talks to DMS. */
struct install {
    char *key, *uid;
    pthread_t thread;
    atomic_bool cancel, done;
    _Atomic int64_t sent, total;
    char step[64]; /* under the controller's mu */
    int rc;
    char message[1024];
    /* inputs (owned) */
    struct dpu_ctrl *d;
    char *target, *ca, *cert, *key_pem, *dpu, *host;
    char *bfb_path, *bfb_version, *cfg_version, *cfg;
    size_t cfg_len;
    bool resume; /* a previous run reached activate: ask DMS first */
    /* DMS or the device refused the BFB's content (set by the thread
     * before done): the BFB's cached file is to be checked */
    bool image_refused;
    struct workqueue *q; /* gets key when the install ends */
    /* monotonic ms of the last progress put into status (the reconciles
     * of this DPU's key touch it, one at a time) */
    int64_t shown_ms;
};

struct dpu_ctrl {
    struct controller_ops ops;
    struct allocator *alloc; /* borrowed, required */
    struct kube_recorder *rec;
    char *bfb_dir;
    int max_installs;
    pthread_mutex_t mu;
    json_t *due;  /* key -> monotonic ms of the next Error retry (mu) */
    json_t *seen; /* key -> monotonic ms the DMS pod was first waited for */
    struct install **tasks;
    size_t n_tasks;
    /* the install slots, handed out in the order DPUs asked: an install
     * that ends queues the next DPU, so thousands of waiting DPUs do not
     * poll for a slot */
    struct install_slots *slots;
    struct dpu_certs_memo *memo; /* the shared client Secret, as last read */
    struct controller *ctl;
    struct dcviews *views;  /* the DPU clusters' Nodes (dcview.h) */
    struct kube_exec *exec; /* pods/exec in DMS pods (Rebooting) or NULL */
};

/* --- small helpers --- */

static const char *
str_at(const json_t *obj, const char *a, const char *b)
{
    const json_t *x = json_object_get(obj, a);
    return json_string_value(b ? json_object_get(x, b) : x);
}

/* One reconcile's state. */
struct dctx {
    struct controller *c;
    struct dpu_ctrl *d;
    const char *key, *ns, *name, *uid;
    const json_t *obj; /* cached, read-only */
    json_t *copy;      /* the status to write */
    json_t *node;      /* the host Node (ref) or NULL */
    json_t *secrets;   /* Secrets read in this reconcile, by name */
    /* the phases passed in this reconcile ("A -> B -> C"), told in one
     * PhaseChanged event once the status that records them is written */
    char path[256];
    int64_t gen;
    bool why_set;
    char why_reason[64];
    char why_msg[1100];
};

static json_t *
status_of(struct dctx *x)
{
    json_t *st = json_object_get(x->copy, "status");
    if (!json_is_object(st)) {
        st = json_object();
        json_object_set_new(x->copy, "status", st);
    }
    return st;
}

static const char *
phase_of(const json_t *obj)
{
    const char *p = str_at(json_object_get(obj, "status"), "phase", NULL);
    return p && *p ? p : "Initializing";
}

/* Move to phase. The moves are a Normal event too, so `describe` shows
 * the DPU's way through the phases beside its conditions: one event per
 * reconcile naming every phase it passed (a reconcile can pass four;
 * an event each was 8 writes per DPU), sent by status_put() once the
 * status is written. An Error has its own Warning event with the
 * reason. */
static void
set_phase(struct dctx *x, const char *phase)
{
    const char *was = phase_of(x->copy);
    if (strcmp(was, phase) != 0 && strcmp(phase, "Error") != 0) {
        size_t n = strlen(x->path);
        if (n == 0) {
            snprintf(x->path, sizeof x->path, "%s", was);
            n = strlen(x->path);
        }
        snprintf(x->path + n, sizeof x->path - n, " -> %s", phase);
    }
    json_object_set_new(status_of(x), "phase", json_string(phase));
}

static void cond(struct dctx *x, const char *type, const char *status,
                 const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Set a condition; a False one is also what the DPU waits for. */
static void
cond(struct dctx *x, const char *type, const char *status, const char *reason,
     const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    kube_condition_set(x->copy, type, status, reason, msg, x->gen, NULL);
    if (strcmp(status, "True") != 0 && strcmp(type, "Ready") != 0) {
        x->why_set = true;
        snprintf(x->why_reason, sizeof x->why_reason, "%s", reason);
        snprintf(x->why_msg, sizeof x->why_msg, "%s: %s", type, msg);
    }
}

/* Go to Error: the condition says why; lastError keeps it. */
static void fail(struct dctx *x, const char *type, const char *reason,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
fail(struct dctx *x, const char *type, const char *reason, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cond(x, type, "False", reason, "%s", msg);
    set_phase(x, "Error");
    json_object_set_new(status_of(x), "lastError",
                        json_sprintf("%s: %s", reason, msg));
    kube_recorder_event(x->d->rec, x->obj, "Warning", reason, "%s", msg);
    log_warn("DPU failed", "dpu=%s reason=%s error=\"%s\"", x->key, reason,
             msg);
}

/* The DPU's index on its host (from the NFD label holding its PCI
 * address), or 0. */
static int
dpu_index(struct dctx *x)
{
    const char *pci =
        str_at(json_object_get(x->obj, "metadata"), "labels", NULL);
    pci = json_string_value(json_object_get(
        json_object_get(json_object_get(x->obj, "metadata"), "labels"),
        LABEL_DPU_PCI));
    const json_t *nl =
        json_object_get(json_object_get(x->node, "metadata"), "labels");
    for (int i = 0; pci && i < DPU_MAX_INDEX; i++) {
        char *k = dpuset_nfd_key(i, "pci-address");
        const char *v = json_string_value(json_object_get(nl, k));
        free(k);
        if (v && !strcmp(v, pci)) {
            return i;
        }
    }
    return 0;
}

/* --- node effect --- */

struct effect_arg {
    const json_t *effect;
    bool apply;
    const char *requestor;
    int last; /* effect_fn's last answer: 1 = the try had a change */
};

static int
effect_fn(void *arg, json_t *obj)
{
    struct effect_arg *a = arg;
    a->last =
        dpuset_node_effect_edit(obj, a->effect, a->apply, a->requestor) ? 1 : 0;
    return a->last;
}

/* Apply or lift the DPU's node effect on its host. 0 or -errno. */
static int
node_effect_set(struct dctx *x, bool apply, struct dpf_error *err)
{
    const json_t *effect =
        json_object_get(json_object_get(x->obj, "spec"), "nodeEffect");
    const char *node =
        str_at(json_object_get(x->obj, "spec"), "nodeName", NULL);
    if (!x->node || !node) {
        return 0;
    }
    /* from the cache's copy: a host Node changes seldom, and a stale
     * copy costs a 409 and a read. A Node that already carries the
     * effect costs nothing; it is logged only when a write happened (the
     * last try had a change and succeeded). */
    struct effect_arg a = {effect, apply, x->key, 0};
    int rc =
        kube_update_retry_from(controller_rest(x->c), &node_gvr, NULL, node,
                               NULL, x->node, effect_fn, &a, NULL, err);
    if (rc == 0 && a.last == 1) {
        log_info(apply ? "node effect applied" : "node effect lifted",
                 "dpu=%s node=%s", x->key, node);
    }
    return rc == -ENOENT ? 0 : rc;
}

/* Drain: delete the host's evictable pods. The number still there, or
 * -errno. */
static int
drain_pods(struct dctx *x, struct dpf_error *err)
{
    const char *node =
        str_at(json_object_get(x->obj, "spec"), "nodeName", NULL);
    char *path = kube_path(&pod_gvr, NULL, NULL, NULL);
    struct dbuf q = {0};
    char *fs = xasprintf("spec.nodeName=%s", node);
    kube_query_add(&q, "fieldSelector", fs);
    free(fs);
    json_t *list = NULL;
    int rc = kube_rest_json_wait(controller_rest(x->c), "GET", path,
                                 q.data ? q.data : "", NULL, NULL, &list, err);
    free(path);
    dbuf_free(&q);
    if (rc < 0) {
        return rc;
    }
    int left = 0;
    size_t i;
    json_t *pod;
    json_array_foreach(json_object_get(list, "items"), i, pod)
    {
        if (!dpuset_pod_evictable(pod)) {
            continue;
        }
        left++;
        if (kube_is_deleting(pod)) {
            continue;
        }
        const json_t *md = json_object_get(pod, "metadata");
        char *p = kube_path(&pod_gvr, str_at(md, "namespace", NULL),
                            str_at(md, "name", NULL), NULL);
        struct dpf_error e2 = {0};
        if (kube_rest_json_wait(controller_rest(x->c), "DELETE", p, NULL, NULL,
                                NULL, NULL, &e2) == 0) {
            log_info("drain: pod deleted", "dpu=%s pod=%s/%s", x->key,
                     str_at(md, "namespace", NULL), str_at(md, "name", NULL));
        }
        free(p);
    }
    json_decref(list);
    return left;
}

/* --- cluster allocation (dpf-spec §2.5) --- */

/* Assign the DPU a DPUCluster and write it to spec.cluster: the shared
 * allocator (controllers/allocator.h), told first about every DPUCluster
 * in our cache so it also works without the dpucluster controller in
 * this process. 0, or -errno with err saying why none fits. */
static int
dpu_cluster_allocate(struct dctx *x, struct dpf_error *err)
{
    char *ns = NULL, *name = NULL;
    int rc;
    json_t *all = kube_cache_list(controller_cache(x->c, C_CLUSTER));
    size_t i;
    json_t *dc;
    json_array_foreach(all, i, dc)
    {
        allocator_cluster_set(x->d->alloc, dc);
    }
    json_decref(all);
    json_t *patched = NULL;
    rc = allocator_assign(x->d->alloc, x->obj, &ns, &name, &patched, err);
    /* the next reconcile must see the assignment even if the watch lags,
     * or it assigns (and patches) again */
    kube_cache_note_write(controller_cache(x->c, 0), patched);
    json_decref(patched);
    /* the allocator logs the assignment */
    free(ns);
    free(name);
    return rc;
}

/* --- the DPU cluster --- */

/* The DPU's DPUCluster's admin kubeconfig, from its kubeconfig Secret
 * (key admin.conf). NULL with err. */
static struct kubeconfig *
dpu_cluster_kubeconfig(struct dctx *x, struct dpf_error *err)
{
    const json_t *cl =
        json_object_get(json_object_get(x->obj, "spec"), "cluster");
    const char *cns = str_at(cl, "namespace", NULL);
    const char *cname = str_at(cl, "name", NULL);
    if (!cname || !*cname) {
        dpf_error_set(err, 404, "NotFound", "no DPUCluster assigned");
        return NULL;
    }
    if (!cns || !*cns) {
        cns = x->ns;
    }
    json_t *dc =
        kube_cache_get_name(controller_cache(x->c, C_CLUSTER), cns, cname);
    const char *sname =
        dc ? str_at(json_object_get(dc, "spec"), "kubeconfig", NULL) : NULL;
    if (!sname || !*sname) {
        dpf_error_set(err, 404, "NotFound", "DPUCluster %s/%s %s", cns, cname,
                      dc ? "has no spec.kubeconfig yet" : "not found");
        json_decref(dc);
        return NULL;
    }
    char *path = kube_path(&secret_gvr, cns, sname, NULL);
    json_t *sec = NULL;
    int rc = kube_rest_json_wait(controller_rest(x->c), "GET", path, NULL, NULL,
                                 NULL, &sec, err);
    free(path);
    json_decref(dc);
    if (rc < 0) {
        return NULL;
    }
    const char *b64 = str_at(json_object_get(sec, "data"), "admin.conf", NULL);
    char *text = NULL;
    size_t len = 0;
    struct kubeconfig *kc = NULL;
    if (!b64 ||
        base64_decode(b64, strlen(b64), BASE64_LENIENT, &text, &len) < 0) {
        dpf_error_set(err, 422, "Invalid",
                      "Secret %s/%s has no valid key admin.conf", cns, sname);
        goto out;
    }
    if (kubeconfig_parse(text, len, NULL, NULL, &kc, err) < 0) {
        kc = NULL;
    }
    explicit_bzero(text, len);
    free(text);
out:
    json_decref(sec);
    return kc;
}

/* A client for the DPU's DPUCluster. NULL with err. */
static struct api_client *
dpu_cluster_client(struct dctx *x, struct dpf_error *err)
{
    struct kubeconfig *kc = dpu_cluster_kubeconfig(x, err);
    if (!kc) {
        return NULL;
    }
    struct api_client *client = api_client_create(kc, err);
    kubeconfig_free(kc);
    if (client) {
        api_client_set_timeout(client, 10000);
    }
    return client;
}

/* --- pods --- */

static char *
pod_name(struct dctx *x, const char *suffix)
{
    return xasprintf("%s-%s", x->name, suffix);
}

static void
pods_in(struct dctx *x, struct dpu_pods_in *in)
{
    memset(in, 0, sizeof *in);
    in->dpu = x->obj;
    in->host = x->node;
    in->index = dpu_index(x);
    in->bfb_dir = x->d->bfb_dir;
    const json_t *taint = json_object_get(
        json_object_get(json_object_get(x->obj, "spec"), "nodeEffect"),
        "taint");
    in->taint_key = str_at(taint, "key", NULL);
    in->taint_value = str_at(taint, "value", NULL);
    in->taint_effect = str_at(taint, "effect", NULL);
}

/* The pods, from dpu-pods.h; NULL with err on a bad input. */
static json_t *
dpu_dms_pod_build(struct dctx *x, struct dpf_error *err)
{
    struct dpu_pods_in in;
    pods_in(x, &in);
    return dpu_pod_dms(&in, err);
}

static json_t *
dpu_hostnetwork_pod_build(struct dctx *x, struct dpf_error *err)
{
    struct dpu_pods_in in;
    pods_in(x, &in);
    return dpu_pod_hostnetwork(&in, err);
}

/* Create pod <dpu>-<suffix> from build unless it exists; the cached pod
 * (new reference) or NULL (just created, or failed: rc). */
static json_t *
pod_ensure(struct dctx *x, const char *suffix,
           json_t *(*build)(struct dctx *, struct dpf_error *), int *rc,
           struct dpf_error *err)
{
    char *pname = pod_name(x, suffix);
    json_t *pod =
        kube_cache_get_name(controller_cache(x->c, C_POD), x->ns, pname);
    *rc = 0;
    if (!pod) {
        json_t *p = build(x, err);
        if (!p) {
            *rc = -EINVAL;
            free(pname);
            return NULL;
        }
        json_t *md = json_object_get(p, "metadata");
        json_object_set_new(md, "name", json_string(pname));
        json_object_set_new(md, "namespace", json_string(x->ns));
        json_t *labels = json_object_get(md, "labels");
        if (!json_is_object(labels)) {
            labels = json_object();
            json_object_set_new(md, "labels", labels);
        }
        json_object_set_new(labels, LABEL_POD_DPU, json_string(x->name));
        kube_owner_ref_set(p, x->obj, true);
        char *path = kube_path(&pod_gvr, x->ns, NULL, NULL);
        char *made = NULL;
        size_t made_len = 0;
        *rc = kube_rest_text_wait(controller_rest(x->c), "POST", path, NULL, p,
                                  NULL, &made, &made_len, err);
        free(path);
        json_decref(p);
        /* the next reconcile sees it even before the watch does (it would
         * POST again and earn a 409) */
        kube_cache_note_text(controller_cache(x->c, C_POD), made, made_len);
        free(made);
        if (*rc == -EEXIST) {
            *rc = 0;
        }
        if (*rc == 0) {
            log_info("pod created", "dpu=%s pod=%s/%s", x->key, x->ns, pname);
        }
    }
    free(pname);
    return pod;
}

/* Pod <dpu>-<suffix> from the cache (new reference) or NULL. */
static json_t *
pod_get(struct dctx *x, const char *suffix)
{
    char *pname = pod_name(x, suffix);
    json_t *pod =
        kube_cache_get_name(controller_cache(x->c, C_POD), x->ns, pname);
    free(pname);
    return pod;
}

/* Delete pod <dpu>-<suffix> at once (grace 0). 0, or -errno other than
 * -ENOENT. */
static int
pod_delete(struct dctx *x, const char *suffix)
{
    char *pname = pod_name(x, suffix);
    char *path = kube_path(&pod_gvr, x->ns, pname, NULL);
    struct dpf_error err = {0};
    int rc =
        kube_rest_json_wait(controller_rest(x->c), "DELETE", path,
                            "gracePeriodSeconds=0", NULL, NULL, NULL, &err);
    if (rc < 0 && rc != -ENOENT) {
        log_warn_rl("cannot delete a pod", "pod=%s/%s error=\"%s\"", x->ns,
                    pname, err.message);
    }
    free(path);
    free(pname);
    return rc;
}

/* TCP connect with a 5 s timeout (DPF's DMS readiness check). */
static int
tcp_probe(const char *ip, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t) port)};
    if (!ip || inet_pton(AF_INET, ip, &sa.sin_addr) != 1) {
        return -EINVAL;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -errno;
    }
    int rc = connect(fd, (struct sockaddr *) &sa, sizeof sa);
    if (rc < 0 && errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        rc = poll(&p, 1, 5000) == 1 ? 0 : -ETIMEDOUT;
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (rc == 0 &&
            (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr)) {
            rc = -(soerr ? soerr : errno);
        }
    } else if (rc < 0) {
        rc = -errno;
    }
    close(fd);
    return rc;
}

/* --- the install thread --- */

static struct install *
task_find(struct dpu_ctrl *d, const char *key, size_t *at)
{
    for (size_t i = 0; i < d->n_tasks; i++) {
        if (!strcmp(d->tasks[i]->key, key)) {
            if (at) {
                *at = i;
            }
            return d->tasks[i];
        }
    }
    return NULL;
}

static void
install_free(struct install *t)
{
    free(t->key);
    free(t->uid);
    free(t->target);
    free(t->ca);
    free(t->cert);
    if (t->key_pem) {
        explicit_bzero(t->key_pem, strlen(t->key_pem));
        free(t->key_pem);
    }
    free(t->dpu);
    free(t->host);
    free(t->bfb_path);
    free(t->bfb_version);
    free(t->cfg_version);
    free(t->cfg);
    free(t);
}

static void
task_drop(struct dpu_ctrl *d, const char *key)
{
    pthread_mutex_lock(&d->mu);
    size_t i;
    struct install *t = task_find(d, key, &i);
    if (t) {
        d->tasks[i] = d->tasks[--d->n_tasks];
    }
    pthread_mutex_unlock(&d->mu);
    if (t) {
        atomic_store(&t->cancel, true);
        pthread_join(t->thread, NULL);
        install_free(t);
    }
}

static void
install_step(struct install *t, const char *step)
{
    pthread_mutex_lock(&t->d->mu);
    snprintf(t->step, sizeof t->step, "%s", step);
    pthread_mutex_unlock(&t->d->mu);
}

static void
install_progress(void *arg, uint64_t sent, uint64_t total)
{
    struct install *t = arg;
    atomic_store(&t->sent, (int64_t) sent);
    atomic_store(&t->total, (int64_t) total);
}

/* Queue the DPUs that were handed an install slot, ahead of the others;
 * takes wake. */
static void
slot_wake(struct workqueue *q, json_t *wake)
{
    size_t i;
    json_t *v;
    json_array_foreach(wake, i, v)
    {
        if (q) {
            workqueue_set_urgent(q, json_string_value(v), true);
            workqueue_add(q, json_string_value(v));
        }
    }
    json_decref(wake);
}

/* The install (dpf-spec §2.7.2) on its own thread: DPU mode, the BFB
 * (DMS answers at once when it has that version already: a resumed
 * install sends nothing twice), the bf.cfg, Activate (up to 10 tries),
 * then RebootStatus (after 0.2 s, backing off to every 3 s) until the DPU
 * booted. A resumed install
 * whose previous run reached activate asks RebootStatus first. */
static void *
install_main(void *arg)
{
    struct install *t = arg;
    struct dpf_error err = {0};
    struct dms_client_config cfg = {.target = t->target,
                                    .ca_pem = t->ca,
                                    .cert_pem = t->cert,
                                    .key_pem = t->key_pem,
                                    .dpu = t->dpu,
                                    .host = t->host,
                                    .cancel = &t->cancel};
    struct dms_client *c = dms_client_create(&cfg, &err);
    int rc = c ? 0 : -EINVAL;
    bool active = false;
    enum dms_reboot_result rs = DMS_REBOOT_UNKNOWN;
    char msg[256] = "";
    if (rc == 0 && t->resume) {
        install_step(t, "reboot");
        rc = dms_reboot_status(c, &active, &rs, msg, sizeof msg, &err);
        if (rc == 0 && (active || rs == DMS_REBOOT_SUCCESS)) {
            goto wait_reboot; /* the previous run got that far */
        }
        rc = 0; /* start over: DMS skips what it has */
    }
    if (rc == 0) {
        install_step(t, "mode");
        rc = dms_set_mode_dpu(c, &err);
    }
    if (rc == 0) {
        install_step(t, "bfb");
        struct dms_install in = {.version = t->bfb_version,
                                 .path = t->bfb_path,
                                 .progress = install_progress,
                                 .arg = t};
        rc = dms_install_file(c, &in, NULL, &err);
        t->image_refused = rc == -EIO; /* an InstallError: the content */
    }
    if (rc == 0) {
        install_step(t, "bfcfg");
        struct dms_install in = {
            .version = t->cfg_version, .data = t->cfg, .len = t->cfg_len};
        rc = dms_install_file(c, &in, NULL, &err);
    }
    if (rc == 0) {
        install_step(t, "activate");
        char *v = xasprintf("%s;%s", t->bfb_version, t->cfg_version);
        for (int i = 0; i < 10; i++) {
            rc = dms_activate(c, v, false, &err);
            if (rc == 0 || !dms_error_retriable(rc) ||
                atomic_load(&t->cancel)) {
                /* dmsd checks the whole image before it writes a byte
                 * to the device: an ActivateError may be its content */
                t->image_refused = rc == -EIO;
                break;
            }
            for (int k = 0; k < 30 && !atomic_load(&t->cancel); k++) {
                usleep(100 * 1000); /* 3 s, cancellable */
            }
        }
        free(v);
    }
    if (rc == 0) {
        install_step(t, "reboot");
    wait_reboot:
        /* asked every 0.2 s for the first 3 s, every second until 30 s,
         * then every 3 s: a DPU that boots fast (emulated, or an install
         * DMS had already done) does not hold its install slot for a
         * whole period. At 16 installs at once a 3 s first wait capped a
         * fleet at 320 DPUs a minute; with waits doubling from 0.2 s, a
         * boot of 1.5 s under load was seen at 3 s, and the last 1,700 of
         * 10,000 DPUs went through 64 slots at 4 s an install. A real
         * DPU's boot of minutes costs a call every 3 s. */
        int64_t wait_ms = 200;
        int64_t asked_from = time_mono_ms();
        for (int64_t end = asked_from + 30 * 60 * 1000;;) {
            rc = dms_reboot_status(c, &active, &rs, msg, sizeof msg, &err);
            if (rc < 0 && !dms_error_retriable(rc)) {
                break;
            }
            if (rc == 0 && !active) {
                break;
            }
            if (atomic_load(&t->cancel) || time_mono_ms() > end) {
                rc = atomic_load(&t->cancel) ? -ECANCELED : -ETIMEDOUT;
                dpf_error_set(&err, 504, "Timeout",
                              "the DPU did not finish booting the BFB");
                break;
            }
            for (int64_t i = 0; i < wait_ms / 100 && !atomic_load(&t->cancel);
                 i++) {
                usleep(100 * 1000); /* cancellable */
            }
            int64_t age = time_mono_ms() - asked_from;
            wait_ms = age < 3000 ? 200 : age < 30000 ? 1000 : 3000;
        }
        if (rc == 0 && rs != DMS_REBOOT_SUCCESS) {
            /* a failure that is not retriable: the device refused the
             * stream (a bad CRC, a truncated image) */
            t->image_refused = rs == DMS_REBOOT_FAILURE;
            rc = -EIO;
            dpf_error_set(&err, 500, "RebootFailed",
                          "DMS reports the DPU's reboot %s: %s",
                          rs == DMS_REBOOT_RETRIABLE_FAILURE ? "failed "
                                                               "(retriable)"
                          : rs == DMS_REBOOT_FAILURE         ? "failed"
                                                     : "in an unknown state",
                          msg);
        }
    }
    if (rc == 0) {
        install_step(t, "done");
    }
    t->rc = rc;
    if (rc < 0) {
        pthread_mutex_lock(&t->d->mu);
        snprintf(t->message, sizeof t->message, "%.63s: %.900s", t->step,
                 err.message[0] ? err.message : strerror(-rc));
        pthread_mutex_unlock(&t->d->mu);
    }
    dms_client_destroy(c);
    atomic_store(&t->done, true);
    /* the DPU's reconcile takes the result now, and the first DPU waiting
     * for a slot gets this one */
    json_t *wake = NULL;
    install_slots_release(t->d->slots, t->key, time_mono_ms(), &wake);
    if (t->q) {
        workqueue_add(t->q, t->key);
    }
    slot_wake(t->q, wake);
    return NULL;
}

/* Start t (its inputs filled) when it gets an install slot: -EBUSY while
 * the DPU waits in line for one, -EAGAIN (t is freed either way). */
static int
task_start(struct dpu_ctrl *d, struct install *t)
{
    struct workqueue *q = t->q;
    json_t *wake = NULL;
    if (install_slots_take(d->slots, t->key, time_mono_ms(), &wake) < 0) {
        slot_wake(q, wake);
        install_free(t);
        return -EBUSY;
    }
    slot_wake(q, wake);
    pthread_mutex_lock(&d->mu);
    t->d = d;
    snprintf(t->step, sizeof t->step, "starting");
    if (thread_start(&t->thread, NULL, "dpu-install", install_main, t) != 0) {
        pthread_mutex_unlock(&d->mu);
        install_slots_release(d->slots, t->key, time_mono_ms(), &wake);
        slot_wake(q, wake);
        install_free(t);
        return -EAGAIN;
    }
    d->tasks = xrealloc(d->tasks, (d->n_tasks + 1) * sizeof *d->tasks);
    d->tasks[d->n_tasks++] = t;
    pthread_mutex_unlock(&d->mu);
    return 0;
}

/* --- phases --- */

/* Each returns the requeue delay in ms (0 = at once, the status write
 * brings the key back; < 0 = none). */

static int64_t
do_initializing(struct dctx *x)
{
    const char *node =
        str_at(json_object_get(x->obj, "spec"), "nodeName", NULL);
    if (!x->node) {
        cond(x, "Initialized", "False", "NodeNotFound",
             "host node %s not found", node ? node : "(none)");
        return REQUEUE_MS;
    }
    const json_t *nl =
        json_object_get(json_object_get(x->node, "metadata"), "labels");
    if (!json_object_get(nl, NFD_OOB_BRIDGE)) {
        cond(x, "Initialized", "False", "DPUOOBBridgeNotConfigured",
             "host node %s has no label %s: the br-dpu bridge with an IPv4 "
             "default route is missing",
             node, NFD_OOB_BRIDGE);
        return REQUEUE_MS;
    }
    const json_t *cl =
        json_object_get(json_object_get(x->obj, "spec"), "cluster");
    const char *cname = str_at(cl, "name", NULL);
    if (!cname || !*cname) {
        struct dpf_error err = {0};
        if (dpu_cluster_allocate(x, &err) < 0) {
            cond(x, "Initialized", "False", "DPUClusterNotReady", "%s",
                 err.message);
            return REQUEUE_MS;
        }
        return 0; /* the spec update brings us back */
    }
    if (x->d->alloc) {
        allocator_save(x->d->alloc, x->obj);
    }
    cond(x, "Initialized", "True", "Initialized", "DPU is initialized");
    set_phase(x, "Node Effect");
    return 0;
}

static int64_t
do_node_effect(struct dctx *x)
{
    const json_t *effect =
        json_object_get(json_object_get(x->obj, "spec"), "nodeEffect");
    struct dpf_error err = {0};
    if (!x->node) {
        cond(x, "NodeEffectReady", "False", "NodeNotFound",
             "host node not found");
        return REQUEUE_MS;
    }
    if (node_effect_set(x, true, &err) < 0) {
        cond(x, "NodeEffectReady", "False", "ErrorOccured",
             "cannot apply the node effect: %s", err.message);
        return REQUEUE_MS;
    }
    if (json_is_object(json_object_get(effect, "drain"))) {
        int left = drain_pods(x, &err);
        if (left < 0) {
            cond(x, "NodeEffectReady", "False", "ErrorOccured",
                 "cannot drain the host: %s", err.message);
            return REQUEUE_MS;
        }
        if (left > 0) {
            cond(x, "NodeEffectReady", "False", "Draining",
                 "waiting for %d pod(s) to leave the host", left);
            return 2000;
        }
    }
    cond(x, "NodeEffectReady", "True", "NodeEffectReady",
         "node effect applied");
    set_phase(x, "Pending");
    return 0;
}

static int64_t
do_pending(struct dctx *x)
{
    const char *bfb = str_at(json_object_get(x->obj, "spec"), "bfb", NULL);
    json_t *b =
        bfb ? kube_cache_get_name(controller_cache(x->c, C_BFB), x->ns, bfb)
            : NULL;
    if (!b) {
        cond(x, "BFBReady", "False", "GetBFBFailed", "BFB %s/%s not found",
             x->ns, bfb ? bfb : "");
        return REQUEUE_MS;
    }
    const char *phase = str_at(json_object_get(b, "status"), "phase", NULL);
    const char *verify =
        str_at(json_object_get(json_object_get(b, "metadata"), "annotations"),
               BFB_VERIFY_ANNOTATION, NULL);
    if (verify) {
        cond(x, "BFBReady", "False", "BFBVerifying",
             "BFB %s/%s is checking its cached file, asked for by %s", x->ns,
             bfb, verify);
        json_decref(b);
        return -1; /* the BFB's changes bring us back */
    }
    if (!phase || strcmp(phase, "Ready") != 0) {
        json_t *rc = kube_condition_find(b, "Ready");
        const char *reason = str_at(rc, "reason", NULL);
        const char *msg = str_at(rc, "message", NULL);
        cond(x, "BFBReady", "False", "BFBNotReady", "BFB %s/%s is %s%s%s%s",
             x->ns, bfb, phase ? phase : "new", reason ? " (" : "",
             reason ? reason : "", reason ? ")" : "");
        if (msg && *msg) {
            /* the BFB's own words: "GET <url>: HTTP 404; retrying in 5 s" */
            cond(x, "BFBReady", "False", reason ? reason : "BFBNotReady",
                 "BFB %s/%s is %s: %s", x->ns, bfb, phase ? phase : "new", msg);
        }
        json_decref(b);
        return -1; /* the BFB's changes bring us back */
    }
    json_decref(b);
    cond(x, "BFBReady", "True", "BFBReady", "BFB %s is ready", bfb);
    set_phase(x, "DMS Deployment");
    return 0;
}

static int64_t
since_first_wait(struct dctx *x)
{
    pthread_mutex_lock(&x->d->mu);
    json_t *s = json_object_get(x->d->seen, x->key);
    int64_t now = time_mono_ms();
    if (!s) {
        json_object_set_new(x->d->seen, x->key, json_integer(now));
    }
    int64_t t = s ? json_integer_value(s) : now;
    pthread_mutex_unlock(&x->d->mu);
    return now - t;
}

static void
forget_wait(struct dctx *x)
{
    pthread_mutex_lock(&x->d->mu);
    json_object_del(x->d->seen, x->key);
    pthread_mutex_unlock(&x->d->mu);
}

static int64_t
do_dms_deployment(struct dctx *x)
{
    struct dpf_error err = {0};
    int rc = 0;
    if (!x->node) {
        cond(x, "DMSRunning", "False", "NodeNotFound", "host node not found");
        return REQUEUE_MS;
    }
    /* The DMS server and client certificates (dpu-pods.h; a build
     * whose certificate code is a stub goes on without them), made
     * before the pod: once the pod is there, the certificates were
     * checked in this phase already and are not read again on every
     * look at the pod (thousands of DPUs wait here at once). */
    int64_t recheck = 0;
    char *pname = pod_name(x, "dms");
    json_t *have =
        kube_cache_get_name(controller_cache(x->c, C_POD), x->ns, pname);
    free(pname);
    rc = have ? 0
              : dpu_certs_ensure(controller_rest(x->c), x->obj,
                                 dpuset_node_internal_ip(x->node), NULL,
                                 x->d->memo, &recheck, &err);
    json_decref(have);
    if (rc == -EINPROGRESS) {
        cond(x, "DMSRunning", "False", "WaitingForCertificate",
             "waiting for the DMS certificates to be signed");
        return 2000;
    }
    if (rc < 0 && rc != -ENOSYS) {
        cond(x, "DMSRunning", "False", "ErrorOccured",
             "cannot issue the DMS certificates: %s", err.message);
        return REQUEUE_MS;
    }
    memset(&err, 0, sizeof err);
    rc = 0;
    json_t *pod = pod_ensure(x, "dms", dpu_dms_pod_build, &rc, &err);
    if (rc < 0) {
        cond(x, "DMSRunning", "False", "ErrorOccured",
             "cannot create pod %s-dms: %s", x->name, err.message);
        return REQUEUE_MS;
    }
    if (!pod) {
        cond(x, "DMSRunning", "False", "DMSPodCreated",
             "pod %s-dms created; waiting for it to run", x->name);
        return POD_WAIT_MS;
    }
    const json_t *st = json_object_get(pod, "status");
    const char *phase = str_at(st, "phase", NULL);
    int64_t res = REQUEUE_MS;
    if (phase && !strcmp(phase, "Failed")) {
        /* The failed pod stays until the retry (do_error) deletes it: were
         * it deleted here and this status write lost to a conflict, the
         * next pass would find no pod, make a new one and forget the
         * failure. */
        fail(x, "DMSRunning", "DMSPodFailed", "pod %s-dms failed: %s", x->name,
             str_at(st, "message", NULL) ? str_at(st, "message", NULL) : "");
        forget_wait(x);
        res = 0;
    } else if (phase && !strcmp(phase, "Running")) {
        const char *ip = str_at(st, "podIP", NULL);
        int port = DMS_PORT + dpu_index(x);
        int prc = tcp_probe(ip, port);
        if (prc == 0) {
            cond(x, "DMSRunning", "True", "DMSRunning", "DMS is running");
            set_phase(x, "OS Installing");
            forget_wait(x);
            res = 0;
        } else {
            cond(x, "DMSRunning", "False", "DMSNotReachable",
                 "pod %s-dms runs but %s:%d does not answer: %s", x->name,
                 ip ? ip : "(no IP)", port, strerror(-prc));
        }
    } else if (since_first_wait(x) > DMS_POD_TIMEOUT_MS) {
        fail(x, "DMSRunning", "DMSPodTimedout",
             "pod %s-dms did not run within 5 minutes (phase %s)", x->name,
             phase ? phase : "none");
        forget_wait(x);
        res = 0;
    } else {
        cond(x, "DMSRunning", "False", "DMSPodNotRunning",
             "waiting for pod %s-dms to run (phase %s)", x->name,
             phase ? phase : "none");
        /* the pod's changes bring us back; wake at the timeout at the
         * latest */
        int64_t left = DMS_POD_TIMEOUT_MS - since_first_wait(x) + 100;
        res = left < POD_WAIT_MS ? (left > 0 ? left : 100) : POD_WAIT_MS;
    }
    json_decref(pod);
    return res;
}

static void
progress_write(struct dctx *x, struct install *t)
{
    pthread_mutex_lock(&x->d->mu);
    json_t *p = json_pack("{s:I, s:I, s:s}", "bytesSent",
                          (json_int_t) atomic_load(&t->sent), "bytesTotal",
                          (json_int_t) atomic_load(&t->total), "step", t->step);
    pthread_mutex_unlock(&x->d->mu);
    json_object_set_new(status_of(x), "installProgress", p);
}

static char *
secret_key(struct dctx *x, const char *name, const char *key,
           struct dpf_error *err)
{
    /* one read per Secret and reconcile (the client Secret gives two
     * keys) */
    json_t *sec = json_incref(json_object_get(x->secrets, name));
    if (!sec) {
        int rc;
        if (!strcmp(name, DPU_DMS_CLIENT_SECRET)) {
            /* shared by every DPU: the memo's copy (dpu-pods.h) */
            rc = dpu_certs_client(controller_rest(x->c), x->d->memo, x->ns,
                                  &sec, err);
        } else {
            char *path = kube_path(&secret_gvr, x->ns, name, NULL);
            rc = kube_rest_json_wait(controller_rest(x->c), "GET", path, NULL,
                                     NULL, NULL, &sec, err);
            free(path);
        }
        if (rc < 0) {
            char msg[sizeof err->message];
            snprintf(msg, sizeof msg, "%s", err->message);
            dpf_error_set(err, 404, "NotFound", "waiting for Secret %s/%s: %s",
                          x->ns, name, msg);
            return NULL;
        }
        if (!x->secrets) {
            x->secrets = json_object();
        }
        json_object_set(x->secrets, name, sec);
    }
    const char *b64 = str_at(json_object_get(sec, "data"), key, NULL);
    char *out = NULL;
    size_t len = 0;
    if (!b64 ||
        base64_decode(b64, strlen(b64), BASE64_LENIENT, &out, &len) < 0) {
        dpf_error_set(err, 404, "NotFound", "Secret %s/%s has no key %s", x->ns,
                      name, key);
        out = NULL;
    }
    json_decref(sec);
    return out;
}

static int dpu_view(struct dctx *x, char **uid_out, struct dpf_error *err);

/* The join command for the DPU's bf.cfg (`kubeadm join HOST:PORT --token
 * ID.SECRET --discovery-token-ca-cert-hash sha256:HEX`), as `kubeadm token
 * create --print-join-command` makes it: a bootstrap token (24 h) in the
 * DPU cluster's kube-system, the CA pin from its kubeconfig. The token
 * can only join (the DPU cluster's RBAC). -EAGAIN while the DPU cluster
 * cannot be reached. */
static int
dpu_join_command(struct dctx *x, char **out, struct dpf_error *err)
{
    *out = NULL;
    /* through the cluster's view: its kept-alive connection and the pin
     * worked out once (a client per DPU cost a TLS handshake and a key
     * parse each, a tenth of the server's CPU at 10,000 DPUs) */
    char *uid = NULL;
    char *server = NULL;
    char pin[KUBE_BOOTSTRAP_HASH_SIZE];
    if (dpu_view(x, &uid, err) >= 0 && uid &&
        dcviews_join_data(x->d->views, uid, &server, pin) == 0) {
        struct kube_bootstrap_token t;
        int rc = kube_bootstrap_token_generate(&t, err);
        json_t *sec = rc == 0 ? kube_bootstrap_token_secret(
                                    &t, (int64_t) time(NULL), 24 * 3600, NULL,
                                    "made by dpf for a node join")
                              : NULL;
        if (sec) {
            rc = dcviews_json_wait(x->d->views, uid, "POST",
                                   "/api/v1/namespaces/kube-system/secrets",
                                   sec, NULL, NULL, err);
        }
        json_decref(sec);
        if (rc == 0) {
            *out = kube_bootstrap_join_text(server, &t, pin);
        }
        kube_bootstrap_token_clear(&t);
        free(server);
        free(uid);
        if (rc < 0) {
            char msg[sizeof err->message];
            snprintf(msg, sizeof msg, "%s", err->message);
            dpf_error_set(err, 503, "Unavailable",
                          "cannot make a join token in the DPU cluster: %s",
                          msg);
            return -EAGAIN;
        }
        return 0;
    }
    free(uid);
    dpf_error_clear(err);
    struct kubeconfig *kc = dpu_cluster_kubeconfig(x, err);
    if (!kc) {
        return -EAGAIN;
    }
    int rc = -EAGAIN;
    struct api_client *cl = kc->ca_pem ? api_client_create(kc, err) : NULL;
    if (!kc->ca_pem) {
        dpf_error_set(err, 422, "Invalid",
                      "the DPU cluster's kubeconfig has no CA to pin");
    }
    if (cl) {
        api_client_set_timeout(cl, 10000);
        rc = kube_bootstrap_join_command(cl, kc->server, kc->ca_pem, kc->ca_len,
                                         0, out, NULL, err);
        if (rc < 0) {
            char msg[sizeof err->message];
            snprintf(msg, sizeof msg, "%s", err->message);
            dpf_error_set(err, 503, "Unavailable",
                          "cannot make a join token in the DPU cluster: %s",
                          msg);
            rc = -EAGAIN;
        }
        api_client_destroy(cl);
    }
    kubeconfig_free(kc);
    return rc;
}

/* Everything the install thread needs. -EAGAIN (err: what is missing)
 * while an input is not there yet; other -errno for a configuration that
 * cannot work (bad flavor, bf.cfg too big). */
static int
install_prepare(struct dctx *x, struct install **out, struct dpf_error *err)
{
    const json_t *spec = json_object_get(x->obj, "spec");
    const char *bfbname = str_at(spec, "bfb", NULL);
    json_t *b = kube_cache_get_name(controller_cache(x->c, C_BFB), x->ns,
                                    bfbname ? bfbname : "");
    const char *fname =
        b ? str_at(json_object_get(b, "spec"), "fileName", NULL) : NULL;
    char *pname = pod_name(x, "dms");
    json_t *pod =
        kube_cache_get_name(controller_cache(x->c, C_POD), x->ns, pname);
    free(pname);
    const char *ip =
        pod ? str_at(json_object_get(pod, "status"), "podIP", NULL) : NULL;
    struct install *t = xcalloc(1, sizeof *t);
    int rc = -EAGAIN;
    json_t *flavor = NULL;
    if (!fname || !x->d->bfb_dir) {
        dpf_error_set(err, 404, "NotFound", "BFB %s/%s has no file yet", x->ns,
                      bfbname ? bfbname : "");
        goto out;
    }
    if (!ip) {
        dpf_error_set(err, 404, "NotFound", "pod %s-dms has no IP yet",
                      x->name);
        goto out;
    }
    t->key = xstrdup(x->key);
    t->uid = xstrdup(x->uid);
    t->target = xasprintf("%s:%d", ip, DMS_PORT_BASE + dpu_index(x));
    t->dpu = xstrdup(x->key);
    t->host = xstrdup(str_at(spec, "nodeName", NULL));
    t->bfb_path = xasprintf("%s/%s", x->d->bfb_dir, fname);
    t->bfb_version = xstrdup(fname);
    t->cfg_version = xasprintf("%s.cfg", x->name);
    char *sname = xasprintf("%s-server-secret", x->name);
    t->ca = secret_key(x, sname, "ca.crt", err);
    free(sname);
    t->cert =
        t->ca ? secret_key(x, DPU_DMS_CLIENT_SECRET, "tls.crt", err) : NULL;
    t->key_pem =
        t->cert ? secret_key(x, DPU_DMS_CLIENT_SECRET, "tls.key", err) : NULL;
    if (!t->key_pem) {
        goto out;
    }
    /* from the cache: a DPUFlavor's spec is immutable (dpf-spec), and
     * its creation queues the DPUs waiting for it (map_flavor) */
    const char *fl = str_at(spec, "dpuFlavor", NULL);
    if (fl && *fl) {
        flavor =
            kube_cache_get_name(controller_cache(x->c, C_FLAVOR), x->ns, fl);
        if (!flavor) {
            dpf_error_set(err, 404, "NotFound",
                          "waiting for DPUFlavor %s/%s: it does not exist",
                          x->ns, fl);
            goto out;
        }
    }
    char *join = NULL;
    if (dpu_join_command(x, &join, err) < 0) {
        goto out;
    }
    const char *cmd = str_at(
        json_object_get(json_object_get(x->node, "metadata"), "annotations"),
        PROV_GROUP "/reboot-command", NULL);
    rc = bfcfg_render(flavor, x->name, join, cmd && !strcmp(cmd, "skip"),
                      &t->cfg, &t->cfg_len, err);
    free(join);
    if (rc == -ENOSYS) {
        rc = -EAGAIN; /* the renderer is not built in yet */
        goto out;
    }
    if (rc < 0) {
        goto out;
    }
    const char *step = str_at(
        json_object_get(json_object_get(x->copy, "status"), "installProgress"),
        "step", NULL);
    t->resume = step && (!strcmp(step, "activate") || !strcmp(step, "reboot"));
    *out = t;
    t = NULL;
    rc = 0;
out:
    if (t) {
        install_free(t);
    }
    json_decref(flavor);
    json_decref(pod);
    json_decref(b);
    return rc;
}

static int
verify_set_fn(void *arg, json_t *obj)
{
    json_t *md = json_object_get(obj, "metadata");
    json_t *a = json_object_get(md, "annotations");
    if (kube_is_deleting(obj) || json_object_get(a, BFB_VERIFY_ANNOTATION)) {
        return 0; /* asked already: one check serves every DPU */
    }
    if (!json_is_object(a)) {
        a = json_object();
        json_object_set_new(md, "annotations", a);
    }
    json_object_set_new(a, BFB_VERIFY_ANNOTATION, json_string(arg));
    return 1;
}

/* DMS or the device refused the BFB's content: ask the BFB controller to
 * check its cached file and download it again when it is bad (see
 * BFB_VERIFY_ANNOTATION); the retry then waits in Pending until the BFB
 * is Ready again. 0 or -errno. */
static int
bfb_verify_request(struct dctx *x, const char *why)
{
    const char *bfb = str_at(json_object_get(x->obj, "spec"), "bfb", NULL);
    if (!bfb || !*bfb) {
        return -EINVAL;
    }
    char *val = xasprintf("DPU %s: %.300s", x->key, why);
    struct dpf_error err = {0};
    int rc = kube_update_retry(controller_rest(x->c), &bfb_gvr, x->ns, bfb,
                               NULL, verify_set_fn, val, NULL, &err);
    if (rc < 0) {
        log_warn_rl("cannot ask the BFB to check its file",
                    "dpu=%s bfb=%s/%s error=\"%s\"", x->key, x->ns, bfb,
                    err.message);
    } else {
        log_info("BFB asked to check its cached file", "dpu=%s bfb=%s/%s",
                 x->key, x->ns, bfb);
    }
    free(val);
    return rc;
}

static int64_t
do_os_installing(struct dctx *x)
{
    pthread_mutex_lock(&x->d->mu);
    struct install *t = task_find(x->d, x->key, NULL);
    bool stale = t && strcmp(t->uid, x->uid) != 0;
    pthread_mutex_unlock(&x->d->mu);
    if (stale) {
        task_drop(x->d, x->key);
        t = NULL;
    }
    if (!t) {
        struct dpf_error err = {0};
        struct install *n = NULL;
        int rc = install_prepare(x, &n, &err);
        if (rc == -EAGAIN) {
            cond(x, "OSInstalled", "False", "WaitingForInstallInputs", "%s",
                 err.message);
            return REQUEUE_MS;
        }
        if (rc < 0) {
            fail(x, "OSInstalled", "InstallationFailed", "%s", err.message);
            return 0;
        }
        n->q = controller_queue(x->c);
        rc = task_start(x->d, n);
        if (rc < 0) {
            cond(x, "OSInstalled", "False", "WaitingForInstallSlot",
                 "%d installs are running (--max-concurrent-installs); "
                 "waiting for a slot",
                 x->d->max_installs);
            /* an ending install hands us its slot in our turn and queues
             * us; the requeue is a safety net */
            return SLOT_POLL_MS;
        }
        cond(x, "OSInstalled", "False", "Installing",
             "install started (what DMS already has is not sent again)");
        n->shown_ms = time_mono_ms();
        return INSTALL_POLL_MS;
    }
    if (!atomic_load(&t->done)) {
        pthread_mutex_lock(&x->d->mu);
        char step[64];
        snprintf(step, sizeof step, "%s", t->step);
        pthread_mutex_unlock(&x->d->mu);
        /* Progress goes into status every INSTALL_POLL_MS, whatever else
         * queues the DPU meanwhile (its pods' status, its host Node): at
         * 10,000 DPUs such reconciles wrote each short step (mode,
         * bfcfg) as a status write of its own. The steps a restarted
         * controller resumes from (activate, reboot) go in at once. */
        int64_t since = time_mono_ms() - t->shown_ms;
        bool resumable = !strcmp(step, "activate") || !strcmp(step, "reboot");
        if (since < INSTALL_POLL_MS && !resumable) {
            return INSTALL_POLL_MS - since;
        }
        progress_write(x, t);
        cond(x, "OSInstalled", "False", "Installing", "%s: %lld of %lld bytes",
             step, (long long) atomic_load(&t->sent),
             (long long) atomic_load(&t->total));
        t->shown_ms = time_mono_ms();
        return INSTALL_POLL_MS;
    }
    int rc = t->rc;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", t->message);
    bool refused = t->image_refused;
    progress_write(x, t);
    task_drop(x->d, x->key);
    if (rc < 0 && refused && bfb_verify_request(x, msg) == 0) {
        fail(x, "OSInstalled", "InstallationFailed",
             "%s; BFB %s/%s was asked to check its cached file", msg, x->ns,
             str_at(json_object_get(x->obj, "spec"), "bfb", NULL));
        return 0;
    }
    if (rc < 0) {
        fail(x, "OSInstalled", "InstallationFailed", "%s", msg);
        return 0;
    }
    cond(x, "OSInstalled", "True", "OSInstalled", "DPU is rebooting");
    set_phase(x, "Rebooting");
    return 0;
}

/* Seconds since an RFC 3339 time ("2026-01-02T03:04:05Z"), or -1. */
static double
seconds_since(const char *t)
{
    struct tm tm = {0};
    const char *end = t ? strptime(t, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!end) {
        return -1;
    }
    return difftime(time(NULL), timegm(&tm));
}

/* Seconds the host has been up: the first field of /proc/uptime read in
 * the DMS pod through pods/exec, as DPF does. The pod's processes share
 * the host's clock, so a host that rebooted shows a small uptime. A
 * failure (the host or its node agent is down, the pod is not running
 * yet) is the usual state of a rebooting host: the caller requeues. */
static int
dpu_host_uptime(struct dctx *x, double *seconds, struct dpf_error *err)
{
    if (!x->d->exec) {
        dpf_error_set(err, 503, "Unavailable",
                      "the controller has no exec client (no kubeconfig)");
        return -ENOTCONN;
    }
    char *pname = pod_name(x, "dms");
    static const char *const argv[] = {"cat", "/proc/uptime", NULL};
    struct kube_exec_request req = {
        .ns = x->ns,
        .pod = pname,
        .container = DPU_DMS_CONTAINER,
        .argv = argv,
        .timeout_ms = DPU_EXEC_UPTIME_MS,
        .max_output = 256,
    };
    struct kube_exec_result res;
    int rc = kube_exec_run(x->d->exec, &req, &res, err);
    if (rc == 0 && res.exit_code != 0) {
        dpf_error_set(err, 500, "InternalError",
                      "cat /proc/uptime in pod %s/%s exited with code %d: "
                      "%.200s",
                      x->ns, pname, res.exit_code, res.err);
        rc = -EIO;
    }
    if (rc == 0) {
        char *end = NULL;
        double up = strtod(res.out, &end);
        if (end == res.out || up < 0 || (*end != ' ' && *end != '\n')) {
            dpf_error_set(err, 500, "InternalError",
                          "/proc/uptime in pod %s/%s reads \"%.40s\", not "
                          "a number of seconds",
                          x->ns, pname, res.out);
            rc = -EPROTO;
        } else {
            *seconds = up;
        }
    }
    kube_exec_result_free(&res);
    free(pname);
    return rc;
}

/* The reboot the controller asked the host's BMC for in this Rebooting
 * phase (status.hostReboot), so that neither a requeue nor a restarted
 * controller asks twice. It belongs to the install that the OSInstalled
 * condition's lastTransitionTime names: a later install reboots again. */
static const json_t *
reboot_record(struct dctx *x)
{
    const json_t *r =
        json_object_get(json_object_get(x->copy, "status"), "hostReboot");
    const char *for_install = str_at(r, "osInstalledAt", NULL);
    const char *installed = str_at(kube_condition_find(x->copy, "OSInstalled"),
                                   "lastTransitionTime", NULL);
    if (!for_install || !installed || strcmp(for_install, installed)) {
        return NULL;
    }
    return r;
}

/* Ask the host's BMC for a reboot from the DMS pod: `ipmitool chassis
 * power cycle|reset`, the last step of DPF's bf-slr.sh too (its
 * mlxfwreset steps need BlueField hardware; docs/controllers.md). 0 and
 * status.hostReboot recorded, or -errno with err. */
static int
dpu_host_reboot(struct dctx *x, const char *cmd, struct dpf_error *err)
{
    char *pname = pod_name(x, "dms");
    const char *argv[] = {"ipmitool", "chassis", "power", cmd, NULL};
    struct kube_exec_request req = {
        .ns = x->ns,
        .pod = pname,
        .container = DPU_DMS_CONTAINER,
        .argv = argv,
        .timeout_ms = DPU_EXEC_REBOOT_MS,
        .max_output = 4096,
    };
    struct kube_exec_result res;
    int rc =
        x->d->exec ? kube_exec_run(x->d->exec, &req, &res, err) : -ENOTCONN;
    if (!x->d->exec) {
        memset(&res, 0, sizeof res);
        dpf_error_set(err, 503, "Unavailable",
                      "the controller has no exec client (no kubeconfig)");
    }
    if (rc == 0 && res.exit_code != 0) {
        size_t n = res.err_len;
        while (n > 0 && (res.err[n - 1] == '\n' || res.err[n - 1] == '\r')) {
            n--;
        }
        dpf_error_set(err, 500, "InternalError",
                      "`ipmitool chassis power %s` in pod %s/%s exited with "
                      "code %d: %.*s",
                      cmd, x->ns, pname, res.exit_code,
                      (int) (n > 300 ? 300 : n), res.err);
        rc = -EIO;
    }
    if (rc == 0) {
        char now[64];
        kube_time_now(now, sizeof now);
        const char *installed =
            str_at(kube_condition_find(x->copy, "OSInstalled"),
                   "lastTransitionTime", NULL);
        json_object_set_new(status_of(x), "hostReboot",
                            json_pack("{s:s,s:s,s:s}", "command",
                                      !strcmp(cmd, "cycle")
                                          ? "ipmitool chassis power cycle"
                                          : "ipmitool chassis power reset",
                                      "requestedAt", now, "osInstalledAt",
                                      installed ? installed : ""));
        log_info("host reboot requested", "dpu=%s/%s command=%s", x->ns,
                 x->name, cmd);
        kube_recorder_event(
            x->d->rec, x->obj, "Normal", "HostRebootRequested",
            "asked the host's BMC for a reboot: ipmitool chassis "
            "power %s (in pod %s)",
            cmd, pname);
    }
    if (x->d->exec) {
        kube_exec_result_free(&res);
    }
    free(pname);
    return rc;
}

/* spec.automaticNodeReboot or spec.nodeEffect.drain.automaticNodeReboot
 * (DPF: either one). */
static bool
dpu_automatic_reboot(const json_t *obj)
{
    const json_t *spec = json_object_get(obj, "spec");
    const json_t *drain =
        json_object_get(json_object_get(spec, "nodeEffect"), "drain");
    return json_is_true(json_object_get(spec, "automaticNodeReboot")) ||
           json_is_true(json_object_get(drain, "automaticNodeReboot"));
}

static int64_t
do_rebooting(struct dctx *x)
{
    if (!kube_condition_is_true(x->copy, "DMSRunning")) {
        cond(x, "Rebooted", "False", "InvalidState", "DMSRunning is not True");
        return REQUEUE_MS;
    }
    const json_t *ann =
        json_object_get(json_object_get(x->node, "metadata"), "annotations");
    const json_t *dann =
        json_object_get(json_object_get(x->obj, "metadata"), "annotations");
    const char *pc =
        str_at(dann, PROV_GROUP "/host-power-cycle-required", NULL);
    bool power = pc && !strcmp(pc, "true");
    const char *cmd = str_at(ann,
                             power ? PROV_GROUP "/powercycle-command"
                                   : PROV_GROUP "/reboot-command",
                             NULL);
    if (!cmd) {
        cmd = power ? "cycle" : "reset";
    }
    if (strcmp(cmd, "cycle") && strcmp(cmd, "reset") && strcmp(cmd, "skip")) {
        fail(x, "Rebooted", "InvalidRebootCommand",
             "host node annotation %s is \"%s\": use cycle, reset or skip",
             power ? "powercycle-command" : "reboot-command", cmd);
        return 0;
    }
    if (!strcmp(cmd, "skip")) {
        cond(x, "Rebooted", "True", "Rebooted",
             "reboot skipped (reboot-command skip); firmware changes may "
             "not apply until the host reboots");
        set_phase(x, "Host Network Configuration");
        return 0;
    }
    /* Rebooted when the host has been up for less time than DMS has
     * been running (DPF's test): the DMS pod came up before the reboot. */
    double up = 0;
    struct dpf_error err = {0};
    double since =
        seconds_since(str_at(kube_condition_find(x->copy, "DMSRunning"),
                             "lastTransitionTime", NULL));
    const json_t *rec = reboot_record(x);
    const char *asked = str_at(rec, "command", NULL);
    if (dpu_host_uptime(x, &up, &err) < 0) {
        cond(x, "Rebooted", "False", "HostUptimeUnknown",
             "cannot read the host's uptime in pod %s-dms%s: %s", x->name,
             asked ? " (the host is rebooting)" : "", err.message);
        return REQUEUE_MS;
    }
    if (since >= 0 && since > up) {
        cond(x, "Rebooted", "True", "Rebooted",
             "the host rebooted: up %.0f s, less than the %.0f s since DMS "
             "started",
             up, since);
        json_object_del(status_of(x), "hostReboot");
        set_phase(x, "Host Network Configuration");
        return 0;
    }
    if (!dpu_automatic_reboot(x->obj)) {
        /* (no changing numbers in messages: each change is a write) */
        cond(x, "Rebooted", "False", "WaitingForManualPowerCycleOrReboot",
             "automaticNodeReboot is false: the host must %s for the new "
             "firmware and OS (it has been up since before DMS started); "
             "or set the host annotation %s/%s to skip",
             power ? "be power-cycled" : "reboot", PROV_GROUP,
             power ? "powercycle-command" : "reboot-command");
        return REQUEUE_MS;
    }
    const char *at = str_at(rec, "requestedAt", NULL);
    double ago = seconds_since(at);
    if (asked && ago >= 0 && ago * 1000 < DPU_REBOOT_REPEAT_MS) {
        cond(x, "Rebooted", "False", "Rebooting",
             "`%s` requested at %s; waiting for the host to come back", asked,
             at);
        return REQUEUE_MS;
    }
    /* Not asked yet in this phase, or asked long ago and the host did not
     * reboot: ask (again). */
    if (dpu_host_reboot(x, cmd, &err) < 0) {
        cond(x, "Rebooted", "False", "RebootCommandFailed",
             "cannot reboot the host: %s", err.message);
        return REQUEUE_MS;
    }
    cond(x, "Rebooted", "False", "Rebooting",
         "`ipmitool chassis power %s` requested; waiting for the host to "
         "come back",
         cmd);
    return REQUEUE_MS;
}

static int64_t
do_host_network(struct dctx *x)
{
    struct dpf_error err = {0};
    int rc = 0;
    json_t *pod =
        pod_ensure(x, "hostnetwork", dpu_hostnetwork_pod_build, &rc, &err);
    if (rc < 0) {
        cond(x, "HostNetworkReady", "False", "ErrorOccured",
             "cannot create pod %s-hostnetwork: %s", x->name, err.message);
        return REQUEUE_MS;
    }
    if (!pod) {
        cond(x, "HostNetworkReady", "False", "Initializing",
             "pod %s-hostnetwork created", x->name);
        return POD_WAIT_MS;
    }
    json_t *cs = json_array_get(
        json_object_get(json_object_get(pod, "status"), "containerStatuses"),
        0);
    bool ready = json_is_true(json_object_get(cs, "ready"));
    json_int_t restarts =
        json_integer_value(json_object_get(cs, "restartCount"));
    json_decref(pod);
    if (restarts >= 10 && !ready) {
        fail(x, "HostNetworkReady", "InitializationFailed",
             "pod %s-hostnetwork restarted %lld times", x->name,
             (long long) restarts);
        return 0;
    }
    if (!ready) {
        cond(x, "HostNetworkReady", "False", "Initializing",
             "waiting for pod %s-hostnetwork to be ready", x->name);
        return POD_WAIT_MS;
    }
    cond(x, "HostNetworkReady", "True", "HostNetworkReady",
         "waiting for dpu joining cluster");
    set_phase(x, "DPU Cluster Config");
    return 0;
}

/* The wanted labels of the DPU's Node in the DPU cluster (new). */
static json_t *
dpu_node_labels(struct dctx *x)
{
    json_t *want = json_object();
    json_t *nl = json_object_get(
        json_object_get(json_object_get(x->obj, "spec"), "cluster"),
        "nodeLabels");
    if (json_is_object(nl)) {
        json_object_update(want, nl);
    }
    json_t *b = kube_cache_get_name(
        controller_cache(x->c, C_BFB), x->ns,
        str_at(json_object_get(x->obj, "spec"), "bfb", NULL));
    const char *url =
        b ? str_at(json_object_get(b, "spec"), "url", NULL) : NULL;
    if (url) {
        const char *base = strrchr(url, '/');
        base = base ? base + 1 : url;
        const char *dot = strrchr(base, '.');
        json_object_set_new(
            want, LABEL_BFB_VERSION,
            json_stringn(base, dot ? (size_t) (dot - base) : strlen(base)));
    }
    json_decref(b);
    const char *host =
        str_at(json_object_get(x->obj, "spec"), "nodeName", NULL);
    if (host) {
        json_object_set_new(want, LABEL_DPU_HOST, json_string(host));
    }
    return want;
}

/* Is node n Ready (1) or not (0); *labels_ok when it has want. */
static int
dpu_node_eval(const json_t *n, const json_t *want, bool *labels_ok)
{
    const json_t *have =
        json_object_get(json_object_get(n, "metadata"), "labels");
    *labels_ok = true;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *) want, k, v)
    {
        if (!json_equal(json_object_get(have, k), v)) {
            *labels_ok = false;
        }
    }
    return kube_condition_is_true(n, "Ready");
}

/* The UID of the DPU's DPUCluster (from the cache), or NULL. */
static const char *
dpu_cluster_uid(struct dctx *x, json_t **hold)
{
    const json_t *cl =
        json_object_get(json_object_get(x->obj, "spec"), "cluster");
    const char *ns = str_at(cl, "namespace", NULL);
    const char *name = str_at(cl, "name", NULL);
    *hold = ns && name ? kube_cache_get_name(controller_cache(x->c, C_CLUSTER),
                                             ns, name)
                       : NULL;
    return str_at(json_object_get(*hold, "metadata"), "uid", NULL);
}

/* The DPU's Node in its DPU cluster: 1 and *n (NULL when the cluster has
 * no such Node) from the cluster's watched view; 0 when the view is not
 * ready yet (then the caller asks the cluster directly); < 0 with err. */
/* The view of the DPU's DPU cluster: 1 synced, 0 being made (made now
 * if there was none), -EIO with err when the cluster's kubeconfig cannot
 * be read. *uid_out (malloc'd) gets the cluster's UID, or NULL when the
 * DPU has no cluster yet. */
static int
dpu_view(struct dctx *x, char **uid_out, struct dpf_error *err)
{
    json_t *hold = NULL;
    const char *uid = dpu_cluster_uid(x, &hold);
    *uid_out = NULL;
    int rc = 0;
    if (uid) {
        rc = dcviews_state(x->d->views, uid);
        if (rc == -ENOENT) {
            struct kubeconfig *kc = dpu_cluster_kubeconfig(x, err);
            if (!kc) {
                json_decref(hold);
                return -EIO;
            }
            char *cname = xasprintf(
                "%s/%s",
                str_at(json_object_get(hold, "metadata"), "namespace", NULL),
                str_at(json_object_get(hold, "metadata"), "name", NULL));
            dcviews_add(x->d->views, uid, cname, kc);
            free(cname);
            kubeconfig_free(kc);
            rc = 0;
        }
        *uid_out = xstrdup(uid);
    }
    json_decref(hold);
    return rc;
}

static int
dpu_node_viewed(struct dctx *x, json_t **n, char **uid_out,
                struct dpf_error *err)
{
    char *uid = NULL;
    int rc = dpu_view(x, &uid, err);
    if (rc == 1) {
        *n = dcviews_node(x->d->views, uid, x->name);
        *uid_out = uid;
        return 1;
    }
    free(uid);
    return rc;
}

/* Check the DPU's Node: 1 Ready, 0 not Ready, < 0 (-ENOENT: not in the
 * cluster) with err; *labels_ok when it has want. With a view, *uid gets
 * the cluster's UID (writes go through the view), else *cl a client. */
static int
dpu_node_check(struct dctx *x, const json_t *want, bool *labels_ok, char **uid,
               struct api_client **cl, struct dpf_error *err)
{
    json_t *n = NULL;
    *uid = NULL;
    *cl = NULL;
    int rc = dpu_node_viewed(x, &n, uid, err);
    if (rc < 0) {
        return rc;
    }
    if (rc == 0) {
        *cl = dpu_cluster_client(x, err);
        if (!*cl) {
            return -EIO;
        }
        rc = api_client_get(*cl, &node_gvr, NULL, x->name, &n, err);
        if (rc < 0) {
            return rc;
        }
    } else if (!n) {
        dpf_error_set(err, 404, "NotFound",
                      "node %s is not in the DPU cluster yet", x->name);
        return -ENOENT;
    }
    rc = dpu_node_eval(n, want, labels_ok);
    json_decref(n);
    return rc;
}

/* Merge want into the DPU Node's labels. */
static int
dpu_node_label(struct dctx *x, const char *uid, struct api_client *cl,
               const json_t *want, struct dpf_error *err)
{
    json_t *patch = json_pack("{s:{s:O}}", "metadata", "labels", want);
    int rc;
    if (uid) {
        char *path = kube_path(&node_gvr, NULL, x->name, NULL);
        rc = dcviews_json_wait(x->d->views, uid, "PATCH", path, patch,
                               "application/merge-patch+json", NULL, err);
        free(path);
    } else {
        rc = api_client_patch(cl, &node_gvr, NULL, x->name, NULL,
                              API_PATCH_MERGE, patch, "dpf-dpu", NULL, err);
    }
    json_decref(patch);
    return rc;
}

static int64_t
do_cluster_config(struct dctx *x)
{
    struct dpf_error err = {0};
    json_t *want = dpu_node_labels(x);
    bool labels_ok = false;
    char *uid = NULL;
    struct api_client *cl = NULL;
    int rc = dpu_node_check(x, want, &labels_ok, &uid, &cl, &err);
    /* with a view, the Node's changes queue the DPU: the requeue is a
     * safety net */
    int64_t res = uid ? VIEW_POLL_MS : REQUEUE_MS;
    if (rc == -EIO) {
        cond(x, "Ready", "False", "DPUClusterClientGetError", "%s",
             err.message);
        res = REQUEUE_MS;
    } else if (rc < 0) {
        cond(x, "Ready", "False", "DPUNodeGetError",
             "waiting for node %s to join the DPU cluster: %s", x->name,
             err.message);
    } else if (rc == 0) {
        cond(x, "Ready", "False", "DPUNodeNotReady",
             "node %s is in the DPU cluster but not Ready", x->name);
    } else {
        if (!labels_ok) {
            rc = dpu_node_label(x, uid, cl, want, &err);
        }
        if (rc < 0) {
            cond(x, "Ready", "False", "DPUNodeGetError",
                 "cannot label node %s: %s", x->name, err.message);
            res = REQUEUE_MS;
        } else {
            cond(x, "Ready", "True", "DPUNodeReady", "cluster configured");
            set_phase(x, "Ready");
            res = 0;
        }
    }
    json_decref(want);
    api_client_destroy(cl);
    free(uid);
    return res;
}

static int64_t
do_ready(struct dctx *x)
{
    struct dpf_error err = {0};
    if (node_effect_set(x, false, &err) < 0) {
        cond(x, "Ready", "False", "NodeEffectError",
             "cannot lift the node effect: %s", err.message);
        return REQUEUE_MS;
    }
    int rc = 0;
    json_t *p1 = pod_ensure(x, "dms", dpu_dms_pod_build, &rc, &err);
    json_t *p2 = rc == 0 ? pod_ensure(x, "hostnetwork",
                                      dpu_hostnetwork_pod_build, &rc, &err)
                         : NULL;
    json_decref(p1);
    json_decref(p2);
    if (rc < 0) {
        cond(x, "Ready", "False", "DPUNodeNotReady",
             "cannot recreate the DMS or host network pod: %s", err.message);
        return REQUEUE_MS;
    }
    json_t *want = dpu_node_labels(x);
    bool labels_ok = true;
    char *uid = NULL;
    struct api_client *cl = NULL;
    rc = dpu_node_check(x, want, &labels_ok, &uid, &cl, &err);
    json_decref(want);
    api_client_destroy(cl);
    /* watched: the Node's changes queue the DPU; polled: DPF's period */
    int64_t next = uid ? VIEW_POLL_MS : READY_POLL_MS;
    free(uid);
    if (rc == -EIO) {
        cond(x, "Ready", "False", "DPUClusterClientGetError", "%s",
             err.message);
        return REQUEUE_MS;
    }
    if (rc < 0) {
        cond(x, "Ready", "False", "DPUNodeGetError", "node %s: %s", x->name,
             err.message);
    } else if (rc == 0) {
        cond(x, "Ready", "False", "DPUNodeNotReady",
             "node %s in the DPU cluster is not Ready", x->name);
    } else if (!labels_ok) {
        set_phase(x, "DPU Cluster Config");
        return 0;
    } else {
        cond(x, "Ready", "True", "DPUNodeReady", "DPU node is ready");
    }
    return next;
}

static int64_t
backoff_ms(json_int_t attempts)
{
    int64_t d = BACKOFF_MIN_MS;
    for (json_int_t i = 0; i < attempts && d < BACKOFF_MAX_MS; i++) {
        d *= 2;
    }
    return d > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : d;
}

static int64_t
do_error(struct dctx *x)
{
    struct dpf_error err = {0};
    node_effect_set(x, false, &err);
    json_int_t attempts = json_integer_value(
        json_object_get(json_object_get(x->obj, "status"), "attempts"));
    int64_t now = time_mono_ms();
    pthread_mutex_lock(&x->d->mu);
    json_t *due = json_object_get(x->d->due, x->key);
    if (!due) {
        due = json_integer(now + backoff_ms(attempts));
        json_object_set_new(x->d->due, x->key, due);
    }
    int64_t wait = json_integer_value(due) - now;
    if (wait <= 0) {
        json_object_del(x->d->due, x->key);
    }
    pthread_mutex_unlock(&x->d->mu);
    const char *last =
        str_at(json_object_get(x->obj, "status"), "lastError", NULL);
    if (wait > 0) {
        cond(x, "Ready", "False", "Error", "%s; retrying in %lld s",
             last ? last : "failed", (long long) ((wait + 999) / 1000));
        return wait;
    }
    /* a failed DMS pod goes now, so the retry starts a fresh one */
    json_t *dms = pod_get(x, "dms");
    const char *dphase = str_at(dms, "status", "phase");
    if (dphase && !strcmp(dphase, "Failed")) {
        pod_delete(x, "dms");
    }
    json_decref(dms);
    json_object_set_new(status_of(x), "attempts", json_integer(attempts + 1));
    set_phase(x, "Initializing");
    cond(x, "Ready", "False", "Retrying", "retry %lld after: %s",
         (long long) (attempts + 1), last ? last : "an error");
    log_info("DPU retrying after an error", "dpu=%s attempt=%lld", x->key,
             (long long) (attempts + 1));
    return 0;
}

/* Deleting: 1 when everything is gone, 0 when waiting, -errno. */
static int
do_deleting(struct dctx *x, struct dpf_error *err)
{
    task_drop(x->d, x->key);
    json_t *wake = NULL;
    install_slots_forget(x->d->slots, x->key, time_mono_ms(), &wake);
    slot_wake(controller_queue(x->c), wake);
    if (x->d->alloc) {
        allocator_release(x->d->alloc, x->uid);
    }
    int rc = node_effect_set(x, false, err);
    if (rc < 0) {
        return rc;
    }
    int left = 0;
    const char *suffix[] = {"dms", "hostnetwork"};
    for (size_t i = 0; i < 2; i++) {
        /* grace 0: the DPU is going, DMS need not finish anything; a pod
         * that was still there is looked at again on the next pass */
        if (pod_delete(x, suffix[i]) != -ENOENT) {
            left++;
        }
    }
    struct dpf_error e5 = {0};
    rc = dpu_certs_delete(controller_rest(x->c), x->obj, &e5);
    if (rc < 0 && rc != -ENOSYS) {
        log_warn_rl("cannot delete the DPU's certificates",
                    "dpu=%s error=\"%s\"", x->key, e5.message);
    }
    char *sname = xasprintf("%s-server-secret", x->name);
    char *path = kube_path(&secret_gvr, x->ns, sname, NULL);
    struct dpf_error e3 = {0};
    rc = kube_rest_json_wait(controller_rest(x->c), "DELETE", path, NULL, NULL,
                             NULL, NULL, &e3);
    if (rc < 0 && rc != -ENOENT) {
        left++;
    }
    free(path);
    free(sname);
    if (x->d->bfb_dir) {
        char *cfg = xasprintf("%s/%s.cfg", x->d->bfb_dir, x->name);
        if (unlink(cfg) < 0 && errno != ENOENT) {
            log_warn("cannot remove the bf.cfg", "file=%s error=\"%s\"", cfg,
                     strerror(errno));
        }
        free(cfg);
    }
    /* The Node in the DPU cluster, when there is a cluster to ask. */
    const char *cname =
        str_at(json_object_get(json_object_get(x->obj, "spec"), "cluster"),
               "name", NULL);
    if (cname && *cname) {
        struct dpf_error e4 = {0};
        struct api_client *cl = dpu_cluster_client(x, &e4);
        if (cl) {
            rc = api_client_delete(cl, &node_gvr, NULL, x->name, NULL, NULL,
                                   &e4);
            if (rc < 0 && rc != -ENOENT) {
                log_warn_rl("cannot delete the DPU's node",
                            "dpu=%s error=\"%s\"", x->key, e4.message);
            }
            api_client_destroy(cl);
        }
    }
    return left == 0 ? 1 : 0;
}

static int
finalizer_add_fn(void *arg, json_t *obj)
{
    (void) arg;
    return !kube_is_deleting(obj) && kube_finalizer_add(obj, DPU_FINALIZER) ? 1
                                                                            : 0;
}

static int
finalizer_remove_fn(void *arg, json_t *obj)
{
    (void) arg;
    return kube_finalizer_remove(obj, DPU_FINALIZER) ? 1 : 0;
}

/* The phase machine: each phase's step, whether a reconcile may enter the
 * phase right after the step before (such steps read the DPU's status
 * from x->copy, what the step before wrote, never from the cached x->obj;
 * Ready and Error are entered through a write), and where the phase lies
 * against the install gate (workqueue_set_urgent: DPUs holding an install
 * slot or past it go ahead of the rest in the queue, so that with
 * thousands of DPUs queued an install's steps do not each wait a full turn
 * of the queue while the slot stays taken and the DPUs behind it wait for
 * the slot). */
enum gate { GATE_BEFORE, GATE_SLOT, GATE_PAST };

static const struct phase_step {
    const char *phase;
    int64_t (*step)(struct dctx *x);
    bool chained;
    enum gate gate;
} phase_steps[] = {
    {"Initializing", do_initializing, false, GATE_BEFORE},
    {"Node Effect", do_node_effect, true, GATE_BEFORE},
    {"Pending", do_pending, true, GATE_BEFORE},
    {"DMS Deployment", do_dms_deployment, true, GATE_BEFORE},
    {"OS Installing", do_os_installing, true, GATE_SLOT},
    {"Rebooting", do_rebooting, true, GATE_PAST},
    {"Host Network Configuration", do_host_network, true, GATE_PAST},
    {"DPU Cluster Config", do_cluster_config, true, GATE_PAST},
    {"Ready", do_ready, false, GATE_BEFORE},
    {"Error", do_error, false, GATE_BEFORE},
};

static const struct phase_step *
phase_step(const char *phase)
{
    for (size_t i = 0; i < ARRAY_SIZE(phase_steps); i++) {
        if (!strcmp(phase_steps[i].phase, phase)) {
            return &phase_steps[i];
        }
    }
    return NULL; /* Deleting without a deletionTimestamp */
}

/* One step of the phase machine for the phase the DPU is in. */
static int64_t
run_phase(struct dctx *x, const char *phase)
{
    const struct phase_step *ps = phase_step(phase);
    return ps ? ps->step(x) : REQUEUE_MS;
}

static bool
chains_to(const char *phase)
{
    const struct phase_step *ps = phase_step(phase);
    return ps && ps->chained;
}

/* Whether the DPU has an install slot (OS Installing, unless still
 * waiting for one) or is past its install. */
static bool
past_install_gate(const json_t *dpu)
{
    const struct phase_step *ps = phase_step(phase_of(dpu));
    if (ps && ps->gate == GATE_SLOT) {
        const char *r =
            str_at(kube_condition_find(dpu, "OSInstalled"), "reason", NULL);
        return !r || strcmp(r, "WaitingForInstallSlot") != 0;
    }
    return ps && ps->gate == GATE_PAST;
}

/* Write copy's status unless it equals the cached one. */
static int
status_put(struct dctx *x)
{
    if (kube_json_same(json_object_get(x->copy, "status"),
                       json_object_get(x->obj, "status"))) {
        return 0;
    }
    char *path = kube_path(&dpu_gvr, x->ns, x->name, "status");
    struct dpf_error err = {0};
    char *out = NULL;
    size_t out_len = 0;
    int rc = kube_rest_text_wait(controller_rest(x->c), "PUT", path, NULL,
                                 x->copy, NULL, &out, &out_len, &err);
    free(path);
    /* the next reconcile starts from this write, not from a lagging
     * watch's older copy (which would only earn a 409); kept as text, as
     * that watch's event usually comes first */
    kube_cache_note_text(controller_cache(x->c, 0), out, out_len);
    free(out);
    if (rc == 0 && x->path[0]) {
        kube_recorder_event(x->d->rec, x->obj, "Normal", "PhaseChanged", "%s",
                            x->path);
        x->path[0] = '\0';
    }
    if (rc < 0 && rc != -ENOENT && rc != -EBUSY) {
        log_warn_rl("cannot update the DPU status", "dpu=%s error=\"%s\"",
                    x->key, err.message);
    }
    return rc;
}

static struct controller_result
reconcile_dpu(struct controller *c, const char *key)
{
    struct dpu_ctrl *d = controller_arg(c);
    json_t *obj = kube_cache_get(controller_cache(c, 0), key);
    if (!obj) {
        task_drop(d, key);
        workqueue_set_urgent(controller_queue(c), key, false);
        pthread_mutex_lock(&d->mu);
        json_object_del(d->due, key);
        json_object_del(d->seen, key);
        pthread_mutex_unlock(&d->mu);
        return controller_done();
    }
    const json_t *md = json_object_get(obj, "metadata");
    struct dctx x = {.c = c,
                     .d = d,
                     .key = key,
                     .ns = str_at(md, "namespace", NULL),
                     .name = str_at(md, "name", NULL),
                     .uid = str_at(md, "uid", NULL),
                     .obj = obj,
                     .gen =
                         json_integer_value(json_object_get(md, "generation"))};
    struct controller_result res = controller_done();
    struct dpf_error err = {0};
    const char *nodename =
        str_at(json_object_get(obj, "spec"), "nodeName", NULL);
    if (!x.ns || !x.name || !x.uid) {
        json_decref(obj);
        return res;
    }
    x.node = nodename ? kube_cache_get_name(controller_cache(c, C_NODE), NULL,
                                            nodename)
                      : NULL;
    x.copy = json_deep_copy(obj);

    if (kube_is_deleting(obj)) {
        if (!kube_finalizer_has(obj, DPU_FINALIZER)) {
            goto out;
        }
        if (strcmp(phase_of(obj), "Deleting") != 0) {
            set_phase(&x, "Deleting");
            cond(&x, "Ready", "False", "Deleting",
                 "removing the DPU's pods, Secret, bf.cfg and DPU-cluster "
                 "node");
            status_put(&x);
        }
        int rc = do_deleting(&x, &err);
        if (rc < 0) {
            res = controller_requeue_after(2000);
        } else if (rc == 0) {
            res = controller_requeue_after(500);
        } else if (kube_update_retry_from(
                       controller_rest(c), &dpu_gvr, x.ns, x.name, NULL, obj,
                       finalizer_remove_fn, NULL, NULL, &err) < 0 &&
                   err.code != 404) {
            res = controller_error();
        } else {
            log_info("DPU cleaned up", "dpu=%s", key);
        }
        goto out;
    }
    if (!kube_finalizer_has(obj, DPU_FINALIZER)) {
        /* from the cached DPU: a new DPU's first write, seldom stale (a
         * 409 and a read when it is) */
        if (kube_update_retry_from(controller_rest(c), &dpu_gvr, x.ns, x.name,
                                   NULL, obj, finalizer_add_fn, NULL, NULL,
                                   &err) < 0) {
            res = controller_error();
        }
        goto out;
    }
    const char *phase = phase_of(obj);
    int64_t after = run_phase(&x, phase);
    /* A step that needs nothing from outside goes on in this reconcile:
     * one status write instead of one per phase, and no turn through a
     * queue that can hold thousands of DPUs (the PhaseChanged events
     * still name every phase passed). */
    char ran[64];
    snprintf(ran, sizeof ran, "%s", phase);
    for (int hop = 0; hop < 4 && after == 0; hop++) {
        const char *next = phase_of(x.copy);
        if (!strcmp(next, ran) || !chains_to(next)) {
            break;
        }
        snprintf(ran, sizeof ran, "%s", next); /* next dies with the step */
        after = run_phase(&x, ran);
    }
    /* Every DPU that is not Ready says why in its Ready condition. */
    const char *now = phase_of(x.copy);
    if (strcmp(now, "Ready") != 0 && x.why_set &&
        !kube_condition_find(x.copy, "Ready")) {
        kube_condition_set(x.copy, "Ready", "False", x.why_reason, x.why_msg,
                           x.gen, NULL);
    } else if (strcmp(now, "Ready") != 0 && x.why_set) {
        json_t *rc = kube_condition_find(x.copy, "Ready");
        const char *r = str_at(rc, "reason", NULL);
        if (!r || strcmp(r, x.why_reason) != 0 ||
            strcmp(str_at(rc, "message", NULL) ? str_at(rc, "message", NULL)
                                               : "",
                   x.why_msg) != 0) {
            kube_condition_set(x.copy, "Ready", "False", x.why_reason,
                               x.why_msg, x.gen, NULL);
        }
    }
    if (strcmp(now, phase) != 0) {
        log_info("DPU phase", "dpu=%s from=\"%s\" to=\"%s\"", key, phase, now);
    }
    workqueue_set_urgent(controller_queue(c), key, past_install_gate(x.copy));
    int rc = status_put(&x);
    if (rc == -EBUSY) {
        res = controller_requeue();
    } else if (after > 0) {
        res = controller_requeue_after(after);
    } else if (after == 0 && strcmp(now, phase) == 0 && rc == 0 &&
               kube_json_same(json_object_get(x.copy, "status"),
                              json_object_get(obj, "status"))) {
        res = controller_requeue_after(REQUEUE_MS);
    }
out:
    json_decref(x.copy);
    json_decref(x.node);
    json_decref(x.secrets);
    json_decref(obj);
    return res;
}

/* --- maps --- */

/* Cache indexes of the DPUs by spec field: a Node or a BFB event maps to
 * its own DPUs without walking every DPU (10,000 DPUs and as many host
 * Node updates would be 10^8 steps). Values are "field" and "ns/field"
 * for the namespaced BFB. */
static json_t *
index_node(void *arg, const json_t *obj)
{
    (void) arg;
    const char *v = str_at(json_object_get(obj, "spec"), "nodeName", NULL);
    return v ? json_pack("[s]", v) : NULL;
}

static json_t *
index_name(void *arg, const json_t *obj)
{
    (void) arg;
    const char *v = str_at(json_object_get(obj, "metadata"), "name", NULL);
    return v ? json_pack("[s]", v) : NULL;
}

static json_t *dpus_by(struct controller *c, const char *index,
                       const char *value);

/* Loop thread: a DPU cluster's Node changed: queue the DPUs of that name
 * (a DPU's Node is named after it). */
static void
on_dpu_node(void *arg, const char *node)
{
    struct dpu_ctrl *d = arg;
    json_t *keys = dpus_by(d->ctl, "name", node);
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k)
    {
        workqueue_add(controller_queue(d->ctl), json_string_value(k));
    }
    json_decref(keys);
}

/* An index value: ["ns/<spec.field>"] for a DPU naming an object of its
 * namespace in spec.field, NULL when it names none. */
static json_t *
spec_ref(const json_t *obj, const char *field)
{
    const char *v = str_at(json_object_get(obj, "spec"), field, NULL);
    const char *ns =
        str_at(json_object_get(obj, "metadata"), "namespace", NULL);
    return v && *v && ns ? json_pack("[o]", json_sprintf("%s/%s", ns, v))
                         : NULL;
}

static json_t *
index_bfb(void *arg, const json_t *obj)
{
    (void) arg;
    return spec_ref(obj, "bfb");
}

/* The keys of the DPUs whose index has value. */
static json_t *
dpus_by(struct controller *c, const char *index, const char *value)
{
    json_t *keys =
        value ? kube_cache_keys_by_index(controller_cache(c, 0), index, value)
              : NULL;
    return keys ? keys : json_array();
}

static json_t *
map_node(struct controller *c, const json_t *obj)
{
    return dpus_by(c, "nodeName",
                   str_at(json_object_get(obj, "metadata"), "name", NULL));
}

/* The keys of the DPUs whose index (a spec reference) names obj. */
static json_t *
dpus_naming(struct controller *c, const char *index, const json_t *obj)
{
    const json_t *md = json_object_get(obj, "metadata");
    const char *ns = str_at(md, "namespace", NULL);
    const char *name = str_at(md, "name", NULL);
    if (!ns || !name) {
        return NULL;
    }
    char *v = xasprintf("%s/%s", ns, name);
    json_t *keys = dpus_by(c, index, v);
    free(v);
    return keys;
}

static json_t *
map_bfb(struct controller *c, const json_t *obj)
{
    return dpus_naming(c, "bfb", obj);
}

static json_t *
index_flavor(void *arg, const json_t *obj)
{
    (void) arg;
    return spec_ref(obj, "dpuFlavor");
}

/* A DPUFlavor created (or deleted): the DPUs naming it. Its spec is
 * immutable, so updates do not matter (flavor_relevant). */
static json_t *
map_flavor(struct controller *c, const json_t *obj)
{
    return dpus_naming(c, "flavor", obj);
}

static bool
flavor_relevant(const json_t *old, const json_t *obj)
{
    (void) old;
    (void) obj;
    return false;
}

static json_t *
map_pod(struct controller *c, const json_t *obj)
{
    const json_t *md = json_object_get(obj, "metadata");
    const char *dpu =
        str_at(json_object_get(md, "labels"), LABEL_POD_DPU, NULL);
    const char *ns = str_at(md, "namespace", NULL);
    if (!dpu || !ns) {
        return NULL;
    }
    json_t *key = json_sprintf("%s/%s", ns, dpu);
    /* A pod that runs lets its DPU go on (DMS Deployment, Host Network
     * Configuration): it goes ahead of the DPUs still starting, so DPUs
     * flow through the installs during the run instead of reaching them
     * all at the end (at 10,000 DPUs they waited 180-235 s behind the
     * queue with their DMS pod running) */
    const char *phase = str_at(json_object_get(obj, "status"), "phase", NULL);
    if (phase && !strcmp(phase, "Running")) {
        workqueue_set_urgent(controller_queue(c), json_string_value(key), true);
    }
    return json_pack("[o]", key);
}

static json_t *
map_all(struct controller *c, const json_t *obj)
{
    (void) obj;
    return kube_cache_keys(controller_cache(c, 0));
}

/* What the DPU controller reads of its pods: the metadata, spec.nodeName,
 * status.phase, reason, message and podIP, and each container's ready
 * and restartCount. The containers, volumes and the rest of the spec
 * (most of a DMS pod's 6 KB), the pod's conditions and the containers'
 * states are dropped before the pod is cached: 20,000 pods at 10,000
 * DPUs. */
/* dst[name] = src[name] for each of the n names src has. */
static void
copy_members(json_t *dst, const json_t *src, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_object_get(src, names[i]);
        if (v) {
            json_object_set(dst, names[i], v);
        }
    }
}

static void
pod_slim(json_t *pod)
{
    static const char *const keep[] = {"phase", "reason", "message", "podIP"};
    static const char *const ctr_keep[] = {"name", "ready", "restartCount"};
    kube_json_keep_only(pod, "spec", "nodeName");
    json_t *st = json_object_get(pod, "status");
    if (!json_is_object(st)) {
        return;
    }
    json_t *slim = json_object();
    copy_members(slim, st, keep, sizeof keep / sizeof keep[0]);
    json_t *cs = json_object_get(st, "containerStatuses");
    if (json_is_array(cs)) {
        json_t *out = json_array();
        size_t i;
        json_t *c;
        json_array_foreach(cs, i, c)
        {
            json_t *one = json_object();
            copy_members(one, c, ctr_keep,
                         sizeof ctr_keep / sizeof ctr_keep[0]);
            json_array_append_new(out, one);
        }
        json_object_set_new(slim, "containerStatuses", out);
    }
    json_object_set_new(pod, "status", slim);
}

static const struct controller_watch dpu_watches[] = {
    {.gvr = {"", "v1", "nodes", false}, .map = map_node},
    {.gvr = {PROV_GROUP, "v1alpha1", "bfbs", true}, .map = map_bfb},
    {.gvr = {"", "v1", "pods", true},
     .label_selector = LABEL_POD_DPU,
     .map = map_pod},
    {.gvr = {PROV_GROUP, "v1alpha1", "dpuclusters", true}, .map = map_all},
    {.gvr = {PROV_GROUP, "v1alpha1", "dpuflavors", true},
     .map = map_flavor,
     .relevant = flavor_relevant},
};

struct dpu_ctrl *
dpu_ctrl_add(struct controller_manager *m, const struct kubeconfig *kc,
             const char *bfb_dir, int max_installs, struct allocator *alloc,
             const char *component, struct dpf_error *err)
{
    if (!alloc) {
        dpf_error_set(err, 400, "BadRequest",
                      "the DPU controller needs the DPU cluster allocator");
        return NULL;
    }
    struct dpu_ctrl *d = xcalloc(1, sizeof *d);
    d->alloc = alloc;
    d->bfb_dir = bfb_dir ? xstrdup(bfb_dir) : NULL;
    d->max_installs = max_installs > 0 ? max_installs : 16;
    pthread_mutex_init(&d->mu, NULL);
    d->due = json_object();
    d->seen = json_object();
    d->slots = install_slots_create(d->max_installs, SLOT_HOLD_MS);
    d->memo = dpu_certs_memo_create();
    d->rec = kube_recorder_create(controller_manager_rest(m), component, NULL);
    d->ops.name = "dpu";
    d->ops.primary_kind = "DPU";
    d->ops.primary.gvr = dpu_gvr;
    d->ops.secondary = dpu_watches;
    d->ops.n_secondary = sizeof dpu_watches / sizeof dpu_watches[0];
    d->ops.reconcile = reconcile_dpu;
    /* reconciles wait on API round trips more than they compute: more
     * workers keep a fleet of thousands moving (the server batches
     * concurrent writes) */
    d->ops.workers = 32;
    d->ctl = controller_manager_add(m, &d->ops, d);
    informer_set_transform(
        controller_manager_informer(m, &dpu_watches[2].gvr, NULL,
                                    dpu_watches[2].label_selector, 0),
        pod_slim);
    struct informer *inf =
        controller_manager_informer(m, &dpu_gvr, NULL, NULL, 0);
    informer_add_index(inf, "nodeName", index_node, NULL);
    informer_add_index(inf, "bfb", index_bfb, NULL);
    informer_add_index(inf, "flavor", index_flavor, NULL);
    informer_add_index(inf, "name", index_name, NULL);
    d->views = dcviews_create(kube_rest_loop(controller_manager_rest(m)),
                              on_dpu_node, d);
    if (kc) {
        struct dpf_error xe = {0};
        d->exec = kube_exec_create(kc, &xe);
        if (!d->exec) {
            /* Rebooting says so in the DPU's condition */
            log_warn("no exec client: hosts' uptime cannot be read",
                     "error=\"%s\"", xe.message);
        }
    }
    return d;
}

void
dpu_ctrl_stop(struct dpu_ctrl *d)
{
    if (!d) {
        return;
    }
    dcviews_stop(d->views);
    for (;;) {
        pthread_mutex_lock(&d->mu);
        char *key = d->n_tasks ? xstrdup(d->tasks[0]->key) : NULL;
        pthread_mutex_unlock(&d->mu);
        if (!key) {
            break;
        }
        task_drop(d, key);
        free(key);
    }
}

void
dpu_ctrl_destroy(struct dpu_ctrl *d)
{
    if (!d) {
        return;
    }
    dpu_ctrl_stop(d);
    kube_recorder_destroy(d->rec);
    dcviews_destroy(d->views);
    kube_exec_destroy(d->exec);
    json_decref(d->due);
    json_decref(d->seen);
    install_slots_destroy(d->slots);
    dpu_certs_memo_destroy(d->memo);
    free(d->tasks);
    free(d->bfb_dir);
    pthread_mutex_destroy(&d->mu);
    free(d);
}
