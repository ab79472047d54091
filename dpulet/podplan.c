/* podplan: pod spec -> run plan (see podplan.h). */
#include "dpulet/podplan.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"

struct pp {
    char who[400]; /* "pod ns/name" */
    struct dpf_error *err;
};

static int __attribute__((format(printf, 3, 4)))
pp_fail(struct pp *pp, const char *field, const char *fmt, ...)
{
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    dpf_error_set(pp->err, 422, "Invalid", "%s: %s: %s", pp->who, field, msg);
    return -EINVAL;
}

/* A string field: absent -> *out NULL (0); present but not a string, too
 * long or with a NUL -> error. */
static int
pp_str(struct pp *pp, const json_t *obj, const char *key, const char *field,
       char **out)
{
    *out = NULL;
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v)) {
        return pp_fail(pp, field, "must be a string");
    }
    size_t n = json_string_length(v);
    if (n > DPULET_PLAN_MAX_STRING) {
        return pp_fail(pp, field, "longer than %d bytes",
                       DPULET_PLAN_MAX_STRING);
    }
    if (strlen(json_string_value(v)) != n) {
        return pp_fail(pp, field, "contains a NUL byte");
    }
    *out = xstrndup(json_string_value(v), n);
    return 0;
}

static int
pp_int(struct pp *pp, const json_t *obj, const char *key, const char *field,
       int64_t dflt, int64_t min, int64_t max, int64_t *out)
{
    json_t *v = json_object_get(obj, key);
    *out = dflt;
    if (!v || json_is_null(v)) {
        return 0;
    }
    if (!json_is_integer(v)) {
        return pp_fail(pp, field, "must be an integer");
    }
    int64_t x = json_integer_value(v);
    if (x < min || x > max) {
        return pp_fail(pp, field, "%lld is out of range [%lld, %lld]",
                       (long long) x, (long long) min, (long long) max);
    }
    *out = x;
    return 0;
}

static void
argv_free(char **argv)
{
    if (!argv) {
        return;
    }
    for (char **a = argv; *a; a++) {
        free(*a);
    }
    free(argv);
}

/* Append the string array obj[key] to *argv (NULL-terminated, *n used). */
static int
pp_strings(struct pp *pp, const json_t *obj, const char *key, const char *field,
           char ***argv, size_t *n)
{
    json_t *a = json_object_get(obj, key);
    if (!a || json_is_null(a)) {
        return 0;
    }
    if (!json_is_array(a)) {
        return pp_fail(pp, field, "must be a list of strings");
    }
    if (*n + json_array_size(a) > DPULET_PLAN_MAX_ARGS) {
        return pp_fail(pp, field, "more than %d arguments",
                       DPULET_PLAN_MAX_ARGS);
    }
    *argv = xrealloc(*argv, (*n + json_array_size(a) + 1) * sizeof(char *));
    (*argv)[*n] = NULL;
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v)
    {
        char f[128];
        snprintf(f, sizeof(f), "%s[%zu]", field, i);
        if (!json_is_string(v)) {
            return pp_fail(pp, f, "must be a string");
        }
        size_t len = json_string_length(v);
        if (len > DPULET_PLAN_MAX_STRING ||
            strlen(json_string_value(v)) != len) {
            return pp_fail(pp, f, "longer than %d bytes or contains NUL",
                           DPULET_PLAN_MAX_STRING);
        }
        (*argv)[(*n)++] = xstrndup(json_string_value(v), len);
        (*argv)[*n] = NULL;
    }
    return 0;
}

static bool
name_ok(const char *s)
{
    /* DNS-1123 label, as Kubernetes validates container and volume names */
    size_t n = strlen(s);
    if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '-')) {
            return false;
        }
    }
    return true;
}

static bool
path_ok(const char *p)
{
    /* absolute, no ".." element: a mount target is inside the container's
     * view of the node's root */
    if (p[0] != '/') {
        return false;
    }
    for (const char *s = p; (s = strstr(s, "..")); s += 2) {
        if ((s == p || s[-1] == '/') && (s[2] == '/' || s[2] == 0)) {
            return false;
        }
    }
    return true;
}

