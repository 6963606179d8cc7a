/*
 * tests/slab/test_kmalloc_debug.c — poison and red zone turned on for
 * the kmalloc caches before the first allocation.
 */
#include <errno.h>

#include "ktest.h"
#include "slab/kmalloc.h"

static void kmalloc_overflow(void *arg)
{
    (void)arg;
    char *p = kmalloc(100, GFP_KERNEL);
    p[128] = 0; /* past the size-128 object */
    kfree(p);
}

static void test_kmalloc_red_zone(void **state)
{
    (void)state;
    ktest_expect_death(kmalloc_overflow, NULL, SIGABRT,
                       "cache `size-128': red zone overwritten");
    /* Every size still works, 16-byte aligned, and holds its bytes. */
    for (unsigned i = 0; i < KMALLOC_NR_SIZES; i++) {
        size_t n = 32UL << i;
        unsigned char *p = kmalloc(n, GFP_KERNEL);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 16, 0);
        memset(p, 3, n);
        kfree(p);
    }
    assert_int_equal(slab_set_kmalloc_flags(SLAB_POISON), -EBUSY);
}

int main(void)
{
    assert_int_equal(slab_set_kmalloc_flags(0x1), -EINVAL);
    if (slab_set_kmalloc_flags(SLAB_POISON | SLAB_RED_ZONE))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kmalloc_red_zone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
