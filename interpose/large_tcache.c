/*
 * interpose/large_tcache.c — the per-thread cache of freed buddy blocks
 * (large blocks of low-memory frames, interpose/large.c).
 *
 * Like the per-CPU page lists Linux gained after 2.4 and tcmalloc's
 * thread caches: a thread that frees a buddy block keeps it, by size
 * class, for its next allocation of that size, without the zone lock.
 * Class c holds blocks of at least its class's frames (and fewer than the
 * next class's), so every block of bin tc_class_ceil(n) fits a request of
 * n frames.  A block in a cache is free to the program (its head page has
 * lost PG_private); it goes back to the zones at thread exit (the thread
 * registry's IP level, lib/thread.c: the first, so the frames go back
 * while the slab's arrays of the thread are still there to take
 * them), by ip_large_trim(), when the zones run
 * short, and in a child of fork for the threads that did not come along.
 * The caches of every thread are found through the registry's slots.  The
 * bounds are in interpose/large.h (LARGE_TCACHE_*).
 *
 * Locking: a cache's own lock is taken by its thread (never contended but
 * by ip_large_trim(), the statistics and fork); the registry's IP level
 * lock guards the slots and comes first in the order; the zone locks come
 * last.
 */
#include <string.h>

#include "interpose/large_internal.h"
#include "lib/thread.h"
#include "slab/kmalloc.h"
#include "vm/frames/os.h"

struct large_tcache {
    pthread_mutex_t lock;
    size_t bytes; /* held, under lock */
    size_t live;  /* buddy bytes the thread allocated less those it freed
                     (its own thread only; an estimate: a block freed by
                     another thread counts there) */
    unsigned long nr;
    unsigned char count[LARGE_TCACHE_CLASSES];
    struct page *bin[LARGE_TCACHE_CLASSES][LARGE_TCACHE_BIN];
};

#define TC_MIN_PAGES 9UL /* the smallest class */
#define TC_MAX_PAGES 512UL

/* Walks every thread's cache (the IP level lock held). */
#define for_each_tc(tc, pos)                                                   \
    for (struct kslab_thread *pos = NULL;                                      \
         ((tc) = kslab_thread_next(KSLAB_THREAD_IP, &pos));)
/* A thread past its exit hook, or one without memory for a cache. */
static struct large_tcache tc_none;
static __thread struct large_tcache *tc_self
    __attribute__((tls_model("initial-exec")));

_Static_assert(LARGE_BUDDY_MAX_PAGES <= TC_MAX_PAGES,
               "the classes must cover every buddy block");

/* Classes: 8 a doubling of the length in frames, 9, 10, ..., 16, 18,
 * ..., 32, 36, ..., 512; class c is (c / 8 + 3, c % 8) in (k, m) with
 * 2^k + (m + 1) 2^(k - 3) frames. */

/* The smallest class of at least n frames (n <= TC_MAX_PAGES). */
static int tc_class_ceil(unsigned long n)
{
    if (n <= TC_MIN_PAGES)
        return 0;
    int k = 63 - __builtin_clzl(n - 1); /* 2^k < n <= 2^(k+1) */
    unsigned long step = 1UL << (k - 3);
    return (k - 3) * 8 + (int)((n - (1UL << k) + step - 1) / step) - 1;
}

/* The largest class of at most n frames, -1 for none. */
static int tc_class_floor(unsigned long n)
{
    if (n < TC_MIN_PAGES || n > TC_MAX_PAGES)
        return -1;
    int k = 63 - __builtin_clzl(n - 1); /* 2^k < n <= 2^(k+1) */
    unsigned long m = (n - (1UL << k)) >> (k - 3);
    return m ? (k - 3) * 8 + (int)m - 1 : (k - 4) * 8 + 7;
}

/* Gives a cached block's frames back to the zones. */
static void tc_release(struct page *page)
{
    unsigned long npages = page->private;
    page->private = 0;
    vm_free_pages_exact(page, npages);
}

/* Empties tc (its lock held, or its thread gone); returns the bytes. */
static size_t __tc_flush(struct large_tcache *tc)
{
    size_t bytes = tc->bytes;
    for (int c = 0; c < LARGE_TCACHE_CLASSES; c++) {
        for (int i = 0; i < tc->count[c]; i++)
            tc_release(tc->bin[c][i]);
        tc->count[c] = 0;
    }
    tc->bytes = 0;
    tc->nr = 0;
    return bytes;
}