/* A named container port -> number; 0 if not found. */
static int
port_by_name(const json_t *ctr, const char *name)
{
    json_t *ports = json_object_get(ctr, "ports");
    size_t i;
    json_t *p;
    json_array_foreach(ports, i, p)
    {
        const char *n = json_string_value(json_object_get(p, "name"));
        json_t *cp = json_object_get(p, "containerPort");
        if (n && !strcmp(n, name) && json_is_integer(cp)) {
            int64_t x = json_integer_value(cp);
            return x > 0 && x < 65536 ? (int) x : 0;
        }
    }
    return 0;
}

static int
pp_port(struct pp *pp, const json_t *ctr, const json_t *h, const char *field,
        int *out)
{
    json_t *v = json_object_get(h, "port");
    if (json_is_integer(v)) {
        int64_t x = json_integer_value(v);
        if (x < 1 || x > 65535) {
            return pp_fail(pp, field, "port %lld is out of range [1, 65535]",
                           (long long) x);
        }
        *out = (int) x;
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        long x = strtol(s, &end, 10);
        if (*s && !*end && x > 0 && x < 65536) {
            *out = (int) x;
            return 0;
        }
        *out = port_by_name(ctr, s);
        if (*out) {
            return 0;
        }
        return pp_fail(pp, field, "names no port of the container");
    }
    return pp_fail(pp, field, "port is required (a number or a port name)");
}

static int
pp_probe(struct pp *pp, const json_t *ctr, const char *key, const char *cf,
         struct dpulet_probe *pr)
{
    json_t *p = json_object_get(ctr, key);
    char f[192];
    snprintf(f, sizeof(f), "%s.%s", cf, key);
    if (!p || json_is_null(p)) {
        return 0;
    }
    if (!json_is_object(p)) {
        return pp_fail(pp, f, "must be an object");
    }
    int64_t v;
    char ff[240];
#define PROBE_INT(k, dflt, min, dst)                      \
    snprintf(ff, sizeof(ff), "%s.%s", f, k);              \
    if (pp_int(pp, p, k, ff, dflt, min, 86400, &v) < 0) { \
        return -EINVAL;                                   \
    }                                                     \
    dst = (int) v
    PROBE_INT("initialDelaySeconds", 0, 0, pr->initial_delay_s);
    PROBE_INT("periodSeconds", 10, 1, pr->period_s);
    PROBE_INT("timeoutSeconds", 1, 1, pr->timeout_s);
    PROBE_INT("successThreshold", 1, 1, pr->success_threshold);
    PROBE_INT("failureThreshold", 3, 1, pr->failure_threshold);
#undef PROBE_INT
    if (strcmp(key, "readinessProbe") && pr->success_threshold != 1) {
        snprintf(ff, sizeof(ff), "%s.successThreshold", f);
        return pp_fail(pp, ff, "must be 1 for liveness and startup probes");
    }
    int kinds = 0;
    json_t *h;
    if ((h = json_object_get(p, "exec"))) {
        kinds++;
        size_t n = 0;
        snprintf(ff, sizeof(ff), "%s.exec.command", f);
        pr->kind = DPULET_PROBE_EXEC;
        if (pp_strings(pp, h, "command", ff, &pr->argv, &n) < 0) {
            return -EINVAL;
        }
        if (n == 0 || !pr->argv[0][0]) {
            return pp_fail(pp, ff, "is required");
        }
    }
    if ((h = json_object_get(p, "httpGet"))) {
        kinds++;
        pr->kind = DPULET_PROBE_HTTP;
        snprintf(ff, sizeof(ff), "%s.httpGet", f);
        if (pp_port(pp, ctr, h, ff, &pr->port) < 0 ||
            pp_str(pp, h, "host", ff, &pr->host) < 0 ||
            pp_str(pp, h, "path", ff, &pr->path) < 0) {
            return -EINVAL;
        }
        char *scheme;
        if (pp_str(pp, h, "scheme", ff, &scheme) < 0) {
            return -EINVAL;
        }
        bool bad = scheme && strcmp(scheme, "HTTP");
        bool https = scheme && !strcmp(scheme, "HTTPS");
        free(scheme);
        if (https) {
            return pp_fail(pp, ff,
                           "scheme HTTPS is not supported by dpulet "
                           "(use HTTP or tcpSocket)");
        }
        if (bad) {
            return pp_fail(pp, ff, "scheme must be HTTP or HTTPS");
        }
        if (!pr->path) {
            pr->path = xstrdup("/");
        } else if (pr->path[0] != '/' || strpbrk(pr->path, " \r\n")) {
            return pp_fail(pp, ff,
                           "path must start with / and hold no "
                           "space or line break");
        }
        if (pr->host && strpbrk(pr->host, " \r\n/")) {
            return pp_fail(pp, ff, "host is not a host name or address");
        }
    }
    if ((h = json_object_get(p, "tcpSocket"))) {
        kinds++;
        pr->kind = DPULET_PROBE_TCP;
        snprintf(ff, sizeof(ff), "%s.tcpSocket", f);
        if (pp_port(pp, ctr, h, ff, &pr->port) < 0 ||
            pp_str(pp, h, "host", ff, &pr->host) < 0) {
            return -EINVAL;
        }
    }
    if (json_object_get(p, "grpc")) {
        return pp_fail(pp, f, "grpc probes are not supported by dpulet");
    }
    if (kinds != 1) {
        return pp_fail(pp, f,
                       "exactly one of exec, httpGet, tcpSocket "
                       "must be set");
    }
    return 0;
}

