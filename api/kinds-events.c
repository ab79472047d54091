/* kinds-events: events.k8s.io/v1 Event, the newer view of core/v1 Events.
 *
 * Kubernetes keeps one resource for both: an Event created through either
 * API is listed by both, each with its own field names. We do the same:
 * this kind is stored as core/v1 Event (schema_kind.stored_as) and the two
 * functions below map the fields as Kubernetes' conversion does
 * (regarding = involvedObject, note = message, reportingController =
 * reportingComponent, deprecated* = the old core fields). Validation is
 * events.k8s.io's: eventTime, reportingController, reportingInstance,
 * action, reason and a type of Normal or Warning are required. */
#include <string.h>

#include "api/schema-node.h"
#include "lib/base/util.h"

/* Field names that differ: events.k8s.io/v1 first, core/v1 second. */
static const char *const event_renames[][2] = {
    {"regarding", "involvedObject"},
    {"note", "message"},
    {"reportingController", "reportingComponent"},
    {"deprecatedSource", "source"},
    {"deprecatedFirstTimestamp", "firstTimestamp"},
    {"deprecatedLastTimestamp", "lastTimestamp"},
    {"deprecatedCount", "count"},
};

/* Fields both versions name alike. */
static const char *const event_same[] = {
    "metadata",  "reason", "type",    "action",
    "eventTime", "series", "related", "reportingInstance",
};

/* Copy obj's fields into a new object of apiVersion/kind, renaming
 * column from to column to of event_renames. */
static json_t *
event_convert(const json_t *obj, const char *api_version, int from, int to)
{
    json_t *out =
        json_pack("{s:s,s:s}", "apiVersion", api_version, "kind", "Event");
    for (size_t i = 0; i < ARRAY_SIZE(event_same); i++) {
        json_t *v = json_object_get(obj, event_same[i]);
        if (v) {
            json_object_set(out, event_same[i], v);
        }
    }
    for (size_t i = 0; i < ARRAY_SIZE(event_renames); i++) {
        json_t *v = json_object_get(obj, event_renames[i][from]);
        if (v) {
            json_object_set(out, event_renames[i][to], v);
        }
    }
    return out;
}

static json_t *
event_to_core(const json_t *obj)
{
    json_t *out = event_convert(obj, "v1", 0, 1);
    /* core/v1 requires involvedObject; an events.k8s.io Event may leave
     * regarding out (then it is about nothing in particular). */
    if (!json_object_get(out, "involvedObject")) {
        json_object_set_new(out, "involvedObject", json_object());
    }
    return out;
}

static json_t *
event_from_core(const json_t *obj)
{
    json_t *out = event_convert(obj, "events.k8s.io/v1", 1, 0);
    json_t *reg = json_object_get(out, "regarding");
    if (json_is_object(reg) && !json_object_size(reg)) {
        json_object_del(out, "regarding");
    }
    return out;
}

static const struct schema_node event_reference = {
    .type = SCHEMA_T_OBJECT,
    FIELDS(F("apiVersion", N_STR()), F("kind", N_STR()), F("name", N_STR()),
           F("namespace", N_STR()), F("uid", N_STR()),
           F("resourceVersion", N_STR()), F("fieldPath", N_STR())),
};

static char *
event_regarding(const json_t *obj)
{
    const char *kind = schema_get_str(obj, "regarding.kind");
    const char *name = schema_get_str(obj, "regarding.name");
    char *s = xasprintf("%s/%s", kind ? kind : "", name ? name : "");
    for (char *p = s; *p && *p != '/'; p++) {
        if (*p >= 'A' && *p <= 'Z') {
            *p = (char) (*p + 32);
        }
    }
    return s;
}

static const struct schema_column event_columns[] = {
    COLUMN("Last Seen", "date", ".eventTime"),
    COLUMN("Type", "string", ".type"),
    COLUMN("Reason", "string", ".reason"),
    {"Object", "string", NULL, "regarding object", 0, event_regarding},
    COLUMN("Note", "string", ".note"),
    COLUMNS_END,
};

static const struct schema_kind kind_events_event = {
    .group = "events.k8s.io",
    .version = "v1",
    .builtin = true,
    KIND_NAMES("Event", "events", "event"),
    .short_names = (const char *const[]){"ev", NULL},
    .namespaced = true,
    .columns = event_columns,
    .stored_as = &schema_kind_event,
    .to_stored = event_to_core,
    .from_stored = event_from_core,
    .root = KIND_ROOT(
        R("eventTime", N_STR(DESC("Time when this Event was first observed."))),
        F("series",
          N_OBJ(DESC("Data about the Event series this event represents."),
                FIELDS(R("count", N_INT(MINIMUM(2), FORMAT("int32"))),
                       R("lastObservedTime", N_STR())))),
        R("reportingController",
          N_STR(MINLEN(1), DESC("Name of the controller that emitted this "
                                "Event, e.g. kubernetes.io/kubelet."))),
        R("reportingInstance",
          N_STR(MINLEN(1), MAXLEN(128),
                DESC("ID of the controller instance, e.g. kubelet-xyzf."))),
        R("action", N_STR(MINLEN(1), MAXLEN(128),
                          DESC("What action was taken or failed regarding "
                               "the regarding object."))),
        R("reason", N_STR(MINLEN(1), MAXLEN(128),
                          DESC("Why the action was taken, in UpperCamelCase "
                               "for machines."))),
        F("regarding", &event_reference), F("related", &event_reference),
        F("note", N_STR(MAXLEN(1024),
                        DESC("A human-readable description of the status of "
                             "this operation."))),
        R("type", N_STR(ENUM("Normal", "Warning"),
                        DESC("Type of this event (Normal, Warning)."))),
        F("deprecatedSource",
          N_OBJ(FIELDS(F("component", N_STR()), F("host", N_STR())))),
        F("deprecatedFirstTimestamp", N_STR()),
        F("deprecatedLastTimestamp", N_STR()),
        F("deprecatedCount", N_INT(FORMAT("int32")))),
};

SCHEMA_GROUP_1(schema_group_events, "events.k8s.io", "v1", &kind_events_event);
