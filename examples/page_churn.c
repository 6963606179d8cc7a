/*
 * examples/page_churn.c — slabs that grow and shrink in several threads at
 * once: each thread has caches of its own (object sizes 512 B ... 16 KiB,
 * slabs of order 0 ... 2), fills each with a few slabs' worth of objects,
 * frees them and shrinks the cache (kmem_cache_shrink gives the empty slabs
 * back), round after round.  Every slab grow and destroy is a page
 * allocation or free, so this measures the page layer under contention.
 * Prints the median ns per object (allocate + free) over several runs.
 *
 *   ./build/page_churn [threads] [rounds]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kslab/slab.h>

#define NCACHES 12
#define PER_CACHE 48
#define RUNS 5

static int rounds = 400;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void *worker(void *arg)
{
    long id = (long)arg;
    kmem_cache_t *c[NCACHES];
    static void *objs[64][NCACHES][PER_CACHE];
    for (int i = 0; i < NCACHES; i++) {
        char name[32];
        snprintf(name, sizeof name, "churn-%ld-%d", id, i);
        c[i] = kmem_cache_create(name, 512UL << (i % 6), 0, 0, NULL, NULL);
        if (!c[i])
            abort();
    }
    for (int r = 0; r < rounds; r++) {
        for (int i = 0; i < NCACHES; i++)
            for (int k = 0; k < PER_CACHE; k++)
                if (!(objs[id][i][k] = kmem_cache_alloc(c[i], GFP_KERNEL)))
                    abort();
        for (int i = 0; i < NCACHES; i++) {
            for (int k = 0; k < PER_CACHE; k++)
                kmem_cache_free(c[i], objs[id][i][k]);
            kmem_cache_shrink(c[i]);
        }
    }
    for (int i = 0; i < NCACHES; i++)
        kmem_cache_destroy(c[i]);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1 &&
        (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs("usage: page_churn [THREADS [ROUNDS]]\n  threads filling and "
              "shrinking slab caches of their own (page-layer\n  contention); "
              "prints the median ns per object\n",
              stdout);
        return 0;
    }
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    if (argc > 2)
        rounds = atoi(argv[2]);
    if (threads < 1 || threads > 64 || rounds < 1)
        return 2;
    double t[RUNS];
    for (int run = 0; run < RUNS; run++) {
        pthread_t th[64];
        double t0 = now();
        for (long i = 0; i < threads; i++)
            pthread_create(&th[i], NULL, worker, (void *)i);
        for (int i = 0; i < threads; i++)
            pthread_join(th[i], NULL);
        t[run] =
            (now() - t0) / ((double)threads * rounds * NCACHES * PER_CACHE);
    }
    qsort(t, RUNS, sizeof t[0], cmp);
    printf("page_churn: %d threads: %.1f ns per object (median of %d)\n",
           threads, t[RUNS / 2], RUNS);
    return 0;
}
