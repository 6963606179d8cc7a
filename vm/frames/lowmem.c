/*
 * vm/frames/lowmem.c — low memory: the direct map and the growth of the
 * zones.
 *
 * Low memory is the allocator's direct map (page.h): private anonymous
 * host memory reserved PROT_NONE at start and committed brk-style,
 * ZONE_GROW_PAGES at a time, as the zones need frames (vm_zone_grow(): the
 * new frames are initialised and freed, clean, onto the buddy lists of
 * buddy.c).  Without an address-space limit it is one reservation with
 * its mem_map in a second; under one (RLIMIT_AS) it grows by sections,
 * each its own reservation found from an address through a two-level
 * table, and a section whose frames are all free is given back and
 * reserved again when the zone next grows into it.  ZONE_DMA is the first
 * DMA_PAGES frames (or a quarter of a smaller first section), ZONE_NORMAL
 * the rest.  Start-up (level KSLAB_INIT_FRAMES) and the frames' fork hook
 * live here too: the hook takes every lock of the layer in its order
 * (internal.h).  Locking: growing takes grow_lock, then a zone lock to
 * read or set grown_pfn; the commit (mprotect) runs under grow_lock only,
 * which a thread needs only to grow a zone itself, and a thread that
 * waited for it does not grow again when the zone was grown meanwhile.
 * committed_pages (and fast_pages) are published with release stores
 * after the new mem_map entries are initialised, so lock-free readers
 * (virt_to_page) never see an uninitialised struct page.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "lib/assert.h"
#include "lib/fork.h"
#include "lib/init.h"
#include "lib/options.h"
#include "vm/frames/highmem.h"
#include "vm/frames/internal.h"
#include "vm/frames/os.h"
#include "vm/frames/page.h"

/* Default size of the direct-map reservation: 64 GiB of address space. */
#define LOWMEM_DEFAULT_BYTES (64UL << 30)
/* Smallest reservation we accept. */
#define LOWMEM_MIN_BYTES (32UL << 20)
/* The section table (page.h): sections start on a boundary of its
 * granule, a multiple of the top-order block. */
#define SECT_GRAN_SHIFT VM_SECT_GRAN_SHIFT
#define SECT_VA_BITS VM_SECT_VA_BITS
#define SECT_L2_BITS VM_SECT_L2_BITS
struct vm_lowmem vm_lowmem;
struct vm_section vm_sections[VM_MAX_SECTIONS];
static pthread_mutex_t grow_lock = PTHREAD_MUTEX_INITIALIZER;
/* ---- the direct map ----
 *
 * Without an address-space limit: one reservation of the whole direct map
 * (lowmem_budget()) and one of its mem_map, as in Linux 2.4 on a machine
 * with one memory node.  Under a limit (RLIMIT_AS at start, or set later:
 * lowmem_extend()): sections of VM_SECTION_PAGES frames, each one
 * reservation with its struct pages after its frames, reserved when a zone
 * grows into it; growth fails (ENOMEM) when the host refuses the next
 * section, which is how the limit left at that moment is honoured.
 * A section other than the first whose grown frames are all free is given
 * back (unmapped, vm_lowmem_release_sections()): by the purge pass once its
 * frames have been free for the decay time, and at once when the address
 * space is wanted (vm_release_sections(): a mapping the limit refused).
 * Its slot keeps its frame numbers, with base and map NULL, and is
 * reserved again (anywhere) before the zone grows past its end
 * (lowmem_readd_section()).  vm_lowmem_sectioned, the section count and
 * the table are written under grow_lock; readers look sections up without
 * a lock (the table and nr_sections are published with release stores
 * after the section is written).
 */

int vm_lowmem_sectioned;              /* internal.h */
static unsigned long lowmem_capacity; /* most frames low memory may have */
uint16_t *vm_sect_l1[VM_SECT_L1_SIZE];