static int
pp_env(struct pp *pp, const json_t *ctr, const char *cf,
       struct dpulet_container *c)
{
    json_t *env = json_object_get(ctr, "env");
    char f[192];
    snprintf(f, sizeof(f), "%s.env", cf);
    if (!env || json_is_null(env)) {
        return 0;
    }
    if (!json_is_array(env)) {
        return pp_fail(pp, f, "must be a list");
    }
    if (json_array_size(env) > DPULET_PLAN_MAX_ENV) {
        return pp_fail(pp, f, "more than %d variables", DPULET_PLAN_MAX_ENV);
    }
    c->env = xcalloc(json_array_size(env) + 1, sizeof(*c->env));
    size_t i;
    json_t *e;
    json_array_foreach(env, i, e)
    {
        struct dpulet_env *d = &c->env[c->n_env++];
        snprintf(f, sizeof(f), "%s.env[%zu]", cf, i);
        if (!json_is_object(e)) {
            return pp_fail(pp, f, "must be an object");
        }
        char ff[240];
        snprintf(ff, sizeof(ff), "%s.name", f);
        if (pp_str(pp, e, "name", ff, &d->name) < 0) {
            return -EINVAL;
        }
        if (!d->name || !d->name[0] || strchr(d->name, '=')) {
            return pp_fail(pp, ff, "is required and may not contain '='");
        }
        snprintf(ff, sizeof(ff), "%s.value", f);
        if (pp_str(pp, e, "value", ff, &d->value) < 0) {
            return -EINVAL;
        }
        json_t *vf = json_object_get(e, "valueFrom");
        if (vf && !json_is_null(vf)) {
            snprintf(ff, sizeof(ff), "%s.valueFrom", f);
            json_t *fr = json_object_get(vf, "fieldRef");
            if (!json_is_object(fr) || json_object_size(vf) != 1) {
                return pp_fail(pp, ff,
                               "only fieldRef is supported by "
                               "dpulet");
            }
            snprintf(ff, sizeof(ff), "%s.valueFrom.fieldRef.fieldPath", f);
            if (pp_str(pp, fr, "fieldPath", ff, &d->field_path) < 0) {
                return -EINVAL;
            }
            static const char *const ok[] = {"metadata.name",
                                             "metadata.namespace",
                                             "metadata.uid",
                                             "spec.nodeName",
                                             "spec.serviceAccountName",
                                             "status.podIP",
                                             "status.hostIP",
                                             NULL};
            bool found = false;
            for (size_t k = 0; ok[k] && d->field_path; k++) {
                found |= !strcmp(ok[k], d->field_path);
            }
            if (!found) {
                return pp_fail(pp, ff,
                               "unsupported field path (dpulet "
                               "resolves metadata.name, "
                               "metadata.namespace, metadata.uid, "
                               "spec.nodeName, "
                               "spec.serviceAccountName, "
                               "status.podIP, status.hostIP)");
            }
            free(d->value);
            d->value = NULL;
        } else if (!d->value) {
            d->value = xstrdup("");
        }
    }
    return 0;
}

