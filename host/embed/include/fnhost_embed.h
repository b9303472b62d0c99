/*
 * fnhost_embed.h: the C API of fnhost, for programs that embed it
 * (libfnhost_embed.so / libfnhost_embed.a). The plugin side of the boundary
 * is fnhost.h; this header is the host side.
 *
 * Ownership, visible in each function's comment:
 *  - Objects (fnhost_runtime, fnhost_function, fnhost_result) are created
 *    by this library and freed by the caller with their own free function,
 *    exactly once. Every free accepts NULL.
 *  - Strings returned as `const char *` are owned by the object they come
 *    from and live until that object is freed. Strings returned as
 *    `char *` (error messages, JSON) are the caller's: free them with
 *    fnhost_string_free.
 *  - Strings passed in are NUL-terminated UTF-8, read during the call only.
 *    Payloads are pointer + length (binary is fine), read during the call.
 *
 * Threads: every function may be called from any thread, concurrently; a
 * runtime and its functions may be shared between threads. A function
 * handle must not be freed while another thread invokes it, nor a runtime
 * while its functions are in use.
 *
 * Errors: nothing unwinds out of this library; a panic inside becomes an
 * error result or an error message. Invalid UTF-8, invalid JSON or unknown
 * keys in a configuration are error messages, never crashes.
 *
 * Worker processes: process isolation and the pre-flight every new library
 * gets (a throwaway process loads it before the host maps it) run the
 * `fnhost` executable. It is "worker_executable" in the runtime's
 * configuration, else $FNHOST_WORKER_EXECUTABLE, else `fnhost` next to
 * libfnhost_embed.so, else `fnhost` on the PATH. A program can be its own
 * worker executable by calling fnhost_worker_main_if_worker() first thing
 * in main().
 */
#ifndef FNHOST_EMBED_H
#define FNHOST_EMBED_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fnhost_runtime fnhost_runtime;   /* opaque */
typedef struct fnhost_function fnhost_function; /* opaque */
typedef struct fnhost_result fnhost_result;     /* opaque */

/* The library's version and the plugin ABI it runs, e.g. "0.1.0 (ABI 1.2)".
 * Static: never freed. */
const char *fnhost_version(void);

/* A runtime. config_json may be NULL (defaults); keys: "cache_dir",
 * "worker_executable", "max_worker_processes", "sandbox" (the sandbox of
 * worker processes: "strict", every layer or the runtime is refused;
 * "auto", the default, every layer this kernel allows; "off", crashes and
 * hangs contained but not a hostile handler), "sandbox_allow_paths" (host
 * directories a function may see read-only). On failure returns NULL
 * and, when error_out is not NULL, sets *error_out to a message the caller
 * frees with fnhost_string_free. */
fnhost_runtime *fnhost_runtime_new(const char *config_json, char **error_out);
/* Frees a runtime (NULL is fine). Its functions must be freed first. */
void fnhost_runtime_free(fnhost_runtime *rt);
/* fnhost's own log records: deploys and swaps (3, info), timeouts and
 * worker crashes (2, warn), refused libraries and failed initializers
 * (1, error); not the functions' logs, which are in each result. None are
 * shown by default. Sets the process-wide callback that receives those at
 * max_level and more severe (1 error, 2 warn, 3 info, 4 debug, 5 trace; 0
 * or less: none); NULL removes it. The callback runs on one thread of this
 * library, one record at a time and in the order they were logged, shortly
 * after each is logged, with NUL-terminated strings that live for the call
 * only and with `user` as given. No lock of this library is held while it
 * runs: it may call any function of this header (a record it causes is
 * delivered after it returns). At most 10,000 records wait for it; past
 * that, records are dropped and the next one delivered says how many.
 * Returns 0, or -1 when the process's Rust `log` logger is already another
 * one (then nothing changes). */
typedef void (*fnhost_log_fn)(int level, const char *target, const char *message, void *user);
int fnhost_set_log_callback(fnhost_log_fn callback, void *user, int max_level);
/* Waits up to timeout_ms until every record logged before the call has
 * reached the callback. 0 when it has; -1 on timeout, or when called from
 * the callback itself (which would wait for itself). */
int fnhost_log_flush(int timeout_ms);

/* The runtime's counters as JSON ({"invocations", "timeouts",
 * "runaway_invocations", "worker_threads", "libraries_mapped",
 * "worker_processes"}); the caller frees it with fnhost_string_free. NULL
 * when rt is NULL. */
