/* A vsock socket: not network-namespaced, it reaches the hypervisor. */
#include <sys/socket.h>
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#define FIXTURE_NAME "vsock_socket"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    (void)arg;
    REPORT("socket(AF_VSOCK): %s", OUTCOME(socket(AF_VSOCK, SOCK_STREAM, 0)));
}
