/* dmsd: gNMI and gNOI over gRPC core (see dmsd.h). */
#include "dmsd/dmsd.h"
#include "dmsd/dmsd-parse.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "gnmi.pb-c.h"
#include "gnoi_file.pb-c.h"
#include "gnoi_os.pb-c.h"
#include "gnoi_system.pb-c.h"
#include "lib/base/log.h"
#include "lib/base/thread.h"
#include "lib/base/util.h"
#include "lib/codecs/bfb.h"
#include "lib/codecs/rshim-misc.h"

LOG_MODULE(dmsd);

#define DMSD_CHUNK (1024 * 1024)
#define DMSD_PROGRESS_EVERY (8 * 1024 * 1024)
#define DMSD_CFG_MAX (1024 * 1024)
/* gRPC's per-stream receive window and the largest message accepted: a
 * client sends 64 KiB chunks; 2 MiB leaves room for a bigger one */
#define DMSD_WINDOW (1024 * 1024)
#define DMSD_MAX_MESSAGE (2 * 1024 * 1024)
#define DMSD_MODE_PATH "/nvidia/mode/config/mode"

enum act_phase {
    ACT_IDLE,
    ACT_PUSHING, /* writing the image and cfg into boot */
    ACT_WAITING, /* written; waiting for the DPU to come up */
    ACT_DONE,
    ACT_FAILED,
    ACT_REBOOTING, /* System.Reboot: waiting out its delay, then SW_RESET */
};

static const char *const act_names[] = {"idle", "pushing", "waiting",
                                        "done", "failed",  "rebooting"};

static bool
act_busy(enum act_phase p)
{
    return p == ACT_PUSHING || p == ACT_WAITING || p == ACT_REBOOTING;
}

/* The completion queue on which every target of the pool learns of new
 * calls (grpc_server_request_call's tag is the struct call, which names
 * its target), and the one thread that waits on it. */
struct dmsd_pool {
    grpc_completion_queue *cq;
    pthread_t accept_thread;
    bool accept_started;
};

struct dmsd {
    struct dmsd_config cfg; /* strings owned (see config_copy) */
    char *state_dir;
    struct dmsd_pool *pool;
    bool own_pool; /* dmsd_start(): the pool goes with the target */
    grpc_server *server;
    int port;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned calls;    /* call threads alive */
    unsigned requests; /* grpc_server_request_call()s whose event the
                          accept thread has not finished with: the target
                          must outlive them */
    bool stopping;
    bool installing;
    char mode[8]; /* "DPU" or "NIC" */
    /* the activation, persisted in <state_dir>/activation.json */
    enum act_phase phase;
    int status; /* Gnoi__System__RebootStatus__Status */
    char act_image[256];
    char act_cfg[256];
    char act_message[1024];
    char act_version[256]; /* the BFB's version, recorded when it is up */
    char installed_version[256];
    int act_method;        /* Gnoi__System__RebootMethod of the last */
    uint64_t reboot_at_ns; /* when a delayed Reboot resets the DPU */
    char reboot_message[256];
    unsigned act_count;
    uint64_t act_when_ns;
    pthread_t push_thread;
    bool push_started;
};

/* --- small helpers --------------------------------------------------- */

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static char *
image_path(struct dmsd *s, const char *version)
{
    return xasprintf("%s/%s", s->cfg.image_folder, version);
}

/* Caller holds mu. */
static void
save_activation(struct dmsd *s)
{
    json_t *j = json_pack(
        "{s:s, s:i, s:s, s:s, s:s, s:s, s:i, s:I, s:i}", "phase",
        act_names[s->phase], "status", s->status, "image", s->act_image, "cfg",
        s->act_cfg, "message", s->act_message, "installedVersion",
        s->installed_version, "count", (int) s->act_count, "when",
        (json_int_t) s->act_when_ns, "method", s->act_method);
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    char *path = xasprintf("%s/activation.json", s->state_dir);
    int rc = file_write_atomic(path, text, strlen(text), 0600);
    if (rc < 0) {
        log_error("cannot save the activation state", "path=%s error=\"%s\"",
                  path, strerror(-rc));
    }
    free(path);
    free(text);
    json_decref(j);
}

static void
load_state(struct dmsd *s)
{
    char *path = xasprintf("%s/activation.json", s->state_dir);
    char *text;
    size_t len;
    if (file_read_all(path, &text, &len) == 0) {
        json_t *j = json_loadb(text, len, 0, NULL);
        const char *phase = json_string_value(json_object_get(j, "phase"));
        snprintf(s->act_image, sizeof s->act_image, "%s",
                 json_string_value(json_object_get(j, "image"))
                     ? json_string_value(json_object_get(j, "image"))
                     : "");
        snprintf(s->act_cfg, sizeof s->act_cfg, "%s",
                 json_string_value(json_object_get(j, "cfg"))
                     ? json_string_value(json_object_get(j, "cfg"))
                     : "");
        const char *iv =
            json_string_value(json_object_get(j, "installedVersion"));
        snprintf(s->installed_version, sizeof s->installed_version, "%s",
                 iv ? iv : "");
        const char *msg = json_string_value(json_object_get(j, "message"));
        snprintf(s->act_message, sizeof s->act_message, "%s", msg ? msg : "");
        s->status = (int) json_integer_value(json_object_get(j, "status"));
        s->act_count =
            (unsigned) json_integer_value(json_object_get(j, "count"));
        s->act_when_ns =
            (uint64_t) json_integer_value(json_object_get(j, "when"));
        s->phase = ACT_IDLE;
        for (int i = 0; i < (int) ARRAY_SIZE(act_names); i++) {
            if (phase && !strcmp(phase, act_names[i])) {
                s->phase = (enum act_phase) i;
            }
        }
        s->act_method = (int) json_integer_value(json_object_get(j, "method"));
        if (s->phase == ACT_REBOOTING ||
            (s->phase == ACT_WAITING && !*s->act_image)) {
            s->phase = ACT_FAILED;
            s->status =
                GNOI__SYSTEM__REBOOT_STATUS__STATUS__STATUS_RETRIABLE_FAILURE;
            snprintf(s->act_message, sizeof s->act_message,
                     "dmsd restarted during a System.Reboot of the DPU; "
                     "whether it came up is unknown: reboot again");
            save_activation(s);
            log_warn("reboot interrupted by a restart", "rshim=%s",
                     s->cfg.rshim);
        } else if (s->phase == ACT_PUSHING || s->phase == ACT_WAITING) {
            /* we died in the middle: the DPU got a partial stream or we do
             * not know how it ended; the client may simply activate again */
            s->phase = ACT_FAILED;
            s->status =
                GNOI__SYSTEM__REBOOT_STATUS__STATUS__STATUS_RETRIABLE_FAILURE;
            snprintf(s->act_message, sizeof s->act_message,
                     "dmsd restarted while activating %s; the push into the "
                     "rshim boot device did not finish: activate again",
                     s->act_image);
            save_activation(s);
            log_warn("activation interrupted by a restart", "image=%s",
                     s->act_image);
        }
        json_decref(j);
        free(text);
    }
    free(path);
    path = xasprintf("%s/mode", s->state_dir);
    if (file_read_all(path, &text, &len) == 0) {
        if (!strncmp(text, "NIC", 3) || !strncmp(text, "DPU", 3)) {
            snprintf(s->mode, sizeof s->mode, "%.3s", text);
        }
        free(text);
    }
    free(path);
}

/* --- one call -------------------------------------------------------- */

struct call {
    struct dmsd *s;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    grpc_completion_queue *cq; /* pluck queue of this call */
    bool sent_md;
    char method[128];
    char user[128]; /* who: certificate CN or username */
};

static bool
batch(struct call *c, grpc_op *ops, size_t n)
{
    if (grpc_call_start_batch(c->call, ops, n, c, NULL) != GRPC_CALL_OK) {
        return false;
    }
    grpc_event ev = grpc_completion_queue_pluck(
        c->cq, c, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    return ev.type == GRPC_OP_COMPLETE && ev.success;
}

/* 1 with a message in *out (free()), 0 at the end of the client's stream,
 * -1 when the call broke. */
static int
recv_msg(struct call *c, uint8_t **out, size_t *len)
{
    grpc_byte_buffer *bb = NULL;
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &bb;
    if (!batch(c, &op, 1)) {
        return -1;
    }
    if (!bb) {
        return 0;
    }
    grpc_byte_buffer_reader r;
    if (!grpc_byte_buffer_reader_init(&r, bb)) {
        grpc_byte_buffer_destroy(bb);
        return -1;
    }
    grpc_slice sl = grpc_byte_buffer_reader_readall(&r);
    *len = GRPC_SLICE_LENGTH(sl);
    *out = xmalloc(*len + 1);
    memcpy(*out, GRPC_SLICE_START_PTR(sl), *len);
    grpc_slice_unref(sl);
    grpc_byte_buffer_reader_destroy(&r);
    grpc_byte_buffer_destroy(bb);
    return 1;
}

/* Receive one message and keep it as gRPC's slices (no copy): 1 with *out
 * (grpc_byte_buffer_destroy() it), 0 at the end of the client's stream,
 * -1 when the call broke. */
static int
recv_buffer(struct call *c, grpc_byte_buffer **out)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = out;
    *out = NULL;
    if (!batch(c, &op, 1)) {
        return -1;
    }
    return *out ? 1 : 0;
}

/* A message's bytes as an iovec over gRPC's slices, no copy. */
struct slices {
    grpc_byte_buffer_reader r;
    struct iovec *iov;
    size_t n, cap, total;
};

static bool
slices_open(struct slices *sv, grpc_byte_buffer *bb)
{
    memset(sv, 0, sizeof *sv);
    if (!grpc_byte_buffer_reader_init(&sv->r, bb)) {
        return false;
    }
    grpc_slice *sl;
    while (grpc_byte_buffer_reader_peek(&sv->r, &sl)) {
        if (sv->n == sv->cap) {
            sv->cap = sv->cap ? sv->cap * 2 : 16;
            sv->iov = xrealloc(sv->iov, sv->cap * sizeof *sv->iov);
        }
        sv->iov[sv->n].iov_base = GRPC_SLICE_START_PTR(*sl);
        sv->iov[sv->n].iov_len = GRPC_SLICE_LENGTH(*sl);
        sv->total += GRPC_SLICE_LENGTH(*sl);
        sv->n++;
    }
    return true;
}

static void
slices_close(struct slices *sv)
{
    grpc_byte_buffer_reader_destroy(&sv->r);
    free(sv->iov);
}

/* Drop the first k bytes of the iovec (the protobuf field header). */
static void
slices_skip(struct slices *sv, size_t k)
{
    size_t i = 0;
    sv->total -= DPF_MIN(k, sv->total);
    while (i < sv->n && k >= sv->iov[i].iov_len) {
        k -= sv->iov[i].iov_len;
        i++;
    }
    if (i < sv->n) {
        sv->iov[i].iov_base = (uint8_t *) sv->iov[i].iov_base + k;
        sv->iov[i].iov_len -= k;
    }
    memmove(sv->iov, sv->iov + i, (sv->n - i) * sizeof *sv->iov);
    sv->n -= i;
}

/* Copy the whole message into one buffer (the slow path). */
static uint8_t *
slices_flatten(const struct slices *sv)
{
    uint8_t *buf = xmalloc(sv->total + 1), *p = buf;
    for (size_t i = 0; i < sv->n; i++) {
        memcpy(p, sv->iov[i].iov_base, sv->iov[i].iov_len);
        p += sv->iov[i].iov_len;
    }
    return buf;
}

/* dmsd_bytes_field() on the first bytes of the slices. */
static size_t
slices_bytes_field(const struct slices *sv, unsigned field)
{
    uint8_t h[16];
    size_t have = 0;
    for (size_t i = 0; i < sv->n && have < sizeof h; i++) {
        size_t k = DPF_MIN(sv->iov[i].iov_len, sizeof h - have);
        memcpy(h + have, sv->iov[i].iov_base, k);
        have += k;
    }
    return dmsd_bytes_field(h, have, sv->total, field);
}

/* write() the whole iovec, resuming after short writes. */
static int
slices_write(int fd, struct slices *sv)
{
    struct iovec *iov = sv->iov;
    size_t n = sv->n;
    while (n) {
        ssize_t w = writev(fd, iov, (int) DPF_MIN(n, (size_t) IOV_MAX));
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w < 0) {
            return -errno;
        }
        size_t k = (size_t) w;
        while (n && k >= iov->iov_len) {
            k -= iov->iov_len;
            iov++;
            n--;
        }
        if (n) {
            iov->iov_base = (uint8_t *) iov->iov_base + k;
            iov->iov_len -= k;
        }
    }
    return 0;
}

static bool
send_packed(struct call *c, const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    uint8_t *buf = xmalloc(n ? n : 1);
    protobuf_c_message_pack(m, buf);
    grpc_slice sl = grpc_slice_from_copied_buffer((const char *) buf, n);
    free(buf);
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    grpc_op ops[2];
    memset(ops, 0, sizeof ops);
    size_t k = 0;
    if (!c->sent_md) {
        ops[k++].op = GRPC_OP_SEND_INITIAL_METADATA;
        c->sent_md = true;
    }
    ops[k].op = GRPC_OP_SEND_MESSAGE;
    ops[k++].data.send_message.send_message = bb;
    bool ok = batch(c, ops, k);
    grpc_byte_buffer_destroy(bb);
    return ok;
}

