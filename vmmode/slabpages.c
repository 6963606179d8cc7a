/*
 * vmmode/slabpages.c — the malloc family's small blocks in the process's
 * mm: the page source of the second set of malloc caches.
 *
 * Every block of 64 KiB and less is a slab object.  Unless KSLAB_VM_SMALL=0,
 * at start-up (vmm_slab_init) the malloc path gets a second set of malloc
 * caches, mm-size-32 … mm-size-131072 beside the kmalloc and intermediate ones
 * (slab_malloc_set_page_source: the size → id tables are rewritten, so
 * malloc's fast path is the same instructions), whose slabs come from
 * here, a hook of the cache (struct slab_page_source) rather than a gfp
 * bit: only kmem_cache_grow and kmem_slab_destroy ask, the frames layer
 * below needs to know nothing of it, and the emulator's own kmalloc
 * caches keep the zones.  The emulator's structures (mms, vmas, page
 * tables, swap cache, the slab's own arrays and magazines) are host
 * memory; that is the invariant that keeps the fault path from faulting
 * on itself — nothing the SIGSEGV handler or the userfaultfd thread
 * touches is in the mm.  These caches keep their slab management
 * (slab_t and bufctls) off-slab, in host memory, whatever the object
 * size: the slab's own code then touches no page of the mm, only malloc
 * and free touch an object (its key word), so no pass of the slab (decay,
 * drain, reclaim, a fork child's) faults there under a lock or in a thread
 * that blocks SIGSEGV.  kslab's own threads are made with malloc pointed
 * at the host caches (vm_purge_create_hook, slab_malloc_host_only):
 * pthread_create allocates, perhaps in the fault-handler thread.
 *
 * The pages: chunks of 4 MiB of the mm (CHUNK_PAGES, one granule of the
 * frames' section table), each an anonymous private do_mmap whose window
 * address starts a granule, entered in the section table as a section of
 * the second kind (vm_section_add_foreign): its struct pages are host
 * memory of their own, so virt_to_page, and with it free() and
 * malloc_usable_size(), finds the cache of an object from its address as
 * for any slab.  In a chunk a slab of 2^order pages is a naturally
 * aligned run, first fit from a bitmap (used).  The pages are the
 * emulator's: demand-paged by do_anonymous_page, aged, swapped out and
 * read back like any page of the mm.  A slab given back leaves its pages
 * as they are (dirty: the next slab there takes them without a fault);
 * pages free for the decay time (the frames' purge passes, as heap.c's)
 * are zapped — zap_page_range, MADV_DONTNEED's work: frames and swap
 * slots go back, never the host's madvise.  Chunks are never unmapped.
 * When no chunk can be had (the window full, the section table full,
 * a fork under way) a slab comes from the zones, host memory, as before:
 * put() tells the two apart by address.
 *
 * Locking: sp_lock guards the chunks' bitmaps and the counters; it is a
 * leaf but for vmm_lock, which is never taken under it (a chunk is mapped
 * and a run zapped with vmm_lock alone; a run being zapped is marked used
 * so that no slab takes it meanwhile).  get and put run with no cache
 * lock held (put perhaps under cache_chain_sem), so sp_lock comes after
 * the slab's locks in kslab's order: its fork hook is the level
 * KSLAB_FORK_SLABMM (lib/fork.c).  From a fork's prepare to the end of
 * vmmode's own child handler (vmm_forking) no chunk is added: vmm_lock is
 * held then, and the child's window is not its own until the emulator's
 * child handler ran.
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include <kslab/vm.h>

#include "lib/fork.h"
#include "lib/options.h"
#include "lib/report.h"
#include "slab/kmalloc.h"
#include "vm/frames/internal.h"
#include "vm/frames/os.h"
#include "vm/frames/page.h"
#include "vmmode/vmmode.h"

#define CHUNK_SHIFT VM_SECT_GRAN_SHIFT
#define CHUNK_BYTES (1UL << CHUNK_SHIFT)
#define CHUNK_PAGES (CHUNK_BYTES >> PAGE_SHIFT)
#define CHUNK_WORDS (CHUNK_PAGES / BITS)
/* Granules the window can touch: its chunks, by granule from the
 * window's first. */
