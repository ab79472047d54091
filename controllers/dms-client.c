/* dms-client: gNMI/gNOI calls to DMS from gRPC core. See dms-client.h.
 *
 * gRPC core is asynchronous: a call is a set of operation batches whose
 * completions arrive on a completion queue. Each client owns one queue
 * and runs one call at a time, so every wait below is "take events off
 * the queue until the batch we need is complete", with a 100 ms poll so
 * the cancel flag is seen promptly. A call never ends with a batch still
 * in flight: end_call() cancels and drains them first, because a late
 * completion would otherwise name a struct that is gone. */
#include <errno.h>
#include <fcntl.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "controllers/dms-client.h"
#include "gnmi.pb-c.h"
#include "gnoi_os.pb-c.h"
#include "gnoi_system.pb-c.h"
#include "lib/base/log.h"
#include "lib/base/util.h"

LOG_MODULE(dmsclient);

#define DMS_POLL_MS 100
#define DMS_CALL_MS_DEFAULT 30000
#define DMS_INSTALL_MS_DEFAULT (30 * 60 * 1000)
#define DMS_CHUNK_DEFAULT (64 * 1024)
#define DMS_CHUNK_MAX (4 * 1024 * 1024 - 64) /* gRPC's default message cap */
/* room in front of each content chunk for its protobuf field header */
#define DMS_HDR_ROOM 16

struct dms_client {
    char *target;
    char *ca, *cert, *key;
    char *server_name;
    char *dpu, *host;
    int64_t call_ms, install_ms;
    const atomic_bool *cancel;
    grpc_channel_credentials *creds;
    grpc_channel *ch;
    grpc_completion_queue *cq;
};

/* One batch in flight: its completion is the struct's address. */
struct op {
    bool started, done, ok;
};

/* A call and its batches. */
struct rpc {
    struct dms_client *c;
    const char *what; /* "OS.Install of bf.bfb", for messages */
    grpc_call *call;
    struct op send, recv, status;
    bool cancelled; /* we cancelled it because the flag was raised */
    bool stalled;   /* we cancelled it because nothing moved */
    grpc_metadata_array md_in, trailers;
    grpc_status_code code;
    grpc_slice details;
    bool have_status;
};

static bool
cancel_raised(const struct dms_client *c)
{
    return c->cancel && atomic_load(c->cancel);
}

static gpr_timespec
after_ms(int64_t ms)
{
    return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                        gpr_time_from_millis(ms, GPR_TIMESPAN));
}

bool
dms_error_retriable(int rc)
{
    return rc == -EAGAIN || rc == -ETIMEDOUT;
}

static char *
host_of(const char *target)
{
    const char *p = target;
    if (*p == '[') { /* [v6]:port */
        const char *e = strchr(p, ']');
        return e ? xstrndup(p + 1, (size_t) (e - p - 1)) : xstrdup(p);
    }
    const char *colon = strrchr(p, ':');
    return colon ? xstrndup(p, (size_t) (colon - p)) : xstrdup(p);
}

/* "DPU ns/name on host h, DMS at ip:port" */
static void
who(const struct dms_client *c, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s%s%s%sDMS at %s", c->dpu ? "DPU " : "",
             c->dpu ? c->dpu : "", c->host ? " on host " : "",
             c->host ? c->host : "", c->dpu || c->host ? ", " : "", c->target);
}

