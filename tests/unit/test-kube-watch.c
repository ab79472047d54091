/* Unit tests for lib/kube/kube-watch: events split at every byte boundary,
 * several events per chunk and per line, a last event without newline,
 * ERROR events, and the errors a bad stream gets (not JSON, no type, no
 * object, a line over the bound), which are sticky. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "lib/kube/kube-watch.h"

struct seen {
    int n;
    enum kube_event_type types[16];
    char names[16][32];
    int stop_at; /* stop (return 7) at this event number, 0 = never */
};

static int
on_event(void *arg, enum kube_event_type t, json_t *obj)
{
    struct seen *s = arg;
    const char *name = json_string_value(
        json_object_get(json_object_get(obj, "metadata"), "name"));
    if (s->n < 16) {
        s->types[s->n] = t;
        snprintf(s->names[s->n], sizeof s->names[s->n], "%s", name ? name : "");
    }
    s->n++;
    return s->stop_at && s->n == s->stop_at ? 7 : 0;
}

static const char stream[] =
    "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\","
    "\"resourceVersion\":\"5\"}}}\n"
    "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"b\"}}}\r\n"
    "\n"
    "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"c\"}}}"
    "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"name\":\"d\"}}}\n"
    "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410}}";

static void
check_all(const struct seen *s)
{
    assert_int_equal(s->n, 5);
    assert_int_equal(s->types[0], KUBE_EVENT_ADDED);
    assert_string_equal(s->names[0], "a");
    assert_int_equal(s->types[1], KUBE_EVENT_MODIFIED);
    assert_string_equal(s->names[1], "b");
    assert_int_equal(s->types[2], KUBE_EVENT_DELETED);
    assert_string_equal(s->names[2], "c");
    assert_int_equal(s->types[3], KUBE_EVENT_BOOKMARK);
    assert_int_equal(s->types[4], KUBE_EVENT_ERROR);
}

static void
test_every_split(void **state)
{
    size_t len = strlen(stream);
    for (size_t cut = 0; cut <= len; cut++) {
        struct seen s = {0};
        struct kube_watch_parser p;
        struct dpf_error err = {0};
        kube_watch_parser_init(&p, 0, on_event, &s);
        assert_int_equal(kube_watch_parser_feed(&p, stream, cut, &err), 0);
        assert_int_equal(
            kube_watch_parser_feed(&p, stream + cut, len - cut, &err), 0);
        /* the ERROR event has no newline: it comes at finish */
        assert_int_equal(s.n, 4);
        assert_int_equal(kube_watch_parser_finish(&p, &err), 0);
        check_all(&s);
        kube_watch_parser_free(&p);
    }
}

static void
test_byte_by_byte(void **state)
{
    struct seen s = {0};
    struct kube_watch_parser p;
    struct dpf_error err = {0};
    kube_watch_parser_init(&p, 0, on_event, &s);
    for (size_t i = 0; stream[i]; i++) {
        assert_int_equal(kube_watch_parser_feed(&p, stream + i, 1, &err), 0);
    }
    assert_int_equal(kube_watch_parser_finish(&p, &err), 0);
    check_all(&s);
    kube_watch_parser_free(&p);
}

static void
test_callback_stops(void **state)
{
    struct seen s = {.stop_at = 2};
    struct kube_watch_parser p;
    struct dpf_error err = {0};
    kube_watch_parser_init(&p, 0, on_event, &s);
    assert_int_equal(kube_watch_parser_feed(&p, stream, strlen(stream), &err),
                     7);
    assert_int_equal(s.n, 2);
    /* sticky: nothing more is parsed */
    assert_int_equal(kube_watch_parser_feed(&p, stream, strlen(stream), &err),
                     7);
    assert_int_equal(kube_watch_parser_finish(&p, &err), 7);
    assert_int_equal(s.n, 2);
    kube_watch_parser_free(&p);
}

static void
expect_bad(const char *text, size_t max_line, int want, const char *msg)
{
    struct seen s = {0};
    struct kube_watch_parser p;
    struct dpf_error err = {0};
    kube_watch_parser_init(&p, max_line, on_event, &s);
    int r = kube_watch_parser_feed(&p, text, strlen(text), &err);
    if (r == 0) {
        r = kube_watch_parser_finish(&p, &err);
    }
    assert_int_equal(r, want);
    assert_non_null(strstr(err.message, msg));
    kube_watch_parser_free(&p);
}

static void
test_bad_streams(void **state)
{
    expect_bad("{\"type\":\"ADDED\",\"object\":{}}\nnot json\n", 0, -EPROTO,
               "event 2 is not JSON");
    expect_bad("{\"type\":\"RENAMED\",\"object\":{}}\n", 0, -EPROTO,
               "no known \"type\"");
    expect_bad("{\"object\":{}}\n", 0, -EPROTO, "no known \"type\"");
    expect_bad("{\"type\":\"ADDED\",\"object\":[1]}\n", 0, -EPROTO,
               "ADDED event 1 has no \"object\"");
    expect_bad("[1,2]\n", 0, -EPROTO, "no known \"type\"");
    expect_bad("{\"type\":\"ADDED\",\"object\":{\"a\":\"0123456789\"}}\n", 20,
               -EMSGSIZE, "longer than 20 bytes");
    /* the bound also holds for a line that never ends */
    expect_bad("{\"type\":\"ADDED\",\"object\":{\"a\":\"0123456789", 20,
               -EMSGSIZE, "longer than 20 bytes");
}

static void
test_type_names(void **state)
{
    enum kube_event_type t;
    assert_int_equal(kube_event_type_parse("BOOKMARK", &t), 0);
    assert_int_equal(t, KUBE_EVENT_BOOKMARK);
    assert_string_equal(kube_event_type_name(KUBE_EVENT_DELETED), "DELETED");
    assert_int_equal(kube_event_type_parse("added", &t), -EINVAL);
    assert_int_equal(kube_event_type_parse(NULL, &t), -EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_split),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_bad_streams),
        cmocka_unit_test(test_type_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