/* End the call with a status (and optionally a last message). */
__attribute__((format(printf, 4, 5))) static void
finish(struct call *c, const ProtobufCMessage *last, grpc_status_code code,
       const char *fmt, ...)
{
    if (last && !send_packed(c, last)) {
        code = GRPC_STATUS_CANCELLED;
    }
    char msg[1024] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
    }
    grpc_slice details = grpc_slice_from_copied_string(msg);
    int cancelled = 0;
    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    size_t k = 0;
    if (!c->sent_md) {
        ops[k++].op = GRPC_OP_SEND_INITIAL_METADATA;
        c->sent_md = true;
    }
    ops[k].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[k].data.send_status_from_server.status = code;
    ops[k++].data.send_status_from_server.status_details = &details;
    ops[k].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[k++].data.recv_close_on_server.cancelled = &cancelled;
    batch(c, ops, k);
    grpc_slice_unref(details);
    if (code != GRPC_STATUS_OK) {
        log_info("call refused", "method=%s user=\"%s\" code=%d message=\"%s\"",
                 c->method, c->user, (int) code, msg);
    }
}

/* Unpack the one request of a unary call, or finish the call. */
static void *
recv_unary(struct call *c, const ProtobufCMessageDescriptor *d)
{
    uint8_t *buf;
    size_t len;
    int rc = recv_msg(c, &buf, &len);
    if (rc <= 0) {
        finish(c, NULL, GRPC_STATUS_INVALID_ARGUMENT, "%s: no request message",
               c->method);
        return NULL;
    }
    void *m = protobuf_c_message_unpack(d, NULL, len, buf);
    free(buf);
    if (!m) {
        finish(c, NULL, GRPC_STATUS_INVALID_ARGUMENT,
               "%s: the request is not a valid %s message", c->method, d->name);
    }
    return m;
}

/* --- authentication -------------------------------------------------- */

static const char *
md_value(struct call *c, const char *key, char *buf, size_t size)
{
    for (size_t i = 0; i < c->md.count; i++) {
        grpc_slice k = c->md.metadata[i].key;
        if (GRPC_SLICE_LENGTH(k) == strlen(key) &&
            !memcmp(GRPC_SLICE_START_PTR(k), key, strlen(key))) {
            grpc_slice v = c->md.metadata[i].value;
            snprintf(buf, size, "%.*s", (int) GRPC_SLICE_LENGTH(v),
                     (const char *) GRPC_SLICE_START_PTR(v));
            return buf;
        }
    }
    return NULL;
}

static bool
user_allowed(const struct dmsd *s, const char *user)
{
    if (!s->cfg.allowed_users || !*s->cfg.allowed_users) {
        return true;
    }
    size_t n = strlen(user);
    for (const char *p = s->cfg.allowed_users; *p;) {
        const char *e = strchr(p, ',');
        size_t k = e ? (size_t) (e - p) : strlen(p);
        if (k == n && !strncmp(p, user, n)) {
            return true;
        }
        p += k + (e ? 1 : 0);
    }
    return false;
}

/* True if the call may proceed; else it was finished with the reason. */
static bool
authorize(struct call *c)
{
    struct dmsd *s = c->s;
    char u[128], p[128];
    if (s->cfg.auth == DMSD_AUTH_CERT) {
        grpc_auth_context *ctx = grpc_call_auth_context(c->call);
        grpc_auth_property_iterator it =
            grpc_auth_context_find_properties_by_name(
                ctx, GRPC_X509_CN_PROPERTY_NAME);
        const grpc_auth_property *prop = grpc_auth_property_iterator_next(&it);
        if (prop) {
            snprintf(c->user, sizeof c->user, "%.*s", (int) prop->value_length,
                     prop->value);
        }
        grpc_auth_context_release(ctx);
        if (!prop) {
            finish(c, NULL, GRPC_STATUS_UNAUTHENTICATED,
                   "a client certificate is required (-auth cert)");
            return false;
        }
    } else if (s->cfg.auth == DMSD_AUTH_CREDENTIALS) {
        const char *user = md_value(c, "username", u, sizeof u);
        const char *pass = md_value(c, "password", p, sizeof p);
        if (!user || !pass) {
            finish(c, NULL, GRPC_STATUS_UNAUTHENTICATED,
                   "username and password metadata are required "
                   "(-auth credentials)");
            return false;
        }
        snprintf(c->user, sizeof c->user, "%s", user);
        if (strcmp(user, s->cfg.username ? s->cfg.username : "") != 0 ||
            strcmp(pass, s->cfg.password ? s->cfg.password : "") != 0) {
            finish(c, NULL, GRPC_STATUS_UNAUTHENTICATED,
                   "wrong username or password for \"%s\"", user);
            return false;
        }
    } else {
        const char *user = md_value(c, "username", u, sizeof u);
        snprintf(c->user, sizeof c->user, "%s", user ? user : "");
    }
    if (!user_allowed(s, c->user)) {
        finish(c, NULL, GRPC_STATUS_PERMISSION_DENIED,
               "user \"%s\" is not in -allowed_users", c->user);
        return false;
    }
    return true;
}

/* --- gNMI ------------------------------------------------------------ */

static void
gnmi_capabilities(struct call *c)
{
    Gnmi__CapabilityRequest *req =
        recv_unary(c, &gnmi__capability_request__descriptor);
    if (!req) {
        return;
    }
    gnmi__capability_request__free_unpacked(req, NULL);
    Gnmi__ModelData md = GNMI__MODEL_DATA__INIT;
    md.name = "nvidia-mode";
    md.organization = "NVIDIA";
    md.version = "1.0.0";
    Gnmi__ModelData *models[] = {&md};
    Gnmi__Encoding enc[] = {GNMI__ENCODING__JSON, GNMI__ENCODING__JSON_IETF,
                            GNMI__ENCODING__ASCII};
    Gnmi__CapabilityResponse resp = GNMI__CAPABILITY_RESPONSE__INIT;
    resp.n_supported_models = 1;
    resp.supported_models = models;
    resp.n_supported_encodings = ARRAY_SIZE(enc);
    resp.supported_encodings = enc;
    resp.gnmi_version = "0.7.0";
    finish(c, &resp.base, GRPC_STATUS_OK, NULL);
}

/* The string a TypedValue carries (string, ascii or a JSON string). */
static bool
typed_string(const Gnmi__TypedValue *v, char *out, size_t size)
{
    if (!v) {
        return false;
    }
    switch (v->value_case) {
    case GNMI__TYPED_VALUE__VALUE_STRING_VAL:
        snprintf(out, size, "%s", v->string_val);
        return true;
    case GNMI__TYPED_VALUE__VALUE_ASCII_VAL:
        snprintf(out, size, "%s", v->ascii_val);
        return true;
    case GNMI__TYPED_VALUE__VALUE_JSON_VAL:
    case GNMI__TYPED_VALUE__VALUE_JSON_IETF_VAL: {
        ProtobufCBinaryData d =
            v->value_case == GNMI__TYPED_VALUE__VALUE_JSON_VAL
                ? v->json_val
                : v->json_ietf_val;
        json_t *j =
            json_loadb((const char *) d.data, d.len, JSON_DECODE_ANY, NULL);
        bool ok = json_is_string(j);
        if (ok) {
            snprintf(out, size, "%s", json_string_value(j));
        }
        json_decref(j);
        return ok;
    }
    default:
        return false;
    }
}

/* --- the values gNMI serves ------------------------------------------ */

/* dmsd_path_text(); a path too long for buf is marked so that it can
 * match nothing served. */
static void
path_text(const Gnmi__Path *prefix, const Gnmi__Path *path, char *buf,
          size_t size)
{
    static const char mark[] = " ...(path too long)";
    if (!dmsd_path_text(prefix, path, buf, size) && size > sizeof mark) {
        memcpy(buf + size - sizeof mark, mark, sizeof mark);
    }
}

#define DMSD_COMPONENT "/components/component[name=DPU]/state/"
#define DMSD_IFACE "/interfaces/interface[name="
/* for NOT_FOUND messages: what a client may ask for */
static const char dmsd_paths[] = DMSD_MODE_PATH
    ", /nvidia/mode/state/mode, /nvidia/os/state/version, "
    "/components/component[name=DPU]/state/{id,description,part-no,"
    "firmware-version,software-version}, /interfaces/interface[name=PORT]/"
    "state/{oper-status,mtu}, /interfaces/interface[name=PORT]/config/mtu";

struct gvalue {
    char text[256];
    bool is_uint; /* mtu: uint_val; everything else string_val */
    uint64_t u;
};

static void
gvalue_typed(const struct gvalue *g, Gnmi__TypedValue *v)
{
    if (g->is_uint) {
        v->value_case = GNMI__TYPED_VALUE__VALUE_UINT_VAL;
        v->uint_val = g->u;
    } else {
        v->value_case = GNMI__TYPED_VALUE__VALUE_STRING_VAL;
        v->string_val = (char *) g->text;
    }
}

/* The first line of a small file, trimmed; false if it cannot be read. */
static bool
read_line(const char *path, char *out, size_t size)
{
    char *text;
    size_t len;
    if (file_read_all(path, &text, &len) < 0) {
        return false;
    }
    size_t n = strcspn(text, "\r\n");
    snprintf(out, size, "%.*s", (int) n, text);
    free(text);
    return true;
}

static bool
read_misc(struct dmsd *s, struct rshim_misc *m)
{
    char *path = xasprintf("%s/misc", s->cfg.rshim);
    char *text;
    size_t len;
    int rc = file_read_all(path, &text, &len);
    free(path);
    if (rc < 0) {
        return false;
    }
    rshim_misc_parse(text, len, m);
    free(text);
    return true;
}

/* The DPU's PCI functions as the host sees them: the entries of
 * SYSFS/bus/pci/devices named [DOMAIN:]TARGET.FN, where TARGET is
 * -target_pci ("4b:00") or, without it, the address in misc's DEV_NAME.
 * Calls fn(dir) for each until it returns true. */
static bool
pci_functions(struct dmsd *s, bool (*fn)(const char *dir, void *arg), void *arg)
{
    char target[64] = "";
    if (s->cfg.target_pci && *s->cfg.target_pci) {
        snprintf(target, sizeof target, "%s", s->cfg.target_pci);
    } else {
        struct rshim_misc m;
        if (read_misc(s, &m) && *m.dev_name) {
            const char *n = m.dev_name;
            n += str_has_prefix(n, "pcie-") ? 5 : 0;
            snprintf(target, sizeof target, "%.*s", (int) strcspn(n, "."), n);
        }
    }
    if (!*target) {
        return false;
    }
    char *devs = xasprintf("%s/bus/pci/devices", s->cfg.sysfs);
    DIR *d = opendir(devs);
    bool found = false;
    struct dirent *de;
    size_t tl = strlen(target);
    while (d && !found && (de = readdir(d))) {
        const char *p = strstr(de->d_name, target);
        if (!p || (p != de->d_name && p[-1] != ':') || p[tl] != '.') {
            continue;
        }
        char *dir = xasprintf("%s/%s", devs, de->d_name);
        found = fn(dir, arg);
        free(dir);
    }
    if (d) {
        closedir(d);
    }
    free(devs);
    return found;
}

struct port_find {
    const char *name;
    char *net; /* SYSFS/.../net/NAME when found */
};

/* The port is looked up among the directory's entries by name: nothing
 * the client sent becomes part of a path. */
static bool
port_in(const char *dir, void *arg)
{
    struct port_find *pf = arg;
    char *net = xasprintf("%s/net", dir);
    DIR *d = opendir(net);
    struct dirent *de;
    while (d && !pf->net && (de = readdir(d))) {
        if (de->d_name[0] != '.' && !strcmp(de->d_name, pf->name)) {
            pf->net = xasprintf("%s/%s", net, de->d_name);
        }
    }
    if (d) {
        closedir(d);
    }
    free(net);
    return pf->net != NULL;
}

static bool
fw_in(const char *dir, void *arg)
{
    char *ib = xasprintf("%s/infiniband", dir);
    DIR *d = opendir(ib);
    struct dirent *de;
    bool ok = false;
    while (d && !ok && (de = readdir(d))) {
        if (de->d_name[0] != '.') {
            char *p = xasprintf("%s/%s/fw_ver", ib, de->d_name);
            ok = read_line(p, arg, 128);
            free(p);
        }
    }
    if (d) {
        closedir(d);
    }
    free(ib);
    return ok;
}

