/*
 * lib/fork.c — kslab across a host fork(), in one protocol (libumem's
 * umem_fork.c is the model): one pthread_atfork registration, made by
 * start-up (lib/init.c, level fork) whether or not the interposer is
 * linked; prepare takes every kslab lock in the order below, so that no
 * other thread is inside the allocator when the process is copied; the
 * parent releases them; the child, where only the forking thread lives
 * on, makes them anew and gives the other threads' cached objects back.
 *
 * Each layer owns its locks and registers a hook for its level
 * (kslab_fork_register); lib/ never calls up into a layer by name.  The
 * address-space emulator registers its hook when it is first used (its
 * first mm, vmalloc or swap file), so a program that never uses it takes
 * none of its locks.
 *
 * THE LOCK ORDER of kslab — every path that holds two kslab locks takes
 * them in this order, and prepare takes all of them in it:
 *
 *   1. KSLAB_FORK_MM (vm/mm/fork.c, vm_mm_fork_prepare)
 *        every mm's mmap_sem        (each taken with vm_mmlist_lock
 *                                    dropped: no path holds two)
 *        vm_mmlist_lock             vm/mm/fork.c
 *        chain_lock, windows_lock   vm/mm/fault.c: the chained SIGSEGV
 *                                    handler, the window table
 *        vmlist_lock                vm/mm/vmalloc.c
 *        pagecache_lock             vm/mm/filemap.c: the page cache
 *        h_lock, vm_swap_lock       vm/mm/swapfile.c
 *   2. KSLAB_FORK_IP (interpose/init.c, ip_fork_prepare)
 *        q_lock                     interpose/tool.c: the quarantine of
 *                                    freed blocks under valgrind (a leaf)
 *        the registry's IP level    lib/thread.c: every thread's slot for
 *                                    its large-block cache
 *        each thread cache's lock   list order
 *        ip_huge_lock               interpose/huge.c: the table of own
 *                                    mappings and the pool of freed ones
 *   3. KSLAB_FORK_INIT (lib/init.c)
 *        init_lock                  every once-only set-up (recursive)
 *   4. KSLAB_FORK_SLAB (slab/slab.c, slab_fork_prepare)
 *        cache_chain_sem            the chain of caches (recursive)
 *        the registry's SLAB level  lib/thread.c: every thread's slot for
 *                                    its arrays (slab/thread.c)
 *        cache_cache.spinlock, then every cache's spinlock, chain order,
 *          each followed by its depot's lock (slab/magazine.c; a leaf)
 *        KSLAB_DEBUG's audit stripe locks and freed_lock (slab/audit.c):
 *                                   not taken by prepare; the slab's
 *                                   child makes them anew
 *   4b. KSLAB_FORK_SLABMM (vmmode/slabpages.c, libkslab-vm.so only)
 *        sp_lock                    the slab pages cut from the process's
 *                                    mm (a leaf: slab pages are got and
 *                                    put under cache_chain_sem at most)
 *   5. KSLAB_FORK_FRAMES (vm/frames/lowmem.c, frames_fork_prepare)
 *        purge_lock                 one purge pass at a time
 *        grow_lock                  growing the direct map
 *        the zone locks             DMA, Normal, HighMem
 *        vm_highmem.lock            the high-memory frames (a leaf)
 *   6. the thread registry's list_lock (lib/thread.c): a leaf, held only
 *      inside that file; prepare takes it after every level above
 *
 * Why: a thread holding an mmap_sem allocates vmas and page tables from
 * the slab and frames (1 before 4 and 5); a lazy once-only set-up (a
 * cache of the emulator) may run with an mmap_sem held and creates a
 * cache under init_lock (1 before 3 before 4); a cache grows from the
 * zones with its own lock dropped, but the chain lock is held while
 * slabs are destroyed (4 before 5); ip_huge_lock is held around host
 * mappings only, q_lock around its ring only.  No kslab lock is taken
 * while holding one of a lower level, so prepare cannot wait for a thread
 * that waits for prepare.
 *
 * Children: their handlers run bottom to top (frames first), so a level
 * re-making its locks may already use every level below it — the slab's
 * child handler gives the dead threads' arrays back to the zones, the
 * emulator's drops the references it took on each mm.
 *
 * The one gap: pthread_atfork may allocate, so it is made once the slab
 * is up (start-up level fork).  A fork() made by another thread while the
 * very first start-up is still below that level leaves the child with
 * start-up half done and its lock held.  The interposer starts kslab from
 * a constructor, before main and any thread; a program linking the core
 * starts it at its first allocation, so it should allocate once before it
 * both forks and starts threads that may be the first to allocate.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "lib/fork.h"
#include "lib/report.h"
#include "lib/thread.h"

static _Atomic(const struct kslab_fork_hook *) hooks[KSLAB_FORK_NR_LEVELS];

/* The hooks whose prepare ran for the fork under way: parent and child
 * release exactly these, even if a hook was registered meanwhile. */
static const struct kslab_fork_hook *held[KSLAB_FORK_NR_LEVELS];

void kslab_fork_register(enum kslab_fork_level level,
                         const struct kslab_fork_hook *hook)
{
    const struct kslab_fork_hook *old = NULL;
    if ((unsigned int)level >= KSLAB_FORK_NR_LEVELS || !hook)
        kslab_die("kslab_fork_register(): bad level %d", (int)level);
    if (atomic_compare_exchange_strong_explicit(&hooks[level], &old, hook,
                                                memory_order_release,
                                                memory_order_acquire))
        return;
    if (old != hook)
        kslab_die("kslab_fork_register(): level %d has a hook already",
                  (int)level);
}

static void fork_prepare(void)
{
    for (int l = 0; l < KSLAB_FORK_NR_LEVELS; l++) {
        held[l] = atomic_load_explicit(&hooks[l], memory_order_acquire);
        if (held[l])
            held[l]->prepare();
    }
    kslab_thread_fork_prepare();
}

static void fork_parent(void)
{
    kslab_thread_fork_parent();
    for (int l = KSLAB_FORK_NR_LEVELS - 1; l >= 0; l--)
        if (held[l])
            held[l]->parent();
}

/* The thread registry's locks are made anew before the levels' children
 * run (they walk its lists), its dead records forgotten after. */
static void fork_child(void)
{
    kslab_thread_fork_child();
    for (int l = KSLAB_FORK_NR_LEVELS - 1; l >= 0; l--)
        if (held[l])
            held[l]->child();
    kslab_thread_fork_prune();
}

void kslab_fork_init(void)
{
    if (pthread_atfork(fork_prepare, fork_parent, fork_child))
        kslab_die("start-up: pthread_atfork failed");
}
