/* cmd-wait: dpfctl wait, and the watch-based waiting loop it shares with
 * dpfctl delete. */
#ifndef DPFCTL_CMD_WAIT_H
#define DPFCTL_CMD_WAIT_H

#include <jansson.h>
#include <stdint.h>

#include "dpfctl/dpfctl.h"

/* Predicate over the current object (NULL: it does not exist). Returns 1
 * when the wait is over, 0 to keep waiting. */
typedef int (*cmd_wait_pred)(void *arg, const json_t *obj);

/* Wait until pred says so, by listing ns/name (field selector
 * metadata.name) and then watching from the list's resourceVersion;
 * relists when the watch ends or expires. deadline_ms is on
 * time_mono_ms() (0 = none; -1 = check once). 0 when met, -ETIMEDOUT at
 * the deadline, other -errno with err filled. */
int cmd_wait_until(struct dpfctl *d, const struct schema_kind *k,
                   const char *ns, const char *name, cmd_wait_pred pred,
                   void *arg, int64_t deadline_ms, struct dpf_error *err);

/* Wait until ns/name is gone (or replaced by an object with another uid
 * when uid is not NULL). Same returns as cmd_wait_until(). */
int cmd_wait_gone(struct dpfctl *d, const struct schema_kind *k, const char *ns,
                  const char *name, const char *uid, int64_t deadline_ms,
                  struct dpf_error *err);

/* kubectl's timeout message: "timed out waiting for the condition on
 * <plural>/<name>". */
void cmd_wait_print_timeout(struct dpfctl *d, const struct schema_kind *k,
                            const char *name);

#endif