/* sysfs operstate to OpenConfig's oper-status enumeration. */
static const char *
oper_status(const char *operstate)
{
    static const char *const map[][2] = {
        {"up", "UP"},
        {"down", "DOWN"},
        {"testing", "TESTING"},
        {"dormant", "DORMANT"},
        {"notpresent", "NOT_PRESENT"},
        {"lowerlayerdown", "LOWER_LAYER_DOWN"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(map); i++) {
        if (!strcmp(operstate, map[i][0])) {
            return map[i][1];
        }
    }
    return "UNKNOWN";
}

/* The value at a path (its text form, path_text()). 0; -ENOENT if dmsd
 * does not serve the path; -ENODATA if it does but the device does not
 * say now. why says which, naming the path. */
static int
gnmi_value(struct dmsd *s, const char *path, struct gvalue *v, char *why,
           size_t wsize)
{
    memset(v, 0, sizeof *v);
    if (!strcmp(path, DMSD_MODE_PATH) ||
        !strcmp(path, "/nvidia/mode/state/mode") ||
        !strcmp(path, "/nvidia/os/state/version")) {
        pthread_mutex_lock(&s->mu);
        snprintf(v->text, sizeof v->text, "%s",
                 path[8] == 'm' ? s->mode : s->installed_version);
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    if (str_has_prefix(path, DMSD_COMPONENT)) {
        const char *leaf = path + strlen(DMSD_COMPONENT);
        struct rshim_misc m;
        bool have = read_misc(s, &m);
        const char *val = NULL;
        if (!strcmp(leaf, "id")) {
            val = have && *m.dev_name ? m.dev_name : NULL;
        } else if (!strcmp(leaf, "description")) {
            val = have && *m.dev_info ? m.dev_info : NULL;
        } else if (!strcmp(leaf, "part-no")) {
            val = have && *m.opn ? m.opn : NULL;
        } else if (!strcmp(leaf, "software-version")) {
            /* what the device's log says it booted; else what dmsd saw
             * the last activation install */
            if (have && *m.bfb_version) {
                val = m.bfb_version;
            } else {
                pthread_mutex_lock(&s->mu);
                snprintf(v->text, sizeof v->text, "%s", s->installed_version);
                pthread_mutex_unlock(&s->mu);
                val = *v->text ? v->text : NULL;
            }
        } else if (!strcmp(leaf, "firmware-version")) {
            char fw[128];
            if (pci_functions(s, fw_in, fw)) {
                snprintf(v->text, sizeof v->text, "%s", fw);
                return 0;
            }
            snprintf(why, wsize,
                     "%s: no firmware version: no %s/bus/pci/devices/"
                     "*%s.*/infiniband/*/fw_ver",
                     path, s->cfg.sysfs,
                     s->cfg.target_pci ? s->cfg.target_pci : "");
            return -ENODATA;
        } else {
            snprintf(why, wsize, "%s: no such path (dmsd serves %s)", path,
                     dmsd_paths);
            return -ENOENT;
        }
        if (!val) {
            snprintf(why, wsize, "%s: the rshim device %s does not say (%s)",
                     path, s->cfg.rshim,
                     have ? "the key is missing from misc"
                          : "misc cannot be read");
            return -ENODATA;
        }
        if (val != v->text) {
            snprintf(v->text, sizeof v->text, "%s", val);
        }
        return 0;
    }
    if (str_has_prefix(path, DMSD_IFACE)) {
        char port[64];
        const char *leaf = "";
        bool keyed = dmsd_path_key(path, DMSD_IFACE, port, sizeof port, &leaf);
        bool oper = !strcmp(leaf, "/state/oper-status");
        bool mtu = !strcmp(leaf, "/state/mtu") || !strcmp(leaf, "/config/mtu");
        if (!keyed || (!oper && !mtu)) {
            snprintf(why, wsize, "%s: no such path (dmsd serves %s)", path,
                     dmsd_paths);
            return -ENOENT;
        }
        struct port_find pf = {.name = port};
        if (!pci_functions(s, port_in, &pf)) {
            snprintf(why, wsize,
                     "%s: the DPU has no port \"%s\" (none under %s/bus/pci/"
                     "devices/*%s.*/net)",
                     path, port, s->cfg.sysfs,
                     s->cfg.target_pci ? s->cfg.target_pci : "");
            return -ENOENT;
        }
        char *file = xasprintf("%s/%s", pf.net, oper ? "operstate" : "mtu");
        char line[64];
        bool ok = read_line(file, line, sizeof line);
        free(file);
        free(pf.net);
        if (!ok) {
            snprintf(why, wsize, "%s: the port's %s cannot be read", path,
                     oper ? "operstate" : "mtu");
            return -ENODATA;
        }
        if (oper) {
            snprintf(v->text, sizeof v->text, "%s", oper_status(line));
        } else {
            v->is_uint = true;
            v->u = strtoull(line, NULL, 10);
            snprintf(v->text, sizeof v->text, "%" PRIu64, v->u);
        }
        return 0;
    }
    snprintf(why, wsize, "%s: no such path (dmsd serves %s)", path, dmsd_paths);
    return -ENOENT;
}

static void
gnmi_set(struct call *c)
{
    struct dmsd *s = c->s;
    Gnmi__SetRequest *req = recv_unary(c, &gnmi__set_request__descriptor);
    if (!req) {
        return;
    }
    size_t n = req->n_delete_ + req->n_replace + req->n_update;
    Gnmi__UpdateResult *res = xcalloc(n ? n : 1, sizeof *res);
    Gnmi__UpdateResult **resp_list = xcalloc(n ? n : 1, sizeof *resp_list);
    char new_mode[8];
    pthread_mutex_lock(&s->mu);
    snprintf(new_mode, sizeof new_mode, "%s", s->mode);
    pthread_mutex_unlock(&s->mu);
    char path[512];
    size_t k = 0;
    /* check everything first: a Set is one transaction */
    for (size_t i = 0; i < req->n_delete_; i++, k++) {
        path_text(req->prefix, req->delete_[i], path, sizeof path);
        if (strcmp(path, DMSD_MODE_PATH) != 0) {
            finish(c, NULL, GRPC_STATUS_NOT_FOUND,
                   "delete %s: not a path dmsd can set (only %s)", path,
                   DMSD_MODE_PATH);
            goto out;
        }
        snprintf(new_mode, sizeof new_mode, "DPU"); /* the default */
        gnmi__update_result__init(&res[k]);
        res[k].path = req->delete_[i];
        res[k].op = GNMI__UPDATE_RESULT__OPERATION__DELETE;
    }
    for (size_t r = 0; r < 2; r++) {
        Gnmi__Update **ups = r ? req->update : req->replace;
        size_t nu = r ? req->n_update : req->n_replace;
        for (size_t i = 0; i < nu; i++, k++) {
            char val[64];
            path_text(req->prefix, ups[i]->path, path, sizeof path);
            if (strcmp(path, DMSD_MODE_PATH) != 0) {
                finish(c, NULL, GRPC_STATUS_NOT_FOUND,
                       "%s %s: not a path dmsd can set (only %s)",
                       r ? "update" : "replace", path, DMSD_MODE_PATH);
                goto out;
            }
            if (!typed_string(ups[i]->val, val, sizeof val) ||
                (strcmp(val, "DPU") != 0 && strcmp(val, "NIC") != 0)) {
                finish(c, NULL, GRPC_STATUS_INVALID_ARGUMENT,
                       "%s: the value must be the string \"DPU\" or \"NIC\"",
                       path);
                goto out;
            }
            snprintf(new_mode, sizeof new_mode, "%.3s", val);
            gnmi__update_result__init(&res[k]);
            res[k].path = ups[i]->path;
            res[k].op = r ? GNMI__UPDATE_RESULT__OPERATION__UPDATE
                          : GNMI__UPDATE_RESULT__OPERATION__REPLACE;
        }
    }
    pthread_mutex_lock(&s->mu);
    snprintf(s->mode, sizeof s->mode, "%s", new_mode);
    char *mpath = xasprintf("%s/mode", s->state_dir);
    int rc = file_write_atomic(mpath, new_mode, strlen(new_mode), 0600);
    free(mpath);
    pthread_mutex_unlock(&s->mu);
    if (rc < 0) {
        finish(c, NULL, GRPC_STATUS_INTERNAL, "cannot persist the mode: %s",
               strerror(-rc));
        goto out;
    }
    log_info("mode set", "mode=%s user=\"%s\"", new_mode, c->user);
    for (size_t i = 0; i < n; i++) {
        resp_list[i] = &res[i];
    }
    Gnmi__SetResponse resp = GNMI__SET_RESPONSE__INIT;
    resp.prefix = req->prefix;
    resp.n_response = n;
    resp.response = resp_list;
    resp.timestamp = (int64_t) now_ns();
    finish(c, &resp.base, GRPC_STATUS_OK, NULL);
out:
    free(res);
    free(resp_list);
    gnmi__set_request__free_unpacked(req, NULL);
}

static void
gnmi_get(struct call *c)
{
    struct dmsd *s = c->s;
    Gnmi__GetRequest *req = recv_unary(c, &gnmi__get_request__descriptor);
    if (!req) {
        return;
    }
    size_t n = req->n_path;
    Gnmi__Notification *nots = xcalloc(n ? n : 1, sizeof *nots);
    Gnmi__Notification **nl = xcalloc(n ? n : 1, sizeof *nl);
    Gnmi__Update *ups = xcalloc(n ? n : 1, sizeof *ups);
    Gnmi__Update **ul = xcalloc(n ? n : 1, sizeof *ul);
    Gnmi__TypedValue *vals = xcalloc(n ? n : 1, sizeof *vals);
    struct gvalue *gv = xcalloc(n ? n : 1, sizeof *gv);
    for (size_t i = 0; i < n; i++) {
        char path[512], why[1024];
        path_text(req->prefix, req->path[i], path, sizeof path);
        if (gnmi_value(s, path, &gv[i], why, sizeof why) < 0) {
            finish(c, NULL, GRPC_STATUS_NOT_FOUND, "Get %s", why);
            goto out;
        }
        gnmi__typed_value__init(&vals[i]);
        gvalue_typed(&gv[i], &vals[i]);
        gnmi__update__init(&ups[i]);
        ups[i].path = req->path[i];
        ups[i].val = &vals[i];
        ul[i] = &ups[i];
        gnmi__notification__init(&nots[i]);
        nots[i].timestamp = (int64_t) now_ns();
        nots[i].prefix = req->prefix;
        nots[i].n_update = 1;
        nots[i].update = &ul[i];
        nl[i] = &nots[i];
    }
    Gnmi__GetResponse resp = GNMI__GET_RESPONSE__INIT;
    resp.n_notification = n;
    resp.notification = nl;
    finish(c, &resp.base, GRPC_STATUS_OK, NULL);
out:
    free(nots);
    free(nl);
    free(ups);
    free(ul);
    free(vals);
    free(gv);
    gnmi__get_request__free_unpacked(req, NULL);
}

/* --- gNMI Subscribe -------------------------------------------------- */

static bool
send_update(struct call *c, const Gnmi__Path *prefix, Gnmi__Path *path,
            const struct gvalue *value)
{
    Gnmi__TypedValue v = GNMI__TYPED_VALUE__INIT;
    gvalue_typed(value, &v);
    Gnmi__Update u = GNMI__UPDATE__INIT;
    u.path = path;
    u.val = &v;
    Gnmi__Update *ul[] = {&u};
    Gnmi__Notification n = GNMI__NOTIFICATION__INIT;
    n.timestamp = (int64_t) now_ns();
    n.prefix = (Gnmi__Path *) prefix;
    n.n_update = 1;
    n.update = ul;
    Gnmi__SubscribeResponse r = GNMI__SUBSCRIBE_RESPONSE__INIT;
    r.response_case = GNMI__SUBSCRIBE_RESPONSE__RESPONSE_UPDATE;
    r.update = &n;
    return send_packed(c, &r.base);
}

/* The values of every subscription, then sync_response. */
static bool
send_all(struct call *c, Gnmi__SubscriptionList *sl, struct gvalue *vals,
         bool values)
{
    bool ok = true;
    for (size_t i = 0; i < sl->n_subscription && ok && values; i++) {
        ok = send_update(c, sl->prefix, sl->subscription[i]->path, &vals[i]);
    }
    Gnmi__SubscribeResponse sync = GNMI__SUBSCRIBE_RESPONSE__INIT;
    sync.response_case = GNMI__SUBSCRIBE_RESPONSE__RESPONSE_SYNC_RESPONSE;
    sync.sync_response = true;
    return ok && send_packed(c, &sync.base);
}

static void
gnmi_subscribe(struct call *c)
{
    struct dmsd *s = c->s;
    uint8_t *buf = NULL;
    size_t len;
    char why[1024];
    Gnmi__SubscribeRequest *req = NULL;
    if (recv_msg(c, &buf, &len) <= 0 ||
        !(req = gnmi__subscribe_request__unpack(NULL, len, buf)) ||
        req->request_case != GNMI__SUBSCRIBE_REQUEST__REQUEST_SUBSCRIBE) {
        finish(c, NULL, GRPC_STATUS_INVALID_ARGUMENT,
               "Subscribe: the first message must be a SubscriptionList");
        goto out;
    }
    free(buf);
    buf = NULL;
    Gnmi__SubscriptionList *sl = req->subscribe;
    size_t n = sl->n_subscription;
    char(*paths)[512] = xcalloc(n ? n : 1, sizeof *paths);
    struct gvalue *last = xcalloc(n ? n : 1, sizeof *last);
    int64_t *due = xcalloc(n ? n : 1, sizeof *due);
    int64_t *every = xcalloc(n ? n : 1, sizeof *every);
    for (size_t i = 0; i < n; i++) {
        Gnmi__Subscription *sub = sl->subscription[i];
        path_text(sl->prefix, sub->path, paths[i], sizeof paths[i]);
        if (gnmi_value(s, paths[i], &last[i], why, sizeof why) == -ENOENT) {
            finish(c, NULL, GRPC_STATUS_NOT_FOUND, "Subscribe %s", why);
            goto done;
        }
        if (sl->mode == GNMI__SUBSCRIPTION_LIST__MODE__STREAM &&
            sub->mode == GNMI__SUBSCRIPTION_MODE__SAMPLE) {
            uint64_t ns =
                sub->sample_interval ? sub->sample_interval : 10000000000u;
            if (ns < 1000000000u || ns > 60000000000u) {
                finish(c, NULL, GRPC_STATUS_INVALID_ARGUMENT,
                       "Subscribe: %s: sample_interval must be 1 to 60 s "
                       "(in ns)",
                       paths[i]);
                goto done;
            }
            every[i] = (int64_t) (ns / 1000000u);
        }
    }
    /* the current values, then sync_response */
    bool ok = send_all(c, sl, last, !sl->updates_only);
    if (ok && sl->mode == GNMI__SUBSCRIPTION_LIST__MODE__ONCE) {
        finish(c, NULL, GRPC_STATUS_OK, NULL);
        goto done;
    }
    if (sl->mode == GNMI__SUBSCRIPTION_LIST__MODE__POLL) {
        /* each Poll message: the values again, then sync_response; the
         * client's half-close ends the call */
        while (ok) {
            Gnmi__SubscribeRequest *pr = NULL;
            int rc = recv_msg(c, &buf, &len);
            if (rc <= 0) {
                finish(c, NULL,
                       rc == 0 ? GRPC_STATUS_OK : GRPC_STATUS_CANCELLED, NULL);
                goto done;
            }
            pr = gnmi__subscribe_request__unpack(NULL, len, buf);
            free(buf);
            buf = NULL;
            bool poll =
                pr && pr->request_case == GNMI__SUBSCRIBE_REQUEST__REQUEST_POLL;
            if (pr) {
                gnmi__subscribe_request__free_unpacked(pr, NULL);
            }
            if (!poll) {
                finish(c, NULL, GRPC_STATUS_INVALID_ARGUMENT,
                       "Subscribe: after a POLL SubscriptionList only Poll "
                       "messages may follow");
                goto done;
            }
            for (size_t i = 0; i < n; i++) {
                gnmi_value(s, paths[i], &last[i], why, sizeof why);
            }
            ok = send_all(c, sl, last, true);
        }
        finish(c, NULL, GRPC_STATUS_CANCELLED, "Subscribe ended");
        goto done;
    }
    int64_t t = 0;
    for (size_t i = 0; i < n; i++) {
        due[i] = every[i];
    }
    /* STREAM: SAMPLE on its interval, ON_CHANGE/TARGET_DEFINED on change;
     * a send that fails means the client went away */
    while (ok) {
        pthread_mutex_lock(&s->mu);
        bool stopping = s->stopping;
        pthread_mutex_unlock(&s->mu);
        if (stopping) {
            break;
        }
        usleep(100 * 1000);
        t += 100;
        for (size_t i = 0; i < n && ok; i++) {
            struct gvalue now;
            if (gnmi_value(s, paths[i], &now, why, sizeof why) < 0) {
                continue; /* the device does not say just now */
            }
            bool changed = strcmp(now.text, last[i].text) != 0;
            last[i] = now;
            if (every[i] ? t >= due[i] : changed) {
                ok = send_update(c, sl->prefix, sl->subscription[i]->path,
                                 &last[i]);
                due[i] = t + every[i];
            }
        }
    }
    finish(c, NULL, GRPC_STATUS_CANCELLED, "Subscribe ended");
done:
    free(paths);
    free(last);
    free(due);
    free(every);
out:
    if (req) {
        gnmi__subscribe_request__free_unpacked(req, NULL);
    }
    free(buf);
}

/* --- gNOI OS.Install ------------------------------------------------- */

struct info_ctx {
    struct dbuf info;
};

static int
info_data(void *ctx, const struct bfb_image *img, const uint8_t *p, size_t n,
          struct dpf_error *err)
{
    (void) err;
    struct info_ctx *ic = ctx;
    if (img->h.id == BFB_ID_INFO && ic->info.len < 65536) {
        dbuf_append(&ic->info, p, DPF_MIN(n, 65536 - ic->info.len));
    }
    return 0;
}

static const struct bfb_reader_ops info_ops = {.data = info_data};

/* A BFB that Install checked (every CRC, as it arrived) is recorded in
 * STATE_DIR/validated/<version>.json with what identifies the file
 * (device, inode, size, mtime) and its info version, so that Activate
 * need not read it twice: a file that was replaced, changed or planted
 * by other means does not match and is checked in full again. */
static char *
validated_path(struct dmsd *s, const char *version)
{
    return xasprintf("%s/validated/%s.json", s->state_dir, version);
}

static void
validated_save(struct dmsd *s, const char *version, const char *file,
               const char *bfb_version)
{
    struct stat st;
    if (stat(file, &st) < 0) {
        return;
    }
    char *dir = xasprintf("%s/validated", s->state_dir);
    int rc = dir_create_all(dir, 0700);
    free(dir);
    json_t *j = json_pack(
        "{s:I, s:I, s:I, s:I, s:s}", "dev", (json_int_t) st.st_dev, "ino",
        (json_int_t) st.st_ino, "size", (json_int_t) st.st_size, "mtimeNs",
        (json_int_t) (st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec),
        "version", bfb_version);
    char *text = json_dumps(j, JSON_SORT_KEYS);
    char *path = validated_path(s, version);
    if (rc == 0) {
        rc = file_write_atomic(path, text, strlen(text), 0600);
    }
    if (rc < 0) {
        log_warn("cannot record a validated image", "path=%s error=\"%s\"",
                 path, strerror(-rc));
    }
    free(path);
    free(text);
    json_decref(j);
}

/* True (with the BFB's version) if file is still what Install checked. */
static bool
validated_match(struct dmsd *s, const char *version, const char *file,
                char *bfb_version, size_t size)
{
    struct stat st;
    char *path = validated_path(s, version);
    char *text = NULL;
    size_t len;
    bool ok = false;
    if (stat(file, &st) == 0 && file_read_all(path, &text, &len) == 0) {
        json_t *j = json_loadb(text, len, 0, NULL);
        const char *v = json_string_value(json_object_get(j, "version"));
        ok = v &&
             json_integer_value(json_object_get(j, "dev")) ==
                 (json_int_t) st.st_dev &&
             json_integer_value(json_object_get(j, "ino")) ==
                 (json_int_t) st.st_ino &&
             json_integer_value(json_object_get(j, "size")) ==
                 (json_int_t) st.st_size &&
             json_integer_value(json_object_get(j, "mtimeNs")) ==
                 (json_int_t) (st.st_mtim.tv_sec * 1000000000ll +
                               st.st_mtim.tv_nsec);
        if (ok) {
            snprintf(bfb_version, size, "%s", v);
        }
        json_decref(j);
    }
    free(text);
    free(path);
    return ok;
}

static void install_error(struct call *c, Gnoi__Os__InstallError__Type type,
                          const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
install_error(struct call *c, Gnoi__Os__InstallError__Type type,
              const char *fmt, ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    Gnoi__Os__InstallError e = GNOI__OS__INSTALL_ERROR__INIT;
    e.type = type;
    e.detail = detail;
    Gnoi__Os__InstallResponse r = GNOI__OS__INSTALL_RESPONSE__INIT;
    r.response_case = GNOI__OS__INSTALL_RESPONSE__RESPONSE_INSTALL_ERROR;
    r.install_error = &e;
    log_info("install refused", "user=\"%s\" type=%d detail=\"%s\"", c->user,
             (int) type, detail);
    /* gNOI: an InstallError ends the RPC without a gRPC error */
    finish(c, &r.base, GRPC_STATUS_OK, NULL);
}

static void
send_install(struct call *c, Gnoi__Os__InstallResponse *r)
{
    send_packed(c, &r->base);
}

static void
install_progress(struct call *c, uint64_t got)
{
    Gnoi__Os__TransferProgress tp = GNOI__OS__TRANSFER_PROGRESS__INIT;
    tp.bytes_received = got;
    Gnoi__Os__InstallResponse pr = GNOI__OS__INSTALL_RESPONSE__INIT;
    pr.response_case = GNOI__OS__INSTALL_RESPONSE__RESPONSE_TRANSFER_PROGRESS;
    pr.transfer_progress = &tp;
    send_install(c, &pr);
}

/* One transfer_content chunk: size checks, the BFB reader (a BFB is
 * checked as it arrives), then the file. 0, or -EILSEQ (corrupt BFB) or
 * another negative errno with *why (free()) saying what happened. */
static int
install_content(struct call *c, struct bfb_reader *reader, int fd,
                struct slices *sv, uint64_t *got, uint64_t size, bool is_cfg,
                const char *version, const char **why)
{
    (void) c;
    *got += sv->total;
    if ((size && *got > size) || (is_cfg && *got > DMSD_CFG_MAX)) {
        *why = xasprintf("%s: more bytes than announced (%" PRIu64 ")", version,
                         is_cfg && !size ? (uint64_t) DMSD_CFG_MAX : size);
        return -EFBIG;
    }
    for (size_t i = 0; reader && i < sv->n; i++) {
        struct dpf_error err = {0};
        if (bfb_reader_feed(reader, sv->iov[i].iov_base, sv->iov[i].iov_len,
                            &err) < 0) {
            *why = xasprintf("%s: %s", version, err.message);
            return -EILSEQ;
        }
    }
    int rc = slices_write(fd, sv);
    if (rc < 0) {
        *why = xasprintf("writing %s: %s", version, strerror(-rc));
        return rc;
    }
    return 0;
}

/* A name for an Install's file that no other call, in this dmsd or in
 * another one sharing the folder, uses. */
static char *
partial_name(struct dmsd *s, const char *version)
{
    static atomic_uint seq;
    return xasprintf("%s/.%s.partial.%d.%u", s->cfg.image_folder, version,
                     (int) getpid(), atomic_fetch_add(&seq, 1));
}

/* Remove a partial file before the client hears of the failure, so that
 * what it sees next is a folder without it. */
static void
drop_partial(int *fd, char **tmp)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
    if (*tmp) {
        unlink(*tmp);
        free(*tmp);
        *tmp = NULL;
    }
}

static void
os_install(struct call *c)
{
    struct dmsd *s = c->s;
    uint8_t *buf = NULL;
    size_t len;
    Gnoi__Os__InstallRequest *req = NULL;
    char *tmp = NULL, *final = NULL;
    int fd = -1;
    struct bfb_reader *reader = NULL;
    bool claimed = false;
    struct info_ctx ic;
    dbuf_init(&ic.info);

    if (recv_msg(c, &buf, &len) <= 0 ||
        !(req = gnoi__os__install_request__unpack(NULL, len, buf)) ||
        req->request_case !=
            GNOI__OS__INSTALL_REQUEST__REQUEST_TRANSFER_REQUEST) {
        drop_partial(&fd, &tmp);
        finish(c, NULL, GRPC_STATUS_INVALID_ARGUMENT,
               "Install: the first message must be a TransferRequest");
        goto out;
    }
    char version[256];
    snprintf(version, sizeof version, "%s", req->transfer_request->version);
    uint64_t size = req->transfer_request->package_size;
    if (!dmsd_version_ok(version)) {
        drop_partial(&fd, &tmp);
        install_error(c, GNOI__OS__INSTALL_ERROR__TYPE__UNSPECIFIED,
                      "version \"%s\" cannot name an image file (no '/', "
                      "no leading '.', under 200 characters)",
                      version);
        goto out;
    }
    bool is_cfg = str_has_suffix(version, ".cfg");
    final = image_path(s, version);
    if (access(final, F_OK) == 0) {
        Gnoi__Os__Validated v = GNOI__OS__VALIDATED__INIT;
        v.version = version;
        v.description = "already present";
        Gnoi__Os__InstallResponse r = GNOI__OS__INSTALL_RESPONSE__INIT;
        r.response_case = GNOI__OS__INSTALL_RESPONSE__RESPONSE_VALIDATED;
        r.validated = &v;
        finish(c, &r.base, GRPC_STATUS_OK, NULL);
        goto out;
    }
    pthread_mutex_lock(&s->mu);
    if (!s->installing) {
        s->installing = claimed = true;
    }
    pthread_mutex_unlock(&s->mu);
    if (!claimed) {
        drop_partial(&fd, &tmp);
        install_error(c, GNOI__OS__INSTALL_ERROR__TYPE__INSTALL_IN_PROGRESS,
                      "another Install is in progress");
        goto out;
    }
    struct statvfs vfs;
    if (size && statvfs(s->cfg.image_folder, &vfs) == 0 &&
        size > (uint64_t) vfs.f_bavail * vfs.f_frsize) {
        install_error(
            c, GNOI__OS__INSTALL_ERROR__TYPE__TOO_LARGE,
            "%" PRIu64 " bytes do not fit in %s (%" PRIu64 " bytes free)", size,
            s->cfg.image_folder, (uint64_t) vfs.f_bavail * vfs.f_frsize);
        goto out;
    }
    if (is_cfg && size > DMSD_CFG_MAX) {
        drop_partial(&fd, &tmp);
        install_error(c, GNOI__OS__INSTALL_ERROR__TYPE__TOO_LARGE,
                      "a bf.cfg is at most %d bytes", DMSD_CFG_MAX);
        goto out;
    }
    /* An anonymous file (O_TMPFILE) that gets a name only once complete:
     * nothing half-written is ever visible, and the dmsds sharing an
     * image folder (one per DPU on a host, all on one disk with the
     * emulator) can take the same version at once without writing into
     * one file. A file system without O_TMPFILE gets a name of this
     * call's own from the start. */
    fd = open(s->cfg.image_folder, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR)) {
        tmp = partial_name(s, version);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    if (fd < 0) {
        int e = errno;
        drop_partial(&fd, &tmp);
        install_error(c, GNOI__OS__INSTALL_ERROR__TYPE__UNSPECIFIED,
                      "cannot store %s: %s", version, strerror(e));
        goto out;
    }
    if (!is_cfg) {
        reader = bfb_reader_new(&info_ops, &ic);
    }
    Gnoi__Os__TransferReady ready = GNOI__OS__TRANSFER_READY__INIT;
    Gnoi__Os__InstallResponse rr = GNOI__OS__INSTALL_RESPONSE__INIT;
    rr.response_case = GNOI__OS__INSTALL_RESPONSE__RESPONSE_TRANSFER_READY;
    rr.transfer_ready = &ready;
    send_install(c, &rr);
    uint64_t got = 0, next_progress = DMSD_PROGRESS_EVERY;
    bool ended = false;
    gnoi__os__install_request__free_unpacked(req, NULL);
    req = NULL;
    free(buf);
    buf = NULL;
    for (;;) {
        /* transfer_content is taken straight from gRPC's slices into the
         * BFB reader and writev(); only other messages are unpacked */
        grpc_byte_buffer *bb;
        if (recv_buffer(c, &bb) <= 0) {
            break;
        }
        struct slices sv;
        if (!slices_open(&sv, bb)) {
            grpc_byte_buffer_destroy(bb);
            break;
        }
        size_t hdr = slices_bytes_field(&sv, 2);
        if (hdr) {
            slices_skip(&sv, hdr);
            const char *why = NULL;
            int rc = install_content(c, reader, fd, &sv, &got, size, is_cfg,
                                     version, &why);
            slices_close(&sv);
            grpc_byte_buffer_destroy(bb);
            if (rc < 0) {
                drop_partial(&fd, &tmp);
                install_error(
                    c,
                    rc == -EILSEQ
                        ? GNOI__OS__INSTALL_ERROR__TYPE__INTEGRITY_FAIL
                        : GNOI__OS__INSTALL_ERROR__TYPE__TOO_LARGE,
                    "%s", why);
                free((char *) why);
                goto out;
            }
            if (got >= next_progress) {
                install_progress(c, got);
                next_progress = got + DMSD_PROGRESS_EVERY;
            }
            continue;
        }
        buf = slices_flatten(&sv);
        len = sv.total;
        slices_close(&sv);
        grpc_byte_buffer_destroy(bb);
        req = gnoi__os__install_request__unpack(NULL, len, buf);
        free(buf);
        buf = NULL;
        if (!req) {
            drop_partial(&fd, &tmp);
            install_error(c, GNOI__OS__INSTALL_ERROR__TYPE__PARSE_FAIL,
                          "message %" PRIu64 " bytes into %s is not an "
                          "InstallRequest",
                          got, version);
            goto out;
        }
        if (req->request_case ==
            GNOI__OS__INSTALL_REQUEST__REQUEST_TRANSFER_END) {
            ended = true;
            break;
        }
        if (req->request_case !=
            GNOI__OS__INSTALL_REQUEST__REQUEST_TRANSFER_CONTENT) {
            drop_partial(&fd, &tmp);
            install_error(c, GNOI__OS__INSTALL_ERROR__TYPE__UNSPECIFIED,
                          "expected transfer_content or transfer_end");
            goto out;
        }
        /* transfer_content in a form the fast path did not take (other
         * fields present): the same checks on the unpacked bytes */
        struct slices one = {0};
        struct iovec iov = {req->transfer_content.data,
                            req->transfer_content.len};
        one.iov = &iov;
        one.n = 1;
        one.total = iov.iov_len;
        const char *why = NULL;
        int rc = install_content(c, reader, fd, &one, &got, size, is_cfg,
                                 version, &why);
        gnoi__os__install_request__free_unpacked(req, NULL);
        req = NULL;
        if (rc < 0) {
            drop_partial(&fd, &tmp);
            install_error(c,
                          rc == -EILSEQ
                              ? GNOI__OS__INSTALL_ERROR__TYPE__INTEGRITY_FAIL
                              : GNOI__OS__INSTALL_ERROR__TYPE__TOO_LARGE,
                          "%s", why);
            free((char *) why);
            goto out;
        }
        if (got >= next_progress) {
            install_progress(c, got);
            next_progress = got + DMSD_PROGRESS_EVERY;
        }
    }
    if (!ended) {
        /* the client went away or half-closed without TransferEnd: nothing
         * partial may stay behind (out: removes the temporary file) */
        log_warn("install stream ended early", "version=%s bytes=%" PRIu64,
                 version, got);
        drop_partial(&fd, &tmp);
        finish(c, NULL, GRPC_STATUS_ABORTED,
               "%s: the stream ended after %" PRIu64 " bytes without "
               "TransferEnd; nothing was kept",
               version, got);
        goto out;
    }
    struct dpf_error err = {0};
    if (reader && bfb_reader_finish(reader, &err) < 0) {
        drop_partial(&fd, &tmp);
        install_error(c, GNOI__OS__INSTALL_ERROR__TYPE__INTEGRITY_FAIL,
                      "%s: %s", version, err.message);
        goto out;
    }
    if (size && got != size) {
        drop_partial(&fd, &tmp);
        install_error(c, GNOI__OS__INSTALL_ERROR__TYPE__PARSE_FAIL,
                      "%s: %" PRIu64 " bytes received, %" PRIu64 " announced",
                      version, got, size);
        goto out;
    }
    if (fsync(fd) == 0 && !tmp) {
        /* name the anonymous file, then move the name into place */
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        char *name = partial_name(s, version);
        if (linkat(AT_FDCWD, proc, AT_FDCWD, name, AT_SYMLINK_FOLLOW) == 0) {
            tmp = name;
        } else {
            int e = errno;
            free(name);
            drop_partial(&fd, &tmp);
            install_error(c, GNOI__OS__INSTALL_ERROR__TYPE__UNSPECIFIED,
                          "naming %s in %s: %s", version, s->cfg.image_folder,
                          strerror(e));
            goto out;
        }
    }
    if (fsync(fd) < 0 || close(fd) < 0) {
        fd = -1;
        int e = errno;
        drop_partial(&fd, &tmp);
        install_error(c, GNOI__OS__INSTALL_ERROR__TYPE__UNSPECIFIED,
                      "writing %s: %s", version, strerror(e));
        goto out;
    }
    fd = -1;
    if (rename(tmp, final) < 0) {
        drop_partial(&fd, &tmp);
        install_error(c, GNOI__OS__INSTALL_ERROR__TYPE__UNSPECIFIED, "%s: %s",
                      final, strerror(errno));
        goto out;
    }
    free(tmp);
    tmp = NULL;
    if (reader) {
        char bv[256];
        if (ic.info.len == 0 ||
            bfb_info_version(ic.info.data, ic.info.len, bv, sizeof bv) < 0) {
            snprintf(bv, sizeof bv, "%s", version);
        }
        validated_save(s, version, final, bv);
    }
    log_info("image installed", "version=%s bytes=%" PRIu64 " user=\"%s\"",
             version, got, c->user);
    Gnoi__Os__Validated v = GNOI__OS__VALIDATED__INIT;
    v.version = version;
    v.description = is_cfg ? "bf.cfg" : "BFB, every image CRC checked";
    Gnoi__Os__InstallResponse r = GNOI__OS__INSTALL_RESPONSE__INIT;
    r.response_case = GNOI__OS__INSTALL_RESPONSE__RESPONSE_VALIDATED;
    r.validated = &v;
    finish(c, &r.base, GRPC_STATUS_OK, NULL);
out:
    if (fd >= 0) {
        close(fd);
    }
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    free(final);
    bfb_reader_free(reader);
    dbuf_free(&ic.info);
    if (req) {
        gnoi__os__install_request__free_unpacked(req, NULL);
    }
    free(buf);
    if (claimed) {
        pthread_mutex_lock(&s->mu);
        s->installing = false;
        pthread_mutex_unlock(&s->mu);
    }
}

/* --- gNOI OS.Activate ------------------------------------------------ */

static int
copy_into(int out, const char *path, char *errbuf, size_t size)
{
    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        snprintf(errbuf, size, "%s: %s", path, strerror(errno));
        return -1;
    }
    uint8_t *buf = xmalloc(DMSD_CHUNK);
    int rc = 0;
    for (;;) {
        ssize_t k = read(in, buf, DMSD_CHUNK);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k <= 0) {
            if (k < 0) {
                snprintf(errbuf, size, "%s: %s", path, strerror(errno));
                rc = -1;
            }
            break;
        }
        for (ssize_t off = 0; off < k;) {
            ssize_t w = write(out, buf + off, (size_t) (k - off));
            if (w < 0 && errno == EINTR) {
                continue;
            }
            if (w < 0) {
                snprintf(errbuf, size, "writing the rshim boot device: %s",
                         strerror(errno));
                rc = -1;
                goto done;
            }
            off += w;
        }
    }
done:
    free(buf);
    close(in);
    return rc;
}

