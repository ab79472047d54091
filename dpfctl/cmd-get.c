/* cmd-get: dpfctl get TYPE[,TYPE...] [NAME...] | TYPE/NAME... | -f FILE.
 *
 * Table output comes from the server's Table response (requested with
 * kubectl's Accept header); if the server answers with plain objects the
 * table is computed here from the schema's printer columns. Other formats
 * (-o yaml|json|name|jsonpath=...) use plain objects. -w prints the table
 * and then one row per watch event. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dpfctl/dpfctl.h"
#include "lib/codecs/jsonpath.h"
#include "dpfctl/manifest.h"
#include "dpfctl/printer.h"
#include "lib/base/util.h"

enum out_mode {
    OUT_TABLE,
    OUT_WIDE,
    OUT_YAML,
    OUT_JSON,
    OUT_NAME,
    OUT_JSONPATH
};

/* Option state. */
struct get_state {
    const char *output;         /* -o value */
    const char *selector;       /* -l */
    const char *field_selector; /* --field-selector */
    bool watch;                 /* -w */
    bool watch_only;            /* --watch-only */
    bool show_labels;           /* --show-labels */
    bool no_headers;            /* --no-headers */
    const char **files;         /* -f values */
    size_t nfiles;              /* count */
    bool recursive;             /* -R */
};

/* One kind to fetch, with optional names. */
struct target {
    const struct schema_kind *k; /* the kind */
    char **names;                /* requested names (owned); none = list */
    size_t nnames;               /* count */
    char **name_ns;              /* per-name namespace (-f), or NULL */
};

/* Column selection from a Table's columnDefinitions (or the schema). */
struct colsel {
    size_t n;         /* selected columns */
    size_t idx[64];   /* index into the row's cells */
    char *hdr[64];    /* upper-cased header (owned) */
    bool is_date[64]; /* humanise timestamps */
    size_t name_pos;  /* selected position of the Name column */
};

/* Everything the printing helpers need. */
struct getctx {
    struct dpfctl *d;
    struct get_state *s;
    enum out_mode mode;
    const char *jsonpath; /* OUT_JSONPATH template */
    bool show_kind;       /* prefix names with kind.group/ */
    bool printed_table;   /* a table was printed already */
    json_t *items;        /* collected plain objects (non-table) */
    size_t named_objects; /* objects fetched by name */
    bool any_list;        /* a collection was listed */
    size_t found;         /* objects found in all collections */
    const struct schema_kind *empty_kind; /* a kind listed empty */
    int rc;                               /* exit code so far */
};

enum {
    OPT_FIELD_SELECTOR = 2100,
    OPT_WATCH_ONLY,
    OPT_SHOW_LABELS,
    OPT_NO_HEADERS,
    OPT_CHUNK_SIZE,
};

static const struct option get_opts[] = {
    {"output", required_argument, NULL, 'o'},
    {"selector", required_argument, NULL, 'l'},
    {"field-selector", required_argument, NULL, OPT_FIELD_SELECTOR},
    {"watch", no_argument, NULL, 'w'},
    {"watch-only", no_argument, NULL, OPT_WATCH_ONLY},
    {"show-labels", no_argument, NULL, OPT_SHOW_LABELS},
    {"no-headers", no_argument, NULL, OPT_NO_HEADERS},
    {"filename", required_argument, NULL, 'f'},
    {"recursive", no_argument, NULL, 'R'},
    {"chunk-size", required_argument, NULL, OPT_CHUNK_SIZE},
    {NULL, 0, NULL, 0},
};

static int
get_opt(void *st, int c, const char *arg, struct dpfctl *d)
{
    struct get_state *s = st;
    switch (c) {
    case 'o':
        s->output = arg;
        return 0;
    case 'l':
        s->selector = arg;
        return 0;
    case OPT_FIELD_SELECTOR:
        s->field_selector = arg;
        return 0;
    case 'w':
        s->watch = true;
        return 0;
    case OPT_WATCH_ONLY:
        s->watch = s->watch_only = true;
        return 0;
    case OPT_SHOW_LABELS:
        s->show_labels = true;
        return 0;
    case OPT_NO_HEADERS:
        s->no_headers = true;
        return 0;
    case 'f':
        s->files = xrealloc(s->files, (s->nfiles + 1) * sizeof *s->files);
        s->files[s->nfiles++] = arg;
        return 0;
    case 'R':
        s->recursive = true;
        return 0;
    case OPT_CHUNK_SIZE:
        return 0;
    default:
        return -EINVAL;
    }
}

