/* bfb: BlueField boot stream reader and writer (see bfb.h). */
#include "lib/codecs/bfb.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "lib/base/util.h"

#define BFB_IO_CHUNK (64 * 1024)

/* mlx-mkbfb's image IDs and option names (doca-services.md §10.1), in
 * the builder's canonical order: bfb_image_rank() is the position. */
static const struct {
    unsigned id;
    const char *name;
} bfb_ids[] = {
    {31, "bl2r-cert"},
    {30, "bl2r"},
    {42, "bl2r-auth-cert"},
    {6, "bl2-cert"},
    {1, "bl2"},
    {29, "sys"},
    {43, "bl2-auth-cert"},
    {38, "ddr-cert"},
    {32, "ddr_ini"},
    {33, "snps_images"},
    {40, "ddr5_snps_images"},
    {34, "ddr_ate_imem"},
    {35, "ddr_ate_dmem"},
    {8, "bl30-key-cert"},
    {12, "bl30-cert"},
    {2, "bl30"},
    {36, "psc-bl"},
    {37, "psc-fw"},
    {39, "psc-app"},
    {53, "psc-certs"},
    {7, "trusted-key-cert"},
    {9, "bl31-key-cert"},
    {13, "bl31-cert"},
    {3, "bl31"},
    {10, "bl32-key-cert"},
    {14, "bl32-cert"},
    {4, "bl32"},
    {11, "bl33-key-cert"},
    {15, "bl33-cert"},
    {5, "bl33"},
    {52, "capsule"},
    {55, "boot-acpi"},
    {56, "boot-dtb"},
    {57, "boot-desc"},
    {58, "boot-path"},
    {59, "boot-args"},
    {60, "boot-timeout"},
    {61, "uefi-tests"},
    {41, "nicfw"},
    {54, "ramdisk"},
    {49, "dpu-gi"},
    {48, "cfg-gi"},
    {50, "info"},
    {62, "image"},
    {63, "initramfs"},
    {51, "upgrade-image"},
};

unsigned
bfb_padding(uint64_t length)
{
    return (unsigned) (((length + 7) & ~(uint64_t) 7) - length);
}

void
bfb_header_pack(const struct bfb_header *h, uint8_t out[BFB_HEADER_SIZE])
{
    uint64_t w[3];
    w[0] = (uint64_t) h->magic | (uint64_t) (h->major & 0xf) << 32 |
           (uint64_t) (h->minor & 0xf) << 36 |
           (uint64_t) (h->next_version & 0xf) << 44 |
           (uint64_t) (h->version & 0xf) << 48 |
           (uint64_t) (h->header_words & 0xf) << 52 |
           (uint64_t) (h->id & 0xff) << 56;
    w[1] = (uint64_t) h->length | (uint64_t) h->crc << 32;
    w[2] = h->following;
    for (int i = 0; i < 3; i++) {
        for (int b = 0; b < 8; b++) {
            out[i * 8 + b] = (uint8_t) (w[i] >> (8 * b));
        }
    }
}

void
bfb_header_unpack(const uint8_t in[BFB_HEADER_SIZE], struct bfb_header *h)
{
    uint64_t w[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        for (int b = 0; b < 8; b++) {
            w[i] |= (uint64_t) in[i * 8 + b] << (8 * b);
        }
    }
    h->magic = (uint32_t) w[0];
    h->major = (unsigned) (w[0] >> 32) & 0xf;
    h->minor = (unsigned) (w[0] >> 36) & 0xf;
    /* the version fields exist from minor 2 on; older streams have 0 */
    h->next_version = h->minor >= 2 ? (unsigned) (w[0] >> 44) & 0xf : 0;
    h->version = h->minor >= 2 ? (unsigned) (w[0] >> 48) & 0xf : 0;
    h->header_words = (unsigned) (w[0] >> 52) & 0xf;
    h->id = (unsigned) (w[0] >> 56) & 0xff;
    h->length = (uint32_t) w[1];
    h->crc = (uint32_t) (w[1] >> 32);
    h->following = w[2];
}

