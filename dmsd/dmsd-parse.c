/* dmsd-parse: what dmsd reads from clients (see dmsd-parse.h). */
#include "dmsd/dmsd-parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/util.h"

static void
put_escaped(struct dbuf *b, const char *s, const char *special)
{
    for (; s && *s; s++) {
        if (*s == '\\' || strchr(special, *s)) {
            dbuf_append(b, "\\", 1);
        }
        dbuf_append(b, s, 1);
    }
}

bool
dmsd_path_text(const Gnmi__Path *prefix, const Gnmi__Path *path, char *buf,
               size_t size)
{
    struct dbuf b;
    dbuf_init(&b);
    const Gnmi__Path *parts[2] = {prefix, path};
    for (int i = 0; i < 2; i++) {
        if (!parts[i]) {
            continue;
        }
        for (size_t k = 0; k < parts[i]->n_elem; k++) {
            const Gnmi__PathElem *e = parts[i]->elem[k];
            dbuf_append(&b, "/", 1);
            put_escaped(&b, e->name, "/[");
            for (size_t j = 0; j < e->n_key; j++) {
                dbuf_append(&b, "[", 1);
                put_escaped(&b, e->key[j]->key, "=]");
                dbuf_append(&b, "=", 1);
                put_escaped(&b, e->key[j]->value, "]");
                dbuf_append(&b, "]", 1);
            }
        }
        for (size_t k = 0; k < parts[i]->n_element; k++) {
            dbuf_append(&b, "/", 1);
            put_escaped(&b, parts[i]->element[k], "/[");
        }
    }
    if (!b.len) {
        dbuf_append(&b, "/", 1);
    }
    bool fits = b.len < size;
    snprintf(buf, size, "%.*s", (int) DPF_MIN(b.len, (size_t) INT32_MAX),
             b.data);
    dbuf_free(&b);
    return fits;
}

bool
dmsd_path_key(const char *text, const char *head, char *out, size_t size,
              const char **rest)
{
    size_t hl = strlen(head);
    if (strncmp(text, head, hl) != 0 || size == 0) {
        return false;
    }
    size_t n = 0;
    for (const char *p = text + hl; *p; p++) {
        if (*p == ']') {
            if (n == 0) {
                return false;
            }
            out[n] = '\0';
            *rest = p + 1;
            return true;
        }
        if (*p == '\\' && p[1]) {
            p++;
        }
        if (n + 1 >= size) {
            return false;
        }
        out[n++] = *p;
    }
    return false;
}

bool
dmsd_version_ok(const char *v)
{
    return v && *v && v[0] != '.' && !strchr(v, '/') && strlen(v) < 200;
}

char *
dmsd_path_confine(const char *folder, const char *remote, char *why,
                  size_t size)
{
    const char *rel = remote;
    size_t fl = strlen(folder);
    while (fl > 1 && folder[fl - 1] == '/') {
        fl--;
    }
    if (remote[0] == '/') {
        if (strncmp(remote, folder, fl) != 0 || remote[fl] != '/') {
            snprintf(why, size, "\"%s\" is outside the image folder %s", remote,
                     folder);
            return NULL;
        }
        rel = remote + fl + 1;
    }
    size_t rl = strlen(rel);
    if (!rl || rel[rl - 1] == '/') {
        snprintf(why, size, "\"%s\" names no file", remote);
        return NULL;
    }
    for (const char *p = rel; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t) (e - p) : strlen(p);
        if (n == 0 || p[0] == '.') {
            snprintf(why, size,
                     "\"%s\": path components may not be empty or start "
                     "with '.' (no \"..\", no hidden files): the File "
                     "service stays inside %s",
                     remote, folder);
            return NULL;
        }
        p += n + (e ? 1 : 0);
    }
    return xasprintf("%.*s/%s", (int) fl, folder, rel);
}

size_t
dmsd_bytes_field(const uint8_t *head, size_t have, size_t total, unsigned field)
{
    if (have < 2 || field == 0 || field > 15 ||
        head[0] != (uint8_t) (field << 3 | 2)) {
        return 0;
    }
    /* the length: a varint of at most 5 bytes (protobuf lengths are 32
     * bit), which must account for exactly the rest of the message */
    uint64_t len = 0;
    for (size_t pos = 1; pos < have && pos <= 5; pos++) {
        len |= (uint64_t) (head[pos] & 0x7f) << (7 * (pos - 1));
        if (!(head[pos] & 0x80)) {
            size_t hdr = pos + 1;
            return len <= UINT32_MAX && hdr <= total && len == total - hdr ? hdr
                                                                           : 0;
        }
    }
    return 0;
}
