/*
 * peers.h — workloads in the shapes of other allocator benchmarks where
 * small objects cross threads or many threads churn at once (peers.c);
 * peers.cc registers them.  Same rules as bench.h: plain C, a fixed amount
 * of work per call, the number of operations returned.
 */
#ifndef KSLAB_BENCH_PEERS_H
#define KSLAB_BENCH_PEERS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* @producers threads allocate @n objects each (16 ... 256 B) and hand them
 * to @consumers threads, which free them (xmalloc-test's shape); every free
 * is remote.  Operation = one object. */
uint64_t wl_prodcons_mn(int producers, int consumers, uint64_t n);

/* glibc's bench-malloc-simple: batches of 25, 100, 400 and 1600
 * allocations of @size bytes, each batch freed in allocation order, 1600
 * allocations per batch size; one thread.  Operation = one pair. */
uint64_t wl_glibc_simple(size_t size);

/* glibc's bench-malloc-thread: @threads threads, each replacing random
 * slots of its own 1024 with blocks of 4 B ... 32 KiB drawn from an inverse
 * square distribution (most below 64 B), @steps replacements a thread.
 * Operation = one replacement. */
uint64_t wl_glibc_thread(int threads, uint64_t steps);

/* The thread-count sweep: @threads threads each replace random slots of
 * their own 256 with blocks of 16 ... 512 B, @steps times, free everything
 * and park.  While all are parked, *cached is the growth of RSS over the
 * RSS with the same threads parked before their first allocation: the
 * memory the allocator keeps for threads that hold nothing.  Operation =
 * one replacement. */
uint64_t wl_sweep(int threads, uint64_t steps, size_t *cached);

#ifdef __cplusplus
}
#endif
#endif /* KSLAB_BENCH_PEERS_H */
