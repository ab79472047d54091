/* rshim-misc: the text the rshim driver's misc file shows (doca-services.md
 * §11.3), read into fields.
 *
 * Status lines are "KEY<spaces>VALUE[ (comment)]" ("DEV_INFO
 * BlueField-3(Rev 1)", "BOOT_MODE 1 (0:rshim, 1:emmc, ...)"); with
 * DISPLAY_LEVEL 2 a log follows, lines " INFO[...]: ...", " ERR[...]: ...".
 * The parser takes any bytes (a misc file caught half rewritten, a device
 * that says something new) and never fails: what it does not recognise
 * is skipped, fields it did not see stay empty / -1.
 *
 * Pure functions, no allocation; safe from any thread. */
#ifndef DPF_CODECS_RSHIM_MISC_H
#define DPF_CODECS_RSHIM_MISC_H

#include <stdbool.h>
#include <stddef.h>

struct rshim_misc {
    char dev_name[128]; /* DEV_NAME: "pcie-0000:4b:00.2" */
    char dev_info[128]; /* DEV_INFO: "BlueField-3(Rev 1)" */
    char opn[128];      /* OPN_STR, "" if absent or "N/A" */
    char bf_mode[64];   /* BF_MODE: "DPU mode" */
    int display_level;  /* -1 if absent */
    int boot_mode;      /* -1 if absent */
    long up_time;       /* UP_TIME in seconds, -1 if absent */
    /* the boot log (DISPLAY_LEVEL 2) */
    unsigned log_lines;
    bool ready;            /* a "DPU is ready" line */
    bool rebooting;        /* a "Rebooting..." line after the last ready */
    char error[512];       /* the last " ERR[...]" line, trimmed; "" if none */
    char bfb_version[128]; /* "INFO[MISC]: BFB version V" (dpf-rshim-emu) */
};

/* Read len bytes of misc text (need not be NUL-terminated). */
void rshim_misc_parse(const char *text, size_t len, struct rshim_misc *m);

/* The commands in text written into misc ("DISPLAY_LEVEL 2\nSW_RESET 1"):
 * fn(arg, key, value) for each "KEY value" line in order, key at most 31
 * and value at most 127 bytes, value trimmed ("" if none). Status lines
 * (a "(...)" comment), log lines and anything not starting with a
 * capital-letter key are skipped: a client that appended its command
 * to a copy of the status text is understood too. */
void rshim_misc_commands(const char *text, size_t len,
                         void (*fn)(void *arg, const char *key,
                                    const char *value),
                         void *arg);

#endif
