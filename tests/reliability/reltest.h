/*
 * tests/reliability/reltest.h — the "nothing lost" measure shared by the
 * stress and out-of-memory tests: a snapshot of the objects in use in every
 * cache (after the calling thread's arrays are drained and every cache is
 * shrunk) and of the low-memory frames in use, to compare after a run.
 */
#ifndef KSLAB_TESTS_RELTEST_H
#define KSLAB_TESTS_RELTEST_H

#include "ktest.h"

#include <kslab/kslab.h>

#include "slab/slab_internal.h"
#include "vm/mm/mm.h"
#include "vm/frames/page.h"

#include <sys/mman.h>

#define REL_MAX_CACHES 256

struct rel_snapshot {
    int n;
    kmem_cache_t *cache[REL_MAX_CACHES];
    unsigned long inuse[REL_MAX_CACHES];
    unsigned long frames_used; /* committed low-memory frames not free */
    unsigned long user_free;   /* free user (highmem) frames */
};

/* Makes the state a snapshot is taken from: the calling thread's lazily
 * made array of every kmalloc cache exists, and so do the caches of the
 * emulator (mm_struct, vm_area_struct, pgtable). */
static inline void rel_warm_up(void)
{
    /* every size class, intermediate ones included */
    for (size_t n = 16; n <= 131072; n += n / 32 > 16 ? n / 32 : 16) {
        kfree(kmalloc(n, GFP_KERNEL));
        kfree(kmalloc(n, GFP_DMA));
    }
    /* (under an address-space limit there may be no room for an mm) */
    struct mm_struct *mm = mm_alloc();
    if (!mm)
        return;
    unsigned long a = do_mmap(mm, -1, 0, PAGE_SIZE, PROT_READ | PROT_WRITE,
                              MAP_PRIVATE | MAP_ANONYMOUS, 0);
    *(volatile long *)mm_host(mm, a) = 1;
    struct mm_struct *c = mm_fork(mm);
    if (c) {
        *(volatile long *)mm_host(c, a) = 2;
        mmput(c);
    }
    mmput(mm);
}

static kmem_cache_t *rel_chain[REL_MAX_CACHES];
static int rel_nchain;

static void rel_collect(FILE *out, kmem_cache_t *c)
{
    (void)out;
    if (rel_nchain < REL_MAX_CACHES)
        rel_chain[rel_nchain++] = c;
}

static inline void rel_snapshot(struct rel_snapshot *s)
{
    kmem_cache_init();
    rel_warm_up();
    slab_drain_self();
    for (int pass = 0; pass < 3; pass++) {
        rel_nchain = 0;
        slab_for_each_cache(rel_collect, NULL);
        for (int i = 0; i < rel_nchain; i++)
            if (rel_chain[i] != &cache_cache)
                kmem_cache_shrink(rel_chain[i]);
    }
    s->n = rel_nchain;
    for (int i = 0; i < rel_nchain; i++) {
        s->cache[i] = rel_chain[i];
        s->inuse[i] = slab_check_cache(rel_chain[i]);
    }
    unsigned long free_frames = vm_check_zones();
    /* frames of sections given back (under an address-space limit) are
     * neither free nor in use */
    s->frames_used = atomic_load(&vm_lowmem.committed_pages) -
                     atomic_load(&vm_lowmem.absent_pages) - free_frames;
    s->user_free = vm_free_user_frames();
}

/* Every cache of `before` has as many objects in use in `after`; the
 * frames in use grew by at most slack_pages. */
static inline void rel_expect_nothing_lost(const struct rel_snapshot *before,
                                           const struct rel_snapshot *after,
                                           unsigned long slack_pages)
{
    for (int i = 0; i < before->n; i++)
        for (int j = 0; j < after->n; j++)
            if (after->cache[j] == before->cache[i] &&
                after->inuse[j] != before->inuse[i])
                fail_msg("cache `%s': %lu objects in use, %lu at the start",
                         before->cache[i]->name, after->inuse[j],
                         before->inuse[i]);
    if (after->frames_used > before->frames_used + slack_pages)
        fail_msg("%lu low-memory frames in use, %lu at the start",
                 after->frames_used, before->frames_used);
    if (after->user_free != before->user_free)
        fail_msg("%lu free user frames, %lu at the start", after->user_free,
                 before->user_free);
    printf("  (objects in use per cache and free user frames as at the "
           "start; low-memory frames in use %+ld pages, bound +%lu)\n",
           (long)after->frames_used - (long)before->frames_used, slack_pages);
}

#endif /* KSLAB_TESTS_RELTEST_H */
