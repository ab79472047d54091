/* cmd-apply: dpfctl apply -f FILE|DIR|- (client-side apply, as kubectl).
 *
 * For each object: GET it; absent -> POST the object with the
 * last-applied-configuration annotation; present -> PATCH with the
 * three-way JSON merge patch between the last applied configuration (the
 * live object's annotation), the new one and the live object. Status is
 * never sent on its own (the server ignores status on the main resource),
 * and the annotation is written exactly as kubectl writes it, so kubectl
 * and dpfctl applies of the same objects interoperate. */
#include "dpfctl/cmd-apply.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dpfctl/dpfctl.h"
#include "dpfctl/manifest.h"
#include "lib/base/util.h"

#define FIELD_MANAGER "kubectl-client-side-apply"

/* Deep copy without null members (kubectl drops nulls from the "changes"
 * half of the patch: a null in the file only deletes what the last
 * applied configuration had). */
static json_t *
copy_without_nulls(const json_t *v)
{
    if (!json_is_object(v)) {
        return json_deep_copy(v);
    }
    json_t *o = json_object();
    const char *key;
    json_t *m;
    json_object_foreach((json_t *) v, key, m)
    {
        if (!json_is_null(m)) {
            json_object_set_new(o, key, copy_without_nulls(m));
        }
    }
    return o;
}

/* Fields of modified that differ from current; NULL when none. */
static json_t *
diff_changes(const json_t *current, const json_t *modified)
{
    json_t *patch = json_object();
    const char *key;
    json_t *mv;
    json_object_foreach((json_t *) modified, key, mv)
    {
        json_t *cv = json_object_get(current, key);
        if (json_is_null(mv)) {
            continue;
        }
        if (!cv) {
            json_object_set_new(patch, key, copy_without_nulls(mv));
        } else if (json_is_object(cv) && json_is_object(mv)) {
            json_t *sub = diff_changes(cv, mv);
            if (sub) {
                json_object_set_new(patch, key, sub);
            }
        } else if (!json_equal(cv, mv)) {
            json_object_set_new(patch, key, copy_without_nulls(mv));
        }
    }
    if (json_object_size(patch) == 0) {
        json_decref(patch);
        return NULL;
    }
    return patch;
}

/* Fields of original missing from modified, as nulls; NULL when none. */
static json_t *
diff_deletions(const json_t *original, const json_t *modified)
{
    json_t *patch = json_object();
    const char *key;
    json_t *ov;
    json_object_foreach((json_t *) original, key, ov)
    {
        json_t *mv = json_object_get(modified, key);
        if (json_is_null(ov)) {
            continue;
        }
        if (!mv || json_is_null(mv)) {
            json_object_set_new(patch, key, json_null());
        } else if (json_is_object(ov) && json_is_object(mv)) {
            json_t *sub = diff_deletions(ov, mv);
            if (sub) {
                json_object_set_new(patch, key, sub);
            }
        }
    }
    if (json_object_size(patch) == 0) {
        json_decref(patch);
        return NULL;
    }
    return patch;
}

/* Merge deletions into changes where they do not conflict. */
static void
merge_into(json_t *changes, const json_t *deletions)
{
    const char *key;
    json_t *dv;
    json_object_foreach((json_t *) deletions, key, dv)
    {
        json_t *cv = json_object_get(changes, key);
        if (!cv) {
            json_object_set(changes, key, dv);
        } else if (json_is_object(cv) && json_is_object(dv)) {
            merge_into(cv, dv);
        }
    }
}

json_t *
cmd_apply_three_way(const json_t *original, const json_t *modified,
                    const json_t *current)
{
    json_t *changes = diff_changes(current, modified);
    if (!changes) {
        changes = json_object();
    }
    if (original) {
        json_t *del = diff_deletions(original, modified);
        if (del) {
            merge_into(changes, del);
            json_decref(del);
        }
    }
    return changes;
}

json_t *
cmd_apply_with_annotation(const json_t *obj)
{
    json_t *copy = json_deep_copy(obj);
    json_t *md = json_object_get(copy, "metadata");
    if (!json_is_object(md)) {
        md = json_object();
        json_object_set_new(copy, "metadata", md);
    }
    /* like kubectl: the annotations map exists (maybe empty) in the
     * recorded configuration, without the annotation itself */
    json_t *ann = json_object_get(md, "annotations");
    if (!json_is_object(ann)) {
        ann = json_object();
        json_object_set_new(md, "annotations", ann);
    }
    json_object_del(ann, CMD_APPLY_LAST_APPLIED);
    char *text = json_dumps(copy, JSON_COMPACT | JSON_SORT_KEYS);
    /* Go's encoder escapes <, > and & (they only occur inside strings
     * here), so byte-equal annotations come out of kubectl and dpfctl */
    struct dbuf b;
    dbuf_init(&b);
    for (const char *p = text; *p; p++) {
        if (*p == '<') {
            dbuf_puts(&b, "\\u003c");
        } else if (*p == '>') {
            dbuf_puts(&b, "\\u003e");
        } else if (*p == '&') {
            dbuf_puts(&b, "\\u0026");
        } else {
            dbuf_append(&b, p, 1);
        }
    }
    dbuf_puts(&b, "\n");
    free(text);
    char *value = dbuf_steal(&b, NULL);
    json_object_set_new(ann, CMD_APPLY_LAST_APPLIED, json_string(value));
    free(value);
    return copy;
}

