/* manifest: read the objects named by -f arguments (files, directories,
 * "-" for stdin) the way kubectl does: YAML or JSON, multi-document
 * streams, "kind: List" expanded into its items, directories read in name
 * order (files ending .yaml, .yml or .json; subdirectories only with
 * recursive). */
#ifndef DPFCTL_MANIFEST_H
#define DPFCTL_MANIFEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

/* One object and where it came from. */
struct manifest_obj {
    json_t *obj;  /* the object (owned reference) */
    char *source; /* file name as given ("STDIN" for -), owned */
};

/* All objects read. */
struct manifest_set {
    struct manifest_obj *items; /* in file and document order */
    size_t n;                   /* number of objects */
};

/* Read every path into set (appending). Problems (missing path, parse
 * error, object without apiVersion/kind) are printed to errf in kubectl's
 * words and counted; the rest is still read. Returns the number of
 * problems (0 = all good). stdin is read from in. */
int manifest_read(const char *const *paths, size_t npaths, bool recursive,
                  FILE *in, FILE *errf, struct manifest_set *set);
/* Release every object and source name; set becomes empty. */
void manifest_set_free(struct manifest_set *set);

#endif
