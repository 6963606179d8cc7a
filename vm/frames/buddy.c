/*
 * vm/frames/page_alloc.c — low memory and the buddy allocator.
 *
 * Low memory is the allocator's direct map (vm/frames/page.h): one range of
 * private anonymous host memory reserved PROT_NONE at start and committed
 * brk-style, ZONE_GROW_PAGES at a time, as the zones need frames.  mem_map
 * lives in a second reservation committed alongside.  ZONE_DMA is the first
 * DMA_PAGES frames, ZONE_NORMAL the rest.
 *
 * Each zone is a binary buddy system with orders 0 … MAX_ORDER-1: a free
 * block of order k is 2^k frames aligned on 2^k frames (relative to the
 * zone start); its head page carries PG_buddy and its order and sits on
 * free_area[k].  Allocation splits larger blocks; freeing coalesces with
 * the buddy (pfn ^ 2^k) while it is free and of the same order.
 *
 * Giving memory back (time decay, after jemalloc's dirty_decay_ms): freed
 * frames stay "dirty" (they hold host memory) and sit on the dirty lists,
 * most recently freed first, each head stamped with the time it was freed
 * (page->private, ms of CLOCK_MONOTONIC_COARSE).  Allocation takes dirty
 * blocks first, so memory freed and soon needed again is reused without a
 * page fault and never given back: a program whose heap swings by any
 * amount within PURGE_DECAY_MS makes no madvise at all (the old policy, a
 * purge whenever dirty memory passed 32 MiB, made one per swing and
 * faulted the memory in again).  A block that has stayed free for
 * PURGE_DECAY_MS goes back to the host, whatever its order: single free
 * frames between live slabs too, so RSS falls to near the live size after a
 * program frees most of its heap.  A purge pass takes the eligible blocks
 * off the lists in batches (largest orders first, oldest first), sorts a
 * batch by frame and gives back each run of adjacent blocks with one
 * madvise(MADV_DONTNEED) (vm_os_purge), so scattered small blocks cost one
 * call per run, not per block.
 *
 * No system call is made under a zone lock: a pass unlinks a batch from the
 * free lists (the heads lose PG_buddy, so neither __rmqueue nor a
 * neighbour's coalescing can see them; zone->purging_pages counts them),
 * drops the lock, madvises, retakes the lock and frees the blocks onto the
 * clean lists, merging as usual.  Passes are serialised by purge_lock.
 *
 * Who runs the passes (jemalloc's decay without and with its
 * background_thread).  The allocator's own slow paths tick: a free that
 * reaches a zone (a batch from a thread's page list, a large block), a
 * slab flush that leaves empty slabs, a freed huge block.  A tick reads
 * the coarse clock (no system call) and, at most once per PURGE_TICK_MS
 * in the whole process, runs a pass in the calling thread; the hot paths
 * (a thread's arrays and page lists) never tick.  That serves a program
 * that keeps calling kslab.  A program that frees its heap and then sleeps
 * makes no such call, so a background thread runs the passes too, but
 * only once the memory waiting for the decay is worth a thread:
 * PURGE_THREAD_PAGES (8 MiB) of dirty frames in a zone, or of what the
 * layers above keep (vm_purge_kick).  A short program (a script, ls, git
 * status) never has a second thread, which a debugger, /proc and a
 * fork() in a threaded program (Python 3.12 warns) would see; glibc,
 * jemalloc by default, mimalloc and tcmalloc start none either.  What
 * stays below the mark in a program that sleeps is kept until its next
 * tick, as jemalloc without background_thread keeps it.  The thread
 * wakes every PURGE_TICK_MS (a zone with no allocation during a whole
 * tick is idle: its blocks go back after a quarter of the decay time, so
 * a program that frees its heap and sleeps shrinks within about 0.4 s),
 * and exits once nothing has waited for the decay for PURGE_IDLE_TICKS
 * ticks (so a process whose main thread calls pthread_exit() is not kept
 * alive for long; exit() ends it at once, it is detached).  It runs with
 * every signal blocked and is never in a fork child: the frames' fork
 * hook marks it stopped there and the next free that is worth it starts a
 * new one.  A timer (timer_create) would also fire without the program's
 * help, but SIGEV_SIGNAL takes a signal from the program and SIGEV_THREAD
 * is a thread anyway, without control of its signal mask or lifetime.
 * When the thread cannot be created, the ticks are all there is.  With
 * KSLAB_DECAY_MS=never nothing goes back by time: no tick, no thread.
 * vm_purge_threshold (mallopt(M_TRIM_THRESHOLD)) is an optional hard cap:
 * a free that leaves more dirty memory than that gives the oldest back at
 * once (outside the lock) down to half of it; by default there is no cap.
 * vm_release_free() (malloc_trim, kmem_cache_reap, kmem_cache_shrink)
 * gives every free block back at once, whatever the decay says.
 * MADV_DONTNEED, not MADV_FREE: a clean block must read as zero
 * (PG_clean), and RSS must fall for the frames to be seen as given back.
 *
 * Pageblocks (grouping by mobility, the migrate types of later Linux,
 * page.h): the zone is cut into pageblocks of the top order (2 MiB), and a
 * split pageblock serves one use: PB_SLAB (alloc_pages(): slabs, thread
 * structures, page tables, the threads' page lists) or PB_RUN (the
 * page-granular runs of large malloc blocks, vm_alloc_pages_exact).  Each
 * order has lists per type; a free block goes on its pageblock's, a whole
 * free pageblock on no one's (the top order has one set of lists).  Why:
 * in one pool of free frames a run takes an aligned 2^k block and gives its
 * tail back, and the next slab grow takes that tail (the smallest fitting
 * block comes first); once the run is freed it cannot merge back, so the
 * next run of that size needs new frames.  In bench/'s tree shape (one
 * node in 64 of 64 ... 360 KiB among 16 ... 700 B) that left about 28 MiB
 * in use in 61 MiB of committed frames; with pageblocks a run's tail stays
 * in run pageblocks for the next runs, freed runs merge back up to whole
 * pageblocks, and the peak RSS fell from 94 to 56 MiB (time per node to
 * 0.56x).  Linux 2.4 has no such grouping: its buddy lists were shared by
 * every use and high orders failed the same way after a while.
 * Allocation of type t: the lists of t, else a whole free pageblock (it
 * becomes t's); else a pageblock of the other type with at least half of
 * it free in one block, which is claimed whole with every free block in it
 * (move_freepages_block() of later Linux: what is freed there later goes to
 * t too); else the zone grows; only when it cannot, any block of the other
 * type, its pageblock left as it is (__rmqueue_fallback()).  A run grows in
 * place only within its own pageblock, into run pageblocks or into whole
 * free ones.  Aligned 2^k blocks are kept (no first-fit of unaligned runs):
 * inside run pageblocks the tails serve the smaller runs, which was
 * enough.  The purge sees every order of both types.
 *
 * The threads' page lists (after the per-CPU page lists Linux gained after
 * 2.4): every slab grow and destroy is an alloc_pages()/free_pages() of a
 * low order, and with one mutex per zone two threads that grow and shrink
 * caches queue on it.  So a thread keeps, per zone, a short list of free
 * blocks of each order below PCP_ORDERS (0 … 3, up to 32 KiB: the orders
 * of every slab of objects up to 4 KiB and most above), takes from it
 * without the zone lock and moves blocks between it and the zone
 * PCP_BATCH_PAGES frames per lock hold.  Per thread, not per CPU: a user
 * thread cannot stay on a CPU, and a per-thread list needs no atomic
 * operation to be safe (its own lock is uncontended but for a drain).  Low
 * orders only: they are the slabs' sizes, they would make the list hold
 * too much memory if larger (the cap is PCP_HIGH_PAGES frames a list, 1
 * MiB a thread and zone), and a larger block is a large malloc
 * block, which interpose/large.c caches per thread already.  Every path
 * that must see all free memory drains the lists first: vm_release_free
 * (malloc_trim), an allocation that finds the zones exhausted, the purge
 * pass (the lists of a thread idle since the pass before, so an idle
 * thread's frames decay like the zones'), thread exit and a fork child.
 * Frames on the lists count as free and dirty (vm_pcp_pages).
 *
 * Locking: each zone has its own mutex; every buddy list and counter of a
 * zone is under it.  Growing the direct map takes grow_lock (then the zone
 * lock); the commit (mprotect) runs under grow_lock only, which a thread
 * needs only to grow a zone itself, and a thread that waited for it does
 * not grow again when the zone was grown meanwhile.  Lock order: purge_lock,
 * pcp_list_lock, a thread's page-list lock, grow_lock, the zone locks.
 * committed_pages is published with a release store after the new mem_map
 * entries are initialised, so lock-free readers (virt_to_page) never see an
 * uninitialised struct page.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lib/assert.h"
#include "lib/fork.h"
#include "lib/init.h"
#include "lib/options.h"
#include "lib/valgrind_hooks.h"
#include "vm/frames/highmem.h"
#include "vm/frames/os.h"
#include "vm/frames/page.h"

/* Default size of the direct-map reservation: 64 GiB of address space. */
#define LOWMEM_DEFAULT_BYTES (64UL << 30)
/* Smallest reservation we accept. */
#define LOWMEM_MIN_BYTES (32UL << 20)
/* The section table (page.h): sections start on a boundary of its
 * granule, a multiple of the top-order block. */
#define SECT_GRAN_SHIFT VM_SECT_GRAN_SHIFT
#define SECT_VA_BITS VM_SECT_VA_BITS
#define SECT_L2_BITS VM_SECT_L2_BITS
/* Dirty free memory kept for reuse (per zone): a purge starts above the
 * threshold and stops at half of it, so memory freed and soon needed again
 * is not given back and faulted in again. */
/* A dirty free block goes back to the host once it has been free this long. */
#define PURGE_DECAY_MS 1000UL
/* The background purge wakes this often. */
#define PURGE_TICK_MS 100UL
/* ... and exits after this many ticks with no dirty memory in any zone. */
#define PURGE_IDLE_TICKS 50
/* Dirty memory that is worth a background thread (8 MiB): below it, the
 * slow paths' ticks give it back. */
#define PURGE_THREAD_PAGES 2048UL
/* Blocks taken off the lists per lock hold of a purge pass. */
#define PURGE_BATCH 256
/* The threads' page lists: orders below PCP_ORDERS (up to 32 KiB) ... */
#define PCP_ORDERS 4
/* ... moved to and from a zone PCP_BATCH_PAGES frames per lock hold ... */
#define PCP_BATCH_PAGES 16UL
/* ... and at most PCP_HIGH_PAGES frames a list before a batch goes back. */
#define PCP_HIGH_PAGES 64UL

struct vm_lowmem vm_lowmem;
struct vm_section vm_sections[VM_MAX_SECTIONS];
struct zone_struct vm_zones[MAX_NR_ZONES] = {
    [ZONE_DMA] = {.lock = PTHREAD_MUTEX_INITIALIZER, .name = "DMA"},
    [ZONE_NORMAL] = {.lock = PTHREAD_MUTEX_INITIALIZER, .name = "Normal"},
    [ZONE_HIGHMEM] = {.lock = PTHREAD_MUTEX_INITIALIZER, .name = "HighMem"},
};

#ifdef KSLAB_VALGRIND
int vm_tool_state = VM_TOOL_UNKNOWN; /* lib/valgrind_hooks.h */
#endif

static pthread_mutex_t grow_lock = PTHREAD_MUTEX_INITIALIZER;
/* The type of each pageblock of low memory (PB_SLAB, PB_RUN), one byte a
 * pageblock, under the zone locks. */
static unsigned char *pb_types;
/* Serialises purge passes (and is what the fork hook waits on while a pass
 * has blocks off the lists). */
