/*
 * fnhost.h: the fnhost plugin ABI, version 1.5 (1.0 to 1.4 plugins still load).
 *
 * A plugin is a shared library that exports ONE data symbol,
 * `fnhost_plugin_descriptor` (type fnhost_descriptor). The host maps the
 * library, reads and checks that descriptor (magic, ABI version, optional
 * structural layout table, handler table) and only then calls plugin code.
 * Nothing else is looked up by name, except, from 1.4, the optional
 * function `fnhost_start_thread` (see "A runtime's own threads" below).
 *
 * Ownership is visible in type names:
 *   fnhost_host_str    memory owned by the HOST, lent to the plugin; valid
 *                      until the handler/initializer call that received it
 *                      (directly or through a context function) returns.
 *                      Never free it, never keep it.
 *   fnhost_plugin_str  memory owned by the PLUGIN. Passed to a context
 *                      function, the host copies it before that function
 *                      returns, so stack buffers are fine. In the descriptor
 *                      it must stay valid while the library is loaded
 *                      (static storage).
 * Strings are pointer + length, UTF-8 where text, never NUL-terminated.
 * Nothing the plugin allocates is freed by the host and nothing the host
 * allocates is freed by the plugin.
 *
 * Threads: a handler runs on a host worker thread (for a 1.4 plugin that
 * exports fnhost_start_thread, on a thread it started). Context functions are
 * thread-safe and may be called from threads the handler starts, but only
 * until the handler returns. They never unwind or longjmp.
 *
 * Concurrency and lifetime, which a plugin must plan for:
 *  - Handlers run concurrently: up to the function's concurrency per
 *    instance at once in one instance, and several instances (and several
 *    functions using the same library) share one loaded image and so its
 *    static data. Guard shared state.
 *  - An initializer runs once per instance, before that instance's first
 *    handler call; several instances may run it concurrently.
 *  - In process (not process isolation), a call that passes its timeout is
 *    answered `timeout` but keeps running until it returns: nothing can stop
 *    a thread safely. Its context stays valid until it returns.
 *  - Libraries are never unloaded: a library that was loaded stays mapped
 *    for the life of the host process (process isolation ends the worker
 *    instead). Redeploying identical bytes reuses the loaded image.
 *  - Before the host maps a library it loads it once in a throwaway worker
 *    process, so constructors may run more than once per host (once there,
 *    once in the host, once in every worker process).
 *
 * What a plugin must not touch process-wide (in process it shares the host
 * process; in process isolation it breaks only its own worker):
 *  signal dispositions and masks, fork() without exec in process mode,
 *  exit()/_exit()/abort(), the environment (setenv, putenv), the working
 *  directory, the process's resource limits, and descriptors it did not
 *  open. A Rust plugin built with panic = "abort" aborts the host on any
 *  panic. In process mode the host trusts the plugin not to crash it; that
 *  is the price of native speed (see the book: docs/src/isolation/trust.md).
 *
 * Empty strings: a string whose len is 0 may carry any pointer, NULL
 * included; neither side reads through it.
 *
 * Limits at the boundary (longer input is cut and marked, never refused):
 *  set_error: errorType at most FNHOST_MAX_ERROR_TYPE bytes, errorMessage
 *  at most FNHOST_MAX_ERROR_MESSAGE bytes; log: a line at most
 *  FNHOST_MAX_LOG_LINE bytes. A cut string ends with "...[truncated N
 *  bytes]". The response limit applies to error results as to bodies.
 *
 * Errors: a handler returns FNHOST_STATUS_OK or FNHOST_STATUS_ERROR. Before
 * returning ERROR it calls ctx->vtable->set_error(); the host reports
 * {"errorMessage", "errorType"} to the caller. A handler must not let a
 * C++ exception or a Rust panic escape: the host cannot catch it.
 *
 * Versioning: a host refuses a plugin of another major version, and of a
 * newer minor than its own; it accepts every older minor. Fields are only
 * ever appended within a major; the first four descriptor fields never
 * move. The host reads min(descriptor_size, its own size) bytes of the
 * descriptor, and from 1.1 on reads every table with the element size the
 * descriptor gives for it, so structures can grow.
 *  1.0  the first ABI
 *  1.1  handler_entry_size, initializer_entry_size, layout_entry_size and
 *       field_entry_size appended to the descriptor
 *  1.2  FNHOST_FIELD_TRACE_ID (a host of 1.1 or older reads it as empty)
 *  1.3  fnhost_handler_entry.event: the event a handler takes ("apig",
 *       "timer", ..., "json", "bytes"), so that tools can warn when a trigger
 *       hands a handler an event it does not take. A 1.2 entry has none
 *       (undeclared); declare it with FNHOST_HANDLER_EVENT.
 *  1.4  fnhost_start_thread, an optional exported function: the host runs
 *       the plugin's calls on threads the plugin's own runtime starts (see
 *       below). A host of 1.3 or older refuses a 1.4 plugin; a
 *       1.4 host ignores a function of that name in an older plugin.
 *  1.5  fnhost_context_vtable.call_host: host functions, which the program
 *       that embeds fnhost (or `fnhost serve`) offers by name (see "Host
 *       functions" below). A host of 1.4 or older refuses a 1.5 plugin;
 *       code that may meet an older vtable checks struct_size first.
 *
 * Example (a complete plugin):
 *
 *   #include "fnhost.h"
 *   static int32_t hello(const fnhost_context *ctx, fnhost_host_str payload) {
 *       ctx->vtable->set_output(ctx->host, FNHOST_OUTPUT_BYTES,
 *                               (fnhost_plugin_str){payload.ptr, payload.len});
 *       return FNHOST_STATUS_OK;
 *   }
 *   static const fnhost_handler_entry handlers[] = {
 *       FNHOST_HANDLER("Handler", hello),
 *   };
 *   FNHOST_DEFINE_LAYOUT(layout);
 *   FNHOST_EXPORT_DESCRIPTOR("hello", handlers, NULL, 0, layout);
 */
