/*
 * tests/frames/test_buddy.c — the buddy allocator of low memory: orders,
 * alignment, splitting and coalescing, DMA zone, page-granular blocks,
 * giving memory back to the host, and thread safety.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>

#include <time.h>

#include "ktest.h"
#include "vm/frames/internal.h"
#include "vm/frames/page.h"

static void test_every_order_is_aligned_and_distinct(void **state)
{
    (void)state;
    struct page *pages[MAX_ORDER];
    for (unsigned o = 0; o < MAX_ORDER; o++) {
        pages[o] = alloc_pages(GFP_KERNEL, o);
        assert_non_null(pages[o]);
        char *a = page_address(pages[o]);
        assert_non_null(a);
        assert_int_equal(
            ((uintptr_t)a - (uintptr_t)vm_lowmem.base) % (PAGE_SIZE << o), 0);
        assert_ptr_equal(virt_to_page(a), pages[o]);
        assert_ptr_equal(virt_to_page(a + (PAGE_SIZE << o) - 1),
                         pages[o] + (1UL << o) - 1);
        memset(a, (int)o, PAGE_SIZE << o);
    }
    for (unsigned o = 0; o < MAX_ORDER; o++) {
        unsigned char *a = page_address(pages[o]);
        for (size_t i = 0; i < (PAGE_SIZE << o); i += 512)
            assert_int_equal(a[i], o);
    }
    for (unsigned o = 0; o < MAX_ORDER; o++)
        __free_pages(pages[o], o);
    vm_check_zones();
}

static void test_bad_order_is_refused(void **state)
{
    (void)state;
    errno = 0;
    assert_null(alloc_pages(GFP_KERNEL, MAX_ORDER));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(__get_free_pages(GFP_KERNEL, 99), 0);
}

static void test_buddies_coalesce(void **state)
{
    (void)state;
    vm_check_zones();
    unsigned long before =
        vm_zones[ZONE_NORMAL].free_area[MAX_ORDER - 1].nr_free;
    /* Split a max-order block into single pages and free them all. */
    enum { N = 1 << (MAX_ORDER - 1) };
    static unsigned long addrs[N];
    for (int i = 0; i < N; i++) {
        addrs[i] = __get_free_pages(GFP_KERNEL, 0);
        assert_true(addrs[i] != 0);
    }
    for (int i = N - 1; i >= 0; i--)
        free_pages(addrs[i], 0);
    vm_check_zones();
    /* Everything merged back: as many max-order blocks as before. */
    assert_true(vm_zones[ZONE_NORMAL].free_area[MAX_ORDER - 1].nr_free >=
                before);
    for (int o = 0; o < MAX_ORDER - 1; o++)
        assert_true(vm_zones[ZONE_NORMAL].free_area[o].nr_free <= 1);
}

static void test_dma_pages_lie_in_zone_dma(void **state)
{
    (void)state;
    unsigned long a = __get_free_pages(GFP_DMA, 2);
    assert_true(a != 0);
    assert_true(vm_addr_is_dma((void *)a));
    assert_int_equal(virt_to_page((void *)a)->zone, ZONE_DMA);
    unsigned long b = __get_free_pages(GFP_KERNEL, 2);
    assert_false(vm_addr_is_dma((void *)b));
    free_pages(a, 2);
    free_pages(b, 2);
}

static void test_refcount_keeps_block(void **state)
{
    (void)state;
    struct page *p = alloc_pages(GFP_KERNEL, 1);
    atomic_fetch_add(&p->count, 1); /* get_page */
    __free_pages(p, 1);
    assert_false(PageFlag(p, PG_buddy));
    __free_pages(p, 1);
    assert_true(PageFlag(p, PG_buddy) || PageFlag(p - 1, PG_buddy) ||
                vm_check_zones());
}

/*
 * Level-1 checks of the buddy lists (lib/assert.h): metadata a free or an
 * allocation is about to trust is checked, and a broken one is reported
 * with one line naming the function and the values.  Each child makes a
 * block of 2 frames [p, p+2) and gives back p+1 (vm_shrink_pages_exact),
 * so p+1 is a free order-0 head whose buddy p is in use.
 */
static struct page *free_head_beside_used(void)
{
    struct page *p = vm_alloc_pages_exact(GFP_KERNEL, 2);
    assert_non_null(p);
    vm_shrink_pages_exact(p, 2, 1);
    assert_true(PageFlag(p + 1, PG_buddy));
    return p;
}

