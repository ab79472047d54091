/* dmsd-targets: the control lines of dmsd --targets (see dmsd-targets.h). */
#include "dmsd/dmsd-targets.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"

LOG_MODULE(dmsd);

/* An id names a target in replies and logs: "namespace.dpu-name" in
 * dpf-emu; any printable text up to this length. */
#define DMSD_ID_MAX 253

/* The fields of an add, where each goes in struct dmsd_config. */
static const struct {
    const char *name;
    bool required;
    size_t offset;
} add_fields[] = {
    {"bind_address", true, offsetof(struct dmsd_config, bind_address)},
    {"ca_pem", true, offsetof(struct dmsd_config, ca_pem)},
    {"cert_pem", true, offsetof(struct dmsd_config, cert_pem)},
    {"key_pem", true, offsetof(struct dmsd_config, key_pem)},
    {"rshim", true, offsetof(struct dmsd_config, rshim)},
    {"image_folder", true, offsetof(struct dmsd_config, image_folder)},
    {"target_pci", false, offsetof(struct dmsd_config, target_pci)},
    {"sysfs", false, offsetof(struct dmsd_config, sysfs)},
    {"state_dir", false, offsetof(struct dmsd_config, state_dir)},
    {"allowed_users", false, offsetof(struct dmsd_config, allowed_users)},
};

static bool
id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > DMSD_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char) id[i] < 0x20 || id[i] == 0x7f) {
            return false;
        }
    }
    return true;
}

int
dmsd_ctl_parse(struct dmsd_ctl *ctl, const char *line, size_t len, char *why,
               size_t size)
{
    memset(ctl, 0, sizeof *ctl);
    json_error_t jerr;
    ctl->root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!ctl->root) {
        snprintf(why, size, "not JSON: %s (column %d)", jerr.text, jerr.column);
        return -EINVAL;
    }
    if (!json_is_object(ctl->root)) {
        snprintf(why, size, "expected a JSON object");
        return -EINVAL;
    }
    json_t *id = json_object_get(ctl->root, "id");
    if (!json_is_string(id) || !id_ok(json_string_value(id))) {
        snprintf(why, size,
                 "field \"id\": expected a string of 1 to %d printable "
                 "characters",
                 DMSD_ID_MAX);
        return -EINVAL;
    }
    ctl->id = json_string_value(id);
    json_t *op = json_object_get(ctl->root, "op");
    const char *ops = json_is_string(op) ? json_string_value(op) : "";
    if (!strcmp(ops, "add")) {
        ctl->op = DMSD_CTL_ADD;
    } else if (!strcmp(ops, "remove")) {
        ctl->op = DMSD_CTL_REMOVE;
    } else {
        snprintf(why, size, "field \"op\": expected \"add\" or \"remove\"");
        return -EINVAL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(ctl->root, key, v)
    {
        if (!strcmp(key, "op") || !strcmp(key, "id")) {
            continue;
        }
        size_t i;
        for (i = 0; i < ARRAY_SIZE(add_fields); i++) {
            if (!strcmp(key, add_fields[i].name)) {
                break;
            }
        }
        if (i == ARRAY_SIZE(add_fields) || ctl->op != DMSD_CTL_ADD) {
            snprintf(why, size, "field \"%.64s\": not known for op \"%s\"", key,
                     ops);
            return -EINVAL;
        }
        /* json_loadb() without JSON_ALLOW_NUL already refused a \u0000
         * that would cut a path or a PEM short unseen */
        const char *text = json_string_value(v);
        if (!text || !*text) {
            snprintf(why, size, "field \"%s\": expected a non-empty string",
                     key);
            return -EINVAL;
        }
        *(const char **) ((char *) &ctl->cfg + add_fields[i].offset) = text;
    }
    if (ctl->op == DMSD_CTL_ADD) {
        for (size_t i = 0; i < ARRAY_SIZE(add_fields); i++) {
            if (add_fields[i].required &&
                !json_object_get(ctl->root, add_fields[i].name)) {
                snprintf(why, size, "field \"%s\": required for op \"add\"",
                         add_fields[i].name);
                return -EINVAL;
            }
        }
        ctl->cfg.auth = DMSD_AUTH_CERT;
        ctl->cfg.name = ctl->id;
    }
    return 0;
}

void
dmsd_ctl_clear(struct dmsd_ctl *ctl)
{
    json_decref(ctl->root);
    memset(ctl, 0, sizeof *ctl);
}

/* --- the set of targets ---------------------------------------------- */

struct target {
    char *id;
    struct dmsd *s;
};

/* A plain array searched linearly: a few thousand targets, each line
 * costs microseconds next to a TLS context and a bind. */
struct dmsd_targets {
    struct dmsd_config defaults;
    struct dmsd_pool *pool;
    struct target *v;
    size_t n, cap;
};

