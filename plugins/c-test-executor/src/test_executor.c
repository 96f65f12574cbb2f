/*
 * c-instant: a small executor plugin written in C against the Trellis plugin
 * SDK, proving the executor ABI is language-neutral. Tests and the scheduler
 * benchmark load it into the real control plane.
 *
 * It runs no process. For each submitted attempt it reports `started`, then
 * `finished` at once or after a delay, with an outcome taken from the task's
 * executor_config (a flat JSON object):
 *   "delay_ms": N         finish N milliseconds after submission (default 0)
 *   "fail_until_try": K   fail tries 1..K, succeed afterwards (default 0)
 *   "exit_code": E        exit code reported for a failure (default 1)
 *   "pod_name": "P"       report the attempt as running in pod P
 *                         (AttemptStarted.external_kind POD), as a
 *                         Kubernetes executor of any name would
 * Executor settings (ExecutorConfig.config_json, a flat JSON object):
 *   "record_file": PATH   append one line per execution, so tests can count
 *                         how often each attempt really ran; adopt() answers
 *                         from this file, like a real executor that finds its
 *                         pod again after a control-plane restart.
 *   "fail_create": true   make create() fail (tests the host's handling).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "trellis_plugin_sdk.h"

typedef struct pending_attempt {
    char *attempt_id;
    int64_t fencing_token;
    int64_t due_micros;
    int succeed;
    int exit_code;
    struct pending_attempt *next;
} pending_attempt;

typedef struct instance {
    const trellis_host_v1 *host;
    char record_file[4096];
    pthread_mutex_t lock;
    pthread_cond_t changed;
    pthread_t worker;
    int stopping;
    pending_attempt *pending;
} instance;

static int64_t now_micros(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static char *copy_error(const char *message) {
    return strdup(message);
}

/* Finds "key": in a flat JSON object and returns a pointer to its value. */
static const char *json_value(const char *json, const char *key) {
    if (json == NULL) return NULL;
    size_t key_length = strlen(key);
    for (const char *p = strstr(json, key); p != NULL; p = strstr(p + 1, key)) {
        if (p == json || p[-1] != '"' || p[key_length] != '"') continue;
        const char *q = p + key_length + 1;
        while (*q == ' ') q++;
        if (*q != ':') continue;
        q++;
        while (*q == ' ') q++;
        return q;
    }
    return NULL;
}

static long json_int(const char *json, const char *key, long fallback) {
    const char *value = json_value(json, key);
    if (value == NULL) return fallback;
    char *end = NULL;
    long number = strtol(value, &end, 10);
    return end == value ? fallback : number;
}

static int json_true(const char *json, const char *key) {
    const char *value = json_value(json, key);
    return value != NULL && strncmp(value, "true", 4) == 0;
}

/* Copies a JSON string value (no escapes) into out; returns 1 if found. */
static int json_string(const char *json, const char *key, char *out, size_t size) {
    const char *value = json_value(json, key);
    if (value == NULL || *value != '"') return 0;
    const char *end = strchr(value + 1, '"');
    if (end == NULL || (size_t)(end - value - 1) >= size) return 0;
    memcpy(out, value + 1, (size_t)(end - value - 1));
    out[end - value - 1] = '\0';
    return 1;
}

/* Packs an event about one attempt and hands it to the host. */
static void emit(instance *self, const char *attempt_id, int64_t token, Trellis__V1__AttemptStarted *started,
                 Trellis__V1__AttemptFinished *finished) {
    Trellis__V1__AttemptRef ref;
    trellis__v1__attempt_ref__init(&ref);
    ref.attempt_id = (char *)attempt_id;
    ref.fencing_token = token;

    Trellis__V1__Timestamp at;
    trellis__v1__timestamp__init(&at);
    at.unix_micros = now_micros();

    Trellis__V1__ExecutorEvent event;
    trellis__v1__executor_event__init(&event);
    event.attempt = &ref;
    event.at = &at;
    if (started != NULL) {
        event.event_case = TRELLIS__V1__EXECUTOR_EVENT__EVENT_STARTED;
        event.started = started;
    } else {
        event.event_case = TRELLIS__V1__EXECUTOR_EVENT__EVENT_FINISHED;
        event.finished = finished;
    }

    uint8_t stack[512];
    size_t size = trellis__v1__executor_event__get_packed_size(&event);
    uint8_t *buffer = size <= sizeof stack ? stack : malloc(size);
    if (buffer == NULL) return;
    trellis__v1__executor_event__pack(&event, buffer);
    self->host->emit_event(self->host->ctx, buffer, size);
    if (buffer != stack) free(buffer);
}