/* Bytes of a section's mapping: its frames, then its struct pages. */
static size_t sect_bytes(unsigned long pages)
{
    return (pages << PAGE_SHIFT) + PAGE_ALIGN(pages * sizeof(struct page));
}

/* Enters section idx in the table: every granule its mapping touches.
 * The leaves are made first, so a failure (-ENOMEM) enters nothing.
 * grow_lock held. */
static int sect_publish(unsigned int idx)
{
    const struct vm_section *s = &vm_sections[idx];
    uintptr_t g0 = (uintptr_t)s->base >> SECT_GRAN_SHIFT;
    uintptr_t g1 =
        ((uintptr_t)s->base + sect_bytes(s->nr_pages) - 1) >> SECT_GRAN_SHIFT;
    if (((uintptr_t)s->base + sect_bytes(s->nr_pages) - 1) >> SECT_VA_BITS)
        return -ENOMEM; /* beyond the table (a 57-bit address space) */
    for (uintptr_t g = g0; g <= g1; g++) {
        if (vm_sect_l1[g >> SECT_L2_BITS])
            continue;
        uint16_t *leaf =
            vm_os_alloc(sizeof(uint16_t) << SECT_L2_BITS, PAGE_SIZE, 0);
        if (!leaf)
            return -ENOMEM;
        __atomic_store_n(&vm_sect_l1[g >> SECT_L2_BITS], leaf,
                         __ATOMIC_RELEASE);
    }
    for (uintptr_t g = g0; g <= g1; g++)
        __atomic_store_n(
            &vm_sect_l1[g >> SECT_L2_BITS][g & ((1UL << SECT_L2_BITS) - 1)],
            (uint16_t)idx, __ATOMIC_RELEASE);
    return 0;
}

/* Takes section idx out of the table (its mapping is about to go): a
 * lookup of an address there finds no section from now on.  A granule
 * belongs to one section only (sections start on a granule boundary).
 * grow_lock held. */
static void sect_unpublish(unsigned int idx)
{
    const struct vm_section *s = &vm_sections[idx];
    uintptr_t g0 = (uintptr_t)s->base >> SECT_GRAN_SHIFT;
    uintptr_t g1 =
        ((uintptr_t)s->base + sect_bytes(s->nr_pages) - 1) >> SECT_GRAN_SHIFT;
    for (uintptr_t g = g0; g <= g1; g++)
        __atomic_store_n(
            &vm_sect_l1[g >> SECT_L2_BITS][g & ((1UL << SECT_L2_BITS) - 1)],
            (uint16_t)0, __ATOMIC_RELEASE);
}

/* Sections of the second kind (page.h): base, map and nr_pages; their
 * start_pfn is unused (they have no frame numbers).  Written under
 * grow_lock before their entries are published, never changed after. */
static struct vm_section vm_foreign_sections[VM_MAX_FOREIGN];
static unsigned int nr_foreign;

int vm_section_add_foreign(void *base, unsigned long nr_pages, struct page *map)
{
    uintptr_t b = (uintptr_t)base;
    size_t len = nr_pages << PAGE_SHIFT;
    if (!nr_pages || (b & ((1UL << SECT_GRAN_SHIFT) - 1)) ||
        ((b + len - 1) >> SECT_VA_BITS))
        return -EINVAL;
    uintptr_t g0 = b >> SECT_GRAN_SHIFT, g1 = (b + len - 1) >> SECT_GRAN_SHIFT;
    int err = -ENOMEM;
    pthread_mutex_lock(&grow_lock);
    unsigned int idx = nr_foreign;
    if (idx >= VM_MAX_FOREIGN)
        goto out;
    for (uintptr_t g = g0; g <= g1; g++) {
        if (vm_sect_lookup(g << SECT_GRAN_SHIFT)) {
            err = -EINVAL;
            goto out;
        }
        if (vm_sect_l1[g >> SECT_L2_BITS])
            continue;
        uint16_t *leaf =
            vm_os_alloc(sizeof(uint16_t) << SECT_L2_BITS, PAGE_SIZE, 0);
        if (!leaf)
            goto out;
        __atomic_store_n(&vm_sect_l1[g >> SECT_L2_BITS], leaf,
                         __ATOMIC_RELEASE);
    }
    struct vm_section *s = &vm_foreign_sections[idx];
    s->base = base;
    s->map = map;
    s->nr_pages = nr_pages;
    nr_foreign = idx + 1;
    for (uintptr_t g = g0; g <= g1; g++)
        __atomic_store_n(
            &vm_sect_l1[g >> SECT_L2_BITS][g & ((1UL << SECT_L2_BITS) - 1)],
            (uint16_t)(VM_SECT_FOREIGN | idx), __ATOMIC_RELEASE);
    err = 0;
out:
    pthread_mutex_unlock(&grow_lock);
    return err;
}