#ifndef FNHOST_H
#define FNHOST_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FNHOST_ABI_MAJOR 1
#define FNHOST_ABI_MINOR 5
/* "FNHP" read as a little-endian uint32. */
#define FNHOST_DESCRIPTOR_MAGIC 0x50484E46u
#define FNHOST_DESCRIPTOR_SYMBOL "fnhost_plugin_descriptor"

/* Caps applied by the host at the boundary (see "Limits" above). */
#define FNHOST_MAX_ERROR_TYPE 256u
#define FNHOST_MAX_ERROR_MESSAGE (64u * 1024u)
#define FNHOST_MAX_LOG_LINE (16u * 1024u)
/* 1.5, call_host: the longest input and name a call may pass (longer is
 * refused, not cut), how many calls one invocation may make, and how many
 * bytes of answers it may hold at once (answers stay valid until the
 * handler returns, so they add up). */
#define FNHOST_MAX_HOST_CALL_INPUT (6u * 1024u * 1024u)
#define FNHOST_MAX_HOST_FUNCTION_NAME 128u
#define FNHOST_MAX_HOST_CALLS 100000u
#define FNHOST_MAX_HOST_CALL_ANSWERS (64u * 1024u * 1024u)

#define FNHOST_STATUS_OK 0
#define FNHOST_STATUS_ERROR 1

/* String fields for get_field(). Unknown or unset fields read as empty. */
#define FNHOST_FIELD_REQUEST_ID 0u
#define FNHOST_FIELD_FUNCTION_NAME 1u
#define FNHOST_FIELD_VERSION 2u
#define FNHOST_FIELD_ALIAS 3u
#define FNHOST_FIELD_PACKAGE 4u
#define FNHOST_FIELD_PROJECT_ID 5u
#define FNHOST_FIELD_ACCESS_KEY 6u          /* deprecated */
#define FNHOST_FIELD_SECRET_KEY 7u          /* deprecated */
#define FNHOST_FIELD_SECURITY_ACCESS_KEY 8u
#define FNHOST_FIELD_SECURITY_SECRET_KEY 9u
#define FNHOST_FIELD_SECURITY_TOKEN 10u
#define FNHOST_FIELD_TOKEN 11u
/* 1.2: the W3C trace id of the invocation (32 lowercase hex digits), empty
 * when the caller started no trace and the host generated none. */
