/*
 * vm/frames/buddy.c — the zones' buddy allocator: alloc_pages() and
 * __free_pages().
 *
 * Each zone of low memory is a binary buddy system with orders 0 …
 * MAX_ORDER-1: a free block of order k is 2^k frames aligned on 2^k
 * frames (relative to the zone start); its head page carries PG_buddy and
 * its order and sits on free_area[k].  Allocation splits larger blocks
 * (__rmqueue() and expand() of 2.4); freeing coalesces with the buddy
 * (pfn ^ 2^k) while it is free and of the same order.  A freed block is
 * "dirty" (its frames hold host memory) and goes first on the dirty list,
 * stamped with the time it was freed (page->private, vm_now_ms()); the
 * halves a split gives back keep the stamp of the block they came from
 * (they were free all along: a split must not restart their decay), and
 * a merged block takes the mean stamp of its dirty frames;
 * allocation takes dirty blocks first, so memory freed and soon needed
 * again is reused without a page fault, and purge.c gives the blocks that
 * stayed free for the decay time back to the host, after which they sit
 * on the clean lists (PG_clean: they read as zero).
 *
 * Pageblocks (grouping by mobility, the migrate types of later Linux,
 * page.h): the zone is cut into pageblocks of the top order (2 MiB), and a
 * split pageblock serves one use: PB_SLAB (alloc_pages(): slabs, thread
 * structures, page tables) or PB_RUN (the
 * page-granular runs of large malloc blocks, runs.c).  Each order has
 * lists per type; a free block goes on its pageblock's, a whole free
 * pageblock on no one's (the top order has one set of lists).  Why: in one
 * pool of free frames a run takes an aligned 2^k block and gives its tail
 * back, the next slab grow takes that tail (the smallest fitting block
 * comes first), and once the run is freed it cannot merge back, so the
 * next run of that size needs new frames; with pageblocks a run's tail
 * stays in run pageblocks for the next runs and freed runs merge back up
 * to whole pageblocks.  Linux 2.4 has no such grouping: its buddy lists
 * were shared by every use and high orders failed the same way after a
 * while.  Allocation of type t: the lists of t, else a whole free
 * pageblock (it becomes t's); else a pageblock of the other type with at
 * least half of it free in one block, which is claimed whole with every
 * free block in it (move_freepages_block() of later Linux: what is freed
 * there later goes to t too); else the zone grows (lowmem.c); only when it
 * cannot, any block of the other type, its pageblock left as it is
 * (__rmqueue_fallback()).  Every allocation and free takes the zone
 * lock: 2.4 had no per-CPU page lists, and the threads' lists this
 * allocator once kept in front of the zones (later Linux's per-CPU
 * pages) measured no faster on any benchmark row — the slab's arrays and
 * magazines already keep page calls off the hot path.
 *
 * Locking: each zone has its own mutex; every buddy list and counter of a
 * zone is under it, and the pageblock types too.  No system call is made
 * under a zone lock.
 */
#include <errno.h>
#include <limits.h>

#include "lib/assert.h"
#include "lib/init.h"
#include "lib/valgrind_hooks.h"
#include "vm/frames/highmem.h"
#include "vm/frames/internal.h"
#include "vm/frames/page.h"

struct zone_struct vm_zones[MAX_NR_ZONES] = {
    [ZONE_DMA] = {.lock = PTHREAD_MUTEX_INITIALIZER, .name = "DMA"},
    [ZONE_NORMAL] = {.lock = PTHREAD_MUTEX_INITIALIZER, .name = "Normal"},
    [ZONE_HIGHMEM] = {.lock = PTHREAD_MUTEX_INITIALIZER, .name = "HighMem"},
};

#ifdef KSLAB_VALGRIND
int vm_tool_state = VM_TOOL_UNKNOWN; /* lib/valgrind_hooks.h */
#endif

unsigned char *vm_pb_types; /* internal.h */

/* ---- buddy lists (zone lock held) ---- */

/* since: when the frames became free (ms of vm_now_ms).  A dirty list
 * runs from the youngest block (its head) to the oldest (its tail), which
 * the purge walks back from; a block put at the head is stamped no older
 * than the head it goes before. */
static inline void add_free_block(struct zone_struct *zone, unsigned long pfn,
                                  unsigned int order, int clean,
                                  unsigned long since)
{
    struct page *page = vm_pfn_to_page(pfn);
    unsigned int t = vm_free_type(pfn, order);
    KSLAB_CHECK(!PageFlag(page, PG_buddy),
                "add_free_block(): zone %s: frame %lu (order %u) is already "
                "free",
                zone->name, vm_page_to_pfn(page), order);
    set_page_flags(page,
                   (1UL << PG_buddy) | ((unsigned long)clean << PG_clean));
    page->order = order;
    struct list_head *list = clean ? &zone->free_area[order].clean_list[t]
                                   : &zone->free_area[order].free_list[t];
    if (!clean && !list_empty(list)) {
        unsigned long head = list_entry(list->next, struct page, list)->private;
        if (head > since)
            since = head;
    }
    page->private = clean ? 0 : since; /* when it became free (dirty) */
    atomic_store_explicit(&page->count, 0, memory_order_relaxed);
    list_add(&page->list, list);
    zone->free_area[order].nr_free++;
    zone->free_pages += 1UL << order;
    if (!clean)
        zone->dirty_pages += 1UL << order;
}

