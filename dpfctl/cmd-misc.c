/* cmd-misc: the small commands: crds (CustomResourceDefinitions of every
 * non-core kind, from api/schema.h), api-resources (the kinds this dpfctl
 * knows, kubectl's columns) and version (client and server). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dpfctl/dpfctl.h"
#include "dpfctl/printer.h"
#include "lib/base/util.h"
#include "lib/codecs/yamljson.h"

/* Option state shared by the three commands. */
struct misc_state {
    const char *output; /* -o */
    bool client_only;   /* version --client */
};

enum { OPT_CLIENT = 2400 };

static const struct option misc_opts[] = {
    {"output", required_argument, NULL, 'o'},
    {NULL, 0, NULL, 0},
};

static const struct option version_opts[] = {
    {"output", required_argument, NULL, 'o'},
    {"client", optional_argument, NULL, OPT_CLIENT},
    {NULL, 0, NULL, 0},
};

static int
misc_opt(void *st, int c, const char *arg, struct dpfctl *d)
{
    struct misc_state *s = st;
    switch (c) {
    case 'o':
        s->output = arg;
        return 0;
    case OPT_CLIENT:
        s->client_only = !arg || strcasecmp(arg, "false") != 0;
        return 0;
    default:
        return -EINVAL;
    }
}

static int
no_args(struct dpfctl *d, const char *cmd, int argc, char **argv)
{
    if (argc > 0) {
        fprintf(d->err, "error: unexpected argument \"%s\" for \"%s\"\n",
                argv[0], cmd);
        return 1;
    }
    return 0;
}

/* --- crds --- */

static int
crds_run(struct dpfctl *d, int argc, char **argv, void *st)
{
    struct misc_state *s = st;
    bool json = false;
    if (no_args(d, "crds", argc, argv)) {
        return 1;
    }
    if (s->output && !strcmp(s->output, "json")) {
        json = true;
    } else if (s->output && strcmp(s->output, "yaml") != 0) {
        fprintf(d->err,
                "error: unsupported output format \"%s\" (yaml or json)\n",
                s->output);
        return 1;
    }
    size_t n;
    const struct schema_kind *const *kinds = schema_kinds(&n);
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++) {
        if (!kinds[i]->group || !*kinds[i]->group) {
            continue;
        }
        json_t *crd = schema_crd(kinds[i]);
        if (crd) {
            json_array_append_new(items, crd);
        }
    }
    if (json) {
        json_t *list = printer_list(items);
        printer_json(d->out, list);
        json_decref(list);
    } else {
        size_t i;
        json_t *crd;
        json_array_foreach(items, i, crd)
        {
            /* schema order (apiVersion, kind, metadata, spec) reads
             * better than sorted keys for a CRD */
            char *y = yamljson_emit(crd);
            fprintf(d->out, "%s%s", i ? "---\n" : "", y);
            free(y);
        }
    }
    json_decref(items);
    fflush(d->out);
    return 0;
}

const struct dpfctl_cmd cmd_crds = {
    .name = "crds",
    .summary = "Print the CustomResourceDefinitions of every DPF kind",
    .usage = "Print an apiextensions.k8s.io/v1 CustomResourceDefinition for "
             "every non-core\nkind, generated from the same schema the "
             "server validates with. Apply\nthem to a real Kubernetes "
             "cluster to run the controllers there.\n\n"
             "Usage:\n  dpfctl crds [-o yaml|json]\n\n"
             "Options:\n"
             "  -o, --output FMT   yaml (default: documents separated by "
             "---) or json\n"
             "                     (one kind: List)\n",
    .longopts = misc_opts,
    .shortopts = "o:",
    .run = crds_run,
    .opt = misc_opt,
    .state_size = sizeof(struct misc_state),
};

/* --- api-resources --- */

static int
cmp_kinds(const void *a, const void *b)
{
    const struct schema_kind *x = *(const struct schema_kind *const *) a;
    const struct schema_kind *y = *(const struct schema_kind *const *) b;
    int c = strcmp(x->group ? x->group : "", y->group ? y->group : "");
    return c ? c : strcmp(x->plural, y->plural);
}

