/* kill(getppid(), SIGKILL): the host, were the worker its child. */
#include <signal.h>
#include <unistd.h>
#define FIXTURE_NAME "kill_parent"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    (void)arg;
    pid_t parent = getppid();
    REPORT("kill(%d, SIGKILL): %s", (int)parent, OUTCOME(kill(parent, SIGKILL)));
}