/* The section whose struct pages hold page, or NULL (a foreign section's
 * struct pages are not in the table: NULL). */
static const struct vm_section *page_section(const struct page *page)
{
    if (vm_page_in_first(page))
        return &vm_sections[0];
    unsigned int idx = vm_sect_lookup((uintptr_t)page);
    if (!idx || (idx & VM_SECT_FOREIGN))
        return NULL;
    const struct vm_section *s = &vm_sections[idx];
    uintptr_t off = (uintptr_t)page - (uintptr_t)s->map;
    if (off >= s->nr_pages * sizeof(struct page))
        return NULL;
    return s;
}

struct page *vm_virt_to_page_other(const void *addr)
{
    unsigned int idx = vm_sect_lookup((uintptr_t)addr);
    if (!idx)
        return NULL;
    if (idx & VM_SECT_FOREIGN) {
        const struct vm_section *f =
            &vm_foreign_sections[idx & ~VM_SECT_FOREIGN];
        unsigned long i = ((uintptr_t)addr - (uintptr_t)f->base) >> PAGE_SHIFT;
        return i < f->nr_pages ? &f->map[i] : NULL;
    }
    const struct vm_section *s = &vm_sections[idx];
    unsigned long i = ((uintptr_t)addr - (uintptr_t)s->base) >> PAGE_SHIFT;
    if (i >= s->nr_pages ||
        s->start_pfn + i >= atomic_load_explicit(&vm_lowmem.committed_pages,
                                                 memory_order_acquire))
        return NULL;
    return &s->map[i];
}

unsigned long vm_page_to_pfn_slow(const struct page *page)
{
    const struct vm_section *s = page_section(page);
    if (!s)
        kslab_die("struct page %p is not a low-memory frame", (void *)page);
    return s->start_pfn + (unsigned long)(page - s->map);
}

void *vm_page_address_slow(const struct page *page)
{
    const struct vm_section *s = page_section(page);
    if (!s)
        kslab_die("struct page %p is not a low-memory frame", (void *)page);
    return s->base + ((unsigned long)(page - s->map) << PAGE_SHIFT);
}

struct page *vm_pfn_to_page_slow(unsigned long pfn)
{
    const struct vm_section *s = vm_pfn_section(pfn);
    return &s->map[pfn - s->start_pfn];
}

int vm_lowmem_page_valid(const struct page *page)
{
    const struct vm_section *s = page_section(page);
    if (!s)
        return 0;
    uintptr_t off = (uintptr_t)page - (uintptr_t)s->map;
    if (off % sizeof(struct page) ||
        off / sizeof(struct page) >=
            __atomic_load_n(&s->nr_pages, __ATOMIC_RELAXED))
        return 0;
    return s->start_pfn + off / sizeof(struct page) <
           atomic_load(&vm_lowmem.committed_pages);
}

/* The frames low memory may grow to: KSLAB_LOWMEM_MB or the default,
 * whole top-order blocks. */
