/*
 * vm/frames/page.h — page frames: struct page, the zones and the low-memory
 * direct map.  Every structure of the frame layer and its invariants are
 * here; the small inline helpers that the slab fast paths use are here too.
 *
 * Low memory is the direct map: frames numbered 0, 1, ... (pfn), each with
 * its struct page.  It lives in one or more sections, each a reserved
 * range of private anonymous host memory holding a run of frames and,
 * after them, their struct pages.  The first section is the fast one:
 * frame pfn < lowmem.first_pages is the page at base + (pfn << PAGE_SHIFT)
 * and mem_map[pfn] is its struct page.  Without an address-space limit
 * (RLIMIT_AS) it is the only section, reserved whole at start (64 GiB of
 * address space by default, PROT_NONE: it costs nothing but address
 * space).  Under a limit a reservation counts against it whether it is
 * used or not, so low memory grows by sections instead (the
 * discontiguous memory of Linux 2.4, later sparsemem): the first holds
 * VM_SECTION_PAGES frames, and each further section of VM_SECTION_PAGES
 * frames is reserved when the zones grow into it, anywhere in the address
 * space.  The frame numbers stay one run (section k > 0 has frames
 * first_pages + (k - 1) * VM_SECTION_PAGES onwards) and every section is
 * a whole number of top-order blocks, so no buddy block spans two
 * sections.  A section other than the first is found from an address by
 * a two-level table (lowmem.c), on the slow path only.
 *
 * Frames are committed (made readable and writable) from the bottom up as
 * the zones grow; lowmem.committed_pages only ever grows, so a lock-free
 * reader that sees a pfn below it may use its struct page.  ZONE_DMA is
 * the first frames (DMA_PAGES, or a quarter of a smaller first section),
 * ZONE_NORMAL the rest.  ZONE_HIGHMEM (user memory, vm/ address spaces)
 * has frames with no address in the direct map.
 */
#ifndef KSLAB_VM_FRAMES_PAGE_H
#define KSLAB_VM_FRAMES_PAGE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <kslab/vm.h>

#include "lib/compiler.h"
#include "lib/list.h"
#include "lib/report.h"

/* 16 MiB of ZONE_DMA, as on a PC. */
#define DMA_PAGES 4096UL
/* Zones grow by this many frames at a time (4 MiB): a brk-style commit. */
#define ZONE_GROW_PAGES 1024UL
/* Frames of a section when low memory grows by sections (32 MiB): a
 * multiple of ZONE_GROW_PAGES and of the top-order block. */
#define VM_SECTION_PAGES 8192UL
/* Most sections: 128 GiB of low memory under an address-space limit. */
#define VM_MAX_SECTIONS 4096

/* page->flags bits. */
#define PG_slab 0     /* owned by a slab cache: list.next/prev = cache/slab */
#define PG_buddy 1    /* head of a free buddy block of order page->order */
#define PG_clean 2    /* free block whose frames were given back (zero) */
#define PG_reserved 3 /* never handed out */
#define PG_highmem 4  /* a user-memory frame, no direct-map address */
#define PG_private 5  /* page->private holds its owner's data */
#define PG_dirty 7    /* must be written before it can be dropped */
#define PG_referenced 8
#define PG_swapcache 9
#define PG_pagecache 10 /* in vm/mm's page cache: mapping, index */

/*
 * struct page — one page frame.
 *
 * Free (buddy): the head page of a free block has PG_buddy, its order in
 * `order` and is linked through `list` on its zone's free_area[order].
 * Slab: every page of a slab has PG_slab; list.next is its cache
 * (GET_PAGE_CACHE), list.prev its slab (GET_PAGE_SLAB), s_mem the first
 * address the slab hands out (its first object past a red zone), and the
 * slab_* fields copies of the cache's geometry and array id, so the fast
 * path of kfree() validates a pointer and finds the thread's array from
 * this one structure (the first 56 bytes).  In use otherwise: count is the
 * reference count, order the order it was allocated with.
 */
struct page {
    struct list_head list;
    void *s_mem;
    unsigned long flags;
    union {
        struct {                  /* user memory (vm/) */
            unsigned long index;  /* swap entry (swap cache) or offset */
            struct list_head lru; /* active/inactive lists */
        };
        struct {                  /* a slab frame: the free fast path */
            uint64_t slab_objinv; /* copies of its cache's fields */
            unsigned int slab_objshift;
            unsigned int slab_num;
            unsigned int slab_id;
        };
    };
    atomic_int count;
    unsigned int order;
    unsigned int zone;     /* index into vm_zones[] */
    unsigned int pins;     /* get_user_pages pins of a user frame (vm/mm/) */
    void *mapping;         /* owner when in a cache (swap, file) */
    unsigned long private; /* owner-defined */
};

