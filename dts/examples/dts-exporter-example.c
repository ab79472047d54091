/* dts-exporter-example: sends a few events, counters and NetFlow records
 * to dts through libdts-exporter. (stub, full version follows) */
#include <stdio.h>

#include "dts-exporter.h"

int
main(void)
{
    struct dts_exporter_options o = {.source_id = "example"};
    struct dts_exporter *ex = dts_exporter_create(&o);
    if (!ex) {
        fprintf(stderr, "dts-exporter-example: cannot create exporter\n");
        return 1;
    }
    dts_exporter_destroy(ex);
    return 0;
}