char *fnhost_runtime_stats_json(const fnhost_runtime *rt);

/* Loads a function. Keys: "entry" (required, NAME.HANDLER), "code_dir"
 * (required), "name", "initializer", "timeout_s", "memory_mb", "user_data"
 * (an object of strings), "isolation" ("auto", the default: "process" for
 * a Go library, "in-process" otherwise | "inline" | "in-process" |
 * "process"), "sandbox" (what its sandboxed worker may reach beyond the
 * minimum: {"network": "none" | "host", "allow_outbound": ["ADDR:PORT",
 * "CIDR:PORT"], "tmp_mb": 512, "env": ["NAME"], "read_only_paths":
 * ["/DIR"]}), "host_functions" (the host functions it may call, e.g.
 * ["cache.get"]: any other name answers HostFunctionNotFound as a missing
 * one does; absent, it may call every host function of the runtime). In
 * process and inline, the handler is trusted: it shares
 * this program's memory; in process isolation nothing it does reaches this
 * program. NULL on failure, with *error_out set as for
 * fnhost_runtime_new (a bad library's message names what is wrong). */
fnhost_function *fnhost_function_load(fnhost_runtime *rt, const char *config_json, char **error_out);
/* Frees a function (NULL is fine); not while another thread invokes it. */
void fnhost_function_free(fnhost_function *f);
/* Invokes a loaded function on a worker thread; the caller is answered
 * `timeout` at the deadline even if the handler keeps running. Never NULL for valid arguments: the
 * function's own failures and the platform's (payload too large, too many
 * requests) are error results with their error type. */
fnhost_result *fnhost_function_invoke(const fnhost_function *f, const uint8_t *payload, size_t payload_len);
/* The same, run on the calling thread: no hand-off to a worker thread (the
 * fastest call), but a handler that overruns its timeout is answered
 * `timeout` only when it returns (with process isolation, the worker is
 * still killed at the deadline). */
fnhost_result *fnhost_function_invoke_on_current_thread(const fnhost_function *f, const uint8_t *payload,
                                                        size_t payload_len);

/* The registry: deploys (creates, or hot-swaps with in-flight calls
 * finishing on the old code) a named function, from the same keys as
 * fnhost_function_load ("name" required). 0 on success, -1 with *error_out
 * set on failure (the previous code keeps serving). */
int fnhost_deploy(fnhost_runtime *rt, const char *config_json, char **error_out);
/* Deletes function `name` with its versions and aliases; calls in flight
 * finish on their code. 0, or -1 with *error_out set (no such function). A
 * deploy racing the delete either happens before it (and is deleted) or
 * after it (and creates the function anew), never into the deleted one. */
int fnhost_delete(fnhost_runtime *rt, const char *name, char **error_out);
/* Publishes the function's current code as a version (version NULL: v1,
 * v2, ...). 0 or -1 as fnhost_deploy. */
int fnhost_publish_version(fnhost_runtime *rt, const char *name, const char *version, char **error_out);
/* Creates or updates an alias of function `name`: alias_json is
 * {"name": "prod", "version": "v1", "weights": {"v2": 10}} (weights:
 * percentages of calls sent to other versions). 0 or -1 as fnhost_deploy. */
int fnhost_set_alias(fnhost_runtime *rt, const char *name, const char *alias_json, char **error_out);
/* Invokes "name", "name:VERSION" or "name:ALIAS" through the registry.
 * Never NULL: an unknown function is an error result (FunctionNotFound). */
fnhost_result *fnhost_invoke(fnhost_runtime *rt, const char *target, const uint8_t *payload, size_t payload_len);

