/*
 * Host functions through the C API (tests/embed_c.rs builds and runs it):
 * a cache the plugins read from 8 threads at once, a callback that names
 * its caller, typed errors both ways (set_error, a bare non-zero return),
 * unregistering from inside the callback (refused: it would wait for
 * itself) and from another thread while a call runs (it waits for the
 * call, so `user` may be freed at once). Exits 0 and prints
 * "host_functions: all checks passed"; an alarm ends it if anything hangs.
 *
 * Usage: host_functions PLUGIN_DIR (the directory of libecho.so)
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

static atomic_int failures;
#define CHECK(cond, ...)                                           \
    do {                                                           \
        if (!(cond)) {                                             \
            fprintf(stderr, "FAILED %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                          \
            fputc('\n', stderr);                                   \
            atomic_fetch_add(&failures, 1);                        \
        }                                                          \
    } while (0)

static fnhost_runtime *rt;

/* A tiny read-only cache: key "kN" answers "value-N". */
struct cache {
    atomic_int hits;
    char owner[64];
};

static int cache_get(void *user, fnhost_host_call *call, const uint8_t *input, size_t len) {
    struct cache *cache = user;
    if (strcmp(fnhost_host_call_function(call), cache->owner) != 0) {
        fnhost_host_call_set_error(call, "Forbidden", "this cache is not yours");
        return 1;
    }
    if (len < 2 || input[0] != 'k') {
        fnhost_host_call_set_error(call, "NoSuchKey", "keys look like kN");
        return 1;
    }
    char value[64];
    int n = snprintf(value, sizeof value, "value-%.*s", (int)(len - 1), (const char *)input + 1);
    fnhost_host_call_set_output(call, (const uint8_t *)value, (size_t)n);
    atomic_fetch_add(&cache->hits, 1);
    return 0;
}

static int bare_failure(void *user, fnhost_host_call *call, const uint8_t *input, size_t len) {
    (void)user, (void)call, (void)input, (void)len;
    return 7;
}

static atomic_int self_unregister;
static int unregisters_itself(void *user, fnhost_host_call *call, const uint8_t *input, size_t len) {
    (void)user, (void)input, (void)len;
    atomic_store(&self_unregister, fnhost_host_function_unregister(rt, "self"));
    fnhost_host_call_set_output(call, (const uint8_t *)"done", 4);
    return 0;
}

struct slow {
    atomic_int started;
    atomic_int finished;
};
static int slow_call(void *user, fnhost_host_call *call, const uint8_t *input, size_t len) {
    (void)call, (void)input, (void)len;
    struct slow *slow = user;
    atomic_store(&slow->started, 1);
    struct timespec t = {0, 300 * 1000 * 1000};
    nanosleep(&t, NULL);
    atomic_store(&slow->finished, 1);
    return 0;
}

static fnhost_function *load(const char *plugins, const char *name, const char *host_function) {
    char json[2048];
    snprintf(json, sizeof json,
             "{\"entry\":\"echo.CallHost\",\"code_dir\":\"%s\",\"name\":\"%s\","
             "\"timeout_s\":10,\"user_data\":{\"HOST_FUNCTION\":\"%s\"}}",
             plugins, name, host_function);
    char *error = NULL;
    fnhost_function *f = fnhost_function_load(rt, json, &error);
    CHECK(f != NULL, "load %s: %s", name, error ? error : "?");
    fnhost_string_free(error);
    return f;
}

static fnhost_function *orders;
static void *reader(void *arg) {
    long id = (long)arg;
    for (int i = 0; i < 100; i++) {
        char key[32];
        int n = snprintf(key, sizeof key, "k%ld-%d", id, i);
        fnhost_result *r = fnhost_function_invoke(orders, (const uint8_t *)key, (size_t)n);
        size_t len = 0;
        const uint8_t *body = fnhost_result_body(r, &len);
        char want[64];
        int w = snprintf(want, sizeof want, "value-%ld-%d", id, i);
        CHECK(!fnhost_result_is_error(r) && len == (size_t)w && memcmp(body, want, len) == 0,
              "thread %ld call %d: %.*s", id, i, (int)len, (const char *)body);
        fnhost_result_free(r);
    }
    return NULL;
}

static void *invoke_slow(void *arg) {
    fnhost_result_free(fnhost_function_invoke(arg, (const uint8_t *)"x", 1));
    return NULL;
}

