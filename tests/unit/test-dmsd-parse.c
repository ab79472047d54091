/* Unit tests for the parsers behind dmsd: lib/codecs/rshim-misc (the misc
 * text a device shows, the commands the emulator reads) and
 * dmsd/dmsd-parse (gNMI path text, File confinement, the Install header
 * look). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmsd/dmsd-parse.h"
#include "lib/codecs/rshim-misc.h"

static const char misc_text[] =
    "DISPLAY_LEVEL   2 (0:basic, 1:advanced, 2:log)\n"
    "BF_MODE         DPU mode\n"
    "BOOT_MODE       1 (0:rshim, 1:emmc, 2:emmc-boot-swap)\n"
    "DEV_NAME        pcie-0000:4b:00.2\n"
    "DEV_INFO        BlueField-3(Rev 1)\n"
    "OPN_STR         N/A\n"
    "UP_TIME         42(s)\n"
    "---------------------------------------\n"
    "             Log Messages\n"
    "---------------------------------------\n"
    " INFO[PSC]: PSC BL1 START\n"
    " INFO[MISC]: Rebooting...\n"
    " INFO[MISC]: BFB version 4.9.1-13542\n"
    " INFO[MISC]: DPU is ready\n";

static void
test_misc_fields(void **state)
{
    (void) state;
    struct rshim_misc m;
    rshim_misc_parse(misc_text, strlen(misc_text), &m);
    assert_string_equal(m.dev_name, "pcie-0000:4b:00.2");
    assert_string_equal(m.dev_info, "BlueField-3(Rev 1)");
    assert_string_equal(m.opn, "");
    assert_string_equal(m.bf_mode, "DPU mode");
    assert_int_equal(m.display_level, 2);
    assert_int_equal(m.boot_mode, 1);
    assert_int_equal(m.up_time, 42);
    assert_int_equal(m.log_lines, 4);
    assert_true(m.ready);
    assert_false(m.rebooting);
    assert_string_equal(m.bfb_version, "4.9.1-13542");
    assert_string_equal(m.error, "");

    static const char err[] = "DEV_NAME x\n INFO[PSC]: PSC BL1 START\n"
                              " ERR[BL2]: corrupt BFB: image #3\r\n"
                              " INFO[MISC]: Rebooting...";
    rshim_misc_parse(err, sizeof err - 1, &m);
    assert_string_equal(m.error, "ERR[BL2]: corrupt BFB: image #3");
    assert_false(m.ready);
    assert_true(m.rebooting);
    assert_int_equal(m.display_level, -1);
}

struct cmds {
    char text[512];
};

static void
on_cmd(void *arg, const char *key, const char *value)
{
    struct cmds *c = arg;
    size_t n = strlen(c->text);
    snprintf(c->text + n, sizeof c->text - n, "%s=%s;", key, value);
}

static void
test_misc_commands(void **state)
{
    (void) state;
    struct cmds c = {""};
    static const char t[] = "DISPLAY_LEVEL 2\nSW_RESET 1  \n"
                            "BOOT_MODE       1 (0:rshim)\n"
                            " INFO[MISC]: DPU is ready\n"
                            "-----\nVLAN_ID 1 2\nlower 1\nDROP_MODE\n";
    rshim_misc_commands(t, sizeof t - 1, on_cmd, &c);
    assert_string_equal(c.text, "DISPLAY_LEVEL=2;SW_RESET=1;VLAN_ID=1 2;"
                                "DROP_MODE=;");
}

static void
test_path_text_and_key(void **state)
{
    (void) state;
    Gnmi__PathElem e1 = GNMI__PATH_ELEM__INIT, e2 = GNMI__PATH_ELEM__INIT,
                   e3 = GNMI__PATH_ELEM__INIT;
    Gnmi__PathElem__KeyEntry k = GNMI__PATH_ELEM__KEY_ENTRY__INIT;
    e1.name = "interfaces";
    e2.name = "interface";
    k.key = "name";
    k.value = "p]0\\";
    Gnmi__PathElem__KeyEntry *keys[] = {&k};
    e2.n_key = 1;
    e2.key = keys;
    e3.name = "mtu";
    Gnmi__PathElem *elems[] = {&e1, &e2, &e3};
    Gnmi__Path p = GNMI__PATH__INIT;
    p.n_elem = 3;
    p.elem = elems;
    char buf[128];
    assert_true(dmsd_path_text(NULL, &p, buf, sizeof buf));
    assert_string_equal(buf, "/interfaces/interface[name=p\\]0\\\\]/mtu");
    char key[32];
    const char *rest;
    assert_true(dmsd_path_key(buf, "/interfaces/interface[name=", key,
                              sizeof key, &rest));
    assert_string_equal(key, "p]0\\");
    assert_string_equal(rest, "/mtu");
    /* too long: says so */
    char small[10];
    assert_false(dmsd_path_text(NULL, &p, small, sizeof small));
    assert_int_equal(strlen(small), 9);
    Gnmi__Path empty = GNMI__PATH__INIT;
    assert_true(dmsd_path_text(NULL, &empty, buf, sizeof buf));
    assert_string_equal(buf, "/");
}

static void
test_confine(void **state)
{
    (void) state;
    char why[256];
    char *p = dmsd_path_confine("/bfb/", "notes/a.txt", why, sizeof why);
    assert_string_equal(p, "/bfb/notes/a.txt");
    free(p);
    p = dmsd_path_confine("/bfb", "/bfb/x", why, sizeof why);
    assert_string_equal(p, "/bfb/x");
    free(p);
    const char *bad[] = {"../x",   "a/../../x", "/etc/x", "/bfbx/y", ".dmsd/m",
                         "notes/", "a//b",      "",       "/bfb",    "/bfb/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        assert_null(dmsd_path_confine("/bfb", bad[i], why, sizeof why));
        assert_non_null(strstr(why, bad[i]));
    }
    assert_true(dmsd_version_ok("bf-bundle-4.9.1.bfb"));
    assert_false(dmsd_version_ok("../x"));
    assert_false(dmsd_version_ok(".hidden"));
    assert_false(dmsd_version_ok(""));
}

static void
test_bytes_field(void **state)
{
    (void) state;
    uint8_t m[300] = {0x12, 0xaa, 0x02}; /* field 2, length 298 */
    assert_int_equal(dmsd_bytes_field(m, 16, 301, 2), 3);
    assert_int_equal(dmsd_bytes_field(m, 16, 300, 2), 0); /* short */
    assert_int_equal(dmsd_bytes_field(m, 16, 301, 1), 0); /* other field */
    uint8_t end[] = {0x1a, 0x00};                         /* TransferEnd */
    assert_int_equal(dmsd_bytes_field(end, 2, 2, 2), 0);
    uint8_t empty[] = {0x12, 0x00};
    assert_int_equal(dmsd_bytes_field(empty, 2, 2, 2), 2);
    /* a ten-byte varint that wraps around to the right total */
    uint8_t wrap[] = {0x12, 0xfd, 0xff, 0xff, 0xff, 0xff,
                      0xff, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(dmsd_bytes_field(wrap, sizeof wrap, sizeof wrap + 3, 2),
                     0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_misc_fields),
        cmocka_unit_test(test_misc_commands),
        cmocka_unit_test(test_path_text_and_key),
        cmocka_unit_test(test_confine),
        cmocka_unit_test(test_bytes_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