#define FNHOST_FIELD_TRACE_ID 12u
/* 1.5: "1" once the invocation's caller cancelled it (its result will be
 * discarded): a cooperative handler checks it in long loops and stops.
 * Empty otherwise, and on an older host. */
#define FNHOST_FIELD_CANCELLED 13u

/* Log levels for log(), numbered like Rust's `log` crate. */
#define FNHOST_LEVEL_ERROR 1u
#define FNHOST_LEVEL_WARN 2u
#define FNHOST_LEVEL_INFO 3u
#define FNHOST_LEVEL_DEBUG 4u
#define FNHOST_LEVEL_TRACE 5u

/* Result kinds for set_output(): how the host labels the body. */
#define FNHOST_OUTPUT_EMPTY 0u /* no body */
#define FNHOST_OUTPUT_BYTES 1u /* application/octet-stream */
#define FNHOST_OUTPUT_TEXT 2u  /* text/plain; charset=utf-8 */
#define FNHOST_OUTPUT_JSON 3u  /* application/json */

/* Host-owned bytes, lent until the current call returns. */
typedef struct fnhost_host_str {
    const uint8_t *ptr;
    size_t len;
} fnhost_host_str;

/* Plugin-owned bytes; copied by the host before a context function returns. */
typedef struct fnhost_plugin_str {
    const uint8_t *ptr;
    size_t len;
} fnhost_plugin_str;

/* A string literal as an fnhost_plugin_str. Only a literal compiles (the
 * empty literals around it make anything else a syntax error): sizeof of a
 * pointer would silently give the wrong length. */
#define FNHOST_STR(lit) { (const uint8_t *)("" lit ""), sizeof("" lit "") - 1 }

/* Opaque host state of one invocation. */
typedef struct fnhost_host_data fnhost_host_data;

typedef struct fnhost_context_vtable fnhost_context_vtable;

/* What a handler or initializer receives. Valid only during that call. */
typedef struct fnhost_context {
    const fnhost_context_vtable *vtable; /* host-owned, static */
    fnhost_host_data *host;              /* host-owned; pass it back */
} fnhost_context;

struct fnhost_context_vtable {
    /* sizeof(fnhost_context_vtable) as the host compiled it: check it
     * before using a function appended in a newer minor version. */
    uint32_t struct_size;
    uint32_t reserved;
    /* A FNHOST_FIELD_* string. */
    fnhost_host_str (*get_field)(const fnhost_host_data *host, uint32_t field);
    /* Milliseconds until the deadline, floored at 0. */
    int64_t (*remaining_time_ms)(const fnhost_host_data *host);
    /* The deadline in milliseconds since the Unix epoch. */
    int64_t (*deadline_unix_ms)(const fnhost_host_data *host);
    /* The configured timeout in seconds. */
    uint32_t (*running_time_s)(const fnhost_host_data *host);
    /* The configured memory size in MB. */
    uint32_t (*memory_size_mb)(const fnhost_host_data *host);
    /* CPU share in millicores: memory_mb / 128 * 100 + 200. */
    uint32_t (*cpu_millicores)(const fnhost_host_data *host);
    /* User data (environment) lookup: returns 1 and sets *value when the key
     * exists, 0 otherwise. `key` is copied before return. */
    int32_t (*get_user_data)(const fnhost_host_data *host, fnhost_plugin_str key,
                             fnhost_host_str *value);
    /* Appends one line to the invocation's log. The host prefixes
     * "<RFC3339 UTC time with ms> <request id> " and appends a newline. */
    void (*log)(fnhost_host_data *host, uint32_t level, fnhost_plugin_str message);
    /* Sets the result body (FNHOST_OUTPUT_*). Copied before return; a second
     * call replaces the first. A body over the host's response limit makes
     * the invocation fail with FunctionResponseTooLarge. */
    void (*set_output)(fnhost_host_data *host, uint32_t kind, fnhost_plugin_str body);
    /* Sets the error reported when the call returns FNHOST_STATUS_ERROR. An
     * empty type means "FunctionReturnError". Both copied before return. */
    void (*set_error)(fnhost_host_data *host, fnhost_plugin_str error_type,
                      fnhost_plugin_str message);
    /* Optional: peak bytes the plugin allocated during this call, reported as
     * memoryUsed. Plugins that never call it report 0. */
    void (*report_memory_peak)(fnhost_host_data *host, uint64_t peak_bytes);
    /* ---- 1.5 ---- */
    /* Calls the host function `name` with `input` (see "Host functions"
     * below); both are read before return. FNHOST_STATUS_OK: *output is the
     * function's answer. FNHOST_STATUS_ERROR: *error_type names the failure
     * and *output is its message. Both are host-owned and stay valid until
     * the handler (or initializer) returns; either pointer may be NULL. */
    int32_t (*call_host)(fnhost_host_data *host, fnhost_plugin_str name, fnhost_plugin_str input,
                         fnhost_host_str *output, fnhost_host_str *error_type);
};