/* A free buddy head with an insane order: freeing its buddy must not
 * trust it. */
static void bad_order_in_free_head(void *arg)
{
    (void)arg;
    struct page *p = free_head_beside_used();
    p[1].order = 77;
    vm_free_pages_exact(p, 1);
}

/* A free block on the order-0 list that says order 1: allocation must not
 * take it. */
static void list_order_mismatch(void *arg)
{
    (void)arg;
    /* a slab pageblock's block (an exact block's frames are in a run
     * pageblock, whose blocks alloc_pages() does not take) */
    struct page *p = alloc_pages(GFP_KERNEL, 1);
    assert_non_null(p);
    vm_shrink_pages_exact(p, 2, 1);
    assert_true(PageFlag(p + 1, PG_buddy));
    p[1].order = 1; /* the most recently freed order-0 block: taken next */
    __get_free_pages(GFP_KERNEL, 0);
}

/* Frames freed that lie inside a free block (the second half of a free
 * order-1 block). */
static void free_inside_free_block(void *arg)
{
    (void)arg;
    struct page *q = vm_alloc_pages_exact(GFP_KERNEL, 4);
    vm_shrink_pages_exact(q, 4, 2); /* [q+2, q+4) free, order 1 */
    vm_free_pages_exact(q + 3, 1);
}

/* The same frames given back twice by shrinking twice. */
static void shrink_twice(void *arg)
{
    (void)arg;
    struct page *q = vm_alloc_pages_exact(GFP_KERNEL, 4);
    vm_shrink_pages_exact(q, 4, 2);
    vm_shrink_pages_exact(q, 4, 2);
}

static void test_buddy_metadata_is_checked(void **state)
{
    (void)state;
    ktest_expect_death(bad_order_in_free_head, NULL, SIGABRT,
                       "__free_one_block(): zone Normal: free block at frame");
    ktest_expect_death(bad_order_in_free_head, NULL, SIGABRT, "has order 77");
    ktest_expect_death(list_order_mismatch, NULL, SIGABRT,
                       "del_free_block(): zone Normal: frame");
    ktest_expect_death(list_order_mismatch, NULL, SIGABRT,
                       "on the order-0 list has order 1");
    ktest_expect_death(free_inside_free_block, NULL, SIGABRT,
                       "is inside the free block at frame");
    ktest_expect_death(shrink_twice, NULL, SIGABRT,
                       "add_free_block(): zone Normal: frame");
}

static void test_exact_blocks_grow_and_shrink_in_place(void **state)
{
    (void)state;
    struct page *p = vm_alloc_pages_exact(GFP_KERNEL, 3);
    assert_non_null(p);
    char *a = page_address(p);
    memset(a, 1, 3 * PAGE_SIZE);
    /* The tail of the order-2 block (1 frame) went back: grow into it. */
    assert_int_equal(vm_grow_pages_exact(p, 3, 4), 0);
    memset(a, 2, 4 * PAGE_SIZE);
    vm_shrink_pages_exact(p, 4, 2);
    vm_check_zones();
    /* A neighbour in use stops growth, and nothing changes. */
    struct page *q = vm_alloc_pages_exact(GFP_KERNEL, 2);
    unsigned long freebefore = vm_check_zones();
    if (q == p + 2)
        assert_int_equal(vm_grow_pages_exact(p, 2, 3), -ENOMEM);
    assert_int_equal(vm_check_zones(), freebefore);
    vm_free_pages_exact(p, 2);
    vm_free_pages_exact(q, 2);
    vm_check_zones();
}

static void test_rss_falls_after_large_free(void **state)
{
    (void)state;
    enum { N = 64 }; /* 64 × 2 MiB = 128 MiB */
    static unsigned long blocks[N];
    for (int i = 0; i < N; i++) {
        blocks[i] = __get_free_pages(GFP_KERNEL, MAX_ORDER - 1);
        assert_true(blocks[i] != 0);
        memset((void *)blocks[i], 0x77, PAGE_SIZE << (MAX_ORDER - 1));
    }
    size_t high = ktest_rss();
    for (int i = 0; i < N; i++)
        free_pages(blocks[i], MAX_ORDER - 1);
    /* Freed memory stays dirty for reuse (the decay is off here, see
     * main; tests/frames/test_purge.c has the background purge) until it is
     * given back: what malloc_trim does. */
    vm_release_free(0, 0);
    size_t low = ktest_rss();
    assert_true(high > low + (96UL << 20));
    /* Memory handed out again reads as zero or as written, never junk. */
    unsigned long a = __get_free_pages(GFP_KERNEL, MAX_ORDER - 1);
    unsigned char *c = (unsigned char *)a;
    assert_true(c[0] == 0 || c[0] == 0x77);
    free_pages(a, MAX_ORDER - 1);
    vm_check_zones();
}

