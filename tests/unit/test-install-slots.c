/* Unit tests for controllers/install-slots: the cap, the line in the
 * order DPUs asked, a freed slot held for the first in line (a later
 * asker cannot take it), a hold that lapses, forgetting a DPU, and a
 * release by a key that holds nothing. Time is passed in, so nothing
 * here waits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "controllers/install-slots.h"

/* wake as one string "a,b" ("" for none); takes wake */
static char *
keys(json_t *wake)
{
    static char buf[256];
    buf[0] = '\0';
    size_t i;
    json_t *v;
    json_array_foreach(wake, i, v)
    {
        if (i) {
            strcat(buf, ",");
        }
        strcat(buf, json_string_value(v));
    }
    json_decref(wake);
    return buf;
}

static void
test_cap_and_arrival_order(void **state)
{
    (void) state;
    struct install_slots *s = install_slots_create(1, 30000);
    json_t *w = NULL;
    assert_int_equal(install_slots_take(s, "a", 0, &w), 0);
    assert_string_equal(keys(w), "");
    assert_int_equal(install_slots_take(s, "a", 1, &w), 0); /* has it */
    assert_int_equal(install_slots_take(s, "b", 2, &w), -EBUSY);
    assert_int_equal(install_slots_take(s, "c", 3, &w), -EBUSY);
    assert_int_equal(install_slots_take(s, "b", 4, &w), -EBUSY); /* once */
    assert_int_equal(install_slots_waiting(s), 2);
    /* a ends: its slot is held for b, the first in line */
    install_slots_release(s, "a", 10, &w);
    assert_string_equal(keys(w), "b");
    /* d asks before b comes round: it does not take b's slot, nor c's
     * place */
    assert_int_equal(install_slots_take(s, "d", 11, &w), -EBUSY);
    assert_int_equal(install_slots_take(s, "c", 12, &w), -EBUSY);
    assert_int_equal(install_slots_take(s, "b", 13, &w), 0);
    assert_int_equal(install_slots_running(s), 1);
    install_slots_release(s, "b", 20, &w);
    assert_string_equal(keys(w), "c");
    assert_int_equal(install_slots_take(s, "c", 21, &w), 0);
    install_slots_release(s, "c", 30, &w);
    assert_string_equal(keys(w), "d");
    assert_int_equal(install_slots_take(s, "d", 31, &w), 0);
    install_slots_release(s, "d", 40, &w);
    assert_string_equal(keys(w), "");
    assert_int_equal(install_slots_running(s), 0);
    assert_int_equal(install_slots_waiting(s), 0);
    install_slots_destroy(s);
}

static void
test_free_slots_without_a_line(void **state)
{
    (void) state;
    struct install_slots *s = install_slots_create(3, 30000);
    json_t *w = NULL;
    assert_int_equal(install_slots_take(s, "a", 0, &w), 0);
    assert_int_equal(install_slots_take(s, "b", 0, &w), 0);
    assert_int_equal(install_slots_take(s, "c", 0, &w), 0);
    assert_int_equal(install_slots_take(s, "d", 0, &w), -EBUSY);
    assert_int_equal(install_slots_take(s, "e", 0, &w), -EBUSY);
    /* two end at once: both slots go to the line, in order */
    install_slots_release(s, "a", 5, &w);
    assert_string_equal(keys(w), "d");
    install_slots_release(s, "b", 5, &w);
    assert_string_equal(keys(w), "e");
    assert_int_equal(install_slots_take(s, "e", 6, &w), 0);
    assert_int_equal(install_slots_take(s, "d", 7, &w), 0);
    /* a release by a key that runs nothing changes nothing */
    install_slots_release(s, "zz", 8, &w);
    assert_string_equal(keys(w), "");
    assert_int_equal(install_slots_running(s), 3);
    install_slots_destroy(s);
}

static void
test_hold_lapses(void **state)
{
    (void) state;
    struct install_slots *s = install_slots_create(1, 1000);
    json_t *w = NULL;
    assert_int_equal(install_slots_take(s, "a", 0, &w), 0);
    assert_int_equal(install_slots_take(s, "b", 0, &w), -EBUSY);
    assert_int_equal(install_slots_take(s, "c", 0, &w), -EBUSY);
    install_slots_release(s, "a", 100, &w);
    assert_string_equal(keys(w), "b");
    /* b never comes: after its hold the slot goes to c, who asks */
    assert_int_equal(install_slots_take(s, "c", 1099, &w), -EBUSY);
    assert_string_equal(keys(w), "");
    assert_int_equal(install_slots_take(s, "c", 1100, &w), 0);
    assert_string_equal(keys(w), ""); /* its own grant is not queued */
    /* b comes late: it waits in line again */
    assert_int_equal(install_slots_take(s, "b", 1200, &w), -EBUSY);
    install_slots_release(s, "c", 1300, &w);
    assert_string_equal(keys(w), "b");
    install_slots_destroy(s);
}

static void
test_forget(void **state)
{
    (void) state;
    struct install_slots *s = install_slots_create(1, 30000);
    json_t *w = NULL;
    assert_int_equal(install_slots_take(s, "a", 0, &w), 0);
    assert_int_equal(install_slots_take(s, "b", 0, &w), -EBUSY);
    assert_int_equal(install_slots_take(s, "c", 0, &w), -EBUSY);
    assert_int_equal(install_slots_take(s, "d", 0, &w), -EBUSY);
    /* c deleted while in line: it leaves the line */
    install_slots_forget(s, "c", 1, &w);
    assert_string_equal(keys(w), "");
    assert_int_equal(install_slots_waiting(s), 2);
    install_slots_release(s, "a", 2, &w);
    assert_string_equal(keys(w), "b");
    /* b deleted while its slot is held: the slot goes to d at once */
    install_slots_forget(s, "b", 3, &w);
    assert_string_equal(keys(w), "d");
    assert_int_equal(install_slots_take(s, "d", 4, &w), 0);
    /* d deleted while installing: its slot is free again */
    install_slots_forget(s, "d", 5, &w);
    assert_int_equal(install_slots_running(s), 0);
    assert_int_equal(install_slots_take(s, "e", 6, &w), 0);
    install_slots_destroy(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_and_arrival_order),
        cmocka_unit_test(test_free_slots_without_a_line),
        cmocka_unit_test(test_hold_lapses),
        cmocka_unit_test(test_forget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
