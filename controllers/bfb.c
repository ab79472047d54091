/* bfb: the BFB controller. A BFB (provisioning.dpu.nvidia.com/v1alpha1)
 * names a BlueField bundle by URL; the controller downloads it into the
 * content cache directory as spec.fileName and reports in status:
 *
 *   phase            Initializing -> Downloading -> Ready (DPF's phases;
 *                    "Deleting" while the finalizer runs). There is no
 *                    terminal Error: a failed download keeps the phase,
 *                    says why in the Ready condition and retries with
 *                    backoff (5 s doubling to 5 min), so a BFB recovers by
 *                    itself once its URL works;
 *   bytesDownloaded, totalBytes, downloadPercent
 *                    progress (written at most once a second);
 *   sha256           of the file, once Ready;
 *   conditions       one condition "Ready": False with reason
 *                    Downloading / HTTPError / DownloadFailed /
 *                    FileError while not Ready, True with reason
 *                    Downloaded.
 *
 * Downloads run on a thread per BFB (libcurl, blocking), not on the
 * reconcile workers, into <dir>/.<uid>.part; a restarted manager finds
 * the partial file and resumes it with an HTTP Range request (a server
 * that answers 200 instead of 206 starts it from zero). On success the
 * file is hashed, renamed to <dir>/<fileName> (0644) and the status set
 * Ready. A Ready BFB is re-checked every 5 s: a vanished file is
 * downloaded again. The finalizer provisioning.dpu.nvidia.com/
 * bfb-protection (DPF's) lets the controller cancel the download and
 * remove both files before the object goes. Events: SuccessfulDownload,
 * FailedDownload (DPF's reasons), aggregated by lib/kube/kube-events.
 *
 * The cache is checked by size only; a file corrupted in place (bit rot,
 * a stray write that kept the size) is found when a DPU's install is
 * refused for its content: the DPU controller then sets the annotation
 * BFB_VERIFY_ANNOTATION (controllers.h) on the BFB. The controller parses
 * the cached file in full (lib/codecs/bfb: every header and CRC); a good
 * file keeps Ready, a bad one is removed and downloaded again, and that
 * download (and every later one of this BFB in this process) is parsed
 * the same way before it is Ready, so a URL that serves a corrupt bundle
 * leaves the BFB not Ready with reason InvalidBFB instead of failing
 * every install. Either way the annotation is removed when handled
 * (events Verified / CorruptCache). */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "controllers/controllers.h"
#include "lib/base/log.h"
#include "lib/base/thread.h"
#include "lib/codecs/bfb.h"
#include "lib/kube/controller.h"
#include "lib/kube/kube-events.h"
#include "lib/kube/kube-object.h"
#include "lib/kube/kube-write.h"

LOG_MODULE(bfb);

#define BFB_FINALIZER "provisioning.dpu.nvidia.com/bfb-protection"
#define RECHECK_MS 5000     /* Ready: look at the file again (DPF: 5 s) */
#define PROGRESS_MS 1000    /* Downloading: status refresh */
#define BACKOFF_MIN_MS 5000 /* failed download: first retry */
#define BACKOFF_MAX_MS 300000

static const struct kube_gvr bfb_gvr = {"provisioning.dpu.nvidia.com",
                                        "v1alpha1", "bfbs", true};

struct dl_task {
    char *key, *uid, *url, *part, *final;
    pthread_t thread;
    atomic_bool cancel;
    atomic_bool done;
    _Atomic int64_t bytes; /* in the partial file */
    _Atomic int64_t total; /* -1 = unknown */
    int64_t offset;        /* resumed from */
    int64_t status_ms;     /* last progress write (reconcile only) */
    bool first_write;
    bool verify; /* parse the download as a BFB before it is Ready */
    int fd;
    CURL *curl;
    /* results, read after done */
    int rc;
    char reason[32];
    char message[600];
    char sha256[65];
};

struct backoff {
    unsigned failures;
    int64_t next_ms;
};