static void fail(const struct dms_client *c, struct dpf_error *err, int code,
                 const char *reason, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void
fail(const struct dms_client *c, struct dpf_error *err, int code,
     const char *reason, const char *what, const char *fmt, ...)
{
    char w[384], msg[768];
    who(c, w, sizeof w);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    dpf_error_set(err, code, reason, "%s: %s: %s", w, what, msg);
}

struct dms_client *
dms_client_create(const struct dms_client_config *cfg, struct dpf_error *err)
{
    const char *missing = !cfg->target     ? "the DMS address"
                          : !cfg->ca_pem   ? "the CA certificate"
                          : !cfg->cert_pem ? "the client certificate"
                          : !cfg->key_pem  ? "the client key"
                                           : NULL;
    if (missing) {
        dpf_error_set(err, 400, "Invalid", "DMS client for %s: %s is missing",
                      cfg->dpu ? cfg->dpu : "a DPU", missing);
        return NULL;
    }
    const char *pems[3] = {cfg->ca_pem, cfg->cert_pem, cfg->key_pem};
    static const char *const pem_names[3] = {
        "CA certificate", "client certificate", "client key"};
    for (int i = 0; i < 3; i++) {
        if (!strstr(pems[i], "-----BEGIN ")) {
            dpf_error_set(err, 400, "Invalid",
                          "DMS client for %s: the %s is not PEM text",
                          cfg->dpu ? cfg->dpu : "a DPU", pem_names[i]);
            return NULL;
        }
    }
    struct dms_client *c = xcalloc(1, sizeof *c);
    c->target = xstrdup(cfg->target);
    c->ca = xstrdup(cfg->ca_pem);
    c->cert = xstrdup(cfg->cert_pem);
    c->key = xstrdup(cfg->key_pem);
    c->server_name =
        cfg->server_name ? xstrdup(cfg->server_name) : host_of(cfg->target);
    c->dpu = xstrdup(cfg->dpu);
    c->host = xstrdup(cfg->host);
    c->call_ms =
        cfg->call_timeout_ms > 0 ? cfg->call_timeout_ms : DMS_CALL_MS_DEFAULT;
    c->install_ms = cfg->install_timeout_ms > 0 ? cfg->install_timeout_ms
                                                : DMS_INSTALL_MS_DEFAULT;
    c->cancel = cfg->cancel;

    grpc_init();
    grpc_ssl_pem_key_cert_pair pair = {c->key, c->cert};
    c->creds = grpc_ssl_credentials_create(c->ca, &pair, NULL, NULL);
    /* a restarted DMS pod is reached again within seconds, not after
     * gRPC's default backoff of up to two minutes. gRPC takes its "min
     * reconnect backoff" as the deadline of one connection attempt (TCP,
     * TLS and the HTTP/2 SETTINGS): 500 ms failed installs with
     * "connection attempt timed out" on a loaded machine, so an attempt
     * gets 10 s while the retries still start 500 ms apart. */
    grpc_arg args[4];
    size_t nargs = 0;
    args[nargs++] = (grpc_arg){.type = GRPC_ARG_INTEGER,
                               .key = GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS,
                               .value.integer = 500};
    args[nargs++] = (grpc_arg){.type = GRPC_ARG_INTEGER,
                               .key = GRPC_ARG_MIN_RECONNECT_BACKOFF_MS,
                               .value.integer = 10000};
    args[nargs++] = (grpc_arg){.type = GRPC_ARG_INTEGER,
                               .key = GRPC_ARG_MAX_RECONNECT_BACKOFF_MS,
                               .value.integer = 3000};
    char *host = host_of(c->target);
    if (strcmp(host, c->server_name) != 0) {
        args[nargs++] = (grpc_arg){.type = GRPC_ARG_STRING,
                                   .key = GRPC_SSL_TARGET_NAME_OVERRIDE_ARG,
                                   .value.string = c->server_name};
    }
    free(host);
    grpc_channel_args ca = {.num_args = nargs, .args = args};
    c->ch = grpc_channel_create(c->target, c->creds, &ca);
    c->cq = grpc_completion_queue_create_for_next(NULL);
    return c;
}

void
dms_client_destroy(struct dms_client *c)
{
    if (!c) {
        return;
    }
    grpc_channel_destroy(c->ch);
    grpc_completion_queue_shutdown(c->cq);
    while (grpc_completion_queue_next(c->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
                                      NULL)
               .type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(c->cq);
    grpc_channel_credentials_release(c->creds);
    grpc_shutdown();
    explicit_bzero(c->key, strlen(c->key));
    free(c->target);
    free(c->ca);
    free(c->cert);
    free(c->key);
    free(c->server_name);
    free(c->dpu);
    free(c->host);
    free(c);
}

/* --- calls ----------------------------------------------------------- */

static void
rpc_start(struct rpc *r, struct dms_client *c, const char *method,
          const char *what, int64_t deadline_ms)
{
    memset(r, 0, sizeof *r);
    r->c = c;
    r->what = what;
    grpc_metadata_array_init(&r->md_in);
    grpc_metadata_array_init(&r->trailers);
    r->details = grpc_empty_slice();
    grpc_slice m = grpc_slice_from_static_string(method);
    r->call =
        grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, c->cq, m,
                                 NULL, after_ms(deadline_ms), NULL);
}

static void
batch(struct rpc *r, grpc_op *ops, size_t n, struct op *o)
{
    *o = (struct op){.started = true};
    grpc_call_error e = grpc_call_start_batch(r->call, ops, n, o, NULL);
    if (e != GRPC_CALL_OK) {
        /* programming error in the op set; the call fails like a broken
         * one */
        log_error("gRPC batch refused", "call=%s error=%d", r->what, (int) e);
        o->done = true;
        o->ok = false;
    }
}

/* Take events until one of a, b (b may be NULL) is done. Raises the
 * call's cancellation when the flag is set or, with stall_ms > 0, when
 * nothing completed for that long. */
static void
wait_ops(struct rpc *r, struct op *a, struct op *b, int64_t stall_ms)
{
    int64_t last = time_mono_ms();
    while (!(a && a->done) && !(b && b->done)) {
        if (!r->cancelled && !r->stalled) {
            if (cancel_raised(r->c)) {
                r->cancelled = true;
                grpc_call_cancel(r->call, NULL);
            } else if (stall_ms > 0 && time_mono_ms() - last > stall_ms) {
                r->stalled = true;
                grpc_call_cancel_with_status(r->call,
                                             GRPC_STATUS_DEADLINE_EXCEEDED,
                                             "no progress", NULL);
            }
        }
        grpc_event ev =
            grpc_completion_queue_next(r->c->cq, after_ms(DMS_POLL_MS), NULL);
        if (ev.type == GRPC_OP_COMPLETE) {
            struct op *o = ev.tag;
            o->done = true;
            o->ok = ev.success;
            last = time_mono_ms();
        } else if (ev.type == GRPC_QUEUE_SHUTDOWN) {
            return;
        }
    }
}

static void
start_status(struct rpc *r)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    op.data.recv_status_on_client.trailing_metadata = &r->trailers;
    op.data.recv_status_on_client.status = &r->code;
    op.data.recv_status_on_client.status_details = &r->details;
    batch(r, &op, 1, &r->status);
    r->have_status = true;
}