/* ---- Calls that do not block ----------------------------------------------
 * fnhost_invoke_start starts an invocation of "name", "name:VERSION" or
 * "name:ALIAS" and returns at once with a call handle; the call runs on a
 * thread of the runtime. Wait for it with a timeout, poll it, be called
 * back when it ends, or cancel it; free the handle with fnhost_call_free.
 *
 * options_json (NULL: none) gives this one call, beside its payload:
 *   "request_id"   a UUID: the invocation's request id (its result says it)
 *   "trace_id"     32 lowercase hex digits, or
 *   "traceparent"  a W3C traceparent, whose trace the invocation joins
 *   "user_data"    an object of strings, read before the function's own
 *                  (at most 64 KiB in all)
 *   "deadline_ms"  a timeout sooner than the function's (milliseconds)
 * Unknown keys and bad values end the call at once with an error result
 * of type "InvalidOptions"; an unknown function with "FunctionNotFound".
 *
 * Cancelling answers the call "Cancelled" at once. A call in a worker
 * process (process isolation) is ended with its worker. A handler in
 * process cannot be stopped safely: it keeps running with its result
 * discarded, reads FNHOST_FIELD_CANCELLED ("1") through its context
 * (ctx.is_cancelled() in Rust) so that a cooperative handler stops, and
 * counts as a runaway until it returns. */
typedef struct fnhost_call fnhost_call; /* opaque */
/* Starts a call. Never NULL: a call that cannot start is a handle that has
 * ended with an error result. The payload is copied before return. */
fnhost_call *fnhost_invoke_start(fnhost_runtime *rt, const char *target, const uint8_t *payload, size_t len,
                                 const char *options_json);
/* The same, with a value of the program's that the host functions this
 * invocation calls receive (fnhost_host_call_embedder_value); never read or
 * freed by this library. */
fnhost_call *fnhost_invoke_start_with_value(fnhost_runtime *rt, const char *target, const uint8_t *payload,
                                            size_t len, const char *options_json, void *embedder_value);
/* Waits up to timeout_ms (negative: no limit) for the call to end. 0 when
 * it has ended: *result_out (when result_out is not NULL) gets its result,
 * which the caller frees with fnhost_result_free; the result is handed out
 * once, later calls set *result_out to NULL. 1 when it is still running
 * (*result_out untouched); -1 when call is NULL. */
int fnhost_call_wait(fnhost_call *call, int64_t timeout_ms, fnhost_result **result_out);
/* fnhost_call_wait without waiting. */
int fnhost_call_poll(fnhost_call *call, fnhost_result **result_out);
/* Calls fn(user, call) once when the call ends: on the thread that ended
 * it, or at once on this thread if it has. The callback may take the
 * result (fnhost_call_poll) and may free the call; fnhost_call_free from
 * another thread waits for a callback that runs and stops one that has not
 * run yet. 0, or -1 for NULL arguments. */
typedef void (*fnhost_call_done_fn)(void *user, fnhost_call *call);
int fnhost_call_on_complete(fnhost_call *call, fnhost_call_done_fn fn, void *user);
/* Cancels the call. 0 when it was running (its result is "Cancelled"), 1
 * when it had ended already or was cancelled before, -1 when call is NULL. */
int fnhost_call_cancel(fnhost_call *call);
/* Frees the handle (NULL is fine). A call still running goes on to its end
 * and its result is discarded (cancel it first to stop it). */
void fnhost_call_free(fnhost_call *call);

/* Results. A NULL result reads as an error with no body. */
int fnhost_result_is_error(const fnhost_result *r);
/* The body (the result, or the error JSON {"errorMessage","errorType"});
 * *len_out gets its length when len_out is not NULL. */
const uint8_t *fnhost_result_body(const fnhost_result *r, size_t *len_out);
/* "application/json", "text/plain; charset=utf-8",
 * "application/octet-stream", or NULL for an empty body. */
const char *fnhost_result_content_type(const fnhost_result *r);
/* The error type ("FunctionReturnError", "timeout", ...); NULL on success. */
const char *fnhost_result_error_type(const fnhost_result *r);
/* The request id (a UUID; empty for platform failures before a call). */
const char *fnhost_result_request_id(const fnhost_result *r);
/* {"duration","billingDuration","memorySize","memoryUsed"}. */
const char *fnhost_result_summary_json(const fnhost_result *r);
/* The last 4 KB of the invocation's log. */
const char *fnhost_result_log(const fnhost_result *r);
/* Frees a result and every string it handed out (NULL is fine). */
void fnhost_result_free(fnhost_result *r);

/* Frees a string this library gave the caller (NULL is fine). */
void fnhost_string_free(char *s);