static void
get_free(void *st)
{
    struct get_state *s = st;
    free(s->files);
}

static void
colsel_free(struct colsel *cs)
{
    for (size_t i = 0; i < cs->n; i++) {
        free(cs->hdr[i]);
    }
    cs->n = 0;
}

static char *
upper(const char *s)
{
    char *u = xstrdup(s);
    for (char *p = u; *p; p++) {
        if (*p >= 'a' && *p <= 'z') {
            *p = (char) (*p - 'a' + 'A');
        }
    }
    return u;
}

/* Pick columns from a Table's columnDefinitions. */
static void
colsel_from_table(const json_t *defs, bool wide, struct colsel *cs)
{
    size_t i;
    json_t *cd;
    memset(cs, 0, sizeof *cs);
    json_array_foreach(defs, i, cd)
    {
        long prio = (long) json_integer_value(json_object_get(cd, "priority"));
        if (prio != 0 && !wide) {
            continue;
        }
        if (cs->n >= ARRAY_SIZE(cs->idx)) {
            break;
        }
        const char *name = json_string_value(json_object_get(cd, "name"));
        const char *type = json_string_value(json_object_get(cd, "type"));
        const char *fmt = json_string_value(json_object_get(cd, "format"));
        if (fmt && !strcmp(fmt, "name") && cs->name_pos == 0 && cs->n > 0) {
            cs->name_pos = cs->n;
        }
        cs->idx[cs->n] = i;
        cs->hdr[cs->n] = upper(name ? name : "");
        cs->is_date[cs->n] = (type && !strcmp(type, "date")) ||
                             (name && !strcasecmp(name, "age"));
        cs->n++;
    }
}

/* Columns from the schema (fallback when the server sent plain objects):
 * NAME, the printer columns, AGE when the kind declares none. Indices:
 * 0 = name, 1.. = k->columns[i-1], SIZE_MAX = age. */
static void
colsel_from_schema(const struct schema_kind *k, bool wide, struct colsel *cs)
{
    memset(cs, 0, sizeof *cs);
    cs->idx[0] = 0;
    cs->hdr[0] = xstrdup("NAME");
    cs->n = 1;
    size_t ncols = 0;
    for (size_t i = 0; k->columns && k->columns[i].name; i++) {
        ncols++;
        if (k->columns[i].priority != 0 && !wide) {
            continue;
        }
        if (cs->n >= ARRAY_SIZE(cs->idx)) {
            break;
        }
        cs->idx[cs->n] = i + 1;
        cs->hdr[cs->n] = upper(k->columns[i].name);
        cs->is_date[cs->n] =
            k->columns[i].type && !strcmp(k->columns[i].type, "date");
        cs->n++;
    }
    if (ncols == 0) {
        cs->idx[cs->n] = SIZE_MAX;
        cs->hdr[cs->n] = xstrdup("AGE");
        cs->is_date[cs->n] = true;
        cs->n++;
    }
}

static char *
labels_text(const json_t *labels)
{
    if (!json_is_object(labels) || json_object_size(labels) == 0) {
        return xstrdup("<none>");
    }
    json_t *sorted = printer_sorted(labels);
    struct dbuf b;
    dbuf_init(&b);
    const char *key;
    json_t *v;
    json_object_foreach(sorted, key, v)
    {
        dbuf_printf(&b, "%s%s=%s", b.len ? "," : "", key,
                    json_string_value(v) ? json_string_value(v) : "");
    }
    json_decref(sorted);
    return dbuf_steal(&b, NULL);
}

/* Start a printer table with the header for cs. */
static void
table_start(struct getctx *g, struct printer_table *t, const struct colsel *cs)
{
    bool all = g->d->all_namespaces;
    size_t n = cs->n + (all ? 1 : 0) + (g->s->show_labels ? 1 : 0);
    const char *hdr[70];
    size_t j = 0;
    printer_table_init(t, n);
    if (all) {
        hdr[j++] = "NAMESPACE";
    }
    for (size_t i = 0; i < cs->n; i++) {
        hdr[j++] = cs->hdr[i];
    }
    if (g->s->show_labels) {
        hdr[j++] = "LABELS";
    }
    if (!g->s->no_headers) {
        printer_table_add(t, hdr);
    }
}

