/* Binds a host port (argument: PORT) without listening: squatting the
 * host's port, or its whole ephemeral range. */
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#define FIXTURE_NAME "bind_port"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)atoi(arg));
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) { REPORT("socket: %s", strerror(errno)); return; }
    REPORT("bind 0.0.0.0:%s: %s", arg, OUTCOME(bind(s, (struct sockaddr *)&sin, sizeof sin)));
}
