/*
 * vm/mm/swap_state.c — the swap cache (2.4 mm/swap_state.c): pages that
 * have a swap slot and are also in memory, found by their swap entry.  A
 * page enters it when it is first swapped out (the slot is allocated, the
 * page is written once when the last pte lets go of it) or when it is read
 * back in; it stays while ptes map it, so every mm that shares the slot
 * after a fork finds the same page again instead of reading the slot once
 * more.  The cache holds one page reference and one swap_map count.  A
 * cached page with PG_dirty differs from its slot and must be written
 * before it is dropped; a clean one is dropped without I/O.
 *
 * Structures: a hash of SWAP_HASH buckets chained through page->private,
 * and a list through page->lru in the order pages entered (what
 * __shrink_cache scans).  PG_swapcache marks a cached page, page->index
 * holds its entry.  Locking: everything under vm_swap_lock; the __
 * functions expect it held, the others take it.
 */

#include "vm/mm/mm.h"

#define SWAP_HASH 4096

static struct page *swap_hash[SWAP_HASH];
static LIST_HEAD(swap_lru);
static unsigned long swap_cache_nr;
static char swapper_space; /* page->mapping of a cached page */

_Atomic unsigned long vm_pswpin, vm_pswpout;

static struct page **bucket(swp_entry_t entry)
{
    return &swap_hash[(entry.val * 0x9E3779B97F4A7C15UL) >> 52];
}

#define PageSwapCache(page) PageFlag(page, PG_swapcache)

struct page *__lookup_swap_cache(swp_entry_t entry)
{
    for (struct page *p = *bucket(entry); p; p = (struct page *)p->private)
        if (p->index == entry.val)
            return p;
    return NULL;
}

/* The caller has accounted the cache's swap_map count (get_swap_page
 * gives 1, or __swap_duplicate); the cache takes a page reference. */
void __add_to_swap_cache(struct page *page, swp_entry_t entry)
{
    if (PageSwapCache(page) || __lookup_swap_cache(entry))
        kslab_die("add_to_swap_cache(): page %lu / entry %lx already cached",
                  vm_frame_pfn(page), entry.val);
    get_page(page);
    SetPageFlag(page, PG_swapcache);
    page->index = entry.val;
    page->mapping = &swapper_space;
    struct page **b = bucket(entry);
    page->private = (unsigned long)*b;
    *b = page;
    list_add_tail(&page->lru, &swap_lru);
    swap_cache_nr++;
}

/* Drops the cache's swap_map count and page reference: the page may be
 * freed here. */
void __delete_from_swap_cache(struct page *page)
{
    if (!PageSwapCache(page))
        kslab_die("delete_from_swap_cache(): page %lu is not cached",
                  vm_frame_pfn(page));
    swp_entry_t entry = {page->index};
    struct page **pp = bucket(entry);
    while (*pp != page) {
        if (!*pp)
            kslab_die("delete_from_swap_cache(): page %lu not in its bucket",
                      vm_frame_pfn(page));
        pp = (struct page **)&(*pp)->private;
    }
    *pp = (struct page *)page->private;
    page->private = 0;
    list_del(&page->lru);
    ClearPageFlag(page, PG_swapcache);
    ClearPageFlag(page, PG_dirty);
    page->mapping = NULL;
    page->index = 0;
    swap_cache_nr--;
    __swap_free(entry);
    put_page(page);
}

/* The cached page of entry with a reference for the caller, or NULL. */
struct page *lookup_swap_cache(swp_entry_t entry)
{
    pthread_mutex_lock(&vm_swap_lock);
    struct page *page = __lookup_swap_cache(entry);
    if (page)
        get_page(page);
    pthread_mutex_unlock(&vm_swap_lock);
    return page;
}

/*
 * read_swap_cache_async: the page of entry, from the cache or read from
 * its slot into a new frame that joins the cache; with a reference for
 * the caller.  NULL when the slot is not in use, no frame is free, or the
 * read failed.  A readahead read takes a frame only while more than
 * pages_min are free and never reclaims.  The read is synchronous (the
 * name is 2.4's); mmap_sem of held may be held, vm_swap_lock is not.
 */
