// libcurl (Debian: libcurl4-openssl-dev), the HTTP client of TrellisKube.
//
// curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot
// call; these typed wrappers, one per argument type, can be.
#ifndef TRELLIS_CLIBCURL_SHIM_H
#define TRELLIS_CLIBCURL_SHIM_H
#include <curl/curl.h>

/// The signature of CURLOPT_WRITEFUNCTION, CURLOPT_HEADERFUNCTION and
/// CURLOPT_READFUNCTION callbacks.
typedef size_t (*trellis_curl_data_callback)(char *buffer, size_t size, size_t count, void *userdata);

static inline CURLcode trellis_curl_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode trellis_curl_easy_setopt_off_t(CURL *handle, CURLoption option, curl_off_t value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode trellis_curl_easy_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode trellis_curl_easy_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode trellis_curl_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode trellis_curl_easy_setopt_callback(CURL *handle, CURLoption option, trellis_curl_data_callback value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode trellis_curl_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode trellis_curl_easy_getinfo_string(CURL *handle, CURLINFO info, char **value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode trellis_curl_easy_getinfo_double(CURL *handle, CURLINFO info, double *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode trellis_curl_easy_getinfo_off_t(CURL *handle, CURLINFO info, curl_off_t *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode trellis_curl_easy_getinfo_pointer(CURL *handle, CURLINFO info, void **value) {
    return curl_easy_getinfo(handle, info, value);
}

/// Sets a CURLOPT_*_BLOB option (CA bundle, client certificate or key held
/// in memory); libcurl copies the bytes.
static inline CURLcode trellis_curl_easy_setopt_blob(CURL *handle, CURLoption option, const void *data, size_t length) {
    struct curl_blob blob = { (void *)data, length, CURL_BLOB_COPY };
    return curl_easy_setopt(handle, option, &blob);
}

static inline CURLMcode trellis_curl_multi_setopt_long(CURLM *handle, CURLMoption option, long value) {
    return curl_multi_setopt(handle, option, value);
}

/// CURLMsg's result for a CURLMSG_DONE message (a union member).
static inline CURLcode trellis_curl_msg_result(const CURLMsg *message) {
    return message->data.result;
}

#endif
