/* doca-internal: helpers shared by the files of libdoca-telemetry-exporter
 * (not installed). */
#ifndef DOCA_INTERNAL_H
#define DOCA_INTERNAL_H

#include <doca_error.h>
#include <stdbool.h>
#include <stdlib.h>

#include "dpf/dts-exporter.h"

/* DOCA's default directory for data files. */
#define DOCA_DEFAULT_DATA_ROOT "/opt/mellanox/doca/services/telemetry/data/"

/* The IPC directory a source uses: dir if set, else $DTS_IPC_DIR, else
 * DOCA's default. */
static inline const char *
doca_ipc_dir(const char *dir)
{
    const char *env = getenv("DTS_IPC_DIR");
    return dir ? dir : env && *env ? env : DTS_EXPORTER_DEFAULT_IPC_DIR;
}

/* A libdts-exporter result (0 / -errno) as a doca_error_t. */
doca_error_t doca_from_errno(int rc);
/* *dst = copy of src (NULL clears); false when out of memory. */
bool doca_set_str(char **dst, const char *src);
/* *out = a copy of v the caller frees; INVALID_VALUE for NULL out. */
doca_error_t doca_get_str(const char *v, const char **out);
/* Printable ASCII, shorter than 128 bytes (source id / tag). */
bool doca_text_ok(const char *s);

#endif
