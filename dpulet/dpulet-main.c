/* dpulet: dpf's node agent (main only; see dpulet.h). */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dpulet/dpulet-api.h"
#include "dpulet/dpulet-join.h"
#include "dpulet/dpulet.h"
#include "lib/base/base64.h"
#include "lib/base/daemon.h"
#include "lib/base/util.h"
#include "lib/kube/api-client.h"
#include "lib/kube/kube-bootstrap.h"
#include "lib/kube/kubeconfig.h"
#include "lib/net/pki.h"
#include "lib/codecs/duration.h"

struct dpulet_main {
    struct dpulet_config cfg;
    const char *listen, *bootstrap;
    const char *tls_cert, *tls_key, *client_ca;
    char *auto_files[3]; /* the self-issued pair and client CA, owned */
    struct dpulet *d;
    struct dpulet_api *api;
    struct dpulet_hooks hooks;
};

#define SET_STR(fn, field)                                         \
    static int fn(void *arg, const char *v, struct dpf_error *err) \
    {                                                              \
        (void) err;                                                \
        ((struct dpulet_main *) arg)->field = v;                   \
        return 0;                                                  \
    }
SET_STR(set_kubeconfig, cfg.kubeconfig)
SET_STR(set_bootstrap, bootstrap)
SET_STR(set_node_name, cfg.node_name)
SET_STR(set_node_ip, cfg.node_ip)
SET_STR(set_root_dir, cfg.root_dir)
SET_STR(set_sysfs_root, cfg.sysfs_root)
SET_STR(set_static, cfg.static_pod_path)
SET_STR(set_path, cfg.path)
SET_STR(set_labels, cfg.node_labels)
SET_STR(set_taints, cfg.taints)
SET_STR(set_listen, listen)
SET_STR(set_tls_cert, tls_cert)
SET_STR(set_tls_key, tls_key)
SET_STR(set_client_ca, client_ca)

/* dpulet-api.h's exec op over dpulet's hook (same errors). */
static int
api_exec_target(void *arg, const char *ns, const char *pod,
                const char *container, struct dpulet_exec_target *t,
                struct dpf_error *err)
{
    struct dpulet_main *m = arg;
    memset(t, 0, sizeof(*t));
    return m->hooks.container_exec(m->hooks.arg, ns, pod, container, &t->pid,
                                   &t->env, &t->cwd, err);
}

static int
api_log_path(void *arg, const char *ns, const char *pod, const char *container,
             bool previous, char **path, bool *running, struct dpf_error *err)
{
    struct dpulet_main *m = arg;
    return m->hooks.container_log_path(m->hooks.arg, ns, pod, container,
                                       previous, path, running, err);
}

static json_t *
api_list_pods(void *arg)
{
    struct dpulet_main *m = arg;
    return m->hooks.list_pods(m->hooks.arg);
}

/* Without --tls-cert-file, a connected dpulet still serves its kubelet
 * API (logs and exec through the API server): with a serving pair issued
 * by a CA of its own under <root-dir>/pki (kube-apiserver does not verify
 * a kubelet's certificate unless --kubelet-certificate-authority is set,
 * and neither does dpf-server), accepting the clients of the cluster CA
 * from its kubeconfig unless --client-ca-file names another. */
