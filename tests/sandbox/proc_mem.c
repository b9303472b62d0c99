/* Opens /proc/PID/mem read-write (the host's memory; argument PID). */
#include <fcntl.h>
#include <unistd.h>
#define FIXTURE_NAME "proc_mem"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    char path[1100];
    snprintf(path, sizeof path, "/proc/%s/mem", arg);
    int fd = open(path, O_RDWR);
    REPORT("open %s: %s", path, fd < 0 ? strerror(errno) : "opened");
    if (fd >= 0) close(fd);
}
