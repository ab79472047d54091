/* cmd-bfb: `dpfctl bfb build` writes a BlueField boot stream from a kernel,
 * an initramfs, boot arguments and an info JSON; `dpfctl bfb inspect`
 * lists a BFB's headers, checks every CRC and shows the version and an
 * appended bf.cfg. Both stream through lib/codecs/bfb (no image is held in
 * memory) and need no API server. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dpfctl/dpfctl.h"
#include "dpfctl/printer.h"
#include "lib/base/util.h"
#include "lib/codecs/bfb.h"

/* What `inspect` keeps of the info image and of the trailer. */
#define BFB_INFO_MAX (64 * 1024)
#define BFB_CFG_SHOW_MAX (1024 * 1024)
#define BFB_MAX_SOURCES 64

enum {
    OPT_KERNEL = 2600,
    OPT_INITRAMFS,
    OPT_BOOT_ARGS,
    OPT_BOOT_ARGS_FILE,
    OPT_INFO,
    OPT_BFB_VERSION,
    OPT_ADD,
    OPT_SHOW_CFG,
};

struct bfb_state {
    const char *output; /* inspect -o */
    const char *kernel;
    const char *initramfs;
    const char *boot_args;
    const char *boot_args_file;
    const char *info;
    const char *version;
    const char *add[BFB_MAX_SOURCES]; /* --add NAME[-vN]=FILE */
    size_t n_add;
    bool show_cfg;
};

static const struct option bfb_opts[] = {
    {"output", required_argument, NULL, 'o'},
    {"kernel", required_argument, NULL, OPT_KERNEL},
    {"initramfs", required_argument, NULL, OPT_INITRAMFS},
    {"boot-args", required_argument, NULL, OPT_BOOT_ARGS},
    {"boot-args-file", required_argument, NULL, OPT_BOOT_ARGS_FILE},
    {"info", required_argument, NULL, OPT_INFO},
    {"bfb-version", required_argument, NULL, OPT_BFB_VERSION},
    {"add", required_argument, NULL, OPT_ADD},
    {"show-cfg", no_argument, NULL, OPT_SHOW_CFG},
    {NULL, 0, NULL, 0},
};

static int
bfb_opt(void *st, int c, const char *arg, struct dpfctl *d)
{
    struct bfb_state *s = st;
    switch (c) {
    case 'o':
        s->output = arg;
        return 0;
    case OPT_KERNEL:
        s->kernel = arg;
        return 0;
    case OPT_INITRAMFS:
        s->initramfs = arg;
        return 0;
    case OPT_BOOT_ARGS:
        s->boot_args = arg;
        return 0;
    case OPT_BOOT_ARGS_FILE:
        s->boot_args_file = arg;
        return 0;
    case OPT_INFO:
        s->info = arg;
        return 0;
    case OPT_BFB_VERSION:
        s->version = arg;
        return 0;
    case OPT_ADD:
        if (s->n_add == BFB_MAX_SOURCES) {
            fprintf(d->err, "error: at most %d --add images\n",
                    BFB_MAX_SOURCES);
            return -EINVAL;
        }
        s->add[s->n_add++] = arg;
        return 0;
    case OPT_SHOW_CFG:
        s->show_cfg = true;
        return 0;
    default:
        return -EINVAL;
    }
}

/* --- build --- */

static int
cmp_sources(const void *a, const void *b)
{
    const struct bfb_source *x = a, *y = b;
    unsigned rx = bfb_image_rank(x->id), ry = bfb_image_rank(y->id);
    if (rx != ry) {
        return rx < ry ? -1 : 1;
    }
    return (int) x->version - (int) y->version;
}

