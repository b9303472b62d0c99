/* Opens files until refused: each worker process's share of the host's
 * one table of open files (fs.file-max). */
#include <fcntl.h>
#include <unistd.h>
#define FIXTURE_NAME "open_files"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    (void)arg;
    int opened = 0;
    while (opened < 100000 && open("/dev/null", O_RDONLY) >= 0) opened++;
    REPORT("opened %d, then %s", opened, strerror(errno));
}
