/*
 * peers.c — the shapes of peer benchmarks where small objects cross threads
 * or many threads churn at once (their names in brackets):
 *
 *  prodcons_mn  [mimalloc-bench's xmalloc-test] producer threads allocate,
 *               consumer threads free; one single-producer single-consumer
 *               ring for every producer and consumer pair, so no lock but
 *               the allocator's is taken and every free is remote.
 *  glibc_simple [glibc benchtests/bench-malloc-simple] one thread allocates
 *               a batch of blocks of one small size and frees it, for
 *               batches of 25, 100, 400 and 1600.
 *  glibc_thread [glibc benchtests/bench-malloc-thread] threads each replace
 *               random slots of their own working set of 1024 with blocks
 *               of an inverse square size distribution, 4 B ... 32 KiB.
 *  sweep        the same small-block churn in 1 ... 256 threads, then every
 *               thread frees everything and parks: RSS then, less RSS with
 *               the same threads parked before they allocated, is what the
 *               allocator caches for threads that hold nothing (per-thread
 *               caches grow with the thread count, per-CPU ones do not).
 *
 * Threads wait with sched_yield() (the machine may have fewer cores than
 * threads).  Harness memory comes from bench_map(), never the allocator.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "peers.h"

#define PC_MAX 8      /* producers, and consumers, at most */
#define PC_RING 256   /* slots a ring (power of two) */
#define SWEEP_MAX 256 /* threads of the sweep at most */

/* Starts fn(args[i]) in @threads threads and joins them: 0, or -1 when a
 * thread could not be started (those started are joined). */
static int run_all(int threads, void *(*fn)(void *), void *args, size_t argsize)
{
    pthread_t *t = bench_map((size_t)threads * sizeof *t);
    int started = 0;
    if (!t)
        return -1;
    for (; started < threads; started++)
        if (pthread_create(&t[started], NULL, fn,
                           (char *)args + (size_t)started * argsize))
            break;
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    bench_unmap(t, (size_t)threads * sizeof *t);
    return started == threads ? 0 : -1;
}

/* ---- prodcons_mn ---- */

struct pc_ring {
    _Alignas(64) _Atomic size_t head; /* written by the consumer */
    _Alignas(64) _Atomic size_t tail; /* written by the producer */
    _Alignas(64) void *slot[PC_RING];
};

struct pc_shared {
    int producers, consumers;
    uint64_t n;
    _Atomic int done; /* producers finished */
    struct pc_ring ring[PC_MAX][PC_MAX];
};

struct pc_arg {
    struct pc_shared *sh;
    int id, producer;
};

static void pc_produce(struct pc_shared *sh, int id)
{
    uint64_t s = 0x9E3779B97F4A7C15ULL * (uint64_t)(id + 1);
    int c = id % sh->consumers; /* spread the producers' first targets */
    for (uint64_t made = 0; made < sh->n;) {
        int sent = 0;
        for (int k = 0; k < sh->consumers && made < sh->n; k++) {
            struct pc_ring *r = &sh->ring[id][c];
            c = c + 1 == sh->consumers ? 0 : c + 1;
            size_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
            size_t h = atomic_load_explicit(&r->head, memory_order_acquire);
            /* A short burst to each consumer in turn. */
            for (int b = 0; b < 16 && made < sh->n && t - h < PC_RING; b++) {
                char *p = malloc(16 + bench_rand(&s) % 241);
                if (!p)
                    abort();
                p[0] = 1;
                r->slot[t % PC_RING] = p;
                t++;
                made++;
                sent = 1;
            }
            atomic_store_explicit(&r->tail, t, memory_order_release);
        }
        if (!sent)
            sched_yield();
    }
    atomic_fetch_add_explicit(&sh->done, 1, memory_order_release);
}

/* Frees what the producers sent to consumer id: 1 if anything was there. */
static int pc_drain(struct pc_shared *sh, int id)
{
    int got = 0;
    for (int p = 0; p < sh->producers; p++) {
        struct pc_ring *r = &sh->ring[p][id];
        size_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
        size_t t = atomic_load_explicit(&r->tail, memory_order_acquire);
        for (; h != t; h++, got = 1)
            free(r->slot[h % PC_RING]);
        atomic_store_explicit(&r->head, h, memory_order_release);
    }
    return got;
}

