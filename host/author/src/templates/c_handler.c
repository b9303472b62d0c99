/*
 * {{name}}: an fnhost handler in C against fnhost.h. `fnhost.toml`
 * describes the function; `make` builds {{lib}}.so; `fnhost invoke --data '{}'`
 * runs it.
 */
#include <stdio.h>
#include <string.h>

#include "fnhost.h"

static int init_runs = 0;

static fnhost_plugin_str cstr(const char *s) {
    fnhost_plugin_str out = {(const uint8_t *)s, strlen(s)};
    return out;
}

/* Answers JSON with the request id and the GREETING user data. Strings from
 * the host are pointer + length, never NUL-terminated: print with %.*s. */
static int32_t handler(const fnhost_context *ctx, fnhost_host_str payload) {
    const fnhost_context_vtable *vt = ctx->vtable;
    fnhost_host_str request_id = vt->get_field(ctx->host, FNHOST_FIELD_REQUEST_ID);
    fnhost_host_str greeting = {NULL, 0};
    int found = vt->get_user_data(ctx->host, cstr("GREETING"), &greeting);

    char line[128];
    snprintf(line, sizeof line, "{{name}} got %zu payload bytes", payload.len);
    vt->log(ctx->host, FNHOST_LEVEL_INFO, cstr(line));

    char body[1024];
    int n = snprintf(body, sizeof body, "{\"message\":\"%.*s from C\",\"request_id\":\"%.*s\",\"init_runs\":%d}",
                     found ? (int)greeting.len : 5, found ? (const char *)greeting.ptr : "hello",
                     (int)request_id.len, (const char *)request_id.ptr, init_runs);
    if (n < 0 || (size_t)n >= sizeof body) {
        vt->set_error(ctx->host, cstr("ResponseTooLong"), cstr("the answer did not fit"));
        return FNHOST_STATUS_ERROR;
    }
    /* The host copies `body` before set_output returns: a stack buffer is fine. */
    fnhost_plugin_str out = {(const uint8_t *)body, (size_t)n};
    vt->set_output(ctx->host, FNHOST_OUTPUT_JSON, out);
    return FNHOST_STATUS_OK;
}

/* Runs once per instance, before its first call. */
static int32_t init(const fnhost_context *ctx) {
    init_runs++;
    ctx->vtable->log(ctx->host, FNHOST_LEVEL_INFO, cstr("{{name}} initialized"));
    return FNHOST_STATUS_OK;
}

static const fnhost_handler_entry handlers[] = {
    FNHOST_HANDLER("Handler", handler),
};
static const fnhost_initializer_entry initializers[] = {
    {FNHOST_STR("Init"), init},
};

FNHOST_DEFINE_LAYOUT(layout);
FNHOST_EXPORT_DESCRIPTOR("{{name}}", handlers, initializers, 1, layout);