/* Add one row: cells already selected (cs->n strings, owned by caller). */
static void
table_row(struct getctx *g, struct printer_table *t, const struct colsel *cs,
          const struct schema_kind *k, char **cells, const char *ns,
          const json_t *labels)
{
    const char *row[70];
    char *lbl = NULL, *named = NULL;
    size_t j = 0;
    if (g->d->all_namespaces) {
        row[j++] = ns ? ns : "";
    }
    for (size_t i = 0; i < cs->n; i++) {
        if (i == cs->name_pos && g->show_kind) {
            char kg[256];
            named = xasprintf("%s/%s", dpfctl_kind_group(k, kg, sizeof kg),
                              cells[i]);
            row[j++] = named;
        } else {
            row[j++] = cells[i];
        }
    }
    if (g->s->show_labels) {
        lbl = labels_text(labels);
        row[j++] = lbl;
    }
    printer_table_add(t, row);
    free(lbl);
    free(named);
}

static char *
date_cell(char *v)
{
    int64_t t;
    if (printer_parse_time(v, &t) == 0) {
        char buf[32];
        printer_age(v, buf, sizeof buf);
        free(v);
        return xstrdup(buf);
    }
    return v;
}

/* Rows of a Table object into t. */
static void
rows_from_table(struct getctx *g, struct printer_table *t,
                const struct colsel *cs, const struct schema_kind *k,
                const json_t *table)
{
    size_t r;
    json_t *row;
    json_array_foreach(json_object_get(table, "rows"), r, row)
    {
        json_t *cells = json_object_get(row, "cells");
        json_t *md =
            json_object_get(json_object_get(row, "object"), "metadata");
        char *sel[64];
        for (size_t i = 0; i < cs->n; i++) {
            sel[i] = printer_cell(json_array_get(cells, cs->idx[i]));
            if (cs->is_date[i]) {
                sel[i] = date_cell(sel[i]);
            }
        }
        table_row(g, t, cs, k, sel,
                  json_string_value(json_object_get(md, "namespace")),
                  json_object_get(md, "labels"));
        for (size_t i = 0; i < cs->n; i++) {
            free(sel[i]);
        }
    }
}

/* One plain object into t using schema columns. */
static void
row_from_object(struct getctx *g, struct printer_table *t,
                const struct colsel *cs, const struct schema_kind *k,
                const json_t *obj)
{
    json_t *md = json_object_get(obj, "metadata");
    char *sel[64];
    for (size_t i = 0; i < cs->n; i++) {
        size_t ix = cs->idx[i];
        if (ix == 0) {
            const char *n = json_string_value(json_object_get(md, "name"));
            sel[i] = xstrdup(n ? n : "");
        } else if (ix == SIZE_MAX) {
            sel[i] = xstrdup(
                json_string_value(json_object_get(md, "creationTimestamp"))
                    ?: "");
        } else {
            sel[i] = schema_column_value(&k->columns[ix - 1], obj);
            if (!sel[i]) {
                sel[i] = xstrdup("");
            }
        }
        if (cs->is_date[i]) {
            sel[i] = date_cell(sel[i]);
        }
    }
    table_row(g, t, cs, k, sel,
              json_string_value(json_object_get(md, "namespace")),
              json_object_get(md, "labels"));
    for (size_t i = 0; i < cs->n; i++) {
        free(sel[i]);
    }
}

static bool
is_table(const json_t *v)
{
    const char *kind = json_string_value(json_object_get(v, "kind"));
    return kind && !strcmp(kind, "Table") &&
           json_is_array(json_object_get(v, "rows"));
}

/* Rows of a Table lacking what -A/--show-labels need? */
static bool
table_lacks_metadata(struct getctx *g, const json_t *table)
{
    if (!g->d->all_namespaces && !g->s->show_labels) {
        return false;
    }
    size_t i;
    json_t *row;
    json_array_foreach(json_object_get(table, "rows"), i, row)
    {
        if (!json_is_object(
                json_object_get(json_object_get(row, "object"), "metadata"))) {
            return true;
        }
    }
    return false;
}

static void
no_resources(struct getctx *g, const struct schema_kind *k)
{
    if (g->d->all_namespaces || !k->namespaced) {
        fprintf(g->d->err, "No resources found\n");
    } else {
        fprintf(g->d->err, "No resources found in %s namespace.\n",
                dpfctl_ns_for(g->d, k, false));
    }
}

