/* The escape suite's harness: each fixture defines attempt(), one try at
 * leaving the sandbox, which writes what happened into `out`. Built as a
 * handler it tries with the payload as its argument; built with
 * -DIN_CONSTRUCTOR -DATTEMPT_ARG='"..."' it tries while the library loads
 * (at deploy time, in the worker or the pre-flight) and the handler answers
 * what the constructor saw. FIXTURE_NAME is the library's name. */
#include "fnhost.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>

static void attempt(const char *arg, char *out, size_t n);

#define REPORT(...) snprintf(out, n, __VA_ARGS__)
#define OUTCOME(call) ((call) < 0 ? strerror(errno) : "succeeded")

#ifdef IN_CONSTRUCTOR
static char recorded[4096] = "the constructor did not run";
__attribute__((constructor)) static void at_load(void) {
    attempt(ATTEMPT_ARG, recorded, sizeof recorded);
}
#endif

static int32_t handle(const fnhost_context *ctx, fnhost_host_str payload) {
    char out[4096];
#ifdef IN_CONSTRUCTOR
    (void)payload;
    snprintf(out, sizeof out, "%s", recorded);
#else
    char arg[1024];
    size_t len = payload.len < sizeof arg - 1 ? payload.len : sizeof arg - 1;
    memcpy(arg, payload.ptr, len);
    arg[len] = 0;
    /* A JSON string payload ("...") stands for its text. */
    if (len >= 2 && arg[0] == '"' && arg[len - 1] == '"') {
        memmove(arg, arg + 1, len - 2);
        arg[len - 2] = 0;
    }
    out[0] = 0;
    attempt(arg, out, sizeof out);
#endif
    ctx->vtable->set_output(ctx->host, FNHOST_OUTPUT_TEXT,
                            (fnhost_plugin_str){(const uint8_t *)out, strlen(out)});
    return FNHOST_STATUS_OK;
}

static const fnhost_handler_entry handlers[] = {FNHOST_HANDLER("Handler", handle)};
FNHOST_DEFINE_LAYOUT(layout);
FNHOST_EXPORT_DESCRIPTOR(FIXTURE_NAME, handlers, NULL, 0, layout);
