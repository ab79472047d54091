/* Fuzz target for lib/codecs/rshim-misc: the misc text dmsd reads from a
 * device (status keys and the boot log) and the commands the emulated
 * device reads from clients. Any bytes: every field stays NUL-terminated
 * within its array, keys and values handed to the command callback are
 * within their documented lengths, and parsing twice gives the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/codecs/rshim-misc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK_FIELD(f)                       \
    do {                                     \
        if (!memchr((f), '\0', sizeof(f))) { \
            abort();                         \
        }                                    \
    } while (0)

static void
on_command(void *arg, const char *key, const char *value)
{
    size_t *n = arg;
    size_t kl = strlen(key), vl = strlen(value);
    if (kl == 0 || kl > 31 || vl > 127) {
        abort();
    }
    for (size_t i = 0; i < kl; i++) {
        if (!((key[i] >= 'A' && key[i] <= 'Z') || key[i] == '_')) {
            abort();
        }
    }
    if (vl && (value[0] == ' ' || value[vl - 1] == ' ')) {
        abort(); /* trimmed */
    }
    (*n)++;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct rshim_misc a, b;
    rshim_misc_parse((const char *) data, size, &a);
    rshim_misc_parse((const char *) data, size, &b);
    if (memcmp(&a, &b, sizeof a) != 0) {
        abort();
    }
    CHECK_FIELD(a.dev_name);
    CHECK_FIELD(a.dev_info);
    CHECK_FIELD(a.opn);
    CHECK_FIELD(a.bf_mode);
    CHECK_FIELD(a.error);
    CHECK_FIELD(a.bfb_version);
    if (a.rebooting && a.log_lines == 0) {
        abort();
    }
    size_t n = 0;
    rshim_misc_commands((const char *) data, size, on_command, &n);
    return 0;
}
