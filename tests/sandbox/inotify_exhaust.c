/* Opens inotify instances until refused and keeps them: the per-user
 * count of the user namespace's owner (root's, were root the owner). */
#include <sys/inotify.h>
#define FIXTURE_NAME "inotify_exhaust"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    (void)arg;
    int opened = 0;
    while (opened < 4096 && inotify_init1(IN_CLOEXEC) >= 0) opened++;
    REPORT("inotify instances: %d, then %s", opened, strerror(errno));
}
