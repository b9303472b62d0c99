/* The host_call benchmark's handler: calls the host function "echo" with
 * a 64-byte input as many times as the payload says (a decimal count),
 * checks each answer's length, and answers the number of calls made. The
 * benchmark divides an invocation's time by that count, so the
 * invocation's own cost is spread over many calls. */
#include <stdlib.h>
#include <string.h>
#include "fnhost.h"

static int32_t host_loop(const fnhost_context *ctx, fnhost_host_str p) {
    char digits[24] = {0};
    memcpy(digits, p.ptr, p.len < sizeof digits - 1 ? p.len : sizeof digits - 1);
    long n = strtol(digits, NULL, 10);
    uint8_t input[64];
    memset(input, 'x', sizeof input);
    for (long i = 0; i < n; i++) {
        fnhost_host_str out = {0}, type = {0};
        int32_t status = ctx->vtable->call_host(ctx->host, (fnhost_plugin_str)FNHOST_STR("echo"),
                                                (fnhost_plugin_str){input, sizeof input}, &out, &type);
        if (status != FNHOST_STATUS_OK || out.len != sizeof input) {
            ctx->vtable->set_error(ctx->host, (fnhost_plugin_str)FNHOST_STR("BenchError"),
                                   (fnhost_plugin_str){type.ptr, type.len});
            return FNHOST_STATUS_ERROR;
        }
    }
    ctx->vtable->set_output(ctx->host, FNHOST_OUTPUT_TEXT, (fnhost_plugin_str){p.ptr, p.len});
    return FNHOST_STATUS_OK;
}

FNHOST_DEFINE_LAYOUT(layout);
static const fnhost_handler_entry handlers[] = {FNHOST_HANDLER("Handler", host_loop)};
FNHOST_EXPORT_DESCRIPTOR("host_loop", handlers, NULL, 0, layout);
