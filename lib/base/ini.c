/* ini: see ini.h. Strings are copied into one arena per parse so that
 * ini_free() is a handful of free() calls. */
#include "lib/base/ini.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/base/util.h"

struct ini_impl {
    struct ini pub;
    char **strings; /* every owned string */
    size_t n_strings;
    size_t cap_strings;
    size_t cap_entries;
};

static const char *
ini_own(struct ini_impl *p, const char *s, size_t n)
{
    if (p->n_strings == p->cap_strings) {
        p->cap_strings = p->cap_strings ? p->cap_strings * 2 : 16;
        p->strings = xrealloc(p->strings, p->cap_strings * sizeof(char *));
    }
    char *copy = xstrndup(s, n);
    p->strings[p->n_strings++] = copy;
    return copy;
}

static void
ini_fail(struct dpf_error *err, const char *name, unsigned line,
         const char *what)
{
    dpf_error_set(err, 400, "Invalid", "%s:%u: %s", name, line, what);
    char field[32];
    snprintf(field, sizeof field, "line %u", line);
    dpf_error_add_cause(err, DPF_CAUSE_INVALID, field, "%s", what);
}

static bool
ini_is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Trim [*b, *e) in place. */
static void
ini_trim(const char **b, const char **e)
{
    while (*b < *e && ini_is_space(**b)) {
        (*b)++;
    }
    while (*e > *b && ini_is_space((*e)[-1])) {
        (*e)--;
    }
}

static const char *
ini_section_intern(struct ini_impl *p, const char *s, size_t n)
{
    for (size_t i = 0; i < p->pub.n_sections; i++) {
        const char *x = p->pub.sections[i];
        if (strlen(x) == n && memcmp(x, s, n) == 0) {
            return x;
        }
    }
    const char *own = ini_own(p, s, n);
    p->pub.sections =
        xrealloc(p->pub.sections, (p->pub.n_sections + 1) * sizeof(char *));
    p->pub.sections[p->pub.n_sections++] = own;
    return own;
}

struct ini *
ini_parse(const char *text, size_t len, const char *name, struct dpf_error *err)
{
    struct ini_impl *p = xcalloc(1, sizeof *p);
    p->pub.name = xstrdup(name ? name : "ini");
    const char *section = ini_own(p, "", 0);
    const char *pos = text, *end = text + len;
    unsigned line = 0;
    while (pos < end) {
        line++;
        const char *nl = memchr(pos, '\n', (size_t) (end - pos));
        const char *le = nl ? nl : end;
        const char *b = pos, *e = le;
        pos = nl ? nl + 1 : end;
        if ((size_t) (e - b) > INI_MAX_LINE) {
            ini_fail(err, p->pub.name, line, "line too long");
            goto fail;
        }
        if (memchr(b, '\0', (size_t) (e - b))) {
            ini_fail(err, p->pub.name, line, "NUL byte in line");
            goto fail;
        }
        ini_trim(&b, &e);
        if (b == e || *b == '#' || *b == ';') {
            continue;
        }
        if (*b == '[') {
            if (e[-1] != ']' || e - b < 2) {
                ini_fail(err, p->pub.name, line,
                         "section header must end with ']'");
                goto fail;
            }
            const char *sb = b + 1, *se = e - 1;
            ini_trim(&sb, &se);
            if (sb == se) {
                ini_fail(err, p->pub.name, line, "empty section name");
                goto fail;
            }
            section = ini_section_intern(p, sb, (size_t) (se - sb));
            continue;
        }
        const char *eq = memchr(b, '=', (size_t) (e - b));
        if (!eq) {
            ini_fail(err, p->pub.name, line, "expected key=value");
            goto fail;
        }
        const char *kb = b, *ke = eq, *vb = eq + 1, *ve = e;
        ini_trim(&kb, &ke);
        ini_trim(&vb, &ve);
        if (kb == ke) {
            ini_fail(err, p->pub.name, line, "empty key before '='");
            goto fail;
        }
        for (const char *c = kb; c < ke; c++) {
            if (ini_is_space(*c) || iscntrl((unsigned char) *c)) {
                ini_fail(err, p->pub.name, line, "key must not contain spaces");
                goto fail;
            }
        }
        if (ve - vb >= 2 && *vb == '"' && ve[-1] == '"') {
            vb++;
            ve--;
        }
        if (p->pub.n_entries == p->cap_entries) {
            p->cap_entries = p->cap_entries ? p->cap_entries * 2 : 16;
            p->pub.entries = xrealloc(
                p->pub.entries, p->cap_entries * sizeof(struct ini_entry));
        }
        struct ini_entry *ent = &p->pub.entries[p->pub.n_entries++];
        ent->section = section;
        ent->key = ini_own(p, kb, (size_t) (ke - kb));
        ent->value = ini_own(p, vb, (size_t) (ve - vb));
        ent->line = line;
    }
    return &p->pub;
fail:
    ini_free(&p->pub);
    return NULL;
}

