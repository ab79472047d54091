/* bfb: the BlueField boot stream ("BFB") that mlx-mkbfb writes and the
 * DPU's boot ROM reads from the rshim boot FIFO.
 *
 * Written here because no Debian library reads or writes it. The layout
 * (docs/services/dms.md has the table): a sequence of records, each a
 * 24-byte little-endian header (three u64 words: magic 0x13026642, major
 * and minor format version, next and current image version, header length
 * in words, image ID; image length and CRC-32; the "following images"
 * bitmap), the image bytes and zero padding to a multiple of 8. The CRC is
 * zlib's crc32 (IEEE 802.3, what mlx-mkbfb computes with binascii.crc32)
 * over the image bytes plus the padding. The builder clears an ID's bit in
 * the bitmap on that ID's last image, so the last header's bitmap is 0:
 * that is where the BFB ends, and whatever follows it in the same stream
 * (a bf.cfg that `cat bfb bf.cfg > boot` appended) is the trailer.
 *
 * Both directions stream: the reader is fed chunks of any size as they
 * arrive (a FIFO, a gRPC stream) and calls back per header, per data chunk
 * and per finished image; the writer reads each source twice (once for the
 * CRC that precedes the data, once to copy it), so neither ever holds an
 * image in memory. No threads; a reader or writer belongs to its caller's
 * thread. */
#ifndef DPF_CODECS_BFB_H
#define DPF_CODECS_BFB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/error.h"

#define BFB_MAGIC 0x13026642u
#define BFB_HEADER_SIZE 24
#define BFB_MAJOR 1        /* the only major version readers accept */
#define BFB_MINOR 2        /* the newest minor version (image versions) */
#define BFB_MAX_VERSION 15 /* image version fields are 4 bits */

/* Well-known image IDs (mlx-mkbfb's option names give the others). */
#define BFB_ID_BOOT_ARGS 59
#define BFB_ID_INFO 50
#define BFB_ID_IMAGE 62 /* the kernel */
#define BFB_ID_INITRAMFS 63

/* One decoded header. */
struct bfb_header {
    uint32_t magic;
    unsigned major;
    unsigned minor;
    unsigned next_version; /* version of the next image of this ID; 0 =
                              this is the ID's last (minor >= 2 only) */
    unsigned version;      /* this image's version (boot-args-v2 -> 2) */
    unsigned header_words; /* header length / 8; 3 */
    unsigned id;           /* image ID, 0..63 */
    uint32_t length;       /* image bytes, padding excluded */
    uint32_t crc;          /* CRC-32 over the image and its padding */
    uint64_t following;    /* bit N: an image with ID N still follows */
};

/* An image as the reader reports it. */
struct bfb_image {
    struct bfb_header h;
    unsigned index;   /* 0 for the first image of the stream */
    uint64_t offset;  /* stream offset of its header */
    const char *name; /* bfb_image_name(id), or "image-id-<N>" (static or
                         owned by the reader; valid during the callback) */
};

/* Zero bytes that follow an image of length bytes. */
unsigned bfb_padding(uint64_t length);
/* Encode / decode a header (no checks on decode: see bfb_header_check). */
void bfb_header_pack(const struct bfb_header *h, uint8_t out[BFB_HEADER_SIZE]);
void bfb_header_unpack(const uint8_t in[BFB_HEADER_SIZE], struct bfb_header *h);
/* mlx-mkbfb's checks: magic, major == 1, minor <= 2, 3 header words.
 * 0 or -EBADMSG with what was wrong in msg. */
int bfb_header_check(const struct bfb_header *h, char *msg, size_t size);
/* The mlx-mkbfb option name of an image ID ("initramfs"), or NULL. */
const char *bfb_image_name(unsigned id);
/* Position of an ID in mlx-mkbfb's canonical image order (unknown IDs
 * sort last, by ID). Builders emit images by ascending rank. */
unsigned bfb_image_rank(unsigned id);
/* The image ID of an option name, or -ENOENT. */
int bfb_image_id(const char *name);

/* --- reading ------------------------------------------------------- */

/* What the reader calls; any may be NULL. A callback returns 0 to go on or
 * a negative errno to stop the reader (it should fill err then; if it
 * does not, the reader says which callback stopped it). */
struct bfb_reader_ops {
    /* A header passed its checks; its image's data follows. */
    int (*header)(void *ctx, const struct bfb_image *img,
                  struct dpf_error *err);
    /* Image bytes (padding excluded), in order, in chunks of any size. */
    int (*data)(void *ctx, const struct bfb_image *img, const uint8_t *p,
                size_t n, struct dpf_error *err);
    /* The image and its padding are complete and the CRC matched. */
    int (*image_end)(void *ctx, const struct bfb_image *img,
                     struct dpf_error *err);
    /* Bytes after the BFB's last image (an appended bf.cfg). */
    int (*trailer)(void *ctx, const uint8_t *p, size_t n,
                   struct dpf_error *err);
};

struct bfb_reader;

/* A reader calling ops with ctx. Owned by the caller: bfb_reader_free. */
struct bfb_reader *bfb_reader_new(const struct bfb_reader_ops *ops, void *ctx);
void bfb_reader_free(struct bfb_reader *r);
/* Feed the next n bytes. 0, or -EBADMSG for a corrupt stream with err
 * naming the image (index, name, ID) and the stream offset, or the error
 * a callback returned. After an error the reader refuses further input
 * with the same error. */
int bfb_reader_feed(struct bfb_reader *r, const void *p, size_t n,
                    struct dpf_error *err);
/* The stream ended: 0 if it held a complete BFB (with or without a
 * trailer), else -EBADMSG naming where it was cut. */
int bfb_reader_finish(struct bfb_reader *r, struct dpf_error *err);
/* Bytes fed so far; images completed; bytes of trailer seen. */
uint64_t bfb_reader_offset(const struct bfb_reader *r);
unsigned bfb_reader_images(const struct bfb_reader *r);
uint64_t bfb_reader_trailer_bytes(const struct bfb_reader *r);
/* True once the BFB's last image is complete (what follows is trailer). */
bool bfb_reader_done(const struct bfb_reader *r);

/* Read a whole file through a reader (the file is streamed, 64 KiB at a
 * time). 0, -errno (err names the file) or the reader's error. */
int bfb_read_file(const char *path, const struct bfb_reader_ops *ops, void *ctx,
                  struct dpf_error *err);

/* --- the info image -------------------------------------------------- */

/* The BFB's version from the JSON of an info image (ID 50): the string
 * member "Version" (or "version") of the top-level object, copied into
 * out. 0, or -ENOENT when the JSON has none, -EINVAL when it is not a
 * JSON object. */
int bfb_info_version(const void *json, size_t n, char *out, size_t size);

/* --- writing ------------------------------------------------------- */

/* One image to write: from a file (path) or from memory (data, len). */
struct bfb_source {
    unsigned id;
    unsigned version;
    const char *path; /* read twice: CRC pass, then copy pass */
    const void *data; /* used when path is NULL */
    size_t len;
};

/* Write the images in the order given (the caller orders them; same-ID
 * images must be in ascending version order) to the file descriptor fd,
 * filling in lengths, CRCs, next versions and the following-images
 * bitmaps. Returns 0, or -errno with err naming the source or the
 * output. Memory use is one 64 KiB buffer whatever the image sizes. */
int bfb_write(int fd, const struct bfb_source *src, size_t n,
              struct dpf_error *err);

#endif
