/* apiserver-table: Accept negotiation and meta.k8s.io Table output.
 *
 * Tables follow the CRD table convertor: a Name column first, then the
 * kind's printer columns (priority 1 columns are included and flagged so
 * kubectl shows them with -o wide), or a single Age column when a kind
 * declares none. Date cells are rendered server side as human durations
 * ("5m", "3h20m") exactly like Kubernetes' duration.HumanDuration; absent
 * values are null cells (kubectl prints <none>). Row objects are
 * PartialObjectMetadata unless includeObject says otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dpf-server/apiserver-private.h"
#include "lib/net/http-server.h"

/* Trim spaces in place; returns the start. */
static char *
as_trim(char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t')) {
        s[--n] = '\0';
    }
    return s;
}

/* One media range: decide what it asks for. 1 = acceptable (fmt filled),
 * 0 = not acceptable. */
static int
as_media_range(char *range, bool allow_table, struct as_format *fmt)
{
    char *save = NULL;
    char *type = strtok_r(range, ";", &save);
    if (!type) {
        return 0;
    }
    type = as_trim(type);
    const char *as = NULL, *g = NULL, *v = NULL;
    for (char *p = strtok_r(NULL, ";", &save); p;
         p = strtok_r(NULL, ";", &save)) {
        p = as_trim(p);
        char *eq = strchr(p, '=');
        if (!eq) {
            continue;
        }
        *eq = '\0';
        char *key = as_trim(p), *val = as_trim(eq + 1);
        if (!strcmp(key, "as")) {
            as = val;
        } else if (!strcmp(key, "g")) {
            g = val;
        } else if (!strcmp(key, "v")) {
            v = val;
        }
    }
    bool json = !strcasecmp(type, "application/json") ||
                !strcasecmp(type, "*/*") || !strcasecmp(type, "application/*");
    bool yaml = !strcasecmp(type, "application/yaml");
    if (!json && !yaml) {
        return 0;
    }
    if (!as) {
        fmt->out = yaml ? AS_OUT_YAML : AS_OUT_JSON;
        return 1;
    }
    if (!strcmp(as, "Table") && allow_table && g && !strcmp(g, "meta.k8s.io") &&
        v && (!strcmp(v, "v1") || !strcmp(v, "v1beta1"))) {
        fmt->out = yaml ? AS_OUT_YAML : AS_OUT_TABLE;
        if (yaml) {
            return 0;
        }
        fmt->table_api =
            !strcmp(v, "v1") ? "meta.k8s.io/v1" : "meta.k8s.io/v1beta1";
        return 1;
    }
    return 0;
}

bool
as_format_negotiate(struct http_request *req, bool allow_table,
                    struct as_format *fmt)
{
    memset(fmt, 0, sizeof(*fmt));
    fmt->out = AS_OUT_JSON;
    fmt->table_api = "meta.k8s.io/v1";
    const char *inc = http_request_query(req, "includeObject");
    if (inc && !strcmp(inc, "None")) {
        fmt->include = AS_INCLUDE_NONE;
    } else if (inc && !strcmp(inc, "Object")) {
        fmt->include = AS_INCLUDE_OBJECT;
    }
    const char *accept = http_request_header(req, "Accept");
    if (!accept || !*accept) {
        return true;
    }
    char *copy = xstrdup(accept);
    char *save = NULL;
    bool ok = false;
    for (char *r = strtok_r(copy, ",", &save); r;
         r = strtok_r(NULL, ",", &save)) {
        if (as_media_range(r, allow_table, fmt)) {
            ok = true;
            break;
        }
    }
    free(copy);
    if (!ok) {
        fmt->out = AS_OUT_JSON;
    }
    return ok;
}

void
as_human_duration(int64_t s, char *buf, size_t size)
{
    if (s < -1) {
        snprintf(buf, size, "<invalid>");
        return;
    }
    if (s < 0) {
        snprintf(buf, size, "0s");
        return;
    }
    if (s < 120) {
        snprintf(buf, size, "%llds", (long long) s);
        return;
    }
    int64_t m = s / 60;
    if (m < 10) {
        int64_t r = s % 60;
        if (r == 0) {
            snprintf(buf, size, "%lldm", (long long) m);
        } else {
            snprintf(buf, size, "%lldm%llds", (long long) m, (long long) r);
        }
        return;
    }
    if (m < 180) {
        snprintf(buf, size, "%lldm", (long long) m);
        return;
    }
    int64_t h = s / 3600;
    if (h < 8) {
        int64_t r = m % 60;
        if (r == 0) {
            snprintf(buf, size, "%lldh", (long long) h);
        } else {
            snprintf(buf, size, "%lldh%lldm", (long long) h, (long long) r);
        }
        return;
    }
    if (h < 48) {
        snprintf(buf, size, "%lldh", (long long) h);
        return;
    }
    if (h < 24 * 8) {
        int64_t d = h / 24, r = h % 24;
        if (r == 0) {
            snprintf(buf, size, "%lldd", (long long) d);
        } else {
            snprintf(buf, size, "%lldd%lldh", (long long) d, (long long) r);
        }
        return;
    }
    if (h < 24 * 365 * 2) {
        snprintf(buf, size, "%lldd", (long long) (h / 24));
        return;
    }
    if (h < 24 * 365 * 8) {
        int64_t y = h / 24 / 365, d = (h / 24) % 365;
        if (d == 0) {
            snprintf(buf, size, "%lldy", (long long) y);
        } else {
            snprintf(buf, size, "%lldy%lldd", (long long) y, (long long) d);
        }
        return;
    }
    snprintf(buf, size, "%lldy", (long long) (h / 24 / 365));
}

