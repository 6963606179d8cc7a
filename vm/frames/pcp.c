/*
 * vm/frames/pcp.c — the threads' page lists (the per-CPU page lists Linux
 * gained after 2.4, per thread here).
 *
 * Every slab grow and destroy is an alloc_pages()/free_pages() of a low
 * order, and with one mutex per zone two threads that grow and shrink
 * caches queue on it.  So a thread keeps, per zone, a short list of free
 * blocks of each order below PCP_ORDERS (0 … 3, up to 32 KiB: the orders
 * of every slab of objects up to 4 KiB and most above), takes from it
 * without the zone lock and moves blocks between it and the zone
 * PCP_BATCH_PAGES frames per lock hold.  Per thread, not per CPU: a user
 * thread cannot stay on a CPU, and a per-thread list needs no atomic
 * operation to be safe (its own lock is uncontended but for a drain).  Low
 * orders only: they are the slabs' sizes, they would make the list hold
 * too much memory if larger (the cap is PCP_HIGH_PAGES frames a list, 1
 * MiB a thread and zone), and a larger block is a large malloc block,
 * which interpose/ caches per thread already.  struct per_cpu_pages (one
 * page, from the zone) holds a thread's lists; alloc_pages() takes the
 * first block of a list and refills an empty list with a batch from the
 * zone; a free puts the block first on the list and gives the oldest batch
 * back when the list passes PCP_HIGH_PAGES frames.  A block on a list is
 * free and dirty: PG_pcp (PG_buddy clear, so it neither merges with a
 * neighbour nor is handed out by the zone), its order in page->order,
 * PG_clean kept; frames on the lists count as free and dirty
 * (vm_pcp_pages).  Every path that must see all free memory drains the
 * lists first: vm_release_free (malloc_trim), vm_drain_pages, an
 * allocation that finds the zones exhausted, the purge pass (the lists of
 * a thread that made no list call since the pass before, so an idle
 * thread's frames decay like the zones'), thread exit (the thread
 * registry's FRAMES level, lib/thread.c: the last level, so what the
 * layers above give back at exit passes through the lists first) and a
 * fork child (the threads that did not come along).  The lists of every
 * thread are found through the registry's slots.
 * Locking: each thread's lists have a lock of their own, taken by the
 * thread (never contended but by a drain from another thread); the
 * registry's FRAMES level lock guards the slots.  Order: purge_lock, the
 * FRAMES level lock, a thread's lock, then grow_lock and the zone locks.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <string.h>

#include "lib/assert.h"
#include "lib/thread.h"
#include "lib/valgrind_hooks.h"
#include "vm/frames/internal.h"
#include "vm/frames/page.h"

/* The threads' page lists hold orders below PCP_ORDERS (internal.h, up
 * to 32 KiB), moved to and from a zone PCP_BATCH_PAGES frames per lock
 * hold ... */
#define PCP_BATCH_PAGES 16UL
/* ... and at most PCP_HIGH_PAGES frames a list before a batch goes back. */
#define PCP_HIGH_PAGES 64UL

struct pcp_list {
    struct list_head list;
    unsigned long count; /* blocks */
};

struct per_cpu_pages {
    pthread_mutex_t lock;
    unsigned long frames; /* held, under lock (read relaxed by sums) */
    unsigned long ops;    /* list calls so far (the idle test) */
    unsigned long seen_ops;
    struct pcp_list lists[ZONE_NORMAL + 1][PCP_ORDERS];
};

/* Walks every thread's lists (the FRAMES level lock held). */
#define for_each_pcp(pcp, pos)                                                 \
    for (struct kslab_thread *pos = NULL;                                      \
         ((pcp) = kslab_thread_next(KSLAB_THREAD_FRAMES, &pos));)
/* A thread past its exit hook, one being set up, or one without memory
 * for lists: straight to the zones. */
static struct per_cpu_pages pcp_none;
static __thread struct per_cpu_pages *pcp_self
    __attribute__((tls_model("initial-exec")));

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
        vm_free_one_block(zone, vm_page_to_pfn(page), order, clean);
    }
    unsigned long dirty = zone->dirty_pages;
    pthread_mutex_unlock(&zone->lock);
    pcp_frames_add(pcp, -(long)n);
    return dirty;
}

/* Every list of pcp back to the zones; its lock held.  dirty (or NULL):
 * per zone, its dirty frames after the lists reached it (0: none did). */
static void __pcp_drain(struct per_cpu_pages *pcp, unsigned long *dirty)
{
    for (int z = ZONE_DMA; z <= ZONE_NORMAL; z++)
        for (unsigned int o = 0; o < PCP_ORDERS; o++)
            if (pcp->lists[z][o].count) {
                unsigned long d = pcp_give_back(pcp, z, o, ULONG_MAX);
                if (dirty)
                    dirty[z] = d;
            }
}

/* Drains every thread's lists, or (idle_only) those of the threads that
 * made no list call since the last look. */
void vm_pcp_drain_all(int idle_only)
{
    struct per_cpu_pages *pcp;
    kslab_thread_lock(KSLAB_THREAD_FRAMES);
    for_each_pcp(pcp, pos)
    {
        pthread_mutex_lock(&pcp->lock);
        if (!idle_only || pcp->ops == pcp->seen_ops)
            __pcp_drain(pcp, NULL);
        pcp->seen_ops = pcp->ops;
        pthread_mutex_unlock(&pcp->lock);
    }
    kslab_thread_unlock(KSLAB_THREAD_FRAMES);
}

unsigned long vm_drain_pages(void)
{
    if (!vm_lowmem.ready)
        return 0;
    unsigned long n = vm_pcp_pages();
    vm_pcp_drain_all(0);
    return n;
}