struct bfb_ctrl {
    char *dir;
    struct controller_ops ops;
    struct kube_recorder *rec;
    pthread_mutex_t mu;
    struct dl_task **tasks; /* under mu */
    size_t n_tasks;
    json_t *backoff; /* key -> [failures, next_ms] (under mu) */
    json_t *verify;  /* key -> true: verify its downloads (under mu) */
    _Atomic uint64_t ok, failed, bytes;
};

/* --- helpers --- */

/* The URL without user:password@ (status and logs are readable by
 * others). Malloc'd. */
static char *
redact_url(const char *url)
{
    const char *s = strstr(url, "://");
    const char *host = s ? s + 3 : url;
    const char *at = strchr(host, '@');
    const char *slash = strchr(host, '/');
    if (!at || (slash && slash < at)) {
        return xstrdup(url);
    }
    return xasprintf("%.*s***@%s", (int) (host - url), url, at + 1);
}

static int
sha256_file(const char *path, char out[65])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
    enum { BUF = 256 * 1024 };
    unsigned char *buf = xmalloc(BUF);
    ssize_t n;
    while ((n = read(fd, buf, BUF)) > 0) {
        EVP_DigestUpdate(ctx, buf, (size_t) n);
    }
    int rc = n < 0 ? -errno : 0;
    free(buf);
    close(fd);
    unsigned char md[32];
    unsigned len = 0;
    EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    for (unsigned i = 0; i < 32; i++) {
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    }
    return rc;
}

/* --- the download thread --- */

static size_t
dl_write(char *data, size_t size, size_t n, void *arg)
{
    struct dl_task *t = arg;
    size_t len = size * n;
    if (t->first_write) {
        t->first_write = false;
        long code = 0;
        curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &code);
        if (t->offset > 0 && code != 206) {
            /* The server ignored the Range: start from zero. */
            if (ftruncate(t->fd, 0) < 0 || lseek(t->fd, 0, SEEK_SET) < 0) {
                return 0;
            }
            t->offset = 0;
            atomic_store(&t->bytes, 0);
        }
        curl_off_t cl = -1;
        curl_easy_getinfo(t->curl, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
        atomic_store(&t->total, cl >= 0 ? t->offset + cl : -1);
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(t->fd, data + off, len - off);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return 0;
        }
        off += (size_t) w;
    }
    atomic_fetch_add(&t->bytes, (int64_t) len);
    return len;
}

static int
dl_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
            curl_off_t ulnow)
{
    struct dl_task *t = arg;
    return atomic_load(&t->cancel) ? 1 : 0;
}

