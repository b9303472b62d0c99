/* Writes into another process's memory. */
#define _GNU_SOURCE
#include <sys/uio.h>
#include <unistd.h>
#define FIXTURE_NAME "process_vm_writev"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    (void)arg;
    char byte = 0; struct iovec local = {&byte, 1}, remote = {(void *)0x400000, 1};
    REPORT("process_vm_writev: %s", OUTCOME(process_vm_writev(getppid(), &local, 1, &remote, 1, 0)));
}