int
bfb_header_check(const struct bfb_header *h, char *msg, size_t size)
{
    if (h->magic != BFB_MAGIC) {
        snprintf(msg, size, "bad magic 0x%08" PRIx32 " (expected 0x%08x)",
                 h->magic, BFB_MAGIC);
    } else if (h->major != BFB_MAJOR) {
        snprintf(msg, size,
                 "unsupported format version %u.%u (major %d "
                 "expected)",
                 h->major, h->minor, BFB_MAJOR);
    } else if (h->minor > BFB_MINOR) {
        snprintf(msg, size,
                 "unsupported format version %u.%u (minor at "
                 "most %d)",
                 h->major, h->minor, BFB_MINOR);
    } else if (h->header_words != BFB_HEADER_SIZE / 8) {
        snprintf(msg, size, "header length field %u words (expected %d)",
                 h->header_words, BFB_HEADER_SIZE / 8);
    } else if (h->id > 63) {
        /* the following-images bitmap has 64 bits: no ID beyond 63 */
        snprintf(msg, size, "image ID %u out of range 0..63", h->id);
    } else {
        return 0;
    }
    return -EBADMSG;
}

const char *
bfb_image_name(unsigned id)
{
    for (size_t i = 0; i < ARRAY_SIZE(bfb_ids); i++) {
        if (bfb_ids[i].id == id) {
            return bfb_ids[i].name;
        }
    }
    return NULL;
}

unsigned
bfb_image_rank(unsigned id)
{
    for (size_t i = 0; i < ARRAY_SIZE(bfb_ids); i++) {
        if (bfb_ids[i].id == id) {
            return (unsigned) i;
        }
    }
    return (unsigned) ARRAY_SIZE(bfb_ids) + id;
}

int
bfb_image_id(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(bfb_ids); i++) {
        if (!strcmp(bfb_ids[i].name, name)) {
            return (int) bfb_ids[i].id;
        }
    }
    return -ENOENT;
}

/* --- reader ---------------------------------------------------------- */

enum bfb_state {
    BFB_ST_HEADER,  /* collecting a header */
    BFB_ST_DATA,    /* image bytes */
    BFB_ST_PAD,     /* padding bytes */
    BFB_ST_TRAILER, /* after the last image */
    BFB_ST_FAILED,
};

struct bfb_reader {
    struct bfb_reader_ops ops;
    void *ctx;
    enum bfb_state state;
    uint8_t hdr[BFB_HEADER_SIZE];
    size_t hdr_len;
    struct bfb_image img;
    char unknown_name[24];
    uint64_t left; /* bytes of data or padding left in this image */
    uint32_t crc;
    uint64_t offset;          /* bytes consumed */
    uint64_t announced;       /* previous header's following bitmap */
    unsigned images;          /* completed */
    uint64_t trailer;         /* trailer bytes seen */
    struct dpf_error failure; /* repeated after a failure */
    int failure_rc;
};

struct bfb_reader *
bfb_reader_new(const struct bfb_reader_ops *ops, void *ctx)
{
    struct bfb_reader *r = xcalloc(1, sizeof *r);
    if (ops) {
        r->ops = *ops;
    }
    r->ctx = ctx;
    r->crc = (uint32_t) crc32(0L, Z_NULL, 0);
    return r;
}

void
bfb_reader_free(struct bfb_reader *r)
{
    free(r);
}

uint64_t
bfb_reader_offset(const struct bfb_reader *r)
{
    return r->offset;
}

unsigned
bfb_reader_images(const struct bfb_reader *r)
{
    return r->images;
}

uint64_t
bfb_reader_trailer_bytes(const struct bfb_reader *r)
{
    return r->trailer;
}

bool
bfb_reader_done(const struct bfb_reader *r)
{
    return r->state == BFB_ST_TRAILER;
}

/* "image #2 \"initramfs\" (ID 63, version 0) at offset 4096" */
static void
img_label(const struct bfb_reader *r, char *buf, size_t size)
{
    snprintf(buf, size,
             "image #%u \"%s\" (ID %u, version %u) at offset %" PRIu64,
             r->img.index, r->img.name, r->img.h.id, r->img.h.version,
             r->img.offset);
}

__attribute__((format(printf, 3, 4))) static int
fail(struct bfb_reader *r, struct dpf_error *err, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    dpf_error_clear(&r->failure);
    dpf_error_set(&r->failure, 400, "Invalid", "corrupt BFB: %s", msg);
    r->failure_rc = -EBADMSG;
    r->state = BFB_ST_FAILED;
    if (err) {
        *err = r->failure;
    }
    return -EBADMSG;
}

