/*
 * The C half of the Go runtime bridge: the fnhost descriptor a Go c-shared
 * library exports, the handler trampoline, the constructor that runs the
 * program's main() (and so its runtime.Register call) while the library is
 * loaded, and the calls into the host's context vtable, which Go cannot make
 * through a C function pointer itself.
 */
#include <stdio.h>
#include <string.h>

#include "fnhost.h"
#include "_cgo_export.h"

#define FNHOST_GO_NAME_MAX 128

static uint8_t handler_name[FNHOST_GO_NAME_MAX];
static uint8_t plugin_name[FNHOST_GO_NAME_MAX];

static int32_t go_handler(const fnhost_context *ctx, fnhost_host_str payload) {
    return fnhostGoInvoke((fnhost_context *)ctx, (uint8_t *)payload.ptr, payload.len);
}

/* "Handler", and the registered Go function's own name once main() ran.
 * A Go handler takes the payload's bytes and parses its event itself:
 * "bytes". */
static fnhost_handler_entry handlers[2] = {
    FNHOST_HANDLER("Handler", go_handler),
    {{handler_name, 0}, go_handler, FNHOST_STR(FNHOST_EVENT_BYTES)},
};

FNHOST_DEFINE_LAYOUT(layout);

/* Not const: the constructor fills in the handler count and names before
 * the host reads it (dlopen returns only after constructors ran). */
FNHOST_EXPORT fnhost_descriptor fnhost_plugin_descriptor = {
    FNHOST_DESCRIPTOR_MAGIC,
    FNHOST_ABI_MAJOR,
    FNHOST_ABI_MINOR,
    sizeof(fnhost_descriptor),
    {plugin_name, 0},
    FNHOST_STR("huaweicloud.com/go-runtime (fnhost) 1.0"),
    handlers,
    0,
    NULL,
    0,
    layout,
    sizeof(layout) / sizeof(layout[0]),
    FNHOST_ENTRY_SIZES,
};

static size_t copy_name(uint8_t *to, const uint8_t *from, size_t len) {
    if (len > FNHOST_GO_NAME_MAX) len = FNHOST_GO_NAME_MAX;
    memcpy(to, from, len);
    return len;
}

void fnhost_go_publish(const uint8_t *plugin, size_t plugin_len, const uint8_t *name,
                       size_t name_len, int registered) {
    fnhost_plugin_descriptor.plugin_name.len = copy_name(plugin_name, plugin, plugin_len);
    handlers[1].name.len = copy_name(handler_name, name, name_len);
    if (!registered) {
        fnhost_plugin_descriptor.handler_count = 0;
    } else if (handlers[1].name.len == 0) {
        fnhost_plugin_descriptor.handler_count = 1;
    } else {
        fnhost_plugin_descriptor.handler_count = 2;
    }
}

/* ABI 1.4: a worker process serves this library's calls from a thread the
 * Go runtime started (a goroutine locked to its thread, fnhostGoStartThread),
 * so that no call enters Go from a thread Go did not create: Go 1.19
 * attaches a runtime thread to such a caller and detaches it again on every
 * call, the larger part of a process-isolated Go call's cost. */
FNHOST_EXPORT int32_t fnhost_start_thread(fnhost_thread_entry entry, void *arg) {
    return fnhostGoStartThread(entry, arg);
}

/* Called from that goroutine: the host's loop, until the worker ends. */
void fnhost_go_run_entry(fnhost_thread_entry entry, void *arg) { entry(arg); }

/* Runs after the Go runtime's own constructor (the Go linker puts its object
 * first); calling into Go waits until the runtime and every package's init
 * are done. */
__attribute__((constructor)) static void fnhost_go_start(void) { fnhostGoStart(); }

fnhost_host_str fnhost_go_field(fnhost_context *c, uint32_t field) {
    return c->vtable->get_field(c->host, field);
}
int64_t fnhost_go_remaining_ms(fnhost_context *c) { return c->vtable->remaining_time_ms(c->host); }
uint32_t fnhost_go_running_s(fnhost_context *c) { return c->vtable->running_time_s(c->host); }
uint32_t fnhost_go_memory_mb(fnhost_context *c) { return c->vtable->memory_size_mb(c->host); }
uint32_t fnhost_go_cpu(fnhost_context *c) { return c->vtable->cpu_millicores(c->host); }
int32_t fnhost_go_user_data(fnhost_context *c, const uint8_t *key, size_t len,
                            fnhost_host_str *value) {
    fnhost_plugin_str k = {key, len};
    return c->vtable->get_user_data(c->host, k, value);
}
void fnhost_go_log(fnhost_context *c, uint32_t level, const uint8_t *msg, size_t len) {
    fnhost_plugin_str m = {msg, len};
    c->vtable->log(c->host, level, m);
}
void fnhost_go_output(fnhost_context *c, uint32_t kind, const uint8_t *body, size_t len) {
    fnhost_plugin_str b = {body, len};
    c->vtable->set_output(c->host, kind, b);
}
/* -1 when the host's vtable has no call_host (older than ABI 1.5). */
int32_t fnhost_go_call_host(fnhost_context *c, const uint8_t *name, size_t name_len, const uint8_t *input,
                            size_t input_len, fnhost_host_str *output, fnhost_host_str *error_type) {
    if (!FNHOST_HOST_CALL_AVAILABLE(c)) return -1;
    fnhost_plugin_str n = {name, name_len}, in = {input, input_len};
    return c->vtable->call_host(c->host, n, in, output, error_type);
}
void fnhost_go_error(fnhost_context *c, const uint8_t *type, size_t type_len, const uint8_t *msg,
                     size_t msg_len) {
    fnhost_plugin_str t = {type, type_len}, m = {msg, msg_len};
    c->vtable->set_error(c->host, t, m);
}
void fnhost_go_memory(fnhost_context *c, uint64_t peak) {
    c->vtable->report_memory_peak(c->host, peak);
}
