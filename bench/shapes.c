/*
 * shapes.c — workloads in the shape of the allocator benchmarks where
 * blocks above a few KiB come and go (mimalloc-bench's names in brackets):
 *
 *  tree      threads each build a binary search tree of random keys and
 *            tear it down (post-order), over and over; one node in 64
 *            carries 64 KiB ... 360 KiB, the others 16 ... 700 B.
 *  mstress   [mstress] threads replace random objects of their own array
 *            with objects of random linear size (8 ... 800 B); 1 in 100 is
 *            100 times bigger, 1 in 1000 1000 times, 1 in 10 000 10 000
 *            times (up to 8 MiB); 1 replacement in 50 swaps the object
 *            with a slot of an array shared by all threads, so objects are
 *            freed by threads that did not allocate them.
 *  large     [malloc-large] 20 buffers; each step allocates a buffer of
 *            5 ... 25 MiB, zeroes it (as std::make_unique<char[]> does)
 *            and frees the buffer it replaces.
 *  alloctest [alloc-test] threads replace random objects of their own
 *            array of 2048 with objects of 8 B ... 32 KiB (uniform).
 *
 * Every object is written once per page.  Each workload frees everything
 * it allocated before it returns; the shim then waits a second and reads
 * RSS, to show what each allocator gives back by itself.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define MAX_THREADS 8

/* Writes one byte in every page of [p, p + n). */
static void touch(char *p, size_t n)
{
    for (size_t i = 0; i < n; i += 4096)
        p[i] = (char)i;
    p[n - 1] = 1;
}

static int run_threads(int threads, void *(*fn)(void *), void *args,
                       size_t argsize)
{
    pthread_t t[MAX_THREADS];
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, fn, (char *)args + i * argsize))
            return -1;
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    return 0;
}

/* ---- tree ---- */

struct node {
    struct node *left, *right;
    uint64_t key;
};

struct tree_arg {
    uint64_t seed, rounds, nodes, ops;
};

static void tree_free(struct node *n)
{
    while (n) {
        tree_free(n->left);
        struct node *r = n->right;
        free(n);
        n = r;
    }
}

static void *tree_thread(void *arg)
{
    struct tree_arg *a = arg;
    for (uint64_t r = 0; r < a->rounds; r++) {
        struct node *root = NULL;
        for (uint64_t i = 0; i < a->nodes; i++) {
            uint64_t x = bench_rand(&a->seed);
            size_t size = (x & 63) == 0 ? (64 << 10) + (x >> 8) % (296 << 10)
                                        : 16 + (x >> 8) % 685;
            if (size < sizeof(struct node))
                size = sizeof(struct node);
            struct node *n = malloc(size);
            if (!n)
                abort();
            touch((char *)n, size);
            n->left = n->right = NULL;
            n->key = bench_rand(&a->seed);
            struct node **pp = &root;
            while (*pp)
                pp = n->key < (*pp)->key ? &(*pp)->left : &(*pp)->right;
            *pp = n;
        }
        tree_free(root);
        a->ops += a->nodes;
    }
    return NULL;
}

uint64_t wl_tree(int threads, size_t nodes, uint64_t rounds)
{
    struct tree_arg a[MAX_THREADS];
    for (int i = 0; i < MAX_THREADS; i++)
        a[i] = (struct tree_arg){.seed = 0x9E3779B97F4A7C15ULL * (i + 1),
                                 .rounds = rounds,
                                 .nodes = nodes};
    if (run_threads(threads, tree_thread, a, sizeof a[0]))
        return 0;
    uint64_t ops = 0;
    for (int i = 0; i < threads && i < MAX_THREADS; i++)
        ops += a[i].ops;
    return ops;
}

/* ---- mstress ---- */

#define MS_LOCAL 500
#define MS_SHARED 1000

struct ms_arg {
    uint64_t seed, steps;
    _Atomic(void *) *shared;
};

