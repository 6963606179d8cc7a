/*
 * interpose/large.c — large malloc blocks (> LARGE_MIN_SIZE) for the
 * interposer: the interface of interpose/large.h, and buddy blocks.
 *
 * Two kinds of block, told apart by address:
 *  - a buddy block: a run of low-memory frames from vm_alloc_pages_exact().
 *    Its head page has PG_private and its length in frames in page->private;
 *    the other frames carry nothing.  It grows in place with
 *    vm_grow_pages_exact() when the frames after it are free and shrinks
 *    with vm_shrink_pages_exact().  A freed one goes first to the freeing
 *    thread's cache (interpose/large_tcache.c), for that thread's next
 *    block of its size; giving the frames back to the host is the buddy
 *    allocator's job.
 *  - a huge block: host memory of its own (interpose/huge.c), for blocks
 *    beyond the largest buddy order, for alignments a buddy block cannot
 *    give, and as a fallback when low memory is exhausted; a freed one
 *    goes to the pool of address ranges (interpose/huge_pool.c).
 * This file chooses between them, resizes (in place, else by a copy),
 * counts, trims, holds the layer's fork handlers for the large blocks and
 * calls KSLAB_DEBUG's hooks (slab/debug.h) on every large block handed out
 * or taken back.
 *
 * Locking: buddy blocks need none of ours (the zone locks serialise the
 * frames; the head page belongs to the block's owner).  The thread caches
 * and the huge blocks have locks of their own (interpose/
 * large_internal.h has the order).  Counters are relaxed atomics.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "interpose/large_internal.h"
#include "slab/debug.h"
#include "slab/kmalloc.h"
#include "vm/frames/os.h"

#define LARGE_FLAGS_GFP GFP_KERNEL

struct ip_large_counters ip_large_st;

/* Blocks of this many bytes and more are own mappings (M_MMAP_THRESHOLD);
 * by default those that no buddy block can hold. */
size_t ip_large_mmap_threshold = LARGE_MMAP_THRESHOLD_DEFAULT;
int ip_large_mmap_max = LARGE_MMAP_MAX_DEFAULT;

static int want_buddy(size_t len, unsigned long npages)
{
    if (npages > LARGE_BUDDY_MAX_PAGES)
        return 0;
    return len < __atomic_load_n(&ip_large_mmap_threshold, __ATOMIC_RELAXED) ||
           GET(huge_blocks) >= (unsigned long)__atomic_load_n(
                                   &ip_large_mmap_max, __ATOMIC_RELAXED);
}

/* ---- buddy blocks ---- */

static struct page *large_head(const void *p)
{
    if ((uintptr_t)p & (PAGE_SIZE - 1))
        return NULL;
    struct page *page = vm_virt_to_page(p);
    if (!page || !PageFlag(page, PG_private))
        return NULL;
    return page;
}

/* npages frames aligned to align (> PAGE_SIZE means extra frames are
 * allocated and the misaligned head and tail given back). */
static void *buddy_alloc(unsigned long npages, size_t align, int zero)
{
    unsigned long extra = align > PAGE_SIZE ? (align >> PAGE_SHIFT) - 1 : 0;
    struct page *page = vm_alloc_pages_exact(LARGE_FLAGS_GFP, npages + extra);
    if (!page)
        return NULL;
    if (extra) {
        uintptr_t a = (uintptr_t)vm_page_address(page);
        uintptr_t aligned = (a + align - 1) & ~(uintptr_t)(align - 1);
        unsigned long lead = (aligned - a) >> PAGE_SHIFT;
        if (lead)
            vm_free_pages_exact(page, lead);
        if (extra - lead)
            vm_free_pages_exact(page + lead + npages, extra - lead);
        page += lead;
    }
    SetPageFlag(page, PG_private);
    page->private = npages;
    void *p = vm_page_address(page);
    if (zero)
        memset(p, 0, npages << PAGE_SHIFT);
    ADD(nr_alloc, 1);
    ADD(live_blocks, 1);
    ADD(live_pages, npages);
    return p;
}

static void buddy_free(struct page *page)
{
    unsigned long npages = page->private;
    ClearPageFlag(page, PG_private);
    page->private = 0;
    vm_free_pages_exact(page, npages);
    ADD(nr_free, 1);
    SUB(live_blocks, 1);
    SUB(live_pages, npages);
}

/* ---- the interface ---- */

