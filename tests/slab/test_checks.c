/*
 * tests/slab/test_checks.c — the level-1 checks of the slab (lib/assert.h):
 * slab metadata the allocator is about to trust (a free-chain index, a
 * slab's count) is checked on the slow paths, in release builds too, and a
 * broken one is reported with one line naming the function and the
 * values, then abort().  Each case corrupts the metadata in a forked
 * child.  (A slab frame given to free_pages(): tests/misuse/test_pages.c.)
 */
#include "ktest.h"
#include "slab/slab_internal.h"

/* A fresh cache of 16-byte objects: one slab holds more objects than one
 * refill takes, so after the first allocation the slab is partial and the
 * next refill takes from it again. */
static slab_t *partial_slab(const char *name, kmem_cache_t **pc, void **pobj)
{
    kmem_cache_t *c = kmem_cache_create(name, 16, 0, 0, NULL, NULL);
    assert_non_null(c);
    void *p = kmem_cache_alloc(c, GFP_KERNEL);
    assert_non_null(p);
    assert_true(c->num > c->batchcount);
    *pc = c;
    if (pobj)
        *pobj = p;
    return GET_PAGE_SLAB(virt_to_page(p));
}

/* Allocates until the thread's array is refilled from the partial slab. */
static void alloc_past_refill(kmem_cache_t *c)
{
    for (int i = 0; i < 1000; i++)
        kmem_cache_alloc(c, GFP_KERNEL);
}

static void take_bad_free_index(void *arg)
{
    (void)arg;
    kmem_cache_t *c;
    partial_slab("chk-free", &c, NULL)->free = 5000;
    alloc_past_refill(c);
}

static void take_bad_bufctl(void *arg)
{
    (void)arg;
    kmem_cache_t *c;
    slab_t *slabp = partial_slab("chk-bufctl", &c, NULL);
    slab_bufctl(slabp)[slabp->free] = BUFCTL_ACTIVE;
    alloc_past_refill(c);
}

static void put_bad_free_index(void *arg)
{
    (void)arg;
    kmem_cache_t *c;
    void *p;
    slab_t *slabp = partial_slab("chk-put", &c, &p);
    slabp->free = 7777;
    kmem_cache_free(c, p);
    kmem_cache_shrink(c); /* the thread's array back to the slabs */
}

static void put_bad_inuse(void *arg)
{
    (void)arg;
    kmem_cache_t *c;
    void *p;
    slab_t *slabp = partial_slab("chk-inuse", &c, &p);
    slabp->inuse = 0;
    kmem_cache_free(c, p);
    kmem_cache_shrink(c);
}

static void test_slab_take_checks_the_free_chain(void **state)
{
    (void)state;
    ktest_expect_death(take_bad_free_index, NULL, SIGABRT,
                       "slab_take(): cache `chk-free': slab ");
    ktest_expect_death(take_bad_free_index, NULL, SIGABRT,
                       ": free index 5000, ");
    ktest_expect_death(take_bad_bufctl, NULL, SIGABRT, "] = 0xfffffffe, ");
}

static void test_slab_put_checks_the_slab(void **state)
{
    (void)state;
    ktest_expect_death(put_bad_free_index, NULL, SIGABRT,
                       "slab_put(): cache `chk-put': slab ");
    ktest_expect_death(put_bad_free_index, NULL, SIGABRT, "free index 0x1e61");
    ktest_expect_death(put_bad_inuse, NULL, SIGABRT,
                       "slab_put(): cache `chk-inuse': slab ");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slab_take_checks_the_free_chain),
        cmocka_unit_test(test_slab_put_checks_the_slab),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
