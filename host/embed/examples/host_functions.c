/*
 * Host functions through the C API: a cache and a logger of this program
 * that plugins call, from 8 threads at once, in process and from sandboxed
 * worker processes; a callback that names its caller; typed errors both
 * ways (set_error, a bare non-zero return); unregistering from inside the
 * callback (refused: it would wait for itself) and from another thread
 * while a call runs (it waits for the call, so `user` may be freed at
 * once); and a spinning call cancelled. tests/embed_c.rs builds and runs it
 * (and scripts/valgrind-embed.sh, under memcheck). Exits 0 and prints
 * "host_functions: all checks passed"; an alarm ends it if anything hangs.
 *
 *   cc -I host/embed/include host/embed/examples/host_functions.c \
 *      -L target/debug -lfnhost_embed -pthread -o host_functions
 *   LD_LIBRARY_PATH=target/debug ./host_functions target/debug
 *
 * Usage: host_functions PLUGIN_DIR (the directory of libecho.so and
 * libmisbehaving.so)
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

/* A logger the plugins write lines to: it keeps the last one. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char last_line[256];
static atomic_int lines;
static int log_write(void *user, fnhost_host_call *call, const uint8_t *input, size_t len) {
    (void)user;
    pthread_mutex_lock(&log_lock);
    snprintf(last_line, sizeof last_line, "%s: %.*s", fnhost_host_call_function(call), (int)len,
             (const char *)input);
    pthread_mutex_unlock(&log_lock);
    atomic_fetch_add(&lines, 1);
    return 0;
}

static fnhost_function *load_as(const char *plugins, const char *name, const char *host_function,
                                const char *isolation) {
    char json[2048];
    snprintf(json, sizeof json,
             "{\"entry\":\"echo.CallHost\",\"code_dir\":\"%s\",\"name\":\"%s\","
             "\"timeout_s\":10,\"isolation\":\"%s\",\"user_data\":{\"HOST_FUNCTION\":\"%s\"}}",
             plugins, name, isolation, host_function);
    char *error = NULL;
    fnhost_function *f = fnhost_function_load(rt, json, &error);
    CHECK(f != NULL, "load %s: %s", name, error ? error : "?");
    fnhost_string_free(error);
    return f;
}

static fnhost_function *load(const char *plugins, const char *name, const char *host_function) {
    return load_as(plugins, name, host_function, "in-process");
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

    /* The same from sandboxed worker processes: the calls cross each
     * worker's channel, the callbacks run here. */
    fnhost_function *in_process_orders = orders;
    orders = load_as(plugins, "orders", "cache.get", "process");
    if (!orders) return 1;
    for (long t = 0; t < 8; t++) pthread_create(&threads[t], NULL, reader, (void *)t);
    for (int t = 0; t < 8; t++) pthread_join(threads[t], NULL);
    CHECK(atomic_load(&cache.hits) == 1600, "hits %d", atomic_load(&cache.hits));
    printf("cache, isolated: 800 calls from 8 threads\n");
    fnhost_function_free(orders);
    orders = in_process_orders;

    /* A logger, in process and isolated. */
    CHECK(fnhost_host_function_register(rt, "log.write", log_write, NULL, NULL) == 0, "register log");
    const char *isolations[] = {"in-process", "process"};
    for (int i = 0; i < 2; i++) {
        fnhost_function *logger = load_as(plugins, "logger", "log.write", isolations[i]);
        if (!logger) return 1;
        fnhost_result *r = fnhost_function_invoke(logger, (const uint8_t *)"a line", 6);
        CHECK(!fnhost_result_is_error(r), "log.write %s", isolations[i]);
        fnhost_result_free(r);
        fnhost_function_free(logger);
    }
    CHECK(atomic_load(&lines) == 2 && strcmp(last_line, "logger: a line") == 0, "logger: %d %s",
          atomic_load(&lines), last_line);

    /* A spinning call in a worker process, cancelled: its worker ends. */
    char spin_json[1024];
    snprintf(spin_json, sizeof spin_json,
             "{\"name\":\"spin\",\"entry\":\"misbehaving.Spin\",\"code_dir\":\"%s\","
             "\"isolation\":\"process\",\"timeout_s\":30}",
             plugins);
    error = NULL;
    CHECK(fnhost_deploy(rt, spin_json, &error) == 0, "deploy spin: %s", error ? error : "?");
    fnhost_string_free(error);
    fnhost_call *spinning = fnhost_invoke_start(rt, "spin", NULL, 0, NULL);
    fnhost_result *spun = NULL;
    CHECK(fnhost_call_wait(spinning, 200, &spun) == 1, "still spinning");
    CHECK(fnhost_call_cancel(spinning) == 0, "cancel");
    CHECK(fnhost_call_wait(spinning, 5000, &spun) == 0 && spun, "cancelled call ends");
    CHECK(spun && strcmp(fnhost_result_error_type(spun), "Cancelled") == 0, "cancelled: %s",
          spun ? fnhost_result_error_type(spun) : "(none)");
    fnhost_result_free(spun);
    fnhost_call_free(spinning);
    printf("a spinning call: cancelled\n");

    expect_error(billing, "k1", "Forbidden");
    expect_error(orders, "nokey", "NoSuchKey");
    expect_error(bare, "x", "HostFunctionError");
    expect_error(missing, "x", "HostFunctionNotFound");

    /* An allowlist: this function may call log.write only, so cache.get
     * reads as missing to it. */
    char limited_json[2048];
    snprintf(limited_json, sizeof limited_json,
             "{\"entry\":\"echo.CallHost\",\"code_dir\":\"%s\",\"name\":\"orders\","
             "\"host_functions\":[\"log.write\"],\"user_data\":{\"HOST_FUNCTION\":\"cache.get\"}}",
             plugins);
    error = NULL;
    fnhost_function *limited = fnhost_function_load(rt, limited_json, &error);
    CHECK(limited != NULL, "load limited: %s", error ? error : "?");
    fnhost_string_free(error);
    if (limited) {
        expect_error(limited, "k1", "HostFunctionNotFound");
        fnhost_function_free(limited);
    }

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
