/* cmd-wait: dpfctl wait TYPE/NAME | TYPE NAME... --for=... [--timeout].
 *
 *   --for=condition=Ready[=value]   status.conditions[type=Ready].status
 *                                   equals value (default True; case is
 *                                   ignored, as kubectl does), and the
 *                                   condition is not older than
 *                                   metadata.generation
 *   --for=jsonpath={.a.b}=value     the JSONPath gives exactly value
 *   --for=jsonpath={.a.b}           the JSONPath gives something
 *   --for=delete                    the object is gone
 * Waiting is a list followed by a watch from the list's resourceVersion
 * (no polling). */
#include "dpfctl/cmd-wait.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/codecs/jsonpath.h"
#include "lib/base/util.h"
#include "lib/codecs/duration.h"

/* --- the waiting loop --- */

struct loopctx {
    cmd_wait_pred pred; /* caller's predicate */
    void *arg;          /* its argument */
    const char *name;   /* object name (the watch is filtered by it) */
};

static int
loop_event(void *arg, enum kube_event_type type, json_t *obj)
{
    struct loopctx *l = arg;
    if (type == KUBE_EVENT_BOOKMARK) {
        return 0;
    }
    const char *n = json_string_value(
        json_object_get(json_object_get(obj, "metadata"), "name"));
    if (!n || strcmp(n, l->name) != 0) {
        return 0;
    }
    return l->pred(l->arg, type == KUBE_EVENT_DELETED ? NULL : obj) ? 1 : 0;
}

int
cmd_wait_until(struct dpfctl *d, const struct schema_kind *k, const char *ns,
               const char *name, cmd_wait_pred pred, void *arg,
               int64_t deadline_ms, struct dpf_error *err)
{
    char *fs = xasprintf("metadata.name=%s", name);
    struct loopctx l = {.pred = pred, .arg = arg, .name = name};
    int r;
    for (;;) {
        struct api_list_options lo = {.field_selector = fs};
        json_t *list = NULL;
        r = api_client_list(d->client, SCHEMA_GVR(k), ns, &lo, &list, err);
        if (r < 0) {
            break;
        }
        json_t *obj = NULL;
        size_t i;
        json_t *it;
        json_array_foreach(json_object_get(list, "items"), i, it)
        {
            const char *n = json_string_value(
                json_object_get(json_object_get(it, "metadata"), "name"));
            if (n && !strcmp(n, name)) {
                obj = it;
            }
        }
        if (pred(arg, obj)) {
            json_decref(list);
            r = 0;
            break;
        }
        if (deadline_ms < 0 ||
            (deadline_ms > 0 && time_mono_ms() >= deadline_ms)) {
            json_decref(list);
            r = -ETIMEDOUT;
            break;
        }
        struct api_watch_options wo = {.field_selector = fs,
                                       .deadline_ms = deadline_ms};
        const char *rv = json_string_value(json_object_get(
            json_object_get(list, "metadata"), "resourceVersion"));
        snprintf(wo.resource_version, sizeof wo.resource_version, "%s",
                 rv ? rv : "");
        json_decref(list);
        /* resume the watch as long as the server ends it cleanly */
        do {
            r = api_client_watch(d->client, SCHEMA_GVR(k), ns, &wo, loop_event,
                                 &l, err);
        } while (r == 0 && (deadline_ms == 0 || time_mono_ms() < deadline_ms));
        if (r == 1) {
            r = 0;
            break;
        }
        if (r == 0 || r == -ETIMEDOUT) {
            r = -ETIMEDOUT;
            break;
        }
        if (r != -ESTALE) {
            break;
        }
        dpf_error_clear(err); /* too old: list again */
    }
    free(fs);
    return r;
}

struct gonectx {
    const char *uid; /* the deleted object's uid or NULL */
};

static int
gone_pred(void *arg, const json_t *obj)
{
    struct gonectx *g = arg;
    if (!obj) {
        return 1;
    }
    const char *uid = json_string_value(
        json_object_get(json_object_get(obj, "metadata"), "uid"));
    return g->uid && uid && strcmp(uid, g->uid) != 0;
}

int
cmd_wait_gone(struct dpfctl *d, const struct schema_kind *k, const char *ns,
              const char *name, const char *uid, int64_t deadline_ms,
              struct dpf_error *err)
{
    struct gonectx g = {.uid = uid};
    return cmd_wait_until(d, k, ns, name, gone_pred, &g, deadline_ms, err);
}

void
cmd_wait_print_timeout(struct dpfctl *d, const struct schema_kind *k,
                       const char *name)
{
    fprintf(d->err, "error: timed out waiting for the condition on %s/%s\n",
            k->plural, name);
}

/* --- the command --- */

enum wait_for { FOR_NONE, FOR_CONDITION, FOR_JSONPATH, FOR_DELETE };

/* Option state. */
struct wait_state {
    const char *for_arg;  /* --for value */
    const char *timeout;  /* --timeout value */
    const char *selector; /* -l */
    bool all;             /* --all */
};

