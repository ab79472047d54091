/* cmd-delete: dpfctl delete TYPE NAME... | TYPE/NAME... | -f FILE |
 * TYPE -l SELECTOR | TYPE --all.
 *
 * Sends DELETE with propagationPolicy Background (--cascade), prints
 * kubectl's "<kind>.<group> "<name>" deleted", then waits until every
 * deleted object is really gone (finalizers done) unless --wait=false. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dpfctl/cmd-wait.h"
#include "dpfctl/dpfctl.h"
#include "dpfctl/manifest.h"
#include "lib/base/util.h"
#include "lib/codecs/duration.h"

/* Option state. */
struct delete_state {
    const char **files;    /* -f values */
    size_t nfiles;         /* count */
    bool recursive;        /* -R */
    bool no_wait;          /* --wait=false */
    const char *timeout;   /* --timeout */
    bool ignore_not_found; /* --ignore-not-found */
    const char *selector;  /* -l */
    bool all;              /* --all */
    const char *cascade;   /* --cascade */
};

/* One object to delete. */
struct victim {
    const struct schema_kind *k; /* kind */
    char *ns;                    /* namespace or NULL */
    char *name;                  /* name */
    char *uid;                   /* uid from the DELETE reply or NULL */
    bool pending;                /* deleted but maybe still present */
};

enum {
    OPT_WAIT = 2200,
    OPT_TIMEOUT,
    OPT_IGNORE_NOT_FOUND,
    OPT_ALL,
    OPT_CASCADE,
    OPT_NOW,
    OPT_GRACE,
};

static const struct option delete_opts[] = {
    {"filename", required_argument, NULL, 'f'},
    {"recursive", no_argument, NULL, 'R'},
    {"wait", optional_argument, NULL, OPT_WAIT},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"ignore-not-found", optional_argument, NULL, OPT_IGNORE_NOT_FOUND},
    {"selector", required_argument, NULL, 'l'},
    {"all", no_argument, NULL, OPT_ALL},
    {"cascade", optional_argument, NULL, OPT_CASCADE},
    {"now", no_argument, NULL, OPT_NOW},
    {"grace-period", required_argument, NULL, OPT_GRACE},
    {NULL, 0, NULL, 0},
};

static int
parse_bool(const char *arg, bool *out, struct dpfctl *d, const char *flag)
{
    if (!arg || !strcasecmp(arg, "true") || !strcmp(arg, "1")) {
        *out = true;
        return 0;
    }
    if (!strcasecmp(arg, "false") || !strcmp(arg, "0")) {
        *out = false;
        return 0;
    }
    fprintf(d->err,
            "error: invalid argument \"%s\" for \"--%s\" flag: expected "
            "true or false\n",
            arg, flag);
    return -EINVAL;
}

static int
delete_opt(void *st, int c, const char *arg, struct dpfctl *d)
{
    struct delete_state *s = st;
    bool b;
    switch (c) {
    case 'f':
        s->files = xrealloc(s->files, (s->nfiles + 1) * sizeof *s->files);
        s->files[s->nfiles++] = arg;
        return 0;
    case 'R':
        s->recursive = true;
        return 0;
    case OPT_WAIT:
        if (parse_bool(arg, &b, d, "wait") < 0) {
            return -EINVAL;
        }
        s->no_wait = !b;
        return 0;
    case OPT_TIMEOUT:
        s->timeout = arg;
        return 0;
    case OPT_IGNORE_NOT_FOUND:
        return parse_bool(arg, &s->ignore_not_found, d, "ignore-not-found");
    case 'l':
        s->selector = arg;
        return 0;
    case OPT_ALL:
        s->all = true;
        return 0;
    case OPT_CASCADE:
        s->cascade = arg ? arg : "background";
        return 0;
    case OPT_NOW:
    case OPT_GRACE:
        return 0; /* no grace periods here: accepted for kubectl habits */
    default:
        return -EINVAL;
    }
}

static void
delete_free(void *st)
{
    struct delete_state *s = st;
    free(s->files);
}

