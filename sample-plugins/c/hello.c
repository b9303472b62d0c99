/*
 * hello: an fnhost plugin written in C against include/fnhost.h.
 *
 *   cc -shared -fPIC -O2 -I plugin-api/include -o hello.so sample-plugins/c/hello.c
 *   fnhost invoke hello.Handler --code-dir . --data '{}' --user-data NAME=C
 *
 * Handlers:
 *   Handler  returns JSON with the request id, function name, user data NAME,
 *            memory and CPU, and logs one line.
 *   Echo     returns the payload as bytes.
 *   Fail     fails with errorType "CError".
 * Initializer:
 *   Init     logs a line and counts its runs.
 */
#include <stdio.h>
#include <string.h>

#include "fnhost.h"

static int init_runs = 0;

static fnhost_plugin_str cstr(const char *s) {
    fnhost_plugin_str out = {(const uint8_t *)s, strlen(s)};
    return out;
}

static int32_t handler(const fnhost_context *ctx, fnhost_host_str payload) {
    const fnhost_context_vtable *vt = ctx->vtable;
    fnhost_host_str request_id = vt->get_field(ctx->host, FNHOST_FIELD_REQUEST_ID);
    fnhost_host_str function = vt->get_field(ctx->host, FNHOST_FIELD_FUNCTION_NAME);
    fnhost_host_str name = {NULL, 0};
    int found = vt->get_user_data(ctx->host, cstr("NAME"), &name);

    char line[128];
    snprintf(line, sizeof line, "hello from C, %zu payload bytes", payload.len);
    vt->log(ctx->host, FNHOST_LEVEL_INFO, cstr(line));

    /* Strings are pointer + length, never NUL-terminated: print with %.*s. */
    char body[1024];
    int n = snprintf(body, sizeof body,
                     "{\"language\":\"C\",\"request_id\":\"%.*s\",\"function_name\":\"%.*s\","
                     "\"user_data\":\"%.*s\",\"found\":%s,\"memory_size_mb\":%u,"
                     "\"cpu_millicores\":%u,\"init_runs\":%d}",
                     (int)request_id.len, (const char *)request_id.ptr,
                     (int)function.len, (const char *)function.ptr,
                     (int)name.len, found ? (const char *)name.ptr : "",
                     found ? "true" : "false",
                     vt->memory_size_mb(ctx->host), vt->cpu_millicores(ctx->host), init_runs);
    fnhost_plugin_str out = {(const uint8_t *)body, (size_t)n};
    /* The host copies `body` before set_output returns: a stack buffer is fine. */
    vt->set_output(ctx->host, FNHOST_OUTPUT_JSON, out);
    return FNHOST_STATUS_OK;
}

static int32_t echo(const fnhost_context *ctx, fnhost_host_str payload) {
    fnhost_plugin_str out = {payload.ptr, payload.len};
    ctx->vtable->set_output(ctx->host, FNHOST_OUTPUT_BYTES, out);
    return FNHOST_STATUS_OK;
}

static int32_t fail(const fnhost_context *ctx, fnhost_host_str payload) {
    (void)payload;
    ctx->vtable->set_error(ctx->host, cstr("CError"), cstr("failed in C"));
    return FNHOST_STATUS_ERROR;
}

static int32_t init(const fnhost_context *ctx) {
    init_runs++;
    ctx->vtable->log(ctx->host, FNHOST_LEVEL_INFO, cstr("C initializer ran"));
    return FNHOST_STATUS_OK;
}

static const fnhost_handler_entry handlers[] = {
    FNHOST_HANDLER("Handler", handler),
    FNHOST_HANDLER("Echo", echo),
    FNHOST_HANDLER("Fail", fail),
};
static const fnhost_initializer_entry initializers[] = {
    {FNHOST_STR("Init"), init},
};

FNHOST_DEFINE_LAYOUT(layout);
FNHOST_EXPORT_DESCRIPTOR("hello", handlers, initializers, 1, layout);
