/* cmd-bootstrap: node bootstrap from the command line, with kubeadm's and
 * kubectl's words:
 *   dpfctl token create [--ttl D] [--print-join-command]
 *   dpfctl join ENDPOINT --token ID.SECRET --discovery-token-ca-cert-hash
 *          sha256:HEX --node-name N --kubeconfig PATH
 *   dpfctl certificate approve|deny NAME...
 * The work is lib/kube/kube-bootstrap's (dpulet join runs the same). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dpfctl/dpfctl.h"
#include "lib/base/util.h"
#include "lib/codecs/duration.h"
#include "lib/kube/kube-bootstrap.h"

enum {
    OPT_TTL = 2800,
    OPT_PRINT_JOIN,
    OPT_TOKEN,
    OPT_CA_HASH,
    OPT_NODE_NAME,
    OPT_JOIN_TIMEOUT,
};

struct boot_state {
    int64_t ttl_ms;
    bool ttl_set;
    bool print_join;
    const char *token;
    const char *ca_hash;
    const char *node_name;
    int64_t timeout_ms;
};

static int
boot_opt(void *state, int c, const char *arg, struct dpfctl *d)
{
    struct boot_state *s = state;
    switch (c) {
    case OPT_TTL:
    case OPT_JOIN_TIMEOUT: {
        int64_t ms;
        if (duration_parse(arg, &ms) < 0 || ms < 0) {
            fprintf(d->err, "error: invalid duration \"%s\"\n", arg);
            return -EINVAL;
        }
        if (c == OPT_TTL) {
            s->ttl_ms = ms;
            s->ttl_set = true;
        } else {
            s->timeout_ms = ms;
        }
        return 0;
    }
    case OPT_PRINT_JOIN:
        s->print_join = true;
        return 0;
    case OPT_TOKEN:
        s->token = arg;
        return 0;
    case OPT_CA_HASH:
        s->ca_hash = arg;
        return 0;
    case OPT_NODE_NAME:
        s->node_name = arg;
        return 0;
    default:
        return -EINVAL;
    }
}

/* ------------------------------------------------------------------ */
/* token create                                                         */

static int
token_run(struct dpfctl *d, int argc, char **argv, void *state)
{
    struct boot_state *s = state;
    if (argc < 1 || strcmp(argv[0], "create") != 0 || argc > 1) {
        fprintf(d->err, "error: usage: dpfctl token create [--ttl D] "
                        "[--print-join-command]\n");
        return 1;
    }
    if (dpfctl_connect(d) < 0) {
        return 1;
    }
    struct dpf_error err = {0};
    int64_t ttl_s = s->ttl_set ? s->ttl_ms / 1000 : 24 * 3600;
    if (s->ttl_set && s->ttl_ms == 0) {
        ttl_s = 0; /* kubeadm: --ttl 0 never expires */
    }
    if (s->print_join) {
        if (!d->kc->ca_pem) {
            fprintf(d->err, "error: the kubeconfig has no CA data to pin\n");
            return 1;
        }
        char *cmd = NULL;
        int r = kube_bootstrap_join_command(
            d->client, d->kc->server, d->kc->ca_pem, d->kc->ca_len,
            ttl_s == 0 ? -1 : ttl_s, &cmd, NULL, &err);
        if (r < 0) {
            dpfctl_print_error(d, &err, NULL);
            return 1;
        }
        fprintf(d->out, "%s\n", cmd);
        free(cmd);
        return 0;
    }
    struct kube_bootstrap_token t;
    if (kube_bootstrap_token_generate(&t, &err) < 0) {
        fprintf(d->err, "error: %s\n", err.message);
        return 1;
    }
    json_t *sec =
        kube_bootstrap_token_secret(&t, (int64_t) time(NULL), ttl_s, NULL,
                                    "made by dpfctl token "
                                    "create");
    const struct kube_gvr g = {"", "v1", "secrets", true};
    int r = api_client_post(d->client, &g, "kube-system", sec, "dpfctl", NULL,
                            &err);
    json_decref(sec);
    if (r < 0) {
        kube_bootstrap_token_clear(&t);
        dpfctl_print_error(d, &err, NULL);
        return 1;
    }
    fprintf(d->out, "%s.%s\n", t.id, t.secret);
    kube_bootstrap_token_clear(&t);
    return 0;
}

