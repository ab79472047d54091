/* dpulet: Node, Lease, labels and the pods of this node (see dpulet.h). */
#include "dpulet/dpulet.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <time.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysinfo.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dpulet/detect.h"
#include "dpulet/podplan.h"
#include "dpulet/proc.h"
#include "lib/base/base64.h"
#include "lib/base/loop.h"
#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/codecs/yamljson.h"
#include "lib/kube/api-client.h"
#include "lib/kube/kube-object.h"
#include "lib/kube/informer.h"
#include "lib/kube/kube-bootstrap.h"
#include "lib/kube/kube-rest.h"
#include "lib/kube/kubeconfig.h"

LOG_MODULE(dpulet);

#define TICK_MS 200
#define STATIC_SCAN_MS 5000
#define BACKOFF_FIRST_MS 10000
#define BACKOFF_MAX_MS 300000
#define BACKOFF_RESET_MS 600000 /* ran this long: the back-off starts over */
#define MANIFEST_MAX (1 << 20)
#define SECRET_MAX (1 << 20)
#define ROTATE_CHECK_MS 600000 /* is the client certificate due? */

static const struct kube_gvr GVR_NODES = {"", "v1", "nodes", false};
static const struct kube_gvr GVR_PODS = {"", "v1", "pods", true};
static const struct kube_gvr GVR_SECRETS = {"", "v1", "secrets", true};
static const struct kube_gvr GVR_CMS = {"", "v1", "configmaps", true};
static const struct kube_gvr GVR_LEASES = {"coordination.k8s.io", "v1",
                                           "leases", true};

enum ctr_state { CS_WAITING = 0, CS_RUNNING, CS_TERMINATED };

struct probe_state {
    pid_t pid;        /* check in flight, 0 if none */
    int64_t deadline; /* kill the check then (mono ms) */
    int64_t next;     /* next check (mono ms) */
    int ok_run, fail_run;
};

struct run_info { /* one terminated run, for lastState */
    bool set;
    int exit_code, sig;
    char reason[32];
    char message[256];
    int64_t started_ns, finished_ns;
};

struct ctr {
    const struct dpulet_container *spec;
    enum ctr_state state;
    char reason[32];
    char message[256];
    pid_t shim, pid;
    uint64_t shim_start, pid_start;
    int restarts;
    struct run_info cur;  /* started_ns while running; all when terminated */
    struct run_info last; /* lastState.terminated */
    int64_t backoff_ms, next_start; /* restart not before (mono ms) */
    int64_t started_mono;
    bool ready, started, done; /* done: an init container that succeeded */
    bool killing;              /* liveness/startup kill in progress */
    int64_t kill_at;           /* SIGKILL at (mono ms) */
    struct probe_state live, rdy, strt;
    char **envp;
};

struct pod {
    struct pod *next;
    char *key; /* ns/name */
    char *uid;
    json_t *obj; /* the pod as dpulet last saw it */
    struct dpulet_plan *plan;
    char *plan_error;
    bool is_static;
    char *static_hash; /* static pods: kubernetes.io/config.hash */
    char *dir;
    struct ctr *ctrs;
    size_t n_ctrs;
    bool volumes_ready;
    bool terminating; /* deletion: every container is being stopped */
    bool gone;        /* no longer wanted: remove when stopped */
    bool api_delete;  /* delete with grace 0 once stopped */
    int64_t kill_at;  /* SIGKILL at (mono ms) */
    int64_t start_ns;
    json_t *last_status; /* status last written */
    char cond_time[5][40];
    bool cond_val[5];
    bool mirror_ok;
    char *mirror_uid;
};

struct orphan { /* a .run file found at start, not yet claimed */
    char *uid, *ctr, *dir;
    pid_t shim, pid;
    uint64_t shim_start, pid_start;
    int restarts;
    int64_t started_ns;
    bool claimed;
};

struct dpulet {
    struct dpulet_config cfg;
    char *node, *ip, *root, *sysfs, *static_dir, *path;
    struct loop *loop;
    struct kubeconfig *kc;
    struct api_client *api;
    struct kube_rest *rest;
    struct informer *inf;
    json_t *cfg_labels, *cfg_taints;
    json_t *det_labels; /* detection labels last put on the Node */
    bool registered;
    char *node_uid;
    struct loop_timer *tick, *status_t, *lease_t, *detect_t, *static_t;
    struct loop_timer *rotate_t;
    struct pod *pods;
    struct orphan *orphans;
    size_t n_orphans;
    bool orphans_done;
    json_t *removed; /* uid -> when (mono ms): finished, not to re-add */
    pthread_mutex_t snap_lock; /* guards snap (the kubelet API's view) */
    struct snap *snap;
    char cond_time[4][40];
    bool cond_bad[4];
    int64_t boot_ns;
};

/* ------------------------------------------------------------------ */
/* small helpers */

static void
now_rfc3339(char *buf, size_t size)
{
    time_format_rfc3339(time_wall_ns(), buf, size);
}

static void
ns_rfc3339(int64_t ns, char *buf, size_t size)
{
    time_format_rfc3339(ns, buf, size);
}

static const char *
jstr(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static const char *
md_str(const json_t *obj, const char *k)
{
    return jstr(json_object_get(obj, "metadata"), k);
}

static void
strv_free(char **v)
{
    for (char **p = v; p && *p; p++) {
        free(*p);
    }
    free(v);
}

static void
rm_rf(const char *path)
{
    /* only inside our root dir: callers build the path from it */
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) {
            continue;
        }
        char *p = xasprintf("%s/%s", path, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            rm_rf(p);
        } else {
            unlink(p);
        }
        free(p);
    }
    closedir(d);
    rmdir(path);
}

/* ------------------------------------------------------------------ */
/* flags */

int
dpulet_parse_labels(const char *s, json_t **out, struct dpf_error *err)
{
    json_t *l = json_object();
    char *copy = xstrdup(s ? s : ""), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t;
         t = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(t, '=');
        if (!eq || eq == t || strlen(t) > 316) {
            dpf_error_set(err, 400, "BadRequest",
                          "--node-labels: \"%.80s\" is not key=value", t);
            free(copy);
            json_decref(l);
            return -EINVAL;
        }
        *eq = 0;
        json_object_set_new(l, t, json_string(eq + 1));
    }
    free(copy);
    *out = l;
    return 0;
}

int
dpulet_parse_taints(const char *s, json_t **out, struct dpf_error *err)
{
    json_t *a = json_array();
    char *copy = xstrdup(s ? s : ""), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t;
         t = strtok_r(NULL, ",", &save)) {
        char *colon = strrchr(t, ':');
        const char *eff = colon ? colon + 1 : "";
        if (!colon || colon == t ||
            (strcmp(eff, "NoSchedule") && strcmp(eff, "PreferNoSchedule") &&
             strcmp(eff, "NoExecute"))) {
            dpf_error_set(err, 400, "BadRequest",
                          "--register-with-taints: \"%.80s\" is not "
                          "key[=value]:NoSchedule|PreferNoSchedule|NoExecute",
                          t);
            free(copy);
            json_decref(a);
            return -EINVAL;
        }
        *colon = 0;
        char *eq = strchr(t, '=');
        if (eq) {
            *eq = 0;
        }
        json_t *taint = json_pack("{s:s, s:s}", "key", t, "effect", eff);
        if (eq) {
            json_object_set_new(taint, "value", json_string(eq + 1));
        }
        json_array_append_new(a, taint);
    }
    free(copy);
    *out = a;
    return 0;
}

/* ------------------------------------------------------------------ */
/* the Node */

static void
node_base_labels(struct dpulet *d, json_t *labels)
{
    struct utsname u;
    uname(&u);
    const char *arch = !strcmp(u.machine, "x86_64")    ? "amd64"
                       : !strcmp(u.machine, "aarch64") ? "arm64"
                                                       : u.machine;
    json_object_set_new(labels, "kubernetes.io/hostname", json_string(d->node));
    json_object_set_new(labels, "kubernetes.io/os", json_string("linux"));
    json_object_set_new(labels, "kubernetes.io/arch", json_string(arch));
    json_object_set_new(labels, "beta.kubernetes.io/os", json_string("linux"));
    json_object_set_new(labels, "beta.kubernetes.io/arch", json_string(arch));
    json_object_update(labels, d->cfg_labels);
}

static json_t *
detect_now(struct dpulet *d)
{
    struct dpulet_dpu dpus[DPULET_DETECT_MAX];
    size_t n = 0;
    int rc = dpulet_detect_scan(d->sysfs, dpus, DPULET_DETECT_MAX, &n);
    if (rc < 0) {
        log_warn_rl("cannot scan sysfs for DPUs", "root=%s err=%s", d->sysfs,
                    strerror(-rc));
    }
    int oob = dpulet_detect_oob_bridge();
    return dpulet_detect_labels(dpus, n, oob == 1);
}

static char *
read_line_file(const char *path)
{
    char *data;
    size_t len;
    if (file_read_regular(path, 4096, &data, &len) < 0) {
        return xstrdup("");
    }
    data[strcspn(data, "\n")] = 0;
    return data;
}

static char *
os_image(void)
{
    char *data;
    size_t len;
    if (file_read_regular("/etc/os-release", 65536, &data, &len) < 0) {
        return xstrdup("Linux");
    }
    char *p = strstr(data, "PRETTY_NAME=");
    char *out;
    if (p) {
        p += 12;
        if (*p == '"') {
            p++;
        }
        size_t n = strcspn(p, "\"\n");
        out = xstrndup(p, n);
    } else {
        out = xstrdup("Linux");
    }
    free(data);
    return out;
}

static json_t *
node_resources(struct dpulet *d)
{
    struct sysinfo si;
    sysinfo(&si);
    unsigned long long mem_ki =
        (unsigned long long) si.totalram * si.mem_unit / 1024;
    struct statvfs vfs;
    unsigned long long disk_ki = 0;
    if (statvfs(d->root, &vfs) == 0) {
        disk_ki = (unsigned long long) vfs.f_blocks * vfs.f_frsize / 1024;
    }
    char mem[32], disk[32], cpu[16];
    snprintf(mem, sizeof(mem), "%lluKi", mem_ki);
    snprintf(disk, sizeof(disk), "%lluKi", disk_ki);
    snprintf(cpu, sizeof(cpu), "%ld", sysconf(_SC_NPROCESSORS_ONLN));
    return json_pack("{s:s, s:s, s:s, s:s}", "cpu", cpu, "memory", mem,
                     "ephemeral-storage", disk, "pods", "110");
}

