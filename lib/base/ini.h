/* ini: a parser for the INI files DOCA services read (dts_config.ini,
 * level_labels.ini, Fluent Bit .exp files, ...).
 *
 * Syntax: `[section]` headers; `key=value` lines (spaces around key and
 * value are trimmed; the value is everything after the first '=', so
 * values may contain '=' and '#'); comment lines starting with '#' or ';'
 * (after optional spaces); blank lines. Keys before the first header
 * belong to the section "". Repeated keys are kept, in file order (DTS
 * uses one `enable-provider=` line per provider). A value wrapped in
 * double quotes has the quotes removed. CRLF line ends are accepted.
 *
 * Errors (line without '=', empty key, unterminated or empty section
 * header, NUL byte, line longer than INI_MAX_LINE) fail the whole parse
 * and name the line number: "<name>:<line>: <what>".
 *
 * Ownership: ini_parse()/ini_load() return a struct ini the caller frees
 * with ini_free(); every string returned by the accessors points into it
 * and lives until ini_free(). Pure functions, no global state. */
#ifndef DPF_INI_H
#define DPF_INI_H

#include <stdbool.h>
#include <stddef.h>

#include "lib/base/error.h"

#define INI_MAX_LINE 65536
/* Largest file ini_load() reads. */
#define INI_MAX_FILE (4 * 1024 * 1024)

/* One key=value line. */
struct ini_entry {
    const char *section; /* "" before the first [header] */
    const char *key;     /* trimmed, never empty */
    const char *value;   /* trimmed, unquoted; may be empty */
    unsigned line;       /* 1-based line number in the source */
};

/* A parsed file: entries in file order. */
struct ini {
    size_t n_entries;          /* number of entries */
    struct ini_entry *entries; /* n_entries entries, file order */
    size_t n_sections;     /* number of [headers] seen (dups counted once) */
    const char **sections; /* section names in first-seen order */
    char *name;            /* source name used in messages */
};

/* Parse text (len bytes, need not be NUL-terminated). name is used in
 * error messages (e.g. the file name). NULL and err filled (code 400,
 * reason "Invalid", message "<name>:<line>: ...", one cause whose field is
 * "line <n>") on a syntax error. */
struct ini *ini_parse(const char *text, size_t len, const char *name,
                      struct dpf_error *err);
/* Read and parse a file: a regular file of at most INI_MAX_FILE bytes
 * (file_read_regular(): a FIFO or a device such as /dev/zero is refused
 * at once, never read). NULL with err set (code 404 "NotFound" if the
 * file is missing, 400 on a syntax error, a wrong file type or size). */
struct ini *ini_load(const char *path, struct dpf_error *err);
void ini_free(struct ini *ini);

/* Value of the LAST `key` in `section` (later lines override earlier
 * ones), or NULL. */
const char *ini_get(const struct ini *ini, const char *section,
                    const char *key);
/* The entry of the LAST `key` in `section`, or NULL (for line numbers). */
const struct ini_entry *ini_find(const struct ini *ini, const char *section,
                                 const char *key);
/* Iterate over every `key` in `section` in file order: pass NULL as prev
 * to get the first, then the previous result. key NULL = every key of the
 * section. */
const struct ini_entry *ini_next(const struct ini *ini, const char *section,
                                 const char *key, const struct ini_entry *prev);
/* True if the section appeared as a [header]. */
bool ini_has_section(const struct ini *ini, const char *section);

/* Parse a boolean value: 1/0, true/false, yes/no, on/off, enable(d)/
 * disable(d) (case-insensitive). 0 with *out set, or -EINVAL. */
int ini_parse_bool(const char *value, bool *out);
/* Parse a decimal integer in [min, max]. 0 or -EINVAL / -ERANGE. */
int ini_parse_long(const char *value, long min, long max, long *out);

#endif
