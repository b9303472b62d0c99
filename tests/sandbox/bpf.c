/* eBPF: the kernel verifier as attack surface. */
#include <linux/bpf.h>
#include <sys/syscall.h>
#include <unistd.h>
#define FIXTURE_NAME "bpf"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    (void)arg;
    union bpf_attr attr; memset(&attr, 0, sizeof attr);
    REPORT("bpf: %s", OUTCOME(syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr)));
}
