/* cmd-describe: dpfctl describe TYPE [NAME...] | TYPE/NAME.
 *
 * Output follows kubectl's generic describer for custom resources: the
 * header (Name, Namespace, Labels, Annotations), API Version and Kind,
 * then Metadata, Spec and Status printed as indented "Field Name:  value"
 * lines (camelCase keys become title-cased words), with status.conditions
 * shown as a table, and finally the core Events whose involvedObject is
 * this object. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dpfctl/dpfctl.h"
#include "dpfctl/printer.h"
#include "lib/base/util.h"

#define LAST_APPLIED "kubectl.kubernetes.io/last-applied-configuration"

/* Option state. */
struct describe_state {
    const char *selector; /* -l */
};

static const struct option describe_opts[] = {
    {"selector", required_argument, NULL, 'l'},
    {NULL, 0, NULL, 0},
};

static int
describe_opt(void *st, int c, const char *arg, struct dpfctl *d)
{
    struct describe_state *s = st;
    if (c == 'l') {
        s->selector = arg;
        return 0;
    }
    return -EINVAL;
}

/* kubectl's smartLabelFor: "creationTimestamp" -> "Creation Timestamp",
 * "apiVersion" -> "API Version"; keys with characters other than letters
 * and '-' are kept as they are ("ipv4Network", "x.io/y"). Malloc'd. */
static char *
smart_label(const char *key)
{
    static const char *const acronyms[] = {"API", "URL", "UID", "OSB", "GUID"};
    for (const char *p = key; *p; p++) {
        if (!isalpha((unsigned char) *p) && *p != '-') {
            return xstrdup(key);
        }
    }
    struct dbuf out;
    dbuf_init(&out);
    size_t n = strlen(key);
    size_t i = 0;
    while (i < n) {
        size_t s = i;
        if (key[i] == '-') {
            while (i < n && key[i] == '-') {
                i++;
            }
        } else if (isupper((unsigned char) key[i])) {
            size_t j = i;
            while (j < n && isupper((unsigned char) key[j])) {
                j++;
            }
            if (j - i > 1) { /* an acronym run; its last capital may
                                start the next word ("TLSConfig") */
                if (j < n && islower((unsigned char) key[j])) {
                    j--;
                }
                i = j;
            } else {
                i = j;
                while (i < n && islower((unsigned char) key[i])) {
                    i++;
                }
            }
        } else {
            while (i < n && islower((unsigned char) key[i])) {
                i++;
            }
        }
        char word[128];
        size_t wl = DPF_MIN(i - s, sizeof word - 1);
        memcpy(word, key + s, wl);
        word[wl] = '\0';
        bool acro = false;
        for (size_t a = 0; a < ARRAY_SIZE(acronyms); a++) {
            if (!strcasecmp(word, acronyms[a])) {
                snprintf(word, sizeof word, "%s", acronyms[a]);
                acro = true;
                break;
            }
        }
        if (!acro) {
            word[0] = (char) toupper((unsigned char) word[0]);
        }
        dbuf_printf(&out, "%s%s", out.len ? " " : "", word);
    }
    if (!out.data) {
        dbuf_append(&out, "", 0);
    }
    return dbuf_steal(&out, NULL);
}

static void
indent(FILE *out, int n)
{
    for (int i = 0; i < n; i++) {
        fputc(' ', out);
    }
}

static char *
scalar_text(const json_t *v)
{
    if (json_is_string(v)) {
        return xstrdup(json_string_value(v));
    }
    return printer_cell(v);
}

static int
cmp_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

/* Sorted keys of an object (array of borrowed strings; free the array). */
static const char **
sorted_keys(const json_t *o, size_t *n)
{
    *n = json_object_size(o);
    const char **keys = xcalloc(*n ? *n : 1, sizeof *keys);
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *) o, k, v)
    {
        keys[i++] = k;
    }
    qsort(keys, *n, sizeof *keys, cmp_keys);
    return keys;
}

static void describe_map(FILE *out, const json_t *o, int ind);

static bool
is_conditions(const char *key, const json_t *v)
{
    if (strcmp(key, "conditions") != 0 || !json_is_array(v)) {
        return false;
    }
    size_t i;
    json_t *c;
    json_array_foreach(v, i, c)
    {
        if (!json_is_object(c) || !json_object_get(c, "type")) {
            return false;
        }
    }
    return true;
}

