/* dmsd-install-client: one gNOI OS.Install over mutual TLS from gRPC core,
 * for bench/dmsd-bench.py. The Python client spends a core of its own on
 * every 64 KiB message; this one is the DPU controller's DMS client
 * (controllers/dms-client.h), which reads each chunk straight into a
 * buffer that already has room for the field header, so the figure it
 * gives is dmsd's (and gRPC's), not the client's.
 *
 * usage: dmsd-install-client ADDR CA CERT KEY FILE VERSION [CHUNK]
 * prints "bytes seconds" and exits 0 when the server answered Validated. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "controllers/dms-client.h"
#include "lib/base/util.h"

static void
on_progress(void *arg, uint64_t sent, uint64_t total)
{
    *(uint64_t *) arg = sent;
}

int
main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: %s ADDR CA CERT KEY FILE VERSION [CHUNK]\n",
                argv[0]);
        return 2;
    }
    char *pem[3];
    size_t n;
    for (int i = 0; i < 3; i++) {
        if (file_read_all(argv[2 + i], &pem[i], &n) < 0) {
            fprintf(stderr, "cannot read %s\n", argv[2 + i]);
            return 2;
        }
    }
    struct dpf_error err = {0};
    struct dms_client_config cfg = {.target = argv[1],
                                    .ca_pem = pem[0],
                                    .cert_pem = pem[1],
                                    .key_pem = pem[2]};
    struct dms_client *c = dms_client_create(&cfg, &err);
    if (!c) {
        fprintf(stderr, "%s\n", err.message);
        return 2;
    }
    uint64_t sent = 0;
    struct dms_install in = {
        .version = argv[6],
        .path = argv[5],
        .chunk = argc > 7 ? strtoul(argv[7], NULL, 0) : 0,
        .progress = on_progress,
        .arg = &sent,
    };
    int64_t t0 = time_mono_ns();
    int rc = dms_install_file(c, &in, NULL, &err);
    double secs = (double) (time_mono_ns() - t0) / 1e9;
    if (rc < 0) {
        fprintf(stderr, "%s\n", err.message);
    }
    printf("%" PRIu64 " %.3f\n", sent, secs);
    dms_client_destroy(c);
    for (int i = 0; i < 3; i++) {
        free(pem[i]);
    }
    return rc < 0 ? 1 : 0;
}