static const struct option token_opts[] = {
    {"ttl", required_argument, NULL, OPT_TTL},
    {"print-join-command", no_argument, NULL, OPT_PRINT_JOIN},
    {0},
};

const struct dpfctl_cmd cmd_token = {
    .name = "token",
    .summary = "Create a bootstrap token for joining nodes",
    .usage = "Create a bootstrap token (a Secret kube-system/bootstrap-token-"
             "<id>, as kubeadm\ntoken create does) that lets one node join: "
             "it may send a certificate\nsigning request for its node "
             "identity and nothing else.\n\n"
             "Usage:\n  dpfctl token create [--ttl 24h] "
             "[--print-join-command]\n\n"
             "Options:\n"
             "      --ttl DUR               lifetime (default 24h; 0 = never "
             "expires)\n"
             "      --print-join-command    print the whole `kubeadm join` "
             "line, with the CA\n"
             "                              hash of the kubeconfig's CA\n",
    .longopts = token_opts,
    .shortopts = "",
    .run = token_run,
    .opt = boot_opt,
    .state_size = sizeof(struct boot_state),
};

/* ------------------------------------------------------------------ */
/* join                                                                 */

static void
join_progress(void *arg, const char *line)
{
    FILE *f = arg;
    fprintf(f, "[join] %s\n", line);
    fflush(f);
}

int
dpfctl_join_run(const char *endpoint, const char *token, const char *ca_hash,
                const char *node_name, const char *kubeconfig,
                int64_t timeout_ms, FILE *out, FILE *err_out)
{
    char host[256];
    if (!node_name) {
        if (gethostname(host, sizeof host) < 0) {
            fprintf(err_out, "error: --node-name is required\n");
            return 1;
        }
        host[sizeof host - 1] = '\0';
        node_name = host;
    }
    struct kube_bootstrap_join_options o = {
        .endpoint = endpoint,
        .token = token,
        .ca_hash = ca_hash,
        .node_name = node_name,
        .kubeconfig_path = kubeconfig,
        .timeout_ms = timeout_ms,
        .progress = join_progress,
        .progress_arg = err_out,
    };
    struct dpf_error err = {0};
    if (kube_bootstrap_join(&o, &err) < 0) {
        fprintf(err_out, "error: %s\n", err.message);
        return 1;
    }
    fprintf(out,
            "This node has joined the cluster as system:node:%s; its "
            "kubeconfig is %s.\n",
            node_name, kubeconfig);
    return 0;
}

static int
join_run(struct dpfctl *d, int argc, char **argv, void *state)
{
    struct boot_state *s = state;
    if (argc != 1 || !s->token || !s->ca_hash || !d->kubeconfig) {
        fprintf(d->err,
                "error: usage: dpfctl join ENDPOINT --token ID.SECRET "
                "--discovery-token-ca-cert-hash sha256:HEX [--node-name N] "
                "--kubeconfig PATH\n");
        return 1;
    }
    return dpfctl_join_run(argv[0], s->token, s->ca_hash, s->node_name,
                           d->kubeconfig, s->timeout_ms, d->out, d->err);
}

static const struct option join_opts[] = {
    {"token", required_argument, NULL, OPT_TOKEN},
    {"discovery-token-ca-cert-hash", required_argument, NULL, OPT_CA_HASH},
    {"node-name", required_argument, NULL, OPT_NODE_NAME},
    {"timeout", required_argument, NULL, OPT_JOIN_TIMEOUT},
    {0},
};

const struct dpfctl_cmd cmd_join = {
    .name = "join",
    .summary = "Join a node to a cluster with a bootstrap token",
    .usage = "Join this node to a cluster as kubeadm join's TLS bootstrap "
             "does: read\nkube-public/cluster-info without trusting the "
             "server, check its CA against\nthe hash, ask for a client "
             "certificate for system:node:NAME with the token,\nwait for it "
             "and write a kubeconfig (mode 0600) at --kubeconfig.\n\n"
             "Usage:\n  dpfctl join HOST:PORT --token ID.SECRET "
             "--discovery-token-ca-cert-hash sha256:HEX\n"
             "         [--node-name NAME] [--timeout 5m] --kubeconfig PATH\n",
    .longopts = join_opts,
    .shortopts = "",
    .run = join_run,
    .opt = boot_opt,
    .state_size = sizeof(struct boot_state),
};

