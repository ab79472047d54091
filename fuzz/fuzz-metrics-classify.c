/* Fuzz target for dpf-server/metrics.c's request labelling: the input is
 * up to five newline-separated fields (method, path, watch, dryRun,
 * Content-Type); the labels must come out bounded (every value one the
 * server knows, never a piece of the input unless the schema serves
 * it), and are counted and rendered. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/schema.h"
#include "dpf-server/metrics.h"
#include "lib/base/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = xstrndup((const char *) data, size);
    const char *f[5] = {NULL, NULL, NULL, NULL, NULL};
    char *p = text;
    for (size_t i = 0; i < 5 && p; i++) {
        f[i] = p;
        p = strchr(p, '\n');
        if (p) {
            *p++ = '\0';
        }
    }
    struct metrics_labels l;
    metrics_classify(f[0], f[1], f[2], f[3], f[4], &l);
    /* a resource label is always one the registry serves */
    if (l.resource[0] &&
        !schema_find_resource(l.group, l.version, l.resource)) {
        abort();
    }
    /* label values never point into the input */
    const char *v[] = {l.verb,     l.dry_run,     l.group, l.version,
                       l.resource, l.subresource, l.scope};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        if (!v[i] || (v[i] >= text && v[i] <= text + size)) {
            abort();
        }
    }
    struct metrics *m = metrics_create();
    metrics_count(m, &l, 200, 1000);
    struct dbuf b;
    dbuf_init(&b);
    metrics_render(m, &b, NULL, NULL);
    dbuf_free(&b);
    metrics_destroy(m);
    free(text);
    return 0;
}
