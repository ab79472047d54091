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
void dbuf_puts(struct dbuf *b, const char *s);
void dbuf_printf(struct dbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Hand the buffer to the caller (free() it); b is reset to empty. */
char *dbuf_steal(struct dbuf *b, size_t *len);
void dbuf_free(struct dbuf *b);

bool str_has_prefix(const char *s, const char *prefix);
bool str_has_suffix(const char *s, const char *suffix);

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
/* Write a file atomically (temp file, fsync, rename, fsync dir) with the
 * given mode. 0 or -errno. */
int file_write_atomic(const char *path, const void *data, size_t len,
                      unsigned mode);
/* mkdir -p. 0 or -errno. */
int dir_create_all(const char *path, unsigned mode);

#endif