/* pod_name NULL: the attempt runs in this process (kind unspecified, as
   plugins built before external_kind report it). */
static void emit_started(instance *self, const char *attempt_id, int64_t token, const char *pod_name) {
    Trellis__V1__AttemptStarted started;
    trellis__v1__attempt_started__init(&started);
    if (pod_name != NULL) {
        started.external_id = (char *)pod_name;
        started.external_kind = TRELLIS__V1__EXTERNAL_KIND__EXTERNAL_KIND_POD;
        started.node = "";
    } else {
        started.external_id = "c-instant";
        started.node = "in-process";
    }
    emit(self, attempt_id, token, &started, NULL);
}

static void emit_finished(instance *self, const char *attempt_id, int64_t token, Trellis__V1__AttemptOutcome outcome,
                          int exit_code, const char *message) {
    Trellis__V1__AttemptFinished finished;
    trellis__v1__attempt_finished__init(&finished);
    finished.outcome = outcome;
    if (outcome == TRELLIS__V1__ATTEMPT_OUTCOME__ATTEMPT_OUTCOME_SUCCEEDED ||
        outcome == TRELLIS__V1__ATTEMPT_OUTCOME__ATTEMPT_OUTCOME_FAILED) {
        finished.exit_case = TRELLIS__V1__ATTEMPT_FINISHED__EXIT_EXIT_CODE;
        finished.exit_code = exit_code;
    }
    if (message != NULL) finished.message = (char *)message;
    emit(self, attempt_id, token, NULL, &finished);
}

#define SUCCEEDED TRELLIS__V1__ATTEMPT_OUTCOME__ATTEMPT_OUTCOME_SUCCEEDED
#define FAILED TRELLIS__V1__ATTEMPT_OUTCOME__ATTEMPT_OUTCOME_FAILED
#define CANCELLED TRELLIS__V1__ATTEMPT_OUTCOME__ATTEMPT_OUTCOME_CANCELLED
#define LOST TRELLIS__V1__ATTEMPT_OUTCOME__ATTEMPT_OUTCOME_LOST
#define FAILURE_MESSAGE "failed as configured (fail_until_try)"

