/* TCP Fast Open to ADDRESS PORT: sendto with MSG_FASTOPEN connects
 * without a connect call. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#define FIXTURE_NAME "tcp_fast_open"
#include "attempt.h"
#ifndef MSG_FASTOPEN
#define MSG_FASTOPEN 0x20000000
#endif
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
    ssize_t sent = sendto(s, "x", 1, MSG_FASTOPEN, (struct sockaddr *)&sin, sizeof sin);
    REPORT("sendto(MSG_FASTOPEN) %s:%d: %s", address, port, sent < 0 ? strerror(errno) : "sent");
    close(s);
}