struct dmsd_targets *
dmsd_targets_create(const struct dmsd_config *defaults, struct dpf_error *err)
{
    struct dmsd_pool *pool = dmsd_pool_create(err);
    if (!pool) {
        return NULL;
    }
    struct dmsd_targets *t = xcalloc(1, sizeof *t);
    t->defaults = *defaults;
    t->pool = pool;
    return t;
}

static struct target *
target_find(struct dmsd_targets *t, const char *id)
{
    for (size_t i = 0; i < t->n; i++) {
        if (!strcmp(t->v[i].id, id)) {
            return &t->v[i];
        }
    }
    return NULL;
}

static void
target_remove(struct dmsd_targets *t, struct target *tg)
{
    dmsd_stop(tg->s);
    free(tg->id);
    *tg = t->v[--t->n];
}

/* The reply line: {"id":..,"ok":..} plus "port" or "error". */
static void
reply(struct dbuf *out, const char *id, bool ok, int port, const char *error)
{
    json_t *r = json_object();
    if (id) {
        json_object_set_new(r, "id", json_string(id));
    }
    json_object_set_new(r, "ok", json_boolean(ok));
    if (port > 0) {
        json_object_set_new(r, "port", json_integer(port));
    }
    if (error) {
        /* json_string() refuses invalid UTF-8; a line's text may hold it */
        json_t *e = json_string(error);
        json_object_set_new(r, "error",
                            e ? e : json_string("invalid UTF-8 in the error"));
    }
    char *text = json_dumps(r, JSON_COMPACT);
    dbuf_puts(out, text);
    dbuf_puts(out, "\n");
    free(text);
    json_decref(r);
}

void
dmsd_targets_too_long(unsigned long lineno, struct dbuf *out)
{
    char why[96];
    snprintf(why, sizeof why, "line %lu: longer than %d bytes", lineno,
             DMSD_CTL_LINE_MAX);
    reply(out, NULL, false, 0, why);
}

void
dmsd_targets_line(struct dmsd_targets *t, const char *line, size_t len,
                  unsigned long lineno, struct dbuf *out)
{
    size_t k = 0;
    while (k < len && (line[k] == ' ' || line[k] == '\t' || line[k] == '\r')) {
        k++;
    }
    if (k == len) {
        return;
    }
    struct dmsd_ctl ctl;
    char why[256];
    if (dmsd_ctl_parse(&ctl, line, len, why, sizeof why) < 0) {
        char *msg = xasprintf("line %lu: %s", lineno, why);
        reply(out, ctl.id, false, 0, msg);
        free(msg);
        dmsd_ctl_clear(&ctl);
        return;
    }
    struct target *tg = target_find(t, ctl.id);
    if (ctl.op == DMSD_CTL_REMOVE) {
        if (!tg) {
            char *msg = xasprintf("line %lu: no target \"%s\" to remove",
                                  lineno, ctl.id);
            reply(out, ctl.id, false, 0, msg);
            free(msg);
        } else {
            target_remove(t, tg);
            log_info("target removed", "target=%s", ctl.id);
            reply(out, ctl.id, true, 0, NULL);
        }
        dmsd_ctl_clear(&ctl);
        return;
    }
    /* an add of an id already present replaces that target: its port may
     * be the one asked for again, so it goes first */
    if (tg) {
        target_remove(t, tg);
    }
    struct dmsd_config cfg = ctl.cfg;
    cfg.exec_timeout_ms = t->defaults.exec_timeout_ms;
    if (!cfg.sysfs) {
        cfg.sysfs = t->defaults.sysfs;
    }
    struct dpf_error err = {0};
    struct dmsd *s = dmsd_start_in(t->pool, &cfg, &err);
    if (!s) {
        log_warn("cannot add a target", "target=%s error=\"%s\"", ctl.id,
                 err.message);
        reply(out, ctl.id, false, 0, err.message);
    } else {
        if (t->n == t->cap) {
            t->cap = t->cap ? t->cap * 2 : 64;
            t->v = xrealloc(t->v, t->cap * sizeof *t->v);
        }
        t->v[t->n++] = (struct target){xstrdup(ctl.id), s};
        reply(out, ctl.id, true, dmsd_port(s), NULL);
    }
    dpf_error_clear(&err);
    dmsd_ctl_clear(&ctl);
}

size_t
dmsd_targets_count(const struct dmsd_targets *t)
{
    return t->n;
}

void
dmsd_targets_destroy(struct dmsd_targets *t)
{
    if (!t) {
        return;
    }
    while (t->n) {
        target_remove(t, &t->v[t->n - 1]);
    }
    free(t->v);
    dmsd_pool_destroy(t->pool);
    free(t);
}
