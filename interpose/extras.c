/*
 * interpose/extras.c — the rest of glibc's malloc interface, with kslab's
 * own figures: mallinfo2/mallinfo, malloc_trim, malloc_stats, malloc_info
 * and mallopt.  They must be kslab's: in a static link a program that calls
 * one of them would otherwise pull glibc's malloc.o out of libc.a, whose
 * malloc and free clash with kslab's.
 *
 * The figures, in glibc's terms (one "arena": the direct map):
 *   arena     bytes kslab holds from the host for blocks up to the mmap
 *             threshold: low-memory frames in use or free but still
 *             dirty, plus the cached own mappings
 *   uordblks  bytes of live blocks: slab objects handed out (at their
 *             class size) and the frames of large buddy blocks
 *   fordblks  arena - uordblks: free objects on slabs and in threads'
 *             arrays, slab slack, dirty free frames, cached mappings
 *   ordblks   free chunks: free slab objects and free buddy blocks
 *   smblks    free objects in threads' arrays (glibc's fastbins), fsmblks
 *             their bytes
 *   hblks     own mappings in use, hblkhd their bytes
 *   keepcost  what malloc_trim(0) can give back: dirty free frames,
 *             cached mappings and the threads' cached large blocks
 * Each is a racy snapshot (the locks are taken one at a time).
 */
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>

#include <kslab/kslab.h>

#include "interpose/interpose.h"
#include "interpose/large.h"
#include "interpose/tool.h"
#include "lib/options.h"
#include "slab/kmalloc.h"
#include "slab/slab_internal.h"

struct ip_figures {
    size_t arena, uord, ford, ordblks, smblks, fsmblks, hblks, hblkhd, keep;
    size_t max_hblks, max_hblkhd, slab_free_objs, slab_free_bytes;
    size_t free_frames, free_blocks;
};

static void ip_figures(struct ip_figures *f)
{
    struct slab_usage su;
    struct ip_large_stats ls;
    slab_usage(&su);
    ip_large_get_stats(&ls);
    unsigned long committed = 0, nfree = 0, dirty = 0, blocks = 0;
    if (__atomic_load_n(&vm_lowmem.ready, __ATOMIC_ACQUIRE)) {
        for (int z = ZONE_DMA; z <= ZONE_NORMAL; z++) {
            struct zone_struct *zone = &vm_zones[z];
            pthread_mutex_lock(&zone->lock);
            /* the zone's frames handed to the buddy lists so far */
            if (zone->grown_pfn > zone->zone_start_pfn)
                committed += zone->grown_pfn - zone->zone_start_pfn;
            nfree += zone->free_pages;
            dirty += zone->dirty_pages;
            for (int o = 0; o < MAX_ORDER; o++)
                blocks += zone->free_area[o].nr_free;
            pthread_mutex_unlock(&zone->lock);
        }
    }
    /* sections given back under an address-space limit hold nothing */
    committed -=
        atomic_load_explicit(&vm_lowmem.absent_pages, memory_order_relaxed);
    size_t held = (committed - (nfree - dirty)) << PAGE_SHIFT;
    f->arena = held + ls.huge_cached_bytes;
    f->uord = su.inuse_bytes + (ls.live_pages << PAGE_SHIFT);
    if (f->uord > f->arena) /* snapshots taken at different moments */
        f->uord = f->arena;
    f->ford = f->arena - f->uord;
    f->ordblks = su.free_objs + su.array_objs + blocks + ls.huge_cached +
                 ls.tcache_blocks;
    f->smblks = su.array_objs;
    f->fsmblks = su.array_bytes;
    f->hblks = ls.huge_blocks;
    f->hblkhd = ls.huge_bytes;
    f->keep = (dirty << PAGE_SHIFT) + ls.huge_cached_bytes + ls.tcache_bytes;
    f->max_hblks = ls.huge_max_blocks;
    f->max_hblkhd = ls.huge_max_bytes;
    f->slab_free_objs = su.free_objs;
    f->slab_free_bytes = su.free_bytes;
    f->free_frames = nfree;
    f->free_blocks = blocks;
}

KSLAB_API struct mallinfo2 mallinfo2(void)
{
    struct ip_figures f;
    ip_figures(&f);
    struct mallinfo2 mi = {
        .arena = f.arena,
        .ordblks = f.ordblks,
        .smblks = f.smblks,
        .hblks = f.hblks,
        .hblkhd = f.hblkhd,
        .usmblks = 0,
        .fsmblks = f.fsmblks,
        .uordblks = f.uord,
        .fordblks = f.ford,
        .keepcost = f.keep,
    };
    return mi;
}