static pthread_mutex_t purge_lock = PTHREAD_MUTEX_INITIALIZER;
/* Broadcast (under a zone lock) when a purge batch is back on the lists:
 * an allocation that found the zone empty while frames were off the lists
 * waits for them rather than fail. */
static pthread_cond_t purge_done = PTHREAD_COND_INITIALIZER;

static void pcp_drain_all(int idle_only);

/* ---- the direct map ----
 *
 * Without an address-space limit: one reservation of the whole direct map
 * (lowmem_budget()) and one of its mem_map, as in Linux 2.4 on a machine
 * with one memory node.  Under a limit (RLIMIT_AS at start, or set later:
 * lowmem_extend()): sections of VM_SECTION_PAGES frames, each one
 * reservation with its struct pages after its frames, reserved when a zone
 * grows into it; growth fails (ENOMEM) when the host refuses the next
 * section, which is how the limit left at that moment is honoured.
 * A section other than the first whose grown frames are all free is given
 * back (unmapped, lowmem_release_sections()): by the purge pass once its
 * frames have been free for the decay time, and at once when the address
 * space is wanted (vm_release_sections(): a mapping the limit refused).
 * Its slot keeps its frame numbers, with base and map NULL, and is
 * reserved again (anywhere) before the zone grows past its end
 * (lowmem_readd_section()).  lowmem_sectioned, the section count and
 * the table are written under grow_lock; readers look sections up without
 * a lock (the table and nr_sections are published with release stores
 * after the section is written).
 */

static int lowmem_sectioned; /* growing by sections: written under grow_lock,
                                read atomically without it */
static unsigned long lowmem_capacity; /* most frames low memory may have */
uint16_t *vm_sect_l1[VM_SECT_L1_SIZE];

static unsigned int sect_lookup(uintptr_t a)
{
    return vm_sect_lookup(a);
}

/* Bytes of a section's mapping: its frames, then its struct pages. */
static size_t sect_bytes(unsigned long pages)
{
    return (pages << PAGE_SHIFT) + PAGE_ALIGN(pages * sizeof(struct page));
}

/* Enters section idx in the table: every granule its mapping touches.
 * The leaves are made first, so a failure (-ENOMEM) enters nothing.
 * grow_lock held. */
static int sect_publish(unsigned int idx)
{
    const struct vm_section *s = &vm_sections[idx];
    uintptr_t g0 = (uintptr_t)s->base >> SECT_GRAN_SHIFT;
    uintptr_t g1 =
        ((uintptr_t)s->base + sect_bytes(s->nr_pages) - 1) >> SECT_GRAN_SHIFT;
    if (((uintptr_t)s->base + sect_bytes(s->nr_pages) - 1) >> SECT_VA_BITS)
        return -ENOMEM; /* beyond the table (a 57-bit address space) */
    for (uintptr_t g = g0; g <= g1; g++) {
        if (vm_sect_l1[g >> SECT_L2_BITS])
            continue;
        uint16_t *leaf =
            vm_os_alloc(sizeof(uint16_t) << SECT_L2_BITS, PAGE_SIZE, 0);
        if (!leaf)
            return -ENOMEM;
        __atomic_store_n(&vm_sect_l1[g >> SECT_L2_BITS], leaf,
                         __ATOMIC_RELEASE);
    }
    for (uintptr_t g = g0; g <= g1; g++)
        __atomic_store_n(
            &vm_sect_l1[g >> SECT_L2_BITS][g & ((1UL << SECT_L2_BITS) - 1)],
            (uint16_t)idx, __ATOMIC_RELEASE);
    return 0;
}

/* Takes section idx out of the table (its mapping is about to go): a
 * lookup of an address there finds no section from now on.  A granule
 * belongs to one section only (sections start on a granule boundary).
 * grow_lock held. */
static void sect_unpublish(unsigned int idx)
{
    const struct vm_section *s = &vm_sections[idx];
    uintptr_t g0 = (uintptr_t)s->base >> SECT_GRAN_SHIFT;
    uintptr_t g1 =
        ((uintptr_t)s->base + sect_bytes(s->nr_pages) - 1) >> SECT_GRAN_SHIFT;
    for (uintptr_t g = g0; g <= g1; g++)
        __atomic_store_n(
            &vm_sect_l1[g >> SECT_L2_BITS][g & ((1UL << SECT_L2_BITS) - 1)],
            (uint16_t)0, __ATOMIC_RELEASE);
}

/* The section of frame pfn (reserved). */
static inline const struct vm_section *pfn_section(unsigned long pfn)
{
    unsigned long first =
        __atomic_load_n(&vm_lowmem.first_pages, __ATOMIC_RELAXED);
    if (pfn < first)
        return &vm_sections[0];
    return &vm_sections[1 + (pfn - first) / VM_SECTION_PAGES];
}

/* The section whose struct pages hold page, or NULL. */
static const struct vm_section *page_section(const struct page *page)
{
    if (vm_page_in_first(page))
        return &vm_sections[0];
    unsigned int idx = sect_lookup((uintptr_t)page);
    if (!idx)
        return NULL;
    const struct vm_section *s = &vm_sections[idx];
    uintptr_t off = (uintptr_t)page - (uintptr_t)s->map;
    if (off >= s->nr_pages * sizeof(struct page))
        return NULL;
    return s;
}

struct page *vm_virt_to_page_other(const void *addr)
{
    unsigned int idx = vm_sect_lookup((uintptr_t)addr);
    if (!idx)
        return NULL;
    const struct vm_section *s = &vm_sections[idx];
    unsigned long i = ((uintptr_t)addr - (uintptr_t)s->base) >> PAGE_SHIFT;
    if (i >= s->nr_pages ||
        s->start_pfn + i >= atomic_load_explicit(&vm_lowmem.committed_pages,
                                                 memory_order_acquire))
        return NULL;
    return &s->map[i];
}

unsigned long vm_page_to_pfn_slow(const struct page *page)
{
    const struct vm_section *s = page_section(page);
    if (!s)
        kslab_die("struct page %p is not a low-memory frame", (void *)page);
    return s->start_pfn + (unsigned long)(page - s->map);
}

void *vm_page_address_slow(const struct page *page)
{
    const struct vm_section *s = page_section(page);
    if (!s)
        kslab_die("struct page %p is not a low-memory frame", (void *)page);
    return s->base + ((unsigned long)(page - s->map) << PAGE_SHIFT);
}

struct page *vm_pfn_to_page_slow(unsigned long pfn)
{
    const struct vm_section *s = pfn_section(pfn);
    return &s->map[pfn - s->start_pfn];
}

/* The direct-map address of frame pfn (reserved). */
static inline char *pfn_address(unsigned long pfn)
{
    const struct vm_section *s = pfn_section(pfn);
    return s->base + ((pfn - s->start_pfn) << PAGE_SHIFT);
}

/* Is page a struct page of committed low memory? */
static int lowmem_page_valid(const struct page *page)
{
    const struct vm_section *s = page_section(page);
    if (!s)
        return 0;
    uintptr_t off = (uintptr_t)page - (uintptr_t)s->map;
    if (off % sizeof(struct page) ||
        off / sizeof(struct page) >=
            __atomic_load_n(&s->nr_pages, __ATOMIC_RELAXED))
        return 0;
    return s->start_pfn + off / sizeof(struct page) <
           atomic_load(&vm_lowmem.committed_pages);
}

/* The frames low memory may grow to: KSLAB_LOWMEM_MB or the default,
 * whole top-order blocks. */
static unsigned long lowmem_budget(void)
{
    unsigned long want = LOWMEM_DEFAULT_BYTES;
    if (kslab_opt.lowmem_mb) /* KSLAB_LOWMEM_MB, lib/options.c */
        want = kslab_opt.lowmem_mb << 20;
    return (want & ~((PAGE_SIZE << (MAX_ORDER - 1)) - 1)) >> PAGE_SHIFT;
}

/* Reserves one more section (grow_lock held): 0 or -ENOMEM. */
static int lowmem_add_section(void)
{
    int n = atomic_load_explicit(&vm_lowmem.nr_sections, memory_order_relaxed);
    unsigned long start = vm_lowmem.reserved_pages;
    if (n >= VM_MAX_SECTIONS || start + VM_SECTION_PAGES > lowmem_capacity)
        return -ENOMEM;
    char *base =
        vm_os_reserve(sect_bytes(VM_SECTION_PAGES), 1UL << SECT_GRAN_SHIFT);
    if (!base)
        return -ENOMEM;
    struct vm_section *s = &vm_sections[n];
    s->base = base;
    s->map = (struct page *)(base + (VM_SECTION_PAGES << PAGE_SHIFT));
    s->start_pfn = start;
    s->nr_pages = VM_SECTION_PAGES;
    if (sect_publish((unsigned int)n)) {
        vm_os_free(base, sect_bytes(VM_SECTION_PAGES));
        return -ENOMEM;
    }
    vm_lowmem.reserved_pages = start + VM_SECTION_PAGES;
    atomic_store_explicit(&vm_lowmem.nr_sections, n + 1, memory_order_release);
    return 0;
}

/* A limit set after start finds the whole direct map reserved, which
 * leaves the program little or nothing under it: give back the part of the
 * first section no zone has grown into (the frames from the end of ZONE_NORMAL
 * as grown, and their struct pages) and grow by sections from there.
 * grow_lock held. */
static void lowmem_go_sectioned(void)
{
    struct zone_struct *normal = &vm_zones[ZONE_NORMAL];
    pthread_mutex_lock(&normal->lock);
    unsigned long keep = normal->grown_pfn;
    pthread_mutex_unlock(&normal->lock);
    unsigned long first = vm_lowmem.first_pages;
    __atomic_store_n(&lowmem_sectioned, 1, __ATOMIC_RELAXED);
    if (keep >= first)
        return;
    /* Frames [keep, first) belong to no one: keep is where ZONE_NORMAL
     * stops (a multiple of ZONE_GROW_PAGES from its start), past ZONE_DMA. */
    vm_os_free(vm_lowmem.base + (keep << PAGE_SHIFT), (first - keep)
                                                          << PAGE_SHIFT);
    uintptr_t m0 = PAGE_ALIGN((uintptr_t)&vm_lowmem.mem_map[keep]);
    uintptr_t m1 = PAGE_ALIGN((uintptr_t)&vm_lowmem.mem_map[first]);
    if (m1 > m0)
        vm_os_free((void *)m0, m1 - m0);
    __atomic_store_n(&vm_sections[0].nr_pages, keep, __ATOMIC_RELAXED);
    vm_lowmem.reserved_pages = keep;
    __atomic_store_n(&vm_lowmem.first_pages, keep, __ATOMIC_RELAXED);
}

/* Makes sure frames below `to` are reserved (grow_lock held): 0 or
 * -ENOMEM. */
static int lowmem_extend(unsigned long to)
{
    if (!lowmem_sectioned && vm_os_as_limited(1))
        lowmem_go_sectioned();
    while (to > vm_lowmem.reserved_pages)
        if (!lowmem_sectioned || lowmem_add_section())
            return -ENOMEM;
    return 0;
}

/* Reserves the direct map and mem_map; start-up only.  Under an
 * address-space limit, the first section alone. */