/*
 * page->flags is read without any lock: the kfree() fast path tests
 * PG_slab of any frame, and freeing a buddy block looks at its buddy's
 * PG_buddy under the zone lock while the buddy's owner, when it is
 * allocated, changes its other bits without that lock (kmem_cache_grow
 * setting PG_slab), as 2.4's page_is_buddy does.  And vm/mm sets PG_dirty
 * of a shared frame while another thread may change its PG_swapcache.  So
 * every access is atomic: relaxed loads (a plain load on x86) and atomic
 * read-modify-write for a bit, a relaxed store for a whole word written by
 * the frame's only owner.  Ordering comes from the locks and from
 * committed_pages, not from these accesses.
 */
static inline unsigned long page_flags(const struct page *page)
{
    return __atomic_load_n(&page->flags, __ATOMIC_RELAXED);
}

static inline void set_page_flags(struct page *page, unsigned long flags)
{
    __atomic_store_n(&page->flags, flags, __ATOMIC_RELAXED);
}

#define PageFlag(page, bit) ((page_flags(page) >> (bit)) & 1UL)
#define SetPageFlag(page, bit)                                                 \
    ((void)__atomic_fetch_or(&(page)->flags, 1UL << (bit), __ATOMIC_RELAXED))
#define ClearPageFlag(page, bit)                                               \
    ((void)__atomic_fetch_and(&(page)->flags, ~(1UL << (bit)),                 \
                              __ATOMIC_RELAXED))
#define PageSlab(page) PageFlag(page, PG_slab)

/*
 * PG_slab of a frame that holds an object the caller owns, for the free
 * fast paths only: a plain load.  While a frame is a slab nobody but its
 * cache writes its flags, and the cache set PG_slab before any object of
 * the frame was handed out (published under the cache lock), so for a
 * valid pointer the load races with no writer.  An atomic load would cost
 * the fast path two instructions: GCC neither folds it into the test nor
 * takes it as proof that page is not NULL.
 */
#define PageSlabOwned(page) (((page)->flags >> PG_slab) & 1UL)

#define SET_PAGE_CACHE(pg, x) ((pg)->list.next = (struct list_head *)(x))
#define GET_PAGE_CACHE(pg) ((struct kmem_cache_s *)(pg)->list.next)
#define SET_PAGE_SLAB(pg, x) ((pg)->list.prev = (struct list_head *)(x))
#define GET_PAGE_SLAB(pg) ((struct slab_s *)(pg)->list.prev)

enum { ZONE_DMA, ZONE_NORMAL, ZONE_HIGHMEM, MAX_NR_ZONES };

/*
 * Pageblocks (the grouping by mobility of later Linux: pageblock_order,
 * migrate types): low memory is cut into blocks of the top order, 2 MiB,
 * and a pageblock that has been split belongs to one use: PB_SLAB, the
 * low orders of alloc_pages() (slabs, thread structures, page tables), or
 * PB_RUN, the page-granular runs of large malloc blocks
 * (vm_alloc_pages_exact).  A free block below the top order is on the
 * lists of its pageblock's type; a whole free pageblock belongs to no one
 * (it is on the PB_SLAB lists of the top order) and is claimed by the
 * first type that splits it.  See buddy.c for why and for the
 * fallback (stealing a pageblock).
 */
#define PB_ORDER (MAX_ORDER - 1)
#define PB_PAGES (1UL << PB_ORDER)
enum { PB_SLAB, PB_RUN, PB_TYPES };

/* Free blocks of one order.  free_list[type] holds the dirty blocks of
 * that pageblock type (their frames still hold host memory), most recently
 * freed first; clean_list[type] the blocks given back to the host.
 * Allocation prefers dirty blocks (no page faults); a purge gives back the
 * least recently freed first. */
struct free_area_struct {
    struct list_head free_list[PB_TYPES];
    struct list_head clean_list[PB_TYPES];
    unsigned long nr_free; /* blocks on all the lists */
};

/*
 * A low-memory zone: frames [zone_start_pfn, zone_end_pfn) of the direct
 * map, of which [zone_start_pfn, grown_pfn) are committed and handed to
 * the buddy lists.  free_pages counts free frames; dirty_pages counts the
 * free frames that may still hold host memory (not given back with
 * madvise).  All fields are under lock.
 */