/* The four conditions with kubelet's types, reasons and messages. */
static json_t *
node_conditions(struct dpulet *d)
{
    struct sysinfo si;
    sysinfo(&si);
    /* kubelet's default hard eviction thresholds: memory.available<100Mi,
     * nodefs.available<10%; PIDs: the kernel's pid_max nearly used up */
    unsigned long long avail = (unsigned long long) si.freeram * si.mem_unit +
                               (unsigned long long) si.bufferram * si.mem_unit;
    char *avail_s = read_line_file("/proc/meminfo");
    free(avail_s);
    bool mem_bad = avail < 100ULL * 1024 * 1024;
    struct statvfs vfs;
    bool disk_bad = statvfs(d->root, &vfs) == 0 && vfs.f_blocks &&
                    vfs.f_bavail * 10 < vfs.f_blocks;
    char *pm = read_line_file("/proc/sys/kernel/pid_max");
    long pid_max = atol(pm);
    free(pm);
    bool pid_bad = pid_max > 0 && si.procs > pid_max * 0.9;
    struct {
        const char *type;
        bool bad;
        const char *ok_reason, *ok_msg, *bad_reason, *bad_msg;
    } c[4] = {
        {"MemoryPressure", mem_bad, "KubeletHasSufficientMemory",
         "kubelet has sufficient memory available",
         "KubeletHasInsufficientMemory",
         "kubelet has insufficient memory "
         "available"},
        {"DiskPressure", disk_bad, "KubeletHasNoDiskPressure",
         "kubelet has no disk pressure", "KubeletHasDiskPressure",
         "kubelet has disk pressure"},
        {"PIDPressure", pid_bad, "KubeletHasSufficientPID",
         "kubelet has sufficient PID available", "KubeletHasInsufficientPID",
         "kubelet has insufficient PID available"},
        {"Ready", false, "KubeletReady", "kubelet is posting ready status",
         "KubeletNotReady", ""},
    };
    char now[40];
    now_rfc3339(now, sizeof(now));
    json_t *a = json_array();
    for (int i = 0; i < 4; i++) {
        if (!d->cond_time[i][0] || d->cond_bad[i] != c[i].bad) {
            snprintf(d->cond_time[i], sizeof(d->cond_time[i]), "%s", now);
            d->cond_bad[i] = c[i].bad;
        }
        bool status_true = i == 3 ? !c[i].bad : c[i].bad;
        json_array_append_new(
            a, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "type", c[i].type,
                         "status", status_true ? "True" : "False", "reason",
                         c[i].bad ? c[i].bad_reason : c[i].ok_reason, "message",
                         c[i].bad ? c[i].bad_msg : c[i].ok_msg,
                         "lastHeartbeatTime", now, "lastTransitionTime",
                         d->cond_time[i]));
    }
    return a;
}

static json_t *
node_status(struct dpulet *d)
{
    struct utsname u;
    uname(&u);
    char *machine_id = read_line_file("/etc/machine-id");
    char *boot_id = read_line_file("/proc/sys/kernel/random/boot_id");
    char *uuid = read_line_file("/sys/class/dmi/id/product_uuid");
    char *osimg = os_image();
    const char *arch = !strcmp(u.machine, "x86_64")    ? "amd64"
                       : !strcmp(u.machine, "aarch64") ? "arm64"
                                                       : u.machine;
    json_t *res = node_resources(d);
    json_t *st = json_pack(
        "{s:o, s:O, s:O, s:[{s:s, s:s}, {s:s, s:s}], s:{s:{s:i}}, "
        "s:{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}}",
        "conditions", node_conditions(d), "capacity", res, "allocatable", res,
        "addresses", "type", "InternalIP", "address", d->ip, "type", "Hostname",
        "address", d->node, "daemonEndpoints", "kubeletEndpoint", "Port",
        d->cfg.api_port, "nodeInfo", "machineID", machine_id, "systemUUID",
        uuid, "bootID", boot_id, "kernelVersion", u.release, "osImage", osimg,
        "containerRuntimeVersion", "dpulet://" DPF_VERSION, "kubeletVersion",
        "v1.30.0-dpulet." DPF_VERSION, "kubeProxyVersion", "",
        "operatingSystem", "linux", "architecture", arch);
    json_decref(res);
    free(machine_id);
    free(boot_id);
    free(uuid);
    free(osimg);
    return st;
}

static int
node_register(struct dpulet *d)
{
    struct dpf_error err = {0};
    json_t *node = NULL;
    int rc = api_client_get(d->api, &GVR_NODES, NULL, d->node, &node, &err);
    if (rc == -ENOENT) {
        json_t *labels = json_object();
        node_base_labels(d, labels);
        json_object_update(labels, d->det_labels);
        json_t *obj =
            json_pack("{s:s, s:s, s:{s:s, s:o}, s:{s:O}}", "apiVersion", "v1",
                      "kind", "Node", "metadata", "name", d->node, "labels",
                      labels, "spec", "taints", d->cfg_taints);
        rc = api_client_post(d->api, &GVR_NODES, NULL, obj, "dpulet", &node,
                             &err);
        json_decref(obj);
        if (rc == 0) {
            log_info("registered node", "node=%s", d->node);
        }
    } else if (rc == 0) {
        /* adopt: kubelet only sets its labels on an existing Node (taints
         * are a registration-time setting) */
        json_t *labels = json_object();
        const char *k;
        json_t *v;
        json_object_foreach(
            json_object_get(json_object_get(node, "metadata"), "labels"), k, v)
        {
            if (dpulet_detect_owns_label(k)) {
                json_object_set_new(labels, k, json_null()); /* stale */
            }
        }
        json_decref(node);
        node = NULL;
        node_base_labels(d, labels);
        json_object_update(labels, d->det_labels);
        json_t *patch = json_pack("{s:{s:o}}", "metadata", "labels", labels);
        rc = api_client_patch(d->api, &GVR_NODES, NULL, d->node, NULL,
                              API_PATCH_MERGE, patch, "dpulet", &node, &err);
        json_decref(patch);
        if (rc == 0) {
            log_info("adopted existing node", "node=%s", d->node);
        }
    }
    if (rc < 0) {
        log_warn_rl("cannot register node", "node=%s err=\"%s\"", d->node,
                    err.message);
        json_decref(node);
        return rc;
    }
    free(d->node_uid);
    d->node_uid = xstrdup(md_str(node, "uid") ? md_str(node, "uid") : "");
    json_decref(node);
    d->registered = true;
    return 0;
}

static void
node_update_status(struct dpulet *d)
{
    if (!d->api) {
        return;
    }
    if (!d->registered && node_register(d) < 0) {
        return;
    }
    struct dpf_error err = {0};
    json_t *patch = json_pack("{s:o}", "status", node_status(d));
    int rc = api_client_patch(d->api, &GVR_NODES, NULL, d->node, "status",
                              API_PATCH_MERGE, patch, "dpulet", NULL, &err);
    json_decref(patch);
    if (rc == -ENOENT) {
        d->registered = false; /* deleted under us: register again */
    } else if (rc < 0) {
        log_warn_rl("cannot update node status", "node=%s err=\"%s\"", d->node,
                    err.message);
    }
}

static void
on_status_timer(void *arg, struct loop_timer *t)
{
    struct dpulet *d = arg;
    node_update_status(d);
    loop_timer_reset(t, d->cfg.status_ms, 0);
}

static void
lease_renew(struct dpulet *d)
{
    if (!d->api || !d->registered) {
        return;
    }
    char now[64];
    kube_microtime_now(now, sizeof now);
    struct dpf_error err = {0};
    json_t *patch =
        json_pack("{s:{s:s, s:I, s:s}}", "spec", "holderIdentity", d->node,
                  "leaseDurationSeconds", (json_int_t) (d->cfg.lease_ms / 1000),
                  "renewTime", now);
    int rc =
        api_client_patch(d->api, &GVR_LEASES, "kube-node-lease", d->node, NULL,
                         API_PATCH_MERGE, patch, "dpulet", NULL, &err);
    if (rc == -ENOENT) {
        json_t *obj = json_pack(
            "{s:s, s:s, s:{s:s, s:s, s:[{s:s, s:s, s:s, s:s}]}, s:O}",
            "apiVersion", "coordination.k8s.io/v1", "kind", "Lease", "metadata",
            "name", d->node, "namespace", "kube-node-lease", "ownerReferences",
            "apiVersion", "v1", "kind", "Node", "name", d->node, "uid",
            d->node_uid ? d->node_uid : "", "spec",
            json_object_get(patch, "spec"));
        dpf_error_clear(&err);
        rc = api_client_post(d->api, &GVR_LEASES, "kube-node-lease", obj,
                             "dpulet", NULL, &err);
        json_decref(obj);
    }
    json_decref(patch);
    if (rc < 0) {
        log_warn_rl("cannot renew node lease", "node=%s err=\"%s\"", d->node,
                    err.message);
    }
}

static void
on_lease_timer(void *arg, struct loop_timer *t)
{
    struct dpulet *d = arg;
    lease_renew(d);
    loop_timer_reset(t, d->cfg.lease_renew_ms, 0);
}

/* Rescan; patch the Node when the detection labels changed. */
static void
detect_update(struct dpulet *d)
{
    json_t *now = detect_now(d);
    if (json_equal(now, d->det_labels)) {
        json_decref(now);
        return;
    }
    if (d->api && d->registered) {
        json_t *labels = json_deep_copy(now);
        const char *k;
        json_t *v;
        json_object_foreach(d->det_labels, k, v)
        {
            if (!json_object_get(now, k)) {
                json_object_set_new(labels, k, json_null());
            }
        }
        json_t *patch = json_pack("{s:{s:o}}", "metadata", "labels", labels);
        struct dpf_error err = {0};
        int rc = api_client_patch(d->api, &GVR_NODES, NULL, d->node, NULL,
                                  API_PATCH_MERGE, patch, "dpulet", NULL, &err);
        json_decref(patch);
        if (rc < 0) {
            log_warn_rl("cannot update the node's DPU labels",
                        "node=%s err=\"%s\"", d->node, err.message);
            json_decref(now);
            return; /* try again at the next scan */
        }
        log_info("DPU detection labels changed", "node=%s dpus=%zu", d->node,
                 json_object_size(now));
    }
    json_decref(d->det_labels);
    d->det_labels = now;
}

static void
on_detect_timer(void *arg, struct loop_timer *t)
{
    struct dpulet *d = arg;
    detect_update(d);
    loop_timer_reset(t, d->cfg.detect_ms, 0);
}

/* ------------------------------------------------------------------ */
/* pods: files */

static char *
pod_dir_for(struct dpulet *d, const char *ns, const char *name, const char *uid)
{
    return xasprintf("%s/pods/%s_%s_%s", d->root, ns, name, uid);
}

static char *
ctr_log_path(const struct pod *p, const char *ctr, int restarts)
{
    return xasprintf("%s/%s/%d.log", p->dir, ctr, restarts);
}

static char *
ctr_state_path(const struct pod *p, const char *ctr, const char *ext)
{
    return xasprintf("%s/.state/%s.%s", p->dir, ctr, ext);
}