static void *pc_thread(void *arg)
{
    struct pc_arg *a = arg;
    struct pc_shared *sh = a->sh;
    if (a->producer) {
        pc_produce(sh, a->id);
        return NULL;
    }
    for (;;) {
        /* Everything a finished producer sent is visible once done is. */
        int all = atomic_load_explicit(&sh->done, memory_order_acquire) ==
                  sh->producers;
        if (!pc_drain(sh, a->id)) {
            if (all)
                return NULL;
            sched_yield();
        }
    }
}

uint64_t wl_prodcons_mn(int producers, int consumers, uint64_t n)
{
    if (producers < 1 || producers > PC_MAX || consumers < 1 ||
        consumers > PC_MAX)
        return 0;
    struct pc_shared *sh = bench_map(sizeof *sh);
    struct pc_arg arg[2 * PC_MAX];
    if (!sh)
        return 0;
    sh->producers = producers;
    sh->consumers = consumers;
    sh->n = n;
    for (int i = 0; i < producers + consumers; i++)
        arg[i] = (struct pc_arg){sh, i < producers ? i : i - producers,
                                 i < producers};
    int err = run_all(producers + consumers, pc_thread, arg, sizeof arg[0]);
    bench_unmap(sh, sizeof *sh);
    return err ? 0 : n * (uint64_t)producers;
}

/* ---- glibc_simple ---- */

uint64_t wl_glibc_simple(size_t size)
{
    enum { MOST = 1600 };
    static const int batch[] = {25, 100, 400, MOST};
    char **slot = bench_map(MOST * sizeof *slot);
    uint64_t ops = 0;
    if (!slot)
        return 0;
    for (size_t b = 0; b < sizeof batch / sizeof batch[0]; b++)
        for (int round = 0; round < MOST / batch[b]; round++) {
            for (int i = 0; i < batch[b]; i++) {
                slot[i] = malloc(size);
                if (!slot[i])
                    abort();
                slot[i][0] = 1;
            }
            for (int i = 0; i < batch[b]; i++)
                free(slot[i]);
            ops += (uint64_t)batch[b];
        }
    bench_unmap(slot, MOST * sizeof *slot);
    return ops;
}

/* ---- glibc_thread ---- */

#define GT_SET 1024
#define GT_SIZES 8000
#define GT_OFFSETS (4 * GT_SET)

struct gt_tables {
    uint32_t size[GT_SIZES], offset[GT_OFFSETS];
};

struct gt_arg {
    const struct gt_tables *tab;
    uint64_t steps;
    unsigned int start; /* where this thread starts in the tables */
};

/* Sizes with density proportional to 1/x^2 on [4, 32768] (inverse
 * transform: 1/x is uniform between 1/32768 and 1/4). */
static void gt_fill(struct gt_tables *tab)
{
    uint64_t s = 88;
    for (size_t i = 0; i < GT_SIZES; i++) {
        double u = (double)(bench_rand(&s) >> 11) / (double)(1ULL << 53);
        double inv = 1.0 / 4 + u * (1.0 / 32768 - 1.0 / 4);
        tab->size[i] = (uint32_t)(1.0 / inv);
    }
    for (size_t i = 0; i < GT_OFFSETS; i++)
        tab->offset[i] = (uint32_t)(bench_rand(&s) % GT_SET);
}

static void *gt_thread(void *arg)
{
    struct gt_arg *a = arg;
    char **set = bench_map(GT_SET * sizeof *set);
    unsigned int si = a->start % GT_SIZES, oi = a->start % GT_OFFSETS;
    if (!set)
        abort();
    for (uint64_t s = 0; s < a->steps; s++) {
        si = si + 1 == GT_SIZES ? 0 : si + 1;
        oi = oi + 1 == GT_OFFSETS ? 0 : oi + 1;
        char **p = &set[a->tab->offset[oi]];
        free(*p);
        *p = malloc(a->tab->size[si]);
        if (!*p)
            abort();
        (*p)[0] = 1;
    }
    for (size_t i = 0; i < GT_SET; i++)
        free(set[i]);
    bench_unmap(set, GT_SET * sizeof *set);
    return NULL;
}

