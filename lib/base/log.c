/* log: see log.h. */
#include "lib/base/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
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
        char *kv = xvasprintf(kv_fmt, ap);
        dbuf_append(&line, " ", 1);
        dbuf_puts(&line, kv);
        free(kv);
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