static unsigned long lowmem_budget(void)
{
    unsigned long want = LOWMEM_DEFAULT_BYTES;
    if (kslab_opt.lowmem_mb) /* KSLAB_LOWMEM_MB, lib/options.c */
        want = kslab_opt.lowmem_mb << 20;
    return (want & ~((PAGE_SIZE << (MAX_ORDER - 1)) - 1)) >> PAGE_SHIFT;
}

/* Reserves one more section (grow_lock held): 0 or -ENOMEM. */
static int lowmem_add_section(void)
{
    int n = atomic_load_explicit(&vm_lowmem.nr_sections, memory_order_relaxed);
    unsigned long start = vm_lowmem.reserved_pages;
    if (n >= VM_MAX_SECTIONS || start + VM_SECTION_PAGES > lowmem_capacity)
        return -ENOMEM;
    char *base =
        vm_os_reserve(sect_bytes(VM_SECTION_PAGES), 1UL << SECT_GRAN_SHIFT);
    if (!base)
        return -ENOMEM;
    struct vm_section *s = &vm_sections[n];
    s->base = base;
    s->map = (struct page *)(base + (VM_SECTION_PAGES << PAGE_SHIFT));
    s->start_pfn = start;
    s->nr_pages = VM_SECTION_PAGES;
    if (sect_publish((unsigned int)n)) {
        vm_os_free(base, sect_bytes(VM_SECTION_PAGES));
        return -ENOMEM;
    }
    vm_lowmem.reserved_pages = start + VM_SECTION_PAGES;
    atomic_store_explicit(&vm_lowmem.nr_sections, n + 1, memory_order_release);
    return 0;
}

/* A limit set after start finds the whole direct map reserved, which
 * leaves the program little or nothing under it: give back the part of the
 * first section no zone has grown into (the frames from the end of ZONE_NORMAL
 * as grown, and their struct pages) and grow by sections from there.
 * grow_lock held. */
static void lowmem_go_sectioned(void)
{
    struct zone_struct *normal = &vm_zones[ZONE_NORMAL];
    pthread_mutex_lock(&normal->lock);
    unsigned long keep = normal->grown_pfn;
    pthread_mutex_unlock(&normal->lock);
    unsigned long first = vm_lowmem.first_pages;
    __atomic_store_n(&vm_lowmem_sectioned, 1, __ATOMIC_RELAXED);
    if (keep >= first)
        return;
    /* Frames [keep, first) belong to no one: keep is where ZONE_NORMAL
     * stops (a multiple of ZONE_GROW_PAGES from its start), past ZONE_DMA. */
    vm_os_free(vm_lowmem.base + (keep << PAGE_SHIFT), (first - keep)
                                                          << PAGE_SHIFT);
    uintptr_t m0 = PAGE_ALIGN((uintptr_t)&vm_lowmem.mem_map[keep]);
    uintptr_t m1 = PAGE_ALIGN((uintptr_t)&vm_lowmem.mem_map[first]);
    if (m1 > m0)
        vm_os_free((void *)m0, m1 - m0);
    __atomic_store_n(&vm_sections[0].nr_pages, keep, __ATOMIC_RELAXED);
    vm_lowmem.reserved_pages = keep;
    __atomic_store_n(&vm_lowmem.first_pages, keep, __ATOMIC_RELAXED);
}

/* Makes sure frames below `to` are reserved (grow_lock held): 0 or
 * -ENOMEM. */
static int lowmem_extend(unsigned long to)
{
    if (!vm_lowmem_sectioned && vm_os_as_limited(1))
        lowmem_go_sectioned();
    while (to > vm_lowmem.reserved_pages)
        if (!vm_lowmem_sectioned || lowmem_add_section())
            return -ENOMEM;
    return 0;
}

/* Reserves the direct map and mem_map; start-up only.  Under an
 * address-space limit, the first section alone. */
