/* ptrace of the parent (the host, were the worker its child). */
#include <sys/ptrace.h>
#include <unistd.h>
#define FIXTURE_NAME "ptrace_parent"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    (void)arg;
    REPORT("ptrace(ATTACH, parent): %s", OUTCOME(ptrace(PTRACE_ATTACH, getppid(), 0, 0)));
}