/* "initramfs=FILE", "boot-args-v2=FILE" -> id, version, path. */
static int
parse_add(struct dpfctl *d, const char *spec, struct bfb_source *src)
{
    const char *eq = strchr(spec, '=');
    if (!eq || eq == spec || !eq[1]) {
        fprintf(d->err,
                "error: --add \"%s\": expected NAME[-vN]=FILE, e.g. "
                "boot-desc=desc.txt\n",
                spec);
        return -EINVAL;
    }
    char name[64];
    snprintf(name, sizeof name, "%.*s", (int) (eq - spec), spec);
    unsigned version = 0;
    int id = bfb_image_id(name);
    char *v = strrchr(name, '-');
    if (id < 0 && v && v[1] == 'v' && v[2]) {
        char *end;
        unsigned long n = strtoul(v + 2, &end, 10);
        if (!*end && n <= BFB_MAX_VERSION) {
            *v = '\0';
            id = bfb_image_id(name);
            version = (unsigned) n;
        }
    }
    if (id < 0) {
        fprintf(d->err,
                "error: --add \"%s\": unknown image name \"%s\" "
                "(mlx-mkbfb's names: image, initramfs, boot-args, info, "
                "capsule, ...)\n",
                spec, name);
        return -EINVAL;
    }
    *src = (struct bfb_source){
        .id = (unsigned) id, .version = version, .path = eq + 1};
    return 0;
}

static int
build_run(struct dpfctl *d, struct bfb_state *s, int argc, char **argv)
{
    if (argc != 1) {
        fprintf(d->err, "error: bfb build takes one argument, the output "
                        "file\nSee 'dpfctl bfb --help' for usage.\n");
        return 1;
    }
    if (s->output || s->show_cfg) {
        fprintf(d->err, "error: -o and --show-cfg belong to bfb inspect; "
                        "bfb build takes the output file as its argument\n");
        return 1;
    }
    if (s->info && s->version) {
        fprintf(d->err, "error: --info and --bfb-version both give the "
                        "info image: choose one\n");
        return 1;
    }
    if (s->boot_args && s->boot_args_file) {
        fprintf(d->err, "error: --boot-args and --boot-args-file both give "
                        "the boot arguments: choose one\n");
        return 1;
    }
    struct bfb_source src[BFB_MAX_SOURCES + 8];
    size_t n = 0;
    char *info_json = NULL;
    if (s->kernel) {
        src[n++] = (struct bfb_source){.id = BFB_ID_IMAGE, .path = s->kernel};
    }
    if (s->initramfs) {
        src[n++] =
            (struct bfb_source){.id = BFB_ID_INITRAMFS, .path = s->initramfs};
    }
    /* BlueField-3 reads version 2 of boot-args (doca-services.md §10.1) */
    if (s->boot_args) {
        src[n++] = (struct bfb_source){.id = BFB_ID_BOOT_ARGS,
                                       .version = 2,
                                       .data = s->boot_args,
                                       .len = strlen(s->boot_args)};
    } else if (s->boot_args_file) {
        src[n++] = (struct bfb_source){
            .id = BFB_ID_BOOT_ARGS, .version = 2, .path = s->boot_args_file};
    }
    if (s->info) {
        json_error_t je;
        json_t *j = json_load_file(s->info, 0, &je);
        if (!j || !json_is_object(j)) {
            fprintf(d->err, "error: --info %s: not a JSON object (%s)\n",
                    s->info, j ? "another JSON type" : je.text);
            json_decref(j);
            return 1;
        }
        json_t *v = json_object_get(j, "Version");
        if (!json_is_string(v)) {
            v = json_object_get(j, "version");
        }
        if (!json_is_string(v)) {
            fprintf(d->err,
                    "error: --info %s: the object has no string "
                    "\"Version\" member, which names the BFB's version\n",
                    s->info);
            json_decref(j);
            return 1;
        }
        json_decref(j);
        src[n++] = (struct bfb_source){.id = BFB_ID_INFO, .path = s->info};
    } else if (s->version) {
        json_t *j =
            json_pack("{s:s, s:s}", "Name", "BFB", "Version", s->version);
        info_json = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        src[n++] = (struct bfb_source){
            .id = BFB_ID_INFO, .data = info_json, .len = strlen(info_json)};
    }
    for (size_t i = 0; i < s->n_add; i++) {
        if (parse_add(d, s->add[i], &src[n]) < 0) {
            free(info_json);
            return 1;
        }
        n++;
    }
    if (n == 0) {
        fprintf(d->err,
                "error: no images: give at least one of --kernel, "
                "--initramfs, --boot-args, --info, --bfb-version, --add\n");
        return 1;
    }
    qsort(src, n, sizeof *src, cmp_sources);
    for (size_t i = 1; i < n; i++) {
        if (src[i].id == src[i - 1].id &&
            src[i].version == src[i - 1].version) {
            fprintf(d->err, "error: image \"%s\" version %u given twice\n",
                    bfb_image_name(src[i].id), src[i].version);
            free(info_json);
            return 1;
        }
    }
    /* write beside the target and rename, so a failed build never leaves
     * a half-written BFB under the final name */
    const char *out = argv[0];
    char *tmp = xasprintf("%s.tmp.%ld", out, (long) getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(d->err, "error: %s: %s\n", out, strerror(errno));
        free(tmp);
        free(info_json);
        return 1;
    }
    struct dpf_error err = {0};
    int rc = bfb_write(fd, src, n, &err);
    if (rc == 0 && fsync(fd) < 0) {
        rc = -errno;
        dpf_error_set(&err, 500, "InternalError", "%s: %s", out,
                      strerror(errno));
    }
    if (close(fd) < 0 && rc == 0) {
        rc = -errno;
        dpf_error_set(&err, 500, "InternalError", "%s: %s", out,
                      strerror(errno));
    }
    if (rc == 0 && rename(tmp, out) < 0) {
        rc = -errno;
        dpf_error_set(&err, 500, "InternalError", "%s: %s", out,
                      strerror(errno));
    }
    if (rc < 0) {
        unlink(tmp);
        fprintf(d->err, "error: %s\n", err.message);
    } else {
        fprintf(d->out, "%s: %zu images written\n", out, n);
    }
    free(tmp);
    free(info_json);
    return rc < 0 ? 1 : 0;
}

