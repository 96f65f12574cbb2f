/*
 * The Trellis executor plugin ABI, version 1.
 *
 * An executor plugin is a shared library that exports one function,
 * trellis_executor_entry_v1, returning a pointer to a static
 * trellis_executor_v1 table. The control plane (the host) loads every plugin
 * in its plugin directories with dlopen, checks the table, and hands each
 * plugin the task attempts whose task names it as executor.
 *
 * Every structured argument crossing this boundary is the serialized bytes
 * of a protobuf message from proto/trellis/v1/executor.proto; the message
 * type is named at each function. Language-neutral: plugins can be written in
 * C (see plugins/c-sdk), Swift or anything with a C ABI.
 *
 * Memory: whoever allocates a buffer frees it. Buffers passed as arguments are
 * owned by the caller and valid only for the duration of the call; copy what
 * you keep. An error string a plugin returns through `char **error` is
 * allocated by the plugin and released by the host with the plugin's
 * free_error.
 *
 * Threads: the host calls create, submit, cancel, adopt, tick and destroy for
 * one instance one at a time (never concurrently), from any thread. A plugin
 * may call the host's emit_event, call_agent and log from any thread at any
 * time between create returning and destroy returning; they never block for
 * long and never call back into the plugin before returning.
 *
 * Versioning: abi_major changes break compatibility; the host refuses a
 * plugin whose abi_major differs from its own. abi_minor grows when fields
 * are appended to a table; struct_size tells each side which fields the other
 * has, so newer hosts load older plugins of the same major version.
 */
#ifndef TRELLIS_EXECUTOR_ABI_H
#define TRELLIS_EXECUTOR_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TRELLIS_EXECUTOR_ABI_MAJOR 1
#define TRELLIS_EXECUTOR_ABI_MINOR 1

/* The exported symbol's name, for dlsym. */
#define TRELLIS_EXECUTOR_ENTRY_SYMBOL "trellis_executor_entry_v1"

/* Return codes of plugin functions. */
#define TRELLIS_OK 0
/* The bytes could not be decoded as the expected message. */
#define TRELLIS_ERROR_INVALID_ARGUMENT 3
/* The attempt is unknown to the executor (cancel, adopt). */
#define TRELLIS_ERROR_NOT_FOUND 5
/* The executor cannot take work now (no capacity, shutting down). */
#define TRELLIS_ERROR_UNAVAILABLE 14
/* Anything else; *error says what. */
#define TRELLIS_ERROR_INTERNAL 13

/* Severities for trellis_host_v1.log. */
#define TRELLIS_LOG_DEBUG 0
#define TRELLIS_LOG_INFO 1
#define TRELLIS_LOG_WARNING 2
#define TRELLIS_LOG_ERROR 3

/*
 * Called by the host when an agent call started with call_agent ends.
 * status is a gRPC status code (0 = OK); message says why when it is not.
 * response holds the reply's payload bytes, valid only during the call.
 */
typedef void (*trellis_agent_call_completion)(void *completion_ctx, int status, const char *message,
                                              const uint8_t *response, size_t response_length);

/* What the host offers a plugin instance. */
typedef struct trellis_host_v1 {
    /* sizeof(trellis_host_v1) as the host was compiled. */
    size_t struct_size;
    /* Opaque; pass it back as the first argument of every function below. */
    void *ctx;
    /*
     * Reports something that happened to an attempt: the bytes of a
     * trellis.v1.ExecutorEvent (started, a log chunk, finished). Events of one
     * attempt must be emitted in order. Returns TRELLIS_OK, or
     * TRELLIS_ERROR_INVALID_ARGUMENT if the bytes are not an ExecutorEvent.
     */
    int (*emit_event)(void *ctx, const uint8_t *event, size_t length);
    /*
     * Calls a method on a connected agent over its control-plane connection
     * (e.g. to start or cancel a task process). agent is the agent's name,
     * method the full method name ("/trellis.v1.AgentWorker/StartTask"), payload
     * the request message's bytes. completion is called exactly once, on a
     * host thread, possibly before call_agent returns. Returns TRELLIS_OK if
     * the call was started; otherwise completion is not called.
     */
    int (*call_agent)(void *ctx, const char *agent, const char *method, const uint8_t *payload,
                      size_t payload_length, trellis_agent_call_completion completion,
                      void *completion_ctx);
    /* Writes one line to the control plane's log, tagged with the executor. */
    void (*log)(void *ctx, int level, const char *message);
} trellis_host_v1;

/* What a plugin exports. */
typedef struct trellis_executor_v1 {
    /* sizeof(trellis_executor_v1) as the plugin was compiled. */
    size_t struct_size;
    /* TRELLIS_EXECUTOR_ABI_MAJOR and _MINOR as the plugin was compiled. */
    uint32_t abi_major;
    uint32_t abi_minor;
    /* The executor's name, as DAG files write it ("pod-per-task"): lowercase
     * letters, digits and '-'. Static storage. */
    const char *name;
    /* The plugin's version, for listings ("1.2.0"). Static storage. */
    const char *version;
    /*
     * Creates an instance. config: trellis.v1.ExecutorConfig. host stays valid
     * until destroy returns. Returns the instance, or NULL with *error set.
     */
    void *(*create)(const trellis_host_v1 *host, const uint8_t *config, size_t config_length, char **error);
    /*
     * Starts one attempt: trellis.v1.TaskAssignment. Returns quickly; the
     * attempt's progress arrives through emit_event. TRELLIS_OK, or an error
     * code with *error set (the host then fails the attempt with that reason).
     */
    int (*submit)(void *instance, const uint8_t *assignment, size_t length, char **error);
    /* Stops an attempt: trellis.v1.CancelRequest. Its finished event follows. */
    int (*cancel)(void *instance, const uint8_t *request, size_t length, char **error);
    /*
     * After a control-plane restart, takes back attempts the database says are
     * running on this executor: trellis.v1.AdoptRequest. The plugin keeps
     * tracking those it can find and emits a finished event (outcome LOST)
     * for each it cannot.
     */
    int (*adopt)(void *instance, const uint8_t *request, size_t length, char **error);
    /* Called about once a second: trellis.v1.TickRequest. */
    int (*tick)(void *instance, const uint8_t *request, size_t length, char **error);
    /* Stops the instance and frees it; no callbacks after it returns. */
    void (*destroy)(void *instance);
    /* Frees an error string this plugin returned. */
    void (*free_error)(char *error);

    /* --- ABI 1.1 (present when struct_size covers it; may be NULL) --- */

    /*
     * The agents connected to this control-plane replica changed (one joined,
     * reported its load, started draining or was lost):
     * trellis.v1.AgentsUpdate, the whole list each time. Executors that
     * dispatch to agents (persistent-pool, scaled-pool) use it; others leave
     * it NULL.
     */
    int (*agents_changed)(void *instance, const uint8_t *update, size_t length, char **error);
} trellis_executor_v1;

/* The one symbol every plugin exports. */
typedef const trellis_executor_v1 *(*trellis_executor_entry_v1_fn)(void);
const trellis_executor_v1 *trellis_executor_entry_v1(void);

#ifdef __cplusplus
}
#endif

#endif
