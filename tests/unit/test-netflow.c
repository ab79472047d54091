/* Unit tests for lib/netflow: v9 and IPFIX encoding checked against the
 * decoder and against hand-computed header fields; exporter sequence
 * numbers, template refresh and MTU bound over a loopback UDP socket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lib/telemetry/netflow.h"
#include "lib/base/util.h"

struct got {
    struct nf_flow f[256];
    size_t n;
};

static void
collect(void *aux, const struct nf_flow *f)
{
    struct got *g = aux;
    if (g->n < ARRAY_SIZE(g->f)) {
        g->f[g->n] = *f;
    }
    g->n++;
}

static void
sample_flows(struct nf_flow *f)
{
    memset(f, 0, 2 * sizeof *f);
    f[0] = (struct nf_flow){.family = 4,
                            .protocol = 6,
                            .tcp_flags = 0x1b,
                            .src_port = 40000,
                            .dst_port = 443,
                            .bytes = 1ull << 33,
                            .packets = 10,
                            .start_ms = 1700000000000ull,
                            .end_ms = 1700000004900ull,
                            .in_if = 1,
                            .out_if = 2};
    inet_pton(AF_INET, "10.203.0.1", f[0].src);
    inet_pton(AF_INET, "10.203.1.1", f[0].dst);
    f[1] = (struct nf_flow){.family = 6,
                            .protocol = 17,
                            .src_port = 5353,
                            .dst_port = 53,
                            .bytes = 300,
                            .packets = 3,
                            .start_ms = 1700000001000ull,
                            .end_ms = 1700000002000ull,
                            .in_if = 7,
                            .out_if = 8};
    inet_pton(AF_INET6, "2001:db8::1", f[1].src);
    inet_pton(AF_INET6, "2001:db8::2", f[1].dst);
}

static void
check_flows(const struct got *g, const struct nf_flow *f)
{
    assert_int_equal(g->n, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(g->f[i].family, f[i].family);
        assert_memory_equal(g->f[i].src, f[i].src, f[i].family == 4 ? 4 : 16);
        assert_memory_equal(g->f[i].dst, f[i].dst, f[i].family == 4 ? 4 : 16);
        assert_int_equal(g->f[i].src_port, f[i].src_port);
        assert_int_equal(g->f[i].dst_port, f[i].dst_port);
        assert_int_equal(g->f[i].protocol, f[i].protocol);
        assert_int_equal(g->f[i].tcp_flags, f[i].tcp_flags);
        assert_true(g->f[i].bytes == f[i].bytes);
        assert_int_equal(g->f[i].packets, f[i].packets);
        assert_int_equal(g->f[i].in_if, f[i].in_if);
        assert_int_equal(g->f[i].out_if, f[i].out_if);
        assert_true(g->f[i].start_ms == f[i].start_ms);
        assert_true(g->f[i].end_ms == f[i].end_ms);
    }
}

static void
test_v9_roundtrip(void **state)
{
    struct nf_flow f[2];
    uint8_t buf[1500];
    sample_flows(f);
    /* export time 10 s after the last flow end, uptime arbitrary */
    long n = nf_encode_packet(NF_VERSION_V9, 42, 7, 500000, 1700000010, true, f,
                              2, buf, sizeof buf);
    assert_true(n > 0);
    assert_int_equal(n % 4, 0); /* flowsets padded to 32 bits */
    assert_int_equal(buf[0] << 8 | buf[1], 9);
    assert_int_equal(buf[2] << 8 | buf[3], 4); /* 2 templates + 2 records */
    struct nf_decoder *d = nf_decoder_create();
    struct got g = {0};
    struct nf_packet_info info;
    assert_int_equal(
        nf_decoder_feed(d, buf, (size_t) n, collect, &g, &info, NULL), 0);
    assert_int_equal(info.version, 9);
    assert_int_equal(info.sequence, 7);
    assert_int_equal(info.domain_id, 42);
    assert_int_equal(info.n_templates, 2);
    check_flows(&g, f);
    /* without templates the decoder uses the ones it learned */
    n = nf_encode_packet(NF_VERSION_V9, 42, 8, 500000, 1700000010, false, f, 2,
                         buf, sizeof buf);
    g.n = 0;
    assert_int_equal(
        nf_decoder_feed(d, buf, (size_t) n, collect, &g, &info, NULL), 0);
    assert_int_equal(info.count, 2);
    check_flows(&g, f);
    /* a different source id has no templates: records are skipped */
    n = nf_encode_packet(NF_VERSION_V9, 43, 9, 500000, 1700000010, false, f, 2,
                         buf, sizeof buf);
    g.n = 0;
    assert_int_equal(
        nf_decoder_feed(d, buf, (size_t) n, collect, &g, &info, NULL), 0);
    assert_int_equal(g.n, 0);
    nf_decoder_destroy(d);
}

static void
test_ipfix_roundtrip(void **state)
{
    struct nf_flow f[2];
    uint8_t buf[1500];
    sample_flows(f);
    long n = nf_encode_packet(NF_VERSION_IPFIX, 5, 100, 0, 1700000010, true, f,
                              2, buf, sizeof buf);
    assert_true(n > 0);
    assert_int_equal(buf[0] << 8 | buf[1], 10);
    assert_int_equal(buf[2] << 8 | buf[3], n);   /* message length */
    assert_int_equal(buf[16] << 8 | buf[17], 2); /* template set id */
    struct nf_decoder *d = nf_decoder_create();
    struct got g = {0};
    struct nf_packet_info info;
    assert_int_equal(
        nf_decoder_feed(d, buf, (size_t) n, collect, &g, &info, NULL), 0);
    assert_int_equal(info.sequence, 100);
    assert_int_equal(info.domain_id, 5);
    check_flows(&g, f);
    /* the datagram does not fit in a small buffer */
    assert_int_equal(
        nf_encode_packet(NF_VERSION_IPFIX, 5, 0, 0, 0, true, f, 2, buf, 64),
        -EMSGSIZE);
    nf_decoder_destroy(d);
}

