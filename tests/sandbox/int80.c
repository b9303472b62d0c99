/* A 32-bit system call (int 0x80) from the 64-bit worker: another ABI's
 * numbers, which a filter of x86-64 numbers would not see. */
#define FIXTURE_NAME "int80"
#include "attempt.h"
static void attempt(const char *arg, char *out, size_t n) {
    (void)arg;
    long ret = 20; /* getpid in the i386 table */
#if defined(__x86_64__)
    __asm__ volatile("int $0x80" : "+a"(ret) : : "memory");
#endif
    REPORT("int 0x80 answered %ld", ret);
}
