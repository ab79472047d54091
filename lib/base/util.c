/* util: see util.h. */
#include "lib/base/util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void
oom(size_t n)
{
    fprintf(stderr, "fatal: out of memory allocating %zu bytes\n", n);
    abort();
}

void *
xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        oom(n);
    }
    return p;
}

void *
xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        oom(n * size);
    }
    return p;
}

void *
xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        oom(n);
    }
    return q;
}

char *
xstrdup(const char *s)
{
    return s ? xstrndup(s, strlen(s)) : NULL;
}

char *
xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *
xvasprintf(const char *fmt, va_list ap)
{
    char *s;
    if (vasprintf(&s, fmt, ap) < 0) {
        oom(0);
    }
    return s;
}

char *
xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = xvasprintf(fmt, ap);
    va_end(ap);
    return s;
}

void
dbuf_init(struct dbuf *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

static void
dbuf_reserve(struct dbuf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) {
        return;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) {
        cap *= 2;
    }
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

int
dbuf_try_reserve(struct dbuf *b, size_t extra)
{
    if (extra > SIZE_MAX / 4 - b->len) {
        return -ENOMEM;
    }
    if (b->len + extra + 1 <= b->cap) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) {
        cap *= 2;
    }
    char *data = realloc(b->data, cap);
    if (!data) {
        return -ENOMEM;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

void
dbuf_append(struct dbuf *b, const void *p, size_t n)
{
    dbuf_reserve(b, n);
    if (n) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    b->data[b->len] = '\0';
}

void
dbuf_puts(struct dbuf *b, const char *s)
{
    dbuf_append(b, s, strlen(s));
}

void
dbuf_printf(struct dbuf *b, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return;
    }
    dbuf_reserve(b, (size_t) n);
    vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t) n;
}

char *
dbuf_steal(struct dbuf *b, size_t *len)
{
    if (!b->data) {
        dbuf_reserve(b, 0);
        b->data[0] = '\0';
    }
    char *p = b->data;
    if (len) {
        *len = b->len;
    }
    dbuf_init(b);
    return p;
}

void
dbuf_free(struct dbuf *b)
{
    free(b->data);
    dbuf_init(b);
}

bool
str_has_prefix(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool
str_has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

/* Length of the valid UTF-8 sequence at s[0..n) (1 to 4), or 0 if the
 * bytes there are not one. *cut is set when they are a correct start that
 * n ends too early. The ranges are RFC 3629's table (section 4). */
static size_t
utf8_seq(const unsigned char *s, size_t n, bool *cut)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
    *cut = false;
    if (c < 0x80) {
        return 1;
    }
    if (c < 0xc2 || c > 0xf4) {
        return 0;
    }
    if (c < 0xe0) {
        need = 2;
    } else if (c < 0xf0) {
        need = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else {
        need = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    }
    for (size_t i = 1; i < need; i++) {
        if (i >= n) {
            *cut = true;
            return 0;
        }
        unsigned char min = i == 1 ? lo : 0x80, max = i == 1 ? hi : 0xbf;
        if (s[i] < min || s[i] > max) {
            return 0;
        }
    }
    return need;
}

bool
utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *) s;
    size_t i = 0;
    while (i < len) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        bool cut;
        size_t n = utf8_seq(p + i, len - i, &cut);
        if (!n) {
            return false;
        }
        i += n;
    }
    return true;
}

size_t
utf8_prefix(const char *s, size_t len, size_t max)
{
    if (max >= len) {
        return len;
    }
    /* s[max] is the first byte left out: when it continues a character
     * that starts before max, cut before that character's first byte. */
    const unsigned char *u = (const unsigned char *) s;
    size_t p = max;
    while (p > 0 && max - p < 3 && (u[p] & 0xc0) == 0x80) {
        p--;
    }
    size_t need = u[p] >= 0xf0 ? 4 : u[p] >= 0xe0 ? 3 : u[p] >= 0xc0 ? 2 : 1;
    return p < max && need > max - p ? p : max;
}