static int
main_auto_tls(struct dpulet_main *m, struct dpf_error *err)
{
    char *dir = xasprintf("%s/pki", m->cfg.root_dir);
    char *ca = xasprintf("%s/ca.crt", dir),
         *cakey = xasprintf("%s/ca.key", dir);
    char *crt = xasprintf("%s/serving.crt", dir);
    char *key = xasprintf("%s/serving.key", dir);
    char *cca = xasprintf("%s/client-ca.crt", dir);
    const char *sans[] = {m->cfg.node_ip, m->cfg.node_name};
    struct kubeconfig *kc = NULL;
    int rc = dir_create_all(dir, 0700);
    if (rc < 0) {
        dpf_error_set(err, 500, "InternalError", "%s: %s", dir, strerror(-rc));
        goto out;
    }
    struct dpf_error e = {0};
    if (access(ca, R_OK) != 0 || access(cakey, R_OK) != 0) {
        char *cn = xasprintf("dpulet-%s-ca", m->cfg.node_name);
        rc = pki_ca_create(ca, cakey, cn, 3650, err);
        free(cn);
        if (rc < 0) {
            goto out;
        }
    }
    if (pki_cert_check(ca, crt, key, sans, 2, 30, &e) < 0 &&
        (rc = pki_issue_server(ca, cakey, crt, key, m->cfg.node_name, sans, 2,
                               365, err)) < 0) {
        goto out;
    }
    if (!m->client_ca) {
        struct kubeconfig_options ko = {.path = m->cfg.kubeconfig};
        if ((rc = kubeconfig_load(&ko, &kc, err)) < 0) {
            goto out;
        }
        if (!kc->ca_pem) {
            dpf_error_set(err, 400, "BadRequest",
                          "--kubeconfig %s has no certificate authority: "
                          "give the kubelet API --client-ca-file",
                          m->cfg.kubeconfig);
            rc = -EINVAL;
            goto out;
        }
        if ((rc = file_write_atomic(cca, kc->ca_pem, kc->ca_len, 0644)) < 0) {
            dpf_error_set(err, 500, "InternalError", "%s: %s", cca,
                          strerror(-rc));
            goto out;
        }
        m->client_ca = m->auto_files[2] = cca;
        cca = NULL;
    }
    m->tls_cert = m->auto_files[0] = crt;
    m->tls_key = m->auto_files[1] = key;
    crt = key = NULL;
    rc = 0;
out:
    kubeconfig_free(kc);
    free(dir);
    free(ca);
    free(cakey);
    free(crt);
    free(key);
    free(cca);
    return rc;
}

/* Serve the kubelet API on --listen (default NODE-IP:10250) with the
 * --tls-cert-file pair, accepting clients of --client-ca-file. */
static int
main_start_api(struct dpulet_main *m, struct dpf_error *err)
{
    if (!m->tls_cert || !m->tls_key || !m->client_ca) {
        dpf_error_set(err, 400, "BadRequest",
                      "the kubelet API needs --tls-cert-file, "
                      "--tls-private-key-file and --client-ca-file");
        return -EINVAL;
    }
    char addr[256];
    snprintf(addr, sizeof(addr), "%s", m->cfg.node_ip);
    if (m->listen) {
        const char *colon = strrchr(m->listen, ':');
        snprintf(addr, sizeof(addr), "%.*s", (int) (colon - m->listen),
                 m->listen);
    }
    dpulet_get_hooks(m->d, &m->hooks);
    struct dpulet_api_ops ops = {.container_log_path = api_log_path,
                                 .container_exec_target = api_exec_target,
                                 .list_pods = api_list_pods,
                                 .arg = m};
    struct dpulet_api_config ac = {.address = addr,
                                   .port = (uint16_t) m->cfg.api_port,
                                   .cert_file = m->tls_cert,
                                   .key_file = m->tls_key,
                                   .client_ca_file = m->client_ca};
    m->api = dpulet_api_start(&ac, &ops, err);
    return m->api ? 0 : -EINVAL;
}

static int
set_duration(const char *flag, const char *v, int64_t *out,
             struct dpf_error *err)
{
    if (duration_parse(v, out) < 0 || *out < 1000 || *out > 3600000) {
        dpf_error_set(err, 400, "BadRequest",
                      "--%s: \"%s\" is not a duration between 1s and 1h "
                      "(for example 40s)",
                      flag, v);
        return -EINVAL;
    }
    return 0;
}

#define SET_DUR(fn, flag, field)                                               \
    static int fn(void *arg, const char *v, struct dpf_error *err)             \
    {                                                                          \
        return set_duration(flag, v, &((struct dpulet_main *) arg)->cfg.field, \
                            err);                                              \
    }
SET_DUR(set_lease, "lease-duration", lease_ms)
SET_DUR(set_status, "status-interval", status_ms)
SET_DUR(set_renew, "lease-renew-interval", lease_renew_ms)
SET_DUR(set_detect, "detect-interval", detect_ms)

