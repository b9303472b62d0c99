/* Three threads spin for one second of wall time; the answer is the CPU
 * time they got: more than one core's worth where nothing caps it. */
#include <pthread.h>
#include <sys/resource.h>
#include <time.h>
#define FIXTURE_NAME "cpu_hog"
#include "attempt.h"
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}
static void *spin(void *start) {
    while (now() - *(double *)start < 1.0) {}
    return NULL;
}
static void attempt(const char *arg, char *out, size_t n) {
    (void)arg;
    double start = now();
    pthread_t threads[3];
    for (int i = 0; i < 3; i++) pthread_create(&threads[i], NULL, spin, &start);
    for (int i = 0; i < 3; i++) pthread_join(threads[i], NULL);
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    double cpu = (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec +
                 (double)u.ru_stime.tv_usec / 1e6;
    REPORT("cpu %.2f s in %.2f s", cpu, now() - start);
}
