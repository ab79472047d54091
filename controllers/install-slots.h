/* install-slots: the DPU controller's install slots
 * (--max-concurrent-installs), handed out in the order the DPUs asked.
 *
 * A DPU that finds every slot busy waits in line. A slot freed while
 * DPUs wait is held for the first of them (for hold_ms) and counts as
 * busy meanwhile, so a DPU that asks later cannot take it first: with
 * a slot going to whichever reconcile asked first, a DPU arriving while
 * slots were busy could wait minutes behind later arrivals (seen at
 * 10,000 DPUs). A hold that is not taken in time lapses and the slot
 * goes to the next in line.
 *
 * Thread-safe. Keys are the DPUs' "namespace/name". The keys a call hands
 * a slot to come back in *wake (a JSON array, or NULL for none) for the
 * caller to queue for a reconcile. */
#ifndef DPF_CONTROLLERS_INSTALL_SLOTS_H
#define DPF_CONTROLLERS_INSTALL_SLOTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct install_slots;

/* max slots (>= 1); hold_ms: how long a freed slot waits for its DPU. */
struct install_slots *install_slots_create(int max, int64_t hold_ms);
void install_slots_destroy(struct install_slots *s);

/* key asks for a slot at now (monotonic ms): 0 when it has one (it runs
 * until install_slots_release()), -EBUSY when it waits in line (queued
 * once, at its first ask). */
int install_slots_take(struct install_slots *s, const char *key, int64_t now,
                       json_t **wake);

/* key's install ended (or never started): its slot goes to the first in
 * line. A key that holds no slot changes nothing. */
void install_slots_release(struct install_slots *s, const char *key,
                           int64_t now, json_t **wake);

/* key goes away (its DPU is deleted): it leaves the line and gives up a
 * held or running slot. */
void install_slots_forget(struct install_slots *s, const char *key, int64_t now,
                          json_t **wake);

/* Slots running and DPUs in line (for status messages and tests). */
size_t install_slots_running(struct install_slots *s);
size_t install_slots_waiting(struct install_slots *s);

#endif
