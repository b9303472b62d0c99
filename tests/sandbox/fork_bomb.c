/* Forks without end: every child forks too. */
#include <unistd.h>
#define FIXTURE_NAME "fork_bomb"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    (void)arg;
    long failed = 0;
    for (;;) {
        if (fork() < 0) failed++;
        if (failed == 1) REPORT("fork failed: %s", strerror(errno));
    }
}
