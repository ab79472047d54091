/* apiserver-read: the verbs that read: get and list, with label and
 * field selectors, limit/continue paging and Table output.
 *
 * Plain JSON answers are stored text with the resourceVersion injected
 * (apiserver-storage.c), appended to one buffer: a list of 10k objects
 * parses none of them unless a selector or a Table needs it, and a label
 * selector parses only metadata.labels. The continue token is
 * base64url({"k": last key, "rv": list revision}); later pages read the
 * current state (see docs/dev/apiserver.md). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpf-server/apiserver-private.h"
#include "lib/base/base64.h"
#include "lib/codecs/selector.h"
#include "lib/net/http-server.h"

/* ------------------------------------------------------------------ */
/* selectors */

static const char *const as_fields_common[] = {
    "metadata.name",
    "metadata.namespace",
    NULL,
};

static const char *const as_fields_pod[] = {
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
    NULL,
};

static const char *const as_fields_event[] = {
    "metadata.name",
    "metadata.namespace",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
    NULL,
};

static const char *const as_fields_node[] = {
    "metadata.name",
    "spec.unschedulable",
    NULL,
};

static const char *const as_fields_secret[] = {
    "metadata.name",
    "metadata.namespace",
    "type",
    NULL,
};

static const char *const as_fields_namespace[] = {
    "metadata.name",
    "status.phase",
    NULL,
};

const char *const *
as_field_selector_paths(const struct schema_kind *k)
{
    if (k->group[0]) {
        return as_fields_common;
    }
    if (!strcmp(k->plural, "pods")) {
        return as_fields_pod;
    }
    if (!strcmp(k->plural, "events")) {
        return as_fields_event;
    }
    if (!strcmp(k->plural, "nodes")) {
        return as_fields_node;
    }
    if (!strcmp(k->plural, "secrets")) {
        return as_fields_secret;
    }
    if (!strcmp(k->plural, "namespaces")) {
        return as_fields_namespace;
    }
    return as_fields_common;
}

/* Does a field selector text only use metadata.name/metadata.namespace
 * (so the key alone decides)? */
static bool
as_fields_meta_only(const char *text)
{
    const char *p = text;
    while (*p) {
        while (*p == ' ') {
            p++;
        }
        const char *end = p + strcspn(p, "!=,");
        size_t n = (size_t) (end - p);
        while (n && p[n - 1] == ' ') {
            n--;
        }
        if (!((n == 13 && !strncmp(p, "metadata.name", 13)) ||
              (n == 18 && !strncmp(p, "metadata.namespace", 18)))) {
            return false;
        }
        p = strchr(p, ',');
        if (!p) {
            break;
        }
        p++;
    }
    return true;
}

int
as_filter_init(struct as_filter *f, const struct schema_kind *k,
               const char *labels, const char *fields, struct as_error *ae)
{
    memset(f, 0, sizeof(*f));
    struct dpf_error e = {0};
    if (labels && *labels) {
        f->labels = selector_parse_labels(labels, &e);
        if (!f->labels) {
            as_error_from(ae, &e, 400, "BadRequest");
            return -EINVAL;
        }
        if (selector_empty(f->labels)) {
            selector_free(f->labels);
            f->labels = NULL;
        }
    }
    if (fields && *fields) {
        f->fields =
            selector_parse_fields(fields, as_field_selector_paths(k), &e);
        if (!f->fields) {
            as_error_from(ae, &e, 400, "BadRequest");
            selector_free(f->labels);
            f->labels = NULL;
            return -EINVAL;
        }
        if (selector_empty(f->fields)) {
            selector_free(f->fields);
            f->fields = NULL;
        } else {
            f->fields_meta_only = as_fields_meta_only(fields);
        }
    }
    return 0;
}

void
as_filter_free(struct as_filter *f)
{
    selector_free(f->labels);
    selector_free(f->fields);
    memset(f, 0, sizeof(*f));
}

bool
as_filter_needs_object(const struct as_filter *f)
{
    return f->labels || (f->fields && !f->fields_meta_only);
}

bool
as_filter_labels_only(const struct as_filter *f)
{
    return f->labels && (!f->fields || f->fields_meta_only);
}