/* State of a table being printed (shared with the watch). */
struct tstate {
    struct printer_table t; /* rows printed so far */
    struct colsel cs;       /* selected columns */
    bool started;           /* table initialised */
    bool from_table;        /* cs indexes Table cells (else schema) */
    size_t printed;         /* rows of t already written */
};

static void
tstate_print_new(struct getctx *g, struct tstate *ts)
{
    if (ts->printed == 0 && g->printed_table) {
        fputc('\n', g->d->out);
    }
    printer_table_print_from(&ts->t, ts->printed, g->d->out);
    ts->printed = ts->t.nrows;
    g->printed_table = true;
}

/* Add a reply (Table, list of objects, or one object) to the table. */
static void
tstate_add(struct getctx *g, struct tstate *ts, const struct schema_kind *k,
           const json_t *reply)
{
    bool wide = g->mode == OUT_WIDE;
    if (is_table(reply)) {
        json_t *defs = json_object_get(reply, "columnDefinitions");
        if (!ts->started && json_array_size(defs) > 0) {
            colsel_from_table(defs, wide, &ts->cs);
            ts->from_table = true;
            table_start(g, &ts->t, &ts->cs);
            ts->started = true;
        }
        if (ts->started && ts->from_table) {
            rows_from_table(g, &ts->t, &ts->cs, k, reply);
        }
        return;
    }
    if (!ts->started) {
        colsel_from_schema(k, wide, &ts->cs);
        ts->from_table = false;
        table_start(g, &ts->t, &ts->cs);
        ts->started = true;
    }
    json_t *items = json_object_get(reply, "items");
    if (json_is_array(items)) {
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it)
        {
            row_from_object(g, &ts->t, &ts->cs, k, it);
        }
    } else if (!ts->from_table) {
        row_from_object(g, &ts->t, &ts->cs, k, reply);
    }
}

static void
tstate_free(struct tstate *ts)
{
    if (ts->started) {
        printer_table_free(&ts->t);
        colsel_free(&ts->cs);
    }
}

static size_t
reply_count(const json_t *reply)
{
    if (is_table(reply)) {
        return json_array_size(json_object_get(reply, "rows"));
    }
    json_t *items = json_object_get(reply, "items");
    return json_is_array(items) ? json_array_size(items) : 1;
}

/* --- watch --- */

struct watchctx {
    struct getctx *g;
    struct tstate *ts;
    const struct schema_kind *k;
    size_t events; /* events printed */
};

/* kubectl (1.21 and later) leaves metadata.managedFields out of -o
 * json/yaml unless asked (--show-managed-fields); so do we. obj is an
 * object or a List. */
static void
strip_managed_fields(json_t *obj)
{
    json_object_del(json_object_get(obj, "metadata"), "managedFields");
    size_t i;
    json_t *it;
    json_array_foreach(json_object_get(obj, "items"), i, it)
    {
        json_object_del(json_object_get(it, "metadata"), "managedFields");
    }
}

static void
print_object(struct getctx *g, const struct schema_kind *k, const json_t *obj,
             bool first)
{
    struct dpfctl *d = g->d;
    char kg[256];
    switch (g->mode) {
    case OUT_YAML:
    case OUT_JSON: {
        json_t *shown = json_deep_copy(obj);
        strip_managed_fields(shown);
        if (g->mode == OUT_YAML && !first) {
            fputs("---\n", d->out);
        }
        if (g->mode == OUT_YAML) {
            printer_yaml(d->out, shown);
        } else {
            printer_json(d->out, shown);
        }
        json_decref(shown);
        break;
    }
    case OUT_NAME:
        if (!k) {
            k = schema_find_kind(
                json_string_value(json_object_get(obj, "apiVersion")),
                json_string_value(json_object_get(obj, "kind")));
        }
        fprintf(d->out, "%s/%s\n",
                k ? dpfctl_kind_group(k, kg, sizeof kg) : "unknown",
                json_string_value(
                    json_object_get(json_object_get(obj, "metadata"), "name"))
                    ?: "");
        break;
    case OUT_JSONPATH: {
        struct dbuf b;
        struct dpf_error err = {0};
        dbuf_init(&b);
        if (jsonpath_render(g->jsonpath, obj, &b, &err) == 0) {
            fputs(b.data, d->out);
        } else {
            fprintf(d->err, "error: %s\n", err.message);
        }
        dbuf_free(&b);
        break;
    }
    default:
        break;
    }
    fflush(d->out);
}

