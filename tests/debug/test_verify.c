/*
 * tests/debug/test_verify.c — kslab_verify() and KSLAB_DEBUG=verify (the
 * test runs with it set): a clean heap verifies as 0, a planted
 * corruption (a free object's link in its slab's free chain overwritten)
 * is found and named by cache and slab, a broken zone is named and
 * kslab_verify() returns, and with verify on the next slow path of that
 * cache dies of it.
 */
#include "ktest.h"

#include <kslab/kslab.h>

#include "lib/options.h"
#include "slab/slab_internal.h"
#include "vm/frames/page.h"

static kmem_cache_t *cache;
static kmem_bufctl_t *planted, saved;

/* Overwrites the free-chain link of a free object of cachep's first
 * partial (or free) slab with an index past the slab. */
static void plant(kmem_cache_t *cachep)
{
    kmem_cache_shrink(cachep); /* this thread's array back to the slabs */
    struct list_head *l = !list_empty(&cachep->slabs_partial)
                              ? &cachep->slabs_partial
                              : &cachep->slabs_free;
    assert_false(list_empty(l));
    slab_t *slabp = list_entry(l->next, slab_t, list);
    assert_true(slabp->free != BUFCTL_END);
    planted = &slab_bufctl(slabp)[slabp->free];
    saved = *planted;
    *planted = cachep->num + 7;
}

static void unplant(void)
{
    *planted = saved;
}

static void verify_clean_heap_is_zero(void **state)
{
    (void)state;
    void *p[100];
    for (int i = 0; i < 100; i++)
        p[i] = kmalloc(24 + (size_t)i * 40, GFP_KERNEL);
    for (int i = 0; i < 100; i += 2)
        kfree(p[i]);
    assert_int_equal(kslab_verify(), 0);
    for (int i = 1; i < 100; i += 2)
        kfree(p[i]);
    assert_int_equal(kslab_verify(), 0);
}

struct verify_child {
    int ret;
};

static void verify_planted(void *arg)
{
    (void)arg;
    int r = kslab_verify();
    unplant();
    _exit(r == -1 ? 0 : 10 + (r < 0 ? -r : r));
}

static void verify_finds_planted_corruption(void **state)
{
    (void)state;
    cache = kmem_cache_create("verify-victim", 200, 0, 0, NULL, NULL);
    assert_non_null(cache);
    void *live = kmem_cache_alloc(cache, GFP_KERNEL);
    assert_non_null(live);
    plant(cache);
    char err[4096];
    int st = ktest_run_child(verify_planted, NULL, err, sizeof err);
    unplant();
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("status %#x: %s", st, err);
    assert_non_null(strstr(err, "cache `verify-victim'"));
    assert_non_null(strstr(err, "broken free chain in slab 0x"));
    assert_int_equal(kslab_verify(), 0); /* repaired */
    kmem_cache_free(cache, live);
}

/* A zone's count of free blocks of one order made wrong: kslab_verify()
 * names the zone and the invariant in one line and returns (its locks
 * dropped: a second call works), as it does for a cache; nothing aborts. */
static void verify_broken_zone(void *arg)
{
    (void)arg;
    struct zone_struct *zone = &vm_zones[ZONE_NORMAL];
    pthread_mutex_lock(&zone->lock);
    zone->free_area[3].nr_free += 2;
    pthread_mutex_unlock(&zone->lock);
    int r1 = kslab_verify();
    int r2 = kslab_verify();
    pthread_mutex_lock(&zone->lock);
    zone->free_area[3].nr_free -= 2;
    pthread_mutex_unlock(&zone->lock);
    int r3 = kslab_verify();
    _exit(r1 == -1 && r2 == -1 && r3 == 0 ? 0 : 20);
}

static void verify_reports_broken_zone_and_returns(void **state)
{
    (void)state;
    void *p = kmalloc(5000, GFP_KERNEL); /* the zone in use */
    assert_non_null(p);
    char err[4096];
    int st = ktest_run_child(verify_broken_zone, NULL, err, sizeof err);
    kfree(p);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("status %#x: %s", st, err);
    char want[128];
    snprintf(want, sizeof want, "kslab: zone %s: order 3 lists ",
             vm_zones[ZONE_NORMAL].name);
    assert_non_null(strstr(err, want));
    assert_int_equal(kslab_verify(), 0);
}

/* With KSLAB_DEBUG=verify, the cache's validator runs at each slow path:
 * the first allocation in a new thread (an empty array) finds it. */
static void *alloc_in_thread(void *arg)
{
    return kmem_cache_alloc(arg, GFP_KERNEL);
}

static void slow_path_after_plant(void *arg)
{
    (void)arg;
    pthread_t t;
    void *r;
    pthread_create(&t, NULL, alloc_in_thread, cache);
    pthread_join(t, &r);
}

static void verify_option_checks_at_slow_path(void **state)
{
    (void)state;
    /* run alone: its own cache (which starts kslab, options read) */
    cache = kmem_cache_create("verify-victim", 200, 0, 0, NULL, NULL);
    assert_non_null(cache);
    if (!(kslab_opt.dbg & KSLAB_DBG_VERIFY))
        ktest_skip("KSLAB_DEBUG=verify not set (its ctest entry sets it)");
    void *live = kmem_cache_alloc(cache, GFP_KERNEL);
    plant(cache);
    ktest_expect_death(slow_path_after_plant, NULL, SIGABRT,
                       "slab_check_cache(): cache `verify-victim': broken "
                       "free chain");
    unplant();
    kmem_cache_free(cache, live);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(verify_clean_heap_is_zero),
        cmocka_unit_test(verify_finds_planted_corruption),
        cmocka_unit_test(verify_reports_broken_zone_and_returns),
    };
    const struct CMUnitTest alone[] = {
        ktest_alone(verify_option_checks_at_slow_path),
    };
    return ktest_main(argc, argv, tests, alone, NULL, NULL);
}
