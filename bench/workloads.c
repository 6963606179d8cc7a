/*
 * workloads.c — the single-thread workloads of the malloc family: pairs of
 * one size, batches freed LIFO/FIFO/random, realloc growth, large blocks and
 * the fragmentation run.  Every buffer the harness needs for itself (slot
 * arrays, permutations) is mmap'ed, so only the measured calls reach the
 * allocator under test.  Objects are written to once, as a program would,
 * so an allocator cannot win by handing out memory nobody touches.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdlib.h>
#include <string.h>

#include "bench.h"

uint64_t wl_malloc_free(size_t size, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        char *p = malloc(size);
        p[0] = (char)i;
        bench_escape(p);
        free(p);
    }
    return n;
}

int wl_batch_init(struct wl_batch *b, size_t n)
{
    b->n = n;
    b->slots = bench_map(n * sizeof(void *));
    b->perm = bench_map(n * sizeof(uint32_t));
    b->sizes = bench_map(n * sizeof(size_t));
    if (!b->slots || !b->perm || !b->sizes)
        return -1;
    bench_permutation(b->perm, n, 42);
    uint64_t s = 7;
    for (size_t i = 0; i < n; i++)
        b->sizes[i] = 16 + (bench_rand(&s) % 241); /* 16…256 */
    return 0;
}

void wl_batch_fini(struct wl_batch *b)
{
    bench_unmap(b->slots, b->n * sizeof(void *));
    bench_unmap(b->perm, b->n * sizeof(uint32_t));
    bench_unmap(b->sizes, b->n * sizeof(size_t));
}

uint64_t wl_batch_run(struct wl_batch *b, enum bench_order order)
{
    size_t n = b->n;
    for (size_t i = 0; i < n; i++) {
        char *p = malloc(b->sizes[i]);
        p[0] = (char)i;
        b->slots[i] = p;
    }
    bench_escape(b->slots);
    switch (order) {
    case ORDER_LIFO:
        for (size_t i = n; i-- > 0;)
            free(b->slots[i]);
        break;
    case ORDER_FIFO:
        for (size_t i = 0; i < n; i++)
            free(b->slots[i]);
        break;
    case ORDER_RANDOM:
        for (size_t i = 0; i < n; i++)
            free(b->slots[b->perm[i]]);
        break;
    }
    return n;
}

uint64_t wl_realloc_grow(size_t max, size_t step)
{
    uint64_t ops = 0;
    char *p = NULL;
    for (size_t size = 16; size <= max;
         size = step ? size + step : size + size / 2) {
        char *q = realloc(p, size);
        if (!q)
            break;
        p = q;
        p[size - 1] = 1; /* the grown tail is used */
        bench_escape(p);
        ops++;
    }
    free(p);
    return ops;
}

uint64_t wl_large(size_t size, uint64_t n)
{
    for (uint64_t i = 0; i < n; i++) {
        char *p = malloc(size);
        for (size_t off = 0; off < size; off += 4096)
            p[off] = 1;
        bench_escape(p);
        free(p);
    }
    return n;
}

static size_t grown(size_t base)
{
    size_t now = bench_rss();
    return now > base ? now - base : 0;
}

uint64_t wl_frag(size_t n, struct wl_frag_result *r)
{
    void **slots = bench_map(n * sizeof(void *));
    uint32_t *perm = bench_map(n * sizeof(uint32_t));
    size_t *sizes = bench_map(n * sizeof(size_t));
    void **big = bench_map(n * sizeof(void *));
    uint64_t s = 99, ops = 0;
    size_t nbig = 0;

    if (!slots || !perm || !sizes || !big)
        goto out;
    bench_permutation(perm, n, 1234);
    size_t base = bench_rss();
    for (size_t i = 0; i < n; i++) {
        /* Mostly small, some medium: a skewed mix, as real heaps are. */
        uint64_t x = bench_rand(&s);
        sizes[i] = (x & 3) ? 16 + x % 241 : 16 + (x >> 8) % 2033;
        slots[i] = malloc(sizes[i]);
        memset(slots[i], 0x5a, sizes[i]);
    }
    ops += n;
    r->rss_after_alloc = grown(base);
    size_t live = 0, freed = 0;
    /* Free 9 in 10, in random order; the survivors are scattered. */
    for (size_t i = 0; i < n; i++) {
        uint32_t k = perm[i];
        if (k % 10 == 0) {
            live += sizes[k];
            continue;
        }
        freed += sizes[k];
        free(slots[k]);
        ops++;
    }
    r->rss_after_free = grown(base);
    r->live_after_free = live;
    /* Refill the freed volume with bigger objects. */
    for (size_t got = 0; got < freed && nbig < n; nbig++) {
        size_t sz = 1024 + bench_rand(&s) % 3073;
        big[nbig] = malloc(sz);
        memset(big[nbig], 0xa5, sz);
        got += sz;
        ops++;
    }
    r->rss_after_refill = grown(base);
    r->peak_rss = r->rss_after_alloc > r->rss_after_refill
                      ? r->rss_after_alloc
                      : r->rss_after_refill;
    for (size_t k = 0; k < n; k += 10) {
        free(slots[k]);
        ops++;
    }
    for (size_t i = 0; i < nbig; i++) {
        free(big[i]);
        ops++;
    }
out:
    bench_unmap(slots, n * sizeof(void *));
    bench_unmap(perm, n * sizeof(uint32_t));
    bench_unmap(sizes, n * sizeof(size_t));
    bench_unmap(big, n * sizeof(void *));
    return ops;
}
