/* dpulet join: kubeadm join's TLS bootstrap for a dpulet node. The work is
 * lib/kube/kube-bootstrap.h's kube_bootstrap_join(); this is the command
 * line around it. */
#include "dpulet/dpulet-join.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/error.h"
#include "lib/kube/kube-bootstrap.h"

static void
join_usage(FILE *f)
{
    fputs("Usage: dpulet join ENDPOINT --token ID.SECRET\n"
          "         --discovery-token-ca-cert-hash sha256:HEX\n"
          "         --kubeconfig PATH [--node-name NAME] [--timeout SECONDS]\n"
          "\n"
          "Join a cluster as kubeadm join does: check the cluster CA against "
          "the pinned\nhash, send a certificate signing request for "
          "system:node:NAME with the\nbootstrap token, wait for the "
          "certificate and write a kubeconfig (0600)\nfor `dpulet "
          "--kubeconfig PATH`.\n",
          f);
}

static void
join_progress(void *arg, const char *line)
{
    (void) arg;
    fprintf(stderr, "dpulet join: %s\n", line);
}

int
dpulet_join_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"token", required_argument, NULL, 't'},
        {"discovery-token-ca-cert-hash", required_argument, NULL, 'c'},
        {"kubeconfig", required_argument, NULL, 'k'},
        {"node-name", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *token = NULL, *hash = NULL, *kc = NULL, *node = NULL;
    long timeout_s = 300;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 't':
            token = optarg;
            break;
        case 'c':
            hash = optarg;
            break;
        case 'k':
            kc = optarg;
            break;
        case 'n':
            node = optarg;
            break;
        case 'T': {
            char *end;
            timeout_s = strtol(optarg, &end, 10);
            if (*end || timeout_s < 1 || timeout_s > 3600) {
                fprintf(stderr,
                        "dpulet join: --timeout: \"%s\" is not a "
                        "number of seconds in [1, 3600]\n",
                        optarg);
                return 2;
            }
            break;
        }
        case 'h':
            join_usage(stdout);
            return 0;
        default:
            join_usage(stderr);
            return 2;
        }
    }
    if (optind != argc - 1 || !token || !hash || !kc) {
        fprintf(stderr, "dpulet join: ENDPOINT, --token, "
                        "--discovery-token-ca-cert-hash and --kubeconfig are "
                        "required\n");
        join_usage(stderr);
        return 2;
    }
    char host[256];
    if (!node) {
        if (gethostname(host, sizeof(host)) < 0) {
            fprintf(stderr, "dpulet join: no --node-name and no hostname\n");
            return 2;
        }
        host[sizeof(host) - 1] = 0;
        node = host;
    }
    struct kube_bootstrap_join_options jo = {
        .endpoint = argv[optind],
        .token = token,
        .ca_hash = hash,
        .node_name = node,
        .kubeconfig_path = kc,
        .timeout_ms = timeout_s * 1000,
        .progress = join_progress,
    };
    struct dpf_error err = {0};
    int rc = kube_bootstrap_join(&jo, &err);
    if (rc < 0) {
        fprintf(stderr, "dpulet join: %s\n", err.message);
        return 1;
    }
    fprintf(stderr, "dpulet join: node %s joined; credentials in %s\n", node,
            kc);
    return 0;
}