static void
conditions_table(FILE *out, const json_t *conds, int ind)
{
    struct printer_table t;
    printer_table_init(&t, 5);
    t.minwidth = 0;
    t.padding = 2;
    char *pad = xcalloc((size_t) ind + 1, 1);
    memset(pad, ' ', (size_t) ind);
    t.indent = pad;
    const char *hdr[] = {"Type", "Status", "Reason", "Message",
                         "Last Transition"};
    const char *dash[] = {"----", "------", "------", "-------",
                          "---------------"};
    printer_table_add(&t, hdr);
    printer_table_add(&t, dash);
    size_t i;
    json_t *c;
    json_array_foreach(conds, i, c)
    {
        char age[32];
        const char *ts =
            json_string_value(json_object_get(c, "lastTransitionTime"));
        if (ts) {
            printer_age(ts, age, sizeof age);
        } else {
            snprintf(age, sizeof age, "<unknown>");
        }
        const char *row[5];
        row[0] = json_string_value(json_object_get(c, "type")) ?: "";
        row[1] = json_string_value(json_object_get(c, "status")) ?: "";
        row[2] = json_string_value(json_object_get(c, "reason")) ?: "";
        row[3] = json_string_value(json_object_get(c, "message")) ?: "";
        row[4] = age;
        printer_table_add(&t, row);
    }
    printer_table_print(&t, out);
    printer_table_free(&t);
    free(pad);
}

/* Print one "Label:<TAB>value" entry (or a nested block) at ind; the
 * tabs are aligned by printer_tabwrite() at the end. */
static void
describe_entry(FILE *out, const char *key, const json_t *v, int ind)
{
    char *label = smart_label(key);
    if (json_is_object(v)) {
        if (json_object_size(v) == 0) {
            fprintf(out, "%*s%s:\n", ind, "", label);
        } else {
            fprintf(out, "%*s%s:\n", ind, "", label);
            describe_map(out, v, ind + 2);
        }
    } else if (json_is_array(v)) {
        fprintf(out, "%*s%s:\n", ind, "", label);
        if (is_conditions(key, v)) {
            conditions_table(out, v, ind + 2);
        } else {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e)
            {
                if (json_is_object(e)) {
                    describe_map(out, e, ind + 2);
                } else {
                    char *s = scalar_text(e);
                    indent(out, ind + 2);
                    fprintf(out, "%s\n", s);
                    free(s);
                }
            }
        }
    } else {
        char *s = scalar_text(v);
        fprintf(out, "%*s%s:\t%s\n", ind, "", label, s);
        free(s);
    }
    free(label);
}

static void
describe_map(FILE *out, const json_t *o, int ind)
{
    size_t n;
    const char **keys = sorted_keys(o, &n);
    for (size_t i = 0; i < n; i++) {
        describe_entry(out, keys[i], json_object_get(o, keys[i]), ind);
    }
    free(keys);
}

/* "Labels:<TAB>a=b" then "<TAB>c=d" continuation lines (kubectl). */
static void
header_map(FILE *out, const char *label, const json_t *m, bool annotations)
{
    fprintf(out, "%s\t", label);
    size_t n;
    const char **keys = sorted_keys(m, &n);
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (annotations && !strcmp(keys[i], LAST_APPLIED)) {
            continue;
        }
        const char *v = json_string_value(json_object_get(m, keys[i]));
        if (any) {
            fputc('\t', out);
        }
        fprintf(out, annotations ? "%s: %s\n" : "%s=%s\n", keys[i], v ? v : "");
        any = true;
    }
    if (!any) {
        fprintf(out, "<none>\n");
    }
    free(keys);
}

/* Core events about obj, oldest first. New ref (array). */
static json_t *
events_for(struct dpfctl *d, const json_t *obj, const char *ns)
{
    json_t *md = json_object_get(obj, "metadata");
    const char *uid = json_string_value(json_object_get(md, "uid"));
    const char *name = json_string_value(json_object_get(md, "name"));
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    const struct schema_kind *ek = schema_find_resource("", "v1", "events");
    char *path = ek ? kube_path(SCHEMA_GVR(ek), ns, NULL, NULL)
                    : (ns ? xasprintf("/api/v1/namespaces/%s/events", ns)
                          : xstrdup("/api/v1/events"));
    struct kube_request req = {.method = "GET", .path = path};
    struct kube_response resp;
    struct dpf_error err = {0};
    json_t *out = json_array();
    int r = api_client_request(d->client, &req, &resp, &err);
    free(path);
    if (r == 0 && resp.status == 200) {
        json_t *list = json_loadb(resp.body, resp.len, 0, NULL);
        size_t i;
        json_t *ev;
        json_array_foreach(json_object_get(list, "items"), i, ev)
        {
            json_t *io = json_object_get(ev, "involvedObject");
            if (!io) {
                io = json_object_get(ev, "regarding"); /* events.k8s.io */
            }
            const char *iuid = json_string_value(json_object_get(io, "uid"));
            const char *iname = json_string_value(json_object_get(io, "name"));
            const char *ikind = json_string_value(json_object_get(io, "kind"));
            bool match = uid && iuid && *iuid
                             ? !strcmp(uid, iuid)
                             : iname && name && ikind && kind &&
                                   !strcmp(iname, name) && !strcmp(ikind, kind);
            if (match) {
                json_array_append(out, ev);
            }
        }
        json_decref(list);
    }
    kube_response_free(&resp);
    return out;
}

