/*
 * The C API called from inside its own log callback, and deploys, deletes
 * and invokes from many threads at once (tests/embed_c.rs builds and runs
 * it). A callback that called fnhost_runtime_stats_json once hung at the
 * "generation retired" record, one that called fnhost_deploy after
 * "function created": they ran under the library's locks. Exits 0 and
 * prints "reentrant: all checks passed" when nothing hung or failed;
 * an alarm ends it (and the test) if anything waits for good.
 *
 * Usage: reentrant PLUGIN_DIR HOTSWAP_A_DIR HOTSWAP_B_DIR
 */
#define _POSIX_C_SOURCE 200809L
#include "fnhost_embed.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

static const char *plugins, *dir_a, *dir_b;
static fnhost_runtime *rt;
static atomic_int reentered;

/* Every function of the header, from inside the callback. */
static void call_everything(int round) {
    char json[4096];
    char *error = NULL;
    CHECK(fnhost_version() != NULL, "version");
    char *stats = fnhost_runtime_stats_json(rt);
    CHECK(stats != NULL && strstr(stats, "\"invocations\""), "stats %s", stats ? stats : "NULL");
    fnhost_string_free(stats);
    snprintf(json, sizeof json, "{\"entry\": \"hotswap.Handler\", \"code_dir\": \"%s\", \"name\": \"inner\"}",
             round % 2 ? dir_a : dir_b);
    CHECK(fnhost_deploy(rt, json, &error) == 0, "deploy from the callback: %s", error ? error : "?");
    fnhost_string_free(error);
    error = NULL;
    char version[32];
    snprintf(version, sizeof version, "r%d", round);
    if (fnhost_publish_version(rt, "inner", version, &error) != 0) fnhost_string_free(error);
    error = NULL;
    snprintf(json, sizeof json, "{\"name\": \"live\", \"version\": \"%s\"}", version);
    if (fnhost_set_alias(rt, "inner", json, &error) != 0) fnhost_string_free(error);
    error = NULL;
    fnhost_result *r = fnhost_invoke(rt, "inner", (const uint8_t *)"", 0);
    size_t len = 0;
    CHECK(!fnhost_result_is_error(r) && fnhost_result_body(r, &len) && len > 0, "invoke from the callback");
    (void)fnhost_result_content_type(r);
    (void)fnhost_result_error_type(r);
    (void)fnhost_result_request_id(r);
    (void)fnhost_result_summary_json(r);
    (void)fnhost_result_log(r);
    fnhost_result_free(r);
    snprintf(json, sizeof json, "{\"entry\": \"echo.Handler\", \"code_dir\": \"%s\"}", plugins);
    fnhost_function *f = fnhost_function_load(rt, json, &error);
    CHECK(f != NULL, "load from the callback: %s", error ? error : "?");
    fnhost_string_free(error);
    error = NULL;
    if (f) {
        fnhost_result_free(fnhost_function_invoke(f, (const uint8_t *)"x", 1));
        fnhost_result_free(fnhost_function_invoke_on_current_thread(f, (const uint8_t *)"x", 1));
        fnhost_function_free(f);
    }
    if (round % 3 == 2) {
        CHECK(fnhost_delete(rt, "inner", &error) == 0, "delete from the callback: %s", error ? error : "?");
        fnhost_string_free(error);
        error = NULL;
    }
    fnhost_runtime *other = fnhost_runtime_new(NULL, &error);
    CHECK(other != NULL, "a second runtime from the callback: %s", error ? error : "?");
    fnhost_string_free(error);
    fnhost_runtime_free(other);
    CHECK(fnhost_log_flush(1000) == -1, "a flush from the callback waits for nothing");
    const char *args[] = {"reentrant", NULL};
    fnhost_worker_main_if_worker(1, args);
}

static void on_log(int level, const char *target, const char *message, void *user) {
    (void)level, (void)target, (void)message, (void)user;
    int round = atomic_fetch_add(&reentered, 1);
    if (round < 12) call_everything(round);
}