static void
add_victim(struct victim **v, size_t *n, const struct schema_kind *k,
           const char *ns, const char *name)
{
    *v = xrealloc(*v, (*n + 1) * sizeof **v);
    struct victim *x = &(*v)[(*n)++];
    memset(x, 0, sizeof *x);
    x->k = k;
    x->ns = k->namespaced && ns ? xstrdup(ns) : NULL;
    x->name = xstrdup(name);
}

static int
collect_victims(struct dpfctl *d, struct delete_state *s, int argc, char **argv,
                struct victim **v, size_t *n)
{
    int bad = 0;
    if (s->nfiles > 0) {
        struct manifest_set set = {0};
        bad = manifest_read(s->files, s->nfiles, s->recursive, stdin, d->err,
                            &set);
        for (size_t i = 0; i < set.n; i++) {
            const json_t *o = set.items[i].obj;
            const char *av =
                json_string_value(json_object_get(o, "apiVersion"));
            const char *kind = json_string_value(json_object_get(o, "kind"));
            json_t *md = json_object_get(o, "metadata");
            const char *name = json_string_value(json_object_get(md, "name"));
            const char *ns =
                json_string_value(json_object_get(md, "namespace"));
            const struct schema_kind *k = schema_find_kind(av, kind);
            if (!k) {
                fprintf(d->err,
                        "error: resource mapping not found for name: \"%s\" "
                        "namespace: \"%s\" from \"%s\": no matches for kind "
                        "\"%s\" in version \"%s\"\n",
                        name ? name : "", ns ? ns : "", set.items[i].source,
                        kind, av);
                bad++;
                continue;
            }
            if (!name) {
                fprintf(d->err, "error: resource name may not be empty\n");
                bad++;
                continue;
            }
            add_victim(v, n, k, ns ? ns : d->ns, name);
        }
        manifest_set_free(&set);
        return bad;
    }
    if (argc == 0) {
        fprintf(d->err, "error: You must provide one or more resources by "
                        "argument or filename.\nExample resource "
                        "specifications include:\n   '-f rsrc.yaml'\n   "
                        "'--filename=rsrc.json'\n   '<resource> <name>'\n   "
                        "'<resource>'\n");
        return 1;
    }
    if (strchr(argv[0], '/')) {
        for (int i = 0; i < argc; i++) {
            char *slash = strchr(argv[i], '/');
            if (!slash) {
                fprintf(d->err, "error: arguments in resource/name form must "
                                "have a single resource and name\n");
                return bad + 1;
            }
            char *type = xstrndup(argv[i], (size_t) (slash - argv[i]));
            const struct schema_kind *k = dpfctl_resolve_type(d, type);
            free(type);
            if (!k) {
                return bad + 1;
            }
            add_victim(v, n, k, dpfctl_ns_for(d, k, false), slash + 1);
        }
        return bad;
    }
    const struct schema_kind *k = dpfctl_resolve_type(d, argv[0]);
    if (!k) {
        return 1;
    }
    if (argc == 1) {
        if (!s->selector && !s->all) {
            fprintf(d->err, "error: resource(s) were provided, but no name was "
                            "specified\n");
            return 1;
        }
        struct api_list_options lo = {.label_selector = s->selector,
                                      .limit = 500};
        json_t *list = NULL;
        struct dpf_error err = {0};
        if (api_client_list(d->client, SCHEMA_GVR(k), dpfctl_ns_for(d, k, true),
                            &lo, &list, &err) < 0) {
            dpfctl_print_error(d, &err, NULL);
            return 1;
        }
        size_t i;
        json_t *it;
        json_t *items = json_object_get(list, "items");
        if (json_array_size(items) == 0) {
            if (d->all_namespaces || !k->namespaced) {
                fprintf(d->err, "No resources found\n");
            } else {
                fprintf(d->err, "No resources found in %s namespace.\n",
                        dpfctl_ns_for(d, k, false));
            }
        }
        json_array_foreach(items, i, it)
        {
            json_t *md = json_object_get(it, "metadata");
            add_victim(v, n, k,
                       json_string_value(json_object_get(md, "namespace")),
                       json_string_value(json_object_get(md, "name")));
        }
        json_decref(list);
        return 0;
    }
    for (int i = 1; i < argc; i++) {
        add_victim(v, n, k, dpfctl_ns_for(d, k, false), argv[i]);
    }
    return 0;
}