static const char *
event_time(const json_t *ev)
{
    static const char *const keys[] = {"lastTimestamp", "eventTime",
                                       "firstTimestamp"};
    for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
        const char *s = json_string_value(json_object_get(ev, keys[i]));
        if (s && *s) {
            return s;
        }
    }
    return json_string_value(
        json_object_get(json_object_get(ev, "metadata"), "creationTimestamp"));
}

static int
cmp_events(const void *a, const void *b)
{
    int64_t ta = 0, tb = 0;
    printer_parse_time(event_time(*(json_t *const *) a), &ta);
    printer_parse_time(event_time(*(json_t *const *) b), &tb);
    return ta < tb ? -1 : ta > tb;
}

static void
print_events(FILE *out, json_t *events)
{
    size_t n = json_array_size(events);
    if (n == 0) {
        fprintf(out, "Events:\t<none>\n");
        return;
    }
    json_t **evs = xcalloc(n, sizeof *evs);
    for (size_t i = 0; i < n; i++) {
        evs[i] = json_array_get(events, i);
    }
    qsort(evs, n, sizeof *evs, cmp_events);
    fprintf(out, "Events:\n  Type\tReason\tAge\tFrom\tMessage\n"
                 "  ----\t------\t----\t----\t-------\n");
    for (size_t i = 0; i < n; i++) {
        const json_t *ev = evs[i];
        char age[32], first[32], agebuf[96];
        printer_age(event_time(ev), age, sizeof age);
        long long count = json_integer_value(json_object_get(ev, "count"));
        const char *fts =
            json_string_value(json_object_get(ev, "firstTimestamp"));
        if (count > 1 && fts) {
            printer_age(fts, first, sizeof first);
            snprintf(agebuf, sizeof agebuf, "%s (x%lld over %s)", age, count,
                     first);
        } else {
            snprintf(agebuf, sizeof agebuf, "%s", age);
        }
        json_t *src = json_object_get(ev, "source");
        const char *from = json_string_value(json_object_get(src, "component"));
        if (!from) {
            from = json_string_value(json_object_get(ev, "reportingComponent"));
        }
        const char *msg = json_string_value(json_object_get(ev, "message"));
        if (!msg || !*msg) {
            msg = json_string_value(json_object_get(ev, "note"));
        }
        /* tabs and newlines inside a message would break the table */
        char *m = xstrdup(msg ? msg : "");
        for (char *c = m; *c; c++) {
            if (*c == '\t' || *c == '\n') {
                *c = ' ';
            }
        }
        fprintf(out, "  %s\t%s\t%s\t%s\t%s\n",
                json_string_value(json_object_get(ev, "type")) ?: "",
                json_string_value(json_object_get(ev, "reason")) ?: "", agebuf,
                from ? from : "", m);
        free(m);
    }
    free(evs);
}

static void
describe_object(struct dpfctl *d, const struct schema_kind *k,
                const json_t *obj)
{
    /* written with tabs first, aligned like kubectl's tabwriter at the end */
    char *text = NULL;
    size_t text_len = 0;
    FILE *out = open_memstream(&text, &text_len);
    json_t *md = json_object_get(obj, "metadata");
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    fprintf(out, "Name:\t%s\n",
            json_string_value(json_object_get(md, "name")) ?: "");
    fprintf(out, "Namespace:\t%s\n", ns ? ns : "");
    header_map(out, "Labels:", json_object_get(md, "labels"), false);
    header_map(out, "Annotations:", json_object_get(md, "annotations"), true);
    fprintf(out, "API Version:\t%s\n",
            json_string_value(json_object_get(obj, "apiVersion"))
                ?: schema_api_version(k));
    fprintf(out, "Kind:\t%s\n",
            json_string_value(json_object_get(obj, "kind")) ?: k->kind);

    /* Metadata without what the header showed and without managedFields */
    json_t *rest = json_deep_copy(md);
    static const char *const skip[] = {"name", "namespace", "labels",
                                       "annotations", "managedFields"};
    for (size_t i = 0; i < ARRAY_SIZE(skip); i++) {
        json_object_del(rest, skip[i]);
    }
    if (json_object_size(rest) > 0) {
        fprintf(out, "Metadata:\n");
        describe_map(out, rest, 2);
    }
    json_decref(rest);

    /* every other top-level field (spec, status, data, ...) */
    size_t n;
    const char **keys = sorted_keys(obj, &n);
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(keys[i], "apiVersion") || !strcmp(keys[i], "kind") ||
            !strcmp(keys[i], "metadata")) {
            continue;
        }
        describe_entry(out, keys[i], json_object_get(obj, keys[i]), 0);
    }
    free(keys);

    json_t *events = events_for(d, obj, ns);
    print_events(out, events);
    json_decref(events);
    fclose(out);
    printer_tabwrite(d->out, text, 0, 2);
    free(text);
}