static int lowmem_reserve(void)
{
    unsigned long budget = lowmem_budget();
    size_t align = PAGE_SIZE << (MAX_ORDER - 1);
    if (vm_os_as_limited(1)) {
        unsigned long cap = (unsigned long)VM_MAX_SECTIONS * VM_SECTION_PAGES;
        if (budget > cap)
            budget = cap;
        budget -= budget % VM_SECTION_PAGES;
        char *base =
            vm_os_reserve(sect_bytes(VM_SECTION_PAGES), 1UL << SECT_GRAN_SHIFT);
        if (!base)
            return -ENOMEM;
        vm_lowmem_sectioned = 1;
        lowmem_capacity = budget;
        vm_lowmem.base = base;
        vm_lowmem.mem_map =
            (struct page *)(base + (VM_SECTION_PAGES << PAGE_SHIFT));
        vm_lowmem.first_pages = VM_SECTION_PAGES;
        vm_lowmem.reserved_pages = VM_SECTION_PAGES;
    } else {
        unsigned long bytes = budget << PAGE_SHIFT;
        for (; bytes >= LOWMEM_MIN_BYTES; bytes /= 2) {
            unsigned long pages = bytes >> PAGE_SHIFT;
            size_t map_bytes = PAGE_ALIGN(pages * sizeof(struct page));
            char *base = vm_os_reserve(bytes, align);
            if (!base)
                continue;
            void *map = vm_os_reserve(map_bytes, 0);
            if (!map) {
                vm_os_free(base, bytes);
                continue;
            }
            vm_lowmem.base = base;
            vm_lowmem.mem_map = map;
            vm_lowmem.first_pages = pages;
            vm_lowmem.reserved_pages = pages;
            lowmem_capacity = pages;
            break;
        }
        if (!vm_lowmem.base)
            return -ENOMEM;
    }
    vm_sections[0].base = vm_lowmem.base;
    vm_sections[0].map = vm_lowmem.mem_map;
    vm_sections[0].start_pfn = 0;
    vm_sections[0].nr_pages = vm_lowmem.first_pages;
    atomic_store_explicit(&vm_lowmem.nr_sections, 1, memory_order_release);
    return 0;
}

/* Makes frames [from, to) and their mem_map entries usable; they are in
 * one section.  grow_lock held.  Returns 0 or -ENOMEM. */
static int lowmem_commit(unsigned long from, unsigned long to)
{
    const struct vm_section *s = vm_pfn_section(from);
    char *start = s->base + ((from - s->start_pfn) << PAGE_SHIFT);
    if (vm_os_protect(start, (to - from) << PAGE_SHIFT,
                      VM_OS_READ | VM_OS_WRITE))
        return -ENOMEM;
    uintptr_t m0 = (uintptr_t)&s->map[from - s->start_pfn] & PAGE_MASK;
    uintptr_t m1 = PAGE_ALIGN((uintptr_t)&s->map[to - s->start_pfn]);
    if (vm_os_protect((void *)m0, m1 - m0, VM_OS_READ | VM_OS_WRITE)) {
        vm_os_protect(start, (to - from) << PAGE_SHIFT, VM_OS_NONE);
        return -ENOMEM;
    }
    return 0;
}

/* ---- giving sections back (under an address-space limit) ---- */

/* The frames of section s that the zone has grown into: [*from, *to). */
static void sect_grown(const struct vm_section *s,
                       const struct zone_struct *zone, unsigned long *from,
                       unsigned long *to)
{
    *from = s->start_pfn;
    *to = s->start_pfn + s->nr_pages;
    if (*to > zone->grown_pfn)
        *to = zone->grown_pfn;
    if (*to < *from)
        *to = *from;
}

/* Gives back every section but the first whose grown frames are all free
 * in whole top-order blocks, each clean or free since `before` (ms;
 * ULONG_MAX: any): the blocks leave the lists, the section leaves the
 * table, its mapping (frames and struct pages) is unmapped.  Blocks off the
 * lists for a purge are not free here: the caller holds purge_lock.  Returns
 * the bytes of address space given back. */
