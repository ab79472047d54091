/* Unit tests for lib/codecs/bfb: header layout, writer -> reader round
 * trip (fed whole and byte by byte), the trailer, corruption reports and
 * the info image's version. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/util.h"
#include "lib/codecs/bfb.h"

/* Everything the callbacks saw. */
struct seen {
    unsigned ids[16];
    unsigned versions[16];
    unsigned headers;
    unsigned ends;
    struct dbuf data; /* all image bytes */
    struct dbuf trailer;
};

static int
on_header(void *ctx, const struct bfb_image *img, struct dpf_error *err)
{
    (void) err;
    struct seen *s = ctx;
    s->ids[s->headers] = img->h.id;
    s->versions[s->headers++] = img->h.version;
    return 0;
}

static int
on_data(void *ctx, const struct bfb_image *img, const uint8_t *p, size_t n,
        struct dpf_error *err)
{
    (void) img;
    (void) err;
    dbuf_append(&((struct seen *) ctx)->data, p, n);
    return 0;
}

static int
on_end(void *ctx, const struct bfb_image *img, struct dpf_error *err)
{
    (void) img;
    (void) err;
    ((struct seen *) ctx)->ends++;
    return 0;
}

static int
on_trailer(void *ctx, const uint8_t *p, size_t n, struct dpf_error *err)
{
    (void) err;
    dbuf_append(&((struct seen *) ctx)->trailer, p, n);
    return 0;
}

static const struct bfb_reader_ops ops = {on_header, on_data, on_end,
                                          on_trailer};

/* Write sources into memory through a temporary file. */
static uint8_t *
build(const struct bfb_source *src, size_t n, size_t *len)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    struct dpf_error err = {0};
    assert_int_equal(bfb_write(fileno(f), src, n, &err), 0);
    off_t size = lseek(fileno(f), 0, SEEK_END);
    uint8_t *buf = xmalloc((size_t) size + 64);
    assert_int_equal(pread(fileno(f), buf, (size_t) size, 0), size);
    fclose(f);
    *len = (size_t) size;
    return buf;
}

static int
read_mem(const uint8_t *p, size_t n, size_t step, struct seen *s,
         struct dpf_error *err)
{
    struct bfb_reader *r = bfb_reader_new(&ops, s);
    int rc = 0;
    for (size_t off = 0; off < n && rc == 0; off += step) {
        rc = bfb_reader_feed(r, p + off, DPF_MIN(step, n - off), err);
    }
    if (rc == 0) {
        rc = bfb_reader_finish(r, err);
    }
    bfb_reader_free(r);
    return rc;
}

static void
test_header_layout(void **state)
{
    (void) state;
    struct bfb_header h = {.magic = BFB_MAGIC,
                           .major = 1,
                           .minor = 2,
                           .next_version = 0,
                           .version = 2,
                           .header_words = 3,
                           .id = 59,
                           .length = 0x1234,
                           .crc = 0xdeadbeef,
                           .following = 1ull << 63};
    uint8_t b[BFB_HEADER_SIZE];
    bfb_header_pack(&h, b);
    /* "Bf\x02\x13" on disk, then major/minor nibbles, id in the top byte */
    assert_memory_equal(b, "\x42\x66\x02\x13\x21\x00\x32\x3b", 8);
    assert_memory_equal(b + 8, "\x34\x12\x00\x00\xef\xbe\xad\xde", 8);
    assert_int_equal(b[23], 0x80);
    struct bfb_header u;
    bfb_header_unpack(b, &u);
    assert_int_equal(u.magic, h.magic);
    assert_int_equal(u.major, 1);
    assert_int_equal(u.minor, 2);
    assert_int_equal(u.version, 2);
    assert_int_equal(u.next_version, 0);
    assert_int_equal(u.header_words, 3);
    assert_int_equal(u.id, 59);
    assert_int_equal(u.length, 0x1234);
    assert_int_equal(u.crc, 0xdeadbeef);
    assert_true(u.following == h.following);
    char msg[128];
    assert_int_equal(bfb_header_check(&u, msg, sizeof msg), 0);
    u.minor = 3;
    assert_int_equal(bfb_header_check(&u, msg, sizeof msg), -EBADMSG);
    assert_non_null(strstr(msg, "1.3"));
    assert_int_equal(bfb_padding(0), 0);
    assert_int_equal(bfb_padding(1), 7);
    assert_int_equal(bfb_padding(8), 0);
    assert_string_equal(bfb_image_name(63), "initramfs");
    assert_int_equal(bfb_image_id("boot-args"), 59);
    assert_int_equal(bfb_image_id("nope"), -ENOENT);
    assert_true(bfb_image_rank(59) < bfb_image_rank(62));
}

