/* dpfctl: global flags, command dispatch and helpers shared by the
 * commands. See dpfctl.h. */
#include "dpfctl/dpfctl.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "lib/base/util.h"
#include "lib/codecs/duration.h"

enum {
    OPT_KUBECONFIG = 1000,
    OPT_CONTEXT,
    OPT_REQUEST_TIMEOUT,
    OPT_VERSION,
};

static const struct option global_opts[] = {
    {"kubeconfig", required_argument, NULL, OPT_KUBECONFIG},
    {"context", required_argument, NULL, OPT_CONTEXT},
    {"namespace", required_argument, NULL, 'n'},
    {"all-namespaces", no_argument, NULL, 'A'},
    {"request-timeout", required_argument, NULL, OPT_REQUEST_TIMEOUT},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
};

static const char global_help[] =
    "Global flags (accepted by every command):\n"
    "      --kubeconfig PATH       kubeconfig file (default $KUBECONFIG, "
    "then ~/.kube/config)\n"
    "      --context NAME          kubeconfig context (default "
    "current-context)\n"
    "  -n, --namespace NS          namespace (default: the context's, "
    "else \"default\")\n"
    "  -A, --all-namespaces        act on every namespace (get, "
    "describe, delete)\n"
    "      --request-timeout DUR   per-request timeout (\"30s\", \"2m\"; "
    "0 = none)\n"
    "  -h, --help                  help for the command\n"
    "      --version               print dpfctl's version\n";

static const struct dpfctl_cmd *const commands[] = {
    &cmd_apply, &cmd_get,   &cmd_describe,      &cmd_delete,
    &cmd_wait,  &cmd_crds,  &cmd_api_resources, &cmd_version,
    &cmd_bfb,   &cmd_token, &cmd_join,          &cmd_certificate,
};

static void
top_help(FILE *out)
{
    fprintf(out, "dpfctl controls the DPF (DOCA Platform Framework) control "
                 "plane.\n\nCommands:\n");
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        fprintf(out, "  %-15s %s\n", commands[i]->name, commands[i]->summary);
    }
    fprintf(out,
            "\nUsage:\n  dpfctl [flags] COMMAND [options]\n\n%s\n"
            "Use \"dpfctl COMMAND --help\" for more information about a "
            "command.\n",
            global_help);
}

static bool
global_takes_value(const char *a)
{
    static const char *const v[] = {"--kubeconfig", "--context", "-n",
                                    "--namespace", "--request-timeout"};
    for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
        if (!strcmp(a, v[i])) {
            return true;
        }
    }
    return false;
}

bool
dpfctl_error_from_server(const struct dpf_error *err)
{
    return err->code != 0 && strcmp(err->reason, KUBE_REASON_CLIENT) != 0;
}

void
dpfctl_print_error(struct dpfctl *d, const struct dpf_error *err,
                   const char *prefix)
{
    if (dpfctl_error_from_server(err) && err->code == 401) {
        /* kubectl's wording for missing or rejected credentials */
        fprintf(d->err, "error: You must be logged in to the server (%s)\n",
                err->message[0] ? err->message : "Unauthorized");
    } else if (dpfctl_error_from_server(err)) {
        fprintf(d->err, "Error from server (%s): %s%s\n",
                err->reason[0] ? err->reason : "Unknown", prefix ? prefix : "",
                err->message);
    } else if (d->kc && (strstr(err->message, "Couldn't connect") ||
                         strstr(err->message, "Connection refused"))) {
        /* kubectl's wording for a server that is not listening */
        const char *hp = strstr(d->kc->server, "://");
        fprintf(d->err,
                "The connection to the server %s was refused - did you "
                "specify the right host or port?\n",
                hp ? hp + 3 : d->kc->server);
    } else if (err->code == 503 && strstr(err->message, "\": ")) {
        /* transport failures (TLS, DNS, resets): kubectl's prefix and
         * curl's reason without the request line */
        fprintf(d->err, "Unable to connect to the server: %s\n",
                strstr(err->message, "\": ") + 3);
    } else {
        fprintf(d->err, "error: %s%s\n", prefix ? prefix : "",
                err->message[0] ? err->message : "unknown error");
    }
}

