/* rshim misc text into fields (see rshim-misc.h). */
#include "lib/codecs/rshim-misc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Copy [p, p+n) into out, trimmed of blanks at both ends. */
static void
copy_trim(char *out, size_t size, const char *p, size_t n)
{
    while (n && (*p == ' ' || *p == '\t')) {
        p++;
        n--;
    }
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r')) {
        n--;
    }
    if (n >= size) {
        n = size - 1;
    }
    memcpy(out, p, n);
    out[n] = '\0';
}

/* The value column of a status line: up to a " (" comment if the key's
 * values have one. DEV_INFO's "BlueField-3(Rev 1)" has no blank before its
 * parenthesis and stays whole. */
static void
status_value(char *out, size_t size, const char *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i++) {
        if (p[i] == ' ' && p[i + 1] == '(') {
            n = i;
            break;
        }
    }
    copy_trim(out, size, p, n);
}

static long
number(const char *s, long dflt)
{
    char *end;
    long v = strtol(s, &end, 0);
    return end != s ? v : dflt;
}

static void
log_line(struct rshim_misc *m, const char *p, size_t n)
{
    m->log_lines++;
    static const char ready[] = "DPU is ready";
    static const char reboot[] = "Rebooting...";
    static const char ver[] = "INFO[MISC]: BFB version ";
    if (memmem(p, n, ready, sizeof ready - 1)) {
        m->ready = true;
        m->rebooting = false;
    }
    if (memmem(p, n, reboot, sizeof reboot - 1)) {
        m->rebooting = true;
    }
    const char *v = memmem(p, n, ver, sizeof ver - 1);
    if (v) {
        size_t off = (size_t) (v - p) + sizeof ver - 1;
        copy_trim(m->bfb_version, sizeof m->bfb_version, p + off, n - off);
    }
    if (n >= 4 && !memcmp(p, "ERR[", 4)) {
        copy_trim(m->error, sizeof m->error, p, n);
    }
}

void
rshim_misc_parse(const char *text, size_t len, struct rshim_misc *m)
{
    memset(m, 0, sizeof *m);
    m->display_level = -1;
    m->boot_mode = -1;
    m->up_time = -1;
    for (size_t pos = 0; pos < len;) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t) (nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        if (n && line[0] == ' ') {
            /* the log: " INFO[...]: ..." */
            size_t k = 0;
            while (k < n && line[k] == ' ') {
                k++;
            }
            /* "INFO[...]", "ERR[...]", "WARN[...]": not the banner */
            size_t t = k;
            while (t < n && line[t] >= 'A' && line[t] <= 'Z') {
                t++;
            }
            if (t > k && t < n && line[t] == '[') {
                log_line(m, line + k, n - k);
            }
            continue;
        }
        size_t k = 0;
        while (k < n && ((line[k] >= 'A' && line[k] <= 'Z') || line[k] == '_' ||
                         (k && line[k] >= '0' && line[k] <= '9'))) {
            k++;
        }
        if (k == 0 || k >= 32 || (k < n && line[k] != ' ' && line[k] != '\t')) {
            continue; /* "-----", "Log Messages", anything else */
        }
        char key[32], val[128];
        memcpy(key, line, k);
        key[k] = '\0';
        status_value(val, sizeof val, line + k, n - k);
        if (!strcmp(key, "DEV_NAME")) {
            snprintf(m->dev_name, sizeof m->dev_name, "%s", val);
        } else if (!strcmp(key, "DEV_INFO")) {
            snprintf(m->dev_info, sizeof m->dev_info, "%s", val);
        } else if (!strcmp(key, "OPN_STR")) {
            snprintf(m->opn, sizeof m->opn, "%s",
                     strcmp(val, "N/A") ? val : "");
        } else if (!strcmp(key, "BF_MODE")) {
            snprintf(m->bf_mode, sizeof m->bf_mode, "%.63s", val);
        } else if (!strcmp(key, "DISPLAY_LEVEL")) {
            m->display_level = (int) number(val, -1);
        } else if (!strcmp(key, "BOOT_MODE")) {
            m->boot_mode = (int) number(val, -1);
        } else if (!strcmp(key, "UP_TIME")) {
            m->up_time = number(val, -1);
        }
    }
}

void
rshim_misc_commands(const char *text, size_t len,
                    void (*fn)(void *arg, const char *key, const char *value),
                    void *arg)
{
    for (size_t pos = 0; pos < len;) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t) (nl - line) : len - pos;
        pos += n + (nl ? 1 : 0);
        size_t k = 0;
        while (k < n && (line[k] == ' ' || line[k] == '\t')) {
            k++;
        }
        size_t start = k;
        while (k < n &&
               ((line[k] >= 'A' && line[k] <= 'Z') || line[k] == '_')) {
            k++;
        }
        size_t kl = k - start;
        if (kl == 0 || kl > 31 ||
            (k < n && line[k] != ' ' && line[k] != '\t')) {
            continue;
        }
        if (memchr(line + k, '(', n - k) || memchr(line + k, '\0', n - k)) {
            continue; /* a status line of ours, or binary junk */
        }
        char key[32], val[128];
        memcpy(key, line + start, kl);
        key[kl] = '\0';
        copy_trim(val, sizeof val, line + k, n - k);
        fn(arg, key, val);
    }
}