static int
pp_mounts(struct pp *pp, const json_t *ctr, const char *cf,
          const struct dpulet_plan *plan, struct dpulet_container *c)
{
    json_t *vm = json_object_get(ctr, "volumeMounts");
    char f[192];
    snprintf(f, sizeof(f), "%s.volumeMounts", cf);
    if (!vm || json_is_null(vm)) {
        return 0;
    }
    if (!json_is_array(vm)) {
        return pp_fail(pp, f, "must be a list");
    }
    if (json_array_size(vm) > DPULET_PLAN_MAX_MOUNTS) {
        return pp_fail(pp, f, "more than %d mounts", DPULET_PLAN_MAX_MOUNTS);
    }
    c->mounts = xcalloc(json_array_size(vm) + 1, sizeof(*c->mounts));
    size_t i;
    json_t *m;
    json_array_foreach(vm, i, m)
    {
        struct dpulet_mount *d = &c->mounts[c->n_mounts++];
        snprintf(f, sizeof(f), "%s.volumeMounts[%zu]", cf, i);
        char ff[240];
        if (!json_is_object(m)) {
            return pp_fail(pp, f, "must be an object");
        }
        snprintf(ff, sizeof(ff), "%s.name", f);
        if (pp_str(pp, m, "name", ff, &d->volume) < 0) {
            return -EINVAL;
        }
        bool found = false;
        for (size_t k = 0; d->volume && k < plan->n_volumes; k++) {
            found |= !strcmp(plan->volumes[k].name, d->volume);
        }
        if (!found) {
            return pp_fail(pp, ff, "names no volume of the pod");
        }
        snprintf(ff, sizeof(ff), "%s.mountPath", f);
        if (pp_str(pp, m, "mountPath", ff, &d->path) < 0) {
            return -EINVAL;
        }
        if (!d->path || !path_ok(d->path) || !strcmp(d->path, "/")) {
            return pp_fail(pp, ff,
                           "must be an absolute path other than / "
                           "without '..'");
        }
        d->read_only = json_is_true(json_object_get(m, "readOnly"));
        if (json_object_get(m, "subPath") ||
            json_object_get(m, "subPathExpr")) {
            snprintf(ff, sizeof(ff), "%s.subPath", f);
            return pp_fail(pp, ff, "is not supported by dpulet");
        }
    }
    return 0;
}