/* kubelet's --bootstrap-kubeconfig: when --kubeconfig does not exist
 * yet, ask for a node client certificate (CSR for system:node:<name>,
 * signer kube-apiserver-client-kubelet) with the bootstrap credentials and
 * write --kubeconfig (0600) with it. Blocks until the CSR is approved
 * (5 min at most), as kubelet does. */
static int
main_bootstrap(struct dpulet_main *m, struct dpf_error *err)
{
    if (!m->cfg.kubeconfig) {
        dpf_error_set(err, 400, "BadRequest",
                      "--bootstrap-kubeconfig needs --kubeconfig: the file "
                      "to write the node's credentials to");
        return -EINVAL;
    }
    if (access(m->cfg.kubeconfig, F_OK) == 0) {
        return 0; /* bootstrapped before; rotation keeps it current */
    }
    if (!m->cfg.node_name) {
        dpf_error_set(err, 400, "BadRequest", "--node-name is required");
        return -EINVAL;
    }
    struct kubeconfig_options ko = {.path = m->bootstrap};
    struct kubeconfig *kc = NULL;
    struct api_client *c = NULL;
    char *key = NULL, *csr = NULL, *cert = NULL, *cn = NULL, *text = NULL;
    int rc = kubeconfig_load(&ko, &kc, err);
    if (rc < 0) {
        return rc;
    }
    if (!(c = api_client_create(kc, err))) {
        rc = -EINVAL;
        goto out;
    }
    cn = xasprintf("system:node:%s", m->cfg.node_name);
    const char *const orgs[] = {"system:nodes", NULL};
    struct kube_bootstrap_csr_options o = {
        .generate_name = "node-csr-",
        .signer = KUBE_BOOTSTRAP_SIGNER_KUBELET,
        .timeout_ms = 300000,
    };
    if ((rc = kube_bootstrap_csr_new(cn, orgs, NULL, &key, &csr, err)) < 0 ||
        (rc = kube_bootstrap_csr_request(c, &o, csr, &cert, err)) < 0) {
        goto out;
    }
    char *ca = kc->ca_pem ? base64_encode(kc->ca_pem, kc->ca_len, BASE64_STD)
                          : xstrdup("");
    char *crt = base64_encode(cert, strlen(cert), BASE64_STD);
    char *k64 = base64_encode(key, strlen(key), BASE64_STD);
    text = xasprintf("apiVersion: v1\nkind: Config\n"
                     "clusters:\n- name: default\n  cluster:\n"
                     "    server: %s\n"
                     "    certificate-authority-data: %s\n"
                     "users:\n- name: default\n  user:\n"
                     "    client-certificate-data: %s\n"
                     "    client-key-data: %s\n"
                     "contexts:\n- name: default\n  context:\n"
                     "    cluster: default\n    user: default\n"
                     "current-context: default\n",
                     kc->server, ca, crt, k64);
    explicit_bzero(k64, strlen(k64));
    free(k64);
    free(crt);
    free(ca);
    rc = file_write_atomic(m->cfg.kubeconfig, text, strlen(text), 0600);
    if (rc < 0) {
        dpf_error_set(err, 500, "InternalError", "--kubeconfig %s: %s",
                      m->cfg.kubeconfig, strerror(-rc));
    }
out:
    if (key) {
        explicit_bzero(key, strlen(key));
    }
    if (text) {
        explicit_bzero(text, strlen(text));
    }
    free(key);
    free(text);
    free(csr);
    free(cert);
    free(cn);
    api_client_destroy(c);
    kubeconfig_free(kc);
    return rc;
}

static int
main_start(void *arg, struct daemon *dm, struct dpf_error *err)
{
    struct dpulet_main *m = arg;
    if (m->bootstrap && main_bootstrap(m, err) < 0) {
        return -EINVAL;
    }
    m->cfg.api_port = 10250;
    if (m->listen) {
        const char *colon = strrchr(m->listen, ':');
        long port = colon ? strtol(colon + 1, NULL, 10) : 0;
        if (port < 1 || port > 65535) {
            dpf_error_set(err, 400, "BadRequest",
                          "--listen: \"%s\" is not ADDR:PORT", m->listen);
            return -EINVAL;
        }
        m->cfg.api_port = (int) port;
    }
    m->d = dpulet_start(daemon_loop(dm), &m->cfg, err);
    if (!m->d) {
        return -EINVAL;
    }
    if (!m->tls_cert && m->cfg.kubeconfig && main_auto_tls(m, err) < 0) {
        return -EINVAL;
    }
    if (m->tls_cert && main_start_api(m, err) < 0) {
        return -EINVAL;
    }
    daemon_set_ready(dm, "dpulet", true, NULL);
    return 0;
}

