/*
 * interpose/large.c — large malloc blocks (> KMALLOC_MAX_SIZE) for the
 * interposer.
 *
 * Two kinds of block, told apart by address:
 *  - a buddy block: a run of low-memory frames from vm_alloc_pages_exact().
 *    Its head page has PG_private and its length in frames in page->private;
 *    the other frames carry nothing.  It grows in place with
 *    vm_grow_pages_exact() when the frames after it are free and shrinks
 *    with vm_shrink_pages_exact().  Giving the frames back to the host is the
 *    buddy allocator's job (it purges dirty free frames with hysteresis).
 *  - a huge block: a host mapping of its own, for blocks beyond the largest
 *    buddy order, for alignments a buddy block cannot give, and as a
 *    fallback when low memory is exhausted.  The mapping starts exactly at
 *    the block and is recorded in an open-addressing hash table (huge_tab,
 *    itself a host mapping: no malloc here).  A freed mapping goes to a small
 *    cache (huge_cache) so that a program that allocates and frees big
 *    buffers in a loop makes no system call per allocation; the cache is
 *    bounded by HUGE_CACHE_MAX_BYTES and anything beyond is unmapped.
 *
 * Locking: buddy blocks need none of ours (the zone locks serialise the
 * frames; the head page belongs to the block's owner).  huge_lock protects
 * huge_tab and huge_cache; no other lock is taken under it.  Counters are
 * relaxed atomics.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "interpose/large.h"
#include "vm/frames/os.h"

#define LARGE_FLAGS_GFP GFP_KERNEL

static pthread_mutex_t huge_lock = PTHREAD_MUTEX_INITIALIZER;

struct huge_ent {
    uintptr_t addr; /* 0 = empty, HUGE_TOMB = deleted */
    size_t len;     /* bytes mapped, a multiple of PAGE_SIZE */
};
#define HUGE_TOMB ((uintptr_t)1)

/* The table of live huge blocks: huge_cap slots (a power of two), at most
 * half of them used or deleted. */
static struct huge_ent *huge_tab;
static size_t huge_cap, huge_used, huge_tombs;

/* Freed mappings kept for reuse; addr 0 = empty slot. */
static struct huge_ent huge_cache[HUGE_CACHE_SLOTS];
static size_t huge_cache_bytes;

static struct {
    _Atomic unsigned long nr_alloc, nr_free, live_blocks, live_pages;
    _Atomic unsigned long huge_blocks, huge_bytes, huge_unmapped_bytes;
    _Atomic unsigned long grow_in_place, moved;
    _Atomic unsigned long huge_max_blocks, huge_max_bytes;
} st;

/* Blocks of this many bytes and more are own mappings (M_MMAP_THRESHOLD);
 * by default those that no buddy block can hold. */
size_t vm_large_mmap_threshold = LARGE_MMAP_THRESHOLD_DEFAULT;

#define ADD(ctr, v)                                                            \
    atomic_fetch_add_explicit(&st.ctr, (v), memory_order_relaxed)
#define SUB(ctr, v)                                                            \
    atomic_fetch_sub_explicit(&st.ctr, (v), memory_order_relaxed)
#define GET(ctr) atomic_load_explicit(&st.ctr, memory_order_relaxed)

/* Raises the high-water mark ctr to at least v. */
#define HIGH(ctr, v)                                                           \
    do {                                                                       \
        unsigned long _v = (v), _o = GET(ctr);                                 \
        while (_o < _v && !atomic_compare_exchange_weak_explicit(              \
                              &st.ctr, &_o, _v, memory_order_relaxed,          \
                              memory_order_relaxed))                           \
            ;                                                                  \
    } while (0)

static int want_buddy(size_t len, unsigned long npages)
{
    return npages <= LARGE_BUDDY_MAX_PAGES &&
           len < __atomic_load_n(&vm_large_mmap_threshold, __ATOMIC_RELAXED);
}

/* ---- the huge-block table (huge_lock held) ---- */

static size_t huge_hash(uintptr_t addr, size_t cap)
{
    return (size_t)(((addr >> PAGE_SHIFT) * 0x9E3779B97F4A7C15ULL) >> 17) &
           (cap - 1);
}

static struct huge_ent *__huge_find(uintptr_t addr)
{
    if (!huge_tab)
        return NULL;
    for (size_t i = huge_hash(addr, huge_cap);; i = (i + 1) & (huge_cap - 1)) {
        if (huge_tab[i].addr == addr)
            return &huge_tab[i];
        if (huge_tab[i].addr == 0)
            return NULL;
    }
}

/* Puts addr in the first empty or deleted slot of its chain; returns
 * whether that slot was a deleted one. */
static int __huge_put(struct huge_ent *tab, size_t cap, uintptr_t addr,
                      size_t len)
{
    size_t i = huge_hash(addr, cap);
    while (tab[i].addr > HUGE_TOMB)
        i = (i + 1) & (cap - 1);
    int tomb = tab[i].addr == HUGE_TOMB;
    tab[i].addr = addr;
    tab[i].len = len;
    return tomb;
}

