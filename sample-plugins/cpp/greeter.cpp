// A C++17 plugin: fnhost.h compiled as C++, the descriptor exported with C
// linkage, and exceptions thrown and caught inside the plugin (none may
// escape a handler: the host cannot catch them).
//
// Build: g++ -std=c++17 -shared -fPIC -O2 -I plugin-api/include
//        -o greeter.so sample-plugins/cpp/greeter.cpp
// Run:   fnhost invoke greeter.Handler --code-dir . --data '"Ada"'
#include "fnhost.h"

#include <stdexcept>
#include <string>

namespace {

void answer(const fnhost_context *ctx, uint32_t kind, const std::string &text) {
    ctx->vtable->set_output(ctx->host, kind,
                            {reinterpret_cast<const uint8_t *>(text.data()), text.size()});
}

int32_t fail(const fnhost_context *ctx, const std::string &type, const std::string &message) {
    ctx->vtable->set_error(ctx->host,
                           {reinterpret_cast<const uint8_t *>(type.data()), type.size()},
                           {reinterpret_cast<const uint8_t *>(message.data()), message.size()});
    return FNHOST_STATUS_ERROR;
}

// Expects a JSON string: "name".
std::string name_of(fnhost_host_str payload) {
    std::string text(reinterpret_cast<const char *>(payload.ptr), payload.len);
    if (text.size() < 2 || text.front() != '"' || text.back() != '"')
        throw std::invalid_argument("expected a JSON string, got " + text);
    return text.substr(1, text.size() - 2);
}

// Every handler body runs inside this guard: nothing unwinds into the host.
template <typename F>
int32_t guarded(const fnhost_context *ctx, F body) noexcept {
    try {
        return body();
    } catch (const std::invalid_argument &e) {
        return fail(ctx, "InvalidInput", e.what());
    } catch (const std::exception &e) {
        return fail(ctx, "CppException", e.what());
    } catch (...) {
        return fail(ctx, "CppException", "unknown exception");
    }
}

int32_t greet(const fnhost_context *ctx, fnhost_host_str payload) {
    return guarded(ctx, [&] {
        answer(ctx, FNHOST_OUTPUT_JSON, "\"Hello, " + name_of(payload) + "\"");
        return FNHOST_STATUS_OK;
    });
}

// Throws and catches a chain of exceptions, then answers how many it caught.
int32_t rethrow(const fnhost_context *ctx, fnhost_host_str) {
    return guarded(ctx, [&] {
        int caught = 0;
        for (int i = 0; i < 1000; i++) {
            try {
                try {
                    throw std::runtime_error("inner");
                } catch (const std::runtime_error &) {
                    caught++;
                    throw std::logic_error("outer");
                }
            } catch (const std::logic_error &) {
                caught++;
            }
        }
        answer(ctx, FNHOST_OUTPUT_TEXT, std::to_string(caught));
        return FNHOST_STATUS_OK;
    });
}

const fnhost_handler_entry handlers[] = {
    FNHOST_HANDLER("Handler", greet),
    FNHOST_HANDLER("Rethrow", rethrow),
};

FNHOST_DEFINE_LAYOUT(layout);

}  // namespace

FNHOST_EXPORT_DESCRIPTOR("greeter", handlers, NULL, 0, layout);
