/* kube-events: see kube-events.h. */
#include "lib/kube/kube-events.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/log.h"
#include "lib/base/util.h"
#include "lib/kube/kube-object.h"

LOG_MODULE(events);

#define COMBINED_PREFIX "(combined from similar events): "

static const struct kube_gvr events_gvr = {"", "v1", "events", true};

struct kube_recorder {
    struct kube_rest *rest;
    char *component;
    char *host;
    pthread_mutex_t mu;
    /* key -> {"name", "ns", "count", "first" (wall s)}: Events written */
    json_t *events;
    /* object+type+reason -> {"first", "messages": {message: true}} */
    json_t *similar;
    uint64_t seq;
    _Atomic unsigned long written, dropped;
};

struct kube_recorder *
kube_recorder_create(struct kube_rest *r, const char *component,
                     const char *host)
{
    struct kube_recorder *rec = xcalloc(1, sizeof *rec);
    rec->rest = r;
    rec->component = xstrdup(component ? component : "dpf");
    rec->host = host ? xstrdup(host) : NULL;
    pthread_mutex_init(&rec->mu, NULL);
    rec->events = json_object();
    rec->similar = json_object();
    rec->seq = (uint64_t) time_wall_ns();
    return rec;
}

void
kube_recorder_destroy(struct kube_recorder *rec)
{
    if (!rec) {
        return;
    }
    json_decref(rec->events);
    json_decref(rec->similar);
    pthread_mutex_destroy(&rec->mu);
    free(rec->component);
    free(rec->host);
    free(rec);
}

void
kube_recorder_stats(struct kube_recorder *rec, unsigned long *written,
                    unsigned long *dropped)
{
    *written = atomic_load(&rec->written);
    *dropped = atomic_load(&rec->dropped);
}

/* Forget entries older than the window once the maps grow large. */
static void
trim_locked(struct kube_recorder *rec, int64_t now)
{
    json_t *maps[2] = {rec->events, rec->similar};
    for (int m = 0; m < 2; m++) {
        if (json_object_size(maps[m]) < KUBE_EVENT_CACHE) {
            continue;
        }
        const char *k;
        json_t *v, *tmp;
        json_object_foreach_safe(maps[m], tmp, k, v)
        {
            if (now - json_integer_value(json_object_get(v, "first")) >
                KUBE_EVENT_WINDOW_S) {
                json_object_del(maps[m], k);
            }
        }
        if (json_object_size(maps[m]) >= KUBE_EVENT_CACHE) {
            json_object_clear(maps[m]);
        }
    }
}

static const char *
md_str(const json_t *obj, const char *f)
{
    const char *s =
        json_string_value(json_object_get(json_object_get(obj, "metadata"), f));
    return s ? s : "";
}

void
kube_recorder_event(struct kube_recorder *rec, const json_t *obj,
                    const char *type, const char *reason, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    const char *av = json_string_value(json_object_get(obj, "apiVersion"));
    const char *ns = md_str(obj, "namespace");
    const char *name = md_str(obj, "name");
    const char *uid = md_str(obj, "uid");
    const char *ev_ns = *ns ? ns : "default";
    int64_t now = time_wall_ns() / 1000000000;
    char ts[32];
    kube_time_now(ts, sizeof ts);

    /* Aggregation: similar events (same object, type, reason) beyond
     * KUBE_EVENT_SIMILAR distinct messages in the window fold into one. */
    char *sim_key = xasprintf("%s|%s|%s|%s|%s|%s", kind ? kind : "", ns, name,
                              uid, type, reason);
    char *text = msg;
    char *combined = NULL;
    char *key;
    pthread_mutex_lock(&rec->mu);
    trim_locked(rec, now);
    json_t *sim = json_object_get(rec->similar, sim_key);
    if (!sim || now - json_integer_value(json_object_get(sim, "first")) >
                    KUBE_EVENT_WINDOW_S) {
        sim = json_pack("{s:I, s:{}}", "first", (json_int_t) now, "messages");
        json_object_set_new(rec->similar, sim_key, sim);
    }
    json_t *msgs = json_object_get(sim, "messages");
    if (!json_object_get(msgs, msg) &&
        json_object_size(msgs) < KUBE_EVENT_SIMILAR) {
        json_object_set_new(msgs, msg, json_true());
    }
    if (!json_object_get(msgs, msg)) {
        combined = xasprintf(COMBINED_PREFIX "%s", msg);
        text = combined;
        key = xasprintf("%s|combined", sim_key);
    } else {
        key = xasprintf("%s|%s", sim_key, msg);
    }
    /* Identical (or combined) events within the window: count + 1. */
    json_t *seen = json_object_get(rec->events, key);
    if (seen && now - json_integer_value(json_object_get(seen, "first")) >
                    KUBE_EVENT_WINDOW_S) {
        json_object_del(rec->events, key);
        seen = NULL;
    }
    char *ev_name = NULL;
    json_int_t count = 1;
    if (seen) {
        ev_name = xstrdup(json_string_value(json_object_get(seen, "name")));
        count = json_integer_value(json_object_get(seen, "count")) + 1;
        json_object_set_new(seen, "count", json_integer(count));
    } else {
        ev_name = xasprintf("%s.%llx", name, (unsigned long long) rec->seq++);
        json_object_set_new(rec->events, key,
                            json_pack("{s:s, s:I, s:I}", "name", ev_name,
                                      "count", (json_int_t) 1, "first",
                                      (json_int_t) now));
    }
    pthread_mutex_unlock(&rec->mu);

    struct dpf_error err = {0};
    int rc = -ENOENT;
    if (count > 1) {
        char *path = kube_path(&events_gvr, ev_ns, ev_name, NULL);
        json_t *patch = json_pack("{s:I, s:s, s:s}", "count", count,
                                  "lastTimestamp", ts, "message", text);
        rc = kube_rest_json_wait(rec->rest, "PATCH", path, NULL, patch,
                                 "application/merge-patch+json", NULL, &err);
        json_decref(patch);
        free(path);
    }
    if (rc == -ENOENT) { /* new, or the Event expired on the server */
        json_t *ev = json_pack(
            "{s:s, s:s, s:{s:s, s:s}, s:{s:s*, s:s*, s:s, s:s, s:s, s:s}, "
            "s:s, s:s, s:s, s:{s:s, s:s*}, s:s, s:s, s:I, s:s, s:s}",
            "apiVersion", "v1", "kind", "Event", "metadata", "name", ev_name,
            "namespace", ev_ns, "involvedObject", "apiVersion", av, "kind",
            kind, "namespace", ns, "name", name, "uid", uid, "resourceVersion",
            md_str(obj, "resourceVersion"), "type", type, "reason", reason,
            "message", text, "source", "component", rec->component, "host",
            rec->host, "firstTimestamp", ts, "lastTimestamp", ts, "count",
            count, "reportingComponent", rec->component, "reportingInstance",
            rec->host ? rec->host : "");
        char *path = kube_path(&events_gvr, ev_ns, NULL, NULL);
        rc = kube_rest_json_wait(rec->rest, "POST", path, NULL, ev, NULL, NULL,
                                 &err);
        free(path);
        json_decref(ev);
    }
    if (rc < 0) {
        atomic_fetch_add(&rec->dropped, 1);
        log_warn_rl("cannot record an event",
                    "object=%s/%s reason=%s error=\"%s\"", ns, name, reason,
                    err.message);
    } else {
        atomic_fetch_add(&rec->written, 1);
    }
    free(ev_name);
    free(key);
    free(sim_key);
    free(combined);
    free(msg);
}