void
utf8_copy(char *dst, size_t size, const char *src)
{
    if (!size) {
        return;
    }
    size_t len = src ? strlen(src) : 0;
    size_t n = utf8_prefix(src ? src : "", len, size - 1);
    if (n) {
        memcpy(dst, src, n);
    }
    dst[n] = '\0';
}

char *
utf8_sanitize(const char *s, size_t len, size_t *out_len)
{
    const unsigned char *p = (const unsigned char *) s;
    struct dbuf b;
    dbuf_init(&b);
    size_t i = 0, run = 0; /* run: valid bytes not yet copied */
    while (i < len) {
        bool cut = false;
        size_t n = p[i] < 0x80 ? 1 : utf8_seq(p + i, len - i, &cut);
        if (n) {
            i += n;
            run += n;
            continue;
        }
        dbuf_append(&b, s + i - run, run);
        run = 0;
        if (cut) {
            break; /* truncated text: drop the partial character */
        }
        dbuf_puts(&b, "\xef\xbf\xbd"); /* U+FFFD */
        i++;
    }
    dbuf_append(&b, s + i - run, run);
    return dbuf_steal(&b, out_len);
}

int64_t
time_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t
time_mono_ms(void)
{
    return time_mono_ns() / 1000000;
}

int64_t
time_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void
time_format_rfc3339(int64_t wall_ns, char *buf, size_t size)
{
    time_t t = (time_t) (wall_ns / 1000000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int
file_read_all(const char *path, char **data, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    struct dbuf b;
    dbuf_init(&b);
    char chunk[65536];
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            int err = -errno;
            close(fd);
            dbuf_free(&b);
            return err;
        }
        if (n == 0) {
            break;
        }
        dbuf_append(&b, chunk, (size_t) n);
    }
    close(fd);
    *data = dbuf_steal(&b, len);
    return 0;
}

int
file_read_regular(const char *path, size_t max, char **data, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        return -errno;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return -EINVAL;
    }
    if ((uint64_t) st.st_size > max) {
        close(fd);
        return -EFBIG;
    }
    struct dbuf b;
    dbuf_init(&b);
    char chunk[65536];
    for (;;) {
        /* the size can change under us: never read past max + 1 */
        size_t want = DPF_MIN(sizeof chunk, max + 1 - b.len);
        ssize_t n = read(fd, chunk, want);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            int err = -errno;
            close(fd);
            dbuf_free(&b);
            return err;
        }
        if (n == 0) {
            break;
        }
        dbuf_append(&b, chunk, (size_t) n);
        if (b.len > max) {
            close(fd);
            dbuf_free(&b);
            return -EFBIG;
        }
    }
    close(fd);
    *data = dbuf_steal(&b, len);
    return 0;
}

int
file_write_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
    return file_replace(path, data, len, mode, 0);
}

int
file_replace(const char *path, const void *data, size_t len, unsigned mode,
             unsigned flags)
{
    bool sync = !(flags & FILE_REPLACE_NOSYNC);
    char *tmp = xasprintf("%s.tmp.%d", path, (int) getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) {
        int err = -errno;
        free(tmp);
        return err;
    }
    const char *p = data;
    size_t left = len;
    while (left) {
        ssize_t n = write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            int err = -errno;
            close(fd);
            unlink(tmp);
            free(tmp);
            return err;
        }
        p += n;
        left -= (size_t) n;
    }
    if (fchmod(fd, mode) < 0 || (sync && fsync(fd) < 0)) {
        int err = -errno;
        close(fd);
        unlink(tmp);
        free(tmp);
        return err;
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        int err = -errno;
        unlink(tmp);
        free(tmp);
        return err;
    }
    free(tmp);
    if (!sync) {
        return 0;
    }
    char *dcopy = xstrdup(path);
    int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dcopy);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

int
dir_create_all(const char *path, unsigned mode)
{
    char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, mode) < 0 && errno != EEXIST) {
                int err = -errno;
                free(p);
                return err;
            }
            *s = '/';
        }
    }
    int rc = 0;
    if (mkdir(p, mode) < 0 && errno != EEXIST) {
        rc = -errno;
    }
    free(p);
    return rc;
}
