/* install-slots: the DPU controller's install slots (install-slots.h). */
#include "controllers/install-slots.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include "lib/base/util.h"

struct install_slots {
    pthread_mutex_t mu;
    int max;
    int64_t hold_ms;
    json_t *running; /* key -> true */
    json_t *held;    /* key -> monotonic ms the hold lapses */
    json_t *line;    /* keys waiting, in the order they asked */
};

struct install_slots *
install_slots_create(int max, int64_t hold_ms)
{
    struct install_slots *s = xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->max = max > 0 ? max : 1;
    s->hold_ms = hold_ms;
    s->running = json_object();
    s->held = json_object();
    s->line = json_array();
    return s;
}

void
install_slots_destroy(struct install_slots *s)
{
    if (!s) {
        return;
    }
    json_decref(s->running);
    json_decref(s->held);
    json_decref(s->line);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static ssize_t
line_find(const json_t *line, const char *key)
{
    for (size_t i = 0; i < json_array_size(line); i++) {
        if (!strcmp(json_string_value(json_array_get(line, i)), key)) {
            return (ssize_t) i;
        }
    }
    return -1;
}

/* Let lapsed holds go, then hold the free slots for the first in line;
 * the keys handed one are appended to *wake (made when needed). */
static void
grant_locked(struct install_slots *s, int64_t now, json_t **wake)
{
    const char *k;
    json_t *v;
    void *tmp;
    json_object_foreach_safe(s->held, tmp, k, v)
    {
        if (json_integer_value(v) <= now) {
            json_object_del(s->held, k);
        }
    }
    while (json_object_size(s->running) + json_object_size(s->held) <
               (size_t) s->max &&
           json_array_size(s->line)) {
        const char *key = json_string_value(json_array_get(s->line, 0));
        if (!json_object_get(s->running, key)) {
            json_object_set_new(s->held, key, json_integer(now + s->hold_ms));
            if (wake) {
                *wake = *wake ? *wake : json_array();
                json_array_append_new(*wake, json_string(key));
            }
        }
        json_array_remove(s->line, 0);
    }
}

int
install_slots_take(struct install_slots *s, const char *key, int64_t now,
                   json_t **wake)
{
    *wake = NULL;
    pthread_mutex_lock(&s->mu);
    if (json_object_get(s->running, key)) {
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    grant_locked(s, now, wake);
    /* key's own grant needs no queueing: this is its reconcile */
    ssize_t at = line_find(*wake, key);
    if (at >= 0) {
        json_array_remove(*wake, (size_t) at);
    }
    bool held = json_object_get(s->held, key) != NULL;
    size_t busy = json_object_size(s->running) + json_object_size(s->held) -
                  (held ? 1 : 0);
    /* a slot free while keys wait went to them above: without a hold,
     * key may start only when nobody is in line */
    if (busy >= (size_t) s->max || (!held && json_array_size(s->line))) {
        if (line_find(s->line, key) < 0) {
            json_array_append_new(s->line, json_string(key));
        }
        pthread_mutex_unlock(&s->mu);
        return -EBUSY;
    }
    json_object_del(s->held, key);
    at = line_find(s->line, key);
    if (at >= 0) {
        json_array_remove(s->line, (size_t) at);
    }
    json_object_set_new(s->running, key, json_true());
    pthread_mutex_unlock(&s->mu);
    return 0;
}

void
install_slots_release(struct install_slots *s, const char *key, int64_t now,
                      json_t **wake)
{
    *wake = NULL;
    pthread_mutex_lock(&s->mu);
    json_object_del(s->running, key);
    grant_locked(s, now, wake);
    pthread_mutex_unlock(&s->mu);
}

void
install_slots_forget(struct install_slots *s, const char *key, int64_t now,
                     json_t **wake)
{
    *wake = NULL;
    pthread_mutex_lock(&s->mu);
    json_object_del(s->running, key);
    json_object_del(s->held, key);
    ssize_t at = line_find(s->line, key);
    if (at >= 0) {
        json_array_remove(s->line, (size_t) at);
    }
    grant_locked(s, now, wake);
    pthread_mutex_unlock(&s->mu);
}

size_t
install_slots_running(struct install_slots *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = json_object_size(s->running);
    pthread_mutex_unlock(&s->mu);
    return n;
}

size_t
install_slots_waiting(struct install_slots *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = json_array_size(s->line);
    pthread_mutex_unlock(&s->mu);
    return n;
}