/* ---- Host functions --------------------------------------------------------
 * A host function is a callback of this program that plugins call by name
 * through their context (fnhost.h: ctx->vtable->call_host, ABI 1.5;
 * ctx.call_host in fnhost-api; CallHost in the Go runtime). Register it
 * before or after functions load; every function of the runtime may call
 * it (the callback decides per caller: fnhost_host_call_function says who
 * calls). A plugin in a worker process (process isolation, sandboxed)
 * calls them too: the call crosses the worker's channel and the callback
 * runs in this process, on the thread that waits for that invocation.
 *
 * The callback:
 *   int fn(void *user, fnhost_host_call *call, const uint8_t *input, size_t input_len)
 *  - runs on the plugin's thread, while the plugin waits: any thread,
 *    several at once (for several invocations), so it and `user` must be
 *    thread-safe. It counts against the calling invocation's deadline
 *    (fnhost_host_call_remaining_ms). In process, past the deadline the
 *    invocation's caller is answered `timeout` while the callback runs on;
 *    for a worker process (process isolation) the callback runs on the
 *    thread that waits for the call, so the caller is answered `timeout`
 *    only when the callback returns: a callback whose time depends on its
 *    input should bound itself by fnhost_host_call_remaining_ms.
 *  - `input` is lent for the callback only (at most 6 MiB; a plugin's
 *    larger input is refused before the callback runs). Copy what you keep.
 *  - `call` is valid during the callback only; every fnhost_host_call_*
 *    function takes it, on the callback's thread.
 *  - Returns 0 for success: the answer is what fnhost_host_call_set_output
 *    set last (empty when never called). Anything else, or a call of
 *    fnhost_host_call_set_error, is a failure: the plugin gets the type and
 *    message set (type "HostFunctionError" when none was set).
 *  - It must return normally: no longjmp out of it, no C++ exception
 *    through it. It may call any function of this header, including
 *    invoking functions whose plugins call host functions (nesting is
 *    bounded: 8 deep, then HostCallDepthExceeded).
 * `user` is passed back as given and never freed by this library. It must
 * stay valid until fnhost_host_function_unregister of the name has
 * returned, or fnhost_runtime_free has: both wait for calls of the
 * callback already running, and no call starts after them. */
typedef struct fnhost_host_call fnhost_host_call; /* valid during the callback */
typedef int (*fnhost_host_fn)(void *user, fnhost_host_call *call, const uint8_t *input, size_t input_len); /* 0 ok */
/* Registers fn under `name` (1 to 128 bytes of ASCII letters, digits and
 * ._-:/). 0, or -1 with *error_out set (a bad name, a name registered
 * already, NULL fn). */
int fnhost_host_function_register(fnhost_runtime *rt, const char *name, fnhost_host_fn fn, void *user,
                                  char **error_out);
/* Withdraws the host function `name` (later calls answer
 * HostFunctionNotFound) and waits for its calls running on other threads.
 * 1 when it was registered, 0 when not; -1 for NULL arguments, or when
 * called from that function's own callback (which would wait for itself;
 * nothing changes then). */
int fnhost_host_function_unregister(fnhost_runtime *rt, const char *name);
/* The calling function's name; owned by `call`. */
const char *fnhost_host_call_function(const fnhost_host_call *call);
/* The version it serves ("latest" or a published version); owned by `call`. */
const char *fnhost_host_call_version(const fnhost_host_call *call);
/* The calling invocation's request id; owned by `call`. */
const char *fnhost_host_call_request_id(const fnhost_host_call *call);
/* Milliseconds left before the calling invocation's deadline when the
 * callback started. */
int64_t fnhost_host_call_remaining_ms(const fnhost_host_call *call);
/* The embedder_value the calling invocation was started with
 * (fnhost_invoke_start_with_value); NULL when none. */
void *fnhost_host_call_embedder_value(const fnhost_host_call *call);
/* Sets the answer: `len` bytes at `data`, copied before return (a second
 * call replaces the first). */
void fnhost_host_call_set_output(fnhost_host_call *call, const uint8_t *data, size_t len);
/* Makes the call a failure of type `error_type` (NULL or "":
 * "HostFunctionError") with `message` (NULL: empty); both copied. */
void fnhost_host_call_set_error(fnhost_host_call *call, const char *error_type, const char *message);

/* When the program was started as an fnhost worker process (argv[1] is
 * "__worker"), runs the worker and exits; otherwise returns at once. Call
 * it first in main() to let the program be its own worker_executable. */
void fnhost_worker_main_if_worker(int argc, const char *const *argv);

#ifdef __cplusplus
}
#endif

#endif /* FNHOST_EMBED_H */
