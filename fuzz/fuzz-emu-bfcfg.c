/* Fuzz target for dpf-emu/emu-bfcfg: the bf.cfg an emulated DPU applies
 * (a bash file with a cloud-config here-document). Any bytes: the parse
 * either fails with a message or yields files whose paths are absolute
 * without "..", modes within 07777, and join fields only with a join
 * line; parsing twice gives the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dpf-emu/emu-bfcfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const struct emu_bfcfg *c)
{
    for (size_t i = 0; i < c->n_files; i++) {
        const struct emu_bfcfg_file *f = &c->files[i];
        if (f->path[0] != '/' || strstr(f->path, "/../") ||
            (strlen(f->path) >= 3 &&
             !strcmp(f->path + strlen(f->path) - 3, "/..")) ||
            f->mode > 07777) {
            abort();
        }
    }
    if ((c->join_endpoint || c->join_token || c->join_ca_hash) &&
        !c->join_line) {
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct emu_bfcfg a, b;
    struct dpf_error ea = {0}, eb = {0};
    int ra = emu_bfcfg_parse((const char *) data, size, &a, &ea);
    int rb = emu_bfcfg_parse((const char *) data, size, &b, &eb);
    if (ra != rb ||
        (ra < 0 && (!ea.message[0] || strcmp(ea.message, eb.message)))) {
        abort();
    }
    if (ra == 0) {
        check(&a);
        if (a.n_files != b.n_files || !a.hostname != !b.hostname ||
            (a.hostname && strcmp(a.hostname, b.hostname)) ||
            !a.join_line != !b.join_line) {
            abort();
        }
    }
    emu_bfcfg_free(&a);
    emu_bfcfg_free(&b);
    return 0;
}