/* A callback stopped the reader: keep its error for later calls. */
static int
stopped(struct bfb_reader *r, int rc, struct dpf_error *err, const char *what)
{
    struct dpf_error local = {0};
    struct dpf_error *e = err ? err : &local;
    if (!dpf_error_is_set(e)) {
        char where[160];
        img_label(r, where, sizeof where);
        dpf_error_set(e, 500, "InternalError",
                      "BFB %s handler failed at %s: "
                      "%s",
                      what, where, strerror(-rc));
    }
    r->failure = *e;
    r->failure_rc = rc;
    r->state = BFB_ST_FAILED;
    return rc;
}

static int
start_image(struct bfb_reader *r, struct dpf_error *err)
{
    struct bfb_header h;
    char msg[160];
    bfb_header_unpack(r->hdr, &h);
    r->img.h = h;
    r->img.index = r->images;
    r->img.offset = r->offset - BFB_HEADER_SIZE;
    r->img.name = bfb_image_name(h.id);
    if (!r->img.name) {
        snprintf(r->unknown_name, sizeof r->unknown_name, "image-id-%u",
                 h.id & 0xff);
        r->img.name = r->unknown_name;
    }
    if (bfb_header_check(&h, msg, sizeof msg) < 0) {
        return fail(r, err, "header of image #%u at offset %" PRIu64 ": %s",
                    r->img.index, r->img.offset, msg);
    }
    if (r->images > 0 && !(r->announced & (UINT64_C(1) << h.id))) {
        char where[160];
        img_label(r, where, sizeof where);
        return fail(r, err,
                    "%s: the previous header does not announce an "
                    "image with ID %u (following-images bitmap 0x%" PRIx64 ")",
                    where, h.id, r->announced);
    }
    r->announced = h.following;
    r->left = h.length;
    r->crc = (uint32_t) crc32(0L, Z_NULL, 0);
    r->state = h.length ? BFB_ST_DATA : BFB_ST_PAD;
    if (!h.length) {
        r->left = 0;
    }
    if (r->ops.header) {
        int rc = r->ops.header(r->ctx, &r->img, err);
        if (rc < 0) {
            return stopped(r, rc, err, "header");
        }
    }
    return 0;
}

static int
end_image(struct bfb_reader *r, struct dpf_error *err)
{
    if (r->crc != r->img.h.crc) {
        char where[160];
        img_label(r, where, sizeof where);
        return fail(r, err,
                    "%s: CRC-32 mismatch over bytes %" PRIu64 "..%" PRIu64
                    " (header says 0x%08" PRIx32 ", data has "
                    "0x%08" PRIx32 ")",
                    where, r->img.offset + BFB_HEADER_SIZE, r->offset,
                    r->img.h.crc, r->crc);
    }
    r->images++;
    if (r->ops.image_end) {
        int rc = r->ops.image_end(r->ctx, &r->img, err);
        if (rc < 0) {
            return stopped(r, rc, err, "image end");
        }
    }
    r->hdr_len = 0;
    r->state = r->img.h.following ? BFB_ST_HEADER : BFB_ST_TRAILER;
    return 0;
}

int
bfb_reader_feed(struct bfb_reader *r, const void *data, size_t n,
                struct dpf_error *err)
{
    const uint8_t *p = data;
    int rc;
    if (r->state == BFB_ST_FAILED) {
        if (err) {
            *err = r->failure;
        }
        return r->failure_rc;
    }
    while (n > 0) {
        switch (r->state) {
        case BFB_ST_HEADER: {
            size_t k = DPF_MIN(n, BFB_HEADER_SIZE - r->hdr_len);
            memcpy(r->hdr + r->hdr_len, p, k);
            r->hdr_len += k;
            r->offset += k;
            p += k;
            n -= k;
            if (r->hdr_len == BFB_HEADER_SIZE) {
                if ((rc = start_image(r, err)) < 0) {
                    return rc;
                }
                if (r->state == BFB_ST_PAD) {
                    /* a zero-length image has no padding either */
                    if ((rc = end_image(r, err)) < 0) {
                        return rc;
                    }
                }
            }
            break;
        }
        case BFB_ST_DATA: {
            size_t k = (size_t) DPF_MIN((uint64_t) n, r->left);
            r->crc = (uint32_t) crc32(r->crc, p, (uInt) k);
            if (r->ops.data) {
                rc = r->ops.data(r->ctx, &r->img, p, k, err);
                if (rc < 0) {
                    return stopped(r, rc, err, "data");
                }
            }
            r->offset += k;
            r->left -= k;
            p += k;
            n -= k;
            if (!r->left) {
                r->left = bfb_padding(r->img.h.length);
                r->state = BFB_ST_PAD;
                if (!r->left && (rc = end_image(r, err)) < 0) {
                    return rc;
                }
            }
            break;
        }
        case BFB_ST_PAD: {
            size_t k = (size_t) DPF_MIN((uint64_t) n, r->left);
            r->crc = (uint32_t) crc32(r->crc, p, (uInt) k);
            r->offset += k;
            r->left -= k;
            p += k;
            n -= k;
            if (!r->left && (rc = end_image(r, err)) < 0) {
                return rc;
            }
            break;
        }
        case BFB_ST_TRAILER:
            if (r->ops.trailer) {
                rc = r->ops.trailer(r->ctx, p, n, err);
                if (rc < 0) {
                    return stopped(r, rc, err, "trailer");
                }
            }
            r->trailer += n;
            r->offset += n;
            n = 0;
            break;
        case BFB_ST_FAILED:
            return r->failure_rc;
        }
    }
    return 0;
}