static void
ctr_save(const struct pod *p, const struct ctr *c)
{
    char *path = ctr_state_path(p, c->spec->name, "run");
    char *txt = xasprintf("%d %llu %d %llu %d %lld\n", (int) c->shim,
                          (unsigned long long) c->shim_start, (int) c->pid,
                          (unsigned long long) c->pid_start, c->restarts,
                          (long long) c->cur.started_ns);
    file_write_atomic(path, txt, strlen(txt), 0600);
    free(txt);
    free(path);
}

/* Write a secret's or configMap's keys as files under dir (replacing
 * what was there). */
static int
volume_write_keys(const char *dir, const json_t *data, bool b64, unsigned mode)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *) data, k, v)
    {
        if (!json_is_string(v) || !k[0] || strchr(k, '/') || !strcmp(k, ".") ||
            !strcmp(k, "..")) {
            continue; /* the API validated keys; a bad one is not a path */
        }
        char *path = xasprintf("%s/%s", dir, k);
        int rc;
        if (b64) {
            char *buf = NULL;
            size_t out = 0;
            rc = base64_decode(json_string_value(v), json_string_length(v),
                               BASE64_STRICT, &buf, &out);
            if (rc == 0) {
                rc = file_write_atomic(path, buf, out, mode);
                explicit_bzero(buf, out);
            }
            free(buf);
        } else {
            rc = file_write_atomic(path, json_string_value(v),
                                   json_string_length(v), mode);
        }
        free(path);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* Materialise the pod's volumes. 0, or -errno with *why set. */
static int
pod_volumes(struct dpulet *d, struct pod *p, char **why)
{
    for (size_t i = 0; i < p->plan->n_volumes; i++) {
        const struct dpulet_volume *v = &p->plan->volumes[i];
        char *dir = xasprintf("%s/volumes/%s", p->dir, v->name);
        int rc = 0;
        if (v->kind == DPULET_VOL_HOST_PATH) {
            free(dir);
            struct stat st;
            if (stat(v->source, &st) < 0 &&
                dir_create_all(v->source, 0755) < 0) {
                *why = xasprintf("hostPath volume \"%s\": cannot create %s: "
                                 "%s",
                                 v->name, v->source, strerror(errno));
                return -EIO;
            }
            continue;
        }
        rc = dir_create_all(dir, v->kind == DPULET_VOL_SECRET ? 0700 : 0755);
        if (rc == 0 && (v->kind == DPULET_VOL_SECRET ||
                        v->kind == DPULET_VOL_CONFIG_MAP)) {
            bool secret = v->kind == DPULET_VOL_SECRET;
            json_t *obj = NULL;
            struct dpf_error err = {0};
            if (!d->api) {
                rc = -ENOENT;
                snprintf(err.message, sizeof(err.message),
                         "dpulet runs without an API server");
            } else {
                rc = api_client_get(d->api, secret ? &GVR_SECRETS : &GVR_CMS,
                                    p->plan->ns, v->source, &obj, &err);
            }
            if (rc == -ENOENT && v->optional) {
                rc = 0;
            } else if (rc < 0) {
                *why = xasprintf("%s \"%s\" for volume \"%s\": %s",
                                 secret ? "secret" : "configmap", v->source,
                                 v->name, err.message);
            } else {
                rc = volume_write_keys(dir, json_object_get(obj, "data"),
                                       secret, secret ? 0600 : 0644);
                if (rc == 0 && !secret) {
                    rc = volume_write_keys(
                        dir, json_object_get(obj, "binaryData"), true, 0644);
                }
                if (rc < 0) {
                    *why = xasprintf("volume \"%s\": cannot write files: %s",
                                     v->name, strerror(-rc));
                }
            }
            json_decref(obj);
        } else if (rc < 0) {
            *why = xasprintf("volume \"%s\": cannot create %s: %s", v->name,
                             dir, strerror(-rc));
        }
        free(dir);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* pods: starting containers */

static char *
lookup_path(struct dpulet *d, const char *cmd)
{
    if (strchr(cmd, '/')) {
        return access(cmd, X_OK) == 0 ? xstrdup(cmd) : NULL;
    }
    char *copy = xstrdup(d->path), *save = NULL;
    char *found = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir && !found;
         dir = strtok_r(NULL, ":", &save)) {
        char *p = xasprintf("%s/%s", dir, cmd);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0) {
            found = p;
        } else {
            free(p);
        }
    }
    free(copy);
    return found;
}

static const char *
field_value(struct dpulet *d, const struct pod *p, const char *path)
{
    if (!strcmp(path, "metadata.name")) {
        return p->plan->name;
    }
    if (!strcmp(path, "metadata.namespace")) {
        return p->plan->ns;
    }
    if (!strcmp(path, "metadata.uid")) {
        return p->is_static ? p->uid : (p->plan->uid ? p->plan->uid : "");
    }
    if (!strcmp(path, "spec.nodeName")) {
        return d->node;
    }
    if (!strcmp(path, "spec.serviceAccountName")) {
        const char *sa =
            jstr(json_object_get(p->obj, "spec"), "serviceAccountName");
        return sa ? sa : "default";
    }
    /* status.podIP, status.hostIP: host network only */
    return d->ip;
}

static char **
ctr_env(struct dpulet *d, const struct pod *p, const struct dpulet_container *c)
{
    char **env = xcalloc(c->n_env + 4, sizeof(char *));
    size_t n = 0;
    bool have_path = false, have_host = false;
    for (size_t i = 0; i < c->n_env; i++) {
        const struct dpulet_env *e = &c->env[i];
        const char *v = e->value ? e->value : field_value(d, p, e->field_path);
        /* a later entry with the same name wins, as in Kubernetes */
        size_t k;
        for (k = 0; k < n; k++) {
            size_t nl = strlen(e->name);
            if (!strncmp(env[k], e->name, nl) && env[k][nl] == '=') {
                break;
            }
        }
        char *s = xasprintf("%s=%s", e->name, v);
        if (k < n) {
            free(env[k]);
            env[k] = s;
        } else {
            env[n++] = s;
        }
        have_path |= !strcmp(e->name, "PATH");
        have_host |= !strcmp(e->name, "HOSTNAME");
    }
    if (!have_path) {
        env[n++] = xasprintf("PATH=%s", d->path);
    }
    if (!have_host) {
        env[n++] = xasprintf("HOSTNAME=%s", d->node);
    }
    env[n] = NULL;
    return env;
}

static void
probe_reset(struct probe_state *ps, const struct dpulet_probe *p, int64_t now)
{
    if (ps->pid > 0) {
        kill(-ps->pid, SIGKILL);
    }
    memset(ps, 0, sizeof(*ps));
    ps->next = now + (int64_t) p->initial_delay_s * 1000;
}

static void
ctr_terminated(struct pod *p, struct ctr *c, int code, int sig,
               int64_t finished_ns, const char *reason, const char *message)
{
    (void) p;
    c->state = CS_TERMINATED;
    c->cur.set = true;
    c->cur.exit_code = code;
    c->cur.sig = sig;
    c->cur.finished_ns = finished_ns ? finished_ns : time_wall_ns();
    snprintf(c->cur.reason, sizeof(c->cur.reason), "%s",
             reason      ? reason
             : code == 0 ? "Completed"
                         : "Error");
    snprintf(c->cur.message, sizeof(c->cur.message), "%.255s",
             message ? message : "");
    c->pid = c->shim = 0;
    c->ready = false;
    c->killing = false;
    probe_reset(&c->live, &c->spec->liveness, 0);
    probe_reset(&c->rdy, &c->spec->readiness, 0);
    probe_reset(&c->strt, &c->spec->startup, 0);
}

static void
ctr_start(struct dpulet *d, struct pod *p, struct ctr *c)
{
    const struct dpulet_container *s = c->spec;
    int64_t now = time_mono_ms();
    if (c->cur.set) {
        /* the run that ended becomes lastState; its log stays on disk */
        c->last = c->cur;
        c->restarts++;
    }
    memset(&c->cur, 0, sizeof(c->cur));
    c->state = CS_WAITING;
    char *ldir = xasprintf("%s/%s", p->dir, s->name);
    dir_create_all(ldir, 0755);
    free(ldir);
    char *log = ctr_log_path(p, s->name, c->restarts);
    char *exitp = ctr_state_path(p, s->name, "exit");
    strv_free(c->envp);
    c->envp = ctr_env(d, p, s);
    char *path = lookup_path(d, s->argv[0]);
    struct proc_bind *binds = xcalloc(s->n_mounts + 1, sizeof(*binds));
    char **srcs = xcalloc(s->n_mounts + 1, sizeof(char *));
    for (size_t i = 0; i < s->n_mounts; i++) {
        /* the plan checked that every mount names a volume */
        const struct dpulet_volume *v = &p->plan->volumes[0];
        for (size_t k = 0; k < p->plan->n_volumes; k++) {
            if (!strcmp(p->plan->volumes[k].name, s->mounts[i].volume)) {
                v = &p->plan->volumes[k];
            }
        }
        srcs[i] = v->kind == DPULET_VOL_HOST_PATH
                      ? xstrdup(v->source)
                      : xasprintf("%s/volumes/%s", p->dir, v->name);
        binds[i].source = srcs[i];
        binds[i].target = s->mounts[i].path;
        binds[i].read_only = s->mounts[i].read_only ||
                             v->kind == DPULET_VOL_SECRET ||
                             v->kind == DPULET_VOL_CONFIG_MAP;
    }
    struct proc_started st = {0};
    int rc = -ENOENT;
    c->cur.started_ns = time_wall_ns();
    if (path) {
        struct proc_spec spec = {.path = path,
                                 .argv = s->argv,
                                 .envp = c->envp,
                                 .workdir = s->working_dir,
                                 .binds = binds,
                                 .n_binds = s->n_mounts,
                                 .log_path = log,
                                 .exit_path = exitp};
        rc = proc_start(&spec, &st);
    }
    char msg[512];
    if (!path) {
        snprintf(msg, sizeof(msg),
                 "exec: \"%s\": executable file not found in the node's "
                 "--path (%s)",
                 s->argv[0], d->path);
    } else if (rc < 0) {
        snprintf(msg, sizeof(msg), "cannot start: %s", strerror(-rc));
    } else if (st.exec_errno) {
        snprintf(msg, sizeof(msg), "%s", st.error);
    }
    if (!path || rc < 0 || st.exec_errno) {
        log_warn("container failed to start", "pod=%s container=%s err=\"%s\"",
                 p->key, s->name, msg);
        proc_log_line(log, "stderr", msg);
        /* a start that failed is a run that ended at once: the crash
         * back-off counts from here, as for a container that exited */
        c->started_mono = now;
        ctr_terminated(p, c, 128, 0, 0, "StartError", msg);
    } else {
        c->state = CS_RUNNING;
        c->shim = st.shim;
        c->pid = st.pid;
        c->shim_start = st.shim_start;
        c->pid_start = st.pid_start;
        c->started_mono = now;
        c->started = s->startup.kind == DPULET_PROBE_NONE;
        probe_reset(&c->live, &s->liveness, now);
        probe_reset(&c->rdy, &s->readiness, now);
        probe_reset(&c->strt, &s->startup, now);
        ctr_save(p, c);
        log_info("container started", "pod=%s container=%s pid=%d restarts=%d",
                 p->key, s->name, (int) c->pid, c->restarts);
    }
    for (size_t i = 0; i < s->n_mounts; i++) {
        free(srcs[i]);
    }
    free(srcs);
    free(binds);
    free(path);
    free(log);
    free(exitp);
}

static void
ctr_signal(struct ctr *c, int sig)
{
    if (c->state == CS_RUNNING && proc_alive(c->pid, c->pid_start)) {
        kill(-c->pid, sig); /* its process group: what it started too */
        kill(c->pid, sig);
    }
}

/* ------------------------------------------------------------------ */
/* pods: lifecycle */

/* The pod dpulet runs under that key (one being removed is not). */
static struct pod *
pod_find(struct dpulet *d, const char *key)
{
    for (struct pod *p = d->pods; p; p = p->next) {
        if (!p->gone && !strcmp(p->key, key)) {
            return p;
        }
    }
    return NULL;
}

static struct pod *
pod_find_uid(struct dpulet *d, const char *uid)
{
    for (struct pod *p = d->pods; p; p = p->next) {
        if (!p->is_static && !strcmp(p->uid, uid)) {
            return p;
        }
    }
    return NULL;
}

static void
pod_free(struct pod *p)
{
    for (size_t i = 0; i < p->n_ctrs; i++) {
        strv_free(p->ctrs[i].envp);
    }
    free(p->ctrs);
    dpulet_plan_free(p->plan);
    free(p->plan_error);
    json_decref(p->obj);
    json_decref(p->last_status);
    free(p->key);
    free(p->uid);
    free(p->dir);
    free(p->static_hash);
    free(p->mirror_uid);
    free(p);
}

/* Claim the containers a previous dpulet left running for this pod. */
static void
pod_adopt(struct dpulet *d, struct pod *p)
{
    for (size_t i = 0; i < d->n_orphans; i++) {
        struct orphan *o = &d->orphans[i];
        if (o->claimed || strcmp(o->uid, p->uid)) {
            continue;
        }
        for (size_t k = 0; k < p->n_ctrs; k++) {
            struct ctr *c = &p->ctrs[k];
            if (strcmp(c->spec->name, o->ctr)) {
                continue;
            }
            o->claimed = true;
            c->restarts = o->restarts;
            c->cur.started_ns = o->started_ns;
            c->shim = o->shim;
            c->shim_start = o->shim_start;
            c->pid = o->pid;
            c->pid_start = o->pid_start;
            c->state = CS_RUNNING; /* the tick reads its exit record */
            c->started_mono = time_mono_ms();
            c->started = c->spec->startup.kind == DPULET_PROBE_NONE;
            probe_reset(&c->live, &c->spec->liveness, time_mono_ms());
            probe_reset(&c->rdy, &c->spec->readiness, time_mono_ms());
            probe_reset(&c->strt, &c->spec->startup, time_mono_ms());
            c->envp = ctr_env(d, p, c->spec);
            /* init containers before this one had completed */
            for (size_t j = 0; j < k && c->spec->init == false; j++) {
                if (p->ctrs[j].spec->init) {
                    p->ctrs[j].done = true;
                    p->ctrs[j].state = CS_TERMINATED;
                    p->ctrs[j].cur.set = true;
                    snprintf(p->ctrs[j].cur.reason,
                             sizeof(p->ctrs[j].cur.reason), "Completed");
                }
            }
            for (size_t j = 0; j < k && c->spec->init; j++) {
                p->ctrs[j].done = true;
                p->ctrs[j].state = CS_TERMINATED;
                p->ctrs[j].cur.set = true;
                snprintf(p->ctrs[j].cur.reason, sizeof(p->ctrs[j].cur.reason),
                         "Completed");
            }
            p->volumes_ready = true;
            log_info("adopted running container", "pod=%s container=%s pid=%d",
                     p->key, o->ctr, (int) o->pid);
        }
    }
}

/* A new pod to run (obj borrowed). */
static struct pod *
pod_add(struct dpulet *d, const json_t *obj, bool is_static, const char *uid)
{
    struct pod *p = xcalloc(1, sizeof(*p));
    const char *ns =
        md_str(obj, "namespace") ? md_str(obj, "namespace") : "default";
    const char *name = md_str(obj, "name") ? md_str(obj, "name") : "";
    p->key = xasprintf("%s/%s", ns, name);
    p->uid = xstrdup(uid);
    p->obj = json_deep_copy(obj);
    p->is_static = is_static;
    p->start_ns = time_wall_ns();
    struct dpf_error err = {0};
    if (dpulet_plan_from_pod(obj, &p->plan, &err) < 0) {
        p->plan_error = xstrdup(err.message);
        log_warn("pod cannot run", "pod=%s err=\"%s\"", p->key, err.message);
    } else {
        p->dir = pod_dir_for(d, p->plan->ns, p->plan->name, p->uid);
        char *sd = xasprintf("%s/.state", p->dir);
        dir_create_all(sd, 0700);
        free(sd);
        p->n_ctrs = p->plan->n_containers;
        p->ctrs = xcalloc(p->n_ctrs, sizeof(*p->ctrs));
        for (size_t i = 0; i < p->n_ctrs; i++) {
            p->ctrs[i].spec = &p->plan->containers[i];
            snprintf(p->ctrs[i].reason, sizeof(p->ctrs[i].reason),
                     "ContainerCreating");
        }
        pod_adopt(d, p);
    }
    p->next = d->pods;
    d->pods = p;
    log_info("pod added", "pod=%s uid=%s static=%d", p->key, p->uid,
             (int) is_static);
    return p;
}

/* Begin stopping every container: SIGTERM now, SIGKILL after grace. */
static void
pod_terminate(struct pod *p, int64_t grace_s)
{
    if (p->terminating) {
        return;
    }
    p->terminating = true;
    p->kill_at = time_mono_ms() + grace_s * 1000;
    for (size_t i = 0; i < p->n_ctrs; i++) {
        ctr_signal(&p->ctrs[i], SIGTERM);
    }
    log_info("terminating pod", "pod=%s grace=%llds", p->key,
             (long long) grace_s);
}

static bool
pod_stopped(const struct pod *p)
{
    for (size_t i = 0; i < p->n_ctrs; i++) {
        if (p->ctrs[i].state == CS_RUNNING) {
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------------ */
/* pods: status */

static json_t *
run_terminated_json(const struct pod *p, const struct ctr *c,
                    const struct run_info *r)
{
    char s[40], f[40];
    ns_rfc3339(r->started_ns, s, sizeof(s));
    ns_rfc3339(r->finished_ns, f, sizeof(f));
    json_t *t = json_pack("{s:i, s:s, s:s, s:s}", "exitCode", r->exit_code,
                          "reason", r->reason, "startedAt", s, "finishedAt", f);
    if (r->sig) {
        json_object_set_new(t, "signal", json_integer(r->sig));
    }
    if (r->message[0]) {
        json_object_set_new(t, "message", json_string(r->message));
    }
    (void) p;
    (void) c;
    return t;
}

static bool
ctr_will_restart(const struct pod *p, const struct ctr *c)
{
    if (c->state != CS_TERMINATED || p->terminating) {
        return false;
    }
    if (c->spec->init) {
        return c->cur.exit_code != 0 &&
               p->plan->restart != DPULET_RESTART_NEVER;
    }
    return p->plan->restart == DPULET_RESTART_ALWAYS ||
           (p->plan->restart == DPULET_RESTART_ON_FAILURE &&
            c->cur.exit_code != 0);
}

static json_t *
ctr_status_json(const struct pod *p, const struct ctr *c)
{
    const struct dpulet_container *s = c->spec;
    json_t *state;
    if (c->state == CS_RUNNING) {
        char t[40];
        ns_rfc3339(c->cur.started_ns, t, sizeof(t));
        state = json_pack("{s:{s:s}}", "running", "startedAt", t);
    } else if (c->state == CS_TERMINATED && !ctr_will_restart(p, c)) {
        state = json_pack("{s:o}", "terminated",
                          run_terminated_json(p, c, &c->cur));
    } else {
        json_t *w = json_pack("{s:s}", "reason", c->reason);
        if (c->message[0]) {
            json_object_set_new(w, "message", json_string(c->message));
        }
        state = json_pack("{s:o}", "waiting", w);
    }
    /* a container waiting to restart shows its run as lastState, as
     * kubelet does */
    const struct run_info *last =
        c->state == CS_TERMINATED && ctr_will_restart(p, c) ? &c->cur
                                                            : &c->last;
    json_t *ls = last->set ? json_pack("{s:o}", "terminated",
                                       run_terminated_json(p, c, last))
                           : json_object();
    char cid[300];
    snprintf(cid, sizeof(cid), "dpulet://%s/%s/%d", p->uid, s->name,
             c->restarts);
    return json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:i, s:o, s:o}", "name",
                     s->name, "image", s->image ? s->image : "", "imageID", "",
                     "containerID", cid, "ready", c->ready, "started",
                     c->state == CS_RUNNING && c->started, "restartCount",
                     c->restarts, "state", state, "lastState", ls);
}

enum { COND_SCHEDULED, COND_INITIALIZED, COND_CTRS_READY, COND_READY };

static json_t *
pod_status_json(struct dpulet *d, struct pod *p)
{
    char start[40];
    ns_rfc3339(p->start_ns, start, sizeof(start));
    json_t *st =
        json_pack("{s:s, s:[{s:s}], s:s, s:[{s:s}], s:s, s:s}", "hostIP", d->ip,
                  "hostIPs", "ip", d->ip, "podIP", d->ip, "podIPs", "ip", d->ip,
                  "startTime", start, "qosClass", "BestEffort");
    if (p->plan_error) {
        json_object_set_new(st, "phase", json_string("Failed"));
        json_object_set_new(st, "reason", json_string("UnsupportedPodSpec"));
        json_object_set_new(st, "message", json_string(p->plan_error));
        return st;
    }
    bool init_done = true, init_failed = false;
    json_t *ics = json_array(), *cs = json_array();
    size_t n_ready = 0, n_regular = 0, n_final = 0, n_ok = 0, n_ever = 0;
    for (size_t i = 0; i < p->n_ctrs; i++) {
        struct ctr *c = &p->ctrs[i];
        json_array_append_new(c->spec->init ? ics : cs, ctr_status_json(p, c));
        if (c->spec->init) {
            init_done &= c->done;
            init_failed |= c->state == CS_TERMINATED && !c->done &&
                           !ctr_will_restart(p, c);
            continue;
        }
        n_regular++;
        n_ready += c->ready;
        n_ever += c->state == CS_RUNNING || c->cur.set || c->restarts;
        if (c->state == CS_TERMINATED && !ctr_will_restart(p, c)) {
            n_final++;
            n_ok += c->cur.exit_code == 0;
        }
    }
    const char *phase;
    if (init_failed) {
        phase = "Failed";
    } else if (!init_done) {
        phase = "Pending";
    } else if (n_final == n_regular) {
        phase = n_ok == n_regular ? "Succeeded" : "Failed";
    } else if (n_ever) {
        phase = "Running";
    } else {
        phase = "Pending";
    }
    json_object_set_new(st, "phase", json_string(phase));
    if (json_array_size(ics)) {
        json_object_set_new(st, "initContainerStatuses", ics);
    } else {
        json_decref(ics);
    }
    json_object_set_new(st, "containerStatuses", cs);
    bool all_ready = n_ready == n_regular && !p->terminating;
    bool vals[4] = {true, init_done, all_ready, all_ready};
    static const char *const types[4] = {"PodScheduled", "Initialized",
                                         "ContainersReady", "Ready"};
    json_t *conds = json_array();
    for (int i = 0; i < 4; i++) {
        if (!p->cond_time[i][0] || p->cond_val[i] != vals[i]) {
            now_rfc3339(p->cond_time[i], sizeof(p->cond_time[i]));
            p->cond_val[i] = vals[i];
        }
        json_t *c =
            json_pack("{s:s, s:s, s:n, s:s}", "type", types[i], "status",
                      vals[i] ? "True" : "False", "lastProbeTime",
                      "lastTransitionTime", p->cond_time[i]);
        if (!vals[i] && i == COND_INITIALIZED) {
            json_object_set_new(c, "reason",
                                json_string("ContainersNotInitialized"));
        } else if (!vals[i] && i >= COND_CTRS_READY) {
            json_object_set_new(c, "reason", json_string("ContainersNotReady"));
        }
        json_array_append_new(conds, c);
    }
    json_object_set_new(st, "conditions", conds);
    return st;
}

static void
pod_write_status(struct dpulet *d, struct pod *p)
{
    if (!d->api || (p->is_static && !p->mirror_ok)) {
        return;
    }
    json_t *st = pod_status_json(d, p);
    if (p->last_status && json_equal(st, p->last_status)) {
        json_decref(st);
        return;
    }
    const char *ns =
        md_str(p->obj, "namespace") ? md_str(p->obj, "namespace") : "default";
    const char *name = md_str(p->obj, "name");
    json_t *patch = json_pack("[{s:s, s:s, s:O}]", "op", "add", "path",
                              "/status", "value", st);
    struct dpf_error err = {0};
    int rc = api_client_patch(d->api, &GVR_PODS, ns, name, "status",
                              API_PATCH_JSON, patch, "dpulet", NULL, &err);
    json_decref(patch);
    if (rc < 0) {
        log_warn_rl("cannot write pod status", "pod=%s err=\"%s\"", p->key,
                    err.message);
        json_decref(st);
        if (rc == -ENOENT && p->is_static) {
            p->mirror_ok = false;
        }
        return;
    }
    json_decref(p->last_status);
    p->last_status = st;
}

/* ------------------------------------------------------------------ */
/* pods: the sync */

static void
ctr_after_exit(struct pod *p, struct ctr *c)
{
    int64_t now = time_mono_ms();
    if (c->spec->init && c->cur.exit_code == 0) {
        c->done = true;
        return;
    }
    if (!ctr_will_restart(p, c)) {
        return;
    }
    if (now - c->started_mono >= BACKOFF_RESET_MS) {
        c->backoff_ms = 0;
    }
    int64_t delay = c->backoff_ms;
    c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : BACKOFF_FIRST_MS;
    if (c->backoff_ms > BACKOFF_MAX_MS) {
        c->backoff_ms = BACKOFF_MAX_MS;
    }
    c->next_start = now + delay;
    snprintf(c->reason, sizeof(c->reason), "CrashLoopBackOff");
    snprintf(c->message, sizeof(c->message),
             "back-off %llds restarting failed container=%s pod=%s_%s(%s)",
             (long long) (delay / 1000), c->spec->name, p->plan->name,
             p->plan->ns, p->uid);
}

/* Has a running container ended? */
static void
ctr_check_exit(struct pod *p, struct ctr *c)
{
    if (c->state != CS_RUNNING) {
        return;
    }
    char *exitp = ctr_state_path(p, c->spec->name, "exit");
    int code = 0, sig = 0;
    int64_t fin = 0;
    int rc = proc_read_exit(exitp, &code, &sig, &fin);
    free(exitp);
    if (rc == 0 && (proc_alive(c->shim, c->shim_start) ||
                    proc_alive(c->pid, c->pid_start))) {
        return;
    }
    const char *reason = NULL;
    char msg[256] = "";
    if (rc <= 0) {
        /* the shim died without a record (killed): the container is
         * gone or orphaned; stop what is left */
        if (proc_alive(c->pid, c->pid_start)) {
            kill(-c->pid, SIGKILL);
        }
        code = 137;
        reason = "Error";
        snprintf(msg, sizeof(msg),
                 "the container's shim ended without an "
                 "exit record");
    } else if (c->killing) {
        reason = "Error";
    }
    log_info("container exited", "pod=%s container=%s code=%d signal=%d",
             p->key, c->spec->name, code, sig);
    ctr_terminated(p, c, code, sig, fin, reason, msg[0] ? msg : NULL);
    ctr_after_exit(p, c);
}

static void
ctr_kill_for_probe(struct pod *p, struct ctr *c, const char *which)
{
    if (c->killing) {
        return;
    }
    log_info("probe failed: restarting container",
             "pod=%s container=%s "
             "probe=%s",
             p->key, c->spec->name, which);
    c->killing = true;
    c->kill_at = time_mono_ms() + p->plan->grace_s * 1000;
    ctr_signal(c, SIGTERM);
}

static void
probe_result(struct pod *p, struct ctr *c, struct probe_state *ps, bool ok)
{
    const struct dpulet_container *s = c->spec;
    if (ok) {
        ps->ok_run++;
        ps->fail_run = 0;
    } else {
        ps->fail_run++;
        ps->ok_run = 0;
    }
    if (ps == &c->strt) {
        if (ok) {
            c->started = true;
        } else if (ps->fail_run >= s->startup.failure_threshold) {
            ctr_kill_for_probe(p, c, "startup");
        }
    } else if (ps == &c->live) {
        if (!ok && ps->fail_run >= s->liveness.failure_threshold) {
            ctr_kill_for_probe(p, c, "liveness");
        }
    } else {
        if (ok && ps->ok_run >= s->readiness.success_threshold) {
            c->ready = true;
        } else if (!ok && ps->fail_run >= s->readiness.failure_threshold) {
            c->ready = false;
        }
    }
}

static void
probe_tick(struct dpulet *d, struct pod *p, struct ctr *c,
           struct probe_state *ps, const struct dpulet_probe *pr)
{
    int64_t now = time_mono_ms();
    if (pr->kind == DPULET_PROBE_NONE) {
        return;
    }
    if (ps->pid > 0) {
        if (now >= ps->deadline) {
            kill(-ps->pid, SIGKILL); /* reaped as a failure */
        }
        return;
    }
    if (now < ps->next) {
        return;
    }
    ps->next = now + (int64_t) pr->period_s * 1000;
    pid_t pid = proc_probe(pr, c->pid, c->envp, d->ip);
    if (pid < 0) {
        probe_result(p, c, ps, false);
        return;
    }
    ps->pid = pid;
    ps->deadline = now + (int64_t) pr->timeout_s * 1000;
}

static void
ctr_probes(struct dpulet *d, struct pod *p, struct ctr *c)
{
    const struct dpulet_container *s = c->spec;
    if (c->state != CS_RUNNING || c->killing || p->terminating) {
        return;
    }
    if (!c->started) {
        probe_tick(d, p, c, &c->strt, &s->startup);
        return;
    }
    probe_tick(d, p, c, &c->live, &s->liveness);
    probe_tick(d, p, c, &c->rdy, &s->readiness);
    if (s->readiness.kind == DPULET_PROBE_NONE) {
        c->ready = true;
    }
}

/* A reaped child: a probe's result, or a shim (its record says the rest). */
static void
on_child(struct dpulet *d, pid_t pid, int status)
{
    for (struct pod *p = d->pods; p; p = p->next) {
        for (size_t i = 0; i < p->n_ctrs; i++) {
            struct ctr *c = &p->ctrs[i];
            struct probe_state *ps[3] = {&c->live, &c->rdy, &c->strt};
            for (int k = 0; k < 3; k++) {
                if (ps[k]->pid == pid) {
                    ps[k]->pid = 0;
                    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
                    if (c->state == CS_RUNNING && !c->killing) {
                        probe_result(p, c, ps[k], ok);
                    }
                    return;
                }
            }
        }
    }
}

static void
pod_delete_api(struct dpulet *d, struct pod *p)
{
    const char *ns = md_str(p->obj, "namespace");
    const char *name = md_str(p->obj, "name");
    /* a mirror pod has its own uid: no precondition then */
    const char *uid = p->is_static ? p->mirror_uid : md_str(p->obj, "uid");
    char *path = kube_path(&GVR_PODS, ns, name, NULL);
    json_t *opts = json_pack("{s:s, s:s, s:i}", "kind", "DeleteOptions",
                             "apiVersion", "v1", "gracePeriodSeconds", 0);
    if (uid) {
        json_object_set_new(opts, "preconditions",
                            json_pack("{s:s}", "uid", uid));
    }
    char *body = json_dumps(opts, JSON_COMPACT);
    struct kube_request req = {.method = "DELETE",
                               .path = path,
                               .body = body,
                               .body_len = strlen(body)};
    struct kube_response resp = {0};
    struct dpf_error err = {0};
    int rc = api_client_request(d->api, &req, &resp, &err);
    if (rc == 0 && resp.status >= 300 && resp.status != 404 &&
        resp.status != 409) {
        log_warn_rl("cannot delete terminated pod", "pod=%s status=%ld", p->key,
                    resp.status);
    }
    kube_response_free(&resp);
    free(body);
    json_decref(opts);
    free(path);
}

static void
mirror_sync(struct dpulet *d, struct pod *p)
{
    if (!d->api || !p->is_static || p->mirror_ok || p->gone || p->plan_error) {
        return;
    }
    const char *ns = p->plan->ns, *name = p->plan->name;
    json_t *cur = NULL;
    struct dpf_error err = {0};
    int rc = api_client_get(d->api, &GVR_PODS, ns, name, &cur, &err);
    if (rc == 0) {
        const char *m = jstr(
            json_object_get(json_object_get(cur, "metadata"), "annotations"),
            "kubernetes.io/config.mirror");
        if (m && !strcmp(m, p->static_hash) &&
            !md_str(cur, "deletionTimestamp")) {
            p->mirror_ok = true;
            free(p->mirror_uid);
            p->mirror_uid =
                md_str(cur, "uid") ? xstrdup(md_str(cur, "uid")) : NULL;
            json_decref(p->last_status);
            p->last_status = NULL;
            json_decref(cur);
            return;
        }
        json_decref(cur);
        /* an older mirror (or a pod in the way): replace it, as kubelet
         * does */
        char *path = kube_path(&GVR_PODS, ns, name, NULL);
        struct kube_request req = {
            .method = "DELETE", .path = path, .query = "gracePeriodSeconds=0"};
        struct kube_response resp = {0};
        api_client_request(d->api, &req, &resp, &err);
        kube_response_free(&resp);
        free(path);
        return; /* create at the next sync, once it is gone */
    } else if (rc != -ENOENT) {
        return;
    }
    json_t *obj = json_deep_copy(p->obj);
    json_t *md = json_object_get(obj, "metadata");
    json_object_del(md, "uid");
    json_object_del(md, "resourceVersion");
    json_t *ann = json_object_get(md, "annotations");
    if (!json_is_object(ann)) {
        ann = json_object();
        json_object_set_new(md, "annotations", ann);
    }
    json_object_set_new(ann, "kubernetes.io/config.mirror",
                        json_string(p->static_hash));
    json_object_set_new(ann, "kubernetes.io/config.hash",
                        json_string(p->static_hash));
    json_object_set_new(ann, "kubernetes.io/config.source",
                        json_string("file"));
    json_object_set_new(md, "ownerReferences",
                        json_pack("[{s:s, s:s, s:s, s:s, s:b}]", "apiVersion",
                                  "v1", "kind", "Node", "name", d->node, "uid",
                                  d->node_uid ? d->node_uid : "", "controller",
                                  1));
    json_object_del(obj, "status");
    json_t *created = NULL;
    rc = api_client_post(d->api, &GVR_PODS, ns, obj, "dpulet", &created, &err);
    json_decref(obj);
    if (rc == 0) {
        log_info("created mirror pod", "pod=%s", p->key);
        p->mirror_ok = true;
        free(p->mirror_uid);
        p->mirror_uid =
            md_str(created, "uid") ? xstrdup(md_str(created, "uid")) : NULL;
        json_decref(p->last_status);
        p->last_status = NULL;
    } else {
        log_warn_rl("cannot create mirror pod", "pod=%s err=\"%s\"", p->key,
                    err.message);
    }
    json_decref(created);
}

/* One pod's step. Returns true when the pod is finished and removed. */
static bool
pod_step(struct dpulet *d, struct pod *p)
{
    int64_t now = time_mono_ms();
    if (p->plan_error) {
        if (p->gone) {
            return true;
        }
        pod_write_status(d, p);
        return false;
    }
    for (size_t i = 0; i < p->n_ctrs; i++) {
        ctr_check_exit(p, &p->ctrs[i]);
        struct ctr *c = &p->ctrs[i];
        if (c->killing && c->state == CS_RUNNING && now >= c->kill_at) {
            ctr_signal(c, SIGKILL);
        }
    }
    if (p->terminating) {
        if (!pod_stopped(p)) {
            if (now >= p->kill_at) {
                for (size_t i = 0; i < p->n_ctrs; i++) {
                    ctr_signal(&p->ctrs[i], SIGKILL);
                }
            }
            pod_write_status(d, p);
            return false;
        }
        if (p->gone) {
            /* the final status goes out first (it may read the logs),
             * then the directory goes, and only then the API object:
             * whoever sees the pod gone finds nothing of it left here */
            bool del = p->api_delete && d->api;
            if (del) {
                pod_write_status(d, p);
            }
            rm_rf(p->dir);
            if (del) {
                pod_delete_api(d, p);
            }
            log_info("pod removed", "pod=%s", p->key);
            return true;
        }
        pod_write_status(d, p);
        return false;
    }
    mirror_sync(d, p);
    if (!p->volumes_ready) {
        char *why = NULL;
        if (pod_volumes(d, p, &why) < 0) {
            for (size_t i = 0; i < p->n_ctrs; i++) {
                snprintf(p->ctrs[i].reason, sizeof(p->ctrs[i].reason),
                         "ContainerCreating");
                snprintf(p->ctrs[i].message, sizeof(p->ctrs[i].message), "%s",
                         why);
            }
            log_warn_rl("pod volumes not ready", "pod=%s err=\"%s\"", p->key,
                        why);
            free(why);
            pod_write_status(d, p);
            return false;
        }
        p->volumes_ready = true;
        for (size_t i = 0; i < p->n_ctrs; i++) {
            p->ctrs[i].message[0] = 0;
        }
    }
    /* init containers one at a time, in order */
    bool init_done = true;
    for (size_t i = 0; i < p->n_ctrs && init_done; i++) {
        struct ctr *c = &p->ctrs[i];
        if (!c->spec->init || c->done) {
            continue;
        }
        init_done = false;
        if (c->state == CS_WAITING && !c->cur.set) {
            ctr_start(d, p, c);
            if (c->state == CS_TERMINATED) {
                ctr_after_exit(p, c);
            }
        } else if (c->state == CS_TERMINATED && ctr_will_restart(p, c) &&
                   now >= c->next_start) {
            ctr_start(d, p, c);
            if (c->state == CS_TERMINATED) {
                ctr_after_exit(p, c);
            }
        }
        if (c->done) {
            init_done = true;
        }
    }
    if (init_done) {
        for (size_t i = 0; i < p->n_ctrs; i++) {
            struct ctr *c = &p->ctrs[i];
            if (c->spec->init) {
                continue;
            }
            bool fresh = c->state == CS_WAITING && !c->cur.set;
            bool again = c->state == CS_TERMINATED && ctr_will_restart(p, c) &&
                         now >= c->next_start;
            if (fresh || again) {
                ctr_start(d, p, c);
                if (c->state == CS_TERMINATED) {
                    ctr_after_exit(p, c);
                }
            }
            ctr_probes(d, p, c);
        }
    }
    pod_write_status(d, p);
    return false;
}

/* ------------------------------------------------------------------ */
/* the sets of pods: API, static, orphans */

static bool
is_mirror(const json_t *obj)
{
    return jstr(
               json_object_get(json_object_get(obj, "metadata"), "annotations"),
               "kubernetes.io/config.mirror") != NULL;
}

static void
pod_retire(struct pod *p, int64_t grace_s, bool api_delete)
{
    p->gone = true; /* a new incarnation may take the key */
    p->api_delete |= api_delete;
    if (p->plan) {
        pod_terminate(p, grace_s);
    }
}

static void
sync_api_pods(struct dpulet *d)
{
    if (!d->inf || !informer_has_synced(d->inf)) {
        return;
    }
    json_t *list = kube_cache_list(informer_cache(d->inf));
    size_t i;
    json_t *obj;
    json_array_foreach(list, i, obj)
    {
        if (is_mirror(obj)) {
            continue;
        }
        const char *ns = md_str(obj, "namespace");
        const char *name = md_str(obj, "name");
        const char *uid = md_str(obj, "uid");
        if (!ns || !name || !uid) {
            continue;
        }
        struct pod *p = pod_find_uid(d, uid);
        if (!p && json_object_get(d->removed, uid)) {
            continue; /* removed; the cache has not seen the delete yet */
        }
        if (!p) {
            char *key = xasprintf("%s/%s", ns, name);
            struct pod *old = pod_find(d, key);
            free(key);
            if (old && !old->is_static) {
                pod_retire(old, old->plan ? old->plan->grace_s : 0, false);
            }
        }
        if (!p) {
            const char *phase = jstr(json_object_get(obj, "status"), "phase");
            if (phase &&
                (!strcmp(phase, "Succeeded") || !strcmp(phase, "Failed")) &&
                !md_str(obj, "deletionTimestamp")) {
                /* finished before this dpulet started: nothing to run */
                bool adopted = false;
                for (size_t k = 0; k < d->n_orphans; k++) {
                    adopted |= !strcmp(d->orphans[k].uid, uid);
                }
                if (!adopted) {
                    continue;
                }
            }
            p = pod_add(d, obj, false, uid);
        } else if (!json_equal(p->obj, obj)) {
            json_decref(p->obj);
            p->obj = json_deep_copy(obj);
        }
        if (md_str(obj, "deletionTimestamp") && !p->gone) {
            json_t *g = json_object_get(json_object_get(obj, "metadata"),
                                        "deletionGracePeriodSeconds");
            int64_t grace = json_is_integer(g) ? json_integer_value(g)
                            : p->plan          ? p->plan->grace_s
                                               : 0;
            pod_retire(p, grace, true);
        }
    }
    /* pods that left the cache: deleted at once, or bound elsewhere */
    for (struct pod *p = d->pods; p; p = p->next) {
        if (p->is_static || p->gone) {
            continue;
        }
        bool found = false;
        json_array_foreach(list, i, obj)
        {
            const char *uid = md_str(obj, "uid");
            found |= uid && !strcmp(uid, p->uid);
        }
        if (!found) {
            pod_retire(p, p->plan ? p->plan->grace_s : 0, false);
        }
    }
    json_decref(list);
}

static uint64_t
fnv64(const void *data, size_t n, uint64_t h)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* Read one manifest into a pod object named <name>-<node>, bound to this
 * node. NULL with a log line naming the file when it is not a pod. */
static json_t *
static_load(struct dpulet *d, const char *path, char *hash, size_t hsize)
{
    char *text;
    size_t len;
    int rc = file_read_regular(path, MANIFEST_MAX, &text, &len);
    if (rc < 0) {
        log_warn_rl("cannot read static pod manifest", "file=%s err=%s%s", path,
                    strerror(-rc), rc == -EFBIG ? " (larger than 1 MiB)" : "");
        return NULL;
    }
    json_t *doc = NULL;
    struct dpf_error err = {0};
    rc = yamljson_parse_one(text, len, &doc, &err);
    uint64_t h = fnv64(text, len, 14695981039346656037ULL);
    h = fnv64(d->node, strlen(d->node), h);
    free(text);
    if (rc < 0) {
        log_warn_rl("static pod manifest is not YAML", "file=%s err=\"%s\"",
                    path, err.message);
        return NULL;
    }
    const char *kind = jstr(doc, "kind");
    const char *name = md_str(doc, "name");
    if (!json_is_object(doc) || !kind || strcmp(kind, "Pod") || !name ||
        strlen(name) > 200) {
        log_warn_rl("static pod manifest is not a Pod",
                    "file=%s "
                    "err=\"kind must be Pod and metadata.name at most 200 "
                    "bytes\"",
                    path);
        json_decref(doc);
        return NULL;
    }
    snprintf(hash, hsize, "%016llx", (unsigned long long) h);
    json_t *md = json_object_get(doc, "metadata");
    char *full = xasprintf("%s-%s", name, d->node);
    json_object_set_new(md, "name", json_string(full));
    free(full);
    if (!md_str(doc, "namespace")) {
        json_object_set_new(md, "namespace", json_string("default"));
    }
    json_object_set_new(md, "uid", json_string(hash));
    json_t *spec = json_object_get(doc, "spec");
    if (json_is_object(spec)) {
        json_object_set_new(spec, "nodeName", json_string(d->node));
    }
    return doc;
}

static void
sync_static_pods(struct dpulet *d)
{
    if (!d->static_dir) {
        return;
    }
    DIR *dir = opendir(d->static_dir);
    json_t *seen = json_object(); /* uid -> true */
    struct dirent *e;
    size_t count = 0;
    while (dir && (e = readdir(dir)) && count < 256) {
        const char *n = e->d_name;
        if (n[0] == '.' ||
            !(str_has_suffix(n, ".yaml") || str_has_suffix(n, ".yml") ||
              str_has_suffix(n, ".json"))) {
            continue;
        }
        count++;
        char *path = xasprintf("%s/%s", d->static_dir, n);
        char hash[32];
        json_t *doc = static_load(d, path, hash, sizeof(hash));
        free(path);
        if (!doc) {
            continue;
        }
        char *key =
            xasprintf("%s/%s", md_str(doc, "namespace"), md_str(doc, "name"));
        struct pod *p = pod_find(d, key);
        free(key);
        if (p && p->is_static && strcmp(p->uid, hash)) {
            log_info("static pod manifest changed: restarting", "pod=%s",
                     p->key);
            pod_retire(p, p->plan ? p->plan->grace_s : 0, false);
            p = NULL;
        }
        if (!p) {
            p = pod_add(d, doc, true, hash);
            p->static_hash = xstrdup(hash);
        }
        if (p->is_static) {
            json_object_set_new(seen, hash, json_true());
        }
        json_decref(doc);
    }
    if (dir) {
        closedir(dir);
    }
    for (struct pod *p = d->pods; p; p = p->next) {
        if (p->is_static && !p->gone && !json_object_get(seen, p->uid)) {
            log_info("static pod manifest removed", "pod=%s", p->key);
            /* its mirror pod goes with it */
            if (d->api && p->plan) {
                p->api_delete = true;
            }
            pod_retire(p, p->plan ? p->plan->grace_s : 0, d->api != NULL);
        }
    }
    json_decref(seen);
}

static void
orphans_scan(struct dpulet *d)
{
    char *pods = xasprintf("%s/pods", d->root);
    DIR *dir = opendir(pods);
    struct dirent *e;
    while (dir && (e = readdir(dir))) {
        if (e->d_name[0] == '.') {
            continue;
        }
        /* <ns>_<name>_<uid>: the uid is after the last '_' */
        const char *us = strrchr(e->d_name, '_');
        if (!us) {
            continue;
        }
        char *sdir = xasprintf("%s/%s/.state", pods, e->d_name);
        DIR *sd = opendir(sdir);
        struct dirent *f;
        while (sd && (f = readdir(sd))) {
            if (!str_has_suffix(f->d_name, ".run")) {
                continue;
            }
            char *rp = xasprintf("%s/%s", sdir, f->d_name);
            char *txt;
            size_t len;
            if (file_read_regular(rp, 512, &txt, &len) == 0) {
                struct orphan o = {0};
                int shim, pid;
                unsigned long long ss, ps;
                long long started;
                if (sscanf(txt, "%d %llu %d %llu %d %lld", &shim, &ss, &pid,
                           &ps, &o.restarts, &started) == 6) {
                    o.shim = shim;
                    o.pid = pid;
                    o.shim_start = ss;
                    o.pid_start = ps;
                    o.started_ns = started;
                    o.uid = xstrdup(us + 1);
                    o.ctr = xstrndup(f->d_name, strlen(f->d_name) - 4);
                    o.dir = xasprintf("%s/%s", pods, e->d_name);
                    d->orphans =
                        xrealloc(d->orphans, (d->n_orphans + 1) * sizeof(o));
                    d->orphans[d->n_orphans++] = o;
                }
                free(txt);
            }
            free(rp);
        }
        if (sd) {
            closedir(sd);
        }
        free(sdir);
    }
    if (dir) {
        closedir(dir);
    }
    free(pods);
}

/* After the first full sync: stop what nobody claimed, remove the
 * directories of pods dpulet no longer runs. */
static void
orphans_finish(struct dpulet *d)
{
    for (size_t i = 0; i < d->n_orphans; i++) {
        struct orphan *o = &d->orphans[i];
        if (!o->claimed && proc_alive(o->pid, o->pid_start)) {
            log_info("killing orphaned container",
                     "uid=%s container=%s "
                     "pid=%d",
                     o->uid, o->ctr, (int) o->pid);
            kill(-o->pid, SIGKILL);
            kill(o->pid, SIGKILL);
        }
    }
    char *pods = xasprintf("%s/pods", d->root);
    DIR *dir = opendir(pods);
    struct dirent *e;
    while (dir && (e = readdir(dir))) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char *path = xasprintf("%s/%s", pods, e->d_name);
        bool used = false;
        for (struct pod *p = d->pods; p; p = p->next) {
            used |= p->dir && !strcmp(p->dir, path);
        }
        if (!used) {
            rm_rf(path);
        }
        free(path);
    }
    if (dir) {
        closedir(dir);
    }
    free(pods);
    for (size_t i = 0; i < d->n_orphans; i++) {
        free(d->orphans[i].uid);
        free(d->orphans[i].ctr);
        free(d->orphans[i].dir);
    }
    free(d->orphans);
    d->orphans = NULL;
    d->n_orphans = 0;
    d->orphans_done = true;
}

static void snap_publish(struct dpulet *d);

static void
on_tick(void *arg, struct loop_timer *t)
{
    struct dpulet *d = arg;
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        on_child(d, pid, status);
    }
    sync_api_pods(d);
    if (!d->orphans_done && (!d->inf || informer_has_synced(d->inf))) {
        orphans_finish(d);
    }
    struct pod **pp = &d->pods;
    while (*pp) {
        struct pod *p = *pp;
        if (pod_step(d, p)) {
            if (!p->is_static) {
                json_object_set_new(d->removed, p->uid,
                                    json_integer(time_mono_ms()));
            }
            *pp = p->next;
            pod_free(p);
        } else {
            pp = &p->next;
        }
    }
    snap_publish(d);
    const char *uid;
    json_t *when, *tmp;
    json_object_foreach_safe(d->removed, tmp, uid, when)
    {
        if (time_mono_ms() - json_integer_value(when) > 120000) {
            json_object_del(d->removed, uid);
        }
    }
    loop_timer_reset(t, TICK_MS, 0);
}