static void
misc_command(struct dmsd *s, const char *cmd)
{
    char *path = xasprintf("%s/misc", s->cfg.rshim);
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t w = write(fd, cmd, strlen(cmd));
        (void) w;
        close(fd);
    }
    free(path);
}

static void act_set(struct dmsd *s, enum act_phase phase, int status,
                    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
act_set(struct dmsd *s, enum act_phase phase, int status, const char *fmt, ...)
{
    pthread_mutex_lock(&s->mu);
    s->phase = phase;
    s->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->act_message, sizeof s->act_message, fmt, ap);
    va_end(ap);
    save_activation(s);
    pthread_mutex_unlock(&s->mu);
    log_info("activation", "phase=%s message=\"%s\"", act_names[phase],
             s->act_message);
}

/* Follow misc after a push (image set) or a reset (image NULL) until the
 * DPU says it is ready, an ERR line, or -exec_timeout. */
static void
follow_misc(struct dmsd *s, const char *image, const char *version)
{
    char *misc = xasprintf("%s/misc", s->cfg.rshim);
    int64_t waited = 0;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool stopping = s->stopping;
        pthread_mutex_unlock(&s->mu);
        if (stopping) {
            break;
        }
        char *text;
        size_t len;
        if (file_read_all(misc, &text, &len) == 0) {
            struct rshim_misc m;
            rshim_misc_parse(text, len, &m);
            free(text);
            if (m.ready) {
                if (version) {
                    pthread_mutex_lock(&s->mu);
                    snprintf(s->installed_version, sizeof s->installed_version,
                             "%s", version);
                    pthread_mutex_unlock(&s->mu);
                }
                if (image) {
                    act_set(s, ACT_DONE,
                            GNOI__SYSTEM__REBOOT_STATUS__STATUS__STATUS_SUCCESS,
                            "%s installed; the DPU is ready", image);
                } else {
                    act_set(s, ACT_DONE,
                            GNOI__SYSTEM__REBOOT_STATUS__STATUS__STATUS_SUCCESS,
                            "the DPU rebooted and is ready%s%s",
                            *s->reboot_message ? ": " : "", s->reboot_message);
                }
                break;
            }
            if (*m.error) {
                act_set(s, ACT_FAILED,
                        GNOI__SYSTEM__REBOOT_STATUS__STATUS__STATUS_FAILURE,
                        "the DPU refused %s: %s", image ? image : "to boot",
                        m.error);
                break;
            }
        }
        if (waited > s->cfg.exec_timeout_ms) {
            act_set(
                s, ACT_FAILED,
                GNOI__SYSTEM__REBOOT_STATUS__STATUS__STATUS_RETRIABLE_FAILURE,
                "the DPU did not report ready within -exec_timeout "
                "(%" PRId64 " s)",
                s->cfg.exec_timeout_ms / 1000);
            break;
        }
        usleep(200 * 1000);
        waited += 200;
    }
    free(misc);
}