/* Wait for the final status (cancelling first when asked to). */
static void
rpc_status(struct rpc *r, bool cancel)
{
    if (cancel && !r->status.done) {
        grpc_call_cancel(r->call, NULL);
    }
    while (!r->status.done) {
        wait_ops(r, &r->status, NULL, 0);
    }
}

/* End the call: cancel it if still running and drain every batch. */
static void
rpc_end(struct rpc *r)
{
    bool running = (r->send.started && !r->send.done) ||
                   (r->recv.started && !r->recv.done) ||
                   (r->status.started && !r->status.done);
    if (running) {
        grpc_call_cancel(r->call, NULL);
    }
    struct op *ops[3] = {&r->send, &r->recv, &r->status};
    for (int i = 0; i < 3; i++) {
        while (ops[i]->started && !ops[i]->done) {
            wait_ops(r, ops[i], NULL, 0);
        }
    }
    grpc_call_unref(r->call);
    grpc_slice_unref(r->details);
    grpc_metadata_array_destroy(&r->md_in);
    grpc_metadata_array_destroy(&r->trailers);
}

static bool
contains_ci(const char *s, const char *needle)
{
    return strcasestr(s, needle) != NULL;
}

/* The error of a call whose status is in r (status OK with an early end of
 * stream is a protocol error). */
static int
rpc_error(struct rpc *r, struct dpf_error *err)
{
    struct dms_client *c = r->c;
    char det[512] = "";
    if (r->have_status && r->status.done) {
        size_t n = GRPC_SLICE_LENGTH(r->details);
        snprintf(det, sizeof det, "%.*s", (int) DPF_MIN(n, sizeof det - 1),
                 (const char *) GRPC_SLICE_START_PTR(r->details));
    }
    grpc_status_code code =
        r->have_status && r->status.done ? r->code : GRPC_STATUS_UNKNOWN;
    if (r->cancelled || cancel_raised(c)) {
        fail(c, err, 409, "Conflict", r->what,
             "cancelled (the DPU is being deleted or the install was "
             "abandoned)");
        return -ECANCELED;
    }
    if (r->stalled) {
        fail(c, err, 504, "Timeout", r->what,
             "DMS made no progress for %" PRId64
             " s; the controller retries the install from the start",
             c->call_ms / 1000);
        return -ETIMEDOUT;
    }
    switch (code) {
    case GRPC_STATUS_OK:
        fail(c, err, 502, "InternalError", r->what,
             "DMS ended the call without the answer gNOI requires; check "
             "the DMS pod's log");
        return -EPROTO;
    case GRPC_STATUS_DEADLINE_EXCEEDED:
        fail(c, err, 504, "Timeout", r->what,
             "no answer before the deadline (%s); the controller retries", det);
        return -ETIMEDOUT;
    case GRPC_STATUS_UNAVAILABLE:
    case GRPC_STATUS_CANCELLED:
    case GRPC_STATUS_ABORTED:
    case GRPC_STATUS_UNKNOWN:
    case GRPC_STATUS_INTERNAL:
        if (contains_ci(det, "handshake") || contains_ci(det, "certificate") ||
            contains_ci(det, "ssl")) {
            fail(c, err, 403, "Forbidden", r->what,
                 "the TLS handshake failed (%s): the DMS server certificate "
                 "must be signed by the CA in ca.crt of the DPU's "
                 "<dpu>-server-secret and name %s, and Secret "
                 "dpf-provisioning-client-secret must hold a client "
                 "certificate from the same CA",
                 det, c->server_name);
            return -EACCES;
        }
        /* TLS 1.3: a server that refuses our certificate closes the
         * connection right after the handshake, before any call */
        if (contains_ci(det, "failed to connect") &&
            contains_ci(det, "socket closed")) {
            fail(c, err, 403, "Forbidden", r->what,
                 "DMS closed the connection during the TLS handshake (%s): "
                 "it most likely refuses our client certificate; Secret "
                 "dpf-provisioning-client-secret must be signed by the CA "
                 "dmsd trusts (--ca, ca.crt of the DPU's <dpu>-server-secret)",
                 det);
            return -EACCES;
        }
        if (code == GRPC_STATUS_UNAVAILABLE || code == GRPC_STATUS_CANCELLED ||
            code == GRPC_STATUS_ABORTED) {
            fail(c, err, 503, "ServiceUnavailable", r->what,
                 "DMS is unreachable or the connection broke (%s); check "
                 "that pod <dpu>-dms runs on the host; the controller "
                 "retries",
                 det[0] ? det : "no detail");
            return -EAGAIN;
        }
        break;
    case GRPC_STATUS_UNAUTHENTICATED:
    case GRPC_STATUS_PERMISSION_DENIED:
        fail(c, err, 403, "Forbidden", r->what,
             "DMS refused our client certificate (%s): Secret "
             "dpf-provisioning-client-secret must be signed by the CA dmsd "
             "trusts (--ca) and be allowed by its --allowed_users",
             det);
        return -EACCES;
    case GRPC_STATUS_NOT_FOUND:
        fail(c, err, 404, "NotFound", r->what, "%s", det);
        return -ENOENT;
    case GRPC_STATUS_UNIMPLEMENTED:
        fail(c, err, 501, "InternalError", r->what,
             "DMS does not implement this call (%s); is this DMS too old?",
             det);
        return -EIO;
    default:
        break;
    }
    fail(c, err, 502, "InternalError", r->what,
         "DMS answered with gRPC status %d: %s", (int) code, det);
    return -EIO;
}