struct zone_struct {
    pthread_mutex_t lock;
    const char *name;
    unsigned long zone_start_pfn;
    unsigned long zone_end_pfn;
    unsigned long grown_pfn;
    unsigned long free_pages;
    unsigned long dirty_pages;
    unsigned long released_pages; /* stats: frames given back so far */
    unsigned long nr_allocs;      /* allocations so far (idle test) */
    unsigned long purging_pages;  /* free frames off the lists, being
                                     given back (not in free_pages) */
    unsigned long pb_stolen;      /* stats: pageblocks claimed from the
                                     other type (the fallback) */
    struct free_area_struct free_area[MAX_ORDER];
};

/* The direct map.  base, mem_map and first_pages (the first section) are
 * set by start-up (lib/init.c, level frames), which then sets ready;
 * first_pages only shrinks later (a limit set after start, lowmem.c)
 * and never below a frame in use.  fast_pages is the part of the first
 * section that is committed: the range of the fast path. */
struct vm_lowmem {
    char *base;
    struct page *mem_map;
    unsigned long first_pages;
    _Atomic unsigned long fast_pages;
    unsigned long reserved_pages; /* frames of every section reserved */
    _Atomic unsigned long committed_pages;
    _Atomic int nr_sections; /* sections reserved, the first included */
    _Atomic unsigned long absent_pages; /* grown frames of sections given
                                           back (lowmem.c) */
    int ready;
};

/* A section: frames [start_pfn, start_pfn + nr_pages) at base, their
 * struct pages at map.  Written before the section is published; base and
 * map are NULL while the section is given back (under an address-space
 * limit, when all its frames were free), and written again, before it is
 * published again, when it is reserved anew. */
struct vm_section {
    char *base;
    struct page *map;
    unsigned long start_pfn;
    unsigned long nr_pages;
};

extern struct vm_lowmem vm_lowmem;
/* Low-memory frames marked PG_reserved now (vm/mm/driver.c's
 * mem_map_reserve): while there are none, a free looks at the block's
 * first frame only (buddy.c). */
extern _Atomic unsigned long vm_reserved_frames;
extern struct vm_section vm_sections[VM_MAX_SECTIONS];
extern struct zone_struct vm_zones[MAX_NR_ZONES];

/* The section table (lowmem.c): a granule of 4 MiB of address
 * space, VM_SECT_GRAN_SHIFT, below 2^VM_SECT_VA_BITS, splits into the
 * index of a leaf in vm_sect_l1 and, VM_SECT_L2_BITS, of its entry: the
 * index of the section there (0: none; the first section is never in it).
 * Sections start on a granule boundary.  Entries and leaves are only ever
 * set, with release stores, after the section is written. */
#define VM_SECT_GRAN_SHIFT 22
#define VM_SECT_VA_BITS 47
#define VM_SECT_L2_BITS 13
#define VM_SECT_L1_SIZE                                                        \
    (1UL << (VM_SECT_VA_BITS - VM_SECT_GRAN_SHIFT - VM_SECT_L2_BITS))
extern uint16_t *vm_sect_l1[VM_SECT_L1_SIZE];

/* Sections of a second kind (vm_section_add_foreign): pages that are not
 * low memory and have no frame number, but whose struct pages virt_to_page
 * finds all the same — the slab pages that libkslab-vm.so cuts from the
 * process's emulated mm (vmmode/slab.c), a range of the mm's window, their
 * struct pages in host memory elsewhere: frames and mem_map are two
 * ranges, where a low-memory section is one.  A table entry of such a
 * section is VM_SECT_FOREIGN | its index in vm_foreign_sections. */
#define VM_SECT_FOREIGN 0x8000U
#define VM_MAX_FOREIGN 1024
_Static_assert(VM_MAX_SECTIONS < VM_SECT_FOREIGN, "section index bits");

/* Enters pages [base, base + nr_pages pages) with their struct pages at
 * map (host memory, zeroed, as many) in the section table.  base must
 * start a granule (VM_SECT_GRAN_SHIFT) and the granules it touches must
 * be no other section's.  Returns 0, -EINVAL (misaligned, taken) or
 * -ENOMEM (table full).  Such a section is never taken out: its pages
 * keep their struct pages for the life of the process. */
int vm_section_add_foreign(void *base, unsigned long nr_pages,
                           struct page *map);