static void
on_static_timer(void *arg, struct loop_timer *t)
{
    struct dpulet *d = arg;
    sync_static_pods(d);
    loop_timer_reset(t, STATIC_SCAN_MS, 0);
}

/* ------------------------------------------------------------------ */
/* hooks for the kubelet API: a snapshot the API's threads read */

struct snap_ctr {
    char *ns, *pod, *name, *dir;
    int restarts;
    bool running;
    pid_t pid;
    char **envp;
    char *cwd;
};

struct snap {
    size_t n;
    struct snap_ctr *c;
    json_t *pods; /* the pod objects, with the status dpulet computed */
};

static char **
strv_dup(char *const *v)
{
    size_t n = 0;
    while (v && v[n]) {
        n++;
    }
    char **out = xcalloc(n + 1, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        out[i] = xstrdup(v[i]);
    }
    return out;
}

static void
snap_free(struct snap *sn)
{
    if (!sn) {
        return;
    }
    for (size_t i = 0; i < sn->n; i++) {
        free(sn->c[i].ns);
        free(sn->c[i].pod);
        free(sn->c[i].name);
        free(sn->c[i].dir);
        free(sn->c[i].cwd);
        strv_free(sn->c[i].envp);
    }
    free(sn->c);
    json_decref(sn->pods);
    free(sn);
}