size_t vm_lowmem_release_sections(unsigned long before)
{
    struct zone_struct *zone = &vm_zones[ZONE_NORMAL];
    const unsigned long top = 1UL << (MAX_ORDER - 1);
    size_t bytes = 0;
    pthread_mutex_lock(&grow_lock);
    int n = atomic_load_explicit(&vm_lowmem.nr_sections, memory_order_relaxed);
    for (int idx = 1; vm_lowmem_sectioned && idx < n; idx++) {
        struct vm_section *s = &vm_sections[idx];
        if (!s->base)
            continue;
        unsigned long from, to, pfn;
        pthread_mutex_lock(&zone->lock);
        sect_grown(s, zone, &from, &to);
        if ((from - zone->zone_start_pfn) & (top - 1))
            to = from; /* never: sections are whole top-order blocks */
        for (pfn = from; pfn < to; pfn += top) {
            struct page *p = vm_pfn_to_page(pfn);
            if (!PageFlag(p, PG_buddy) || p->order != MAX_ORDER - 1 ||
                (!PageFlag(p, PG_clean) && p->private > before))
                break;
        }
        if (pfn < to || (to == from && from < zone->grown_pfn)) {
            pthread_mutex_unlock(&zone->lock);
            continue;
        }
        for (pfn = from; pfn < to; pfn += top)
            vm_del_free_block(zone, vm_pfn_to_page(pfn), MAX_ORDER - 1);
        pthread_mutex_unlock(&zone->lock);
        sect_unpublish((unsigned int)idx);
        char *base = s->base;
        s->base = NULL;
        s->map = NULL;
        vm_os_free(base, sect_bytes(s->nr_pages));
        atomic_fetch_add_explicit(&vm_lowmem.absent_pages, to - from,
                                  memory_order_relaxed);
        bytes += sect_bytes(s->nr_pages);
    }
    pthread_mutex_unlock(&grow_lock);
    return bytes;
}

/* Reserves again the first section given back, if any: its grown frames
 * committed, with fresh struct pages, and freed into the zone (clean).
 * grow_lock held.  Returns 1 when one was, 0 when none is absent, or
 * -ENOMEM when the host refuses it. */
static int lowmem_readd_section(struct zone_struct *zone)
{
    int n = atomic_load_explicit(&vm_lowmem.nr_sections, memory_order_relaxed);
    int idx = 1;
    while (idx < n && vm_sections[idx].base)
        idx++;
    if (idx >= n)
        return 0;
    struct vm_section *s = &vm_sections[idx];
    size_t len = sect_bytes(s->nr_pages);
    char *base = vm_os_reserve(len, 1UL << SECT_GRAN_SHIFT);
    if (!base)
        return -ENOMEM;
    s->base = base;
    s->map = (struct page *)(base + (s->nr_pages << PAGE_SHIFT));
    pthread_mutex_lock(&zone->lock);
    unsigned long from, to;
    sect_grown(s, zone, &from, &to);
    pthread_mutex_unlock(&zone->lock);
    if ((to > from && lowmem_commit(from, to)) || sect_publish((unsigned)idx)) {
        s->base = NULL;
        s->map = NULL;
        vm_os_free(base, len);
        return -ENOMEM;
    }
    for (unsigned long pfn = from; pfn < to; pfn++) {
        struct page *p = vm_pfn_to_page(pfn);
        memset(p, 0, sizeof *p);
        p->zone = (unsigned int)(zone - vm_zones);
    }
    pthread_mutex_lock(&zone->lock);
    for (unsigned long pfn = from; pfn < to; pfn += 1UL << (MAX_ORDER - 1))
        vm_free_one_block(zone, pfn, MAX_ORDER - 1, 1);
    pthread_mutex_unlock(&zone->lock);
    atomic_fetch_sub_explicit(&vm_lowmem.absent_pages, to - from,
                              memory_order_relaxed);
    return 1;
}

