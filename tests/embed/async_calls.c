/*
 * Calls that do not block, through the C API (tests/embed_c.rs builds and
 * runs it): start, wait with a timeout, poll, a completion callback that
 * frees its call, cancellation of a call that waits for it, per-call
 * options (request id, user data, a sooner deadline, bad ones refused),
 * an embedder value that reaches a host function, and 8 threads of calls.
 * Exits 0 and prints "async_calls: all checks passed"; an alarm ends it if
 * anything hangs.
 *
 * Usage: async_calls PLUGIN_DIR FIXTURE_DIR (libecho.so; cancellable.so)
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

static fnhost_runtime *rt;

static void deploy(const char *json) {
    char *error = NULL;
    CHECK(fnhost_deploy(rt, json, &error) == 0, "deploy %s: %s", json, error ? error : "?");
    fnhost_string_free(error);
}

/* Waits for the call, frees it, returns its result. */
static fnhost_result *finish(fnhost_call *call) {
    fnhost_result *r = NULL;
    CHECK(fnhost_call_wait(call, -1, &r) == 0, "wait");
    fnhost_call_free(call);
    return r;
}

static int body_is(fnhost_result *r, const char *want) {
    size_t len = 0;
    const uint8_t *body = fnhost_result_body(r, &len);
    return len == strlen(want) && memcmp(body, want, len) == 0;
}

static const char *error_type(fnhost_result *r) {
    const char *t = fnhost_result_error_type(r);
    return t ? t : "(none)";
}

static int whoami(void *user, fnhost_host_call *call, const uint8_t *input, size_t len) {
    (void)user, (void)input, (void)len;
    const char *tenant = fnhost_host_call_embedder_value(call);
    if (!tenant) tenant = "nobody";
    fnhost_host_call_set_output(call, (const uint8_t *)tenant, strlen(tenant));
    return 0;
}

static atomic_int told;
static void done(void *user, fnhost_call *call) {
    fnhost_result *r = NULL;
    CHECK(fnhost_call_poll(call, &r) == 0 && r, "poll in the callback");
    CHECK(body_is(r, (const char *)user), "callback's result");
    fnhost_result_free(r);
    fnhost_call_free(call);
    atomic_fetch_add(&told, 1);
}

static void *caller(void *arg) {
    long id = (long)arg;
    for (int i = 0; i < 50; i++) {
        char payload[32];
        int n = snprintf(payload, sizeof payload, "t%ld-%d", id, i);
        fnhost_result *r = finish(fnhost_invoke_start(rt, "echo", (const uint8_t *)payload, (size_t)n, NULL));
        CHECK(body_is(r, payload), "thread %ld call %d: %s", id, i, error_type(r));
        fnhost_result_free(r);
    }
    return NULL;
}