/* Appends "attempt_id<TAB>dag<TAB>run<TAB>task<TAB>try<TAB>outcome\n" in one write. */
static void record(instance *self, const Trellis__V1__TaskAssignment *assignment, int succeed) {
    if (self->record_file[0] == '\0') return;
    char line[2048];
    int length = snprintf(line, sizeof line, "%s\t%s\t%s\t%s\t%d\t%s\n", assignment->attempt->attempt_id,
                          assignment->dag_id, assignment->run_id, assignment->task_id, assignment->try_number,
                          succeed ? "succeeded" : "failed");
    if (length <= 0 || (size_t)length >= sizeof line) return;
    int fd = open(self->record_file, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (fd < 0) return;
    ssize_t written = write(fd, line, (size_t)length);
    (void)written;
    close(fd);
}

/* The outcome recorded for attempt_id: 1 succeeded, 0 failed, -1 never ran. */
static int recorded_outcome(instance *self, const char *attempt_id) {
    if (self->record_file[0] == '\0') return -1;
    FILE *file = fopen(self->record_file, "r");
    if (file == NULL) return -1;
    char line[2048];
    int outcome = -1;
    size_t id_length = strlen(attempt_id);
    while (fgets(line, sizeof line, file) != NULL) {
        if (strncmp(line, attempt_id, id_length) == 0 && line[id_length] == '\t') {
            outcome = strstr(line, "\tsucceeded\n") != NULL ? 1 : 0;
        }
    }
    fclose(file);
    return outcome;
}

static void *worker_main(void *argument) {
    instance *self = argument;
    pthread_mutex_lock(&self->lock);
    while (!self->stopping) {
        int64_t now = now_micros();
        pending_attempt **link = &self->pending;
        int64_t earliest = 0;
        while (*link != NULL) {
            pending_attempt *item = *link;
            if (item->due_micros <= now) {
                *link = item->next;
                pthread_mutex_unlock(&self->lock);
                emit_finished(self, item->attempt_id, item->fencing_token, item->succeed ? SUCCEEDED : FAILED,
                              item->succeed ? 0 : item->exit_code, item->succeed ? NULL : FAILURE_MESSAGE);
                free(item->attempt_id);
                free(item);
                pthread_mutex_lock(&self->lock);
                link = &self->pending;
                now = now_micros();
                earliest = 0;
                continue;
            }
            if (earliest == 0 || item->due_micros < earliest) earliest = item->due_micros;
            link = &item->next;
        }
        if (earliest == 0) {
            pthread_cond_wait(&self->changed, &self->lock);
        } else {
            struct timespec until = {.tv_sec = earliest / 1000000, .tv_nsec = (earliest % 1000000) * 1000};
            pthread_cond_timedwait(&self->changed, &self->lock, &until);
        }
    }
    pthread_mutex_unlock(&self->lock);
    return NULL;
}

static void *executor_create(const trellis_host_v1 *host, const uint8_t *config, size_t length, char **error) {
    Trellis__V1__ExecutorConfig *settings = trellis__v1__executor_config__unpack(NULL, length, config);
    if (settings == NULL) {
        *error = copy_error("c-instant: the configuration is not a trellis.v1.ExecutorConfig");
        return NULL;
    }
    if (json_true(settings->config_json, "fail_create")) {
        trellis__v1__executor_config__free_unpacked(settings, NULL);
        *error = copy_error("c-instant: fail_create is set in its configuration");
        return NULL;
    }
    instance *self = calloc(1, sizeof *self);
    if (self == NULL) {
        trellis__v1__executor_config__free_unpacked(settings, NULL);
        *error = copy_error("c-instant: out of memory");
        return NULL;
    }
    self->host = host;
    json_string(settings->config_json, "record_file", self->record_file, sizeof self->record_file);
    trellis__v1__executor_config__free_unpacked(settings, NULL);

    pthread_mutex_init(&self->lock, NULL);
    pthread_condattr_t attributes;
    pthread_condattr_init(&attributes);
    pthread_cond_init(&self->changed, &attributes);
    pthread_condattr_destroy(&attributes);
    if (pthread_create(&self->worker, NULL, worker_main, self) != 0) {
        free(self);
        *error = copy_error("c-instant: cannot start its worker thread");
        return NULL;
    }
    host->log(host->ctx, TRELLIS_LOG_INFO, "c-instant executor ready");
    return self;
}

static int executor_submit(void *opaque, const uint8_t *bytes, size_t length, char **error) {
    instance *self = opaque;
    Trellis__V1__TaskAssignment *assignment = trellis__v1__task_assignment__unpack(NULL, length, bytes);
    if (assignment == NULL || assignment->attempt == NULL || assignment->task == NULL) {
        if (assignment != NULL) trellis__v1__task_assignment__free_unpacked(assignment, NULL);
        *error = copy_error("c-instant: submit expects a trellis.v1.TaskAssignment with attempt and task");
        return TRELLIS_ERROR_INVALID_ARGUMENT;
    }
    const char *options = assignment->task->executor_config_json;
    long delay_ms = json_int(options, "delay_ms", 0);
    int succeed = assignment->try_number > json_int(options, "fail_until_try", 0);
    int exit_code = (int)json_int(options, "exit_code", 1);

    char pod_name[254];
    int in_pod = json_string(options, "pod_name", pod_name, sizeof pod_name);

    record(self, assignment, succeed);
    emit_started(self, assignment->attempt->attempt_id, assignment->attempt->fencing_token, in_pod ? pod_name : NULL);

    if (delay_ms <= 0) {
        emit_finished(self, assignment->attempt->attempt_id, assignment->attempt->fencing_token,
                      succeed ? SUCCEEDED : FAILED, succeed ? 0 : exit_code, succeed ? NULL : FAILURE_MESSAGE);
    } else {
        pending_attempt *item = calloc(1, sizeof *item);
        if (item == NULL) {
            trellis__v1__task_assignment__free_unpacked(assignment, NULL);
            *error = copy_error("c-instant: out of memory");
            return TRELLIS_ERROR_INTERNAL;
        }
        item->attempt_id = strdup(assignment->attempt->attempt_id);
        item->fencing_token = assignment->attempt->fencing_token;
        item->due_micros = now_micros() + delay_ms * 1000;
        item->succeed = succeed;
        item->exit_code = exit_code;
        pthread_mutex_lock(&self->lock);
        item->next = self->pending;
        self->pending = item;
        pthread_cond_signal(&self->changed);
        pthread_mutex_unlock(&self->lock);
    }
    trellis__v1__task_assignment__free_unpacked(assignment, NULL);
    return TRELLIS_OK;
}

static int executor_cancel(void *opaque, const uint8_t *bytes, size_t length, char **error) {
    instance *self = opaque;
    Trellis__V1__CancelRequest *request = trellis__v1__cancel_request__unpack(NULL, length, bytes);
    if (request == NULL || request->attempt == NULL) {
        if (request != NULL) trellis__v1__cancel_request__free_unpacked(request, NULL);
        *error = copy_error("c-instant: cancel expects a trellis.v1.CancelRequest with attempt");
        return TRELLIS_ERROR_INVALID_ARGUMENT;
    }
    pending_attempt *found = NULL;
    pthread_mutex_lock(&self->lock);
    for (pending_attempt **link = &self->pending; *link != NULL; link = &(*link)->next) {
        if (strcmp((*link)->attempt_id, request->attempt->attempt_id) == 0) {
            found = *link;
            *link = found->next;
            break;
        }
    }
    pthread_mutex_unlock(&self->lock);
    int status = TRELLIS_OK;
    if (found != NULL) {
        emit_finished(self, found->attempt_id, found->fencing_token, CANCELLED, 0, request->reason);
        free(found->attempt_id);
        free(found);
    } else {
        *error = copy_error("c-instant: no such attempt is waiting to finish");
        status = TRELLIS_ERROR_NOT_FOUND;
    }
    trellis__v1__cancel_request__free_unpacked(request, NULL);
    return status;
}

static int executor_adopt(void *opaque, const uint8_t *bytes, size_t length, char **error) {
    instance *self = opaque;
    Trellis__V1__AdoptRequest *request = trellis__v1__adopt_request__unpack(NULL, length, bytes);
    if (request == NULL) {
        *error = copy_error("c-instant: adopt expects a trellis.v1.AdoptRequest");
        return TRELLIS_ERROR_INVALID_ARGUMENT;
    }
    for (size_t i = 0; i < request->n_attempts; i++) {
        const Trellis__V1__AdoptedAttempt *adopted = request->attempts[i];
        if (adopted->assignment == NULL || adopted->assignment->attempt == NULL) continue;
        const Trellis__V1__AttemptRef *ref = adopted->assignment->attempt;
        int outcome = recorded_outcome(self, ref->attempt_id);
        if (outcome < 0) {
            /* It never ran here: report it lost so the host retries it. */
            emit_finished(self, ref->attempt_id, ref->fencing_token, LOST, 0, "c-instant has no record of this attempt");
        } else {
            /* It ran before the restart: report what happened, once more. */
            emit_finished(self, ref->attempt_id, ref->fencing_token, outcome ? SUCCEEDED : FAILED, outcome ? 0 : 1,
                          outcome ? NULL : FAILURE_MESSAGE);
        }
    }
    trellis__v1__adopt_request__free_unpacked(request, NULL);
    return TRELLIS_OK;
}

static int executor_tick(void *opaque, const uint8_t *bytes, size_t length, char **error) {
    (void)opaque;
    Trellis__V1__TickRequest *request = trellis__v1__tick_request__unpack(NULL, length, bytes);
    if (request == NULL) {
        *error = copy_error("c-instant: tick expects a trellis.v1.TickRequest");
        return TRELLIS_ERROR_INVALID_ARGUMENT;
    }
    trellis__v1__tick_request__free_unpacked(request, NULL);
    return TRELLIS_OK;
}

static void executor_destroy(void *opaque) {
    instance *self = opaque;
    pthread_mutex_lock(&self->lock);
    self->stopping = 1;
    pthread_cond_signal(&self->changed);
    pthread_mutex_unlock(&self->lock);
    pthread_join(self->worker, NULL);
    while (self->pending != NULL) {
        pending_attempt *next = self->pending->next;
        free(self->pending->attempt_id);
        free(self->pending);
        self->pending = next;
    }
    pthread_cond_destroy(&self->changed);
    pthread_mutex_destroy(&self->lock);
    free(self);
}

static void executor_free_error(char *error) {
    free(error);
}

static const trellis_executor_v1 table = {
    .struct_size = sizeof(trellis_executor_v1),
    .abi_major = TRELLIS_EXECUTOR_ABI_MAJOR,
    .abi_minor = TRELLIS_EXECUTOR_ABI_MINOR,
    .name = "c-instant",
    .version = "1.0.0",
    .create = executor_create,
    .submit = executor_submit,
    .cancel = executor_cancel,
    .adopt = executor_adopt,
    .tick = executor_tick,
    .destroy = executor_destroy,
    .free_error = executor_free_error,
};

__attribute__((visibility("default"))) const trellis_executor_v1 *trellis_executor_entry_v1(void) {
    return &table;
}