static int lowmem_reserve(void)
{
    unsigned long budget = lowmem_budget();
    size_t align = PAGE_SIZE << (MAX_ORDER - 1);
    if (vm_os_as_limited(1)) {
        unsigned long cap = (unsigned long)VM_MAX_SECTIONS * VM_SECTION_PAGES;
        if (budget > cap)
            budget = cap;
        budget -= budget % VM_SECTION_PAGES;
        char *base =
            vm_os_reserve(sect_bytes(VM_SECTION_PAGES), 1UL << SECT_GRAN_SHIFT);
        if (!base)
            return -ENOMEM;
        lowmem_sectioned = 1;
        lowmem_capacity = budget;
        vm_lowmem.base = base;
        vm_lowmem.mem_map =
            (struct page *)(base + (VM_SECTION_PAGES << PAGE_SHIFT));
        vm_lowmem.first_pages = VM_SECTION_PAGES;
        vm_lowmem.reserved_pages = VM_SECTION_PAGES;
    } else {
        unsigned long bytes = budget << PAGE_SHIFT;
        for (; bytes >= LOWMEM_MIN_BYTES; bytes /= 2) {
            unsigned long pages = bytes >> PAGE_SHIFT;
            size_t map_bytes = PAGE_ALIGN(pages * sizeof(struct page));
            char *base = vm_os_reserve(bytes, align);
            if (!base)
                continue;
            void *map = vm_os_reserve(map_bytes, 0);
            if (!map) {
                vm_os_free(base, bytes);
                continue;
            }
            vm_lowmem.base = base;
            vm_lowmem.mem_map = map;
            vm_lowmem.first_pages = pages;
            vm_lowmem.reserved_pages = pages;
            lowmem_capacity = pages;
            break;
        }
        if (!vm_lowmem.base)
            return -ENOMEM;
    }
    vm_sections[0].base = vm_lowmem.base;
    vm_sections[0].map = vm_lowmem.mem_map;
    vm_sections[0].start_pfn = 0;
    vm_sections[0].nr_pages = vm_lowmem.first_pages;
    atomic_store_explicit(&vm_lowmem.nr_sections, 1, memory_order_release);
    return 0;
}

/* Makes frames [from, to) and their mem_map entries usable; they are in
 * one section.  grow_lock held.  Returns 0 or -ENOMEM. */
static int lowmem_commit(unsigned long from, unsigned long to)
{
    const struct vm_section *s = pfn_section(from);
    char *start = s->base + ((from - s->start_pfn) << PAGE_SHIFT);
    if (vm_os_protect(start, (to - from) << PAGE_SHIFT,
                      VM_OS_READ | VM_OS_WRITE))
        return -ENOMEM;
    uintptr_t m0 = (uintptr_t)&s->map[from - s->start_pfn] & PAGE_MASK;
    uintptr_t m1 = PAGE_ALIGN((uintptr_t)&s->map[to - s->start_pfn]);
    if (vm_os_protect((void *)m0, m1 - m0, VM_OS_READ | VM_OS_WRITE)) {
        vm_os_protect(start, (to - from) << PAGE_SHIFT, VM_OS_NONE);
        return -ENOMEM;
    }
    return 0;
}

static const struct kslab_fork_hook frames_fork_hook;

/* Start-up, level KSLAB_INIT_FRAMES (lib/init.c): the direct map and the
 * zones.  When no low memory can be reserved, vm_lowmem.ready stays 0 and
 * every allocation fails with ENOMEM (the slab's start-up dies). */
static void lowmem_init(void)
{
    kslab_fork_register(KSLAB_FORK_FRAMES, &frames_fork_hook);
    if (lowmem_reserve())
        return;
    /* One byte a pageblock, touched only where the zones grow. */
    pb_types = vm_os_alloc((lowmem_capacity >> PB_ORDER) + 1, 0, 1);
    if (!pb_types)
        return;
    for (int z = 0; z < MAX_NR_ZONES; z++) {
        struct zone_struct *zone = &vm_zones[z];
        for (int o = 0; o < MAX_ORDER; o++)
            for (int t = 0; t < PB_TYPES; t++) {
                INIT_LIST_HEAD(&zone->free_area[o].free_list[t]);
                INIT_LIST_HEAD(&zone->free_area[o].clean_list[t]);
            }
    }
    unsigned long dma_end = DMA_PAGES < vm_lowmem.first_pages / 4
                                ? DMA_PAGES
                                : vm_lowmem.first_pages / 4;
    dma_end &= ~(PB_PAGES - 1); /* zones start on a pageblock */
    vm_zones[ZONE_DMA].zone_start_pfn = 0;
    vm_zones[ZONE_DMA].zone_end_pfn = dma_end;
    vm_zones[ZONE_DMA].grown_pfn = 0;
    vm_zones[ZONE_NORMAL].zone_start_pfn = dma_end;
    vm_zones[ZONE_NORMAL].zone_end_pfn = lowmem_capacity;
    vm_zones[ZONE_NORMAL].grown_pfn = dma_end;
    if (kslab_opt.decay_set) /* KSLAB_DECAY_MS */
        vm_purge_decay_ms = kslab_opt.decay_ms;
    __atomic_store_n(&vm_lowmem.ready, 1, __ATOMIC_RELEASE);
}
KSLAB_INITCALL(KSLAB_INIT_FRAMES, lowmem_init);

/* ---- buddy lists (zone lock held) ---- */

static inline struct page *pfn_to_page(unsigned long pfn)
{
    return vm_pfn_to_page(pfn);
}

/* The type of the pageblock holding frame pfn (page.h): PB_SLAB or
 * PB_RUN.  Meaningful only while the pageblock is split; under its zone's
 * lock (zones start on a pageblock boundary). */
static inline unsigned int pb_type(unsigned long pfn)
{
    return pb_types[pfn >> PB_ORDER];
}

static inline void set_pb_type(unsigned long pfn, unsigned int type)
{
    pb_types[pfn >> PB_ORDER] = (unsigned char)type;
}

/* The lists a free block [pfn, pfn + 2^order) goes on: its pageblock's
 * type, or PB_SLAB's for a whole free pageblock (it belongs to no one). */
static inline unsigned int free_type(unsigned long pfn, unsigned int order)
{
    return order >= PB_ORDER ? PB_SLAB : pb_type(pfn);
}

/* Level-1 check of a free head (PG_buddy) at pfn before its order is
 * trusted: below MAX_ORDER, aligned to it, inside the grown zone. */
static inline void check_free_head(const char *fn, struct zone_struct *zone,
                                   unsigned long pfn, const struct page *page)
{
    unsigned int o = page->order;
    KSLAB_CHECK(o < MAX_ORDER &&
                    !((pfn - zone->zone_start_pfn) & ((1UL << o) - 1)) &&
                    pfn + (1UL << o) <= zone->grown_pfn,
                "%s(): zone %s: free block at frame %lu has order %u", fn,
                zone->name, pfn, o);
}

static inline void add_free_block(struct zone_struct *zone, unsigned long pfn,
                                  unsigned int order, int clean)
{
    struct page *page = pfn_to_page(pfn);
    unsigned int t = free_type(pfn, order);
    KSLAB_CHECK(!PageFlag(page, PG_buddy),
                "add_free_block(): zone %s: frame %lu (order %u) is already "
                "free",
                zone->name, vm_page_to_pfn(page), order);
    set_page_flags(page,
                   (1UL << PG_buddy) | ((unsigned long)clean << PG_clean));
    page->order = order;
    page->private = clean ? 0 : vm_now_ms(); /* when it became free (dirty) */
    atomic_store_explicit(&page->count, 0, memory_order_relaxed);
    list_add(&page->list, clean ? &zone->free_area[order].clean_list[t]
                                : &zone->free_area[order].free_list[t]);
    zone->free_area[order].nr_free++;
    zone->free_pages += 1UL << order;
    if (!clean)
        zone->dirty_pages += 1UL << order;
}

static inline void del_free_block(struct zone_struct *zone, struct page *page,
                                  unsigned int order)
{
    KSLAB_CHECK(PageFlag(page, PG_buddy) && page->order == order,
                "del_free_block(): zone %s: frame %lu on the order-%u list "
                "has order %u, flags 0x%lx",
                zone->name, vm_page_to_pfn(page), order, page->order,
                page_flags(page));
    list_del(&page->list);
    zone->free_area[order].nr_free--;
    zone->free_pages -= 1UL << order;
    if (!PageFlag(page, PG_clean))
        zone->dirty_pages -= 1UL << order;
    set_page_flags(page, 0);
}

/* Frees the block [pfn, pfn + 2^order) into zone, coalescing with free
 * buddies.  clean: the frames are known to hold no host memory. */
static void __free_one_block(struct zone_struct *zone, unsigned long pfn,
                             unsigned int order, int clean)
{
    unsigned long base = zone->zone_start_pfn;
    while (order < MAX_ORDER - 1) {
        unsigned long buddy_pfn = base + ((pfn - base) ^ (1UL << order));
        if (buddy_pfn + (1UL << order) > zone->grown_pfn)
            break;
        struct page *buddy = pfn_to_page(buddy_pfn);
        if (!PageFlag(buddy, PG_buddy))
            break;
        check_free_head("__free_one_block", zone, buddy_pfn, buddy);
        /* A larger free block just below holds the frames being freed. */
        KSLAB_CHECK(buddy->order <= order || buddy_pfn > pfn,
                    "__free_one_block(): zone %s: frame %lu (order %u) is "
                    "inside the free block at frame %lu (order %u)",
                    zone->name, pfn, order, buddy_pfn, buddy->order);
        if (buddy->order != order)
            break;
        clean = clean && PageFlag(buddy, PG_clean);
        del_free_block(zone, buddy, order);
        if (buddy_pfn < pfn)
            pfn = buddy_pfn;
        order++;
    }
    add_free_block(zone, pfn, order, clean);
}

/* The first block of the lists of `type` at order cur, dirty first. */
static inline struct page *first_free(struct zone_struct *zone,
                                      unsigned int cur, unsigned int type)
{
    struct free_area_struct *area = &zone->free_area[cur];
    struct list_head *list = &area->free_list[type];
    if (list_empty(list))
        list = &area->clean_list[type];
    if (list_empty(list))
        return NULL;
    return list_entry(list->next, struct page, list);
}

/* Takes page, the free block of order cur at pfn, off its list and
 * gives back its upper halves down to order (expand() in 2.4). */
static struct page *take_block(struct zone_struct *zone, struct page *page,
                               unsigned long pfn, unsigned int cur,
                               unsigned int order)
{
    int clean = (int)PageFlag(page, PG_clean);
    del_free_block(zone, page, cur);
    while (cur > order) {
        cur--;
        add_free_block(zone, pfn + (1UL << cur), cur, clean);
    }
    return page;
}

/* Takes a block of exactly `order` from zone for a use of `type`,
 * splitting a larger one of its pageblocks or, failing that, a whole free
 * pageblock, which becomes that type's. */
static struct page *__rmqueue(struct zone_struct *zone, unsigned int order,
                              unsigned int type)
{
    for (unsigned int cur = order; cur < MAX_ORDER; cur++) {
        unsigned int t = cur >= PB_ORDER ? PB_SLAB : type;
        struct page *page = first_free(zone, cur, t);
        if (!page)
            continue;
        unsigned long pfn = vm_page_to_pfn(page);
        if (cur >= PB_ORDER && order < PB_ORDER)
            set_pb_type(pfn, type);
        return take_block(zone, page, pfn, cur, order);
    }
    return NULL;
}

/* Moves every free block of the pageblock holding pfn to the lists of
 * `type` and makes the pageblock that type's (move_freepages_block() in
 * later Linux). */
static void claim_pageblock(struct zone_struct *zone, unsigned long pfn,
                            unsigned int type)
{
    unsigned long start = pfn & ~(PB_PAGES - 1), end = start + PB_PAGES;
    set_pb_type(start, type);
    for (pfn = start; pfn < end;) {
        struct page *p = pfn_to_page(pfn);
        if (!PageFlag(p, PG_buddy)) {
            pfn++;
            continue;
        }
        unsigned int o = p->order;
        check_free_head("claim_pageblock", zone, pfn, p);
        struct free_area_struct *area = &zone->free_area[o];
        list_del(&p->list);
        list_add(&p->list, PageFlag(p, PG_clean) ? &area->clean_list[type]
                                                 : &area->free_list[type]);
        pfn += 1UL << o;
    }
    zone->pb_stolen++;
}