static void *
push_main(void *arg)
{
    struct dmsd *s = arg;
    char image[256], cfg[256], version[256], errbuf[512];
    pthread_mutex_lock(&s->mu);
    snprintf(image, sizeof image, "%s", s->act_image);
    snprintf(cfg, sizeof cfg, "%s", s->act_cfg);
    snprintf(version, sizeof version, "%s", s->act_version);
    pthread_mutex_unlock(&s->mu);
    /* ask for the boot log, as bfb-install does, to follow the install */
    misc_command(s, "DISPLAY_LEVEL 2\n");
    char *boot = xasprintf("%s/boot", s->cfg.rshim);
    int fd = open(boot, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        act_set(s, ACT_FAILED,
                GNOI__SYSTEM__REBOOT_STATUS__STATUS__STATUS_RETRIABLE_FAILURE,
                "cannot open %s: %s", boot, strerror(errno));
        free(boot);
        return NULL;
    }
    free(boot);
    char *ipath = image_path(s, image);
    int rc = copy_into(fd, ipath, errbuf, sizeof errbuf);
    free(ipath);
    if (rc == 0 && *cfg) {
        char *cpath = image_path(s, cfg);
        rc = copy_into(fd, cpath, errbuf, sizeof errbuf);
        free(cpath);
    }
    close(fd);
    if (rc < 0) {
        act_set(s, ACT_FAILED,
                GNOI__SYSTEM__REBOOT_STATUS__STATUS__STATUS_RETRIABLE_FAILURE,
                "%s", errbuf);
        return NULL;
    }
    act_set(s, ACT_WAITING, 0,
            "%s written to the rshim boot device; "
            "waiting for the DPU",
            image);
    follow_misc(s, image, version);
    return NULL;
}

/* System.Reboot's thread: wait out the delay, reset the DPU through misc
 * (SW_RESET 1, as the rshim driver offers), follow it up. */
static void *
reboot_main(void *arg)
{
    struct dmsd *s = arg;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        bool stopping = s->stopping;
        uint64_t at = s->reboot_at_ns;
        pthread_mutex_unlock(&s->mu);
        if (stopping) {
            return NULL;
        }
        uint64_t now = now_ns();
        if (now >= at) {
            break;
        }
        uint64_t left = at - now;
        usleep((useconds_t) DPF_MIN(left / 1000, (uint64_t) 100000));
    }
    char *misc = xasprintf("%s/misc", s->cfg.rshim);
    int fd = open(misc, O_WRONLY | O_TRUNC | O_CLOEXEC);
    static const char cmd[] = "DISPLAY_LEVEL 2\nSW_RESET 1\n";
    bool ok = fd >= 0 && write(fd, cmd, sizeof cmd - 1) == sizeof cmd - 1;
    int e = errno;
    if (fd >= 0) {
        close(fd);
    }
    if (!ok) {
        act_set(s, ACT_FAILED,
                GNOI__SYSTEM__REBOOT_STATUS__STATUS__STATUS_RETRIABLE_FAILURE,
                "cannot reset the DPU through %s: %s", misc, strerror(e));
        free(misc);
        return NULL;
    }
    free(misc);
    act_set(s, ACT_WAITING, 0, "the DPU was reset; waiting for it to come up");
    follow_misc(s, NULL, NULL);
    return NULL;
}

