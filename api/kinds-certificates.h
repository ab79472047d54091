/* kinds-certificates: what dpf-server needs from the CSR kind's rules. */
#ifndef DPF_API_KINDS_CERTIFICATES_H
#define DPF_API_KINDS_CERTIFICATES_H

#include <jansson.h>
#include <stdbool.h>

/* Set (in the writing thread) around the approval subresource's write:
 * only then may an Approved or Denied condition appear. */
extern _Thread_local bool schema_csr_approval_write;

/* The status condition of type t (borrowed) or NULL. */
const json_t *schema_csr_condition(const json_t *obj, const char *t);

#endif
