/* A C program embedding libfnhost_embed that loads each attack library
 * given on its command line (DIR ENTRY PAYLOAD triples) with process
 * isolation, invokes it once with PAYLOAD, prints what it answered, and
 * then checks it still serves an in-process echo: the escape suite through
 * the C API. Exits 0 when it survived every attempt and the echo answered. */
#define _POSIX_C_SOURCE 200809L
#include "fnhost_embed.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_result(const char *entry, const fnhost_result *r) {
    size_t len = 0;
    const uint8_t *body = fnhost_result_body(r, &len);
    printf("%s: %s %.*s\n", entry, fnhost_result_is_error(r) ? "error" : "ok", (int)len, (const char *)body);
}

int main(int argc, char **argv) {
    if (argc < 2 || (argc - 2) % 3 != 0) {
        fprintf(stderr, "usage: %s ECHO_DIR [DIR ENTRY PAYLOAD]...\n", argv[0]);
        return 2;
    }
    char *error = NULL;
    fnhost_runtime *rt = fnhost_runtime_new("{\"sandbox\": \"auto\"}", &error);
    if (rt == NULL) {
        fprintf(stderr, "runtime: %s\n", error);
        return 1;
    }
    for (int i = 2; i + 2 < argc; i += 3) {
        char config[4096];
        snprintf(config, sizeof config,
                 "{\"entry\": \"%s\", \"code_dir\": \"%s\", \"isolation\": \"process\", \"timeout_s\": 5}",
                 argv[i + 1], argv[i]);
        fnhost_function *f = fnhost_function_load(rt, config, &error);
        if (f == NULL) {
            printf("%s: load error %s\n", argv[i + 1], error);
            fnhost_string_free(error);
            error = NULL;
            continue;
        }
        fnhost_result *r = fnhost_function_invoke(f, (const uint8_t *)argv[i + 2], strlen(argv[i + 2]));
        print_result(argv[i + 1], r);
        fnhost_result_free(r);
        fnhost_function_free(f);
    }
    char config[4096];
    snprintf(config, sizeof config, "{\"entry\": \"echo.Handler\", \"code_dir\": \"%s\"}", argv[1]);
    fnhost_function *echo = fnhost_function_load(rt, config, &error);
    if (echo == NULL) {
        fprintf(stderr, "echo: %s\n", error);
        return 1;
    }
    fnhost_result *r = fnhost_function_invoke(echo, (const uint8_t *)"still here", 10);
    size_t len = 0;
    const uint8_t *body = fnhost_result_body(r, &len);
    int ok = !fnhost_result_is_error(r) && len == 10 && memcmp(body, "still here", 10) == 0;
    printf("echo: %s\n", ok ? "still here" : "FAILED");
    fnhost_result_free(r);
    fnhost_function_free(echo);
    fnhost_runtime_free(rt);
    return ok ? 0 : 1;
}