static void
test_round_trip(void **state)
{
    (void) state;
    const char *info = "{\"Name\":\"BFB\",\"Version\":\"4.9.1\"}";
    struct bfb_source src[] = {
        {.id = 59, .version = 0, .data = "a0", .len = 2},
        {.id = 59, .version = 2, .data = "console=hvc0", .len = 12},
        {.id = 50, .data = info, .len = strlen(info)},
        {.id = 62, .data = "KERNEL!!", .len = 8},
        {.id = 63, .data = "", .len = 0},
    };
    size_t n;
    uint8_t *b = build(src, ARRAY_SIZE(src), &n);
    /* the first boot-args announces version 2 next, the last header
     * clears every bit */
    struct bfb_header h;
    bfb_header_unpack(b, &h);
    assert_int_equal(h.next_version, 2);
    assert_true(h.following & (1ull << 59));
    memcpy(b + n, "CFG=1\n", 6);
    for (size_t step = 1; step <= n + 6; step = step * 3 + 1) {
        struct seen s = {0};
        struct dpf_error err = {0};
        assert_int_equal(read_mem(b, n + 6, step, &s, &err), 0);
        assert_int_equal(s.headers, 5);
        assert_int_equal(s.ends, 5);
        assert_int_equal(s.ids[1], 59);
        assert_int_equal(s.versions[1], 2);
        assert_int_equal(s.ids[4], 63);
        assert_int_equal(s.trailer.len, 6);
        assert_memory_equal(s.trailer.data, "CFG=1\n", 6);
        char want[128];
        snprintf(want, sizeof want, "a0console=hvc0%sKERNEL!!", info);
        assert_string_equal(s.data.data, want);
        dbuf_free(&s.data);
        dbuf_free(&s.trailer);
    }
    free(b);
}

static void
test_corrupt_named(void **state)
{
    (void) state;
    struct bfb_source src[] = {
        {.id = 62, .data = "kernel", .len = 6},
        {.id = 63, .data = "initramfs-bytes", .len = 15},
    };
    size_t n;
    uint8_t *b = build(src, ARRAY_SIZE(src), &n);
    /* image #1's header is at 24 + 8 = 32, its data at 56 */
    b[60] ^= 0x40;
    struct seen s = {0};
    struct dpf_error err = {0};
    assert_int_equal(read_mem(b, n, 7, &s, &err), -EBADMSG);
    assert_non_null(strstr(err.message, "image #1 \"initramfs\" (ID 63"));
    assert_non_null(strstr(err.message, "at offset 32"));
    assert_non_null(strstr(err.message, "CRC-32"));
    assert_int_equal(s.ends, 1);
    b[60] ^= 0x40;
    dbuf_free(&s.data);

    /* cut inside image #1 */
    struct seen s2 = {0};
    assert_int_equal(read_mem(b, 60, 100, &s2, &err), -EBADMSG);
    assert_non_null(strstr(err.message, "image #1"));
    assert_non_null(strstr(err.message, "ends at offset 60"));
    dbuf_free(&s2.data);

    /* bad magic in the second header */
    b[33] = 'x';
    struct seen s3 = {0};
    assert_int_equal(read_mem(b, n, n, &s3, &err), -EBADMSG);
    assert_non_null(strstr(err.message, "header of image #1 at offset 32"));
    assert_non_null(strstr(err.message, "bad magic"));
    dbuf_free(&s3.data);
    free(b);
}

static void
test_info_version(void **state)
{
    (void) state;
    char v[32];
    const char *a = "{\"Version\":\"4.9.1-1\",\"Members\":[]}";
    assert_int_equal(bfb_info_version(a, strlen(a), v, sizeof v), 0);
    assert_string_equal(v, "4.9.1-1");
    assert_int_equal(bfb_info_version("{}", 2, v, sizeof v), -ENOENT);
    assert_int_equal(bfb_info_version("[1]", 3, v, sizeof v), -EINVAL);
    assert_int_equal(bfb_info_version("nope", 4, v, sizeof v), -EINVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_layout),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_corrupt_named),
        cmocka_unit_test(test_info_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