/* Publish what the API may ask about (loop thread, after each tick). */
static void
snap_publish(struct dpulet *d)
{
    struct snap *sn = xcalloc(1, sizeof(*sn));
    sn->pods = json_array();
    size_t cap = 0;
    for (struct pod *p = d->pods; p; p = p->next) {
        if (p->gone || !p->plan) {
            continue;
        }
        json_t *obj = json_deep_copy(p->obj);
        json_object_set_new(obj, "status", pod_status_json(d, p));
        json_array_append_new(sn->pods, obj);
        for (size_t i = 0; i < p->n_ctrs; i++) {
            const struct ctr *c = &p->ctrs[i];
            if (sn->n == cap) {
                cap = cap ? cap * 2 : 16;
                sn->c = xrealloc(sn->c, cap * sizeof(*sn->c));
            }
            struct snap_ctr *x = &sn->c[sn->n++];
            x->ns = xstrdup(p->plan->ns);
            x->pod = xstrdup(p->plan->name);
            x->name = xstrdup(c->spec->name);
            x->dir = xstrdup(p->dir);
            x->restarts = c->restarts;
            x->running = c->state == CS_RUNNING;
            x->pid = x->running ? c->pid : 0;
            x->envp = strv_dup(c->envp);
            x->cwd =
                c->spec->working_dir ? xstrdup(c->spec->working_dir) : NULL;
        }
    }
    pthread_mutex_lock(&d->snap_lock);
    struct snap *old = d->snap;
    d->snap = sn;
    pthread_mutex_unlock(&d->snap_lock);
    snap_free(old);
}