/* ---- 1.5: host functions -----------------------------------------------
 * The program that runs a plugin may offer it functions by name: an
 * embedding program registers them (fnhost_host_function_register in
 * fnhost_embed.h, Runtime::builder().host_function in Rust), and `fnhost
 * serve` offers a built-in set to the functions whose configuration allows
 * them. A call is synchronous: the host function runs on the calling thread
 * (in process) and its answer is copied into memory the host keeps until
 * the handler returns. Errors are typed; those the host itself reports:
 *   HostFunctionNotFound     no host function of that name here (or the
 *                            function is not allowed to call it)
 *   HostCallInputTooLarge    input over FNHOST_MAX_HOST_CALL_INPUT, or a
 *                            name over FNHOST_MAX_HOST_FUNCTION_NAME
 *   HostCallLimitExceeded    over FNHOST_MAX_HOST_CALLS calls, or over
 *                            FNHOST_MAX_HOST_CALL_ANSWERS bytes of answers,
 *                            in one invocation
 *   HostCallDepthExceeded    host functions that invoke functions that call
 *                            host functions, nested too deep
 *   HostFunctionPanicked     the host function failed without an answer
 *   HostFunctionUnavailable  not reachable from here (a library's pre-flight,
 *                            or a host that stopped answering)
 *   timeout                  the invocation's deadline has passed
 * and a host function's own failure carries the type it gave
 * ("HostFunctionError" when it gave none). On a 1.4 host the vtable is
 * shorter: check
 *   ctx->vtable->struct_size >= offsetof(fnhost_context_vtable, call_host)
 *                               + sizeof(void *)
 * before calling it (fnhost-api and the Go runtime do). */
#define FNHOST_HOST_CALL_AVAILABLE(ctx)                                          \
    ((ctx)->vtable->struct_size >=                                               \
     offsetof(fnhost_context_vtable, call_host) + sizeof(void *))

typedef int32_t (*fnhost_handler_fn)(const fnhost_context *ctx, fnhost_host_str payload);
typedef int32_t (*fnhost_initializer_fn)(const fnhost_context *ctx);

typedef struct fnhost_handler_entry {
    fnhost_plugin_str name; /* "Handler" in the entry "plugin.Handler" */
    fnhost_handler_fn handler;
    /* 1.3: the event the handler takes: FNHOST_EVENT_APIG for an APIG
     * trigger's HTTP event, "timer", "kafka", ... for other triggers' events,
     * FNHOST_EVENT_JSON for a JSON document of its own, FNHOST_EVENT_BYTES
     * for anything (it parses the payload itself). Empty: undeclared. */
    fnhost_plugin_str event;
} fnhost_handler_entry;

#define FNHOST_EVENT_APIG "apig"
#define FNHOST_EVENT_TIMER "timer"
/* Event sources' batches (REDIS, NATS, MQTT, RABBITMQ triggers; the
 * OPENSOURCEKAFKA trigger delivers "kafka"): JSON with "trigger_type" and
 * "records"; see `fnhost event redis|nats|mqtt|rabbitmq|kafka`. A handler
 * may answer {"batchItemFailures": [{"itemIdentifier": ID}]} to fail only
 * some records (they are retried, then dead-lettered; the rest are
 * acknowledged). */
#define FNHOST_EVENT_REDIS "redis"
#define FNHOST_EVENT_NATS "nats"
#define FNHOST_EVENT_MQTT "mqtt"
#define FNHOST_EVENT_RABBITMQ "rabbitmq"
#define FNHOST_EVENT_KAFKA "kafka"
#define FNHOST_EVENT_JSON "json"
#define FNHOST_EVENT_BYTES "bytes"

