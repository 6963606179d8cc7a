/*
 * vmmode/heap.c — the malloc family's page-granular blocks in the
 * process's mm: the home of interpose/large.h's hook.
 *
 * What a 2.4 process's libc did with them: a block below the mmap
 * threshold (M_MMAP_THRESHOLD, 128 KiB here unless the program or
 * MALLOC_MMAP_THRESHOLD_ says otherwise: glibc's DEFAULT_MMAP_THRESHOLD_MIN)
 * is cut from the heap, the range the break has grown over (sys_brk →
 * do_brk: one vma that grows, "[heap]" in the maps); a bigger one, or one
 * aligned beyond a page, is an anonymous private do_mmap mapping given
 * back by do_munmap.  Every large block (interpose/large.h: above
 * LARGE_MIN_SIZE, 64 KiB) comes here in this mode, so none is a run of the
 * page layer's frames.  Their pages are demand-paged (ZERO_PAGE on a
 * read, do_anonymous_page on a write), aged, swapped out and read back by
 * the emulator.
 *
 * The heap: [heap_start, heap_start + heap_pages pages), with a bitmap of
 * the pages in live blocks (host memory of its own, one bit a page, for
 * HEAP_MAX_PAGES pages; no malloc here).  A block is the first run of
 * free pages from a roving hint; when none is long enough the break grows
 * (sys_brk), as long as it is still where the heap left it (a program that
 * moved the break itself with brk or sbrk keeps its range: the block is a
 * mapping instead).  A freed block's pages stay as they are, as in
 * glibc's heap (the next block there takes them without a fault; when
 * memory is short the emulator's reclaim swaps them out like any page);
 * they are marked dirty (heap_dirty), and a block that must be zero
 * clears what it takes of them.  Pages free for the decay time
 * (vm_purge_decay_ms, the frames' purge passes: heap_decay) are zapped
 * (zap_page_range, MADV_DONTNEED's work: frames and swap slots go back,
 * the next use reads zeros).  When the heap's free top reaches
 * HEAP_TRIM_PAGES the break comes down (sys_brk → do_munmap), as glibc's
 * M_TRIM_THRESHOLD.  The table of live blocks (address → length) is
 * interpose/huge.c's one table of huge blocks.
 *
 * Locking: vmm_lock guards the heap, the counters and every mapping
 * change (the call and the look at the free room are one step).
 */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "interpose/large.h"
#include "lib/options.h"
#include "vm/frames/internal.h"
#include "vm/frames/os.h"
#include "vmmode/vmmode.h"

/* Most pages the heap covers (1 GiB); beyond, blocks are mappings. */
#define HEAP_MAX_PAGES (1UL << 18)
/* The break grows by at least this many pages (M_TOP_PAD's 128 KiB) ... */
#define HEAP_GROW_PAGES 32UL
/* ... and comes down when this many free pages are at the top. */
#define HEAP_TRIM_PAGES 64UL

static unsigned long brk_threshold = 128UL << 10;
static unsigned long heap_start, heap_pages, heap_hint;
static unsigned long *heap_map; /* 1 = page in a live block */
/* 1 = free page that may hold data (not zapped since it was freed);
 * heap_old: those that were so at the last purge pass already. */
static unsigned long *heap_dirty, *heap_old;
static unsigned long dirty_pages, last_pass_ms;
static int heap_off; /* no bitmap: every block is a mapping */
/* Live blocks and bytes: in the heap, and mappings. */
static unsigned long heap_blocks, heap_bytes, map_blocks, map_bytes;

static int page_used(unsigned long i)
{
    return vmm_bit(heap_map, i);
}

static void mark(unsigned long from, unsigned long n, int used)
{
    vmm_set_bits(heap_map, from, n, used);
}

/* Pages [i, i + n) leave the dirty maps (taken, zapped or unmapped);
 * with zero, the dirty ones are cleared.  Returns nothing. */
static void undirty(unsigned long i, unsigned long n, int zero)
{
    for (unsigned long j = i; j < i + n; j++) {
        if (!vmm_bit(heap_dirty, j))
            continue;
        if (zero)
            memset(vmm_host(heap_start + (j << PAGE_SHIFT)), 0, PAGE_SIZE);
        dirty_pages--;
    }
    vmm_set_bits(heap_dirty, i, n, 0);
    vmm_set_bits(heap_old, i, n, 0);
}

/* Free pages from i on, at most max. */
static unsigned long free_run(unsigned long i, unsigned long max)
{
    unsigned long n = 0;
    while (n < max && i + n < heap_pages && !page_used(i + n))
        n++;
    return n;
}

/* First run of n free pages in the heap from `from`, or ULONG_MAX. */
static unsigned long find_run(unsigned long from, unsigned long n)
{
    for (unsigned long i = from; i + n <= heap_pages;) {
        if (!(i % BITS) && heap_map[i / BITS] == ~0UL) {
            i += BITS; /* a word of used pages */
            continue;
        }
        if (page_used(i)) {
            i++;
            continue;
        }
        unsigned long got = free_run(i, n);
        if (got == n)
            return i;
        i += got;
    }
    return ULONG_MAX;
}