static int
watch_event(void *arg, enum kube_event_type type, json_t *obj)
{
    struct watchctx *w = arg;
    struct getctx *g = w->g;
    if (type == KUBE_EVENT_BOOKMARK) {
        return 0;
    }
    if (g->mode == OUT_TABLE || g->mode == OUT_WIDE) {
        tstate_add(g, w->ts, w->k, obj);
        tstate_print_new(g, w->ts);
    } else {
        print_object(g, w->k, obj, w->events == 0 && !g->any_list);
    }
    w->events++;
    return 0;
}

static int
run_watch(struct getctx *g, struct tstate *ts, const struct schema_kind *k,
          const char *ns, const char *name, const char *rv)
{
    struct dpfctl *d = g->d;
    struct api_watch_options wo = {0};
    char *fs = NULL;
    if (name) {
        fs = xasprintf("metadata.name=%s", name);
    }
    wo.label_selector = g->s->selector;
    wo.field_selector = fs ? fs : g->s->field_selector;
    wo.accept =
        g->mode == OUT_TABLE || g->mode == OUT_WIDE ? API_ACCEPT_TABLE : NULL;
    snprintf(wo.resource_version, sizeof wo.resource_version, "%s",
             rv ? rv : "");
    if (d->request_timeout_ms > 0) {
        wo.deadline_ms = time_mono_ms() + d->request_timeout_ms;
        wo.timeout_seconds = (d->request_timeout_ms + 999) / 1000;
    }
    struct watchctx w = {.g = g, .ts = ts, .k = k};
    struct dpf_error err = {0};
    int r = api_client_watch(d->client, SCHEMA_GVR(k), ns, &wo, watch_event, &w,
                             &err);
    free(fs);
    if (r == -ETIMEDOUT && wo.deadline_ms > 0) {
        return 0; /* --request-timeout ends a watch quietly */
    }
    if (r < 0) {
        dpfctl_print_error(d, &err, NULL);
        return 1;
    }
    return 0;
}

/* --- fetching --- */

static const char *
list_rv(const json_t *reply)
{
    return json_string_value(
        json_object_get(json_object_get(reply, "metadata"), "resourceVersion"));
}

/* Collect plain objects for the non-table formats. */
static void
collect(struct getctx *g, const json_t *reply)
{
    json_t *items = json_object_get(reply, "items");
    if (json_is_array(items)) {
        json_array_extend(g->items, items);
    } else {
        json_array_append(g->items, (json_t *) reply);
    }
}

