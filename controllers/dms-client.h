/* dms-client: the DPU controller's client for DOCA Management Service
 * (dmsd, or NVIDIA's dmsd on a real host): gNMI Get/Set and gNOI
 * OS.Install, OS.Activate and System.RebootStatus over mutual TLS, from
 * gRPC core (libgrpc's C API) with the protobuf-c messages of lib/gnmi.
 *
 * Every call blocks the calling thread (a reconcile worker or an install
 * task thread) until the server answered, the call's deadline passed or
 * the cancel flag was raised; the flag is polled at least every 100 ms,
 * so a DPU deleted mid-install gets its thread back within that time
 * (the server sees the call cancelled and stays usable).
 *
 * Results: 0, or a negative errno with err filled with a message that
 * names the DPU, its host, the DMS address and the call, and says what to
 * do:
 *   -ECANCELED     the cancel flag was raised;
 *   -ETIMEDOUT     the call's deadline passed;
 *   -EAGAIN        DMS unreachable or the connection broke (pod restarting,
 *                  dmsd killed): retry later, nothing is lost on the DPU;
 *   -EACCES        the TLS handshake failed (wrong CA, certificate or
 *                  server name) or DMS refused our client certificate;
 *   -EIO           DMS answered with an error (gNOI InstallError, a gRPC
 *                  status other than the above): the message carries it;
 *   -EPROTO        the answer could not be decoded;
 *   -EINVAL/-ENOENT bad arguments, unreadable file.
 * dms_error_retriable() says which of these are worth an automatic retry.
 *
 * Threads: a client is used by one thread at a time; the cancel flag may
 * be raised from any thread. Ownership: the configuration's strings are
 * copied by dms_client_create() (the key PEM is wiped when the client is
 * destroyed and never logged). */
#ifndef DPF_CONTROLLERS_DMS_CLIENT_H
#define DPF_CONTROLLERS_DMS_CLIENT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/error.h"

/* DMS's port on a host for the DPU with this index (9339 + index). */
#define DMS_PORT_BASE 9339

struct dms_client_config {
    const char *target;   /* "IP:PORT" of the DMS pod (required) */
    const char *ca_pem;   /* CA the server certificate must chain to */
    const char *cert_pem; /* our client certificate */
    const char *key_pem;  /* and its key */
    /* Name the server certificate must carry (an IP SAN for DMS pods);
     * NULL = the host part of target. */
    const char *server_name;
    /* For messages only: "namespace/name" of the DPU and its host node
     * (NULL = left out). */
    const char *dpu;
    const char *host;
    /* Deadline of a unary call (Set, Get, Activate, RebootStatus) and of
     * each step of an install before the server has the whole file; 0 =
     * 30 s. */
    int64_t call_timeout_ms;
    /* Deadline of a whole OS.Install (transfer, then DMS validating and
     * writing to the device); 0 = 30 min, DPF's overall install bound. */
    int64_t install_timeout_ms;
    /* Raised by another thread to abandon the call in progress (and every
     * later call) with -ECANCELED. NULL = no cancellation. */
    const atomic_bool *cancel;
};

struct dms_client;

/* Create a client (the connection is made by the first call). NULL with
 * err set when the configuration is incomplete or a PEM is not valid. */
struct dms_client *dms_client_create(const struct dms_client_config *cfg,
                                     struct dpf_error *err);
/* Cancel what is in flight and free. NULL is fine. */
void dms_client_destroy(struct dms_client *c);

/* Whether an error from this module is worth retrying as it is (the
 * server or the network may recover): -EAGAIN, -ETIMEDOUT. */
bool dms_error_retriable(int rc);

/* gNMI Set: update /nvidia/mode/config/mode to "DPU" (DPF's first
 * install step). */
int dms_set_mode_dpu(struct dms_client *c, struct dpf_error *err);

/* gNMI Get of one path ("/nvidia/mode/config/mode"): *value (malloc'd,
 * NUL-terminated) is the first update's value, a string value as it is,
 * a JSON value as its JSON text. -ENOENT when DMS has no such path. */
int dms_get(struct dms_client *c, const char *path, char **value,
            struct dpf_error *err);

/* Install progress: called on the calling thread after every chunk DMS
 * took (and with TransferProgress answers), sent <= total. */
typedef void (*dms_progress_fn)(void *arg, uint64_t sent, uint64_t total);

struct dms_install {
    const char *version; /* BFB file name, or "<dpu>.cfg" for a bf.cfg */
    /* The content: a file to stream (path), or bytes in memory (data,
     * len) when path is NULL. */
    const char *path;
    const void *data;
    size_t len;
    size_t chunk;             /* bytes per content message; 0 = 64 KiB */
    dms_progress_fn progress; /* may be NULL */
    void *arg;
};

/* gNOI OS.Install: TransferRequest, then (after TransferReady) the content
 * and TransferEnd, until DMS answers Validated. When DMS already has the
 * version it answers Validated at once: nothing is sent and *already
 * (may be NULL) is set true. An InstallError gives -EIO with its type and
 * detail in err. */
int dms_install_file(struct dms_client *c, const struct dms_install *in,
                     bool *already, struct dpf_error *err);

/* gNOI OS.Activate of version ("<bfb>;<dpu>.cfg" for DPF's install);
 * no_reboot as in gNOI. An ActivateError gives -EIO. */
int dms_activate(struct dms_client *c, const char *version, bool no_reboot,
                 struct dpf_error *err);

/* gNOI System.RebootStatus (subcomponent CPU, as DPF asks). */
enum dms_reboot_result {
    DMS_REBOOT_UNKNOWN = 0,
    DMS_REBOOT_SUCCESS = 1,
    DMS_REBOOT_RETRIABLE_FAILURE = 2,
    DMS_REBOOT_FAILURE = 3,
};
/* *active: a reboot (the BFB install) is still under way; *status and
 * message (may be NULL; NUL-terminated, truncated to size) are the last
 * outcome DMS reports. */
int dms_reboot_status(struct dms_client *c, bool *active,
                      enum dms_reboot_result *status, char *message,
                      size_t size, struct dpf_error *err);

#endif
