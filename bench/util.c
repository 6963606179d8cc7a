/*
 * util.c — what the workloads share and must not take from the allocator
 * under test: harness memory (mmap), the resident set size (read with
 * read(2) from /proc, no stdio), a deterministic permutation, the
 * BENCH_SCALE knob, and the "which allocator is this" report that bench/compare
 * uses to check that LD_PRELOAD really took effect.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench.h"

double bench_scale(void)
{
    static double scale;
    if (scale == 0) {
        const char *s = getenv("BENCH_SCALE");
        double v = s ? strtod(s, NULL) : 1.0;
        scale = v > 0 ? v : 1.0;
    }
    return scale;
}

size_t bench_scaled(size_t n, size_t lo)
{
    size_t v = (size_t)((double)n * bench_scale());
    return v < lo ? lo : v;
}

size_t bench_rss(void)
{
    char buf[128];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t len = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (len <= 0)
        return 0;
    buf[len] = 0;
    char *p = buf;
    strtoul(p, &p, 10); /* size; the second field is resident */
    return strtoul(p, NULL, 10) * (size_t)sysconf(_SC_PAGESIZE);
}

void *bench_map(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

void bench_unmap(void *p, size_t bytes)
{
    if (p)
        munmap(p, bytes);
}

void bench_permutation(uint32_t *perm, size_t n, uint64_t seed)
{
    uint64_t s = seed | 1;
    for (size_t i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    for (size_t i = n; i > 1; i--) { /* Fisher-Yates */
        size_t j = bench_rand(&s) % i;
        uint32_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

/* Prints one JSON object: the file that defines the malloc this process
 * calls, and whether kslab's API could be bound. */
void bench_print_info(FILE *out)
{
    Dl_info info = {0};
    void *sym = dlsym(RTLD_DEFAULT, "malloc");
    const char *lib =
        sym && dladdr(sym, &info) && info.dli_fname ? info.dli_fname : "?";
    fprintf(out, "{\"malloc_from\": \"%s\", \"kslab_api\": %s}\n", lib,
            bench_kslab() ? "true" : "false");
}