/* The heap's first use: its bitmap, and its start at the break. */
static int heap_setup(void)
{
    if (heap_map)
        return 0;
    if (heap_off)
        return -1;
    unsigned long *m = vm_os_alloc(3 * (HEAP_MAX_PAGES / 8), 0, 0);
    if (!m) {
        heap_off = 1;
        return -1;
    }
    heap_dirty = m + HEAP_MAX_PAGES / BITS;
    heap_old = heap_dirty + HEAP_MAX_PAGES / BITS;
    heap_map = m;
    heap_start = sys_brk(vmm_mm, 0);
    return 0;
}

/* Grows the heap so that pages [0, want) are in it: 0, or -1 when the
 * break cannot follow (moved by the program, or refused). */
static int heap_grow(unsigned long want)
{
    unsigned long end = heap_start + (heap_pages << PAGE_SHIFT);
    if (want > HEAP_MAX_PAGES || sys_brk(vmm_mm, 0) != end)
        return -1;
    if (want < heap_pages + HEAP_GROW_PAGES)
        want = heap_pages + HEAP_GROW_PAGES;
    if (want > HEAP_MAX_PAGES)
        want = HEAP_MAX_PAGES;
    unsigned long to = heap_start + (want << PAGE_SHIFT);
    if (sys_brk(vmm_mm, to) != to)
        return -1;
    heap_pages = want;
    return 0;
}

/* Brings the break down over the free top when it is big enough. */
static void heap_trim(void)
{
    unsigned long top = heap_pages;
    while (top && !page_used(top - 1))
        top--;
    if (heap_pages - top < HEAP_TRIM_PAGES)
        return;
    unsigned long end = heap_start + (heap_pages << PAGE_SHIFT);
    if (sys_brk(vmm_mm, 0) != end)
        return; /* the program's own break is above */
    unsigned long to = heap_start + (top << PAGE_SHIFT);
    if (sys_brk(vmm_mm, to) != to)
        return;
    undirty(top, heap_pages - top, 0); /* unmapped: zero when regrown */
    heap_pages = top;
    if (heap_hint > top)
        heap_hint = top;
}

/* n pages of the heap (zeroed when zero): the user address, or 0.
 * vmm_lock held. */
static unsigned long heap_take(unsigned long n, int zero)
{
    if (heap_setup() != 0)
        return 0;
    unsigned long i = find_run(heap_hint, n);
    if (i == ULONG_MAX)
        i = find_run(0, n);
    if (i == ULONG_MAX) {
        /* a free top joins the new pages */
        unsigned long top = heap_pages;
        while (top && !page_used(top - 1))
            top--;
        if (heap_grow(top + n) != 0)
            return 0;
        i = top;
    }
    mark(i, n, 1);
    undirty(i, n, zero);
    heap_hint = i + n;
    return heap_start + (i << PAGE_SHIFT);
}

/* Pages [i, i + n) of the heap are free again: dirty, kept. */
static void heap_put(unsigned long i, unsigned long n)
{
    mark(i, n, 0);
    vmm_set_bits(heap_dirty, i, n, 1);
    dirty_pages += n;
    if (i < heap_hint)
        heap_hint = i;
}

/* The frames' purge pass (vm_purge_register; no kslab lock held): every
 * run of pages that was free and dirty at the last pass, at least decay
 * ms ago, and still is, is zapped.  Returns the dirty pages left. */
static unsigned long heap_decay(unsigned long now, unsigned long decay)
{
    pthread_mutex_lock(&vmm_lock);
    if (now && heap_map && now - last_pass_ms >= decay) {
        for (unsigned long i = 0; i < heap_pages;) {
            unsigned long n = 0;
            while (i + n < heap_pages && vmm_bit(heap_old, i + n) &&
                   vmm_bit(heap_dirty, i + n))
                n++;
            if (!n) {
                i++;
                continue;
            }
            unsigned long a = heap_start + (i << PAGE_SHIFT);
            vmm_dontneed(a, a + (n << PAGE_SHIFT));
            undirty(i, n, 0);
            i += n;
        }
        memcpy(heap_old, heap_dirty, (heap_pages + BITS - 1) / BITS * 8);
        last_pass_ms = now;
    }
    unsigned long left = dirty_pages;
    pthread_mutex_unlock(&vmm_lock);
    return left;
}

static int in_heap(unsigned long a)
{
    return heap_map && a >= heap_start &&
           a < heap_start + (heap_pages << PAGE_SHIFT);
}

/* A do_mmap mapping of len bytes aligned to align: the address or 0. */
static unsigned long map_take(unsigned long len, size_t align)
{
    unsigned long extra = align > PAGE_SIZE ? align - PAGE_SIZE : 0;
    unsigned long a =
        do_mmap(vmm_mm, -1, 0, len + extra, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS, 0);
    if (IS_ERR_VALUE(a))
        return 0;
    if (extra) {
        uintptr_t h = (uintptr_t)vmm_host(a);
        unsigned long lead =
            (unsigned long)(((h + align - 1) & ~(uintptr_t)(align - 1)) - h);
        if (lead)
            do_munmap(vmm_mm, a, lead);
        if (extra - lead)
            do_munmap(vmm_mm, a + lead + len, extra - lead);
        a += lead;
    }
    return a;
}