/* --- inspect --- */

struct inspect {
    json_t *images; /* array, one object per header */
    struct dbuf info;
    bool info_truncated;
    struct dbuf cfg;
    uint64_t cfg_offset;
};

static int
on_header(void *ctx, const struct bfb_image *img, struct dpf_error *err)
{
    (void) err;
    struct inspect *in = ctx;
    char crc[16], fol[24];
    snprintf(crc, sizeof crc, "0x%08" PRIx32, img->h.crc);
    snprintf(fol, sizeof fol, "0x%" PRIx64, img->h.following);
    json_array_append_new(
        in->images,
        json_pack("{s:I, s:I, s:I, s:s, s:I, s:I, s:I, s:s, s:b, s:s, s:s}",
                  "index", (json_int_t) img->index, "offset",
                  (json_int_t) img->offset, "id", (json_int_t) img->h.id,
                  "name", img->name, "version", (json_int_t) img->h.version,
                  "nextVersion", (json_int_t) img->h.next_version, "length",
                  (json_int_t) img->h.length, "crc", crc, "crcOk", 0,
                  "following", fol, "format",
                  img->h.minor == 2   ? "1.2"
                  : img->h.minor == 1 ? "1.1"
                                      : "1.0"));
    return 0;
}

static int
on_data(void *ctx, const struct bfb_image *img, const uint8_t *p, size_t n,
        struct dpf_error *err)
{
    (void) err;
    struct inspect *in = ctx;
    if (img->h.id == BFB_ID_INFO) {
        size_t room = BFB_INFO_MAX - in->info.len;
        if (n > room) {
            in->info_truncated = true;
            n = room;
        }
        dbuf_append(&in->info, p, n);
    }
    return 0;
}

static int
on_image_end(void *ctx, const struct bfb_image *img, struct dpf_error *err)
{
    (void) err;
    struct inspect *in = ctx;
    json_t *o = json_array_get(in->images, img->index);
    json_object_set_new(o, "crcOk", json_true());
    return 0;
}

static int
on_trailer(void *ctx, const uint8_t *p, size_t n, struct dpf_error *err)
{
    (void) err;
    struct inspect *in = ctx;
    size_t room = BFB_CFG_SHOW_MAX - in->cfg.len;
    dbuf_append(&in->cfg, p, DPF_MIN(n, room));
    return 0;
}

static const struct bfb_reader_ops inspect_ops = {
    .header = on_header,
    .data = on_data,
    .image_end = on_image_end,
    .trailer = on_trailer,
};