static grpc_byte_buffer *
pack(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    grpc_slice sl = grpc_slice_malloc(n);
    protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(sl));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    return bb;
}

static ProtobufCMessage *
unpack(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d)
{
    grpc_byte_buffer_reader rd;
    if (!grpc_byte_buffer_reader_init(&rd, bb)) {
        return NULL;
    }
    grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
    ProtobufCMessage *m = protobuf_c_message_unpack(
        d, NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
    grpc_slice_unref(all);
    grpc_byte_buffer_reader_destroy(&rd);
    return m;
}

/* One unary call: *out the unpacked answer (free with
 * protobuf_c_message_free_unpacked). */
static int
unary(struct dms_client *c, const char *method, const char *what,
      const ProtobufCMessage *req, const ProtobufCMessageDescriptor *rd,
      ProtobufCMessage **out, struct dpf_error *err)
{
    *out = NULL;
    if (cancel_raised(c)) {
        fail(c, err, 409, "Conflict", what, "cancelled before it started");
        return -ECANCELED;
    }
    struct rpc r;
    rpc_start(&r, c, method, what, c->call_ms);
    grpc_byte_buffer *sendbb = pack(req), *recvbb = NULL;
    grpc_op ops[6];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = sendbb;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &r.md_in;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recvbb;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &r.trailers;
    ops[5].data.recv_status_on_client.status = &r.code;
    ops[5].data.recv_status_on_client.status_details = &r.details;
    batch(&r, ops, 6, &r.status);
    r.have_status = true;
    wait_ops(&r, &r.status, NULL, 0);
    grpc_byte_buffer_destroy(sendbb);
    int rc = 0;
    if (r.status.ok && r.code == GRPC_STATUS_OK && recvbb && !r.cancelled) {
        *out = unpack(recvbb, rd);
        if (!*out) {
            fail(c, err, 502, "InternalError", what,
                 "the answer is not a %s message", rd->name);
            rc = -EPROTO;
        }
    } else {
        rc = rpc_error(&r, err);
    }
    if (recvbb) {
        grpc_byte_buffer_destroy(recvbb);
    }
    rpc_end(&r);
    return rc;
}

/* --- gNMI ------------------------------------------------------------ */

/* "/a/b[k=v]/c" into elems (keys kept inside [...], '/' allowed there). */
static int
path_parse(const char *text, Gnmi__Path *p)
{
    gnmi__path__init(p);
    const char *s = text;
    while (*s == '/') {
        s++;
    }
    while (*s) {
        const char *e = s;
        int depth = 0;
        while (*e && (depth || *e != '/')) {
            depth += *e == '[' ? 1 : *e == ']' ? -1 : 0;
            e++;
        }
        if (depth) {
            return -EINVAL;
        }
        const char *br = memchr(s, '[', (size_t) (e - s));
        Gnmi__PathElem *pe = xmalloc(sizeof *pe);
        gnmi__path_elem__init(pe);
        pe->name = xstrndup(s, (size_t) ((br ? br : e) - s));
        while (br && br < e) {
            const char *close = memchr(br, ']', (size_t) (e - br));
            const char *eq = memchr(br, '=', (size_t) (close - br));
            if (!eq) {
                free(pe->name);
                free(pe);
                return -EINVAL;
            }
            Gnmi__PathElem__KeyEntry *k = xmalloc(sizeof *k);
            gnmi__path_elem__key_entry__init(k);
            k->key = xstrndup(br + 1, (size_t) (eq - br - 1));
            k->value = xstrndup(eq + 1, (size_t) (close - eq - 1));
            pe->key = xrealloc(pe->key, (pe->n_key + 1) * sizeof *pe->key);
            pe->key[pe->n_key++] = k;
            br = close + 1 < e && close[1] == '[' ? close + 1 : NULL;
        }
        p->elem = xrealloc(p->elem, (p->n_elem + 1) * sizeof *p->elem);
        p->elem[p->n_elem++] = pe;
        s = *e ? e + 1 : e;
    }
    return p->n_elem ? 0 : -EINVAL;
}

static void
path_free(Gnmi__Path *p)
{
    for (size_t i = 0; i < p->n_elem; i++) {
        for (size_t k = 0; k < p->elem[i]->n_key; k++) {
            free(p->elem[i]->key[k]->key);
            free(p->elem[i]->key[k]->value);
            free(p->elem[i]->key[k]);
        }
        free(p->elem[i]->key);
        free(p->elem[i]->name);
        free(p->elem[i]);
    }
    free(p->elem);
}

int
dms_set_mode_dpu(struct dms_client *c, struct dpf_error *err)
{
    Gnmi__Path path;
    path_parse("/nvidia/mode/config/mode", &path);
    Gnmi__TypedValue val = GNMI__TYPED_VALUE__INIT;
    val.value_case = GNMI__TYPED_VALUE__VALUE_STRING_VAL;
    val.string_val = "DPU";
    Gnmi__Update up = GNMI__UPDATE__INIT;
    up.path = &path;
    up.val = &val;
    Gnmi__Update *ups[1] = {&up};
    Gnmi__SetRequest req = GNMI__SET_REQUEST__INIT;
    req.n_update = 1;
    req.update = ups;
    ProtobufCMessage *resp;
    int rc = unary(c, "/gnmi.gNMI/Set", "gNMI Set of mode DPU", &req.base,
                   &gnmi__set_response__descriptor, &resp, err);
    path_free(&path);
    if (resp) {
        protobuf_c_message_free_unpacked(resp, NULL);
    }
    return rc;
}

static char *
typed_text(const Gnmi__TypedValue *v)
{
    switch (v->value_case) {
    case GNMI__TYPED_VALUE__VALUE_STRING_VAL:
        return xstrdup(v->string_val);
    case GNMI__TYPED_VALUE__VALUE_ASCII_VAL:
        return xstrdup(v->ascii_val);
    case GNMI__TYPED_VALUE__VALUE_JSON_VAL:
        return xstrndup((const char *) v->json_val.data, v->json_val.len);
    case GNMI__TYPED_VALUE__VALUE_JSON_IETF_VAL:
        return xstrndup((const char *) v->json_ietf_val.data,
                        v->json_ietf_val.len);
    case GNMI__TYPED_VALUE__VALUE_INT_VAL:
        return xasprintf("%" PRId64, v->int_val);
    case GNMI__TYPED_VALUE__VALUE_UINT_VAL:
        return xasprintf("%" PRIu64, v->uint_val);
    case GNMI__TYPED_VALUE__VALUE_BOOL_VAL:
        return xstrdup(v->bool_val ? "true" : "false");
    default:
        return NULL;
    }
}

int
dms_get(struct dms_client *c, const char *path, char **value,
        struct dpf_error *err)
{
    *value = NULL;
    char what[320];
    snprintf(what, sizeof what, "gNMI Get %s", path);
    Gnmi__Path p;
    if (path_parse(path, &p) < 0) {
        path_free(&p);
        fail(c, err, 400, "Invalid", what,
             "not a gNMI path (/elem/elem[key=value]/...)");
        return -EINVAL;
    }
    Gnmi__Path *paths[1] = {&p};
    Gnmi__GetRequest req = GNMI__GET_REQUEST__INIT;
    req.n_path = 1;
    req.path = paths;
    ProtobufCMessage *m;
    int rc = unary(c, "/gnmi.gNMI/Get", what, &req.base,
                   &gnmi__get_response__descriptor, &m, err);
    path_free(&p);
    if (rc < 0) {
        return rc;
    }
    Gnmi__GetResponse *resp = (Gnmi__GetResponse *) m;
    if (resp->n_notification && resp->notification[0]->n_update &&
        resp->notification[0]->update[0]->val) {
        *value = typed_text(resp->notification[0]->update[0]->val);
    }
    protobuf_c_message_free_unpacked(m, NULL);
    if (!*value) {
        fail(c, err, 404, "NotFound", what, "DMS returned no value");
        return -ENOENT;
    }
    return 0;
}

/* --- gNOI OS --------------------------------------------------------- */

static const char *
install_error_name(Gnoi__Os__InstallError__Type t)
{
    switch (t) {
    case GNOI__OS__INSTALL_ERROR__TYPE__INCOMPATIBLE:
        return "INCOMPATIBLE";
    case GNOI__OS__INSTALL_ERROR__TYPE__TOO_LARGE:
        return "TOO_LARGE";
    case GNOI__OS__INSTALL_ERROR__TYPE__PARSE_FAIL:
        return "PARSE_FAIL";
    case GNOI__OS__INSTALL_ERROR__TYPE__INTEGRITY_FAIL:
        return "INTEGRITY_FAIL";
    case GNOI__OS__INSTALL_ERROR__TYPE__INSTALL_RUN_PACKAGE:
        return "INSTALL_RUN_PACKAGE";
    case GNOI__OS__INSTALL_ERROR__TYPE__INSTALL_IN_PROGRESS:
        return "INSTALL_IN_PROGRESS";
    default:
        return "UNSPECIFIED";
    }
}

static int
varint(uint8_t *p, uint64_t v)
{
    int n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t) (v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t) v;
    return n;
}