/* ------------------------------------------------------------------ */
/* certificate approve|deny                                             */

static int
certificate_one(struct dpfctl *d, const char *name, bool approve)
{
    const struct kube_gvr g = {"certificates.k8s.io", "v1",
                               "certificatesigningrequests", false};
    struct dpf_error err = {0};
    json_t *obj = NULL;
    if (api_client_get(d->client, &g, NULL, name, &obj, &err) < 0) {
        dpfctl_print_error(d, &err, NULL);
        return 1;
    }
    const char *type = approve ? "Approved" : "Denied";
    json_t *st = json_object_get(obj, "status");
    if (!json_is_object(st)) {
        st = json_object();
        json_object_set_new(obj, "status", st);
    }
    json_t *conds = json_object_get(st, "conditions");
    if (!json_is_array(conds)) {
        conds = json_array();
        json_object_set_new(st, "conditions", conds);
    }
    json_array_append_new(
        conds,
        json_pack("{s:s,s:s,s:s,s:s}", "type", type, "status", "True", "reason",
                  approve ? "DpfctlApprove" : "DpfctlDeny", "message",
                  approve ? "This CSR was approved by dpfctl certificate "
                            "approve."
                          : "This CSR was denied by dpfctl certificate deny."));
    int r = api_client_put(d->client, &g, NULL, obj, "approval", "dpfctl", NULL,
                           &err);
    json_decref(obj);
    if (r < 0) {
        dpfctl_print_error(d, &err, NULL);
        return 1;
    }
    fprintf(d->out, "certificatesigningrequest.certificates.k8s.io/%s %s\n",
            name, approve ? "approved" : "denied");
    return 0;
}

/* certificate renew: the kubeconfig's own client certificate. */
static int
certificate_renew(struct dpfctl *d, struct boot_state *s)
{
    char *path = kubeconfig_resolve_path(d->kubeconfig, NULL);
    if (!path) {
        fprintf(d->err, "error: no kubeconfig to renew\n");
        return 1;
    }
    struct dpf_error err = {0};
    int r = kube_bootstrap_rotate(path, NULL, (int64_t) time(NULL),
                                  s->print_join, s->timeout_ms, &err);
    if (r < 0) {
        fprintf(d->err, "error: %s\n", err.message);
    } else {
        fprintf(d->out, "%s: %s\n", path,
                r == 1 ? "client certificate renewed"
                       : "client certificate not due for renewal");
    }
    free(path);
    return r < 0 ? 1 : 0;
}

static int
certificate_run(struct dpfctl *d, int argc, char **argv, void *state)
{
    if (argc == 1 && !strcmp(argv[0], "renew")) {
        return certificate_renew(d, state);
    }
    if (argc < 2 ||
        (strcmp(argv[0], "approve") != 0 && strcmp(argv[0], "deny") != 0)) {
        fprintf(d->err, "error: usage: dpfctl certificate approve|deny "
                        "NAME... | renew [--force]\n");
        return 1;
    }
    if (dpfctl_connect(d) < 0) {
        return 1;
    }
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        rc |= certificate_one(d, argv[i], !strcmp(argv[0], "approve"));
    }
    return rc;
}

static const struct option certificate_opts[] = {
    {"force", no_argument, NULL, OPT_PRINT_JOIN},
    {"timeout", required_argument, NULL, OPT_JOIN_TIMEOUT},
    {0},
};

const struct dpfctl_cmd cmd_certificate = {
    .name = "certificate",
    .summary = "Approve or deny certificate signing requests",
    .usage = "Approve or deny certificate signing requests (kubectl "
             "certificate's verbs).\nApproving needs the verb `approve` on "
             "the signer (resource signers in\ncertificates.k8s.io).\n\n"
             "`renew` renews the kubeconfig's own client certificate when at "
             "most a third of\nits lifetime is left (DPF: 24 h, renewed 8 h "
             "before), or now with --force.\n\n"
             "Usage:\n  dpfctl certificate approve|deny NAME...\n"
             "  dpfctl certificate renew [--force] [--timeout 5m]\n",
    .longopts = certificate_opts,
    .shortopts = "",
    .run = certificate_run,
    .opt = boot_opt,
    .state_size = sizeof(struct boot_state),
};
