/* kill(PID, SIG) of a pid the attacker knows (the host's, from the API or
 * /proc); the argument is "PID SIG" (SIGSTOP freezes a host). */
#include <signal.h>
#include <stdlib.h>
#define FIXTURE_NAME "kill_pid"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    int pid = 0, sig = 0;
    sscanf(arg, "%d %d", &pid, &sig);
    REPORT("kill(%d, %d): %s", pid, sig, OUTCOME(kill(pid, sig)));
}