/* Thread exit (the registry's IP level, the first): the cache goes back
 * to the zones. */
static void tc_exit(void *slot)
{
    struct large_tcache *tc = slot;
    tc_self = &tc_none;
    if (!tc)
        return;
    kslab_thread_detach(KSLAB_THREAD_IP);
    pthread_mutex_lock(&tc->lock);
    __tc_flush(tc);
    pthread_mutex_unlock(&tc->lock);
    free_pages((unsigned long)tc, 0);
}

static const struct kslab_thread_hook tc_thread_hook = {tc_exit};

static __cold struct large_tcache *tc_attach(void)
{
    _Static_assert(sizeof(struct large_tcache) <= PAGE_SIZE,
                   "a thread's cache must fit a page");
    struct large_tcache *tc =
        (struct large_tcache *)__get_free_pages(GFP_KERNEL, 0);
    if (!tc) {
        tc_self = &tc_none;
        return NULL;
    }
    memset(tc, 0, sizeof *tc);
    pthread_mutex_init(&tc->lock, NULL);
    int r = kslab_thread_attach(KSLAB_THREAD_IP, &tc_thread_hook, tc);
    if (r) {
        free_pages((unsigned long)tc, 0);
        if (r < 0)
            return NULL; /* tc_self stays NULL: a later call tries again */
        /* the cache of a dead thread whose TLS block this one has */
        tc = kslab_thread_slot(KSLAB_THREAD_IP);
    }
    tc_self = tc;
    return tc;
}

/* A cached block of at least n frames, made live, or NULL. */
void *ip_tcache_alloc(unsigned long n, int zero)
{
    struct large_tcache *tc = tc_self;
    if (!tc || tc == &tc_none || n > TC_MAX_PAGES)
        return NULL;
    struct page *page = NULL;
    int lo = tc_class_floor(n), hi = tc_class_ceil(n);
    pthread_mutex_lock(&tc->lock);
    /* the bin below holds blocks of n frames and more too; then the bin
     * of n's class and the one above (at most a quarter more) */
    if (lo >= 0 && lo != hi) {
        for (int i = tc->count[lo] - 1; i >= 0; i--) {
            if (tc->bin[lo][i]->private >= n) {
                page = tc->bin[lo][i];
                tc->bin[lo][i] = tc->bin[lo][--tc->count[lo]];
                break;
            }
        }
    }
    for (int c = hi; !page && c <= hi + 1 && c < LARGE_TCACHE_CLASSES; c++)
        if (tc->count[c])
            page = tc->bin[c][--tc->count[c]];
    /* else the smallest bigger block, cut to n frames below (far) */
    int far = 0;
    for (int c = hi + 2; !page && c < LARGE_TCACHE_CLASSES; c++)
        if (tc->count[c]) {
            page = tc->bin[c][--tc->count[c]];
            far = 1;
        }
    if (page) {
        tc->bytes -= page->private << PAGE_SHIFT;
        tc->nr--;
    }
    pthread_mutex_unlock(&tc->lock);
    if (!page)
        return NULL;
    if (far) {
        /* Its tail goes back to the zones, free and still resident, right
         * after the block: a block grown by realloc from small to big and
         * freed is cut down for the next one that starts small, which then
         * grows in place over the same frames (rather than new ones each
         * time while the big block waits in its bin). */
        vm_shrink_pages_exact(page, page->private, n);
        page->private = n;
    }
    unsigned long npages = page->private;
    SetPageFlag(page, PG_private);
    void *p = vm_page_address(page);
    if (zero)
        memset(p, 0, n << PAGE_SHIFT);
    ADD(nr_alloc, 1);
    ADD(live_blocks, 1);
    ADD(live_pages, npages);
    ADD(tcache_hits, 1);
    return p;
}

/* A buddy block of npages frames went live in the calling thread. */
void ip_tcache_note_alloc(unsigned long npages)
{
    struct large_tcache *tc = tc_self;
    if (unlikely(!tc))
        tc = tc_attach();
    if (tc && tc != &tc_none)
        tc->live += npages << PAGE_SHIFT;
}

