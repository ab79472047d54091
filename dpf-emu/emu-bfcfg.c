/* emu-bfcfg: the parts of a bf.cfg the emulated DPU applies (see the
 * header). The cloud-config is YAML, parsed by libyaml (yamljson); only
 * the here-document framing and the join line are scanned by hand. */
#include "dpf-emu/emu-bfcfg.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/base/base64.h"
#include "lib/base/util.h"
#include "lib/codecs/yamljson.h"

/* The line [*line, *end) after p (or NULL at the end of text). */
static const char *
next_line(const char *p, const char *stop, const char **end)
{
    if (p >= stop) {
        return NULL;
    }
    const char *nl = memchr(p, '\n', (size_t) (stop - p));
    *end = nl ? nl : stop;
    return p;
}

static bool
line_is(const char *l, const char *e, const char *word, bool strip_tabs)
{
    if (strip_tabs) {
        while (l < e && *l == '\t') {
            l++;
        }
    }
    if (e > l && e[-1] == '\r') {
        e--;
    }
    size_t n = strlen(word);
    return (size_t) (e - l) == n && memcmp(l, word, n) == 0;
}

/* The here-document word of a "<<WORD" / "<<-'WORD'" / "<< \"WORD\"" in
 * [l, e): written into word, true if found. */
static bool
heredoc_word(const char *l, const char *e, char *word, size_t size,
             bool *strip_tabs)
{
    const char *p = l;
    while (p + 1 < e && !(p[0] == '<' && p[1] == '<')) {
        p++;
    }
    if (p + 1 >= e) {
        return false;
    }
    p += 2;
    *strip_tabs = p < e && *p == '-';
    if (*strip_tabs) {
        p++;
    }
    while (p < e && (*p == ' ' || *p == '\t')) {
        p++;
    }
    size_t n = 0;
    while (p < e && *p != ' ' && *p != '\t' && *p != '>' && *p != ';' &&
           *p != '\r' && n + 1 < size) {
        if (*p != '\'' && *p != '"' && *p != '\\') {
            word[n++] = *p;
        }
        p++;
    }
    word[n] = '\0';
    return n > 0;
}

/* Find the cloud-config here-document: *doc, *doc_len. false if none. */
static bool
find_cloud_config(const char *text, size_t len, const char **doc,
                  size_t *doc_len)
{
    const char *stop = text + len;
    const char *prev = NULL, *prev_end = NULL, *e;
    for (const char *l = next_line(text, stop, &e); l;
         l = next_line(e + 1, stop, &e)) {
        if (line_is(l, e, "#cloud-config", false) ||
            line_is(l, e, "#cloud-config", true)) {
            char word[64];
            bool tabs = false;
            if (!prev ||
                !heredoc_word(prev, prev_end, word, sizeof word, &tabs)) {
                prev = l, prev_end = e;
                continue;
            }
            const char *end_l, *ee;
            for (end_l = next_line(e + 1, stop, &ee); end_l;
                 end_l = next_line(ee + 1, stop, &ee)) {
                if (line_is(end_l, ee, word, tabs)) {
                    break;
                }
            }
            *doc = l;
            *doc_len = (size_t) ((end_l ? end_l : stop) - l);
            return true;
        }
        prev = l, prev_end = e;
    }
    return false;
}

static bool
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The next word of [*p, e) (whitespace separated, quotes dropped). */
static char *
next_word(const char **p, const char *e)
{
    const char *s = *p;
    while (s < e && is_space(*s)) {
        s++;
    }
    const char *w = s;
    while (s < e && !is_space(*s)) {
        s++;
    }
    *p = s;
    if (s == w) {
        return NULL;
    }
    if (s - w >= 2 && (*w == '\'' || *w == '"') && s[-1] == *w) {
        return xstrndup(w + 1, (size_t) (s - w - 2));
    }
    return xstrndup(w, (size_t) (s - w));
}

/* Take "kubeadm join HOST:PORT --token T --discovery-token-ca-cert-hash
 * H ..." from [l, e). true if it is such a line. */
