/* dmsd-targets: many DMS targets in one process (dmsd --targets -), driven
 * by JSON lines (docs/services/dms.md, "Many targets in one process").
 *
 * dmsd_ctl_parse() reads one control line and is kept pure so that a fuzz
 * target (fuzz/fuzz-dmsd-ctl.c) can reach it. struct dmsd_targets holds
 * the targets by id in one pool (dmsd.h) and turns each line into its
 * reply line.
 *
 * Threads: dmsd_ctl_parse() is safe from any thread. A dmsd_targets is
 * used by one thread at a time (dmsd's control thread); the targets it
 * starts serve on the pool's threads meanwhile. */
#ifndef DMSD_DMSD_TARGETS_H
#define DMSD_DMSD_TARGETS_H

#include <jansson.h>
#include <stddef.h>

#include "dmsd/dmsd.h"
#include "lib/base/error.h"
#include "lib/base/util.h"

/* The longest control line, without its newline. */
#define DMSD_CTL_LINE_MAX (64 * 1024)

enum dmsd_ctl_op {
    DMSD_CTL_ADD,
    DMSD_CTL_REMOVE,
};

/* One parsed line. The strings point into root (freed by
 * dmsd_ctl_clear()). */
struct dmsd_ctl {
    json_t *root;
    enum dmsd_ctl_op op;
    const char *id; /* set as soon as the line names a valid id, even when
                       another field is wrong (the reply carries it) */
    /* add: bind_address, ca_pem, cert_pem, key_pem, rshim, image_folder
     * and the optional target_pci, sysfs, state_dir, allowed_users; auth
     * is always DMSD_AUTH_CERT; the rest is the caller's defaults */
    struct dmsd_config cfg;
};

/* Parse one line (len bytes, no newline needed; need not be
 * NUL-terminated). 0, or -EINVAL with why saying what is wrong, naming the
 * field ("field \"rshim\": expected a non-empty string"). Either way
 * dmsd_ctl_clear() releases ctl. */
int dmsd_ctl_parse(struct dmsd_ctl *ctl, const char *line, size_t len,
                   char *why, size_t size);
void dmsd_ctl_clear(struct dmsd_ctl *ctl);

struct dmsd_targets;

/* An empty set of targets with its pool. defaults gives what every target
 * shares (exec_timeout_ms, sysfs when a line gives none); its strings must
 * outlive the set. NULL with err set. */
struct dmsd_targets *dmsd_targets_create(const struct dmsd_config *defaults,
                                         struct dpf_error *err);
/* Do what line number lineno asks and append its one reply line (JSON,
 * ending in '\n') to out. A line of only blanks gets no reply. */
void dmsd_targets_line(struct dmsd_targets *t, const char *line, size_t len,
                       unsigned long lineno, struct dbuf *out);
/* The reply to a line longer than DMSD_CTL_LINE_MAX (which the reader
 * skips without parsing). */
void dmsd_targets_too_long(unsigned long lineno, struct dbuf *out);
/* How many targets are serving. */
size_t dmsd_targets_count(const struct dmsd_targets *t);
/* Stop every target, then the pool. NULL is allowed. */
void dmsd_targets_destroy(struct dmsd_targets *t);

#endif
