/*
 * tests/frames/test_pageblock.c — pageblocks (buddy.c): the frames of
 * slabs and of page-granular runs (large malloc blocks) are kept in
 * separate 2 MiB pageblocks, so the tails of runs are not taken by slabs
 * and freed runs merge back into blocks a run of any size can use; a use
 * that has nothing left claims a mostly free pageblock of the other before
 * the zone grows, and takes any piece of it when the zones cannot grow;
 * free blocks of every order and both types are given back by the purge.
 */
#include <limits.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ktest.h"
#include "vm/frames/page.h"

static unsigned long zone_grown(void)
{
    struct zone_struct *zone = &vm_zones[ZONE_NORMAL];
    pthread_mutex_lock(&zone->lock);
    unsigned long v = zone->grown_pfn;
    pthread_mutex_unlock(&zone->lock);
    return v;
}

static unsigned long rnd_state = 12345;
static unsigned long rnd(unsigned long n)
{
    rnd_state = rnd_state * 6364136223846793005UL + 1442695040888963407UL;
    return (rnd_state >> 33) % n;
}

/* The tree shape of bench/: one run of 17 ... 90 frames (64 ... 360 KiB)
 * among many slab frames.  With the two kinds in the same free memory the
 * slabs take the tails of the runs, and the runs, once freed, cannot merge
 * back into the aligned blocks the next runs need: the zone grows for
 * every round.  Here the freed runs serve the next round without growth. */
static void test_runs_among_slabs_reuse_their_frames(void **state)
{
    (void)state;
    __atomic_store_n(&vm_purge_decay_ms, ULONG_MAX, __ATOMIC_RELAXED);
    enum { ROUNDS = 6, RUNS = 60, SMALL = 40 };
    static struct page *small[ROUNDS][RUNS * SMALL];
    static struct page *run[RUNS];
    static unsigned long len[RUNS];
    unsigned long grown_after_first = 0, run_pages = 0;
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < RUNS; i++) {
            len[i] = 17 + rnd(74);
            run[i] = vm_alloc_pages_exact(GFP_KERNEL, len[i]);
            assert_non_null(run[i]);
            if (!r)
                run_pages += len[i];
            for (int k = 0; k < SMALL; k++) {
                small[r][i * SMALL + k] = alloc_pages(GFP_KERNEL, 0);
                assert_non_null(small[r][i * SMALL + k]);
            }
        }
        for (int i = 0; i < RUNS; i++)
            vm_free_pages_exact(run[i], len[i]);
        if (!r)
            grown_after_first = zone_grown();
    }
    vm_check_zones();
    /* Later rounds need 2400 more slab frames each (under 5 pageblocks);
     * the runs (about 3200 frames a round) reuse the first round's. */
    unsigned long slab_growth = (ROUNDS - 1) * RUNS * SMALL;
    unsigned long grown = zone_grown() - grown_after_first;
    print_message("runs of %lu frames a round; grown %lu frames after the "
                  "first round, slab frames %lu\n",
                  run_pages, grown, slab_growth);
    assert_true(grown <= slab_growth + 4 * PB_PAGES);
    for (int r = 0; r < ROUNDS; r++)
        for (int i = 0; i < RUNS * SMALL; i++)
            __free_pages(small[r][i], 0);
    vm_check_zones();
}

/* Is there a free block of order >= lo of type t in the zone? */
static int has_free(struct zone_struct *zone, unsigned int lo, unsigned int t)
{
    for (unsigned int o = lo; o < PB_ORDER; o++)
        if (!list_empty(&zone->free_area[o].free_list[t]) ||
            !list_empty(&zone->free_area[o].clean_list[t]))
            return 1;
    return 0;
}

/* Allocates slab blocks of order 4 until the slab pageblocks have no free
 * block of order >= 4, and whole pageblocks until none is free. */
static void use_up(struct zone_struct *zone, struct page **held, int *nheld)
{
    for (;;) {
        pthread_mutex_lock(&zone->lock);
        int slab = has_free(zone, 4, PB_SLAB);
        unsigned long whole = zone->free_area[PB_ORDER].nr_free;
        pthread_mutex_unlock(&zone->lock);
        if (!slab && !whole)
            break;
        assert_true(*nheld < 4096);
        struct page *p = alloc_pages(GFP_KERNEL, slab ? 4 : PB_ORDER);
        assert_non_null(p);
        p->private = slab ? 4 : PB_ORDER;
        held[(*nheld)++] = p;
    }
}

/* A slab allocation that finds no slab block and no whole free pageblock
 * claims a run pageblock that is half free rather than growing the zone. */