static int
get_target(struct getctx *g, const struct target *tg)
{
    struct dpfctl *d = g->d;
    const struct schema_kind *k = tg->k;
    bool table = g->mode == OUT_TABLE || g->mode == OUT_WIDE;
    const char *accept = table ? API_ACCEPT_TABLE : NULL;
    struct tstate ts = {0};
    int rc = 0;
    struct dpf_error err = {0};

    if (tg->nnames > 0) {
        for (size_t i = 0; i < tg->nnames; i++) {
            const char *ns = tg->name_ns && tg->name_ns[i]
                                 ? (k->namespaced ? tg->name_ns[i] : NULL)
                                 : dpfctl_ns_for(d, k, false);
            char *path = kube_path(SCHEMA_GVR(k), ns, tg->names[i], NULL);
            struct kube_request req = {
                .method = "GET", .path = path, .accept = accept};
            struct kube_response resp;
            dpf_error_clear(&err);
            int r = api_client_request(d->client, &req, &resp, &err);
            if (r == 0) {
                r = kube_status_to_error(resp.status, resp.body, resp.len,
                                         &err);
            }
            json_t *obj =
                r == 0 ? json_loadb(resp.body, resp.len, 0, NULL) : NULL;
            kube_response_free(&resp);
            free(path);
            if (r < 0 || !obj) {
                if (r == 0) {
                    dpf_error_set(&err, 500, "InternalError",
                                  "reply is not JSON");
                }
                dpfctl_print_error(d, &err, NULL);
                rc = 1;
                continue;
            }
            g->named_objects++;
            if (table) {
                if (is_table(obj) && table_lacks_metadata(g, obj)) {
                    json_decref(obj);
                    obj = NULL;
                    api_client_get(d->client, SCHEMA_GVR(k), ns, tg->names[i],
                                   &obj, &err);
                }
                if (obj) {
                    tstate_add(g, &ts, k, obj);
                }
            } else {
                collect(g, obj);
            }
            if (g->s->watch && i + 1 == tg->nnames && tg->nnames == 1) {
                if (table && ts.started && !g->s->watch_only) {
                    tstate_print_new(g, &ts);
                }
                const char *rv = json_string_value(json_object_get(
                    json_object_get(obj, "metadata"), "resourceVersion"));
                if (is_table(obj)) {
                    rv = list_rv(obj);
                }
                if (!table && !g->s->watch_only) {
                    print_object(g, k, obj, true);
                    g->any_list = true;
                }
                json_decref(g->items);
                g->items = json_array();
                rc |= run_watch(g, &ts, k, ns, tg->names[i], rv);
            }
            json_decref(obj);
        }
        if (table && ts.started && !g->s->watch) {
            tstate_print_new(g, &ts);
        }
        tstate_free(&ts);
        return rc;
    }

    /* a collection */
    const char *ns = dpfctl_ns_for(d, k, true);
    struct api_list_options lo = {.label_selector = g->s->selector,
                                  .field_selector = g->s->field_selector,
                                  .accept = accept,
                                  .limit = table ? 0 : 500};
    json_t *reply = NULL;
    int r = api_client_list(d->client, SCHEMA_GVR(k), ns, &lo, &reply, &err);
    if (r == 0 && table && is_table(reply) && table_lacks_metadata(g, reply)) {
        json_decref(reply);
        lo.accept = NULL;
        r = api_client_list(d->client, SCHEMA_GVR(k), ns, &lo, &reply, &err);
    }
    if (r < 0) {
        dpfctl_print_error(d, &err, NULL);
        return 1;
    }
    g->any_list = true;
    size_t count = reply_count(reply);
    g->found += count;
    if (count == 0 && !g->empty_kind) {
        g->empty_kind = k;
    }
    if (table) {
        if (count > 0) {
            tstate_add(g, &ts, k, reply);
            if (!g->s->watch_only) {
                tstate_print_new(g, &ts);
            } else {
                ts.printed = ts.t.nrows;
            }
        } /* kubectl -w says nothing about an empty list */
    } else if (g->s->watch) {
        if (!g->s->watch_only) {
            json_t *items = json_object_get(reply, "items");
            size_t i;
            json_t *it;
            json_array_foreach(items, i, it)
            {
                print_object(g, k, it, i == 0);
            }
        }
    } else {
        collect(g, reply);
    }
    if (g->s->watch) {
        if (count == 0) {
            g->any_list = false;
        }
        rc = run_watch(g, &ts, k, ns, NULL, list_rv(reply));
    }
    json_decref(reply);
    tstate_free(&ts);
    return rc;
}

static bool
has_category(const struct schema_kind *k, const char *cat)
{
    for (size_t i = 0; k->categories && k->categories[i]; i++) {
        if (!strcmp(k->categories[i], cat)) {
            return true;
        }
    }
    return false;
}

static void
targets_free(struct target *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < t[i].nnames; j++) {
            free(t[i].names[j]);
            if (t[i].name_ns) {
                free(t[i].name_ns[j]);
            }
        }
        free(t[i].names);
        free(t[i].name_ns);
    }
    free(t);
}

static struct target *
target_for(struct target **ts, size_t *n, const struct schema_kind *k)
{
    for (size_t i = 0; i < *n; i++) {
        if ((*ts)[i].k == k) {
            return &(*ts)[i];
        }
    }
    *ts = xrealloc(*ts, (*n + 1) * sizeof **ts);
    struct target *t = &(*ts)[(*n)++];
    memset(t, 0, sizeof *t);
    t->k = k;
    return t;
}

static void
target_add_name(struct target *t, const char *name, const char *ns)
{
    t->names = xrealloc(t->names, (t->nnames + 1) * sizeof *t->names);
    t->name_ns = xrealloc(t->name_ns, (t->nnames + 1) * sizeof *t->name_ns);
    t->names[t->nnames] = xstrdup(name);
    t->name_ns[t->nnames] = ns ? xstrdup(ns) : NULL;
    t->nnames++;
}