/* The next transfer_content message: the field header (field 2, length
 * delimited) written just in front of the data, which is read straight
 * into the slice (no second copy of 64 KiB per message). 0 at the end,
 * -errno on a read error. */
static ssize_t
next_content(const struct dms_install *in, int fd, size_t chunk,
             uint64_t offset, grpc_byte_buffer **out)
{
    grpc_slice sl = grpc_slice_malloc(chunk + DMS_HDR_ROOM);
    uint8_t *p = GRPC_SLICE_START_PTR(sl);
    ssize_t k;
    if (fd >= 0) {
        do {
            k = read(fd, p + DMS_HDR_ROOM, chunk);
        } while (k < 0 && errno == EINTR);
        if (k < 0) {
            k = -errno;
        }
    } else {
        size_t left = in->len - (size_t) offset;
        k = (ssize_t) DPF_MIN(left, chunk);
        memcpy(p + DMS_HDR_ROOM, (const uint8_t *) in->data + offset,
               (size_t) k);
    }
    if (k > 0) {
        uint8_t h[DMS_HDR_ROOM];
        h[0] = 0x12; /* InstallRequest.transfer_content, bytes */
        int hl = 1 + varint(h + 1, (uint64_t) k);
        memcpy(p + DMS_HDR_ROOM - hl, h, (size_t) hl);
        grpc_slice sub = grpc_slice_sub(sl, DMS_HDR_ROOM - (size_t) hl,
                                        DMS_HDR_ROOM + (size_t) k);
        *out = grpc_raw_byte_buffer_create(&sub, 1);
        grpc_slice_unref(sub);
    }
    grpc_slice_unref(sl);
    return k;
}