/* Find ns/pod/container in the snapshot (lock held). */
static const struct snap_ctr *
snap_find(struct dpulet *d, const char *ns, const char *pod,
          const char *container, struct dpf_error *err, int *rc)
{
    bool pod_seen = false;
    const struct snap_ctr *first = NULL;
    for (size_t i = 0; d->snap && i < d->snap->n; i++) {
        const struct snap_ctr *x = &d->snap->c[i];
        if (strcmp(x->ns, ns) || strcmp(x->pod, pod)) {
            continue;
        }
        pod_seen = true;
        if (!first) {
            first = x;
        }
        if (container && container[0] && !strcmp(x->name, container)) {
            return x;
        }
    }
    if (pod_seen && (!container || !container[0])) {
        return first;
    }
    if (!pod_seen) {
        dpf_error_set(err, 404, "NotFound",
                      "pod \"%s\" in namespace \"%s\" "
                      "is not running on node %s",
                      pod, ns, d->node);
        *rc = -ENOENT;
    } else {
        dpf_error_set(err, 400, "BadRequest",
                      "container %s is not valid for pod %s", container, pod);
        *rc = -ESRCH;
    }
    return NULL;
}

static int
hook_log_path(void *arg, const char *ns, const char *pod, const char *container,
              bool previous, char **path, bool *running, struct dpf_error *err)
{
    struct dpulet *d = arg;
    int rc = 0;
    pthread_mutex_lock(&d->snap_lock);
    const struct snap_ctr *x = snap_find(d, ns, pod, container, err, &rc);
    if (x && previous && x->restarts == 0) {
        dpf_error_set(err, 400, "BadRequest",
                      "previous terminated container \"%s\" in pod \"%s\" "
                      "not found",
                      x->name, pod);
        rc = -ENODATA;
    } else if (x) {
        *path = xasprintf("%s/%s/%d.log", x->dir, x->name,
                          previous ? x->restarts - 1 : x->restarts);
        *running = !previous && x->running;
    }
    pthread_mutex_unlock(&d->snap_lock);
    return rc;
}