#define MAX_CHUNKS ((TASK_SIZE >> CHUNK_SHIFT) + 1)
/* Freed pages kept that make a slab's growth ask for the purge (8 MiB,
 * the frames' PURGE_THREAD_PAGES). */
#define SP_KICK_PAGES 2048UL

/* A chunk: pages [host, host + CHUNK_BYTES), user address start.
 * used: pages in a slab, or being zapped; dirty: free pages that may
 * hold data; old: those that were dirty at the last pass already.
 * nfree counts the pages not used. */
struct chunk {
    unsigned long start;
    char *host;
    struct page *map;
    unsigned long nfree;
    unsigned long used[CHUNK_WORDS];
    unsigned long dirty[CHUNK_WORDS];
    unsigned long old[CHUNK_WORDS];
};

static pthread_mutex_t sp_lock = PTHREAD_MUTEX_INITIALIZER;
static struct chunk *by_granule[MAX_CHUNKS]; /* sp_lock; set once */
static struct chunk *chunks[MAX_CHUNKS];     /* the first nr_chunks */
static unsigned int nr_chunks, hint;
static unsigned long slab_pages, dirty_pages, last_pass_ms;
static _Atomic unsigned long host_pages; /* slabs from the zones instead */
_Atomic int vmm_forking;

/* The chunk holding addr, or NULL.  sp_lock held. */
static struct chunk *chunk_of(const void *addr)
{
    if (!vmm_inside(addr, 1))
        return NULL;
    uintptr_t g =
        ((uintptr_t)addr >> CHUNK_SHIFT) -
        (atomic_load_explicit(&vmm_base, memory_order_relaxed) >> CHUNK_SHIFT);
    return g < MAX_CHUNKS ? by_granule[g] : NULL;
}

/* n bits from bit j on (n <= BITS, j + n <= BITS). */
static unsigned long bits_mask(unsigned long n, unsigned long j)
{
    return (n == BITS ? ~0UL : (1UL << n) - 1) << j;
}

/* Takes n pages (a power of two <= BITS), naturally aligned, from c: the
 * first page's index, or -1.  sp_lock held. */
static long chunk_take(struct chunk *c, unsigned long n)
{
    if (c->nfree < n)
        return -1;
    for (unsigned long w = 0; w < CHUNK_WORDS; w++) {
        if (c->used[w] == ~0UL)
            continue;
        for (unsigned long j = 0; j < BITS; j += n) {
            unsigned long m = bits_mask(n, j);
            if (c->used[w] & m)
                continue;
            c->used[w] |= m;
            dirty_pages -= (unsigned long)__builtin_popcountl(c->dirty[w] & m);
            c->dirty[w] &= ~m;
            c->old[w] &= ~m;
            c->nfree -= n;
            return (long)(w * BITS + j);
        }
    }
    return -1;
}

/* 2^order pages from the chunks, or NULL.  sp_lock held. */
static void *take(unsigned int order)
{
    unsigned long n = 1UL << order;
    for (unsigned int k = 0; k < nr_chunks; k++) {
        unsigned int at = (hint + k) % nr_chunks;
        long i = chunk_take(chunks[at], n);
        if (i >= 0) {
            hint = at;
            slab_pages += n;
            return chunks[at]->host + ((unsigned long)i << PAGE_SHIFT);
        }
    }
    return NULL;
}

/* A chunk more: mapped in the mm (vmm_lock), entered in the section
 * table, then among the chunks (sp_lock).  0 or -1.  No lock held. */
