/* dmsd: the DOCA Management Service, gNMI and gNOI over one gRPC port.
 *
 * gRPC comes from Debian's gRPC core (libgrpc, its C API) and the messages
 * from protobuf-c with our own .proto files (dmsd/proto/, OpenConfig's
 * packages, services and field numbers), so stock gNMI/gNOI clients
 * interoperate. docs/services/dms.md describes the RPCs, the files dmsd
 * keeps and how an activation reaches the rshim boot device.
 *
 * Threads: a pool (struct dmsd_pool) owns one completion queue and one
 * thread that accepts the calls of every target started in it; each call
 * runs on a thread of its own (calls are few and long: an image transfer,
 * an activation); an activation's push into the boot device runs on one
 * more. An idle target therefore costs no thread, which is what lets one
 * process serve thousands (dmsd --targets). dmsd_start() is the
 * single-target form: a pool of its own. A target's state is behind its
 * own mutex. dmsd_stop() shuts that target's server down, cancels its
 * calls in flight and joins its threads; the pool and the other targets
 * go on. */
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
    /* The same three as PEM text; each, when set, wins over its file.
     * Only read during the start call (not kept). */
    const char *ca_pem;
    const char *cert_pem;
    const char *key_pem;
    const char *name; /* the target's id in logs (--targets); NULL = none */
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
struct dmsd_pool;

/* A completion queue and the thread that accepts calls on it, shared by
 * the targets started in it. NULL with err set. */
struct dmsd_pool *dmsd_pool_create(struct dpf_error *err);
/* Join the accept thread and free the pool. Every target started in it
 * must have been stopped. NULL is allowed. */
void dmsd_pool_destroy(struct dmsd_pool *p);

/* Validate the configuration, read the persisted state, bind and start
 * serving in pool p. The configuration's strings are copied. NULL with err
 * set (what is wrong, which file or flag; a bind that fails names the
 * address and the system's reason). Any thread: targets of one pool may
 * be started and stopped concurrently. */
struct dmsd *dmsd_start_in(struct dmsd_pool *p, const struct dmsd_config *cfg,
                           struct dpf_error *err);
/* dmsd_start_in() in a pool of its own, which dmsd_stop() destroys. */
struct dmsd *dmsd_start(const struct dmsd_config *cfg, struct dpf_error *err);
/* Stop serving: cancel the calls in flight, wait for their threads and the
 * activation's, close the port and release everything of this target.
 * NULL is allowed. */
void dmsd_stop(struct dmsd *s);
/* The port actually bound (for ":0"). */
int dmsd_port(const struct dmsd *s);

#endif