struct page *read_swap_cache_async(struct mm_struct *held, swp_entry_t entry,
                                   int readahead)
{
    struct page *page = lookup_swap_cache(entry);
    if (page)
        return page;
    struct page *new;
    if (readahead)
        new = vm_free_user_frames() > vm_pages_min() ? vm_frame_alloc(0) : NULL;
    else
        new = vm_alloc_user_frame(held, 0);
    if (!new)
        return NULL;
    pthread_mutex_lock(&vm_swap_lock);
    page = __lookup_swap_cache(entry);
    if (page || !__swap_entry_used(entry)) {
        if (page)
            get_page(page);
        pthread_mutex_unlock(&vm_swap_lock);
        put_page(new);
        return page;
    }
    __swap_duplicate(entry);
    __add_to_swap_cache(new, entry);
    if (vm_swap_io(entry, new, 0) != 0) {
        __delete_from_swap_cache(new);
        pthread_mutex_unlock(&vm_swap_lock);
        put_page(new);
        return NULL;
    }
    vm_pswpin++;
    if (readahead)
        SetPageFlag(new, PG_referenced);
    pthread_mutex_unlock(&vm_swap_lock);
    return new;
}

/* A pte holding entry goes away (zap): its count is dropped, and a cached
 * page that nobody else can reach any more leaves the cache. */
void free_swap_and_cache(swp_entry_t entry)
{
    pthread_mutex_lock(&vm_swap_lock);
    __swap_free(entry);
    if (__swap_entry_used(entry) == 1) {
        struct page *page = __lookup_swap_cache(entry);
        if (page && page_count(page) == 1)
            __delete_from_swap_cache(page);
    }
    pthread_mutex_unlock(&vm_swap_lock);
}

/* A pte mapping a page that may be cached goes away: as
 * free_swap_and_cache, for the page side.  The page is looked at while
 * our reference still holds it: once dropped, another mm's last
 * reference may free it at any moment. */
void vm_put_swapcache_page(struct page *page)
{
    pthread_mutex_lock(&vm_swap_lock);
    int last = PageSwapCache(page) && page_count(page) == 2 &&
               __swap_count((swp_entry_t){page->index}) == 1;
    put_page(page);
    if (last)
        __delete_from_swap_cache(page);
    pthread_mutex_unlock(&vm_swap_lock);
}

/*
 * A pte's reference to page goes (zap, a COW break).  When it is the only
 * reference, nobody else can reach the page — the swap cache would hold
 * one more — so it is freed without vm_swap_lock (into b when given).
 * Otherwise other ptes or the swap cache share it, and whether it is
 * cached is decided under vm_swap_lock: another mm's reclaim may be
 * adding it to the cache, or dropping it, at this moment.
 */
void vm_pte_page_put(struct page *page, struct vm_free_batch *b)
{
    if (vm_frame_pfn(page) == ZERO_PAGE_PFN)
        return;
    if (atomic_load_explicit(&page->count, memory_order_acquire) == 1) {
        vm_frame_put(page, b);
        return;
    }
    vm_put_swapcache_page(page);
}

unsigned long vm_swap_cache_pages(void)
{
    return __atomic_load_n(&swap_cache_nr, __ATOMIC_RELAXED);
}

/*
 * shrink_cache: cached pages that no pte maps (readahead that was never
 * used, pages whose ptes went) are written when dirty and dropped, oldest
 * first, until want are freed (or all of them with all); a readahead
 * page not used yet (PG_referenced) gets one more round at the tail.
 * Returns the frames freed.
 */
unsigned long __shrink_cache(unsigned long want, int all)
{
    unsigned long freed = 0;
    struct list_head *pos, *n;
    list_for_each_safe(pos, n, &swap_lru)
    {
        if (!all && freed >= want)
            break;
        struct page *page = list_entry(pos, struct page, lru);
        if (page_count(page) != 1)
            continue;
        if (PageFlag(page, PG_referenced)) {
            /* unused readahead: one more round before it goes */
            ClearPageFlag(page, PG_referenced);
            list_del(&page->lru);
            list_add_tail(&page->lru, &swap_lru);
            continue;
        }
        if (PageFlag(page, PG_dirty)) {
            if (vm_swap_io((swp_entry_t){page->index}, page, 1) != 0)
                continue;
            vm_pswpout++;
        }
        __delete_from_swap_cache(page);
        freed++;
    }
    return freed;
}