static int chunk_add(void)
{
    if (atomic_load(&vmm_forking))
        return -1;
    struct chunk *c = vm_os_alloc(sizeof *c, 0, 0);
    struct page *map = vm_os_alloc(CHUNK_PAGES * sizeof(struct page), 0, 0);
    if (!c || !map)
        goto fail;
    pthread_mutex_lock(&vmm_lock);
    /* a run one granule short of two holds a whole granule of the window */
    unsigned long len = 2 * CHUNK_BYTES - PAGE_SIZE;
    unsigned long a = do_mmap(vmm_mm, -1, 0, len, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, 0);
    if (IS_ERR_VALUE(a)) {
        pthread_mutex_unlock(&vmm_lock);
        goto fail;
    }
    uintptr_t h = (uintptr_t)vmm_host(a);
    unsigned long lead =
        (unsigned long)(((h + CHUNK_BYTES - 1) & ~(CHUNK_BYTES - 1)) - h);
    if (lead)
        do_munmap(vmm_mm, a, lead);
    if (len - lead - CHUNK_BYTES)
        do_munmap(vmm_mm, a + lead + CHUNK_BYTES, len - lead - CHUNK_BYTES);
    a += lead;
    c->start = a;
    c->host = vmm_host(a);
    c->map = map;
    c->nfree = CHUNK_PAGES;
    if (vm_section_add_foreign(c->host, CHUNK_PAGES, map) != 0) {
        do_munmap(vmm_mm, a, CHUNK_BYTES);
        pthread_mutex_unlock(&vmm_lock);
        goto fail;
    }
    pthread_mutex_unlock(&vmm_lock);
    pthread_mutex_lock(&sp_lock);
    by_granule[((uintptr_t)c->host >> CHUNK_SHIFT) -
               (atomic_load(&vmm_base) >> CHUNK_SHIFT)] = c;
    chunks[nr_chunks++] = c;
    pthread_mutex_unlock(&sp_lock);
    return 0;
fail:
    if (c)
        vm_os_free(c, sizeof *c);
    if (map)
        vm_os_free(map, CHUNK_PAGES * sizeof(struct page));
    return -1;
}

/* slab_page_source.get: a slab's pages in the mm, else from the zones. */
static void *sp_get(unsigned int order)
{
    /* an allocation, under none of glibc's thread locks, no kslab lock
     * held: where the background purge may start (purge.c), and be
     * asked for when freed slab pages wait for the decay (sp_put, under
     * the chain lock perhaps, cannot ask) */
    if (__atomic_load_n(&dirty_pages, __ATOMIC_RELAXED) >= SP_KICK_PAGES)
        vm_purge_kick();
    vm_purge_safe_point();
    for (int tries = 0; tries < 2; tries++) {
        pthread_mutex_lock(&sp_lock);
        void *p = take(order);
        pthread_mutex_unlock(&sp_lock);
        if (p)
            return p;
        if (tries || chunk_add() != 0)
            break;
    }
    void *p = (void *)__get_free_pages(GFP_KERNEL, order);
    if (p)
        atomic_fetch_add(&host_pages, 1UL << order);
    return p;
}

/* slab_page_source.put: pages of a slab destroyed; kept dirty for the
 * decay when they are the mm's. */
static void sp_put(void *addr, unsigned int order)
{
    unsigned long n = 1UL << order;
    pthread_mutex_lock(&sp_lock);
    struct chunk *c = chunk_of(addr);
    if (!c) {
        pthread_mutex_unlock(&sp_lock);
        atomic_fetch_sub(&host_pages, n);
        free_pages((unsigned long)addr, order);
        return;
    }
    unsigned long i = (unsigned long)((char *)addr - c->host) >> PAGE_SHIFT;
    unsigned long m = bits_mask(n, i % BITS);
    if ((c->used[i / BITS] & m) != m)
        kslab_die("kmem_freepages(): pages %p of the mm are not in a slab",
                  addr);
    c->used[i / BITS] &= ~m;
    c->dirty[i / BITS] |= m;
    c->nfree += n;
    slab_pages -= n;
    dirty_pages += n;
    pthread_mutex_unlock(&sp_lock);
}

static const struct slab_page_source sp_source = {sp_get, sp_put};

/* The next run of c from *i on that was free and dirty at the last pass
 * and still is: taken out (marked used) for the zap; its length, 0 when
 * there is none.  sp_lock held. */