static const char *
propagation(const char *cascade, struct dpfctl *d)
{
    if (!cascade || !strcasecmp(cascade, "background") ||
        !strcasecmp(cascade, "true")) {
        return "Background";
    }
    if (!strcasecmp(cascade, "foreground")) {
        return "Foreground";
    }
    if (!strcasecmp(cascade, "orphan") || !strcasecmp(cascade, "false")) {
        return "Orphan";
    }
    fprintf(d->err,
            "error: invalid cascade value (%s). Must be \"background\", "
            "\"foreground\", or \"orphan\"\n",
            cascade);
    return NULL;
}

static int
delete_run(struct dpfctl *d, int argc, char **argv, void *st)
{
    struct delete_state *s = st;
    int64_t timeout_ms = 0;
    if (s->timeout && duration_parse(s->timeout, &timeout_ms) < 0) {
        fprintf(d->err, "error: invalid --timeout \"%s\"\n", s->timeout);
        return 1;
    }
    const char *prop = propagation(s->cascade, d);
    if (!prop) {
        return 1;
    }
    if (dpfctl_connect(d) < 0) {
        return 1;
    }
    struct victim *v = NULL;
    size_t n = 0;
    int rc = collect_victims(d, s, argc, argv, &v, &n) ? 1 : 0;
    for (size_t i = 0; i < n; i++) {
        struct dpf_error err = {0};
        json_t *reply = NULL;
        char kg[256];
        int r = api_client_delete(d->client, SCHEMA_GVR(v[i].k), v[i].ns,
                                  v[i].name, prop, &reply, &err);
        if (r == -ENOENT && s->ignore_not_found) {
            continue;
        }
        if (r < 0) {
            dpfctl_print_error(d, &err, NULL);
            rc = 1;
            continue;
        }
        fprintf(d->out, "%s \"%s\" deleted\n",
                dpfctl_kind_group(v[i].k, kg, sizeof kg), v[i].name);
        fflush(d->out);
        const char *kind = json_string_value(json_object_get(reply, "kind"));
        const char *uid = json_string_value(
            json_object_get(json_object_get(reply, "metadata"), "uid"));
        if (!(kind && !strcmp(kind, "Status"))) {
            v[i].pending = true;
            v[i].uid = uid ? xstrdup(uid) : NULL;
        }
        json_decref(reply);
    }
    if (!s->no_wait) {
        int64_t deadline = timeout_ms > 0 ? time_mono_ms() + timeout_ms : 0;
        for (size_t i = 0; i < n; i++) {
            if (!v[i].pending) {
                continue;
            }
            struct dpf_error err = {0};
            int r = cmd_wait_gone(d, v[i].k, v[i].ns, v[i].name, v[i].uid,
                                  deadline, &err);
            if (r == -ETIMEDOUT) {
                cmd_wait_print_timeout(d, v[i].k, v[i].name);
                rc = 1;
            } else if (r < 0) {
                dpfctl_print_error(d, &err, NULL);
                rc = 1;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        free(v[i].ns);
        free(v[i].name);
        free(v[i].uid);
    }
    free(v);
    return rc;
}

const struct dpfctl_cmd cmd_delete = {
    .name = "delete",
    .summary = "Delete objects and wait until they are gone",
    .usage = "Delete objects by name, file or selector.\n\n"
             "Usage:\n"
             "  dpfctl delete TYPE NAME... | TYPE/NAME... | -f FILE\n"
             "  dpfctl delete TYPE (-l SELECTOR | --all)\n\n"
             "Options:\n"
             "  -f, --filename PATH       the objects named in these files\n"
             "  -R, --recursive           descend into -f directories\n"
             "      --wait=false          do not wait until the objects are "
             "gone\n"
             "      --timeout DUR         give up waiting after DUR (default: "
             "no limit)\n"
             "      --ignore-not-found    absent objects are not an error\n"
             "  -l, --selector SEL        delete the objects matching SEL\n"
             "      --all                 delete every object of TYPE\n"
             "      --cascade MODE        background (default), foreground, "
             "orphan\n",
    .longopts = delete_opts,
    .shortopts = "f:Rl:",
    .run = delete_run,
    .opt = delete_opt,
    .state_size = sizeof(struct delete_state),
    .state_free = delete_free,
};
