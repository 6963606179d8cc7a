/*
 * tests/percpu_test.h — what the tests of the per-CPU arrays share
 * (tests/slab/test_percpu.c, tests/interpose/test_percpu_malloc.c): the
 * probe of glibc's rseq registration and of the arrays made (slabinfo's
 * cpu_arrays column), the calling thread's rseq area, and the CPU helpers
 * of threads that hop between CPUs (the CPUs allowed, a pin, a clock).
 * Public headers only, so a test of the malloc family can use it too.
 */
#ifndef KSLAB_TESTS_PERCPU_TEST_H
#define KSLAB_TESTS_PERCPU_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kslab/kslab.h>

extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));

/* Does glibc register an rseq area for every thread (2.35 on, and not
 * GLIBC_TUNABLES=glibc.pthread.rseq=0)? */
static inline int pt_rseq_registered(void)
{
    return &__rseq_offset && &__rseq_size && __rseq_size > 0;
}

/* The calling thread's rseq area (glibc's), or NULL. */
static inline volatile int *pt_rseq_area(void)
{
    if (!pt_rseq_registered())
        return NULL;
    return (volatile int *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

/* The last field of the slabinfo line of cache name (cpu_arrays: the
 * CPUs with an array of the cache), or -1. */
static inline long pt_slabinfo_cpu_arrays(const char *name)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (!f)
        return -1;
    kmem_slabinfo(f);
    fclose(f);
    long v = -1;
    size_t len = strlen(name);
    for (char *line = buf; line && *line;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = 0;
        if (!strncmp(line, name, len) && line[len] == ' ') {
            char *colon = strrchr(line, ':');
            if (colon)
                v = strtol(colon + 1, NULL, 10);
        }
        line = end ? end + 1 : NULL;
    }
    free(buf);
    return v;
}

static inline double pt_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The CPUs this process may run on, in cpus[] (at most max); the count. */
static inline int pt_allowed_cpus(int *cpus, int max)
{
    cpu_set_t set;
    int n = 0;
    if (sched_getaffinity(0, sizeof set, &set))
        return 0;
    for (int c = 0; c < CPU_SETSIZE && n < max; c++)
        if (CPU_ISSET(c, &set))
            cpus[n++] = c;
    return n;
}

/* Moves the calling thread to cpu and keeps it there: 0, or -1. */
static inline int pt_pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
}

#endif /* KSLAB_TESTS_PERCPU_TEST_H */