/* The fallback when neither the lists of `type` nor a whole free pageblock
 * has a block of `order`: take one from the other type's pageblocks,
 * largest first (__rmqueue_fallback() in later Linux).  A block of half a
 * pageblock or more brings its whole pageblock along (the rest of it is
 * mostly free, and what is freed there later goes to `type`); a smaller
 * one is taken only when `any` (the zone cannot grow) and leaves its
 * pageblock as it was. */
static struct page *__rmqueue_steal(struct zone_struct *zone,
                                    unsigned int order, unsigned int type,
                                    int any)
{
    unsigned int other = type == PB_SLAB ? PB_RUN : PB_SLAB;
    for (int cur = PB_ORDER - 1; cur >= (int)order; cur--) {
        if (!any && cur < PB_ORDER - 1)
            break;
        struct page *page = first_free(zone, (unsigned int)cur, other);
        if (!page)
            continue;
        unsigned long pfn = vm_page_to_pfn(page);
        if (cur >= PB_ORDER - 1) {
            claim_pageblock(zone, pfn, type);
            return __rmqueue(zone, order, type);
        }
        return take_block(zone, page, pfn, (unsigned int)cur, order);
    }
    return NULL;
}

/* ---- giving sections back (under an address-space limit) ---- */

/* The frames of section s that the zone has grown into: [*from, *to). */
static void sect_grown(const struct vm_section *s,
                       const struct zone_struct *zone, unsigned long *from,
                       unsigned long *to)
{
    *from = s->start_pfn;
    *to = s->start_pfn + s->nr_pages;
    if (*to > zone->grown_pfn)
        *to = zone->grown_pfn;
    if (*to < *from)
        *to = *from;
}

/* Gives back every section but the first whose grown frames are all free
 * in whole top-order blocks, each clean or free since `before` (ms;
 * ULONG_MAX: any): the blocks leave the lists, the section leaves the
 * table, its mapping (frames and struct pages) is unmapped.  Blocks on a
 * thread's page list or off the lists for a purge are not free here: the
 * caller drained the lists and holds purge_lock.  Returns the bytes of
 * address space given back. */
static size_t lowmem_release_sections(unsigned long before)
{
    struct zone_struct *zone = &vm_zones[ZONE_NORMAL];
    const unsigned long top = 1UL << (MAX_ORDER - 1);
    size_t bytes = 0;
    pthread_mutex_lock(&grow_lock);
    int n = atomic_load_explicit(&vm_lowmem.nr_sections, memory_order_relaxed);
    for (int idx = 1; lowmem_sectioned && idx < n; idx++) {
        struct vm_section *s = &vm_sections[idx];
        if (!s->base)
            continue;
        unsigned long from, to, pfn;
        pthread_mutex_lock(&zone->lock);
        sect_grown(s, zone, &from, &to);
        if ((from - zone->zone_start_pfn) & (top - 1))
            to = from; /* never: sections are whole top-order blocks */
        for (pfn = from; pfn < to; pfn += top) {
            struct page *p = pfn_to_page(pfn);
            if (!PageFlag(p, PG_buddy) || p->order != MAX_ORDER - 1 ||
                (!PageFlag(p, PG_clean) && p->private > before))
                break;
        }
        if (pfn < to || (to == from && from < zone->grown_pfn)) {
            pthread_mutex_unlock(&zone->lock);
            continue;
        }
        for (pfn = from; pfn < to; pfn += top)
            del_free_block(zone, pfn_to_page(pfn), MAX_ORDER - 1);
        pthread_mutex_unlock(&zone->lock);
        sect_unpublish((unsigned int)idx);
        char *base = s->base;
        s->base = NULL;
        s->map = NULL;
        vm_os_free(base, sect_bytes(s->nr_pages));
        __atomic_fetch_add(&vm_lowmem.absent_pages, to - from,
                           __ATOMIC_RELAXED);
        bytes += sect_bytes(s->nr_pages);
    }
    pthread_mutex_unlock(&grow_lock);
    return bytes;
}

/* Reserves again the first section given back, if any: its grown frames
 * committed, with fresh struct pages, and freed into the zone (clean).
 * grow_lock held.  Returns 1 when one was, 0 when none is absent, or
 * -ENOMEM when the host refuses it. */
static int lowmem_readd_section(struct zone_struct *zone)
{
    int n = atomic_load_explicit(&vm_lowmem.nr_sections, memory_order_relaxed);
    int idx = 1;
    while (idx < n && vm_sections[idx].base)
        idx++;
    if (idx >= n)
        return 0;
    struct vm_section *s = &vm_sections[idx];
    size_t len = sect_bytes(s->nr_pages);
    char *base = vm_os_reserve(len, 1UL << SECT_GRAN_SHIFT);
    if (!base)
        return -ENOMEM;
    s->base = base;
    s->map = (struct page *)(base + (s->nr_pages << PAGE_SHIFT));
    pthread_mutex_lock(&zone->lock);
    unsigned long from, to;
    sect_grown(s, zone, &from, &to);
    pthread_mutex_unlock(&zone->lock);
    if ((to > from && lowmem_commit(from, to)) || sect_publish((unsigned)idx)) {
        s->base = NULL;
        s->map = NULL;
        vm_os_free(base, len);
        return -ENOMEM;
    }
    for (unsigned long pfn = from; pfn < to; pfn++) {
        struct page *p = pfn_to_page(pfn);
        memset(p, 0, sizeof *p);
        p->zone = (unsigned int)(zone - vm_zones);
    }
    pthread_mutex_lock(&zone->lock);
    for (unsigned long pfn = from; pfn < to; pfn += 1UL << (MAX_ORDER - 1))
        __free_one_block(zone, pfn, MAX_ORDER - 1, 1);
    pthread_mutex_unlock(&zone->lock);
    __atomic_fetch_sub(&vm_lowmem.absent_pages, to - from, __ATOMIC_RELAXED);
    return 1;
}

size_t vm_release_sections(void)
{
    if (!vm_lowmem.ready ||
        !__atomic_load_n(&lowmem_sectioned, __ATOMIC_RELAXED))
        return 0;
    pthread_mutex_lock(&purge_lock);
    pcp_drain_all(0);
    size_t bytes = lowmem_release_sections(ULONG_MAX);
    pthread_mutex_unlock(&purge_lock);
    return bytes;
}

/* The layers above's address space held for reuse (interpose/large.c's
 * pool of freed huge blocks), given back before low memory grows under an
 * address-space limit. */
#define ASPACE_HOOK_MAX 2
static size_t (*_Atomic aspace_hook[ASPACE_HOOK_MAX])(void);

void vm_aspace_register(size_t (*fn)(void))
{
    for (int i = 0; i < ASPACE_HOOK_MAX; i++) {
        size_t (*old)(void) = NULL;
        if (atomic_compare_exchange_strong(&aspace_hook[i], &old, fn) ||
            old == fn)
            return;
    }
    kslab_die("vm_aspace_register(): more than %d users", ASPACE_HOOK_MAX);
}

static void aspace_release(void)
{
    for (int i = 0; i < ASPACE_HOOK_MAX; i++) {
        size_t (*fn)(void) = atomic_load(&aspace_hook[i]);
        if (fn)
            fn();
    }
}

/* Commits ZONE_GROW_PAGES more frames to zone, unless another thread grew
 * it since the caller saw it at seen_pfn (then 0 at once: try again).  Zone
 * lock NOT held; the commit runs under grow_lock only. */
static int zone_grow(struct zone_struct *zone, unsigned long seen_pfn)
{
    int err = -ENOMEM;
    /* under a limit, address space held for reuse goes first (no lock
     * held: the hooks take their own) */
    if (__atomic_load_n(&lowmem_sectioned, __ATOMIC_RELAXED) ||
        vm_os_as_limited(0))
        aspace_release();
    pthread_mutex_lock(&grow_lock);
    pthread_mutex_lock(&zone->lock);
    unsigned long from = zone->grown_pfn;
    pthread_mutex_unlock(&zone->lock);
    if (from != seen_pfn) {
        pthread_mutex_unlock(&grow_lock);
        return 0;
    }
    if (lowmem_sectioned && zone == &vm_zones[ZONE_NORMAL]) {
        /* a section given back comes again before the zone grows */
        int r = lowmem_readd_section(zone);
        if (r) {
            err = r > 0 ? 0 : r;
            goto out;
        }
    }
    unsigned long to = from + ZONE_GROW_PAGES;
    if (to > zone->zone_end_pfn)
        to = zone->zone_end_pfn;
    if (from >= to)
        goto out;
    if (to > vm_lowmem.reserved_pages || !lowmem_sectioned)
        if (lowmem_extend(to))
            goto out;
    if (lowmem_commit(from, to))
        goto out;
    for (unsigned long pfn = from; pfn < to; pfn++) {
        struct page *p = pfn_to_page(pfn);
        memset(p, 0, sizeof *p);
        p->zone = (unsigned int)(zone - vm_zones);
    }
    unsigned long committed = atomic_load(&vm_lowmem.committed_pages);
    if (to > committed)
        atomic_store_explicit(&vm_lowmem.committed_pages, to,
                              memory_order_release);
    unsigned long fast =
        to < vm_lowmem.first_pages ? to : vm_lowmem.first_pages;
    if (fast > atomic_load(&vm_lowmem.fast_pages))
        atomic_store_explicit(&vm_lowmem.fast_pages, fast,
                              memory_order_release);
    pthread_mutex_lock(&zone->lock);
    zone->grown_pfn = to;
    /* New frames were never touched: they are clean. */
    for (unsigned long pfn = from; pfn < to;) {
        unsigned int order = MAX_ORDER - 1;
        while ((((pfn - zone->zone_start_pfn) & ((1UL << order) - 1)) ||
                pfn + (1UL << order) > to))
            order--;
        __free_one_block(zone, pfn, order, 1);
        pfn += 1UL << order;
    }
    pthread_mutex_unlock(&zone->lock);
    err = 0;
out:
    pthread_mutex_unlock(&grow_lock);
    /* after grow_lock: the check takes the page lists' locks, which come
     * before it in the lock order (lib/fork.c) */
    if (!err)
        KSLAB_DEBUG_CHECK(vm_check_zones());
    return err;
}

/* ---- giving memory back ---- */

unsigned long vm_purge_threshold = ULONG_MAX; /* no cap unless mallopt */
unsigned long vm_purge_decay_ms = PURGE_DECAY_MS;
void (*vm_purge_hook)(void *addr, size_t len);

struct purge_item {
    unsigned long pfn;
    unsigned int order;
};

/* Gives a batch of blocks that are off the lists back to the host, one
 * madvise per run of adjacent blocks.  No lock held but purge_lock. */
static void purge_batch_os(struct purge_item *b, int n)
{
    for (int i = 1; i < n; i++) { /* by frame: a batch is small */
        struct purge_item x = b[i];
        int j = i;
        for (; j > 0 && b[j - 1].pfn > x.pfn; j--)
            b[j] = b[j - 1];
        b[j] = x;
    }
    void (*hook)(void *, size_t) =
        __atomic_load_n(&vm_purge_hook, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n;) {
        unsigned long start = b[i].pfn;
        unsigned long end = start + (1UL << b[i].order);
        char *addr = pfn_address(start);
        /* one run: adjacent frames, in one section (or adjacent ones) */
        for (i++; i < n && b[i].pfn == end &&
                  pfn_address(end) == addr + ((end - start) << PAGE_SHIFT);
             i++)
            end += 1UL << b[i].order;
        size_t len = (end - start) << PAGE_SHIFT;
        if (hook)
            hook(addr, len);
        vm_os_purge(addr, len);
    }
}