static void dl_fail(struct dl_task *t, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
dl_fail(struct dl_task *t, const char *reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    t->rc = -EIO;
    snprintf(t->reason, sizeof t->reason, "%s", reason);
    vsnprintf(t->message, sizeof t->message, fmt, ap);
    va_end(ap);
}

static void *
dl_main(void *arg)
{
    struct dl_task *t = arg;
    char *shown = redact_url(t->url);
    char errbuf[CURL_ERROR_SIZE] = "";
    t->fd = open(t->part, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (t->fd < 0) {
        dl_fail(t, "FileError", "cannot open %s: %s", t->part, strerror(errno));
        goto out;
    }
    struct stat st;
    if (fstat(t->fd, &st) == 0 && st.st_size > 0) {
        t->offset = st.st_size;
        lseek(t->fd, 0, SEEK_END);
    }
    atomic_store(&t->bytes, t->offset);
    t->first_write = true;
    t->curl = curl_easy_init();
    CURL *c = t->curl;
    curl_easy_setopt(c, CURLOPT_URL, t->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 120L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, dl_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, dl_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, t);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "dpf-bfb-controller/" DPF_VERSION);
    if (t->offset > 0) {
        curl_easy_setopt(c, CURLOPT_RESUME_FROM_LARGE, (curl_off_t) t->offset);
        log_info("resuming download", "bfb=%s offset=%lld", t->key,
                 (long long) t->offset);
    }
    CURLcode cr = curl_easy_perform(c);
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (cr == CURLE_ABORTED_BY_CALLBACK && atomic_load(&t->cancel)) {
        dl_fail(t, "Cancelled", "download of %s cancelled", shown);
        goto out;
    }
    if (cr == CURLE_HTTP_RETURNED_ERROR && code == 416 && t->offset > 0) {
        /* The partial file is not a prefix we can resume. */
        unlink(t->part);
        dl_fail(t, "HTTPError",
                "GET %s: HTTP 416 for a resume at byte %lld; starting over",
                shown, (long long) t->offset);
        goto out;
    }
    if (cr == CURLE_HTTP_RETURNED_ERROR) {
        dl_fail(t, "HTTPError", "GET %s: HTTP %ld", shown, code);
        goto out;
    }
    if (cr != CURLE_OK) {
        dl_fail(t, "DownloadFailed", "GET %s: %s", shown,
                errbuf[0] ? errbuf : curl_easy_strerror(cr));
        goto out;
    }
    if (fsync(t->fd) < 0) {
        dl_fail(t, "FileError", "cannot write %s: %s", t->part,
                strerror(errno));
        goto out;
    }
    close(t->fd);
    t->fd = -1;
    struct dpf_error berr = {0};
    static const struct bfb_reader_ops no_ops = {0};
    if (t->verify && bfb_read_file(t->part, &no_ops, NULL, &berr) < 0) {
        /* the server's copy is bad too: nothing of it is kept */
        unlink(t->part);
        dl_fail(t, "InvalidBFB", "GET %s: not a valid BFB: %s", shown,
                berr.message);
        goto out;
    }
    int rc = sha256_file(t->part, t->sha256);
    if (rc < 0 || fchmodat(AT_FDCWD, t->part, 0644, 0) < 0 ||
        rename(t->part, t->final) < 0) {
        dl_fail(t, "FileError", "cannot move the download to %s: %s", t->final,
                strerror(rc < 0 ? -rc : errno));
        goto out;
    }
    atomic_store(&t->total, atomic_load(&t->bytes));
    t->rc = 0;
out:
    if (t->fd >= 0) {
        close(t->fd);
        t->fd = -1;
    }
    curl_easy_cleanup(t->curl);
    t->curl = NULL;
    free(shown);
    atomic_store(&t->done, true);
    return NULL;
}

static void
task_free(struct dl_task *t)
{
    free(t->key);
    free(t->uid);
    free(t->url);
    free(t->part);
    free(t->final);
    free(t);
}

/* The task for key (under mu), or NULL. */
static struct dl_task *
task_find(struct bfb_ctrl *b, const char *key, size_t *idx)
{
    for (size_t i = 0; i < b->n_tasks; i++) {
        if (!strcmp(b->tasks[i]->key, key)) {
            if (idx) {
                *idx = i;
            }
            return b->tasks[i];
        }
    }
    return NULL;
}

/* Remove key's task from the table; cancel and join it. */
static void
task_drop(struct bfb_ctrl *b, const char *key)
{
    pthread_mutex_lock(&b->mu);
    size_t i;
    struct dl_task *t = task_find(b, key, &i);
    if (t) {
        b->tasks[i] = b->tasks[--b->n_tasks];
    }
    pthread_mutex_unlock(&b->mu);
    if (t) {
        atomic_store(&t->cancel, true);
        pthread_join(t->thread, NULL);
        task_free(t);
    }
}

static struct dl_task *
task_start(struct bfb_ctrl *b, const char *key, const char *uid,
           const char *url, const char *part, const char *final)
{
    struct dl_task *t = xcalloc(1, sizeof *t);
    pthread_mutex_lock(&b->mu);
    t->verify = json_is_true(json_object_get(b->verify, key));
    pthread_mutex_unlock(&b->mu);
    t->key = xstrdup(key);
    t->uid = xstrdup(uid);
    t->url = xstrdup(url);
    t->part = xstrdup(part);
    t->final = xstrdup(final);
    t->fd = -1;
    atomic_init(&t->total, -1);
    if (thread_start(&t->thread, NULL, "bfb-download", dl_main, t) != 0) {
        task_free(t);
        return NULL;
    }
    pthread_mutex_lock(&b->mu);
    b->tasks = xrealloc(b->tasks, (b->n_tasks + 1) * sizeof *b->tasks);
    b->tasks[b->n_tasks++] = t;
    pthread_mutex_unlock(&b->mu);
    return t;
}

/* --- status --- */

struct want {
    const char *phase;
    int64_t bytes; /* < 0: leave out */
    int64_t total; /* < 0: leave out */
    const char *sha256;
    const char *cond_status, *reason, *message;
    int64_t generation;
};

static bool
set_int(json_t *st, const char *name, int64_t v)
{
    json_t *cur = json_object_get(st, name);
    if (v < 0) {
        if (cur) {
            json_object_del(st, name);
            return true;
        }
        return false;
    }
    if (json_is_integer(cur) && json_integer_value(cur) == v) {
        return false;
    }
    json_object_set_new(st, name, json_integer(v));
    return true;
}

static bool
set_string(json_t *st, const char *name, const char *v)
{
    json_t *cur = json_object_get(st, name);
    if (!v) {
        if (cur) {
            json_object_del(st, name);
            return true;
        }
        return false;
    }
    if (json_is_string(cur) && !strcmp(json_string_value(cur), v)) {
        return false;
    }
    json_object_set_new(st, name, json_string(v));
    return true;
}

static int
status_mutate(void *arg, json_t *obj)
{
    const struct want *w = arg;
    json_t *st = json_object_get(obj, "status");
    if (!json_is_object(st)) {
        st = json_object();
        json_object_set_new(obj, "status", st);
    }
    bool changed = set_string(st, "phase", w->phase);
    changed |= set_int(st, "bytesDownloaded", w->bytes);
    changed |= set_int(st, "totalBytes", w->total);
    int64_t pct =
        w->total > 0 && w->bytes >= 0 ? w->bytes * 100 / w->total : -1;
    changed |= set_int(st, "downloadPercent", pct > 100 ? 100 : pct);
    changed |= set_string(st, "sha256", w->sha256);
    changed |= kube_condition_set(obj, "Ready", w->cond_status, w->reason,
                                  w->message, w->generation, NULL);
    return changed ? 1 : 0;
}

/* Write the status unless it already says this (compared on the cached
 * object first, to save the GET). */
static int
status_write(struct controller *c, const json_t *cached, const char *ns,
             const char *name, const struct want *w)
{
    json_t *copy = json_deep_copy(cached);
    int changed = status_mutate((void *) w, copy);
    json_decref(copy);
    if (!changed) {
        return 0;
    }
    struct dpf_error err = {0};
    int rc = kube_update_retry(controller_rest(c), &bfb_gvr, ns, name, "status",
                               status_mutate, (void *) w, NULL, &err);
    if (rc < 0 && rc != -ENOENT) {
        log_warn_rl("cannot update the BFB status", "bfb=%s/%s error=\"%s\"",
                    ns, name, err.message);
    }
    return rc;
}

static int
finalizer_add_fn(void *arg, json_t *obj)
{
    if (kube_is_deleting(obj)) {
        return 0;
    }
    return kube_finalizer_add(obj, BFB_FINALIZER) ? 1 : 0;
}

static int
finalizer_remove_fn(void *arg, json_t *obj)
{
    return kube_finalizer_remove(obj, BFB_FINALIZER) ? 1 : 0;
}

/* --- reconcile --- */

static int64_t
backoff_due(struct bfb_ctrl *b, const char *key)
{
    pthread_mutex_lock(&b->mu);
    json_t *e = json_object_get(b->backoff, key);
    int64_t due = e ? json_integer_value(json_array_get(e, 1)) : 0;
    pthread_mutex_unlock(&b->mu);
    return due - time_mono_ms();
}

static int64_t
backoff_fail(struct bfb_ctrl *b, const char *key)
{
    pthread_mutex_lock(&b->mu);
    json_t *e = json_object_get(b->backoff, key);
    int64_t n = e ? json_integer_value(json_array_get(e, 0)) : 0;
    int64_t d = BACKOFF_MIN_MS;
    for (int64_t i = 0; i < n && d < BACKOFF_MAX_MS; i++) {
        d *= 2;
    }
    if (d > BACKOFF_MAX_MS) {
        d = BACKOFF_MAX_MS;
    }
    json_object_set_new(b->backoff, key,
                        json_pack("[I, I]", (json_int_t) (n + 1),
                                  (json_int_t) (time_mono_ms() + d)));
    pthread_mutex_unlock(&b->mu);
    return d;
}

static void
backoff_forget(struct bfb_ctrl *b, const char *key)
{
    pthread_mutex_lock(&b->mu);
    json_object_del(b->backoff, key);
    pthread_mutex_unlock(&b->mu);
}

static int
verify_remove_fn(void *arg, json_t *obj)
{
    json_t *a =
        json_object_get(json_object_get(obj, "metadata"), "annotations");
    return json_object_del(a, BFB_VERIFY_ANNOTATION) == 0 ? 1 : 0;
}

/* A DPU asked for a check of the cached file (BFB_VERIFY_ANNOTATION, its
 * value why): parse it in full. A bad file is removed, *note says why
 * (malloc'd; the caller downloads it again) and this BFB's downloads are
 * checked from now on. The annotation goes once handled. 0, or -errno
 * when the file cannot be read or the annotation not removed (the next
 * pass tries again). On the reconcile worker: one sequential read. */
static int
cache_verify(struct controller *c, struct bfb_ctrl *b, const json_t *obj,
             const char *key, const char *final, const char *fname,
             const char *why, char **note)
{
    const json_t *md = json_object_get(obj, "metadata");
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    const char *name = json_string_value(json_object_get(md, "name"));
    struct dpf_error err = {0};
    static const struct bfb_reader_ops no_ops = {0};
    struct stat fs;
    int rc = stat(final, &fs) < 0 ? -ENOENT
                                  : bfb_read_file(final, &no_ops, NULL, &err);
    if (rc == 0) {
        log_info("cached BFB verified", "bfb=%s file=%s request=\"%s\"", key,
                 final, why);
        kube_recorder_event(b->rec, obj, "Normal", "Verified",
                            "%s passed a full check (every CRC) asked for "
                            "by: %s",
                            fname, why);
    } else if (rc == -EBADMSG) {
        if (unlink(final) < 0 && errno != ENOENT) {
            return -errno;
        }
        pthread_mutex_lock(&b->mu);
        json_object_set_new(b->verify, key, json_true());
        json_object_del(b->backoff, key); /* download at once */
        pthread_mutex_unlock(&b->mu);
        *note = xasprintf("the cached %s failed a full check (%s)", fname,
                          err.message);
        log_warn("cached BFB is corrupt; downloading it again",
                 "bfb=%s file=%s error=\"%s\" request=\"%s\"", key, final,
                 err.message, why);
        kube_recorder_event(b->rec, obj, "Warning", "CorruptCache",
                            "%s; downloading it again (asked for by: %s)",
                            *note, why);
    } else if (rc != -ENOENT) {
        log_warn_rl("cannot verify the cached BFB", "bfb=%s error=\"%s\"", key,
                    err.message);
        return rc;
    }
    rc = kube_update_retry(controller_rest(c), &bfb_gvr, ns, name, NULL,
                           verify_remove_fn, NULL, NULL, &err);
    if (rc < 0 && rc != -ENOENT) {
        log_warn_rl("cannot remove the verify annotation",
                    "bfb=%s error=\"%s\"", key, err.message);
        return rc;
    }
    return 0;
}

static struct controller_result
reconcile_bfb(struct controller *c, const char *key)
{
    struct bfb_ctrl *b = controller_arg(c);
    json_t *obj = kube_cache_get(controller_cache(c, 0), key);
    if (!obj) {
        task_drop(b, key); /* gone (its finalizer already ran) */
        backoff_forget(b, key);
        pthread_mutex_lock(&b->mu);
        json_object_del(b->verify, key);
        pthread_mutex_unlock(&b->mu);
        return controller_done();
    }
    json_t *md = json_object_get(obj, "metadata");
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    const char *name = json_string_value(json_object_get(md, "name"));
    const char *uid = json_string_value(json_object_get(md, "uid"));
    int64_t gen = json_integer_value(json_object_get(md, "generation"));
    json_t *spec = json_object_get(obj, "spec");
    const char *url = json_string_value(json_object_get(spec, "url"));
    const char *fname = json_string_value(json_object_get(spec, "fileName"));
    json_t *st = json_object_get(obj, "status");
    const char *phase = json_string_value(json_object_get(st, "phase"));
    struct dpf_error err = {0};
    struct controller_result res = controller_done();
    char *final = NULL, *part = NULL, *note = NULL;
    if (!ns || !name || !uid || !url || !fname || strchr(fname, '/') ||
        fname[0] == '.') {
        log_warn_rl("BFB without url, fileName or uid", "bfb=%s", key);
        goto out;
    }
    final = xasprintf("%s/%s", b->dir, fname);
    part = xasprintf("%s/.%s.part", b->dir, uid);

    if (kube_is_deleting(obj)) {
        if (!kube_finalizer_has(obj, BFB_FINALIZER)) {
            goto out;
        }
        if (!phase || strcmp(phase, "Deleting") != 0) {
            struct want w = {.phase = "Deleting",
                             .bytes = -1,
                             .total = -1,
                             .cond_status = "False",
                             .reason = "Deleting",
                             .message = "removing the BFB file",
                             .generation = gen};
            status_write(c, obj, ns, name, &w);
        }
        task_drop(b, key);
        backoff_forget(b, key);
        if ((unlink(final) < 0 && errno != ENOENT) ||
            (unlink(part) < 0 && errno != ENOENT)) {
            kube_recorder_event(b->rec, obj, "Warning", "FailedDelete",
                                "cannot remove %s: %s", final, strerror(errno));
            res = controller_error();
            goto out;
        }
        if (kube_update_retry(controller_rest(c), &bfb_gvr, ns, name, NULL,
                              finalizer_remove_fn, NULL, NULL, &err) < 0 &&
            err.code != 404) {
            log_warn("cannot remove the finalizer", "bfb=%s error=\"%s\"", key,
                     err.message);
            res = controller_error();
            goto out;
        }
        log_info("BFB file removed", "bfb=%s file=%s", key, final);
        goto out;
    }
    if (!kube_finalizer_has(obj, BFB_FINALIZER)) {
        if (kube_update_retry(controller_rest(c), &bfb_gvr, ns, name, NULL,
                              finalizer_add_fn, NULL, NULL, &err) < 0) {
            log_warn_rl("cannot add the finalizer", "bfb=%s error=\"%s\"", key,
                        err.message);
            res = controller_error();
        }
        goto out; /* the update brings us back */
    }

    pthread_mutex_lock(&b->mu);
    struct dl_task *t = task_find(b, key, NULL);
    bool stale = t && strcmp(t->uid, uid) != 0;
    bool done = t && atomic_load(&t->done);
    pthread_mutex_unlock(&b->mu);
    if (stale) {
        task_drop(b, key); /* the object was recreated */
        t = NULL;
    }
    const char *vreq = json_string_value(json_object_get(
        json_object_get(md, "annotations"), BFB_VERIFY_ANNOTATION));
    if (vreq && !t &&
        cache_verify(c, b, obj, key, final, fname, vreq, &note) < 0) {
        res = controller_error();
        goto out;
    }
    if (t && done) {
        if (t->rc == 0) {
            int64_t size = atomic_load(&t->bytes);
            struct want w = {.phase = "Ready",
                             .bytes = size,
                             .total = size,
                             .sha256 = t->sha256,
                             .cond_status = "True",
                             .reason = "Downloaded",
                             .message = "the BFB is in the cache",
                             .generation = gen};
            atomic_fetch_add(&b->ok, 1);
            atomic_fetch_add(&b->bytes, (uint64_t) (size - t->offset));
            log_info("BFB downloaded", "bfb=%s file=%s bytes=%lld sha256=%s",
                     key, final, (long long) size, t->sha256);
            kube_recorder_event(b->rec, obj, "Normal", "SuccessfulDownload",
                                "downloaded %s (%lld bytes, sha256 %s)", fname,
                                (long long) size, t->sha256);
            int rc = status_write(c, obj, ns, name, &w);
            task_drop(b, key);
            backoff_forget(b, key);
            res = rc < 0 ? controller_requeue()
                         : controller_requeue_after(RECHECK_MS);
        } else {
            int64_t d = backoff_fail(b, key);
            atomic_fetch_add(&b->failed, 1);
            char *msg = xasprintf("%s; retrying in %lld s", t->message,
                                  (long long) (d / 1000));
            struct stat ps;
            int64_t have = stat(part, &ps) == 0 ? (int64_t) ps.st_size : 0;
            struct want w = {.phase = "Downloading",
                             .bytes = have,
                             .total = -1,
                             .cond_status = "False",
                             .reason = t->reason,
                             .message = msg,
                             .generation = gen};
            log_warn("BFB download failed",
                     "bfb=%s reason=%s error=\"%s\" "
                     "retry_ms=%lld",
                     key, t->reason, t->message, (long long) d);
            kube_recorder_event(b->rec, obj, "Warning", "FailedDownload", "%s",
                                t->message);
            status_write(c, obj, ns, name, &w);
            free(msg);
            task_drop(b, key);
            res = controller_requeue_after(d);
        }
        goto out;
    }
    if (t) { /* running: report progress */
        /* Our own status writes come back as watch events and queue the
         * key at once: keep progress writes to one per PROGRESS_MS. */
        int64_t since = time_mono_ms() - t->status_ms;
        if (since < PROGRESS_MS) {
            res = controller_requeue_after(PROGRESS_MS - since);
            goto out;
        }
        t->status_ms = time_mono_ms();
        int64_t bytes = atomic_load(&t->bytes);
        int64_t total = atomic_load(&t->total);
        char msg[128];
        if (total > 0) {
            snprintf(msg, sizeof msg, "downloaded %lld of %lld bytes",
                     (long long) bytes, (long long) total);
        } else {
            snprintf(msg, sizeof msg, "downloaded %lld bytes",
                     (long long) bytes);
        }
        struct want w = {.phase = "Downloading",
                         .bytes = bytes,
                         .total = total,
                         .cond_status = "False",
                         .reason = "Downloading",
                         .message = msg,
                         .generation = gen};
        status_write(c, obj, ns, name, &w);
        res = controller_requeue_after(PROGRESS_MS);
        goto out;
    }

    /* No download running. */
    struct stat fs;
    const char *have_sha = json_string_value(json_object_get(st, "sha256"));
    json_int_t have_size =
        json_integer_value(json_object_get(st, "totalBytes"));
    if (!note && stat(final, &fs) == 0) {
        if (phase && !strcmp(phase, "Ready") && have_sha &&
            have_size == (json_int_t) fs.st_size) {
            res = controller_requeue_after(RECHECK_MS);
            goto out;
        }
        /* A file without a Ready status (e.g. stopped between the rename
         * and the status write): hash it and say so. */
        char sha[65];
        if (sha256_file(final, sha) < 0) {
            res = controller_error();
            goto out;
        }
        struct want w = {.phase = "Ready",
                         .bytes = (int64_t) fs.st_size,
                         .total = (int64_t) fs.st_size,
                         .sha256 = sha,
                         .cond_status = "True",
                         .reason = "Downloaded",
                         .message = "the BFB is in the cache",
                         .generation = gen};
        res = status_write(c, obj, ns, name, &w) < 0
                  ? controller_requeue()
                  : controller_requeue_after(RECHECK_MS);
        goto out;
    }
    int64_t wait = backoff_due(b, key);
    if (wait > 0) {
        res = controller_requeue_after(wait);
        goto out;
    }
    if (phase && !strcmp(phase, "Ready") && !note) {
        log_warn("BFB file vanished; downloading it again", "bfb=%s file=%s",
                 key, final);
    }
    struct dl_task *nt = task_start(b, key, uid, url, part, final);
    if (!nt) {
        res = controller_error();
        goto out;
    }
    nt->status_ms = time_mono_ms();
    struct stat ps;
    int64_t have = stat(part, &ps) == 0 ? (int64_t) ps.st_size : 0;
    char *shown = redact_url(url);
    char *msg = note ? xasprintf("%s; downloading %s again", note, shown)
                     : xasprintf("downloading %s", shown);
    struct want w = {.phase = "Downloading",
                     .bytes = have,
                     .total = -1,
                     .cond_status = "False",
                     .reason = note ? "CorruptCache" : "Downloading",
                     .message = msg,
                     .generation = gen};
    /* Keep the progress a previous run recorded until the new one
     * knows the total. */
    json_int_t prev_total =
        json_integer_value(json_object_get(st, "totalBytes"));
    if (have > 0 && prev_total > 0) {
        w.total = prev_total;
    }
    status_write(c, obj, ns, name, &w);
    free(msg);
    free(shown);
    res = controller_requeue_after(PROGRESS_MS);
out:
    free(note);
    free(final);
    free(part);
    json_decref(obj);
    return res;
}

/* --- life cycle --- */

struct bfb_ctrl *
bfb_ctrl_add(struct controller_manager *m, const char *dir,
             const char *component, struct dpf_error *err)
{
    int rc = dir_create_all(dir, 0755);
    if (rc < 0) {
        dpf_error_set(err, 500, "InternalError",
                      "cannot create the BFB directory %s: %s", dir,
                      strerror(-rc));
        return NULL;
    }
    struct bfb_ctrl *b = xcalloc(1, sizeof *b);
    b->dir = xstrdup(dir);
    pthread_mutex_init(&b->mu, NULL);
    b->backoff = json_object();
    b->verify = json_object();
    b->rec = kube_recorder_create(controller_manager_rest(m), component, NULL);
    b->ops.name = "bfb";
    b->ops.primary_kind = "BFB";
    b->ops.primary.gvr = bfb_gvr;
    b->ops.reconcile = reconcile_bfb;
    b->ops.workers = 2;
    controller_manager_add(m, &b->ops, b);
    return b;
}

void
bfb_ctrl_stop(struct bfb_ctrl *b)
{
    if (!b) {
        return;
    }
    for (;;) {
        pthread_mutex_lock(&b->mu);
        char *key = b->n_tasks ? xstrdup(b->tasks[0]->key) : NULL;
        pthread_mutex_unlock(&b->mu);
        if (!key) {
            break;
        }
        task_drop(b, key);
        free(key);
    }
}

void
bfb_ctrl_destroy(struct bfb_ctrl *b)
{
    if (!b) {
        return;
    }
    bfb_ctrl_stop(b);
    kube_recorder_destroy(b->rec);
    json_decref(b->backoff);
    json_decref(b->verify);
    free(b->tasks);
    pthread_mutex_destroy(&b->mu);
    free(b->dir);
    free(b);
}

void
bfb_ctrl_metrics(struct bfb_ctrl *b, struct dbuf *out)
{
    pthread_mutex_lock(&b->mu);
    size_t active = b->n_tasks;
    pthread_mutex_unlock(&b->mu);
    dbuf_printf(out,
                "# HELP dpf_bfb_downloads_total Finished BFB downloads.\n"
                "# TYPE dpf_bfb_downloads_total counter\n"
                "dpf_bfb_downloads_total{result=\"success\"} %llu\n"
                "dpf_bfb_downloads_total{result=\"failure\"} %llu\n"
                "# HELP dpf_bfb_download_bytes_total Bytes downloaded into "
                "the BFB cache.\n"
                "# TYPE dpf_bfb_download_bytes_total counter\n"
                "dpf_bfb_download_bytes_total %llu\n"
                "# HELP dpf_bfb_downloads_active Downloads running.\n"
                "# TYPE dpf_bfb_downloads_active gauge\n"
                "dpf_bfb_downloads_active %zu\n",
                (unsigned long long) atomic_load(&b->ok),
                (unsigned long long) atomic_load(&b->failed),
                (unsigned long long) atomic_load(&b->bytes), active);
}
