/* apiserver-read: the verbs that read: get and list, with label and
 * field selectors, limit/continue paging and Table output.
 *
 * Plain JSON answers are stored text with the resourceVersion injected
 * (apiserver-storage.c), appended to one buffer: a list of 10k objects
 * parses none of them unless a selector or a Table needs it, and a label
 * selector parses only metadata.labels. With the watch cache's object
 * index loaded (dpf-server always loads it) lists are served from
 * memory: selectors run over the labels parsed at write time, and a
 * list at an older revision (a continue token's, or
 * resourceVersionMatch=Exact) is the snapshot rebuilt from the index and
 * the ring, 410 once the ring no longer reaches back that far. The
 * continue token is base64url({"k": last key, "rv": list revision}). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dpf-server/apiserver-private.h"
#include "lib/base/base64.h"
#include "lib/codecs/selector.h"
#include "lib/net/http-server.h"
#include "lib/store/watch-cache.h"

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

/* ------------------------------------------------------------------ */
/* ListOptions rules (kube-apiserver's ValidateListOptions, with the
 * WatchList feature on): a combination it refuses is 422 Invalid on
 * ListOptions.meta.k8s.io, one cause per broken rule. */

static void
as_opts_forbid(struct dpf_error *e, struct dbuf *msg, const char *field,
               const char *detail)
{
    dpf_error_add_cause(e, "FieldValueForbidden", field, "Forbidden: %s",
                        detail);
    dbuf_printf(msg, "%s%s: Forbidden: %s", msg->len ? ", " : "", field,
                detail);
}

static void
as_opts_unsupported(struct dpf_error *e, struct dbuf *msg, const char *field,
                    const char *value, const char *supported)
{
    dpf_error_add_cause(e, "FieldValueNotSupported", field,
                        "Unsupported value: \"%s\": supported values: %s",
                        value, supported);
    dbuf_printf(msg, "%s%s: Unsupported value: \"%s\": supported values: %s",
                msg->len ? ", " : "", field, value, supported);
}

int
as_check_list_options(struct http_request *req, bool watch, struct as_error *ae)
{
    const char *match = http_request_query(req, "resourceVersionMatch");
    const char *rv = http_request_query(req, "resourceVersion");
    const char *cont = http_request_query(req, "continue");
    const char *sie = http_request_query(req, "sendInitialEvents");
    bool has_match = match && *match, has_rv = rv && *rv;
    bool has_cont = cont && *cont, has_sie = sie != NULL;
    struct dpf_error e = {0};
    struct dbuf msg;
    dbuf_init(&msg);
    const char *rvm = "resourceVersionMatch";
    if (watch) {
        if (has_sie && (!has_match || strcmp(match, "NotOlderThan") != 0)) {
            as_opts_forbid(&e, &msg, rvm,
                           "sendInitialEvents requires setting "
                           "resourceVersionMatch to NotOlderThan");
        }
        if (has_match) {
            if (!has_sie) {
                as_opts_forbid(&e, &msg, rvm,
                               "resourceVersionMatch is forbidden for watch "
                               "unless sendInitialEvents is provided");
            }
            if (strcmp(match, "NotOlderThan") != 0) {
                as_opts_unsupported(&e, &msg, rvm, match, "\"NotOlderThan\"");
            }
            if (has_cont) {
                as_opts_forbid(&e, &msg, rvm,
                               "resourceVersionMatch is forbidden when "
                               "continue is provided");
            }
        }
    } else {
        if (has_match) {
            if (!has_rv) {
                as_opts_forbid(&e, &msg, rvm,
                               "resourceVersionMatch is forbidden unless "
                               "resourceVersion is provided");
            }
            if (has_cont) {
                as_opts_forbid(&e, &msg, rvm,
                               "resourceVersionMatch is forbidden when "
                               "continue is provided");
            }
            if (strcmp(match, "Exact") != 0 &&
                strcmp(match, "NotOlderThan") != 0) {
                as_opts_unsupported(&e, &msg, rvm, match,
                                    "\"Exact\", \"NotOlderThan\", \"\"");
            }
            if (!strcmp(match, "Exact") && has_rv && !strcmp(rv, "0")) {
                as_opts_forbid(&e, &msg, rvm,
                               "resourceVersionMatch \"exact\" is forbidden "
                               "for resourceVersion \"0\"");
            }
        }
        if (has_sie) {
            as_opts_forbid(&e, &msg, "sendInitialEvents",
                           "sendInitialEvents is forbidden for list");
        }
    }
    if (!e.n_causes) {
        dbuf_free(&msg);
        return 0;
    }
    char *m = dbuf_steal(&msg, NULL);
    bool many = e.n_causes > 1;
    dpf_error_set(&e, 422, "Invalid",
                  "ListOptions.meta.k8s.io \"\" is invalid: %s%s%s",
                  many ? "[" : "", m, many ? "]" : "");
    free(m);
    ae->e = e;
    kube_status_details_set(&ae->d, "", "meta.k8s.io", "ListOptions");
    return -EINVAL;
}