unsigned long vm_pcp_pages(void)
{
    unsigned long n = 0;
    struct per_cpu_pages *pcp;
    kslab_thread_lock(KSLAB_THREAD_FRAMES);
    for_each_pcp(pcp, pos) n += __atomic_load_n(&pcp->frames, __ATOMIC_RELAXED);
    kslab_thread_unlock(KSLAB_THREAD_FRAMES);
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
    vm_free_one_block(zone, vm_page_to_pfn(page), 0, 0);
    pthread_mutex_unlock(&zone->lock);
}

/* Thread exit (the registry's FRAMES level, the last): the lists go back
 * to the zones, with what the levels above gave back at this exit, and
 * the purge hears of it as after any free that reached a zone — here, in
 * the exiting thread, rather than at a later free that may come from
 * inside libc (a joiner freeing the dead thread's TLS under libc's stack
 * cache lock, where starting the purge thread would deadlock).  A thread
 * without lists frees straight to the zones after. */
static void pcp_exit(void *slot)
{
    struct per_cpu_pages *pcp = slot;
    unsigned long dirty[ZONE_NORMAL + 1] = {0};
    pcp_self = &pcp_none;
    if (!pcp)
        return;
    kslab_thread_detach(KSLAB_THREAD_FRAMES);
    pthread_mutex_lock(&pcp->lock);
    __pcp_drain(pcp, dirty);
    pthread_mutex_unlock(&pcp->lock);
    pcp_free_self(pcp);
    for (int z = ZONE_DMA; z <= ZONE_NORMAL; z++)
        if (dirty[z])
            vm_purge_after_free(&vm_zones[z], 0, dirty[z]);
}

static const struct kslab_thread_hook pcp_thread_hook = {pcp_exit};

/* The calling thread's lists, made on its first page call. */
static __cold struct per_cpu_pages *pcp_attach(void)
{
    /* the registry's first attach may allocate: no lists meanwhile */
    pcp_self = &pcp_none;
    struct page *page = vm_zone_alloc(&vm_zones[ZONE_NORMAL], 0, PB_SLAB);
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
    int r = kslab_thread_attach(KSLAB_THREAD_FRAMES, &pcp_thread_hook, pcp);
    if (r) {
        pcp_free_self(pcp);
        if (r < 0)
            return &pcp_none;
        /* the lists of a dead thread whose TLS block this one has */
        pcp = kslab_thread_slot(KSLAB_THREAD_FRAMES);
    }
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
struct page *vm_pcp_alloc(struct zone_struct *zone, unsigned int order)
{
    vm_purge_safe_point(); /* no frames lock held yet */
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
            struct page *p = vm_rmqueue(zone, order, PB_SLAB);
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
int vm_pcp_free(struct page *page, unsigned int order, unsigned long *dirty)
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

/* Validates every thread's lists; returns the frames on them (-EFAULT and
 * a line through say() for a broken invariant). */
#define PCP_UNLOCK                                                             \
    (pthread_mutex_unlock(&pcp->lock), kslab_thread_unlock(KSLAB_THREAD_FRAMES))

long vm_pcp_check(void (*say)(const char *fmt, ...))
{
    long total = 0;
    struct per_cpu_pages *pcp;
    struct list_head *q;
    kslab_thread_lock(KSLAB_THREAD_FRAMES);
    for_each_pcp(pcp, pos)
    {
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
                        VM_ZONE_BROKEN(
                            PCP_UNLOCK,
                            "zone %s: frame %lu on a thread's "
                            "order-%u list has order %u, flags 0x%lx",
                            zone->name, pfn, o, pg->order, page_flags(pg));
                    n++;
                }
                if (n != pcp->lists[z][o].count)
                    VM_ZONE_BROKEN(
                        PCP_UNLOCK,
                        "zone %s: a thread's order-%u list holds %lu "
                        "blocks, counts %lu",
                        zone->name, o, n, pcp->lists[z][o].count);
                frames += n << o;
            }
        }
        if (frames != pcp->frames)
            VM_ZONE_BROKEN(PCP_UNLOCK,
                           "a thread's page lists hold %lu frames, count %lu",
                           frames, pcp->frames);
        pthread_mutex_unlock(&pcp->lock);
        total += (long)frames;
    }
    kslab_thread_unlock(KSLAB_THREAD_FRAMES);
    return total;
}

/* ---- fork (the frames' hook, lowmem.c) ---- */

void vm_pcp_fork_prepare(void)
{
    struct per_cpu_pages *pcp;
    kslab_thread_lock(KSLAB_THREAD_FRAMES);
    for_each_pcp(pcp, pos) pthread_mutex_lock(&pcp->lock);
}

void vm_pcp_fork_parent(void)
{
    struct per_cpu_pages *pcp;
    for_each_pcp(pcp, pos) pthread_mutex_unlock(&pcp->lock);
    kslab_thread_unlock(KSLAB_THREAD_FRAMES);
}

/* The zones' locks are usable again (the registry made its own anew): the
 * lists of the threads that did not come along go back to the zones; their
 * pages too.  The registry forgets those threads after every level's child
 * handler ran. */
void vm_pcp_fork_child(void)
{
    struct per_cpu_pages *pcp;
    for_each_pcp(pcp, pos)
    {
        pthread_mutex_init(&pcp->lock, NULL);
        if (pcp == pcp_self)
            continue;
        __pcp_drain(pcp, NULL);
        kslab_thread_forget(pos, KSLAB_THREAD_FRAMES);
        pcp_free_self(pcp);
    }
}
