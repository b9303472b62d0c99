/* io_uring: system calls the filter never sees. */
#include <sys/syscall.h>
#include <unistd.h>
#define FIXTURE_NAME "io_uring_setup"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    (void)arg;
    char params[120] = {0};
    REPORT("io_uring_setup: %s", OUTCOME(syscall(SYS_io_uring_setup, 8, params)));
}