int
dpfctl_connect(struct dpfctl *d)
{
    if (d->client) {
        return 0;
    }
    struct dpf_error err = {0};
    struct kubeconfig_options ko = {.path = d->kubeconfig,
                                    .context = d->context};
    int r = kubeconfig_load(&ko, &d->kc, &err);
    if (r < 0) {
        fprintf(d->err, "error: %s\n", err.message);
        return r;
    }
    d->client = api_client_create(d->kc, &err);
    if (!d->client) {
        fprintf(d->err, "error: %s\n", err.message);
        return -EINVAL;
    }
    api_client_set_timeout(d->client, d->request_timeout_ms);
    /* an exec credential plugin's stderr goes where ours goes (kubectl
     * passes it through); stdin is the plugin's only if we do not read
     * it ourselves (kubectl's rule for -f -) */
    struct kubeconfig_exec_options eo = {.stderr_out = d->err,
                                         .stdin_unavailable = d->stdin_used,
                                         .stdin_fd = STDIN_FILENO};
    api_client_set_exec_options(d->client, &eo);
    d->ns = d->namespace_flag ? d->namespace_flag : d->kc->namespace;
    return 0;
}

const struct schema_kind *
dpfctl_resolve_type(struct dpfctl *d, const char *word)
{
    const struct schema_kind *k = schema_find_name(word);
    if (!k) {
        fprintf(d->err,
                "error: the server doesn't have a resource type \"%s\"\n",
                word);
    }
    return k;
}

const char *
dpfctl_ns_for(struct dpfctl *d, const struct schema_kind *k, bool all_ok)
{
    if (!k->namespaced || (all_ok && d->all_namespaces)) {
        return NULL;
    }
    return d->ns ? d->ns : "default";
}

static void
lower_into(char *buf, size_t size, const char *s)
{
    size_t i = 0;
    for (; s[i] && i + 1 < size; i++) {
        buf[i] = (char) tolower((unsigned char) s[i]);
    }
    buf[i] = '\0';
}

const char *
dpfctl_kind_group(const struct schema_kind *k, char *buf, size_t size)
{
    char lower[128];
    lower_into(lower, sizeof lower, k->kind);
    if (k->group && *k->group) {
        snprintf(buf, size, "%s.%s", lower, k->group);
    } else {
        snprintf(buf, size, "%s", lower);
    }
    return buf;
}

const char *
dpfctl_resource_group(const struct schema_kind *k, char *buf, size_t size)
{
    if (k->group && *k->group) {
        snprintf(buf, size, "%s.%s", k->plural, k->group);
    } else {
        snprintf(buf, size, "%s", k->plural);
    }
    return buf;
}

static const struct dpfctl_cmd *
find_cmd(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
        if (!strcmp(commands[i]->name, name)) {
            return commands[i];
        }
    }
    return NULL;
}

/* Name of the option getopt just rejected, for the error message. */
static const char *
bad_option(char **argv, int idx, int optopt_, char *buf, size_t size)
{
    if (optopt_ > 0 && optopt_ < 256) {
        snprintf(buf, size, "-%c", optopt_);
        return buf;
    }
    const char *a = argv[idx - 1] ? argv[idx - 1] : "?";
    snprintf(buf, size, "%s", a);
    char *eq = strchr(buf, '=');
    if (eq) {
        *eq = '\0';
    }
    return buf;
}