/* A handler table entry taking any payload ("bytes"). */
#define FNHOST_HANDLER(NAME, FN) { FNHOST_STR(NAME), FN, FNHOST_STR(FNHOST_EVENT_BYTES) }
/* A handler table entry declaring the event it takes (FNHOST_EVENT_*). */
#define FNHOST_HANDLER_EVENT(NAME, FN, EVENT) { FNHOST_STR(NAME), FN, FNHOST_STR(EVENT) }

typedef struct fnhost_initializer_entry {
    fnhost_plugin_str name; /* "Init" in the entry "plugin.Init" */
    fnhost_initializer_fn initializer;
} fnhost_initializer_entry;

/* Structural layout table: how the plugin's compiler laid out each ABI type.
 * The host compares it with its own and refuses any difference it cannot
 * accept, naming the type and field. Build it with FNHOST_DEFINE_LAYOUT. */
typedef struct fnhost_field_layout {
    fnhost_plugin_str name;
    uint64_t offset;
    uint64_t size;
} fnhost_field_layout;

typedef struct fnhost_type_layout {
    fnhost_plugin_str name;
    uint64_t size;
    uint64_t align;
    const fnhost_field_layout *fields;
    size_t field_count;
} fnhost_type_layout;

typedef struct fnhost_descriptor {
    uint32_t magic;          /* FNHOST_DESCRIPTOR_MAGIC; never moves */
    uint16_t abi_major;      /* FNHOST_ABI_MAJOR; never moves */
    uint16_t abi_minor;      /* FNHOST_ABI_MINOR; never moves */
    uint64_t descriptor_size; /* sizeof(fnhost_descriptor) */
    fnhost_plugin_str plugin_name;
    fnhost_plugin_str sdk;    /* what built the plugin, informational */
    const fnhost_handler_entry *handlers;
    size_t handler_count;
    const fnhost_initializer_entry *initializers; /* NULL when count is 0 */
    size_t initializer_count;
    const fnhost_type_layout *layout; /* NULL: skip the structural check */
    size_t layout_count;
    /* ---- 1.1 ---- */
    uint32_t handler_entry_size;     /* sizeof(fnhost_handler_entry) */
    uint32_t initializer_entry_size; /* sizeof(fnhost_initializer_entry) */
    uint32_t layout_entry_size;      /* sizeof(fnhost_type_layout) */
    uint32_t field_entry_size;       /* sizeof(fnhost_field_layout) */
} fnhost_descriptor;

/* ---- 1.4: a runtime's own threads -------------------------------------
 * A language runtime may make a call from a thread it did not create
 * expensive: Go attaches a runtime thread to the caller and detaches it
 * again on every such call (microseconds each, in Go 1.19), while a call
 * from C on a thread the Go runtime started costs a fraction of that. Such
 * a plugin may export
 *
 *   FNHOST_EXPORT int32_t fnhost_start_thread(fnhost_thread_entry entry, void *arg);
 *
 * and the host then runs its loops on threads the plugin starts: each call
 * asks for one thread of the plugin's runtime (a goroutine locked to its
 * thread, for Go) that calls entry(arg) exactly once; entry returns when
 * the host is done with the thread, and the thread may then end. Answer 0
 * when the thread was started; anything else and the host uses a thread of
 * its own (entry is then never called). The host's worker threads for the
 * library (its initializers, and its calls on the worker-thread path) come
 * from it, one per call of fnhost_start_thread, and leave when idle; a
 * worker process (process isolation) also serves all its calls from one
 * such thread. A call on the caller's own thread stays there. A plugin
 * that answers 0 and never calls entry leaves the call waiting until its
 * timeout (a worker process is then replaced; in process the slot is lost,
 * as a runaway's is); one that calls entry twice breaks the host in process
 * (the trust in-process plugins are given). The go-runtime package exports
 * it. */
typedef void (*fnhost_thread_entry)(void *arg);
typedef int32_t (*fnhost_start_thread_fn)(fnhost_thread_entry entry, void *arg);
#define FNHOST_START_THREAD_SYMBOL "fnhost_start_thread"

/* ---- helpers for C plugins ------------------------------------------- */

