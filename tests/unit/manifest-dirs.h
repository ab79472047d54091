/* Where the unit tests find YAML manifests (test-schema.c, test-yamljson.c).
 *
 * examples/ belongs to the repository, so its manifests are always checked.
 * DPF's own example manifests, kept verbatim, do not: they live in the
 * shared folder beside the clone (<repo>/../shared, or wherever
 * DPF_SHARED_DIR points), which CI provides and a user's clone may lack.
 * A test program started with --dpf-fixtures checks only those; when the
 * folder is absent it prints one line saying so and exits with 77, which
 * meson reports as SKIP. Header-only: each test program is one file. */
#ifndef DPF_TESTS_MANIFEST_DIRS_H
#define DPF_TESTS_MANIFEST_DIRS_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "lib/base/util.h"

#ifndef DPF_SOURCE_ROOT
#error "DPF_SOURCE_ROOT must be defined by the build"
#endif

#define EXAMPLES_DIR DPF_SOURCE_ROOT "/examples"
#define DPF_FIXTURES_SUBDIR "fixtures/dpf-v24.10-usecases/hbn_only"
/* meson's exit status for a skipped test */
#define TEST_EXIT_SKIP 77

/* The directory of DPF's hbn_only manifests (free() it). */
static inline char *
manifest_dpf_fixtures_dir(void)
{
    const char *shared = getenv("DPF_SHARED_DIR");
    if (shared && *shared) {
        return xasprintf("%s/%s", shared, DPF_FIXTURES_SUBDIR);
    }
    return xasprintf("%s/../shared/%s", DPF_SOURCE_ROOT, DPF_FIXTURES_SUBDIR);
}

/* 1 when DPF's manifests are there to check. 0 when they are not and no one
 * asked for them: one line says what was not checked. -1 when
 * DPF_SHARED_DIR names a folder without them, a mistake worth failing on. */
static inline int
manifest_dpf_fixtures_present(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
        return 1;
    }
    const char *shared = getenv("DPF_SHARED_DIR");
    if (shared && *shared) {
        fprintf(stderr, "fixtures: %s not found (DPF_SHARED_DIR=%s)\n", dir,
                shared);
        return -1;
    }
    printf("fixtures: %s/../shared/fixtures not present; DPF's verbatim "
           "manifests not checked (set DPF_SHARED_DIR to check them)\n",
           DPF_SOURCE_ROOT);
    return 0;
}

#endif