static int
describe_run(struct dpfctl *d, int argc, char **argv, void *st)
{
    struct describe_state *s = st;
    if (argc == 0) {
        fprintf(d->err, "You must specify the type of resource to describe. "
                        "Use \"dpfctl api-resources\" for a complete list "
                        "of supported resources.\n\nerror: Required "
                        "resource not specified.\n");
        return 1;
    }
    if (dpfctl_connect(d) < 0) {
        return 1;
    }
    /* (kind, name) pairs */
    const struct schema_kind *k = NULL;
    char **names = NULL;
    size_t nn = 0;
    const struct schema_kind **kinds = NULL;
    int rc = 0;
    if (strchr(argv[0], '/')) {
        for (int i = 0; i < argc; i++) {
            char *slash = strchr(argv[i], '/');
            if (!slash) {
                fprintf(d->err, "error: arguments in resource/name form must "
                                "have a single resource and name\n");
                rc = 1;
                goto out;
            }
            char *type = xstrndup(argv[i], (size_t) (slash - argv[i]));
            const struct schema_kind *kk = dpfctl_resolve_type(d, type);
            free(type);
            if (!kk) {
                rc = 1;
                goto out;
            }
            kinds = xrealloc(kinds, (nn + 1) * sizeof *kinds);
            names = xrealloc(names, (nn + 1) * sizeof *names);
            kinds[nn] = kk;
            names[nn++] = xstrdup(slash + 1);
        }
    } else {
        k = dpfctl_resolve_type(d, argv[0]);
        if (!k) {
            rc = 1;
            goto out;
        }
        if (argc == 1) {
            struct api_list_options lo = {.label_selector = s->selector};
            json_t *list = NULL;
            struct dpf_error err = {0};
            if (api_client_list(d->client, SCHEMA_GVR(k),
                                dpfctl_ns_for(d, k, true), &lo, &list,
                                &err) < 0) {
                dpfctl_print_error(d, &err, NULL);
                rc = 1;
                goto out;
            }
            json_t *items = json_object_get(list, "items");
            if (json_array_size(items) == 0) {
                if (d->all_namespaces || !k->namespaced) {
                    fprintf(d->err, "No resources found\n");
                } else {
                    fprintf(d->err, "No resources found in %s namespace.\n",
                            dpfctl_ns_for(d, k, false));
                }
            }
            size_t i;
            json_t *it;
            json_array_foreach(items, i, it)
            {
                if (i > 0) {
                    fputs("\n\n", d->out);
                }
                describe_object(d, k, it);
            }
            json_decref(list);
            goto out;
        }
        for (int i = 1; i < argc; i++) {
            kinds = xrealloc(kinds, (nn + 1) * sizeof *kinds);
            names = xrealloc(names, (nn + 1) * sizeof *names);
            kinds[nn] = k;
            names[nn++] = xstrdup(argv[i]);
        }
    }
    size_t shown = 0;
    for (size_t i = 0; i < nn; i++) {
        json_t *obj = NULL;
        struct dpf_error err = {0};
        if (api_client_get(d->client, SCHEMA_GVR(kinds[i]),
                           dpfctl_ns_for(d, kinds[i], false), names[i], &obj,
                           &err) < 0) {
            dpfctl_print_error(d, &err, NULL);
            rc = 1;
            continue;
        }
        if (shown++ > 0) {
            fputs("\n\n", d->out);
        }
        describe_object(d, kinds[i], obj);
        json_decref(obj);
    }
out:
    for (size_t i = 0; i < nn; i++) {
        free(names[i]);
    }
    free(names);
    free(kinds);
    return rc;
}

const struct dpfctl_cmd cmd_describe = {
    .name = "describe",
    .summary = "Show details of objects, their conditions and events",
    .usage = "Show details of objects, their conditions and events.\n\n"
             "Usage:\n"
             "  dpfctl describe TYPE [NAME...] [-l SELECTOR]\n"
             "  dpfctl describe TYPE/NAME [TYPE/NAME...]\n\n"
             "Without NAME every object of TYPE (matching -l) is shown.\n",
    .longopts = describe_opts,
    .shortopts = "l:",
    .run = describe_run,
    .opt = describe_opt,
    .state_size = sizeof(struct describe_state),
};