static int sat(size_t v)
{
    return v > INT_MAX ? INT_MAX : (int)v;
}

/* The old interface: the same figures, saturating at INT_MAX. */
KSLAB_API struct mallinfo mallinfo(void)
{
    struct mallinfo2 m = mallinfo2();
    struct mallinfo mi = {
        .arena = sat(m.arena),
        .ordblks = sat(m.ordblks),
        .smblks = sat(m.smblks),
        .hblks = sat(m.hblks),
        .hblkhd = sat(m.hblkhd),
        .usmblks = 0,
        .fsmblks = sat(m.fsmblks),
        .uordblks = sat(m.uordblks),
        .fordblks = sat(m.fordblks),
        .keepcost = sat(m.keepcost),
    };
    return mi;
}

/*
 * malloc_trim - gives free memory back to the host: the calling thread's
 * arrays are drained (the other threads drain theirs at their next slow
 * path), every free slab goes back to the buddy lists, the cached own
 * mappings are unmapped, and the free frames are given back (madvise) down
 * to pad bytes per zone.  Returns 1 when anything was given back.
 */
KSLAB_API int malloc_trim(size_t pad)
{
    if (!kslab_init_reached(KSLAB_INIT_SLAB))
        return 0;
    slab_shrink_all();
    size_t bytes = ip_large_trim();
    unsigned long frames = vm_release_free(0, pad >> PAGE_SHIFT);
    return bytes || frames;
}

/* glibc's malloc_stats() shape on stderr (one arena, then the totals with
 * the own mappings), followed by kslab's slabinfo and large-block line. */
KSLAB_API void malloc_stats(void)
{
    struct ip_figures f;
    ip_figures(&f);
    int saved = errno;
    fprintf(stderr,
            "Arena 0:\n"
            "system bytes     = %10zu\n"
            "in use bytes     = %10zu\n"
            "Total (incl. mmap):\n"
            "system bytes     = %10zu\n"
            "in use bytes     = %10zu\n"
            "max mmap regions = %10zu\n"
            "max mmap bytes   = %10zu\n",
            f.arena, f.uord, f.arena + f.hblkhd, f.uord + f.hblkhd, f.max_hblks,
            f.max_hblkhd);
    kslab_stats_print(stderr);
    errno = saved;
}

/* One <size> line per cache with free objects. */
static void info_cache(FILE *fp, kmem_cache_t *c)
{
    struct slab_usage u = {0};
    slab_cache_usage(c, &u);
    size_t count = u.free_objs + u.array_objs;
    if (count)
        fprintf(fp,
                "  <size from=\"%u\" to=\"%u\" total=\"%zu\" "
                "count=\"%zu\"/>\n",
                c->objsize, c->objsize, (size_t)(u.free_bytes + u.array_bytes),
                count);
}

/* glibc's XML (<malloc version="1">, one <heap>): the free objects of each
 * cache as <sizes>, the threads' arrays as "fast", free slab objects and
 * free frames as "rest", own mappings as "mmap". */
KSLAB_API int malloc_info(int options, FILE *fp)
{
    if (options != 0)
        return EINVAL;
    struct ip_figures f;
    ip_figures(&f);
    size_t rest_count = f.slab_free_objs + f.free_blocks;
    size_t rest_size = f.slab_free_bytes + (f.free_frames << PAGE_SHIFT);
    fputs("<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n", fp);
    if (kslab_init_reached(KSLAB_INIT_SLAB))
        slab_for_each_cache(info_cache, fp);
    fprintf(fp,
            "</sizes>\n"
            "<total type=\"fast\" count=\"%zu\" size=\"%zu\"/>\n"
            "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
            "<system type=\"current\" size=\"%zu\"/>\n"
            "<system type=\"max\" size=\"%zu\"/>\n"
            "<aspace type=\"total\" size=\"%zu\"/>\n"
            "<aspace type=\"mprotect\" size=\"%zu\"/>\n"
            "</heap>\n",
            f.smblks, f.fsmblks, rest_count, rest_size, f.arena, f.arena,
            f.arena, f.arena);
    fprintf(fp,
            "<total type=\"fast\" count=\"%zu\" size=\"%zu\"/>\n"
            "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n"
            "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n"
            "<system type=\"current\" size=\"%zu\"/>\n"
            "<system type=\"max\" size=\"%zu\"/>\n"
            "<aspace type=\"total\" size=\"%zu\"/>\n"
            "<aspace type=\"mprotect\" size=\"%zu\"/>\n"
            "</malloc>\n",
            f.smblks, f.fsmblks, rest_count, rest_size, f.hblks, f.hblkhd,
            f.arena + f.hblkhd, f.arena + f.max_hblkhd, f.arena + f.hblkhd,
            f.arena + f.hblkhd);
    return 0;
}

