/* What the C test programs of the embedding API share: CHECK(cond, fmt,
 * ...) reports a failed check (file and line) and counts it in `failures`;
 * a program exits non-zero when any check failed. */
#ifndef FNHOST_TEST_CHECK_H
#define FNHOST_TEST_CHECK_H

#include <stdatomic.h>
#include <stdio.h>

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

#endif