static int
run_cmd(struct dpfctl *d, const struct dpfctl_cmd *cmd, int argc, char **argv)
{
    /* global + command options in one getopt_long table */
    size_t ncmd = 0;
    while (cmd->longopts && cmd->longopts[ncmd].name) {
        ncmd++;
    }
    size_t nglob = ARRAY_SIZE(global_opts);
    struct option *opts = xcalloc(nglob + ncmd + 1, sizeof *opts);
    memcpy(opts, global_opts, sizeof global_opts);
    if (ncmd) {
        memcpy(opts + nglob, cmd->longopts, ncmd * sizeof *opts);
    }
    char *shortopts =
        xasprintf(":n:Ah%s", cmd->shortopts ? cmd->shortopts : "");
    void *state = cmd->state_size ? xcalloc(1, cmd->state_size) : NULL;
    bool help = false;
    int rc = 0;
    char buf[128];

    optind = 0; /* full re-initialisation of GNU getopt */
    opterr = 0;
    int c;
    while (rc == 0 &&
           (c = getopt_long(argc, argv, shortopts, opts, NULL)) != -1) {
        switch (c) {
        case OPT_KUBECONFIG:
            d->kubeconfig = optarg;
            break;
        case OPT_CONTEXT:
            d->context = optarg;
            break;
        case 'n':
            d->namespace_flag = optarg;
            break;
        case 'A':
            d->all_namespaces = true;
            break;
        case OPT_REQUEST_TIMEOUT: {
            int64_t ms;
            if (duration_parse(optarg, &ms) < 0) {
                fprintf(d->err,
                        "error: invalid --request-timeout \"%s\": expected "
                        "a duration like 30s or 2m\n",
                        optarg);
                rc = 1;
            }
            d->request_timeout_ms = (long) ms;
            break;
        }
        case 'h':
            help = true;
            break;
        case OPT_VERSION:
            fprintf(d->out, "dpfctl v%s\n", DPF_VERSION);
            rc = -1;
            break;
        case '?':
            fprintf(d->err,
                    "error: unknown flag: %s\nSee 'dpfctl %s --help' for "
                    "usage.\n",
                    bad_option(argv, optind, optopt, buf, sizeof buf),
                    cmd->name);
            rc = 1;
            break;
        case ':':
            fprintf(d->err,
                    "error: flag needs an argument: %s\nSee 'dpfctl %s "
                    "--help' for usage.\n",
                    bad_option(argv, optind, optopt, buf, sizeof buf),
                    cmd->name);
            rc = 1;
            break;
        default:
            if (c == 'f' && optarg && !strcmp(optarg, "-")) {
                d->stdin_used = true;
            }
            if (!cmd->opt || cmd->opt(state, c, optarg, d) < 0) {
                if (!cmd->opt) {
                    fprintf(d->err, "error: unknown flag\n");
                }
                rc = 1;
            }
            break;
        }
    }
    if (rc == 0 && help) {
        fprintf(d->out, "%s\n%s", cmd->usage, global_help);
    } else if (rc == 0) {
        rc = cmd->run(d, argc - optind, argv + optind, state);
    }
    if (state && cmd->state_free) {
        cmd->state_free(state);
    }
    free(state);
    free(shortopts);
    free(opts);
    return rc < 0 ? 0 : rc;
}

int
dpfctl_main(int argc, char **argv, FILE *out, FILE *err)
{
    struct dpfctl d = {.out = out, .err = err};
    int cmd_idx = -1;
    bool help = false, version = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            break;
        }
        if (a[0] == '-' && a[1]) {
            if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
                help = true;
            } else if (!strcmp(a, "--version")) {
                version = true;
            } else if (global_takes_value(a)) {
                i++;
            }
            continue;
        }
        cmd_idx = i;
        break;
    }
    if (cmd_idx < 0) {
        if (version && !help) {
            fprintf(out, "dpfctl v%s\n", DPF_VERSION);
            return 0;
        }
        top_help(out);
        return 0;
    }
    const struct dpfctl_cmd *cmd = find_cmd(argv[cmd_idx]);
    if (!cmd) {
        fprintf(err,
                "error: unknown command \"%s\" for \"dpfctl\"\nRun 'dpfctl "
                "--help' for usage.\n",
                argv[cmd_idx]);
        return 1;
    }
    /* argv without the command word, so getopt sees only options and the
     * command's own arguments */
    char **av = xcalloc((size_t) argc + 1, sizeof *av);
    int ac = 0;
    for (int i = 0; i < argc; i++) {
        if (i != cmd_idx) {
            av[ac++] = argv[i];
        }
    }
    av[ac] = NULL;
    int rc = run_cmd(&d, cmd, ac, av);
    free(av);
    api_client_destroy(d.client);
    kubeconfig_free(d.kc);
    return rc;
}
