/* dmsd-install-client: one gNOI OS.Install over mutual TLS from gRPC core,
 * for bench/dmsd-bench.py. The Python client spends a core of its own on
 * every 64 KiB message; this one builds each transfer_content message with
 * one read() into a buffer that already holds the field header, so the
 * figure it gives is dmsd's (and gRPC's), not the client's.
 *
 * usage: dmsd-install-client ADDR CA CERT KEY FILE VERSION [CHUNK]
 * prints "bytes seconds" and exits 0 when the server answered Validated. */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <grpc/byte_buffer_reader.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "gnoi_os.pb-c.h"
#include "lib/base/util.h"

static grpc_completion_queue *cq;

/* Wait for the event tagged tag (ops complete in order per kind; we keep
 * at most one send and one receive in flight). */
static bool
wait_tag(void *tag, void *other, bool *other_done, bool *other_ok)
{
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(
            cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type != GRPC_OP_COMPLETE) {
            return false;
        }
        if (ev.tag == tag) {
            return ev.success;
        }
        if (ev.tag == other) {
            *other_done = true;
            *other_ok = ev.success;
        }
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

static grpc_byte_buffer *
packed(const ProtobufCMessage *m)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    grpc_slice sl = grpc_slice_malloc(n);
    protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(sl));
    grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
    grpc_slice_unref(sl);
    return bb;
}