static void *ms_alloc(uint64_t *seed)
{
    uint64_t x = bench_rand(seed);
    size_t size = 8 * (1 + x % 100);
    if ((x >> 20) % 100 == 0) {
        uint64_t y = (x >> 32) % 100;
        size *= y == 0 ? 10000 : y < 10 ? 1000 : 100;
    }
    char *p = malloc(size);
    if (!p)
        abort();
    touch(p, size);
    return p;
}

static void *ms_thread(void *arg)
{
    struct ms_arg *a = arg;
    void *local[MS_LOCAL] = {0};
    for (uint64_t s = 0; s < a->steps; s++) {
        uint64_t x = bench_rand(&a->seed);
        size_t i = x % MS_LOCAL;
        free(local[i]);
        local[i] = ms_alloc(&a->seed);
        if ((x >> 24) % 50 == 0)
            local[i] =
                atomic_exchange(&a->shared[(x >> 32) % MS_SHARED], local[i]);
    }
    for (size_t i = 0; i < MS_LOCAL; i++)
        free(local[i]);
    return NULL;
}

uint64_t wl_mstress(int threads, uint64_t steps)
{
    _Atomic(void *) *shared = bench_map(MS_SHARED * sizeof *shared);
    if (!shared)
        return 0;
    struct ms_arg a[MAX_THREADS];
    for (int i = 0; i < MAX_THREADS; i++)
        a[i] = (struct ms_arg){.seed = 0xC2B2AE3D27D4EB4FULL * (i + 1),
                               .steps = steps,
                               .shared = shared};
    int err = run_threads(threads, ms_thread, a, sizeof a[0]);
    for (size_t i = 0; i < MS_SHARED; i++)
        free(atomic_load(&shared[i]));
    bench_unmap(shared, MS_SHARED * sizeof *shared);
    return err ? 0 : steps * (uint64_t)threads;
}

/* ---- large ---- */

uint64_t wl_large_loop(uint64_t steps)
{
    enum { BUFFERS = 20 };
    char *buf[BUFFERS] = {0};
    uint64_t seed = 42;
    for (uint64_t s = 0; s < steps; s++) {
        uint64_t x = bench_rand(&seed);
        size_t size = (5UL << 20) + (x >> 8) % ((20UL << 20) + 1);
        char *p = malloc(size);
        if (!p)
            abort();
        memset(p, 0, size);
        bench_escape(p);
        free(buf[x % BUFFERS]);
        buf[x % BUFFERS] = p;
    }
    for (int i = 0; i < BUFFERS; i++)
        free(buf[i]);
    return steps;
}

/* ---- alloctest ---- */

#define AT_SLOTS 2048

struct at_arg {
    uint64_t seed, steps;
};

static void *at_thread(void *arg)
{
    struct at_arg *a = arg;
    char **slot = bench_map(AT_SLOTS * sizeof *slot);
    if (!slot)
        abort();
    for (uint64_t s = 0; s < a->steps; s++) {
        uint64_t x = bench_rand(&a->seed);
        size_t i = x % AT_SLOTS, size = 8 + (x >> 16) % ((32 << 10) - 7);
        free(slot[i]);
        slot[i] = malloc(size);
        if (!slot[i])
            abort();
        touch(slot[i], size);
    }
    for (size_t i = 0; i < AT_SLOTS; i++)
        free(slot[i]);
    bench_unmap(slot, AT_SLOTS * sizeof *slot);
    return NULL;
}

uint64_t wl_alloctest(int threads, uint64_t steps)
{
    struct at_arg a[MAX_THREADS];
    for (int i = 0; i < MAX_THREADS; i++)
        a[i] = (struct at_arg){.seed = 0x165667B19E3779F9ULL * (i + 1),
                               .steps = steps};
    if (run_threads(threads, at_thread, a, sizeof a[0]))
        return 0;
    return steps * (uint64_t)threads;
}
