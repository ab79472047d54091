/* Fuzz target for dmsd/dmsd-parse: what dmsd reads from gRPC clients.
 * The same bytes are tried as
 *  - a gnmi.GetRequest: every path turns into text that fits or says it
 *    does not, and an interface key written into a path reads back the same;
 *  - a File-service path: a path that is accepted lies inside the image
 *    folder, with no ".", ".." or hidden component;
 *  - an InstallRequest: when the header look says "one transfer_content
 *    field" protobuf-c must agree, byte for byte. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmsd/dmsd-parse.h"
#include "gnoi_os.pb-c.h"
#include "lib/base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FOLDER "/srv/dms/bfb"

static void
check_paths(const uint8_t *data, size_t size)
{
    Gnmi__GetRequest *req = gnmi__get_request__unpack(NULL, size, data);
    if (!req) {
        return;
    }
    for (size_t i = 0; i < req->n_path; i++) {
        char buf[512];
        bool fits = dmsd_path_text(req->prefix, req->path[i], buf, sizeof buf);
        size_t n = strnlen(buf, sizeof buf);
        if (n == sizeof buf || (fits && n == 0)) {
            abort();
        }
        /* one interface element with a name key: the key reads back */
        const Gnmi__Path *p = req->path[i];
        if (!req->prefix && p->n_elem == 2 && p->n_element == 0 &&
            !strcmp(p->elem[0]->name, "interfaces") &&
            !strcmp(p->elem[1]->name, "interface") && p->elem[0]->n_key == 0 &&
            p->elem[1]->n_key == 1 &&
            !strcmp(p->elem[1]->key[0]->key, "name") &&
            *p->elem[1]->key[0]->value && fits) {
            char key[512];
            const char *rest = NULL;
            if (!dmsd_path_key(buf, "/interfaces/interface[name=", key,
                               sizeof key, &rest) ||
                strcmp(key, p->elem[1]->key[0]->value) != 0 || *rest) {
                abort();
            }
        }
    }
    gnmi__get_request__free_unpacked(req, NULL);
}

static void
check_confine(const uint8_t *data, size_t size)
{
    char *remote = xmalloc(size + 1);
    memcpy(remote, data, size);
    remote[size] = '\0';
    char why[512];
    char *full = dmsd_path_confine(FOLDER, remote, why, sizeof why);
    if (full) {
        if (strncmp(full, FOLDER "/", sizeof FOLDER) != 0) {
            abort();
        }
        for (const char *p = full + sizeof FOLDER - 1; *p; p++) {
            /* every component starts after a '/' and not with '.' */
            if (p[0] == '/' && (p[1] == '/' || p[1] == '.' || p[1] == '\0')) {
                abort();
            }
        }
        free(full);
    } else if (!memchr(why, '\0', sizeof why) || !*why) {
        abort();
    }
    free(remote);
    (void) dmsd_version_ok(NULL);
}

static void
check_install(const uint8_t *data, size_t size)
{
    size_t hdr = dmsd_bytes_field(data, DPF_MIN(size, (size_t) 16), size, 2);
    if (!hdr) {
        return;
    }
    Gnoi__Os__InstallRequest *r =
        gnoi__os__install_request__unpack(NULL, size, data);
    if (!r ||
        r->request_case !=
            GNOI__OS__INSTALL_REQUEST__REQUEST_TRANSFER_CONTENT ||
        r->transfer_content.len != size - hdr ||
        (r->transfer_content.len &&
         memcmp(r->transfer_content.data, data + hdr, size - hdr) != 0)) {
        abort();
    }
    gnoi__os__install_request__free_unpacked(r, NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_paths(data, size);
    check_confine(data, size);
    check_install(data, size);
    return 0;
}
