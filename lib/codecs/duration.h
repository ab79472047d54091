/* duration: Kubernetes' and Go's duration texts, in one place.
 *
 * duration_human() prints an age as apimachinery's HumanDuration does
 * ("45s", "5m12s", "3h20m", "5d", "2y30d"): kubectl's AGE column, the
 * API server's Table cells and dpfctl's describe all use it.
 * duration_parse() reads Go's time.ParseDuration form ("1h30m", "2.5s",
 * "300ms") and, as kubectl's --request-timeout does, a bare number of
 * seconds. */
#ifndef DPF_DURATION_H
#define DPF_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* An age of `seconds` (negative clock skew down to -1 s prints "0s"; less
 * than that "<invalid>", as Kubernetes does). */
void duration_human(int64_t seconds, char *buf, size_t size);
/* Parse into milliseconds. Returns 0 or -EINVAL (empty, negative, unknown
 * unit). */
int duration_parse(const char *s, int64_t *ms);

#endif