static void activate_error(struct call *c, Gnoi__Os__ActivateError__Type type,
                           const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
activate_error(struct call *c, Gnoi__Os__ActivateError__Type type,
               const char *fmt, ...)
{
    char detail[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    Gnoi__Os__ActivateError e = GNOI__OS__ACTIVATE_ERROR__INIT;
    e.type = type;
    e.detail = detail;
    Gnoi__Os__ActivateResponse r = GNOI__OS__ACTIVATE_RESPONSE__INIT;
    r.response_case = GNOI__OS__ACTIVATE_RESPONSE__RESPONSE_ACTIVATE_ERROR;
    r.activate_error = &e;
    log_info("activate refused", "user=\"%s\" detail=\"%s\"", c->user, detail);
    finish(c, &r.base, GRPC_STATUS_OK, NULL);
}

static void
os_activate(struct call *c)
{
    struct dmsd *s = c->s;
    Gnoi__Os__ActivateRequest *req =
        recv_unary(c, &gnoi__os__activate_request__descriptor);
    if (!req) {
        return;
    }
    char image[256] = "", cfg[256] = "";
    const char *semi = strchr(req->version, ';');
    if (semi) {
        snprintf(image, sizeof image, "%.*s", (int) (semi - req->version),
                 req->version);
        snprintf(cfg, sizeof cfg, "%s", semi + 1);
    } else {
        snprintf(image, sizeof image, "%s", req->version);
    }
    gnoi__os__activate_request__free_unpacked(req, NULL);
    const char *names[2] = {image, cfg};
    for (int i = 0; i < 2; i++) {
        if (i == 1 && !*cfg) {
            break;
        }
        char *p = dmsd_version_ok(names[i]) ? image_path(s, names[i]) : NULL;
        if (!p || access(p, R_OK) < 0) {
            activate_error(c,
                           GNOI__OS__ACTIVATE_ERROR__TYPE__NON_EXISTENT_VERSION,
                           "%s \"%s\" is not installed (OS.Install it first)",
                           i ? "bf.cfg" : "image", names[i]);
            free(p);
            return;
        }
        free(p);
    }
    pthread_mutex_lock(&s->mu);
    bool busy = act_busy(s->phase);
    if (!busy) {
        s->phase = ACT_PUSHING; /* claim */
    }
    pthread_mutex_unlock(&s->mu);
    if (busy) {
        activate_error(c, GNOI__OS__ACTIVATE_ERROR__TYPE__UNSPECIFIED,
                       "an activation or reboot of the DPU is in progress "
                       "(System.RebootStatus says when it ends)");
        return;
    }
    /* check the whole BFB before a byte goes to the device: a corrupt
     * image must not reset the DPU into a half-written boot */
    struct info_ctx ic;
    dbuf_init(&ic.info);
    struct dpf_error err = {0};
    char *ipath = image_path(s, image);
    char version[256] = "";
    int rc = 0;
    if (validated_match(s, image, ipath, version, sizeof version)) {
        log_debug("image checked at Install and unchanged", "image=%s", image);
    } else {
        rc = bfb_read_file(ipath, &info_ops, &ic, &err);
        if (rc == 0 && (ic.info.len == 0 ||
                        bfb_info_version(ic.info.data, ic.info.len, version,
                                         sizeof version) < 0)) {
            snprintf(version, sizeof version, "%s", image);
        }
    }
    free(ipath);
    dbuf_free(&ic.info);
    if (rc < 0) {
        pthread_mutex_lock(&s->mu);
        s->phase = ACT_IDLE;
        pthread_mutex_unlock(&s->mu);
        activate_error(c, GNOI__OS__ACTIVATE_ERROR__TYPE__UNSPECIFIED,
                       "image %s: %s; nothing was written to the rshim "
                       "boot device",
                       image, err.message);
        return;
    }
    pthread_mutex_lock(&s->mu);
    if (s->push_started) {
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->push_thread, NULL);
        pthread_mutex_lock(&s->mu);
        s->push_started = false;
    }
    snprintf(s->act_image, sizeof s->act_image, "%s", image);
    snprintf(s->act_cfg, sizeof s->act_cfg, "%s", cfg);
    snprintf(s->act_version, sizeof s->act_version, "%s", version);
    s->act_count++;
    s->act_when_ns = now_ns();
    s->act_method = GNOI__SYSTEM__REBOOT_METHOD__COLD;
    s->reboot_message[0] = '\0';
    s->status = 0;
    snprintf(s->act_message, sizeof s->act_message,
             "writing %s%s%s to the rshim boot device", image,
             *cfg ? " and " : "", cfg);
    save_activation(s);
    int trc =
        thread_start(&s->push_thread, NULL, "dmsd-activate", push_main, s);
    s->push_started = trc == 0;
    pthread_mutex_unlock(&s->mu);
    if (trc < 0) {
        act_set(s, ACT_FAILED,
                GNOI__SYSTEM__REBOOT_STATUS__STATUS__STATUS_RETRIABLE_FAILURE,
                "cannot start the activation: %s", strerror(-trc));
    }
    log_info("activation started", "image=%s cfg=%s version=%s user=\"%s\"",
             image, cfg, version, c->user);
    Gnoi__Os__ActivateOK ok = GNOI__OS__ACTIVATE_OK__INIT;
    Gnoi__Os__ActivateResponse r = GNOI__OS__ACTIVATE_RESPONSE__INIT;
    r.response_case = GNOI__OS__ACTIVATE_RESPONSE__RESPONSE_ACTIVATE_OK;
    r.activate_ok = &ok;
    finish(c, &r.base, GRPC_STATUS_OK, NULL);
}

static void
os_verify(struct call *c)
{
    struct dmsd *s = c->s;
    Gnoi__Os__VerifyRequest *req =
        recv_unary(c, &gnoi__os__verify_request__descriptor);
    if (!req) {
        return;
    }
    gnoi__os__verify_request__free_unpacked(req, NULL);
    char version[256], fail[1024] = "";
    pthread_mutex_lock(&s->mu);
    snprintf(version, sizeof version, "%s",
             s->phase == ACT_DONE ? s->installed_version : "");
    if (s->phase == ACT_FAILED) {
        snprintf(fail, sizeof fail, "%s", s->act_message);
    }
    pthread_mutex_unlock(&s->mu);
    Gnoi__Os__VerifyResponse r = GNOI__OS__VERIFY_RESPONSE__INIT;
    r.version = version;
    r.activation_fail_message = fail;
    finish(c, &r.base, GRPC_STATUS_OK, NULL);
}

/* --- gNOI System ----------------------------------------------------- */

static void
sys_reboot_status(struct call *c)
{
    struct dmsd *s = c->s;
    Gnoi__System__RebootStatusRequest *req =
        recv_unary(c, &gnoi__system__reboot_status_request__descriptor);
    if (!req) {
        return;
    }
    gnoi__system__reboot_status_request__free_unpacked(req, NULL);
    char reason[1024];
    Gnoi__System__RebootStatus st = GNOI__SYSTEM__REBOOT_STATUS__INIT;
    Gnoi__System__RebootStatusResponse r =
        GNOI__SYSTEM__REBOOT_STATUS_RESPONSE__INIT;
    pthread_mutex_lock(&s->mu);
    r.active = act_busy(s->phase);
    r.count = s->act_count;
    r.when = s->act_when_ns;
    r.method = s->act_method ? (Gnoi__System__RebootMethod) s->act_method
                             : GNOI__SYSTEM__REBOOT_METHOD__COLD;
    uint64_t now = now_ns();
    if (s->phase == ACT_REBOOTING && s->reboot_at_ns > now) {
        r.wait = s->reboot_at_ns - now;
    }
    snprintf(reason, sizeof reason, "%s", s->act_message);
    st.status = r.active ? 0 : (Gnoi__System__RebootStatus__Status) s->status;
    pthread_mutex_unlock(&s->mu);
    r.reason = reason;
    st.message = reason;
    r.status = &st;
    finish(c, &r.base, GRPC_STATUS_OK, NULL);
}

static void
sys_reboot(struct call *c)
{
    struct dmsd *s = c->s;
    Gnoi__System__RebootRequest *req =
        recv_unary(c, &gnoi__system__reboot_request__descriptor);
    if (!req) {
        return;
    }
    Gnoi__System__RebootMethod m = req->method;
    const ProtobufCEnumValue *mv = protobuf_c_enum_descriptor_get_value(
        &gnoi__system__reboot_method__descriptor, (int) m);
    const char *mname = mv ? mv->name : "?";
    if (m == GNOI__SYSTEM__REBOOT_METHOD__UNKNOWN) {
        finish(c, NULL, GRPC_STATUS_INVALID_ARGUMENT,
               "Reboot: method must be given (COLD or WARM)");
        goto out;
    }
    if (m != GNOI__SYSTEM__REBOOT_METHOD__COLD &&
        m != GNOI__SYSTEM__REBOOT_METHOD__WARM) {
        finish(c, NULL, GRPC_STATUS_UNIMPLEMENTED,
               "Reboot: method %s is not served: through the rshim device "
               "dmsd can only reset the DPU (COLD or WARM)",
               mname);
        goto out;
    }
    if (req->delay > 3600 * 1000000000ull) {
        finish(c, NULL, GRPC_STATUS_INVALID_ARGUMENT,
               "Reboot: delay %" PRIu64 " ns is more than an hour", req->delay);
        goto out;
    }
    pthread_mutex_lock(&s->mu);
    if (act_busy(s->phase)) {
        pthread_mutex_unlock(&s->mu);
        finish(c, NULL, GRPC_STATUS_FAILED_PRECONDITION,
               "Reboot: an activation or reboot of the DPU is in progress "
               "(System.RebootStatus says when it ends)");
        goto out;
    }
    if (s->push_started) {
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->push_thread, NULL);
        pthread_mutex_lock(&s->mu);
        s->push_started = false;
    }
    s->phase = ACT_REBOOTING;
    s->status = 0;
    s->act_method = (int) m;
    s->act_image[0] = s->act_cfg[0] = '\0';
    s->act_count++;
    s->act_when_ns = now_ns();
    s->reboot_at_ns = s->act_when_ns + req->delay;
    snprintf(s->reboot_message, sizeof s->reboot_message, "%s",
             req->message ? req->message : "");
    snprintf(s->act_message, sizeof s->act_message, "%s reboot requested%s%s",
             mname, *s->reboot_message ? ": " : "", s->reboot_message);
    save_activation(s);
    int trc =
        thread_start(&s->push_thread, NULL, "dmsd-reboot", reboot_main, s);
    s->push_started = trc == 0;
    pthread_mutex_unlock(&s->mu);
    if (trc < 0) {
        act_set(s, ACT_FAILED,
                GNOI__SYSTEM__REBOOT_STATUS__STATUS__STATUS_RETRIABLE_FAILURE,
                "cannot start the reboot: %s", strerror(-trc));
        finish(c, NULL, GRPC_STATUS_INTERNAL, "Reboot: %s", strerror(-trc));
        goto out;
    }
    log_info("reboot requested",
             "method=%s delay_ns=%" PRIu64 " message=\"%s\" user=\"%s\"", mname,
             req->delay, s->reboot_message, c->user);
    Gnoi__System__RebootResponse r = GNOI__SYSTEM__REBOOT_RESPONSE__INIT;
    finish(c, &r.base, GRPC_STATUS_OK, NULL);
out:
    gnoi__system__reboot_request__free_unpacked(req, NULL);
}

static void
sys_time(struct call *c)
{
    Gnoi__System__TimeRequest *req =
        recv_unary(c, &gnoi__system__time_request__descriptor);
    if (!req) {
        return;
    }
    gnoi__system__time_request__free_unpacked(req, NULL);
    Gnoi__System__TimeResponse r = GNOI__SYSTEM__TIME_RESPONSE__INIT;
    r.time = now_ns();
    finish(c, &r.base, GRPC_STATUS_OK, NULL);
}

/* --- gNOI File, confined to the image folder ------------------------- */

/* Map a client's path to a file in the image folder: absolute paths must
 * lie under -image_folder, relative ones are taken from it; no "..", ".",
 * empty or hidden component (dmsd's own state is .dmsd). NULL with why. */
static char *
file_resolve(struct dmsd *s, const char *remote, char *why, size_t size)
{
    char *full = dmsd_path_confine(s->cfg.image_folder, remote, why, size);
    if (!full) {
        return NULL;
    }
    size_t fl = strlen(s->cfg.image_folder);
    while (fl > 1 && s->cfg.image_folder[fl - 1] == '/') {
        fl--;
    }
    /* no symbolic link on the way may lead out of the folder */
    for (char *q = full + fl + 1; *q; q++) {
        if (*q == '/') {
            *q = '\0';
            struct stat st;
            bool link = lstat(full, &st) == 0 && S_ISLNK(st.st_mode);
            *q = '/';
            if (link) {
                snprintf(why, size, "\"%s\" goes through a symbolic link",
                         remote);
                free(full);
                return NULL;
            }
        }
    }
    return full;
}

static const EVP_MD *
hash_md(Gnoi__Types__HashType__HashMethod m)
{
    switch (m) {
    case GNOI__TYPES__HASH_TYPE__HASH_METHOD__SHA256:
        return EVP_sha256();
    case GNOI__TYPES__HASH_TYPE__HASH_METHOD__SHA512:
        return EVP_sha512();
    case GNOI__TYPES__HASH_TYPE__HASH_METHOD__MD5:
        return EVP_md5();
    default:
        return NULL;
    }
}