int
bfb_reader_finish(struct bfb_reader *r, struct dpf_error *err)
{
    switch (r->state) {
    case BFB_ST_TRAILER:
        return 0;
    case BFB_ST_FAILED:
        if (err) {
            *err = r->failure;
        }
        return r->failure_rc;
    case BFB_ST_HEADER:
        if (r->images == 0 && r->hdr_len == 0) {
            return fail(r, err, "the stream is empty");
        }
        if (r->hdr_len == 0) {
            return fail(r, err,
                        "the stream ends at offset %" PRIu64
                        " after image #%u, but its header announces more "
                        "images (following-images bitmap 0x%" PRIx64 ")",
                        r->offset, r->images - 1, r->announced);
        }
        return fail(r, err,
                    "the stream ends at offset %" PRIu64 " inside "
                    "the header of image #%u (%zu of %d bytes)",
                    r->offset, r->images, r->hdr_len, BFB_HEADER_SIZE);
    case BFB_ST_DATA:
    case BFB_ST_PAD: {
        char where[160];
        img_label(r, where, sizeof where);
        return fail(r, err,
                    "%s: the stream ends at offset %" PRIu64 ", %" PRIu64
                    " bytes short of the image's end",
                    where, r->offset,
                    (r->state == BFB_ST_DATA
                         ? r->left + bfb_padding(r->img.h.length)
                         : r->left));
    }
    }
    return -EINVAL;
}

int
bfb_read_file(const char *path, const struct bfb_reader_ops *ops, void *ctx,
              struct dpf_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        dpf_error_set(err, 404, "NotFound", "%s: %s", path, strerror(e));
        return -e;
    }
    struct bfb_reader *r = bfb_reader_new(ops, ctx);
    uint8_t *buf = xmalloc(BFB_IO_CHUNK);
    int rc = 0;
    for (;;) {
        ssize_t k = read(fd, buf, BFB_IO_CHUNK);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            rc = -errno;
            dpf_error_set(err, 500, "InternalError", "%s: %s", path,
                          strerror(errno));
            break;
        }
        if (k == 0) {
            rc = bfb_reader_finish(r, err);
            break;
        }
        if ((rc = bfb_reader_feed(r, buf, (size_t) k, err)) < 0) {
            break;
        }
    }
    free(buf);
    bfb_reader_free(r);
    close(fd);
    return rc;
}

int
bfb_info_version(const void *data, size_t n, char *out, size_t size)
{
    json_error_t je;
    json_t *root = json_loadb(data, n, 0, &je);
    if (!json_is_object(root)) {
        json_decref(root);
        return -EINVAL;
    }
    json_t *v = json_object_get(root, "Version");
    if (!json_is_string(v)) {
        v = json_object_get(root, "version");
    }
    int rc = -ENOENT;
    if (json_is_string(v)) {
        snprintf(out, size, "%s", json_string_value(v));
        rc = 0;
    }
    json_decref(root);
    return rc;
}

/* --- writer ---------------------------------------------------------- */

static int
write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        ssize_t k = write(fd, b, n);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            return -errno;
        }
        b += k;
        n -= (size_t) k;
    }
    return 0;
}