/* The layers above's address space held for reuse (interpose/huge_pool.c's
 * pool of freed huge blocks), given back before low memory grows under an
 * address-space limit. */
#define ASPACE_HOOK_MAX 2
static size_t (*_Atomic aspace_hook[ASPACE_HOOK_MAX])(void);

void vm_aspace_register(size_t (*fn)(void))
{
    for (int i = 0; i < ASPACE_HOOK_MAX; i++) {
        size_t (*old)(void) = NULL;
        if (atomic_compare_exchange_strong(&aspace_hook[i], &old, fn) ||
            old == fn)
            return;
    }
    kslab_die("vm_aspace_register(): more than %d users", ASPACE_HOOK_MAX);
}

static void aspace_release(void)
{
    for (int i = 0; i < ASPACE_HOOK_MAX; i++) {
        size_t (*fn)(void) = atomic_load(&aspace_hook[i]);
        if (fn)
            fn();
    }
}

/* Commits ZONE_GROW_PAGES more frames to zone, unless another thread grew
 * it since the caller saw it at seen_pfn (then 0 at once: try again).  Zone
 * lock NOT held; the commit runs under grow_lock only. */
int vm_zone_grow(struct zone_struct *zone, unsigned long seen_pfn)
{
    int err = -ENOMEM;
    /* under a limit, address space held for reuse goes first (no lock
     * held: the hooks take their own) */
    if (__atomic_load_n(&vm_lowmem_sectioned, __ATOMIC_RELAXED) ||
        vm_os_as_limited(0))
        aspace_release();
    pthread_mutex_lock(&grow_lock);
    pthread_mutex_lock(&zone->lock);
    unsigned long from = zone->grown_pfn;
    pthread_mutex_unlock(&zone->lock);
    if (from != seen_pfn) {
        pthread_mutex_unlock(&grow_lock);
        return 0;
    }
    if (vm_lowmem_sectioned && zone == &vm_zones[ZONE_NORMAL]) {
        /* a section given back comes again before the zone grows */
        int r = lowmem_readd_section(zone);
        if (r) {
            err = r > 0 ? 0 : r;
            goto out;
        }
    }
    unsigned long to = from + ZONE_GROW_PAGES;
    if (to > zone->zone_end_pfn)
        to = zone->zone_end_pfn;
    if (from >= to)
        goto out;
    if (to > vm_lowmem.reserved_pages || !vm_lowmem_sectioned)
        if (lowmem_extend(to))
            goto out;
    if (lowmem_commit(from, to))
        goto out;
    for (unsigned long pfn = from; pfn < to; pfn++) {
        struct page *p = vm_pfn_to_page(pfn);
        memset(p, 0, sizeof *p);
        p->zone = (unsigned int)(zone - vm_zones);
    }
    unsigned long committed = atomic_load(&vm_lowmem.committed_pages);
    if (to > committed)
        atomic_store_explicit(&vm_lowmem.committed_pages, to,
                              memory_order_release);
    unsigned long fast =
        to < vm_lowmem.first_pages ? to : vm_lowmem.first_pages;
    if (fast > atomic_load(&vm_lowmem.fast_pages))
        atomic_store_explicit(&vm_lowmem.fast_pages, fast,
                              memory_order_release);
    pthread_mutex_lock(&zone->lock);
    zone->grown_pfn = to;
    /* New frames were never touched: they are clean. */
    for (unsigned long pfn = from; pfn < to;) {
        unsigned int order = MAX_ORDER - 1;
        while ((((pfn - zone->zone_start_pfn) & ((1UL << order) - 1)) ||
                pfn + (1UL << order) > to))
            order--;
        vm_free_one_block(zone, pfn, order, 1);
        pfn += 1UL << order;
    }
    pthread_mutex_unlock(&zone->lock);
    err = 0;
out:
    pthread_mutex_unlock(&grow_lock);
    /* after grow_lock: the check takes the zone locks in turn */
    if (!err)
        KSLAB_DEBUG_CHECK(vm_check_zones());
    return err;
}