static bool
take_join(struct emu_bfcfg *c, const char *l, const char *e)
{
    const char *k = NULL;
    for (const char *p = l; p + 12 <= e; p++) {
        if (!memcmp(p, "kubeadm join", 12) &&
            (p + 12 == e || is_space(p[12]))) {
            k = p;
            break;
        }
    }
    if (!k) {
        return false;
    }
    /* the command ends at the shell's next operator (`; then`, `&&`) */
    for (const char *q = k; q < e; q++) {
        if (*q == ';' || *q == '&' || *q == '|') {
            e = q;
            break;
        }
    }
    const char *p = k + 12;
    char *w;
    while ((w = next_word(&p, e))) {
        char **slot = NULL;
        if (!strcmp(w, "--token")) {
            slot = &c->join_token;
        } else if (!strcmp(w, "--discovery-token-ca-cert-hash")) {
            slot = &c->join_ca_hash;
        } else if (w[0] != '-' && !c->join_endpoint) {
            c->join_endpoint = w;
            continue;
        }
        free(w);
        if (slot) {
            free(*slot);
            *slot = next_word(&p, e);
        }
    }
    const char *le = e;
    while (le > k && is_space(le[-1])) {
        le--;
    }
    free(c->join_line);
    c->join_line = xstrndup(k, (size_t) (le - k));
    return true;
}

static void
scan_join(struct emu_bfcfg *c, const char *text, size_t len)
{
    const char *stop = text + len, *e;
    for (const char *l = next_line(text, stop, &e); l && !c->join_line;
         l = next_line(e + 1, stop, &e)) {
        take_join(c, l, e);
    }
}

static bool
path_safe(const char *p)
{
    if (p[0] != '/') {
        return false;
    }
    for (const char *s = p; *s; s++) {
        if (s[0] == '.' && s[1] == '.' && s[-1] == '/' &&
            (s[2] == '/' || s[2] == '\0')) {
            return false;
        }
    }
    return true;
}

static int
take_file(struct emu_bfcfg *c, size_t i, json_t *f, struct dpf_error *err)
{
    const char *path = json_string_value(json_object_get(f, "path"));
    if (!json_is_object(f) || !path || !path_safe(path)) {
        dpf_error_set(err, 400, "Invalid",
                      "bf.cfg cloud-config write_files[%zu].path: expected "
                      "an absolute path without \"..\"",
                      i);
        return -EINVAL;
    }
    json_t *content = json_object_get(f, "content");
    const char *text = json_string_value(content);
    size_t tlen = text ? json_string_length(content) : 0;
    const char *enc = json_string_value(json_object_get(f, "encoding"));
    struct emu_bfcfg_file out = {.path = xstrdup(path), .mode = 0644};
    if (enc && (!strcmp(enc, "b64") || !strcmp(enc, "base64"))) {
        if (base64_decode(text ? text : "", tlen, BASE64_LENIENT, &out.data,
                          &out.len) < 0) {
            free(out.path);
            dpf_error_set(err, 400, "Invalid",
                          "bf.cfg cloud-config write_files[%zu] (%s).content: "
                          "not valid base64",
                          i, path);
            return -EINVAL;
        }
    } else if (enc && strcmp(enc, "text/plain") && strcmp(enc, "text")) {
        free(out.path);
        dpf_error_set(err, 400, "Invalid",
                      "bf.cfg cloud-config write_files[%zu] (%s).encoding "
                      "\"%s\": expected b64 or text/plain",
                      i, path, enc);
        return -EINVAL;
    } else {
        out.data = xstrndup(text ? text : "", tlen);
        out.len = tlen;
    }
    json_t *perm = json_object_get(f, "permissions");
    if (perm) {
        char buf[32];
        const char *ps = json_string_value(perm);
        if (json_is_integer(perm)) {
            /* YAML 1.1 octal 0644 resolves as decimal 644 in our parser:
             * read its digits as octal, as cloud-init does */
            snprintf(buf, sizeof buf, "%lld",
                     (long long) json_integer_value(perm));
            ps = buf;
        }
        char *end;
        long m = ps ? strtol(ps, &end, 8) : -1;
        if (!ps || !*ps || *end || m < 0 || m > 07777) {
            free(out.path);
            free(out.data);
            dpf_error_set(err, 400, "Invalid",
                          "bf.cfg cloud-config write_files[%zu] (%s)."
                          "permissions: expected an octal mode such as "
                          "'0644'",
                          i, path);
            return -EINVAL;
        }
        out.mode = (unsigned) m;
    }
    out.append = json_is_true(json_object_get(f, "append"));
    c->files = xrealloc(c->files, (c->n_files + 1) * sizeof *c->files);
    c->files[c->n_files++] = out;
    return 0;
}