bool
as_filter_match(const struct as_filter *f, const char *key, const json_t *obj)
{
    if (f->labels &&
        !selector_match_labels(
            f->labels,
            json_object_get(json_object_get(obj, "metadata"), "labels"))) {
        return false;
    }
    if (!f->fields) {
        return true;
    }
    if (!f->fields_meta_only) {
        return selector_match_fields(f->fields, obj);
    }
    /* "/<group>/<plural>/<ns>/<name>": match on a tiny metadata object. */
    const char *name = strrchr(key, '/');
    if (!name) {
        return false;
    }
    const char *p = name - 1;
    while (p > key && *p != '/') {
        p--;
    }
    char *ns = xstrndup(p + 1, (size_t) (name - p - 1));
    json_t *md = json_object();
    json_object_set_new(md, "name", kube_status_string(name + 1));
    json_object_set_new(md, "namespace", kube_status_string(ns));
    free(ns);
    json_t *fake = json_object();
    json_object_set_new(fake, "metadata", md);
    bool ok = selector_match_fields(f->fields, fake);
    json_decref(fake);
    return ok;
}

/* ------------------------------------------------------------------ */
/* continue tokens: base64url({"k":<last key>,"rv":<list rv>}) */

static char *
as_continue_encode(const char *key, int64_t rv)
{
    json_t *t = json_pack("{s:s,s:I}", "k", key, "rv", (json_int_t) rv);
    char *s = json_dumps(t, JSON_COMPACT);
    json_decref(t);
    char *enc = base64_encode(s, strlen(s), BASE64_URL_RAW);
    free(s);
    return enc;
}

/* Decode a continue token into the key to start after. */
static int
as_continue_decode(const char *tok, const char *prefix, char **key,
                   struct as_error *ae)
{
    size_t n;
    char *raw = NULL;
    json_t *t = NULL;
    if (base64_decode(tok, strlen(tok), BASE64_URL, &raw, &n) == 0) {
        t = json_loadb(raw, n, 0, NULL);
    }
    free(raw);
    const char *k = json_string_value(json_object_get(t, "k"));
    if (!k || !str_has_prefix(k, prefix)) {
        json_decref(t);
        as_error_set(ae, 400, "BadRequest",
                     "continue key is not valid: the continue token does not "
                     "belong to this list");
        return -EINVAL;
    }
    *key = xstrdup(k);
    json_decref(t);
    return 0;
}

/* ------------------------------------------------------------------ */
/* get and list */

struct as_list_ctx {
    const struct schema_kind *k;
    struct as_filter *filter;
    const struct as_format *fmt;
    struct dbuf items;
    size_t count;
    size_t limit;
    char *last_key;
    bool more;
    int64_t now_ns;
};

static int
as_list_each(void *arg, const struct store_kv *kv)
{
    struct as_list_ctx *c = arg;
    json_t *obj = NULL;
    bool table = c->fmt->out == AS_OUT_TABLE;
    if (table || (as_filter_needs_object(c->filter) &&
                  !as_filter_labels_only(c->filter))) {
        obj = as_load_object(kv->value, kv->len, kv->rv);
        if (!obj) {
            return 0;
        }
    } else if (as_filter_needs_object(c->filter)) {
        obj = as_load_labels(kv->value, kv->len);
    }
    if ((c->filter->labels || c->filter->fields) &&
        !as_filter_match(c->filter, kv->key, obj)) {
        json_decref(obj);
        return 0;
    }
    if (c->limit && c->count == c->limit) {
        c->more = true;
        json_decref(obj);
        return 1;
    }
    if (c->count) {
        dbuf_puts(&c->items, ",");
    }
    if (table) {
        json_t *row = as_table_row(c->k, obj, c->fmt->include, c->now_ns);
        char *t = json_dumps(row, JSON_COMPACT);
        dbuf_puts(&c->items, t);
        free(t);
        json_decref(row);
    } else {
        as_append_rv(&c->items, kv->value, kv->len, kv->rv);
    }
    json_decref(obj);
    c->count++;
    free(c->last_key);
    c->last_key = xstrdup(kv->key);
    return 0;
}

