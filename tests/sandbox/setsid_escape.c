/* fork, setsid, fork again: a daemon named ARG that outlives the call and
 * its worker, were nothing to end it. */
#include <sys/prctl.h>
#include <unistd.h>
#define FIXTURE_NAME "setsid_escape"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    pid_t child = fork();
    if (child == 0) {
        setsid();
        if (fork() == 0) {
            prctl(PR_SET_NAME, arg, 0, 0, 0);
            for (int i = 0; i < 120; i++) sleep(1);
        }
        _exit(0);
    }
    REPORT("started %d", (int)child);
}