/* ---- start-up and fork ---- */

/* The fork hook of the frames (level KSLAB_FORK_FRAMES, the last: the
 * order of every kslab lock is at the top of lib/fork.c): purge_lock,
 * grow_lock, the zones, the high-memory frames. */
static void frames_fork_prepare(void)
{
    vm_purge_fork_prepare(); /* no pass has blocks off the lists */
    pthread_mutex_lock(&grow_lock);
    for (int z = 0; z < MAX_NR_ZONES; z++)
        pthread_mutex_lock(&vm_zones[z].lock);
    vm_highmem_fork_lock();
}

static void frames_fork_parent(void)
{
    vm_highmem_fork_unlock(0);
    for (int z = MAX_NR_ZONES - 1; z >= 0; z--)
        pthread_mutex_unlock(&vm_zones[z].lock);
    pthread_mutex_unlock(&grow_lock);
    vm_purge_fork_parent();
}

static void frames_fork_child(void)
{
    vm_highmem_fork_unlock(1);
    pthread_mutex_init(&grow_lock, NULL);
    vm_purge_fork_child();
    for (int z = 0; z < MAX_NR_ZONES; z++)
        pthread_mutex_init(&vm_zones[z].lock, NULL);
}

static const struct kslab_fork_hook frames_fork_hook = {
    frames_fork_prepare, frames_fork_parent, frames_fork_child};

/* Start-up, level KSLAB_INIT_FRAMES (lib/init.c): the direct map and the
 * zones.  When no low memory can be reserved, vm_lowmem.ready stays 0 and
 * every allocation fails with ENOMEM (the slab's start-up dies). */
static void lowmem_init(void)
{
    kslab_fork_register(KSLAB_FORK_FRAMES, &frames_fork_hook);
    if (lowmem_reserve())
        return;
    /* One byte a pageblock, touched only where the zones grow. */
    vm_pb_types = vm_os_alloc((lowmem_capacity >> PB_ORDER) + 1, 0, 1);
    if (!vm_pb_types)
        return;
    for (int z = 0; z < MAX_NR_ZONES; z++) {
        struct zone_struct *zone = &vm_zones[z];
        for (int o = 0; o < MAX_ORDER; o++)
            for (int t = 0; t < PB_TYPES; t++) {
                INIT_LIST_HEAD(&zone->free_area[o].free_list[t]);
                INIT_LIST_HEAD(&zone->free_area[o].clean_list[t]);
            }
    }
    unsigned long dma_end = DMA_PAGES < vm_lowmem.first_pages / 4
                                ? DMA_PAGES
                                : vm_lowmem.first_pages / 4;
    dma_end &= ~(PB_PAGES - 1); /* zones start on a pageblock */
    vm_zones[ZONE_DMA].zone_start_pfn = 0;
    vm_zones[ZONE_DMA].zone_end_pfn = dma_end;
    vm_zones[ZONE_DMA].grown_pfn = 0;
    vm_zones[ZONE_NORMAL].zone_start_pfn = dma_end;
    vm_zones[ZONE_NORMAL].zone_end_pfn = lowmem_capacity;
    vm_zones[ZONE_NORMAL].grown_pfn = dma_end;
    if (kslab_opt.decay_set) /* KSLAB_DECAY_MS */
        vm_purge_decay_ms = kslab_opt.decay_ms;
    __atomic_store_n(&vm_lowmem.ready, 1, __ATOMIC_RELEASE);
}
KSLAB_INITCALL(KSLAB_INIT_FRAMES, lowmem_init);