enum install_answer { ANS_NONE, ANS_READY, ANS_VALIDATED, ANS_ERROR };

/* Look at one InstallResponse. */
static enum install_answer
install_answer(struct rpc *r, grpc_byte_buffer *bb, uint64_t *progress,
               struct dpf_error *err, int *rc)
{
    Gnoi__Os__InstallResponse *m = (Gnoi__Os__InstallResponse *) unpack(
        bb, &gnoi__os__install_response__descriptor);
    if (!m) {
        fail(r->c, err, 502, "InternalError", r->what,
             "DMS sent something that is not an InstallResponse");
        *rc = -EPROTO;
        return ANS_ERROR;
    }
    enum install_answer a = ANS_NONE;
    switch (m->response_case) {
    case GNOI__OS__INSTALL_RESPONSE__RESPONSE_TRANSFER_READY:
        a = ANS_READY;
        break;
    case GNOI__OS__INSTALL_RESPONSE__RESPONSE_TRANSFER_PROGRESS:
        *progress = m->transfer_progress->bytes_received;
        break;
    case GNOI__OS__INSTALL_RESPONSE__RESPONSE_VALIDATED:
        a = ANS_VALIDATED;
        break;
    case GNOI__OS__INSTALL_RESPONSE__RESPONSE_INSTALL_ERROR:
        fail(r->c, err, 422, "Invalid", r->what,
             "DMS refused the image: %s: %s",
             install_error_name(m->install_error->type),
             m->install_error->detail);
        *rc = m->install_error->type ==
                      GNOI__OS__INSTALL_ERROR__TYPE__INSTALL_IN_PROGRESS
                  ? -EAGAIN /* another install: try again later */
                  : -EIO;
        a = ANS_ERROR;
        break;
    default: /* SyncProgress and what later gNOI adds: informational */
        break;
    }
    protobuf_c_message_free_unpacked(&m->base, NULL);
    return a;
}

static void
start_recv(struct rpc *r, grpc_byte_buffer **bb)
{
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = bb;
    *bb = NULL;
    batch(r, &op, 1, &r->recv);
}

