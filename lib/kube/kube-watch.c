/* kube-watch: see kube-watch.h. Complete lines found in a chunk are parsed
 * in place; only the tail of a chunk (a partial line) is copied into the
 * parser's buffer, so a large read costs no extra copy. */
#include "lib/kube/kube-watch.h"

#include <errno.h>
#include <string.h>

static const char *const event_names[] = {"ADDED", "MODIFIED", "DELETED",
                                          "BOOKMARK", "ERROR"};

const char *
kube_event_type_name(enum kube_event_type t)
{
    if ((size_t) t < ARRAY_SIZE(event_names)) {
        return event_names[t];
    }
    return "UNKNOWN";
}

int
kube_event_type_parse(const char *s, enum kube_event_type *out)
{
    for (size_t i = 0; s && i < ARRAY_SIZE(event_names); i++) {
        if (!strcmp(s, event_names[i])) {
            *out = (enum kube_event_type) i;
            return 0;
        }
    }
    return -EINVAL;
}

void
kube_watch_parser_init(struct kube_watch_parser *p, size_t max_line,
                       kube_watch_event_fn fn, void *arg)
{
    memset(p, 0, sizeof *p);
    dbuf_init(&p->line);
    p->max_line = max_line ? max_line : KUBE_WATCH_MAX_LINE;
    p->fn = fn;
    p->arg = arg;
}

void
kube_watch_parser_free(struct kube_watch_parser *p)
{
    dbuf_free(&p->line);
}

static bool
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Deliver one decoded value. */
static int
deliver(struct kube_watch_parser *p, json_t *ev, struct dpf_error *err)
{
    enum kube_event_type t;
    const char *ts = json_string_value(json_object_get(ev, "type"));
    json_t *obj = json_object_get(ev, "object");
    if (!json_is_object(ev) || kube_event_type_parse(ts, &t) < 0) {
        dpf_error_set(err, 500, "InternalError",
                      "watch: event %llu has no known \"type\" (ADDED, "
                      "MODIFIED, DELETED, BOOKMARK or ERROR)",
                      p->events + 1);
        return -EPROTO;
    }
    if (!json_is_object(obj)) {
        dpf_error_set(err, 500, "InternalError",
                      "watch: %s event %llu has no \"object\"", ts,
                      p->events + 1);
        return -EPROTO;
    }
    p->events++;
    return p->fn(p->arg, t, obj);
}

/* Parse one line holding zero or more JSON values. */
static int
parse_line(struct kube_watch_parser *p, const char *s, size_t n,
           struct dpf_error *err)
{
    for (;;) {
        while (n > 0 && is_space(*s)) {
            s++, n--;
        }
        if (n == 0) {
            return 0;
        }
        if (p->skip && p->skip(p->arg, s, n)) {
            return 0;
        }
        json_error_t jerr;
        json_t *ev = json_loadb(s, n, JSON_DISABLE_EOF_CHECK, &jerr);
        if (!ev) {
            dpf_error_set(err, 500, "InternalError",
                          "watch: event %llu is not JSON: %s", p->events + 1,
                          jerr.text);
            return -EPROTO;
        }
        size_t used = (size_t) jerr.position;
        int r = deliver(p, ev, err);
        json_decref(ev);
        if (r != 0) {
            return r;
        }
        if (used == 0 || used > n) {
            return 0; /* cannot happen with a decoded object; be safe */
        }
        s += used;
        n -= used;
    }
}

static int
too_long(struct kube_watch_parser *p, struct dpf_error *err)
{
    dpf_error_set(err, 500, "InternalError",
                  "watch: event %llu is longer than %zu bytes", p->events + 1,
                  p->max_line);
    return -EMSGSIZE;
}

int
kube_watch_parser_feed(struct kube_watch_parser *p, const char *data,
                       size_t len, struct dpf_error *err)
{
    if (p->stopped) {
        return p->stopped;
    }
    int r = 0;
    while (len > 0 && r == 0) {
        const char *nl = memchr(data, '\n', len);
        if (!nl) {
            if (p->line.len + len > p->max_line) {
                r = too_long(p, err);
                break;
            }
            dbuf_append(&p->line, data, len);
            break;
        }
        size_t n = (size_t) (nl - data);
        if (p->line.len + n > p->max_line) {
            r = too_long(p, err);
            break;
        }
        if (p->line.len > 0) {
            dbuf_append(&p->line, data, n);
            r = parse_line(p, p->line.data, p->line.len, err);
            p->line.len = 0;
            p->line.data[0] = '\0';
        } else {
            r = parse_line(p, data, n, err);
        }
        data = nl + 1;
        len -= n + 1;
    }
    p->stopped = r;
    return r;
}

int
kube_watch_parser_finish(struct kube_watch_parser *p, struct dpf_error *err)
{
    if (p->stopped || p->line.len == 0) {
        return p->stopped;
    }
    int r = parse_line(p, p->line.data, p->line.len, err);
    p->line.len = 0;
    p->line.data[0] = '\0';
    p->stopped = r;
    return r;
}
