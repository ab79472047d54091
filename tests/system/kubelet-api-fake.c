/* kubelet-api-fake: dpulet's kubelet API (dpulet/dpulet-api.c) over a fake
 * runtime, for tests/system/test_pod_proxy.py.
 *
 *   kubelet-api-fake --root DIR --cert C --key K --client-ca CA
 *                    [--address 127.0.0.1] [--port N] [--allowed-cn CN]
 *                    [--stream-create-ms N]
 *
 * Pods are directories DIR/pods/<ns>_<name>_<uid>/<container>/ holding
 * CRI log files <restart>.log (the highest is the current run) and a file
 * "running" while the container runs. exec runs the command in this
 * process's own namespaces with PATH=/usr/bin:/bin and POD_NAME=<name>.
 * Prints "port=N" once listening; stops on SIGTERM or SIGINT. */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dpulet/dpulet-api.h"
#include "lib/base/util.h"

static const char *root;

/* The pod directory of ns/name (malloc'd) or NULL. */
static char *
pod_dir(const char *ns, const char *name)
{
    char *pods = xasprintf("%s/pods", root);
    char *prefix = xasprintf("%s_%s_", ns, name);
    DIR *d = opendir(pods);
    char *found = NULL;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (str_has_prefix(e->d_name, prefix)) {
            found = xasprintf("%s/%s", pods, e->d_name);
            break;
        }
    }
    if (d) {
        closedir(d);
    }
    free(pods);
    free(prefix);
    return found;
}

static int
find_container(const char *ns, const char *pod, const char *container,
               char **cdir, struct dpf_error *err)
{
    char *pd = pod_dir(ns, pod);
    if (!pd) {
        dpf_error_set(err, 404, "NotFound",
                      "pod \"%s\" in namespace \"%s\" "
                      "is not running on this node",
                      pod, ns);
        return -ENOENT;
    }
    *cdir = xasprintf("%s/%s", pd, container);
    free(pd);
    if (access(*cdir, F_OK) < 0) {
        dpf_error_set(err, 404, "NotFound",
                      "container \"%s\" in pod \"%s\" not found", container,
                      pod);
        free(*cdir);
        *cdir = NULL;
        return -ESRCH;
    }
    return 0;
}

static int
fake_log_path(void *arg, const char *ns, const char *pod, const char *container,
              bool previous, char **path, bool *running, struct dpf_error *err)
{
    (void) arg;
    char *cdir;
    int r = find_container(ns, pod, container, &cdir, err);
    if (r < 0) {
        return r;
    }
    int max = -1;
    DIR *d = opendir(cdir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        char *end;
        long n = strtol(e->d_name, &end, 10);
        if (end != e->d_name && !strcmp(end, ".log") && n > max) {
            max = (int) n;
        }
    }
    if (d) {
        closedir(d);
    }
    int want = previous ? max - 1 : max;
    if (want < 0) {
        dpf_error_set(err, 400, "BadRequest",
                      previous ? "previous terminated container \"%s\" in "
                                 "pod \"%s\" not found"
                               : "container \"%s\" in pod \"%s\" has not "
                                 "started",
                      container, pod);
        free(cdir);
        return -ENODATA;
    }
    *path = xasprintf("%s/%d.log", cdir, want);
    char *run = xasprintf("%s/running", cdir);
    *running = !previous && access(run, F_OK) == 0;
    free(run);
    free(cdir);
    return 0;
}

static int
fake_exec_target(void *arg, const char *ns, const char *pod,
                 const char *container, struct dpulet_exec_target *t,
                 struct dpf_error *err)
{
    (void) arg;
    char *cdir;
    int r = find_container(ns, pod, container, &cdir, err);
    if (r < 0) {
        return r;
    }
    free(cdir);
    t->pid = 0;
    t->env = xcalloc(3, sizeof(char *));
    t->env[0] = xstrdup("PATH=/usr/bin:/bin");
    t->env[1] = xasprintf("POD_NAME=%s", pod);
    t->cwd = NULL;
    return 0;
}

static json_t *
fake_list_pods(void *arg)
{
    (void) arg;
    json_t *items = json_array();
    char *pods = xasprintf("%s/pods", root);
    DIR *d = opendir(pods);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        char *copy = xstrdup(e->d_name);
        char *ns = strtok(copy, "_"), *name = strtok(NULL, "_"),
             *uid = strtok(NULL, "_");
        if (ns && name && uid) {
            json_array_append_new(
                items, json_pack("{s:s,s:s,s:{s:s,s:s,s:s}}", "apiVersion",
                                 "v1", "kind", "Pod", "metadata", "name", name,
                                 "namespace", ns, "uid", uid));
        }
        free(copy);
    }
    if (d) {
        closedir(d);
    }
    free(pods);
    return items;
}

int
main(int argc, char **argv)
{
    struct dpulet_api_config cfg = {.address = "127.0.0.1"};
    const char *cns[2] = {NULL, NULL};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        if (!strcmp(k, "--root")) {
            root = v;
        } else if (!strcmp(k, "--cert")) {
            cfg.cert_file = v;
        } else if (!strcmp(k, "--key")) {
            cfg.key_file = v;
        } else if (!strcmp(k, "--client-ca")) {
            cfg.client_ca_file = v;
        } else if (!strcmp(k, "--address")) {
            cfg.address = v;
        } else if (!strcmp(k, "--port")) {
            cfg.port = (uint16_t) atoi(v);
        } else if (!strcmp(k, "--stream-create-ms")) {
            cfg.stream_create_ms = (unsigned) atoi(v);
        } else if (!strcmp(k, "--allowed-cn")) {
            cns[0] = v;
            cfg.allowed_cns = cns;
        } else {
            fprintf(stderr, "kubelet-api-fake: unknown option %s\n", k);
            return 2;
        }
    }
    if (!root) {
        fprintf(stderr, "kubelet-api-fake: --root is required\n");
        return 2;
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    struct dpulet_api_ops ops = {
        .container_log_path = fake_log_path,
        .container_exec_target = fake_exec_target,
        .list_pods = fake_list_pods,
    };
    struct dpf_error err = {0};
    struct dpulet_api *api = dpulet_api_start(&cfg, &ops, &err);
    if (!api) {
        fprintf(stderr, "kubelet-api-fake: %s\n", err.message);
        return 1;
    }
    printf("port=%u\n", (unsigned) dpulet_api_port(api));
    fflush(stdout);
    sigdelset(&set, SIGPIPE);
    int sig;
    sigwait(&set, &sig);
    dpulet_api_stop(api);
    return 0;
}
