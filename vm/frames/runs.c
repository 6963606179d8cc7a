/*
 * vm/frames/runs.c — page-granular runs of frames for large malloc blocks
 * (vm_alloc_pages_exact and its free, grow and shrink).
 *
 * A large malloc block (interpose/) wants npages frames, not a power of
 * two: a run takes the aligned 2^k block of the order that holds it from
 * the run pageblocks (PB_RUN, buddy.c) and gives its tail back to the
 * buddy lists as maximal aligned blocks (__free_run), so the tails stay in
 * run pageblocks for the next runs and a freed run merges back up to
 * whole pageblocks.  A run grows in place only within its own pageblock,
 * into run pageblocks or into whole free ones (never into a slab
 * pageblock: that would mix the uses again), and never across two
 * sections of low memory (their frames are not adjacent in the address
 * space).  Aligned 2^k blocks are kept (no first-fit of unaligned runs):
 * inside run pageblocks the tails serve the smaller runs.  page->order of
 * a run's head is the order of its size rounded up.  Locking: the zone
 * lock, as for the buddy lists; a free ends with the purge's after-free
 * check (purge.c), outside it.
 */
#include <errno.h>

#include "lib/assert.h"
#include "vm/frames/internal.h"
#include "vm/frames/page.h"

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
        vm_free_one_block(zone, pfn, order, 0);
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
        vm_alloc_pages_type(gfp_mask & ~__GFP_HIGHMEM, order, PB_RUN);
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
            vm_set_pb_type(pfn, PB_RUN);
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
    if (page_flags(page) & (1UL << PG_buddy))
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
    int over = vm_over_cap(zone);
    unsigned long dirty = zone->dirty_pages;
    pthread_mutex_unlock(&zone->lock);
    vm_purge_after_free(zone, over, dirty);
}

/* Finds the free block that holds frame pfn, or NULL.  Zone lock held. */
static struct page *free_block_of(struct zone_struct *zone, unsigned long pfn,
                                  unsigned int *porder)
{
    for (unsigned int o = 0; o < MAX_ORDER; o++) {
        unsigned long head = zone->zone_start_pfn +
                             ((pfn - zone->zone_start_pfn) & ~((1UL << o) - 1));
        struct page *p = vm_pfn_to_page(head);
        if (!PageFlag(p, PG_buddy))
            continue;
        vm_check_free_head("free_block_of", zone, head, p);
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
    if (vm_pfn_section(vm_page_to_pfn(page)) != vm_pfn_section(end - 1))
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
        if (vm_free_type(head, o) != PB_RUN && o < PB_ORDER &&
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
            vm_set_pb_type(head, PB_RUN);
        vm_del_free_block(zone, blk, o);
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
    int over = vm_over_cap(zone);
    unsigned long dirty = zone->dirty_pages;
    pthread_mutex_unlock(&zone->lock);
    vm_purge_after_free(zone, over, dirty);
}
