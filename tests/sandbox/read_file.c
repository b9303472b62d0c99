/* Reads a file of the host's: its keys, state, /etc/shadow, its /tmp,
 * another function's package. The argument is the path. */
#include <fcntl.h>
#include <unistd.h>
#define FIXTURE_NAME "read_file"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    int fd = open(arg, O_RDONLY);
    if (fd < 0) { REPORT("open %s: %s", arg, strerror(errno)); return; }
    char buf[64];
    ssize_t got = read(fd, buf, sizeof buf);
    close(fd);
    REPORT("read %s: %zd bytes", arg, got);
}