static void test_slab_claims_a_half_free_run_pageblock(void **state)
{
    (void)state;
    struct zone_struct *zone = &vm_zones[ZONE_NORMAL];
    static struct page *held[4096];
    int nheld = 0;
    /* use up the slab blocks of order >= 4 and the whole free pageblocks */
    use_up(zone, held, &nheld);
    /* a run pageblock with a free half: a run of a whole pageblock (the
     * zone grows) shrunk to 200 frames */
    struct page *r = vm_alloc_pages_exact(GFP_KERNEL, PB_PAGES);
    assert_non_null(r);
    vm_shrink_pages_exact(r, PB_PAGES, 200);
    use_up(zone, held, &nheld);
    pthread_mutex_lock(&zone->lock);
    int half_free = has_free(zone, PB_ORDER - 1, PB_RUN);
    unsigned long stolen = zone->pb_stolen;
    pthread_mutex_unlock(&zone->lock);
    assert_true(half_free);
    unsigned long grown = zone_grown();
    struct page *p = alloc_pages(GFP_KERNEL, 4);
    assert_non_null(p);
    assert_int_equal(zone_grown(), grown);
    assert_int_equal(zone->pb_stolen, stolen + 1);
    vm_check_zones();
    __free_pages(p, 4);
    for (int i = 0; i < nheld; i++)
        __free_pages(held[i], (unsigned int)held[i]->private);
    vm_free_pages_exact(r, 200);
    vm_check_zones();
}

/* After everything is freed, a purge leaves no dirty block at any order
 * of either type. */
static void test_purge_gives_back_every_order_of_both_types(void **state)
{
    (void)state;
    static struct page *small[512];
    static struct page *run[64];
    static unsigned long len[64];
    for (int i = 0; i < 64; i++) {
        len[i] = 17 + rnd(200);
        run[i] = vm_alloc_pages_exact(GFP_KERNEL, len[i]);
        assert_non_null(run[i]);
        memset(page_address(run[i]), 1, len[i] << PAGE_SHIFT);
        for (int k = 0; k < 8; k++) {
            unsigned int o = (unsigned int)k % 4;
            small[i * 8 + k] = alloc_pages(GFP_KERNEL, o);
            assert_non_null(small[i * 8 + k]);
            memset(page_address(small[i * 8 + k]), 1, PAGE_SIZE << o);
        }
    }
    /* free every other one: dirty blocks of many orders in both types */
    for (int i = 0; i < 64; i += 2)
        vm_free_pages_exact(run[i], len[i]);
    for (int i = 0; i < 512; i += 2)
        __free_pages(small[i], (unsigned int)i % 8 % 4);
    vm_release_free(0, 0);
    struct zone_struct *zone = &vm_zones[ZONE_NORMAL];
    pthread_mutex_lock(&zone->lock);
    unsigned long dirty = zone->dirty_pages;
    int dirty_lists = 0, run_blocks = 0;
    for (int o = 0; o < MAX_ORDER; o++)
        for (int t = 0; t < PB_TYPES; t++) {
            dirty_lists += !list_empty(&zone->free_area[o].free_list[t]);
            if (t == PB_RUN)
                run_blocks += !list_empty(&zone->free_area[o].clean_list[t]);
        }
    pthread_mutex_unlock(&zone->lock);
    assert_int_equal(dirty, 0);
    assert_int_equal(dirty_lists, 0);
    assert_true(run_blocks > 0); /* the run pageblocks' blocks were seen */
    for (int i = 1; i < 64; i += 2)
        vm_free_pages_exact(run[i], len[i]);
    for (int i = 1; i < 512; i += 2)
        __free_pages(small[i], (unsigned int)i % 8 % 4);
    vm_check_zones();
}

/* Free frames of ZONE_NORMAL and ZONE_DMA. */
static unsigned long free_frames(void)
{
    unsigned long n = 0;
    for (int z = ZONE_DMA; z <= ZONE_NORMAL; z++) {
        pthread_mutex_lock(&vm_zones[z].lock);
        n += vm_zones[z].free_pages;
        pthread_mutex_unlock(&vm_zones[z].lock);
    }
    return n;
}

/* In 32 MiB of low memory (KSLAB_LOWMEM_MB=32): runs of 17 frames fill
 * the zones, leaving 15 free frames of run pageblocks after each; when
 * the zones cannot grow, slab pages are taken from those pieces.  Exit
 * status 0 or the failed step. */
static int child_full(void)
{
    static struct page *runs[2048];
    int nruns = 0;
    while (nruns < 2048 &&
           (runs[nruns] = vm_alloc_pages_exact(GFP_KERNEL, 17)) != NULL)
        nruns++;
    if (nruns < 100 || nruns == 2048)
        return 10;
    unsigned long before = free_frames(), got = 0;
    while (alloc_pages(GFP_KERNEL, 0))
        got++;
    fprintf(stderr, "%d runs; %lu free frames, %lu slab pages then\n", nruns,
            before, got);
    if (got + 64 < before) /* the rest of the slab pageblocks only */
        return 11;
    vm_check_zones();
    return 0;
}

static const char *self_path;

/* A slab allocation that finds every zone full takes any block of the run
 * pageblocks (the fallback of last resort). */
static void test_full_zones_lend_run_frames_to_slabs(void **state)
{
    (void)state;
    static const char *const env[] = {"KSLAB_LOWMEM_MB=32", NULL};
    struct ktest_exec x = {self_path, "full", env};
    char err[4096];
    int st = ktest_run_child(ktest_exec_self, &x, err, sizeof err);
    print_message("%s", err);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "full"))
        return child_full();
    static char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0)
        return 1;
    self[len] = 0;
    self_path = self;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_zones_lend_run_frames_to_slabs),
        cmocka_unit_test(test_runs_among_slabs_reuse_their_frames),
        cmocka_unit_test(test_slab_claims_a_half_free_run_pageblock),
        cmocka_unit_test(test_purge_gives_back_every_order_of_both_types),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