int
dms_install_file(struct dms_client *c, const struct dms_install *in,
                 bool *already, struct dpf_error *err)
{
    if (already) {
        *already = false;
    }
    char what[320];
    snprintf(what, sizeof what, "OS.Install of %s",
             in->version ? in->version : "(no version)");
    if (!in->version || !*in->version || (!in->path && !in->data)) {
        fail(c, err, 400, "Invalid", what,
             "a version and a file or bytes are required");
        return -EINVAL;
    }
    if (cancel_raised(c)) {
        fail(c, err, 409, "Conflict", what, "cancelled before it started");
        return -ECANCELED;
    }
    size_t chunk =
        in->chunk ? DPF_MIN(in->chunk, DMS_CHUNK_MAX) : DMS_CHUNK_DEFAULT;
    int fd = -1;
    uint64_t total = in->len;
    if (in->path) {
        struct stat st;
        fd = open(in->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0) {
            int e = errno;
            fail(c, err, 404, "NotFound", what,
                 "cannot read %s: %s (is the BFB in the cache?)", in->path,
                 strerror(e));
            if (fd >= 0) {
                close(fd);
            }
            return -ENOENT;
        }
        total = (uint64_t) st.st_size;
    }

    struct rpc r;
    rpc_start(&r, c, "/gnoi.os.OS/Install", what, c->install_ms);
    int rc = 0;
    uint64_t sent = 0, received = 0;
    grpc_byte_buffer *resp = NULL;
    grpc_byte_buffer *sendbb;
    {
        Gnoi__Os__TransferRequest tr = GNOI__OS__TRANSFER_REQUEST__INIT;
        tr.version = (char *) in->version;
        tr.package_size = total;
        Gnoi__Os__InstallRequest req = GNOI__OS__INSTALL_REQUEST__INIT;
        req.request_case = GNOI__OS__INSTALL_REQUEST__REQUEST_TRANSFER_REQUEST;
        req.transfer_request = &tr;
        sendbb = pack(&req.base);
    }
    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = sendbb;
    ops[2].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[2].data.recv_initial_metadata.recv_initial_metadata = &r.md_in;
    batch(&r, ops, 3, &r.send);
    start_status(&r);
    start_recv(&r, &resp);

    /* The first answer: TransferReady (send), Validated (DMS has it), or
     * an InstallError. */
    enum install_answer a = ANS_NONE;
    while (a == ANS_NONE) {
        wait_ops(&r, &r.recv, NULL, c->call_ms);
        if (!r.recv.ok || !resp) {
            rpc_status(&r, !r.recv.ok);
            rc = rpc_error(&r, err);
            goto out;
        }
        a = install_answer(&r, resp, &received, err, &rc);
        grpc_byte_buffer_destroy(resp);
        resp = NULL;
        if (a == ANS_NONE) {
            start_recv(&r, &resp);
        }
    }
    while (!r.send.done) {
        wait_ops(&r, &r.send, NULL, c->call_ms);
    }
    grpc_byte_buffer_destroy(sendbb);
    sendbb = NULL;
    if (a == ANS_ERROR) {
        goto out;
    }
    if (a == ANS_VALIDATED) {
        if (already) {
            *already = true;
        }
        log_info("DMS already has the image", "dpu=%s version=%s",
                 c->dpu ? c->dpu : "", in->version);
        if (in->progress) {
            in->progress(in->arg, total, total);
        }
        goto out;
    }

    /* Stream the content with one receive always outstanding, so a
     * TransferProgress or an early InstallError is seen at once, and one
     * send in flight (gRPC allows no more). */
    start_recv(&r, &resp);
    bool end_sent = false, inflight = false, broken = false;
    ssize_t k = 0;
    for (;;) {
        if (inflight && r.send.done) {
            inflight = false;
            grpc_byte_buffer_destroy(sendbb);
            sendbb = NULL;
            if (!r.send.ok) {
                broken = true; /* the answer or the status says why */
            } else if (k > 0) {
                sent += (uint64_t) k;
                if (in->progress) {
                    in->progress(in->arg, sent, total);
                }
            }
        }
        if (!inflight && !end_sent && !broken) {
            memset(ops, 0, sizeof ops);
            size_t nops = 1;
            k = next_content(in, fd, chunk, sent, &sendbb);
            if (k < 0) {
                fail(c, err, 500, "InternalError", what,
                     "reading %s after %" PRIu64 " bytes: %s", in->path, sent,
                     strerror((int) -k));
                rc = (int) k;
                goto out;
            }
            if (k == 0) {
                if (sent != total) {
                    fail(c, err, 409, "Conflict", what,
                         "%s changed while it was sent (%" PRIu64
                         " bytes sent, %" PRIu64 " expected)",
                         in->path ? in->path : "the data", sent, total);
                    rc = -EAGAIN;
                    goto out;
                }
                Gnoi__Os__TransferEnd te = GNOI__OS__TRANSFER_END__INIT;
                Gnoi__Os__InstallRequest er = GNOI__OS__INSTALL_REQUEST__INIT;
                er.request_case =
                    GNOI__OS__INSTALL_REQUEST__REQUEST_TRANSFER_END;
                er.transfer_end = &te;
                sendbb = pack(&er.base);
                ops[1].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
                nops = 2;
                end_sent = true;
            }
            ops[0].op = GRPC_OP_SEND_MESSAGE;
            ops[0].data.send_message.send_message = sendbb;
            batch(&r, ops, nops, &r.send);
            inflight = true;
        }
        if (r.recv.done) {
            if (!r.recv.ok || !resp) {
                rpc_status(&r, !r.recv.ok);
                rc = rpc_error(&r, err);
                goto out;
            }
            a = install_answer(&r, resp, &received, err, &rc);
            grpc_byte_buffer_destroy(resp);
            resp = NULL;
            if (a == ANS_ERROR) {
                goto out;
            }
            if (a == ANS_VALIDATED) {
                if (end_sent) {
                    break;
                }
                fail(c, err, 502, "InternalError", what,
                     "DMS answered Validated before the transfer ended "
                     "(%" PRIu64 " of %" PRIu64 " bytes sent)",
                     sent, total);
                rc = -EPROTO;
                goto out;
            }
            start_recv(&r, &resp);
            continue;
        }
        wait_ops(&r, inflight ? &r.send : NULL, &r.recv,
                 broken ? 0 : c->call_ms);
    }
    rpc_status(&r, false);
    if (r.code != GRPC_STATUS_OK) {
        rc = rpc_error(&r, err);
        goto out;
    }
    log_info("image installed through DMS", "dpu=%s version=%s bytes=%" PRIu64,
             c->dpu ? c->dpu : "", in->version, sent);
out:
    rpc_end(&r);
    if (resp) {
        grpc_byte_buffer_destroy(resp);
    }
    if (sendbb) {
        grpc_byte_buffer_destroy(sendbb);
    }
    if (fd >= 0) {
        close(fd);
    }
    return rc;
}