/* The slow paths of the helpers below: a frame outside the first
 * section (lowmem.c). */
unsigned long vm_page_to_pfn_slow(const struct page *page);
void *vm_page_address_slow(const struct page *page);
struct page *vm_pfn_to_page_slow(unsigned long pfn);

/* The section holding address a, or 0: loads only, lock-free. */
static inline unsigned int vm_sect_lookup(uintptr_t a)
{
    if (a >> VM_SECT_VA_BITS)
        return 0;
    uint16_t *leaf = __atomic_load_n(
        &vm_sect_l1[a >> (VM_SECT_GRAN_SHIFT + VM_SECT_L2_BITS)],
        __ATOMIC_ACQUIRE);
    if (!leaf)
        return 0;
    return __atomic_load_n(
        &leaf[(a >> VM_SECT_GRAN_SHIFT) & ((1UL << VM_SECT_L2_BITS) - 1)],
        __ATOMIC_ACQUIRE);
}

/* vm_virt_to_page for an address outside the committed first section
 * (lowmem.c): out of line and cold, so that the callers' fast paths
 * stay small enough to be inlined where they were (an inlined lookup kept
 * kfree's code as it was but made GCC stop inlining free()'s). */
__attribute__((cold)) struct page *vm_virt_to_page_other(const void *addr);

/* Frame of a direct-map address, or NULL when addr is not in committed
 * low memory.  One subtraction, one compare for the first section: the
 * kfree() fast path; the other sections through the section table. */
static inline struct page *vm_virt_to_page(const void *addr)
{
    uintptr_t off = (uintptr_t)addr - (uintptr_t)vm_lowmem.base;
    unsigned long pfn = off >> PAGE_SHIFT;
    if (unlikely(pfn >= atomic_load_explicit(&vm_lowmem.fast_pages,
                                             memory_order_relaxed)))
        return vm_virt_to_page_other(addr);
    struct page *page = &vm_lowmem.mem_map[pfn];
    if (!page) /* never: tells the compiler, so callers' tests go */
        __builtin_unreachable();
    return page;
}

/* Is page a struct page of the first section? */
static inline int vm_page_in_first(const struct page *page)
{
    return (uintptr_t)page - (uintptr_t)vm_lowmem.mem_map <
           __atomic_load_n(&vm_lowmem.first_pages, __ATOMIC_RELAXED) *
               sizeof(struct page);
}

static inline unsigned long vm_page_to_pfn(const struct page *page)
{
    if (likely(vm_page_in_first(page)))
        return (unsigned long)(page - vm_lowmem.mem_map);
    return vm_page_to_pfn_slow(page);
}

static inline void *vm_page_address(const struct page *page)
{
    if (likely(vm_page_in_first(page)))
        return vm_lowmem.base +
               ((unsigned long)(page - vm_lowmem.mem_map) << PAGE_SHIFT);
    return vm_page_address_slow(page);
}

static inline struct page *vm_pfn_to_page(unsigned long pfn)
{
    if (likely(pfn < __atomic_load_n(&vm_lowmem.first_pages, __ATOMIC_RELAXED)))
        return &vm_lowmem.mem_map[pfn];
    return vm_pfn_to_page_slow(pfn);
}

/* Is addr inside a ZONE_DMA frame? */
static inline int vm_addr_is_dma(const void *addr)
{
    uintptr_t off = (uintptr_t)addr - (uintptr_t)vm_lowmem.base;
    return (off >> PAGE_SHIFT) < DMA_PAGES;
}

/* Gives free frames back to the host now, whatever the decay time says:
 * dirty free blocks
 * of order >= min_order, largest first and least recently freed first,
 * until at most keep dirty frames are left in each zone; with keep 0 under
 * an address-space limit, the sections whose frames are then all free are
 * unmapped too.  Returns the frames released.  Makes its system calls
 * without the zone locks (purge.c); takes the frames' locks only. */
unsigned long vm_release_free(unsigned int min_order, unsigned long keep);

/* Under an address-space limit: gives back, at once, every section of
 * low memory (but the first) whose frames are all free; returns the bytes of
 * address space given back. For a mapping the limit refused
 * (interpose/huge_pool.c).  No kslab lock held. */
size_t vm_release_sections(void);

/* Address space a layer above holds for reuse (interpose/huge_pool.c's pool
 * of freed huge blocks): fn gives it all back and returns the bytes.
 * Called, with no kslab lock held, before low memory grows while an
 * address-space limit is in force, so the limit is spent on live memory
 * before anything fails.  fn may take only locks under which no frame is
 * allocated. */