static unsigned long next_stale_run(struct chunk *c, unsigned long *i)
{
    for (unsigned long j = *i; j < CHUNK_PAGES; j++) {
        if (!vmm_bit(c->old, j) || !vmm_bit(c->dirty, j) || vmm_bit(c->used, j))
            continue;
        unsigned long n = 0;
        while (j + n < CHUNK_PAGES && vmm_bit(c->old, j + n) &&
               vmm_bit(c->dirty, j + n) && !vmm_bit(c->used, j + n))
            n++;
        vmm_set_bits(c->used, j, n, 1);
        vmm_set_bits(c->dirty, j, n, 0);
        vmm_set_bits(c->old, j, n, 0);
        c->nfree -= n;
        dirty_pages -= n;
        *i = j;
        return n;
    }
    return 0;
}

/* The frames' purge pass (vm_purge_register; no kslab lock held): the
 * pages free and dirty since the pass before, at least decay ms ago,
 * are zapped.  Returns the dirty pages left (now 0: only counts). */
static unsigned long sp_decay(unsigned long now, unsigned long decay)
{
    pthread_mutex_lock(&sp_lock);
    unsigned int nr = nr_chunks;
    int due = now && now - last_pass_ms >= decay;
    if (due)
        last_pass_ms = now;
    pthread_mutex_unlock(&sp_lock);
    for (unsigned int k = 0; due && k < nr; k++) {
        struct chunk *c = chunks[k];
        unsigned long i = 0, n;
        for (;;) {
            pthread_mutex_lock(&sp_lock);
            n = next_stale_run(c, &i);
            pthread_mutex_unlock(&sp_lock);
            if (!n)
                break;
            unsigned long a = c->start + (i << PAGE_SHIFT);
            pthread_mutex_lock(&vmm_lock);
            vmm_dontneed(a, a + (n << PAGE_SHIFT));
            pthread_mutex_unlock(&vmm_lock);
            pthread_mutex_lock(&sp_lock);
            vmm_set_bits(c->used, i, n, 0); /* free again, clean */
            c->nfree += n;
            pthread_mutex_unlock(&sp_lock);
            i += n;
        }
        pthread_mutex_lock(&sp_lock);
        memcpy(c->old, c->dirty, sizeof c->old);
        pthread_mutex_unlock(&sp_lock);
    }
    pthread_mutex_lock(&sp_lock);
    unsigned long left = dirty_pages;
    pthread_mutex_unlock(&sp_lock);
    return left;
}

void vmm_slab_stats(struct vmm_slab_stats *st)
{
    pthread_mutex_lock(&sp_lock);
    st->chunks = nr_chunks;
    st->slab_bytes = slab_pages << PAGE_SHIFT;
    st->dirty_bytes = dirty_pages << PAGE_SHIFT;
    pthread_mutex_unlock(&sp_lock);
    st->host_bytes = atomic_load(&host_pages) << PAGE_SHIFT;
}

/* Level KSLAB_FORK_SLABMM: after the slab's locks, before the frames'. */
static void sp_fork_prepare(void)
{
    pthread_mutex_lock(&sp_lock);
}

static void sp_fork_parent(void)
{
    pthread_mutex_unlock(&sp_lock);
}

static void sp_fork_child(void)
{
    pthread_mutex_init(&sp_lock, NULL);
}

static const struct kslab_fork_hook sp_fork_hook = {
    sp_fork_prepare, sp_fork_parent, sp_fork_child};

/* Start-up (vmm_setup, the mm made): the malloc path's small blocks move
 * into the mm.  Under KSLAB_DEBUG they stay host memory, said once. */
void vmm_slab_init(void)
{
    if (kslab_opt.vm_small < 0)
        return; /* KSLAB_VM_SMALL=0 keeps them host memory */
    if (kslab_opt.debug || kslab_opt.dbg) {
        kslab_warn("libkslab-vm.so: KSLAB_DEBUG is set: blocks of 64 KiB "
                   "and less stay host memory, not in the mm");
        return;
    }
    kslab_fork_register(KSLAB_FORK_SLABMM, &sp_fork_hook);
    vm_purge_register(sp_decay);
    vm_purge_create_hook = slab_malloc_host_only;
    int r = slab_malloc_set_page_source(&sp_source);
    if (r)
        kslab_warn("libkslab-vm.so: the malloc caches in the mm cannot be "
                   "made (error %d): small blocks stay host memory",
                   r);
}
