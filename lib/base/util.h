/* util: checked allocation, string helpers and clocks used everywhere.
 *
 * The x* allocators abort the process on out-of-memory: daemons treat OOM
 * as fatal rather than threading ENOMEM through every call. Every returned
 * pointer is owned by the caller and released with free(). */
#ifndef DPF_UTIL_H
#define DPF_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define DPF_MIN(a, b) ((a) < (b) ? (a) : (b))
#define DPF_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Allocate; abort on OOM. */
void *xmalloc(size_t n);
/* Zeroed allocation of n * size bytes; abort on OOM or overflow. */
void *xcalloc(size_t n, size_t size);
/* Resize; abort on OOM. */
void *xrealloc(void *p, size_t n);
/* Copy of a NUL-terminated string (NULL stays NULL). */
char *xstrdup(const char *s);
/* Copy of the first n bytes of s, NUL-terminated. */
char *xstrndup(const char *s, size_t n);
/* printf into a new string. */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap)
    __attribute__((format(printf, 1, 0)));

/* A growable byte buffer (always NUL-terminated after data[len]). */
struct dbuf {
    char *data; /* owned; NULL until the first append */
    size_t len; /* bytes used, excluding the terminating NUL */
    size_t cap; /* bytes allocated */
};
void dbuf_init(struct dbuf *b);
void dbuf_append(struct dbuf *b, const void *p, size_t n);
/* Make room for extra more bytes without aborting: 0, or -ENOMEM with b
 * unchanged. After success, appends totalling at most extra bytes do not
 * allocate (so cannot abort): the path for code that must report OOM, such
 * as the public client library libdts-exporter. */
int dbuf_try_reserve(struct dbuf *b, size_t extra);
void dbuf_puts(struct dbuf *b, const char *s);
void dbuf_printf(struct dbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Hand the buffer to the caller (free() it); b is reset to empty. */
char *dbuf_steal(struct dbuf *b, size_t *len);
void dbuf_free(struct dbuf *b);

bool str_has_prefix(const char *s, const char *prefix);
bool str_has_suffix(const char *s, const char *suffix);

/* UTF-8 as RFC 3629 defines it, which is exactly what jansson accepts in a
 * string: no overlong forms, no surrogates (U+D800..DFFF), nothing past
 * U+10FFFF. Anything that goes into a JSON document must pass this, or
 * jansson refuses it (json_string() returns NULL). The checks are written
 * here rather than taken from libunistring (u8_check) so that every
 * program linking util (dts among them, whose footprint we watch) does not
 * load one more library for a 30-line table; jansson does not export its
 * own checker. */
/* Is s[0..len) valid UTF-8? (NUL bytes count as valid.) */
bool utf8_valid(const char *s, size_t len);
/* Length of the longest prefix of s[0..len) of at most max bytes that does
 * not end inside a multibyte character: the place to cut text that must
 * fit a buffer. */
size_t utf8_prefix(const char *s, size_t len, size_t max);
/* snprintf(dst, size, "%s", src) that never cuts a character in two. */
void utf8_copy(char *dst, size_t size, const char *src);
/* A valid UTF-8 copy of s[0..len) (new string, *out_len its length; may be
 * NULL): a character cut short by the end of s (text truncated by a
 * fixed-size buffer) is dropped, every other invalid byte becomes U+FFFD.
 * Valid text is copied unchanged. */
char *utf8_sanitize(const char *s, size_t len, size_t *out_len);

/* Monotonic clock in nanoseconds / milliseconds. */
int64_t time_mono_ns(void);
int64_t time_mono_ms(void);
/* Wall clock in nanoseconds since the epoch. */
int64_t time_wall_ns(void);
/* RFC 3339 UTC timestamp with second precision ("2026-11-22T03:56:27Z")
 * into buf (at least 21 bytes). */
void time_format_rfc3339(int64_t wall_ns, char *buf, size_t size);

/* Read a whole file into a new NUL-terminated buffer. 0 or -errno. */
int file_read_all(const char *path, char **data, size_t *len);
/* Read a configuration-like file an operator (or attacker) may point us
 * at: only a regular file (checked on the open descriptor, which is opened
 * non-blocking so a FIFO cannot hang us) of at most max bytes. 0, -EINVAL
 * when it is not a regular file (FIFO, device such as /dev/zero,
 * directory), -EFBIG when larger than max, or another -errno. */
int file_read_regular(const char *path, size_t max, char **data, size_t *len);
/* file_replace()'s flag: no fsync. The file is still replaced
 * atomically for readers and across a crash of the process, but not
 * durably across a crash of the machine. */
#define FILE_REPLACE_NOSYNC 1u
/* Write a file atomically (temp file, fsync, rename, fsync dir, without
 * the fsyncs under FILE_REPLACE_NOSYNC) with the given mode. 0 or
 * -errno. */
int file_replace(const char *path, const void *data, size_t len, unsigned mode,
                 unsigned flags);
/* file_replace() with no flags: durable once it returns 0. */
int file_write_atomic(const char *path, const void *data, size_t len,
                      unsigned mode);
/* mkdir -p. 0 or -errno. */
int dir_create_all(const char *path, unsigned mode);

#endif
