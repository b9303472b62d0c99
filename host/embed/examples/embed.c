/*
 * Embedding fnhost from C: load and invoke in process, contain a crash in a
 * worker process, hot-swap a function while 4 threads invoke it (hearing
 * each swap through the log callback), and see a bad library refused with
 * its message. Exits 0 when everything behaved.
 *
 * Build (from the workspace root, after `cargo build --workspace`):
 *   cc -Wall -Wextra -Werror -std=c11 -pthread -I host/embed/include \
 *      -o embed host/embed/examples/embed.c -L target/debug -lfnhost_embed
 * Run:
 *   LD_LIBRARY_PATH=target/debug ./embed target/debug A_DIR B_DIR BAD_DIR
 * where A_DIR and B_DIR hold two builds of hotswap.so (tags A and B) and
 * BAD_DIR a file bad.so that is not a library.
 */
#define _POSIX_C_SOURCE 200809L
#include "fnhost_embed.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0;

#define CHECK(cond, ...)                                  \
    do {                                                  \
        if (!(cond)) {                                    \
            fprintf(stderr, "FAILED %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                 \
            fputc('\n', stderr);                          \
            failures++;                                   \
        }                                                 \
    } while (0)

static char *body_text(const fnhost_result *r) {
    size_t len = 0;
    const uint8_t *body = fnhost_result_body(r, &len);
    char *text = malloc(len + 1);
    if (text == NULL) return NULL;
    if (len > 0) memcpy(text, body, len);
    text[len] = '\0';
    return text;
}

struct caller {
    fnhost_runtime *rt;
    int calls;
    int bad;
};

static void *call_loop(void *arg) {
    struct caller *c = arg;
    for (int i = 0; i < 200; i++) {
        fnhost_result *r = fnhost_invoke(c->rt, "swapped", (const uint8_t *)"", 0);
        char *text = body_text(r);
        if (fnhost_result_is_error(r) || text == NULL ||
            (strncmp(text, "build A", 7) != 0 && strncmp(text, "build B", 7) != 0))
            c->bad++;
        c->calls++;
        free(text);
        fnhost_result_free(r);
    }
    return NULL;
}

/* fnhost's own log records: counts the swaps it reports. Called from any
 * thread. */
static void on_log(int level, const char *target, const char *message, void *user) {
    if (level == 3 && strcmp(target, "fnhost::registry") == 0 && strstr(message, "replaced generation"))
        atomic_fetch_add((atomic_int *)user, 1);
}

int main(int argc, char **argv) {
    fnhost_worker_main_if_worker(argc, (const char *const *)argv);
    if (argc != 5) {
        fprintf(stderr, "usage: %s PLUGIN_DIR HOTSWAP_A_DIR HOTSWAP_B_DIR BAD_DIR\n", argv[0]);
        return 2;
    }
    const char *plugins = argv[1], *a = argv[2], *b = argv[3], *bad = argv[4];
    char json[4096];
    char *error = NULL;

    printf("fnhost %s\n", fnhost_version());
    static atomic_int swaps_logged;
    CHECK(fnhost_set_log_callback(on_log, &swaps_logged, 3) == 0, "log callback refused");
    fnhost_runtime *rt = fnhost_runtime_new(NULL, &error);
    CHECK(rt != NULL, "runtime: %s", error ? error : "?");
    fnhost_string_free(error);
    error = NULL;
    if (rt == NULL) return 1;

    /* In process. */
    snprintf(json, sizeof json, "{\"entry\": \"echo.Handler\", \"code_dir\": \"%s\"}", plugins);
    fnhost_function *echo = fnhost_function_load(rt, json, &error);
    CHECK(echo != NULL, "load echo: %s", error ? error : "?");
    fnhost_string_free(error);
    error = NULL;
    fnhost_result *r = fnhost_function_invoke(echo, (const uint8_t *)"hello", 5);
    char *text = body_text(r);
    CHECK(!fnhost_result_is_error(r) && text && strcmp(text, "hello") == 0, "echo answered %s", text);
    CHECK(strlen(fnhost_result_request_id(r)) == 36, "request id %s", fnhost_result_request_id(r));
    CHECK(strstr(fnhost_result_summary_json(r), "\"duration\"") != NULL, "summary %s",
          fnhost_result_summary_json(r));
    printf("in process: %s (%s)\n", text, fnhost_result_summary_json(r));
    free(text);
    fnhost_result_free(r);

    /* A crash, contained in a worker process. */
    snprintf(json, sizeof json,
             "{\"entry\": \"misbehaving.Segfault\", \"code_dir\": \"%s\", \"isolation\": \"process\"}",
             plugins);
    fnhost_function *crash = fnhost_function_load(rt, json, &error);
    CHECK(crash != NULL, "load misbehaving: %s", error ? error : "?");
    fnhost_string_free(error);
    error = NULL;
    r = fnhost_function_invoke(crash, (const uint8_t *)"{}", 2);
    const char *type = fnhost_result_error_type(r);
    CHECK(fnhost_result_is_error(r) && type && strcmp(type, "runtime exited unexpectedly") == 0,
          "crash answered %s", type ? type : "(no error)");
    printf("process isolation: %s\n", type ? type : "?");
    fnhost_result_free(r);
    r = fnhost_function_invoke(echo, (const uint8_t *)"still", 5);
    CHECK(!fnhost_result_is_error(r), "the host survived the crash");
    fnhost_result_free(r);

    /* Hot swap under load: 4 threads invoke while A and B alternate. */
    snprintf(json, sizeof json, "{\"entry\": \"hotswap.Handler\", \"code_dir\": \"%s\", \"name\": \"swapped\"}", a);
    CHECK(fnhost_deploy(rt, json, &error) == 0, "deploy A: %s", error ? error : "?");
    fnhost_string_free(error);
    error = NULL;
    struct caller callers[4];
    pthread_t threads[4];
    for (int i = 0; i < 4; i++) {
        callers[i] = (struct caller){rt, 0, 0};
        pthread_create(&threads[i], NULL, call_loop, &callers[i]);
    }
    for (int i = 0; i < 20; i++) {
        snprintf(json, sizeof json, "{\"entry\": \"hotswap.Handler\", \"code_dir\": \"%s\", \"name\": \"swapped\"}",
                 i % 2 ? a : b);
        CHECK(fnhost_deploy(rt, json, &error) == 0, "swap %d: %s", i, error ? error : "?");
        fnhost_string_free(error);
        error = NULL;
    }
    int calls = 0, wrong = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        calls += callers[i].calls;
        wrong += callers[i].bad;
    }
    CHECK(wrong == 0, "%d of %d calls failed during the swaps", wrong, calls);
    printf("hot swap: %d calls during 20 swaps, %d failed\n", calls, wrong);
    /* Records reach the callback on its own thread: wait for those logged so far. */
    CHECK(fnhost_log_flush(10000) == 0, "log records not delivered");
    CHECK(atomic_load(&swaps_logged) == 20, "%d swaps logged", atomic_load(&swaps_logged));
    printf("log callback: %d swaps reported\n", atomic_load(&swaps_logged));
    CHECK(fnhost_set_log_callback(NULL, NULL, 0) == 0, "log callback not removed");
    CHECK(fnhost_publish_version(rt, "swapped", "v1", &error) == 0, "publish: %s", error ? error : "?");
    fnhost_string_free(error);
    error = NULL;
    CHECK(fnhost_set_alias(rt, "swapped", "{\"name\": \"prod\", \"version\": \"v1\"}", &error) == 0,
          "alias: %s", error ? error : "?");
    fnhost_string_free(error);
    error = NULL;
    r = fnhost_invoke(rt, "swapped:prod", NULL, 0);
    CHECK(!fnhost_result_is_error(r), "invoke through the alias");
    fnhost_result_free(r);
    r = fnhost_invoke(rt, "nobody", NULL, 0);
    type = fnhost_result_error_type(r);
    CHECK(type && strcmp(type, "FunctionNotFound") == 0, "unknown function: %s", type ? type : "(none)");
    fnhost_result_free(r);

    /* A bad library and a bad configuration are refused with a message. */
    snprintf(json, sizeof json, "{\"entry\": \"bad.Handler\", \"code_dir\": \"%s\"}", bad);
    fnhost_function *refused = fnhost_function_load(rt, json, &error);
    CHECK(refused == NULL && error && strstr(error, "not a loadable library"), "bad library: %s",
          error ? error : "(loaded)");
    printf("bad library: %s\n", error ? error : "?");
    fnhost_string_free(error);
    error = NULL;
    CHECK(fnhost_function_load(rt, "{not json", &error) == NULL && error, "bad JSON accepted");
    fnhost_string_free(error);
    error = NULL;
    CHECK(fnhost_function_load(rt, "\xff\xfe", &error) == NULL && error, "bad UTF-8 accepted");
    fnhost_string_free(error);
    error = NULL;

    char *stats = fnhost_runtime_stats_json(rt);
    printf("stats: %s\n", stats ? stats : "?");
    fnhost_string_free(stats);

    fnhost_function_free(refused);
    fnhost_function_free(crash);
    fnhost_function_free(echo);
    fnhost_runtime_free(rt);
    fnhost_result_free(NULL);
    fnhost_string_free(NULL);
    if (failures == 0) printf("embed: all checks passed\n");
    return failures == 0 ? 0 : 1;
}
