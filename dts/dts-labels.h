/* dts-labels: level labels (DOCA's level_labels.ini) added to exported
 * metrics.
 *
 * Sections read:
 *   [global_labels]  name=value          added to every sample
 *   [device_labels]  <pci-bdf>=k|v|k|v   added to samples whose device is
 *                    that PCI function (a netdev is mapped to its BDF via
 *                    <sysfs-root>/class/net/<dev>/device); a key that is a
 *                    netdev or RDMA device name matches that device
 *                    directly (our extension, used where there is no PCI)
 *   [device_mapping], [data_types_mapping]  accepted and ignored (DOCA
 *                    uses them to map data types to device fields; our
 *                    providers always label the device)
 * Label names are sanitised to [a-zA-Z0-9_]. A provider's own label wins
 * over a level label of the same name.
 *
 * Ownership: the caller frees with dts_labels_free(). Not thread-safe:
 * the device cache is filled as devices are seen (collection runs on one
 * thread). */
#ifndef DTS_LABELS_H
#define DTS_LABELS_H

#include <stdbool.h>

#include "lib/base/error.h"
#include "lib/base/ini.h"
#include "lib/base/util.h"

struct dts_labels;

/* Build from a parsed level_labels.ini. NULL with err set when a
 * [device_labels] value is not an even k|v list. sysfs_root ("/sys" by
 * default) is copied. */
struct dts_labels *dts_labels_from_ini(const struct ini *ini,
                                       const char *sysfs_root,
                                       struct dpf_error *err);
/* Load and parse a file (errors name the file and line). */
struct dts_labels *dts_labels_load(const char *path, const char *sysfs_root,
                                   struct dpf_error *err);
void dts_labels_free(struct dts_labels *l);

/* Append `,name="value"` for every level label of device (NULL = global
 * only) whose name is not in `taken` (a NULL-terminated name, value array
 * as given to dts_sink_add; may be NULL). *first says whether nothing has
 * been written yet (then no leading comma) and is updated. */
void dts_labels_render(struct dts_labels *l, const char *device,
                       const char *const *taken, struct dbuf *out, bool *first);
/* Number of global labels (tests). */
unsigned dts_labels_n_global(const struct dts_labels *l);

#endif