static void test_dirty_blocks_reused_first_and_purged_oldest_first(void **state)
{
    (void)state;
    struct zone_struct *zone = &vm_zones[ZONE_NORMAL];
    vm_release_free(0, 0); /* every free block clean */
    assert_int_equal(zone->dirty_pages, 0);
    unsigned int o = MAX_ORDER - 1;
    unsigned long a = __get_free_pages(GFP_KERNEL, o);
    unsigned long b = __get_free_pages(GFP_KERNEL, o);
    unsigned long c = __get_free_pages(GFP_KERNEL, o);
    memset((void *)a, 1, PAGE_SIZE << o);
    memset((void *)b, 2, PAGE_SIZE << o);
    free_pages(a, o); /* a, then b: both dirty, a the older */
    free_pages(b, o);
    /* Purge one block's worth: the older one (a) goes, b stays dirty. */
    unsigned long dirty = zone->dirty_pages;
    vm_release_free(o, dirty - (1UL << o));
    assert_true(PageFlag(virt_to_page((void *)a), PG_clean));
    assert_false(PageFlag(virt_to_page((void *)b), PG_clean));
    /* Allocation takes the dirty block first (no page faults), then the
     * clean one, although the clean one was freed earlier... */
    unsigned long x = __get_free_pages(GFP_KERNEL, o);
    assert_int_equal(x, b);
    assert_int_equal(((unsigned char *)x)[0], 2);
    /* ... and a clean block that comes back later (from a purge) does not
     * hide a dirty one either. */
    free_pages(x, o);
    free_pages(c, o);
    vm_release_free(o, zone->dirty_pages - (1UL << o)); /* b, the older */
    x = __get_free_pages(GFP_KERNEL, o);
    assert_int_equal(x, c);
    free_pages(x, o);
    vm_check_zones();
}

static void *churn(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    unsigned long held[64] = {0};
    unsigned ord[64] = {0};
    for (int i = 0; i < 20000; i++) {
        int k = (int)(rand_r(&seed) % 64);
        if (held[k]) {
            unsigned char *c = (unsigned char *)held[k];
            if (c[0] != (unsigned char)k ||
                c[(PAGE_SIZE << ord[k]) - 1] != (unsigned char)k)
                return (void *)1;
            free_pages(held[k], ord[k]);
            held[k] = 0;
        } else {
            ord[k] = rand_r(&seed) % 4;
            held[k] = __get_free_pages(GFP_KERNEL, ord[k]);
            if (!held[k])
                return (void *)1;
            memset((void *)held[k], k, PAGE_SIZE << ord[k]);
        }
    }
    for (int k = 0; k < 64; k++)
        if (held[k])
            free_pages(held[k], ord[k]);
    return NULL;
}

static void test_two_threads_churn(void **state)
{
    (void)state;
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, churn, (void *)(uintptr_t)(i + 1));
    for (int i = 0; i < 2; i++) {
        void *r;
        pthread_join(t[i], &r);
        assert_null(r);
    }
    vm_check_zones();
}

/*
 * The owner of an allocated frame changes its flags without the zone lock
 * (kmem_cache_grow sets PG_slab, large malloc blocks PG_private) while
 * another thread, freeing the frame's buddy under the zone lock, reads
 * them to see whether PG_buddy is set.  Both sides must be atomic
 * accesses: under ThreadSanitizer (KSLAB_TSAN) this test reports a data
 * race with plain ones; elsewhere it checks the lists survive.
 */
static void *flag_owner(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        struct page *p = alloc_pages(GFP_KERNEL, 0);
        if (!p)
            return (void *)1;
        SetPageFlag(p, PG_private);
        ClearPageFlag(p, PG_private);
        __free_pages(p, 0);
    }
    return NULL;
}

