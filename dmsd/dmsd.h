/* dmsd: the DOCA Management Service, gNMI and gNOI over one gRPC port.
 *
 * gRPC comes from Debian's gRPC core (libgrpc, its C API) and the messages
 * from protobuf-c with our own .proto files (dmsd/proto/, OpenConfig's
 * packages, services and field numbers), so stock gNMI/gNOI clients
 * interoperate. docs/services/dms.md describes the RPCs, the files dmsd
 * keeps and how an activation reaches the rshim boot device.
 *
 * Threads: dmsd_start() starts one thread that accepts calls; each call
 * runs on a thread of its own (calls are few and long: an image transfer,
 * an activation); an activation's push into the boot device runs on one
 * more. Shared state is behind one mutex. dmsd_stop() shuts the server
 * down, cancels calls in flight and joins every thread. */
#ifndef DMSD_DMSD_H
#define DMSD_DMSD_H

#include <stdbool.h>
#include <stdint.h>

#include "lib/base/error.h"

enum dmsd_auth {
    DMSD_AUTH_CERT,        /* mutual TLS: a client certificate from -ca */
    DMSD_AUTH_CREDENTIALS, /* TLS plus username/password metadata */
    DMSD_AUTH_NONE,        /* plaintext, loopback only */
};

struct dmsd_config {
    const char *bind_address; /* "0.0.0.0:9339" */
    enum dmsd_auth auth;
    const char *ca;            /* PEM CA file (client certificates) */
    const char *tls_cert_file; /* server certificate (PEM) */
    const char *tls_key_file;  /* server key (PEM) */
    const char *username;
    const char *password;
    const char *allowed_users; /* comma-separated, NULL = anyone
                                  authenticated */
    const char *image_folder;  /* installed images and bf.cfg files */
    const char *state_dir;     /* NULL = <image_folder>/.dmsd */
    const char *rshim;         /* the rshim device directory */
    const char *target_pci;    /* the DPU's PCI bus:device ("4b:00"); NULL =
                                  the address in misc's DEV_NAME */
    const char *sysfs;         /* where the host's sysfs is ("/sys"): the
                                  DPU's ports and firmware version */
    int64_t exec_timeout_ms;   /* how long an activation may take */
};

struct dmsd;

/* Validate the configuration, read the persisted state, bind and start
 * serving. NULL with err set (what is wrong, which file or flag). */
struct dmsd *dmsd_start(const struct dmsd_config *cfg, struct dpf_error *err);
/* Stop serving and release everything. NULL is allowed. */
void dmsd_stop(struct dmsd *s);
/* The port actually bound (for ":0"). */
int dmsd_port(const struct dmsd *s);

#endif
