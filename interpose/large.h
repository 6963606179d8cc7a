/*
 * interpose/large.h — large malloc blocks: page-granular blocks above
 * LARGE_MIN_SIZE (64 KiB), for the interposer.
 *
 * A block of up to LARGE_BUDDY_MAX_PAGES frames is a run of low-memory
 * frames from the buddy zones (vm_alloc_pages_exact); its head page carries
 * PG_private and its length in frames in page->private.  A bigger block (or
 * one whose alignment does not fit a buddy block, or any block when low
 * memory is exhausted) is a host mapping of its own ("huge", huge.c),
 * recorded in a table keyed by its address; freed huge blocks are kept as
 * address ranges (a pool, huge_pool.c) for the next ones, bounded by the
 * recent peak of the live huge bytes plus HUGE_CACHE_MAX_BYTES, and decay
 * by time.
 *
 * Freed buddy blocks go first to a cache of the freeing thread (below and
 * large_tcache.c), so a thread that frees and allocates large blocks takes
 * no global lock.  large.c holds the interface declared here.
 *
 * Every function is thread-safe: buddy blocks are serialised by the zone
 * locks of the page layer, huge blocks by one mutex (ip_huge_lock), a
 * thread's cache by a lock of its own that only ip_large_trim(), the
 * statistics and fork take from another thread.
 */
#ifndef KSLAB_INTERPOSE_LARGE_H
#define KSLAB_INTERPOSE_LARGE_H

#include <stddef.h>

#include "vm/frames/page.h"

/* malloc requests above this size are large blocks (the slab's classes
 * are powers of two from 32 KiB: a block of 64 KiB + 1 would take 128 KiB
 * there, a run of 17 frames here).  kmalloc keeps its caches up to
 * KMALLOC_MAX_SIZE. */
#define LARGE_MIN_SIZE (64UL << 10)
/* A realloc that grows a block to more than this size takes a block of
 * whole pages (a buddy block, which later growth extends in place over
 * the free frames after it, as glibc's realloc extends a chunk into its
 * free neighbour), rather than copying at every slab class up to
 * LARGE_MIN_SIZE; a block of pages shrunk to this size or less goes back
 * to a slab object.  Such a block has 9 frames or more: freed, it goes to
 * the thread's cache of large blocks (LARGE_TCACHE_*, whose smallest
 * class that is), not to the zones.  (With 16 KiB here, a python3 run of
 * bench/programs peaked 2 MiB higher.) */
#define LARGE_GROW_MIN_SIZE (32UL << 10)
/* Largest block served from the buddy zones: one block of the top order. */
#define LARGE_BUDDY_MAX_PAGES (1UL << (MAX_ORDER - 1))
/* Blocks this big or bigger are own mappings unless mallopt says else. */
#define LARGE_MMAP_THRESHOLD_DEFAULT ((LARGE_BUDDY_MAX_PAGES + 1) << PAGE_SHIFT)
extern size_t ip_large_mmap_threshold;
/* At most this many own mappings live at once (M_MMAP_MAX; glibc's
 * default): past it a block that fits a buddy block comes from low memory.
 * A bigger one, or one when low memory is full, is still a mapping. */
#define LARGE_MMAP_MAX_DEFAULT 65536
extern int ip_large_mmap_max;

/* Freed huge memory kept for reuse (each range at most the decay time,
 * vm_purge_decay_ms): at most what the live huge bytes are below their
 * peak of the last one or two decay times, plus this headroom ... */
#define HUGE_CACHE_MAX_BYTES (64UL << 20)
/* ... in at most this many address ranges. */
#define HUGE_CACHE_SLOTS 32

/*
 * The per-thread cache of freed buddy blocks: by size class (8 classes per
 * doubling of the length, 9 ... 512 frames), at most LARGE_TCACHE_BIN
 * blocks a class, and a thread keeps at most a 2^-LARGE_TCACHE_LIVE_SHIFT
 * share of the bytes of buddy blocks it has live (it allocated and has not
 * freed), within [LARGE_TCACHE_MIN_BYTES, LARGE_TCACHE_MAX_BYTES].  (In
 * bench/'s tree shape, four threads building and tearing down trees of 13
 * MiB of such blocks, a flat 8 MiB a thread kept about 13 MiB more at the
 * peak of RSS.)  A block in it is
 * free to the program (its head loses PG_private, so a second free of it
 * is IP_LARGE_BAD) and held by the thread; it goes back to the zones at
 * thread exit, by ip_large_trim() and when the zones run short.
 */
