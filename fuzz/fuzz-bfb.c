/* Fuzz target for lib/codecs/bfb's reader: any byte string either reads as
 * a BFB or fails with "corrupt BFB: ..." naming an offset; feeding it in
 * one piece and in random-sized pieces gives the same answer, and the data
 * callback sees exactly the lengths the headers announce. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"
#include "lib/codecs/bfb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct tally {
    uint64_t announced; /* sum of header lengths */
    uint64_t seen;      /* sum of data callback bytes */
    uint64_t trailer;
    unsigned headers;
    unsigned ends;
};

static int
on_header(void *ctx, const struct bfb_image *img, struct dpf_error *err)
{
    (void) err;
    struct tally *t = ctx;
    if (img->index != t->headers || !img->name || !img->name[0]) {
        abort();
    }
    t->headers++;
    t->announced += img->h.length;
    return 0;
}

static int
on_data(void *ctx, const struct bfb_image *img, const uint8_t *p, size_t n,
        struct dpf_error *err)
{
    (void) img;
    (void) p;
    (void) err;
    struct tally *t = ctx;
    if (n == 0) {
        abort();
    }
    t->seen += n;
    return 0;
}

static int
on_end(void *ctx, const struct bfb_image *img, struct dpf_error *err)
{
    (void) err;
    struct tally *t = ctx;
    t->ends++;
    /* a completed image delivered exactly its announced length */
    if (t->seen != t->announced || img->index + 1 != t->ends) {
        abort();
    }
    return 0;
}

static int
on_trailer(void *ctx, const uint8_t *p, size_t n, struct dpf_error *err)
{
    (void) p;
    (void) err;
    struct tally *t = ctx;
    t->trailer += n;
    return 0;
}

static const struct bfb_reader_ops ops = {on_header, on_data, on_end,
                                          on_trailer};

static int
run(const uint8_t *data, size_t size, int chunked, struct tally *t,
    struct dpf_error *err)
{
    struct bfb_reader *r = bfb_reader_new(&ops, t);
    uint32_t seed = (uint32_t) size * 2654435761u + 1;
    size_t off = 0;
    int rc = 0;
    while (off < size && rc == 0) {
        size_t k = size - off;
        if (chunked) {
            seed = seed * 1103515245u + 12345u;
            k = DPF_MIN(k, (size_t) (seed >> 16) % 37 + 1);
        }
        rc = bfb_reader_feed(r, data + off, k, err);
        off += k;
    }
    if (rc == 0) {
        rc = bfb_reader_finish(r, err);
    }
    if (rc == 0 && (bfb_reader_offset(r) != size ||
                    bfb_reader_trailer_bytes(r) != t->trailer)) {
        abort();
    }
    bfb_reader_free(r);
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct tally a = {0}, b = {0};
    struct dpf_error ea = {0}, eb = {0};
    int ra = run(data, size, 0, &a, &ea);
    int rb = run(data, size, 1, &b, &eb);
    if (ra != rb || a.ends != b.ends || a.trailer != b.trailer ||
        strcmp(ea.message, eb.message) != 0) {
        abort();
    }
    if (ra < 0 && strncmp(ea.message, "corrupt BFB: ", 13) != 0) {
        abort();
    }
    if (ra < 0 && !strstr(ea.message, "offset") &&
        !strstr(ea.message, "empty")) {
        abort();
    }
    return 0;
}
