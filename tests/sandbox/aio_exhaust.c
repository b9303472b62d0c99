/* Kernel AIO contexts until refused: they count against a host-wide limit
 * (fs.aio-max-nr), which a worker must not be able to take. */
#include <linux/aio_abi.h>
#include <sys/syscall.h>
#include <unistd.h>
#define FIXTURE_NAME "aio_exhaust"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    (void)arg;
    static aio_context_t contexts[1024];
    int made = 0;
    while (made < 1024 && syscall(SYS_io_setup, 1024, &contexts[made]) == 0) made++;
    REPORT("io_setup: %d contexts, then %s", made, strerror(errno));
}