/* Build the targets from the arguments. 0 or 1 (error printed). */
static int
parse_targets(struct dpfctl *d, struct get_state *s, int argc, char **argv,
              struct target **out, size_t *nout)
{
    struct target *ts = NULL;
    size_t n = 0;
    if (s->nfiles > 0) {
        struct manifest_set set = {0};
        int bad = manifest_read(s->files, s->nfiles, s->recursive, stdin,
                                d->err, &set);
        for (size_t i = 0; i < set.n; i++) {
            const json_t *o = set.items[i].obj;
            const struct schema_kind *k = schema_find_kind(
                json_string_value(json_object_get(o, "apiVersion")),
                json_string_value(json_object_get(o, "kind")));
            json_t *md = json_object_get(o, "metadata");
            const char *name = json_string_value(json_object_get(md, "name"));
            const char *ns =
                json_string_value(json_object_get(md, "namespace"));
            if (!k || !name) {
                fprintf(d->err,
                        "error: resource mapping not found for \"%s\" in "
                        "\"%s\"\n",
                        name ? name : "", set.items[i].source);
                bad++;
                continue;
            }
            target_add_name(target_for(&ts, &n, k), name, ns ? ns : d->ns);
        }
        manifest_set_free(&set);
        *out = ts;
        *nout = n;
        return bad ? 1 : 0;
    }
    if (argc == 0) {
        fprintf(d->err,
                "You must specify the type of resource to get. Use \"dpfctl "
                "api-resources\" for a complete list of supported "
                "resources.\n\nerror: Required resource not specified.\nSee "
                "'dpfctl get -h' for help and examples\n");
        return 1;
    }
    if (strchr(argv[0], '/')) {
        for (int i = 0; i < argc; i++) {
            char *slash = strchr(argv[i], '/');
            if (!slash || !slash[1]) {
                fprintf(d->err,
                        "error: there is no need to specify a resource type "
                        "as a separate argument when passing arguments in "
                        "resource/name form (e.g. 'dpfctl get "
                        "resource/<resource_name>' instead of 'dpfctl get "
                        "resource resource/<resource_name>'\n");
                targets_free(ts, n);
                return 1;
            }
            char *type = xstrndup(argv[i], (size_t) (slash - argv[i]));
            const struct schema_kind *k = dpfctl_resolve_type(d, type);
            free(type);
            if (!k) {
                targets_free(ts, n);
                return 1;
            }
            target_add_name(target_for(&ts, &n, k), slash + 1, NULL);
        }
        *out = ts;
        *nout = n;
        return 0;
    }
    char *types = xstrdup(argv[0]);
    char *save = NULL;
    for (char *w = strtok_r(types, ",", &save); w;
         w = strtok_r(NULL, ",", &save)) {
        if (!strcmp(w, "all")) {
            size_t nk;
            const struct schema_kind *const *all = schema_kinds(&nk);
            for (size_t i = 0; i < nk; i++) {
                if (has_category(all[i], "all")) {
                    target_for(&ts, &n, all[i]);
                }
            }
            continue;
        }
        const struct schema_kind *k = dpfctl_resolve_type(d, w);
        if (!k) {
            free(types);
            targets_free(ts, n);
            return 1;
        }
        target_for(&ts, &n, k);
    }
    free(types);
    if (argc > 1 && n != 1) {
        fprintf(d->err, "error: names can only be given with a single "
                        "resource type\n");
        targets_free(ts, n);
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        target_add_name(&ts[0], argv[i], NULL);
    }
    *out = ts;
    *nout = n;
    return 0;
}