static void *buddy_freer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        struct page *p = alloc_pages(GFP_KERNEL, 0);
        if (!p)
            return (void *)1;
        __free_pages(p, 0);
    }
    return NULL;
}

static void test_buddy_flag_reads_race_with_owners_writes(void **state)
{
    (void)state;
    pthread_t a, b;
    void *ra, *rb;
    pthread_create(&a, NULL, flag_owner, NULL);
    pthread_create(&b, NULL, buddy_freer, NULL);
    pthread_join(a, &ra);
    pthread_join(b, &rb);
    assert_null(ra);
    assert_null(rb);
    vm_check_zones();
}

/* The free time the purge decays by survives the buddy system's own
 * moves: a block merged from frames free for long and frames freed now
 * is stamped with their mean (so the old ones are not held back by a
 * few new ones beside them), and the half a split gives back keeps the
 * stamp of the block it came from. */
static void test_merge_and_split_keep_the_free_time(void **state)
{
    (void)state;
    struct page *b = alloc_pages(GFP_KERNEL, 9);
    assert_non_null(b);
    memset(page_address(b), 1, PAGE_SIZE << 9);
    struct zone_struct *zone = &vm_zones[b->zone];
    unsigned long pfn = vm_page_to_pfn(b);
    pthread_mutex_lock(&zone->lock);
    vm_free_one_block(zone, pfn, 8, 0); /* the lower half, free now */
    unsigned long t0 = b->private;
    pthread_mutex_unlock(&zone->lock);
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);

    /* every check below runs after the zone lock is dropped */
    struct page *taken[64];
    int ntaken = 0, merged9, upper8;
    pthread_mutex_lock(&zone->lock);
    vm_free_one_block(zone, pfn + 256, 8, 0); /* the upper half: merges */
    unsigned long t1 = vm_now_ms();
    merged9 = PageFlag(b, PG_buddy) && b->order == 9;
    unsigned long merged = b->private;
    /* empty the order-8 lists of slab pageblocks, so that the next
     * order-8 allocation splits the youngest order-9 block: b */
    while (ntaken < 64 &&
           (!list_empty(&zone->free_area[8].free_list[PB_SLAB]) ||
            !list_empty(&zone->free_area[8].clean_list[PB_SLAB])))
        taken[ntaken++] = vm_rmqueue(zone, 8, PB_SLAB);
    struct page *half = ntaken < 64 ? vm_rmqueue(zone, 8, PB_SLAB) : NULL;
    struct page *upper = b + 256;
    upper8 = PageFlag(upper, PG_buddy) && upper->order == 8;
    unsigned long split = upper->private;
    if (half)
        vm_free_one_block(zone, vm_page_to_pfn(half), 8, 0);
    for (int i = 0; i < ntaken; i++)
        vm_free_one_block(zone, vm_page_to_pfn(taken[i]), 8, 0);
    pthread_mutex_unlock(&zone->lock);
    vm_check_zones();

    assert_true(merged9);
    assert_true(t1 >= t0 + 150);
    assert_true(merged >= t0 && merged <= t0 + (t1 - t0) / 2 + 1);
    assert_true(ntaken < 64);
    assert_ptr_equal(half, b);
    assert_true(upper8);
    assert_int_equal(split, merged);
}

int main(void)
{
    /* Exact counts below: no background purge between two looks. */
    __atomic_store_n(&vm_purge_decay_ms, ULONG_MAX, __ATOMIC_RELAXED);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_and_split_keep_the_free_time),
        cmocka_unit_test(test_every_order_is_aligned_and_distinct),
        cmocka_unit_test(test_bad_order_is_refused),
        cmocka_unit_test(test_buddies_coalesce),
        cmocka_unit_test(test_dma_pages_lie_in_zone_dma),
        cmocka_unit_test(test_refcount_keeps_block),
        cmocka_unit_test(test_buddy_metadata_is_checked),
        cmocka_unit_test(test_exact_blocks_grow_and_shrink_in_place),
        cmocka_unit_test(test_rss_falls_after_large_free),
        cmocka_unit_test(
            test_dirty_blocks_reused_first_and_purged_oldest_first),
        cmocka_unit_test(test_two_threads_churn),
        cmocka_unit_test(test_buddy_flag_reads_race_with_owners_writes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
