/* zpack: small texts deflated against a preset dictionary.
 *
 * Objects of one kind share most of their bytes (member names, managed
 * fields, owner references, the namespace), and a 2-6 KB object alone
 * deflates only 1.6-3x. Deflated against another object of the same kind
 * as zlib's preset dictionary, the same objects shrink 4-15x (pods 7x,
 * nodes and DPUs 10-12x, Events and Secrets 4.5x). The watch cache keeps
 * the objects nobody has written for a while this way.
 *
 * Raw deflate (no zlib header or checksum): the packed bytes live in
 * memory only, next to their original length. zlib does the work; this
 * module only holds the reusable compressor and the dictionary rules. */
#ifndef DPF_CODECS_ZPACK_H
#define DPF_CODECS_ZPACK_H

#include <stddef.h>

/* zlib looks back 32 KiB at most: a longer dictionary is cut to its
 * last ZPACK_DICT_MAX bytes. */
#define ZPACK_DICT_MAX 32768

/* A compressor; one thread at a time uses it. */
struct zpack;

struct zpack *zpack_create(void);
void zpack_destroy(struct zpack *z);

/* Deflate text[0..len) against dict[0..dict_len) (the dictionary's last
 * ZPACK_DICT_MAX bytes count). The result goes to a new buffer of
 * hdr + packed bytes, after hdr bytes left for the caller (uninitialised);
 * *out_len = the packed bytes. NULL when packing would not save at least
 * an eighth of len (store the text as it is) or zlib failed. */
char *zpack_pack(struct zpack *z, const char *dict, size_t dict_len,
                 const char *text, size_t len, size_t hdr, size_t *out_len);

/* Inflate packed[0..plen) made by zpack_pack with the same dictionary into
 * out[0..len), where len is the original length; out[len] = '\0' (out has
 * len + 1 bytes). 0, or -EINVAL when the bytes do not inflate to exactly
 * len bytes. Any thread; no shared state. */
int zpack_unpack(const char *dict, size_t dict_len, const char *packed,
                 size_t plen, char *out, size_t len);

#endif
