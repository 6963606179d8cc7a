/*
 * vm/mm/swap.c — swap-in (2.4 mm/memory.c's do_swap_page path and
 * mm/swap.c's page_cluster): swapin_readahead reads the aligned cluster
 * of 1 << page_cluster slots around a faulting entry into the swap cache,
 * so a scan that swapped pages out together takes one major fault per
 * cluster instead of one per page.  Frames for the cluster are reclaimed
 * first; the reads are synchronous, in slot order, and stop as soon as
 * free frames fall to pages_min.  Locking: called with the faulting mm's
 * mmap_sem; the swap cache functions take vm_swap_lock.
 */
#include <errno.h>

#include "vm/mm/mm.h"

/* 2.4 set it from memory size (2–4); 3 = clusters of 8 pages, 32 KiB. */
static int page_cluster = 3;

/**
 * vm_set_page_cluster - swap-in readahead of 1 << @order pages (0: none,
 * at most 5).  Returns the previous value, or -EINVAL.
 */
KSLAB_API int vm_set_page_cluster(int order)
{
    if (order < 0 || order > 5)
        return -EINVAL;
    int old = page_cluster;
    __atomic_store_n(&page_cluster, order, __ATOMIC_RELAXED);
    return old;
}

void swapin_readahead(struct mm_struct *held, swp_entry_t entry)
{
    unsigned long n = 1UL << __atomic_load_n(&page_cluster, __ATOMIC_RELAXED);
    if (n <= 1)
        return;
    unsigned long base = SWP_OFFSET(entry) & ~(n - 1);
    /* room for the cluster first, as 2.4's allocations for it could
     * reclaim: without it readahead starves at the watermark */
    unsigned long free = vm_free_user_frames(), room = n + 2 * vm_pages_min();
    if (free < room)
        do_try_to_free_pages(held, room - free);
    for (unsigned long off = base; off < base + n; off++) {
        swp_entry_t e = SWP_ENTRY(SWP_TYPE(entry), off);
        if (!off || off == SWP_OFFSET(entry))
            continue;
        pthread_mutex_lock(&vm_swap_lock);
        int want = __swap_entry_used(e) && !__lookup_swap_cache(e);
        pthread_mutex_unlock(&vm_swap_lock);
        if (!want)
            continue;
        struct page *page = read_swap_cache_async(held, e, 1);
        if (!page)
            break; /* memory is short: no more readahead */
        put_page(page);
    }
}
