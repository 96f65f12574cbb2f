/*
 * Deliberately broken executor plugins, for the host's loader tests. One
 * library, several faults: the tests copy it under different file names and
 * the entry point picks its fault from its own file name, so each copy is a
 * separate, independently broken plugin:
 *   *abi-major*   reports ABI major version 99
 *   *too-small*   reports a struct_size smaller than the v1 table
 *   *null-entry*  returns NULL from the entry point
 *   *bad-name*    names itself "Not A Valid Name!"
 *   *no-submit*   leaves the submit function pointer NULL
 *   *abi-1-0*     a working plugin built for ABI 1.0: its struct_size ends
 *                 before agents_changed, which the host must then never
 *                 call (here it would abort)
 *   anything else a valid plugin named "c-broken-valid" whose create fails
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "trellis_executor_abi.h"

static void *create_fails(const trellis_host_v1 *host, const uint8_t *config, size_t length, char **error) {
    (void)host;
    (void)config;
    (void)length;
    *error = strdup("c-broken-valid: create always fails");
    return NULL;
}

static int refuse(void *instance, const uint8_t *bytes, size_t length, char **error) {
    (void)instance;
    (void)bytes;
    (void)length;
    *error = strdup("c-broken-valid: never created");
    return TRELLIS_ERROR_INTERNAL;
}

static int instance_storage;

static void *create_ok(const trellis_host_v1 *host, const uint8_t *config, size_t length, char **error) {
    (void)host;
    (void)config;
    (void)length;
    (void)error;
    return &instance_storage;
}

static int accept_all(void *instance, const uint8_t *bytes, size_t length, char **error) {
    (void)instance;
    (void)bytes;
    (void)length;
    (void)error;
    return TRELLIS_OK;
}

static int must_not_be_called(void *instance, const uint8_t *bytes, size_t length, char **error) {
    (void)instance;
    (void)bytes;
    (void)length;
    (void)error;
    abort();
}

static void destroy(void *instance) { (void)instance; }
static void free_error(char *error) { free(error); }

#define TABLE(variable, major, size, name_, submit_)                                                              \
    static const trellis_executor_v1 variable = {                                                                 \
        .struct_size = (size), .abi_major = (major), .abi_minor = 0, .name = (name_), .version = "0.0.1",         \
        .create = create_fails, .submit = (submit_), .cancel = refuse, .adopt = refuse, .tick = refuse,           \
        .destroy = destroy, .free_error = free_error,                                                             \
    }

TABLE(wrong_major, 99, sizeof(trellis_executor_v1), "c-broken-abi", refuse);
TABLE(too_small, TRELLIS_EXECUTOR_ABI_MAJOR, 16, "c-broken-small", refuse);
TABLE(bad_name, TRELLIS_EXECUTOR_ABI_MAJOR, sizeof(trellis_executor_v1), "Not A Valid Name!", refuse);
TABLE(no_submit, TRELLIS_EXECUTOR_ABI_MAJOR, sizeof(trellis_executor_v1), "c-broken-no-submit", NULL);
TABLE(valid, TRELLIS_EXECUTOR_ABI_MAJOR, sizeof(trellis_executor_v1), "c-broken-valid", refuse);

static const trellis_executor_v1 abi_1_0 = {
    .struct_size = offsetof(trellis_executor_v1, agents_changed), .abi_major = 1, .abi_minor = 0,
    .name = "c-old-minor", .version = "1.0.0", .create = create_ok, .submit = accept_all, .cancel = accept_all,
    .adopt = accept_all, .tick = accept_all, .destroy = destroy, .free_error = free_error,
    .agents_changed = must_not_be_called,
};

__attribute__((visibility("default"))) const trellis_executor_v1 *trellis_executor_entry_v1(void) {
    Dl_info info;
    const char *file = dladdr((void *)trellis_executor_entry_v1, &info) != 0 && info.dli_fname != NULL
                           ? info.dli_fname
                           : "";
    const char *base = strrchr(file, '/');
    base = base != NULL ? base + 1 : file;
    if (strstr(base, "abi-major") != NULL) return &wrong_major;
    if (strstr(base, "too-small") != NULL) return &too_small;
    if (strstr(base, "null-entry") != NULL) return NULL;
    if (strstr(base, "bad-name") != NULL) return &bad_name;
    if (strstr(base, "no-submit") != NULL) return &no_submit;
    if (strstr(base, "abi-1-0") != NULL) return &abi_1_0;
    return &valid;
}
