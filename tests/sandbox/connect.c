/* TCP connection to ADDRESS PORT (argument "ADDRESS PORT"): a loopback
 * service, the server's own port, an address outside the allowlist. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#define FIXTURE_NAME "connect"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    char address[64];
    int port = 0;
    if (sscanf(arg, "%63s %d", address, &port) != 2) { REPORT("bad argument"); return; }
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)port);
    inet_pton(AF_INET, address, &sin.sin_addr);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    if (s < 0) { REPORT("socket: %s", strerror(errno)); return; }
    int r = connect(s, (struct sockaddr *)&sin, sizeof sin);
    REPORT("connect %s:%d: %s", address, port, r == 0 ? "connected" : strerror(errno));
    close(s);
}
