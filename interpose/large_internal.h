/*
 * interpose/large_internal.h — what the files of the large blocks share,
 * and nothing else includes: the counters, the huge blocks' ranges and
 * lock, and each file's calls into the others.
 *
 * interpose/large.c       the interface (interpose/large.h): buddy blocks,
 *                         the choice buddy or huge, realloc, statistics,
 *                         trim, the fork hook
 * interpose/huge.c        huge blocks: the table of live ones (by address),
 *                         their allocation, free and resizing
 * interpose/huge_pool.c   the pool of freed huge address ranges, its decay,
 *                         and the address-space give-back under RLIMIT_AS
 * interpose/large_tcache.c  the per-thread cache of freed buddy blocks
 *
 * Lock order inside the layer (lib/fork.c has the whole one): the thread
 * registry's IP level lock (lib/thread.c), each thread cache's lock,
 * ip_huge_lock.  ip_huge_lock guards the table
 * of huge.c and the pool of huge_pool.c; no other lock is taken under it.
 * A function whose name starts with __ expects ip_huge_lock held.
 */
#ifndef KSLAB_INTERPOSE_LARGE_INTERNAL_H
#define KSLAB_INTERPOSE_LARGE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "interpose/large.h"

/* The counters behind ip_large_get_stats(): relaxed atomics. */
struct ip_large_counters {
    _Atomic unsigned long nr_alloc, nr_free, live_blocks, live_pages;
    _Atomic unsigned long huge_blocks, huge_bytes, huge_unmapped_bytes;
    _Atomic unsigned long grow_in_place, moved;
    _Atomic unsigned long huge_max_blocks, huge_max_bytes;
    _Atomic unsigned long tcache_hits, huge_cache_hits, huge_gathered;
};
extern struct ip_large_counters ip_large_st;

#define ADD(ctr, v)                                                            \
    atomic_fetch_add_explicit(&ip_large_st.ctr, (v), memory_order_relaxed)
#define SUB(ctr, v)                                                            \
    atomic_fetch_sub_explicit(&ip_large_st.ctr, (v), memory_order_relaxed)
#define GET(ctr) atomic_load_explicit(&ip_large_st.ctr, memory_order_relaxed)

/* Raises the high-water mark ctr to at least v. */
#define HIGH(ctr, v)                                                           \
    do {                                                                       \
        unsigned long _v = (v), _o = GET(ctr);                                 \
        while (_o < _v && !atomic_compare_exchange_weak_explicit(              \
                              &ip_large_st.ctr, &_o, _v, memory_order_relaxed, \
                              memory_order_relaxed))                           \
            ;                                                                  \
    } while (0)

/* ---- huge blocks (huge.c) ---- */

/* A range of huge memory: a live block in the table, or a freed range in
 * the pool. */
struct huge_ent {
    uintptr_t addr; /* 0 = empty */
    size_t len;     /* bytes mapped, a multiple of PAGE_SIZE */
    int hooked;     /* a live block of the hook's home (large.h) */
};

extern pthread_mutex_t ip_huge_lock;

void *ip_huge_alloc(size_t len, size_t align, int zero);
/* 1, or 0 when p is not a huge block. */
int ip_huge_free(void *p);
/* The block's bytes; 0 when p is not one. */
size_t ip_huge_usable(const void *p);
/* NULL (errno kept) leaves p be: the caller moves it. */
void *ip_huge_realloc(void *p, size_t len);

/* ---- the pool of freed huge ranges (huge_pool.c) ---- */

/* Ranges to unmap once ip_huge_lock is dropped. */
struct huge_drop {
    int n;
    struct huge_ent r[HUGE_CACHE_SLOTS + 2];
};
/* Unmaps what was dropped (no lock held). */
void ip_huge_drop_unmap(struct huge_drop *d);

void *__ip_huge_pool_take(size_t len, size_t *got);
int __ip_huge_pool_may_grow(size_t len);
int __ip_huge_pool_claim(size_t len, struct huge_ent *r);
void __ip_huge_pool_put(uintptr_t addr, size_t len, struct huge_drop *d);
int __ip_huge_pool_grow_into(struct huge_ent *e, size_t len);
void __ip_huge_peak_note(void);
/* A huge block was allocated now (the decay's clock). */
void __ip_huge_pool_note_alloc(void);
/* limited: an address-space limit is in force, the pool keeps nothing. */
void __ip_huge_pool_set_limited(int limited);
void *ip_huge_gather(size_t len, struct huge_ent *r, int n, size_t *dirty);
/* The page layer's hooks (vm_purge_register, vm_aspace_register). */
unsigned long ip_huge_decay(unsigned long now, unsigned long decay);
size_t ip_huge_aspace_release(void);
/* malloc_trim: unmaps every range; the bytes. */
size_t ip_huge_pool_trim(void);
void ip_huge_pool_stats(unsigned long *ranges, unsigned long *bytes);

/* ---- the per-thread cache of buddy blocks (large_tcache.c) ---- */

void *ip_tcache_alloc(unsigned long n, int zero);
void ip_tcache_note_alloc(unsigned long npages);
int ip_tcache_free(struct page *page);
size_t ip_tcache_flush_all(void);
void ip_tcache_sum(unsigned long *blocks, unsigned long *bytes);
void ip_tcache_fork_prepare(void);
void ip_tcache_fork_parent(void);
void ip_tcache_fork_child(void);

#endif /* KSLAB_INTERPOSE_LARGE_INTERNAL_H */
