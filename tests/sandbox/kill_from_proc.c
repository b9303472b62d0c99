/* Every pid /proc shows, killed: the host's, were it visible. */
#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#define FIXTURE_NAME "kill_from_proc"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    (void)arg;
    DIR *proc = opendir("/proc");
    if (!proc) { REPORT("opendir(/proc): %s", strerror(errno)); return; }
    size_t used = (size_t)snprintf(out, n, "visible:");
    struct dirent *e;
    while ((e = readdir(proc)) != NULL) {
        int pid = atoi(e->d_name);
        if (pid <= 0 || pid == getpid()) continue;
        if (used < n) used += (size_t)snprintf(out + used, n - used, " %d", pid);
        kill(pid, SIGKILL);
    }
    closedir(proc);
}