struct racer {
    int id;
    int calls, bad;
};

static void *race(void *arg) {
    struct racer *me = arg;
    char json[4096];
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int i = 0;; i++) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec >= 2) break;
        char *error = NULL;
        switch (me->id % 3) {
        case 0:
            snprintf(json, sizeof json, "{\"entry\": \"hotswap.Handler\", \"code_dir\": \"%s\", \"name\": \"raced\"}",
                     (i + me->id) % 2 ? dir_a : dir_b);
            CHECK(fnhost_deploy(rt, json, &error) == 0, "deploy: %s", error ? error : "?");
            break;
        case 1:
            (void)fnhost_delete(rt, "raced", &error); /* not found is fine */
            break;
        default: {
            fnhost_result *r = fnhost_invoke(rt, "raced", (const uint8_t *)"", 0);
            const char *type = fnhost_result_error_type(r);
            if (fnhost_result_is_error(r) && !(type && strcmp(type, "FunctionNotFound") == 0)) me->bad++;
            me->calls++;
            fnhost_result_free(r);
        }
        }
        fnhost_string_free(error);
    }
    return NULL;
}

int main(int argc, char **argv) {
    fnhost_worker_main_if_worker(argc, (const char *const *)argv);
    if (argc != 4) {
        fprintf(stderr, "usage: %s PLUGIN_DIR HOTSWAP_A_DIR HOTSWAP_B_DIR\n", argv[0]);
        return 2;
    }
    plugins = argv[1], dir_a = argv[2], dir_b = argv[3];
    alarm(120); /* a hang fails instead of waiting for good */
    char *error = NULL;
    rt = fnhost_runtime_new(NULL, &error);
    CHECK(rt != NULL, "runtime: %s", error ? error : "?");
    if (rt == NULL) return 1;
    CHECK(fnhost_set_log_callback(on_log, NULL, 5) == 0, "log callback refused");
    char json[4096];
    /* "function created", then a swap and "generation retired": each record
     * re-enters the library from the callback. */
    for (int i = 0; i < 4; i++) {
        snprintf(json, sizeof json, "{\"entry\": \"hotswap.Handler\", \"code_dir\": \"%s\", \"name\": \"outer\"}",
                 i % 2 ? dir_a : dir_b);
        CHECK(fnhost_deploy(rt, json, &error) == 0, "deploy: %s", error ? error : "?");
        fnhost_string_free(error);
        error = NULL;
        fnhost_string_free(fnhost_runtime_stats_json(rt));
    }
    CHECK(fnhost_log_flush(60000) == 0, "records not delivered");
    CHECK(atomic_load(&reentered) >= 12, "the callback ran %d times", atomic_load(&reentered));
    printf("reentrant: the callback called every function %d times\n", atomic_load(&reentered) < 12 ? atomic_load(&reentered) : 12);

    CHECK(fnhost_set_log_callback(NULL, NULL, 0) == 0, "log callback not removed");
    struct racer racers[6];
    pthread_t threads[6];
    for (int i = 0; i < 6; i++) {
        racers[i] = (struct racer){i, 0, 0};
        pthread_create(&threads[i], NULL, race, &racers[i]);
    }
    int calls = 0, bad = 0;
    for (int i = 0; i < 6; i++) {
        pthread_join(threads[i], NULL);
        calls += racers[i].calls;
        bad += racers[i].bad;
    }
    CHECK(bad == 0 && calls > 0, "%d of %d calls failed while deploys and deletes raced", bad, calls);
    printf("race: %d calls while deploys and deletes raced, %d failed\n", calls, bad);
    fnhost_runtime_free(rt);
    if (atomic_load(&failures) == 0) printf("reentrant: all checks passed\n");
    return atomic_load(&failures) == 0 ? 0 : 1;
}
