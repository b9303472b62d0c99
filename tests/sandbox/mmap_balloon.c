/* Maps 10 GB (argument "private" or "shared") and touches it page by page. */
#include <sys/mman.h>
#define FIXTURE_NAME "mmap_balloon"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    size_t size = (size_t)10 << 30;
    int shared = strcmp(arg, "shared") == 0;
    char *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   (shared ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) { REPORT("mmap: %s", strerror(errno)); return; }
    for (size_t i = 0; i < size; i += 4096) p[i] = 1;
    REPORT("touched 10 GB");
}
