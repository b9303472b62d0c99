/* A netlink socket (routes, interfaces, audit). */
#include <linux/netlink.h>
#include <sys/socket.h>
#define FIXTURE_NAME "netlink_socket"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    (void)arg;
    REPORT("socket(AF_NETLINK): %s", OUTCOME(socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE)));
}