/* Option state. */
struct apply_state {
    const char **files; /* -f values */
    size_t nfiles;      /* count */
    bool recursive;     /* -R */
};

enum { OPT_FIELD_MANAGER = 2000, OPT_VALIDATE, OPT_DRY_RUN };

static const struct option apply_opts[] = {
    {"filename", required_argument, NULL, 'f'},
    {"recursive", no_argument, NULL, 'R'},
    {"validate", optional_argument, NULL, OPT_VALIDATE},
    {NULL, 0, NULL, 0},
};

static int
apply_opt(void *st, int c, const char *arg, struct dpfctl *d)
{
    struct apply_state *s = st;
    switch (c) {
    case 'f':
        s->files = xrealloc(s->files, (s->nfiles + 1) * sizeof *s->files);
        s->files[s->nfiles++] = arg;
        return 0;
    case 'R':
        s->recursive = true;
        return 0;
    case OPT_VALIDATE:
        return 0; /* the server validates; accepted for kubectl habits */
    default:
        return -EINVAL;
    }
}

static void
apply_free(void *st)
{
    struct apply_state *s = st;
    free(s->files);
}

static const char *
obj_str(const json_t *obj, const char *a, const char *b)
{
    json_t *v = json_object_get(obj, a);
    if (b) {
        v = json_object_get(v, b);
    }
    return json_string_value(v);
}

/* Print a failed create/patch like kubectl: validation failures with
 * causes as `The <Kind> "<name>" is invalid: <field>: <message>` (several
 * causes one per line, "* <field>: <message>"), everything else as
 * `Error from server (<Reason>): error when <verb> "<file>": <message>`. */
static void
print_write_error(struct dpfctl *d, const struct dpf_error *err,
                  const struct schema_kind *k, const char *name,
                  const char *verb, const char *source)
{
    if (!strcmp(err->reason, "Invalid") && err->n_causes > 0) {
        fprintf(d->err, "The %s \"%s\" is invalid: ", k->kind, name);
        if (err->n_causes == 1) {
            fprintf(d->err, "%s: %s\n", err->causes[0].field,
                    err->causes[0].message);
            return;
        }
        fputc('\n', d->err);
        for (size_t i = 0; i < err->n_causes; i++) {
            fprintf(d->err, "* %s: %s\n", err->causes[i].field,
                    err->causes[i].message);
        }
        return;
    }
    char *pfx = xasprintf("error when %s \"%s\": ", verb, source);
    dpfctl_print_error(d, err, pfx);
    free(pfx);
}