static int
hook_exec(void *arg, const char *ns, const char *pod, const char *container,
          pid_t *pid, char ***envp, char **cwd, struct dpf_error *err)
{
    struct dpulet *d = arg;
    int rc = 0;
    pthread_mutex_lock(&d->snap_lock);
    const struct snap_ctr *x = snap_find(d, ns, pod, container, err, &rc);
    if (x && !x->running) {
        dpf_error_set(err, 400, "BadRequest",
                      "container %s in pod %s is not running", x->name, pod);
        rc = -EAGAIN;
    } else if (x) {
        *pid = x->pid;
        *envp = strv_dup(x->envp);
        *cwd = x->cwd ? xstrdup(x->cwd) : NULL;
    }
    pthread_mutex_unlock(&d->snap_lock);
    return rc;
}

static json_t *
hook_list_pods(void *arg)
{
    struct dpulet *d = arg;
    pthread_mutex_lock(&d->snap_lock);
    json_t *out = d->snap ? json_deep_copy(d->snap->pods) : json_array();
    pthread_mutex_unlock(&d->snap_lock);
    return out;
}

void
dpulet_get_hooks(struct dpulet *d, struct dpulet_hooks *out)
{
    out->container_log_path = hook_log_path;
    out->container_exec = hook_exec;
    out->list_pods = hook_list_pods;
    out->arg = d;
}

