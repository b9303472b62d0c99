/* kill(-1, SIGKILL): every process the worker may signal. */
#include <signal.h>
#define FIXTURE_NAME "kill_all"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    (void)arg;
    REPORT("kill(-1, SIGKILL): %s", OUTCOME(kill(-1, SIGKILL)));
}