static void *heap_alloc(size_t len, size_t align, int zero)
{
    if (vmm_ready() != 0 || len > TASK_SIZE)
        return NULL;
    vmm_stats_poke();
    /* an allocation, under none of glibc's thread locks: where a
     * background purge that a free asked for may start (purge.c); this
     * mode's allocations seldom take frames from the zones, the usual
     * place */
    vm_purge_safe_point();
    len = PAGE_ALIGN(len);
    unsigned long a = 0;
    pthread_mutex_lock(&vmm_lock);
    if (len < brk_threshold && align <= PAGE_SIZE)
        a = heap_take(len >> PAGE_SHIFT, zero);
    if (a) {
        heap_blocks++;
        heap_bytes += len;
    } else if ((a = map_take(len, align)) != 0) {
        map_blocks++;
        map_bytes += len;
    }
    pthread_mutex_unlock(&vmm_lock);
    return a ? vmm_host(a) : NULL;
}

static void heap_free(void *p, size_t len)
{
    unsigned long a = vmm_user(p);
    pthread_mutex_lock(&vmm_lock);
    int kick = 0;
    if (in_heap(a)) {
        heap_put((a - heap_start) >> PAGE_SHIFT, len >> PAGE_SHIFT);
        heap_trim();
        heap_blocks--;
        heap_bytes -= len;
        kick = 1;
    } else {
        do_munmap(vmm_mm, a, len);
        map_blocks--;
        map_bytes -= len;
    }
    pthread_mutex_unlock(&vmm_lock);
    if (kick)
        vm_purge_kick(); /* the purge passes zap what stays free */
}

static int heap_resize(void *p, size_t old, size_t len)
{
    int r = -1;
    len = PAGE_ALIGN(len);
    if (!len)
        return -1;
    unsigned long a = vmm_user(p);
    pthread_mutex_lock(&vmm_lock);
    int heap = in_heap(a);
    if (len <= old) {
        if (len < old) {
            if (heap)
                heap_put((a - heap_start + len) >> PAGE_SHIFT,
                         (old - len) >> PAGE_SHIFT);
            else if (do_munmap(vmm_mm, a + len, old - len) != 0)
                goto out;
        }
        r = 0;
    } else if (heap) {
        unsigned long i = (a - heap_start + old) >> PAGE_SHIFT;
        unsigned long n = (len - old) >> PAGE_SHIFT;
        unsigned long got = free_run(i, n);
        if (got < n && i + got == heap_pages && heap_grow(i + n) == 0)
            got = n; /* the free top, and the break grown */
        if (got == n) {
            mark(i, n, 1);
            undirty(i, n, 0); /* realloc's new bytes need not be zero */
            r = 0;
        }
    } else if (vmm_room(a + old, len - old)) {
        unsigned long m =
            do_mmap(vmm_mm, -1, a + old, len - old, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, 0);
        r = IS_ERR_VALUE(m) ? -1 : 0;
    }
    if (r == 0 && heap)
        heap_bytes += len - old;
    else if (r == 0)
        map_bytes += len - old;
out:
    pthread_mutex_unlock(&vmm_lock);
    return r;
}

static const struct ip_huge_hook heap_hook = {
    .alloc = heap_alloc,
    .free = heap_free,
    .resize = heap_resize,
};

/* Every large block comes to the hook (interpose/large.c sends those of
 * ip_large_mmap_threshold and more to huge.c, which asks the hook first);
 * the threshold that was in force (mallopt's default here is glibc's
 * 128 KiB) divides the heap from the mappings. */
void vmm_heap_init(void)
{
    if (kslab_opt.glibc_set & (1u << KSLAB_GLIBC_MMAP_THRESHOLD))
        brk_threshold =
            __atomic_load_n(&ip_large_mmap_threshold, __ATOMIC_RELAXED);
    __atomic_store_n(&ip_large_mmap_threshold, LARGE_MIN_SIZE,
                     __ATOMIC_RELAXED);
    vm_purge_register(heap_decay);
    ip_huge_set_hook(&heap_hook);
}

void vmm_heap_stats(struct vmm_heap_stats *st)
{
    pthread_mutex_lock(&vmm_lock);
    st->heap_blocks = heap_blocks;
    st->heap_bytes = heap_bytes;
    st->heap_size = heap_pages << PAGE_SHIFT;
    st->map_blocks = map_blocks;
    st->map_bytes = map_bytes;
    st->heap_dirty = dirty_pages << PAGE_SHIFT;
    pthread_mutex_unlock(&vmm_lock);
}

/* The child of a host fork has the parent's bitmap and counters (a
 * private copy of host memory) and a copy of the mm: nothing to change. */
void vmm_heap_fork_child(void) {}
