/* Cross-core cache-line round trip: how far apart the host placed two of this machine's CPUs.
 *
 * Usage: pingpong CPU_A CPU_B [ROUND_TRIPS]. Two threads, pinned to CPU_A and CPU_B, hand one cache line back
 * and forth; prints the mean one-way transfer in nanoseconds. On the 2-vCPU benchmark VM it reads 30-75 ns
 * when the host runs the two vCPUs close together and 170-330 ns when it runs them apart, and every
 * two-thread BLAS product is 1.3-1.5 times slower in the second case (docs/performance.md, W2).
 * Built and run by benchmarks/placement.py.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static _Alignas(64) atomic_long turn;
static long rounds = 200000;
static int cpu_b;

static int pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *echo(void *unused) {
    (void)unused;
    pin(cpu_b);
    for (long i = 0; i < rounds; i++) {
        while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * i + 1) {
        }
        atomic_store_explicit(&turn, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s CPU_A CPU_B [ROUND_TRIPS]\n", argv[0]);
        return 2;
    }
    cpu_b = atoi(argv[2]);
    if (argc > 3) rounds = atol(argv[3]);
    if (pin(atoi(argv[1])) != 0) return 1;
    pthread_t other;
    if (pthread_create(&other, NULL, echo, NULL) != 0) return 1;
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long i = 0; i < rounds; i++) {
        atomic_store_explicit(&turn, 2 * i + 1, memory_order_release);
        while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * i + 2) {
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    pthread_join(other, NULL);
    double ns = ((end.tv_sec - start.tv_sec) * 1e9 + (end.tv_nsec - start.tv_nsec)) / rounds / 2;
    printf("%.1f\n", ns);
    return 0;
}