static void
file_put(struct call *c)
{
    struct dmsd *s = c->s;
    uint8_t *buf = NULL;
    size_t len;
    Gnoi__File__PutRequest *req = NULL;
    char why[512], *path = NULL, *tmp = NULL;
    int fd = -1;
    EVP_MD_CTX *md[3] = {EVP_MD_CTX_new(), EVP_MD_CTX_new(), EVP_MD_CTX_new()};
    EVP_DigestInit_ex(md[0], EVP_sha256(), NULL);
    EVP_DigestInit_ex(md[1], EVP_sha512(), NULL);
    EVP_DigestInit_ex(md[2], EVP_md5(), NULL);
    if (recv_msg(c, &buf, &len) <= 0 ||
        !(req = gnoi__file__put_request__unpack(NULL, len, buf)) ||
        req->request_case != GNOI__FILE__PUT_REQUEST__REQUEST_OPEN) {
        drop_partial(&fd, &tmp);
        finish(c, NULL, GRPC_STATUS_INVALID_ARGUMENT,
               "Put: the first message must be open (remote_file)");
        goto out;
    }
    path = file_resolve(s, req->open->remote_file, why, sizeof why);
    if (!path) {
        drop_partial(&fd, &tmp);
        finish(c, NULL, GRPC_STATUS_PERMISSION_DENIED, "Put: %s", why);
        goto out;
    }
    unsigned perm = req->open->permissions;
    /* the permissions field is octal digits written as decimal (644) */
    unsigned mode =
        (perm / 100 % 10) << 6 | (perm / 10 % 10) << 3 | (perm % 10);
    if (!mode) {
        mode = 0644;
    }
    char *slash = strrchr(path, '/');
    *slash = '\0';
    int rc = dir_create_all(path, 0755);
    *slash = '/';
    tmp = xasprintf("%.*s/.put-%s.partial", (int) (slash - path), path,
                    slash + 1);
    fd =
        rc < 0 ? -1 : open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        int e = rc < 0 ? -rc : errno;
        drop_partial(&fd, &tmp);
        finish(c, NULL, GRPC_STATUS_INTERNAL, "Put %s: %s",
               req->open->remote_file, strerror(e));
        goto out;
    }
    char remote[512];
    snprintf(remote, sizeof remote, "%s", req->open->remote_file);
    for (;;) {
        gnoi__file__put_request__free_unpacked(req, NULL);
        req = NULL;
        free(buf);
        buf = NULL;
        if (recv_msg(c, &buf, &len) <= 0) {
            drop_partial(&fd, &tmp);
            finish(c, NULL, GRPC_STATUS_ABORTED,
                   "Put %s: the stream ended without the hash message; "
                   "nothing was kept",
                   remote);
            goto out;
        }
        req = gnoi__file__put_request__unpack(NULL, len, buf);
        if (!req) {
            drop_partial(&fd, &tmp);
            finish(c, NULL, GRPC_STATUS_INVALID_ARGUMENT,
                   "Put %s: not a PutRequest", remote);
            goto out;
        }
        if (req->request_case == GNOI__FILE__PUT_REQUEST__REQUEST_CONTENTS) {
            ProtobufCBinaryData d = req->contents;
            for (int i = 0; i < 3; i++) {
                EVP_DigestUpdate(md[i], d.data, d.len);
            }
            if (write(fd, d.data, d.len) != (ssize_t) d.len) {
                int e = errno;
                drop_partial(&fd, &tmp);
                finish(c, NULL, GRPC_STATUS_RESOURCE_EXHAUSTED, "Put %s: %s",
                       remote, strerror(e));
                goto out;
            }
            continue;
        }
        if (req->request_case == GNOI__FILE__PUT_REQUEST__REQUEST_HASH) {
            break;
        }
        drop_partial(&fd, &tmp);
        finish(c, NULL, GRPC_STATUS_INVALID_ARGUMENT,
               "Put %s: expected contents or hash", remote);
        goto out;
    }
    const EVP_MD *want = hash_md(req->hash->method);
    if (!want) {
        drop_partial(&fd, &tmp);
        finish(c, NULL, GRPC_STATUS_INVALID_ARGUMENT,
               "Put %s: hash method must be SHA256, SHA512 or MD5", remote);
        goto out;
    }
    int idx = want == EVP_sha256() ? 0 : want == EVP_sha512() ? 1 : 2;
    unsigned char dig[EVP_MAX_MD_SIZE];
    unsigned dlen = 0;
    EVP_DigestFinal_ex(md[idx], dig, &dlen);
    if (req->hash->hash.len != dlen ||
        memcmp(req->hash->hash.data, dig, dlen)) {
        drop_partial(&fd, &tmp);
        finish(c, NULL, GRPC_STATUS_DATA_LOSS,
               "Put %s: the hash does not match the data received; nothing "
               "was kept",
               remote);
        goto out;
    }
    if (fsync(fd) < 0 || close(fd) < 0 || rename(tmp, path) < 0) {
        fd = -1;
        int e = errno;
        drop_partial(&fd, &tmp);
        finish(c, NULL, GRPC_STATUS_INTERNAL, "Put %s: %s", remote,
               strerror(e));
        goto out;
    }
    fd = -1;
    free(tmp);
    tmp = NULL;
    log_info("file put", "path=%s user=\"%s\"", path, c->user);
    Gnoi__File__PutResponse r = GNOI__FILE__PUT_RESPONSE__INIT;
    finish(c, &r.base, GRPC_STATUS_OK, NULL);
out:
    if (fd >= 0) {
        close(fd);
    }
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    for (int i = 0; i < 3; i++) {
        EVP_MD_CTX_free(md[i]);
    }
    free(path);
    if (req) {
        gnoi__file__put_request__free_unpacked(req, NULL);
    }
    free(buf);
}

static void
file_get(struct call *c)
{
    char why[512];
    Gnoi__File__GetRequest *req =
        recv_unary(c, &gnoi__file__get_request__descriptor);
    if (!req) {
        return;
    }
    char *path = file_resolve(c->s, req->remote_file, why, sizeof why);
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
    if (!path) {
        finish(c, NULL, GRPC_STATUS_PERMISSION_DENIED, "Get: %s", why);
    } else if (fd < 0) {
        finish(c, NULL, GRPC_STATUS_NOT_FOUND, "Get %s: %s", req->remote_file,
               strerror(errno));
    } else {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        EVP_DigestInit_ex(md, EVP_sha256(), NULL);
        uint8_t *b = xmalloc(64 * 1024);
        ssize_t k;
        bool ok = true;
        while (ok && (k = read(fd, b, 64 * 1024)) > 0) {
            EVP_DigestUpdate(md, b, (size_t) k);
            Gnoi__File__GetResponse r;
            gnoi__file__get_response__init(&r);
            r.response_case = GNOI__FILE__GET_RESPONSE__RESPONSE_CONTENTS;
            r.contents.data = b;
            r.contents.len = (size_t) k;
            ok = send_packed(c, &r.base);
        }
        unsigned char dig[EVP_MAX_MD_SIZE];
        unsigned dlen = 0;
        EVP_DigestFinal_ex(md, dig, &dlen);
        EVP_MD_CTX_free(md);
        free(b);
        Gnoi__Types__HashType h = GNOI__TYPES__HASH_TYPE__INIT;
        h.method = GNOI__TYPES__HASH_TYPE__HASH_METHOD__SHA256;
        h.hash.data = dig;
        h.hash.len = dlen;
        Gnoi__File__GetResponse r;
        gnoi__file__get_response__init(&r);
        r.response_case = GNOI__FILE__GET_RESPONSE__RESPONSE_HASH;
        r.hash = &h;
        finish(c, ok ? &r.base : NULL,
               ok ? GRPC_STATUS_OK : GRPC_STATUS_CANCELLED, NULL);
    }
    if (fd >= 0) {
        close(fd);
    }
    free(path);
    gnoi__file__get_request__free_unpacked(req, NULL);
}

static void
file_stat(struct call *c)
{
    char why[512];
    Gnoi__File__StatRequest *req =
        recv_unary(c, &gnoi__file__stat_request__descriptor);
    if (!req) {
        return;
    }
    char *path = file_resolve(c->s, req->path, why, sizeof why);
    struct stat st;
    if (!path) {
        finish(c, NULL, GRPC_STATUS_PERMISSION_DENIED, "Stat: %s", why);
    } else if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
        finish(c, NULL, GRPC_STATUS_NOT_FOUND, "Stat %s: no such file",
               req->path);
    } else {
        unsigned m = st.st_mode & 07777;
        Gnoi__File__StatInfo info = GNOI__FILE__STAT_INFO__INIT;
        info.path = req->path;
        info.last_modified = (uint64_t) st.st_mtim.tv_sec * 1000000000u +
                             (uint64_t) st.st_mtim.tv_nsec;
        info.permissions =
            (m >> 9) * 1000 + (m >> 6 & 7) * 100 + (m >> 3 & 7) * 10 + (m & 7);
        info.size = (uint64_t) st.st_size;
        info.umask = 22;
        Gnoi__File__StatInfo *list[] = {&info};
        Gnoi__File__StatResponse r = GNOI__FILE__STAT_RESPONSE__INIT;
        r.n_stats = 1;
        r.stats = list;
        finish(c, &r.base, GRPC_STATUS_OK, NULL);
    }
    free(path);
    gnoi__file__stat_request__free_unpacked(req, NULL);
}

static void
file_remove(struct call *c)
{
    char why[512];
    Gnoi__File__RemoveRequest *req =
        recv_unary(c, &gnoi__file__remove_request__descriptor);
    if (!req) {
        return;
    }
    char *path = file_resolve(c->s, req->remote_file, why, sizeof why);
    struct stat st;
    if (!path) {
        finish(c, NULL, GRPC_STATUS_PERMISSION_DENIED, "Remove: %s", why);
    } else if (lstat(path, &st) < 0 || S_ISDIR(st.st_mode)) {
        finish(c, NULL, GRPC_STATUS_NOT_FOUND,
               "Remove %s: no such file (directories are not removed)",
               req->remote_file);
    } else if (unlink(path) < 0) {
        finish(c, NULL, GRPC_STATUS_INTERNAL, "Remove %s: %s", req->remote_file,
               strerror(errno));
    } else {
        log_info("file removed", "path=%s user=\"%s\"", path, c->user);
        Gnoi__File__RemoveResponse r = GNOI__FILE__REMOVE_RESPONSE__INIT;
        finish(c, &r.base, GRPC_STATUS_OK, NULL);
    }
    free(path);
    gnoi__file__remove_request__free_unpacked(req, NULL);
}

/* --- dispatch -------------------------------------------------------- */

static const struct {
    const char *method;
    void (*fn)(struct call *c);
} handlers[] = {
    {"/gnmi.gNMI/Capabilities", gnmi_capabilities},
    {"/gnmi.gNMI/Get", gnmi_get},
    {"/gnmi.gNMI/Set", gnmi_set},
    {"/gnmi.gNMI/Subscribe", gnmi_subscribe},
    {"/gnoi.os.OS/Install", os_install},
    {"/gnoi.os.OS/Activate", os_activate},
    {"/gnoi.os.OS/Verify", os_verify},
    {"/gnoi.system.System/Reboot", sys_reboot},
    {"/gnoi.system.System/RebootStatus", sys_reboot_status},
    {"/gnoi.system.System/Time", sys_time},
    {"/gnoi.file.File/Put", file_put},
    {"/gnoi.file.File/Get", file_get},
    {"/gnoi.file.File/Stat", file_stat},
    {"/gnoi.file.File/Remove", file_remove},
};