/* ------------------------------------------------------------------ */
/* start / stop */

static void
on_pod_event(void *arg, const json_t *obj)
{
    (void) arg;
    (void) obj; /* the tick reads the cache */
}

static void
on_pod_update(void *arg, const json_t *o, const json_t *n)
{
    (void) o;
    on_pod_event(arg, n);
}

static void on_pod_event(void *arg, const json_t *obj);
static void on_pod_update(void *arg, const json_t *o, const json_t *n);

/* (Re)make the API clients and the pod informer from the kubeconfig file:
 * at start, and after the client certificate was renewed. Loop thread. */
static int
dpulet_connect(struct dpulet *d, struct dpf_error *err)
{
    struct kubeconfig *kc = NULL;
    struct kubeconfig_options ko = {.path = d->cfg.kubeconfig};
    struct api_client *api = NULL;
    struct kube_rest *rest = NULL;
    if (kubeconfig_load(&ko, &kc, err) < 0 ||
        !(api = api_client_create(kc, err)) ||
        !(rest = kube_rest_create(d->loop, kc, err))) {
        api_client_destroy(api);
        kubeconfig_free(kc);
        return -EINVAL;
    }
    bool restart = d->inf != NULL;
    informer_destroy(d->inf);
    kube_rest_destroy(d->rest);
    api_client_destroy(d->api);
    kubeconfig_free(d->kc);
    d->kc = kc;
    d->api = api;
    d->rest = rest;
    api_client_set_timeout(d->api, 10000);
    api_client_set_user_agent(d->api, "dpulet/" DPF_VERSION);
    kube_rest_set_user_agent(d->rest, "dpulet/" DPF_VERSION);
    char *fs = xasprintf("spec.nodeName=%s", d->node);
    struct informer_options io = {.gvr = GVR_PODS, .field_selector = fs};
    d->inf = informer_create(d->rest, &io);
    free(fs);
    struct informer_handlers h = {.on_add = on_pod_event,
                                  .on_update = on_pod_update,
                                  .on_delete = on_pod_event,
                                  .arg = d};
    informer_add_handlers(d->inf, &h);
    if (restart) {
        informer_start(d->inf);
    }
    return 0;
}

/* A node client certificate (from `dpulet join`) is renewed once at most a
 * third of its lifetime is left, as kubelet rotates its own; the clients
 * are then made again from the rewritten kubeconfig. */
static void
on_rotate_timer(void *arg, struct loop_timer *t)
{
    struct dpulet *d = arg;
    loop_timer_reset(t, ROTATE_CHECK_MS, 0);
    if (!d->kc || !d->kc->cert_pem) {
        return; /* token or other credentials: nothing to renew */
    }
    struct dpf_error err = {0};
    int rc =
        kube_bootstrap_rotate(d->cfg.kubeconfig, NULL,
                              time_wall_ns() / 1000000000, false, 60000, &err);
    if (rc < 0) {
        log_warn("cannot renew the node's client certificate",
                 "kubeconfig=%s err=\"%s\"", d->cfg.kubeconfig, err.message);
        return;
    }
    if (rc == 1) {
        log_info("renewed the node's client certificate", "kubeconfig=%s",
                 d->cfg.kubeconfig);
        if (dpulet_connect(d, &err) < 0) {
            log_warn("cannot reload the renewed kubeconfig",
                     "kubeconfig=%s err=\"%s\"", d->cfg.kubeconfig,
                     err.message);
        }
    }
}

struct dpulet *
dpulet_start(struct loop *loop, const struct dpulet_config *cfg,
             struct dpf_error *err)
{
    if (!cfg->node_name || !cfg->node_name[0] || !cfg->node_ip ||
        !cfg->root_dir) {
        dpf_error_set(err, 400, "BadRequest",
                      "--node-name, --node-ip and --root-dir are required");
        return NULL;
    }
    struct dpulet *d = xcalloc(1, sizeof(*d));
    d->cfg = *cfg;
    d->loop = loop;
    d->removed = json_object();
    pthread_mutex_init(&d->snap_lock, NULL);
    d->node = xstrdup(cfg->node_name);
    d->ip = xstrdup(cfg->node_ip);
    d->root = xstrdup(cfg->root_dir);
    d->sysfs = xstrdup(cfg->sysfs_root ? cfg->sysfs_root : "/sys");
    d->static_dir = cfg->static_pod_path ? xstrdup(cfg->static_pod_path) : NULL;
    const char *envpath = getenv("PATH");
    d->path = xstrdup(cfg->path ? cfg->path
                      : envpath ? envpath
                                : "/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                  "/usr/bin:/sbin:/bin");
    if (!d->cfg.lease_ms) {
        d->cfg.lease_ms = 40000;
    }
    if (!d->cfg.lease_renew_ms) {
        d->cfg.lease_renew_ms = 10000;
    }
    if (!d->cfg.status_ms) {
        d->cfg.status_ms = 10000;
    }
    if (!d->cfg.detect_ms) {
        d->cfg.detect_ms = 60000;
    }
    if (!d->cfg.api_port) {
        d->cfg.api_port = 10250;
    }
    if (dpulet_parse_labels(cfg->node_labels, &d->cfg_labels, err) < 0 ||
        dpulet_parse_taints(cfg->taints, &d->cfg_taints, err) < 0) {
        dpulet_destroy(d);
        return NULL;
    }
    char *pods = xasprintf("%s/pods", d->root);
    int rc = dir_create_all(pods, 0700);
    free(pods);
    if (rc < 0) {
        dpf_error_set(err, 500, "InternalError", "--root-dir %s: %s", d->root,
                      strerror(-rc));
        dpulet_destroy(d);
        return NULL;
    }
    if (cfg->kubeconfig && dpulet_connect(d, err) < 0) {
        dpulet_destroy(d);
        return NULL;
    }
    d->det_labels = detect_now(d);
    orphans_scan(d);
    sync_static_pods(d);
    if (d->api) {
        node_update_status(d);
        lease_renew(d);
        informer_start(d->inf);
    }
    d->tick = loop_timer_add(loop, TICK_MS, 0, on_tick, d);
    d->static_t = loop_timer_add(loop, STATIC_SCAN_MS, 0, on_static_timer, d);
    d->detect_t = loop_timer_add(loop, d->cfg.detect_ms, 0, on_detect_timer, d);
    if (d->api) {
        d->status_t =
            loop_timer_add(loop, d->cfg.status_ms, 0, on_status_timer, d);
        d->lease_t =
            loop_timer_add(loop, d->cfg.lease_renew_ms, 0, on_lease_timer, d);
        d->rotate_t = loop_timer_add(loop, 5000, 0, on_rotate_timer, d);
    }
    log_info("dpulet started", "node=%s root=%s api=%s", d->node, d->root,
             d->api ? api_client_server(d->api) : "none (standalone)");
    return d;
}

void
dpulet_destroy(struct dpulet *d)
{
    if (!d) {
        return;
    }
    struct loop_timer *ts[] = {d->tick,     d->static_t, d->detect_t,
                               d->status_t, d->lease_t,  d->rotate_t};
    for (size_t i = 0; i < sizeof(ts) / sizeof(ts[0]); i++) {
        if (ts[i]) {
            loop_timer_cancel(ts[i]);
        }
    }
    informer_destroy(d->inf);
    kube_rest_destroy(d->rest);
    api_client_destroy(d->api);
    kubeconfig_free(d->kc);
    while (d->pods) {
        struct pod *p = d->pods;
        d->pods = p->next;
        pod_free(p);
    }
    for (size_t i = 0; i < d->n_orphans; i++) {
        free(d->orphans[i].uid);
        free(d->orphans[i].ctr);
        free(d->orphans[i].dir);
    }
    free(d->orphans);
    json_decref(d->removed);
    snap_free(d->snap);
    pthread_mutex_destroy(&d->snap_lock);
    json_decref(d->cfg_labels);
    json_decref(d->cfg_taints);
    json_decref(d->det_labels);
    free(d->node_uid);
    free(d->node);
    free(d->ip);
    free(d->root);
    free(d->sysfs);
    free(d->static_dir);
    free(d->path);
    free(d);
}