static void
main_stop(void *arg)
{
    struct dpulet_main *m = arg;
    dpulet_api_stop(m->api);
    m->api = NULL;
    dpulet_destroy(m->d);
    m->d = NULL;
    if (m->auto_files[0]) {
        m->tls_cert = m->tls_key = NULL;
    }
    if (m->auto_files[2]) {
        m->client_ca = NULL;
    }
    for (size_t i = 0; i < 3; i++) {
        free(m->auto_files[i]);
        m->auto_files[i] = NULL;
    }
}

int
main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "join")) {
        return dpulet_join_main(argc - 1, argv + 1);
    }
    /* two arenas are plenty for one loop thread and curl's resolver */
    mallopt(M_ARENA_MAX, 2);
    static const struct daemon_flag flags[] = {
        {"kubeconfig", "PATH",
         "the API server and credentials; without it dpulet runs static\n"
         "pods only (standalone)",
         set_kubeconfig},
        {"bootstrap-kubeconfig", "PATH",
         "bootstrap credentials: when --kubeconfig does not exist, get\n"
         "a node certificate with them and write it there",
         set_bootstrap},
        {"node-name", "NAME", "this node's name (required)", set_node_name},
        {"node-ip", "IP",
         "the Node's InternalIP (required); also the pods'\n"
         "podIP/hostIP (host network)",
         set_node_ip},
        {"root-dir", "DIR", "state, volumes and logs of the pods (required)",
         set_root_dir},
        {"sysfs-root", "DIR",
         "scan DIR/bus/pci/devices for BlueField DPUs\n"
         "(default /sys)",
         set_sysfs_root},
        {"static-pod-path", "DIR",
         "run the Pod manifests in DIR (rescanned "
         "every 5 s)",
         set_static},
        {"path", "DIRS",
         "colon list where container commands are looked up\n"
         "(default $PATH)",
         set_path},
        {"node-labels", "K=V,...", "labels for the Node", set_labels},
        {"register-with-taints", "K=V:EFFECT,...",
         "taints the Node is registered with", set_taints},
        {"listen", "ADDR:PORT",
         "kubelet API address (default NODE-IP:10250); its port is\n"
         "the Node's daemonEndpoints.kubeletEndpoint.Port",
         set_listen},
        {"tls-cert-file", "PATH",
         "kubelet API serving certificate (PEM); "
         "the API\nis served when it is given",
         set_tls_cert},
        {"tls-private-key-file", "PATH", "its key", set_tls_key},
        {"client-ca-file", "PATH",
         "CA of the clients the kubelet API "
         "accepts (the API\nserver's kubelet "
         "client)",
         set_client_ca},
        {"lease-duration", "DUR", "the node Lease's duration (default 40s)",
         set_lease},
        {"lease-renew-interval", "DUR",
         "renew the Lease this often (default "
         "10s)",
         set_renew},
        {"status-interval", "DUR",
         "update the Node status this often "
         "(default 10s)",
         set_status},
        {"detect-interval", "DUR",
         "rescan sysfs for DPUs this often "
         "(default 60s)",
         set_detect},
        {NULL, NULL, NULL, NULL},
    };
    static struct dpulet_main m;
    struct daemon_spec spec = {
        .name = "dpulet",
        .summary = "       dpulet join ENDPOINT --token ID.SECRET "
                   "--discovery-token-ca-cert-hash sha256:HEX\n"
                   "              --kubeconfig PATH [--node-name NAME]\n\n"
                   "dpf's node agent: registers the Node (with DPF's DPU "
                   "labels on a host),\nkeeps its Lease, and runs the pods "
                   "bound to it and the static pods\nas processes "
                   "(docs/dpulet.md).",
        .flags = flags,
        .arg = &m,
        .start = main_start,
        .stop = main_stop,
    };
    return daemon_main(&spec, argc, argv);
}
