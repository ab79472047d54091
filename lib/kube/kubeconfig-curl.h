/* kubeconfig-curl: point a libcurl easy handle at a kubeconfig's cluster
 * with its TLS material.
 *
 * The one place that turns a resolved struct kubeconfig into curl's TLS
 * options: the CA bundle (certificate-authority[-data]) as an in-memory
 * blob, peer and host verification (off only with
 * insecure-skip-tls-verify), and the client certificate and key as PEM
 * blobs. Both the blocking client (lib/api-client) and the event-loop
 * client (lib/kube/kube-rest) call it for every easy handle they set up, so
 * the two cannot drift apart.
 *
 * Only ca_pem/ca_len, cert_pem/cert_len, key_pem/key_len and
 * insecure_skip_tls_verify are read. The blobs are copied by curl
 * (CURL_BLOB_COPY): kc may be freed after the call. The bearer token is not
 * handled here (it is a header, which each client adds to its own list). */
#ifndef DPF_KUBECONFIG_CURL_H
#define DPF_KUBECONFIG_CURL_H

#include <curl/curl.h>

#include "lib/kube/kubeconfig.h"

/* Set the TLS options of h from kc. Any thread (h is the caller's). */
void kubeconfig_curl_apply_tls(CURL *h, const struct kubeconfig *kc);

#endif
