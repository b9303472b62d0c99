/* A raw socket (forged packets). */
#include <netinet/in.h>
#include <sys/socket.h>
#define FIXTURE_NAME "raw_socket"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    (void)arg;
    REPORT("socket(SOCK_RAW): %s", OUTCOME(socket(AF_INET, SOCK_RAW, IPPROTO_ICMP)));
}
