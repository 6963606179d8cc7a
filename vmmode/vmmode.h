/*
 * vmmode/vmmode.h — libkslab-vm.so: a program's memory in one emulated
 * mm_struct (the process's "current->mm"), shared by the files of the
 * layer: init.c (start-up, the swap area, KSLAB_STATS), heap.c (the
 * malloc family's large blocks in the brk heap or do_mmap mappings), mman.c
 * (the program's own mmap, munmap, mremap, mprotect, madvise, brk and sbrk) and
 * io.c (the libc calls through which the host kernel reads or writes the
 * program's memory) and stats.c (maps, meminfo and vmstat: KSLAB_STATS
 * and the live files of KSLAB_VM_STATS_DIR).
 *
 * The mm's user address a is at vmm_base + a in the process (the mm's
 * window, vm/mm/fault.c): every pointer the program gets from here is a
 * window address.  Locking: vmm_lock serialises every change of the mm's
 * address space made here (it is taken before the mm's mmap_sem, and
 * before kslab's fork locks: its fork handler is registered after
 * kslab's, so it runs first), so that a look at the free room and the
 * mapping made there are one step; faults need only mmap_sem.
 */
#ifndef KSLAB_VMMODE_VMMODE_H
#define KSLAB_VMMODE_VMMODE_H

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vm/mm/mm.h"

/* The process's mm (NULL until start-up made it) and its window's base
 * (0 until then: no address is in the window). */
extern struct mm_struct *vmm_mm;
extern _Atomic uintptr_t vmm_base;
extern pthread_mutex_t vmm_lock;

/* Makes the mm, once: 0, or -1 when it could not be made (then every
 * call passes through to the host). */
int vmm_ready(void);

/* Does [p, p + len) touch the window? */
static inline int vmm_touches(const void *p, size_t len)
{
    uintptr_t b = atomic_load_explicit(&vmm_base, memory_order_relaxed);
    uintptr_t a = (uintptr_t)p;
    return b && a < b + TASK_SIZE && a + (len ? len : 1) > b;
}

/* Is [p, p + len) wholly inside the window? */
static inline int vmm_inside(const void *p, size_t len)
{
    uintptr_t b = atomic_load_explicit(&vmm_base, memory_order_relaxed);
    uintptr_t a = (uintptr_t)p;
    return b && a >= b && len <= TASK_SIZE && a - b <= TASK_SIZE - len;
}

static inline unsigned long vmm_user(const void *p)
{
    return (unsigned long)((uintptr_t)p - atomic_load_explicit(
                                              &vmm_base, memory_order_relaxed));
}

static inline void *vmm_host(unsigned long addr)
{
    return (void *)(atomic_load_explicit(&vmm_base, memory_order_relaxed) +
                    addr);
}

/* Is [addr, addr + len) of the mm free of vmas?  vmm_lock held. */
int vmm_room(unsigned long addr, unsigned long len);

/* heap.c: the malloc family's large blocks (interpose/large.h's hook):
 * the brk heap and do_mmap mappings; installed by start-up. */
struct vmm_heap_stats {
    unsigned long heap_blocks, heap_bytes; /* live blocks in the heap */
    unsigned long heap_size;               /* bytes the break covers */
    unsigned long heap_dirty; /* bytes of freed pages kept, not zapped */
    unsigned long map_blocks, map_bytes; /* live blocks that are mappings */
};
void vmm_heap_init(void);
void vmm_heap_stats(struct vmm_heap_stats *st);
void vmm_heap_fork_child(void);

/* slabpages.c: the malloc family's small blocks (slab objects) in the
 * mm: the page source of the second set of malloc caches; installed by
 * start-up.  vmm_forking: from vmmode's fork prepare to its child or
 * parent handler (no chunk of the mm is added then). */
struct vmm_slab_stats {
    unsigned long chunks;      /* 4 MiB ranges of the mm mapped for slabs */
    unsigned long slab_bytes;  /* bytes of them in slabs */
    unsigned long dirty_bytes; /* freed slab pages kept, not zapped */
    unsigned long host_bytes;  /* slabs of these caches in host memory */
};
extern _Atomic int vmm_forking;
void vmm_slab_init(void);
void vmm_slab_stats(struct vmm_slab_stats *st);

/* mman.c: MADV_DONTNEED on [start, end) of the mm (zap_page_range of
 * every vma there); 0 or -ENOMEM.  vmm_lock held. */
int vmm_dontneed(unsigned long start, unsigned long end);

/* init.c: bytes of the swap area (0: none). */
extern unsigned long vmm_swap_bytes;

/* stats.c: the KSLAB_STATS report of the mm; the live files' thread,
 * started by vmm_stats_poke (called outside every lock, at the first large
 * block or emulated mmap); the fork child's reset. */
extern _Atomic int vmm_stats_state;
void vmm_stats(FILE *out);
void vmm_stats_start(void);
void vmm_stats_fork_child(void);

static inline void vmm_stats_poke(void)
{
    if (__builtin_expect(
            atomic_load_explicit(&vmm_stats_state, memory_order_relaxed) == 0,
            0))
        vmm_stats_start();
}

/* Page bitmaps (heap.c's and slabpages.c's): bit i of map, and n bits
 * from `from` set (on) or cleared. */
#define BITS (8 * sizeof(unsigned long))
static inline int vmm_bit(const unsigned long *map, unsigned long i)
{
    return (map[i / BITS] >> (i % BITS)) & 1;
}

static inline void vmm_set_bits(unsigned long *map, unsigned long from,
                                unsigned long n, int on)
{
    for (unsigned long i = from; i < from + n; i++) {
        if (on)
            map[i / BITS] |= 1UL << (i % BITS);
        else
            map[i / BITS] &= ~(1UL << (i % BITS));
    }
}

/* libc's own function called name (dlsym(RTLD_NEXT)), looked up once and
 * kept in *cache: what the wrappers of io.c and libcobj.c call on to. */
typedef void (*vmm_any_fn)(void);

static inline vmm_any_fn vmm_libc_fn(vmm_any_fn _Atomic *cache,
                                     const char *name)
{
    vmm_any_fn f = atomic_load_explicit(cache, memory_order_acquire);
    if (!f) {
        f = (vmm_any_fn)dlsym(RTLD_NEXT, name);
        atomic_store_explicit(cache, f, memory_order_release);
    }
    return f;
}

#endif /* KSLAB_VMMODE_VMMODE_H */