/* runcmd entries are strings or argv lists */
static void
take_runcmd(struct emu_bfcfg *c, json_t *cmd)
{
    struct dbuf b;
    dbuf_init(&b);
    if (json_is_string(cmd)) {
        dbuf_puts(&b, json_string_value(cmd));
    } else if (json_is_array(cmd)) {
        size_t i;
        json_t *a;
        json_array_foreach(cmd, i, a)
        {
            if (json_is_string(a)) {
                dbuf_printf(&b, "%s%s", i ? " " : "", json_string_value(a));
            }
        }
    }
    dbuf_append(&b, "", 1);
    const char *s = b.data;
    const char *e = s + strlen(s);
    const char *h = strstr(s, "hostnamectl set-hostname");
    if (h && !c->hostname) {
        const char *p = h + strlen("hostnamectl set-hostname");
        c->hostname = next_word(&p, e);
    }
    if (!c->join_line) {
        take_join(c, s, e);
    }
    dbuf_free(&b);
}

int
emu_bfcfg_parse(const char *text, size_t len, struct emu_bfcfg *out,
                struct dpf_error *err)
{
    memset(out, 0, sizeof *out);
    const char *doc;
    size_t doc_len;
    if (!find_cloud_config(text, len, &doc, &doc_len)) {
        scan_join(out, text, len);
        return 0;
    }
    json_t *cc = NULL;
    struct dpf_error yerr = {0};
    if (yamljson_parse_one(doc, doc_len, &cc, &yerr) < 0) {
        dpf_error_set(err, 400, "Invalid", "bf.cfg cloud-config: %s",
                      yerr.message);
        return -EINVAL;
    }
    int rc = 0;
    if (!json_is_object(cc)) {
        dpf_error_set(err, 400, "Invalid",
                      "bf.cfg cloud-config: expected a mapping");
        rc = -EINVAL;
        goto out;
    }
    const char *hn = json_string_value(json_object_get(cc, "hostname"));
    if (hn) {
        out->hostname = xstrdup(hn);
    }
    json_t *files = json_object_get(cc, "write_files");
    if (files && !json_is_array(files)) {
        dpf_error_set(err, 400, "Invalid",
                      "bf.cfg cloud-config write_files: expected a list");
        rc = -EINVAL;
        goto out;
    }
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f)
    {
        if ((rc = take_file(out, i, f, err)) < 0) {
            goto out;
        }
    }
    json_t *cmd;
    json_array_foreach(json_object_get(cc, "runcmd"), i, cmd)
    {
        take_runcmd(out, cmd);
    }
    for (i = 0; i < out->n_files && !out->join_line; i++) {
        scan_join(out, out->files[i].data, out->files[i].len);
    }
    if (!out->join_line) {
        scan_join(out, text, len);
    }
out:
    json_decref(cc);
    return rc;
}

void
emu_bfcfg_free(struct emu_bfcfg *c)
{
    if (!c) {
        return;
    }
    for (size_t i = 0; i < c->n_files; i++) {
        free(c->files[i].path);
        free(c->files[i].data);
    }
    free(c->files);
    free(c->hostname);
    free(c->join_line);
    free(c->join_endpoint);
    free(c->join_token);
    free(c->join_ca_hash);
    memset(c, 0, sizeof *c);
}

int
emu_bfcfg_write_files(const struct emu_bfcfg *c, const char *root,
                      struct dpf_error *err)
{
    for (size_t i = 0; i < c->n_files; i++) {
        const struct emu_bfcfg_file *f = &c->files[i];
        char *p = xasprintf("%s%s", root, f->path);
        char *dir = xstrdup(p);
        char *slash = strrchr(dir, '/');
        int rc = 0;
        if (slash) {
            *slash = '\0';
            rc = dir_create_all(dir, 0755);
        }
        if (rc == 0) {
            int fd = open(p,
                          O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW |
                              (f->append ? O_APPEND : O_TRUNC),
                          f->mode);
            if (fd < 0) {
                rc = -errno;
            } else {
                size_t off = 0;
                while (off < f->len && rc == 0) {
                    ssize_t n = write(fd, f->data + off, f->len - off);
                    if (n < 0 && errno != EINTR) {
                        rc = -errno;
                    } else if (n > 0) {
                        off += (size_t) n;
                    }
                }
                if (rc == 0 && fchmod(fd, f->mode) < 0) {
                    rc = -errno;
                }
                close(fd);
            }
        }
        if (rc < 0) {
            dpf_error_set(err, 500, "InternalError",
                          "bf.cfg write_files %s: %s: %s", f->path, p,
                          strerror(-rc));
        }
        free(dir);
        free(p);
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}