/* What a thread with live bytes of buddy blocks may keep: a share of them
 * (LARGE_TCACHE_LIVE_SHIFT), at least LARGE_TCACHE_MIN_BYTES, at most
 * LARGE_TCACHE_MAX_BYTES.  A thread that frees what it built (a tree torn
 * down) keeps little at the end, rather than its whole bound while other
 * threads build. */
static size_t tc_bound(size_t live)
{
    size_t max = live >> LARGE_TCACHE_LIVE_SHIFT;
    if (max < LARGE_TCACHE_MIN_BYTES)
        max = LARGE_TCACHE_MIN_BYTES;
    if (max > LARGE_TCACHE_MAX_BYTES)
        max = LARGE_TCACHE_MAX_BYTES;
    return max;
}

/* Keeps the live block at page in the calling thread's cache: 1, or 0
 * when it does not fit (no class, bin full, the thread's bound reached). */
int ip_tcache_free(struct page *page)
{
    unsigned long npages = page->private;
    int c = tc_class_floor(npages);
    if (c < 0)
        return 0;
    struct large_tcache *tc = tc_self;
    if (unlikely(!tc))
        tc = tc_attach();
    if (!tc || tc == &tc_none)
        return 0;
    size_t len = npages << PAGE_SHIFT;
    tc->live = tc->live > len ? tc->live - len : 0;
    /* M_TRIM_THRESHOLD bounds what a thread keeps too (0: nothing) */
    size_t max = tc_bound(tc->live);
    unsigned long trim = __atomic_load_n(&vm_purge_threshold, __ATOMIC_RELAXED);
    if (trim < (max >> PAGE_SHIFT))
        max = trim << PAGE_SHIFT;
    int kept = 0;
    pthread_mutex_lock(&tc->lock);
    if (tc->count[c] < LARGE_TCACHE_BIN && tc->bytes + len <= max) {
        /* free to the program from here on: a second free is caught */
        ClearPageFlag(page, PG_private);
        tc->bin[c][tc->count[c]++] = page;
        tc->bytes += len;
        tc->nr++;
        kept = 1;
    }
    pthread_mutex_unlock(&tc->lock);
    if (kept) {
        ADD(nr_free, 1);
        SUB(live_blocks, 1);
        SUB(live_pages, npages);
    }
    return kept;
}

/* Empties every thread's cache: the bytes given back to the zones. */
size_t ip_tcache_flush_all(void)
{
    size_t bytes = 0;
    struct large_tcache *tc;
    kslab_thread_lock(KSLAB_THREAD_IP);
    for_each_tc(tc, pos)
    {
        pthread_mutex_lock(&tc->lock);
        bytes += __tc_flush(tc);
        pthread_mutex_unlock(&tc->lock);
    }
    kslab_thread_unlock(KSLAB_THREAD_IP);
    return bytes;
}

void ip_tcache_sum(unsigned long *blocks, unsigned long *bytes)
{
    struct large_tcache *tc;
    *blocks = *bytes = 0;
    kslab_thread_lock(KSLAB_THREAD_IP);
    for_each_tc(tc, pos)
    {
        pthread_mutex_lock(&tc->lock);
        *blocks += tc->nr;
        *bytes += tc->bytes;
        pthread_mutex_unlock(&tc->lock);
    }
    kslab_thread_unlock(KSLAB_THREAD_IP);
}

void ip_tcache_fork_prepare(void)
{
    struct large_tcache *tc;
    kslab_thread_lock(KSLAB_THREAD_IP);
    for_each_tc(tc, pos) pthread_mutex_lock(&tc->lock);
}

void ip_tcache_fork_parent(void)
{
    struct large_tcache *tc;
    for_each_tc(tc, pos) pthread_mutex_unlock(&tc->lock);
    kslab_thread_unlock(KSLAB_THREAD_IP);
}

/* The child is single-threaded: fresh mutexes are the simplest unlock
 * (the registry made its own anew).  The caches of the threads that did
 * not come along go back to the zones (whose child handlers have run);
 * the registry forgets those threads after. */
void ip_tcache_fork_child(void)
{
    struct large_tcache *tc;
    for_each_tc(tc, pos)
    {
        pthread_mutex_init(&tc->lock, NULL);
        if (tc != tc_self) {
            kslab_thread_forget(pos, KSLAB_THREAD_IP);
            __tc_flush(tc);
            free_pages((unsigned long)tc, 0);
        }
    }
}