static int
pp_container(struct pp *pp, const json_t *ctr, const char *cf, bool init,
             const struct dpulet_plan *plan, struct dpulet_container *c)
{
    char f[240];
    c->init = init;
    if (!json_is_object(ctr)) {
        return pp_fail(pp, cf, "must be an object");
    }
    snprintf(f, sizeof(f), "%s.name", cf);
    if (pp_str(pp, ctr, "name", f, &c->name) < 0) {
        return -EINVAL;
    }
    if (!c->name || !name_ok(c->name)) {
        return pp_fail(pp, f,
                       "must be a DNS-1123 label (lower case "
                       "letters, digits, '-', at most 63)");
    }
    for (const struct dpulet_container *o = plan->containers; o < c; o++) {
        if (!strcmp(o->name, c->name)) {
            return pp_fail(pp, f, "duplicate container name \"%s\"", c->name);
        }
    }
    snprintf(f, sizeof(f), "%s.image", cf);
    if (pp_str(pp, ctr, "image", f, &c->image) < 0) {
        return -EINVAL;
    }
    size_t n = 0;
    snprintf(f, sizeof(f), "%s.command", cf);
    if (pp_strings(pp, ctr, "command", f, &c->argv, &n) < 0) {
        return -EINVAL;
    }
    if (n == 0 || !c->argv[0][0]) {
        return pp_fail(pp, f,
                       "is required: dpulet runs the command from "
                       "the node's filesystem and has no image "
                       "entrypoint to fall back on");
    }
    snprintf(f, sizeof(f), "%s.args", cf);
    if (pp_strings(pp, ctr, "args", f, &c->argv, &n) < 0) {
        return -EINVAL;
    }
    snprintf(f, sizeof(f), "%s.workingDir", cf);
    if (pp_str(pp, ctr, "workingDir", f, &c->working_dir) < 0) {
        return -EINVAL;
    }
    if (c->working_dir && c->working_dir[0] != '/') {
        return pp_fail(pp, f, "must be an absolute path");
    }
    if (pp_env(pp, ctr, cf, c) < 0 || pp_mounts(pp, ctr, cf, plan, c) < 0) {
        return -EINVAL;
    }
    if (json_object_get(ctr, "envFrom")) {
        snprintf(f, sizeof(f), "%s.envFrom", cf);
        return pp_fail(pp, f, "is not supported by dpulet");
    }
    if (json_object_get(ctr, "lifecycle")) {
        snprintf(f, sizeof(f), "%s.lifecycle", cf);
        return pp_fail(pp, f, "hooks are not supported by dpulet");
    }
    if (init) {
        return 0; /* init containers have no probes */
    }
    if (pp_probe(pp, ctr, "livenessProbe", cf, &c->liveness) < 0 ||
        pp_probe(pp, ctr, "readinessProbe", cf, &c->readiness) < 0 ||
        pp_probe(pp, ctr, "startupProbe", cf, &c->startup) < 0) {
        return -EINVAL;
    }
    return 0;
}

static int
pp_volumes(struct pp *pp, const json_t *spec, struct dpulet_plan *plan)
{
    json_t *vols = json_object_get(spec, "volumes");
    if (!vols || json_is_null(vols)) {
        return 0;
    }
    if (!json_is_array(vols)) {
        return pp_fail(pp, "spec.volumes", "must be a list");
    }
    if (json_array_size(vols) > DPULET_PLAN_MAX_VOLUMES) {
        return pp_fail(pp, "spec.volumes", "more than %d volumes",
                       DPULET_PLAN_MAX_VOLUMES);
    }
    plan->volumes = xcalloc(json_array_size(vols) + 1, sizeof(*plan->volumes));
    size_t i;
    json_t *v;
    json_array_foreach(vols, i, v)
    {
        struct dpulet_volume *d = &plan->volumes[plan->n_volumes++];
        char f[128], ff[192];
        snprintf(f, sizeof(f), "spec.volumes[%zu]", i);
        if (!json_is_object(v)) {
            return pp_fail(pp, f, "must be an object");
        }
        snprintf(ff, sizeof(ff), "%s.name", f);
        if (pp_str(pp, v, "name", ff, &d->name) < 0) {
            return -EINVAL;
        }
        if (!d->name || !name_ok(d->name)) {
            return pp_fail(pp, ff, "must be a DNS-1123 label");
        }
        for (size_t k = 0; k + 1 < plan->n_volumes; k++) {
            if (!strcmp(plan->volumes[k].name, d->name)) {
                return pp_fail(pp, ff, "duplicate volume name \"%s\"", d->name);
            }
        }
        json_t *s;
        if ((s = json_object_get(v, "emptyDir"))) {
            d->kind = DPULET_VOL_EMPTY_DIR;
        } else if ((s = json_object_get(v, "hostPath"))) {
            d->kind = DPULET_VOL_HOST_PATH;
            snprintf(ff, sizeof(ff), "%s.hostPath.path", f);
            if (pp_str(pp, s, "path", ff, &d->source) < 0) {
                return -EINVAL;
            }
            if (!d->source || !path_ok(d->source)) {
                return pp_fail(pp, ff,
                               "must be an absolute path without "
                               "'..'");
            }
        } else if ((s = json_object_get(v, "secret")) ||
                   (s = json_object_get(v, "configMap"))) {
            bool secret = json_object_get(v, "secret") != NULL;
            d->kind = secret ? DPULET_VOL_SECRET : DPULET_VOL_CONFIG_MAP;
            snprintf(ff, sizeof(ff), "%s.%s", f,
                     secret ? "secret.secretName" : "configMap.name");
            if (pp_str(pp, s, secret ? "secretName" : "name", ff, &d->source) <
                0) {
                return -EINVAL;
            }
            if (!d->source || !d->source[0] || strchr(d->source, '/') ||
                strlen(d->source) > 253) {
                return pp_fail(pp, ff, "must be an object name");
            }
            d->optional = json_is_true(json_object_get(s, "optional"));
            if (json_object_get(s, "items")) {
                snprintf(ff, sizeof(ff), "%s.%s.items", f,
                         secret ? "secret" : "configMap");
                return pp_fail(pp, ff,
                               "is not supported by dpulet (every "
                               "key becomes a file)");
            }
        } else {
            return pp_fail(pp, f,
                           "volume kind not supported by dpulet "
                           "(secret, configMap, hostPath, emptyDir)");
        }
    }
    return 0;
}