/* Frees the block [pfn, pfn + 2^order) into zone, coalescing with free
 * buddies.  clean: the frames are known to hold no host memory. */
void vm_free_one_block(struct zone_struct *zone, unsigned long pfn,
                       unsigned int order, int clean)
{
    unsigned long base = zone->zone_start_pfn;
    /* the merged block's stamp: the mean of its dirty frames' (a clean
     * part holds no host memory and does not count), so frames free for
     * long are not kept from the purge by a few freed beside them now */
    unsigned long since = vm_now_ms(), dirty = clean ? 0 : 1UL << order;
    while (order < MAX_ORDER - 1) {
        unsigned long buddy_pfn = base + ((pfn - base) ^ (1UL << order));
        if (buddy_pfn + (1UL << order) > zone->grown_pfn)
            break;
        struct page *buddy = vm_pfn_to_page(buddy_pfn);
        if (!PageFlag(buddy, PG_buddy))
            break;
        vm_check_free_head("__free_one_block", zone, buddy_pfn, buddy);
        /* A larger free block just below holds the frames being freed. */
        KSLAB_CHECK(buddy->order <= order || buddy_pfn > pfn,
                    "__free_one_block(): zone %s: frame %lu (order %u) is "
                    "inside the free block at frame %lu (order %u)",
                    zone->name, pfn, order, buddy_pfn, buddy->order);
        if (buddy->order != order)
            break;
        clean = clean && PageFlag(buddy, PG_clean);
        if (!PageFlag(buddy, PG_clean)) {
            unsigned long w = 1UL << order;
            since = dirty ? (since * dirty + buddy->private * w) / (dirty + w)
                          : buddy->private;
            dirty += w;
        }
        vm_del_free_block(zone, buddy, order);
        if (buddy_pfn < pfn)
            pfn = buddy_pfn;
        order++;
    }
    add_free_block(zone, pfn, order, clean, since);
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
    unsigned long since = page->private; /* the halves stay free since then */
    vm_del_free_block(zone, page, cur);
    while (cur > order) {
        cur--;
        add_free_block(zone, pfn + (1UL << cur), cur, clean, since);
    }
    return page;
}

/* Takes a block of exactly `order` from zone for a use of `type`,
 * splitting a larger one of its pageblocks or, failing that, a whole free
 * pageblock, which becomes that type's. */
struct page *vm_rmqueue(struct zone_struct *zone, unsigned int order,
                        unsigned int type)
{
    for (unsigned int cur = order; cur < MAX_ORDER; cur++) {
        unsigned int t = cur >= PB_ORDER ? PB_SLAB : type;
        struct page *page = first_free(zone, cur, t);
        if (!page)
            continue;
        unsigned long pfn = vm_page_to_pfn(page);
        if (cur >= PB_ORDER && order < PB_ORDER)
            vm_set_pb_type(pfn, type);
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
    vm_set_pb_type(start, type);
    for (pfn = start; pfn < end;) {
        struct page *p = vm_pfn_to_page(pfn);
        if (!PageFlag(p, PG_buddy)) {
            pfn++;
            continue;
        }
        unsigned int o = p->order;
        vm_check_free_head("claim_pageblock", zone, pfn, p);
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
            return vm_rmqueue(zone, order, type);
        }
        return take_block(zone, page, pfn, (unsigned int)cur, order);
    }
    return NULL;
}

/* ---- the public interface ---- */

/* A block of `order` for a use of `type` from zone: its own pageblocks, a
 * whole free one, half a pageblock of the other type; then the zone grows;
 * only when it cannot, any block of the other type. */
struct page *vm_zone_alloc(struct zone_struct *zone, unsigned int order,
                           unsigned int type)
{
    for (int any = 0;;) {
        pthread_mutex_lock(&zone->lock);
        struct page *page = vm_rmqueue(zone, order, type);
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
        if (any && !vm_zone_wait_purge(zone))
            return NULL;
        if (!any && vm_zone_grow(zone, seen))
            any = 1;
    }
}

/* ZONE_NORMAL (unless __GFP_DMA), then ZONE_DMA, growing them. */
static struct page *zones_alloc(int gfp_mask, unsigned int order,
                                unsigned int type)
{
    struct page *page = NULL;
    if (!(gfp_mask & __GFP_DMA))
        page = vm_zone_alloc(&vm_zones[ZONE_NORMAL], order, type);
    if (!page)
        page = vm_zone_alloc(&vm_zones[ZONE_DMA], order, type);
    return page;
}