static void *
call_main(void *arg)
{
    struct call *c = arg;
    struct dmsd *s = c->s;
    snprintf(c->method, sizeof c->method, "%.*s",
             (int) GRPC_SLICE_LENGTH(c->details.method),
             (const char *) GRPC_SLICE_START_PTR(c->details.method));
    if (authorize(c)) {
        size_t i;
        for (i = 0; i < ARRAY_SIZE(handlers); i++) {
            if (!strcmp(handlers[i].method, c->method)) {
                log_debug("call", "method=%s user=\"%s\"", c->method, c->user);
                handlers[i].fn(c);
                break;
            }
        }
        if (i == ARRAY_SIZE(handlers)) {
            finish(c, NULL, GRPC_STATUS_UNIMPLEMENTED,
                   "%s is not served by dmsd", c->method);
        }
    }
    grpc_call_unref(c->call);
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->md);
    grpc_completion_queue_shutdown(c->cq);
    while (grpc_completion_queue_pluck(c->cq, NULL,
                                       gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
               .type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(c->cq);
    free(c);
    pthread_mutex_lock(&s->mu);
    s->calls--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* The accept thread is done with one requested call of s. After this s
 * may be gone (dmsd_stop() waits for requests to reach 0). */
static void
request_done(struct dmsd *s)
{
    pthread_mutex_lock(&s->mu);
    s->requests--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static void
call_discard(struct call *c)
{
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->md);
    grpc_completion_queue_shutdown(c->cq);
    grpc_completion_queue_destroy(c->cq);
    free(c);
}

/* Ask s's server for its next call, unless s is stopping. A server that is
 * shutting down fails the request with an event (success false), so every
 * request counted here comes back to the accept thread. */
static void
request_next(struct dmsd *s)
{
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    s->requests++;
    pthread_mutex_unlock(&s->mu);
    struct call *c = xcalloc(1, sizeof *c);
    c->s = s;
    c->cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_call_details_init(&c->details);
    grpc_metadata_array_init(&c->md);
    if (grpc_server_request_call(s->server, &c->call, &c->details, &c->md,
                                 c->cq, s->pool->cq, c) != GRPC_CALL_OK) {
        log_error("cannot request a call", "target=%s",
                  s->cfg.name ? s->cfg.name : "dmsd");
        call_discard(c);
        request_done(s);
    }
}

static void *
accept_main(void *arg)
{
    struct dmsd_pool *p = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(
            p->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN) {
            break;
        }
        if (ev.type != GRPC_OP_COMPLETE || !ev.tag) {
            continue;
        }
        struct call *c = ev.tag;
        struct dmsd *s = c->s;
        if (!ev.success) {
            /* the target is stopping */
            call_discard(c);
            request_done(s);
            continue;
        }
        pthread_mutex_lock(&s->mu);
        s->calls++;
        pthread_mutex_unlock(&s->mu);
        pthread_t t;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (thread_start(&t, &attr, "dmsd-call", call_main, c) != 0) {
            grpc_call_cancel(c->call, NULL);
            call_main(c);
        }
        pthread_attr_destroy(&attr);
        request_next(s);
        request_done(s);
    }
    return NULL;
}

struct dmsd_pool *
dmsd_pool_create(struct dpf_error *err)
{
    struct dmsd_pool *p = xcalloc(1, sizeof *p);
    grpc_init();
    p->cq = grpc_completion_queue_create_for_next(NULL);
    if (thread_start(&p->accept_thread, NULL, "dmsd-accept", accept_main, p) <
        0) {
        dpf_error_set(err, 500, "InternalError",
                      "cannot start the request thread");
        dmsd_pool_destroy(p);
        return NULL;
    }
    p->accept_started = true;
    return p;
}

void
dmsd_pool_destroy(struct dmsd_pool *p)
{
    if (!p) {
        return;
    }
    grpc_completion_queue_shutdown(p->cq);
    if (p->accept_started) {
        pthread_join(p->accept_thread, NULL);
    } else {
        while (grpc_completion_queue_next(
                   p->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
                   .type != GRPC_QUEUE_SHUTDOWN) {
        }
    }
    grpc_completion_queue_destroy(p->cq);
    grpc_shutdown();
    free(p);
}

/* --- lifecycle ------------------------------------------------------- */

static bool
is_loopback(const char *addr)
{
    return str_has_prefix(addr, "127.") || str_has_prefix(addr, "[::1]") ||
           str_has_prefix(addr, "localhost:");
}

/* The string fields of a configuration, for copying and freeing. The PEM
 * texts are not kept: they are read during the start only. */
static const char **
config_strings(struct dmsd_config *c, size_t i)
{
    const char **f[] = {
        &c->bind_address, &c->ca,       &c->tls_cert_file, &c->tls_key_file,
        &c->username,     &c->password, &c->allowed_users, &c->image_folder,
        &c->state_dir,    &c->rshim,    &c->target_pci,    &c->sysfs,
        &c->name,
    };
    return i < ARRAY_SIZE(f) ? f[i] : NULL;
}

static void
config_free(struct dmsd_config *c)
{
    const char **f;
    for (size_t i = 0; (f = config_strings(c, i)); i++) {
        free((char *) *f);
        *f = NULL;
    }
}

/* Why a listen on addr ("host:port") fails, asked of the kernel with a
 * socket of our own (gRPC only says that it did), into why. */
static void
bind_reason(const char *addr, char *why, size_t size)
{
    snprintf(why, size, "not an address:port");
    char host[256];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t) (colon - addr) >= sizeof host) {
        return;
    }
    snprintf(host, sizeof host, "%.*s", (int) (colon - addr), addr);
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (!colon[1] || *end || port < 0 || port > 65535) {
        return;
    }
    size_t hl = strlen(host);
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    struct sockaddr_storage ss = {0};
    socklen_t len;
    struct sockaddr_in *in4 = (struct sockaddr_in *) &ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &ss;
    if (inet_pton(AF_INET, host, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t) port);
        len = sizeof *in4;
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t) port);
        len = sizeof *in6;
    } else {
        snprintf(why, size, "not a numeric address");
        return;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, size, "%s", strerror(errno));
        return;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *) &ss, len) < 0 || listen(fd, 1) < 0) {
        snprintf(why, size, "%s", strerror(errno));
    } else {
        snprintf(why, size, "refused by gRPC");
    }
    close(fd);
}

/* What gRPC would only report as a port it cannot add: a CA, certificate
 * or key that does not parse, or a key that is not the certificate's.
 * Each is named as the caller gave it (flag and file, or the PEM field of
 * a --targets line). */
static bool
pem_check(const struct dmsd_config *cfg, const char *ca, const char *crt,
          const char *key, struct dpf_error *err)
{
    char what[3][300];
    snprintf(what[0], sizeof what[0], cfg->ca_pem ? "ca_pem" : "-ca %s",
             cfg->ca);
    snprintf(what[1], sizeof what[1],
             cfg->cert_pem ? "cert_pem" : "-tls_cert_file %s",
             cfg->tls_cert_file);
    snprintf(what[2], sizeof what[2],
             cfg->key_pem ? "key_pem" : "-tls_key_file %s", cfg->tls_key_file);
    X509 *x = NULL;
    EVP_PKEY *pk = NULL;
    bool ok = false;
    if (ca) {
        BIO *b = BIO_new_mem_buf(ca, -1);
        X509 *c = PEM_read_bio_X509(b, NULL, NULL, NULL);
        BIO_free(b);
        if (!c) {
            dpf_error_set(err, 400, "BadRequest",
                          "%s: no PEM certificate in it", what[0]);
            goto out;
        }
        X509_free(c);
    }
    BIO *b = BIO_new_mem_buf(crt, -1);
    x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!x) {
        dpf_error_set(err, 400, "BadRequest", "%s: no PEM certificate in it",
                      what[1]);
        goto out;
    }
    b = BIO_new_mem_buf(key, -1);
    pk = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    if (!pk) {
        dpf_error_set(err, 400, "BadRequest",
                      "%s: no unencrypted PEM private key in it", what[2]);
        goto out;
    }
    if (X509_check_private_key(x, pk) != 1) {
        dpf_error_set(err, 400, "BadRequest",
                      "%s: not the key of the certificate in %s", what[2],
                      what[1]);
        goto out;
    }
    ok = true;
out:
    X509_free(x);
    EVP_PKEY_free(pk);
    ERR_clear_error();
    return ok;
}

struct dmsd *
dmsd_start(const struct dmsd_config *cfg, struct dpf_error *err)
{
    struct dmsd_pool *p = dmsd_pool_create(err);
    if (!p) {
        return NULL;
    }
    struct dmsd *s = dmsd_start_in(p, cfg, err);
    if (!s) {
        dmsd_pool_destroy(p);
        return NULL;
    }
    s->own_pool = true;
    return s;
}

struct dmsd *
dmsd_start_in(struct dmsd_pool *pool, const struct dmsd_config *cfg,
              struct dpf_error *err)
{
    if (!cfg->image_folder || !cfg->rshim) {
        dpf_error_set(err, 400, "BadRequest",
                      "-image_folder and -rshim are required");
        return NULL;
    }
    if (cfg->auth == DMSD_AUTH_NONE && !is_loopback(cfg->bind_address)) {
        dpf_error_set(err, 400, "BadRequest",
                      "-auth none serves without TLS and is allowed only on "
                      "a loopback -bind_address (127.0.0.1:PORT), not %s",
                      cfg->bind_address);
        return NULL;
    }
    char *ca = NULL, *crt = NULL, *key = NULL;
    size_t n;
    if (cfg->auth != DMSD_AUTH_NONE) {
        const char *files[3] = {cfg->ca, cfg->tls_cert_file, cfg->tls_key_file};
        const char *flags[3] = {"-ca", "-tls_cert_file", "-tls_key_file"};
        char **dst[3] = {&ca, &crt, &key};
        for (int i = 0; i < 3; i++) {
            if (i == 0 && cfg->auth != DMSD_AUTH_CERT && !files[0]) {
                continue;
            }
            const char *pem = i == 0   ? cfg->ca_pem
                              : i == 1 ? cfg->cert_pem
                                       : cfg->key_pem;
            if (pem) {
                *dst[i] = xstrdup(pem);
                continue;
            }
            int rc = files[i] ? file_read_all(files[i], dst[i], &n) : -ENOENT;
            if (rc < 0) {
                dpf_error_set(err, 400, "BadRequest", "%s %s: %s", flags[i],
                              files[i] ? files[i] : "(not given)",
                              strerror(-rc));
                free(ca);
                free(crt);
                free(key);
                return NULL;
            }
        }
    }
    if (cfg->auth != DMSD_AUTH_NONE && !pem_check(cfg, ca, crt, key, err)) {
        free(ca);
        free(crt);
        free(key);
        return NULL;
    }
    struct dmsd *s = xcalloc(1, sizeof *s);
    s->cfg = *cfg;
    s->cfg.ca_pem = s->cfg.cert_pem = s->cfg.key_pem = NULL;
    if (!s->cfg.sysfs) {
        s->cfg.sysfs = "/sys";
    }
    const char **f;
    for (size_t i = 0; (f = config_strings(&s->cfg, i)); i++) {
        *f = *f ? xstrdup(*f) : NULL;
    }
    s->pool = pool;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    snprintf(s->mode, sizeof s->mode, "DPU");
    s->state_dir = cfg->state_dir ? xstrdup(cfg->state_dir)
                                  : xasprintf("%s/.dmsd", cfg->image_folder);
    int rc = dir_create_all(s->state_dir, 0700);
    if (rc == 0) {
        rc = dir_create_all(cfg->image_folder, 0755);
    }
    if (rc < 0) {
        dpf_error_set(err, 500, "InternalError", "%s: %s", s->state_dir,
                      strerror(-rc));
        goto fail;
    }
    load_state(s);
    /* Bound what gRPC buffers per call: without the BDP probe the stream
     * window stays at the lookahead instead of growing to many MiB as an
     * image streams in, which is what a transfer's RSS was made of. A
     * window of 1 MiB still keeps a loopback transfer moving. */
    grpc_arg args[] = {
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_HTTP2_BDP_PROBE,
         .value.integer = 0},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES,
         .value.integer = DMSD_WINDOW},
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
         .value.integer = DMSD_MAX_MESSAGE},
        /* gRPC sets SO_REUSEPORT by default: then a second dmsd (or a
         * second target of this one) would share a port already served
         * instead of being told it is in use */
        {.type = GRPC_ARG_INTEGER,
         .key = GRPC_ARG_ALLOW_REUSEPORT,
         .value.integer = 0},
    };
    grpc_channel_args chargs = {ARRAY_SIZE(args), args};
    s->server = grpc_server_create(&chargs, NULL);
    grpc_server_register_completion_queue(s->server, pool->cq, NULL);
    grpc_server_credentials *creds;
    if (cfg->auth == DMSD_AUTH_NONE) {
        creds = grpc_insecure_server_credentials_create();
    } else {
        grpc_ssl_pem_key_cert_pair pair = {key, crt};
        creds = grpc_ssl_server_credentials_create_ex(
            ca, &pair, 1,
            cfg->auth == DMSD_AUTH_CERT
                ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            NULL);
    }
    s->port = grpc_server_add_http2_port(s->server, cfg->bind_address, creds);
    grpc_server_credentials_release(creds);
    free(ca);
    free(crt);
    free(key);
    ca = crt = key = NULL;
    if (s->port <= 0) {
        char why[128];
        bind_reason(cfg->bind_address, why, sizeof why);
        dpf_error_set(err, 500, "InternalError", "bind %s: %s",
                      cfg->bind_address, why);
        goto fail;
    }
    grpc_server_start(s->server);
    request_next(s);
    const char *auth = cfg->auth == DMSD_AUTH_CERT          ? "cert"
                       : cfg->auth == DMSD_AUTH_CREDENTIALS ? "credentials"
                                                            : "none";
    if (cfg->name) {
        log_info("serving gNMI and gNOI",
                 "target=%s address=%s port=%d auth=%s rshim=%s", cfg->name,
                 cfg->bind_address, s->port, auth, cfg->rshim);
    } else {
        log_info("serving gNMI and gNOI", "address=%s port=%d auth=%s rshim=%s",
                 cfg->bind_address, s->port, auth, cfg->rshim);
    }
    return s;
fail:
    free(ca);
    free(crt);
    free(key);
    dmsd_stop(s);
    return NULL;
}

int
dmsd_port(const struct dmsd *s)
{
    return s->port;
}

void
dmsd_stop(struct dmsd *s)
{
    if (!s) {
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_mutex_unlock(&s->mu);
    if (s->server) {
        grpc_completion_queue *scq =
            grpc_completion_queue_create_for_pluck(NULL);
        grpc_server_shutdown_and_notify(s->server, scq, scq);
        grpc_server_cancel_all_calls(s->server);
        grpc_completion_queue_pluck(scq, scq,
                                    gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        grpc_completion_queue_destroy(scq);
        /* the shutdown failed the pending request: wait until the accept
         * thread has seen it, and for the calls' threads */
        pthread_mutex_lock(&s->mu);
        while (s->calls || s->requests) {
            pthread_cond_wait(&s->cv, &s->mu);
        }
        pthread_mutex_unlock(&s->mu);
        grpc_server_destroy(s->server);
    }
    if (s->push_started) {
        pthread_join(s->push_thread, NULL);
    }
    if (s->own_pool) {
        dmsd_pool_destroy(s->pool);
    }
    config_free(&s->cfg);
    free(s->state_dir);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