static int
pp_list(struct pp *pp, const json_t *spec, const char *key, bool init,
        struct dpulet_plan *plan)
{
    json_t *a = json_object_get(spec, key);
    char f[64];
    snprintf(f, sizeof(f), "spec.%s", key);
    if (!a || json_is_null(a)) {
        return 0;
    }
    if (!json_is_array(a)) {
        return pp_fail(pp, f, "must be a list");
    }
    size_t i;
    json_t *c;
    json_array_foreach(a, i, c)
    {
        if (plan->n_containers >= DPULET_PLAN_MAX_CONTAINERS) {
            return pp_fail(pp, "spec", "more than %d containers",
                           DPULET_PLAN_MAX_CONTAINERS);
        }
        char cf[96];
        snprintf(cf, sizeof(cf), "spec.%s[%zu]", key, i);
        struct dpulet_container *d = &plan->containers[plan->n_containers++];
        if (pp_container(pp, c, cf, init, plan, d) < 0) {
            return -EINVAL;
        }
    }
    return 0;
}

int
dpulet_plan_from_pod(const json_t *pod, struct dpulet_plan **out,
                     struct dpf_error *err)
{
    struct pp pp = {.err = err};
    *out = NULL;
    json_t *md = json_object_get(pod, "metadata");
    const char *ns = json_string_value(json_object_get(md, "namespace"));
    const char *name = json_string_value(json_object_get(md, "name"));
    char sns[64], sname[254];
    utf8_copy(sns, sizeof(sns), ns ? ns : "?");
    utf8_copy(sname, sizeof(sname), name ? name : "?");
    snprintf(pp.who, sizeof(pp.who), "pod %s/%s", sns, sname);
    if (!json_is_object(pod) || !json_is_object(md)) {
        return pp_fail(&pp, "metadata", "is required");
    }
    struct dpulet_plan *p = xcalloc(1, sizeof(*p));
    p->containers = xcalloc(DPULET_PLAN_MAX_CONTAINERS, sizeof(*p->containers));
    int rc = -EINVAL;
    if (pp_str(&pp, md, "namespace", "metadata.namespace", &p->ns) < 0 ||
        pp_str(&pp, md, "name", "metadata.name", &p->name) < 0 ||
        pp_str(&pp, md, "uid", "metadata.uid", &p->uid) < 0) {
        goto out;
    }
    if (!p->name || !p->name[0] || strchr(p->name, '/') ||
        strlen(p->name) > 253) {
        pp_fail(&pp, "metadata.name", "must be an object name");
        goto out;
    }
    if (!p->ns) {
        p->ns = xstrdup("default");
    } else if (!name_ok(p->ns)) {
        pp_fail(&pp, "metadata.namespace", "must be a DNS-1123 label");
        goto out;
    }
    if (p->uid && (strchr(p->uid, '/') || strlen(p->uid) > 128)) {
        pp_fail(&pp, "metadata.uid", "is not a uid");
        goto out;
    }
    json_t *spec = json_object_get(pod, "spec");
    if (!json_is_object(spec)) {
        pp_fail(&pp, "spec", "is required");
        goto out;
    }
    char *rp;
    if (pp_str(&pp, spec, "restartPolicy", "spec.restartPolicy", &rp) < 0) {
        goto out;
    }
    if (!rp || !strcmp(rp, "Always")) {
        p->restart = DPULET_RESTART_ALWAYS;
    } else if (!strcmp(rp, "OnFailure")) {
        p->restart = DPULET_RESTART_ON_FAILURE;
    } else if (!strcmp(rp, "Never")) {
        p->restart = DPULET_RESTART_NEVER;
    } else {
        free(rp);
        pp_fail(&pp, "spec.restartPolicy",
                "must be Always, OnFailure or "
                "Never");
        goto out;
    }
    free(rp);
    p->host_network = json_is_true(json_object_get(spec, "hostNetwork"));
    if (pp_int(&pp, spec, "terminationGracePeriodSeconds",
               "spec.terminationGracePeriodSeconds", 30, 0,
               DPULET_PLAN_MAX_GRACE_S, &p->grace_s) < 0 ||
        pp_volumes(&pp, spec, p) < 0 ||
        pp_list(&pp, spec, "initContainers", true, p) < 0) {
        goto out;
    }
    p->n_init = p->n_containers;
    if (pp_list(&pp, spec, "containers", false, p) < 0) {
        goto out;
    }
    if (p->n_containers == p->n_init) {
        pp_fail(&pp, "spec.containers", "at least one container is required");
        goto out;
    }
    *out = p;
    return 0;
out:
    dpulet_plan_free(p);
    return rc;
}