static int
inspect_run(struct dpfctl *d, struct bfb_state *s, int argc, char **argv)
{
    bool json = false;
    if (argc != 1) {
        fprintf(d->err, "error: bfb inspect takes one argument, the BFB "
                        "file\nSee 'dpfctl bfb --help' for usage.\n");
        return 1;
    }
    if (s->output && !strcmp(s->output, "json")) {
        json = true;
    } else if (s->output) {
        fprintf(d->err,
                "error: unsupported output format \"%s\" (json, or "
                "none for a table)\n",
                s->output);
        return 1;
    }
    const char *path = argv[0];
    struct inspect in = {.images = json_array()};
    dbuf_init(&in.info);
    dbuf_init(&in.cfg);

    /* the reader streams the file; stat only for the size we print */
    struct stat st;
    uint64_t size = stat(path, &st) == 0 ? (uint64_t) st.st_size : 0;
    struct bfb_reader *r = bfb_reader_new(&inspect_ops, &in);
    struct dpf_error err = {0};
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(d->err, "error: %s: %s\n", path, strerror(errno));
        rc = -errno;
        goto out;
    }
    uint8_t *buf = xmalloc(64 * 1024);
    for (;;) {
        ssize_t k = read(fd, buf, 64 * 1024);
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            rc = -errno;
            dpf_error_set(&err, 500, "InternalError", "%s", strerror(errno));
            break;
        }
        if (k == 0) {
            rc = bfb_reader_finish(r, &err);
            break;
        }
        if ((rc = bfb_reader_feed(r, buf, (size_t) k, &err)) < 0) {
            break;
        }
    }
    free(buf);
    close(fd);

    char version[256] = "";
    bool have_version = in.info.len && !in.info_truncated &&
                        bfb_info_version(in.info.data, in.info.len, version,
                                         sizeof version) == 0;
    uint64_t cfg_len = bfb_reader_trailer_bytes(r);
    uint64_t cfg_off = bfb_reader_offset(r) - cfg_len;
    bool cfg_text = cfg_len && cfg_len == in.cfg.len &&
                    utf8_valid(in.cfg.data, in.cfg.len) &&
                    !memchr(in.cfg.data, '\0', in.cfg.len);
    if (json) {
        json_t *doc =
            json_pack("{s:s, s:I, s:O, s:b}", "file", path, "size",
                      (json_int_t) size, "images", in.images, "crcOk", rc == 0);
        json_object_set_new(doc, "version",
                            have_version ? json_string(version) : json_null());
        if (rc == 0 && cfg_len) {
            json_t *cfg =
                json_pack("{s:I, s:I}", "offset", (json_int_t) cfg_off,
                          "length", (json_int_t) cfg_len);
            json_object_set_new(cfg, "content",
                                cfg_text ? json_stringn(in.cfg.data, in.cfg.len)
                                         : json_null());
            json_object_set_new(doc, "bfcfg", cfg);
        } else {
            json_object_set_new(doc, "bfcfg", json_null());
        }
        if (rc < 0) {
            json_object_set_new(doc, "error", json_string(err.message));
        }
        printer_json(d->out, doc);
        json_decref(doc);
    } else {
        size_t i;
        json_t *o;
        fprintf(d->out, "%-6s %-12s %-4s %-18s %-8s %-12s %-11s %s\n", "INDEX",
                "OFFSET", "ID", "NAME", "VERSION", "LENGTH", "CRC-32", "CHECK");
        json_array_foreach(in.images, i, o)
        {
            fprintf(d->out,
                    "%-6" JSON_INTEGER_FORMAT " %-12" JSON_INTEGER_FORMAT
                    " %-4" JSON_INTEGER_FORMAT " %-18s %-8" JSON_INTEGER_FORMAT
                    " %-12" JSON_INTEGER_FORMAT " %-11s %s\n",
                    json_integer_value(json_object_get(o, "index")),
                    json_integer_value(json_object_get(o, "offset")),
                    json_integer_value(json_object_get(o, "id")),
                    json_string_value(json_object_get(o, "name")),
                    json_integer_value(json_object_get(o, "version")),
                    json_integer_value(json_object_get(o, "length")),
                    json_string_value(json_object_get(o, "crc")),
                    json_is_true(json_object_get(o, "crcOk")) ? "ok"
                                                              : "FAILED");
        }
        fprintf(d->out, "\nFile:     %s (%" PRIu64 " bytes, %u images)\n", path,
                size, bfb_reader_images(r));
        fprintf(d->out, "Version:  %s\n",
                have_version ? version : "<none: no info image>");
        if (rc == 0) {
            fprintf(d->out, "CRC:      all %u images ok\n",
                    bfb_reader_images(r));
            if (cfg_len) {
                fprintf(d->out,
                        "bf.cfg:   %" PRIu64 " bytes appended at "
                        "offset %" PRIu64 "%s\n",
                        cfg_len, cfg_off, cfg_text ? "" : " (not text)");
                if (s->show_cfg && cfg_text) {
                    fprintf(d->out, "\n%s%s", in.cfg.data,
                            in.cfg.data[in.cfg.len - 1] == '\n' ? "" : "\n");
                }
            } else {
                fprintf(d->out, "bf.cfg:   <none appended>\n");
            }
        }
    }
    fflush(d->out);
    if (rc < 0) {
        fprintf(d->err, "error: %s: %s\n", path, err.message);
    }