/* Apply one object; 0 or 1 (error printed). */
static int
apply_one(struct dpfctl *d, const json_t *in, const char *source)
{
    const char *av = obj_str(in, "apiVersion", NULL);
    const char *kind = obj_str(in, "kind", NULL);
    const char *name = obj_str(in, "metadata", "name");
    const char *objns = obj_str(in, "metadata", "namespace");
    const struct schema_kind *k = schema_find_kind(av, kind);
    char kg[256];

    if (!k) {
        fprintf(d->err,
                "error: resource mapping not found for name: \"%s\" "
                "namespace: \"%s\" from \"%s\": no matches for kind \"%s\" "
                "in version \"%s\"\nensure CRDs are installed first\n",
                name ? name : "", objns ? objns : "", source, kind, av);
        return 1;
    }
    dpfctl_kind_group(k, kg, sizeof kg);
    if (!name || !*name) {
        fprintf(d->err,
                "error: error when retrieving current configuration of %s "
                "from server for: \"%s\": resource name may not be empty\n",
                kg, source);
        return 1;
    }
    json_t *obj = json_deep_copy(in);
    const char *ns = NULL;
    if (k->namespaced) {
        if (objns && *objns && d->namespace_flag &&
            strcmp(objns, d->namespace_flag) != 0) {
            fprintf(d->err,
                    "error: the namespace from the provided object \"%s\" "
                    "does not match the namespace \"%s\". You must pass "
                    "'--namespace=%s' to perform this operation.\n",
                    objns, d->namespace_flag, objns);
            json_decref(obj);
            return 1;
        }
        ns = objns && *objns ? objns : d->ns;
        json_object_set_new(json_object_get(obj, "metadata"), "namespace",
                            json_string(ns));
    }
    json_t *modified = cmd_apply_with_annotation(obj);
    json_decref(obj);

    struct dpf_error err = {0};
    json_t *live = NULL;
    int rc = 0;
    int r = api_client_get(d->client, SCHEMA_GVR(k), ns, name, &live, &err);
    if (r == -ENOENT) {
        dpf_error_clear(&err);
        r = api_client_post(d->client, SCHEMA_GVR(k), ns, modified,
                            FIELD_MANAGER, NULL, &err);
        if (r < 0) {
            print_write_error(d, &err, k, name, "creating", source);
            rc = 1;
        } else {
            fprintf(d->out, "%s/%s created\n", kg, name);
        }
    } else if (r < 0) {
        char *pfx = xasprintf("error when retrieving current configuration "
                              "of %s \"%s\" from \"%s\": ",
                              kg, name, source);
        dpfctl_print_error(d, &err, pfx);
        free(pfx);
        rc = 1;
    } else {
        const char *last = json_string_value(json_object_get(
            json_object_get(json_object_get(live, "metadata"), "annotations"),
            CMD_APPLY_LAST_APPLIED));
        json_t *original = last ? json_loads(last, 0, NULL) : NULL;
        if (!last) {
            fprintf(d->err,
                    "Warning: resource %s/%s is missing the %s annotation "
                    "which is required by dpfctl apply. dpfctl apply should "
                    "only be used on resources created declaratively by "
                    "either dpfctl/kubectl create --save-config or "
                    "dpfctl/kubectl apply. The missing annotation will be "
                    "patched automatically.\n",
                    k->plural, name, CMD_APPLY_LAST_APPLIED);
        }
        json_t *patch = cmd_apply_three_way(original, modified, live);
        if (json_object_size(patch) == 0) {
            fprintf(d->out, "%s/%s unchanged\n", kg, name);
        } else {
            r = api_client_patch(d->client, SCHEMA_GVR(k), ns, name, NULL,
                                 API_PATCH_MERGE, patch, FIELD_MANAGER, NULL,
                                 &err);
            if (r < 0) {
                print_write_error(d, &err, k, name, "patching", source);
                rc = 1;
            } else {
                fprintf(d->out, "%s/%s configured\n", kg, name);
            }
        }
        json_decref(patch);
        json_decref(original);
        json_decref(live);
    }
    json_decref(modified);
    fflush(d->out);
    return rc;
}

static int
apply_run(struct dpfctl *d, int argc, char **argv, void *st)
{
    struct apply_state *s = st;
    if (argc > 0) {
        fprintf(d->err,
                "error: Unexpected args: [%s]\nSee 'dpfctl apply -h' "
                "for help and examples\n",
                argv[0]);
        return 1;
    }
    if (s->nfiles == 0) {
        fprintf(d->err, "error: must specify one of -f and -k\n");
        return 1;
    }
    struct manifest_set set = {0};
    int bad =
        manifest_read(s->files, s->nfiles, s->recursive, stdin, d->err, &set);
    if (set.n > 0 && dpfctl_connect(d) < 0) {
        manifest_set_free(&set);
        return 1;
    }
    if (set.n == 0 && bad == 0) {
        fprintf(d->err, "error: no objects passed to apply\n");
        bad = 1;
    }
    for (size_t i = 0; i < set.n; i++) {
        bad += apply_one(d, set.items[i].obj, set.items[i].source);
    }
    manifest_set_free(&set);
    return bad ? 1 : 0;
}

const struct dpfctl_cmd cmd_apply = {
    .name = "apply",
    .summary = "Create or update objects from files (client-side apply)",
    .usage =
        "Create or update objects from YAML/JSON files, kubectl-style.\n\n"
        "Usage:\n  dpfctl apply -f FILE|DIR|- [-f ...] [-R]\n\n"
        "Options:\n"
        "  -f, --filename PATH   file, directory (its .yaml/.yml/.json "
        "files) or - for stdin;\n"
        "                        repeatable\n"
        "  -R, --recursive       descend into subdirectories of -f "
        "directories\n\n"
        "Each object is created (\"created\") or patched with a three-way "
        "merge\nagainst its last applied configuration (\"configured\"), or "
        "left alone\n(\"unchanged\"). The kubectl.kubernetes.io/"
        "last-applied-configuration\nannotation is kept like kubectl keeps "
        "it.\n",
    .longopts = apply_opts,
    .shortopts = "f:R",
    .run = apply_run,
    .opt = apply_opt,
    .state_size = sizeof(struct apply_state),
    .state_free = apply_free,
};
