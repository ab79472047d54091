/* log: see log.h. */
#include "lib/base/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/base/util.h"

static enum dpf_log_level log_level = DPF_LOG_INFO;
static FILE *log_file;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void
log_set_level(enum dpf_log_level level)
{
    log_level = level;
}

int
log_set_level_name(const char *name)
{
    for (size_t i = 0; i < ARRAY_SIZE(level_names); i++) {
        if (!strcmp(name, level_names[i])) {
            log_level = (enum dpf_log_level) i;
            return 0;
        }
    }
    return -EINVAL;
}

enum dpf_log_level
log_get_level(void)
{
    return log_level;
}

int
log_set_file(const char *path)
{
    FILE *f = NULL;
    if (path) {
        f = fopen(path, "ae");
        if (!f) {
            return -errno;
        }
        setvbuf(f, NULL, _IOLBF, 0);
    }
    pthread_mutex_lock(&log_lock);
    if (log_file) {
        fclose(log_file);
    }
    log_file = f;
    pthread_mutex_unlock(&log_lock);
    return 0;
}

bool
log_enabled(enum dpf_log_level level)
{
    return level <= log_level;
}

/* Append text as a logfmt value: inside quotes written by the caller
 * ("reason=\"%s\"") escape quote, backslash and line ends; bare (key=%s)
 * quote it when it holds anything a logfmt reader would split on. */
static void
log_append_value(struct dbuf *out, const char *v, size_t n, bool quoted)
{
    bool bare_ok = n > 0 && !quoted;
    for (size_t i = 0; i < n && bare_ok; i++) {
        unsigned char c = (unsigned char) v[i];
        bare_ok = c > ' ' && c != '"' && c != '=' && c != '\\' && c != 0x7f;
    }
    if (bare_ok) {
        dbuf_append(out, v, n);
        return;
    }
    if (!quoted) {
        dbuf_append(out, "\"", 1);
    }
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (c == '"' || c == '\\') {
            dbuf_append(out, "\\", 1);
            dbuf_append(out, &c, 1);
        } else if (c == '\n') {
            dbuf_append(out, "\\n", 2);
        } else if (c == '\r') {
            dbuf_append(out, "\\r", 2);
        } else if ((unsigned char) c < ' ' || c == 0x7f) {
            dbuf_printf(out, "\\x%02x", (unsigned char) c);
        } else {
            dbuf_append(out, &c, 1);
        }
    }
    if (!quoted) {
        dbuf_append(out, "\"", 1);
    }
}

/* printf the key=value part one conversion at a time so that every %s/%c
 * value is escaped for logfmt (see log_append_value): a message holding a
 * quote must not end the value early and make the line unparsable.
 * Supports the conversions and length modifiers printf has, with * width
 * and precision. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void
log_format_kv(struct dbuf *out, const char *fmt, va_list *ap)
{
    bool in_quote = false;
    struct dbuf v;
    dbuf_init(&v);
    for (const char *p = fmt; *p;) {
        if (*p != '%') {
            if (*p == '"') {
                in_quote = !in_quote;
            }
            dbuf_append(out, p, 1);
            p++;
            continue;
        }
        if (p[1] == '%') {
            dbuf_append(out, "%", 1);
            p += 2;
            continue;
        }
        const char *start = p++;
        int stars[2], n_stars = 0;
        while (*p && strchr("-+ #0", *p)) {
            p++;
        }
        for (int part = 0; part < 2; part++) {
            if (part == 1) {
                if (*p != '.') {
                    break;
                }
                p++;
            }
            if (*p == '*') {
                stars[n_stars++] = va_arg(*ap, int);
                p++;
            }
            while (*p >= '0' && *p <= '9') {
                p++;
            }
        }
        int len = 0; /* 1 h, 2 hh, 3 l, 4 ll, 5 z, 6 j, 7 t, 8 L */
        if (p[0] == 'h' && p[1] == 'h') {
            len = 2, p += 2;
        } else if (p[0] == 'l' && p[1] == 'l') {
            len = 4, p += 2;
        } else if (*p && strchr("hlzjtL", *p)) {
            len = (int) (strchr("h?l?zjtL", *p) - "h?l?zjtL") + 1;
            p++;
        }
        char conv = *p ? *p++ : '\0';
        char spec[32];
        size_t sl = (size_t) (p - start);
        if (!conv || sl >= sizeof spec) {
            break; /* malformed: stop rather than read random arguments */
        }
        memcpy(spec, start, sl);
        spec[sl] = '\0';
        v.len = 0;
