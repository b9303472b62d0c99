/* Writes through the library's own descriptor (fd 4): the host's copy in
 * its code cache, were the descriptor writable. */
#include <unistd.h>
#define FIXTURE_NAME "library_write"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    (void)arg;
    ssize_t w = pwrite(4, "tampered", 8, 0);
    int e = errno;
    int t = ftruncate(4, 0);
    REPORT("pwrite: %s; ftruncate: %s", w < 0 ? strerror(e) : "written", t < 0 ? "refused" : "succeeded");
}