static void expect_error(fnhost_function *f, const char *payload, const char *type) {
    fnhost_result *r = fnhost_function_invoke(f, (const uint8_t *)payload, strlen(payload));
    const char *got = fnhost_result_error_type(r);
    CHECK(got && strcmp(got, type) == 0, "%s: error type %s, wanted %s", payload,
          got ? got : "(none)", type);
    fnhost_result_free(r);
}

int main(int argc, char **argv) {
    fnhost_worker_main_if_worker(argc, (const char *const *)argv);
    if (argc != 2) {
        fprintf(stderr, "usage: host_functions PLUGIN_DIR\n");
        return 2;
    }
    alarm(120);
    const char *plugins = argv[1];
    char *error = NULL;
    rt = fnhost_runtime_new(NULL, &error);
    CHECK(rt != NULL, "runtime: %s", error ? error : "?");
    fnhost_string_free(error);
    if (!rt) return 1;

    struct cache cache = {0};
    strcpy(cache.owner, "orders");
    CHECK(fnhost_host_function_register(rt, "cache.get", cache_get, &cache, NULL) == 0, "register");
    error = NULL;
    CHECK(fnhost_host_function_register(rt, "cache.get", cache_get, &cache, &error) == -1 && error &&
              strstr(error, "registered already"),
          "a second registration is refused: %s", error ? error : "(no message)");
    fnhost_string_free(error);
    CHECK(fnhost_host_function_register(rt, "bad name", cache_get, &cache, NULL) == -1, "bad name");
    CHECK(fnhost_host_function_register(rt, "nofn", NULL, &cache, NULL) == -1, "NULL fn");
    CHECK(fnhost_host_function_register(rt, "bare", bare_failure, NULL, NULL) == 0, "register bare");
    CHECK(fnhost_host_function_register(rt, "self", unregisters_itself, NULL, NULL) == 0, "register self");

    orders = load(plugins, "orders", "cache.get");
    fnhost_function *billing = load(plugins, "billing", "cache.get");
    fnhost_function *bare = load(plugins, "bare", "bare");
    fnhost_function *self = load(plugins, "self", "self");
    fnhost_function *missing = load(plugins, "missing", "no.such");
    if (!orders || !billing || !bare || !self || !missing) return 1;

    pthread_t threads[8];
    for (long t = 0; t < 8; t++) pthread_create(&threads[t], NULL, reader, (void *)t);
    for (int t = 0; t < 8; t++) pthread_join(threads[t], NULL);
    CHECK(atomic_load(&cache.hits) == 800, "hits %d", atomic_load(&cache.hits));
    printf("cache: 800 calls from 8 threads, %d hits\n", atomic_load(&cache.hits));

    expect_error(billing, "k1", "Forbidden");
    expect_error(orders, "nokey", "NoSuchKey");
    expect_error(bare, "x", "HostFunctionError");
    expect_error(missing, "x", "HostFunctionNotFound");

    fnhost_result *r = fnhost_function_invoke(self, (const uint8_t *)"x", 1);
    CHECK(!fnhost_result_is_error(r), "self");
    fnhost_result_free(r);
    CHECK(atomic_load(&self_unregister) == -1, "unregistering from its own callback: %d",
          atomic_load(&self_unregister));

    /* Unregistering waits for a running call: `user` can go at once. */
    struct slow *slow = calloc(1, sizeof *slow);
    CHECK(fnhost_host_function_register(rt, "slow", slow_call, slow, NULL) == 0, "register slow");
    fnhost_function *slowf = load(plugins, "slow", "slow");
    pthread_t caller;
    pthread_create(&caller, NULL, invoke_slow, slowf);
    while (!atomic_load(&slow->started)) {
        struct timespec t = {0, 1000 * 1000};
        nanosleep(&t, NULL);
    }
    CHECK(fnhost_host_function_unregister(rt, "slow") == 1, "unregister slow");
    CHECK(atomic_load(&slow->finished) == 1, "unregister returned while the call ran");
    free(slow);
    pthread_join(caller, NULL);
    expect_error(slowf, "x", "HostFunctionNotFound");
    CHECK(fnhost_host_function_unregister(rt, "slow") == 0, "unregistered twice");

    fnhost_function *fs[] = {orders, billing, bare, self, missing, slowf};
    for (size_t i = 0; i < sizeof fs / sizeof fs[0]; i++) fnhost_function_free(fs[i]);
    fnhost_runtime_free(rt);
    if (atomic_load(&failures)) {
        fprintf(stderr, "host_functions: %d checks failed\n", atomic_load(&failures));
        return 1;
    }
    printf("host_functions: all checks passed\n");
    return 0;
}