#define LOG_FMT_ARG(arg)                                    \
    do {                                                    \
        if (n_stars == 2) {                                 \
            dbuf_printf(&v, spec, stars[0], stars[1], arg); \
        } else if (n_stars == 1) {                          \
            dbuf_printf(&v, spec, stars[0], arg);           \
        } else {                                            \
            dbuf_printf(&v, spec, arg);                     \
        }                                                   \
    } while (0)
        switch (conv) {
        case 'd':
        case 'i':
        case 'u':
        case 'x':
        case 'X':
        case 'o':
        case 'c':
            if (len == 3) {
                LOG_FMT_ARG(va_arg(*ap, long));
            } else if (len == 4) {
                LOG_FMT_ARG(va_arg(*ap, long long));
            } else if (len == 5) {
                LOG_FMT_ARG(va_arg(*ap, size_t));
            } else if (len == 6) {
                LOG_FMT_ARG(va_arg(*ap, intmax_t));
            } else if (len == 7) {
                LOG_FMT_ARG(va_arg(*ap, ptrdiff_t));
            } else {
                LOG_FMT_ARG(va_arg(*ap, int));
            }
            break;
        case 'f':
        case 'F':
        case 'e':
        case 'E':
        case 'g':
        case 'G':
        case 'a':
        case 'A':
            if (len == 8) {
                LOG_FMT_ARG(va_arg(*ap, long double));
            } else {
                LOG_FMT_ARG(va_arg(*ap, double));
            }
            break;
        case 's': {
            const char *sv = va_arg(*ap, const char *);
            LOG_FMT_ARG(sv ? sv : "(null)");
            break;
        }
        case 'p':
            LOG_FMT_ARG(va_arg(*ap, void *));
            break;
        default:
            dbuf_free(&v);
            return; /* %n or unknown: never */
        }
#undef LOG_FMT_ARG
        if (conv == 's' || conv == 'c') {
            log_append_value(out, v.data ? v.data : "", v.len, in_quote);
        } else if (v.len) {
            dbuf_append(out, v.data, v.len);
        }
    }
    dbuf_free(&v);
}
#pragma GCC diagnostic pop

static void __attribute__((format(printf, 4, 0)))
log_vemit(enum dpf_log_level level, const char *module, const char *msg,
          const char *kv_fmt, va_list ap)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char tbuf[32];
    strftime(tbuf, sizeof tbuf, "%Y-%m-%dT%H:%M:%S", &tm);

    struct dbuf line;
    dbuf_init(&line);
    dbuf_printf(&line, "ts=%s.%03ldZ level=%s module=%s msg=\"", tbuf,
                ts.tv_nsec / 1000000, level_names[level], module);
    for (const char *c = msg; *c; c++) {
        if (*c == '"' || *c == '\\') {
            dbuf_append(&line, "\\", 1);
        }
        dbuf_append(&line, c, 1);
    }
    dbuf_append(&line, "\"", 1);
    if (kv_fmt && *kv_fmt) {
        va_list aq;
        va_copy(aq, ap);
        dbuf_append(&line, " ", 1);
        log_format_kv(&line, kv_fmt, &aq);
        va_end(aq);
    }
    dbuf_append(&line, "\n", 1);

    pthread_mutex_lock(&log_lock);
    FILE *out = log_file ? log_file : stderr;
    fwrite(line.data, 1, line.len, out);
    fflush(out);
    pthread_mutex_unlock(&log_lock);
    dbuf_free(&line);
}

void
log_emit(enum dpf_log_level level, const char *module, const char *msg,
         const char *kv_fmt, ...)
{
    if (!log_enabled(level)) {
        return;
    }
    va_list ap;
    va_start(ap, kv_fmt);
    log_vemit(level, module, msg, kv_fmt, ap);
    va_end(ap);
}

void
log_emit_rl(struct log_ratelimit *rl, enum dpf_log_level level,
            const char *module, const char *msg, const char *kv_fmt, ...)
{
    if (!log_enabled(level)) {
        return;
    }
    int64_t now = time_mono_ms();
    unsigned suppressed = 0;
    bool emit;
    pthread_mutex_lock(&log_lock);
    if (now - rl->window_start_ms >= 10000) {
        suppressed = rl->suppressed;
        rl->window_start_ms = now;
        rl->emitted = 0;
        rl->suppressed = 0;
    }
    emit = rl->emitted < 5;
    if (emit) {
        rl->emitted++;
    } else {
        rl->suppressed++;
    }
    pthread_mutex_unlock(&log_lock);
    if (suppressed) {
        log_emit(level, module, "log lines suppressed by rate limit",
                 "count=%u", suppressed);
    }
    if (emit) {
        va_list ap;
        va_start(ap, kv_fmt);
        log_vemit(level, module, msg, kv_fmt, ap);
        va_end(ap);
    }
}