/* Records a live block in huge_tab (room reserved). */
static void __huge_insert(uintptr_t addr, size_t len)
{
    if (__huge_put(huge_tab, huge_cap, addr, len))
        huge_tombs--;
    huge_used++;
}

/* Makes room for one more entry: 0 or -ENOMEM. */
static int __huge_reserve(void)
{
    if (huge_tab && (huge_used + huge_tombs + 1) * 2 <= huge_cap)
        return 0;
    size_t cap = huge_cap ? huge_cap : 256;
    while ((huge_used + 1) * 4 > cap)
        cap *= 2;
    struct huge_ent *tab = vm_os_alloc(cap * sizeof *tab, 0, 0);
    if (!tab)
        return -ENOMEM;
    for (size_t i = 0; i < huge_cap; i++)
        if (huge_tab[i].addr > HUGE_TOMB)
            __huge_put(tab, cap, huge_tab[i].addr, huge_tab[i].len);
    if (huge_tab)
        vm_os_free(huge_tab, huge_cap * sizeof *huge_tab);
    huge_tab = tab;
    huge_cap = cap;
    huge_tombs = 0;
    return 0;
}

static void __huge_delete(struct huge_ent *e)
{
    e->addr = HUGE_TOMB;
    e->len = 0;
    huge_used--;
    huge_tombs++;
}

/* ---- huge blocks ---- */

static void huge_unmap(void *addr, size_t len)
{
    vm_os_free(addr, len);
    ADD(huge_unmapped_bytes, len);
}

/* A mapping of at least len bytes from the cache, or NULL (huge_lock
 * held): the smallest cached mapping that fits and is at most twice len.
 * It is taken whole (*got bytes), without a system call; the slack is
 * memory the cache held anyway, and lets realloc grow without one. */
static void *__huge_cache_take(size_t len, size_t *got)
{
    int best = -1;
    for (int i = 0; i < HUGE_CACHE_SLOTS; i++) {
        size_t l = huge_cache[i].len;
        if (!huge_cache[i].addr || l < len || l / 2 > len)
            continue;
        if (best < 0 || l < huge_cache[best].len)
            best = i;
    }
    if (best < 0)
        return NULL;
    void *addr = (void *)huge_cache[best].addr;
    *got = huge_cache[best].len;
    huge_cache[best].addr = 0;
    huge_cache[best].len = 0;
    huge_cache_bytes -= *got;
    return addr;
}

/* Keeps a freed mapping for reuse, or unmaps it (huge_lock held); evicts
 * the largest cached mappings to stay under HUGE_CACHE_MAX_BYTES. */
static void __huge_cache_put(void *addr, size_t len)
{
    if (len > HUGE_CACHE_MAX_BYTES / 2) {
        huge_unmap(addr, len);
        return;
    }
    for (;;) {
        int empty = -1, big = -1;
        for (int i = 0; i < HUGE_CACHE_SLOTS; i++) {
            if (!huge_cache[i].addr)
                empty = i;
            else if (big < 0 || huge_cache[i].len > huge_cache[big].len)
                big = i;
        }
        if (empty >= 0 && huge_cache_bytes + len <= HUGE_CACHE_MAX_BYTES) {
            huge_cache[empty].addr = (uintptr_t)addr;
            huge_cache[empty].len = len;
            huge_cache_bytes += len;
            return;
        }
        if (big < 0 || huge_cache[big].len < len) {
            huge_unmap(addr, len);
            return;
        }
        huge_unmap((void *)huge_cache[big].addr, huge_cache[big].len);
        huge_cache_bytes -= huge_cache[big].len;
        huge_cache[big].addr = 0;
        huge_cache[big].len = 0;
    }
}

/* Maps len bytes aligned to align (a power of two >= PAGE_SIZE). */
static void *huge_map(size_t len, size_t align)
{
    return vm_os_alloc(len, align, 0);
}

static void *huge_alloc(size_t len, size_t align, int zero)
{
    void *p = NULL;
    int fresh = 0;
    pthread_mutex_lock(&huge_lock);
    if (__huge_reserve() != 0)
        goto out;
    size_t got = len;
    if (align <= PAGE_SIZE)
        p = __huge_cache_take(len, &got);
    if (!p) {
        /* mmap outside the lock would be nicer; a huge block is rare
         * enough that the simple rule wins. */
        p = huge_map(len, align);
        fresh = 1;
    }
    if (p)
        __huge_insert((uintptr_t)p, got);
out:
    pthread_mutex_unlock(&huge_lock);
    if (!p) {
        errno = ENOMEM;
        return NULL;
    }
    if (zero && !fresh)
        memset(p, 0, len);
    ADD(nr_alloc, 1);
    HIGH(huge_max_blocks, ADD(huge_blocks, 1) + 1);
    HIGH(huge_max_bytes, ADD(huge_bytes, got) + got);
    return p;
}