static int
api_resources_run(struct dpfctl *d, int argc, char **argv, void *st)
{
    struct misc_state *s = st;
    if (no_args(d, "api-resources", argc, argv)) {
        return 1;
    }
    bool wide = s->output && !strcmp(s->output, "wide");
    bool name = s->output && !strcmp(s->output, "name");
    if (s->output && !wide && !name) {
        fprintf(d->err, "error: --output %s is not available\n", s->output);
        return 1;
    }
    size_t n;
    const struct schema_kind *const *all = schema_kinds(&n);
    const struct schema_kind **kinds = xcalloc(n ? n : 1, sizeof *kinds);
    memcpy(kinds, all, n * sizeof *kinds);
    qsort(kinds, n, sizeof *kinds, cmp_kinds);
    struct printer_table t;
    printer_table_init(&t, wide ? 6 : 5);
    const char *hdr[] = {"NAME",       "SHORTNAMES", "APIVERSION",
                         "NAMESPACED", "KIND",       "CATEGORIES"};
    if (!name) {
        printer_table_add(&t, hdr);
    }
    for (size_t i = 0; i < n; i++) {
        const struct schema_kind *k = kinds[i];
        if (name) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s%s%s", k->plural,
                     k->group && *k->group ? "." : "",
                     k->group ? k->group : "");
            fprintf(d->out, "%s\n", buf);
            continue;
        }
        struct dbuf sn, cat;
        dbuf_init(&sn);
        dbuf_init(&cat);
        for (size_t j = 0; k->short_names && k->short_names[j]; j++) {
            dbuf_printf(&sn, "%s%s", j ? "," : "", k->short_names[j]);
        }
        for (size_t j = 0; k->categories && k->categories[j]; j++) {
            dbuf_printf(&cat, "%s%s", j ? "," : "", k->categories[j]);
        }
        const char *row[6] = {k->plural,
                              sn.data ? sn.data : "",
                              schema_api_version(k),
                              k->namespaced ? "true" : "false",
                              k->kind,
                              cat.data ? cat.data : ""};
        printer_table_add(&t, row);
        dbuf_free(&sn);
        dbuf_free(&cat);
    }
    printer_table_print(&t, d->out);
    printer_table_free(&t);
    free(kinds);
    return 0;
}

const struct dpfctl_cmd cmd_api_resources = {
    .name = "api-resources",
    .summary = "List the resource types dpfctl knows",
    .usage = "List the resource types (the kinds of the schema compiled "
             "into dpfctl).\n\n"
             "Usage:\n  dpfctl api-resources [-o wide|name]\n",
    .longopts = misc_opts,
    .shortopts = "o:",
    .run = api_resources_run,
    .opt = misc_opt,
    .state_size = sizeof(struct misc_state),
};

/* --- version --- */

static int
version_run(struct dpfctl *d, int argc, char **argv, void *st)
{
    struct misc_state *s = st;
    if (no_args(d, "version", argc, argv)) {
        return 1;
    }
    json_t *doc =
        json_pack("{s:{s:s}}", "clientVersion", "gitVersion", "v" DPF_VERSION);
    int rc = 0;
    if (!s->client_only) {
        if (dpfctl_connect(d) < 0) {
            json_decref(doc);
            return 1;
        }
        struct kube_request req = {.method = "GET", .path = "/version"};
        struct kube_response resp;
        struct dpf_error err = {0};
        int r = api_client_request(d->client, &req, &resp, &err);
        if (r == 0) {
            r = kube_status_to_error(resp.status, resp.body, resp.len, &err);
        }
        json_t *sv = r == 0 ? json_loadb(resp.body, resp.len, 0, NULL) : NULL;
        kube_response_free(&resp);
        if (sv) {
            json_object_set_new(doc, "serverVersion", sv);
        } else {
            if (r == 0) {
                dpf_error_set(&err, 500, "InternalError",
                              "/version: reply is not JSON");
            }
            rc = 1;
            if (!s->output) {
                fprintf(d->out, "Client Version: v%s\n", DPF_VERSION);
            }
            dpfctl_print_error(d, &err, NULL);
            json_decref(doc);
            return rc;
        }
    }
    if (s->output && !strcmp(s->output, "json")) {
        printer_json(d->out, doc);
    } else if (s->output && !strcmp(s->output, "yaml")) {
        printer_yaml(d->out, doc);
    } else if (s->output) {
        fprintf(d->err, "error: --output must be 'yaml' or 'json'\n");
        rc = 1;
    } else {
        fprintf(d->out, "Client Version: v%s\n", DPF_VERSION);
        const char *gv = json_string_value(json_object_get(
            json_object_get(doc, "serverVersion"), "gitVersion"));
        if (!s->client_only) {
            fprintf(d->out, "Server Version: %s\n", gv ? gv : "<unknown>");
        }
    }
    json_decref(doc);
    return rc;
}

const struct dpfctl_cmd cmd_version = {
    .name = "version",
    .summary = "Print the client and server versions",
    .usage = "Print the client and server versions.\n\n"
             "Usage:\n  dpfctl version [--client] [-o yaml|json]\n",
    .longopts = version_opts,
    .shortopts = "o:",
    .run = version_run,
    .opt = misc_opt,
    .state_size = sizeof(struct misc_state),
};