void
as_handle_list(struct apiserver *as, struct http_request *req,
               const struct schema_kind *k, const char *ns,
               const struct as_format *fmt)
{
    struct as_error ae = {0};
    struct as_filter filter;
    if (as_filter_init(&filter, k, http_request_query(req, "labelSelector"),
                       http_request_query(req, "fieldSelector"), &ae) < 0) {
        as_respond_error(req, &ae);
        return;
    }
    char *prefix = as_prefix(k, ns);
    const char *lim = http_request_query(req, "limit");
    const char *cont = http_request_query(req, "continue");
    struct as_list_ctx c = {.k = k, .filter = &filter, .fmt = fmt};
    dbuf_init(&c.items);
    c.now_ns = time_wall_ns();
    if (lim && *lim) {
        char *end;
        long long v = strtoll(lim, &end, 10);
        if (*end || v < 0) {
            as_error_set(&ae, 400, "BadRequest", "invalid limit: %s", lim);
            goto fail;
        }
        c.limit = (size_t) v;
    }
    char *after = NULL;
    if (cont && *cont && as_continue_decode(cont, prefix, &after, &ae) < 0) {
        goto fail;
    }
    int64_t list_rv = 0;
    struct dpf_error e = {0};
    size_t store_limit = 0;
    if (c.limit && !filter.labels && !filter.fields) {
        store_limit = c.limit + 1;
    }
    int r = store_list(as->store, prefix, after, store_limit, as_list_each, &c,
                       &list_rv, NULL, &e);
    free(after);
    if (r < 0) {
        as_error_from(&ae, &e, 500, "InternalError");
        goto fail;
    }
    struct dbuf b;
    dbuf_init(&b);
    char *tok =
        c.more && c.last_key ? as_continue_encode(c.last_key, list_rv) : NULL;
    if (fmt->out == AS_OUT_TABLE) {
        json_t *cols = as_table_columns(k);
        char *ct = json_dumps(cols, JSON_COMPACT);
        json_decref(cols);
        dbuf_printf(&b,
                    "{\"kind\":\"Table\",\"apiVersion\":\"%s\","
                    "\"metadata\":{\"resourceVersion\":\"%lld\"",
                    fmt->table_api, (long long) list_rv);
        if (tok) {
            dbuf_printf(&b, ",\"continue\":\"%s\"", tok);
        }
        dbuf_printf(&b, "},\"columnDefinitions\":%s,\"rows\":[", ct);
        free(ct);
    } else {
        dbuf_printf(&b,
                    "{\"kind\":\"%s\",\"apiVersion\":\"%s\",\"metadata\":{"
                    "\"resourceVersion\":\"%lld\"",
                    k->list_kind, schema_api_version(k), (long long) list_rv);
        if (tok) {
            dbuf_printf(&b, ",\"continue\":\"%s\"", tok);
        }
        dbuf_puts(&b, "},\"items\":[");
    }
    free(tok);
    if (c.items.len) {
        dbuf_append(&b, c.items.data, c.items.len);
    }
    dbuf_puts(&b, "]}");
    size_t len;
    char *text = dbuf_steal(&b, &len);
    as_respond_text(req, 200, fmt, text, len);
    dbuf_free(&c.items);
    free(c.last_key);
    free(prefix);
    as_filter_free(&filter);
    return;
fail:
    dbuf_free(&c.items);
    free(c.last_key);
    free(prefix);
    as_filter_free(&filter);
    as_respond_error(req, &ae);
}

void
as_handle_get(struct apiserver *as, struct http_request *req,
              const struct schema_kind *k, const char *ns, const char *name,
              const struct as_format *fmt)
{
    struct as_error ae = {0};
    char *key = as_key(k, ns, name);
    struct store_kv kv = {0};
    struct dpf_error e = {0};
    int r = store_get(as->store, key, &kv, &e);
    free(key);
    if (r == -ENOENT) {
        as_error_not_found(&ae, k, name);
        as_respond_error(req, &ae);
        return;
    }
    if (r < 0) {
        as_error_from(&ae, &e, 500, "InternalError");
        as_respond_error(req, &ae);
        return;
    }
    if (fmt->out == AS_OUT_TABLE) {
        json_t *obj = as_load_object(kv.value, kv.len, kv.rv);
        store_kv_free(&kv);
        json_t *t =
            json_pack("{s:s,s:s,s:{s:s},s:o,s:[o]}", "kind", "Table",
                      "apiVersion", fmt->table_api, "metadata",
                      "resourceVersion", as_md_str(obj, "resourceVersion"),
                      "columnDefinitions", as_table_columns(k), "rows",
                      as_table_row(k, obj, fmt->include, time_wall_ns()));
        as_respond_json(req, 200, fmt, t);
        json_decref(t);
        json_decref(obj);
        return;
    }
    size_t len;
    char *text = as_inject_rv(kv.value, kv.len, kv.rv, &len);
    store_kv_free(&kv);
    as_respond_text(req, 200, fmt, text, len);
}