/* Gives back dirty free blocks of zone of order >= min_order that became
 * free at or before `before` (ms; ULONG_MAX: any), largest orders first and
 * the least recently freed first, until at most keep dirty frames are left.
 * Batches are unlinked under the zone lock, madvised without it and freed
 * onto the clean lists under it again.  purge_lock held.  Returns the
 * frames given back. */
static unsigned long zone_purge(struct zone_struct *zone,
                                unsigned int min_order, unsigned long keep,
                                unsigned long before)
{
    struct purge_item batch[PURGE_BATCH];
    unsigned long released = 0, budget;
    pthread_mutex_lock(&zone->lock);
    budget = 2 * zone->free_pages + 1; /* bounds a pass racing with frees */
    pthread_mutex_unlock(&zone->lock);
    while (released < budget) {
        int n = 0;
        unsigned long pages = 0;
        pthread_mutex_lock(&zone->lock);
        /* every order and both pageblock types are eligible */
        for (int o = MAX_ORDER - 1; o >= (int)min_order && n < PURGE_BATCH;
             o--) {
            for (int t = 0; t < PB_TYPES; t++) {
                struct list_head *list = &zone->free_area[o].free_list[t];
                while (n < PURGE_BATCH && !list_empty(list) &&
                       zone->dirty_pages > keep) {
                    struct page *page =
                        list_entry(list->prev, struct page, list);
                    if (page->private > before)
                        break; /* the rest of the list is younger */
                    /* Off the lists, PG_buddy cleared: neither allocated
                     * nor merged with a neighbour until it comes back. */
                    del_free_block(zone, page, (unsigned int)o);
                    batch[n].pfn = vm_page_to_pfn(page);
                    batch[n].order = (unsigned int)o;
                    n++;
                    pages += 1UL << o;
                }
            }
        }
        zone->purging_pages += pages;
        pthread_mutex_unlock(&zone->lock);
        if (!n)
            break;
        purge_batch_os(batch, n);
        pthread_mutex_lock(&zone->lock);
        for (int i = 0; i < n; i++)
            __free_one_block(zone, batch[i].pfn, batch[i].order, 1);
        zone->purging_pages -= pages;
        zone->released_pages += pages;
        pthread_cond_broadcast(&purge_done);
        pthread_mutex_unlock(&zone->lock);
        released += pages;
    }
    return released;
}

static unsigned long dirty_total(void)
{
    unsigned long d = vm_pcp_pages();
    for (int z = ZONE_DMA; z <= ZONE_NORMAL; z++) {
        pthread_mutex_lock(&vm_zones[z].lock);
        d += vm_zones[z].dirty_pages;
        pthread_mutex_unlock(&vm_zones[z].lock);
    }
    return d;
}

/* The layers above's memory that decays too (slab/slab.c's empty slabs,
 * interpose/large.c's cached mappings): called by each pass with no kslab
 * lock held, in the order registered. */
#define PURGE_EXTRA_MAX 4
static unsigned long (*_Atomic purge_extra[PURGE_EXTRA_MAX])(
    unsigned long now, unsigned long decay);

void vm_purge_register(unsigned long (*fn)(unsigned long now,
                                           unsigned long decay))
{
    for (int i = 0; i < PURGE_EXTRA_MAX; i++) {
        unsigned long (*old)(unsigned long, unsigned long) = NULL;
        if (atomic_compare_exchange_strong(&purge_extra[i], &old, fn) ||
            old == fn)
            return;
    }
    kslab_die("vm_purge_register(): more than %d users", PURGE_EXTRA_MAX);
}

/* Memory left to decay: dirty frames plus what purge_extra still holds
 * (now 0: only counted, nothing given back). */
static unsigned long pending_total(unsigned long now, unsigned long decay)
{
    unsigned long n = 0;
    for (int i = 0; i < PURGE_EXTRA_MAX; i++) {
        unsigned long (*fn)(unsigned long, unsigned long) =
            atomic_load(&purge_extra[i]);
        if (fn)
            n += fn(now, decay);
    }
    return n + dirty_total();
}

/* The zones' part of a decay pass (purge_lock held): every block free for
 * `decay` ms goes back, and in a zone nobody allocated from since the last
 * pass (a program that sleeps, or only frees, has no use for its dirty
 * memory) every block free for a quarter of that. */
static void __purge_zones(unsigned long now, unsigned long decay)
{
    static unsigned long seen_allocs[ZONE_NORMAL + 1];
    pcp_drain_all(1); /* lists of threads idle since the last pass */
    for (int z = ZONE_DMA; z <= ZONE_NORMAL; z++) {
        pthread_mutex_lock(&vm_zones[z].lock);
        unsigned long allocs = vm_zones[z].nr_allocs;
        pthread_mutex_unlock(&vm_zones[z].lock);
        unsigned long before = now >= decay ? now - decay : 0;
        if (allocs == seen_allocs[z] && now >= decay / 4)
            before = now - decay / 4; /* idle zone */
        seen_allocs[z] = allocs;
        zone_purge(&vm_zones[z], 0, 0, before);
        /* whole sections free that long go back too (address space) */
        if (z == ZONE_NORMAL &&
            __atomic_load_n(&lowmem_sectioned, __ATOMIC_RELAXED))
            lowmem_release_sections(before);
    }
}

/* One decay pass of the background thread: the zones, then the layers
 * above (purge_extra).  Returns the memory left to decay (pages). */
static unsigned long purge_pass(void)
{
    unsigned long decay = __atomic_load_n(&vm_purge_decay_ms, __ATOMIC_RELAXED);
    unsigned long now = vm_now_ms();
    if (decay == ULONG_MAX)
        return dirty_total();
    pthread_mutex_lock(&purge_lock);
    __purge_zones(now, decay);
    pthread_mutex_unlock(&purge_lock);
    return pending_total(now, decay);
}

/* The background purge: idle (not running), running, or none (it could
 * not be created: the slow paths' ticks are all there is). */
enum { PURGER_IDLE, PURGER_RUNNING, PURGER_NONE };
static _Atomic int purger_state;
/* When a tick last ran a pass (ms of the coarse clock). */
static _Atomic unsigned long purger_last_ms;
static _Thread_local int purger_starting;

__thread int vm_internal_thread;

static void *purger_main(void *arg)
{
    (void)arg;
    vm_internal_thread = 1; /* to its exit: glibc frees its TLS then */
    int idle = 0;
    for (;;) {
        struct timespec ts = {0, (long)PURGE_TICK_MS * 1000000L};
        nanosleep(&ts, NULL);
        if (purge_pass()) {
            idle = 0;
            continue;
        }
        if (++idle < PURGE_IDLE_TICKS)
            continue;
        atomic_store(&purger_state, PURGER_IDLE);
        /* A free between the pass and the store saw us running and did
         * not start a thread: look once more. */
        int expect = PURGER_IDLE;
        if (!pending_total(0, 0) || !atomic_compare_exchange_strong(
                                        &purger_state, &expect, PURGER_RUNNING))
            return NULL;
        idle = 0;
    }
}

/* Starts the background purge unless it runs (or could not be made). */
static __cold __noinline void purger_start(void)
{
    int expect = PURGER_IDLE;
    if (purger_starting ||
        !atomic_compare_exchange_strong(&purger_state, &expect, PURGER_RUNNING))
        return;
    /* pthread_create allocates (the new thread's TLS): no kslab lock of
     * the frames is held here, and purger_starting stops a nested start. */
    purger_starting = 1;
    sigset_t all, old;
    sigfillset(&all);
    vm_os_sigmask(SIG_SETMASK, &all, &old); /* the thread takes none */
    pthread_attr_t attr;
    pthread_t t;
    int err = pthread_attr_init(&attr);
    if (!err) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 64UL << 10);
        vm_internal_thread++; /* the new thread's TLS: kslab's */
        err = pthread_create(&t, &attr, purger_main, NULL);
        vm_internal_thread--;
        pthread_attr_destroy(&attr);
    }
    vm_os_sigmask(SIG_SETMASK, &old, NULL);
    purger_starting = 0;
    if (err)
        atomic_store(&purger_state, PURGER_NONE);
}

/*
 * A tick of a slow path: once per PURGE_TICK_MS in the process, a pass in
 * the calling thread, and the background purge started when what is left
 * is worth it.  extras: the layers above's memory too (purge_extra), which
 * takes their locks (the slab's chain and caches, the huge-block table),
 * so only a caller that holds no kslab lock may ask for it; the zones'
 * part takes only the frames' own locks, which no tick's caller holds, and
 * it is skipped when a pass is under way (purge_lock is tried, not
 * waited for).
 */
static __cold __noinline void purger_tick(unsigned long decay, int extras)
{
    unsigned long now = vm_now_ms();
    unsigned long last =
        atomic_load_explicit(&purger_last_ms, memory_order_relaxed);
    if (now - last < PURGE_TICK_MS ||
        !atomic_compare_exchange_strong(&purger_last_ms, &last, now))
        return;
    if (pthread_mutex_trylock(&purge_lock) == 0) {
        __purge_zones(now, decay);
        pthread_mutex_unlock(&purge_lock);
    }
    unsigned long left = extras ? pending_total(now, decay) : dirty_total();
    if (left >= PURGE_THREAD_PAGES)
        purger_start();
}

/* After a free on a slow path: dirty is what the caller saw waiting for
 * the decay (pages), extras as for purger_tick.  Costs a load and a test
 * while the background purge runs, one clock read otherwise. */
static void purger_kick(unsigned long dirty, int extras)
{
    int state = atomic_load_explicit(&purger_state, memory_order_relaxed);
    if (likely(state == PURGER_RUNNING) || purger_starting)
        return;
    unsigned long decay = __atomic_load_n(&vm_purge_decay_ms, __ATOMIC_RELAXED);
    if (decay == ULONG_MAX)
        return; /* nothing goes back by time */
    if (dirty >= PURGE_THREAD_PAGES && state == PURGER_IDLE)
        purger_start();
    else
        purger_tick(decay, extras);
}

void vm_purge_kick(void)
{
    if (!vm_lowmem.ready ||
        atomic_load_explicit(&purger_state, memory_order_relaxed) ==
            PURGER_RUNNING)
        return;
    /* A layer above freed memory it keeps for the decay (a huge block's
     * range), no lock held: is all that waits now worth a thread? */
    unsigned long decay = __atomic_load_n(&vm_purge_decay_ms, __ATOMIC_RELAXED);
    int idle = atomic_load_explicit(&purger_state, memory_order_relaxed) ==
               PURGER_IDLE;
    purger_kick(idle && decay != ULONG_MAX ? pending_total(0, 0) : 0, 1);
}

void vm_purge_tick(void)
{
    if (vm_lowmem.ready)
        purger_kick(0, 0);
}

/* Called by every free path that reached a zone, after it dropped the
 * zone lock; over: the free left more dirty memory than the cap
 * (vm_purge_threshold); dirty: the zone's dirty frames then. */
static void after_free(struct zone_struct *zone, int over, unsigned long dirty)
{
    if (unlikely(over) && pthread_mutex_trylock(&purge_lock) == 0) {
        unsigned long t =
            __atomic_load_n(&vm_purge_threshold, __ATOMIC_RELAXED);
        zone_purge(zone, 0, t / 2, ULONG_MAX);
        pthread_mutex_unlock(&purge_lock);
    }
    purger_kick(dirty, 0);
}