/* Frees a huge block: 1, or 0 when p is not one. */
static int huge_free(void *p)
{
    pthread_mutex_lock(&huge_lock);
    struct huge_ent *e = __huge_find((uintptr_t)p);
    if (!e) {
        pthread_mutex_unlock(&huge_lock);
        return 0;
    }
    size_t len = e->len;
    __huge_delete(e);
    __huge_cache_put(p, len);
    pthread_mutex_unlock(&huge_lock);
    ADD(nr_free, 1);
    SUB(huge_blocks, 1);
    SUB(huge_bytes, len);
    return 1;
}

static size_t huge_usable(const void *p)
{
    pthread_mutex_lock(&huge_lock);
    struct huge_ent *e = __huge_find((uintptr_t)p);
    size_t len = e ? e->len : 0;
    pthread_mutex_unlock(&huge_lock);
    return len;
}

/* Resizes a huge block with mremap; NULL (errno ENOMEM) leaves it be. */
static void *huge_realloc(void *p, size_t len)
{
    void *q = NULL;
    pthread_mutex_lock(&huge_lock);
    if (__huge_reserve() != 0) /* a move may leave a tombstone */
        goto out;
    struct huge_ent *e = __huge_find((uintptr_t)p);
    size_t old = e->len;
    if (len <= old && len >= old / 2) { /* fits, and not much too big */
        q = p;
        goto out;
    }
    q = vm_os_remap(p, old, len);
    if (!q)
        goto out;
    if (q == p) {
        e->len = len;
    } else {
        __huge_delete(e);
        __huge_insert((uintptr_t)q, len);
    }
    if (len > old)
        HIGH(huge_max_bytes, ADD(huge_bytes, len - old) + len - old);
    else
        SUB(huge_bytes, old - len);
    if (q == p && len > old)
        ADD(grow_in_place, 1);
out:
    pthread_mutex_unlock(&huge_lock);
    if (!q)
        errno = ENOMEM;
    return q;
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

void *vm_large_alloc(size_t size, size_t align, int zero)
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
        int saved = errno;
        void *p = buddy_alloc(npages, align, zero);
        if (p)
            return p;
        errno = saved; /* low memory full: fall back to a mapping */
    }
    return huge_alloc(len, align, zero);
}

int vm_large_free(void *p)
{
    int saved = errno;
    int ret = VM_LARGE_FREED;
    struct page *page = vm_virt_to_page(p);
    if (page) {
        page = large_head(p);
        if (page)
            buddy_free(page);
        else
            ret = VM_LARGE_BAD;
    } else if (!huge_free(p)) {
        ret = VM_LARGE_NOT_OURS;
    }
    errno = saved;
    return ret;
}

size_t vm_large_usable(const void *p)
{
    if (vm_virt_to_page(p)) {
        struct page *page = large_head(p);
        return page ? page->private << PAGE_SHIFT : 0;
    }
    return huge_usable(p);
}

void *vm_large_realloc(void *p, size_t size)
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
        if (npages == oldn)
            return p;
        if (npages < oldn) {
            vm_shrink_pages_exact(page, oldn, npages);
            page->private = npages;
            SUB(live_pages, oldn - npages);
            return p;
        }
        if (want_buddy(len, npages) &&
            vm_grow_pages_exact(page, oldn, npages) == 0) {
            page->private = npages;
            ADD(live_pages, npages - oldn);
            ADD(grow_in_place, 1);
            return p;
        }
        old = oldn << PAGE_SHIFT;
    } else {
        if (npages > LARGE_BUDDY_MAX_PAGES)
            return huge_realloc(p, len);
        old = huge_usable(p);
        if (len <= old) /* shrinking a huge block stays a mapping */
            return huge_realloc(p, len);
    }
    void *q = vm_large_alloc(size, PAGE_SIZE, 0);
    if (!q)
        return NULL;
    memcpy(q, p, old < len ? old : len);
    vm_large_free(p);
    ADD(moved, 1);
    return q;
}

void vm_large_get_stats(struct vm_large_stats *s)
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
    pthread_mutex_lock(&huge_lock);
    s->huge_cached = 0;
    for (int i = 0; i < HUGE_CACHE_SLOTS; i++)
        s->huge_cached += huge_cache[i].addr != 0;
    s->huge_cached_bytes = huge_cache_bytes;
    pthread_mutex_unlock(&huge_lock);
}

size_t vm_large_trim(void)
{
    size_t bytes = 0;
    pthread_mutex_lock(&huge_lock);
    for (int i = 0; i < HUGE_CACHE_SLOTS; i++) {
        if (!huge_cache[i].addr)
            continue;
        huge_unmap((void *)huge_cache[i].addr, huge_cache[i].len);
        bytes += huge_cache[i].len;
        huge_cache[i].addr = 0;
        huge_cache[i].len = 0;
    }
    huge_cache_bytes = 0;
    pthread_mutex_unlock(&huge_lock);
    return bytes;
}

void vm_large_fork_prepare(void)
{
    pthread_mutex_lock(&huge_lock);
}

void vm_large_fork_parent(void)
{
    pthread_mutex_unlock(&huge_lock);
}

/* The child is single-threaded: a fresh mutex is the simplest unlock. */
void vm_large_fork_child(void)
{
    pthread_mutex_init(&huge_lock, NULL);
}
