/* base64: RFC 4648 base64, the project's one codec for it.
 *
 * Written here rather than taken from OpenSSL: the callers need Go's
 * exact rules, which OpenSSL's EVP decoder does not give (it skips
 * whitespace, accepts missing padding and reports no error offset):
 *  - Secret data is validated as Go's base64.StdEncoding does, with the
 *    offset of the first illegal byte in the error ("illegal base64 data
 *    at input byte N", as kube-apiserver says);
 *  - list continue tokens are base64url without padding;
 *  - kubeconfig *-data fields are decoded leniently (whitespace, either
 *    alphabet, optional padding), as kubectl accepts them.
 *
 * Memory: returned strings are malloc'd (abort on OOM, as xmalloc), NUL
 * terminated, owned by the caller. */
#ifndef DPF_BASE64_H
#define DPF_BASE64_H

#include <stdbool.h>
#include <stddef.h>

enum base64_variant {
    BASE64_STD,     /* A-Z a-z 0-9 + /, padded with '=' (StdEncoding) */
    BASE64_URL_RAW, /* A-Z a-z 0-9 - _, no padding (RawURLEncoding) */
};

/* Encode n bytes. */
char *base64_encode(const void *in, size_t n, enum base64_variant v);

/* Check s[0..n) as strict padded standard base64. Returns the decoded
 * length, or -(1 + offset of the first illegal byte). */
long base64_check(const char *s, size_t n);

enum base64_mode {
    BASE64_STRICT,  /* exactly base64_check()'s rules */
    BASE64_URL,     /* URL alphabet (also + /), padding optional */
    BASE64_LENIENT, /* either alphabet, whitespace skipped, padding
                       optional (kubeconfig data) */
};

/* Decode s[0..n) into *out (*out_len bytes plus a NUL). Returns 0, or
 * -EINVAL (nothing allocated) when the text is not valid in that mode. */
int base64_decode(const char *s, size_t n, enum base64_mode mode, char **out,
                  size_t *out_len);

#endif