#define LARGE_TCACHE_CLASSES 48
#define LARGE_TCACHE_BIN 8
#define LARGE_TCACHE_MAX_BYTES (8UL << 20)
#define LARGE_TCACHE_MIN_BYTES (1UL << 20)
#define LARGE_TCACHE_LIVE_SHIFT 2

/* Totals for kslab_stats_print(); a consistent-enough snapshot. */
struct ip_large_stats {
    unsigned long nr_alloc;    /* blocks ever allocated */
    unsigned long nr_free;     /* blocks ever freed */
    unsigned long live_blocks; /* buddy blocks in use */
    unsigned long live_pages;  /* their frames */
    unsigned long huge_blocks; /* own mappings in use */
    unsigned long huge_bytes;  /* their bytes */
    unsigned long huge_cached; /* freed ranges kept for reuse */
    unsigned long huge_cached_bytes;
    unsigned long huge_unmapped_bytes; /* bytes given back with munmap */
    unsigned long grow_in_place;       /* realloc grown without a copy */
    unsigned long moved;               /* realloc that had to copy */
    unsigned long huge_max_blocks;     /* high-water marks of own mappings */
    unsigned long huge_max_bytes;
    unsigned long tcache_blocks; /* buddy blocks held in thread caches */
    unsigned long tcache_bytes;
    unsigned long tcache_hits;     /* allocations served by a thread cache */
    unsigned long huge_cache_hits; /* ... by a range of the pool */
    unsigned long huge_gathered;   /* ... by ranges moved together */
};

/*
 * ip_large_alloc - a page-aligned block of at least size bytes.
 * @align: a power of two; blocks are aligned to max(align, PAGE_SIZE).
 * @zero:  nonzero to return zeroed memory (calloc).
 * Returns NULL with errno ENOMEM when the size cannot be served.
 */
void *ip_large_alloc(size_t size, size_t align, int zero);

/* Outcome of ip_large_free(). */
enum { IP_LARGE_BAD = -1, IP_LARGE_NOT_OURS = 0, IP_LARGE_FREED = 1 };

/*
 * ip_large_free - frees a large block.  Returns IP_LARGE_FREED, or
 * IP_LARGE_BAD for an address in low memory that is not the head of a live
 * large block (a freed block, an interior pointer), or IP_LARGE_NOT_OURS
 * for an address kslab never mapped.  errno is preserved.
 */
int ip_large_free(void *p);

/* Usable bytes of a live large block; 0 when p is not one. */
size_t ip_large_usable(const void *p);

/*
 * ip_large_realloc - resizes the live large block p to size bytes (size >
 * LARGE_GROW_MIN_SIZE): in place when the following frames are free, by
 * mremap for a huge mapping, else by allocate-copy-free.  A buddy block
 * that grows takes half as much again when it can (room for the next
 * growth: in place, or in the block it moves to).  Returns the block, or
 * NULL with errno ENOMEM leaving p untouched.
 */
void *ip_large_realloc(void *p, size_t size);

void ip_large_get_stats(struct ip_large_stats *st);

/* Empties every thread's cache of buddy blocks and unmaps every cached
 * huge mapping (malloc_trim); returns the bytes given back. */
size_t ip_large_trim(void);

/* Under an address-space limit (RLIMIT_AS), after an allocation failed:
 * gives back the address space kslab holds for memory nobody uses (free
 * slabs, cached blocks, the pool of huge ranges, sections of low memory
 * whose frames are all free).  Returns nonzero when anything went (worth
 * trying again); 0 at once without a limit.  No kslab lock held. */
size_t ip_large_aspace_reclaim(void);

/* The large blocks' fork handlers (the thread caches' locks, then the
 * huge blocks' lock), called by the layer's fork hook (interpose/init.c). */
/*
 * Another home for the huge blocks: libkslab-vm.so (vmmode/) puts them in
 * the process's emulated mm (its brk heap, or do_mmap anonymous
 * mappings).  Set once, at its start-up.  huge.c records every huge
 * block, the hook's too, in its one table (address, length, home), so
 * blocks made before the hook stay host memory and are still freed
 * there.  alloc returns memory aligned to align, zeroed when zero, or
 * NULL (then huge.c maps host memory); free gives back a block it made
 * (len its recorded length); resize resizes such a block in place and
 * returns 0, or -1 (the caller moves it).  Called without ip_huge_lock.
 */
struct ip_huge_hook {
    void *(*alloc)(size_t len, size_t align, int zero);
    void (*free)(void *p, size_t len);
    int (*resize)(void *p, size_t old, size_t len);
};
void ip_huge_set_hook(const struct ip_huge_hook *hook);

void ip_large_fork_prepare(void);
void ip_large_fork_parent(void);
void ip_large_fork_child(void);

#endif /* KSLAB_INTERPOSE_LARGE_H */