int
main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: %s ADDR CA CERT KEY FILE VERSION [CHUNK]\n",
                argv[0]);
        return 2;
    }
    size_t chunk = argc > 7 ? strtoul(argv[7], NULL, 0) : 64 * 1024;
    char *ca, *crt, *key;
    size_t n;
    if (file_read_all(argv[2], &ca, &n) < 0 ||
        file_read_all(argv[3], &crt, &n) < 0 ||
        file_read_all(argv[4], &key, &n) < 0) {
        fprintf(stderr, "cannot read the certificates\n");
        return 2;
    }
    int fd = open(argv[5], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        perror(argv[5]);
        return 2;
    }
    grpc_init();
    cq = grpc_completion_queue_create_for_next(NULL);
    grpc_ssl_pem_key_cert_pair pair = {key, crt};
    grpc_channel_credentials *creds =
        grpc_ssl_credentials_create(ca, &pair, NULL, NULL);
    grpc_channel *ch = grpc_channel_create(argv[1], creds, NULL);
    grpc_slice method = grpc_slice_from_static_string("/gnoi.os.OS/Install");
    grpc_call *call = grpc_channel_create_call(
        ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL,
        gpr_inf_future(GPR_CLOCK_REALTIME), NULL);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    grpc_metadata_array md_in, trailers;
    grpc_metadata_array_init(&md_in);
    grpc_metadata_array_init(&trailers);
    Gnoi__Os__TransferRequest tr = GNOI__OS__TRANSFER_REQUEST__INIT;
    tr.version = argv[6];
    tr.package_size = (uint64_t) st.st_size;
    Gnoi__Os__InstallRequest req = GNOI__OS__INSTALL_REQUEST__INIT;
    req.request_case = GNOI__OS__INSTALL_REQUEST__REQUEST_TRANSFER_REQUEST;
    req.transfer_request = &tr;
    grpc_byte_buffer *first = packed(&req.base);
    grpc_op ops[3];
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = first;
    ops[2].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[2].data.recv_initial_metadata.recv_initial_metadata = &md_in;
    int send_tag, recv_tag;
    grpc_call_start_batch(call, ops, 3, &send_tag, NULL);
    bool rdone = false, rok = false;
    if (!wait_tag(&send_tag, &recv_tag, &rdone, &rok)) {
        fprintf(stderr, "the call failed at TransferRequest\n");
        return 1;
    }
    grpc_byte_buffer_destroy(first);
    /* one receive always outstanding: TransferReady, progress, Validated */
    grpc_byte_buffer *resp = NULL;
    grpc_op rop;
    memset(&rop, 0, sizeof rop);
    rop.op = GRPC_OP_RECV_MESSAGE;
    rop.data.recv_message.recv_message = &resp;
    grpc_call_start_batch(call, &rop, 1, &recv_tag, NULL);
    bool validated = false, failed = false;
    uint64_t sent = 0;
    bool end_sent = false;
    while (!validated && !failed) {
        if (rdone) {
            rdone = false;
            if (!rok || !resp) {
                failed = true;
                break;
            }
            grpc_byte_buffer_reader r;
            grpc_byte_buffer_reader_init(&r, resp);
            grpc_slice all = grpc_byte_buffer_reader_readall(&r);
            Gnoi__Os__InstallResponse *m = gnoi__os__install_response__unpack(
                NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
            grpc_slice_unref(all);
            grpc_byte_buffer_reader_destroy(&r);
            grpc_byte_buffer_destroy(resp);
            resp = NULL;
            if (!m) {
                failed = true;
                break;
            }
            if (m->response_case ==
                GNOI__OS__INSTALL_RESPONSE__RESPONSE_VALIDATED) {
                validated = true;
            } else if (m->response_case ==
                       GNOI__OS__INSTALL_RESPONSE__RESPONSE_INSTALL_ERROR) {
                fprintf(stderr, "InstallError: %s\n", m->install_error->detail);
                failed = true;
            }
            gnoi__os__install_response__free_unpacked(m, NULL);
            if (!validated && !failed) {
                grpc_call_start_batch(call, &rop, 1, &recv_tag, NULL);
            }
            continue;
        }
        if (end_sent) {
            grpc_event ev = grpc_completion_queue_next(
                cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
            if (ev.tag == &recv_tag) {
                rdone = true;
                rok = ev.success;
            }
            continue;
        }
        /* the next message: field 2 header, then the data read in place */
        grpc_slice sl = grpc_slice_malloc(chunk + 16);
        uint8_t *p = GRPC_SLICE_START_PTR(sl);
        ssize_t k = read(fd, p + 16, chunk);
        grpc_byte_buffer *bb;
        memset(ops, 0, sizeof ops);
        size_t nops = 1;
        if (k > 0) {
            uint8_t h[16];
            h[0] = 0x12;
            int hl = 1 + varint(h + 1, (uint64_t) k);
            memcpy(p + 16 - hl, h, (size_t) hl);
            grpc_slice sub =
                grpc_slice_sub(sl, 16 - (size_t) hl, 16 + (size_t) k);
            bb = grpc_raw_byte_buffer_create(&sub, 1);
            grpc_slice_unref(sub);
            sent += (uint64_t) k;
        } else {
            Gnoi__Os__TransferEnd te = GNOI__OS__TRANSFER_END__INIT;
            Gnoi__Os__InstallRequest er = GNOI__OS__INSTALL_REQUEST__INIT;
            er.request_case = GNOI__OS__INSTALL_REQUEST__REQUEST_TRANSFER_END;
            er.transfer_end = &te;
            bb = packed(&er.base);
            ops[1].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
            nops = 2;
            end_sent = true;
        }
        grpc_slice_unref(sl);
        ops[0].op = GRPC_OP_SEND_MESSAGE;
        ops[0].data.send_message.send_message = bb;
        grpc_call_start_batch(call, ops, nops, &send_tag, NULL);
        bool ok = wait_tag(&send_tag, &recv_tag, &rdone, &rok);
        grpc_byte_buffer_destroy(bb);
        if (!ok) {
            failed = true;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double) (t1.tv_sec - t0.tv_sec) +
                  (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
    grpc_status_code status;
    grpc_slice details;
    memset(ops, 0, sizeof ops);
    ops[0].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[0].data.recv_status_on_client.trailing_metadata = &trailers;
    ops[0].data.recv_status_on_client.status = &status;
    ops[0].data.recv_status_on_client.status_details = &details;
    int status_tag;
    grpc_call_start_batch(call, ops, 1, &status_tag, NULL);
    wait_tag(&status_tag, NULL, &rdone, &rok);
    printf("%" PRIu64 " %.3f\n", sent, secs);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&md_in);
    grpc_metadata_array_destroy(&trailers);
    grpc_call_unref(call);
    grpc_channel_destroy(ch);
    grpc_channel_credentials_release(creds);
    grpc_completion_queue_shutdown(cq);
    while (
        grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL)
            .type != GRPC_QUEUE_SHUTDOWN) {
    }
    grpc_completion_queue_destroy(cq);
    grpc_shutdown();
    close(fd);
    free(ca);
    free(crt);
    free(key);
    return validated ? 0 : 1;
}
