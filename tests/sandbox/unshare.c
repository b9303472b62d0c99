/* A user namespace of its own (root in it, and a larger kernel surface). */
#define _GNU_SOURCE
#include <sched.h>
#define FIXTURE_NAME "unshare"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    (void)arg;
    REPORT("unshare: %s", OUTCOME(unshare(CLONE_NEWUSER)));
}