#define FNHOST__FIELD(type, field) \
    { FNHOST_STR(#field), offsetof(type, field), sizeof(((type *)0)->field) }
#ifdef __cplusplus
#define FNHOST__ALIGNOF(type) alignof(type)
#else
#define FNHOST__ALIGNOF(type) _Alignof(type)
#endif
#define FNHOST__TYPE(cname, fields) \
    { FNHOST_STR(#cname), sizeof(cname), FNHOST__ALIGNOF(cname), fields, \
      sizeof(fields) / sizeof(fields[0]) }

/* Defines `static const fnhost_type_layout NAME[]` describing every ABI type
 * as this compiler lays it out. */
#define FNHOST_DEFINE_LAYOUT(NAME)                                                    \
    static const fnhost_field_layout NAME##_host_str[] = {                            \
        FNHOST__FIELD(fnhost_host_str, ptr), FNHOST__FIELD(fnhost_host_str, len)};    \
    static const fnhost_field_layout NAME##_plugin_str[] = {                          \
        FNHOST__FIELD(fnhost_plugin_str, ptr), FNHOST__FIELD(fnhost_plugin_str, len)};\
    static const fnhost_field_layout NAME##_context[] = {                             \
        FNHOST__FIELD(fnhost_context, vtable), FNHOST__FIELD(fnhost_context, host)};  \
    static const fnhost_field_layout NAME##_vtable[] = {                              \
        FNHOST__FIELD(fnhost_context_vtable, struct_size),                            \
        FNHOST__FIELD(fnhost_context_vtable, reserved),                               \
        FNHOST__FIELD(fnhost_context_vtable, get_field),                              \
        FNHOST__FIELD(fnhost_context_vtable, remaining_time_ms),                      \
        FNHOST__FIELD(fnhost_context_vtable, deadline_unix_ms),                       \
        FNHOST__FIELD(fnhost_context_vtable, running_time_s),                         \
        FNHOST__FIELD(fnhost_context_vtable, memory_size_mb),                         \
        FNHOST__FIELD(fnhost_context_vtable, cpu_millicores),                         \
        FNHOST__FIELD(fnhost_context_vtable, get_user_data),                          \
        FNHOST__FIELD(fnhost_context_vtable, log),                                    \
        FNHOST__FIELD(fnhost_context_vtable, set_output),                             \
        FNHOST__FIELD(fnhost_context_vtable, set_error),                              \
        FNHOST__FIELD(fnhost_context_vtable, report_memory_peak),                     \
        FNHOST__FIELD(fnhost_context_vtable, call_host)};                             \
    static const fnhost_field_layout NAME##_handler_entry[] = {                       \
        FNHOST__FIELD(fnhost_handler_entry, name),                                    \
        FNHOST__FIELD(fnhost_handler_entry, handler),                                 \
        FNHOST__FIELD(fnhost_handler_entry, event)};                                  \
    static const fnhost_field_layout NAME##_initializer_entry[] = {                   \
        FNHOST__FIELD(fnhost_initializer_entry, name),                                \
        FNHOST__FIELD(fnhost_initializer_entry, initializer)};                        \
    static const fnhost_field_layout NAME##_field_layout[] = {                        \
        FNHOST__FIELD(fnhost_field_layout, name),                                     \
        FNHOST__FIELD(fnhost_field_layout, offset),                                   \
        FNHOST__FIELD(fnhost_field_layout, size)};                                    \
    static const fnhost_field_layout NAME##_type_layout[] = {                         \
        FNHOST__FIELD(fnhost_type_layout, name),                                      \
        FNHOST__FIELD(fnhost_type_layout, size),                                      \
        FNHOST__FIELD(fnhost_type_layout, align),                                     \
        FNHOST__FIELD(fnhost_type_layout, fields),                                    \
        FNHOST__FIELD(fnhost_type_layout, field_count)};                              \
    static const fnhost_field_layout NAME##_descriptor[] = {                          \
        FNHOST__FIELD(fnhost_descriptor, magic),                                      \
        FNHOST__FIELD(fnhost_descriptor, abi_major),                                  \
        FNHOST__FIELD(fnhost_descriptor, abi_minor),                                  \
        FNHOST__FIELD(fnhost_descriptor, descriptor_size),                            \
        FNHOST__FIELD(fnhost_descriptor, plugin_name),                                \
        FNHOST__FIELD(fnhost_descriptor, sdk),                                        \
        FNHOST__FIELD(fnhost_descriptor, handlers),                                   \
        FNHOST__FIELD(fnhost_descriptor, handler_count),                              \
        FNHOST__FIELD(fnhost_descriptor, initializers),                               \
        FNHOST__FIELD(fnhost_descriptor, initializer_count),                          \
        FNHOST__FIELD(fnhost_descriptor, layout),                                     \
        FNHOST__FIELD(fnhost_descriptor, layout_count),                               \
        FNHOST__FIELD(fnhost_descriptor, handler_entry_size),                         \
        FNHOST__FIELD(fnhost_descriptor, initializer_entry_size),                     \
        FNHOST__FIELD(fnhost_descriptor, layout_entry_size),                          \
        FNHOST__FIELD(fnhost_descriptor, field_entry_size)};                          \
    static const fnhost_type_layout NAME[] = {                                        \
        FNHOST__TYPE(fnhost_host_str, NAME##_host_str),                               \
        FNHOST__TYPE(fnhost_plugin_str, NAME##_plugin_str),                           \
        FNHOST__TYPE(fnhost_context, NAME##_context),                                 \
        FNHOST__TYPE(fnhost_context_vtable, NAME##_vtable),                           \
        FNHOST__TYPE(fnhost_handler_entry, NAME##_handler_entry),                     \
        FNHOST__TYPE(fnhost_initializer_entry, NAME##_initializer_entry),             \
        FNHOST__TYPE(fnhost_field_layout, NAME##_field_layout),                       \
        FNHOST__TYPE(fnhost_type_layout, NAME##_type_layout),                         \
        FNHOST__TYPE(fnhost_descriptor, NAME##_descriptor)}

#if defined(__GNUC__) || defined(__clang__)
#define FNHOST_EXPORT __attribute__((visibility("default")))
#else
#define FNHOST_EXPORT
#endif

/* The four 1.1 element sizes, for a descriptor written out by hand. */
#define FNHOST_ENTRY_SIZES                                                       \
    (uint32_t)sizeof(fnhost_handler_entry), (uint32_t)sizeof(fnhost_initializer_entry), \
        (uint32_t)sizeof(fnhost_type_layout), (uint32_t)sizeof(fnhost_field_layout)

/* C++ gives a namespace-scope const internal linkage: the descriptor is
 * declared extern "C" first so that the host finds it by its C name. */
#ifdef __cplusplus
#define FNHOST__DECLARE_DESCRIPTOR \
    extern "C" FNHOST_EXPORT const fnhost_descriptor fnhost_plugin_descriptor;
#define FNHOST__DEFINE_EXPORT /* the declaration carries the visibility */
#else
#define FNHOST__DECLARE_DESCRIPTOR
#define FNHOST__DEFINE_EXPORT FNHOST_EXPORT
#endif

/* Defines the exported descriptor. HANDLERS and (unless NULL) INITIALIZERS
 * are static arrays; LAYOUT is the array FNHOST_DEFINE_LAYOUT defined. */
#define FNHOST_EXPORT_DESCRIPTOR(NAME, HANDLERS, INITIALIZERS, INITIALIZER_COUNT, LAYOUT) \
    FNHOST__DECLARE_DESCRIPTOR                                                           \
    FNHOST__DEFINE_EXPORT const fnhost_descriptor fnhost_plugin_descriptor = {                   \
        FNHOST_DESCRIPTOR_MAGIC, FNHOST_ABI_MAJOR, FNHOST_ABI_MINOR,                     \
        sizeof(fnhost_descriptor), FNHOST_STR(NAME), FNHOST_STR("fnhost.h 1.5"),          \
        HANDLERS, sizeof(HANDLERS) / sizeof(HANDLERS[0]),                                \
        INITIALIZERS, INITIALIZER_COUNT,                                                 \
        LAYOUT, sizeof(LAYOUT) / sizeof(LAYOUT[0]), FNHOST_ENTRY_SIZES}

#ifdef __cplusplus
}
#endif

#endif /* FNHOST_H */