/* Pass over a source: CRC and length (out == -1) or copy to out. */
static int
pass_source(const struct bfb_source *s, int out, uint8_t *buf, uint32_t *crc,
            uint64_t *len, struct dpf_error *err)
{
    *crc = (uint32_t) crc32(0L, Z_NULL, 0);
    *len = 0;
    if (!s->path) {
        if (s->len > UINT32_MAX) {
            dpf_error_set(err, 400, "Invalid",
                          "image ID %u: %zu bytes is "
                          "more than a BFB image can hold (4 GiB)",
                          s->id, s->len);
            return -EFBIG;
        }
        *crc = (uint32_t) crc32(*crc, s->data, (uInt) s->len);
        *len = s->len;
        if (out >= 0) {
            int rc = write_all(out, s->data, s->len);
            if (rc < 0) {
                dpf_error_set(err, 500, "InternalError",
                              "writing the BFB: "
                              "%s",
                              strerror(-rc));
                return rc;
            }
        }
        return 0;
    }
    int fd = open(s->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        dpf_error_set(err, 404, "NotFound", "%s: %s", s->path, strerror(e));
        return -e;
    }
    int rc = 0;
    for (;;) {
        ssize_t k = read(fd, buf, BFB_IO_CHUNK);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            rc = -errno;
            dpf_error_set(err, 500, "InternalError", "%s: %s", s->path,
                          strerror(errno));
            break;
        }
        if (k == 0) {
            break;
        }
        *len += (uint64_t) k;
        if (*len > UINT32_MAX) {
            rc = -EFBIG;
            dpf_error_set(err, 400, "Invalid",
                          "%s: more than a BFB image "
                          "can hold (4 GiB)",
                          s->path);
            break;
        }
        *crc = (uint32_t) crc32(*crc, buf, (uInt) k);
        if (out >= 0 && (rc = write_all(out, buf, (size_t) k)) < 0) {
            dpf_error_set(err, 500, "InternalError", "writing the BFB: %s",
                          strerror(-rc));
            break;
        }
    }
    close(fd);
    return rc;
}

int
bfb_write(int fd, const struct bfb_source *src, size_t n, struct dpf_error *err)
{
    static const uint8_t zeros[8];
    uint64_t following = 0;
    for (size_t i = 0; i < n; i++) {
        if (src[i].id > 63 || src[i].version > BFB_MAX_VERSION) {
            dpf_error_set(err, 400, "Invalid",
                          "image %zu: ID %u / version "
                          "%u out of range (ID 0..63, version 0..%d)",
                          i, src[i].id, src[i].version, BFB_MAX_VERSION);
            return -EINVAL;
        }
        following |= UINT64_C(1) << src[i].id;
    }
    uint8_t *buf = xmalloc(BFB_IO_CHUNK);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct bfb_source *s = &src[i];
        uint32_t crc, crc2;
        uint64_t len, len2;
        if ((rc = pass_source(s, -1, buf, &crc, &len, err)) < 0) {
            break;
        }
        unsigned pad = bfb_padding(len);
        uint32_t data_crc = crc;
        crc = (uint32_t) crc32(crc, zeros, pad);
        /* the next image of this ID, if any, gives next_version; the ID's
         * last image clears its bit, so the last header's bitmap is 0 */
        unsigned next = 0;
        bool last = true;
        for (size_t j = i + 1; j < n; j++) {
            if (src[j].id == s->id) {
                next = src[j].version;
                last = false;
                break;
            }
        }
        if (last) {
            following &= ~(UINT64_C(1) << s->id);
        }
        struct bfb_header h = {
            .magic = BFB_MAGIC,
            .major = BFB_MAJOR,
            .minor = BFB_MINOR,
            .next_version = next,
            .version = s->version,
            .header_words = BFB_HEADER_SIZE / 8,
            .id = s->id,
            .length = (uint32_t) len,
            .crc = crc,
            .following = following,
        };
        uint8_t hdr[BFB_HEADER_SIZE];
        bfb_header_pack(&h, hdr);
        if ((rc = write_all(fd, hdr, sizeof hdr)) < 0) {
            dpf_error_set(err, 500, "InternalError", "writing the BFB: %s",
                          strerror(-rc));
            break;
        }
        if ((rc = pass_source(s, fd, buf, &crc2, &len2, err)) < 0) {
            break;
        }
        if (len2 != len || crc2 != data_crc) {
            /* the file changed between the passes: the header is wrong */
            rc = -ESTALE;
            dpf_error_set(err, 409, "Conflict",
                          "%s changed while the BFB "
                          "was written (%" PRIu64 " then %" PRIu64 " bytes)",
                          s->path ? s->path : "image", len, len2);
            break;
        }
        if ((rc = write_all(fd, zeros, pad)) < 0) {
            dpf_error_set(err, 500, "InternalError", "writing the BFB: %s",
                          strerror(-rc));
        }
    }
    free(buf);
    return rc;
}
