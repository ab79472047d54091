/* dms-client-check: drives controllers/dms-client.h against a real dmsd
 * for tests/system/test_dms_client.py.
 *
 * usage: dms-client-check ADDR CA CERT KEY DPU COMMAND ARGS... [OPTIONS]
 *   sequence BFB_PATH BFB_VERSION CFG_PATH
 *       DPF's install (dpf-spec §2.7.2): Set mode DPU, Get it back,
 *       Install the BFB (progress lines), Install the bf.cfg from memory
 *       as DPU.cfg, Activate "BFB_VERSION;DPU.cfg", RebootStatus every
 *       200 ms until not active.
 *   install PATH VERSION   one OS.Install of a file
 *   get PATH               one gNMI Get
 * options (install, sequence):
 *   --cancel-at BYTES      another thread raises the cancel flag once
 *                          BYTES were sent; prints how long the call took
 *                          to return after that
 *   --pause-at BYTES --resume-file PATH
 *                          stop sending at BYTES, print "paused", wait
 *                          until PATH exists (the test kills dmsd)
 *   --chunk BYTES, --server-name NAME, --timeout-ms MS
 * Output: "progress SENT TOTAL" (first, every 256 KiB, last), "ok ...",
 * or "error rc=NAME retriable=0|1: MESSAGE" and exit 1. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "controllers/dms-client.h"
#include "lib/base/util.h"

static atomic_bool cancel_flag;
static uint64_t cancel_at = UINT64_MAX, pause_at = UINT64_MAX;
static const char *resume_file;
static uint64_t last_printed;
static int64_t cancel_raised_ms;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static bool want_cancel;

/* the "DPU deleted" thread: raises the flag when told to */
static void *
canceller(void *arg)
{
    pthread_mutex_lock(&mu);
    while (!want_cancel) {
        pthread_cond_wait(&cv, &mu);
    }
    pthread_mutex_unlock(&mu);
    cancel_raised_ms = time_mono_ms();
    atomic_store(&cancel_flag, true);
    return NULL;
}

static void
progress(void *arg, uint64_t sent, uint64_t total)
{
    if (sent == total || sent - last_printed >= 256 * 1024 ||
        last_printed == 0) {
        printf("progress %" PRIu64 " %" PRIu64 "\n", sent, total);
        fflush(stdout);
        last_printed = sent;
    }
    if (sent >= cancel_at && !want_cancel) {
        pthread_mutex_lock(&mu);
        want_cancel = true;
        pthread_cond_signal(&cv);
        pthread_mutex_unlock(&mu);
        while (!atomic_load(&cancel_flag)) {
            usleep(1000);
        }
    }
    if (sent >= pause_at) {
        pause_at = UINT64_MAX;
        printf("paused\n");
        fflush(stdout);
        while (access(resume_file, F_OK) != 0) {
            usleep(20000);
        }
    }
}

static const char *
errname(int rc)
{
    switch (-rc) {
    case ECANCELED:
        return "ECANCELED";
    case ETIMEDOUT:
        return "ETIMEDOUT";
    case EAGAIN:
        return "EAGAIN";
    case EACCES:
        return "EACCES";
    case EIO:
        return "EIO";
    case EPROTO:
        return "EPROTO";
    case ENOENT:
        return "ENOENT";
    case EINVAL:
        return "EINVAL";
    default:
        return "OTHER";
    }
}

static int
failed(int rc, const struct dpf_error *err)
{
    if (cancel_raised_ms) {
        printf("cancel-return-ms %" PRId64 "\n",
               time_mono_ms() - cancel_raised_ms);
    }
    printf("error rc=%s retriable=%d: %s\n", errname(rc),
           dms_error_retriable(rc), err->message);
    return 1;
}

