/* Everything in the environment (the host's keys, were it inherited). */
#define FIXTURE_NAME "environment"
#include "attempt.h"
extern char **environ;
static void attempt(const char *arg, char *out, size_t n) {
    (void)arg;
    size_t used = 0;
    out[0] = 0;
    for (char **e = environ; *e && used < n; e++)
        used += (size_t)snprintf(out + used, n - used, "%s\n", *e);
}