/* Zone lock held: did the free just done pass the cap? */
static inline int over_cap(const struct zone_struct *zone)
{
    return zone->dirty_pages >
           __atomic_load_n(&vm_purge_threshold, __ATOMIC_RELAXED);
}

unsigned long vm_release_free(unsigned int min_order, unsigned long keep)
{
    unsigned long n = 0;
    if (!vm_lowmem.ready)
        return 0;
    pthread_mutex_lock(&purge_lock);
    pcp_drain_all(0);
    unsigned long now = vm_now_ms();
    for (int z = ZONE_DMA; z <= ZONE_NORMAL; z++)
        n += zone_purge(&vm_zones[z], min_order, keep, now);
    /* under a limit, whole free sections go too (their address space) */
    if (!keep && __atomic_load_n(&lowmem_sectioned, __ATOMIC_RELAXED))
        n += lowmem_release_sections(ULONG_MAX) >> PAGE_SHIFT;
    pthread_mutex_unlock(&purge_lock);
    return n;
}

/* ---- the threads' page lists ----
 *
 * A thread keeps free blocks of orders below PCP_ORDERS for itself, one
 * list per zone and order (struct per_cpu_pages: Linux's per-CPU page
 * lists, per thread here).  alloc_pages() takes the first block of its
 * list and refills an empty list with a batch from the zone; a free puts
 * the block first on the list and gives the oldest batch back when the
 * list passes PCP_HIGH_PAGES frames; both hold the zone lock once per
 * batch, not once per block.  A block on a list is free and dirty: PG_pcp
 * (PG_buddy clear, so it neither merges with a neighbour nor is handed out
 * by the zone), its order in page->order, PG_clean kept.  The lists go
 * back to the zones at thread exit (a pthread key destructor), in a fork
 * child (for the threads that did not come along), by vm_release_free()
 * and vm_drain_pages(), when an allocation finds the zones exhausted, and
 * by the purge pass for a thread that made no page-list call since the
 * pass before (so an idle thread's frames decay like any others).
 *
 * Each thread's lists have a lock of their own, taken by the thread (never
 * contended but by a drain from another thread); pcp_list_lock guards the
 * list of them.  Order: purge_lock, pcp_list_lock, a thread's lock, then
 * grow_lock and the zone locks.
 */
struct pcp_list {
    struct list_head list;
    unsigned long count; /* blocks */
};

struct per_cpu_pages {
    pthread_mutex_t lock;
    struct list_head link; /* on pcp_all, under pcp_list_lock */
    unsigned long frames;  /* held, under lock (read relaxed by sums) */
    unsigned long ops;     /* list calls so far (the idle test) */
    unsigned long seen_ops;
    struct pcp_list lists[ZONE_NORMAL + 1][PCP_ORDERS];
};

static pthread_mutex_t pcp_list_lock = PTHREAD_MUTEX_INITIALIZER;
static LIST_HEAD(pcp_all);
#define pcp_of(p) list_entry(p, struct per_cpu_pages, link)
/* A thread past its exit hook, one being set up, or one without memory
 * for lists: straight to the zones. */
static struct per_cpu_pages pcp_none;
static __thread struct per_cpu_pages *pcp_self
    __attribute__((tls_model("initial-exec")));
static pthread_key_t pcp_key;
static pthread_once_t pcp_once = PTHREAD_ONCE_INIT;

_Static_assert(sizeof(struct per_cpu_pages) <= PAGE_SIZE,
               "a thread's page lists must fit a page");

/* pcp->frames changes under the lists' lock and is read without it (the
 * sums): a relaxed atomic store. */
static inline void pcp_frames_add(struct per_cpu_pages *pcp, long delta)
{
    __atomic_store_n(&pcp->frames, pcp->frames + (unsigned long)delta,
                     __ATOMIC_RELAXED);
}

/* Gives up to `frames` frames of the oldest blocks of l back to zone z
 * (ULONG_MAX: all).  The list's lock held.  Returns the zone's dirty
 * frames afterwards. */
static unsigned long pcp_give_back(struct per_cpu_pages *pcp, int z,
                                   unsigned int order, unsigned long frames)
{
    struct pcp_list *l = &pcp->lists[z][order];
    struct zone_struct *zone = &vm_zones[z];
    unsigned long n = 0;
    pthread_mutex_lock(&zone->lock);
    while (l->count && n < frames) {
        struct page *page = list_entry(l->list.prev, struct page, list);
        KSLAB_CHECK(PageFlag(page, PG_pcp) && page->order == order,
                    "pcp_give_back(): zone %s: frame %lu on the order-%u "
                    "list has order %u, flags 0x%lx",
                    zone->name, vm_page_to_pfn(page), order, page->order,
                    page_flags(page));
        int clean = (int)PageFlag(page, PG_clean);
        list_del(&page->list);
        set_page_flags(page, 0);
        l->count--;
        n += 1UL << order;
        __free_one_block(zone, vm_page_to_pfn(page), order, clean);
    }
    unsigned long dirty = zone->dirty_pages;
    pthread_mutex_unlock(&zone->lock);
    pcp_frames_add(pcp, -(long)n);
    return dirty;
}

/* Every list of pcp back to the zones; its lock held. */
static void __pcp_drain(struct per_cpu_pages *pcp)
{
    for (int z = ZONE_DMA; z <= ZONE_NORMAL; z++)
        for (unsigned int o = 0; o < PCP_ORDERS; o++)
            if (pcp->lists[z][o].count)
                pcp_give_back(pcp, z, o, ULONG_MAX);
}

/* Drains every thread's lists, or (idle_only) those of the threads that
 * made no list call since the last look. */
static void pcp_drain_all(int idle_only)
{
    pthread_mutex_lock(&pcp_list_lock);
    struct list_head *p;
    list_for_each(p, &pcp_all)
    {
        struct per_cpu_pages *pcp = pcp_of(p);
        pthread_mutex_lock(&pcp->lock);
        if (!idle_only || pcp->ops == pcp->seen_ops)
            __pcp_drain(pcp);
        pcp->seen_ops = pcp->ops;
        pthread_mutex_unlock(&pcp->lock);
    }
    pthread_mutex_unlock(&pcp_list_lock);
}

unsigned long vm_drain_pages(void)
{
    if (!vm_lowmem.ready)
        return 0;
    unsigned long n = vm_pcp_pages();
    pcp_drain_all(0);
    return n;
}

unsigned long vm_pcp_pages(void)
{
    unsigned long n = 0;
    pthread_mutex_lock(&pcp_list_lock);
    struct list_head *p;
    list_for_each(p, &pcp_all) n +=
        __atomic_load_n(&pcp_of(p)->frames, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&pcp_list_lock);
    return n;
}

/* The page of a thread's lists back to its zone, straight (no list: in a
 * fork child the thread that forks must not set up lists of its own). */
static void pcp_free_self(struct per_cpu_pages *pcp)
{
    struct page *page = vm_virt_to_page(pcp);
    struct zone_struct *zone = &vm_zones[page->zone];
    atomic_store_explicit(&page->count, 0, memory_order_relaxed);
    set_page_flags(page, 0);
    pthread_mutex_lock(&zone->lock);
    __free_one_block(zone, vm_page_to_pfn(page), 0, 0);
    pthread_mutex_unlock(&zone->lock);
}

/* Thread exit: the lists go back to the zones. */
static void pcp_exit(void *arg)
{
    struct per_cpu_pages *pcp = arg;
    pcp_self = &pcp_none;
    pthread_mutex_lock(&pcp_list_lock);
    list_del(&pcp->link);
    pthread_mutex_unlock(&pcp_list_lock);
    pthread_mutex_lock(&pcp->lock);
    __pcp_drain(pcp);
    pthread_mutex_unlock(&pcp->lock);
    pcp_free_self(pcp);
}

static void pcp_make_key(void)
{
    pthread_key_create(&pcp_key, pcp_exit);
}

static struct page *zone_alloc(struct zone_struct *zone, unsigned int order,
                               unsigned int type);

/* The calling thread's lists, made on its first page call. */
static __cold struct per_cpu_pages *pcp_attach(void)
{
    /* pthread_setspecific may allocate: no lists meanwhile */
    pcp_self = &pcp_none;
    pthread_once(&pcp_once, pcp_make_key);
    struct page *page = zone_alloc(&vm_zones[ZONE_NORMAL], 0, PB_SLAB);
    if (!page)
        return &pcp_none;
    page->order = 0;
    atomic_store_explicit(&page->count, 1, memory_order_relaxed);
    struct per_cpu_pages *pcp = vm_page_address(page);
    memset(pcp, 0, sizeof *pcp);
    pthread_mutex_init(&pcp->lock, NULL);
    for (int z = ZONE_DMA; z <= ZONE_NORMAL; z++)
        for (unsigned int o = 0; o < PCP_ORDERS; o++)
            INIT_LIST_HEAD(&pcp->lists[z][o].list);
    if (pthread_setspecific(pcp_key, pcp)) {
        pcp_free_self(pcp);
        return &pcp_none;
    }
    pthread_mutex_lock(&pcp_list_lock);
    list_add(&pcp->link, &pcp_all);
    pthread_mutex_unlock(&pcp_list_lock);
    pcp_self = pcp;
    return pcp;
}

static inline struct per_cpu_pages *pcp_get(void)
{
    struct per_cpu_pages *pcp = pcp_self;
    if (unlikely(!pcp))
        pcp = pcp_attach();
    return pcp;
}

/* A block of `order` (< PCP_ORDERS) from the thread's list for zone,
 * refilled with a batch when empty; NULL when the zone has none at hand
 * (the caller then grows it). */
static struct page *pcp_alloc(struct zone_struct *zone, unsigned int order)
{
    struct per_cpu_pages *pcp = pcp_get();
    if (pcp == &pcp_none)
        return NULL;
    int z = (int)(zone - vm_zones);
    struct pcp_list *l = &pcp->lists[z][order];
    struct page *page = NULL;
    pthread_mutex_lock(&pcp->lock);
    pcp->ops++;
    if (!l->count) {
        unsigned long n = 0, want = PCP_BATCH_PAGES >> order;
        pthread_mutex_lock(&zone->lock);
        zone->nr_allocs++;
        for (; n < (want ? want : 1); n++) {
            struct page *p = __rmqueue(zone, order, PB_SLAB);
            if (!p)
                break;
            set_page_flags(p, (1UL << PG_pcp) |
                                  (page_flags(p) & (1UL << PG_clean)));
            p->order = order;
            list_add_tail(&p->list, &l->list);
        }
        pthread_mutex_unlock(&zone->lock);
        l->count += n;
        pcp_frames_add(pcp, (long)(n << order));
    }
    if (l->count) {
        page = list_entry(l->list.next, struct page, list);
        list_del(&page->list);
        l->count--;
        pcp_frames_add(pcp, -(1L << order));
        set_page_flags(page, 0);
    }
    pthread_mutex_unlock(&pcp->lock);
    if (page)
        vg_make_usable(vm_page_address(page), PAGE_SIZE << order);
    return page;
}

/* Puts a freed block (order < PCP_ORDERS) on the thread's list: 1, or 0
 * when it goes to the zone (no lists, or a trim cap below a list).  When
 * the list passed its mark and a batch went to the zone, *dirty is the
 * zone's dirty frames then (else it is left alone). */
