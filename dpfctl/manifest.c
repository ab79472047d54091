/* manifest: see manifest.h. */
#include "dpfctl/manifest.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lib/base/util.h"
#include "lib/codecs/yamljson.h"

static void
push(struct manifest_set *set, json_t *obj, const char *source)
{
    set->items = xrealloc(set->items, (set->n + 1) * sizeof *set->items);
    set->items[set->n].obj = json_incref(obj);
    set->items[set->n].source = xstrdup(source);
    set->n++;
}

static int
add_object(struct manifest_set *set, json_t *obj, const char *source,
           FILE *errf)
{
    if (!json_is_object(obj)) {
        fprintf(errf,
                "error: error validating \"%s\": a document is not an "
                "object\n",
                source);
        return 1;
    }
    const char *kind = json_string_value(json_object_get(obj, "kind"));
    const char *av = json_string_value(json_object_get(obj, "apiVersion"));
    if (!kind || !*kind || !av || !*av) {
        fprintf(errf,
                "error: error validating \"%s\": error validating data: "
                "[%s%s%s]\n",
                source, !av || !*av ? "apiVersion not set" : "",
                (!av || !*av) && (!kind || !*kind) ? ", " : "",
                !kind || !*kind ? "kind not set" : "");
        return 1;
    }
    json_t *items = json_object_get(obj, "items");
    if (str_has_suffix(kind, "List") && json_is_array(items)) {
        int bad = 0;
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it)
        {
            bad += add_object(set, it, source, errf);
        }
        return bad;
    }
    push(set, obj, source);
    return 0;
}

static int
read_text(const char *text, size_t len, const char *source, FILE *errf,
          struct manifest_set *set)
{
    json_t *docs = NULL;
    struct dpf_error err = {0};
    if (yamljson_parse(text, len, &docs, &err) < 0) {
        fprintf(errf, "error: error parsing %s: %s\n", source, err.message);
        return 1;
    }
    int bad = 0;
    size_t i;
    json_t *d;
    json_array_foreach(docs, i, d)
    {
        if (json_is_null(d)) {
            continue;
        }
        bad += add_object(set, d, source, errf);
    }
    json_decref(docs);
    return bad;
}

static int
read_file(const char *path, FILE *errf, struct manifest_set *set)
{
    char *text = NULL;
    size_t len = 0;
    int r = file_read_all(path, &text, &len);
    if (r < 0) {
        fprintf(errf, "error: open %s: %s\n", path, strerror(-r));
        return 1;
    }
    int bad = read_text(text, len, path, errf, set);
    free(text);
    return bad;
}

static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}

static bool
manifest_ext(const char *name)
{
    return str_has_suffix(name, ".yaml") || str_has_suffix(name, ".yml") ||
           str_has_suffix(name, ".json");
}

static int
read_dir(const char *dir, bool recursive, FILE *errf, struct manifest_set *set)
{
    DIR *dh = opendir(dir);
    if (!dh) {
        fprintf(errf, "error: open %s: %s\n", dir, strerror(errno));
        return 1;
    }
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(dh))) {
        if (de->d_name[0] == '.') {
            continue;
        }
        names = xrealloc(names, (n + 1) * sizeof *names);
        names[n++] = xstrdup(de->d_name);
    }
    closedir(dh);
    if (n > 1) {
        qsort(names, n, sizeof *names, cmp_names);
    }
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        char *p = str_has_suffix(dir, "/") ? xasprintf("%s%s", dir, names[i])
                                           : xasprintf("%s/%s", dir, names[i]);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
            if (recursive) {
                bad += read_dir(p, recursive, errf, set);
            }
        } else if (manifest_ext(names[i])) {
            bad += read_file(p, errf, set);
        }
        free(p);
        free(names[i]);
    }
    free(names);
    return bad;
}

int
manifest_read(const char *const *paths, size_t npaths, bool recursive, FILE *in,
              FILE *errf, struct manifest_set *set)
{
    int bad = 0;
    for (size_t i = 0; i < npaths; i++) {
        const char *p = paths[i];
        if (!strcmp(p, "-")) {
            struct dbuf b;
            dbuf_init(&b);
            char buf[65536];
            size_t got;
            while ((got = fread(buf, 1, sizeof buf, in)) > 0) {
                dbuf_append(&b, buf, got);
            }
            bad += read_text(b.data ? b.data : "", b.len, "STDIN", errf, set);
            dbuf_free(&b);
            continue;
        }
        struct stat st;
        if (stat(p, &st) < 0) {
            fprintf(errf, "error: the path \"%s\" does not exist\n", p);
            bad++;
        } else if (S_ISDIR(st.st_mode)) {
            bad += read_dir(p, recursive, errf, set);
        } else {
            bad += read_file(p, errf, set);
        }
    }
    return bad;
}

void
manifest_set_free(struct manifest_set *set)
{
    for (size_t i = 0; i < set->n; i++) {
        json_decref(set->items[i].obj);
        free(set->items[i].source);
    }
    free(set->items);
    set->items = NULL;
    set->n = 0;
}