int main(int argc, char **argv) {
    fnhost_worker_main_if_worker(argc, (const char *const *)argv);
    if (argc != 3) {
        fprintf(stderr, "usage: async_calls PLUGIN_DIR FIXTURE_DIR\n");
        return 2;
    }
    alarm(120);
    char *error = NULL;
    rt = fnhost_runtime_new(NULL, &error);
    CHECK(rt != NULL, "runtime: %s", error ? error : "?");
    fnhost_string_free(error);
    if (!rt) return 1;
    char json[2048];
    snprintf(json, sizeof json, "{\"name\":\"echo\",\"entry\":\"echo.Handler\",\"code_dir\":\"%s\"}", argv[1]);
    deploy(json);
    snprintf(json, sizeof json,
             "{\"name\":\"wait\",\"entry\":\"cancellable.Wait\",\"code_dir\":\"%s\",\"timeout_s\":30}", argv[2]);
    deploy(json);
    snprintf(json, sizeof json,
             "{\"name\":\"env\",\"entry\":\"cancellable.UserData\",\"code_dir\":\"%s\","
             "\"user_data\":{\"NAME\":\"function's\"}}",
             argv[2]);
    deploy(json);
    snprintf(json, sizeof json,
             "{\"name\":\"who\",\"entry\":\"echo.CallHost\",\"code_dir\":\"%s\","
             "\"user_data\":{\"HOST_FUNCTION\":\"whoami\"}}",
             argv[1]);
    deploy(json);
    CHECK(fnhost_host_function_register(rt, "whoami", whoami, NULL, NULL) == 0, "register");

    /* Start, wait, and the result handed out once. */
    fnhost_call *call = fnhost_invoke_start(rt, "echo", (const uint8_t *)"hello", 5, NULL);
    fnhost_result *r = NULL;
    CHECK(fnhost_call_wait(call, 5000, &r) == 0 && r && body_is(r, "hello"), "echo");
    fnhost_result_free(r);
    r = (fnhost_result *)1;
    CHECK(fnhost_call_poll(call, &r) == 0 && r == NULL, "a result is handed out once");
    CHECK(fnhost_call_cancel(call) == 1, "an ended call is not cancelled");
    fnhost_call_free(call);

    /* Calls that cannot start end at once, typed. */
    r = finish(fnhost_invoke_start(rt, "nope", NULL, 0, NULL));
    CHECK(strcmp(error_type(r), "FunctionNotFound") == 0, "unknown: %s", error_type(r));
    fnhost_result_free(r);
    const char *bad[] = {"{\"request_id\":\"x\"}", "{\"deadline_ms\":0}", "{\"colour\":1}", "[",
                         "{\"traceparent\":\"00-zz\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = finish(fnhost_invoke_start(rt, "echo", NULL, 0, bad[i]));
        CHECK(strcmp(error_type(r), "InvalidOptions") == 0, "%s: %s", bad[i], error_type(r));
        fnhost_result_free(r);
    }

    /* Options reach the handler; the result carries the request id. */
    const char *id = "6f1a4b2c-9d3e-4f50-8a61-7b2c3d4e5f60";
    snprintf(json, sizeof json, "{\"request_id\":\"%s\",\"user_data\":{\"NAME\":\"caller's\"}}", id);
    r = finish(fnhost_invoke_start(rt, "env", (const uint8_t *)"NAME", 4, json));
    CHECK(body_is(r, "caller's"), "user data: %s", error_type(r));
    CHECK(strcmp(fnhost_result_request_id(r), id) == 0, "request id %s", fnhost_result_request_id(r));
    fnhost_result_free(r);
    r = finish(fnhost_invoke_start(rt, "wait", NULL, 0, "{\"deadline_ms\":200}"));
    CHECK(body_is(r, "ran out") || strcmp(error_type(r), "timeout") == 0, "deadline: %s", error_type(r));
    fnhost_result_free(r);

    /* Cancel a call that waits for it. */
    call = fnhost_invoke_start(rt, "wait", NULL, 0, NULL);
    CHECK(fnhost_call_wait(call, 100, &r) == 1, "still running");
    CHECK(fnhost_call_cancel(call) == 0, "cancel");
    CHECK(fnhost_call_cancel(call) == 1, "cancel twice");
    r = finish(call);
    CHECK(strcmp(error_type(r), "Cancelled") == 0, "cancelled: %s", error_type(r));
    fnhost_result_free(r);

    /* The embedder's value reaches the host function. */
    static char acme[] = "acme";
    r = finish(fnhost_invoke_start_with_value(rt, "who", NULL, 0, NULL, acme));
    CHECK(body_is(r, "acme"), "embedder value: %s", error_type(r));
    fnhost_result_free(r);
    r = finish(fnhost_invoke_start(rt, "who", NULL, 0, NULL));
    CHECK(body_is(r, "nobody"), "no embedder value");
    fnhost_result_free(r);

    /* A callback that takes the result and frees its call. */
    static char want[] = "told";
    fnhost_call_on_complete(fnhost_invoke_start(rt, "echo", (const uint8_t *)"told", 4, NULL), done, want);
    for (int i = 0; i < 5000 && !atomic_load(&told); i++) {
        struct timespec t = {0, 1000 * 1000};
        nanosleep(&t, NULL);
    }
    CHECK(atomic_load(&told) == 1, "callback");

    pthread_t threads[8];
    for (long t = 0; t < 8; t++) pthread_create(&threads[t], NULL, caller, (void *)t);
    for (int t = 0; t < 8; t++) pthread_join(threads[t], NULL);
    printf("async: 400 calls from 8 threads\n");

    fnhost_runtime_free(rt);
    if (atomic_load(&failures)) {
        fprintf(stderr, "async_calls: %d checks failed\n", atomic_load(&failures));
        return 1;
    }
    printf("async_calls: all checks passed\n");
    return 0;
}