static int pcp_free(struct page *page, unsigned int order, unsigned long *dirty)
{
    if (__atomic_load_n(&vm_purge_threshold, __ATOMIC_RELAXED) < PCP_HIGH_PAGES)
        return 0;
    struct per_cpu_pages *pcp = pcp_get();
    if (pcp == &pcp_none)
        return 0;
    int z = (int)page->zone;
    struct pcp_list *l = &pcp->lists[z][order];
    pthread_mutex_lock(&pcp->lock);
    pcp->ops++;
    set_page_flags(page, 1UL << PG_pcp);
    page->order = order;
    list_add(&page->list, &l->list);
    l->count++;
    pcp_frames_add(pcp, 1L << order);
    if ((l->count << order) > PCP_HIGH_PAGES)
        *dirty = pcp_give_back(pcp, z, order, PCP_BATCH_PAGES);
    pthread_mutex_unlock(&pcp->lock);
    return 1;
}

/* Validates every thread's lists; returns the frames on them. */
/* A broken invariant in a validator: say() tells it, the locks taken are
 * dropped (unlock), the validator returns -EFAULT. */
#define PCP_UNLOCK                                                             \
    (pthread_mutex_unlock(&pcp->lock), pthread_mutex_unlock(&pcp_list_lock))
#define ZONE_UNLOCK pthread_mutex_unlock(&zone->lock)
#define ZONE_BROKEN(unlock, ...)                                               \
    do {                                                                       \
        say(__VA_ARGS__);                                                      \
        unlock;                                                                \
        return -EFAULT;                                                        \
    } while (0)

static long pcp_check(void (*say)(const char *fmt, ...))
{
    long total = 0;
    pthread_mutex_lock(&pcp_list_lock);
    struct list_head *p, *q;
    list_for_each(p, &pcp_all)
    {
        struct per_cpu_pages *pcp = pcp_of(p);
        unsigned long frames = 0;
        pthread_mutex_lock(&pcp->lock);
        for (int z = ZONE_DMA; z <= ZONE_NORMAL; z++) {
            struct zone_struct *zone = &vm_zones[z];
            for (unsigned int o = 0; o < PCP_ORDERS; o++) {
                unsigned long n = 0;
                list_for_each(q, &pcp->lists[z][o].list)
                {
                    struct page *pg = list_entry(q, struct page, list);
                    unsigned long pfn = vm_page_to_pfn(pg);
                    if (!PageFlag(pg, PG_pcp) || PageFlag(pg, PG_buddy) ||
                        pg->order != o || pg->zone != (unsigned)z ||
                        pfn < zone->zone_start_pfn ||
                        pfn + (1UL << o) > zone->zone_end_pfn)
                        ZONE_BROKEN(PCP_UNLOCK,
                                    "zone %s: frame %lu on a thread's "
                                    "order-%u list has order %u, flags 0x%lx",
                                    zone->name, pfn, o, pg->order,
                                    page_flags(pg));
                    n++;
                }
                if (n != pcp->lists[z][o].count)
                    ZONE_BROKEN(PCP_UNLOCK,
                                "zone %s: a thread's order-%u list holds %lu "
                                "blocks, counts %lu",
                                zone->name, o, n, pcp->lists[z][o].count);
                frames += n << o;
            }
        }
        if (frames != pcp->frames)
            ZONE_BROKEN(PCP_UNLOCK,
                        "a thread's page lists hold %lu frames, count %lu",
                        frames, pcp->frames);
        pthread_mutex_unlock(&pcp->lock);
        total += (long)frames;
    }
    pthread_mutex_unlock(&pcp_list_lock);
    return total;
}

/* ---- the public interface ---- */

/* The zone could not grow and had no block: waits while a purge pass has
 * free blocks off the lists (they come back within one madvise), which
 * with a short decay time can be most of the zone.  Returns 1 after a
 * wait (try again), 0 when nothing was off the lists (no lock held). */
static int zone_wait_purge(struct zone_struct *zone)
{
    int waited = 0;
    pthread_mutex_lock(&zone->lock);
    while (zone->purging_pages) {
        pthread_cond_wait(&purge_done, &zone->lock);
        waited = 1;
    }
    pthread_mutex_unlock(&zone->lock);
    return waited;
}

/* A block of `order` for a use of `type` from zone: its own pageblocks, a
 * whole free one, half a pageblock of the other type; then the zone grows;
 * only when it cannot, any block of the other type. */
static struct page *zone_alloc(struct zone_struct *zone, unsigned int order,
                               unsigned int type)
{
    for (int any = 0;;) {
        pthread_mutex_lock(&zone->lock);
        struct page *page = __rmqueue(zone, order, type);
        if (!page)
            page = __rmqueue_steal(zone, order, type, any);
        unsigned long seen = zone->grown_pfn;
        zone->nr_allocs++;
        pthread_mutex_unlock(&zone->lock);
        if (page) {
            /* under valgrind: frames may have held freed malloc blocks */
            vg_make_usable(vm_page_address(page), PAGE_SIZE << order);
            return page;
        }
        if (any && !zone_wait_purge(zone))
            return NULL;
        if (!any && zone_grow(zone, seen))
            any = 1;
    }
}

/* ZONE_NORMAL (unless __GFP_DMA), then ZONE_DMA, growing them. */
static struct page *zones_alloc(int gfp_mask, unsigned int order,
                                unsigned int type)
{
    struct page *page = NULL;
    if (!(gfp_mask & __GFP_DMA))
        page = zone_alloc(&vm_zones[ZONE_NORMAL], order, type);
    if (!page)
        page = zone_alloc(&vm_zones[ZONE_DMA], order, type);
    return page;
}

/* alloc_pages() for a use of `type` (PB_SLAB, PB_RUN). */
static struct page *alloc_pages_type(int gfp_mask, unsigned int order,
                                     unsigned int type)
{
    if (order >= MAX_ORDER) {
        errno = EINVAL;
        return NULL;
    }
    kslab_init();
    if (unlikely(!vm_lowmem.ready)) {
        errno = ENOMEM;
        return NULL;
    }
    struct page *page = NULL;
    if (gfp_mask & __GFP_HIGHMEM)
        page = vm_highmem_alloc_pages(order);
    if (!page && order < PCP_ORDERS && type == PB_SLAB)
        page = pcp_alloc(
            &vm_zones[gfp_mask & __GFP_DMA ? ZONE_DMA : ZONE_NORMAL], order);
    if (!page)
        page = zones_alloc(gfp_mask, order, type);
    if (!page && vm_pcp_pages()) { /* frames on the threads' lists */
        pcp_drain_all(0);
        page = zones_alloc(gfp_mask, order, type);
    }
    if (!page) {
        errno = ENOMEM;
        return NULL;
    }
    if (!PageFlag(page, PG_highmem)) {
        page->order = order;
        atomic_store_explicit(&page->count, 1, memory_order_relaxed);
    }
    return page;
}

/**
 * alloc_pages - allocate 2^order contiguous page frames.
 * @gfp_mask: __GFP_DMA for ZONE_DMA frames; __GFP_HIGHMEM may give user
 *            memory (no direct-map address); otherwise ZONE_NORMAL, then
 *            ZONE_DMA as a fallback, as 2.4 does.
 * Returns the first frame with count 1, or NULL (errno ENOMEM/EINVAL).
 * Any context; takes the zone lock.
 */
struct page *alloc_pages(int gfp_mask, unsigned int order)
{
    return alloc_pages_type(gfp_mask, order, PB_SLAB);
}

/* Returns a block to its zone; the caller dropped the last reference. */
static void free_block_to_zone(struct page *page, unsigned int order)
{
    unsigned long pfn = vm_page_to_pfn(page);
    struct zone_struct *zone = &vm_zones[page->zone];
    if (unlikely(page->zone > ZONE_NORMAL || pfn < zone->zone_start_pfn ||
                 pfn + (1UL << order) > zone->zone_end_pfn))
        kslab_die("__free_pages(): frame %lu (order %u) outside zone %s", pfn,
                  order, zone->name);
    unsigned long dirty = ULONG_MAX;
    if (order < PCP_ORDERS && pcp_free(page, order, &dirty)) {
        if (dirty != ULONG_MAX) /* a batch reached the zone: a slow path */
            purger_kick(dirty, 0);
        return;
    }
    pthread_mutex_lock(&zone->lock);
    if (pfn + (1UL << order) > zone->grown_pfn)
        kslab_die("__free_pages(): frame %lu (order %u) outside zone %s", pfn,
                  order, zone->name);
    if (PageFlag(page, PG_buddy))
        kslab_die("__free_pages(): double free of frame %lu at %p", pfn,
                  vm_page_address(page));
    __free_one_block(zone, pfn, order, 0);
    int over = over_cap(zone);
    dirty = zone->dirty_pages;
    pthread_mutex_unlock(&zone->lock);
    after_free(zone, over, dirty);
}

/**
 * __free_pages - drop a reference to a block from alloc_pages().
 * The block goes back to the buddy lists when the count reaches zero.
 */
/* Drops a reference to a low-memory block; fn is the public call, for the
 * one-line report of a misuse. */
static void free_pages_ref(struct page *page, unsigned int order,
                           const char *fn)
{
    if (order >= MAX_ORDER || !vm_lowmem.ready || !lowmem_page_valid(page))
        kslab_die("%s(): invalid page %p (order %u)", fn, (void *)page, order);
    if (page_flags(page) & ((1UL << PG_buddy) | (1UL << PG_pcp)))
        kslab_die("%s(): double free of frame %lu at %p", fn,
                  vm_page_to_pfn(page), vm_page_address(page));
    KSLAB_CHECK(!PageSlab(page),
                "%s(): frame %lu at %p still belongs to a slab cache "
                "(flags 0x%lx)",
                fn, vm_page_to_pfn(page), vm_page_address(page),
                page_flags(page));
    /* The order is the block's, recorded by alloc_pages(): another order
     * would give back frames the caller does not own, or keep some. */
    if (unlikely(page->order != order))
        kslab_die_at(vm_page_address(page),
                     "%s(): block at %p was allocated with order %u, freed "
                     "with order %u",
                     fn, vm_page_address(page), page->order, order);
    int left = atomic_fetch_sub(&page->count, 1) - 1;
    if (left < 0)
        kslab_die("%s(): page %p has no reference", fn, (void *)page);
    if (left == 0)
        free_block_to_zone(page, order);
}

void __free_pages(struct page *page, unsigned int order)
{
    if (!page)
        return;
    if (PageFlag(page, PG_highmem)) {
        vm_highmem_free_pages(page, order);
        return;
    }
    free_pages_ref(page, order, "__free_pages");
}

unsigned long __get_free_pages(int gfp_mask, unsigned int order)
{
    struct page *page = alloc_pages(gfp_mask & ~__GFP_HIGHMEM, order);
    return page ? (unsigned long)vm_page_address(page) : 0;
}

void free_pages(unsigned long addr, unsigned int order)
{
    if (!addr)
        return;
    struct page *page = vm_virt_to_page((void *)addr);
    if (!page || (addr & ~PAGE_MASK))
        kslab_die("free_pages(): invalid address %p", (void *)addr);
    free_pages_ref(page, order, "free_pages");
}

void *page_address(struct page *page)
{
    if (!page || PageFlag(page, PG_highmem) || !vm_lowmem.ready)
        return NULL;
    return vm_page_address(page);
}

struct page *virt_to_page(const void *addr)
{
    if (!vm_lowmem.ready)
        return NULL;
    return vm_virt_to_page(addr);
}

/* ---- page-granular blocks (large malloc blocks) ---- */

static unsigned int order_for(unsigned long npages)
{
    unsigned int order = 0;
    while ((1UL << order) < npages)
        order++;
    return order;
}

/* Frees an arbitrary run [pfn, pfn + n) of frames into zone as maximal
 * aligned blocks.  Zone lock held. */
