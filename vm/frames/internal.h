/*
 * vm/frames/internal.h — what the files of the frame layer share and no
 * layer above sees (the layers above use page.h and os.h).  The layer is
 * one concept a file: lowmem.c, the direct map (its reservation, commit
 * and sections), the growth of the zones, start-up and the fork hook;
 * buddy.c, the buddy lists of the zones and their pageblock types,
 * alloc_pages() and __free_pages(), the validator; purge.c, giving free frames
 * back to the host (the decay pass, its registry, the background thread and the
 * slow paths' ticks); runs.c, the page-granular runs of large malloc blocks;
 * highmem.c, the user-memory frames; os.c, every call to the host.
 *
 * Lock order of the frames (lib/fork.c has the whole of kslab's):
 * purge_lock (purge.c), grow_lock (lowmem.c), the zone locks, the high-memory
 * frames' lock (highmem.c). A function here that wants a lock held says which.
 */
#ifndef KSLAB_VM_FRAMES_INTERNAL_H
#define KSLAB_VM_FRAMES_INTERNAL_H

#include <errno.h>

#include "lib/assert.h"
#include "vm/frames/page.h"

/* ---- the direct map (lowmem.c) ---- */

/* Low memory grows by sections (an address-space limit is in force):
 * written under grow_lock, only ever from 0 to 1, read atomically
 * without it. */
extern int vm_lowmem_sectioned;

/* The section of frame pfn (reserved). */
static inline const struct vm_section *vm_pfn_section(unsigned long pfn)
{
    unsigned long first =
        __atomic_load_n(&vm_lowmem.first_pages, __ATOMIC_RELAXED);
    if (pfn < first)
        return &vm_sections[0];
    return &vm_sections[1 + (pfn - first) / VM_SECTION_PAGES];
}

/* The direct-map address of frame pfn (reserved). */
static inline char *vm_pfn_address(unsigned long pfn)
{
    const struct vm_section *s = vm_pfn_section(pfn);
    return s->base + ((pfn - s->start_pfn) << PAGE_SHIFT);
}

/* Is page a struct page of committed low memory? */
int vm_lowmem_page_valid(const struct page *page);

/* Commits ZONE_GROW_PAGES more frames to zone, unless another thread grew
 * it since the caller saw it at seen_pfn (then 0 at once: try again).
 * 0 or -ENOMEM.  Zone lock NOT held. */
int vm_zone_grow(struct zone_struct *zone, unsigned long seen_pfn);

/* Gives back every section but the first whose grown frames are all free
 * in whole top-order blocks, each clean or free since `before` (ms;
 * ULONG_MAX: any).  The caller holds purge_lock.  Returns the bytes of address
 * space given back. */
size_t vm_lowmem_release_sections(unsigned long before);

/* ---- the buddy lists (buddy.c); the zone lock held ---- */

/* The type of each pageblock of low memory (PB_SLAB, PB_RUN), one byte a
 * pageblock, under the zone locks (made at start-up, lowmem.c). */
extern unsigned char *vm_pb_types;

/* The type of the pageblock holding frame pfn (page.h): PB_SLAB or
 * PB_RUN.  Meaningful only while the pageblock is split; under its zone's
 * lock (zones start on a pageblock boundary). */
static inline unsigned int vm_pb_type(unsigned long pfn)
{
    return vm_pb_types[pfn >> PB_ORDER];
}

static inline void vm_set_pb_type(unsigned long pfn, unsigned int type)
{
    vm_pb_types[pfn >> PB_ORDER] = (unsigned char)type;
}

/* The lists a free block [pfn, pfn + 2^order) goes on: its pageblock's
 * type, or PB_SLAB's for a whole free pageblock (it belongs to no one). */
static inline unsigned int vm_free_type(unsigned long pfn, unsigned int order)
{
    return order >= PB_ORDER ? PB_SLAB : vm_pb_type(pfn);
}

/* Level-1 check of a free head (PG_buddy) at pfn before its order is
 * trusted: below MAX_ORDER, aligned to it, inside the grown zone. */
static inline void vm_check_free_head(const char *fn, struct zone_struct *zone,
                                      unsigned long pfn,
                                      const struct page *page)
{
    unsigned int o = page->order;
    KSLAB_CHECK(o < MAX_ORDER &&
                    !((pfn - zone->zone_start_pfn) & ((1UL << o) - 1)) &&
                    pfn + (1UL << o) <= zone->grown_pfn,
                "%s(): zone %s: free block at frame %lu has order %u", fn,
                zone->name, pfn, o);
}

/* Takes the free block page of `order` off its list (it is then neither
 * free nor allocated: PG_buddy clear). */
static inline void vm_del_free_block(struct zone_struct *zone,
                                     struct page *page, unsigned int order)
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
void vm_free_one_block(struct zone_struct *zone, unsigned long pfn,
                       unsigned int order, int clean);

/* Takes a block of exactly `order` from zone for a use of `type` (PB_SLAB,
 * PB_RUN) from its own pageblocks or a whole free one; NULL when none
 * (__rmqueue() in Linux). */
struct page *vm_rmqueue(struct zone_struct *zone, unsigned int order,
                        unsigned int type);

/* A block of `order` for a use of `type` from zone, growing it; NULL when
 * it has none and cannot grow.  No lock held. */
struct page *vm_zone_alloc(struct zone_struct *zone, unsigned int order,
                           unsigned int type);

/* alloc_pages() for a use of `type` (PB_SLAB, PB_RUN). */
struct page *vm_alloc_pages_type(int gfp_mask, unsigned int order,
                                 unsigned int type);

/* A broken invariant in a validator (vm_verify_zones): say() tells it, the
 * locks taken are dropped (unlock), the validator returns -EFAULT. */
#define VM_ZONE_BROKEN(unlock, ...)                                            \
    do {                                                                       \
        say(__VA_ARGS__);                                                      \
        unlock;                                                                \
        return -EFAULT;                                                        \
    } while (0)

/* ---- giving memory back (purge.c) ---- */

/* Zone lock held: did the free just done pass the cap? */
static inline int vm_over_cap(const struct zone_struct *zone)
{
    return zone->dirty_pages >
           __atomic_load_n(&vm_purge_threshold, __ATOMIC_RELAXED);
}

/* Called by every free path that reached a zone, after it dropped the
 * zone lock; over: the free left more dirty memory than the cap
 * (vm_purge_threshold); dirty: the zone's dirty frames then. */
void vm_purge_after_free(struct zone_struct *zone, int over,
                         unsigned long dirty);
/* A free asked for the background purge in a process with threads
 * (purge.c): an allocating entry, holding no frames lock, starts it. */
extern int vm_purge_wanted;
extern unsigned long vm_purge_starts; /* background purges started */
void vm_purge_safe_point_slow(void);
static inline void vm_purge_safe_point(void)
{
    if (unlikely(__atomic_load_n(&vm_purge_wanted, __ATOMIC_RELAXED)))
        vm_purge_safe_point_slow();
}
/* The zone could not grow and had no block: waits while a purge pass has
 * free blocks off the lists.  1 after a wait (try again), else 0. */
int vm_zone_wait_purge(struct zone_struct *zone);
/* The fork hook's part (lowmem.c): purge_lock, and in the child the
 * background purge marked as not running. */
void vm_purge_fork_prepare(void);
void vm_purge_fork_parent(void);
void vm_purge_fork_child(void);

#endif /* KSLAB_VM_FRAMES_INTERNAL_H */
