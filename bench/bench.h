/*
 * bench.h — the C side of the kslab benchmarks: every workload body, and the
 * few helpers they share.  The workloads are plain C and know nothing of
 * google-benchmark; shim.cc registers them and reports.  A workload runs a
 * fixed amount of work per call and returns the number of operations it did
 * (an operation is one allocation together with its free unless a workload
 * says otherwise), so the shim can report items per second.
 *
 * The benchmark binary is linked against no allocator: the allocator under
 * test is whatever LD_PRELOAD puts in front of glibc.  kslab's own API
 * (kmem_cache_*, kmalloc) is looked up with dlsym() at run time and is present
 * only when libkslab.so is preloaded (bench_kslab below).
 */
#ifndef KSLAB_BENCH_H
#define KSLAB_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- helpers (util.c) ---- */

/* Keeps the compiler from proving an allocation dead and eliding the pair. */
#define bench_escape(p) __asm__ volatile("" : : "r"(p) : "memory")

/* Scale factor for the fixed-size workloads, from BENCH_SCALE (default 1). */
double bench_scale(void);
/* A count scaled by bench_scale(), at least lo. */
size_t bench_scaled(size_t n, size_t lo);
/* Resident set size of this process, in bytes (/proc/self/statm). */
size_t bench_rss(void);
/* Harness memory that does not come from the allocator under test. */
void *bench_map(size_t bytes);
void bench_unmap(void *p, size_t bytes);
/* A small, fast, deterministic generator (xorshift64*). */
static inline uint64_t bench_rand(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}
/* Fills perm[0..n) with a random permutation of 0..n-1 (fixed seed). */
void bench_permutation(uint32_t *perm, size_t n, uint64_t seed);
/* Prints which library serves malloc and whether kslab's API is present. */
void bench_print_info(FILE *out);

/* ---- single-thread malloc-family workloads (workloads.c) ---- */

uint64_t wl_malloc_free(size_t size, uint64_t n);
/* Orders in which a batch is freed. */
enum bench_order { ORDER_LIFO, ORDER_FIFO, ORDER_RANDOM };
/* A batch: n allocations of mixed sizes 16…256, then n frees in @order. */
struct wl_batch {
    size_t n;
    void **slots;
    uint32_t *perm;
    size_t *sizes;
};
int wl_batch_init(struct wl_batch *b, size_t n);
void wl_batch_fini(struct wl_batch *b);
uint64_t wl_batch_run(struct wl_batch *b, enum bench_order order);
/* realloc a block from 16 bytes up to @max, growing by @step bytes, or by
 * half when @step is 0; an operation is one realloc. */
uint64_t wl_realloc_grow(size_t max, size_t step);
/* malloc(size), write one byte per page, free; operation = the pair. */
uint64_t wl_large(size_t size, uint64_t n);
/* Fragmentation: allocate @n objects of 16…2048 bytes (mostly small), free
 * 9 in 10 in random order, then allocate as many bytes again in objects of
 * 1…4 KiB (can the holes be reused for other sizes?), then free it all.
 * Reports the growth of RSS over the start after each phase, in bytes, the
 * bytes live after the free, and the highest RSS growth seen. */
struct wl_frag_result {
    size_t rss_after_alloc, rss_after_free, rss_after_refill, peak_rss;
    size_t live_after_free;
};
uint64_t wl_frag(size_t n, struct wl_frag_result *r);

/* ---- two-thread workloads (threads.c) ---- */

/* Two threads, each allocating @n objects that the other one frees (two
 * single-producer single-consumer rings); operation = one object. */
uint64_t wl_prodcons(uint64_t n);
/* Larson-style server: @threads threads each replace @n random objects of a
 * shared array of @slots pointers (16…1024 bytes); the object replaced was
 * often allocated by another thread.  Operation = one replacement. */
struct wl_larson;
struct wl_larson *wl_larson_init(size_t slots);
uint64_t wl_larson_run(struct wl_larson *l, int threads, uint64_t n);
void wl_larson_fini(struct wl_larson *l);

/* ---- the shapes of other allocator benchmarks (shapes.c) ---- */

/* @threads threads each build and tear down @rounds trees of @nodes nodes
 * (1 in 64 of 64 ... 360 KiB, the rest 16 ... 700 B); operation = a node. */
uint64_t wl_tree(int threads, size_t nodes, uint64_t rounds);
/* mstress: @threads threads, @steps replacements each of random linear
 * sizes with rare very large ones, some handed between threads. */
uint64_t wl_mstress(int threads, uint64_t steps);
/* malloc-large: @steps allocations of 5 ... 25 MiB, zeroed, 20 alive. */
uint64_t wl_large_loop(uint64_t steps);
/* alloc-test: @threads threads, @steps replacements each of objects of
 * 8 B ... 32 KiB in an array of 2048. */
uint64_t wl_alloctest(int threads, uint64_t steps);

/* ---- kslab's own API, when libkslab.so is preloaded (kslab_api.c) ---- */

typedef struct kmem_cache_s kmem_cache_t;
struct bench_kslab {
    kmem_cache_t *(*kmem_cache_create)(
        const char *, size_t, size_t, unsigned long,
        void (*)(void *, kmem_cache_t *, unsigned long),
        void (*)(void *, kmem_cache_t *, unsigned long));
    int (*kmem_cache_destroy)(kmem_cache_t *);
    void *(*kmem_cache_alloc)(kmem_cache_t *, int);
    void (*kmem_cache_free)(kmem_cache_t *, void *);
    void *(*kmalloc)(size_t, int);
    void (*kfree)(const void *);
};
/* Non-NULL when every symbol above was found. */
const struct bench_kslab *bench_kslab(void);
/* Batches of @batch objects: allocate them all, then free them (LIFO);
 * operation = one object.  The malloc twins do the same with malloc/free so
 * the rows sit side by side. */
uint64_t wl_cache_batch(kmem_cache_t *c, size_t batch, uint64_t rounds);
uint64_t wl_kmalloc_batch(size_t size, size_t batch, uint64_t rounds);
uint64_t wl_malloc_batch(size_t size, size_t batch, uint64_t rounds);

#ifdef __cplusplus
}
#endif
#endif /* KSLAB_BENCH_H */