/* Decode a continue token into the key to start after and the revision
 * of the list it continues. */
static int
as_continue_decode(const char *tok, const char *prefix, char **key, int64_t *rv,
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
    *rv = (int64_t) json_integer_value(json_object_get(t, "rv"));
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
    bool filtered; /* the selectors were applied already (the index) */
    bool has_rv;   /* the texts carry their resourceVersion (the index's) */
    int64_t now_ns;
};

/* Selectors over the object index: labels parsed at write time, the
 * stored text only for field selectors that need more than the key (or
 * for an older version the index did not parse). */
bool
as_index_filter(void *arg, const char *key, const char *value, size_t len,
                const struct watch_cache_labels *labels)
{
    const struct as_filter *f = arg;
    if (!f->labels && !f->fields) {
        return true;
    }
    if (!as_filter_needs_object(f)) {
        return as_filter_match(f, key, NULL);
    }
    if (labels && as_filter_labels_only(f)) {
        if (!selector_match_labels_lookup(f->labels, watch_cache_label,
                                          labels)) {
            return false;
        }
        /* The rest is decided by the key (metadata.name/namespace). */
        struct as_filter by_key = *f;
        by_key.labels = NULL;
        return !f->fields || as_filter_match(&by_key, key, NULL);
    }
    json_t *obj = as_filter_labels_only(f) ? as_load_labels(value, len)
                                           : json_loadb(value, len, 0, NULL);
    bool ok = obj && as_filter_match(f, key, obj);
    json_decref(obj);
    return ok;
}