int
main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: %s ADDR CA CERT KEY DPU COMMAND ARGS...\n",
                argv[0]);
        return 2;
    }
    const char *pos[16];
    int npos = 0;
    size_t chunk = 0;
    const char *server_name = NULL;
    int64_t timeout_ms = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--cancel-at") && i + 1 < argc) {
            cancel_at = strtoull(argv[++i], NULL, 0);
        } else if (!strcmp(argv[i], "--pause-at") && i + 1 < argc) {
            pause_at = strtoull(argv[++i], NULL, 0);
        } else if (!strcmp(argv[i], "--resume-file") && i + 1 < argc) {
            resume_file = argv[++i];
        } else if (!strcmp(argv[i], "--chunk") && i + 1 < argc) {
            chunk = strtoul(argv[++i], NULL, 0);
        } else if (!strcmp(argv[i], "--server-name") && i + 1 < argc) {
            server_name = argv[++i];
        } else if (!strcmp(argv[i], "--timeout-ms") && i + 1 < argc) {
            timeout_ms = strtoll(argv[++i], NULL, 0);
        } else if (npos < 16) {
            pos[npos++] = argv[i];
        }
    }
    char *pem[3];
    size_t n;
    for (int i = 0; i < 3; i++) {
        if (file_read_all(pos[1 + i], &pem[i], &n) < 0) {
            fprintf(stderr, "cannot read %s\n", pos[1 + i]);
            return 2;
        }
    }
    pthread_t th;
    pthread_create(&th, NULL, canceller, NULL);
    struct dpf_error err = {0};
    char dpu[256];
    snprintf(dpu, sizeof dpu, "dpf-provisioning/%s", pos[4]);
    struct dms_client_config cfg = {.target = pos[0],
                                    .ca_pem = pem[0],
                                    .cert_pem = pem[1],
                                    .key_pem = pem[2],
                                    .server_name = server_name,
                                    .dpu = dpu,
                                    .host = "host-1",
                                    .call_timeout_ms = timeout_ms,
                                    .cancel = &cancel_flag};
    struct dms_client *c = dms_client_create(&cfg, &err);
    if (!c) {
        return failed(-EINVAL, &err);
    }
    int rc = 0;
    const char *cmd = pos[5];
    if (!strcmp(cmd, "get") && npos >= 7) {
        char *v;
        rc = dms_get(c, pos[6], &v, &err);
        if (rc == 0) {
            printf("ok value %s\n", v);
            free(v);
        }
    } else if (!strcmp(cmd, "install") && npos >= 8) {
        bool already;
        struct dms_install in = {.version = pos[7],
                                 .path = pos[6],
                                 .chunk = chunk,
                                 .progress = progress};
        rc = dms_install_file(c, &in, &already, &err);
        if (rc == 0) {
            printf("ok installed already=%d\n", already);
        }
    } else if (!strcmp(cmd, "sequence") && npos >= 9) {
        const char *bfb = pos[6], *version = pos[7];
        char *cfgdata = NULL, *mode = NULL;
        size_t cfglen = 0;
        bool already = false;
        if ((rc = dms_set_mode_dpu(c, &err)) < 0 ||
            (rc = dms_get(c, "/nvidia/mode/config/mode", &mode, &err)) < 0) {
            goto done;
        }
        printf("mode %s\n", mode);
        struct dms_install in = {.version = version,
                                 .path = bfb,
                                 .chunk = chunk,
                                 .progress = progress};
        if ((rc = dms_install_file(c, &in, &already, &err)) < 0) {
            goto done;
        }
        printf("bfb installed already=%d\n", already);
        if (file_read_all(pos[8], &cfgdata, &cfglen) < 0) {
            fprintf(stderr, "cannot read %s\n", pos[8]);
            return 2;
        }
        char cfgname[300], act[600];
        snprintf(cfgname, sizeof cfgname, "%s.cfg", pos[4]);
        last_printed = 0;
        struct dms_install ci = {.version = cfgname,
                                 .data = cfgdata,
                                 .len = cfglen,
                                 .progress = progress};
        if ((rc = dms_install_file(c, &ci, &already, &err)) < 0) {
            goto done;
        }
        printf("cfg installed already=%d\n", already);
        snprintf(act, sizeof act, "%s;%s", version, cfgname);
        if ((rc = dms_activate(c, act, false, &err)) < 0) {
            goto done;
        }
        printf("activated %s\n", act);
        bool active = true;
        enum dms_reboot_result st = DMS_REBOOT_UNKNOWN;
        char msg[512] = "";
        int64_t deadline = time_mono_ms() + 120000;
        while (active && time_mono_ms() < deadline) {
            if ((rc = dms_reboot_status(c, &active, &st, msg, sizeof msg,
                                        &err)) < 0) {
                goto done;
            }
            if (active) {
                usleep(200000);
            }
        }
        static const char *const names[] = {"UNKNOWN", "SUCCESS",
                                            "RETRIABLE_FAILURE", "FAILURE"};
        printf("ok reboot active=%d status=%s message=%s\n", active, names[st],
               msg);
    done:
        free(cfgdata);
        free(mode);
    } else {
        fprintf(stderr, "unknown command %s\n", cmd);
        return 2;
    }
    if (rc < 0) {
        rc = failed(rc, &err);
    }
    dms_client_destroy(c);
    if (!want_cancel) {
        pthread_mutex_lock(&mu);
        want_cancel = true;
        pthread_cond_signal(&cv);
        pthread_mutex_unlock(&mu);
    }
    pthread_join(th, NULL);
    for (int i = 0; i < 3; i++) {
        free(pem[i]);
    }
    return rc;
}
