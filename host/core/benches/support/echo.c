/* A C echo: the baseline of the Go benchmark's process-isolated rounds (the
 * same transport, a handler that costs next to nothing). */
#include "fnhost.h"

static int32_t echo(const fnhost_context *ctx, fnhost_host_str payload) {
    ctx->vtable->set_output(ctx->host, FNHOST_OUTPUT_BYTES,
                            (fnhost_plugin_str){payload.ptr, payload.len});
    return FNHOST_STATUS_OK;
}

static const fnhost_handler_entry handlers[] = {FNHOST_HANDLER("Handler", echo)};
FNHOST_DEFINE_LAYOUT(layout);
FNHOST_EXPORT_DESCRIPTOR("c_echo", handlers, NULL, 0, layout);