/* Seconds since the epoch of an RFC 3339 timestamp, or -1. */
static int64_t
as_parse_time(const char *s)
{
    struct tm tm = {0};
    if (!s) {
        return -1;
    }
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!end) {
        return -1;
    }
    return (int64_t) timegm(&tm);
}

static bool
as_has_age_column(const struct schema_kind *k)
{
    return k->columns && k->columns[0].name;
}

json_t *
as_table_columns(const struct schema_kind *k)
{
    json_t *cols = json_array();
    json_array_append_new(
        cols,
        json_pack("{s:s,s:s,s:s,s:s,s:i}", "name", "Name", "type", "string",
                  "format", "name", "description",
                  "Name must be unique within a namespace.", "priority", 0));
    if (!as_has_age_column(k)) {
        json_array_append_new(
            cols, json_pack("{s:s,s:s,s:s,s:s,s:i}", "name", "Age", "type",
                            "date", "format", "", "description",
                            "CreationTimestamp is a timestamp representing "
                            "the server time when this object was created.",
                            "priority", 0));
        return cols;
    }
    for (const struct schema_column *c = k->columns; c->name; c++) {
        json_array_append_new(
            cols, json_pack("{s:s,s:s,s:s,s:s,s:i}", "name", c->name, "type",
                            c->type ? c->type : "string", "format", "",
                            "description", c->description ? c->description : "",
                            "priority", c->priority));
    }
    return cols;
}

static json_t *
as_cell(const char *type, const char *val, int64_t now_s)
{
    if (!val || !*val) {
        return json_null();
    }
    if (type && !strcmp(type, "date")) {
        int64_t t = as_parse_time(val);
        if (t < 0) {
            return kube_status_string(val);
        }
        char buf[32];
        as_human_duration(now_s - t, buf, sizeof(buf));
        return json_string(buf);
    }
    if (type && !strcmp(type, "integer")) {
        char *end;
        long long v = strtoll(val, &end, 10);
        return *end ? kube_status_string(val) : json_integer(v);
    }
    if (type && !strcmp(type, "number")) {
        char *end;
        double v = strtod(val, &end);
        return *end ? kube_status_string(val) : json_real(v);
    }
    if (type && !strcmp(type, "boolean")) {
        if (!strcmp(val, "true")) {
            return json_true();
        }
        if (!strcmp(val, "false")) {
            return json_false();
        }
    }
    /* Column values may be computed and cut by the kind's code: never let
     * one bad byte drop the cell (and shift every column after it). */
    return kube_status_string(val);
}

json_t *
as_table_row(const struct schema_kind *k, const json_t *obj,
             enum as_include include, int64_t now_ns)
{
    int64_t now_s = now_ns / 1000000000LL;
    json_t *md = json_object_get(obj, "metadata");
    json_t *cells = json_array();
    const char *name = json_string_value(json_object_get(md, "name"));
    json_array_append_new(cells, kube_status_string(name));
    if (!as_has_age_column(k)) {
        json_array_append_new(
            cells,
            as_cell("date",
                    json_string_value(json_object_get(md, "creationTimestamp")),
                    now_s));
    } else {
        for (const struct schema_column *c = k->columns; c->name; c++) {
            char *v = schema_column_value(c, obj);
            json_array_append_new(cells, as_cell(c->type, v, now_s));
            free(v);
        }
    }
    json_t *row = json_pack("{s:o}", "cells", cells);
    if (include == AS_INCLUDE_OBJECT) {
        json_object_set(row, "object", (json_t *) obj);
    } else if (include == AS_INCLUDE_METADATA) {
        json_object_set_new(row, "object",
                            json_pack("{s:s,s:s,s:O}", "kind",
                                      "PartialObjectMetadata", "apiVersion",
                                      "meta.k8s.io/v1", "metadata", md));
    }
    return row;
}