static void
test_decoder_rejects(void **state)
{
    struct nf_flow f[2];
    uint8_t buf[1500];
    sample_flows(f);
    long n = nf_encode_packet(NF_VERSION_IPFIX, 5, 100, 0, 1700000010, true, f,
                              2, buf, sizeof buf);
    struct nf_decoder *d = nf_decoder_create();
    struct dpf_error err = {0};
    /* every truncation: IPFIX length mismatch */
    for (long i = 0; i < n; i++) {
        assert_int_equal(
            nf_decoder_feed(d, buf, (size_t) i, NULL, NULL, NULL, NULL),
            -EBADMSG);
    }
    /* bad set length */
    uint8_t save = buf[19];
    buf[19] = 2;
    assert_int_equal(
        nf_decoder_feed(d, buf, (size_t) n, NULL, NULL, NULL, &err), -EBADMSG);
    assert_non_null(strstr(err.message, "set length"));
    buf[19] = save;
    /* version 5 is not ours */
    buf[1] = 5;
    assert_int_equal(
        nf_decoder_feed(d, buf, (size_t) n, NULL, NULL, NULL, NULL), -EBADMSG);
    /* random corruption never crashes */
    buf[1] = 10;
    srand(1);
    for (int i = 0; i < 2000; i++) {
        uint8_t copy[1500];
        memcpy(copy, buf, (size_t) n);
        copy[16 + rand() % (n - 16)] = (uint8_t) rand();
        nf_decoder_feed(d, copy, (size_t) n, NULL, NULL, NULL, NULL);
    }
    nf_decoder_destroy(d);
}

/* A UDP socket on 127.0.0.1 with a kernel-chosen port. */
static int
udp_sink(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *) &a, sizeof a), 0);
    socklen_t l = sizeof a;
    getsockname(fd, (struct sockaddr *) &a, &l);
    *port = ntohs(a.sin_port);
    int big = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof big);
    return fd;
}

static void
exporter_run(enum nf_version v)
{
    uint16_t port;
    int fd = udp_sink(&port);
    struct nf_exporter_config cfg = {.version = v,
                                     .host = "127.0.0.1",
                                     .port = port,
                                     .domain_id = 9,
                                     .mtu = 576,
                                     .template_refresh_packets = 3};
    struct dpf_error err = {0};
    struct nf_exporter *e = nf_exporter_create(&cfg, &err);
    assert_non_null(e);
    struct nf_flow f[2];
    sample_flows(f);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(nf_exporter_add(e, &f[i % 2]), 0);
    }
    assert_int_equal(nf_exporter_flush(e), 0);
    struct nf_exporter_stats st;
    nf_exporter_get_stats(e, &st);
    assert_int_equal(st.records, 100);
    assert_true(st.packets > 5);

    struct nf_decoder *d = nf_decoder_create();
    struct got g = {0};
    uint32_t records_before = 0;
    int with_templates = 0;
    for (uint64_t p = 0; p < st.packets; p++) {
        uint8_t buf[2048];
        ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        assert_true(r > 0);
        assert_true(r <= 576 - 28); /* MTU minus IPv4 and UDP headers */
        struct nf_packet_info info;
        size_t before = g.n;
        assert_int_equal(
            nf_decoder_feed(d, buf, (size_t) r, collect, &g, &info, NULL), 0);
        assert_int_equal(info.domain_id, 9);
        if (v == NF_VERSION_V9) {
            assert_int_equal(info.sequence, p); /* packets */
        } else {
            assert_int_equal(info.sequence, records_before); /* records */
        }
        records_before += (uint32_t) (g.n - before);
        if (info.n_templates) {
            with_templates++;
        }
    }
    assert_int_equal(g.n, 100);
    /* first packet, then every 3 packets */
    assert_int_equal(with_templates, (int) (st.packets + 2) / 3);
    nf_decoder_destroy(d);
    nf_exporter_destroy(e);
    close(fd);
}

static void
test_exporter_v9(void **state)
{
    exporter_run(NF_VERSION_V9);
}

static void
test_exporter_ipfix(void **state)
{
    exporter_run(NF_VERSION_IPFIX);
}

static void
test_exporter_config_errors(void **state)
{
    struct dpf_error err = {0};
    struct nf_exporter_config cfg = {
        .version = 5, .host = "127.0.0.1", .port = 9995};
    assert_null(nf_exporter_create(&cfg, &err));
    assert_non_null(strstr(err.message, "version"));
    cfg.version = NF_VERSION_V9;
    cfg.port = 0;
    assert_null(nf_exporter_create(&cfg, &err));
    cfg.port = 9995;
    cfg.mtu = 100;
    assert_null(nf_exporter_create(&cfg, &err));
    assert_non_null(strstr(err.message, "mtu"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v9_roundtrip),
        cmocka_unit_test(test_ipfix_roundtrip),
        cmocka_unit_test(test_decoder_rejects),
        cmocka_unit_test(test_exporter_v9),
        cmocka_unit_test(test_exporter_ipfix),
        cmocka_unit_test(test_exporter_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
