/* Joins another process's namespace. */
#define _GNU_SOURCE
#include <sched.h>
#include <fcntl.h>
#define FIXTURE_NAME "setns"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    (void)arg;
    int fd = open("/proc/1/ns/mnt", O_RDONLY);
    REPORT("setns: %s", OUTCOME(setns(fd, 0)));
}
