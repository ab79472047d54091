/* log: structured key=value logging for every daemon.
 *
 * One line per event on stderr (or a file set with log_set_file()):
 *   ts=2026-11-22T03:56:27.123Z level=info module=store msg="opened" path=/x
 * A module declares its name once with LOG_MODULE(name) and then calls
 * log_error/log_warn/log_info/log_debug(msg, "key=%s key2=%d", ...); the
 * key=value part is optional. Every %s/%c value is escaped so the line
 * stays valid logfmt: inside quotes the caller wrote ("reason=\"%s\"")
 * quotes, backslashes and line ends are escaped; a bare value
 * ("path=%s") is quoted when it holds a space, quote or '='.
 * Secrets never go through here: log the object's name, not its data.
 *
 * Library code returns errors and lets the caller log (style.md); the
 * *_rl variants rate-limit a call site to a burst of 5 lines per 10 s and
 * report how many lines they suppressed. Thread-safe. */
#ifndef DPF_LOG_H
#define DPF_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum dpf_log_level {
    DPF_LOG_ERROR = 0,
    DPF_LOG_WARN = 1,
    DPF_LOG_INFO = 2,
    DPF_LOG_DEBUG = 3,
};

/* Per-call-site state for rate limiting; zero-initialised. */
struct log_ratelimit {
    int64_t window_start_ms; /* start of the current 10 s window */
    unsigned emitted;        /* lines emitted in the window */
    unsigned suppressed;     /* lines dropped in the window */
};

void log_set_level(enum dpf_log_level level);
/* Parse "error|warn|info|debug"; 0 or -EINVAL. */
int log_set_level_name(const char *name);
enum dpf_log_level log_get_level(void);
/* Send log lines to a file instead of stderr (NULL = stderr). 0/-errno. */
int log_set_file(const char *path);
bool log_enabled(enum dpf_log_level level);

/* Emit one line; kv_fmt is printf-style "k=v ..." text (may be ""). */
void log_emit(enum dpf_log_level level, const char *module, const char *msg,
              const char *kv_fmt, ...) __attribute__((format(printf, 4, 5)));
/* Same, through a rate limiter. */
void log_emit_rl(struct log_ratelimit *rl, enum dpf_log_level level,
                 const char *module, const char *msg, const char *kv_fmt, ...)
    __attribute__((format(printf, 5, 6)));

#define LOG_MODULE(name) static const char log_module_[] = #name

#define log_error(msg, ...) \
    log_emit(DPF_LOG_ERROR, log_module_, msg, "" __VA_ARGS__)
#define log_warn(msg, ...) \
    log_emit(DPF_LOG_WARN, log_module_, msg, "" __VA_ARGS__)
#define log_info(msg, ...) \
    log_emit(DPF_LOG_INFO, log_module_, msg, "" __VA_ARGS__)
#define log_debug(msg, ...)                                            \
    do {                                                               \
        if (log_enabled(DPF_LOG_DEBUG)) {                              \
            log_emit(DPF_LOG_DEBUG, log_module_, msg, "" __VA_ARGS__); \
        }                                                              \
    } while (0)

#define log_warn_rl(msg, ...)                                              \
    do {                                                                   \
        static struct log_ratelimit rl_;                                   \
        log_emit_rl(&rl_, DPF_LOG_WARN, log_module_, msg, "" __VA_ARGS__); \
    } while (0)
#define log_error_rl(msg, ...)                                              \
    do {                                                                    \
        static struct log_ratelimit rl_;                                    \
        log_emit_rl(&rl_, DPF_LOG_ERROR, log_module_, msg, "" __VA_ARGS__); \
    } while (0)

#endif