static void *large_alloc(size_t size, size_t align, int zero)
{
    if (!size)
        size = 1;
    if (align > (size_t)PTRDIFF_MAX / 2 ||
        size >
            (size_t)PTRDIFF_MAX - (align > PAGE_SIZE ? align : 0) - PAGE_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    size_t len = PAGE_ALIGN(size);
    unsigned long npages = len >> PAGE_SHIFT;
    unsigned long extra = align > PAGE_SIZE ? (align >> PAGE_SHIFT) - 1 : 0;
    if (want_buddy(len, npages + extra)) {
        void *p = extra ? NULL : ip_tcache_alloc(npages, zero);
        if (p) {
            ip_tcache_note_alloc(npages);
            return p;
        }
        int saved = errno;
        p = buddy_alloc(npages, align, zero);
        if (!p && ip_tcache_flush_all()) /* memory short: empty the caches */
            p = buddy_alloc(npages, align, zero);
        if (p) {
            ip_tcache_note_alloc(npages);
            return p;
        }
        errno = saved; /* low memory full: fall back to a mapping */
    }
    return ip_huge_alloc(len, align, zero);
}

static int large_free(void *p)
{
    int saved = errno;
    int ret = IP_LARGE_FREED;
    struct page *page = vm_virt_to_page(p);
    if (page) {
        page = large_head(p);
        if (page) {
            if (!ip_tcache_free(page))
                buddy_free(page);
        } else
            ret = IP_LARGE_BAD;
    } else if (!ip_huge_free(p)) {
        ret = IP_LARGE_NOT_OURS;
    }
    errno = saved;
    return ret;
}

size_t ip_large_usable(const void *p)
{
    if (vm_virt_to_page(p)) {
        struct page *page = large_head(p);
        return page ? page->private << PAGE_SHIFT : 0;
    }
    return ip_huge_usable(p);
}

/* Frames for a buddy block growing to npages: half as much again (room
 * for its next growth), within the largest buddy block; npages when there
 * is no such room. */
static unsigned long large_room(unsigned long npages)
{
    unsigned long room = npages + npages / 2;
    return want_buddy(room << PAGE_SHIFT, room) ? room : npages;
}

static void *large_realloc(void *p, size_t size)
{
    if (size > (size_t)PTRDIFF_MAX - PAGE_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    size_t len = PAGE_ALIGN(size);
    unsigned long npages = len >> PAGE_SHIFT;
    struct page *page = large_head(p);
    size_t old;
    if (page) {
        unsigned long oldn = page->private;
        /* stays as it is while it is at most half as big again as asked
         * (the room a growth gave it); a bigger shrink gives the tail back */
        if (npages <= oldn && npages >= oldn - oldn / 3)
            return p;
        if (npages < oldn) {
            vm_shrink_pages_exact(page, oldn, npages);
            page->private = npages;
            SUB(live_pages, oldn - npages);
            return p;
        }
        if (want_buddy(len, npages)) {
            unsigned long room = large_room(npages);
            if (room > npages && vm_grow_pages_exact(page, oldn, room) == 0)
                npages = room;
            else if (vm_grow_pages_exact(page, oldn, npages) != 0)
                goto move;
            page->private = npages;
            ADD(live_pages, npages - oldn);
            ADD(grow_in_place, 1);
            return p;
        }
    move:
        old = oldn << PAGE_SHIFT;
        /* the block it moves to has room for the next growth too */
        len = large_room(npages) << PAGE_SHIFT;
    } else {
        old = ip_huge_usable(p);
        /* a huge block stays one when it shrinks or stays huge; mremap
         * refuses a block made of ranges of several host mappings (the
         * pool merges neighbours): then it moves by a copy */
        if (npages > LARGE_BUDDY_MAX_PAGES || len <= old) {
            void *q = ip_huge_realloc(p, len);
            if (q)
                return q;
        }
    }
    void *q = large_alloc(len, PAGE_SIZE, 0);
    if (!q && len > PAGE_ALIGN(size))
        q = large_alloc(size, PAGE_SIZE, 0); /* memory short: no room */
    if (!q)
        return NULL;
    memcpy(q, p, old < size ? old : size);
    large_free(p);
    ADD(moved, 1);
    return q;
}

/* ---- KSLAB_DEBUG's hooks for large blocks (slab/debug.h) ---- */

void *ip_large_alloc(size_t size, size_t align, int zero)
{
    void *p = large_alloc(size, align, zero);
    if (slab_debug_tracking() && p)
        slab_debug_alloc(p, size);
    return p;
}

int ip_large_free(void *p)
{
    if (slab_debug_tracking())
        slab_debug_free(p, "free");
    return large_free(p);
}

/* A block realloc moved itself: the old address freed, the new one
 * handed out. */
void *ip_large_realloc(void *p, size_t size)
{
    void *q = large_realloc(p, size);
    if (slab_debug_tracking() && q) {
        slab_debug_free(p, "realloc");
        slab_debug_alloc(q, size);
    }
    return q;
}

/* ---- statistics, trim, fork ---- */

void ip_large_get_stats(struct ip_large_stats *s)
{
    s->nr_alloc = GET(nr_alloc);
    s->nr_free = GET(nr_free);
    s->live_blocks = GET(live_blocks);
    s->live_pages = GET(live_pages);
    s->huge_blocks = GET(huge_blocks);
    s->huge_bytes = GET(huge_bytes);
    s->huge_unmapped_bytes = GET(huge_unmapped_bytes);
    s->grow_in_place = GET(grow_in_place);
    s->moved = GET(moved);
    s->huge_max_blocks = GET(huge_max_blocks);
    s->huge_max_bytes = GET(huge_max_bytes);
    s->tcache_hits = GET(tcache_hits);
    s->huge_cache_hits = GET(huge_cache_hits);
    s->huge_gathered = GET(huge_gathered);
    ip_tcache_sum(&s->tcache_blocks, &s->tcache_bytes);
    ip_huge_pool_stats(&s->huge_cached, &s->huge_cached_bytes);
}

size_t ip_large_trim(void)
{
    size_t bytes = ip_tcache_flush_all();
    return bytes + ip_huge_pool_trim();
}

/* The large blocks' part of the layer's fork hook (interpose/init.c): the
 * thread caches, then the huge blocks. */
void ip_large_fork_prepare(void)
{
    ip_tcache_fork_prepare();
    pthread_mutex_lock(&ip_huge_lock);
}

void ip_large_fork_parent(void)
{
    pthread_mutex_unlock(&ip_huge_lock);
    ip_tcache_fork_parent();
}

/* The child is single-threaded: a fresh mutex is the simplest unlock. */
void ip_large_fork_child(void)
{
    pthread_mutex_init(&ip_huge_lock, NULL);
    ip_tcache_fork_child();
}