void vm_aspace_register(size_t (*fn)(void));

/* Dirty free frames in all, the zones' (DMA, Normal); each zone lock is
 * taken in turn.  Any context but a zone lock
 * held. */
unsigned long vm_dirty_pages(void);

/* An optional cap on the dirty free frames of a zone: a free that leaves
 * more gives the oldest back at once, down to half of it.  ULONG_MAX (the
 * default): no cap, only the time decay; mallopt(M_TRIM_THRESHOLD) sets
 * it. */
extern unsigned long vm_purge_threshold;

/* A dirty free block goes back to the host once it has been free this
 * many milliseconds (the slow paths' ticks and the background purge,
 * purge.c); ULONG_MAX (KSLAB_DECAY_MS=never): never by time, and no
 * background thread.  vm_release_free() gives back at once whatever it
 * says. */
extern unsigned long vm_purge_decay_ms;

/* The clock of the decay: milliseconds of the coarse monotonic clock
 * (vDSO: no system call).  Free frames, empty slabs and cached large
 * blocks are stamped with it, and the purge pass compares against it.
 * The one clock kslab reads, in os.c with the other host calls. */
unsigned long vm_now_ms(void);

/* Memory of a layer above that decays like free frames (interpose/huge_pool.c:
 * cached own mappings): fn(now, decay) gives back what has been free for
 * decay ms at time now (ms of CLOCK_MONOTONIC_COARSE; now 0: nothing) and
 * returns what it still holds, in pages (nonzero keeps the background
 * purge alive).  Each purge pass calls it with no kslab lock held.
 *
 * vm_purge_kick(): the caller freed memory it keeps for the decay and
 * holds no kslab lock; what all the layers keep is counted, and the
 * background purge started when it is worth a thread (purge.c).
 * vm_purge_tick(): a slow path that may hold locks of the layers above
 * (not the frames'): once per tick, the zones' part of a pass runs in the
 * calling thread.  Neither makes a system call in the common case. */
void vm_purge_register(unsigned long (*fn)(unsigned long now,
                                           unsigned long decay));
void vm_purge_kick(void);
void vm_purge_tick(void);

/* Not 0 while this thread runs the page layer's own code that may call
 * malloc (the background purge thread, to its exit; its creation): the
 * KSLAB_DEBUG hooks leave those blocks out of the program's. */
extern __thread int vm_internal_thread;

/* Set once by a layer above before any purge: called with 1 just before
 * the background purge thread is made and with 0 just after, in the
 * thread that makes it, which may be any (libkslab-vm.so points malloc
 * at host memory meanwhile: pthread_create allocates, perhaps in its
 * fault-handler thread or under an mm's mmap_sem, which must not fault on
 * the emulated mm). */
extern void (*vm_purge_create_hook)(int begin);

/* Tests only: called with each range just before it is given back, with
 * no zone lock held. */
extern void (*vm_purge_hook)(void *addr, size_t len);

/* Validates the buddy lists of every zone; aborts on a broken invariant.
 * Returns the number of free frames: on the lists, on the threads' page
 * lists and in a purge pass under way. */
unsigned long vm_check_zones(void);
/* The same, reporting the first broken invariant through say() (one line)
 * and returning -EFAULT instead of aborting (kslab_verify()). */
long vm_verify_zones(void (*say)(const char *fmt, ...));

/* ZONE_HIGHMEM frames (vm/frames/highmem.c): alloc_pages() with __GFP_HIGHMEM
 * and __free_pages() of a PG_highmem page are routed here. */
struct page *vm_highmem_alloc_pages(unsigned int order);
void vm_highmem_free_pages(struct page *page, unsigned int order);

/* Page-granular blocks for large malloc blocks: npages frames, contiguous,
 * from ZONE_NORMAL (the unused tail of the power-of-two block goes back to
 * the buddy lists).  vm_grow_pages_exact() extends a block in place when
 * the frames after it are free (0) or fails (-ENOMEM) changing nothing. */
struct page *vm_alloc_pages_exact(int gfp_mask, unsigned long npages);
void vm_free_pages_exact(struct page *page, unsigned long npages);
int vm_grow_pages_exact(struct page *page, unsigned long old_npages,
                        unsigned long new_npages);
void vm_shrink_pages_exact(struct page *page, unsigned long old_npages,
                           unsigned long new_npages);

#endif /* KSLAB_VM_FRAMES_PAGE_H */