static void
probe_free(struct dpulet_probe *p)
{
    argv_free(p->argv);
    free(p->host);
    free(p->path);
}

void
dpulet_plan_free(struct dpulet_plan *p)
{
    if (!p) {
        return;
    }
    for (size_t i = 0; i < DPULET_PLAN_MAX_CONTAINERS && p->containers; i++) {
        struct dpulet_container *c = &p->containers[i];
        free(c->name);
        free(c->image);
        argv_free(c->argv);
        for (size_t k = 0; k < c->n_env; k++) {
            free(c->env[k].name);
            free(c->env[k].value);
            free(c->env[k].field_path);
        }
        free(c->env);
        free(c->working_dir);
        for (size_t k = 0; k < c->n_mounts; k++) {
            free(c->mounts[k].volume);
            free(c->mounts[k].path);
        }
        free(c->mounts);
        probe_free(&c->liveness);
        probe_free(&c->readiness);
        probe_free(&c->startup);
    }
    free(p->containers);
    for (size_t i = 0; i < p->n_volumes; i++) {
        free(p->volumes[i].name);
        free(p->volumes[i].source);
    }
    free(p->volumes);
    free(p->ns);
    free(p->name);
    free(p->uid);
    free(p);
}

const struct dpulet_container *
dpulet_plan_container(const struct dpulet_plan *p, const char *name)
{
    for (size_t i = 0; i < p->n_containers; i++) {
        if (!strcmp(p->containers[i].name, name)) {
            return &p->containers[i];
        }
    }
    return NULL;
}

const char *
dpulet_restart_name(enum dpulet_restart r)
{
    return r == DPULET_RESTART_NEVER        ? "Never"
           : r == DPULET_RESTART_ON_FAILURE ? "OnFailure"
                                            : "Always";
}
