/* quantity: Kubernetes resource.Quantity parsing, comparison, formatting.
 *
 * Accepts what the API server accepts: a signed decimal number (with an
 * optional fraction) followed by a binary suffix (Ki Mi Gi Ti Pi Ei), a
 * decimal suffix (n u m "" k M G T P E) or a decimal exponent (e3, E-2).
 * Values are held exactly in nano-units (1 = 10^-9); sub-nano precision
 * rounds up as Kubernetes does. Used by DPUFlavor validation and by the
 * DPUDeployment resource-fitting check. No allocation. */
#ifndef DPF_API_QUANTITY_H
#define DPF_API_QUANTITY_H

#include <stdbool.h>
#include <stddef.h>

/* A parsed quantity. */
struct quantity {
    __int128 nano; /* value in units of 10^-9 */
    bool binary;   /* written with a binary suffix (formats back that way) */
};

/* Parse s; 0, or -EINVAL (syntax) / -ERANGE (too large). */
int quantity_parse(const char *s, struct quantity *q);
/* -1, 0 or 1 as a <, ==, > b. */
int quantity_cmp(const struct quantity *a, const struct quantity *b);
/* a - b into *out (keeps a's format). */
void quantity_sub(const struct quantity *a, const struct quantity *b,
                  struct quantity *out);
/* Canonical text ("4Gi", "1500m", "2") into buf; returns buf. */
char *quantity_format(const struct quantity *q, char *buf, size_t size);

#endif
