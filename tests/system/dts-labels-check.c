/* dts-labels-check: sends, through libdts-exporter, one counter sample
 * with the most labels a sample may carry (16) at the longest name (63
 * bytes) and value (127 bytes), then one with a label name dts must refuse
 * in the library (__name__). test_dts_doca_api.py checks that dts exports
 * the first with every label and stays healthy.
 *
 * Usage: dts-labels-check <socket path>; prints "ok rc=<rc> bad=<rc>". */
#include <stdio.h>
#include <string.h>

#include "dpf/dts-exporter.h"

int
main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s SOCKET\n", argv[0]);
        return 2;
    }
    struct dts_exporter_options o = {
        .socket_path = argv[1], .source_id = "labels", .source_tag = "max"};
    struct dts_exporter *ex = dts_exporter_create(&o);
    if (!ex || dts_exporter_start(ex) < 0) {
        fprintf(stderr, "cannot reach dts at %s\n", argv[1]);
        return 1;
    }
    static char names[DTS_EXPORTER_MAX_LABELS][64];
    static char values[DTS_EXPORTER_MAX_LABELS][128];
    struct dts_exporter_label l[DTS_EXPORTER_MAX_LABELS];
    for (int i = 0; i < DTS_EXPORTER_MAX_LABELS; i++) {
        memset(names[i], 'a' + i, 63);
        memset(values[i], '0' + i % 10, 127);
        l[i] = (struct dts_exporter_label){names[i], values[i]};
    }
    int rc = dts_exporter_send_counter_labels(ex, "max_labels", 7, l,
                                              DTS_EXPORTER_MAX_LABELS);
    struct dts_exporter_label bad = {"__name__", "x"};
    int bad_rc = dts_exporter_send_counter_labels(ex, "bad", 1, &bad, 1);
    int frc = dts_exporter_flush(ex);
    dts_exporter_destroy(ex);
    printf("ok rc=%d bad=%d flush=%d\n", rc, bad_rc, frc);
    return rc == 0 && frc == 0 ? 0 : 1;
}
