/* A C plugin of a chosen size for the cold-load benchmark: PAD_BYTES of
 * read-only data (in the file, mapped by dlopen, never touched), an echo
 * handler and an initializer. */
#include "fnhost.h"

#ifndef PAD_BYTES
#define PAD_BYTES 1
#endif

__attribute__((used)) static const unsigned char pad[PAD_BYTES] = {1};

static int32_t handler(const fnhost_context *ctx, fnhost_host_str p) {
    ctx->vtable->set_output(ctx->host, FNHOST_OUTPUT_BYTES, (fnhost_plugin_str){p.ptr, p.len});
    return FNHOST_STATUS_OK;
}

static int32_t init(const fnhost_context *ctx) {
    (void)ctx;
    return FNHOST_STATUS_OK;
}

static const fnhost_handler_entry handlers[] = {FNHOST_HANDLER("Handler", handler)};
static const fnhost_initializer_entry initializers[] = {{FNHOST_STR("Init"), init}};
FNHOST_DEFINE_LAYOUT(layout);
FNHOST_EXPORT_DESCRIPTOR("padded", handlers, initializers, 1, layout);
