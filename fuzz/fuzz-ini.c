/* Fuzz target for lib/ini: any byte string either parses (and every
 * accessor works on the result) or fails with a line-numbered error. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/ini.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dpf_error err;
    dpf_error_clear(&err);
    struct ini *ini = ini_parse((const char *) data, size, "fuzz", &err);
    if (!ini) {
        if (!dpf_error_is_set(&err) || strncmp(err.message, "fuzz:", 5)) {
            abort();
        }
        return 0;
    }
    for (size_t i = 0; i < ini->n_entries; i++) {
        const struct ini_entry *e = &ini->entries[i];
        if (!e->key[0] || e->line == 0) {
            abort();
        }
        const char *v = ini_get(ini, e->section, e->key);
        if (!v) {
            abort();
        }
        bool b;
        long l;
        (void) ini_parse_bool(v, &b);
        (void) ini_parse_long(v, -1000, 1000, &l);
    }
    for (size_t i = 0; i < ini->n_sections; i++) {
        if (!ini_has_section(ini, ini->sections[i])) {
            abort();
        }
    }
    ini_free(ini);
    return 0;
}