struct ini *
ini_load(const char *path, struct dpf_error *err)
{
    char *data;
    size_t len;
    int rc = file_read_regular(path, INI_MAX_FILE, &data, &len);
    if (rc < 0) {
        if (rc == -ENOENT) {
            dpf_error_set(err, 404, "NotFound", "%s: file not found", path);
        } else if (rc == -EINVAL) {
            dpf_error_set(err, 400, "Invalid",
                          "%s: not a regular file (FIFOs, devices and "
                          "directories are refused)",
                          path);
        } else if (rc == -EFBIG) {
            dpf_error_set(err, 400, "Invalid", "%s: larger than %d bytes", path,
                          INI_MAX_FILE);
        } else {
            dpf_error_set(err, 400, "Invalid", "%s: cannot read: %s", path,
                          strerror(-rc));
        }
        return NULL;
    }
    struct ini *ini = ini_parse(data, len, path, err);
    free(data);
    return ini;
}

void
ini_free(struct ini *ini)
{
    if (!ini) {
        return;
    }
    struct ini_impl *p = (struct ini_impl *) ini;
    for (size_t i = 0; i < p->n_strings; i++) {
        free(p->strings[i]);
    }
    free(p->strings);
    free(p->pub.entries);
    free(p->pub.sections);
    free(p->pub.name);
    free(p);
}

static bool
ini_match(const struct ini_entry *e, const char *section, const char *key)
{
    return strcmp(e->section, section ? section : "") == 0 &&
           (!key || strcmp(e->key, key) == 0);
}

const struct ini_entry *
ini_find(const struct ini *ini, const char *section, const char *key)
{
    for (size_t i = ini->n_entries; i > 0; i--) {
        if (ini_match(&ini->entries[i - 1], section, key)) {
            return &ini->entries[i - 1];
        }
    }
    return NULL;
}

const char *
ini_get(const struct ini *ini, const char *section, const char *key)
{
    const struct ini_entry *e = ini_find(ini, section, key);
    return e ? e->value : NULL;
}

const struct ini_entry *
ini_next(const struct ini *ini, const char *section, const char *key,
         const struct ini_entry *prev)
{
    size_t i = prev ? (size_t) (prev - ini->entries) + 1 : 0;
    for (; i < ini->n_entries; i++) {
        if (ini_match(&ini->entries[i], section, key)) {
            return &ini->entries[i];
        }
    }
    return NULL;
}

bool
ini_has_section(const struct ini *ini, const char *section)
{
    for (size_t i = 0; i < ini->n_sections; i++) {
        if (strcmp(ini->sections[i], section) == 0) {
            return true;
        }
    }
    return false;
}

int
ini_parse_bool(const char *value, bool *out)
{
    static const char *const yes[] = {"1",  "true",   "yes",
                                      "on", "enable", "enabled"};
    static const char *const no[] = {"0",   "false",   "no",
                                     "off", "disable", "disabled"};
    if (!value) {
        return -EINVAL;
    }
    for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
        if (strcasecmp(value, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(value, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -EINVAL;
}

int
ini_parse_long(const char *value, long min, long max, long *out)
{
    if (!value || !*value) {
        return -EINVAL;
    }
    char *endp;
    errno = 0;
    long v = strtol(value, &endp, 10);
    if (errno == ERANGE) {
        return -ERANGE;
    }
    while (*endp && isspace((unsigned char) *endp)) {
        endp++;
    }
    if (*endp || endp == value) {
        return -EINVAL;
    }
    if (v < min || v > max) {
        return -ERANGE;
    }
    *out = v;
    return 0;
}