uint64_t wl_glibc_thread(int threads, uint64_t steps)
{
    if (threads < 1 || threads > SWEEP_MAX)
        return 0;
    struct gt_tables *tab = bench_map(sizeof *tab);
    struct gt_arg *arg = bench_map((size_t)threads * sizeof *arg);
    int err = -1;
    if (tab && arg) {
        gt_fill(tab);
        for (int i = 0; i < threads; i++)
            arg[i] = (struct gt_arg){tab, steps, 997u * (unsigned)i};
        err = run_all(threads, gt_thread, arg, sizeof arg[0]);
    }
    if (arg)
        bench_unmap(arg, (size_t)threads * sizeof *arg);
    if (tab)
        bench_unmap(tab, sizeof *tab);
    return err ? 0 : steps * (uint64_t)threads;
}

/* ---- sweep ---- */

#define SW_SLOTS 256
#define SW_STACK 32768 /* stack a thread touches before the baseline */

struct sw_shared {
    pthread_barrier_t parked, churned, leave;
    uint64_t steps;
};

struct sw_arg {
    struct sw_shared *sh;
    char **slot; /* SW_SLOTS, mapped and touched before the baseline */
    uint64_t seed;
};

/* Touches the stack the churn will use, so its pages are in the baseline
 * whatever depth the allocator's calls reach. */
static __attribute__((noinline)) void sw_touch_stack(void)
{
    char pad[SW_STACK];
    memset(pad, 0, sizeof pad);
    bench_escape(pad);
}

static void *sw_thread(void *arg)
{
    struct sw_arg *a = arg;
    sw_touch_stack();
    pthread_barrier_wait(&a->sh->parked); /* baseline read now */
    pthread_barrier_wait(&a->sh->parked); /* go */
    for (uint64_t s = 0; s < a->sh->steps; s++) {
        uint64_t x = bench_rand(&a->seed);
        char **p = &a->slot[x % SW_SLOTS];
        free(*p);
        *p = malloc(16 + (x >> 32) % 497);
        if (!*p)
            abort();
        (*p)[0] = 1;
    }
    for (size_t i = 0; i < SW_SLOTS; i++) {
        free(a->slot[i]);
        a->slot[i] = NULL;
    }
    pthread_barrier_wait(&a->sh->churned); /* parked, holding nothing */
    pthread_barrier_wait(&a->sh->leave);
    return NULL;
}

uint64_t wl_sweep(int threads, uint64_t steps, size_t *cached)
{
    *cached = 0;
    if (threads < 1 || threads > SWEEP_MAX)
        return 0;
    size_t slots = (size_t)threads * SW_SLOTS * sizeof(char *);
    size_t tids = (size_t)threads * sizeof(pthread_t);
    struct sw_shared *sh = bench_map(sizeof *sh);
    struct sw_arg *arg = bench_map((size_t)threads * sizeof *arg);
    char **slot = bench_map(slots);
    pthread_t *t = bench_map(tids);
    int started = 0;
    uint64_t ops = 0;
    if (!sh || !arg || !slot || !t)
        goto out;
    memset(slot, 0, slots); /* in the baseline */
    sh->steps = steps;
    pthread_barrier_init(&sh->parked, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&sh->churned, NULL, (unsigned)threads + 1);
    pthread_barrier_init(&sh->leave, NULL, (unsigned)threads + 1);
    for (; started < threads; started++) {
        arg[started] =
            (struct sw_arg){sh, slot + (size_t)started * SW_SLOTS,
                            0xD6E8FEB86659FD93ULL * (uint64_t)(started + 1)};
        if (pthread_create(&t[started], NULL, sw_thread, &arg[started]))
            abort(); /* the barriers count every thread */
    }
    pthread_barrier_wait(&sh->parked);
    size_t base = bench_rss();
    pthread_barrier_wait(&sh->parked);
    pthread_barrier_wait(&sh->churned);
    size_t after = bench_rss();
    *cached = after > base ? after - base : 0;
    pthread_barrier_wait(&sh->leave);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&sh->parked);
    pthread_barrier_destroy(&sh->churned);
    pthread_barrier_destroy(&sh->leave);
    ops = steps * (uint64_t)threads;
out:
    if (t)
        bench_unmap(t, tids);
    if (slot)
        bench_unmap(slot, slots);
    if (arg)
        bench_unmap(arg, (size_t)threads * sizeof *arg);
    if (sh)
        bench_unmap(sh, sizeof *sh);
    return ops;
}
