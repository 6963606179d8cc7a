/*
 * bench/slab_speed.c — the hot path against jemalloc in one process:
 * kmalloc+kfree of 64 bytes and kmem_cache_alloc+kmem_cache_free of a
 * 200-byte cache beside jemalloc's malloc+free of the same sizes (jemalloc
 * is this program's malloc: it is linked with -ljemalloc, so both run side
 * by side in the same process and the same run).  Prints the
 * median ns per pair of several rounds and the ratio.
 *
 *   ./build/bench/slab_speed [pairs-per-round]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kslab/slab.h>

#define ROUNDS 7

typedef void *(*malloc_fn)(size_t);
typedef void (*free_fn)(void *);

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static kmem_cache_t *cache200;
static malloc_fn je_malloc;
static free_fn je_free;

static void k64(long n)
{
    for (long i = 0; i < n; i++) {
        void *p = kmalloc(64, GFP_KERNEL);
        __asm__ volatile("" : : "r"(p) : "memory");
        kfree(p);
    }
}

static void c200(long n)
{
    for (long i = 0; i < n; i++) {
        void *p = kmem_cache_alloc(cache200, GFP_KERNEL);
        __asm__ volatile("" : : "r"(p) : "memory");
        kmem_cache_free(cache200, p);
    }
}

static void je64(long n)
{
    for (long i = 0; i < n; i++) {
        void *p = je_malloc(64);
        __asm__ volatile("" : : "r"(p) : "memory");
        je_free(p);
    }
}

static void je200(long n)
{
    for (long i = 0; i < n; i++) {
        void *p = je_malloc(200);
        __asm__ volatile("" : : "r"(p) : "memory");
        je_free(p);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 &&
        (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs("usage: slab_speed [PAIRS]\n  kmalloc+kfree (64 B) and "
              "kmem_cache_alloc+free (200 B) against\n  jemalloc\'s "
              "malloc+free in one process; PAIRS per round (20000000)\n",
              stdout);
        return 0;
    }
    long n = argc > 1 ? atol(argv[1]) : 20000000;
    je_malloc = malloc; /* jemalloc's, through -ljemalloc */
    je_free = free;
    cache200 = kmem_cache_create("bench-200", 200, 0, 0, NULL, NULL);
    struct {
        const char *name;
        void (*fn)(long);
        double t[ROUNDS];
    } w[] = {{"kmalloc+kfree 64 B", k64, {0}},
             {"jemalloc malloc+free 64 B", je64, {0}},
             {"kmem_cache_alloc+free 200 B", c200, {0}},
             {"jemalloc malloc+free 200 B", je200, {0}}};
    enum { W = sizeof w / sizeof w[0] };
    for (int i = 0; i < W; i++)
        w[i].fn(n / 10);             /* warm up */
    for (int r = 0; r < ROUNDS; r++) /* alternate so drift hits all */
        for (int i = 0; i < W; i++) {
            double t0 = now();
            w[i].fn(n);
            w[i].t[r] = (now() - t0) / (double)n;
        }
    double med[W];
    for (int i = 0; i < W; i++) {
        qsort(w[i].t, ROUNDS, sizeof(double), cmp);
        med[i] = w[i].t[ROUNDS / 2];
        printf("%-30s %6.2f ns/pair (median of %d)\n", w[i].name, med[i],
               ROUNDS);
    }
    printf("ratio kmalloc/jemalloc (64 B):          %.2f\n", med[0] / med[1]);
    printf("ratio kmem_cache/jemalloc (200 B):      %.2f\n", med[2] / med[3]);
    return 0;
}
