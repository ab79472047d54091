/* Fuzz target for dmsd --targets' control lines (dmsd/dmsd-targets.h):
 * any bytes parse or are refused with a reason; an accepted line has a
 * printable id, an op, and for an add every required field as a non-empty
 * string; a refused one still names a valid id when it gave one. The
 * reply a refused line gets is built too (it must stay one JSON line). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmsd/dmsd-targets.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* not assert(): the release build defines NDEBUG */
#define CHECK(x)     \
    do {             \
        if (!(x)) {  \
            abort(); \
        }            \
    } while (0)

static void
check_id(const char *id)
{
    size_t n = strlen(id);
    CHECK(n > 0 && n <= 253);
    for (size_t i = 0; i < n; i++) {
        CHECK((unsigned char) id[i] >= 0x20 && id[i] != 0x7f);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > DMSD_CTL_LINE_MAX) {
        return 0;
    }
    struct dmsd_ctl ctl;
    char why[256];
    why[0] = '\0';
    int rc = dmsd_ctl_parse(&ctl, (const char *) data, size, why, sizeof why);
    if (ctl.id) {
        check_id(ctl.id);
    }
    if (rc < 0) {
        CHECK(rc == -EINVAL);
        CHECK(why[0] != '\0');
    } else {
        CHECK(ctl.id);
        CHECK(ctl.op == DMSD_CTL_ADD || ctl.op == DMSD_CTL_REMOVE);
        if (ctl.op == DMSD_CTL_ADD) {
            const char *req[] = {ctl.cfg.bind_address, ctl.cfg.ca_pem,
                                 ctl.cfg.cert_pem,     ctl.cfg.key_pem,
                                 ctl.cfg.rshim,        ctl.cfg.image_folder};
            for (size_t i = 0; i < ARRAY_SIZE(req); i++) {
                CHECK(req[i] && req[i][0]);
            }
            CHECK(ctl.cfg.auth == DMSD_AUTH_CERT);
            CHECK(ctl.cfg.name == ctl.id);
        } else {
            CHECK(!ctl.cfg.bind_address && !ctl.cfg.rshim);
        }
    }
    dmsd_ctl_clear(&ctl);
    /* the reply to a line that is too long, for good measure */
    struct dbuf out;
    dbuf_init(&out);
    dmsd_targets_too_long(size, &out);
    CHECK(out.len > 0 && out.data[out.len - 1] == '\n');
    CHECK(!memchr(out.data, '\n', out.len - 1));
    dbuf_free(&out);
    return 0;
}