static int
get_run(struct dpfctl *d, int argc, char **argv, void *st)
{
    struct get_state *s = st;
    struct getctx g = {.d = d, .s = s, .mode = OUT_TABLE};
    const char *o = s->output;
    if (o && *o) {
        if (!strcmp(o, "wide")) {
            g.mode = OUT_WIDE;
        } else if (!strcmp(o, "yaml")) {
            g.mode = OUT_YAML;
        } else if (!strcmp(o, "json")) {
            g.mode = OUT_JSON;
        } else if (!strcmp(o, "name")) {
            g.mode = OUT_NAME;
        } else if (str_has_prefix(o, "jsonpath=")) {
            g.mode = OUT_JSONPATH;
            g.jsonpath = o + strlen("jsonpath=");
        } else {
            fprintf(d->err,
                    "error: unable to match a printer suitable for the "
                    "output format \"%s\", allowed formats are: "
                    "json,jsonpath,name,wide,yaml\n",
                    o);
            return 1;
        }
    }
    if (g.mode == OUT_JSONPATH) {
        /* syntax check before touching the server */
        struct dbuf b;
        struct dpf_error err = {0};
        dbuf_init(&b);
        json_t *empty = json_object();
        int r = jsonpath_render(g.jsonpath, empty, &b, &err);
        json_decref(empty);
        dbuf_free(&b);
        if (r < 0) {
            fprintf(d->err, "error: error parsing jsonpath %s: %s\n",
                    g.jsonpath, err.message);
            return 1;
        }
    }
    if (dpfctl_connect(d) < 0) {
        return 1;
    }
    struct target *ts = NULL;
    size_t n = 0;
    int rc = parse_targets(d, s, argc, argv, &ts, &n);
    if (n == 0) {
        targets_free(ts, n);
        return rc ? rc : 1;
    }
    if (s->watch && (n != 1 || ts[0].nnames > 1)) {
        fprintf(d->err, "error: you may only specify a single resource type "
                        "(and at most one name) with --watch\n");
        targets_free(ts, n);
        return 1;
    }
    g.show_kind = n > 1;
    g.items = json_array();
    for (size_t i = 0; i < n; i++) {
        rc |= get_target(&g, &ts[i]);
    }
    /* kubectl: one message, and only when nothing at all was found */
    if (!s->watch && g.any_list && g.found == 0 && g.named_objects == 0 &&
        g.empty_kind &&
        (g.mode == OUT_TABLE || g.mode == OUT_WIDE || g.mode == OUT_NAME)) {
        no_resources(&g, g.empty_kind);
    }
    if (!s->watch && g.mode != OUT_TABLE && g.mode != OUT_WIDE) {
        bool single = !g.any_list && g.named_objects == 1 &&
                      json_array_size(g.items) == 1;
        json_t *doc = single ? json_incref(json_array_get(g.items, 0))
                             : printer_list(g.items);
        if (g.mode == OUT_NAME) {
            size_t i;
            json_t *it;
            json_array_foreach(g.items, i, it)
            {
                const struct schema_kind *k = schema_find_kind(
                    json_string_value(json_object_get(it, "apiVersion")),
                    json_string_value(json_object_get(it, "kind")));
                char kg[256];
                fprintf(d->out, "%s/%s\n",
                        k ? dpfctl_kind_group(k, kg, sizeof kg) : "unknown",
                        json_string_value(json_object_get(
                            json_object_get(it, "metadata"), "name"))
                            ?: "");
            }
        } else if (g.mode == OUT_YAML) {
            strip_managed_fields(doc);
            printer_yaml(d->out, doc);
        } else if (g.mode == OUT_JSON) {
            strip_managed_fields(doc);
            printer_json(d->out, doc);
        } else if (g.any_list || g.named_objects > 0) {
            print_object(&g, NULL, doc, true);
        }
        json_decref(doc);
    }
    json_decref(g.items);
    targets_free(ts, n);
    return rc ? 1 : 0;
}

const struct dpfctl_cmd cmd_get = {
    .name = "get",
    .summary = "Display one or many objects",
    .usage =
        "Display one or many objects.\n\n"
        "Usage:\n"
        "  dpfctl get TYPE[,TYPE...] [NAME...] [options]\n"
        "  dpfctl get TYPE/NAME [TYPE/NAME...] [options]\n"
        "  dpfctl get -f FILE [options]\n\n"
        "TYPE is a plural, singular or short name, a kind, or "
        "plural.group;\n\"all\" means every kind of the \"all\" category.\n\n"
        "Options:\n"
        "  -o, --output FMT        wide|yaml|json|name|jsonpath=TEMPLATE\n"
        "  -l, --selector SEL      label selector (a=b,c!=d,e in (f,g))\n"
        "      --field-selector S  field selector (metadata.name=x)\n"
        "  -w, --watch             after listing, print changes as they "
        "happen\n"
        "      --watch-only        print changes only\n"
        "      --show-labels       add a LABELS column\n"
        "      --no-headers        no header row\n"
        "  -f, --filename PATH     the objects named in these files\n"
        "  -R, --recursive         descend into -f directories\n",
    .longopts = get_opts,
    .shortopts = "o:l:wf:R",
    .run = get_run,
    .opt = get_opt,
    .state_size = sizeof(struct get_state),
    .state_free = get_free,
};