/* glibc's largest M_MXFAST. */
#define IP_MXFAST_MAX (80 * sizeof(size_t) / 4)

/* The parameters mallopt() and the environment (ip_glibc_options) set. */
static void set_trim_threshold(unsigned long frames)
{
    __atomic_store_n(&vm_purge_threshold, frames, __ATOMIC_RELAXED);
}

static void set_mmap_threshold(size_t bytes)
{
    __atomic_store_n(&ip_large_mmap_threshold, bytes, __ATOMIC_RELAXED);
}

static void set_mmap_max(int n)
{
    __atomic_store_n(&ip_large_mmap_max, n < 0 ? 0 : n, __ATOMIC_RELAXED);
}

/*
 * mallopt - glibc's parameters, with glibc 2.36's answers: 1 for every
 * param and value, except M_MXFAST outside [0, 160] (0).  Honoured:
 * M_TRIM_THRESHOLD (the dirty free memory a zone keeps before the oldest
 * is given back; negative: never), M_MMAP_THRESHOLD (blocks from this
 * size up are own mappings; any value, taken as a size_t as glibc takes
 * it, so a negative one means never; slab sizes, up to 128 KiB, stay slab
 * objects, and a block no buddy block can hold, above 2 MiB, is a mapping
 * whatever the threshold), M_MMAP_MAX (at most this many own mappings
 * live; past it a block that fits a buddy block comes from low memory;
 * negative: as 0), M_PERTURB (blocks are filled with ~value when handed
 * out and value when freed, as glibc does).  Accepted without effect, as
 * they have no kslab meaning: M_TOP_PAD, M_CHECK_ACTION, M_ARENA_TEST,
 * M_ARENA_MAX, M_MXFAST, and a param glibc does not know (glibc ignores it
 * and returns 1).
 */
KSLAB_API int mallopt(int param, int value)
{
    switch (param) {
    case M_TRIM_THRESHOLD:
        set_trim_threshold(value < 0 ? ULONG_MAX
                                     : (unsigned long)value >> PAGE_SHIFT);
        return 1;
    case M_MMAP_THRESHOLD:
        set_mmap_threshold((size_t)value);
        return 1;
    case M_MMAP_MAX:
        set_mmap_max(value);
        return 1;
    case M_PERTURB:
        ip_set_perturb(value);
        return 1;
    case M_MXFAST:
        return value >= 0 && (size_t)value <= IP_MXFAST_MAX;
    default:
        return 1;
    }
}

/* Start-up (interpose/init.c): glibc's MALLOC_*_ variables and glibc.malloc.*
 * tunables, read by lib/options.c, applied as mallopt() applies them (the
 * reader kept only values in mallopt's range).  M_TOP_PAD, M_ARENA_MAX and
 * M_ARENA_TEST have no effect either way. */
void ip_glibc_options(void)
{
    unsigned int set = kslab_opt.glibc_set;
    const unsigned long *v = kslab_opt.glibc;
    if (set & (1U << KSLAB_GLIBC_TRIM_THRESHOLD))
        set_trim_threshold(v[KSLAB_GLIBC_TRIM_THRESHOLD] >> PAGE_SHIFT);
    if (set & (1U << KSLAB_GLIBC_MMAP_THRESHOLD))
        set_mmap_threshold(v[KSLAB_GLIBC_MMAP_THRESHOLD]);
    if (set & (1U << KSLAB_GLIBC_MMAP_MAX))
        set_mmap_max((int)v[KSLAB_GLIBC_MMAP_MAX]);
    if (set & (1U << KSLAB_GLIBC_PERTURB))
        ip_set_perturb((int)v[KSLAB_GLIBC_PERTURB]);
}
