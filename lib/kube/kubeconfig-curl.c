/* kubeconfig-curl: see kubeconfig-curl.h. */
#include "lib/kube/kubeconfig-curl.h"

void
kubeconfig_curl_apply_tls(CURL *h, const struct kubeconfig *kc)
{
    if (kc->ca_pem) {
        struct curl_blob b = {kc->ca_pem, kc->ca_len, CURL_BLOB_COPY};
        curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
    }
    bool insecure = kc->insecure_skip_tls_verify;
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, insecure ? 0L : 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, insecure ? 0L : 2L);
    if (kc->cert_pem && kc->key_pem) {
        struct curl_blob cb = {kc->cert_pem, kc->cert_len, CURL_BLOB_COPY};
        struct curl_blob kb = {kc->key_pem, kc->key_len, CURL_BLOB_COPY};
        curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cb);
        curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
        curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &kb);
        curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    }
}