static void __free_run(struct zone_struct *zone, unsigned long pfn,
                       unsigned long n)
{
    while (n) {
        unsigned int order = MAX_ORDER - 1;
        while (((pfn - zone->zone_start_pfn) & ((1UL << order) - 1)) ||
               (1UL << order) > n)
            order--;
        __free_one_block(zone, pfn, order, 0);
        pfn += 1UL << order;
        n -= 1UL << order;
    }
}

struct page *vm_alloc_pages_exact(int gfp_mask, unsigned long npages)
{
    if (!npages || npages > (1UL << (MAX_ORDER - 1))) {
        errno = EINVAL;
        return NULL;
    }
    unsigned int order = order_for(npages);
    struct page *page =
        alloc_pages_type(gfp_mask & ~__GFP_HIGHMEM, order, PB_RUN);
    if (!page)
        return NULL;
    unsigned long extra = (1UL << order) - npages;
    struct zone_struct *zone = &vm_zones[page->zone];
    unsigned long pfn = vm_page_to_pfn(page);
    if (extra || order >= PB_ORDER) {
        pthread_mutex_lock(&zone->lock);
        /* a whole pageblock: what it gives back (its tail, a shrink) is a
         * run's */
        if (order >= PB_ORDER)
            set_pb_type(pfn, PB_RUN);
        if (extra)
            __free_run(zone, pfn + npages, extra);
        pthread_mutex_unlock(&zone->lock);
    }
    page->order = order_for(npages);
    return page;
}

void vm_free_pages_exact(struct page *page, unsigned long npages)
{
    unsigned long pfn = vm_page_to_pfn(page);
    struct zone_struct *zone = &vm_zones[page->zone];
    if (page_flags(page) & ((1UL << PG_buddy) | (1UL << PG_pcp)))
        kslab_die("free(): double free of block %p", vm_page_address(page));
    KSLAB_CHECK(!PageSlab(page),
                "vm_free_pages_exact(): frame %lu at %p belongs to a slab "
                "cache (flags 0x%lx)",
                pfn, vm_page_address(page), page_flags(page));
    set_page_flags(page, 0);
    atomic_store(&page->count, 0);
    pthread_mutex_lock(&zone->lock);
    if (pfn < zone->zone_start_pfn || pfn + npages > zone->grown_pfn)
        kslab_die("free(): block %p of %lu pages outside zone %s",
                  vm_page_address(page), npages, zone->name);
    __free_run(zone, pfn, npages);
    int over = over_cap(zone);
    unsigned long dirty = zone->dirty_pages;
    pthread_mutex_unlock(&zone->lock);
    after_free(zone, over, dirty);
}

/* Finds the free block that holds frame pfn, or NULL.  Zone lock held. */
static struct page *free_block_of(struct zone_struct *zone, unsigned long pfn,
                                  unsigned int *porder)
{
    for (unsigned int o = 0; o < MAX_ORDER; o++) {
        unsigned long head = zone->zone_start_pfn +
                             ((pfn - zone->zone_start_pfn) & ~((1UL << o) - 1));
        struct page *p = pfn_to_page(head);
        if (!PageFlag(p, PG_buddy))
            continue;
        check_free_head("free_block_of", zone, head, p);
        if (p->order == o) {
            *porder = o;
            return p;
        }
    }
    return NULL;
}

int vm_grow_pages_exact(struct page *page, unsigned long old_npages,
                        unsigned long new_npages)
{
    if (new_npages <= old_npages)
        return 0;
    struct zone_struct *zone = &vm_zones[page->zone];
    unsigned long pfn = vm_page_to_pfn(page) + old_npages;
    unsigned long end = vm_page_to_pfn(page) + new_npages;
    int err = -ENOMEM;
    pthread_mutex_lock(&zone->lock);
    if (end > zone->grown_pfn)
        goto out;
    /* frames of two sections are not adjacent in the address space */
    if (pfn_section(vm_page_to_pfn(page)) != pfn_section(end - 1))
        goto out;
    /* First check that every frame wanted is free, in the block's own
     * pageblock, a run pageblock or a whole free one (not another slab
     * pageblock: that would mix the uses again), then claim them. */
    for (unsigned long p = pfn; p < end;) {
        unsigned int o;
        struct page *blk = free_block_of(zone, p, &o);
        if (!blk)
            goto out;
        unsigned long head = vm_page_to_pfn(blk);
        if (free_type(head, o) != PB_RUN && o < PB_ORDER &&
            (head ^ (pfn - 1)) >> PB_ORDER)
            goto out;
        p = head + (1UL << o);
    }
    while (pfn < end) {
        unsigned int o;
        struct page *blk = free_block_of(zone, pfn, &o);
        unsigned long head = vm_page_to_pfn(blk);
        unsigned long tail = head + (1UL << o);
        if (o >= PB_ORDER)
            set_pb_type(head, PB_RUN);
        del_free_block(zone, blk, o);
        if (head < pfn)
            __free_run(zone, head, pfn - head);
        if (tail > end)
            __free_run(zone, end, tail - end);
        pfn = tail < end ? tail : end;
    }
    err = 0;
out:
    pthread_mutex_unlock(&zone->lock);
    return err;
}

void vm_shrink_pages_exact(struct page *page, unsigned long old_npages,
                           unsigned long new_npages)
{
    if (new_npages >= old_npages || !new_npages)
        return;
    struct zone_struct *zone = &vm_zones[page->zone];
    pthread_mutex_lock(&zone->lock);
    __free_run(zone, vm_page_to_pfn(page) + new_npages,
               old_npages - new_npages);
    int over = over_cap(zone);
    unsigned long dirty = zone->dirty_pages;
    pthread_mutex_unlock(&zone->lock);
    after_free(zone, over, dirty);
}

/* ---- validation and fork ---- */

long vm_verify_zones(void (*say)(const char *fmt, ...))
{
    if (!vm_lowmem.ready)
        return 0;
    long total = pcp_check(say);
    if (total < 0)
        return total;
    for (int z = ZONE_DMA; z <= ZONE_NORMAL; z++) {
        struct zone_struct *zone = &vm_zones[z];
        unsigned long free = 0, dirty = 0;
        pthread_mutex_lock(&zone->lock);
        for (int o = 0; o < MAX_ORDER; o++) {
            unsigned long n = 0;
            for (int cl = 0; cl < 2 * PB_TYPES; cl++) {
                unsigned int t = (unsigned int)cl >> 1;
                struct list_head *head = cl & 1
                                             ? &zone->free_area[o].clean_list[t]
                                             : &zone->free_area[o].free_list[t];
                struct list_head *pos;
                list_for_each(pos, head)
                {
                    struct page *p = list_entry(pos, struct page, list);
                    unsigned long pfn = vm_page_to_pfn(p);
                    if (!PageFlag(p, PG_buddy) || p->order != (unsigned)o)
                        ZONE_BROKEN(ZONE_UNLOCK,
                                    "zone %s: block at frame %lu on list %d "
                                    "has order %u",
                                    zone->name, pfn, o, p->order);
                    if ((int)PageFlag(p, PG_clean) != (cl & 1))
                        ZONE_BROKEN(ZONE_UNLOCK,
                                    "zone %s: block at frame %lu on the %s "
                                    "list",
                                    zone->name, pfn,
                                    cl & 1 ? "clean" : "dirty");
                    if (free_type(pfn, (unsigned int)o) != t)
                        ZONE_BROKEN(ZONE_UNLOCK,
                                    "zone %s: block at frame %lu (order %d) on "
                                    "the lists of pageblock type %u, not %u",
                                    zone->name, pfn, o, t,
                                    free_type(pfn, (unsigned int)o));
                    if ((pfn - zone->zone_start_pfn) & ((1UL << o) - 1))
                        ZONE_BROKEN(ZONE_UNLOCK,
                                    "zone %s: block at frame %lu misaligned "
                                    "for order %d",
                                    zone->name, pfn, o);
                    if (pfn < zone->zone_start_pfn ||
                        pfn + (1UL << o) > zone->grown_pfn)
                        ZONE_BROKEN(
                            ZONE_UNLOCK,
                            "zone %s: block at frame %lu outside the zone",
                            zone->name, pfn);
                    n++;
                    free += 1UL << o;
                    if (!(cl & 1))
                        dirty += 1UL << o;
                }
            }
            if (n != zone->free_area[o].nr_free)
                ZONE_BROKEN(ZONE_UNLOCK,
                            "zone %s: order %d lists %lu blocks, counts %lu",
                            zone->name, o, n, zone->free_area[o].nr_free);
        }
        if (free != zone->free_pages || dirty != zone->dirty_pages)
            ZONE_BROKEN(ZONE_UNLOCK,
                        "zone %s: %lu free (%lu dirty) frames, counts %lu "
                        "(%lu)",
                        zone->name, free, dirty, zone->free_pages,
                        zone->dirty_pages);
        pthread_mutex_unlock(&zone->lock);
        total += (long)free;
    }
    return total;
}

unsigned long vm_check_zones(void)
{
    return (unsigned long)vm_verify_zones(
        (void (*)(const char *, ...))kslab_die);
}

/* The fork hook (level KSLAB_FORK_FRAMES, the last: the order of every
 * kslab lock is at the top of lib/fork.c): purge_lock, the page lists,
 * grow_lock, the zones, the high-memory frames. */
static void frames_fork_prepare(void)
{
    pthread_mutex_lock(&purge_lock); /* no pass has blocks off the lists */
    pthread_mutex_lock(&pcp_list_lock);
    struct list_head *p;
    list_for_each(p, &pcp_all) pthread_mutex_lock(&pcp_of(p)->lock);
    pthread_mutex_lock(&grow_lock);
    for (int z = 0; z < MAX_NR_ZONES; z++)
        pthread_mutex_lock(&vm_zones[z].lock);
    vm_highmem_fork_lock();
}

static void frames_fork_parent(void)
{
    vm_highmem_fork_unlock(0);
    for (int z = MAX_NR_ZONES - 1; z >= 0; z--)
        pthread_mutex_unlock(&vm_zones[z].lock);
    pthread_mutex_unlock(&grow_lock);
    struct list_head *p;
    list_for_each(p, &pcp_all) pthread_mutex_unlock(&pcp_of(p)->lock);
    pthread_mutex_unlock(&pcp_list_lock);
    pthread_mutex_unlock(&purge_lock);
}

static void frames_fork_child(void)
{
    vm_highmem_fork_unlock(1);
    pthread_mutex_init(&grow_lock, NULL);
    pthread_mutex_init(&purge_lock, NULL);
    pthread_cond_init(&purge_done, NULL);
    for (int z = 0; z < MAX_NR_ZONES; z++)
        pthread_mutex_init(&vm_zones[z].lock, NULL);
    /* The lists of the threads that did not come along go back to the
     * zones; their pages too. */
    pthread_mutex_init(&pcp_list_lock, NULL);
    struct list_head *p, *n;
    list_for_each(p, &pcp_all) pthread_mutex_init(&pcp_of(p)->lock, NULL);
    list_for_each_safe(p, n, &pcp_all)
    {
        struct per_cpu_pages *pcp = pcp_of(p);
        if (pcp == pcp_self)
            continue;
        __pcp_drain(pcp);
        list_del(&pcp->link);
        pcp_free_self(pcp);
    }
    /* The background purge did not come along: the next free starts one
     * (one that could not be created gets another try).  ThreadSanitizer
     * kills a fork child of a threaded process that starts a thread: there
     * the child's frees run the passes themselves. */
#ifdef __SANITIZE_THREAD__
    atomic_store(&purger_state, PURGER_NONE);
#else
    atomic_store(&purger_state, PURGER_IDLE);
#endif
    atomic_store(&purger_last_ms, 0);
}

static const struct kslab_fork_hook frames_fork_hook = {
    frames_fork_prepare, frames_fork_parent, frames_fork_child};