/* The parsed --for. */
struct cond {
    enum wait_for type;
    char *name;     /* condition type, or the JSONPath expression */
    char *value;    /* wanted value or NULL */
    bool has_value; /* jsonpath: a value was given */
};

enum { OPT_FOR = 2300, OPT_TIMEOUT, OPT_ALL };

static const struct option wait_opts[] = {
    {"for", required_argument, NULL, OPT_FOR},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"selector", required_argument, NULL, 'l'},
    {"all", no_argument, NULL, OPT_ALL},
    {NULL, 0, NULL, 0},
};

static int
wait_opt(void *st, int c, const char *arg, struct dpfctl *d)
{
    struct wait_state *s = st;
    switch (c) {
    case OPT_FOR:
        s->for_arg = arg;
        return 0;
    case OPT_TIMEOUT:
        s->timeout = arg;
        return 0;
    case 'l':
        s->selector = arg;
        return 0;
    case OPT_ALL:
        s->all = true;
        return 0;
    default:
        return -EINVAL;
    }
}

static int
parse_for(const char *f, struct cond *c)
{
    memset(c, 0, sizeof *c);
    if (!strcasecmp(f, "delete")) {
        c->type = FOR_DELETE;
        return 0;
    }
    if (!strncasecmp(f, "condition=", 10)) {
        const char *rest = f + 10;
        const char *eq = strchr(rest, '=');
        c->type = FOR_CONDITION;
        c->name = eq ? xstrndup(rest, (size_t) (eq - rest)) : xstrdup(rest);
        c->value = xstrdup(eq ? eq + 1 : "True");
        return *c->name ? 0 : -EINVAL;
    }
    if (!strncasecmp(f, "jsonpath=", 9)) {
        const char *rest = f + 9;
        const char *split = NULL;
        if (*rest == '{') {
            const char *close = strchr(rest, '}');
            if (!close) {
                return -EINVAL;
            }
            split = close[1] == '=' ? close + 1 : NULL;
            if (close[1] && close[1] != '=') {
                return -EINVAL;
            }
            c->name = xstrndup(rest, (size_t) (close + 1 - rest));
        } else {
            split = strchr(rest, '=');
            c->name =
                split ? xstrndup(rest, (size_t) (split - rest)) : xstrdup(rest);
        }
        c->type = FOR_JSONPATH;
        if (split) {
            c->value = xstrdup(split + 1);
            c->has_value = true;
        }
        return *c->name ? 0 : -EINVAL;
    }
    return -EINVAL;
}

static int
cond_pred(void *arg, const json_t *obj)
{
    const struct cond *c = arg;
    if (c->type == FOR_DELETE) {
        return obj == NULL;
    }
    if (!obj) {
        return 0;
    }
    if (c->type == FOR_CONDITION) {
        json_t *md = json_object_get(obj, "metadata");
        json_int_t gen = json_integer_value(json_object_get(md, "generation"));
        json_t *conds =
            json_object_get(json_object_get(obj, "status"), "conditions");
        size_t i;
        json_t *cd;
        json_array_foreach(conds, i, cd)
        {
            const char *t = json_string_value(json_object_get(cd, "type"));
            const char *st = json_string_value(json_object_get(cd, "status"));
            if (!t || strcasecmp(t, c->name) != 0) {
                continue;
            }
            json_t *og = json_object_get(cd, "observedGeneration");
            if (json_is_integer(og) && gen > 0 &&
                json_integer_value(og) < gen) {
                return 0;
            }
            return st && !strcasecmp(st, c->value);
        }
        return 0;
    }
    json_t *res = NULL;
    struct dpf_error err = {0};
    if (jsonpath_eval(c->name, obj, &res, &err) < 0) {
        return 0;
    }
    int met;
    if (!c->has_value) {
        met = json_array_size(res) > 0;
    } else if (json_array_size(res) != 1) {
        met = 0;
    } else {
        char *txt = jsonpath_value_text(json_array_get(res, 0));
        met = !strcmp(txt, c->value);
        free(txt);
    }
    json_decref(res);
    return met;
}

static int
wait_one(struct dpfctl *d, const struct schema_kind *k, const char *name,
         struct cond *c, int64_t timeout_ms)
{
    const char *ns = dpfctl_ns_for(d, k, false);
    struct dpf_error err = {0};
    char kg[256];
    json_t *obj = NULL;
    int g = api_client_get(d->client, SCHEMA_GVR(k), ns, name, &obj, &err);
    json_decref(obj);
    if (g == -ENOENT && c->type == FOR_DELETE) {
        return 0; /* already gone: kubectl prints nothing */
    }
    if (g < 0) {
        dpfctl_print_error(d, &err, NULL);
        return 1;
    }
    int64_t deadline = timeout_ms == 0  ? -1
                       : timeout_ms < 0 ? 0
                                        : time_mono_ms() + timeout_ms;
    int r = cmd_wait_until(d, k, ns, name, cond_pred, c, deadline, &err);
    if (r == -ETIMEDOUT) {
        cmd_wait_print_timeout(d, k, name);
        return 1;
    }
    if (r < 0) {
        dpfctl_print_error(d, &err, NULL);
        return 1;
    }
    fprintf(d->out, "%s/%s condition met\n",
            dpfctl_kind_group(k, kg, sizeof kg), name);
    fflush(d->out);
    return 0;
}