out:
    bfb_reader_free(r);
    json_decref(in.images);
    dbuf_free(&in.info);
    dbuf_free(&in.cfg);
    return rc < 0 ? 1 : 0;
}

static int
bfb_run(struct dpfctl *d, int argc, char **argv, void *st)
{
    if (argc < 1) {
        fprintf(d->err, "error: bfb needs a subcommand: build or inspect\n"
                        "See 'dpfctl bfb --help' for usage.\n");
        return 1;
    }
    if (!strcmp(argv[0], "build")) {
        return build_run(d, st, argc - 1, argv + 1);
    }
    if (!strcmp(argv[0], "inspect")) {
        return inspect_run(d, st, argc - 1, argv + 1);
    }
    fprintf(d->err,
            "error: unknown bfb subcommand \"%s\" (build or "
            "inspect)\n",
            argv[0]);
    return 1;
}

const struct dpfctl_cmd cmd_bfb = {
    .name = "bfb",
    .summary = "Build or inspect a BlueField boot stream (BFB) file",
    .usage =
        "Build a BFB from a kernel, an initramfs, boot arguments and an info\n"
        "JSON, or list a BFB's images, check their CRCs and show its version\n"
        "and an appended bf.cfg. The format is mlx-mkbfb's; neither command\n"
        "holds an image in memory, and neither needs an API server.\n\n"
        "Usage:\n"
        "  dpfctl bfb build [images] OUTPUT\n"
        "  dpfctl bfb inspect [-o json] [--show-cfg] FILE\n\n"
        "Images (bfb build; written in mlx-mkbfb's canonical order):\n"
        "      --kernel FILE          the kernel (image ID 62, \"image\")\n"
        "      --initramfs FILE       the installer initramfs (ID 63)\n"
        "      --boot-args TEXT       kernel command line (boot-args-v2, "
        "ID 59)\n"
        "      --boot-args-file FILE  the same, read from FILE\n"
        "      --info FILE            info JSON (ID 50); its \"Version\" "
        "member is\n"
        "                             the BFB's version\n"
        "      --bfb-version VER      write {\"Name\":\"BFB\",\"Version\":VER} "
        "as the info\n"
        "      --add NAME[-vN]=FILE   any other image by its mlx-mkbfb name\n"
        "                             (capsule, boot-desc, boot-path, ...)\n\n"
        "Options (bfb inspect):\n"
        "  -o, --output json          one JSON document instead of the "
        "table\n"
        "      --show-cfg             print the appended bf.cfg after the "
        "table\n\n"
        "Exit status 1 when a file is missing or the stream is corrupt; the\n"
        "error names the image (index, name, ID) and the byte offset.\n",
    .longopts = bfb_opts,
    .shortopts = "o:",
    .run = bfb_run,
    .opt = bfb_opt,
    .state_size = sizeof(struct bfb_state),
};
