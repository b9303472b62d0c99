/* Writes BYTES bytes to PATH (argument "PATH BYTES"): outside /tmp, past
 * the /tmp limit, over another function's library. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
#define FIXTURE_NAME "write_file"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    char path[512];
    long bytes = 1;
    if (sscanf(arg, "%511s %ld", path, &bytes) < 1) { REPORT("bad argument"); return; }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) { REPORT("open %s: %s", path, strerror(errno)); return; }
    static char block[65536];
    long written = 0;
    while (written < bytes) {
        long chunk = bytes - written < (long)sizeof block ? bytes - written : (long)sizeof block;
        ssize_t w = write(fd, block, (size_t)chunk);
        if (w < 0) { REPORT("wrote %ld of %ld bytes to %s: %s", written, bytes, path, strerror(errno)); close(fd); return; }
        written += w;
    }
    close(fd);
    REPORT("wrote %ld bytes to %s", written, path);
}