static int
as_list_each(void *arg, const struct store_kv *kv)
{
    struct as_list_ctx *c = arg;
    json_t *obj = NULL;
    bool table = c->fmt->out == AS_OUT_TABLE;
    if (table || (!c->filtered && as_filter_needs_object(c->filter) &&
                  !as_filter_labels_only(c->filter))) {
        obj = as_load_object(kv->value, kv->len, kv->rv);
        if (!obj) {
            return 0;
        }
    } else if (!c->filtered && as_filter_needs_object(c->filter)) {
        obj = as_load_labels(kv->value, kv->len);
    }
    if (!c->filtered && (c->filter->labels || c->filter->fields) &&
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
    } else if (c->has_rv) {
        dbuf_append(&c->items, kv->value, kv->len);
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
    if (as_check_list_options(req, false, &ae) < 0) {
        as_respond_error(req, &ae);
        return;
    }
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
    /* A JSON list is written in place: its head first, with blanks where
     * the metadata goes (the revision and the continue token are known
     * only at the end), then the items. A 10,000-object answer is 12 MB,
     * and copying it into a second buffer costs a page fault per fresh
     * page (measured: 14% of the handler's time on this VM). */
    size_t gap_at = 0, gap = 0, head_len = 0;
    if (fmt->out != AS_OUT_TABLE) {
        gap = 64 + 4 * (strlen(prefix) + 300) / 3;
        dbuf_printf(&c.items,
                    "{\"kind\":\"%s\",\"apiVersion\":\"%s\",\"metadata\":",
                    k->list_kind, schema_api_version(k));
        gap_at = c.items.len;
        dbuf_printf(&c.items, "%*s", (int) gap, "");
        dbuf_puts(&c.items, ",\"items\":[");
        head_len = c.items.len;
    }
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
    int64_t at_rv = 0; /* the revision to list at (0 = now) */
    if (cont && *cont &&
        as_continue_decode(cont, prefix, &after, &at_rv, &ae) < 0) {
        goto fail;
    }
    const char *match = http_request_query(req, "resourceVersionMatch");
    const char *rvs = http_request_query(req, "resourceVersion");
    if (!after && match && !strcmp(match, "Exact")) {
        char *end;
        long long v = strtoll(rvs, &end, 10);
        if (*end || v <= 0) {
            as_error_set(&ae, 400, "BadRequest", "invalid resource version: %s",
                         rvs);
            goto fail;
        }
        at_rv = v;
    }
    int64_t list_rv = 0;
    struct dpf_error e = {0};
    c.filtered = c.has_rv = true;
    /* A selector with a k=v requirement walks only the objects labelled
     * so (the cache's inverted label index); the filter still decides. */
    const char *hint_key = NULL, *hint_value = NULL;
    if (filter.labels) {
        selector_equality_hint(filter.labels, &hint_key, &hint_value);
    }
    int r = watch_cache_list_label(as->wc, prefix, after, at_rv, hint_key,
                                   hint_value, as_index_filter, &filter,
                                   as_list_each, &c, &list_rv);
    if (r == -ERANGE) {
        free(after);
        if (cont && *cont) {
            as_error_set(&ae, 410, "Expired",
                         "The provided continue parameter is too old to "
                         "display a consistent list result. You can start a "
                         "new list without the continue parameter.");
        } else {
            as_error_set(
                &ae, 410, "Expired", "too old resource version: %lld (%lld)",
                (long long) at_rv, (long long) watch_cache_current_rv(as->wc));
        }
        goto fail;
    }
    if (r == -ENOTSUP) {
        /* No index (tests that run the API server alone): read the store;
         * later pages then read its current state. */
        c.filtered = c.has_rv = false;
        size_t store_limit = 0;
        if (c.limit && !filter.labels && !filter.fields) {
            store_limit = c.limit + 1;
        }
        r = store_list(as->store, prefix, after, store_limit, as_list_each, &c,
                       &list_rv, NULL, &e);
        if (r >= 0 && !after && at_rv && at_rv != list_rv) {
            /* the store keeps no history: only the current revision */
            as_error_set(&ae, 410, "Expired",
                         "too old resource version: %lld (%lld)",
                         (long long) at_rv, (long long) list_rv);
            goto fail;
        }
    }
    free(after);
    if (r < 0) {
        as_error_from(&ae, &e, 500, "InternalError");
        goto fail;
    }
    struct dbuf b;
    dbuf_init(&b);
    char *tok =
        c.more && c.last_key ? as_continue_encode(c.last_key, list_rv) : NULL;
    if (fmt->out != AS_OUT_TABLE) {
        char *meta = xasprintf(
            "{\"resourceVersion\":\"%lld\"%s%s%s}", (long long) list_rv,
            tok ? ",\"continue\":\"" : "", tok ? tok : "", tok ? "\"" : "");
        size_t n = strlen(meta);
        if (n <= gap) {
            memcpy(c.items.data + gap_at, meta, n);
            dbuf_puts(&c.items, "]}");
        } else {
            /* Cannot happen with a token of a key under prefix; kept
             * correct anyway. */
            dbuf_printf(&b,
                        "{\"kind\":\"%s\",\"apiVersion\":\"%s\","
                        "\"metadata\":%s,\"items\":[",
                        k->list_kind, schema_api_version(k), meta);
            dbuf_append(&b, c.items.data + head_len, c.items.len - head_len);
            dbuf_puts(&b, "]}");
            dbuf_free(&c.items);
            c.items = b;
            dbuf_init(&b);
        }
        free(meta);
        free(tok);
        size_t len;
        char *text = dbuf_steal(&c.items, &len);
        as_respond_text(req, 200, fmt, text, len);
        free(c.last_key);
        free(prefix);
        as_filter_free(&filter);
        return;
    }
    {
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