int
dms_activate(struct dms_client *c, const char *version, bool no_reboot,
             struct dpf_error *err)
{
    char what[320];
    snprintf(what, sizeof what, "OS.Activate of %s", version);
    Gnoi__Os__ActivateRequest req = GNOI__OS__ACTIVATE_REQUEST__INIT;
    req.version = (char *) version;
    req.no_reboot = no_reboot;
    ProtobufCMessage *m;
    int rc = unary(c, "/gnoi.os.OS/Activate", what, &req.base,
                   &gnoi__os__activate_response__descriptor, &m, err);
    if (rc < 0) {
        return rc;
    }
    Gnoi__Os__ActivateResponse *resp = (Gnoi__Os__ActivateResponse *) m;
    if (resp->response_case ==
        GNOI__OS__ACTIVATE_RESPONSE__RESPONSE_ACTIVATE_ERROR) {
        fail(c, err, 422, "Invalid", what, "DMS refused: %s%s",
             resp->activate_error->type ==
                     GNOI__OS__ACTIVATE_ERROR__TYPE__NON_EXISTENT_VERSION
                 ? "NON_EXISTENT_VERSION: "
                 : "",
             resp->activate_error->detail);
        rc = -EIO;
    } else if (resp->response_case !=
               GNOI__OS__ACTIVATE_RESPONSE__RESPONSE_ACTIVATE_OK) {
        fail(c, err, 502, "InternalError", what,
             "DMS answered neither ActivateOK nor ActivateError");
        rc = -EPROTO;
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

/* --- gNOI System ----------------------------------------------------- */

int
dms_reboot_status(struct dms_client *c, bool *active,
                  enum dms_reboot_result *status, char *message, size_t size,
                  struct dpf_error *err)
{
    Gnoi__Types__PathElem cpu = GNOI__TYPES__PATH_ELEM__INIT;
    cpu.name = "CPU";
    Gnoi__Types__PathElem *elems[1] = {&cpu};
    Gnoi__Types__Path path = GNOI__TYPES__PATH__INIT;
    path.n_elem = 1;
    path.elem = elems;
    Gnoi__Types__Path *paths[1] = {&path};
    Gnoi__System__RebootStatusRequest req =
        GNOI__SYSTEM__REBOOT_STATUS_REQUEST__INIT;
    req.n_subcomponents = 1;
    req.subcomponents = paths;
    ProtobufCMessage *m;
    int rc = unary(c, "/gnoi.system.System/RebootStatus", "System.RebootStatus",
                   &req.base, &gnoi__system__reboot_status_response__descriptor,
                   &m, err);
    if (rc < 0) {
        return rc;
    }
    Gnoi__System__RebootStatusResponse *resp =
        (Gnoi__System__RebootStatusResponse *) m;
    *active = resp->active;
    enum dms_reboot_result st = DMS_REBOOT_UNKNOWN;
    const char *msg = resp->reason;
    if (resp->status) {
        switch (resp->status->status) {
        case GNOI__SYSTEM__REBOOT_STATUS__STATUS__STATUS_SUCCESS:
            st = DMS_REBOOT_SUCCESS;
            break;
        case GNOI__SYSTEM__REBOOT_STATUS__STATUS__STATUS_RETRIABLE_FAILURE:
            st = DMS_REBOOT_RETRIABLE_FAILURE;
            break;
        case GNOI__SYSTEM__REBOOT_STATUS__STATUS__STATUS_FAILURE:
            st = DMS_REBOOT_FAILURE;
            break;
        default:
            break;
        }
        if (resp->status->message && *resp->status->message) {
            msg = resp->status->message;
        }
    }
    *status = st;
    if (message && size) {
        snprintf(message, size, "%s", msg ? msg : "");
    }
    protobuf_c_message_free_unpacked(m, NULL);
    return 0;
}