/* alloc_pages() for a use of `type` (PB_SLAB, PB_RUN). */
struct page *vm_alloc_pages_type(int gfp_mask, unsigned int order,
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
    if (!page) {
        if (type == PB_SLAB) /* a slab grows: no frames lock held yet */
            vm_purge_safe_point();
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
    return vm_alloc_pages_type(gfp_mask, order, PB_SLAB);
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
    pthread_mutex_lock(&zone->lock);
    if (pfn + (1UL << order) > zone->grown_pfn)
        kslab_die("__free_pages(): frame %lu (order %u) outside zone %s", pfn,
                  order, zone->name);
    if (PageFlag(page, PG_buddy))
        kslab_die("__free_pages(): double free of frame %lu at %p", pfn,
                  vm_page_address(page));
    vm_free_one_block(zone, pfn, order, 0);
    int over = vm_over_cap(zone);
    unsigned long dirty = zone->dirty_pages;
    pthread_mutex_unlock(&zone->lock);
    vm_purge_after_free(zone, over, dirty);
}

_Atomic unsigned long vm_reserved_frames;

/*
 * A frame a driver marked reserved (mem_map_reserve) and did not
 * unreserve: its page of the direct map is shared with every user
 * mapping remap_page_range made of it, so it must never reach the free
 * lists, where the next owner's data would show through them.  2.4's
 * __free_pages skips a PageReserved page without a word (the frame
 * leaks); kslab reports the free as the misuse it is, in one line, and
 * aborts.  Cold: the check costs one load while no frame is reserved.
 */
static __cold void free_reserved_check(struct page *page, unsigned int order,
                                       const char *fn)
{
    for (unsigned long i = 0; i < 1UL << order; i++)
        if (PageFlag(page + i, PG_reserved))
            kslab_die_at(vm_page_address(page + i),
                         "%s(): frame %lu at %p is reserved "
                         "(mem_map_reserve): mem_map_unreserve it first",
                         fn, vm_page_to_pfn(page + i),
                         vm_page_address(page + i));
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
    if (order >= MAX_ORDER || !vm_lowmem.ready || !vm_lowmem_page_valid(page))
        kslab_die("%s(): invalid page %p (order %u)", fn, (void *)page, order);
    if (page_flags(page) & (1UL << PG_buddy))
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
    if (unlikely(atomic_load_explicit(&vm_reserved_frames,
                                      memory_order_relaxed) != 0))
        free_reserved_check(page, order, fn);
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

/* ---- validation ---- */

#define ZONE_UNLOCK pthread_mutex_unlock(&zone->lock)

long vm_verify_zones(void (*say)(const char *fmt, ...))
{
    if (!vm_lowmem.ready)
        return 0;
    long total = 0;
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
                        VM_ZONE_BROKEN(ZONE_UNLOCK,
                                       "zone %s: block at frame %lu on list %d "
                                       "has order %u",
                                       zone->name, pfn, o, p->order);
                    if ((int)PageFlag(p, PG_clean) != (cl & 1))
                        VM_ZONE_BROKEN(ZONE_UNLOCK,
                                       "zone %s: block at frame %lu on the %s "
                                       "list",
                                       zone->name, pfn,
                                       cl & 1 ? "clean" : "dirty");
                    if (vm_free_type(pfn, (unsigned int)o) != t)
                        VM_ZONE_BROKEN(
                            ZONE_UNLOCK,
                            "zone %s: block at frame %lu (order %d) on "
                            "the lists of pageblock type %u, not %u",
                            zone->name, pfn, o, t,
                            vm_free_type(pfn, (unsigned int)o));
                    if ((pfn - zone->zone_start_pfn) & ((1UL << o) - 1))
                        VM_ZONE_BROKEN(ZONE_UNLOCK,
                                       "zone %s: block at frame %lu misaligned "
                                       "for order %d",
                                       zone->name, pfn, o);
                    if (pfn < zone->zone_start_pfn ||
                        pfn + (1UL << o) > zone->grown_pfn)
                        VM_ZONE_BROKEN(
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
                VM_ZONE_BROKEN(ZONE_UNLOCK,
                               "zone %s: order %d lists %lu blocks, counts %lu",
                               zone->name, o, n, zone->free_area[o].nr_free);
        }
        if (free != zone->free_pages || dirty != zone->dirty_pages)
            VM_ZONE_BROKEN(ZONE_UNLOCK,
                           "zone %s: %lu free (%lu dirty) frames, counts %lu "
                           "(%lu)",
                           zone->name, free, dirty, zone->free_pages,
                           zone->dirty_pages);
        /* the blocks of a purge pass are off the lists while they are
         * given back (no lock held): free frames all the same */
        total += (long)(free + zone->purging_pages);
        pthread_mutex_unlock(&zone->lock);
    }
    return total;
}

unsigned long vm_check_zones(void)
{
    return (unsigned long)vm_verify_zones(
        (void (*)(const char *, ...))kslab_die);
}