static int
wait_run(struct dpfctl *d, int argc, char **argv, void *st)
{
    struct wait_state *s = st;
    struct cond c;
    int64_t timeout_ms = 30000;
    if (!s->for_arg) {
        fprintf(d->err, "error: --for must be set\n");
        return 1;
    }
    if (parse_for(s->for_arg, &c) < 0) {
        fprintf(d->err,
                "error: unrecognized condition: \"%s\" (expected "
                "delete, condition=NAME[=VALUE] or "
                "jsonpath={PATH}[=VALUE])\n",
                s->for_arg);
        free(c.name);
        free(c.value);
        return 1;
    }
    if (s->timeout) {
        bool neg = s->timeout[0] == '-';
        if (duration_parse(s->timeout + (neg ? 1 : 0), &timeout_ms) < 0) {
            fprintf(d->err, "error: invalid --timeout \"%s\"\n", s->timeout);
            free(c.name);
            free(c.value);
            return 1;
        }
        if (neg) {
            timeout_ms = -1;
        }
    }
    int rc = 0;
    if (argc == 0) {
        fprintf(d->err, "error: resource(s) were provided, but no name was "
                        "specified\n");
        rc = 1;
    } else if (dpfctl_connect(d) < 0) {
        rc = 1;
    } else if (strchr(argv[0], '/')) {
        for (int i = 0; i < argc; i++) {
            char *slash = strchr(argv[i], '/');
            if (!slash) {
                fprintf(d->err, "error: arguments in resource/name form must "
                                "have a single resource and name\n");
                rc = 1;
                break;
            }
            char *type = xstrndup(argv[i], (size_t) (slash - argv[i]));
            const struct schema_kind *k = dpfctl_resolve_type(d, type);
            free(type);
            rc |= k ? wait_one(d, k, slash + 1, &c, timeout_ms) : 1;
        }
    } else {
        const struct schema_kind *k = dpfctl_resolve_type(d, argv[0]);
        if (!k) {
            rc = 1;
        } else if (argc == 1 && (s->selector || s->all)) {
            struct api_list_options lo = {.label_selector = s->selector};
            json_t *list = NULL;
            struct dpf_error err = {0};
            if (api_client_list(d->client, SCHEMA_GVR(k),
                                dpfctl_ns_for(d, k, false), &lo, &list,
                                &err) < 0) {
                dpfctl_print_error(d, &err, NULL);
                rc = 1;
            } else {
                size_t i;
                json_t *it;
                json_t *items = json_object_get(list, "items");
                if (json_array_size(items) == 0) {
                    fprintf(d->err, "error: no matching resources found\n");
                    rc = 1;
                }
                json_array_foreach(items, i, it)
                {
                    const char *n = json_string_value(json_object_get(
                        json_object_get(it, "metadata"), "name"));
                    rc |= wait_one(d, k, n ? n : "", &c, timeout_ms);
                }
                json_decref(list);
            }
        } else if (argc == 1) {
            fprintf(d->err, "error: resource(s) were provided, but no name "
                            "was specified\n");
            rc = 1;
        } else {
            for (int i = 1; i < argc; i++) {
                rc |= wait_one(d, k, argv[i], &c, timeout_ms);
            }
        }
    }
    free(c.name);
    free(c.value);
    return rc ? 1 : 0;
}

const struct dpfctl_cmd cmd_wait = {
    .name = "wait",
    .summary = "Wait for a condition on objects",
    .usage =
        "Wait for a condition on one or more objects.\n\n"
        "Usage:\n"
        "  dpfctl wait TYPE/NAME... --for=COND [--timeout=30s]\n"
        "  dpfctl wait TYPE NAME... --for=COND\n"
        "  dpfctl wait TYPE (-l SELECTOR | --all) --for=COND\n\n"
        "COND is one of:\n"
        "  condition=TYPE[=VALUE]   status.conditions[TYPE].status == VALUE "
        "(default True)\n"
        "  jsonpath={PATH}[=VALUE]  the JSONPath's value (or existence)\n"
        "  delete                   the object is gone\n\n"
        "Options:\n"
        "      --for COND          what to wait for (required)\n"
        "      --timeout DUR       give up after DUR (default 30s; 0 = check "
        "once;\n"
        "                          negative = wait without limit)\n"
        "  -l, --selector SEL      wait for every object matching SEL\n"
        "      --all               wait for every object of TYPE\n",
    .longopts = wait_opts,
    .shortopts = "l:",
    .run = wait_run,
    .opt = wait_opt,
    .state_size = sizeof(struct wait_state),
};
